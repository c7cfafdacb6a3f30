"""The XAdES signature of a submission set (DMP TD2.1/TD2.2, after IHE DSG): its format, and
writing it. Checking it is `dmp.ihe.xds.lots` (the registry); this module stays free of Django so
that the vendor client library can use it.

A DMP-compatible LPS signs every lot it sends: one extra document of the submission set holds an
enveloping XAdES signature over a `ds:Manifest` that lists each document of the lot by
`urn:oid:<uniqueId>` with the SHA-256 of its bytes. The signing certificate is the PS's CPS
(direct mode) or the structure's (indirect mode).

"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESDataObjectFormat, XAdESSigner

from dmp.documents.metadata import (
    AssociationInput,
    CodedValue,
    DocumentInput,
    SubmissionInput,
)

DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES: Final = "http://uri.etsi.org/01903/v1.3.2#"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

# Metadata of the signature document (IHE DSG, as the DMP uses it).
CLASS_CODE: Final = CodedValue(
    code="urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", scheme="URN", display="Digital Signature"
)
TYPE_CODE: Final = CodedValue(code="E1762", scheme="ASTM", display="Full Document")
FORMAT_CODE: Final = CodedValue(code=DS, scheme="URN", display="Default Signature Style")
MIME_TYPE: Final = "text/xml"


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
        creation_time=dt.datetime.now(dt.UTC).replace(microsecond=0),
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


def is_signature(document: DocumentInput) -> bool:
    return document.class_code.code == CLASS_CODE.code


def key_info_certificate(signature: etree._Element) -> x509.Certificate:
    """The one certificate of a `ds:Signature`'s KeyInfo; ValueError says what is wrong."""
    found = signature.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if len(found) != 1:
        raise ValueError("must carry exactly one certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((found[0].text or "").split())))
    except ValueError as exc:
        raise ValueError("carries an unreadable certificate") from exc
