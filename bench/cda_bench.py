"""CDA benchmark: parse + header extraction + validation (and rendering) of a ~30 KB and a ~3 MB document.

    .venv/bin/python bench/cda_bench.py [--repeat 20]

Uses the CDA XSD of ../shared/material when present (as an operator would configure it).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, max(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + secrets.token_urlsafe(32))
    os.environ.setdefault("OPENDMP_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("OPENDMP_AUDIT_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
    xsd = ROOT.parent / "shared" / "material" / "ans-cda-3.0" / "infrastructure" / "cda" / "CDA_extended.xsd"
    if xsd.is_file():
        os.environ.setdefault("OPENDMP_CDA_XSD", str(xsd))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, CdaPatient, CdaSection, build_cda
    from dmp.cda.header import extract_header
    from dmp.cda.render import render_html
    from dmp.cda.validation import CoherenceFacts, validate_cda

    def document(rows: int) -> bytes:
        rows_ = [(f"Analyse {i}", f"{i % 97}.{i % 10}", "mmol/L", "3.5 - 5.0") for i in range(rows)]
        table = (("Examen", "Résultat", "Unité", "Valeurs de référence"), *rows_)
        spec = CdaDocumentSpec(
            id_root="1.2.250.1.999.1.9",
            type_code="11502-2",
            title="Compte rendu d'examens biologiques",
            effective_time=dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
            patient=CdaPatient(
                "285033523810113", "1.2.250.1.213.1.4.10", "MARTIN", "Alice", dt.date(1985, 3, 14), "F"
            ),
            author=CdaAuthor(
                "810000001001",
                "LEFEVRE",
                "Bernard",
                "10",
                "SM26",
                CdaOrganization("3123456789012345", "Labo"),
            ),
            sections=(CdaSection(title="Résultats", paragraphs=("Prélèvement du matin.",), table=table),),
        )
        return build_cda(spec)

    facts = CoherenceFacts(
        unique_id="1.2.250.1.999.1.9",
        type_code="11502-2",
        class_code="10",
        format_code="",
        patient_ins=("1.2.250.1.213.1.4.10", "285033523810113"),
        confidentiality_codes=frozenset({"N"}),
        facility_type="SA07",
        practice_setting="AMBULATOIRE",
        creation_time=dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
    )
    print(f"CDA XSD: {'on' if xsd.is_file() else 'off (no ../shared/material)'}")
    for label, rows in (("30 KB", 360), ("3 MB", 40000)):
        data = document(rows)
        problems = validate_cda(data, expected=facts)
        extract = timed(functools.partial(extract_header, data), args.repeat)
        validate = timed(functools.partial(validate_cda, data, expected=facts), args.repeat)
        render = timed(functools.partial(render_html, data), max(3, args.repeat // 4))
        print(
            f"{label:>6} ({len(data) / 1024:,.0f} KiB, {len(problems)} problems): "
            f"parse+extract {extract[0]:.1f} ms   parse+extract+validate {validate[0]:.1f} ms"
            f" (max {validate[1]:.1f})   render HTML {render[0]:.1f} ms"
        )


if __name__ == "__main__":
    main()
