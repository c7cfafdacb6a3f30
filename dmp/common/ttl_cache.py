"""Per-process memory of slowly changing reference rows (certificates, structures, software).

Every SOAP call and every FHIR token check looks the same few rows up; remembering them for a
few seconds spares 3 database round trips per request. A change made elsewhere (another worker,
an import) is seen after at most `OPENDMP_REFERENCE_CACHE_SECONDS`; a change made through a
service of this process clears the cache at once. 0 turns the memory off (ADR 0008).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.conf import settings

V = TypeVar("V")

_ALL: list[TtlCache[object]] = []


class TtlCache(Generic[V]):
    def __init__(self, name: str, *, max_entries: int = 10_000) -> None:
        self.name = name
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        _ALL.append(self)  # type: ignore[arg-type]

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The remembered value of `key`, or `load()` remembered for the configured delay."""
        seconds: int = settings.OPENDMP_REFERENCE_CACHE_SECONDS
        if seconds <= 0:
            return load()
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (now + seconds, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def clear_reference_caches() -> None:
    """Forget everything (after a change through a service; between tests)."""
    for cache in _ALL:
        cache.clear()
