"""Pro Santé Connect: OpenID Connect (authorization code + PKCE) as an alternative to the CPS card.

The provider is configured by `OPENDMP_PSC_ISSUER` (its discovery document gives the
endpoints), `OPENDMP_PSC_CLIENT_ID` / `_SECRET` and `OPENDMP_PSC_SCOPES`. The ID token is
checked (RS256 signature against the provider's JWKS, issuer, audience, expiry, nonce) and its
`preferred_username` (else `sub`) must be the national id of an active, known professional.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

import jwt
from django.conf import settings
from django.http import HttpRequest

from dmp.common.errors import DomainError, ErrorCode

SESSION_KEY: Final = "psc_login"
TIMEOUT: Final = 10


class PscRejected(DomainError):
    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def enabled() -> bool:
    return bool(settings.OPENDMP_PSC_ISSUER and settings.OPENDMP_PSC_CLIENT_ID)


def _checked_url(url: str) -> str:
    # Plain HTTP only for a provider on this machine (tests, local simulators).
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" and parsed.hostname not in {"127.0.0.1", "localhost"}:
        raise PscRejected(f"Pro Santé Connect endpoints must use HTTPS: {url}")
    return url


def _fetch_json(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(_checked_url(url), data=data, headers=headers or {})  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - checked above
            return json.loads(answer.read(1_000_000))
    except (OSError, ValueError) as exc:
        raise PscRejected(f"Pro Santé Connect did not answer properly: {exc}") from exc


def provider() -> Provider:
    issuer = settings.OPENDMP_PSC_ISSUER.rstrip("/")
    document = _fetch_json(f"{issuer}/.well-known/openid-configuration")
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
        raise PscRejected("the discovery document names another issuer")
    return Provider(
        issuer=document["issuer"],
        authorization_endpoint=_checked_url(document["authorization_endpoint"]),
        token_endpoint=_checked_url(document["token_endpoint"]),
        jwks_uri=_checked_url(document["jwks_uri"]),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def start(request: HttpRequest, *, redirect_uri: str, next_url: str) -> str:
    """The provider URL to send the browser to; state, nonce and PKCE verifier stay in the session."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    request.session[SESSION_KEY] = {"state": state, "nonce": nonce, "verifier": verifier, "next": next_url}
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": settings.OPENDMP_PSC_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": settings.OPENDMP_PSC_SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "acr_values": "eidas1",
        }
    )
    return f"{provider().authorization_endpoint}?{query}"


def finish(request: HttpRequest, *, redirect_uri: str) -> tuple[str, str]:
    """(national id of the professional, next URL) after the provider's redirect, or PscRejected."""
    pending = request.session.pop(SESSION_KEY, None)
    if not isinstance(pending, dict):
        raise PscRejected("no Pro Santé Connect login in progress")
    if request.GET.get("error"):
        raise PscRejected(f"Pro Santé Connect refused: {request.GET.get('error')}")
    if not hmac.compare_digest(str(request.GET.get("state", "")), str(pending["state"])):
        raise PscRejected("state mismatch")
    code = request.GET.get("code", "")
    if not code:
        raise PscRejected("no authorization code")
    endpoints = provider()
    credentials = f"{settings.OPENDMP_PSC_CLIENT_ID}:{settings.OPENDMP_PSC_CLIENT_SECRET}".encode()
    tokens = _fetch_json(
        endpoints.token_endpoint,
        data=urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": pending["verifier"],
            }
        ).encode(),
        headers={
            "Authorization": f"Basic {base64.b64encode(credentials).decode()}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    id_token = str((tokens or {}).get("id_token", ""))
    try:
        key = jwt.PyJWKClient(endpoints.jwks_uri, timeout=TIMEOUT).get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token,
            key=key.key,
            algorithms=["RS256"],
            audience=settings.OPENDMP_PSC_CLIENT_ID,
            issuer=endpoints.issuer,
            leeway=settings.OPENDMP_CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "sub", "nonce"]},
        )
    except jwt.PyJWTError as exc:
        raise PscRejected(f"invalid ID token: {exc}") from exc
    if not hmac.compare_digest(str(claims.get("nonce", "")), str(pending["nonce"])):
        raise PscRejected("nonce mismatch")
    national_id = str(claims.get("preferred_username") or claims["sub"])
    return national_id, str(pending.get("next", ""))
