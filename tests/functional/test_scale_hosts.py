"""Many storage hosts: ``volmgr-volume`` processes with distinct hosts, each on its own
tmpfs (file driver) of 4, 6 or 8 GiB, behind 2 ``volmgr-api`` processes, over RabbitMQ
and PostgreSQL. Placement fills the roomiest hosts first; a host whose heartbeat stops
(SIGSTOP) gets no new volume after ``service_down_time`` and finishes what it had queued
when it resumes; a host stopped with SIGTERM is down at once, gets no new volume, its
volumes answer 503 naming it, and after its restart the same requests succeed. The
database load of the heartbeats is measured (docs/scaling.md).

Small numbers by default (6 hosts); ``VOLMGR_SCALE=full`` (``tox -e scale``) runs 30."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests import services
from tests.functional.test_api_clients import Process, free_port
from tests.functional.volume_daemon import Daemon, delete_queues, wait_for, write_config
from volmgr import exception, rpc, states
from volmgr.db import Database

FULL = os.environ.get("VOLMGR_SCALE") == "full"
HOSTS = 30 if FULL else 6
DOWN_TIME = 5
SIZES_GIB = (4, 6, 8)


def _size(index: int) -> int:
    return SIZES_GIB[index % len(SIZES_GIB)]


class Hosts:
    """The API processes and the managers of the test."""

    def __init__(self, tmp: Path, db: Database, db_url: str, rabbit_url: str) -> None:
        self.tmp, self.db, self.db_url, self.rabbit_url = tmp, db, db_url, rabbit_url
        suffix = uuid.uuid4().hex[:6]
        self.names = [f"scale-{suffix}-{i:02d}" for i in range(HOSTS)]
        self.capacity = {name: _size(i) for i, name in enumerate(self.names)}
        self.project = f"scale-{suffix}"
        self.ports = [free_port(), free_port()]
        self.apis: list[Process] = []
        self.daemons: dict[str, Daemon] = {}
        self.mounts: list[Path] = []

    def sections(self, host: str) -> dict[str, dict[str, Any]]:
        return {
            "DEFAULT": {"host": host, "transport_url": self.rabbit_url,
                        "state_path": self.tmp / host, "auth_strategy": "noauth",
                        "service_down_time": DOWN_TIME},
            "database": {"connection": self.db_url, "max_pool_size": 2},
            "quota": {"volumes": 1000, "gigabytes": 10000},
            "oslo_messaging_rabbit": {"rabbit_retry_interval": 1,
                                      "kombu_reconnect_delay": 0.5},
        }

    def start(self) -> None:
        for index, port in enumerate(self.ports):
            api = self.sections(f"scale-api-{port}")
            api["api"] = {"bind_host": "127.0.0.1", "bind_port": port, "workers": 1,
                          "max_oversubscription_ratio": 1.0}
            self.apis.append(Process("volmgr-api", write_config(
                self.tmp / f"api{index}.conf", api), self.tmp / f"api{index}.log"))
        for name in self.names:
            workdir = self.tmp / name
            volumes = workdir / "volumes"
            volumes.mkdir(parents=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={self.capacity[name]}g,mode=0700", "tmpfs", str(volumes)],
                           check=True, timeout=30)
            self.mounts.append(volumes)
            sections = self.sections(name)
            sections["volume"] = {"driver": "file", "target_helper": "none",
                                  "report_interval": 1, "recovery_interval": 2,
                                  "recovery_age": 2, "graceful_shutdown_timeout": 20,
                                  "executor_thread_pool_size": 2}
            sections["file"] = {"volumes_dir": volumes}
            self.daemons[name] = Daemon(write_config(workdir / "volmgr.conf", sections),
                                        workdir)
        for daemon in self.daemons.values():
            daemon.start(ready_timeout=180)
        for port in self.ports:
            wait_for(lambda p=port: self.healthy(p), 90, "volmgr-api /healthcheck", 0.3)
        wait_for(lambda: set(self.names) <= self.up(), 90, "every manager to report")

    def healthy(self, port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthcheck",
                                timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def up(self) -> set[str]:
        return {s.host for s in self.db.services_up(rpc.TOPIC, DOWN_TIME)
                if "free_capacity_gb" in (s.capabilities or {})}

    def call(self, n: int, method: str, path: str, body: Any = None) -> requests.Response:
        port = self.ports[n % len(self.ports)]
        return requests.request(
            method, f"http://127.0.0.1:{port}/v3/{self.project}{path}", json=body,
            headers={"X-Auth-Token": f"u1:{self.project}"}, timeout=30)

    def create(self, n: int) -> str:
        answer = self.call(n, "POST", "/volumes", {"volume": {"size": 1}})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["volume"]["id"])

    def host_of(self, volume_id: str) -> str:
        return str(self.db.volume_get(volume_id).host)

    def status(self, volume_id: str) -> str:
        """The volume's status, ``deleted`` once its row is gone."""
        try:
            return str(self.db.volume_get(volume_id).status)
        except exception.VolumeNotFound:
            return "deleted"

    def wait_available(self, volume_ids: list[str], timeout: float = 120) -> None:
        wait_for(lambda: all(self.db.volume_get(v).status == states.AVAILABLE
                             for v in volume_ids), timeout, "the volumes to be available",
                 0.5)

    def stop(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGCONT)
            daemon.close()
        for api in self.apis:
            api.stop()
        for mount in self.mounts:
            subprocess.run(["umount", str(mount)], check=False, timeout=30)
        delete_queues(self.rabbit_url, [f"{rpc.TOPIC}.{name}" for name in self.names])


@pytest.fixture
def hosts(tmp_path: Path, postgres_db: Database, postgres_url: str,
          rabbit_url: str) -> Iterator[Hosts]:
    services.require_root()
    world = Hosts(tmp_path, postgres_db, postgres_url, rabbit_url)
    try:
        world.start()
        yield world
    finally:
        world.stop()


def _heartbeat_load(engine: sa.Engine, seconds: float) -> tuple[float, float]:
    """Transactions committed per second in the test's database, and service-row
    updates per second, over ``seconds`` of an idle deployment."""
    query = sa.text(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = "
        "current_database()), (SELECT n_tup_upd FROM pg_stat_user_tables WHERE "
        "relname = 'services')")
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        commits0, updates0 = connection.execute(query).one()
    time.sleep(seconds)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        commits1, updates1 = connection.execute(query).one()
    return (commits1 - commits0) / seconds, (updates1 - updates0) / seconds


@pytest.mark.slow
def test_many_hosts_placement_silent_and_stopped_hosts(hosts: Hosts) -> None:
    db = hosts.db
    # -- heartbeat load ---------------------------------------------------------------
    commits, updates = _heartbeat_load(db.engine, 10.0)

    # -- placement by capacity --------------------------------------------------------
    began = time.monotonic()
    created = [hosts.create(n) for n in range(2 * HOSTS)]
    create_s = time.monotonic() - began
    hosts.wait_available(created)
    placed = collections.Counter(hosts.host_of(v) for v in created)
    # Water filling: with 2 GiB per host on average, every host ends with 4 GiB free:
    # the 8 GiB hosts take 4 volumes, the 6 GiB hosts 2, the 4 GiB hosts none.
    expected = {name: size - 4 for name, size in hosts.capacity.items()}
    off = {name: (placed[name], want) for name, want in expected.items()
           if abs(placed[name] - want) > 1}
    assert not off, f"placement (got, expected) per host: {off}"
    for name, size in hosts.capacity.items():
        assert placed[name] <= size

    # -- a host whose heartbeat stops ---------------------------------------------------
    silent_name = max(hosts.names)  # ties on free capacity go to the highest name
    silent = hosts.daemons[silent_name]
    victim = next((v for v in created if hosts.host_of(v) == silent_name), None)
    assert silent.process is not None
    silent.process.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    queued: list[str] = []
    if victim is not None:  # accepted while the host still looks up: it waits for it
        answer = hosts.call(0, "DELETE", f"/volumes/{victim}")
        assert answer.status_code == 202, answer.text
        queued.append(victim)
    wait_for(lambda: silent_name not in hosts.up(), DOWN_TIME + 10, "the silent host down")
    silent_detected_s = time.monotonic() - stopped_at
    after_silence = [hosts.create(n) for n in range(3)]
    assert silent_name not in {hosts.host_of(v) for v in after_silence}
    silent.process.send_signal(signal.SIGCONT)
    wait_for(lambda: silent_name in hosts.up(), 20, "the silent host back")
    for volume_id in queued:
        wait_for(lambda v=volume_id: hosts.status(v) == "deleted", 60,
                 "the queued delete to finish")

    # -- a host stopped cleanly ---------------------------------------------------------
    mine = collections.defaultdict(list)
    for volume_id in created:
        if volume_id not in queued:
            mine[hosts.host_of(volume_id)].append(volume_id)
    stopped_name = max(name for name in hosts.names if mine[name])
    stopped = hosts.daemons[stopped_name]
    assert stopped.process is not None
    stopped.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_for(lambda: db.service_get(stopped_name, rpc.TOPIC).last_heartbeat is None, 10,
             "the stopped host to mark itself down")
    down_after_s = time.monotonic() - signalled
    assert stopped.process.wait(timeout=30) == 0
    after_stop = [hosts.create(n) for n in range(6)]
    assert stopped_name not in {hosts.host_of(v) for v in after_stop}
    target = mine[stopped_name][0]
    refused = hosts.call(1, "DELETE", f"/volumes/{target}")
    assert refused.status_code == 503, refused.text
    assert f"storage host {stopped_name} is down (it was stopped)" in refused.text
    assert db.volume_get(target).status == states.AVAILABLE
    if stopped.notify is not None:
        stopped.notify.close()
    stopped.start(ready_timeout=120)
    wait_for(lambda: stopped_name in hosts.up(), 20, "the stopped host back")
    accepted = hosts.call(1, "DELETE", f"/volumes/{target}")
    assert accepted.status_code == 202, accepted.text
    wait_for(lambda: hosts.status(target) == "deleted", 60, "the delete after the restart")

    # -- nothing transitional, every volume gone at the end -----------------------------
    hosts.wait_available(after_silence + after_stop)
    leftover = [v for v in created + after_silence + after_stop
                if v not in queued and v != target]
    for n, volume_id in enumerate(leftover):
        assert hosts.call(n, "DELETE", f"/volumes/{volume_id}").status_code == 202
    live = sa.text("SELECT count(*) FROM volumes WHERE project_id = :p AND NOT deleted")

    def none_left() -> bool:
        with db.engine.connect() as connection:
            return connection.execute(live, {"p": hosts.project}).scalar_one() == 0
    wait_for(none_left, 120, "every delete", 0.5)

    print(f"\n{HOSTS} volmgr-volume hosts (report_interval 1 s, recovery_interval 2 s), "
          "2 volmgr-api processes, idle")
    print(f"database: {commits:.1f} commits/s ({commits / HOSTS:.2f} per host), "
          f"{updates:.1f} service-row updates/s ({updates / HOSTS:.2f} per host)")
    print(f"{2 * HOSTS} creates through 2 APIs in {create_s:.1f} s; placement "
          f"{dict(sorted(placed.items()))}")
    print(f"silent host down after {silent_detected_s:.1f} s (service_down_time "
          f"{DOWN_TIME}); SIGTERM'd host down after {down_after_s:.2f} s")
