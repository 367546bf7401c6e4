"""Recovery: finish what a lost message or a crash left half-done (docs/rpc.md, "Delivery").

At start-up and every ``[volume] recovery_interval`` the daemon looks for its own volume
and snapshot rows that have sat in a transitional status for longer than
``[volume] recovery_age``, claims each with a guarded UPDATE (which counts the attempt)
and queues the operation again; after ``recovery_max_attempts`` the row goes to the
matching ``error_*`` status with a reason. At start-up it also restores the exports of
attached volumes. It never touches another host's rows and never runs storage commands
itself: the manager does, serialized with every other operation on the same volume.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

from oslo_config import cfg

from volmgr import states
from volmgr.db import Database, models
from volmgr.volume.manager import VolumeManager

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class RecoveryReport:
    """What one recovery pass did, by id: ``(id, status)`` pairs."""

    redriven: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.redriven or self.failed)


def gave_up_reason(status: str, attempts: int) -> str:
    return (f"gave up after {attempts} recovery attempts: the request that left the row "
            f"'{status}' never completed (daemon crashed or the operation hung)")


class Recovery:
    """Re-drives this host's stuck rows through ``manager``."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, manager: VolumeManager,
                 *, host: str | None = None) -> None:
        self.db = db
        self.manager = manager
        self.host = host or manager.host
        self.age = datetime.timedelta(seconds=conf.volume.recovery_age)
        self.max_attempts: int = conf.volume.recovery_max_attempts

    def run_once(self) -> RecoveryReport:
        """One pass over the stuck rows; returns (and logs) what it queued."""
        report = RecoveryReport()
        cutoff = models.utcnow() - self.age
        # Work queued here before this pass is not lost, only waiting for a worker.
        busy = self.manager.busy_volume_ids()
        for volume in self.db.volumes_stuck(self.host, cutoff):
            if volume.id in busy:
                continue
            if volume.status in (states.ATTACHING, states.DETACHING) and \
                    not self.manager.needs_attachment_recovery(volume):
                continue  # the client's turn (after os-reserve), not this manager's
            attempt = self.db.volume_claim_recovery(volume.id, volume.status, cutoff)
            if attempt is None:
                continue
            if attempt > self.max_attempts:
                self.manager.fail_volume(volume, gave_up_reason(volume.status,
                                                                self.max_attempts))
                report.failed.append((volume.id, volume.status))
            else:
                self.manager.redrive_volume(volume)
                report.redriven.append((volume.id, volume.status))
        for snapshot in self.db.snapshots_stuck(self.host, cutoff):
            if snapshot.volume_id in busy:
                continue
            attempt = self.db.snapshot_claim_recovery(snapshot.id, snapshot.status, cutoff)
            if attempt is None:
                continue
            if attempt > self.max_attempts:
                self.manager.fail_snapshot(snapshot, gave_up_reason(snapshot.status,
                                                                    self.max_attempts))
                report.failed.append((snapshot.id, snapshot.status))
            else:
                self.manager.redrive_snapshot(snapshot)
                report.redriven.append((snapshot.id, snapshot.status))
        # Attachments with unfinished manager work on volumes that are not themselves
        # transitional (a multiattach volume in use, a reserved one): finish or undo.
        seen = {object_id for object_id, _ in report.redriven + report.failed}
        for attachment in self.db.attachments_stuck(self.host, cutoff):
            volume_id = attachment.volume_id
            if volume_id in busy or volume_id in seen:
                continue
            if not self.db.attachment_claim_recovery(attachment.id,
                                                     attachment.attach_status, cutoff):
                continue
            seen.add(volume_id)
            self.manager.redrive_attachment(attachment)
            report.redriven.append((attachment.id, f"attachment {attachment.attach_status}"))
        self._log(report)
        return report

    def restore_exports(self) -> int:
        """Queue ``ensure_export`` for every attached volume of this host."""
        volumes = self.db.volumes_with_exports(self.host)
        for volume in volumes:
            self.manager.ensure_export(volume)
        if volumes:
            LOG.info("Restoring the exports of %d attached volume(s): %s", len(volumes),
                     ", ".join(v.id for v in volumes))
        return len(volumes)

    @staticmethod
    def _log(report: RecoveryReport) -> None:
        if report.redriven:
            LOG.warning("Recovery re-drives %d stuck request(s): %s", len(report.redriven),
                        ", ".join(f"{i} ({s})" for i, s in report.redriven))
        if report.failed:
            LOG.error("Recovery gave up on %d request(s): %s", len(report.failed),
                      ", ".join(f"{i} ({s})" for i, s in report.failed))
