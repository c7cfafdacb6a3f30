"""What demo documents look like: types, authors' professions, settings, narrative."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentKind:
    type_code: str
    title: str
    profession: str  # TRE_G15 code of a typical author
    hospital: bool  # written in a hospital (SA01 / ETABLISSEMENT) or in a practice
    weight: int
    paragraphs: tuple[str, ...]


KINDS = (
    DocumentKind(
        "11488-4",
        "Compte rendu de consultation",
        "10",
        False,
        30,
        (
            "Motif : suivi d'une hypertension artérielle.",
            "Examen clinique : pression artérielle 135/85 mmHg, auscultation normale.",
            "Conduite à tenir : poursuite du traitement, contrôle dans trois mois.",
        ),
    ),
    DocumentKind(
        "11502-2",
        "Compte rendu d'examens biologiques",
        "10",
        False,
        20,
        (
            "Hémoglobine : 13,8 g/dL.",
            "Créatinine : 78 µmol/L, DFG estimé > 90 mL/min/1,73 m².",
            "HbA1c : 6,1 %.",
        ),
    ),
    DocumentKind(
        "11490-0",
        "Lettre de liaison à la sortie d'un établissement de soins",
        "10",
        True,
        12,
        (
            "Hospitalisation du 3 au 7 pour pneumopathie communautaire.",
            "Évolution favorable sous amoxicilline.",
            "Traitement de sortie : amoxicilline 1 g x 3 par jour pendant 5 jours.",
        ),
    ),
    DocumentKind(
        "18748-4",
        "Compte rendu d'imagerie médicale",
        "10",
        True,
        10,
        ("Radiographie thoracique de face.", "Pas d'anomalie pleuro-parenchymateuse visible."),
    ),
    DocumentKind(
        "34874-8",
        "Compte rendu opératoire",
        "10",
        True,
        4,
        ("Cholécystectomie par cœlioscopie.", "Suites opératoires simples."),
    ),
    DocumentKind(
        "60593-1",
        "Dispensation médicamenteuse",
        "21",
        False,
        10,
        ("Paracétamol 1 g : 1 boîte.", "Ramipril 5 mg : 3 boîtes."),
    ),
    DocumentKind(
        "11506-3",
        "Compte rendu de suivi de soins infirmiers",
        "60",
        False,
        6,
        ("Pansement de plaie chronique de jambe.", "Évolution : bourgeonnement satisfaisant."),
    ),
    DocumentKind(
        "87273-9",
        "Note de vaccination",
        "10",
        False,
        5,
        ("Vaccin contre la grippe saisonnière administré.", "Pas de réaction immédiate."),
    ),
    DocumentKind(
        "15508-5",
        "Compte rendu d'accouchement",
        "50",
        True,
        3,
        ("Accouchement par voie basse à 39 SA.", "Nouveau-né en bonne santé, Apgar 10/10."),
    ),
)


def weighted_kinds() -> list[DocumentKind]:
    return [kind for kind in KINDS for _ in range(kind.weight)]


FAMILY_NAMES = (
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Muller",
    "Lefèvre",
    "Faure",
    "André",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "François",
    "Legrand",
    "Gauthier",
    "Garcia",
    "Perrin",
    "Robin",
    "Clément",
    "Morin",
    "Nicolas",
    "Henry",
    "Roussel",
    "Mathieu",
    "Gautier",
    "Masson",
    "Marchand",
    "Duval",
    "Denis",
    "Dumont",
)
GIVEN_NAMES_F = (
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Emma",
    "Inès",
    "Jade",
    "Louise",
    "Alice",
    "Lina",
    "Sarah",
    "Julie",
    "Claire",
    "Anne",
    "Marie",
    "Nathalie",
)
GIVEN_NAMES_M = (
    "Lucas",
    "Hugo",
    "Louis",
    "Nathan",
    "Gabriel",
    "Jules",
    "Léo",
    "Adam",
    "Raphaël",
    "Arthur",
    "Paul",
    "Pierre",
    "Marc",
    "Jean",
    "Luc",
    "Thierry",
)
CITIES = (
    ("35000", "Rennes", "35"),
    ("69001", "Lyon", "69"),
    ("67000", "Strasbourg", "67"),
    ("33000", "Bordeaux", "33"),
    ("80000", "Amiens", "80"),
    ("25000", "Besançon", "25"),
    ("75011", "Paris", "75"),
    ("20000", "Ajaccio", "2A"),
)
SPECIALTIES = {
    "10": ("SM26", "SM04", "SM29", "SM53", "SM40"),
    "21": ("",),
    "40": ("",),
    "50": ("",),
    "60": ("",),
}
