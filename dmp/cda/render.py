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
import re
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import nh3
from django.conf import settings
from lxml import etree

from dmp.cda.builder import simple_pdf
from dmp.cda.header import HL7, NS, CdaHeader, clinical_document, header_of

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


class _Walker:
    """Narrative block -> HTML string (escaped as it goes; sanitised again afterwards)."""

    def __init__(self, root: etree._Element) -> None:
        self.media = {m.get("ID", ""): m for m in root.iter(f"{{{HL7}}}observationMedia") if m.get("ID")}
        self.out: list[str] = []

    def text(self, value: str | None) -> None:
        if value:
            self.out.append(html.escape(value))

    def children(self, element: etree._Element) -> None:
        self.text(element.text)
        for child in element:
            self.node(child)
            self.text(child.tail)

    def wrap(self, tag: str, element: etree._Element, attributes: str = "") -> None:
        self.out.append(f"<{tag}{attributes}>")
        self.children(element)
        self.out.append(f"</{tag}>")

    def node(self, element: etree._Element) -> None:
        if isinstance(element, etree._Comment | etree._ProcessingInstruction):
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
            self.out.append("<br>")
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
            self.out.append('<table class="cda-table">')
            self.children(element)
            self.out.append("</table>")
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

    def image(self, element: etree._Element) -> None:
        for reference in element.get("referencedObject", "").split():
            media = self.media.get(reference)
            value = media.find("h:value", NS) if media is not None else None
            if value is None or value.get("mediaType") not in IMAGE_TYPES:
                continue
            payload = "".join((value.text or "").split())
            if len(payload) > MAX_IMAGE_BYTES * 4 // 3:
                continue
            try:
                base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                continue
            caption = element.find("h:caption", NS)
            alt = " ".join("".join(str(t) for t in caption.itertext()).split()) if caption is not None else ""
            self.out.append(
                f'<figure><img src="data:{value.get("mediaType")};base64,{payload}" alt="{html.escape(alt)}">'
                + (f"<figcaption>{html.escape(alt)}</figcaption>" if alt else "")
                + "</figure>"
            )

    def section(self, section: etree._Element, depth: int) -> None:
        level = min(6, depth + 2)
        self.out.append('<section class="cda-section">')
        title = section.find("h:title", NS)
        if title is not None:
            self.out.append(f"<h{level}>")
            self.children(title)
            self.out.append(f"</h{level}>")
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
    root = clinical_document(data)
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None:
        return None
    raw = "".join((text.text or "").split())
    try:
        content = (
            base64.b64decode(raw, validate=True) if text.get("representation") == "B64" else raw.encode()
        )
    except (binascii.Error, ValueError):
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
    elif root.find("h:component/h:nonXMLBody", NS) is not None:
        walker.out.append('<p class="cda-embedded">Document joint (non structuré) : affiché ci-dessous.</p>')
    walker.out.append("</article>")
    return sanitise("".join(walker.out))


def _plain_lines(root: etree._Element) -> list[str]:
    lines: list[str] = []
    body = root.find("h:component/h:structuredBody", NS)
    if body is None:
        return lines
    for section in body.iter(f"{{{HL7}}}section"):
        title = section.findtext("h:title", namespaces=NS)
        if title:
            lines.append(title.strip().upper())
        text = section.find("h:text", NS)
        if text is None:
            continue
        for block in text.iter(f"{{{HL7}}}paragraph", f"{{{HL7}}}item", f"{{{HL7}}}tr"):
            value = " ".join(" ".join(str(t) for t in block.itertext()).split())
            if value:
                lines.append(value)
    return lines


def render_pdf(data: bytes) -> bytes:
    """A printable PDF: the embedded PDF of a level 1 document, else the header and narrative."""
    embedded = embedded_body(data)
    if embedded is not None and embedded.media_type == "application/pdf":
        return embedded.content
    root = clinical_document(data)
    header = header_of(root)
    author = header.authors[0] if header.authors else None
    lines = [
        f"Patient : {header.patient_family_name} {header.patient_given_names}",
        f"Date : {_in_local_time(header.effective_time):%d/%m/%Y %H:%M}" if header.effective_time else "",
        f"Auteur : {author.family_name} {author.given_name} ({author.structure_name})" if author else "",
        "",
        *(_plain_lines(root) if embedded is None else [embedded.content.decode("utf-8", "replace")]),
    ]
    return simple_pdf(header.title or "Document", [line.replace("\t", " ") for line in lines])
