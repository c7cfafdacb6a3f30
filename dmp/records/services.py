"""Services of the record: the only way to create, close, authorise or edit a DMP.

Every service takes the `Caller`, checks access through `dmp.records.access` before its
transaction, and writes its audit event inside it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from django.db import IntegrityError as DbIntegrityError
from django.db import transaction
from django.utils.translation import gettext

from dmp.access.actors import ActorKind, AuthenticationMode, Caller
from dmp.access.policy import Action, AuthorisationStatus, RecordStatus
from dmp.audit.actions import AuditAction
from dmp.audit.services import Subject, audit_alone, audit_denial, audit_record
from dmp.common import clock
from dmp.common.errors import Conflict, ErrorCode, Forbidden, NotFound, Problem, ValidationFailed
from dmp.common.rows import text_problems, unique_row
from dmp.identity.ins import Ins
from dmp.identity.models import Patient
from dmp.identity.services import PatientTraits, patient_register, patient_update_contact
from dmp.records.access import (
    RecordAccess,
    access_loaded_record,
    access_record,
    authorise,
    is_minor,
    record_by_ins,
    record_subject,
)
from dmp.records.models import (
    Authorisation,
    ClosureReason,
    ExpressionSpace,
    GranteeKind,
    HeirsAccess,
    OrganDonation,
    Record,
    TrustedPerson,
)

# --- TD0.2: existence and rights ---------------------------------------------------------


class RecordState(StrEnum):
    ACTIVE = "ACTIF"
    CLOSED = "FERME"
    NONE = "INEXISTANT"


@dataclass(frozen=True, slots=True)
class PatientSummary:
    family_name: str
    given_names: str
    birth_date: dt.date
    sex: str


@dataclass(frozen=True, slots=True)
class RecordStatusReport:
    """What TD0.2 answers: record state and the caller's standing on it."""

    state: RecordState
    authorisation: AuthorisationStatus = AuthorisationStatus.NONE
    is_medecin_traitant: bool = False
    web_account_opened: bool = False
    patient_is_minor: bool = False
    opposes_break_glass: bool = False
    opposes_centre_15: bool = False
    closed_at: dt.datetime | None = None
    closure_reason: str = ""
    patient: PatientSummary | None = None
    record_public_id: str = ""


def record_test(*, caller: Caller, ins: Ins) -> RecordStatusReport:
    """TD0.2: does a record exist for `ins`, and what may the caller do with it."""
    record = record_by_ins(ins)
    facts, decision = authorise(caller, Action.RECORD_TEST, record)
    subject = record_subject(record) if record is not None else Subject(patient_ins=ins.value)
    if not decision:
        audit_denial(caller=caller, action=AuditAction.RECORD_TEST, subject=subject, reason=decision.reason)
        raise NotFound("no record for this INS")
    audit_alone(caller=caller, action=AuditAction.RECORD_TEST, subject=subject)
    if record is None or facts is None:
        return RecordStatusReport(state=RecordState.NONE)
    authorisation = max(
        (facts.professional_authorisation, facts.structure_authorisation), key=_authorisation_rank
    )
    blocked = authorisation is AuthorisationStatus.BLOCKED
    patient = record.patient
    return RecordStatusReport(
        state=RecordState(record.status),
        authorisation=authorisation,
        is_medecin_traitant=facts.actor_is_medecin_traitant,
        web_account_opened=record.web_account_opened,
        patient_is_minor=facts.patient_is_minor,
        opposes_break_glass=record.opposes_break_glass,
        opposes_centre_15=record.opposes_centre_15,
        closed_at=record.closed_at,
        closure_reason=record.closure_reason,
        patient=None
        if blocked
        else PatientSummary(
            family_name=patient.used_family_name or patient.birth_family_name,
            given_names=patient.given_names,
            birth_date=patient.birth_date,
            sex=patient.sex,
        ),
        record_public_id="" if blocked else str(record.public_id),
    )


def _authorisation_rank(status: AuthorisationStatus) -> int:
    # A block anywhere dominates; then a valid right; then an expired one.
    return {
        AuthorisationStatus.NONE: 0,
        AuthorisationStatus.EXPIRED: 1,
        AuthorisationStatus.VALID: 2,
        AuthorisationStatus.BLOCKED: 3,
    }[status]


# --- TD1.1 / TD1.2: creation, reactivation, closure ----------------------------------------


def _grant_creator(record: Record, caller: Caller, now: dt.datetime) -> None:
    actor = caller.actor
    if actor.kind is not ActorKind.PROFESSIONAL:
        return
    # The consenting patient authorises the professional who opens the record; in indirect
    # mode the structure is authorised (its staff act under its certificate).
    if actor.authentication is AuthenticationMode.DIRECT or not actor.structure_id:
        kind, grantee, name = GranteeKind.PROFESSIONAL, actor.person_id, actor.display_name
    else:
        kind, grantee, name = GranteeKind.STRUCTURE, actor.structure_id, actor.structure_name
    Authorisation.objects.update_or_create(
        record=record,
        grantee_kind=kind,
        grantee_id=grantee,
        defaults={
            "grantee_name": name,
            "status": Authorisation.Status.VALID,
            "changed_at": now,
            "changed_by_id": actor.person_id,
            "changed_by_kind": actor.kind.value,
        },
    )


def _consent_missing() -> ValidationFailed:
    """TD1.1 and TD1.2 both need the patient's consent declared by the PS."""
    return ValidationFailed(
        [
            Problem(
                ErrorCode.CONSENT_REQUIRED,
                gettext("Le consentement du patient doit être déclaré."),
                "consent",
            )
        ]
    )


def record_create(
    *,
    caller: Caller,
    traits: PatientTraits,
    consent: bool,
    opposes_break_glass: bool = False,
    opposes_centre_15: bool = False,
) -> Record:
    """TD1.1: open a DMP for a patient who consents. The creator is authorised on it."""
    if not consent:
        raise _consent_missing()
    ins = traits.identifier()
    existing = record_by_ins(ins)
    _, decision = authorise(caller, Action.RECORD_CREATE, existing)
    if existing is not None:
        raise Conflict(
            gettext("Un DMP fermé existe déjà pour cet INS : réactivez-le.")
            if existing.status == RecordStatus.CLOSED
            else gettext("Un DMP existe déjà pour cet INS."),
            code=ErrorCode.RECORD_EXISTS,
        )
    if not decision:
        audit_denial(
            caller=caller,
            action=AuditAction.RECORD_CREATE,
            subject=Subject(patient_ins=ins.value),
            reason=decision.reason,
        )
        raise Forbidden(f"not allowed to create a record: {decision.reason.value}")
    actor = caller.actor
    now = clock.now()
    try:
        with transaction.atomic(durable=True):
            patient = patient_register(traits)
            record = Record.objects.create(
                patient=patient,
                status=RecordStatus.ACTIVE,
                created_by_id=actor.person_id,
                created_by_name=actor.display_name,
                created_by_structure_id=actor.structure_id,
                consent_declared_at=now,
                consent_declared_by_id=actor.person_id,
                opposes_break_glass=opposes_break_glass,
                opposes_centre_15=opposes_centre_15,
            )
            ExpressionSpace.objects.create(record=record)
            _grant_creator(record, caller, now)
            audit_record(
                caller=caller,
                action=AuditAction.RECORD_CREATE,
                subject=record_subject(record),
                details={"opposes_break_glass": opposes_break_glass, "opposes_centre_15": opposes_centre_15},
            )
    except DbIntegrityError as exc:
        # Two creations raced for the same patient: exactly one wins.
        raise Conflict(gettext("Un DMP existe déjà pour cet INS."), code=ErrorCode.RECORD_EXISTS) from exc
    return record


def record_reactivate(*, caller: Caller, ins: Ins, consent: bool) -> Record:
    """TD1.2: reopen a closed record, with the patient's renewed consent."""
    if not consent:
        raise _consent_missing()
    access = access_record(
        caller,
        ins=ins,
        action=Action.RECORD_REACTIVATE,
        audit_action=AuditAction.RECORD_REACTIVATE,
        for_write=True,
    )
    now = clock.now()
    with transaction.atomic(durable=True):
        record = Record.objects.select_for_update().get(pk=access.record.pk)
        if record.status != RecordStatus.CLOSED:
            raise Conflict(gettext("Le DMP n'est pas fermé."), code=ErrorCode.CONFLICT)
        record.status = RecordStatus.ACTIVE
        record.reactivated_at = now
        record.consent_declared_at = now
        record.consent_declared_by_id = caller.actor.person_id
        record.save(
            update_fields=["status", "reactivated_at", "consent_declared_at", "consent_declared_by_id"]
        )
        _grant_creator(record, caller, now)
        audit_record(caller=caller, action=AuditAction.RECORD_REACTIVATE, subject=record_subject(record))
    return record


def record_close(*, caller: Caller, record: Record, reason: str, comment: str = "") -> Record:
    """Close a record (at the patient's request, or on death). Its content is kept, not erased."""
    problems = text_problems(Record, {"closure_comment": comment})
    if reason not in ClosureReason.values:
        problems.append(Problem(ErrorCode.INVALID, gettext("Motif de fermeture inconnu."), "reason"))
    if problems:
        raise ValidationFailed(problems)
    access_loaded_record(
        caller,
        record=record,
        action=Action.RECORD_CLOSE,
        audit_action=AuditAction.RECORD_CLOSE,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        locked = Record.objects.select_for_update().get(pk=record.pk)
        if locked.status == RecordStatus.CLOSED:
            raise Conflict(gettext("Le DMP est déjà fermé."), code=ErrorCode.RECORD_CLOSED)
        locked.status = RecordStatus.CLOSED
        locked.closed_at = clock.now()
        locked.closure_reason = reason
        locked.closure_comment = comment
        locked.save(update_fields=["status", "closed_at", "closure_reason", "closure_comment", "updated_at"])
        audit_record(
            caller=caller,
            action=AuditAction.RECORD_CLOSE,
            subject=record_subject(locked),
            details={"reason": reason},
        )
    return locked


def record_mark_web_account(record: Record) -> None:
    """Notes on the record that a web account was opened for it (TD1.5, shown by TD0.2). Runs in
    the transaction of the account's opening, which the caller audits: both or neither."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_mark_web_account must run inside the account's transaction")
    Record.objects.filter(pk=record.pk).update(web_account_opened=True)


def record_update_contact(
    *,
    caller: Caller,
    record: Record,
    address_line: str | None = None,
    postal_code: str | None = None,
    city: str | None = None,
    email: str | None = None,
    mobile_phone: str | None = None,
) -> Patient:
    """Update of the patient's contact details on the record: the fields given (None leaves one
    as it is, "" clears it). The trace names the fields that changed, not their values."""
    access_loaded_record(
        caller,
        record=record,
        action=Action.RECORD_UPDATE_ADMIN,
        audit_action=AuditAction.RECORD_UPDATE_ADMIN,
        for_write=True,
    )
    patient = record.patient
    with transaction.atomic(durable=True):
        changed = patient_update_contact(
            patient,
            address_line=address_line,
            postal_code=postal_code,
            city=city,
            email=email,
            mobile_phone=mobile_phone,
        )
        audit_record(
            caller=caller,
            action=AuditAction.RECORD_UPDATE_ADMIN,
            subject=record_subject(record),
            details={"fields": changed},
        )
    return patient


def oppositions_set(*, caller: Caller, record: Record, break_glass: bool, centre_15: bool) -> Record:
    """The patient (or representative) opposes or allows break-glass and Centre 15 access."""
    access_loaded_record(
        caller,
        record=record,
        action=Action.AUTHORISATION_MANAGE,
        audit_action=AuditAction.OPPOSITIONS_CHANGE,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        Record.objects.filter(pk=record.pk).update(
            opposes_break_glass=break_glass, opposes_centre_15=centre_15
        )
        audit_record(
            caller=caller,
            action=AuditAction.OPPOSITIONS_CHANGE,
            subject=record_subject(record),
            details={"opposes_break_glass": break_glass, "opposes_centre_15": centre_15},
        )
    record.refresh_from_db()
    return record


# --- TD0.3 and authorisation management -----------------------------------------------------


class AuthorisationChange(StrEnum):
    GRANT = "grant"
    BLOCK = "block"
    REMOVE = "remove"


_CHANGE_STATUS = {
    AuthorisationChange.GRANT: Authorisation.Status.VALID,
    AuthorisationChange.BLOCK: Authorisation.Status.BLOCKED,
    AuthorisationChange.REMOVE: Authorisation.Status.REMOVED,
}
_CHANGE_AUDIT = {
    AuthorisationChange.GRANT: AuditAction.AUTHORISATION_GRANT,
    AuthorisationChange.BLOCK: AuditAction.AUTHORISATION_BLOCK,
    AuthorisationChange.REMOVE: AuditAction.AUTHORISATION_REMOVE,
}


_PATIENT_SIDE: Final = frozenset({ActorKind.PATIENT, ActorKind.LEGAL_REPRESENTATIVE})
_PATIENT_SIDE_KINDS: Final = frozenset(kind.value for kind in _PATIENT_SIDE)


def _lock_authorisations(record: Record) -> None:
    """Serialises the authorisation changes of `record` (its row locked until the commit): two
    creations of one grantee's row cannot race into the unique constraint."""
    list(Record.objects.select_for_update().filter(pk=record.pk).values_list("pk", flat=True))


def _apply_authorisation(
    *,
    caller: Caller,
    record: Record,
    kind: GranteeKind,
    grantee_id: str,
    grantee_name: str,
    change: AuthorisationChange,
    expires_at: dt.datetime | None,
) -> Authorisation:
    now = clock.now()
    with transaction.atomic(durable=True):
        _lock_authorisations(record)
        row, _ = Authorisation.objects.select_for_update().get_or_create(
            record=record,
            grantee_kind=kind,
            grantee_id=grantee_id,
            defaults={
                "grantee_name": grantee_name,
                "status": _CHANGE_STATUS[change],
                "changed_at": now,
                "changed_by_id": caller.actor.person_id,
                "changed_by_kind": caller.actor.kind.value,
            },
        )
        if (
            row.status == Authorisation.Status.BLOCKED
            and row.changed_by_kind in _PATIENT_SIDE_KINDS
            and caller.actor.kind not in _PATIENT_SIDE
            and change is not AuthorisationChange.BLOCK
        ):
            # A block is the patient's (or legal representative's) to lift: a médecin traitant
            # managing the authorisations does not undo it.
            raise Forbidden("this block was set by the patient: only the patient can lift it")
        row.status = _CHANGE_STATUS[change]
        row.grantee_name = grantee_name or row.grantee_name
        row.expires_at = expires_at if change is AuthorisationChange.GRANT else None
        if change is not AuthorisationChange.GRANT:
            row.is_medecin_traitant = False
        row.changed_at = now
        row.changed_by_id = caller.actor.person_id
        row.changed_by_kind = caller.actor.kind.value
        row.changed_in_secret = caller.actor.secret_connection
        row.save()
        audit_record(
            caller=caller,
            action=_CHANGE_AUDIT[change],
            subject=record_subject(record),
            details={"grantee_kind": kind.value, "grantee_id": grantee_id, "expires_at": expires_at},
        )
    return row


def authorisation_self(*, caller: Caller, ins: Ins, grant: bool) -> Authorisation:
    """TD0.3: the professional records the patient's consent to its own access (or withdraws it)."""
    access = access_record(
        caller,
        ins=ins,
        action=Action.AUTHORISATION_SELF,
        audit_action=AuditAction.AUTHORISATION_GRANT,
        for_write=True,
    )
    actor = caller.actor
    if actor.authentication is AuthenticationMode.DIRECT or not actor.structure_id:
        kind, grantee, name = GranteeKind.PROFESSIONAL, actor.person_id, actor.display_name
    else:
        kind, grantee, name = GranteeKind.STRUCTURE, actor.structure_id, actor.structure_name
    return _apply_authorisation(
        caller=caller,
        record=access.record,
        kind=kind,
        grantee_id=grantee,
        grantee_name=name,
        change=AuthorisationChange.GRANT if grant else AuthorisationChange.REMOVE,
        expires_at=None,
    )


def authorisation_change(
    *,
    caller: Caller,
    record: Record,
    grantee_kind: GranteeKind,
    grantee_id: str,
    grantee_name: str = "",
    change: AuthorisationChange,
    expires_at: dt.datetime | None = None,
) -> Authorisation:
    """The patient, a legal representative or the médecin traitant grants, blocks or removes access."""
    problems = text_problems(Authorisation, {"grantee_id": grantee_id.strip(), "grantee_name": grantee_name})
    if not grantee_id.strip():
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("L'identifiant du professionnel est obligatoire."), "grantee_id"
            )
        )
    if expires_at is not None and expires_at <= clock.now():
        problems.append(
            Problem(ErrorCode.INVALID, gettext("La date de fin doit être dans le futur."), "expires_at")
        )
    if problems:
        raise ValidationFailed(problems)
    access_loaded_record(
        caller,
        record=record,
        action=Action.AUTHORISATION_MANAGE,
        audit_action=_CHANGE_AUDIT[change],
        for_write=True,
    )
    return _apply_authorisation(
        caller=caller,
        record=record,
        kind=grantee_kind,
        grantee_id=grantee_id.strip(),
        grantee_name=grantee_name,
        change=change,
        expires_at=expires_at,
    )


def medecin_traitant_set(*, caller: Caller, ins: Ins, declare: bool) -> Authorisation | None:
    """TD0.3 role MEDECIN_TRAITANT: a doctor declares (or stops being) médecin traitant DMP.

    Declaring gives the doctor a personal authorisation (one authorised only through its
    structure, or one whose personal access was removed, as TD0.3 AJOUT would). Stopping only
    clears the role: it never creates nor restores an access right, and does nothing (no trace)
    for a doctor who is not médecin traitant. The doctor's authorisation row, or None."""
    audit_action = AuditAction.MEDECIN_TRAITANT_SET if declare else AuditAction.MEDECIN_TRAITANT_UNSET
    access = access_record(
        caller, ins=ins, action=Action.MEDECIN_TRAITANT_DECLARE, audit_action=audit_action, for_write=True
    )
    actor = caller.actor
    now = clock.now()
    with transaction.atomic(durable=True):
        _lock_authorisations(access.record)
        row = unique_row(
            Authorisation.objects.select_for_update().filter(
                record=access.record, grantee_kind=GranteeKind.PROFESSIONAL, grantee_id=actor.person_id
            )
        )
        if not declare and (row is None or not row.is_medecin_traitant):
            return row
        if row is None:
            row = Authorisation(
                record=access.record,
                grantee_kind=GranteeKind.PROFESSIONAL,
                grantee_id=actor.person_id,
                grantee_name=actor.display_name,
            )
        elif declare and row.status == Authorisation.Status.BLOCKED:
            raise Forbidden("the patient blocked this professional")
        if declare:
            row.status = Authorisation.Status.VALID
        row.is_medecin_traitant = declare
        row.changed_at = now
        row.changed_by_id = actor.person_id
        row.changed_by_kind = actor.kind.value
        row.changed_in_secret = actor.secret_connection
        row.save()
        audit_record(caller=caller, action=audit_action, subject=access.subject)
    return row


# --- Personal expression space -------------------------------------------------------------


def expression_space_update(
    *,
    caller: Caller,
    record: Record,
    organ_donation: str,
    organ_donation_note: str = "",
    has_advance_directives: bool = False,
    advance_directives_location: str = "",
    heirs_access: str = HeirsAccess.NOT_STATED,
    personal_note: str = "",
) -> ExpressionSpace:
    problems = text_problems(
        ExpressionSpace,
        {
            "organ_donation_note": organ_donation_note,
            "advance_directives_location": advance_directives_location,
            "personal_note": personal_note,
        },
    )
    if organ_donation not in OrganDonation.values:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("Position sur le don d'organes inconnue."), "organ_donation")
        )
    if heirs_access not in HeirsAccess.values:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("Choix d'accès des ayants droit inconnu."), "heirs_access")
        )
    if problems:
        raise ValidationFailed(problems)
    access_loaded_record(
        caller,
        record=record,
        action=Action.EXPRESSION_WRITE,
        audit_action=AuditAction.EXPRESSION_UPDATE,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        space, _ = ExpressionSpace.objects.select_for_update().get_or_create(record=record)
        space.organ_donation = organ_donation
        space.organ_donation_note = organ_donation_note
        space.has_advance_directives = has_advance_directives
        space.advance_directives_location = advance_directives_location
        space.heirs_access = heirs_access
        space.personal_note = personal_note
        space.save()
        audit_record(caller=caller, action=AuditAction.EXPRESSION_UPDATE, subject=record_subject(record))
    return space


def trusted_person_add(
    *,
    caller: Caller,
    record: Record,
    role: str,
    family_name: str,
    given_name: str,
    relationship: str = "",
    phone: str = "",
    email: str = "",
) -> TrustedPerson:
    family_name, given_name = family_name.strip(), given_name.strip()
    problems = text_problems(
        TrustedPerson,
        {
            "family_name": family_name,
            "given_name": given_name,
            "relationship": relationship,
            "phone": phone,
            "email": email,
        },
    )
    if role not in TrustedPerson.Role.values:
        problems.append(Problem(ErrorCode.INVALID, gettext("Rôle inconnu."), "role"))
    if not family_name or not given_name:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("Le nom et le prénom sont obligatoires."), "family_name")
        )
    if problems:
        raise ValidationFailed(problems)
    access_loaded_record(
        caller,
        record=record,
        action=Action.EXPRESSION_WRITE,
        audit_action=AuditAction.EXPRESSION_UPDATE,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        person = TrustedPerson.objects.create(
            record=record,
            role=role,
            family_name=family_name,
            given_name=given_name,
            relationship=relationship,
            phone=phone,
            email=email,
        )
        audit_record(
            caller=caller,
            action=AuditAction.EXPRESSION_UPDATE,
            subject=record_subject(record),
            details={"trusted_person_added": person.pk},
        )
    return person


def trusted_person_remove(*, caller: Caller, record: Record, person_id: int) -> None:
    access_loaded_record(
        caller,
        record=record,
        action=Action.EXPRESSION_WRITE,
        audit_action=AuditAction.EXPRESSION_UPDATE,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        deleted, _ = TrustedPerson.objects.filter(record=record, pk=person_id).delete()
        if not deleted:
            raise NotFound("no such trusted person")
        audit_record(
            caller=caller,
            action=AuditAction.EXPRESSION_UPDATE,
            subject=record_subject(record),
            details={"trusted_person_removed": person_id},
        )


def record_read(*, caller: Caller, record: Record, action: Action, audit_action: AuditAction) -> RecordAccess:
    """Check and audit a read of the record (administrative data, expression space, export)."""
    access = access_loaded_record(caller, record=record, action=action, audit_action=audit_action)
    audit_alone(caller=caller, action=audit_action, subject=access.subject)
    return access


__all__ = [
    "AuthorisationChange",
    "RecordState",
    "RecordStatusReport",
    "authorisation_change",
    "authorisation_self",
    "expression_space_update",
    "is_minor",
    "medecin_traitant_set",
    "oppositions_set",
    "record_close",
    "record_create",
    "record_mark_web_account",
    "record_reactivate",
    "record_read",
    "record_test",
    "record_update_contact",
    "trusted_person_add",
    "trusted_person_remove",
]
