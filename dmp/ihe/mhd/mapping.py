"""XDS metadata <-> FHIR R4 resources (IHE MHD / PDSm), as mappings over the same registry rows.

Identifiers follow the ANS equivalence table: DocumentReference.id = entryUUID (without the
`urn:uuid:` prefix), identifier = logicalId, masterIdentifier = uniqueId; List.id = the
submission set's entryUUID. A document sent by SOAP is therefore found by FHIR and vice versa.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any, Final

from dmp.access.policy import DocumentStatus
from dmp.documents.metadata import Author, CodedValue
from dmp.documents.models import Confidentiality, DocumentEntry, Folder, SubmissionSet
from dmp.documents.rows import DocumentRow
from dmp.ihe.mhd.contained import people

LOINC_OID: Final = "2.16.840.1.113883.6.1"
NOS: Final = "https://mos.esante.gouv.fr/NOS/{0}/FHIR/{1}"
# The code systems of the French nomenclatures (NOS) by their OIDs, as PDSm names them.
SYSTEM_URLS: Final = {
    LOINC_OID: "http://loinc.org",
    Confidentiality.HL7_SYSTEM: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    Confidentiality.DMP_SYSTEM: NOS.format(
        "TRE_A07-StatutVisibiliteDocument", "TRE-A07-StatutVisibiliteDocument"
    ),
    "1.2.250.1.213.1.1.4.1": NOS.format("TRE_A03-ClasseDocument", "TRE-A03-ClasseDocument"),
    "1.2.250.1.71.4.2.4": NOS.format("TRE_R02-SecteurActivite", "TRE-R02-SecteurActivite"),
    "1.2.250.1.213.1.1.4.6": NOS.format("TRE_A00-ProducteurDocNonPS", "TRE-A00-ProducteurDocNonPS"),
    "1.2.250.1.213.1.1.4.9": NOS.format("TRE_A01-CadreExercice", "TRE-A01-CadreExercice"),
    "1.3.6.1.4.1.19376.1.2.3": NOS.format("TRE_A11-IheFormatCode", "TRE-A11-IheFormatCode"),
    "1.2.250.1.213.1.1.4.2.282": NOS.format(
        "TRE_A06-FormatCodeComplementaire", "TRE-A06-FormatCodeComplementaire"
    ),
    "1.2.840.10008.2.6.1": NOS.format("TRE_A09-DICOMuidRegistry", "TRE-A09-DICOMuidRegistry"),
    "1.2.250.1.213.1.1.4.14": NOS.format("TRE_A10-NomenclatureURN", "TRE-A10-NomenclatureURN"),
    "1.2.250.1.213.1.1.4.12": NOS.format("TRE_A05-TypeDocComplementaire", "TRE-A05-TypeDocComplementaire"),
}
OIDS_BY_URL: Final = {
    **{url: oid for oid, url in SYSTEM_URLS.items()},
    # The PDSm examples spell TRE_A07 this way.
    NOS.format(
        "TRE_A07-StatusVisibiliteDocument", "TRE-A07-StatusVisibiliteDocument"
    ): Confidentiality.DMP_SYSTEM,
}
PDSM: Final = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
IS_ARCHIVED_URL: Final = PDSM + "pdsm-ext-is-archived"
PROFILE_DOCUMENT: Final = PDSM + "pdsm-comprehensive-document-reference"
STATUS_TO_FHIR: Final = {
    DocumentStatus.APPROVED: "current",
    DocumentStatus.ARCHIVED: "current",
    DocumentStatus.DEPRECATED: "superseded",
    DocumentStatus.DELETED: "entered-in-error",
}


def system_url(oid: str) -> str:
    if not oid:
        return ""
    return SYSTEM_URLS.get(oid, oid if oid.startswith(("http", "urn:")) else f"urn:oid:{oid}")


def system_oid(url: str) -> str:
    if url in OIDS_BY_URL:
        return OIDS_BY_URL[url]
    return url.removeprefix("urn:oid:")


def coding(code: str, scheme: str, display: str = "") -> dict[str, str]:
    value = {"system": system_url(scheme), "code": code}
    if display:
        value["display"] = display
    return {k: v for k, v in value.items() if v}


def concept(code: str, scheme: str, display: str = "") -> dict[str, Any]:
    return {"coding": [coding(code, scheme, display)]}


def coded_value(concept_json: dict[str, Any]) -> CodedValue:
    codings = concept_json.get("coding") or [{}]
    first = codings[0]
    return CodedValue(
        code=str(first.get("code", "")) or "?",
        scheme=system_oid(str(first.get("system", ""))),
        display=str(first.get("display", "")),
    )


def fhir_time(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def master_identifier(unique_id: str) -> dict[str, str]:
    if "^" in unique_id:
        root, extension = unique_id.split("^", 1)
        return {"system": f"urn:oid:{root}", "value": extension}
    return {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{unique_id}"}


def unique_id_of(identifier: dict[str, Any]) -> str:
    """The XDS uniqueId (an OID) of a masterIdentifier; a UUID becomes its 2.25 OID (ITU-T X.667)."""
    system, value = str(identifier.get("system", "")), str(identifier.get("value", ""))
    if system == "urn:ietf:rfc:3986":
        if value.startswith("urn:uuid:"):
            try:
                return f"2.25.{uuid.UUID(value.removeprefix('urn:uuid:')).int}"
            except ValueError:
                return value
        return value.removeprefix("urn:oid:")
    if system.startswith("urn:oid:"):
        return f"{system[8:]}^{value}"
    return value


def fhir_id(entry_uuid: str) -> str:
    return entry_uuid.removeprefix("urn:uuid:")


def document_reference(document: DocumentEntry | DocumentRow) -> dict[str, Any]:
    """The DocumentReference of a stored entry, the same from its model (a read) or its row (a search)."""
    status = DocumentStatus(document.availability_status)
    ins_value, ins_oid = _ins_parts(document.patient_id)
    shown = people(
        (Author.model_validate(a) for a in document.authors),
        document.legal_authenticator,
        document.source_patient_info,
    )
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": fhir_id(document.entry_uuid),
        "meta": {"profile": [PROFILE_DOCUMENT], "versionId": str(document.version)},
        "contained": shown.contained or None,
        "masterIdentifier": master_identifier(document.unique_id),
        "identifier": [
            {"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{document.logical_id}"}
        ],
        "status": STATUS_TO_FHIR[status],
        "extension": [{"url": IS_ARCHIVED_URL, "valueBoolean": status is DocumentStatus.ARCHIVED}],
        "type": concept(document.type_code, document.type_code_scheme, document.type_code_display),
        "category": [concept(document.class_code, document.class_code_scheme, document.class_code_display)],
        "subject": {"identifier": {"system": f"urn:oid:{ins_oid}", "value": ins_value}},
        "date": fhir_time(document.registered_at),
        "author": shown.authors,
        "authenticator": shown.authenticator,
        # The DMP visibility codes first: PDSm's TD3.3a/b PATCHes replace `/securityLabel/0`
        # as the document's visibility (an unmasking replaced N and left MASQUE_PS in place).
        "securityLabel": [
            concept(c.get("code", ""), c.get("scheme", ""), c.get("display", ""))
            for c in sorted(
                document.confidentiality_codes, key=lambda c: c.get("code") not in Confidentiality.DMP_CODES
            )
        ],
        "content": [
            {
                "attachment": {
                    "contentType": document.mime_type,
                    "language": document.language_code,
                    "url": f"Binary/{fhir_id(document.entry_uuid)}",
                    "size": document.size,
                    "hash": base64.b64encode(bytes.fromhex(document.hash_sha1)).decode(),
                    "title": document.title or None,
                    "creation": fhir_time(document.creation_time),
                },
                "format": coding(
                    document.format_code, document.format_code_scheme, document.format_code_display
                ),
            }
        ],
        "context": {
            "event": [
                concept(c.get("code", ""), c.get("scheme", ""), c.get("display", ""))
                for c in document.event_codes
            ]
            or None,
            "period": {
                k: v
                for k, v in (
                    ("start", fhir_time(document.service_start_time)),
                    ("end", fhir_time(document.service_stop_time)),
                )
                if v
            }
            or None,
            "facilityType": concept(
                document.healthcare_facility_type_code,
                document.healthcare_facility_type_code_scheme,
                document.healthcare_facility_type_code_display,
            ),
            "practiceSetting": concept(
                document.practice_setting_code,
                document.practice_setting_code_scheme,
                document.practice_setting_code_display,
            ),
            "related": [{"identifier": {"value": r}} for r in document.reference_ids] or None,
            "sourcePatientInfo": shown.source_patient,
        },
        "description": document.comments or None,
    }
    pruned: dict[str, Any] = _pruned(resource)
    return pruned


LIST_TYPES: Final = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
# XDS availability of a submission set or folder as List.status.
LIST_STATUS: Final = {
    DocumentStatus.APPROVED: "current",
    DocumentStatus.ARCHIVED: "current",
    DocumentStatus.DEPRECATED: "retired",
    DocumentStatus.DELETED: "entered-in-error",
}


def list_status(availability_status: str) -> str:
    return LIST_STATUS.get(DocumentStatus(availability_status), "current")


def _list(
    *,
    entry_uuid: str,
    unique_id: str,
    patient_id: str,
    availability_status: str,
    title: str,
    code: str,
    date: dt.datetime | None,
    extension: list[dict[str, Any]],
    members: list[str],
    comments: str = "",
) -> dict[str, Any]:
    """An MHD List: what a submission set and a folder share."""
    ins_value, ins_oid = _ins_parts(patient_id)
    pruned: dict[str, Any] = _pruned(
        {
            "resourceType": "List",
            "id": fhir_id(entry_uuid),
            "identifier": [
                {"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{unique_id}"},
                {"use": "official", "system": "urn:ietf:rfc:3986", "value": entry_uuid},
            ],
            "status": list_status(availability_status),
            "mode": "working",
            "title": title or None,
            "code": {"coding": [{"system": LIST_TYPES, "code": code}]},
            "subject": {"identifier": {"system": f"urn:oid:{ins_oid}", "value": ins_value}},
            "date": fhir_time(date),
            "note": [{"text": comments}] if comments else None,
            "extension": extension or None,
            "entry": [{"item": {"reference": f"DocumentReference/{fhir_id(m)}"}} for m in members] or None,
        }
    )
    return pruned


def _designation_type(code: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
        "valueCodeableConcept": concept(
            code.get("code", "?"), code.get("scheme", ""), code.get("display", "")
        ),
    }


def folder_list(folder: Folder, members: list[str]) -> dict[str, Any]:
    """An XDS Folder as an MHD List of code `folder` (codeList as designationType)."""
    return _list(
        entry_uuid=folder.entry_uuid,
        unique_id=folder.unique_id,
        patient_id=folder.patient_id,
        availability_status=folder.availability_status,
        title=folder.title,
        code="folder",
        date=folder.last_update_time,
        extension=[_designation_type(c) for c in folder.codes],
        members=members,
        comments=folder.comments,
    )


def submission_set_list(subset: SubmissionSet, members: list[str]) -> dict[str, Any]:
    return _list(
        entry_uuid=subset.entry_uuid,
        unique_id=subset.unique_id,
        patient_id=subset.patient_id,
        availability_status=subset.availability_status,
        title=subset.title,
        code="submissionset",
        date=subset.submission_time,
        extension=[
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                "valueIdentifier": {"value": f"urn:oid:{subset.source_id}"},
            },
            _designation_type(subset.content_type_code or {}),
        ],
        members=members,
    )


def _ins_parts(cx: str) -> tuple[str, str]:
    value, _, rest = cx.partition("^^^&")
    return value, rest.split("&", 1)[0]


def _pruned(value: Any) -> Any:
    """`value` without its None, [] and {} members, at every depth (FHIR has no empty elements).

    Scalars are not visited: a search answer holds ~80 of them per DocumentReference."""
    if type(value) is dict:
        return {
            k: _pruned(v) if type(v) in _CONTAINERS else v
            for k, v in value.items()
            if v is not None and v != [] and v != {}
        }
    if type(value) is list:
        return [_pruned(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def operation_outcome(issues: list[tuple[str, str, str]]) -> dict[str, Any]:
    """issues: (severity, code, diagnostics[, expression])"""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": diagnostics}
            for severity, code, diagnostics in issues
        ],
    }
