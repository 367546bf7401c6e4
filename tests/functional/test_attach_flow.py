"""The attach flow a compute host really uses, on real processes: ``volmgr-api`` and
``volmgr-volume`` over RabbitMQ and PostgreSQL, a private tgtd, and python-cinderclient's
own calls at 3.54 (``attachments.create/update/complete/delete``) and the legacy volume
actions (``reserve``, ``initialize_connection``, ``attach``, ``begin_detaching``,
``terminate_connection``, ``detach``). After each step an initiator (libiscsi) shows
what the storage host really offers: the CHAP secret from the reply admits the connector's
initiator, a stranger is refused, an online extend at 3.42 is seen at the new size, two
initiators share a multiattach volume, and a manager killed with SIGKILL in the middle of
a flow leaves, after its recovery, targets, ACLs and attachments agreeing with the
database."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.storage_env import (  # noqa: F401
    RecordingExecutor,
    Tgtd,
    connection_chap,
    iscsi_ls,
    loop_vg,
    read_capacity,
    tgtd,
)
from tests.functional.test_walkthrough import Walk, table_value
from tests.functional.volume_daemon import Daemon, wait_for
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers import loader

GiB = 1024 ** 3
INI1 = "iqn.1993-08.org.debian:01:compute-one"
INI2 = "iqn.1993-08.org.debian:01:compute-two"
STRANGER = "iqn.1993-08.org.debian:01:stranger"


def connector(initiator: str, host: str) -> dict[str, Any]:
    return {"initiator": initiator, "host": host, "ip": "127.0.0.1", "platform": "x86_64",
            "os_type": "linux", "multipath": False}


class AttachWalk(Walk):
    """The walkthrough's host with a short recovery age, plus cinderclient at 3.54."""

    def __init__(self, tmp: Path, db_url: str, rabbit_url: str, target: Tgtd) -> None:
        super().__init__(tmp, db_url, rabbit_url, target)
        text = self.config.read_text()
        text = text.replace("[volume]\n", "[volume]\nrecovery_age = 2\nrecovery_interval = 1\n")
        self.config.write_text(text.replace("[api]\n", "[api]\nrpc_call_timeout = 5\n"))
        self.target = target

    def client(self, version: str = "3.54", admin: bool = False) -> Any:
        from cinderclient import client as cinder_client
        from cinderclient.contrib import noauth
        from keystoneauth1 import session
        auth = noauth.CinderNoAuthPlugin("me", self.project, endpoint=f"{self.base}/v3")
        headers = {"X-Roles": "admin"} if admin else {}
        return cinder_client.Client(version, session=session.Session(
            auth=auth, additional_headers=headers))

    def new_volume(self, size: int = 1, **fields: Any) -> str:
        volume = self.client().volumes.create(size, **fields)
        self.wait("volume", volume.id, "available")
        return str(volume.id)

    def status(self, volume_id: str) -> str:
        volume = self.v3("volume", volume_id)
        assert volume is not None
        return str(volume["status"])

    def sees(self, info: dict[str, Any], initiator: str) -> int | None:
        """The LUN's size as ``initiator`` reads it with the reply's CHAP; None: refused."""
        data = info["data"]
        return read_capacity(self.target.portal, data["target_iqn"], data["target_lun"],
                             *connection_chap(info), initiator=initiator)

    def iqns(self) -> set[str]:
        return self.target.target_iqns()

    def restart_volume_daemon(self) -> None:
        assert self.volume is not None
        self.volume.kill9()
        self.volume.close()
        self.volume = Daemon(self.config, self.tmp).start()


@pytest.fixture
def walk(tmp_path: Path, postgres_url: str, rabbit_url: str,
         tgtd: Tgtd) -> Iterator[AttachWalk]:  # noqa: F811
    built = AttachWalk(tmp_path, postgres_url, rabbit_url, tgtd)
    try:
        built.manage("db", "sync")
        built.start()
        yield built
    finally:
        built.close()


def test_v3_attachments_at_354_export_admit_only_the_connector_and_extend_online(
        walk: AttachWalk) -> None:
    cinder = walk.client()
    volume_id = walk.new_volume()
    reserved = cinder.attachments.create(volume_id, None, instance_id="server-1")
    assert (reserved["status"], walk.status(volume_id)) == ("reserved", "reserved")
    assert walk.iqns() == set(), "a reservation exports nothing"

    updated = cinder.attachments.update(reserved["id"], connector(INI1, "compute-1"))
    info = updated.connection_info
    assert info["driver_volume_type"] == "iscsi"
    assert set(info["data"]) >= {"target_iqn", "target_portal", "target_portals",
                                 "target_lun", "target_luns", "auth_method",
                                 "auth_username", "auth_password", "discard",
                                 "encrypted", "qos_specs", "access_mode"}
    assert walk.sees(info, INI1) == GiB, "the connector's initiator reads the LUN"
    assert walk.sees(info, STRANGER) is None, "a stranger with the secret is refused"
    assert read_capacity(walk.target.portal, info["data"]["target_iqn"],
                         info["data"]["target_lun"], info["data"]["auth_username"],
                         "WrongSecret12345", initiator=INI1) is None, "a wrong secret fails"
    assert "Authentication failure" in iscsi_ls(
        walk.target.portal, info["data"]["auth_username"], "WrongSecret12345",
        initiator=INI1).stdout

    cinder.attachments.complete(reserved["id"])
    assert walk.status(volume_id) == "in-use"

    # Online extend at 3.42: the logged-in initiator's next READ CAPACITY shows it.
    cinder.volumes.extend(volume_id, 2)
    walk.wait("volume", volume_id, "in-use", size=2)
    assert walk.sees(info, INI1) == 2 * GiB

    # The cinder CLI's own attachment commands at 3.54 read the same attachment.
    cli = ("--os-volume-api-version", "3.54")
    assert reserved["id"] in walk.cinder(*cli, "attachment-list", "--volume-id", volume_id)
    shown = walk.cinder(*cli, "attachment-show", reserved["id"])
    assert "attached" in shown and "server-1" in shown

    remaining = cinder.attachments.delete(reserved["id"])
    assert remaining is not None
    walk.wait("volume", volume_id, "available")
    assert walk.iqns() == set() and walk.sees(info, INI1) is None


def test_the_cinder_cli_attachment_commands_walk_the_flow(walk: AttachWalk) -> None:
    cli = ("--os-volume-api-version", "3.54")
    volume_id = walk.new_volume()
    created = walk.cinder(*cli, "attachment-create", "--connect", "True",
                          "--initiator", INI1, "--ip", "127.0.0.1", "--host", "compute-9",
                          "--mode", "rw", volume_id, "server-9")
    attachment_id = table_value(created, "id")
    assert table_value(created, "status") == "attaching"
    walk.cinder(*cli, "attachment-complete", attachment_id)
    assert walk.status(volume_id) == "in-use"
    info = walk.client().attachments.show(attachment_id).connection_info
    assert walk.sees(info, INI1) == GiB and walk.sees(info, STRANGER) is None
    walk.cinder(*cli, "attachment-delete", attachment_id)
    walk.wait("volume", volume_id, "available")
    assert walk.iqns() == set()


def test_legacy_actions_and_the_v3_api_see_one_attachment(walk: AttachWalk) -> None:
    cinder = walk.client()
    volume_id = walk.new_volume()
    cinder.volumes.reserve(volume_id)
    assert walk.status(volume_id) == "attaching"
    info = cinder.volumes.initialize_connection(volume_id, connector(INI1, "compute-1"))
    assert walk.sees(info, INI1) == GiB and walk.sees(info, STRANGER) is None
    cinder.volumes.attach(volume_id, "server-7", "/dev/vdb")
    assert walk.status(volume_id) == "in-use"
    (attachment,) = cinder.attachments.list(search_opts={"volume_id": volume_id})
    assert (attachment.instance, attachment.status) == ("server-7", "attached")

    cinder.volumes.begin_detaching(volume_id)
    assert walk.status(volume_id) == "detaching"
    cinder.volumes.roll_detaching(volume_id)
    assert walk.status(volume_id) == "in-use"
    cinder.volumes.begin_detaching(volume_id)
    cinder.volumes.terminate_connection(volume_id, connector(INI1, "compute-1"))
    assert walk.sees(info, INI1) is None, "terminate withdrew the initiator"
    cinder.volumes.detach(volume_id, attachment.id)
    walk.wait("volume", volume_id, "available")
    assert walk.iqns() == set()


def test_multiattach_two_initiators_then_each_detach_removes_only_its_own(
        walk: AttachWalk) -> None:
    admin = walk.client(admin=True)
    kind = admin.volume_types.create(f"multi-{walk.project}")
    kind.set_keys({"multiattach": "<is> True"})
    cinder = walk.client()
    volume_id = walk.new_volume(volume_type=kind.name)
    assert cinder.volumes.get(volume_id).multiattach is True
    made = []
    for server, initiator in (("server-a", INI1), ("server-b", INI2)):
        attachment = cinder.attachments.create(volume_id, connector(initiator, server),
                                               instance_id=server)
        cinder.attachments.complete(attachment["id"])
        made.append(attachment)
    info_a, info_b = (a["connection_info"] for a in made)
    assert walk.sees(info_a, INI1) == GiB and walk.sees(info_b, INI2) == GiB
    assert walk.sees(info_a, STRANGER) is None
    cinder.attachments.delete(made[0]["id"])
    wait_for(lambda: walk.sees(info_a, INI1) is None, 30, "first initiator withdrawn")
    assert walk.sees(info_b, INI2) == GiB, "the other initiator still reads"
    assert walk.status(volume_id) == "in-use"
    cinder.attachments.delete(made[1]["id"])
    walk.wait("volume", volume_id, "available")
    assert walk.iqns() == set()


def test_a_manager_killed_mid_flow_leaves_storage_agreeing_with_the_database(
        walk: AttachWalk) -> None:
    cinder = walk.client()
    # Between reserve and complete: the export is made, the client has not completed.
    first = walk.new_volume()
    pending = cinder.attachments.create(first, connector(INI1, "compute-1"),
                                        instance_id="server-1")
    # Between begin_detaching and detach (legacy).
    second = walk.new_volume()
    cinder.volumes.reserve(second)
    info2 = cinder.volumes.initialize_connection(second, connector(INI2, "compute-2"))
    cinder.volumes.attach(second, "server-2", "/dev/vdc")
    cinder.volumes.begin_detaching(second)

    walk.restart_volume_daemon()

    # The client-driven attach survives (its export restored, only its initiator in);
    # the abandoned begin_detaching is rolled back once recovery_age has passed.
    wait_for(lambda: walk.status(second) == "in-use", 60, "begin_detaching rolled back")
    assert walk.sees(pending["connection_info"], INI1) == GiB
    assert walk.sees(pending["connection_info"], STRANGER) is None
    assert walk.sees(info2, INI2) == GiB
    # Targets and ACLs agree with the database: one target per volume with an admitted
    # connector, admitting exactly that connector's initiator.
    wanted = {pending["connection_info"]["data"]["target_iqn"]: [INI1],
              info2["data"]["target_iqn"]: [INI2]}
    assert walk.iqns() == set(wanted)
    for iqn, initiators in wanted.items():
        assert sorted(e for e in walk.target.acl(iqn) or [] if e.startswith("iqn.")) == \
            initiators
    cinder.attachments.complete(pending["id"])
    assert walk.status(first) == "in-use"
    for attachment in cinder.attachments.list():
        cinder.attachments.delete(attachment.id)
    walk.wait("volume", first, "available")
    walk.wait("volume", second, "available")
    assert walk.iqns() == set()


def test_a_manager_killed_while_it_admits_a_connector_leaves_no_half_made_export(
        walk: AttachWalk) -> None:
    from cinderclient import exceptions as cinder_errors
    cinder = walk.client()
    volume_id = walk.new_volume()
    attachment = cinder.attachments.create(volume_id, None, instance_id="server-1")
    assert walk.volume is not None
    walk.volume.close()
    # A manager that stalls after making the target, before admitting the initiator.
    walk.volume = Daemon(walk.config, walk.tmp, slow="initialize_connection=120").start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        put = pool.submit(cinder.attachments.update, attachment["id"],
                          connector(INI1, "compute-1"))
        wait_for(lambda: "initialize_connection" in walk.volume.read_log(),  # type: ignore
                 30, "the connect under way")
        assert walk.iqns(), "half-made: the target exists, nobody is admitted yet"
        walk.volume.kill9()
        with pytest.raises(cinder_errors.ClientException) as refused:
            put.result(timeout=60)
    assert refused.value.code == 503, "the call answered nothing within the timeout"
    assert cinder.attachments.show(attachment["id"]).status == "attaching"

    walk.volume.close()
    walk.volume = Daemon(walk.config, walk.tmp).start()
    wait_for(lambda: cinder.attachments.show(attachment["id"]).status == "reserved", 60,
             "recovery undid the connect")
    assert walk.iqns() == set(), "the half-made target was removed"
    assert walk.status(volume_id) == "reserved"
    # The client simply connects again.
    info = cinder.attachments.update(attachment["id"], connector(INI1, "compute-1"))
    assert walk.sees(info.connection_info, INI1) == GiB
    cinder.attachments.delete(attachment["id"])
    walk.wait("volume", volume_id, "available")
    assert walk.iqns() == set()


def test_an_attached_lvm_volume_grows_on_its_live_tgt_lun(conf, tgtd, loop_vg) -> None:  # noqa: F811
    """The LVM side of an online extend: the LV grows by lvextend and the live tgt LUN is
    made again over it, so the initiator reads the new size. (Where device-mapper exists
    the LV's node grows in place; here the activation stand-in is re-made over the grown
    extents, which is what device-mapper does by itself.)"""
    loop_vg.configure(conf)
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=RecordingExecutor())
    driver.check_setup()
    volume = VolumeRef(str(uuid.uuid4()), 1)
    driver.create_volume(volume)
    name = f"volume-{volume.id}"
    loop_vg.activate(name)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, 1, update["provider_location"], update["provider_auth"])
    info = driver.initialize_connection(volume, connector(INI1, "compute-1"))
    data = info["data"]
    assert read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"],
                         *connection_chap(info), initiator=INI1) == GiB
    driver.extend_volume(volume, 2)
    assert loop_vg.lvs()[name] == 2 * GiB
    loop_vg.deactivate(name)
    loop_vg.activate(name)
    driver.refresh_export(VolumeRef(volume.id, 2, volume.provider_location,
                                    volume.provider_auth))
    assert read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"],
                         *connection_chap(info), initiator=INI1) == 2 * GiB
    assert read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"],
                         *connection_chap(info), initiator=STRANGER) is None
    driver.remove_export(volume)
    driver.delete_volume(volume)
    assert tgtd.target_iqns() == set()


def test_an_initiator_reading_throughout_an_online_extend_sees_no_error(
        conf, tgtd) -> None:  # noqa: F811
    """A logged-in initiator with I/O in flight (iscsi-perf, four reads outstanding)
    keeps its session through the LUN refresh, gets no failed command (the target is
    offline, answering BUSY, while LUN 1 is swapped), and READ CAPACITY then shows the
    new size."""
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=RecordingExecutor())
    driver.check_setup()
    volume = VolumeRef(str(uuid.uuid4()), 1)
    driver.create_volume(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, 1, update["provider_location"], update["provider_auth"])
    info = driver.initialize_connection(volume, connector(INI1, "compute-1"))
    user, secret = connection_chap(info)
    data = info["data"]
    url = f"iscsi://{tgtd.portal}/{data['target_iqn']}/{data['target_lun']}"
    perf = subprocess.Popen(
        ["iscsi-perf", "-i", INI1, "-t", "30", "-m", "4", "-n", url],
        env={**os.environ, "LIBISCSI_CHAP_USERNAME": user, "LIBISCSI_CHAP_PASSWORD": secret},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        assert perf.poll() is None, perf.communicate()[0]
        driver.extend_volume(volume, 2)
        driver.refresh_export(VolumeRef(volume.id, 2, volume.provider_location,
                                        volume.provider_auth))
        time.sleep(2)
        assert perf.poll() is None, "the initiator's session survived the refresh"
        assert read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"], user,
                             secret, initiator=INI1) == 2 * GiB
    finally:
        perf.kill()
        output = perf.communicate(timeout=30)[0]
    assert "failed" not in output.lower(), output[-2000:]
    assert "iops" in output, output[-2000:]
    driver.remove_export(volume)
    driver.delete_volume(volume)
