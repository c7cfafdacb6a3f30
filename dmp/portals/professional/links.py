"""TD0.9 contextual opening: a link from the PS's software to a page of a patient's record.

The software asks the DMP (over its authenticated channel) for a link and opens it in the
browser. The link is signed with the server's secret (salted), lives at most `MAX_AGE`, and
opens the portal once: its nonce is stored when used. Tampering, expiry and replay fail alike.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Final

from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse

from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.identity.ins import Ins, InsAuthority, InvalidIns, parse_ins
from dmp.portals.professional.models import UsedContextLink

SALT: Final = "opendmp.portals.professional.context-link"
MAX_AGE: Final = dt.timedelta(minutes=2)
PAGES: Final = ("record", "documents", "upload")


class LinkRejected(DomainError):
    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True)
class ContextLink:
    professional_id: str  # PS_IdNat
    structure_id: str
    ins: Ins
    page: str
    nonce: str


def contextual_link(
    *, professional_id: str, ins: Ins, page: str = "documents", structure_id: str = ""
) -> str:
    """The path of a link opening the portal as `professional_id` on `page` of the record of `ins`."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}")
    token = signing.dumps(
        {
            "ps": professional_id,
            "st": structure_id,
            "ins": ins.value,
            "auth": ins.authority.value,
            "page": page,
            "nonce": secrets.token_urlsafe(24),
        },
        salt=SALT,
        compress=True,
    )
    return reverse("professional_portal:context_open", args=[token])


def consume_link(token: str) -> ContextLink:
    """Check signature and age, then burn the nonce; raise `LinkRejected` otherwise."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired as exc:
        raise LinkRejected("this link has expired") from exc
    except signing.BadSignature as exc:
        raise LinkRejected("invalid link") from exc
    try:
        ins = parse_ins(str(data["ins"]), InsAuthority(str(data["auth"])))
        link = ContextLink(
            professional_id=str(data["ps"]),
            structure_id=str(data.get("st", "")),
            ins=ins,
            page=str(data["page"]),
            nonce=str(data["nonce"]),
        )
    except (KeyError, TypeError, ValueError, InvalidIns) as exc:
        raise LinkRejected("invalid link") from exc
    if link.page not in PAGES or not link.nonce:
        raise LinkRejected("invalid link")
    now = clock.now()
    try:
        with transaction.atomic():
            UsedContextLink.objects.create(nonce=link.nonce[:64], used_at=now, expires_at=now + MAX_AGE)
    except IntegrityError as exc:
        raise LinkRejected("this link was already used") from exc
    UsedContextLink.objects.filter(expires_at__lt=now - MAX_AGE).delete()
    return link
