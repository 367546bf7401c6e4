"""The daemon's plumbing: the keyed thread pool, sd_notify, log reload, the embedded service
on the fake:// transport (heartbeat with capacity, graceful stop), the entry point's
argument handling and the systemd units."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from tests.unit.volume_fakes import FakeDriver
from volmgr import exception, log, rpc, states, systemd
from volmgr.cmd import volume as volume_cmd
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume import rpcapi
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.service import VolumeService
from volmgr.volume.thread_pool import KeyedThreadPool

ROOT = Path(__file__).resolve().parents[2]


# -- KeyedThreadPool -----------------------------------------------------------------


def test_jobs_with_one_key_run_in_arrival_order_one_at_a_time() -> None:
    pool = KeyedThreadPool(4)
    order: list[int] = []
    active = []

    def job(n: int) -> None:
        active.append(n)
        assert len(active) == 1
        time.sleep(0.005)
        order.append(n)
        active.remove(n)

    for n in range(10):
        pool.submit("vol-1", lambda n=n: job(n))
    assert pool.wait_idle(5)
    pool.close()
    assert order == list(range(10))


def test_a_failing_job_does_not_stop_the_next_one_of_its_key() -> None:
    pool = KeyedThreadPool(1)
    ran = []

    def boom() -> None:
        raise RuntimeError("boom")

    pool.submit("k", boom)
    pool.submit("k", lambda: ran.append(1))
    assert pool.wait_idle(5)
    assert ran == [1]
    pool.close()


def test_a_closed_pool_refuses_new_work_but_finishes_queued_work() -> None:
    pool = KeyedThreadPool(1)
    gate = threading.Event()
    done = []
    pool.submit("k", gate.wait)
    pool.submit("k", lambda: done.append(1))
    pool.close()
    with pytest.raises(exception.ServiceUnavailable):
        pool.submit("k", lambda: None)
    assert not pool.wait_idle(0.05)
    gate.set()
    assert pool.wait_idle(5)
    assert done == [1]


# -- sd_notify -----------------------------------------------------------------------


def test_sd_notify_sends_a_datagram_to_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"volmgr-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert listener.recv(100) == b"READY=1"


def test_sd_notify_outside_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert systemd.watchdog_interval() is None


# -- logging -------------------------------------------------------------------------


def test_reload_applies_new_levels_from_the_config_file(tmp_path: Path) -> None:
    from volmgr import config
    path = tmp_path / "volmgr.conf"
    path.write_text("[DEFAULT]\ndebug = false\ndefault_log_levels = kombu=ERROR\n")
    conf = config.new_conf()
    config.parse_args(["--config-file", str(path)], conf, default_config_files=[])
    log.apply_levels(conf)
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("kombu").level == logging.ERROR
    path.write_text("[DEFAULT]\ndebug = true\ndefault_log_levels = kombu=INFO\n")
    log.reload(conf)
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("kombu").level == logging.INFO
    logging.getLogger().setLevel(logging.WARNING)


# -- the embedded service ------------------------------------------------------------


@pytest.fixture
def service(conf: cfg.ConfigOpts, db: Database) -> Any:
    conf.set_override("host", "node-s")
    conf.set_override("report_interval", 1, group="volume")
    transport = rpc.get_transport(conf, url="fake://")
    svc = VolumeService(conf, db=db, driver=FakeDriver(), transport=transport,
                        notifier=VolumeNotifier(None))
    yield svc, transport
    transport.cleanup()


def test_service_heartbeats_capacity_and_serves_casts_then_stops_gracefully(
        service: Any, conf: cfg.ConfigOpts, db: Database) -> None:
    svc, transport = service
    svc.start()
    try:
        row = db.service_get("node-s", rpc.VOLUME_SERVICE)
        assert row.topic == rpc.TOPIC
        assert row.capabilities["total_capacity_gb"] == 100.0
        assert row.capabilities["free_capacity_gb"] == 100.0
        assert row.capabilities["driver"] == "fake"
        assert row.capabilities["thin_provisioning_support"] is False
        volume_id = db.volume_create(project_id="p", user_id="u", size=1, host="node-s").id
        gate = threading.Event()
        svc.driver.gates["create_volume"] = gate
        rpcapi.VolumeAPI(conf, transport).create_volume(RequestContext("p", "u"), "node-s",
                                                        volume_id)
        deadline = time.monotonic() + 5
        while (("create_volume", volume_id) not in svc.driver.calls
               and time.monotonic() < deadline):
            time.sleep(0.01)
        threading.Timer(0.2, gate.set).start()
    finally:
        assert svc.stop(timeout=10) is True  # waited for the create in flight
    assert db.volume_get(volume_id).status == states.AVAILABLE


def test_stop_gives_up_after_the_timeout_and_says_so(service: Any, db: Database) -> None:
    svc, _ = service
    svc.start()
    gate = threading.Event()
    svc.driver.gates["create_volume"] = gate
    volume_id = db.volume_create(project_id="p", user_id="u", size=1, host="node-s").id
    svc.manager.create_volume({}, volume_id)
    try:
        assert svc.stop(timeout=0.2) is False
    finally:
        gate.set()
    assert db.volume_get(volume_id).status in (states.CREATING, states.AVAILABLE)


def test_a_failing_backend_still_heartbeats(service: Any, db: Database,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    svc, _ = service
    def broken() -> None:
        raise exception.BackendError(reason="vgs failed")
    monkeypatch.setattr(svc.driver, "get_capacity", broken)
    svc.report_state()
    assert db.service_get("node-s", rpc.VOLUME_SERVICE).report_count == 1


# -- entry point and units -----------------------------------------------------------


def test_an_unknown_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        volume_cmd.main(["--no-such-option"])
    assert caught.value.code == 2


@pytest.mark.parametrize("nice,expected", [(None, [10]), (5, [5]), (0, [])])
def test_nice_lowers_the_managers_priority_before_it_builds_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nice: int | None,
        expected: list[int]) -> None:
    """``[volume] nice`` is applied by the process itself, before the service (and so
    before any LVM command, which inherits it) exists: 10 unless configured; 0 leaves
    it alone."""
    calls: list[int] = []
    monkeypatch.setattr(volume_cmd.os, "nice", lambda increment: calls.append(increment))

    def refuse(conf: cfg.ConfigOpts) -> None:
        assert calls == expected  # already applied when the service is built
        raise exception.InvalidConfiguration(reason="stop here")
    monkeypatch.setattr(volume_cmd, "VolumeService", refuse)
    config = tmp_path / "volmgr.conf"
    setting = "" if nice is None else f"nice = {nice}\n"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[volume]\n{setting}")
    assert volume_cmd.main(["--config-file", str(config)]) == 1
    assert calls == expected


def test_a_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert volume_cmd.main(["--config-file", "/nonexistent/volmgr.conf"]) == 2
    assert "volmgr-volume" in capsys.readouterr().err


@pytest.mark.parametrize("unit", ["volmgr-volume.service", "volmgr-api.service"])
def test_systemd_units_wait_for_ready_and_restart_on_failure(unit: str) -> None:
    # systemd-analyze verify runs on them in tests/functional/test_systemd_units.py.
    lines = (ROOT / "etc/systemd" / unit).read_text().splitlines()
    for expected in ("Type=notify", "Restart=on-failure", "NoNewPrivileges=yes",
                     "ExecReload=/bin/kill -HUP $MAINPID"):
        assert expected in lines, expected
    if unit == "volmgr-volume.service":
        assert "WatchdogSec=60" in lines
        assert "KillMode=mixed" in lines
