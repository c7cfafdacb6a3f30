"""Deleting the blobs no metadata refers to: the bytes of submissions refused after they were stored.

Bytes are stored before the metadata commits (so that nothing is acknowledged without them), and a
submission refused at that point (duplicate uniqueId, access changed meanwhile, a crash) leaves
them behind. A blob is deleted only when no version of any document and no lot signature of its
record names it, and when it is older than a grace period: a submission in flight has stored its
bytes but not yet committed the rows that name them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import uuid
from dataclasses import dataclass

from dmp.common import clock
from dmp.documents.blobstore import BlobStore, default_blob_store
from dmp.documents.keys import data_key_for
from dmp.documents.models import DocumentEntry, RecordKey, SubmissionSet

logger = logging.getLogger(__name__)

# Far longer than any submission takes between storing its bytes and committing its rows.
DEFAULT_GRACE = dt.timedelta(hours=24)


@dataclass
class BlobCollection:
    examined: int = 0
    referenced: int = 0
    recent: int = 0  # unreferenced but within the grace period: kept
    unreadable: int = 0  # under a destroyed key: kept, the crypto-shredding already made them noise
    deleted: int = 0  # or, in a dry run, would be


def blobs_collect(
    *, grace: dt.timedelta, dry_run: bool = False, store: BlobStore | None = None
) -> BlobCollection:
    """One pass over the whole store, a record's blobs at a time (the listing groups them)."""
    store = store or default_blob_store()
    cutoff = clock.now() - grace
    report = BlobCollection()
    for key_id, blobs in itertools.groupby(store.backend.list(), key=lambda blob: blob.name.split("/", 1)[0]):
        referenced = _referenced_names(key_id)
        for blob in blobs:
            report.examined += 1
            if referenced is None:
                report.unreadable += 1
            elif blob.name in referenced:
                report.referenced += 1
            elif blob.modified > cutoff:
                report.recent += 1
            else:
                report.deleted += 1
                if not dry_run:
                    store.backend.delete(blob.name)
                    logger.info("orphan blob deleted: %s (stored %s)", blob.name, blob.modified.isoformat())
    return report


def _referenced_names(key_id: str) -> set[str] | None:
    """The names the metadata of `key_id`'s record gives its blobs; None under a destroyed key.

    A directory of no known key holds only orphans: the key row is committed before any bytes are
    stored under it, so no later commit can claim them."""
    try:
        key = RecordKey.objects.filter(key_id=uuid.UUID(key_id)).first()
    except ValueError:  # not a key's directory at all
        key = None
    if key is None:
        return set()
    if not key.wrapped_key:
        return None
    data_key = data_key_for(key)
    hashes = DocumentEntry.objects.filter(record_id=key.record_id).values_list("hash_sha256", flat=True)
    signatures = (
        SubmissionSet.objects.filter(record_id=key.record_id)
        .exclude(signature_sha256="")
        .values_list("signature_sha256", flat=True)
    )
    return {data_key.blob_name(sha256) for sha256 in itertools.chain(hashes, signatures)}
