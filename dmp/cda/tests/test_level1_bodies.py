"""Level 1 (nonXMLBody) documents: a body is refused unless it is base64 of an XDS-SD format
that agrees with the formatCode; a stored body prints as text, as an image, or as a notice."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re

import pytest
from django.utils import translation
from PIL import Image

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, build_cda
from dmp.cda.header import extract_header
from dmp.cda.render import embedded_body, printout, render_pdf
from dmp.cda.validation import CoherenceFacts, validate_cda

FORMAT_PDF = "urn:ihe:iti:xds-sd:pdf:2008"


@pytest.fixture(autouse=True)
def _english():
    """The messages as the web services give them to software vendors: in English (French is
    the source language, which the portals show)."""
    with translation.override("en"):
        yield


def _level1(**changes: object) -> bytes:
    values: dict[str, object] = {
        "id_root": "1.2.250.1.999.1.79",
        "type_code": "11488-4",
        "title": "Compte rendu de consultation",
        "effective_time": dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.UTC),
        "patient": CdaPatient(
            "285033523810113", "1.2.250.1.213.1.4.10", "MARTIN", "Alice", dt.date(1985, 3, 14), "F"
        ),
        "author": CdaAuthor(
            "810000001001", "LEFEVRE", "Bernard", "10", "SM26", CdaOrganization("3123456789012345", "Cabinet")
        ),
        "pdf": b"%PDF-1.4 minimal",
    }
    values.update(changes)
    return build_cda(CdaDocumentSpec(**values))  # type: ignore[arg-type]


def _facts(data: bytes, format_code: str) -> CoherenceFacts:
    header = extract_header(data)
    return CoherenceFacts(
        unique_id=header.unique_id,
        type_code=header.type_code.code,
        class_code=header.class_code or "",
        format_code=format_code,
        patient_ins=header.patient_ins,
        confidentiality_codes=frozenset({header.confidentiality.code}),
        facility_type=header.facility_type.code if header.facility_type else "",
        practice_setting=header.practice_setting.code if header.practice_setting else "",
        creation_time=header.effective_time or dt.datetime.now(dt.UTC),
    )


def _with_body(data: bytes, media_type: str, body: bytes, *, representation: str = "B64") -> bytes:
    """`data` with its level 1 body replaced (`body` is written as given)."""
    attributes = f'mediaType="{media_type}"' + (
        f' representation="{representation}"' if representation else ""
    )
    return re.sub(
        rb"<text [^>]*>[^<]*</text>",
        f"<text {attributes}>".encode() + body.replace(b"\\", b"\\\\") + b"</text>",
        data,
        count=1,
    )


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _messages(data: bytes, format_code: str) -> list[str]:
    return [p.message for p in validate_cda(data, expected=_facts(data, format_code))]


def test_a_level1_pdf_is_accepted_and_its_line_wrapped_base64_read():
    data = _level1()
    assert _messages(data, FORMAT_PDF) == []
    wrapped = base64.b64encode(b"%PDF-1.4 minimal")
    data = _with_body(data, "application/pdf", wrapped[:8] + b"\n      " + wrapped[8:])
    assert _messages(data, FORMAT_PDF) == []
    assert embedded_body(data).content == b"%PDF-1.4 minimal"  # type: ignore[union-attr]


def test_a_body_that_is_not_base64_is_refused():
    data = _with_body(_level1(), "application/pdf", b"!!!not base64!!!")
    assert _messages(data, FORMAT_PDF) == ["nonXMLBody/text is not valid base64"]


def test_an_empty_body_is_refused():
    data = _with_body(_level1(), "application/pdf", b"")
    assert _messages(data, FORMAT_PDF) == ["nonXMLBody/text is empty"]


def test_a_body_of_a_media_type_outside_xds_sd_is_refused_whatever_the_format_code():
    html = base64.b64encode(b"<html><body>hello</body></html>")
    data = _with_body(_level1(), "text/html", html)
    messages = _messages(data, FORMAT_PDF)
    assert any(
        m.startswith("nonXMLBody/text mediaType 'text/html' is not a level 1 format") for m in messages
    )
    assert (
        "formatCode: metadata says 'urn:ihe:iti:xds-sd:pdf:2008', the CDA header 'mediaType text/html'"
        in (messages)
    )


def test_a_jpeg_body_must_be_declared_as_jpeg():
    data = _with_body(_level1(), "image/jpeg", base64.b64encode(_jpeg()))
    assert _messages(data, "urn:ihe:iti-fr:xds-sd:jpeg:2010") == []
    mismatch = "the CDA header 'urn:ihe:iti-fr:xds-sd:jpeg:2010'"
    assert _messages(data, FORMAT_PDF) == [f"formatCode: metadata says '{FORMAT_PDF}', {mismatch}"]


def test_a_text_body_not_in_base64_is_refused_and_a_stored_one_keeps_its_spaces():
    data = _with_body(_level1(), "text/plain", b"Tension normale, pas de traitement.", representation="")
    assert _messages(data, "urn:ihe:iti:xds-sd:text:2008") == [
        'nonXMLBody/text must be in base64 (representation="B64")'
    ]
    # One stored before this check is still shown as written.
    assert embedded_body(data).content == b"Tension normale, pas de traitement."  # type: ignore[union-attr]
    assert "Tension normale, pas de traitement." in printout(data).lines


def test_a_jpeg_body_is_printed_as_an_image_not_as_text():
    jpeg = _jpeg()
    data = _with_body(_level1(), "image/jpeg", base64.b64encode(jpeg))
    printed = printout(data)
    assert printed.image == jpeg
    assert not any("\ufffd" in line for line in printed.lines)
    pdf = render_pdf(data)
    assert pdf.startswith(b"%PDF")
    assert jpeg in pdf  # copied as is, a DCTDecode image


def test_a_body_that_cannot_be_printed_is_a_notice_not_its_bytes():
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    for media_type, content in (
        ("image/tiff", tiff.getvalue()),
        ("text/rtf", b"{\\rtf1\\ansi Tension normale}"),
        ("image/jpeg", b"\xff\xd8\xff not really a JPEG \xff\xd9"),
    ):
        printed = printout(_with_body(_level1(), media_type, base64.b64encode(content)))
        assert printed.image is None
        assert printed.lines[-1] == f"Le document joint ({media_type}) ne peut pas être repris dans ce PDF."
    broken = printout(_with_body(_level1(), "image/jpeg", b"!!!"))
    assert broken.lines[-1] == "Le document joint ne peut pas être lu."
