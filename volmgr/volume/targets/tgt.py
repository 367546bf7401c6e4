"""Exports volumes through the userspace tgtd (``tgtadm`` / ``tgt-admin``).

Each exported volume has a target file under ``[volume] target_files_dir`` (mode 0600) from
which ``tgt-admin --update`` builds the target, so the CHAP secret never appears on the
argv volmgr runs, and ``ensure_export`` can rebuild every export after tgtd or the host
restarts. Mutations are serialised by a file lock because tgt-admin picks target ids by
reading tgtd's state, which two concurrent callers would both read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.volume.driver import VolumeRef
from volmgr.volume.executor import CommandResult, Executor
from volmgr.volume.targets import base

LOG = logging.getLogger(__name__)

_TARGET_LINE = re.compile(r"^Target (\d+): (\S+)\s*$")
_LUN_LINE = re.compile(r"^\s+LUN: (\d+)\s*$")
# tgtadm's words for "nothing to remove"; removal treats them as success.
_ALREADY_GONE = ("can't find the target", "can't find the account",
                 "this access control rule does not exist")


@dataclasses.dataclass
class _LiveTarget:
    tid: int
    luns: set[int]


@dataclasses.dataclass
class _TargetFile:
    device_path: str
    chap: base.Chap
    initiators: list[str]


class TgtAdm(base.TargetHelper):
    """One tgtd target per volume, LUN 1, per-volume CHAP, optional initiator ACL."""

    lun = 1

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor) -> None:
        super().__init__(conf, executor)
        self.files_dir: str = conf.volume.target_files_dir
        self.control_port: int = conf.volume.tgt_control_port
        self.lld: str = conf.volume.target_lld
        self.use_acl: bool = conf.volume.target_initiator_acl

    # -- the TargetHelper contract -------------------------------------------------------

    def create_export(self, volume: VolumeRef, device_path: str) -> dict[str, Any]:
        with self._lock():
            existing = self._read_file(volume.id)
            chap = (base.Chap.parse(volume.provider_auth)
                    or (existing.chap if existing else None) or base.Chap.generate())
            initiators = existing.initiators if existing else []
            self._write_file(volume.id, _TargetFile(base.safe_path(device_path), chap,
                                                    initiators))
            self._apply(volume.id, chap)
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
            initiators = existing.initiators if existing else []
            self._write_file(volume.id, _TargetFile(base.safe_path(device_path), chap,
                                                    initiators))
            self._apply(volume.id, chap)

    def remove_export(self, volume: VolumeRef) -> None:
        with self._lock():
            existing = self._read_file(volume.id)
            live = self._live_targets().get(self.iqn(volume.id))
            if live is not None:
                self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(live.tid),
                             "--force", tolerate_gone=True)
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
        initiator = base.valid_initiator(connector)
        with self._lock():
            existing = self._read_file(volume.id)
            chap = base.Chap.parse(volume.provider_auth) or (
                existing.chap if existing else None)
            if existing is None or chap is None:
                raise exception.TargetError(
                    reason=f"volume {volume.id} is not exported; create_export first")
            if self.use_acl:
                if initiator is None:
                    raise exception.InvalidInput(
                        reason="target_initiator_acl is on: the connector must name its "
                        "initiator")
                if initiator not in existing.initiators:
                    existing.initiators.append(initiator)
                    self._write_file(volume.id, existing)
                self._apply(volume.id, chap)
                tid = self._live_targets()[self.iqn(volume.id)].tid
                result = self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid),
                                      "--initiator-name", initiator, check=False)
                if result.exit_code != 0 and "already exists" not in result.stderr:
                    raise exception.TargetError(
                        reason=f"cannot admit initiator: {result.stderr.strip()}")
            else:
                self._apply(volume.id, chap)
        info = self.iscsi_connection_info(
            dataclasses.replace(volume, provider_auth=chap.provider_auth()))
        return info

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        initiator = base.valid_initiator(connector)
        if not self.use_acl or initiator is None:
            return
        with self._lock():
            existing = self._read_file(volume.id)
            if existing is not None and initiator in existing.initiators:
                existing.initiators.remove(initiator)
                self._write_file(volume.id, existing)
            live = self._live_targets().get(self.iqn(volume.id))
            if live is not None:
                self._tgtadm("--op", "unbind", "--mode", "target", "--tid", str(live.tid),
                             "--initiator-name", initiator, tolerate_gone=True)

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

    # -- tgtd --------------------------------------------------------------------------

    def _apply(self, volume_id: str, chap: base.Chap) -> None:
        """Make tgtd hold the target described by the volume's file."""
        iqn = self.iqn(volume_id)
        live = self._live_targets().get(iqn)
        if live is not None and self.lun in live.luns:
            return
        if live is not None:
            # A target without its LUN is the remains of a failed export: rebuild it.
            self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(live.tid),
                         "--force", tolerate_gone=True)
        cmd = ["tgt-admin"]
        if self.control_port:
            cmd += ["-C", str(self.control_port)]
        cmd += ["--conf", self._file_path(volume_id), "--update", iqn]
        result = self.executor.execute(cmd, run_as_root=True, check_exit_code=False,
                                       secrets=[chap.secret])
        live = self._live_targets().get(iqn)
        if live is None or self.lun not in live.luns:
            if live is not None:
                self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(live.tid),
                             "--force", tolerate_gone=True)
            # tgt-admin exits 0 even when tgtadm failed under it: tgtd's state decides.
            detail = (result.stderr or result.stdout).strip() or "no LUN was created"
            raise exception.TargetError(reason=f"tgt-admin could not export {iqn}: "
                                        + detail.replace(chap.secret, "***"))
        if self.use_acl:
            # tgt-admin binds "ALL" to a target whose file names no initiator-address, and
            # tgtd admits an initiator matching the address list OR the name list; drop
            # it so only the named initiators remain (CHAP is required meanwhile).
            self._tgtadm("--op", "unbind", "--mode", "target", "--tid", str(live.tid),
                         "-I", "ALL", tolerate_gone=True)

    def _live_targets(self) -> dict[str, _LiveTarget]:
        output = self._tgtadm("--op", "show", "--mode", "target").stdout
        targets: dict[str, _LiveTarget] = {}
        current: _LiveTarget | None = None
        for line in output.splitlines():
            target_match = _TARGET_LINE.match(line)
            if target_match:
                current = _LiveTarget(int(target_match.group(1)), set())
                targets[target_match.group(2)] = current
                continue
            lun_match = _LUN_LINE.match(line)
            if lun_match and current is not None:
                current.luns.add(int(lun_match.group(1)))
        return targets

    def _tgtadm(self, *args: str, check: bool = True,
                tolerate_gone: bool = False) -> CommandResult:
        cmd = ["tgtadm"]
        if self.control_port:
            cmd += ["-C", str(self.control_port)]
        cmd += ["--lld", self.lld, *args]
        if not tolerate_gone:
            return self.executor.execute(cmd, run_as_root=True, check_exit_code=check)
        result = self.executor.execute(cmd, run_as_root=True, check_exit_code=False)
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
        lines = [f"<target {self.iqn(volume_id)}>",
                 f"    backing-store {target.device_path}",
                 f"    driver {self.lld}",
                 f"    incominguser {target.chap.username} {target.chap.secret}",
                 "    write-cache off"]
        if self.use_acl:
            lines += [f"    initiator-name {name}" for name in target.initiators]
        else:
            lines.append("    initiator-address ALL")
        lines.append("</target>")
        path = self._file_path(volume_id)
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _read_file(self, volume_id: str) -> _TargetFile | None:
        try:
            with open(self._file_path(volume_id)) as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        device_path, chap, initiators = "", None, []
        for line in text.splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "backing-store":
                device_path = words[1]
            elif len(words) == 3 and words[0] == "incominguser":
                chap = base.Chap(words[1], words[2])
            elif len(words) == 2 and words[0] == "initiator-name":
                initiators.append(words[1])
        if chap is None:
            LOG.warning("target file of volume %s has no CHAP account; rewriting it",
                        volume_id)
            return None
        return _TargetFile(device_path, chap, initiators)
