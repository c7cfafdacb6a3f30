#!/usr/bin/env python3.11
"""Developer entry point: `python3.11 dev.py run` and `python3.11 dev.py test`.

Standard library only, so that it works on a fresh machine with nothing but Python 3.11:
it creates `.venv`, installs the pinned requirements when they change, then runs the
requested task inside that environment.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("OPENDMP_VENV", ROOT / ".venv"))
VAR = ROOT / "var"
BIN = VENV / "bin"
PY = BIN / "python"


def log(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(cmd: list[str | Path], *, env: dict[str, str] | None = None, check: bool = True) -> int:
    printable = " ".join(str(c) for c in cmd)
    log(f"$ {printable}")
    completed = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=False)
    if check and completed.returncode != 0:
        log(f"FAILED ({completed.returncode}): {printable}")
        sys.exit(completed.returncode)
    return completed.returncode


def ensure_venv(requirements: str) -> None:
    if sys.version_info[:2] != (3, 11):
        log(f"warning: OpenDMP targets Python 3.11, this is {sys.version.split()[0]}")
    if not PY.exists():
        log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    req_path = ROOT / requirements
    digest = hashlib.sha256()
    for name in ("requirements.txt", requirements):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".installed-{req_path.stem}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", req_path])
    stamp.write_text(digest.hexdigest())


def dev_env() -> dict[str, str]:
    """Environment for local runs: secrets generated once into var/dev.env (never committed)."""
    VAR.mkdir(exist_ok=True)
    secrets_file = VAR / "dev.env"
    if not secrets_file.exists():
        secrets_file.write_text(
            f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"OPENDMP_MASTER_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n"
            f"OPENDMP_AUDIT_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n"
        )
        secrets_file.chmod(0o600)
    env = dict(os.environ)
    for line in secrets_file.read_text().splitlines():
        key, _, value = line.partition("=")
        env.setdefault(key, value)
    env.setdefault("OPENDMP_DEMO", "true")
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'opendmp.sqlite3'}")
    env.setdefault("OPENDMP_BLOB_DIR", str(VAR / "blobs"))
    env.setdefault("OPENDMP_DATA_DIR", str(VAR))
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


def cmd_run(args: argparse.Namespace) -> None:
    ensure_venv("requirements.txt")
    env = dev_env()
    manage: list[str | Path] = [PY, "manage.py"]
    run([*manage, "migrate", "--no-input", "-v", "0"], env=env)
    run([*manage, "demo_generate", "--patients", str(args.patients), "--if-empty"], env=env)
    run([*manage, "pki_generate", "--if-missing"], env=env)
    run([*manage, "staff_demo", "--if-missing"], env=env)
    run([*manage, "collectstatic", "--no-input", "-v", "0"], env=env)
    log(f"OpenDMP is starting on http://{args.bind} (demo data, SQLite, filesystem blob store)")
    os.execve(  # noqa: S606 - replaces this process with the server, arguments are fixed
        BIN / "gunicorn",
        [
            "gunicorn",
            "config.wsgi",
            "--bind",
            args.bind,
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        env,
    )


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium; CI installs it when missing."""
    if shutil.which("chromium") or os.environ.get("CI") != "true":
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("CI: installing Debian chromium for the browser tests")
        run(["apt-get", "install", "-y", "-q", "chromium", "fonts-dejavu-core"], check=False)


def cmd_test(args: argparse.Namespace) -> None:
    ensure_venv("requirements-dev.txt")
    on_ci = os.environ.get("CI") == "true"
    env = dict(os.environ)
    env.setdefault("DJANGO_SECRET_KEY", "test-" + secrets.token_urlsafe(32))
    env.setdefault("OPENDMP_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    env.setdefault("OPENDMP_AUDIT_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    env["OPENDMP_TESTING"] = "true"
    if not args.no_lint:
        run([BIN / "ruff", "check", "."], env=env)
        run([BIN / "ruff", "format", "--check", "."], env=env)
        run([BIN / "lint-imports"], env=env)
        run([BIN / "mypy"], env=env)
        run([PY, "manage.py", "makemigrations", "--check", "--dry-run"], env=env)
    ensure_chromium()
    # A name per checkout, so that several checkouts on one machine never share a test database.
    suffix = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    pytest = [PY, "-m", "pytest", *args.pytest_args]
    targets = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for target in targets:
        target_env = dict(env)
        if target == "sqlite":
            target_env["DATABASE_URL"] = "sqlite:///:memory:"
        else:
            if not postgres_reachable():
                if on_ci:
                    log("PostgreSQL on 127.0.0.1:5432 is unreachable and CI=true: failing.")
                    sys.exit(1)
                log("SKIPPED the PostgreSQL run: nothing listens on 127.0.0.1:5432 (set CI=true to fail).")
                continue
            target_env["DATABASE_URL"] = os.environ.get(
                "OPENDMP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
            )
        target_env["OPENDMP_TEST_DB_NAME"] = f"test_opendmp_{suffix}"
        log(f"test suite on {target}")
        run(pytest, env=target_env)
    log("all checks passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="set up, load demo data and serve on http://127.0.0.1:8000")
    p_run.add_argument("--bind", default="127.0.0.1:8000")
    p_run.add_argument("--patients", type=int, default=200, help="demo population size")
    p_run.set_defaults(func=cmd_run)
    p_test = sub.add_parser("test", help="lint, type-check and run the suite on SQLite and PostgreSQL")
    p_test.add_argument("--db", choices=["both", "sqlite", "postgres"], default="both")
    p_test.add_argument("--no-lint", action="store_true", help="skip ruff, import-linter, mypy")
    p_test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest")
    p_test.set_defaults(func=cmd_test)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
