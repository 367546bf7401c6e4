"""The manager's half of managing and unmanaging: adopting storage that exists without a
row, and forgetting a row without touching its storage (docs/operations.md, "Adopting
existing storage").

The API writes the row first (``managing`` or ``unmanaging``, quota reserved for the size
the storage host reported), then casts; here the storage is adopted (checked again,
grown to whole GiB, renamed to volmgr's scheme) and the row moved on with one guarded
UPDATE. Like every operation, each is idempotent and a no-op for a row that moved on.

The client's reference is not stored, so recovery cannot re-drive an adoption whose
message was lost. Instead it looks at the storage: adopted already (the rename is the
last step) means the work was done and the row becomes ``available``; otherwise the row
becomes ``error`` and the object keeps its own name, to be managed again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from volmgr import exception, metrics, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.manageable import SOURCE_NAME
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.operations import failure_reason, snapshot_ref, volume_ref

LOG = logging.getLogger(__name__)

INTERRUPTED = ("the adoption was interrupted before the storage was renamed; it keeps "
               "its own name and can be managed again")


class Adoption:
    """Manage and unmanage bodies; the manager runs each in the volume's turn."""

    def __init__(self, db: Database, driver: VolumeDriver, notifier: VolumeNotifier) -> None:
        self.db = db
        self.driver = driver
        self.notifier = notifier

    # -- what the storage holds (calls) -------------------------------------------------

    def manageable_volumes(self) -> list[dict[str, Any]]:
        owned = set(self.db.volumes_by_ids(self.driver.list_volume_ids()))
        return [entry.as_dict() for entry in self.driver.list_manageable_volumes(owned)]

    def manageable_snapshots(self) -> list[dict[str, Any]]:
        on_backend = self.driver.list_snapshots() or {}
        owned = set(self.db.snapshots_by_ids(on_backend))
        return [entry.as_dict() for entry in self.driver.list_manageable_snapshots(owned)]

    def size_to_manage(self, reference: Mapping[str, Any],
                       volume_id: str | None = None) -> int:
        """The size in GiB a volume adopted from ``reference`` would have or, with
        ``volume_id``, a snapshot of that volume; InvalidInput naming the reason when
        the object does not exist or is not safe to manage (so the API refuses the
        request before it writes a row)."""
        if volume_id is None:
            size = self.driver.manage_existing_get_size(reference)
            entries: list[dict[str, Any]] = self.manageable_volumes()
        else:
            size = self.driver.manage_existing_snapshot_get_size(volume_id, reference)
            entries = self.manageable_snapshots()
        name = reference.get(SOURCE_NAME)
        entry = next((e for e in entries if e["reference"].get(SOURCE_NAME) == name), None)
        if entry is None or not entry["safe_to_manage"]:
            why = entry["reason_not_safe"] if entry else "not a manageable object"
            raise exception.InvalidInput(reason=f"{name} cannot be managed: {why}")
        return size

    # -- volumes ----------------------------------------------------------------------

    def manage_volume(self, ctx: RequestContext, volume_id: str,
                      reference: Mapping[str, Any]) -> None:
        volume = self._volume_in(volume_id, states.MANAGING, "manage")
        if volume is None:
            return
        try:
            size = self.driver.manage_existing_get_size(reference)
            if size != volume.size:
                # The row (and its quota) say what the storage said when it was asked;
                # refuse before anything is renamed.
                raise ValueError(f"the object is {size} GiB now, not the {volume.size} "
                                 f"GiB it was when the request was accepted")
            owned = set(self.db.volumes_by_ids(self.driver.list_volume_ids()))
            self.driver.manage_existing(volume_ref(volume), reference, owned)
        except Exception as error:
            self._fail_volume(ctx, volume_id, "Manage", error)
            return
        self._volume_done(ctx, volume_id)

    def finish_interrupted_manage(self, ctx: RequestContext, volume_id: str) -> None:
        """Recovery of a ``managing`` row: done if the storage was renamed already."""
        if self._volume_in(volume_id, states.MANAGING, "manage recovery") is None:
            return
        if volume_id in self.driver.list_volume_ids():
            self._volume_done(ctx, volume_id)
        else:
            self.db.volume_transition(volume_id, (states.MANAGING,),
                                      {"status": states.ERROR, "status_reason": INTERRUPTED})

    def unmanage_volume(self, ctx: RequestContext, volume_id: str) -> None:
        """Withdraw any export and forget the row; the storage stays as it is."""
        volume = self._volume_in(volume_id, states.UNMANAGING, "unmanage")
        if volume is None:
            return
        try:
            self.driver.remove_export(volume_ref(volume))
        except Exception as error:
            self._fail_volume(ctx, volume_id, "Unmanage", error, states.UNMANAGING)
            return
        if self.db.volume_destroy(volume_id, expected=(states.UNMANAGING,)):
            LOG.info("Unmanaged volume %s; its storage is left in place", volume_id)
            self._notify(ctx, "volume.unmanage.end", volume)

    def _volume_in(self, volume_id: str, status: str, action: str) -> Any:
        volume = self.db.volumes_by_ids([volume_id]).get(volume_id)
        if volume is None or volume.status != status:
            LOG.info("Volume %s is %s, not %s; %s already done or superseded", volume_id,
                     "gone" if volume is None else volume.status, status, action)
            return None
        return volume

    def _notify(self, ctx: RequestContext, event_type: str, volume: Any, *,
                error: bool = False) -> None:
        """Notify with the row as it is now (``volume`` is the row or its id)."""
        if not self.notifier.enabled:
            return
        if isinstance(volume, str):
            try:
                volume = self.db.volume_get(volume)
            except exception.VolumeNotFound:
                return
        self.notifier.volume(ctx, event_type, volume, error=error)

    def _volume_done(self, ctx: RequestContext, volume_id: str) -> None:
        if self.db.volume_transition(volume_id, (states.MANAGING,),
                                     {"status": states.AVAILABLE, "status_reason": None}):
            LOG.info("Adopted existing storage as volume %s", volume_id)
            self._notify(ctx, "volume.manage_existing.end", volume_id)

    def _fail_volume(self, ctx: RequestContext, volume_id: str, what: str,
                     error: BaseException, status: str = states.MANAGING) -> None:
        reason = _logged_reason(what, volume_id, error)
        if self.db.volume_transition(volume_id, (status,),
                                     {"status": states.ERROR, "status_reason": reason}):
            self._notify(ctx, f"volume.{what.lower()}.error", volume_id, error=True)

    # -- snapshots --------------------------------------------------------------------

    def manage_snapshot(self, ctx: RequestContext, snapshot_id: str,
                        reference: Mapping[str, Any]) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_MANAGING, "manage")
        if snapshot is None:
            return
        ref = snapshot_ref(snapshot)
        try:
            size = self.driver.manage_existing_snapshot_get_size(ref.volume_id, reference)
            if size != snapshot.size:
                raise ValueError(f"the object is {size} GiB now, not the {snapshot.size} "
                                 f"GiB it was when the request was accepted")
            owned = set(self.db.snapshots_by_ids(self.driver.list_snapshots() or {}))
            self.driver.manage_existing_snapshot(ref, reference, owned)
        except Exception as error:
            reason = _logged_reason("Manage", snapshot_id, error)
            self.db.snapshot_transition(snapshot_id, (states.SNAP_MANAGING,),
                                        {"status": states.SNAP_ERROR,
                                         "status_reason": reason})
            return
        self._snapshot_done(snapshot_id)

    def finish_interrupted_snapshot_manage(self, ctx: RequestContext,
                                           snapshot_id: str) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_MANAGING, "manage recovery")
        if snapshot is None:
            return
        if snapshot_id in (self.driver.list_snapshots() or {}):
            self._snapshot_done(snapshot_id)
        else:
            self.db.snapshot_transition(snapshot_id, (states.SNAP_MANAGING,),
                                        {"status": states.SNAP_ERROR,
                                         "status_reason": INTERRUPTED})

    def unmanage_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        if self._snapshot_in(snapshot_id, states.SNAP_UNMANAGING, "unmanage") is None:
            return
        if self.db.snapshot_destroy(snapshot_id, expected=(states.SNAP_UNMANAGING,)):
            LOG.info("Unmanaged snapshot %s; its storage is left in place", snapshot_id)

    def _snapshot_in(self, snapshot_id: str, status: str, action: str) -> Any:
        snapshot = self.db.snapshots_by_ids([snapshot_id]).get(snapshot_id)
        if snapshot is None or snapshot.status != status:
            LOG.info("Snapshot %s is %s, not %s; %s already done or superseded",
                     snapshot_id, "gone" if snapshot is None else snapshot.status, status,
                     action)
            return None
        return snapshot

    def _snapshot_done(self, snapshot_id: str) -> None:
        if self.db.snapshot_transition(snapshot_id, (states.SNAP_MANAGING,),
                                       {"status": states.SNAP_AVAILABLE,
                                        "status_reason": None, "progress": "100%"}):
            LOG.info("Adopted existing storage as snapshot %s", snapshot_id)


def _logged_reason(what: str, object_id: str, error: BaseException) -> str:
    """Log the failure for the operator and return what the owner may read."""
    metrics.note_failure()  # the running job's outcome is "error"
    reason = failure_reason(error)
    if isinstance(error, ValueError):
        reason = str(error)
    LOG.error("%s of %s failed: %s", what, object_id, error)
    return f"{what.lower()} failed: {reason}"[:1000]

