"""The data layer's promises: guarded transitions, quota that never lies, soft delete."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.db_reads import quota_usage
from volmgr import exception, states
from volmgr.db import Database, models, quota


def _volume(db: Database, project: str = "p1", size: int = 1, **kwargs: object):
    return db.volume_create(project_id=project, user_id="u1", size=size, host="node1",
                            **kwargs)  # type: ignore[arg-type]


def test_created_volume_is_creating_with_quota_reserved(db: Database) -> None:
    volume = _volume(db, size=3, display_name="v1", metadata={"k": "v"})
    assert volume.status == states.CREATING
    assert volume.metadata_ == {"k": "v"}
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 3}


def test_transition_wins_only_from_an_expected_status(db: Database) -> None:
    volume = _volume(db)
    assert not db.volume_transition(volume.id, [states.AVAILABLE], {"status": states.DELETING})
    assert db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    assert db.volume_get(volume.id).status == states.AVAILABLE


def test_transition_stamps_when_the_status_was_asked_for(db: Database) -> None:
    volume = _volume(db)
    before = db.volume_get(volume.id).status_changed_at
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    assert db.volume_get(volume.id).status_changed_at >= before


def test_losing_transition_names_the_current_status(db: Database) -> None:
    volume = _volume(db)
    with pytest.raises(exception.VolumeStatusConflict, match="is creating"):
        db.volume_transition_or_raise(volume.id, states.CAN_DELETE_FROM,
                                      {"status": states.DELETING})


def test_other_projects_cannot_see_or_move_a_volume(db: Database) -> None:
    volume = _volume(db, project="p1")
    with pytest.raises(exception.VolumeNotFound):
        db.volume_get(volume.id, project_id="p2")
    with pytest.raises(exception.VolumeNotFound):
        db.volume_transition_or_raise(volume.id, [states.CREATING],
                                      {"status": states.DELETING}, project_id="p2")
    assert db.volume_list("p2") == []


def test_delete_of_attached_volume_is_refused(db: Database) -> None:
    volume = _volume(db)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    attachment = db.attachment_begin(volume.id, server_id="s1", device="/dev/vdb")
    db.attach_complete(volume.id, attachment.id, {"driver_volume_type": "iscsi", "data": {}})
    with pytest.raises(exception.VolumeStatusConflict, match="in-use"):
        db.volume_transition_or_raise(volume.id, states.CAN_DELETE_FROM,
                                      {"status": states.DELETING}, no_attachments=True)


def test_attach_then_detach_round_trip(db: Database) -> None:
    volume = _volume(db)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    attachment = db.attachment_begin(volume.id, server_id="s1", device="/dev/vdb",
                                     connector={"initiator": "iqn.x"})
    assert db.volume_get(volume.id).status == states.ATTACHING
    with pytest.raises(exception.VolumeStatusConflict):
        db.attachment_begin(volume.id, server_id="s2", device="/dev/vdc")
    assert db.attach_complete(volume.id, attachment.id, {"driver_volume_type": "iscsi"})
    attached = db.attachment_find(volume.id, "s1")
    assert attached.attach_status == states.ATTACH_ATTACHED
    assert attached.connection_info == {"driver_volume_type": "iscsi"}
    assert [a.server_id for a in db.volume_get(volume.id).attachments] == ["s1"]
    detaching = db.detach_begin(volume.id, "s1")
    assert detaching.attach_status == states.ATTACH_DETACHING
    assert db.detach_complete(volume.id, attachment.id)
    assert db.volume_get(volume.id).status == states.AVAILABLE
    assert db.volume_get(volume.id).attachments == []
    with pytest.raises(exception.AttachmentNotFound):
        db.attachment_find(volume.id, "s1")


def test_failed_attach_leaves_a_reason_and_allows_retry(db: Database) -> None:
    volume = _volume(db)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    attachment = db.attachment_begin(volume.id, server_id="s1", device=None)
    db.attach_failed(volume.id, attachment.id, "target refused")
    failed = db.volume_get(volume.id)
    assert (failed.status, failed.status_reason) == (states.ERROR_ATTACHING, "target refused")
    assert db.attachment_begin(volume.id, server_id="s1", device=None)


def test_destroy_soft_deletes_and_releases_quota(db: Database) -> None:
    volume = _volume(db, size=4)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.DELETING})
    assert db.volume_destroy(volume.id)
    assert not db.volume_destroy(volume.id)
    with pytest.raises(exception.VolumeNotFound):
        db.volume_get(volume.id)
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 0}


def test_quota_exceeded_reserves_nothing(conf, db: Database) -> None:
    db.quota_limits["gigabytes"] = 5
    _volume(db, size=4)
    with pytest.raises(exception.QuotaExceeded, match="gigabytes"):
        _volume(db, size=2)
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 4}
    assert len(db.volume_list("p1")) == 1


def test_release_never_takes_usage_below_zero(db: Database) -> None:
    db.run(lambda s: quota.reserve(s, db.quota_limits, "p1", {"gigabytes": 2}))
    db.run(lambda s: quota.release(s, "p1", {"gigabytes": 5}))
    assert quota_usage(db, "p1")["gigabytes"] == 0


def test_extend_reserves_the_difference_and_failure_gives_it_back(db: Database) -> None:
    volume = _volume(db, size=2)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    with pytest.raises(exception.InvalidInput, match="larger"):
        db.volume_begin_extend(volume.id, 1)
    extending = db.volume_begin_extend(volume.id, 5)
    assert (extending.status, extending.target_size) == (states.EXTENDING, 5)
    assert quota_usage(db, "p1")["gigabytes"] == 5
    assert db.volume_fail_extend(volume.id, "lvextend failed")
    assert quota_usage(db, "p1")["gigabytes"] == 2
    assert db.volume_get(volume.id).status == states.ERROR_EXTENDING


def test_finished_extend_sets_the_new_size(db: Database) -> None:
    volume = _volume(db, size=2)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    db.volume_begin_extend(volume.id, 3)
    assert db.volume_finish_extend_settled(volume.id)
    extended = db.volume_get(volume.id)
    assert (extended.size, extended.status, extended.target_size) == (3, states.AVAILABLE, None)


def test_volume_with_snapshots_cannot_be_deleted(db: Database) -> None:
    volume = _volume(db, size=2)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    snapshot = db.snapshot_create(volume.id, project_id="p1", user_id="u1",
                                  display_name="s")
    assert snapshot.size == 2 and snapshot.host == "node1"
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 4, "snapshots": 1}
    with pytest.raises(exception.VolumeHasSnapshots):
        db.volume_transition_or_raise(volume.id, states.CAN_DELETE_FROM,
                                      {"status": states.DELETING}, no_snapshots=True)
    db.snapshot_transition(snapshot.id, [states.SNAP_CREATING], {"status": states.SNAP_DELETING})
    assert db.snapshot_destroy(snapshot.id)
    assert quota_usage(db, "p1")["snapshots"] == 0
    db.volume_transition_or_raise(volume.id, states.CAN_DELETE_FROM,
                                  {"status": states.DELETING}, no_snapshots=True)


def test_snapshot_of_a_creating_volume_is_refused(db: Database) -> None:
    volume = _volume(db)
    with pytest.raises(exception.VolumeStatusConflict):
        db.snapshot_create(volume.id, project_id="p1", user_id="u1")


def test_list_pages_newest_first_with_marker_and_filters(db: Database) -> None:
    created = [_volume(db, display_name=f"v{i}") for i in range(5)]
    first_page = db.volume_list("p1", limit=2)
    assert [v.display_name for v in first_page] == ["v4", "v3"]
    second_page = db.volume_list("p1", limit=2, marker=first_page[-1].id)
    assert [v.display_name for v in second_page] == ["v2", "v1"]
    assert [v.id for v in db.volume_list("p1", filters={"display_name": "v0"})] == [
        created[0].id]
    assert len(db.volume_list("p1", offset=4)) == 1


def test_recovery_claim_is_won_once_per_stale_period(db: Database) -> None:
    volume = _volume(db)
    later = db.volume_get(volume.id).status_changed_at
    assert [v.id for v in db.volumes_stuck("node1", later)] == [volume.id]
    assert db.volume_claim_recovery(volume.id, states.CREATING, later) == 1
    assert db.volume_claim_recovery(volume.id, states.CREATING, later) is None


def test_heartbeat_registers_then_updates_a_service(db: Database) -> None:
    db.service_heartbeat("node1", "volmgr-volume", "volmgr-volume", {"free_capacity_gb": 10})
    db.service_heartbeat("node1", "volmgr-volume", "volmgr-volume", {"free_capacity_gb": 9})
    (service,) = db.service_list()
    assert service.report_count == 2 and service.capabilities == {"free_capacity_gb": 9}
    assert [s.host for s in db.services_up("volmgr-volume", 60)] == ["node1"]
    db.service_set_disabled("node1", "volmgr-volume", True, "maintenance")
    assert db.services_up("volmgr-volume", 60) == []
    with pytest.raises(exception.ServiceNotFound):
        db.service_set_disabled("nowhere", "volmgr-volume", True)


def test_a_failed_extend_can_be_retried(db: Database) -> None:
    volume = _volume(db, size=2)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    db.volume_begin_extend(volume.id, 3)
    db.volume_fail_extend(volume.id, "lvextend failed")
    retried = db.volume_begin_extend(volume.id, 3)
    assert (retried.status, retried.target_size, retried.status_reason) == (
        states.EXTENDING, 3, None)
    assert quota_usage(db, "p1")["gigabytes"] == 3


def test_attach_completes_both_rows_or_neither(db: Database) -> None:
    volume = _volume(db)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    attachment = db.attachment_begin(volume.id, server_id="s1", device=None)
    db.run(lambda s: s.execute(sa.update(models.VolumeAttachment).where(
        models.VolumeAttachment.id == attachment.id).values(
        attach_status=states.ATTACH_DETACHING)))
    assert not db.attach_complete(volume.id, attachment.id, {"driver_volume_type": "iscsi"})
    assert db.volume_get(volume.id).status == states.ATTACHING


def test_force_delete_of_an_extending_volume_gives_all_its_gigabytes_back(db: Database) -> None:
    volume = _volume(db, size=1)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    db.volume_begin_extend(volume.id, 5)
    db.volume_force_delete_begin(volume.id)
    assert db.volume_destroy(volume.id)
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 0}


def test_resetting_a_stuck_extend_gives_its_reservation_back(db: Database) -> None:
    volume = _volume(db, size=1)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    db.volume_begin_extend(volume.id, 5)
    assert db.volume_reset_state(volume.id, states.EXTENDING, states.AVAILABLE, "reset")
    reset = db.volume_get(volume.id)
    assert (reset.status, reset.size, reset.target_size) == (states.AVAILABLE, 1, None)
    assert quota_usage(db, "p1")["gigabytes"] == 1


def test_a_volume_from_a_snapshot_being_deleted_is_refused(db: Database) -> None:
    volume = _volume(db, size=1)
    db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
    snapshot = db.snapshot_create(volume.id, project_id="p1", user_id="u1")
    db.snapshot_transition(snapshot.id, [states.SNAP_CREATING], {"status": states.SNAP_DELETING})
    with pytest.raises(exception.SnapshotStatusConflict, match="deleting"):
        db.volume_create(project_id="p1", user_id="u1", size=1, snapshot_id=snapshot.id)


def test_a_first_reservation_that_another_request_committed_meanwhile_still_reserves(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quota's guarded UPDATE runs first and matches nothing when the project has no
    usage row yet; if a concurrent first reservation commits that row before this one
    looks for it, the UPDATE is tried again (found by volmgr-bench: a create answered
    413 'in use 1, limit -1' at unlimited quota)."""
    look_for_row = quota._ensure_usage_row
    usage = models.table(models.QuotaUsage)

    def committed_meanwhile(session: Any, project_id: str, resource: str) -> None:
        session.execute(sa.insert(usage).values(
            project_id=project_id, resource=resource, in_use=1,
            created_at=models.utcnow(), updated_at=models.utcnow()))
        look_for_row(session, project_id, resource)
    monkeypatch.setattr(quota, "_ensure_usage_row", committed_meanwhile)
    db.volume_create(project_id="fresh", user_id="u1", size=3)
    assert quota_usage(db, "fresh") == {"volumes": 2, "gigabytes": 4}


def test_a_created_volume_is_exactly_the_row_written(db: Database) -> None:
    """``volume_create`` returns the new row without reading it back (a Core INSERT
    with the columns' Python-side defaults filled in by ``insert_new``): every column
    of what it returns equals what a read of the row finds."""
    created = db.volume_create(project_id="p1", user_id="u1", size=2, host="node1",
                               display_name="n", metadata={"k": "v"})
    stored = db.volume_get(created.id)
    columns = [attr.key for attr in sa.inspect(models.Volume).column_attrs]
    assert {key: getattr(created, key) for key in columns} == {
        key: getattr(stored, key) for key in columns}
    assert created.attachments == []
    assert created.id and created.created_at is not None and created.deleted is False


def test_placement_view_shows_up_hosts_with_what_they_promised_since_their_report(
        db: Database) -> None:
    """One read for a placement: the enabled, recently heard-from hosts by name, each
    with the GiB of its volumes still creating or placed after its last heartbeat."""
    for host in ("node-b", "node-a", "node-off", "node-silent"):
        db.service_heartbeat(host, "volmgr-volume", "volmgr-volume")
    db.service_heartbeat("api-host", "volmgr-api", "volmgr-api")
    db.service_set_disabled("node-off", "volmgr-volume", True, None)
    with db.transaction() as session:
        session.execute(sa.update(models.Service).where(models.Service.host == "node-silent")
                        .values(last_heartbeat=models.utcnow() - datetime.timedelta(hours=1)))
    reported = db.volume_create(project_id="p1", user_id="u1", size=5, host="node-a")
    db.volume_transition(reported.id, [states.CREATING], {"status": states.AVAILABLE})
    with db.transaction() as session:  # created before node-a's last report: counted there
        session.execute(sa.update(models.Volume).where(models.Volume.id == reported.id)
                        .values(created_at=models.utcnow() - datetime.timedelta(minutes=5)))
    db.volume_create(project_id="p1", user_id="u1", size=2, host="node-a")  # creating
    db.volume_create(project_id="p1", user_id="u1", size=3, host="node-b")  # creating
    db.volume_create(project_id="p1", user_id="u1", size=7, host="node-silent")
    gone = db.volume_create(project_id="p1", user_id="u1", size=11, host="node-b")
    db.volume_destroy(gone.id, expected=(states.CREATING,))

    services, promised = db.placement_view("volmgr-volume", down_time=60)

    assert [service.host for service in services] == ["node-a", "node-b"]
    assert promised == {"node-a": 2, "node-b": 3}
