"""Choke point for record-level access: load facts, ask the policy, audit refusals.

Reads answer `NotFound` for a missing record and for a forbidden one alike; writes on a
record the caller can already see answer `Forbidden` with the policy's reason.
Call these *before* opening the action's transaction, so that a refusal's audit event is
committed even though the action is not.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db.models import F, Func, Q, TextField, Value

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


class GrantsOf(Func):
    """The authorisations of one professional on a record, their own and their structure's, as a
    JSON array of [grantee_kind, status, is_medecin_traitant, expires_at], read in the statement
    that reads the record (or the document) a web-service read starts from: on its own, this
    lookup was one more round trip of every search and retrieve. `record` names the outer
    record's key column."""

    output_field = TextField()

    def __init__(self, record: str, person_id: str, structure_id: str) -> None:
        super().__init__(
            F(record),
            Value(GranteeKind.PROFESSIONAL.value),
            Value(person_id),
            Value(GranteeKind.STRUCTURE.value),
            Value(structure_id),
        )

    def _parts(self, compiler: Any, connection: Any) -> tuple[dict[str, str], list[Any]]:
        quote = connection.ops.quote_name
        names = {field.name: quote(str(field.column)) for field in Authorisation._meta.concrete_fields}
        names["table"] = quote(Authorisation._meta.db_table)
        params: list[Any] = []
        for key, expression in zip(
            ("outer", "pro_kind", "person", "structure_kind", "structure"),
            self.source_expressions,
            strict=True,
        ):
            sql, more = compiler.compile(expression)
            names[key] = sql
            params += more
        return names, params

    def _sql(self, compiler: Any, connection: Any, aggregate: str) -> tuple[str, list[Any]]:
        """The subquery, with `aggregate` (its "{columns}" the row's, in `Grants.decoded`'s order)."""
        n, params = self._parts(compiler, connection)
        columns = f"{n['grantee_kind']}, {n['status']}, {n['is_medecin_traitant']}, {n['expires_at']}"
        sql = (
            f"(SELECT {aggregate.format(columns=columns)} FROM {n['table']} "  # noqa: S608
            f"WHERE {n['record']} = {n['outer']} "
            f"AND (({n['grantee_kind']} = {n['pro_kind']} AND {n['grantee_id']} = {n['person']}) "
            f"OR ({n['grantee_kind']} = {n['structure_kind']} AND {n['grantee_id']} = {n['structure']})))"
        )
        return sql, params

    # Only quoted names from the model's metadata and compiled expressions are written in.
    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        return self._sql(compiler, connection, "json_group_array(json_array({columns}))")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return self._sql(compiler, connection, "COALESCE(json_agg(json_build_array({columns}))::text, '[]')")


class _Grant(Protocol):
    """What the policy reads of an authorisation row: an `Authorisation`, or a `GrantRow`."""

    @property
    def status(self) -> str: ...
    @property
    def is_medecin_traitant(self) -> bool: ...
    @property
    def expires_at(self) -> dt.datetime | None: ...


@dataclass(frozen=True, slots=True)
class GrantRow:
    grantee_kind: str
    status: str
    is_medecin_traitant: bool
    expires_at: dt.datetime | None


def _moment(text: str | None) -> dt.datetime | None:
    """A timestamp as `GrantsOf` gives it: ISO 8601 with its offset (PostgreSQL), or naive UTC
    as Django stores it (SQLite)."""
    if text is None:
        return None
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Grants:
    """A professional's authorisations on one record as read with it (`GrantsOf`), for the
    actor and record they were read for: as fresh as the record read with them. They serve the
    decision taken as the record or document is read (a search, a retrieve, `access_record`
    before an action); a write that decides again under the record's lock (`_lock_record`)
    reads the rows under that lock (`record_facts` without grants)."""

    record_id: int
    person_id: str
    structure_id: str
    rows: tuple[GrantRow, ...]

    @classmethod
    def decoded(cls, record_id: int, actor: Actor, text: str) -> Grants:
        rows = tuple(
            GrantRow(kind, status, bool(is_medecin_traitant), _moment(expires_at))
            for kind, status, is_medecin_traitant, expires_at in json.loads(text)
        )
        return cls(record_id, actor.person_id, actor.structure_id, rows)

    def are_for(self, actor: Actor, record: Record) -> bool:
        return actor.kind is ActorKind.PROFESSIONAL and (
            self.record_id,
            self.person_id,
            self.structure_id,
        ) == (record.pk, actor.person_id, actor.structure_id)


_BY_INS_WITH_GRANTS = PreparedQuery(
    lambda ins, authority, person_id, structure_id: (
        Record.objects.select_related("patient")
        .filter(patient__ins=ins, patient__ins_authority=authority)
        .annotate(grants_json=GrantsOf("pk", person_id, structure_id))
    ),
    str,
    str,
    str,
    str,
)


def record_by_ins(ins: Ins) -> Record | None:
    return _BY_INS.one(ins.value, ins.authority.value)


def record_and_grants_by_ins(ins: Ins, actor: Actor) -> tuple[Record | None, Grants | None]:
    """The record of `ins` and, for a professional, their authorisations on it (`Grants`), in
    one statement."""
    if actor.kind is not ActorKind.PROFESSIONAL:
        return record_by_ins(ins), None
    record = _BY_INS_WITH_GRANTS.one(ins.value, ins.authority.value, actor.person_id, actor.structure_id)
    if record is None:
        return None, None
    return record, Grants.decoded(record.pk, actor, record.grants_json)


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


def _authorisation_status(row: _Grant | None, now: dt.datetime) -> AuthorisationStatus:
    if row is None:
        return AuthorisationStatus.NONE
    status = AuthorisationStatus(row.status)
    if status is AuthorisationStatus.VALID and row.expires_at is not None and row.expires_at <= now:
        return AuthorisationStatus.EXPIRED
    return status


def is_minor(record: Record, today: dt.date | None = None) -> bool:
    majority: int = settings.OPENDMP_MAJORITY_AGE
    return record.patient.age_on(today or clock.today()) < majority


def record_facts(actor: Actor, record: Record, grants: Grants | None = None) -> RecordFacts:
    """The policy's view of `record` relative to `actor` (one query for authorisations, none
    when `grants` read them for this actor and record)."""
    now = clock.now()
    professional_row: _Grant | None = None
    structure_row: _Grant | None = None
    if actor.kind is ActorKind.PROFESSIONAL:
        rows: Sequence[GrantRow | Authorisation]
        if grants is not None and grants.are_for(actor, record):
            # Without a structure, the actor has no structure's rights (as the lookup below).
            rows = [
                r for r in grants.rows if actor.structure_id or r.grantee_kind == GranteeKind.PROFESSIONAL
            ]
        elif actor.structure_id:
            rows = _OWN_AND_STRUCTURE_AUTHORISATIONS.rows(record.pk, actor.person_id, actor.structure_id)
        else:
            rows = _OWN_AUTHORISATION.rows(record.pk, actor.person_id)
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
    caller: Caller,
    action: Action,
    record: Record | None,
    document: DocumentFacts | None = None,
    grants: Grants | None = None,
) -> tuple[RecordFacts | None, Decision]:
    facts = record_facts(caller.actor, record, grants) if record is not None else None
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
    record, grants = record_and_grants_by_ins(ins, caller.actor)
    if record is None:
        audit_denial(
            caller=caller, action=audit_action, subject=Subject(patient_ins=ins.value), reason="no_record"
        )
        raise NotFound("no record for this INS")
    return access_loaded_record(
        caller, record=record, action=action, audit_action=audit_action, for_write=for_write, grants=grants
    )


def access_loaded_record(
    caller: Caller,
    *,
    record: Record,
    action: Action,
    audit_action: AuditAction,
    for_write: bool = False,
    grants: Grants | None = None,
) -> RecordAccess:
    """As `access_record`, for a record already read (with the caller's `grants`, if read with it)."""
    facts, decision = authorise(caller, action, record, grants=grants)
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
