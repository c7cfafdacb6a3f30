"""The access decision point against an independent model of the DMP rules.

`allowed_by_the_rules` restates the rules of the brief (DMP 2010) as flat conditions, written
without looking at how `decide()` is structured. Hypothesis draws actors, actions, modes,
record and document states and habilitation matrices; both must agree on every draw, and
every decision must carry a reason of the right kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from dmp.access.actors import AccessMode, Actor, ActorKind, AuthenticationMode
from dmp.access.policy import (
    AccessRequest,
    Action,
    AuthorisationStatus,
    Decision,
    DocumentFacts,
    DocumentStatus,
    Reason,
    RecordFacts,
    RecordStatus,
    decide,
)

A = Action
READS = {A.RECORD_TEST, A.RECORD_READ_ADMIN, A.RECORD_LIST_DOCUMENTS, A.DOCUMENT_READ, A.EXPRESSION_READ}
ON_DOCUMENTS = {
    A.DOCUMENT_READ,
    A.DOCUMENT_PUBLISH,
    A.DOCUMENT_REPLACE,
    A.DOCUMENT_DELETE,
    A.DOCUMENT_ARCHIVE,
    A.DOCUMENT_MASK,
    A.DOCUMENT_SET_VISIBILITY,
    A.METADATA_REMOVE,
}
PATIENT_MAY = {
    A.RECORD_TEST,
    A.RECORD_READ_ADMIN,
    A.RECORD_UPDATE_ADMIN,
    A.RECORD_LIST_DOCUMENTS,
    A.RECORD_EXPORT,
    A.RECORD_CLOSE,
    A.AUTHORISATION_MANAGE,
    A.AUTHORISATIONS_READ,
    A.TRACES_READ,
    A.EXPRESSION_READ,
    A.EXPRESSION_WRITE,
    A.DOCUMENT_READ,
    A.DOCUMENT_PUBLISH,
    A.DOCUMENT_DELETE,
    A.DOCUMENT_MASK,
}
# A closed record stays readable and exportable by its patient, nothing else.
PATIENT_MAY_WHEN_CLOSED = {
    A.RECORD_TEST,
    A.RECORD_READ_ADMIN,
    A.RECORD_LIST_DOCUMENTS,
    A.RECORD_EXPORT,
    A.AUTHORISATIONS_READ,
    A.TRACES_READ,
    A.EXPRESSION_READ,
    A.DOCUMENT_READ,
}
ALLOW_REASONS = {
    Reason.HOLDER,
    Reason.LEGAL_REPRESENTATIVE,
    Reason.AUTHORISED,
    Reason.AUTHOR,
    Reason.MEDECIN_TRAITANT,
    Reason.BREAK_GLASS,
    Reason.CENTRE_15,
    Reason.MATRIX_WRITE,
    Reason.PUBLIC_STATUS,
    Reason.STAFF,
}


@dataclass(frozen=True)
class SmallMatrix:
    """A habilitation matrix as two sets of (profession, class code) pairs."""

    reads: frozenset[tuple[str, str]]
    writes: frozenset[tuple[str, str]]

    def can_read(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool:
        return (profession, class_code) in self.reads

    def can_write(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool:
        return (profession, class_code) in self.writes


def allowed_by_the_rules(request: AccessRequest, matrix: SmallMatrix) -> bool:
    actor, action, record, document = request.actor, request.action, request.record, request.document
    kind = actor.kind
    # Exceptional modes: professionals only, reading only; break-glass with a CPS and a reason,
    # Centre 15 for SAMU regulators.
    if request.mode is not AccessMode.NORMAL:
        if kind is not ActorKind.PROFESSIONAL or action not in READS:
            return False
        if request.mode is AccessMode.BREAK_GLASS and (
            actor.authentication is not AuthenticationMode.DIRECT or not request.reason.strip()
        ):
            return False
        if request.mode is AccessMode.CENTRE_15 and not actor.is_emergency_regulator:
            return False
    if action in ON_DOCUMENTS and document is None:
        return False

    if kind in {ActorKind.PATIENT, ActorKind.LEGAL_REPRESENTATIVE}:
        if record is None:
            return False
        if kind is ActorKind.PATIENT and not record.actor_is_holder:
            return False
        if kind is ActorKind.LEGAL_REPRESENTATIVE and not (
            record.actor_is_legal_representative and record.patient_is_minor
        ):
            return False
        permitted = PATIENT_MAY if record.status is RecordStatus.ACTIVE else PATIENT_MAY_WHEN_CLOSED
        if action not in permitted:
            return False
        if document is None:
            return True
        hidden = (
            document.status is DocumentStatus.DELETED
            or document.invisible_to_patient
            or (kind is ActorKind.LEGAL_REPRESENTATIVE and document.invisible_to_legal_representatives)
        )
        own_document = document.class_code == "90"
        return not (
            hidden
            or (action in {A.DOCUMENT_PUBLISH, A.DOCUMENT_DELETE} and not own_document)
            or (action is A.DOCUMENT_MASK and document.status is DocumentStatus.DEPRECATED)
        )

    if kind is ActorKind.PROFESSIONAL:
        if action is A.RECORD_TEST:
            return True
        if record is None:
            return action is A.RECORD_CREATE
        if AuthorisationStatus.BLOCKED in {record.professional_authorisation, record.structure_authorisation}:
            return False
        if record.status is RecordStatus.CLOSED:
            return action is A.RECORD_REACTIVATE
        may_consult = (
            (request.mode is AccessMode.BREAK_GLASS and not record.opposes_break_glass)
            or (request.mode is AccessMode.CENTRE_15 and not record.opposes_centre_15)
            or (
                request.mode is AccessMode.NORMAL
                and AuthorisationStatus.VALID
                in {record.professional_authorisation, record.structure_authorisation}
            )
        )
        if document is None:
            if action is A.AUTHORISATION_SELF:
                return True
            if action in {A.AUTHORISATION_MANAGE, A.AUTHORISATIONS_READ}:
                return record.actor_is_medecin_traitant
            if action in READS | {A.RECORD_UPDATE_ADMIN, A.RECORD_CLOSE, A.WEB_ACCOUNT_CREATE}:
                return may_consult
            if action is A.MEDECIN_TRAITANT_DECLARE:
                return may_consult and actor.profession_code == "10"
            return False
        if document.status is DocumentStatus.DELETED:
            return False
        profession = actor.profession_code
        may_write_type = (profession, document.class_code) in matrix.writes
        is_author = bool(actor.person_id) and actor.person_id in document.author_person_ids
        is_author = is_author or (
            actor.authentication is not AuthenticationMode.DIRECT
            and bool(actor.structure_id)
            and actor.structure_id in document.author_structure_ids
        )
        current = document.status is not DocumentStatus.DEPRECATED
        if action is A.DOCUMENT_PUBLISH:
            return document.class_code != "90" and may_write_type
        if action is A.DOCUMENT_DELETE:
            return is_author and current
        if action is A.DOCUMENT_REPLACE:
            return is_author and current and may_write_type
        sees = is_author or (
            may_consult
            and (not document.masked_to_professionals or record.actor_is_medecin_traitant)
            and (profession, document.class_code) in matrix.reads
        )
        if action is A.DOCUMENT_READ:
            return sees
        if action is A.DOCUMENT_ARCHIVE:
            return sees and current and (is_author or record.actor_is_medecin_traitant)
        if action in {A.DOCUMENT_MASK, A.DOCUMENT_SET_VISIBILITY}:
            return sees and current
        return False

    if kind is ActorKind.HELPDESK:
        return document is None and action in {A.RECORD_TEST, A.RECORD_READ_ADMIN}
    if kind is ActorKind.OPERATOR:
        if document is None:
            return action in {A.RECORD_TEST, A.TRACES_READ}
        return action is A.METADATA_REMOVE
    # Only automated feeds (external sources) remain: they publish what the matrix allows.
    return (
        action is A.DOCUMENT_PUBLISH
        and record is not None
        and document is not None
        and record.status is RecordStatus.ACTIVE
        and (actor.profession_code, document.class_code) in matrix.writes
    )


PROFESSIONS = ["10", "21", "60", "80", "SYS"]
CLASSES = ["10", "11", "90"]
people = st.sampled_from(["P1", "P2", ""])
structures = st.sampled_from(["S1", "S2", ""])
statuses = st.sampled_from(list(AuthorisationStatus))

actors = st.builds(
    Actor,
    kind=st.sampled_from(list(ActorKind)),
    person_id=people,
    authentication=st.sampled_from(list(AuthenticationMode)),
    profession_code=st.sampled_from(PROFESSIONS),
    structure_id=structures,
    is_emergency_regulator=st.booleans(),
)
records = st.none() | st.builds(
    RecordFacts,
    status=st.sampled_from(list(RecordStatus)),
    opposes_break_glass=st.booleans(),
    opposes_centre_15=st.booleans(),
    patient_is_minor=st.booleans(),
    actor_is_holder=st.booleans(),
    actor_is_legal_representative=st.booleans(),
    professional_authorisation=statuses,
    structure_authorisation=statuses,
    actor_is_medecin_traitant=st.booleans(),
)
documents = st.none() | st.builds(
    DocumentFacts,
    status=st.sampled_from(list(DocumentStatus)),
    class_code=st.sampled_from(CLASSES),
    type_code=st.just("11488-4"),
    masked_to_professionals=st.booleans(),
    invisible_to_patient=st.booleans(),
    invisible_to_legal_representatives=st.booleans(),
    author_person_ids=st.frozensets(st.sampled_from(["P1", "P2"])),
    author_structure_ids=st.frozensets(st.sampled_from(["S1", "S2"])),
)
pairs = st.frozensets(st.tuples(st.sampled_from(PROFESSIONS), st.sampled_from(CLASSES)))
matrices = st.builds(SmallMatrix, reads=pairs, writes=pairs)
requests = st.builds(
    AccessRequest,
    actor=actors,
    action=st.sampled_from(list(Action)),
    mode=st.sampled_from(list(AccessMode)),
    reason=st.sampled_from(["", "  ", "patient inconscient"]),
    record=records,
    document=documents,
)


@settings(max_examples=4000, deadline=None)
@given(request=requests, matrix=matrices)
def test_the_decision_point_agrees_with_the_rules(request: AccessRequest, matrix: SmallMatrix) -> None:
    decision = decide(request, matrix)
    assert decision.allowed == allowed_by_the_rules(request, matrix), (request, decision)
    assert (decision.reason in ALLOW_REASONS) == decision.allowed, decision


@settings(max_examples=1500, deadline=None)
@given(request=requests, matrix=matrices)
def test_exceptional_access_is_always_notified(request: AccessRequest, matrix: SmallMatrix) -> None:
    decision = decide(request, matrix)
    # The status test (TD0.2) and the author's own documents reveal nothing of the record.
    if decision.allowed and request.mode is not AccessMode.NORMAL:
        if decision.reason in {Reason.AUTHOR, Reason.PUBLIC_STATUS}:
            assert request.action in {Action.RECORD_TEST, Action.DOCUMENT_READ}
        else:
            assert decision.notify_patient
            assert decision.reason in {Reason.BREAK_GLASS, Reason.CENTRE_15}
    if request.mode is AccessMode.NORMAL:
        assert not decision.notify_patient


@settings(max_examples=1500, deadline=None)
@given(request=requests, matrix=matrices)
def test_a_professional_reading_a_document_hidden_from_the_patient_is_warned(
    request: AccessRequest, matrix: SmallMatrix
) -> None:
    decision: Decision = decide(request, matrix)
    document = request.document
    if (
        decision.allowed
        and request.action is Action.DOCUMENT_READ
        and request.actor.kind is ActorKind.PROFESSIONAL
        and document is not None
    ):
        assert decision.alert_invisible_to_patient == document.invisible_to_patient


def test_named_cases_from_the_brief() -> None:
    """A few rules spelled out, so a failure reads like the rule it breaks."""
    doctor = Actor(ActorKind.PROFESSIONAL, "P1", profession_code="10", structure_id="S1")
    open_matrix = SmallMatrix(
        reads=frozenset({("10", "10"), ("10", "11")}), writes=frozenset({("10", "10"), ("10", "11")})
    )
    authorised = RecordFacts(RecordStatus.ACTIVE, professional_authorisation=AuthorisationStatus.VALID)
    masked = DocumentFacts(DocumentStatus.APPROVED, "10", "11488-4", masked_to_professionals=True)

    def read(record: RecordFacts, mode: AccessMode = AccessMode.NORMAL, reason: str = "") -> Decision:
        return decide(AccessRequest(doctor, A.DOCUMENT_READ, mode, reason, record, masked), open_matrix)

    assert read(authorised).reason is Reason.MASKED
    traitant = RecordFacts(
        RecordStatus.ACTIVE,
        professional_authorisation=AuthorisationStatus.VALID,
        actor_is_medecin_traitant=True,
    )
    assert read(traitant).reason is Reason.MEDECIN_TRAITANT
    blocked = RecordFacts(RecordStatus.ACTIVE, professional_authorisation=AuthorisationStatus.BLOCKED)
    assert read(blocked, AccessMode.BREAK_GLASS, "urgence").reason is Reason.BLOCKED
    opposed = RecordFacts(RecordStatus.ACTIVE, opposes_break_glass=True)
    plain = DocumentFacts(DocumentStatus.APPROVED, "10", "11488-4")
    assert (
        decide(
            AccessRequest(doctor, A.DOCUMENT_READ, AccessMode.BREAK_GLASS, "urgence", opposed, plain),
            open_matrix,
        ).reason
        is Reason.BREAK_GLASS_OPPOSED
    )
    assert read(RecordFacts(RecordStatus.ACTIVE), AccessMode.BREAK_GLASS, "").reason is Reason.REASON_REQUIRED
