"""Request metrics (load): counts, status classes and latency, flushed to hourly counters.

Each process accumulates in memory and flushes at most every few seconds with additive
updates, so gunicorn workers never contend on a per-request write.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from dmp.common import clock
from dmp.pilotage.services import CounterKey, add_counters, hour_of

FLUSH_SECONDS = 5.0


def request_area(request: HttpRequest) -> str:
    """The first segment of the URL pattern that served the request, "other" if none did.

    Taken from the pattern and not from the path, so that the dimensions are bounded by the
    URL configuration: a path made up by any anonymous client (404s) adds no counter row.
    """
    match = request.resolver_match
    if match is None:
        return "other"
    return match.route.split("/", 1)[0][:32] or "home"


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._lock = threading.Lock()
        self._pending: Counter[CounterKey] = Counter()
        self._last_flush = time.monotonic()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        hour = hour_of(clock.now())
        status_class = f"{response.status_code // 100}xx"
        area = request_area(request)
        with self._lock:
            self._pending[(hour, "http_requests", status_class)] += 1
            self._pending[(hour, "http_area", area)] += 1
            self._pending[(hour, "http_latency_ms", "")] += elapsed_ms
            due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
            if due:
                pending, self._pending = self._pending, Counter()
                self._last_flush = time.monotonic()
        if due:
            self._flush(pending)
        return response

    def _flush(self, pending: Counter[CounterKey]) -> None:
        try:
            add_counters(pending)
        except Exception:  # noqa: BLE001 - metrics must never break a request; retried next flush
            with self._lock:
                self._pending.update(pending)
