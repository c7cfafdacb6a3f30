"""Benchmark of the domain core, without any channel: durable ingest and a patient's query.

    .venv/bin/python bench/core_bench.py                 # on the registry built by bench/xds_bench.py
    .venv/bin/python bench/core_bench.py --processes 2   # one writer process per core

Ingest calls `submission_register` (CDA validation, encryption, blob fsync, metadata and audit
commit) for one ~30 KB CDA per submission; the query calls `document_search` (access decision
and audit included) for a patient with 50 documents. Prints documents/s and p50/p95.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.xds_bench import PARAGRAPHS, bench_author, configure, migrate, percentile  # noqa: E402


def _setup() -> None:
    import django

    django.setup()


def _ingest(
    count: int, queue: multiprocessing.Queue[tuple[list[float], float, float]], barrier: object
) -> None:
    _setup()
    from django.db import connection

    from dmp.demo.personas import create_personas
    from dmp.documents.builders import DocumentDraft, submission_for
    from dmp.documents.services import submission_register

    personas = create_personas()
    caller = personas.ps(personas.dr_bernard, personas.cabinet)
    author = bench_author(personas)
    submissions = [
        submission_for(
            ins=personas.alice.identifier, author=author, drafts=[DocumentDraft(paragraphs=PARAGRAPHS)]
        )
        for _ in range(count)
    ]
    latencies = []
    barrier.wait()  # type: ignore[attr-defined]  # every process starts ingesting together
    begun = time.time()
    for submission in submissions:
        started = time.perf_counter()
        submission_register(caller=caller, submission=submission)
        latencies.append(time.perf_counter() - started)
    ended = time.time()
    connection.close()
    queue.put((latencies, begun, ended))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database", default="opendmp_bench_xds")
    parser.add_argument("--documents", type=int, default=300, help="documents ingested per process")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    configure(args.database)
    migrate()

    queue: multiprocessing.Queue[tuple[list[float], float, float]] = multiprocessing.Queue()
    barrier = multiprocessing.Barrier(args.processes)
    workers = [
        multiprocessing.Process(target=_ingest, args=(args.documents, queue, barrier))
        for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies = [value for values, _, _ in results for value in values]
    elapsed = max(end for _, _, end in results) - min(begin for _, begin, _ in results)
    total = args.documents * args.processes
    print(
        f"ingest ({args.processes} process(es), 30 KB CDA)   {total / elapsed:8.1f} docs/s   "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms   "
        f"p95 {percentile(latencies, 0.95) * 1000:6.1f} ms"
    )

    _setup()
    from dmp.demo.personas import create_personas
    from dmp.documents.models import DocumentEntry
    from dmp.documents.selectors import DocumentQuery, document_search
    from dmp.records.access import record_by_ins

    personas = create_personas()
    caller = personas.ps(personas.dr_bernard, personas.cabinet)
    record = record_by_ins(personas.leo.identifier)
    if record is None:
        raise SystemExit("no record for the benchmark patient: build the registry with bench/xds_bench.py")
    from dmp.documents.builders import DocumentDraft, submission_for
    from dmp.documents.services import submission_register

    author = bench_author(personas)
    missing = 50 - DocumentEntry.objects.filter(record=record).count()
    for _ in range(max(0, missing)):
        submission_register(
            caller=caller,
            submission=submission_for(ins=personas.leo.identifier, author=author, drafts=[DocumentDraft()]),
        )
    found = len(document_search(caller=caller, record=record, query=DocumentQuery()))
    timings = []
    for _ in range(args.queries):
        begun = time.perf_counter()
        document_search(caller=caller, record=record, query=DocumentQuery())
        timings.append(time.perf_counter() - begun)
    print(
        f"document_search ({found} docs, registry of {DocumentEntry.objects.count():,})   "
        f"p50 {statistics.median(timings) * 1000:6.1f} ms   p95 {percentile(timings, 0.95) * 1000:6.1f} ms"
    )


if __name__ == "__main__":
    main()
