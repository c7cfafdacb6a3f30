"""Test helpers shared by the accounts and patient-portal tests."""

from __future__ import annotations

import re

from dmp.accounts.models import OutboxMessage, WebAccount
from dmp.accounts.services import account_activate, account_initialise, login_start, login_verify
from dmp.demo.personas import Personas

PASSWORD = "Tilleul#Bleu-2026"
IDENTIFIER = "alice.martin"


def handed_over_code(personas: Personas, *, email: str = "alice@example.org") -> str:
    """Dr Bernard (médecin traitant) opens Alice's web account; returns the activation code."""
    return account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.alice.record,
        otp_channel="email",
        otp_destination=email,
    )


def active_account(personas: Personas) -> WebAccount:
    code = handed_over_code(personas)
    return account_activate(code=code, identifier=IDENTIFIER, password=PASSWORD)


def last_code(destination: str = "alice@example.org") -> str:
    message = OutboxMessage.objects.filter(destination=destination).order_by("-pk").first()
    assert message is not None
    match = re.search(r"\b(\d{6})\b", message.body)
    assert match is not None
    return match.group(1)


def logged_in(personas: Personas) -> WebAccount:
    active_account(personas)
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    return login_verify(challenge_id=step.challenge_id, code=last_code())
