"""The XAdES signature of a submission set (TD2.1/TD2.2) over HTTP: kept when right, refused otherwise."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from dmp.audit.models import AuditEvent
from dmp.common.xml import parse_xml
from dmp.demo.scenarios import author_info
from dmp.documents.blobstore import default_blob_store
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.keys import data_key_for
from dmp.documents.metadata import SubmissionInput
from dmp.documents.models import DocumentEntry, SubmissionSet
from dmp.identity.models import Certificate
from dmp.identity.pki import certificate_register, fingerprint_of, self_signed_clone
from dmp.ihe.xds import dsg
from dmp.ihe.xds.tests.test_xds_end_to_end import alice_submission, find_documents
from opendmp_client.xds import XdsClient

pytestmark = pytest.mark.django_db(transaction=True)
DS = dsg.DS


def _lot(kit, count: int = 1) -> SubmissionInput:
    """Dr Bernard's lot of `count` documents for Alice, titled "Compte rendu <n>"."""
    return alice_submission(kit, [DocumentDraft(title=f"Compte rendu {n}") for n in range(count)])


def _state() -> tuple[int, int, int]:
    return DocumentEntry.objects.count(), SubmissionSet.objects.count(), AuditEvent.objects.count()


def _with_signature(lot: SubmissionInput, content: bytes) -> SubmissionInput:
    documents = tuple(
        d.model_copy(update={"content": content}) if dsg.is_signature(d) else d for d in lot.documents
    )
    return lot.model_copy(update={"documents": documents})


def _refused(client, lot: SubmissionInput, code: str, words: str) -> None:
    before = _state()
    response = client.provide_and_register(lot, sign_lot=False)
    assert not response.ok
    assert {e.code for e in response.errors} == {code}, response.errors
    assert any(words in e.message for e in response.errors), response.errors
    assert _state() == before


def test_a_signed_lot_is_registered_with_its_signature_kept_as_proof(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit, 2), key=bernard.key, certificate=bernard.certificate)
    signature = next(d for d in lot.documents if dsg.is_signature(d))

    assert bernard.provide_and_register(lot, sign_lot=False).ok

    subset = SubmissionSet.objects.get(unique_id=lot.submission_set.unique_id)
    assert subset.signature_unique_id == signature.unique_id
    assert subset.signature_signer_fingerprint == fingerprint_of(bernard.certificate)
    assert subset.signature_time is not None
    key = data_key_for(subset.record.key)
    assert (
        default_blob_store().load(key, sha256=subset.signature_sha256, size=subset.signature_size)
        == signature.content
    )
    # Evidence about the lot, not a clinical document: the two documents only.
    assert sorted(DocumentEntry.objects.filter(submission_set=subset).values_list("title", flat=True)) == [
        "Compte rendu 0",
        "Compte rendu 1",
    ]
    assert len(find_documents(bernard)) == 2


def test_a_lot_without_signature_is_refused_and_changes_nothing(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    _refused(bernard, _lot(xds_kit), "XDSRegistryMetadataError", "XAdES signature")


def test_a_document_changed_after_signing_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit, 2), key=bernard.key, certificate=bernard.certificate)
    first = lot.documents[0]
    changed = first.model_copy(update={"content": first.content.replace(b"Compte rendu", b"Compte-rendu")})
    tampered = lot.model_copy(update={"documents": (changed, *lot.documents[1:])})
    _refused(bernard, tampered, "XDSNonIdenticalHash", "differs from the one signed")


def test_a_manifest_that_leaves_a_document_out_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = _lot(xds_kit, 2)
    partial = dsg.sign_lot(lot.documents[:1], key=bernard.key, certificate=bernard.certificate)
    signed = dsg.signed_submission(lot, key=bernard.key, certificate=bernard.certificate)
    _refused(bernard, _with_signature(signed, partial), "XDSRegistryMetadataError", "exactly the documents")


def test_a_signature_by_another_professional_is_refused(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    moreau = xds_kit.card(personas.dr_moreau)
    lot = dsg.signed_submission(_lot(xds_kit), key=moreau.key, certificate=moreau.certificate)
    _refused(bernard, lot, "XDSRegistryError", "certificate of the caller")


def test_a_lot_signed_with_the_cards_authentication_certificate_is_refused(xds_kit):
    """Only a signature certificate (CPS_SIGN, ORG_SIGN) signs a lot, as only one signs a VIHF."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    auth, _ = xds_kit.pki.cps_card(
        national_id=personas.dr_bernard.national_id, display_name=personas.dr_bernard.display_name
    )
    certificate_register(auth, usage=Certificate.Usage.CPS_AUTH, professional=personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=auth.key, certificate=auth.certificate)
    _refused(bernard, lot, "XDSRegistryError", "certificate of the caller")


def test_a_signature_from_outside_the_trusted_pki_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    clone = self_signed_clone(bernard.certificate)
    lot = dsg.signed_submission(_lot(xds_kit), key=clone.key, certificate=clone.certificate)
    _refused(bernard, lot, "XDSRegistryError", "signing certificate rejected")


def test_an_edited_manifest_no_longer_verifies(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    signature = parse_xml(next(d for d in lot.documents if dsg.is_signature(d)).content)
    digest = signature.find(f".//{{{DS}}}Manifest/{{{DS}}}Reference/{{{DS}}}DigestValue")
    assert digest is not None
    assert digest.text
    digest.text = ("B" if digest.text[0] == "A" else "A") + digest.text[1:]
    _refused(bernard, _with_signature(lot, etree.tostring(signature)), "XDSRegistryError", "does not verify")


def test_an_unsigned_manifest_beside_the_signed_one_is_ignored(xds_kit):
    """Wrapping: the registry reads the manifest the signature covers, not one added beside it."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    first = lot.documents[0]
    changed = first.model_copy(update={"content": first.content.replace(b"Compte rendu", b"Compte-rendu")})
    signature = parse_xml(next(d for d in lot.documents if dsg.is_signature(d)).content)
    evil = etree.SubElement(signature, f"{{{DS}}}Object")
    evil.append(dsg.manifest((changed,)))
    evil[0].set("Id", "evil-manifest")
    tampered = _with_signature(
        lot.model_copy(update={"documents": (changed, *lot.documents[1:])}), etree.tostring(signature)
    )
    _refused(bernard, tampered, "XDSNonIdenticalHash", "differs from the one signed")


def test_a_signature_the_xml_dsig_schema_refuses_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    signature = parse_xml(next(d for d in lot.documents if dsg.is_signature(d)).content)
    etree.SubElement(signature, f"{{{DS}}}Object").append(dsg.manifest(lot.documents[:1]))  # Id twice
    _refused(bernard, _with_signature(lot, etree.tostring(signature)), "XDSRegistryError", "does not verify")


def test_a_plain_xml_signature_without_xades_properties_is_refused(xds_kit):
    from signxml import methods
    from signxml.signer import XMLSigner

    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = _lot(xds_kit)
    plain = XMLSigner(method=methods.enveloping).sign(
        dsg.manifest(lot.documents), key=bernard.key, cert=[bernard.certificate]
    )
    signed = dsg.signed_submission(lot, key=bernard.key, certificate=bernard.certificate)
    _refused(bernard, _with_signature(signed, etree.tostring(plain)), "XDSRegistryError", "does not verify")


def test_two_signature_documents_are_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    signature = next(d for d in lot.documents if dsg.is_signature(d))
    second = signature.model_copy(
        update={"entry_uuid": "second-signature", "unique_id": signature.unique_id + "1"}
    )
    doubled = lot.model_copy(update={"documents": (*lot.documents, second)})
    _refused(bernard, doubled, "XDSRegistryMetadataError", "one signature document")


def test_hostile_xml_in_the_signature_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    _refused(bernard, _with_signature(lot, hostile), "XDSRegistryMetadataError", "DOCTYPE")


def test_a_signature_signxml_cannot_decode_is_refused_not_a_server_error(xds_kit):
    """An empty RSA Modulus made signxml raise a TypeError, which became a server error; out of
    the lean form (an UnsignedProperties), the signature goes to signxml and is refused."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    signature = parse_xml(next(d for d in lot.documents if dsg.is_signature(d)).content)
    modulus = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}KeyValue/{{{DS}}}RSAKeyValue/{{{DS}}}Modulus")
    properties = signature.find(f".//{{{dsg.XADES}}}QualifyingProperties")
    assert modulus is not None
    assert properties is not None
    modulus.text = ""
    etree.SubElement(properties, f"{{{dsg.XADES}}}UnsignedProperties")
    _refused(bernard, _with_signature(lot, etree.tostring(signature)), "XDSRegistryError", "does not verify")


def test_a_hospital_signs_its_lot_with_the_structure_certificate(xds_kit):
    """Indirect mode: the structure's certificate signs the VIHF and the lot; a PS's own card may
    not sign for a structure's call made in another PS's name."""
    personas = xds_kit.personas
    chu = personas.chu
    _, sign = xds_kit.pki.structure(id_nat=chu.id_nat, name=chu.name)
    certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=chu)
    hospital = XdsClient(
        endpoint=xds_kit.endpoint,
        claims=xds_kit.claims(personas.dr_moreau, chu, authentication_mode="INDIRECTE"),
        key=sign.key,
        certificate=sign.certificate,
    )
    lot = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_moreau, chu),
        drafts=[DocumentDraft(title="Compte rendu hospitalier")],
    )
    bernard = xds_kit.card(personas.dr_bernard)
    _refused(
        hospital,
        dsg.signed_submission(lot, key=bernard.key, certificate=bernard.certificate),
        "XDSRegistryError",
        "certificate of the caller",
    )
    assert hospital.provide_and_register(lot).ok
    subset = SubmissionSet.objects.get(unique_id=lot.submission_set.unique_id)
    assert subset.signature_signer_fingerprint == fingerprint_of(sign.certificate)


def test_the_operators_command_checks_kept_signatures_again(xds_kit, monkeypatch):
    """`lot_signatures_verify` passes on lots as registered, years later too, and names each
    later alteration."""
    import datetime as dt
    from io import StringIO

    from django.core.management import CommandError, call_command

    from dmp.common import clock

    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lots = [
        dsg.signed_submission(_lot(xds_kit, 2), key=bernard.key, certificate=bernard.certificate)
        for _ in range(3)
    ]
    for lot in lots:
        assert bernard.provide_and_register(lot, sign_lot=False).ok
    out = StringIO()
    call_command("lot_signatures_verify", stdout=out)
    assert "3 lot signatures valid" in out.getvalue()
    # Once the card has expired, its signatures still prove what it signed then.
    later = clock.now() + dt.timedelta(days=5 * 365)
    assert bernard.certificate.not_valid_after_utc < later
    monkeypatch.setattr(clock, "now", lambda: later)
    out = StringIO()
    call_command("lot_signatures_verify", stdout=out)
    assert "3 lot signatures valid" in out.getvalue()

    # A registered digest, a recorded signer and the stored bytes altered behind the registry's back.
    altered = lots[0].documents[1].unique_id
    DocumentEntry.objects.filter(unique_id=altered).update(hash_sha256="0" * 64)
    SubmissionSet.objects.filter(unique_id=lots[1].submission_set.unique_id).update(
        signature_signer_fingerprint="f" * 64
    )
    SubmissionSet.objects.filter(unique_id=lots[2].submission_set.unique_id).update(signature_sha256="e" * 64)
    err = StringIO()
    with pytest.raises(CommandError, match="3 of 3 lot signatures INVALID"):
        call_command("lot_signatures_verify", stdout=StringIO(), stderr=err)
    report = err.getvalue()
    assert f"document {altered} no longer matches the signed digest" in report
    assert f"lot {lots[1].submission_set.unique_id}" in report
    assert "another certificate than the one recorded" in report
    assert f"lot {lots[2].submission_set.unique_id}" in report
    assert "stored signature unreadable" in report
    assert lots[0].documents[0].unique_id not in report


def test_the_dev_kit_signs_lots_without_django(xds_kit, tmp_path):
    """Vendors use `opendmp_client` in their own software: it must import and sign a lot with no
    Django settings, and the registry accepts that lot."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    card = xds_kit.card(xds_kit.personas.dr_bernard)
    (tmp_path / "key.pem").write_bytes(card.key_pem)
    (tmp_path / "cert.pem").write_bytes(card.certificate_pem)
    (tmp_path / "lot.json").write_text(_lot(xds_kit).model_dump_json())
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cryptography import x509\n"
        "from cryptography.hazmat.primitives.serialization import load_pem_private_key\n"
        "from dmp.documents.metadata import SubmissionInput\n"
        "from dmp.ihe.xds import dsg\n"
        "import opendmp_client.xds\n"
        "here = Path(sys.argv[1])\n"
        "lot = dsg.signed_submission(\n"
        "    SubmissionInput.model_validate_json((here / 'lot.json').read_text()),\n"
        "    key=load_pem_private_key((here / 'key.pem').read_bytes(), None),\n"
        "    certificate=x509.load_pem_x509_certificate((here / 'cert.pem').read_bytes()),\n"
        ")\n"
        "(here / 'signed.json').write_text(lot.model_dump_json())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    root = Path(__file__).resolve().parents[4]
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    signed = SubmissionInput.model_validate_json((tmp_path / "signed.json").read_text())
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    assert bernard.provide_and_register(signed, sign_lot=False).ok


def test_a_lot_signed_at_a_time_its_certificate_was_not_valid_is_refused(xds_kit):
    """The signing time is kept as proof and checked again later at that time: a lot claiming to
    be signed before its certificate existed was accepted, then reported broken by the check."""
    from signxml import methods
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.util import xades_tag
    from signxml.xades.xades import XAdESDataObjectFormat, XAdESSigner

    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    backdated = bernard.certificate.not_valid_before_utc - dt.timedelta(days=30)

    class BackdatedSigner(XAdESSigner):
        def add_signing_time(self, signed_signature_properties, sig_root, signing_settings):
            when = etree.SubElement(
                signed_signature_properties, xades_tag("SigningTime"), nsmap=self.namespaces
            )
            when.text = backdated.isoformat(timespec="seconds")

    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    signer = BackdatedSigner(
        method=methods.enveloping,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        data_object_format=XAdESDataObjectFormat(Description="Manifeste", MimeType=dsg.MIME_TYPE),
    )
    documents = tuple(d for d in lot.documents if not dsg.is_signature(d))
    content = etree.tostring(
        signer.sign(dsg.manifest(documents), key=bernard.key, cert=[bernard.certificate])
    )
    _refused(bernard, _with_signature(lot, content), "XDSRegistryError", "outside its validity")
