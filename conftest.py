"""Suite-wide fixtures: personas, and keeping append-only tables compatible with flushes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connection

from dmp.common.ttl_cache import clear_reference_caches

pytest_plugins = ["tests.plugins.personas", "tests.plugins.ihe_kit"]


def _purge_audit_rows() -> None:
    """Transactional tests end with a flush; the append-only triggers must step aside for it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_pendingnotice")  # they point to the events
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            cursor.execute("DELETE FROM audit_auditevent")
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
            cursor.execute("DELETE FROM audit_auditevent")
            cursor.execute(
                "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent "
                "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;"
            )


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Caches (throttles, locks, reference rows) must not leak from one test into the next."""
    cache.clear()
    clear_reference_caches()
    yield
    cache.clear()
    clear_reference_caches()


@pytest.fixture
def transactional_db(transactional_db: None) -> Iterator[None]:
    yield
    _purge_audit_rows()
