"""Block Storage v3: what the deployment is made of — availability zones, services,
hosts, pools and their capabilities, and the extensions the API implements.

Presentation (docs/decisions.md, "Services, pools and user messages"):

* A volume manager (``volmgr-volume`` in the ``services`` table) is shown with the
  reference service's binary name ``cinder-volume`` and its host as ``host@backend``;
  its one pool is ``host@backend#backend`` (``display_host``), the backend being
  ``[volume] volume_backend_name`` (default: the driver's name). The database keeps
  the plain host name, which RPC routing uses.
* Host choice (the reference service's ``cinder-scheduler``) runs inside volmgr-api, so
  the API answering a services or hosts listing reports itself as that service, up and
  enabled, under ``[DEFAULT] host``; it has no row of its own and cannot be disabled.
* Capabilities come from what each manager last reported with its heartbeat (see
  ``scheduler.pool_capabilities``); no request waits on a manager.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.api import microversion as mv
from volmgr.api import scheduler, wsgi
from volmgr.api import validation as v
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import V3Deps, prefixed, require_admin
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import models
from volmgr.db.services import is_up

#: volmgr's binaries under the names Block Storage clients filter by.
VOLUME_BINARY = "cinder-volume"
SCHEDULER_BINARY = "cinder-scheduler"
_BINARIES = {rpc.VOLUME_SERVICE: VOLUME_BINARY}
_INTERNAL = {VOLUME_BINARY: rpc.VOLUME_SERVICE, rpc.VOLUME_SERVICE: rpc.VOLUME_SERVICE}


def display_host(host: str | None, conf: cfg.ConfigOpts) -> str | None:
    """A volume's manager host as admins see it: ``host@backend#pool`` (``None`` for a
    volume never placed)."""
    return None if host is None else scheduler.pool_name(host, conf)


def backend_host(host: str, conf: cfg.ConfigOpts) -> str:
    """A manager host as a backend: ``host@backend``."""
    return f"{host}@{scheduler.backend_name(conf)}"


def manager_host(name: str, conf: cfg.ConfigOpts) -> str | None:
    """The manager host meant by ``host``, ``host@backend`` or ``host@backend#pool``;
    None when the backend or pool named is not this deployment's."""
    host, _, rest = name.partition("@")
    if not rest:
        return host.partition("#")[0] or None
    backend, _, pool = rest.partition("#")
    expected = scheduler.backend_name(conf)
    if backend != expected or (pool and pool != expected):
        return None
    return host or None


# -- Extensions ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Extension:
    name: str
    alias: str
    description: str
    updated: str
    #: How to tell it is served: ("route", METHOD, path under /v3/{p}), ("volume_action"
    #: | "snapshot_action", name), or None for attributes every view carries.
    probe: tuple[str, ...] | None = None


EXTENSIONS: tuple[Extension, ...] = (
    Extension("AdminActions", "os-admin-actions",
              "Administrator actions on volumes and snapshots (reset status, force "
              "delete).", "2012-08-25T00:00:00+00:00", ("volume_action", "os-reset_status")),
    Extension("AvailabilityZones", "os-availability-zone",
              "Lists the availability zones volumes can be created in.",
              "2013-06-27T00:00:00+00:00", ("route", "GET", "/os-availability-zone")),
    Extension("Capabilities", "capabilities",
              "Shows what a storage backend offers.", "2015-08-31T00:00:00+00:00",
              ("route", "GET", "/capabilities/probe")),
    Extension("ExtendedServices", "os-extended-services",
              "Services show why they were disabled; disabling can record a reason.",
              "2014-01-10T00:00:00-00:00", ("route", "GET", "/os-services")),
    Extension("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes",
              "Snapshots show their project and progress.", "2012-06-19T00:00:00+00:00"),
    Extension("Hosts", "os-hosts", "Administrators list storage hosts and their usage.",
              "2011-06-29T00:00:00+00:00", ("route", "GET", "/os-hosts")),
    Extension("Qos_specs_manage", "qos-specs", "Quality-of-service specifications.",
              "2013-08-02T00:00:00+00:00", ("route", "GET", "/qos-specs")),
    Extension("QuotaClasses", "os-quota-class-sets", "Default quota classes.",
              "2012-03-12T00:00:00+00:00", ("route", "GET", "/os-quota-class-sets/probe")),
    Extension("Quotas", "os-quota-sets", "Per-project quotas.",
              "2011-08-08T00:00:00+00:00", ("route", "GET", "/os-quota-sets/probe")),
    Extension("Scheduler_stats", "scheduler-stats",
              "Lists the storage pools volumes are placed in.",
              "2014-09-07T00:00:00+00:00", ("route", "GET", "/scheduler-stats/get_pools")),
    Extension("Services", "os-services",
              "Administrators list, enable and disable volmgr services.",
              "2012-10-28T00:00:00-00:00", ("route", "GET", "/os-services")),
    Extension("SnapshotActions", "os-snapshot-actions", "Actions on snapshots.",
              "2013-07-16T00:00:00+00:00",
              ("snapshot_action", "os-update_snapshot_status")),
    Extension("SnapshotManage", "os-snapshot-manage",
              "Adopt existing snapshots of a storage host.", "2014-12-31T00:00:00+00:00",
              ("route", "POST", "/os-snapshot-manage")),
    Extension("SnapshotUnmanage", "os-snapshot-unmanage",
              "Forget a snapshot without touching its storage.",
              "2014-12-31T00:00:00+00:00", ("snapshot_action", "os-unmanage")),
    Extension("TypesExtraSpecs", "os-types-extra-specs", "Volume type extra specs.",
              "2011-08-24T00:00:00+00:00", ("route", "GET", "/types/probe/extra_specs")),
    Extension("TypesManage", "os-types-manage", "Creating and deleting volume types.",
              "2011-08-24T00:00:00+00:00", ("route", "POST", "/types")),
    Extension("UsedLimits", "os-used-limits",
              "Limits show what the project already uses.", "2013-10-03T00:00:00+00:00",
              ("route", "GET", "/limits")),
    Extension("VolumeActions", "os-volume-actions",
              "Actions on volumes (attach, detach, extend, ...).",
              "2012-05-31T00:00:00+00:00", ("volume_action", "os-extend")),
    Extension("VolumeManage", "os-volume-manage",
              "Adopt existing storage of a storage host as volumes.",
              "2014-02-10T00:00:00+00:00", ("route", "POST", "/os-volume-manage")),
    Extension("VolumeHostAttribute", "os-vol-host-attr",
              "Administrators see the host a volume lives on.", "2011-11-03T00:00:00+00:00"),
    Extension("VolumeImageMetadata", "os-vol-image-meta",
              "Volumes keep the metadata of the image they were made from.",
              "2012-12-07T00:00:00+00:00", ("volume_action", "os-set_image_metadata")),
    Extension("VolumeMigStatusAttribute", "os-vol-mig-status-attr",
              "Administrators see a volume's migration status.",
              "2013-08-08T00:00:00+00:00"),
    Extension("VolumeTenantAttribute", "os-vol-tenant-attr",
              "Volumes show the project that owns them.", "2011-11-03T00:00:00+00:00"),
    Extension("VolumeTransfer", "os-volume-transfer",
              "Transferring volumes between projects.", "2013-05-29T00:00:00+00:00",
              ("route", "GET", "/os-volume-transfer")),
    Extension("VolumeTypeAccess", "os-volume-type-access",
              "Private volume types and their access lists.", "2014-06-26T00:00:00Z",
              ("route", "GET", "/types/probe/os-volume-type-access")),
    Extension("VolumeTypeEncryption", "encryption",
              "Encryption records of volume types.", "2013-07-01T00:00:00+00:00",
              ("route", "GET", "/types/probe/encryption")),
    Extension("VolumeUnmanage", "os-volume-unmanage",
              "Forget a volume without touching its storage.",
              "2014-02-10T00:00:00+00:00", ("volume_action", "os-unmanage")),
)


def _served(extension: Extension, router: Router, deps: V3Deps) -> bool:
    probe = extension.probe
    if probe is None:
        return True
    if probe[0] == "volume_action":
        return probe[1] in deps.volume_actions.names()
    if probe[0] == "snapshot_action":
        return probe[1] in deps.snapshot_actions.names()
    try:
        route, _, _ = router.match(probe[1], "/v3/probe" + probe[2], mv.MAX_VERSION)
    except wsgi.HTTPError:
        return False
    return route.method == probe[1]


# -- Views --------------------------------------------------------------------------


def _service_view(req: ApiRequest, conf: cfg.ConfigOpts,
                  service: models.Service) -> dict[str, Any]:
    binary = _BINARIES.get(service.binary, service.binary)
    up = is_up(service, conf.service_down_time)
    view: dict[str, Any] = {
        "binary": binary,
        "host": backend_host(service.host, conf) if binary == VOLUME_BINARY else service.host,
        "zone": conf.storage_availability_zone,
        "status": "disabled" if service.disabled else "enabled",
        "state": "up" if up else "down",
        "updated_at": timestamp(service.last_heartbeat or service.updated_at
                                or service.created_at),
        "disabled_reason": service.disabled_reason,
    }
    if binary == VOLUME_BINARY:
        view.update({"replication_status": "disabled", "active_backend_id": None,
                     "frozen": False})
        if req.at_least("3.49"):
            view["backend_state"] = "up" if up else "down"
    if req.at_least("3.7"):
        view["cluster"] = None
    return view


def _scheduler_view(req: ApiRequest, conf: cfg.ConfigOpts) -> dict[str, Any]:
    view: dict[str, Any] = {
        "binary": SCHEDULER_BINARY, "host": conf.host,
        "zone": conf.storage_availability_zone, "status": "enabled", "state": "up",
        "updated_at": timestamp(models.utcnow()), "disabled_reason": None}
    if req.at_least("3.7"):
        view["cluster"] = None
    return view


def _host_filter(name: str) -> Any:
    """The reference's host filter: ``host`` matches ``host``, ``host@…`` and ``host#…``;
    ``host@backend`` matches itself and its pools; ``host@backend#pool`` only itself."""
    def matches(shown: str) -> bool:
        if shown == name or shown.startswith(name + "#"):
            return True
        return "@" not in name and "#" not in name and shown.startswith(name + "@")
    return matches


class InfoController:
    def __init__(self, router: Router, deps: V3Deps) -> None:
        self.router = router
        self.deps = deps
        self.conf = deps.conf
        self.db = deps.db
        self._extensions: list[dict[str, Any]] | None = None

    # -- availability zones ----------------------------------------------------------

    def availability_zones(self, req: ApiRequest) -> ApiResponse:
        available = bool(self.db.services_up(rpc.VOLUME_SERVICE, self.conf.service_down_time))
        return ApiResponse(200, {"availabilityZoneInfo": [
            {"zoneName": self.conf.storage_availability_zone,
             "zoneState": {"available": available}}]})

    # -- extensions ------------------------------------------------------------------

    def extensions(self, req: ApiRequest) -> ApiResponse:
        if self._extensions is None:  # every route is registered by the first request
            self._extensions = [
                {"name": e.name, "alias": e.alias, "description": e.description,
                 "updated": e.updated, "links": []}
                for e in EXTENSIONS if _served(e, self.router, self.deps)]
        return ApiResponse(200, {"extensions": self._extensions})

    # -- services --------------------------------------------------------------------

    def _views(self, req: ApiRequest) -> list[dict[str, Any]]:
        views = [_service_view(req, self.conf, s) for s in self.db.service_list()]
        views.append(_scheduler_view(req, self.conf))
        return views

    def list_services(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:services:index")
        views = self._views(req)
        host = req.query("host")
        if host:
            matches = _host_filter(host)
            views = [view for view in views if matches(view["host"])]
        binary = req.query("binary")
        if binary:
            shown = _BINARIES.get(binary, binary)
            views = [view for view in views if view["binary"] == shown]
        return ApiResponse(200, {"services": views})

    def _find(self, host: str, binary: str) -> models.Service:
        """The service a body names by its shown host and binary; 404 when none."""
        internal = _INTERNAL.get(binary)
        if binary == SCHEDULER_BINARY and manager_host(host, self.conf) == self.conf.host:
            raise v.bad("host choice runs inside volmgr-api and cannot be enabled or "
                        "disabled")
        name = manager_host(host, self.conf)
        if internal is None or name is None:
            raise exception.ServiceNotFound(host=host, binary=binary)
        try:
            return self.db.service_get(name, internal)
        except exception.ServiceNotFound:
            raise exception.ServiceNotFound(host=host, binary=binary) from None

    @staticmethod
    def _service_body(req: ApiRequest, allowed: tuple[str, ...]) -> dict[str, Any]:
        body = req.body
        if not isinstance(body, dict):
            raise v.bad("the body must be a JSON object")
        v.only_fields(body, allowed, "body")
        if body.get("cluster") is not None:
            raise v.bad("volmgr has no clusters; name the service by 'host'")
        return body

    def update_service(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:services:update")
        action = req.params["action"]
        if action in ("freeze", "thaw", "failover_host", "failover"):
            return self._replication(req, action)
        if action not in ("enable", "disable", "disable-log-reason"):
            raise exception.NotFound(f"Unknown action {action[:40]!r}.")
        fields: tuple[str, ...] = ("host", "binary", "service", "cluster")
        if action == "disable-log-reason":
            fields += ("disabled_reason",)
        body = self._service_body(req, fields)
        host = v.required_text(body.get("host"), "host")
        service = v.text(body.get("service"), "service") or ""
        binary = v.text(body.get("binary"), "binary") or ""
        if not (binary or service):
            raise v.bad("'binary' is required")
        reason: str | None = None
        if action == "disable-log-reason":
            reason = v.required_text(body.get("disabled_reason"), "disabled_reason")
            if not reason.strip():
                raise v.bad("'disabled_reason' must not be blank")
        row = self._find(host, binary or service)
        disabled = action != "enable"
        self.db.service_set_disabled(row.host, row.binary, disabled, reason)
        answer: dict[str, Any] = {"host": host, "service": service, "binary": binary,
                                  "status": "disabled" if disabled else "enabled",
                                  "disabled": disabled}
        if action != "disable":
            answer["disabled_reason"] = reason
        return ApiResponse(200, answer)

    def _replication(self, req: ApiRequest, action: str) -> ApiResponse:
        fields = ("host", "cluster") + (("backend_id",) if action.startswith("failover")
                                        else ())
        body = self._service_body(req, fields)
        host = v.required_text(body.get("host"), "host")
        name = manager_host(host, self.conf)
        known = name is not None and any(
            s.host == name for s in self.db.service_list(rpc.VOLUME_SERVICE))
        if not known:
            raise v.bad(f"no volume service runs on host {host[:255]!r}")
        raise v.bad(f"volmgr does not replicate volumes, so there is nothing to {action}")

    # -- hosts -----------------------------------------------------------------------

    def list_hosts(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:hosts")
        zone = req.query("zone")
        hosts = []
        for view in self._views(req):
            if view["status"] == "disabled" or (zone and view["zone"] != zone):
                continue
            hosts.append({
                "host_name": view["host"], "service": view["binary"], "zone": view["zone"],
                "service-status": "available" if view["state"] == "up" else "unavailable",
                "service-state": view["status"], "last-update": view["updated_at"]})
        return ApiResponse(200, {"hosts": hosts})

    def show_host(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:hosts")
        shown = req.params["host_name"]
        name = manager_host(shown, self.conf)
        try:
            if name is None:
                raise exception.ServiceNotFound(host=shown, binary=VOLUME_BINARY)
            self.db.service_get(name, rpc.VOLUME_SERVICE)
        except exception.ServiceNotFound:
            raise exception.NotFound(f"Host {shown[:255]} could not be found.") from None
        usage = self.db.host_usage(name)
        total = {key: sum(entry[key] for entry in usage.values())
                 for key in ("volume_count", "volume_gb", "snapshot_count", "snapshot_gb")}
        rows = [("(total)", total), *sorted(usage.items())]
        return ApiResponse(200, {"host": [
            {"resource": {"host": shown, "project": project,
                          "volume_count": str(entry["volume_count"]),
                          "total_volume_gb": str(entry["volume_gb"]),
                          "snapshot_count": str(entry["snapshot_count"]),
                          "total_snapshot_gb": str(entry["snapshot_gb"])}}
            for project, entry in rows]})

    # -- pools and capabilities ------------------------------------------------------

    def _capabilities(self, service: models.Service,
                      allocated: Mapping[str, int]) -> dict[str, Any]:
        return scheduler.pool_capabilities(
            service.capabilities or {}, self.conf,
            allocated_gb=float(allocated.get(service.host, 0)),
            updated=service.last_heartbeat)

    def get_pools(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "scheduler_extension:scheduler_stats:get_pools")
        detail = v.boolean(req.query("detail") or "false", "detail")
        filters = {key: str(value) for key, value in req.http.GET.items()
                   if key != "detail"} if req.at_least("3.28") else {}
        name = filters.pop("name", None)
        filters.pop("volume_type", None)  # one pool: every type lands in it or nowhere
        allocated = self.db.allocated_gb_by_host()
        pools = []
        for service in self.db.services_up(rpc.VOLUME_SERVICE, self.conf.service_down_time):
            pool = scheduler.pool_name(service.host, self.conf)
            capabilities = self._capabilities(service, allocated)
            if name is not None and pool != name:
                continue
            if any(not _equal(capabilities.get(key), value)
                   for key, value in filters.items()):
                continue
            pools.append({"name": pool, "capabilities": capabilities} if detail
                         else {"name": pool})
        return ApiResponse(200, {"pools": pools})

    def show_capabilities(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:capabilities")
        shown = req.params["host"]
        name = manager_host(shown, self.conf)
        service = next((s for s in self.db.service_list(rpc.VOLUME_SERVICE)
                        if s.host == name), None)
        if service is None:
            raise exception.NotFound(f"Can't find service: {shown[:255]}")
        capabilities = self._capabilities(service, self.db.allocated_gb_by_host())
        properties: dict[str, Any] = {}
        if capabilities["thin_provisioning_support"]:
            properties["thin_provisioning"] = {
                "title": "Thin Provisioning", "type": "boolean",
                "description": "Volumes use space only for the data written to them."}
        return ApiResponse(200, {
            "namespace": f"OS::Storage::Capabilities::{backend_host(service.host, self.conf)}",
            "vendor_name": capabilities["vendor_name"],
            "volume_backend_name": capabilities["volume_backend_name"],
            "pool_name": capabilities["pool_name"],
            "driver_version": capabilities["driver_version"],
            "storage_protocol": capabilities["storage_protocol"],
            "display_name": None, "description": None, "visibility": None,
            "replication_targets": [], "properties": properties})


def _equal(have: Any, want: str) -> bool:
    """A pool filter value against a capability, compared as the type the capability
    has (``true`` matches True, ``10`` matches 10.0)."""
    if isinstance(have, bool):
        return want.strip().lower() in (("true", "1", "yes") if have
                                        else ("false", "0", "no"))
    if isinstance(have, int | float):
        try:
            return float(want) == float(have)
        except ValueError:
            return False
    return have is not None and str(have) == want


def add_routes(router: Router, deps: V3Deps) -> None:
    info = InfoController(router, deps)
    for path in prefixed("/os-availability-zone"):
        router.add("GET", path, info.availability_zones)
    for path in prefixed("/extensions"):
        router.add("GET", path, info.extensions)
    for path in prefixed("/os-services"):
        router.add("GET", path, info.list_services)
    for path in prefixed("/os-services/{action}"):
        router.add("PUT", path, info.update_service)
    for path in prefixed("/os-hosts"):
        router.add("GET", path, info.list_hosts)
    for path in prefixed("/os-hosts/{host_name}"):
        router.add("GET", path, info.show_host)
    for path in prefixed("/scheduler-stats/get_pools"):
        router.add("GET", path, info.get_pools)
    for path in prefixed("/capabilities/{host}"):
        router.add("GET", path, info.show_capabilities)
