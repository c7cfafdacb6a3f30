"""Reading the one row a unique lookup matches, and checking text before it becomes a row.

`QuerySet.first()` orders by primary key, and Django compiles that ORDER BY by mapping every
selected column to its position: about 0.5 ms more for a document joined with its record, patient
and key, a third of that statement's cost, on every retrieve. A lookup on a unique column (or
constraint) matches at most one row, so the order is moot: `unique_row` reads it as `get()` does,
without ORDER BY, and answers None for no row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction
from django.db.models import Field, Model, QuerySet
from django.utils.translation import gettext

from dmp.common.errors import ErrorCode, Problem
from dmp.common.xml import NOT_XML_CHARACTER

M = TypeVar("M", bound=Model)


def unique_row(rows: QuerySet[M]) -> M | None:
    """The row of `rows`, a query on a unique key, or None (MultipleObjectsReturned if not unique)."""
    try:
        return rows.get()
    except ObjectDoesNotExist:
        return None


# (model, database vendor) -> (INSERT … VALUES head, one row's placeholders, RETURNING tail, fields)
_INSERTS: dict[tuple[type[Model], str], tuple[str, str, str, tuple[Field[Any, Any], ...]]] = {}


def _insert_statement(model: type[Model]) -> tuple[str, str, str, tuple[Field[Any, Any], ...]]:
    key = (model, connection.vendor)
    if key not in _INSERTS:
        meta = model._meta
        fields = tuple(field for field in meta.concrete_fields if field is not meta.auto_field)
        quote = connection.ops.quote_name
        # Names from the model's metadata, values as parameters.
        columns = ", ".join(quote(str(field.column)) for field in fields)
        head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608
        tail = f" RETURNING {quote(str(meta.auto_field.column))}" if meta.auto_field is not None else ""
        _INSERTS[key] = (head, f"({', '.join(['%s'] * len(fields))})", tail, fields)
    return _INSERTS[key]


def insert_row(instance: Model) -> None:
    """INSERT `instance` as `save(force_insert=True)` does, and set its primary key."""
    insert_rows([instance])


def insert_row_then(instance: Model, statement: str, params: Sequence[Any]) -> None:
    """`insert_row(instance)`, then `statement` (an UPDATE or DELETE, which returns nothing) in
    the same transaction. On PostgreSQL both travel as one statement (a data-modifying WITH):
    every audited action appends its event and moves its chain's head, and each round trip to
    the server is a wait of the request (about 0.1 ms, and a scheduling of two processes)."""
    _insert([instance], then=(statement, params))


def insert_statement(instance: Model) -> tuple[str, list[Any]]:
    """The INSERT `insert_row(instance)` runs, and its values, to be a part of a larger
    statement (a data-modifying WITH on PostgreSQL, which runs every part to completion)."""
    head, placeholders, tail, fields = _insert_statement(type(instance))
    instance._prepare_related_fields_for_save(operation_name="insert_statement")  # type: ignore[attr-defined]
    database = transaction.get_connection()
    return head + placeholders + tail, [
        field.get_db_prep_save(field.pre_save(instance, True), database) for field in fields
    ]


def insert_rows(instances: Sequence[Model]) -> None:
    """INSERT `instances` (all of one model) as `bulk_create` does, and set their primary keys.

    For rows written on every request (an audit event, a VIHF assertion id, a submission's
    entries): `save()` and `bulk_create()` spend 0.2–0.5 ms of Python each building the same
    statement again. It is built once per model; each value goes through its field's own
    conversion (`pre_save`, `get_db_prep_save`) as `save()` does, and the keys come back in the
    order of the rows, as `bulk_create` relies on. No signals are sent: nothing in this project
    listens to a model's (ARCHITECTURE: audit is explicit)."""
    _insert(instances)


def _insert(instances: Sequence[Model], then: tuple[str, Sequence[Any]] | None = None) -> None:
    if not instances:
        return
    model = type(instances[0])
    if any(type(instance) is not model for instance in instances):
        raise TypeError("insert_rows takes rows of one model")
    for instance in instances:
        # As save() does: a related object saved after it was assigned gives its new key, and
        # one never saved is refused rather than written as NULL.
        instance._prepare_related_fields_for_save(operation_name="insert_rows")  # type: ignore[attr-defined]
    head, placeholders, tail, fields = _insert_statement(model)
    auto_field = model._meta.auto_field
    # The connection itself: through the `connection` proxy, each of the many reads below (each
    # field's conversion reads it) was a context-local lookup.
    database = transaction.get_connection()
    limit = database.features.max_query_params or 65535  # SQLite 999, PostgreSQL's protocol 65535
    per_statement = max(1, limit // max(1, len(fields)))
    # `then` rides along with the only batch (one row), in PostgreSQL's data-modifying WITH, which
    # runs every part to completion, referenced or not; elsewhere it follows the INSERT.
    along = then is not None and len(instances) == 1 and database.vendor == "postgresql"
    with database.cursor() as cursor:
        for start in range(0, len(instances), per_statement):
            batch = instances[start : start + per_statement]
            values = [
                field.get_db_prep_save(field.pre_save(instance, True), database)
                for instance in batch
                for field in fields
            ]
            sql = head + ", ".join([placeholders] * len(batch)) + tail
            if along and then is not None:
                result = "SELECT * FROM inserted" if auto_field is not None else "SELECT 1"
                sql = f"WITH inserted AS ({sql}), moved AS ({then[0]}) {result}"
                values += then[1]
            cursor.execute(sql, values)
            if auto_field is not None:
                keys = cursor.fetchall()
                if len(keys) != len(batch):
                    raise RuntimeError(f"INSERT … RETURNING gave {len(keys)} keys for {len(batch)} rows")
                for instance, (key,) in zip(batch, keys, strict=True):
                    setattr(instance, auto_field.attname, key)
        if then is not None and not along:
            cursor.execute(then[0], then[1])
    for instance in instances:
        instance._state.adding = False
        instance._state.db = database.alias


@contextmanager
def planned_for_each_value() -> Iterator[None]:
    """A transaction in which PostgreSQL plans every statement for the values it is given.

    psycopg prepares a statement after its fifth run (`prepare_threshold`), and PostgreSQL may
    then keep one generic plan for any value. Where the best plan depends on how many rows a
    value has (a structure authorised on half the records, a PS on a few hundred), the generic
    one is right for neither: the PS home page of a structure's staff took 330 ms instead of 3
    from its sixth showing on. Planning such a statement again costs about a millisecond."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


def text_problems(model: type[Model], texts: Mapping[str, str]) -> list[Problem]:
    """What in `texts` (field name -> value) the columns of `model` cannot store as given.

    A value longer than its column is refused, never cut: the caller would be told it was saved.
    Characters XML cannot carry are refused too: this text is written into CDA headers, HL7v3
    answers and exports, which would all fail on it."""
    problems = []
    for name, value in texts.items():
        limit = getattr(model._meta.get_field(name), "max_length", None)
        if limit is not None and len(value) > limit:
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    gettext("%(field)s : %(limit)s caractères au plus.") % {"field": name, "limit": limit},
                    name,
                )
            )
        elif NOT_XML_CHARACTER.search(value):
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    gettext("%(field)s contient un caractère de contrôle.") % {"field": name},
                    name,
                )
            )
    return problems
