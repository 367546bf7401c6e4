"""Property run over /openapi.json: schemathesis generates valid and invalid requests
for every operation of both faces (at least 1,000 in all) and the app must never answer
5xx. A synchronous in-process stand-in for the manager completes each cast as it is
sent, so the requests also walk real volumes through their states; at the end no volume
or snapshot may sit in a transitional status."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from schemathesis.generation import GenerationMode

from tests.unit import api_helpers as h
from volmgr import states
from volmgr.context import RequestContext
from volmgr.db import Database

REQUESTS = 1100


class CompletingManager(h.RecordingRPC):
    """Records each cast and immediately does what a healthy manager would."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    def _record(self, method: str, context: RequestContext, host: str,
                **args: Any) -> None:
        super()._record(method, context, host, **args)
        db = self.db
        if method == "create_volume":
            db.volume_transition(args["volume_id"], (states.CREATING,),
                                 {"status": states.AVAILABLE})
        elif method == "delete_volume":
            db.volume_destroy(args["volume_id"])
        elif method == "attach_volume":
            db.attach_complete(args["volume_id"], args["attachment_id"],
                               {"driver_volume_type": "iscsi", "data": {}})
        elif method == "detach_volume":
            db.detach_complete(args["volume_id"], args["attachment_id"])
        elif method == "extend_volume":
            db.volume_finish_extend(args["volume_id"])
        elif method == "create_snapshot":
            db.snapshot_transition(args["snapshot_id"], (states.SNAP_CREATING,),
                                   {"status": states.SNAP_AVAILABLE})
        elif method == "delete_snapshot":
            db.snapshot_destroy(args["snapshot_id"])


def _known_ids(db: Database) -> tuple[list[str], list[str]]:
    volumes = [v.id for v in db.volume_list("p1")]
    snapshots = [s.id for s in db.snapshot_list("p1")]
    return volumes, snapshots


@pytest.mark.slow
def test_generated_requests_never_answer_5xx_nor_strand_a_volume(
        conf: cfg.ConfigOpts, db: Database) -> None:
    conf.set_override("max_volume_size", 50, group="api")
    h.register_host(db, free=1_000_000)
    manager = CompletingManager(db)
    app = h.make_app(conf, db, manager)
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
    volumes = db.volume_list(None)
    stuck = [(v.id, v.status) for v in volumes if v.status in states.VOLUME_TRANSITIONAL]
    assert stuck == []
    snapshots = db.snapshot_list(None)
    assert [s for s in snapshots if s.status in states.SNAPSHOT_TRANSITIONAL] == []
    # The run reached the state machine, not only the validators (which casts exactly
    # varies from run to run: the examples are random).
    reached = set(manager.methods())
    assert "create_volume" in reached and len(reached) >= 3, reached
