"""The FHIR R4 endpoints (IHE MHD / PDSm): thin views over the same services as the SOAP channel.

Every answer is application/fhir+json; every error an OperationOutcome; nothing changes on
error (the services are all-or-nothing).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, Final

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from fhir.resources.R4B.documentreference import DocumentReference

from dmp.access.actors import AccessMode, Caller
from dmp.access.policy import DocumentStatus
from dmp.audit.selectors import parse_trace_cursor, trace_cursor
from dmp.common.errors import DomainError, ErrorCode, Forbidden, NotFound, Problem, ValidationFailed
from dmp.common.middleware import carries_nul
from dmp.compat.models import SoftwareProduct
from dmp.compat.services import SoftwareProfileMissing, software_profile_check
from dmp.documents.models import AssociationType, Confidentiality, DocumentEntry, Folder, SubmissionSet
from dmp.documents.selectors import (
    CodeMatch,
    DocumentQuery,
    any_code_matches,
    current_entry_uuids,
    document_get,
    document_retrieve,
    document_search_rows,
    record_contents,
)
from dmp.documents.services import (
    MetadataChange,
    confidentiality_changes,
    documents_update,
    submission_register,
)
from dmp.identity.ins import Ins, InvalidIns, parse_hl7_ins
from dmp.ihe.mhd.auth import ASSERTION_TYPE, TokenRejected, caller_from_token, issue_token
from dmp.ihe.mhd.ingest import parse_bundle, parse_simplified_publish, transaction_response, validate_resource
from dmp.ihe.mhd.mapping import (
    IS_ARCHIVED_URL,
    document_reference,
    fhir_id,
    folder_list,
    operation_outcome,
    submission_set_list,
    system_oid,
    unique_id_of,
)
from dmp.ihe.xds import entry_texts  # one registry: its query answers' texts (ADR 0013)
from dmp.ihe.xds.vihf import VihfRejected, tls_client_certificate
from dmp.records.access import record_by_ins, record_by_public_id
from dmp.records.selectors import own_traces
from dmp.records.services import RecordState, record_test

FHIR_JSON: Final = "application/fhir+json"
READ: Final = "system/DocumentReference.read"
WRITE: Final = "system/DocumentReference.write"
PATIENT_READ: Final = "system/Patient.read"
# The OpenDMP extensions of the TD0.2 Patient (docs/api/mhd-openapi.json, /fhir/Patient).
DMP_EXTENSIONS: Final = "https://opendmp.example/fhir/StructureDefinition/"
# The homologation profile a scope needs (reading documents: consultation; any change: feeding).
SCOPE_PROFILES: Final = {
    READ: SoftwareProduct.Profile.CONSULTATION,
    WRITE: SoftwareProduct.Profile.FEEDING,
}
MAX_COUNT: Final = 100
STATUS_PARAMS: Final = {
    "current": {DocumentStatus.APPROVED},
    "superseded": {DocumentStatus.DEPRECATED},
    "entered-in-error": set(),
}
SEARCH_PARAMS: Final = frozenset(
    {
        "patient",
        "patient.identifier",
        "status",
        "type",
        "category",
        "date",
        "period",
        "facility",
        "setting",
        "format",
        "security-label",
        "event",
        "identifier",
        "related",
        "isArchived",
        "_count",
        "_sort",
        "_getpagesoffset",
        "_format",
        "creation",
    }
)
HTTP_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.DUPLICATE_UNIQUE_ID: 409,
    ErrorCode.NON_IDENTICAL_HASH: 409,
}


def _json(payload: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(payload, ensure_ascii=False), status=status, content_type=FHIR_JSON)
    for name, value in headers.items():
        response[name] = value
    return response


def _outcome(status: int, code: str, message: str, problems: list[Problem] | None = None) -> HttpResponse:
    issues = (
        [("error", code, message)]
        if not problems
        else [("error", code, f"{p.location}: {p.message}" if p.location else p.message) for p in problems]
    )
    return _json(operation_outcome(issues), status)


# Far deeper than any FHIR resource or JSON Patch nests; what the resource models, deepcopy and
# the JSON encoder then walk recursively stays well inside Python's recursion limit.
MAX_JSON_DEPTH: Final = 64


def _refuse_nul_and_depth(payload: Any) -> None:
    """NUL characters (no text column can store them) and too deep a nesting are refused. The
    walk is iterative: a recursive one would itself fail on the nesting it is there to refuse."""
    pending: list[tuple[Any, int]] = [(payload, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ValidationFailed([Problem(ErrorCode.INVALID, "NUL characters are not allowed", "")])
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, f"the JSON nests more than {MAX_JSON_DEPTH} levels", "")]
            )
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children)


def _json_body(request: HttpRequest) -> Any:
    """The JSON body, checked by `_refuse_nul_and_depth`; ValueError if it is not JSON."""
    try:
        payload = json.loads(request.body)
    except RecursionError as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"the JSON nests more than {MAX_JSON_DEPTH} levels", "")]
        ) from exc
    _refuse_nul_and_depth(payload)
    return payload


# What FHIR's `_format` may ask for here: JSON under any of its names.
JSON_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})


def _format_refused(request: HttpRequest) -> HttpResponse | None:
    """406 for a `_format` this server cannot answer in (XML, Turtle), rather than JSON anyway
    or a 422 'unsupported search parameter' for the JSON it does answer in."""
    wanted = request.GET.get("_format")
    if wanted is None or wanted.split(";")[0].strip() in JSON_FORMATS:
        return None
    return _outcome(
        406, "not-supported", f"_format {wanted!r}: this server answers in JSON only (_format=json)"
    )


def _fhir_methods(methods: list[str]) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Django's require_http_methods, answering a 405 OperationOutcome (its own has no body)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = _outcome(405, "not-supported", f"{request.method} is not allowed here")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return checked

    return decorate


@csrf_exempt
def unknown(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under /fhir/: an OperationOutcome, as every FHIR answer (Django's page was HTML)."""
    return _outcome(404, "not-found", f"no FHIR interaction at /fhir/{path}")


def fhir_view(
    scope: str, methods: list[str], *, every_profile: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Authenticate the bearer token, then turn domain errors into OperationOutcomes.

    `scope` is what reading needs; any change (PATCH, POST) needs the write scope. The scope's
    homologation profile is checked too, unless the interaction belongs to `every_profile`
    (a PS's own traces, as on SOAP)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @_fhir_methods(methods)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                needed = WRITE if request.method in {"PATCH", "POST"} else scope
                caller, patient = caller_from_token(request.META.get("HTTP_AUTHORIZATION", ""), scope=needed)
            except TokenRejected as exc:
                status = 403 if "scope" in exc.message else 401
                response = _outcome(status, "security", exc.message)
                response["WWW-Authenticate"] = 'Bearer realm="opendmp"'
                return response
            try:
                if not every_profile and (profile := SCOPE_PROFILES.get(needed)) is not None:
                    software_profile_check(caller.actor.software, profile)
            except SoftwareProfileMissing as exc:
                return _outcome(403, "forbidden", exc.message)
            if carries_nul(request):
                return _outcome(400, "invalid", "NUL characters are not allowed in the request")
            if (refused := _format_refused(request)) is not None:
                return refused
            try:
                return view(request, caller, patient, *args, **kwargs)
            except RequestDataTooBig:
                # Django would answer its own HTML 400; nothing was read, nothing changed.
                return _outcome(413, "too-long", "the request body is larger than this server accepts")
            except ValidationFailed as exc:
                status = HTTP_STATUS.get(exc.problems[0].code if exc.problems else exc.code, 422)
                issue = {422: "invalid", 403: "forbidden"}.get(status, "conflict")
                return _outcome(status, issue, exc.message, exc.problems)
            except DomainError as exc:
                status = HTTP_STATUS.get(exc.code, 422)
                issue = {404: "not-found", 403: "forbidden"}.get(status, "processing")
                return _outcome(status, issue, exc.message)

        return wrapper

    return decorate


# --- metadata and token -------------------------------------------------------------------------

OPENAPI_PATH: Final = Path(__file__).resolve().parents[3] / "docs" / "api" / "mhd-openapi.json"


@csrf_exempt
@_fhir_methods(["GET"])
def openapi(request: HttpRequest) -> HttpResponse:
    """The committed OpenAPI description of this API (what Schemathesis tests against)."""
    return HttpResponse(OPENAPI_PATH.read_bytes(), content_type="application/json")


# FHIR search parameter types (the rest are tokens): a client builds its query from them.
PARAM_TYPES: Final = {"date": "date", "period": "date", "creation": "date", "patient": "reference"}


def _search_params(names: frozenset[str]) -> list[dict[str, str]]:
    return [
        {"name": name, "type": PARAM_TYPES.get(name, "token")}
        for name in sorted(names)
        if not name.startswith("_")
    ]


@csrf_exempt
@_fhir_methods(["GET"])
def capability_statement(request: HttpRequest) -> HttpResponse:
    if (refused := _format_refused(request)) is not None:
        return refused
    search = _search_params(SEARCH_PARAMS)
    return _json(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-23",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON],
            "implementation": {"description": "OpenDMP — Gestionnaire de partage de documents (PDSm)"},
            "instantiates": [
                "https://interop.esante.gouv.fr/ig/fhir/pdsm/CapabilityStatement/PDSm-GestionnaireDePartageDeDocuments"
            ],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                        "code": "OAuth",
                                    }
                                ]
                            }
                        ],
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                "extension": [
                                    {"url": "token", "valueUri": request.build_absolute_uri("/fhir/token")}
                                ],
                            }
                        ],
                    },
                    "resource": [
                        {
                            "type": "DocumentReference",
                            "interaction": [
                                {"code": "read"},
                                {"code": "search-type"},
                                {"code": "patch"},
                                {"code": "create"},
                            ],
                            "searchParam": search,
                        },
                        {
                            "type": "List",
                            "interaction": [{"code": "search-type"}],
                            "searchParam": _search_params(LIST_SEARCH_PARAMS),
                        },
                        {"type": "Binary", "interaction": [{"code": "read"}]},
                        {"type": "Patient", "interaction": [{"code": "search-type"}]},
                        {"type": "AuditEvent", "interaction": [{"code": "search-type"}]},
                    ],
                    "interaction": [{"code": "transaction"}],
                }
            ],
        }
    )


@csrf_exempt
@require_http_methods(["POST"])
def token(request: HttpRequest) -> HttpResponse:
    form = request.POST
    if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != ASSERTION_TYPE:
        return HttpResponse(
            json.dumps({"error": "unsupported_grant_type"}), status=400, content_type="application/json"
        )
    try:
        answer = issue_token(
            assertion=form.get("client_assertion", ""),
            token_url=request.build_absolute_uri("/fhir/token"),
            scope=form.get("scope", ""),
            client_certificate=tls_client_certificate(request),
        )
    except (TokenRejected, VihfRejected) as exc:
        return HttpResponse(
            json.dumps({"error": "invalid_client", "error_description": exc.message}),
            status=401,
            content_type="application/json",
        )
    response = HttpResponse(json.dumps(answer), content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


# --- search -------------------------------------------------------------------------------------


def _tokens(request: HttpRequest, name: str) -> tuple[CodeMatch, ...]:
    """Every code of the `name` parameters, alternatives all (OR)."""
    return tuple(code for group in _token_groups(request, name) for code in group)


def _token_values(request: HttpRequest, name: str) -> tuple[str, ...]:
    """The values of the `name` parameters without their systems: status codes, related ids."""
    return tuple(match.code for match in _tokens(request, name))


def _fhir_period(value: str) -> tuple[dt.datetime, dt.datetime | None]:
    """A FHIR date, dateTime or instant as the span its precision covers: [first instant, first
    instant after) in UTC, as the registry's times are (None: past the last representable year).
    ValueError if it is none of these."""
    if re.fullmatch(r"\d{4}(-\d{2})?", value):
        year, month = int(value[:4]), int(value[5:7]) if len(value) == 7 else 1
        lower = dt.datetime(year, month, 1, tzinfo=dt.UTC)
        next_year, next_month = (year + 1, 1) if len(value) == 4 or month == 12 else (year, month + 1)
        upper = dt.datetime(next_year, next_month, 1, tzinfo=dt.UTC) if next_year <= dt.MAXYEAR else None
        return lower, upper
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    try:
        moment = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is in the year 0 in UTC
        raise ValueError(f"{value} is outside the years 1 to 9999 in UTC") from exc
    step = dt.timedelta(days=1) if len(value) == 10 else dt.timedelta(seconds=1)
    try:
        return moment, moment + step
    except OverflowError:
        return moment, None


def _code_match(token: str) -> CodeMatch:
    """A FHIR token, `system|code` (the system as the registry's scheme), `code` or `|code` (any
    scheme: every registry code has one), or `system|` (any code of that system)."""
    system, _, code = token.rpartition("|")
    return CodeMatch(code, system_oid(system) if system else "")


def _token_groups(request: HttpRequest, name: str) -> tuple[tuple[CodeMatch, ...], ...]:
    """One group per repetition of `name` (AND), its comma-separated codes within (OR)."""
    groups = []
    for raw in request.GET.getlist(name):
        codes = tuple(_code_match(v) for v in raw.split(",") if v.strip("|"))
        if codes:
            groups.append(codes)
    return tuple(groups)


def _date_range(request: HttpRequest, name: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) of the `name` parameters, with the FHIR prefixes read at the value's
    precision: le2024-01-31 includes that whole day, gt2024-01-31 starts the day after."""
    start = end = None
    for raw in request.GET.getlist(name):
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        try:
            lower, upper = _fhir_period(value)
        except ValueError as exc:
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, f"{raw!r} is not a date in the years 1 to 9999 (UTC)", name)]
            ) from exc
        if prefix in {"ge", "eq"}:
            start = lower
        elif prefix == "gt":
            if upper is None:
                raise ValidationFailed([Problem(ErrorCode.INVALID, f"nothing is after {value}", name)])
            start = upper
        if prefix in {"le", "eq"}:
            end = upper
        elif prefix == "lt":
            end = lower
    return start, end


def _patient_record(request: HttpRequest, caller: Caller, token_patient: str) -> Any:
    """The record a search names: `patient.identifier=<system>|<INS>`, or `patient=` a reference
    to the Patient the TD0.2 search returns (`Patient/<id>`, `<id>` or an absolute URL). Out of
    normal mode it must be the token's patient: an emergency opens that one record only."""
    if caller.mode is not AccessMode.NORMAL and not token_patient:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.FORBIDDEN,
                    f"the access mode {caller.mode.value} needs a token bound to the patient",
                    "patient",
                )
            ]
        )
    identifier = request.GET.get("patient.identifier", "")
    reference = request.GET.get("patient", "")
    if not identifier and "|" in reference:
        identifier = reference  # a token given as `patient`: read as the identifier it is
    ins: Ins | None
    if identifier:
        system, _, value = identifier.rpartition("|")
        try:
            ins = parse_hl7_ins(f"{value}^^^&{system_oid(system)}&ISO^NH")
        except InvalidIns as exc:
            raise ValidationFailed(
                [Problem(ErrorCode.UNKNOWN_PATIENT, exc.message, "patient.identifier")]
            ) from exc
        record = record_by_ins(ins)
    elif reference:
        record = record_by_public_id(reference.rstrip("/").rsplit("/", 1)[-1])
        ins = record.patient.identifier if record is not None else None
    else:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "patient or patient.identifier is required", "patient")]
        )
    if token_patient and parse_hl7_ins(token_patient) != ins:
        raise ValidationFailed(
            [Problem(ErrorCode.FORBIDDEN, "the token is bound to another patient", "patient")]
        )
    if record is None:
        raise NotFound("no DMP for this patient")
    return record


def _searchset(
    resources: list[dict[str, Any]], request: HttpRequest, total: int | None = None
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": request.build_absolute_uri()}],
        "entry": [
            # A resource without id (the Patient TD0.2 shows a blocked PS) has no URL to give.
            (
                {"fullUrl": request.build_absolute_uri(f"/fhir/{r['resourceType']}/{r['id']}")}
                if "id" in r
                else {}
            )
            | {"resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }
    if total is not None:
        bundle["total"] = total
    return bundle


def _page(request: HttpRequest, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    try:
        count = min(MAX_COUNT, max(0, int(request.GET.get("_count", "50"))))
        offset = max(0, int(request.GET.get("_getpagesoffset", "0")))
    except ValueError as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "_count and _getpagesoffset are integers", "_count")]
        ) from exc
    page = items[offset : offset + count]
    links: dict[str, Any] = {}
    # _count=0 asks for no entries (FHIR: a count only): a next link would repeat this very page.
    if count and offset + count < len(items):
        links = _next_link(request, "_getpagesoffset", str(offset + count))
    return page, links


def _next_link(request: HttpRequest, parameter: str, value: str) -> dict[str, Any]:
    """The searchset's `next` link: this request with `parameter` set to `value`."""
    query = request.GET.copy()
    query[parameter] = value
    return {"relation": "next", "url": request.build_absolute_uri(f"{request.path}?{query.urlencode()}")}


@fhir_view(READ, ["GET", "PATCH", "POST"])
def document_references(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    if request.method == "POST":
        return _simplified_publish(request, caller, patient)
    if request.method == "PATCH":
        _token_patient(patient)  # before the lookup: without it, nothing is said about the document
        identifier = request.GET.get("identifier", "")
        system, _, value = identifier.rpartition("|")
        target = DocumentEntry.objects.filter(
            unique_id=unique_id_of({"system": system, "value": value})
        ).first()
        if target is None:
            raise NotFound("document not found")
        return _patch(request, caller, patient, fhir_id(target.entry_uuid))
    unknown = set(request.GET) - SEARCH_PARAMS
    if unknown:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"unsupported search parameter {', '.join(sorted(unknown))}", "")]
        )
    record = _patient_record(request, caller, patient)
    statuses: set[DocumentStatus] = set()
    for status in _token_values(request, "status") or ("current",):
        if status not in STATUS_PARAMS:
            raise ValidationFailed([Problem(ErrorCode.INVALID, f"unknown status {status}", "status")])
        statuses |= STATUS_PARAMS[status]
    archived = request.GET.get("isArchived")
    if archived == "true":
        statuses = {DocumentStatus.ARCHIVED}
    elif archived is None and "current" in (_token_values(request, "status") or ("current",)):
        statuses |= {DocumentStatus.ARCHIVED}
    # `date` is DocumentReference.date, the registration time (FHIR's DocumentReference-date);
    # `creation` is MHD's attachment.creation, the document's creationTime.
    registered_from, registered_to = _date_range(request, "date")
    created_from, created_to = _date_range(request, "creation")
    period_from, period_to = _date_range(request, "period")
    sort = request.GET.get("_sort", "-date")
    if sort not in {"date", "-date"}:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "_sort accepts date or -date", "_sort")])
    # `identifier` covers masterIdentifier (the uniqueId) and identifier (the logical id, a
    # urn:uuid): a UUID may be either; values separated by commas are alternatives.
    given = [
        (s, v)
        for raw in request.GET.getlist("identifier")
        for s, _, v in (i.rpartition("|") for i in raw.split(",") if i)
    ]
    unique_ids = {unique_id_of({"system": s, "value": v}) for s, v in given}
    logical = {v.removeprefix("urn:uuid:") for _, v in given if v.startswith("urn:uuid:")}
    query = DocumentQuery(
        statuses=frozenset(statuses) or frozenset({DocumentStatus.DELETED}),
        type_codes=_tokens(request, "type"),
        class_codes=_tokens(request, "category"),
        practice_setting_codes=_tokens(request, "setting"),
        healthcare_facility_type_codes=_tokens(request, "facility"),
        format_codes=_tokens(request, "format"),
        event_codes=_token_groups(request, "event"),
        confidentiality_codes=_token_groups(request, "security-label"),
        creation_from=created_from,
        creation_to=created_to,
        registered_from=registered_from,
        registered_to=registered_to,
        service_start_from=period_from,
        service_stop_to=period_to,
        unique_ids=() if logical else tuple(unique_ids),
    )
    found = [v.document for v in document_search_rows(caller=caller, record=record, query=query)]
    if logical:
        found = [d for d in found if d.unique_id in unique_ids or str(d.logical_id) in logical]
    related = set(_token_values(request, "related"))
    if related:
        found = [d for d in found if related & set(d.reference_ids)]
    # The order of `date`, DocumentReference.date: the registration time.
    found.sort(key=lambda d: (d.registered_at, d.pk), reverse=sort == "-date")
    page, next_link = _page(request, found)
    bundle = _searchset([document_reference(d) for d in page], request)
    if next_link:
        bundle["link"].append(next_link)
    return _json(bundle)


@fhir_view(READ, ["GET", "PATCH"])
def document_reference_read(
    request: HttpRequest, caller: Caller, patient: str, resource_id: str
) -> HttpResponse:
    if request.method == "PATCH":
        return _patch(request, caller, patient, resource_id)
    ins = _token_patient(patient)
    visible = document_get(
        caller=caller, entry_uuid=_current_entry_uuid(resource_id, ins), patient_id=ins.hl7()
    )
    return _json(document_reference(visible.document))


def _current_entry_uuid(resource_id: str, ins: Ins) -> str:
    """The entryUUID a DocumentReference or Binary id names now. An ITI-57 update gives the
    document a new one and keeps the old in its history (ADR 0001): a software that kept the
    old id finds the document as it is now, as SOAP's GetDocuments does. Only in the token
    patient's record; the access decision follows, as for any id."""
    entry_uuid = f"urn:uuid:{resource_id}"
    if DocumentEntry.objects.filter(entry_uuid=entry_uuid, patient_id=ins.hl7()).exists():
        return entry_uuid
    record = record_by_ins(ins)
    current = current_entry_uuids(record=record, entry_uuids=[entry_uuid]) if record is not None else set()
    return next(iter(current), entry_uuid)


def _token_patient(patient: str) -> Ins:
    """The patient the token is bound to, which every interaction but a search needs: SOAP takes
    it from the VIHF for ITI-41, 43, 57 and TD0.2, and only the Find queries, which name their
    patient, do without (mirrored by the DocumentReference and List searches)."""
    if not patient:
        raise Forbidden("the token must name the patient (patient_ins claim) for this interaction")
    return parse_hl7_ins(patient)


@fhir_view(READ, ["GET"])
def binary(request: HttpRequest, caller: Caller, patient: str, resource_id: str) -> HttpResponse:
    """ITI-68: the document's bytes, exactly as submitted (or as a Binary resource)."""
    ins = _token_patient(patient)
    document = (
        DocumentEntry.objects.filter(entry_uuid=_current_entry_uuid(resource_id, ins))
        .only("unique_id")
        .first()
    )
    if document is None:
        raise NotFound("document not found")
    retrieved = document_retrieve(
        caller=caller,
        unique_id=document.unique_id,
        patient_id=ins.hl7(),
        content_only=True,
    )
    if FHIR_JSON in request.META.get("HTTP_ACCEPT", ""):
        return _json(
            {
                "resourceType": "Binary",
                "id": resource_id,
                "contentType": retrieved.document.mime_type,
                "data": base64.b64encode(retrieved.content).decode(),
            }
        )
    response = HttpResponse(retrieved.content, content_type=retrieved.document.mime_type)
    response["Content-Disposition"] = "attachment"
    return response


LIST_SEARCH_PARAMS: Final = frozenset(
    {
        "patient",
        "patient.identifier",
        "identifier",
        "code",
        "date",
        "status",
        "designationType",
        "_count",
        "_getpagesoffset",
        "_format",
    }
)
LIST_KINDS: Final = frozenset({"submissionset", "folder"})
LIST_STATUS_PARAMS: Final = {
    "current": {DocumentStatus.APPROVED, DocumentStatus.ARCHIVED},
    "retired": {DocumentStatus.DEPRECATED},
    "entered-in-error": set(),  # deleted: never shown
}


@dataclass(frozen=True)
class _ListFilter:
    """ITI-66's parameters (each one narrows; values of one parameter are alternatives)."""

    kinds: frozenset[str]
    statuses: frozenset[str]
    identifiers: tuple[tuple[str, str], ...]
    date_from: dt.datetime | None
    date_to: dt.datetime | None
    designation: tuple[CodeMatch, ...]

    def keeps(self, kind: str, item: SubmissionSet | Folder, date: dt.datetime, codes: list[Any]) -> bool:
        return (
            kind in self.kinds
            and item.availability_status in self.statuses
            and (
                not self.identifiers
                or any(
                    v == item.entry_uuid or unique_id_of({"system": s, "value": v}) == item.unique_id
                    for s, v in self.identifiers
                )
            )
            and (self.date_from is None or date >= self.date_from)
            and (self.date_to is None or date < self.date_to)
            and (not self.designation or any_code_matches(self.designation, codes))
        )


def _list_filter(request: HttpRequest) -> _ListFilter:
    """The List search's parameters, refused with 422 when unknown or unreadable (they were all
    ignored, and echoed in the self link as if applied)."""
    unknown = set(request.GET) - LIST_SEARCH_PARAMS
    if unknown:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"unsupported search parameter {', '.join(sorted(unknown))}", "")]
        )
    kinds = set(_token_values(request, "code")) or set(LIST_KINDS)
    if kinds - LIST_KINDS:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.INVALID,
                    f"code is submissionset or folder, not {min(kinds - LIST_KINDS)}",
                    "code",
                )
            ]
        )
    statuses: set[str] = set()
    for status in _token_values(request, "status") or ("current", "retired"):
        if status not in LIST_STATUS_PARAMS:
            raise ValidationFailed([Problem(ErrorCode.INVALID, f"unknown status {status}", "status")])
        statuses |= {s.value for s in LIST_STATUS_PARAMS[status]}
    date_from, date_to = _date_range(request, "date")
    return _ListFilter(
        kinds=frozenset(kinds),
        statuses=frozenset(statuses),
        identifiers=tuple(
            (s, v)
            for raw in request.GET.getlist("identifier")
            for s, _, v in (i.rpartition("|") for i in raw.split(",") if i)
        ),
        date_from=date_from,
        date_to=date_to,
        designation=_tokens(request, "designationType"),
    )


@fhir_view(READ, ["GET"])
def lists(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    """ITI-66: the patient's submission sets and folders the caller may see."""
    wanted = _list_filter(request)
    record = _patient_record(request, caller, patient)
    contents = record_contents(
        caller=caller,
        record=record,
        statuses=frozenset(DocumentStatus) - {DocumentStatus.DELETED},
        audit_label="FindDocumentLists",
    )
    members: dict[str, list[str]] = {}
    for association in contents.associations:
        if association.association_type == AssociationType.HAS_MEMBER:
            members.setdefault(association.source_uuid, []).append(association.target_uuid)
    visible = {v.document.entry_uuid for v in contents.documents}

    def shown(container: str) -> list[str]:
        return [m for m in members.get(container, []) if m in visible]

    resources = [
        submission_set_list(s, shown(s.entry_uuid))
        for s in contents.submission_sets
        if wanted.keeps("submissionset", s, s.submission_time, [s.content_type_code or {}])
    ] + [
        folder_list(f, shown(f.entry_uuid))
        for f in contents.folders
        if wanted.keeps("folder", f, f.last_update_time, list(f.codes))
    ]
    page, next_link = _page(request, resources)
    bundle = _searchset(page, request)
    if next_link:
        bundle["link"].append(next_link)  # submission sets past the first page were unreachable
    return _json(bundle)


@fhir_view(PATIENT_READ, ["GET"])
def patients(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    """TD0.2: the patient's record status and the caller's rights, as a Patient search."""
    bound = _token_patient(patient)
    raw = request.GET.get("identifier", "")
    system, _, value = raw.rpartition("|")
    try:
        ins = parse_hl7_ins(f"{value}^^^&{system_oid(system)}&ISO^NH")
    except InvalidIns as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, exc.message, "identifier")]) from exc
    # As the VIHF's patient on SOAP, the token's patient is the only one this call may test:
    # any other INS, registered or not, gets the same refusal (nothing tells them apart).
    if bound != ins:
        raise ValidationFailed(
            [Problem(ErrorCode.FORBIDDEN, "the token is bound to another patient", "identifier")]
        )
    report = record_test(caller=caller, ins=ins)
    if report.state is RecordState.NONE:
        return _json(_searchset([], request, total=0))
    extensions: list[dict[str, Any]] = [
        {"url": f"{DMP_EXTENSIONS}dmp-status", "valueCode": report.state.value},
        {"url": f"{DMP_EXTENSIONS}dmp-authorisation", "valueCode": report.authorisation.value},
    ]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": f"urn:oid:{ins.oid}", "value": ins.value}],
        "extension": extensions,
    }
    # A blocked PS learns that the record exists and that it is blocked (SOAP's INTERDIT), and
    # nothing about the patient: no id to search by, no identity, no settings.
    if report.patient is not None:
        resource |= {
            "id": report.record_public_id,
            "name": [{"family": report.patient.family_name, "given": report.patient.given_names.split()}],
            "birthDate": report.patient.birth_date.isoformat(),
            "gender": {"M": "male", "F": "female"}.get(report.patient.sex, "unknown"),
        }
        extensions += [
            {"url": f"{DMP_EXTENSIONS}dmp-medecin-traitant", "valueBoolean": report.is_medecin_traitant},
            {"url": f"{DMP_EXTENSIONS}dmp-web-account", "valueBoolean": report.web_account_opened},
            {"url": f"{DMP_EXTENSIONS}dmp-minor", "valueBoolean": report.patient_is_minor},
            {"url": f"{DMP_EXTENSIONS}dmp-opposes-break-glass", "valueBoolean": report.opposes_break_glass},
            {"url": f"{DMP_EXTENSIONS}dmp-opposes-centre-15", "valueBoolean": report.opposes_centre_15},
        ]
        if report.closed_at is not None:
            extensions += [
                {"url": f"{DMP_EXTENSIONS}dmp-closed-at", "valueDateTime": report.closed_at.isoformat()},
                {"url": f"{DMP_EXTENSIONS}dmp-closure-reason", "valueCode": report.closure_reason},
            ]
    return _json(_searchset([resource], request, total=1))


@fhir_view(READ, ["GET"], every_profile=True)
def audit_events(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    """The caller's own actions (a PS sees its traces; the patient sees theirs on the portal),
    newest first, in pages linked by a cursor (the last event shown), not an offset: the reading
    itself is traced, and an offset would shift under new events."""
    try:
        count = min(MAX_COUNT, max(1, int(request.GET.get("_count", "50"))))
        cursor = request.GET.get("_before", "")
        before = parse_trace_cursor(cursor) if cursor else None
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "_count is an integer, _before a link this server gave", "_count")]
        ) from exc
    events = own_traces(caller=caller, before=before, limit=count + 1)
    events, more = events[:count], len(events) > count
    resources = [
        {
            "resourceType": "AuditEvent",
            "id": f"{e.chain}-{e.sequence}",
            "type": {"system": "https://opendmp.example/fhir/CodeSystem/audit-action", "code": str(e.action)},
            "recorded": e.occurred_at.isoformat(),
            "outcome": "0" if e.outcome == "success" else "4",
            "agent": [
                {"who": {"identifier": {"value": e.actor_id}, "display": e.actor_name}, "requestor": True}
            ],
            "source": {"observer": {"display": "OpenDMP"}},
            "entity": [{"what": {"identifier": {"value": e.document_unique_id or e.patient_ins or "-"}}}],
        }
        for e in events
    ]
    bundle = _searchset(resources, request)
    if more:
        bundle["link"].append(
            _next_link(request, "_before", trace_cursor(events[-1].occurred_at, events[-1].pk))
        )
    return _json(bundle)


def _server_patient(patient: str) -> Callable[[str], str | None]:
    """`Patient/<id>` may only name the record of the patient the token is bound to."""

    def resolve(resource_id: str) -> str | None:
        record = record_by_ins(parse_hl7_ins(patient)) if patient else None
        return patient if record is not None and str(record.public_id) == resource_id else None

    return resolve


def _simplified_publish(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    """ITI-105: one DocumentReference with its bytes; answers 201 with the registered resource."""
    ins = _token_patient(patient)
    try:
        payload = _json_body(request)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "the body is not JSON", "DocumentReference")]
        ) from exc
    software = caller.actor.software
    submission = parse_simplified_publish(
        payload, _server_patient(patient), source_id=software.identifier if software else ""
    )
    registered = submission_register(
        caller=caller, submission=submission, expected_ins=ins, written=entry_texts.store_new
    )
    document = document_get(caller=caller, entry_uuid=registered.documents[0].entry_uuid).document
    response = _json(document_reference(document), status=201)
    response["Location"] = f"DocumentReference/{fhir_id(document.entry_uuid)}"
    return response


@fhir_view(WRITE, ["POST"])
def transaction(request: HttpRequest, caller: Caller, patient: str) -> HttpResponse:
    """ITI-65 at the base URL (POST of a transaction Bundle)."""
    ins = _token_patient(patient)
    try:
        payload = _json_body(request)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "the body is not JSON", "Bundle")]) from exc
    if not isinstance(payload, dict) or payload.get("resourceType") != "Bundle":
        raise ValidationFailed([Problem(ErrorCode.INVALID, "a transaction Bundle is expected", "Bundle")])
    submission = parse_bundle(payload, _server_patient(patient))
    registered = submission_register(
        caller=caller, submission=submission, expected_ins=ins, written=entry_texts.store_new
    )
    entries = transaction_response(
        payload,
        fhir_id(registered.submission_set.entry_uuid),
        [fhir_id(registered.id_map[d.entry_uuid]) for d in submission.documents],
    )
    return _json({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


# --- PATCH (TD3.3a-d) --------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValidationFailed([Problem(ErrorCode.INVALID, f"bad JSON pointer {path!r}", "path")])
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 add / remove / replace / test on a copy (enough for the PATCHes PDSm defines)."""
    if not isinstance(operations, list):
        raise ValidationFailed([Problem(ErrorCode.INVALID, "a JSON Patch is an array of operations", "")])
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in {"add", "remove", "replace", "test"}:
            raise ValidationFailed([Problem(ErrorCode.INVALID, "unsupported JSON Patch operation", "op")])
        *parents, last = _pointer(str(operation.get("path", "")))
        target = result
        try:
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            op = operation["op"]
            if isinstance(target, list):
                index = len(target) if last == "-" else int(last)
                if op == "add":
                    target.insert(index, operation["value"])
                elif op == "remove":
                    del target[index]
                elif op == "replace":
                    target[index] = operation["value"]
                elif target[index] != operation["value"]:
                    raise ValidationFailed(
                        [Problem(ErrorCode.CONFLICT, "JSON Patch test failed", operation["path"])]
                    )
            elif op in {"add", "replace"}:
                target[last] = operation["value"]
            elif op == "remove":
                del target[last]
            elif target.get(last) != operation["value"]:
                raise ValidationFailed(
                    [Problem(ErrorCode.CONFLICT, "JSON Patch test failed", operation["path"])]
                )
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            # AttributeError: a path that goes through a string or a number.
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, f"JSON Patch path not found: {operation.get('path')}", "path")]
            ) from exc
    return result


def _labels(resource: dict[str, Any]) -> set[str]:
    return {
        str(c.get("code", ""))
        for label in resource.get("securityLabel") or []
        for c in label.get("coding") or []
    }


def _coded_labels(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (system_oid(str(c.get("system", ""))), str(c.get("code", "")))
        for label in resource.get("securityLabel") or []
        for c in label.get("coding") or []
    }


def _other_labels(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """The labels a PATCH may not change: neither the DMP codes nor N, which PDSm's TD3.3a/b
    patches replace with a DMP code (masking) or put back in its place (unmasking)."""
    return sorted(
        (str(c.get("system", "")), str(c.get("code", "")))
        for label in resource.get("securityLabel") or []
        for c in label.get("coding") or []
        if c.get("code") not in Confidentiality.DMP_CODES
        and not (
            c.get("code") == Confidentiality.NORMAL
            and system_oid(str(c.get("system", ""))) == Confidentiality.HL7_SYSTEM
        )
    )


def _other_extensions(resource: dict[str, Any]) -> list[Any]:
    return [x for x in resource.get("extension") or [] if x.get("url") != IS_ARCHIVED_URL]


def _archived(resource: dict[str, Any]) -> bool:
    return any(
        x.get("url") == IS_ARCHIVED_URL and x.get("valueBoolean") for x in resource.get("extension") or []
    )


def _patch(request: HttpRequest, caller: Caller, patient: str, resource_id: str) -> HttpResponse:
    ins = _token_patient(patient)
    if request.content_type not in {"application/json-patch+json", "application/json"}:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "PATCH needs application/json-patch+json", "Content-Type")]
        )
    try:
        operations = _json_body(request)
    except ValueError as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "the body is not JSON", "")]) from exc
    entry_uuid = f"urn:uuid:{resource_id}"
    current = document_get(caller=caller, entry_uuid=entry_uuid, patient_id=ins.hl7()).document
    before = document_reference(current)
    after = apply_json_patch(before, operations)
    # What the patch made must still be a DocumentReference before its labels and extensions
    # are read (a securityLabel patched into a string is an OperationOutcome, not a crash).
    validate_resource(DocumentReference, after)
    allowed = {"securityLabel", "status", "extension"}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if changed - allowed:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.INVALID,
                    f"only {', '.join(sorted(allowed))} may be patched",
                    ",".join(sorted(changed - allowed)),
                )
            ]
        )
    # As over ITI-57, what the DMP cannot change is refused, not silently kept as it was.
    if _other_labels(after) != _other_labels(before):
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, "only the DMP confidentiality codes may change", "securityLabel")]
        )
    if _other_extensions(after) != _other_extensions(before):
        raise ValidationFailed([Problem(ErrorCode.INVALID, "only isArchived may change", "extension")])
    wanted, present = _labels(after), _labels(before)
    status: DocumentStatus | None = None
    if after.get("status") != before.get("status"):
        if after.get("status") != "entered-in-error":
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, "status may only become entered-in-error", "status")]
            )
        status = DocumentStatus.DELETED  # whatever the archive flag says: deleted either way
    elif _archived(after) != _archived(before):
        status = DocumentStatus.ARCHIVED if _archived(after) else DocumentStatus.APPROVED
    flags = confidentiality_changes(present, wanted)
    if not flags and status is None:
        if _coded_labels(after) != _coded_labels(before):
            # The labels asked for are not the document's (N removed with no DMP code in its
            # place): answering 200 with the document unchanged would say the change was made.
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, "the patch changes nothing the DMP stores", "securityLabel")]
            )
        return _json(before)  # already as asked (a display or the order aside)
    # Labels and status change together, as one new metadata version, or not at all.
    (updated,) = documents_update(
        caller=caller,
        changes=[MetadataChange(entry_uuid=entry_uuid, confidentiality=flags, status=status)],
        patient=ins,
        written=entry_texts.refresh,
    )
    return _json(document_reference(updated))
