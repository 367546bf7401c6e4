"""Shared pieces of the API unit tests: a recording fake of the manager RPC client, an
in-process app over the SQLite ``db`` fixture, and a tiny request helper."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import webob
from oslo_config import cfg

from tests.db_reads import newest_attachment
from volmgr import exception, rpc, states
from volmgr.api.app import build_app
from volmgr.context import RequestContext
from volmgr.db import Database

PROJECT = "p1"
TOKEN = "u1:p1"
OTHER_TOKEN = "u2:p2"


@dataclasses.dataclass
class Cast:
    method: str
    host: str
    args: dict[str, Any]
    context: RequestContext


class RecordingRPC:
    """Stands in for ``VolumeAPI``: records every cast; ``fail`` makes casts raise the
    way a broker outage does after the bounded retry."""

    def __init__(self) -> None:
        self.casts: list[Cast] = []
        self.fail = False
        #: Methods refused as a capped client refuses them ([upgrade_levels] volume).
        self.capped: set[str] = set()

    def require_version(self, method: str, version: str | None = None) -> None:
        if method in self.capped:
            raise exception.RPCVersionCapped(method=method, needed=version or "1.0",
                                             cap="1.0")

    def _record(self, method: str, context: RequestContext, host: str,
                **args: Any) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.casts.append(Cast(method, host, args, context))

    def create_volume(self, context: RequestContext, host: str, volume_id: str,
                      snapshot_id: str | None = None,
                      source_volid: str | None = None) -> None:
        self._record("create_volume", context, host, volume_id=volume_id,
                     snapshot_id=snapshot_id, source_volid=source_volid)

    def delete_volume(self, context: RequestContext, host: str, volume_id: str) -> None:
        self._record("delete_volume", context, host, volume_id=volume_id)

    def attach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None:
        self._record("attach_volume", context, host, volume_id=volume_id,
                     attachment_id=attachment_id)

    def detach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None:
        self._record("detach_volume", context, host, volume_id=volume_id,
                     attachment_id=attachment_id)

    def extend_volume(self, context: RequestContext, host: str, volume_id: str,
                      new_size: int) -> None:
        self._record("extend_volume", context, host, volume_id=volume_id, new_size=new_size)

    def create_snapshot(self, context: RequestContext, host: str, snapshot_id: str) -> None:
        self._record("create_snapshot", context, host, snapshot_id=snapshot_id)

    def delete_snapshot(self, context: RequestContext, host: str, snapshot_id: str) -> None:
        self._record("delete_snapshot", context, host, snapshot_id=snapshot_id)

    def methods(self) -> list[str]:
        return [cast.method for cast in self.casts]


def register_host(db: Database, host: str = "node1", free: float = 100.0,
                  total: float | None = None, thin: bool = False,
                  provisioned: float = 0.0) -> None:
    db.service_heartbeat(host, rpc.TOPIC, rpc.TOPIC, {
        "free_capacity_gb": free, "total_capacity_gb": total if total is not None else free,
        "provisioned_capacity_gb": provisioned, "thin_provisioning_support": thin})


def make_app(conf: cfg.ConfigOpts, db: Database, rpcapi: RecordingRPC) -> Any:
    return build_app(conf, db=db, volume_rpcapi=rpcapi)


def call(app: Any, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
         headers: dict[str, str] | None = None, raw: bytes | None = None,
         content_type: str = "application/json") -> webob.Response:
    request = webob.Request.blank(path, method=method)
    if token is not None:
        request.headers["X-Auth-Token"] = token
    if raw is not None:
        request.body = raw
        request.content_type = content_type
    elif body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = content_type
    for key, value in (headers or {}).items():
        request.headers[key] = value
    return request.get_response(app)


def finish(db: Database, volume_id: str) -> None:
    """What the manager does when a create succeeds."""
    assert db.volume_transition(volume_id, (states.CREATING,), {"status": states.AVAILABLE})


def attach_done(db: Database, volume_id: str, info: dict[str, Any] | None = None) -> None:
    """What the manager does when an attach succeeds."""
    attachment = newest_attachment(db, volume_id)
    assert attachment is not None
    assert db.attach_complete(volume_id, attachment.id, info or {
        "driver_volume_type": "iscsi",
        "data": {"target_iqn": f"iqn.2010-10.org.openstack:volume-{volume_id}",
                 "target_portal": "127.0.0.1:3260", "target_lun": 1,
                 "auth_method": "CHAP", "auth_username": "user",
                 "auth_password": "secret", "volume_id": volume_id}})
