"""A level 1 document's body (PDF, text, image) served to a portal's sandboxed frame.

Shared by the professional and the patient portals: the bytes come from an author's software,
so they are never served as HTML, and the frame cannot run script or reach anything.
"""

from __future__ import annotations

from typing import Final

from django.http import Http404, HttpResponse

from dmp.cda.render import embedded_body

EMBEDDED_TYPES: Final = {"application/pdf", "text/plain", "image/png", "image/jpeg"}
SANDBOX_CSP: Final = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


def sandboxed(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = SANDBOX_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def embedded_body_response(content: bytes, mime_type: str) -> HttpResponse:
    """The body of a level 1 CDA (`content`, already read through the access checks): inline
    when a browser shows that type safely, as an attachment otherwise; 404 if there is none."""
    body = embedded_body(content) if mime_type == "text/xml" else None
    if body is None:
        raise Http404
    media_type = body.media_type if body.media_type in EMBEDDED_TYPES else "application/octet-stream"
    if media_type == "text/plain":
        media_type = "text/plain; charset=utf-8"
    response = HttpResponse(body.content, content_type=media_type)
    response["Content-Disposition"] = "inline" if media_type != "application/octet-stream" else "attachment"
    return sandboxed(response)
