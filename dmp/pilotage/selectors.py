"""The operating picture: totals, last-24-hour series and incidents, from the counters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Sum
from django.utils import timezone

from dmp.common import clock
from dmp.pilotage.models import AggregationCursor, DailyActiveUser, MetricCounter
from dmp.pilotage.services import AUDIT_CURSOR, hour_of
from dmp.support.selectors import ticket_stats


def metric_total(metric: str, *, since: dt.datetime | None = None, dimension: str | None = None) -> int:
    counters = MetricCounter.objects.filter(metric=metric)
    if since is not None:
        counters = counters.filter(hour__gte=hour_of(since))
    if dimension is not None:
        counters = counters.filter(dimension=dimension)
    total = counters.aggregate(total=Sum("value"))["total"]
    return int(total or 0)


def metric_by_dimension(metric: str, *, since: dt.datetime | None = None) -> dict[str, int]:
    counters = MetricCounter.objects.filter(metric=metric)
    if since is not None:
        counters = counters.filter(hour__gte=hour_of(since))
    rows = counters.values("dimension").annotate(total=Sum("value")).order_by("-total")
    return {row["dimension"] or "—": int(row["total"]) for row in rows}


def hourly_series(
    metric: str, *, hours: int = 24, dimension: str | None = None
) -> list[tuple[dt.datetime, int]]:
    end = hour_of(clock.now())
    start = end - dt.timedelta(hours=hours - 1)
    counters = MetricCounter.objects.filter(metric=metric, hour__gte=start)
    if dimension is not None:
        counters = counters.filter(dimension=dimension)
    values: dict[dt.datetime, int] = {}
    for row in counters.values("hour").annotate(total=Sum("value")):
        values[row["hour"]] = int(row["total"])
    return [
        (start + dt.timedelta(hours=i), values.get(start + dt.timedelta(hours=i), 0)) for i in range(hours)
    ]


@dataclass
class Overview:
    generated_at: dt.datetime
    aggregated_until_event: int
    records_active: int
    records_closed: int
    records_fed: int  # active records that have received a document
    sharing_rate: float | None
    documents_published: int
    documents_by_class: dict[str, int]
    retrievals: int
    queries: int
    denials_24h: int
    exceptional_accesses_24h: dict[str, int]
    authentication_failures_24h: int
    active_users_today: dict[str, int]
    channels_24h: dict[str, int]
    requests_24h: int
    server_errors_24h: int
    mean_latency_ms_24h: float | None
    web_accounts: int
    open_tickets: int
    open_incidents: int
    series: dict[str, list[tuple[dt.datetime, int]]] = field(default_factory=dict)


def overview() -> Overview:
    now = clock.now()
    day_ago = now - dt.timedelta(hours=24)
    created = metric_total("record_created")
    closed = metric_total("record_closed")
    reactivated = metric_total("record_reactivated")
    active = max(created - closed + reactivated, 0)
    fed = (
        metric_total("record_fed")
        - metric_total("fed_record_closed")
        + metric_total("fed_record_reactivated")
    )
    fed = max(fed, 0)
    requests = metric_total("http_requests", since=day_ago)
    latency_total = metric_total("http_latency_ms", since=day_ago)
    cursor = AggregationCursor.objects.filter(name=AUDIT_CURSOR).first()
    tickets = ticket_stats(days=30)
    active_today = {
        row["actor_kind"]: int(row["n"])
        for row in DailyActiveUser.objects.filter(day=timezone.localdate(now))
        .values("actor_kind")
        .annotate(n=Count("actor_hash"))
    }
    return Overview(
        generated_at=now,
        aggregated_until_event=cursor.last_id if cursor else 0,
        records_active=active,
        records_closed=max(closed - reactivated, 0),
        records_fed=fed,
        sharing_rate=round(100 * fed / active, 1) if active else None,
        documents_published=metric_total("document_published") + metric_total("document_replaced"),
        documents_by_class=metric_by_dimension("document_published"),
        retrievals=metric_total("document_retrieved"),
        queries=metric_total("document_query"),
        denials_24h=metric_total("access_denied", since=day_ago),
        exceptional_accesses_24h=metric_by_dimension("exceptional_access", since=day_ago),
        authentication_failures_24h=metric_total("authentication_failure", since=day_ago),
        active_users_today=active_today,
        channels_24h=metric_by_dimension("channel", since=day_ago),
        requests_24h=requests,
        server_errors_24h=metric_total("http_requests", since=day_ago, dimension="5xx"),
        mean_latency_ms_24h=round(latency_total / requests, 1) if requests else None,
        web_accounts=metric_total("web_account_created"),
        open_tickets=tickets.open_backlog,
        open_incidents=tickets.open_incidents,
        series={
            "document_published": hourly_series("document_published"),
            "document_retrieved": hourly_series("document_retrieved"),
            "access_denied": hourly_series("access_denied"),
            "http_requests": hourly_series("http_requests"),
        },
    )
