"""External sources the DMP is fed from, when the patient allows it.

* Reimbursement history of the Assurance Maladie (historique des remboursements), published
  as documents of class 60 "Données de remboursement".
* Pharmacy dossier (dossier pharmaceutique), published as dispensation documents (class 43).
"""

from __future__ import annotations

from django.db import models

from dmp.records.models import Record


class Source(models.TextChoices):
    REIMBURSEMENTS = "REMB", "Historique des remboursements (Assurance Maladie)"
    PHARMACY = "DP", "Dossier pharmaceutique"


class SourceConsent(models.Model):
    """The patient's choice for one external source on their record (off until allowed)."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="source_consents")
    source = models.CharField(max_length=8, choices=Source.choices)
    allowed = models.BooleanField(default=False)
    changed_at = models.DateTimeField()
    changed_by_id = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "source"], name="source_consent_unique")]

    def __str__(self) -> str:
        return f"{self.source} {'allowed' if self.allowed else 'refused'} on {self.record_id}"


class SourceSync(models.Model):
    """Where the last synchronisation of a source for a record stopped (items already published)."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="source_syncs")
    source = models.CharField(max_length=8, choices=Source.choices)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Set before fetching, even if the synchronisation then fails: the nightly run takes the
    # records whose turn is the oldest, so failing ones cannot hold the others back.
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_item_date = models.DateField(null=True, blank=True)
    # item_id -> ISO date of the published items dated inside the late-items window
    # (services.LATE_ITEMS_WINDOW): those a later fetch may return again.
    recent_items = models.JSONField(default=dict)
    published_items = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "source"], name="source_sync_unique")]

    def __str__(self) -> str:
        return f"{self.source} sync of {self.record_id} at {self.last_synced_at}"
