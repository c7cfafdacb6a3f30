"""Synchronise external sources (reimbursement history, pharmacy dossier) into the DMP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dmp.common import clock
from dmp.common.errors import DomainError
from dmp.connectors.clients import HttpSourceClient, SimulatedSourceClient, SourceClient
from dmp.connectors.models import Source
from dmp.connectors.services import records_to_sync, source_sync


def client_for(source: Source) -> SourceClient | None:
    url: str = getattr(settings, f"OPENDMP_SOURCE_{source.value}_URL")
    if url:
        return HttpSourceClient(url, getattr(settings, f"OPENDMP_SOURCE_{source.value}_TOKEN"))
    if settings.DEMO:
        return SimulatedSourceClient(source.value, today=clock.today())
    return None


class Command(BaseCommand):
    help = "Publish new items of the external sources for every record whose patient allowed them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", choices=[s.value for s in Source], action="append")
        parser.add_argument("--limit", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        for source in [Source(s) for s in options["source"] or [s.value for s in Source]]:
            client = client_for(source)
            if client is None:
                self.stdout.write(f"{source}: no endpoint configured, skipped")
                continue
            published = failures = 0
            for record in records_to_sync(source, limit=options["limit"]):
                # A refusal changes nothing for that record (domain errors roll back): the
                # other records must not wait for it to be solved.
                try:
                    published += source_sync(record=record, source=source, client=client).published_items
                except DomainError as error:
                    failures += 1
                    self.stderr.write(f"{source} record {record.pk}: {type(error).__name__}: {error.message}")
            self.stdout.write(f"{source}: {published} items published, {failures} failures")
            failed += failures
        if failed:
            # A non-zero exit status, so that the scheduler reports the night as failed.
            raise CommandError(f"{failed} synchronisations failed")
