"""The address of the client, for everything keyed on it (throttles, failure budgets).

`client_address` is the address itself (logs, audit); `budget_key` is what a failure budget
is kept for: one IPv4 address, or one IPv6 /64, the smallest block a subscriber is given.

Behind the TLS-terminating proxy of a production node, REMOTE_ADDR is the proxy's address for
every request: a budget keyed on it is shared by everyone, and anyone exhausts it for all. The
proxy appends the address it received the request from to X-Forwarded-For; only the proxies
of OPENDMP_TRUSTED_PROXIES are believed, and only for the hops they wrote.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or behind trusted proxies the nearest address of X-Forwarded-For none of them has.

    The hops are read from the right: each trusted proxy appended the address it was reached
    from, whereas everything left of the first untrusted hop was written by the client itself
    and may be forged. A client that is not a trusted proxy cannot set the address at all.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    trusted = set(settings.OPENDMP_TRUSTED_PROXIES)
    if remote not in trusted:
        return remote
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed(hops):
        if hop in trusted:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            # Not what a proxy writes (or an empty header): keyed on the proxy, as without one.
            return remote
    return remote


def budget_key(address: str) -> str:
    """The IPv4 address, or the /64 of an IPv6 address, that a failure budget is counted on.

    An IPv6 subscriber routinely holds a whole /64 (2^64 addresses): counted per address, every
    try would come with a fresh budget. An IPv4 address mapped into IPv6 is that IPv4 address;
    anything that is not an address (no REMOTE_ADDR) is kept as it is.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)
