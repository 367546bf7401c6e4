"""Real ``volmgr-volume`` processes for functional tests: a config file per test, start
with systemd's NOTIFY_SOCKET protocol (READY=1 is awaited, not guessed), signals, kill -9,
and the RabbitMQ queue of the test's unique host removed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SLOW_WRAPPER = "tests.functional.slow_volume_daemon"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class NotifySocket:
    """The systemd side of sd_notify: an abstract datagram socket collecting states."""

    def __init__(self) -> None:
        self.name = f"@volmgr-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().splitlines())

    def seen(self, state: str) -> bool:
        return state in self.messages

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=2)
        self.sock.close()


class Daemon:
    """One ``volmgr-volume --config-file F`` process; stderr goes to ``log``."""

    def __init__(self, config: Path, workdir: Path, *, slow: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.workdir = workdir
        self.slow = slow
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.notify: NotifySocket | None = None
        self.log = workdir / f"volmgr-volume-{uuid.uuid4().hex[:6]}.log"

    def argv(self) -> list[str]:
        if self.slow:
            return [sys.executable, "-m", SLOW_WRAPPER, "--config-file", str(self.config)]
        binary = shutil.which("volmgr-volume", path=os.path.dirname(sys.executable))
        assert binary, "volmgr-volume is not installed in this virtualenv"
        return [binary, "--config-file", str(self.config)]

    def start(self, ready_timeout: float = 60) -> Daemon:
        self.notify = NotifySocket()
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": self.notify.name,
               "PYTHONPATH": str(ROOT)}
        if self.slow:
            env["VOLMGR_TEST_SLOW"] = self.slow
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        wait_for(lambda: self.notify.seen("READY=1") or self.process.poll() is not None,
                 ready_timeout, "READY=1")
        assert self.process.poll() is None, f"daemon exited:\n{self.read_log()}"
        return self

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
        if self.notify is not None:
            self.notify.close()


def delete_queues(rabbit_url: str, names: list[str]) -> None:
    """Remove the test host's queues so the shared broker does not collect them."""
    import kombu

    url = rabbit_url.replace("rabbit://", "amqp://", 1)
    try:
        with kombu.Connection(url, connect_timeout=5) as connection:
            channel = connection.channel()
            for name in names:
                try:
                    channel.queue_delete(name)
                except Exception:
                    channel = connection.channel()
    except Exception as error:  # cleanup only: never hide the test's own result
        print(f"could not delete queues {names}: {error}", file=sys.stderr)


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                          timeout=120, check=False)
