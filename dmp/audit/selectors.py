"""Reading the audit trail: a record's traces (for its patient) and an actor's own actions."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from dmp.audit.models import AuditEvent

# A page of traces ends with an event; the next page starts after it, whatever was added since
# (an offset would shift under the events the reading itself adds). (occurred_at, id):
TraceCursor = tuple[dt.datetime, int]


def trace_cursor(occurred_at: dt.datetime, event_id: int) -> str:
    """The link value naming the page that follows the event (`occurred_at`, `event_id`)."""
    return f"{occurred_at.isoformat()}~{event_id}"


def parse_trace_cursor(value: str) -> TraceCursor:
    """What `trace_cursor` wrote; ValueError for anything it never writes."""
    at, _, event_id = value.rpartition("~")
    moment = dt.datetime.fromisoformat(at)
    number = int(event_id)
    if moment.tzinfo is None or not 0 < number < 2**63:
        raise ValueError(value)
    return moment.astimezone(dt.UTC), number


def events_before(events: QuerySet[AuditEvent], before: TraceCursor | None) -> QuerySet[AuditEvent]:
    """`events` (newest first) after the event `before` ends a page with; all of them for None."""
    if before is None:
        return events
    at, event_id = before
    return events.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=event_id))


def traces_for_record(record_id: int, *, since: dt.datetime | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(record_id=record_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events.order_by("-occurred_at", "-id")


def traces_for_actor(
    actor_id: str, *, since: dt.datetime | None = None, before: TraceCursor | None = None
) -> QuerySet[AuditEvent]:
    """An actor's events, newest first; `before`: the last event of the previous page."""
    events = AuditEvent.objects.filter(actor_id=actor_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events_before(events, before).order_by("-occurred_at", "-id")
