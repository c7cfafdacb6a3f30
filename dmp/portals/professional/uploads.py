"""Turning an uploaded file into a submission: a PDF wrapped into a CDA level 1, or a CDA as is.

Parsing only: `submission_register` validates the CDA, its coherence with the metadata, the
habilitation matrix and the visibility codes, all or nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from dmp.cda.header import extract_header
from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.documents.builders import (
    AuthorInfo,
    DocumentDraft,
    author_for,
    cda_patient_for,
    confidentiality_values,
    submission_for,
)
from dmp.documents.metadata import SubmissionInput
from dmp.identity.models import HealthProfessional, Patient, Structure

PDF_MAGIC = b"%PDF-"
# What the CDA header around a PDF adds (about 3.5 kB with long names and addresses; kept wide).
CDA_WRAPPER_ALLOWANCE = 16 * 1024
_PDF_HEADER = re.compile(rb"%PDF-[12]\.\d")
# ISO 32000: the file ends with %%EOF; readers tolerate some trailing bytes after it.
PDF_TRAILER_WINDOW = 1024


@dataclass(frozen=True)
class Upload:
    content: bytes
    type_code: str
    title: str
    visibility_codes: tuple[str, ...]
    replaces_entry_uuid: str = ""
    replaces_unique_id: str = ""


def _author(professional: HealthProfessional, structure: Structure | None) -> AuthorInfo:
    return author_for(
        person_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        structure_id=structure.id_nat if structure else "",
        structure_name=structure.name if structure else "",
        facility_type=(
            structure.facility_type_code if structure and structure.facility_type_code else "SA07"
        ),
    )


def _looks_like_a_pdf(content: bytes) -> bool:
    """A minimal structural check: a versioned header and the end-of-file marker (not a parse:
    the body is served to readers as is, in a sandboxed frame)."""
    return bool(_PDF_HEADER.match(content)) and b"%%EOF" in content[-PDF_TRAILER_WINDOW:]


def submission_from_upload(
    upload: Upload, *, professional: HealthProfessional, structure: Structure | None, patient: Patient
) -> SubmissionInput:
    """The submission of an uploaded CDA or PDF; ValidationFailed for what it cannot carry."""
    try:
        return _submission_from_upload(
            upload, professional=professional, structure=structure, patient=patient
        )
    except ValueError as exc:
        # A code of the CDA header outside the DMP's value sets (the builders' ValueError): a
        # form error, not a server error.
        raise ValidationFailed([Problem(ErrorCode.INVALID, str(exc), "file")]) from exc


def _submission_from_upload(
    upload: Upload, *, professional: HealthProfessional, structure: Structure | None, patient: Patient
) -> SubmissionInput:
    author = _author(professional, structure)
    cda_patient = cda_patient_for(
        patient.identifier,
        family_name=patient.birth_family_name,
        given_names=patient.given_names,
        birth_date=patient.birth_date,
        sex=patient.sex,
    )
    replaces = {0: upload.replaces_entry_uuid} if upload.replaces_entry_uuid else None
    if upload.content.startswith(PDF_MAGIC):
        if not _looks_like_a_pdf(upload.content):
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.INVALID,
                        _("Ce fichier n'est pas un PDF complet (en-tête ou fin de fichier %%EOF manquant)."),
                        "file",
                    )
                ]
            )
        limit = settings.OPENDMP_MAX_DOCUMENT_BYTES
        if 4 * ((len(upload.content) + 2) // 3) + CDA_WRAPPER_ALLOWANCE > limit:
            # Refused before the base64 copy and the tree are built: the CDA that wraps a PDF
            # is a third larger than it, plus its header, and the limit applies to the CDA.
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.DOCUMENT_TOO_LARGE,
                        _(
                            "Intégré au document CDA, ce PDF dépasserait la taille maximale d'un "
                            "document du DMP (%(limit)s) : un PDF peut faire au plus %(pdf_limit)s."
                        )
                        % {
                            "limit": filesizeformat(limit),
                            "pdf_limit": filesizeformat((limit - CDA_WRAPPER_ALLOWANCE) * 3 // 4),
                        },
                        "file",
                    )
                ]
            )
        if not upload.title.strip():
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, _("Un titre est obligatoire pour un PDF."), "title")]
            )
        draft = DocumentDraft(
            type_code=upload.type_code,
            title=upload.title.strip(),
            pdf=upload.content,
            confidentiality=("N", *upload.visibility_codes),
            replaces_unique_id=upload.replaces_unique_id,
        )
        return submission_for(
            ins=patient.identifier, author=author, drafts=[draft], replaces=replaces, patient=cda_patient
        )
    header = extract_header(upload.content)  # hardened parse; raises ValidationFailed
    first = header.authors[0] if header.authors else None
    if first is not None and first.person_id:
        author = author_for(
            person_id=first.person_id,
            family_name=first.family_name or "INCONNU",
            given_name=first.given_name or "INCONNU",
            profession_code=author.profession_code,
            specialty_code=author.specialty_code,
            structure_id=first.structure_id or author.structure_id,
            structure_name=first.structure_name or author.structure_name,
            facility_type=header.facility_type.code if header.facility_type else author.facility_type,
            practice_setting=header.practice_setting.code if header.practice_setting else "AMBULATOIRE",
        )
    draft = DocumentDraft(
        content=upload.content,
        type_code=header.type_code.code,
        title=header.title or upload.title,
        unique_id=header.unique_id,
        creation_time=header.effective_time,
        format_code=header.format_code.code if header.format_code else None,
        confidentiality=(header.confidentiality.code or "N", *upload.visibility_codes),
    )
    submission = submission_for(
        ins=patient.identifier, author=author, drafts=[draft], replaces=replaces, patient=cda_patient
    )
    document = submission.documents[0].model_copy(
        update={
            "service_start_time": header.service_start or header.effective_time,
            "service_stop_time": header.service_stop or header.effective_time,
            "confidentiality_codes": confidentiality_values(draft.confidentiality),
        }
    )
    return submission.model_copy(update={"documents": (document,)})
