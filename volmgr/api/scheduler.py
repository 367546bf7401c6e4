"""Host choice for new volumes: among the ``volmgr-volume`` services that are up and
enabled, whose capabilities satisfy the volume type's extra specs, the one with the most
free capacity that fits.

It reads the capacity each manager last reported with its heartbeat, less what was
promised since (volumes still creating or placed after that heartbeat); it never calls a
manager synchronously (a request path must not wait on the bus).

Each volume host is one backend with one pool. Its capabilities are what the manager
reported plus what the API knows of the deployment (``pool_capabilities``): the backend
name (``[volume] volume_backend_name``, default the driver's name), the vendor, the
protocol. ``/scheduler-stats/get_pools``, ``/capabilities`` and the extra-spec match all
read that one dictionary.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg
from oslo_utils import strutils

import volmgr
from volmgr import exception, rpc
from volmgr.db import Database
from volmgr.db.services import is_up

VENDOR_NAME = "Open Source"
STORAGE_PROTOCOL = "iSCSI"
#: A volume whose type asks for multiattach may be attached to several servers, and an
#: attached volume may grow from 3.42 (docs/rpc.md, "Attachments").
MULTIATTACH = True
ONLINE_EXTEND = True



def backend_name(conf: cfg.ConfigOpts) -> str:
    """The backend (and pool) name hosts are shown with."""
    return str(conf.volume.volume_backend_name or conf.volume.driver)


def pool_name(host: str, conf: cfg.ConfigOpts) -> str:
    """``host@backend#pool`` for a manager host name."""
    backend = backend_name(conf)
    return f"{host}@{backend}#{backend}"


def pool_capabilities(reported: Mapping[str, Any], conf: cfg.ConfigOpts, *,
                      allocated_gb: float = 0.0,
                      updated: datetime.datetime | None = None) -> dict[str, Any]:
    """A host's capabilities as admins and volume types see them: what its manager
    reported with its heartbeat, with the standard keys of a Block Storage pool."""
    thin = bool(reported.get("thin_provisioning_support"))
    name = backend_name(conf)
    return {
        **reported,
        "volume_backend_name": name,
        "pool_name": name,
        "vendor_name": VENDOR_NAME,
        "driver_version": volmgr.__version__,
        "storage_protocol": str(reported.get("storage_protocol") or STORAGE_PROTOCOL),
        "total_capacity_gb": _number(reported, "total_capacity_gb"),
        "free_capacity_gb": _number(reported, "free_capacity_gb"),
        "provisioned_capacity_gb": _number(reported, "provisioned_capacity_gb"),
        "allocated_capacity_gb": allocated_gb,
        "reserved_percentage": 0,
        "QoS_support": False,
        "thin_provisioning_support": thin,
        "thick_provisioning_support": not thin,
        "max_over_subscription_ratio": conf.api.max_oversubscription_ratio,
        "multiattach": MULTIATTACH,
        "online_extend_support": ONLINE_EXTEND,
        "timestamp": updated.strftime("%Y-%m-%dT%H:%M:%S.%f") if updated else None,
    }


_SPEC_OPERATORS: dict[str, Any] = {
    "=": lambda have, want: float(have) >= float(want),
    "==": lambda have, want: float(have) == float(want),
    "!=": lambda have, want: float(have) != float(want),
    ">=": lambda have, want: float(have) >= float(want),
    "<=": lambda have, want: float(have) <= float(want),
    "<in>": lambda have, want: want in str(have),
    "<is>": lambda have, want: (strutils.bool_from_string(have)
                                is strutils.bool_from_string(want)),
    "s==": lambda have, want: str(have) == want,
    "s!=": lambda have, want: str(have) != want,
    "s<": lambda have, want: str(have) < want,
    "s<=": lambda have, want: str(have) <= want,
    "s>": lambda have, want: str(have) > want,
    "s>=": lambda have, want: str(have) >= want,
}


def spec_matches(have: Any, want: str) -> bool:
    """One extra-spec requirement against one capability value, with the reference
    service's operators (``<is> True``, ``>= 10``, ``<or> a <or> b``, ``s== x``…); a
    plain value must equal the capability (booleans compare as ``True``/``False``)."""
    words = str(want).split()
    operator = words[0] if words else ""
    if operator == "<or>":
        return have is not None and str(have) in words[1::2]
    method = _SPEC_OPERATORS.get(operator)
    if method is None:
        return str(have) == str(want) if isinstance(have, bool) else have == want
    if have is None or len(words) < 2:
        return False
    try:
        return bool(method(have, words[1]))
    except (TypeError, ValueError):
        return False


def satisfies(capabilities: Mapping[str, Any], extra_specs: Mapping[str, Any]) -> bool:
    """Whether a host's capabilities meet a volume type's extra specs. Keys scoped by
    anything but ``capabilities:`` (``RESKEY:``, vendor scopes) are not for the
    scheduler and are skipped; any other key names a capability the host must have."""
    for key, want in extra_specs.items():
        scope = str(key).split(":")
        if len(scope) > 1 and scope[0] != "capabilities":
            continue
        if scope[0] == "capabilities":
            scope = scope[1:]
        have: Any = capabilities
        for part in scope:
            if not isinstance(have, Mapping) or part not in have:
                return False
            have = have[part]
        values = have if isinstance(have, list) else [have]
        if not any(spec_matches(value, str(want)) for value in values):
            return False
    return True


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

    def choose_host(self, size: int, extra_specs: Mapping[str, Any] | None = None) -> str:
        """The up, enabled host whose capabilities meet ``extra_specs`` (the volume
        type's) with the most free capacity that holds ``size`` GiB; NoValidHost naming
        why when there is none."""
        services, pending = self.db.placement_view(rpc.VOLUME_SERVICE,
                                                   self.conf.service_down_time)
        if not services:
            raise exception.NoValidHost(reason="no volume service is up and enabled")
        if extra_specs:
            services = [s for s in services if satisfies(
                pool_capabilities(s.capabilities or {}, self.conf), extra_specs)]
            if not services:
                raise exception.NoValidHost(
                    reason="no up and enabled volume host has the capabilities the "
                    "volume type asks for")
        ratio = self.conf.api.max_oversubscription_ratio
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

    def require_up(self, host: str) -> None:
        """ServiceUnavailable (503) naming ``host`` when the volume service that owns a
        volume is down: stopped cleanly (it marked itself down), silent for
        ``service_down_time``, or never run. Checked before anything is written, so an
        operation on a volume of a dead host fails at once instead of sitting in a
        transitional status until the host returns (docs/scaling.md)."""
        if self.removed_else_require_up(host):
            raise exception.ServiceUnavailable(
                reason=f"no volume service runs on storage host {host} (never started, or "
                "removed with volmgr-manage service remove)")

    def removed_else_require_up(self, host: str) -> bool:
        """True when ``host`` has no volume service row: the scheduler only places
        volumes on registered hosts, so it was given up with ``volmgr-manage service
        remove``. Otherwise ``require_up``'s check (503 when it is down), from the same
        single read of its service row."""
        try:
            service = self.db.service_get(host, rpc.VOLUME_SERVICE)
        except exception.NotFound:
            return True
        if is_up(service, self.conf.service_down_time):
            return False
        if service.last_heartbeat is None:
            why = "was stopped"
        else:
            why = f"sent no heartbeat for {self.conf.service_down_time} s"
        raise exception.ServiceUnavailable(
            reason=f"the volume service of storage host {host} is down (it {why}); "
            "try again when it is back")
