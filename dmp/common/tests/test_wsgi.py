"""The web services go through their own middleware chain, the portals through theirs (ADR 0012)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from dmp.common.wsgi import ChannelDispatcher, call_wsgi


def call(
    application: Any, method: str, path: str, body: bytes = b"", **environ: str
) -> tuple[int, dict[str, str], bytes]:
    answer = call_wsgi(application, method, path, body, **environ)
    return answer.status, answer.headers, answer.content


@pytest.fixture
def application() -> ChannelDispatcher:
    return ChannelDispatcher()


SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


@pytest.mark.django_db
def test_a_web_service_call_keeps_the_security_headers_and_skips_the_browser_middlewares(application):
    status, headers, content = call(
        application,
        "POST",
        "/ihe/xds/",
        b"not xml",
        CONTENT_TYPE="application/soap+xml",
        HTTP_ACCEPT_LANGUAGE="fr",
        HTTP_COOKIE="sessionid=abc; csrftoken=def",
    )
    assert status == 400
    assert b"Fault" in content
    assert all(name in headers for name in SECURITY_HEADERS)
    assert headers["Content-Language"] == "en"
    # The portals' chain answers with Vary: Accept-Language, Cookie and sets a CSRF cookie.
    assert "Vary" not in headers
    assert "Set-Cookie" not in headers
    status, headers, _ = call(application, "GET", "/fhir/metadata", HTTP_ACCEPT_LANGUAGE="fr")
    assert status == 200
    assert headers["Content-Language"] == "en"
    assert all(name in headers for name in SECURITY_HEADERS)
    assert "Vary" not in headers


@pytest.mark.django_db
def test_the_portals_keep_their_whole_chain(application):
    status, headers, _ = call(application, "GET", "/", HTTP_ACCEPT_LANGUAGE="fr")
    assert status == 200
    assert headers["Content-Language"] == "fr"
    assert {"Cookie", "Accept-Language"} <= {v.strip() for v in headers["Vary"].split(",")}
    assert "csrftoken=" in headers["Set-Cookie"]
    status, headers, _ = call(application, "GET", "/pro/", HTTP_ACCEPT_LANGUAGE="en")
    assert (status, headers["Location"]) == (302, "/pro/connexion/?next=%2Fpro%2F")
    assert headers["Content-Language"] == "en"
    assert all(name in headers for name in SECURITY_HEADERS)
    # Paths that only begin like a web service's are the portals'.
    status, headers, _ = call(application, "GET", "/fhirx", HTTP_ACCEPT_LANGUAGE="fr")
    assert headers["Content-Language"] == "fr"


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
