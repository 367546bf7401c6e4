"""The volume manager: the RPC endpoint every ``volmgr-volume`` daemon serves.

Each operation reads its row, checks that it still sits in the status the request left
it in (so a duplicate or late message is a logged no-op), drives the driver and writes
the outcome with one guarded UPDATE: the final status, or ``error_*`` with a
``status_reason``. Operations on one volume run one at a time in arrival order; different
volumes run in parallel on ``[volume] executor_thread_pool_size`` workers. The bodies of
the operations live in ``operations.py``. Only volmgr exceptions ever travel back over
the bus, and no SQL is written here.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from oslo_config import cfg

from volmgr import exception, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database, messages, models
from volmgr.volume import metrics as volume_metrics
from volmgr.volume import rpcapi
from volmgr.volume.adoption import Adoption
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.operations import ManagerOperations
from volmgr.volume.thread_pool import KeyedThreadPool

messaging = rpc.messaging
LOG = logging.getLogger(__name__)
T = TypeVar("T")


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
            # The calls wrapped so are an administrator's: the detail is theirs to see.
            raise exception.BackendError(reason=f"{type(error).__name__}: {error}") from None
    return wrapper


class VolumeManager:
    """RPC endpoint of ``volmgr-volume``; only ``@expose``d methods cross the bus."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, conf: cfg.ConfigOpts, db: Database, driver: VolumeDriver,
                 notifier: VolumeNotifier | None = None, *, host: str | None = None,
                 thread_pool: KeyedThreadPool | None = None) -> None:
        self.conf = conf
        self.db = db
        self.driver = driver
        self.notifier = notifier or VolumeNotifier(None)
        self.host = host or conf.host
        self.thread_pool = thread_pool or KeyedThreadPool(
            conf.volume.executor_thread_pool_size, name="volmgr-op")
        self.ops = ManagerOperations(db, driver, self.notifier)
        self.adoption = Adoption(db, driver, self.notifier)

    # -- RPC: casts ------------------------------------------------------------------

    @messaging.expose
    def create_volume(self, context: dict[str, Any], volume_id: str,
                      snapshot_id: str | None = None,
                      source_volid: str | None = None) -> None:
        self._submit(self._create_key(volume_id, snapshot_id, source_volid),
                     self.ops.create_volume, _ctx(context), volume_id, snapshot_id)

    @messaging.expose
    def delete_volume(self, context: dict[str, Any], volume_id: str) -> None:
        self._submit(volume_id, self.ops.delete_volume, _ctx(context), volume_id)

    @messaging.expose
    def attach_volume(self, context: dict[str, Any], volume_id: str,
                      attachment_id: str) -> None:
        self._submit(volume_id, self.ops.attach_volume, _ctx(context), volume_id, attachment_id)

    @messaging.expose
    def detach_volume(self, context: dict[str, Any], volume_id: str,
                      attachment_id: str) -> None:
        self._submit(volume_id, self.ops.detach_volume, _ctx(context), volume_id, attachment_id)

    @messaging.expose
    def extend_volume(self, context: dict[str, Any], volume_id: str, new_size: int) -> None:
        self._submit(volume_id, self.ops.extend_volume, _ctx(context), volume_id, new_size)

    @messaging.expose
    def create_snapshot(self, context: dict[str, Any], snapshot_id: str) -> None:
        self._submit_snapshot(snapshot_id, self.ops.create_snapshot, _ctx(context))

    @messaging.expose
    def delete_snapshot(self, context: dict[str, Any], snapshot_id: str) -> None:
        self._submit_snapshot(snapshot_id, self.ops.delete_snapshot, _ctx(context))

    @messaging.expose
    def manage_existing(self, context: dict[str, Any], volume_id: str,
                        reference: dict[str, Any]) -> None:
        """Adopt the storage ``reference`` names for the ``managing`` row (since 1.4)."""
        self._submit(volume_id, self.adoption.manage_volume, _ctx(context), volume_id,
                     reference)

    @messaging.expose
    def unmanage_volume(self, context: dict[str, Any], volume_id: str) -> None:
        """Forget an ``unmanaging`` row, leaving its storage (since 1.4)."""
        self._submit(volume_id, self.adoption.unmanage_volume, _ctx(context), volume_id)

    @messaging.expose
    def manage_existing_snapshot(self, context: dict[str, Any], snapshot_id: str,
                                 reference: dict[str, Any]) -> None:
        """Adopt a snapshot for the ``managing`` snapshot row (since 1.4)."""
        self._submit_snapshot(snapshot_id, self.adoption.manage_snapshot, _ctx(context),
                              reference)

    @messaging.expose
    def unmanage_snapshot(self, context: dict[str, Any], snapshot_id: str) -> None:
        self._submit_snapshot(snapshot_id, self.adoption.unmanage_snapshot, _ctx(context))

    # -- RPC: calls ------------------------------------------------------------------

    @messaging.expose
    @_as_volmgr_error
    def get_manageable_volumes(self, context: dict[str, Any]) -> list[dict[str, Any]]:
        """What of this host's storage no row owns, and why not where not (since 1.4)."""
        return self.adoption.manageable_volumes()

    @messaging.expose
    @_as_volmgr_error
    def get_manageable_snapshots(self, context: dict[str, Any]) -> list[dict[str, Any]]:
        return self.adoption.manageable_snapshots()

    @messaging.expose
    @_as_volmgr_error
    def manage_existing_get_size(self, context: dict[str, Any],
                                 reference: dict[str, Any],
                                 volume_id: str | None = None) -> int:
        """The size in GiB a volume adopted from ``reference`` will have or, with
        ``volume_id``, a snapshot of that volume (since 1.4)."""
        return self.adoption.size_to_manage(reference, volume_id)

    @messaging.expose
    def connect_attachment(self, context: dict[str, Any], volume_id: str,
                           attachment_id: str,
                           connector: dict[str, Any]) -> dict[str, Any]:
        """Admit ``connector`` and answer connection_info (a call, since 1.3). Runs in
        the volume's turn, after whatever was queued for it before."""
        return self._call(volume_id, self.ops.connect_attachment, _ctx(context),
                          attachment_id, connector)

    @messaging.expose
    def terminate_connection(self, context: dict[str, Any], volume_id: str,
                             connector: dict[str, Any],
                             attachment_id: str | None = None) -> None:
        """Withdraw ``connector`` (a call, since 1.3)."""
        self._call(volume_id, self.ops.disconnect, _ctx(context), volume_id, connector,
                   attachment_id)

    # -- For the service and recovery (not reachable over the bus) --------------------

    def capabilities(self) -> dict[str, Any]:
        """What the heartbeat stores in this host's service row (the scheduler's and
        ``service list``'s view of its capacity)."""
        capacity = self.driver.get_capacity()
        # Every backend can admit several initiators to one export (multiattach).
        return {**capacity.as_dict(), "driver": self.driver.name,
                "storage_protocol": "iSCSI", "rpc_api_version": rpcapi.RPC_API_VERSION,
                "multiattach": True}

    def busy_volume_ids(self) -> set[str]:
        """Volumes with an operation running or waiting in this daemon."""
        return set(self.thread_pool.pending_keys())

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self.thread_pool.wait_idle(timeout)

    def close(self) -> None:
        self.thread_pool.close()

    def redrive_volume(self, volume: models.Volume) -> None:
        """Queue again the work a transitional volume row asks for (recovery)."""
        ctx = RequestContext.admin()
        if volume.status == states.CREATING:
            self._submit(self._create_key(volume.id, volume.snapshot_id,
                                          volume.source_volid),
                         self.ops.create_volume, ctx, volume.id, volume.snapshot_id)
        elif volume.status == states.DELETING:
            self._submit(volume.id, self.ops.delete_volume, ctx, volume.id)
        elif volume.status == states.EXTENDING:
            self._submit(volume.id, self.ops.extend_volume, ctx, volume.id,
                         volume.target_size or volume.size)
        elif volume.status in (states.ATTACHING, states.DETACHING):
            self._submit(volume.id, self.ops.redrive_attachment, ctx, volume.id, volume.status)
        elif volume.status == states.MANAGING:
            self._submit(volume.id, self.adoption.finish_interrupted_manage, ctx, volume.id)
        elif volume.status == states.UNMANAGING:
            self._submit(volume.id, self.adoption.unmanage_volume, ctx, volume.id)

    def needs_attachment_recovery(self, volume: models.Volume) -> bool:
        """An attaching/detaching volume whose attachments wait on this manager."""
        return self.ops.attachment_work_pending(volume)

    def redrive_attachment(self, attachment: models.VolumeAttachment) -> None:
        """Finish or undo a stuck attachment of a volume that is not itself
        transitional (a multiattach volume in use, a reserved one)."""
        self._submit(attachment.volume_id, self.ops.recover_attachments,
                     RequestContext.admin(), attachment.volume_id)

    def redrive_snapshot(self, snapshot: models.Snapshot) -> None:
        ctx = RequestContext.admin()
        if snapshot.status == states.SNAP_CREATING:
            self._submit(snapshot.volume_id, self.ops.create_snapshot, ctx, snapshot.id)
        elif snapshot.status == states.SNAP_DELETING:
            self._submit(snapshot.volume_id, self.ops.delete_snapshot, ctx, snapshot.id)
        elif snapshot.status == states.SNAP_MANAGING:
            self._submit(snapshot.volume_id, self.adoption.finish_interrupted_snapshot_manage,
                         ctx, snapshot.id)
        elif snapshot.status == states.SNAP_UNMANAGING:
            self._submit(snapshot.volume_id, self.adoption.unmanage_snapshot, ctx,
                         snapshot.id)

    def fail_volume(self, volume: models.Volume, reason: str) -> None:
        """Give up on a transitional volume: the matching ``error_*`` with ``reason``."""
        self._submit(volume.id, self.ops.fail_volume, volume.id, volume.status, reason)

    def fail_snapshot(self, snapshot: models.Snapshot, reason: str) -> None:
        target = states.SNAPSHOT_TRANSITIONAL[snapshot.status]
        self._submit(snapshot.volume_id, self.db.snapshot_transition, snapshot.id,
                     (snapshot.status,), {"status": target, "status_reason": reason})

    def run_in_turn(self, volume_id: str, func: Callable[..., Any], *args: Any) -> None:
        """Queue maintenance work (reconcile) in ``volume_id``'s turn."""
        self._submit(volume_id, func, *args, kind=f"reconcile{getattr(func, '__name__', '')}")

    def ensure_export(self, volume: models.Volume) -> None:
        """Re-create the export of an attached volume if it is missing (start-up)."""
        self._submit(volume.id, self.ops.ensure_export, volume.id)

    # -- Scheduling on the keyed thread pool ---------------------------------------------

    def _call(self, key: str, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` in ``key``'s turn on the thread pool and wait for its answer
        (the caller's RPC timeout bounds the wait; the work finishes regardless)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(func(*args))
            except BaseException as error:  # handed to the caller below
                future.set_exception(error)
        self._submit(key, job, kind=getattr(func, "__name__", "call"))
        try:
            return future.result()
        except exception.VolmgrError:
            raise
        except Exception as error:
            LOG.exception("%s failed", getattr(func, "__name__", func))
            raise exception.BackendError(reason=f"{type(error).__name__}: {error}") from None

    def _submit(self, key: str, func: Callable[..., Any], *args: Any,
                kind: str | None = None) -> None:
        LOG.debug("Queued %s for volume %s", getattr(func, "__name__", func), key)
        # A failure the job records becomes a user message naming the request.
        ctx = next((a for a in args if isinstance(a, RequestContext)), None)
        request_id = ctx.request_id if ctx is not None else None
        volume_metrics.submit(
            self.thread_pool, key, self.host, kind or str(getattr(func, "__name__", "job")),
            ctx.sent_at if ctx is not None else None,
            messages.in_request_scope(request_id, functools.partial(func, *args)))

    def _create_key(self, volume_id: str, snapshot_id: str | None,
                    source_volid: str | None = None) -> str:
        """A volume made from a snapshot is created under the snapshot's parent volume's
        key, and a clone under its source volume's key, so the copy never overlaps the
        deletion or the growth of what it reads."""
        if source_volid is not None:
            return source_volid
        if snapshot_id is None:
            return volume_id
        try:
            return self.db.snapshot_get(snapshot_id).volume_id
        except exception.SnapshotNotFound:
            return volume_id

    def _submit_snapshot(self, snapshot_id: str, func: Callable[..., Any],
                         ctx: RequestContext, *args: Any) -> None:
        # Keyed by the parent volume: a snapshot must not race its volume's delete.
        try:
            snapshot = self.db.snapshot_get(snapshot_id)
        except exception.SnapshotNotFound:
            LOG.info("Snapshot %s is gone; nothing to do", snapshot_id)
            return
        self._submit(snapshot.volume_id, func, ctx, snapshot_id, *args)


def _ctx(context: dict[str, Any] | RequestContext) -> RequestContext:
    if isinstance(context, RequestContext):
        return context
    return RequestContext.from_dict(dict(context or {}))
