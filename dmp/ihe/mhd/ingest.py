"""ITI-65 Provide Document Bundle -> `SubmissionInput` (validated with fhir.resources first)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from pydantic import ValidationError

from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.documents.metadata import (
    AssociationInput,
    DocumentInput,
    SubmissionInput,
    SubmissionSetInput,
    is_oid,
)
from dmp.documents.models import AssociationType
from dmp.ihe.mhd.contained import read_authenticator, read_author, read_source_patient
from dmp.ihe.mhd.mapping import coded_value, system_oid, unique_id_of


def _fail(message: str, where: str) -> ValidationFailed:
    return ValidationFailed([Problem(ErrorCode.INVALID, message, where)])


def _time(value: Any, where: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _fail(f"{value!r} is not a FHIR dateTime", where) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _required_time(value: Any, where: str) -> dt.datetime:
    """XDS creationTime is required: a missing one is refused, as over SOAP (it was stored as
    the year 1)."""
    moment = _time(value, where)
    if moment is None:
        raise _fail("a creation time is required", where)
    return moment


SHA1_BYTES: Final = 20
HL7_CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
MHD_EXTENSIONS: Final = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
INS_ROOT: Final = "1.2.250.1.213.1.4."
# Resolves the id of a Patient of this server (`Patient/<id>`, as the TD0.2 search returns it)
# to the patient's INS as an HL7 CX; None when the id is not the caller's patient.
ServerPatient = Callable[[str], str | None]


class _References:
    """What the references of a bundle point to: its entries (by fullUrl or Type/id) and every
    contained resource (producers often put the author once, in the SubmissionSet)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self._resources: dict[str, dict[str, Any]] = {}
        for entry in entries:
            resource = entry.get("resource") or {}
            self._index(resource, str(entry.get("fullUrl", "")))
            for contained in resource.get("contained") or []:
                self._index(contained, f"#{contained.get('id', '')}")

    def _index(self, resource: dict[str, Any], key: str) -> None:
        if key:
            self._resources.setdefault(key, resource)
        if resource.get("id"):
            self._resources.setdefault(f"{resource.get('resourceType')}/{resource['id']}", resource)

    def get(
        self, reference: dict[str, Any] | None, kind: str, *, within: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The resource of `kind` a reference names. `#id` names first a resource contained in
        `within`, the resource holding the reference (FHIR: local to it; every document of a
        bundle may contain its own `#author-0`), then one contained elsewhere in the bundle."""
        target = str((reference or {}).get("reference", ""))
        if within is not None and target.startswith("#"):
            for contained in within.get("contained") or []:
                if f"#{contained.get('id', '')}" == target and contained.get("resourceType") == kind:
                    return dict(contained)
        found = self._resources.get(target)
        if found is None and target.startswith("#"):
            found = self._resources.get(f"{kind}/{target[1:]}")
        return found if found is not None and found.get("resourceType") == kind else None


def _patient_cx(
    subject: dict[str, Any] | None,
    where: str,
    references: _References,
    server_patient: ServerPatient,
    within: dict[str, Any] | None = None,
) -> str:
    """The patient's INS, from a logical reference, a Patient of the bundle or one of ours."""
    subject = subject or {}
    identifier = subject.get("identifier") or {}
    system, value = str(identifier.get("system", "")), str(identifier.get("value", ""))
    if system and value:
        return f"{value}^^^&{system_oid(system)}&ISO^NH"
    patient = references.get(subject, "Patient", within=within)
    if patient is not None:
        for candidate in patient.get("identifier") or []:
            oid = system_oid(str(candidate.get("system", "")))
            if oid.startswith(INS_ROOT) and candidate.get("value"):
                return f"{candidate['value']}^^^&{oid}&ISO^NH"
        raise _fail("the Patient of the bundle carries no INS identifier", where)
    reference = str(subject.get("reference", ""))
    if reference.startswith("Patient/"):
        cx = server_patient(reference.removeprefix("Patient/"))
        if cx:
            return cx
        raise _fail(f"{reference} is not the patient this access is bound to", where)
    raise _fail(
        "subject must identify the patient: identifier (INS), a Patient of the bundle with an INS, "
        "or Patient/<id> as returned by the Patient search",
        where,
    )


def _reference_id(related: dict[str, Any], where: str) -> str:
    """An XDS referenceIdList value (CXi) of a context.related identifier: as written when it is
    one already (this server writes them so), else `value^^^&<oid>&ISO` from an urn:oid: system."""
    identifier = related.get("identifier") or {}
    value = str(identifier.get("value", ""))
    if not value:
        raise _fail("context.related needs an identifier (an XDS referenceIdList value)", where)
    system = str(identifier.get("system", ""))
    if "^" not in value and system.startswith("urn:oid:"):
        return f"{value}^^^&{system.removeprefix('urn:oid:')}&ISO"
    return value


def _source_oid(identifier: dict[str, Any]) -> str:
    """XDS sourceId is an OID: the value when it is one, else the OID its system names
    (producers, the PDSm examples among them, put a local label in the value)."""
    value = str(identifier.get("value", "")).removeprefix("urn:oid:")
    system = str(identifier.get("system", ""))
    if is_oid(value) or not system.startswith("urn:oid:"):
        return value
    return system.removeprefix("urn:oid:")


def _sha1(value: Any, where: str) -> str | None:
    """The hex SHA-1 an attachment.hash declares (None: none declared). Decoded strictly: a
    lenient decoding read "@@@@" as no bytes at all, and the integrity check was skipped."""
    if value is None:
        return None
    try:
        digest = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail("attachment.hash is not base64", where) from exc
    if len(digest) != SHA1_BYTES:
        raise _fail(f"attachment.hash is a SHA-1: {SHA1_BYTES} bytes, not {len(digest)}", where)
    return digest.hex()


def _no_server_patient(_: str) -> str | None:
    return None


def _problems(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed(
        [Problem(ErrorCode.INVALID, e["msg"], ".".join(str(p) for p in e["loc"])) for e in exc.errors()[:20]]
    )


def validate_resource(model: type[Bundle] | type[DocumentReference], payload: Any) -> None:
    """`payload` checked against the FHIR R4 model. fhir.resources raises TypeError or KeyError
    itself on some malformed resources (a resourceType that is a list or a number, an unknown
    one): those are invalid input too, not server errors."""
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        raise _problems(exc) from exc
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise _fail(
            f"not a valid FHIR R4 {model.__name__} ({type(exc).__name__}: {exc})", model.__name__
        ) from exc


def parse_bundle(
    payload: dict[str, Any], server_patient: ServerPatient = _no_server_patient
) -> SubmissionInput:
    validate_resource(Bundle, payload)
    try:
        return _bundle_submission(payload, server_patient)
    except ValidationError as exc:
        # A value the FHIR model accepts but the XDS metadata cannot carry (an empty code, an
        # oversized display): an OperationOutcome naming it.
        raise _problems(exc) from exc


# What an ITI-65 Bundle may hold: the SubmissionSet, its documents and their contents, and the
# resources their references may point to.
BUNDLE_RESOURCES = frozenset(
    {"List", "DocumentReference", "Binary", "Patient", "Practitioner", "PractitionerRole", "Organization"}
)


def _binaries(entries: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The Binary of the bundle each DocumentReference's content points to (None: inline data
    or none), in the order of the DocumentReferences."""
    references = _References(entries)
    found = []
    for entry in entries:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "DocumentReference":
            attachment = ((resource.get("content") or [{}])[0]).get("attachment") or {}
            found.append(references.get({"reference": str(attachment.get("url", ""))}, "Binary"))
    return found


def transaction_response(
    payload: dict[str, Any], submission_set_id: str, document_ids: list[str]
) -> list[dict[str, Any]]:
    """The entries of the transaction-response to an accepted ITI-65 Bundle: one per entry of the
    request, in its order (FHIR: a client matches each answer to its entry by position).
    `document_ids` are the FHIR ids of the stored documents in the order of the DocumentReferences."""
    entries = payload.get("entry") or []
    binaries = {
        id(binary): doc for binary, doc in zip(_binaries(entries), document_ids, strict=True) if binary
    }
    documents = iter(document_ids)
    answers = []
    for entry in entries:
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        if kind == "List":
            location = f"List/{submission_set_id}"
        elif kind == "DocumentReference":
            location = f"DocumentReference/{next(documents)}"
        elif kind == "Binary":
            location = f"Binary/{binaries[id(resource)]}"
        else:
            # A resource the documents refer to (their patient, an author): read, not created.
            answers.append({"response": {"status": "200 OK"}})
            continue
        answers.append({"response": {"status": "201 Created", "location": location}})
    return answers


def _bundle_submission(payload: dict[str, Any], server_patient: ServerPatient) -> SubmissionInput:
    if payload.get("type") != "transaction":
        raise _fail("an ITI-65 Bundle is of type transaction", "Bundle.type")
    entries = payload.get("entry") or []
    urls = [str(e.get("fullUrl", "")) for e in entries]
    # Entries are found by fullUrl: two with the same (or none) would collapse into one, and a
    # document would be dropped while the answer says it was stored (FHIR bdl-7).
    if "" in urls or len(set(urls)) < len(urls):
        raise _fail("every entry needs its own fullUrl", "Bundle.entry.fullUrl")
    by_url = {url: e.get("resource") or {} for url, e in zip(urls, entries, strict=True)}
    for url, resource in by_url.items():
        if resource.get("resourceType") not in BUNDLE_RESOURCES:
            # Stored nowhere: accepting it would answer success for data that was dropped.
            raise _fail(
                f"a {resource.get('resourceType')} is not part of an ITI-65 submission ({url})",
                "Bundle.entry",
            )
    for url, entry in zip(urls, entries, strict=True):
        # A transaction entry does what its request says (FHIR bdl-3): an ITI-65 one creates its
        # resource. Another method (a DELETE, a PUT on some id) would be answered as a creation.
        request = entry.get("request") or {}
        kind = str((entry.get("resource") or {}).get("resourceType"))
        if request.get("method") != "POST" or request.get("url") != kind:
            raise _fail(
                f"every entry of an ITI-65 transaction is a POST to its resource type ({url}: "
                f"{request.get('method')} {request.get('url')}, expected POST {kind})",
                "Bundle.entry.request",
            )
    references = _References(entries)
    lists = [r for r in by_url.values() if r.get("resourceType") == "List"]
    document_references = [
        (url, r) for url, r in by_url.items() if r.get("resourceType") == "DocumentReference"
    ]
    if len(lists) != 1:
        raise _fail("exactly one SubmissionSet List is required", "Bundle.entry")
    if not document_references:
        raise _fail("at least one DocumentReference is required", "Bundle.entry")
    subset = lists[0]
    identifiers = subset.get("identifier") or []
    subset_unique = next((unique_id_of(i) for i in identifiers if i.get("use") == "usual"), "")
    source = next(
        (
            _source_oid(x.get("valueIdentifier") or {})
            for x in subset.get("extension") or []
            if str(x.get("url", "")).endswith("ihe-sourceId")
        ),
        "",
    )
    content_type = next(
        (
            coded_value(x.get("valueCodeableConcept") or {})
            for x in subset.get("extension") or []
            if str(x.get("url", "")).endswith("ihe-designationType")
        ),
        None,
    )
    if content_type is None:
        raise _fail("the SubmissionSet needs an ihe-designationType (contentTypeCode)", "List.extension")
    patient = _patient_cx(subset.get("subject"), "List.subject", references, server_patient)
    documents: list[DocumentInput] = []
    associations: list[AssociationInput] = []
    for index, (url, resource) in enumerate(document_references):
        where = f"DocumentReference[{index}]"
        resolve = functools.partial(references.get, within=resource)
        contents = resource.get("content") or [{}]
        if len(contents) > 1:
            # An XDS DocumentEntry has one document: a second content would be dropped.
            raise _fail("a DocumentReference of the DMP carries exactly one content", f"{where}.content")
        content = contents[0]
        attachment = content.get("attachment") or {}
        binary = references.get({"reference": str(attachment.get("url", ""))}, "Binary")
        encoded = attachment.get("data") or (binary or {}).get("data")
        if encoded is None:
            raise _fail(
                "content needed: attachment.data, or attachment.url pointing to a Binary of the bundle",
                where,
            )
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _fail("the content is not base64", where) from exc
        declared_hash = _sha1(attachment.get("hash"), f"{where}.content.attachment.hash")
        context = resource.get("context") or {}
        period = context.get("period") or {}
        # Only a urn:uuid fullUrl is kept as entryUUID; anything else is a symbolic id the
        # registry replaces by a fresh UUID.
        entry_id = url if url.startswith("urn:uuid:") else f"Document{index:02d}"
        documents.append(
            DocumentInput(
                entry_uuid=entry_id,
                unique_id=unique_id_of(resource.get("masterIdentifier") or {}),
                mime_type=str(attachment.get("contentType", "")),
                content=data,
                declared_hash=declared_hash,
                declared_size=attachment.get("size"),
                class_code=coded_value((resource.get("category") or [{}])[0]),
                type_code=coded_value(resource.get("type") or {}),
                format_code=coded_value({"coding": [content.get("format") or {}]}),
                healthcare_facility_type_code=coded_value(context.get("facilityType") or {}),
                practice_setting_code=coded_value(context.get("practiceSetting") or {}),
                # Every coding of every label: N and MASQUE_PS in one label is a masked document.
                confidentiality_codes=tuple(
                    coded_value({"coding": [coding]})
                    for label in resource.get("securityLabel") or []
                    for coding in label.get("coding") or [{}]
                ),
                event_codes=tuple(coded_value(event) for event in context.get("event") or []),
                title=str(attachment.get("title", "")),
                comments=str(resource.get("description", "")),
                language_code=str(attachment.get("language", "fr-FR")),
                creation_time=_required_time(
                    attachment.get("creation"), f"{where}.content.attachment.creation"
                ),
                service_start_time=_time(period.get("start"), f"{where}.context.period"),
                service_stop_time=_time(period.get("end"), f"{where}.context.period"),
                patient_id=_patient_cx(
                    resource.get("subject"), f"{where}.subject", references, server_patient, resource
                ),
                authors=tuple(read_author(a, resolve) for a in resource.get("author") or []),
                legal_authenticator=read_authenticator(resource.get("authenticator"), resolve),
                source_patient_info=read_source_patient(context.get("sourcePatientInfo"), resolve),
                reference_ids=tuple(
                    _reference_id(r, f"{where}.context.related") for r in context.get("related") or []
                ),
            )
        )
        associations.append(
            AssociationInput(
                entry_uuid=f"urn:uuid:member-{index}",
                association_type=AssociationType.HAS_MEMBER,
                source="SubmissionSet",
                target=entry_id,
                submission_set_status="Original",
            )
        )
        for relation in resource.get("relatesTo") or []:
            if relation.get("code") != "replaces":
                raise _fail("only relatesTo.code = replaces is supported", f"{where}.relatesTo")
            target = str((relation.get("target") or {}).get("reference", "")).rsplit("/", 1)[-1]
            associations.append(
                AssociationInput(
                    entry_uuid=f"urn:uuid:replace-{index}",
                    association_type=AssociationType.REPLACE,
                    source=entry_id,
                    target=f"urn:uuid:{target}",
                )
            )
    pointed_to = {id(binary) for binary in _binaries(entries)}
    unused = [
        url for url, r in by_url.items() if r.get("resourceType") == "Binary" and id(r) not in pointed_to
    ]
    if unused:
        raise _fail(
            f"no DocumentReference points to the Binary {unused[0]}: it would be lost", "Bundle.entry"
        )
    return SubmissionInput(
        submission_set=SubmissionSetInput(
            entry_uuid="SubmissionSet",
            unique_id=subset_unique,
            source_id=source,
            submission_time=_time(subset.get("date"), "List.date") or dt.datetime.now(dt.UTC),
            content_type_code=content_type,
            patient_id=patient,
            title=str(subset.get("title", "")),
        ),
        documents=tuple(documents),
        associations=tuple(associations),
    )


def parse_simplified_publish(
    payload: object, server_patient: ServerPatient = _no_server_patient, *, source_id: str
) -> SubmissionInput:
    """ITI-105 (PDSm Simplified Publish): one DocumentReference carrying its bytes in
    `content.attachment.data`; the registry makes the SubmissionSet (source: the caller's
    software, content type: the document's facility type), then it is an ITI-65 like any other."""
    if not isinstance(payload, dict) or payload.get("resourceType") != "DocumentReference":
        raise _fail("a DocumentReference is expected", "DocumentReference")
    validate_resource(DocumentReference, payload)
    attachment = ((payload.get("content") or [{}])[0] or {}).get("attachment") or {}
    if not attachment.get("data"):
        raise _fail("Simplified Publish carries the document in content.attachment.data", "content")
    facility = (payload.get("context") or {}).get("facilityType") or {}
    if not payload.get("securityLabel"):
        # PDSm lets the simplified publisher omit it; the DMP needs one: normal confidentiality.
        payload = {**payload, "securityLabel": [{"coding": [{"system": HL7_CONFIDENTIALITY, "code": "N"}]}]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "List",
                    "status": "current",
                    "mode": "working",
                    "identifier": [
                        {
                            "use": "usual",
                            "system": "urn:ietf:rfc:3986",
                            "value": f"urn:oid:2.25.{uuid.uuid4().int}",
                        }
                    ],
                    "subject": payload.get("subject"),
                    "date": dt.datetime.now(dt.UTC).isoformat(),
                    "extension": [
                        {
                            "url": f"{MHD_EXTENSIONS}ihe-sourceId",
                            "valueIdentifier": {"value": f"urn:oid:{source_id}"},
                        },
                        {"url": f"{MHD_EXTENSIONS}ihe-designationType", "valueCodeableConcept": facility},
                    ],
                },
                "request": {"method": "POST", "url": "List"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": payload,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    }
    return parse_bundle(bundle, server_patient)
