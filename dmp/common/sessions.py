"""Sessions whose sliding inactivity timeout only the user's own requests move.

`SESSION_SAVE_EVERY_REQUEST` pushes a session's expiry back on every request it sees. A page
that refreshes itself in the background (the pilotage dashboard polls every 15 s) would then
keep an unattended screen logged in forever. A view marked `background_poll` answers without
saving the session, so the idle deadline stays where the last real request put it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Final, TypeVar

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

View = TypeVar("View", bound=Callable[..., HttpResponse])
BACKGROUND_POLL: Final = "_opendmp_background_poll"


def background_poll(view: View) -> View:
    """Mark a view only a page's timer calls: its requests do not extend the session."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        setattr(request, BACKGROUND_POLL, True)
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, except that a background poll leaves an unchanged session's expiry alone."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if (
            getattr(request, BACKGROUND_POLL, False)
            and session is not None
            and not session.modified
            and not session.is_empty()
        ):
            if session.accessed:
                patch_vary_headers(response, ("Cookie",))
            return response
        return super().process_response(request, response)
