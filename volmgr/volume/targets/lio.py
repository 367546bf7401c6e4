"""Exports volumes through the kernel's LIO target with rtslib-fb (the ``lioadm`` helper).

rtslib-fb is imported only when this helper is used, so hosts without it (or without LIO)
can run every other helper. The saved LIO configuration (``RTSRoot().save_to_file()``) is
what the distribution's target service restores at boot; ``ensure_export`` rebuilds a
target that is missing. No command line is involved: CHAP secrets go straight to configfs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from typing import Any

from volmgr import exception
from volmgr.volume.driver import VolumeRef
from volmgr.volume.targets import base

LOG = logging.getLogger(__name__)

# rtslib talks to one configfs tree; concurrent builders would race on it.
_CONFIGFS_LOCK = threading.Lock()


def _rtslib() -> Any:
    try:
        import rtslib_fb  # type: ignore[import-not-found]
    except ImportError:
        raise exception.TargetError(
            reason="target_helper = lioadm needs the rtslib-fb package") from None
    return rtslib_fb


class LioAdm(base.TargetHelper):
    """One LIO target per volume, TPG 1, LUN 0, per-volume CHAP, optional initiator ACL."""

    lun = 0

    def create_export(self, volume: VolumeRef, device_path: str) -> dict[str, Any]:
        chap = base.Chap.parse(volume.provider_auth) or base.Chap.generate()
        self._build(volume.id, base.safe_path(device_path), chap)
        return {"provider_location": self.provider_location(volume.id),
                "provider_auth": chap.provider_auth()}

    def ensure_export(self, volume: VolumeRef, device_path: str) -> None:
        chap = base.Chap.parse(volume.provider_auth)
        if chap is None:
            raise exception.TargetError(
                reason=f"volume {volume.id} was never exported (no CHAP credentials)")
        self._build(volume.id, base.safe_path(device_path), chap)

    def remove_export(self, volume: VolumeRef) -> None:
        rts = _rtslib()
        name = base.volume_name(volume.id)
        with _CONFIGFS_LOCK, self._translated(rts):
            target = self._target(rts, volume.id)
            if target is not None:
                target.delete()
            for storage_object in list(rts.RTSRoot().storage_objects):
                if storage_object.name == name:
                    storage_object.delete()
            self._save(rts)

    def initialize_connection(self, volume: VolumeRef, device_path: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        initiator = base.valid_initiator(connector)
        chap = base.Chap.parse(volume.provider_auth)
        if chap is None:
            raise exception.TargetError(
                reason=f"volume {volume.id} is not exported; create_export first")
        if self.conf.volume.target_initiator_acl:
            if initiator is None:
                raise exception.InvalidInput(
                    reason="target_initiator_acl is on: the connector must name its initiator")
            rts = _rtslib()
            with _CONFIGFS_LOCK, self._translated(rts):
                tpg, lun = self._tpg_and_lun(rts, volume.id, device_path, chap)
                acl = rts.NodeACL(tpg, initiator, mode="any")
                acl.chap_userid = chap.username
                acl.chap_password = chap.secret
                if not any(m.mapped_lun == self.lun for m in acl.mapped_luns):
                    rts.MappedLUN(acl, self.lun, lun)
                self._save(rts)
        return self.iscsi_connection_info(volume)

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        initiator = base.valid_initiator(connector)
        if not self.conf.volume.target_initiator_acl or initiator is None:
            return
        rts = _rtslib()
        with _CONFIGFS_LOCK, self._translated(rts):
            target = self._target(rts, volume.id)
            if target is None:
                return
            for tpg in target.tpgs:
                for acl in list(tpg.node_acls):
                    if acl.node_wwn == initiator:
                        acl.delete()
            self._save(rts)

    def list_exported_volume_ids(self) -> set[str]:
        rts = _rtslib()
        ids = set()
        with self._translated(rts):
            for target in rts.RTSRoot().targets:
                name = target.wwn.removeprefix(self.target_prefix)
                if name != target.wwn and name.startswith("volume-"):
                    with contextlib.suppress(exception.InvalidInput):
                        ids.add(base.canonical_uuid(name.removeprefix("volume-")))
        return ids

    # -- rtslib -------------------------------------------------------------------------

    def _build(self, volume_id: str, device_path: str, chap: base.Chap) -> None:
        rts = _rtslib()
        with _CONFIGFS_LOCK, self._translated(rts):
            self._tpg_and_lun(rts, volume_id, device_path, chap)
            self._save(rts)

    def _tpg_and_lun(self, rts: Any, volume_id: str, device_path: str,
                     chap: base.Chap) -> tuple[Any, Any]:
        """The volume's TPG and LUN, created (and CHAP set) where missing."""
        name = base.volume_name(volume_id)
        storage_object = next((so for so in rts.RTSRoot().storage_objects
                               if so.name == name), None)
        if storage_object is None:
            if stat.S_ISBLK(os.stat(device_path).st_mode):
                storage_object = rts.BlockStorageObject(name, dev=device_path)
            else:
                storage_object = rts.FileIOStorageObject(name, dev=device_path)
        target = rts.Target(rts.FabricModule("iscsi"), self.iqn(volume_id), mode="any")
        tpg = rts.TPG(target, 1, mode="any")
        lun = next((lun for lun in tpg.luns if lun.lun == self.lun), None)
        if lun is None:
            lun = rts.LUN(tpg, lun=self.lun, storage_object=storage_object)
        if not any(p.ip_address == self.conf.volume.target_ip_address
                   and p.port == self.conf.volume.target_port for p in tpg.network_portals):
            rts.NetworkPortal(tpg, self.conf.volume.target_ip_address,
                              self.conf.volume.target_port, mode="any")
        tpg.set_attribute("authentication", "1")
        if not self.conf.volume.target_initiator_acl:
            # Any initiator may log in, but only with this volume's CHAP credentials.
            tpg.set_attribute("generate_node_acls", "1")
            tpg.set_attribute("demo_mode_write_protect", "0")
            tpg.chap_userid = chap.username
            tpg.chap_password = chap.secret
        tpg.enable = True
        return tpg, lun

    def _target(self, rts: Any, volume_id: str) -> Any:
        iqn = self.iqn(volume_id)
        return next((t for t in rts.RTSRoot().targets if t.wwn == iqn), None)

    @staticmethod
    def _save(rts: Any) -> None:
        rts.RTSRoot().save_to_file()

    @staticmethod
    @contextlib.contextmanager
    def _translated(rts: Any) -> Any:
        try:
            yield
        except rts.utils.RTSLibError as error:
            raise exception.TargetError(reason=f"LIO: {error}") from None
