"""Publishing, querying, retrieving, masking, replacing: the core document flows."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import pytest
from django.db import connection

from dmp.access.actors import AccessMode
from dmp.access.policy import DocumentStatus
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.audit.verify import verify_audit_trail
from dmp.cda.header import extract_header
from dmp.common import clock
from dmp.common.errors import Conflict, ErrorCode, Forbidden, IntegrityError, NotFound, ValidationFailed
from dmp.documents import services as documents_services
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.metadata import AssociationInput, ConfidentialityChange, FolderInput
from dmp.documents.models import AssociationType, DocumentEntry, DocumentEntryVersion, Folder
from dmp.documents.selectors import (
    CodeMatch,
    DocumentQuery,
    document_retrieve,
    document_search,
    record_traces_shown,
    related_documents,
)
from dmp.documents.services import (
    MetadataChange,
    document_change_confidentiality,
    document_change_status,
    documents_update,
    metadata_remove,
    submission_register,
)
from dmp.records.models import ClosureReason, GranteeKind, Record
from dmp.records.selectors import own_traces
from dmp.records.services import AuthorisationChange, authorisation_change, authorisation_self, record_close


def caller_author(caller):
    """The caller as the author of what it publishes."""
    return author_for(
        person_id=caller.actor.person_id,
        family_name=caller.actor.display_name.split()[-1],
        given_name="X",
        profession_code=caller.actor.profession_code,
        structure_id=caller.actor.structure_id,
        structure_name=caller.actor.structure_name,
    )


def publish_input(personas, caller, drafts, replaces=None, patient=None):
    patient = patient or personas.alice
    return submission_for(
        ins=patient.identifier, author=caller_author(caller), drafts=drafts, replaces=replaces
    )


def with_associations(submission, *associations, folders=()):
    """`submission` with more associations (and folders)."""
    return submission.model_copy(
        update={
            "folders": (*submission.folders, *folders),
            "associations": (*submission.associations, *associations),
        }
    )


def publish(personas, caller, drafts, replaces=None, patient=None):
    return submission_register(
        caller=caller, submission=publish_input(personas, caller, drafts, replaces=replaces, patient=patient)
    )


def test_it_publishes_then_retrieves_identical_bytes(personas):
    bernard = personas.ps(personas.dr_bernard)
    registered = publish(personas, bernard, [DocumentDraft()])
    document = registered.documents[0]
    assert document.availability_status == DocumentStatus.APPROVED
    retrieved = document_retrieve(caller=bernard, unique_id=document.unique_id)
    # The bytes served are those registered (hash checked) and the CDA the builder made.
    assert hashlib.sha256(retrieved.content).hexdigest() == document.hash_sha256
    assert extract_header(retrieved.content).unique_id == document.unique_id
    assert AuditEvent.objects.filter(
        action=AuditAction.DOCUMENT_PUBLISH, document_unique_id=document.unique_id
    ).exists()
    assert verify_audit_trail().ok


def test_it_hides_masked_document_from_authorised_ps_but_not_from_medecin_traitant(personas):
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    document_change_confidentiality(
        caller=personas.patient(personas.alice),
        entry_uuid=document.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    record = personas.alice.record
    assert document_search(caller=moreau, record=record, query=DocumentQuery()) == []
    with pytest.raises(NotFound):
        document_retrieve(caller=moreau, unique_id=document.unique_id)
    assert [
        v.document.unique_id for v in document_search(caller=bernard, record=record, query=DocumentQuery())
    ] == [document.unique_id]
    assert [
        v.document.unique_id
        for v in document_search(
            caller=personas.patient(personas.alice), record=record, query=DocumentQuery()
        )
    ] == [document.unique_id]


def test_own_traces_do_not_tell_a_masked_document_from_an_unknown_one(personas):
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    document_change_confidentiality(
        caller=personas.patient(personas.alice),
        entry_uuid=document.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    for unique_id in (document.unique_id, "1.2.250.1.999.404"):
        with pytest.raises(NotFound):
            document_retrieve(caller=moreau, unique_id=unique_id)
    refused = [t for t in own_traces(caller=moreau, limit=20) if t.outcome != "success"]
    # The masked document's refusal named it and its patient (the unknown one's named nothing).
    assert len(refused) == 2
    assert len({(t.action, t.patient_ins, t.document_unique_id) for t in refused}) == 1
    assert refused[0].patient_ins == ""
    # The full trail keeps them, for the patient and the operator.
    assert AuditEvent.objects.filter(outcome="denied", document_unique_id=document.unique_id).exists()


def test_it_refuses_a_blocked_ps_in_every_mode(personas):
    publish(personas, personas.ps(personas.dr_bernard), [DocumentDraft()])
    record = personas.alice.record
    for mode, reason in [(AccessMode.NORMAL, ""), (AccessMode.BREAK_GLASS, "arrêt cardiaque")]:
        durand = personas.ps(personas.dr_durand, mode=mode, reason=reason)
        with pytest.raises(NotFound):
            document_search(caller=durand, record=record, query=DocumentQuery())
    assert AuditEvent.objects.filter(actor_id=personas.dr_durand.national_id, outcome="denied").count() == 2


def test_break_glass_reads_unless_opposed_and_is_flagged_for_the_patient(personas):
    publish(personas, personas.ps(personas.dr_bernard), [DocumentDraft()])
    petit = personas.ps(personas.dr_petit)
    with pytest.raises(NotFound):
        document_search(caller=petit, record=personas.alice.record, query=DocumentQuery())
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    found = document_search(caller=glass, record=personas.alice.record, query=DocumentQuery())
    assert len(found) == 1
    assert found[0].decision.notify_patient


def test_replacement_deprecates_the_old_version(personas):
    bernard = personas.ps(personas.dr_bernard)
    first = publish(personas, bernard, [DocumentDraft()]).documents[0]
    second = publish(
        personas, bernard, [DocumentDraft(title="Compte rendu v2")], replaces={0: first.entry_uuid}
    )
    first.refresh_from_db()
    assert first.availability_status == DocumentStatus.DEPRECATED
    assert second.documents[0].availability_status == DocumentStatus.APPROVED
    # One new document replacing two: only the second was deprecated, the first left current.
    a, b = publish(personas, bernard, [DocumentDraft(), DocumentDraft()]).documents
    submission = publish_input(personas, bernard, [DocumentDraft(title="v2")], replaces={0: a.entry_uuid})
    (rplc,) = submission.associations[-1:]
    twice = with_associations(
        submission,
        rplc.model_copy(
            update={"entry_uuid": "urn:uuid:5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", "target": b.entry_uuid}
        ),
    )
    count = DocumentEntry.objects.count()
    with pytest.raises(ValidationFailed, match="un seul document"):
        submission_register(caller=bernard, submission=twice)
    assert DocumentEntry.objects.count() == count
    assert {d.availability_status for d in DocumentEntry.objects.filter(pk__in=[a.pk, b.pk])} == {
        DocumentStatus.APPROVED
    }


def test_a_ps_who_is_not_the_author_cannot_replace_or_delete(personas):
    document = publish(personas, personas.ps(personas.dr_bernard), [DocumentDraft()]).documents[0]
    moreau = personas.ps(personas.dr_moreau)
    with pytest.raises(ValidationFailed) as error:
        publish(personas, moreau, [DocumentDraft()], replaces={0: document.entry_uuid})
    assert error.value.code == ErrorCode.UNRESOLVED_REFERENCE
    # Moreau may read the document: he is told why he may not delete it, not that it is unknown.
    with pytest.raises(Forbidden, match="not_author"):
        document_change_status(
            caller=moreau, entry_uuid=document.entry_uuid, new_status=DocumentStatus.DELETED
        )
    # Durand, whom the patient blocked, may not read it: for him it does not exist.
    with pytest.raises(NotFound):
        document_change_status(
            caller=personas.ps(personas.dr_durand),
            entry_uuid=document.entry_uuid,
            new_status=DocumentStatus.DELETED,
        )
    assert DocumentEntry.objects.get(pk=document.pk).availability_status == DocumentStatus.APPROVED
    assert list(
        AuditEvent.objects.filter(action=AuditAction.DOCUMENT_DELETE).values_list("outcome", "reason")
    ) == [("denied", "not_author"), ("denied", "blocked")]


def test_duplicate_unique_id_is_rejected_and_changes_nothing(personas):
    bernard = personas.ps(personas.dr_bernard)
    first = publish(personas, bernard, [DocumentDraft()]).documents[0]
    count = DocumentEntry.objects.count()
    with pytest.raises(ValidationFailed) as error:
        publish(personas, bernard, [DocumentDraft(title="Autre contenu", unique_id=first.unique_id)])
    assert error.value.code == ErrorCode.NON_IDENTICAL_HASH
    assert DocumentEntry.objects.count() == count


def test_every_registered_unique_id_of_a_submission_is_reported_at_once(personas):
    """The duplicate check reads the three tables in one statement: each kind of uniqueId is told
    apart, a document's bytes compared, and nothing of the submission is stored."""
    bernard = personas.ps(personas.dr_bernard)

    def with_folder(submission, unique_id):
        folder = FolderInput(
            entry_uuid="Folder01", unique_id=unique_id, patient_id=submission.submission_set.patient_id
        )
        member = AssociationInput(
            entry_uuid="F1",
            association_type=AssociationType.HAS_MEMBER,
            source="SubmissionSet01",
            target="Folder01",
            submission_set_status="Original",
        )
        return with_associations(submission, member, folders=(folder,))

    first = with_folder(
        publish_input(personas, bernard, [DocumentDraft(), DocumentDraft()]), "1.2.250.1.999.7.9"
    )
    submission_register(caller=bernard, submission=first)
    same, other = first.documents
    fresh = publish_input(
        personas, bernard, [DocumentDraft(), DocumentDraft(title="Autre contenu", unique_id=other.unique_id)]
    )
    again = with_folder(
        fresh.model_copy(
            update={
                "submission_set": fresh.submission_set.model_copy(
                    update={"unique_id": first.submission_set.unique_id}
                ),
                "documents": (
                    same,
                    fresh.documents[1],
                    publish_input(personas, bernard, [DocumentDraft()])
                    .documents[0]
                    .model_copy(update={"entry_uuid": "Document02"}),
                ),
                "associations": (
                    *fresh.associations,
                    AssociationInput(
                        entry_uuid="HasMember02",
                        association_type=AssociationType.HAS_MEMBER,
                        source="SubmissionSet01",
                        target="Document02",
                        submission_set_status="Original",
                    ),
                ),
            }
        ),
        "1.2.250.1.999.7.9",
    )
    counts = (DocumentEntry.objects.count(), Folder.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationFailed) as refused:
        submission_register(caller=bernard, submission=again)
    assert [(p.code, p.location) for p in refused.value.problems] == [
        (ErrorCode.DUPLICATE_UNIQUE_ID, same.unique_id),
        (ErrorCode.NON_IDENTICAL_HASH, other.unique_id),
        (ErrorCode.DUPLICATE_UNIQUE_ID, "SubmissionSet"),
        (ErrorCode.DUPLICATE_UNIQUE_ID, "Folder"),
    ]
    assert (DocumentEntry.objects.count(), Folder.objects.count(), AuditEvent.objects.count()) == counts
    # Only what is registered is reported: the same submission with new uniqueIds goes through.
    renewed = again.model_copy(
        update={
            "submission_set": again.submission_set.model_copy(update={"unique_id": "1.2.250.1.999.7.10"}),
            "documents": again.documents[2:],
            "associations": tuple(a for a in again.associations if a.target in {"Document02", "Folder01"}),
            "folders": (again.folders[0].model_copy(update={"unique_id": "1.2.250.1.999.7.11"}),),
        }
    )
    assert len(submission_register(caller=bernard, submission=renewed).documents) == 1


def test_the_podiatrist_may_not_publish_a_delivery_report(personas):
    podiatrist = personas.ps(personas.podiatrist_garnier)
    with pytest.raises(Forbidden):
        publish(personas, podiatrist, [DocumentDraft(type_code="15508-5", title="CR d'accouchement")])
    assert DocumentEntry.objects.count() == 0


def test_corrupted_blob_is_detected_on_read(personas, blob_dir):
    bernard = personas.ps(personas.dr_bernard)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    stored = next(p for p in blob_dir.rglob("*") if p.is_file())
    raw = bytearray(stored.read_bytes())
    raw[-1] ^= 0x01
    stored.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        document_retrieve(caller=bernard, unique_id=document.unique_id)


@pytest.mark.parametrize(
    "association_type", [AssociationType.APPEND, AssociationType.TRANSFORM], ids=["addendum", "transform"]
)
def test_addendum_and_transform_link_documents_without_deprecating_the_original(personas, association_type):
    bernard = personas.ps(personas.dr_bernard)
    original = publish(personas, bernard, [DocumentDraft()]).documents[0]
    submission = publish_input(personas, bernard, [DocumentDraft(title="Addendum")])
    linked = with_associations(
        submission,
        AssociationInput(
            entry_uuid="Link01",
            association_type=association_type,
            source=submission.documents[0].entry_uuid,
            target=original.entry_uuid,
        ),
    )
    added = submission_register(caller=bernard, submission=linked).documents[0]
    original_now = DocumentEntry.objects.get(entry_uuid=original.entry_uuid)
    assert original_now.availability_status == DocumentStatus.APPROVED  # only RPLC deprecates
    related = related_documents(caller=bernard, entry_uuid=original.entry_uuid)
    assert {v.document.entry_uuid for v in related.documents} == {original.entry_uuid, added.entry_uuid}
    assert [a.association_type for a in related.associations] == [association_type]
    # A link to a document that does not exist is refused and registers nothing.
    before = DocumentEntry.objects.count()
    dangling = publish_input(personas, bernard, [DocumentDraft()])
    broken = with_associations(
        dangling,
        AssociationInput(
            entry_uuid="Link02",
            association_type=association_type,
            source=dangling.documents[0].entry_uuid,
            target="urn:uuid:00000000-0000-4000-8000-000000000000",
        ),
    )
    with pytest.raises((ValidationFailed, NotFound)):
        submission_register(caller=bernard, submission=broken)
    assert DocumentEntry.objects.count() == before


def test_other_submissions_leave_a_folders_update_time_alone(personas):
    bernard = personas.ps(personas.dr_bernard)
    submission = publish_input(personas, bernard, [DocumentDraft()])
    folder = FolderInput(
        entry_uuid="Folder01",
        unique_id="1.2.250.1.999.7.1",
        patient_id=submission.submission_set.patient_id,
        title="Suivi",
    )
    with_folder = with_associations(
        submission,
        AssociationInput(
            entry_uuid="F1",
            association_type=AssociationType.HAS_MEMBER,
            source="SubmissionSet01",
            target="Folder01",
            submission_set_status="Original",
        ),
        AssociationInput(
            entry_uuid="F2",
            association_type=AssociationType.HAS_MEMBER,
            source="Folder01",
            target=submission.documents[0].entry_uuid,
        ),
        folders=(folder,),
    )
    created = submission_register(caller=bernard, submission=with_folder).folders[0]
    first_update = Folder.objects.get(pk=created.pk).last_update_time
    # A submission without folder members leaves the folder alone.
    publish(personas, bernard, [DocumentDraft()])
    assert Folder.objects.get(pk=created.pk).last_update_time == first_update
    # Filing a new document into an existing folder is not supported (yet): refused, nothing stored.
    later = publish_input(personas, bernard, [DocumentDraft()])
    filed = with_associations(
        later,
        AssociationInput(
            entry_uuid="F3",
            association_type=AssociationType.HAS_MEMBER,
            source=created.entry_uuid,
            target=later.documents[0].entry_uuid,
        ),
    )
    before = DocumentEntry.objects.count()
    with pytest.raises(ValidationFailed):
        submission_register(caller=bernard, submission=filed)
    assert DocumentEntry.objects.count() == before
    assert Folder.objects.get(pk=created.pk).last_update_time == first_update


def test_an_author_who_did_not_submit_still_finds_the_masked_document(personas):
    # Authorship comes from the author rows, read in bulk by searches (not from the submitter).
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    author = author_for(
        person_id=moreau.actor.person_id,
        family_name="Moreau",
        given_name="X",
        profession_code=moreau.actor.profession_code,
    )
    submission = submission_for(ins=personas.alice.identifier, author=author, drafts=[DocumentDraft()])
    document = submission_register(caller=bernard, submission=submission).documents[0]
    document_change_confidentiality(
        caller=personas.patient(personas.alice),
        entry_uuid=document.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    found = document_search(caller=moreau, record=personas.alice.record, query=DocumentQuery())
    assert [v.document.unique_id for v in found] == [document.unique_id]
    assert found[0].document.author_pairs == ((moreau.actor.person_id, ""),)


def test_the_operator_removes_several_entries_all_or_none(personas):
    """ITI-62: one reference the operator cannot remove (unknown) and none is removed."""
    bernard = personas.ps(personas.dr_bernard)
    documents = publish(personas, bernard, [DocumentDraft(), DocumentDraft()]).documents
    uuids = [d.entry_uuid for d in documents]
    operator = personas.operator()
    removed_before = AuditEvent.objects.filter(action=AuditAction.METADATA_REMOVE, outcome="success").count()
    with pytest.raises(NotFound):
        metadata_remove(
            caller=operator, entry_uuids=[*uuids, "urn:uuid:00000000-0000-0000-0000-000000000000"]
        )
    assert {d.availability_status for d in DocumentEntry.objects.all()} == {DocumentStatus.APPROVED}
    assert DocumentEntry.objects.filter(entry_uuid__in=uuids).count() == 2  # no new version either
    assert (
        AuditEvent.objects.filter(action=AuditAction.METADATA_REMOVE, outcome="success").count()
        == removed_before
    )
    metadata_remove(caller=operator, entry_uuids=uuids)
    assert {d.availability_status for d in DocumentEntry.objects.all()} == {DocumentStatus.DELETED}


def test_the_operator_removing_one_entry_twice_is_refused_and_changes_nothing(personas):
    bernard = personas.ps(personas.dr_bernard)
    (document,) = publish(personas, bernard, [DocumentDraft()]).documents
    versions, events = DocumentEntryVersion.objects.count(), AuditEvent.objects.count()
    with pytest.raises(ValidationFailed, match="deux fois"):
        metadata_remove(caller=personas.operator(), entry_uuids=[document.entry_uuid] * 2)
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.entry_uuid, unchanged.availability_status) == (
        document.entry_uuid,
        DocumentStatus.APPROVED,
    )
    assert (DocumentEntryVersion.objects.count(), AuditEvent.objects.count()) == (versions, events)


def test_a_removal_of_an_entry_updated_meanwhile_is_a_conflict(personas, monkeypatch):
    """The patient masks the document after the operator's removal was decided: the removal
    wrote a second version on top of the masking one, for an entryUUID that no longer named it
    (and two racing removals wrote two)."""
    bernard = personas.ps(personas.dr_bernard)
    (document,) = publish(personas, bernard, [DocumentDraft()]).documents
    load = documents_services._load_current

    def load_then_mask(entry_uuid):
        loaded = load(entry_uuid)
        monkeypatch.setattr(documents_services, "_load_current", load)  # the masking loads it too
        document_change_confidentiality(
            caller=personas.patient(personas.alice),
            entry_uuid=entry_uuid,
            change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        )
        return loaded

    monkeypatch.setattr(documents_services, "_load_current", load_then_mask)
    events = AuditEvent.objects.count()
    with pytest.raises(Conflict):
        metadata_remove(caller=personas.operator(), entry_uuids=[document.entry_uuid])
    masked = DocumentEntry.objects.get(pk=document.pk)
    assert (masked.availability_status, masked.masked_to_professionals) == (DocumentStatus.APPROVED, True)
    assert masked.version == document.version + 1  # the masking's version only
    assert AuditEvent.objects.count() == events + 1  # the masking, nothing of the removal


def test_one_update_of_flags_and_status_is_one_new_version(personas):
    bernard = personas.ps(personas.dr_bernard)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    (updated,) = documents_update(
        caller=bernard,
        changes=[
            MetadataChange(
                entry_uuid=document.entry_uuid,
                confidentiality=(
                    ConfidentialityChange(code="INVISIBLE_PATIENT", enabled=True),
                    ConfidentialityChange(code="INVISIBLE_REPRESENTANTS_LEGAUX", enabled=True),
                ),
                status=DocumentStatus.ARCHIVED,
            )
        ],
    )
    assert (updated.version, updated.availability_status) == (document.version + 1, DocumentStatus.ARCHIVED)
    assert (updated.invisible_to_patient, updated.invisible_to_legal_representatives) == (True, True)
    assert {c["code"] for c in updated.confidentiality_codes} >= {
        "INVISIBLE_PATIENT",
        "INVISIBLE_REPRESENTANTS_LEGAUX",
    }
    assert updated.previous_versions.count() == 1
    assert verify_audit_trail().ok
    with pytest.raises(ValidationFailed, match="deux fois"):
        documents_update(
            caller=bernard,
            changes=[
                MetadataChange(entry_uuid=updated.entry_uuid, status=DocumentStatus.APPROVED),
                MetadataChange(
                    entry_uuid=updated.entry_uuid,
                    confidentiality=(ConfidentialityChange(code="MASQUE_PS", enabled=False),),
                ),
            ],
        )
    with pytest.raises(ValidationFailed, match="ne change rien"):
        documents_update(caller=bernard, changes=[])


def test_a_change_refused_while_writing_undoes_the_changes_written_before_it(personas):
    """The second document's flags make a combination this DMP refuses, which only shows once the
    first document's new version is written: the whole update is rolled back."""
    bernard = personas.ps(personas.dr_bernard)
    first, second = publish(personas, bernard, [DocumentDraft(), DocumentDraft()]).documents
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed, match="ne peuvent pas être combinés"):
        documents_update(
            caller=bernard,
            changes=[
                MetadataChange(
                    entry_uuid=first.entry_uuid,
                    confidentiality=(ConfidentialityChange(code="MASQUE_PS", enabled=True),),
                ),
                MetadataChange(
                    entry_uuid=second.entry_uuid,
                    confidentiality=(
                        ConfidentialityChange(code="MASQUE_PS", enabled=True),
                        ConfidentialityChange(code="INVISIBLE_PATIENT", enabled=True),
                    ),
                ),
            ],
        )
    first.refresh_from_db()
    assert (first.version, first.masked_to_professionals, first.previous_versions.count()) == (1, False, 0)
    assert AuditEvent.objects.count() == events


def test_a_submission_set_references_only_documents_the_caller_may_see(personas):
    """A HasMember from the submission set to an existing object was stored unchecked: an unknown
    id, or a document of another patient, became a dangling reference of the record."""
    bernard = personas.ps(personas.dr_bernard)
    mine = publish(personas, bernard, [DocumentDraft()]).documents[0]
    leos = publish(personas, bernard, [DocumentDraft()], patient=personas.leo).documents[0]

    def referencing(target):
        submission = publish_input(personas, bernard, [DocumentDraft()])
        return with_associations(
            submission,
            AssociationInput(
                entry_uuid="urn:uuid:9b3c7a52-0f53-4c1d-9e0b-2b1f7f6a1c11",
                association_type=AssociationType.HAS_MEMBER,
                source=submission.submission_set.entry_uuid,
                target=target,
                submission_set_status="Reference",
            ),
        )

    before = DocumentEntry.objects.count()
    for target in ("urn:uuid:00000000-0000-4000-8000-000000000000", leos.entry_uuid):
        with pytest.raises(ValidationFailed) as refused:
            submission_register(caller=bernard, submission=referencing(target))
        assert refused.value.problems[0].code is ErrorCode.UNRESOLVED_REFERENCE
        assert DocumentEntry.objects.count() == before
    assert submission_register(caller=bernard, submission=referencing(mine.entry_uuid)).documents


def test_author_person_patterns_follow_sql_like_and_xcn(personas):
    """`_` is one character (a pattern holding one filtered nothing and returned every document),
    an XCN pattern matches the id, family and given name, and several patterns are OR'd."""
    bernard = personas.ps(personas.dr_bernard)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    row = document.author_rows.get()
    family, given = row.person_name.split(" ", 1)
    record = personas.alice.record

    def found(*patterns):
        query = DocumentQuery(author_persons=patterns)
        return [v.document.unique_id for v in document_search(caller=bernard, record=record, query=query)]

    mine = [document.unique_id]
    assert found(row.person_name) == mine
    assert found(row.person_id) == mine
    assert found(family[0] + "_" * (len(family) - 1) + "%") == mine
    assert found("_" + family + "%") == []  # one character too many: no longer "no filter"
    assert found(f"%^{family}^%") == mine
    assert found(f"{row.person_id}^%") == mine
    assert found(f"%^{family}^{given}^%") == mine
    assert found(f"%^{family}^Nobody^%") == []
    assert found("Nobody%", f"{family}%") == mine
    assert found("Nobody%") == []


def test_code_groups_are_anded_and_codes_within_a_group_ored(personas):
    bernard = personas.ps(personas.dr_bernard)
    normal, restricted = publish(
        personas, bernard, [DocumentDraft(), DocumentDraft(confidentiality=("R",))]
    ).documents
    record = personas.alice.record

    def found(*groups):
        query = DocumentQuery(
            confidentiality_codes=tuple(tuple(CodeMatch(code) for code in group) for group in groups)
        )
        return {v.document.unique_id for v in document_search(caller=bernard, record=record, query=query)}

    assert found(("N", "R")) == {normal.unique_id, restricted.unique_id}
    assert found(("N",), ("R",)) == set()  # no document is both
    assert found(("N", "R"), ("R",)) == {restricted.unique_id}


# --- replacement keeps the document's restrictions; the decision holds at commit time ----------


def visible_titles(caller, record):
    return {v.document.title for v in document_search(caller=caller, record=record, query=DocumentQuery())}


def test_a_replacement_keeps_the_patients_masking(personas):
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    first = publish(personas, bernard, [DocumentDraft(title="Sérologie")]).documents[0]
    document_change_confidentiality(
        caller=personas.patient(personas.alice),
        entry_uuid=first.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    current = DocumentEntry.objects.get(pk=first.pk).entry_uuid
    second = publish(personas, bernard, [DocumentDraft(title="Sérologie v2")], replaces={0: current})
    (stored,) = second.documents
    assert stored.masked_to_professionals
    assert "MASQUE_PS" in {c["code"] for c in stored.confidentiality_codes}
    # The author correcting a typo did not undo the patient's choice.
    assert "Sérologie v2" not in visible_titles(moreau, personas.alice.record)
    assert "Sérologie v2" in visible_titles(bernard, personas.alice.record)


def test_a_replacement_outside_the_secret_connection_stays_hidden_from_the_parents(personas):
    leo = personas.leo
    secret = personas.ps(personas.dr_moreau, secret_connection=True)
    authorisation_self(caller=personas.ps(personas.dr_moreau), ins=leo.identifier, grant=True)
    first = publish(personas, secret, [DocumentDraft(title="Contraception")], patient=leo).documents[0]
    assert first.invisible_to_legal_representatives
    publish(
        personas,
        personas.ps(personas.dr_moreau),
        [DocumentDraft(title="Contraception (corrigé)")],
        replaces={0: first.entry_uuid},
        patient=leo,
    )
    mother = personas.representative(personas.alice_as_mother)
    assert "Contraception (corrigé)" not in visible_titles(mother, leo.record)


def test_a_replacement_whose_flags_cannot_join_the_replaced_ones_is_refused(personas):
    bernard = personas.ps(personas.dr_bernard)
    first = publish(personas, bernard, [DocumentDraft(title="Sérologie")]).documents[0]
    document_change_confidentiality(
        caller=personas.patient(personas.alice),
        entry_uuid=first.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    current = DocumentEntry.objects.get(pk=first.pk).entry_uuid
    before = DocumentEntry.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        publish(
            personas,
            bernard,
            [DocumentDraft(title="Sérologie v2", confidentiality=("N", "INVISIBLE_PATIENT"))],
            replaces={0: current},
        )
    assert "restrictions du document remplacé" in refused.value.problems[0].message
    assert DocumentEntry.objects.count() == before
    assert DocumentEntry.objects.get(pk=first.pk).availability_status == DocumentStatus.APPROVED


def test_a_record_closed_while_the_bytes_are_stored_gets_no_document(personas, monkeypatch):
    """Another request closes the record between the decision and the commit (the bytes are
    stored in between, seconds for a large document): the publication is refused at commit."""
    bernard = personas.ps(personas.dr_bernard)
    record = personas.alice.record
    store = documents_services._store_blobs

    def store_then_close(*args, **kwargs):
        stored = store(*args, **kwargs)
        record_close(
            caller=personas.patient(personas.alice),
            record=Record.objects.get(pk=record.pk),
            reason=ClosureReason.PATIENT_REQUEST,
        )
        return stored

    monkeypatch.setattr(documents_services, "_store_blobs", store_then_close)
    before = DocumentEntry.objects.count()
    with pytest.raises(Forbidden):
        publish(personas, bernard, [DocumentDraft()])
    assert DocumentEntry.objects.count() == before
    assert AuditEvent.objects.filter(
        action=AuditAction.DOCUMENT_PUBLISH, outcome="denied", record_id=record.pk
    ).exists()


# --- the traces shown to the patient and to legal representatives ------------------------------


def shown_traces(caller, record):
    return list(record_traces_shown(caller=caller, record=record))


def test_the_parents_do_not_see_what_was_done_in_the_minors_secret_connection(personas):
    leo = personas.leo
    secret = personas.ps(personas.dr_moreau, secret_connection=True)
    authorisation_self(caller=secret, ins=leo.identifier, grant=True)
    publish(personas, secret, [DocumentDraft(title="Contraception")], patient=leo)
    document_search(caller=secret, record=leo.record, query=DocumentQuery())
    mother = personas.representative(personas.alice_as_mother)
    moreau_id = personas.dr_moreau.national_id
    assert [e for e in shown_traces(mother, leo.record) if e.actor_id == moreau_id] == []
    # The trail keeps them, marked (an operator sees them; the minor's own view is the holder's).
    assert (
        AuditEvent.objects.filter(
            actor_id=moreau_id, record_id=leo.record.pk, details__secret_connection=True
        ).count()
        >= 3
    )


def test_the_patient_keeps_the_traces_of_a_document_its_author_deleted(personas):
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    alice = personas.patient(personas.alice)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    document_retrieve(caller=moreau, unique_id=document.unique_id)
    document_change_status(
        caller=bernard,
        entry_uuid=DocumentEntry.objects.get(pk=document.pk).entry_uuid,
        new_status=DocumentStatus.DELETED,
    )
    about = {
        (e.action, e.actor_id)
        for e in shown_traces(alice, personas.alice.record)
        if e.document_unique_id == document.unique_id
    }
    assert (AuditAction.DOCUMENT_RETRIEVE, personas.dr_moreau.national_id) in about
    assert (AuditAction.DOCUMENT_DELETE, personas.dr_bernard.national_id) in about


def test_making_a_document_invisible_hides_what_follows_not_what_the_patient_has_seen(personas):
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    alice = personas.patient(personas.alice)
    document = publish(personas, bernard, [DocumentDraft()]).documents[0]
    document_retrieve(caller=moreau, unique_id=document.unique_id)
    document_change_confidentiality(
        caller=moreau,
        entry_uuid=DocumentEntry.objects.get(pk=document.pk).entry_uuid,
        change=ConfidentialityChange(code="INVISIBLE_PATIENT", enabled=True),
    )
    document_retrieve(caller=bernard, unique_id=document.unique_id)
    about = [
        (e.action, e.actor_id)
        for e in shown_traces(alice, personas.alice.record)
        if e.document_unique_id == document.unique_id
    ]
    # Moreau's read stays in Alice's history; Bernard's read of the now invisible document does not.
    assert (AuditAction.DOCUMENT_RETRIEVE, personas.dr_moreau.national_id) in about
    assert (AuditAction.DOCUMENT_RETRIEVE, personas.dr_bernard.national_id) not in about


def test_the_search_limit_counts_the_documents_shown_not_those_hidden(personas):
    """Hidden documents took the slots of a limited search: the PS missed visible ones, and by
    moving the date bounds could count the hidden ones and date them."""
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    now = clock.now().replace(microsecond=0)
    _older, *newer = publish(
        personas,
        bernard,
        [DocumentDraft(title="ancien", creation_time=now - dt.timedelta(days=9))]
        + [DocumentDraft(title=f"masqué {n}", creation_time=now - dt.timedelta(days=n)) for n in (1, 2, 3)],
    ).documents
    for document in newer:
        document_change_confidentiality(
            caller=personas.patient(personas.alice),
            entry_uuid=document.entry_uuid,
            change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        )
    record = personas.alice.record
    for limit in (1, 2, 5):
        found = document_search(caller=moreau, record=record, query=DocumentQuery(limit=limit))
        assert [v.document.title for v in found] == ["ancien"], limit
    assert len(document_search(caller=bernard, record=record, query=DocumentQuery(limit=2))) == 2


def test_a_legal_representative_sees_the_ordinary_traces(personas):
    """The secret-connection filter compared a missing JSON key with true: NULL in SQL, so the
    exclusion dropped every event and a parent saw no trace at all."""
    bernard = personas.ps(personas.dr_bernard)
    publish(personas, bernard, [DocumentDraft(title="Vaccins")], patient=personas.leo)
    mother = personas.representative(personas.alice_as_mother)
    actions = {(e.action, e.actor_id) for e in shown_traces(mother, personas.leo.record)}
    assert (AuditAction.DOCUMENT_PUBLISH, personas.dr_bernard.national_id) in actions


def test_the_traces_of_a_record_of_many_announced_documents(personas):
    """Each document announced (INVISIBLE_PATIENT lifted) hides the events before its
    announcement: one OR term per document went past SQLite's expression depth."""
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    alice = personas.patient(personas.alice)
    (announced,) = publish(
        personas, bernard, [DocumentDraft(title="Résultat", confidentiality=("N", "INVISIBLE_PATIENT"))]
    ).documents
    document_retrieve(caller=moreau, unique_id=announced.unique_id)  # before the announcement
    document_change_confidentiality(
        caller=bernard,
        entry_uuid=announced.entry_uuid,
        change=ConfidentialityChange(code="INVISIBLE_PATIENT", enabled=False),
    )
    document_retrieve(caller=bernard, unique_id=announced.unique_id)  # after it
    template = DocumentEntry.objects.get(pk=announced.pk)
    copies = []
    for n in range(1500):
        copy = DocumentEntry.objects.get(pk=announced.pk)
        copy.pk, copy.logical_id = None, uuid.uuid4()
        copy.entry_uuid, copy.unique_id = f"urn:uuid:{uuid.uuid4()}", f"1.2.250.1.999.77.{n}"
        copies.append(copy)
    DocumentEntry.objects.bulk_create(copies)
    history = DocumentEntryVersion.objects.get(document=template)
    DocumentEntryVersion.objects.bulk_create(
        DocumentEntryVersion(
            document=copy,
            entry_uuid=f"urn:uuid:{uuid.uuid4()}",
            version=history.version,
            snapshot=history.snapshot,
            superseded_at=history.superseded_at,
            superseded_by_id=history.superseded_by_id,
        )
        for copy in DocumentEntry.objects.filter(unique_id__startswith="1.2.250.1.999.77.")
    )
    reads = {
        e.actor_id
        for e in shown_traces(alice, personas.alice.record)
        if e.document_unique_id == announced.unique_id and e.action == AuditAction.DOCUMENT_RETRIEVE
    }
    assert reads == {personas.dr_bernard.national_id}


def test_masking_a_document_replaced_meanwhile_is_a_conflict(personas, monkeypatch):
    """The patient's masking was decided on the current version; the author's replacement
    committed before it was written: it landed on the deprecated version, the new one stayed
    visible to every PS, and the patient was told it was masked."""
    bernard = personas.ps(personas.dr_bernard)
    (first,) = publish(personas, bernard, [DocumentDraft(title="v1")]).documents
    plan = documents_services._plan_change

    def plan_then_replace(*args, **kwargs):
        planned = plan(*args, **kwargs)
        publish(personas, bernard, [DocumentDraft(title="v2")], replaces={0: first.entry_uuid})
        return planned

    monkeypatch.setattr(documents_services, "_plan_change", plan_then_replace)
    with pytest.raises(Conflict):
        document_change_confidentiality(
            caller=personas.patient(personas.alice),
            entry_uuid=first.entry_uuid,
            change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        )
    assert not DocumentEntry.objects.get(pk=first.pk).masked_to_professionals


def test_a_replacement_of_a_document_updated_meanwhile_is_a_conflict(personas, monkeypatch):
    """The patient masks the document while its replacement's bytes are stored: the update gave
    it a new entryUUID, the lock by the old one found nothing, and the submission ended in a
    KeyError (HTTP 500)."""
    bernard = personas.ps(personas.dr_bernard)
    (first,) = publish(personas, bernard, [DocumentDraft(title="v1")]).documents
    store = documents_services._store_blobs

    def store_then_mask(*args, **kwargs):
        stored = store(*args, **kwargs)
        document_change_confidentiality(
            caller=personas.patient(personas.alice),
            entry_uuid=first.entry_uuid,
            change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        )
        return stored

    monkeypatch.setattr(documents_services, "_store_blobs", store_then_mask)
    documents, events = DocumentEntry.objects.count(), AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        publish(personas, bernard, [DocumentDraft(title="v2")], replaces={0: first.entry_uuid})
    assert refused.value.code == ErrorCode.CONFLICT
    assert "a changé entre-temps" in refused.value.problems[0].message
    assert DocumentEntry.objects.count() == documents
    masked = DocumentEntry.objects.get(pk=first.pk)
    assert (masked.availability_status, masked.masked_to_professionals) == (DocumentStatus.APPROVED, True)
    assert AuditEvent.objects.count() == events + 1  # the masking, nothing of the replacement


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite lets one writer at a time: its transactions never wait on each other's rows",
)
def test_overlapping_metadata_updates_do_not_deadlock(transactional_db, personas, monkeypatch):
    """An update of [A, B] locked A, wrote its audit event (locking the chain head), then asked for
    B; an update of [B] meanwhile held B and waited for the head: PostgreSQL killed one of them
    as a deadlock (HTTP 500)."""
    import threading

    bernard = personas.ps(personas.dr_bernard)
    first, second = publish(personas, bernard, [DocumentDraft(), DocumentDraft()]).documents
    apply = documents_services._apply_change
    first_written, other_waits = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def apply_then_pause(*args, **kwargs):
        written = apply(*args, **kwargs)
        if threading.current_thread().name == "both" and not first_written.is_set():
            first_written.set()
            other_waits.wait(timeout=30)
        return written

    def mask(name: str, documents) -> None:
        try:
            documents_update(
                caller=bernard,
                changes=[
                    MetadataChange(
                        entry_uuid=d.entry_uuid,
                        confidentiality=(ConfidentialityChange(code="MASQUE_PS", enabled=True),),
                    )
                    for d in documents
                ],
            )
            outcomes[name] = "applied"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test compares
            outcomes[name] = exc
        finally:
            connection.close()

    monkeypatch.setattr(documents_services, "_apply_change", apply_then_pause)
    both = threading.Thread(target=mask, args=("both", [first, second]), name="both")
    both.start()
    assert first_written.wait(timeout=30)
    only_second = threading.Thread(target=mask, args=("second", [second]), name="second")
    only_second.start()
    for _ in range(300):  # until the second update waits for a lock
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                break
        time.sleep(0.01)
    other_waits.set()
    both.join(timeout=30)
    only_second.join(timeout=30)
    assert outcomes["both"] == "applied"
    # The later update was decided on the version the first one replaced: a conflict to retry.
    assert isinstance(outcomes["second"], Conflict), outcomes["second"]
    assert (
        DocumentEntry.objects.filter(pk__in=[first.pk, second.pk], masked_to_professionals=True).count() == 2
    )


def _close(personas) -> None:
    record_close(
        caller=personas.patient(personas.alice),
        record=Record.objects.get(pk=personas.alice.record.pk),
        reason=ClosureReason.PATIENT_REQUEST,
    )


def _block_moreau(personas) -> None:
    authorisation_change(
        caller=personas.patient(personas.alice),
        record=Record.objects.get(pk=personas.alice.record.pk),
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=personas.dr_moreau.national_id,
        change=AuthorisationChange.BLOCK,
    )


@pytest.mark.parametrize("meanwhile", [_close, _block_moreau], ids=["record_closed", "author_blocked"])
def test_a_metadata_change_is_decided_again_once_the_record_is_locked(personas, monkeypatch, meanwhile):
    """The record was closed, or the patient blocked the PS, between the decision and the commit:
    a submission was refused under the record's lock, a metadata update went through."""
    moreau = personas.ps(personas.dr_moreau)
    authorisation_self(caller=moreau, ins=personas.alice.identifier, grant=True)
    (document,) = publish(personas, moreau, [DocumentDraft(title="Bilan")]).documents
    plan = documents_services._plan_change

    def plan_then_change_the_record(*args, **kwargs):
        planned = plan(*args, **kwargs)
        meanwhile(personas)
        return planned

    monkeypatch.setattr(documents_services, "_plan_change", plan_then_change_the_record)
    with pytest.raises(NotFound):  # closed or blocked, the PS may not even read it now
        document_change_status(
            caller=moreau, entry_uuid=document.entry_uuid, new_status=DocumentStatus.ARCHIVED
        )
    after = DocumentEntry.objects.get(pk=document.pk)
    assert (after.availability_status, after.version) == (DocumentStatus.APPROVED, 1)
    assert not after.previous_versions.exists()
    denial = AuditEvent.objects.latest("pk")
    assert (denial.action, denial.outcome, denial.actor_id) == (
        AuditAction.DOCUMENT_ARCHIVE,
        "denied",
        personas.dr_moreau.national_id,
    )


@pytest.mark.parametrize(("opposes_break_glass", "opposes_centre_15"), [(True, False), (False, True)])
def test_the_record_lock_reads_what_the_policy_needs_as_it_stands(
    personas, opposes_break_glass, opposes_centre_15
):
    """`_lock_record` reads the row with one plain statement: the values are those of the row
    now (SQLite's booleans as booleans), the record given is left as it was."""
    record = Record.objects.select_related("patient").get(pk=personas.alice.record.pk)
    Record.objects.filter(pk=record.pk).update(
        status="FERME", opposes_break_glass=opposes_break_glass, opposes_centre_15=opposes_centre_15
    )
    locked = documents_services._lock_record(record)
    assert (locked.status, locked.opposes_break_glass, locked.opposes_centre_15) == (
        "FERME",
        opposes_break_glass,
        opposes_centre_15,
    )
    assert type(locked.opposes_break_glass) is bool
    assert type(locked.opposes_centre_15) is bool
    assert (locked.pk, locked.patient) == (record.pk, record.patient)
    assert record.status != "FERME"
