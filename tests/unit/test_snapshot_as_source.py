"""Regressions found by review: a snapshot is never removed while a volume is being made
from it, whichever way the requests arrive (API guard and manager ordering)."""
from __future__ import annotations

import threading
from typing import Any

from oslo_config import cfg

from tests.unit import api_helpers as h
from tests.unit.volume_fakes import FakeDriver
from volmgr import states
from volmgr.db import Database
from volmgr.volume.manager import VolumeManager

CTX = {"project_id": "p1", "user_id": "u1", "request_id": "req-x"}


def test_api_refuses_to_delete_a_snapshot_a_creating_volume_copies_from(
        app: Any, db: Database) -> None:
    origin = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}}).json["volume"]
    h.finish(db, origin["id"])
    snap = h.call(app, "POST", "/v3/p1/snapshots",
                  {"snapshot": {"volume_id": origin["id"]}}).json["snapshot"]
    db.snapshot_transition(snap["id"], (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    clone = h.call(app, "POST", "/v3/p1/volumes",
                   {"volume": {"size": 1, "snapshot_id": snap["id"]}}).json["volume"]
    assert clone["status"] == "creating"
    answer = h.call(app, "DELETE", f"/v3/p1/snapshots/{snap['id']}")
    assert answer.status_int in (400, 409), (
        f"snapshot delete answered {answer.status_int} while volume {clone['id']} is "
        "still being created from it")


def test_manager_never_deletes_a_snapshot_while_a_volume_is_copied_from_it(
        conf: cfg.ConfigOpts, db: Database) -> None:
    driver = FakeDriver()
    manager = VolumeManager(conf, db, driver, host="node1")
    try:
        origin = db.volume_create(project_id="p1", user_id="u1", size=1, host="node1",
                                  status=states.AVAILABLE)
        driver.volumes[origin.id] = 1
        snap = db.snapshot_create(origin.id, project_id="p1", user_id="u1")
        driver.snapshots[snap.id] = origin.id
        db.snapshot_transition(snap.id, (states.SNAP_CREATING,),
                               {"status": states.SNAP_AVAILABLE})
        clone = db.volume_create(project_id="p1", user_id="u1", size=1, host="node1",
                                 snapshot_id=snap.id)
        copying = threading.Event()
        driver.gates["create_volume_from_snapshot"] = copying   # the copy takes a while
        manager.create_volume(CTX, clone.id, snap.id)
        for _ in range(500):                    # wait until the copy is under way
            if ("create_volume_from_snapshot", clone.id) in driver.calls:
                break
            threading.Event().wait(0.01)
        assert ("create_volume_from_snapshot", clone.id) in driver.calls
        # The user deletes the snapshot meanwhile (the API accepted it, see above).
        db.snapshot_transition(snap.id, (states.SNAP_AVAILABLE,),
                               {"status": states.SNAP_DELETING})
        manager.delete_snapshot(CTX, snap.id)
        deleted_during_copy = threading.Event()

        def watch() -> None:
            for _ in range(200):
                if ("delete_snapshot", snap.id) in driver.calls:
                    deleted_during_copy.set()
                    break
                threading.Event().wait(0.01)
            copying.set()
        threading.Thread(target=watch).start()
        assert manager.wait_idle(10)
        assert not deleted_during_copy.is_set(), (
            "delete_snapshot ran while create_volume_from_snapshot was still copying; "
            f"clone ended {db.volume_get(clone.id).status!r}: "
            f"{db.volume_get(clone.id).status_reason}")
    finally:
        manager.close()
