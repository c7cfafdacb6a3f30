"""Getting an access token for the DMP's FHIR API (IHE MHD / PDSm) with a CPS or structure key.

The client assertion (RFC 7523) carries the same facts as a VIHF; pass the returned token to
any FHIR client (the project's tests use fhirpy) as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import Encoding

from opendmp_client.vihf import VihfClaims

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(
    claims: VihfClaims,
    *,
    key: RSAPrivateKey,
    certificate: x509.Certificate,
    token_url: str,
    lifetime: int = 300,
) -> str:
    now = int(time.time())
    facts = {
        k: v
        for k, v in asdict(claims).items()
        if k not in {"subject_id", "subject_name", "audience", "vihf_version"}
    }
    payload = {
        "iss": claims.subject_id,
        "sub": claims.subject_id,
        "name": claims.subject_name,
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        **facts,
    }
    header = {"x5c": [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()]}
    return jwt.encode(payload, key, algorithm="RS256", headers=header)


def fetch_token(
    claims: VihfClaims,
    *,
    key: RSAPrivateKey,
    certificate: x509.Certificate,
    token_url: str,
    scope: str = "",
    timeout: float = 30.0,
) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(claims, key=key, certificate=certificate, token_url=token_url),
    }
    if scope:
        form["scope"] = scope
    request = urllib.request.Request(  # noqa: S310 - the URL is configured by the caller
        token_url, data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
        answer = json.loads(reply.read())
    return str(answer["access_token"])
