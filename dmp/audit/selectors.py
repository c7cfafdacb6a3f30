"""Reading the audit trail: a record's traces (for its patient) and an actor's own actions."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from dmp.audit.models import AuditEvent


def traces_for_record(record_id: int, *, since: dt.datetime | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(record_id=record_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events.order_by("-occurred_at", "-id")


def traces_for_actor(
    actor_id: str, *, since: dt.datetime | None = None, before: tuple[dt.datetime, int] | None = None
) -> QuerySet[AuditEvent]:
    """An actor's events, newest first; `before` = (occurred_at, id) of the last event of the
    previous page: the next page starts after it, however many events were added since."""
    events = AuditEvent.objects.filter(actor_id=actor_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if before is not None:
        at, event_id = before
        events = events.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=event_id))
    return events.order_by("-occurred_at", "-id")
