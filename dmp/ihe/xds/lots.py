"""Checking the XAdES signature of an ITI-41 lot (DMP TD2.1/TD2.2) before anything is stored.

- The signature verifies (references, XAdES signed properties and signing-certificate digest:
  `dmp.ihe.xds.xades` for the one form our dev kit writes, signxml with the XML-DSig schema for
  any other) with a certificate that chains to the trust bundle and is
  registered to the authenticated caller: its own card, or its structure's certificate.
- The manifest is read from the node the signature covers, never from the message as received.
- It lists exactly the lot's other documents, each with the SHA-256 of the bytes received.

The signature document is then taken out of the lot and handed to the core, which keeps it as
the submission set's proof (ADR 0009): evidence about the lot, not a clinical document to list,
count or show in the portals. The format itself is `dmp.ihe.xds.dsg`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from django.conf import settings
from lxml import etree
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from dmp.access.actors import Caller
from dmp.common import clock
from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.common.xml import parse_xml
from dmp.documents.metadata import SubmissionInput, SubmissionSignature
from dmp.documents.selectors import KeptSignature
from dmp.identity.models import Certificate
from dmp.identity.pki import CertificateRejected, fingerprint_of, verify_against_bundle
from dmp.identity.selectors import registered_certificate, signs_for_structure, structure_get
from dmp.ihe.xds import dsg, xades
from dmp.ihe.xds.enveloped import SIGNXML_REFUSALS

MAX_BYTES: Final = 1024 * 1024
WHERE: Final = "SubmissionSet signature"


def _refused(message: str, code: ErrorCode = ErrorCode.INVALID) -> ValidationFailed:
    return ValidationFailed([Problem(code, message, WHERE)])


@dataclass(frozen=True)
class _Signed:
    certificate: x509.Certificate
    digests: dict[str, bytes]  # uniqueId -> SHA-256
    signed_at: dt.datetime


def _certificate(signature: etree._Element) -> x509.Certificate:
    try:
        return dsg.key_info_certificate(signature)
    except ValueError as exc:
        raise _refused(f"the signature {exc}") from exc


def _signed_at(signed: list[etree._Element]) -> dt.datetime:
    """The SigningTime of the signed XAdES properties: a plain XML-DSig signature is not enough."""
    properties = [node for node in signed if node.tag == f"{{{dsg.XADES}}}SignedProperties"]
    text = properties[0].findtext(f".//{{{dsg.XADES}}}SigningTime") if len(properties) == 1 else None
    if not text:
        raise _refused("the signature must be XAdES, with signed properties holding its SigningTime")
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise _refused("unreadable XAdES SigningTime") from exc
    if moment.tzinfo is None:
        raise _refused("the XAdES SigningTime must carry its time zone")
    return moment


def _verify(content: bytes, *, at: dt.datetime | None) -> _Signed:
    """The verified facts of a signature; its certificate must chain to the trust bundle at `at`,
    or at the signing time when `at` is None (checking a signature kept for years)."""
    root = parse_xml(content, max_bytes=MAX_BYTES)
    if root.tag != f"{{{dsg.DS}}}Signature":
        raise _refused("the signature document must be a ds:Signature")
    certificate = _certificate(root)
    if at is not None:
        _check_chain(certificate, at)
    try:
        signed = xades.verified_lot_signature(root, certificate)
        if signed is None:
            signed = _verified_by_signxml(root, certificate)
    except (xades.SignatureMismatch, *SIGNXML_REFUSALS) as exc:
        raise _refused("the XAdES signature does not verify", ErrorCode.FORBIDDEN) from exc
    # The manifest is read from the nodes the signature covers (the enveloped ds:Object).
    manifests = [
        found
        for node in signed
        if node.tag == f"{{{dsg.DS}}}Object"
        for found in node.findall(f"{{{dsg.DS}}}Manifest")
    ]
    if len(manifests) != 1:
        raise _refused("the signature must cover exactly one ds:Manifest")
    digests: dict[str, bytes] = {}
    for reference in manifests[0].findall(f"{{{dsg.DS}}}Reference"):
        uri = reference.get("URI", "")
        method = reference.find(f"{{{dsg.DS}}}DigestMethod")
        if not uri.startswith("urn:oid:") or uri[8:] in digests:
            raise _refused(f"manifest reference {uri!r} must name each document once by urn:oid:<uniqueId>")
        if method is None or method.get("Algorithm") != dsg.SHA256:
            raise _refused(f"manifest reference {uri!r} must use SHA-256")
        try:
            digests[uri[8:]] = base64.b64decode(
                reference.findtext(f"{{{dsg.DS}}}DigestValue") or "", validate=True
            )
        except ValueError as exc:
            raise _refused(f"manifest reference {uri!r} has an unreadable digest") from exc
    signed_at = _signed_at(signed)
    if at is None:
        _check_chain(certificate, signed_at)
    return _Signed(certificate=certificate, digests=digests, signed_at=signed_at)


def _verified_by_signxml(root: etree._Element, certificate: x509.Certificate) -> list[etree._Element]:
    """Any other form of XAdES signature, verified by signxml. Its own check of the certificate's
    validity period is pinned to a moment inside it: `_check_chain` checks the certificate at
    the right time (now for a new lot, the signing time for a kept one), where signxml would use
    the wall clock and refuse a kept signature once its card has expired."""
    config = XAdESSignatureConfiguration(
        expect_references=3, verification_time=certificate.not_valid_before_utc
    )
    results = XAdESVerifier().verify(root, x509_cert=certificate, expect_config=config)
    return [result.signed_xml for result in results if result.signed_xml is not None]


def _check_chain(certificate: x509.Certificate, at: dt.datetime) -> None:
    try:
        verify_against_bundle(certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, at=at)
    except CertificateRejected as exc:
        raise _refused(f"signing certificate rejected: {exc.message}", ErrorCode.FORBIDDEN) from exc


def _digest_mismatches(signed: dict[str, bytes], expected: dict[str, bytes]) -> tuple[bool, list[str]]:
    """(whether the manifest lists exactly the expected documents, the uniqueIds it lists with
    another digest)."""
    differing = sorted(uid for uid, digest in expected.items() if uid in signed and signed[uid] != digest)
    return set(signed) == set(expected), differing


def kept_signature_problems(kept: KeptSignature) -> list[str]:
    """What is wrong with a kept lot signature, checked again (`manage.py lot_signatures_verify`):
    the signature and its certificate at the signing time, the signer recorded at registration,
    and the manifest against the SHA-256 registered for each document of the lot."""
    if kept.content is None:
        return [kept.problem]
    try:
        signed = _verify(kept.content, at=None)
    except ValidationFailed as exc:
        return [problem.message for problem in exc.problems]
    problems = []
    if fingerprint_of(signed.certificate) != kept.signer_fingerprint:
        problems.append("signed with another certificate than the one recorded at registration")
    if kept.signed_at is not None and signed.signed_at != kept.signed_at:
        problems.append("signing time differs from the one recorded at registration")
    registered = {unique_id: bytes.fromhex(digest) for unique_id, digest in kept.document_digests.items()}
    same_documents, differing = _digest_mismatches(signed.digests, registered)
    if not same_documents:
        problems.append("the manifest no longer lists exactly the documents of the lot")
    problems.extend(f"document {unique_id} no longer matches the signed digest" for unique_id in differing)
    return problems


def _check_signer(caller: Caller, certificate: x509.Certificate) -> str:
    """The certificate's fingerprint if it is registered as a signature certificate of the caller:
    its own CPS card's (CPS_SIGN), or its structure's or that structure's legal entity's
    (ORG_SIGN, ADR 0011), as for the VIHF."""
    fingerprint = fingerprint_of(certificate)
    registered = registered_certificate(fingerprint)
    actor = caller.actor
    owned = registered is not None and (
        (
            registered.usage == Certificate.Usage.CPS_SIGN
            and registered.professional is not None
            and registered.professional.national_id == actor.person_id
        )
        or (
            registered.usage == Certificate.Usage.ORG_SIGN
            and registered.structure is not None
            and signs_for_structure(registered.structure, structure_get(actor.structure_id))
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
    signatures = [d for d in submission.documents if dsg.is_signature(d)]
    documents = tuple(d for d in submission.documents if not dsg.is_signature(d))
    if not signatures:
        if settings.OPENDMP_XDS_REQUIRE_LOT_SIGNATURE:
            raise _refused("the submission set must carry its XAdES signature (IHE DSG document)")
        return submission, None
    if len(signatures) > 1:
        raise _refused("a submission set carries one signature document")
    signature = signatures[0]
    if signature.mime_type != dsg.MIME_TYPE or signature.format_code.code != dsg.FORMAT_CODE.code:
        raise _refused(
            f"the signature document must be {dsg.MIME_TYPE} with formatCode {dsg.FORMAT_CODE.code}"
        )
    if not documents:
        raise _refused("a signature needs documents to sign")
    at = clock.now()
    signed = _verify(signature.content, at=at)
    fingerprint = _check_signer(caller, signed.certificate)
    expected = {d.unique_id: hashlib.sha256(d.content).digest() for d in documents}
    same_documents, differing = _digest_mismatches(signed.digests, expected)
    if not same_documents:
        raise _refused("the signature's manifest must list exactly the documents of the lot")
    if differing:
        raise _refused(f"document {differing[0]} differs from the one signed", ErrorCode.NON_IDENTICAL_HASH)
    skew = dt.timedelta(seconds=settings.OPENDMP_CLOCK_SKEW_SECONDS)
    if signed.signed_at > at + skew:
        raise _refused("the lot is signed in the future")
    # The signing time is kept as proof and checked again by lot_signatures_verify: it must be
    # one at which the certificate was valid (a backdated lot passed here, then failed there).
    _check_chain(signed.certificate, signed.signed_at)
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
