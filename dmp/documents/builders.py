"""Building XDS submissions from a few plain values: for tests, demo data, benchmarks, dev kit.

Codes default to a consultation report (CR de consultation) from a private practice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from dmp.common import clock
from dmp.documents.metadata import (
    AssociationInput,
    Author,
    CodedValue,
    DocumentInput,
    SubmissionInput,
    SubmissionSetInput,
)
from dmp.documents.models import AssociationType, Confidentiality
from dmp.identity.ins import Ins
from dmp.terminology import class_for_type, value_set

# Root under which generated uniqueIds are minted (a test/demo OID arc).
TEST_OID_ROOT = "1.2.250.1.999.1"
PS_ID_SCHEME = "1.2.250.1.71.4.2.1"


def new_unique_id() -> str:
    return f"{TEST_OID_ROOT}.{uuid.uuid4().int}"[:64]


def coded(value_set_name: str, code: str) -> CodedValue:
    found = value_set(value_set_name).get(code)
    if found is None:
        raise ValueError(f"{code} is not in {value_set_name}")
    return CodedValue(code=found.code, scheme=found.system, display=found.display)


def author_for(
    *,
    person_id: str,
    family_name: str,
    given_name: str,
    profession_code: str = "10",
    specialty_code: str = "SM26",
    structure_id: str = "",
    structure_name: str = "",
) -> Author:
    institutions = (f"{structure_name}^^^^^^^^^{structure_id}",) if structure_id else ()
    return Author(
        person=f"{person_id}^{family_name.upper()}^{given_name}^^^^^^&{PS_ID_SCHEME}&ISO",
        person_id=person_id,
        family_name=family_name,
        given_name=given_name,
        institutions=institutions,
        structure_id=structure_id,
        roles=(profession_code,),
        specialties=(specialty_code,) if specialty_code else (),
    )


@dataclass
class DocumentDraft:
    content: bytes
    type_code: str = "11488-4"
    title: str = "Compte rendu de consultation"
    format_code: str = "urn:ihe:iti:xds-sd:text:2008"
    facility_type: str = "SA07"
    practice_setting: str = "AMBULATOIRE"
    confidentiality: tuple[str, ...] = ("N",)
    unique_id: str = field(default_factory=new_unique_id)
    creation_time: dt.datetime | None = None
    mime_type: str = "text/xml"
    declared_hash: str | None = None
    declared_size: int | None = None


def confidentiality_values(codes: tuple[str, ...]) -> tuple[CodedValue, ...]:
    values = []
    for code in codes:
        system = (
            Confidentiality.DMP_SYSTEM if code in Confidentiality.DMP_CODES else Confidentiality.HL7_SYSTEM
        )
        found = value_set("confidentiality").get(code, system)
        values.append(CodedValue(code=code, scheme=system, display=found.display if found else ""))
    return tuple(values)


def document_input(draft: DocumentDraft, *, ins: Ins, author: Author, symbolic_id: str) -> DocumentInput:
    class_code = class_for_type(draft.type_code) or "10"
    type_value = coded("type_code", draft.type_code)
    return DocumentInput(
        entry_uuid=symbolic_id,
        unique_id=draft.unique_id,
        mime_type=draft.mime_type,
        content=draft.content,
        declared_hash=draft.declared_hash,
        declared_size=draft.declared_size,
        class_code=coded("class_code", class_code),
        type_code=type_value,
        format_code=coded("format_code", draft.format_code),
        healthcare_facility_type_code=coded("healthcare_facility_type", draft.facility_type),
        practice_setting_code=coded("practice_setting", draft.practice_setting),
        confidentiality_codes=confidentiality_values(draft.confidentiality),
        title=draft.title,
        creation_time=draft.creation_time or clock.now().replace(microsecond=0),
        patient_id=ins.hl7(),
        source_patient_id=ins.hl7(),
        authors=(author,),
    )


def submission_for(
    *,
    ins: Ins,
    author: Author,
    drafts: list[DocumentDraft],
    replaces: dict[int, str] | None = None,
    source_id: str = f"{TEST_OID_ROOT}.0",
    content_type: str = "11",
) -> SubmissionInput:
    """A submission set with `drafts`; `replaces` maps a draft index to the entryUUID it replaces."""
    documents = tuple(
        document_input(draft, ins=ins, author=author, symbolic_id=f"Document{index:02d}")
        for index, draft in enumerate(drafts)
    )
    associations = [
        AssociationInput(
            entry_uuid=f"HasMember{index:02d}",
            association_type=AssociationType.HAS_MEMBER,
            source="SubmissionSet01",
            target=document.entry_uuid,
            submission_set_status="Original",
        )
        for index, document in enumerate(documents)
    ]
    associations += [
        AssociationInput(
            entry_uuid=f"Replace{index:02d}",
            association_type=AssociationType.REPLACE,
            source=documents[index].entry_uuid,
            target=target,
        )
        for index, target in (replaces or {}).items()
    ]
    return SubmissionInput(
        submission_set=SubmissionSetInput(
            entry_uuid="SubmissionSet01",
            unique_id=new_unique_id(),
            source_id=source_id,
            submission_time=clock.now().replace(microsecond=0),
            content_type_code=coded("content_type", content_type),
            patient_id=ins.hl7(),
            authors=(author,),
        ),
        documents=documents,
        associations=tuple(associations),
    )
