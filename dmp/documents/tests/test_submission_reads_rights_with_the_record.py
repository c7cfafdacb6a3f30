"""A submission reads the caller's authorisations with the record it resolves from the INS (the
decision taken before its bytes are stored), then once more under the record's lock (the one
that counts): one statement fewer than reading them on their own, the same refusals."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common.errors import Forbidden
from dmp.documents.builders import DocumentDraft
from dmp.documents.models import DocumentEntry
from dmp.identity.models import Patient
from dmp.records.models import Authorisation, Record

from .test_document_lifecycle import publish

pytestmark = pytest.mark.django_db

RIGHTS = Authorisation._meta.db_table
RECORDS = Record._meta.db_table
PATIENTS = Patient._meta.db_table


def test_the_rights_are_read_with_the_record_then_under_its_lock(personas):
    bernard = personas.ps(personas.dr_bernard)
    with CaptureQueriesContext(connection) as statements:
        publish(personas, bernard, [DocumentDraft()])
    sql = [query["sql"] for query in statements.captured_queries]
    reading_rights = [index for index, text in enumerate(sql) if RIGHTS in text]
    lock = next(
        index for index, text in enumerate(sql) if text.startswith("SELECT status, opposes_break_glass")
    )
    assert len(reading_rights) == 2
    with_the_record, under_the_lock = reading_rights
    # The first also reads the record, by its patient's INS; none before it reads the record alone.
    assert f'FROM "{RECORDS}"' in sql[with_the_record]
    assert PATIENTS in sql[with_the_record]
    assert not any(f'FROM "{RECORDS}"' in text and RIGHTS not in text for text in sql[:with_the_record])
    assert with_the_record < lock < under_the_lock


def test_a_blocked_professional_publishes_nothing_and_stores_no_bytes(personas, blob_dir):
    blocked = personas.ps(personas.dr_durand)  # blocked on Alice's record
    documents, refusals = DocumentEntry.objects.count(), AuditEvent.objects.filter(outcome="denied").count()
    with pytest.raises(Forbidden, match="blocked"):
        publish(personas, blocked, [DocumentDraft()])
    assert DocumentEntry.objects.count() == documents
    assert not any(path.is_file() for path in blob_dir.rglob("*"))
    refusal = AuditEvent.objects.filter(outcome="denied").latest("pk")
    assert AuditEvent.objects.filter(outcome="denied").count() == refusals + 1
    assert (refusal.action, refusal.actor_id) == (AuditAction.DOCUMENT_PUBLISH, blocked.actor.person_id)
