"""The web services go through their own middleware chain, the portals through theirs (ADR 0012)."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest

from dmp.common.wsgi import ChannelDispatcher, MachineRequest, call_wsgi


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


def _environ(content_type: str, query: str = "") -> dict[str, object]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/ihe/xds/",
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": content_type,
    }


CONTENT_TYPES = [
    "",
    "application/soap+xml",
    "Application/SOAP+XML ; charset=UTF-8",
    (
        'multipart/related; type="application/xop+xml"; boundary="uuid:1;2"; start="<root@x>"; '
        'start-info="application/soap+xml; action=\\"urn:ihe:iti:2007:RetrieveDocumentSet\\""'
    ),
    "application/x-www-form-urlencoded; charset=latin-1",
    "text/plain; charset=no-such-charset",
    "application/json; charset*=utf-8''%E2%82%AC",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_web_service_request_reads_its_content_type_as_django_does_when_asked(content_type):
    django_request = WSGIRequest(_environ(content_type, "q=%E9"))
    request = MachineRequest(_environ(content_type, "q=%E9"))
    assert not request._content_type_read  # nothing parsed until read
    assert request.content_type == django_request.content_type
    assert request.content_params == django_request.content_params
    assert request.encoding == django_request.encoding
    assert request.GET == django_request.GET  # decoded with the charset, as Django does


def test_an_encoding_set_before_any_read_stays_and_the_query_is_decoded_with_it():
    request = MachineRequest(_environ("application/x-www-form-urlencoded; charset=utf-8", "q=%E9"))
    request.encoding = "latin-1"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.encoding == "latin-1"
    assert request.GET["q"] == "é"


@pytest.mark.django_db
def test_the_nul_guard_passes_a_call_without_a_query_and_refuses_nul_in_one(application):
    """The guard builds no QueryDict when there is no query string (most calls), but still
    refuses NUL in one, in a name or a value."""
    answer = call_wsgi(application, "POST", "/ihe/xds/", b"<x/>", CONTENT_TYPE="application/soap+xml")
    assert answer.status == 400
    assert b"Fault" in answer.content  # the endpoint's own answer
    for query in ("x=%00", "x%00=1"):
        answer = call_wsgi(
            application, "POST", "/ihe/xds/", b"<x/>", CONTENT_TYPE="application/soap+xml", QUERY_STRING=query
        )
        assert answer.status == 400
        assert answer.content == b"NUL characters are not allowed."


@pytest.mark.django_db
def test_a_web_service_answer_says_its_length(application):
    # Without it gunicorn sends the answer chunked (the portals' CommonMiddleware sets it).
    fault = call_wsgi(application, "POST", "/ihe/xds/", b"not xml", CONTENT_TYPE="application/soap+xml")
    metadata = call_wsgi(application, "GET", "/fhir/metadata")
    for answer in (fault, metadata):
        assert answer.headers["Content-Length"] == str(len(answer.content))
        assert len(answer.content) > 100
