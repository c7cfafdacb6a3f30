"""Where the time of one SOAP request goes: cProfile of the XDS endpoint, in-process, on PostgreSQL.

    .venv/bin/python bench/xds_profile.py                    # small database, built on first run
    .venv/bin/python bench/xds_profile.py --database opendmp_bench_xds --top 40
    .venv/bin/python bench/xds_profile.py --sampling    # pyinstrument; PROFILE_ALL=1 shows every frame
    .venv/bin/python bench/xds_profile.py --plain       # wall and application CPU per request
    .venv/bin/python bench/xds_profile.py --instructions    # instructions per request (valgrind)

Requests are signed beforehand and handed to the WSGI application gunicorn serves
(`config.wsgi`) without HTTP, one at a time, so the figures are the server's own cost per
request: milliseconds, SQL statements, and the functions that take the time (cProfile's call
counts are exact, so they compare two versions of the code on a noisy machine; its times inflate
small functions, which sampling does not). `--instructions` counts the instructions the
application executes per request under callgrind: the same count to 0.1 % from run to run
whatever else the machine does, where times vary by 10 to 25 % on a shared machine; the way to
tell whether a change saves 2 %. Complements `xds_bench.py`, which measures throughput over HTTP.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
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


WARM_UP = 10  # requests of each kind sent before the measured ones

# Set in the copy of this script that runs under callgrind (--instructions).
UNDER_CALLGRIND = "OPENDMP_PROFILE_CALLGRIND_OUT"


def instructions_since_zeroed() -> int:
    """Under callgrind: dump the counters (zeroed by `zero_instructions`) and read their total."""
    prefix = os.environ[UNDER_CALLGRIND]
    subprocess.run(["callgrind_control", "--dump", str(os.getpid())], check=True, capture_output=True)
    dumps = sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.*"), key=lambda f: f.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no total in {dumps[-1]}")


def zero_instructions() -> None:
    subprocess.run(["callgrind_control", "--zero", str(os.getpid())], check=True, capture_output=True)


def run_under_callgrind() -> None:
    """Run this script again under callgrind, counting instructions only around each measurement."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("--instructions needs valgrind (Debian package valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "callgrind.out")
        # Collection starts at once (callgrind_control needs the client running), but only the
        # counts between a zero and a dump are read.
        command = [
            "valgrind",
            "--quiet",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            *sys.argv,
        ]
        sys.exit(subprocess.run(command, env={**os.environ, UNDER_CALLGRIND: out}, check=False).returncode)


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
        "--instructions",
        action="store_true",
        help="count the instructions executed per request under callgrind (about 60 times slower)",
    )
    parser.add_argument(
        "--sampling",
        action="store_true",
        help="sample the stacks (pyinstrument): cProfile's per-call cost inflates small functions",
    )
    args = parser.parse_args()
    if args.instructions and UNDER_CALLGRIND not in os.environ:
        run_under_callgrind()
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
    from django.test.utils import CaptureQueriesContext

    from config.wsgi import application
    from dmp.common.wsgi import call_wsgi
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
        answer = call_wsgi(application, "POST", "/ihe/xds/", prepared[1], CONTENT_TYPE=prepared[0])
        if answer.status != 200 or b"Failure" in answer.content[:4000]:
            raise RuntimeError(answer.content[:2000])
        return answer.content

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
            alice.prepare(**submission(personas.alice)) for _ in range(args.requests + WARM_UP)
        ],
        f"ITI-18 FindDocuments ({len(documents)} documents)": [
            leo.prepare(STORED_QUERY, stored_query_request(StoredQuery.FIND_DOCUMENTS, params))
            for _ in range(args.requests + WARM_UP)
        ],
        "ITI-43 retrieve (MTOM)": [
            leo.prepare(RETRIEVE, retrieve_request([documents[i % len(documents)]]), mtom=True)
            for i in range(args.requests + WARM_UP)
        ],
    }
    for name, requests in cases.items():
        if args.only and not name.startswith(args.only):
            continue
        for _ in range(WARM_UP):
            post(requests.pop())  # imports, connection, caches
        if args.instructions:
            gc.collect()
            zero_instructions()
            for prepared in requests:
                post(prepared)
            total = instructions_since_zeroed()
            print(f"== {name}: {total / len(requests) / 1e6:.2f} M instructions/request")
            continue
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
