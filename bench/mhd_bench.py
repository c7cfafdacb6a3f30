"""Benchmark of the FHIR channel (IHE MHD / PDSm) on PostgreSQL, over HTTP against gunicorn.

    .venv/bin/python bench/mhd_bench.py             # on the registry built by bench/xds_bench.py

ITI-65 (one ~30 KB CDA per Bundle, N concurrent clients) and ITI-67 (a patient with 50
documents), with p50/p95 latencies, after WARM_UP untimed requests. Tokens are obtained once per
client (10 minute lifetime).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.xds_bench import (  # noqa: E402
    PARAGRAPHS,
    WARM_UP,
    bench_author,
    bench_claims,
    configure,
    enrol_bench_card,
    gunicorn,
    migrate,
    report,
    report_cpu,
    run_concurrently,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database", default="opendmp_bench_xds")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--submissions", type=int, default=400)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    env = configure(args.database)
    migrate()
    import django

    django.setup()
    from dmp.documents.builders import DocumentDraft, submission_for
    from opendmp_client.fhir import bundle_for, fetch_token

    personas, sign, homologation = enrol_bench_card("Bench LPS (FHIR)")
    port = 8766
    base = f"http://localhost:{port}/fhir"
    with gunicorn(port, args.workers, env) as meter:
        author = bench_author(personas)

        def token_for(ins_cx: str) -> str:
            claims = bench_claims(personas, homologation, ins_cx)
            return fetch_token(claims, key=sign.key, certificate=sign.certificate, token_url=f"{base}/token")

        def call(method: str, url: str, token: str, body: bytes | None = None) -> bytes:
            request = urllib.request.Request(  # noqa: S310 - local benchmark server
                url,
                data=body,
                method=method,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            )
            with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
                return bytes(reply.read())

        alice_token = token_for(personas.alice.identifier.hl7())
        bundles = [
            json.dumps(
                bundle_for(
                    submission_for(
                        ins=personas.alice.identifier,
                        author=author,
                        drafts=[DocumentDraft(paragraphs=PARAGRAPHS)],
                    )
                )
            ).encode()
            for _ in range(WARM_UP + args.submissions)
        ]

        def submit(_worker: int, index: int) -> None:
            call("POST", f"{base}/", alice_token, bundles[index])

        warm, bundles = bundles[:WARM_UP], bundles[WARM_UP:]

        def warm_up(_worker: int, index: int) -> None:
            call("POST", f"{base}/", alice_token, warm[index])

        run_concurrently(args.clients, WARM_UP, warm_up)
        before = meter.sample()
        elapsed, latencies = run_concurrently(args.clients, args.submissions, submit)
        after = meter.sample()
        report(f"ITI-65 (~30 KB CDA, {args.clients} clients)", args.submissions, elapsed, latencies, "docs")
        report_cpu(before, after, args.submissions)
        leo_token = token_for(personas.leo.identifier.hl7())
        ins = personas.leo.identifier
        url = f"{base}/DocumentReference?patient.identifier=urn:oid:{ins.oid}%7C{ins.value}&_count=100"
        found = len(json.loads(call("GET", url, leo_token)).get("entry", []))

        def query(_worker: int, _index: int) -> None:
            call("GET", url, leo_token)

        run_concurrently(args.clients, WARM_UP, query)
        before = meter.sample()
        elapsed, latencies = run_concurrently(args.clients, args.queries, query)
        after = meter.sample()
        report(f"ITI-67 search ({found} docs)", args.queries, elapsed, latencies, "queries")
        report_cpu(before, after, args.queries)


if __name__ == "__main__":
    main()
