"""ITI-18 Registry Stored Query: parameters -> domain selectors -> ebRIM AdhocQueryResponse.

Every result comes from a selector that already applied the access decision point, so a
hidden document is simply absent, and so are the submission sets, folders and associations
that would reveal it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final

from lxml import etree

from dmp.access.actors import AccessMode, Caller
from dmp.access.policy import DocumentStatus
from dmp.common.errors import ErrorCode, NotFound, Problem, ValidationFailed
from dmp.documents.metadata import (
    AssociationInput,
    Author,
    CodedValue,
    DocumentInput,
    FolderInput,
    SubmissionSetInput,
    person_display_name,
)
from dmp.documents.models import Association, DocumentEntry, Folder, SubmissionSet
from dmp.documents.rows import DocumentRow, FactsRow
from dmp.documents.selectors import (
    CodeMatch,
    DocumentQuery,
    RecordContents,
    VisibleDocument,
    any_code_matches,
    author_matches,
    current_entry_uuids,
    document_rows_in_full,
    document_search_facts,
    document_search_rows,
    record_contents_rows,
)
from dmp.identity.ins import Ins, InvalidIns, parse_hl7_ins
from dmp.ihe.xds import ebrim, soap
from dmp.ihe.xds.ebrim import QUERY, RIM, RS, RegistryExtras, q
from dmp.records.access import record_and_grants_by_ins, record_by_ins
from dmp.records.models import Record


class StoredQuery:
    FIND_DOCUMENTS: Final = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    FIND_SUBMISSION_SETS: Final = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
    FIND_FOLDERS: Final = "urn:uuid:958f3006-baad-4929-a4de-ff1114824431"
    GET_ALL: Final = "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3"
    GET_DOCUMENTS: Final = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    GET_FOLDERS: Final = "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4"
    GET_ASSOCIATIONS: Final = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
    GET_DOCUMENTS_AND_ASSOCIATIONS: Final = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
    GET_SUBMISSION_SETS: Final = "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
    GET_SUBMISSION_SET_AND_CONTENTS: Final = "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"
    GET_FOLDER_AND_CONTENTS: Final = "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7"
    GET_FOLDERS_FOR_DOCUMENT: Final = "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578"
    GET_RELATED_DOCUMENTS: Final = "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6"


_VALUE_RE = re.compile(r"'((?:[^']|'')*)'|([^,()\s]+)")


def parse_values(raw: Iterable[str]) -> list[str]:
    """Slot values in stored-query syntax: 'a', ('a','b'), bare numbers."""
    values: list[str] = []
    for text in raw:
        for quoted, bare in _VALUE_RE.findall(text.strip()):
            values.append(quoted.replace("''", "'") if quoted or not bare else bare)
    return values


@dataclass(frozen=True)
class QueryRequest:
    query_id: str
    return_type: str  # LeafClass | ObjectRef
    # The values of each slot of a name, slot by slot: for most parameters they are merged
    # (`values`); several slots of event codes, confidentiality codes or folder codes are AND'd.
    slots: dict[str, list[list[str]]]

    def values(self, name: str) -> list[str]:
        return [value for group in self.slots.get(name, []) for value in group]

    def groups(self, name: str) -> list[list[str]]:
        return [group for group in self.slots.get(name, []) if group]

    def one(self, name: str, *, required: bool = False) -> str:
        """A single-valued parameter (ITI-18 §3.18.4.1.2.3.7): repeated, or missing when
        required, is XDSStoredQueryParamNumber rather than a silent choice."""
        listed = self.values(name)
        if len(listed) > 1:
            raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, f"{name} takes a single value", name)])
        if required and not listed:
            raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, f"{name} is required", name)])
        return listed[0] if listed else ""


def parse_query(request: etree._Element) -> QueryRequest:
    option = request.find(q(QUERY, "ResponseOption"))
    adhoc = request.find(q(RIM, "AdhocQuery"))
    if adhoc is None:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "AdhocQuery is required", "AdhocQueryRequest")])
    return_type = option.get("returnType", "LeafClass") if option is not None else "LeafClass"
    if return_type not in {"LeafClass", "ObjectRef"}:
        raise ValidationFailed([Problem(ErrorCode.INVALID, "returnType must be LeafClass or ObjectRef", "")])
    slots: dict[str, list[list[str]]] = {}
    for name, raw in ebrim.slot_lists(adhoc):
        slots.setdefault(name, []).append(parse_values(raw))
    return QueryRequest(query_id=adhoc.get("id", ""), return_type=return_type, slots=slots)


# --- converting registry rows to the metadata shapes ------------------------------------------


# The same few codes come back on every row of every answer; CodedValue is immutable, so each is
# validated once per process (bounded).
@lru_cache(maxsize=4096)
def _code(code: str, scheme: str, display: str) -> CodedValue:
    return CodedValue(code=code or "?", scheme=scheme, display=display)


def _codes(payload: list[dict[str, str]]) -> tuple[CodedValue, ...]:
    return tuple(_code(c.get("code", "?"), c.get("scheme", ""), c.get("display", "")) for c in payload)


def _authors(payload: list[dict[str, object]]) -> tuple[Author, ...]:
    return tuple(Author.model_validate(a) for a in payload)


def document_input(document: DocumentEntry) -> DocumentInput:
    return DocumentInput(
        entry_uuid=document.entry_uuid,
        unique_id=document.unique_id,
        mime_type=document.mime_type,
        content=b"",
        class_code=_code(document.class_code, document.class_code_scheme, document.class_code_display),
        type_code=_code(document.type_code, document.type_code_scheme, document.type_code_display),
        format_code=_code(document.format_code, document.format_code_scheme, document.format_code_display),
        healthcare_facility_type_code=_code(
            document.healthcare_facility_type_code,
            document.healthcare_facility_type_code_scheme,
            document.healthcare_facility_type_code_display,
        ),
        practice_setting_code=_code(
            document.practice_setting_code,
            document.practice_setting_code_scheme,
            document.practice_setting_code_display,
        ),
        confidentiality_codes=_codes(document.confidentiality_codes),
        event_codes=_codes(document.event_codes),
        title=document.title,
        comments=document.comments,
        language_code=document.language_code,
        creation_time=document.creation_time,
        service_start_time=document.service_start_time,
        service_stop_time=document.service_stop_time,
        patient_id=document.patient_id,
        source_patient_id=document.source_patient_id,
        source_patient_info=tuple(document.source_patient_info),
        legal_authenticator=document.legal_authenticator,
        reference_ids=tuple(document.reference_ids),
        authors=_authors(document.authors),
    )


# A row's JSON columns come as their text; a patient's documents repeat a few texts (the same
# authors, confidentiality code and empty lists), decoded and validated once per process (bounded).
@lru_cache(maxsize=4096)
def _codes_of(text: str) -> tuple[CodedValue, ...]:
    return _codes(json.loads(text))


@lru_cache(maxsize=4096)
def _authors_of(text: str) -> tuple[Author, ...]:
    return _authors(json.loads(text))


@lru_cache(maxsize=4096)
def _strings_of(text: str) -> tuple[str, ...]:
    return tuple(str(value).strip() for value in json.loads(text))


def stored_entry(row: DocumentRow) -> tuple[ebrim.StoredEntry, RegistryExtras]:
    """A row as the registry answers it: what `document_input` would validate into a
    DocumentInput, without validating again what was validated when stored (`strip()` as that
    validation does, a no-op on what the services stored)."""
    entry = ebrim.StoredEntry(
        entry_uuid=row.entry_uuid.strip(),
        unique_id=row.unique_id.strip(),
        mime_type=row.mime_type.strip(),
        class_code=_code(row.class_code, row.class_code_scheme, row.class_code_display),
        type_code=_code(row.type_code, row.type_code_scheme, row.type_code_display),
        format_code=_code(row.format_code, row.format_code_scheme, row.format_code_display),
        healthcare_facility_type_code=_code(
            row.healthcare_facility_type_code,
            row.healthcare_facility_type_code_scheme,
            row.healthcare_facility_type_code_display,
        ),
        practice_setting_code=_code(
            row.practice_setting_code, row.practice_setting_code_scheme, row.practice_setting_code_display
        ),
        confidentiality_codes=_codes_of(row.confidentiality_codes_json),
        event_codes=_codes_of(row.event_codes_json),
        title=row.title.strip(),
        comments=row.comments.strip(),
        language_code=row.language_code.strip(),
        creation_time=row.creation_time,
        service_start_time=row.service_start_time,
        service_stop_time=row.service_stop_time,
        patient_id=row.patient_id.strip(),
        source_patient_id=row.source_patient_id.strip(),
        source_patient_info=_strings_of(row.source_patient_info_json),
        legal_authenticator=row.legal_authenticator.strip(),
        reference_ids=_strings_of(row.reference_ids_json),
        authors=_authors_of(row.authors_json),
    )
    extras = RegistryExtras(
        status=row.availability_status,
        repository_unique_id=row.repository_unique_id,
        hash_sha1=row.hash_sha1,
        size=row.size,
        logical_id=f"urn:uuid:{row.logical_id}",
        version=str(row.version),
    )
    return entry, extras


def subset_input(subset: SubmissionSet) -> SubmissionSetInput:
    return SubmissionSetInput(
        entry_uuid=subset.entry_uuid,
        unique_id=subset.unique_id,
        source_id=subset.source_id,
        submission_time=subset.submission_time,
        content_type_code=CodedValue.model_validate(subset.content_type_code or {"code": "?"}),
        patient_id=subset.patient_id,
        authors=_authors(subset.authors),
        intended_recipients=tuple(subset.intended_recipients),
        title=subset.title,
        comments=subset.comments,
    )


def folder_input(folder: Folder) -> FolderInput:
    return FolderInput(
        entry_uuid=folder.entry_uuid,
        unique_id=folder.unique_id,
        patient_id=folder.patient_id,
        title=folder.title,
        comments=folder.comments,
        codes=_codes(folder.codes),
    )


def association_input(association: Association) -> AssociationInput:
    return AssociationInput(
        entry_uuid=association.entry_uuid,
        association_type=association.association_type,
        source=association.source_uuid,
        target=association.target_uuid,
        submission_set_status=association.submission_set_status,
    )


# --- running the queries ----------------------------------------------------------------------


def _short_status(status: str) -> str:
    return status.rsplit(":", 1)[-1]


def _statuses(values: list[str], where: str) -> frozenset[DocumentStatus]:
    if not values:
        raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, f"{where} is required", where)])
    known = {s.value: s for s in DocumentStatus}
    known |= {_short_status(s.value): s for s in DocumentStatus}
    statuses = set()
    for value in values:
        status = known.get(value)
        if status is None:
            raise ValidationFailed([Problem(ErrorCode.INVALID, f"unknown status {value!r}", where)])
        statuses.add(status)
    return frozenset(statuses)


def _time(values: list[str], where: str) -> dt.datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, f"{where} takes a single value", where)])
    try:
        return ebrim.parse_dtm(values[0])
    except ValueError as exc:
        raise ValidationFailed([Problem(ErrorCode.INVALID, str(exc), where)]) from exc


def _code_values(values: list[str]) -> tuple[CodeMatch, ...]:
    """ITI-18 coded values, `code^^scheme` or `code` alone (any scheme)."""
    matches = []
    for value in values:
        code, _, rest = value.partition("^")
        if code:
            matches.append(CodeMatch(code, rest.partition("^")[2].partition("^")[0]))
    return tuple(matches)


@dataclass(frozen=True)
class QueryContext:
    caller: Caller
    # The patient of the VIHF: every query is confined to that patient's record.
    patient: Ins | None


def _patient_for(context: QueryContext, patient_cx: str = "") -> Ins:
    """The patient a query is for: the one it names, which must be the VIHF's, or the VIHF's."""
    patient = context.patient
    if patient is None and context.caller.mode is not AccessMode.NORMAL:
        # An emergency opens the VIHF's patient's record only (as the PS portal ties it to one).
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.PATIENT_ID_MISMATCH,
                    f"the access mode {context.caller.mode.value} requires the VIHF to name the patient",
                    "PatientId",
                )
            ]
        )
    if patient_cx:
        try:
            asked = parse_hl7_ins(patient_cx)
        except InvalidIns as exc:
            raise ValidationFailed([Problem(ErrorCode.UNKNOWN_PATIENT, exc.message, "PatientId")]) from exc
        if patient is not None and asked != patient:
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.PATIENT_ID_MISMATCH,
                        "the query's patient differs from the VIHF's",
                        "PatientId",
                    )
                ]
            )
        patient = asked
    if patient is None:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.UNKNOWN_PATIENT, "no patient: the VIHF must name one (resource-id)", "PatientId"
                )
            ]
        )
    return patient


def _found(record: Record | None) -> Record:
    if record is None:
        raise ValidationFailed([Problem(ErrorCode.UNKNOWN_PATIENT, "no DMP for this patient", "PatientId")])
    return record


def _record_for(context: QueryContext, patient_cx: str = "") -> Record:
    return _found(record_by_ins(_patient_for(context, patient_cx)))


def _contents(
    context: QueryContext, record: Record, name: str, statuses: frozenset[DocumentStatus] | None = None
) -> RecordContents[DocumentRow]:
    try:
        return record_contents_rows(
            caller=context.caller,
            record=record,
            statuses=statuses or frozenset(DocumentStatus) - {DocumentStatus.DELETED},
            audit_label=name,
        )
    except NotFound as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.UNKNOWN_PATIENT, "no DMP for this patient", "PatientId")]
        ) from exc


@dataclass
class QueryResult:
    # FindDocuments reads the facts alone (`FactsRow`), its entries' texts being stored:
    # `in_full_where_unwritten` reads the full rows of those whose text is not.
    documents: Sequence[DocumentRow | FactsRow]
    submission_sets: list[SubmissionSet]
    folders: list[Folder]
    associations: list[Association]


def _empty() -> QueryResult:
    return QueryResult([], [], [], [])


def _find_documents(context: QueryContext, request: QueryRequest) -> QueryResult:
    # The caller's authorisations come with the record (one round trip fewer of every search).
    patient = _patient_for(context, request.one("$XDSDocumentEntryPatientId", required=True))
    read, grants = record_and_grants_by_ins(patient, context.caller.actor)
    record = _found(read)
    query = DocumentQuery(
        statuses=_statuses(request.values("$XDSDocumentEntryStatus"), "$XDSDocumentEntryStatus"),
        class_codes=_code_values(request.values("$XDSDocumentEntryClassCode")),
        type_codes=_code_values(request.values("$XDSDocumentEntryTypeCode")),
        practice_setting_codes=_code_values(request.values("$XDSDocumentEntryPracticeSettingCode")),
        healthcare_facility_type_codes=_code_values(
            request.values("$XDSDocumentEntryHealthcareFacilityTypeCode")
        ),
        format_codes=_code_values(request.values("$XDSDocumentEntryFormatCode")),
        event_codes=tuple(_code_values(g) for g in request.groups("$XDSDocumentEntryEventCodeList")),
        confidentiality_codes=tuple(
            _code_values(g) for g in request.groups("$XDSDocumentEntryConfidentialityCode")
        ),
        creation_from=_time(request.values("$XDSDocumentEntryCreationTimeFrom"), "CreationTimeFrom"),
        creation_to=_time(request.values("$XDSDocumentEntryCreationTimeTo"), "CreationTimeTo"),
        service_start_from=_time(
            request.values("$XDSDocumentEntryServiceStartTimeFrom"), "ServiceStartTimeFrom"
        ),
        service_start_to=_time(request.values("$XDSDocumentEntryServiceStartTimeTo"), "ServiceStartTimeTo"),
        service_stop_from=_time(
            request.values("$XDSDocumentEntryServiceStopTimeFrom"), "ServiceStopTimeFrom"
        ),
        service_stop_to=_time(request.values("$XDSDocumentEntryServiceStopTimeTo"), "ServiceStopTimeTo"),
        author_persons=tuple(v for v in request.values("$XDSDocumentEntryAuthorPerson") if v),
    )
    search = (
        document_search_rows if query.event_codes or query.confidentiality_codes else document_search_facts
    )
    try:
        found: Sequence[VisibleDocument[DocumentRow] | VisibleDocument[FactsRow]] = search(
            caller=context.caller, record=record, query=query, grants=grants
        )
    except NotFound as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.UNKNOWN_PATIENT, "no DMP for this patient", "PatientId")]
        ) from exc
    return QueryResult([v.document for v in found], [], [], [])


def _find_submission_sets(context: QueryContext, request: QueryRequest) -> QueryResult:
    record = _record_for(context, request.one("$XDSSubmissionSetPatientId", required=True))
    statuses = {
        s.value for s in _statuses(request.values("$XDSSubmissionSetStatus"), "$XDSSubmissionSetStatus")
    }
    authors = [v for v in request.values("$XDSSubmissionSetAuthorPerson") if v]
    contents = _contents(context, record, "FindSubmissionSets")
    since = _time(request.values("$XDSSubmissionSetSubmissionTimeFrom"), "SubmissionTimeFrom")
    until = _time(request.values("$XDSSubmissionSetSubmissionTimeTo"), "SubmissionTimeTo")
    sources = set(request.values("$XDSSubmissionSetSourceId"))
    content_types = _code_values(request.values("$XDSSubmissionSetContentType"))
    subsets = [
        s
        for s in contents.submission_sets
        if s.availability_status in statuses
        and (since is None or s.submission_time >= since)
        and (until is None or s.submission_time < until)
        and (not authors or any(_authored_by(s, pattern) for pattern in authors))
        and (not sources or s.source_id in sources)
        and (not content_types or any_code_matches(content_types, [s.content_type_code or {}]))
    ]
    return QueryResult([], subsets, [], [])


def _authored_by(subset: SubmissionSet, pattern: str) -> bool:
    """$XDSSubmissionSetAuthorPerson, read as $XDSDocumentEntryAuthorPerson is (`author_matches`)."""
    for author in subset.authors:
        name = person_display_name(str(author.get("family_name", "")), str(author.get("given_name", "")))
        if author_matches(pattern, person_id=str(author.get("person_id", "")), person_name=name):
            return True
    return False


def _find_folders(context: QueryContext, request: QueryRequest) -> QueryResult:
    record = _record_for(context, request.one("$XDSFolderPatientId", required=True))
    statuses = {
        _short_status(s.value) for s in _statuses(request.values("$XDSFolderStatus"), "$XDSFolderStatus")
    }
    contents = _contents(context, record, "FindFolders")
    groups = [_code_values(g) for g in request.groups("$XDSFolderCodeList")]
    folders = [
        f
        for f in contents.folders
        if _short_status(f.availability_status) in statuses
        and all(any_code_matches(group, f.codes) for group in groups)
    ]
    return QueryResult([], [], folders, [])


def _get_all(context: QueryContext, request: QueryRequest) -> QueryResult:
    record = _record_for(context, request.one("$patientId", required=True))
    statuses = _statuses(request.values("$XDSDocumentEntryStatus"), "$XDSDocumentEntryStatus")
    contents = _contents(context, record, "GetAll", statuses)
    return QueryResult(
        [v.document for v in contents.documents],
        contents.submission_sets,
        contents.folders,
        contents.associations,
    )


def _ids(request: QueryRequest, uuid_param: str, unique_param: str) -> tuple[set[str], set[str]]:
    uuids, uniques = set(request.values(uuid_param)), set(request.values(unique_param))
    if bool(uuids) == bool(uniques):
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.PARAM_NUMBER, f"exactly one of {uuid_param} and {unique_param} is required", ""
                )
            ]
        )
    return uuids, uniques


def _record_contents(context: QueryContext, name: str) -> RecordContents[DocumentRow]:
    return _contents(context, _record_for(context), name)


def _named_documents(
    context: QueryContext, request: QueryRequest, name: str
) -> tuple[RecordContents[DocumentRow], list[DocumentRow]]:
    """The record's contents and, among its documents the caller may see, those that
    $XDSDocumentEntryEntryUUID or $XDSDocumentEntryUniqueId name. An entryUUID an ITI-57 update
    replaced still names its document (ADR 0001): the old id is looked up only when missing."""
    uuids, uniques = _ids(request, "$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId")
    record = _record_for(context)
    contents = _contents(context, record, name)
    if uuids - {v.document.entry_uuid for v in contents.documents}:
        uuids |= current_entry_uuids(record=record, entry_uuids=uuids)
    documents = [
        v.document
        for v in contents.documents
        if v.document.entry_uuid in uuids or v.document.unique_id in uniques
    ]
    return contents, documents


def _get_documents(
    context: QueryContext, request: QueryRequest, *, associations: bool = False
) -> QueryResult:
    contents, documents = _named_documents(context, request, "GetDocuments")
    found = {d.entry_uuid for d in documents}
    linked = (
        [a for a in contents.associations if a.source_uuid in found or a.target_uuid in found]
        if associations
        else []
    )
    return QueryResult(documents, [], [], linked)


def _get_folders(context: QueryContext, request: QueryRequest) -> QueryResult:
    uuids, uniques = _ids(request, "$XDSFolderEntryUUID", "$XDSFolderUniqueId")
    contents = _record_contents(context, "GetFolders")
    return QueryResult(
        [], [], [f for f in contents.folders if f.entry_uuid in uuids or f.unique_id in uniques], []
    )


def _get_associations(context: QueryContext, request: QueryRequest) -> QueryResult:
    uuids = set(request.values("$uuid"))
    if not uuids:
        raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, "$uuid is required", "$uuid")])
    contents = _record_contents(context, "GetAssociations")
    return QueryResult(
        [], [], [], [a for a in contents.associations if a.source_uuid in uuids or a.target_uuid in uuids]
    )


def _members(contents: RecordContents[DocumentRow], container: str) -> set[str]:
    return {
        a.target_uuid
        for a in contents.associations
        if a.source_uuid == container
        and a.association_type == "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    }


def _get_submission_sets(context: QueryContext, request: QueryRequest) -> QueryResult:
    uuids = set(request.values("$uuid"))
    if not uuids:
        raise ValidationFailed([Problem(ErrorCode.PARAM_NUMBER, "$uuid is required", "$uuid")])
    contents = _record_contents(context, "GetSubmissionSets")
    subsets = [s for s in contents.submission_sets if _members(contents, s.entry_uuid) & uuids]
    chosen = {s.entry_uuid for s in subsets}
    links = [a for a in contents.associations if a.source_uuid in chosen and a.target_uuid in uuids]
    return QueryResult([], subsets, [], links)


def _container_and_contents(context: QueryContext, request: QueryRequest, *, folder: bool) -> QueryResult:
    if folder:
        uuids, uniques = _ids(request, "$XDSFolderEntryUUID", "$XDSFolderUniqueId")
    else:
        uuids, uniques = _ids(request, "$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId")
    contents = _record_contents(context, "GetFolderAndContents" if folder else "GetSubmissionSetAndContents")
    containers: list[SubmissionSet] | list[Folder] = contents.folders if folder else contents.submission_sets
    chosen = [c for c in containers if c.entry_uuid in uuids or c.unique_id in uniques]
    if not chosen:
        return _empty()
    container = chosen[0]
    members = _members(contents, container.entry_uuid)
    formats = _code_values(request.values("$XDSDocumentEntryFormatCode"))
    confidentiality = _code_values(request.values("$XDSDocumentEntryConfidentialityCode"))
    documents = [
        v.document
        for v in contents.documents
        if v.document.entry_uuid in members
        and (not formats or any_code_matches(formats, [_format_of(v.document)]))
        and (not confidentiality or any_code_matches(confidentiality, v.document.confidentiality_codes))
    ]
    shown = {d.entry_uuid for d in documents} | {container.entry_uuid}
    folders = [f for f in contents.folders if f.entry_uuid in members]
    shown |= {f.entry_uuid for f in folders}
    associations = [a for a in contents.associations if a.source_uuid in shown and a.target_uuid in shown]
    if folder:
        return QueryResult(documents, [], [container], associations)  # type: ignore[list-item]
    return QueryResult(documents, [container], folders, associations)  # type: ignore[list-item]


def _format_of(document: DocumentRow) -> dict[str, str]:
    return {"code": document.format_code, "scheme": document.format_code_scheme}


def _get_folders_for_document(context: QueryContext, request: QueryRequest) -> QueryResult:
    contents, named = _named_documents(context, request, "GetFoldersForDocument")
    documents = {d.entry_uuid for d in named}
    folders = [f for f in contents.folders if _members(contents, f.entry_uuid) & documents]
    return QueryResult([], [], folders, [])


def _get_related_documents(context: QueryContext, request: QueryRequest) -> QueryResult:
    types = set(request.values("$AssociationTypes"))
    if not types:
        raise ValidationFailed(
            [Problem(ErrorCode.PARAM_NUMBER, "$AssociationTypes is required", "$AssociationTypes")]
        )
    contents, named = _named_documents(context, request, "GetRelatedDocuments")
    start = {d.entry_uuid for d in named}
    if not start:
        return _empty()
    links = [
        a
        for a in contents.associations
        if a.association_type in types and (a.source_uuid in start or a.target_uuid in start)
    ]
    if not links:
        return _empty()
    related = start | {a.source_uuid for a in links} | {a.target_uuid for a in links}
    return QueryResult(
        [v.document for v in contents.documents if v.document.entry_uuid in related], [], [], links
    )


_HANDLERS: dict[str, Callable[[QueryContext, QueryRequest], QueryResult]] = {
    StoredQuery.FIND_DOCUMENTS: _find_documents,
    StoredQuery.FIND_SUBMISSION_SETS: _find_submission_sets,
    StoredQuery.FIND_FOLDERS: _find_folders,
    StoredQuery.GET_ALL: _get_all,
    StoredQuery.GET_DOCUMENTS: _get_documents,
    StoredQuery.GET_FOLDERS: _get_folders,
    StoredQuery.GET_ASSOCIATIONS: _get_associations,
    StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS: lambda c, r: _get_documents(c, r, associations=True),
    StoredQuery.GET_SUBMISSION_SETS: _get_submission_sets,
    StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS: lambda c, r: _container_and_contents(c, r, folder=False),
    StoredQuery.GET_FOLDER_AND_CONTENTS: lambda c, r: _container_and_contents(c, r, folder=True),
    StoredQuery.GET_FOLDERS_FOR_DOCUMENT: _get_folders_for_document,
    StoredQuery.GET_RELATED_DOCUMENTS: _get_related_documents,
}


class UnknownQuery(ValidationFailed):
    def __init__(self, query_id: str) -> None:
        super().__init__([Problem(ErrorCode.UNSUPPORTED, f"unknown stored query {query_id!r}", "AdhocQuery")])


def run_query(context: QueryContext, request: QueryRequest) -> QueryResult:
    handler = _HANDLERS.get(request.query_id)
    if handler is None:
        raise UnknownQuery(request.query_id)
    return handler(context, request)


def _written(row: DocumentRow | FactsRow, texts: Mapping[int, tuple[str, str]]) -> bool:
    stored = texts.get(row.pk)
    return stored is not None and stored[0] == row.entry_uuid


def in_full_where_unwritten(result: QueryResult, texts: Mapping[int, tuple[str, str]]) -> QueryResult:
    """`result` with the full row of each entry read as its facts alone whose text is not stored
    for its version (`entry_texts`): the entries the answer writes from their rows."""
    unwritten = {d.pk: d for d in result.documents if isinstance(d, FactsRow) and not _written(d, texts)}
    if not unwritten:
        return result
    full = document_rows_in_full(list(unwritten.values()))
    documents = [full.get(d.pk) if d.pk in unwritten else d for d in result.documents]
    return replace(result, documents=[d for d in documents if d is not None])


def _entry(
    row: DocumentRow | FactsRow, texts: Mapping[int, tuple[str, str]]
) -> ebrim.RenderedEntry | tuple[ebrim.StoredEntry, RegistryExtras]:
    """`row` with the text stored for it (`entry_texts`) if that was written for this version of
    the entry, else as the entry to write."""
    if not _written(row, texts):
        if isinstance(row, FactsRow):
            raise TypeError("an entry without its text needs its full row: in_full_where_unwritten")
        return stored_entry(row)
    # Positional: 50 per answer.
    return ebrim.RenderedEntry(
        row.entry_uuid.strip(), row.mime_type.strip(), row.availability_status, texts[row.pk][1]
    )


def query_response(
    result: QueryResult, return_type: str, texts: Mapping[int, tuple[str, str]] | None = None
) -> tuple[etree._Element, dict[str, bytes]]:
    """The AdhocQueryResponse, and its registry objects as text to splice in (`soap.encode`).
    `texts` are the stored texts of the documents' entries (`entry_texts.texts_of`); an entry
    found as its facts alone and without its text is read in full and written."""
    response = etree.Element(
        q(QUERY, "AdhocQueryResponse"),
        nsmap={"query": QUERY, "rim": RIM, "rs": RS},
        status=ebrim.RESPONSE_SUCCESS,
    )
    object_list = etree.SubElement(response, q(RIM, "RegistryObjectList"))
    if return_type == "ObjectRef":
        identifiers = [d.entry_uuid for d in result.documents]
        identifiers += [s.entry_uuid for s in result.submission_sets] + [f.entry_uuid for f in result.folders]
        identifiers += [a.entry_uuid for a in result.associations]
        for identifier in identifiers:
            etree.SubElement(object_list, q(RIM, "ObjectRef"), id=identifier)
        return response, {}
    texts = texts or {}
    objects = ebrim.RegistryObjects(
        documents=[_entry(d, texts) for d in in_full_where_unwritten(result, texts).documents],
        submission_sets=[
            (subset_input(s), _short_status(s.availability_status)) for s in result.submission_sets
        ],
        folders=[(folder_input(f), _short_status(f.availability_status)) for f in result.folders],
        associations=[
            (association_input(a), _short_status(a.availability_status)) for a in result.associations
        ],
    )
    key = secrets.token_hex(8)
    soap.splice_point(object_list, key)
    splices = {key: objects.text(ebrim.new_ids()).encode()}
    return response, splices
