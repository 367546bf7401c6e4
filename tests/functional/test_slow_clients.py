"""Slow and idle clients cost the API nothing but sockets.

A crowd of 700 hostile connections is held against a real ``volmgr-api`` (default
``[api]`` settings: 2 worker processes, 1 request thread each; PostgreSQL) and against
a real ``volmgr-all`` (its embedded defaults: SQLite, in-process bus, file driver):

* 500 connections that never send a byte,
* 100 that send a request's headers one byte per second (never finishing them),
* 100 that send complete headers announcing a body and stop part-way through it.

Meanwhile another client keeps sending ``GET /healthcheck`` and ``POST`` creates, each
on a new connection. Every one of its requests must be answered, no worker may be
killed or restarted, and the crowd must still be connected at the end (the server held
it rather than refusing it). The latencies are printed (``-s`` shows them); the p99 is
asserted against the issue's 1 s with a margin for a shared, busy test machine.

Everything listens on 127.0.0.1 only; each run is bounded (about 25 s of load).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.functional.test_api_clients import BIN, ROOT, free_port, write_config
from tests.functional.volume_daemon import wait_for
from tests.unit.api_helpers import register_host
from volmgr.db import Database

IDLE, SLOW_HEADERS, MID_BODY = 500, 100, 100
LOAD_SECONDS = 25.0
#: The issue asks for a p99 under 1 s; the bound asserted leaves room for a test
#: machine shared with other work (the figure itself is printed).
P99_BOUND = 3.0


class Server:
    """A volmgr program listening on 127.0.0.1:port, its output in a log file."""

    def __init__(self, argv: list[str], log: Path, port: int,
                 env: dict[str, str] | None = None) -> None:
        self.log, self.port = log, port
        self.base = f"http://127.0.0.1:{port}"
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def healthy() -> bool:
            assert self.popen.poll() is None, f"server exited:\n{self.text()}"
            try:
                return requests.get(f"{self.base}/healthcheck", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or still booting
                return False
        wait_for(healthy, 90, "/healthcheck")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


class Crowd:
    """The hostile connections, driven by one thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        self.mid_body: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def _connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def gather(self) -> None:
        for _ in range(IDLE):
            self.idle.append(self._connect())
        for _ in range(SLOW_HEADERS):
            sock = self._connect()
            sock.sendall(b"G")
            self.slow.append(sock)
        for index in range(MID_BODY):
            sock = self._connect()
            sock.sendall(b"POST /v3/crowd/volumes HTTP/1.1\r\nHost: t\r\n"
                         b"X-Auth-Token: crowd:crowd\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 4096\r\n\r\n" + b'{"volume": {"name": "'
                         + str(index).encode())
            self.mid_body.append(sock)
        self.thread.start()

    def _trickle(self) -> None:
        rest = b"ET /healthcheck HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
        sent = 0
        while not self.stopping.wait(1.0) and sent < len(rest):
            for sock in self.slow:
                try:
                    sock.sendall(rest[sent:sent + 1])
                except OSError:
                    pass
            sent += 1

    def still_connected(self, socks: list[socket.socket]) -> int:
        alive = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""  # bytes would be an answer: not expected
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for sock in self.idle + self.slow + self.mid_body:
            sock.close()


def measure(base: str, seconds: float) -> tuple[list[float], list[int]]:
    """GET /healthcheck and POST create, alternately, each on a new connection."""
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        index += 1
        started = time.monotonic()
        if index % 2:
            answer = requests.get(f"{base}/healthcheck", timeout=30)
        else:
            project = f"sc{uuid.uuid4().hex[:10]}"  # one project each: quota stays out
            answer = requests.post(f"{base}/v3/{project}/volumes",
                                   headers={"X-Auth-Token": f"u:{project}"},
                                   json={"volume": {"size": 1, "name": f"v{index}"}},
                                   timeout=30)
        latencies.append(time.monotonic() - started)
        statuses.append(answer.status_code)
        time.sleep(0.05)
    return latencies, statuses


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def run_against(server: Server, label: str, workers_booted: Callable[[], int]) -> None:
    booted = workers_booted()
    crowd = Crowd(server.port)
    try:
        started = time.monotonic()
        crowd.gather()
        gathered = time.monotonic() - started
        latencies, statuses = measure(server.base, LOAD_SECONDS)
        held = (crowd.still_connected(crowd.idle), crowd.still_connected(crowd.slow),
                crowd.still_connected(crowd.mid_body))
    finally:
        crowd.close()
    figures = (f"{label}: {len(latencies)} requests under a crowd of {IDLE} idle, "
               f"{SLOW_HEADERS} slow-header, {MID_BODY} mid-body connections (gathered in "
               f"{gathered:.1f} s): p50 {statistics.median(latencies) * 1000:.0f} ms, "
               f"p99 {p99(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
               f"still connected at the end: {held}")
    print(figures)
    assert set(statuses) <= {200, 202}, statuses
    assert len(statuses) >= 50
    assert server.popen.poll() is None
    text = server.text()
    assert "WORKER TIMEOUT" not in text and "was sent SIGKILL" not in text
    # Clients that leave are INFO lines, never errors or tracebacks.
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert workers_booted() == booted, "a worker was restarted"
    # The crowd was held, not refused: the server closes idle connections only after
    # CLIENT_TIMEOUT (30 s) of silence and partial requests after REQUEST_DEADLINE.
    assert held[0] >= IDLE * 0.95 and held[1] >= SLOW_HEADERS * 0.95 \
        and held[2] >= MID_BODY * 0.95, held
    assert p99(latencies) < P99_BOUND, figures


@pytest.fixture
def api(tmp_path: Path, postgres_db: Database, postgres_url: str) -> Iterator[Server]:
    register_host(postgres_db, "slow-clients-node", free=1e9)
    port = free_port()
    config = write_config(tmp_path / "api.conf", {
        "DEFAULT": {"transport_url": "fake://", "state_path": tmp_path / "state",
                    "host": f"sc-api-{port}"},
        "database": {"connection": postgres_url},
        "api": {"bind_host": "127.0.0.1", "bind_port": port},  # the rest: defaults
    })
    server = Server([str(BIN / "volmgr-api"), "--config-file", str(config)],
                    tmp_path / "api.log", port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    config = write_config(tmp_path / "all.conf", {
        "api": {"bind_port": port}, "volume": {"target_helper": "none"}})
    server = Server([str(BIN / "volmgr-all"), "--config-file", str(config)],
                    tmp_path / "all.log", port, env={"XDG_STATE_HOME": str(tmp_path)})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_volmgr_api_keeps_answering_under_a_crowd_of_slow_clients(api: Server) -> None:
    run_against(api, "volmgr-api", lambda: api.text().count("Booting worker with pid"))


def test_volmgr_all_keeps_answering_under_a_crowd_of_slow_clients(
        all_in_one: Server) -> None:
    run_against(all_in_one, "volmgr-all", lambda: 1)

