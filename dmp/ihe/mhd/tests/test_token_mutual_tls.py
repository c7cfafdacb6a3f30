"""With mutual TLS configured, /fhir/token asks for the client certificate as SOAP does.

The token endpoint turned the assertion's facts into a caller without the TLS client
certificate (found by review): a client SOAP refused for want of the card's or structure's
authentication certificate still got a bearer token, and with it the same documents.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from dmp.identity.models import Certificate
from dmp.identity.pki import certificate_register
from dmp.ihe.xds.models import SeenAssertion
from opendmp_client.fhir import ASSERTION_TYPE, client_assertion

pytestmark = pytest.mark.django_db(transaction=True)
HEADER = "X-SSL-Client-Cert"


@pytest.fixture
def mutual_tls(settings):
    settings.OPENDMP_TLS_CLIENT_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
    settings.OPENDMP_TRUSTED_PROXIES = ["127.0.0.1"]


def authentication_certificate(xds_kit, professional):
    auth, _ = xds_kit.pki.cps_card(
        national_id=professional.national_id, display_name=professional.display_name
    )
    certificate_register(auth, usage=Certificate.Usage.CPS_AUTH, professional=professional)
    return quote(auth.certificate_pem.decode())


def ask_token(xds_kit, professional, headers):
    card = xds_kit.card(professional)
    token_url = f"{xds_kit.base_url}/fhir/token"
    assertion = client_assertion(
        xds_kit.claims(professional), key=card.key, certificate=card.certificate, token_url=token_url
    )
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    return requests.post(token_url, data={**form, "client_assertion": assertion}, headers=headers, timeout=10)


def assert_refused(answer, reason):
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert reason in answer.json()["error_description"]
    assert "access_token" not in answer.json()


def test_a_token_needs_the_tls_certificate_of_the_assertion_signer(xds_kit, personas, mutual_tls):
    bernard = personas.dr_bernard
    used = SeenAssertion.objects.count()
    assert_refused(ask_token(xds_kit, bernard, {}), "no client certificate")
    someone_else = authentication_certificate(xds_kit, personas.dr_moreau)
    assert_refused(ask_token(xds_kit, bernard, {HEADER: someone_else}), "differ")
    # Refused before the assertion is spent: nothing was recorded.
    assert SeenAssertion.objects.count() == used
    granted = ask_token(xds_kit, bernard, {HEADER: authentication_certificate(xds_kit, bernard)})
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    search = requests.get(
        f"{xds_kit.base_url}/fhir/DocumentReference",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.10|{personas.alice.ins}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert search.status_code == 200


def test_the_certificate_header_is_believed_only_from_a_trusted_proxy(
    xds_kit, personas, mutual_tls, settings
):
    settings.OPENDMP_TRUSTED_PROXIES = ["192.0.2.1"]
    used = SeenAssertion.objects.count()
    forwarded = authentication_certificate(xds_kit, personas.dr_bernard)
    assert_refused(ask_token(xds_kit, personas.dr_bernard, {HEADER: forwarded}), "untrusted peer")
    assert SeenAssertion.objects.count() == used


def test_without_the_header_configured_no_certificate_is_asked(xds_kit, personas):
    assert ask_token(xds_kit, personas.dr_bernard, {}).status_code == 200
