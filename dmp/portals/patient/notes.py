"""The patient's own documents (expression personnelle, classCode 90), built as CI-SIS CDA."""

from __future__ import annotations

from dmp.access.actors import Caller
from dmp.documents.builders import DocumentDraft, author_for, cda_patient_for, submission_for
from dmp.documents.models import DocumentEntry
from dmp.documents.services import submission_register
from dmp.records.access import representative_public_id
from dmp.records.models import Record

# typeCodes of class 90 "Expression personnelle du patient" (ASS_X16).
PATIENT_TYPES = {
    "EXPPAT_2": "Autre document du patient",
    "EXPPAT_1": "Volontés et droits du patient",
    "EXPPAT_3": "Directives anticipées",
}


def patient_note_publish(
    *, caller: Caller, record: Record, type_code: str, title: str, text: str
) -> DocumentEntry:
    """Publish a note written by the patient (or the legal representative) in their record."""
    patient = record.patient
    family_name, given_name = patient.used_family_name or patient.birth_family_name, patient.first_given_name
    representative_id = representative_public_id(caller.actor)
    representative = (
        patient.legal_representatives.filter(public_id=representative_id).first()
        if representative_id
        else None
    )
    if representative is not None:  # the parent wrote it, not the minor
        family_name, given_name = representative.family_name, representative.given_name
    author = author_for(
        person_id=caller.actor.person_id,
        family_name=family_name,
        given_name=given_name,
        profession_code="",
        specialty_code="",
    )
    paragraphs = tuple(line.strip() for line in text.splitlines() if line.strip()) or (title,)
    submission = submission_for(
        ins=patient.identifier,
        author=author,
        drafts=[DocumentDraft(type_code=type_code, title=title, paragraphs=paragraphs)],
        patient=cda_patient_for(
            patient.identifier,
            family_name=patient.used_family_name or patient.birth_family_name,
            given_names=patient.given_names,
            birth_date=patient.birth_date,
            sex=patient.sex,
        ),
    )
    return submission_register(caller=caller, submission=submission).documents[0]
