"""A TD0.9 link asked for in a minor's secret connection opens the portal in that secret connection,
on that minor's record only."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.cda.builder import simple_pdf
from dmp.documents.builders import DocumentDraft
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import DocumentQuery, document_search, record_traces_shown
from dmp.portals.professional.links import contextual_link
from dmp.portals.professional.tests.conftest import publish


def open_link(client, personas, patient, *, secret_connection):
    link = contextual_link(
        professional_id=personas.dr_bernard.national_id,
        ins=patient.identifier,
        page="documents",
        secret_connection=secret_connection,
    )
    response = client.get(link)
    assert response.status_code == 302
    return response["Location"]


def upload(client, patient, title):
    return client.post(
        f"/pro/dossier/{patient.record.public_id}/ajouter",
        {
            "type_code": "11488-4",
            "title": title,
            "visibility": "normal",
            "file": SimpleUploadedFile("cr.pdf", simple_pdf(title, ["Consultation"])),
        },
    )


def queries_by_bernard(personas, patient):
    return AuditEvent.objects.filter(
        action=AuditAction.DOCUMENT_QUERY,
        actor_id=personas.dr_bernard.national_id,
        record_id=patient.record.pk,
    )


def test_what_the_ps_does_in_a_secret_portal_session_is_hidden_from_the_parents(personas, client):
    leo = personas.leo
    (ordinary,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="Vaccins")], patient=leo)
    before = AuditEvent.objects.latest("pk").pk
    page = client.get(open_link(client, personas, leo, secret_connection=True))
    assert page.status_code == 200
    assert 'id="secret-connection"' in page.content.decode()
    assert queries_by_bernard(personas, leo).get().details.get("secret_connection") is True
    mother = personas.representative(personas.alice_as_mother)
    shown = record_traces_shown(caller=mother, record=leo.record)
    assert not shown.filter(actor_id=personas.dr_bernard.national_id, action=AuditAction.DOCUMENT_QUERY)
    # An upload is forced invisible to the legal representatives, whatever the form said.
    assert upload(client, leo, "Consultation confidentielle").status_code == 302
    document = DocumentEntry.objects.get(title="Consultation confidentielle")
    assert document.invisible_to_legal_representatives
    listed = document_search(caller=mother, record=leo.record, query=DocumentQuery())
    assert {row.document.unique_id for row in listed} == {ordinary.unique_id}
    assert AuditEvent.objects.filter(pk__gt=before, actor_id=personas.dr_bernard.national_id).count() >= 3
    assert not shown.filter(pk__gt=before, actor_id=personas.dr_bernard.national_id)


def test_the_secret_connection_stays_on_the_record_it_was_asked_for(personas, client):
    """Alice's pages, in the same session, are ordinary: the secret connection was Léo's."""
    alice = personas.alice
    open_link(client, personas, personas.leo, secret_connection=True)
    page = client.get(f"/pro/dossier/{alice.record.public_id}/documents")
    assert page.status_code == 200
    assert 'id="secret-connection"' not in page.content.decode()
    assert "secret_connection" not in queries_by_bernard(personas, alice).get().details
    assert upload(client, alice, "Consultation ordinaire").status_code == 302
    assert not DocumentEntry.objects.get(title="Consultation ordinaire").invisible_to_legal_representatives


def test_an_ordinary_link_opens_an_ordinary_session(personas, client):
    leo = personas.leo
    page = client.get(open_link(client, personas, leo, secret_connection=False))
    assert 'id="secret-connection"' not in page.content.decode()
    assert "secret_connection" not in queries_by_bernard(personas, leo).get().details


def test_the_secret_connection_notice_is_in_french_with_an_english_translation(personas, client):
    leo = personas.leo
    location = open_link(client, personas, leo, secret_connection=True)
    french = client.get(location).content.decode()
    assert "Connexion secrète : ce que vous faites dans ce DMP est caché" in french
    english = client.get(location, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Secret connection:" in english
    assert "Connexion secrète" not in english
