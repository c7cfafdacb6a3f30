"""ITI-65 Provide Document Bundle -> `SubmissionInput` (validated with fhir.resources first)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.documents.metadata import (
    AssociationInput,
    Author,
    DocumentInput,
    SubmissionInput,
    SubmissionSetInput,
)
from dmp.documents.models import AssociationType
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


def _patient_cx(subject: dict[str, Any] | None, where: str) -> str:
    identifier = (subject or {}).get("identifier") or {}
    system, value = str(identifier.get("system", "")), str(identifier.get("value", ""))
    if not system or not value:
        raise _fail("subject.identifier (the patient's INS) is required", where)
    return f"{value}^^^&{system_oid(system)}&ISO^NH"


def _author(reference: dict[str, Any]) -> Author:
    identifier = reference.get("identifier") or {}
    display = str(reference.get("display", ""))
    family, _, given = display.partition(" ")
    person_id = str(identifier.get("value", ""))
    person = f"{person_id}^{family}^{given}^^^^^^&1.2.250.1.71.4.2.1&ISO" if person_id else ""
    return Author(person=person, person_id=person_id, family_name=family, given_name=given)


def parse_bundle(payload: dict[str, Any]) -> SubmissionInput:
    try:
        Bundle.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                Problem(ErrorCode.INVALID, e["msg"], ".".join(str(p) for p in e["loc"]))
                for e in exc.errors()[:20]
            ]
        ) from exc
    if payload.get("type") != "transaction":
        raise _fail("an ITI-65 Bundle is of type transaction", "Bundle.type")
    entries = payload.get("entry") or []
    by_url = {str(e.get("fullUrl", "")): e.get("resource") or {} for e in entries}
    lists = [r for r in by_url.values() if r.get("resourceType") == "List"]
    references = [(url, r) for url, r in by_url.items() if r.get("resourceType") == "DocumentReference"]
    if len(lists) != 1:
        raise _fail("exactly one SubmissionSet List is required", "Bundle.entry")
    if not references:
        raise _fail("at least one DocumentReference is required", "Bundle.entry")
    subset = lists[0]
    identifiers = subset.get("identifier") or []
    subset_unique = next((unique_id_of(i) for i in identifiers if i.get("use") == "usual"), "")
    source = next(
        (
            str((x.get("valueIdentifier") or {}).get("value", "")).removeprefix("urn:oid:")
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
    patient = _patient_cx(subset.get("subject"), "List.subject")
    documents: list[DocumentInput] = []
    associations: list[AssociationInput] = []
    for index, (url, resource) in enumerate(references):
        where = f"DocumentReference[{index}]"
        content = (resource.get("content") or [{}])[0]
        attachment = content.get("attachment") or {}
        binary = by_url.get(str(attachment.get("url", "")))
        if binary is None or binary.get("resourceType") != "Binary":
            raise _fail("content.attachment.url must point to a Binary of the bundle", where)
        try:
            data = base64.b64decode(str(binary.get("data", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _fail("Binary.data is not base64", where) from exc
        declared_hash = attachment.get("hash")
        context = resource.get("context") or {}
        period = context.get("period") or {}
        entry_id = url if url.startswith("urn:uuid:") else f"urn:uuid:{url.rsplit('/', 1)[-1]}"
        documents.append(
            DocumentInput(
                entry_uuid=entry_id,
                unique_id=unique_id_of(resource.get("masterIdentifier") or {}),
                mime_type=str(attachment.get("contentType", "")),
                content=data,
                declared_hash=base64.b64decode(declared_hash).hex() if declared_hash else None,
                declared_size=attachment.get("size"),
                class_code=coded_value((resource.get("category") or [{}])[0]),
                type_code=coded_value(resource.get("type") or {}),
                format_code=coded_value({"coding": [content.get("format") or {}]}),
                healthcare_facility_type_code=coded_value(context.get("facilityType") or {}),
                practice_setting_code=coded_value(context.get("practiceSetting") or {}),
                confidentiality_codes=tuple(
                    coded_value(label) for label in resource.get("securityLabel") or []
                ),
                event_codes=tuple(coded_value(event) for event in context.get("event") or []),
                title=str(attachment.get("title", "")),
                comments=str(resource.get("description", "")),
                language_code=str(attachment.get("language", "fr-FR")),
                creation_time=_time(attachment.get("creation"), f"{where}.content.attachment.creation")
                or dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                service_start_time=_time(period.get("start"), f"{where}.context.period"),
                service_stop_time=_time(period.get("end"), f"{where}.context.period"),
                patient_id=_patient_cx(resource.get("subject"), f"{where}.subject"),
                authors=tuple(_author(a) for a in resource.get("author") or []),
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
