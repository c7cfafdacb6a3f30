"""External sources: consent, synchronisation over HTTP, idempotence, refusals."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common.errors import Forbidden
from dmp.connectors.clients import HttpSourceClient, SimulatedSourceClient, SourceUnavailable
from dmp.connectors.models import Source, SourceConsent, SourceSync
from dmp.connectors.services import source_consent_set, source_sync
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import DocumentQuery, document_retrieve, document_search

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

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def source_server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.payload = json.dumps(ITEMS).encode()
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
    # The next run asks only for newer items and publishes nothing new.
    again = source_sync(record=record, source=Source.REIMBURSEMENTS, client=client)
    assert again.published_items == 2  # the fake source ignores `since`, the uniqueId makes it idempotent
    assert "since=2026-02-03" in _Handler.requests[1]
    assert DocumentEntry.objects.filter(record=record).count() == 1


def test_a_malformed_answer_changes_nothing(personas, source_server):
    record = personas.alice.record
    source_consent_set(
        caller=personas.patient(personas.alice), record=record, source=Source.PHARMACY, allowed=True
    )
    _Handler.payload = b'{"items": [{"item_id": "", "date": "not a date"}]}'
    with pytest.raises(SourceUnavailable):
        source_sync(record=record, source=Source.PHARMACY, client=HttpSourceClient(source_server, "t0ken"))
    assert DocumentEntry.objects.count() == 0
    assert SourceSync.objects.get(record=record, source=Source.PHARMACY).published_items == 0


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
