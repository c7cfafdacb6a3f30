"""The web services go through their own middleware chain, the portals through theirs (ADR 0012)."""

from __future__ import annotations

import pytest
from django.conf import settings

from dmp.common.wsgi import ChannelDispatcher, call_wsgi


@pytest.fixture
def application() -> ChannelDispatcher:
    return ChannelDispatcher()


SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


@pytest.mark.django_db
def test_a_web_service_call_keeps_the_security_headers_and_skips_the_browser_middlewares(application):
    answer = call_wsgi(
        application,
        "POST",
        "/ihe/xds/",
        b"not xml",
        CONTENT_TYPE="application/soap+xml",
        HTTP_ACCEPT_LANGUAGE="fr",
        HTTP_COOKIE="sessionid=abc; csrftoken=def",
    )
    assert answer.status == 400
    assert b"Fault" in answer.content
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    assert answer.headers["Content-Language"] == "en"
    # The portals' chain answers with Vary: Accept-Language, Cookie and sets a CSRF cookie.
    assert "Vary" not in answer.headers
    assert "Set-Cookie" not in answer.headers
    answer = call_wsgi(application, "GET", "/fhir/metadata", HTTP_ACCEPT_LANGUAGE="fr")
    assert answer.status == 200
    assert answer.headers["Content-Language"] == "en"
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    assert "Vary" not in answer.headers


@pytest.mark.django_db
def test_the_portals_keep_their_whole_chain(application):
    answer = call_wsgi(application, "GET", "/", HTTP_ACCEPT_LANGUAGE="fr")
    assert answer.status == 200
    assert answer.headers["Content-Language"] == "fr"
    assert {"Cookie", "Accept-Language"} <= {v.strip() for v in answer.headers["Vary"].split(",")}
    assert "csrftoken=" in answer.headers["Set-Cookie"]
    answer = call_wsgi(application, "GET", "/pro/", HTTP_ACCEPT_LANGUAGE="en")
    assert (answer.status, answer.headers["Location"]) == (302, "/pro/connexion/?next=%2Fpro%2F")
    assert answer.headers["Content-Language"] == "en"
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    # Paths that only begin like a web service's are the portals'.
    answer = call_wsgi(application, "GET", "/fhirx", HTTP_ACCEPT_LANGUAGE="fr")
    assert answer.headers["Content-Language"] == "fr"


def test_the_web_services_chain_is_the_portals_chain_less_the_browser_middlewares():
    chain, full = settings.MACHINE_CHANNEL_MIDDLEWARE, settings.MIDDLEWARE
    # In MIDDLEWARE's order, and nothing MIDDLEWARE lacks.
    assert [name for name in full if name in chain] == chain
    kept = {name.rsplit(".", 1)[1] for name in chain}
    assert {
        "SecurityMiddleware",
        "SecurityHeadersMiddleware",
        "MachineChannelLanguageMiddleware",
        "XFrameOptionsMiddleware",
        "RequestMetricsMiddleware",
    } == kept


def test_gunicorn_serves_the_dispatcher():
    from config.wsgi import application as served

    assert isinstance(served, ChannelDispatcher)
