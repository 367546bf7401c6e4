"""Adopting logical volumes that exist in the VG without a row (the storage half of
Cinder's manageable-volumes API; the API and RPC halves are still to come).

* ``list_manageable_volumes`` lists the VG's LVs as Cinder's ``manageable_volumes``
  describes them: a reference (``{"source-name": <LV name>}``), the size in GiB rounded
  up, and whether it is safe to manage (not the thin pool, not a snapshot, not an LV a
  live row already owns);
* ``manage_existing`` takes one under management for a new row: it checks it again,
  grows it to the whole GiB the row will say (so what an initiator reads over iSCSI and
  what the row says agree), and renames it to volmgr's scheme, ``volume-<uuid>``;
* unmanaging needs nothing from the storage: the row is forgotten and the LV, still
  named ``volume-<uuid>``, is listed here again as safe to manage.

Names come from the VG's own listing and are checked against LVM's name rules before
they reach a command line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any

from volmgr import exception
from volmgr.volume.drivers.lvm import GiB, LVMDriver
from volmgr.volume.targets.base import canonical_uuid, volume_name

#: LVM's own rule for LV names (and no leading hyphen): nothing else reaches lvrename.
_LV_NAME_RE = re.compile(r"^[A-Za-z0-9_.+][A-Za-z0-9_.+-]{0,126}$")
SOURCE_NAME = "source-name"


@dataclasses.dataclass(frozen=True)
class ManageableVolume:
    """One entry of ``GET /v3/{project_id}/manageable_volumes/detail``."""

    name: str
    size_gb: int
    safe_to_manage: bool
    reason_not_safe: str | None = None
    cinder_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"reference": {SOURCE_NAME: self.name}, "size": self.size_gb,
                "safe_to_manage": self.safe_to_manage,
                "reason_not_safe": self.reason_not_safe, "cinder_id": self.cinder_id,
                "extra_info": None}


def size_gb(size_bytes: int) -> int:
    """Whole GiB, rounded up (as the reference rounds a manageable volume's size)."""
    return max(1, -(-size_bytes // GiB))


def _owner(name: str) -> str | None:
    """The volume id an LV named in volmgr's scheme belongs to."""
    if not name.startswith("volume-"):
        return None
    try:
        return canonical_uuid(name.removeprefix("volume-"))
    except exception.InvalidInput:
        return None


def list_manageable_volumes(driver: LVMDriver,
                            owned_ids: Collection[str]) -> list[ManageableVolume]:
    """Every LV of the VG but the thin pool, sorted by name; ``owned_ids`` are the ids
    of the live volume rows (any host: two hosts may share a VG by mistake)."""
    found = []
    for lv in sorted(driver._lvs().values(), key=lambda lv: lv.name):
        if driver.thin and lv.name == driver.pool:
            continue
        owner = _owner(lv.name)
        reason = None
        if owner is not None and owner in owned_ids:
            reason = "Already managed"
        elif lv.name.startswith("snapshot-") or lv.origin:
            reason = "Snapshot"
        elif not _LV_NAME_RE.match(lv.name):
            reason = "Name not usable"
        found.append(ManageableVolume(lv.name, size_gb(lv.size), reason is None, reason,
                                      owner if reason == "Already managed" else None))
    return found


def _reference_name(reference: Mapping[str, Any]) -> str:
    name = reference.get(SOURCE_NAME) if isinstance(reference, Mapping) else None
    if not isinstance(name, str) or not _LV_NAME_RE.match(name):
        raise exception.InvalidInput(
            reason=f"the reference must name an LV: {{\"{SOURCE_NAME}\": \"<LV name>\"}}")
    return name


def manage_existing_get_size(driver: LVMDriver, reference: Mapping[str, Any]) -> int:
    """The size in GiB (rounded up) the adopted volume's row will carry."""
    name = _reference_name(reference)
    lv = driver._lv(name)
    if lv is None:
        raise exception.InvalidInput(reason=f"no LV named {name} in {driver.vg}")
    return size_gb(lv.size)


def manage_existing(driver: LVMDriver, volume_id: str, reference: Mapping[str, Any],
                    owned_ids: Collection[str]) -> int:
    """Adopt the LV ``reference`` names as volume ``volume_id``; returns its size in GiB.
    Idempotent: an LV already renamed for this volume is only sized again."""
    name = _reference_name(reference)
    target = volume_name(volume_id)
    lv = driver._lv(target) if name != target else None
    if lv is None:
        lv = driver._lv(name)
        if lv is None:
            raise exception.InvalidInput(reason=f"no LV named {name} in {driver.vg}")
        candidate = next((entry for entry in list_manageable_volumes(driver, owned_ids)
                          if entry.name == name), None)
        if candidate is None or not candidate.safe_to_manage:
            why = candidate.reason_not_safe if candidate else "not manageable"
            raise exception.InvalidInput(reason=f"LV {name} cannot be managed: {why}")
        if name != target:
            driver._lvm("lvrename", driver.vg, name, target)
    gib = size_gb(lv.size)
    if lv.size < gib * GiB:
        # The row says whole GiB: make the device say the same.
        driver._lvm("lvextend", "-L", f"{gib}g", f"{driver.vg}/{target}")
    return gib
