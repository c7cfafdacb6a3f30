"""Celery tasks of the documents context (scheduled by beat in production: config.settings)."""

from __future__ import annotations

from celery import shared_task

from dmp.documents.orphans import DEFAULT_GRACE, blobs_collect


@shared_task(name="documents.blobs_gc")  # type: ignore[untyped-decorator]
def blobs_gc() -> int:
    return blobs_collect(grace=DEFAULT_GRACE).deleted
