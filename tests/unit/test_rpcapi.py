"""The RPC client contract: each method's topic, server, version and arguments, and the
rolling-upgrade cap that refuses what an old manager could not understand."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.context import RequestContext
from volmgr.volume import rpcapi
from volmgr.volume.manager import VolumeManager

CTX = RequestContext(project_id="p1", user_id="u1", request_id="req-1")
VOL = "11111111-2222-3333-4444-555555555555"
ATT = "aaaaaaaa-2222-3333-4444-555555555555"
SNAP = "bbbbbbbb-2222-3333-4444-555555555555"


class _Prepared:
    def __init__(self, recorder: _Recorder, prepared: Any, options: dict[str, Any]) -> None:
        self.recorder = recorder
        self.target = prepared.target
        self.options = options

    def _record(self, kind: str, ctxt: dict[str, Any], method: str,
                kwargs: dict[str, Any]) -> None:
        self.recorder.sent.append({
            "kind": kind, "topic": self.target.topic, "server": self.target.server,
            "version": self.target.version, "method": method, "args": kwargs,
            "context": ctxt, "retry": self.options.get("retry"),
            "timeout": self.options.get("timeout")})

    def cast(self, ctxt: dict[str, Any], method: str, **kwargs: Any) -> None:
        self._record("cast", ctxt, method, kwargs)

    def call(self, ctxt: dict[str, Any], method: str, **kwargs: Any) -> Any:
        self._record("call", ctxt, method, kwargs)
        return {"driver_volume_type": "iscsi"} if method == "connect_attachment" else None


class _Recorder:
    """Wraps the real RPCClient: real prepare() and version checks, recorded sends."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sent: list[dict[str, Any]] = []

    def prepare(self, **options: Any) -> _Prepared:
        return _Prepared(self, self.real.prepare(**options), options)

    def can_send_version(self, version: str) -> bool:
        return bool(self.real.can_send_version(version))


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[Any]:
    transport = rpc.get_transport(conf, url="fake://")
    yield transport
    transport.cleanup()


def _api(conf: cfg.ConfigOpts, transport: Any, **kwargs: Any) -> tuple[rpcapi.VolumeAPI,
                                                                       _Recorder]:
    api = rpcapi.VolumeAPI(conf, transport, **kwargs)
    recorder = _Recorder(api.client)
    api.client = recorder
    return api, recorder


CASES = [
    ("create_volume", (VOL,), {}, "1.0", {"volume_id": VOL}),
    ("create_volume", (VOL, SNAP), {}, "1.1", {"volume_id": VOL, "snapshot_id": SNAP}),
    ("delete_volume", (VOL,), {}, "1.0", {"volume_id": VOL}),
    ("attach_volume", (VOL, ATT), {}, "1.0", {"volume_id": VOL, "attachment_id": ATT}),
    ("detach_volume", (VOL, ATT), {}, "1.0", {"volume_id": VOL, "attachment_id": ATT}),
    ("extend_volume", (VOL, 5), {}, "1.0", {"volume_id": VOL, "new_size": 5}),
    ("create_snapshot", (SNAP,), {}, "1.0", {"snapshot_id": SNAP}),
    ("delete_snapshot", (SNAP,), {}, "1.0", {"snapshot_id": SNAP}),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "version", "sent_args"), CASES)
def test_each_cast_goes_to_the_volume_topic_on_the_owning_host(
        conf: cfg.ConfigOpts, transport: Any, method: str, args: tuple[Any, ...],
        kwargs: dict[str, Any], version: str, sent_args: dict[str, Any]) -> None:
    api, recorder = _api(conf, transport, cast_retry=2)
    getattr(api, method)(CTX, "node-b", *args, **kwargs)
    [message] = recorder.sent
    # The cast is stamped with its send time: the manager's bus-lag metric.
    sent_at = message["context"]["sent_at"]
    assert abs(sent_at - time.time()) < 60
    assert message == {
        "kind": "cast", "topic": "volmgr-volume", "server": "node-b", "version": version,
        "method": method, "args": sent_args, "context": {**CTX.to_dict(), "sent_at": sent_at},
        "retry": 2, "timeout": None}


CONNECTOR = {"initiator": "iqn.1993-08.org.debian:01:abc"}


@pytest.mark.parametrize(("method", "args", "answer"), [
    ("connect_attachment", {"volume_id": VOL, "attachment_id": ATT, "connector": CONNECTOR},
     {"driver_volume_type": "iscsi"}),
    ("terminate_connection", {"volume_id": VOL, "connector": CONNECTOR,
                              "attachment_id": ATT}, None)])
def test_calls_are_bounded_by_the_call_timeout(conf: cfg.ConfigOpts, transport: Any,
                                               method: str, args: dict[str, Any],
                                               answer: Any) -> None:
    api, recorder = _api(conf, transport, call_timeout=7)
    assert getattr(api, method)(CTX, "node-a", **args) == answer
    [message] = recorder.sent
    assert (message["kind"], message["topic"], message["server"], message["version"],
            message["method"], message["args"], message["timeout"]) == (
        "call", "volmgr-volume", "node-a", "1.3", method, args, 7)


def test_the_context_carries_identities_only() -> None:
    assert set(CTX.to_dict()) == {"project_id", "user_id", "roles", "request_id"}


def test_a_capped_client_refuses_a_newer_method_with_a_clear_error(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    conf.set_override("volume", "1.0", group="upgrade_levels")
    api, recorder = _api(conf, transport)
    with pytest.raises(exception.RPCVersionCapped) as caught:
        api.create_volume(CTX, "node-b", VOL, snapshot_id=SNAP)
    assert str(caught.value) == (
        "RPC method create_volume needs version 1.1 but the client is capped at 1.0 "
        "([upgrade_levels] volume).")
    assert recorder.sent == []
    api.create_volume(CTX, "node-b", VOL)  # what 1.0 managers understand still goes out
    assert recorder.sent[0]["version"] == "1.0"


def test_a_capped_client_can_be_asked_before_anything_is_written(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    conf.set_override("volume", "1.0", group="upgrade_levels")
    api, recorder = _api(conf, transport)
    api.require_version("create_volume")
    with pytest.raises(exception.RPCVersionCapped):
        api.require_version("create_volume", rpcapi.CREATE_FROM_SNAPSHOT_VERSION)
    assert recorder.sent == []


def test_a_client_capped_at_the_current_version_sends_everything(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    conf.set_override("volume", rpcapi.RPC_API_VERSION, group="upgrade_levels")
    api, recorder = _api(conf, transport)
    api.create_volume(CTX, "node-b", VOL, snapshot_id=SNAP)
    assert recorder.sent[0]["version"] == "1.1"


def test_every_rpcapi_method_exists_on_the_manager_with_the_same_version() -> None:
    assert VolumeManager.target.version == rpcapi.RPC_API_VERSION
    for method in rpcapi.METHOD_VERSIONS:
        assert getattr(getattr(VolumeManager, method), "exposed", False), method


def test_a_real_fake_transport_cast_arrives_with_its_arguments(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    done = threading.Event()

    class Endpoint:
        target = rpc.messaging.Target(version=rpcapi.RPC_API_VERSION)

        def extend_volume(self, context: dict[str, Any], volume_id: str,
                          new_size: int) -> None:
            received.append((volume_id, {"new_size": new_size, **context}))
            done.set()

    server = rpc.get_server(transport, server="node-c", endpoints=[Endpoint()])
    server.start()
    try:
        rpcapi.VolumeAPI(conf, transport).extend_volume(CTX, "node-c", VOL, 9)
        assert done.wait(5)
    finally:
        server.stop()
        server.wait()
    [(volume_id, sent)] = received
    assert abs(sent.pop("sent_at") - time.time()) < 60  # the bus-lag metric's stamp
    assert (volume_id, sent) == (VOL, {"new_size": 9, **CTX.to_dict()})


def test_each_process_draws_its_own_reconnect_delay_and_the_config_file_wins(
        conf: cfg.ConfigOpts, tmp_path: Any) -> None:
    from volmgr import config
    rpc.get_transport(conf, url="fake://").cleanup()
    low, high = rpc.RECONNECT_DELAY_RANGE
    assert low <= conf.oslo_messaging_rabbit.kombu_reconnect_delay < high
    assert conf.oslo_messaging_rabbit.heartbeat_timeout_threshold > 0  # heartbeats on
    path = tmp_path / "volmgr.conf"
    path.write_text("[oslo_messaging_rabbit]\nkombu_reconnect_delay = 0.25\n")
    explicit = config.new_conf()
    config.parse_args(["--config-file", str(path)], explicit, default_config_files=[])
    rpc.get_transport(explicit, url="fake://").cleanup()
    assert explicit.oslo_messaging_rabbit.kombu_reconnect_delay == 0.25


def test_oslo_messaging_still_sleeps_kombu_reconnect_delay_not_the_splay() -> None:
    # docs/rpc.md relies on this: the per-process delay is what spreads reconnects. When
    # a release sleeps the splay as well, revisit volmgr.rpc._set_rabbit_defaults.
    import inspect

    from oslo_messaging._drivers import impl_rabbit
    source = inspect.getsource(impl_rabbit.Connection.ensure)
    assert "time.sleep(self.kombu_reconnect_delay)" in source
    assert "time.sleep(interval)" not in source
