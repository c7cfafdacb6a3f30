"""The access decision point: one pure function over plain data, deny by default.

`decide()` answers, for an actor, an action, an access mode, the facts of a record and (for
document actions) the facts of a document: allowed or not, and why. It performs no I/O, so
it is exhaustively tested against an independent model (see tests/test_policy_model.py).

Every channel (SOAP, FHIR, portals) loads facts and calls this function through the choke
points in `dmp.records.access` and `dmp.documents.access`; nothing else decides.

Rules (DMP 2010, see docs/architecture/access-control.md):
* A patient acts on their own record; a legal representative on a minor's record.
* Professionals: consultation needs a valid authorisation (PS or its structure) in normal
  mode; `bris_de_glace` (CPS only, reason required) and `centre_15` (regulator only) bypass
  the authorisation unless the patient opposed them. A blocked PS or structure gets nothing,
  in any mode, except the TD0.2 answer that says it is blocked.
* Feeding needs no authorisation, only the habilitation matrix (profession × document type).
* MASQUE_PS documents are visible only to the patient, the authors and the médecin traitant.
* INVISIBLE_PATIENT documents are hidden from the patient and the legal representatives;
  INVISIBLE_REPRESENTANTS_LEGAUX from the legal representatives.
* Deleted documents are visible to nobody; a closed record is readable only by its patient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from dmp.access.actors import AccessMode, Actor, ActorKind, AuthenticationMode, Profession


class Action(StrEnum):
    RECORD_TEST = "record_test"  # TD0.2
    RECORD_CREATE = "record_create"  # TD1.1
    RECORD_REACTIVATE = "record_reactivate"  # TD1.2
    RECORD_CLOSE = "record_close"
    RECORD_READ_ADMIN = "record_read_admin"
    RECORD_UPDATE_ADMIN = "record_update_admin"
    RECORD_LIST_DOCUMENTS = "record_list_documents"  # TD3.1
    RECORD_EXPORT = "record_export"
    WEB_ACCOUNT_CREATE = "web_account_create"  # TD1.5
    AUTHORISATION_SELF = "authorisation_self"  # TD0.3 add/remove own authorisation
    AUTHORISATION_MANAGE = "authorisation_manage"  # grant/block others
    AUTHORISATIONS_READ = "authorisations_read"  # who is authorised, blocked, médecin traitant
    MEDECIN_TRAITANT_DECLARE = "medecin_traitant_declare"  # TD0.3 role MEDECIN_TRAITANT
    TRACES_READ = "traces_read"
    EXPRESSION_READ = "expression_read"
    EXPRESSION_WRITE = "expression_write"
    DOCUMENT_READ = "document_read"  # metadata and content (TD3.1 / TD3.2)
    DOCUMENT_PUBLISH = "document_publish"  # TD2.1
    DOCUMENT_REPLACE = "document_replace"  # TD2.2, checked on the replaced document
    DOCUMENT_DELETE = "document_delete"  # TD3.3c
    DOCUMENT_ARCHIVE = "document_archive"  # TD3.3d
    DOCUMENT_MASK = "document_mask"  # TD3.3a
    DOCUMENT_SET_VISIBILITY = "document_set_visibility"  # TD3.3b
    METADATA_REMOVE = "metadata_remove"  # ITI-62, operator only


READ_ACTIONS = frozenset(
    {
        Action.RECORD_TEST,
        Action.RECORD_READ_ADMIN,
        Action.RECORD_LIST_DOCUMENTS,
        Action.DOCUMENT_READ,
        Action.EXPRESSION_READ,
    }
)
DOCUMENT_ACTIONS = frozenset(
    {
        Action.DOCUMENT_READ,
        Action.DOCUMENT_PUBLISH,
        Action.DOCUMENT_REPLACE,
        Action.DOCUMENT_DELETE,
        Action.DOCUMENT_ARCHIVE,
        Action.DOCUMENT_MASK,
        Action.DOCUMENT_SET_VISIBILITY,
        Action.METADATA_REMOVE,
    }
)


class RecordStatus(StrEnum):
    ACTIVE = "ACTIF"
    CLOSED = "FERME"


class AuthorisationStatus(StrEnum):
    """TD0.2 authorisation status of the caller."""

    NONE = "NON_EXISTE"
    VALID = "VALIDE"
    BLOCKED = "INTERDIT"
    EXPIRED = "EXPIRE"


class DocumentStatus(StrEnum):
    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
    DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


PATIENT_AUTHORED_CLASS = "90"


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the policy needs to know about a record, relative to the actor."""

    status: RecordStatus
    opposes_break_glass: bool = False
    opposes_centre_15: bool = False
    patient_is_minor: bool = False
    actor_is_holder: bool = False
    actor_is_legal_representative: bool = False
    professional_authorisation: AuthorisationStatus = AuthorisationStatus.NONE
    structure_authorisation: AuthorisationStatus = AuthorisationStatus.NONE
    actor_is_medecin_traitant: bool = False


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    status: DocumentStatus
    class_code: str
    type_code: str
    masked_to_professionals: bool = False
    invisible_to_patient: bool = False
    invisible_to_legal_representatives: bool = False
    author_person_ids: frozenset[str] = field(default_factory=frozenset)
    author_structure_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_patient_authored(self) -> bool:
        return self.class_code == PATIENT_AUTHORED_CLASS


class HabilitationMatrix(Protocol):
    def can_read(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool: ...

    def can_write(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AccessRequest:
    actor: Actor
    action: Action
    mode: AccessMode = AccessMode.NORMAL
    reason: str = ""
    record: RecordFacts | None = None
    document: DocumentFacts | None = None


class Reason(StrEnum):
    # allow
    HOLDER = "holder"
    LEGAL_REPRESENTATIVE = "legal_representative"
    AUTHORISED = "authorised"
    AUTHOR = "author"
    MEDECIN_TRAITANT = "medecin_traitant"
    BREAK_GLASS = "break_glass"
    CENTRE_15 = "centre_15"
    MATRIX_WRITE = "matrix_write"
    PUBLIC_STATUS = "status_only"
    STAFF = "staff"
    # deny
    DEFAULT_DENY = "default_deny"
    NO_RECORD = "no_record"
    RECORD_CLOSED = "record_closed"
    NOT_HOLDER = "not_holder"
    NOT_MINOR = "patient_not_minor"
    BLOCKED = "blocked"
    NOT_AUTHORISED = "not_authorised"
    AUTHORISATION_EXPIRED = "authorisation_expired"
    BREAK_GLASS_OPPOSED = "break_glass_opposed"
    CENTRE_15_OPPOSED = "centre_15_opposed"
    BREAK_GLASS_REQUIRES_CPS = "break_glass_requires_cps"
    REASON_REQUIRED = "reason_required"
    NOT_REGULATOR = "not_regulator"
    MODE_NOT_ALLOWED = "mode_not_allowed"
    READ_ONLY_MODE = "read_only_mode"
    MASKED = "masked"
    INVISIBLE_TO_PATIENT = "invisible_to_patient"
    INVISIBLE_TO_LEGAL_REPRESENTATIVES = "invisible_to_legal_representatives"
    DELETED = "deleted"
    MATRIX = "habilitation_matrix"
    NOT_AUTHOR = "not_author"
    NOT_MEDECIN = "not_medecin"
    NOT_MEDECIN_TRAITANT = "not_medecin_traitant"
    PATIENT_AUTHORED_ONLY = "patient_authored_only"
    NOT_CURRENT = "document_not_current"
    NO_DOCUMENT = "no_document"
    SECRET_CONNECTION = "secret_connection"  # noqa: S105 - a reason code, not a credential


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    # The caller sees a document hidden from the patient: the UI must warn (EX_3.2-1025).
    alert_invisible_to_patient: bool = False
    # Exceptional access the patient must be told about (break-glass, Centre 15).
    notify_patient: bool = False

    def __bool__(self) -> bool:
        return self.allowed


def _deny(reason: Reason) -> Decision:
    return Decision(False, reason)


def _allow(reason: Reason, **flags: bool) -> Decision:
    return Decision(True, reason, **flags)


def decide(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    """Allow or deny `request`, with the reason. Anything not explicitly allowed is denied."""
    mode_problem = _check_mode(request)
    if mode_problem is not None:
        return mode_problem
    if request.action in DOCUMENT_ACTIONS and request.document is None:
        return _deny(Reason.NO_DOCUMENT)
    handler = _HANDLERS.get(request.actor.kind)
    if handler is None:
        return _deny(Reason.DEFAULT_DENY)
    return handler(request, matrix)


def _check_mode(request: AccessRequest) -> Decision | None:
    actor, mode = request.actor, request.mode
    if mode is AccessMode.NORMAL:
        return None
    if actor.kind is not ActorKind.PROFESSIONAL:
        return _deny(Reason.MODE_NOT_ALLOWED)
    if request.action not in READ_ACTIONS:
        return _deny(Reason.READ_ONLY_MODE)
    if mode is AccessMode.BREAK_GLASS:
        if actor.authentication is not AuthenticationMode.DIRECT:
            return _deny(Reason.BREAK_GLASS_REQUIRES_CPS)
        if not request.reason.strip():
            return _deny(Reason.REASON_REQUIRED)
    if mode is AccessMode.CENTRE_15 and not actor.is_emergency_regulator:
        return _deny(Reason.NOT_REGULATOR)
    return None


# --- patient side -------------------------------------------------------------------------

_PATIENT_ALLOWED = frozenset(
    {
        Action.RECORD_TEST,
        Action.RECORD_READ_ADMIN,
        Action.RECORD_UPDATE_ADMIN,
        Action.RECORD_LIST_DOCUMENTS,
        Action.RECORD_EXPORT,
        Action.RECORD_CLOSE,
        Action.AUTHORISATION_MANAGE,
        Action.AUTHORISATIONS_READ,
        Action.TRACES_READ,
        Action.EXPRESSION_READ,
        Action.EXPRESSION_WRITE,
        Action.DOCUMENT_READ,
        Action.DOCUMENT_PUBLISH,
        Action.DOCUMENT_DELETE,
        Action.DOCUMENT_MASK,
    }
)
# What a minor's legal representatives see and can undo: not to be changed in secret connection.
_SHARED_WITH_REPRESENTATIVES = frozenset(
    {
        Action.AUTHORISATION_MANAGE,
        Action.EXPRESSION_WRITE,
        Action.RECORD_UPDATE_ADMIN,
        Action.RECORD_CLOSE,
    }
)
# What the patient may still do once the record is closed: read it and take it away.
_PATIENT_ALLOWED_WHEN_CLOSED = frozenset(
    {
        Action.RECORD_TEST,
        Action.RECORD_READ_ADMIN,
        Action.RECORD_LIST_DOCUMENTS,
        Action.RECORD_EXPORT,
        Action.AUTHORISATIONS_READ,
        Action.TRACES_READ,
        Action.EXPRESSION_READ,
        Action.DOCUMENT_READ,
    }
)


def _decide_patient_side(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    record = request.record
    if record is None:
        return _deny(Reason.NO_RECORD)
    is_representative = request.actor.kind is ActorKind.LEGAL_REPRESENTATIVE
    if is_representative:
        if not record.actor_is_legal_representative:
            return _deny(Reason.NOT_HOLDER)
        if not record.patient_is_minor:
            return _deny(Reason.NOT_MINOR)
        granted = Reason.LEGAL_REPRESENTATIVE
    else:
        if not record.actor_is_holder:
            return _deny(Reason.NOT_HOLDER)
        granted = Reason.HOLDER
    action = request.action
    if action not in _PATIENT_ALLOWED:
        return _deny(Reason.DEFAULT_DENY)
    if record.status is RecordStatus.CLOSED and action not in _PATIENT_ALLOWED_WHEN_CLOSED:
        return _deny(Reason.RECORD_CLOSED)
    if request.actor.secret_connection and action in _SHARED_WITH_REPRESENTATIVES:
        # The secret connection hides the documents it adds from the legal representatives;
        # these settings they read and change, so the minor does not change them in secret.
        return _deny(Reason.SECRET_CONNECTION)
    document = request.document
    if document is None:
        return _allow(granted)
    if document.status is DocumentStatus.DELETED:
        return _deny(Reason.DELETED)
    if document.invisible_to_patient:
        return _deny(Reason.INVISIBLE_TO_PATIENT)
    if is_representative and document.invisible_to_legal_representatives:
        return _deny(Reason.INVISIBLE_TO_LEGAL_REPRESENTATIVES)
    if action in {Action.DOCUMENT_PUBLISH, Action.DOCUMENT_DELETE} and not document.is_patient_authored:
        return _deny(Reason.PATIENT_AUTHORED_ONLY)
    if action is Action.DOCUMENT_MASK and document.status is DocumentStatus.DEPRECATED:
        return _deny(Reason.NOT_CURRENT)
    return _allow(granted)


# --- professional side --------------------------------------------------------------------


def _professional_access(request: AccessRequest, record: RecordFacts) -> Decision:
    """Record-level consultation right of a professional in the requested mode."""
    if request.mode is AccessMode.BREAK_GLASS:
        if record.opposes_break_glass:
            return _deny(Reason.BREAK_GLASS_OPPOSED)
        return _allow(Reason.BREAK_GLASS, notify_patient=True)
    if request.mode is AccessMode.CENTRE_15:
        if record.opposes_centre_15:
            return _deny(Reason.CENTRE_15_OPPOSED)
        return _allow(Reason.CENTRE_15, notify_patient=True)
    statuses = {record.professional_authorisation, record.structure_authorisation}
    if AuthorisationStatus.VALID in statuses:
        return _allow(Reason.MEDECIN_TRAITANT if record.actor_is_medecin_traitant else Reason.AUTHORISED)
    if AuthorisationStatus.EXPIRED in statuses:
        return _deny(Reason.AUTHORISATION_EXPIRED)
    return _deny(Reason.NOT_AUTHORISED)


def _is_author(actor: Actor, document: DocumentFacts) -> bool:
    if actor.person_id and actor.person_id in document.author_person_ids:
        return True
    # In indirect mode the structure feeds on behalf of its staff and answers for its documents.
    return (
        actor.authentication is not AuthenticationMode.DIRECT
        and bool(actor.structure_id)
        and actor.structure_id in document.author_structure_ids
    )


def _decide_professional(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    action, record = request.action, request.record
    if record is None:
        if action in {Action.RECORD_TEST, Action.RECORD_CREATE}:
            return _allow(Reason.PUBLIC_STATUS)
        return _deny(Reason.NO_RECORD)
    if action is Action.RECORD_TEST:
        # TD0.2 always answers, telling a blocked PS that it is blocked.
        return _allow(Reason.PUBLIC_STATUS)
    if AuthorisationStatus.BLOCKED in {record.professional_authorisation, record.structure_authorisation}:
        return _deny(Reason.BLOCKED)
    if record.status is RecordStatus.CLOSED:
        if action is Action.RECORD_REACTIVATE:
            return _allow(Reason.PUBLIC_STATUS)
        return _deny(Reason.RECORD_CLOSED)
    document = request.document
    if document is not None:
        return _decide_professional_document(request, record, document, matrix)
    return _decide_professional_record(request, record)


def _decide_professional_record(request: AccessRequest, record: RecordFacts) -> Decision:
    action = request.action
    if action in {Action.RECORD_CREATE, Action.RECORD_REACTIVATE}:
        return _deny(Reason.DEFAULT_DENY)  # the record exists and is active
    if action is Action.AUTHORISATION_SELF:
        return _allow(Reason.PUBLIC_STATUS)
    if action in {Action.AUTHORISATION_MANAGE, Action.AUTHORISATIONS_READ}:
        if record.actor_is_medecin_traitant:
            return _allow(Reason.MEDECIN_TRAITANT)
        return _deny(Reason.NOT_MEDECIN_TRAITANT)
    if action in READ_ACTIONS:
        return _professional_access(request, record)
    if action in {
        Action.RECORD_UPDATE_ADMIN,
        Action.RECORD_CLOSE,
        Action.WEB_ACCOUNT_CREATE,
        Action.MEDECIN_TRAITANT_DECLARE,
    }:
        access = _professional_access(request, record)
        if not access:
            return access
        if action is Action.MEDECIN_TRAITANT_DECLARE and request.actor.profession_code != Profession.MEDECIN:
            return _deny(Reason.NOT_MEDECIN)
        return access
    return _deny(Reason.DEFAULT_DENY)


def _decide_professional_document(
    request: AccessRequest, record: RecordFacts, document: DocumentFacts, matrix: HabilitationMatrix
) -> Decision:
    actor, action = request.actor, request.action
    profession, specialty = actor.profession_code, actor.specialty_code
    if document.status is DocumentStatus.DELETED:
        return _deny(Reason.DELETED)
    is_author = _is_author(actor, document)

    if action is Action.DOCUMENT_PUBLISH:
        if document.is_patient_authored:
            return _deny(Reason.PATIENT_AUTHORED_ONLY)
        if not matrix.can_write(profession, specialty, document.class_code, document.type_code):
            return _deny(Reason.MATRIX)
        return _allow(Reason.MATRIX_WRITE)

    if action in {Action.DOCUMENT_REPLACE, Action.DOCUMENT_DELETE}:
        if not is_author:
            return _deny(Reason.NOT_AUTHOR)
        if document.status is DocumentStatus.DEPRECATED:
            return _deny(Reason.NOT_CURRENT)
        if action is Action.DOCUMENT_REPLACE and not matrix.can_write(
            profession, specialty, document.class_code, document.type_code
        ):
            return _deny(Reason.MATRIX)
        return _allow(Reason.AUTHOR)

    # Everything else starts from the right to see the document.
    visible = _professional_can_see(request, record, document, matrix, is_author=is_author)
    if not visible or action is Action.DOCUMENT_READ:
        return visible
    if document.status is DocumentStatus.DEPRECATED:
        return _deny(Reason.NOT_CURRENT)
    if action is Action.DOCUMENT_ARCHIVE:
        if is_author or record.actor_is_medecin_traitant:
            return visible
        return _deny(Reason.NOT_AUTHOR)
    if action in {Action.DOCUMENT_MASK, Action.DOCUMENT_SET_VISIBILITY}:
        return visible
    return _deny(Reason.DEFAULT_DENY)


def _professional_can_see(
    request: AccessRequest,
    record: RecordFacts,
    document: DocumentFacts,
    matrix: HabilitationMatrix,
    *,
    is_author: bool,
) -> Decision:
    actor = request.actor
    alert = document.invisible_to_patient
    if is_author:
        return _allow(Reason.AUTHOR, alert_invisible_to_patient=alert)
    access = _professional_access(request, record)
    if not access:
        return access
    if document.masked_to_professionals and not record.actor_is_medecin_traitant:
        return _deny(Reason.MASKED)
    if not matrix.can_read(
        actor.profession_code, actor.specialty_code, document.class_code, document.type_code
    ):
        return _deny(Reason.MATRIX)
    return Decision(
        True, access.reason, alert_invisible_to_patient=alert, notify_patient=access.notify_patient
    )


# --- staff and systems --------------------------------------------------------------------


def _decide_helpdesk(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    # The helpdesk confirms a record's existence and identity to help a caller; never content.
    if request.action in {Action.RECORD_TEST, Action.RECORD_READ_ADMIN} and request.document is None:
        return _allow(Reason.STAFF)
    return _deny(Reason.DEFAULT_DENY)


def _decide_operator(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    if request.action in {Action.RECORD_TEST, Action.TRACES_READ} and request.document is None:
        return _allow(Reason.STAFF)
    if request.action is Action.METADATA_REMOVE and request.document is not None:
        return _allow(Reason.STAFF)
    return _deny(Reason.DEFAULT_DENY)


def _decide_system(request: AccessRequest, matrix: HabilitationMatrix) -> Decision:
    # External sources only feed documents the matrix lets their pseudo-profession write.
    record, document = request.record, request.document
    if request.action is not Action.DOCUMENT_PUBLISH or record is None or document is None:
        return _deny(Reason.DEFAULT_DENY)
    if record.status is not RecordStatus.ACTIVE:
        return _deny(Reason.RECORD_CLOSED)
    actor = request.actor
    if not matrix.can_write(
        actor.profession_code, actor.specialty_code, document.class_code, document.type_code
    ):
        return _deny(Reason.MATRIX)
    return _allow(Reason.MATRIX_WRITE)


_HANDLERS: dict[ActorKind, Callable[[AccessRequest, HabilitationMatrix], Decision]] = {
    ActorKind.PATIENT: _decide_patient_side,
    ActorKind.LEGAL_REPRESENTATIVE: _decide_patient_side,
    ActorKind.PROFESSIONAL: _decide_professional,
    ActorKind.HELPDESK: _decide_helpdesk,
    ActorKind.OPERATOR: _decide_operator,
    ActorKind.SYSTEM: _decide_system,
}
