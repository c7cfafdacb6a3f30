"""Choke point for documents: nothing reads or changes a document without going through here.

Documents the caller may not see are indistinguishable from documents that do not exist:
both raise `NotFound`, and lists simply leave them out. A change refused on a document the
caller may see raises `Forbidden` with the policy's reason: its existence is no secret to the
caller, and "not found" would misstate what the caller is looking at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, NoReturn, TypeVar

from django.db.models import Prefetch, QuerySet

from dmp.access.actors import Actor, ActorKind, Caller
from dmp.access.config import current_matrix
from dmp.access.policy import (
    AccessRequest,
    Action,
    Decision,
    DocumentFacts,
    DocumentStatus,
    HabilitationMatrix,
    RecordFacts,
    decide,
)
from dmp.audit.actions import AuditAction
from dmp.audit.services import Subject, audit_denial
from dmp.common.errors import Forbidden, NotFound
from dmp.common.prepared import PreparedQuery
from dmp.common.rows import unique_row
from dmp.documents.models import DocumentAuthor, DocumentEntry
from dmp.documents.rows import (
    AuthorPairs,
    DocumentRow,
    FactsRow,
    author_pairs,
    document_rows,
    facts_of,
    facts_values,
    in_record,
    row_values,
    rows_of,
)
from dmp.records.access import Grants, GrantsOf, record_facts
from dmp.records.models import Record

# A document as a list reads it: a model instance, or a row (the XDS stored queries; its
# facts alone for FindDocuments).
D = TypeVar("D", DocumentEntry, DocumentRow, FactsRow)


@dataclass(frozen=True, slots=True)
class DocumentAccess:
    document: DocumentEntry
    facts: RecordFacts
    decision: Decision

    @property
    def subject(self) -> Subject:
        return document_subject(self.document)


def document_subject(document: DocumentEntry) -> Subject:
    return Subject(
        record_id=document.record_id,
        patient_ins=document.record.patient.ins,
        document_unique_id=document.unique_id,
        document_entry_uuid=document.entry_uuid,
    )


_AUTHOR_ROWS = Prefetch(
    "author_rows", queryset=DocumentAuthor.objects.only("document_id", "person_id", "structure_id")
)


def with_authors(documents: QuerySet[DocumentEntry]) -> QuerySet[DocumentEntry]:
    return documents.select_related("record__patient").prefetch_related(_AUTHOR_ROWS)


def _with_author_pairs(documents: QuerySet[DocumentEntry]) -> QuerySet[DocumentEntry]:
    """`documents` read with their authors' ids (`AuthorPairs`), taken by `_author_pairs_taken`:
    a prefetch would build a model instance and a related manager per author (6 ms of a
    50-document search) for two strings each."""
    return documents.annotate(author_pairs_json=AuthorPairs())


def _author_pairs_taken(document: DocumentEntry) -> DocumentEntry:
    document.author_pairs = author_pairs(document.author_pairs_json)  # type: ignore[attr-defined]
    return document


def one_with_authors(documents: QuerySet[DocumentEntry], *, with_key: bool = False) -> DocumentEntry | None:
    """The first of `documents` with its record and patient joined (and the record's key, for a
    retrieve), and its authors' ids as tuples: one query, where a prefetch and a key lookup took three."""
    related = ("record__patient", "record__key") if with_key else ("record__patient",)
    document = unique_row(_with_author_pairs(documents.select_related(*related)))
    return None if document is None else _author_pairs_taken(document)


# What a retrieve reads of a document when its caller answers with the bytes alone (ITI-43,
# ITI-68): the access decision's facts, the audit subject, the content's key, hash and size, the
# MIME type. Its record's and patient's columns the policy reads, and the record's key. A
# document's 50-odd columns, with 5 JSON texts to decode and 12 times to parse, were 8 % of
# the instructions of an ITI-43. Any other field loads when read, one query each (Django's
# deferred fields): a caller that shows the metadata asks for the document whole.
_RETRIEVED: Final = (
    *("unique_id", "entry_uuid", "repository_unique_id", "mime_type", "hash_sha256", "size"),
    *("availability_status", "class_code", "type_code", "masked_to_professionals"),
    *("invisible_to_patient", "invisible_to_legal_representatives"),
    *("submitted_by_id", "submitted_by_structure_id", "record"),
    *("record__status", "record__opposes_break_glass", "record__opposes_centre_15", "record__patient"),
    *("record__patient__ins", "record__patient__ins_authority", "record__patient__birth_date"),
    *("record__key__key_id", "record__key__wrapped_key", "record__key__record"),
)
_PREPARED: dict[tuple[tuple[str, ...], bool, bool, bool], PreparedQuery[DocumentEntry]] = {}


def _prepared(
    names: tuple[str, ...], with_key: bool, with_grants: bool, content_only: bool = False
) -> PreparedQuery[DocumentEntry]:
    key = (names, with_key, with_grants, content_only)
    prepared = _PREPARED.get(key)
    if prepared is None:
        related = ("record__patient", "record__key") if with_key else ("record__patient",)

        def build(*values: str) -> QuerySet[DocumentEntry]:
            lookups, grantee = values[: len(names)], values[len(names) :]
            documents = _with_author_pairs(
                DocumentEntry.objects.filter(**dict(zip(names, lookups, strict=True))).select_related(
                    *related
                )
            )
            if with_grants:
                person_id, structure_id = grantee
                documents = documents.annotate(grants_json=GrantsOf("record_id", person_id, structure_id))
            return documents.only(*_RETRIEVED) if content_only else documents

        prepared = _PREPARED[key] = PreparedQuery(build, *(str,) * (len(names) + 2 * with_grants))
    return prepared


def one_document(*, with_key: bool = False, **lookups: str) -> DocumentEntry | None:
    """`one_with_authors` for equality `lookups` on a unique key (unique_id, entry_uuid, with
    patient_id or repository_unique_id), from a statement compiled once per set of lookups: every
    retrieve and metadata read starts here, and compiling that join cost 0.65 ms each time."""
    names = tuple(sorted(lookups))
    document = _prepared(names, with_key, False).one(*(lookups[name] for name in names))
    return None if document is None else _author_pairs_taken(document)


def one_document_and_grants(
    actor: Actor, *, with_key: bool = False, content_only: bool = False, **lookups: str
) -> tuple[DocumentEntry | None, Grants | None]:
    """`one_document`, with a professional's authorisations on its record read in the same
    statement (`Grants`, for `access_document`): one round trip fewer of every retrieve.
    `content_only`: only the columns a retrieve needs to decide and serve the bytes are read
    (`_RETRIEVED`), the others load when read."""
    names = tuple(sorted(lookups))
    values = [lookups[name] for name in names]
    professional = actor.kind is ActorKind.PROFESSIONAL
    if professional:
        values += [actor.person_id, actor.structure_id]
    document = _prepared(names, with_key, professional, content_only).one(*values)
    if document is None:
        return None, None
    grants = (
        Grants.decoded(document.record_id, actor, document.grants_json)  # type: ignore[attr-defined]
        if professional
        else None
    )
    return _author_pairs_taken(document), grants


def of_one_record(
    documents: QuerySet[DocumentEntry], record: Record, offset: int, limit: int
) -> list[DocumentEntry]:
    """Documents `offset` to `offset + limit` of a query confined to `record`, with their
    authors' ids.

    The record and its patient are the same for every row: they are attached rather than
    joined, which spares building two more model instances per row of a search.
    """
    rows = [_author_pairs_taken(row) for row in _with_author_pairs(documents)[offset : offset + limit]]
    record.patient  # noqa: B018 - loads the patient once, shared by every row
    for row in rows:
        row.record = record
    return rows


def rows_of_one_record(
    documents: QuerySet[DocumentEntry, tuple[Any, ...]], record: Record, offset: int, limit: int
) -> list[DocumentRow]:
    """As `of_one_record`, as `DocumentRow`s (the XDS stored queries): no model instances.
    `documents` is filtered from `rows.row_values()`."""
    return document_rows(documents, offset, limit)


# The statements of searches with no filter but the statuses (most FindDocuments, GetAll), by
# shape: (number of statuses, offset, limit). Offsets go by whole batches (5000 documents on
# ITI-18), so few shapes are ever seen; past this many, a search compiles its own.
_PLAIN: dict[tuple[int, int, int], PreparedQuery[DocumentEntry]] = {}
_PLAIN_SHAPES_KEPT: Final = 64


def _plain_tuples(
    kept: dict[tuple[int, int, int], PreparedQuery[DocumentEntry]],
    values: Callable[[], QuerySet[DocumentEntry, tuple[Any, ...]]],
    record: Record,
    statuses: Sequence[str],
    offset: int,
    limit: int,
) -> Iterable[tuple[Any, ...]]:
    """`values()` of `rows.in_record(…, record, statuses)`, `offset` to `offset + limit`, from a
    statement compiled once per shape and kept in `kept`."""
    key = (len(statuses), offset, limit)
    prepared = kept.get(key)
    if prepared is None:
        if len(kept) >= _PLAIN_SHAPES_KEPT:
            return in_record(values(), record, statuses)[offset : offset + limit]
        prepared = kept[key] = PreparedQuery(
            lambda record_id, *wanted: in_record(values(), record_id, wanted)[offset : offset + limit],
            int,
            *(str,) * len(statuses),
        )
    return prepared.tuples(record.pk, *statuses)


def plain_rows_of_one_record(
    record: Record, statuses: Sequence[str], offset: int, limit: int
) -> list[DocumentRow]:
    """`rows_of_one_record` of `rows.in_record(row_values(), record, statuses)`, from a statement
    compiled once per shape: building and compiling that query of 46 columns cost 0.7 ms of each
    FindDocuments, as much as turning its 50 rows into objects."""
    return rows_of(_plain_tuples(_PLAIN, row_values, record, statuses, offset, limit))


_PLAIN_FACTS: dict[tuple[int, int, int], PreparedQuery[DocumentEntry]] = {}


def facts_of_one_record(
    documents: QuerySet[DocumentEntry, tuple[Any, ...]], record: Record, offset: int, limit: int
) -> list[FactsRow]:
    """As `rows_of_one_record`, as `FactsRow`s; `documents` is filtered from `rows.facts_values()`."""
    return facts_of(documents[offset : offset + limit])


def plain_facts_of_one_record(
    record: Record, statuses: Sequence[str], offset: int, limit: int
) -> list[FactsRow]:
    """As `plain_rows_of_one_record`, as `FactsRow`s."""
    return facts_of(_plain_tuples(_PLAIN_FACTS, facts_values, record, statuses, offset, limit))


@dataclass(frozen=True)
class DocumentReader(Generic[D]):
    """How a list reads a record's documents: the query its filters start from, what reads a
    batch of the filtered query (documents `offset` to `offset + limit`), and what reads a batch
    of a search filtered by status alone (record, statuses, offset, limit), if it has its own way."""

    documents: Callable[[], QuerySet[DocumentEntry, Any]]
    batch: Callable[[QuerySet[DocumentEntry, Any], Record, int, int], list[D]]
    plain_batch: Callable[[Record, Sequence[str], int, int], list[D]] | None = None


AS_MODELS: Final = DocumentReader[DocumentEntry](DocumentEntry.objects.all, of_one_record)
AS_ROWS: Final = DocumentReader[DocumentRow](row_values, rows_of_one_record, plain_rows_of_one_record)
AS_FACTS: Final = DocumentReader[FactsRow](facts_values, facts_of_one_record, plain_facts_of_one_record)


def document_facts(document: DocumentEntry | DocumentRow | FactsRow) -> DocumentFacts:
    """Policy facts of a stored document. The authenticated submitter counts as an author."""
    pairs = document.author_pairs
    if pairs is None:  # a model instance read without them
        pairs = (
            ()
            if isinstance(document, DocumentRow | FactsRow)
            else tuple((a.person_id, a.structure_id) for a in document.author_rows.all())
        )
    person_ids = {person for person, _ in pairs if person}
    structure_ids = {structure for _, structure in pairs if structure}
    if document.submitted_by_id:
        person_ids.add(document.submitted_by_id)
    if document.submitted_by_structure_id:
        structure_ids.add(document.submitted_by_structure_id)
    return DocumentFacts(
        status=DocumentStatus(document.availability_status),
        class_code=document.class_code,
        type_code=document.type_code,
        masked_to_professionals=document.masked_to_professionals,
        invisible_to_patient=document.invisible_to_patient,
        invisible_to_legal_representatives=document.invisible_to_legal_representatives,
        author_person_ids=frozenset(person_ids),
        author_structure_ids=frozenset(structure_ids),
    )


def decide_facts(
    caller: Caller,
    facts: RecordFacts,
    document: DocumentFacts,
    action: Action,
    matrix: HabilitationMatrix | None = None,
) -> Decision:
    """The policy's answer to `caller` doing `action` on a document as `document` describes it
    (a stored one, one being submitted, one as its flags stood at some time)."""
    return decide(
        AccessRequest(
            actor=caller.actor,
            action=action,
            mode=caller.mode,
            reason=caller.reason,
            record=facts,
            document=document,
        ),
        matrix or current_matrix(),
    )


def decide_document(caller: Caller, facts: RecordFacts, document: DocumentEntry, action: Action) -> Decision:
    return decide_facts(caller, facts, document_facts(document), action)


def _facts_key(document: DocumentEntry | DocumentRow | FactsRow) -> tuple[object, ...] | None:
    """Everything `document_facts` reads of `document`, or None when its authors are not loaded."""
    if document.author_pairs is None:
        return None
    return (
        document.availability_status,
        document.class_code,
        document.type_code,
        document.masked_to_professionals,
        document.invisible_to_patient,
        document.invisible_to_legal_representatives,
        document.author_pairs,
        document.submitted_by_id,
        document.submitted_by_structure_id,
    )


def visible_documents(caller: Caller, facts: RecordFacts, documents: Iterable[D]) -> list[tuple[D, Decision]]:
    """The documents among `documents` the caller may read, with each decision (alert flags).

    The policy is a pure function: documents with the same facts (a patient's documents mostly
    share their authors, class and flags) get the decision taken for the first of them."""
    matrix = current_matrix()
    decided: dict[tuple[object, ...], Decision] = {}
    visible = []
    for document in documents:
        key = _facts_key(document)
        decision = decided.get(key) if key is not None else None
        if decision is None:
            decision = decide_facts(caller, facts, document_facts(document), Action.DOCUMENT_READ, matrix)
            if key is not None:
                decided[key] = decision
        if decision:
            visible.append((document, decision))
    return visible


def access_document(
    caller: Caller,
    *,
    document: DocumentEntry | None,
    action: Action,
    audit_action: AuditAction,
    for_change: bool = False,
    grants: Grants | None = None,
) -> DocumentAccess:
    """`document` if the caller may perform `action` on it; audits the refusal and raises
    otherwise: `NotFound`, or for a change (`for_change`) of a document the caller may read,
    `Forbidden` with the reason (`refuse_change`). `grants`: the caller's authorisations, if
    read with the document (`one_document_and_grants`)."""
    if document is None:
        audit_denial(caller=caller, action=audit_action, reason="no_document")
        raise NotFound("document not found")
    facts = record_facts(caller.actor, document.record, grants)
    decision = decide_document(caller, facts, document, action)
    if not decision:
        if for_change:
            refuse_change(
                caller, facts=facts, document=document, decision=decision, audit_action=audit_action
            )
        audit_denial(
            caller=caller, action=audit_action, subject=document_subject(document), reason=decision.reason
        )
        raise NotFound("document not found")
    return DocumentAccess(document=document, facts=facts, decision=decision)


def refuse_change(
    caller: Caller,
    *,
    facts: RecordFacts,
    document: DocumentEntry,
    decision: Decision,
    audit_action: AuditAction,
) -> NoReturn:
    """Audits a refused change of `document` and raises: `Forbidden` with the policy's reason if
    the caller may read the document (in the record as `facts` describe it), else `NotFound`,
    so that a refusal never tells a document's existence to one who may not see it."""
    audit_denial(
        caller=caller, action=audit_action, subject=document_subject(document), reason=decision.reason
    )
    if decide_document(caller, facts, document, Action.DOCUMENT_READ):
        raise Forbidden(f"not allowed to change this document: {decision.reason.value}")
    raise NotFound("document not found")
