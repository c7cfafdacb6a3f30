"""SI Pilotage: counters derived from the audit trail, dashboard and metrics endpoints."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dmp.access.actors import AccessMode
from dmp.accounts.services import LoginFailed, login_start
from dmp.audit.actions import AuditAction, Outcome
from dmp.audit.models import AuditEvent
from dmp.audit.services import audit_record
from dmp.common import clock
from dmp.common.staff import OPERATOR_GROUP
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.selectors import DocumentQuery, document_search
from dmp.documents.services import submission_register
from dmp.pilotage import middleware, services
from dmp.pilotage.models import AggregationCursor, DailyActiveUser, FedRecord, MetricCounter
from dmp.pilotage.selectors import metric_total, overview
from dmp.pilotage.services import pilotage_refresh
from dmp.records.models import ClosureReason
from dmp.records.services import record_close, record_reactivate


@pytest.fixture(autouse=True)
def no_lag(monkeypatch):
    monkeypatch.setattr(services, "LAG", dt.timedelta(seconds=-1))


def feed(personas):
    caller = personas.ps(personas.dr_bernard)
    author = author_for(person_id=caller.actor.person_id, family_name="Lefèvre", given_name="Bernard")
    submission = submission_for(ins=personas.alice.identifier, author=author, drafts=[DocumentDraft()])
    submission_register(caller=caller, submission=submission)


def test_counters_follow_the_audit_trail(personas):
    feed(personas)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="inconscient")
    document_search(caller=glass, record=personas.alice.record, query=DocumentQuery())
    assert pilotage_refresh() > 0
    o = overview()
    assert o.records_active == 2  # Alice and Léo; Chloé was closed
    assert o.records_closed == 1
    assert o.documents_published == 1
    assert o.documents_by_class == {"10": 1}
    assert o.exceptional_accesses_24h == {"bris_de_glace": 1}
    assert o.records_fed == 1
    assert FedRecord.objects.count() == 1
    assert o.sharing_rate == 50.0
    assert DailyActiveUser.objects.filter(actor_kind="professional").exists()
    assert not DailyActiveUser.objects.filter(actor_hash=personas.dr_bernard.national_id).exists()


def test_refresh_is_incremental(personas):
    pilotage_refresh()
    before = overview().records_active
    assert pilotage_refresh() == 0
    assert overview().records_active == before


@pytest.fixture
def operator(db):
    user = get_user_model().objects.create_user("ops", password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=OPERATOR_GROUP)[0])
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_renders_for_operators_only(personas, operator, client):
    assert operator.get("/pilotage/").status_code == 200
    assert b"DMP actifs" in operator.get("/pilotage/panel").content
    assert client.get("/pilotage/").status_code == 302
    assert client.get("/pilotage/metrics").status_code == 403


@override_settings(OPENDMP_METRICS_TOKEN="s3cret-token-for-tests")
def test_metrics_accept_the_configured_bearer_token(personas, client):
    response = client.get("/pilotage/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token-for-tests")
    assert response.status_code == 200
    assert b"opendmp_records_active 2" in response.content
    assert client.get("/pilotage/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    summary = client.get(
        "/pilotage/api/summary.json", HTTP_AUTHORIZATION="Bearer s3cret-token-for-tests"
    ).json()
    assert summary["records_active"] == 2


def test_failed_logins_are_authentication_failures_not_access_denials(db):
    with pytest.raises(LoginFailed):
        login_start(identifier="nobody-such", password="wrong")
    pilotage_refresh()
    o = overview()
    assert o.authentication_failures_24h == 1
    assert o.denials_24h == 0


def test_active_users_today_follow_the_french_calendar(personas, monkeypatch):
    # 00:30 in Paris is still the day before in UTC; 09:00 is the same French day. A day to
    # come, so that the personas' own events are older than the refresh horizon.
    day = clock.today() + dt.timedelta(days=2)
    paris = timezone.get_current_timezone()
    monkeypatch.setattr(clock, "now", lambda: dt.datetime.combine(day, dt.time(0, 30), paris))
    feed(personas)
    monkeypatch.setattr(clock, "now", lambda: dt.datetime.combine(day, dt.time(9, 0), paris))
    pilotage_refresh()
    assert overview().active_users_today.get("professional") == 1


def test_request_areas_are_bounded_by_the_url_configuration(db, client, monkeypatch):
    monkeypatch.setattr(middleware, "FLUSH_SECONDS", 0.0)
    for i in range(20):
        client.get(f"/junk-{i}/x")
    client.get("/pilotage/")
    client.get("/faq")
    client.get("/")
    areas = MetricCounter.objects.filter(metric="http_area").values_list("dimension", flat=True)
    assert set(areas) == {"other", "pilotage", "faq", "home"}


@pytest.fixture
def at(monkeypatch):
    """Pins the clock; refreshes then use the real LAG."""
    monkeypatch.setattr(services, "LAG", dt.timedelta(seconds=5))

    def pin(moment: dt.datetime) -> None:
        monkeypatch.setattr(clock, "now", lambda: moment)

    return pin


def test_the_cursor_waits_for_an_older_event_behind_a_younger_one(personas, at):
    # occurred_at is read before the chain lock (and on each node's clock): the event with
    # the smaller id can be the younger one.
    t0 = clock.now() + dt.timedelta(hours=1)
    at(t0)
    pilotage_refresh()
    before = metric_total("record_created")
    caller = personas.ps(personas.dr_bernard)
    for moment in (t0 + dt.timedelta(seconds=10), t0):
        at(moment)
        with transaction.atomic():
            audit_record(caller=caller, action=AuditAction.RECORD_CREATE)
    at(t0 + dt.timedelta(seconds=6))  # only the second event is older than LAG
    pilotage_refresh()
    at(t0 + dt.timedelta(minutes=5))
    pilotage_refresh()
    assert metric_total("record_created") == before + 2


def committed(event_id: int, moment: dt.datetime) -> None:
    """The row of a transaction that was given `event_id` and commits now. One connection
    cannot make another's commit order, so the row is written with its id."""
    AuditEvent.objects.create(
        id=event_id,
        chain=32_000,
        sequence=event_id,
        occurred_at=moment,
        action=AuditAction.RECORD_CREATE,
        outcome=Outcome.SUCCESS,
        actor_kind="professional",
        actor_id="node-b",
        previous_hash="0" * 64,
        hash="0" * 64,
    )


def missing_ids() -> set[int]:
    gaps = AggregationCursor.objects.get(name=services.AUDIT_CURSOR).gaps
    return {event_id for first, last, _ in gaps for event_id in range(first, last + 1)}


def test_an_id_committed_after_a_greater_one_is_still_counted(personas, at):
    t0 = clock.now() + dt.timedelta(hours=1)
    at(t0)
    pilotage_refresh()
    before = metric_total("record_created")
    top = AuditEvent.objects.order_by("-id").values_list("id", flat=True)[0]
    committed(top + 2, t0)
    at(t0 + dt.timedelta(minutes=1))
    pilotage_refresh()  # passes top + 1, still in flight
    committed(top + 1, t0)
    committed(top + 4, t0)
    at(t0 + dt.timedelta(minutes=2))
    pilotage_refresh()
    assert metric_total("record_created") == before + 3
    assert top + 1 not in missing_ids()
    assert top + 3 in missing_ids()
    # A gap never filled is a rolled back transaction: it is forgotten after SETTLE.
    at(t0 + dt.timedelta(minutes=3) + services.SETTLE)
    pilotage_refresh()
    assert top + 3 not in missing_ids()
    assert metric_total("record_created") == before + 3


def test_the_sharing_rate_is_over_active_records_and_counts_no_table(personas):
    feed(personas)
    alice = personas.alice
    record_close(caller=personas.patient(alice), record=alice.record, reason=ClosureReason.PATIENT_REQUEST)
    pilotage_refresh()
    with CaptureQueriesContext(connection) as queries:
        o = overview()
    assert not [q for q in queries if "pilotage_fedrecord" in q["sql"]]
    assert (o.records_active, o.records_fed, o.sharing_rate) == (1, 0, 0.0)  # Léo only
    record_reactivate(caller=personas.ps(personas.dr_bernard), ins=alice.identifier, consent=True)
    pilotage_refresh()
    o = overview()
    assert (o.records_active, o.records_fed, o.sharing_rate) == (2, 1, 50.0)


def test_the_fed_record_counters_are_seeded_from_what_was_aggregated(personas):
    feed(personas)
    alice = personas.alice
    record_close(caller=personas.patient(alice), record=alice.record, reason=ClosureReason.PATIENT_REQUEST)
    pilotage_refresh()
    fed_metrics = ["record_fed", "fed_record_closed", "fed_record_reactivated"]
    aggregated = {metric: metric_total(metric) for metric in fed_metrics}
    MetricCounter.objects.filter(metric__in=fed_metrics).delete()
    importlib.import_module("dmp.pilotage.migrations.0003_seed_fed_record_counters").seed(apps, None)
    assert (
        {metric: metric_total(metric) for metric in fed_metrics}
        == aggregated
        == {
            "record_fed": 1,
            "fed_record_closed": 1,
            "fed_record_reactivated": 0,
        }
    )
