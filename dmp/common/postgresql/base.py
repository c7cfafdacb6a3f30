"""Django's PostgreSQL backend, but a connection that served a request a moment ago is trusted.

With `CONN_HEALTH_CHECKS`, Django sends `SELECT 1` before the first query of every request that
reuses a connection: one round trip and 0.1 M instructions of each web-service call (ITI-43 does
five statements). A connection found good less than `TRUSTED_FOR` seconds ago (its request ended
without a database error, or Django checked it after one) is not checked again; one idle longer
is, as before. If the server went away within that second, the request fails as it would have had
the server gone a moment later, and Django closes the connection at its end (`errors_occurred`):
the worker's next request connects afresh.
"""

from __future__ import annotations

import time
from typing import Any, Final

from django.db.backends.postgresql import base

TRUSTED_FOR: Final = 1.0


def _now() -> float:
    return time.monotonic()


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trusted_until = 0.0

    def _checked(self) -> bool:
        done: bool = self.health_check_done
        return done

    def close_if_unusable_or_obsolete(self) -> None:
        # Called as each request starts and ends. At the end of one that used the connection
        # (checked or trusted at its first query: `health_check_done`) without a database error,
        # or as the next starts, after Django checked it at the end of one that met an error.
        served = self.connection is not None and self._checked() and not self.errors_occurred
        super().close_if_unusable_or_obsolete()
        if served and self.connection is not None:
            self._trusted_until = _now() + TRUSTED_FOR

    def close_if_health_check_failed(self) -> None:
        if self.connection is not None and not self._checked() and _now() < self._trusted_until:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
