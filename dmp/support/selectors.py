"""Helpdesk reads: ticket lists and the statistics SI Pilotage shows in real time."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from dmp.common import clock
from dmp.support.models import Ticket


def ticket_list(
    *, status: str = "", category: str = "", text: str = "", limit: int = 200
) -> QuerySet[Ticket]:
    tickets = Ticket.objects.select_related("assignee").order_by("-created_at")
    if status == "open":
        tickets = tickets.exclude(status__in=[Ticket.Status.RESOLVED, Ticket.Status.CLOSED])
    elif status:
        tickets = tickets.filter(status=status)
    if category:
        tickets = tickets.filter(category=category)
    if text:
        tickets = tickets.filter(
            Q(reference__iexact=text) | Q(subject__icontains=text) | Q(requester_name__icontains=text)
        )
    return tickets[: max(1, min(limit, 1000))]


@dataclass
class TicketStats:
    since: dt.datetime
    created: int = 0
    open_backlog: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_requester: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)
    median_first_response_minutes: float | None = None
    median_resolution_hours: float | None = None
    open_incidents: int = 0


def _grouped(tickets: QuerySet[Ticket], column: str) -> dict[str, int]:
    return {row[column]: row["n"] for row in tickets.values(column).annotate(n=Count("id")).order_by(column)}


def ticket_stats(*, days: int = 30) -> TicketStats:
    since = clock.now() - dt.timedelta(days=days)
    window = Ticket.objects.filter(created_at__gte=since)
    # The open statuses named, not the closed ones excluded: the status index then reads the
    # backlog only, however many tickets were closed over the years.
    open_tickets = Ticket.objects.filter(
        status__in=[Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.WAITING]
    )
    stats = TicketStats(
        since=since,
        created=window.count(),
        open_backlog=open_tickets.count(),
        by_category=_grouped(window, "category"),
        by_status=_grouped(window, "status"),
        by_channel=_grouped(window, "channel"),
        by_requester=_grouped(window, "requester_kind"),
        open_incidents=open_tickets.filter(category=Ticket.Category.MALFUNCTION).count(),
    )
    first_responses, resolutions = [], []
    for created, first, resolved in window.values_list("created_at", "first_response_at", "resolved_at"):
        # The database gives UTC: a ticket of 00:30 in Paris belongs to that French day.
        day = timezone.localdate(created).isoformat()
        stats.per_day[day] = stats.per_day.get(day, 0) + 1
        if first is not None:
            first_responses.append((first - created).total_seconds() / 60)
        if resolved is not None:
            resolutions.append((resolved - created).total_seconds() / 3600)
    if first_responses:
        stats.median_first_response_minutes = round(statistics.median(first_responses), 1)
    if resolutions:
        stats.median_resolution_hours = round(statistics.median(resolutions), 1)
    stats.per_day = dict(sorted(stats.per_day.items()))
    return stats
