"""The DMP's FHIR API (IHE MHD / PDSm): an access token, and ITI-65 transaction Bundles.

The client assertion (RFC 7523) carries the same facts as a VIHF; pass the returned token to
any FHIR client (the project's tests use fhirpy) as `Authorization: Bearer <token>`.
`bundle_for` writes a submission as the transaction Bundle an ITI-65 POST to `/fhir/` carries.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import Encoding

from dmp.documents.metadata import CodedValue, DocumentInput, SubmissionInput
from dmp.identity.ins import parse_hl7_ins
from dmp.ihe.mhd.contained import people
from opendmp_client.vihf import VihfClaims

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LOINC_OID: Final = "2.16.840.1.113883.6.1"
MHD_EXTENSIONS: Final = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"


def client_assertion(
    claims: VihfClaims,
    *,
    key: RSAPrivateKey,
    certificate: x509.Certificate,
    token_url: str,
    lifetime: int = 300,
) -> str:
    now = int(time.time())
    facts = {
        k: v
        for k, v in asdict(claims).items()
        if k not in {"subject_id", "subject_name", "audience", "vihf_version"}
    }
    payload = {
        "iss": claims.subject_id,
        "sub": claims.subject_id,
        "name": claims.subject_name,
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        **facts,
    }
    header = {"x5c": [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()]}
    return jwt.encode(payload, key, algorithm="RS256", headers=header)


def fetch_token(
    claims: VihfClaims,
    *,
    key: RSAPrivateKey,
    certificate: x509.Certificate,
    token_url: str,
    scope: str = "",
    timeout: float = 30.0,
) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(claims, key=key, certificate=certificate, token_url=token_url),
    }
    if scope:
        form["scope"] = scope
    request = urllib.request.Request(  # noqa: S310 - the URL is configured by the caller
        token_url, data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
        answer = json.loads(reply.read())
    return str(answer["access_token"])


def bundle_for(submission: SubmissionInput, *, replaces: str = "") -> dict[str, Any]:
    """The ITI-65 transaction Bundle of `submission`: a List, then per document a DocumentReference + Binary.

    `submission` is typically built by `dmp.documents.builders.submission_for`. The patient is
    referenced by its INS identifier (taken from the submission set's patientId), codes by
    `urn:oid:` systems (LOINC by its URL), and each DocumentReference points at its Binary by
    a fresh `urn:uuid:` fullUrl. `replaces` is the FHIR id of a DocumentReference every
    document of the submission replaces (RPLC). Send it as JSON, `application/fhir+json`.
    """
    subset = submission.submission_set
    ins = parse_hl7_ins(subset.patient_id)
    subject = {"identifier": {"system": f"urn:oid:{ins.oid}", "value": ins.value}}
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": _fresh_url(),
            "resource": {
                "resourceType": "List",
                "status": "current",
                "mode": "working",
                "identifier": [
                    {"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{subset.unique_id}"}
                ],
                "subject": subject,
                "date": subset.submission_time.isoformat(),
                "extension": [
                    {
                        "url": f"{MHD_EXTENSIONS}ihe-sourceId",
                        "valueIdentifier": {"value": f"urn:oid:{subset.source_id}"},
                    },
                    {
                        "url": f"{MHD_EXTENSIONS}ihe-designationType",
                        "valueCodeableConcept": _concept(subset.content_type_code),
                    },
                ],
            },
            "request": {"method": "POST", "url": "List"},
        }
    ]
    for document in submission.documents:
        entries.extend(_document_entries(document, subject=subject, replaces=replaces))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _document_entries(
    document: DocumentInput, *, subject: dict[str, Any], replaces: str
) -> list[dict[str, Any]]:
    """The DocumentReference of `document` and the Binary holding its bytes."""
    binary_url = _fresh_url()
    context: dict[str, Any] = {}
    period = {
        key: moment.isoformat()
        for key, moment in (("start", document.service_start_time), ("end", document.service_stop_time))
        if moment is not None
    }
    if period:
        context["period"] = period
    context["facilityType"] = _concept(document.healthcare_facility_type_code)
    context["practiceSetting"] = _concept(document.practice_setting_code)
    if document.event_codes:
        context["event"] = [_concept(c) for c in document.event_codes]
    if document.reference_ids:
        context["related"] = [{"identifier": {"value": r}} for r in document.reference_ids]
    shown = people(document.authors, document.legal_authenticator, document.source_patient_info)
    attachment: dict[str, Any] = {
        "contentType": document.mime_type,
        "url": binary_url,
        "title": document.title,
        "creation": document.creation_time.isoformat(),
        "language": document.language_code,
    }
    if document.declared_hash:
        attachment["hash"] = base64.b64encode(bytes.fromhex(document.declared_hash)).decode()
    if document.declared_size is not None:
        attachment["size"] = document.declared_size
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{document.unique_id}"},
        "type": _concept(document.type_code),
        "category": [_concept(document.class_code)],
        "subject": subject,
        "author": shown.authors,
        "securityLabel": [_concept(c) for c in document.confidentiality_codes],
        "content": [
            {
                "attachment": attachment,
                "format": _coding(document.format_code),
            }
        ],
        "context": context,
    }
    if document.comments:
        reference["description"] = document.comments
    if shown.authenticator:
        reference["authenticator"] = shown.authenticator
    if shown.source_patient:
        context["sourcePatientInfo"] = shown.source_patient
    if shown.contained:
        reference["contained"] = shown.contained
    if replaces:
        reference["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}
        ]
    return [
        {
            "fullUrl": _fresh_url(),
            "resource": reference,
            "request": {"method": "POST", "url": "DocumentReference"},
        },
        {
            "fullUrl": binary_url,
            "resource": {
                "resourceType": "Binary",
                "contentType": document.mime_type,
                "data": base64.b64encode(document.content).decode(),
            },
            "request": {"method": "POST", "url": "Binary"},
        },
    ]


def _coding(value: CodedValue) -> dict[str, Any]:
    """The coding of `value`, with its display name: XDS carries it, and the registry stores
    what the bundle gives it (without one, every display was stored empty)."""
    system = "http://loinc.org" if value.scheme == LOINC_OID else f"urn:oid:{value.scheme}"
    coding = {"system": system, "code": value.code}
    if value.display:
        coding["display"] = value.display
    return coding


def _concept(value: CodedValue) -> dict[str, Any]:
    return {"coding": [_coding(value)]}


def _fresh_url() -> str:
    return f"urn:uuid:{uuid.uuid4()}"
