"""Writing identities. Patients are registered with a validated INS and coherent traits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from django.db import transaction
from django.utils.translation import gettext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dmp.common.errors import Conflict, ErrorCode, Problem, ValidationFailed
from dmp.common.rows import text_problems
from dmp.common.ttl_cache import clear_reference_caches
from dmp.common.xml import NOT_XML_CHARACTER
from dmp.identity.finess import FinessSite, line_location, structure_id_of
from dmp.identity.ins import Ins, InvalidIns, parse_ins
from dmp.identity.models import LegalRepresentative, Patient, Structure

_RPPS_RE = re.compile(r"^\d{11}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def validate_professional_id(national_id: str) -> str:
    """PS_IdNat: "8" + RPPS (11 digits, Luhn key) or "0" + ADELI (9 characters)."""
    cleaned = national_id.strip()
    if cleaned.startswith("8") and _RPPS_RE.match(cleaned[1:]):
        if not luhn_valid(cleaned[1:]):
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, gettext("La clé de contrôle du RPPS est fausse."), "national_id")]
            )
        return cleaned
    if cleaned.startswith("0") and len(cleaned) == 10 and cleaned[1:].isalnum():
        return cleaned
    raise ValidationFailed(
        [
            Problem(
                ErrorCode.INVALID,
                gettext("L'identifiant national du PS doit être 8+RPPS (12 chiffres) ou 0+ADELI."),
                "national_id",
            )
        ]
    )


class PatientTraits(BaseModel):
    """Identity traits of a patient, as read from the Carte Vitale / INSi and the patient."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    ins: str
    ins_authority: str
    birth_family_name: str = Field(min_length=1, max_length=100)
    used_family_name: str = Field(default="", max_length=100)
    given_names: str = Field(min_length=1, max_length=200)
    used_given_name: str = Field(default="", max_length=100)
    birth_date: dt.date
    sex: Literal["M", "F", "U"]
    birth_place_code: str = Field(default="", max_length=5)
    address_line: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=10)
    city: str = Field(default="", max_length=100)
    email: str = Field(default="", max_length=254)
    mobile_phone: str = Field(default="", max_length=20)

    @field_validator("*")
    @classmethod
    def _xml_text(cls, value: object) -> object:
        # Traits are written into every CDA header and HL7v3 answer about the patient: a control
        # character stored here would make each of them fail, for the life of the record.
        if isinstance(value, str) and NOT_XML_CHARACTER.search(value):
            raise ValueError("holds a control character")
        return value

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: dt.date) -> dt.date:
        if value > dt.datetime.now(tz=dt.UTC).date():
            raise ValueError("birth date is in the future")
        return value

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        if value and not _EMAIL_RE.match(value):
            raise ValueError("not an e-mail address")
        return value

    def identifier(self) -> Ins:
        return parse_ins(self.ins, self.ins_authority)


def patient_register(traits: PatientTraits) -> Patient:
    """The patient with this INS, created if new. Existing traits must agree (identity vigilance)."""
    try:
        ins = traits.identifier()
    except InvalidIns as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID_INS, exc.message, "ins")]) from exc
    existing = Patient.objects.filter(ins=ins.value, ins_authority=ins.authority.value).first()
    if existing is not None:
        mismatches = [
            name
            for name, known, given in (
                ("birth_date", existing.birth_date, traits.birth_date),
                ("birth_family_name", existing.birth_family_name.upper(), traits.birth_family_name.upper()),
                ("sex", existing.sex, traits.sex),
            )
            if known != given
        ]
        if mismatches:
            raise Conflict(
                gettext("Les traits d'identité diffèrent de ceux enregistrés pour cet INS : %(traits)s")
                % {"traits": ", ".join(mismatches)},
                code=ErrorCode.CONFLICT,
                location="identity",
            )
        return existing
    data = traits.model_dump(exclude={"ins", "ins_authority"})
    return Patient.objects.create(ins=ins.value, ins_authority=ins.authority.value, **data)


def patient_update_contact(
    patient: Patient,
    *,
    address_line: str | None = None,
    postal_code: str | None = None,
    city: str | None = None,
    email: str | None = None,
    mobile_phone: str | None = None,
) -> list[str]:
    """Sets the contact fields given (None leaves a field as it is; "" clears it) and returns the
    names of those that changed. Nothing is saved when a value is refused or none is given."""
    given = {
        name: value
        for name, value in (
            ("address_line", address_line),
            ("postal_code", postal_code),
            ("city", city),
            ("email", email),
            ("mobile_phone", mobile_phone),
        )
        if value is not None
    }
    if not given:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("Aucune coordonnée à mettre à jour."), "contact")]
        )
    problems = text_problems(Patient, given)
    if given.get("email") and not _EMAIL_RE.match(given["email"]):
        problems.append(Problem(ErrorCode.INVALID, gettext("Adresse électronique invalide."), "email"))
    if problems:
        raise ValidationFailed(problems)
    changed = [name for name, value in given.items() if getattr(patient, name) != value]
    if changed:
        for name in changed:
            setattr(patient, name, given[name])
        patient.save(update_fields=[*changed, "updated_at"])
    return changed


def legal_representative_add(
    patient: Patient,
    *,
    family_name: str,
    given_name: str,
    relationship: str,
    email: str = "",
    phone: str = "",
) -> LegalRepresentative:
    if relationship not in LegalRepresentative.Relationship.values:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("Lien de parenté inconnu."), "relationship")]
        )
    texts = {"family_name": family_name, "given_name": given_name, "email": email, "mobile_phone": phone}
    if problems := text_problems(LegalRepresentative, texts):
        raise ValidationFailed(problems)
    return LegalRepresentative.objects.create(
        patient=patient,
        family_name=family_name,
        given_name=given_name,
        relationship=relationship,
        email=email,
        mobile_phone=phone,
    )


def structure_attach_to_legal_entity(site: Structure, legal_entity: Structure) -> Structure:
    """Make `site` (an établissement géographique) a site of `legal_entity` (its entité
    juridique), whose certificate may then sign for it (ADR 0011). One level only: a structure
    that has sites is no site, and a site is no legal entity; nobody is their own."""
    if site.pk == legal_entity.pk:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "a structure is not its own legal entity", "")])
    if legal_entity.legal_entity_id is not None:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"{legal_entity.id_nat} is a site, not a legal entity", "")]
        )
    if Structure.objects.filter(legal_entity=site).exists():
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"{site.id_nat} is the legal entity of other sites", "")]
        )
    site.legal_entity = legal_entity
    site.save(update_fields=["legal_entity"])
    return site


@dataclass(frozen=True)
class FinessImport:
    """What an import of the FINESS extraction changed."""

    sites_created: int
    sites_updated: int
    legal_entities_created: int
    sites_moved: int  # sites given another legal entity, or their first


def structures_import_finess(sites: Sequence[FinessSite]) -> FinessImport:
    """Create or update each site of a FINESS extraction (`finess.read_finess`) as a structure
    ("1" + FINESS), and make it a site of its legal entity, created if unknown (its name is not
    in the extraction of sites: it stays the one known, or a placeholder). All or nothing: a
    site that would break the one-level rule of ADR 0011 (a legal entity that is a site, a site
    that is the legal entity of others) refuses the whole import, naming its line."""
    by_site = {structure_id_of(site.finess): site for site in sites}
    entity_ids = {
        structure_id_of(site.legal_entity_finess) for site in sites if site.legal_entity_finess != site.finess
    }
    # Sites the file gives a legal entity (one listed as its own legal entity has none).
    attached = {id_nat for id_nat, site in by_site.items() if site.legal_entity_finess != site.finess}
    with transaction.atomic():
        known = {
            structure.id_nat: structure
            for chunk in _chunks(by_site.keys() | entity_ids)
            for structure in Structure.objects.select_for_update().filter(id_nat__in=chunk)
        }
        problems = [
            Problem(
                ErrorCode.CONFLICT,
                gettext("%(id)s est un établissement et l'entité juridique d'autres établissements")
                % {"id": id_nat},
                line_location(by_site[id_nat].line),
            )
            for id_nat in sorted(entity_ids & attached)
        ]
        # Legal entities the file names that the directory knows as a site of another one.
        problems += [
            Problem(
                ErrorCode.CONFLICT,
                gettext("%(id)s est un établissement, pas une entité juridique") % {"id": id_nat},
                "",
            )
            for id_nat in sorted(entity_ids - by_site.keys())
            if id_nat in known and known[id_nat].legal_entity_id is not None
        ]
        # Sites of the file that the directory knows as the legal entity of sites the file leaves.
        heading = {
            head
            for chunk in _chunks(attached)
            for site_id, head in Structure.objects.filter(legal_entity__id_nat__in=chunk).values_list(
                "id_nat", "legal_entity__id_nat"
            )
            if site_id not in by_site
        }
        problems += [
            Problem(
                ErrorCode.CONFLICT,
                gettext("%(id)s est l'entité juridique d'autres établissements") % {"id": id_nat},
                line_location(by_site[id_nat].line),
            )
            for id_nat in sorted(heading)
        ]
        if problems:
            raise ValidationFailed(problems)
        new_entities = [
            Structure(
                id_nat=id_nat,
                name=gettext("Entité juridique FINESS %(finess)s") % {"finess": id_nat[1:]},
                finess=id_nat[1:],
            )
            for id_nat in sorted(entity_ids - known.keys() - by_site.keys())
        ]
        Structure.objects.bulk_create(new_entities)
        # The listed sites that head others first (none has a legal entity: checked above), so
        # that every legal entity exists when the other sites are attached.
        heads = _write_sites([site for i, site in by_site.items() if i in entity_ids], known, {})
        entities = {
            id_nat: pk
            for chunk in _chunks(entity_ids)
            for id_nat, pk in Structure.objects.filter(id_nat__in=chunk).values_list("id_nat", "pk")
        }
        others = _write_sites([site for i, site in by_site.items() if i not in entity_ids], known, entities)
    clear_reference_caches()
    return FinessImport(heads[0] + others[0], heads[1] + others[1], len(new_entities), heads[2] + others[2])


def _chunks(values: Iterable[str], size: int = 5000) -> Iterator[list[str]]:
    """`values` by lists of `size`: a national extraction (100,000 sites) in one IN would pass
    the bound parameters a statement may carry (65,535 on PostgreSQL, 32,766 on SQLite)."""
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _write_sites(
    sites: list[FinessSite], known: dict[str, Structure], entities: dict[str, int]
) -> tuple[int, int, int]:
    """Create or update `sites`; (created, updated, given another legal entity or their first)."""
    created, changed, moved = [], [], 0
    for site in sites:
        id_nat, entity_id_nat = structure_id_of(site.finess), structure_id_of(site.legal_entity_finess)
        legal_entity = entities.get(entity_id_nat) if entity_id_nat != id_nat else None
        values = {
            "name": site.name,
            "city": site.city,
            "finess": site.finess,
            "legal_entity_id": legal_entity,
        }
        structure = known.get(id_nat)
        if structure is None:
            created.append(Structure(id_nat=id_nat, **values))
            moved += legal_entity is not None
        elif any(getattr(structure, name) != value for name, value in values.items()):
            moved += structure.legal_entity_id != legal_entity
            for name, value in values.items():
                setattr(structure, name, value)
            changed.append(structure)
    Structure.objects.bulk_create(created, batch_size=1000)
    Structure.objects.bulk_update(changed, list(_SITE_FIELDS), batch_size=1000)
    return len(created), len(changed), moved


_SITE_FIELDS: Final = ("name", "city", "finess", "legal_entity")


def make_rpps(seed: int) -> str:
    """A Luhn-valid 11-digit RPPS number derived from `seed` (test and demo identities)."""
    base = f"1{seed % 10**9:09d}"
    for check in range(10):
        candidate = f"{base}{check}"
        if luhn_valid(candidate):
            return candidate
    raise AssertionError("unreachable: one check digit always satisfies Luhn")
