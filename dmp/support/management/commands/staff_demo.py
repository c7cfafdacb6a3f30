"""Demo staff accounts (helpdesk agent, operator) and a few tickets, for `dev.py run`."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dmp.common.staff import HELPDESK_GROUP, OPERATOR_GROUP
from dmp.support.models import Ticket
from dmp.support.services import TicketRequest, ticket_change_status, ticket_comment, ticket_open

DEMO_TICKETS = [
    TicketRequest(
        "PHONE",
        "PATIENT",
        "Mme A. Martin",
        "alice.martin@example.org",
        "ACCESS",
        "Code d'activation perdu",
        "La patiente a égaré le code remis par son médecin.",
    ),
    TicketRequest(
        "WEB",
        "PS",
        "Dr B. Lefèvre",
        "bernard.lefevre@example.org",
        "USAGE",
        "Document masqué introuvable",
        "Le médecin ne retrouve pas un compte rendu.",
    ),
    TicketRequest(
        "EMAIL",
        "VENDOR",
        "Éditeur Exemple",
        "support@editeur.example",
        "COMPAT",
        "Erreur XDSRegistryMetadataError",
        "Soumission refusée en recette.",
        "P2",
    ),
    TicketRequest(
        "PHONE",
        "ES",
        "CHU de Rennes",
        "+33299000000",
        "INCIDENT",
        "Lenteurs à l'alimentation",
        "Temps de réponse élevés depuis 9 h.",
        "P1",
    ),
]


class Command(BaseCommand):
    help = "Create demo staff accounts (helpdesk, pilotage) and demo tickets. Demo deployments only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--if-missing", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO:
            raise CommandError("staff_demo only runs with OPENDMP_DEMO=true")
        users = get_user_model()
        if options["if_missing"] and users.objects.filter(username="helene.support").exists():
            return
        password = os.environ.get("OPENDMP_DEMO_STAFF_PASSWORD") or secrets.token_urlsafe(12)
        helpdesk, _ = Group.objects.get_or_create(name=HELPDESK_GROUP)
        operators, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
        for username, group in (("helene.support", helpdesk), ("olivier.ops", operators)):
            user, _ = users.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            user.groups.add(group)
        for request in DEMO_TICKETS:
            ticket = ticket_open(request, author="helene.support")
            if request.category == "USAGE":
                ticket_comment(
                    ticket, author="helene.support", text="Rappel des règles de masquage.", public=True
                )
                ticket_change_status(ticket, author="helene.support", to_status=Ticket.Status.RESOLVED)
        (settings.DATA_DIR / "staff-demo-password.txt").write_text(password + "\n")
        self.stdout.write(
            f"demo staff: helene.support (support) and olivier.ops (pilotage), password in "
            f"{settings.DATA_DIR / 'staff-demo-password.txt'}"
        )
