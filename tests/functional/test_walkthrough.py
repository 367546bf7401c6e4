"""The operator walkthrough of README.md and docs/operations.md, run as a test: one
config file written the way the docs say (file driver, a private tgtd, RabbitMQ, a
scratch PostgreSQL database), ``volmgr-manage db sync|check``, ``volmgr-volume`` and
``volmgr-api`` started with ``--config-file``, the README's cinder CLI and curl examples
(curl as urllib), ``volmgr-manage service list|volume show|reconcile``, and SIGTERM.

If this test fails, the documentation tells an operator something untrue.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as SafeET

from tests.functional.storage_env import Tgtd, tgtd  # noqa: F401
from tests.functional.volume_daemon import Daemon, delete_queues, wait_for

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
COMPUTE_NS = "{http://docs.openstack.org/compute/api/v1.1}"

# The README's "Configuration" section, reduced to what one storage host that also runs
# the API needs; only the names and ports differ.
CONFIG = """\
[DEFAULT]
host = {host}
transport_url = {rabbit_url}
state_path = {state_path}
[database]
connection = {db_url}
[api]
bind_host = 127.0.0.1
bind_port = {api_port}
workers = 2
[volume]
driver = file
target_helper = tgtadm
target_ip_address = 127.0.0.1
target_port = {portal_port}
tgt_control_port = {control_port}
[quota]
volumes = 10
gigabytes = 1000
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def table_value(output: str, key: str) -> str:
    """A property from cinderclient's ``| Property | Value |`` table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == key:
            return cells[1]
    raise AssertionError(f"{key} not in:\n{output}")


class Walk:
    """The operator's host: config file, processes, and the README's clients."""

    def __init__(self, tmp: Path, db_url: str, rabbit_url: str, target: Tgtd) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.tmp, self.rabbit_url = tmp, rabbit_url
        self.host = f"walk-{suffix}"
        self.project = f"walkproj-{suffix}"
        self.token = f"me:{self.project}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "volmgr.conf"
        self.config.write_text(CONFIG.format(
            host=self.host, rabbit_url=rabbit_url, state_path=tmp / "state", db_url=db_url,
            api_port=self.port, portal_port=target.portal_port,
            control_port=target.control_port))
        self.volume: Daemon | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.api_log = tmp / "volmgr-api.log"

    # -- processes -------------------------------------------------------------------

    def manage(self, *args: str, expect: int = 0) -> str:
        result = subprocess.run(
            [str(BIN / "volmgr-manage"), "--config-file", str(self.config), *args],
            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
        assert result.returncode == expect, (
            f"volmgr-manage {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> None:
        self.volume = Daemon(self.config, self.tmp).start()
        with open(self.api_log, "ab") as log:
            self.api = subprocess.Popen(
                [str(BIN / "volmgr-api"), "--config-file", str(self.config)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

        def healthy() -> bool:
            assert self.api is not None and self.api.poll() is None, (
                f"volmgr-api exited:\n{self.api_log.read_text()}")
            try:
                return self.http("GET", "/healthcheck", token=None)[0] == 200
            except OSError:
                return False
        wait_for(healthy, 60, "volmgr-api /healthcheck")

    def sigterm_api(self) -> int:
        assert self.api is not None
        self.api.send_signal(signal.SIGTERM)
        return self.api.wait(timeout=40)

    def close(self) -> None:
        if self.api is not None and self.api.poll() is None:
            self.api.kill()
            self.api.wait(timeout=10)
        if self.volume is not None:
            self.volume.close()
        delete_queues(self.rabbit_url, [f"volmgr-volume.{self.host}"])

    # -- clients ---------------------------------------------------------------------

    def http(self, method: str, path: str, body: Any = None, *, token: str | None = "",
             accept: str | None = None) -> tuple[int, str]:
        """What ``curl -s [-X M] [-H ...] [-d ...] URL`` does: status and body text."""
        headers = {}
        if token is not None:
            headers["X-Auth-Token"] = token or self.token
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def seed(self, method: str, path: str, body: Any = None,
             expect: int = 200) -> dict[str, Any]:
        status, text = self.http(method, f"/v1.1/{self.project}{path}", body)
        assert status == expect, f"{method} {path}: {status} {text}"
        return json.loads(text) if text else {}

    def cinder(self, *args: str) -> str:
        # The README's $CINDER, with this test's project and port.
        result = subprocess.run(
            [str(BIN / "cinder"), "--os-auth-type", "noauth", "--os-user-id", "me",
             "--os-project-id", self.project, "--os-volume-api-version", "3.0",
             "--os-endpoint", f"{self.base}/v3", *args],
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"cinder {' '.join(args)}: {result.stderr}"
        assert "downgrading" not in result.stderr, result.stderr
        return result.stdout

    def v3(self, kind: str, item_id: str) -> dict[str, Any] | None:
        status, text = self.http("GET", f"/v3/{self.project}/{kind}s/{item_id}")
        assert status in (200, 404), text
        return json.loads(text)[kind] if status == 200 else None

    def wait(self, kind: str, item_id: str, status: str | None, size: int | None = None
             ) -> None:
        """Until the volume/snapshot has ``status`` (``None``: until it is gone)."""
        def reached() -> bool:
            item = self.v3(kind, item_id)
            if status is None:
                return item is None
            assert item is not None, f"{kind} {item_id} vanished"
            assert not item["status"].startswith("error"), item
            return item["status"] == status and (size is None or item["size"] == size)
        wait_for(reached, 30, f"{kind} {item_id} {status or 'deleted'}", interval=0.2)


@pytest.fixture
def walk(tmp_path: Path, postgres_url: str, rabbit_url: str,
         tgtd: Tgtd) -> Iterator[Walk]:  # noqa: F811
    built = Walk(tmp_path, postgres_url, rabbit_url, tgtd)
    try:
        yield built
    finally:
        built.close()


def test_operator_walkthrough_from_the_docs_works_and_stops_cleanly(
        walk: Walk, tgtd: Tgtd) -> None:  # noqa: F811
    # -- database: sync, then check ----------------------------------------------------
    assert "Database is at revision" in walk.manage("db", "sync")
    assert "matches the models" in walk.manage("db", "check")

    # -- daemons from the config file --------------------------------------------------
    walk.start()
    services = json.loads(walk.manage("service", "list", "--format", "json"))
    ours = [s for s in services if s["host"] == walk.host]
    assert [(s["binary"], s["status"], s["state"]) for s in ours] == [
        ("volmgr-volume", "enabled", "up")]

    # -- the README's cinder examples, in order ----------------------------------------
    volume_id = table_value(walk.cinder("create", "--name", "vol1", "1"), "id")
    walk.wait("volume", volume_id, "available")
    assert volume_id in walk.cinder("list")
    assert table_value(walk.cinder("show", "vol1"), "status") == "available"
    walk.cinder("extend", "vol1", "2")
    walk.wait("volume", volume_id, "available", size=2)
    snapshot_id = table_value(walk.cinder("snapshot-create", "--name", "snap1", "vol1"),
                              "id")
    walk.wait("snapshot", snapshot_id, "available")
    assert "snap1" in walk.cinder("snapshot-list")
    walk.cinder("snapshot-delete", "snap1")
    walk.wait("snapshot", snapshot_id, None)
    walk.cinder("delete", "vol1")
    walk.wait("volume", volume_id, None)

    # -- the README's curl examples on the seed face -----------------------------------
    extensions = walk.seed("GET", "/extensions")["extensions"]
    assert [e["alias"] for e in extensions] == ["os-volumes"]
    status, text = walk.http("GET", f"/v1.1/{walk.project}/extensions",
                             accept="application/xml")
    assert status == 200, text
    xml = SafeET.fromstring(text.encode())
    assert xml.tag == f"{COMPUTE_NS}extensions"
    assert [e.get("alias") for e in xml] == ["os-volumes"]

    created = walk.seed("POST", "/os-volumes",
                        {"volume": {"size": 1, "display_name": "vol1"}})["volume"]
    assert created["status"] == "creating"
    seed_id = created["id"]
    walk.wait("volume", seed_id, "available")
    detail = walk.seed("GET", "/os-volumes/detail")["volumes"]
    assert [(v["id"], v["status"]) for v in detail] == [(seed_id, "available")]
    status, text = walk.http("GET", f"/v1.1/{walk.project}/os-volumes",
                             accept="application/xml")
    assert status == 200 and SafeET.fromstring(text.encode())[0].get("id") == seed_id

    attachments = f"/servers/server-{walk.host}/os-volume_attachments"
    walk.seed("POST", attachments, {"volumeAttachment": {
        "volumeId": seed_id, "device": "/dev/vdb",
        "connector": {"initiator": "iqn.1993-08.org.debian:01:abc", "host": "compute1"}}},
        expect=202)
    walk.wait("volume", seed_id, "in-use")
    attachment = walk.seed("GET", f"{attachments}/{seed_id}")["volumeAttachment"]
    info = attachment["connection_info"]
    assert info["driver_volume_type"] == "iscsi"
    assert info["data"]["target_portal"] == tgtd.portal
    assert info["data"]["auth_method"] == "CHAP"
    assert info["data"]["target_iqn"] in tgtd.target_iqns()

    # -- operator commands while a volume is exported ----------------------------------
    shown = json.loads(walk.manage("volume", "show", seed_id, "--format", "json"))
    assert (shown["status"], shown["host"]) == ("in-use", walk.host)
    assert "auth_password" not in json.dumps(shown)
    assert seed_id in walk.manage("volume", "list")
    assert "No differences" in walk.manage("reconcile")

    walk.seed("DELETE", f"{attachments}/{seed_id}", expect=202)
    walk.wait("volume", seed_id, "available")
    assert info["data"]["target_iqn"] not in tgtd.target_iqns()
    walk.seed("DELETE", f"/os-volumes/{seed_id}", expect=202)
    walk.wait("volume", seed_id, None)
    assert "No differences" in walk.manage("reconcile")

    # -- SIGTERM: both daemons exit 0 and say so ---------------------------------------
    assert walk.volume is not None
    assert walk.volume.terminate() == 0
    assert "volmgr-volume stopped" in walk.volume.read_log()
    assert walk.sigterm_api() == 0
    assert "Shutting down: Master" in walk.api_log.read_text()
