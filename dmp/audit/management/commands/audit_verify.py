from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dmp.audit.verify import verify_audit_trail


class Command(BaseCommand):
    help = "Verify the audit trail: hash chains, sequences and signed checkpoints. Exit 1 on tampering."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_audit_trail()
        for problem in report.problems:
            self.stderr.write(problem)
        summary = (
            f"{report.events_checked} events in {report.chains_checked} chains, "
            f"{report.checkpoints_checked} checkpoints"
        )
        if not report.ok:
            raise CommandError(f"audit trail INVALID: {len(report.problems)} problems ({summary})")
        self.stdout.write(self.style.SUCCESS(f"audit trail valid: {summary}"))
