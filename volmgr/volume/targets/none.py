"""The ``none`` target helper: no export at all, for volumes used on the host itself.

``connection_info`` then names the local device or image path (driver_volume_type
'local', the shape os-brick's local connector reads); nothing is ever run.
"""

from __future__ import annotations

from typing import Any

from volmgr.volume.driver import VolumeRef
from volmgr.volume.targets import base


class NoTarget(base.TargetHelper):
    """Exports nothing; every export call succeeds without side effects."""

    lun = 0

    def create_export(self, volume: VolumeRef, device_path: str) -> dict[str, Any]:
        base.safe_path(device_path)
        return {"provider_location": device_path, "provider_auth": None}

    def ensure_export(self, volume: VolumeRef, device_path: str) -> None:
        return None

    def remove_export(self, volume: VolumeRef) -> None:
        return None

    def initialize_connection(self, volume: VolumeRef, device_path: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        base.valid_initiator(connector)
        return {"driver_volume_type": "local",
                "data": {"device_path": base.safe_path(device_path),
                         "volume_id": volume.id, "access_mode": "rw"}}

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        return None

    def list_exported_volume_ids(self) -> set[str]:
        return set()
