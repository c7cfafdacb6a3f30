"""Helpdesk web UI: tickets, statistics, and the audited record-status lookup."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dmp.access.actors import ActorKind, Caller, Channel
from dmp.common.errors import NotFound, ValidationFailed
from dmp.common.staff import HELPDESK_GROUP, OPERATOR_GROUP, is_in_group, staff_required
from dmp.identity.actors import staff_actor
from dmp.identity.ins import InvalidIns, parse_ins
from dmp.records.services import record_test
from dmp.support.forms import CommentForm, RecordLookupForm, StatusForm, TicketForm
from dmp.support.models import Ticket
from dmp.support.selectors import ticket_list, ticket_stats
from dmp.support.services import (
    TicketRequest,
    ticket_assign,
    ticket_change_status,
    ticket_comment,
    ticket_open,
)


def staff_home(request: HttpRequest) -> HttpResponse:
    """Where a staff member lands after login: their tool."""
    if is_in_group(request, OPERATOR_GROUP) and not is_in_group(request, HELPDESK_GROUP):
        return redirect("pilotage:dashboard")
    if is_in_group(request, HELPDESK_GROUP):
        return redirect("support:ticket_index")
    return redirect("staff_login")


def _agent_name(request: HttpRequest) -> str:
    return request.user.get_username()


@staff_required(HELPDESK_GROUP)
def ticket_index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "open")
    category = request.GET.get("category", "")
    text = request.GET.get("q", "").strip()[:100]
    tickets = ticket_list(status=status, category=category, text=text)
    return render(
        request,
        "support/ticket_index.html",
        {
            "tickets": tickets,
            "status": status,
            "category": category,
            "q": text,
            "statuses": Ticket.Status.choices,
            "categories": Ticket.Category.choices,
        },
    )


@staff_required(HELPDESK_GROUP)
@require_http_methods(["GET", "POST"])
def ticket_new(request: HttpRequest) -> HttpResponse:
    form = TicketForm(request.POST or None, initial={"channel": Ticket.Channel.PHONE})
    if request.method == "POST" and form.is_valid():
        try:
            ticket = ticket_open(TicketRequest(**form.cleaned_data), author=_agent_name(request))
        except ValidationFailed as error:
            for problem in error.problems:
                form.add_error(problem.location if problem.location in form.fields else None, problem.message)
        else:
            return redirect("support:ticket_detail", reference=ticket.reference)
    return render(request, "support/ticket_new.html", {"form": form})


@staff_required(HELPDESK_GROUP)
def ticket_detail(request: HttpRequest, reference: str) -> HttpResponse:
    ticket = get_object_or_404(Ticket, reference=reference)
    return render(
        request,
        "support/ticket_detail.html",
        {
            "ticket": ticket,
            "events": ticket.events.order_by("created_at"),
            "comment_form": CommentForm(),
            "status_form": StatusForm(initial={"status": ticket.status}),
        },
    )


@staff_required(HELPDESK_GROUP)
@require_POST
def ticket_add_comment(request: HttpRequest, reference: str) -> HttpResponse:
    ticket = get_object_or_404(Ticket, reference=reference)
    form = CommentForm(request.POST)
    if form.is_valid():
        ticket_comment(
            ticket,
            author=_agent_name(request),
            text=form.cleaned_data["text"],
            public=form.cleaned_data["public"],
        )
    return redirect("support:ticket_detail", reference=reference)


@staff_required(HELPDESK_GROUP)
@require_POST
def ticket_set_status(request: HttpRequest, reference: str) -> HttpResponse:
    ticket = get_object_or_404(Ticket, reference=reference)
    form = StatusForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            ticket_change_status(
                ticket,
                author=_agent_name(request),
                to_status=form.cleaned_data["status"],
                comment=form.cleaned_data["comment"],
            )
        except ValidationFailed as failure:
            error = failure.message
    if error:
        return render(
            request,
            "support/ticket_detail.html",
            {
                "ticket": ticket,
                "events": ticket.events.order_by("created_at"),
                "comment_form": CommentForm(),
                "status_form": form,
                "status_error": error,
            },
            status=409,
        )
    return redirect("support:ticket_detail", reference=reference)


@staff_required(HELPDESK_GROUP)
@require_POST
def ticket_take(request: HttpRequest, reference: str) -> HttpResponse:
    ticket = get_object_or_404(Ticket, reference=reference)
    agent = get_user_model().objects.get(username=request.user.get_username())
    ticket_assign(ticket, agent=agent, author=_agent_name(request))
    return redirect("support:ticket_detail", reference=reference)


@staff_required(HELPDESK_GROUP)
def statistics_view(request: HttpRequest) -> HttpResponse:
    try:
        days = max(1, min(int(request.GET.get("days", "30")), 366))
    except ValueError:
        days = 30
    return render(request, "support/statistics.html", {"stats": ticket_stats(days=days), "days": days})


@staff_required(HELPDESK_GROUP)
@require_http_methods(["GET", "POST"])
def record_lookup(request: HttpRequest) -> HttpResponse:
    """Confirm a record's existence and status to a caller on the phone (TD0.2 as helpdesk, audited)."""
    form = RecordLookupForm(request.POST or None)
    report = None
    not_found = False
    if request.method == "POST" and form.is_valid():
        try:
            ins = parse_ins(form.cleaned_data["ins"], form.cleaned_data["authority"])
        except InvalidIns as error:
            form.add_error("ins", error.message)
        else:
            caller = Caller(
                actor=staff_actor(ActorKind.HELPDESK, _agent_name(request)), channel=Channel.SUPPORT
            )
            try:
                report = record_test(caller=caller, ins=ins)
            except NotFound:
                not_found = True
    return render(
        request, "support/record_lookup.html", {"form": form, "report": report, "not_found": not_found}
    )
