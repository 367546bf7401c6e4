"""volmgr-api's process wiring: gunicorn (the process supervisor) settings from [api],
waitress workers, the app built per worker, and keystonemiddleware in front when
auth_strategy = keystone."""

from __future__ import annotations

import gc
from typing import Any

import webob
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import config
from volmgr.api.app import KeystoneGate, build_app
from volmgr.api.server import WaitressWorker, adjustments
from volmgr.cmd.api import APIServer
from volmgr.db import Database


def test_gunicorn_runs_the_configured_workers_and_builds_the_app_after_fork(
        conf: cfg.ConfigOpts) -> None:
    conf.set_override("workers", 3, group="api")
    conf.set_override("bind_port", 18999, group="api")
    server = APIServer(conf)
    assert server.cfg.workers == 3
    assert server.cfg.bind == ["0.0.0.0:18999"]
    assert server.cfg.preload_app is False
    # Every worker process serves HTTP with waitress (volmgr.api.server).
    assert server.cfg.worker_class is WaitressWorker


def test_threads_are_the_request_threads_of_each_waitress_worker(
        conf: cfg.ConfigOpts) -> None:
    conf.set_override("threads", 4, group="api")
    assert adjustments(conf).threads == 4


def test_keystone_strategy_puts_auth_token_in_front_but_not_of_public_paths(
        conf: cfg.ConfigOpts, db: Database) -> None:
    conf.set_override("auth_strategy", "keystone")
    app: Any = build_app(conf, db=db, volume_rpcapi=h.RecordingRPC())
    assert isinstance(app, KeystoneGate)
    assert webob.Request.blank("/v3/").get_response(app).status_int == 200
    assert webob.Request.blank("/healthcheck").get_response(app).status_int == 200


def test_keystone_headers_become_the_request_context(conf: cfg.ConfigOpts,
                                                     db: Database) -> None:
    conf.set_override("auth_strategy", "keystone")
    h.register_host(db)
    app: Any = build_app(conf, db=db, volume_rpcapi=h.RecordingRPC())
    # What auth_token hands on after validating a token.
    request = webob.Request.blank("/v3/kp/volumes", method="POST",
                                  json={"volume": {"size": 1}})
    request.headers.update({"X-Identity-Status": "Confirmed", "X-Project-Id": "kp",
                            "X-User-Id": "ku", "X-Roles": "member"})
    answer = request.get_response(app.app)
    assert answer.status_int == 202
    assert answer.json["volume"]["user_id"] == "ku"
    unconfirmed = webob.Request.blank("/v3/kp/volumes")
    unconfirmed.headers["X-Identity-Status"] = "Invalid"
    assert unconfirmed.get_response(app.app).status_int == 401


def test_each_worker_builds_its_app_with_database_and_transport_once(
        conf: cfg.ConfigOpts, db: Database, tmp_path: Any) -> None:
    config_file = tmp_path / "api.conf"
    config_file.write_text(f"[DEFAULT]\ntransport_url = fake://\n[database]\n"
                           f"connection = {conf.database.connection}\n")
    worker_conf = config.parse_args(["--config-file", str(config_file)])
    server = APIServer(worker_conf)
    app: Any = server.load()
    assert webob.Request.blank("/healthcheck").get_response(app).status_int == 200
    first = app.ops.rpcapi
    webob.Request.blank("/v3/p/volumes", headers={"X-Auth-Token": "u:p"}).get_response(app)
    assert app.ops.rpcapi is first
    assert first.cast_retry == conf.api.rpc_cast_retry


def test_a_worker_exempts_what_it_built_from_garbage_collection(
        conf: cfg.ConfigOpts, tmp_path: Any) -> None:
    config_file = tmp_path / "api.conf"
    config_file.write_text(f"[DEFAULT]\ntransport_url = fake://\n[database]\n"
                           f"connection = {conf.database.connection}\n")
    gc.unfreeze()
    try:
        app: Any = APIServer(config.parse_args(["--config-file", str(config_file)])).load()
        tracked = {id(obj) for obj in gc.get_objects()}
        assert gc.get_freeze_count() > 0
        assert id(app) not in tracked and id(app.ops) not in tracked
    finally:
        gc.unfreeze()
