"""Block Storage v3: volume types (``/types``), their extra specs, access lists
(``os-volume-type-access``) and encryption records, and QoS specs (``/qos-specs``).

As the reference service: everyone may list and show the types visible to their
project (public ones and the private ones shared with it) and read their user-visible
extra specs; creating, changing and deleting types, extra specs, access lists and
encryption records, and everything about QoS specs, is for administrators (403 for
others). ``GET /types/default`` shows the type a volume gets when it names none: the
project's own default (``/default-types``, 3.62, admins set it) or the configured one.
Encryption records are data only: the compute host encrypts.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

from volmgr import exception, rpc
from volmgr.api import scheduler, v3_listing
from volmgr.api import validation as v
from volmgr.api.actions import ActionHandler
from volmgr.api.operations import scope
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import V3Deps, links, next_link, prefixed, require_admin
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import Database, models
from volmgr.db import types as db_types

#: The response key the reference service adds for the type's visibility.
ACCESS_KEY = "os-volume-type-access:is_public"
#: Extra-spec keys as the reference validates them (creating through the type accepts
#: spaces and slashes; the extra-specs resource does not).
_TYPE_SPEC_KEY = re.compile(r"^[a-zA-Z0-9-_:. /]{1,255}$")
_SPEC_KEY = re.compile(r"^[a-zA-Z0-9-_:.]{1,255}$")
MAX_FIELD = 255
#: The reference's strict boolean strings.
_TRUE = {"true", "1", "on", "yes", "y", "t"}
_FALSE = {"false", "0", "off", "no", "n", "f"}
TYPE_COLUMNS = {"id": "id", "name": "name", "description": "description",
                "created_at": "created_at", "updated_at": "updated_at",
                "is_public": "is_public", "qos_specs_id": "qos_specs_id"}
#: Columns an admin may filter types on (timestamps only sort).
TYPE_FILTERS = frozenset({"id", "name", "description", "qos_specs_id"})
QOS_COLUMNS = {"id": "id", "name": "name", "consumer": "consumer",
               "created_at": "created_at", "updated_at": "updated_at"}
ENCRYPTION_FIELDS = ("provider", "cipher", "key_size", "control_location")
CONTROL_LOCATIONS = ("front-end", "back-end")
#: From this microversion a member's unknown type filters are refused (400), as the
#: reference's generic resource filters do; before it they are ignored.
FILTER_VERSION = "3.52"
#: ``/default-types``: per-project default volume types.
DEFAULT_TYPES_VERSION = "3.62"


# -- Input ----------------------------------------------------------------------------


def strict_boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
    raise v.bad(f"'{field}' must be a boolean (true or false), got {str(value)[:40]!r}")


def _bounded(value: Any, field: str, *, nullable: bool = True,
             max_length: int = MAX_FIELD) -> str | None:
    if value is None:
        if not nullable:
            raise v.bad(f"'{field}' must be a string")
        return None
    return v.text(value, field, max_length)


def _name(value: Any, field: str = "name") -> str:
    name = _bounded(value, field, nullable=False)
    if name is None or not name.strip():
        raise v.bad(f"'{field}' must be a non-empty string of at most {MAX_FIELD} "
                    f"characters")
    return name


def _specs(value: Any, field: str, key_pattern: re.Pattern[str]) -> dict[str, str]:
    """A flat object of string values whose keys match ``key_pattern``."""
    if not isinstance(value, dict):
        raise v.bad(f"'{field}' must be an object of string values")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key_pattern.match(key):
            raise v.bad(f"'{field}' key {str(key)[:60]!r} is invalid: keys are 1 to 255 "
                        f"letters, digits, '-', '_', ':' or '.'")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise v.bad(f"'{field}.{key}' must be a string")
        text = v.text(str(item), f"{field}.{key}", MAX_FIELD)
        result[key] = text if text is not None else ""
    return result


def _check_cacheable(current: dict[str, str], new: dict[str, str]) -> None:
    merged = {**current, **new}
    if db_types.is_true_spec(merged.get("multiattach")) and \
            db_types.is_true_spec(merged.get("cacheable")):
        raise v.bad("the extra specs 'cacheable' and 'multiattach' cannot both be true")


# -- Views ----------------------------------------------------------------------------


def type_view(req: ApiRequest, volume_type: models.VolumeType) -> dict[str, Any]:
    """A type as show and list give it: extra specs the caller may read, the QoS specs
    id for administrators, and the access flag."""
    view: dict[str, Any] = {
        "id": volume_type.id, "name": volume_type.name,
        "is_public": bool(volume_type.is_public),
        "description": volume_type.description,
        "extra_specs": db_types.visible_extra_specs(volume_type, req.ctx.is_admin),
    }
    if req.ctx.is_admin:
        view["qos_specs_id"] = volume_type.qos_specs_id
    view[ACCESS_KEY] = bool(volume_type.is_public)
    return view


def changed_type_view(volume_type: models.VolumeType) -> dict[str, Any]:
    """What create and update answer (the reference's older, trimmed view)."""
    return {"id": volume_type.id, "name": volume_type.name,
            "is_public": bool(volume_type.is_public),
            "description": volume_type.description,
            "extra_specs": dict(volume_type.extra_specs or {})}


def encryption_view(encryption: models.Encryption) -> dict[str, Any]:
    return {"volume_type_id": encryption.volume_type_id,
            "encryption_id": encryption.encryption_id,
            "provider": encryption.provider, "cipher": encryption.cipher,
            "key_size": encryption.key_size,
            "control_location": encryption.control_location,
            "deleted": bool(encryption.deleted),
            "created_at": timestamp(encryption.created_at),
            "updated_at": timestamp(encryption.updated_at),
            "deleted_at": timestamp(encryption.deleted_at)}


def qos_view(qos: models.QualityOfServiceSpecs) -> dict[str, Any]:
    return {"id": qos.id, "name": qos.name, "consumer": qos.consumer,
            "specs": dict(qos.specs or {})}


# -- Types ----------------------------------------------------------------------------


class TypesController:
    """``/types``, ``/types/{id}/extra_specs``, ``…/os-volume-type-access``,
    ``…/action`` and ``…/encryption``."""

    def __init__(self, db: Database, max_limit: int) -> None:
        self.db = db
        self.max_limit = max_limit

    def _visible(self, req: ApiRequest, type_id: str) -> models.VolumeType:
        return self.db.volume_type_show(type_id, project_id=req.ctx.project_id,
                                        is_admin=req.ctx.is_admin)

    # Types

    def index(self, req: ApiRequest) -> ApiResponse:
        is_public: bool | None = True
        if req.ctx.is_admin:
            is_public = _is_public_filter(req.query("is_public"))
        extra_specs = _extra_specs_filter(req.query("extra_specs"))
        if extra_specs and not req.ctx.is_admin and any(
                key not in db_types.USER_VISIBLE_EXTRA_SPECS for key in extra_specs):
            # A member may not learn about specs it cannot read: nothing matches.
            return ApiResponse(200, {"volume_types": []})
        ignore = {"is_public", "extra_specs"}
        if not req.ctx.is_admin and not req.at_least(FILTER_VERSION):
            # Below 3.52 the reference drops the filters a member may not use.
            ignore.update(key for key in req.http.GET if key not in v3_listing.CONTROL)
        listing = v3_listing.read(
            req, max_limit=self.max_limit, columns=TYPE_COLUMNS,
            member_filters=frozenset({"is_public", "extra_specs"}),
            ignore=frozenset(ignore))
        filters = {column: value for column, value in listing.filters.items()
                   if column in TYPE_FILTERS}
        types = self.db.volume_type_list(
            project_id=req.ctx.project_id, is_admin=req.ctx.is_admin,
            is_public=is_public, filters=filters, extra_specs=extra_specs,
            limit=listing.limit, marker=listing.marker, offset=listing.offset,
            sort=listing.sort)
        body: dict[str, Any] = {"volume_types": [type_view(req, t) for t in types]}
        if types and len(types) >= listing.limit:
            body["volume_type_links"] = next_link(req, types[-1].id)
        return ApiResponse(200, body)

    def show(self, req: ApiRequest) -> ApiResponse:
        type_id = req.params["type_id"]
        if type_id == "default":
            volume_type = self.db.volume_type_default(req.ctx.project_id)
        else:
            volume_type = self._visible(req, type_id)
        return ApiResponse(200, {"volume_type": type_view(req, volume_type)})

    def create(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:type_create")
        body = v.member(req.body, "volume_type")
        v.only_fields(body, ("name", "description", "extra_specs", ACCESS_KEY),
                      "volume_type")
        name = _name(body.get("name"))
        description = _bounded(body.get("description"), "description")
        specs_value = body.get("extra_specs")
        specs = {} if specs_value is None else _specs(specs_value, "extra_specs",
                                                      _TYPE_SPEC_KEY)
        _check_cacheable({}, specs)
        is_public = (strict_boolean(body[ACCESS_KEY], ACCESS_KEY)
                     if body.get(ACCESS_KEY) is not None else True)
        volume_type = self.db.volume_type_create(name, description=description,
                                                 is_public=is_public, extra_specs=specs)
        view = changed_type_view(volume_type)
        view[ACCESS_KEY] = bool(volume_type.is_public)
        return ApiResponse(200, {"volume_type": view})

    def update(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:type_update")
        body = v.member(req.body, "volume_type")
        v.only_fields(body, ("name", "description", "is_public"), "volume_type")
        name = body.get("name")
        if name is not None:
            name = _name(name)
        description = _bounded(body.get("description"), "description")
        is_public = (strict_boolean(body["is_public"], "is_public")
                     if body.get("is_public") is not None else None)
        if name is None and description is None and is_public is None:
            raise v.bad("specify the volume type's name, description, is_public or a "
                        "combination of them")
        volume_type = self.db.volume_type_update(req.params["type_id"], name=name,
                                                 description=description,
                                                 is_public=is_public)
        return ApiResponse(200, {"volume_type": changed_type_view(volume_type)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:type_delete")
        self.db.volume_type_delete(req.params["type_id"])
        return ApiResponse(202)

    # Extra specs

    def specs_index(self, req: ApiRequest) -> ApiResponse:
        volume_type = self._visible(req, req.params["type_id"])
        return ApiResponse(200, {"extra_specs": db_types.visible_extra_specs(
            volume_type, req.ctx.is_admin)})

    def specs_show(self, req: ApiRequest) -> ApiResponse:
        type_id, key = req.params["type_id"], req.params["key"]
        specs = db_types.visible_extra_specs(self._visible(req, type_id),
                                             req.ctx.is_admin)
        if key not in specs:
            raise exception.VolumeTypeExtraSpecsNotFound(volume_type_id=type_id,
                                                         extra_specs_key=key)
        return ApiResponse(200, {key: specs[key]})

    def specs_create(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:types_extra_specs:create")
        body = v.member(req.body, "extra_specs")
        specs = _specs(body, "extra_specs", _SPEC_KEY)
        type_id = req.params["type_id"]
        _check_cacheable(self.db.volume_type_get(type_id).extra_specs or {}, specs)
        self.db.volume_type_extra_specs_set(type_id, specs)
        return ApiResponse(200, {"extra_specs": specs})

    def specs_update(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:types_extra_specs:update")
        key = req.params["key"]
        if not isinstance(req.body, dict) or len(req.body) != 1:
            raise v.bad("the body must be one extra spec, such as {\"<key>\": \"<value>\"}")
        if key not in req.body:
            raise v.bad(f"request body and URI mismatch: the body must set {key[:60]!r}")
        specs = _specs(req.body, "extra_specs", _SPEC_KEY)
        type_id = req.params["type_id"]
        _check_cacheable(self.db.volume_type_get(type_id).extra_specs or {}, specs)
        self.db.volume_type_extra_specs_set(type_id, specs)
        return ApiResponse(200, specs)

    def specs_delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:types_extra_specs:delete")
        self.db.volume_type_extra_spec_delete(req.params["type_id"], req.params["key"])
        return ApiResponse(202)

    # Access lists

    def access_index(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_access:get_all_for_type")
        type_id = req.params["type_id"]
        projects = self.db.volume_type_access_list(type_id)
        return ApiResponse(200, {"volume_type_access": [
            {"volume_type_id": type_id, "project_id": project} for project in projects]})

    def action(self, req: ApiRequest) -> ApiResponse:
        if not isinstance(req.body, dict) or len(req.body) != 1:
            raise v.bad("a volume type action body is one object such as "
                        "{\"addProjectAccess\": {\"project\": \"<project id>\"}}")
        ((name, args),) = req.body.items()
        handlers: dict[str, Callable[[str, str], None]] = {
            "addProjectAccess": self.db.volume_type_access_add,
            "removeProjectAccess": self.db.volume_type_access_remove,
        }
        if name not in handlers:
            raise v.bad(f"volume type action {str(name)[:40]!r} is not supported; "
                        f"supported: addProjectAccess, removeProjectAccess")
        require_admin(req.ctx, f"volume_extension:volume_type_access:{name}")
        if not isinstance(args, dict):
            raise v.bad(f"'{name}' must be an object such as {{\"project\": \"<id>\"}}")
        v.only_fields(args, ("project",), name)
        project = _name(args.get("project"), f"{name}.project")
        handlers[name](req.params["type_id"], project)
        return ApiResponse(202)

    # Encryption records

    def encryption_index(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_encryption:get")
        encryption = self.db.encryption_get(req.params["type_id"])
        return ApiResponse(200, {} if encryption is None else encryption_view(encryption))

    def encryption_show(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_encryption:get")
        type_id, key = req.params["type_id"], req.params["key"]
        encryption = self.db.encryption_get(type_id)
        view = {} if encryption is None else encryption_view(encryption)
        if key not in view:
            raise exception.VolumeTypeEncryptionNotFound(
                f"Volume type {type_id} has no encryption field {key[:60]!r}.",
                volume_type_id=type_id)
        return ApiResponse(200, {key: view[key]})

    def encryption_create(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_encryption:create")
        values = _encryption_values(req.body, required=True)
        encryption = self.db.encryption_create(req.params["type_id"], values)
        view = {key: encryption_view(encryption)[key] for key in (
            "volume_type_id", "encryption_id", *ENCRYPTION_FIELDS)}
        return ApiResponse(200, {"encryption": view})

    def encryption_update(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_encryption:update")
        values = _encryption_values(req.body, required=False)
        self.db.encryption_update(req.params["type_id"], values)
        return ApiResponse(200, {"encryption": values})

    def encryption_delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:volume_type_encryption:delete")
        self.db.encryption_delete(req.params["type_id"])
        return ApiResponse(202)


def _is_public_filter(text: str | None) -> bool | None:
    """The admin's ``is_public``: absent → public (and shared) types, ``none`` → all."""
    if text is None:
        return True
    if text.strip().lower() == "none":
        return None
    return strict_boolean(text, "is_public")


def _extra_specs_filter(text: str | None) -> dict[str, str]:
    """``extra_specs={"k": "v"}`` as JSON or a Python-literal dict (what clients send)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
    if not isinstance(value, dict):
        raise v.bad("the 'extra_specs' filter must be an object such as "
                    "{\"key\": \"value\"}")
    return {str(k): str(item) for k, item in value.items()}


def _encryption_values(body: Any, *, required: bool) -> dict[str, Any]:
    encryption = v.member(body, "encryption")
    v.only_fields(encryption, ENCRYPTION_FIELDS, "encryption")
    values: dict[str, Any] = {}
    if required:
        for field in ("provider", "control_location"):
            if encryption.get(field) is None:
                raise v.bad(f"'encryption.{field}' is required")
    if "provider" in encryption:
        values["provider"] = _bounded(encryption["provider"], "encryption.provider",
                                      nullable=False)
    if "cipher" in encryption:
        values["cipher"] = _bounded(encryption["cipher"], "encryption.cipher")
    if "control_location" in encryption:
        location = encryption["control_location"]
        if location not in CONTROL_LOCATIONS:
            raise v.bad("'encryption.control_location' must be front-end or back-end")
        values["control_location"] = location
    if "key_size" in encryption:
        key_size = encryption["key_size"]
        values["key_size"] = None if key_size is None else v.integer(
            key_size, "encryption.key_size", minimum=0, maximum=2**31 - 1)
    return values


# -- QoS specs ------------------------------------------------------------------------


class QosController:
    """``/qos-specs``: every call is for administrators."""

    def __init__(self, db: Database, max_limit: int) -> None:
        self.db = db
        self.max_limit = max_limit

    def _detail(self, req: ApiRequest, qos: models.QualityOfServiceSpecs) -> dict[str, Any]:
        return {"qos_specs": qos_view(qos), "links": links(req, "qos-specs", qos.id)}

    def index(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:get_all")
        listing = v3_listing.read(req, max_limit=self.max_limit, columns=QOS_COLUMNS,
                                  member_filters=frozenset())
        filters = {k: val for k, val in listing.filters.items()
                   if k in ("id", "name", "consumer")}
        specs = self.db.qos_specs_list(filters=filters, limit=listing.limit,
                                       marker=listing.marker, offset=listing.offset,
                                       sort=listing.sort)
        body: dict[str, Any] = {"qos_specs": [qos_view(q) for q in specs]}
        if specs and len(specs) >= listing.limit:
            body["qos_specs_links"] = next_link(req, specs[-1].id)
        return ApiResponse(200, body)

    def show(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:get")
        return ApiResponse(200, self._detail(req, self.db.qos_specs_get(req.params["qos_id"])))

    def create(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:create")
        body = dict(v.member(req.body, "qos_specs"))
        name = _name(body.pop("name", None)).strip()
        consumer = _consumer(body.pop("consumer", None)) or "back-end"
        specs = _specs(body, "qos_specs", _TYPE_SPEC_KEY)
        qos = self.db.qos_specs_create(name, consumer=consumer, specs=specs)
        return ApiResponse(200, self._detail(req, qos))

    def update(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:update")
        body = v.member(req.body, "qos_specs")
        specs = _specs(body, "qos_specs", _TYPE_SPEC_KEY)
        consumer = _consumer(specs.pop("consumer", None))
        self.db.qos_specs_set(req.params["qos_id"], consumer=consumer, specs=specs)
        answer = dict(specs)
        if consumer is not None:
            answer["consumer"] = consumer
        return ApiResponse(200, {"qos_specs": answer})

    def delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:delete")
        force_text = req.query("force")
        force = strict_boolean(force_text, "force") if force_text is not None else False
        self.db.qos_specs_delete(req.params["qos_id"], force=force)
        return ApiResponse(202)

    def delete_keys(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:delete")
        if not isinstance(req.body, dict) or set(req.body) != {"keys"}:
            raise v.bad("the body must be {\"keys\": [\"<key>\", ...]}")
        keys = req.body["keys"]
        if not isinstance(keys, list) or not all(
                isinstance(k, str) and 0 < len(k) <= MAX_FIELD for k in keys):
            raise v.bad("'keys' must be a list of key names (1 to 255 characters)")
        if len(set(keys)) != len(keys):
            raise v.bad("'keys' must not repeat a key")
        self.db.qos_specs_delete_keys(req.params["qos_id"], keys)
        return ApiResponse(202)

    def associations(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:get_all")
        types = self.db.qos_specs_associations(req.params["qos_id"])
        return ApiResponse(200, {"qos_associations": [
            {"association_type": "volume_type", "name": t.name, "id": t.id}
            for t in types]})

    def _type_param(self, req: ApiRequest) -> str:
        type_id = req.query("vol_type_id")
        if not type_id:
            raise v.bad("the query parameter 'vol_type_id' (a volume type id) is required")
        return type_id

    def associate(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:update")
        self.db.qos_specs_associate(req.params["qos_id"], self._type_param(req))
        return ApiResponse(202)

    def disassociate(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:update")
        self.db.qos_specs_disassociate(req.params["qos_id"], self._type_param(req))
        return ApiResponse(202)

    def disassociate_all(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:qos_specs_manage:update")
        self.db.qos_specs_disassociate_all(req.params["qos_id"])
        return ApiResponse(202)


def _consumer(value: Any) -> str | None:
    if value is None:
        return None
    if value not in db_types.QOS_CONSUMERS:
        raise v.bad(f"'consumer' must be one of: {', '.join(db_types.QOS_CONSUMERS)}")
    return str(value)


# -- Project default types (3.62) ------------------------------------------------------


def default_type_view(row: models.DefaultVolumeType) -> dict[str, Any]:
    return {"project_id": row.project_id, "volume_type_id": row.volume_type_id}


class DefaultTypesController:
    """``/default-types`` (3.62): a project's own default volume type, set by admins;
    a volume that names no type gets it before ``[DEFAULT] default_volume_type``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _project(req: ApiRequest) -> str:
        return _name(req.params["target_project"], "project_id")

    def set(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:default_set_or_update")
        body = v.member(req.body, "default_type")
        v.only_fields(body, ("volume_type",), "default_type")
        name_or_id = _name(body.get("volume_type"), "default_type.volume_type")
        project = self._project(req)
        try:
            volume_type = self.db.volume_type_resolve(name_or_id, project_id=project,
                                                      is_admin=True)
        except exception.VolumeTypeNotFound as error:
            raise v.bad(str(error)) from None
        row = self.db.default_type_set(project, volume_type.id)
        return ApiResponse(200, {"default_type": default_type_view(row)})

    def show(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:default_get")
        row = self.db.default_type_get(self._project(req))
        return ApiResponse(200, {"default_type": default_type_view(row)})

    def index(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:default_get_all")
        return ApiResponse(200, {"default_types": [
            default_type_view(row) for row in self.db.default_type_list()]})

    def delete(self, req: ApiRequest) -> ApiResponse:
        require_admin(req.ctx, "volume_extension:default_unset")
        self.db.default_type_unset(self._project(req))
        return ApiResponse(204)


# -- Retype ---------------------------------------------------------------------------


def retype_action(deps: V3Deps) -> ActionHandler:
    """The volume action ``os-retype`` (``{"new_type": name or id, "migration_policy":
    "never" | "on-demand"}``): the type changes in place, 202. volmgr never migrates, so
    a type whose extra specs the volume's host does not satisfy is refused (400)
    whatever the policy, as is any change ``Database.volume_retype`` refuses."""
    def retype(req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-retype' must be an object such as {\"new_type\": \"<type>\"}")
        v.only_fields(args, ("new_type", "migration_policy"), "os-retype")
        new_type = v.required_text(args.get("new_type"), "os-retype.new_type")
        policy = args.get("migration_policy")
        if policy is not None and policy not in ("never", "on-demand"):
            raise v.bad("'os-retype.migration_policy' must be never or on-demand")
        volume = deps.db.volume_get(volume_id, scope(req.ctx))
        target = deps.db.volume_type_resolve(new_type, project_id=req.ctx.project_id,
                                             is_admin=req.ctx.is_admin)
        if volume.host and target.extra_specs:
            capabilities = _host_capabilities(deps, volume.host)
            if not scheduler.satisfies(capabilities, target.extra_specs):
                raise exception.InvalidVolume(
                    reason=f"volume type {target.name} asks for capabilities the "
                    f"volume's host lacks, and this service does not migrate volumes")
        deps.db.volume_retype(volume_id, target.id, project_id=scope(req.ctx))
        return ApiResponse(202)
    return retype


def _host_capabilities(deps: V3Deps, host: str) -> dict[str, Any]:
    try:
        service = deps.db.service_get(host, rpc.VOLUME_SERVICE)
    except exception.NotFound:
        return scheduler.pool_capabilities({}, deps.conf)
    return scheduler.pool_capabilities(service.capabilities or {}, deps.conf)


def add_routes(router: Router, deps: V3Deps) -> None:
    max_limit = deps.conf.api.osapi_max_limit
    t = TypesController(deps.db, max_limit)
    q = QosController(deps.db, max_limit)
    table: list[tuple[str, str, Callable[[ApiRequest], ApiResponse]]] = [
        ("GET", "/types", t.index),
        ("POST", "/types", t.create),
        ("GET", "/types/{type_id}", t.show),
        ("PUT", "/types/{type_id}", t.update),
        ("DELETE", "/types/{type_id}", t.delete),
        ("POST", "/types/{type_id}/action", t.action),
        ("GET", "/types/{type_id}/extra_specs", t.specs_index),
        ("POST", "/types/{type_id}/extra_specs", t.specs_create),
        ("GET", "/types/{type_id}/extra_specs/{key}", t.specs_show),
        ("PUT", "/types/{type_id}/extra_specs/{key}", t.specs_update),
        ("DELETE", "/types/{type_id}/extra_specs/{key}", t.specs_delete),
        ("GET", "/types/{type_id}/os-volume-type-access", t.access_index),
        ("GET", "/types/{type_id}/encryption", t.encryption_index),
        ("POST", "/types/{type_id}/encryption", t.encryption_create),
        ("GET", "/types/{type_id}/encryption/{key}", t.encryption_show),
        ("PUT", "/types/{type_id}/encryption/{key}", t.encryption_update),
        ("DELETE", "/types/{type_id}/encryption/{key}", t.encryption_delete),
        ("GET", "/qos-specs", q.index),
        ("POST", "/qos-specs", q.create),
        ("GET", "/qos-specs/{qos_id}", q.show),
        ("PUT", "/qos-specs/{qos_id}", q.update),
        ("DELETE", "/qos-specs/{qos_id}", q.delete),
        ("PUT", "/qos-specs/{qos_id}/delete_keys", q.delete_keys),
        ("GET", "/qos-specs/{qos_id}/associations", q.associations),
        ("GET", "/qos-specs/{qos_id}/associate", q.associate),
        ("GET", "/qos-specs/{qos_id}/disassociate", q.disassociate),
        ("GET", "/qos-specs/{qos_id}/disassociate_all", q.disassociate_all),
    ]
    for method, path, handler in table:
        for full in prefixed(path):
            router.add(method, full, handler)
    deps.volume_actions.add("os-retype", retype_action(deps))
    d = DefaultTypesController(deps.db)
    for method, path, handler in (
            ("GET", "/default-types", d.index),
            ("GET", "/default-types/{target_project}", d.show),
            ("PUT", "/default-types/{target_project}", d.set),
            ("DELETE", "/default-types/{target_project}", d.delete)):
        for full in prefixed(path):
            router.add(method, full, handler, min_version=DEFAULT_TYPES_VERSION)
