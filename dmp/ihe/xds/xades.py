"""Verifying the one enveloping XAdES form lot signatures take, without signxml's generality.

Every ITI-41 lot carries a XAdES signature (`dmp.ihe.xds.dsg`). signxml verified it in 1.2 to
1.7 ms, a tenth of an ITI-41's time on the server: it serialises and parses the whole signature
again for each of its three references, validates it against the XML-DSig schema, and handles
forms a lot signature never takes. This module verifies exactly the form our dev kit's signer
(signxml's `XAdESSigner`, enveloping) writes:

    Signature   SignedInfo, SignatureValue, KeyInfo, two Objects, nothing else
    SignedInfo  c14n 1.1, RSA-SHA256, three References, each SHA-256:
                "#<Object holding the ds:Manifest>" with one c14n 1.1 transform,
                "#<xades:SignedProperties>" of type SignedProperties, no transform,
                "#<KeyInfo>", no transform
    KeyInfo     an optional RSAKeyValue, then one X509Data holding one X509Certificate
    XAdES       SignedSignatureProperties: SigningTime, SigningCertificateV2 with one Cert
                (its SHA-256 CertDigest); optional SignedDataObjectProperties
    IDs         every Id/ID/id attribute an NCName, all different
    Text        only in the elements that hold a value (digests, certificate, key, signing time)

and answers None for anything else, which the caller then verifies with signxml: a shortcut for
the common case, never a second opinion. In that form it does what signxml does, step by step:
SignedInfo canonicalised and its signature checked with the certificate's key; each referenced
element serialised and parsed again on its own, canonicalised (inclusive c14n, as signxml does
for 1.1 too) and its digest compared in constant time; the key value matched against the
certificate; the first XAdES Cert digest matched against the certificate. It returns what
signxml returns as `signed_xml`: each referenced element parsed again from the canonical bytes
it digested, so what the caller reads is exactly what was signed.

The strict shape stands in for signxml's schema validation: every element of the form is checked
for its children and attributes, so nothing the XML-DSig schema would refuse reaches the crypto.
A comment anywhere in it leaves the form: the text read here is then the text signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from dmp.common.xml import parse_xml
from dmp.ihe.xds import enveloped
from dmp.ihe.xds.dsg import XADES
from dmp.ihe.xds.enveloped import (
    DS,
    RSA_SHA256,
    SHA256,
    SignatureMismatch,
    algorithm_only,
    has_stray_text,
    strict_base64,
)

__all__ = ["XADES", "SignatureMismatch", "verified_lot_signature"]

C14N11: Final = "http://www.w3.org/2006/12/xml-c14n11"
SIGNED_PROPERTIES_TYPE: Final = "http://uri.etsi.org/01903#SignedProperties"
ID_NAMES: Final = frozenset({"Id", "ID", "id"})
# The elements of the form that hold a value as text (`enveloped.has_stray_text`).
TEXT_LEAVES: Final = enveloped.TEXT_LEAVES | {
    *(f"{{{DS}}}{name}" for name in ("Modulus", "Exponent")),
    *(f"{{{XADES}}}{name}" for name in ("SigningTime", "Description", "MimeType", "Encoding")),
}
# xs:ID is an NCName; the ASCII subset is enough for the form (anything else goes to signxml).
NCNAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def _ds(*names: str) -> list[str]:
    return [f"{{{DS}}}{name}" for name in names]


def _xades(*names: str) -> list[str]:
    return [f"{{{XADES}}}{name}" for name in names]


def _shape(element: etree._Element, children: list[str], attributes: set[str] | None = None) -> bool:
    """`element` has exactly these element children, in order (a comment or processing
    instruction among them leaves the form), and only these attributes."""
    return [child.tag for child in element] == children and set(element.attrib) <= (attributes or set())


def _leaf(element: etree._Element) -> bool:
    """A text-only element without attributes: signxml reads its text from the canonical form,
    which drops comments, so one inside would make the text read here differ."""
    return len(element) == 0 and not element.attrib


def _identifiers(signature: etree._Element) -> dict[str, etree._Element] | None:
    """Every Id/ID/id attribute's element (any namespace, as signxml's XPath finds them), or None
    if one is not an NCName or two carry the same value (signxml or the schema would refuse)."""
    found: dict[str, etree._Element] = {}
    for element in signature.iter(etree.Element):
        for name, value in element.attrib.items():
            if str(name).rpartition("}")[2] not in ID_NAMES:
                continue
            if str(value) in found or not NCNAME.match(str(value)):
                return None
            found[str(value)] = element
    return found


def _reference(reference: etree._Element, *, transform: bool, typed: bool) -> tuple[str, bytes] | None:
    """(the referenced Id, the expected digest) of a Reference of the form, else None."""
    steps = ["DigestMethod", "DigestValue"]
    allowed = {"URI", "Id"} if transform else {"URI", "Type"} if typed else {"URI"}
    if not _shape(reference, _ds(*(["Transforms", *steps] if transform else steps)), allowed):
        return None
    if typed and reference.get("Type") != SIGNED_PROPERTIES_TYPE:
        return None
    if transform and not (_shape(reference[0], _ds("Transform")) and algorithm_only(reference[0][0], C14N11)):
        return None
    method, value = reference[-2], reference[-1]
    uri = reference.get("URI", "")
    if not (uri.startswith("#") and algorithm_only(method, SHA256) and _leaf(value)):
        return None
    digest = strict_base64(value)
    return None if digest is None else (uri[1:], digest)


def _key_info_matches(key_info: etree._Element, public_key: rsa.RSAPublicKey) -> bool | None:
    """Whether KeyInfo's optional RSAKeyValue is the certificate's key (None: not the form)."""
    if _shape(key_info, _ds("X509Data"), {"Id"}):
        key_value = None
    elif _shape(key_info, _ds("KeyValue", "X509Data"), {"Id"}):
        key_value = key_info[0]
    else:
        return None
    data = key_info[-1]
    if not (_shape(data, _ds("X509Certificate")) and _leaf(data[0]) and strict_base64(data[0]) is not None):
        return None
    if key_value is None:
        return True
    if not (_shape(key_value, _ds("RSAKeyValue")) and _shape(key_value[0], _ds("Modulus", "Exponent"))):
        return None
    modulus, exponent = (strict_base64(part) if _leaf(part) else None for part in key_value[0])
    if modulus is None or exponent is None:
        return None
    numbers = public_key.public_numbers()
    return (int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")) == (numbers.n, numbers.e)


def _manifest_object(element: etree._Element) -> bool:
    """An Object holding one Manifest whose References name a URI and a SHA-256 digest (the
    schema's shape; what they name is the caller's to check)."""
    if not (
        _shape(element, _ds("Manifest"), {"Id", "MimeType", "Encoding"}) and set(element[0].attrib) <= {"Id"}
    ):
        return False
    for reference in element[0]:
        if not (_shape(reference, _ds("DigestMethod", "DigestValue"), {"URI"}) and "URI" in reference.attrib):
            return False
        if not (algorithm_only(reference[0], SHA256) and _leaf(reference[1])):
            return False
        if strict_base64(reference[1]) is None:
            return False
    return True


def _data_object_properties(element: etree._Element) -> bool:
    """SignedDataObjectProperties as the signer writes them: DataObjectFormats of text leaves."""
    if not _shape(element, _xades(*["DataObjectFormat"] * len(element))):
        return False
    allowed = _xades("Description", "MimeType", "Encoding")
    return all(
        set(found.attrib) <= {"ObjectReference"}
        and all(child.tag in allowed and _leaf(child) for child in found)
        for found in element
    )


def _properties_object(element: etree._Element) -> etree._Element | None:
    """The xades:SignedProperties of an Object of the form, else None."""
    if not (
        _shape(element, _xades("QualifyingProperties"), {"Id"})
        and _shape(element[0], _xades("SignedProperties"), {"Target", "Id"})
    ):
        return None
    properties = element[0][0]
    parts = _xades("SignedSignatureProperties", "SignedDataObjectProperties")
    if not (_shape(properties, parts[:1], {"Id"}) or _shape(properties, parts, {"Id"})):
        return None
    if len(properties) == 2 and not _data_object_properties(properties[1]):
        return None
    signature_properties = properties[0]
    if not _shape(signature_properties, _xades("SigningTime", "SigningCertificateV2")):
        return None
    time, signing_certificate = signature_properties
    if not (_leaf(time) and _shape(signing_certificate, _xades("Cert"))):
        return None
    cert = signing_certificate[0]
    if not (_shape(cert, _xades("CertDigest")) and _shape(cert[0], _ds("DigestMethod", "DigestValue"))):
        return None
    method, value = cert[0]
    if not (algorithm_only(method, SHA256) and _leaf(value) and strict_base64(value) is not None):
        return None
    return properties


def _canonical(element: etree._Element) -> bytes:
    """signxml's way: the element serialised and parsed on its own (bringing the namespaces it
    inherits), then canonicalised (inclusive, without comments)."""
    serialised = etree.tostring(element)
    alone = parse_xml(serialised, max_bytes=len(serialised))
    return etree.tostring(alone, method="c14n", exclusive=False, with_comments=False)


def verified_lot_signature(
    signature: etree._Element, certificate: x509.Certificate
) -> list[etree._Element] | None:
    """What the enveloping XAdES `signature` signs, as signxml's `signed_xml` of each Reference in
    order, if it is of the form above and verifies with `certificate`; None if it is not of the
    form; SignatureMismatch if it does not verify.

    `signature` is the parsed ds:Signature root of the signature document; `certificate` is the
    one its KeyInfo carries (the caller read it from there and checks its chain)."""
    public_key = certificate.public_key()
    if signature.tag != f"{{{DS}}}Signature" or not isinstance(public_key, rsa.RSAPublicKey):
        return None
    if not _shape(signature, _ds("SignedInfo", "SignatureValue", "KeyInfo", "Object", "Object"), {"Id"}):
        return None
    signed_info, signature_value, key_info, *objects = signature
    if not _shape(
        signed_info, _ds("CanonicalizationMethod", "SignatureMethod", "Reference", "Reference", "Reference")
    ) or not (algorithm_only(signed_info[0], C14N11) and algorithm_only(signed_info[1], RSA_SHA256)):
        return None
    references = [
        _reference(signed_info[2], transform=True, typed=False),
        _reference(signed_info[3], transform=False, typed=True),
        _reference(signed_info[4], transform=False, typed=False),
    ]
    identifiers = _identifiers(signature)
    value = strict_base64(signature_value) if _leaf(signature_value) else None
    key_matches = _key_info_matches(key_info, public_key)
    if identifiers is None or value is None or key_matches is None or has_stray_text(signature, TEXT_LEAVES):
        return None
    properties = [found for found in map(_properties_object, objects) if found is not None]
    data = [element for element in objects if _manifest_object(element)]
    if len(properties) != 1 or len(data) != 1:
        return None
    expected_targets = (data[0], properties[0], key_info)
    checked: list[tuple[etree._Element, bytes]] = []
    for reference, target in zip(references, expected_targets, strict=True):
        if reference is None or identifiers.get(reference[0]) is not target:
            return None
        checked.append((target, reference[1]))

    signed_bytes = etree.tostring(signed_info, method="c14n", exclusive=False, with_comments=False)
    try:
        public_key.verify(value, signed_bytes, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureMismatch("the signature value does not verify") from exc
    if not key_matches:
        raise SignatureMismatch("the key value is not the certificate's key")
    signed = []
    for target, digest in checked:
        canonical = _canonical(target)
        if not hmac.compare_digest(hashlib.sha256(canonical).digest(), digest):
            raise SignatureMismatch("the digest of a signed element does not match its reference")
        signed.append(parse_xml(canonical))
    cert_digest = signed[1].find(
        f"{{{XADES}}}SignedSignatureProperties/{{{XADES}}}SigningCertificateV2/{{{XADES}}}Cert"
        f"/{{{XADES}}}CertDigest/{{{DS}}}DigestValue"
    )
    assert cert_digest is not None  # noqa: S101 - the shape checked above, now as signed
    if strict_base64(cert_digest) != certificate.fingerprint(hashes.SHA256()):
        raise SignatureMismatch("the signed properties name another signing certificate")
    return signed
