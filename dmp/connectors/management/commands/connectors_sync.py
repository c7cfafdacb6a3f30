"""Synchronise external sources (reimbursement history, pharmacy dossier) into the DMP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dmp.common import clock
from dmp.connectors.clients import HttpSourceClient, SimulatedSourceClient, SourceClient, SourceUnavailable
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
        for source in [Source(s) for s in options["source"] or [s.value for s in Source]]:
            client = client_for(source)
            if client is None:
                self.stdout.write(f"{source}: no endpoint configured, skipped")
                continue
            published = failures = 0
            for record in records_to_sync(source, limit=options["limit"]):
                try:
                    published += source_sync(record=record, source=source, client=client).published_items
                except SourceUnavailable as error:
                    failures += 1
                    self.stderr.write(f"{source} record {record.pk}: {error.message}")
            self.stdout.write(f"{source}: {published} items published, {failures} failures")
