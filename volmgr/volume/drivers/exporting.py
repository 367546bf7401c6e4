"""``ExportingDriver``, what the LVM and file drivers share: exports go through the
configured target helper (the interface itself is ``volmgr.volume.driver``).

A driver here only says where a volume's bytes live (``local_path``); the helper decides how
they are offered. Nothing in this module runs a command itself.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from volmgr.volume.driver import VolumeDriver, VolumeRef
from volmgr.volume.executor import Executor
from volmgr.volume.targets.base import ExportState, TargetHelper


class ExportingDriver(VolumeDriver):
    """A VolumeDriver whose exports are delegated to a TargetHelper."""

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor,
                 target: TargetHelper) -> None:
        self.conf = conf
        self.executor = executor
        self.target = target

    def create_export(self, volume: VolumeRef) -> dict[str, Any]:
        return self.target.create_export(volume, self.local_path(volume))

    def ensure_export(self, volume: VolumeRef) -> None:
        self.target.ensure_export(volume, self.local_path(volume))

    def remove_export(self, volume: VolumeRef) -> None:
        self.target.remove_export(volume)

    def refresh_export(self, volume: VolumeRef) -> None:
        self.target.refresh_export(volume, self.local_path(volume))

    def initialize_connection(self, volume: VolumeRef,
                              connector: dict[str, Any]) -> dict[str, Any]:
        return self.target.initialize_connection(volume, self.local_path(volume), connector)

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        self.target.terminate_connection(volume, connector)

    def list_exported_volume_ids(self) -> set[str]:
        return self.target.list_exported_volume_ids()

    def export_state(self, volume: VolumeRef) -> ExportState | None:
        return self.target.export_state(volume.id)
