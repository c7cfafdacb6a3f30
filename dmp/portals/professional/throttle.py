"""A failure budget per client address (an IPv6 /64) for the PS portal's login endpoints.

Card and Pro Santé Connect logins are strong, but a script hammering them (forged proxy
headers, replayed codes, guessed demo cards) should be slowed down, not served forever.
"""

from __future__ import annotations

from typing import Final

from django.core.cache import cache
from django.http import HttpRequest

from dmp.common.addresses import budget_key, client_address

BUDGET: Final = 20
WINDOW_SECONDS: Final = 15 * 60


def _key(request: HttpRequest) -> str:
    return f"ps-login-failures:{budget_key(client_address(request))}"


def exhausted(request: HttpRequest) -> bool:
    return int(cache.get(_key(request), 0)) >= BUDGET


def spend(request: HttpRequest) -> None:
    key = _key(request)
    cache.add(key, 0, timeout=WINDOW_SECONDS)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=WINDOW_SECONDS)
