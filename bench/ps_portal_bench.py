"""Benchmark of the PS portal pages on the demo population (server time through Django's test Client).

    .venv/bin/python bench/ps_portal_bench.py --patients 10000            # SQLite, builds once
    .venv/bin/python bench/ps_portal_bench.py --postgres --patients 10000 # PostgreSQL
    .venv/bin/python bench/ps_portal_bench.py --reuse                     # re-runs on the same data

Logs Dr Bernard LEFÈVRE in with his demo card and requests each page `--repeat` times, then
prints p50 / p95 in milliseconds (the whole Django stack: middleware, services, audit writes,
templates; no network). The budget is 300 ms per page.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "bench-pro"
BUDGET_MS = 300

from bench.xds_bench import bench_env, recreate_database  # noqa: E402


def configure(postgres: bool) -> dict[str, str]:
    database = (
        "postgres://postgres@127.0.0.1:5432/opendmp_bench_pro"
        if postgres
        else f"sqlite:///{VAR / 'bench.sqlite3'}"
    )
    # Static files through the finders (no collectstatic manifest needed); DEBUG stays off.
    return bench_env(VAR, database, OPENDMP_TESTING="true")


def build(postgres: bool, patients: int) -> None:
    if postgres:
        recreate_database("opendmp_bench_pro")
    else:
        (VAR / "bench.sqlite3").unlink(missing_ok=True)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, check=True)
    subprocess.run(
        [python, "manage.py", "demo_generate", "--patients", str(patients), "--metadata-only-beyond", "200"],
        cwd=ROOT,
        check=True,
    )


def measure(function: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    samples = []
    status = 0
    for _ in range(repeat):
        started = time.perf_counter()
        status = function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the database built by a previous run")
    args = parser.parse_args()
    configure(args.postgres)
    if not args.reuse:
        build(args.postgres, args.patients)
    import django

    django.setup()
    from django.test import Client

    from dmp.documents.models import DocumentEntry
    from dmp.identity.models import HealthProfessional, Patient
    from dmp.records.models import Authorisation

    record_count = Patient.objects.count()
    # Dr Bernard LEFÈVRE, the personas' médecin traitant (RPPS seed 1001).
    bernard = HealthProfessional.objects.filter(family_name="Lefèvre", given_name="Bernard").first()
    if bernard is None:
        raise SystemExit("no demo data: run without --reuse")
    mt = Authorisation.objects.filter(grantee_id=bernard.national_id, is_medecin_traitant=True).first()
    if mt is None:
        raise SystemExit("Dr Bernard is médecin traitant of nobody: demo data incomplete")
    record = mt.record
    patient = record.patient
    document = DocumentEntry.objects.filter(record=record, availability_status__endswith="Approved").first()
    client = Client()
    client.post("/pro/connexion/demo", {"professional": bernard.national_id})
    base = f"/pro/dossier/{record.public_id}/"
    pages: dict[str, Callable[[], int]] = {
        "home (records authorised)": lambda: client.get("/pro/").status_code,
        "search by INS (TD0.2)": lambda: (
            client.post(
                "/pro/recherche", {"ins": patient.ins, "authority": patient.ins_authority}
            ).status_code
        ),
        "record status": lambda: client.get(base).status_code,
        "document index": lambda: client.get(f"{base}documents").status_code,
        "document index, all statuses": lambda: (
            client.get(f"{base}documents", {"status": ["current", "archived", "deprecated"]}).status_code
        ),
        "own traces": lambda: client.get("/pro/traces").status_code,
    }
    if document is not None:
        pages["document view (CDA rendered)"] = lambda: (
            client.get(f"{base}document/{document.unique_id}/").status_code
        )
        pages["raw download"] = lambda: client.get(f"{base}document/{document.unique_id}/brut").status_code
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"PS portal on {engine}, {record_count} patients, {args.repeat} requests per page")
    print(f"{'page':36} {'p50 ms':>8} {'p95 ms':>8}  status")
    worst = 0.0
    for name, call in pages.items():
        call()  # warm-up
        p50, p95, status = measure(call, args.repeat)
        worst = max(worst, p95)
        print(f"{name:36} {p50:8.1f} {p95:8.1f}  {status}")
    verdict = "within" if worst < BUDGET_MS else "OVER"
    print(f"worst p95 {worst:.1f} ms: {verdict} the {BUDGET_MS} ms budget")


if __name__ == "__main__":
    main()
