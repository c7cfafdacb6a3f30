"""The PostgreSQL backend trusts a connection that served a request a moment ago, and checks
one idle longer or one whose request met a database error, as Django's health check does."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, close_old_connections, connection, connections

from dmp.common import postgresql
from dmp.common.postgresql import base

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend")


@pytest.fixture
def checks(transactional_db, monkeypatch):
    """The health checks (`SELECT 1`) the connection makes."""
    made: list[int] = []
    original = type(connections["default"]).is_usable

    def is_usable(self):
        made.append(1)
        return original(self)

    monkeypatch.setattr(type(connections["default"]), "is_usable", is_usable)
    return made


def request(sql: str = "SELECT 2") -> None:
    """One request as Django's handler frames it: old connections closed as it starts and ends."""
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        close_old_connections()


def test_the_project_runs_on_its_backend():
    assert isinstance(connections["default"], base.DatabaseWrapper)
    assert connection.settings_dict["ENGINE"] == postgresql.__name__
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]


def test_a_connection_that_just_served_a_request_is_not_checked_again(checks):
    request()  # may connect, or check a connection the fixture left
    checks.clear()
    request()
    request()
    assert checks == []
    assert connection.connection is not None


def test_a_connection_idle_longer_is_checked(checks, monkeypatch):
    request()
    checks.clear()
    later = base._now() + base.TRUSTED_FOR + 0.5
    monkeypatch.setattr(base, "_now", lambda: later)
    request()
    assert checks == [1]


def test_a_request_that_met_a_database_error_has_the_connection_checked_at_its_end(checks):
    request()
    checks.clear()
    with pytest.raises(DatabaseError):
        request("SELECT * FROM no_such_table")
    assert checks == [1]  # Django's own check of a connection that saw an error
    request()
    assert checks == [1]  # found good a moment ago: trusted


def test_a_dropped_connection_is_replaced_once_its_trust_has_expired(checks, monkeypatch):
    request()
    connection.connection.close()  # the server went away while the worker idled
    later = base._now() + base.TRUSTED_FOR + 0.5
    monkeypatch.setattr(base, "_now", lambda: later)
    request()  # checked, found unusable, reconnected: the request succeeds
    assert connection.connection is not None
    assert not connection.connection.closed
