"""Notices of break-glass and Centre 15 accesses: every committed access is told, whatever the
order in which audit events commit and whatever the state of the message gateway."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from dmp.access.actors import AccessMode
from dmp.accounts.models import OutboxMessage
from dmp.accounts.services import exceptional_access_notify
from dmp.accounts.tests.helpers import active_account
from dmp.audit.actions import AuditAction
from dmp.audit.models import PendingNotice
from dmp.audit.services import Subject, audit_record

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite lets one writer at a time: its commits follow the order of the keys",
)
def test_an_access_committed_after_a_later_numbered_one_is_still_notified(
    transactional_db, personas, settings
):
    """The notifier read events after a key cursor: an access whose transaction took its key
    first but committed last was behind the cursor already, and Alice was never told."""
    active_account(personas)
    # One chain per record: the two transactions do not wait on one chain head.
    settings.OPENDMP_AUDIT_CHAINS = 1024
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    alice, leo = personas.alice.record, personas.leo.record
    written, commit = threading.Event(), threading.Event()

    def slow_access() -> None:
        try:
            with transaction.atomic():
                audit_record(
                    caller=glass,
                    action=AuditAction.DOCUMENT_QUERY,
                    subject=Subject(record_id=alice.pk, patient_ins=personas.alice.ins),
                )
                written.set()
                commit.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_access)
    thread.start()
    assert written.wait(timeout=30)
    with transaction.atomic():  # a later key, committed first; its commit runs the notifier
        audit_record(
            caller=glass,
            action=AuditAction.DOCUMENT_QUERY,
            subject=Subject(record_id=leo.pk, patient_ins=personas.leo.ins),
        )
    commit.set()
    thread.join(timeout=30)
    exceptional_access_notify()
    message = OutboxMessage.objects.get(destination="alice@example.org", subject__contains="exceptionnel")
    assert "bris de glace" in message.body
    assert not PendingNotice.objects.exists()
