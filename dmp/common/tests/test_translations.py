"""The English catalogues hold every French string of the code and templates, compiled.

French is the source language; an English page falls back to French for any string missing from
its catalogue, silently. Each catalogue is re-extracted from a copy of its sources (the one
makemessages would write, merged with the translations already there) and must leave nothing
untranslated, and the committed .mo must say what the .po says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

ROOT = Path(settings.BASE_DIR)
# Every app, catalogue or not: one that marks a string for translation and has no catalogue
# shows it in French on English pages.
CATALOGUES = [ROOT, *sorted(path.parent for path in ROOT.glob("dmp/**/apps.py"))]

pytestmark = pytest.mark.skipif(
    shutil.which("xgettext") is None or shutil.which("msgattrib") is None,
    reason="GNU gettext (xgettext, msgattrib) is not installed",
)


def _msgids(po: Path, *selection: str) -> list[str]:
    """The msgids of a .po file's live entries that `msgattrib <selection>` keeps, header aside."""
    output = subprocess.run(
        ["msgattrib", "--no-obsolete", "--no-location", "--no-wrap", *selection, str(po)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line[6:] for line in output.splitlines() if line.startswith("msgid ") and line != 'msgid ""']


@pytest.mark.parametrize("app", CATALOGUES, ids=lambda path: str(path.relative_to(ROOT)) or "templates")
def test_every_french_string_has_its_english_translation(app: Path, tmp_path: Path, settings) -> None:
    settings.LOCALE_PATHS = []  # makemessages writes only into the copy's own locale/
    copy = tmp_path / "src"
    ignored = shutil.ignore_patterns(".venv", "tests", "__pycache__", "*.mo", "static", "var")
    if app == ROOT:  # the project's own catalogue: templates/ and config/, the apps have theirs
        for part in ("templates", "config", "locale"):
            shutil.copytree(ROOT / part, copy / part, ignore=ignored)
    else:
        shutil.copytree(app, copy, ignore=ignored)
    (copy / "locale").mkdir(exist_ok=True)  # where makemessages writes, catalogue or not
    here = Path.cwd()
    os.chdir(copy)
    try:
        call_command("makemessages", locale=["en"], no_location=True, verbosity=0)
    finally:
        os.chdir(here)
    po = copy / "locale/en/LC_MESSAGES/django.po"
    committed = app / "locale/en/LC_MESSAGES/django.po"
    if not committed.exists():
        assert not po.exists() or _msgids(po) == [], "strings marked for translation, no English catalogue"
        return
    assert _msgids(po), "no string extracted"
    assert _msgids(po, "--untranslated") + _msgids(po, "--only-fuzzy") == []
    compiled = subprocess.run(
        ["msgunfmt", "--no-wrap", str(app / "locale/en/LC_MESSAGES/django.mo")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    missing = [msgid for msgid in _msgids(po) if f"msgid {msgid}\n" not in compiled]
    assert missing == [], "the .mo is older than the .po: run compilemessages"
