"""The file driver: each volume is a sparse image file under ``[file] volumes_dir``.

Snapshots and volumes made from them are copies (``cp --reflink=auto --sparse=always``,
so filesystems that can share extents do, and others copy only the written blocks),
kept per origin under ``snapshots/volume-<uuid>/`` so deleting an origin that still has
snapshots is refused like on LVM. Every file appears under its final name only once
complete (written under a temporary name, then renamed), so a crash leaves no half volume.
It never builds a path from user text: names come from UUIDs only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.volume.driver import Capacity, GiB, SnapshotRef, VolumeRef, gib_to_bytes
from volmgr.volume.drivers.exporting import ExportingDriver
from volmgr.volume.executor import Executor
from volmgr.volume.manageable import (
    ManageableSnapshot,
    ManageableVolume,
    owner_of,
    reference_name,
    size_gb,
    verdict,
)
from volmgr.volume.targets.base import TargetHelper, canonical_uuid, safe_path, volume_name


class FileDriver(ExportingDriver):
    """Volumes as sparse files; snapshots as (reflinked where possible) copies."""

    name = "file"

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor,
                 target: TargetHelper) -> None:
        super().__init__(conf, executor, target)
        self.volumes_dir = os.path.abspath(conf.file.volumes_dir)

    # -- setup and capacity ---------------------------------------------------------------

    def check_setup(self) -> None:
        safe_path(self.volumes_dir)
        try:
            os.makedirs(self._snapshots_root(), mode=0o700, exist_ok=True)
        except OSError as error:
            raise exception.BackendError(
                reason=f"cannot use {self.volumes_dir}: {error.strerror}") from None
        if not os.access(self.volumes_dir, os.W_OK):
            raise exception.BackendError(reason=f"{self.volumes_dir} is not writable")

    def get_capacity(self) -> Capacity:
        os.makedirs(self.volumes_dir, mode=0o700, exist_ok=True)
        fs = os.statvfs(self.volumes_dir)
        provisioned = sum(os.stat(self._volume_path(volume_id)).st_size
                          for volume_id in self.list_volume_ids())
        for directory in self._snapshot_dirs():
            provisioned += sum(entry.stat().st_size for entry in os.scandir(directory)
                               if entry.name.startswith("snapshot-"))
        total, free = fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize
        return Capacity(total_gb=total / GiB, free_gb=free / GiB,
                        provisioned_gb=provisioned / GiB, thin=True,
                        extra={"volumes_dir": self.volumes_dir,
                               "total_capacity_bytes": total, "free_capacity_bytes": free})

    def list_snapshots(self) -> dict[str, str] | None:
        found = {}
        with contextlib.suppress(FileNotFoundError):
            for parent in os.scandir(self._snapshots_root()):
                if not (parent.is_dir() and parent.name.startswith("volume-")):
                    continue
                with contextlib.suppress(exception.InvalidInput, FileNotFoundError):
                    volume_id = canonical_uuid(parent.name.removeprefix("volume-"))
                    for entry in os.scandir(parent.path):
                        if entry.is_file() and entry.name.startswith("snapshot-"):
                            with contextlib.suppress(exception.InvalidInput):
                                found[canonical_uuid(entry.name.removeprefix(
                                    "snapshot-"))] = volume_id
        return found

    def list_volume_ids(self) -> set[str]:
        ids = set()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.volumes_dir):
                if entry.is_file() and entry.name.startswith("volume-"):
                    with contextlib.suppress(exception.InvalidInput):
                        ids.add(canonical_uuid(entry.name.removeprefix("volume-")))
        return ids

    def local_path(self, volume: VolumeRef) -> str:
        return self._volume_path(volume.id)

    # -- volumes --------------------------------------------------------------------------

    def create_volume(self, volume: VolumeRef) -> dict[str, Any]:
        path = self._volume_path(volume.id)
        size = gib_to_bytes(volume.size)
        if self._exists_with_size(path, size):
            return {}
        os.makedirs(self.volumes_dir, mode=0o700, exist_ok=True)
        temporary = self._temporary(path)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._publish(temporary, path)
        return {}

    def delete_volume(self, volume: VolumeRef) -> None:
        path = self._volume_path(volume.id)
        if not os.path.exists(path):
            return
        snapshots = self._snapshot_dir(volume.id)
        if os.path.isdir(snapshots) and any(name.startswith("snapshot-")
                                            for name in os.listdir(snapshots)):
            raise exception.VolumeHasSnapshots(volume_id=volume.id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(snapshots)

    def extend_volume(self, volume: VolumeRef, new_size: int) -> None:
        path = self._volume_path(volume.id)
        try:
            current = os.stat(path).st_size
        except FileNotFoundError:
            raise exception.BackendError(reason=f"image {path} is missing") from None
        if current < gib_to_bytes(new_size):
            os.truncate(path, gib_to_bytes(new_size))

    # -- snapshots ------------------------------------------------------------------------

    def create_snapshot(self, snapshot: SnapshotRef) -> dict[str, Any]:
        path = self._snapshot_path(snapshot)
        if os.path.exists(path):
            return {}
        source = self._volume_path(snapshot.volume_id)
        if not os.path.exists(source):
            raise exception.BackendError(reason=f"image {source} is missing")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._copy_published(source, path, None)
        return {}

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._snapshot_path(snapshot))

    def create_volume_from_snapshot(self, volume: VolumeRef,
                                    snapshot: SnapshotRef) -> dict[str, Any]:
        if volume.size < snapshot.size:
            raise exception.InvalidInput(
                reason="a volume made from a snapshot must be at least the snapshot's size")
        path = self._volume_path(volume.id)
        if self._exists_with_size(path, gib_to_bytes(volume.size)):
            return {}
        source = self._snapshot_path(snapshot)
        if not os.path.exists(source):
            raise exception.BackendError(reason=f"snapshot image {source} is missing")
        self._copy_published(source, path, gib_to_bytes(volume.size))
        return {}

    def create_cloned_volume(self, volume: VolumeRef, source: VolumeRef) -> dict[str, Any]:
        if volume.size < source.size:
            raise exception.InvalidInput(
                reason="a clone must be at least the size of its source volume")
        path = self._volume_path(volume.id)
        if self._exists_with_size(path, gib_to_bytes(volume.size)):
            return {}
        source_path = self._volume_path(source.id)
        if not os.path.exists(source_path):
            raise exception.BackendError(reason=f"image {source_path} is missing")
        self._copy_published(source_path, path, gib_to_bytes(volume.size))
        return {}

    # -- adopting existing images ----------------------------------------------------------
    # Any regular file in volumes_dir is a candidate volume, any in
    # snapshots/volume-<uuid>/ a candidate snapshot of that volume. Adopting grows the
    # file to whole GiB, then renames it (the rename is the commit point).

    def list_manageable_volumes(self, owned_ids: Collection[str]) -> list[ManageableVolume]:
        found = []
        for entry in self._images(self.volumes_dir):
            owner = owner_of(entry.name, "volume-")
            reason = verdict(entry.name, owner, owned_ids)
            found.append(ManageableVolume(entry.name, size_gb(entry.stat().st_size),
                                          reason is None, reason,
                                          owner if reason == "Already managed" else None))
        return found

    def manage_existing_get_size(self, reference: Mapping[str, Any]) -> int:
        return size_gb(os.stat(self._candidate(self.volumes_dir, reference)).st_size)

    def manage_existing(self, volume: VolumeRef, reference: Mapping[str, Any],
                        owned_ids: Collection[str]) -> int:
        target = self._volume_path(volume.id)
        return self._adopt(self.volumes_dir, reference, target, "volume-", owned_ids)

    def list_manageable_snapshots(self,
                                  owned_ids: Collection[str]) -> list[ManageableSnapshot]:
        found = []
        for directory in sorted(self._snapshot_dirs()):
            parent = os.path.basename(directory)
            for entry in self._images(directory):
                owner = owner_of(entry.name, "snapshot-")
                reason = verdict(entry.name, owner, owned_ids)
                found.append(ManageableSnapshot(
                    entry.name, size_gb(entry.stat().st_size), reason is None, parent,
                    reason, owner if reason == "Already managed" else None))
        return found

    def manage_existing_snapshot_get_size(self, volume_id: str,
                                          reference: Mapping[str, Any]) -> int:
        directory = self._snapshot_dir(volume_id)
        return size_gb(os.stat(self._candidate(directory, reference)).st_size)

    def manage_existing_snapshot(self, snapshot: SnapshotRef, reference: Mapping[str, Any],
                                 owned_ids: Collection[str]) -> int:
        return self._adopt(self._snapshot_dir(snapshot.volume_id), reference,
                           self._snapshot_path(snapshot), "snapshot-", owned_ids)

    def _adopt(self, directory: str, reference: Mapping[str, Any], target: str,
               prefix: str, owned_ids: Collection[str]) -> int:
        with contextlib.suppress(FileNotFoundError):
            if os.path.basename(target) != reference_name(reference):
                return size_gb(os.stat(target).st_size)  # adopted already
        path = self._candidate(directory, reference)
        name = os.path.basename(path)
        reason = verdict(name, owner_of(name, prefix), owned_ids)
        if reason is not None:
            raise exception.InvalidInput(reason=f"{name} cannot be managed: {reason}")
        size = os.stat(path).st_size
        gib = size_gb(size)
        if size < gib * GiB:
            os.truncate(path, gib * GiB)
        os.rename(path, target)
        return gib

    @staticmethod
    def _candidate(directory: str, reference: Mapping[str, Any]) -> str:
        name = reference_name(reference)
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            raise exception.InvalidInput(reason=f"no image named {name} in {directory}")
        return path

    @staticmethod
    def _images(directory: str) -> list[os.DirEntry[str]]:
        """The regular files of ``directory`` by name, without temporary ones."""
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        return sorted((entry for entry in entries
                       if entry.is_file(follow_symlinks=False)
                       and not entry.name.startswith(".")), key=lambda entry: entry.name)

    # -- helpers --------------------------------------------------------------------------

    def _copy_published(self, source: str, destination: str, size: int | None) -> None:
        temporary = self._temporary(destination)
        self.executor.execute(["cp", "--reflink=auto", "--sparse=always", "--", source,
                               temporary])
        try:
            if size is not None and os.stat(temporary).st_size < size:
                os.truncate(temporary, size)
            os.chmod(temporary, 0o600)
            self._publish(temporary, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    @staticmethod
    def _publish(temporary: str, path: str) -> None:
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)

    @staticmethod
    def _temporary(path: str) -> str:
        directory, name = os.path.split(path)
        return os.path.join(directory, f".{name}.part")

    @staticmethod
    def _exists_with_size(path: str, size: int) -> bool:
        try:
            current = os.stat(path).st_size
        except FileNotFoundError:
            return False
        if current != size:
            raise exception.BackendError(
                reason=f"image {path} exists with {current} bytes, not the {size} asked for")
        return True

    def _volume_path(self, volume_id: str) -> str:
        return os.path.join(self.volumes_dir, volume_name(volume_id))

    def _snapshots_root(self) -> str:
        return os.path.join(self.volumes_dir, "snapshots")

    def _snapshot_dir(self, volume_id: str) -> str:
        return os.path.join(self._snapshots_root(), volume_name(volume_id))

    def _snapshot_dirs(self) -> list[str]:
        try:
            return [entry.path for entry in os.scandir(self._snapshots_root())
                    if entry.is_dir()]
        except FileNotFoundError:
            return []

    def _snapshot_path(self, snapshot: SnapshotRef) -> str:
        return os.path.join(self._snapshot_dir(snapshot.volume_id),
                            "snapshot-" + canonical_uuid(snapshot.id))
