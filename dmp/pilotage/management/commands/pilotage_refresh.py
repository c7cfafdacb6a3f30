from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dmp.pilotage.services import pilotage_refresh


class Command(BaseCommand):
    help = "Fold new audit events into the SI Pilotage counters (run every minute, or as a Celery beat task)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{pilotage_refresh()} events aggregated")
