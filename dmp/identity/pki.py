"""X.509 for the DMP: a complete test PKI ("IGC Santé de test") and certificate verification.

The test PKI mirrors the real IGC-Santé shape closely enough for every flow to run locally:
a root, an issuing CA, CPS card certificates for professionals (authentication and
signature), structure certificates (ORG_AUTH_CLI for TLS, ORG_SIGN for signing assertions)
and a server certificate. Verification walks the chain to a configured trust anchor, checks
validity windows, key usage and revocation; a self-signed clone of a trusted DN fails
because its signature does not verify against the real issuer key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.common.ttl_cache import clear_reference_caches

ROOT_NAME = "IGC-Santé TEST Racine"
ISSUING_NAME = "AC IGC-Santé TEST Personnes et Structures"
KEY_BITS = 2048


class CertificateRejected(DomainError):
    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, in PEM."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str, *, organisation: str = "", unit: str = "", serial: str = "") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if unit:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if serial:
        parts.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _issue(
    subject: x509.Name,
    *,
    issuer: Issued | None,
    is_ca: bool,
    usages: dict[str, bool],
    extended: list[x509.ObjectIdentifier] | None = None,
    days: int = 3 * 365,
    not_before: dt.datetime | None = None,
    san: list[x509.GeneralName] | None = None,
) -> Issued:
    key = _new_key()
    start = not_before or (clock.now() - dt.timedelta(days=1))
    signing_key: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=usages.get("digital_signature", False),
                content_commitment=usages.get("content_commitment", False),
                key_encipherment=usages.get("key_encipherment", False),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    certificate = builder.sign(signing_key, hashes.SHA256())
    return Issued(certificate=certificate, key=key)


@dataclass
class TestPki:
    root: Issued
    issuing: Issued
    issued: dict[str, Issued] = field(default_factory=dict)

    def trust_bundle_pem(self) -> bytes:
        return self.root.certificate_pem + self.issuing.certificate_pem

    def cps_card(
        self, *, national_id: str, display_name: str, structure_name: str = ""
    ) -> tuple[Issued, Issued]:
        """The authentication and signature certificates of a professional's CPS card."""
        subject = _name(display_name, organisation=structure_name, serial=national_id)
        auth = _issue(
            subject,
            issuer=self.issuing,
            is_ca=False,
            usages={"digital_signature": True, "key_encipherment": True},
            extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        sign = _issue(
            subject,
            issuer=self.issuing,
            is_ca=False,
            usages={"digital_signature": True, "content_commitment": True},
        )
        self.issued[f"cps-auth-{national_id}"] = auth
        self.issued[f"cps-sign-{national_id}"] = sign
        return auth, sign

    def structure(self, *, id_nat: str, name: str) -> tuple[Issued, Issued]:
        """ORG_AUTH_CLI (TLS client) and ORG_SIGN (assertion signing) certificates of a structure."""
        subject = _name(name, organisation=name, unit=id_nat, serial=id_nat)
        auth = _issue(
            subject,
            issuer=self.issuing,
            is_ca=False,
            usages={"digital_signature": True, "key_encipherment": True},
            extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        sign = _issue(
            subject,
            issuer=self.issuing,
            is_ca=False,
            usages={"digital_signature": True, "content_commitment": True},
        )
        self.issued[f"org-auth-{id_nat}"] = auth
        self.issued[f"org-sign-{id_nat}"] = sign
        return auth, sign

    def server(self, host: str = "localhost") -> Issued:
        names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        issued = _issue(
            _name(host, organisation="OpenDMP"),
            issuer=self.issuing,
            is_ca=False,
            usages={"digital_signature": True, "key_encipherment": True},
            extended=[ExtendedKeyUsageOID.SERVER_AUTH],
            san=names,
        )
        self.issued["server"] = issued
        return issued

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "trust.pem").write_bytes(self.trust_bundle_pem())
        for label, issued in {"root": self.root, "issuing-ca": self.issuing, **self.issued}.items():
            (directory / f"{label}.pem").write_bytes(issued.certificate_pem)
            key_path = directory / f"{label}.key"
            key_path.write_bytes(issued.key_pem)
            key_path.chmod(0o600)


def create_test_pki() -> TestPki:
    root = _issue(
        _name(ROOT_NAME, organisation="ASIP-SANTE TEST"),
        issuer=None,
        is_ca=True,
        usages={},
        days=20 * 365,
    )
    issuing = _issue(
        _name(ISSUING_NAME, organisation="ASIP-SANTE TEST"),
        issuer=root,
        is_ca=True,
        usages={},
        days=10 * 365,
    )
    return TestPki(root=root, issuing=issuing)


def issue_with(
    pki: TestPki,
    *,
    common_name: str,
    days: int = 365,
    not_before: dt.datetime | None = None,
    client_auth: bool = True,
) -> Issued:
    """An arbitrary leaf from the test issuing CA (negative tests: expired, not yet valid...)."""
    return _issue(
        _name(common_name),
        issuer=pki.issuing,
        is_ca=False,
        usages={"digital_signature": True, "content_commitment": True},
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else None,
        days=days,
        not_before=not_before,
    )


def self_signed_clone(of: x509.Certificate) -> Issued:
    """A certificate copying a trusted subject and issuer DN, signed by a fresh key (an attack)."""
    key = _new_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(of.subject)
        .issuer_name(of.issuer)
        .public_key(key.public_key())
        .serial_number(of.serial_number)
        .not_valid_before(of.not_valid_before_utc)
        .not_valid_after(of.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate=certificate, key=key)


# --- verification -----------------------------------------------------------------------------


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def fingerprint_of(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def verify_certificate(
    certificate: x509.Certificate,
    *,
    anchors: list[x509.Certificate],
    intermediates: list[x509.Certificate] | None = None,
    at: dt.datetime | None = None,
    revoked_fingerprints: frozenset[str] = frozenset(),
    require_signature_usage: bool = True,
) -> tuple[dt.datetime, dt.datetime]:
    """Raise `CertificateRejected` unless `certificate` chains to one of `anchors`, valid at `at`.

    Returns the window in which every certificate of the chain is valid."""
    moment = at or clock.now()
    window_start, window_end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    pool = {c.subject.rfc4514_string(): c for c in [*anchors, *(intermediates or [])]}
    anchor_fingerprints = {fingerprint_of(a) for a in anchors}
    current = certificate
    if fingerprint_of(current) in revoked_fingerprints:
        raise CertificateRejected("certificate revoked")
    if require_signature_usage:
        try:
            usage = current.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            raise CertificateRejected("certificate has no key usage extension") from None
        if not usage.digital_signature:
            raise CertificateRejected("certificate may not sign")
    for _depth in range(6):
        if not current.not_valid_before_utc <= moment <= current.not_valid_after_utc:
            raise CertificateRejected("certificate outside its validity period")
        window_start = max(window_start, current.not_valid_before_utc)
        window_end = min(window_end, current.not_valid_after_utc)
        if fingerprint_of(current) in anchor_fingerprints:
            return window_start, window_end
        issuer = pool.get(current.issuer.rfc4514_string())
        if issuer is None:
            raise CertificateRejected("certificate not issued by a trusted authority")
        try:
            current.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateRejected("certificate signature does not verify against its issuer") from exc
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise CertificateRejected("issuer is not a certification authority") from None
        if not constraints.ca:
            raise CertificateRejected("issuer is not a certification authority")
        if fingerprint_of(current) in revoked_fingerprints:
            raise CertificateRejected("certificate revoked")
        current = issuer
    raise CertificateRejected("certificate chain too long")


def certificate_register(
    issued: Issued, *, usage: str, professional: object | None = None, structure: object | None = None
) -> object:
    """Record a certificate as known to the DMP (demo and tests; production imports from the IGC)."""
    from dmp.identity.models import Certificate, HealthProfessional, Structure

    certificate = issued.certificate
    registered = Certificate.objects.update_or_create(
        fingerprint_sha256=issued.fingerprint,
        defaults={
            "serial_number": format(certificate.serial_number, "x"),
            "subject_dn": certificate.subject.rfc4514_string(),
            "issuer_dn": certificate.issuer.rfc4514_string(),
            "usage": usage,
            "pem": issued.certificate_pem.decode(),
            "professional": professional if isinstance(professional, HealthProfessional) else None,
            "structure": structure if isinstance(structure, Structure) else None,
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
        },
    )[0]
    clear_reference_caches()
    return registered


@dataclass
class _TrustBundle:
    mtime: float
    anchors: list[x509.Certificate]
    # Chains verified against these anchors: (fingerprint, signature usage required) -> the window
    # in which the whole chain is valid. Forgotten with the bundle when its file changes.
    verified: dict[tuple[str, bool], tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)


_bundles: dict[Path, _TrustBundle] = {}


def _trust_bundle(path: Path) -> _TrustBundle | None:
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    loaded = _bundles.get(path)
    if loaded is None or loaded.mtime != mtime:
        loaded = _bundles[path] = _TrustBundle(mtime, load_pem_bundle(path.read_bytes()))
    return loaded


def trust_anchors(path: Path) -> list[x509.Certificate]:
    """The trust bundle at `path` (re-read when it changes); empty when absent."""
    loaded = _trust_bundle(path)
    return loaded.anchors if loaded is not None else []


def verify_against_bundle(
    certificate: x509.Certificate,
    *,
    bundle: Path,
    at: dt.datetime | None = None,
    require_signature_usage: bool = True,
) -> None:
    """`verify_certificate` against the trust bundle at `bundle`, remembering the chains that verified.

    The signatures of a chain cannot change while the bundle does not, so a known certificate
    costs a dictionary lookup and the validity check instead of a chain walk on every request.
    Registration and revocation are decided elsewhere, from the database, on every request."""
    moment = at or clock.now()
    loaded = _trust_bundle(bundle)
    if loaded is None:  # no bundle: nothing is trusted, refused with verify_certificate's reason
        verify_certificate(
            certificate, anchors=[], at=moment, require_signature_usage=require_signature_usage
        )
        return
    key = (fingerprint_of(certificate), require_signature_usage)
    window = loaded.verified.get(key)
    if window is None:
        window = verify_certificate(
            certificate, anchors=loaded.anchors, at=moment, require_signature_usage=require_signature_usage
        )
        if len(loaded.verified) >= 10_000:
            loaded.verified.clear()
        loaded.verified[key] = window
    elif not window[0] <= moment <= window[1]:
        raise CertificateRejected("certificate outside its validity period")
