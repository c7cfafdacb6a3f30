"""Where the time of one SOAP request goes: cProfile of the XDS endpoint, in-process, on PostgreSQL.

    .venv/bin/python bench/xds_profile.py                    # small database, built on first run
    .venv/bin/python bench/xds_profile.py --database opendmp_bench_xds --top 40
    .venv/bin/python bench/xds_profile.py --sampling    # pyinstrument; PROFILE_ALL=1 shows every frame
    .venv/bin/python bench/xds_profile.py --plain       # wall and application CPU per request

Requests are signed beforehand and handed to the WSGI application without HTTP, one at a time,
so the figures are the server's own cost per request: milliseconds, SQL statements, and the
functions that take the time (cProfile's call counts are exact, so they compare two versions
of the code on a noisy machine; its times inflate small functions, which sampling does not).
Complements `xds_bench.py`, which measures throughput over HTTP.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.xds_bench import (  # noqa: E402
    PARAGRAPHS,
    VAR,
    bench_author,
    bench_claims,
    configure,
    enrol_bench_card,
    migrate,
    recreate_database,
)


class GcTimer:
    """A gc.callbacks entry adding up the time spent in garbage collections."""

    def __init__(self) -> None:
        self.total, self.runs, self._since = 0.0, 0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._since
            self.runs += 1


class StatementCounter:
    """A `connection.execute_wrapper` counting the statements run."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database", default="opendmp_profile_xds")
    parser.add_argument("--requests", type=int, default=60, help="profiled requests per transaction")
    parser.add_argument("--top", type=int, default=25, help="functions listed per transaction")
    parser.add_argument(
        "--only", help="profile only the transactions whose name starts with this, e.g. ITI-43"
    )
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative", "ncalls"])
    parser.add_argument(
        "--dump", type=Path, help="also write each transaction's cProfile stats here, e.g. var/iti43.prof"
    )
    parser.add_argument("--sql", action="store_true", help="print the SQL of the last request of each kind")
    parser.add_argument(
        "--plain", action="store_true", help="time the requests without the profiler or SQL capture"
    )
    parser.add_argument(
        "--sampling",
        action="store_true",
        help="sample the stacks (pyinstrument): cProfile's per-call cost inflates small functions",
    )
    args = parser.parse_args()
    fresh = args.database != "opendmp_bench_xds"
    # Its own database gets its own keys and PKI: a bench running meanwhile keeps its trust bundle.
    var = ROOT / "var" / f"profile-{args.database}" if fresh else VAR
    configure(args.database, var)
    if fresh:
        recreate_database(args.database)
    migrate()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from dmp.documents.builders import DocumentDraft, submission_for
    from dmp.documents.models import DocumentEntry
    from dmp.ihe.xds.dsg import signed_submission
    from dmp.ihe.xds.ebrim import provide_and_register_request
    from dmp.ihe.xds.queries import StoredQuery
    from opendmp_client.xds import (
        PROVIDE_AND_REGISTER,
        RETRIEVE,
        STORED_QUERY,
        XdsClient,
        retrieve_request,
        stored_query_request,
    )

    personas, sign, homologation = enrol_bench_card("Profile LPS", var)
    author = bench_author(personas)

    def client_for(ins_cx: str) -> XdsClient:
        return XdsClient(
            endpoint="http://testserver/ihe/xds/",
            claims=bench_claims(personas, homologation, ins_cx, "Profile LPS"),
            key=sign.key,
            certificate=sign.certificate,
        )

    web = Client()

    def submission(patient: Any) -> dict[str, Any]:
        body, attachments = provide_and_register_request(
            signed_submission(
                submission_for(
                    ins=patient.identifier, author=author, drafts=[DocumentDraft(paragraphs=PARAGRAPHS)]
                ),
                key=sign.key,
                certificate=sign.certificate,
            ),
            mtom=True,
        )
        return {"action": PROVIDE_AND_REGISTER, "body": body, "attachments": attachments, "mtom": True}

    def post(prepared: tuple[str, bytes]) -> bytes:
        response = web.generic("POST", "/ihe/xds/", prepared[1], content_type=prepared[0])
        if response.status_code != 200 or b"Failure" in response.content[:4000]:
            raise RuntimeError(response.content[:2000])
        return bytes(response.content)

    leo = client_for(personas.leo.identifier.hl7())
    for _ in range(max(0, 50 - DocumentEntry.objects.filter(record__patient=personas.leo).count())):
        post(leo.prepare(**submission(personas.leo)))
    alice = client_for(personas.alice.identifier.hl7())
    params = {
        "$XDSDocumentEntryPatientId": f"'{personas.leo.identifier.hl7()}'",
        "$XDSDocumentEntryStatus": "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')",
    }
    documents = list(
        DocumentEntry.objects.filter(record__patient=personas.leo).values_list(
            "repository_unique_id", "unique_id"
        )
    )
    cases = {
        "ITI-41 provide and register (one ~30 KB CDA)": [
            alice.prepare(**submission(personas.alice)) for _ in range(args.requests)
        ],
        f"ITI-18 FindDocuments ({len(documents)} documents)": [
            leo.prepare(STORED_QUERY, stored_query_request(StoredQuery.FIND_DOCUMENTS, params))
            for _ in range(args.requests)
        ],
        "ITI-43 retrieve (MTOM)": [
            leo.prepare(RETRIEVE, retrieve_request([documents[i % len(documents)]]), mtom=True)
            for i in range(args.requests)
        ],
    }
    for name, requests in cases.items():
        if args.only and not name.startswith(args.only):
            continue
        post(requests.pop())  # warm-up: imports, connection, caches
        if args.plain:
            collections = GcTimer()
            gc.callbacks.append(collections)
            started, cpu = time.perf_counter(), time.process_time()
            for prepared in requests:
                post(prepared)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            gc.callbacks.remove(collections)
            # The CPU time is this process's alone, without PostgreSQL's and without waiting on it.
            print(
                f"== {name}: {wall / len(requests) * 1000:.1f} ms/request, "
                f"{cpu / len(requests) * 1000:.1f} ms of application CPU, of which "
                f"{collections.total / len(requests) * 1000:.2f} ms in {collections.runs} garbage collections"
            )
            continue
        if args.sampling:
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.0005)
            sampler.start()
            for prepared in requests:
                post(prepared)
            sampler.stop()
            print(f"\n== {name}")
            print(
                sampler.output_text(
                    show_all=bool(os.environ.get("PROFILE_ALL")), short_mode=False, time="percent_of_total"
                )
            )
            continue
        profile = cProfile.Profile()
        # Statements counted by a wrapper: capturing them (--sql) puts Django's debug cursor in
        # the profile, which writes out every statement with its values (2 ms of an ITI-41).
        counter = StatementCounter()
        queries = CaptureQueriesContext(connection)
        with queries if args.sql else connection.execute_wrapper(counter):
            started = time.perf_counter()
            profile.enable()
            for prepared in requests:
                post(prepared)
            profile.disable()
            elapsed = time.perf_counter() - started
        count = len(queries) if args.sql else counter.count
        print(
            f"\n== {name}: {elapsed / len(requests) * 1000:.1f} ms/request under the profiler, "
            f"{count / len(requests):.1f} SQL statements/request"
        )
        if args.sql:
            last = queries.captured_queries[-round(len(queries) / len(requests)) :]
            print("\n".join(f"  {query['time']}s  {query['sql'][:300]}" for query in last))
        if args.dump:
            profile.dump_stats(args.dump.with_name(f"{args.dump.stem}-{name.split()[0]}{args.dump.suffix}"))
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:20000])


if __name__ == "__main__":
    main()
