"""SI Pilotage dashboard (operators), JSON summary and Prometheus exposition."""

from __future__ import annotations

import hmac
from dataclasses import asdict

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dmp.common.sessions import background_poll
from dmp.common.staff import OPERATOR_GROUP, is_in_group, staff_required
from dmp.pilotage.selectors import Overview, overview
from dmp.pilotage.services import pilotage_refresh

REFRESH_LOCK = "pilotage:refresh"


def _refreshed_overview() -> Overview:
    # In the embedded deployment there is no scheduler: the dashboard folds new events in,
    # at most every few seconds and by one request at a time.
    if cache.add(REFRESH_LOCK, "1", timeout=5):
        pilotage_refresh(max_batches=20)
    return overview()


@staff_required(OPERATOR_GROUP)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "pilotage/dashboard.html", {"o": _refreshed_overview()})


# The dashboard's timer calls it every 15 s: an unattended screen must still reach the idle timeout.
@background_poll
@staff_required(OPERATOR_GROUP)
@require_GET
def dashboard_panel(request: HttpRequest) -> HttpResponse:
    return render(request, "pilotage/_panel.html", {"o": _refreshed_overview()})


def _metrics_allowed(request: HttpRequest) -> bool:
    token: str = settings.OPENDMP_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    return is_in_group(request, OPERATOR_GROUP)


@require_GET
def summary_json(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return JsonResponse({"error": "forbidden"}, status=403)
    data = asdict(_refreshed_overview())
    data["series"] = {
        name: [[hour.isoformat(), value] for hour, value in series] for name, series in data["series"].items()
    }
    data["generated_at"] = data["generated_at"].isoformat()
    return JsonResponse(data)


@require_GET
def prometheus(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    o = _refreshed_overview()
    lines = [
        "# TYPE opendmp_records_active gauge",
        f"opendmp_records_active {o.records_active}",
        "# TYPE opendmp_records_closed gauge",
        f"opendmp_records_closed {o.records_closed}",
        "# TYPE opendmp_records_fed gauge",
        f"opendmp_records_fed {o.records_fed}",
        "# TYPE opendmp_documents_published_total counter",
        f"opendmp_documents_published_total {o.documents_published}",
        "# TYPE opendmp_documents_retrieved_total counter",
        f"opendmp_documents_retrieved_total {o.retrievals}",
        "# TYPE opendmp_document_queries_total counter",
        f"opendmp_document_queries_total {o.queries}",
        "# TYPE opendmp_access_denied_24h gauge",
        f"opendmp_access_denied_24h {o.denials_24h}",
        "# TYPE opendmp_http_requests_24h gauge",
        f"opendmp_http_requests_24h {o.requests_24h}",
        "# TYPE opendmp_http_server_errors_24h gauge",
        f"opendmp_http_server_errors_24h {o.server_errors_24h}",
        "# TYPE opendmp_support_open_incidents gauge",
        f"opendmp_support_open_incidents {o.open_incidents}",
    ]
    lines += [
        f'opendmp_exceptional_access_24h{{mode="{mode}"}} {count}'
        for mode, count in o.exceptional_accesses_24h.items()
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
