"""XDS.b and DMP transactions: one handler per SOAP action, each calling one domain service.

A handler receives the parsed message and the authenticated caller, and returns the response
body (and MTOM attachments). Domain errors are turned into RegistryErrors by the view.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from django.urls import reverse
from django.utils import timezone
from lxml import etree

from dmp.access.actors import Caller
from dmp.access.policy import DocumentStatus
from dmp.accounts.services import account_initialise
from dmp.common.errors import ErrorCode, NotFound, Problem, ValidationFailed
from dmp.documents.metadata import CodedValue, ConfidentialityChange, DocumentInput
from dmp.documents.models import Confidentiality, DocumentEntry
from dmp.documents.selectors import document_retrieve, document_visible
from dmp.documents.services import (
    MetadataChange,
    confidentiality_changes,
    documents_update,
    metadata_remove,
    submission_register,
)
from dmp.identity.ins import Ins
from dmp.identity.selectors import legal_representative_get
from dmp.identity.services import PatientTraits
from dmp.ihe.xds import ebrim, entry_texts, hl7v3, lots
from dmp.ihe.xds.ebrim import LCM, RIM, RS, XDSB, XOP, RegistryError, q
from dmp.ihe.xds.queries import QueryContext, document_input, parse_query, query_response, run_query
from dmp.ihe.xds.soap import SoapMessage
from dmp.records.access import record_by_ins
from dmp.records.context_links import MAX_AGE as CONTEXT_LINK_MAX_AGE
from dmp.records.context_links import issue_context_token
from dmp.records.selectors import own_traces, records_authorised_for
from dmp.records.services import (
    authorisation_self,
    medecin_traitant_set,
    record_close,
    record_create,
    record_reactivate,
    record_test,
    record_update_contact,
)

DMP: Final = "urn:opendmp:dmp:1"
RMD: Final = "urn:ihe:iti:rmd:2017"


class Action:
    PROVIDE_AND_REGISTER: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    STORED_QUERY: Final = "urn:ihe:iti:2007:RegistryStoredQuery"
    RETRIEVE: Final = "urn:ihe:iti:2007:RetrieveDocumentSet"
    UPDATE: Final = "urn:ihe:iti:2010:UpdateDocumentSet"
    REMOVE_METADATA: Final = "urn:ihe:iti:2010:DeleteDocumentSet"
    RECORD_TEST: Final = "urn:opendmp:dmp:TD0.2"
    AUTHORISATION: Final = "urn:opendmp:dmp:TD0.3"
    AUTHORISED_RECORDS: Final = "urn:opendmp:dmp:TD0.4"
    RECORD_CREATE: Final = "urn:opendmp:dmp:TD1.1"
    RECORD_REACTIVATE: Final = "urn:opendmp:dmp:TD1.2"
    RECORD_CLOSE: Final = "urn:opendmp:dmp:Close"
    ADMIN_UPDATE: Final = "urn:opendmp:dmp:AdministrativeUpdate"
    OWN_TRACES: Final = "urn:opendmp:dmp:Traces"
    RECORD_TEST_HL7V3: Final = hl7v3.QUERY_ACTION  # TD0.2 as the DMP shapes it
    WEB_ACCOUNT: Final = "urn:opendmp:dmp:TD1.5"
    CONTEXT_LINK: Final = "urn:opendmp:dmp:TD0.9"


UPDATE_STATUS_ASSOCIATION: Final = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"


@dataclass
class Outcome:
    body: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)
    splices: dict[str, bytes] = field(default_factory=dict)  # see soap.encode


@dataclass(frozen=True)
class Context:
    message: SoapMessage
    caller: Caller
    patient: Ins | None  # from the VIHF

    def require_patient(self) -> Ins:
        if self.patient is None:
            raise ValidationFailed(
                [Problem(ErrorCode.UNKNOWN_PATIENT, "the VIHF must name the patient (resource-id)", "VIHF")]
            )
        return self.patient


def _success() -> etree._Element:
    return ebrim.registry_response()


# --- XDS.b --------------------------------------------------------------------------------------


def provide_and_register(context: Context) -> Outcome:
    body = context.message.body
    if body.tag != q(XDSB, "ProvideAndRegisterDocumentSetRequest"):
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "ProvideAndRegisterDocumentSetRequest expected", "Body")]
        )
    contents = ebrim.document_contents(body, context.message.attachments)
    request = body.find(q(LCM, "SubmitObjectsRequest"))
    if request is None:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "SubmitObjectsRequest is required", "Body")])
    lot, signature = lots.checked_lot(context.caller, ebrim.parse_submission(request, contents))
    submission_register(
        caller=context.caller,
        submission=lot,
        expected_ins=context.require_patient(),
        signature=signature,
        written=entry_texts.store_new,
    )
    return Outcome(_success())


def stored_query(context: Context) -> Outcome:
    if context.message.body.tag != q(ebrim.QUERY, "AdhocQueryRequest"):
        raise ValidationFailed([Problem(ErrorCode.INVALID, "AdhocQueryRequest expected", "Body")])
    request = parse_query(context.message.body)
    result = run_query(QueryContext(caller=context.caller, patient=context.patient), request)
    leaves = request.return_type == "LeafClass"
    texts = entry_texts.texts_of([d.pk for d in result.documents]) if leaves else {}
    body, splices = query_response(result, request.return_type, texts)
    return Outcome(body, splices=splices)


def retrieve(context: Context) -> Outcome:
    body = context.message.body
    if body.tag != q(XDSB, "RetrieveDocumentSetRequest"):
        raise ValidationFailed([Problem(ErrorCode.INVALID, "RetrieveDocumentSetRequest expected", "Body")])
    patient = context.require_patient()
    requests = body.findall(q(XDSB, "DocumentRequest"))
    if not requests:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "at least one DocumentRequest is required", "Body")]
        )
    response = etree.Element(
        q(XDSB, "RetrieveDocumentSetResponse"), nsmap={"xdsb": XDSB, "rs": RS, "xop": XOP}
    )
    registry = etree.SubElement(response, q(RS, "RegistryResponse"))
    errors: list[RegistryError] = []
    attachments: dict[str, bytes] = {}
    found = 0
    for index, request in enumerate(requests):
        repository = (request.findtext(q(XDSB, "RepositoryUniqueId")) or "").strip()
        unique_id = (request.findtext(q(XDSB, "DocumentUniqueId")) or "").strip()
        try:
            retrieved = document_retrieve(
                caller=context.caller,
                unique_id=unique_id,
                repository_unique_id=repository,
                patient_id=patient.hl7(),
                content_only=True,
            )
        except NotFound:
            errors.append(RegistryError("XDSMissingDocument", f"document {unique_id} not found", unique_id))
            continue
        found += 1
        part = etree.SubElement(response, q(XDSB, "DocumentResponse"))
        etree.SubElement(part, q(XDSB, "RepositoryUniqueId")).text = repository
        etree.SubElement(part, q(XDSB, "DocumentUniqueId")).text = unique_id
        etree.SubElement(part, q(XDSB, "mimeType")).text = retrieved.document.mime_type
        document = etree.SubElement(part, q(XDSB, "Document"))
        if context.message.mtom:
            cid = f"document{index}@opendmp"
            etree.SubElement(document, q(XOP, "Include"), href=f"cid:{cid}")
            attachments[cid] = retrieved.content
        else:
            document.text = base64.b64encode(retrieved.content).decode()
    if not errors:
        status = ebrim.RESPONSE_SUCCESS
    else:
        status = ebrim.RESPONSE_PARTIAL if found else ebrim.RESPONSE_FAILURE
    registry.set("status", status)
    ebrim.registry_error_list(registry, errors)
    return Outcome(response, attachments)


def _current_by_lid(lid: str) -> DocumentEntry | None:
    try:
        logical_id = uuid.UUID(lid.removeprefix("urn:uuid:"))
    except ValueError:
        return None
    return DocumentEntry.objects.filter(logical_id=logical_id).first()


def _fixed_metadata(document: DocumentInput) -> dict[str, object]:
    """The metadata an ITI-57 new version must repeat unchanged, as the registry answers it."""

    def code(value: CodedValue) -> tuple[str, str]:
        return value.code, value.scheme

    def moment(value: dt.datetime | None) -> str:
        return ebrim.format_dtm(value) if value is not None else ""

    return {
        "uniqueId": document.unique_id,
        "patientId": document.patient_id,
        "mimeType": document.mime_type,
        "classCode": code(document.class_code),
        "typeCode": code(document.type_code),
        "formatCode": code(document.format_code),
        "healthcareFacilityTypeCode": code(document.healthcare_facility_type_code),
        "practiceSettingCode": code(document.practice_setting_code),
        "confidentialityCode": sorted(
            code(c) for c in document.confidentiality_codes if c.code not in Confidentiality.DMP_CODES
        ),
        "eventCodeList": sorted(code(c) for c in document.event_codes),
        "title": document.title,
        "comments": document.comments,
        "languageCode": document.language_code,
        "creationTime": moment(document.creation_time),
        "serviceStartTime": moment(document.service_start_time),
        "serviceStopTime": moment(document.service_stop_time),
        "sourcePatientId": document.source_patient_id or document.patient_id,
        "sourcePatientInfo": tuple(document.source_patient_info),
        "legalAuthenticator": document.legal_authenticator,
        "referenceIdList": tuple(document.reference_ids),
        "author": tuple(
            (a.person, a.institutions, a.roles, a.specialties, a.telecom) for a in document.authors
        ),
    }


def _fixed_metadata_differences(current: DocumentInput, proposed: DocumentInput) -> list[str]:
    before, after = _fixed_metadata(current), _fixed_metadata(proposed)
    return [name for name in before if before[name] != after[name]]


def update(context: Context) -> Outcome:
    """ITI-57: new metadata versions (DMP confidentiality flags) and availability status changes."""
    request = context.message.body
    if request.tag != q(LCM, "SubmitObjectsRequest"):
        raise ValidationFailed([Problem(ErrorCode.INVALID, "SubmitObjectsRequest expected", "Body")])
    object_list = request.find(q(RIM, "RegistryObjectList"))
    if object_list is None:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "RegistryObjectList is required", "Body")])
    previous_versions = {
        a.get("targetObject", ""): (ebrim.slots(a).get("PreviousVersion") or [""])[0]
        for a in object_list.findall(q(RIM, "Association"))
        if a.get("associationType") == "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    }
    # One change per document, whether it comes as a new metadata version, a status association
    # or both; all of them are applied in one transaction, or none (ITI-57 is atomic).
    flags: dict[str, tuple[ConfidentialityChange, ...]] = {}
    statuses: dict[str, tuple[DocumentStatus, DocumentStatus]] = {}
    for entry in object_list.findall(q(RIM, "ExtrinsicObject")):
        where = f"ExtrinsicObject[{entry.get('id', '')}]"
        current = _current_by_lid(entry.get("lid", ""))
        unknown = ValidationFailed([Problem(ErrorCode.UNRESOLVED_REFERENCE, "unknown logical id", where)])
        if current is None or current.patient_id != context.require_patient().hl7():
            raise unknown
        # Its version and metadata are compared only once the caller may know the document exists.
        try:
            current = document_visible(caller=context.caller, entry_uuid=current.entry_uuid)
        except NotFound:
            raise unknown from None
        previous = previous_versions.get(entry.get("id", ""), "")
        if previous != str(current.version):
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.CONFLICT, f"PreviousVersion {previous!r} is not the current version", where
                    )
                ]
            )
        proposed = ebrim.read_document_entry(entry)
        differing = _fixed_metadata_differences(document_input(current), proposed)
        if differing:
            # As a FHIR PATCH of another element is refused: nothing is silently left unchanged.
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.INVALID,
                        f"a DMP metadata update changes only the DMP confidentiality codes, not {name}",
                        f"{where}/{name}",
                    )
                    for name in differing
                ]
            )
        wanted = {c.code for c in proposed.confidentiality_codes}
        present = {c.get("code", "") for c in current.confidentiality_codes}
        if current.entry_uuid in flags:
            raise ValidationFailed([Problem(ErrorCode.INVALID, "two new versions of one document", where)])
        flags[current.entry_uuid] = confidentiality_changes(present, wanted)
    for association in object_list.findall(q(RIM, "Association")):
        if association.get("associationType") != UPDATE_STATUS_ASSOCIATION:
            continue
        values = ebrim.slots(association)
        try:
            original = DocumentStatus((values.get("OriginalStatus") or [""])[0])
            new = DocumentStatus((values.get("NewStatus") or [""])[0])
        except ValueError as exc:
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, "OriginalStatus / NewStatus must be DMP statuses", "Association")]
            ) from exc
        target = association.get("targetObject", "")
        if target in statuses:
            raise ValidationFailed([Problem(ErrorCode.INVALID, "two status changes of one document", target)])
        statuses[target] = (original, new)
    changes = [
        MetadataChange(
            entry_uuid=entry_uuid,
            confidentiality=flags.get(entry_uuid, ()),
            status=statuses[entry_uuid][1] if entry_uuid in statuses else None,
            original_status=statuses[entry_uuid][0] if entry_uuid in statuses else None,
        )
        for entry_uuid in dict.fromkeys([*flags, *statuses])
        if flags.get(entry_uuid) or entry_uuid in statuses
    ]
    if not changes:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "the update changes nothing the DMP supports", "")]
        )
    documents_update(
        caller=context.caller,
        changes=changes,
        patient=context.require_patient(),
        written=entry_texts.refresh,
    )
    return Outcome(_success())


def remove_metadata(context: Context) -> Outcome:
    """ITI-62: the operator removes metadata objects (never the patient's content history)."""
    references = [r.get("id", "") for r in context.message.body.iter(q(RIM, "ObjectRef"))]
    if not references:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "ObjectRefList is required", "Body")])
    metadata_remove(caller=context.caller, entry_uuids=references)
    return Outcome(_success())


# --- DMP transactions -------------------------------------------------------------------------


def _dmp(tag: str, **attributes: str) -> etree._Element:
    return etree.Element(q(DMP, tag), nsmap={"dmp": DMP}, attrib=attributes)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _bool(element: etree._Element, name: str) -> bool:
    return element.get(name, "false").strip().lower() in {"true", "1"}


def record_test_transaction(context: Context) -> Outcome:
    report = record_test(caller=context.caller, ins=context.require_patient())
    response = _dmp(
        "RecordTestResponse",
        status=report.state.value,
        authorisation=report.authorisation.value,
        medecinTraitant=_flag(report.is_medecin_traitant),
        webAccount=_flag(report.web_account_opened),
        minor=_flag(report.patient_is_minor),
        opposesBreakGlass=_flag(report.opposes_break_glass),
        opposesCentre15=_flag(report.opposes_centre_15),
    )
    if report.closed_at:
        response.set("closedAt", report.closed_at.isoformat())
        response.set("closureReason", report.closure_reason)
    if report.patient is not None:
        etree.SubElement(
            response,
            q(DMP, "Patient"),
            familyName=report.patient.family_name,
            givenNames=report.patient.given_names,
            birthDate=report.patient.birth_date.isoformat(),
            sex=report.patient.sex,
        )
    return Outcome(response)


def record_test_hl7v3_transaction(context: Context) -> Outcome:
    """TD0.2 as PRPA_IN201307UV02 -> PRPA_IN201308UV02; the INS asked must be the VIHF's."""
    query = hl7v3.parse_query(context.message.body)
    if query.ins != context.require_patient():
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.PATIENT_ID_MISMATCH,
                    "the patientIdentifier differs from the VIHF's patient (resource-id)",
                    "patientIdentifier",
                )
            ]
        )
    report = record_test(caller=context.caller, ins=query.ins)
    patient = report.patient
    facts = hl7v3.DossierFacts(
        status=report.state.value,
        authorisation=report.authorisation.value,
        medecin_traitant=report.is_medecin_traitant,
        web_account=report.web_account_opened,
        minor=report.patient_is_minor,
        opposes_break_glass=report.opposes_break_glass,
        opposes_centre_15=report.opposes_centre_15,
        closed_at=report.closed_at,
        closure_reason=report.closure_reason,
        family_name=patient.family_name if patient else "",
        given_names=patient.given_names if patient else "",
        birth_date=patient.birth_date if patient else None,
        sex=patient.sex if patient else "",
    )
    return Outcome(hl7v3.response_message(query, facts))


def authorisation_transaction(context: Context) -> Outcome:
    body = context.message.body
    action = body.get("action", "")
    role = body.get("role", "")
    ins = context.require_patient()
    if action not in {"AJOUT", "SUPPRESSION"}:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "action must be AJOUT or SUPPRESSION", "action")])
    if role == "MEDECIN_TRAITANT":
        medecin_traitant_set(caller=context.caller, ins=ins, declare=action == "AJOUT")
    elif not role:
        authorisation_self(caller=context.caller, ins=ins, grant=action == "AJOUT")
    else:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "role must be MEDECIN_TRAITANT or absent", "role")]
        )
    return Outcome(_dmp("AuthorisationResponse", status="OK"))


def authorised_records_transaction(context: Context) -> Outcome:
    since_text = context.message.body.get("since", "")
    try:
        since = dt.datetime.fromisoformat(since_text) if since_text else None
    except ValueError as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "since must be an ISO date-time", "since")]
        ) from exc
    if since is not None and since.tzinfo is None:
        # The documented form is a date ("2026-01-31"): the DMP's local time, not a naive value.
        since = timezone.make_aware(since)
    rows = records_authorised_for(
        caller=context.caller,
        since=since,
        order_by_last_document=context.message.body.get("order") == "lastDocument",
    )
    response = _dmp("AuthorisedRecordsResponse")
    for row in rows:
        patient = row.record.patient
        item = etree.SubElement(
            response,
            q(DMP, "Record"),
            ins=patient.ins,
            insAuthority=patient.ins_authority,
            authorisedAt=row.authorised_at.isoformat(),
            medecinTraitant=_flag(row.is_medecin_traitant),
        )
        if row.last_document_at:
            item.set("lastDocumentAt", row.last_document_at.isoformat())
    return Outcome(response)


def web_account_transaction(context: Context) -> Outcome:
    """TD1.5a: open (or re-issue) the patient's web account; the PS hands the code over."""
    body = context.message.body
    record = record_by_ins(context.require_patient())
    if record is None:
        raise NotFound("no record for this INS")
    representative = None
    if body.get("representative"):
        try:
            representative_id = uuid.UUID(body.get("representative", ""))
        except ValueError as exc:
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, "representative must be a UUID", "representative")]
            ) from exc
        representative = legal_representative_get(patient_id=record.patient_id, public_id=representative_id)
        if representative is None:
            raise NotFound("no such legal representative")
    code = account_initialise(
        caller=context.caller,
        record=record,
        representative=representative,
        otp_channel=body.get("otpChannel", "").strip().lower(),
        otp_destination=body.get("otpDestination", ""),
        revoke_current=body.get("revokeCurrent", "").strip().lower() == "true",
    )
    return Outcome(_dmp("WebAccountResponse", status="EN_ATTENTE_ACTIVATION", activationCode=code))


def context_link_transaction(context: Context) -> Outcome:
    """TD0.9: a single-use, 2-minute link opening the PS portal on a page of the VIHF's patient.

    The link logs the VIHF's professional in; what the page then shows is decided, as always,
    by the access decision point. The path carries an opaque nonce, never the INS; a VIHF in
    the minor's secret connection opens a portal session in that secret connection.
    """
    actor = context.caller.actor
    token = issue_context_token(
        professional_id=actor.person_id,
        structure_id=actor.structure_id,
        ins=context.require_patient(),
        authentication=actor.authentication.value,
        page=context.message.body.get("page", "documents"),
        secret_connection=actor.secret_connection,
        signer_structure_id=actor.signer_structure_id,
    )
    return Outcome(
        _dmp(
            "ContextLinkResponse",
            path=reverse("professional_portal:context_open", args=[token]),
            expiresIn=str(int(CONTEXT_LINK_MAX_AGE.total_seconds())),
        )
    )


def record_create_transaction(context: Context) -> Outcome:
    body = context.message.body
    patient = body.find(q(DMP, "Patient"))
    ins = context.require_patient()
    if patient is None:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "Patient is required", "Patient")])
    try:
        traits = PatientTraits(
            ins=ins.value,
            ins_authority=ins.authority.value,
            birth_family_name=patient.get("birthFamilyName", ""),
            used_family_name=patient.get("usedFamilyName", ""),
            given_names=patient.get("givenNames", ""),
            birth_date=dt.date.fromisoformat(patient.get("birthDate", "")),
            sex=patient.get("sex", ""),  # type: ignore[arg-type]
            address_line=patient.get("address", ""),
            postal_code=patient.get("postalCode", ""),
            city=patient.get("city", ""),
            email=patient.get("email", ""),
            mobile_phone=patient.get("mobile", ""),
        )
    except ValueError as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, f"patient traits: {exc}", "Patient")]) from exc
    record = record_create(
        caller=context.caller,
        traits=traits,
        consent=_bool(body, "consent"),
        opposes_break_glass=_bool(body, "opposesBreakGlass"),
        opposes_centre_15=_bool(body, "opposesCentre15"),
    )
    return Outcome(_dmp("RecordCreateResponse", status=record.status, recordId=str(record.public_id)))


def record_reactivate_transaction(context: Context) -> Outcome:
    record = record_reactivate(
        caller=context.caller, ins=context.require_patient(), consent=_bool(context.message.body, "consent")
    )
    return Outcome(_dmp("RecordReactivateResponse", status=record.status))


def record_close_transaction(context: Context) -> Outcome:
    record = record_by_ins(context.require_patient())
    if record is None:
        raise NotFound("no record for this INS")
    body = context.message.body
    closed = record_close(
        caller=context.caller, record=record, reason=body.get("reason", ""), comment=body.get("comment", "")
    )
    return Outcome(_dmp("RecordCloseResponse", status=closed.status))


def admin_update_transaction(context: Context) -> Outcome:
    """Update of the administrative part (address and contact) of the patient's record: the
    attributes present are set ("" clears one), those absent stay as they are. The answer gives
    the contact details as they now stand."""
    record = record_by_ins(context.require_patient())
    if record is None:
        raise NotFound("no record for this INS")
    body = context.message.body
    try:
        patient = record_update_contact(
            caller=context.caller,
            record=record,
            address_line=body.get("address"),
            postal_code=body.get("postalCode"),
            city=body.get("city"),
            email=body.get("email"),
            mobile_phone=body.get("mobile"),
        )
    except ValueError as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, str(exc), "AdministrativeUpdateRequest")]) from exc
    return Outcome(
        _dmp(
            "AdministrativeUpdateResponse",
            address=patient.address_line,
            postalCode=patient.postal_code,
            city=patient.city,
            email=patient.email,
            mobile=patient.mobile_phone,
        )
    )


def own_traces_transaction(context: Context) -> Outcome:
    response = _dmp("TracesResponse")
    for event in own_traces(caller=context.caller, limit=1000):
        etree.SubElement(
            response,
            q(DMP, "Trace"),
            at=event.occurred_at.isoformat(),
            action=str(event.action),
            outcome=str(event.outcome),
            patient=event.patient_ins or "",
            document=event.document_unique_id or "",
            mode=event.access_mode or "",
        )
    return Outcome(response)


HANDLERS: dict[str, Callable[[Context], Outcome]] = {
    Action.PROVIDE_AND_REGISTER: provide_and_register,
    Action.STORED_QUERY: stored_query,
    Action.RETRIEVE: retrieve,
    Action.UPDATE: update,
    Action.REMOVE_METADATA: remove_metadata,
    Action.RECORD_TEST: record_test_transaction,
    Action.AUTHORISATION: authorisation_transaction,
    Action.AUTHORISED_RECORDS: authorised_records_transaction,
    Action.RECORD_CREATE: record_create_transaction,
    Action.RECORD_REACTIVATE: record_reactivate_transaction,
    Action.RECORD_CLOSE: record_close_transaction,
    Action.OWN_TRACES: own_traces_transaction,
    Action.ADMIN_UPDATE: admin_update_transaction,
    Action.RECORD_TEST_HL7V3: record_test_hl7v3_transaction,
    Action.WEB_ACCOUNT: web_account_transaction,
    Action.CONTEXT_LINK: context_link_transaction,
}

# Transactions answered with an ebRIM RegistryResponse on error (the others get DMP errors).
REGISTRY_STYLE: Final = frozenset(
    {Action.PROVIDE_AND_REGISTER, Action.STORED_QUERY, Action.UPDATE, Action.REMOVE_METADATA}
)

# Reply actions that do not follow the `<action>Response` convention.
REPLY_ACTIONS: Final = {Action.RECORD_TEST_HL7V3: hl7v3.RESPONSE_ACTION}

__all__ = ["DMP", "HANDLERS", "REGISTRY_STYLE", "REPLY_ACTIONS", "RMD", "Action", "Context", "Outcome"]
