"""Verification of the audit trail: every chain, every link, every signed checkpoint."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from django.db import transaction

from dmp.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from dmp.audit.services import GENESIS_HASH, checkpoint_signature, event_hash


@dataclass
class VerificationReport:
    events_checked: int = 0
    chains_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit_trail(*, batch_size: int = 5000) -> VerificationReport:
    """Every chain, link and checkpoint, read from one snapshot of the database.

    The trail is written while it is verified: read at different moments, a head and its
    chain's events disagree whenever an event commits in between (reported as tampering).
    Inside one transaction they cannot: on PostgreSQL a repeatable-read, read-only one; SQLite
    (WAL) keeps the snapshot of a read transaction from its first read.
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        return _verify(batch_size)  # the caller's transaction is the snapshot
    if connection.vendor == "sqlite":
        # The project's writers BEGIN IMMEDIATE; a verification holding the write lock that long
        # would stop every writer, where a deferred read transaction has its snapshot all the same.
        writers_mode, connection.transaction_mode = connection.transaction_mode, "DEFERRED"
        try:
            with transaction.atomic():
                return _verify(batch_size)
        finally:
            connection.transaction_mode = writers_mode
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _verify(batch_size)


def _verify(batch_size: int) -> VerificationReport:
    report = VerificationReport()
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    last_seen: dict[int, tuple[int, str]] = {}
    for chain in sorted(chains):
        report.chains_checked += 1
        expected_previous, expected_sequence = GENESIS_HASH, 1
        events = AuditEvent.objects.filter(chain=chain).order_by("sequence")
        for event in events.iterator(chunk_size=batch_size):
            report.events_checked += 1
            where = f"chain {chain} event {event.sequence}"
            if event.sequence != expected_sequence:
                report.problems.append(f"{where}: expected sequence {expected_sequence} (gap or reorder)")
            if event.previous_hash != expected_previous:
                report.problems.append(f"{where}: previous hash does not link to the preceding event")
            if event_hash(event) != event.hash:
                report.problems.append(f"{where}: content does not match its hash (tampered)")
            expected_previous, expected_sequence = event.hash, event.sequence + 1
        last_seen[chain] = (expected_sequence - 1, expected_previous)
        head = heads.get(chain)
        if head is not None and (head.sequence, head.hash) != last_seen[chain]:
            report.problems.append(
                f"chain {chain}: head says {head.sequence}, events end at {last_seen[chain][0]}"
            )
    for checkpoint in AuditCheckpoint.objects.order_by("created_at"):
        report.checkpoints_checked += 1
        signature = checkpoint_signature(checkpoint.heads)
        if not hmac.compare_digest(signature, checkpoint.signature):
            report.problems.append(f"checkpoint {checkpoint.pk}: signature invalid")
            continue
        for chain_text, (sequence, digest) in checkpoint.heads.items():
            if sequence == 0:
                continue
            found = AuditEvent.objects.filter(chain=int(chain_text), sequence=sequence).values_list(
                "hash", flat=True
            )
            if list(found) != [digest]:
                report.problems.append(
                    f"checkpoint {checkpoint.pk}: chain {chain_text} event {sequence} "
                    "differs from the signed head"
                )
    return report
