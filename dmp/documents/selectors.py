"""Reads of the registry and repository, filtered by the access policy and audited.

Filters run in SQL on indexed columns of one record; the policy then removes what the
caller may not see. A hidden document is simply absent: counts, submission sets, folders
and associations never reveal it.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Generic, NamedTuple

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from dmp.access.actors import Caller
from dmp.access.config import current_matrix
from dmp.access.policy import Action, Decision, DocumentStatus, RecordFacts
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.audit.services import audit_alone
from dmp.common.errors import IntegrityError, NotFound
from dmp.documents.access import (
    AS_FACTS,
    AS_MODELS,
    AS_ROWS,
    D,
    DocumentReader,
    access_document,
    decide_facts,
    document_facts,
    document_subject,
    one_document,
    one_document_and_grants,
    one_with_authors,
    visible_documents,
    with_authors,
)
from dmp.documents.blobstore import default_blob_store
from dmp.documents.keys import data_key_for
from dmp.documents.models import (
    Association,
    AssociationType,
    Confidentiality,
    DocumentAuthor,
    DocumentEntry,
    DocumentEntryVersion,
    Folder,
    RecordKey,
    SubmissionSet,
)
from dmp.documents.rows import DocumentRow, FactsRow, in_record, row_values, rows_of
from dmp.records.access import Grants, RecordAccess, access_loaded_record, record_facts
from dmp.records.models import Record
from dmp.records.selectors import record_traces, traces_visible_to

MAX_RESULTS = 5000


class CodeMatch(NamedTuple):
    """A code a search asks for, in `scheme` only, or in any scheme when the request names none
    (ITI-18 `code` without `^^scheme`, FHIR `code` or `|code`): the same code can mean different
    things in two coding schemes."""

    code: str
    scheme: str = ""

    def matches(self, coded: Mapping[str, Any]) -> bool:
        """Whether a stored coded value ({"code", "scheme", …}) is this one (an empty code: any
        code of the scheme, as FHIR reads `system|`)."""
        return (not self.code or coded.get("code") == self.code) and (
            not self.scheme or coded.get("scheme") == self.scheme
        )


def any_code_matches(wanted: Iterable[CodeMatch], codes: Iterable[Mapping[str, Any]]) -> bool:
    """Whether one of the coded values `codes` is one of `wanted`."""
    codes = list(codes)
    return any(match.matches(coded) for match in wanted for coded in codes)


@dataclass(frozen=True)
class DocumentQuery:
    """FindDocuments parameters (ITI-18) / DocumentReference search (ITI-67), as plain data."""

    statuses: frozenset[DocumentStatus] = frozenset({DocumentStatus.APPROVED})
    # Any of the codes (OR).
    class_codes: tuple[CodeMatch, ...] = ()
    type_codes: tuple[CodeMatch, ...] = ()
    practice_setting_codes: tuple[CodeMatch, ...] = ()
    healthcare_facility_type_codes: tuple[CodeMatch, ...] = ()
    format_codes: tuple[CodeMatch, ...] = ()
    # Groups of codes: a document matches every group (AND) with any code of it (OR), as ITI-18
    # reads several slots of one name, and FHIR a parameter repeated (comma-separated within).
    event_codes: tuple[tuple[CodeMatch, ...], ...] = ()
    confidentiality_codes: tuple[tuple[CodeMatch, ...], ...] = ()
    creation_from: dt.datetime | None = None
    creation_to: dt.datetime | None = None
    service_start_from: dt.datetime | None = None
    service_start_to: dt.datetime | None = None
    service_stop_from: dt.datetime | None = None
    service_stop_to: dt.datetime | None = None
    registered_from: dt.datetime | None = None
    registered_to: dt.datetime | None = None
    author_persons: tuple[str, ...] = ()  # any of them (OR); SQL LIKE wildcards % and _
    unique_ids: tuple[str, ...] = ()
    entry_uuids: tuple[str, ...] = ()
    limit: int | None = MAX_RESULTS  # None: no cap (the patient's export takes everything)


@dataclass(frozen=True)
class VisibleDocument(Generic[D]):
    """A document the caller may see, as a model instance or (XDS stored queries) a `DocumentRow`."""

    document: D
    decision: Decision


@dataclass
class RecordContents(Generic[D]):
    """What a caller sees of a record: documents, their submission sets, folders, associations."""

    documents: list[VisibleDocument[D]] = field(default_factory=list)
    submission_sets: list[SubmissionSet] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)


def like_regex(pattern: str) -> str:
    """A SQL LIKE pattern (`%` any run, `_` one character) as an anchored regular expression."""
    return "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"


# An AuthorPerson pattern as clauses an author must all satisfy, each satisfied by any of its
# (column, regular expression) alternatives: one reading of the pattern, for the documents'
# author rows (SQL) and the submission sets' authors (in Python), so both filter alike.
AuthorClauses = tuple[tuple[tuple[str, str], ...], ...]


def author_clauses(pattern: str) -> AuthorClauses:
    """ITI-18 AuthorPerson: a LIKE pattern, case-insensitive, on the author's name ("FAMILY
    Given") or PS_IdNat; an XCN pattern (`id^FAMILY^Given^…`) on its id, family and given name."""
    if "^" not in pattern:
        return ((("person_name", like_regex(pattern)), ("person_id", like_regex(pattern))),)
    ident, family, given = ([*pattern.split("^"), "", ""])[:3]
    clauses: list[tuple[tuple[str, str], ...]] = []
    if ident.strip("%"):
        clauses.append((("person_id", like_regex(ident)),))
    if family.strip("%") or given.strip("%"):
        full = like_regex(f"{family or '%'} {given or '%'}")
        clauses.append((("person_name", full), ("person_name", like_regex(family or "%"))))
    return tuple(clauses)


@lru_cache(maxsize=256)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def author_matches(pattern: str, *, person_id: str, person_name: str) -> bool:
    """Whether one author, of that PS_IdNat and name ("FAMILY Given"), matches `pattern`."""
    values = {"person_id": person_id, "person_name": person_name}
    return all(
        any(_compiled(regex).match(values[column]) for column, regex in clause)
        for clause in author_clauses(pattern)
    )


def _author_filter(pattern: str) -> Q:
    """`author_clauses` on the author rows (one filter() call: the same row satisfies them all)."""
    query = Q()
    for clause in author_clauses(pattern):
        alternatives = Q()
        for column, regex in clause:
            alternatives |= Q(**{f"author_rows__{column}__iregex": regex})
        query &= alternatives
    return query


def _code_filter(column: str, wanted: Sequence[CodeMatch]) -> Q:
    """Any of `wanted` in the indexed code `column` and, where a match names one, its scheme."""
    matching = Q()
    for match in wanted:
        matching |= Q(
            **({column: match.code} if match.code else {}),
            **({f"{column}_scheme": match.scheme} if match.scheme else {}),
        )
    return matching


def _filtered(
    record: Record, query: DocumentQuery, documents: QuerySet[DocumentEntry, Any]
) -> QuerySet[DocumentEntry, Any]:
    """`documents` (every entry, as models or rows) matching `query` in `record`, newest first."""
    documents = in_record(documents, record, [s.value for s in query.statuses])
    exact = {"unique_id__in": query.unique_ids, "entry_uuid__in": query.entry_uuids}
    documents = documents.filter(**{key: value for key, value in exact.items() if value})
    coded = {
        "class_code": query.class_codes,
        "type_code": query.type_codes,
        "practice_setting_code": query.practice_setting_codes,
        "healthcare_facility_type_code": query.healthcare_facility_type_codes,
        "format_code": query.format_codes,
    }
    for column, wanted in coded.items():
        if wanted:
            documents = documents.filter(_code_filter(column, wanted))
    ranges = {
        "creation_time__gte": query.creation_from,
        "creation_time__lt": query.creation_to,
        "service_start_time__gte": query.service_start_from,
        "service_start_time__lt": query.service_start_to,
        "service_stop_time__gte": query.service_stop_from,
        "service_stop_time__lt": query.service_stop_to,
        "registered_at__gte": query.registered_from,
        "registered_at__lt": query.registered_to,
    }
    documents = documents.filter(**{key: value for key, value in ranges.items() if value is not None})
    if query.author_persons:
        matching = Q()
        for pattern in query.author_persons:
            matching |= _author_filter(pattern)
        documents = documents.filter(matching).distinct()
    return documents


def _json_code_filter(documents: Iterable[D], field_name: str, wanted: Sequence[CodeMatch]) -> list[D]:
    return [d for d in documents if any_code_matches(wanted, getattr(d, field_name))]


def _batch_reader(
    record: Record, query: DocumentQuery, reader: DocumentReader[D], size: int
) -> Callable[[int], list[D]]:
    """What reads the batch of `size` matching documents from an offset."""
    plain = reader.plain_batch
    if plain is not None and query == DocumentQuery(statuses=query.statuses, limit=query.limit):
        # Filtered by status alone (most FindDocuments): the reader has a statement ready.
        statuses = sorted(s.value for s in query.statuses)

        def plain_batch(offset: int) -> list[D]:
            return plain(record, statuses, offset, size)

        return plain_batch
    matching = _filtered(record, query, reader.documents())

    def batch(offset: int) -> list[D]:
        return reader.batch(matching, record, offset, size)

    return batch


def _visible_matching(
    caller: Caller, facts: RecordFacts, record: Record, query: DocumentQuery, reader: DocumentReader[D]
) -> list[tuple[D, Decision]]:
    """The first `query.limit` documents matching `query` that the caller may see. The limit
    counts what is shown: taken before the policy (and the filters on JSON codes), hidden
    documents took slots, and moving the date bounds told how many there were and when."""
    # limit=None: every one (the patient's export), read by batches.
    wanted = max(1, min(query.limit, MAX_RESULTS)) if query.limit is not None else sys.maxsize
    # A limit of 1 (the emergency page) must not read rows one query each.
    size = max(min(wanted, MAX_RESULTS), 200)
    found: list[tuple[D, Decision]] = []
    offset = 0
    read = _batch_reader(record, query, reader, size)
    while len(found) < wanted:
        batch = read(offset)
        rows = batch
        for group in query.event_codes:
            rows = _json_code_filter(rows, "event_codes", group)
        for group in query.confidentiality_codes:
            rows = _json_code_filter(rows, "confidentiality_codes", group)
        found += visible_documents(caller, facts, rows)
        if len(batch) < size:
            break
        offset += size
    return found[:wanted]


def _audit_query(caller: Caller, access: RecordAccess, action: AuditAction, count: int, query: str) -> None:
    audit_alone(
        caller=caller, action=action, subject=access.subject, details={"query": query, "count": count}
    )


def _search(
    caller: Caller, record: Record, query: DocumentQuery, reader: DocumentReader[D], grants: Grants | None
) -> list[VisibleDocument[D]]:
    access = access_loaded_record(
        caller,
        record=record,
        action=Action.RECORD_LIST_DOCUMENTS,
        audit_action=AuditAction.DOCUMENT_QUERY,
        grants=grants,
    )
    visible = [
        VisibleDocument(d, decision)
        for d, decision in _visible_matching(caller, access.facts, record, query, reader)
    ]
    _audit_query(caller, access, AuditAction.DOCUMENT_QUERY, len(visible), "FindDocuments")
    return visible


def document_search(
    *, caller: Caller, record: Record, query: DocumentQuery
) -> list[VisibleDocument[DocumentEntry]]:
    """The record's documents matching `query` that the caller may see (FindDocuments)."""
    return _search(caller, record, query, AS_MODELS, None)


def document_search_rows(
    *, caller: Caller, record: Record, query: DocumentQuery, grants: Grants | None = None
) -> list[VisibleDocument[DocumentRow]]:
    """`document_search` as `DocumentRow`s: the same documents, decisions and audit (ITI-18).
    `grants`: the caller's authorisations, if read with the record (`record_and_grants_by_ins`)."""
    return _search(caller, record, query, AS_ROWS, grants)


def document_search_facts(
    *, caller: Caller, record: Record, query: DocumentQuery, grants: Grants | None = None
) -> list[VisibleDocument[FactsRow]]:
    """`document_search` as `FactsRow`s: the same documents, decisions and audit, reading only
    what the decision needs (ITI-18 FindDocuments, whose entries' texts are stored). The event
    and confidentiality code filters read the JSON columns of full rows: such a query is not
    for this reader (`document_search_rows`)."""
    if query.event_codes or query.confidentiality_codes:
        raise ValueError("a search on JSON codes reads full rows: document_search_rows")
    return _search(caller, record, query, AS_FACTS, grants)


def document_rows_in_full(found: Sequence[FactsRow]) -> dict[int, DocumentRow]:
    """The full rows of documents a search gave as `FactsRow`s (only `document_search_facts`
    makes them: the caller may see each), by key: the entries whose stored text is missing or
    of an older version are written from them. One a concurrent ITI-62 removed is left out."""
    return {row.pk: row for row in rows_of(row_values().filter(pk__in=[f.pk for f in found]))}


def _visible_uuids(
    caller: Caller, facts: RecordFacts, record: Record, reader: DocumentReader[D], *, capped: bool = True
) -> dict[str, VisibleDocument[D]]:
    everything = DocumentQuery(
        statuses=frozenset(DocumentStatus) - {DocumentStatus.DELETED}, limit=MAX_RESULTS if capped else None
    )
    return {
        d.entry_uuid: VisibleDocument(d, decision)
        for d, decision in _visible_matching(caller, facts, record, everything, reader)
    }


def _record_contents(
    caller: Caller,
    record: Record,
    statuses: frozenset[DocumentStatus],
    audit_label: str,
    capped: bool,
    reader: DocumentReader[D],
) -> RecordContents[D]:
    access = access_loaded_record(
        caller, record=record, action=Action.RECORD_LIST_DOCUMENTS, audit_action=AuditAction.DOCUMENT_QUERY
    )
    visible = _visible_uuids(caller, access.facts, record, reader, capped=capped)
    contents = _contents_for(record, visible, statuses)
    _audit_query(caller, access, AuditAction.DOCUMENT_QUERY, len(contents.documents), audit_label)
    return contents


def record_contents(
    *,
    caller: Caller,
    record: Record,
    statuses: frozenset[DocumentStatus] = frozenset({DocumentStatus.APPROVED}),
    audit_label: str = "GetAll",
    capped: bool = True,
) -> RecordContents[DocumentEntry]:
    """Everything of the record the caller may see (GetAll and the Get*AndContents queries):
    the MAX_RESULTS newest documents, or all of them when not `capped` (the export)."""
    return _record_contents(caller, record, statuses, audit_label, capped, AS_MODELS)


def record_contents_rows(
    *,
    caller: Caller,
    record: Record,
    statuses: frozenset[DocumentStatus] = frozenset({DocumentStatus.APPROVED}),
    audit_label: str = "GetAll",
) -> RecordContents[DocumentRow]:
    """`record_contents` with the documents as `DocumentRow`s (the XDS stored queries)."""
    return _record_contents(caller, record, statuses, audit_label, True, AS_ROWS)


def _contents_for(
    record: Record, visible: dict[str, VisibleDocument[D]], statuses: frozenset[DocumentStatus]
) -> RecordContents[D]:
    associations = list(Association.objects.filter(record=record).order_by("pk"))
    subsets = {
        s.entry_uuid: s for s in SubmissionSet.objects.filter(record=record).order_by("submission_time")
    }
    folders = {f.entry_uuid: f for f in Folder.objects.filter(record=record).order_by("pk")}
    wanted_status = {s.value for s in statuses}
    documents = [v for v in visible.values() if v.document.availability_status in wanted_status]
    shown_documents = {v.document.entry_uuid for v in documents}
    # A submission set or folder is shown when it contains a visible document or no document at all.
    members: dict[str, set[str]] = {}
    for association in associations:
        if association.association_type == AssociationType.HAS_MEMBER:
            members.setdefault(association.source_uuid, set()).add(association.target_uuid)
    all_documents = set(DocumentEntry.objects.filter(record=record).values_list("entry_uuid", flat=True))

    def shown(container: str) -> bool:
        contained = members.get(container, set()) & all_documents
        return not contained or bool(contained & shown_documents)

    shown_subsets = {uuid for uuid in subsets if shown(uuid)}
    shown_folders = {uuid for uuid in folders if shown(uuid)}
    objects = shown_documents | shown_subsets | shown_folders
    return RecordContents(
        documents=documents,
        submission_sets=[subsets[u] for u in subsets if u in shown_subsets],
        folders=[folders[u] for u in folders if u in shown_folders],
        associations=[a for a in associations if a.source_uuid in objects and a.target_uuid in objects],
    )


def current_entry_uuids(*, record: Record, entry_uuids: Iterable[str]) -> set[str]:
    """The current entryUUIDs of the record's documents that older entryUUIDs name.

    An ITI-57 update gives a document a new entryUUID and keeps the old one in its version
    history (ADR 0001), so a software that kept the old id still finds the document as it is now.
    Only ids: the caller filters what it answers through the access decision point."""
    return set(
        DocumentEntryVersion.objects.filter(
            entry_uuid__in=list(entry_uuids), document__record=record
        ).values_list("document__entry_uuid", flat=True)
    )


def document_get(
    *, caller: Caller, entry_uuid: str = "", unique_id: str = "", patient_id: str | None = None
) -> VisibleDocument[DocumentEntry]:
    """One document's metadata, or NotFound (missing and forbidden alike).

    `patient_id` (CX) confines the read to the patient the security token names: another
    patient's document is not found, and nothing is traced on their record."""
    candidates = DocumentEntry.objects.all()
    if patient_id is not None:
        candidates = candidates.filter(patient_id=patient_id)
    if entry_uuid:
        candidates = candidates.filter(entry_uuid=entry_uuid)
    elif unique_id:
        candidates = candidates.filter(unique_id=unique_id)
    else:
        raise NotFound("document not found")
    access = access_document(
        caller,
        document=one_with_authors(candidates),
        action=Action.DOCUMENT_READ,
        audit_action=AuditAction.DOCUMENT_READ_METADATA,
    )
    audit_alone(caller=caller, action=AuditAction.DOCUMENT_READ_METADATA, subject=access.subject)
    return VisibleDocument(access.document, access.decision)


def _hidden_periods(
    caller: Caller, facts: RecordFacts, document: DocumentEntry, versions: list[DocumentEntryVersion]
) -> list[tuple[dt.datetime | None, dt.datetime | None]]:
    """The spans [from, until) during which the document's visibility flags hid it from the
    caller (None: unbounded). The flags in force when an event happened decide, not today's:
    flags set afterwards must not erase an access the patient has already seen. The status is
    left out: a document deleted or replaced since keeps the traces of its life."""
    current = document_facts(document)
    matrix = current_matrix()

    def hidden(flags: dict[str, Any]) -> bool:
        shown = replace(
            current,
            status=DocumentStatus.APPROVED,
            masked_to_professionals=bool(flags.get("masked_to_professionals")),
            invisible_to_patient=bool(flags.get("invisible_to_patient")),
            invisible_to_legal_representatives=bool(flags.get("invisible_to_legal_representatives")),
        )
        return not decide_facts(caller, facts, shown, Action.DOCUMENT_READ, matrix)

    spans: list[tuple[dt.datetime | None, dt.datetime | None]] = []
    start: dt.datetime | None = None
    for version in versions:  # by version: each snapshot held until it was superseded
        if hidden(version.snapshot):
            spans.append((start, version.superseded_at))
        start = version.superseded_at
    if hidden({f: getattr(document, f) for f in Confidentiality.FLAG_FIELDS.values()}):
        spans.append((start, None))
    return spans


def _without_spans(
    events: QuerySet[AuditEvent], spans: list[tuple[str, dt.datetime | None, dt.datetime | None]]
) -> QuerySet[AuditEvent]:
    """`events` without those about a document during one of its spans [since, until). The spans
    are a VALUES table in one NOT EXISTS: one OR term per span grew past SQLite's expression depth
    (1,000) on records whose documents were announced one by one."""
    if not spans:
        return events
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    moment = "CAST(%s AS timestamp with time zone)" if connection.vendor == "postgresql" else "%s"
    rows = ", ".join(f"(%s, {moment}, {moment})" for _ in spans)
    earliest = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
    latest = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        value
        for unique_id, since, until in spans
        for value in (unique_id, adapt(since or earliest), adapt(until or latest))
    ]
    # VALUES columns are column1.. on both databases; only placeholders and the quoted table
    # name are interpolated.
    condition = "".join(
        (
            f"NOT EXISTS (SELECT 1 FROM (VALUES {rows}) AS hidden WHERE hidden.column1 = ",  # noqa: S608
            f"{table}.document_unique_id AND {table}.occurred_at >= hidden.column2 ",
            f"AND {table}.occurred_at < hidden.column3)",
        )
    )
    return events.extra(where=[condition], params=params)  # noqa: S610 - placeholders only


def record_traces_shown(*, caller: Caller, record: Record) -> QuerySet[AuditEvent]:
    """The record's access traces for its patient or legal representative (audited), as
    `without_hidden_events` leaves them."""
    return traces_visible_to(caller, record, record_traces(caller=caller, record=record))


def without_hidden_events(
    caller: Caller, record: Record, events: QuerySet[AuditEvent]
) -> QuerySet[AuditEvent]:
    """`events` without those about a document while it was hidden from `caller` (invisible to
    the patient until the announcement consultation, or to legal representatives): its
    publication, readings and changes would tell what the document list does not. A legal
    representative does not see what was done in the minor's secret connection either, and
    neither sees the refused publication of a document submitted hidden from them.
    Registered in records.selectors.TRACE_FILTERS (see apps.py)."""
    facts = record_facts(caller.actor, record)
    versions: dict[int, list[DocumentEntryVersion]] = defaultdict(list)
    for version in DocumentEntryVersion.objects.filter(document__record=record).order_by("version"):
        versions[version.document_id].append(version)
    hidden_always: list[str] = []  # hidden for their whole life: the usual case, one IN list
    spans: list[tuple[str, dt.datetime | None, dt.datetime | None]] = []
    for document in with_authors(DocumentEntry.objects.filter(record=record)):
        for since, until in _hidden_periods(caller, facts, document, versions.get(document.pk, [])):
            if since is None and until is None:
                hidden_always.append(document.unique_id)
            else:
                spans.append((document.unique_id, since, until))
    hiding = Q()
    for start in range(0, len(hidden_always), 500):  # SQLite bounds the variables of an expression
        hiding |= Q(document_unique_id__in=hidden_always[start : start + 500])
    if caller.actor.is_patient_side:
        # A refused publication names a document never stored: its denial carries the flags
        # it was submitted with. has_key, never NULL: `= true` on a missing key is NULL in
        # SQL, and NOT (… OR NULL) dropped every ordinary event too. Only True is ever written.
        hiding |= Q(details__has_key="hidden_from_patient")
    if facts.actor_is_legal_representative:
        hiding |= Q(details__has_key="secret_connection") | Q(details__has_key="hidden_from_representatives")
    events = _without_spans(events, spans)
    return events.exclude(hiding) if hiding else events


def document_visible(*, caller: Caller, entry_uuid: str) -> DocumentEntry:
    """The document if the caller may see its metadata, else NotFound (missing and forbidden
    alike). For a change that follows: it checks what the caller sent against the document only
    once the caller may know the document exists. A refusal is audited; a success is not, the
    change that follows is."""
    return access_document(
        caller,
        document=one_document(entry_uuid=entry_uuid),
        action=Action.DOCUMENT_READ,
        audit_action=AuditAction.DOCUMENT_READ_METADATA,
    ).document


@dataclass(frozen=True)
class RetrievedDocument:
    document: DocumentEntry
    content: bytes
    decision: Decision


def document_retrieve(
    *,
    caller: Caller,
    unique_id: str,
    repository_unique_id: str | None = None,
    patient_id: str | None = None,
    content_only: bool = False,
) -> RetrievedDocument:
    """ITI-43 / ITI-68: the document's bytes, after re-checking access. Verified before served.

    `patient_id` (CX) confines the retrieve to the patient the security token names.
    `content_only`: the caller answers with the bytes and MIME type alone, so the document's
    other metadata is not read (`one_document_and_grants`); it loads if read.
    """
    lookups = {"unique_id": unique_id}
    if patient_id is not None:
        lookups["patient_id"] = patient_id
    if repository_unique_id is not None:
        lookups["repository_unique_id"] = repository_unique_id
    document, grants = one_document_and_grants(
        caller.actor, with_key=True, content_only=content_only, **lookups
    )
    access = access_document(
        caller,
        document=document,
        action=Action.DOCUMENT_READ,
        audit_action=AuditAction.DOCUMENT_RETRIEVE,
        grants=grants,
    )
    document = access.document
    try:
        key = document.record.key
    except RecordKey.DoesNotExist as exc:
        raise NotFound("document content not found") from exc
    content = default_blob_store().load(data_key_for(key), sha256=document.hash_sha256, size=document.size)
    audit_alone(
        caller=caller,
        action=AuditAction.DOCUMENT_RETRIEVE,
        subject=document_subject(document),
        details={"break_glass_alert": access.decision.notify_patient}
        if access.decision.notify_patient
        else {},
    )
    return RetrievedDocument(document=document, content=content, decision=access.decision)


def related_documents(
    *, caller: Caller, entry_uuid: str, types: Iterable[str] = AssociationType.RELATIONSHIPS
) -> RecordContents[DocumentEntry]:
    """GetRelatedDocuments: the document and those linked to it (RPLC, APND, XFRM, signs)."""
    start = document_get(caller=caller, entry_uuid=entry_uuid)
    record = start.document.record
    access = access_loaded_record(
        caller, record=record, action=Action.RECORD_LIST_DOCUMENTS, audit_action=AuditAction.DOCUMENT_QUERY
    )
    visible = _visible_uuids(caller, access.facts, record, AS_MODELS)
    wanted = set(types)
    associations = [
        a
        for a in Association.objects.filter(record=record, association_type__in=wanted).filter(
            Q(source_uuid=entry_uuid) | Q(target_uuid=entry_uuid)
        )
        if a.source_uuid in visible and a.target_uuid in visible
    ]
    related = {entry_uuid} | {a.source_uuid for a in associations} | {a.target_uuid for a in associations}
    return RecordContents(documents=[visible[u] for u in related if u in visible], associations=associations)


def author_rows(document: DocumentEntry) -> list[DocumentAuthor]:
    return list(document.author_rows.all())


@dataclass(frozen=True)
class KeptSignature:
    """A lot's XAdES signature as kept (ADR 0009), with the SHA-256 of each document it covers as
    registered. Neither carries clinical content: the check needs no document bytes."""

    submission_set_unique_id: str
    record_id: int
    signer_fingerprint: str
    signed_at: dt.datetime | None
    content: bytes | None  # None when the stored bytes fail their integrity check
    problem: str
    document_digests: dict[str, str]


# The digests of each lot's documents, fetched per chunk of lots rather than one query per lot.
_SIGNED_DIGESTS = Prefetch(
    "documents", queryset=DocumentEntry.objects.only("submission_set", "unique_id", "hash_sha256")
)


def _signed_lots(record_id: int | None) -> Iterator[SubmissionSet]:
    """The lots with a kept signature (of one record, if given), oldest first, each with its
    record's key and its documents' digests."""
    lots = (
        SubmissionSet.objects.exclude(signature_sha256="")
        .select_related("record__key")
        .prefetch_related(_SIGNED_DIGESTS)
        .order_by("pk")
    )
    if record_id is not None:
        lots = lots.filter(record_id=record_id)
    return lots.iterator(chunk_size=500)


def _signature_of(lot: SubmissionSet) -> bytes:
    """A lot's kept signature, as stored (IntegrityError if it no longer matches its digest)."""
    return default_blob_store().load(
        data_key_for(lot.record.key), sha256=lot.signature_sha256, size=lot.signature_size
    )


def kept_signatures(*, record_id: int | None = None) -> Iterable[KeptSignature]:
    """Every kept lot signature (of one record, if given), oldest first, for the operators' check."""
    for lot in _signed_lots(record_id):
        content: bytes | None = None
        problem = ""
        try:
            content = _signature_of(lot)
        except (IntegrityError, RecordKey.DoesNotExist) as exc:
            problem = f"stored signature unreadable: {exc}"
        yield KeptSignature(
            submission_set_unique_id=lot.unique_id,
            record_id=lot.record_id,
            signer_fingerprint=lot.signature_signer_fingerprint,
            signed_at=lot.signature_time,
            content=content,
            problem=problem,
            document_digests={d.unique_id: d.hash_sha256 for d in lot.documents.all()},
        )


@dataclass(frozen=True)
class LotSignature:
    """A lot's kept signature, as given to who was shown every document of the lot."""

    submission_set_unique_id: str
    signed_at: dt.datetime | None
    content: bytes


def lot_signatures_shown(record: Record, contents: RecordContents[Any]) -> Iterator[LotSignature]:
    """The kept signatures of `record`'s lots whose every document is in `contents` (what a
    caller was shown of it, `record_contents`), oldest lot first, read one at a time. A
    signature's manifest names each document of its lot by uniqueId and digest: one naming a
    document the caller may not see (hidden from the patient, deleted) would tell it exists."""
    shown = {visible.document.unique_id for visible in contents.documents}
    for lot in _signed_lots(record.pk):
        signed = {document.unique_id for document in lot.documents.all()}
        if signed and signed <= shown:
            yield LotSignature(lot.unique_id, lot.signature_time, _signature_of(lot))


__all__ = [
    "DocumentQuery",
    "KeptSignature",
    "LotSignature",
    "RecordContents",
    "RetrievedDocument",
    "VisibleDocument",
    "current_entry_uuids",
    "document_get",
    "document_retrieve",
    "document_search",
    "document_search_rows",
    "document_visible",
    "kept_signatures",
    "like_regex",
    "lot_signatures_shown",
    "record_contents",
    "record_contents_rows",
    "record_traces_shown",
    "related_documents",
]
