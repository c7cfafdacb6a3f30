"""CDA documents for demo records, built with the product's own CDA builder."""

from __future__ import annotations

import datetime as dt

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, CdaSection, build_cda
from dmp.demo.catalogue import DocumentKind
from dmp.identity.models import HealthProfessional, Patient, Structure

HOSPITAL = ("SA01", "ETABLISSEMENT")
PRACTICE = ("SA07", "AMBULATOIRE")


def cda_patient(patient: Patient) -> CdaPatient:
    return CdaPatient(
        ins=patient.ins,
        ins_root=patient.ins_authority,
        family_name=patient.birth_family_name,
        given_names=patient.given_names,
        birth_date=patient.birth_date,
        sex=patient.sex,
    )


def cda_author(professional: HealthProfessional, structure: Structure, *, hospital: bool) -> CdaAuthor:
    facility, setting = HOSPITAL if hospital else PRACTICE
    return CdaAuthor(
        national_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        organization=CdaOrganization(
            id_nat=structure.id_nat,
            name=structure.name,
            facility_type_code=structure.facility_type_code or facility,
            practice_setting_code=setting,
        ),
        prefix="DR" if professional.profession_code == "10" else "",
    )


def document_bytes(
    *,
    kind: DocumentKind,
    unique_id: str,
    patient: CdaPatient,
    author: CdaAuthor,
    when: dt.datetime,
    replaces_id: str = "",
) -> bytes:
    return build_cda(
        CdaDocumentSpec(
            id_root=unique_id,
            type_code=kind.type_code,
            title=kind.title,
            effective_time=when,
            patient=patient,
            author=author,
            service_start=when,
            sections=(CdaSection(title=kind.title, paragraphs=kind.paragraphs),),
            replaces_id=replaces_id,
        )
    )
