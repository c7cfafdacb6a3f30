from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dmp.ihe.xds.entry_texts import write_missing


class Command(BaseCommand):
    help = (
        "Write the query-answer text of every document entry that has none, or one of an earlier "
        "version: entries stored through another channel or by an earlier release, or updated "
        "since. Queries answer correctly without it, writing each such entry as they go."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=2000, help="entries per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        written = 0
        for count in write_missing(batch=options["batch"]):
            written += count
            if options["verbosity"] > 1:
                self.stdout.write(f"{written} entries written")
        elapsed = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(f"{written} entry texts written in {elapsed:.0f} s"))
