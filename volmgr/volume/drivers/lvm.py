"""The LVM driver: one logical volume per volume (thick, or thin in a pool) in one VG.

LV names are only ``volume-<uuid>`` and ``snapshot-<uuid>``; sizes and capacity are read
with ``--units b --nosuffix`` so nothing is parsed from human units. Every operation is
idempotent, so the manager can re-drive it after a crash. It never builds a name or an
argument from user text, and it never zeroes a path that is not a block device.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
from collections.abc import Collection, Mapping
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.volume import lvmshell, manageable
from volmgr.volume.driver import Capacity, GiB, SnapshotRef, VolumeRef, gib_to_bytes
from volmgr.volume.drivers.exporting import ExportingDriver
from volmgr.volume.executor import CommandResult, Executor
from volmgr.volume.manageable import ManageableSnapshot, ManageableVolume
from volmgr.volume.targets.base import TargetHelper, canonical_uuid, volume_name

LOG = logging.getLogger(__name__)
MiB = 1024 ** 2
_VG_NAME_RE = re.compile(r"^[A-Za-z0-9_.+][A-Za-z0-9_.+-]*$")
_LV_FIELDS = "lv_name,lv_size,origin,pool_lv,data_percent"
_ONE_LV_FIELDS = "lv_name,lv_size,origin,lv_role"
# Wiping is slow by nature: allow it 10 MiB/s on top of the ordinary command timeout.
_WIPE_MIB_PER_SECOND = 10


@dataclasses.dataclass(frozen=True)
class LogicalVolume:
    name: str
    size: int  # bytes
    origin: str
    pool: str
    data_percent: float
    roles: frozenset[str] = frozenset()

    @property
    def is_origin(self) -> bool:
        """Whether snapshots depend on it (LVM's role "origin")."""
        return "origin" in self.roles


def snapshot_name(snapshot_id: str) -> str:
    return "snapshot-" + canonical_uuid(snapshot_id)


class LVMDriver(ExportingDriver):
    """Volumes as LVs in ``[lvm] volume_group``."""

    name = "lvm"

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor,
                 target: TargetHelper) -> None:
        super().__init__(conf, executor, target)
        self.vg: str = conf.lvm.volume_group
        self.thin: bool = conf.lvm.lvm_type == "thin"
        self.pool: str = conf.lvm.thin_pool_name
        self.volume_clear: str = conf.lvm.volume_clear
        self.volume_clear_size: int = conf.lvm.volume_clear_size
        self.device_dir: str = conf.lvm.device_dir
        for value in (self.vg, self.pool):
            if not _VG_NAME_RE.match(value):
                raise exception.InvalidConfiguration(
                    reason=f"{value!r} is not a valid LVM name")
        self.env = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
        if conf.lvm.lvm_conf:
            if os.path.basename(conf.lvm.lvm_conf) != "lvm.conf":
                raise exception.InvalidConfiguration(
                    reason="[lvm] lvm_conf must name a file called lvm.conf "
                    "(LVM reads $LVM_SYSTEM_DIR/lvm.conf)")
            self.env["LVM_SYSTEM_DIR"] = os.path.dirname(os.path.abspath(conf.lvm.lvm_conf))
        self.lvm_shell: bool = conf.lvm.lvm_shell
        if self.lvm_shell:
            self.executor = lvmshell.ShellExecutor(executor, conf.lvm.lvm_shell_count)

    # -- setup and capacity ---------------------------------------------------------------

    def check_setup(self) -> None:
        if self.lvm_shell:
            self._install_shell_profile()
        result = self._lvm("vgs", "--noheadings", "-o", "vg_name", self.vg, check=False)
        if result.exit_code != 0:
            raise exception.BackendError(
                reason=f"volume group {self.vg} is not usable: {result.stderr.strip()}")
        if self.thin and self.pool not in self._lvs():
            self._lvm("lvcreate", "--type", "thin-pool", "-l", "95%FREE", "-n", self.pool,
                      self.vg)

    def get_capacity(self) -> Capacity:
        lvs = self._lvs()
        ours = [lv for lv in lvs.values() if _is_ours(lv.name)]
        if self.thin:
            pool = lvs.get(self.pool)
            if pool is None:
                raise exception.BackendError(reason=f"thin pool {self.vg}/{self.pool} missing")
            free = pool.size * (100.0 - pool.data_percent) / 100.0
            return Capacity(total_gb=pool.size / GiB, free_gb=free / GiB,
                            provisioned_gb=sum(lv.size for lv in ours
                                               if lv.pool == self.pool) / GiB,
                            thin=True,
                            extra={"volume_group": self.vg, "lvm_type": "thin",
                                   "total_capacity_bytes": pool.size,
                                   "thin_pool_data_percent": pool.data_percent})
        output = self._lvm("vgs", "--noheadings", "--units", "b", "--nosuffix",
                           "--separator", "|", "-o", "vg_size,vg_free", self.vg).stdout
        size, free_bytes = (int(field) for field in output.strip().split("|"))
        return Capacity(total_gb=size / GiB, free_gb=free_bytes / GiB,
                        provisioned_gb=sum(lv.size for lv in ours) / GiB, thin=False,
                        extra={"volume_group": self.vg, "lvm_type": "thick",
                               "total_capacity_bytes": size,
                               "free_capacity_bytes": free_bytes})

    def list_volume_ids(self) -> set[str]:
        return {name.removeprefix("volume-") for name in self._lvs()
                if name.startswith("volume-") and _is_ours(name)}

    def list_snapshots(self) -> dict[str, str] | None:
        found = {}
        for lv in self._lvs().values():
            if (lv.name.startswith("snapshot-") and _is_ours(lv.name)
                    and lv.origin.startswith("volume-") and _is_ours(lv.origin)):
                found[canonical_uuid(lv.name.removeprefix("snapshot-"))] = canonical_uuid(
                    lv.origin.removeprefix("volume-"))
        return found

    def local_path(self, volume: VolumeRef) -> str:
        return os.path.join(self.device_dir, self.vg, volume_name(volume.id))

    # -- volumes --------------------------------------------------------------------------

    def create_volume(self, volume: VolumeRef) -> dict[str, Any]:
        # One command on the common path: lvcreate. Only when it fails is the LV looked
        # at (a re-driven create that already happened succeeds; see _create_lv).
        name = volume_name(volume.id)
        size = gib_to_bytes(volume.size)
        if self.thin:
            cmd = ["lvcreate", "-T", "-V", f"{volume.size}g", "-n", name,
                   f"{self.vg}/{self.pool}"]
        else:
            cmd = ["lvcreate", "-n", name, "-L", f"{volume.size}g", self.vg]
        self._create_lv(cmd, name, size)
        return {}

    def delete_volume(self, volume: VolumeRef) -> None:
        name = volume_name(volume.id)
        if self.thin or self.volume_clear != "zero":
            # One command on the common path. The selection keeps LVM from removing an
            # origin (lvremove -f would take its snapshots with it); when nothing was
            # removed, one look at the LV tells "already gone" from "has snapshots".
            failure: exception.ProcessExecutionError | None = None
            try:
                result = self._lvm("lvremove", "-f", "-S",
                                   f"lv_name={name}&&!(lv_role=origin)", self.vg)
                if f'"{name}"' in result.stdout:
                    return
            except exception.ProcessExecutionError as error:
                failure = error
            lv = self._lv(name)
            if lv is None:
                return
            if lv.is_origin:
                raise exception.VolumeHasSnapshots(volume_id=volume.id)
            raise failure or exception.ProcessExecutionError(
                cmd=f"lvremove -f {self.vg}/{name}", exit_code=0,
                stderr="the logical volume was not removed")
        lv = self._lv(name)
        if lv is None:
            return
        if lv.is_origin:
            raise exception.VolumeHasSnapshots(volume_id=volume.id)
        self._wipe(self.local_path(volume), lv.size)
        self._remove_lv(name)

    def extend_volume(self, volume: VolumeRef, new_size: int) -> None:
        name = volume_name(volume.id)
        lv = self._lv(name)
        if lv is None:
            raise exception.BackendError(reason=f"logical volume {self.vg}/{name} is missing")
        if lv.size >= gib_to_bytes(new_size):
            return
        self._lvm("lvextend", "-L", f"{new_size}g", f"{self.vg}/{name}")

    # -- snapshots ------------------------------------------------------------------------

    def create_snapshot(self, snapshot: SnapshotRef) -> dict[str, Any]:
        name = snapshot_name(snapshot.id)
        origin = volume_name(snapshot.volume_id)
        lvs = self._lvs()
        if name in lvs:
            return {}
        if origin not in lvs:
            raise exception.BackendError(reason=f"logical volume {self.vg}/{origin} is missing")
        if self.thin:
            # -kn: thin snapshots default to "skip activation", which would hide them.
            cmd = ["lvcreate", "-s", "-kn", "-n", name, f"{self.vg}/{origin}"]
        else:
            cmd = ["lvcreate", "-s", "-n", name, "-L", f"{snapshot.size}g",
                   f"{self.vg}/{origin}"]
        self._create_lv(cmd, name, None)
        return {}

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        name = snapshot_name(snapshot.id)
        lv = self._lv(name)
        if lv is None:
            return
        if not self.thin and self.volume_clear == "zero":
            # A thick snapshot's exception store holds the origin's old blocks; its
            # extents go back to the VG, where the next tenant's LV could read them.
            # Zero the store itself (the "-cow" device), not the snapshot view, whose
            # writes would only allocate more exceptions.
            self._wipe(self.cow_path(name), lv.size)
        self._remove_lv(name)

    def cow_path(self, lv_name: str) -> str:
        """The device-mapper node of a thick snapshot's exception store."""
        def escape(part: str) -> str:
            return part.replace("-", "--")
        return os.path.join(self.device_dir, "mapper",
                            f"{escape(self.vg)}-{escape(lv_name)}-cow")

    def create_volume_from_snapshot(self, volume: VolumeRef,
                                    snapshot: SnapshotRef) -> dict[str, Any]:
        if volume.size < snapshot.size:
            raise exception.InvalidInput(
                reason="a volume made from a snapshot must be at least the snapshot's size")
        name = volume_name(volume.id)
        source = snapshot_name(snapshot.id)
        lvs = self._lvs()
        if source not in lvs:
            raise exception.BackendError(reason=f"snapshot {self.vg}/{source} is missing")
        if self.thin:
            if name not in lvs:
                self._create_lv(["lvcreate", "-s", "-kn", "-n", name, f"{self.vg}/{source}"],
                                name, None)
            self.extend_volume(volume, volume.size)
            return {}
        self.create_volume(volume)
        # Copied again on a re-drive: the LV cannot tell whether an earlier copy finished.
        source_path = os.path.join(self.device_dir, self.vg, source)
        self._copy(source_path, self.local_path(volume), lvs[source].size)
        return {}

    def create_cloned_volume(self, volume: VolumeRef, source: VolumeRef) -> dict[str, Any]:
        if volume.size < source.size:
            raise exception.InvalidInput(
                reason="a clone must be at least the size of its source volume")
        self.create_volume(volume)
        # Copied again on a re-drive: the LV cannot tell whether an earlier copy finished.
        self._copy(self.local_path(source), self.local_path(volume), gib_to_bytes(source.size))
        return {}

    # -- helpers --------------------------------------------------------------------------

    # -- adopting existing LVs -------------------------------------------------------------

    def list_manageable_volumes(self, owned_ids: Collection[str]) -> list[ManageableVolume]:
        return manageable.list_manageable_volumes(self, owned_ids)

    def manage_existing_get_size(self, reference: Mapping[str, Any]) -> int:
        return manageable.manage_existing_get_size(self, reference)

    def manage_existing(self, volume: VolumeRef, reference: Mapping[str, Any],
                        owned_ids: Collection[str]) -> int:
        return manageable.manage_existing(self, volume.id, reference, owned_ids)

    def list_manageable_snapshots(self,
                                  owned_ids: Collection[str]) -> list[ManageableSnapshot]:
        return manageable.list_manageable_snapshots(self, owned_ids)

    def manage_existing_snapshot_get_size(self, volume_id: str,
                                          reference: Mapping[str, Any]) -> int:
        return manageable.manage_existing_snapshot_get_size(self, volume_id, reference)

    def manage_existing_snapshot(self, snapshot: SnapshotRef, reference: Mapping[str, Any],
                                 owned_ids: Collection[str]) -> int:
        return manageable.manage_existing_snapshot(self, snapshot.id, snapshot.volume_id,
                                                   reference, owned_ids)

    def _install_shell_profile(self) -> None:
        path = lvmshell.profile_path(self.env.get("LVM_SYSTEM_DIR", "/etc/lvm"))
        try:
            with open(path) as handle:
                if handle.read() == lvmshell.PROFILE:
                    return
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(lvmshell.PROFILE)
        LOG.info("Wrote the LVM shell's command profile %s", path)

    def _lvm(self, *cmd: str, check: bool = True) -> CommandResult:
        return self.executor.execute(list(cmd), run_as_root=True, env=self.env,
                                     check_exit_code=check, retry_lock_errors=True)

    def _lvs(self) -> dict[str, LogicalVolume]:
        output = self._lvm("lvs", "--noheadings", "--units", "b", "--nosuffix",
                           "--separator", "|", "-o", _LV_FIELDS, self.vg).stdout
        volumes = {}
        for line in output.splitlines():
            fields = [field.strip() for field in line.split("|")]
            if len(fields) != 5 or not fields[0]:
                continue
            volumes[fields[0]] = LogicalVolume(
                name=fields[0], size=int(fields[1]), origin=fields[2], pool=fields[3],
                data_percent=float(fields[4]) if fields[4] else 0.0)
        return volumes

    def _lv(self, name: str) -> LogicalVolume | None:
        """One LV, looked up by name (the cost does not grow with the VG); None when
        LVM does not know it."""
        result = self._lvm("lvs", "--noheadings", "--units", "b", "--nosuffix",
                           "--separator", "|", "-o", _ONE_LV_FIELDS, f"{self.vg}/{name}",
                           check=False)
        for line in result.stdout.splitlines():
            fields = [field.strip() for field in line.split("|")]
            if len(fields) == 4 and fields[0] == name:
                return LogicalVolume(name=name, size=int(fields[1]), origin=fields[2],
                                     pool="", data_percent=0.0,
                                     roles=frozenset(fields[3].split(",")))
        if result.exit_code != 0 and "Failed to find" not in result.stderr:
            raise exception.ProcessExecutionError(
                cmd=f"lvs {self.vg}/{name}", exit_code=result.exit_code,
                stderr=result.stderr.strip())
        return None

    def _create_lv(self, cmd: list[str], name: str, size: int | None) -> None:
        try:
            self._lvm(*cmd)
        except exception.ProcessExecutionError:
            # Most often a re-drive of a create that already happened ("already
            # exists"): that LV, at the size asked for, is success.
            lv = self._lv(name)
            if lv is None:
                raise
            if size is not None and lv.size != size:
                raise exception.BackendError(
                    reason=f"logical volume {self.vg}/{name} exists with {lv.size} bytes, "
                    f"not the {size} asked for") from None

    def _remove_lv(self, name: str) -> None:
        result = self._lvm("lvremove", "-f", f"{self.vg}/{name}", check=False)
        if result.exit_code != 0 and self._lv(name) is not None:
            raise exception.ProcessExecutionError(
                cmd=f"lvremove -f {self.vg}/{name}", exit_code=result.exit_code,
                stderr=result.stderr.strip())

    def _wipe(self, path: str, size: int) -> None:
        mib = size // MiB
        if self.volume_clear_size:
            mib = min(mib, self.volume_clear_size)
        _require_block_device(path, "wipe")
        self.executor.execute(
            ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "oflag=direct",
             "conv=fdatasync,nocreat"], run_as_root=True,
            timeout=self.executor.timeout + mib / _WIPE_MIB_PER_SECOND)

    def _copy(self, source: str, destination: str, size: int) -> None:
        mib = size // MiB
        _require_block_device(source, "copy from")
        _require_block_device(destination, "copy to")
        self.executor.execute(
            ["dd", f"if={source}", f"of={destination}", "bs=1M", f"count={mib}",
             "iflag=direct", "oflag=direct", "conv=fdatasync,nocreat"], run_as_root=True,
            timeout=self.executor.timeout + mib / _WIPE_MIB_PER_SECOND)


def _is_ours(name: str) -> bool:
    for prefix in ("volume-", "snapshot-"):
        if name.startswith(prefix):
            try:
                canonical_uuid(name.removeprefix(prefix))
            except exception.InvalidInput:
                return False
            return True
    return False


def _require_block_device(path: str, purpose: str) -> None:
    # dd would otherwise create (and fill) a regular file where the device should be.
    try:
        is_block = stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        is_block = False
    if not is_block:
        raise exception.BackendError(
            reason=f"cannot {purpose} {path}: not an active block device")
