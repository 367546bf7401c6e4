"""Transactions, retries and the guarded UPDATE every state change goes through.

A transaction that hits a deadlock, a serialization failure or a locked SQLite file is
re-run whole (tenacity), so callers never see those transient errors.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
import tenacity
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from volmgr import exception
from volmgr.db import models

LOG = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=models.Base)

# PostgreSQL SQLSTATEs and MySQL error numbers that mean "run the transaction again".
_PG_RETRY_CODES = {"40001", "40P01"}
_MYSQL_RETRY_CODES = {1205, 1213}


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a transient concurrency failure worth re-running for."""
    if not isinstance(error, sa_exc.DBAPIError) or error.orig is None:
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _PG_RETRY_CODES:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_RETRY_CODES:
        return True
    return "database is locked" in str(orig)


class DatabaseCore:
    """Owns the engine and runs units of work as retried transactions."""

    def __init__(self, engine: sa.Engine, *, max_retries: int = 10,
                 quota_limits: Mapping[str, int] | None = None) -> None:
        self.engine = engine
        self.max_retries = max_retries
        self.quota_limits: dict[str, int] = dict(quota_limits or {})
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._shared = threading.local()  # the session of run_together, per thread

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a transaction, re-running it on transient failures.
        Inside ``run_together`` it joins that transaction instead (and a transient
        failure re-runs the whole unit)."""
        shared: Session | None = getattr(self._shared, "session", None)
        if shared is not None:
            return work(shared)
        return self._retried(work)

    def run_together(self, work: Callable[[], T]) -> T:
        """Run ``work()`` as one transaction: every ``run`` it makes on this thread, through
        any query method, joins it, and a transient failure re-runs all of ``work``.
        For a request that reads and then writes (a create reads its type and the
        hosts, then reserves quota and inserts): one pool checkout, ping, BEGIN and
        COMMIT instead of one each per read. ``work`` must not hold on to anything that
        only a committed write makes true (a cast goes after this returns)."""
        if getattr(self._shared, "session", None) is not None:
            return work()

        def joined(session: Session) -> T:
            self._shared.session = session
            try:
                return work()
            finally:
                self._shared.session = None
        return self._retried(joined)

    def _retried(self, work: Callable[[Session], T]) -> T:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            stop=tenacity.stop_after_attempt(self.max_retries),
            wait=tenacity.wait_random_exponential(multiplier=0.02, max=1.0),
            reraise=True,
            before_sleep=lambda state: LOG.debug(
                "Retrying transaction after %s", state.outcome and state.outcome.exception()),
        )
        try:
            for attempt in retrying:
                with attempt, self.transaction() as session:
                    return work(session)
        except sa_exc.DBAPIError as error:
            if is_retryable(error):
                raise exception.DBError(reason=f"gave up after {self.max_retries} "
                                        f"attempts: {error.orig}") from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()


#: A sort order: (column name, "asc" | "desc") pairs; ``id`` is always appended last.
SortOrder = Sequence[tuple[str, str]]
NEWEST_FIRST: SortOrder = (("created_at", "desc"),)
_EPOCH = datetime.datetime(1970, 1, 1)


def _sort_expression(model: Any, key: str) -> Any:
    """The column to order by, with NULL folded into a value that sorts first, so that
    ordering and the marker comparison agree on every database."""
    column = getattr(model, key)
    if not column.nullable:
        return column
    python_type = column.type.python_type
    if python_type is str:
        return sa.func.coalesce(column, "")
    if python_type is datetime.datetime:
        return sa.func.coalesce(column, _EPOCH)
    if python_type is int:
        return sa.func.coalesce(column, -1)
    return column


def list_live(
    session: Session,
    model: Any,
    *,
    project_id: str | None,
    filters: Mapping[str, Any] | None,
    anchor: Any | None,
    limit: int | None,
    offset: int,
    sort: SortOrder = NEWEST_FIRST,
    row_filter: Callable[[Any], bool] | None = None,
    options: Sequence[Any] = (),
    as_rows: bool = False,
) -> list[Any]:
    """Live rows of ``model``, scoped to a project, filtered by column equality, in
    ``sort`` order (``id`` breaks ties), and paged after ``anchor`` (the previous page's
    last row) with ``limit``/``offset``. ``row_filter`` is a Python predicate for what SQL
    cannot say portably (JSON metadata); paging then happens after it. ``as_rows``
    returns read-only rows with the model's attribute names instead of ORM objects."""
    order = [(key, direction) for key, direction in sort if key != "id"]
    order.append(("id", sort[-1][1] if sort else "desc"))
    if as_rows:
        # Plain rows whose attribute names are the model's (``metadata_`` …): read-only
        # and without relationships, at a fraction of the ORM's cost per row.
        query = sa.select(*(attr.columns[0].label(attr.key)
                            for attr in sa.inspect(model).column_attrs))
    else:
        query = sa.select(model).options(*options)
    query = query.where(model.deleted == sa.false())
    if project_id is not None:
        query = query.where(model.project_id == project_id)
    for key, value in (filters or {}).items():
        column = getattr(model, key)
        if isinstance(value, list | tuple | set):
            query = query.where(column.in_(list(value)))
        else:
            query = query.where(column == value)
    expressions = [(_sort_expression(model, key), direction) for key, direction in order]
    if anchor is not None:
        values = session.execute(sa.select(*(e for e, _ in expressions)).where(
            model.id == anchor.id)).one()
        after: list[sa.ColumnElement[bool]] = []
        for index, (expression, direction) in enumerate(expressions):
            equal_before = [expressions[k][0] == values[k] for k in range(index)]
            beyond = (expression > values[index] if direction == "asc"
                      else expression < values[index])
            after.append(sa.and_(*equal_before, beyond))
        query = query.where(sa.or_(*after))
    query = query.order_by(*(e.asc() if d == "asc" else e.desc() for e, d in expressions))
    # Rows come straight from the connection: the session's ORM result processing
    # has nothing to do for them but costs a listing of 1,000 a few milliseconds.
    execute = session.connection().execute if as_rows else session.execute
    if row_filter is not None:
        found = execute(query)
        rows = [row for row in (found.all() if as_rows else found.scalars())
                if row_filter(row)]
        end = None if limit is None else offset + limit
        return rows[offset:end]
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    found = execute(query)
    return list(found.all()) if as_rows else list(found.scalars())


@functools.cache
def _insert_shape(model: type[models.Base]) -> tuple[sa.Insert, tuple[tuple[str, str, Any], ...]]:
    """``insert_new``'s statement and, per column, (attribute name, column name, its
    Python-side default), read from the mapping once per model."""
    mapper = sa.inspect(model)
    columns = []
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        default = column.default
        if default is not None and not (default.is_callable or default.is_scalar):
            raise TypeError(f"{model.__name__}.{attr.key}: insert_new takes Python-side "
                            "defaults only")
        columns.append((attr.key, column.key, default))
    return models.table(model).insert(), tuple(columns)


def insert_new(session: Session, model: type[M], **values: Any) -> M:
    """Insert one row of ``model`` with a prebuilt Core INSERT and return it as an
    object of ``model`` that is not in the session (read-only use: views, ids, casts).
    Every column not given takes its Python-side default here, so the object holds
    exactly the row written without a read back. The ORM's unit of work (add + flush)
    cost twice as much CPU for the one row of a create."""
    statement, columns = _insert_shape(model)
    unknown = set(values) - {attribute for attribute, _, _ in columns}
    if unknown:
        raise TypeError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    row: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for attribute, column, default in columns:
        if attribute in values:
            value = values[attribute]
        elif default is None:
            value = None
        elif default.is_callable:
            value = default.arg(None)
        else:
            value = default.arg
        row[column] = value
        attributes[attribute] = value
    session.connection().execute(statement, row)
    return model(**attributes)


@functools.lru_cache(maxsize=256)
def _guarded_update(model: type[models.Base], keys: tuple[str, ...],
                    expected_status: tuple[str, ...] | None,
                    status_column: str) -> sa.Update:
    """``conditional_update``'s statement for plain values, built once per shape: the
    row id is parameter ``b_id`` and each value ``b_<column>`` (building an UPDATE
    costs more CPU than running it)."""
    table = models.table(model)
    conditions: list[sa.ColumnElement[bool]] = [table.c.id == sa.bindparam("b_id")]
    if "deleted" in table.c:
        conditions.append(table.c.deleted == sa.false())
    if expected_status is not None:
        conditions.append(table.c[status_column].in_(expected_status))
    return sa.update(table).where(*conditions).values(
        {key: sa.bindparam(f"b_{key}", type_=table.c[key].type) for key in keys})


def conditional_update(
    session: Session,
    model: type[models.Base],
    row_id: Any,
    values: Mapping[str, Any],
    *,
    expected_status: tuple[str, ...] | None = None,
    where: tuple[sa.ColumnElement[bool], ...] = (),
    status_column: str = "status",
) -> bool:
    """``UPDATE model SET values WHERE id = row_id AND status IN expected AND where...``.

    Returns whether exactly one row changed, i.e. whether this caller won the race.
    Changing ``status`` also stamps ``status_changed_at`` where the model has one.
    """
    table = models.table(model)
    conditions: list[sa.ColumnElement[bool]] = [table.c.id == row_id]
    if "deleted" in table.c:
        conditions.append(table.c.deleted == sa.false())
    if expected_status is not None:
        conditions.append(table.c[status_column].in_(expected_status))
    conditions.extend(where)
    new_values = dict(values)
    if "metadata_" in new_values:
        new_values["metadata"] = new_values.pop("metadata_")
    if status_column == "status" and "status" in new_values and "status_changed_at" in table.c:
        new_values.setdefault("status_changed_at", models.utcnow())
    if "updated_at" in table.c:
        new_values.setdefault("updated_at", models.utcnow())
    if not where and not any(isinstance(value, sa.ClauseElement)
                             for value in new_values.values()):
        # The common shape (plain values, no extra guard): a statement built once.
        statement = _guarded_update(model, tuple(sorted(new_values)), expected_status,
                                    status_column)
        result = session.execute(statement, {"b_id": row_id, **{
            f"b_{key}": value for key, value in new_values.items()}})
    else:
        result = session.execute(sa.update(table).where(*conditions).values(**new_values))
    won = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if won and "status" in values:
        from volmgr.db import messages  # messages builds on this module
        messages.record_failure(session, model, row_id, values, expected_status)
    return won
