"""Host choice for new volumes: among the ``volmgr-volume`` services that are up and
enabled, the one with the most free capacity that fits.

It reads the capacity each manager last reported with its heartbeat, less what was
promised since (volumes still creating or placed after that heartbeat); it never calls a
manager synchronously (a request path must not wait on the bus).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.db import Database

BINARY = rpc.TOPIC


@dataclasses.dataclass(frozen=True)
class Candidate:
    host: str
    free_gb: float
    """Capacity still promisable: physical free for thick hosts, virtual free for thin."""


def _number(capabilities: Mapping[str, Any], key: str) -> float:
    try:
        return float(capabilities.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def candidate(host: str, capabilities: Mapping[str, Any],
              max_oversubscription_ratio: float) -> Candidate:
    """How much a host can still promise. A thin host may promise ``total * ratio`` minus
    what it has already provisioned, but never more than it physically has free *
    ratio, so a nearly full pool stops taking volumes."""
    free = _number(capabilities, "free_capacity_gb")
    if capabilities.get("thin_provisioning_support"):
        total = _number(capabilities, "total_capacity_gb")
        provisioned = _number(capabilities, "provisioned_capacity_gb")
        virtual_free = total * max_oversubscription_ratio - provisioned
        return Candidate(host, max(0.0, min(virtual_free, free * max_oversubscription_ratio)))
    return Candidate(host, free)


class Scheduler:
    """Picks the host a new volume is created on."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database) -> None:
        self.conf = conf
        self.db = db

    def choose_host(self, size: int) -> str:
        """The up, enabled host with the most free capacity that holds ``size`` GiB;
        NoValidHost naming why when there is none."""
        services = self.db.services_up(BINARY, self.conf.service_down_time)
        if not services:
            raise exception.NoValidHost(reason="no volume service is up and enabled")
        ratio = self.conf.api.max_oversubscription_ratio
        pending = self.db.pending_gb_by_host({s.host: s.last_heartbeat for s in services})
        candidates = [
            dataclasses.replace(c, free_gb=c.free_gb - pending.get(c.host, 0))
            for c in (candidate(s.host, s.capabilities or {}, ratio) for s in services)]
        fitting = [c for c in candidates if c.free_gb >= size]
        if not fitting:
            best = max(c.free_gb for c in candidates)
            raise exception.NoValidHost(
                reason=f"no host has {size} GiB free (the most any up host can offer "
                f"is {best:g} GiB)")
        # Ties go to the host name, so the choice is deterministic for tests and logs.
        return max(fitting, key=lambda c: (c.free_gb, c.host)).host
