"""Property run over /openapi.json: schemathesis generates valid and invalid requests
for every operation of both faces (at least 1,000 in all) and the app must never answer
5xx. The real volume manager (file driver, no target helper) consumes the casts over the
in-process ``fake://`` transport, so the requests also walk real volumes through their
states; once it is idle, no volume or snapshot may sit in a transitional status."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from schemathesis.generation import GenerationMode

from tests.unit import api_helpers as h
from volmgr import rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume.rpcapi import VolumeAPI
from volmgr.volume.service import VolumeService

REQUESTS = 1100


def _known_ids(db: Database) -> tuple[list[str], list[str]]:
    volumes = [v.id for v in db.volume_list("p1")]
    snapshots = [s.id for s in db.snapshot_list("p1")]
    return volumes, snapshots


@pytest.mark.slow
def test_generated_requests_never_answer_5xx_nor_strand_a_volume(
        conf: cfg.ConfigOpts, db: Database) -> None:
    # Small sizes: snapshots copy (sparse) image files.
    conf.set_override("max_volume_size", 3, group="api")
    conf.set_override("host", "fuzz-node")
    conf.set_override("driver", "file", group="volume")
    conf.set_override("target_helper", "none", group="volume")
    transport = rpc.get_transport(conf, url="fake://")
    service = VolumeService(conf, db=db, transport=transport)
    service.start()
    casts = RecordingVolumeAPI(conf, transport, cast_retry=1)
    app = h.make_app(conf, db, casts)  # type: ignore[arg-type]
    try:
        _fuzz(db, app)
        # Every request the API accepted is carried out (or visibly failed) by the manager.
        wait_for_idle(db, service)
    finally:
        service.stop(timeout=30)
        transport.cleanup()
    volumes = db.volume_list(None)
    stuck = [(v.id, v.status) for v in volumes if v.status in states.VOLUME_TRANSITIONAL]
    assert stuck == []
    snapshots = db.snapshot_list(None)
    assert [s for s in snapshots if s.status in states.SNAPSHOT_TRANSITIONAL] == []
    # The run reached the state machine, not only the validators (which casts exactly
    # varies from run to run: the examples are random).
    assert "create_volume" in casts.sent and len(set(casts.sent)) >= 3, casts.sent


class RecordingVolumeAPI(VolumeAPI):
    """The real RPC client, remembering which casts it sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def _cast(self, context: RequestContext, method: str, host: str,
              version: str | None = None, **kwargs: Any) -> None:
        self.sent.append(method)
        super()._cast(context, method, host, version, **kwargs)


def wait_for_idle(db: Database, service: VolumeService, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [v for v in db.volume_list(None) if v.status in states.VOLUME_TRANSITIONAL]
        busy += [s for s in db.snapshot_list(None)
                 if s.status in states.SNAPSHOT_TRANSITIONAL]
        if not busy and service.manager.wait_idle(0.1):
            return
        time.sleep(0.1)


def _fuzz(db: Database, app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"X-Auth-Token": h.TOKEN}
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE, headers=headers),
                      schema.as_strategy(GenerationMode.NEGATIVE, headers=headers))
    answered: list[int] = []

    @settings(max_examples=REQUESTS, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        volumes, snapshots = _known_ids(db)
        # Point most requests at the caller's project and, where an id is wanted, at a
        # real volume or snapshot, so they reach the state machine instead of a 404.
        params = dict(case.path_parameters or {})
        if "project_id" in params and data.draw(st.sampled_from([True] * 9 + [False])):
            params["project_id"] = "p1"
        for key, pool in (("volume_id", volumes), ("snapshot_id", snapshots)):
            # Draw whatever the database holds, so a replayed example draws the same.
            use, index = data.draw(st.sampled_from([True, True, False])), data.draw(
                st.integers(0, 1000))
            if key in params and use and pool:
                params[key] = pool[index % len(pool)]
        if "server_id" in params and data.draw(st.booleans()):
            params["server_id"] = "srv1"
        if params:
            case.path_parameters = params
        if isinstance(case.body, dict):
            body = {key: dict(value) if isinstance(value, dict) else value
                    for key, value in case.body.items()}
            for inner in body.values():
                if not isinstance(inner, dict):
                    continue
                for key in ("volumeId", "volume_id"):
                    use, index = data.draw(st.sampled_from([True, True, False])), data.draw(
                        st.integers(0, 1000))
                    if key in inner and use and volumes:
                        inner[key] = volumes[index % len(volumes)]
            case.body = body
        response = case.call()
        answered.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path,
                                            case.body, response.text)

    run()
    assert len(answered) >= 1000
    assert sum(1 for code in answered if code in (200, 202)) > 100
