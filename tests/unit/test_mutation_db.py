"""Promises of the data layer that a mutation-testing run found unpinned (see
docs/decisions.md, "Mutation testing"): the admin's reset touches only its own volume,
recovery claims only what has been stuck long enough, an attachment's time of attach,
a multiattach volume stays in use while another attachment lives, a snapshot is
destroyed only from the status its caller expects, access grants are per type and
per project."""

from __future__ import annotations

import datetime

import pytest

from tests.db_reads import quota_usage
from volmgr import exception, states
from volmgr.db import Database, models


def _available(db: Database, *, multiattach: bool = False) -> str:
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host="node1",
                              multiattach=multiattach)
    assert db.volume_transition(volume.id, (states.CREATING,), {"status": states.AVAILABLE})
    return volume.id


def _attached(db: Database, volume_id: str, server: str) -> str:
    """A v3 attachment walked to attached: reserve, connect, complete."""
    attachment = db.attachment_reserve(volume_id, server_id=server, project_id="p1",
                                       flow=states.FLOW_V3)
    db.attachment_connect_begin(attachment.id, {"initiator": f"iqn.{server}"})
    assert db.attachment_connect_done(attachment.id, {"driver_volume_type": "iscsi",
                                                      "data": {}})
    db.attachment_complete(attachment.id, server_id=server)
    return attachment.id


def test_resetting_one_volumes_attach_status_leaves_other_volumes_attachments_alone(
        db: Database) -> None:
    mine, other = _available(db), _available(db)
    my_attachment, other_attachment = _attached(db, mine, "s1"), _attached(db, other, "s2")
    db.volume_reset_status(mine, status=None, attach_status=states.ATTACH_ERROR_DETACHING)
    assert db.attachment_get(my_attachment).attach_status == states.ATTACH_ERROR_DETACHING
    assert db.attachment_get(other_attachment).attach_status == states.ATTACH_ATTACHED
    db.volume_reset_status(mine, status=states.AVAILABLE,
                           attach_status=states.ATTACH_DETACHED)
    assert db.attachment_list(volume_id=mine) == []
    assert [a.id for a in db.attachment_list(volume_id=other)] == [other_attachment]


def test_a_reset_to_an_error_status_keeps_the_reason_and_a_reset_out_of_error_clears_it(
        db: Database) -> None:
    volume_id = _available(db)
    assert db.volume_reset_status(volume_id, status=states.ERROR,
                                  reason="disk pulled").status_reason == "disk pulled"
    assert db.volume_reset_status(volume_id, status=states.AVAILABLE,
                                  reason="fixed").status_reason is None


def test_recovery_does_not_claim_a_snapshot_whose_status_changed_after_the_cut_off(
        db: Database) -> None:
    volume_id = _available(db)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    an_hour_ago = models.utcnow() - datetime.timedelta(hours=1)
    assert db.snapshot_claim_recovery(snapshot.id, states.SNAP_CREATING, an_hour_ago) is None
    assert db.snapshot_get(snapshot.id).recovery_attempts == 0
    later = models.utcnow() + datetime.timedelta(seconds=1)
    assert db.snapshot_claim_recovery(snapshot.id, states.SNAP_CREATING, later) == 1


def test_completing_an_attach_stamps_the_attach_time_once(db: Database) -> None:
    volume_id = _available(db)
    attachment_id = _attached(db, volume_id, "s1")
    attached_at = db.attachment_get(attachment_id).attached_at
    assert attached_at is not None
    db.attachment_complete(attachment_id, device="/dev/vdc")
    again = db.attachment_get(attachment_id)
    assert (again.attached_at, again.device) == (attached_at, "/dev/vdc")


def test_ending_one_of_two_attachments_of_a_multiattach_volume_keeps_it_in_use(
        db: Database) -> None:
    volume_id = _available(db, multiattach=True)
    first = _attached(db, volume_id, "s1")
    _attached(db, volume_id, "s2")
    db.attachment_begin_delete(first, project_id="p1")
    assert db.volume_get(volume_id).status == states.IN_USE
    assert db.attachment_get(first).attach_status == states.ATTACH_DETACHING


def test_a_snapshot_is_destroyed_only_from_the_status_the_caller_expects(
        db: Database) -> None:
    volume_id = _available(db)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    assert db.snapshot_transition(snapshot.id, (states.SNAP_CREATING,),
                                  {"status": states.SNAP_AVAILABLE})
    assert db.snapshot_destroy(snapshot.id) is False  # expects deleting
    assert db.snapshot_get(snapshot.id).status == states.SNAP_AVAILABLE
    assert quota_usage(db, "p1")["snapshots"] == 1


def test_access_to_one_private_type_does_not_block_a_grant_to_another(
        db: Database) -> None:
    gold = db.volume_type_create("gold", is_public=False)
    silver = db.volume_type_create("silver", is_public=False)
    db.volume_type_access_add(gold.id, "p2")
    db.volume_type_access_add(silver.id, "p2")
    db.volume_type_access_add(gold.id, "p3")
    assert sorted(db.volume_type_access_list(gold.id)) == ["p2", "p3"]
    assert db.volume_type_access_list(silver.id) == ["p2"]
    with pytest.raises(exception.VolumeTypeAccessExists):
        db.volume_type_access_add(gold.id, "p3")
