"""Aggregation of the audit trail into hourly counters (incremental, by event id).

The audit trail already records every read, write, query, denial and authentication
failure of the DMP, with actor kind, channel and access mode: SI Pilotage derives its
statistics from it instead of instrumenting every service twice. Events are read by id in
batches; events younger than `LAG` are left for the next run so that transactions still in
flight (ids are allocated before commit) are not skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dmp.audit.actions import AuditAction, Outcome
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.pilotage.models import AggregationCursor, DailyActiveUser, FedRecord, MetricCounter

LAG = dt.timedelta(seconds=5)
AUDIT_CURSOR = "audit"

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


def _aggregate(events: Iterable[AuditEvent]) -> int:
    counters: Counter[CounterKey] = Counter()
    active: set[tuple[dt.date, str, str]] = set()
    fed: dict[int, dt.datetime] = {}
    last_id = 0
    for event in events:
        last_id = event.id
        _count_event(counters, event)
        if event.outcome == Outcome.SUCCESS and event.actor_id:
            # Days are French days (TIME_ZONE), not the UTC ones the database gives.
            day = timezone.localdate(event.occurred_at)
            active.add((day, event.actor_kind, pseudonym(event.actor_id)))
        if (
            event.outcome == Outcome.SUCCESS
            and event.record_id is not None
            and event.action in {AuditAction.DOCUMENT_PUBLISH, AuditAction.DOCUMENT_REPLACE}
        ):
            fed.setdefault(event.record_id, event.occurred_at)
    add_counters(counters)
    DailyActiveUser.objects.bulk_create(
        [DailyActiveUser(day=day, actor_kind=kind, actor_hash=digest) for day, kind, digest in active],
        ignore_conflicts=True,
    )
    FedRecord.objects.bulk_create(
        [FedRecord(record_id=record, first_document_at=moment) for record, moment in fed.items()],
        ignore_conflicts=True,
    )
    return last_id


def pilotage_refresh(*, batch_size: int = 10_000, max_batches: int = 100) -> int:
    """Fold new audit events into the counters; returns how many events were processed."""
    processed = 0
    horizon = clock.now() - LAG
    for _ in range(max_batches):
        with transaction.atomic():
            try:
                cursor, _ = AggregationCursor.objects.select_for_update().get_or_create(name=AUDIT_CURSOR)
            except IntegrityError:  # another refresher created it first
                cursor = AggregationCursor.objects.select_for_update().get(name=AUDIT_CURSOR)
            events = list(
                AuditEvent.objects.filter(id__gt=cursor.last_id, occurred_at__lt=horizon)
                .only(
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
                .order_by("id")[:batch_size]
            )
            if not events:
                break
            cursor.last_id = _aggregate(events)
            cursor.updated_at = clock.now()
            cursor.save(update_fields=["last_id", "updated_at"])
            processed += len(events)
        if len(events) < batch_size:
            break
    return processed
