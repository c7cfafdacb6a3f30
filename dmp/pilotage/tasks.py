"""Celery tasks (production: scheduled by beat; embedded: the dashboard refreshes inline)."""

from __future__ import annotations

from celery import shared_task

from dmp.pilotage.services import pilotage_refresh


@shared_task(name="pilotage.refresh")  # type: ignore[untyped-decorator]
def refresh() -> int:
    return pilotage_refresh()
