"""Reading the one row a unique lookup matches.

`QuerySet.first()` orders by primary key, and Django compiles that ORDER BY by mapping every
selected column to its position: about 0.5 ms more for a document joined with its record, patient
and key, a third of that statement's cost, on every retrieve. A lookup on a unique column (or
constraint) matches at most one row, so the order is moot: `unique_row` reads it as `get()` does,
without ORDER BY, and answers None for no row.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def unique_row(rows: QuerySet[M]) -> M | None:
    """The row of `rows`, a query on a unique key, or None (MultipleObjectsReturned if not unique)."""
    try:
        return rows.get()
    except ObjectDoesNotExist:
        return None
