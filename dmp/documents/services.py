"""Document services: register submissions (TD2.1/TD2.2), update metadata (TD3.3a-d).

A submission is acknowledged only once its bytes are durable in the blob store AND its
metadata is committed; any fault leaves the registry unchanged (orphan blobs, if any, are
unreachable ciphertext collected by `manage.py blobs_gc`).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NoReturn

from django.conf import settings
from django.db import IntegrityError as DbIntegrityError
from django.db import connection, transaction
from django.utils.translation import gettext

from dmp.access.actors import Caller
from dmp.access.config import current_matrix
from dmp.access.policy import (
    Action,
    Decision,
    DocumentFacts,
    DocumentStatus,
    RecordFacts,
)
from dmp.audit.actions import AuditAction
from dmp.audit.services import Subject, audit_denial, audit_record
from dmp.common import clock
from dmp.common.errors import Conflict, ErrorCode, Forbidden, Problem, ValidationFailed
from dmp.common.rows import insert_row, insert_rows
from dmp.documents.access import (
    access_document,
    decide_document,
    decide_facts,
    document_subject,
    one_with_authors,
    refuse_change,
    with_authors,
)
from dmp.documents.blobstore import Digests, default_blob_store
from dmp.documents.keys import record_data_key
from dmp.documents.metadata import (
    AssociationInput,
    CodedValue,
    ConfidentialityChange,
    DocumentInput,
    SubmissionInput,
    SubmissionSignature,
)
from dmp.documents.models import (
    Association,
    AssociationType,
    Confidentiality,
    DocumentAuthor,
    DocumentEntry,
    DocumentEntryVersion,
    Folder,
    SubmissionSet,
)
from dmp.documents.rows import author_ids_text
from dmp.documents.validation import confidentiality_problems, submission_problems
from dmp.identity.ins import Ins, InvalidIns, parse_hl7_ins
from dmp.records.access import Grants, record_and_grants_by_ins, record_facts
from dmp.records.models import Record

UUID_PREFIX = "urn:uuid:"


def new_entry_uuid() -> str:
    return f"{UUID_PREFIX}{uuid.uuid4()}"


def _normalise_uuid(value: str) -> str | None:
    """`urn:uuid:...` in canonical lower case, or None for a symbolic id."""
    if not value.lower().startswith(UUID_PREFIX):
        return None
    try:
        return f"{UUID_PREFIX}{uuid.UUID(value[len(UUID_PREFIX) :])}"
    except ValueError:
        return None


@dataclass
class RegisteredSubmission:
    submission_set: SubmissionSet
    documents: list[DocumentEntry]
    folders: list[Folder]
    associations: list[Association]
    id_map: dict[str, str] = field(default_factory=dict)  # submitted id -> stored entryUUID


@dataclass(frozen=True, slots=True)
class _Replaced:
    """A document a submission replaces, as the decision saw it: its row (the entryUUID changes
    with every metadata update) and the entryUUID the decision was taken on."""

    pk: int
    entry_uuid: str
    unique_id: str


@dataclass
class _Plan:
    """What a submission will write, resolved before any I/O."""

    record: Record
    ins: Ins
    id_map: dict[str, str]
    replaced: dict[str, _Replaced]  # new document symbolic id -> the document it replaces
    related_existing: set[str]
    folder_members_existing: set[str]
    digests: dict[str, Digests] = field(default_factory=dict)


def _confidentiality_payload(codes: Iterable[Any]) -> list[dict[str, str]]:
    return [{"code": c.code, "scheme": c.scheme, "display": c.display} for c in codes]


def _input_facts(document: DocumentInput, caller: Caller) -> DocumentFacts:
    codes = {c.code for c in document.confidentiality_codes}
    actor = caller.actor
    return DocumentFacts(
        status=DocumentStatus.APPROVED,
        class_code=document.class_code.code,
        type_code=document.type_code.code,
        masked_to_professionals=Confidentiality.MASKED_TO_PROFESSIONALS in codes,
        invisible_to_patient=Confidentiality.INVISIBLE_TO_PATIENT in codes,
        invisible_to_legal_representatives=Confidentiality.INVISIBLE_TO_LEGAL_REPRESENTATIVES in codes,
        author_person_ids=frozenset(
            {a.person_id for a in document.authors if a.person_id} | {actor.person_id}
        ),
        author_structure_ids=frozenset(
            {a.structure_id for a in document.authors if a.structure_id}
            | ({actor.structure_id} if actor.structure_id else set())
        ),
    )


def _resolve_patient(
    caller: Caller, submission: SubmissionInput, expected_ins: Ins | None
) -> tuple[Ins, Record, Grants | None]:
    """The submission's patient, record and the caller's authorisations on it, read with it
    (for the decision before the bytes are stored; the one under the lock reads them again)."""
    patient_ids = {submission.submission_set.patient_id}
    patient_ids |= {d.patient_id for d in submission.documents}
    patient_ids |= {f.patient_id for f in submission.folders}
    parsed: set[Ins] = set()
    for patient_id in patient_ids:
        try:
            parsed.add(parse_hl7_ins(patient_id))
        except InvalidIns as exc:
            raise ValidationFailed([Problem(ErrorCode.UNKNOWN_PATIENT, exc.message, "patientId")]) from exc
    if len(parsed) != 1:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.PATIENT_ID_MISMATCH,
                    gettext("Tous les objets d'une soumission doivent avoir le même patientId."),
                    "",
                )
            ]
        )
    ins = parsed.pop()
    if expected_ins is not None and ins != expected_ins:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.PATIENT_ID_MISMATCH,
                    gettext("Le patientId de la soumission n'est pas le patient du jeton de sécurité."),
                    "patientId",
                )
            ]
        )
    record, grants = record_and_grants_by_ins(ins, caller.actor)
    if record is None:
        raise ValidationFailed(
            [Problem(ErrorCode.UNKNOWN_PATIENT, gettext("Aucun DMP pour ce patientId."), "patientId")]
        )
    return ins, record, grants


_DMP_DISPLAYS: Final = {
    Confidentiality.MASKED_TO_PROFESSIONALS: "Masqué aux professionnels de santé",
    Confidentiality.INVISIBLE_TO_PATIENT: "Non visible par le patient",
    Confidentiality.INVISIBLE_TO_LEGAL_REPRESENTATIVES: "Non visible par représentants légaux du patient",
}


def _with_flags(document: DocumentInput, flags: Iterable[str]) -> DocumentInput:
    """`document` with the DMP confidentiality flags `flags` added where it lacks them."""
    present = {c.code for c in document.confidentiality_codes}
    extra = tuple(
        CodedValue(code=flag, scheme=Confidentiality.DMP_SYSTEM, display=_DMP_DISPLAYS[flag])
        for flag in sorted(set(flags) - present)
    )
    if not extra:
        return document
    return document.model_copy(update={"confidentiality_codes": (*document.confidentiality_codes, *extra)})


def _with_secret_connection(document: DocumentInput, caller: Caller) -> DocumentInput:
    """A minor's secret connection forces INVISIBLE_REPRESENTANTS_LEGAUX (EX_2.1-1050)."""
    if not caller.actor.secret_connection:
        return document
    return _with_flags(document, [Confidentiality.INVISIBLE_TO_LEGAL_REPRESENTATIVES])


def _restrictions(document: DocumentEntry) -> set[str]:
    return {flag for flag, name in Confidentiality.FLAG_FIELDS.items() if getattr(document, name)}


def _inheriting_restrictions(
    documents: tuple[DocumentInput, ...], plan: _Plan, replaced: dict[str, DocumentEntry]
) -> tuple[DocumentInput, ...]:
    """The documents with the visibility restrictions of the documents they replace (`replaced`:
    locked rows by entryUUID). A replacement corrects a document: it must not undo the patient's
    masking, a secret connection's invisibility to the parents, or an invisibility to the patient
    awaiting the announcement consultation; lifting one is a TD3.3 change of its own."""
    result = []
    for index, document in enumerate(documents):
        target = plan.replaced.get(document.entry_uuid)
        if target is not None:
            document = _with_flags(document, _restrictions(replaced[target.entry_uuid]))
            problems = confidentiality_problems(document.confidentiality_codes, f"DocumentEntry[{index}]")
            if problems:
                raise ValidationFailed(
                    [
                        replace(
                            p,
                            message=gettext(
                                "%(problem)s (les restrictions du document remplacé s'appliquent)"
                            )
                            % {"problem": p.message},
                        )
                        for p in problems
                    ]
                )
        result.append(document)
    return tuple(result)


def _publication_refusal(
    caller: Caller, facts: RecordFacts, documents: Iterable[DocumentInput]
) -> tuple[DocumentInput, Decision] | None:
    """The first document the caller may not publish in a record as `facts` describe it, if any."""
    matrix = current_matrix()
    for document in documents:
        decision = decide_facts(
            caller, facts, _input_facts(document, caller), Action.DOCUMENT_PUBLISH, matrix
        )
        if not decision:
            return document, decision
    return None


def _refuse_publication(
    caller: Caller, record: Record, ins: Ins, facts: RecordFacts, document: DocumentInput, decision: Decision
) -> NoReturn:
    # The document is never stored, so the traces shown to the patient side cannot read its
    # flags: the denial carries those it was submitted with (a key only when true, as
    # documents.selectors.without_hidden_events reads them).
    submitted = _input_facts(document, caller)
    hidden = {
        key: True
        for key, flag in (
            ("hidden_from_patient", submitted.invisible_to_patient),
            ("hidden_from_representatives", submitted.invisible_to_legal_representatives),
        )
        if flag
    }
    audit_denial(
        caller=caller,
        action=AuditAction.DOCUMENT_PUBLISH,
        subject=Subject(record_id=record.pk, patient_ins=ins.value, document_unique_id=document.unique_id),
        reason=decision.reason,
        details=hidden or None,
    )
    if caller.actor.is_patient_side and not (facts.actor_is_holder or facts.actor_is_legal_representative):
        raise ValidationFailed(
            [Problem(ErrorCode.UNKNOWN_PATIENT, gettext("Aucun DMP pour ce patientId."), "patientId")]
        )
    raise Forbidden(
        f"not allowed to publish this document: {decision.reason.value}", location=document.unique_id
    )


def _lock_record(record: Record) -> Record:
    """`record`, its row locked, with what the policy reads of it as it now stands (the record is
    closed and reopened, and its oppositions change, under this lock; so do its authorisations,
    which `record_facts` reads). The patient does not change."""
    # One plain statement, on every submission and update: 0.09 ms of CPU, the ORM's 0.31 ms.
    # SQLite has no FOR UPDATE (one writer at a time: its transaction is the lock).
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_RECORD + _FOR_UPDATE[connection.features.has_select_for_update], [record.pk])
        row = cursor.fetchone()
    if row is None:
        raise Record.DoesNotExist(f"record {record.pk} is gone")
    locked = copy.copy(record)
    locked.status, locked.opposes_break_glass, locked.opposes_centre_15 = row[0], bool(row[1]), bool(row[2])
    return locked


# Table names are the models', values are parameters.
_LOCK_RECORD = (
    f"SELECT status, opposes_break_glass, opposes_centre_15 FROM {Record._meta.db_table} WHERE id = %s"  # noqa: S608
)
_FOR_UPDATE = {True: " FOR UPDATE", False: ""}
_RECORD_TOUCHED = f"UPDATE {Record._meta.db_table} SET last_document_at = %s WHERE id = %s"  # noqa: S608


class _RefusedAfterLock(Exception):
    """The record changed while the bytes were stored (closed, the caller blocked): raised inside
    the transaction, so nothing is written, and audited once it is rolled back."""

    def __init__(self, facts: RecordFacts, document: DocumentInput, decision: Decision) -> None:
        super().__init__("publication refused once the record was locked")
        self.facts, self.document, self.decision = facts, document, decision


def _plan(caller: Caller, submission: SubmissionInput, expected_ins: Ins | None) -> _Plan:
    ins, record, grants = _resolve_patient(caller, submission, expected_ins)
    facts = record_facts(caller.actor, record, grants)
    refusal = _publication_refusal(caller, facts, submission.documents)
    if refusal is not None:
        _refuse_publication(caller, record, ins, facts, *refusal)

    id_map: dict[str, str] = {}
    local_kinds: dict[str, str] = {}
    for kind, objects in (
        ("SubmissionSet", [submission.submission_set]),
        ("DocumentEntry", list(submission.documents)),
        ("Folder", list(submission.folders)),
    ):
        for obj in objects:
            id_map[obj.entry_uuid] = _normalise_uuid(obj.entry_uuid) or new_entry_uuid()
            local_kinds[obj.entry_uuid] = kind
    for association in submission.associations:
        id_map[association.entry_uuid] = _normalise_uuid(association.entry_uuid) or new_entry_uuid()

    replaced: dict[str, _Replaced] = {}
    related_existing: set[str] = set()
    folder_members_existing: set[str] = set()
    existing_documents = _existing_documents(record, submission.associations, id_map)
    for index, association in enumerate(submission.associations):
        where = f"Association[{index}]"
        source_kind = local_kinds.get(association.source)
        target_kind = local_kinds.get(association.target)
        if association.association_type == AssociationType.HAS_MEMBER:
            if source_kind == "SubmissionSet" and target_kind in {"DocumentEntry", "Folder"}:
                continue
            if source_kind == "Folder" and target_kind == "DocumentEntry":
                continue
            if source_kind == "Folder" and target_kind is None:
                target = existing_documents.get(_normalise_uuid(association.target) or "")
                if target is not None and decide_document(caller, facts, target, Action.DOCUMENT_READ):
                    folder_members_existing.add(target.entry_uuid)
                    continue
            if source_kind == "SubmissionSet" and target_kind is None:
                if association.target in id_map:
                    continue  # one of this submission's associations (a document added to a folder)
                # An existing document of this record the caller may see, nothing else.
                target = existing_documents.get(_normalise_uuid(association.target) or "")
                if target is not None and decide_document(caller, facts, target, Action.DOCUMENT_READ):
                    continue
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.UNRESOLVED_REFERENCE,
                        gettext("HasMember ne relie pas des objets connus."),
                        where,
                    )
                ]
            )
        if source_kind != "DocumentEntry":
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, gettext("Une relation doit partir d'un document soumis."), where)]
            )
        target = existing_documents.get(_normalise_uuid(association.target) or "")
        action = (
            Action.DOCUMENT_REPLACE
            if association.association_type in AssociationType.REPLACING
            else Action.DOCUMENT_READ
        )
        if target is None or not decide_document(caller, facts, target, action):
            if target is not None:
                audit_denial(
                    caller=caller,
                    action=AuditAction.DOCUMENT_REPLACE,
                    subject=Subject(
                        record_id=record.pk, patient_ins=ins.value, document_unique_id=target.unique_id
                    ),
                    reason="replace_denied",
                )
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.UNRESOLVED_REFERENCE,
                        gettext("Document cible inconnu : %(target)s") % {"target": association.target},
                        where,
                    )
                ]
            )
        if association.association_type in AssociationType.REPLACING:
            if target.availability_status not in {DocumentStatus.APPROVED, DocumentStatus.ARCHIVED}:
                raise ValidationFailed(
                    [
                        Problem(
                            ErrorCode.CONFLICT,
                            gettext("Le document remplacé n'est plus la version courante."),
                            where,
                        )
                    ]
                )
            if association.source in replaced:
                # Only one would be deprecated, the other left current beside its replacement.
                raise ValidationFailed(
                    [
                        Problem(
                            ErrorCode.CONFLICT, gettext("Un document ne remplace qu'un seul document."), where
                        )
                    ]
                )
            if target.pk in {r.pk for r in replaced.values()}:
                raise ValidationFailed(
                    [
                        Problem(
                            ErrorCode.CONFLICT,
                            gettext("Un document ne peut être remplacé qu'une fois par soumission."),
                            where,
                        )
                    ]
                )
            replaced[association.source] = _Replaced(target.pk, target.entry_uuid, target.unique_id)
        related_existing.add(target.entry_uuid)
    return _Plan(
        record=record,
        ins=ins,
        id_map=id_map,
        replaced=replaced,
        related_existing=related_existing,
        folder_members_existing=folder_members_existing,
    )


def _existing_documents(
    record: Record, associations: Iterable[AssociationInput], id_map: dict[str, str]
) -> dict[str, DocumentEntry]:
    targets = {
        normalised
        for a in associations
        if a.target not in id_map and (normalised := _normalise_uuid(a.target)) is not None
    }
    if not targets:
        return {}
    found = with_authors(DocumentEntry.objects.filter(record=record, entry_uuid__in=targets))
    return {d.entry_uuid: d for d in found}


def _store_blobs(
    caller: Caller, plan: _Plan, documents: Iterable[DocumentInput], signature: SubmissionSignature | None
) -> str:
    """Stores the documents' bytes, and the lot signature's (durable before the metadata commits);
    returns the signature's SHA-256, or "" without one."""
    store = default_blob_store()
    key = record_data_key(plan.record)
    for document in documents:
        plan.digests[document.entry_uuid] = store.store(
            key, document.content, expected_sha1=document.declared_hash, expected_size=document.declared_size
        )
    return store.store(key, signature.content).sha256 if signature is not None else ""


def _check_duplicates(submission: SubmissionInput, plan: _Plan) -> None:
    documents = {d.unique_id: d for d in submission.documents}
    folder_ids = [f.unique_id for f in submission.folders]
    found: dict[str, dict[str, str]] = {"D": {}, "S": {}, "F": {}}
    for kind, unique_id, sha256 in _registered_unique_ids(
        list(documents), submission.submission_set.unique_id, folder_ids
    ):
        found[kind][unique_id] = sha256
    problems = []
    for unique_id, document in documents.items():
        if unique_id not in found["D"]:
            continue
        same_bytes = plan.digests[document.entry_uuid].sha256 == found["D"][unique_id]
        problems.append(
            Problem(
                ErrorCode.DUPLICATE_UNIQUE_ID if same_bytes else ErrorCode.NON_IDENTICAL_HASH,
                (
                    gettext("Le uniqueId %(unique_id)s est déjà enregistré.")
                    if same_bytes
                    else gettext("Le uniqueId %(unique_id)s est déjà enregistré avec un autre contenu.")
                )
                % {"unique_id": unique_id},
                unique_id,
            )
        )
    if found["S"]:
        problems.append(
            Problem(
                ErrorCode.DUPLICATE_UNIQUE_ID,
                gettext("Le uniqueId du SubmissionSet est déjà enregistré."),
                "SubmissionSet",
            )
        )
    if found["F"]:
        problems.append(
            Problem(
                ErrorCode.DUPLICATE_UNIQUE_ID, gettext("Le uniqueId du Folder est déjà enregistré."), "Folder"
            )
        )
    if problems:
        raise ValidationFailed(problems)


def _registered_unique_ids(
    document_ids: Sequence[str], submission_set_id: str, folder_ids: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(D/S/F, uniqueId, SHA-256 of a document) for each of these uniqueIds already registered.

    One plain statement for the three tables, on every submission: 0.07 ms of CPU, where the
    ORM's two or three lookups took 0.80 ms."""
    parts = []
    params: list[str] = []
    for kind, table, sha256, unique_ids in (
        ("D", DocumentEntry._meta.db_table, "hash_sha256", document_ids),
        ("S", SubmissionSet._meta.db_table, "''", [submission_set_id]),
        ("F", Folder._meta.db_table, "''", folder_ids),
    ):
        if unique_ids:
            marks = ", ".join(["%s"] * len(unique_ids))
            # Constants and the models' table names; every uniqueId is a parameter.
            parts.append(f"SELECT '{kind}', unique_id, {sha256} FROM {table} WHERE unique_id IN ({marks})")  # noqa: S608
            params.extend(unique_ids)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return [(str(kind), str(unique_id), str(sha256)) for kind, unique_id, sha256 in cursor.fetchall()]


def _document_row(
    caller: Caller, plan: _Plan, subset: SubmissionSet, document: DocumentInput, repository_id: str
) -> DocumentEntry:
    digests = plan.digests[document.entry_uuid]
    codes = {c.code for c in document.confidentiality_codes}
    actor = caller.actor
    return DocumentEntry(
        record=plan.record,
        submission_set=subset,
        entry_uuid=plan.id_map[document.entry_uuid],
        unique_id=document.unique_id,
        repository_unique_id=repository_id,
        availability_status=DocumentStatus.APPROVED,
        class_code=document.class_code.code,
        class_code_scheme=document.class_code.scheme,
        class_code_display=document.class_code.display,
        type_code=document.type_code.code,
        type_code_scheme=document.type_code.scheme,
        type_code_display=document.type_code.display,
        format_code=document.format_code.code,
        format_code_scheme=document.format_code.scheme,
        format_code_display=document.format_code.display,
        healthcare_facility_type_code=document.healthcare_facility_type_code.code,
        healthcare_facility_type_code_scheme=document.healthcare_facility_type_code.scheme,
        healthcare_facility_type_code_display=document.healthcare_facility_type_code.display,
        practice_setting_code=document.practice_setting_code.code,
        practice_setting_code_scheme=document.practice_setting_code.scheme,
        practice_setting_code_display=document.practice_setting_code.display,
        confidentiality_codes=_confidentiality_payload(document.confidentiality_codes),
        masked_to_professionals=Confidentiality.MASKED_TO_PROFESSIONALS in codes,
        invisible_to_patient=Confidentiality.INVISIBLE_TO_PATIENT in codes,
        invisible_to_legal_representatives=Confidentiality.INVISIBLE_TO_LEGAL_REPRESENTATIVES in codes,
        event_codes=_confidentiality_payload(document.event_codes),
        title=document.title,
        comments=document.comments,
        language_code=document.language_code,
        mime_type=document.mime_type,
        size=digests.size,
        hash_sha1=digests.sha1,
        hash_sha256=digests.sha256,
        creation_time=document.creation_time,
        service_start_time=document.service_start_time,
        service_stop_time=document.service_stop_time,
        patient_id=plan.ins.hl7(),
        source_patient_id=document.source_patient_id or plan.ins.hl7(),
        source_patient_info=list(document.source_patient_info),
        legal_authenticator=document.legal_authenticator,
        reference_ids=list(document.reference_ids),
        authors=[a.model_dump(mode="json") for a in document.authors],
        # The pairs of the DocumentAuthor rows written with it (submission_register), in order.
        author_ids=author_ids_text((a.person_id, a.structure_id) for a in document.authors),
        submitted_by_id=actor.person_id,
        submitted_by_structure_id=actor.structure_id,
    )


def submission_register(
    *,
    caller: Caller,
    submission: SubmissionInput,
    expected_ins: Ins | None = None,
    signature: SubmissionSignature | None = None,
    written: Callable[[Sequence[DocumentEntry]], None] | None = None,
) -> RegisteredSubmission:
    """Register a submission set and its documents, folders and associations, all or nothing.

    `signature`, already verified by the channel, is kept with the submission set as its proof.
    `written` is given the document entries once they are written, in the transaction: for what
    the channel keeps with them (the XDS registry, their text in query answers)."""
    problems = submission_problems(submission)
    if problems:
        raise ValidationFailed(problems)
    submission = submission.model_copy(
        update={"documents": tuple(_with_secret_connection(d, caller) for d in submission.documents)}
    )
    for index, document in enumerate(submission.documents):
        extra = confidentiality_problems(document.confidentiality_codes, f"DocumentEntry[{index}]")
        if extra:
            raise ValidationFailed(extra)
    plan = _plan(caller, submission, expected_ins)
    signature_sha256 = _store_blobs(caller, plan, submission.documents, signature)
    repository_id: str = settings.OPENDMP_REPOSITORY_UNIQUE_ID
    subset_input = submission.submission_set
    actor = caller.actor
    now = clock.now()
    try:
        with transaction.atomic(durable=True):
            # One submission at a time per record: replacement chains stay linear. The decision is
            # taken again under the lock: the record may have been closed, or the caller blocked,
            # while the bytes were stored (changes of status and authorisations lock it too).
            facts = record_facts(caller.actor, _lock_record(plan.record))
            if (refusal := _publication_refusal(caller, facts, submission.documents)) is not None:
                raise _RefusedAfterLock(facts, *refusal)
            _check_duplicates(submission, plan)
            replaced_rows = _lock_replaced(plan)
            submission = submission.model_copy(
                update={"documents": _inheriting_restrictions(submission.documents, plan, replaced_rows)}
            )
            # Rows written by the lean INSERT (common.rows.insert_rows): the ORM's create and
            # bulk_create spent 1.3 ms of Python building the statements of a one-document lot.
            subset = SubmissionSet(
                record=plan.record,
                entry_uuid=plan.id_map[subset_input.entry_uuid],
                unique_id=subset_input.unique_id,
                source_id=subset_input.source_id,
                submission_time=subset_input.submission_time,
                content_type_code=subset_input.content_type_code.model_dump(),
                authors=[a.model_dump(mode="json") for a in subset_input.authors],
                intended_recipients=list(subset_input.intended_recipients),
                title=subset_input.title,
                comments=subset_input.comments,
                patient_id=plan.ins.hl7(),
                submitted_by_id=actor.person_id,
                submitted_by_structure_id=actor.structure_id,
                software_name=f"{actor.software.name} {actor.software.version}" if actor.software else "",
                signature_sha256=signature_sha256,
                signature_size=len(signature.content) if signature else 0,
                signature_unique_id=signature.unique_id if signature else "",
                signature_signer_fingerprint=signature.signer_fingerprint if signature else "",
                signature_time=signature.signed_at if signature else None,
            )
            insert_row(subset)
            documents = [_document_row(caller, plan, subset, d, repository_id) for d in submission.documents]
            insert_rows(documents)
            by_uuid = {d.entry_uuid: d for d in documents}
            insert_rows(
                [
                    DocumentAuthor(
                        document=by_uuid[plan.id_map[d.entry_uuid]],
                        position=position,
                        person_id=author.person_id,
                        person_name=author.display_name,
                        structure_id=author.structure_id,
                        profession_code=author.roles[0] if author.roles else "",
                        specialty_code=author.specialties[0] if author.specialties else "",
                    )
                    for d in submission.documents
                    for position, author in enumerate(d.authors)
                ]
            )
            if written is not None:
                written(documents)
            folders = [
                Folder(
                    record=plan.record,
                    entry_uuid=plan.id_map[f.entry_uuid],
                    unique_id=f.unique_id,
                    title=f.title,
                    comments=f.comments,
                    codes=_confidentiality_payload(f.codes),
                    patient_id=plan.ins.hl7(),
                    last_update_time=now,
                )
                for f in submission.folders
            ]
            insert_rows(folders)
            associations = _association_rows(submission, plan, subset)
            _deprecate_replaced(plan, associations, replaced_rows)
            insert_rows(associations)
            # Existing folders that gain a member (new ones were written with `now`); the submission
            # set is the source of the other HasMembers.
            if folder_ids := {
                a.source_uuid
                for a in associations
                if a.association_type == AssociationType.HAS_MEMBER and a.source_uuid != subset.entry_uuid
            } - {f.entry_uuid for f in folders}:
                Folder.objects.filter(record=plan.record, entry_uuid__in=folder_ids).update(
                    last_update_time=now
                )
            with connection.cursor() as cursor:  # plain: 0.07 ms of CPU, the ORM's update 0.20 ms
                cursor.execute(
                    _RECORD_TOUCHED, [connection.ops.adapt_datetimefield_value(now), plan.record.pk]
                )
            replaced_targets = {
                plan.id_map[source]: target.entry_uuid for source, target in plan.replaced.items()
            }
            for entry in documents:
                replaced = replaced_targets.get(entry.entry_uuid)
                audit_record(
                    caller=caller,
                    action=AuditAction.DOCUMENT_REPLACE if replaced else AuditAction.DOCUMENT_PUBLISH,
                    subject=Subject(
                        record_id=plan.record.pk,
                        patient_ins=plan.ins.value,
                        document_unique_id=entry.unique_id,
                        document_entry_uuid=entry.entry_uuid,
                    ),
                    details={"replaces": replaced} if replaced else {"class_code": entry.class_code},
                )
    except _RefusedAfterLock as refused:
        _refuse_publication(caller, plan.record, plan.ins, refused.facts, refused.document, refused.decision)
    except DbIntegrityError as exc:
        # A concurrent submission registered the same uniqueId first.
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.DUPLICATE_UNIQUE_ID,
                    gettext("Un uniqueId de cette soumission est déjà enregistré."),
                    "",
                )
            ]
        ) from exc
    return RegisteredSubmission(
        submission_set=subset,
        documents=documents,
        folders=folders,
        associations=associations,
        id_map=dict(plan.id_map),
    )


def _association_rows(submission: SubmissionInput, plan: _Plan, subset: SubmissionSet) -> list[Association]:
    rows = []
    resolved = plan.id_map
    linked_documents = set()
    for association in submission.associations:
        source = resolved.get(association.source) or _normalise_uuid(association.source) or association.source
        target = resolved.get(association.target) or _normalise_uuid(association.target) or association.target
        if association.association_type == AssociationType.HAS_MEMBER and source == subset.entry_uuid:
            linked_documents.add(target)
        rows.append(
            Association(
                record=plan.record,
                entry_uuid=resolved[association.entry_uuid],
                association_type=association.association_type,
                source_uuid=source,
                target_uuid=target,
                submission_set_status=association.submission_set_status
                or (
                    "Original"
                    if association.association_type == AssociationType.HAS_MEMBER
                    and source == subset.entry_uuid
                    else ""
                ),
            )
        )
    # ebRIM requires the submission set to contain each submitted document and folder.
    submitted_ids = [d.entry_uuid for d in submission.documents] + [f.entry_uuid for f in submission.folders]
    for submitted_id in submitted_ids:
        target = resolved[submitted_id]
        if target not in linked_documents:
            rows.append(
                Association(
                    record=plan.record,
                    entry_uuid=new_entry_uuid(),
                    association_type=AssociationType.HAS_MEMBER,
                    source_uuid=subset.entry_uuid,
                    target_uuid=target,
                    submission_set_status="Original",
                )
            )
    return rows


def _lock_replaced(plan: _Plan) -> dict[str, DocumentEntry]:
    """The documents the submission replaces, locked and still as the decision saw them, by
    entryUUID. Locked by row: an update committed since the decision (masked, archived, deleted)
    gave the document a new entryUUID, and the replacement, decided on the old metadata, is
    refused rather than applied to what it was not decided on."""
    if not plan.replaced:
        return {}
    # Of this record: the targets were found in it (_existing_documents), and rows keep it.
    locked = _lock_documents(target.pk for target in plan.replaced.values())
    for target in plan.replaced.values():
        document = locked.get(target.pk)
        if (
            document is None
            or document.entry_uuid != target.entry_uuid
            or document.availability_status not in {DocumentStatus.APPROVED, DocumentStatus.ARCHIVED}
        ):
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.CONFLICT,
                        gettext("Le document remplacé %(unique_id)s a changé entre-temps.")
                        % {"unique_id": target.unique_id},
                        target.entry_uuid,
                    )
                ]
            )
    return {document.entry_uuid: document for document in locked.values()}


def _deprecate_replaced(
    plan: _Plan, associations: list[Association], locked: dict[str, DocumentEntry]
) -> None:
    if not locked:
        return
    targets = [target.entry_uuid for target in plan.replaced.values()]
    DocumentEntry.objects.filter(pk__in=[d.pk for d in locked.values()]).update(
        availability_status=DocumentStatus.DEPRECATED
    )
    # XDS: a replacement joins the folders of the document it replaces.
    memberships = Association.objects.filter(
        record=plan.record, association_type=AssociationType.HAS_MEMBER, target_uuid__in=targets
    ).filter(source_uuid__in=Folder.objects.filter(record=plan.record).values("entry_uuid"))
    associations.extend(
        Association(
            record=plan.record,
            entry_uuid=new_entry_uuid(),
            association_type=AssociationType.HAS_MEMBER,
            source_uuid=membership.source_uuid,
            target_uuid=plan.id_map[source],
        )
        for source, target in plan.replaced.items()
        for membership in memberships
        if membership.target_uuid == target.entry_uuid
    )


# --- TD3.3: metadata updates ----------------------------------------------------------------


def _snapshot(document: DocumentEntry) -> dict[str, Any]:
    return {
        "availability_status": document.availability_status,
        "confidentiality_codes": document.confidentiality_codes,
        "masked_to_professionals": document.masked_to_professionals,
        "invisible_to_patient": document.invisible_to_patient,
        "invisible_to_legal_representatives": document.invisible_to_legal_representatives,
        "version": document.version,
    }


def _new_version(caller: Caller, document: DocumentEntry) -> str:
    """Keep the current metadata as a previous version and give the entry a new entryUUID."""
    previous = document.entry_uuid
    DocumentEntryVersion.objects.create(
        document=document,
        entry_uuid=previous,
        version=document.version,
        snapshot=_snapshot(document),
        superseded_at=clock.now(),
        superseded_by_id=caller.actor.person_id,
    )
    document.entry_uuid = new_entry_uuid()
    document.version += 1
    Association.objects.filter(record_id=document.record_id, source_uuid=previous).update(
        source_uuid=document.entry_uuid
    )
    Association.objects.filter(record_id=document.record_id, target_uuid=previous).update(
        target_uuid=document.entry_uuid
    )
    return previous


def _load_current(entry_uuid: str) -> DocumentEntry | None:
    return one_with_authors(DocumentEntry.objects.filter(entry_uuid=entry_uuid))


_STATUS_TRANSITIONS: dict[tuple[str, str], tuple[Action, AuditAction]] = {
    (DocumentStatus.APPROVED, DocumentStatus.ARCHIVED): (
        Action.DOCUMENT_ARCHIVE,
        AuditAction.DOCUMENT_ARCHIVE,
    ),
    (DocumentStatus.ARCHIVED, DocumentStatus.APPROVED): (
        Action.DOCUMENT_ARCHIVE,
        AuditAction.DOCUMENT_UNARCHIVE,
    ),
    (DocumentStatus.APPROVED, DocumentStatus.DELETED): (Action.DOCUMENT_DELETE, AuditAction.DOCUMENT_DELETE),
    (DocumentStatus.ARCHIVED, DocumentStatus.DELETED): (Action.DOCUMENT_DELETE, AuditAction.DOCUMENT_DELETE),
}


@dataclass(frozen=True)
class MetadataChange:
    """What one update does to one document (the entry `entry_uuid` names): DMP confidentiality
    flags set or cleared (TD3.3a/b) and/or a new availability status (TD3.3c/d)."""

    entry_uuid: str
    confidentiality: tuple[ConfidentialityChange, ...] = ()
    status: DocumentStatus | None = None
    original_status: DocumentStatus | None = None  # the status the caller believes current


@dataclass(frozen=True)
class _Planned:
    change: MetadataChange
    document: DocumentEntry  # as loaded for the access decisions (record and patient joined)
    flag_audits: tuple[tuple[ConfidentialityChange, AuditAction], ...]
    status_audit: AuditAction | None
    decisions: tuple[tuple[Action, AuditAction], ...]  # what was allowed, taken again at commit


class _ChangeRefusedAfterLock(Exception):
    """The record changed between the decisions and the commit (closed, the caller blocked or
    its authorisation removed): raised inside the transaction, so nothing is written, and
    audited once it is rolled back."""

    def __init__(
        self, planned: _Planned, facts: RecordFacts, decision: Decision, audit_action: AuditAction
    ) -> None:
        super().__init__("metadata change refused once the record was locked")
        self.planned, self.facts, self.decision = planned, facts, decision
        self.audit_action = audit_action


def confidentiality_changes(present: set[str], wanted: set[str]) -> tuple[ConfidentialityChange, ...]:
    """The DMP flags to set or clear to go from the codes `present` to the codes `wanted` (other
    codes are not flags: what a channel does with them is its own check)."""
    return tuple(
        ConfidentialityChange(code=code, enabled=code in wanted)
        for code in sorted(Confidentiality.DMP_CODES & (wanted ^ present))
    )


def _confidentiality_audit(change: ConfidentialityChange) -> tuple[Action, AuditAction]:
    if change.code == Confidentiality.MASKED_TO_PROFESSIONALS:
        return (
            Action.DOCUMENT_MASK,
            AuditAction.DOCUMENT_MASK if change.enabled else AuditAction.DOCUMENT_UNMASK,
        )
    return Action.DOCUMENT_SET_VISIBILITY, AuditAction.DOCUMENT_VISIBILITY_CHANGE


def _plan_change(caller: Caller, change: MetadataChange, patient: Ins | None) -> _Planned:
    """Every decision and check of one change, before anything is written; refusals raise."""
    unknown = [c.code for c in change.confidentiality if c.code not in Confidentiality.FLAG_FIELDS]
    if unknown:
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.INVALID,
                    gettext("%(code)s n'est pas un code de visibilité du DMP.") % {"code": code},
                    "code",
                )
                for code in unknown
            ]
        )
    current = _load_current(change.entry_uuid)
    if current is not None and patient is not None and current.patient_id != patient.hl7():
        current = None  # another patient's document answers as an unknown one
    flag_audits = []
    decisions = []
    for flag in change.confidentiality:
        action, audit_action = _confidentiality_audit(flag)
        current = access_document(
            caller, document=current, action=action, audit_action=audit_action, for_change=True
        ).document
        flag_audits.append((flag, audit_action))
        decisions.append((action, audit_action))
    status_audit = None
    if change.status is not None:
        status_now = DocumentStatus(current.availability_status) if current is not None else None
        transition = _STATUS_TRANSITIONS.get((status_now or "", change.status))
        action, status_audit = transition or (Action.DOCUMENT_ARCHIVE, AuditAction.DOCUMENT_ARCHIVE)
        # The access decision comes first: a caller who may not act learns nothing of the status.
        current = access_document(
            caller, document=current, action=action, audit_action=status_audit, for_change=True
        ).document
        decisions.append((action, status_audit))
        if transition is None or change.original_status not in {None, status_now}:
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.INVALID,
                        gettext("Passage du statut %(before)s à %(after)s impossible.")
                        % {"before": status_now, "after": change.status},
                        "availabilityStatus",
                    )
                ]
            )
    if current is None or not (flag_audits or status_audit):
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("La mise à jour ne change rien."), change.entry_uuid)]
        )
    return _Planned(change, current, tuple(flag_audits), status_audit, tuple(decisions))


def _lock_documents(pks: Iterable[int]) -> dict[int, DocumentEntry]:
    """The documents of an update, locked all at once and in key order, before the first write:
    locking each one as it is written, after the audit of the one before (which locks its chain
    head), let an update of [A, B] and one of [B] each hold what the other waited for."""
    return {
        document.pk: document
        for document in DocumentEntry.objects.select_for_update().filter(pk__in=list(pks)).order_by("pk")
    }


def _refuse_twice(document_pks: Sequence[int]) -> None:
    if len(set(document_pks)) < len(document_pks):
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.INVALID,
                    gettext("Un document est modifié deux fois dans la même mise à jour."),
                    "",
                )
            ]
        )


def _refuse_if_changed_meanwhile(locked: DocumentEntry, decided: DocumentEntry, entry_uuid: str) -> None:
    """A decision taken on `decided` (found by `entry_uuid`) holds for its locked row only if no
    other change committed in between: another version means the caller acted on what it no
    longer sees."""
    if locked.entry_uuid != entry_uuid or locked.availability_status != decided.availability_status:
        raise Conflict(
            gettext("Les métadonnées du document ont changé entre-temps ; consultez-le à nouveau."),
            code=ErrorCode.CONFLICT,
        )


def _apply_change(caller: Caller, planned: _Planned, document: DocumentEntry) -> DocumentEntry:
    """Writes one planned change, on its locked row `document`, as one new metadata version (none
    if nothing differs)."""
    change = planned.change
    # Any change of status since the decision (a replacement deprecating the document, say)
    # voids it: a flag would land on the old version and leave the current one unmasked.
    _refuse_if_changed_meanwhile(document, planned.document, change.entry_uuid)
    flips = [
        (flag, audit)
        for flag, audit in planned.flag_audits
        if getattr(document, Confidentiality.FLAG_FIELDS[flag.code]) != flag.enabled
    ]
    if not flips and change.status is None:
        return document
    codes = list(document.confidentiality_codes)
    for flag, _ in flips:
        codes = [c for c in codes if c["code"] != flag.code]
        if flag.enabled:
            codes.append({"code": flag.code, "scheme": Confidentiality.DMP_SYSTEM, "display": ""})
    problems = confidentiality_problems(
        [CodedValue(code=c["code"], scheme=c["scheme"], display=c.get("display", "")) for c in codes],
        "confidentialityCode",
    )
    if problems:
        raise ValidationFailed(problems)
    status_before = document.availability_status
    previous = _new_version(caller, document)
    for flag, _ in flips:
        setattr(document, Confidentiality.FLAG_FIELDS[flag.code], flag.enabled)
    document.confidentiality_codes = codes
    if change.status is not None:
        document.availability_status = change.status
    document.save()
    document.record = planned.document.record  # with its patient, as loaded for the decisions
    subject = document_subject(document)
    for flag, audit_action in flips:
        audit_record(
            caller=caller,
            action=audit_action,
            subject=subject,
            details={"code": flag.code, "enabled": flag.enabled, "previous_entry_uuid": previous},
        )
    if planned.status_audit is not None:
        audit_record(
            caller=caller,
            action=planned.status_audit,
            subject=subject,
            details={"from": status_before, "to": change.status, "previous_entry_uuid": previous},
        )
    return document


def documents_update(
    *,
    caller: Caller,
    changes: Sequence[MetadataChange],
    patient: Ins | None = None,
    written: Callable[[Sequence[DocumentEntry]], None] | None = None,
) -> list[DocumentEntry]:
    """ITI-57 and FHIR PATCH: every change is applied or none is. Each document changed gets one
    new metadata version, whatever the number of its flags and status that change; the document
    as it now stands is returned for each change, in order. Every access decision and check is
    made before the first write; a change refused at write time (a concurrent update) undoes the
    others. A call made for one `patient` (the VIHF's, the portal page's record) changes only
    that patient's documents: another's is not found, as the caller's rights and access mode
    were established for that patient alone. `written` is given the changed entries, in the
    transaction, as `submission_register` gives the new ones."""
    if not changes:
        raise ValidationFailed([Problem(ErrorCode.INVALID, gettext("La mise à jour ne change rien."), "")])
    planned = [_plan_change(caller, change, patient) for change in changes]
    _refuse_twice([p.document.pk for p in planned])
    try:
        with transaction.atomic(durable=True):
            _decide_again(caller, planned)
            locked = _lock_documents(p.document.pk for p in planned)
            updated = [_apply_change(caller, p, locked[p.document.pk]) for p in planned]
            if written is not None:
                written(updated)
            return updated
    except _ChangeRefusedAfterLock as refused:
        refuse_change(
            caller,
            facts=refused.facts,
            document=refused.planned.document,
            decision=refused.decision,
            audit_action=refused.audit_action,
        )


def _decide_again(caller: Caller, planned: Sequence[_Planned]) -> None:
    """Locks the records of the update (in key order) and takes every decision again under the
    locks, as a submission does: the patient may have blocked the caller, or the record been
    closed, since the decisions were taken."""
    records = {p.document.record_id: p.document.record for p in planned}
    facts = {pk: record_facts(caller.actor, _lock_record(records[pk])) for pk in sorted(records)}
    for p in planned:
        for action, audit_action in p.decisions:
            decision = decide_document(caller, facts[p.document.record_id], p.document, action)
            if not decision:
                raise _ChangeRefusedAfterLock(p, facts[p.document.record_id], decision, audit_action)


def document_change_confidentiality(
    *, caller: Caller, entry_uuid: str, change: ConfidentialityChange, patient: Ins | None = None
) -> DocumentEntry:
    """TD3.3a (MASQUE_PS) and TD3.3b (INVISIBLE_PATIENT / INVISIBLE_REPRESENTANTS_LEGAUX)."""
    return documents_update(
        caller=caller,
        changes=[MetadataChange(entry_uuid=entry_uuid, confidentiality=(change,))],
        patient=patient,
    )[0]


def document_change_status(
    *,
    caller: Caller,
    entry_uuid: str,
    new_status: DocumentStatus,
    original_status: DocumentStatus | None = None,
    patient: Ins | None = None,
) -> DocumentEntry:
    """TD3.3c (author's logical deletion) and TD3.3d (archive / unarchive). Never a physical delete."""
    return documents_update(
        caller=caller,
        changes=[MetadataChange(entry_uuid=entry_uuid, status=new_status, original_status=original_status)],
        patient=patient,
    )[0]


def metadata_remove(*, caller: Caller, entry_uuids: Sequence[str]) -> None:
    """ITI-62 (operator): withdraw documents' metadata from every query, all or none; bytes are kept.
    Two removals of one document (in the call, or racing another update of it) are refused, not
    written as a second version."""
    accesses = [
        access_document(
            caller,
            document=_load_current(entry_uuid),
            action=Action.METADATA_REMOVE,
            audit_action=AuditAction.METADATA_REMOVE,
        )
        for entry_uuid in entry_uuids
    ]
    _refuse_twice([access.document.pk for access in accesses])
    with transaction.atomic(durable=True):
        locked = _lock_documents(access.document.pk for access in accesses)
        for entry_uuid, access in zip(entry_uuids, accesses, strict=True):
            document = locked[access.document.pk]
            _refuse_if_changed_meanwhile(document, access.document, entry_uuid)
            previous = _new_version(caller, document)
            document.availability_status = DocumentStatus.DELETED
            document.save()
            document.record = access.document.record
            audit_record(
                caller=caller,
                action=AuditAction.METADATA_REMOVE,
                subject=document_subject(document),
                details={"previous_entry_uuid": previous},
            )
