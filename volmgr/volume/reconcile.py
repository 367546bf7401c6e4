"""Continuous reconcile: every ``[volume] reconcile_interval`` seconds the volume daemon
compares its host's exports and volumes with what the database says should exist.

* an attached volume (``volumes_with_exports``) gets ``ensure_export``: a missing target
  is rebuilt, an incomplete one (LUN or CHAP account gone) is rebuilt, and an ACL that
  drifted is put back to what the export record admits;
* an export no live attachment explains (``orphan_target`` of ``volmgr-manage
  reconcile``) is removed once it has been seen stale for ``reconcile_grace`` seconds;
* volumes on the backend that no row explains (``orphan_lv``) and rows whose backing
  volume is gone (``missing_lv``) are reported, in the log and as
  ``volmgr_unexplained_lvs``, and never changed: that is ``volmgr-manage reconcile
  --fix``'s decision, a person's.

The comparison is ``volmgr.volume.drift.find_problems``, the one ``volmgr-manage
reconcile`` runs. Every
repair is queued on the manager's keyed thread pool under the volume's id, so it runs in
the volume's turn, between operations and never during one, and it reads the row again
there before it touches anything.
"""

from __future__ import annotations

import logging
import time

from volmgr import metrics
from volmgr.db import Database
from volmgr.volume import drift as manual
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.manager import VolumeManager
from volmgr.volume.operations import volume_ref
from volmgr.volume.targets.base import ExportState

LOG = logging.getLogger(__name__)

REPORTED = ("orphan_lv", "missing_lv", "foreign_lv", "foreign_target", "orphan_snapshot",
            "missing_snapshot")


class Reconciler:
    """One host's periodic comparison; ``run_once`` is one pass."""

    def __init__(self, db: Database, driver: VolumeDriver, manager: VolumeManager,
                 grace: float) -> None:
        self.db = db
        self.driver = driver
        self.manager = manager
        self.host = manager.host
        self.grace = grace
        #: Stale exports by volume id: when this daemon first saw each.
        self.stale_since: dict[str, float] = {}
        self._reported: set[tuple[str, str]] = set()

    def run_once(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for volume in self.db.volumes_with_exports(self.host):
            self.manager.run_in_turn(volume.id, self._ensure_export, volume.id)
        findings = manual.find_problems(self.db, self.driver, self.host)
        stale = {f.volume_id: f for f in findings if f.problem == "orphan_target"}
        self.stale_since = {volume_id: self.stale_since.get(volume_id, now)
                            for volume_id in stale}
        for volume_id, finding in stale.items():
            if now - self.stale_since[volume_id] >= self.grace:
                self.manager.run_in_turn(volume_id, self._remove_stale_export, finding)
        unexplained = [f for f in findings
                       if f.problem in ("orphan_lv", "foreign_lv", "orphan_snapshot")]
        metrics.UNEXPLAINED_LVS.labels(self.host).set(len(unexplained))
        reported = {(f.problem, f.snapshot_id or f.volume_id) for f in findings
                    if f.problem in REPORTED}
        for problem, object_id in sorted(reported - self._reported):
            detail = next(f.detail for f in findings
                          if (f.problem, f.snapshot_id or f.volume_id) == (problem, object_id))
            LOG.warning("Reconcile: %s %s (%s); left alone, see volmgr-manage reconcile",
                        problem, object_id, detail)
        self._reported = reported

    def _ensure_export(self, volume_id: str) -> None:
        """In the volume's turn: rebuild or correct its export if it still needs one."""
        if volume_id not in {v.id for v in self.db.volumes_with_exports(self.host)}:
            return  # detached meanwhile: nothing to keep
        ref = volume_ref(self.db.volume_get(volume_id))
        before = self.driver.export_state(ref)
        try:
            self.driver.ensure_export(ref)
            after = self.driver.export_state(ref)
        except Exception as error:
            metrics.note_failure()
            LOG.error("Reconcile: cannot restore the export of volume %s: %s", volume_id,
                      error)
            return
        if before is None:
            metrics.RECONCILE_REPAIRS.labels(self.host, "export_rebuilt").inc()
            LOG.warning("Reconcile: the export of attached volume %s was missing; rebuilt",
                        volume_id)
            return
        for kind in (before.repairs(after) if isinstance(before, ExportState) else []):
            metrics.RECONCILE_REPAIRS.labels(self.host, kind).inc()
            LOG.warning("Reconcile: the export of attached volume %s had drifted; %s",
                        volume_id, kind.replace("_", " "))

    def _remove_stale_export(self, finding: manual.Finding) -> None:
        """In the volume's turn: remove the export if still no attachment explains it."""
        manual.fix_problems(self.db, self.driver, [finding])
        if finding.action.startswith("export removed") or finding.action.endswith(
                "export removed"):
            self.stale_since.pop(finding.volume_id, None)
            metrics.RECONCILE_REPAIRS.labels(self.host, "stale_export_removed").inc()
            LOG.warning("Reconcile: removed the export of volume %s (%s)",
                        finding.volume_id, finding.detail)
        elif finding.action.startswith("failed"):
            metrics.note_failure()
            LOG.error("Reconcile: volume %s: %s", finding.volume_id, finding.action)
