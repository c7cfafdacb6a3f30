"""The dashboard's background poll does not keep an idle operator session alive.

With the session saved on every request, the panel the dashboard fetches every 15 s pushed the
30-minute idle deadline back each time (found by review): an unattended operator screen stayed
logged in forever. Time is simulated by moving the stored deadline, as the passing minutes would.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from dmp.common.staff import OPERATOR_GROUP


def operator_client() -> Client:
    user = get_user_model().objects.create_user("ops", password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=OPERATOR_GROUP)[0])
    client = Client()
    client.force_login(user)
    return client


def idle_deadline(client: Client) -> dt.datetime:
    return Session.objects.get(session_key=client.session.session_key).expire_date


def left_alone_until(client: Client, remaining: dt.timedelta) -> dt.datetime:
    """The session as it stands when only `remaining` is left before its idle deadline."""
    deadline = timezone.now() + remaining
    Session.objects.filter(session_key=client.session.session_key).update(expire_date=deadline)
    return deadline


def test_polls_leave_the_idle_deadline_where_the_operator_left_it(personas):
    operator = operator_client()
    deadline = left_alone_until(operator, dt.timedelta(minutes=1))
    for _ in range(3):
        panel = operator.get("/pilotage/panel", HTTP_HX_REQUEST="true")
        assert panel.status_code == 200
        assert b"DMP actifs" in panel.content
    assert idle_deadline(operator) == deadline
    # The operator's own request still slides the deadline.
    assert operator.get("/pilotage/").status_code == 200
    assert idle_deadline(operator) > timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)


def test_after_thirty_minutes_of_polls_alone_the_session_is_over(personas):
    operator = operator_client()
    session = Session.objects.filter(session_key=operator.session.session_key)
    polls = settings.SESSION_COOKIE_AGE // 15
    answers = []
    for _ in range(polls):
        # 15 s pass: the deadline, if nothing moves it, is 15 s nearer.
        session.update(expire_date=session.get().expire_date - dt.timedelta(seconds=15))
        answers.append(operator.get("/pilotage/panel", HTTP_HX_REQUEST="true").status_code)
    assert answers[:-1] == [200] * (polls - 1)
    assert answers[-1] == 302
    assert operator.get("/pilotage/").status_code == 302
