"""Real storage for functional tests: a loop-device VG, a private tgtd, a libiscsi initiator.

Import the fixtures (``loop_vg``, ``tgtd``) into a test module, or use the context managers
directly. Every name is unique (VG, tgtd control port, portal port), so concurrent test runs
on one machine do not collide. ``LoopVG.activate`` stands in for device-mapper activation on
kernels without it: a loop device over the LV's extents, linked where the driver expects
the LV's device node. Test-only behaviour lives here, never in the drivers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import services
from volmgr.volume.executor import CommandResult, ProcessExecutor

INITIATOR_IQN = "iqn.2024-01.org.volmgr:test-initiator"
DEVICE_MAPPER_CONTROL = "/dev/mapper/control"
NO_DEVICE_MAPPER = ("LVM snapshots and thin pools need device-mapper; this kernel has none "
                    f"({DEVICE_MAPPER_CONTROL} is missing or dead: no device-mapper in "
                    "/proc/misc), so their exact commands are covered by the scripted unit "
                    "tests instead")


def has_device_mapper() -> bool:
    """True when LVM can activate LVs: the control node exists and the kernel has the
    driver (libdevmapper creates a dead control node on kernels without it)."""
    if not os.path.exists(DEVICE_MAPPER_CONTROL):
        return False
    try:
        with open("/proc/misc") as misc:
            return any(line.split()[-1] == "device-mapper" for line in misc if line.strip())
    except OSError:
        return False


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None,
         check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(list(argv), capture_output=True, text=True, env=full_env,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): "
                             f"{result.stderr.strip()}")
    return result


class RecordingExecutor(ProcessExecutor):
    """Runs commands for real and remembers every argv (and env) it ran."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.argvs: list[tuple[str, ...]] = []

    def _run(self, argv: tuple[str, ...], env: Mapping[str, str] | None, timeout: float,
             stdin: str | None) -> CommandResult:
        self.argvs.append(argv)
        return super()._run(argv, env, timeout, stdin)


# -- LVM on a loop device --------------------------------------------------------------


class LoopVG:
    """A volume group on a loop device with its own lvm.conf."""

    def __init__(self, workdir: Path, size_mib: int, activation: bool) -> None:
        self.workdir = workdir
        self.name = f"volmgr-test-{uuid.uuid4().hex[:10]}"
        self.image = workdir / "pv.img"
        self.lvm_dir = workdir / "lvm"
        self.lvm_conf = self.lvm_dir / "lvm.conf"
        self.activation = activation
        # With real activation LVs appear under /dev; the stand-in links them here.
        self.device_dir = "/dev" if activation else str(workdir / "dev")
        self.size_mib = size_mib
        self.pv = ""
        self.env = {"LVM_SYSTEM_DIR": str(self.lvm_dir), "LVM_SUPPRESS_FD_WARNINGS": "1"}
        #: LV names the test means to leave behind; anything else fails the teardown.
        self.expected_lvs: set[str] = set()
        self._stand_ins: dict[str, str] = {}

    def create(self) -> None:
        self.lvm_dir.mkdir(parents=True)
        with open(self.image, "wb") as handle:
            handle.truncate(self.size_mib * 1024 * 1024)
        self.pv = _run(["losetup", "-f", "--show", str(self.image)]).stdout.strip()
        self.lvm_conf.write_text(
            f"global {{ activation = {1 if self.activation else 0} }}\n"
            f'devices {{ filter = [ "a|^{self.pv}$|", "r|.*|" ] use_devicesfile = 0 }}\n'
            "backup { backup = 0 archive = 0 }\n")
        self.lvm("pvcreate", self.pv)
        self.lvm("vgcreate", self.name, self.pv)

    def destroy(self) -> None:
        for lv in list(self._stand_ins):
            self.deactivate(lv)
        if self.pv:
            self.lvm("vgremove", "-f", self.name, check=False)
            self.lvm("pvremove", "-f", self.pv, check=False)
            _run(["losetup", "-d", self.pv], check=False)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()

    def configure(self, conf: Any) -> None:
        """Point ``[lvm]`` of ``conf`` at this VG."""
        conf.set_override("driver", "lvm", group="volume")
        conf.set_override("volume_group", self.name, group="lvm")
        conf.set_override("lvm_conf", str(self.lvm_conf), group="lvm")
        conf.set_override("device_dir", self.device_dir, group="lvm")

    def lvm(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(argv, env=self.env, check=check)

    def lvs(self) -> dict[str, int]:
        """LV name -> size in bytes, as ``lvs`` reports them."""
        out = self.lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator",
                       "|", "-o", "lv_name,lv_size", self.name).stdout
        return {name.strip(): int(size) for name, size in
                (line.split("|") for line in out.splitlines() if line.strip())}

    def vgs(self) -> tuple[int, int]:
        """(size, free) in bytes, as ``vgs`` reports them."""
        out = self.lvm("vgs", "--noheadings", "--units", "b", "--nosuffix", "--separator",
                       "|", "-o", "vg_size,vg_free", self.name).stdout
        size, free = out.strip().split("|")
        return int(size), int(free)

    def extents(self, lv_name: str) -> tuple[int, int]:
        """(byte offset on the PV, byte length) of a single-segment linear LV."""
        out = self.lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator",
                       "|", "-o", "seg_pe_ranges,vg_extent_size,lv_size",
                       f"{self.name}/{lv_name}").stdout
        rows = [line.strip().split("|") for line in out.splitlines() if line.strip()]
        assert len(rows) == 1, f"stand-in handles single-segment LVs only: {rows}"
        ranges, extent_size, lv_size = rows[0]
        pv, _, pe_range = ranges.strip().rpartition(":")
        assert pv == self.pv and " " not in pe_range, ranges
        first_pe = int(pe_range.split("-")[0])
        pe_start = int(self.lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o",
                                "pe_start", self.pv).stdout.strip())
        return pe_start + first_pe * int(extent_size), int(lv_size)

    def activate(self, lv_name: str) -> str:
        """Stand in for device-mapper: expose the LV's bytes at the driver's device path."""
        if self.activation:
            return os.path.join(self.device_dir, self.name, lv_name)
        offset, length = self.extents(lv_name)
        loop = _run(["losetup", "-f", "--show", "--offset", str(offset), "--sizelimit",
                     str(length), self.pv]).stdout.strip()
        link = Path(self.device_dir) / self.name / lv_name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(loop)
        self._stand_ins[lv_name] = loop
        return str(link)

    def deactivate(self, lv_name: str) -> None:
        loop = self._stand_ins.pop(lv_name, None)
        with contextlib.suppress(FileNotFoundError):
            (Path(self.device_dir) / self.name / lv_name).unlink()
        if loop:
            _run(["losetup", "-d", loop], check=False)

    def read_pv(self, offset: int, length: int) -> bytes:
        with open(self.pv, "rb") as device:
            device.seek(offset)
            return device.read(length)


def require_lvm() -> None:
    services.require_root()
    services.require_loop_devices()
    services.require_binary("lvcreate", "losetup", "dd")


@contextlib.contextmanager
def make_loop_vg(workdir: Path, size_mib: int = 4096,
                 activation: bool = False) -> Iterator[LoopVG]:
    """A fresh VG (unique name) on a sparse loop device; removed with its PV afterwards."""
    require_lvm()
    vg = LoopVG(workdir, size_mib, activation)
    try:
        vg.create()
        yield vg
        left = set(vg.lvs()) - vg.expected_lvs
        assert not left, f"the VG holds LVs the test did not expect: {sorted(left)}"
    finally:
        vg.destroy()


@pytest.fixture
def loop_vg(tmp_path: Path) -> Iterator[LoopVG]:
    """A 4 GiB (sparse) loop-device VG with a private lvm.conf (activation = 0)."""
    with make_loop_vg(tmp_path / "loopvg") as vg:
        yield vg


# -- tgtd ------------------------------------------------------------------------------


class Tgtd:
    """A private tgtd on its own control port, with one portal on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.control_port = 0
        self.portal_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def portal(self) -> str:
        return f"127.0.0.1:{self.portal_port}"

    def start(self) -> None:
        """Start tgtd; picks free ports on the first start and keeps them on restarts."""
        for _ in range(10):
            if not self.control_port:
                self.control_port = _free_control_port()
                self.portal_port = _free_tcp_port()
            if self._spawn():
                return
            self.control_port = self.portal_port = 0
        raise AssertionError("could not start a private tgtd")

    def _spawn(self) -> bool:
        log = open(self.workdir / "tgtd.log", "ab")
        self.process = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.control_port), "--iscsi",
             f"portal={self.portal}"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if (services.port_open("127.0.0.1", self.portal_port, timeout=0.2)
                    and self.tgtadm("--op", "show", "--mode", "sys", check=False)
                    .returncode == 0):
                return True
            time.sleep(0.05)
        self.kill()
        return False

    def kill(self) -> None:
        """Kill tgtd the hard way, as a crash would (SIGKILL), and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.kill()
        if not self._spawn():
            raise AssertionError("tgtd did not come back on its ports")

    def stop(self) -> None:
        self.kill()
        for suffix in ("", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/var/run/tgtd/socket.{self.control_port}{suffix}")

    def configure(self, conf: Any) -> None:
        """Point ``[volume]`` of ``conf`` at this tgtd."""
        conf.set_override("target_helper", "tgtadm", group="volume")
        conf.set_override("tgt_control_port", self.control_port, group="volume")
        conf.set_override("target_ip_address", "127.0.0.1", group="volume")
        conf.set_override("target_port", self.portal_port, group="volume")

    def tgtadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args],
                    check=check)

    def target_iqns(self) -> set[str]:
        out = self.tgtadm("--op", "show", "--mode", "target").stdout
        return {line.split(": ", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Target ")}

    def acl(self, iqn: str) -> list[str] | None:
        """The ACL entries of target ``iqn`` (None when tgtd does not hold it)."""
        out = self.tgtadm("--op", "show", "--mode", "target", check=False).stdout
        entries: list[str] | None = None
        section = ""
        for line in out.splitlines():
            if line.startswith("Target "):
                if entries is not None:
                    break
                entries = [] if line.split(": ", 1)[1].strip() == iqn else None
            elif entries is not None and line.startswith("    ") and line.endswith(":") \
                    and not line.startswith("     "):
                section = line.strip()
            elif entries is not None and section == "ACL information:" and line.strip():
                entries.append(line.strip())
        return entries

    def restore_from_target_files(self, files_dir: str) -> subprocess.CompletedProcess[str]:
        """What tgt.service does at boot: ``tgt-admin -e`` over etc/tgt/volmgr.conf's
        include line, pointed at ``files_dir``."""
        conf = self.workdir / "targets.conf"
        conf.write_text(f"include {files_dir}/volume-*[0-9a-f]\n")
        return _run(["tgt-admin", "-C", str(self.control_port), "--conf", str(conf), "-e"],
                    check=False)


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_control_port() -> int:
    # tgtd's control "port" names a unix socket; any unused number will do.
    while True:
        port = random.randint(10000, 32000)  # tgtd refuses -C values above 32767
        if not os.path.exists(f"/var/run/tgtd/socket.{port}.lock"):
            return port


@contextlib.contextmanager
def make_tgtd(workdir: Path) -> Iterator[Tgtd]:
    services.require_root()
    services.require_binary("tgtd", "tgtadm", "tgt-admin", "iscsi-ls",
                            "iscsi-readcapacity16")
    workdir.mkdir(parents=True, exist_ok=True)
    daemon = Tgtd(workdir)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    """A private tgtd (unique control port and portal port), killed afterwards."""
    with make_tgtd(tmp_path / "tgtd") as daemon:
        yield daemon


# -- libiscsi initiator ----------------------------------------------------------------


def _chap_env(username: str | None, password: str | None) -> dict[str, str]:
    # libiscsi reads CHAP from the environment, which keeps it off the test's argv too.
    if username is None or password is None:
        return {}
    return {"LIBISCSI_CHAP_USERNAME": username, "LIBISCSI_CHAP_PASSWORD": password}


def iscsi_ls(portal: str, username: str | None = None, password: str | None = None,
             initiator: str = INITIATOR_IQN) -> subprocess.CompletedProcess[str]:
    """``iscsi-ls -s``: discovers targets and logs into each to list its LUNs."""
    return _run(["iscsi-ls", "-s", "-i", initiator, f"iscsi://{portal}"],
                env=_chap_env(username, password), check=False, timeout=30)


def read_capacity(portal: str, iqn: str, lun: int, username: str | None = None,
                  password: str | None = None,
                  initiator: str = INITIATOR_IQN) -> int | None:
    """The LUN's size in bytes per ``iscsi-readcapacity16``; None when login fails."""
    result = _run(["iscsi-readcapacity16", "-i", initiator, f"iscsi://{portal}/{iqn}/{lun}"],
                  env=_chap_env(username, password), check=False, timeout=30)
    for line in result.stdout.splitlines():
        if line.startswith("Total size:"):
            return int(line.split(":", 1)[1])
    return None


def login_error(portal: str, iqn: str, lun: int, username: str | None = None,
                password: str | None = None, initiator: str = INITIATOR_IQN) -> str:
    """What ``iscsi-readcapacity16`` printed when it could not read the LUN."""
    result = _run(["iscsi-readcapacity16", "-i", initiator, f"iscsi://{portal}/{iqn}/{lun}"],
                  env=_chap_env(username, password), check=False, timeout=30)
    return (result.stderr + result.stdout).strip()


def connection_chap(info: dict[str, Any]) -> tuple[str, str]:
    data = info["data"]
    return data["auth_username"], data["auth_password"]
