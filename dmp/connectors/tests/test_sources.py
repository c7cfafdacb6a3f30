"""External sources: consent, synchronisation over HTTP, idempotence, refusals."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import threading
import urllib.parse
import zoneinfo
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.common.errors import Forbidden
from dmp.connectors.clients import ExternalItem, HttpSourceClient, SimulatedSourceClient, SourceUnavailable
from dmp.connectors.management.commands import connectors_sync
from dmp.connectors.models import Source, SourceConsent, SourceSync
from dmp.connectors.services import source_consent_set, source_sync
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import DocumentQuery, document_retrieve, document_search
from dmp.identity.ins import Ins

ITEMS = {
    "items": [
        {
            "item_id": "A1",
            "date": "2026-01-10",
            "label": "Consultation <b>MG</b>",
            "code": "C",
            "amount_eur": "18.20",
        },
        {"item_id": "A2", "date": "2026-02-03", "label": "Radiographie du thorax", "code": "ZBQK002"},
    ]
}


class _Handler(BaseHTTPRequestHandler):
    payload: bytes = json.dumps(ITEMS).encode()
    requests: list[str] = []
    honour_since = False

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
            self.end_headers()
            return
        payload = type(self).payload
        since = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("since")
        if type(self).honour_since and since:
            items = json.loads(payload)["items"]
            payload = json.dumps({"items": [item for item in items if item["date"] > since[0]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def source_server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.payload = json.dumps(ITEMS).encode()
    _Handler.honour_since = False
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_nothing_is_fetched_without_the_patients_consent(personas, source_server):
    result = source_sync(
        record=personas.alice.record,
        source=Source.REIMBURSEMENTS,
        client=HttpSourceClient(source_server, "t0ken"),
    )
    assert result.published_items == 0
    assert _Handler.requests == []


def test_allowed_source_publishes_one_document_visible_to_the_patient_and_once_only(personas, source_server):
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.REIMBURSEMENTS, allowed=True
    )
    client = HttpSourceClient(source_server, "t0ken")
    result = source_sync(record=record, source=Source.REIMBURSEMENTS, client=client)
    assert result.published_items == 2
    assert f"authority={personas.alice.ins_authority}" in _Handler.requests[0]
    documents = document_search(caller=personas.patient(personas.alice), record=record, query=DocumentQuery())
    assert [v.document.class_code for v in documents] == ["60"]
    content = document_retrieve(
        caller=personas.ps(personas.dr_bernard), unique_id=result.document_unique_id
    ).content
    assert b"Consultation &lt;b&gt;MG&lt;/b&gt;" in content
    assert AuditEvent.objects.filter(action=AuditAction.DOCUMENT_PUBLISH, actor_id="SYS_AM").count() == 1
    # The next run asks again for the late-items window and publishes nothing new, even from
    # a source that ignores `since`.
    again = source_sync(record=record, source=Source.REIMBURSEMENTS, client=client)
    assert again.published_items == 0
    assert "since=2025-11-05" in _Handler.requests[1]  # 2026-02-03 - 90 days
    assert DocumentEntry.objects.filter(record=record).count() == 1
    assert SourceSync.objects.get(record=record).published_items == 2


@pytest.mark.parametrize("honour_since", [True, False])
def test_an_item_reported_late_with_an_earlier_date_is_published_once(personas, source_server, honour_since):
    _Handler.honour_since = honour_since
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.REIMBURSEMENTS, allowed=True
    )
    client = HttpSourceClient(source_server, "t0ken")
    old = {"item_id": "OLD", "date": "2025-06-01", "label": "Consultation", "code": "C"}
    first = {"item_id": "A2", "date": "2026-02-03", "label": "Radiographie du thorax", "code": "ZBQK002"}
    _Handler.payload = json.dumps({"items": [old, first]}).encode()
    assert source_sync(record=record, source=Source.REIMBURSEMENTS, client=client).published_items == 2
    # Reported after the first run, dated before its latest item (and on the same day).
    late = [
        {"item_id": "L1", "date": "2026-01-20", "label": "Avis ponctuel de consultant", "code": "APC"},
        {"item_id": "L2", "date": "2026-02-03", "label": "Soins infirmiers", "code": "AMI 2"},
    ]
    _Handler.payload = json.dumps({"items": [old, first, *late]}).encode()
    second = source_sync(record=record, source=Source.REIMBURSEMENTS, client=client)
    assert second.published_items == 2
    content = document_retrieve(
        caller=personas.patient(personas.alice), unique_id=second.document_unique_id
    ).content
    assert b"Soins infirmiers" in content
    assert b"Avis ponctuel" in content
    assert b"Radiographie" not in content
    assert b"20/01/2026" in content
    for _rerun in range(2):
        assert source_sync(record=record, source=Source.REIMBURSEMENTS, client=client).published_items == 0
    assert DocumentEntry.objects.filter(record=record).count() == 2
    state = SourceSync.objects.get(record=record)
    assert state.published_items == 4
    assert state.last_item_date == dt.date(2026, 2, 3)
    assert sorted(state.recent_items) == ["A2", "L1", "L2"]  # OLD can no longer be fetched


@pytest.mark.parametrize("payload", [b"not json", b'{"items": "none"}', b'{"entries": []}'])
def test_a_malformed_answer_changes_nothing(personas, source_server, payload):
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.PHARMACY, allowed=True
    )
    _Handler.payload = payload
    with pytest.raises(SourceUnavailable):
        source_sync(record=record, source=Source.PHARMACY, client=HttpSourceClient(source_server, "t0ken"))
    assert DocumentEntry.objects.count() == 0
    assert SourceSync.objects.get(record=record, source=Source.PHARMACY).published_items == 0


def test_bad_items_are_refused_one_by_one_and_logged_the_others_published(personas, source_server, caplog):
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.REIMBURSEMENTS, allowed=True
    )
    tomorrow = clock.today() + dt.timedelta(days=1)
    _Handler.payload = json.dumps(
        {
            "items": [
                {"item_id": "GOOD", "date": "2026-01-10", "label": "Consultation", "code": "C"},
                {"item_id": "FUTURE", "date": tomorrow.isoformat(), "label": "Erreur de saisie", "code": "C"},
                {"item_id": "ANCIENT", "date": "1850-01-01", "label": "Date par défaut", "code": "C"},
                {"item_id": "CONTROL", "date": "2026-01-11", "label": "Consultation\x0bsecret", "code": "C"},
                {"item_id": "SURROGATE", "date": "2026-01-12", "label": "Radio \ud800", "code": "C"},
                {"date": "2026-01-13", "label": "Sans identifiant"},
                "not an object",
            ]
        }
    ).encode()
    with caplog.at_level(logging.WARNING, logger="dmp.connectors.clients"):
        result = source_sync(
            record=record, source=Source.REIMBURSEMENTS, client=HttpSourceClient(source_server, "t0ken")
        )
    assert result.published_items == 1
    assert DocumentEntry.objects.filter(record=record).count() == 1
    refusals = [r.getMessage() for r in caplog.records if r.name == "dmp.connectors.clients"]
    assert len(refusals) == 6
    assert "item #1 'FUTURE' refused: date: Value error, date is in the future" in refusals[0]
    assert "'ANCIENT' refused: date: Value error, date is before 1900-01-01" in refusals[1]
    assert "'CONTROL' refused: label: Value error, contains a control character" in refusals[2]
    assert "'SURROGATE' refused: label: " in refusals[3]
    assert "without item_id refused: item_id: Field required" in refusals[4]
    assert "item #6 without item_id refused" in refusals[5]
    assert all(r.startswith("external source 127.0.0.1: ") for r in refusals)
    assert not any("secret" in r or "Erreur de saisie" in r for r in refusals)  # values may be health data


def test_an_item_of_today_is_published_in_the_first_hours_of_the_night(personas, source_server, monkeypatch):
    """Items are dated in local days; the nightly run starts soon after local midnight."""
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    night = dt.datetime(2026, 1, 15, 0, 30, tzinfo=paris)
    monkeypatch.setattr(clock, "now", lambda: night)
    monkeypatch.setattr(clock, "today", lambda: night.date())
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.REIMBURSEMENTS, allowed=True
    )
    _Handler.payload = json.dumps(
        {"items": [{"item_id": "T", "date": "2026-01-15", "label": "Consultation", "code": "C"}]}
    ).encode()
    result = source_sync(
        record=record, source=Source.REIMBURSEMENTS, client=HttpSourceClient(source_server, "t0ken")
    )
    assert result.published_items == 1
    assert DocumentEntry.objects.get(record=record).creation_time == night.replace(minute=0)


class _PerPatientSource:
    """A source that hands over items as given, without the HTTP client's parsing."""

    def __init__(self, items: dict[str, list[ExternalItem]]) -> None:
        self.items = items

    def fetch(self, *, ins: Ins, since: dt.date | None) -> list[ExternalItem]:
        return self.items[ins.value]


def test_a_record_refused_by_the_submission_does_not_stop_the_command_for_the_others(personas, monkeypatch):
    alice, leo = personas.alice.record, personas.leo.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=alice, source=Source.REIMBURSEMENTS, allowed=True
    )
    source_consent_set(
        caller=personas.representative(personas.alice_as_mother),
        record=leo,
        source=Source.REIMBURSEMENTS,
        allowed=True,
    )
    good = ExternalItem(item_id="G", date=dt.date(2026, 1, 5), label="Consultation", code="C")
    # Built without validation: whatever a client lets through, the submission may still refuse.
    refused = ExternalItem.model_construct(
        item_id="X",
        date=dt.date(2099, 1, 1),
        label="Erreur",
        code="C",
        quantity="",
        amount_eur=None,
        prescriber="",
        provider="",
    )
    source = _PerPatientSource(
        {personas.alice.identifier.value: [refused], personas.leo.identifier.value: [good]}
    )
    monkeypatch.setattr(
        connectors_sync, "client_for", lambda s: source if s == Source.REIMBURSEMENTS else None
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 synchronisations failed"):
        call_command("connectors_sync", stdout=out, stderr=err)
    assert DocumentEntry.objects.filter(record=leo).count() == 1
    assert DocumentEntry.objects.filter(record=alice).count() == 0
    assert f"REMB record {alice.pk}: ValidationFailed: " in err.getvalue()
    assert "REMB: 1 items published, 1 failures" in out.getvalue()


def test_a_wrong_token_is_an_unavailable_source(personas, source_server):
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.PHARMACY, allowed=True
    )
    with pytest.raises(SourceUnavailable):
        source_sync(record=record, source=Source.PHARMACY, client=HttpSourceClient(source_server, "wrong"))


def test_only_the_patient_side_or_medecin_traitant_sets_consent(personas):
    record = personas.alice.record
    with pytest.raises(Forbidden):
        source_consent_set(
            caller=personas.ps(personas.dr_moreau), record=record, source=Source.PHARMACY, allowed=True
        )
    assert not SourceConsent.objects.exists()
    assert (
        AuditEvent.objects.filter(action=AuditAction.EXTERNAL_SOURCE_CONSENT, outcome="denied").count() == 1
    )
    source_consent_set(
        caller=personas.ps(personas.dr_bernard), record=record, source=Source.PHARMACY, allowed=True
    )
    assert SourceConsent.objects.get().allowed


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(ValueError, match="HTTPS"):
        HttpSourceClient("http://example.org/api", "t")


def test_the_simulator_is_deterministic_and_honours_since(personas):
    client = SimulatedSourceClient("DP", today=dt.date(2026, 11, 1))
    first = client.fetch(ins=personas.alice.identifier, since=None)
    assert first == client.fetch(ins=personas.alice.identifier, since=None)
    later = client.fetch(ins=personas.alice.identifier, since=first[0].date)
    assert all(item.date > first[0].date for item in later)


class _FailingFor:
    """A source that is down for some patients and answers `items` for the others."""

    def __init__(self, down: set[str], items: list[ExternalItem]) -> None:
        self.down = down
        self.items = items

    def fetch(self, *, ins: Ins, since: dt.date | None) -> list[ExternalItem]:
        if ins.value in self.down:
            raise SourceUnavailable("external source unreachable: timed out")
        return self.items


def _allow_alice_and_leo(personas) -> None:
    source_consent_set(
        caller=personas.patient(personas.alice),
        record=personas.alice.record,
        source=Source.REIMBURSEMENTS,
        allowed=True,
    )
    source_consent_set(
        caller=personas.representative(personas.alice_as_mother),
        record=personas.leo.record,
        source=Source.REIMBURSEMENTS,
        allowed=True,
    )


def _nights(monkeypatch, source: _FailingFor, count: int) -> None:
    monkeypatch.setattr(
        connectors_sync, "client_for", lambda s: source if s == Source.REIMBURSEMENTS else None
    )
    for _night in range(count):
        with contextlib.suppress(CommandError):  # the failing nights of the second test
            call_command("connectors_sync", "--limit", "1", stdout=io.StringIO(), stderr=io.StringIO())


def test_records_beyond_the_limit_are_synchronised_on_the_following_nights(personas, monkeypatch):
    _allow_alice_and_leo(personas)
    good = ExternalItem(item_id="G", date=dt.date(2026, 1, 5), label="Consultation", code="C")
    _nights(monkeypatch, _FailingFor(set(), [good]), 2)
    for record in (personas.alice.record, personas.leo.record):
        assert DocumentEntry.objects.filter(record=record).count() == 1
        assert SourceSync.objects.get(record=record).last_synced_at is not None


def test_a_record_that_keeps_failing_does_not_hold_the_others_back(personas, monkeypatch):
    _allow_alice_and_leo(personas)
    good = ExternalItem(item_id="G", date=dt.date(2026, 1, 5), label="Consultation", code="C")
    failing = min(personas.alice.record, personas.leo.record, key=lambda record: record.pk)
    other = personas.leo.record if failing == personas.alice.record else personas.alice.record
    _nights(monkeypatch, _FailingFor({failing.patient.identifier.value}, [good]), 2)
    assert DocumentEntry.objects.filter(record=other).count() == 1
    assert SourceSync.objects.get(record=failing).last_synced_at is None
