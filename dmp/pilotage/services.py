"""Aggregation of the audit trail into hourly counters (incremental, by event id).

The audit trail already records every read, write, query, denial and authentication
failure of the DMP, with actor kind, channel and access mode: SI Pilotage derives its
statistics from it instead of instrumenting every service twice. Events are read by id in
batches, up to the first one younger than `LAG`; ids found missing on the way are looked up
again for `SETTLE`, in case their transaction commits late (see `pilotage_refresh`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from dmp.audit.actions import AuditAction, Outcome
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.pilotage.models import AggregationCursor, DailyActiveUser, FedRecord, MetricCounter

LAG = dt.timedelta(seconds=5)
# How long an id the cursor passed without its event is waited for: longer than any
# transaction that writes audit events stays open (see pilotage_refresh).
SETTLE = dt.timedelta(minutes=10)
MAX_GAP_IDS = 10_000
AUDIT_CURSOR = "audit"
EVENT_FIELDS = (
    "id",
    "occurred_at",
    "action",
    "outcome",
    "reason",
    "actor_kind",
    "actor_id",
    "access_mode",
    "channel",
    "record_id",
    "details",
)

# Business metrics derived from successful audited actions.
ACTION_METRICS = {
    AuditAction.RECORD_CREATE: "record_created",
    AuditAction.RECORD_CLOSE: "record_closed",
    AuditAction.RECORD_REACTIVATE: "record_reactivated",
    AuditAction.DOCUMENT_PUBLISH: "document_published",
    AuditAction.DOCUMENT_REPLACE: "document_replaced",
    AuditAction.DOCUMENT_DELETE: "document_deleted",
    AuditAction.DOCUMENT_RETRIEVE: "document_retrieved",
    AuditAction.DOCUMENT_QUERY: "document_query",
    AuditAction.DOCUMENT_MASK: "document_masked",
    AuditAction.WEB_ACCOUNT_CREATE: "web_account_created",
    AuditAction.AUTHORISATION_GRANT: "authorisation_granted",
    AuditAction.AUTHORISATION_BLOCK: "authorisation_blocked",
}
CounterKey = tuple[dt.datetime, str, str]
Gap = tuple[int, int, dt.datetime]  # first id, last id, when the cursor passed them


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def pseudonym(actor_id: str) -> str:
    """Keyed hash of an actor id: counts distinct users without storing who they are."""
    key: bytes = settings.OPENDMP_AUDIT_KEY
    return hmac.new(key, b"pilotage:" + actor_id.encode(), hashlib.sha256).hexdigest()[:32]


def add_counters(counters: Counter[CounterKey]) -> None:
    """Add to hourly counters; safe with concurrent writers (insert-or-ignore, then increment)."""
    if not counters:
        return
    MetricCounter.objects.bulk_create(
        [
            MetricCounter(hour=hour, metric=metric, dimension=dimension, value=0)
            for hour, metric, dimension in counters
        ],
        ignore_conflicts=True,
    )
    for (hour, metric, dimension), value in counters.items():
        MetricCounter.objects.filter(hour=hour, metric=metric, dimension=dimension).update(
            value=F("value") + value
        )


def _count_event(counters: Counter[CounterKey], event: AuditEvent) -> None:
    hour = hour_of(event.occurred_at)
    try:
        action = AuditAction(event.action)
    except ValueError:
        return
    counters[(hour, "audit", f"{action.label}:{event.outcome}")] += 1
    if action is AuditAction.AUTHENTICATION_FAILURE:
        # Accounts audit a failed login as DENIED: it is no refusal of access to a record.
        counters[(hour, "authentication_failure", event.channel or "")] += 1
        return
    if event.outcome == Outcome.DENIED:
        counters[(hour, "access_denied", event.reason or "unknown")] += 1
        return
    if event.outcome != Outcome.SUCCESS:
        return
    counters[(hour, "channel", event.channel or "unknown")] += 1
    counters[(hour, "actor_kind", event.actor_kind)] += 1
    if event.access_mode and event.access_mode != "normal":
        counters[(hour, "exceptional_access", event.access_mode)] += 1
    metric = ACTION_METRICS.get(action)
    if metric is not None:
        dimension = ""
        if action is AuditAction.DOCUMENT_PUBLISH:
            dimension = str(event.details.get("class_code", ""))[:64]
        counters[(hour, metric, dimension)] += 1


FEEDING = {AuditAction.DOCUMENT_PUBLISH, AuditAction.DOCUMENT_REPLACE}
STATUS_CHANGES = {
    AuditAction.RECORD_CLOSE: "fed_record_closed",
    AuditAction.RECORD_REACTIVATE: "fed_record_reactivated",
}


def _aggregate(events: list[AuditEvent]) -> None:
    counters: Counter[CounterKey] = Counter()
    active: set[tuple[dt.date, str, str]] = set()
    lifecycle: list[tuple[int, AuditAction, dt.datetime]] = []
    for event in events:
        _count_event(counters, event)
        if event.outcome == Outcome.SUCCESS and event.actor_id:
            # Days are French days (TIME_ZONE), not the UTC ones the database gives.
            day = timezone.localdate(event.occurred_at)
            active.add((day, event.actor_kind, pseudonym(event.actor_id)))
        changes_fed = event.action in FEEDING or event.action in STATUS_CHANGES
        if changes_fed and event.outcome == Outcome.SUCCESS and event.record_id is not None:
            lifecycle.append((event.record_id, AuditAction(event.action), event.occurred_at))
    # The sharing rate is over active records, so fed records are counted like records are
    # (record_created, record_closed...): when first fed, closed and reactivated, in id order.
    fed_ids = set(
        FedRecord.objects.filter(record_id__in={record for record, _, _ in lifecycle}).values_list(
            "record_id", flat=True
        )
    )
    fed: dict[int, dt.datetime] = {}
    for record, action, moment in lifecycle:
        if action in FEEDING and record not in fed_ids:
            fed_ids.add(record)
            fed[record] = moment
            counters[(hour_of(moment), "record_fed", "")] += 1
        elif action in STATUS_CHANGES and record in fed_ids:
            counters[(hour_of(moment), STATUS_CHANGES[action], "")] += 1
    add_counters(counters)
    DailyActiveUser.objects.bulk_create(
        [DailyActiveUser(day=day, actor_kind=kind, actor_hash=digest) for day, kind, digest in active],
        ignore_conflicts=True,
    )
    FedRecord.objects.bulk_create(
        [FedRecord(record_id=record, first_document_at=moment) for record, moment in fed.items()],
        ignore_conflicts=True,
    )


def _missing_ranges(first: int, last: int, found: set[int]) -> list[tuple[int, int]]:
    """The runs of ids of first..last that are not in `found`."""
    ranges = []
    start = first
    for event_id in sorted(i for i in found if first <= i <= last):
        if event_id > start:
            ranges.append((start, event_id - 1))
        start = event_id + 1
    if start <= last:
        ranges.append((start, last))
    return ranges


def _capped(gaps: list[Gap]) -> list[Gap]:
    """At most MAX_GAP_IDS ids, the highest: the most recently allocated are the likeliest in flight."""
    kept: list[Gap] = []
    room = MAX_GAP_IDS
    for first, last, since in sorted(gaps, key=lambda gap: gap[1], reverse=True):
        if room <= 0:
            break
        first = max(first, last - room + 1)
        kept.append((first, last, since))
        room -= last - first + 1
    return sorted(kept)


def _locked_cursor() -> AggregationCursor:
    try:
        cursor, _ = AggregationCursor.objects.select_for_update().get_or_create(name=AUDIT_CURSOR)
    except IntegrityError:  # another refresher created it first
        cursor = AggregationCursor.objects.select_for_update().get(name=AUDIT_CURSOR)
    return cursor


def _fill_gaps(gaps: list[Gap], now: dt.datetime) -> tuple[list[AuditEvent], list[Gap]]:
    """Events committed since the cursor passed their ids, and the gaps still worth waiting for."""
    if not gaps:
        return [], []
    late: list[AuditEvent] = []
    # By chunks: SQLite parses a chain of ORs as nested expressions, at most 1000 deep.
    for start in range(0, len(gaps), 100):
        within = Q()
        for first, last, _ in gaps[start : start + 100]:
            within |= Q(id__range=(first, last))
        late += AuditEvent.objects.filter(within).only(*EVENT_FIELDS).order_by("id")
    found = {event.id for event in late}
    remaining = [
        (first, last, since)
        for gap_first, gap_last, since in gaps
        if since > now - SETTLE
        for first, last in _missing_ranges(gap_first, gap_last, found)
    ]
    return late, remaining


def pilotage_refresh(*, batch_size: int = 10_000, max_batches: int = 100) -> int:
    """Fold new audit events into the counters; returns how many events were processed.

    Neither the id order nor the occurred_at order of events is their commit order: ids are
    allocated at insert and seen at commit, occurred_at is read before the chain lock and on
    each node's own clock. So events are read in id order and the cursor stops before the
    first one younger than LAG (an older event with a smaller id may still be on its way);
    and an id the cursor passes without seeing its event (an open transaction, or one rolled
    back: sequences skip ids) is kept as a gap and looked up again at every run for SETTLE,
    after which it is taken as rolled back. Keeping the few missing ids costs less than
    re-reading a trailing window of events at every run, and counts stay LAG fresh.
    """
    now = clock.now()
    horizon = now - LAG
    processed = 0
    for batch in range(max_batches):
        with transaction.atomic():
            cursor = _locked_cursor()
            stored = [(first, last, dt.datetime.fromisoformat(since)) for first, last, since in cursor.gaps]
            late, gaps = _fill_gaps(stored, now) if batch == 0 else ([], list(stored))
            events = list(
                AuditEvent.objects.filter(id__gt=cursor.last_id)
                .only(*EVENT_FIELDS)
                .order_by("id")[:batch_size]
            )
            ready = list(itertools.takewhile(lambda event: event.occurred_at < horizon, events))
            expected = cursor.last_id + 1
            for event in ready:
                if event.id > expected:
                    gaps.append((expected, event.id - 1, now))
                expected = event.id + 1
            gaps = _capped(gaps)
            if late or ready or gaps != stored:
                _aggregate([*late, *ready])
                if ready:
                    cursor.last_id = ready[-1].id
                cursor.gaps = [[first, last, since.isoformat()] for first, last, since in gaps]
                cursor.updated_at = now
                cursor.save(update_fields=["last_id", "gaps", "updated_at"])
            processed += len(late) + len(ready)
        if len(ready) < batch_size:
            break
    return processed
