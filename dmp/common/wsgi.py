"""The WSGI application: the web services through their own, shorter middleware chain (ADR 0012).

A SOAP or FHIR call has no session, login, CSRF token, flash message, static file or language
choice: the eight middlewares that provide them for the portals cost about 0.45 M instructions
of each call (4 % of an ITI-43 retrieve) and did nothing for it. Requests under
MACHINE_CHANNEL_PREFIXES go through settings.MACHINE_CHANNEL_MIDDLEWARE, every other request
through settings.MIDDLEWARE, with the same URL configuration and views.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from dmp.common.middleware import MACHINE_CHANNEL_PREFIXES

StartResponse = Callable[..., Any]


class MachineRequest(WSGIRequest):
    """A web-service request, whose Content-Type Django parses when first read.

    The SOAP endpoint parses the raw header itself (MTOM's parameters are its to read), and
    Django's parse goes through `email.message`: about 25 µs of every call, for nothing.
    Read, `content_type`, `content_params` and the encoding (which `GET` and `POST` read as
    `_encoding`) are what Django would have set."""

    _content_type_read = False

    def _set_content_type_params(self, meta: dict[str, Any]) -> None:
        return  # when first read

    def _read_content_type(self) -> None:
        if not self._content_type_read:
            self._content_type_read = True
            super()._set_content_type_params(self.META)  # type: ignore[misc]

    def _lazy(name: str) -> property:  # type: ignore[misc]  # noqa: N805 - a class-body helper
        def read(self: MachineRequest) -> Any:
            self._read_content_type()
            return self.__dict__.get(name)

        def write(self: MachineRequest, value: Any) -> None:
            self._read_content_type()  # a value set before any read stays set
            self.__dict__[name] = value

        return property(read, write)

    content_type = _lazy("content_type")
    content_params = _lazy("content_params")
    _encoding = _lazy("_encoding")
    del _lazy


class MachineChannelHandler(WSGIHandler):
    """A WSGIHandler whose middleware chain is settings.MACHINE_CHANNEL_MIDDLEWARE."""

    request_class = MachineRequest

    def load_middleware(self, is_async: bool = False) -> None:
        # Django reads the chain from settings.MIDDLEWARE only; it is read once, here, when the
        # process starts (before it serves), and put back at once.
        web = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MACHINE_CHANNEL_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = web

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        # The portals' CommonMiddleware sets Content-Length; without it gunicorn sends a SOAP or
        # FHIR answer chunked, copying it once more into its framing, and a client cannot size
        # its buffer or tell a cut answer by its length.
        response = super().get_response(request)
        if isinstance(response, HttpResponse) and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response


class ChannelDispatcher:
    """Hands each request to the web-service handler or to the portals' handler, by its path."""

    def __init__(self) -> None:
        self.portals = WSGIHandler()
        self.machines = MachineChannelHandler()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # PATH_INFO is the path the URL configuration resolves (below any SCRIPT_NAME).
        if environ.get("PATH_INFO", "").startswith(MACHINE_CHANNEL_PREFIXES):
            return self.machines(environ, start_response)
        return self.portals(environ, start_response)


def get_channel_application() -> ChannelDispatcher:
    """As django.core.wsgi.get_wsgi_application, with the web services' own chain."""
    django.setup(set_prefix=False)
    return ChannelDispatcher()


@dataclass(frozen=True)
class WsgiAnswer:
    status: int
    headers: dict[str, str]
    content: bytes


def call_wsgi(
    application: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    method: str,
    path: str,
    body: bytes = b"",
    **environ: str,
) -> WsgiAnswer:
    """Serve one request through `application` as a WSGI server would, without HTTP (the
    benchmarks' in-process requests, and tests of what `config.wsgi` serves). `environ` adds or
    overrides variables: CONTENT_TYPE, HTTP_ACCEPT_LANGUAGE…"""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    chunks = application(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            **environ,
        },
        start_response,
    )
    try:
        content = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)  # a server closes what the application returns
        if close is not None:
            close()
    return WsgiAnswer(answer["status"], answer["headers"], content)
