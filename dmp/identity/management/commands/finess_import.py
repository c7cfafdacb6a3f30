"""Load the structures of a FINESS extraction, each site attached to its legal entity.

    manage.py finess_import etalab-cs1100507-stock-YYYYMMDD-0336.csv [--dry-run]

The file is the data.gouv.fr "FINESS Extraction du Fichier des établissements" (sites, with
the FINESS number of their legal entity). The whole file is taken or nothing: each bad line
and each conflict with the directory is listed, and nothing changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from dmp.common.errors import ValidationFailed
from dmp.identity.finess import read_finess
from dmp.identity.services import structures_import_finess


class DryRun(Exception):
    """Undoes a dry run's transaction once its figures are known."""


class Command(BaseCommand):
    help = "Import the sites and legal entities of a FINESS extraction (data.gouv.fr)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="check and count, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            sites = read_finess(path.read_bytes())
            with transaction.atomic():
                report = structures_import_finess(sites)
                if options["dry_run"]:
                    raise DryRun
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        except ValidationFailed as exc:
            lines = "\n".join(
                f"  {p.location}: {p.message}" if p.location else f"  {p.message}" for p in exc.problems
            )
            raise CommandError(f"{path}: nothing imported, {len(exc.problems)} problem(s)\n{lines}") from exc
        except DryRun:
            self.stdout.write("dry run: nothing changed")
        self.stdout.write(
            f"{len(sites)} sites read: {report.sites_created} created, {report.sites_updated} updated, "
            f"{report.legal_entities_created} legal entities created, {report.sites_moved} sites attached "
            "to a new legal entity"
        )
