"""SOAP 1.2 with WS-Addressing, inline or MTOM/XOP: the envelope codec of the XDS channel.

Pure (no Django) so the vendor dev kit uses the same codec. MTOM parts are split on their
boundary byte for byte (no line-ending normalisation), so document bytes arrive unchanged.
"""

from __future__ import annotations

import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from typing import Final

from lxml import etree

from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.common.xml import parse_xml, xml_bytes

SOAP12: Final = "http://www.w3.org/2003/05/soap-envelope"
WSA: Final = "http://www.w3.org/2005/08/addressing"
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP_TYPE: Final = "application/xop+xml"
SOAP_TYPE: Final = "application/soap+xml"


class SoapError(ValidationFailed):
    """The HTTP body is not a usable SOAP 1.2 message."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem(ErrorCode.INVALID, message, "Envelope")])


@dataclass
class SoapMessage:
    envelope: etree._Element
    header: etree._Element | None
    body: etree._Element
    action: str
    message_id: str
    attachments: dict[str, bytes] = field(default_factory=dict)
    mtom: bool = False

    def header_element(self, namespace: str, tag: str) -> etree._Element | None:
        if self.header is None:
            return None
        return self.header.find(f"{{{namespace}}}{tag}")


# `; name=token` or `; name="quoted string"`, RFC 2045's grammar (tokens as RFC 9110's).
_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PLAIN_PARAMS: Final = re.compile(
    rf'[ \t]*;[ \t]*({_TCHARS})[ \t]*=[ \t]*(?:"((?:[^"\\\r\n]|\\[^\r\n])*)"|({_TCHARS}))[ \t]*'
)
_MEDIA: Final = re.compile(rf"[ \t]*{_TCHARS}/{_TCHARS}")


def _plain_params(content_type: str) -> dict[str, str] | None:
    """The parameters of a Content-Type written with plain tokens and quoted strings, by
    lower-case name; None for anything else (RFC 2231 `name*=`, comments, stray text)."""
    media = _MEDIA.match(content_type)
    if media is None:
        return None
    params: dict[str, str] = {}
    position = media.end()
    while position < len(content_type):
        param = _PLAIN_PARAMS.match(content_type, position)
        if param is None:
            return None
        name, quoted, token = param.groups()
        if "*" in name:
            return None
        # As email.message unquotes: only \\ and \" are escapes.
        value = token if quoted is None else quoted.replace("\\\\", "\\").replace('\\"', '"')
        params.setdefault(name.lower(), value)
        position = param.end()
    return params


# A client sends the same Content-Type with each request (a multipart's differs by its boundary):
# the parameters of the last few are kept. A plain one is read by `_plain_params`; any other by
# email.message (RFC 2231), which took 0.05 ms a parameter: the boundary and start of every MTOM
# request, and its root part's action.
@lru_cache(maxsize=256)
def _param(content_type: str, name: str) -> str | None:
    plain = _plain_params(content_type)
    if plain is not None:
        return plain.get(name)
    message = Message()
    message["content-type"] = content_type
    value = message.get_param(name)
    return value if isinstance(value, str) else None


def _decoded(headers: dict[str, str], payload: bytes) -> bytes:
    """A part's bytes as sent before its Content-Transfer-Encoding (MTOM sends binary, but some
    MIME stacks encode attachments in base64 or quoted-printable)."""
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding in {"binary", "8bit", "7bit", ""}:
        return payload
    try:
        if encoding == "base64":
            return binascii.a2b_base64(payload, strict_mode=False)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(payload)
    except binascii.Error as exc:
        raise SoapError(f"a multipart part is not valid {encoding}") from exc
    raise SoapError(f"unsupported Content-Transfer-Encoding {encoding!r}")


def split_multipart(content_type: str, body: bytes) -> tuple[bytes, dict[str, bytes], str]:
    """MIME multipart/related -> (root part, other parts by Content-ID, root part type)."""
    boundary = _param(content_type, "boundary")
    if not boundary:
        raise SoapError("multipart message without a boundary")
    start = _param(content_type, "start")
    start_id = start.strip("<>") if start is not None else ""
    if not boundary.isascii():
        raise SoapError("the multipart boundary must be ASCII")
    delimiter = b"--" + boundary.encode("ascii")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise SoapError("multipart message without parts")
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, separator, payload = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise SoapError("multipart part without headers")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, _decoded(headers, payload.removesuffix(b"\r\n"))))
    if not parts:
        raise SoapError("multipart message without parts")
    root_index = 0
    if start_id:
        for index, (headers, _) in enumerate(parts):
            if headers.get("content-id", "").strip("<>") == start_id:
                root_index = index
                break
        else:
            raise SoapError("multipart start part not found")
    root_headers, root = parts[root_index]
    others = {
        headers.get("content-id", "").strip("<>"): payload
        for index, (headers, payload) in enumerate(parts)
        if index != root_index
    }
    return root, others, root_headers.get("content-type", "")


def parse_message(content_type: str, body: bytes) -> SoapMessage:
    media = content_type.split(";", 1)[0].strip().lower()
    attachments: dict[str, bytes] = {}
    mtom = False
    action = ""
    if media == "multipart/related":
        xml, attachments, root_type = split_multipart(content_type, body)
        mtom = True
        action = (_param(root_type, "action") or "") if root_type else ""
    elif media in {SOAP_TYPE, "text/xml", "application/xml"}:
        xml = body
        action = _param(content_type, "action") or ""
    else:
        raise SoapError(f"unsupported content type {media!r}")
    envelope = parse_xml(xml)
    if envelope.tag != f"{{{SOAP12}}}Envelope":
        raise SoapError("not a SOAP 1.2 envelope")
    header = envelope.find(f"{{{SOAP12}}}Header")
    body_element = envelope.find(f"{{{SOAP12}}}Body")
    # Comments and processing instructions beside the request are not a second element.
    elements = [] if body_element is None else list(body_element.iterchildren(etree.Element))
    if len(elements) != 1:
        raise SoapError("the SOAP body must hold exactly one element")
    message = SoapMessage(
        envelope=envelope,
        header=header,
        body=elements[0],
        action=action,
        message_id="",
        attachments=attachments,
        mtom=mtom,
    )
    wsa_action = message.header_element(WSA, "Action")
    if wsa_action is not None and (wsa_action.text or "").strip():
        message.action = (wsa_action.text or "").strip()
    message_id = message.header_element(WSA, "MessageID")
    message.message_id = (message_id.text or "").strip() if message_id is not None else ""
    if not message.action:
        raise SoapError("no WS-Addressing Action")
    return message


def envelope(
    action: str,
    body: etree._Element,
    *,
    relates_to: str = "",
    to: str = "",
    security: etree._Element | None = None,
) -> etree._Element:
    root = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soap": SOAP12, "wsa": WSA, "wsse": WSSE})
    header = etree.SubElement(root, f"{{{SOAP12}}}Header")
    action_element = etree.SubElement(header, f"{{{WSA}}}Action")
    action_element.set(f"{{{SOAP12}}}mustUnderstand", "true")
    action_element.text = action
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    if to:
        etree.SubElement(header, f"{{{WSA}}}To").text = to
    if security is not None:
        holder = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
        holder.set(f"{{{SOAP12}}}mustUnderstand", "true")
        holder.append(security)
    etree.SubElement(root, f"{{{SOAP12}}}Body").append(body)
    return root


SPLICE: Final = "opendmp-splice"


def splice_point(parent: etree._Element, key: str) -> None:
    """Mark where `encode` inserts ready-made XML `splices[key]` (see `encode`)."""
    parent.append(etree.ProcessingInstruction(SPLICE, key))


def encode(
    root: etree._Element,
    action: str,
    attachments: dict[str, bytes] | None = None,
    splices: Mapping[str, bytes] | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, body) of a message: plain SOAP 1.2, or MTOM when there are attachments.

    `splices` are XML fragments written as text (the registry objects of a query answer, hundreds
    of kilobytes): they replace their splice point in the serialised message instead of being
    parsed into the tree and serialised again. Each point must occur exactly once."""
    xml = xml_bytes(root)
    for key, fragment in (splices or {}).items():
        point = f"<?{SPLICE} {key}?>".encode()
        if xml.count(point) != 1:
            raise ValueError(f"splice point {key!r} must occur exactly once")
        xml = xml.replace(point, fragment)
    if not attachments:
        return f'{SOAP_TYPE}; charset=UTF-8; action="{action}"', xml
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = "root.message@opendmp"
    chunks = [
        f'--{boundary}\r\nContent-Type: {XOP_TYPE}; charset=UTF-8; type="{SOAP_TYPE}"; action="{action}"\r\n'
        f"Content-Transfer-Encoding: binary\r\nContent-ID: <{start}>\r\n\r\n".encode(),
        xml,
    ]
    for cid, data in attachments.items():
        chunks.append(
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode()
        )
        chunks.append(data)
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="{XOP_TYPE}"; '
        f'start="<{start}>"; start-info="{SOAP_TYPE}"'
    )
    return content_type, b"".join(chunks)


def fault(code: str, reason: str, *, subcode: str = "", relates_to: str = "") -> etree._Element:
    """A SOAP 1.2 fault (`code` is Sender or Receiver)."""
    body = etree.Element(f"{{{SOAP12}}}Fault")
    code_element = etree.SubElement(body, f"{{{SOAP12}}}Code")
    etree.SubElement(code_element, f"{{{SOAP12}}}Value").text = f"soap:{code}"
    if subcode:
        sub = etree.SubElement(code_element, f"{{{SOAP12}}}Subcode")
        etree.SubElement(sub, f"{{{SOAP12}}}Value").text = subcode
    reason_element = etree.SubElement(body, f"{{{SOAP12}}}Reason")
    text = etree.SubElement(reason_element, f"{{{SOAP12}}}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = reason
    return envelope("http://www.w3.org/2005/08/addressing/soap/fault", body, relates_to=relates_to)
