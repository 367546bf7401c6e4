"""Adopting existing storage and forgetting volumes without touching it (admin only):

* ``GET …/manageable_volumes`` and ``…/detail`` (3.8; also ``…/os-volume-manage``): what
  of a storage host's VG (or volumes directory) no row owns, with sizes rounded up to
  whole GiB and why an entry is not safe to manage; the same for snapshots under
  ``manageable_snapshots`` / ``os-snapshot-manage``;
* ``POST …/manageable_volumes`` (3.8) and ``POST …/os-volume-manage``: take one under
  management as a new volume; ``POST …/manageable_snapshots`` and ``…/os-snapshot-manage``
  as a snapshot of a managed volume;
* the ``os-unmanage`` action of volumes and snapshots: forget the row, leave the storage.

Sizes are what only the storage host knows, so listing and sizing are bounded RPC calls
(``[api] rpc_call_timeout``; 503 when the host does not answer). Managing then writes the
row (``managing``, shown as ``creating``, with its quota) and casts; the manager renames
the storage to volmgr's scheme (docs/operations.md, "Adopting existing storage"). A
reference that names nothing adoptable is a 400 at once, before anything is written.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from volmgr import exception, states
from volmgr.api import validation as v
from volmgr.api.operations import cast_after_write
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import PREFIXES, V3Deps, name_and_description, require_admin
from volmgr.api.v3_info import display_host, manager_host
from volmgr.api.v3_views import volume_view
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.context import RequestContext
from volmgr.db import models, types

#: The reference's one key the backends understand (an LV or image file name).
SOURCE_NAME = "source-name"

#: The microversion that added ``manageable_volumes`` / ``manageable_snapshots``.
MANAGEABLE_LIST_VERSION = "3.8"
#: From this microversion a request may name a ``cluster`` instead of a ``host``.
CLUSTER_VERSION = "3.16"
_SORT_KEYS = ("reference", "size")
_VOLUME_FIELDS = ("host", "cluster", "ref", "name", "description", "display_name",
                  "display_description", "volume_type", "availability_zone", "bootable",
                  "metadata")
_SNAPSHOT_FIELDS = ("volume_id", "ref", "name", "description", "display_name",
                    "display_description", "metadata")
#: What the summary lists carry; detail lists carry every field.
_VOLUME_SUMMARY = ("reference", "size", "safe_to_manage")
_SNAPSHOT_SUMMARY = ("reference", "size", "safe_to_manage", "source_reference")


class AdoptingAPI(Protocol):
    """What of ``volmgr.volume.rpcapi.VolumeAPI`` this module uses."""

    def require_version(self, method: str, version: str | None = None) -> None: ...

    def get_manageable_volumes(self, context: RequestContext,
                               host: str) -> list[dict[str, Any]]: ...

    def get_manageable_snapshots(self, context: RequestContext,
                                 host: str) -> list[dict[str, Any]]: ...

    def manage_existing_get_size(self, context: RequestContext, host: str,
                                 reference: dict[str, Any],
                                 volume_id: str | None = None) -> int: ...

    def manage_existing(self, context: RequestContext, host: str, volume_id: str,
                        reference: dict[str, Any]) -> None: ...

    def manage_existing_snapshot(self, context: RequestContext, host: str,
                                 snapshot_id: str, reference: dict[str, Any]) -> None: ...

    def unmanage_volume(self, context: RequestContext, host: str, volume_id: str) -> None: ...

    def unmanage_snapshot(self, context: RequestContext, host: str,
                          snapshot_id: str) -> None: ...


def reference(value: Any) -> dict[str, Any]:
    """The ``ref`` of a manage request: ``{"source-name": "<name>"}``."""
    if not isinstance(value, dict) or not isinstance(value.get(SOURCE_NAME), str) \
            or not value[SOURCE_NAME]:
        raise v.bad(f"'ref' must be an object naming the existing storage: "
                    f"{{\"{SOURCE_NAME}\": \"<name>\"}} (source-id is not supported)")
    v.only_fields(value, (SOURCE_NAME,), "ref")
    return {SOURCE_NAME: v.required_text(value[SOURCE_NAME], f"ref.{SOURCE_NAME}")}


class ManageableController:
    """Handlers of the manageable lists, the manage requests and ``os-unmanage``."""

    def __init__(self, deps: V3Deps) -> None:
        self.conf = deps.conf
        self.db = deps.db
        self.ops = deps.ops
        self.rpcapi: AdoptingAPI = deps.rpcapi  # type: ignore[assignment]
        self.max_limit: int = deps.conf.api.osapi_max_limit

    # -- lists -------------------------------------------------------------------------

    def list_volumes(self, req: ApiRequest, detail: bool) -> ApiResponse:
        return self._list(req, detail, "volume_extension:list_manageable",
                          "get_manageable_volumes", "manageable-volumes", _VOLUME_SUMMARY)

    def list_snapshots(self, req: ApiRequest, detail: bool) -> ApiResponse:
        return self._list(req, detail, "snapshot_extension:list_manageable",
                          "get_manageable_snapshots", "manageable-snapshots",
                          _SNAPSHOT_SUMMARY)

    def _list(self, req: ApiRequest, detail: bool, policy: str, method: str, key: str,
              summary: tuple[str, ...]) -> ApiResponse:
        """One manageable list: what the storage host answers ``method`` with, sorted
        and paged here; the summary keeps only ``summary``'s fields."""
        require_admin(req.ctx, policy)
        host = self._host(req, req.http.GET.get("host"), req.http.GET.get("cluster"))
        self.rpcapi.require_version(method)
        entries = getattr(self.rpcapi, method)(req.ctx, host)
        page = self._page(req, entries)
        return ApiResponse(200, {key: [
            entry if detail else {k: entry[k] for k in summary} for entry in page]})

    def _page(self, req: ApiRequest, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sorted (``sort=key:dir`` or ``sort_key``/``sort_dir``; by reference,
        descending, by default, as the reference service does), then ``marker`` (a
        reference, as JSON, or its source name), ``offset`` and ``limit``."""
        query = req.http.GET
        keys, directions = _sort_params(query)
        for key, direction in reversed(list(zip(keys, directions, strict=True))):
            entries = sorted(entries, key=_sort_value(key), reverse=direction == "desc")
        start = 0
        marker = query.get("marker")
        if marker is not None:
            wanted = _marker_name(marker)
            names = [entry["reference"].get(SOURCE_NAME) for entry in entries]
            if wanted not in names:
                raise exception.NotFound(f"Marker {marker} could not be found.")
            start = names.index(wanted) + 1
        offset = v.integer(str(query.get("offset", "0")), "offset", minimum=0)
        limit = min(v.integer(str(query.get("limit", self.max_limit)), "limit", minimum=0),
                    self.max_limit)
        return entries[start + offset:start + offset + limit]

    def _host(self, req: ApiRequest, name: Any, cluster: Any) -> str:
        """The manager host a request names (``host``, ``host@backend`` or
        ``host@backend#pool``); 404 for one no volume service runs on, 503 when down."""
        if cluster not in (None, ""):
            if not req.at_least(CLUSTER_VERSION):
                raise v.bad("'cluster' is accepted from microversion 3.16")
            raise v.bad("this service has no clusters: name the storage 'host'")
        if name in (None, ""):
            raise v.bad("'host' is required: the storage host whose backend to search, "
                        "as os-vol-host-attr:host or the services list shows it")
        text = v.required_text(name, "host")
        host = manager_host(text, self.conf)
        if host is None or self.ops.scheduler.removed_else_require_up(host):
            raise exception.NotFound(f"Host {text} not found.")
        return host

    # -- manage ------------------------------------------------------------------------

    def manage_volume(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_manage")
        body = v.member(req.body, "volume")
        v.only_fields(body, _VOLUME_FIELDS, "volume")
        host = self._host(req, body.get("host"), body.get("cluster"))
        ref = reference(body.get("ref"))
        fields = name_and_description(body)
        metadata = v.metadata(body.get("metadata"))
        bootable = v.boolean(body.get("bootable", False), "bootable")
        zone = self.conf.storage_availability_zone
        requested_zone = v.text(body.get("availability_zone"), "availability_zone")
        if requested_zone not in (None, zone):
            raise v.bad(f"availability zone {requested_zone!r} does not exist; this "
                        f"service offers {zone!r}")
        volume_type = self.db.volume_type_resolve(
            v.text(body.get("volume_type"), "volume_type"), project_id=req.ctx.project_id,
            is_admin=True)
        if self.db.volume_types_encrypted([volume_type.id]):
            raise v.bad(f"volume type {volume_type.name} is encrypted; existing storage "
                        "cannot be managed as an encrypted volume")
        self.rpcapi.require_version("manage_existing")
        size = self.rpcapi.manage_existing_get_size(req.ctx, host, ref)
        volume = self.db.volume_create(
            project_id=req.ctx.project_id, user_id=req.ctx.user_id, size=size,
            display_name=fields.get("display_name"),
            display_description=fields.get("display_description"), metadata=metadata,
            availability_zone=zone, volume_type=volume_type.name,
            volume_type_id=volume_type.id, host=host, status=states.MANAGING,
            multiattach=types.is_multiattach(volume_type))
        if bootable:
            self.db.volume_update(volume.id, {"bootable": True})
            volume = self.db.volume_get(volume.id)
        cast_after_write(req.ctx, "manage_existing", volume.id,
                         lambda: self.rpcapi.manage_existing(req.ctx, host, volume.id, ref))
        return ApiResponse(202, {"volume": volume_view(
            req, volume, lambda h: display_host(h, self.conf), extended=False)})

    def manage_snapshot(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "snapshot_extension:snapshot_manage")
        body = v.member(req.body, "snapshot")
        v.only_fields(body, _SNAPSHOT_FIELDS, "snapshot")
        volume_id = v.required_text(body.get("volume_id"), "volume_id", 64)
        ref = reference(body.get("ref"))
        fields = name_and_description(body)
        metadata = v.metadata(body.get("metadata"))
        volume = self.db.volume_get(volume_id)
        if volume.host is None:
            raise exception.VolumeStatusConflict(volume_id=volume_id, status=volume.status,
                                                 expected=", ".join(
                                                     states.CAN_SNAPSHOT_FROM))
        host = volume.host
        self.ops.require_up(host)
        self.rpcapi.require_version("manage_existing_snapshot")
        size = self.rpcapi.manage_existing_get_size(req.ctx, host, ref, volume_id=volume_id)
        snapshot = self.db.snapshot_create(
            volume_id, project_id=volume.project_id, user_id=req.ctx.user_id,
            display_name=fields.get("display_name"),
            display_description=fields.get("display_description"), metadata=metadata,
            status=states.SNAP_MANAGING, size=size)
        cast_after_write(req.ctx, "manage_existing_snapshot", snapshot.id,
                         lambda: self.rpcapi.manage_existing_snapshot(req.ctx, host,
                                                                      snapshot.id, ref))
        return ApiResponse(202, {"snapshot": _managed_snapshot_view(snapshot)})

    # -- unmanage ----------------------------------------------------------------------

    def unmanage_volume(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_unmanage")
        _no_arguments(args, "os-unmanage")
        volume = self.db.volume_get(volume_id)
        if volume.host is not None:
            self.ops.require_up(volume.host)
            self.rpcapi.require_version("unmanage_volume")
        self.db.volume_transition_or_raise(
            volume_id, states.CAN_UNMANAGE_FROM,
            {"status": states.UNMANAGING, "status_reason": None, "recovery_attempts": 0},
            no_attachments=True, no_snapshots=True)
        host = volume.host
        if host is None:  # never placed: there is no storage and no manager
            self.db.volume_destroy(volume_id, expected=(states.UNMANAGING,))
            return ApiResponse(202)
        cast_after_write(req.ctx, "unmanage_volume", volume_id,
                         lambda: self.rpcapi.unmanage_volume(req.ctx, host, volume_id))
        return ApiResponse(202)

    def unmanage_snapshot(self, req: ApiRequest, snapshot_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "snapshot_extension:snapshot_unmanage")
        _no_arguments(args, "os-unmanage")
        snapshot = self.db.snapshot_get(snapshot_id)
        host = snapshot.host
        if host is not None:
            self.ops.require_up(host)
            self.rpcapi.require_version("unmanage_snapshot")
        self.db.snapshot_transition_or_raise(
            snapshot_id, states.SNAP_CAN_UNMANAGE_FROM,
            {"status": states.SNAP_UNMANAGING, "status_reason": None,
             "recovery_attempts": 0}, no_volume_being_made=True)
        if host is None:
            self.db.snapshot_destroy(snapshot_id, expected=(states.SNAP_UNMANAGING,))
            return ApiResponse(202)
        cast_after_write(req.ctx, "unmanage_snapshot", snapshot_id,
                         lambda: self.rpcapi.unmanage_snapshot(req.ctx, host, snapshot_id))
        return ApiResponse(202)


def _managed_snapshot_view(snapshot: models.Snapshot) -> dict[str, Any]:
    """The reference answers a snapshot manage request with the plain snapshot view."""
    return {"id": snapshot.id, "status": states.public_status(snapshot.status),
            "size": snapshot.size, "metadata": dict(snapshot.metadata_ or {}),
            "name": snapshot.display_name, "description": snapshot.display_description,
            "volume_id": snapshot.volume_id, "created_at": timestamp(snapshot.created_at),
            "updated_at": timestamp(snapshot.updated_at)}


def _no_arguments(args: Any, action: str) -> None:
    if args not in (None, {}) and not (isinstance(args, dict) and not args):
        raise v.bad(f"'{action}' takes no arguments: send {{\"{action}\": {{}}}}")


def _sort_params(query: Any) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    directions: list[str] = []
    if query.get("sort"):
        if query.get("sort_key") or query.get("sort_dir"):
            raise v.bad("'sort' cannot be combined with 'sort_key' or 'sort_dir'")
        for part in str(query["sort"]).split(","):
            key, _, direction = part.strip().partition(":")
            keys.append(key)
            directions.append(direction or "desc")
    else:
        keys.append(str(query.get("sort_key") or "reference"))
        directions.append(str(query.get("sort_dir") or "desc"))
    bad_keys = sorted(set(keys) - set(_SORT_KEYS))
    if bad_keys:
        raise v.bad(f"Invalid sort keys passed: {', '.join(bad_keys)[:100]}; "
                    f"sort by {' or '.join(_SORT_KEYS)}")
    bad_dirs = sorted(set(directions) - {"asc", "desc"})
    if bad_dirs:
        raise v.bad(f"Invalid sort dirs passed: {', '.join(bad_dirs)[:100]}; use asc or desc")
    return keys, directions


def _sort_value(key: str) -> Any:
    if key == "size":
        return lambda entry: entry["size"]
    return lambda entry: str(entry["reference"].get(SOURCE_NAME, ""))


def _marker_name(marker: str) -> str:
    try:
        parsed = json.loads(marker)
    except ValueError:
        return marker
    if isinstance(parsed, dict) and isinstance(parsed.get(SOURCE_NAME), str):
        return str(parsed[SOURCE_NAME])
    return marker


def add_routes(router: Router, deps: V3Deps) -> None:
    c = ManageableController(deps)
    deps.volume_actions.add("os-unmanage", c.unmanage_volume)
    deps.snapshot_actions.add("os-unmanage", c.unmanage_snapshot)
    for prefix in PREFIXES:
        for collection, since in (("/manageable_volumes", MANAGEABLE_LIST_VERSION),
                                  ("/os-volume-manage", None)):
            router.add("GET", prefix + collection, lambda r: c.list_volumes(r, False),
                       min_version=since)
            router.add("GET", prefix + collection + "/detail",
                       lambda r: c.list_volumes(r, True), min_version=since)
            router.add("POST", prefix + collection, c.manage_volume, min_version=since)
        for collection, since in (("/manageable_snapshots", MANAGEABLE_LIST_VERSION),
                                  ("/os-snapshot-manage", None)):
            router.add("GET", prefix + collection, lambda r: c.list_snapshots(r, False),
                       min_version=since)
            router.add("GET", prefix + collection + "/detail",
                       lambda r: c.list_snapshots(r, True), min_version=since)
            router.add("POST", prefix + collection, c.manage_snapshot, min_version=since)
