"""Notices of break-glass and Centre 15 accesses: every committed access is told, whatever the
order in which audit events commit and whatever the state of the message gateway."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest
from django.db import connection, transaction

from dmp.access.actors import AccessMode
from dmp.accounts.gateway import OutboxGateway
from dmp.accounts.models import OutboxMessage
from dmp.accounts.services import account_activate, account_initialise, exceptional_access_notify
from dmp.accounts.tests.helpers import PASSWORD, active_account
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent, PendingNotice
from dmp.audit.services import Subject, audit_record
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.selectors import document_retrieve
from dmp.documents.services import submission_register

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


def _publish(personas, patient) -> str:
    caller = personas.ps(personas.dr_bernard)
    author = author_for(
        person_id=caller.actor.person_id,
        family_name="Lefèvre",
        given_name="Bernard",
        structure_id=caller.actor.structure_id,
        structure_name=caller.actor.structure_name,
    )
    submission = submission_for(ins=patient.identifier, author=author, drafts=[DocumentDraft(title="Bilan")])
    return submission_register(caller=caller, submission=submission).documents[0].unique_id


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_break_glass_read_is_answered_while_the_mail_server_is_down(transactional_db, personas, settings):
    """With Celery inline, the notice ran in the commit of the access and its SMTP error came out
    of the service: the ITI-43 retrieve answered 500 though its trace was committed, and the
    notice was lost with the notifier's rolled-back batch."""
    active_account(personas)
    unique_id = _publish(personas, personas.alice)
    settings.OPENDMP_MESSAGE_GATEWAY = "smtp"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    for _ in range(2):  # the next emergency access is not refused either
        retrieved = document_retrieve(caller=glass, unique_id=unique_id)
        assert retrieved.content
    reads = AuditEvent.objects.filter(action=AuditAction.DOCUMENT_RETRIEVE, access_mode="bris_de_glace")
    assert reads.count() == 2
    assert PendingNotice.objects.count() == 2  # kept for when the server is back
    settings.OPENDMP_MESSAGE_GATEWAY = "outbox"
    OutboxMessage.objects.all().delete()
    assert exceptional_access_notify() == 1
    assert "bris de glace" in OutboxMessage.objects.get(destination="alice@example.org").body
    assert not PendingNotice.objects.exists()


class _RefusingOne:
    """The relay refuses one address (a full mailbox, a closed SMS line); the others go out."""

    def __init__(self, refused: str) -> None:
        self.refused = refused

    def send(self, *, channel: str, destination: str, subject: str, body: str) -> None:
        if destination == self.refused:
            raise smtplib.SMTPRecipientsRefused({destination: (550, b"mailbox unavailable")})
        OutboxGateway().send(channel=channel, destination=destination, subject=subject, body=body)


def test_a_notice_that_cannot_be_sent_waits_and_does_not_hold_back_the_others(personas):
    """One failed send raised out of the notifier: nobody was told and the batch was rolled back."""
    active_account(personas)
    _representative_account(personas)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="urgence")
    for patient in (personas.alice, personas.leo):
        document_retrieve(caller=glass, unique_id=_publish(personas, patient))
    OutboxMessage.objects.all().delete()
    assert exceptional_access_notify(gateway=_RefusingOne("alice@example.org")) == 1
    assert list(OutboxMessage.objects.values_list("destination", flat=True)) == ["maman@example.org"]
    alice_notices = PendingNotice.objects.filter(event__record_id=personas.alice.record.pk)
    assert alice_notices.count() == 1
    assert PendingNotice.objects.count() == 1
    # Once the address works again, Alice is told; Léo's mother is not told twice.
    assert exceptional_access_notify() == 1
    assert sorted(OutboxMessage.objects.values_list("destination", flat=True)) == [
        "alice@example.org",
        "maman@example.org",
    ]
    assert not PendingNotice.objects.exists()


def _representative_account(personas) -> None:
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.leo.record,
        representative=personas.alice_as_mother,
        otp_destination="maman@example.org",
    )
    account_activate(code=code, identifier="maman.de.leo", password=PASSWORD)
