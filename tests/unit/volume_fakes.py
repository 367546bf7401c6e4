"""An in-memory VolumeDriver for manager and recovery unit tests, scriptable to fail or
to block, and a recording notification sink."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from volmgr import exception
from volmgr.volume.driver import Capacity, SnapshotRef, VolumeDriver, VolumeRef


class FakeDriver(VolumeDriver):
    """Volumes are dict entries; ``fail[method] = exc`` makes a method raise;
    ``gates[method]`` (an Event) makes it wait; ``calls`` records (method, id)."""

    name = "fake"

    def __init__(self) -> None:
        self.volumes: dict[str, int] = {}
        self.snapshots: dict[str, str] = {}
        self.exports: set[str] = set()
        self.fail: dict[str, BaseException] = {}
        self.gates: dict[str, threading.Event] = {}
        self.delay = 0.0
        self.calls: list[tuple[str, str]] = []
        self.active: dict[str, int] = defaultdict(int)
        self.max_active: dict[str, int] = defaultdict(int)
        self.max_active_total = 0
        self._active_total = 0
        self._lock = threading.Lock()

    def _enter(self, method: str, object_id: str, volume_id: str) -> None:
        with self._lock:
            self.calls.append((method, object_id))
            self.active[volume_id] += 1
            self._active_total += 1
            self.max_active[volume_id] = max(self.max_active[volume_id],
                                             self.active[volume_id])
            self.max_active_total = max(self.max_active_total, self._active_total)
        try:
            gate = self.gates.get(method)
            if gate is not None:
                gate.wait(10)
            if self.delay:
                time.sleep(self.delay)
            error = self.fail.get(method)
            if error is not None:
                raise error
        finally:
            with self._lock:
                self.active[volume_id] -= 1
                self._active_total -= 1

    def check_setup(self) -> None:
        self._enter("check_setup", "", "")

    def create_volume(self, volume: VolumeRef) -> dict[str, Any]:
        self._enter("create_volume", volume.id, volume.id)
        self.volumes[volume.id] = volume.size
        return {"provider_location": f"fake:{volume.id}", "ignored": "x"}

    def create_volume_from_snapshot(self, volume: VolumeRef,
                                    snapshot: SnapshotRef) -> dict[str, Any]:
        self._enter("create_volume_from_snapshot", volume.id, volume.id)
        if snapshot.id not in self.snapshots:
            raise exception.BackendError(reason=f"no snapshot {snapshot.id}")
        self.volumes[volume.id] = volume.size
        return {}

    def delete_volume(self, volume: VolumeRef) -> None:
        self._enter("delete_volume", volume.id, volume.id)
        if volume.id in self.snapshots.values():  # the driver contract: origins stay
            raise exception.VolumeHasSnapshots(volume_id=volume.id)
        self.volumes.pop(volume.id, None)

    def extend_volume(self, volume: VolumeRef, new_size: int) -> None:
        self._enter("extend_volume", volume.id, volume.id)
        self.volumes[volume.id] = new_size

    def create_snapshot(self, snapshot: SnapshotRef) -> dict[str, Any]:
        self._enter("create_snapshot", snapshot.id, snapshot.volume_id)
        self.snapshots[snapshot.id] = snapshot.volume_id
        return {}

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        self._enter("delete_snapshot", snapshot.id, snapshot.volume_id)
        self.snapshots.pop(snapshot.id, None)

    def create_export(self, volume: VolumeRef) -> dict[str, Any]:
        self._enter("create_export", volume.id, volume.id)
        self.exports.add(volume.id)
        return {"provider_auth": "CHAP user secret",
                "provider_location": f"127.0.0.1:3260,1 iqn.test:volume-{volume.id} 1"}

    def ensure_export(self, volume: VolumeRef) -> None:
        self._enter("ensure_export", volume.id, volume.id)
        self.exports.add(volume.id)

    def remove_export(self, volume: VolumeRef) -> None:
        self._enter("remove_export", volume.id, volume.id)
        self.exports.discard(volume.id)

    def initialize_connection(self, volume: VolumeRef,
                              connector: dict[str, Any]) -> dict[str, Any]:
        self._enter("initialize_connection", volume.id, volume.id)
        return {"driver_volume_type": "iscsi",
                "data": {"volume_id": volume.id, "auth_method": "CHAP",
                         "auth_password": (volume.provider_auth or "").split()[-1],
                         "initiator": connector.get("initiator")}}

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        self._enter("terminate_connection", volume.id, volume.id)

    def get_capacity(self) -> Capacity:
        return Capacity(total_gb=100.0, free_gb=100.0 - sum(self.volumes.values()),
                        provisioned_gb=float(sum(self.volumes.values())))

    def list_volume_ids(self) -> set[str]:
        return set(self.volumes)

    def list_exported_volume_ids(self) -> set[str]:
        return set(self.exports)


class RecordingSink:
    """Stands in for an oslo.messaging Notifier: keeps (priority, event_type, payload)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
        self.sent.append(("INFO", event_type, payload))

    def error(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
        self.sent.append(("ERROR", event_type, payload))

    def events(self) -> list[str]:
        return [event for _, event, _ in self.sent]
