"""The stack the benchmark drives: scratch PostgreSQL database, loop-device VG, and the
volmgr processes (``volmgr-api``, ``volmgr-volume``) started from this installation."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa

from volmgr.bench import procs

BIN = Path(sys.executable).parent


def run(argv: Sequence[str], env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                            env={**os.environ, **(env or {})}, timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
        return True
    return False


class LoopVG:
    """A volume group on a sparse loop device with a private lvm.conf (activation = 0:
    LVs are metadata only, which is what the benchmark compares)."""

    def __init__(self, workdir: Path, size_gib: int) -> None:
        self.name = f"volmgr-bench-{uuid.uuid4().hex[:8]}"
        self.image = workdir / "pv.img"
        self.lvm_dir = workdir / "lvm"
        self.lvm_conf = self.lvm_dir / "lvm.conf"
        self.device_dir = workdir / "dev"
        self.size_gib = size_gib
        self.pv = ""
        self.env = {"LVM_SYSTEM_DIR": str(self.lvm_dir), "LVM_SUPPRESS_FD_WARNINGS": "1"}

    def create(self) -> None:
        self.lvm_dir.mkdir(parents=True)
        self.device_dir.mkdir(parents=True)
        with open(self.image, "wb") as handle:
            handle.truncate(self.size_gib * 1024 ** 3)
        self.pv = run(["losetup", "-f", "--show", str(self.image)]).stdout.strip()
        self.lvm_conf.write_text(
            "global { activation = 0 }\n"
            f'devices {{ filter = [ "a|^{self.pv}$|", "r|.*|" ] use_devicesfile = 0 }}\n'
            "backup { backup = 0 archive = 0 }\n")
        # Room for the metadata of thousands of LVs.
        self.lvm("pvcreate", "--metadatasize", "32m", self.pv)
        self.lvm("vgcreate", "-s", "64m", self.name, self.pv)

    def destroy(self) -> None:
        if self.pv:
            self.lvm("vgremove", "-f", self.name, check=False)
            self.lvm("pvremove", "-f", self.pv, check=False)
            run(["losetup", "-d", self.pv], check=False)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()

    def lvm(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(argv, env=self.env, check=check)


@contextlib.contextmanager
def loop_vg(workdir: Path, size_gib: int) -> Iterator[LoopVG]:
    vg = LoopVG(workdir, size_gib)
    try:
        vg.create()
        yield vg
    finally:
        vg.destroy()


@contextlib.contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    name = f"volmgr_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


class Stack:
    """``volmgr-api`` and ``managers`` x ``volmgr-volume``, one config file each."""

    def __init__(self, workdir: Path, *, db_url: str, transport_url: str, driver: str,
                 api_workers: int, managers: int, vg: LoopVG | None,
                 extra_conf: str = "") -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.hosts = [f"bench-{uuid.uuid4().hex[:6]}-{i}" for i in range(managers)]
        self.api_workers = api_workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.managers: list[subprocess.Popen[bytes]] = []
        storage = "[volume]\ntarget_helper = none\n"
        if driver == "lvm":
            assert vg is not None
            storage += (f"driver = lvm\n[lvm]\nvolume_group = {vg.name}\n"
                        f"lvm_conf = {vg.lvm_conf}\ndevice_dir = {vg.device_dir}\n"
                        "volume_clear = none\n")
        else:
            storage += f"driver = file\n[file]\nvolumes_dir = {workdir}/volumes\n"
        self.common = (
            f"transport_url = {transport_url}\nstate_path = {workdir}\n"
            f"[database]\nconnection = {db_url}\n"
            "[quota]\nvolumes = -1\ngigabytes = -1\nsnapshots = -1\n"
            f"[api]\nbind_host = 127.0.0.1\nbind_port = {self.port}\n"
            f"workers = {api_workers}\n{storage}{extra_conf}\n")

    def _config(self, host: str) -> Path:
        path = self.workdir / f"{host}.conf"
        path.write_text(f"[DEFAULT]\nhost = {host}\n{self.common}")
        return path

    def _spawn(self, binary: str, config: Path, log_name: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / log_name, "ab") as log:
            process = subprocess.Popen([str(BIN / binary), "--config-file", str(config)],
                                       stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def start(self, timeout: float = 90) -> None:
        for host in self.hosts:
            self.managers.append(self._spawn("volmgr-volume", self._config(host),
                                             f"{host}.log"))
        self.api = self._spawn("volmgr-api", self._config("bench-api"), "api.log")
        deadline = time.monotonic() + timeout
        while True:
            if self._api_up() and self._managers_up():
                break
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args!r} exited {process.returncode}; "
                                       f"see the logs in {self.workdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not come up; see {self.workdir}")
            time.sleep(0.2)
        # Every API worker forked and ready (gunicorn preloads nothing per worker).
        while len(procs.children_of(self.api.pid)) < self.api_workers:
            time.sleep(0.1)

    def _api_up(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/healthcheck")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _managers_up(self) -> bool:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as connection:
                hosts = {row[0] for row in connection.execute(
                    sa.text("SELECT host FROM services"))}
        except sa.exc.DBAPIError:
            return False
        finally:
            engine.dispose()
        return set(self.hosts) <= hosts

    def groups(self) -> list[procs.Group]:
        """The processes whose CPU and memory the report shows."""
        assert self.api is not None
        shells = [child for m in self.managers for child in procs.children_of(m.pid)
                  if procs.command_name(child) == "lvm"]
        return [
            procs.Group("api", procs.children_of(self.api.pid)),
            procs.Group("manager", [m.pid for m in self.managers],
                        children_label="manager children (LVM)"),
            # Long-lived lvm shells ([lvm] lvm_shell) are never reaped: count them live.
            procs.Group("manager children (LVM)", shells),
        ]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
