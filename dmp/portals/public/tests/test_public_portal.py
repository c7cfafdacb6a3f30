"""The communication portal: public pages, compatible software list, contact form."""

from __future__ import annotations

import pytest
from django.test import Client

from dmp.compat.services import software_register
from dmp.portals.public.views import CONTACT_LIMIT_PER_HOUR
from dmp.support.models import Ticket

PAGES = [
    "/",
    "/patients",
    "/professionnels",
    "/faq",
    "/logiciels-dmp-compatibles",
    "/contact",
    "/accessibilite",
    "/mentions-legales",
]


@pytest.mark.parametrize("path", PAGES)
def test_public_pages_render_in_french_with_a_strict_csp(db, client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert b'lang="fr"' in response.content
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "object-src 'none'" in response["Content-Security-Policy"]


def test_pages_are_available_in_english(db, client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert b'lang="en"' in response.content
    assert b"The Shared Medical Record (DMP)" in response.content
    # The frame every page shares (templates/base.html) and the agents' login page, too.
    assert b"Skip to content" in response.content
    assert b"Aller au contenu" not in response.content
    agents = client.get("/staff/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert b"Staff sign-in" in agents.content


def test_the_compatible_software_list_shows_only_active_public_products(db, client):
    software_register(vendor="Éditeur Ouvert", name="MédiLogiciel", versions="4.2")
    hidden, _ = software_register(vendor="Caché", name="Interne")
    hidden.is_public = False
    hidden.save()
    content = client.get("/logiciels-dmp-compatibles").content.decode()
    assert "MédiLogiciel" in content
    assert "Interne" not in content


def contact(client: Client, **overrides: str):
    page = client.get("/contact")
    data = {
        "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
        "requester_kind": "PATIENT",
        "requester_name": "Alice Martin",
        "requester_contact": "alice@example.org",
        "category": "INFO",
        "subject": "Question",
        "description": "Comment fermer mon DMP ?",
        "website": "",
    }
    data.update(overrides)
    return client.post("/contact", data)


def test_the_contact_form_opens_a_support_ticket(db):
    client = Client(enforce_csrf_checks=True)
    response = contact(client)
    ticket = Ticket.objects.get()
    assert ticket.channel == Ticket.Channel.WEB
    assert ticket.reference.encode() in response.content


def test_the_contact_form_rejects_bad_input_and_robots_and_creates_nothing(db):
    client = Client(enforce_csrf_checks=True)
    response = contact(client, requester_contact="nope", subject="")
    assert response.status_code == 200
    assert b"error-summary" in response.content
    contact(client, website="http://spam.example")
    assert Ticket.objects.count() == 0
    assert client.post("/contact", {"subject": "no token"}).status_code == 403


def test_the_contact_form_is_throttled(db):
    client = Client(enforce_csrf_checks=True)
    for _ in range(5):
        contact(client)
    response = contact(client)
    assert b"Trop de demandes" in response.content
    assert Ticket.objects.count() == 5


def test_behind_the_proxy_the_contact_limit_counts_each_sender_on_their_own(db):
    for i in range(CONTACT_LIMIT_PER_HOUR + 1):
        response = contact(Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"))
        assert b"Trop de demandes" not in response.content
    assert Ticket.objects.count() == CONTACT_LIMIT_PER_HOUR + 1
    same = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.0")
    for _ in range(CONTACT_LIMIT_PER_HOUR - 1):
        contact(same)
    assert b"Trop de demandes" in contact(same).content


def test_the_addresses_of_one_ipv6_64_share_one_contact_limit(db):
    """Each address of a /64 had its own limit (found by review)."""
    for i in range(CONTACT_LIMIT_PER_HOUR):
        contact(Client(REMOTE_ADDR=f"2001:db8:9:1::{i + 1:x}"))
    assert Ticket.objects.count() == CONTACT_LIMIT_PER_HOUR
    assert b"Trop de demandes" in contact(Client(REMOTE_ADDR="2001:db8:9:1::ffff")).content
    assert Ticket.objects.count() == CONTACT_LIMIT_PER_HOUR
    assert b"Trop de demandes" not in contact(Client(REMOTE_ADDR="2001:db8:9:2::1")).content


def test_a_forged_forwarded_address_does_not_escape_the_contact_limit(db):
    for i in range(CONTACT_LIMIT_PER_HOUR):
        contact(Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"))
    forger = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert b"Trop de demandes" in contact(forger).content
