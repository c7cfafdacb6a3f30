"""The personas' stories, played through the domain services (real decisions, real traces)."""

from __future__ import annotations

import datetime as dt

from dmp.access.actors import AccessMode, Caller, Channel
from dmp.access.policy import DocumentStatus
from dmp.cda.builder import simple_pdf
from dmp.common import clock
from dmp.demo.personas import Personas
from dmp.documents.builders import AuthorInfo, DocumentDraft, cda_patient_for, submission_for
from dmp.documents.metadata import ConfidentialityChange
from dmp.documents.selectors import DocumentQuery, document_retrieve, document_search
from dmp.documents.services import (
    document_change_confidentiality,
    document_change_status,
    submission_register,
)
from dmp.identity.models import HealthProfessional, Patient, Structure


def author_info(
    professional: HealthProfessional, structure: Structure, *, hospital: bool = False
) -> AuthorInfo:
    return AuthorInfo(
        person_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        structure_id=structure.id_nat,
        structure_name=structure.name,
        facility_type=structure.facility_type_code or ("SA01" if hospital else "SA07"),
        practice_setting="ETABLISSEMENT" if hospital else "AMBULATOIRE",
    )


def publish(
    personas: Personas,
    professional: HealthProfessional,
    patient: Patient,
    drafts: list[DocumentDraft],
    *,
    replaces: dict[int, str] | None = None,
    caller: Caller | None = None,
) -> list[str]:
    """Publish `drafts` for `patient` as `professional`; returns the entryUUIDs."""
    structure = professional.structures.first()
    assert structure is not None  # noqa: S101 - every persona belongs to a structure
    author = author_info(professional, structure, hospital=structure.facility_type_code == "SA01")
    registered = submission_register(
        caller=caller or personas.ps(professional),
        submission=submission_for(
            ins=patient.identifier,
            author=author,
            drafts=drafts,
            replaces=replaces,
            patient=cda_patient_for(
                patient.identifier,
                family_name=patient.birth_family_name,
                given_names=patient.given_names,
                birth_date=patient.birth_date,
                sex=patient.sex,
            ),
        ),
    )
    return [d.entry_uuid for d in registered.documents]


def play_persona_scenarios(personas: Personas) -> None:
    alice, leo = personas.alice, personas.leo
    two_months_ago = clock.now().replace(microsecond=0) - dt.timedelta(days=60)
    consultation, lab, pathology, old_letter = publish(
        personas,
        personas.dr_bernard,
        alice,
        [
            DocumentDraft(title="Compte rendu de consultation", paragraphs=("Suivi de l'hypertension.",)),
            DocumentDraft(
                type_code="11502-2",
                title="Compte rendu d'examens biologiques",
                paragraphs=("HbA1c : 6,1 %.", "Créatinine : 78 µmol/L."),
            ),
            DocumentDraft(
                type_code="51969-4",
                title="Compte rendu de génétique moléculaire",
                paragraphs=("Résultat à annoncer lors de la consultation d'annonce.",),
                confidentiality=("N", "INVISIBLE_PATIENT"),
            ),
            DocumentDraft(
                type_code="11490-0", title="Lettre de liaison (version 1)", creation_time=two_months_ago
            ),
        ],
    )
    publish(
        personas,
        personas.dr_bernard,
        alice,
        [DocumentDraft(type_code="11490-0", title="Lettre de liaison (version corrigée)")],
        replaces={0: old_letter},
    )
    document_change_status(
        caller=personas.ps(personas.dr_bernard), entry_uuid=lab, new_status=DocumentStatus.ARCHIVED
    )
    (cardiology,) = publish(
        personas,
        personas.dr_moreau,
        alice,
        [
            DocumentDraft(
                type_code="11488-4",
                title="Consultation de cardiologie",
                pdf=simple_pdf("Consultation de cardiologie", ["Échographie cardiaque normale."]),
            )
        ],
    )
    document_change_confidentiality(
        caller=personas.patient(alice),
        entry_uuid=cardiology,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    publish(
        personas,
        personas.pharmacist_faure,
        alice,
        [
            DocumentDraft(
                type_code="60593-1",
                title="Dispensation médicamenteuse",
                paragraphs=("Ramipril 5 mg : 3 boîtes.",),
            )
        ],
    )
    publish(
        personas,
        personas.dr_bernard,
        leo,
        [
            DocumentDraft(
                type_code="87273-9", title="Note de vaccination", paragraphs=("Vaccin ROR, 2e dose.",)
            )
        ],
    )
    publish(
        personas,
        personas.dr_bernard,
        leo,
        [
            DocumentDraft(
                title="Consultation (connexion secrète)", paragraphs=("Consultation confidentielle.",)
            )
        ],
        caller=personas.ps(personas.dr_bernard, secret_connection=True),
    )
    glass = personas.ps(
        personas.dr_petit,
        mode=AccessMode.BREAK_GLASS,
        reason="Patiente inconsciente aux urgences",
        channel=Channel.PROFESSIONAL_PORTAL,
    )
    for visible in document_search(caller=glass, record=alice.record, query=DocumentQuery()):
        document_retrieve(caller=glass, unique_id=visible.document.unique_id)
    del consultation, pathology
