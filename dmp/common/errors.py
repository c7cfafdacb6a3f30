"""Domain errors shared by every bounded context.

Channels translate these into their own error shapes (SOAP fault / RegistryError,
FHIR OperationOutcome, form errors). A domain error always means nothing was changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    INVALID_INS = "invalid_ins"
    DUPLICATE_UNIQUE_ID = "duplicate_unique_id"
    NON_IDENTICAL_HASH = "non_identical_hash"
    NON_IDENTICAL_SIZE = "non_identical_size"
    UNKNOWN_PATIENT = "unknown_patient"
    PATIENT_ID_MISMATCH = "patient_id_mismatch"
    RECORD_EXISTS = "record_exists"
    RECORD_CLOSED = "record_closed"
    CONSENT_REQUIRED = "consent_required"
    REASON_REQUIRED = "reason_required"
    UNSUPPORTED = "unsupported"
    CONFLICT = "conflict"
    INTEGRITY = "integrity"
    DOCUMENT_TOO_LARGE = "document_too_large"
    FORBIDDEN = "forbidden"
    UNRESOLVED_REFERENCE = "unresolved_reference"
    PARAM_NUMBER = "param_number"  # a required query parameter missing, a single-valued one repeated


@dataclass(frozen=True)
class Problem:
    """One precise problem with an input: what is wrong and where."""

    code: ErrorCode
    message: str
    location: str = ""


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID

    def __init__(self, message: str, *, code: ErrorCode | None = None, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.location = location

    @property
    def problems(self) -> list[Problem]:
        return [Problem(self.code, self.message, self.location)]


class NotFound(DomainError):
    """Raised for missing AND for forbidden objects, so that existence never leaks."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, message: str = "not found") -> None:
        super().__init__(message)


class Forbidden(DomainError):
    """A write the caller may not perform on a record whose existence it already knows."""

    code = ErrorCode.FORBIDDEN


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class IntegrityError(DomainError):
    """Stored bytes do not match their recorded hash or size: never served."""

    code = ErrorCode.INTEGRITY


class ValidationFailed(DomainError):
    """One or more problems with an input; carries each of them."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            problems = [Problem(ErrorCode.INVALID, "invalid input")]
        super().__init__("; ".join(p.message for p in problems), code=problems[0].code)
        self._problems = list(problems)

    @property
    def problems(self) -> list[Problem]:
        return list(self._problems)
