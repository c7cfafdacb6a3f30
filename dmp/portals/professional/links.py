"""TD0.9 contextual opening: a link from the PS's software to a page of a patient's record.

The software asks the DMP (over its authenticated channel) for a link and opens it in the
browser. The link is signed with the server's secret (salted), lives at most `MAX_AGE`, and
opens the portal once: its nonce is stored when used. Tampering, expiry and replay fail alike.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.urls import reverse

from dmp.access.actors import AuthenticationMode
from dmp.common import clock
from dmp.identity.ins import Ins
from dmp.portals.professional.models import UsedContextLink
from dmp.records.context_links import (
    MAX_AGE,
    PAGES,
    ContextLink,
    LinkRejected,
    issue_context_token,
    read_context_token,
)

__all__ = ["PAGES", "ContextLink", "LinkRejected", "consume_link", "contextual_link"]


def contextual_link(
    *,
    professional_id: str,
    ins: Ins,
    page: str = "documents",
    structure_id: str = "",
    authentication: AuthenticationMode = AuthenticationMode.DIRECT,
) -> str:
    """The path of a link opening the portal as `professional_id` on `page` of the record of
    `ins`, in the authentication mode the software used."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}")
    token = issue_context_token(
        professional_id=professional_id,
        ins=ins,
        page=page,
        structure_id=structure_id,
        authentication=authentication.value,
    )
    return reverse("professional_portal:context_open", args=[token])


def consume_link(token: str) -> ContextLink:
    """Check signature and age, then burn the nonce; raise `LinkRejected` otherwise."""
    link = read_context_token(token)
    now = clock.now()
    try:
        with transaction.atomic():
            UsedContextLink.objects.create(nonce=link.nonce[:64], used_at=now, expires_at=now + MAX_AGE)
    except IntegrityError as exc:
        raise LinkRejected("this link was already used") from exc
    UsedContextLink.objects.filter(expires_at__lt=now - MAX_AGE).delete()
    return link
