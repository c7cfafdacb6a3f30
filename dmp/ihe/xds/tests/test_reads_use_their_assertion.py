"""A read's VIHF assertion is used with its first trace, in one commit (ADR 0016), and never twice:
whether a trace carried it, a transaction, or nothing (a read refused before any trace)."""

from __future__ import annotations

import copy
import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from lxml import etree

from config.wsgi import application
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditChainHead, AuditEvent, PendingNotice
from dmp.audit.services import GENESIS_HASH
from dmp.common import clock
from dmp.common.single_use import SingleUse
from dmp.common.wsgi import call_wsgi
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.models import DocumentEntry
from dmp.ihe.xds import transactions
from dmp.ihe.xds.ebrim import RIM, DocumentEntryScheme, q
from dmp.ihe.xds.models import SEEN_ASSERTION_UNIQUE, SeenAssertion
from dmp.ihe.xds.queries import StoredQuery
from dmp.ihe.xds.vihf import VihfRejected
from opendmp_client.xds import (
    RETRIEVE,
    STORED_QUERY,
    SoapFault,
    read_retrieved,
    retrieve_request,
    stored_query_request,
)

pytestmark = pytest.mark.django_db(transaction=True)

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
SEEN_TABLE = SeenAssertion._meta.db_table


def _fed(kit, count=2):
    """Alice's record with `count` documents by dr_bernard; their (repository, unique id)."""
    personas = kit.personas
    bernard = kit.client(personas.dr_bernard)
    author = author_info(personas.dr_bernard, personas.cabinet)
    drafts = [DocumentDraft(title=f"Compte rendu {n}") for n in range(count)]
    submission = submission_for(ins=personas.alice.identifier, author=author, drafts=drafts)
    assert bernard.provide_and_register(submission).ok
    stored = DocumentEntry.objects.filter(unique_id__in=[d.unique_id for d in submission.documents])
    return bernard, list(stored.values_list("repository_unique_id", "unique_id"))


def _send(client, action, body, security, *, mtom=False):
    """The request served in this thread (its statements can be counted), answered as `send` reads it."""
    content_type, data = client.prepare(action, body, security=copy.deepcopy(security), mtom=mtom)
    answer = call_wsgi(application, "POST", "/ihe/xds/", data, CONTENT_TYPE=content_type)
    return client.read_answer(answer.status, answer.headers.get("Content-Type", ""), answer.content)


def _find_documents(client):
    return stored_query_request(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{client.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
        },
    )


def _unique_ids(response):
    return {
        ident.get("value")
        for ident in response.body.iter(q(RIM, "ExternalIdentifier"))
        if ident.get("identificationScheme") == DocumentEntryScheme.UNIQUE_ID
    }


def _state():
    return (
        AuditEvent.objects.count(),
        PendingNotice.objects.count(),
        SeenAssertion.objects.count(),
        DocumentEntry.objects.count(),
    )


def test_a_query_commits_its_assertion_with_its_trace_and_is_answered_once(xds_kit):
    bernard, documents = _fed(xds_kit)
    once = bernard.vihf()
    events = AuditEvent.objects.count()

    with CaptureQueriesContext(connection) as statements:
        response = _send(bernard, STORED_QUERY, _find_documents(bernard), once)
    assert response.ok, response.errors
    assert _unique_ids(response) == {unique_id for _, unique_id in documents}
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).count() == 1
    assert AuditEvent.objects.count() == events + 1
    writes = [s["sql"] for s in statements.captured_queries if SEEN_TABLE in s["sql"]]
    assert len(writes) == 1
    if connection.vendor == "postgresql":
        # One statement, its own transaction: the assertion's id, the trace and its chain's head.
        assert writes[0].startswith(f'WITH used AS (INSERT INTO "{SEEN_TABLE}"')
        assert AuditEvent._meta.db_table in writes[0]

    before = _state()
    with pytest.raises(SoapFault, match="replayed") as fault:
        _send(bernard, STORED_QUERY, _find_documents(bernard), once)
    assert fault.value.subcode.endswith("FailedAuthentication")
    assert _state() == before  # no trace of a read that was not answered


def test_a_retrieve_of_two_documents_uses_its_assertion_once_with_its_first_trace(xds_kit):
    bernard, documents = _fed(xds_kit)
    once = bernard.vihf()
    retrieves = AuditEvent.objects.filter(action=AuditAction.DOCUMENT_RETRIEVE).count()

    response = _send(bernard, RETRIEVE, retrieve_request(documents), once, mtom=True)
    assert response.ok, response.errors
    assert {d.unique_id for d in read_retrieved(response)} == {unique_id for _, unique_id in documents}
    assert AuditEvent.objects.filter(action=AuditAction.DOCUMENT_RETRIEVE).count() == retrieves + 2
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).count() == 1

    before = _state()
    with pytest.raises(SoapFault, match="replayed"):
        _send(bernard, RETRIEVE, retrieve_request(documents), once, mtom=True)
    assert _state() == before


@pytest.mark.parametrize(
    ("action", "body"),
    [
        (RETRIEVE, etree.Element("{urn:ihe:iti:xds-b:2007}RetrieveDocumentSetRequest")),
        (STORED_QUERY, etree.Element("{urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0}AdhocQueryRequest")),
    ],
    ids=["retrieve-without-request", "query-without-query"],
)
def test_a_read_refused_before_any_trace_still_uses_its_assertion(xds_kit, action, body):
    bernard, _ = _fed(xds_kit, count=1)
    once = bernard.vihf()
    events = AuditEvent.objects.count()

    refused = _send(bernard, action, body, once)
    assert not refused.ok
    assert AuditEvent.objects.count() == events  # nothing read, nothing traced
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).exists()

    with pytest.raises(SoapFault, match="replayed"):  # not even for a well-formed query
        _send(bernard, STORED_QUERY, _find_documents(bernard), once)
    assert AuditEvent.objects.count() == events


def test_an_assertion_a_read_used_cannot_serve_a_write(xds_kit):
    bernard, _ = _fed(xds_kit, count=1)
    once = bernard.vihf()
    assert _send(bernard, STORED_QUERY, _find_documents(bernard), once).ok

    before = _state()
    with pytest.raises(SoapFault, match="replayed"):
        bernard.call(
            "urn:opendmp:dmp:TD0.2",
            etree.Element("{urn:opendmp:dmp}RecordTestRequest"),
            security=copy.deepcopy(once),
        )
    assert _state() == before


def test_a_break_glass_retrieve_uses_its_assertion_in_the_transaction_of_its_trace(xds_kit):
    """A break-glass access writes its trace and the patient's pending notice in one transaction:
    the assertion is used in it, so a replay leaves neither a second trace nor a second notice."""
    _, documents = _fed(xds_kit, count=1)
    petit = xds_kit.client(
        xds_kit.personas.dr_petit, purpose_of_use="bris_de_glace", break_glass_reason="Urgence vitale"
    )
    once = petit.vihf()
    emergencies = AuditEvent.objects.filter(access_mode="bris_de_glace")
    traced = emergencies.count()

    with CaptureQueriesContext(connection) as statements:
        response = _send(petit, RETRIEVE, retrieve_request(documents), once, mtom=True)
    assert response.ok, response.errors
    assert len(read_retrieved(response)) == 1
    assert emergencies.count() == traced + 1
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).count() == 1
    sql = [s["sql"] for s in statements.captured_queries]
    used = next(n for n, text in enumerate(sql) if SEEN_TABLE in text)
    assert sql[used].startswith("INSERT")
    assert any(text.startswith("SAVEPOINT") for text in sql[:used])  # inside the trace's transaction
    assert any(PendingNotice._meta.db_table in text for text in sql[used:])

    before = _state()
    with pytest.raises(SoapFault, match="replayed"):
        _send(petit, RETRIEVE, retrieve_request(documents), once, mtom=True)
    assert _state() == before


def test_a_refused_read_is_traced_with_its_assertion_and_not_replayed(xds_kit):
    """A PS without authorisation: the refusal is traced, and its assertion used with it."""
    _fed(xds_kit, count=1)
    stranger = xds_kit.client(xds_kit.personas.dr_petit)
    once = stranger.vihf()
    events = AuditEvent.objects.count()

    refused = _send(stranger, STORED_QUERY, _find_documents(stranger), once)
    assert not refused.ok or not _unique_ids(refused)
    assert AuditEvent.objects.count() == events + 1
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).exists()
    with pytest.raises(SoapFault, match="replayed"):
        _send(stranger, STORED_QUERY, _find_documents(stranger), once)
    assert AuditEvent.objects.count() == events + 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
def test_the_same_assertion_sent_twice_at_once_is_answered_once(xds_kit):
    bernard, documents = _fed(xds_kit)
    once = bernard.vihf()
    prepared = bernard.prepare(RETRIEVE, retrieve_request(documents), security=once, mtom=True)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def send() -> None:
        client = xds_kit.client(xds_kit.personas.dr_bernard)
        start.wait()
        try:
            outcomes.append("ok" if client.send(*prepared).ok else "error")
        except SoapFault as fault:
            outcomes.append("replayed" if "replayed" in fault.reason else fault.reason)
        finally:
            client.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "replayed"]
    assert AuditEvent.objects.filter(action=AuditAction.DOCUMENT_RETRIEVE).count() == len(documents)


def test_only_a_conflict_on_the_assertion_id_is_a_replay():
    """A statement carrying the use that fails on another unique key is not taken for a replay."""
    expires = clock.now() + dt.timedelta(hours=1)
    use = SingleUse(
        SeenAssertion(assertion_id="_twice", expires_at=expires),
        constraint=SEEN_ASSERTION_UNIQUE,
        replayed=lambda: VihfRejected("replayed"),
    )
    SeenAssertion.objects.create(assertion_id="_twice", expires_at=expires)
    with pytest.raises(IntegrityError) as same, transaction.atomic():
        SeenAssertion.objects.create(assertion_id="_twice", expires_at=expires)
    AuditChainHead.objects.create(chain=9999, sequence=0, hash=GENESIS_HASH)
    with pytest.raises(IntegrityError) as other, transaction.atomic():
        AuditChainHead.objects.create(chain=9999, sequence=0, hash=GENESIS_HASH)
    if connection.vendor == "postgresql":  # SQLite names no constraint: there the use is written alone
        assert isinstance(use.refusal(same.value), VihfRejected)
    assert use.refusal(other.value) is None

    with pytest.raises(VihfRejected):  # written alone, any conflict of its one row is a replay
        use.write()
    assert not use.written


def test_a_read_that_fails_still_uses_its_assertion(xds_kit, monkeypatch):
    """A server error answers nothing, but the assertion was presented: it is not served twice."""
    bernard, documents = _fed(xds_kit, count=1)
    once = bernard.vihf()

    def broken(**_: object) -> None:
        raise OSError("the blob store is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(transactions, "document_retrieve", broken)
        content_type, data = bernard.prepare(
            RETRIEVE, retrieve_request(documents), security=copy.deepcopy(once)
        )
        answer = call_wsgi(application, "POST", "/ihe/xds/", data, CONTENT_TYPE=content_type)
    assert answer.status == 500
    assert SeenAssertion.objects.filter(assertion_id=once.get("ID")).exists()

    before = _state()
    with pytest.raises(SoapFault, match="replayed"):
        _send(bernard, RETRIEVE, retrieve_request(documents), once)
    assert _state() == before
