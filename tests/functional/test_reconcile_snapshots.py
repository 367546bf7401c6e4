"""``volmgr-manage reconcile`` covers snapshots too (image files on PostgreSQL, a real
process): a snapshot image no row explains is reported and removed with ``--fix``; an
available snapshot row whose image is gone is reported and set to error; a healthy
snapshot is never touched."""

from __future__ import annotations

import json
import os
import uuid

from tests.functional.test_manage_reconcile import _database, _driver, manage
from volmgr import states
from volmgr.volume.driver import SnapshotRef, VolumeRef


def test_reconcile_reports_and_fixes_snapshot_drift_on_image_files(tmp_path, postgres_url):
    host = f"reconcile-snap-{uuid.uuid4().hex[:8]}"
    volumes_dir = tmp_path / "volumes"
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = {host}\nstate_path = {tmp_path}/state\n"
        f"[database]\nconnection = {postgres_url}\n"
        f"[volume]\ndriver = file\ntarget_helper = none\n"
        f"[file]\nvolumes_dir = {volumes_dir}\n")
    db = _database(postgres_url)
    driver = _driver(str(conf_file))
    try:
        db.service_heartbeat(host, "volmgr-volume", "volmgr-volume", {})
        parent = db.volume_create(project_id="p", user_id="u", size=1, host=host,
                                  status=states.AVAILABLE)
        driver.create_volume(VolumeRef(parent.id, 1))
        healthy = db.snapshot_create(parent.id, project_id="p", user_id="u")
        driver.create_snapshot(SnapshotRef(healthy.id, parent.id, 1))
        db.snapshot_transition(healthy.id, (states.SNAP_CREATING,),
                               {"status": states.SNAP_AVAILABLE})
        lost = db.snapshot_create(parent.id, project_id="p", user_id="u")
        driver.create_snapshot(SnapshotRef(lost.id, parent.id, 1))
        db.snapshot_transition(lost.id, (states.SNAP_CREATING,),
                               {"status": states.SNAP_AVAILABLE})
        driver.delete_snapshot(SnapshotRef(lost.id, parent.id, 1))  # gone behind volmgr
        orphan = str(uuid.uuid4())
        driver.create_snapshot(SnapshotRef(orphan, parent.id, 1))  # no row

        report = manage(str(conf_file), "reconcile", "--format", "json")
        assert report.returncode == 3, report.stdout + report.stderr
        found = json.loads(report.stdout)
        assert [(f["problem"], f["volume_id"]) for f in found] == [
            ("orphan_snapshot", parent.id), ("missing_snapshot", parent.id)]
        assert orphan in found[0]["detail"] and lost.id in found[1]["detail"]
        assert set(driver.list_snapshots() or {}) == {healthy.id, orphan}

        fixed = manage(str(conf_file), "reconcile", "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "snapshot removed" in fixed.stdout and "set to error" in fixed.stdout
        assert set(driver.list_snapshots() or {}) == {healthy.id}
        assert db.snapshot_get(lost.id).status == states.SNAP_ERROR
        assert db.snapshot_get(healthy.id).status == states.SNAP_AVAILABLE
        assert os.path.exists(volumes_dir / f"volume-{parent.id}")

        again = manage(str(conf_file), "reconcile")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        db.dispose()
