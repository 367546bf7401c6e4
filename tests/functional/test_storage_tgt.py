"""Exports through a real tgtd, proven by a real initiator (libiscsi): CHAP, exact sizes,
removal, per-export initiator ACLs (a connector naming an initiator admits only it, one
naming none admits any initiator with CHAP, target_initiator_acl = false never restricts),
restoring every export after tgtd is killed (by volmgr and by tgt's own boot path), CHAP
secrets absent from every process's command line, no moment in which a restricted target
admits an unnamed initiator, and LVM + tgt end to end."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.functional.storage_env import (
    INITIATOR_IQN,
    RecordingExecutor,
    connection_chap,
    iscsi_ls,
    login_error,
    loop_vg,  # noqa: F401 - fixture
    read_capacity,
    tgtd,  # noqa: F401 - fixture
)
from volmgr.volume.driver import VolumeDriver, VolumeRef
from volmgr.volume.drivers import loader
from volmgr.volume.targets import base

GiB = 1024 ** 3
CONNECTOR = {"initiator": INITIATOR_IQN, "host": "test-host", "ip": "127.0.0.1"}
NO_INITIATOR = {"host": "test-host", "ip": "127.0.0.1"}
STRANGER = "iqn.2024-01.org.volmgr:stranger"


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def file_driver(conf, tgtd, recorder) -> VolumeDriver:  # noqa: F811
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=recorder)
    driver.check_setup()
    return driver


def exported(driver: VolumeDriver, size: int = 1,
             connector: dict | None = None) -> tuple[VolumeRef, dict]:
    volume = VolumeRef(str(uuid.uuid4()), size)
    driver.create_volume(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, size, update["provider_location"], update["provider_auth"])
    return volume, driver.initialize_connection(
        volume, CONNECTOR if connector is None else connector)


def removed(driver: VolumeDriver, volume: VolumeRef) -> None:
    driver.remove_export(volume)
    driver.delete_volume(volume)


def test_an_export_answers_an_initiator_with_chap_at_the_exact_size(file_driver,
                                                                    tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver, size=1)
    data = info["data"]
    assert info["driver_volume_type"] == "iscsi"
    assert data["target_portal"] == tgtd.portal and data["target_lun"] == 1
    user, secret = connection_chap(info)
    listing = iscsi_ls(tgtd.portal, user, secret)
    assert data["target_iqn"] in listing.stdout and "Lun:1" in listing.stdout
    assert read_capacity(tgtd.portal, data["target_iqn"], 1, user, secret) == 1 * GiB
    file_driver.remove_export(volume)
    file_driver.delete_volume(volume)


def test_login_fails_without_chap_or_with_a_wrong_secret(file_driver, tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    iqn = info["data"]["target_iqn"]
    user, secret = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1) is None
    assert "Authentication failure" in login_error(tgtd.portal, iqn, 1)
    assert read_capacity(tgtd.portal, iqn, 1, user, secret[:-1] + "x") is None
    assert read_capacity(tgtd.portal, iqn, 1, "someoneelse", secret) is None
    other, other_info = exported(file_driver)
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(other_info)) is None, \
        "one volume's credentials do not open another volume"
    for each in (volume, other):
        file_driver.remove_export(each)
        file_driver.delete_volume(each)


def test_after_remove_export_the_target_is_gone(file_driver, tgtd, conf) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    iqn = info["data"]["target_iqn"]
    assert iqn in tgtd.target_iqns()
    file_driver.remove_export(volume)
    assert iqn not in tgtd.target_iqns()
    assert iqn not in iscsi_ls(tgtd.portal, *connection_chap(info)).stdout
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(info)) is None
    user = connection_chap(info)[0]
    assert user not in tgtd.tgtadm("--op", "show", "--mode", "account").stdout
    assert os.listdir(conf.volume.target_files_dir) == [".lock"]
    file_driver.remove_export(volume)  # already gone: still fine
    file_driver.delete_volume(volume)


def test_ensure_export_restores_every_export_after_tgtd_is_killed(file_driver,
                                                                   tgtd) -> None:  # noqa: F811
    volumes = [exported(file_driver, size) for size in (1, 2, 3)]
    tgtd.restart()
    assert tgtd.target_iqns() == set()
    for volume, _ in volumes:
        file_driver.ensure_export(volume)
    assert file_driver.list_exported_volume_ids() == {v.id for v, _ in volumes}
    for volume, info in volumes:
        size = read_capacity(tgtd.portal, info["data"]["target_iqn"], 1,
                             *connection_chap(info))
        assert size == volume.size * GiB
    for volume, _ in volumes:
        file_driver.ensure_export(volume)  # present: a no-op
        file_driver.remove_export(volume)
        file_driver.delete_volume(volume)


def test_by_default_a_connector_naming_an_initiator_admits_only_that_initiator(
        file_driver, tgtd, conf) -> None:  # noqa: F811
    assert conf.volume.target_initiator_acl is True, "the default restricts"
    volume, info = exported(file_driver, connector=CONNECTOR)
    iqn = info["data"]["target_iqn"]
    chap = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1, *chap) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, *chap, initiator=STRANGER) is None
    assert "ALL" not in tgtd.acl(iqn)  # type: ignore[operator]
    file_driver.terminate_connection(volume, CONNECTOR)
    assert read_capacity(tgtd.portal, iqn, 1, *chap) is None, "its ACL entry is gone"
    assert tgtd.acl(iqn) == []
    file_driver.terminate_connection(volume, CONNECTOR)  # already gone: still fine
    removed(file_driver, volume)


def test_by_default_a_connector_naming_no_initiator_admits_any_initiator_with_chap(
        file_driver, tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver, connector=NO_INITIATOR)
    iqn = info["data"]["target_iqn"]
    user, secret = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1, user, secret) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, user, secret, initiator=STRANGER) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, user, secret[:-1] + "x",
                         initiator=STRANGER) is None
    assert read_capacity(tgtd.portal, iqn, 1, initiator=STRANGER) is None, "CHAP still"
    file_driver.terminate_connection(volume, NO_INITIATOR)
    assert read_capacity(tgtd.portal, iqn, 1, user, secret, initiator=STRANGER) is None
    removed(file_driver, volume)


def test_with_target_initiator_acl_off_a_named_initiator_does_not_restrict(
        conf, tgtd, recorder) -> None:  # noqa: F811
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    conf.set_override("target_initiator_acl", False, group="volume")
    driver = loader.load_driver(conf, executor=recorder)
    volume, info = exported(driver, connector=CONNECTOR)
    iqn = info["data"]["target_iqn"]
    user, secret = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1, user, secret) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, user, secret, initiator=STRANGER) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, user, secret[:-1] + "x",
                         initiator=STRANGER) is None
    removed(driver, volume)


def test_after_tgtd_is_killed_ensure_export_restores_the_restriction(
        file_driver, tgtd) -> None:  # noqa: F811
    restricted, restricted_info = exported(file_driver, connector=CONNECTOR)
    anyone, anyone_info = exported(file_driver, connector=NO_INITIATOR)
    tgtd.restart()
    assert tgtd.target_iqns() == set()
    for volume in (restricted, anyone):
        file_driver.ensure_export(volume)
    iqn, chap = restricted_info["data"]["target_iqn"], connection_chap(restricted_info)
    assert read_capacity(tgtd.portal, iqn, 1, *chap) == GiB
    assert read_capacity(tgtd.portal, iqn, 1, *chap, initiator=STRANGER) is None
    assert tgtd.acl(iqn) == [INITIATOR_IQN]
    iqn, chap = anyone_info["data"]["target_iqn"], connection_chap(anyone_info)
    assert read_capacity(tgtd.portal, iqn, 1, *chap, initiator=STRANGER) == GiB
    assert tgtd.acl(iqn) == ["ALL"]
    for volume in (restricted, anyone):
        removed(file_driver, volume)


def test_chap_secrets_never_reach_an_argv_volmgr_runs(file_driver, recorder,
                                                      tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    tgtd.restart()
    file_driver.ensure_export(volume)
    file_driver.remove_export(volume)
    secret = connection_chap(info)[1]
    assert recorder.argvs, "commands were run"
    assert not [argv for argv in recorder.argvs if any(secret in arg for arg in argv)]
    assert not [argv for argv in recorder.argvs if argv[0] == "tgt-admin"], \
        "tgt-admin would pass the secret to tgtadm through a shell"
    file_driver.delete_volume(volume)


class CmdlineSampler:
    """Reads /proc/*/cmdline of every process, over and over, in a background thread,
    and keeps each distinct command line it saw (it misses processes shorter than a
    scan: ExecWatcher is the exact check)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        with open(f"/proc/{name}/cmdline", "rb") as handle:
                            self.seen.add(handle.read())
                    except OSError:
                        continue  # the process ended meanwhile
            self.scans += 1

    def holding(self, text: str) -> list[str]:
        return _holding(self.seen, text)

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[CmdlineSampler]:
        sampler = cls()
        sampler._thread.start()
        try:
            yield sampler
        finally:
            sampler._stop.set()
            sampler._thread.join(timeout=30)


# Runs in its own process at real-time priority, so it reads each new program's command
# line the moment the kernel reports the exec, before even a 1 ms tgtadm has exited.
_EXEC_WATCHER = """
import os, select, socket, struct, sys
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
except OSError:
    pass
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.bind((0, 1))  # CN_IDX_PROC
listen = struct.pack("=I", 1)  # PROC_CN_MCAST_LISTEN
message = struct.pack("=IIIIHH", 1, 1, 0, 0, len(listen), 0) + listen
sock.send(struct.pack("=IHHII", 16 + len(message), 3, 0, 0, os.getpid()) + message)
seen, execs, missed = set(), 0, 0
print("ready", flush=True)
while True:
    ready = select.select([sock, sys.stdin], [], [])[0]
    if sys.stdin in ready and sock not in ready:
        break
    data = sock.recv(65536)
    offset = 0
    while offset + 16 <= len(data):
        length = struct.unpack_from("=I", data, offset)[0]
        if struct.unpack_from("=I", data, offset + 36)[0] == 2:  # PROC_EVENT_EXEC
            execs += 1
            tgid = struct.unpack_from("=I", data, offset + 56)[0]
            try:
                with open(f"/proc/{tgid}/cmdline", "rb") as handle:
                    seen.add(handle.read())
            except OSError:
                missed += 1
        offset += max(16, (length + 3) & ~3)
print(execs, missed)
for line in seen:
    print(line.hex())
"""


class ExecWatcher:
    """Every command line exec'd on the host while it runs (Linux proc connector)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.execs = self.missed = 0

    def holding(self, text: str) -> list[str]:
        return _holding(self.seen, text)

    def saw(self, argv: tuple[str, ...]) -> bool:
        return ("\0".join(argv) + "\0").encode() in self.seen

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[ExecWatcher]:
        watcher = cls()
        child = subprocess.Popen([sys.executable, "-c", _EXEC_WATCHER], text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "proc connector unavailable"
        try:
            yield watcher
        finally:
            out, _ = child.communicate("stop\n", timeout=60)
            lines = out.splitlines()
            watcher.execs, watcher.missed = map(int, lines[0].split())
            watcher.seen = {bytes.fromhex(line) for line in lines[1:]}


def _holding(lines: set[bytes], text: str) -> list[str]:
    return [line.replace(b"\0", b" ").decode(errors="replace")
            for line in lines if text.encode() in line]


def a_short_lived_process_with(marker: str) -> None:
    """The sampler's own check: a 50 ms process holding ``marker`` in its argv."""
    subprocess.run(["sh", "-c", "sleep 0.05", marker], check=True)


def test_a_chap_secret_is_on_no_process_command_line_during_export_and_restore(
        file_driver, recorder, tgtd) -> None:  # noqa: F811
    marker = f"volmgr-sampler-check-{uuid.uuid4().hex}"
    with CmdlineSampler.running() as sampler, ExecWatcher.running() as execs:
        a_short_lived_process_with(marker)
        volume, info = exported(file_driver)  # create_export + initialize_connection
        user, secret = connection_chap(info)
        iqn = info["data"]["target_iqn"]
        tgtd.restart()
        file_driver.ensure_export(volume)
        info = file_driver.initialize_connection(volume, CONNECTOR)
        assert read_capacity(tgtd.portal, iqn, 1, user, secret) == GiB
        assert read_capacity(tgtd.portal, iqn, 1, user, secret[:-1] + "x") is None
        assert read_capacity(tgtd.portal, iqn, 1) is None
        file_driver.remove_export(volume)
        a_short_lived_process_with(marker)
    assert sampler.holding(marker) and execs.holding(marker), "both watchers work"
    assert sampler.holding(secret) == []
    assert execs.holding(secret) == []
    tgt_commands = [argv for argv in recorder.argvs if argv[0] == "tgtadm"]
    assert len(tgt_commands) > 10
    assert [argv for argv in tgt_commands if not execs.saw(argv)] == [], \
        "the exec watcher saw every command volmgr ran"
    assert not [argv for argv in recorder.argvs if any(secret in arg for arg in argv)]
    file_driver.delete_volume(volume)


def test_the_exec_watcher_catches_the_password_tgt_admin_puts_on_argv(tgtd,  # noqa: F811
                                                                      tmp_path) -> None:
    """Why volmgr no longer runs tgt-admin: it runs ``tgtadm --password`` (via a shell),
    and the watcher of the test above sees exactly that."""
    chap = base.Chap.generate()
    image = tmp_path / "image"
    image.write_bytes(b"\0" * 4096)
    iqn = f"iqn.2024-01.org.volmgr:watcher-{uuid.uuid4().hex[:8]}"
    conf = tmp_path / "target.conf"
    conf.write_text(f"<target {iqn}>\n    backing-store {image}\n"
                    f"    incominguser {chap.username} {chap.secret}\n</target>\n")
    with ExecWatcher.running() as execs:
        subprocess.run(["tgt-admin", "-C", str(tgtd.control_port), "--conf", str(conf),
                        "--update", iqn], check=True, capture_output=True)
    assert [line for line in execs.holding(chap.secret) if "--password" in line]
    tgtd.tgtadm("--op", "delete", "--mode", "account", "--user", chap.username)


def test_tgts_boot_time_restore_from_the_target_files_brings_exports_back(
        file_driver, recorder, tgtd, conf) -> None:  # noqa: F811
    volume, info = exported(file_driver, size=2)
    anyone, anyone_info = exported(file_driver, connector=NO_INITIATOR)
    iqn = info["data"]["target_iqn"]
    tgtd.restart()
    restored = tgtd.restore_from_target_files(conf.volume.target_files_dir)
    assert restored.returncode == 0, restored.stderr
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(info)) == 2 * GiB
    assert read_capacity(tgtd.portal, iqn, 1) is None, "CHAP is restored too"
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(info),
                         initiator=STRANGER) is None, "and the restriction"
    assert sorted(tgtd.acl(iqn)) == sorted(["0.0.0.0/32", INITIATOR_IQN])  # type: ignore
    anyone_iqn = anyone_info["data"]["target_iqn"]
    assert tgtd.acl(anyone_iqn) == ["ALL"]
    assert read_capacity(tgtd.portal, anyone_iqn, 1, *connection_chap(anyone_info),
                         initiator=STRANGER) == GiB
    ran = len(recorder.argvs)
    file_driver.ensure_export(volume)
    file_driver.ensure_export(anyone)
    assert len(recorder.argvs) == ran + 2, "complete restored targets are left alone"
    for each in (volume, anyone):
        removed(file_driver, each)


class Watch:
    """Runs ``probe`` over and over in a background thread until stopped."""

    def __init__(self, probe: Callable[[], None]) -> None:
        self.probe = probe
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.probe()
            self.rounds += 1

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_no_moment_admits_an_unnamed_initiator_to_a_restricted_target(
        conf, tgtd, recorder) -> None:  # noqa: F811
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=recorder)
    chap = base.Chap.generate()
    volume = VolumeRef(str(uuid.uuid4()), 1, provider_auth=chap.provider_auth())
    iqn = driver.target.iqn(volume.id)  # type: ignore[attr-defined]
    stranger = STRANGER
    acls: list[list[str]] = []
    admitted_strangers: list[int] = []

    def look_at_the_acl() -> None:
        acl = tgtd.acl(iqn)
        if acl is not None:
            acls.append(acl)

    def knock_as_a_stranger_with_the_right_chap() -> None:
        size = read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret,
                             initiator=stranger)
        if size is not None:
            admitted_strangers.append(size)

    driver.create_volume(volume)
    with Watch(look_at_the_acl) as acl_watch, \
            Watch(knock_as_a_stranger_with_the_right_chap) as knocks:
        driver.create_export(volume)
        driver.initialize_connection(volume, CONNECTOR)
        assert read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret) == GiB
        tgtd.restart()
        driver.ensure_export(volume)
        driver.initialize_connection(volume, CONNECTOR)
        assert read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret) == GiB
        tgtd.restart()  # and now tgt's boot path restores it from the target file
        restored = tgtd.restore_from_target_files(conf.volume.target_files_dir)
        assert restored.returncode == 0, restored.stderr
        assert read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret) == GiB
        driver.ensure_export(volume)
        while knocks.rounds < 3 or acl_watch.rounds < 3:
            time.sleep(0.05)
    assert admitted_strangers == []
    assert acls, "the watcher saw the target"
    assert [acl for acl in acls if "ALL" in acl] == []
    assert INITIATOR_IQN in tgtd.acl(iqn)  # type: ignore[operator]
    assert read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret,
                         initiator=stranger) is None
    driver.terminate_connection(volume, CONNECTOR)
    assert read_capacity(tgtd.portal, iqn, 1, chap.username, chap.secret) is None
    driver.remove_export(volume)
    driver.delete_volume(volume)


def test_lvm_volume_exported_by_tgt_end_to_end(conf, tgtd, loop_vg,  # noqa: F811
                                               recorder) -> None:
    loop_vg.configure(conf)
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=recorder)
    driver.check_setup()
    volume = VolumeRef(str(uuid.uuid4()), 1)
    driver.create_volume(volume)
    # Where device-mapper exists the LV node is real; here the fixture stands in for it.
    device = loop_vg.activate(f"volume-{volume.id}")
    assert device == driver.local_path(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, 1, update["provider_location"], update["provider_auth"])
    info = driver.initialize_connection(volume, CONNECTOR)
    chap = connection_chap(info)
    assert read_capacity(tgtd.portal, info["data"]["target_iqn"], 1, *chap) == GiB
    with open(device, "r+b") as lv:
        lv.write(b"volmgr" * 1000)
    driver.remove_export(volume)
    offset, _length = loop_vg.extents(f"volume-{volume.id}")
    assert loop_vg.read_pv(offset, 6) == b"volmgr"
    driver.delete_volume(volume)  # volume_clear = zero by default
    assert loop_vg.read_pv(offset, 6000) == bytes(6000), "the LV's extents were zeroed"
    assert f"volume-{volume.id}" not in loop_vg.lvs()
    assert tgtd.target_iqns() == set()
