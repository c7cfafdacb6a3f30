"""Logging in: CPS card through the trusted proxy, demo cards, sessions, contextual links, CSRF."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from dmp.access.actors import AccessMode, AuthenticationMode
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.identity.models import Certificate
from dmp.identity.pki import certificate_register, create_test_pki, self_signed_clone
from dmp.portals.professional.links import contextual_link
from dmp.portals.professional.tests.conftest import login_as
from dmp.records.models import IssuedContextLink

HEADER = "HTTP_X_SSL_CLIENT_CERT"


@pytest.fixture
def pki(settings, tmp_path):
    authority = create_test_pki()
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(authority.trust_bundle_pem())
    settings.OPENDMP_TRUST_BUNDLE = bundle
    settings.OPENDMP_TLS_CLIENT_CERT_HEADER = HEADER
    settings.OPENDMP_TRUSTED_PROXIES = ["127.0.0.1"]
    return authority


def card_of(pki, professional, *, register=True):
    auth, _ = pki.cps_card(national_id=professional.national_id, display_name=professional.display_name)
    if register:
        certificate_register(auth, usage=Certificate.Usage.CPS_AUTH, professional=professional)
    return auth


def pem_header(issued) -> dict[str, Any]:
    return {HEADER: quote(issued.certificate_pem.decode())}


def test_pages_need_a_logged_in_professional(db, client):
    response = client.get("/pro/")
    assert response.status_code == 302
    assert response["Location"].startswith("/pro/connexion/?next=")


def test_the_login_page_offers_demo_cards_only_in_demo_mode(personas, client, settings):
    settings.DEMO = False
    settings.DEBUG = False
    page = client.get("/pro/connexion/").content.decode()
    assert "carte CPS" in page
    assert personas.dr_bernard.national_id not in page
    refused = client.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id})
    assert refused.status_code == 404
    assert "pro" not in client.session
    settings.DEMO = True
    page = client.get("/pro/connexion/").content.decode()
    assert "Démonstration" in page
    assert personas.dr_bernard.national_id in page


def test_debug_mode_alone_offers_no_demo_card(personas, client, settings):
    """DJANGO_DEBUG=true opened the demo-card login, with which anyone logs in as any PS (found
    by review): only the demonstration mode offers it."""
    settings.DEMO = False
    settings.DEBUG = True
    page = client.get("/pro/connexion/").content.decode()
    assert personas.dr_bernard.national_id not in page
    refused = client.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id})
    assert refused.status_code == 404
    assert "pro" not in client.session
    assert client.get("/pro/").status_code == 302


def test_a_demo_card_login_rotates_the_session_and_stores_the_level(personas, client, demo):
    client.get("/pro/connexion/")
    client.session.save()
    before = client.session.session_key
    login_as(client, personas.dr_bernard)
    assert client.session.session_key != before
    stored = client.session["pro"]
    assert stored["ps"] == personas.dr_bernard.national_id
    assert stored["method"] == "demo_card"
    assert stored["authentication"] == "DIRECTE"
    page = client.get("/pro/").content.decode()
    assert "Carte de démonstration" in page
    assert personas.dr_bernard.display_name in page


def test_an_unknown_demo_card_is_refused(personas, client, demo):
    response = client.post("/pro/connexion/demo", {"professional": "899999999999"})
    assert response.status_code == 400
    assert "pro" not in client.session


def test_a_registered_cps_card_from_the_trusted_proxy_logs_in(personas, client, pki):
    auth = card_of(pki, personas.dr_moreau)
    response = client.post("/pro/connexion/cps", **pem_header(auth))
    assert response.status_code == 302
    assert client.session["pro"]["ps"] == personas.dr_moreau.national_id
    assert client.session["pro"]["method"] == "cps"
    assert client.session["pro"]["structure"] == personas.chu.id_nat


@pytest.mark.parametrize(
    "case", ["untrusted_proxy", "unregistered", "clone", "missing", "garbage", "revoked"]
)
def test_a_bad_card_is_refused_and_opens_no_session(personas, pki, case):
    client = Client(REMOTE_ADDR="10.0.0.9" if case == "untrusted_proxy" else "127.0.0.1")
    auth = card_of(pki, personas.dr_bernard, register=case != "unregistered")
    headers = pem_header(auth)
    if case == "clone":
        clone = self_signed_clone(auth.certificate)
        certificate_register(clone, usage=Certificate.Usage.CPS_AUTH, professional=personas.dr_bernard)
        headers = pem_header(clone)
    elif case == "missing":
        headers = {}
    elif case == "garbage":
        headers = {HEADER: "-----BEGIN CERTIFICATE-----nope"}
    elif case == "revoked":
        Certificate.objects.filter(fingerprint_sha256=auth.fingerprint).update(revoked_at=clock.now())
    response = client.post("/pro/connexion/cps", **headers)
    assert response.status_code == 403
    assert "pro" not in client.session
    assert client.get("/pro/").status_code == 302


def test_without_a_configured_header_cps_login_is_refused(personas, client, settings):
    settings.OPENDMP_TLS_CLIENT_CERT_HEADER = ""
    assert client.post("/pro/connexion/cps").status_code == 403


def test_a_session_ends_after_its_maximum_age(personas, client, demo, monkeypatch):
    login_as(client, personas.dr_bernard)
    assert client.get("/pro/").status_code == 200
    later = clock.now() + dt.timedelta(hours=9)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert client.get("/pro/").status_code == 302
    assert "pro" not in client.session


def test_a_deactivated_professional_loses_the_session(personas, client, demo):
    login_as(client, personas.dr_bernard)
    personas.dr_bernard.is_active = False
    personas.dr_bernard.save()
    assert client.get("/pro/").status_code == 302


def test_logout_flushes_the_session(personas, client, demo):
    login_as(client, personas.dr_bernard)
    assert client.post("/pro/deconnexion").status_code == 302
    assert client.get("/pro/").status_code == 302


def test_login_and_every_post_enforce_csrf(personas, demo):
    strict = Client(enforce_csrf_checks=True)
    assert (
        strict.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id}).status_code
        == 403
    )
    assert "pro" not in strict.session
    page = strict.get("/pro/connexion/")
    token = page.cookies["csrftoken"].value
    response = strict.post(
        "/pro/connexion/demo", {"professional": personas.dr_bernard.national_id, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    # Logged in, a POST without the (rotated) token is still refused.
    assert strict.post("/pro/deconnexion").status_code == 403
    assert strict.get("/pro/").status_code == 200


def test_the_next_parameter_never_leaves_the_site(personas, client, demo):
    response = client.post(
        "/pro/connexion/demo",
        {"professional": personas.dr_bernard.national_id, "next": "https://evil.example/"},
    )
    assert response["Location"] == "/pro/"


# --- TD0.9 contextual opening ----------------------------------------------------------------


def test_a_contextual_link_opens_the_record_once(personas, client):
    link = contextual_link(
        professional_id=personas.dr_bernard.national_id, ins=personas.alice.identifier, page="documents"
    )
    response = client.get(link)
    record = personas.alice.record
    assert response.status_code == 302
    assert response["Location"] == f"/pro/dossier/{record.public_id}/documents"
    assert client.session["pro"]["method"] == "context_link"
    assert client.get(response["Location"]).status_code == 200
    assert IssuedContextLink.objects.get().used_at is not None
    replay = Client().get(link)
    assert replay.status_code == 403
    assert "pro" not in replay.wsgi_request.session


def test_an_expired_contextual_link_is_refused(personas, client, monkeypatch):
    link = contextual_link(professional_id=personas.dr_bernard.national_id, ins=personas.alice.identifier)
    later = clock.now() + dt.timedelta(seconds=150)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert client.get(link).status_code == 403
    assert "pro" not in client.session
    assert IssuedContextLink.objects.get().used_at is None


def test_a_tampered_contextual_link_is_refused(personas, client):
    link = contextual_link(professional_id=personas.dr_bernard.national_id, ins=personas.alice.identifier)
    token = link.rstrip("/").rsplit("/", 1)[1]
    tampered = link.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert client.get(tampered).status_code == 403
    assert "pro" not in client.session
    # A token signed with the server's key (the links of old) is no link either.
    from django.core import signing

    other = signing.dumps(
        {"ps": personas.dr_bernard.national_id}, salt="opendmp.portals.professional.context-link"
    )
    assert client.get(f"/pro/ouvrir/{other}").status_code == 403
    assert IssuedContextLink.objects.get().used_at is None


def test_a_contextual_link_names_a_known_page_only(personas):
    with pytest.raises(ValueError, match="unknown page"):
        contextual_link(professional_id="1", ins=personas.alice.identifier, page="../admin")


def test_the_portal_is_in_french_with_an_english_translation(personas, client, demo):
    french = client.get("/pro/connexion/")
    assert b'lang="fr"' in french.content
    assert "Se connecter avec ma carte CPS" in french.content.decode()
    assert "script-src 'self'" in french["Content-Security-Policy"]
    english = client.get("/pro/connexion/", HTTP_ACCEPT_LANGUAGE="en")
    assert b'lang="en"' in english.content
    assert "Log in with my CPS card" in english.content.decode()
    assert 'href="#main"' in english.content.decode()  # skip link


def test_login_failures_from_one_address_are_throttled(personas, demo):
    from dmp.portals.professional.throttle import BUDGET

    client = Client()
    for _ in range(BUDGET):
        assert client.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 400
    # Even a good card is now refused for a while, and no session is opened.
    refused = client.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id})
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert client.get("/pro/").status_code == 302


def test_behind_the_proxy_login_failures_are_counted_per_sender(personas, demo):
    from dmp.portals.professional.throttle import BUDGET

    prober = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for _ in range(BUDGET):
        assert prober.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 400
    assert prober.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 429
    colleague = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.10")
    response = colleague.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id})
    assert response.status_code == 302
    # Sent by the prober itself, not through the proxy, the header changes nothing.
    forger = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.10")
    for _ in range(BUDGET):
        forger.post("/pro/connexion/demo", {"professional": "899999999999"})
    assert forger.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 429
    assert colleague.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 400


def test_login_failures_from_one_ipv6_64_share_one_budget(personas, demo):
    """Each address of a /64 had its own budget (found by review)."""
    from dmp.portals.professional.throttle import BUDGET

    for i in range(BUDGET):
        prober = Client(REMOTE_ADDR=f"2001:db8:5:1::{i + 1:x}")
        assert prober.post("/pro/connexion/demo", {"professional": "899999999999"}).status_code == 400
    same_64 = Client(REMOTE_ADDR="2001:db8:5:1:ffff::1")
    refused = same_64.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id})
    assert refused.status_code == 429
    assert "pro" not in same_64.session
    neighbour = Client(REMOTE_ADDR="2001:db8:5:2::1")
    assert (
        neighbour.post("/pro/connexion/demo", {"professional": personas.dr_bernard.national_id}).status_code
        == 302
    )


def test_a_link_asked_for_in_indirect_mode_opens_an_indirect_session(personas, client):
    """TD0.9 keeps the VIHF's authentication mode: a hospital's software vouching for Dr Petit
    cannot turn into a CPS session, in which break-glass (direct mode only) would open."""
    link = contextual_link(
        professional_id=personas.dr_petit.national_id,
        ins=personas.alice.identifier,
        structure_id=personas.dr_petit.structures.first().id_nat,
        authentication=AuthenticationMode.INDIRECT,
    )
    assert client.get(link).status_code == 302
    assert client.session["pro"]["authentication"] == "INDIRECTE"
    record = personas.alice.record
    refused = client.post(
        f"/pro/dossier/{record.public_id}/urgence",
        {"mode": "bris_de_glace", "reason": "Patiente inconsciente"},
    )
    assert refused.status_code == 403
    assert client.session["pro"]["emergency"] is None
    assert not AuditEvent.objects.filter(access_mode=AccessMode.BREAK_GLASS, outcome="success").exists()


def test_a_link_naming_a_structure_the_ps_does_not_work_in_is_refused(personas, client):
    link = contextual_link(
        professional_id=personas.dr_bernard.national_id,
        ins=personas.alice.identifier,
        structure_id=personas.chu.id_nat,
        authentication=AuthenticationMode.INDIRECT,
    )
    assert client.get(link).status_code == 403
    assert "pro" not in client.session


def test_logging_in_renews_the_csrf_token(personas, demo):
    """As the patient portal does: a token planted or read before the login is no good after."""
    client = Client(enforce_csrf_checks=True)
    client.get("/pro/connexion/")
    before = client.cookies["csrftoken"].value
    client.post(
        "/pro/connexion/demo",
        {"professional": personas.dr_bernard.national_id, "csrfmiddlewaretoken": before},
    )
    assert "pro" in client.session
    assert client.cookies["csrftoken"].value != before


def test_an_indirect_session_stays_with_the_structure_that_vouched(personas, client):
    """The SAMU's software vouched for Dr Petit: the session may not switch to the CHU, whose
    authorship an indirect actor would get (and so delete a CHU colleague's document)."""
    from dmp.access.policy import DocumentStatus
    from dmp.documents.builders import DocumentDraft
    from dmp.documents.models import DocumentEntry
    from dmp.identity.models import Affiliation
    from dmp.portals.professional.tests.conftest import publish

    Affiliation.objects.create(professional=personas.dr_petit, structure=personas.samu)
    (document,) = publish(personas, personas.dr_moreau, [DocumentDraft(title="CR Moreau")])
    link = contextual_link(
        professional_id=personas.dr_petit.national_id,
        ins=personas.alice.identifier,
        structure_id=personas.samu.id_nat,
        authentication=AuthenticationMode.INDIRECT,
    )
    assert client.get(link).status_code == 302
    assert 'id="structure"' not in client.get("/pro/").content.decode()  # no switch offered
    refused = client.post("/pro/structure", {"structure": personas.chu.id_nat}, follow=True)
    assert "reste attachée à cette structure" in refused.content.decode()
    assert client.session["pro"]["structure"] == personas.samu.id_nat
    assert client.session["pro"]["authentication"] == "INDIRECTE"
    record = personas.alice.record
    response = client.post(
        f"/pro/dossier/{record.public_id}/document/{document.unique_id}/action",
        {"action": "delete", "entry_uuid": document.entry_uuid},
    )
    assert response.status_code in {403, 404}
    assert DocumentEntry.objects.get(pk=document.pk).availability_status == DocumentStatus.APPROVED


def test_an_indirect_link_naming_no_structure_is_refused(personas, client):
    link = contextual_link(
        professional_id=personas.dr_petit.national_id,
        ins=personas.alice.identifier,
        authentication=AuthenticationMode.INDIRECT,
    )
    response = client.get(link)
    assert response.status_code == 403
    assert "ne nomme pas la structure" in response.content.decode()
    assert "pro" not in client.session


def test_a_direct_session_still_switches_structure(personas, client, demo):
    from dmp.identity.models import Affiliation

    Affiliation.objects.create(professional=personas.dr_petit, structure=personas.samu)
    link = contextual_link(professional_id=personas.dr_petit.national_id, ins=personas.alice.identifier)
    assert client.get(link).status_code == 302
    assert client.session["pro"]["authentication"] == "DIRECTE"
    client.post("/pro/structure", {"structure": personas.samu.id_nat})
    assert client.session["pro"]["structure"] == personas.samu.id_nat


def test_a_failed_card_login_is_told_in_french_and_keeps_every_way_in(personas, pki, settings):
    settings.OPENDMP_PSC_ISSUER = "https://psc.example"
    settings.OPENDMP_PSC_CLIENT_ID = "opendmp"
    client = Client()
    missing = client.post("/pro/connexion/cps", {"next": "/pro/recherche"})
    assert missing.status_code == 403
    page = missing.content.decode()
    assert "Aucune carte CPS n&#x27;a été lue" in page
    assert "insert your CPS card" not in page
    assert 'id="login-psc"' in page
    assert 'name="next" value="/pro/recherche"' in page
    assert "?next=/pro/recherche" in page
    unregistered = card_of(pki, personas.dr_bernard, register=False)
    refused = client.post("/pro/connexion/cps", {"next": "/pro/recherche"}, **pem_header(unregistered))
    assert refused.status_code == 403
    assert "Votre carte CPS n&#x27;a pas été acceptée par le DMP." in refused.content.decode()
    assert "registered" not in refused.content.decode()
    assert "pro" not in client.session


def test_a_used_contextual_link_is_refused_in_french(personas, client):
    link = contextual_link(professional_id=personas.dr_bernard.national_id, ins=personas.alice.identifier)
    assert client.get(link).status_code == 302
    replay = Client().get(link)
    assert replay.status_code == 403
    assert "Ce lien d&#x27;ouverture n&#x27;est plus valable" in replay.content.decode()
    assert "already used" not in replay.content.decode()


# --- TD0.9 link opened in another PS's session (login CSRF) ----------------------------------


def test_a_link_for_another_ps_asks_before_replacing_the_session(personas, demo):
    """Dr Moreau hands Dr Bernard a link of her own: his session is not replaced behind his
    back (what he then uploaded would be credited to her)."""
    client = Client(enforce_csrf_checks=True)
    client.get("/pro/connexion/")
    client.post(
        "/pro/connexion/demo",
        {
            "professional": personas.dr_bernard.national_id,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    key = client.session.session_key
    link = contextual_link(professional_id=personas.dr_moreau.national_id, ins=personas.alice.identifier)
    response = client.get(link)
    assert response.status_code == 200
    page = response.content.decode()
    assert (
        f"Vous êtes connecté en tant que {personas.dr_bernard.display_name} ; continuer en tant que "
        f"{personas.dr_moreau.display_name} ?" in page
    )
    assert f'action="{link}"' in page
    assert response["Cache-Control"] == "no-store"
    assert client.session.session_key == key
    assert client.session["pro"]["ps"] == personas.dr_bernard.national_id
    assert IssuedContextLink.objects.get().used_at is None
    # Continuing needs the page's CSRF token: a forged POST changes nothing either.
    assert client.post(link).status_code == 403
    assert client.session["pro"]["ps"] == personas.dr_bernard.national_id
    assert IssuedContextLink.objects.get().used_at is None
    continued = client.post(link, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert continued.status_code == 302
    assert continued["Location"] == f"/pro/dossier/{personas.alice.record.public_id}/documents"
    assert client.session["pro"]["ps"] == personas.dr_moreau.national_id
    assert client.session["pro"]["method"] == "context_link"
    assert client.session.session_key != key
    assert IssuedContextLink.objects.get().used_at is not None
    # Used: neither a second confirmation nor the GET opens it again.
    assert client.post(link, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}).status_code == 403
    assert client.get(link).status_code == 403


def test_staying_in_ones_session_leaves_the_link_unused(personas, demo):
    client = login_as(Client(), personas.dr_bernard)
    link = contextual_link(professional_id=personas.dr_moreau.national_id, ins=personas.alice.identifier)
    page = client.get(link).content.decode()
    assert 'id="context-stay" href="/pro/"' in page or 'href="/pro/" id="context-stay"' in page
    assert client.get("/pro/").status_code == 200
    assert client.session["pro"]["ps"] == personas.dr_bernard.national_id
    assert IssuedContextLink.objects.get().used_at is None


def test_a_link_for_the_logged_in_ps_opens_directly(personas, demo):
    client = login_as(Client(), personas.dr_bernard)
    link = contextual_link(professional_id=personas.dr_bernard.national_id, ins=personas.alice.identifier)
    response = client.get(link)
    assert response.status_code == 302
    assert response["Location"] == f"/pro/dossier/{personas.alice.record.public_id}/documents"
    assert client.session["pro"]["method"] == "context_link"
    assert IssuedContextLink.objects.get().used_at is not None


def test_the_question_is_in_french_with_an_english_translation(personas, demo):
    client = login_as(Client(), personas.dr_bernard)
    link = contextual_link(professional_id=personas.dr_moreau.national_id, ins=personas.alice.identifier)
    english = client.get(link, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert (
        f"You are logged in as {personas.dr_bernard.display_name}; continue as "
        f"{personas.dr_moreau.display_name}?" in english
    )
    assert "Vous êtes connecté" not in english
    assert "<h1>" in english
