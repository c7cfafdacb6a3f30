"""The lean lot-signature check agrees with signxml on everything it does not hand back to it."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.exceptions import InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from dmp.common.xml import parse_xml
from dmp.documents.builders import AuthorInfo, DocumentDraft, document_input
from dmp.documents.metadata import DocumentInput
from dmp.identity.ins import parse_hl7_ins
from dmp.identity.pki import create_test_pki
from dmp.ihe.xds import dsg, lots
from dmp.ihe.xds.enveloped import SIGNXML_REFUSALS
from dmp.ihe.xds.tests.test_enveloped import flip_a_bit
from dmp.ihe.xds.xades import XADES, SignatureMismatch, verified_lot_signature

DS = dsg.DS
NOT_THE_FORM = "not the form"


def _document(n: int) -> DocumentInput:
    """Document `n` of a lot, built as the dev kit builds any (its content is all a lot signs)."""
    return document_input(
        DocumentDraft(
            content=f"<ClinicalDocument>{n}</ClinicalDocument>".encode(), unique_id=f"1.2.250.1.999.1.{n}"
        ),
        ins=parse_hl7_ins("285033523810113^^^&1.2.250.1.213.1.4.10&ISO^NH"),
        author=AuthorInfo(person_id="810001234567", family_name="Test", given_name="Dr"),
        symbolic_id=f"Document{n:02d}",
    )


@pytest.fixture(scope="module")
def card():
    _, sign = create_test_pki().cps_card(national_id="810001234567", display_name="Dr Test")
    return sign


@pytest.fixture(scope="module")
def signed_lot(card) -> bytes:
    """A lot of two documents, signed as the dev kit signs every lot."""
    return dsg.sign_lot((_document(1), _document(2)), key=card.key, certificate=card.certificate)


def by_signxml(signature: etree._Element, certificate: x509.Certificate) -> list[bytes] | None:
    try:
        results = XAdESVerifier().verify(
            signature,
            x509_cert=certificate,
            expect_config=XAdESSignatureConfiguration(verification_time=certificate.not_valid_before_utc),
        )
    except SIGNXML_REFUSALS:
        return None
    return [etree.tostring(result.signed_xml) for result in results if result.signed_xml is not None]


def by_lean_path(signature: etree._Element, certificate: x509.Certificate) -> list[bytes] | str | None:
    try:
        signed = verified_lot_signature(signature, certificate)
    except SignatureMismatch:
        return None
    if signed is None:
        return NOT_THE_FORM
    return [etree.tostring(element) for element in signed]


def _find(signature: etree._Element, path: str) -> etree._Element:
    found = signature.find(path, namespaces={"ds": DS, "xades": XADES})
    assert found is not None, path
    return found


def _other_digest(path: str) -> Callable[[etree._Element], None]:
    def change(signature: etree._Element) -> None:
        _find(signature, path).text = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    change.__name__ = f"other_digest_in_{path.rsplit('/', 2)[-2].split(':')[-1]}"
    return change


def resign(signature: etree._Element, key: rsa.RSAPrivateKey) -> None:
    """Digests and signature value computed again, as a signer would after the edit: what is
    then refused is refused for what the edit says, not for a broken digest."""
    by_id = {element.get("Id"): element for element in signature.iter() if element.get("Id")}
    signed_info = _find(signature, "ds:SignedInfo")
    for reference in signed_info.findall(f"{{{DS}}}Reference"):
        target = parse_xml(etree.tostring(by_id[reference.get("URI", "")[1:]]))
        canonical = etree.tostring(target, method="c14n")
        _find(reference, "ds:DigestValue").text = base64.b64encode(
            hashlib.sha256(canonical).digest()
        ).decode()
    value = key.sign(etree.tostring(signed_info, method="c14n"), padding.PKCS1v15(), hashes.SHA256())
    _find(signature, "ds:SignatureValue").text = base64.b64encode(value).decode()


def unchanged(signature: etree._Element) -> None:
    return None


def flipped_signature(signature: etree._Element) -> None:
    flip_a_bit(_find(signature, "ds:SignatureValue"))


def edited_manifest(signature: etree._Element) -> None:
    _find(signature, ".//ds:Manifest/ds:Reference").set("URI", "urn:oid:1.2.250.1.999.1.9")


def other_signing_time(signature: etree._Element) -> None:
    _find(signature, ".//xades:SigningTime").text = "2020-01-01T00:00:00+00:00"


def comment_in_a_manifest_digest(signature: etree._Element) -> None:
    # c14n drops the comment, so the signed text is whole: left to signxml, which reads that.
    value = _find(signature, ".//ds:Manifest/ds:Reference/ds:DigestValue")
    text = value.text or ""
    value.text = text[:10]
    value.append(etree.Comment("x"))
    value[-1].tail = text[10:]


def whitespace_between_signature_parts(signature: etree._Element) -> None:
    # Not covered by any reference (the Signature element itself is not signed).
    for part in signature:
        part.tail = "\n  "


def unsigned_attribute_on_the_root(signature: etree._Element) -> None:
    signature.set("Foo", "bar")


def another_key_value(signature: etree._Element) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    modulus = _find(signature, "ds:KeyInfo/ds:KeyValue/ds:RSAKeyValue/ds:Modulus")
    modulus.text = base64.b64encode(other.n.to_bytes(256, "big")).decode()


def another_certificate_digest(signature: etree._Element) -> None:
    _find(signature, ".//xades:CertDigest/ds:DigestValue").text = base64.b64encode(
        hashlib.sha256(b"another certificate").digest()
    ).decode()


def text_after_signed_info(signature: etree._Element) -> None:
    _find(signature, "ds:SignedInfo").tail = "x"  # the Signature's content is elements only


def text_inside_a_reference(signature: etree._Element) -> None:
    _find(signature, "ds:SignedInfo/ds:Reference/ds:DigestMethod").tail = "x"


def unsigned_properties_added(signature: etree._Element) -> None:
    etree.SubElement(_find(signature, ".//xades:QualifyingProperties"), f"{{{XADES}}}UnsignedProperties")


def id_used_twice(signature: etree._Element) -> None:
    _find(signature, ".//xades:QualifyingProperties").getparent().set("Id", "object")  # type: ignore[union-attr]


def text_in_the_qualifying_properties(signature: etree._Element) -> None:
    # Unsigned, but the schema signxml checks gives QualifyingProperties elements only.
    _find(signature, ".//xades:QualifyingProperties").text = "x"


def text_after_the_signed_properties(signature: etree._Element) -> None:
    _find(signature, ".//xades:SignedProperties").tail = "x"


def references_swapped(signature: etree._Element) -> None:
    signed_info = _find(signature, "ds:SignedInfo")
    signed_info.insert(2, signed_info[3])


def comment_in_signed_info(signature: etree._Element) -> None:
    _find(signature, "ds:SignedInfo").insert(0, etree.Comment("x"))


def exclusive_c14n(signature: etree._Element) -> None:
    _find(signature, "ds:SignedInfo/ds:CanonicalizationMethod").set(
        "Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#"
    )


def no_key_value(signature: etree._Element) -> None:
    key_info = _find(signature, "ds:KeyInfo")
    key_info.remove(key_info[0])


ACCEPTED = {unchanged, whitespace_between_signature_parts}
# Edited, then signed again (`resign`): refused by what the edit changes, or handed over.
RESIGNED = {another_key_value, another_certificate_digest, text_inside_a_reference}
LEFT_TO_SIGNXML = {
    comment_in_a_manifest_digest,
    text_after_signed_info,
    text_inside_a_reference,
    unsigned_attribute_on_the_root,
    unsigned_properties_added,
    id_used_twice,
    text_after_the_signed_properties,
    text_in_the_qualifying_properties,
    references_swapped,
    comment_in_signed_info,
    exclusive_c14n,
}
MUTATIONS = [
    *ACCEPTED,
    flipped_signature,
    edited_manifest,
    other_signing_time,
    another_key_value,
    another_certificate_digest,
    no_key_value,
    _other_digest("ds:SignedInfo/ds:Reference/ds:DigestValue"),
    _other_digest(".//xades:CertDigest/ds:DigestValue"),
    *LEFT_TO_SIGNXML,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda mutate: mutate.__name__)
def test_the_lean_path_answers_as_signxml_or_hands_over(card, signed_lot, mutate):
    signature = parse_xml(signed_lot)
    mutate(signature)
    if mutate in RESIGNED:
        resign(signature, card.key)
    signature = parse_xml(etree.tostring(signature))
    lean = by_lean_path(copy.deepcopy(signature), card.certificate)
    reference = by_signxml(copy.deepcopy(signature), card.certificate)
    if mutate in LEFT_TO_SIGNXML:
        assert lean == NOT_THE_FORM
        return
    assert lean == reference
    assert (lean is not None) == (mutate in ACCEPTED)


def test_what_the_dev_kit_signs_takes_the_lean_path(card, signed_lot):
    """Should signxml's signer change its output, this fails rather than every lot quietly
    going back to the slow path."""
    signed = verified_lot_signature(parse_xml(signed_lot), card.certificate)
    assert signed is not None
    manifest = signed[0].find(f"{{{DS}}}Manifest")
    assert manifest is not None
    assert [reference.get("URI") for reference in manifest] == [
        "urn:oid:1.2.250.1.999.1.1",
        "urn:oid:1.2.250.1.999.1.2",
    ]
    assert signed[1].tag == f"{{{XADES}}}SignedProperties"


def test_a_certificate_other_than_the_signers_does_not_verify(signed_lot):
    _, stranger = create_test_pki().cps_card(national_id="810007777777", display_name="Dr Stranger")
    with pytest.raises(SignatureMismatch):
        verified_lot_signature(parse_xml(signed_lot), stranger.certificate)


_NAMES = st.sampled_from(
    [
        "Id",
        "ID",
        "id",
        "Target",
        "URI",
        "Foo",
        "Algorithm",
        "Type",
        "{http://www.w3.org/XML/1998/namespace}lang",
    ]
)
_VALUES = st.sampled_from(["object", "x", "a b", "#object", "", DS, "1bad"])
_EDITS = st.one_of(
    st.tuples(st.just("attribute"), _NAMES, _VALUES),
    st.tuples(st.just("comment"), st.just(""), st.just("")),
    st.tuples(st.just("tail"), st.just(""), st.sampled_from([" ", "\n", "x"])),
    st.tuples(st.just("text"), st.just(""), st.sampled_from([" ", "x", ""])),
    st.tuples(st.just("remove"), st.just(""), st.just("")),
    st.tuples(st.just("duplicate"), st.just(""), st.just("")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), _EDITS), min_size=1, max_size=3))
def test_any_edit_gets_signxmls_answer_or_goes_to_it(card, signed_lot, edits):
    """Edits anywhere (most break a digest, some touch only unsigned parts): whenever the lean
    path answers, signxml answers the same, down to the bytes the caller reads."""
    signature = parse_xml(signed_lot)
    for position, (kind, name, value) in edits:
        elements = list(signature.iter(etree.Element))
        target = elements[position % len(elements)]
        parent = target.getparent()
        if kind == "attribute":
            target.set(name, value)
        elif kind == "comment":
            target.insert(0, etree.Comment("c"))
        elif kind == "tail" and parent is not None:
            target.tail = value
        elif kind == "text":
            target.text = value
        elif kind == "remove" and parent is not None:
            parent.remove(target)
        elif kind == "duplicate" and parent is not None:
            parent.insert(parent.index(target), copy.deepcopy(target))
    signature = parse_xml(etree.tostring(signature))
    lean = by_lean_path(copy.deepcopy(signature), card.certificate)
    if lean != NOT_THE_FORM:
        assert lean == by_signxml(copy.deepcopy(signature), card.certificate)


def test_signxml_checks_a_kept_signature_whatever_the_wall_clock(signed_lot):
    """Another form of signature goes to signxml, which judged the certificate's validity by the
    wall clock: a card that expired since refused its own kept signatures. The registry checks
    the certificate itself, at the signing time (`lots._check_chain`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expired card")])
    expired = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    signature = parse_xml(dsg.sign_lot((_document(1),), key=key, certificate=expired))
    unsigned_properties_added(signature)  # out of the lean form
    signature = parse_xml(etree.tostring(signature))
    assert verified_lot_signature(copy.deepcopy(signature), expired) is None
    with pytest.raises(InvalidSignature, match="expired"):
        XAdESVerifier().verify(copy.deepcopy(signature), x509_cert=expired, expect_references=3)
    signed = lots._verified_by_signxml(signature, expired)
    assert [element.tag for element in signed][:2] == [f"{{{DS}}}Object", f"{{{XADES}}}SignedProperties"]
