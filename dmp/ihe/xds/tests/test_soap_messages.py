"""SOAP/MTOM messages as other SOAP stacks write them (WCF, CXF, hand-written templates)."""

from __future__ import annotations

import base64
import quopri
import string
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmp.ihe.xds import ebrim, soap

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
PART_ID = "http://tempuri.org/1/638000000000000001"


def _envelope(body: str) -> str:
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:a="{WSA}"><s:Header>'
        '<a:Action s:mustUnderstand="1">urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b</a:Action>'
        f"<a:MessageID>urn:uuid:6c1f1e3a-3f7e-4c55-9d1e-2b8f9c0d1e2f</a:MessageID></s:Header><s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )


def _mtom(href: str, part: bytes, *, encoding: str = "binary") -> tuple[str, bytes]:
    """A ProvideAndRegister request with one document in an MTOM part, framed as WCF frames it."""
    boundary = "uuid:5f0d3c1e-0b7a-4c2e-8f55-7a1d2c3b4e5f+id=2"
    root = _envelope(
        '<ProvideAndRegisterDocumentSetRequest xmlns="urn:ihe:iti:xds-b:2007">'
        '<Document id="Document01">'
        f'<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="{href}"/>'
        "</Document></ProvideAndRegisterDocumentSetRequest>"
    )
    body = (
        (
            f"--{boundary}\r\nContent-ID: <http://tempuri.org/0>\r\nContent-Transfer-Encoding: 8bit\r\n"
            'Content-Type: application/xop+xml;charset=utf-8;type="application/soap+xml"\r\n\r\n'
            f"{root}\r\n--{boundary}\r\nContent-ID: <{PART_ID}>\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + part
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = (
        'multipart/related; type="application/xop+xml"; start="<http://tempuri.org/0>"; '
        f'boundary="{boundary}"; start-info="application/soap+xml"'
    )
    return content_type, body


CDA = b"<ClinicalDocument>\r\n  d\xc3\xa9j\xc3\xa0 vu = 100 %\r\n</ClinicalDocument>\x00\xff"


@pytest.mark.parametrize(
    "href",
    [f"cid:{PART_ID}", "cid:http%3A%2F%2Ftempuri.org%2F1%2F638000000000000001"],
    ids=["raw", "url-encoded (RFC 2392, WCF)"],
)
def test_an_xop_include_finds_its_part_whether_its_cid_is_url_encoded_or_not(href):
    message = soap.parse_message(*_mtom(href, CDA))
    assert ebrim.document_contents(message.body, message.attachments) == {"Document01": CDA}


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("base64", base64.encodebytes(CDA)),
        ("quoted-printable", quopri.encodestring(CDA)),
        ("BINARY", CDA),
    ],
    ids=["base64", "quoted-printable", "binary"],
)
def test_a_part_is_read_through_its_content_transfer_encoding(encoding, encoded):
    message = soap.parse_message(*_mtom(f"cid:{PART_ID}", encoded, encoding=encoding))
    assert ebrim.document_contents(message.body, message.attachments) == {"Document01": CDA}


def test_an_unknown_content_transfer_encoding_is_refused_not_stored_as_is():
    with pytest.raises(soap.SoapError, match="x-uuencode"):
        soap.parse_message(*_mtom(f"cid:{PART_ID}", CDA, encoding="x-uuencode"))


def test_comments_beside_the_request_in_the_body_are_not_a_second_element():
    query = '<q:AdhocQueryRequest xmlns:q="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'
    message = soap.parse_message(
        "application/soap+xml", _envelope(f"<!-- FindDocuments -->{query}<?trace on?>").encode()
    )
    assert message.body.tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0}AdhocQueryRequest"
    with pytest.raises(soap.SoapError, match="exactly one element"):
        soap.parse_message("application/soap+xml", _envelope(f"<!-- two -->{query}{query}").encode())
    with pytest.raises(soap.SoapError, match="exactly one element"):
        soap.parse_message("application/soap+xml", _envelope("<!-- nothing -->").encode())


_NAMES = st.sampled_from(["boundary", "start", "action", "type", "charset", "start-info", "Boundary", "x*"])
_TOKENS = st.text(alphabet="!#$%&'*+.^_`|~-" + string.ascii_letters + string.digits, min_size=1, max_size=12)
_QUOTED = st.text(alphabet=string.printable.replace("\r", "").replace("\n", "") + "éü", max_size=16)


@st.composite
def _content_types(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(["multipart/related", "application/soap+xml", "text/xml", "x"]))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_NAMES)
        if draw(st.booleans()):
            value = draw(_TOKENS)
        else:
            value = '"' + draw(_QUOTED).replace("\\", "\\\\").replace('"', '\\"') + '"'
        text += (
            draw(st.sampled_from([";", "; ", " ;", ";\t"]))
            + name
            + draw(st.sampled_from(["=", " = "]))
            + value
        )
    return text + draw(st.sampled_from(["", "", " ", ";", "; x", "(c)"]))


@settings(max_examples=500, deadline=None)
@given(
    content_type=_content_types(), name=st.sampled_from(["boundary", "start", "action", "type", "charset"])
)
def test_content_type_parameters_are_read_as_email_reads_them(content_type, name):
    """The plain-syntax fast path gives what email.message (RFC 2045/2231) gives, or leaves the
    header to it: same value, same absence, whatever the spacing, quoting or case."""
    message = Message()
    message["content-type"] = content_type
    expected = message.get_param(name)
    assert soap._param(content_type, name) == (expected if isinstance(expected, str) else None)


def test_a_wcf_mtom_content_type_is_read_without_email():
    content_type = (
        'multipart/related; type="application/xop+xml"; boundary="uuid:5f0d+id=2"; '
        'start="<http://tempuri.org/0>"; start-info="application/soap+xml"; '
        'action="urn:ihe:iti:2007:RetrieveDocumentSet"'
    )
    assert soap._plain_params(content_type) == {
        "type": "application/xop+xml",
        "boundary": "uuid:5f0d+id=2",
        "start": "<http://tempuri.org/0>",
        "start-info": "application/soap+xml",
        "action": "urn:ihe:iti:2007:RetrieveDocumentSet",
    }
    assert soap._plain_params("multipart/related; boundary*=utf-8''x") is None
