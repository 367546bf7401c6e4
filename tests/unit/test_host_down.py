"""A storage host that is down: a cleanly stopped manager gets no new volumes at once,
operations on its volumes answer 503 naming the host before anything is written, and
``volmgr-manage service remove`` gives up on a host that never returns."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import states
from volmgr.api.scheduler import Scheduler
from volmgr.cmd import manage
from volmgr.db import Database, models

BINARY = "volmgr-volume"


def _available_on(app: Any, db: Database) -> str:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    assert answer.status_int == 202, answer.text
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def _silence(db: Database, host: str, seconds: int) -> None:
    old = models.utcnow() - datetime.timedelta(seconds=seconds)
    with db.transaction() as session:
        session.query(models.Service).filter_by(host=host).update({"last_heartbeat": old})


# -- the scheduler ----------------------------------------------------------------------


def test_a_cleanly_stopped_host_gets_no_new_volume_although_it_heartbeated_just_now(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "roomy", free=500)
    h.register_host(db, "small", free=5)
    db.service_stopped("roomy", BINARY)
    scheduler = Scheduler(conf, db)
    assert [scheduler.choose_host(1) for _ in range(10)] == ["small"] * 10
    h.register_host(db, "roomy", free=500)  # back: its next heartbeat says up again
    assert scheduler.choose_host(1) == "roomy"


# -- operations on a down host's volumes ------------------------------------------------


@pytest.mark.parametrize("how", ["stopped", "silent"])
def test_operations_on_a_down_hosts_volume_answer_503_naming_it_and_write_nothing(
        conf: cfg.ConfigOpts, db: Database, app: Any, rpcapi: h.RecordingRPC,
        how: str) -> None:
    volume_id = _available_on(app, db)
    casts_before = len(rpcapi.casts)
    if how == "stopped":
        db.service_stopped("node1", BINARY)
        why = "it was stopped"
    else:
        _silence(db, "node1", conf.service_down_time + 5)
        why = f"no heartbeat for {conf.service_down_time} s"
    requests = [
        ("DELETE", f"/v3/p1/volumes/{volume_id}", None),
        ("POST", f"/v3/p1/volumes/{volume_id}/action", {"os-extend": {"new_size": 2}}),
        ("POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}}),
        ("POST", "/v3/p1/volumes", {"volume": {"source_volid": volume_id}}),
        ("DELETE", f"/v1.1/p1/os-volumes/{volume_id}", None),
        ("POST", "/v1.1/p1/servers/srv-1/os-volume_attachments",
         {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb"}}),
    ]
    for method, path, body in requests:
        answer = h.call(app, method, path, body)
        assert answer.status_int == 503, (method, path, answer.text)
        assert "storage host node1 is down" in answer.text, answer.text
        assert why in answer.text, answer.text
    row = db.volume_get(volume_id)
    assert (row.status, row.size) == (states.AVAILABLE, 1)
    assert h.call(app, "GET", "/v3/p1/snapshots").json["snapshots"] == []
    assert len(rpcapi.casts) == casts_before
    listed = h.call(app, "GET", "/v3/p1/volumes/detail?all_tenants=0")
    assert listed.status_int == 200  # reads never depend on the host


def test_once_the_host_is_back_the_same_operation_is_accepted(
        conf: cfg.ConfigOpts, db: Database, app: Any, rpcapi: h.RecordingRPC) -> None:
    volume_id = _available_on(app, db)
    db.service_stopped("node1", BINARY)
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 503
    h.register_host(db)
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202
    assert db.volume_get(volume_id).status == states.DELETING
    assert rpcapi.methods()[-1] == "delete_volume"


def test_on_a_removed_host_changes_answer_503_and_deletes_finish_in_the_database(
        conf: cfg.ConfigOpts, db: Database, app: Any, rpcapi: h.RecordingRPC) -> None:
    volume_id = _available_on(app, db)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    db.snapshot_transition(snapshot.id, (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    db.service_stopped("node1", BINARY)
    db.service_delete("node1", BINARY, conf.service_down_time)
    casts = len(rpcapi.casts)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-extend": {"new_size": 2}})
    assert answer.status_int == 503
    assert "no volume service runs on storage host node1" in answer.text
    # Its storage went with the machine: a delete is done in the database alone.
    assert h.call(app, "DELETE", f"/v3/p1/snapshots/{snapshot.id}").status_int == 202
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202
    assert h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").status_int == 404
    assert h.call(app, "GET", f"/v3/p1/snapshots/{snapshot.id}").status_int == 404
    assert len(rpcapi.casts) == casts
    usage = h.call(app, "GET", "/v3/p1/limits").json["limits"]["absolute"]
    assert usage["totalVolumesUsed"] == 0 and usage["totalSnapshotsUsed"] == 0


# -- volmgr-manage service remove -------------------------------------------------------


@pytest.fixture
def run(tmp_path: Any, db: Database, capsys: pytest.CaptureFixture[str]) -> Any:
    path = tmp_path / "volmgr.conf"
    path.write_text(
        "[DEFAULT]\nhost = node1\nservice_down_time = 60\n"
        f"state_path = {tmp_path}/state\ntransport_url = fake:/\n"
        f"[database]\nconnection = {db.engine.url.render_as_string(hide_password=False)}\n")

    def runner(*args: str) -> tuple[int, str, str]:
        code = manage.main(["--config-file", str(path), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return runner


def _volume(db: Database, status: str, host: str = "dead") -> str:
    return db.volume_create(project_id="p1", user_id="u1", size=1, host=host,
                            status=status).id


def test_service_remove_is_refused_while_the_host_is_up_and_changes_nothing(
        db: Database, run: Any) -> None:
    h.register_host(db, "dead")
    creating = _volume(db, states.CREATING)
    code, _, err = run("service", "remove", "dead")
    assert code == 1
    assert "is up" in err and "stop it first" in err
    assert db.volume_get(creating).status == states.CREATING
    assert db.service_get("dead", BINARY).host == "dead"


def test_service_remove_moves_the_hosts_transitional_rows_to_error_with_a_reason(
        db: Database, run: Any) -> None:
    h.register_host(db, "dead")
    h.register_host(db, "alive")
    creating = _volume(db, states.CREATING)
    deleting = _volume(db, states.DELETING)
    extending = _volume(db, states.AVAILABLE)
    db.volume_begin_extend(extending, 3, from_statuses=(states.AVAILABLE,))
    available = _volume(db, states.AVAILABLE)
    snapped = _volume(db, states.AVAILABLE)
    snapshot = db.snapshot_create(snapped, project_id="p1", user_id="u1")
    elsewhere = _volume(db, states.CREATING, host="alive")
    _silence(db, "dead", 120)

    code, out, err = run("service", "remove", "dead", "--format", "json")
    assert code == 0, err
    moved = {row["id"]: (row["was"], row["now"]) for row in json.loads(out)}
    assert moved == {
        creating: ("creating", "error"),
        deleting: ("deleting", "error_deleting"),
        extending: ("extending", "error_extending"),
        snapshot.id: ("creating", "error"),
    }
    for volume_id, status in ((creating, states.ERROR), (deleting, states.ERROR_DELETING),
                              (extending, states.ERROR_EXTENDING)):
        row = db.volume_get(volume_id)
        assert row.status == status
        assert "storage host dead was removed" in (row.status_reason or "")
    assert db.snapshot_get(snapshot.id).status == states.SNAP_ERROR
    assert db.volume_get(available).status == states.AVAILABLE
    assert db.volume_get(elsewhere).status == states.CREATING
    code, out, _ = run("service", "list", "--format", "json")
    assert [s["host"] for s in json.loads(out)] == ["alive"]


def test_service_remove_of_an_unknown_host_exits_1(run: Any) -> None:
    code, _, err = run("service", "remove", "nowhere")
    assert code == 1
    assert "nowhere" in err
