"""Writing the audit trail. Called explicitly by every service, inside its transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Field

from dmp.access.actors import AccessMode, Actor, Caller, CredentialUse
from dmp.audit.actions import AuditAction, Outcome
from dmp.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, PendingNotice
from dmp.common import clock
from dmp.common.rows import insert_row_then

GENESIS_HASH = "0" * 64

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subject:
    """What an audited action was about."""

    record_id: int | None = None
    patient_ins: str = ""
    document_unique_id: str = ""
    document_entry_uuid: str = ""


NO_SUBJECT = Subject()


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the canonical JSON of the event's content and the previous hash."""
    canonical = _canonical(
        {**_content(event), "sequence": event.sequence, "previous_hash": event.previous_hash}
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# One encoder: json.dumps with options builds a new one at each call.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: object) -> str:
    return _CANONICAL.encode(value)


def _content(event: AuditEvent) -> dict[str, object]:
    """What the hash covers, but for the two values its chain gives: sequence and previous hash."""
    return {
        "chain": event.chain,
        "occurred_at": event.occurred_at.isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "reason": event.reason,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "actor_profession": event.actor_profession,
        "actor_structure_id": event.actor_structure_id,
        "actor_structure_name": event.actor_structure_name,
        "authentication": event.authentication,
        "software": event.software,
        "access_mode": event.access_mode,
        "access_reason": event.access_reason,
        "record_id": event.record_id,
        "patient_ins": event.patient_ins,
        "document_unique_id": event.document_unique_id,
        "document_entry_uuid": event.document_entry_uuid,
        "channel": event.channel,
        "details": event.details,
    }


def link_template(event: AuditEvent) -> tuple[bytes, bytes, bytes]:
    """The UTF-8 canonical text `event_hash` covers, cut where the previous hash and the
    sequence go (in that order, the keys' order): `a + previous_hash + b + str(sequence) + c`
    is that text, so the database can hash an event onto a head it has just locked."""
    content = _content(event)

    def members(keys: list[str]) -> str:  # `"k":v,...` as the whole text writes them
        return _canonical({key: content[key] for key in keys})[1:-1]

    keys = sorted(content)
    before = members([k for k in keys if k < "previous_hash"])
    between = members([k for k in keys if "previous_hash" < k < "sequence"])
    after = members([k for k in keys if k > "sequence"])
    a = "{" + (before + "," if before else "") + '"previous_hash":"'
    b = '"' + ("," + between if between else "") + ',"sequence":'
    c = ("," + after if after else "") + "}"
    return a.encode(), b.encode(), c.encode()


def _chain_for(subject: Subject, caller: Caller) -> int:
    chains: int = settings.OPENDMP_AUDIT_CHAINS
    if subject.record_id is not None:
        return subject.record_id % chains
    digest = hashlib.sha256(caller.actor.person_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % chains


def _event(
    *,
    caller: Caller,
    action: AuditAction,
    subject: Subject,
    outcome: Outcome,
    reason: str,
    details: dict[str, Any] | None,
    occurred_at: dt.datetime,
) -> AuditEvent:
    """An unsaved, unchained event (chain, sequence and hashes are set when appended)."""
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("an audit event's time must be timezone-aware")
    actor = caller.actor
    software = actor.software
    return AuditEvent(
        chain=_chain_for(subject, caller),
        # In UTC, as the database gives it back: the hash covers its ISO form (+01:00 would
        # make an intact event fail verification once reloaded).
        occurred_at=occurred_at.astimezone(dt.UTC),
        action=int(action),
        outcome=outcome.value,
        reason=reason[:64],
        actor_kind=actor.kind.value,
        actor_id=actor.person_id[:64],
        actor_name=actor.display_name[:200],
        actor_profession=actor.profession_code[:16],
        actor_structure_id=actor.structure_id[:40],
        actor_structure_name=actor.structure_name[:200],
        authentication=actor.authentication.value,
        software=f"{software.name} {software.version}".strip()[:200] if software else "",
        access_mode=caller.mode.value,
        access_reason=caller.reason[:500],
        record_id=subject.record_id,
        patient_ins=subject.patient_ins,
        document_unique_id=subject.document_unique_id[:128],
        document_entry_uuid=subject.document_entry_uuid[:64],
        channel=caller.channel.value,
        # Normalised as the JSON column will give it back, so the hash verifies after a reload.
        details=json.loads(json.dumps(_actor_details(actor, details), default=str)),
    )


def _actor_details(actor: Actor, details: dict[str, Any] | None) -> dict[str, Any]:
    """`details` and what the event's columns do not say of the actor. An action in a minor's
    secret connection is marked: the parents' view of the traces leaves it out. A legal entity
    that signed for its site is named (ADR 0011): the site is the actor's structure."""
    extra: dict[str, Any] = {}
    if actor.secret_connection:
        extra["secret_connection"] = True
    if actor.signer_structure_id:
        extra["signed_by_structure"] = actor.signer_structure_id
    return {**(details or {}), **extra} if extra else details or {}


def _chain_onto(head: AuditChainHead, event: AuditEvent) -> None:
    event.sequence = head.sequence + 1
    event.previous_hash = head.hash
    event.hash = event_hash(event)
    head.sequence = event.sequence
    head.hash = event.hash


# Called after the commit of an exceptional access (break-glass, Centre 15): the layer that
# tells patients registers here (see dmp.accounts.apps); the audit layer stays unaware of it.
EXCEPTIONAL_ACCESS_HOOKS: list[Callable[[], None]] = []


def _after_exceptional_access() -> None:
    # The access is committed, and answered: a hook that fails (the message gateway down) must
    # neither turn it into an error nor stop the other hooks. What it did not do is still to do
    # (the pending notices stay), and the next run or `manage.py patient_notify` does it.
    for hook in EXCEPTIONAL_ACCESS_HOOKS:
        try:
            hook()
        except Exception:
            logger.exception("exceptional-access hook %r failed after the commit", hook)


def audit_record(
    *,
    caller: Caller,
    action: AuditAction,
    subject: Subject = NO_SUBJECT,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the action's own transaction (same commit or none)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside the action's transaction")
    return _record(caller, action, subject, outcome, reason, details)


def audit_alone(
    *,
    caller: Caller,
    action: AuditAction,
    subject: Subject = NO_SUBJECT,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event for an action that writes nothing else (a read, a refusal): in the
    caller's transaction if there is one, else in its own. On PostgreSQL that is one
    statement, its own transaction: a FindDocuments or a retrieve spends no BEGIN and COMMIT
    round trips, and holds its chain's head for one statement instead of four."""
    # SQLite locks nothing but by a transaction; a notice is written with its event.
    alone = connection.vendor == "postgresql" and not _notice_due(caller, subject, outcome)
    with nullcontext() if alone else transaction.atomic():
        _record(caller, action, subject, outcome, reason, details)


def _notice_due(caller: Caller, subject: Subject, outcome: Outcome) -> bool:
    """An exceptional access to a record (break-glass, Centre 15): its patient is to be told."""
    return (
        outcome is Outcome.SUCCESS and caller.mode is not AccessMode.NORMAL and subject.record_id is not None
    )


def _record(
    caller: Caller,
    action: AuditAction,
    subject: Subject,
    outcome: Outcome,
    reason: str,
    details: dict[str, Any] | None,
) -> AuditEvent:
    event = _event(
        caller=caller,
        action=action,
        subject=subject,
        outcome=outcome,
        reason=reason,
        details=details,
        occurred_at=clock.now(),
    )
    _append(event, caller.credential_use)
    if _notice_due(caller, subject, outcome):
        # Committed with the event or not at all: the notifier works from these rows, not from
        # event keys, which commit out of order across chains.
        PendingNotice.objects.create(event=event)
        _notify_after_commit()
    return event


def _append(event: AuditEvent, credential_use: CredentialUse | None = None) -> None:
    """Chain `event` onto its chain's head and write both; the head stays locked to the commit.

    A read's credential not yet used is used in the event's transaction (ADR 0016): committed
    with the event, or neither. On PostgreSQL outside a transaction it rides in the event's
    own statement, so that the read commits once."""
    use = credential_use if credential_use is not None and not credential_use.written else None
    postgresql = connection.vendor == "postgresql"
    if use is not None and (not postgresql or transaction.get_connection().in_atomic_block):
        use.write()  # a savepoint: a conflict (a replay) leaves the transaction usable to undo
        use = None
    if postgresql:
        if not _append_in_one_statement(event, use):
            _locked_head(event.chain)  # the chain's first event: its head is created
            if not _append_in_one_statement(event):
                raise RuntimeError(f"audit chain {event.chain} has no head")
        return
    head = _locked_head(event.chain)
    _chain_onto(head, event)
    insert_row_then(event, *_head_update(head))


def _notify_after_commit() -> None:
    """Queue the notice hooks once per transaction, however many exceptional events it holds
    (a break-glass submission of ten documents is one notice run, not ten)."""
    pending = transaction.get_connection().run_on_commit
    if not any(entry[1] is _after_exceptional_access for entry in pending):
        transaction.on_commit(_after_exceptional_access, robust=True)


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One event of a bulk load (demo data, migrations from another system)."""

    caller: Caller
    action: AuditAction
    subject: Subject = NO_SUBJECT
    outcome: Outcome = Outcome.SUCCESS
    details: dict[str, Any] | None = None
    occurred_at: dt.datetime | None = None


def audit_bulk_record(entries: Sequence[BulkEntry], *, batch_size: int = 5000) -> int:
    """Append many events with the same chaining as `audit_record`, in one transaction per call.

    They are history brought in (demo data, another system's trail), not news: no patient is
    told of an exceptional access among them."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_bulk_record must be called inside a transaction")
    now = clock.now()
    events = [
        _event(
            caller=entry.caller,
            action=entry.action,
            subject=entry.subject,
            outcome=entry.outcome,
            reason="",
            details=entry.details,
            occurred_at=entry.occurred_at or now,
        )
        for entry in entries
    ]
    heads: dict[int, AuditChainHead] = {}
    for event in events:
        head = heads.get(event.chain)
        if head is None:
            head = heads[event.chain] = _locked_head(event.chain)
        _chain_onto(head, event)
    AuditEvent.objects.bulk_create(events, batch_size=batch_size)
    AuditChainHead.objects.bulk_update(list(heads.values()), ["sequence", "hash"])
    return len(events)


def audit_denial(
    *,
    caller: Caller,
    action: AuditAction,
    subject: Subject = NO_SUBJECT,
    reason: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a refused action in a transaction of its own: the refusal is kept, nothing else."""
    audit_alone(
        caller=caller, action=action, subject=subject, outcome=Outcome.DENIED, reason=reason, details=details
    )


# Every audited action reads and moves its chain's head: two statements written out once rather
# than built by the ORM each time (about 0.3 ms of Python per event). SQLite has no FOR UPDATE:
# its single writer already serialises appends.
_HEAD_TABLE = AuditChainHead._meta.db_table


def _read_head(chain: int) -> AuditChainHead | None:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT sequence, hash FROM {_HEAD_TABLE} WHERE chain = %s{lock}", [chain])  # noqa: S608 - a model's table name
        row = cursor.fetchone()
    return None if row is None else AuditChainHead(chain=chain, sequence=row[0], hash=row[1])


def _locked_head(chain: int) -> AuditChainHead:
    head = _read_head(chain)
    if head is not None:
        return head
    AuditChainHead.objects.bulk_create(
        [AuditChainHead(chain=chain, sequence=0, hash=GENESIS_HASH)], ignore_conflicts=True
    )
    head = _read_head(chain)
    assert head is not None  # noqa: S101 - created just above, or by a concurrent first writer
    return head


_CHAINED: Final = {
    "sequence": "moved.sequence",
    "previous_hash": "moved.previous_hash",
    "hash": "moved.hash",
}
_ONE_STATEMENT: list[tuple[str, list[Field[Any, Any]]]] = []


def _one_statement() -> tuple[str, list[Field[Any, Any]]]:
    """PostgreSQL's append, and the fields whose values it takes after the chain's hash pieces.

    `old` locks the head and, read committed, gives its latest version whoever moved it last;
    `moved` advances it with the new event's hash, computed by the server over `link_template`'s
    pieces (`event_hash` gives the same, which `audit_verify` checks); the event is written with
    what `moved` returns. No head (a chain's first event): nothing is written, no row returned."""
    if not _ONE_STATEMENT:
        meta = AuditEvent._meta
        fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(str(f.column)) for f in fields)
        # Cast, or PostgreSQL reads a SELECT list's untyped parameters as text (a NULL record_id
        # too); text, not varchar(n), which would cut an overlong value where INSERT refuses it.
        values = ", ".join(
            _CHAINED.get(f.attname) or f"%s::{'text' if isinstance(f, CharField) else f.db_type(connection)}"
            for f in fields
        )
        digest = (
            "encode(sha256(%s::bytea || convert_to(old.hash, 'UTF8') || %s::bytea"
            " || convert_to((old.sequence + 1)::text, 'UTF8') || %s::bytea), 'hex')"
        )
        sql = (
            f"WITH old AS (SELECT chain, sequence, hash FROM {_HEAD_TABLE} WHERE chain = %s FOR UPDATE), "  # noqa: S608 - models' table and column names
            f"moved AS (UPDATE {_HEAD_TABLE} h SET sequence = old.sequence + 1, hash = {digest} "
            "FROM old WHERE h.chain = old.chain RETURNING h.sequence, old.hash AS previous_hash, h.hash) "
            f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {values} FROM moved "
            "RETURNING id, sequence, previous_hash, hash"
        )
        _ONE_STATEMENT.append((sql, [f for f in fields if f.attname not in _CHAINED]))
    return _ONE_STATEMENT[0]


def _append_in_one_statement(event: AuditEvent, along: CredentialUse | None = None) -> bool:
    sql, fields = _one_statement()
    params: list[Any] = [event.chain, *link_template(event)]
    # The connection itself, not the proxy: each field's conversion reads it several times,
    # and each read through `django.db.connection` is a context-local lookup (15 of 43 µs).
    database = transaction.get_connection()
    params += [f.get_db_prep_save(f.pre_save(event, True), database) for f in fields]
    if along is not None:
        # One more part of the WITH, run to completion even though nothing reads it.
        used_sql, used_params = along.statement()
        sql = f"WITH used AS ({used_sql}), {sql.removeprefix('WITH ')}"
        params = used_params + params
    with connection.cursor() as cursor:
        try:
            cursor.execute(sql, params)
        except IntegrityError as exc:
            refusal = along.refusal(exc) if along is not None else None
            if refusal is not None:
                raise refusal from exc
            raise
        row = cursor.fetchone()
    if along is not None:
        along.written = True  # even with no head (no row): the statement committed the use
    if row is None:
        return False
    event.pk, event.sequence, event.previous_hash, event.hash = row
    event._state.adding = False
    event._state.db = connection.alias
    return True


def _head_update(head: AuditChainHead) -> tuple[str, list[object]]:
    """The statement that moves `head` where it now points, with its parameters."""
    return (
        f"UPDATE {_HEAD_TABLE} SET sequence = %s, hash = %s WHERE chain = %s",  # noqa: S608 - a model's table name
        [head.sequence, head.hash, head.chain],
    )


def checkpoint_signature(heads: dict[str, list[object]]) -> str:
    canonical = json.dumps(heads, sort_keys=True, separators=(",", ":"))
    return hmac.new(settings.OPENDMP_AUDIT_KEY, canonical.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def audit_checkpoint_create() -> AuditCheckpoint:
    """Sign the current head of every chain; a later rewrite of a chain breaks the signature."""
    heads = {str(h.chain): [h.sequence, h.hash] for h in AuditChainHead.objects.order_by("chain")}
    return AuditCheckpoint.objects.create(
        created_at=clock.now(), heads=heads, signature=checkpoint_signature(heads)
    )
