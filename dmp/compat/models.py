"""DMP-compatible software (LPS) and their homologation numbers, checked on every flow."""

from __future__ import annotations

from django.db import models


class SoftwareProduct(models.Model):
    """A homologated software product. The homologation number is secret: only its hash is kept."""

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE", "Homologué"
        SUSPENDED = "SUSPENDED", "Suspendu"
        WITHDRAWN = "WITHDRAWN", "Retiré"

    class Profile(models.TextChoices):
        CREATION = "CREATION", "Création"
        FEEDING = "ALIMENTATION", "Alimentation"
        CONSULTATION = "CONSULTATION", "Consultation"

    vendor = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    versions = models.CharField(max_length=200, blank=True)  # comma-separated homologated versions
    homologation_hash = models.CharField(max_length=64, unique=True)  # HMAC-SHA-256 of the number
    homologation_hint = models.CharField(max_length=8, blank=True)  # last characters, for support staff
    profiles = models.JSONField(default=list)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    is_public = models.BooleanField(default=True)  # listed on the public portal
    homologated_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.vendor} {self.name} ({self.status})"
