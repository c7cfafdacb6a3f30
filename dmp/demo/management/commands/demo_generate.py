"""Generate the demo population: personas and their stories, then N synthetic patients."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dmp.demo.generator import generate_demo
from dmp.ihe.xds.entry_texts import write_missing
from dmp.records.models import Record


class Command(BaseCommand):
    help = "Create the personas and a synthetic population of N patients with records, documents and traces."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=200)
        parser.add_argument("--seed", type=int, default=2010)
        parser.add_argument("--documents-per-patient", type=int, default=5)
        parser.add_argument(
            "--metadata-only-beyond",
            type=int,
            default=None,
            help="write document bytes only for the first M patients (large benchmark registries)",
        )
        parser.add_argument("--if-empty", action="store_true", help="do nothing when records already exist")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Record.objects.exists():
            self.stdout.write("records already exist: nothing generated")
            return
        _, report = generate_demo(
            patients=options["patients"],
            seed=options["seed"],
            documents_per_patient=options["documents_per_patient"],
            content_limit=options["metadata_only_beyond"],
            progress=lambda message: self.stdout.write(message),
        )
        # The registry keeps each entry's query-answer text (ADR 0013); the bulk rows have none yet.
        texts = sum(write_missing())
        rate = report.patients / report.seconds if report.seconds else 0.0
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.patients} patients, {report.documents} documents ({report.blobs} with content), "
                f"{report.audit_events} audit events in {report.seconds:.1f} s ({rate:.0f} patients/s), "
                f"{texts} entry texts"
            )
        )
