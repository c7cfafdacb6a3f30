"""Benchmark of the patient portal pages with Django's test Client (server time, no network).

    .venv/bin/python bench/patient_portal_bench.py                       # SQLite file, 10,000 patients
    .venv/bin/python bench/patient_portal_bench.py --postgres opendmp_bench_patient

Builds the demo data set once (`manage.py demo_generate --patients N --if-empty`), gives Alice
(a persona of that data set) a web account and `--documents` more documents, logs in with
password + one-time code, then requests each page `--repeat` times and prints p50/p95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "bench-patient"

from bench.xds_bench import bench_env  # noqa: E402


def configure(args: argparse.Namespace) -> None:
    database = (
        f"postgres://postgres@127.0.0.1:5432/{args.postgres}"
        if args.postgres
        else f"sqlite:///{VAR / 'bench.sqlite3'}"
    )
    bench_env(VAR, database, OPENDMP_MESSAGE_GATEWAY="outbox")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--postgres", default="", help="PostgreSQL database name (default: SQLite file)")
    parser.add_argument("--documents", type=int, default=30, help="extra documents for Alice")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    configure(args)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # as `dev.py run` does
    started = time.perf_counter()
    call_command("demo_generate", patients=args.patients, if_empty=True)
    print(f"data set ready in {time.perf_counter() - started:.0f} s")

    import re

    from django.test import Client

    from dmp.accounts.models import OutboxMessage, WebAccount
    from dmp.accounts.services import account_activate, account_initialise
    from dmp.audit.models import AuditEvent
    from dmp.demo.personas import create_personas
    from dmp.documents.builders import DocumentDraft, author_for, submission_for
    from dmp.documents.models import DocumentEntry
    from dmp.documents.services import submission_register
    from dmp.identity.models import Patient
    from dmp.records.models import Record

    personas = create_personas()
    alice = personas.alice
    record = Record.objects.get(patient=alice)
    bernard = personas.ps(personas.dr_bernard)
    have = DocumentEntry.objects.filter(record=record).count()
    if have < args.documents:
        author = author_for(
            person_id=bernard.actor.person_id,
            family_name="Lefèvre",
            given_name="Bernard",
            structure_id=bernard.actor.structure_id,
            structure_name=bernard.actor.structure_name,
        )
        for index in range(args.documents - have):
            submission_register(
                caller=bernard,
                submission=submission_for(
                    ins=alice.identifier, author=author, drafts=[DocumentDraft(title=f"Compte rendu {index}")]
                ),
            )
    password = "Bench#Patient-2026"  # noqa: S105 - benchmark credential
    code = account_initialise(caller=bernard, record=record, otp_destination="alice.bench@example.org")
    WebAccount.objects.filter(identifier="alice.bench").exclude(record=record).update(identifier=None)
    account_activate(code=code, identifier="alice.bench", password=password)
    print(
        f"patients: {Patient.objects.count():,}  documents: {DocumentEntry.objects.count():,}  "
        f"audit events: {AuditEvent.objects.count():,}  Alice's documents: "
        f"{DocumentEntry.objects.filter(record=record).count()}"
    )

    client = Client()
    client.post("/patient/connexion/", {"identifier": "alice.bench", "password": password})
    message = OutboxMessage.objects.filter(destination="alice.bench@example.org").order_by("-pk").first()
    match = re.search(r"\b(\d{6})\b", message.body if message else "")
    if match is None or client.post("/patient/connexion/code/", {"code": match.group(1)}).status_code != 302:
        sys.exit("login failed")
    document = DocumentEntry.objects.filter(record=record, invisible_to_patient=False).order_by("-pk").first()
    if document is None:
        sys.exit("no document to show")
    pages = {
        "home": "/patient/",
        "documents": "/patient/documents/",
        "document": f"/patient/documents/{document.unique_id}/",
        "access": "/patient/acces/",
        "traces": "/patient/historique/",
        "expression": "/patient/expression/",
        "summary.pdf": "/patient/export/synthese.pdf",
        "export.zip": "/patient/export/mon-dmp-xdm.zip",
    }
    print(f"{'page':<14}{'p50 ms':>9}{'p95 ms':>9}   ({args.repeat} requests each)")
    for name, path in pages.items():
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                sys.exit(f"{path}: HTTP {response.status_code}")
        print(f"{name:<14}{statistics.median(timings):>9.1f}{percentile(timings, 0.95):>9.1f}")


if __name__ == "__main__":
    main()
