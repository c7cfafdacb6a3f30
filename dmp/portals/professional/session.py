"""The PS session: who logged in (CPS card, demo card, contextual link), how, and in which mode.

The session holds identifiers only; every request reloads the professional and its structure
(a deactivated PS or a removed affiliation ends the session) and builds the `Caller` the
services decide on. Logging in rotates the session key; a session ends after
`MAX_SESSION_AGE` whatever the activity, after `SESSION_COOKIE_AGE` of inactivity (sliding,
`SESSION_SAVE_EVERY_REQUEST`) and when the browser closes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from django.http import HttpRequest
from django.middleware.csrf import rotate_token

from dmp.access.actors import AccessMode, Actor, AuthenticationMode, Caller, Channel
from dmp.common import clock
from dmp.identity.actors import professional_actor
from dmp.identity.models import HealthProfessional, Structure
from dmp.identity.selectors import active_professional_get

MAX_SESSION_AGE: Final = dt.timedelta(hours=8)
KEY: Final = "pro"


class LoginMethod(StrEnum):
    """How the PS proved its identity (stored in the session and shown on every page)."""

    CPS = "cps"  # CPS card, TLS client certificate verified by the trusted proxy
    DEMO_CARD = "demo_card"  # demonstration only: a card picked from a list
    CONTEXT_LINK = "context_link"  # TD0.9: signed single-use link from the PS's software
    PSC = "psc"  # Pro Santé Connect (OpenID Connect: e-CPS application or card)


@dataclass(frozen=True)
class Emergency:
    record: str  # Record.public_id
    mode: AccessMode
    reason: str


@dataclass(frozen=True)
class PsSession:
    professional: HealthProfessional
    structure: Structure | None
    method: LoginMethod
    authentication: AuthenticationMode
    logged_in_at: dt.datetime
    emergency: Emergency | None
    # Record.public_id of the minor's record a TD0.9 link opened in secret connection, or "".
    secret_record: str
    # The legal entity whose certificate signed for `structure` in the link's VIHF (ADR 0011).
    signer_structure_id: str = ""

    def _actor(self, record: str) -> Actor:
        # The secret connection was asked for on one minor's record: elsewhere the PS's traces
        # and uploads are ordinary ones, or another patient's parents would lose sight of them.
        return professional_actor(
            self.professional,
            self.structure,
            authentication=self.authentication,
            secret_connection=bool(record) and record == self.secret_record,
            signer_structure_id=self.signer_structure_id,
        )

    def caller(self, record: str = "") -> Caller:
        """The caller for a request on `record` (a Record.public_id, if the request is about one):
        the emergency mode and the secret connection apply only to the record they were opened on."""
        actor = self._actor(record)
        emergency = self.emergency
        if emergency is not None and record and emergency.record == record:
            return Caller(
                actor=actor, mode=emergency.mode, reason=emergency.reason, channel=Channel.PROFESSIONAL_PORTAL
            )
        return Caller(actor=actor, channel=Channel.PROFESSIONAL_PORTAL)

    def writer(self, record: str = "") -> Caller:
        """The caller for a write on `record` (feeding, a document's status or flags, the record's
        authorisations): the normal mode, in the secret connection if it was opened on `record`.
        Break-glass and Centre 15 open a record for reading only (the policy refuses every write
        in those modes), while a PS may feed a record and act on its own documents without any
        authorisation, in normal mode, emergency or not."""
        return Caller(actor=self._actor(record), channel=Channel.PROFESSIONAL_PORTAL)

    @property
    def structure_pinned(self) -> bool:
        """A session not opened with the PS's own card is bound to the structure that vouched."""
        return self.authentication is not AuthenticationMode.DIRECT

    @property
    def structures(self) -> list[Structure]:
        return list(self.professional.structures.order_by("name"))


def log_in(
    request: HttpRequest,
    professional: HealthProfessional,
    method: LoginMethod,
    *,
    structure: Structure | None = None,
    authentication: AuthenticationMode = AuthenticationMode.DIRECT,
    secret_record: str = "",
    signer_structure_id: str = "",
) -> None:
    """Start a fresh session for `professional` (new session key: no fixation); `secret_record`
    is the record a TD0.9 link opened in the minor's secret connection."""
    if authentication is not AuthenticationMode.DIRECT and structure is None:
        # In indirect mode a structure's certificate vouched for the PS: its rights and
        # authorship are that structure's, so none may be picked in its place.
        raise ValueError("an indirect session needs the structure that vouched for the professional")
    request.session.clear()
    request.session.cycle_key()
    rotate_token(request)  # a CSRF token known before the login is no good after it
    structure = structure or professional.structures.order_by("name").first()
    request.session[KEY] = {
        "ps": professional.national_id,
        "structure": structure.id_nat if structure else "",
        "method": method.value,
        # A CPS card (real or demo) is a direct authentication; a TD0.9 link keeps the mode in
        # which the software authenticated the PS (indirect: its structure vouched for them).
        "authentication": authentication.value,
        "at": clock.now().isoformat(),
        "emergency": None,
        "secret_record": secret_record,
        "signer_structure": signer_structure_id,
    }


def log_out(request: HttpRequest) -> None:
    request.session.flush()


def current(request: HttpRequest) -> PsSession | None:
    data = request.session.get(KEY)
    if not isinstance(data, dict):
        return None
    try:
        logged_in_at = dt.datetime.fromisoformat(str(data["at"]))
        method = LoginMethod(data["method"])
        authentication = AuthenticationMode(data["authentication"])
    except (KeyError, ValueError):
        log_out(request)
        return None
    if clock.now() - logged_in_at > MAX_SESSION_AGE:
        log_out(request)
        return None
    professional = active_professional_get(data.get("ps", ""))
    if professional is None:
        log_out(request)
        return None
    structure = None
    if data.get("structure"):
        structure = professional.structures.filter(id_nat=data["structure"]).first()
    if authentication is not AuthenticationMode.DIRECT and structure is None:
        # The structure that vouched for the PS is gone (or was never named): nothing else
        # may answer for them.
        log_out(request)
        return None
    emergency = None
    raw = data.get("emergency")
    if isinstance(raw, dict):
        emergency = Emergency(
            record=str(raw["record"]), mode=AccessMode(raw["mode"]), reason=str(raw["reason"])
        )
    return PsSession(
        professional=professional,
        structure=structure,
        method=method,
        authentication=authentication,
        logged_in_at=logged_in_at,
        emergency=emergency,
        secret_record=str(data.get("secret_record") or ""),
        signer_structure_id=str(data.get("signer_structure") or ""),
    )


def _update(request: HttpRequest, **values: object) -> None:
    data = dict(request.session[KEY])
    data.update(values)
    request.session[KEY] = data


def choose_structure(request: HttpRequest, structure: Structure) -> bool:
    """Switch the session to another of the PS's structures; False (nothing changed) when the
    session is pinned to the structure that vouched for the PS (indirect authentication): its
    certificate answered for the PS in that structure only, and in indirect mode the policy gives
    the PS the structure's authorship and authorisations."""
    data = request.session.get(KEY)
    if not isinstance(data, dict) or data.get("authentication") != AuthenticationMode.DIRECT.value:
        return False
    _update(request, structure=structure.id_nat, emergency=None)
    return True


def start_emergency(request: HttpRequest, emergency: Emergency) -> None:
    _update(
        request,
        emergency={"record": emergency.record, "mode": emergency.mode.value, "reason": emergency.reason},
    )


def end_emergency(request: HttpRequest) -> None:
    _update(request, emergency=None)
