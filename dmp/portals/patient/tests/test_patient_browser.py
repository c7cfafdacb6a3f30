"""A patient's walk through the portal in a real browser (Debian chromium through Playwright).

Activation with the handed-over code, login with the one-time code read from the outbox,
masking a document (then the authorised PS no longer sees it, through the domain selector and
through the SOAP channel with a signed VIHF), blocking a PS (then its access fails on both),
export and re-reading of the XDM ZIP, closure. Screenshots are kept and checked.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from django.db import connections

from dmp.access.policy import RecordStatus
from dmp.accounts.services import account_initialise
from dmp.accounts.tests.helpers import PASSWORD, last_code
from dmp.common.errors import NotFound
from dmp.documents.selectors import DocumentQuery, document_search
from dmp.ihe.xds.ebrim import RIM, DocumentEntryScheme, q
from dmp.ihe.xds.queries import StoredQuery
from dmp.portals.patient.tests.test_patient_portal import publish_for
from dmp.records.models import Record
from opendmp_client.xds import XdsClient, registry_objects

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def _xds_unique_ids(client: XdsClient) -> tuple[bool, set[str]]:
    """FindDocuments (ITI-18) over the SOAP channel, as the PS behind `client`."""
    response = client.stored_query(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{client.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
        },
    )
    ids = set()
    for entry in registry_objects(response, "ExtrinsicObject"):
        for ident in entry.findall(q(RIM, "ExternalIdentifier")):
            if ident.get("identificationScheme") == DocumentEntryScheme.UNIQUE_ID:
                ids.add(ident.get("value", ""))
    return response.ok, ids


def test_a_patient_walks_through_the_portal(
    personas, xds_kit, live_server, tmp_path: Path, monkeypatch
) -> None:
    executable = _chromium()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required on CI")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls made here between
    # browser steps are synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    document = publish_for(personas, personas.alice, title="Compte rendu de cardiologie")
    record = personas.alice.record
    moreau = personas.ps(personas.dr_moreau)
    assert document_search(caller=moreau, record=record, query=DocumentQuery())
    moreau_xds = xds_kit.client(personas.dr_moreau)
    assert _xds_unique_ids(moreau_xds) == (True, {document.unique_id})
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=record,
        otp_channel="email",
        otp_destination="alice@example.org",
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base = f"{live_server.url}/patient"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        context = browser.new_context(locale="fr-FR", accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15000)

        # Activation with the code handed over by the doctor.
        page.goto(f"{base}/activation/")
        page.get_by_label("Code d'activation").fill(code)
        page.get_by_label("Identifiant choisi").fill("alice.martin")
        page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
        page.get_by_label("Confirmez le mot de passe").fill(PASSWORD)
        page.screenshot(path=shots / "01-activation.png")
        page.get_by_role("button", name="Activer").click()
        expect(page.get_by_role("heading", name="Accéder à mon DMP")).to_be_visible()

        # Login: password, then the one-time code from the outbox.
        page.get_by_label("Identifiant").fill("alice.martin")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Continuer").click()
        expect(page.get_by_role("heading", name="Code de connexion")).to_be_visible()
        page.get_by_label("Code de connexion à 6 chiffres").fill(last_code())
        page.screenshot(path=shots / "02-code.png")
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_role("heading", name=re.compile("Dossier médical partagé de"))).to_be_visible()
        page.screenshot(path=shots / "03-home.png")

        # Mask the document: the authorised cardiologist no longer sees it.
        page.get_by_role("link", name="Mes documents").first.click()
        page.get_by_role("link", name="Compte rendu de cardiologie").click()
        page.get_by_role("button", name="Masquer aux professionnels").click()
        expect(page.locator("#visibility")).to_contain_text("Masqué aux professionnels")
        page.screenshot(path=shots / "04-masked.png")
        assert document_search(caller=moreau, record=record, query=DocumentQuery()) == []
        assert _xds_unique_ids(moreau_xds) == (True, set())  # and through the SOAP channel

        # Block the cardiologist: any access of hers now fails.
        page.get_by_role("link", name="Qui peut accéder").first.click()
        page.get_by_role("button", name=re.compile(r"Bloquer .*MOREAU", re.IGNORECASE)).click()
        expect(page.get_by_text("Vos choix d'accès sont enregistrés.")).to_be_visible()
        page.screenshot(path=shots / "05-blocked.png")
        with pytest.raises(NotFound):
            document_search(caller=moreau, record=record, query=DocumentQuery())
        refused, nothing = _xds_unique_ids(moreau_xds)
        assert not refused
        assert nothing == set()

        # Export: download the XDM archive and read it back.
        page.get_by_role("link", name=re.compile("Mon DMP|DMP")).first.click()
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Télécharger tout mon dossier (archive IHE XDM)").click()
        archive_path = tmp_path / "export.zip"
        download_info.value.save_as(archive_path)
        archive = zipfile.ZipFile(io.BytesIO(archive_path.read_bytes()))
        names = archive.namelist()
        assert "IHE_XDM/SUBSET01/METADATA.XML" in names
        assert document.unique_id in archive.read("IHE_XDM/SUBSET01/METADATA.XML").decode()
        assert any(n.startswith("IHE_XDM/SUBSET01/DOC") for n in names)
        assert "TRACES.CSV" in names

        # Closure, with confirmation and password.
        page.goto(f"{base}/fermeture/")
        page.get_by_label(re.compile("Je demande la fermeture de mon DMP")).check()
        page.get_by_label("Mot de passe (confirmation)").fill(PASSWORD)
        page.screenshot(path=shots / "06-closure.png")
        page.get_by_role("button", name="Fermer définitivement mon dossier").click()
        expect(page.get_by_text("Votre dossier est fermé", exact=False).first).to_be_visible()
        page.screenshot(path=shots / "07-closed.png")
        browser.close()
        # The ORM calls above ran in Playwright's event-loop context, which has its own database
        # connection: close it here, or PostgreSQL refuses to drop the test database.
        connections.close_all()

    assert Record.objects.get(pk=record.pk).status == RecordStatus.CLOSED
    expected = [
        "01-activation",
        "02-code",
        "03-home",
        "04-masked",
        "05-blocked",
        "06-closure",
        "07-closed",
    ]
    for name in expected:
        shot = shots / f"{name}.png"
        assert shot.exists(), name
        assert shot.stat().st_size > 1000, name
