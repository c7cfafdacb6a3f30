"""The XDS/CDA test-data builder: coherent submissions from a few plain values.

Used by the tests, the demo population, the benchmarks and the vendor dev kit. Unless a
draft carries its own bytes, its content is a CI-SIS CDA built to agree with the XDS
metadata (same uniqueId, type, patient, author, facility, practice setting, dates), so the
submission passes the CDA ↔ metadata coherence checks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from dmp.cda.builder import (
    FORMAT_PDF,
    FORMAT_STRUCTURED,
    CdaAuthor,
    CdaDocumentSpec,
    CdaOrganization,
    CdaPatient,
    CdaSection,
    build_cda,
)
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


@dataclass(frozen=True)
class AuthorInfo:
    """An author, as both the XDS author slots and the CDA header describe it."""

    person_id: str
    family_name: str
    given_name: str
    profession_code: str = "10"
    specialty_code: str = "SM26"
    structure_id: str = ""
    structure_name: str = ""
    facility_type: str = "SA07"
    practice_setting: str = "AMBULATOIRE"

    def xds(self) -> Author:
        institutions = (f"{self.structure_name}^^^^^^^^^{self.structure_id}",) if self.structure_id else ()
        person = f"{self.person_id}^{self.family_name.upper()}^{self.given_name}^^^^^^&{PS_ID_SCHEME}&ISO"
        return Author(
            person=person if self.person_id else "",
            person_id=self.person_id,
            family_name=self.family_name,
            given_name=self.given_name,
            institutions=institutions,
            structure_id=self.structure_id,
            roles=(self.profession_code,),
            specialties=(f"G15_{self.profession_code}/{self.specialty_code}",) if self.specialty_code else (),
        )

    def cda(self) -> CdaAuthor:
        return CdaAuthor(
            national_id=self.person_id,
            family_name=self.family_name,
            given_name=self.given_name,
            profession_code=self.profession_code,
            specialty_code=self.specialty_code,
            organization=CdaOrganization(
                id_nat=self.structure_id,
                name=self.structure_name,
                facility_type_code=self.facility_type,
                practice_setting_code=self.practice_setting,
            ),
        )


def author_for(
    *,
    person_id: str,
    family_name: str,
    given_name: str,
    profession_code: str = "10",
    specialty_code: str = "SM26",
    structure_id: str = "",
    structure_name: str = "",
    facility_type: str = "SA07",
    practice_setting: str = "AMBULATOIRE",
) -> AuthorInfo:
    return AuthorInfo(
        person_id=person_id,
        family_name=family_name,
        given_name=given_name,
        profession_code=profession_code,
        specialty_code=specialty_code,
        structure_id=structure_id,
        structure_name=structure_name,
        facility_type=facility_type,
        practice_setting=practice_setting,
    )


@dataclass
class DocumentDraft:
    """One document to submit. Without `content`, a coherent CDA is generated."""

    content: bytes | None = None
    type_code: str = "11488-4"
    title: str = "Compte rendu de consultation"
    paragraphs: tuple[str, ...] = ("Examen clinique sans particularité.",)
    pdf: bytes | None = None  # level 1 body
    confidentiality: tuple[str, ...] = ("N",)
    unique_id: str = field(default_factory=new_unique_id)
    creation_time: dt.datetime | None = None
    format_code: str | None = None
    mime_type: str = "text/xml"
    declared_hash: str | None = None
    declared_size: int | None = None
    replaces_unique_id: str = ""
    sections: tuple[CdaSection, ...] = ()  # structured body; default: one section of `paragraphs`


def cda_patient_for(
    ins: Ins,
    *,
    family_name: str = "",
    given_names: str = "",
    birth_date: dt.date | None = None,
    sex: str = "U",
) -> CdaPatient:
    return CdaPatient(
        ins=ins.value,
        ins_root=ins.oid,
        family_name=family_name or "INCONNU",
        given_names=given_names or "INCONNU",
        birth_date=birth_date or dt.date(1970, 1, 1),
        sex=sex,
    )


def draft_content(
    draft: DocumentDraft, *, patient: CdaPatient, author: AuthorInfo, when: dt.datetime
) -> bytes:
    if draft.content is not None:
        return draft.content
    hl7_confidentiality = next((c for c in draft.confidentiality if c in {"N", "R", "V"}), "N")
    return build_cda(
        CdaDocumentSpec(
            id_root=draft.unique_id,
            type_code=draft.type_code,
            title=draft.title,
            effective_time=when,
            patient=patient,
            author=author.cda(),
            confidentiality=hl7_confidentiality,
            service_start=when,
            sections=()
            if draft.pdf
            else draft.sections or (CdaSection(title=draft.title, paragraphs=draft.paragraphs),),
            pdf=draft.pdf,
            replaces_id=draft.replaces_unique_id,
        )
    )


def confidentiality_values(codes: tuple[str, ...]) -> tuple[CodedValue, ...]:
    values = []
    for code in codes:
        system = (
            Confidentiality.DMP_SYSTEM if code in Confidentiality.DMP_CODES else Confidentiality.HL7_SYSTEM
        )
        found = value_set("confidentiality").get(code, system)
        values.append(CodedValue(code=code, scheme=system, display=found.display if found else ""))
    return tuple(values)


def document_input(
    draft: DocumentDraft, *, ins: Ins, author: AuthorInfo, symbolic_id: str, patient: CdaPatient | None = None
) -> DocumentInput:
    when = draft.creation_time or clock.now().replace(microsecond=0)
    content = draft_content(draft, patient=patient or cda_patient_for(ins), author=author, when=when)
    format_code = draft.format_code or (FORMAT_PDF if draft.pdf else FORMAT_STRUCTURED)
    return DocumentInput(
        entry_uuid=symbolic_id,
        unique_id=draft.unique_id,
        mime_type=draft.mime_type,
        content=content,
        declared_hash=draft.declared_hash,
        declared_size=draft.declared_size,
        class_code=coded("class_code", class_for_type(draft.type_code) or "10"),
        type_code=coded("type_code", draft.type_code),
        format_code=coded("format_code", format_code),
        healthcare_facility_type_code=coded("healthcare_facility_type", author.facility_type),
        practice_setting_code=coded("practice_setting", author.practice_setting),
        confidentiality_codes=confidentiality_values(draft.confidentiality),
        title=draft.title,
        creation_time=when,
        service_start_time=when,
        service_stop_time=when,
        patient_id=ins.hl7(),
        source_patient_id=ins.hl7(),
        authors=(author.xds(),),
    )


def submission_for(
    *,
    ins: Ins,
    author: AuthorInfo,
    drafts: list[DocumentDraft],
    replaces: dict[int, str] | None = None,
    patient: CdaPatient | None = None,
    source_id: str = f"{TEST_OID_ROOT}.0",
    content_type: str = "11",
) -> SubmissionInput:
    """A submission set with `drafts`; `replaces` maps a draft index to the entryUUID it replaces."""
    documents = tuple(
        document_input(draft, ins=ins, author=author, symbolic_id=f"Document{index:02d}", patient=patient)
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
            authors=(author.xds(),),
        ),
        documents=documents,
        associations=tuple(associations),
    )
