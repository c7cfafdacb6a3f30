"""Safe display of CDA documents: accessible HTML for the portals, and a PDF for printing.

Our own walker turns the CDA narrative block (a small, known vocabulary) into HTML; anything
else is reduced to its text. The result then goes through an allow-list sanitiser (nh3), so a
hostile document can neither run script nor load anything: links keep only http(s) targets,
images only inline PNG/JPEG/GIF data. The portals add a strict Content-Security-Policy.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import nh3
from django.conf import settings
from lxml import etree

from dmp.cda.builder import simple_pdf
from dmp.cda.header import HL7, NS, CdaHeader, clinical_document, header_of, level1_content

ALLOWED_TAGS: Final = frozenset(
    {
        "article",
        "section",
        "header",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "br",
        "span",
        "strong",
        "em",
        "u",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "table",
        "caption",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "th",
        "td",
        "a",
        "img",
        "dl",
        "dt",
        "dd",
        "small",
        "figure",
        "figcaption",
    }
)
ALLOWED_ATTRIBUTES: Final = {
    "*": {"class", "lang"},
    "th": {"scope", "colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "a": {"href"},
    "img": {"src", "alt"},
    "ol": {"start"},
}
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif"})
MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
# A page carries each image once and a bounded amount in all: a document may reference one
# large image thousands of times (renderMultiMedia/@referencedObject is a list of IDs).
MAX_PAGE_IMAGE_BYTES: Final = 4 * MAX_IMAGE_BYTES
# Markup of one page besides its images; past it the rest of the narrative is not shown.
MAX_PAGE_TEXT_CHARS: Final = 8 * 1024 * 1024
MAX_ALT_CHARS: Final = 200
_DATA_IMAGE_RE = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]+$")
_HTTP_RE = re.compile(r"^https?://[^\s/]", re.IGNORECASE)
_SPAN_RE = re.compile(r"^[1-9][0-9]?$")


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    if tag == "a" and name == "href":
        return value if _HTTP_RE.match(value) else None
    if tag == "img" and name == "src":
        return value if _DATA_IMAGE_RE.match(value) else None
    if name in {"colspan", "rowspan"}:
        return value if _SPAN_RE.match(value) else None
    return value


def sanitise(markup: str) -> str:
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "data"},
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _local(element: etree._Element) -> str:
    # Comments and processing instructions have a non-string tag: str() of it never matches.
    tag = str(element.tag)
    if not tag.startswith(f"{{{HL7}}}"):
        return ""
    return tag[len(HL7) + 2 :]


def _usable_image(payload: str) -> bool:
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3:
        return False
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class _Walker:
    """Narrative block -> HTML string (escaped as it goes; sanitised again afterwards)."""

    def __init__(self, root: etree._Element) -> None:
        self.media = {m.get("ID", ""): m for m in root.iter(f"{{{HL7}}}observationMedia") if m.get("ID")}
        self.out: list[str] = []
        self.media_state: dict[str, str] = {}
        self.image_chars = 0
        self.text_chars = 0
        self.truncated = False

    def emit(self, markup: str) -> bool:
        """Markup other than image data, within the page budget; False once it is spent (the
        caller then leaves out the matching closing tag, so the markup stays balanced)."""
        if self.truncated or self.text_chars + len(markup) > MAX_PAGE_TEXT_CHARS:
            self.truncated = True
            return False
        self.text_chars += len(markup)
        self.out.append(markup)
        return True

    def text(self, value: str | None) -> None:
        if not value or self.truncated:
            return
        room = MAX_PAGE_TEXT_CHARS - self.text_chars
        if len(value) > room:
            # The page shows the beginning of an oversized text node, then the notice.
            self.out.append(html.escape(value[: max(room, 0)]))
            self.text_chars = MAX_PAGE_TEXT_CHARS
            self.truncated = True
            return
        self.emit(html.escape(value))

    def children(self, element: etree._Element) -> None:
        self.text(element.text)
        for child in element:
            if self.truncated:
                return
            self.node(child)
            self.text(child.tail)

    def wrap(self, tag: str, element: etree._Element, attributes: str = "") -> None:
        if self.emit(f"<{tag}{attributes}>"):
            self.children(element)
            self.out.append(f"</{tag}>")

    def node(self, element: etree._Element) -> None:
        if self.truncated or isinstance(element, etree._Comment | etree._ProcessingInstruction):
            return
        name = _local(element)
        style = {s.lower() for s in element.get("styleCode", "").split()}
        simple = {
            "paragraph": "p",
            "sub": "sub",
            "sup": "sup",
            "item": "li",
            "tr": "tr",
            "thead": "thead",
            "tbody": "tbody",
            "tfoot": "tfoot",
            "caption": "caption",
            "footnote": "small",
        }
        if name in simple:
            self.wrap(simple[name], element)
        elif name == "br":
            self.emit("<br>")
        elif name == "content":
            tag = (
                "strong"
                if "bold" in style
                else "em"
                if "italics" in style
                else "u"
                if "underline" in style
                else "span"
            )
            self.wrap(tag, element)
        elif name == "list":
            self.wrap("ol" if element.get("listType") == "ordered" else "ul", element)
        elif name == "table":
            self.wrap("table", element, ' class="cda-table"')
        elif name in {"th", "td"}:
            spans = "".join(
                f' {attribute}="{html.escape(element.get(attribute, ""))}"'
                for attribute in ("colspan", "rowspan")
                if element.get(attribute)
            )
            scope = ' scope="col"' if name == "th" else ""
            self.wrap(name, element, spans + scope)
        elif name == "linkHtml":
            href = element.get("href", "").strip()
            if _HTTP_RE.match(href):
                self.wrap("a", element, f' href="{html.escape(href)}"')
            else:
                self.children(element)
        elif name == "renderMultiMedia":
            self.image(element)
        elif name in {"footnoteRef", "col", "colgroup"}:
            return
        elif name:
            self.children(element)
        # Elements outside the HL7 namespace (injected HTML, SVG, script...) are dropped whole.

    def first_look(self, reference: str) -> tuple[str, str] | None:
        """(media type, base64) of an image newly shown on this page, None otherwise; the
        verdict is kept, so each further reference costs a lookup, never a decoding."""
        media = self.media.get(reference)
        value = media.find("h:value", NS) if media is not None else None
        self.media_state[reference] = "unusable"
        if value is None or value.get("mediaType") not in IMAGE_TYPES:
            return None
        payload = "".join((value.text or "").split())
        if not _usable_image(payload):
            return None
        if self.image_chars + len(payload) > MAX_PAGE_IMAGE_BYTES * 4 // 3:
            self.media_state[reference] = "over-budget"
            return None
        self.image_chars += len(payload)
        self.media_state[reference] = "shown"
        return value.get("mediaType", ""), payload

    def image(self, element: etree._Element) -> None:
        """One figure per renderMultiMedia; each image once per page, within the image budget."""
        caption_element = element.find("h:caption", NS)
        caption = (
            " ".join("".join(str(t) for t in caption_element.itertext()).split())
            if caption_element is not None
            else ""
        )
        # Every image repeats its alt text: a short one, the figcaption carries it in full once.
        alt = html.escape(caption if len(caption) <= MAX_ALT_CHARS else caption[:MAX_ALT_CHARS] + "…")
        pictures: list[tuple[str, str]] = []
        notes: list[str] = []
        for reference in dict.fromkeys(element.get("referencedObject", "").split()):
            if reference not in self.media_state:
                picture = self.first_look(reference)
                if picture is not None:
                    pictures.append(picture)
                    continue
            state = self.media_state[reference]
            if state == "shown":
                notes.append(f"image {reference} : affichée plus haut")
            elif state == "over-budget":
                notes.append(f"image {reference} non affichée : le document contient trop d’images")
        if not (pictures or notes) or not self.emit("<figure>"):
            return
        for media_type, payload in pictures:
            # The image data has its own budget (above); its markup and alt text count here.
            if not self.emit(f'<img alt="{alt}" src="data:{media_type};base64,'):
                break
            self.out.append(f'{payload}">')
        if caption and pictures:
            self.emit(f"<figcaption>{html.escape(caption)}</figcaption>")
        if notes:
            self.emit(
                f"<small>({html.escape(' ; '.join(notes[:10]))}{' …' if len(notes) > 10 else ''})</small>"
            )
        self.out.append("</figure>")

    def section(self, section: etree._Element, depth: int) -> None:
        if self.truncated:
            return
        level = min(6, depth + 2)
        if not self.emit('<section class="cda-section">'):
            return
        title = section.find("h:title", NS)
        if title is not None:
            self.wrap(f"h{level}", title)
        text = section.find("h:text", NS)
        if text is not None:
            self.children(text)
        for child in section.findall("h:component/h:section", NS):
            self.section(child, depth + 1)
        self.out.append("</section>")


@dataclass(frozen=True)
class EmbeddedBody:
    """A level 1 body (PDF, plain text...), served by the portal in a sandboxed frame."""

    media_type: str
    content: bytes


def embedded_body(data: bytes) -> EmbeddedBody | None:
    return _embedded(clinical_document(data))


def _embedded(root: etree._Element) -> EmbeddedBody | None:
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None:
        return None
    content = level1_content(text)
    if content is None:
        return None
    return EmbeddedBody(media_type=text.get("mediaType", "application/octet-stream"), content=content)


def _in_local_time(moment: dt.datetime) -> dt.datetime:
    """Display time in the portal's zone (CDA times carry their own offset, often UTC)."""
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE)) if moment.tzinfo else moment


def _summary(header: CdaHeader) -> str:
    author = header.authors[0] if header.authors else None
    rows = [
        ("Patient", f"{header.patient_family_name} {header.patient_given_names}".strip()),
        (
            "Date",
            _in_local_time(header.effective_time).strftime("%d/%m/%Y %H:%M") if header.effective_time else "",
        ),
        ("Auteur", f"{author.family_name} {author.given_name}".strip() if author else ""),
        ("Structure", author.structure_name if author else ""),
        ("Type", header.type_code.display or header.type_code.code),
    ]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows if v)
    return f'<header class="cda-header"><h1>{html.escape(header.title)}</h1><dl>{items}</dl></header>'


def render_html(data: bytes) -> str:
    """Sanitised, accessible HTML of the document (header summary + narrative)."""
    root = clinical_document(data)
    header = header_of(root)
    walker = _Walker(root)
    walker.out.append(f'<article class="cda-document" lang="{html.escape(header.language[:2] or "fr")}">')
    walker.out.append(_summary(header))
    body = root.find("h:component/h:structuredBody", NS)
    if body is not None:
        for section in body.findall("h:component/h:section", NS):
            walker.section(section, 0)
        if walker.truncated:
            walker.out.append(
                '<p class="cda-truncated"><strong>La suite du document n’est pas affichée : '
                "il est trop volumineux pour cette page.</strong></p>"
            )
    elif root.find("h:component/h:nonXMLBody", NS) is not None:
        walker.out.append('<p class="cda-embedded">Document joint (non structuré) : affiché ci-dessous.</p>')
    walker.out.append("</article>")
    return sanitise("".join(walker.out))


def _plain_lines(root: etree._Element) -> Iterator[str]:
    """The narrative as lines of text, lazily: the printout stops reading at its budget."""
    body = root.find("h:component/h:structuredBody", NS)
    if body is None:
        return
    for section in body.iter(f"{{{HL7}}}section"):
        title = section.findtext("h:title", namespaces=NS)
        if title:
            yield title.strip().upper()
        text = section.find("h:text", NS)
        if text is not None:
            yield from _block_lines(text)


_BLOCKS: Final = frozenset({f"{{{HL7}}}paragraph", f"{{{HL7}}}item", f"{{{HL7}}}tr"})


def _block_lines(text: etree._Element) -> Iterator[str]:
    """One line per paragraph, list item or table row, holding its own text only (a nested
    block is its own line): one pass over the narrative, however deep the nesting (reading each
    block's whole text made nested lists cost depth × size, and printed their text twice)."""
    parts: list[str] = []

    def line() -> str:
        joined = " ".join(" ".join(parts).split())
        parts.clear()
        return joined

    for event, element in etree.iterwalk(text, events=("start", "end", "comment", "pi")):
        if event in {"comment", "pi"}:  # not text, but the text after it is
            if element.tail:
                parts.append(element.tail)
            continue
        if event == "start":
            if element is not text and element.tag in _BLOCKS and (flushed := line()):
                yield flushed
            if element.text:
                parts.append(element.text)
            continue
        if element.tag in _BLOCKS and (flushed := line()):
            yield flushed
        if element is not text and element.tail:
            parts.append(element.tail)
    if flushed := line():
        yield flushed


def _printable_jpeg(content: bytes) -> bool:
    """A JPEG the PDF can carry as is (its bytes are copied, never decoded)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content), formats=["JPEG"]) as image:
            return image.mode in {"L", "RGB", "CMYK"}
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def _embedded_lines(embedded: EmbeddedBody | None) -> tuple[list[str], bytes | None]:
    """Lines (and an image) that stand for a level 1 body other than a PDF in the printout."""
    if embedded is None:
        return ["Le document joint ne peut pas être lu."], None
    if embedded.media_type == "text/plain":
        return embedded.content.decode("utf-8", "replace").splitlines(), None
    if embedded.media_type == "image/jpeg" and _printable_jpeg(embedded.content):
        return [], embedded.content
    # Never its bytes read as text: an image or RTF file would print as garbage.
    return [f"Le document joint ({embedded.media_type}) ne peut pas être repris dans ce PDF."], None


# fpdf lays text out at some 30 µs a character: a printout holds what takes a second or two,
# a longer document is cut with a notice (the portal shows it in full).
MAX_PRINTED_CHARS: Final = 60_000
MAX_PRINTED_LINES: Final = 1_500
PRINTOUT_CUT: Final = (
    "Document abrégé : il est trop long pour ce PDF, la suite n’y figure pas. "
    "Consultez-le en entier dans votre espace."
)


def _capped(body: Iterable[str]) -> tuple[list[str], bool]:
    """The lines of `body` within the printout's budget, and whether some were left out."""
    kept: list[str] = []
    room = MAX_PRINTED_CHARS
    for line in body:
        if len(kept) == MAX_PRINTED_LINES:
            return kept, True
        if len(line) > room:
            kept.append(line[:room])
            return kept, True
        kept.append(line)
        room -= len(line)
    return kept, False


@dataclass(frozen=True)
class Printout:
    """What the PDF of a document prints: a title, lines of text, and maybe one JPEG image."""

    title: str
    lines: tuple[str, ...]
    image: bytes | None = None


def printout(data: bytes) -> Printout:
    root = clinical_document(data)
    return _printout(root, _embedded(root))


def _printout(root: etree._Element, embedded: EmbeddedBody | None) -> Printout:
    header = header_of(root)
    author = header.authors[0] if header.authors else None
    image = None
    body: Iterable[str]
    if root.find("h:component/h:nonXMLBody", NS) is None:
        body = _plain_lines(root)
    else:
        body, image = _embedded_lines(embedded)
    body, cut = _capped(body)
    lines = [
        f"Patient : {header.patient_family_name} {header.patient_given_names}",
        f"Date : {_in_local_time(header.effective_time):%d/%m/%Y %H:%M}" if header.effective_time else "",
        f"Auteur : {author.family_name} {author.given_name} ({author.structure_name})" if author else "",
        *([PRINTOUT_CUT] if cut else []),
        "",
        *body,
        *([PRINTOUT_CUT] if cut else []),
    ]
    return Printout(header.title or "Document", tuple(line.replace("\t", " ") for line in lines), image)


def render_pdf(data: bytes) -> bytes:
    """A printable PDF: the embedded PDF of a level 1 document, else the header and narrative
    (or the level 1 text or JPEG image)."""
    root = clinical_document(data)
    embedded = _embedded(root)
    if embedded is not None and embedded.media_type == "application/pdf":
        return embedded.content
    content = _printout(root, embedded)
    return simple_pdf(content.title, content.lines, image=content.image)
