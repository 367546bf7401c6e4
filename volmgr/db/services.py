"""Service rows: heartbeats with capacity, enable/disable, and who is up."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from volmgr import exception
from volmgr.db import models
from volmgr.db.core import DatabaseCore

_services = models.table(models.Service)


def is_up(service: models.Service, down_time: int,
          now: datetime.datetime | None = None) -> bool:
    """Whether the service heartbeated within the last ``down_time`` seconds."""
    if service.last_heartbeat is None:
        return False
    now = now or models.utcnow()
    return (now - service.last_heartbeat).total_seconds() <= down_time


class ServiceQueries(DatabaseCore):
    """Presence of volmgr processes."""

    def service_heartbeat(self, host: str, binary: str, topic: str,
                          capabilities: Mapping[str, Any] | None = None) -> None:
        """Record that ``binary`` on ``host`` is alive, with its current capabilities."""
        def update(session: Session) -> int:
            values: dict[str, Any] = {"last_heartbeat": models.utcnow(),
                                      "report_count": _services.c.report_count + 1,
                                      "updated_at": models.utcnow(), "topic": topic}
            if capabilities is not None:
                values["capabilities"] = dict(capabilities)
            result = session.execute(sa.update(_services).where(
                _services.c.host == host, _services.c.binary == binary).values(**values))
            return int(result.rowcount)  # type: ignore[attr-defined]

        def insert(session: Session) -> None:
            session.add(models.Service(host=host, binary=binary, topic=topic,
                                       disabled=False, report_count=1,
                                       last_heartbeat=models.utcnow(),
                                       capabilities=dict(capabilities or {})))

        if self.run(update):
            return
        try:
            self.run(insert)
        except sa_exc.IntegrityError:
            self.run(update)  # another process of the same host registered first

    def service_stopped(self, host: str, binary: str) -> None:
        """Record a clean stop: the service is down from now on, not after
        ``service_down_time`` without a heartbeat (its next heartbeat says up again)."""
        def work(session: Session) -> None:
            session.execute(sa.update(_services).where(
                _services.c.host == host, _services.c.binary == binary).values(
                last_heartbeat=None, updated_at=models.utcnow()))
        self.run(work)

    def service_delete(self, host: str, binary: str, down_time: int) -> None:
        """Delete the row of a service that is down (``service remove``); ServiceIsUp if
        it heartbeated within ``down_time`` seconds, checked in the same transaction."""
        def work(session: Session) -> None:
            row = session.execute(sa.select(models.Service).where(
                models.Service.host == host,
                models.Service.binary == binary)).scalar_one_or_none()
            if row is None:
                raise exception.ServiceNotFound(host=host, binary=binary)
            if is_up(row, down_time):
                raise exception.ServiceIsUp(host=host, binary=binary, down_time=down_time)
            session.delete(row)
        self.run(work)

    def service_list(self, binary: str | None = None) -> list[models.Service]:
        def work(session: Session) -> list[models.Service]:
            query = sa.select(models.Service).order_by(models.Service.host,
                                                       models.Service.binary)
            if binary is not None:
                query = query.where(models.Service.binary == binary)
            return list(session.execute(query).scalars())
        return self.run(work)

    def service_get(self, host: str, binary: str) -> models.Service:
        def work(session: Session) -> models.Service:
            row = session.execute(sa.select(models.Service).where(
                models.Service.host == host,
                models.Service.binary == binary)).scalar_one_or_none()
            if row is None:
                raise exception.ServiceNotFound(host=host, binary=binary)
            return row
        return self.run(work)

    def service_set_disabled(self, host: str, binary: str, disabled: bool,
                             reason: str | None = None) -> None:
        def work(session: Session) -> None:
            result = session.execute(sa.update(_services).where(
                _services.c.host == host, _services.c.binary == binary).values(
                disabled=disabled, disabled_reason=reason if disabled else None,
                updated_at=models.utcnow()))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise exception.ServiceNotFound(host=host, binary=binary)
        self.run(work)

    def placement_view(self, binary: str, down_time: int
                       ) -> tuple[list[models.Service], dict[str, int]]:
        """What the scheduler reads for one placement, in one transaction: the up and
        enabled services of ``binary`` and the GiB each has promised that its last
        capacity report may not show yet: volumes placed on it that are still
        ``creating`` or were placed after its last heartbeat. The scheduler subtracts
        them, so a burst of creates between two heartbeats cannot overfill a host."""
        def work(session: Session) -> tuple[list[models.Service], dict[str, int]]:
            now = models.utcnow()
            services: list[models.Service] = []
            pending: dict[str, int] = {}
            for service, promised in session.execute(_placement_statement(),
                                                     {"binary": binary}):
                if not service.disabled and is_up(service, down_time, now):
                    services.append(service)
                    if promised:
                        pending[service.host] = int(promised)
            return services, pending
        return self.run(work)

    def allocated_gb_by_host(self) -> dict[str, int]:
        """GiB of live volumes placed on each host (a pool's allocated capacity)."""
        volumes = models.table(models.Volume)

        def work(session: Session) -> dict[str, int]:
            rows = session.execute(
                sa.select(volumes.c.host, sa.func.sum(volumes.c.size))
                .where(volumes.c.deleted == sa.false(), volumes.c.host.is_not(None))
                .group_by(volumes.c.host)).all()
            return {host: int(total or 0) for host, total in rows}
        return self.run(work)

    def host_usage(self, host: str) -> dict[str, dict[str, int]]:
        """Per project: live volumes and snapshots on ``host``, counted and summed."""
        def work(session: Session) -> dict[str, dict[str, int]]:
            usage: dict[str, dict[str, int]] = {}
            for model, kind in ((models.Volume, "volume"), (models.Snapshot, "snapshot")):
                table = models.table(model)
                rows = session.execute(
                    sa.select(table.c.project_id, sa.func.count(), sa.func.sum(table.c.size))
                    .where(table.c.deleted == sa.false(), table.c.host == host)
                    .group_by(table.c.project_id)).all()
                for project_id, count, total in rows:
                    entry = usage.setdefault(project_id, {
                        "volume_count": 0, "volume_gb": 0,
                        "snapshot_count": 0, "snapshot_gb": 0})
                    entry[f"{kind}_count"] = int(count)
                    entry[f"{kind}_gb"] = int(total or 0)
            return usage
        return self.run(work)

    def services_up(self, binary: str, down_time: int) -> list[models.Service]:
        """Enabled services of ``binary`` that heartbeated recently."""
        now = models.utcnow()
        return [s for s in self.service_list(binary)
                if not s.disabled and is_up(s, down_time, now)]


@functools.cache
def _placement_statement() -> sa.Select[Any]:
    """The services of a binary (parameter ``binary``) by host name, each with the GiB
    of its live volumes still ``creating`` or created after its last heartbeat (what
    its capacity report may not show yet); one statement, built once. A service that
    never heartbeated is down, so its figure is never used."""
    volumes = models.table(models.Volume)
    promised = (sa.select(sa.func.coalesce(sa.func.sum(volumes.c.size), 0))
                .where(volumes.c.deleted == sa.false(),
                       volumes.c.host == models.Service.host,
                       sa.or_(volumes.c.status == "creating",
                              volumes.c.created_at > models.Service.last_heartbeat))
                .scalar_subquery())
    return (sa.select(models.Service, promised)
            .where(models.Service.binary == sa.bindparam("binary"))
            .order_by(models.Service.host))
