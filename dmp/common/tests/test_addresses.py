"""The client address behind the TLS proxy, and the staff login budget keyed on it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory

from dmp.common.addresses import budget_key, client_address
from dmp.common.staff import HELPDESK_GROUP, ThrottledLoginView


@pytest.fixture
def proxies(settings):
    settings.OPENDMP_TRUSTED_PROXIES = ["127.0.0.1", "::1", "10.0.0.2"]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        # Straight from the client: its own address, whatever it claims.
        ("198.51.100.7", None, "198.51.100.7"),
        ("198.51.100.7", "203.0.113.5", "198.51.100.7"),
        # Through the proxy: the address it appended.
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("::1", " 2001:DB8::1 ", "2001:db8::1"),
        # A client sending its own X-Forwarded-For through the proxy: the proxy's hop wins.
        ("127.0.0.1", "192.0.2.99, 203.0.113.5", "203.0.113.5"),
        # Two trusted proxies in a row.
        ("127.0.0.1", "192.0.2.99, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        # The proxy itself, or a proxy that wrote nothing usable: the proxy's address.
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "10.0.0.2", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "192.0.2.99, unknown", "127.0.0.1"),
    ],
)
def test_the_client_address_is_believed_from_trusted_proxies_only(proxies, remote, forwarded, expected):
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, **headers)
    assert client_address(request) == expected


def _staff_member() -> None:
    user = get_user_model().objects.create_user("helene", password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=HELPDESK_GROUP)[0])


def test_behind_the_proxy_failed_staff_logins_lock_out_their_sender_only(db):
    _staff_member()
    attacker = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for i in range(ThrottledLoginView.max_failures):
        attacker.post("/staff/login/", {"username": f"nobody{i}", "password": "x"})
    assert attacker.post("/staff/login/", {"username": "nobody", "password": "x"}).status_code == 429
    helene = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.10")
    response = helene.post("/staff/login/", {"username": "helene", "password": "correct horse battery"})
    assert response.status_code == 302


def test_a_forged_forwarded_address_does_not_escape_the_staff_login_budget(db):
    for i in range(ThrottledLoginView.max_failures):
        forger = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        forger.post("/staff/login/", {"username": f"nobody{i}", "password": "x"})
    forger = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert forger.post("/staff/login/", {"username": "other", "password": "x"}).status_code == 429


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        # Every address of a subscriber's /64 counts on one budget.
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        # An IPv4 client seen through an IPv6 socket is that IPv4 address.
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("", ""),
    ],
)
def test_budgets_are_kept_per_ipv4_address_and_per_ipv6_64(address, expected):
    assert budget_key(address) == expected


def test_failed_staff_logins_from_one_ipv6_64_share_one_budget(db):
    """Each address of a /64 had its own budget (found by review): a subscriber holding 2^64
    addresses tried without end."""
    _staff_member()
    for i in range(ThrottledLoginView.max_failures):
        prober = Client(REMOTE_ADDR=f"2001:db8:1:2::{i + 1:x}")
        prober.post("/staff/login/", {"username": f"nobody{i}", "password": "x"})
    elsewhere_in_the_64 = Client(REMOTE_ADDR="2001:db8:1:2:abcd::99")
    refused = elsewhere_in_the_64.post(
        "/staff/login/", {"username": "helene", "password": "correct horse battery"}
    )
    assert refused.status_code == 429
    assert "_auth_user_id" not in elsewhere_in_the_64.session
    neighbour = Client(REMOTE_ADDR="2001:db8:1:3::1")
    response = neighbour.post("/staff/login/", {"username": "helene", "password": "correct horse battery"})
    assert response.status_code == 302
