"""The demo population: valid identities, every document state, a verifiable audit trail."""

from __future__ import annotations

from django.core.management import call_command

from dmp.access.policy import DocumentStatus
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.audit.verify import verify_audit_trail
from dmp.documents.models import DocumentEntry
from dmp.identity.ins import parse_ins
from dmp.identity.models import Patient
from dmp.ihe.xds.entry_texts import write_missing
from dmp.ihe.xds.models import EntryText
from dmp.records.models import Authorisation, Record


def test_a_small_population_has_every_state_and_a_valid_trail(transactional_db, blob_dir):
    # transactional_db (not the marker): the suite's override purges the append-only audit rows.
    call_command("demo_generate", "--patients", "60")
    patients = list(Patient.objects.all())
    assert len(patients) >= 60
    for patient in patients:
        parse_ins(patient.ins, patient.ins_authority)  # every INS has a valid key
    closed = set(Record.objects.filter(status="FERME").values_list("pk", flat=True))
    assert closed
    # Each closure is in the trail, where the statistics and the patient's traces read it.
    assert (
        set(AuditEvent.objects.filter(action=AuditAction.RECORD_CLOSE).values_list("record_id", flat=True))
        == closed
    )
    documents = DocumentEntry.objects
    assert documents.count() > 100
    assert documents.filter(masked_to_professionals=True).exists()
    assert documents.filter(invisible_to_patient=True).exists()
    assert documents.filter(availability_status=DocumentStatus.DEPRECATED).exists()
    assert Authorisation.objects.filter(status=Authorisation.Status.BLOCKED).exists()
    assert AuditEvent.objects.filter(access_mode="bris_de_glace").exists()
    assert verify_audit_trail().ok
    # Every entry has its query-answer text (ADR 0013), as a stored query reads it.
    assert EntryText.objects.count() == documents.count()
    assert list(write_missing()) == []
    # Generated metadata names its author as a submission would (XDS author, and the author row).
    for document in documents.prefetch_related("author_rows")[:20]:
        (author,) = document.authors
        assert author["person_id"] == document.submitted_by_id == document.author_rows.get().person_id
        assert author["person"].startswith(f"{document.submitted_by_id}^")
        assert author["institutions"]
        assert author["roles"]
    # Idempotent with --if-empty: a second run adds nothing.
    before = documents.count()
    call_command("demo_generate", "--patients", "60", "--if-empty")
    assert DocumentEntry.objects.count() == before
