"""Staff (helpdesk agents, operators) authentication: Django accounts in named groups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Final, TypeVar

from django.contrib.auth import logout
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.translation import gettext

from dmp.common import clock
from dmp.common.addresses import budget_key, client_address

HELPDESK_GROUP = "helpdesk"
OPERATOR_GROUP = "pilotage"

# However active, a staff session ends after a working day, as a PS portal session ends after
# its own maximum: a screen left open over night, or a stolen session cookie, does not stay
# logged in by being used.
MAX_STAFF_SESSION_AGE: Final = dt.timedelta(hours=10)
LOGGED_IN_AT: Final = "staff_logged_in_at"

View = TypeVar("View", bound=Callable[..., HttpResponse])


def stamp_login(sender: object, request: HttpRequest | None, **kwargs: object) -> None:
    """Note in the new session when it was logged into (`user_logged_in` receiver)."""
    if request is not None and hasattr(request, "session"):
        request.session[LOGGED_IN_AT] = clock.now().isoformat()


def _end_outlived_session(request: HttpRequest) -> None:
    """Log out a staff session logged into more than MAX_STAFF_SESSION_AGE ago, or with no
    login time (opened before this rule: its user logs in again once)."""
    if not request.user.is_authenticated:
        return
    try:
        logged_in_at = dt.datetime.fromisoformat(str(request.session.get(LOGGED_IN_AT, "")))
    except ValueError:
        logged_in_at = None
    if logged_in_at is None or clock.now() - logged_in_at > MAX_STAFF_SESSION_AGE:
        logout(request)


def is_in_group(request: HttpRequest, group: str) -> bool:
    _end_outlived_session(request)
    user = request.user
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=group).exists()))


def staff_required(group: str) -> Callable[[View], View]:
    """Require a logged-in staff member of `group`: login page if anonymous, 403 otherwise."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            _end_outlived_session(request)
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not is_in_group(request, group):
                return HttpResponseForbidden(gettext("Accès réservé"))
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


class ThrottledLoginView(LoginView):
    """Staff login with a failure budget per account and per client address (ASVS 6.3)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True
    max_failures = 10
    window_seconds = 15 * 60

    def _keys(self) -> list[str]:
        username = str(self.request.POST.get("username", ""))[:150].lower()
        address = budget_key(client_address(self.request))
        return [f"staff-login:user:{username}", f"staff-login:ip:{address}"]

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if any(int(cache.get(key, 0)) >= self.max_failures for key in self._keys()):
            return HttpResponse(gettext("Trop de tentatives, réessayez plus tard."), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        for key in self._keys():
            cache.add(key, 0, timeout=self.window_seconds)
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, timeout=self.window_seconds)
        return super().form_invalid(form)
