"""Bodies are bounded before anything reads them: a small limit for forms, more for the upload.

DATA_UPLOAD_MAX_MEMORY_SIZE bounds only form fields; the file parts of a multipart body were
spooled to disk whatever their size as soon as the CSRF check read the form, before any login
(found by review): an anonymous client could fill the temporary disk through any form URL.
"""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from dmp.accounts.models import LoginChallenge
from dmp.audit.models import AuditEvent
from dmp.documents.models import DocumentEntry
from dmp.portals.professional.tests.conftest import login_as
from dmp.portals.professional.views import UPLOAD_FORM_MARGIN

FORM_LIMIT = 64 * 1024


def junk(size: int) -> SimpleUploadedFile:
    return SimpleUploadedFile("junk.bin", b"\0" * size, content_type="application/octet-stream")


def test_an_anonymous_upload_to_a_login_form_is_refused_unread(personas, settings):
    settings.OPENDMP_MAX_FORM_BYTES = FORM_LIMIT
    events = AuditEvent.objects.count()
    refused = Client().post(
        "/patient/connexion/", {"identifier": "x", "password": "y", "file": junk(FORM_LIMIT)}
    )
    assert refused.status_code == 413
    assert "taille maximale" in refused.content.decode()
    # The view never ran: no login attempt was traced, no code was sent.
    assert AuditEvent.objects.count() == events
    assert not LoginChallenge.objects.exists()
    english = Client(HTTP_ACCEPT_LANGUAGE="en").post("/staff/login/", {"file": junk(FORM_LIMIT)})
    assert english.status_code == 413
    assert "maximum size" in english.content.decode()
    # An ordinary form is still served.
    assert Client().post("/patient/connexion/", {"identifier": "x", "password": "y"}).status_code == 200


def test_a_body_of_undeclared_length_is_refused(personas):
    refused = Client().post(
        "/patient/connexion/", {"identifier": "x", "password": "y"}, HTTP_TRANSFER_ENCODING="chunked"
    )
    assert refused.status_code == 411
    assert not LoginChallenge.objects.exists()


def test_the_upload_form_takes_a_document_at_the_limit_and_nothing_much_larger(personas, settings):
    settings.DEMO = True
    settings.OPENDMP_MAX_FORM_BYTES = FORM_LIMIT
    settings.OPENDMP_MAX_DOCUMENT_BYTES = 2 * FORM_LIMIT
    client = login_as(Client(), personas.dr_bernard)
    url = f"/pro/dossier/{personas.alice.record.public_id}/ajouter"
    before = DocumentEntry.objects.count()
    # Over the document limit but within the margin: the form says why (its own message).
    within = client.post(url, {"title": "Gros", "file": junk(2 * FORM_LIMIT + 1)})
    assert within.status_code == 400
    too_large = client.post(url, {"title": "Énorme", "file": junk(2 * FORM_LIMIT + UPLOAD_FORM_MARGIN)})
    assert too_large.status_code == 413
    assert DocumentEntry.objects.count() == before
    # Another PS portal form keeps the small limit.
    assert client.post("/pro/recherche", {"ins": "x", "file": junk(FORM_LIMIT)}).status_code == 413


def test_the_web_services_bound_their_own_bodies(personas, settings):
    settings.OPENDMP_MAX_FORM_BYTES = FORM_LIMIT
    soap = Client().post("/ihe/xds/", b"<x/>" * FORM_LIMIT, content_type="application/soap+xml")
    assert soap.status_code == 400  # a SOAP fault, not the portals' 413
    assert b"Envelope" in soap.content
    token = Client().post("/fhir/token", {"grant_type": "client_credentials", "padding": "x" * FORM_LIMIT})
    assert token.status_code == 400
    assert token.json() == {"error": "unsupported_grant_type"}
