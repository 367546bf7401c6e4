"""What a volume's owner reads in ``status_reason``: the kind of failure and a log
reference, never the host's volume group names, device paths or command lines."""

from __future__ import annotations

import pytest

from volmgr import exception
from volmgr.volume.operations import failure_reason

VG = "secret-vg-name"


@pytest.mark.parametrize("error", [
    exception.ProcessExecutionError(
        cmd=f"lvcreate -n volume-x -L 5g {VG}", exit_code=5,
        stderr=f'  Volume group "{VG}" has insufficient free space (10 extents): 1280 required.'),
    exception.BackendError(reason=f"cannot copy from /dev/{VG}/snapshot-1234: not an active "
                           "block device"),
    exception.BackendError(reason=f"logical volume {VG}/volume-1234 is missing"),
    exception.TargetError(reason=f"tgt-admin could not export iqn.x:{VG}"),
    OSError(13, f"Permission denied: '/dev/{VG}/volume-1'"),
], ids=["lvcreate-stderr", "block-device-path", "missing-lv", "target", "unexpected"])
def test_status_reason_names_no_volume_group_or_device_path(error: Exception) -> None:
    reason = failure_reason(error, "0123456789ab")
    assert VG not in reason and "/dev/" not in reason, reason
    assert reason.endswith("(reference 0123456789ab in the volmgr-volume log)")


def test_a_known_cause_is_reworded_for_the_owner() -> None:
    error = exception.ProcessExecutionError(
        cmd="sudo lvcreate -n volume-x -L 5g vg", exit_code=5,
        stderr='  Volume group "vg" has insufficient free space')
    assert failure_reason(error) == ("storage command lvcreate failed with exit code 5: not "
                                     "enough free space on the storage host")


def test_conflicts_keep_their_own_message() -> None:
    error = exception.VolumeHasSnapshots(volume_id="v1")
    assert failure_reason(error, "ref") == str(error)
