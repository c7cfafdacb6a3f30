"""Sending one-time codes and notifications to patients: a gateway with two backends.

* `outbox` (default; demo and tests): messages are stored in `OutboxMessage`.
* `smtp`: Django's e-mail (EMAIL_BACKEND / EMAIL_HOST ...); SMS go through an e-mail to SMS
  relay, `<digits>@OPENDMP_SMS_EMAIL_DOMAIN`, when the operator has one.
Chosen by the setting `OPENDMP_MESSAGE_GATEWAY`.
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mail

from dmp.accounts.models import OtpChannel, OutboxMessage


class MessageGateway(Protocol):
    def send(self, *, channel: str, destination: str, subject: str, body: str) -> None: ...


class OutboxGateway:
    def send(self, *, channel: str, destination: str, subject: str, body: str) -> None:
        OutboxMessage.objects.create(
            channel=channel, destination=destination, subject=subject[:200], body=body
        )


class SmtpGateway:
    def send(self, *, channel: str, destination: str, subject: str, body: str) -> None:
        if channel == OtpChannel.SMS:
            domain = str(getattr(settings, "OPENDMP_SMS_EMAIL_DOMAIN", "") or "")
            if not domain:
                raise ImproperlyConfigured("OPENDMP_SMS_EMAIL_DOMAIN is required to send SMS by e-mail")
            digits = "".join(c for c in destination if c.isdigit() or c == "+")
            destination = f"{digits}@{domain}"
        send_mail(subject, body, None, [destination], fail_silently=False)


def default_gateway() -> MessageGateway:
    name = str(getattr(settings, "OPENDMP_MESSAGE_GATEWAY", "outbox") or "outbox")
    if name == "outbox":
        return OutboxGateway()
    if name == "smtp":
        return SmtpGateway()
    raise ImproperlyConfigured(f"unknown OPENDMP_MESSAGE_GATEWAY {name!r}")


def outbox_latest(limit: int = 20) -> list[OutboxMessage]:
    """The last messages of the outbox gateway (the demo shows them instead of a phone)."""
    return list(OutboxMessage.objects.order_by("-pk")[:limit])
