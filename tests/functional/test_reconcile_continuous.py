"""Continuous reconcile against a real tgtd and a real volmgr-volume (reconcile every
second, a three-second grace): an attached volume's target deleted behind volmgr's back
with tgtadm, its ACL changed and its CHAP account removed are each repaired without a
restart, and the initiator reads the LUN again with the same credentials; a stale export
of a detached volume goes after the grace period and not before; an unknown volume is
reported and left alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.storage_env import Tgtd, read_capacity, tgtd  # noqa: F401
from tests.functional.test_attach_flow import INI1, STRANGER, AttachWalk, GiB, connector
from tests.functional.volume_daemon import wait_for
from volmgr import config
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers import loader

INTERVAL = 1
GRACE = 3


@pytest.fixture
def walk(tmp_path: Path, postgres_url: str, rabbit_url: str,
         tgtd: Tgtd) -> Iterator[AttachWalk]:  # noqa: F811
    built = AttachWalk(tmp_path, postgres_url, rabbit_url, tgtd)
    built.config.write_text(built.config.read_text().replace(
        "[volume]\n", f"[volume]\nreconcile_interval = {INTERVAL}\n"
        f"reconcile_grace = {GRACE}\n"))
    try:
        built.manage("db", "sync")
        built.start()
        yield built
    finally:
        built.close()


def tid_of(target: Tgtd, iqn: str) -> str:
    out = target.tgtadm("--op", "show", "--mode", "target").stdout
    return next(line.split(":", 1)[0].split()[1] for line in out.splitlines()
                if line.startswith("Target ") and line.split(": ", 1)[1].strip() == iqn)


def repaired(walk: AttachWalk, info: dict[str, Any], what: str) -> None:
    """Within a few intervals the connector's initiator reads the LUN again, with the
    credentials it was given, and a stranger still cannot."""
    wait_for(lambda: walk.sees(info, INI1) == GiB, 10 * INTERVAL + 5, what, interval=0.5)
    assert walk.sees(info, STRANGER) is None


def wrong_secret_reads(walk: AttachWalk, info: dict[str, Any]) -> bool:
    return read_capacity(walk.target.portal, info["data"]["target_iqn"],
                         info["data"]["target_lun"], info["data"]["auth_username"],
                         "WrongSecret12345", initiator=INI1) is not None


def test_drift_of_an_attached_volumes_export_is_repaired_without_a_restart(
        walk: AttachWalk) -> None:
    cinder = walk.client()
    volume_id = walk.new_volume()
    reserved = cinder.attachments.create(volume_id, None, instance_id="server-1")
    info = cinder.attachments.update(reserved["id"],
                                     connector(INI1, "compute-1")).connection_info
    cinder.attachments.complete(reserved["id"])
    iqn = info["data"]["target_iqn"]
    assert walk.sees(info, INI1) == GiB
    daemon_pid = walk.volume.process.pid  # type: ignore[union-attr]

    # 1. The whole target deleted behind volmgr's back.
    walk.target.tgtadm("--op", "delete", "--mode", "target", "--tid",
                       tid_of(walk.target, iqn), "--force")
    assert iqn not in walk.iqns()
    repaired(walk, info, "the deleted target rebuilt")

    # 2. The ACL changed: the connector's initiator unbound, everyone admitted instead.
    tid = tid_of(walk.target, iqn)
    walk.target.tgtadm("--op", "unbind", "--mode", "target", "--tid", tid,
                       "--initiator-name", INI1)
    walk.target.tgtadm("--op", "bind", "--mode", "target", "--tid", tid, "-I", "ALL")
    assert walk.target.acl(iqn) == ["ALL"]
    assert walk.sees(info, STRANGER) == GiB, "the drift is real: anyone with the secret"
    wait_for(lambda: walk.target.acl(iqn) == [INI1], 10 * INTERVAL + 5, "the ACL put back",
             interval=0.5)
    repaired(walk, info, "the connector's initiator still admitted")

    # 3. The CHAP account removed: tgtd then asks for no authentication at all, so any
    #    secret logs in, until reconcile binds the account again.
    walk.target.tgtadm("--op", "delete", "--mode", "account", "--user",
                       info["data"]["auth_username"])
    assert wrong_secret_reads(walk, info), "the drift is real: no CHAP asked"
    wait_for(lambda: not wrong_secret_reads(walk, info), 10 * INTERVAL + 5,
             "CHAP required again", interval=0.5)
    repaired(walk, info, "the CHAP account back")

    assert walk.volume.process.pid == daemon_pid  # type: ignore[union-attr]
    assert walk.volume.process.poll() is None  # type: ignore[union-attr]
    assert walk.status(volume_id) == "in-use"
    # Each repair is named in the log (and counted by kind in
    # volmgr_reconcile_repairs_total, from the same place).
    log = walk.volume.read_log()  # type: ignore[union-attr]
    assert f"the export of attached volume {volume_id} was missing; rebuilt" in log
    assert f"the export of attached volume {volume_id} had drifted; acl restored" in log
    assert f"the export of attached volume {volume_id} had drifted; chap restored" in log


def test_a_stale_export_goes_after_the_grace_period_and_an_unknown_volume_stays(
        walk: AttachWalk, tmp_path: Path) -> None:
    detached = walk.new_volume()
    # An export left behind (as a crash between tgtadm and the database could leave
    # one), made with volmgr's own target helper from the same configuration.
    driver = loader.load_driver(config.parse_args(["--config-file", str(walk.config)]))
    driver.create_export(VolumeRef(detached, 1))
    iqn = f"iqn.2010-10.org.openstack:volume-{detached}"
    made = time.monotonic()
    assert iqn in walk.iqns()
    # A volume nobody created through volmgr.
    stranger = str(uuid.uuid4())
    image = tmp_path / "state" / "volumes" / f"volume-{stranger}"
    image.write_bytes(b"\0" * 4096)

    wait_for(lambda: iqn not in walk.iqns(), GRACE + 10 * INTERVAL + 5,
             "the stale export removed", interval=0.2)
    assert time.monotonic() - made >= GRACE, "removed before the grace period"
    assert walk.status(detached) == "available"
    time.sleep(2 * INTERVAL)
    assert image.exists() and image.read_bytes() == b"\0" * 4096
    log = walk.volume.read_log()  # type: ignore[union-attr]
    assert f"orphan_lv {stranger}" in log
    assert log.count(f"orphan_lv {stranger}") == 1, "reported once, not every pass"
