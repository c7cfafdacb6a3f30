"""Generate the test PKI ("IGC Santé de test") for every known professional and structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dmp.identity.models import Certificate, HealthProfessional, Structure
from dmp.identity.pki import certificate_register, create_test_pki


class Command(BaseCommand):
    help = "Create a test PKI: root, issuing CA, CPS cards, structure and server certificates (PEM files)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, default=None, help="directory (default OPENDMP_PKI_DIR)")
        parser.add_argument("--limit", type=int, default=200, help="at most this many professionals")
        parser.add_argument("--if-missing", action="store_true", help="do nothing if the trust bundle exists")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"] or settings.OPENDMP_PKI_DIR
        if options["if_missing"] and (out / "trust.pem").exists():
            self.stdout.write(f"test PKI already in {out}")
            return
        pki = create_test_pki()
        for professional in HealthProfessional.objects.order_by("pk")[: options["limit"]]:
            structure = professional.structures.first()
            auth, sign = pki.cps_card(
                national_id=professional.national_id,
                display_name=professional.display_name,
                structure_name=structure.name if structure else "",
            )
            certificate_register(auth, usage=Certificate.Usage.CPS_AUTH, professional=professional)
            certificate_register(sign, usage=Certificate.Usage.CPS_SIGN, professional=professional)
        for structure in Structure.objects.order_by("pk")[: options["limit"]]:
            auth, sign = pki.structure(id_nat=structure.id_nat, name=structure.name)
            certificate_register(auth, usage=Certificate.Usage.ORG_AUTH_CLI, structure=structure)
            certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=structure)
        certificate_register(pki.server(), usage=Certificate.Usage.SERVER)
        pki.write(out)
        self.stdout.write(
            self.style.SUCCESS(f"test PKI with {len(pki.issued)} certificates written to {out}")
        )
