"""Block Storage v3 attachments (``/v3/{project_id}/attachments``, 3.27 to 3.54) and the
volume connection actions (``os-reserve``, ``os-unreserve``,
``os-initialize_connection``, ``os-attach``, ``os-begin_detaching``,
``os-roll_detaching``, ``os-terminate_connection``, ``os-detach``,
``os-force_detach``).

Both are doors to the one attachment model the Compute 1.1 ``os-volume_attachments``
face also uses (``attach_flow``); the states and the one RPC call are in docs/rpc.md,
"Attachments". ``connection_info`` is shown to the volume's project and to admins only
(nobody else can see the attachment at all).
"""

from __future__ import annotations

from typing import Any

from volmgr import iscsi_names, states
from volmgr.api import validation as v
from volmgr.api.attach_flow import AttachFlow
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import PREFIXES, V3Deps, require_admin
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import models

_CREATE_FIELDS = ("volume_uuid", "instance_uuid", "connector", "mode")
_LIST_FILTERS = ("volume_id", "instance_id", "status", "attach_status")
_LIST_PAGING = ("all_tenants", "limit", "offset", "marker", "sort", "sort_key", "sort_dir",
                "project_id")
_MODES = ("rw", "ro")
#: Largest connector accepted (os-brick's are a few hundred bytes).
_MAX_CONNECTOR_KEYS = 64


def connector_body(value: Any, field: str = "connector") -> dict[str, Any]:
    """A connector as os-brick describes its host: any keys, but an ``initiator`` must
    be an iSCSI name and ``host``/``ip`` must be text."""
    if not isinstance(value, dict) or not value:
        raise v.bad(f"'{field}' must be a non-empty object")
    if len(value) > _MAX_CONNECTOR_KEYS:
        raise v.bad(f"'{field}' has too many keys")
    for key in ("host", "ip", "initiator"):
        if key in value and value[key] is not None:
            v.text(value[key], f"{field}.{key}")
    initiator = value.get("initiator")
    if initiator not in (None, "") and not iscsi_names.is_iscsi_name(initiator):
        raise v.bad(f"'{field}.initiator' must be {iscsi_names.DESCRIPTION}")
    return dict(value)


def _time(value: Any) -> str:
    return timestamp(value) or ""


def attachment_summary(attachment: models.VolumeAttachment) -> dict[str, Any]:
    return {"id": attachment.id, "status": attachment.attach_status,
            "instance": attachment.server_id or None, "volume_id": attachment.volume_id}


def attachment_detail(attachment: models.VolumeAttachment) -> dict[str, Any]:
    view = attachment_summary(attachment)
    view.update(attached_at=_time(attachment.attached_at),
                detached_at=_time(attachment.detached_at),
                attach_mode=attachment.attach_mode or "rw",
                connection_info=dict(attachment.connection_info or {}))
    return view


class AttachmentController:
    """Handlers of ``/v3/{project_id}/attachments`` and the connection actions."""

    def __init__(self, deps: V3Deps) -> None:
        self.flow = AttachFlow(deps.conf, deps.db, deps.rpcapi)
        self.max_limit: int = deps.conf.api.osapi_max_limit

    # -- the attachments API ------------------------------------------------------------

    def list_attachments(self, req: ApiRequest, detail: bool) -> ApiResponse:
        query = req.http.GET
        unknown = sorted(set(query) - set(_LIST_FILTERS) - set(_LIST_PAGING))
        if unknown and req.at_least("3.31"):
            raise v.bad(f"invalid filter(s): {', '.join(unknown)}")
        all_projects = v.boolean(query.get("all_tenants", "false"), "all_tenants") \
            if "all_tenants" in query else False
        status = query.get("status") or query.get("attach_status")
        if status is not None and status not in states.ATTACH_STATUSES:
            return ApiResponse(200, {"attachments": []})
        limit = None
        if "limit" in query:
            limit = min(v.integer(query["limit"], "limit", minimum=0), self.max_limit)
        offset = v.integer(query.get("offset", "0"), "offset", minimum=0)
        sort = str(query.get("sort") or query.get("sort_dir") or "desc")
        newest_first = not sort.endswith("asc")
        found = self.flow.list_attachments(
            req.ctx, all_projects=all_projects, volume_id=query.get("volume_id"),
            server_id=query.get("instance_id"), status=status, limit=limit,
            offset=offset, marker=query.get("marker"), newest_first=newest_first)
        view = attachment_detail if detail else attachment_summary
        return ApiResponse(200, {"attachments": [view(a) for a in found]})

    def show(self, req: ApiRequest) -> ApiResponse:
        attachment = self.flow.get(req.ctx, req.params["attachment_id"])
        return ApiResponse(200, {"attachment": attachment_detail(attachment)})

    def create(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "attachment")
        allowed = _CREATE_FIELDS if req.at_least("3.54") else _CREATE_FIELDS[:3]
        v.only_fields(body, allowed, "attachment")
        volume_id = v.uuid_like(body.get("volume_uuid"), "volume_uuid")
        server_id = v.text(body.get("instance_uuid"), "instance_uuid")
        connector = None
        if body.get("connector") is not None:
            connector = connector_body(body["connector"])
        mode = body.get("mode")
        if mode in ("null", None):
            mode = None
        elif mode not in _MODES:
            raise v.bad("'mode' must be 'rw' or 'ro'")
        attachment = self.flow.create(req.ctx, volume_id, server_id=server_id,
                                      connector=connector, mode=mode)
        return ApiResponse(200, {"attachment": attachment_detail(attachment)})

    def update(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "attachment")
        v.only_fields(body, ("connector",), "attachment")
        connector = connector_body(body.get("connector"))
        attachment = self.flow.update(req.ctx, req.params["attachment_id"], connector)
        return ApiResponse(200, {"attachment": attachment_detail(attachment)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        remaining = self.flow.delete(req.ctx, req.params["attachment_id"])
        return ApiResponse(200, {"attachments": [attachment_summary(a) for a in remaining]})

    def action(self, req: ApiRequest) -> ApiResponse:
        if not isinstance(req.body, dict) or set(req.body) != {"os-complete"}:
            raise v.bad("the only attachment action is {\"os-complete\": null}")
        self.flow.complete(req.ctx, req.params["attachment_id"])
        return ApiResponse(204)

    # -- the volume connection actions ---------------------------------------------------

    def reserve(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        self.flow.reserve(req.ctx, volume_id)
        return ApiResponse(202)

    def unreserve(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        self.flow.unreserve(req.ctx, volume_id)
        return ApiResponse(202)

    def initialize_connection(self, req: ApiRequest, volume_id: str,
                              args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-initialize_connection' must be an object with 'connector'")
        v.only_fields(args, ("connector",), "os-initialize_connection")
        info = self.flow.initialize_connection(req.ctx, volume_id,
                                               connector_body(args.get("connector")))
        return ApiResponse(200, {"connection_info": info})

    def attach(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-attach' must be an object")
        v.only_fields(args, ("instance_uuid", "host_name", "mountpoint", "mode"),
                      "os-attach")
        server_id = v.text(args.get("instance_uuid"), "instance_uuid")
        host_name = v.text(args.get("host_name"), "host_name")
        if (server_id is None) == (host_name is None):
            raise v.bad("'os-attach' needs exactly one of 'instance_uuid' and 'host_name'")
        mountpoint = v.required_text(args.get("mountpoint"), "mountpoint")
        mode = args.get("mode")
        if mode is not None and mode not in _MODES:
            raise v.bad("'mode' must be 'rw' or 'ro'")
        self.flow.attach(req.ctx, volume_id, server_id=server_id or host_name,
                         device=mountpoint, mode=mode)
        return ApiResponse(202)

    def begin_detaching(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        self.flow.begin_detaching(req.ctx, volume_id)
        return ApiResponse(202)

    def roll_detaching(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        self.flow.roll_detaching(req.ctx, volume_id)
        return ApiResponse(202)

    def terminate_connection(self, req: ApiRequest, volume_id: str,
                             args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-terminate_connection' must be an object with 'connector'")
        v.only_fields(args, ("connector", "force"), "os-terminate_connection")
        self.flow.terminate_connection(req.ctx, volume_id,
                                       connector_body(args.get("connector")))
        return ApiResponse(202)

    def detach(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        args = args if isinstance(args, dict) else {}
        v.only_fields(args, ("attachment_id",), "os-detach")
        attachment_id = v.text(args.get("attachment_id"), "attachment_id")
        self.flow.detach(req.ctx, volume_id, attachment_id)
        return ApiResponse(202)

    def force_detach(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_admin_actions:force_detach")
        args = args if isinstance(args, dict) else {}
        v.only_fields(args, ("attachment_id", "connector"), "os-force_detach")
        attachment_id = v.text(args.get("attachment_id"), "attachment_id")
        self.flow.detach(req.ctx, volume_id, attachment_id, force=True)
        return ApiResponse(202)


def add_routes(router: Router, deps: V3Deps) -> None:
    c = AttachmentController(deps)
    actions = deps.volume_actions
    actions.add("os-reserve", c.reserve)
    actions.add("os-unreserve", c.unreserve)
    actions.add("os-initialize_connection", c.initialize_connection)
    actions.add("os-attach", c.attach)
    actions.add("os-begin_detaching", c.begin_detaching)
    actions.add("os-roll_detaching", c.roll_detaching)
    actions.add("os-terminate_connection", c.terminate_connection)
    actions.add("os-detach", c.detach)
    actions.add("os-force_detach", c.force_detach)
    for prefix in PREFIXES:
        collection = prefix + "/attachments"
        one = collection + "/{attachment_id}"
        router.add("GET", collection, lambda r: c.list_attachments(r, False),
                   min_version="3.27")
        router.add("GET", collection + "/detail", lambda r: c.list_attachments(r, True),
                   min_version="3.27")
        router.add("POST", collection, c.create, min_version="3.27")
        router.add("GET", one, c.show, min_version="3.27")
        router.add("PUT", one, c.update, min_version="3.27")
        router.add("DELETE", one, c.delete, min_version="3.27")
        router.add("POST", one + "/action", c.action, min_version="3.44")

