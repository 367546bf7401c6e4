"""The comparison behind ``volmgr-manage reconcile`` and the volume daemon's continuous
reconcile: this host's volume rows against what its backend really holds (volumes and
exports), and the repairs of what was found. See ``volmgr.manage.reconcile`` for the
problems' meanings.

It must never touch a volume a row still claims, and never change a row that moved
while it looked: each repair re-checks and uses a guarded UPDATE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

from volmgr import exception, states
from volmgr.db import Database, models
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef


class Progress(Protocol):
    def advance(self) -> None: ...


MISSING_REASON = "backing volume missing (found by reconcile)"

#: Statuses in which the backing volume must exist. ``creating`` and ``error`` (a
#: create that failed) may legitimately have none; ``deleting``/``error_deleting``
#: may already have lost it.
NEEDS_BACKING = (states.AVAILABLE, states.IN_USE, states.ATTACHING, states.DETACHING,
                 states.EXTENDING, states.ERROR_ATTACHING, states.ERROR_DETACHING,
                 states.ERROR_EXTENDING, states.RESERVED)

#: Statuses in which an export is expected: an attachment is being made (``reserved``
#: after a v3 connect too), is live, or is being (or failed to be) taken down and may
#: still carry a server's I/O; an attached volume keeps its export while it grows.
EXPORT_EXPECTED = (states.ATTACHING, states.IN_USE, states.DETACHING,
                   states.ERROR_DETACHING, states.RESERVED, states.EXTENDING,
                   states.ERROR_EXTENDING)

ORDER = ("orphan_target", "orphan_lv", "missing_lv", "foreign_lv", "foreign_target",
         "orphan_snapshot", "missing_snapshot")
MISSING_SNAPSHOT_REASON = "backing snapshot missing (found by reconcile)"


@dataclasses.dataclass
class Finding:
    """One difference between the database and the backend."""

    problem: str
    volume_id: str
    status: str | None
    detail: str
    action: str = "reported"
    size: int = 0
    provider_location: str | None = None
    provider_auth: str | None = None
    #: The snapshot of an ``orphan_snapshot``/``missing_snapshot`` (``volume_id`` is its
    #: parent volume).
    snapshot_id: str | None = None

    def row(self) -> dict[str, Any]:
        # provider_auth holds the CHAP secret: it never leaves this object.
        return {"problem": self.problem, "volume_id": self.volume_id,
                "status": self.status, "detail": self.detail, "action": self.action}

    def ref(self) -> VolumeRef:
        return VolumeRef(id=self.volume_id, size=self.size,
                         provider_location=self.provider_location,
                         provider_auth=self.provider_auth)


def _finding(problem: str, volume_id: str, volume: models.Volume | None,
             detail: str) -> Finding:
    if volume is None:
        return Finding(problem, volume_id, None, detail)
    return Finding(problem, volume_id, volume.status, detail, size=volume.size,
                   provider_location=volume.provider_location,
                   provider_auth=volume.provider_auth)


def find_problems(db: Database, driver: VolumeDriver, host: str) -> list[Finding]:
    """Compare rows and backend without mistaking an operation that finishes meanwhile
    for a problem. Rows are written before storage is touched (create) and change
    status before storage is removed (delete, detach), so: the backend is listed before
    and after the rows are read, only what both listings agree on counts, and every
    suspect row is read once more after the second listing."""
    backend_before = driver.list_volume_ids()
    exported_before = driver.list_exported_volume_ids()
    on_host = {v.id: v for v in db.volumes_by_host(host)}
    backend_after = driver.list_volume_ids()
    # Orphans must be in both listings (one being deleted right now is not); a row's
    # volume need only be in the second (one created right now is not missing).
    backend = backend_before & backend_after
    exported = exported_before & driver.list_exported_volume_ids()

    suspects = ((backend | exported) - on_host.keys()) | {
        volume_id for volume_id, volume in on_host.items()
        if (volume.status in NEEDS_BACKING and volume_id not in backend_after)
        or (volume.status not in EXPORT_EXPECTED and volume_id in exported)}
    rows = db.volumes_by_ids(suspects)

    findings: list[Finding] = []
    for volume_id in sorted(suspects):
        row = rows.get(volume_id)
        if row is not None and row.host != host:
            where = f"row belongs to host {row.host!r}; not touched"
            if volume_id in backend_after:
                findings.append(_finding("foreign_lv", volume_id, row, where))
            if volume_id in exported:
                findings.append(_finding("foreign_target", volume_id, row, where))
            continue
        if volume_id in exported and (row is None or row.status not in EXPORT_EXPECTED):
            detail = ("exported, no live volume row" if row is None
                      else f"exported while {row.status}")
            findings.append(_finding("orphan_target", volume_id, row, detail))
        if row is None and volume_id in backend:
            findings.append(_finding("orphan_lv", volume_id, None,
                                     "on the backend, no live volume row"))
        if row is not None and row.status in NEEDS_BACKING and volume_id not in backend_after:
            findings.append(_finding("missing_lv", volume_id, row,
                                     f"row is {row.status}, backend has no volume"))
    findings.extend(_snapshot_problems(db, driver, host))
    findings.sort(key=lambda f: (ORDER.index(f.problem), f.volume_id))
    return findings


def _snapshot_problems(db: Database, driver: VolumeDriver, host: str) -> list[Finding]:
    """Snapshots on the backend with no live row anywhere, and available snapshot rows of
    this host's volumes whose backing is gone; listed before and after the rows are read
    as for volumes (a row is written before its snapshot is made, and a snapshot is
    removed before its row)."""
    before = driver.list_snapshots()
    if before is None:
        return []
    rows = {snapshot.id: snapshot for snapshot in db.snapshot_list()}
    on_host = {volume.id for volume in db.volumes_by_host(host)}
    after = driver.list_snapshots() or {}
    findings = [
        Finding("orphan_snapshot", parent, None,
                f"snapshot {snapshot_id} on the backend, no live snapshot row",
                snapshot_id=snapshot_id)
        for snapshot_id, parent in sorted(after.items())
        if snapshot_id in before and snapshot_id not in rows]
    findings.extend(
        Finding("missing_snapshot", row.volume_id, row.status,
                f"snapshot {snapshot_id} is {row.status}, backend has no snapshot",
                snapshot_id=snapshot_id)
        for snapshot_id, row in sorted(rows.items())
        if row.volume_id in on_host and row.status == states.SNAP_AVAILABLE
        and snapshot_id not in after)
    return findings


def fix_problems(db: Database, driver: VolumeDriver, findings: Iterable[Finding],
                 progress: Progress | None = None) -> None:
    """Repair what ``find_problems`` reported; each finding's ``action`` says what was
    done (or why not). Backend errors are recorded per finding, never abort the run."""
    exported = driver.list_exported_volume_ids()
    for finding in findings:
        try:
            finding.action = _fix_one(db, driver, finding, exported)
        except exception.VolmgrError as error:
            finding.action = f"failed: {error}"
        if progress is not None:
            progress.advance()


def _fix_one(db: Database, driver: VolumeDriver, finding: Finding,
             exported: set[str]) -> str:
    if finding.problem == "orphan_target":
        current = db.volumes_by_ids([finding.volume_id]).get(finding.volume_id)
        if current is not None and current.status in EXPORT_EXPECTED:
            return f"skipped: volume became {current.status}"
        driver.remove_export(finding.ref())
        return "export removed"
    if finding.problem == "orphan_lv":
        if db.volumes_by_ids([finding.volume_id]):
            return "skipped: a volume row appeared"
        if finding.volume_id in exported:
            driver.remove_export(finding.ref())
        driver.delete_volume(finding.ref())
        return "volume removed"
    if finding.problem == "missing_lv":
        assert finding.status is not None
        if not db.volume_transition(finding.volume_id, (finding.status,),
                                    {"status": states.ERROR,
                                     "status_reason": MISSING_REASON}):
            return "skipped: row changed meanwhile"
        if finding.volume_id in exported:
            # An error volume is never exported; leaving it would be the next orphan.
            driver.remove_export(finding.ref())
            return "set to error; export removed"
        return "set to error"
    if finding.problem == "orphan_snapshot":
        assert finding.snapshot_id is not None
        try:
            db.snapshot_get(finding.snapshot_id)
            return "skipped: a snapshot row appeared"
        except exception.SnapshotNotFound:
            pass
        driver.delete_snapshot(SnapshotRef(finding.snapshot_id, finding.volume_id, 0))
        return "snapshot removed"
    if finding.problem == "missing_snapshot":
        assert finding.snapshot_id is not None
        if not db.snapshot_transition(finding.snapshot_id, (states.SNAP_AVAILABLE,),
                                      {"status": states.SNAP_ERROR,
                                       "status_reason": MISSING_SNAPSHOT_REASON}):
            return "skipped: row changed meanwhile"
        return "set to error"
    return "reported only"
