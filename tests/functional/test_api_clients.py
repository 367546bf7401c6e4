"""volmgr-api end to end with real clients: a ``volmgr-api`` process (gunicorn, 2
workers) and two ``volmgr-volume`` processes over the real RabbitMQ and a scratch
PostgreSQL database; one manager drives LVM on a loop-device VG, the other the file
driver exported by a private tgtd.

The python-cinderclient CLI and openstacksdk create, list, show, extend and delete
volumes (``lvs`` follows along) and create, list and delete snapshots (on the file
driver: LVM snapshots need device-mapper, which this kernel lacks). A volume is attached
through the seed face with a connector, and the export is proven with libiscsi using the
CHAP credentials the API returned. Which manager gets a volume is the scheduler's choice;
the test steers it by disabling the other service, as an operator would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests
from defusedxml import ElementTree as SafeET

from tests import services
from tests.functional import storage_env
from tests.functional.storage_env import LoopVG, Tgtd, loop_vg, tgtd  # noqa: F401
from tests.functional.volume_daemon import wait_for
from volmgr import rpc
from volmgr.db import Database

GiB = 1024 ** 3
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
SEED_EXTENSION = {"updated": "2011-03-25T00:00:00+00:00", "name": "Volumes", "links": [],
                  "namespace": "http://docs.openstack.org/ext/volumes/api/v1.1",
                  "alias": "os-volumes", "description": "Volumes support"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines += [f"[{section}]", *(f"{key} = {value}" for key, value in values.items()), ""]
    path.write_text("\n".join(lines))
    return path


class Process:
    """One volmgr program started with ``--config-file``; its output goes to a log."""

    def __init__(self, program: str, config: Path, log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [str(BIN / program), "--config-file", str(config)], stdout=out,
                stderr=out, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return int(self.popen.returncode)


class World:
    """The processes, clients and names of this test."""

    def __init__(self, tmp: Path, db: Database, db_url: str, rabbit_url: str) -> None:
        self.tmp, self.db, self.db_url, self.rabbit_url = tmp, db, db_url, rabbit_url
        suffix = uuid.uuid4().hex[:8]
        self.project, self.user = f"fnproj-{suffix}", f"fnuser-{suffix}"
        self.lvm_host, self.file_host = f"fapi-lvm-{suffix}", f"fapi-file-{suffix}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: list[Process] = []

    def common(self, host: str) -> dict[str, dict[str, Any]]:
        return {
            "DEFAULT": {"host": host, "transport_url": self.rabbit_url,
                        "state_path": self.tmp / host, "auth_strategy": "noauth"},
            "database": {"connection": self.db_url},
            "oslo_messaging_rabbit": {"rabbit_retry_interval": 1,
                                      "rabbit_retry_backoff": 1, "rabbit_interval_max": 3},
        }

    def start(self, program: str, name: str, sections: dict[str, dict[str, Any]]) -> Process:
        config = write_config(self.tmp / f"{name}.conf", sections)
        process = Process(program, config, self.tmp / f"{name}.log")
        self.processes.append(process)
        return process

    def start_api(self) -> None:
        sections = self.common(f"fapi-api-{self.port}")
        sections["api"] = {"bind_host": "127.0.0.1", "bind_port": self.port, "workers": 2}
        api = self.start("volmgr-api", "api", sections)

        def healthy() -> bool:
            assert api.alive(), f"volmgr-api exited:\n{api.text()}"
            try:
                return requests.get(f"{self.base}/healthcheck", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or still booting
                return False
        wait_for(healthy, 60, "volmgr-api /healthcheck")

    def start_managers(self, vg: LoopVG, target: Tgtd) -> None:
        lvm = self.common(self.lvm_host)
        lvm["volume"] = {"driver": "lvm", "target_helper": "tgtadm", "report_interval": 1,
                         "tgt_control_port": target.control_port,
                         "target_ip_address": "127.0.0.1", "target_port": target.portal_port}
        lvm["lvm"] = {"volume_group": vg.name, "lvm_conf": vg.lvm_conf,
                      "device_dir": vg.device_dir, "volume_clear": "none"}
        files = self.common(self.file_host)
        files["volume"] = {"driver": "file", "target_helper": "tgtadm", "report_interval": 1,
                           "tgt_control_port": target.control_port,
                           "target_ip_address": "127.0.0.1", "target_port": target.portal_port,
                           "target_files_dir": self.tmp / "targets"}
        files["file"] = {"volumes_dir": self.tmp / "file-volumes"}
        daemons = [self.start("volmgr-volume", "volume-lvm", lvm),
                   self.start("volmgr-volume", "volume-file", files)]

        def both_up() -> bool:
            for daemon in daemons:
                assert daemon.alive(), f"volmgr-volume exited:\n{daemon.text()}"
            hosts = {s.host for s in self.db.services_up(rpc.TOPIC, 60)
                     if "free_capacity_gb" in (s.capabilities or {})}
            return {self.lvm_host, self.file_host} <= hosts
        wait_for(both_up, 90, "both volume services to report capacity")

    def only(self, host: str) -> None:
        """Leave just ``host`` enabled, so the scheduler must pick it."""
        for other in (self.lvm_host, self.file_host):
            self.db.service_set_disabled(other, rpc.TOPIC, other != host, "test steering")

    # -- clients ---------------------------------------------------------------------

    def cinder(self, *args: str) -> str:
        argv = [str(BIN / "cinder"), "--os-auth-type", "noauth", "--os-user-id", self.user,
                "--os-project-id", self.project, "--os-endpoint", f"{self.base}/v3", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, f"cinder {' '.join(args)}: {result.stderr}"
        return result.stdout

    def sdk(self) -> Any:
        endpoint = f"{self.base}/v3/{self.project}"
        return openstack.connect(
            auth_type="admin_token", auth={"token": f"{self.user}:{self.project}",
                                           "endpoint": endpoint},
            block_storage_endpoint_override=endpoint, block_storage_api_version="3",
            load_yaml_config=False, load_envvars=False)

    def http(self, method: str, path: str, token: str | None = None,
             **kwargs: Any) -> requests.Response:
        headers = {"X-Auth-Token": token or f"{self.user}:{self.project}",
                   **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=30,
                                **kwargs)

    def volume(self, volume_id: str) -> dict[str, Any] | None:
        answer = self.http("GET", f"/v3/{self.project}/volumes/{volume_id}")
        return None if answer.status_code == 404 else answer.json()["volume"]

    def wait_volume(self, volume_id: str, status: str, size: int | None = None) -> None:
        def reached() -> bool:
            volume = self.volume(volume_id)
            assert volume is None or not volume["status"].startswith("error"), volume
            return volume is not None and volume["status"] == status and (
                size is None or volume["size"] == size)
        wait_for(reached, 60, f"volume {volume_id} {status}")

    def wait_gone(self, volume_id: str) -> None:
        wait_for(lambda: self.volume(volume_id) is None, 60, f"volume {volume_id} deleted")

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        delete_queues(self.rabbit_url, [f"{rpc.TOPIC}.{self.lvm_host}",
                                        f"{rpc.TOPIC}.{self.file_host}"])


def delete_queues(rabbit_url: str, names: list[str]) -> None:
    """Remove this test's queues from the shared broker."""
    import kombu

    try:
        with kombu.Connection(rabbit_url.replace("rabbit://", "amqp://", 1),
                              connect_timeout=5) as connection:
            for name in names:
                try:
                    connection.channel().queue_delete(name)
                except Exception:  # a queue that is already gone
                    pass
    except Exception as error:  # cleanup only: never hide the test's own result
        print(f"could not delete queues {names}: {error}", file=sys.stderr)


def table_value(output: str, key: str) -> str:
    """A property from cinderclient's ``| Property | Value |`` table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == key:
            return cells[1]
    raise AssertionError(f"{key} not in:\n{output}")


@pytest.fixture
def world(tmp_path: Path, postgres_db: Database, postgres_url: str, rabbit_url: str,
          loop_vg: LoopVG, tgtd: Tgtd) -> Iterator[World]:  # noqa: F811
    services.require_binary("iscsi-ls", "iscsi-readcapacity16")
    built = World(tmp_path, postgres_db, postgres_url, rabbit_url)
    try:
        built.start_api()
        built.start_managers(loop_vg, tgtd)
        yield built
    finally:
        built.close()


def test_cinderclient_openstacksdk_and_the_seed_face_drive_real_volumes(
        world: World, loop_vg: LoopVG, tgtd: Tgtd) -> None:  # noqa: F811
    lv = "volume-{}".format

    # -- cinder CLI on LVM: create, list, show, extend, delete ---------------------------
    world.only(world.lvm_host)
    created = world.cinder("create", "--name", "cli-vol", "1")
    volume_id = table_value(created, "id")
    world.wait_volume(volume_id, "available")
    assert loop_vg.lvs() == {lv(volume_id): GiB}
    assert volume_id in world.cinder("list")
    shown = world.cinder("show", "cli-vol")
    assert (table_value(shown, "id"), table_value(shown, "status")) == (volume_id,
                                                                         "available")
    world.cinder("extend", volume_id, "2")
    world.wait_volume(volume_id, "available", size=2)
    assert loop_vg.lvs() == {lv(volume_id): 2 * GiB}
    world.cinder("delete", volume_id)
    world.wait_gone(volume_id)
    assert loop_vg.lvs() == {}

    # -- attach an LVM volume through the seed face: the LV itself, exported by tgtd -----
    # This kernel has no device-mapper, so the fixture stands in for activation: a loop
    # device over the LV's extents at the path the driver exports (storage_env.py).
    lvm_volume = table_value(world.cinder("create", "--name", "lvm-attach", "1"), "id")
    world.wait_volume(lvm_volume, "available")
    loop_vg.activate(lv(lvm_volume))
    seed = f"/v1.1/{world.project}"
    connector = {"initiator": storage_env.INITIATOR_IQN, "host": "compute-1",
                 "ip": "127.0.0.1"}
    lvm_path = f"{seed}/servers/server-lvm/os-volume_attachments/{lvm_volume}"
    attached = world.http("POST", f"{seed}/servers/server-lvm/os-volume_attachments", json={
        "volumeAttachment": {"volumeId": lvm_volume, "device": "/dev/vdc",
                             "connector": connector}})
    assert attached.status_code == 202, attached.text
    world.wait_volume(lvm_volume, "in-use")
    info = world.http("GET", lvm_path).json()["volumeAttachment"]["connection_info"]
    username, password = storage_env.connection_chap(info)
    assert storage_env.read_capacity(tgtd.portal, info["data"]["target_iqn"],
                                     info["data"]["target_lun"], username, password) == GiB
    assert world.http("DELETE", lvm_path).status_code == 202
    world.wait_volume(lvm_volume, "available")
    assert tgtd.target_iqns() == set()
    loop_vg.deactivate(lv(lvm_volume))
    world.cinder("delete", lvm_volume)
    world.wait_gone(lvm_volume)
    assert loop_vg.lvs() == {}

    # -- openstacksdk on LVM -------------------------------------------------------------
    conn = world.sdk()
    volume = conn.block_storage.create_volume(size=1, name="sdk-vol")
    conn.block_storage.wait_for_status(volume, "available", failures=["error"],
                                       interval=0.5, wait=60)
    assert loop_vg.lvs() == {lv(volume.id): GiB}
    assert volume.id in [v.id for v in conn.block_storage.volumes()]
    assert conn.block_storage.get_volume(volume.id).name == "sdk-vol"
    conn.block_storage.extend_volume(volume, 2)
    world.wait_volume(volume.id, "available", size=2)
    assert loop_vg.lvs() == {lv(volume.id): 2 * GiB}
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, interval=0.5, wait=60)
    assert loop_vg.lvs() == {}

    # -- snapshots on the file driver, through the CLI and the SDK -----------------------
    world.only(world.file_host)
    file_volume = table_value(world.cinder("create", "--name", "file-vol", "1"), "id")
    world.wait_volume(file_volume, "available")
    assert (world.tmp / "file-volumes" / lv(file_volume)).exists()
    snapshot_id = table_value(world.cinder("snapshot-create", "--name", "cli-snap",
                                           file_volume), "id")
    wait_for(lambda: snapshot_id in world.cinder("snapshot-list") and "available" in [
        line.split("|")[3].strip() for line in world.cinder("snapshot-list").splitlines()
        if snapshot_id in line], 60, "snapshot available")
    world.cinder("snapshot-delete", snapshot_id)
    wait_for(lambda: snapshot_id not in world.cinder("snapshot-list"), 60,
             "snapshot deleted")
    snapshot = conn.block_storage.create_snapshot(volume_id=file_volume, name="sdk-snap")
    conn.block_storage.wait_for_status(snapshot, "available", failures=["error"],
                                       interval=0.5, wait=60)
    assert snapshot.id in [s.id for s in conn.block_storage.snapshots()]
    conn.block_storage.delete_snapshot(snapshot)
    conn.block_storage.wait_for_delete(snapshot, interval=0.5, wait=60)

    # -- the seed face: extensions, attach with a connector, export proven, detach -------
    assert world.http("GET", f"{seed}/extensions").json() == {"extensions": [SEED_EXTENSION]}
    xml = SafeET.fromstring(world.http("GET", f"{seed}/extensions.xml").content)
    assert xml.find("{http://docs.openstack.org/compute/api/v1.1}extension").get(
        "alias") == "os-volumes"  # type: ignore[union-attr]
    attached = world.http("POST", f"{seed}/servers/server-1/os-volume_attachments", json={
        "volumeAttachment": {"volumeId": file_volume, "device": "/dev/vdb",
                             "connector": connector}})
    assert attached.status_code == 202, attached.text
    world.wait_volume(file_volume, "in-use")
    path = f"{seed}/servers/server-1/os-volume_attachments/{file_volume}"
    info = world.http("GET", path).json()["volumeAttachment"]["connection_info"]
    data = info["data"]
    assert (info["driver_volume_type"], data["auth_method"]) == ("iscsi", "CHAP")
    assert data["target_portal"] == tgtd.portal
    username, password = storage_env.connection_chap(info)
    assert storage_env.read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"],
                                     username, password) == GiB
    listing = storage_env.iscsi_ls(tgtd.portal, username, password)
    assert data["target_iqn"] in listing.stdout, listing.stderr
    assert storage_env.read_capacity(tgtd.portal, data["target_iqn"], data["target_lun"],
                                     username, "wrong-secret") is None

    # -- another project sees nothing of it ----------------------------------------------
    other = "intruder:otherproj"
    for method, other_path, body in [
            ("GET", f"/v3/otherproj/volumes/{file_volume}", None),
            ("DELETE", f"/v3/otherproj/volumes/{file_volume}", None),
            ("POST", f"/v3/otherproj/volumes/{file_volume}/action",
             {"os-extend": {"new_size": 5}}),
            ("GET", f"/v1.1/otherproj/os-volumes/{file_volume}", None),
            ("GET", f"/v1.1/otherproj/servers/server-1/os-volume_attachments/{file_volume}",
             None),
            ("POST", "/v1.1/otherproj/servers/server-9/os-volume_attachments",
             {"volumeAttachment": {"volumeId": file_volume}})]:
        answer = world.http(method, other_path, token=other, json=body)
        assert answer.status_code == 404, (method, other_path, answer.text)
        assert "itemNotFound" in answer.json()

    detached = world.http("DELETE", path)
    assert detached.status_code == 202
    world.wait_volume(file_volume, "available")
    assert tgtd.target_iqns() == set()
    world.cinder("delete", file_volume)
    world.wait_gone(file_volume)
    assert not (world.tmp / "file-volumes" / lv(file_volume)).exists()
    for process in world.processes:
        assert process.alive(), process.text()
    api = world.processes[0]
    assert api.stop() == 0
    assert "Traceback" not in api.text(), api.text()
