"""The attach flow's RPC calls (1.3): bounded by the call timeout, a silent host becomes
ServiceUnavailable (503), and a capped client refuses them before anything is sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.context import RequestContext
from volmgr.volume import rpcapi

CTX = RequestContext(project_id="p1", user_id="u1", request_id="req-call")
VOL = "11111111-2222-3333-4444-555555555555"
ATT = "aaaaaaaa-2222-3333-4444-555555555555"


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[Any]:
    transport = rpc.get_transport(conf, url="fake://")
    yield transport
    transport.cleanup()


def test_the_connect_call_needs_rpc_13() -> None:
    assert rpcapi.RPC_API_VERSION == "1.4"
    assert rpcapi.METHOD_VERSIONS["connect_attachment"] == "1.3"
    assert rpcapi.METHOD_VERSIONS["terminate_connection"] == "1.3"


def test_a_host_that_never_answers_is_service_unavailable_after_the_timeout(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    api = rpcapi.VolumeAPI(conf, transport, call_timeout=1)
    started = time.monotonic()
    with pytest.raises(exception.ServiceUnavailable) as silent:
        api.connect_attachment(CTX, "node-nobody", VOL, ATT, {"initiator": "iqn.x"})
    assert 0.9 <= time.monotonic() - started < 10
    assert "node-nobody" in str(silent.value) and "1 s" in str(silent.value)
    with pytest.raises(exception.ServiceUnavailable):
        api.terminate_connection(CTX, "node-nobody", VOL, {"initiator": "iqn.x"})


def test_a_client_capped_below_13_refuses_the_calls(conf: cfg.ConfigOpts,
                                                    transport: Any) -> None:
    conf.set_override("volume", "1.2", group="upgrade_levels")
    api = rpcapi.VolumeAPI(conf, transport, call_timeout=1)
    with pytest.raises(exception.RPCVersionCapped):
        api.connect_attachment(CTX, "node-a", VOL, ATT, {})
    with pytest.raises(exception.RPCVersionCapped):
        api.require_version("extend_volume", rpcapi.EXTEND_ATTACHED_VERSION)
