from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dmp.documents.selectors import kept_signatures
from dmp.ihe.xds.lots import kept_signature_problems


class Command(BaseCommand):
    help = (
        "Check again every kept lot signature (ADR 0009): signature, certificate at the signing time, "
        "recorded signer, and each document's registered SHA-256 against the signed manifest. Exit 1 "
        "when one fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--record", type=int, help="only the lots of this record (id)")

    def handle(self, *args: Any, **options: Any) -> None:
        checked = failed = 0
        for kept in kept_signatures(record_id=options["record"]):
            checked += 1
            problems = kept_signature_problems(kept)
            if problems:
                failed += 1
                for problem in problems:
                    self.stderr.write(
                        f"lot {kept.submission_set_unique_id} (record {kept.record_id}): {problem}"
                    )
        if failed:
            raise CommandError(f"{failed} of {checked} lot signatures INVALID")
        self.stdout.write(self.style.SUCCESS(f"{checked} lot signatures valid"))
