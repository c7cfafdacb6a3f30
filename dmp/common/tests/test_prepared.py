"""Statements compiled once (PreparedQuery) and the lean INSERT (insert_row) give what the ORM gives."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.db.models.functions import Upper
from django.forms.models import model_to_dict

from dmp.audit.models import AuditChainHead, AuditEvent
from dmp.common.prepared import PreparedQuery
from dmp.common.rows import insert_row, insert_row_then, insert_rows
from dmp.identity.models import Patient
from dmp.ihe.xds.models import SeenAssertion
from dmp.records.models import Authorisation, GranteeKind, Record

pytestmark = pytest.mark.django_db

BY_INS = PreparedQuery(
    lambda ins, authority: Record.objects.select_related("patient").filter(
        patient__ins=ins, patient__ins_authority=authority
    ),
    str,
    str,
)
GRANTS = PreparedQuery(
    lambda record_id, kind: Authorisation.objects.filter(record_id=record_id, grantee_kind=kind).order_by(
        "pk"
    ),
    int,
    str,
)
GRANTEES = PreparedQuery(
    lambda record_id: (
        Authorisation.objects.filter(record_id=record_id)
        .order_by("grantee_id")
        .values_list("grantee_id", "status", "expires_at")
    ),
    int,
)


def test_a_prepared_query_gives_the_instances_and_related_rows_of_the_queryset(personas):
    for patient in Patient.objects.all():
        expected = Record.objects.select_related("patient").filter(
            patient__ins=patient.ins, patient__ins_authority=patient.ins_authority
        )
        found = BY_INS.one(patient.ins, patient.ins_authority)
        if not expected.exists():
            assert found is None
            continue
        assert found is not None
        assert model_to_dict(found) == model_to_dict(expected.get())
        # The joined patient came with the row (no query), with its converted values.
        assert "patient" in found._state.fields_cache
        assert model_to_dict(found.patient) == model_to_dict(patient)
        assert isinstance(found.patient.birth_date, dt.date)
    assert BY_INS.one("1" * 15, "no such authority") is None


def test_a_prepared_query_sets_the_annotations_of_the_queryset(personas):
    annotated = PreparedQuery(
        lambda record_id: Record.objects.filter(pk=record_id).annotate(
            grants=Count("authorisations"), ins=Upper("patient__ins")
        ),
        int,
    )
    for record in Record.objects.all():
        expected = Record.objects.annotate(grants=Count("authorisations"), ins=Upper("patient__ins")).get(
            pk=record.pk
        )
        found = annotated.one(record.pk)
        assert found is not None
        assert (found.grants, found.ins) == (expected.grants, expected.ins)
    assert any(found.grants for found in annotated.rows(personas.alice.record.pk))


def test_values_are_substituted_on_every_run_not_kept_from_the_first(personas):
    records = list(Record.objects.order_by("pk"))
    assert len(records) > 1
    for record in records:
        for kind in GranteeKind.values:
            expected = list(Authorisation.objects.filter(record=record, grantee_kind=kind).order_by("pk"))
            assert [model_to_dict(row) for row in GRANTS.rows(record.pk, kind)] == [
                model_to_dict(row) for row in expected
            ]
        assert GRANTEES.tuples(record.pk) == list(
            Authorisation.objects.filter(record=record)
            .order_by("grantee_id")
            .values_list("grantee_id", "status", "expires_at")
        )
    assert any(GRANTS.rows(record.pk, GranteeKind.PROFESSIONAL) for record in records)


def test_a_query_whose_shape_depends_on_its_values_is_refused():
    twice = PreparedQuery(lambda key: Record.objects.filter(Q(pk=key) | Q(patient_id=key)), int)
    with pytest.raises(ValueError, match="each argument once"):
        twice.rows(1)
    with pytest.raises(TypeError):
        PreparedQuery(lambda moment: Record.objects.filter(created_at=moment), dt.datetime).rows(
            dt.datetime.now(tz=dt.UTC)
        )
    with pytest.raises(TypeError, match="values_list"):
        GRANTS.tuples(1, GranteeKind.PROFESSIONAL)
    with pytest.raises(TypeError, match="tuples"):
        GRANTEES.rows(1)
    with pytest.raises(TypeError, match="expected 2 values"):
        GRANTS.rows(1)


def test_insert_row_writes_what_save_writes_and_sets_the_key():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    common = {
        "sequence": 1,
        "occurred_at": moment,
        "action": 7,
        "outcome": "success",
        "actor_kind": "professional",
        "actor_id": "810001234567",
        "details": {"alert": True, "names": ["é", "ü"]},
        "previous_hash": "0" * 64,
        "hash": "1" * 64,
    }
    saved = AuditEvent(chain=1, **common)
    saved.save(force_insert=True)
    inserted = AuditEvent(chain=2, **common)
    insert_row(inserted)
    assert inserted.pk is not None
    assert inserted.pk != saved.pk
    assert not inserted._state.adding
    reloaded = {
        event.chain: model_to_dict(event, exclude=["id", "chain"]) for event in AuditEvent.objects.all()
    }
    assert reloaded[1] == reloaded[2]
    # auto_now_add is filled as save() fills it.
    seen = SeenAssertion(assertion_id="_x", expires_at=moment)
    insert_row(seen)
    assert SeenAssertion.objects.get(pk=seen.pk).seen_at is not None


def _event(chain: int, sequence: int, actor_id: str) -> AuditEvent:
    return AuditEvent(
        chain=chain,
        sequence=sequence,
        occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        action=7,
        outcome="success",
        actor_kind="professional",
        actor_id=actor_id,
        details={},
        previous_hash="0" * 64,
        hash="1" * 64,
    )


def test_insert_row_then_writes_the_row_with_its_key_and_runs_the_statement():
    AuditChainHead.objects.create(chain=4, sequence=0, hash="0" * 64)
    update = "UPDATE audit_auditchainhead SET sequence = %s, hash = %s WHERE chain = %s"
    first, second = _event(4, 1, "first"), _event(4, 2, "second")
    insert_row_then(first, update, [1, "a" * 64, 4])
    insert_row_then(second, update, [2, "b" * 64, 4])
    assert first.pk is not None
    assert second.pk is not None
    assert first.pk != second.pk
    assert not second._state.adding
    assert AuditEvent.objects.get(pk=second.pk).actor_id == "second"
    head = AuditChainHead.objects.get(chain=4)
    assert (head.sequence, head.hash) == (2, "b" * 64)


def test_insert_row_then_is_one_change_the_failing_statement_undoes():
    AuditChainHead.objects.create(chain=5, sequence=0, hash="0" * 64)
    AuditChainHead.objects.create(chain=6, sequence=0, hash="0" * 64)
    clash = "UPDATE audit_auditchainhead SET chain = %s WHERE chain = %s"  # chain is unique
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row_then(_event(5, 1, "lost"), clash, [6, 5])
    assert not AuditEvent.objects.filter(actor_id="lost").exists()
    assert AuditChainHead.objects.get(chain=5).sequence == 0


def test_insert_rows_writes_many_rows_in_batches_with_their_keys_in_order(settings):
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    events = [
        AuditEvent(
            chain=9,
            sequence=index,
            occurred_at=moment,
            action=7,
            outcome="success",
            actor_kind="professional",
            actor_id=f"actor-{index}",
            details={"index": index},
            previous_hash="0" * 64,
            hash=f"{index:064d}",
        )
        for index in range(1, 120)  # more rows than one statement takes on SQLite (999 parameters)
    ]
    insert_rows(events)
    stored = {event.pk: (event.sequence, event.actor_id, event.details) for event in AuditEvent.objects.all()}
    assert len(stored) == len(events)
    for event in events:
        assert stored[event.pk] == (event.sequence, f"actor-{event.sequence}", {"index": event.sequence})
    insert_rows([])  # nothing to do
    with pytest.raises(TypeError, match="one model"):
        insert_rows([events[0], SeenAssertion(assertion_id="_y", expires_at=moment)])


def test_insert_rows_refuses_a_related_row_never_saved():
    unsaved = Record()
    with pytest.raises(ValueError, match="unsaved related object"):
        insert_rows([Authorisation(record=unsaved, grantee_kind=GranteeKind.PROFESSIONAL, grantee_id="x")])
