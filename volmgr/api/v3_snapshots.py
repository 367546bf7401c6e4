"""Block Storage v3 snapshots (``/v3/{project_id}/snapshots``): list, show, create,
update, delete, metadata, and the snapshot actions ``os-reset_status`` (admin) and
``os-update_snapshot_status`` (what a compute host reports for a snapshot it made)."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from volmgr import exception, states
from volmgr.api import edits, v3_listing
from volmgr.api import validation as v
from volmgr.api.edits import VolumeEdits
from volmgr.api.operations import ApiOperations
from volmgr.api.v3_base import (
    PREFIXES,
    V3Deps,
    name_and_description,
    next_link,
    require_admin,
)
from volmgr.api.v3_metadata import MetadataResource
from volmgr.api.v3_views import snapshot_view
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import Database

_CREATE_FIELDS = ("volume_id", "force", "name", "description", "display_name",
                  "display_description", "metadata")
_UPDATE_FIELDS = ("name", "description", "display_name", "display_description")
RESETTABLE_STATUSES = (states.SNAP_CREATING, states.SNAP_AVAILABLE, states.SNAP_DELETING,
                       states.SNAP_ERROR, states.SNAP_ERROR_DELETING)
#: Where a compute host's status report may move a snapshot from and to.
_REPORTED = {states.SNAP_CREATING: (states.SNAP_AVAILABLE, states.SNAP_ERROR),
             states.SNAP_DELETING: (states.SNAP_ERROR_DELETING,)}


class SnapshotController:
    """Handlers of ``/v3/{project_id}/snapshots``."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, ops: ApiOperations) -> None:
        self.db = db
        self.ops = ops
        self.edits = VolumeEdits(ops)
        self.max_limit: int = conf.api.osapi_max_limit

    def list(self, req: ApiRequest, detail: bool) -> ApiResponse:
        listing = v3_listing.read(req, max_limit=self.max_limit,
                                  columns=v3_listing.SNAPSHOT_COLUMNS,
                                  member_filters=v3_listing.SNAPSHOT_MEMBER_FILTERS)
        project = (listing.filters.pop("project_id", None) if listing.all_projects
                   else req.params.get("project_id") or req.ctx.project_id)
        try:
            snapshots = self.ops.list_snapshots(
                req.ctx, project, filters=listing.filters, limit=listing.limit,
                marker=listing.marker, offset=listing.offset, sort=listing.sort,
                row_filter=listing.row_filter())
        except exception.SnapshotNotFound:
            raise exception.NotFound(f"Marker {listing.marker} could not be found.") \
                from None
        body: dict[str, Any] = {"snapshots": [snapshot_view(req, s, extended=detail)
                                              for s in snapshots]}
        if snapshots and len(snapshots) == listing.limit:
            body["snapshots_links"] = next_link(req, snapshots[-1].id)
        if listing.with_count:
            body["count"] = len(self.ops.list_snapshots(
                req.ctx, project, filters=listing.filters,
                row_filter=listing.row_filter()))
        return ApiResponse(200, body)

    def show(self, req: ApiRequest) -> ApiResponse:
        snapshot = self.ops.get_snapshot(req.ctx, req.params["snapshot_id"])
        return ApiResponse(200, {"snapshot": snapshot_view(req, snapshot)})

    def create(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "snapshot")
        v.only_fields(body, _CREATE_FIELDS, "snapshot")
        volume_id = body.get("volume_id")
        if volume_id is None:
            raise exception.VolumeNotFound(volume_id=None)
        force = body.get("force")
        snapshot = self.ops.create_snapshot(
            req.ctx, v.required_text(volume_id, "volume_id", 64),
            name=v.text(body.get("name", body.get("display_name")), "name"),
            description=v.text(body.get("description", body.get("display_description")),
                               "description", v.MAX_DESCRIPTION),
            metadata=v.metadata(body.get("metadata")),
            force=v.boolean(force, "force") if force is not None else False)
        return ApiResponse(202, {"snapshot": snapshot_view(req, snapshot, extended=False)})

    def update(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "snapshot")
        v.only_fields(body, _UPDATE_FIELDS, "snapshot")
        if not body:
            raise v.bad("'snapshot' must name at least one of: name, description")
        fields = name_and_description(body)
        snapshot = self.edits.update_snapshot(req.ctx, req.params["snapshot_id"], fields)
        return ApiResponse(200, {"snapshot": snapshot_view(req, snapshot, extended=False)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        self.ops.delete_snapshot(req.ctx, req.params["snapshot_id"])
        return ApiResponse(202)

    # -- metadata --------------------------------------------------------------------

    def read_metadata(self, req: ApiRequest, snapshot_id: str) -> dict[str, Any]:
        return dict(self.ops.get_snapshot(req.ctx, snapshot_id).metadata_ or {})

    def change_metadata(self, req: ApiRequest, snapshot_id: str,
                        change: edits.MetadataChange) -> dict[str, Any]:
        return self.edits.change_snapshot_metadata(req.ctx, snapshot_id, change)

    # -- actions ---------------------------------------------------------------------

    def reset_status(self, req: ApiRequest, snapshot_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:snapshot_admin_actions:reset_status")
        if not isinstance(args, dict):
            raise v.bad("'os-reset_status' must be an object with 'status'")
        v.only_fields(args, ("status",), "os-reset_status")
        status = args.get("status")
        if status not in RESETTABLE_STATUSES:
            raise v.bad(f"'status' must be one of {', '.join(RESETTABLE_STATUSES)}")
        self.db.snapshot_get(snapshot_id)
        self.edits.reset_snapshot_status(req.ctx, snapshot_id, status)
        return ApiResponse(202)

    def update_status(self, req: ApiRequest, snapshot_id: str, args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-update_snapshot_status' must be an object with 'status'")
        v.only_fields(args, ("status", "progress"), "os-update_snapshot_status")
        status = args.get("status")
        snapshot = self.ops.get_snapshot(req.ctx, snapshot_id)
        allowed = _REPORTED.get(snapshot.status, ())
        if status not in allowed:
            raise exception.SnapshotStatusConflict(
                snapshot_id=snapshot_id, status=snapshot.status,
                expected=f"a transition to {', '.join(allowed) or 'nothing'}")
        values: dict[str, Any] = {"status": status}
        if "progress" in args:
            values["progress"] = v.text(args["progress"], "progress", 255)
        if not self.db.snapshot_transition(snapshot_id, (snapshot.status,), values):
            raise exception.SnapshotStatusConflict(snapshot_id=snapshot_id,
                                                   status="changed meanwhile",
                                                   expected=snapshot.status)
        return ApiResponse(202)


    def force_delete(self, req: ApiRequest, snapshot_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:snapshot_admin_actions:force_delete")
        self.edits.force_delete_snapshot(req.ctx, snapshot_id)
        return ApiResponse(202)


def add_routes(router: Router, deps: V3Deps) -> None:
    c = SnapshotController(deps.conf, deps.db, deps.ops)
    metadata = MetadataResource("snapshot_id", c.read_metadata, c.change_metadata)
    deps.snapshot_actions.add("os-reset_status", c.reset_status)
    deps.snapshot_actions.add("os-force_delete", c.force_delete)
    deps.snapshot_actions.add("os-update_snapshot_status", c.update_status)
    for prefix in PREFIXES:
        snapshots = prefix + "/snapshots"
        one = snapshots + "/{snapshot_id}"
        router.add("GET", snapshots, lambda r: c.list(r, False))
        router.add("GET", snapshots + "/detail", lambda r: c.list(r, True))
        router.add("POST", snapshots, c.create)
        router.add("GET", one, c.show)
        router.add("PUT", one, c.update)
        router.add("DELETE", one, c.delete)
        router.add("POST", one + "/action", deps.snapshot_actions.dispatch)
        metadata.add_routes(router, one)
