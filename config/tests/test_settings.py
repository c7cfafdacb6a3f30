"""Settings come from the environment and fail loudly; the embedded database is durable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from config.env import env_bool, env_int, env_key, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "call"),
    [
        ("X_BOOL", "maybe", lambda: env_bool("X_BOOL", False)),
        ("X_INT", "12a", lambda: env_int("X_INT", 1)),
        ("X_INT", "0", lambda: env_int("X_INT", 1, minimum=1)),
        ("X_KEY", "not base64!", lambda: env_key("X_KEY")),
        ("X_KEY", "AAAA", lambda: env_key("X_KEY")),
    ],
)
def test_malformed_values_stop_start_up(monkeypatch, name, value, call):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured):
        call()


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "flag"
    secret.write_text("true\n")
    monkeypatch.setenv("X_FLAG_FILE", str(secret))
    assert env_bool("X_FLAG", False) is True


def test_unsupported_database_urls_are_refused():
    with pytest.raises(ImproperlyConfigured):
        parse_database_url("mysql://root@localhost/x")


def test_sqlite_runs_in_wal_mode_with_full_synchronous_writes(db, tmp_path):
    config = parse_database_url(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert "journal_mode=WAL" in str(config["OPTIONS"])
    if connection.vendor != "sqlite" or connection.settings_dict["NAME"] == ":memory:":
        # In-memory test databases cannot use WAL; check a file database opened the same way.
        import sqlite3

        database = sqlite3.connect(tmp_path / "x.sqlite3")
        database.executescript(str(config["OPTIONS"]["init_command"]))  # type: ignore[index]
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2


def _django(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OPENDMP_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_start_up_without_a_secret_key_fails_loudly():
    result = _django("check", OPENDMP_MASTER_KEY="bQ" * 22, OPENDMP_AUDIT_KEY="bQ" * 22)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_a_production_configuration_passes_the_deploy_checks(tmp_path):
    key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # 32 bytes, base64
    result = _django(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY="p" + "".join(chr(65 + i % 26) + str(i) for i in range(40)),
        DJANGO_ALLOWED_HOSTS="dmp.example.org",
        OPENDMP_MASTER_KEY=key,
        OPENDMP_AUDIT_KEY=key,
        OPENDMP_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_postgresql_prepares_repeated_statements_unless_told_not_to(db):
    options = parse_database_url("postgres://u@db:5432/dmp")["OPTIONS"]
    assert options == {"server_side_binding": True, "prepare_threshold": 5}
    pooled = parse_database_url("postgres://u@db:5432/dmp?server_side_binding=false&sslmode=require")[
        "OPTIONS"
    ]
    assert pooled == {"server_side_binding": False, "sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="prepare_threshold"):
        parse_database_url("postgres://u@db:5432/dmp?prepare_threshold=often")
    if connection.vendor == "postgresql":
        # The test database itself runs with the default: statements are bound on the server.
        assert type(connection.connection.cursor()).__name__ == "ServerBindingCursor"


def test_the_beat_schedule_runs_registered_tasks_that_work():
    """`celery beat` in production runs this schedule: every entry must name a task the workers
    know (a typo is silent until the night it does not run), and the periodic ones must run."""
    from config.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "pilotage.refresh",
        "audit.checkpoint",
        "accounts.notify_exceptional_access",
        "connectors.sync",
        "documents.blobs_gc",
    }
    assert scheduled <= set(app.tasks)


@pytest.mark.django_db
def test_the_scheduled_maintenance_tasks_run(blob_dir):
    from config.celery import app

    app.loader.import_default_modules()
    from dmp.audit.models import AuditCheckpoint

    before = AuditCheckpoint.objects.count()
    app.tasks["audit.checkpoint"].apply().get()
    assert AuditCheckpoint.objects.count() == before + 1
    assert app.tasks["documents.blobs_gc"].apply().get() == 0
