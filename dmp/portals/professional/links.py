"""TD0.9 contextual opening: a link from the PS's software to a page of a patient's record.

The software asks the DMP (over its authenticated channel) for a link and opens it in the
browser. The link is an opaque nonce whose facts the DMP keeps (`dmp.records.context_links`):
it lives at most `MAX_AGE` and opens the portal once. Unknown, expired and used links fail alike.
"""

from __future__ import annotations

from django.urls import reverse

from dmp.access.actors import AuthenticationMode
from dmp.identity.ins import Ins
from dmp.records.context_links import (
    MAX_AGE,
    PAGES,
    ContextLink,
    LinkRejected,
    consume_context_token,
    issue_context_token,
    read_context_token,
)

__all__ = ["MAX_AGE", "PAGES", "ContextLink", "LinkRejected", "consume_link", "contextual_link", "read_link"]


def contextual_link(
    *,
    professional_id: str,
    ins: Ins,
    page: str = "documents",
    structure_id: str = "",
    authentication: AuthenticationMode = AuthenticationMode.DIRECT,
    secret_connection: bool = False,
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
        secret_connection=secret_connection,
    )
    return reverse("professional_portal:context_open", args=[token])


def read_link(token: str) -> ContextLink:
    """What the link opens, the link left unused; raise `LinkRejected` when it opens nothing."""
    return read_context_token(token)


def consume_link(token: str) -> ContextLink:
    """What the link opens, the link used up; raise `LinkRejected` when it opens nothing."""
    return consume_context_token(token)
