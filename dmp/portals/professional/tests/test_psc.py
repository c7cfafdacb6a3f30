"""Pro Santé Connect login against a local OpenID provider speaking real HTTP and signing real
RS256 ID tokens (the national provider is not reachable from tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from dmp.portals.professional.session import KEY

CLIENT_ID, CLIENT_SECRET = "opendmp-portal", "s3cret-for-tests"


@dataclass
class Provider:
    issuer: str = ""
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    signing_key: rsa.RSAPrivateKey | None = None  # set to sign with a key the JWKS does not publish
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    nonce_override: str = ""

    def authorize(self, location: str, subject: str) -> dict[str, str]:
        """What the provider does after the user authenticates: a code back to the client."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        code = f"code-{len(self.codes)}"
        self.codes[code] = {
            "nonce": self.nonce_override or query["nonce"],
            "challenge": query["code_challenge"],
            "subject": subject,
            "redirect_uri": query["redirect_uri"],
        }
        return {"code": code, "state": query["state"]}

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": f"f:{grant['subject']}",
            "preferred_username": grant["subject"],
            "nonce": grant["nonce"],
            "iat": now,
            "exp": now + 300,
        }
        token = jwt.encode(claims, self.signing_key or self.key, algorithm="RS256", headers={"kid": "k1"})
        return 200, {"id_token": token, "access_token": "opaque", "token_type": "Bearer"}


@pytest.fixture
def provider(settings):
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._send(
                    200,
                    {
                        "issuer": state.issuer,
                        "authorization_endpoint": f"{state.issuer}/authorize",
                        "token_endpoint": f"{state.issuer}/token",
                        "jwks_uri": f"{state.issuer}/jwks",
                    },
                )
            elif self.path == "/jwks":
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(state.key.public_key()))
                self._send(200, {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
            else:
                self._send(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            self._send(*state.token(form, self.headers.get("Authorization", "")))

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.OPENDMP_PSC_ISSUER = state.issuer
    settings.OPENDMP_PSC_CLIENT_ID = CLIENT_ID
    settings.OPENDMP_PSC_CLIENT_SECRET = CLIENT_SECRET
    yield state
    server.shutdown()


def _login(client: Client, provider: Provider, subject: str, *, state: str | None = None):
    started = client.get("/pro/connexion/psc?next=/pro/traces")
    assert started.status_code == 302
    assert started["Location"].startswith(f"{provider.issuer}/authorize?")
    answer = provider.authorize(started["Location"], subject)
    if state is not None:
        answer["state"] = state
    return client.get("/pro/connexion/psc/retour", answer)


@pytest.mark.django_db
def test_a_professional_logs_in_with_pro_sante_connect(personas, provider):
    client = Client()
    assert 'id="login-psc"' in client.get("/pro/connexion/").content.decode()
    before = client.session.session_key
    response = _login(client, provider, personas.dr_bernard.national_id)
    assert response.status_code == 302
    assert response["Location"] == "/pro/traces"
    assert client.session[KEY]["method"] == "psc"
    assert client.session.session_key != before
    home = client.get("/pro/")
    assert home.status_code == 200
    badge = home.content.decode().split('class="badge"', 1)[1].split("</span>", 1)[0]
    assert "Pro Santé Connect" in badge
    assert "logiciel" not in badge


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["state", "nonce", "foreign-key", "unknown-ps"])
def test_pro_sante_connect_refusals_open_no_session(personas, provider, case):
    client = Client()
    subject = personas.dr_bernard.national_id
    if case == "nonce":
        provider.nonce_override = "another-nonce"
    if case == "foreign-key":
        provider.signing_key = rsa.generate_private_key(65537, 2048)
    if case == "unknown-ps":
        subject = "899999999999"
    response = _login(client, provider, subject, state="forged" if case == "state" else None)
    assert response.status_code == 403
    assert KEY not in client.session
    assert client.get("/pro/").status_code == 302  # back to the login page


@pytest.mark.django_db
def test_a_stolen_code_cannot_be_replayed_in_another_browser(personas, provider):
    victim = Client()
    started = victim.get("/pro/connexion/psc")
    answer = provider.authorize(started["Location"], personas.dr_bernard.national_id)
    assert victim.get("/pro/connexion/psc/retour", answer).status_code == 302
    thief = Client()
    own = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(thief.get("/pro/connexion/psc")["Location"]).query)
    )
    # Same code, the thief's own valid state: the provider refuses a code already exchanged,
    # and the PKCE verifier of the thief's session would not match it anyway.
    assert (
        thief.get("/pro/connexion/psc/retour", {"code": answer["code"], "state": own["state"]}).status_code
        == 403
    )
    assert KEY not in thief.session


@pytest.mark.django_db
def test_pro_sante_connect_is_not_offered_unless_configured(settings):
    settings.OPENDMP_PSC_ISSUER = ""
    client = Client()
    assert 'id="login-psc"' not in client.get("/pro/connexion/").content.decode()
    assert client.get("/pro/connexion/psc").status_code == 404
    assert client.get("/pro/connexion/psc/retour", {"code": "x", "state": "y"}).status_code == 404
