"""Document entries' texts in query answers, written once when the entries are stored.

Writing the 50 entries of a FindDocuments (about 110 elements each) was half of the CPU of the
request; an entry's text is fixed for its entryUUID, but for its status (`models.EntryText`).
The registry writes it in the transaction that stores the entry (`store_new`, through
`submission_register`'s `written` hook), reads it back with the rows the access decision kept
(`texts_of`), and writes an entry from its row whenever its text is missing or belongs to another
version of the entry or of the writer (`ebrim.ENTRY_TEXT_SHAPE`): documents stored through another
channel, by an earlier release, or changed since (`manage.py xds_entry_texts` writes those). ADR 0013.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from django.db import connection, transaction

from dmp.common.rows import insert_rows
from dmp.documents.models import DocumentEntry
from dmp.documents.rows import DocumentRow, row_of, row_values, rows_of
from dmp.ihe.xds import ebrim
from dmp.ihe.xds.models import EntryText
from dmp.ihe.xds.queries import stored_entry


def _text_of(row: DocumentRow) -> EntryText:
    entry, extras = stored_entry(row)
    return EntryText(
        document_id=row.pk,
        entry_uuid=row.entry_uuid,
        shape=ebrim.ENTRY_TEXT_SHAPE,
        text=ebrim.entry_body_text(entry, extras),
    )


def store_new(documents: Sequence[DocumentEntry]) -> None:
    """The texts of entries just written, in their transaction: a registered entry has its text."""
    insert_rows([_text_of(row_of(document)) for document in documents])


def _replace(texts: Sequence[EntryText]) -> None:
    EntryText.objects.bulk_create(
        texts,
        update_conflicts=True,
        unique_fields=["document"],
        update_fields=["entry_uuid", "shape", "text"],
    )


def refresh(documents: Sequence[DocumentEntry]) -> None:
    """The texts of entries whose metadata just changed (a new version, with a new entryUUID)."""
    _replace([_text_of(row_of(document)) for document in documents])


_TEXTS: Final = (
    f"SELECT document_id, entry_uuid, text FROM {EntryText._meta.db_table} WHERE shape = %s AND document_id "  # noqa: S608
)


def texts_of(pks: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The stored texts of these entries in the writer's current shape: {pk: (entryUUID written
    for, text)}. One statement without the ORM: its query building cost as much as the rest of
    the read. On PostgreSQL the keys travel as one array: psycopg caches the parsing of a
    statement of at most 50 parameters, and a FindDocuments page has 50 entries. The array as
    its text: psycopg's list dumper checked each of the 50 keys (60 µs of the profiled request)."""
    if not pks:
        return {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            keys = "{" + ",".join(str(int(pk)) for pk in pks) + "}"  # int(): keys, never text
            cursor.execute(_TEXTS + "= ANY(%s::bigint[])", [ebrim.ENTRY_TEXT_SHAPE, keys])
        else:
            cursor.execute(_TEXTS + f"IN ({', '.join(['%s'] * len(pks))})", [ebrim.ENTRY_TEXT_SHAPE, *pks])
        return {pk: (entry_uuid, text) for pk, entry_uuid, text in cursor.fetchall()}


def _stale(after: int, batch: int) -> list[int]:
    table = EntryText._meta.db_table
    documents = DocumentEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT d.id FROM {documents} d LEFT JOIN {table} t ON t.document_id = d.id "  # noqa: S608
            "WHERE d.id > %s AND (t.document_id IS NULL OR t.entry_uuid <> d.entry_uuid OR t.shape <> %s) "
            "ORDER BY d.id LIMIT %s",
            [after, ebrim.ENTRY_TEXT_SHAPE, batch],
        )
        return [pk for (pk,) in cursor.fetchall()]


def write_missing(batch: int = 2000) -> Iterable[int]:
    """Write the text of every entry that has none, or one of another version or shape, `batch`
    entries per transaction; yields the number written by each."""
    after = 0
    while pks := _stale(after, batch):
        with transaction.atomic():
            _replace([_text_of(row) for row in rows_of(row_values().filter(pk__in=pks))])
        after = pks[-1]
        yield len(pks)
