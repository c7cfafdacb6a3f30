"""CPS card login: the TLS client certificate, as verified and forwarded by the trusted proxy.

The same contract as the SOAP channel: `OPENDMP_TLS_CLIENT_CERT_HEADER` names the request
header holding the URL-encoded PEM certificate, accepted only from `OPENDMP_TRUSTED_PROXIES`.
The certificate must chain to the trust bundle and be registered as the authentication
certificate (CPS_AUTH) of an active professional.
"""

from __future__ import annotations

from urllib.parse import unquote

from cryptography import x509
from django.conf import settings
from django.http import HttpRequest

from dmp.common.errors import DomainError, ErrorCode
from dmp.identity.models import Certificate, HealthProfessional
from dmp.identity.pki import CertificateRejected, fingerprint_of, verify_against_bundle


class CardRejected(DomainError):
    code = ErrorCode.FORBIDDEN


class NoCard(CardRejected):
    """No certificate reached the server: the card is not in the reader (or not unlocked)."""


def client_certificate(request: HttpRequest) -> x509.Certificate:
    header = settings.OPENDMP_TLS_CLIENT_CERT_HEADER
    if not header:
        raise CardRejected("CPS login is not configured (no client certificate header)")
    if request.META.get("REMOTE_ADDR") not in settings.OPENDMP_TRUSTED_PROXIES:
        raise CardRejected("client certificate header from an untrusted peer")
    pem = unquote(request.META.get(header, ""))
    if not pem.strip():
        raise NoCard("no client certificate: insert your CPS card")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CardRejected("unreadable client certificate") from exc


def professional_for_card(certificate: x509.Certificate) -> HealthProfessional:
    try:
        verify_against_bundle(
            certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, require_signature_usage=False
        )
    except CertificateRejected as exc:
        raise CardRejected(f"CPS certificate rejected: {exc.message}") from exc
    known = (
        Certificate.objects.select_related("professional")
        .filter(
            fingerprint_sha256=fingerprint_of(certificate),
            revoked_at__isnull=True,
            usage=Certificate.Usage.CPS_AUTH,
        )
        .first()
    )
    if known is None or known.professional is None:
        raise CardRejected("this card is not registered with the DMP")
    if not known.professional.is_active:
        raise CardRejected("this professional is not active")
    return known.professional


def professional_from_request(request: HttpRequest) -> HealthProfessional:
    return professional_for_card(client_certificate(request))
