"""Typed XDS metadata: what channels parse SOAP (ebRIM) and FHIR (DocumentReference) into.

These are the only shapes the document services accept; they carry no ORM objects.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

_OID_RE = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_UNIQUE_ID_RE = re.compile(r"^[0-2](\.(0|[1-9]\d*))+(\^[A-Za-z0-9.\-_]{1,64})?$")


def is_oid(value: str) -> bool:
    return bool(_OID_RE.match(value)) and len(value) <= 64


def is_unique_id(value: str) -> bool:
    """XDS uniqueId: an OID, optionally `^extension` (DMP allows root^extension), <= 128 chars."""
    return bool(_UNIQUE_ID_RE.match(value)) and len(value) <= 128


class CodedValue(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    code: Annotated[str, Field(min_length=1, max_length=128)]
    scheme: Annotated[str, Field(max_length=64)] = ""
    display: Annotated[str, Field(max_length=256)] = ""


def person_display_name(family_name: str, given_name: str) -> str:
    """A person as the DMP writes an author's name: "FAMILY Given"."""
    return f"{family_name.upper()} {given_name}".strip()


class Author(BaseModel):
    """An XDS author: person (XCN), institutions (XON), roles, specialties, telecom."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    person: str = ""  # XCN, e.g. "810001234567^DUPONT^Jean^^^Dr^^^&1.2.250.1.71.4.2.1&ISO"
    person_id: str = ""  # PS_IdNat extracted from the XCN
    family_name: str = ""
    given_name: str = ""
    institutions: tuple[str, ...] = ()  # XON
    structure_id: str = ""  # Struct_IdNat of the first institution
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecom: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return person_display_name(self.family_name, self.given_name)


class DocumentInput(BaseModel):
    """One DocumentEntry of a submission, with its bytes."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    entry_uuid: str  # symbolic ("Document01") or urn:uuid
    unique_id: str
    mime_type: str
    content: bytes = Field(repr=False)
    declared_hash: str | None = None  # SHA-1 hex, if the submitter sent one
    declared_size: int | None = None
    class_code: CodedValue
    type_code: CodedValue
    format_code: CodedValue
    healthcare_facility_type_code: CodedValue
    practice_setting_code: CodedValue
    confidentiality_codes: tuple[CodedValue, ...] = ()
    event_codes: tuple[CodedValue, ...] = ()
    title: str = ""
    comments: str = ""
    language_code: str = "fr-FR"
    creation_time: dt.datetime
    service_start_time: dt.datetime | None = None
    service_stop_time: dt.datetime | None = None
    patient_id: str  # CX: INS^^^&OID&ISO
    source_patient_id: str = ""
    source_patient_info: tuple[str, ...] = ()
    legal_authenticator: str = ""
    reference_ids: tuple[str, ...] = ()
    authors: tuple[Author, ...] = ()

    @field_validator("declared_hash")
    @classmethod
    def _lower_hash(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class SubmissionSetInput(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    entry_uuid: str
    unique_id: str
    source_id: str
    submission_time: dt.datetime
    content_type_code: CodedValue
    patient_id: str
    authors: tuple[Author, ...] = ()
    intended_recipients: tuple[str, ...] = ()
    title: str = ""
    comments: str = ""


class FolderInput(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    entry_uuid: str
    unique_id: str
    patient_id: str
    title: str = ""
    comments: str = ""
    codes: tuple[CodedValue, ...] = ()


class AssociationInput(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    entry_uuid: str
    association_type: str
    source: str  # entryUUID or symbolic id
    target: str
    submission_set_status: str = ""  # Original / Reference (HasMember from the submission set)


class SubmissionInput(BaseModel):
    """A Provide and Register submission (ITI-41 / ITI-65): all or nothing."""

    model_config = ConfigDict(frozen=True)

    submission_set: SubmissionSetInput
    documents: tuple[DocumentInput, ...] = ()
    folders: tuple[FolderInput, ...] = ()
    associations: tuple[AssociationInput, ...] = ()


class SubmissionSignature(BaseModel):
    """The verified signature of a submission set (XAdES, from the XDS channel), kept as its proof."""

    model_config = ConfigDict(frozen=True)

    content: bytes = Field(repr=False)
    unique_id: str  # of the signature document
    signer_fingerprint: str  # SHA-256 of the signing certificate, registered to the submitter
    signed_at: dt.datetime


class ConfidentialityChange(BaseModel):
    """A TD3.3a/b change: set or clear one DMP confidentiality flag."""

    model_config = ConfigDict(frozen=True)

    code: str  # MASQUE_PS / INVISIBLE_PATIENT / INVISIBLE_REPRESENTANTS_LEGAUX
    enabled: bool
