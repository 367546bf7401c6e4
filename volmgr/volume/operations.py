"""The bodies of the manager's operations: check the row, drive the driver, write the
outcome with one guarded UPDATE (the final status, or ``error_*`` with a reason).

Every operation is idempotent: a row that is gone or no longer in the status the
request left it in makes it a logged no-op. Callers (``manager.VolumeManager``) run at
most one operation per volume at a time; nothing here writes SQL or raises to the bus.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from volmgr import exception, metrics, states
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef
from volmgr.volume.notifications import VolumeNotifier

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class Failed(enum.Enum):
    """What ``_driver_step`` returns for a step that raised: the operation is over, its
    row already moved to ``error_*`` (or left to whoever moved it meanwhile)."""

    FAILED = "failed"


FAILED = Failed.FAILED

#: Driver model updates copied onto the volume row.
PROVIDER_FIELDS = ("provider_location", "provider_auth")
MAX_REASON = 1000


#: What a volume's owner is told for a backend failure, by the kind of failure. The
#: specifics (command lines, device paths, VG names, stderr) stay in the manager's log
#: under the reference the reason carries.
_BACKEND_SUMMARIES: tuple[tuple[type[exception.VolmgrError], str], ...] = (
    (exception.TargetError, "the iSCSI target could not be changed"),
    (exception.BackendError, "the storage backend could not complete the operation"),
)
#: stderr phrases worth passing on, reworded without names.
_KNOWN_CAUSES = (
    ("insufficient free space", "not enough free space on the storage host"),
    ("not found", "a backing object is missing"),
)


def failure_reason(error: BaseException, reference: str | None = None) -> str:
    """A ``status_reason`` the volume's owner may read: what kind of thing failed, never
    the host's command lines, device paths or volume group names. With ``reference``,
    where the operator finds the details in the volmgr-volume log."""
    where = f" (reference {reference} in the volmgr-volume log)" if reference else ""
    if isinstance(error, exception.ProcessExecutionError):
        words = [w for w in str(error.kwargs.get("cmd", "")).split()
                 if w not in ("sudo", "env") and not w.startswith("-") and "=" not in w]
        command = os.path.basename(words[0]) if words else "a storage command"
        stderr = str(error.kwargs.get("stderr", "")).lower()
        cause = next((f": {text}" for phrase, text in _KNOWN_CAUSES if phrase in stderr), "")
        text = (f"storage command {command} failed with exit code "
                f"{error.kwargs.get('exit_code')}{cause}{where}")
    elif isinstance(error, exception.BackendError):
        summary = next(text for cls, text in _BACKEND_SUMMARIES if isinstance(error, cls))
        text = f"{summary}{where}"
    elif isinstance(error, exception.VolmgrError):
        text = str(error)  # conflicts and invalid requests name only ids and statuses
    else:
        text = f"unexpected internal error{where}"
    return text[:MAX_REASON]


def volume_ref(volume: models.Volume) -> VolumeRef:
    return VolumeRef(id=volume.id, size=volume.size,
                     provider_location=volume.provider_location,
                     provider_auth=volume.provider_auth)


def snapshot_ref(snapshot: models.Snapshot) -> SnapshotRef:
    return SnapshotRef(id=snapshot.id, volume_id=snapshot.volume_id, size=snapshot.size)


def provider_values(updates: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (updates or {}).items() if key in PROVIDER_FIELDS}


class ManagerOperations:
    """What a manager does for each message: one method per operation; each takes ids
    and reads the rows itself (``ApiOperations`` in ``volmgr.api.operations`` is what the
    API did for the request before it cast)."""

    def __init__(self, db: Database, driver: VolumeDriver, notifier: VolumeNotifier) -> None:
        self.db = db
        self.driver = driver
        self.notifier = notifier

    def _volume_in(self, volume_id: str, expected: tuple[str, ...], action: str,
                   attachments: bool = True) -> models.Volume | None:
        try:
            volume = self.db.volume_get(volume_id, attachments=attachments)
        except exception.VolumeNotFound:
            LOG.info("Volume %s is gone; %s is a no-op", volume_id, action)
            return None
        if volume.status not in expected:
            LOG.info("Volume %s is %s, not %s; %s already done or superseded",
                     volume_id, volume.status, "/".join(expected), action)
            return None
        return volume

    def _failed(self, what: str, object_id: str, error: BaseException) -> str:
        metrics.note_failure()  # the running job's outcome is "error"
        reference = uuid.uuid4().hex[:12]
        if isinstance(error, exception.VolmgrError):
            # volmgr errors are already redacted of secrets; this is the operator's copy.
            LOG.error("%s of %s failed [reference %s]: %s", what, object_id, reference, error)
        else:
            LOG.exception("%s of %s failed [reference %s]", what, object_id, reference)
        return failure_reason(error, reference)

    def _driver_step(self, ctx: RequestContext, step: Callable[[], T], *, what: str,
                     object_id: str, give_up: Callable[[str], bool], error_event: str,
                     cleanup: Callable[[], object] | None = None) -> T | Failed:
        """Run an operation's driver ``step`` and return what it returns. When it raises,
        the operation ends here, always in this order: the failure is logged under a
        reference (``_failed``); ``cleanup`` withdraws what the step may have half done
        (its own failure is only logged); ``give_up(reason)`` moves the row to its
        ``error_*`` status with the owner's ``status_reason``, a guarded write that is
        False when the row moved meanwhile; and only if that write won, ``error_event``
        is sent (a ``snapshot.*`` event about the snapshot ``object_id``, any other about
        the volume). Returns FAILED then."""
        try:
            return step()
        except Exception as error:
            reason = self._failed(what, object_id, error)
            if cleanup is not None:
                self._quietly(cleanup)
            if give_up(reason):
                if error_event.startswith("snapshot."):
                    self._notify_snapshot(ctx, error_event, object_id, error=True)
                else:
                    self._notify_volume(ctx, error_event, object_id, error=True)
            return FAILED

    def _volume_gives_up(self, volume_id: str, status: str) -> Callable[[str], bool]:
        """``give_up`` for a volume still in ``status``: its error status
        (``states.VOLUME_TRANSITIONAL``) with the reason."""
        return lambda reason: self.db.volume_transition(
            volume_id, (status,), {"status": states.VOLUME_TRANSITIONAL[status],
                                   "status_reason": reason})

    def _snapshot_gives_up(self, snapshot_id: str, status: str) -> Callable[[str], bool]:
        """``give_up`` for a snapshot still in ``status``: its error status
        (``states.SNAPSHOT_TRANSITIONAL``) with the reason."""
        return lambda reason: self.db.snapshot_transition(
            snapshot_id, (status,), {"status": states.SNAPSHOT_TRANSITIONAL[status],
                                     "status_reason": reason})

    def create_volume(self, ctx: RequestContext, volume_id: str,
                       snapshot_id: str | None) -> None:
        volume = self._volume_in(volume_id, (states.CREATING,), "create", attachments=False)
        if volume is None:
            return
        self.notifier.volume(ctx, "volume.create.start", volume)
        ref = volume_ref(volume)
        snapshot_id = volume.snapshot_id or snapshot_id
        source_volid = volume.source_volid

        def create() -> dict[str, Any]:
            if snapshot_id:
                snapshot = self.db.snapshot_get(snapshot_id)
                return self.driver.create_volume_from_snapshot(ref, snapshot_ref(snapshot))
            if source_volid:
                source = self.db.volume_get(source_volid)
                return self.driver.create_cloned_volume(ref, volume_ref(source))
            return self.driver.create_volume(ref)
        updates = self._driver_step(
            ctx, create, what="Create", object_id=volume_id,
            give_up=self._volume_gives_up(volume_id, states.CREATING),
            error_event="volume.create.error")
        if updates is FAILED:
            return
        values = {"status": states.AVAILABLE, "status_reason": None, **provider_values(updates)}
        if self.db.volume_transition(volume_id, (states.CREATING,), values):
            LOG.info("Created volume %s (%d GiB)", volume_id, volume.size)
            self._notify_volume(ctx, "volume.create.end", volume_id)
        else:
            LOG.warning("Volume %s left 'creating' while it was created", volume_id)

    def delete_volume(self, ctx: RequestContext, volume_id: str) -> None:
        def read() -> tuple[models.Volume | None, list[str]]:
            volume = self._volume_in(volume_id, (states.DELETING,), "delete",
                                     attachments=False)
            if volume is None:
                return None, []
            return volume, self.db.snapshot_ids_of(volume_id, states.SNAP_DELETING)
        # The row and its snapshots being deleted with it, in one transaction.
        volume, doomed_snapshots = self.db.run_together(read)
        if volume is None:
            return
        # A cascade delete moved the volume's snapshots to deleting with it. Their casts
        # may be dispatched after the volume's (the RPC server runs messages on several
        # threads), so the volume's delete removes them first, in its own turn; their
        # late casts then find nothing to do.
        for snapshot_id in doomed_snapshots:
            self.delete_snapshot(ctx, snapshot_id)
        self.notifier.volume(ctx, "volume.delete.start", volume)
        ref = volume_ref(volume)

        def delete() -> None:
            self.driver.remove_export(ref)
            self.driver.delete_volume(ref)
        if self._driver_step(ctx, delete, what="Delete", object_id=volume_id,
                             give_up=self._volume_gives_up(volume_id, states.DELETING),
                             error_event="volume.delete.error") is FAILED:
            return
        if self.db.volume_destroy(volume_id, expected=(states.DELETING,)):
            LOG.info("Deleted volume %s", volume_id)
            self.notifier.volume(ctx, "volume.delete.end", volume, status="deleted")

    # -- attachments (docs/rpc.md, "Attachments") --------------------------------------

    def _export(self, volume: models.Volume) -> VolumeRef:
        """Make (or keep) the volume's export; the ref carries its CHAP credentials."""
        ref = volume_ref(volume)
        updates = provider_values(self.driver.create_export(ref))
        if updates:
            self.db.volume_update(volume.id, updates)
            ref = VolumeRef(id=ref.id, size=ref.size,
                            provider_location=updates.get("provider_location",
                                                          ref.provider_location),
                            provider_auth=updates.get("provider_auth", ref.provider_auth))
        return ref

    def _withdraw(self, ref: VolumeRef, connector: Mapping[str, Any],
                  attachment_id: str) -> None:
        """Withdraw ``connector``; remove the export when no other attachment holds it."""
        self.driver.terminate_connection(ref, dict(connector))
        if not self.db.attachments_connected(ref.id, but=attachment_id):
            self.driver.remove_export(ref)

    @staticmethod
    def _connection_info(info: Mapping[str, Any],
                         attachment: models.VolumeAttachment) -> dict[str, Any]:
        """What os-brick's connector consumes, with the attachment's access mode."""
        result = dict(info)
        data = dict(result.get("data") or {})
        data["access_mode"] = attachment.attach_mode or "rw"
        if result.get("driver_volume_type") == "iscsi":
            data.setdefault("target_portals", [data.get("target_portal")])
            data.setdefault("target_iqns", [data.get("target_iqn")])
            data.setdefault("target_luns", [data.get("target_lun")])
            data.setdefault("discard", False)
            data.setdefault("encrypted", False)
            data.setdefault("qos_specs", None)
        data["attachment_id"] = attachment.id
        result["data"] = data
        return result

    def connect_attachment(self, ctx: RequestContext, attachment_id: str,
                           connector: Mapping[str, Any]) -> dict[str, Any]:
        """Admit ``connector`` for the attachment and answer its connection_info (the
        call behind ``PUT /attachments/{id}`` and ``os-initialize_connection``). Raises
        volmgr errors only; a failure leaves the attachment ``error_attaching`` and
        nothing admitted."""
        attachment = self.db.attachment_connect_begin(attachment_id, connector)
        volume = self.db.volume_get(attachment.volume_id)
        self.notifier.volume(ctx, "volume.attach.start", volume,
                             instance_uuid=attachment.server_id)
        ref = volume_ref(volume)
        try:
            ref = self._export(volume)
            info = self._connection_info(
                self.driver.initialize_connection(ref, dict(connector)), attachment)
        except Exception as error:
            reason = self._failed("Connect", volume.id, error)
            self._quietly(self._withdraw, ref, connector, attachment_id)
            self.db.attachment_connect_failed(attachment_id)
            self._notify_volume(ctx, "volume.attach.error", volume.id, error=True)
            if isinstance(error, exception.Invalid):
                raise
            raise exception.BackendError(reason=reason) from None
        if not self.db.attachment_connect_done(attachment_id, info):
            # Deleted meanwhile (its detach is queued behind this call): admit nothing.
            self._quietly(self._withdraw, ref, connector, attachment_id)
            raise exception.Conflict(f"Attachment {attachment_id} was ended meanwhile.")
        LOG.info("Volume %s: attachment %s admitted initiator %s", volume.id,
                 attachment_id, connector.get("initiator") or "(any, with CHAP)")
        # As the reference does once the connection is made (the client completes later).
        self._notify_volume(ctx, "volume.attach.end", volume.id,
                            instance_uuid=attachment.server_id)
        return info

    def disconnect(self, ctx: RequestContext, volume_id: str,
                   connector: Mapping[str, Any], attachment_id: str | None) -> None:
        """Withdraw ``connector`` (``os-terminate_connection``); the export stays until
        the attachment ends."""
        volume = self.db.volume_get(volume_id)
        try:
            self.driver.terminate_connection(volume_ref(volume), dict(connector))
        except Exception as error:
            reason = self._failed("Disconnect", volume_id, error)
            raise exception.BackendError(reason=reason) from None
        if attachment_id:
            self.db.attachment_clear_connection(attachment_id)

    def undo_connect(self, ctx: RequestContext, attachment_id: str) -> None:
        """Recovery of a connect that never stored its connection_info (the manager died
        or the call timed out): withdraw what may have been admitted, and put the
        attachment back to ``reserved``; the client may connect again."""
        try:
            attachment = self.db.attachment_get(attachment_id)
        except exception.NotFound:
            return
        if attachment.attach_status != states.ATTACH_ATTACHING or attachment.connection_info:
            return
        volume = self.db.volume_get(attachment.volume_id)
        try:
            self._withdraw(volume_ref(volume), attachment.connector or {}, attachment_id)
        except Exception as error:
            self._failed("Undoing the connect", volume.id, error)
            self.db.attachment_connect_failed(attachment_id)
            return
        if self.db.attachment_connect_undo(attachment_id):
            LOG.warning("Volume %s: connect of attachment %s never finished; withdrawn, "
                        "the attachment is reserved again", volume.id, attachment_id)

    def attach_volume(self, ctx: RequestContext, volume_id: str, attachment_id: str) -> None:
        """(Compute 1.1) connect and complete in one go."""
        volume = self._volume_in(volume_id, (states.ATTACHING,), "attach")
        if volume is None:
            return
        try:
            attachment = self.db.attachment_get(attachment_id)
        except exception.NotFound:
            attachment = None
        if attachment is None or attachment.attach_status != states.ATTACH_ATTACHING:
            LOG.info("Attachment %s of volume %s is not attaching; attach is a no-op",
                     attachment_id, volume_id)
            return
        self.notifier.volume(ctx, "volume.attach.start", volume,
                             instance_uuid=attachment.server_id)
        ref = volume_ref(volume)
        connector = attachment.connector or {}

        def connect() -> dict[str, Any]:
            nonlocal ref
            ref = self._export(volume)
            return self._connection_info(
                self.driver.initialize_connection(ref, dict(connector)), attachment)

        def _withdraw() -> None:  # the clean-up: whatever ``connect`` admitted
            self._withdraw(ref, connector, attachment_id)
        connection_info = self._driver_step(
            ctx, connect, what="Attach", object_id=volume_id, cleanup=_withdraw,
            give_up=lambda reason: self.db.attach_failed(volume_id, attachment_id, reason),
            error_event="volume.attach.error")
        if connection_info is FAILED:
            return
        if self.db.attach_complete(volume_id, attachment_id, connection_info):
            LOG.info("Attached volume %s to %s", volume_id, attachment.server_id)
            self._notify_volume(ctx, "volume.attach.end", volume_id,
                                instance_uuid=attachment.server_id)

    def detach_volume(self, ctx: RequestContext, volume_id: str, attachment_id: str) -> None:
        """End one attachment: withdraw its connector, remove the export if it was the
        last, close it; the volume's status follows what is left."""
        try:
            volume = self.db.volume_get(volume_id)
        except exception.VolumeNotFound:
            return
        try:
            attachment: models.VolumeAttachment | None = self.db.attachment_get(attachment_id)
        except exception.NotFound:
            attachment = None
        if attachment is not None and attachment.attach_status not in (
                states.ATTACH_DETACHING, states.ATTACH_ERROR_DETACHING):
            LOG.info("Attachment %s of volume %s is %s; detach is a no-op", attachment_id,
                     volume_id, attachment.attach_status)
            return
        if attachment is None and volume.status != states.DETACHING:
            LOG.info("Attachment %s of volume %s is gone; detach is a no-op",
                     attachment_id, volume_id)
            return
        connector = dict(attachment.connector or {}) if attachment is not None else {}
        server_id = attachment.server_id if attachment is not None else None
        self.notifier.volume(ctx, "volume.detach.start", volume, instance_uuid=server_id)
        ref = volume_ref(volume)
        if self._driver_step(
                ctx, lambda: self._withdraw(ref, connector, attachment_id), what="Detach",
                object_id=volume_id,
                give_up=lambda reason: self.db.detach_failed(volume_id, attachment_id, reason),
                error_event="volume.detach.error") is FAILED:
            return
        if self.db.detach_complete(volume_id, attachment_id):
            LOG.info("Detached volume %s from %s", volume_id, server_id)
            self._notify_volume(ctx, "volume.detach.end", volume_id, instance_uuid=server_id)

    def recover_attachments(self, ctx: RequestContext, volume_id: str) -> None:
        """Finish or undo what a volume's attachments left half-done (recovery): a
        Compute 1.1 attach is finished, a client-driven connect that never stored its
        connection_info is undone, a detach is finished; a ``detaching`` volume whose
        client never asked for the detach (``os-begin_detaching`` only) is rolled back to
        in use."""
        detaching = False
        for attachment in self.db.attachment_list(volume_id=volume_id):
            if attachment.attach_status == states.ATTACH_DETACHING:
                detaching = True
                self.detach_volume(ctx, volume_id, attachment.id)
            elif (attachment.attach_status == states.ATTACH_ATTACHING
                  and not attachment.connection_info):
                if attachment.flow == states.FLOW_COMPUTE:
                    self.attach_volume(ctx, volume_id, attachment.id)
                else:
                    self.undo_connect(ctx, attachment.id)
        try:
            volume = self.db.volume_get(volume_id)
        except exception.VolumeNotFound:
            return
        if volume.status == states.DETACHING and not detaching:
            self.db.volume_settle(volume_id)
        elif volume.status == states.ATTACHING and not self.db.attachment_list(
                volume_id=volume_id):
            # A Compute 1.1 attach whose attachment row is gone has nothing to complete.
            self.db.volume_transition(volume_id, (states.ATTACHING,),
                                      {"status": states.ERROR_ATTACHING,
                                       "status_reason": "attach lost its attachment record"})

    def redrive_attachment(self, ctx: RequestContext, volume_id: str, status: str) -> None:
        self.recover_attachments(ctx, volume_id)

    def attachment_work_pending(self, volume: models.Volume) -> bool:
        """Whether an ``attaching``/``detaching`` volume waits on this manager (and not
        on its client, as after ``os-reserve``): recovery claims only those."""
        live = self.db.attachment_list(volume_id=volume.id)
        if volume.status == states.DETACHING:
            return True  # a detach to finish, or an abandoned begin_detaching to roll back
        if not live:
            # os-reserve always writes a (legacy) attachment row, so an attaching volume
            # without any row was left by a Compute 1.1 attach that lost its row.
            return volume.status == states.ATTACHING
        return any(a.attach_status == states.ATTACH_DETACHING
                   or (a.attach_status == states.ATTACH_ATTACHING
                       and not a.connection_info) for a in live)

    def extend_volume(self, ctx: RequestContext, volume_id: str, new_size: int) -> None:
        volume = self._volume_in(volume_id, (states.EXTENDING,), "extend")
        if volume is None:
            return
        target_size = volume.target_size or new_size
        if target_size != new_size:
            LOG.warning("Extend of %s asked for %s GiB; the row says %s GiB, using the row",
                        volume_id, new_size, target_size)
        self.notifier.volume(ctx, "volume.resize.start", volume, new_size=target_size)
        attached = bool(self.db.attachments_connected(volume_id))
        ref = volume_ref(volume)

        def extend() -> None:
            self.driver.extend_volume(ref, target_size)
            if attached:
                # The live LUN must show the new size to initiators logged in now.
                self.driver.refresh_export(dataclasses.replace(ref, size=target_size))
        if self._driver_step(
                ctx, extend, what="Extend", object_id=volume_id,
                give_up=lambda reason: self.db.volume_fail_extend(volume_id, reason),
                error_event="volume.resize.error") is FAILED:
            return
        if self.db.volume_finish_extend_settled(volume_id):
            LOG.info("Extended volume %s to %d GiB", volume_id, target_size)
            self._notify_volume(ctx, "volume.resize.end", volume_id)

    def _snapshot_in(self, snapshot_id: str, expected: str,
                     action: str) -> models.Snapshot | None:
        try:
            snapshot = self.db.snapshot_get(snapshot_id)
        except exception.SnapshotNotFound:
            LOG.info("Snapshot %s is gone; %s is a no-op", snapshot_id, action)
            return None
        if snapshot.status != expected:
            LOG.info("Snapshot %s is %s, not %s; %s already done or superseded",
                     snapshot_id, snapshot.status, expected, action)
            return None
        return snapshot

    def create_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_CREATING, "create snapshot")
        if snapshot is None:
            return
        self.notifier.snapshot(ctx, "snapshot.create.start", snapshot)
        ref = snapshot_ref(snapshot)
        if self._driver_step(
                ctx, lambda: self.driver.create_snapshot(ref), what="Snapshot",
                object_id=snapshot_id,
                give_up=self._snapshot_gives_up(snapshot_id, states.SNAP_CREATING),
                error_event="snapshot.create.error") is FAILED:
            return
        if self.db.snapshot_transition(snapshot_id, (states.SNAP_CREATING,),
                                       {"status": states.SNAP_AVAILABLE,
                                        "status_reason": None}):
            LOG.info("Created snapshot %s of volume %s", snapshot_id, snapshot.volume_id)
            self._notify_snapshot(ctx, "snapshot.create.end", snapshot_id)

    def delete_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_DELETING, "delete snapshot")
        if snapshot is None:
            return
        self.notifier.snapshot(ctx, "snapshot.delete.start", snapshot)
        ref = snapshot_ref(snapshot)
        if self._driver_step(
                ctx, lambda: self.driver.delete_snapshot(ref), what="Snapshot delete",
                object_id=snapshot_id,
                give_up=self._snapshot_gives_up(snapshot_id, states.SNAP_DELETING),
                error_event="snapshot.delete.error") is FAILED:
            return
        if self.db.snapshot_destroy(snapshot_id, expected=(states.SNAP_DELETING,)):
            LOG.info("Deleted snapshot %s", snapshot_id)
            self.notifier.snapshot(ctx, "snapshot.delete.end", snapshot, status="deleted")

    def fail_volume(self, volume_id: str, status: str, reason: str) -> None:
        if status == states.EXTENDING:
            won = self.db.volume_fail_extend(volume_id, reason)
        elif status in (states.ATTACHING, states.DETACHING):
            pending = [a for a in self.db.attachment_list(volume_id=volume_id)
                       if a.attach_status in (states.ATTACH_ATTACHING,
                                              states.ATTACH_DETACHING)]
            attachment = pending[-1] if pending else None
            if attachment is None:
                won = self.db.volume_transition(
                    volume_id, (status,), {"status": states.VOLUME_TRANSITIONAL[status],
                                           "status_reason": reason})
            elif status == states.ATTACHING:
                won = self.db.attach_failed(volume_id, attachment.id, reason)
            else:
                won = self.db.detach_failed(volume_id, attachment.id, reason)
        else:
            won = self.db.volume_transition(
                volume_id, (status,), {"status": states.VOLUME_TRANSITIONAL[status],
                                       "status_reason": reason})
        if won:
            LOG.error("Volume %s: %s", volume_id, reason)

    def ensure_export(self, volume_id: str) -> None:
        try:
            volume = self.db.volume_get(volume_id)
            self.driver.ensure_export(volume_ref(volume))
        except Exception as error:
            self._failed("Restoring the export", volume_id, error)
        else:
            LOG.info("Export of volume %s is in place", volume_id)

    def _notify_volume(self, ctx: RequestContext, event_type: str, volume_id: str, *,
                       error: bool = False, **extra: Any) -> None:
        if not self.notifier.enabled:
            return
        try:
            volume = self.db.volume_get(volume_id)
        except exception.VolumeNotFound:
            return
        self.notifier.volume(ctx, event_type, volume, error=error, **extra)

    def _notify_snapshot(self, ctx: RequestContext, event_type: str, snapshot_id: str, *,
                         error: bool = False) -> None:
        if not self.notifier.enabled:
            return
        try:
            snapshot = self.db.snapshot_get(snapshot_id)
        except exception.SnapshotNotFound:
            return
        self.notifier.snapshot(ctx, event_type, snapshot, error=error)

    @staticmethod
    def _quietly(func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception as error:
            LOG.warning("Clean-up %s failed: %s", getattr(func, "__name__", func), error)
