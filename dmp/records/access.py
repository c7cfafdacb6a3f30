"""Choke point for record-level access: load facts, ask the policy, audit refusals.

Reads answer `NotFound` for a missing record and for a forbidden one alike; writes on a
record the caller can already see answer `Forbidden` with the policy's reason.
Call these *before* opening the action's transaction, so that a refusal's audit event is
committed even though the action is not.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from dmp.access.actors import Actor, ActorKind, Caller
from dmp.access.config import decide_now
from dmp.access.policy import (
    AccessRequest,
    Action,
    AuthorisationStatus,
    Decision,
    DocumentFacts,
    Reason,
    RecordFacts,
    RecordStatus,
)
from dmp.audit.actions import AuditAction
from dmp.audit.services import Subject, audit_denial
from dmp.common import clock
from dmp.common.errors import Forbidden, NotFound
from dmp.common.prepared import PreparedQuery
from dmp.common.rows import unique_row
from dmp.identity.ins import Ins
from dmp.identity.models import LegalRepresentative
from dmp.records.models import Authorisation, GranteeKind, Record


@dataclass(frozen=True, slots=True)
class RecordAccess:
    """A record the caller was allowed to act on, with the facts and decision that allowed it."""

    record: Record
    facts: RecordFacts
    decision: Decision

    @property
    def subject(self) -> Subject:
        return record_subject(self.record)


def record_subject(record: Record) -> Subject:
    return Subject(record_id=record.pk, patient_ins=record.patient.ins)


# The lookups of every web-service call, compiled once (dmp.common.prepared): building them was
# most of their cost.
_BY_INS = PreparedQuery(
    lambda ins, authority: Record.objects.select_related("patient").filter(
        patient__ins=ins, patient__ins_authority=authority
    ),
    str,
    str,
)
_OWN_AUTHORISATION = PreparedQuery(
    lambda record_id, person_id: Authorisation.objects.filter(
        record_id=record_id, grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=person_id
    ),
    int,
    str,
)
_OWN_AND_STRUCTURE_AUTHORISATIONS = PreparedQuery(
    lambda record_id, person_id, structure_id: Authorisation.objects.filter(
        Q(grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=person_id)
        | Q(grantee_kind=GranteeKind.STRUCTURE, grantee_id=structure_id),
        record_id=record_id,
    ),
    int,
    str,
    str,
)


def record_by_ins(ins: Ins) -> Record | None:
    return _BY_INS.one(ins.value, ins.authority.value)


def record_by_public_id(public_id: uuid.UUID | str) -> Record | None:
    """The record a public id (the FHIR Patient id, the portals' URLs) names; None for a
    malformed id as for an unknown one."""
    try:
        wanted = public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(public_id)
    except ValueError:
        return None
    return unique_row(Record.objects.select_related("patient").filter(public_id=wanted))


def representative_public_id(actor: Actor) -> uuid.UUID | None:
    """The LegalRepresentative.public_id a legal-representative actor stands for, if well formed."""
    if actor.kind is not ActorKind.LEGAL_REPRESENTATIVE or not actor.person_id.startswith("RL-"):
        return None
    try:
        return uuid.UUID(actor.person_id.removeprefix("RL-"))
    except ValueError:
        return None


def _authorisation_status(row: Authorisation | None, now: dt.datetime) -> AuthorisationStatus:
    if row is None:
        return AuthorisationStatus.NONE
    status = AuthorisationStatus(row.status)
    if status is AuthorisationStatus.VALID and row.expires_at is not None and row.expires_at <= now:
        return AuthorisationStatus.EXPIRED
    return status


def is_minor(record: Record, today: dt.date | None = None) -> bool:
    majority: int = settings.OPENDMP_MAJORITY_AGE
    return record.patient.age_on(today or clock.today()) < majority


def record_facts(actor: Actor, record: Record) -> RecordFacts:
    """The policy's view of `record` relative to `actor` (one query for authorisations)."""
    now = clock.now()
    professional_row = structure_row = None
    if actor.kind is ActorKind.PROFESSIONAL:
        rows = (
            _OWN_AND_STRUCTURE_AUTHORISATIONS.rows(record.pk, actor.person_id, actor.structure_id)
            if actor.structure_id
            else _OWN_AUTHORISATION.rows(record.pk, actor.person_id)
        )
        for row in rows:
            if row.grantee_kind == GranteeKind.PROFESSIONAL:
                professional_row = row
            else:
                structure_row = row
    professional_status = _authorisation_status(professional_row, now)
    representative_id = representative_public_id(actor)
    is_representative = (
        representative_id is not None
        and LegalRepresentative.objects.filter(
            patient_id=record.patient_id, public_id=representative_id
        ).exists()
    )
    return RecordFacts(
        status=RecordStatus(record.status),
        opposes_break_glass=record.opposes_break_glass,
        opposes_centre_15=record.opposes_centre_15,
        patient_is_minor=is_minor(record),
        actor_is_holder=actor.kind is ActorKind.PATIENT
        and (actor.person_id, actor.ins_authority) == (record.patient.ins, record.patient.ins_authority),
        actor_is_legal_representative=is_representative,
        professional_authorisation=professional_status,
        structure_authorisation=_authorisation_status(structure_row, now),
        actor_is_medecin_traitant=(
            professional_row is not None
            and professional_row.is_medecin_traitant
            and professional_status is AuthorisationStatus.VALID
        ),
    )


def authorise(
    caller: Caller, action: Action, record: Record | None, document: DocumentFacts | None = None
) -> tuple[RecordFacts | None, Decision]:
    facts = record_facts(caller.actor, record) if record is not None else None
    decision = decide_now(
        AccessRequest(
            actor=caller.actor,
            action=action,
            mode=caller.mode,
            reason=caller.reason,
            record=facts,
            document=document,
        )
    )
    return facts, decision


def access_record(
    caller: Caller, *, ins: Ins, action: Action, audit_action: AuditAction, for_write: bool = False
) -> RecordAccess:
    """The record of `ins` if the caller may perform `action` on it; audits and raises otherwise."""
    record = record_by_ins(ins)
    if record is None:
        audit_denial(
            caller=caller, action=audit_action, subject=Subject(patient_ins=ins.value), reason="no_record"
        )
        raise NotFound("no record for this INS")
    return access_loaded_record(
        caller, record=record, action=action, audit_action=audit_action, for_write=for_write
    )


def access_loaded_record(
    caller: Caller, *, record: Record, action: Action, audit_action: AuditAction, for_write: bool = False
) -> RecordAccess:
    facts, decision = authorise(caller, action, record)
    if not decision:
        audit_denial(
            caller=caller, action=audit_action, subject=record_subject(record), reason=decision.reason
        )
        if for_write and decision.reason is not Reason.NOT_HOLDER:
            raise Forbidden(f"not allowed: {decision.reason.value}", location=decision.reason.value)
        raise NotFound("no record for this INS")
    assert facts is not None  # noqa: S101 - authorise() loads facts whenever a record is given
    return RecordAccess(record=record, facts=facts, decision=decision)


def own_record(caller: Caller) -> Record:
    """The record of the patient (or of the minor) the caller acts for."""
    actor = caller.actor
    if actor.kind is ActorKind.PATIENT:
        record = unique_row(
            Record.objects.select_related("patient").filter(
                patient__ins=actor.person_id, patient__ins_authority=actor.ins_authority
            )
        )
    elif (representative_id := representative_public_id(actor)) is not None:
        representative = (
            LegalRepresentative.objects.select_related("patient__record")
            .filter(public_id=representative_id)
            .first()
        )
        record = getattr(representative.patient, "record", None) if representative else None
    else:
        record = None
    if record is None:
        raise NotFound("no record")
    return record
