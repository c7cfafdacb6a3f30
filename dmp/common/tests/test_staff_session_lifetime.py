"""A staff session ends after MAX_STAFF_SESSION_AGE, however busy (not only after idleness)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from dmp.common import clock
from dmp.common.staff import HELPDESK_GROUP, LOGGED_IN_AT, MAX_STAFF_SESSION_AGE

PASSWORD = "correct horse battery staple"


@pytest.fixture
def agent(db):
    user = get_user_model().objects.create_user("agent", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=HELPDESK_GROUP)[0])
    return user


def test_a_staff_session_ends_after_its_absolute_lifetime_however_active(agent, monkeypatch):
    client = Client()
    started = clock.now()
    response = client.post("/staff/login/", {"username": "agent", "password": PASSWORD})
    assert response.status_code == 302
    assert dt.datetime.fromisoformat(client.session[LOGGED_IN_AT]) - started < dt.timedelta(seconds=30)

    # Busy all day: each request well within the idle timeout.
    monkeypatch.setattr(clock, "now", lambda: started + MAX_STAFF_SESSION_AGE - dt.timedelta(minutes=1))
    assert client.get("/support/").status_code == 200

    monkeypatch.setattr(clock, "now", lambda: started + MAX_STAFF_SESSION_AGE + dt.timedelta(minutes=1))
    response = client.get("/support/")
    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/")
    assert "_auth_user_id" not in client.session
    # Logged in again, the count starts over.
    assert client.post("/staff/login/", {"username": "agent", "password": PASSWORD}).status_code == 302
    assert client.get("/support/").status_code == 200


def test_a_session_without_login_time_is_ended(agent):
    client = Client()
    client.force_login(agent)  # Django's login(): the session gets its login time
    assert client.get("/support/").status_code == 200
    session = client.session
    del session[LOGGED_IN_AT]  # as a session opened before the rule
    session.save()
    assert client.get("/support/").status_code == 302
    assert "_auth_user_id" not in client.session
