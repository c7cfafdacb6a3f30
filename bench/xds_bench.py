"""Benchmark of the SOAP channel on PostgreSQL, over real HTTP against gunicorn.

    .venv/bin/python bench/xds_bench.py --documents 1000000          # builds the registry once
    .venv/bin/python bench/xds_bench.py --reuse                      # re-runs on the same data
    .venv/bin/python bench/xds_bench.py --reuse --read-clients 8     # more queries/retrieves in flight
    .venv/bin/python bench/xds_bench.py --reuse --threads 4 --keep-alive  # gthread, kept connections

Measures ITI-41 (one ~30 KB CDA per submission, N concurrent signed clients), ITI-18
FindDocuments on a patient with 50 documents, and ITI-43 retrieve, and prints documents/s or
queries/s with p50/p95 latencies. Every request carries its own freshly signed VIHF, verified by
the server (signature, chain, replay), as in production. Each transaction runs three times: with
the clients signing in the timed loop on the server's 2 cores; with the requests signed before
the clock starts; and pre-signed with a light check of the answers (their status and object
count; one in 20 also parsed and checked in full once the clock stops). The last two measure
the server as if the clients ran on other machines, the last one without the client's parsing
either: its requests go out as bytes made before the clock starts, one connection each over a
bare socket (`exchange_once`), where the dev kit's `http.client` took 0.9-1.3 ms of the 2 cores
per request, the server's own being 5-8 ms; with `--keep-alive`, over one connection per client
kept from request to request (`KeptConnection`), which gunicorn keeps only with `--threads` > 1.
Under each figure, the CPU time per request of the application server, of PostgreSQL and of
the client (from /proc), and the rate 2 cores would reach at full load with that cost: steadier
than throughput on a shared machine, and the measure of how far a target is. Before and after
the measures, the time a fixed Python workload takes (`machine_speed`) says how fast the
machine was then: compare runs by it, or A/B two versions in alternation.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench-xds"


def bench_env(var: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The settings every bench shares, plus `extra`: keys kept in `var`/keys.env (made on first
    run), the database, blobs and data under `var`, demo mode. Also set in this process's environment."""
    var.mkdir(parents=True, exist_ok=True)
    keys = var / "keys.env"
    if not keys.exists():
        keys.write_text(
            f"DJANGO_SECRET_KEY=bench-{secrets.token_urlsafe(32)}\n"
            f"OPENDMP_MASTER_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n"
            f"OPENDMP_AUDIT_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n"
        )
    env = dict(line.split("=", 1) for line in keys.read_text().splitlines() if "=" in line)
    env |= {
        "DATABASE_URL": database_url,
        "OPENDMP_BLOB_DIR": str(var / "blobs"),
        "OPENDMP_DATA_DIR": str(var),
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "OPENDMP_DEMO": "true",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **extra,
    }
    os.environ.update(env)
    return env


def configure(database: str, var: Path = VAR) -> dict[str, str]:
    """Settings for a run on `database`, keys, blobs and test PKI under `var` (a bench and a
    profile given different directories can run at the same time without re-issuing each other's PKI)."""
    # OPENDMP_BENCH_DB_OPTIONS: a query string of backend options, e.g. ?server_side_binding=false
    url = f"postgres://postgres@127.0.0.1:5432/{database}" + os.environ.get("OPENDMP_BENCH_DB_OPTIONS", "")
    return bench_env(var, url, OPENDMP_TRUST_BUNDLE=str(var / "pki" / "trust.pem"))


def migrate() -> None:
    """Brings the configured database to the code's schema: a registry built by older code gets the
    newer columns before a bench starts (idempotent, a second on an up-to-date registry)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def recreate_database(database: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}"')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine_speed() -> float:
    """Milliseconds a fixed single-threaded Python workload takes now (best of 5): the same
    code runs 20 % slower on some machines of one kind, and slower at some hours on the same
    machine (its neighbours). Printed before and after the measures, to read figures from
    different runs or machines against each other."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for value in range(1_000_000):
            total += value % 7
        digest = hashlib.sha256(str(total).encode() * 20_000).digest()
        best = min(best, time.perf_counter() - started)
    assert digest  # noqa: S101 - keeps the work
    return best * 1000


def run_concurrently(clients: int, total: int, job: Callable[[int, int], None]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(worker_index: int) -> None:
        for index in range(worker_index, total, clients):
            started = time.perf_counter()
            try:
                job(worker_index, index)
            except BaseException as exc:  # noqa: BLE001 - reported after the run
                failures.append(exc)
                return
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, first: {failures[0]!r}")
    return elapsed, latencies


def report(name: str, count: int, elapsed: float, latencies: list[float], unit: str) -> None:
    print(
        f"{name:<34} {count / elapsed:8.1f} {unit}/s   p50 {statistics.median(latencies) * 1000:6.1f} ms"
        f"   p95 {percentile(latencies, 0.95) * 1000:6.1f} ms   ({count} in {elapsed:.1f} s)"
    )


class CpuMeter:
    """CPU time used by the application server (gunicorn master and workers), by PostgreSQL (every
    `postgres` process, background writers included) and by this client process, read from /proc.

    Throughput on a shared 2-core machine varies by 15 % from run to run; CPU time per request
    varies much less, and says how far a transaction is from a target: at full load, 2 cores
    serve 2000 / (ms of CPU per request) requests per second. A process's own time plus the time
    of its children it has reaped covers the PostgreSQL backends and workers that exit meanwhile."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _processes(self) -> list[tuple[int, int, str, float]]:
        """(pid, parent pid, name, CPU seconds of the process and its reaped children) of every process."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = sum(int(value) for value in fields[11:15]) / self.ticks  # utime stime cutime cstime
            found.append((int(entry.name), int(fields[1]), name, cpu))
        return found

    def sample(self) -> tuple[float, float, float]:
        """(application server, PostgreSQL, client) CPU seconds so far; zeros where /proc is absent."""
        if not Path("/proc/self/stat").exists():
            return 0.0, 0.0, time.process_time()
        processes = self._processes()
        server = {self.server_pid}
        for pid, parent, _name, _cpu in processes:
            if parent in server:
                server.add(pid)
        application = sum(cpu for pid, _parent, _name, cpu in processes if pid in server)
        database = sum(cpu for _pid, _parent, name, cpu in processes if name == "postgres")
        return application, database, time.process_time()


def report_cpu(before: tuple[float, float, float], after: tuple[float, float, float], count: int) -> None:
    application, database, client = ((b - a) * 1000 / count for a, b in zip(before, after, strict=True))
    total = application + database + client
    print(
        f"{'':<34} CPU per request: application {application:.1f} ms, PostgreSQL {database:.1f} ms, "
        f"client {client:.1f} ms; 2 cores at full load: {2000 / total if total else 0:.0f}/s"
    )


# About 30 KB of CDA narrative: the document size the benchmarks of the issues ask for.
PARAGRAPHS = tuple(f"Paragraphe {i} : " + "observation clinique détaillée. " * 12 for i in range(70))


def bench_author(personas: Any) -> Any:
    """Dr Bernard at his practice, author of the benchmark documents (needs django.setup())."""
    from dmp.demo.scenarios import author_info

    return author_info(personas.dr_bernard, personas.cabinet)


def bench_claims(personas: Any, homologation: str, patient_ins: str, lps_name: str = "Bench LPS") -> Any:
    """The VIHF facts of Dr Bernard's bench software for the patient `patient_ins` (HL7 CX)."""
    from opendmp_client.vihf import VihfClaims

    bernard = personas.dr_bernard
    return VihfClaims(
        subject_id=bernard.national_id,
        subject_name=bernard.display_name,
        profession="10",
        specialty="SM26",
        structure_id=personas.cabinet.id_nat,
        patient_ins=patient_ins,
        lps_id="1.2.250.1.999.9.9",
        lps_name=lps_name,
        lps_version="1",
        homologation=homologation,
    )


def enrol_bench_card(software_name: str, var: Path = VAR) -> tuple[Any, Any, str]:
    """(personas, Dr Bernard's registered CPS signing card, homologation number) for a run.

    Needs django.setup(); the test PKI is written under `var` for the server's trust bundle."""
    from dmp.compat.services import software_register
    from dmp.demo.personas import create_personas
    from dmp.documents.models import DocumentEntry
    from dmp.identity.models import Certificate
    from dmp.identity.pki import certificate_register, create_test_pki

    personas = create_personas()
    pki = create_test_pki()
    bernard = personas.dr_bernard
    _, sign = pki.cps_card(national_id=bernard.national_id, display_name=bernard.display_name)
    pki.write(var / "pki")
    certificate_register(sign, usage=Certificate.Usage.CPS_SIGN, professional=bernard)
    _, homologation = software_register(vendor="Bench", name=software_name)
    print(f"registry: {DocumentEntry.objects.count():,} documents")
    return personas, sign, homologation


@contextmanager
def gunicorn(port: int, workers: int, env: dict[str, str], threads: int = 1) -> Iterator[CpuMeter]:
    """The application served by gunicorn on 127.0.0.1:`port` for the duration of the block, with
    a meter of the CPU it uses. One thread per worker is gunicorn's sync worker, which closes
    every connection after its answer; more is its gthread worker, which keeps them alive."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        yield CpuMeter(server.pid)
    finally:
        server.terminate()
        server.wait()


def http_request(endpoint: str, content_type: str, data: bytes, *, keep_alive: bool = False) -> bytes:
    """The bytes of one HTTP/1.1 POST of `data` to `endpoint` (http://host:port/path), asking the
    server to close the connection after its answer (`exchange_once` reads until it does), or
    with `keep_alive` to keep it for the next request (`KeptConnection`)."""
    target = urllib.parse.urlsplit(endpoint)
    connection = "" if keep_alive else "Connection: close\r\n"
    head = (
        f"POST {target.path or '/'} HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n{connection}\r\n"
    )
    return head.encode("latin-1") + data


def _head_of(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    """(status, headers by lowercase name) of an HTTP/1.1 answer's head; anything else raises."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"not an HTTP answer: {head[:200]!r}")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines[1:])
    }
    return int(lines[0].split(b" ", 2)[1]), headers


def _whole(status: int, headers: dict[bytes, bytes], body: bytes) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of an answer whose body is whole: one chunked, or not as long
    as its Content-Length says, raises."""
    if b"transfer-encoding" in headers or int(headers.get(b"content-length", b"-1")) != len(body):
        raise RuntimeError(f"answer of {len(body)} bytes, headers {headers!r}")
    return status, headers.get(b"content-type", b"").decode("latin-1"), body


def exchange_once(address: tuple[str, int], request: bytes) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of the answer to `request` (`http_request`), sent on a
    connection of its own: the load generator's least work per call, so that the 2 cores go to
    the server. An answer cut short, or not as long as its Content-Length says, raises."""
    chunks = []
    with socket.create_connection(address) as connection:
        connection.sendall(request)
        while chunk := connection.recv(1 << 18):
            chunks.append(chunk)
    head, separator, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not separator:
        raise RuntimeError(f"not an HTTP answer: {head[:200]!r}")
    return _whole(*_head_of(head), body)


class KeptConnection(threading.local):
    """One client's connection kept from request to request (HTTP/1.1 keep-alive, as an LPS's
    HTTP client pool does): `exchange` reads each answer by its Content-Length. Only gunicorn's
    gthread worker (`--threads` > 1, as deploy/README runs it) keeps connections; its sync
    worker closes each one."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.connection: socket.socket | None = None
        self.pending = b""

    def exchange(self, request: bytes) -> tuple[int, str, bytes]:
        if self.connection is None:
            self.connection, self.pending = socket.create_connection(self.address), b""
        try:
            self.connection.sendall(request)
            data = self._read_until(b"\r\n\r\n")
        except (ConnectionError, EOFError):
            # The server closed the kept connection between two requests (its keep-alive
            # timeout) before reading this one: sent again on a new one.
            self.close()
            self.connection = socket.create_connection(self.address)
            self.connection.sendall(request)
            data = self._read_until(b"\r\n\r\n")
        head, _, self.pending = data.partition(b"\r\n\r\n")
        status, headers = _head_of(head)
        length = int(headers.get(b"content-length", b"-1"))
        if length < 0:
            raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
        while len(self.pending) < length:
            self.pending += self._recv()
        body, self.pending = self.pending[:length], self.pending[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return _whole(status, headers, body)

    def _recv(self) -> bytes:
        assert self.connection is not None  # noqa: S101 - opened by exchange
        chunk = self.connection.recv(1 << 18)
        if not chunk:
            raise EOFError("connection closed by the server")
        return chunk

    def _read_until(self, marker: bytes) -> bytes:
        data = self.pending
        while marker not in data:
            data += self._recv()
        return data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection, self.pending = None, b""


WARM_UP = 16  # untimed requests before each measurement (4 workers, a few each)
FULL_CHECK_EVERY = 20  # answers of a light-check run parsed and checked in full, one in so many
# Where a successful answer says so: the registry response's status, ahead of the registry objects.
SUCCESS = b'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"'
LIGHT_HEAD = 4096


class Prepare(TypedDict, total=False):
    """The arguments of `XdsClient.prepare` for one request."""

    action: str
    body: Any
    attachments: dict[str, bytes]
    mtom: bool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database", default="opendmp_bench_xds")
    parser.add_argument("--documents", type=int, default=1_000_000, help="registry size to build")
    parser.add_argument("--reuse", action="store_true", help="keep the existing database")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of ITI-41")
    parser.add_argument(
        "--read-clients",
        type=int,
        help="concurrent clients of ITI-18 and ITI-43 (default: --clients); the issue fixes none for them",
    )
    parser.add_argument("--submissions", type=int, default=400)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--retrieves", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per worker (deploy/README: 4, keeps connections alive)",
    )
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="the light-check runs keep each client's connection (needs --threads > 1)",
    )
    args = parser.parse_args()
    if args.keep_alive and args.threads < 2:
        parser.error("--keep-alive needs gunicorn's gthread worker: --threads 2 or more")
    env = configure(args.database)
    python = sys.executable
    if not args.reuse:
        recreate_database(args.database)
    migrate()
    if not args.reuse:
        started = time.perf_counter()
        subprocess.run(
            [
                python,
                "manage.py",
                "demo_generate",
                "--patients",
                str(max(1, args.documents // 5)),
                "--metadata-only-beyond",
                "2000",
            ],
            cwd=ROOT,
            check=True,
        )
        print(f"registry built in {time.perf_counter() - started:.0f} s")
    # As a deployment does after an upgrade: entries stored without their query-answer text (the
    # bulk builder writes rows, not texts; an earlier release) get it (ihe.xds.entry_texts).
    subprocess.run([python, "manage.py", "xds_entry_texts"], cwd=ROOT, check=True)

    import django

    django.setup()
    from dmp.documents.builders import DocumentDraft, submission_for
    from dmp.documents.models import DocumentEntry
    from dmp.ihe.xds.dsg import signed_submission
    from dmp.ihe.xds.ebrim import provide_and_register_request
    from dmp.ihe.xds.queries import StoredQuery
    from opendmp_client.xds import (
        PROVIDE_AND_REGISTER,
        RETRIEVE,
        STORED_QUERY,
        SoapResponse,
        XdsClient,
        read_retrieved,
        registry_objects,
        retrieve_request,
        stored_query_request,
    )

    personas, sign, homologation = enrol_bench_card("Bench LPS")

    port = 8765
    address = ("127.0.0.1", port)
    print(f"machine speed before: {machine_speed():.0f} ms for the fixed workload (lower is faster)")
    with gunicorn(port, args.workers, env, args.threads) as meter:
        author = bench_author(personas)

        def client_for(ins_cx: str) -> XdsClient:
            return XdsClient(
                endpoint=f"http://127.0.0.1:{port}/ihe/xds/",
                claims=bench_claims(personas, homologation, ins_cx),
                key=sign.key,
                certificate=sign.certificate,
            )

        alice = client_for(personas.alice.identifier.hl7())

        def measure(
            name: str,
            unit: str,
            client: XdsClient,
            requests: list[Prepare],
            check: Callable[[SoapResponse], None],
            clients: int,
            objects: tuple[bytes, int] | None = None,
        ) -> None:
            """Three times: with the clients signing each VIHF in the timed loop on the server's 2
            cores; with every request signed before the clock starts; and signed beforehand with
            the client reading little of each answer, its status and how many `objects` it holds
            (every `FULL_CHECK_EVERY`-th answer still checked in full). The last two measure the
            server as if the clients ran on other machines: parsing a 350 KB query answer costs the
            client about 3 ms of the cores the server needs. The first `WARM_UP` requests are not
            timed: each worker's first call imports the CDA and XML-signature machinery and opens
            a connection."""
            warm, requests = requests[:WARM_UP], requests[WARM_UP:]
            third = len(requests) // 3

            def signed_in_loop(_worker: int, index: int) -> None:
                check(client.send(*client.prepare(**requests[index])))

            def timed(label: str, count: int, job: Callable[[int, int], None]) -> None:
                before = meter.sample()
                elapsed, latencies = run_concurrently(clients, count, job)
                after = meter.sample()
                report(f"{name}, {label}", count, elapsed, latencies, unit)
                report_cpu(before, after, count)

            run_concurrently(clients, len(warm), lambda _w, i: check(client.send(*client.prepare(**warm[i]))))
            timed("signed in loop", third, signed_in_loop)
            ready = [client.prepare(**request) for request in requests[third:]]

            def presigned(_worker: int, index: int) -> None:
                check(client.send(*ready[index]))

            timed("pre-signed", third, presigned)
            light = [
                http_request(client.endpoint, *prepared, keep_alive=args.keep_alive)
                for prepared in ready[third:]
            ]
            kept_connection = KeptConnection(address)
            send = kept_connection.exchange if args.keep_alive else partial(exchange_once, address)

            kept: list[tuple[int, str, bytes]] = []

            def presigned_light(_worker: int, index: int) -> None:
                answer = send(light[index])
                status, _type, payload = answer
                if status != 200 or SUCCESS not in payload[:LIGHT_HEAD]:
                    raise RuntimeError(f"HTTP {status}: {payload[:LIGHT_HEAD]!r}")
                if objects is not None and payload.count(objects[0]) != objects[1]:
                    raise RuntimeError(f"{payload.count(objects[0])} {objects[0]!r} instead of {objects[1]}")
                if index % FULL_CHECK_EVERY == 0:
                    kept.append(answer)

            timed("pre-signed, light check", len(light), presigned_light)
            for answer in kept:  # parsing a 350 KB answer takes the client ms the server would use
                check(client.read_answer(*answer))

        def accepted(response: SoapResponse) -> None:
            if not response.ok:
                raise RuntimeError(response.errors)

        submissions = []
        for _ in range(WARM_UP + 3 * args.submissions):
            # The lot's XAdES signature is made here, outside the clock, like the CDA itself.
            body, attachments = provide_and_register_request(
                signed_submission(
                    submission_for(
                        ins=personas.alice.identifier,
                        author=author,
                        drafts=[DocumentDraft(paragraphs=PARAGRAPHS)],
                    ),
                    key=sign.key,
                    certificate=sign.certificate,
                ),
                mtom=True,
            )
            submissions.append(
                Prepare(action=PROVIDE_AND_REGISTER, body=body, attachments=attachments, mtom=True)
            )
        size = max(len(content) for content in submissions[0]["attachments"].values())
        measure(
            f"ITI-41 ({size // 1024} KB CDA, {args.clients} clients)",
            "docs",
            alice,
            submissions,
            accepted,
            args.clients,
        )
        readers = args.read_clients or args.clients

        # A patient with exactly 50 documents for the query and retrieve measurements.
        leo = client_for(personas.leo.identifier.hl7())
        existing = DocumentEntry.objects.filter(record__patient=personas.leo).count()
        for _ in range(max(0, 50 - existing)):
            leo.provide_and_register(
                submission_for(
                    ins=personas.leo.identifier, author=author, drafts=[DocumentDraft(paragraphs=PARAGRAPHS)]
                )
            )
        params = {
            "$XDSDocumentEntryPatientId": f"'{personas.leo.identifier.hl7()}'",
            "$XDSDocumentEntryStatus": "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')",
        }
        found = registry_objects(leo.stored_query(StoredQuery.FIND_DOCUMENTS, params), "ExtrinsicObject")
        measure(
            f"ITI-18 FindDocuments ({len(found)} docs, {readers} clients)",
            "queries",
            leo,
            # One body each: a message takes its body element into its envelope.
            [
                Prepare(action=STORED_QUERY, body=stored_query_request(StoredQuery.FIND_DOCUMENTS, params))
                for _ in range(WARM_UP + 3 * args.queries)
            ],
            accepted,
            readers,
            (b"<rim:ExtrinsicObject ", len(found)),
        )
        unique_ids = list(
            DocumentEntry.objects.filter(record__patient=personas.leo).values_list(
                "repository_unique_id", "unique_id"
            )
        )

        def one_document(response: SoapResponse) -> None:
            if len(read_retrieved(response)) != 1:
                raise RuntimeError("retrieve failed")

        measure(
            f"ITI-43 retrieve (MTOM, {readers} clients)",
            "docs",
            leo,
            [
                Prepare(action=RETRIEVE, body=retrieve_request([unique_ids[i % len(unique_ids)]]), mtom=True)
                for i in range(WARM_UP + 3 * args.retrieves)
            ],
            one_document,
            readers,
            (b"<xdsb:DocumentResponse>", 1),
        )
    print(f"machine speed after: {machine_speed():.0f} ms for the fixed workload")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
