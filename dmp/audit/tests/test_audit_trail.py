# mypy: disable-error-code="union-attr,arg-type"
"""The audit trail: written with the action, readable by the patient and by the PS for its own
actions, and any tampering (changed row, removed row, forged checkpoint) is detected."""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from dmp.access.actors import AccessMode
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditCheckpoint, AuditEvent
from dmp.audit.services import (
    GENESIS_HASH,
    BulkEntry,
    Subject,
    audit_bulk_record,
    audit_checkpoint_create,
)
from dmp.audit.verify import verify_audit_trail
from dmp.common.errors import NotFound
from dmp.records.access import record_by_ins
from dmp.records.selectors import own_traces, record_traces
from dmp.records.services import record_test

pytestmark = pytest.mark.django_db


def test_each_access_and_each_denial_is_recorded_with_who_what_and_mode(personas):
    before = AuditEvent.objects.count()
    moreau = personas.ps(personas.dr_moreau)
    record_test(caller=moreau, ins=personas.alice.identifier)
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.outcome, event.actor_id) == (
        AuditAction.RECORD_TEST,
        "success",
        personas.dr_moreau.national_id,
    )
    assert event.patient_ins == personas.alice.ins
    assert event.actor_structure_id == moreau.actor.structure_id
    assert event.software  # the LPS that made the call

    # A denial is recorded too, even though the caller only sees "not found".
    durand = personas.ps(personas.dr_durand, mode=AccessMode.BREAK_GLASS, reason="urgence")
    record = record_by_ins(personas.alice.identifier)
    with pytest.raises(NotFound):
        record_traces(caller=durand, record=record)
    denial = AuditEvent.objects.order_by("-id").first()
    assert (denial.outcome, denial.actor_id, denial.access_mode) == (
        "denied",
        personas.dr_durand.national_id,
        AccessMode.BREAK_GLASS.value,
    )
    assert verify_audit_trail().ok


def test_the_patient_reads_the_traces_of_the_record_and_a_ps_its_own_actions(personas):
    record = record_by_ins(personas.alice.identifier)
    record_test(caller=personas.ps(personas.dr_moreau), ins=personas.alice.identifier)
    traces = list(record_traces(caller=personas.patient(personas.alice), record=record))
    assert personas.dr_moreau.national_id in {t.actor_id for t in traces}
    mine = own_traces(caller=personas.ps(personas.dr_moreau), limit=100)
    assert mine
    assert {t.actor_id for t in mine} == {personas.dr_moreau.national_id}
    # Another patient's traces are not the patient's business.
    other = record_by_ins(personas.leo.identifier)
    with pytest.raises(NotFound):
        record_traces(caller=personas.patient(personas.alice), record=other)


def _tamper(sql: str, params: list[object]) -> None:
    """Plays an attacker with the database owner's rights: the append-only triggers refuse the
    change first, so the attacker drops them (inside the test transaction, rolled back after)."""
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
    suffix = " ON audit_auditevent" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        for trigger in ("audit_event_no_update", "audit_event_no_delete"):
            cursor.execute(f"DROP TRIGGER {trigger}{suffix}")
        cursor.execute(sql, params)


def test_a_changed_row_is_detected(personas):
    assert verify_audit_trail().ok
    victim = AuditEvent.objects.order_by("id")[3]
    _tamper("UPDATE audit_auditevent SET actor_name = %s WHERE id = %s", ["someone else", victim.pk])
    report = verify_audit_trail()
    assert not report.ok
    assert any("tampered" in p for p in report.problems)
    with pytest.raises(CommandError, match="INVALID"):
        call_command("audit_verify")


def test_a_removed_row_and_a_rewritten_chain_are_detected(personas):
    audit_checkpoint_create()
    victim = AuditEvent.objects.order_by("id")[2]
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    problems = verify_audit_trail().problems
    assert any("gap" in p or "link" in p for p in problems)


def test_a_forged_checkpoint_is_detected(personas):
    checkpoint = audit_checkpoint_create()
    AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(signature="0" * len(checkpoint.signature))
    assert any("signature invalid" in p for p in verify_audit_trail().problems)


def test_a_clean_trail_verifies(personas):
    audit_checkpoint_create()
    call_command("audit_verify")


def test_exceptional_access_notices_are_queued_once_per_transaction(transactional_db, personas, monkeypatch):
    # Real commits (transactional_db): the hooks run when the outermost transaction commits.
    from dmp.audit import services
    from dmp.audit.services import Subject, audit_record

    calls: list[str] = []
    monkeypatch.setattr(services, "EXCEPTIONAL_ACCESS_HOOKS", [lambda: calls.append("notice")])
    durand = personas.ps(personas.dr_durand, mode=AccessMode.BREAK_GLASS, reason="urgence")
    record = record_by_ins(personas.alice.identifier)
    subject = Subject(record_id=record.pk, patient_ins=personas.alice.ins)
    with transaction.atomic():
        for _ in range(3):  # e.g. three documents of one break-glass submission
            audit_record(caller=durand, action=AuditAction.DOCUMENT_PUBLISH, subject=subject)
        assert calls == []  # nothing before the commit
    assert calls == ["notice"]
    # A normal access queues nothing; the next exceptional transaction queues again.
    with transaction.atomic():
        audit_record(caller=personas.ps(personas.dr_moreau), action=AuditAction.RECORD_TEST, subject=subject)
    with transaction.atomic():
        audit_record(caller=durand, action=AuditAction.RECORD_TEST, subject=subject)
    assert calls == ["notice", "notice"]


def test_a_bulk_event_in_local_time_is_stored_in_utc_and_verifies(personas):
    moreau = personas.ps(personas.dr_moreau)
    when = dt.datetime(2026, 3, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    with transaction.atomic():
        audit_bulk_record(
            [BulkEntry(moreau, AuditAction.RECORD_TEST, Subject(record_id=1), occurred_at=when)]
        )
    event = AuditEvent.objects.order_by("-id").first()
    assert event.occurred_at == when
    assert verify_audit_trail().ok, verify_audit_trail().problems


def test_a_bulk_event_without_a_time_zone_is_refused_and_nothing_is_written(personas):
    moreau = personas.ps(personas.dr_moreau)
    before = AuditEvent.objects.count()
    entries = [
        BulkEntry(moreau, AuditAction.RECORD_TEST, Subject(record_id=1)),
        BulkEntry(moreau, AuditAction.RECORD_TEST, Subject(record_id=1), occurred_at=dt.datetime(2026, 3, 1)),  # noqa: DTZ001 - the naive time under test
    ]
    with pytest.raises(ValueError, match="timezone-aware"), transaction.atomic():
        audit_bulk_record(entries)
    assert AuditEvent.objects.count() == before


def _event_committed_during_verification(monkeypatch, on_first_hash) -> None:
    """Runs `on_first_hash` once, when the verification has read the heads and hashes its first
    event: the moment another request's commit used to fall between the two reads."""
    from dmp.audit import services, verify

    calls: list[AuditEvent] = []

    def hashing(event: AuditEvent) -> str:
        if not calls:
            calls.append(event)
            on_first_hash()
        return services.event_hash(event)

    monkeypatch.setattr(verify, "event_hash", hashing)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite lets no writer in beside the test's reader; the snapshot is checked below",
)
def test_an_event_committed_during_verification_is_not_reported_as_tampering(
    transactional_db, personas, monkeypatch, settings
):
    """`audit_verify` read the chain heads first and the events later: an event committed in
    between gave "chain N: head says 7, events end at 8" and exit 1 on an intact trail."""
    import threading

    from dmp.audit.models import AuditChainHead
    from dmp.audit.services import audit_record

    moreau = personas.ps(personas.dr_moreau)
    # The event lands on the last chain verified, read after the first event is hashed.
    last_chain = AuditChainHead.objects.order_by("-chain").values_list("chain", flat=True).first()
    assert last_chain
    assert AuditChainHead.objects.count() > 1
    record_id = settings.OPENDMP_AUDIT_CHAINS + last_chain

    def record_test_elsewhere() -> None:
        try:
            with transaction.atomic():
                audit_record(
                    caller=moreau,
                    action=AuditAction.RECORD_TEST,
                    subject=Subject(record_id=record_id),
                )
        finally:
            connection.close()

    def concurrent_commit() -> None:
        writer = threading.Thread(target=record_test_elsewhere)
        writer.start()
        writer.join(timeout=30)

    before = AuditEvent.objects.count()
    _event_committed_during_verification(monkeypatch, concurrent_commit)
    report = verify_audit_trail()
    assert report.ok, report.problems
    assert AuditEvent.objects.count() == before + 1  # it did commit meanwhile
    assert verify_audit_trail().ok


def test_the_verification_reads_heads_and_events_in_one_transaction(transactional_db, personas, monkeypatch):
    """Outside any caller's transaction (as `manage.py audit_verify` runs), heads and events
    come from one snapshot: the first event is hashed inside the transaction that read the heads."""
    seen: list[bool] = []
    _event_committed_during_verification(monkeypatch, lambda: seen.append(connection.in_atomic_block))
    assert not connection.in_atomic_block
    assert verify_audit_trail().ok
    assert seen == [True]


@settings_hypothesis(max_examples=200, deadline=None)
@given(
    details=st.dictionaries(
        st.one_of(st.sampled_from(["previous_hash", "sequence", "software"]), st.text(max_size=8)),
        st.one_of(st.text(max_size=12), st.integers(), st.none()),
    ),
    text=st.text(max_size=30),
    record_id=st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
    sequence=st.integers(min_value=1, max_value=2**62),
    previous=st.binary(min_size=32, max_size=32),
)
def test_the_pieces_the_database_hashes_make_the_canonical_text_of_any_event(
    details, text, record_id, sequence, previous
):
    """`link_template` cut around the previous hash and the sequence, as PostgreSQL fills them:
    the text hashed there is `event_hash`'s, whatever the event holds (quotes, "é", keys that
    sort around "previous_hash" and "sequence")."""
    from dmp.audit.services import event_hash, link_template

    event = AuditEvent(
        chain=3,
        sequence=sequence,
        previous_hash=previous.hex(),
        occurred_at=dt.datetime(2026, 12, 6, 19, 0, tzinfo=dt.UTC),
        action=int(AuditAction.DOCUMENT_QUERY),
        outcome="success",
        reason=text[:64],
        actor_kind="professional",
        actor_id="810000000001",
        actor_name=text,
        record_id=record_id,
        patient_ins="1" * 15,
        details=details,
    )
    a, b, c = link_template(event)
    text_hashed = a + event.previous_hash.encode() + b + str(event.sequence).encode() + c
    assert hashlib.sha256(text_hashed).hexdigest() == event_hash(event)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement append is PostgreSQL's")
def test_events_appended_in_one_statement_chain_and_verify(personas, settings):
    """On PostgreSQL the server moves the head and hashes the event (`audit_alone`, and
    `audit_record` in a transaction): the events link, their hashes are `event_hash`'s, a
    chain's first event creates its head, and the trail verifies."""
    from dmp.audit.models import AuditChainHead
    from dmp.audit.services import audit_alone, audit_record, event_hash

    settings.OPENDMP_AUDIT_CHAINS = 1024
    chain = 1000  # beyond the 16 chains the fixtures wrote on: no head yet
    assert not AuditChainHead.objects.filter(chain=chain).exists()
    moreau = personas.ps(personas.dr_moreau)
    subject = Subject(record_id=chain, patient_ins="2" * 15)
    audit_alone(caller=moreau, action=AuditAction.TRACES_READ, subject=subject, details={"é": '"x"'})
    with transaction.atomic():
        audit_record(caller=moreau, action=AuditAction.RECORD_TEST, subject=subject)
    audit_alone(caller=moreau, action=AuditAction.TRACES_READ, subject=subject, reason="x", details=None)
    events = list(AuditEvent.objects.filter(chain=chain).order_by("sequence"))
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.previous_hash for e in events] == [GENESIS_HASH, events[0].hash, events[1].hash]
    assert all(event_hash(e) == e.hash for e in events)
    assert events[0].details == {"é": '"x"'}
    head = AuditChainHead.objects.get(chain=chain)
    assert (head.sequence, head.hash) == (3, events[2].hash)
    assert verify_audit_trail().ok, verify_audit_trail().problems


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
def test_concurrent_appends_in_one_statement_keep_one_chain(transactional_db, personas):
    """Four threads append to one chain, each event its own transaction (no BEGIN): the head's
    row lock orders them, none is lost, sequences have no gap, and the trail verifies."""
    import threading

    from dmp.audit.services import audit_alone

    moreau = personas.ps(personas.dr_moreau)
    subject = Subject(record_id=7, patient_ins="3" * 15)
    chain_before = AuditEvent.objects.filter(chain=7).count()
    errors: list[BaseException] = []

    def append_many() -> None:
        try:
            for _ in range(25):
                assert not connection.in_atomic_block
                audit_alone(caller=moreau, action=AuditAction.DOCUMENT_QUERY, subject=subject)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    sequences = list(
        AuditEvent.objects.filter(chain=7).order_by("sequence").values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, chain_before + 101))
    assert verify_audit_trail().ok, verify_audit_trail().problems
