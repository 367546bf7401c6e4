"""volmgr over a 3-node RabbitMQ cluster with quorum queues: a storm of mixed requests
from many clients while the node leading the managers' queues is stopped and started
again, and then another node is stopped. Every request that got a 2xx reaches its final
state, no row is left transitional, image files and rows agree, the logs show the
reconnects, and the stall of operations during a node loss is measured.

Small numbers by default (60 operations, 5 clients); ``VOLMGR_SCALE=full`` (``tox -e
scale``) runs 300 operations from 20 clients (docs/scaling.md)."""

from __future__ import annotations

import itertools
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.functional.chaos_helpers import image_files
from tests.functional.rabbit_cluster import RabbitCluster, rabbit_cluster  # noqa: F401
from tests.functional.test_api_clients import Process, free_port
from tests.functional.volume_daemon import Daemon, wait_for, write_config
from volmgr import rpc, states
from volmgr.db import Database

FULL = os.environ.get("VOLMGR_SCALE") == "full"
OPERATIONS = 300 if FULL else 80  # at least; the storm goes on until the chaos is over
CLIENTS = 20 if FULL else 5
SEED = 15
#: How long each stopped node stays down while the storm goes on.
DOWN_S = 15 if FULL else 8


class Deployment:
    """One API process (2 workers) and two file-driver managers on the cluster."""

    def __init__(self, tmp: Path, db: Database, db_url: str, cluster: RabbitCluster) -> None:
        self.tmp, self.db, self.db_url, self.cluster = tmp, db, db_url, cluster
        suffix = uuid.uuid4().hex[:6]
        self.hosts = [f"qq-{suffix}-a", f"qq-{suffix}-b"]
        self.project = f"qq-{suffix}"
        self.port = free_port()
        self.api: Process | None = None
        self.daemons: dict[str, Daemon] = {}

    def sections(self, host: str) -> dict[str, dict[str, Any]]:
        return {
            "DEFAULT": {"host": host, "transport_url": self.cluster.transport_url,
                        "state_path": self.tmp / host, "auth_strategy": "noauth",
                        "service_down_time": 30},
            "database": {"connection": self.db_url},
            "quota": {"volumes": 10000, "gigabytes": 100000},
            "oslo_messaging_rabbit": {"rabbit_quorum_queue": "true",
                                      "rabbit_retry_interval": 1,
                                      "rabbit_retry_backoff": 1, "rabbit_interval_max": 2,
                                      "kombu_reconnect_delay": 0.5},
        }

    def volumes_dir(self, host: str) -> Path:
        return self.tmp / host / "volumes"

    def start(self) -> None:
        api = self.sections(f"qq-api-{self.port}")
        api["api"] = {"bind_host": "127.0.0.1", "bind_port": self.port, "workers": 2}
        self.api = Process("volmgr-api", write_config(self.tmp / "api.conf", api),
                           self.tmp / "api.log")
        for host in self.hosts:
            workdir = self.tmp / host
            workdir.mkdir()
            sections = self.sections(host)
            sections["volume"] = {"driver": "file", "target_helper": "none",
                                  "report_interval": 2, "recovery_interval": 5,
                                  "recovery_age": 5, "recovery_max_attempts": 10}
            sections["file"] = {"volumes_dir": self.volumes_dir(host)}
            self.daemons[host] = Daemon(write_config(workdir / "volmgr.conf", sections),
                                        workdir).start(ready_timeout=120)
        wait_for(self.healthy, 90, "volmgr-api /healthcheck", 0.3)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthcheck",
                                timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, f"http://127.0.0.1:{self.port}/v3/{self.project}{path}", json=body,
            headers={"X-Auth-Token": f"u1:{self.project}"}, timeout=60)

    def rows(self) -> dict[str, Any]:
        query = sa.text("SELECT id, status, size, host FROM volumes WHERE project_id = :p "
                        "AND NOT deleted")
        with self.db.engine.connect() as connection:
            return {row.id: row for row in connection.execute(query, {"p": self.project})}

    def stop(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()
        if self.api is not None:
            self.api.stop()


@pytest.fixture
def deployment(tmp_path: Path, postgres_db: Database, postgres_url: str,
               rabbit_cluster: RabbitCluster) -> Iterator[Deployment]:  # noqa: F811
    world = Deployment(tmp_path, postgres_db, postgres_url, rabbit_cluster)
    try:
        world.start()
        yield world
    finally:
        world.stop()


class Storm:
    """Client threads doing a seeded mix of creates, extends, deletes and reads; each
    accepted change is tracked until the database shows its final state."""

    def __init__(self, world: Deployment) -> None:
        self.world = world
        self.lock = threading.Lock()
        self.done = 0
        self.accepted: list[dict[str, Any]] = []
        self.faults: list[tuple[str, int, str]] = []
        self.latencies: list[tuple[float, float]] = []  # (start, seconds) of each request
        self.finish = threading.Event()

    def client(self, index: int) -> None:
        """Requests until the test says the storm is over."""
        rng = random.Random(SEED * 100 + index)
        mine: dict[str, int] = {}
        while not self.finish.is_set():
            roll = rng.random()
            started = time.monotonic()
            if not mine or roll < 0.4:
                op, answer = "create", self.world.call("POST", "/volumes",
                                                       {"volume": {"size": 1}})
                target = answer.json()["volume"]["id"] if answer.status_code == 202 else None
                size = 1
            else:
                target = rng.choice(sorted(mine))
                if roll < 0.6:
                    size = mine[target] + 1
                    op, answer = "extend", self.world.call(
                        "POST", f"/volumes/{target}/action", {"os-extend": {"new_size": size}})
                elif roll < 0.8:
                    op, answer = "delete", self.world.call("DELETE", f"/volumes/{target}")
                    size = 0
                else:
                    op, answer = "show", self.world.call("GET", f"/volumes/{target}")
                    size = mine[target]
            elapsed = time.monotonic() - started
            change: dict[str, Any] = {"op": op, "id": target, "size": size,
                                      "at": started + elapsed, "final_at": None}
            with self.lock:
                self.done += 1
                self.latencies.append((started, elapsed))
                if answer.status_code >= 300:
                    self.faults.append((op, answer.status_code, answer.text[:200]))
                elif op != "show":
                    self.accepted.append(change)
            if answer.status_code < 300 and target is not None:
                if op == "delete":
                    mine.pop(target, None)
                elif op != "show":
                    mine[target] = size
            time.sleep(rng.uniform(0.05, 0.3))
            # Wait for this client's own change to settle before touching it again.
            if answer.status_code < 300 and op in ("create", "extend") and target:
                wait_for(lambda: self.final(change), 300, f"{op} of {target} to settle",
                         0.3)

    def final(self, change: dict[str, Any]) -> bool:
        """Whether the database shows ``change`` done (stamping when it first does)."""
        with self.lock:
            if change["final_at"] is not None:
                return True
        row = self.world.rows().get(change["id"])
        if change["op"] == "delete":
            done = row is None
        else:
            done = row is not None and row.status == states.AVAILABLE and \
                row.size >= change["size"]
        if done:
            with self.lock:
                if change["final_at"] is None:
                    change["final_at"] = time.monotonic()
        return done

    def watch(self, stop: threading.Event) -> None:
        """Stamp the moment each accepted change is visible as final."""
        while not stop.is_set():
            rows = self.world.rows()
            now = time.monotonic()
            with self.lock:
                for change in self.accepted:
                    if change["final_at"] is not None:
                        continue
                    row = rows.get(change["id"])
                    if change["op"] == "delete" and row is None:
                        change["final_at"] = now
                    elif row is not None and row.status == states.AVAILABLE and \
                            row.size >= change["size"] and change["op"] != "delete":
                        change["final_at"] = now
            stop.wait(0.25)


@pytest.mark.slow
def test_storm_over_a_quorum_queue_cluster_survives_node_losses(
        deployment: Deployment) -> None:
    world, cluster = deployment, deployment.cluster
    queue = f"{rpc.TOPIC}.{world.hosts[0]}"
    storm = Storm(world)
    stop_watch = threading.Event()
    watcher = threading.Thread(target=storm.watch, args=(stop_watch,), daemon=True)
    watcher.start()
    clients = [threading.Thread(target=storm.client, args=(i,), daemon=True)
               for i in range(CLIENTS)]
    began = time.monotonic()
    for thread in clients:
        thread.start()

    events: list[tuple[str, float]] = []
    wait_for(lambda: storm.done >= OPERATIONS // 4, 300, "a quarter of the storm", 0.2)
    leader = cluster.queue_leader(queue)
    events.append((f"stop leader {leader.name}", time.monotonic()))
    leader.stop_app()
    time.sleep(DOWN_S)
    events.append((f"start {leader.name}", time.monotonic()))
    leader.start_app()
    wait_for(lambda: storm.done >= OPERATIONS // 2, 300, "half of the storm", 0.2)
    time.sleep(3)
    other = next(node for node in cluster.nodes if node is not leader)
    events.append((f"stop {other.name}", time.monotonic()))
    other.stop_app()
    time.sleep(DOWN_S)
    wait_for(lambda: storm.done >= OPERATIONS, 600, "the whole storm", 0.2)
    storm.finish.set()
    for thread in clients:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in clients), "a client hung"
    storm_s = time.monotonic() - began

    # -- every accepted change reaches its final state -------------------------------
    try:
        wait_for(lambda: all(c["final_at"] is not None for c in storm.accepted), 240,
                 "every accepted change to be final", 0.5)
    except AssertionError:
        rows = world.rows()
        pending = [(c["op"], c["id"], getattr(rows.get(c["id"]), "status", "gone"))
                   for c in storm.accepted if c["final_at"] is None]
        raise AssertionError(f"not final after 240 s: {pending}") from None
    stop_watch.set()
    events.append((f"start {other.name}", time.monotonic()))
    other.start_app()
    rows = world.rows()
    stuck = {v: r.status for v, r in rows.items() if r.status != states.AVAILABLE}
    assert not stuck, f"rows not available at the end: {stuck}"
    assert not [f for f in storm.faults if f[1] >= 500], storm.faults
    for host in world.hosts:
        on_host = {v for v, r in rows.items() if r.host == host}
        assert image_files(world.volumes_dir(host)) == on_host, host

    # -- the logs show the reconnects ------------------------------------------------
    logs = "".join(d.read_log() for d in world.daemons.values())
    assert world.api is not None
    logs += world.api.text()
    reconnects = logs.count("Reconnected to AMQP server")
    assert reconnects >= 1, "no reconnect in the logs"

    # -- how long operations stalled during a node loss -----------------------------
    losses = [(at, until) for (what, at), (_, until) in itertools.pairwise(events)
              if what.startswith("stop")]

    def in_loss(at: float) -> bool:
        return any(start <= at <= end for start, end in losses)
    completion = [(c["at"], c["final_at"] - c["at"]) for c in storm.accepted]
    during = [seconds for at, seconds in completion if in_loss(at)]
    outside = [seconds for at, seconds in completion if not in_loss(at)]
    api_during = [seconds for at, seconds in storm.latencies if in_loss(at)]
    print(f"\n{storm.done} requests from {CLIENTS} clients in {storm_s:.1f} s: "
          f"{len(storm.accepted)} changes accepted, {len(storm.faults)} refused "
          f"({sorted({f[1] for f in storm.faults})}); {reconnects} reconnect lines")
    for what, at in events:
        print(f"  {at - began:6.1f} s  {what}")
    if outside:
        print(f"accepted -> final outside node losses: median "
              f"{statistics.median(outside):.2f} s, max {max(outside):.2f} s")
    if during:
        print(f"accepted -> final during node losses:  median "
              f"{statistics.median(during):.2f} s, max {max(during):.2f} s")
    if api_during:
        print(f"API answer during node losses: max {max(api_during):.2f} s")
