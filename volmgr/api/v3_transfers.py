"""Block Storage v3: volume transfers between projects, under ``/os-volume-transfer``
and (from microversion 3.55) ``/volume-transfers``.

The owner offers an ``available`` volume (it waits in ``awaiting-transfer``) and gets an
auth key once; another project accepts with the transfer id and that key, and receives
the volume, its snapshots (unless offered with ``no_snapshots``, 3.55) and their quota
usage. Replies gain ``no_snapshots`` at 3.55 and ``source_project_id``,
``destination_project_id`` and ``accepted`` at 3.57; listings page at 3.59; an encrypted
volume (its type has an encryption record) is transferable from 3.70, with its snapshots.
"""

from __future__ import annotations

from typing import Any

from volmgr.api import validation as v
from volmgr.api.operations import scope
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import V3Deps, links, next_link, prefixed
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import Database, models

#: The collection name the reference uses in every transfer link.
COLLECTION = "os-volume-transfer"
_SORT_KEYS = {"created_at": "created_at", "updated_at": "updated_at", "id": "id",
              "name": "display_name", "display_name": "display_name",
              "volume_id": "volume_id"}


def summary_view(req: ApiRequest, transfer: models.Transfer) -> dict[str, Any]:
    return {"id": transfer.id, "volume_id": transfer.volume_id,
            "name": transfer.display_name,
            "links": links(req, COLLECTION, transfer.id)}


def detail_view(req: ApiRequest, transfer: models.Transfer) -> dict[str, Any]:
    view = summary_view(req, transfer)
    view["created_at"] = timestamp(transfer.created_at)
    if req.at_least("3.55"):
        view["no_snapshots"] = bool(transfer.no_snapshots)
    if req.at_least("3.57"):
        view["source_project_id"] = transfer.source_project_id
        view["destination_project_id"] = transfer.destination_project_id
        view["accepted"] = bool(transfer.accepted)
    return view


def _sort(req: ApiRequest) -> tuple[tuple[str, str], ...]:
    """``sort=key:dir,...`` or ``sort_key``/``sort_dir`` (3.59); oldest first otherwise."""
    pairs: list[tuple[str, str]] = []
    sort = req.query("sort")
    if sort:
        for item in sort.split(","):
            key, _, direction = item.strip().partition(":")
            pairs.append((key.strip(), (direction or "asc").strip().lower()))
    elif req.query("sort_key") or req.query("sort_dir"):
        keys = (req.query("sort_key") or "created_at").split(",")
        directions = (req.query("sort_dir") or "asc").split(",")
        for index, key in enumerate(keys):
            direction = directions[index] if index < len(directions) else directions[-1]
            pairs.append((key.strip(), direction.strip().lower()))
    if not pairs:
        return (("created_at", "asc"),)
    result = []
    for key, direction in pairs:
        if key not in _SORT_KEYS:
            raise v.bad(f"sort key {key[:40]!r} is not one of: {', '.join(_SORT_KEYS)}")
        if direction not in ("asc", "desc"):
            raise v.bad(f"sort direction {direction[:10]!r} must be asc or desc")
        result.append((_SORT_KEYS[key], direction))
    return tuple(result)


class TransferController:
    def __init__(self, db: Database, max_limit: int) -> None:
        self.db = db
        self.max_limit = max_limit

    def create(self, req: ApiRequest, *, snapshots_option: bool) -> ApiResponse:
        body = v.member(req.body, "transfer")
        allowed = ["volume_id", "name"]
        if snapshots_option and req.at_least("3.55"):
            allowed.append("no_snapshots")
        v.only_fields(body, allowed, "transfer")
        volume_id = v.uuid_like(body.get("volume_id"), "volume_id")
        name = v.text(body.get("name"), "name")
        no_snapshots = body.get("no_snapshots")
        transfer, auth_key = self.db.transfer_create(
            volume_id, project_id=scope(req.ctx),
            display_name=name.strip() if name is not None else None,
            no_snapshots=(v.boolean(no_snapshots, "no_snapshots")
                          if no_snapshots is not None else False),
            allow_encrypted=snapshots_option and req.at_least("3.70"))
        view = detail_view(req, transfer)
        view["auth_key"] = auth_key
        return ApiResponse(202, {"transfer": view})

    def list(self, req: ApiRequest, *, detail: bool) -> ApiResponse:
        all_tenants = req.query("all_tenants") in ("1", "true", "True")
        project = None if (all_tenants and req.ctx.is_admin) else req.ctx.project_id
        limit_text = req.query("limit")
        limit = (v.integer(limit_text, "limit", minimum=0, maximum=self.max_limit)
                 if limit_text is not None else self.max_limit)
        offset_text = req.query("offset")
        offset = v.integer(offset_text, "offset", minimum=0) if offset_text else 0
        filters: dict[str, Any] = {}
        if req.query("name"):
            filters["display_name"] = req.query("name")
        if req.query("volume_id"):
            filters["volume_id"] = req.query("volume_id")
        paging = req.at_least("3.59")
        marker = req.query("marker") if paging else None
        transfers = self.db.transfer_list(
            project, filters=filters, limit=limit, offset=offset, marker=marker or None,
            sort=_sort(req) if paging else (("created_at", "asc"),))
        view = detail_view if detail else summary_view
        body: dict[str, Any] = {"transfers": [view(req, t) for t in transfers]}
        if transfers and len(transfers) == limit:
            body["transfers_links"] = next_link(req, transfers[-1].id)
        return ApiResponse(200, body)

    def show(self, req: ApiRequest) -> ApiResponse:
        transfer = self.db.transfer_get(req.params["transfer_id"], scope(req.ctx))
        return ApiResponse(200, {"transfer": detail_view(req, transfer)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        self.db.transfer_delete(req.params["transfer_id"], scope(req.ctx))
        return ApiResponse(202)

    def accept(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "accept")
        v.only_fields(body, ("auth_key",), "accept")
        auth_key = body.get("auth_key")
        if isinstance(auth_key, bool) or not isinstance(auth_key, str | int):
            raise v.bad("'auth_key' is required and must be a string")
        transfer = self.db.transfer_accept(req.params["transfer_id"], str(auth_key),
                                           project_id=req.ctx.project_id,
                                           user_id=req.ctx.user_id)
        return ApiResponse(202, {"transfer": summary_view(req, transfer)})


def add_routes(router: Router, deps: V3Deps) -> None:
    c = TransferController(deps.db, deps.conf.api.osapi_max_limit)
    def create_legacy(req: ApiRequest) -> ApiResponse:
        return c.create(req, snapshots_option=False)

    def create(req: ApiRequest) -> ApiResponse:
        return c.create(req, snapshots_option=True)

    for collection, since in (("/os-volume-transfer", None), ("/volume-transfers", "3.55")):
        for path in prefixed(collection):
            router.add("POST", path, create if since else create_legacy, min_version=since)
            router.add("GET", path, lambda r: c.list(r, detail=False), min_version=since)
            router.add("GET", path + "/detail", lambda r: c.list(r, detail=True),
                       min_version=since)
            router.add("GET", path + "/{transfer_id}", c.show, min_version=since)
            router.add("DELETE", path + "/{transfer_id}", c.delete, min_version=since)
            router.add("POST", path + "/{transfer_id}/accept", c.accept,
                       min_version=since)
