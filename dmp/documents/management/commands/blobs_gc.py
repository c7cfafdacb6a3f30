from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dmp.documents.orphans import DEFAULT_GRACE, blobs_collect


class Command(BaseCommand):
    help = (
        "Delete the blobs no document version or lot signature refers to (bytes of submissions refused "
        "after they were stored), once older than the grace period. Run it daily; safe while the system runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=DEFAULT_GRACE.total_seconds() / 3600,
            help="keep unreferenced blobs younger than this: submissions in flight (default %(default)s)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        report = blobs_collect(grace=dt.timedelta(hours=options["grace_hours"]), dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"{report.examined} blobs: {report.referenced} referenced, "
            f"{report.recent} unreferenced but recent, "
            f"{report.unreadable} under destroyed keys; {verb} {report.deleted}"
        )
