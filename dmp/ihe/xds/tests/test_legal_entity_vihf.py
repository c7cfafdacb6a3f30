"""A hospital group's legal entity (entité juridique) signs for its sites (ADR 0011): its ORG_SIGN
certificate signs the VIHF and the lot of a site's staff, the caller stays the site the VIHF
names, and the trail says who signed. No other structure's certificate signs for a site."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests

from dmp.audit.models import AuditEvent
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.models import DocumentEntry, SubmissionSet
from dmp.identity.models import Certificate
from dmp.identity.pki import certificate_register, fingerprint_of
from dmp.ihe.mhd.tests.test_mhd_end_to_end import INS_SYSTEM
from dmp.ihe.mhd.tests.test_replaced_entry_uuid import get
from dmp.ihe.xds.tests.test_xds_end_to_end import find_documents
from opendmp_client.fhir import fetch_token
from opendmp_client.xds import SoapFault, XdsClient

pytestmark = pytest.mark.django_db(transaction=True)


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("pk").last()
    assert event is not None
    return event


def signed_by(kit, signer, named, professional, **changes):
    """A client whose VIHF names `named` and `professional`, signed by `signer`'s certificate."""
    _, sign = kit.pki.structure(id_nat=signer.id_nat, name=signer.name)
    certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=signer)
    claims = replace(kit.claims(professional, named, authentication_mode="INDIRECTE"), **changes)
    return XdsClient(endpoint=kit.endpoint, claims=claims, key=sign.key, certificate=sign.certificate), sign


def test_the_legal_entity_signs_for_its_site_which_stays_the_caller(xds_kit):
    personas = xds_kit.personas
    group, chu = personas.chu_legal_entity, personas.chu
    hospital, sign = signed_by(xds_kit, group, chu, personas.dr_moreau)
    before = AuditEvent.objects.order_by("pk").last()
    lot = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_moreau, chu),
        drafts=[DocumentDraft(title="Compte rendu du site")],
    )
    assert hospital.provide_and_register(lot).ok  # the lot, signed by the legal entity too
    subset = SubmissionSet.objects.get(unique_id=lot.submission_set.unique_id)
    assert subset.signature_signer_fingerprint == fingerprint_of(sign.certificate)
    assert find_documents(hospital)
    events = AuditEvent.objects.filter(pk__gt=before.pk if before else 0)
    assert events
    for event in events:
        assert event.actor_structure_id == chu.id_nat
        assert event.details["signed_by_structure"] == group.id_nat
    # The site's own certificate signs for it as before, and names no other signer.
    own, _ = signed_by(xds_kit, chu, chu, personas.dr_moreau)
    last = last_event()
    assert find_documents(own)
    newest = last_event()
    assert newest.pk != last.pk
    assert "signed_by_structure" not in newest.details


@pytest.mark.parametrize(
    ("signer", "named"),
    [
        ("chu_south", "chu"),  # a sibling site
        ("chu", "chu_legal_entity"),  # a site for its legal entity
        ("chu_legal_entity", "cabinet"),  # a legal entity for a structure that is not its site
        ("cabinet", "chu"),  # a stranger
    ],
)
def test_no_other_structure_signs_for_a_site_and_nothing_changes(xds_kit, signer, named):
    personas = xds_kit.personas
    client, _ = signed_by(xds_kit, getattr(personas, signer), getattr(personas, named), personas.dr_moreau)
    lot = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_moreau, personas.chu),
        drafts=[DocumentDraft(title="Refusé")],
    )
    events, documents = AuditEvent.objects.count(), DocumentEntry.objects.count()
    with pytest.raises(SoapFault, match="does not belong"):
        client.provide_and_register(lot)
    with pytest.raises(SoapFault, match="does not belong"):
        find_documents(client)
    assert (AuditEvent.objects.count(), DocumentEntry.objects.count()) == (events, documents)


def test_a_person_the_directory_does_not_know_belongs_to_the_site_not_the_legal_entity(xds_kit):
    personas = xds_kit.personas
    unknown = "899900000002"
    for site in (personas.chu, personas.chu_south):
        hospital, _ = signed_by(
            xds_kit, personas.chu_legal_entity, site, personas.dr_moreau, subject_id=unknown
        )
        assert hospital.record_test().body.get("status") == "ACTIF"
        event = last_event()
        assert event.actor_id == f"{site.id_nat}/{unknown}"
        assert event.actor_structure_id == site.id_nat
        assert event.details["signed_by_structure"] == personas.chu_legal_entity.id_nat


def test_a_site_staff_member_is_checked_against_the_site_not_the_legal_entity(xds_kit):
    """Dr Moreau works at the CHU site: the legal entity may name her there, not at the sibling."""
    personas = xds_kit.personas
    at_south, _ = signed_by(xds_kit, personas.chu_legal_entity, personas.chu_south, personas.dr_moreau)
    events = AuditEvent.objects.count()
    with pytest.raises(SoapFault, match="staff"):
        at_south.record_test()
    assert AuditEvent.objects.count() == events


def test_a_fhir_token_signed_by_the_legal_entity_acts_as_the_site(xds_kit):
    personas = xds_kit.personas
    group, chu = personas.chu_legal_entity, personas.chu
    _, sign = xds_kit.pki.structure(id_nat=group.id_nat, name=group.name)
    certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=group)
    token = fetch_token(
        xds_kit.claims(personas.dr_moreau, chu, authentication_mode="INDIRECTE"),
        key=sign.key,
        certificate=sign.certificate,
        token_url=f"{xds_kit.base_url}/fhir/token",
    )
    found = get(xds_kit, token, f"DocumentReference?patient.identifier={INS_SYSTEM}|{personas.alice.ins}")
    assert found.status_code == 200, found.text
    event = last_event()
    assert (event.actor_id, event.actor_structure_id) == (personas.dr_moreau.national_id, chu.id_nat)
    assert event.details["signed_by_structure"] == group.id_nat


def test_a_td09_link_signed_by_the_legal_entity_opens_a_portal_session_that_names_it(xds_kit):
    """The portal session a TD0.9 link opens acts as the site, and its traces name the legal
    entity that signed, as the SOAP call's did; a link signed by the site itself names none."""
    personas = xds_kit.personas
    group, chu = personas.chu_legal_entity, personas.chu
    record = personas.alice.record
    for signer, named_signer in ((group, group.id_nat), (chu, None)):
        hospital, _ = signed_by(xds_kit, signer, chu, personas.dr_moreau)
        path = hospital.dmp("TD0.9", "ContextLinkRequest", page="documents").body.get("path")
        browser = requests.Session()
        opened = browser.get(f"{xds_kit.base_url}{path}", timeout=10, allow_redirects=False)
        assert opened.headers["Location"] == f"/pro/dossier/{record.public_id}/documents"
        before = last_event().pk
        page = browser.get(f"{xds_kit.base_url}{opened.headers['Location']}", timeout=10)
        assert page.status_code == 200
        events = list(AuditEvent.objects.filter(pk__gt=before, channel="ps_portal"))
        assert events
        for event in events:
            assert (event.actor_id, event.actor_structure_id) == (personas.dr_moreau.national_id, chu.id_nat)
            assert event.details.get("signed_by_structure") == named_signer


def test_over_mutual_tls_the_client_certificate_is_the_signing_legal_entitys(xds_kit, settings):
    """The TLS client certificate belongs to the VIHF's signer, as in every mode: the legal
    entity's when it signs for its site, not the site's."""
    from urllib.parse import quote

    personas = xds_kit.personas
    settings.OPENDMP_TLS_CLIENT_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
    group, chu = personas.chu_legal_entity, personas.chu
    hospital, _ = signed_by(xds_kit, group, chu, personas.dr_moreau)
    certificates = {}
    for structure in (group, chu):
        auth, _ = xds_kit.pki.structure(id_nat=structure.id_nat, name=structure.name)
        certificate_register(auth, usage=Certificate.Usage.ORG_AUTH_CLI, structure=structure)
        certificates[structure.id_nat] = quote(auth.certificate_pem.decode())
    events = AuditEvent.objects.count()
    hospital.extra_headers = {"X-SSL-Client-Cert": certificates[chu.id_nat]}
    with pytest.raises(SoapFault, match="differ"):
        hospital.record_test()
    assert AuditEvent.objects.count() == events
    hospital.extra_headers = {"X-SSL-Client-Cert": certificates[group.id_nat]}
    assert hospital.record_test().body.get("status") == "ACTIF"
    assert last_event().details["signed_by_structure"] == group.id_nat
