"""Feeding the DMP from external sources the patient allowed.

A synchronisation fetches the new items of a source for one record and publishes them as
one document through the normal submission service, acting as the source's system actor:
the habilitation matrix decides what it may write (rows SYS_AM / SYS_DP), the audit trail
records it, and readers see it like any other document. Each item is published once: a
synchronisation publishes only the item ids it has not published yet (see LATE_ITEMS_WINDOW),
and the document's uniqueId is derived from the record, the source and the batch's last item,
so a synchronisation retried after a crash cannot publish the same batch twice either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from dmp.access.actors import Actor, ActorKind, AuthenticationMode, Caller, Channel
from dmp.access.policy import Action
from dmp.audit.actions import AuditAction
from dmp.audit.services import audit_record
from dmp.common import clock
from dmp.common.errors import ErrorCode, ValidationFailed
from dmp.connectors.clients import ExternalItem, SourceClient
from dmp.connectors.content import items_section
from dmp.connectors.models import Source, SourceConsent, SourceSync
from dmp.documents.builders import DocumentDraft, author_for, cda_patient_for, submission_for
from dmp.documents.services import submission_register
from dmp.records.access import access_loaded_record
from dmp.records.models import Record


@dataclass(frozen=True)
class SourceProfile:
    actor_id: str
    name: str
    structure_id: str
    type_code: str
    facility_type: str
    practice_setting: str
    title: str


PROFILES = {
    Source.REIMBURSEMENTS: SourceProfile(
        actor_id="SYS_AM",
        name="Assurance Maladie",
        structure_id="1750000000",
        type_code="REMB",
        facility_type="SA24",
        practice_setting="AMO",
        title="Historique des remboursements",
    ),
    Source.PHARMACY: SourceProfile(
        actor_id="SYS_DP",
        name="Dossier pharmaceutique",
        structure_id="1750000001",
        type_code="60593-1",
        facility_type="SA33",
        practice_setting="AMBULATOIRE",
        title="Dispensations du dossier pharmaceutique",
    ),
}


def system_caller(source: Source) -> Caller:
    profile = PROFILES[source]
    actor = Actor(
        kind=ActorKind.SYSTEM,
        person_id=profile.actor_id,
        display_name=profile.name,
        authentication=AuthenticationMode.SYSTEM,
        profession_code=profile.actor_id,
        structure_id=profile.structure_id,
        structure_name=profile.name,
    )
    return Caller(actor=actor, channel=Channel.CONNECTOR)


def source_consent_set(*, caller: Caller, record: Record, source: Source, allowed: bool) -> SourceConsent:
    """The patient (or a legal representative, or the médecin traitant) allows or stops a source."""
    access = access_loaded_record(
        caller,
        record=record,
        action=Action.AUTHORISATION_MANAGE,
        audit_action=AuditAction.EXTERNAL_SOURCE_CONSENT,
        for_write=True,
    )
    with transaction.atomic(durable=True):
        consent, _ = SourceConsent.objects.update_or_create(
            record=record,
            source=source,
            defaults={"allowed": allowed, "changed_at": clock.now(), "changed_by_id": caller.actor.person_id},
        )
        audit_record(
            caller=caller,
            action=AuditAction.EXTERNAL_SOURCE_CONSENT,
            subject=access.subject,
            details={"source": source.value, "allowed": allowed},
        )
    return consent


def source_allowed(record: Record, source: Source) -> bool:
    return SourceConsent.objects.filter(record=record, source=source, allowed=True).exists()


# Sources filter on the item's date, but report an item days or weeks after it (a claim sent
# late, a reimbursement paid later). A cursor on the latest item date would never fetch such
# an item, so each synchronisation asks again for this window before the latest item date seen
# and leaves out the item ids already published, which SourceSync.recent_items remembers for
# as long as they can come back (ids older than the window are forgotten: a fetch never asks
# for them again). An item reported later than this is not fetched.
LATE_ITEMS_WINDOW = dt.timedelta(days=90)


@dataclass(frozen=True)
class SyncResult:
    published_items: int
    document_unique_id: str = ""


def _unique_id(record: Record, source: Source, items: list[ExternalItem]) -> str:
    digest = hashlib.sha256(f"{record.public_id}:{source}:{items[-1].item_id}:{len(items)}".encode()).digest()
    return f"1.2.250.1.213.4.1.9.{source == Source.PHARMACY:d}.{int.from_bytes(digest[:12], 'big')}"


def source_sync(*, record: Record, source: Source, client: SourceClient) -> SyncResult:
    """Publish the source's new items for `record`, if the patient allowed it and the record is active."""
    if not record.is_active or not source_allowed(record, source):
        return SyncResult(0)
    state, _ = SourceSync.objects.get_or_create(record=record, source=source)
    SourceSync.objects.filter(pk=state.pk).update(last_attempt_at=clock.now())
    since = state.last_item_date - LATE_ITEMS_WINDOW if state.last_item_date is not None else None
    new: dict[str, ExternalItem] = {}
    for item in client.fetch(ins=record.patient.identifier, since=since):
        # Items older than asked for were published already or are beyond the window; their
        # ids are no longer remembered, so publishing them could publish some twice.
        if (since is None or item.date > since) and item.item_id not in state.recent_items:
            new.setdefault(item.item_id, item)
    items = list(new.values())
    if not items:
        SourceSync.objects.filter(pk=state.pk).update(last_synced_at=clock.now())
        return SyncResult(0)
    profile = PROFILES[source]
    caller = system_caller(source)
    unique_id = _unique_id(record, source, items)
    author = author_for(
        person_id="",
        family_name=profile.name,
        given_name="",
        profession_code=profile.actor_id,
        specialty_code="",
        structure_id=profile.structure_id,
        structure_name=profile.name,
        facility_type=profile.facility_type,
        practice_setting=profile.practice_setting,
    )
    latest = max(item.date for item in items)
    draft = DocumentDraft(
        sections=(items_section(source=source, title=profile.title, items=items),),
        type_code=profile.type_code,
        title=profile.title,
        unique_id=unique_id,
        # Deterministic content: a retried synchronisation publishes the very same bytes. Local
        # midnight, as items are dated in local days: midnight UTC of today's item is still in
        # the future during the first hours of the night, when the synchronisation runs.
        creation_time=dt.datetime.combine(latest, dt.time(), tzinfo=timezone.get_current_timezone()),
    )
    patient = record.patient
    submission = submission_for(
        ins=patient.identifier,
        author=author,
        drafts=[draft],
        patient=cda_patient_for(
            patient.identifier,
            family_name=patient.birth_family_name,
            given_names=patient.given_names,
            birth_date=patient.birth_date,
            sex=patient.sex,
        ),
    )
    try:
        submission_register(caller=caller, submission=submission)
    except ValidationFailed as error:
        # A previous run published these very items and stopped before saving its position.
        if error.code is not ErrorCode.DUPLICATE_UNIQUE_ID:
            raise
    # A late batch may be older than the cursor: it never moves back.
    cursor = max(latest, state.last_item_date) if state.last_item_date is not None else latest
    recent = {**state.recent_items, **{item.item_id: item.date.isoformat() for item in items}}
    SourceSync.objects.filter(pk=state.pk).update(
        last_synced_at=clock.now(),
        last_item_date=cursor,
        recent_items={
            item_id: day
            for item_id, day in recent.items()
            if dt.date.fromisoformat(day) > cursor - LATE_ITEMS_WINDOW
        },
        published_items=F("published_items") + len(items),
    )
    return SyncResult(len(items), unique_id)


def records_to_sync(source: Source, *, limit: int = 1000) -> list[Record]:
    """The `limit` records whose turn is the oldest: never attempted first, then by last attempt.

    So that successive runs go round every record, however many there are beyond `limit`.
    """
    ids = SourceConsent.objects.filter(source=source, allowed=True).values_list("record_id", flat=True)
    last_attempt = SourceSync.objects.filter(record=OuterRef("pk"), source=source).values("last_attempt_at")
    return list(
        Record.objects.select_related("patient")
        .filter(pk__in=ids, status="ACTIF")
        .annotate(last_attempt=Subquery(last_attempt[:1]))
        .order_by(F("last_attempt").asc(nulls_first=True), "pk")[:limit]
    )
