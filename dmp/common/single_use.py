"""The use of a single-use credential (a VIHF assertion id): one row, whose unique key refuses a
second use, written at most once per request.

Written alone (`write`), it costs the request a statement and a synchronous commit of its own.
A read's first audit event can instead carry it in its own statement on PostgreSQL (ADR 0016):
the credential is then used and its use traced in one commit, or neither. Whoever holds it
must `write` it before answering if no event carried it (`written` says).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model

from dmp.common.rows import insert_row, insert_statement


class SingleUse:
    """One credential's use: `row` to insert once; a conflict on `constraint` means it was used
    already, and becomes the owner's error (`replayed`)."""

    __slots__ = ("_replayed", "constraint", "row", "written")

    def __init__(self, row: Model, *, constraint: str, replayed: Callable[[], Exception]) -> None:
        self.row = row
        self.constraint = constraint
        self._replayed = replayed
        self.written = False

    def write(self) -> None:
        """Insert the row now, alone: autocommitted, or in a savepoint of the caller's transaction
        so that a conflict leaves that transaction usable. Raises the owner's error on conflict."""
        if self.written:
            return
        try:
            if transaction.get_connection().in_atomic_block:
                with transaction.atomic():
                    insert_row(self.row)
            else:
                insert_row(self.row)
        except IntegrityError as exc:
            # The only unique key of the one row inserted: any conflict is a second use.
            raise self._replayed() from exc
        self.written = True

    def statement(self) -> tuple[str, list[Any]]:
        """The INSERT and its values, for a statement that carries the row along."""
        return insert_statement(self.row)

    def refusal(self, error: Exception) -> Exception | None:
        """The owner's error if `error`, raised by a statement carrying the row, is a conflict on
        this row's unique key (a second use); None if it is another row's, to be raised as is."""
        diagnostic = getattr(error.__cause__, "diag", None)
        if getattr(diagnostic, "constraint_name", None) == self.constraint:
            return self._replayed()
        return None
