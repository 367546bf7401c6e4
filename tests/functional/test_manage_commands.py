"""volmgr-manage service and volume commands as real processes against PostgreSQL, and
force-delete's cast reaching a manager over the real RabbitMQ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import services
from volmgr import config, rpc, states
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod

MANAGE = os.path.join(os.path.dirname(sys.executable), "volmgr-manage")


def manage(conf_file: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MANAGE, "--config-file", conf_file, *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(engine_mod.create_engine(postgres_url),
                        quota_limits={"volumes": 100, "gigabytes": 1000, "snapshots": 10})
    migration.upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def host() -> str:
    return f"manage-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def conf_file(tmp_path: Any, postgres_url: str, host: str) -> str:
    path = tmp_path / "volmgr.conf"
    path.write_text(f"[DEFAULT]\nhost = {host}\ntransport_url = {services.RABBIT_URL}\n"
                    f"[database]\nconnection = {postgres_url}\n")
    return str(path)


def test_service_list_disable_and_enable_on_postgresql(db, conf_file, host):
    db.service_heartbeat(host, "volmgr-volume", "volmgr-volume",
                         {"total_capacity_gb": 20.0, "free_capacity_gb": 7.5})
    listed = manage(conf_file, "service", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["host"], row["status"], row["state"], row["total_gb"], row["free_gb"]) == (
        host, "enabled", "up", 20.0, 7.5)

    disabled = manage(conf_file, "service", "disable", host, "--reason", "maintenance")
    assert disabled.returncode == 0, disabled.stderr
    assert db.service_get(host, "volmgr-volume").disabled
    table = manage(conf_file, "service", "list").stdout
    assert "disabled" in table and "maintenance" in table

    assert manage(conf_file, "service", "enable", host).returncode == 0
    assert not db.service_get(host, "volmgr-volume").disabled


def test_volume_show_and_reset_state_on_postgresql(db, conf_file, host):
    volume = db.volume_create(project_id="p", user_id="u", size=1, host=host,
                              status=states.ERROR_DETACHING)
    reset = manage(conf_file, "volume", "reset-state", volume.id, "--state", "available")
    assert reset.returncode == 0, reset.stderr
    shown = json.loads(manage(conf_file, "volume", "show", volume.id,
                              "--format", "json").stdout)
    assert shown["status"] == "available"
    assert shown["status_reason"] == "state reset by operator (was error_detaching)"


class _Recorder:
    def __init__(self) -> None:
        from oslo_messaging import Target

        self.target = Target(version="1.1")
        self.deleted: list[str] = []
        self.all_arrived = threading.Event()
        self.expected = 0

    def delete_volume(self, ctxt: dict[str, Any], volume_id: str) -> None:
        self.deleted.append(volume_id)
        if len(self.deleted) >= self.expected:
            self.all_arrived.set()


@pytest.fixture
def manager_on_rabbit(host: str) -> Iterator[_Recorder]:
    """A stand-in manager consuming this test's own queue (topic volmgr-volume,
    server = a unique host) on the real broker."""
    services.require_port("RabbitMQ", "127.0.0.1", 5672)
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    transport = rpc.get_transport(conf, url=services.RABBIT_URL)
    recorder = _Recorder()
    server = rpc.get_server(transport, server=host, endpoints=[recorder])
    server.start()
    yield recorder
    server.stop()
    server.wait()
    transport.cleanup()


def test_bulk_force_delete_casts_each_volume_to_its_manager_over_rabbitmq(
        db, conf_file, host, manager_on_rabbit):
    ids = []
    for _ in range(3):
        volume = db.volume_create(project_id="p", user_id="u", size=1, host=host,
                                  status=states.AVAILABLE)
        attachment = db.attachment_begin(volume.id, server_id="srv", device=None)
        db.attach_complete(volume.id, attachment.id, {"driver_volume_type": "iscsi"})
        ids.append(volume.id)
    unplaced = db.volume_create(project_id="p", user_id="u", size=1,
                                status=states.ERROR).id
    manager_on_rabbit.expected = len(ids)

    result = manage(conf_file, "volume", "force-delete", *ids, unplaced, "--format", "json")
    assert result.returncode == 0, result.stderr
    results = {r["id"]: r["result"] for r in json.loads(result.stdout)}
    assert results == {**{i: "deleting (sent to host)" for i in ids},
                       unplaced: "deleted (no host: database only)"}
    assert manager_on_rabbit.all_arrived.wait(30)
    assert sorted(manager_on_rabbit.deleted) == sorted(ids)
    for volume_id in ids:
        assert db.volume_get(volume_id).status == states.DELETING
        assert db.attachment_list(volume_id=volume_id) == []
    assert unplaced not in {v.id for v in db.volume_list()}
