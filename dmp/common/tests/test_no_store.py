"""Pages and downloads behind a login are marked no-store; public pages and static files are not.

Document pages, their PDF, the record's export, the security page showing a TOTP secret and the
PS portal's record and document pages were cacheable (found by review): on a shared
workstation the browser's cache, and Back after logout, showed them to the next user.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from dmp.accounts.tests.helpers import active_account
from dmp.common.staff import HELPDESK_GROUP, OPERATOR_GROUP
from dmp.documents.builders import DocumentDraft
from dmp.portals.patient.tests.test_patient_portal import login, publish_for, url
from dmp.portals.professional.tests.conftest import login_as, publish


def staff_client(name, group):
    user = get_user_model().objects.create_user(name, password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    client = Client()
    client.force_login(user)
    return client


def assert_no_store(client, path, status=200):
    response = client.get(path)
    assert response.status_code == status, path
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= directives, path


def test_the_patients_documents_export_and_security_page_are_not_stored(personas):
    document = publish_for(personas, personas.alice)
    active_account(personas)
    client = Client()
    login(client)
    for path in (
        url("home"),
        url("documents"),
        url("document", document.unique_id),
        url("document_pdf", document.unique_id),
        url("export_zip"),
        url("summary_pdf"),
        url("security"),
    ):
        assert_no_store(client, path)


def test_the_professionals_record_and_document_pages_are_not_stored(personas, settings):
    settings.DEMO = True
    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft()])
    client = login_as(Client(), personas.dr_bernard)
    record = f"/pro/dossier/{personas.alice.record.public_id}/"
    for path in ("/pro/", record, f"{record}documents", f"{record}document/{document.unique_id}/"):
        assert_no_store(client, path)
    # After logout, the same address is a redirection to the login page, itself not stored.
    client.post("/pro/deconnexion")
    assert_no_store(client, f"{record}document/{document.unique_id}/", status=302)


def test_helpdesk_and_operator_pages_are_not_stored(personas):
    assert_no_store(staff_client("agent", HELPDESK_GROUP), "/support/")
    operator = staff_client("ops", OPERATOR_GROUP)
    assert_no_store(operator, "/pilotage/")
    assert_no_store(operator, "/pilotage/panel")
    # The login page keeps the header its view chose (never_cache), which includes no-store.
    assert_no_store(Client(), "/staff/login/")


def test_public_pages_and_static_files_keep_their_caching(db, client):
    assert "Cache-Control" not in client.get("/")
    assert "Cache-Control" not in client.get("/static/css/site.css")
