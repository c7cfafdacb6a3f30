"""Celery tasks of the connectors context (scheduled by beat in production: config.settings)."""

from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(name="connectors.sync")  # type: ignore[untyped-decorator]
def sync() -> None:
    # The command is the one operators run by hand; its CommandError (some record failed)
    # marks the task failed, as the nightly run must be.
    call_command("connectors_sync")
