"""CI-SIS header rules of a submitted CDA: one patient, coded values from their code system."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import translation

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, CdaSection, build_cda
from dmp.cda.validation import validate_cda


def _document() -> bytes:
    return build_cda(
        CdaDocumentSpec(
            id_root="1.2.250.1.999.1.80",
            type_code="11488-4",
            title="Compte rendu de consultation",
            effective_time=dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.UTC),
            patient=CdaPatient(
                "285033523810113", "1.2.250.1.213.1.4.10", "MARTIN", "Alice", dt.date(1985, 3, 14), "F"
            ),
            author=CdaAuthor(
                "810000001001", "LEFEVRE", "Bernard", "10", "SM26", CdaOrganization("3123456789012345", "Cab")
            ),
            sections=(CdaSection(title="Motif", paragraphs=("Contrôle annuel.",)),),
        )
    )


DOCUMENT = _document()


@pytest.fixture(autouse=True)
def _english():
    """The messages as the web services give them to software vendors: in English (French is
    the source language, which the portals show)."""
    with translation.override("en"):
        yield


def test_the_built_document_is_valid():
    assert validate_cda(DOCUMENT) == []


def test_a_second_patient_is_refused():
    block = re.search(rb"<recordTarget>.*?</recordTarget>", DOCUMENT, re.S)
    assert block is not None
    other = block.group(0).replace(b"285033523810113", b"185073523810118").replace(b"MARTIN", b"AUTRE")
    data = DOCUMENT.replace(block.group(0), block.group(0) + other, 1)
    assert [(p.message, p.location) for p in validate_cda(data)] == [
        ("only one recordTarget is allowed", "recordTarget")
    ]
    with translation.override("fr"):
        assert [(p.message, p.location) for p in validate_cda(data)] == [
            ("un seul recordTarget est admis", "recordTarget")
        ]


@pytest.mark.parametrize(
    ("element", "message", "location"),
    [
        ("code", "code '11488-4' (codeSystem {system}) is not a DMP document type", "code"),
        (
            "healthCareFacility",
            "healthCareFacility 'SA07' (codeSystem {system}) unknown",
            "healthCareFacility",
        ),
        (
            "standardIndustryClassCode",
            "practice setting 'AMBULATOIRE' (codeSystem {system}) unknown",
            "standardIndustryClassCode",
        ),
    ],
)
@pytest.mark.parametrize("system", ["9.9.9", None])
def test_a_code_is_checked_with_its_code_system(element, message, location, system):
    pattern = (
        rb"(<healthCareFacility>\s*<code [^>]*?)( codeSystem=\"[^\"]*\")"
        if element == "healthCareFacility"
        else rf"(<{element} [^>]*?)( codeSystem=\"[^\"]*\")".encode()
    )
    replacement = rb"\1" + (f' codeSystem="{system}"'.encode() if system else b"")
    data, count = re.subn(pattern, replacement, DOCUMENT, count=1)
    assert count == 1
    assert [(p.message, p.location) for p in validate_cda(data)] == [
        (message.format(system=system or "-"), location)
    ]
