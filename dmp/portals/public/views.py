"""Communication portal: public information, FAQ, compatible software, contact form."""

from __future__ import annotations

from collections.abc import Callable

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from dmp.common.addresses import budget_key, client_address
from dmp.common.errors import ValidationFailed
from dmp.compat.models import SoftwareProduct
from dmp.portals.public.forms import ContactForm
from dmp.support.models import Ticket
from dmp.support.services import TicketRequest, ticket_open

CONTACT_LIMIT_PER_HOUR = 5


def _page(template: str) -> Callable[[HttpRequest], HttpResponse]:
    @require_GET
    def view(request: HttpRequest) -> HttpResponse:
        return render(request, f"public_portal/{template}.html")

    view.__name__ = template
    return view


home = _page("home")
patients = _page("patients")
professionals = _page("professionals")
faq = _page("faq")
accessibility = _page("accessibility")
legal = _page("legal")


@require_GET
def compatible_software(request: HttpRequest) -> HttpResponse:
    products = SoftwareProduct.objects.filter(is_public=True, status=SoftwareProduct.Status.ACTIVE).order_by(
        "vendor", "name"
    )
    return render(request, "public_portal/compatible_software.html", {"products": products})


def _client_key(request: HttpRequest) -> str:
    return f"public-contact:{budget_key(client_address(request))}"


@require_http_methods(["GET", "POST"])
def contact(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST or None)
    reference = ""
    if request.method == "POST" and form.is_valid():
        key = _client_key(request)
        if int(cache.get(key, 0)) >= CONTACT_LIMIT_PER_HOUR:
            form.add_error(None, gettext("Trop de demandes envoyées ; réessayez dans une heure."))
        elif form.cleaned_data["website"]:
            reference = "—"  # silently drop what a robot sent
        else:
            data = {k: v for k, v in form.cleaned_data.items() if k != "website"}
            try:
                ticket = ticket_open(
                    TicketRequest(channel=Ticket.Channel.WEB, **data), author="formulaire public"
                )
            except ValidationFailed as error:
                for problem in error.problems:
                    form.add_error(
                        problem.location if problem.location in form.fields else None, problem.message
                    )
            else:
                cache.add(key, 0, timeout=3600)
                cache.incr(key)
                reference = ticket.reference
    return render(request, "public_portal/contact.html", {"form": form, "reference": reference})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
