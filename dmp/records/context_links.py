"""TD0.9 contextual opening links: who opens which page of which patient's record.

The professional's software asks for one over its authenticated channel (SOAP with a VIHF)
and opens `/pro/ouvrir/<token>` in the browser. The token is an opaque random nonce: what it
opens (PS, structure, INS, page, authentication mode, secret connection) is kept in
`IssuedContextLink`, because a URL lands in browser histories and proxy, server and software
logs, and the patient's INS must never be read there. A link lives at most `MAX_AGE` and opens
the portal once. Channels issue links through this module without importing the portal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from django.db import transaction

from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.identity.ins import Ins, InsAuthority, InvalidIns, parse_ins
from dmp.records.models import IssuedContextLink

MAX_AGE: Final = dt.timedelta(minutes=2)
PAGES: Final = ("record", "documents", "upload")
NONCE_BYTES: Final = 32
# A token longer than any nonce is not looked up at all.
MAX_TOKEN_LENGTH: Final = 64


class LinkRejected(DomainError):
    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True)
class ContextLink:
    professional_id: str  # PS_IdNat
    structure_id: str
    ins: Ins
    page: str
    # How the software authenticated the PS (AuthenticationMode value): the portal session
    # keeps it, so a link asked for in indirect mode never opens a direct-mode session.
    authentication: str = "INDIRECTE"
    # The VIHF was in a minor's secret connection (INVISIBLE_REPRESENTANTS_LEGAUX): the portal
    # session keeps it on this record, or its traces and uploads would reach the parents.
    secret_connection: bool = False
    # The legal entity that signed for `structure_id` (ADR 0011): the session's traces name it.
    signer_structure_id: str = ""


def _digest(token: str) -> str:
    # 256 random bits: a plain hash is enough to make the stored row useless as a link.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_context_token(
    *,
    professional_id: str,
    ins: Ins,
    authentication: str,
    page: str = "documents",
    structure_id: str = "",
    secret_connection: bool = False,
    signer_structure_id: str = "",
) -> str:
    """A new single-use token opening `page` of the record of `ins` as `professional_id`."""
    if page not in PAGES:
        raise LinkRejected(f"unknown page {page!r}; expected one of {', '.join(PAGES)}")
    token = secrets.token_urlsafe(NONCE_BYTES)
    now = clock.now()
    IssuedContextLink.objects.create(
        digest=_digest(token),
        professional_id=professional_id,
        structure_id=structure_id,
        patient_ins=ins.value,
        ins_authority=ins.authority.value,
        page=page,
        authentication=authentication,
        secret_connection=secret_connection,
        signer_structure_id=signer_structure_id,
        issued_at=now,
        expires_at=now + MAX_AGE,
    )
    # Kept one more MAX_AGE so that a late click is logged as expired, not as unknown.
    IssuedContextLink.objects.filter(expires_at__lt=now - MAX_AGE).delete()
    return token


def _issued(token: str) -> IssuedContextLink:
    row = None
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        row = IssuedContextLink.objects.filter(digest=_digest(token)).first()
    if row is None:
        raise LinkRejected("invalid link")
    if row.used_at is not None:
        raise LinkRejected("this link was already used")
    if row.expires_at <= clock.now():
        raise LinkRejected("this link has expired")
    return row


def _facts(row: IssuedContextLink) -> ContextLink:
    try:
        ins = parse_ins(row.patient_ins, InsAuthority(row.ins_authority))
    except (ValueError, InvalidIns) as exc:
        raise LinkRejected("invalid link") from exc
    return ContextLink(
        professional_id=row.professional_id,
        structure_id=row.structure_id,
        ins=ins,
        page=row.page,
        authentication=row.authentication,
        secret_connection=row.secret_connection,
        signer_structure_id=row.signer_structure_id,
    )


def read_context_token(token: str) -> ContextLink:
    """What a valid link (known, unused, not expired) opens, without using it up."""
    return _facts(_issued(token))


def consume_context_token(token: str) -> ContextLink:
    """What the link opens, using it up: `LinkRejected` when unknown, used or expired."""
    row = _issued(token)
    with transaction.atomic():
        # Conditional update: of two concurrent openings, one only finds the link unused.
        used = IssuedContextLink.objects.filter(
            pk=row.pk, used_at__isnull=True, expires_at__gt=clock.now()
        ).update(used_at=clock.now())
    if not used:
        raise LinkRejected("this link was already used")
    return _facts(row)
