"""The lean VIHF signature check agrees with signxml on everything it does not hand back to it."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

from dmp.common.xml import parse_xml
from dmp.identity.pki import create_test_pki
from dmp.ihe.xds import vihf
from dmp.ihe.xds.enveloped import DS, SIGNXML_REFUSALS, SignatureMismatch, verified_assertion
from opendmp_client.vihf import SAML, VihfClaims, build_assertion, sign_assertion

CLAIMS = VihfClaims(
    subject_id="810001234567",
    subject_name="Dr Test",
    profession="10",
    specialty="SM26",
    structure_id="10B0123456",
    patient_ins="123456789012345^^^&1.2.250.1.213.1.4.8&ISO^NH",
    lps_id="1.2.250.1.999.9.9",
    lps_name="Test LPS",
    lps_version="1",
    homologation="OPENDMP-TEST",
)


@pytest.fixture(scope="module")
def card():
    pki = create_test_pki()
    _, sign = pki.cps_card(national_id=CLAIMS.subject_id, display_name=CLAIMS.subject_name)
    return sign


def received(card, **build) -> etree._Element:
    """A signed VIHF as the server gets it: serialised, inside a WS-Security header."""
    assertion = sign_assertion(
        build_assertion(CLAIMS, certificate=card.certificate, **build),
        key=card.key,
        certificate=card.certificate,
    )
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    security = etree.Element(f"{{{wsse}}}Security", nsmap={"wsse": wsse})
    security.append(assertion)
    return parse_xml(etree.tostring(security))[0]


def by_signxml(assertion: etree._Element, card) -> bytes | None:
    try:
        result = XMLVerifier().verify(
            assertion, x509_cert=card.certificate, id_attribute="ID", expect_references=1
        )
    except SIGNXML_REFUSALS:  # what the VIHF's signxml path refuses
        return None
    assert not isinstance(result, list)
    assert result.signed_xml is not None
    return etree.tostring(result.signed_xml, method="c14n", exclusive=True)


def by_lean_path(assertion: etree._Element, card) -> bytes | str | None:
    try:
        signed = verified_assertion(assertion, card.certificate)
    except SignatureMismatch:
        return None
    if signed is None:
        return "not the profile"
    return etree.tostring(signed, method="c14n", exclusive=True)


def ds(element: etree._Element, path: str) -> etree._Element:
    found = element.find("/".join(f"{{{DS}}}{step}" for step in path.split("/")))
    assert found is not None, path
    return found


def name_id(element: etree._Element) -> etree._Element:
    found = element.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    assert found is not None
    return found


def set_text(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(assertion: etree._Element) -> None:
        ds(assertion, path).text = text

    return change


def other_digest(assertion: etree._Element) -> None:
    ds(assertion, "Signature/SignedInfo/Reference/DigestValue").text = base64.b64encode(
        hashlib.sha256(b"something else").digest()
    ).decode()


def flip_a_bit(element: etree._Element) -> None:
    """One bit of a base64 value changed (a signature value that no longer verifies)."""
    raw = bytearray(base64.b64decode(element.text or ""))
    raw[10] ^= 1
    element.text = base64.b64encode(bytes(raw)).decode()


def flipped_signature(assertion: etree._Element) -> None:
    flip_a_bit(ds(assertion, "Signature/SignatureValue"))


def wrapped_signature_value(assertion: etree._Element) -> None:
    element = ds(assertion, "Signature/SignatureValue")
    text = "".join((element.text or "").split())
    element.text = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))


def other_subject(assertion: etree._Element) -> None:
    name_id(assertion).text = "810009999999"


def comment_in_subject(assertion: etree._Element) -> None:
    # The classic SAML trick: a comment splits the text a naive reader takes (before it) from
    # what the signature covers (c14n drops comments). What comes back must be the whole id.
    element = name_id(assertion)
    text = element.text or ""
    element.text = text[:5]
    element.append(etree.Comment("x"))
    element[-1].tail = text[5:]


def later_instant(assertion: etree._Element) -> None:
    assertion.set("IssueInstant", "2099-01-01T00:00:00Z")


def reference_elsewhere(assertion: etree._Element) -> None:
    ds(assertion, "Signature/SignedInfo/Reference").set("URI", "#another")


def extra_transform(assertion: etree._Element) -> None:
    transforms = ds(assertion, "Signature/SignedInfo/Reference/Transforms")
    etree.SubElement(
        transforms, f"{{{DS}}}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
    )


def key_value_beside_certificate(assertion: etree._Element) -> None:
    key_info = ds(assertion, "Signature/KeyInfo")
    key_info.insert(0, etree.Element(f"{{{DS}}}KeyValue"))


def text_after_signed_info(assertion: etree._Element) -> None:
    # Unsigned (inside the signature), but the schema signxml checks gives Signature elements only.
    ds(assertion, "Signature/SignedInfo").tail = "x"


def empty_id_on_signature_value(assertion: etree._Element) -> None:
    # Unsigned, but the schema signxml checks refuses "" as an xs:ID.
    ds(assertion, "Signature/SignatureValue").set("Id", "")


def malformed_base64(assertion: etree._Element) -> None:
    element = ds(assertion, "Signature/SignatureValue")
    element.text = "*" + (element.text or "")


def unchanged(assertion: etree._Element) -> None:
    return None


MUTATIONS = [
    unchanged,
    wrapped_signature_value,
    comment_in_subject,
    other_subject,
    later_instant,
    other_digest,
    flipped_signature,
    set_text("Signature/SignedInfo/Reference/DigestValue", ""),
    reference_elsewhere,
    extra_transform,
    key_value_beside_certificate,
    malformed_base64,
    text_after_signed_info,
    empty_id_on_signature_value,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda mutate: getattr(mutate, "__name__", "set_text"))
def test_the_lean_path_answers_as_signxml_or_hands_over(card, mutate):
    assertion = received(card)
    mutate(assertion)
    lean = by_lean_path(copy.deepcopy(assertion), card)
    reference = by_signxml(copy.deepcopy(assertion), card)
    if lean == "not the profile":
        assert mutate in {
            reference_elsewhere,
            extra_transform,
            key_value_beside_certificate,
            malformed_base64,
            text_after_signed_info,
            empty_id_on_signature_value,
        }
        return
    assert lean == reference
    if mutate in {unchanged, wrapped_signature_value, comment_in_subject}:
        assert lean is not None
        assert name_id(parse_xml(lean)).text == CLAIMS.subject_id
    else:
        assert lean is None


def test_another_form_of_xml_dsig_is_left_to_signxml(card):
    # Inclusive c14n: valid XML-DSig, not the VIHF profile; the caller's signxml path accepts it.
    assertion = build_assertion(CLAIMS, certificate=card.certificate)
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
    )
    signed = signer.sign(
        assertion,
        key=card.key,
        cert=[card.certificate],
        reference_uri="#" + assertion.get("ID", ""),
        id_attribute="ID",
    )
    signed = parse_xml(etree.tostring(signed))
    assert verified_assertion(signed, card.certificate) is None
    assert by_signxml(signed, card) is not None


def test_a_certificate_other_than_the_signers_does_not_verify(card):
    pki = create_test_pki()
    _, stranger = pki.cps_card(national_id="810007777777", display_name="Dr Stranger")
    with pytest.raises(SignatureMismatch):
        verified_assertion(received(card), stranger.certificate)


def test_namespaces_declared_by_an_ancestor_verify_as_with_signxml(card):
    """A SOAP stack may hoist the assertion's namespace declarations to the envelope: the copy
    the digest is computed on brings them along (exclusive c14n writes those it uses)."""
    text = etree.tostring(received(card)).decode()
    declarations = dict(re.findall(r' xmlns:([A-Za-z0-9]+)="([^"]*)"', text))
    for prefix, uri in declarations.items():
        text = text.replace(f' xmlns:{prefix}="{uri}"', "")
    assert declarations
    assert "xmlns" not in text  # every declaration now comes from the envelope
    hoisted = parse_xml(
        (
            "<Envelope "
            + " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in declarations.items())
            + f">{text}</Envelope>"
        ).encode()
    )[0]
    lean = by_lean_path(hoisted, card)
    assert isinstance(lean, bytes)
    assert lean == by_signxml(hoisted, card)
    # A digest over the hoisted copy without its inherited declarations would not verify.
    assert b"xmlns:saml" in lean


_ALGORITHMS = [
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2000/09/xmldsig#base64",
    "http://www.w3.org/TR/1999/REC-xpath-19991116",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
]
_EMPTY_MODULUS = "<ds:KeyValue><ds:RSAKeyValue><ds:Modulus/><ds:Exponent/></ds:RSAKeyValue></ds:KeyValue>"
_FRAGMENTS = [
    _EMPTY_MODULUS,
    "<ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{v}</ds:Modulus></ds:RSAKeyValue></ds:KeyValue>",
    "<ds:Transforms><ds:Transform Algorithm='{a}'>{v}</ds:Transform></ds:Transforms>",
    "<ds:Transform Algorithm='{a}'/>",
    "<ds:X509Data><ds:X509Certificate>{v}</ds:X509Certificate></ds:X509Data>",
    "<ds:Reference URI='#{v}'><ds:DigestMethod Algorithm='{a}'/><ds:DigestValue/></ds:Reference>",
    "<ds:HMACOutputLength>{v}</ds:HMACOutputLength>",
    "<ds:Object Id='{v}'>{v}</ds:Object>",
]
_VALUES = st.sampled_from(["", "AQAB", "x", "AAAA", "-1"])
_SIGNATURE_EDITS = st.one_of(
    st.tuples(
        st.just("attribute"),
        st.sampled_from(["Id", "ID", "URI", "Algorithm", "Type"]),
        st.sampled_from(["", "#x", "x", *_ALGORITHMS]),
    ),
    st.tuples(
        st.sampled_from(["KeyInfo", "SignedInfo", "SignedInfo/Reference", "SignedInfo/Reference/Transforms"]),
        st.builds(
            lambda fragment, value, algorithm: fragment.format(v=value, a=algorithm),
            st.sampled_from(_FRAGMENTS),
            _VALUES,
            st.sampled_from(_ALGORITHMS),
        ),
        st.just(""),
    ),
    st.tuples(st.sampled_from(["text", "tail"]), st.just(""), _VALUES),
    st.tuples(st.just("remove"), st.just(""), st.just("")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(edits=[(1, ("KeyInfo", _EMPTY_MODULUS, ""))])
@given(edits=st.lists(st.tuples(st.integers(min_value=1, max_value=10_000), _SIGNATURE_EDITS), max_size=3))
def test_any_edit_of_the_signature_is_verified_or_refused(card, edits):
    """Edits of the elements and attributes signxml reads (key values, transforms, algorithms):
    whichever path verifies the VIHF, the answer is the signed assertion or `VihfRejected` (a SOAP
    fault), never another exception: an empty RSA Modulus made signxml raise a TypeError, which
    was a server error. Whenever the lean path answers, signxml answers the same (it found an
    empty Id, and text where the schema allows elements only, accepted by the lean path)."""
    assertion = received(card)
    signature = ds(assertion, "Signature")
    for position, (kind, name, value) in edits:
        elements = list(signature.iter(etree.Element))[1:]  # the signature itself stays
        target = elements[position % len(elements)] if elements else signature
        if kind == "attribute":
            target.set(name, value)
        elif kind == "text":
            target.text = value
        elif kind == "tail":
            target.tail = value
        elif kind == "remove":
            parent = target.getparent()
            if parent is not None:
                parent.remove(target)
        else:  # a fragment inserted where signxml reads, if that element is still there
            found = signature.find("/".join(f"{{{DS}}}{step}" for step in kind.split("/")))
            if found is not None:
                found.insert(0, parse_xml(f'<x xmlns:ds="{DS}">{name}</x>'.encode())[0])
    assertion = parse_xml(etree.tostring(assertion))
    lean = by_lean_path(copy.deepcopy(assertion), card)
    if lean != "not the profile":
        assert lean == by_signxml(copy.deepcopy(assertion), card)
    try:
        signed = vihf._signed_assertion(assertion, card.certificate)
    except vihf.VihfRejected:
        return
    assert signed is not None
    assert name_id(signed).text == CLAIMS.subject_id
