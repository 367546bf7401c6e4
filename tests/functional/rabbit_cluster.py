"""A private 3-node RabbitMQ cluster on this machine for functional tests: its own node
names, AMQP and distribution ports, data directories and Erlang cookie (a private HOME),
so the system broker on 5672 is never touched. Needs the ``rabbitmq-server`` package."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.functional.test_api_clients import free_port
from tests.functional.volume_daemon import wait_for

#: The scripts themselves: /usr/sbin's wrappers switch to the rabbitmq user and its
#: HOME (the system broker's cookie).
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class Node:
    def __init__(self, base: Path, name: str, home: Path) -> None:
        self.name = name
        self.base = base / name.split("@")[0]
        self.base.mkdir(parents=True)
        self.home = home
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.base / "server.log"

    def env(self) -> dict[str, str]:
        (self.base / "enabled_plugins").write_text("[].\n")
        return {**os.environ, "HOME": str(self.home),
                "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_PID_FILE": str(self.base / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf")}

    def start(self) -> None:
        (self.base / "rabbitmq.conf").write_text(
            f"loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:{self.port}\n"
            "vm_memory_high_watermark.relative = 0.1\n")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([SERVER], env=self.env(), stdout=log,
                                            stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        self.wait()

    def wait(self, timeout: float = 120) -> None:
        wait_for(lambda: self.ctl("await_startup", timeout=60).returncode == 0
                 or (self.process is not None and self.process.poll() is not None),
                 timeout, f"{self.name} to start", 1)
        assert self.process is not None and self.process.poll() is None, self.log.read_text()

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CTL, "-n", self.name, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def stop_app(self) -> None:
        result = self.ctl("stop_app")
        assert result.returncode == 0, result.stderr

    def start_app(self) -> None:
        result = self.ctl("start_app", timeout=120)
        assert result.returncode == 0, result.stderr

    def shutdown(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("shutdown", timeout=60)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)


class RabbitCluster:
    """Three nodes joined into one cluster; ``transport_url`` lists all three."""

    def __init__(self, base: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.home = base / "home"
        self.home.mkdir(parents=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        self.nodes = [Node(base, f"volmgr{i}-{suffix}@localhost", self.home)
                      for i in range(1, 4)]

    @property
    def transport_url(self) -> str:
        hosts = ",".join(f"guest:guest@127.0.0.1:{n.port}" for n in self.nodes)
        return f"rabbit://{hosts}/"

    def start(self) -> None:
        first = self.nodes[0]
        first.start()
        for node in self.nodes[1:]:
            node.start()
            node.stop_app()
            joined = node.ctl("join_cluster", first.name, timeout=120)
            assert joined.returncode == 0, joined.stderr
            node.start_app()
        status = first.ctl("cluster_status")
        for node in self.nodes:
            assert node.name in status.stdout, status.stdout

    def queue_leader(self, queue: str) -> Node:
        """The node that leads quorum queue ``queue``."""
        for node in self.nodes:
            listed = node.ctl("list_queues", "-q", "--no-table-headers", "name", "type",
                              "leader")
            if listed.returncode != 0:
                continue
            for line in listed.stdout.splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[0] == queue:
                    assert fields[1] == "quorum", line
                    return next(n for n in self.nodes if n.name == fields[2])
        raise AssertionError(f"no node lists queue {queue}")

    def stop(self) -> None:
        for node in self.nodes:
            node.shutdown()


@pytest.fixture
def rabbit_cluster(tmp_path: Path) -> Iterator[RabbitCluster]:
    """A fresh 3-node cluster for one test (about 30 s to form on two cores)."""
    if not (os.path.exists(SERVER) and os.path.exists(CTL)):
        services.missing("needs the rabbitmq-server package")
    services.require_root()
    cluster = RabbitCluster(Path(f"/tmp/vrmq-{uuid.uuid4().hex[:6]}"))
    try:
        started = time.monotonic()
        cluster.start()
        print(f"3-node RabbitMQ cluster formed in {time.monotonic() - started:.1f} s")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.home.parent, ignore_errors=True)
