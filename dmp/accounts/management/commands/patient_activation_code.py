"""Demo and support: a professional hands over a web-account activation code (TD1.5a).

    manage.py patient_activation_code --ins 285037512345678 --professional 810000010016 \
        --email alice@example.org

The professional must be allowed to do it (authorised on the record); the code is printed once.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dmp.access.actors import Caller, Channel
from dmp.accounts.services import account_initialise
from dmp.common.errors import DomainError
from dmp.identity.actors import professional_actor
from dmp.identity.models import HealthProfessional
from dmp.records.models import Record


class Command(BaseCommand):
    help = "Issue a patient web-account activation code on behalf of a professional."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ins", required=True, help="patient INS (NIR or NIA)")
        parser.add_argument("--professional", required=True, help="PS_IdNat of the professional")
        parser.add_argument("--email", default="", help="where one-time codes go (default: patient's)")
        parser.add_argument("--sms", default="", help="mobile number for one-time codes instead")

    def handle(self, *args: Any, **options: Any) -> None:
        professional = HealthProfessional.objects.filter(national_id=options["professional"]).first()
        record = Record.objects.select_related("patient").filter(patient__ins=options["ins"]).first()
        if professional is None or record is None:
            raise CommandError("unknown professional or record")
        caller = Caller(
            actor=professional_actor(professional, professional.structures.first()),
            channel=Channel.PROFESSIONAL_PORTAL,
        )
        channel, destination = ("sms", options["sms"]) if options["sms"] else ("email", options["email"])
        try:
            code = account_initialise(
                caller=caller, record=record, otp_channel=channel, otp_destination=destination
            )
        except DomainError as error:
            raise CommandError(f"refused: {error.message}") from error
        self.stdout.write(code)
