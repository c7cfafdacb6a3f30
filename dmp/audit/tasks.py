"""Celery tasks of the audit context (scheduled by beat in production: config.settings)."""

from __future__ import annotations

from celery import shared_task

from dmp.audit.services import audit_checkpoint_create


@shared_task(name="audit.checkpoint")  # type: ignore[untyped-decorator]
def checkpoint() -> int:
    return audit_checkpoint_create().pk
