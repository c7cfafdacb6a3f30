"""The patient portal reads documents of the session's record only: another record's uniqueId
answers as an unknown document, and leaves no trace in that other patient's history."""

from __future__ import annotations

import pytest
from django.test import Client

from dmp.accounts.tests.helpers import active_account
from dmp.audit.models import AuditEvent
from dmp.cda.builder import simple_pdf

from .test_patient_portal import login, publish_for, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("view", ["document", "document_pdf", "document_body"])
def test_another_records_document_is_unknown_and_untraced_in_its_history(personas, view):
    theirs = publish_for(personas, personas.leo, title="Carnet de Léo", pdf=simple_pdf("Léo", ["x"]))
    mine = publish_for(personas, personas.alice, title="Mon compte rendu", pdf=simple_pdf("Alice", ["x"]))
    active_account(personas)
    client = Client()
    login(client)
    leo_history = AuditEvent.objects.filter(record_id=personas.leo.record.pk)
    before = leo_history.count()
    assert client.get(url(view, theirs.unique_id)).status_code == 404
    assert leo_history.count() == before
    assert not AuditEvent.objects.filter(document_unique_id=theirs.unique_id, outcome="denied").exists()
    # The session's own document still reads.
    assert client.get(url(view, mine.unique_id)).status_code == 200
