"""Celery tasks of the documents context (scheduled by beat in production: config.settings)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from dmp.documents.orphans import blobs_collect


@shared_task(name="documents.blobs_gc")  # type: ignore[untyped-decorator]
def blobs_gc() -> int:
    return blobs_collect(grace=dt.timedelta(hours=24)).deleted
