"""Exports volumes through the kernel's LIO target with rtslib-fb (the ``lioadm`` helper).

rtslib-fb is imported only when this helper is used, so hosts without it (or without LIO)
can run every other helper. The saved LIO configuration (``RTSRoot().save_to_file()``) is
what the distribution's target service restores at boot; ``ensure_export`` rebuilds a
target that is missing, with the initiator ACL recorded (names only, never a secret) in
``<target_files_dir>/lio-acl``. No command line is involved: CHAP secrets go straight to
configfs. A target restricted to its connectors' initiators never has demo mode
(``generate_node_acls``) on, not even while it is being built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
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


@dataclasses.dataclass
class _AclRecord:
    """What the connectors of one export asked to admit."""

    initiators: list[str] = dataclasses.field(default_factory=list)
    any_initiator: bool = False


def _rtslib() -> Any:
    try:
        import rtslib_fb  # type: ignore[import-not-found]
    except ImportError:
        raise exception.TargetError(
            reason="target_helper = lioadm needs the rtslib-fb package") from None
    return rtslib_fb


class LioAdm(base.TargetHelper):
    """One LIO target per volume, TPG 1, LUN 0, per-volume CHAP, per-export initiator ACL."""

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
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._record_path(volume.id))

    def initialize_connection(self, volume: VolumeRef, device_path: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """Admit the connector's initiator only or, naming none, any initiator; CHAP always."""
        initiator = base.valid_initiator(connector)
        chap = base.Chap.parse(volume.provider_auth)
        if chap is None:
            raise exception.TargetError(
                reason=f"volume {volume.id} is not exported; create_export first")
        rts = _rtslib()
        with _CONFIGFS_LOCK, self._translated(rts):
            record = self._record(rts, volume.id)
            # Recorded whatever the mode, so turning target_initiator_acl on later
            # restricts exports whose connector named an initiator.
            if initiator is None:
                record.any_initiator = True
            elif initiator not in record.initiators:
                record.initiators.append(initiator)
            self._write_record(volume.id, record)
            self._tpg_and_lun(rts, volume.id, device_path, chap, record)
            self._save(rts)
        return self.iscsi_connection_info(volume)

    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        """Withdraw the connector's initiator (or, naming none, the any-initiator mode)."""
        initiator = base.valid_initiator(connector)
        rts = _rtslib()
        with _CONFIGFS_LOCK, self._translated(rts):
            record = self._record(rts, volume.id)
            if initiator is None:
                record.any_initiator = False
            elif initiator in record.initiators:
                record.initiators.remove(initiator)
            self._write_record(volume.id, record)
            target = self._target(rts, volume.id)
            if target is None:
                return
            for tpg in target.tpgs:
                for acl in list(tpg.node_acls):
                    if acl.node_wwn == initiator:
                        acl.delete()
                if not self.admits_any(record.any_initiator):
                    tpg.set_attribute("generate_node_acls", "0")
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
            self._tpg_and_lun(rts, volume_id, device_path, chap,
                              self._record(rts, volume_id))
            self._save(rts)

    def _tpg_and_lun(self, rts: Any, volume_id: str, device_path: str,
                     chap: base.Chap, record: _AclRecord) -> tuple[Any, Any]:
        """The volume's TPG and LUN, created where missing, admitting exactly ``record``."""
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
        tpg.set_attribute("authentication", "1")
        if not self.admits_any(record.any_initiator):
            # Before any LUN or portal exists: a restricted target never has demo mode.
            tpg.set_attribute("generate_node_acls", "0")
        lun = next((lun for lun in tpg.luns if lun.lun == self.lun), None)
        if lun is None:
            lun = rts.LUN(tpg, lun=self.lun, storage_object=storage_object)
        if not any(p.ip_address == self.conf.volume.target_ip_address
                   and p.port == self.conf.volume.target_port for p in tpg.network_portals):
            rts.NetworkPortal(tpg, self.conf.volume.target_ip_address,
                              self.conf.volume.target_port, mode="any")
        for acl in list(tpg.node_acls):
            if acl.node_wwn not in record.initiators:
                acl.delete()
        for initiator in record.initiators:
            acl = rts.NodeACL(tpg, initiator, mode="any")
            acl.chap_userid = chap.username
            acl.chap_password = chap.secret
            if not any(m.mapped_lun == self.lun for m in acl.mapped_luns):
                rts.MappedLUN(acl, self.lun, lun)
        if self.admits_any(record.any_initiator):
            # Any initiator may log in, but only with this volume's CHAP credentials.
            tpg.chap_userid = chap.username
            tpg.chap_password = chap.secret
            tpg.set_attribute("demo_mode_write_protect", "0")
            tpg.set_attribute("generate_node_acls", "1")
        tpg.enable = True
        return tpg, lun

    # -- the ACL record -------------------------------------------------------------------

    def _record_path(self, volume_id: str) -> str:
        return os.path.join(self.conf.volume.target_files_dir, "lio-acl",
                            base.volume_name(volume_id))

    def _record(self, rts: Any, volume_id: str) -> _AclRecord:
        """What the connectors asked. Without a record (a target exported before records
        existed) the live target's ACL is adopted; without either, nothing is admitted
        until initialize_connection names who may log in."""
        record = self._read_record(volume_id)
        if record is not None:
            return record
        target = self._target(rts, volume_id)
        record = _AclRecord()
        for tpg in target.tpgs if target is not None else ():
            record.initiators += [acl.node_wwn for acl in tpg.node_acls
                                  if base.is_iscsi_name(acl.node_wwn)]
            record.any_initiator |= str(tpg.get_attribute("generate_node_acls")) == "1"
        return record

    def _read_record(self, volume_id: str) -> _AclRecord | None:
        try:
            with open(self._record_path(volume_id)) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise exception.TargetError(
                reason=f"unreadable ACL record of volume {volume_id}: {error}") from None
        initiators = [name for name in data.get("initiators", [])
                      if base.is_iscsi_name(name)]
        return _AclRecord(initiators, data.get("any_initiator") is True)

    def _write_record(self, volume_id: str, record: _AclRecord) -> None:
        path = self._record_path(volume_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dataclasses.asdict(record), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

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
