"""Security headers on every response, and the request body sizes the portals accept.

Pages never need inline scripts or styles, nor resources from another origin. A view that
must relax the policy (a sandboxed document frame) sets its own header, which is kept.
Pages and downloads behind a login are never stored by the browser (`NO_STORE_PREFIXES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.translation import gettext as _

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
    if not request.META.get("QUERY_STRING"):
        return False  # no parameters (nor a QueryDict built to find none): most calls
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


def declared_length(request: HttpRequest) -> int:
    """The body size the request announces (Content-Length); 0 when it announces none or a
    malformed one, for which Django reads no body at all."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


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
        if not request.path.startswith(MACHINE_CHANNEL_PREFIXES):
            return self.get_response(request)
        request.LANGUAGE_CODE = "en"
        # Restored afterwards: work the thread does next (a task run inline) is not an answer.
        with translation.override("en"):
            response = self.get_response(request)
            response.headers["Content-Language"] = "en"
        return response


View = TypeVar("View", bound=Callable[..., HttpResponse])
BODY_LIMIT: Final = "_opendmp_max_request_bytes"


def accepts_body_of(limit: Callable[[], int]) -> Callable[[View], View]:
    """Let a view receive a request body of up to `limit()` bytes (an upload form) instead of
    OPENDMP_MAX_FORM_BYTES; `limit` is called per request, so it follows the settings."""

    def decorator(view: View) -> View:
        setattr(view, BODY_LIMIT, limit)
        return view

    return decorator


class RequestSizeMiddleware:
    """Refuse a body larger than its view accepts (413), or of undeclared length (411), unread.

    DATA_UPLOAD_MAX_MEMORY_SIZE bounds only form fields: the file parts of a multipart body are
    spooled to disk, whatever their size, as soon as anything reads request.POST (the CSRF check
    does, before any view or login check). Without a bound taken from Content-Length before
    then, an anonymous client could fill the temporary disk through any form. It must come
    before CsrfViewMiddleware in MIDDLEWARE. The web services (MACHINE_CHANNEL_PREFIXES) bound
    their own bodies and are left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: object, kwargs: object
    ) -> HttpResponse | None:
        if request.path.startswith(MACHINE_CHANNEL_PREFIXES):
            return None
        if "HTTP_TRANSFER_ENCODING" in request.META:
            # A chunked body announces no size to check beforehand.
            return HttpResponse(
                _("La requête doit indiquer sa taille (en-tête Content-Length)."),
                status=411,
                content_type="text/plain; charset=utf-8",
            )
        limit_of = getattr(view, BODY_LIMIT, None)
        limit = int(limit_of()) if limit_of is not None else int(settings.OPENDMP_MAX_FORM_BYTES)
        if declared_length(request) > limit:
            return HttpResponse(
                _("La requête dépasse la taille maximale acceptée ici (%(limit)s).")
                % {"limit": filesizeformat(limit)},
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return None
