"""The refused publication of a document submitted hidden from the patient (or from a minor's
legal representatives) is not shown to them in their traces: it would name the document the
list hides."""

from __future__ import annotations

import pytest

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common.errors import Forbidden
from dmp.documents.builders import DocumentDraft
from dmp.documents.models import DocumentEntry

from .test_document_lifecycle import publish, shown_traces

pytestmark = pytest.mark.django_db

IMAGING = "18748-4"  # a podiatrist may not feed it (habilitation matrix)


def refused(personas, patient, confidentiality):
    podiatrist = personas.ps(personas.podiatrist_garnier)
    before = DocumentEntry.objects.count()
    with pytest.raises(Forbidden):
        publish(
            personas,
            podiatrist,
            [DocumentDraft(type_code=IMAGING, confidentiality=confidentiality)],
            patient=patient,
        )
    assert DocumentEntry.objects.count() == before
    return AuditEvent.objects.filter(
        action=AuditAction.DOCUMENT_PUBLISH, outcome="denied", record_id=patient.record.pk
    ).latest("pk")


def test_a_refused_publication_hidden_from_the_patient_is_not_in_her_traces(personas):
    alice = personas.patient(personas.alice)
    hidden = refused(personas, personas.alice, ("N", "INVISIBLE_PATIENT"))
    plain = refused(personas, personas.alice, ("N",))
    shown = {e.pk for e in shown_traces(alice, personas.alice.record)}
    assert hidden.pk not in shown
    assert plain.pk in shown  # an ordinary refusal stays the patient's to see


def test_a_refused_publication_hidden_from_the_parents_is_not_in_their_traces(personas):
    mother = personas.representative(personas.alice_as_mother)
    leo = personas.patient(personas.leo)
    from_parents = refused(personas, personas.leo, ("N", "INVISIBLE_REPRESENTANTS_LEGAUX"))
    from_patient = refused(personas, personas.leo, ("N", "INVISIBLE_PATIENT"))
    plain = refused(personas, personas.leo, ("N",))
    parents_see = {e.pk for e in shown_traces(mother, personas.leo.record)}
    assert from_parents.pk not in parents_see
    assert from_patient.pk not in parents_see
    assert plain.pk in parents_see
    # The minor sees what is hidden from the parents only.
    minor_sees = {e.pk for e in shown_traces(leo, personas.leo.record)}
    assert {from_parents.pk, plain.pk} <= minor_sees
    assert from_patient.pk not in minor_sees
