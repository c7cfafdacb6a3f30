"""OAuth 2.0 for the FHIR channel (IHE IUA style): the same facts as a VIHF, in a JWT.

A DMP-compatible software asks `/fhir/token` for an access token with a client assertion
(RFC 7523 `private_key_jwt`): a JWT signed RS256 by the CPS or structure signing key, whose
`x5c` header carries the certificate. The claims are the VIHF's (PS id, profession, structure,
purpose of use, patient INS, software and homologation number). The assertion goes through
the same checks as a VIHF (trusted chain, certificate bound to the PS or structure, single
use of its `jti`, active homologation number, and with mutual TLS configured the TLS client
certificate of the same PS or structure). The access token, HS256-signed by the DMP, is
short-lived, audience- and scope-bound, and re-checked on every call.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from dataclasses import asdict
from typing import Any, Final

import jwt
from cryptography import x509
from django.conf import settings

from dmp.access.actors import AccessMode, Actor, ActorKind, AuthenticationMode, Caller, Channel, Software
from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.compat.models import SoftwareProduct
from dmp.compat.services import homologation_hash
from dmp.identity.ins import InvalidIns, parse_hl7_ins
from dmp.identity.pki import CertificateRejected, fingerprint_of, verify_against_bundle
from dmp.ihe.xds.vihf import VihfFacts, VihfRejected, caller_from_vihf

ACCESS_AUDIENCE: Final = "opendmp-fhir"
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPES: Final = frozenset(
    {"system/DocumentReference.read", "system/DocumentReference.write", "system/Patient.read"}
)
TOKEN_LIFETIME: Final = dt.timedelta(minutes=10)
MAX_ASSERTION_LIFETIME: Final = dt.timedelta(minutes=10)


class TokenRejected(DomainError):
    code = ErrorCode.FORBIDDEN


def _key() -> bytes:
    # Derived from the secret key so that no extra secret has to be managed; rotating
    # SECRET_KEY invalidates every access token, which live ten minutes anyway.
    return hashlib.sha256(b"opendmp-fhir-access-token:" + settings.SECRET_KEY.encode()).digest()


def _certificate(header: dict[str, Any]) -> x509.Certificate:
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise TokenRejected("the client assertion needs an x5c header with the signing certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0]))
    except ValueError as exc:
        raise TokenRejected("unreadable x5c certificate") from exc


def issue_token(
    *, assertion: str, token_url: str, scope: str, client_certificate: x509.Certificate | None = None
) -> dict[str, Any]:
    """Verify a client assertion and return the OAuth token response.

    `client_certificate` is the TLS client certificate (`tls_client_certificate`): when given,
    it must belong to the same PS or structure as the assertion's signer, as on SOAP.
    """
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise TokenRejected("malformed client assertion") from exc
    if header.get("alg") != "RS256":
        raise TokenRejected("client assertions must be signed RS256")
    certificate = _certificate(header)
    now = clock.now()
    try:
        verify_against_bundle(certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, at=now)
    except CertificateRejected as exc:
        raise TokenRejected(f"signing certificate rejected: {exc.message}") from exc
    try:
        claims = jwt.decode(
            assertion,
            key=certificate.public_key(),  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=token_url,
            options={"require": ["exp", "iat", "jti", "iss", "sub"]},
            leeway=settings.OPENDMP_CLOCK_SKEW_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"client assertion refused: {exc}") from exc
    issued = dt.datetime.fromtimestamp(claims["iat"], tz=dt.UTC)
    expires = dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC)
    if expires - issued > MAX_ASSERTION_LIFETIME:
        raise TokenRejected("client assertion lifetime too long")
    requested = set(scope.split()) if scope else set(SCOPES)
    if not requested <= SCOPES:
        raise TokenRejected(f"unknown scope: {' '.join(sorted(requested - SCOPES))}")
    patient_cx = str(claims.get("patient_ins", ""))
    try:
        patient = parse_hl7_ins(patient_cx) if patient_cx else None
        mode = AccessMode(str(claims.get("purpose_of_use", "normal")))
        authentication = AuthenticationMode(str(claims.get("authentication_mode", "DIRECTE")))
    except (InvalidIns, ValueError) as exc:
        raise TokenRejected(f"client assertion claims: {exc}") from exc
    if mode is not AccessMode.NORMAL and patient is None:
        # The token lives ten minutes and the searches name their patient: without one, an
        # emergency would open every record the software then names.
        raise TokenRejected(f"the access mode {mode.value} requires the patient_ins claim")
    facts = VihfFacts(
        assertion_id=f"jwt:{claims['jti']}",
        not_on_or_after=expires,
        certificate_fingerprint=fingerprint_of(certificate),
        subject_id=str(claims["sub"]),
        subject_name=str(claims.get("name", "")),
        profession=str(claims.get("profession", "")),
        specialty=str(claims.get("specialty", "")),
        sector=str(claims.get("sector", "")),
        structure_id=str(claims.get("structure_id", "")),
        patient=patient,
        mode=mode,
        reason=str(claims.get("break_glass_reason", "")),
        authentication=authentication,
        lps_id=str(claims.get("lps_id", "")),
        lps_name=str(claims.get("lps_name", "")),
        lps_version=str(claims.get("lps_version", "")),
        homologation=str(claims.get("homologation", "")),
        secret_connection=bool(claims.get("secret_connection", False)),
    )
    try:
        caller = caller_from_vihf(facts, client_certificate=client_certificate, channel=Channel.MHD)
    except VihfRejected as exc:
        raise TokenRejected(exc.message) from exc
    actor = caller.actor
    token_claims = {
        "iss": "opendmp",
        "aud": ACCESS_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + TOKEN_LIFETIME).timestamp()),
        "jti": str(uuid.uuid4()),
        "scope": " ".join(sorted(requested)),
        "sub": actor.person_id,
        "actor": {k: v for k, v in asdict(actor).items() if k not in {"software", "role_codes"}},
        "software": asdict(actor.software) if actor.software else None,
        "homologation": homologation_hash(facts.homologation),
        "mode": caller.mode.value,
        "reason": caller.reason,
        "patient": patient.hl7() if patient else "",
    }
    token = jwt.encode(token_claims, _key(), algorithm="HS256")
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(TOKEN_LIFETIME.total_seconds()),
        "scope": token_claims["scope"],
    }


def caller_from_token(authorization: str, *, scope: str) -> tuple[Caller, str]:
    """(Caller, patient CX) of a valid bearer token holding `scope`, or TokenRejected."""
    if not authorization.startswith("Bearer "):
        raise TokenRejected("a bearer token is required")
    try:
        claims = jwt.decode(
            authorization[7:].strip(),
            key=_key(),
            algorithms=["HS256"],
            audience=ACCESS_AUDIENCE,
            options={"require": ["exp", "iat", "scope", "actor"]},
            leeway=settings.OPENDMP_CLOCK_SKEW_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid token: {exc}") from exc
    if scope not in str(claims["scope"]).split():
        raise TokenRejected(f"the token lacks the scope {scope}")
    # The homologation number is checked on every flow: a suspended product loses access at once.
    if not SoftwareProduct.objects.filter(
        homologation_hash=claims.get("homologation", ""), status=SoftwareProduct.Status.ACTIVE
    ).exists():
        raise TokenRejected("the software's homologation is no longer active")
    values = dict(claims["actor"])
    software = claims.get("software")
    actor = Actor(
        **{
            **values,
            "kind": ActorKind(values["kind"]),
            "authentication": AuthenticationMode(values["authentication"]),
            "software": Software(**{**software, "profiles": tuple(software.get("profiles", ()))})
            if software
            else None,
        }
    )
    caller = Caller(
        actor=actor, mode=AccessMode(claims["mode"]), reason=claims.get("reason", ""), channel=Channel.MHD
    )
    return caller, str(claims.get("patient", ""))


__all__ = ["ASSERTION_TYPE", "TokenRejected", "caller_from_token", "issue_token"]
