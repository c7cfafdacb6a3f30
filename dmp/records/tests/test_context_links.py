"""TD0.9 links: an opaque single-use nonce whose facts the DMP keeps; the INS is never in the link."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import re
import zlib

import pytest

from dmp.common import clock
from dmp.records.context_links import (
    LinkRejected,
    consume_context_token,
    issue_context_token,
    read_context_token,
)
from dmp.records.models import IssuedContextLink


def readable_payload(token: str) -> str:
    """What anyone reading the URL gets out of a token without any key (base64, zlib)."""
    payload = token.split(":", 1)[0].lstrip(".")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except ValueError:
        return ""
    with contextlib.suppress(zlib.error):  # the old links were compressed, not all tokens are
        raw = zlib.decompress(raw)
    return raw.decode("utf-8", "replace")


def issue(personas, **changes) -> str:
    values = {
        "professional_id": personas.dr_bernard.national_id,
        "ins": personas.alice.identifier,
        "authentication": "DIRECTE",
        "page": "documents",
    }
    values.update(changes)
    return issue_context_token(**values)


def test_the_link_is_an_opaque_nonce_that_does_not_reveal_the_ins(personas):
    token = issue(personas)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert personas.alice.ins not in readable_payload(token)
    assert personas.alice.ins not in token
    # The facts stay on the server, which keeps the nonce's hash only, not the nonce.
    row = IssuedContextLink.objects.get()
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in vars(row).values()}
    assert row.patient_ins == personas.alice.ins
    link = read_context_token(token)
    assert (link.professional_id, link.ins, link.page) == (
        personas.dr_bernard.national_id,
        personas.alice.identifier,
        "documents",
    )


def test_reading_a_link_leaves_it_unused_and_consuming_it_uses_it_once(personas):
    token = issue(personas)
    read_context_token(token)
    assert IssuedContextLink.objects.get().used_at is None
    assert consume_context_token(token).ins == personas.alice.identifier
    used_at = IssuedContextLink.objects.get().used_at
    assert used_at is not None
    with pytest.raises(LinkRejected, match="already used"):
        consume_context_token(token)
    with pytest.raises(LinkRejected, match="already used"):
        read_context_token(token)
    assert IssuedContextLink.objects.get().used_at == used_at


def test_an_expired_link_is_refused_and_stays_unused(personas, monkeypatch):
    token = issue(personas)
    later = clock.now() + dt.timedelta(minutes=2, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(LinkRejected, match="expired"):
        consume_context_token(token)
    assert IssuedContextLink.objects.get().used_at is None


@pytest.mark.parametrize("token", ["", "x" * 43, "x" * 500])
def test_an_unknown_token_opens_nothing(personas, token):
    issue(personas)
    with pytest.raises(LinkRejected, match="invalid link"):
        consume_context_token(token)
    assert IssuedContextLink.objects.get().used_at is None


def test_an_unknown_page_issues_no_link(personas):
    with pytest.raises(LinkRejected, match="unknown page"):
        issue(personas, page="../admin")
    assert not IssuedContextLink.objects.exists()


def test_issuing_forgets_links_long_expired(personas, monkeypatch):
    issue(personas)
    later = clock.now() + dt.timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    fresh = issue(personas)
    assert list(IssuedContextLink.objects.values_list("digest", flat=True)) == [
        hashlib.sha256(fresh.encode()).hexdigest()
    ]


def test_the_link_keeps_the_secret_connection_it_was_asked_in(personas):
    secret = issue(personas, ins=personas.leo.identifier, secret_connection=True)
    ordinary = issue(personas, ins=personas.leo.identifier)
    assert consume_context_token(secret).secret_connection is True
    assert consume_context_token(ordinary).secret_connection is False
