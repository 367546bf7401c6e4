"""Exports volumes through the userspace tgtd: ``tgtadm`` plus tgtd's management socket.

Each exported volume has a target file under ``[volume] target_files_dir`` (mode 0600),
which tgt's boot-time ``tgt-admin -e`` reads (etc/tgt/volmgr.conf), and from which
``ensure_export`` rebuilds an export tgtd lost. volmgr builds targets itself, step by
step, so that: the CHAP secret never reaches an argv (accounts are created over tgtd's
socket, see ``tgt_socket``; tgt-admin would run ``tgtadm --password`` through a shell);
CHAP is bound before the LUN exists; and the initiator ACL is bound last, so no moment
exists in which an unauthenticated initiator, or (on a target restricted to the
connectors' initiators) an unnamed one, is admitted. The target file is also the record of
what each export admits. Mutations are serialised by a file lock because target ids are
picked by reading tgtd's state. Nothing here may log a secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.volume.driver import VolumeRef
from volmgr.volume.executor import CommandResult, Executor
from volmgr.volume.targets import base, tgt_files, tgt_socket

LOG = logging.getLogger(__name__)

_TARGET_LINE = re.compile(r"^Target (\d+): (\S+)\s*$")
_SECTION_LINE = re.compile(r"^    (\S.*):\s*$")
_LUN_LINE = re.compile(r"^\s+LUN: (\d+)\s*$")
_ENTRY_LINE = re.compile(r"^        (\S+)\s*$")
# tgtadm's words for "nothing to remove"; removal treats them as success.
_ALREADY_GONE = ("can't find the target", "can't find the account",
                 "this access control rule does not exist")
_ACL_EXISTS = "this access control rule already exists"
_LUN_ACTIVE = "this logical unit is still active"
#: Seconds a LUN refresh retries while tgtd says the LUN has commands in flight.
_LUN_BUSY_WAIT = 10.0
_TARGET_EXISTS = "this target already exists"
# SCSI caching mode page with WCE cleared: what tgt-admin's "write-cache off" sets.
_WRITE_CACHE_OFF = ("mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14"
                    ":0:0:0:0:0:0")
# Re-exported: tests and tools name them through this module.
NOBODY_ADDRESS = tgt_files.NOBODY_ADDRESS
_TargetFile = tgt_files.TargetFile


@dataclasses.dataclass
class _LiveTarget:
    tid: int
    luns: set[int]
    accounts: set[str] = dataclasses.field(default_factory=set)
    acl: set[str] = dataclasses.field(default_factory=set)


class TgtAdm(base.TargetHelper):
    """One tgtd target per volume, LUN 1, per-volume CHAP, per-export initiator ACL."""

    lun = 1

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor) -> None:
        super().__init__(conf, executor)
        self.files_dir: str = conf.volume.target_files_dir
        self.control_port: int = conf.volume.tgt_control_port
        self.lld: str = conf.volume.target_lld
        self.tgtd = tgt_socket.TgtdSocket(self.control_port, self.lld,
                                          timeout=float(conf.volume.command_timeout))

    # -- the TargetHelper contract -------------------------------------------------------

    def create_export(self, volume: VolumeRef, device_path: str) -> dict[str, Any]:
        with self._lock():
            existing = self._read_file(volume.id)
            chap = (base.Chap.parse(volume.provider_auth)
                    or (existing.chap if existing else None) or base.Chap.generate())
            target = _TargetFile(base.safe_path(device_path), chap,
                                 existing.initiators if existing else [],
                                 existing.any_initiator if existing else False)
            self._write_file(volume.id, target)
            self._apply(volume.id, target)
        return {"provider_location": self.provider_location(volume.id),
                "provider_auth": chap.provider_auth()}

    def ensure_export(self, volume: VolumeRef, device_path: str) -> None:
        with self._lock():
            existing = self._read_file(volume.id)
            chap = base.Chap.parse(volume.provider_auth) or (
                existing.chap if existing else None)
            if chap is None:
                raise exception.TargetError(
                    reason=f"volume {volume.id} was never exported (no CHAP credentials)")
            # What the file records is restored exactly; without a file a restricting
            # helper admits nobody until initialize_connection names who may log in.
            target = _TargetFile(base.safe_path(device_path), chap,
                                 existing.initiators if existing else [],
                                 existing.any_initiator if existing else False)
            self._write_file(volume.id, target)
            self._apply(volume.id, target)

    def remove_export(self, volume: VolumeRef) -> None:
        with self._lock():
            existing = self._read_file(volume.id)
            live = self._live_targets().get(self.iqn(volume.id))
            if live is not None:
                self._delete_target(live.tid)
            chap = base.Chap.parse(volume.provider_auth) or (
                existing.chap if existing else None)
            if chap is not None:
                # Accounts are global in tgtd; leaving one behind would leak a login.
                self._tgtadm("--op", "delete", "--mode", "account", "--user", chap.username,
                             tolerate_gone=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file_path(volume.id))

    def initialize_connection(self, volume: VolumeRef, device_path: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """Admit the connector's initiator only or, naming none, any initiator; CHAP always."""
        initiator = base.valid_initiator(connector)
        with self._lock():
            existing = self._read_file(volume.id)
            chap = base.Chap.parse(volume.provider_auth) or (
                existing.chap if existing else None)
            if existing is None or chap is None:
                raise exception.TargetError(
                    reason=f"volume {volume.id} is not exported; create_export first")
            existing.chap = chap
            # The record follows the connectors whatever the mode, so switching
            # target_initiator_acl on later restricts exports that named their initiator.
            if initiator is None:
                existing.any_initiator = True
            elif initiator not in existing.initiators:
                existing.initiators.append(initiator)
            self._write_file(volume.id, existing)
            self._apply(volume.id, existing)
        return self.iscsi_connection_info(
            dataclasses.replace(volume, provider_auth=chap.provider_auth()))

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        """Withdraw the connector's initiator (or, naming none, the any-initiator entry)."""
        initiator = base.valid_initiator(connector)
        with self._lock():
            existing = self._read_file(volume.id)
            if existing is not None:
                if initiator is None:
                    existing.any_initiator = False
                elif initiator in existing.initiators:
                    existing.initiators.remove(initiator)
                self._write_file(volume.id, existing)
            live = self._live_targets().get(self.iqn(volume.id))
            if live is None:
                return
            if existing is not None:
                self._reconcile_acl(live, existing)
            elif initiator is not None:
                self._unbind(live.tid, initiator)

    def refresh_export(self, volume: VolumeRef, device_path: str) -> None:
        """tgtd reads a backing store's size once, when the LUN is made: re-create LUN 1
        over the (grown) device, in place, so logged-in initiators read the new size on
        their next READ CAPACITY; sessions, CHAP and the ACL stay. Meanwhile the target
        is offline, so tgtd answers new commands BUSY (initiators retry them) and no
        command meets a missing LUN; the delete is retried while commands are in flight
        (tgtd refuses it then)."""
        with self._lock():
            live = self._live_targets().get(self.iqn(volume.id))
            if live is None or self.lun not in live.luns:
                return  # nothing exported: the next export is made at the new size
            tid = str(live.tid)
            self._tgtadm("--op", "update", "--mode", "target", "--tid", tid,
                         "--name", "state", "--value", "offline")
            try:
                self._remake_lun(volume.id, tid, base.safe_path(device_path))
            finally:
                self._tgtadm("--op", "update", "--mode", "target", "--tid", tid,
                             "--name", "state", "--value", "ready")

    def _remake_lun(self, volume_id: str, tid: str, device_path: str) -> None:
        deadline = time.monotonic() + _LUN_BUSY_WAIT
        while True:
            result = self._tgtadm("--op", "delete", "--mode", "logicalunit", "--tid", tid,
                                  "--lun", str(self.lun), check=False)
            if result.exit_code == 0:
                break
            if _LUN_ACTIVE not in result.stderr or time.monotonic() > deadline:
                raise exception.TargetError(
                    reason=f"cannot refresh the LUN of {self.iqn(volume_id)}: "
                    f"{result.stderr.strip()}")
            time.sleep(0.01)  # commands still in flight finish within milliseconds
        self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", tid,
                     "--lun", str(self.lun), "-b", device_path)
        self._tgtadm("--op", "update", "--mode", "logicalunit", "--tid", tid,
                     "--lun", str(self.lun), "--params", _WRITE_CACHE_OFF)

    def list_exported_volume_ids(self) -> set[str]:
        ids = set()
        for iqn in self._live_targets():
            name = iqn.removeprefix(self.target_prefix)
            if iqn != name and name.startswith("volume-"):
                try:
                    ids.add(base.canonical_uuid(name.removeprefix("volume-")))
                except exception.InvalidInput:
                    continue
        return ids

    # -- building targets ----------------------------------------------------------------

    def _apply(self, volume_id: str, target: _TargetFile) -> None:
        """Make tgtd hold the target described by ``target``; keep a complete one."""
        iqn = self.iqn(volume_id)
        live = self._live_targets().get(iqn)
        if (live is not None and self.lun in live.luns
                and target.chap.username in live.accounts):
            self._reconcile_acl(live, target)
            return
        if live is not None:
            # A target without its LUN or its account is the remains of a failed export
            # (or not ours to trust): rebuild it.
            self._delete_target(live.tid)
        self._build(iqn, target)

    def _build(self, iqn: str, target: _TargetFile) -> None:
        # Order matters: until the ACL is bound (last) tgtd admits nobody, and CHAP is
        # bound before the LUN exists, so no step leaves an open or unauthenticated door.
        tid = self._new_target(iqn)
        try:
            self._create_account(target.chap)
            self._tgtadm("--op", "bind", "--mode", "account", "--tid", str(tid),
                         "--user", target.chap.username)
            self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                         "--lun", str(self.lun), "-b", target.device_path)
            self._tgtadm("--op", "update", "--mode", "logicalunit", "--tid", str(tid),
                         "--lun", str(self.lun), "--params", _WRITE_CACHE_OFF)
            for name in target.initiators:
                self._bind_initiator(tid, name)
            if self.admits_any(target.any_initiator):
                self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid),
                             "-I", "ALL")
        except (exception.TargetError, exception.ProcessExecutionError) as error:
            with contextlib.suppress(exception.VolmgrError):
                self._delete_target(tid)
            raise exception.TargetError(
                reason=f"cannot export {iqn}: {_reason(error)}") from None

    def _new_target(self, iqn: str) -> int:
        for _ in range(5):
            live = self._live_targets()
            tid = max((t.tid for t in live.values()), default=0) + 1
            result = self._tgtadm("--op", "new", "--mode", "target", "--tid", str(tid),
                                  "-T", iqn, check=False)
            if result.exit_code == 0:
                return tid
            if _TARGET_EXISTS not in result.stderr:
                raise exception.TargetError(
                    reason=f"cannot create target {iqn}: {result.stderr.strip()}")
            # Another tgtd client took that tid (or built this very IQN) meanwhile.
            if iqn in self._live_targets():
                raise exception.TargetError(
                    reason=f"target {iqn} was created by someone else meanwhile")
        raise exception.TargetError(reason=f"no free target id for {iqn}")

    def _create_account(self, chap: base.Chap) -> None:
        """Create the CHAP account with its secret off every argv (tgtd's socket)."""
        for attempt in range(2):
            try:
                self.tgtd.new_account(chap.username, chap.secret)
                return
            except tgt_socket.TgtdRequestError as error:
                if error.denied:
                    self._create_account_with_argv(chap, str(error))
                    return
                if error.code != tgt_socket.Err.USER_EXIST or attempt:
                    raise
            # Left over from a lost target: replace it so tgtd holds today's secret.
            try:
                self.tgtd.delete_account(chap.username)
            except tgt_socket.TgtdRequestError as error:
                if error.code != tgt_socket.Err.NO_USER:
                    raise

    def _create_account_with_argv(self, chap: base.Chap, why: str) -> None:
        # Only when this process may not open tgtd's socket (an unprivileged daemon using
        # [volume] root_helper): tgtadm then briefly shows the secret in ps, as tgt-admin
        # always did. Root, or write access to the socket, avoids it.
        LOG.warning("%s; creating CHAP account %s with tgtadm, whose command line shows "
                    "its secret to local users while it runs", why, chap.username)
        self._tgtadm("--op", "delete", "--mode", "account", "--user", chap.username,
                     tolerate_gone=True)
        self._tgtadm("--op", "new", "--mode", "account", "--user", chap.username,
                     "--password", chap.secret, secrets=[chap.secret])

    def export_state(self, volume_id: str) -> base.ExportState | None:
        live = self._live_targets().get(self.iqn(volume_id))
        if live is None:
            return None
        return base.ExportState(frozenset(live.luns), frozenset(live.accounts),
                                frozenset(live.acl))

    def _reconcile_acl(self, live: _LiveTarget, target: _TargetFile) -> None:
        """Make the live ACL exactly what ``target`` admits: binds first (an admitted
        initiator never loses access), then unbinds whatever else is there (an ALL or an
        address bound by tgt-admin from an older file, or by an operator)."""
        wanted = set(target.initiators)
        for name in target.initiators:
            if name not in live.acl:
                self._bind_initiator(live.tid, name)
        if self.admits_any(target.any_initiator):
            wanted.add("ALL")
            if "ALL" not in live.acl:
                self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(live.tid),
                             "-I", "ALL")
        for entry in sorted(live.acl - wanted - {NOBODY_ADDRESS}):
            self._unbind(live.tid, entry)

    def _unbind(self, tid: int, entry: str) -> None:
        if base.is_iscsi_name(entry):
            self._tgtadm("--op", "unbind", "--mode", "target", "--tid", str(tid),
                         "--initiator-name", entry, tolerate_gone=True)
        else:
            self._tgtadm("--op", "unbind", "--mode", "target", "--tid", str(tid),
                         "-I", entry, tolerate_gone=True)

    def _bind_initiator(self, tid: int, name: str) -> None:
        result = self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid),
                              "--initiator-name", name, check=False)
        if result.exit_code != 0 and _ACL_EXISTS not in result.stderr:
            raise exception.TargetError(
                reason=f"cannot admit initiator: {result.stderr.strip()}")

    def _delete_target(self, tid: int) -> None:
        self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(tid), "--force",
                     tolerate_gone=True)

    # -- tgtd --------------------------------------------------------------------------

    def _live_targets(self) -> dict[str, _LiveTarget]:
        output = self._tgtadm("--op", "show", "--mode", "target").stdout
        targets: dict[str, _LiveTarget] = {}
        current: _LiveTarget | None = None
        section = ""
        for line in output.splitlines():
            target_match = _TARGET_LINE.match(line)
            if target_match:
                current = _LiveTarget(int(target_match.group(1)), set())
                targets[target_match.group(2)] = current
                section = ""
                continue
            if current is None:
                continue
            section_match = _SECTION_LINE.match(line)
            if section_match:
                section = section_match.group(1)
                continue
            lun_match = _LUN_LINE.match(line)
            if lun_match and section == "LUN information":
                current.luns.add(int(lun_match.group(1)))
                continue
            entry_match = _ENTRY_LINE.match(line)
            if entry_match and section == "Account information":
                current.accounts.add(entry_match.group(1))
            elif entry_match and section == "ACL information":
                current.acl.add(entry_match.group(1))
        return targets

    def _tgtadm(self, *args: str, check: bool = True, tolerate_gone: bool = False,
                secrets: Sequence[str] = ()) -> CommandResult:
        cmd = ["tgtadm"]
        if self.control_port:
            cmd += ["-C", str(self.control_port)]
        cmd += ["--lld", self.lld, *args]
        if not tolerate_gone:
            return self.executor.execute(cmd, run_as_root=True, check_exit_code=check,
                                         secrets=secrets)
        result = self.executor.execute(cmd, run_as_root=True, check_exit_code=False,
                                       secrets=secrets)
        if result.exit_code != 0 and not any(s in result.stderr for s in _ALREADY_GONE):
            raise exception.TargetError(reason=f"tgtadm {' '.join(args[:4])} failed: "
                                        f"{result.stderr.strip()}")
        return result

    # -- target files -------------------------------------------------------------------

    def _file_path(self, volume_id: str) -> str:
        return os.path.join(self.files_dir, base.volume_name(volume_id))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        os.makedirs(self.files_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.files_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_file(self, volume_id: str, target: _TargetFile) -> None:
        """The file tgt-admin reads at boot; it describes the same target _build makes."""
        text = tgt_files.render(self.iqn(volume_id), self.lld, target,
                                self.admits_any(target.any_initiator))
        path = self._file_path(volume_id)
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _read_file(self, volume_id: str) -> _TargetFile | None:
        try:
            with open(self._file_path(volume_id)) as handle:
                target = tgt_files.parse(handle.read())
        except FileNotFoundError:
            return None
        if target is None:
            LOG.warning("target file of volume %s has no CHAP account; rewriting it",
                        volume_id)
        return target


def _reason(error: exception.VolmgrError) -> str:
    if isinstance(error, exception.ProcessExecutionError):
        return str(error.kwargs.get("stderr") or error)
    if type(error) is exception.TargetError:
        return str(error.kwargs.get("reason") or error)
    return str(error)
