"""Statements compiled once (PreparedQuery) and the lean INSERT (insert_row) give what the ORM gives."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Q
from django.forms.models import model_to_dict

from dmp.audit.models import AuditEvent
from dmp.common.prepared import PreparedQuery
from dmp.common.rows import insert_row, insert_rows
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
