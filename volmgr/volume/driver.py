"""The storage driver interface the manager drives (docs/architecture.md).

Drivers receive small value objects (``VolumeRef``, ``SnapshotRef``), never ORM rows,
and every method is idempotent: creating what exists with the right size succeeds,
deleting what is gone succeeds. Drivers never see user text (names, descriptions,
metadata): only UUIDs and sizes.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from volmgr import exception

if TYPE_CHECKING:
    from volmgr.volume.manageable import ManageableSnapshot, ManageableVolume

#: Bytes in a GiB: sizes cross this interface in whole GiB.
GiB = 1024 ** 3


def gib_to_bytes(size: int) -> int:
    """``size`` GiB in bytes; InvalidInput unless ``size`` is a whole number of GiB above
    zero, the only sizes a driver creates or grows a volume to."""
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise exception.InvalidInput(reason="sizes are whole GiB greater than zero")
    return size * GiB


@dataclasses.dataclass(frozen=True)
class VolumeRef:
    """What a driver may know about a volume."""

    id: str
    size: int  # GiB
    provider_location: str | None = None
    provider_auth: str | None = None  # "CHAP <user> <secret>", stored with the volume


@dataclasses.dataclass(frozen=True)
class SnapshotRef:
    """What a driver may know about a snapshot."""

    id: str
    volume_id: str
    size: int  # GiB


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Capacity in GiB as the scheduler and ``service list`` show it."""

    total_gb: float
    free_gb: float
    provisioned_gb: float = 0.0
    thin: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"total_capacity_gb": self.total_gb, "free_capacity_gb": self.free_gb,
                "provisioned_capacity_gb": self.provisioned_gb,
                "thin_provisioning_support": self.thin, **self.extra}


class VolumeDriver(abc.ABC):
    """Creates, exports and removes volumes on one backend."""

    #: Name reported in capabilities, e.g. "lvm" or "file".
    name = "base"

    @abc.abstractmethod
    def check_setup(self) -> None:
        """Raise InvalidConfiguration or BackendError if the backend cannot work."""

    @abc.abstractmethod
    def create_volume(self, volume: VolumeRef) -> dict[str, Any]:
        """Create the backing store; returns model updates (e.g. provider_location)."""

    @abc.abstractmethod
    def create_volume_from_snapshot(self, volume: VolumeRef,
                                    snapshot: SnapshotRef) -> dict[str, Any]:
        """Create a volume holding the snapshot's data (at least snapshot.size GiB)."""

    def create_cloned_volume(self, volume: VolumeRef, source: VolumeRef) -> dict[str, Any]:
        """Create a volume holding a copy of ``source``'s data (at least its size)."""
        raise exception.BackendError(reason=f"the {self.name} driver cannot clone volumes")

    @abc.abstractmethod
    def delete_volume(self, volume: VolumeRef) -> None:
        """Remove the backing store; VolumeHasSnapshots if snapshots depend on it."""

    @abc.abstractmethod
    def extend_volume(self, volume: VolumeRef, new_size: int) -> None:
        """Grow the volume to ``new_size`` GiB; a no-op if it is that size already."""

    @abc.abstractmethod
    def create_snapshot(self, snapshot: SnapshotRef) -> dict[str, Any]:
        """Create a point-in-time copy of ``snapshot.volume_id``."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        """Remove the snapshot; succeeds when it is already gone."""

    @abc.abstractmethod
    def create_export(self, volume: VolumeRef) -> dict[str, Any]:
        """Export the volume (target, LUN, CHAP); returns model updates such as
        ``provider_auth`` and ``provider_location``."""

    @abc.abstractmethod
    def ensure_export(self, volume: VolumeRef) -> None:
        """Re-create the export if it is missing (after a target or host restart)."""

    @abc.abstractmethod
    def remove_export(self, volume: VolumeRef) -> None:
        """Remove the export; succeeds when it is already gone."""

    def refresh_export(self, volume: VolumeRef) -> None:
        """Make a live export show the volume's new size to logged-in initiators (after
        an extend of an attached volume); a no-op where the target reads it itself."""
        return None

    @abc.abstractmethod
    def initialize_connection(self, volume: VolumeRef,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """Allow ``connector`` in and return connection_info in the os-brick shape."""

    @abc.abstractmethod
    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        """Withdraw what ``initialize_connection`` allowed."""

    @abc.abstractmethod
    def get_capacity(self) -> Capacity:
        """Total, free and provisioned capacity of the backend."""

    @abc.abstractmethod
    def list_volume_ids(self) -> set[str]:
        """UUIDs of the volumes that exist on the backend (for reconcile and tests)."""

    def list_snapshots(self) -> dict[str, str] | None:
        """Snapshot id -> parent volume id of the snapshots on the backend (reconcile);
        None when the driver cannot tell."""
        return None

    @abc.abstractmethod
    def list_exported_volume_ids(self) -> set[str]:
        """UUIDs of the volumes the target helper currently exports."""

    def export_state(self, volume: VolumeRef) -> Any:
        """What the volume's live export holds (an ``ExportState``), None when it is not
        exported; reconcile compares it before and after a repair."""
        return object() if volume.id in self.list_exported_volume_ids() else None

    # -- adopting existing storage (volmgr.volume.manageable) ---------------------------
    # ``reference`` is the client's ``{"source-name": <name>}``; ``owned_ids`` are the
    # ids of live rows, so what a row owns is listed as not safe to manage. Sizes are
    # whole GiB, rounded up. A driver that cannot adopt refuses with InvalidInput.

    def list_manageable_volumes(self, owned_ids: Collection[str]) -> list[ManageableVolume]:
        raise self._cannot_adopt()

    def manage_existing_get_size(self, reference: Mapping[str, Any]) -> int:
        raise self._cannot_adopt()

    def manage_existing(self, volume: VolumeRef, reference: Mapping[str, Any],
                        owned_ids: Collection[str]) -> int:
        """Take the object under management as ``volume`` (renamed to volmgr's scheme);
        returns its size. Idempotent: one already adopted as ``volume`` is only sized."""
        raise self._cannot_adopt()

    def list_manageable_snapshots(self,
                                  owned_ids: Collection[str]) -> list[ManageableSnapshot]:
        raise self._cannot_adopt()

    def manage_existing_snapshot_get_size(self, volume_id: str,
                                          reference: Mapping[str, Any]) -> int:
        raise self._cannot_adopt()

    def manage_existing_snapshot(self, snapshot: SnapshotRef, reference: Mapping[str, Any],
                                 owned_ids: Collection[str]) -> int:
        raise self._cannot_adopt()

    def _cannot_adopt(self) -> exception.InvalidInput:
        return exception.InvalidInput(
            reason=f"the {self.name} driver cannot adopt existing storage")

    def local_path(self, volume: VolumeRef) -> str:
        """Path of the volume's block device or image on this host (what is exported,
        and what a local attach or a data copy opens)."""
        raise NotImplementedError(f"{type(self).__name__} has no local path")
