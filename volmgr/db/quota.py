"""Per-project quota usage, reserved and released only by guarded UPDATEs.

A reservation is ``UPDATE quota_usages SET in_use = in_use + n WHERE ... AND
in_use + n <= limit``: two racing requests can never both take the last unit, and a
release never takes usage below zero.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from volmgr import exception
from volmgr.db import models
from volmgr.db.core import DatabaseCore

VOLUMES = "volumes"
GIGABYTES = "gigabytes"
SNAPSHOTS = "snapshots"
BACKUPS = "backups"
BACKUP_GIGABYTES = "backup_gigabytes"
PER_VOLUME_GIGABYTES = "per_volume_gigabytes"
GROUPS = "groups"
#: The quota class whose limits replace the configured defaults.
DEFAULT_CLASS = "default"
#: Every project-wide resource, in the reference's order.
RESOURCES = (VOLUMES, PER_VOLUME_GIGABYTES, SNAPSHOTS, GIGABYTES, BACKUPS,
             BACKUP_GIGABYTES, GROUPS)
#: The resources that also have a per-volume-type limit (``volumes_<type name>``).
TYPED_RESOURCES = (VOLUMES, GIGABYTES, SNAPSHOTS)
#: Defaults of the resources without a ``[quota]`` option (the reference's defaults;
#: the ``default`` quota class changes them). Anything else defaults to -1, unlimited.
BUILTIN_DEFAULTS = {BACKUPS: 10, BACKUP_GIGABYTES: 1000, GROUPS: 10,
                    PER_VOLUME_GIGABYTES: -1}

_usage = models.table(models.QuotaUsage)
_quotas = models.table(models.Quota)
_classes = models.table(models.QuotaClass)


def configured_default(defaults: Mapping[str, int], resource: str) -> int:
    """The limit of ``resource`` when neither the project nor the default class sets
    one: the ``[quota]`` option, else the built-in default, else unlimited."""
    return defaults.get(resource, BUILTIN_DEFAULTS.get(resource, -1))


@functools.cache
def _limits_statement() -> sa.CompoundSelect:
    """The project's own limits and the default class's of a list of resources
    (parameters ``project_id``, ``class_name``, ``resources``), built once."""
    resources: sa.BindParameter[list[str]] = sa.bindparam("resources", expanding=True)
    own = sa.select(_quotas.c.resource, _quotas.c.hard_limit,
                    sa.literal(0).label("rank")).where(
        _quotas.c.project_id == sa.bindparam("project_id"),
        _quotas.c.resource.in_(resources))
    default = sa.select(_classes.c.resource, _classes.c.hard_limit,
                        sa.literal(1).label("rank")).where(
        _classes.c.class_name == sa.bindparam("class_name"),
        _classes.c.resource.in_(resources))
    return sa.union_all(own, default)


@functools.cache
def _add_usage_statement(limited: bool) -> sa.Update:
    """``in_use += delta`` of one project's resource (parameters ``b_project``,
    ``b_resource``, ``delta``, ``now``), guarded by ``in_use + delta <= limit`` (parameter
    ``limit``) when ``limited``; built once."""
    delta = sa.bindparam("delta", type_=sa.Integer)
    conditions = [_usage.c.project_id == sa.bindparam("b_project"),
                  _usage.c.resource == sa.bindparam("b_resource")]
    if limited:
        conditions.append(_usage.c.in_use + delta <= sa.bindparam("limit", type_=sa.Integer))
    return sa.update(_usage).where(*conditions).values(
        in_use=_usage.c.in_use + delta, updated_at=sa.bindparam("now"))


def limits_in_effect(session: Session, defaults: Mapping[str, int], project_id: str,
                     resources: Sequence[str]) -> dict[str, int]:
    """Each resource's limit for ``project_id``: the project's own, else the default
    class's, else the configured default. One indexed SELECT."""
    found: dict[str, tuple[int, int]] = {}
    for resource, limit, rank in session.execute(_limits_statement(), {
            "project_id": project_id, "class_name": DEFAULT_CLASS,
            "resources": list(resources)}):
        if resource not in found or rank < found[resource][1]:
            found[resource] = (limit, rank)
    return {resource: found[resource][0] if resource in found
            else configured_default(defaults, resource) for resource in resources}


def _ensure_usage_row(session: Session, project_id: str, resource: str) -> None:
    """Create the project's usage row of ``resource`` (at 0) unless it exists, without
    failing when a concurrent request creates it at the same moment: an insert that
    does nothing on a duplicate key where the database has one (no savepoint, so a
    deadlock the database reports reaches ``DatabaseCore.run``, which re-runs the
    transaction; behind a savepoint MariaDB's deadlock surfaced as "SAVEPOINT does not
    exist" instead)."""
    now = models.utcnow()
    values = {"project_id": project_id, "resource": resource, "in_use": 0,
              "created_at": now, "updated_at": now}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(_usage).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(_usage).values(values).on_conflict_do_nothing())
    else:  # MariaDB/MySQL, the third supported database
        session.execute(mysql.insert(_usage).values(values).prefix_with("IGNORE"))


def reserve(session: Session, limits: Mapping[str, int], project_id: str,
            deltas: Mapping[str, int], *, volume_size: int | None = None) -> None:
    """Add ``deltas`` to the project's usage inside ``session``'s transaction, or raise
    ``QuotaExceeded`` (the caller's rollback then undoes any partial reservation).
    ``limits`` are the configured defaults; the project's own limits and the default
    class override them. ``volume_size`` (create, extend, transfer) is checked against
    ``per_volume_gigabytes``."""
    wanted = sorted(resource for resource, delta in deltas.items() if delta > 0)
    checked = wanted + ([PER_VOLUME_GIGABYTES] if volume_size is not None else [])
    if not checked:
        return
    limits = limits_in_effect(session, limits, project_id, checked)
    per_volume = limits.get(PER_VOLUME_GIGABYTES, -1)
    if volume_size is not None and 0 <= per_volume < volume_size:
        raise exception.VolumeSizeExceedsLimit(size=volume_size, limit=per_volume)
    for resource in wanted:
        delta, limit = deltas[resource], limits[resource]
        add = _add_usage_statement(limit >= 0)
        params = {"b_project": project_id, "b_resource": resource, "delta": delta,
                  "limit": limit, "now": models.utcnow()}
        # The usage row exists on every path but a project's first reservation of the
        # resource: try the guarded UPDATE first, and only when it matched nothing
        # make sure the row exists and try once more (also when it exists by now: a
        # concurrent first reservation may have committed it in between).
        if session.execute(add, params).rowcount == 1:  # type: ignore[attr-defined]
            continue
        _ensure_usage_row(session, project_id, resource)
        if session.execute(add, params).rowcount == 1:  # type: ignore[attr-defined]
            continue
        # A locking read: under MariaDB's REPEATABLE READ a plain SELECT would read this
        # transaction's snapshot, which may predate a row a concurrent request created.
        in_use = session.execute(sa.select(_usage.c.in_use).where(
            _usage.c.project_id == project_id,
            _usage.c.resource == resource).with_for_update()).scalar_one()
        raise exception.QuotaExceeded(resource=resource, requested=delta,
                                      in_use=in_use, limit=limit)


def release(session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
    """Subtract ``deltas`` from the project's usage, never going below zero."""
    for resource, delta in sorted(deltas.items()):
        if delta <= 0:
            continue
        session.execute(_release_statement(), {
            "b_project": project_id, "b_resource": resource, "delta": delta,
            "now": models.utcnow()})


@functools.cache
def _release_statement() -> sa.Update:
    """``in_use -= delta``, not below zero (parameters ``b_project``, ``b_resource``,
    ``delta``, ``now``); built once."""
    delta = sa.bindparam("delta", type_=sa.Integer)
    return sa.update(_usage).where(
        _usage.c.project_id == sa.bindparam("b_project"),
        _usage.c.resource == sa.bindparam("b_resource"),
    ).values(in_use=sa.case((_usage.c.in_use >= delta, _usage.c.in_use - delta), else_=0),
             updated_at=sa.bindparam("now"))


# -- quota sets and quota classes (what the os-quota-sets API reads and writes) --------

_types = models.table(models.VolumeType)
_volumes = models.table(models.Volume)
_snapshots = models.table(models.Snapshot)


def resource_names(session: Session) -> list[str]:
    """Every resource a limit may be set for: the project-wide ones, then
    ``volumes_<type>``, ``gigabytes_<type>`` and ``snapshots_<type>`` per live type."""
    names = session.execute(sa.select(_types.c.name).where(
        _types.c.deleted == sa.false()).order_by(_types.c.name)).scalars()
    return [*RESOURCES, *(f"{resource}_{name}" for name in names
                          for resource in TYPED_RESOURCES)]


def check_keys(session: Session, values: Mapping[str, int], what: str) -> list[str]:
    """The resource names, after refusing any key of ``values`` that names none."""
    names = resource_names(session)
    bad = sorted(set(values) - set(names))
    if bad:
        raise exception.InvalidInput(reason=f"Bad key(s) in {what}: {', '.join(bad)}")
    return names


def project_usage(session: Session, project_id: str, *, lock: bool = False) -> dict[str, int]:
    """What ``project_id`` uses: the reserved counters, plus per-type figures counted
    from its live rows (reservations are kept project-wide only)."""
    query = sa.select(_usage.c.resource, _usage.c.in_use).where(
        _usage.c.project_id == project_id)
    if lock:
        query = query.with_for_update()
    usage: dict[str, int] = {resource: in_use for resource, in_use in session.execute(query)}
    volumes = session.execute(
        sa.select(_types.c.name, sa.func.count(_volumes.c.id), sa.func.sum(_volumes.c.size))
        .join(_types, _types.c.id == _volumes.c.volume_type_id)
        .where(_volumes.c.project_id == project_id, _volumes.c.deleted == sa.false(),
               _volumes.c.quota_held == sa.true())
        .group_by(_types.c.name))
    for name, count, size in volumes:
        usage[f"{VOLUMES}_{name}"] = int(count)
        usage[f"{GIGABYTES}_{name}"] = int(size or 0)
    snapshots = session.execute(
        sa.select(_types.c.name, sa.func.count(_snapshots.c.id),
                  sa.func.sum(_snapshots.c.size))
        .join(_volumes, _volumes.c.id == _snapshots.c.volume_id)
        .join(_types, _types.c.id == _volumes.c.volume_type_id)
        .where(_snapshots.c.project_id == project_id, _snapshots.c.deleted == sa.false())
        .group_by(_types.c.name))
    for name, count, size in snapshots:
        usage[f"{SNAPSHOTS}_{name}"] = int(count)
        usage[f"{GIGABYTES}_{name}"] = usage.get(f"{GIGABYTES}_{name}", 0) + int(size or 0)
    return usage


def class_limits(session: Session, defaults: Mapping[str, int], class_name: str,
                 resources: Sequence[str]) -> dict[str, int]:
    """A quota class's limits: its own rows, else the default class's, else the
    configured defaults."""
    rows = session.execute(sa.select(
        _classes.c.class_name, _classes.c.resource, _classes.c.hard_limit).where(
        _classes.c.class_name.in_({class_name, DEFAULT_CLASS}))).all()
    own = {resource: limit for name, resource, limit in rows if name == class_name}
    default = {resource: limit for name, resource, limit in rows if name == DEFAULT_CLASS}
    return {resource: own.get(resource, default.get(resource,
                                                    configured_default(defaults, resource)))
            for resource in resources}


def _upsert_limit(session: Session, table: sa.Table, owner_column: str, owner: str,
                  resource: str, limit: int) -> None:
    def update() -> int:
        result = session.execute(sa.update(table).where(
            table.c[owner_column] == owner, table.c.resource == resource,
        ).values(hard_limit=limit, updated_at=models.utcnow()))
        return int(result.rowcount)  # type: ignore[attr-defined]

    if update():
        return
    try:
        with session.begin_nested():
            session.execute(sa.insert(table).values(
                {owner_column: owner, "resource": resource, "hard_limit": limit,
                 "created_at": models.utcnow(), "updated_at": models.utcnow()}))
    except sa_exc.IntegrityError:
        update()  # a concurrent request inserted the row first: overwrite it


class QuotaQueries(DatabaseCore):
    """Quota operations as their own transactions (the other queries call the module
    functions inside theirs)."""

    def quota_limits_for(self, project_id: str) -> dict[str, int]:
        """The limit of every resource for ``project_id`` (-1: unlimited)."""
        return self.run(lambda s: limits_in_effect(s, self.quota_limits, project_id,
                                                   resource_names(s)))

    def quota_show(self, project_id: str) -> dict[str, dict[str, int]]:
        """Every resource's ``limit``, ``in_use`` and ``reserved`` for ``project_id``
        (a reservation is usage at once, so ``reserved`` is always 0)."""
        def work(session: Session) -> dict[str, dict[str, int]]:
            names = resource_names(session)
            limits = limits_in_effect(session, self.quota_limits, project_id, names)
            usage = project_usage(session, project_id)
            return {name: {"limit": limits[name], "in_use": usage.get(name, 0),
                           "reserved": 0} for name in names}
        return self.run(work)

    def quota_update(self, project_id: str, values: Mapping[str, int]) -> dict[str, int]:
        """Set ``project_id``'s own limits; refuses an unknown resource, or a limit below
        what the project already uses (usage rows locked meanwhile). Returns the limits
        now in effect."""
        def work(session: Session) -> dict[str, int]:
            names = check_keys(session, values, "quota set")
            usage = project_usage(session, project_id, lock=True)
            for resource, limit in sorted(values.items()):
                used = usage.get(resource, 0)
                if resource != PER_VOLUME_GIGABYTES and 0 <= limit < used:
                    raise exception.InvalidInput(
                        reason=f"Quota {resource} limit must be equal or greater than "
                        f"existing resources. Current usage is {used} and the "
                        f"requested limit is {limit}.")
            for resource, limit in sorted(values.items()):
                _upsert_limit(session, _quotas, "project_id", project_id, resource, limit)
            return limits_in_effect(session, self.quota_limits, project_id, names)
        return self.run(work)

    def quota_destroy(self, project_id: str) -> None:
        """Drop ``project_id``'s own limits: the defaults apply again."""
        self.run(lambda s: s.execute(sa.delete(_quotas).where(
            _quotas.c.project_id == project_id)))

    def quota_class_show(self, class_name: str) -> dict[str, int]:
        """A quota class's limits (class ``default``: the defaults every project has)."""
        return self.run(lambda s: class_limits(s, self.quota_limits, class_name,
                                               resource_names(s)))

    def quota_class_update(self, class_name: str,
                           values: Mapping[str, int]) -> dict[str, int]:
        def work(session: Session) -> dict[str, int]:
            names = check_keys(session, values, "quota class set")
            for resource, limit in sorted(values.items()):
                _upsert_limit(session, _classes, "class_name", class_name, resource, limit)
            return class_limits(session, self.quota_limits, class_name, names)
        return self.run(work)
