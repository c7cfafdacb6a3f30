"""Send patients the notices of exceptional accesses (break-glass, Centre 15) to their records."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dmp.accounts.services import exceptional_access_notify


class Command(BaseCommand):
    help = "Notify account holders of break-glass and Centre 15 accesses since the last notice."

    def handle(self, *args: Any, **options: Any) -> None:
        sent = exceptional_access_notify()
        self.stdout.write(f"{sent} notice(s) sent")
