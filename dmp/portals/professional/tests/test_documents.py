"""Document index, safe display, sandboxed level 1 body, raw download, upload and lifecycle actions."""

from __future__ import annotations

import hashlib
import html
import re

from django.core.files.uploadedfile import SimpleUploadedFile

from dmp.access.policy import DocumentStatus
from dmp.cda.builder import simple_pdf
from dmp.common import clock
from dmp.documents.builders import DocumentDraft, author_for, cda_patient_for, document_input
from dmp.documents.models import DocumentEntry
from dmp.portals.professional.tests.conftest import publish

HOSTILE = (
    "<paragraph>Bonjour<script>window.__pwned = 1</script></paragraph>"
    '<paragraph><linkHtml href="javascript:window.__pwned=2">clic</linkHtml></paragraph>'
)


def docs_url(personas, suffix=""):
    return f"/pro/dossier/{personas.alice.record.public_id}/{suffix}"


def doc_url(personas, document, suffix=""):
    return docs_url(personas, f"document/{document.unique_id}/{suffix}")


def test_the_index_lists_visible_documents_with_filters(personas, login):
    publish(
        personas,
        personas.dr_bernard,
        [DocumentDraft(title="Consultation du 3"), DocumentDraft(type_code="18748-4", title="Radio thorax")],
    )
    client = login(personas.dr_moreau)
    page = client.get(docs_url(personas, "documents")).content.decode()
    assert "Consultation du 3" in page
    assert "Radio thorax" in page
    only_imaging = client.get(docs_url(personas, "documents"), {"type_code": "18748-4"}).content.decode()
    assert "Radio thorax" in only_imaging
    assert "Consultation du 3" not in only_imaging
    future = client.get(docs_url(personas, "documents"), {"date_from": "2999-01-01"}).content.decode()
    assert "Radio thorax" not in future
    bad = client.get(docs_url(personas, "documents"), {"date_from": "not-a-date"})
    assert bad.status_code == 400


def test_archived_and_replaced_documents_show_only_when_asked(personas, login):
    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="A archiver")])
    client = login(personas.dr_bernard)
    archived = client.post(
        doc_url(personas, document, "action"), {"action": "archive", "entry_uuid": document.entry_uuid}
    )
    assert archived.status_code == 302
    assert (
        DocumentEntry.objects.get(unique_id=document.unique_id).availability_status == DocumentStatus.ARCHIVED
    )
    assert "A archiver" not in client.get(docs_url(personas, "documents")).content.decode()
    shown = client.get(docs_url(personas, "documents"), {"status": ["archived"]}).content.decode()
    assert "A archiver" in shown
    assert "archivé" in shown


def test_a_masked_document_is_absent_for_a_ps_who_is_not_medecin_traitant(personas, login):
    (masked,) = publish(
        personas,
        personas.dr_moreau,
        [DocumentDraft(title="Document masque", confidentiality=("N", "MASQUE_PS"))],
    )
    nurse = login(personas.nurse_robert)
    assert "Document masque" not in nurse.get(docs_url(personas, "documents")).content.decode()
    assert nurse.get(doc_url(personas, masked)).status_code == 404
    assert nurse.get(doc_url(personas, masked, "brut")).status_code == 404
    # The médecin traitant and the author see it, flagged.
    for professional in (personas.dr_bernard, personas.dr_moreau):
        page = login(professional).get(docs_url(personas, "documents")).content.decode()
        assert "Document masque" in page
        assert "masqué aux PS" in page


def test_the_matrix_hides_a_document_type_from_a_profession(personas, login):
    consultation, imaging = publish(
        personas,
        personas.dr_bernard,
        [DocumentDraft(title="Consultation podo"), DocumentDraft(type_code="18748-4", title="Radio du pied")],
    )
    client = login(personas.podiatrist_garnier)
    page = client.get(docs_url(personas, "documents")).content.decode()
    assert "Consultation podo" in page
    assert "Radio du pied" not in page
    assert client.get(doc_url(personas, imaging)).status_code == 404
    assert client.get(doc_url(personas, consultation)).status_code == 200


def test_a_document_of_another_record_is_not_served_under_this_one(personas, login):
    (leo_document,) = publish(
        personas, personas.dr_bernard, [DocumentDraft(title="Léo")], patient=personas.leo
    )
    client = login(personas.dr_bernard)
    assert client.get(doc_url(personas, leo_document)).status_code == 404


def test_the_document_page_renders_the_cda_under_a_strict_csp(personas, login):
    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="Consultation")])
    client = login(personas.dr_bernard)
    response = client.get(doc_url(personas, document))
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "Examen clinique sans particularité." in response.content.decode()


def hostile_document(personas) -> DocumentEntry:
    """A CDA whose narrative carries a script and a javascript: link, published by Dr Bernard."""
    when = clock.now().replace(microsecond=0)
    draft = DocumentDraft(title="Hostile", paragraphs=("BODY_SLOT",), creation_time=when)
    professional = personas.dr_bernard
    author = author_for(
        person_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        structure_id=personas.cabinet.id_nat,
        structure_name=personas.cabinet.name,
    )
    content = document_input(draft, ins=personas.alice.identifier, author=author, symbolic_id="D").content
    evil = content.replace(b"<paragraph>BODY_SLOT</paragraph>", HOSTILE.encode())
    assert evil != content
    (document,) = publish(
        personas,
        professional,
        [DocumentDraft(content=evil, title="Hostile", unique_id=draft.unique_id, creation_time=when)],
    )
    return document


def test_a_hostile_narrative_is_neutralised(personas, login):
    client = login(personas.dr_bernard)
    document = hostile_document(personas)
    page = client.get(doc_url(personas, document)).content.decode()
    assert "Bonjour" in page
    assert "<script>window" not in page  # reduced to inert text
    assert "javascript:" not in page


def test_a_level_1_pdf_body_is_served_sandboxed_and_raw_download_is_an_attachment(personas, login):
    pdf = simple_pdf("Ordonnance", ["Paracétamol"])
    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="PDF", pdf=pdf)])
    client = login(personas.dr_bernard)
    page = client.get(doc_url(personas, document)).content.decode()
    assert "<iframe" in page
    assert "sandbox" in page
    body = client.get(doc_url(personas, document, "corps"))
    assert body.status_code == 200
    assert body["Content-Type"] == "application/pdf"
    assert body["Content-Security-Policy"].startswith("sandbox")
    assert body["X-Frame-Options"] == "SAMEORIGIN"
    assert body.content == pdf
    raw = client.get(doc_url(personas, document, "brut"))
    assert raw["Content-Type"] == "application/octet-stream"
    assert raw["Content-Disposition"].startswith("attachment")
    assert raw["Content-Security-Policy"].startswith("sandbox")
    assert hashlib.sha256(raw.content).hexdigest() == DocumentEntry.objects.get(pk=document.pk).hash_sha256
    # A structured document has no body to frame.
    (structured,) = publish(personas, personas.dr_bernard, [DocumentDraft()])
    assert client.get(doc_url(personas, structured, "corps")).status_code == 404


def upload(client, personas, content, name="doc.pdf", headers=None, **fields):
    data: dict[str, object] = {"type_code": "11488-4", "title": "Compte rendu déposé", "visibility": "normal"}
    data.update(fields)
    data["file"] = SimpleUploadedFile(name, content)
    return client.post(docs_url(personas, "ajouter"), data, headers=headers)


def test_a_pdf_is_uploaded_wrapped_in_cda_level_1_invisible_to_the_patient_then_shown(personas, login):
    client = login(personas.dr_moreau)
    assert client.get(docs_url(personas, "ajouter")).status_code == 200
    response = upload(client, personas, simple_pdf("CR", ["Annonce"]), visibility="invisible_patient")
    assert response.status_code == 302, response.content.decode()
    document = DocumentEntry.objects.get(title="Compte rendu déposé")
    assert document.invisible_to_patient
    assert document.format_code == "urn:ihe:iti:xds-sd:pdf:2008"
    page = client.get(response["Location"]).content.decode()
    assert 'id="invisible-alert"' in page
    shown = client.post(
        doc_url(personas, document, "action"), {"action": "show_patient", "entry_uuid": document.entry_uuid}
    )
    assert shown.status_code == 302
    assert not DocumentEntry.objects.get(unique_id=document.unique_id).invisible_to_patient


def test_a_masked_upload_then_unmasking_by_its_author(personas, login):
    client = login(personas.dr_moreau)
    upload(client, personas, simple_pdf("CR", ["x"]), visibility="masked", title="Masque au depot")
    document = DocumentEntry.objects.get(title="Masque au depot")
    assert document.masked_to_professionals
    assert (
        "Masque au depot"
        not in login(personas.nurse_robert).get(docs_url(personas, "documents")).content.decode()
    )
    client.post(
        doc_url(personas, document, "action"), {"action": "unmask", "entry_uuid": document.entry_uuid}
    )
    assert not DocumentEntry.objects.get(unique_id=document.unique_id).masked_to_professionals


def bernard_cda_for_alice(personas, title):
    """A CDA document of Dr Bernard for Alice, with its metadata, as his software would make it."""
    return document_input(
        DocumentDraft(title=title),
        ins=personas.alice.identifier,
        author=author_for(
            person_id=personas.dr_bernard.national_id,
            family_name="Lefèvre",
            given_name="Bernard",
            structure_id=personas.cabinet.id_nat,
            structure_name=personas.cabinet.name,
        ),
        symbolic_id="Document01",
        patient=cda_patient_for(personas.alice.identifier, family_name="Martin", given_names="Alice"),
    )


def test_a_cda_file_is_uploaded_as_is(personas, login):
    client = login(personas.dr_bernard)
    document = bernard_cda_for_alice(personas, "CDA fourni")
    response = upload(
        client, personas, document.content, name="cr.xml", visibility="invisible_representatives"
    )
    assert response.status_code == 302, response.content.decode()
    stored = DocumentEntry.objects.get(unique_id=document.unique_id)
    assert stored.title == "CDA fourni"
    assert stored.invisible_to_legal_representatives


def test_a_cda_file_the_dmp_refuses_is_explained_in_french(personas, login):
    """The CDA and metadata checks speak the page's language (they were English on French pages);
    the web services give vendors the same problems in English."""
    client = login(personas.dr_bernard)
    document = bernard_cda_for_alice(personas, "Deux patients")
    target = re.search(rb"<recordTarget>.*?</recordTarget>", document.content, re.S)
    assert target is not None
    twice = document.content.replace(target.group(0), target.group(0) * 2, 1)
    before = DocumentEntry.objects.count()
    response = upload(client, personas, twice, name="cr.xml")
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "un seul recordTarget est admis" in page
    assert "only one recordTarget" not in page
    english = upload(client, personas, twice, name="cr.xml", headers={"Accept-Language": "en"})
    assert "only one recordTarget is allowed" in html.unescape(english.content.decode())
    assert DocumentEntry.objects.count() == before


def test_a_bad_file_or_a_forbidden_type_registers_nothing(personas, login):
    before = DocumentEntry.objects.count()
    client = login(personas.dr_bernard)
    assert upload(client, personas, b"<not-cda/>", name="x.xml").status_code == 400
    assert (
        upload(client, personas, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", name="x.xml").status_code == 400
    )
    # A CDA whose type code is outside the DMP value sets: a form error (it was a server error).
    unknown_type = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
        b'<code code="XYZ" codeSystem="2.16.840.1.113883.6.1"/></ClinicalDocument>'
    )
    answer = upload(client, personas, unknown_type, name="x.xml")
    assert answer.status_code == 400
    podiatrist = login(personas.podiatrist_garnier)
    refused = upload(podiatrist, personas, simple_pdf("R", ["x"]), type_code="18748-4")
    assert refused.status_code == 403
    assert DocumentEntry.objects.count() == before


def test_the_author_replaces_then_deletes_and_others_cannot_delete(personas, login):
    (original,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="Version 1")])
    other = login(personas.dr_moreau)
    refused = other.post(
        doc_url(personas, original, "action"), {"action": "delete", "entry_uuid": original.entry_uuid}
    )
    # The document is on Dr Moreau's screen: a "not found" page would misstate it.
    assert refused.status_code == 403
    assert "Seul l&#x27;auteur du document peut le faire" in refused.content.decode()
    assert DocumentEntry.objects.get(pk=original.pk).availability_status == DocumentStatus.APPROVED
    client = login(personas.dr_bernard)
    page = client.get(doc_url(personas, original)).content.decode()
    assert "remplace=" in page
    response = client.post(
        docs_url(personas, f"ajouter?remplace={original.entry_uuid}"),
        {
            "type_code": "11488-4",
            "title": "Version 2",
            "visibility": "normal",
            "replaces": original.entry_uuid,
            "replaces_unique_id": original.unique_id,
            "file": SimpleUploadedFile("v2.pdf", simple_pdf("V2", ["x"])),
        },
    )
    assert response.status_code == 302, response.content.decode()
    assert DocumentEntry.objects.get(pk=original.pk).availability_status == DocumentStatus.DEPRECATED
    replacement = DocumentEntry.objects.get(title="Version 2")
    deleted = client.post(
        doc_url(personas, replacement, "action"), {"action": "delete", "entry_uuid": replacement.entry_uuid}
    )
    assert deleted.status_code == 302
    assert DocumentEntry.objects.get(pk=replacement.pk).availability_status == DocumentStatus.DELETED
    assert client.get(doc_url(personas, replacement)).status_code == 404


def test_document_actions_enforce_csrf(personas, demo):
    from django.test import Client

    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="CSRF")])
    strict = Client(enforce_csrf_checks=True)
    strict.get("/pro/connexion/")
    token = strict.cookies["csrftoken"].value
    strict.post(
        "/pro/connexion/demo", {"professional": personas.dr_bernard.national_id, "csrfmiddlewaretoken": token}
    )
    response = strict.post(
        doc_url(personas, document, "action"), {"action": "archive", "entry_uuid": document.entry_uuid}
    )
    assert response.status_code == 403
    assert DocumentEntry.objects.get(pk=document.pk).availability_status == DocumentStatus.APPROVED
    upload_refused = strict.post(
        docs_url(personas, "ajouter"),
        {
            "type_code": "11488-4",
            "title": "x",
            "visibility": "normal",
            "file": SimpleUploadedFile("a.pdf", b"%PDF-1"),
        },
    )
    assert upload_refused.status_code == 403


def test_a_level_1_body_the_browser_should_not_render_is_served_as_an_attachment(personas, login):
    import base64

    when = clock.now().replace(microsecond=0)
    pdf = simple_pdf("x", ["y"])
    draft = DocumentDraft(title="Corps HTML", pdf=pdf, creation_time=when)
    professional = personas.dr_bernard
    author = author_for(
        person_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        structure_id=personas.cabinet.id_nat,
        structure_name=personas.cabinet.name,
    )
    content = document_input(draft, ins=personas.alice.identifier, author=author, symbolic_id="D").content
    html = base64.b64encode(b"<script>alert(1)</script>").decode()
    evil = content.replace(b'mediaType="application/pdf"', b'mediaType="text/rtf"').replace(
        base64.b64encode(pdf), html.encode()
    )
    assert b"text/rtf" in evil  # text/html is refused at submission (dmp.cda.validation)
    (document,) = publish(
        personas,
        professional,
        [
            DocumentDraft(
                content=evil,
                title="Corps HTML",
                unique_id=draft.unique_id,
                creation_time=when,
                format_code="urn:ihe:iti-fr:xds-sd:rtf:2010",
            )
        ],
    )
    client = login(professional)
    body = client.get(doc_url(personas, document, "corps"))
    assert body.status_code == 200
    assert body["Content-Type"] == "application/octet-stream"
    assert body["Content-Disposition"] == "attachment"
    assert body["Content-Security-Policy"].startswith("sandbox")


def test_in_break_glass_the_ps_still_feeds_the_record_and_acts_on_its_own_documents(personas, login):
    """Break-glass opens the record for reading; feeding it and archiving one's own document need
    no authorisation, and stay possible in normal mode during the emergency."""
    client = login(personas.dr_petit)  # not authorised on Alice's record
    assert upload(client, personas, simple_pdf("A", ["x"]), title="Avant urgence").status_code == 302
    before = DocumentEntry.objects.get(title="Avant urgence")
    opened = client.post(
        docs_url(personas, "urgence"), {"mode": "bris_de_glace", "reason": "Patiente inconsciente"}
    )
    assert opened.status_code == 302
    during = upload(client, personas, simple_pdf("B", ["y"]), title="Pendant urgence")
    assert during.status_code == 302, during.content.decode()
    assert DocumentEntry.objects.filter(title="Pendant urgence").exists()
    archived = client.post(
        doc_url(personas, before, "action"), {"action": "archive", "entry_uuid": before.entry_uuid}
    )
    assert archived.status_code == 302
    assert DocumentEntry.objects.get(pk=before.pk).availability_status == DocumentStatus.ARCHIVED
    assert client.session["pro"]["emergency"] is not None


def test_a_document_action_reaches_only_the_documents_of_the_pages_record(personas, login):
    (leo_document,) = publish(
        personas, personas.dr_bernard, [DocumentDraft(title="Léo")], patient=personas.leo
    )
    (alice_document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="Alice")])
    client = login(personas.dr_bernard)
    for action in ("archive", "mask", "delete"):
        response = client.post(
            doc_url(personas, alice_document, "action"),
            {"action": action, "entry_uuid": leo_document.entry_uuid},
        )
        assert response.status_code == 404
    leo_document.refresh_from_db()
    assert leo_document.availability_status == DocumentStatus.APPROVED
    assert not leo_document.masked_to_professionals
    assert DocumentEntry.objects.filter(unique_id=leo_document.unique_id).count() == 1


def test_a_file_over_the_document_limit_is_refused_before_it_is_read(personas, login, settings):
    settings.OPENDMP_MAX_DOCUMENT_BYTES = 64 * 1024
    client = login(personas.dr_bernard)
    before = DocumentEntry.objects.count()
    pdf = simple_pdf("Gros", ["x"])
    response = upload(client, personas, pdf + b"%" + b"A" * (80 * 1024) + b"\n%%EOF\n")
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert re.search(
        r'id="id_file_error"><p class="error">Le fichier \(8\d,\d\sKio\) '
        r"dépasse la taille maximale d'un document du DMP "
        r"\(64,0\sKio\)\.",
        page,
    )
    # A PDF whose CDA (a third larger) would exceed the limit is refused before it is wrapped.
    wrapped = upload(client, personas, pdf + b"%" + b"A" * (56 * 1024) + b"\n%%EOF\n")
    assert wrapped.status_code == 400
    assert (
        'id="id_file_error"><p class="error">Intégré au document CDA, ce PDF dépasserait'
        in wrapped.content.decode()
    )
    assert DocumentEntry.objects.count() == before
    # The size the message promises holds: a PDF just under it is registered (one just under the
    # old figure, which left out the CDA header, was refused in English, found by review).
    promised = re.search(
        r"un PDF peut faire au plus (\d+),(\d)\sKio", html.unescape(wrapped.content.decode())
    )
    assert promised
    size = int(promised[1]) * 1024 + int(promised[2]) * 1024 // 10 - 200
    fits = upload(client, personas, pdf + b"%" + b"A" * (size - len(pdf) - 8) + b"\n%%EOF\n", title="Au plus")
    assert fits.status_code == 302, html.unescape(fits.content.decode())[-1500:]
    assert DocumentEntry.objects.count() == before + 1


def test_a_level_1_pdf_over_7_5_mb_within_the_limit_is_accepted(personas, login):
    """Its base64 text node is over libxml2's default 10 MB limit on text."""
    client = login(personas.dr_bernard)
    pdf = simple_pdf("Scan", ["page"])
    big = pdf + b"%" + b"A" * (8 * 1024 * 1024) + b"\n%%EOF\n"
    response = upload(client, personas, big, title="Scan 8 Mo")
    assert response.status_code == 302, response.content.decode()[-2000:]
    document = DocumentEntry.objects.get(title="Scan 8 Mo")
    assert client.get(doc_url(personas, document, "corps")).content == big


def test_a_replacement_names_the_replaced_document_found_by_the_server(personas, login):
    first, other = publish(
        personas, personas.dr_bernard, [DocumentDraft(title="Premier"), DocumentDraft(title="Autre")]
    )
    client = login(personas.dr_bernard)
    form = client.get(docs_url(personas, f"ajouter?remplace={first.entry_uuid}")).content.decode()
    assert other.unique_id not in form
    response = client.post(
        docs_url(personas, f"ajouter?remplace={first.entry_uuid}"),
        {
            "type_code": "11488-4",
            "title": "Premier v2",
            "visibility": "normal",
            "replaces": first.entry_uuid,
            "replaces_unique_id": other.unique_id,  # a forged field: ignored
            "file": SimpleUploadedFile("v2.pdf", simple_pdf("V2", ["x"])),
        },
    )
    assert response.status_code == 302, response.content.decode()
    replacement = DocumentEntry.objects.get(title="Premier v2")
    content = client.get(doc_url(personas, replacement, "brut")).content.decode()
    parent = content.split("<parentDocument>", 1)[1].split("</parentDocument>", 1)[0]
    assert first.unique_id.split("^")[0] in parent
    assert other.unique_id.split("^")[0] not in parent
    assert DocumentEntry.objects.get(pk=first.pk).availability_status == DocumentStatus.DEPRECATED
    assert DocumentEntry.objects.get(pk=other.pk).availability_status == DocumentStatus.APPROVED


def test_a_replacement_of_a_document_of_another_record_registers_nothing(personas, login):
    (leo_document,) = publish(
        personas, personas.dr_bernard, [DocumentDraft(title="Léo")], patient=personas.leo
    )
    client = login(personas.dr_bernard)
    before = DocumentEntry.objects.count()
    response = upload(client, personas, simple_pdf("V2", ["x"]), replaces=leo_document.entry_uuid)
    assert response.status_code == 400
    assert "Le document à remplacer est introuvable dans ce DMP." in response.content.decode()
    assert DocumentEntry.objects.count() == before
    assert DocumentEntry.objects.get(pk=leo_document.pk).availability_status == DocumentStatus.APPROVED


def test_a_file_that_only_starts_like_a_pdf_is_a_form_error(personas, login):
    client = login(personas.dr_bernard)
    before = DocumentEntry.objects.count()
    pdf = simple_pdf("CR", ["x"])
    for content in (b"%PDF-", b"%PDF-1.4 x", b"%PDF-x.y\n" + pdf[9:], pdf[: len(pdf) // 2]):
        response = upload(client, personas, content)
        assert response.status_code == 400
        assert (
            'id="id_file_error"><p class="error">Ce fichier n&#x27;est pas un PDF complet'
            in response.content.decode()
        )
    assert DocumentEntry.objects.count() == before


def test_upload_refusals_are_told_in_french(personas, login):
    before = DocumentEntry.objects.count()
    podiatrist = login(personas.podiatrist_garnier)
    refused = upload(podiatrist, personas, simple_pdf("R", ["x"]), type_code="18748-4")
    assert refused.status_code == 403
    page = html.unescape(refused.content.decode())
    assert "Dépôt refusé : votre profession ne permet pas cette action pour ce type de document" in page
    assert "not allowed" not in page
    untitled = upload(login(personas.dr_bernard), personas, simple_pdf("R", ["x"]), title=" ")
    assert untitled.status_code == 400
    assert (
        'id="id_title_error"><p class="error">Un titre est obligatoire pour un PDF.'
        in untitled.content.decode()
    )
    assert DocumentEntry.objects.count() == before


def test_a_refused_document_action_is_explained_in_the_pages_language(personas, login):
    """The domain's reasons reach the page translated (they were shown in English to French
    readers); the web services keep answering in English whatever the request asks."""
    (document,) = publish(personas, personas.dr_bernard, [DocumentDraft(title="Déjà courant")])
    client = login(personas.dr_bernard)
    url = doc_url(personas, document, "action")
    unarchive = {"action": "unarchive", "entry_uuid": document.entry_uuid}  # it is not archived
    versions = DocumentEntry.objects.filter(unique_id=document.unique_id).count()
    french = client.post(url, unarchive, follow=True).content.decode()
    assert (
        '<li class="alert">Passage du statut urn:oasis:names:tc:ebxml-regrep:StatusType:Approved à' in french
    )
    english = client.post(url, unarchive, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert (
        '<li class="alert">cannot change status from urn:oasis:names:tc:ebxml-regrep:StatusType:Approved'
        in english
    )
    assert DocumentEntry.objects.filter(unique_id=document.unique_id).count() == versions
    for path in ("/ihe/xds/", "/fhir/metadata"):
        assert client.get(path, HTTP_ACCEPT_LANGUAGE="fr")["Content-Language"] == "en"
