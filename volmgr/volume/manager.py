"""The volume manager: the RPC endpoint every ``volmgr-volume`` daemon serves.

Each operation reads its row, checks that it still sits in the status the request left
it in (so a duplicate or late message is a logged no-op), drives the driver and writes
the outcome with one guarded UPDATE: the final status, or ``error_*`` with a
``status_reason``. Operations on one volume run one at a time in arrival order; different
volumes run in parallel on ``[volume] executor_thread_pool_size`` workers. Only volmgr
exceptions ever travel back over the bus, and no SQL is written here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from oslo_config import cfg

from volmgr import exception, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.volume import rpcapi, serial
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef
from volmgr.volume.notifications import VolumeNotifier

messaging = rpc.messaging
LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: Driver model updates the manager copies onto the volume row.
PROVIDER_FIELDS = ("provider_location", "provider_auth")
MAX_REASON = 1000


def failure_reason(error: BaseException) -> str:
    """A ``status_reason`` an operator can act on; volmgr errors are already redacted."""
    if isinstance(error, exception.VolmgrError):
        text = str(error)
    else:
        text = f"unexpected {type(error).__name__}: {error}"
    return text[:MAX_REASON]


def volume_ref(volume: models.Volume) -> VolumeRef:
    return VolumeRef(id=volume.id, size=volume.size,
                     provider_location=volume.provider_location,
                     provider_auth=volume.provider_auth)


def snapshot_ref(snapshot: models.Snapshot) -> SnapshotRef:
    return SnapshotRef(id=snapshot.id, volume_id=snapshot.volume_id, size=snapshot.size)


def provider_values(updates: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (updates or {}).items() if key in PROVIDER_FIELDS}


def _as_volmgr_error(func: Callable[..., T]) -> Callable[..., T]:
    """Calls answer with volmgr exceptions only; anything else becomes BackendError."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except exception.VolmgrError:
            raise
        except Exception as error:
            LOG.exception("%s failed", func.__name__)
            raise exception.BackendError(reason=failure_reason(error)) from None
    return wrapper


class VolumeManager:
    """RPC endpoint of ``volmgr-volume``; only ``@expose``d methods cross the bus."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, conf: cfg.ConfigOpts, db: Database, driver: VolumeDriver,
                 notifier: VolumeNotifier | None = None, *, host: str | None = None,
                 executor: serial.KeyedExecutor | None = None) -> None:
        self.conf = conf
        self.db = db
        self.driver = driver
        self.notifier = notifier or VolumeNotifier(None)
        self.host = host or conf.host
        self.executor = executor or serial.KeyedExecutor(
            conf.volume.executor_thread_pool_size, name="volmgr-op")

    # -- RPC: casts ------------------------------------------------------------------

    @messaging.expose
    def create_volume(self, context: dict[str, Any], volume_id: str,
                      snapshot_id: str | None = None) -> None:
        self._submit(volume_id, self._create_volume, _ctx(context), volume_id, snapshot_id)

    @messaging.expose
    def delete_volume(self, context: dict[str, Any], volume_id: str) -> None:
        self._submit(volume_id, self._delete_volume, _ctx(context), volume_id)

    @messaging.expose
    def attach_volume(self, context: dict[str, Any], volume_id: str,
                      attachment_id: str) -> None:
        self._submit(volume_id, self._attach_volume, _ctx(context), volume_id, attachment_id)

    @messaging.expose
    def detach_volume(self, context: dict[str, Any], volume_id: str,
                      attachment_id: str) -> None:
        self._submit(volume_id, self._detach_volume, _ctx(context), volume_id, attachment_id)

    @messaging.expose
    def extend_volume(self, context: dict[str, Any], volume_id: str, new_size: int) -> None:
        self._submit(volume_id, self._extend_volume, _ctx(context), volume_id, new_size)

    @messaging.expose
    def create_snapshot(self, context: dict[str, Any], snapshot_id: str) -> None:
        self._submit_snapshot(snapshot_id, self._create_snapshot, _ctx(context))

    @messaging.expose
    def delete_snapshot(self, context: dict[str, Any], snapshot_id: str) -> None:
        self._submit_snapshot(snapshot_id, self._delete_snapshot, _ctx(context))

    # -- RPC: calls ------------------------------------------------------------------

    @messaging.expose
    @_as_volmgr_error
    def get_capabilities(self, context: dict[str, Any]) -> dict[str, Any]:
        return self.capabilities()

    @messaging.expose
    def ping(self, context: dict[str, Any]) -> str:
        return str(self.host)

    # -- For the service and recovery (not reachable over the bus) --------------------

    def capabilities(self) -> dict[str, Any]:
        """What the heartbeat stores and ``get_capabilities`` answers."""
        capacity = self.driver.get_capacity()
        return {**capacity.as_dict(), "driver": self.driver.name,
                "storage_protocol": "iSCSI", "rpc_api_version": rpcapi.RPC_API_VERSION}

    def is_busy(self, volume_id: str) -> bool:
        """Whether an operation on ``volume_id`` runs or waits in this daemon."""
        return self.executor.busy(volume_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self.executor.wait_idle(timeout)

    def close(self) -> None:
        self.executor.close()

    def redrive_volume(self, volume: models.Volume) -> None:
        """Queue again the work a transitional volume row asks for (recovery)."""
        ctx = RequestContext.admin()
        if volume.status == states.CREATING:
            self._submit(volume.id, self._create_volume, ctx, volume.id, volume.snapshot_id)
        elif volume.status == states.DELETING:
            self._submit(volume.id, self._delete_volume, ctx, volume.id)
        elif volume.status == states.EXTENDING:
            self._submit(volume.id, self._extend_volume, ctx, volume.id,
                         volume.target_size or volume.size)
        elif volume.status in (states.ATTACHING, states.DETACHING):
            self._submit(volume.id, self._redrive_attachment, ctx, volume.id, volume.status)

    def redrive_snapshot(self, snapshot: models.Snapshot) -> None:
        ctx = RequestContext.admin()
        if snapshot.status == states.SNAP_CREATING:
            self._submit(snapshot.volume_id, self._create_snapshot, ctx, snapshot.id)
        elif snapshot.status == states.SNAP_DELETING:
            self._submit(snapshot.volume_id, self._delete_snapshot, ctx, snapshot.id)

    def fail_volume(self, volume: models.Volume, reason: str) -> None:
        """Give up on a transitional volume: the matching ``error_*`` with ``reason``."""
        self._submit(volume.id, self._fail_volume, volume.id, volume.status, reason)

    def fail_snapshot(self, snapshot: models.Snapshot, reason: str) -> None:
        target = states.SNAPSHOT_TRANSITIONAL[snapshot.status]
        self._submit(snapshot.volume_id, self.db.snapshot_transition, snapshot.id,
                     (snapshot.status,), {"status": target, "status_reason": reason})

    def ensure_export(self, volume: models.Volume) -> None:
        """Re-create the export of an attached volume if it is missing (start-up)."""
        self._submit(volume.id, self._ensure_export, volume.id)

    # -- Operations (run on the keyed executor) ----------------------------------------

    def _submit(self, key: str, func: Callable[..., Any], *args: Any) -> None:
        self.executor.submit(key, functools.partial(func, *args))

    def _submit_snapshot(self, snapshot_id: str, func: Callable[..., Any],
                         ctx: RequestContext) -> None:
        # Keyed by the parent volume: a snapshot must not race its volume's delete.
        try:
            snapshot = self.db.snapshot_get(snapshot_id)
        except exception.SnapshotNotFound:
            LOG.info("Snapshot %s is gone; nothing to do", snapshot_id)
            return
        self._submit(snapshot.volume_id, func, ctx, snapshot_id)

    def _volume_in(self, volume_id: str, expected: tuple[str, ...],
                   action: str) -> models.Volume | None:
        try:
            volume = self.db.volume_get(volume_id)
        except exception.VolumeNotFound:
            LOG.info("Volume %s is gone; %s is a no-op", volume_id, action)
            return None
        if volume.status not in expected:
            LOG.info("Volume %s is %s, not %s; %s already done or superseded",
                     volume_id, volume.status, "/".join(expected), action)
            return None
        return volume

    def _failed(self, what: str, object_id: str, error: BaseException) -> str:
        reason = failure_reason(error)
        if isinstance(error, exception.VolmgrError):
            LOG.error("%s of %s failed: %s", what, object_id, reason)
        else:
            LOG.exception("%s of %s failed", what, object_id)
        return reason

    def _create_volume(self, ctx: RequestContext, volume_id: str,
                       snapshot_id: str | None) -> None:
        volume = self._volume_in(volume_id, (states.CREATING,), "create")
        if volume is None:
            return
        self.notifier.volume(ctx, "volume.create.start", volume)
        snapshot_id = volume.snapshot_id or snapshot_id
        try:
            if snapshot_id:
                snapshot = self.db.snapshot_get(snapshot_id)
                updates = self.driver.create_volume_from_snapshot(volume_ref(volume),
                                                                  snapshot_ref(snapshot))
            else:
                updates = self.driver.create_volume(volume_ref(volume))
        except Exception as error:
            reason = self._failed("Create", volume_id, error)
            if self.db.volume_transition(volume_id, (states.CREATING,),
                                         {"status": states.ERROR, "status_reason": reason}):
                self._notify_volume(ctx, "volume.create.error", volume_id, error=True)
            return
        values = {"status": states.AVAILABLE, "status_reason": None, **provider_values(updates)}
        if self.db.volume_transition(volume_id, (states.CREATING,), values):
            LOG.info("Created volume %s (%d GiB)", volume_id, volume.size)
            self._notify_volume(ctx, "volume.create.end", volume_id)
        else:
            LOG.warning("Volume %s left 'creating' while it was created", volume_id)

    def _delete_volume(self, ctx: RequestContext, volume_id: str) -> None:
        volume = self._volume_in(volume_id, (states.DELETING,), "delete")
        if volume is None:
            return
        self.notifier.volume(ctx, "volume.delete.start", volume)
        try:
            ref = volume_ref(volume)
            self.driver.remove_export(ref)
            self.driver.delete_volume(ref)
        except Exception as error:
            reason = self._failed("Delete", volume_id, error)
            if self.db.volume_transition(volume_id, (states.DELETING,),
                                         {"status": states.ERROR_DELETING,
                                          "status_reason": reason}):
                self._notify_volume(ctx, "volume.delete.error", volume_id, error=True)
            return
        if self.db.volume_destroy(volume_id, expected=(states.DELETING,)):
            LOG.info("Deleted volume %s", volume_id)
            self.notifier.volume(ctx, "volume.delete.end", volume, status="deleted")

    def _attach_volume(self, ctx: RequestContext, volume_id: str, attachment_id: str) -> None:
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
        try:
            updates = provider_values(self.driver.create_export(ref))
            if updates:
                self.db.volume_update(volume_id, updates)
                ref = VolumeRef(id=ref.id, size=ref.size,
                                provider_location=updates.get("provider_location",
                                                              ref.provider_location),
                                provider_auth=updates.get("provider_auth", ref.provider_auth))
            connection_info = self.driver.initialize_connection(
                ref, dict(attachment.connector or {}))
        except Exception as error:
            reason = self._failed("Attach", volume_id, error)
            self._quietly(self.driver.remove_export, ref)
            if self.db.attach_failed(volume_id, attachment_id, reason):
                self._notify_volume(ctx, "volume.attach.error", volume_id, error=True)
            return
        if self.db.attach_complete(volume_id, attachment_id, connection_info):
            LOG.info("Attached volume %s to %s", volume_id, attachment.server_id)
            self._notify_volume(ctx, "volume.attach.end", volume_id,
                                instance_uuid=attachment.server_id)

    def _detach_volume(self, ctx: RequestContext, volume_id: str, attachment_id: str) -> None:
        volume = self._volume_in(volume_id, (states.DETACHING,), "detach")
        if volume is None:
            return
        try:
            attachment: models.VolumeAttachment | None = self.db.attachment_get(attachment_id)
        except exception.NotFound:
            attachment = None
        connector = dict(attachment.connector or {}) if attachment is not None else {}
        server_id = attachment.server_id if attachment is not None else None
        self.notifier.volume(ctx, "volume.detach.start", volume, instance_uuid=server_id)
        try:
            ref = volume_ref(volume)
            self.driver.terminate_connection(ref, connector)
            others = [a for a in self.db.attachment_list(volume_id=volume_id)
                      if a.id != attachment_id]
            if not others:
                self.driver.remove_export(ref)
        except Exception as error:
            reason = self._failed("Detach", volume_id, error)
            if self.db.detach_failed(volume_id, attachment_id, reason):
                self._notify_volume(ctx, "volume.detach.error", volume_id, error=True)
            return
        if self.db.detach_complete(volume_id, attachment_id):
            LOG.info("Detached volume %s from %s", volume_id, server_id)
            self._notify_volume(ctx, "volume.detach.end", volume_id, instance_uuid=server_id)

    def _redrive_attachment(self, ctx: RequestContext, volume_id: str, status: str) -> None:
        attachment = self.db.attachment_for_volume(volume_id)
        if attachment is not None:
            if status == states.ATTACHING:
                self._attach_volume(ctx, volume_id, attachment.id)
            else:
                self._detach_volume(ctx, volume_id, attachment.id)
            return
        # No live attachment row: an attach has nothing to complete and a detach has
        # nothing left to remove.
        if status == states.ATTACHING:
            self.db.volume_transition(volume_id, (states.ATTACHING,),
                                      {"status": states.ERROR_ATTACHING,
                                       "status_reason": "attach lost its attachment record"})
        else:
            self._detach_volume(ctx, volume_id, "")

    def _extend_volume(self, ctx: RequestContext, volume_id: str, new_size: int) -> None:
        volume = self._volume_in(volume_id, (states.EXTENDING,), "extend")
        if volume is None:
            return
        target_size = volume.target_size or new_size
        if target_size != new_size:
            LOG.warning("Extend of %s asked for %s GiB; the row says %s GiB, using the row",
                        volume_id, new_size, target_size)
        self.notifier.volume(ctx, "volume.resize.start", volume, new_size=target_size)
        try:
            self.driver.extend_volume(volume_ref(volume), target_size)
        except Exception as error:
            reason = self._failed("Extend", volume_id, error)
            if self.db.volume_fail_extend(volume_id, reason):
                self._notify_volume(ctx, "volume.resize.error", volume_id, error=True)
            return
        if self.db.volume_finish_extend(volume_id):
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

    def _create_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_CREATING, "create snapshot")
        if snapshot is None:
            return
        self.notifier.snapshot(ctx, "snapshot.create.start", snapshot)
        try:
            self.driver.create_snapshot(snapshot_ref(snapshot))
        except Exception as error:
            reason = self._failed("Snapshot", snapshot_id, error)
            if self.db.snapshot_transition(snapshot_id, (states.SNAP_CREATING,),
                                           {"status": states.SNAP_ERROR,
                                            "status_reason": reason}):
                self._notify_snapshot(ctx, "snapshot.create.error", snapshot_id, error=True)
            return
        if self.db.snapshot_transition(snapshot_id, (states.SNAP_CREATING,),
                                       {"status": states.SNAP_AVAILABLE,
                                        "status_reason": None}):
            LOG.info("Created snapshot %s of volume %s", snapshot_id, snapshot.volume_id)
            self._notify_snapshot(ctx, "snapshot.create.end", snapshot_id)

    def _delete_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        snapshot = self._snapshot_in(snapshot_id, states.SNAP_DELETING, "delete snapshot")
        if snapshot is None:
            return
        self.notifier.snapshot(ctx, "snapshot.delete.start", snapshot)
        try:
            self.driver.delete_snapshot(snapshot_ref(snapshot))
        except Exception as error:
            reason = self._failed("Snapshot delete", snapshot_id, error)
            if self.db.snapshot_transition(snapshot_id, (states.SNAP_DELETING,),
                                           {"status": states.SNAP_ERROR_DELETING,
                                            "status_reason": reason}):
                self._notify_snapshot(ctx, "snapshot.delete.error", snapshot_id, error=True)
            return
        if self.db.snapshot_destroy(snapshot_id, expected=(states.SNAP_DELETING,)):
            LOG.info("Deleted snapshot %s", snapshot_id)
            self.notifier.snapshot(ctx, "snapshot.delete.end", snapshot, status="deleted")

    def _fail_volume(self, volume_id: str, status: str, reason: str) -> None:
        if status == states.EXTENDING:
            won = self.db.volume_fail_extend(volume_id, reason)
        elif status in (states.ATTACHING, states.DETACHING):
            attachment = self.db.attachment_for_volume(volume_id)
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

    def _ensure_export(self, volume_id: str) -> None:
        try:
            volume = self.db.volume_get(volume_id)
            self.driver.ensure_export(volume_ref(volume))
        except Exception as error:
            self._failed("Restoring the export", volume_id, error)
        else:
            LOG.info("Export of volume %s is in place", volume_id)

    # -- Helpers ---------------------------------------------------------------------

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


def _ctx(context: dict[str, Any] | RequestContext) -> RequestContext:
    if isinstance(context, RequestContext):
        return context
    return RequestContext.from_dict(dict(context or {}))
