"""CI-SIS header rules of a submitted CDA: one patient, coded values from their code system."""

from __future__ import annotations

import datetime as dt
import re

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
