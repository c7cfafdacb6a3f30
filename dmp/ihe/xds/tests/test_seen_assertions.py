"""Assertion ids: each accepted once, forgotten once their validity window has passed."""

from __future__ import annotations

import datetime as dt

import pytest

from dmp.access.actors import AccessMode, AuthenticationMode
from dmp.common import clock
from dmp.ihe.xds import vihf
from dmp.ihe.xds.models import SeenAssertion
from dmp.ihe.xds.vihf import VihfFacts, VihfRejected, _consume

pytestmark = pytest.mark.django_db


def facts(assertion_id: str, not_on_or_after: dt.datetime) -> VihfFacts:
    return VihfFacts(
        assertion_id=assertion_id,
        not_on_or_after=not_on_or_after,
        certificate_fingerprint="",
        subject_id="810001234567",
        subject_name="",
        profession="10",
        specialty="",
        sector="",
        structure_id="",
        patient=None,
        mode=AccessMode.NORMAL,
        reason="",
        authentication=AuthenticationMode.DIRECT,
        lps_id="",
        lps_name="",
        lps_version="",
        homologation="",
        secret_connection=False,
    )


def test_an_assertion_id_is_accepted_once_and_expired_ids_are_forgotten(monkeypatch):
    monkeypatch.setattr(vihf, "_FORGET", vihf._Every(dt.timedelta(minutes=5)))
    now = clock.now()
    SeenAssertion.objects.create(assertion_id="_old", expires_at=now - dt.timedelta(minutes=1))
    SeenAssertion.objects.create(assertion_id="_live", expires_at=now + dt.timedelta(minutes=1))

    _consume(facts("_a1", now + dt.timedelta(hours=1)))  # a worker's first: expired ids forgotten
    assert set(SeenAssertion.objects.values_list("assertion_id", flat=True)) == {"_live", "_a1"}
    assert SeenAssertion.objects.get(assertion_id="_a1").seen_at is not None

    with pytest.raises(VihfRejected, match="replayed"):
        _consume(facts("_a1", now + dt.timedelta(hours=1)))

    SeenAssertion.objects.create(assertion_id="_old2", expires_at=now - dt.timedelta(minutes=1))
    for ending in "0123456789abcdef":  # whatever the ids, no purge before the period is over
        _consume(facts(f"_b{ending}", now + dt.timedelta(hours=1)))
    assert SeenAssertion.objects.filter(assertion_id="_old2").exists()


def test_expired_ids_are_forgotten_once_the_period_is_over(monkeypatch):
    forget = vihf._Every(dt.timedelta(minutes=5))
    monkeypatch.setattr(vihf, "_FORGET", forget)
    now = clock.now()
    _consume(facts("_c1", now + dt.timedelta(hours=1)))
    SeenAssertion.objects.create(assertion_id="_old", expires_at=now - dt.timedelta(minutes=1))
    assert not forget.due(now + dt.timedelta(minutes=4))
    monkeypatch.setattr(clock, "now", lambda: now + dt.timedelta(minutes=6))
    _consume(facts("_c2", now + dt.timedelta(hours=1)))
    assert not SeenAssertion.objects.filter(assertion_id="_old").exists()
