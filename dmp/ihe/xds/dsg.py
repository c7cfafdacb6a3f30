"""The XAdES signature of a submission set (DMP TD2.1/TD2.2, after IHE DSG): writing and checking.

A DMP-compatible LPS signs every lot it sends: one extra document of the submission set holds an
enveloping XAdES signature over a `ds:Manifest` that lists each document of the lot by
`urn:oid:<uniqueId>` with the SHA-256 of its bytes. The signing certificate is the PS's CPS
(direct mode) or the structure's (indirect mode).

The registry checks, before anything is stored:
- the signature verifies (signxml, XAdES signed properties and signing-certificate digest) with a
  certificate that chains to the trust bundle and is registered to the authenticated caller;
- the manifest is read from the node the signature covers, never from the message as received;
- it lists exactly the other documents of the lot, each with the digest of the bytes received.

The signature document is then taken out of the lot and kept as the submission set's proof
(`SubmissionSet.signature_*`, bytes in the blob store): it is evidence about the lot, not a
clinical document to list, count or show in the portals.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from django.conf import settings
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESDataObjectFormat, XAdESSigner, XAdESVerifier

from dmp.access.actors import Caller
from dmp.common import clock
from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.common.xml import parse_xml
from dmp.documents.metadata import (
    AssociationInput,
    CodedValue,
    DocumentInput,
    SubmissionInput,
    SubmissionSignature,
)
from dmp.identity.pki import CertificateRejected, fingerprint_of, verify_against_bundle
from dmp.identity.selectors import registered_certificate
from dmp.ihe.xds.vihf import key_info_certificate

DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES: Final = "http://uri.etsi.org/01903/v1.3.2#"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

# Metadata of the signature document (IHE DSG, as the DMP uses it).
CLASS_CODE: Final = CodedValue(
    code="urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", scheme="URN", display="Digital Signature"
)
TYPE_CODE: Final = CodedValue(code="E1762", scheme="ASTM", display="Full Document")
FORMAT_CODE: Final = CodedValue(
    code="http://www.w3.org/2000/09/xmldsig#", scheme="URN", display="Default Signature Style"
)
MIME_TYPE: Final = "text/xml"
MAX_BYTES: Final = 1024 * 1024
WHERE: Final = "SubmissionSet signature"


def _refused(message: str, code: ErrorCode = ErrorCode.INVALID) -> ValidationFailed:
    return ValidationFailed([Problem(code, message, WHERE)])


# --- writing (dev kit) ------------------------------------------------------------------------


def manifest(documents: tuple[DocumentInput, ...]) -> etree._Element:
    """`ds:Manifest` listing each document by `urn:oid:<uniqueId>` with the SHA-256 of its bytes."""
    root = etree.Element(f"{{{DS}}}Manifest", nsmap={"ds": DS}, Id="lot-manifest")
    for document in documents:
        reference = etree.SubElement(root, f"{{{DS}}}Reference", URI=f"urn:oid:{document.unique_id}")
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=SHA256)
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(
            hashlib.sha256(document.content).digest()
        ).decode()
    return root


def sign_lot(
    documents: tuple[DocumentInput, ...], *, key: RSAPrivateKey, certificate: x509.Certificate
) -> bytes:
    """The enveloping XAdES signature over the manifest of `documents`."""
    signer = XAdESSigner(
        method=methods.enveloping,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        data_object_format=XAdESDataObjectFormat(
            Description="Manifeste du lot de soumission", MimeType=MIME_TYPE
        ),
    )
    signed = signer.sign(manifest(documents), key=key, cert=[certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def signed_submission(
    submission: SubmissionInput, *, key: RSAPrivateKey, certificate: x509.Certificate
) -> SubmissionInput:
    """`submission` with its signature document added, as a DMP-compatible LPS sends it.

    The signature document takes the patient, authors and care setting of the lot's first
    document, like the documents it signs."""
    if not submission.documents:
        return submission
    first = submission.documents[0]
    entry_uuid = f"{submission.submission_set.entry_uuid}-signature"
    document = DocumentInput(
        entry_uuid=entry_uuid,
        unique_id=f"{submission.submission_set.unique_id}.0",
        mime_type=MIME_TYPE,
        content=sign_lot(submission.documents, key=key, certificate=certificate),
        class_code=CLASS_CODE,
        type_code=TYPE_CODE,
        format_code=FORMAT_CODE,
        healthcare_facility_type_code=first.healthcare_facility_type_code,
        practice_setting_code=first.practice_setting_code,
        confidentiality_codes=(CodedValue(code="N", scheme="2.16.840.1.113883.5.25", display="Normal"),),
        title="Signature du lot de soumission",
        creation_time=clock.now().replace(microsecond=0),
        patient_id=first.patient_id,
        source_patient_id=first.source_patient_id,
        authors=first.authors,
    )
    member = AssociationInput(
        entry_uuid=f"{entry_uuid}-member",
        association_type=HAS_MEMBER,
        source=submission.submission_set.entry_uuid,
        target=entry_uuid,
        submission_set_status="Original",
    )
    return submission.model_copy(
        update={
            "documents": (*submission.documents, document),
            "associations": (*submission.associations, member),
        }
    )


# --- checking (registry) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    certificate: x509.Certificate
    digests: dict[str, bytes]  # uniqueId -> SHA-256
    signed_at: dt.datetime


def is_signature(document: DocumentInput) -> bool:
    return document.class_code.code == CLASS_CODE.code


def _certificate(signature: etree._Element) -> x509.Certificate:
    try:
        return key_info_certificate(signature)
    except ValueError as exc:
        raise _refused(f"the signature {exc}") from exc


def _signed_at(signed: list[etree._Element]) -> dt.datetime:
    """The SigningTime of the signed XAdES properties: a plain XML-DSig signature is not enough."""
    properties = [node for node in signed if node.tag == f"{{{XADES}}}SignedProperties"]
    text = properties[0].findtext(f".//{{{XADES}}}SigningTime") if len(properties) == 1 else None
    if not text:
        raise _refused("the signature must be XAdES, with signed properties holding its SigningTime")
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise _refused("unreadable XAdES SigningTime") from exc
    if moment.tzinfo is None:
        raise _refused("the XAdES SigningTime must carry its time zone")
    return moment


def _verify(content: bytes, *, at: dt.datetime) -> _Signed:
    root = parse_xml(content, max_bytes=MAX_BYTES)
    if root.tag != f"{{{DS}}}Signature":
        raise _refused("the signature document must be a ds:Signature")
    certificate = _certificate(root)
    try:
        verify_against_bundle(certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, at=at)
    except CertificateRejected as exc:
        raise _refused(f"signing certificate rejected: {exc.message}", ErrorCode.FORBIDDEN) from exc
    try:
        results = XAdESVerifier().verify(root, x509_cert=certificate, expect_references=3)
    except (InvalidSignature, InvalidInput, etree.DocumentInvalid) as exc:
        raise _refused("the XAdES signature does not verify", ErrorCode.FORBIDDEN) from exc
    signed = [result.signed_xml for result in results if result.signed_xml is not None]
    # The manifest is read from the nodes the signature covers (the enveloped ds:Object).
    manifests = [
        found
        for node in signed
        if node.tag == f"{{{DS}}}Object"
        for found in node.findall(f"{{{DS}}}Manifest")
    ]
    if len(manifests) != 1:
        raise _refused("the signature must cover exactly one ds:Manifest")
    digests: dict[str, bytes] = {}
    for reference in manifests[0].findall(f"{{{DS}}}Reference"):
        uri = reference.get("URI", "")
        method = reference.find(f"{{{DS}}}DigestMethod")
        if not uri.startswith("urn:oid:") or uri[8:] in digests:
            raise _refused(f"manifest reference {uri!r} must name each document once by urn:oid:<uniqueId>")
        if method is None or method.get("Algorithm") != SHA256:
            raise _refused(f"manifest reference {uri!r} must use SHA-256")
        try:
            digests[uri[8:]] = base64.b64decode(
                reference.findtext(f"{{{DS}}}DigestValue") or "", validate=True
            )
        except ValueError as exc:
            raise _refused(f"manifest reference {uri!r} has an unreadable digest") from exc
    return _Signed(certificate=certificate, digests=digests, signed_at=_signed_at(signed))


def _check_signer(caller: Caller, certificate: x509.Certificate) -> str:
    """The certificate's fingerprint if it is registered to the caller: its own CPS, or its structure's."""
    fingerprint = fingerprint_of(certificate)
    registered = registered_certificate(fingerprint)
    actor = caller.actor
    owned = registered is not None and (
        (registered.professional is not None and registered.professional.national_id == actor.person_id)
        or (
            registered.structure is not None
            and bool(actor.structure_id)
            and registered.structure.id_nat == actor.structure_id
        )
    )
    if not owned:
        raise _refused(
            "the lot is not signed with a certificate of the caller or its structure", ErrorCode.FORBIDDEN
        )
    return fingerprint


def checked_lot(
    caller: Caller, submission: SubmissionInput
) -> tuple[SubmissionInput, SubmissionSignature | None]:
    """The lot without its signature document, and the verified signature to keep with it.

    Raises ValidationFailed when the signature is missing (and required), does not verify, is not
    the caller's, or does not list exactly the lot's documents with the digests of their bytes."""
    signatures = [d for d in submission.documents if is_signature(d)]
    documents = tuple(d for d in submission.documents if not is_signature(d))
    if not signatures:
        if settings.OPENDMP_XDS_REQUIRE_LOT_SIGNATURE:
            raise _refused("the submission set must carry its XAdES signature (IHE DSG document)")
        return submission, None
    if len(signatures) > 1:
        raise _refused("a submission set carries one signature document")
    signature = signatures[0]
    if signature.mime_type != MIME_TYPE or signature.format_code.code != FORMAT_CODE.code:
        raise _refused(f"the signature document must be {MIME_TYPE} with formatCode {FORMAT_CODE.code}")
    if not documents:
        raise _refused("a signature needs documents to sign")
    at = clock.now()
    signed = _verify(signature.content, at=at)
    fingerprint = _check_signer(caller, signed.certificate)
    expected = {d.unique_id: hashlib.sha256(d.content).digest() for d in documents}
    if set(signed.digests) != set(expected):
        raise _refused("the signature's manifest must list exactly the documents of the lot")
    for unique_id, digest in expected.items():
        if signed.digests[unique_id] != digest:
            raise _refused(f"document {unique_id} differs from the one signed", ErrorCode.NON_IDENTICAL_HASH)
    skew = dt.timedelta(seconds=settings.OPENDMP_CLOCK_SKEW_SECONDS)
    if signed.signed_at > at + skew:
        raise _refused("the lot is signed in the future")
    member = signature.entry_uuid
    lot = submission.model_copy(
        update={
            "documents": documents,
            "associations": tuple(
                a for a in submission.associations if a.target != member and a.source != member
            ),
        }
    )
    return lot, SubmissionSignature(
        content=signature.content,
        signer_fingerprint=fingerprint,
        signed_at=signed.signed_at,
        unique_id=signature.unique_id,
    )
