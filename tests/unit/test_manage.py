"""volmgr-manage service and volume commands, run through ``main`` on SQLite."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.db_reads import quota_usage
from volmgr import rpc, states
from volmgr.cmd import manage
from volmgr.db import Database


@pytest.fixture
def conf_file(tmp_path: Any, db: Database) -> str:
    path = tmp_path / "volmgr.conf"
    path.write_text(
        "[DEFAULT]\nhost = node1\nservice_down_time = 60\n"
        f"state_path = {tmp_path}/state\ntransport_url = fake:/\n"
        f"[database]\nconnection = {db.engine.url.render_as_string(hide_password=False)}\n")
    return str(path)


@pytest.fixture
def run(conf_file: str, capsys: pytest.CaptureFixture[str]) -> Any:
    def runner(*args: str) -> tuple[int, str, str]:
        code = manage.main(["--config-file", conf_file, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return runner


def _volume(db: Database, **values: Any) -> str:
    values.setdefault("status", states.AVAILABLE)
    return db.volume_create(project_id="p1", user_id="u1", size=values.pop("size", 1),
                            **values).id


def _attach(db: Database, volume_id: str, server: str = "srv-1") -> str:
    attachment = db.attachment_begin(volume_id, server_id=server, device="/dev/vdb")
    db.attach_complete(volume_id, attachment.id, {
        "driver_volume_type": "iscsi",
        "data": {"target_iqn": "iqn.2010-10.org.openstack:volume-x", "target_lun": 1,
                 "target_portal": "127.0.0.1:3260", "auth_method": "CHAP",
                 "auth_username": "chap-user", "auth_password": "s3cr3t-chap"}})
    return attachment.id


# -- service ------------------------------------------------------------------------


def test_service_list_shows_up_enabled_and_capacity_from_the_heartbeat(db, run):
    db.service_heartbeat("node1", "volmgr-volume", "volmgr-volume",
                         {"total_capacity_gb": 100.0, "free_capacity_gb": 42.5})
    code, out, _ = run("service", "list", "--format", "json")
    assert code == 0
    [row] = json.loads(out)
    assert row["host"] == "node1" and row["binary"] == "volmgr-volume"
    assert row["status"] == "enabled" and row["state"] == "up"
    assert row["total_gb"] == 100.0 and row["free_gb"] == 42.5
    assert row["last_heartbeat"]


def test_service_without_a_heartbeat_for_service_down_time_is_down(db, run):
    import datetime

    from volmgr.db import models
    db.service_heartbeat("node2", "volmgr-volume", "volmgr-volume", {})
    old = models.utcnow() - datetime.timedelta(seconds=61)
    with db.transaction() as session:
        session.query(models.Service).filter_by(host="node2").update(
            {"last_heartbeat": old})
    code, out, _ = run("service", "list")
    assert code == 0
    header, line = out.strip().splitlines()
    assert header.split()[:4] == ["host", "binary", "status", "state"]
    assert line.split()[:4] == ["node2", "volmgr-volume", "enabled", "down"]


def test_service_disable_with_reason_then_enable(db, run):
    db.service_heartbeat("node1", "volmgr-volume", "volmgr-volume", {})
    code, out, _ = run("service", "disable", "node1", "--reason", "disk swap")
    assert code == 0 and "disabled" in out and "disk swap" in out
    service = db.service_get("node1", "volmgr-volume")
    assert service.disabled and service.disabled_reason == "disk swap"
    assert db.services_up("volmgr-volume", 60) == []

    code, out, _ = run("service", "enable", "node1")
    assert code == 0 and "enabled" in out
    service = db.service_get("node1", "volmgr-volume")
    assert not service.disabled and service.disabled_reason is None


def test_disabling_an_unknown_service_is_a_clear_error_with_exit_1(run):
    code, out, err = run("service", "disable", "no-such-host")
    assert code == 1 and out == ""
    assert err.strip() == "error: Service no-such-host volmgr-volume could not be found."


# -- volume list / show -------------------------------------------------------------


def test_volume_list_shows_live_volumes_and_all_adds_deleted_ones(db, run):
    kept = _volume(db, host="node1", display_name="kept")
    gone = _volume(db, host="node1")
    db.volume_transition(gone, (states.AVAILABLE,), {"status": states.DELETING})
    db.volume_destroy(gone)

    code, out, _ = run("volume", "list")
    assert code == 0
    assert kept in out and gone not in out and "kept" in out

    code, out, _ = run("volume", "list", "--all", "--format", "json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert set(rows) == {kept, gone}
    assert rows[gone]["deleted"] is True and rows[kept]["deleted"] is False


def test_volume_list_filters_by_host_and_status(db, run):
    on_node1 = _volume(db, host="node1")
    on_node2 = _volume(db, host="node2")
    failed = _volume(db, host="node2", status=states.ERROR)
    _, out, _ = run("volume", "list", "--host", "node2", "--format", "json")
    assert {r["id"] for r in json.loads(out)} == {on_node2, failed}
    _, out, _ = run("volume", "list", "--status", "error", "--format", "json")
    assert [r["id"] for r in json.loads(out)] == [failed]
    assert on_node1


def test_volume_show_includes_status_reason_and_attachments_but_no_secrets(db, run):
    volume_id = _volume(db, host="node1")
    db.volume_update(volume_id, {"provider_auth": "CHAP chap-user s3cr3t-chap"})
    _attach(db, volume_id)
    db.volume_update(volume_id, {"status_reason": "why it is so"})

    code, out, _ = run("volume", "show", volume_id, "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == volume_id and shown["status"] == states.IN_USE
    assert shown["status_reason"] == "why it is so"
    [attachment] = shown["attachments"]
    assert attachment["server_id"] == "srv-1" and attachment["attach_status"] == "attached"
    assert attachment["target_iqn"] == "iqn.2010-10.org.openstack:volume-x"
    assert "s3cr3t-chap" not in out

    code, table_out, _ = run("volume", "show", volume_id)
    assert code == 0 and "why it is so" in table_out and "srv-1" in table_out
    assert "s3cr3t-chap" not in table_out


def test_volume_show_of_an_unknown_volume_exits_1(run):
    code, out, err = run("volume", "show", "0000")
    assert code == 1 and out == ""
    assert "No volume has the id or the name '0000'" in err


# -- reset-state --------------------------------------------------------------------


def test_reset_state_sets_any_known_status_and_records_why(db, run):
    volume_id = _volume(db, host="node1", status=states.ERROR_DETACHING)
    code, out, _ = run("volume", "reset-state", volume_id, "--state", "available",
                       "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "available"
    volume = db.volume_get(volume_id)
    assert volume.status == states.AVAILABLE
    assert volume.status_reason == "state reset by operator (was error_detaching)"

    run("volume", "reset-state", volume_id, "--state", "error", "--reason", "bad disk")
    assert db.volume_get(volume_id).status_reason == "bad disk"


def test_reset_state_refuses_an_unknown_status_with_the_valid_ones(db, run):
    volume_id = _volume(db, host="node1")
    code, _, err = run("volume", "reset-state", volume_id, "--state", "broken")
    assert code == 1
    assert "unknown volume status 'broken'" in err and "error_detaching" in err
    assert db.volume_get(volume_id).status == states.AVAILABLE


# -- force-delete -------------------------------------------------------------------


class _Recorder:
    """A volume manager endpoint that only records what it is told."""

    def __init__(self) -> None:
        from oslo_messaging import Target

        self.target = Target(version="1.1")
        self.deleted: list[str] = []
        self.event = threading.Event()

    def delete_volume(self, ctxt: dict[str, Any], volume_id: str) -> None:
        self.deleted.append(volume_id)
        self.event.set()


@pytest.fixture
def manager_on_fake_bus(conf, monkeypatch) -> Iterator[_Recorder]:
    """One fake:// transport shared by the CLI and a recording 'manager' on node1."""
    transport = rpc.get_transport(conf, url="fake:/")
    # The CLI cleans its transport up when done; the shared one must outlive that.
    monkeypatch.setattr(transport, "cleanup", lambda: None)
    monkeypatch.setattr(rpc, "get_transport", lambda conf, url=None: transport)
    recorder = _Recorder()
    server = rpc.get_server(transport, server="node1", endpoints=[recorder])
    server.start()
    yield recorder
    server.stop()
    server.wait()


def test_force_delete_of_an_attached_volume_closes_attachments_and_casts_to_its_host(
        db, run, manager_on_fake_bus):
    volume_id = _volume(db, host="node1")
    _attach(db, volume_id)
    code, out, _ = run("volume", "force-delete", volume_id)
    assert code == 0 and "deleting (sent to host)" in out
    volume = db.volume_get(volume_id)
    assert volume.status == states.DELETING
    assert volume.status_reason == "force-deleted by operator"
    assert db.attachment_list(volume_id=volume_id) == []
    assert manager_on_fake_bus.event.wait(10)
    assert manager_on_fake_bus.deleted == [volume_id]


def test_force_delete_of_a_volume_without_host_destroys_the_row(db, run):
    volume_id = _volume(db, status=states.CREATING)
    code, out, _ = run("volume", "force-delete", volume_id, "--format", "json")
    assert code == 0
    assert json.loads(out) == [{"id": volume_id, "host": None,
                                "result": "deleted (no host: database only)"}]
    assert db.volume_list() == []
    assert quota_usage(db, "p1")["volumes"] == 0


def test_force_delete_refuses_a_volume_with_snapshots_and_goes_on_with_the_rest(db, run):
    with_snapshot = _volume(db)
    db.snapshot_create(with_snapshot, project_id="p1", user_id="u1")
    plain = _volume(db)
    code, out, _ = run("volume", "force-delete", with_snapshot, plain, "--format", "json")
    assert code == 1
    results = {r["id"]: r["result"] for r in json.loads(out)}
    assert results[with_snapshot].startswith("error:") and "snapshots" in results[with_snapshot]
    assert results[plain] == "deleted (no host: database only)"
    assert db.volume_get(with_snapshot).status == states.AVAILABLE


def test_bulk_force_delete_shows_progress_on_stderr_and_keeps_stdout_pure_json(
        db, run, monkeypatch):
    from volmgr.manage import progress
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    ids = [_volume(db) for _ in range(5)]
    code, out, err = run("volume", "force-delete", *ids, "--format", "json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == ids
    assert "force-delete: 1/5 (20%)" in err or "force-delete: 2/5 (40%)" in err
    assert "force-delete: 5/5 (100%)" in err and "done in" in err
    assert db.volume_list() == []


def test_force_delete_whose_cast_fails_leaves_rows_deleting_for_recovery_and_tries_once(
        db, run, monkeypatch):
    attempts = []

    def broken(conf, url=None):
        attempts.append(url)
        raise ConnectionRefusedError("broker down")
    monkeypatch.setattr(rpc, "get_transport", broken)
    ids = [_volume(db, host="node1") for _ in range(3)]
    code, out, err = run("volume", "force-delete", *ids, "--format", "json")
    assert code == 0
    assert [r["result"] for r in json.loads(out)] == [
        "deleting (cast failed; recovery will finish)"] * 3
    assert "broker down" in err and len(attempts) == 1
    assert all(db.volume_get(i).status == states.DELETING for i in ids)


def test_output_table_aligns_columns_and_shows_none_as_dash():
    from volmgr.manage.output import table
    text = table([{"a": "x", "b": None}, {"a": "longer", "b": 2.25}], ["a", "b"])
    assert text.splitlines() == ["a       b", "x       -", "longer  2.2"]
