from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dmp.audit.services import audit_checkpoint_create


class Command(BaseCommand):
    help = "Sign the current head of every audit chain (run periodically, e.g. every 5 minutes)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = audit_checkpoint_create()
        self.stdout.write(f"checkpoint {checkpoint.pk} over {len(checkpoint.heads)} chains")
