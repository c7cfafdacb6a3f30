"""The audit trail: append-only, hash-chained, written in the same transaction as the action.

Events are spread over `OPENDMP_AUDIT_CHAINS` independent chains (by record) so that
concurrent writers do not all queue on one lock. Each event stores the hash of the previous
event of its chain; `manage.py audit_verify` recomputes every chain. Database triggers
(see migrations) refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    chain = models.PositiveSmallIntegerField()
    sequence = models.BigIntegerField()  # position in its chain, from 1, no gaps
    occurred_at = models.DateTimeField()
    action = models.PositiveIntegerField()  # AuditAction
    outcome = models.CharField(max_length=16)  # success / denied / failure
    reason = models.CharField(max_length=64, blank=True)  # policy reason or error code
    # Who: person, structure, software, how authenticated.
    actor_kind = models.CharField(max_length=24)
    actor_id = models.CharField(max_length=64)
    actor_name = models.CharField(max_length=200, blank=True)
    actor_profession = models.CharField(max_length=16, blank=True)
    actor_structure_id = models.CharField(max_length=40, blank=True)
    actor_structure_name = models.CharField(max_length=200, blank=True)
    authentication = models.CharField(max_length=24, blank=True)
    software = models.CharField(max_length=200, blank=True)
    access_mode = models.CharField(max_length=16, blank=True)
    access_reason = models.CharField(max_length=500, blank=True)  # break-glass justification
    # What it was about.
    record_id = models.BigIntegerField(null=True)
    patient_ins = models.CharField(max_length=22, blank=True)
    document_unique_id = models.CharField(max_length=128, blank=True)
    document_entry_uuid = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=16, blank=True)  # xds / mhd / ps_portal / patient_portal / ...
    details = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "sequence"], name="audit_chain_sequence_unique"),
        ]
        indexes = [
            # The patient's traces and the PS's own actions; nothing else is indexed.
            models.Index(fields=["record_id", "-occurred_at"], name="audit_record_idx"),
            models.Index(fields=["actor_id", "-occurred_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"audit {self.chain}:{self.sequence} action={self.action} {self.outcome}"


class AuditChainHead(models.Model):
    """The last event of each chain; locked while appending so the chain stays linear."""

    chain = models.PositiveSmallIntegerField(primary_key=True)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"chain {self.chain} at {self.sequence}"


class AuditCheckpoint(models.Model):
    """An HMAC-signed snapshot of every chain head (CNIL: logs signed at creation)."""

    created_at = models.DateTimeField()
    heads = models.JSONField()  # {chain: [sequence, hash]}
    signature = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"checkpoint {self.created_at:%Y-%m-%d %H:%M}"


class PendingNotice(models.Model):
    """An exceptional access (break-glass, Centre 15) the patient has not been told of yet.

    Written by `audit_record` in the transaction of the event, consumed (deleted) by the layer
    that tells patients. Events of different chains commit in any order, so a notifier that
    followed primary keys would skip an event committed after a higher one; these rows are
    exactly the events left to tell, whatever the order of their commits.
    """

    event = models.OneToOneField(AuditEvent, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"notice pending for audit event {self.event_id}"
