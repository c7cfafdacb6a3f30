"""Patient portal: thin views over the accounts, records and documents services.

Each view parses its input with a form, calls one service or selector with the patient's
`Caller` (built from the session by `patient_required`), and renders. Access decisions are
the domain's: a refusal arrives as `NotFound` (→ 404) or `Forbidden` (→ 403).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Concatenate, ParamSpec

from django.conf import settings
from django.contrib import messages
from django.forms import Form
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.http.response import HttpResponseBase
from django.middleware.csrf import rotate_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dmp.access.actors import Caller
from dmp.access.policy import Action, DocumentStatus
from dmp.accounts.gateway import outbox_latest
from dmp.accounts.models import WebAccount
from dmp.accounts.services import (
    LoginFailed,
    Throttled,
    account_activate,
    account_confirm_password,
    account_for_session,
    account_notifications_set,
    caller_for,
    login_start,
    login_verify,
    session_token,
    totp_disable,
    totp_enrol_confirm,
    totp_enrol_start,
)
from dmp.accounts.totp import provisioning_uri
from dmp.audit.actions import AuditAction
from dmp.audit.selectors import TraceCursor, events_before, parse_trace_cursor, trace_cursor
from dmp.cda.render import embedded_body, render_html, render_pdf
from dmp.common.addresses import client_address
from dmp.common.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from dmp.documents.metadata import ConfidentialityChange
from dmp.documents.selectors import (
    DocumentQuery,
    RetrievedDocument,
    document_retrieve,
    document_search,
    record_traces_shown,
)
from dmp.documents.services import document_change_confidentiality, document_change_status
from dmp.portals.embedded import embedded_body_response
from dmp.records.models import ClosureReason, GranteeKind, Record
from dmp.records.selectors import authorisations_changeable, authorisations_of_record
from dmp.records.services import (
    AuthorisationChange,
    authorisation_change,
    expression_space_update,
    oppositions_set,
    record_close,
    record_read,
    trusted_person_add,
    trusted_person_remove,
)

from . import forms
from .export import record_export_zip, record_summary_pdf
from .notes import patient_note_publish
from .presentation import EXCEPTIONAL_MODES, MODE_LABELS, action_label

SESSION_ACCOUNT = "patient_account"
SESSION_TOKEN = "patient_token"  # noqa: S105 - a session key name
SESSION_SECRET = "patient_secret_connection"  # noqa: S105 - a session key name
SESSION_CHALLENGE = "patient_challenge"
SESSION_TOTP = "patient_totp_pending"
VISIBLE_STATUSES = frozenset({DocumentStatus.APPROVED, DocumentStatus.ARCHIVED})
P = ParamSpec("P")


@dataclass(frozen=True)
class PatientSession:
    account: WebAccount
    caller: Caller
    record: Record


def patient_required(
    view: Callable[Concatenate[HttpRequest, PatientSession, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Load the logged-in account from the session (or send to the login page)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        account = account_for_session(str(request.session.get(SESSION_ACCOUNT, "")))
        if account is None or request.session.get(SESSION_TOKEN) != session_token(account):
            request.session.flush()
            return redirect(f"{reverse('patient_portal:login')}?next={request.path}")
        session = PatientSession(
            account=account,
            caller=caller_for(account, secret_connection=bool(request.session.get(SESSION_SECRET))),
            record=account.record,
        )
        try:
            return view(request, session, *args, **kwargs)
        except NotFound as error:
            raise Http404(_("Introuvable")) from error
        except Forbidden:
            return HttpResponseForbidden(_("Action non autorisée sur ce dossier."))

    return wrapper  # type: ignore[return-value]


def _form_errors(form: Form, error: DomainError) -> None:
    for problem in error.problems:
        form.add_error(problem.location if problem.location in form.fields else None, problem.message)


def _throttled(request: HttpRequest, template: str, form: Form) -> HttpResponse:
    form.add_error(None, _("Trop de tentatives. Réessayez plus tard."))
    return render(request, template, {"form": form}, status=429)


# --- activation and login ------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def activation(request: HttpRequest) -> HttpResponse:
    form = forms.ActivationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            account_activate(
                code=form.cleaned_data["code"],
                identifier=form.cleaned_data["identifier"],
                password=form.cleaned_data["password"],
                client_address=client_address(request),
            )
        except Throttled:
            return _throttled(request, "patient_portal/activation.html", form)
        except LoginFailed:
            form.add_error("code", _("Ce code d'activation n'est pas valide ou a expiré."))
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            messages.success(request, _("Votre accès est activé. Connectez-vous avec votre identifiant."))
            return redirect("patient_portal:login")
    return render(request, "patient_portal/activation.html", {"form": form})


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    form = forms.LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            step = login_start(
                identifier=form.cleaned_data["identifier"],
                password=form.cleaned_data["password"],
                client_address=client_address(request),
            )
        except Throttled:
            return _throttled(request, "patient_portal/login.html", form)
        except LoginFailed:
            form.add_error(None, _("Identifiant ou mot de passe incorrect, ou accès temporairement bloqué."))
        else:
            request.session[SESSION_CHALLENGE] = step.challenge_id
            request.session[SESSION_SECRET] = bool(form.cleaned_data["secret_connection"])
            request.session["patient_sent_to"] = step.sent_to
            request.session["patient_next"] = _safe_next(request.GET.get("next", ""))
            return redirect("patient_portal:login_code")
    return render(request, "patient_portal/login.html", {"form": form})


def _safe_next(value: str) -> str:
    prefix = reverse("patient_portal:home")
    return value if value.startswith(prefix) and "//" not in value and "\\" not in value else ""


@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    challenge = str(request.session.get(SESSION_CHALLENGE, ""))
    if not challenge:
        return redirect("patient_portal:login")
    form = forms.CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            account = login_verify(
                challenge_id=challenge,
                code=form.cleaned_data["code"],
                client_address=client_address(request),
            )
        except Throttled:
            return _throttled(request, "patient_portal/login_code.html", form)
        except LoginFailed:
            form.add_error("code", _("Code incorrect ou expiré."))
        else:
            secret = bool(request.session.get(SESSION_SECRET))
            next_url = str(request.session.get("patient_next", ""))
            # New session id and CSRF token at the privilege change (session fixation).
            request.session.flush()
            request.session.cycle_key()
            rotate_token(request)
            request.session[SESSION_ACCOUNT] = str(account.public_id)
            request.session[SESSION_TOKEN] = session_token(account)
            request.session[SESSION_SECRET] = secret
            return redirect(next_url or "patient_portal:home")
    context = {"form": form, "sent_to": request.session.get("patient_sent_to", ""), "demo": settings.DEMO}
    return render(request, "patient_portal/login_code.html", context)


@require_GET
def demo_outbox(request: HttpRequest) -> HttpResponse:
    """Demo mode only: the messages the outbox gateway "sent" (activation and login codes)."""
    if not settings.DEMO or str(getattr(settings, "OPENDMP_MESSAGE_GATEWAY", "outbox")) != "outbox":
        raise Http404
    response = render(request, "patient_portal/demo_outbox.html", {"outbox": outbox_latest()})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    messages.info(request, _("Vous êtes déconnecté."))
    return redirect("patient_portal:login")


# --- home and documents -----------------------------------------------------------------------


@require_GET
@patient_required
def home(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    access = record_read(
        caller=patient.caller,
        record=patient.record,
        action=Action.RECORD_READ_ADMIN,
        audit_action=AuditAction.RECORD_READ_ADMIN,
    )
    return render(request, "patient_portal/home.html", {"patient": patient, "record": access.record})


@require_GET
@patient_required
def documents(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    visible = document_search(
        caller=patient.caller, record=patient.record, query=DocumentQuery(statuses=VISIBLE_STATUSES)
    )
    return render(request, "patient_portal/documents.html", {"patient": patient, "documents": visible})


def _retrieve(patient: PatientSession, unique_id: str) -> RetrievedDocument:
    """A document of the session's record only: another record's uniqueId is unknown here,
    and its refusal is no event in that other patient's history."""
    return document_retrieve(
        caller=patient.caller, unique_id=unique_id, patient_id=patient.record.patient.identifier.hl7()
    )


@require_GET
@patient_required
def document_detail(request: HttpRequest, patient: PatientSession, unique_id: str) -> HttpResponse:
    retrieved = _retrieve(patient, unique_id)
    document = retrieved.document
    body = render_html(retrieved.content) if document.mime_type == "text/xml" else ""
    embedded = embedded_body(retrieved.content) if document.mime_type == "text/xml" else None
    mask_form = forms.MaskForm(
        initial={"entry_uuid": document.entry_uuid, "masked": not document.masked_to_professionals}
    )
    delete_form = forms.DocumentDeleteForm(initial={"entry_uuid": document.entry_uuid})
    context = {
        "patient": patient,
        "document": document,
        "body": body,
        "embedded": embedded,
        "mask_form": mask_form,
        "delete_form": delete_form,
    }
    return render(request, "patient_portal/document.html", context)


@require_GET
@patient_required
def document_pdf(request: HttpRequest, patient: PatientSession, unique_id: str) -> HttpResponse:
    retrieved = _retrieve(patient, unique_id)
    if retrieved.document.mime_type != "text/xml":
        raise NotFound("document not found")
    response = HttpResponse(render_pdf(retrieved.content), content_type="application/pdf")
    response["Content-Disposition"] = 'attachment; filename="document.pdf"'
    return response


@require_GET
@xframe_options_sameorigin
@patient_required
def document_body(request: HttpRequest, patient: PatientSession, unique_id: str) -> HttpResponse:
    """A level 1 body (PDF, text, image) for the document page's sandboxed frame."""
    retrieved = _retrieve(patient, unique_id)
    return embedded_body_response(retrieved.content, retrieved.document.mime_type)


@require_POST
@patient_required
def document_mask(request: HttpRequest, patient: PatientSession, unique_id: str) -> HttpResponse:
    form = forms.MaskForm(request.POST)
    if not form.is_valid():
        raise NotFound("invalid request")
    try:
        document = document_change_confidentiality(
            caller=patient.caller,
            entry_uuid=form.cleaned_data["entry_uuid"],
            change=ConfidentialityChange(code="MASQUE_PS", enabled=form.cleaned_data["masked"]),
            patient=patient.record.patient.identifier,
        )
    except Conflict:
        messages.error(request, _("Le document a changé entre-temps ; recommencez."))
        return redirect("patient_portal:document", unique_id=unique_id)
    if document.masked_to_professionals:
        messages.success(
            request,
            _("Le document est masqué aux professionnels (sauf son auteur et votre médecin traitant)."),
        )
    else:
        messages.success(request, _("Le document est de nouveau visible par les professionnels autorisés."))
    return redirect("patient_portal:document", unique_id=document.unique_id)


@require_POST
@patient_required
def document_delete(request: HttpRequest, patient: PatientSession, unique_id: str) -> HttpResponse:
    """The patient (or the legal representative) withdraws a note of their expression space
    (class 90; the policy refuses any other document): a logical deletion, as TD3.3c."""
    form = forms.DocumentDeleteForm(request.POST)
    if not form.is_valid():
        raise NotFound("invalid request")
    try:
        document_change_status(
            caller=patient.caller,
            entry_uuid=form.cleaned_data["entry_uuid"],
            new_status=DocumentStatus.DELETED,
            patient=patient.record.patient.identifier,
        )
    except Conflict:
        messages.error(request, _("Le document a changé entre-temps ; recommencez."))
        return redirect("patient_portal:document", unique_id=unique_id)
    messages.success(request, _("Votre document est supprimé de votre dossier."))
    return redirect("patient_portal:documents")


@require_http_methods(["GET", "POST"])
@patient_required
def document_add(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    form = forms.NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            document = patient_note_publish(
                caller=patient.caller,
                record=patient.record,
                type_code=form.cleaned_data["type_code"],
                title=form.cleaned_data["title"],
                text=form.cleaned_data["text"],
            )
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            messages.success(request, _("Votre document a été ajouté à votre dossier."))
            return redirect("patient_portal:document", unique_id=document.unique_id)
    return render(request, "patient_portal/document_add.html", {"patient": patient, "form": form})


# --- access rights ---------------------------------------------------------------------------


def _access_page(
    request: HttpRequest,
    patient: PatientSession,
    form: forms.AuthorisationForm | None = None,
    oppositions: forms.OppositionsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    rows = list(authorisations_of_record(caller=patient.caller, record=patient.record))
    record = patient.record
    context = {
        "patient": patient,
        "rows": rows,
        "medecins_traitants": [r for r in rows if r.is_medecin_traitant],
        # A closed record, or a minor in secret connection: the list only (the changes would be refused).
        "can_change": authorisations_changeable(caller=patient.caller, record=record),
        "form": form or forms.AuthorisationForm(),
        "oppositions": oppositions
        or forms.OppositionsForm(
            initial={"break_glass": record.opposes_break_glass, "centre_15": record.opposes_centre_15}
        ),
    }
    return render(request, "patient_portal/access.html", context, status=status)


@require_GET
@patient_required
def access(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    return _access_page(request, patient)


@require_POST
@patient_required
def access_change(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    form = forms.AuthorisationForm(request.POST)
    if form.is_valid():
        try:
            authorisation_change(
                caller=patient.caller,
                record=patient.record,
                grantee_kind=GranteeKind(form.cleaned_data["grantee_kind"]),
                grantee_id=form.cleaned_data["grantee_id"],
                grantee_name=form.cleaned_data["grantee_name"],
                change=AuthorisationChange(form.cleaned_data["change"]),
            )
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            messages.success(request, _("Vos choix d'accès sont enregistrés."))
            return redirect("patient_portal:access")
    return _access_page(request, patient, form=form, status=400)


@require_POST
@patient_required
def access_oppositions(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    form = forms.OppositionsForm(request.POST)
    if not form.is_valid():  # pragma: no cover - two optional booleans
        return _access_page(request, patient, oppositions=form, status=400)
    oppositions_set(
        caller=patient.caller,
        record=patient.record,
        break_glass=form.cleaned_data["break_glass"],
        centre_15=form.cleaned_data["centre_15"],
    )
    messages.success(request, _("Vos oppositions sont enregistrées."))
    return redirect("patient_portal:access")


# --- traces ---------------------------------------------------------------------------------------


TRACES_PER_PAGE = 50


@dataclass(frozen=True)
class TraceRow:
    occurred_at: object
    who: str
    structure: str
    what: str
    mode: str
    reason: str
    outcome: str
    exceptional: bool


@require_GET
@patient_required
def traces(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    events = record_traces_shown(caller=patient.caller, record=patient.record)
    # Pages follow a cursor (the last event shown), never a count and an offset: counting a
    # long history for a page number, then skipping it row by row, cost more with every page,
    # and the page's own trace would shift an offset under the reader.
    try:
        before: TraceCursor | None = parse_trace_cursor(request.GET.get("avant", ""))
    except ValueError:
        before = None  # the first page, or a value this portal never gives
    shown = list(events_before(events, before)[: TRACES_PER_PAGE + 1])
    older = ""
    if len(shown) > TRACES_PER_PAGE:
        shown = shown[:TRACES_PER_PAGE]
        older = trace_cursor(shown[-1].occurred_at, shown[-1].pk)
    rows = [
        TraceRow(
            occurred_at=e.occurred_at,
            who=e.actor_name or e.actor_id,
            structure=e.actor_structure_name,
            what=action_label(e.action),
            mode=str(MODE_LABELS.get(e.access_mode, e.access_mode)),
            reason=e.access_reason,
            outcome=e.outcome,
            exceptional=e.access_mode in EXCEPTIONAL_MODES,
        )
        for e in shown
    ]
    context = {"patient": patient, "rows": rows, "older": older, "is_first_page": before is None}
    return render(request, "patient_portal/traces.html", context)


# --- expression space -----------------------------------------------------------------------------


def _expression_page(
    request: HttpRequest,
    patient: PatientSession,
    form: forms.ExpressionForm | None = None,
    person_form: forms.TrustedPersonForm | None = None,
    status: int = 200,
) -> HttpResponse:
    access = record_read(
        caller=patient.caller,
        record=patient.record,
        action=Action.EXPRESSION_READ,
        audit_action=AuditAction.EXPRESSION_READ,
    )
    space = getattr(access.record, "expression_space", None)
    if form is None:
        form = forms.ExpressionForm(
            initial={
                "organ_donation": space.organ_donation if space else "",
                "organ_donation_note": space.organ_donation_note if space else "",
                "has_advance_directives": space.has_advance_directives if space else False,
                "advance_directives_location": space.advance_directives_location if space else "",
                "heirs_access": space.heirs_access if space else "",
                "personal_note": space.personal_note if space else "",
            }
        )
    context = {
        "patient": patient,
        "form": form,
        "person_form": person_form or forms.TrustedPersonForm(),
        "persons": list(access.record.trusted_persons.order_by("pk")),
    }
    return render(request, "patient_portal/expression.html", context, status=status)


@require_http_methods(["GET", "POST"])
@patient_required
def expression(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    if request.method == "GET":
        return _expression_page(request, patient)
    form = forms.ExpressionForm(request.POST)
    if form.is_valid():
        try:
            expression_space_update(caller=patient.caller, record=patient.record, **form.cleaned_data)
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            messages.success(request, _("Votre espace d'expression est enregistré."))
            return redirect("patient_portal:expression")
    return _expression_page(request, patient, form=form, status=400)


@require_POST
@patient_required
def trusted_person_create(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    form = forms.TrustedPersonForm(request.POST)
    if form.is_valid():
        try:
            trusted_person_add(caller=patient.caller, record=patient.record, **form.cleaned_data)
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            messages.success(request, _("La personne a été ajoutée."))
            return redirect("patient_portal:expression")
    return _expression_page(request, patient, person_form=form, status=400)


@require_POST
@patient_required
def trusted_person_delete(request: HttpRequest, patient: PatientSession, person_id: int) -> HttpResponse:
    trusted_person_remove(caller=patient.caller, record=patient.record, person_id=person_id)
    messages.success(request, _("La personne a été retirée."))
    return redirect("patient_portal:expression")


# --- restitution and closure ------------------------------------------------------------------------


@require_GET
@patient_required
def export_zip(request: HttpRequest, patient: PatientSession) -> FileResponse:
    return FileResponse(
        record_export_zip(caller=patient.caller, record=patient.record),
        as_attachment=True,
        filename="mon-dmp-xdm.zip",
        content_type="application/zip",
    )


@require_GET
@patient_required
def summary_pdf(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    response = HttpResponse(
        record_summary_pdf(caller=patient.caller, record=patient.record), content_type="application/pdf"
    )
    response["Content-Disposition"] = 'attachment; filename="synthese-dmp.pdf"'
    return response


@require_http_methods(["GET", "POST"])
@patient_required
def close(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    form = forms.CloseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not account_confirm_password(account=patient.account, password=form.cleaned_data["password"]):
            form.add_error("password", _("Mot de passe incorrect."))
        else:
            try:
                record_close(
                    caller=patient.caller,
                    record=patient.record,
                    reason=ClosureReason.PATIENT_REQUEST,
                    comment=form.cleaned_data["comment"],
                )
            except Conflict:
                form.add_error(None, _("Votre dossier est déjà fermé."))
            else:
                messages.success(
                    request, _("Votre dossier est fermé. Vous pouvez toujours le consulter et l'exporter.")
                )
                return redirect("patient_portal:home")
    return render(request, "patient_portal/close.html", {"patient": patient, "form": form})


# --- account settings ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@patient_required
def security(request: HttpRequest, patient: PatientSession) -> HttpResponse:
    disabling = request.method == "POST" and request.POST.get("action") == "disable"
    form = forms.TotpForm(None if disabling else request.POST or None)
    disable_form = forms.TotpDisableForm(request.POST if disabling else None)
    secret = str(request.session.get(SESSION_TOTP, ""))
    if request.method == "POST" and request.POST.get("action") == "notifications":
        account_notifications_set(account=patient.account, enabled=request.POST.get("notify") == "on")
        messages.success(request, _("Vos préférences de notification sont enregistrées."))
        return redirect("patient_portal:security")
    if disabling and disable_form.is_valid():
        try:
            totp_disable(account=patient.account, password=disable_form.cleaned_data["password"])
        except ValidationFailed as error:
            _form_errors(disable_form, error)
        else:
            messages.success(request, _("L'application d'authentification est désactivée."))
            return redirect("patient_portal:security")
    if request.method == "POST" and not disabling and secret and form.is_valid():
        try:
            totp_enrol_confirm(
                account=patient.account,
                secret=secret,
                code=form.cleaned_data["code"],
                password=form.cleaned_data["password"],
            )
        except ValidationFailed as error:
            _form_errors(form, error)
        else:
            request.session.pop(SESSION_TOTP, None)
            messages.success(request, _("L'application d'authentification est activée."))
            return redirect("patient_portal:security")
    if not secret and not patient.account.totp_enabled:
        secret = totp_enrol_start(account=patient.account)
        request.session[SESSION_TOTP] = secret
    context = {
        "patient": patient,
        "form": form,
        "disable_form": disable_form,
        "secret": secret,
        "uri": provisioning_uri(secret, account=patient.account.identifier or "") if secret else "",
    }
    return render(request, "patient_portal/security.html", context)
