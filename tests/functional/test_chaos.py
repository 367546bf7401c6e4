"""Chaos: a seeded random mix of conflicting requests from 6 HTTP clients in 2 projects,
through both API faces of a real ``volmgr-api`` (2 workers), while the LVM manager is
killed with SIGKILL and restarted and RabbitMQ's app is stopped for a few seconds.

One ``volmgr-volume`` drives LVM on a loop-device VG (create, extend, delete); another
the file driver exported by a private tgtd (attach, detach, snapshots). The scheduler's
choice is steered by toggling the file host's ``disabled`` flag, as an operator would.
Afterwards the promises of the standards must hold: no row stays transitional, every
error carries a reason, no LV, image, snapshot copy or target is leaked or missing,
quota usage is exactly what the live rows hold, every 2xx was done or visibly failed, no
answer was a 5xx (except the 503 that refuses, before writing anything, an operation on a
volume whose storage host is down), and deleting everything through the API leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import services
from tests.db_reads import quota_usage
from tests.functional import storage_env
from tests.functional.chaos_helpers import (
    Api,
    Known,
    Ledger,
    check_promises,
    check_quota,
    check_rows_final,
    check_storage,
    delete_everything,
    image_files,
    rabbit_outage,
    snapshot_files,
    target_files,
)
from tests.functional.storage_env import LoopVG, Tgtd, tgtd  # noqa: F401
from tests.functional.test_api_clients import Process, free_port
from tests.functional.volume_daemon import Daemon, delete_queues, wait_for, write_config
from volmgr import rpc, states
from volmgr.db import Database

SEED = 20240611
ACTIONS = 300           # client actions in the mix (a conflict pair counts as one)
MIX_SECONDS = 40        # the mix stops at whichever bound comes first
CLIENTS = 6
KILL_AT, OUTAGE_AT = 90, 190      # actions done when the chaos events fire
KILL_AFTER_S, OUTAGE_AFTER_S = 10.0, 22.0   # ... or seconds into the mix, if sooner
OUTAGE_SECONDS = 3.0
QUOTA = {"volumes": 12, "gigabytes": 30, "snapshots": 4}
SERVERS = ("srv-1", "srv-2", "srv-3")
#: The LVM driver slowed down so that kill -9 catches operations in flight.
SLOW_LVM = "create_volume=0.3,extend_volume=0.3,delete_volume=0.3"


class Cluster:
    """The processes of the test: one API, an LVM manager and a file manager."""

    def __init__(self, tmp: Path, db: Database, db_url: str, rabbit_url: str,
                 vg: LoopVG, target: Tgtd) -> None:
        self.tmp, self.db, self.db_url, self.rabbit_url = tmp, db, db_url, rabbit_url
        self.vg, self.tgtd = vg, target
        suffix = uuid.uuid4().hex[:8]
        self.projects = (f"chaos-a-{suffix}", f"chaos-b-{suffix}")
        self.lvm_host, self.file_host = f"chaos-lvm-{suffix}", f"chaos-file-{suffix}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.volumes_dir = tmp / "file-volumes"
        self.targets_dir = tmp / "targets"
        self.api: Process | None = None
        self.daemons: dict[str, Daemon] = {}

    def sections(self, host: str) -> dict[str, dict[str, Any]]:
        return {
            "DEFAULT": {"host": host, "transport_url": self.rabbit_url,
                        "state_path": self.tmp / host, "auth_strategy": "noauth",
                        "service_down_time": 6},
            "database": {"connection": self.db_url},
            "quota": QUOTA,
            "oslo_messaging_rabbit": {"rabbit_retry_interval": 1, "rabbit_retry_backoff": 1,
                                      "rabbit_interval_max": 2,
                                      "kombu_reconnect_delay": 0.5},
        }

    def start(self) -> None:
        api = self.sections(f"chaos-api-{self.port}")
        api["api"] = {"bind_host": "127.0.0.1", "bind_port": self.port, "workers": 2}
        self.api = Process("volmgr-api", write_config(self.tmp / "api.conf", api),
                           self.tmp / "api.log")
        recovery = {"report_interval": 1, "recovery_interval": 2, "recovery_age": 2,
                    "recovery_max_attempts": 3, "graceful_shutdown_timeout": 20}
        lvm = self.sections(self.lvm_host)
        lvm["volume"] = {"driver": "lvm", "target_helper": "none", **recovery}
        lvm["lvm"] = {"volume_group": self.vg.name, "lvm_conf": self.vg.lvm_conf,
                      "device_dir": self.vg.device_dir, "volume_clear": "none"}
        files = self.sections(self.file_host)
        files["volume"] = {"driver": "file", "target_helper": "tgtadm", **recovery,
                           "tgt_control_port": self.tgtd.control_port,
                           "target_ip_address": "127.0.0.1",
                           "target_port": self.tgtd.portal_port,
                           "target_files_dir": self.targets_dir}
        files["file"] = {"volumes_dir": self.volumes_dir}
        for host, sections, slow in ((self.lvm_host, lvm, SLOW_LVM),
                                     (self.file_host, files, None)):
            workdir = self.tmp / host
            workdir.mkdir()
            self.daemons[host] = Daemon(write_config(workdir / "volmgr.conf", sections),
                                        workdir, slow=slow).start()
        wait_for(self.api_healthy, 60, "volmgr-api /healthcheck", interval=0.2)
        wait_for(lambda: {self.lvm_host, self.file_host} <= {
            s.host for s in self.db.services_up(rpc.TOPIC, 30)
            if "free_capacity_gb" in (s.capabilities or {})}, 60,
            "both managers to report capacity")

    def api_healthy(self) -> bool:
        assert self.api is not None and self.api.alive(), "volmgr-api exited"
        try:
            return requests.get(f"{self.base}/healthcheck", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or still booting
            return False

    def restart_lvm_manager(self) -> None:
        daemon = self.daemons[self.lvm_host]
        if daemon.notify is not None:
            daemon.notify.close()
        daemon.start()

    def steer_to_lvm(self, yes: bool) -> None:
        """Creates go to the file host (most free capacity) unless it is disabled."""
        self.db.service_set_disabled(self.file_host, rpc.TOPIC, yes, "chaos steering")

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()
        if self.api is not None:
            self.api.stop()
        delete_queues(self.rabbit_url, [f"{rpc.TOPIC}.{self.lvm_host}",
                                        f"{rpc.TOPIC}.{self.file_host}"])

    # -- what the database says -------------------------------------------------------

    def live_volumes(self) -> list[Any]:
        return [v for p in self.projects for v in self.db.volume_list(p)]

    def live_snapshots(self) -> list[Any]:
        return [s for p in self.projects for s in self.db.snapshot_list(p)]

    def transitional(self, host: str | None = None) -> list[str]:
        rows = [f"volume {v.id} {v.status}" for v in self.live_volumes()
                if v.status in states.VOLUME_TRANSITIONAL and host in (None, v.host)]
        rows += [f"snapshot {s.id} {s.status}" for s in self.live_snapshots()
                 if s.status in states.SNAPSHOT_TRANSITIONAL and host in (None, s.host)]
        return rows


@pytest.fixture
def cluster(tmp_path: Path, postgres_db: Database, postgres_url: str, rabbit_url: str,
            tgtd: Tgtd) -> Iterator[Cluster]:  # noqa: F811
    services.require_binary("rabbitmqctl")
    # 32 GiB sparse: room for both projects' quota on LVM alone.
    with storage_env.make_loop_vg(tmp_path / "vg", size_mib=32 * 1024) as vg:
        world = Cluster(tmp_path, postgres_db, postgres_url, rabbit_url, vg, tgtd)
        try:
            world.start()
            yield world
        finally:
            world.close()


# -- the mix ---------------------------------------------------------------------------


class Mix:
    """The client threads, the steering thread and the chaos events."""

    def __init__(self, world: Cluster) -> None:
        self.world = world
        self.ledger = Ledger()
        self.known = Known()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.actions = 0
        self.started = 0.0
        self.figures: dict[str, float] = {}
        self.errors: list[BaseException] = []

    def take(self) -> bool:
        with self.lock:
            if self.stop.is_set() or self.actions >= ACTIONS or \
                    time.monotonic() - self.started > MIX_SECONDS:
                return False
            self.actions += 1
            return True

    def run(self) -> None:
        self.started = time.monotonic()
        threads = [threading.Thread(target=self.guard(self.client), args=(i,))
                   for i in range(CLIENTS)]
        threads.append(threading.Thread(target=self.guard(self.steer)))
        chaos = threading.Thread(target=self.guard(self.chaos))
        for thread in [*threads, chaos]:
            thread.start()
        for thread in threads[:CLIENTS]:
            thread.join(timeout=MIX_SECONDS + 60)
        self.figures["mix_s"] = time.monotonic() - self.started
        self.stop.set()
        for thread in [*threads, chaos]:
            thread.join(timeout=60)
        self.world.steer_to_lvm(False)
        if self.errors:
            raise self.errors[0]

    def guard(self, target: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                target(*args)
            except BaseException as error:  # reported by run(), not lost in a thread
                self.errors.append(error)
                self.stop.set()
        return run

    def steer(self) -> None:
        to_lvm = False
        while not self.stop.wait(1.0):
            to_lvm = not to_lvm
            self.world.steer_to_lvm(to_lvm)

    def chaos(self) -> None:
        def due(actions: int, seconds: float) -> bool:
            return self.actions >= actions or time.monotonic() - self.started >= seconds
        wait_for(lambda: self.stop.is_set() or due(KILL_AT, KILL_AFTER_S), MIX_SECONDS,
                 "the kill moment", interval=0.05)
        if self.stop.is_set():
            return
        # Kill while the LVM manager has work in hand, so the kill strands some.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: self.world.transitional(self.world.lvm_host), 5,
                     "work in flight on the LVM host", interval=0.05)
        self.figures["kill_at_action"] = self.actions
        self.world.daemons[self.world.lvm_host].kill9()
        stranded = set(self.world.transitional(self.world.lvm_host))
        time.sleep(1.0)
        self.world.restart_lvm_manager()
        restarted = time.monotonic()
        self.figures["stranded"] = len(stranded)
        wait_for(lambda: not stranded & set(self.world.transitional(self.world.lvm_host)),
                 30, f"the rows the kill stranded to leave their transitional states: "
                 f"{sorted(stranded)}", interval=0.2)
        self.figures["kill_recovery_s"] = time.monotonic() - restarted
        wait_for(lambda: self.stop.is_set() or due(OUTAGE_AT, OUTAGE_AFTER_S), MIX_SECONDS,
                 "the outage moment", interval=0.05)
        if self.stop.is_set():
            return
        self.figures["outage_at_action"] = self.actions
        with rabbit_outage(OUTAGE_SECONDS) as began:
            pass
        self.figures["outage_s"] = time.monotonic() - began

    # -- one client ---------------------------------------------------------------------

    def client(self, index: int) -> None:
        rng = random.Random(SEED * 100 + index)
        project = self.world.projects[index % 2]
        other = self.world.projects[(index + 1) % 2]
        api = Api(self.world.base, project, self.ledger)
        actions: list[tuple[Callable[[random.Random, Api, str], None], int]] = [
            (self.create, 22), (self.create_over_quota, 3), (self.create_from_snapshot, 3),
            (self.delete, 14), (self.double_delete, 4), (self.extend, 9),
            (self.extend_smaller, 3), (self.attach, 11), (self.attach_two_servers, 4),
            (self.delete_while_attaching, 4), (self.detach, 10), (self.snapshot, 7),
            (self.delete_snapshot, 5), (self.intrude, 2), (self.read, 2)]
        functions, weights = zip(*actions)
        while self.take():
            action = rng.choices(functions, weights)[0]
            action(rng, api, other)
            time.sleep(rng.uniform(0.2, 0.9))

    def pick(self, rng: random.Random, project: str, host: str | None = None) -> str | None:
        """Mostly a volume not yet seen gone; sometimes any, for the 404 paths."""
        ids = self.known.volume_ids(project, host, live=rng.random() < 0.85) or \
            self.known.volume_ids(project, host)
        return rng.choice(ids) if ids else None

    def delete_one(self, rng: random.Random, api: Api, volume_id: str, op: str) -> None:
        status = api.delete(volume_id, rng.random() < 0.5, op=op)
        if 200 <= status < 300:
            self.ledger.accept("delete", volume_id)
        elif status == 404:
            self.known.mark_gone(volume_id)

    def create(self, rng: random.Random, api: Api, other: str) -> None:
        _, volume_id = api.create(rng.choice((1, 1, 2, 3)), rng.random() < 0.5)
        if volume_id:
            self.ledger.accept("create", volume_id)
            self.known.add_volume(api.project, volume_id,
                                  self.world.db.volume_get(volume_id).host)

    def create_over_quota(self, rng: random.Random, api: Api, other: str) -> None:
        _, volume_id = api.create(QUOTA["gigabytes"] + 1, rng.random() < 0.5,
                                       op="create_over_quota")
        assert volume_id is None, f"an over-quota create was accepted: {volume_id}"

    def create_from_snapshot(self, rng: random.Random, api: Api, other: str) -> None:
        snapshots = self.known.snapshot_ids(api.project)
        if not snapshots:
            return self.create(rng, api, other)
        _, volume_id = api.create(2, rng.random() < 0.5,
                                  snapshot_id=rng.choice(snapshots), op="create_from_snapshot")
        if volume_id:
            self.ledger.accept("create", volume_id)
            self.known.add_volume(api.project, volume_id, self.world.file_host)

    def delete(self, rng: random.Random, api: Api, other: str, op: str = "delete") -> None:
        volume_id = self.pick(rng, api.project)
        if volume_id:
            self.delete_one(rng, api, volume_id, op)

    def double_delete(self, rng: random.Random, api: Api, other: str) -> None:
        volume_id = self.pick(rng, api.project)
        for _ in range(2 if volume_id else 0):
            self.delete_one(rng, api, str(volume_id), "double_delete")

    def extend(self, rng: random.Random, api: Api, other: str, smaller: bool = False) -> None:
        volume_id = self.pick(rng, api.project)
        if not volume_id:
            return
        status, body = api.show(volume_id, op="extend_show")
        if status != 200:
            self.known.mark_gone(volume_id)
            return
        size = body["volume"]["size"]
        new_size = size - 1 if smaller else size + rng.choice((1, 1, 2))
        op = "extend_smaller" if smaller else "extend"
        answer = api.extend(volume_id, new_size, op=op)
        if 200 <= answer < 300:
            assert not smaller, f"extend of {volume_id} to a smaller size was accepted"
            self.ledger.accept("extend", (volume_id, new_size))

    def extend_smaller(self, rng: random.Random, api: Api, other: str) -> None:
        self.extend(rng, api, other, smaller=True)

    def attach(self, rng: random.Random, api: Api, other: str,
               op: str = "attach") -> str | None:
        volume_id = self.pick(rng, api.project, self.world.file_host)
        if volume_id:
            server = rng.choice(SERVERS)
            if 200 <= api.attach(volume_id, server, storage_env.INITIATOR_IQN, op=op) < 300:
                self.ledger.accept("attach", (volume_id, server))
        return volume_id

    def attach_two_servers(self, rng: random.Random, api: Api, other: str) -> None:
        volume_id = self.pick(rng, api.project, self.world.file_host)
        if not volume_id:
            return
        accepted = [server for server in SERVERS[:2]
                    if 200 <= api.attach(volume_id, server, storage_env.INITIATOR_IQN,
                                         op="attach_two_servers") < 300]
        assert len(accepted) < 2, f"{volume_id} was attached to two servers"
        for server in accepted:
            self.ledger.accept("attach", (volume_id, server))

    def delete_while_attaching(self, rng: random.Random, api: Api, other: str) -> None:
        volume_id = self.attach(rng, api, other, op="attach_then_delete")
        if volume_id:
            self.delete_one(rng, api, volume_id, "delete_while_attaching")

    def detach(self, rng: random.Random, api: Api, other: str) -> None:
        volume_id = self.pick(rng, api.project, self.world.file_host)
        if not volume_id:
            return
        status, body = api.show(volume_id, op="detach_show")
        if status == 404:
            self.known.mark_gone(volume_id)
        attached = body["volume"]["attachments"] if status == 200 else []
        server = attached[0]["server_id"] if attached else rng.choice(SERVERS)
        if 200 <= api.detach(volume_id, server) < 300:
            self.ledger.accept("detach", (volume_id, server))

    def snapshot(self, rng: random.Random, api: Api, other: str) -> None:
        volume_id = self.pick(rng, api.project, self.world.file_host)
        if volume_id:
            _, snapshot_id = api.snapshot(volume_id)
            if snapshot_id:
                self.ledger.accept("snapshot_create", snapshot_id)
                self.known.add_snapshot(api.project, snapshot_id)

    def delete_snapshot(self, rng: random.Random, api: Api, other: str) -> None:
        snapshots = self.known.snapshot_ids(api.project)
        if snapshots:
            snapshot_id = rng.choice(snapshots)
            if 200 <= api.delete_snapshot(snapshot_id) < 300:
                self.ledger.accept("snapshot_delete", snapshot_id)

    def intrude(self, rng: random.Random, api: Api, other: str) -> None:
        """Another project's token on this project's volume, through its own URL."""
        volume_id = self.pick(rng, api.project)
        if not volume_id:
            return
        token = f"intruder:{other}"
        for method, path in (("GET", f"/v3/{other}/volumes/{volume_id}"),
                             ("DELETE", f"/v1.1/{other}/os-volumes/{volume_id}")):
            status, _ = api.call("intrude", method, path, token=token)
            assert status == 404, f"{method} {path} with another project's token: {status}"

    def read(self, rng: random.Random, api: Api, other: str) -> None:
        api.list_volumes(rng.random() < 0.5)


@pytest.mark.exclusive
def test_random_conflicting_requests_with_a_manager_crash_and_a_broker_outage_keep_every_promise(
        cluster: Cluster) -> None:
    began = time.monotonic()
    mix = Mix(cluster)
    try:
        mix.run()
    finally:
        cluster.steer_to_lvm(False)
    settle_began = time.monotonic()
    wait_for(lambda: not cluster.transitional(), 45,
             "every row to leave its transitional status", interval=0.2)
    settle = time.monotonic() - settle_began
    volumes = cluster.live_volumes()
    statuses: dict[str, int] = {}
    for volume in volumes:
        statuses[volume.status] = statuses.get(volume.status, 0) + 1
    print(f"\nchaos mix: {mix.actions} actions, {mix.ledger.total()} requests in "
          f"{mix.figures['mix_s']:.1f}s; answers by operation and status:\n"
          f"{mix.ledger.summary()}\n"
          f"kill -9 of the LVM manager at action {mix.figures.get('kill_at_action')}: the "
          f"{mix.figures.get('stranded')} rows it stranded final "
          f"{mix.figures.get('kill_recovery_s', -1):.1f}s after the restart; "
          f"RabbitMQ stop_app at action {mix.figures.get('outage_at_action')} for "
          f"{mix.figures.get('outage_s', -1):.1f}s; all rows final {settle:.1f}s after "
          f"the mix; live volumes by status {statuses}, "
          f"{len(cluster.live_snapshots())} snapshots")
    assert mix.ledger.violations == [], "\n".join(mix.ledger.violations)
    assert "kill_recovery_s" in mix.figures and "outage_s" in mix.figures, mix.figures
    problems = (check_rows_final(cluster) + check_storage(cluster) + check_quota(cluster)
                + check_promises(cluster, mix.ledger))
    assert problems == [], "\n".join(problems)

    cleanup_began = time.monotonic()
    clients = {p: Api(cluster.base, p, mix.ledger) for p in cluster.projects}
    delete_everything(cluster, clients)
    assert mix.ledger.violations == [], "\n".join(mix.ledger.violations)
    assert cluster.vg.lvs() == {}
    assert image_files(cluster.volumes_dir) == set()
    assert snapshot_files(cluster.volumes_dir) == set()
    assert cluster.tgtd.target_iqns() == set()
    assert target_files(cluster.targets_dir) == set()
    for project in cluster.projects:
        usage = quota_usage(cluster.db, project)
        assert all(value == 0 for value in usage.values()), (project, usage)
    assert cluster.api is not None and cluster.api.alive()
    assert "Traceback" not in cluster.api.text(), cluster.api.text()[-5000:]
    tracebacks = sum(d.read_log().count("Traceback") for d in cluster.daemons.values())
    print(f"everything deleted through the API in {time.monotonic() - cleanup_began:.1f}s;"
          f" VG, image dir, tgtd and quota empty; manager tracebacks: {tracebacks}; "
          f"test body {time.monotonic() - began:.1f}s")
