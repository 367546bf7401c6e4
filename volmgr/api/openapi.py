"""The OpenAPI 3.0 document of both faces, served at ``/openapi.json``.

Built from code so the limits it states (``[api] max_volume_size``, ``osapi_max_limit``)
are the ones this process enforces. The ``/v3/...`` paths without a project id behave
like their ``/v3/{project_id}/...`` twins and are described once.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

import volmgr

_STR = {"type": "string", "maxLength": 255}
_NULLABLE_STR = {"type": "string", "maxLength": 255, "nullable": True}
_METADATA = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 255},
             "maxProperties": 64}
_UUID = {"type": "string", "format": "uuid"}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _responses(*codes: int) -> dict[str, Any]:
    answers: dict[str, Any] = {
        str(code): {"description": "success", "content": {"application/json": {
            "schema": {"type": "object"}}}} for code in codes if code != 202}
    if 202 in codes:
        answers["202"] = {"description": "accepted; the work completes asynchronously"}
    for code, meaning in ((400, "badRequest"), (401, "unauthorized"),
                          (404, "itemNotFound"), (409, "conflictingRequest"),
                          (413, "overLimit or requestEntityTooLarge")):
        answers[str(code)] = {"description": meaning, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Fault"}}}}
    return answers


def _op(summary: str, params: list[dict[str, Any]], codes: tuple[int, ...],
        body: str | None = None, tag: str = "v3") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "parameters": params,
                                 "responses": _responses(*codes)}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    return operation


def _schemas(max_size: int) -> dict[str, Any]:
    size = {"type": "integer", "minimum": 1, "maximum": max_size}
    return {
        "Fault": {"type": "object", "additionalProperties": _obj(
            {"code": {"type": "integer"}, "message": {"type": "string"}})},
        "SeedVolumeCreate": _obj({"volume": _obj({
            "size": size, "display_name": _NULLABLE_STR, "display_description":
            _NULLABLE_STR, "metadata": _METADATA, "volume_type": _NULLABLE_STR,
            "availability_zone": _NULLABLE_STR, "snapshot_id": _UUID}, ("size",))},
            ("volume",)),
        "SeedAttach": _obj({"volumeAttachment": _obj({
            "volumeId": _UUID, "device": {"type": "string", "pattern": "^/dev/[a-z]{1,8}$"},
            "connector": _obj({"initiator": {"type": "string",
                                             "pattern": "^iqn\\.[a-z0-9.:-]{1,60}$"},
                               "host": _STR, "ip": _STR})}, ("volumeId",))},
            ("volumeAttachment",)),
        "VolumeCreate": _obj({"volume": _obj({
            "size": size, "name": _NULLABLE_STR, "description": _NULLABLE_STR,
            "metadata": _METADATA, "volume_type": _NULLABLE_STR,
            "availability_zone": _NULLABLE_STR, "snapshot_id": {**_UUID, "nullable": True},
            "source_volid": {"type": "string", "nullable": True, "enum": [None]},
            "imageRef": {"type": "string", "nullable": True, "enum": [None]},
            "consistencygroup_id": {"type": "string", "nullable": True, "enum": [None]},
            "backup_id": {"type": "string", "nullable": True, "enum": [None]}},
            ("size",))}, ("volume",)),
        "VolumeAction": _obj({"os-extend": _obj({"new_size": size}, ("new_size",))},
                             ("os-extend",)),
        "SnapshotCreate": _obj({"snapshot": _obj({
            "volume_id": _UUID, "name": _NULLABLE_STR, "description": _NULLABLE_STR,
            "force": {"type": "boolean"}, "metadata": _METADATA}, ("volume_id",))},
            ("snapshot",)),
    }


def _seed_paths(max_limit: int) -> dict[str, Any]:
    prefix = "/v1.1/{project_id}"
    project = [_path_param("project_id")]
    volume = [*project, _path_param("volume_id")]
    server = [*project, _path_param("server_id")]
    paging = [_query("limit", {"type": "integer", "minimum": 0, "maximum": max_limit}),
              _query("offset", {"type": "integer", "minimum": 0})]
    seed = "seed (Compute 1.1 os-volumes)"
    return {
        f"{prefix}/extensions": {"get": _op("List extensions", project, (200,), tag=seed)},
        f"{prefix}/extensions/{{alias}}": {"get": _op(
            "Show an extension", [*project, _path_param("alias")], (200,), tag=seed)},
        f"{prefix}/os-volumes": {
            "get": _op("List volumes", project + paging, (200,), tag=seed),
            "post": _op("Create a volume", project, (200,), "SeedVolumeCreate", tag=seed)},
        f"{prefix}/os-volumes/detail": {"get": _op("List volumes in detail",
                                                   project + paging, (200,), tag=seed)},
        f"{prefix}/os-volumes/{{volume_id}}": {
            "get": _op("Show a volume", volume, (200,), tag=seed),
            "delete": _op("Delete a volume", volume, (202,), tag=seed)},
        f"{prefix}/servers/{{server_id}}/os-volume_attachments": {
            "get": _op("List a server's attachments", server, (200,), tag=seed),
            "post": _op("Attach a volume", server, (202,), "SeedAttach", tag=seed)},
        f"{prefix}/servers/{{server_id}}/os-volume_attachments/{{volume_id}}": {
            "get": _op("Show an attachment", [*server, _path_param("volume_id")], (200,),
                       tag=seed),
            "delete": _op("Detach a volume", [*server, _path_param("volume_id")], (202,),
                          tag=seed)},
    }


def _v3_paths(max_limit: int) -> dict[str, Any]:
    prefix = "/v3/{project_id}"
    project = [_path_param("project_id")]
    volume = [*project, _path_param("volume_id")]
    snapshot = [*project, _path_param("snapshot_id")]
    listing = [_query("limit", {"type": "integer", "minimum": 1, "maximum": max_limit}),
               _query("marker", {"type": "string"}), _query("name", {"type": "string"}),
               _query("status", {"type": "string"})]
    return {
        f"{prefix}/volumes": {"get": _op("List volumes", project + listing, (200,)),
                              "post": _op("Create a volume", project, (202,),
                                          "VolumeCreate")},
        f"{prefix}/volumes/detail": {"get": _op("List volumes in detail",
                                                project + listing, (200,))},
        f"{prefix}/volumes/{{volume_id}}": {"get": _op("Show a volume", volume, (200,)),
                                            "delete": _op("Delete a volume", volume,
                                                          (202,))},
        f"{prefix}/volumes/{{volume_id}}/action": {"post": _op(
            "Volume action (os-extend)", volume, (202,), "VolumeAction")},
        f"{prefix}/snapshots": {"get": _op("List snapshots", project + listing, (200,)),
                                "post": _op("Create a snapshot", project, (202,),
                                            "SnapshotCreate")},
        f"{prefix}/snapshots/detail": {"get": _op("List snapshots in detail",
                                                  project + listing, (200,))},
        f"{prefix}/snapshots/{{snapshot_id}}": {
            "get": _op("Show a snapshot", snapshot, (200,)),
            "delete": _op("Delete a snapshot", snapshot, (202,))},
    }


def document(conf: cfg.ConfigOpts) -> dict[str, Any]:
    max_size, max_limit = conf.api.max_volume_size, conf.api.osapi_max_limit
    public = {"security": [], "tags": ["meta"]}
    paths: dict[str, Any] = {
        "/": {"get": {**public, "summary": "API versions", "responses": {
            "300": {"description": "the versions this server speaks"}}}},
        "/v3": {"get": {**public, "summary": "The v3 version document", "responses": {
            "200": {"description": "version 3.0"}}}},
        "/healthcheck": {"get": {**public, "summary": "Liveness for load balancers",
                                 "responses": {"200": {"description": "healthy"},
                                               "503": {"description": "database down"}}}},
    }
    paths.update(_seed_paths(max_limit))
    paths.update(_v3_paths(max_limit))
    return {
        "openapi": "3.0.3",
        "info": {"title": "volmgr API", "version": volmgr.__version__,
                 "description": "The Compute API 1.1 os-volumes extension (JSON and XML) "
                 "and a Block Storage v3 subset over the same volumes."},
        "paths": paths,
        "components": {
            "schemas": _schemas(max_size),
            "securitySchemes": {"token": {
                "type": "apiKey", "in": "header", "name": "X-Auth-Token",
                "description": "noauth: '<user>:<project>'; keystone: a Keystone token"}},
        },
        "security": [{"token": []}],
    }
