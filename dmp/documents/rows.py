"""Document entries as plain rows, for the registry's answers to the XDS stored queries.

A FindDocuments of 50 documents built 50 `DocumentEntry` instances of 50 fields each (model
`__init__`, a converter per JSON column, the timestamps nobody shows): a quarter of the request's
CPU. The stored queries read `DocumentRow`s instead, the columns they answer with and the policy
needs, through `values_list` into a slotted object. The JSON columns come as their text (the
XDS renderer decodes each distinct text once per process, `ihe.xds.queries`), and are decoded
here only when a filter reads them.

The MHD search (ITI-67) reads them too, decoding the JSON columns it renders; other readers
(one document's FHIR read, the portals, the export) keep model instances: they use more of them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import cache, lru_cache
from typing import Any, Final

from django.db import connection
from django.db.models import F, Func, QuerySet, TextField
from django.db.models.functions import Cast

from dmp.documents.models import DocumentAuthor, DocumentEntry


@dataclass(slots=True, eq=False)
class DocumentRow:
    """One document entry as the stored queries read it. Fields in `_COLUMNS` order."""

    # The times, first: read as text (`_instant`).
    creation_time: dt.datetime
    service_start_time: dt.datetime | None
    service_stop_time: dt.datetime | None
    registered_at: dt.datetime
    pk: int
    logical_id: uuid.UUID
    entry_uuid: str
    version: int
    unique_id: str
    repository_unique_id: str
    availability_status: str
    class_code: str
    class_code_scheme: str
    class_code_display: str
    type_code: str
    type_code_scheme: str
    type_code_display: str
    format_code: str
    format_code_scheme: str
    format_code_display: str
    healthcare_facility_type_code: str
    healthcare_facility_type_code_scheme: str
    healthcare_facility_type_code_display: str
    practice_setting_code: str
    practice_setting_code_scheme: str
    practice_setting_code_display: str
    masked_to_professionals: bool
    invisible_to_patient: bool
    invisible_to_legal_representatives: bool
    title: str
    comments: str
    language_code: str
    mime_type: str
    size: int
    hash_sha1: str
    patient_id: str
    source_patient_id: str
    legal_authenticator: str
    submitted_by_id: str
    submitted_by_structure_id: str
    # The JSON columns, as the database gives their text.
    confidentiality_codes_json: str
    event_codes_json: str
    source_patient_info_json: str
    reference_ids_json: str
    authors_json: str
    author_pairs_json: str
    # (person_id, structure_id) of the author rows, decoded from `author_pairs_json`.
    author_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def confidentiality_codes(self) -> list[dict[str, Any]]:
        decoded: list[dict[str, Any]] = json.loads(self.confidentiality_codes_json)
        return decoded

    @property
    def event_codes(self) -> list[dict[str, Any]]:
        decoded: list[dict[str, Any]] = json.loads(self.event_codes_json)
        return decoded

    # Decoded when read (an MHD search renders them); the XDS renderer reads the texts.
    @property
    def authors(self) -> list[dict[str, Any]]:
        decoded: list[dict[str, Any]] = json.loads(self.authors_json)
        return decoded

    @property
    def source_patient_info(self) -> list[str]:
        decoded: list[str] = json.loads(self.source_patient_info_json)
        return decoded

    @property
    def reference_ids(self) -> list[str]:
        decoded: list[str] = json.loads(self.reference_ids_json)
        return decoded


class AuthorPairs(Func):
    """The (person_id, structure_id) of a document's author rows, in their order, as a JSON
    array of pairs, read with the document in the same statement: the policy needs them for
    every document it decides on, and a query of their own was one more round trip of every
    retrieve and search. In their order, so that a document's text is always the same (a
    DISTINCT over rows, after an author filter's join, counts on it)."""

    output_field = TextField()

    def __init__(self) -> None:
        super().__init__(F("pk"), F("author_ids"))

    def _names(self, compiler: Any, connection: Any) -> tuple[dict[str, str], list[Any]]:
        document_id, params = compiler.compile(self.source_expressions[0])
        stored, stored_params = compiler.compile(self.source_expressions[1])
        quote = connection.ops.quote_name
        columns = {field.name: quote(str(field.column)) for field in DocumentAuthor._meta.concrete_fields}
        columns["table"] = quote(DocumentAuthor._meta.db_table)
        columns["outer"] = document_id
        columns["stored"] = stored
        return columns, [*stored_params, *params]

    # Only quoted names from the model's metadata and the compiled outer columns are written in.
    # The stored text first (`DocumentEntry.author_ids`); the rows only for an entry without it
    # (both databases evaluate COALESCE's arguments only as far as the first non-NULL one).
    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        # SQLite before 3.44 has no ORDER BY in an aggregate: it aggregates an ordered subquery.
        n, params = self._names(compiler, connection)
        sql = (
            f"COALESCE({n['stored']}, (SELECT COALESCE(json_group_array(json_array({n['person_id']}, "  # noqa: S608
            f"{n['structure_id']})), '[]') FROM (SELECT {n['person_id']}, {n['structure_id']} "
            f"FROM {n['table']} WHERE {n['document']} = {n['outer']} ORDER BY {n['position']})))"
        )
        return sql, params

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        n, params = self._names(compiler, connection)
        sql = (
            f"COALESCE({n['stored']}, (SELECT COALESCE(json_agg(json_build_array({n['person_id']}, "  # noqa: S608
            f"{n['structure_id']}) ORDER BY {n['position']})::text, '[]') FROM {n['table']} "
            f"WHERE {n['document']} = {n['outer']}))"
        )
        return sql, params


def author_ids_text(pairs: Iterable[tuple[str, str]]) -> str:
    """`DocumentEntry.author_ids` for author rows of these (person_id, structure_id), in order."""
    return json.dumps([[person, structure] for person, structure in pairs], separators=(",", ":"))


@dataclass(slots=True, eq=False)
class FactsRow:
    """A document entry as a search reads it when its answer needs no more than the access
    decision and the entry's identity: the registry's FindDocuments, whose entries' texts are
    written once (ADR 0013). Its 12 columns cost PostgreSQL half of `DocumentRow`'s 46 (the JSON
    columns as text, the long codes) and Python a fraction of turning them into objects.
    Fields in `_FACT_COLUMNS` order."""

    pk: int
    entry_uuid: str
    mime_type: str
    availability_status: str
    class_code: str
    type_code: str
    masked_to_professionals: bool
    invisible_to_patient: bool
    invisible_to_legal_representatives: bool
    submitted_by_id: str
    submitted_by_structure_id: str
    author_pairs_json: str
    author_pairs: tuple[tuple[str, str], ...] = ()


_FACT_COLUMNS: Final = tuple(f.name for f in fields(FactsRow) if f.name != "author_pairs")


@cache
def facts_values() -> QuerySet[DocumentEntry, tuple[Any, ...]]:
    """Every document entry as `FactsRow` values (as `row_values` for `DocumentRow`)."""
    return DocumentEntry.objects.annotate(author_pairs_json=AuthorPairs()).values_list(*_FACT_COLUMNS)


def facts_of(values: Iterable[tuple[Any, ...]]) -> list[FactsRow]:
    """`facts_values()` tuples as rows, with their authors' ids."""
    rows = []
    for value in values:
        row = FactsRow(*value)
        row.author_pairs = author_pairs(row.author_pairs_json)
        rows.append(row)
    return rows


# A patient's documents mostly share their authors: each distinct text is decoded once per worker
# (2.7 µs a decode, 50 of them per FindDocuments page; a cached one takes 0.13 µs).
@lru_cache(maxsize=4096)
def author_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """`AuthorPairs` as read back (immutable, hence shared)."""
    return tuple((person, structure) for person, structure in json.loads(text))


_JSON_SUFFIX: Final = "_json"
_MOMENTS: Final = ("creation_time", "service_start_time", "service_stop_time", "registered_at")
_NAMES: Final = tuple(f.name for f in fields(DocumentRow) if f.name != "author_pairs")
# Each JSON column as text: the same on SQLite, which stores the text, and on PostgreSQL (jsonb::text).
# The times as text too: psycopg parses a timestamptz in Python, 4 µs each, 0.6 ms of a 50-document
# search; `datetime.fromisoformat` takes 0.2 µs.
_TEXTS: Final = {
    **{
        name: Cast(name.removesuffix(_JSON_SUFFIX), TextField())
        for name in _NAMES
        if name.endswith(_JSON_SUFFIX) and name != "author_pairs_json"
    },
    "author_pairs_json": AuthorPairs(),
    **{f"{name}_text": Cast(name, TextField()) for name in _MOMENTS},
}
_COLUMNS: Final = tuple(f"{name}_text" if name in _MOMENTS else name for name in _NAMES)


def _instant(text: str) -> dt.datetime:
    """A time read as text: ISO 8601 with its offset on PostgreSQL (psycopg reads no other
    DateStyle), as Django stores it on SQLite (in the connection's time zone, without offset)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=connection.timezone)


def _moment(text: str | None) -> dt.datetime | None:
    return None if text is None else _instant(text)


@cache
def row_values() -> QuerySet[DocumentEntry, tuple[Any, ...]]:
    """Every document entry as `DocumentRow` values: the query the stored queries filter. Built
    once: naming the 44 columns cost 0.4 ms a query, as much as compiling it. Never evaluated
    itself (each filter makes a new query)."""
    return DocumentEntry.objects.annotate(**_TEXTS).values_list(*_COLUMNS)


# A list's documents, newest first: the order of every search, and of its batches.
NEWEST_FIRST: Final = ("-creation_time", "-pk")


def in_record(
    documents: QuerySet[DocumentEntry, Any], record: Any, statuses: Iterable[str]
) -> QuerySet[DocumentEntry, Any]:
    """`documents` of `record` (one, or its id) in one of `statuses`, newest first: where every
    search of a record starts, before its other filters."""
    return documents.filter(record=record, availability_status__in=list(statuses)).order_by(*NEWEST_FIRST)


def rows_of(values: Iterable[tuple[Any, ...]]) -> list[DocumentRow]:
    """`row_values()` tuples as rows, with their authors' ids."""
    rows = []
    for created, started, stopped, registered, *rest in values:
        row = DocumentRow(_instant(created), _moment(started), _moment(stopped), _instant(registered), *rest)
        row.author_pairs = author_pairs(row.author_pairs_json)
        rows.append(row)
    return rows


def row_of(document: DocumentEntry) -> DocumentRow:
    """A document entry in hand (just written, say) as the row the stored queries would read,
    without reading it back; its authors' ids are not read (`author_pairs` is empty)."""
    values: dict[str, Any] = {
        name: json.dumps(getattr(document, name.removesuffix(_JSON_SUFFIX)))
        if name.endswith(_JSON_SUFFIX)
        else getattr(document, name)
        for name in _NAMES
        if name != "author_pairs_json"
    }
    return DocumentRow(**values, author_pairs_json="[]")


def document_rows(
    documents: QuerySet[DocumentEntry, tuple[Any, ...]], offset: int, limit: int
) -> list[DocumentRow]:
    """Rows `offset` to `offset + limit` of `documents` (filtered from `row_values()`), with
    their authors' ids."""
    return rows_of(documents[offset : offset + limit])


__all__ = [
    "NEWEST_FIRST",
    "AuthorPairs",
    "DocumentRow",
    "FactsRow",
    "author_pairs",
    "document_rows",
    "facts_of",
    "facts_values",
    "in_record",
    "row_of",
    "row_values",
    "rows_of",
]
