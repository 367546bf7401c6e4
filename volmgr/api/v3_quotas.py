"""Block Storage v3: quota sets (``/os-quota-sets/{project}``, its ``defaults``),
quota classes (``/os-quota-class-sets/{class}``) and absolute limits (``/limits``).

A project's limit for a resource is its own, else the ``default`` quota class's, else
the ``[quota]`` option (``volmgr.db.quota``). Members read their own project's quotas;
changing them, and quota classes, is for admins.
"""

from __future__ import annotations

import re
from typing import Any

from volmgr import exception
from volmgr.api import validation as v
from volmgr.api.v3_base import V3Deps, prefixed, require_admin
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.context import RequestContext
from volmgr.db import Database

#: Keys a quota set body may carry besides resources (ignored, as the reference does).
NON_QUOTA_KEYS = ("id", "tenant_id")
MAX_LIMIT = 2**31 - 1
_LIMIT_TEXT = re.compile(r"^-?[0-9]{1,10}$")
_CLASS_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,300}$")
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")

#: ``/limits`` absolute entries: (limit name, usage name, resource).
ABSOLUTE_LIMITS = (
    ("maxTotalVolumes", "totalVolumesUsed", "volumes"),
    ("maxTotalSnapshots", "totalSnapshotsUsed", "snapshots"),
    ("maxTotalVolumeGigabytes", "totalGigabytesUsed", "gigabytes"),
    ("maxTotalBackups", "totalBackupsUsed", "backups"),
    ("maxTotalBackupGigabytes", "totalBackupGigabytesUsed", "backup_gigabytes"),
)


def limit_value(value: Any, key: str) -> int:
    """A hard limit: an integer (or a string of digits) from -1 (unlimited) up."""
    if isinstance(value, str) and _LIMIT_TEXT.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise v.bad(f"quota limit for {str(key)[:64]!r} must be an integer")
    if not -1 <= value <= MAX_LIMIT:
        raise v.bad(f"quota limit for {key!r} must be between -1 and {MAX_LIMIT}, "
                    f"got {value}")
    return value


def query_flag(req: ApiRequest, name: str) -> bool:
    text = req.query(name)
    if text is None:
        return False
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise v.bad(f"'{name}' must be a boolean, got {text[:40]!r}")


def authorize_project(ctx: RequestContext, project_id: str, action: str) -> None:
    """Members see their own project's quotas only (403 otherwise, as the reference)."""
    if not ctx.is_admin and project_id != ctx.project_id:
        raise exception.Forbidden(f"Policy doesn't allow {action} to be performed.")


class QuotaController:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- quota sets ----------------------------------------------------------------

    def show(self, req: ApiRequest) -> ApiResponse:
        project_id = req.params["quota_project_id"]
        authorize_project(req.ctx, project_id, "volume_extension:quotas:show")
        if query_flag(req, "usage"):
            quota_set: dict[str, Any] = dict(self.db.quota_show(project_id))
        else:
            quota_set = dict(self.db.quota_limits_for(project_id))
        quota_set["id"] = project_id
        return ApiResponse(200, {"quota_set": quota_set})

    def defaults(self, req: ApiRequest) -> ApiResponse:
        project_id = req.params["quota_project_id"]
        authorize_project(req.ctx, project_id, "volume_extension:quotas:show")
        quota_set: dict[str, Any] = dict(self.db.quota_class_show("default"))
        quota_set["id"] = project_id
        return ApiResponse(200, {"quota_set": quota_set})

    def update(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:quotas:update")
        project_id = req.params["quota_project_id"]
        if len(project_id) > 255:
            raise v.bad("the project id is longer than 255 characters")
        body = v.member(req.body, "quota_set")
        if not body:
            raise v.bad("'quota_set' must name at least one resource")
        values = {key: limit_value(value, key) for key, value in body.items()
                  if key not in NON_QUOTA_KEYS}
        limits = self.db.quota_update(project_id, values)
        return ApiResponse(200, {"quota_set": limits})

    def delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:quotas:delete")
        self.db.quota_destroy(req.params["quota_project_id"])
        return ApiResponse(200)

    # -- quota classes -------------------------------------------------------------

    def show_class(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:quota_classes")
        class_name = req.params["quota_class"]
        quota_set: dict[str, Any] = dict(self.db.quota_class_show(class_name))
        quota_set["id"] = class_name
        return ApiResponse(200, {"quota_class_set": quota_set})

    def update_class(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:quota_classes:update")
        class_name = req.params["quota_class"]
        if len(class_name) > 255:
            raise v.bad("the quota class name is longer than 255 characters")
        body = v.member(req.body, "quota_class_set")
        bad_keys = sorted(str(key)[:64] for key in body if not _CLASS_KEY.match(key))
        if bad_keys:
            raise v.bad(f"Bad key(s) in quota class set: {', '.join(bad_keys)}")
        values = {key: limit_value(value, key) for key, value in body.items()}
        limits = self.db.quota_class_update(class_name, values)
        return ApiResponse(200, {"quota_class_set": limits})

    # -- limits --------------------------------------------------------------------

    def limits(self, req: ApiRequest) -> ApiResponse:
        project_id = req.ctx.project_id
        if req.ctx.is_admin and req.at_least("3.39"):
            project_id = req.query("project_id") or req.query("tenant_id") or project_id
        quotas = self.db.quota_show(project_id)
        absolute: dict[str, int] = {}
        for limit_name, used_name, resource in ABSOLUTE_LIMITS:
            absolute[limit_name] = quotas[resource]["limit"]
            absolute[used_name] = quotas[resource]["in_use"]
        return ApiResponse(200, {"limits": {"rate": [], "absolute": absolute}})


def add_routes(router: Router, deps: V3Deps) -> None:
    c = QuotaController(deps.db)
    for path in prefixed("/os-quota-sets/{quota_project_id}"):
        router.add("GET", path, c.show)
        router.add("PUT", path, c.update)
        router.add("DELETE", path, c.delete)
        router.add("GET", path + "/defaults", c.defaults)
    for path in prefixed("/os-quota-class-sets/{quota_class}"):
        router.add("GET", path, c.show_class)
        router.add("PUT", path, c.update_class)
    for path in prefixed("/limits"):
        router.add("GET", path, c.limits)
