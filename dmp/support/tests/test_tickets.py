"""Helpdesk tickets: creation, history, transitions, statistics, staff-only access."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.common.errors import ValidationFailed
from dmp.common.staff import HELPDESK_GROUP
from dmp.support.models import Ticket, TicketEvent
from dmp.support.selectors import ticket_stats
from dmp.support.services import TicketRequest, ticket_change_status, ticket_comment, ticket_open

REQUEST = TicketRequest(
    "PHONE", "PATIENT", "Mme Martin", "alice@example.org", "ACCESS", "Code perdu", "Détails"
)


@pytest.fixture
def agent(db):
    user = get_user_model().objects.create_user("agent", password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=HELPDESK_GROUP)[0])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_it_opens_tickets_with_sequential_references(db):
    first = ticket_open(REQUEST, author="agent")
    second = ticket_open(REQUEST, author="agent")
    assert first.reference.startswith("SUP-")
    assert first.reference.endswith("000001")
    assert second.reference.endswith("000002")
    assert list(first.events.values_list("kind", flat=True)) == [TicketEvent.Kind.CREATED]


def test_it_rejects_an_invalid_ticket_and_creates_nothing(db):
    bad = TicketRequest("FAX", "PATIENT", "", "not a contact", "ACCESS", "", "")
    with pytest.raises(ValidationFailed) as error:
        ticket_open(bad, author="agent")
    assert {p.location for p in error.value.problems} == {
        "channel",
        "requester_name",
        "requester_contact",
        "subject",
        "description",
    }
    assert Ticket.objects.count() == 0


def test_a_closed_ticket_cannot_be_reopened(db):
    ticket = ticket_open(REQUEST, author="agent")
    ticket_change_status(ticket, author="agent", to_status=Ticket.Status.CLOSED)
    with pytest.raises(ValidationFailed):
        ticket_change_status(ticket, author="agent", to_status=Ticket.Status.OPEN)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.CLOSED


def test_statistics_count_categories_and_response_times(db):
    ticket = ticket_open(REQUEST, author="agent")
    ticket_comment(ticket, author="agent", text="Nouveau code envoyé", public=True)
    ticket_change_status(ticket, author="agent", to_status=Ticket.Status.RESOLVED)
    ticket_open(TicketRequest("WEB", "PS", "Dr X", "x@example.org", "INCIDENT", "Lent", "Lent"), author="web")
    stats = ticket_stats(days=7)
    assert stats.created == 2
    assert stats.by_category == {"ACCESS": 1, "INCIDENT": 1}
    assert stats.open_incidents == 1
    assert stats.median_first_response_minutes is not None
    assert stats.median_resolution_hours is not None


def test_tickets_per_day_follow_the_french_calendar(db, monkeypatch):
    # 00:30 on 11 March in Paris is still 10 March in UTC.
    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2026, 3, 10, 23, 30, tzinfo=dt.UTC))
    ticket_open(REQUEST, author="agent")
    assert ticket_stats(days=30).per_day == {"2026-03-11": 1}


def test_pages_are_staff_only(db, client):
    response = client.get("/support/")
    assert response.status_code == 302
    assert "/staff/login/" in response["Location"]
    get_user_model().objects.create_user("visitor", password="correct horse battery")
    client.login(username="visitor", password="correct horse battery")
    assert client.get("/support/").status_code == 403


def test_an_agent_creates_and_resolves_a_ticket_through_the_ui(agent):
    page = agent.get("/support/tickets/new")
    token = page.cookies["csrftoken"].value
    response = agent.post(
        "/support/tickets/new",
        {
            "csrfmiddlewaretoken": token,
            "channel": "PHONE",
            "requester_kind": "PS",
            "requester_name": "Dr Petit",
            "requester_contact": "+33 6 12 34 56 78",
            "category": "USAGE",
            "priority": "P3",
            "subject": "Bris de glace",
            "description": "Comment déclarer un motif ?",
        },
    )
    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert ticket.reference in response["Location"]
    response = agent.post(
        f"/support/tickets/{ticket.reference}/status", {"csrfmiddlewaretoken": token, "status": "RESOLVED"}
    )
    assert response.status_code == 302
    assert Ticket.objects.get().status == Ticket.Status.RESOLVED


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(agent):
    response = agent.post("/support/tickets/new", {"channel": "PHONE", "subject": "x"})
    assert response.status_code == 403
    assert Ticket.objects.count() == 0


def test_record_lookup_shows_status_only_and_is_audited(agent, personas):
    page = agent.get("/support/records")
    token = page.cookies["csrftoken"].value
    response = agent.post(
        "/support/records",
        {"csrfmiddlewaretoken": token, "ins": personas.alice.ins, "authority": personas.alice.ins_authority},
    )
    assert response.status_code == 200
    assert b"ACTIF" in response.content
    assert AuditEvent.objects.filter(
        action=AuditAction.RECORD_TEST, actor_kind="helpdesk", actor_id="agent"
    ).exists()
