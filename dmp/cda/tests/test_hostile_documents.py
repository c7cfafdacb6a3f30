"""A generated corpus of hostile CDA documents: refused at parsing, or neutralised at rendering.

No file is read, nothing reaches the network (a local server counts requests), no script
runs in a real browser (Debian chromium through Playwright), memory stays bounded.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html
import pytest

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, CdaSection, build_cda
from dmp.cda.render import (
    ALLOWED_TAGS,
    MAX_PRINTED_CHARS,
    MAX_PRINTED_LINES,
    PRINTOUT_CUT,
    printout,
    render_html,
    render_pdf,
)
from dmp.common.errors import ValidationFailed

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
        "00015e2b3fd10000000049454e44ae426082"
    )
).decode()
MARK = "PWNED-MARKER"


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<!ENTITY x 'leak'>")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def listener() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def base_document() -> str:
    spec = CdaDocumentSpec(
        id_root="1.2.250.1.999.1.5",
        type_code="11488-4",
        title="TITLE_SLOT",
        effective_time=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
        patient=CdaPatient(
            "285033523810113", "1.2.250.1.213.1.4.10", "MARTIN", "Alice", dt.date(1985, 3, 14), "F"
        ),
        author=CdaAuthor(
            "810000001001", "LEFEVRE", "Bernard", "10", "SM26", CdaOrganization("3123456789012345", "C")
        ),
        sections=(CdaSection(title="Section", paragraphs=("BODY_SLOT",)),),
    )
    return build_cda(spec).decode()


BASE = base_document()


def with_body(fragment: str, *, title: str = "Titre") -> bytes:
    document = BASE.replace("TITLE_SLOT", title, 1)
    return document.replace("<paragraph>BODY_SLOT</paragraph>", fragment, 1).encode()


# -- parse-level attacks: refused outright -------------------------------------------------------


def parse_attacks(listener: str) -> list[tuple[str, bytes]]:
    head = '<?xml version="1.0"?>\n'
    body = BASE.split("?>", 1)[1]
    named = [
        (
            "xxe-file",
            f'<!DOCTYPE ClinicalDocument [<!ENTITY e SYSTEM "file:///etc/passwd">]>{body}'.replace(
                "TITLE_SLOT", "&e;"
            ),
        ),
        (
            "xxe-http",
            f'<!DOCTYPE ClinicalDocument [<!ENTITY e SYSTEM "{listener}/xxe">]>{body}'.replace(
                "TITLE_SLOT", "&e;"
            ),
        ),
        ("external-dtd", f'<!DOCTYPE ClinicalDocument SYSTEM "{listener}/dtd">{body}'),
        ("parameter-entity", f'<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "{listener}/pe"> %p;]>{body}'),
        (
            "billion-laughs",
            "<!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'>"
            + "".join(f"<!ENTITY {chr(98 + i)} '{('&' + chr(97 + i) + ';') * 10}'>" for i in range(9))
            + f"]>{body}".replace("TITLE_SLOT", "&j;"),
        ),
        (
            "quadratic-blowup",
            f"<!DOCTYPE l [<!ENTITY a '{'x' * 50000}'>]>{body}".replace("TITLE_SLOT", "&a;" * 2000),
        ),
        (
            "deep-nesting",
            BASE.replace("<paragraph>BODY_SLOT</paragraph>", "<content>" * 5000 + "x" + "</content>" * 5000),
        ),
        ("huge-text-node", BASE.replace("BODY_SLOT", "A" * (11 * 1024 * 1024))),
        ("not-cda", '<html xmlns="http://www.w3.org/1999/xhtml"><script>x</script></html>'),
        ("malformed", BASE[: len(BASE) // 2]),
        ("empty", ""),
        ("xinclude-doctype", f'<!DOCTYPE x SYSTEM "{listener}/xi">' + body),
    ]
    return [(name, (head + text if not text.startswith("<?xml") else text).encode()) for name, text in named]


def test_parse_level_attacks_are_refused_without_reading_files_or_the_network(listener):
    attacks = parse_attacks(listener)
    for name, data in attacks:
        with pytest.raises(ValidationFailed) as refused:
            render_html(data)
        assert "root:" not in str(refused.value), name
    assert _Counter.hits == []


# -- render-level attacks: neutralised -----------------------------------------------------------

TEXT_PAYLOADS = [
    f"&lt;script&gt;window.__pwned='{MARK}'&lt;/script&gt;",
    f'<x:script xmlns:x="http://www.w3.org/1999/xhtml">window.__pwned="{MARK}"</x:script>',
    f'<x:img xmlns:x="http://www.w3.org/1999/xhtml" src="x" onerror="window.__pwned=\'{MARK}\'"/>',
    f'<x:iframe xmlns:x="http://www.w3.org/1999/xhtml" src="javascript:window.__pwned=\'{MARK}\'"/>',
    f'<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>window.__pwned="{MARK}"</s:script></s:svg>',
    '<x:style xmlns:x="http://www.w3.org/1999/xhtml">body{background:url(//evil.example/x)}</x:style>',
    '<x:meta xmlns:x="http://www.w3.org/1999/xhtml" http-equiv="refresh" content="0;url=//evil.example"/>',
    '<x:base xmlns:x="http://www.w3.org/1999/xhtml" href="//evil.example/"/>',
    '<x:form xmlns:x="http://www.w3.org/1999/xhtml" action="//evil.example"><x:input/></x:form>',
    '<x:object xmlns:x="http://www.w3.org/1999/xhtml" data="//evil.example/x.swf"/>',
    f"<content styleCode=\"bold&quot; onmouseover=&quot;window.__pwned='{MARK}'\">texte</content>",
    f'<content onclick="window.__pwned=\'{MARK}\'" ID="x&quot;&gt;&lt;script&gt;">texte</content>',
    f"<table><tbody><tr><td colspan=\"1 onmouseover=window.__pwned='{MARK}'\">c</td></tr></tbody></table>",
    '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>',
    f"&lt;img src=x onerror=window.__pwned='{MARK}'&gt;",
]
TEXT_LOCATIONS = {
    "paragraph": "<paragraph>{}</paragraph>",
    "table-cell": "<table><tbody><tr><td>{}</td></tr></tbody></table>",
    "list-item": "<list><item>{}</item></list>",
    "content": "<paragraph><content>{}</content></paragraph>",
}
HREF_PAYLOADS = [
    f"javascript:window.__pwned='{MARK}'",
    f"JaVaScRiPt:window.__pwned='{MARK}'",
    f" javascript:window.__pwned='{MARK}'",
    f"java&#9;script:window.__pwned='{MARK}'",
    f"&#106;avascript:window.__pwned='{MARK}'",
    f"vbscript:window.__pwned='{MARK}'",
    "data:text/html;base64,"
    + base64.b64encode(f"<script>window.__pwned='{MARK}'</script>".encode()).decode(),
    "//evil.example/steal",
    "file:///etc/passwd",
    "https://example.org/&quot;&gt;&lt;script&gt;x&lt;/script&gt;",
]
MEDIA_PAYLOADS = [
    (
        "image/svg+xml",
        base64.b64encode(
            f"<svg xmlns='http://www.w3.org/2000/svg'><script>window.__pwned='{MARK}'</script></svg>".encode()
        ).decode(),
    ),
    ("image/png", f"javascript:window.__pwned='{MARK}'"),
    ("text/html", base64.b64encode(f"<script>window.__pwned='{MARK}'</script>".encode()).decode()),
    ("image/png", PNG_1PX + "&quot; onerror=&quot;window.__pwned=1"),
    ("image/png", PNG_1PX),  # legitimate: kept as an inline image
]


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes


def render_cases() -> list[Case]:
    cases = [
        Case(f"text-{index}-{where}", with_body(template.format(payload)))
        for index, payload in enumerate(TEXT_PAYLOADS)
        for where, template in TEXT_LOCATIONS.items()
    ]
    cases += [
        Case(f"href-{index}", with_body(f'<paragraph><linkHtml href="{href}">lien</linkHtml></paragraph>'))
        for index, href in enumerate(HREF_PAYLOADS)
    ]
    for index, (media_type, value) in enumerate(MEDIA_PAYLOADS):
        media = (
            f'<entry><observationMedia classCode="OBS" moodCode="EVN" ID="m{index}">'
            f'<value mediaType="{media_type}" representation="B64">{value}</value></observationMedia></entry>'
        )
        fragment = f'<paragraph><renderMultiMedia referencedObject="m{index}"/></paragraph>'
        document = with_body(fragment).decode().replace("</text>", "</text>" + media, 1)
        cases.append(Case(f"media-{index}-{media_type}", document.encode()))
    cases.append(
        Case(
            "title",
            with_body("<paragraph>x</paragraph>", title=f"&lt;/title&gt;&lt;script&gt;{MARK}&lt;/script&gt;"),
        )
    )
    return cases


CASES = render_cases()


def assert_inert(markup: str) -> None:
    fragment = lxml.html.fragment_fromstring(markup, create_parent="div")
    for element in fragment.iter():
        if not isinstance(element.tag, str) or element is fragment:
            continue
        assert element.tag in ALLOWED_TAGS, element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), name
            if name == "href":
                assert value.startswith(("http://", "https://")), value
                assert not value.startswith("//")
            if name == "src":
                assert value.startswith(
                    ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/gif;base64,")
                )


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(parse_attacks("http://127.0.0.1:1")) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_render_level_attacks_are_neutralised(case, listener):
    markup = render_html(case.data)
    assert_inert(markup)
    assert "<script" not in markup.lower()
    assert "root:x:0:0" not in markup
    assert _Counter.hits == []


def test_a_legitimate_inline_image_is_kept():
    case = next(c for c in CASES if c.name == f"media-{len(MEDIA_PAYLOADS) - 1}-image/png")
    assert f'src="data:image/png;base64,{PNG_1PX}"' in render_html(case.data)


def _with_media(fragment: str, media: dict[str, str]) -> bytes:
    """`fragment` as the narrative, with one observationMedia entry per (ID, PNG base64)."""
    entries = "".join(
        f'<entry><observationMedia classCode="OBS" moodCode="EVN" ID="{identifier}">'
        f'<value mediaType="image/png" representation="B64">{payload}</value></observationMedia></entry>'
        for identifier, payload in media.items()
    )
    return with_body(fragment).decode().replace("</text>", "</text>" + entries, 1).encode()


def _png(size: int) -> str:
    return base64.b64encode(base64.b64decode(PNG_1PX) + b"\0" * size).decode()


def test_an_image_referenced_again_and_again_is_rendered_once():
    # One 200 kB image, referenced 300 times by one element and once by each of 300 others:
    # this rendered as 120 MB of HTML (each reference wrote the whole image again).
    image = _png(200_000)
    references = " ".join(["m"] * 300)
    fragment = f'<paragraph><renderMultiMedia referencedObject="{references}"/></paragraph>'
    fragment += '<paragraph><renderMultiMedia referencedObject="m"/></paragraph>' * 300
    data = _with_media(fragment, {"m": image})
    markup = render_html(data)
    assert markup.count(image) == 1
    assert len(markup) < 2 * len(data)
    assert "image m : affichée plus haut" in markup
    assert_inert(markup)


def test_a_long_caption_is_not_repeated_on_every_image():
    caption = "légende " * 2_500
    media = {f"m{index}": PNG_1PX for index in range(400)}
    fragment = (
        f'<paragraph><renderMultiMedia referencedObject="{" ".join(media)}">'
        f"<caption>{caption}</caption></renderMultiMedia></paragraph>"
    )
    data = _with_media(fragment, media)
    markup = render_html(data)
    assert markup.count("<img") == 400
    assert markup.count(caption.strip()) == 1
    assert len(markup) < 2 * len(data)


def test_the_images_of_a_page_are_capped_in_all():
    # Five distinct images of 4.5 MB: the first four fit the page's budget, the fifth is a notice.
    images = {f"m{index}": _png(4_500_000 + index) for index in range(5)}
    fragment = "".join(
        f'<paragraph><renderMultiMedia referencedObject="{identifier}"/></paragraph>' for identifier in images
    )
    markup = render_html(_with_media(fragment, images))
    assert [identifier for identifier, image in images.items() if image in markup] == ["m0", "m1", "m2", "m3"]
    assert "image m4 non affichée : le document contient trop d’images" in markup


def test_an_oversized_narrative_is_cut_with_a_notice():
    paragraph = "<paragraph>" + "texte &amp; " * 10 + "</paragraph>"
    data = with_body(paragraph * 120_000)
    markup = render_html(data)
    assert len(markup) < 9 * 1024 * 1024
    assert "La suite du document n’est pas affichée" in markup
    assert_inert(markup)


def test_a_long_document_prints_its_beginning_only():
    # 0.8 MB of narrative took 24 s to lay out (fpdf, some 30 µs a character), 9.8 MB 248 s.
    data = with_body("<paragraph>" + "mot " * 200_000 + "</paragraph>" + "<paragraph>fin</paragraph>" * 5_000)
    printed = printout(data)
    assert sum(len(line) for line in printed.lines) < MAX_PRINTED_CHARS + 1_000
    assert printed.lines[3] == printed.lines[-1] == PRINTOUT_CUT
    assert render_pdf(data).startswith(b"%PDF")


def test_many_short_lines_are_capped_too():
    data = with_body("<paragraph>x</paragraph>" * 100_000)
    printed = printout(data)
    assert len(printed.lines) < MAX_PRINTED_LINES + 10
    assert printed.lines[-1] == PRINTOUT_CUT


def test_nested_blocks_print_their_own_text_once():
    # Each block was printed with all the text of the blocks inside it: nested lists printed their
    # text once per level, and 90 levels around 36 MB of whitespace read 90 × 36 MB per printout.
    nested = "<list><item>un<!-- note --> suite<list><item>deux</item></list> fin</item></list>"
    printed = printout(with_body(f"<paragraph>avant <content>gras</content> après</paragraph>{nested}"))
    assert printed.lines[-4:] == ("avant gras après", "un suite", "deux", "fin")
    deep = "<list><item>" * 90 + " " * 1_000_000 + "x" + "</item></list>" * 90
    assert printout(with_body(deep)).lines[-1] == "x"


def test_a_short_document_prints_whole():
    printed = printout(with_body("<paragraph>Contrôle annuel.</paragraph>"))
    assert printed.lines[-2:] == ("Section".upper(), "Contrôle annuel.")
    assert PRINTOUT_CUT not in printed.lines


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_no_hostile_document_runs_script_in_a_real_browser(tmp_path, listener):
    executable = _chromium()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required on CI")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import Dialog, sync_playwright

    page_html = (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'><title>corpus</title></head><body>"
    )
    page_html += "".join(f"<div id='{c.name}'>{render_html(c.data)}</div>" for c in CASES)
    page_html += "</body></html>"
    (tmp_path / "index.html").write_text(page_html, encoding="utf-8")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    dialogs: list[str] = []
    requests: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page()

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{origin}/index.html")
            page.wait_for_load_state("networkidle")
            for link in page.locator("a").all()[:5]:
                link.hover()
            pwned = page.evaluate("() => window.__pwned")
            images = page.evaluate("() => document.images.length")
            page.screenshot(path=str(tmp_path / "corpus.png"), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    assert pwned is None
    assert dialogs == []
    assert all(url.startswith((origin, "data:")) for url in requests), requests
    assert images >= 1
    assert (tmp_path / "corpus.png").stat().st_size > 0
