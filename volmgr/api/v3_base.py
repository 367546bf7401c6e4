"""What every Block Storage v3 module shares: its dependencies, the action tables,
admin checks, links and paging.

Each v3 module (``v3`` volumes and snapshots, ``v3_types``, ``v3_quotas``,
``v3_transfers``, ``v3_info``, ``v3_messages``, ``v3_attachments``) exposes
``add_routes(router, deps)`` and registers its routes under both ``/v3`` and
``/v3/{project_id}``.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.api import validation as v
from volmgr.api.actions import ActionTable
from volmgr.api.operations import ApiOperations, CastingAPI
from volmgr.api.wsgi import ApiRequest
from volmgr.context import RequestContext
from volmgr.db import Database

#: Both prefixes a v3 resource is served under; the project-less one first, so that in
#: ``/v3/volumes/...`` the word is a collection, not a project id.
PREFIXES = ("/v3", "/v3/{project_id}")


@dataclasses.dataclass
class V3Deps:
    """The process-wide objects v3 controllers use (built once, never per request)."""

    conf: cfg.ConfigOpts
    db: Database
    ops: ApiOperations
    rpcapi: CastingAPI
    volume_actions: ActionTable = dataclasses.field(
        default_factory=lambda: ActionTable("volume", "volume_id"))
    snapshot_actions: ActionTable = dataclasses.field(
        default_factory=lambda: ActionTable("snapshot", "snapshot_id"))


def prefixed(path: str) -> Iterator[str]:
    """``path`` (such as ``/types/{type_id}``) under every v3 prefix."""
    for prefix in PREFIXES:
        yield prefix + path


def require_admin(ctx: RequestContext, action: str) -> None:
    """Admin-only calls answer 403 to anyone else, with the policy's name."""
    if not ctx.is_admin:
        raise exception.Forbidden(f"Policy doesn't allow {action} to be performed.")


def project_of(req: ApiRequest) -> str:
    """The project named in the URL, else the caller's."""
    return req.params.get("project_id") or req.ctx.project_id


def links(req: ApiRequest, collection: str, item_id: str,
          project_id: str | None = None) -> list[dict[str, str]]:
    return link_pair(req.http.host_url, project_id or project_of(req), collection,
                     item_id)


def link_pair(host_url: str, project: str, collection: str,
              item_id: str) -> list[dict[str, str]]:
    """An item's ``self`` and ``bookmark`` links, from the request's ``host_url``
    (which a view of many items reads once)."""
    return [{"rel": "self", "href": f"{host_url}/v3/{project}/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{host_url}/{project}/{collection}/{item_id}"}]


def next_link(req: ApiRequest, last_id: str) -> list[dict[str, str]]:
    """The ``*_links`` entry of a full page: the same query with ``marker`` = last id."""
    query: dict[str, Any] = {k: val for k, val in req.http.GET.items() if k != "marker"}
    query["marker"] = last_id
    url = f"{req.http.host_url}{req.http.path}?{urllib.parse.urlencode(query)}"
    return [{"rel": "next", "href": url}]


def name_and_description(body: dict[str, Any]) -> dict[str, Any]:
    """The ``display_name``/``display_description`` columns a create or update body sets,
    from ``name``/``description`` or their older ``display_*`` spellings."""
    fields: dict[str, Any] = {}
    for name in ("name", "display_name"):
        if name in body:
            fields["display_name"] = v.text(body[name], name)
    for name in ("description", "display_description"):
        if name in body:
            fields["display_description"] = v.text(body[name], name, v.MAX_DESCRIPTION)
    return fields
