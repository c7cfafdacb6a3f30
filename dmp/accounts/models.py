"""Patient web accounts (TD1.5): one per record holder or legal representative of a minor.

Secrets are never stored in clear: the activation code and one-time codes are kept as keyed
hashes (HMAC-SHA256 under the project secret), passwords with Django's password hashers.
Rows change only through `dmp.accounts.services`.
"""

from __future__ import annotations

import uuid

from django.db import models

from dmp.identity.models import LegalRepresentative
from dmp.records.models import Record


class OtpChannel(models.TextChoices):
    EMAIL = "email", "Courriel"
    SMS = "sms", "SMS"


class WebAccount(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "En attente d'activation"
        ACTIVE = "ACTIVE", "Actif"
        CLOSED = "CLOSED", "Fermé"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="web_accounts")
    # Empty for the holder's own account; set for a legal representative of a minor.
    representative = models.ForeignKey(
        LegalRepresentative, on_delete=models.CASCADE, null=True, blank=True, related_name="web_accounts"
    )
    # "holder:<record pk>" or "rl:<representative public id>": one account per person and record.
    holder_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    identifier = models.CharField(max_length=64, unique=True, null=True, blank=True)
    password = models.CharField(max_length=256, blank=True)
    activation_code_hash = models.CharField(max_length=64, blank=True, db_index=True)
    activation_expires_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    otp_channel = models.CharField(max_length=8, choices=OtpChannel.choices, default=OtpChannel.EMAIL)
    otp_destination = models.CharField(max_length=254, blank=True)
    # A re-issue of an active account (TD1.5): the channel the new code's holder chose, applied
    # at activation; until then the current credentials keep working (and cancel it on login).
    pending_otp_channel = models.CharField(max_length=8, choices=OtpChannel.choices, blank=True)
    pending_otp_destination = models.CharField(max_length=254, blank=True)
    totp_secret = models.CharField(max_length=128, blank=True)  # AES-GCM sealed, see services
    totp_enabled = models.BooleanField(default=False)
    notify_exceptional_access = models.BooleanField(default=True)
    failed_password_count = models.PositiveSmallIntegerField(default=0)
    failed_otp_count = models.PositiveSmallIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    notified_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_id = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"web account {self.public_id} ({self.status})"

    @property
    def is_representative(self) -> bool:
        return self.representative_id is not None


class LoginChallenge(models.Model):
    """The second step of a login: a one-time code sent to the account's channel (or TOTP)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(WebAccount, on_delete=models.CASCADE, related_name="challenges")
    code_hash = models.CharField(max_length=64, blank=True)  # empty when the TOTP app is used
    uses_totp = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"challenge {self.public_id}"


class OutboxMessage(models.Model):
    """A message handed to the outbox gateway (demo and tests read it instead of a phone)."""

    channel = models.CharField(max_length=8, choices=OtpChannel.choices)
    destination = models.CharField(max_length=254)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["destination", "-created_at"], name="outbox_destination_idx")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.destination}: {self.subject}"
