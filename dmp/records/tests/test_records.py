# mypy: disable-error-code="union-attr,arg-type"
"""Records: creation with consent and oppositions, TD0.2 answers, authorisations and blocks,
médecin traitant, TD0.4, closure and reactivation; each refusal changes nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from dmp.access.actors import Caller, Channel
from dmp.access.policy import AuthorisationStatus
from dmp.audit.models import AuditEvent
from dmp.common import clock
from dmp.common.errors import Conflict, ErrorCode, Forbidden, ValidationFailed
from dmp.identity.actors import patient_actor
from dmp.identity.ins import Ins, InsAuthority
from dmp.records.access import own_record, record_by_ins, record_facts
from dmp.records.models import (
    Authorisation,
    ClosureReason,
    ExpressionSpace,
    GranteeKind,
    OrganDonation,
    Record,
    TrustedPerson,
)
from dmp.records.selectors import records_authorised_for
from dmp.records.services import (
    AuthorisationChange,
    RecordState,
    authorisation_change,
    expression_space_update,
    medecin_traitant_set,
    record_close,
    record_create,
    record_reactivate,
    record_test,
    trusted_person_add,
)

pytestmark = pytest.mark.django_db


def bob(personas) -> Ins:
    return Ins(personas.bob_traits.ins, InsAuthority(personas.bob_traits.ins_authority))


def test_creation_needs_consent_and_records_the_oppositions(personas):
    caller = personas.ps(personas.dr_moreau)
    with pytest.raises(ValidationFailed) as refused:
        record_create(caller=caller, traits=personas.bob_traits, consent=False)
    assert refused.value.problems[0].code is ErrorCode.CONSENT_REQUIRED
    assert record_by_ins(bob(personas)) is None

    record = record_create(
        caller=caller,
        traits=personas.bob_traits,
        consent=True,
        opposes_break_glass=True,
        opposes_centre_15=False,
    )
    assert (record.opposes_break_glass, record.opposes_centre_15) == (True, False)
    assert record.consent_declared_by_id == personas.dr_moreau.national_id
    # The creator is authorised; another PS is not, and learns only the status.
    report = record_test(caller=caller, ins=bob(personas))
    assert (report.state, report.authorisation) == (RecordState.ACTIVE, AuthorisationStatus.VALID)
    assert report.opposes_break_glass
    other = record_test(caller=personas.ps(personas.dr_petit), ins=bob(personas))
    assert other.authorisation is AuthorisationStatus.NONE
    with pytest.raises(Conflict):
        record_create(caller=caller, traits=personas.bob_traits, consent=True)
    assert Record.objects.filter(patient__ins=personas.bob_traits.ins).count() == 1


def test_td02_for_an_unknown_patient_and_for_a_blocked_ps(personas):
    assert record_test(caller=personas.ps(personas.dr_petit), ins=bob(personas)).state is RecordState.NONE
    blocked = record_test(caller=personas.ps(personas.dr_durand), ins=personas.alice.identifier)
    assert blocked.authorisation is AuthorisationStatus.BLOCKED
    # A blocked PS is told so, and nothing else about the patient.
    assert blocked.patient is None
    assert blocked.record_public_id == ""
    traitant = record_test(caller=personas.ps(personas.dr_bernard), ins=personas.alice.identifier)
    assert traitant.is_medecin_traitant
    assert traitant.patient is not None


def test_the_patient_blocks_a_ps_who_then_gets_nothing_even_in_break_glass(personas):
    record = record_by_ins(personas.alice.identifier)
    authorisation_change(
        caller=personas.patient(personas.alice),
        record=record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_moreau.national_id,
        change=AuthorisationChange.BLOCK,
    )
    assert (
        record_test(caller=personas.ps(personas.dr_moreau), ins=personas.alice.identifier).authorisation
        is AuthorisationStatus.BLOCKED
    )
    assert personas.alice.ins not in {
        r.record.patient.ins for r in records_authorised_for(caller=personas.ps(personas.dr_moreau))
    }


def test_only_the_patient_or_the_medecin_traitant_manages_authorisations(personas):
    record = record_by_ins(personas.alice.identifier)
    before = list(Authorisation.objects.values_list("grantee_id", "status"))
    # Dr Moreau is authorised, so knows the record exists: a plain refusal.
    with pytest.raises(Forbidden, match="not_medecin_traitant"):
        authorisation_change(
            caller=personas.ps(personas.dr_moreau),
            record=record,
            grantee_kind=GranteeKind.PROFESSIONAL,
            grantee_id=personas.dr_petit.national_id,
            change=AuthorisationChange.GRANT,
        )
    assert list(Authorisation.objects.values_list("grantee_id", "status")) == before
    granted = authorisation_change(
        caller=personas.ps(personas.dr_bernard),
        record=record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_petit.national_id,
        change=AuthorisationChange.GRANT,
    )
    assert granted.status == Authorisation.Status.VALID


def test_a_nurse_cannot_become_medecin_traitant(personas):
    with pytest.raises(Forbidden, match="not_medecin"):
        medecin_traitant_set(
            caller=personas.ps(personas.nurse_robert), ins=personas.alice.identifier, declare=True
        )
    assert not record_test(
        caller=personas.ps(personas.nurse_robert), ins=personas.alice.identifier
    ).is_medecin_traitant


def test_td04_lists_the_records_a_ps_is_authorised_on(personas):
    listed = {r.record.patient.ins for r in records_authorised_for(caller=personas.ps(personas.dr_bernard))}
    assert {personas.alice.ins, personas.leo.ins} <= listed
    assert personas.chloe.ins not in listed  # closed


def _grant_at(record: Record, kind: GranteeKind, grantee_id: str, moment: dt.datetime) -> None:
    Authorisation.objects.update_or_create(
        record=record,
        grantee_kind=kind,
        grantee_id=grantee_id,
        defaults={
            "status": Authorisation.Status.VALID,
            "changed_at": moment,
            "changed_by_id": "test",
            "changed_by_kind": "patient",
        },
    )


def test_td04_merges_the_ps_and_structure_authorisations_newest_first(personas):
    """The PS's own authorisations and its structure's are read apart (each query follows its
    index) and merged: newest first, a record authorised both ways listed once with its newest
    row, the limit counted in records, a record the PS is blocked on left out."""
    alice, leo = record_by_ins(personas.alice.identifier), record_by_ins(personas.leo.identifier)
    now = clock.now()
    chu = personas.chu.id_nat
    _grant_at(alice, GranteeKind.PROFESSIONAL, personas.dr_moreau.national_id, now - dt.timedelta(minutes=20))
    _grant_at(alice, GranteeKind.STRUCTURE, chu, now - dt.timedelta(minutes=60))
    _grant_at(leo, GranteeKind.STRUCTURE, chu, now - dt.timedelta(minutes=1))
    Record.objects.filter(pk=alice.pk).update(last_document_at=now - dt.timedelta(days=1))
    Record.objects.filter(pk=leo.pk).update(last_document_at=now - dt.timedelta(days=2))
    moreau = personas.ps(personas.dr_moreau)

    listed = records_authorised_for(caller=moreau)
    assert [(r.record.pk, r.authorised_at) for r in listed] == [
        (leo.pk, now - dt.timedelta(minutes=1)),
        (alice.pk, now - dt.timedelta(minutes=20)),
    ]
    assert [r.record.pk for r in records_authorised_for(caller=moreau, limit=1)] == [leo.pk]
    by_document = records_authorised_for(caller=moreau, order_by_last_document=True)
    assert [r.record.pk for r in by_document] == [alice.pk, leo.pk]

    # Dr Durand is blocked on Alice: his structure's authorisation does not list her record.
    _grant_at(alice, GranteeKind.STRUCTURE, personas.cabinet.id_nat, now)
    _grant_at(leo, GranteeKind.STRUCTURE, personas.cabinet.id_nat, now - dt.timedelta(minutes=5))
    listed = records_authorised_for(caller=personas.ps(personas.dr_durand), limit=1)
    assert [r.record.pk for r in listed] == [leo.pk]


def test_closure_then_reactivation(personas):
    record = record_by_ins(personas.alice.identifier)
    with pytest.raises(ValidationFailed):
        record_close(caller=personas.patient(personas.alice), record=record, reason="whatever")
    # An authorised PS may close at the patient's request; one without authorisation may not.
    with pytest.raises(Forbidden, match="not_authorised"):
        record_close(
            caller=personas.ps(personas.dr_petit), record=record, reason=ClosureReason.PATIENT_REQUEST
        )
    assert record_by_ins(personas.alice.identifier).status == "ACTIF"
    record_close(caller=personas.patient(personas.alice), record=record, reason=ClosureReason.PATIENT_REQUEST)
    closed = record_test(caller=personas.ps(personas.dr_bernard), ins=personas.alice.identifier)
    assert closed.state is RecordState.CLOSED
    assert personas.alice.ins not in {
        r.record.patient.ins for r in records_authorised_for(caller=personas.ps(personas.dr_bernard))
    }
    with pytest.raises(ValidationFailed):
        record_reactivate(
            caller=personas.ps(personas.dr_bernard), ins=personas.alice.identifier, consent=False
        )
    reopened = record_reactivate(
        caller=personas.ps(personas.dr_bernard), ins=personas.alice.identifier, consent=True
    )
    assert reopened.status == "ACTIF"


def test_stopping_as_medecin_traitant_never_creates_an_access_right(personas):
    """Dr Petit is authorised through his structure only. Withdrawing a role he does not hold
    must not give him a personal authorisation (which would outlive the structure's); declaring
    it gives him one, and restores it after the patient removed it, as TD0.3 AJOUT would."""
    record = record_by_ins(personas.alice.identifier)
    petit = personas.ps(personas.dr_petit)
    patient = personas.patient(personas.alice)
    authorisation_change(
        caller=patient,
        record=record,
        grantee_kind=GranteeKind.STRUCTURE,
        grantee_id=petit.actor.structure_id,
        change=AuthorisationChange.GRANT,
    )
    personal = Authorisation.objects.filter(
        record=record, grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=personas.dr_petit.national_id
    )
    events = AuditEvent.objects.count()
    assert medecin_traitant_set(caller=petit, ins=personas.alice.identifier, declare=False) is None
    assert not personal.exists()
    assert AuditEvent.objects.count() == events
    declared = medecin_traitant_set(caller=petit, ins=personas.alice.identifier, declare=True)
    assert (declared.status, declared.is_medecin_traitant) == (Authorisation.Status.VALID, True)
    authorisation_change(
        caller=patient,
        record=record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_petit.national_id,
        change=AuthorisationChange.REMOVE,
    )
    again = medecin_traitant_set(caller=petit, ins=personas.alice.identifier, declare=True)
    assert (again.status, again.is_medecin_traitant) == (Authorisation.Status.VALID, True)
    assert record_test(caller=petit, ins=personas.alice.identifier).is_medecin_traitant
    stopped = medecin_traitant_set(caller=petit, ins=personas.alice.identifier, declare=False)
    assert (stopped.status, stopped.is_medecin_traitant) == (Authorisation.Status.VALID, False)


def test_td04_reads_the_role_from_the_ps_row_and_leaves_out_a_blocked_structure(personas):
    """Dr Bernard is médecin traitant of Alice; his cabinet's authorisation, newer, listed her
    with medecinTraitant false. A block of his structure refuses him access (policy), so TD0.4
    no longer lists the record either."""
    bernard = personas.ps(personas.dr_bernard)
    record = record_by_ins(personas.alice.identifier)
    patient = personas.patient(personas.alice)
    structure = bernard.actor.structure_id

    def listed():
        return {r.record.pk: r.is_medecin_traitant for r in records_authorised_for(caller=bernard)}

    def structure_gets(change):
        authorisation_change(
            caller=patient,
            record=record,
            grantee_kind=GranteeKind.STRUCTURE,
            grantee_id=structure,
            change=change,
        )

    assert listed()[record.pk] is True
    structure_gets(AuthorisationChange.GRANT)
    assert listed()[record.pk] is True
    structure_gets(AuthorisationChange.BLOCK)
    assert record.pk not in listed()


def test_a_block_the_patient_set_is_the_patients_to_lift(personas):
    """The médecin traitant manages authorisations, but lifted the patient's own blocks: the
    blocked doctor could then authorise themselves again."""
    record = record_by_ins(personas.alice.identifier)
    authorisation_change(
        caller=personas.patient(personas.alice),
        record=record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_durand.national_id,
        change=AuthorisationChange.BLOCK,
    )
    for change in (AuthorisationChange.GRANT, AuthorisationChange.REMOVE):
        with pytest.raises(Forbidden, match="only the patient"):
            authorisation_change(
                caller=personas.ps(personas.dr_bernard),
                record=record,
                grantee_kind=GranteeKind.PROFESSIONAL,
                grantee_id=personas.dr_durand.national_id,
                change=change,
            )
    assert Authorisation.objects.get(grantee_id=personas.dr_durand.national_id).status == (
        Authorisation.Status.BLOCKED
    )
    lifted = authorisation_change(
        caller=personas.patient(personas.alice),
        record=record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_durand.national_id,
        change=AuthorisationChange.GRANT,
    )
    assert lifted.status == Authorisation.Status.VALID


def test_in_secret_connection_the_minor_changes_nothing_the_parents_see(personas):
    """The secret connection hides the documents the minor adds; the authorisations, the
    expression space and the oppositions are the parents' to read and undo, so changing them in
    secret told the parents what the minor did."""
    leo = personas.leo
    secret = Caller(actor=replace(patient_actor(leo), secret_connection=True), channel=Channel.PATIENT_PORTAL)
    before = list(Authorisation.objects.filter(record=leo.record).values_list("grantee_id", "status"))
    with pytest.raises(Forbidden, match="secret_connection"):
        authorisation_change(
            caller=secret,
            record=leo.record,
            grantee_kind=GranteeKind.STRUCTURE,
            grantee_id=personas.chu.id_nat,
            change=AuthorisationChange.GRANT,
        )
    with pytest.raises(Forbidden, match="secret_connection"):
        trusted_person_add(
            caller=secret, record=leo.record, role="CONFIANCE", family_name="Ami", given_name="Secret"
        )
    assert list(Authorisation.objects.filter(record=leo.record).values_list("grantee_id", "status")) == before
    assert not TrustedPerson.objects.filter(record=leo.record).exists()
    # Outside the secret connection the minor manages them as before.
    trusted_person_add(
        caller=personas.patient(leo),
        record=leo.record,
        role="CONFIANCE",
        family_name="Ami",
        given_name="Connu",
    )


def test_a_patient_is_the_holder_of_their_own_ins_only_not_of_its_value_under_another_authority(personas):
    """An INS value is unique per authority (NIR, NIA, test NIR): a patient was taken for the
    holder of every record whose INS had their value, whatever its authority."""
    alice = personas.alice
    other_authority = next(a for a in InsAuthority if a.value != alice.ins_authority)
    traits = personas.bob_traits.model_copy(update={"ins": alice.ins, "ins_authority": other_authority.value})
    twin = record_create(caller=personas.ps(personas.dr_moreau), traits=traits, consent=True)
    assert twin.patient.ins == alice.ins
    holder = personas.patient(alice)
    assert record_facts(holder.actor, alice.record).actor_is_holder
    assert not record_facts(holder.actor, twin).actor_is_holder
    assert own_record(holder) == alice.record


def test_text_a_column_cannot_hold_is_refused_not_cut(personas):
    """A closure comment, an expression-space note or a trusted person's details longer than
    their column (or holding a control character) used to be cut silently and reported saved."""
    alice = personas.alice
    caller = personas.patient(alice)
    record = alice.record
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as closing:
        record_close(caller=caller, record=record, reason=ClosureReason.PATIENT_REQUEST, comment="x" * 501)
    assert [p.location for p in closing.value.problems] == ["closure_comment"]
    with pytest.raises(ValidationFailed) as expressing:
        expression_space_update(
            caller=caller,
            record=record,
            organ_donation=OrganDonation.values[0],
            organ_donation_note="n" * 501,
            advance_directives_location="bureau\x07",
        )
    assert [p.location for p in expressing.value.problems] == [
        "organ_donation_note",
        "advance_directives_location",
    ]
    with pytest.raises(ValidationFailed) as adding:
        trusted_person_add(
            caller=caller, record=record, role="CONFIANCE", family_name="A", given_name="B", phone="0" * 21
        )
    assert [p.location for p in adding.value.problems] == ["phone"]
    with pytest.raises(ValidationFailed) as granting:
        authorisation_change(
            caller=caller,
            record=record,
            grantee_kind=GranteeKind.PROFESSIONAL,
            grantee_id="8" * 65,
            grantee_name="N" * 201,
            change=AuthorisationChange.BLOCK,
        )
    assert [p.location for p in granting.value.problems] == ["grantee_id", "grantee_name"]
    assert not Authorisation.objects.filter(record=record, grantee_id="8" * 65).exists()
    assert record_by_ins(alice.identifier).status == "ACTIF"
    assert not ExpressionSpace.objects.filter(record=record).exclude(organ_donation_note="").exists()
    assert not TrustedPerson.objects.filter(record=record, family_name="A").exists()
    assert AuditEvent.objects.count() == events
    record_close(caller=caller, record=record, reason=ClosureReason.PATIENT_REQUEST, comment="x" * 500)
    assert record_by_ins(alice.identifier).closure_comment == "x" * 500
