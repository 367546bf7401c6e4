"""volmgr-volume end to end: real daemon processes, real RabbitMQ, a scratch PostgreSQL
database, the file driver with a private tgtd and the LVM driver on a loop-device VG.

The test plays the API's part: it writes each row the way the API does and casts through
``rpcapi``; then it watches rows, files, LVs (``lvs``) and targets. Every test uses its own
``[DEFAULT] host``, so its queue is its own on the shared broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

from tests import services
from tests.functional import storage_env
from tests.functional.storage_env import LoopVG, Tgtd, loop_vg, tgtd  # noqa: F401
from tests.functional.volume_daemon import (
    Daemon,
    delete_queues,
    rabbitmqctl,
    wait_for,
    write_config,
)
from volmgr import config, exception, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume import rpcapi

GiB = 1024 ** 3
CTX = RequestContext(project_id="proj-fn", user_id="user-fn")
FINAL_VOLUME_STATUSES = {states.AVAILABLE, states.IN_USE, *states.VOLUME_TRANSITIONAL.values()}


class Env:
    """One test's world: a unique host, its config, its daemons, an rpcapi client."""

    def __init__(self, tmp_path: Path, db: Database, db_url: str, rabbit_url: str) -> None:
        self.tmp = tmp_path
        self.db = db
        self.db_url = db_url
        self.rabbit_url = rabbit_url
        self.host = f"fmgr-{uuid.uuid4().hex[:10]}"
        self.daemons: list[Daemon] = []
        self.notification_topic = f"volmgr-test-{self.host}"
        conf = config.new_conf()
        config.parse_args([], conf, default_config_files=[])
        self.conf = conf
        self.transport = rpc.get_transport(conf, url=rabbit_url)
        self.api = rpcapi.VolumeAPI(conf, self.transport, cast_retry=3, call_timeout=15)
        self.sections: dict[str, dict[str, Any]] = {
            "DEFAULT": {"host": self.host, "transport_url": rabbit_url,
                        "state_path": tmp_path / "state"},
            "database": {"connection": db_url},
            "volume": {"driver": "file", "target_helper": "none", "report_interval": 1,
                       "recovery_interval": 3, "recovery_age": 2,
                       "recovery_max_attempts": 3, "executor_thread_pool_size": 8,
                       "graceful_shutdown_timeout": 30},
            "file": {"volumes_dir": tmp_path / "volumes"},
            "oslo_messaging_rabbit": {"rabbit_retry_interval": 1, "rabbit_retry_backoff": 1,
                                      "rabbit_interval_max": 3,
                                      "kombu_reconnect_delay": 0.5},
        }

    def use_tgtd(self, daemon: Tgtd) -> None:
        self.sections["volume"].update(
            target_helper="tgtadm", tgt_control_port=daemon.control_port,
            target_ip_address="127.0.0.1", target_port=daemon.portal_port,
            target_files_dir=self.tmp / "targets")

    def use_vg(self, vg: LoopVG) -> None:
        self.sections["volume"]["driver"] = "lvm"
        self.sections["lvm"] = {"volume_group": vg.name, "lvm_conf": vg.lvm_conf,
                                "device_dir": vg.device_dir, "volume_clear": "none"}

    def daemon(self, *, slow: str | None = None, start: bool = True,
               env: dict[str, str] | None = None) -> Daemon:
        path = write_config(self.tmp / "volmgr.conf", self.sections)
        daemon = Daemon(path, self.tmp, slow=slow, env=env)
        self.daemons.append(daemon)
        return daemon.start() if start else daemon

    # -- what the API would do ---------------------------------------------------------

    def create(self, size: int = 1, cast: bool = True, **kwargs: Any) -> str:
        volume_id = self.db.volume_create(project_id=CTX.project_id, user_id=CTX.user_id,
                                          size=size, host=self.host, display_name="fn",
                                          **kwargs).id
        if cast:
            self.api.create_volume(CTX, self.host, volume_id,
                                   snapshot_id=kwargs.get("snapshot_id"))
        return volume_id

    def delete(self, volume_id: str, times: int = 1) -> None:
        self.db.volume_transition_or_raise(volume_id, states.CAN_DELETE_FROM,
                                           {"status": states.DELETING,
                                            "recovery_attempts": 0})
        for _ in range(times):
            self.api.delete_volume(CTX, self.host, volume_id)

    def status(self, volume_id: str) -> str:
        try:
            return self.db.volume_get(volume_id).status
        except exception.VolumeNotFound:
            return "deleted"

    def wait_status(self, volume_id: str, status: str, timeout: float = 30) -> None:
        try:
            wait_for(lambda: self.status(volume_id) == status, timeout,
                     f"volume {volume_id} to be {status}")
        except AssertionError as error:
            logs = "\n".join(d.read_log()[-4000:] for d in self.daemons)
            raise AssertionError(f"{error}; it is {self.status(volume_id)}; daemon log "
                                 f"tail:\n{logs}") from None

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.close()
        self.transport.cleanup()
        delete_queues(self.rabbit_url, [f"{rpc.TOPIC}.{self.host}",
                                        f"{self.notification_topic}.info",
                                        f"{self.notification_topic}.error"])


@pytest.fixture
def env(tmp_path: Path, postgres_db: Database, postgres_url: str,
        rabbit_url: str) -> Iterator[Env]:
    world = Env(tmp_path, postgres_db, postgres_url, rabbit_url)
    try:
        yield world
    finally:
        world.close()


def assert_clean_log(daemon: Daemon) -> None:
    log = daemon.read_log()
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log


def notifications(rabbit_url: str, queue: str) -> list[dict[str, Any]]:
    """Drain the notification queue oslo.messaging declared for our private topic."""
    received = []
    with kombu.Connection(rabbit_url.replace("rabbit://", "amqp://", 1)) as connection:
        simple = connection.SimpleQueue(queue, queue_opts={"durable": False})
        try:
            while True:
                message = simple.get(block=True, timeout=1)
                # messagingv2 wraps each notification in an envelope.
                received.append(json.loads(message.payload["oslo.message"]))
                message.ack()
        except simple.Empty:
            pass
        finally:
            simple.close()
    return received


# -- all seven casts ---------------------------------------------------------------------


def test_all_seven_casts_on_the_file_driver_with_tgtd(env: Env, tgtd: Tgtd) -> None:  # noqa: F811
    env.use_tgtd(tgtd)
    env.sections["oslo_messaging_notifications"] = {"driver": "messagingv2",
                                                    "topics": env.notification_topic}
    daemon = env.daemon()
    volumes = Path(env.sections["file"]["volumes_dir"])

    volume_id = env.create(size=1)
    env.wait_status(volume_id, states.AVAILABLE)
    assert (volumes / f"volume-{volume_id}").stat().st_size == GiB

    snapshot = env.db.snapshot_create(volume_id, project_id=CTX.project_id,
                                      user_id=CTX.user_id)
    env.api.create_snapshot(CTX, env.host, snapshot.id)
    wait_for(lambda: env.db.snapshot_get(snapshot.id).status == states.SNAP_AVAILABLE, 30,
             "snapshot available")

    clone_id = env.create(size=1, snapshot_id=snapshot.id)
    env.wait_status(clone_id, states.AVAILABLE)
    assert (volumes / f"volume-{clone_id}").exists()

    env.db.volume_begin_extend(volume_id, 2)
    env.api.extend_volume(CTX, env.host, volume_id, 2)
    wait_for(lambda: env.db.volume_get(volume_id).size == 2, 30, "extend")
    assert (volumes / f"volume-{volume_id}").stat().st_size == 2 * GiB

    attachment = env.db.attachment_begin(
        volume_id, server_id="server-1", device="/dev/vdb",
        connector={"initiator": storage_env.INITIATOR_IQN, "host": "compute-1"})
    env.api.attach_volume(CTX, env.host, volume_id, attachment.id)
    env.wait_status(volume_id, states.IN_USE)
    info = env.db.attachment_get(attachment.id).connection_info
    assert info is not None and info["driver_volume_type"] == "iscsi"
    iqn = info["data"]["target_iqn"]
    assert tgtd.target_iqns() == {iqn}
    username, password = storage_env.connection_chap(info)
    assert storage_env.read_capacity(tgtd.portal, iqn, info["data"]["target_lun"],
                                     username, password) == 2 * GiB

    detaching = env.db.detach_begin(volume_id, "server-1")
    env.api.detach_volume(CTX, env.host, volume_id, detaching.id)
    env.wait_status(volume_id, states.AVAILABLE)
    assert tgtd.target_iqns() == set()

    env.db.snapshot_transition(snapshot.id, states.SNAP_CAN_DELETE_FROM,
                               {"status": states.SNAP_DELETING})
    env.api.delete_snapshot(CTX, env.host, snapshot.id)
    wait_for(lambda: not env.db.snapshot_list(filters={"id": snapshot.id}), 30,
             "snapshot deleted")

    env.delete(volume_id)
    env.delete(clone_id)
    env.wait_status(volume_id, "deleted")
    env.wait_status(clone_id, "deleted")
    assert sorted(p.name for p in volumes.glob("volume-*")) == []

    # Presence (the heartbeat's capabilities) and notifications.
    service = env.db.service_get(env.host, "volmgr-volume")
    assert service.capabilities["driver"] == "file"
    assert service.capabilities["total_capacity_gb"] > 0
    assert "free_capacity_gb" in service.capabilities
    sent = notifications(env.rabbit_url, f"{env.notification_topic}.info")
    events = [n["event_type"] for n in sent]
    for event in ("volume.create.start", "volume.create.end", "snapshot.create.end",
                  "volume.resize.end", "volume.attach.end", "volume.detach.end",
                  "snapshot.delete.end", "volume.delete.end"):
        assert event in events
    created = next(n for n in sent if n["event_type"] == "volume.create.end")
    assert created["publisher_id"] == f"volume.{env.host}"
    assert (created["payload"]["volume_id"], created["payload"]["tenant_id"],
            created["payload"]["size"], created["payload"]["status"]) == (
        volume_id, CTX.project_id, 1, states.AVAILABLE)
    assert_clean_log(daemon)


def test_lvm_create_extend_delete_are_seen_by_lvs(env: Env, loop_vg: LoopVG) -> None:  # noqa: F811
    env.use_vg(loop_vg)
    daemon = env.daemon()
    volume_id = env.create(size=1)
    env.wait_status(volume_id, states.AVAILABLE)
    assert loop_vg.lvs() == {f"volume-{volume_id}": GiB}

    env.db.volume_begin_extend(volume_id, 2)
    env.api.extend_volume(CTX, env.host, volume_id, 2)
    wait_for(lambda: env.db.volume_get(volume_id).size == 2, 30, "extend")
    assert loop_vg.lvs() == {f"volume-{volume_id}": 2 * GiB}

    env.delete(volume_id)
    env.wait_status(volume_id, "deleted")
    assert loop_vg.lvs() == {}
    capabilities = env.db.service_get(env.host, "volmgr-volume").capabilities
    assert capabilities["volume_group"] == loop_vg.name
    assert_clean_log(daemon)


def test_duplicate_delivery_of_create_and_delete_leaves_one_lv_then_none(
        env: Env, loop_vg: LoopVG) -> None:  # noqa: F811
    env.use_vg(loop_vg)
    daemon = env.daemon()
    volume_id = env.create(size=1)
    env.api.create_volume(CTX, env.host, volume_id)
    env.wait_status(volume_id, states.AVAILABLE)
    time.sleep(0.5)  # let the duplicate run
    assert loop_vg.lvs() == {f"volume-{volume_id}": GiB}
    assert env.db.volume_get(volume_id).status_reason is None
    env.delete(volume_id, times=2)
    env.wait_status(volume_id, "deleted")
    time.sleep(0.5)
    assert loop_vg.lvs() == {}
    assert_clean_log(daemon)


# -- crashes, lost casts, broker outages, signals ----------------------------------------


def test_kill_9_with_50_creates_in_flight_recovers_every_row(env: Env, tmp_path: Path) -> None:
    # 4 at a time, 0.4 s each: most of the 50 are still creating when the kill comes.
    env.sections["volume"].update(recovery_interval=5, recovery_age=2,
                                  executor_thread_pool_size=4)
    with storage_env.make_loop_vg(tmp_path / "bigvg", size_mib=64 * 1024) as vg:
        env.use_vg(vg)
        first = env.daemon(slow="create_volume=0.4")
        volume_ids = [env.create(size=1) for _ in range(50)]
        wait_for(lambda: sum(env.status(v) == states.AVAILABLE for v in volume_ids) >= 5,
                 30, "the first creates to finish")
        first.kill9()
        in_flight = [v for v in volume_ids if env.status(v) == states.CREATING]
        assert in_flight, "every create finished before the crash; nothing to recover"

        env.daemon()
        restarted = time.monotonic()
        wait_for(lambda: all(env.status(v) in FINAL_VOLUME_STATUSES for v in volume_ids),
                 60, "every row to leave 'creating'")
        elapsed = time.monotonic() - restarted
        print(f"kill -9 left {len(in_flight)} of 50 creates in flight; all rows final "
              f"{elapsed:.1f}s after the restart")
        assert elapsed <= 2 * 5, f"recovery took {elapsed:.1f}s > 2 x recovery_interval"
        rows = [env.db.volume_get(v) for v in volume_ids]
        for row in rows:
            assert row.status == states.AVAILABLE or row.status_reason, row.id
        live = {f"volume-{r.id}" for r in rows}
        assert set(vg.lvs()) == live
        vg.expected_lvs = live


def test_casts_sent_while_no_daemon_runs_are_completed_after_it_starts(env: Env) -> None:
    env.sections["volume"].update(recovery_interval=2, recovery_age=1)
    lost_cast = [env.create(size=1) for _ in range(3)]   # no queue yet: the casts vanish
    never_cast = env.create(size=1, cast=False)          # a cast dropped on purpose
    daemon = env.daemon()
    for volume_id in [*lost_cast, never_cast]:
        env.wait_status(volume_id, states.AVAILABLE, timeout=20)
    assert "Recovery re-drives" in daemon.read_log()


@pytest.mark.exclusive
def test_broker_restart_loses_nothing(env: Env) -> None:
    env.sections["volume"].update(recovery_interval=2, recovery_age=2)
    daemon = env.daemon()
    before = [env.create(size=1) for _ in range(3)]
    during: list[str] = []

    def api_during_outage() -> None:
        # What an API worker does while the broker is away: write the row, cast with a
        # bounded retry, and answer anyway; recovery owns the rest.
        outage_api = rpcapi.VolumeAPI(env.conf, env.transport, cast_retry=0)
        for _ in range(3):
            volume_id = env.create(size=1, cast=False)
            during.append(volume_id)
            try:
                outage_api.create_volume(CTX, env.host, volume_id)
            except Exception:
                pass

    try:
        stopped = rabbitmqctl("stop_app")
        assert stopped.returncode == 0, stopped.stderr
        worker = threading.Thread(target=api_during_outage)
        worker.start()
        worker.join(timeout=20)
        time.sleep(1)
    finally:
        started = rabbitmqctl("start_app")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: services.port_open("127.0.0.1", 5672), 30, "RabbitMQ back")
    after = [env.create(size=1) for _ in range(3)]
    for volume_id in [*before, *during, *after]:
        env.wait_status(volume_id, states.AVAILABLE, timeout=45)
    assert daemon.process is not None and daemon.process.poll() is None


def test_sigterm_during_a_slow_operation_lets_it_finish_and_exits_0(env: Env) -> None:
    daemon = env.daemon(slow="create_volume=3", env={"WATCHDOG_USEC": "1000000"})
    volume_id = env.create(size=1)
    wait_for(lambda: "slow-driver: create_volume" in daemon.read_log(), 20,
             "the slow create to begin")
    assert daemon.notify is not None
    wait_for(lambda: daemon.notify.seen("WATCHDOG=1"), 5, "a watchdog ping")
    daemon.signal(signal.SIGTERM)
    assert daemon.terminate(timeout=30) == 0
    assert env.status(volume_id) == states.AVAILABLE
    assert daemon.notify.seen("STOPPING=1")
    log = daemon.read_log()
    assert "In-flight operations finished" in log
    assert "volmgr-volume stopped" in log


def test_sighup_rereads_log_levels(env: Env) -> None:
    daemon = env.daemon()
    assert " DEBUG " not in daemon.read_log()
    env.sections["DEFAULT"]["debug"] = "true"
    write_config(daemon.config, env.sections)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "Log levels reloaded: debug=True" in daemon.read_log(), 10, "reload")
    env.create(size=1)
    wait_for(lambda: " DEBUG " in daemon.read_log(), 10, "debug lines")
    assert daemon.terminate() == 0


def test_a_missing_config_value_fails_start_with_exit_code_1(env: Env) -> None:
    env.sections["volume"]["driver"] = "lvm"
    env.sections["lvm"] = {"volume_group": f"no-such-vg-{uuid.uuid4().hex[:6]}"}
    daemon = env.daemon(start=False)
    result = subprocess.run(daemon.argv(), capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "volume group" in result.stderr
