"""Reads about records, each checked by the access policy and audited."""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import connection
from django.db.models import Q, QuerySet

from dmp.access.actors import ActorKind, Caller
from dmp.access.policy import Action, RecordStatus
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.audit.selectors import traces_for_actor, traces_for_record
from dmp.audit.services import NO_SUBJECT, audit_alone, audit_denial
from dmp.common import clock
from dmp.common.errors import NotFound
from dmp.common.rows import planned_for_each_value
from dmp.records.access import access_loaded_record, authorise
from dmp.records.models import Authorisation, GranteeKind, Record


@dataclass(frozen=True, slots=True)
class AuthorisedRecord:
    record: Record
    authorised_at: dt.datetime
    is_medecin_traitant: bool
    last_document_at: dt.datetime | None


def _newest_first(by_last_document: bool) -> Callable[[Authorisation], tuple[bool, dt.datetime, int]]:
    """The sort key of the queries' descending order, NULL (a record without documents) where
    the database puts it: first on PostgreSQL, last on SQLite."""
    nulls_first = connection.features.nulls_order_largest
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)

    def key(row: Authorisation) -> tuple[bool, dt.datetime, int]:
        moment = row.record.last_document_at if by_last_document else row.changed_at
        return ((moment is None) == nulls_first, moment or earliest, row.record_id)

    return key


def _authorised_rows(
    grantees: list[Q], *, field: str, since: dt.datetime | None, limit: int, now: dt.datetime
) -> list[Authorisation]:
    """The first `limit` valid authorisations of each grantee on active records, by `field`
    descending."""
    rows: list[Authorisation] = []
    for grantee in grantees:
        candidates = (
            Authorisation.objects.filter(
                grantee, status=Authorisation.Status.VALID, record__status=RecordStatus.ACTIVE
            )
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .select_related("record__patient")
        )
        if since is not None:
            candidates = candidates.filter(**{f"{field}__gte": since})
        rows += candidates.order_by(f"-{field}", "-record_id")[:limit]
    return rows


def records_authorised_for(
    *,
    caller: Caller,
    since: dt.datetime | None = None,
    order_by_last_document: bool = False,
    limit: int = 500,
) -> list[AuthorisedRecord]:
    """TD0.4: active records on which the caller (PS) or its structure holds a valid authorisation."""
    actor = caller.actor
    if actor.kind is not ActorKind.PROFESSIONAL:
        audit_denial(caller=caller, action=AuditAction.RECORD_LIST_AUTHORISED, reason="not_professional")
        raise NotFound("no records")
    grantees = [Q(grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=actor.person_id)]
    if actor.structure_id:
        grantees.append(Q(grantee_kind=GranteeKind.STRUCTURE, grantee_id=actor.structure_id))
    now = clock.now()
    # A block of the PS or of its structure wins over any authorisation, as in the policy.
    blocked = set(
        Authorisation.objects.filter(
            functools.reduce(operator.or_, grantees), status=Authorisation.Status.BLOCKED
        ).values_list("record_id", flat=True)
    )
    field = "record__last_document_at" if order_by_last_document else "changed_at"
    # One query per grantee, each reading its index in the order asked and stopping at the page:
    # with both in one OR, nothing could follow an index, and a structure's every record was
    # read and sorted (through the records' table) for the first hundred. A record listed by
    # both is kept once, and each list holds enough rows to fill the page past the blocked ones.
    with planned_for_each_value():
        rows = _authorised_rows(grantees, field=field, since=since, limit=limit + len(blocked), now=now)
    rows.sort(key=_newest_first(order_by_last_document), reverse=True)
    results: dict[int, AuthorisedRecord] = {}
    for row in rows:
        if row.record_id in blocked or row.record_id in results:
            continue
        results[row.record_id] = AuthorisedRecord(
            record=row.record,
            authorised_at=row.changed_at,
            is_medecin_traitant=False,
            last_document_at=row.record.last_document_at,
        )
        if len(results) >= limit:
            break
    # The role is the PS's own (a personal row), whichever row listed the record.
    medecin_traitant = set(
        Authorisation.objects.filter(
            grantee_kind=GranteeKind.PROFESSIONAL,
            grantee_id=actor.person_id,
            status=Authorisation.Status.VALID,
            is_medecin_traitant=True,
            record_id__in=list(results),
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("record_id", flat=True)
    )
    for record_id in medecin_traitant:
        results[record_id] = replace(results[record_id], is_medecin_traitant=True)
    audit_alone(
        caller=caller,
        action=AuditAction.RECORD_LIST_AUTHORISED,
        subject=NO_SUBJECT,
        details={"count": len(results)},
    )
    return list(results.values())


def authorisations_of_record(*, caller: Caller, record: Record) -> QuerySet[Authorisation]:
    """Who is authorised, blocked, médecin traitant: for the patient, a minor's legal
    representative and the médecin traitant. A read: a closed record's patient still sees it
    (to consult and export), and so does a minor in secret connection, who may not change it.
    A legal representative does not see the rows a PS last changed in the minor's secret
    connection, as the traces of those changes are hidden from them."""
    access = access_loaded_record(
        caller, record=record, action=Action.AUTHORISATIONS_READ, audit_action=AuditAction.RECORD_READ_ADMIN
    )
    rows = Authorisation.objects.filter(record=access.record).exclude(status=Authorisation.Status.REMOVED)
    if caller.actor.kind is ActorKind.LEGAL_REPRESENTATIVE:
        rows = rows.exclude(changed_in_secret=True)
    return rows.order_by("grantee_kind", "grantee_name")


def authorisations_changeable(*, caller: Caller, record: Record) -> bool:
    """Whether the caller may change who has access (TD0.3) and the emergency oppositions: the
    page offers the controls only then. Not audited: showing a page is not an attempt."""
    return bool(authorise(caller, Action.AUTHORISATION_MANAGE, record)[1])


# Narrow a record's events to those its patient or legal representative may be shown. The
# documents layer registers the rule (it knows which documents are hidden from whom, and when);
# the traces page, the export and the exceptional-access notices all go through it.
TRACE_FILTERS: list[Callable[[Caller, Record, QuerySet[AuditEvent]], QuerySet[AuditEvent]]] = []


def traces_visible_to(caller: Caller, record: Record, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """`events` (of `record`) without those hidden from the patient-side `caller`."""
    for narrow in TRACE_FILTERS:
        events = narrow(caller, record, events)
    return events


def record_traces(
    *, caller: Caller, record: Record, since: dt.datetime | None = None
) -> QuerySet[AuditEvent]:
    """Every access to the record, for its patient (or legal representative) and operators."""
    access = access_loaded_record(
        caller, record=record, action=Action.TRACES_READ, audit_action=AuditAction.TRACES_READ
    )
    audit_alone(caller=caller, action=AuditAction.TRACES_READ, subject=access.subject)
    return traces_for_record(record.pk, since=since)


@dataclass(frozen=True, slots=True)
class OwnTrace:
    """One of a professional's own actions, as shown to them."""

    pk: int
    chain: int
    sequence: int
    occurred_at: dt.datetime
    action: int
    outcome: str
    access_mode: str
    access_reason: str
    channel: str
    actor_id: str
    actor_name: str
    patient_ins: str
    document_unique_id: str


def _own_trace(event: AuditEvent) -> OwnTrace:
    # A refused document access names neither the document nor its patient: the PS got the
    # answer an unknown document gets, and a trace naming the patient of a masked document (or
    # only existing documents) would tell the two apart.
    refused_document = event.outcome != "success" and bool(event.document_unique_id)
    return OwnTrace(
        pk=event.pk,
        chain=event.chain,
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        action=event.action,
        outcome=event.outcome,
        access_mode=event.access_mode,
        access_reason=event.access_reason,
        channel=event.channel,
        actor_id=event.actor_id,
        actor_name=event.actor_name,
        patient_ins="" if refused_document else event.patient_ins,
        document_unique_id="" if refused_document else event.document_unique_id,
    )


def own_traces(
    *,
    caller: Caller,
    limit: int,
    since: dt.datetime | None = None,
    before: tuple[dt.datetime, int] | None = None,
) -> list[OwnTrace]:
    """A professional's own actions (any record), newest first, at most `limit` (`before`: see
    traces_for_actor)."""
    audit_alone(caller=caller, action=AuditAction.TRACES_READ, details={"own": True})
    events = traces_for_actor(caller.actor.person_id, since=since, before=before)[:limit]
    return [_own_trace(event) for event in events]
