"""The header summary shown above a rendered document: names read once, local time."""

from __future__ import annotations

import datetime as dt

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, CdaSection, build_cda
from dmp.cda.header import extract_header
from dmp.cda.render import render_html


def test_given_names_are_read_once_and_the_time_is_local():
    data = build_cda(
        CdaDocumentSpec(
            id_root="1.2.250.1.999.1.78",
            type_code="11488-4",
            title="Compte rendu de consultation",
            # 10:30 UTC in November is 11:30 in Paris.
            effective_time=dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.UTC),
            patient=CdaPatient(
                "285033523810113", "1.2.250.1.213.1.4.10", "MARTIN", "Alice Marie", dt.date(1985, 3, 14), "F"
            ),
            author=CdaAuthor(
                "810000001001", "LEFEVRE", "Bernard", "10", "SM26", CdaOrganization("31234", "Cab")
            ),
            sections=(CdaSection(title="Motif", paragraphs=("Contrôle annuel.",)),),
        )
    )
    assert extract_header(data).patient_given_names == "ALICE MARIE"
    page = render_html(data)
    assert "MARTIN ALICE MARIE</dd>" in page
    assert "02/11/2026 11:30" in page
