"""Hardened XML parsing: the only way untrusted XML enters OpenDMP.

lxml is configured to never resolve entities, load a DTD or reach the network; documents
carrying a DOCTYPE are refused outright (no legitimate SOAP, SAML or CDA message needs one),
which closes XXE, billion laughs and quadratic blow-up. The tree is bounded by our own limits
(bytes, tags, depth) rather than libxml2's defaults. The standard library parsers are banned by
the linter configuration.
"""

from __future__ import annotations

import re
from typing import Final, NoReturn

from lxml import etree

from dmp.common.errors import ErrorCode, Problem, ValidationFailed

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
MAX_DEPTH: Final = 200
# A tree costs ~150 bytes of memory per element: 64 MB of `<a/>` would take 2 GB before any
# check. Markup is bounded instead of bytes alone; base64 content (inline documents) has none.
MAX_MARKUP: Final = 250_000


# Characters an XML 1.0 document cannot carry, even escaped (C0 controls but tab and line breaks,
# lone surrogates, U+FFFE/U+FFFF). Text stored from a channel that is not XML (FHIR JSON, a web
# form) must not hold them: every XDS answer and CDA built from it would fail.
NOT_XML_CHARACTER: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class UnsafeXml(ValidationFailed):
    def __init__(self, message: str) -> None:
        super().__init__([Problem(ErrorCode.INVALID, message, "xml")])


class _NoExternalResource(etree.Resolver):
    """Refuses every URL the parser would open (an external DTD, a parameter entity): no_network
    stops http and ftp only, and libxml2 opens a local file's external subset before the DOCTYPE
    refusal below could run (a file-existence oracle, a worker stuck reading /dev/stdin)."""

    def resolve(self, system_url: str, public_id: str, context: object = None) -> NoReturn:
        raise UnsafeXml("XML naming an external resource is refused")


def _parser() -> etree.XMLParser:
    # collect_ids stays at its default: False makes lxml ask libxml2 to load the external
    # subset (XML_SKIP_IDS is carried in the same loadsubset flags).
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        # libxml2's default limits refuse any text node over 10 MB: an inline base64 body (a
        # level 1 CDA's PDF over ~7.5 MB, a document inline in a SOAP message) well within the
        # document size limit. Memory stays bounded by `max_bytes`, the tag count and the depth
        # checks below (libxml2 itself still stops at 2048 levels); a reader that wants shorter
        # text (the CDA narrative, `dmp.cda.header`) bounds it itself.
        huge_tree=True,
        remove_comments=False,
    )
    parser.resolvers.add(_NoExternalResource())
    return parser


def _prolog_declares_a_dtd(data: bytes) -> bool:
    """Whether the bytes before the root element declare a DOCTYPE (refused before parsing, so
    nothing it names is ever opened; the resolver covers what this scan cannot see)."""
    root = _ROOT_START.search(data)
    return b"<!DOCTYPE" in (data[: root.start()] if root else data).upper()


_ROOT_START: Final = re.compile(rb"<[A-Za-z_]")


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise `UnsafeXml` with a clear message."""
    if len(data) > max_bytes:
        raise UnsafeXml(f"XML document of {len(data)} bytes exceeds the limit of {max_bytes}")
    if not data.strip():
        raise UnsafeXml("empty XML document")
    if (markup := data.count(b"<")) > MAX_MARKUP:
        raise UnsafeXml(f"XML with {markup} tags exceeds the limit of {MAX_MARKUP}")
    if _prolog_declares_a_dtd(data):
        raise UnsafeXml("XML with a DOCTYPE declaration is refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"malformed XML: {exc.msg}") from exc
    tree = root.getroottree()
    docinfo = tree.docinfo
    has_doctype = bool(getattr(docinfo, "doctype", ""))
    if has_doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("XML with a DOCTYPE declaration is refused")
    if _has_entity_reference(root):
        raise UnsafeXml("XML entity references are refused")
    if _depth_exceeds(root, MAX_DEPTH):
        raise UnsafeXml(f"XML nesting deeper than {MAX_DEPTH} levels is refused")
    return root


def _has_entity_reference(root: etree._Element) -> bool:
    return any(isinstance(node, etree._Entity) for node in root.iter(etree.Entity))


_DEPTH_PROBES: dict[int, etree.XPath] = {}


def _depth_exceeds(root: etree._Element, limit: int) -> bool:
    # An absolute path `limit + 1` elements deep, evaluated in C: ~1 ms on a 3 MB document,
    # where a Python walk took ~180 ms. (libxml2 also stops at 2048 levels with huge_tree.)
    probe = _DEPTH_PROBES.get(limit)
    if probe is None:
        probe = _DEPTH_PROBES.setdefault(limit, etree.XPath("boolean(" + "/*" * (limit + 1) + ")"))
    return bool(probe(root))


def xml_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")
