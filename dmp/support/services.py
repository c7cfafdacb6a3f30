"""Helpdesk ticket services: open, comment, change status, assign. Every change leaves an event."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext

from dmp.common import clock
from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.support.models import Ticket, TicketEvent, TicketSequence

_CONTACT_RE = re.compile(r"^([^@\s]+@[^@\s]+\.[^@\s]+|\+?[0-9 .()-]{6,20})$")

# Allowed status transitions: a resolved ticket may be reopened, a closed one may not.
_TRANSITIONS: dict[str, set[str]] = {
    Ticket.Status.NEW: {
        Ticket.Status.OPEN,
        Ticket.Status.WAITING,
        Ticket.Status.RESOLVED,
        Ticket.Status.CLOSED,
    },
    Ticket.Status.OPEN: {Ticket.Status.WAITING, Ticket.Status.RESOLVED, Ticket.Status.CLOSED},
    Ticket.Status.WAITING: {Ticket.Status.OPEN, Ticket.Status.RESOLVED, Ticket.Status.CLOSED},
    Ticket.Status.RESOLVED: {Ticket.Status.OPEN, Ticket.Status.CLOSED},
    Ticket.Status.CLOSED: set(),
}


@dataclass(frozen=True)
class TicketRequest:
    channel: str
    requester_kind: str
    requester_name: str
    requester_contact: str
    category: str
    subject: str
    description: str
    priority: str = Ticket.Priority.NORMAL


def _problems(request: TicketRequest) -> list[Problem]:
    checks = [
        (request.channel in Ticket.Channel.values, "channel", gettext("Canal inconnu.")),
        (
            request.requester_kind in Ticket.Requester.values,
            "requester_kind",
            gettext("Type de demandeur inconnu."),
        ),
        (request.category in Ticket.Category.values, "category", gettext("Catégorie inconnue.")),
        (request.priority in Ticket.Priority.values, "priority", gettext("Priorité inconnue.")),
        (
            0 < len(request.requester_name.strip()) <= 200,
            "requester_name",
            gettext("Un nom est obligatoire (200 caractères au plus)."),
        ),
        (
            bool(_CONTACT_RE.match(request.requester_contact.strip())),
            "requester_contact",
            gettext("Une adresse électronique ou un numéro de téléphone."),
        ),
        (
            0 < len(request.subject.strip()) <= 200,
            "subject",
            gettext("Un objet est obligatoire (200 caractères au plus)."),
        ),
        (
            0 < len(request.description.strip()) <= 10000,
            "description",
            gettext("Une description est obligatoire (10 000 caractères au plus)."),
        ),
    ]
    return [Problem(ErrorCode.INVALID, message, field) for ok, field, message in checks if not ok]


def _next_reference(year: int) -> str:
    sequence, _ = TicketSequence.objects.select_for_update().get_or_create(year=year)
    sequence.last += 1
    sequence.save(update_fields=["last"])
    return f"SUP-{year}-{sequence.last:06d}"


@transaction.atomic
def ticket_open(request: TicketRequest, *, author: str) -> Ticket:
    problems = _problems(request)
    if problems:
        raise ValidationFailed(problems)
    now = clock.now()
    ticket = Ticket.objects.create(
        reference=_next_reference(now.year),
        channel=request.channel,
        requester_kind=request.requester_kind,
        requester_name=request.requester_name.strip(),
        requester_contact=request.requester_contact.strip(),
        category=request.category,
        priority=request.priority,
        subject=request.subject.strip(),
        description=request.description.strip(),
        created_at=now,
        updated_at=now,
    )
    TicketEvent.objects.create(
        ticket=ticket, kind=TicketEvent.Kind.CREATED, author=author, to_status=ticket.status, created_at=now
    )
    return ticket


@transaction.atomic
def ticket_comment(ticket: Ticket, *, author: str, text: str, public: bool = False) -> TicketEvent:
    if not text.strip() or len(text) > 10000:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("Un commentaire de 1 à 10 000 caractères."), "text")]
        )
    now = clock.now()
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    fields = ["updated_at"]
    if public and locked.first_response_at is None:
        locked.first_response_at = now
        fields.append("first_response_at")
    locked.updated_at = now
    locked.save(update_fields=fields)
    return TicketEvent.objects.create(
        ticket=locked,
        kind=TicketEvent.Kind.COMMENT,
        author=author,
        text=text.strip(),
        is_public=public,
        created_at=now,
    )


@transaction.atomic
def ticket_change_status(ticket: Ticket, *, author: str, to_status: str, comment: str = "") -> Ticket:
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if to_status not in _TRANSITIONS.get(locked.status, set()):
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.CONFLICT,
                    gettext("Passage de %(before)s à %(after)s impossible.")
                    % {"before": locked.status, "after": to_status},
                    "status",
                )
            ]
        )
    now = clock.now()
    previous = locked.status
    locked.status = to_status
    locked.updated_at = now
    if locked.first_response_at is None and to_status != Ticket.Status.NEW:
        locked.first_response_at = now
    if to_status == Ticket.Status.RESOLVED:
        locked.resolved_at = now
    elif to_status == Ticket.Status.OPEN:
        locked.resolved_at = None
    locked.save()
    TicketEvent.objects.create(
        ticket=locked,
        kind=TicketEvent.Kind.STATUS,
        author=author,
        text=comment.strip()[:10000],
        from_status=previous,
        to_status=to_status,
        created_at=now,
    )
    return locked


@transaction.atomic
def ticket_assign(ticket: Ticket, *, agent: AbstractBaseUser | None, author: str) -> Ticket:
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    locked.assignee = agent  # type: ignore[assignment]
    locked.updated_at = clock.now()
    locked.save(update_fields=["assignee", "updated_at"])
    TicketEvent.objects.create(
        ticket=locked,
        kind=TicketEvent.Kind.ASSIGNED,
        author=author,
        text=agent.get_username() if agent else "",
        created_at=locked.updated_at,
    )
    return locked
