"""The main PS flows in a real browser (Debian chromium through Playwright), screenshots included.

Login with a demo CPS card, find a record, create one, upload a PDF, view it, mask it,
break-glass with its banner; a hostile CDA runs no script.
"""

from __future__ import annotations

import os
import shutil

import pytest

from dmp.cda.builder import simple_pdf
from dmp.portals.professional.tests.test_documents import hostile_document


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def scene(personas):
    """Everything read from the database, prepared before Playwright runs its event loop."""
    return {
        "bernard": personas.dr_bernard.national_id,
        "petit": personas.dr_petit.national_id,
        "alice_ins": personas.alice.ins,
        "alice_authority": personas.alice.ins_authority,
        "bob": personas.bob_traits,
        "record": str(personas.alice.record.public_id),
        "hostile": hostile_document(personas).unique_id,
    }


@pytest.fixture
def browser_page(scene, live_server, settings):
    executable = _chromium()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required on CI")
        pytest.skip("Debian chromium is not installed")
    settings.DEMO = True
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        context = browser.new_context(locale="fr-FR")
        page = context.new_page()
        page.set_default_timeout(15000)
        dialogs: list[str] = []

        def on_dialog(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.dialogs = dialogs  # type: ignore[attr-defined]
        yield page
        browser.close()


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, base, national_id):
    page.goto(f"{base}/pro/connexion/")
    page.click(f"button[data-card='{national_id}']")
    page.wait_for_selector("#ps-name")


@pytest.mark.browser
def test_main_professional_flows_in_a_browser(scene, live_server, browser_page, tmp_path):
    page, base = browser_page, live_server.url
    shots = []
    page.goto(f"{base}/pro/connexion/")
    shots.append(shot(page, tmp_path, "01-login"))
    login(page, base, scene["bernard"])
    assert "Lefèvre".upper() in page.inner_text("#ps-name").upper()
    shots.append(shot(page, tmp_path, "02-home"))

    # Find Alice's record by INS.
    page.goto(f"{base}/pro/recherche")
    page.fill("#id_ins", scene["alice_ins"])
    page.select_option("#id_authority", scene["alice_authority"])
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#record-facts")
    assert page.inner_text("#mt") == "oui"
    shots.append(shot(page, tmp_path, "03-record-status"))

    # Create Bob's record, with his consent and an opposition to break-glass.
    bob = scene["bob"]
    page.goto(f"{base}/pro/recherche")
    page.fill("#id_ins", bob.ins)
    page.select_option("#id_authority", bob.ins_authority)
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#create-form")
    page.fill("#create-form #id_birth_family_name", "Dubois")
    page.fill("#create-form #id_given_names", "Bob")
    page.fill("#create-form #id_birth_date", "1990-06-21")
    page.select_option("#create-form #id_sex", "M")
    page.check("#create-form #id_consent")
    page.check("#create-form #id_opposes_break_glass")
    shots.append(shot(page, tmp_path, "04-create"))
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#record-facts")
    assert page.inner_text("#record-state") == "actif"

    # Upload a PDF to Alice's record, view it, mask it.
    record = scene["record"]
    page.goto(f"{base}/pro/dossier/{record}/ajouter")
    pdf = tmp_path / "cr.pdf"
    pdf.write_bytes(simple_pdf("Compte rendu", ["Consultation du jour"]))
    page.set_input_files("#id_file", str(pdf))
    page.fill("#id_title", "CR navigateur")
    shots.append(shot(page, tmp_path, "05-upload"))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#cda")
    assert page.locator("iframe.embedded-body").count() == 1
    shots.append(shot(page, tmp_path, "06-document"))
    page.click("#mask-button")
    page.wait_for_selector("#masked-alert")
    shots.append(shot(page, tmp_path, "07-masked"))
    page.goto(f"{base}/pro/dossier/{record}/documents")
    assert "CR navigateur" in page.inner_text("#documents")

    # A hostile CDA runs nothing.
    page.goto(f"{base}/pro/dossier/{record}/document/{scene['hostile']}/")
    page.wait_for_load_state("networkidle")
    for link in page.locator("#cda a").all():
        link.click(no_wait_after=True)
    assert page.evaluate("() => window.__pwned") is None
    assert page.dialogs == []
    shots.append(shot(page, tmp_path, "08-hostile"))

    # Dr Petit is not authorised: break-glass with a reason, then the banner stays on.
    page.click("#ps-name ~ form button")
    login(page, base, scene["petit"])
    page.goto(f"{base}/pro/dossier/{record}/")
    page.select_option("#emergency-form #id_mode", "bris_de_glace")
    page.fill("#emergency-form #id_reason", "Patiente inconsciente aux urgences")
    page.click("#emergency-form button[type=submit]")
    page.wait_for_selector("#emergency-banner")
    assert "BRIS DE GLACE" in page.inner_text("#emergency-banner")
    shots.append(shot(page, tmp_path, "09-break-glass"))
    page.goto(f"{base}/pro/traces")
    assert page.locator("#emergency-banner").is_visible()

    for path in shots:
        assert path.exists()
        assert path.stat().st_size > 0
