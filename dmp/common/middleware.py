"""Security headers on every response: strict Content-Security-Policy and friends.

Pages never need inline scripts or styles, nor resources from another origin. A view that
must relax the policy (a sandboxed document frame) sets its own header, which is kept.
Pages and downloads behind a login are never stored by the browser (`NO_STORE_PREFIXES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import translation

DEFAULT_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# Everything behind a portal or staff login holds health data or secrets (documents, their PDF,
# the record's export, a TOTP secret, helpdesk lookups): on a shared workstation the browser's
# cache and Back after logout would show them to the next user. Static files and the public
# pages stay cacheable.
NO_STORE_PREFIXES = ("/patient/", "/pro/", "/support/", "/pilotage/", "/staff/")
NO_STORE: Final = "no-store, private"

# The FHIR API answers these itself, with an OperationOutcome.
SELF_GUARDED_PREFIXES = ("/fhir/",)

# The web services (SOAP XDS.b and DMP transactions, FHIR) answer in English whatever the
# request's Accept-Language: their codes are what software acts on, the texts are diagnostics
# for its developers and the API documentation shows them in English. The portals show the
# same domain messages to people in their own language.
MACHINE_CHANNEL_PREFIXES = ("/ihe/", "/fhir/")


def carries_nul(request: HttpRequest) -> bool:
    """NUL can be neither stored (PostgreSQL text) nor meant: such a request is refused up front."""
    if "\x00" in request.path:
        return True
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(SELF_GUARDED_PREFIXES) and carries_nul(request):
            response: HttpResponse = HttpResponseBadRequest("NUL characters are not allowed.")
        else:
            response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if request.path.startswith(NO_STORE_PREFIXES):
            response.headers.setdefault("Cache-Control", NO_STORE)
        return response


class MachineChannelLanguageMiddleware:
    """After LocaleMiddleware: English for the web services (MACHINE_CHANNEL_PREFIXES)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(MACHINE_CHANNEL_PREFIXES):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)
