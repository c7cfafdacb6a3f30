"""The test PKI issues certificates that verify, and verification rejects forgeries."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from dmp.common import clock
from dmp.identity.pki import (
    CertificateRejected,
    create_test_pki,
    issue_with,
    self_signed_clone,
    verify_against_bundle,
    verify_certificate,
)


@pytest.fixture(scope="module")
def pki():
    return create_test_pki()


def test_a_cps_certificate_chains_to_the_root(pki):
    auth, sign = pki.cps_card(national_id="810001234567", display_name="Dr Jean DUPONT")
    verify_certificate(
        sign.certificate, anchors=[pki.root.certificate], intermediates=[pki.issuing.certificate]
    )
    verify_certificate(
        auth.certificate, anchors=[pki.root.certificate], intermediates=[pki.issuing.certificate]
    )


@pytest.mark.parametrize(
    "case",
    ["clone", "expired", "not_yet_valid", "unknown_ca", "revoked", "no_signature_usage"],
)
def test_it_rejects_bad_certificates(pki, case):
    anchors, intermediates = [pki.root.certificate], [pki.issuing.certificate]
    revoked: frozenset[str] = frozenset()
    if case == "clone":
        certificate = self_signed_clone(
            pki.cps_card(national_id="81", display_name="X")[1].certificate
        ).certificate
    elif case == "expired":
        certificate = issue_with(
            pki, common_name="old", not_before=clock.now() - dt.timedelta(days=30), days=10
        ).certificate
    elif case == "not_yet_valid":
        certificate = issue_with(
            pki, common_name="future", not_before=clock.now() + dt.timedelta(days=3)
        ).certificate
    elif case == "unknown_ca":
        certificate = create_test_pki().cps_card(national_id="82", display_name="Y")[1].certificate
    elif case == "revoked":
        issued = issue_with(pki, common_name="revoked")
        certificate, revoked = issued.certificate, frozenset({issued.fingerprint})
    else:
        certificate = pki.root.certificate  # a CA certificate has no digitalSignature usage
    with pytest.raises(CertificateRejected):
        verify_certificate(
            certificate, anchors=anchors, intermediates=intermediates, revoked_fingerprints=revoked
        )


def test_verified_chains_are_remembered_per_bundle_and_window(pki, tmp_path):
    pki.write(tmp_path)
    bundle = tmp_path / "trust.pem"
    _, sign = pki.cps_card(national_id="810001234568", display_name="Dr Paul MARTIN")
    verify_against_bundle(sign.certificate, bundle=bundle)
    verify_against_bundle(sign.certificate, bundle=bundle)  # remembered
    # The remembered chain is still held to its validity window.
    too_late = sign.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(CertificateRejected, match="validity"):
        verify_against_bundle(sign.certificate, bundle=bundle, at=too_late)
    # A new bundle (another authority) forgets what the old one vouched for.
    other = create_test_pki()
    other.write(tmp_path)
    later = bundle.stat().st_mtime + 10
    os.utime(bundle, (later, later))
    with pytest.raises(CertificateRejected, match="issuer"):  # same names, other keys
        verify_against_bundle(sign.certificate, bundle=bundle)
    verify_against_bundle(
        other.cps_card(national_id="810001234569", display_name="X")[1].certificate, bundle=bundle
    )
