"""reconcile: which differences between rows and backend it reports, what --fix does,
and that it never touches what a row still claims. SQLite and an in-memory backend."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from volmgr import exception, states
from volmgr.cmd import manage
from volmgr.db import Database
from volmgr.manage import reconcile
from volmgr.volume.driver import Capacity, SnapshotRef, VolumeDriver, VolumeRef

HOST = "node1"


class MemoryBackend(VolumeDriver):
    """Volumes and exports as sets; ``removed`` records what reconcile took away."""

    name = "memory"

    def __init__(self) -> None:
        self.volumes: set[str] = set()
        self.exports: set[str] = set()
        self.removed: list[tuple[str, str]] = []
        self.fail_delete: exception.VolmgrError | None = None
        self.listings: list[set[str]] | None = None
        self.on_list: Any = None  # called at each volume listing: "meanwhile" events

    def check_setup(self) -> None:
        pass

    def create_volume(self, volume: VolumeRef) -> dict[str, Any]:
        self.volumes.add(volume.id)
        return {}

    def create_volume_from_snapshot(self, volume: VolumeRef,
                                    snapshot: SnapshotRef) -> dict[str, Any]:
        raise NotImplementedError

    def delete_volume(self, volume: VolumeRef) -> None:
        if self.fail_delete is not None:
            raise self.fail_delete
        self.volumes.discard(volume.id)
        self.removed.append(("volume", volume.id))

    def extend_volume(self, volume: VolumeRef, new_size: int) -> None:
        raise NotImplementedError

    def create_snapshot(self, snapshot: SnapshotRef) -> dict[str, Any]:
        raise NotImplementedError

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        raise NotImplementedError

    def create_export(self, volume: VolumeRef) -> dict[str, Any]:
        self.exports.add(volume.id)
        return {}

    def ensure_export(self, volume: VolumeRef) -> None:
        self.exports.add(volume.id)

    def remove_export(self, volume: VolumeRef) -> None:
        self.exports.discard(volume.id)
        self.removed.append(("export", volume.id))

    def initialize_connection(self, volume: VolumeRef,
                              connector: dict[str, Any]) -> dict[str, Any]:
        return {}

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        pass

    def get_capacity(self) -> Capacity:
        return Capacity(total_gb=10, free_gb=10)

    def list_volume_ids(self) -> set[str]:
        if self.on_list is not None:
            self.on_list()
        if self.listings:
            return self.listings.pop(0)
        return set(self.volumes)

    def list_exported_volume_ids(self) -> set[str]:
        return set(self.exports)


@pytest.fixture
def backend(monkeypatch) -> MemoryBackend:
    memory = MemoryBackend()
    monkeypatch.setattr(reconcile, "load_driver", lambda conf: memory)
    return memory


@pytest.fixture
def run(tmp_path, db: Database, capsys) -> Any:
    path = tmp_path / "volmgr.conf"
    path.write_text(f"[DEFAULT]\nhost = {HOST}\n[database]\nconnection = "
                    f"{db.engine.url.render_as_string(hide_password=False)}\n")
    db.service_heartbeat(HOST, "volmgr-volume", "volmgr-volume", {})

    def runner(*args: str) -> tuple[int, str, str]:
        code = manage.main(["--config-file", str(path), "reconcile", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return runner


def _row(db: Database, status: str = states.AVAILABLE, host: str | None = HOST) -> str:
    return db.volume_create(project_id="p1", user_id="u1", size=1, host=host,
                            status=status).id


def _problems(out: str) -> dict[str, str]:
    return {f["volume_id"]: f["problem"] for f in json.loads(out)}


def test_a_backend_that_matches_the_database_is_reported_clean(db, backend, run):
    backend.volumes.add(_row(db))
    exported = _row(db, states.IN_USE)
    backend.volumes.add(exported)
    backend.exports.add(exported)
    code, out, _ = run()
    assert code == 0
    assert out.strip() == f"No differences between the database and the backend on host {HOST}."


def test_orphan_volume_orphan_target_and_missing_volume_are_reported_with_exit_3(
        db, backend, run):
    orphan = str(uuid.uuid4())
    backend.volumes.add(orphan)
    missing = _row(db)
    not_attached = _row(db)
    backend.volumes.add(not_attached)
    backend.exports.add(not_attached)

    code, out, err = run("--format", "json")
    assert code == reconcile.EXIT_FOUND == 3
    assert _problems(out) == {orphan: "orphan_lv", missing: "missing_lv",
                              not_attached: "orphan_target"}
    assert all(f["action"] == "reported" for f in json.loads(out))
    assert "3 difference(s) found" in err and "--fix" in err
    assert backend.removed == [] and db.volume_get(missing).status == states.AVAILABLE


def test_fix_removes_orphans_sets_missing_rows_to_error_and_a_second_run_is_clean(
        db, backend, run):
    orphan = str(uuid.uuid4())
    backend.volumes.add(orphan)
    backend.exports.add(orphan)
    missing = _row(db, states.IN_USE)
    deleted_row = _row(db)
    backend.volumes.add(deleted_row)
    backend.exports.add(deleted_row)
    db.volume_transition(deleted_row, (states.AVAILABLE,), {"status": states.DELETING})
    db.volume_destroy(deleted_row)

    code, out, _ = run("--fix", "--format", "json")
    assert code == 0
    actions = {f["volume_id"]: (f["problem"], f["action"]) for f in json.loads(out)}
    assert actions[missing] == ("missing_lv", "set to error")
    assert ("orphan_lv", "volume removed") in [actions[orphan], actions[deleted_row]]
    assert backend.volumes == set() and backend.exports == set()
    # Export first: a target must never point at a volume that is gone.
    assert backend.removed.index(("export", orphan)) < backend.removed.index(
        ("volume", orphan))
    volume = db.volume_get(missing)
    assert volume.status == states.ERROR
    assert volume.status_reason == "backing volume missing (found by reconcile)"

    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_rows_that_may_lack_a_volume_are_not_reported_missing(db, backend, run):
    for status in (states.CREATING, states.ERROR, states.DELETING, states.ERROR_DELETING):
        _row(db, status)
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_exports_of_attaching_in_use_and_detaching_volumes_are_legitimate(db, backend, run):
    for status in reconcile.EXPORT_EXPECTED:
        volume_id = _row(db, status)
        backend.volumes.add(volume_id)
        backend.exports.add(volume_id)
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_a_volume_whose_row_belongs_to_another_host_is_reported_but_never_removed(
        db, backend, run):
    foreign = _row(db, host="node2")
    backend.volumes.add(foreign)
    code, out, _ = run("--fix", "--format", "json")
    [finding] = json.loads(out)
    assert finding["problem"] == "foreign_lv" and finding["action"] == "reported only"
    assert "node2" in finding["detail"]
    assert code == reconcile.EXIT_FOUND
    assert foreign in backend.volumes


def test_rows_on_other_hosts_are_not_reported_missing(db, backend, run):
    _row(db, host="node2")
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_a_volume_created_while_reconcile_looks_is_not_reported_missing(db, backend, run):
    volume_id = _row(db)
    # First listing predates the create, the second one sees the finished volume.
    backend.listings = [set(), {volume_id}]
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_a_volume_deleted_while_reconcile_looks_is_not_reported_orphaned(db, backend, run):
    volume_id = str(uuid.uuid4())  # its row is already destroyed; the LV goes next
    backend.listings = [{volume_id}, set()]
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_a_row_that_starts_deleting_while_reconcile_looks_is_not_reported_missing(
        db, backend, run):
    volume_id = _row(db)
    backend.volumes.add(volume_id)
    listings = []

    def manager_deletes_meanwhile() -> None:
        listings.append(1)
        if len(listings) == 2:  # after the rows were read: deleting, then the LV goes
            db.volume_transition(volume_id, (states.AVAILABLE,),
                                 {"status": states.DELETING})
            backend.volumes.discard(volume_id)
    backend.on_list = manager_deletes_meanwhile
    code, out, _ = run("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_an_export_whose_row_belongs_to_another_host_is_reported_but_kept(
        db, backend, run):
    volume_id = _row(db, states.AVAILABLE, host="node2")
    backend.exports.add(volume_id)
    code, out, _ = run("--fix", "--format", "json")
    assert code == 3
    assert [(f["problem"], f["action"]) for f in json.loads(out)] == [
        ("foreign_target", "reported only")]
    assert backend.exports == {volume_id}


def test_fix_skips_a_row_that_changed_after_it_was_found(db, backend):
    volume_id = _row(db)
    [finding] = reconcile.find_problems(db, backend, HOST)
    db.volume_transition(volume_id, (states.AVAILABLE,), {"status": states.DELETING})
    reconcile.fix_problems(db, backend, [finding])
    assert finding.action == "skipped: row changed meanwhile"
    assert db.volume_get(volume_id).status == states.DELETING


def test_a_failed_repair_is_reported_and_exits_1(db, backend, run):
    backend.volumes.add(str(uuid.uuid4()))
    backend.fail_delete = exception.BackendError(reason="lvremove said no")
    code, out, err = run("--fix")
    assert code == 1
    assert "failed: Storage backend error: lvremove said no" in out
    assert "1 of 1 repair(s) failed" in err


def test_fix_is_refused_when_this_host_has_no_service_in_the_database(
        db, backend, run):
    from volmgr.db import models
    with db.transaction() as session:
        session.query(models.Service).delete()
    backend.volumes.add(str(uuid.uuid4()))
    code, out, err = run("--fix")
    assert code == 1 and out == ""
    assert "no volmgr-volume service for host 'node1'" in err and "refusing --fix" in err
    assert backend.removed == []


def test_reconcile_table_output_names_problem_and_action(db, backend, run):
    orphan = str(uuid.uuid4())
    backend.volumes.add(orphan)
    code, out, _ = run()
    assert code == 3
    header, line = out.strip().splitlines()
    assert header.split() == ["problem", "volume_id", "status", "detail", "action"]
    assert line.startswith(f"orphan_lv  {orphan}")


def test_chap_secrets_of_exported_volumes_never_appear_in_the_output(db, backend, run):
    volume_id = _row(db)
    db.volume_update(volume_id, {"provider_auth": "CHAP user s3cr3tChap"})
    backend.volumes.add(volume_id)
    backend.exports.add(volume_id)
    code, out, err = run("--fix", "--format", "json")
    assert code == 0 and _problems(out) == {volume_id: "orphan_target"}
    assert "s3cr3tChap" not in out + err
