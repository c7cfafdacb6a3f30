"""Web portal for health professionals: thin views over the record and document services.

Each view parses its input with a form, builds the `Caller` from the PS session, calls one
service or selector and renders. Access decisions are the services' (NotFound for forbidden
and missing alike, Forbidden with the reason for a change refused on a document the PS sees);
the views only turn domain errors into pages.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pydantic import ValidationError as PydanticValidationError

from dmp.access.actors import AccessMode, AuthenticationMode
from dmp.access.policy import DocumentStatus, Reason
from dmp.accounts.services import account_initialise
from dmp.audit.actions import AuditAction
from dmp.cda.render import embedded_body, render_html
from dmp.common.errors import DomainError, ErrorCode, Forbidden, NotFound, ValidationFailed
from dmp.common.middleware import accepts_body_of
from dmp.documents.metadata import ConfidentialityChange
from dmp.documents.models import Confidentiality, DocumentEntry
from dmp.documents.selectors import (
    CodeMatch,
    DocumentQuery,
    document_retrieve,
    document_search,
    document_visible,
)
from dmp.documents.services import (
    document_change_confidentiality,
    document_change_status,
    submission_register,
)
from dmp.identity.models import HealthProfessional, Structure
from dmp.identity.selectors import active_professional_get
from dmp.identity.services import PatientTraits
from dmp.portals.embedded import embedded_body_response, sandboxed
from dmp.portals.professional import psc, session, throttle
from dmp.portals.professional.cards import CardRejected, NoCard, professional_from_request
from dmp.portals.professional.forms import (
    VISIBILITY_CODES,
    AuthorisationForm,
    DemoCardForm,
    DocumentActionForm,
    DocumentFilterForm,
    EmergencyForm,
    InsForm,
    RecordCreateForm,
    SelfAuthorisationForm,
    StructureForm,
    UploadForm,
    WebAccountForm,
)
from dmp.portals.professional.links import ContextLink, LinkRejected, consume_link, read_link
from dmp.portals.professional.session import Emergency, LoginMethod, PsSession
from dmp.portals.professional.uploads import Upload, submission_from_upload
from dmp.records.access import record_by_ins, record_by_public_id
from dmp.records.models import GranteeKind, Record
from dmp.records.selectors import authorisations_of_record, own_traces, records_authorised_for
from dmp.records.services import (
    AuthorisationChange,
    RecordState,
    authorisation_change,
    authorisation_self,
    medecin_traitant_set,
    record_create,
    record_test,
)

P = ParamSpec("P")
logger = logging.getLogger(__name__)
TEMPLATES = "professional_portal"
SESSION_ATTRIBUTE = "_professional_portal_session"
DEMO_CARDS_SHOWN = 12
TRACES_SHOWN = 200


def demo_enabled() -> bool:
    # Only the demonstration mode: a demo card logs anyone in as any PS, and DJANGO_DEBUG is
    # switched on to diagnose a server, not to open it.
    return bool(settings.DEMO)


def _page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    # The session resolved by `ps_required` for this request, else (public pages) resolved here.
    ps = getattr(request, SESSION_ATTRIBUTE, None) or session.current(request)
    values: dict[str, Any] = {"ps": ps, "demo_login": demo_enabled()}
    values.update(context or {})
    record = values.get("record")
    # The PS is told, on the pages of the record it applies to, that it works in secret.
    values["secret_connection"] = bool(
        ps and isinstance(record, Record) and ps.secret_record == str(record.public_id)
    )
    return render(request, f"{TEMPLATES}/{template}.html", values, status=status)


# What a PS is told about a policy refusal (the domain's reasons are codes, in English).
_REFUSALS: dict[str, Any] = {
    Reason.MATRIX.value: gettext_lazy("votre profession ne permet pas cette action pour ce type de document"),
    Reason.READ_ONLY_MODE.value: gettext_lazy("un accès d'urgence ne permet que la consultation"),
    Reason.RECORD_CLOSED.value: gettext_lazy("ce DMP est fermé"),
    Reason.BLOCKED.value: gettext_lazy("le patient vous a interdit l'accès à son DMP"),
    Reason.NOT_AUTHORISED.value: gettext_lazy("vous n'êtes pas autorisé sur ce DMP"),
    Reason.AUTHORISATION_EXPIRED.value: gettext_lazy("votre autorisation sur ce DMP a expiré"),
    Reason.NOT_AUTHOR.value: gettext_lazy("seul l'auteur du document peut le faire"),
    Reason.NOT_CURRENT.value: gettext_lazy("ce document n'est plus la version en vigueur"),
    Reason.NOT_MEDECIN.value: gettext_lazy("cette action est réservée aux médecins"),
    Reason.NOT_MEDECIN_TRAITANT.value: gettext_lazy(
        "cette action est réservée au médecin traitant DMP du patient"
    ),
    Reason.PATIENT_AUTHORED_ONLY.value: gettext_lazy(
        "ce document relève de l'espace d'expression du patient"
    ),
}


def _refusal_text(error: DomainError) -> str:
    """The refusal in the page's language; the technical reason goes to the log."""
    logger.info("professional portal refusal: %s", error.message)
    reason = error.message.rsplit(": ", 1)[-1]
    return str(_REFUSALS.get(reason, gettext_lazy("action non autorisée")))


def _refused(request: HttpRequest, error: DomainError) -> HttpResponse:
    if isinstance(error, Forbidden):
        return _page(request, "refused", {"detail": capfirst(_refusal_text(error))}, status=403)
    return _page(request, "not_found", status=404)


def ps_required(
    view: Callable[Concatenate[HttpRequest, PsSession, P], HttpResponse],
) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        ps = session.current(request)
        if ps is None:
            login = reverse("professional_portal:login")
            return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        setattr(request, SESSION_ATTRIBUTE, ps)
        try:
            return view(request, ps, *args, **kwargs)
        except (NotFound, Forbidden) as error:
            return _refused(request, error)

    return wrapper


def _record(public_id: uuid.UUID) -> Record:
    record = record_by_public_id(public_id)
    if record is None:
        raise NotFound("no such record")
    return record


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


# --- login ------------------------------------------------------------------------------


def _login_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    """The login page, the same after a failure: every way in offered, `next` kept."""
    cards: list[HealthProfessional] = []
    if demo_enabled():
        cards = list(
            HealthProfessional.objects.filter(is_active=True, structures__isnull=False)
            .distinct()
            .order_by("pk")[:DEMO_CARDS_SHOWN]
        )
    context = {
        "cards": cards,
        "next": _safe_next(request, ""),
        "psc_enabled": psc.enabled(),
        "card_error": error,
    }
    return _page(request, "login", context, status=status)


@require_GET
def login(request: HttpRequest) -> HttpResponse:
    return _login_page(request)


def _too_many(request: HttpRequest) -> HttpResponse:
    response = _login_page(
        request, error=_("Trop de tentatives : réessayez dans quelques minutes."), status=429
    )
    response["Retry-After"] = str(throttle.WINDOW_SECONDS)
    return response


def _psc_redirect_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("professional_portal:login_psc_return"))


@require_GET
def login_psc(request: HttpRequest) -> HttpResponse:
    """Pro Santé Connect: off to the provider (authorization code + PKCE)."""
    if not psc.enabled():
        raise Http404
    try:
        target = psc.start(
            request,
            redirect_uri=_psc_redirect_uri(request),
            next_url=_safe_next(request, reverse("professional_portal:home")),
        )
    except psc.PscRejected as error:
        logger.warning("Pro Santé Connect unavailable: %s", error.message)
        return _login_page(
            request,
            error=_(
                "Pro Santé Connect ne répond pas pour le moment : réessayez plus tard ou "
                "connectez-vous avec votre carte CPS."
            ),
            status=502,
        )
    return redirect(target)


@require_GET
def login_psc_return(request: HttpRequest) -> HttpResponse:
    if not psc.enabled():
        raise Http404
    if throttle.exhausted(request):
        return _too_many(request)
    try:
        national_id, next_url = psc.finish(request, redirect_uri=_psc_redirect_uri(request))
    except psc.PscRejected as error:
        throttle.spend(request)
        logger.warning("Pro Santé Connect login refused: %s", error.message)
        return _login_page(
            request, error=_("La connexion par Pro Santé Connect a échoué : recommencez."), status=403
        )
    professional = active_professional_get(national_id)
    if professional is None:
        throttle.spend(request)
        return _login_page(request, error=_("Professionnel inconnu."), status=403)
    session.log_in(request, professional, LoginMethod.PSC)
    home = reverse("professional_portal:home")
    safe = next_url if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}) else home
    return redirect(safe or home)


@require_POST
def login_cps(request: HttpRequest) -> HttpResponse:
    if throttle.exhausted(request):
        return _too_many(request)
    try:
        professional = professional_from_request(request)
    except CardRejected as error:
        throttle.spend(request)
        logger.warning("CPS card refused: %s", error.message)
        message = (
            _("Aucune carte CPS n'a été lue : insérez votre carte dans le lecteur, puis réessayez.")
            if isinstance(error, NoCard)
            else _("Votre carte CPS n'a pas été acceptée par le DMP.")
        )
        return _login_page(request, error=message, status=403)
    session.log_in(request, professional, LoginMethod.CPS)
    return redirect(_safe_next(request, reverse("professional_portal:home")))


@require_POST
def login_demo(request: HttpRequest) -> HttpResponse:
    if not demo_enabled():
        raise Http404
    if throttle.exhausted(request):
        return _too_many(request)
    form = DemoCardForm(request.POST)
    professional = None
    if form.is_valid():
        professional = HealthProfessional.objects.filter(
            national_id=form.cleaned_data["professional"], is_active=True
        ).first()
    if professional is None:
        throttle.spend(request)
        return _login_page(request, error=_("Carte de démonstration inconnue."), status=400)
    session.log_in(request, professional, LoginMethod.DEMO_CARD)
    return redirect(_safe_next(request, reverse("professional_portal:home")))


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    session.log_out(request)
    return redirect("professional_portal:login")


def _context_refused(request: HttpRequest, error: LinkRejected) -> HttpResponse:
    logger.info("TD0.9 link refused: %s", error.message)
    detail = _(
        "Ce lien d'ouverture n'est plus valable (déjà utilisé, expiré ou altéré) : ouvrez de "
        "nouveau le DMP depuis votre logiciel."
    )
    return _page(request, "refused", {"detail": detail}, status=403)


@dataclasses.dataclass(frozen=True)
class _Opening:
    """Who a TD0.9 link logs in, checked against the directory."""

    professional: HealthProfessional
    structure: Structure | None
    authentication: AuthenticationMode


def _opening(request: HttpRequest, link: ContextLink) -> _Opening | HttpResponse:
    """The session a link opens, or the page refusing it."""
    professional = active_professional_get(link.professional_id)
    if professional is None:
        return _page(request, "refused", {"detail": _("Professionnel inconnu.")}, status=403)
    structure = (
        professional.structures.filter(id_nat=link.structure_id).first() if link.structure_id else None
    )
    try:
        authentication = AuthenticationMode(link.authentication)
    except ValueError:
        authentication = AuthenticationMode.INDIRECT
    if link.structure_id and structure is None:
        # The structure that vouched for the PS (or the one named) is not one the PS works in.
        return _page(
            request, "refused", {"detail": _("Structure inconnue pour ce professionnel.")}, status=403
        )
    if authentication is not AuthenticationMode.DIRECT and structure is None:
        # Indirect mode: a structure's certificate vouched for the PS; a link that does not say
        # which one cannot say whose rights the PS acts with.
        return _page(
            request,
            "refused",
            {"detail": _("Ce lien ne nomme pas la structure qui a authentifié le professionnel.")},
            status=403,
        )
    return _Opening(professional=professional, structure=structure, authentication=authentication)


@require_http_methods(["GET", "POST"])
def context_open(request: HttpRequest, token: str) -> HttpResponse:
    """TD0.9: a short-lived, single-use link from the professional's software.

    A GET logs the link's PS in at once, unless the browser holds another PS's session: then the
    link is left unused and the page asks, and only its POST (CSRF-checked) replaces the session.
    Otherwise anyone could hand a colleague a link of their own and have what the colleague then
    does recorded under their own name."""
    try:
        link = read_link(token) if request.method == "GET" else consume_link(token)
    except LinkRejected as error:
        return _context_refused(request, error)
    opening = _opening(request, link)
    if isinstance(opening, HttpResponse):
        return opening
    if request.method == "GET":
        current = session.current(request)
        if current is not None and current.professional.national_id != link.professional_id:
            response = _page(
                request,
                "context_switch",
                {
                    "current": current.professional,
                    "target": opening.professional,
                    "action": reverse("professional_portal:context_open", args=[token]),
                },
            )
            response["Cache-Control"] = "no-store"
            return response
        try:
            link = consume_link(token)
        except LinkRejected as error:
            return _context_refused(request, error)
    record = record_by_ins(link.ins)
    session.log_in(
        request,
        opening.professional,
        LoginMethod.CONTEXT_LINK,
        structure=opening.structure,
        authentication=opening.authentication,
        secret_record=str(record.public_id) if record is not None and link.secret_connection else "",
        signer_structure_id=link.signer_structure_id,
    )
    if record is None:
        return redirect("professional_portal:search")
    target = {
        "record": "professional_portal:record_status",
        "documents": "professional_portal:documents",
        "upload": "professional_portal:upload",
    }[link.page]
    return redirect(target, record=record.public_id)


# --- home, structure, traces --------------------------------------------------------------


@require_GET
@ps_required
def home(request: HttpRequest, ps: PsSession) -> HttpResponse:
    records = records_authorised_for(caller=ps.caller(), order_by_last_document=True, limit=100)
    return _page(request, "home", {"records": records, "search_form": InsForm()})


@require_POST
@ps_required
def choose_structure(request: HttpRequest, ps: PsSession) -> HttpResponse:
    if ps.structure_pinned:
        messages.error(
            request,
            _(
                "Cette session a été ouverte par le logiciel de votre structure, qui vous a "
                "authentifié : elle reste attachée à cette structure. Pour exercer dans une autre "
                "structure, connectez-vous avec votre carte CPS ou Pro Santé Connect."
            ),
        )
        return redirect("professional_portal:home")
    form = StructureForm(request.POST)
    if form.is_valid():
        structure = ps.professional.structures.filter(id_nat=form.cleaned_data["structure"]).first()
        if structure is not None:
            session.choose_structure(request, structure)
    return redirect("professional_portal:home")


@require_GET
@ps_required
def traces(request: HttpRequest, ps: PsSession) -> HttpResponse:
    events = own_traces(caller=ps.caller(), limit=TRACES_SHOWN)
    rows = [(event, AuditAction(event.action).name.replace("_", " ").lower()) for event in events]
    return _page(request, "traces", {"rows": rows})


# --- records ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@ps_required
def search(request: HttpRequest, ps: PsSession) -> HttpResponse:
    """TD0.2 by INS. POST, so that the INS never lands in a URL or an access log."""
    form = InsForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _page(request, "search", {"form": form})
    report = record_test(caller=ps.caller(), ins=form.identifier)
    if report.state is not RecordState.NONE and report.record_public_id:
        return redirect("professional_portal:record_status", record=report.record_public_id)
    create_form = RecordCreateForm(initial={"ins": form.identifier.value, "authority": form.identifier.oid})
    return _page(request, "search", {"form": form, "report": report, "create_form": create_form})


@require_GET
@ps_required
def record_status(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    return _record_status_page(request, ps, _record(record))


def _record_status_page(
    request: HttpRequest,
    ps: PsSession,
    loaded: Record,
    *,
    web_account_form: WebAccountForm | None = None,
    status: int = 200,
) -> HttpResponse:
    report = record_test(caller=ps.caller(str(loaded.public_id)), ins=loaded.patient.identifier)
    return _page(
        request,
        "record_status",
        {
            "record": loaded,
            "report": report,
            "emergency_form": EmergencyForm(),
            "web_account_form": web_account_form or WebAccountForm(),
            "is_doctor": ps.professional.profession_code == "10",
        },
        status=status,
    )


# The traits' fields under the names of the creation form's fields.
_TRAIT_FIELDS = {"ins": "ins", "ins_authority": "authority"}


def _traits_errors(form: RecordCreateForm, error: PydanticValidationError) -> None:
    """The rules of `PatientTraits` the form does not repeat, as errors on their fields."""
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        field = _TRAIT_FIELDS.get(name, name)
        if field == "birth_date":
            message = _("La date de naissance ne peut pas être dans le futur.")
        else:
            message = _("Valeur refusée.")
        form.add_error(field if field in form.fields else None, message)


@require_POST
@ps_required
def record_create_view(request: HttpRequest, ps: PsSession) -> HttpResponse:
    form = RecordCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, "record_create", {"form": form}, status=400)
    data = form.cleaned_data
    try:
        traits = PatientTraits(
            ins=form.identifier.value,
            ins_authority=form.identifier.oid,
            birth_family_name=data["birth_family_name"],
            used_family_name=data["used_family_name"],
            given_names=data["given_names"],
            birth_date=data["birth_date"],
            sex=data["sex"],
        )
    except PydanticValidationError as error:
        _traits_errors(form, error)
        return _page(request, "record_create", {"form": form}, status=400)
    try:
        created = record_create(
            caller=ps.caller(),
            traits=traits,
            consent=data["consent"],
            opposes_break_glass=data["opposes_break_glass"],
            opposes_centre_15=data["opposes_centre_15"],
        )
    except ValidationFailed as error:
        for problem in error.problems:
            form.add_error(problem.location if problem.location in form.fields else None, problem.message)
        return _page(request, "record_create", {"form": form}, status=400)
    except DomainError as error:
        form.add_error(None, error.message)
        return _page(request, "record_create", {"form": form}, status=409)
    messages.success(request, _("Le DMP a été créé ; vous êtes autorisé à le consulter."))
    return redirect("professional_portal:record_status", record=created.public_id)


@require_POST
@ps_required
def authorisation_self_view(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    """TD0.3: the PS records the patient's consent to its own access (or gives the access up)."""
    loaded = _record(record)
    form = SelfAuthorisationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Confirmez que le patient vous autorise."))
        return redirect("professional_portal:record_status", record=record)
    grant = form.cleaned_data["grant"] == "1"
    authorisation_self(caller=ps.writer(str(record)), ins=loaded.patient.identifier, grant=grant)
    messages.success(
        request, _("Vous êtes autorisé sur ce DMP.") if grant else _("Vous n'êtes plus autorisé sur ce DMP.")
    )
    return redirect("professional_portal:record_status", record=record)


@require_POST
@ps_required
def web_account(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    """TD1.5: open (or re-issue) the patient's web account; the code is shown once, never stored."""
    loaded = _record(record)
    form = WebAccountForm(request.POST)
    if not form.is_valid():
        return _record_status_page(request, ps, loaded, web_account_form=form, status=400)
    try:
        code = account_initialise(
            caller=ps.writer(str(record)),
            record=loaded,
            otp_channel=form.cleaned_data["channel"],
            otp_destination=form.cleaned_data["destination"],
            revoke_current=form.cleaned_data["revoke_current"],
        )
    except ValidationFailed as error:
        for problem in error.problems:
            field = {"otp_channel": "channel", "otp_destination": "destination"}.get(problem.location)
            form.add_error(field, problem.message)
        return _record_status_page(request, ps, loaded, web_account_form=form, status=400)
    response = _page(request, "web_account", {"record": loaded, "code": code})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@ps_required
def medecin_traitant(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    loaded = _record(record)
    declare = request.POST.get("declare") == "1"
    medecin_traitant_set(caller=ps.writer(str(record)), ins=loaded.patient.identifier, declare=declare)
    messages.success(
        request,
        _("Vous êtes déclaré médecin traitant DMP.")
        if declare
        else _("Vous n'êtes plus médecin traitant DMP."),
    )
    return redirect("professional_portal:record_status", record=record)


@require_http_methods(["GET", "POST"])
@ps_required
def authorisations(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    """The médecin traitant manages the record's authorisations on the patient's behalf."""
    loaded = _record(record)
    form = AuthorisationForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        grantee_id = form.cleaned_data["grantee_id"].strip()
        grantee_kind = GranteeKind(form.cleaned_data["grantee_kind"])
        try:
            authorisation_change(
                caller=ps.writer(str(record)),
                record=loaded,
                grantee_kind=grantee_kind,
                grantee_id=grantee_id,
                change=AuthorisationChange(form.cleaned_data["change"]),
            )
        except ValidationFailed as error:
            form.add_error(None, "; ".join(p.message for p in error.problems))
            status = 400
        else:
            messages.success(request, _("Autorisation modifiée."))
            return redirect("professional_portal:authorisations", record=record)
    elif request.method == "POST":
        status = 400
    rows = list(authorisations_of_record(caller=ps.writer(str(record)), record=loaded))
    return _page(request, "authorisations", {"record": loaded, "rows": rows, "form": form}, status=status)


# --- emergency access ---------------------------------------------------------------------


@require_POST
@ps_required
def emergency_start(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    """Open the record in break-glass or Centre 15 mode: the access point accepts or refuses."""
    loaded = _record(record)
    form = EmergencyForm(request.POST)
    if not form.is_valid():
        return _page(request, "emergency_refused", {"record": loaded, "form": form}, status=400)
    emergency = Emergency(
        record=str(record), mode=AccessMode(form.cleaned_data["mode"]), reason=form.cleaned_data["reason"]
    )
    trial = dataclasses.replace(ps, emergency=emergency)
    try:
        document_search(caller=trial.caller(str(record)), record=loaded, query=DocumentQuery(limit=1))
    except NotFound:
        return _page(request, "emergency_refused", {"record": loaded, "form": form}, status=403)
    session.start_emergency(request, emergency)
    return redirect("professional_portal:documents", record=record)


@require_POST
@ps_required
def emergency_end(request: HttpRequest, ps: PsSession) -> HttpResponse:
    session.end_emergency(request)
    return redirect("professional_portal:home")


# --- documents ----------------------------------------------------------------------------


@require_GET
@ps_required
def documents(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    loaded = _record(record)
    form = DocumentFilterForm(request.GET or None)
    query = DocumentQuery(limit=500)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        query = DocumentQuery(
            statuses=form.statuses(),
            type_codes=(CodeMatch(data["type_code"]),) if data["type_code"] else (),
            class_codes=(CodeMatch(data["class_code"]),) if data["class_code"] else (),
            creation_from=form.creation_from(),
            creation_to=form.creation_to(),
            limit=500,
        )
    elif form.is_bound:
        return _page(request, "documents", {"record": loaded, "form": form, "rows": []}, status=400)
    rows = document_search(caller=ps.caller(str(record)), record=loaded, query=query)
    return _page(request, "documents", {"record": loaded, "form": form, "rows": rows})


def _retrieve(ps: PsSession, record: uuid.UUID, unique_id: str) -> tuple[Record, Any]:
    loaded = _record(record)
    retrieved = document_retrieve(
        caller=ps.caller(str(record)), unique_id=unique_id, patient_id=loaded.patient.identifier.hl7()
    )
    return loaded, retrieved


@require_GET
@ps_required
def document_view(request: HttpRequest, ps: PsSession, record: uuid.UUID, unique_id: str) -> HttpResponse:
    loaded, retrieved = _retrieve(ps, record, unique_id)
    body = None
    rendered = ""
    if retrieved.document.mime_type == "text/xml":
        try:
            body = embedded_body(retrieved.content)
            # The renderer walks the narrative and sanitises with an allow-list (no script, no
            # event handler, http(s) links only); the page CSP forbids inline script anyway.
            rendered = mark_safe(render_html(retrieved.content))  # noqa: S308
        except ValidationFailed:
            rendered = ""
    document = retrieved.document
    return _page(
        request,
        "document",
        {
            "record": loaded,
            "document": document,
            "decision": retrieved.decision,
            "rendered": rendered,
            "embedded": body,
            "author_ids": {a.person_id for a in document.author_rows.all()},
            "is_current": document.availability_status == DocumentStatus.APPROVED,
            "is_archived": document.availability_status == DocumentStatus.ARCHIVED,
        },
    )


@require_GET
@xframe_options_sameorigin
@ps_required
def document_body(request: HttpRequest, ps: PsSession, record: uuid.UUID, unique_id: str) -> HttpResponse:
    """The level 1 body (PDF...) for a sandboxed frame: served with `CSP: sandbox`, never as HTML."""
    _, retrieved = _retrieve(ps, record, unique_id)
    return embedded_body_response(retrieved.content, retrieved.document.mime_type)


@require_GET
@ps_required
def document_raw(request: HttpRequest, ps: PsSession, record: uuid.UUID, unique_id: str) -> HttpResponse:
    _, retrieved = _retrieve(ps, record, unique_id)
    response = HttpResponse(retrieved.content, content_type="application/octet-stream")
    safe_name = "".join(c for c in unique_id if c.isalnum() or c in ".-")[:80] or "document"
    response["Content-Disposition"] = f'attachment; filename="{safe_name}.xml"'
    return sandboxed(response)


_ACTIONS: dict[str, Callable[..., object]] = {
    "archive": lambda caller, uuid_, patient: document_change_status(
        caller=caller, entry_uuid=uuid_, new_status=DocumentStatus.ARCHIVED, patient=patient
    ),
    "unarchive": lambda caller, uuid_, patient: document_change_status(
        caller=caller, entry_uuid=uuid_, new_status=DocumentStatus.APPROVED, patient=patient
    ),
    "delete": lambda caller, uuid_, patient: document_change_status(
        caller=caller, entry_uuid=uuid_, new_status=DocumentStatus.DELETED, patient=patient
    ),
    "mask": lambda caller, uuid_, patient: document_change_confidentiality(
        caller=caller,
        entry_uuid=uuid_,
        change=ConfidentialityChange(code=Confidentiality.MASKED_TO_PROFESSIONALS, enabled=True),
        patient=patient,
    ),
    "unmask": lambda caller, uuid_, patient: document_change_confidentiality(
        caller=caller,
        entry_uuid=uuid_,
        change=ConfidentialityChange(code=Confidentiality.MASKED_TO_PROFESSIONALS, enabled=False),
        patient=patient,
    ),
    "show_patient": lambda caller, uuid_, patient: document_change_confidentiality(
        caller=caller,
        entry_uuid=uuid_,
        change=ConfidentialityChange(code=Confidentiality.INVISIBLE_TO_PATIENT, enabled=False),
        patient=patient,
    ),
    "hide_patient": lambda caller, uuid_, patient: document_change_confidentiality(
        caller=caller,
        entry_uuid=uuid_,
        change=ConfidentialityChange(code=Confidentiality.INVISIBLE_TO_PATIENT, enabled=True),
        patient=patient,
    ),
}


@require_POST
@ps_required
def document_action(request: HttpRequest, ps: PsSession, record: uuid.UUID, unique_id: str) -> HttpResponse:
    form = DocumentActionForm(request.POST)
    if not form.is_valid():
        return _page(request, "refused", {"detail": _("Requête invalide.")}, status=400)
    loaded = _record(record)
    action = form.cleaned_data["action"]
    try:
        # Only this page's patient's documents: an entry UUID of another record's document,
        # posted here, answers as an unknown document.
        _ACTIONS[action](ps.writer(str(record)), form.cleaned_data["entry_uuid"], loaded.patient.identifier)
    except ValidationFailed as error:
        messages.error(request, "; ".join(p.message for p in error.problems))
    except DomainError as error:
        if isinstance(error, (NotFound, Forbidden)):
            raise
        messages.error(request, error.message)
    else:
        messages.success(request, _("Modification enregistrée."))
    if action == "delete":
        return redirect("professional_portal:documents", record=record)
    return redirect("professional_portal:document", record=record, unique_id=unique_id)


# Room for the form's other fields and the multipart framing around a document at the limit.
UPLOAD_FORM_MARGIN = 1024 * 1024


@accepts_body_of(lambda: settings.OPENDMP_MAX_DOCUMENT_BYTES + UPLOAD_FORM_MARGIN)
@require_http_methods(["GET", "POST"])
@ps_required
def upload(request: HttpRequest, ps: PsSession, record: uuid.UUID) -> HttpResponse:
    loaded = _record(record)
    # The page heads with the patient's identity: only what TD0.2 tells this PS. A PS the
    # patient blocked is refused as SOAP and FHIR refuse its feeding (TD0.2 already told it
    # that it is blocked), without the form and the identity.
    if record_test(caller=ps.writer(str(record)), ins=loaded.patient.identifier).patient is None:
        raise Forbidden(f"publication refused: {Reason.BLOCKED.value}")
    initial = {"replaces": request.GET.get("remplace", "")[:64]}
    form = UploadForm(request.POST or None, request.FILES or None, initial=initial)
    context: dict[str, Any] = {"record": loaded, "form": form}
    if request.method != "POST":
        return _page(request, "upload", context)
    if not form.is_valid():
        return _page(request, "upload", context, status=400)
    data = form.cleaned_data
    replaces = data["replaces"]
    replaces_unique_id = ""
    if replaces:
        # The CDA names the document it replaces: the one the server finds behind the entry
        # UUID, visible to this PS and of this record, never an identifier the browser sent.
        try:
            replaced: DocumentEntry | None = document_visible(
                caller=ps.writer(str(record)), entry_uuid=replaces
            )
        except NotFound:
            replaced = None
        if replaced is None or replaced.patient_id != loaded.patient.identifier.hl7():
            form.add_error(None, _("Le document à remplacer est introuvable dans ce DMP."))
            return _page(request, "upload", context, status=400)
        replaces_unique_id = replaced.unique_id
    try:
        submission = submission_from_upload(
            Upload(
                content=data["file"].read(),
                type_code=data["type_code"],
                title=data["title"],
                visibility_codes=VISIBILITY_CODES[data["visibility"]],
                replaces_entry_uuid=replaces,
                replaces_unique_id=replaces_unique_id,
            ),
            professional=ps.professional,
            structure=ps.structure,
            patient=loaded.patient,
        )
        registered = submission_register(
            caller=ps.writer(str(record)), submission=submission, expected_ins=loaded.patient.identifier
        )
    except ValidationFailed as error:
        for problem in error.problems:
            if problem.location in form.fields:
                form.add_error(problem.location, problem.message)
            elif problem.code is ErrorCode.DOCUMENT_TOO_LARGE:  # the CDA built from the file
                form.add_error(
                    "file",
                    _("Le document CDA produit dépasse la taille maximale d'un document du DMP (%(limit)s).")
                    % {"limit": filesizeformat(settings.OPENDMP_MAX_DOCUMENT_BYTES)},
                )
            else:
                form.add_error(
                    None, f"{problem.location}: {problem.message}" if problem.location else problem.message
                )
        return _page(request, "upload", context, status=400)
    except Forbidden as error:
        form.add_error(None, _("Dépôt refusé : %(detail)s") % {"detail": _refusal_text(error)})
        return _page(request, "upload", context, status=403)
    messages.success(request, _("Document déposé dans le DMP."))
    return redirect(
        "professional_portal:document", record=record, unique_id=registered.documents[0].unique_id
    )
