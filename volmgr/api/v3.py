"""Block Storage v3 volumes (``/v3/{project_id}/volumes``): list, summary, show,
create (empty, from a snapshot, as a clone), update, delete (cascade, force), metadata
and image metadata, and the volume actions this module owns: ``os-extend``,
``os-set_bootable``, ``os-update_readonly_flag``, the image-metadata actions and the
admin's ``os-reset_status``, ``os-force_delete`` and ``os-migrate_volume_completion``.

Microversions are negotiated in ``microversion``; fields appear where the reference adds
them (``v3_views``). Controllers validate and translate; state changes are
``ApiOperations``' and ``VolumeEdits``' job.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from volmgr import exception, states
from volmgr.api import edits, v3_listing, v3_metadata
from volmgr.api import microversion as mv
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
from volmgr.api.v3_info import display_host
from volmgr.api.v3_metadata import MetadataResource
from volmgr.api.v3_views import VolumeShape, volume_summary_view, volume_view
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import Database, models

_CREATE_FIELDS = ("size", "name", "description", "display_name", "display_description",
                  "volume_type", "availability_zone", "metadata", "snapshot_id",
                  "source_volid", "imageRef", "image_id", "consistencygroup_id",
                  "group_id", "backup_id", "multiattach", "source_replica",
                  "scheduler_hints")
_UNSUPPORTED_CREATE = ("imageRef", "image_id", "consistencygroup_id", "group_id",
                       "backup_id", "source_replica")
_UPDATE_FIELDS = ("name", "description", "display_name", "display_description",
                  "metadata")
#: Statuses an admin may reset a volume to (the reference's list).
RESETTABLE_STATUSES = (*states.VOLUME_STATUSES, "reserved", "maintenance",
                       "awaiting-transfer", "backing-up", "restoring-backup",
                       "downloading", "uploading", "retyping", "error_restoring",
                       "error_managing")
_ATTACH_STATUSES = ("attached", "detached")


def version_document(host_url: str) -> dict[str, Any]:
    return {
        "id": "v3.0", "status": "CURRENT", "version": mv.text(mv.MAX_VERSION),
        "min_version": mv.text(mv.MIN_VERSION), "updated": "2024-01-01T00:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html",
                   "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{host_url}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }


def _flag(args: Any, action: str, field: str) -> bool:
    if not isinstance(args, dict) or field not in args:
        raise v.bad(f"'{action}' must be an object with '{field}'")
    return v.boolean(args[field], f"{action}.{field}")


class VolumeController:
    """Handlers of ``/v3/{project_id}/volumes``."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, ops: ApiOperations) -> None:
        self.conf = conf
        self.db = db
        self.ops = ops
        self.edits = VolumeEdits(ops)
        self.max_volume_size: int = conf.api.max_volume_size
        self.max_limit: int = conf.api.osapi_max_limit

    def host_view(self, host: str | None) -> str | None:
        return display_host(host, self.conf)

    # -- reads ---------------------------------------------------------------------

    def _listing(self, req: ApiRequest) -> v3_listing.Listing:
        return v3_listing.read(req, max_limit=self.max_limit,
                               columns=v3_listing.VOLUME_COLUMNS,
                               member_filters=v3_listing.VOLUME_MEMBER_FILTERS)

    def _project(self, req: ApiRequest, listing: v3_listing.Listing) -> str | None:
        if listing.all_projects:
            return listing.filters.pop("project_id", None)
        return req.params.get("project_id") or req.ctx.project_id

    def list_volumes(self, req: ApiRequest, detail: bool) -> ApiResponse:
        listing = self._listing(req)
        project = self._project(req, listing)
        page: dict[str, Any] = {
            "filters": listing.filters, "limit": listing.limit, "marker": listing.marker,
            "offset": listing.offset, "sort": listing.sort,
            "row_filter": listing.row_filter()}
        attached: dict[str, list[Any]] = {}
        encrypted: set[str] = set()
        try:
            if detail:
                volumes, attached, encrypted = self.ops.list_volumes_attached(
                    req.ctx, project, **page)
            else:
                volumes = self.ops.list_volumes(req.ctx, project, attachments=False,
                                                **page)
        except exception.VolumeNotFound:
            raise exception.NotFound(f"Marker {listing.marker} could not be found.") \
                from None
        if detail:
            shape = VolumeShape(req, self.host_view)
            views = [shape.view(vol, encrypted=vol.volume_type_id in encrypted,
                                attached=attached.get(vol.id, ())) for vol in volumes]
        else:
            views = [volume_summary_view(req, vol) for vol in volumes]
        body: dict[str, Any] = {"volumes": views}
        if volumes and len(volumes) == listing.limit:
            body["volumes_links"] = next_link(req, volumes[-1].id)
        if listing.with_count:
            body["count"] = len(self.ops.list_volumes(
                req.ctx, project, filters=listing.filters,
                row_filter=listing.row_filter(), attachments=False))
        return ApiResponse(200, body)

    def summary(self, req: ApiRequest) -> ApiResponse:
        all_tenants = str(req.http.GET.get("all_tenants", "")).lower() in ("1", "true")
        project = None if (all_tenants and req.ctx.is_admin) else (
            req.params.get("project_id") or req.ctx.project_id)
        volumes = self.ops.list_volumes(req.ctx, project, attachments=False)
        summary: dict[str, Any] = {"total_size": sum(vol.size for vol in volumes),
                                   "total_count": len(volumes)}
        if req.at_least("3.36"):
            merged: dict[str, list[str]] = {}
            for volume in volumes:
                for key, value in (volume.metadata_ or {}).items():
                    merged.setdefault(key, [])
                    if value not in merged[key]:
                        merged[key].append(value)
            summary["metadata"] = merged
        return ApiResponse(200, {"volume-summary": summary})

    def show(self, req: ApiRequest) -> ApiResponse:
        volume = self.ops.get_volume(req.ctx, req.params["volume_id"])
        return ApiResponse(200, {"volume": self._view(req, volume)})

    def _view(self, req: ApiRequest, volume: models.Volume, *,
              extended: bool = True) -> dict[str, Any]:
        encrypted = bool(self.db.volume_types_encrypted([volume.volume_type_id]))
        return volume_view(req, volume, self.host_view, extended=extended,
                           encrypted=encrypted)

    # -- create, update, delete ------------------------------------------------------

    def create(self, req: ApiRequest) -> ApiResponse:
        if not isinstance(req.body, dict):
            raise v.bad("the body must be a JSON object with a 'volume' member")
        outer = {k: val for k, val in req.body.items()
                 if k not in ("OS-SCH-HNT:scheduler_hints", "scheduler_hints")}
        body = v.member(outer, "volume")
        v.only_fields(body, _CREATE_FIELDS, "volume")
        v.unsupported_if_set(body, _UNSUPPORTED_CREATE)
        if body.get("multiattach") not in (None, False):
            raise v.bad("the 'multiattach' parameter has been removed; create the volume "
                        "with a volume type whose extra spec is "
                        "multiattach=\"<is> True\"")
        snapshot_id = body.get("snapshot_id")
        source_volid = body.get("source_volid")
        size_value = body.get("size")
        size = None
        if size_value is not None or not (snapshot_id or source_volid):
            size = v.size(size_value, self.max_volume_size)
        volume, encrypted = self.ops.create_typed_volume(
            req.ctx, size=size,
            type_name_or_id=v.text(body.get("volume_type"), "volume_type"),
            name=v.text(body.get("name", body.get("display_name")), "name"),
            description=v.text(body.get("description", body.get("display_description")),
                               "description", v.MAX_DESCRIPTION),
            metadata=v.metadata(body.get("metadata")),
            availability_zone=v.text(body.get("availability_zone"), "availability_zone"),
            snapshot_id=_reference(snapshot_id, "snapshot_id"),
            source_volid=_reference(source_volid, "source_volid"))
        return ApiResponse(202, {"volume": volume_view(req, volume, self.host_view,
                                                       extended=False, encrypted=encrypted)})

    def update(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "volume")
        v.only_fields(body, _UPDATE_FIELDS, "volume")
        if not body:
            raise v.bad("'volume' must name at least one of: name, description, metadata")
        fields = name_and_description(body)
        metadata = v.metadata(body["metadata"]) if "metadata" in body else None
        volume = self.edits.update_volume(req.ctx, req.params["volume_id"], fields,
                                          metadata)
        return ApiResponse(200, {"volume": self._view(req, volume, extended=False)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        volume_id = req.params["volume_id"]
        cascade = v.boolean(req.http.GET.get("cascade", "false"), "cascade")
        force = v.boolean(req.http.GET.get("force", "false"), "force")
        if force and req.at_least("3.23"):
            require_admin(req.ctx, "volume:force_delete")
            self.edits.force_delete(req.ctx, volume_id)
        elif cascade:
            self.edits.cascade_delete(req.ctx, volume_id)
        else:
            self.ops.delete_volume(req.ctx, volume_id)
        return ApiResponse(202)

    # -- metadata --------------------------------------------------------------------

    def read_metadata(self, req: ApiRequest, volume_id: str) -> dict[str, Any]:
        return dict(self.ops.get_volume(req.ctx, volume_id).metadata_ or {})

    def change_metadata(self, req: ApiRequest, volume_id: str,
                        change: edits.MetadataChange) -> dict[str, Any]:
        return self.edits.change_metadata(req.ctx, volume_id, change)

    # -- actions ---------------------------------------------------------------------

    def extend(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-extend' must be an object")
        v.only_fields(args, ("new_size",), "os-extend")
        new_size = v.size(args.get("new_size"), self.max_volume_size, "new_size")
        self.ops.extend_volume(req.ctx, volume_id, new_size,
                               allow_in_use=req.at_least("3.42"))
        return ApiResponse(202)

    def set_bootable(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        bootable = _flag(args, "os-set_bootable", "bootable")
        self.edits.update_volume(req.ctx, volume_id, {"bootable": bootable}, None)
        return ApiResponse(200)

    def update_readonly(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        readonly = _flag(args, "os-update_readonly_flag", "readonly")
        self.edits.set_readonly(req.ctx, volume_id, readonly)
        return ApiResponse(202)

    def set_image_metadata(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        metadata = v3_metadata.body(args if isinstance(args, dict) else None)
        new = self.edits.change_metadata(req.ctx, volume_id, edits.merge(metadata),
                                         column="image_metadata")
        return ApiResponse(200, {"metadata": new})

    def unset_image_metadata(self, req: ApiRequest, volume_id: str,
                             args: Any) -> ApiResponse:
        if not isinstance(args, dict) or not isinstance(args.get("key"), str):
            raise v.bad("'os-unset_image_metadata' must be an object with 'key'")
        self.edits.change_metadata(
            req.ctx, volume_id, edits.delete_keys([args["key"]], missing=lambda k:
                                                  exception.NotFound(
                                                      f"Image metadata item {k} was not "
                                                      f"found.")),
            column="image_metadata")
        return ApiResponse(200)

    def show_image_metadata(self, req: ApiRequest, volume_id: str,
                            args: Any) -> ApiResponse:
        volume = self.ops.get_volume(req.ctx, volume_id)
        return ApiResponse(200, {"metadata": dict(volume.image_metadata or {})})

    def reset_status(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_admin_actions:reset_status")
        if not isinstance(args, dict) or not args:
            raise v.bad("'os-reset_status' must be an object with 'status', "
                        "'attach_status' or 'migration_status'")
        v.only_fields(args, ("status", "attach_status", "migration_status"),
                      "os-reset_status")
        status = args.get("status")
        if status is not None and status not in RESETTABLE_STATUSES:
            raise v.bad(f"'status' must be one of {', '.join(RESETTABLE_STATUSES)}")
        attach_status = args.get("attach_status")
        if attach_status is not None and attach_status not in _ATTACH_STATUSES:
            raise v.bad(f"'attach_status' must be one of {', '.join(_ATTACH_STATUSES)}")
        migration_status = v.text(args.get("migration_status"), "migration_status")
        self.db.volume_get(volume_id)
        self.edits.reset_status(req.ctx, volume_id, status=status,
                                attach_status=attach_status,
                                migration_status=migration_status)
        return ApiResponse(202)

    def force_delete(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_admin_actions:force_delete")
        self.edits.force_delete(req.ctx, volume_id)
        return ApiResponse(202)

    def unsupported(self, name: str) -> Any:
        def refuse(req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
            self.ops.get_volume(req.ctx, volume_id)
            raise v.bad(f"{name} is not supported by this service: it has one backend "
                        f"per host and no image service")
        return refuse


def _reference(value: Any, field: str) -> str | None:
    """An id naming another resource; one that names nothing is a 404 later."""
    if value is None:
        return None
    return v.required_text(value, field, 64)


def add_routes(router: Router, deps: V3Deps) -> None:
    c = VolumeController(deps.conf, deps.db, deps.ops)
    metadata = MetadataResource("volume_id", c.read_metadata, c.change_metadata)
    actions = deps.volume_actions
    actions.add("os-extend", c.extend)
    actions.add("os-set_bootable", c.set_bootable)
    actions.add("os-update_readonly_flag", c.update_readonly)
    actions.add("os-set_image_metadata", c.set_image_metadata)
    actions.add("os-unset_image_metadata", c.unset_image_metadata)
    actions.add("os-show_image_metadata", c.show_image_metadata)
    actions.add("os-reset_status", c.reset_status)
    actions.add("os-force_delete", c.force_delete)
    for name in ("os-migrate_volume", "os-migrate_volume_completion",
                 "os-volume_upload_image", "os-reimage", "revert"):
        actions.add(name, c.unsupported(name))
    for prefix in PREFIXES:
        volumes = prefix + "/volumes"
        one = volumes + "/{volume_id}"
        router.add("GET", volumes, lambda r: c.list_volumes(r, False))
        router.add("GET", volumes + "/detail", lambda r: c.list_volumes(r, True))
        router.add("GET", volumes + "/summary", c.summary, min_version="3.12")
        router.add("POST", volumes, c.create)
        router.add("GET", one, c.show)
        router.add("PUT", one, c.update)
        router.add("DELETE", one, c.delete)
        router.add("POST", one + "/action", actions.dispatch)
        metadata.add_routes(router, one)
