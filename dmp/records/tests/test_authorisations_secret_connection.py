"""What a PS does on TD0.3 in a minor's secret connection stays out of the parents' view: its
authorisation row is hidden from the legal representatives, as the trace of the change is."""

from __future__ import annotations

import pytest

from dmp.audit.models import AuditEvent
from dmp.records.models import Record
from dmp.records.selectors import authorisations_of_record, traces_visible_to
from dmp.records.services import authorisation_self, medecin_traitant_set

pytestmark = pytest.mark.django_db


def grantees(caller, record):
    return {row.grantee_id for row in authorisations_of_record(caller=caller, record=record)}


def test_a_ps_authorising_itself_in_secret_connection_is_hidden_from_the_parents_only(personas):
    record = Record.objects.get(patient=personas.leo)
    petit = personas.dr_petit.national_id
    in_secret = personas.ps(personas.dr_petit, secret_connection=True)
    authorisation_self(caller=in_secret, ins=personas.leo.identifier, grant=True)
    medecin_traitant_set(caller=in_secret, ins=personas.leo.identifier, declare=True)
    mother = personas.representative(personas.alice_as_mother)
    assert petit not in grantees(mother, record)
    # Neither the row nor the traces of its changes tell the parents.
    events = AuditEvent.objects.filter(record_id=record.pk, actor_id=petit)
    assert events.count() == 2
    assert not traces_visible_to(mother, record, events).exists()
    # The minor and the médecin traitant see it.
    assert petit in grantees(personas.patient(personas.leo), record)
    assert petit in grantees(personas.ps(personas.dr_petit), record)


def test_the_row_shows_again_once_changed_out_of_the_secret_connection(personas):
    record = Record.objects.get(patient=personas.leo)
    petit = personas.dr_petit.national_id
    authorisation_self(
        caller=personas.ps(personas.dr_petit, secret_connection=True), ins=personas.leo.identifier, grant=True
    )
    mother = personas.representative(personas.alice_as_mother)
    assert petit not in grantees(mother, record)
    authorisation_self(caller=personas.ps(personas.dr_petit), ins=personas.leo.identifier, grant=True)
    assert petit in grantees(mother, record)
