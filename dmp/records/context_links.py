"""TD0.9 contextual opening tokens: who opens which page of which patient's record.

The professional's software asks for one over its authenticated channel (SOAP with a VIHF)
and opens `/pro/ouvrir/<token>` in the browser. A token is signed with the server's secret
(salted), lives at most `MAX_AGE`, and is meant to be used once: the portal burns its nonce.
This module holds the format only, so that channels issue tokens without importing the portal.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Final

from django.core import signing

from dmp.common.errors import DomainError, ErrorCode
from dmp.identity.ins import Ins, InsAuthority, InvalidIns, parse_ins

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
    # How the software authenticated the PS (AuthenticationMode value): the portal session
    # keeps it, so a link asked for in indirect mode never opens a direct-mode session.
    authentication: str = "INDIRECTE"


def issue_context_token(
    *, professional_id: str, ins: Ins, authentication: str, page: str = "documents", structure_id: str = ""
) -> str:
    if page not in PAGES:
        raise LinkRejected(f"unknown page {page!r}; expected one of {', '.join(PAGES)}")
    return signing.dumps(
        {
            "ps": professional_id,
            "st": structure_id,
            "ins": ins.value,
            "auth": ins.authority.value,
            "page": page,
            "am": authentication,
            "nonce": secrets.token_urlsafe(24),
        },
        salt=SALT,
        compress=True,
    )


def read_context_token(token: str) -> ContextLink:
    """Signature and age checked; the caller burns the nonce."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired as exc:
        raise LinkRejected("this link has expired") from exc
    except signing.BadSignature as exc:
        raise LinkRejected("invalid link") from exc
    try:
        link = ContextLink(
            professional_id=str(data["ps"]),
            structure_id=str(data.get("st", "")),
            ins=parse_ins(str(data["ins"]), InsAuthority(str(data["auth"]))),
            page=str(data["page"]),
            nonce=str(data["nonce"]),
            authentication=str(data.get("am", "INDIRECTE")),
        )
    except (KeyError, TypeError, ValueError, InvalidIns) as exc:
        raise LinkRejected("invalid link") from exc
    if link.page not in PAGES or not link.nonce:
        raise LinkRejected("invalid link")
    return link
