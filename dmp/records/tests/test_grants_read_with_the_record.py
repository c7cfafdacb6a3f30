# mypy: disable-error-code="union-attr,arg-type"
"""A professional's authorisations read in the statement that reads the record (a search) or
the document (a retrieve): the same facts, hence the same decisions, as when they are read on
their own, whatever the rows say; used only for the actor and record they were read for. And a
retrieve that reads only what it serves (ITI-43, ITI-68) reads nothing more on the way."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmp.access.actors import AccessMode, Caller
from dmp.access.policy import Action, AuthorisationStatus
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.common.errors import NotFound
from dmp.demo.scenarios import publish
from dmp.documents.access import access_document, one_document, one_document_and_grants
from dmp.documents.builders import DocumentDraft
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import document_retrieve
from dmp.records.access import Grants, record_and_grants_by_ins, record_by_ins, record_facts
from dmp.records.models import Authorisation, GranteeKind

pytestmark = pytest.mark.django_db

# An authorisation row as the examples draw it: status, médecin traitant, expiry offset in
# seconds from now (None: no expiry). Offsets carry microseconds: the timestamps go through JSON.
ROW = st.none() | st.tuples(
    st.sampled_from([s.value for s in Authorisation.Status]),
    st.booleans(),
    st.none() | st.floats(min_value=-90 * 86400, max_value=90 * 86400).filter(lambda s: abs(s) > 0.5),
)


def _set(record, kind: str, grantee_id: str, row) -> None:
    Authorisation.objects.filter(record=record, grantee_kind=kind, grantee_id=grantee_id).delete()
    if row is None:
        return
    status, medecin_traitant, offset = row
    Authorisation.objects.create(
        record=record,
        grantee_kind=kind,
        grantee_id=grantee_id,
        status=status,
        is_medecin_traitant=medecin_traitant,
        expires_at=None if offset is None else clock.now() + dt.timedelta(seconds=offset),
        changed_at=clock.now(),
        changed_by_id="test",
        changed_by_kind="test",
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(own=ROW, structure=ROW, with_structure=st.booleans())
def test_grants_read_with_the_record_give_the_facts_read_on_their_own(
    personas, own, structure, with_structure
):
    caller = personas.ps(personas.dr_petit)
    actor = caller.actor if with_structure else replace(caller.actor, structure_id="")
    record = personas.alice.record
    _set(record, GranteeKind.PROFESSIONAL, caller.actor.person_id, own)
    _set(record, GranteeKind.STRUCTURE, caller.actor.structure_id, structure)
    # Another PS's and another structure's rows are not this actor's.
    valid = AuthorisationStatus.VALID.value
    assert personas.pharmacy.id_nat != caller.actor.structure_id
    _set(record, GranteeKind.PROFESSIONAL, personas.dr_moreau.national_id, (valid, True, None))
    _set(record, GranteeKind.STRUCTURE, personas.pharmacy.id_nat, (valid, False, None))

    read, grants = record_and_grants_by_ins(personas.alice.identifier, actor)
    assert read == record
    assert grants is not None
    assert {row.grantee_kind for row in grants.rows} <= {GranteeKind.PROFESSIONAL, GranteeKind.STRUCTURE}
    assert len(grants.rows) == (own is not None) + (structure is not None and with_structure)
    assert record_facts(actor, read, grants) == record_facts(actor, record_by_ins(personas.alice.identifier))
    document = DocumentEntry.objects.filter(record=record).first()
    if document is not None:
        found, document_grants = one_document_and_grants(actor, unique_id=document.unique_id)
        assert found == document
        assert document_grants == grants


def test_a_search_reads_no_authorisation_of_its_own(personas):
    caller = personas.ps(personas.dr_moreau)
    record, grants = record_and_grants_by_ins(personas.alice.identifier, caller.actor)
    with CaptureQueriesContext(connection) as statements:
        facts = record_facts(caller.actor, record, grants)
    assert len(statements) == 0
    assert facts.professional_authorisation is AuthorisationStatus.VALID
    with CaptureQueriesContext(connection) as statements:
        assert record_facts(caller.actor, record) == facts
    assert len(statements) == 1


def test_grants_are_used_for_their_actor_and_record_only(personas):
    moreau, durand = personas.ps(personas.dr_moreau), personas.ps(personas.dr_durand)
    alice, grants = record_and_grants_by_ins(personas.alice.identifier, moreau.actor)
    # dr_durand is blocked on Alice's record: dr_moreau's rights do not become theirs.
    with CaptureQueriesContext(connection) as statements:
        facts = record_facts(durand.actor, alice, grants)
    assert len(statements) == 1
    assert facts.professional_authorisation is AuthorisationStatus.BLOCKED
    # Nor do they apply to another record, nor to the same PS in another structure.
    leo = record_by_ins(personas.leo.identifier)
    assert record_facts(moreau.actor, leo, grants) == record_facts(moreau.actor, leo)
    other = personas.pharmacy.id_nat
    assert other != moreau.actor.structure_id
    elsewhere = replace(moreau.actor, structure_id=other)
    assert not grants.are_for(elsewhere, alice)
    forged = Grants(leo.pk, grants.person_id, grants.structure_id, grants.rows)
    assert not forged.are_for(moreau.actor, alice)


def test_a_patient_side_read_takes_no_grants(personas):
    patient = personas.patient(personas.alice)
    record, grants = record_and_grants_by_ins(personas.alice.identifier, patient.actor)
    assert record == personas.alice.record
    assert grants is None


def _one_document(personas) -> DocumentEntry:
    (entry_uuid,) = publish(
        personas, personas.dr_moreau, personas.alice, [DocumentDraft(title="CR", paragraphs=("Texte.",))]
    )
    return DocumentEntry.objects.get(entry_uuid=entry_uuid)


def test_a_retrieve_reads_the_document_and_the_rights_in_one_statement(personas):
    document = _one_document(personas)
    caller = personas.ps(personas.dr_moreau)
    with CaptureQueriesContext(connection) as statements:
        found, grants = one_document_and_grants(caller.actor, with_key=True, unique_id=document.unique_id)
        access = access_document(
            caller,
            document=found,
            action=Action.DOCUMENT_READ,
            audit_action=AuditAction.DOCUMENT_RETRIEVE,
            grants=grants,
        )
    assert len(statements) == 1
    assert access.facts == record_facts(caller.actor, document.record)
    assert found.record.key is not None
    assert found.author_pairs == one_document(unique_id=document.unique_id).author_pairs


def test_a_blocked_professional_retrieves_nothing_and_the_refusal_is_audited(personas):
    document = _one_document(personas)
    blocked: Caller = personas.ps(personas.dr_durand)
    before = AuditEvent.objects.count()
    with pytest.raises(NotFound):
        document_retrieve(caller=blocked, unique_id=document.unique_id)
    refusal = AuditEvent.objects.order_by("-pk").first()
    assert AuditEvent.objects.count() == before + 1
    assert (refusal.outcome, refusal.actor_id) == ("denied", blocked.actor.person_id)
    # Unblocked, the same PS reads it: the rights read with the document are the current ones.
    Authorisation.objects.filter(
        record=document.record, grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=blocked.actor.person_id
    ).update(status=AuthorisationStatus.VALID.value)
    assert document_retrieve(caller=blocked, unique_id=document.unique_id).content


@pytest.mark.parametrize(
    "who",
    [
        lambda p: p.ps(p.dr_moreau),
        lambda p: p.ps(p.dr_petit, mode=AccessMode.BREAK_GLASS, reason="Urgence vitale"),
        lambda p: p.patient(p.alice),
    ],
    ids=["authorised PS", "break-glass", "patient"],
)
def test_a_content_only_retrieve_serves_the_same_and_reads_nothing_more(personas, who):
    """The columns a content-only retrieve leaves out are none the retrieve itself reads: a
    left-out column would load in a query of its own."""
    document = _one_document(personas)
    caller = who(personas)
    with CaptureQueriesContext(connection) as whole_statements:
        whole = document_retrieve(caller=caller, unique_id=document.unique_id)
    with CaptureQueriesContext(connection) as lean_statements:
        lean = document_retrieve(caller=caller, unique_id=document.unique_id, content_only=True)
    assert len(lean_statements) == len(whole_statements)
    assert (lean.content, lean.document.mime_type, lean.decision) == (
        whole.content,
        whole.document.mime_type,
        whole.decision,
    )
    # The rest of the metadata is there for whoever reads it, one query later.
    with CaptureQueriesContext(connection) as later:
        assert lean.document.title == whole.document.title == "CR"
    assert len(later) == 1
