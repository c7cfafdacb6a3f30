"""Verifying the one enveloped XML-DSig profile VIHF assertions use, without signxml's generality.

Every web-service call carries a VIHF; signxml verified its signature in 0.5–0.9 ms, most of it
serialising and re-parsing the message and handling forms of XML-DSig a VIHF does not use. This
module verifies exactly one form, the one the DMP's VIHF specification and our dev kit produce:

    SignedInfo: exclusive c14n, RSA-SHA256, one Reference to "#<the assertion's ID>"
    Reference:  transforms enveloped-signature then exclusive c14n (no prefix list), SHA-256
    KeyInfo:    one X509Data holding one X509Certificate, nothing else

and answers None for anything else, which the caller then verifies with signxml: this is a
shortcut for the common case, never a second opinion. In that form it does what signxml does
(signature element removed keeping its tail, exclusive c14n of the assertion without comments,
digest compared in constant time, SignedInfo canonicalised and its signature checked with the
certificate's key), and returns the assertion parsed again from the canonical bytes it digested:
what the caller reads is exactly what was signed (no comment or whitespace tricks in NameID).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from copy import deepcopy
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml.exceptions import SignXMLException

from dmp.common.xml import parse_xml

DS: Final = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"


# What signxml raises on a signature it refuses, for the paths that hand it one: its own errors,
# the schema's (DocumentInvalid), and the TypeError or ValueError of its base64 decoding of an
# empty or malformed value (an empty RSA Modulus), which would otherwise be a server error.
SIGNXML_REFUSALS: Final = (SignXMLException, etree.LxmlError, ValueError, TypeError)


class SignatureMismatch(Exception):
    """The signature is of the profile, and does not verify."""


def _children(element: etree._Element) -> list[etree._Element]:
    """Element children; a comment or processing instruction among them leaves the profile."""
    return list(element)


def _tags(elements: list[etree._Element], *names: str) -> bool:
    return [element.tag for element in elements] == [f"{{{DS}}}{name}" for name in names]


# The VIHF signature's elements that hold a value as text.
TEXT_LEAVES: Final = frozenset(
    f"{{{DS}}}{name}" for name in ("DigestValue", "SignatureValue", "X509Certificate")
)


def has_stray_text(signature: etree._Element, leaves: frozenset[str]) -> bool:
    """Text inside `signature` outside the elements that hold a value (`leaves`): between its
    elements, or in one whose content is elements only. signxml's schema check refuses such a
    signature, signed or not, so a lean path hands it over."""
    for element in signature.iter(etree.Element):
        text, tail = element.text, element.tail
        if text and text.strip() and element.tag not in leaves:
            return True
        if tail and tail.strip() and element is not signature:
            return True
    return False


# The attributes the VIHF signature's elements carry; any other (an Id, even an empty one, which
# the schema refuses as an xs:ID) leaves the profile.
_ATTRIBUTES: Final = {
    f"{{{DS}}}Reference": frozenset({"URI"}),
    **{
        f"{{{DS}}}{name}": frozenset({"Algorithm"})
        for name in ("CanonicalizationMethod", "SignatureMethod", "Transform", "DigestMethod")
    },
}
_NONE: Final = frozenset[str]()


def _only_profile_attributes(signature: etree._Element) -> bool:
    for element in signature.iter(etree.Element):
        names = element.keys()
        if names and not _ATTRIBUTES.get(element.tag, _NONE).issuperset(names):
            return False
    return True


def algorithm_only(element: etree._Element, algorithm: str) -> bool:
    return element.get("Algorithm") == algorithm and len(element) == 0 and not (element.text or "").strip()


def strict_base64(element: etree._Element) -> bytes | None:
    """Strict base64 (whitespace aside); None for anything signxml's lenient decoding may read,
    or text split by a comment (signxml reads it whole, from the canonical form)."""
    if len(element):
        return None
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def verified_assertion(assertion: etree._Element, certificate: x509.Certificate) -> etree._Element | None:
    """The assertion as signed, if its enveloped signature is of the profile above and verifies
    with `certificate`; None if it is not of the profile; SignatureMismatch if it does not verify.

    `assertion` must hold exactly one ds:Signature child (the caller checks it), whose KeyInfo
    certificate is `certificate` (the caller read it from there and checked its chain)."""
    identifier = assertion.get("ID")
    signatures = assertion.findall(f"{{{DS}}}Signature")
    if not identifier or len(signatures) != 1 or not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        return None
    signature = signatures[0]
    parts = _children(signature)
    if not _tags(parts, "SignedInfo", "SignatureValue", "KeyInfo"):
        return None
    signed_info, signature_value, key_info = parts
    info = _children(signed_info)
    if not _tags(info, "CanonicalizationMethod", "SignatureMethod", "Reference"):
        return None
    if not (algorithm_only(info[0], EXC_C14N) and algorithm_only(info[1], RSA_SHA256)):
        return None
    reference = info[2]
    if reference.get("URI") != f"#{identifier}":
        return None
    steps = _children(reference)
    if not _tags(steps, "Transforms", "DigestMethod", "DigestValue"):
        return None
    transforms = _children(steps[0])
    if not _tags(transforms, "Transform", "Transform"):
        return None
    if not (algorithm_only(transforms[0], ENVELOPED) and algorithm_only(transforms[1], EXC_C14N)):
        return None
    if not algorithm_only(steps[1], SHA256):
        return None
    key_parts = _children(key_info)
    if not _tags(key_parts, "X509Data") or not _tags(_children(key_parts[0]), "X509Certificate"):
        return None
    if strict_base64(key_parts[0][0]) is None:  # what the caller decoded leniently, as the schema reads it
        return None
    if has_stray_text(signature, TEXT_LEAVES) or not _only_profile_attributes(signature):
        return None
    expected, value = strict_base64(steps[2]), strict_base64(signature_value)
    if expected is None or value is None:
        return None

    # The digest, over a copy without its signature element (the text after that element stays,
    # as the enveloped-signature transform wants). A deep copy is a document of its own that
    # brings the namespaces declared by ancestors along, as serialising and parsing again does
    # (signxml's way), for 0.6 M instructions less: 5 % of an ITI-43.
    copy = deepcopy(assertion)
    enveloped = copy.find(f"{{{DS}}}Signature")
    assert enveloped is not None  # noqa: S101 - the same tree as `assertion`, which has one
    if enveloped.tail:
        previous = enveloped.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + enveloped.tail
        else:
            copy.text = (copy.text or "") + enveloped.tail
    copy.remove(enveloped)
    canonical = etree.tostring(copy, method="c14n", exclusive=True, with_comments=False)
    if not hmac.compare_digest(hashlib.sha256(canonical).digest(), expected):
        raise SignatureMismatch("the digest of the assertion does not match its signature")
    signed_bytes = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)  # noqa: S101 - checked above
    try:
        public_key.verify(value, signed_bytes, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureMismatch("the signature value does not verify") from exc
    return parse_xml(canonical)
