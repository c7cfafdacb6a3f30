"""Break-glass and Centre 15 open one record on SOAP: the VIHF's patient, never a queried one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dmp.access.actors import AccessMode
from dmp.audit.models import AuditEvent
from dmp.common.errors import ErrorCode, ValidationFailed
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.services import submission_register
from dmp.ihe.xds.models import SeenAssertion
from dmp.ihe.xds.queries import QueryContext, QueryRequest, StoredQuery, run_query
from dmp.ihe.xds.tests.test_xds_end_to_end import APPROVED
from dmp.records.models import Record
from opendmp_client.xds import SoapFault

pytestmark = pytest.mark.django_db(transaction=True)


def leo_record(personas):
    submission = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft(title="Carnet de Léo")],
    )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    return Record.objects.get(patient=personas.leo)


def find_leo(personas):
    return {
        "$XDSDocumentEntryPatientId": f"'{personas.leo.identifier.hl7()}'",
        "$XDSDocumentEntryStatus": f"('{APPROVED}')",
    }


@pytest.mark.parametrize(("purpose", "who"), [("bris_de_glace", "dr_petit"), ("centre_15", "dr_benali")])
def test_a_vihf_in_emergency_mode_must_name_its_patient(xds_kit, purpose, who):
    personas = xds_kit.personas
    record = leo_record(personas)
    client = xds_kit.client(getattr(personas, who))
    urgent = replace(
        client.claims, patient_ins="", purpose_of_use=purpose, break_glass_reason="Urgence vitale"
    )
    seen, events = SeenAssertion.objects.count(), AuditEvent.objects.count()
    with pytest.raises(SoapFault) as refused:
        client.stored_query(StoredQuery.FIND_DOCUMENTS, find_leo(personas), claims=urgent)
    assert "name the patient" in str(refused.value)
    assert not AuditEvent.objects.filter(record_id=record.pk, access_mode=purpose).exists()
    assert (SeenAssertion.objects.count(), AuditEvent.objects.count()) == (seen, events)


@pytest.mark.django_db  # no server here: the plain test transaction
def test_a_query_in_emergency_mode_without_the_vihf_patient_finds_no_record(personas):
    record = leo_record(personas)
    caller = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="Urgence vitale")
    request = QueryRequest(
        query_id=StoredQuery.FIND_DOCUMENTS,
        return_type="LeafClass",
        slots={name: [[value.strip("'()")]] for name, value in find_leo(personas).items()},
    )
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        run_query(QueryContext(caller=caller, patient=None), request)
    assert refused.value.problems[0].code is ErrorCode.PATIENT_ID_MISMATCH
    assert not AuditEvent.objects.filter(record_id=record.pk, access_mode="bris_de_glace").exists()
    assert AuditEvent.objects.count() == events
