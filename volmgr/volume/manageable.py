"""Adopting storage that exists without a row: Cinder's manageable volumes and snapshots.

What every driver shares is here: the entries of ``manageable_volumes`` and
``manageable_snapshots`` (a reference ``{"source-name": <name>}``, the size in GiB rounded
up as the reference rounds it, whether it is safe to manage and why not), the rule for
names, and the LVM implementation:

* ``list_manageable_volumes`` lists the VG's LVs but the thin pool and snapshots; one a
  live row owns is listed as not safe ("Already managed", with its id);
* ``manage_existing`` takes one under management for a new row: it checks it again,
  grows it to the whole GiB the row will say (so what an initiator reads over iSCSI and
  what the row says agree), and renames it to volmgr's scheme, ``volume-<uuid>``;
* ``list_manageable_snapshots`` and ``manage_existing_snapshot`` do the same for
  snapshot LVs of a managed volume (renamed ``snapshot-<uuid>``);
* unmanaging needs nothing from the storage: the row is forgotten and the LV, still
  named ``volume-<uuid>``/``snapshot-<uuid>``, is listed here again as safe to manage.

Names come from the backend's own listing and are checked against LVM's name rules
before they reach a command line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from volmgr import exception
from volmgr.volume.driver import GiB
from volmgr.volume.targets.base import canonical_uuid, volume_name

if TYPE_CHECKING:
    from volmgr.volume.drivers.lvm import LVMDriver

#: LVM's own rule for LV names (and no leading hyphen): nothing else reaches lvrename.
LV_NAME_RE = re.compile(r"^[A-Za-z0-9_.+][A-Za-z0-9_.+-]{0,126}$")
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


@dataclasses.dataclass(frozen=True)
class ManageableSnapshot:
    """One entry of ``GET /v3/{project_id}/manageable_snapshots/detail``."""

    name: str
    size_gb: int
    safe_to_manage: bool
    source_name: str
    reason_not_safe: str | None = None
    cinder_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"reference": {SOURCE_NAME: self.name}, "size": self.size_gb,
                "safe_to_manage": self.safe_to_manage,
                "source_reference": {SOURCE_NAME: self.source_name},
                "reason_not_safe": self.reason_not_safe, "cinder_id": self.cinder_id,
                "extra_info": None}


def owner_of(name: str, prefix: str) -> str | None:
    """The id an object named in volmgr's scheme (``<prefix><uuid>``) belongs to."""
    if not name.startswith(prefix):
        return None
    try:
        return canonical_uuid(name.removeprefix(prefix))
    except exception.InvalidInput:
        return None


def verdict(name: str, owner: str | None, owned_ids: Collection[str]) -> str | None:
    """Why the object ``name`` (owned by ``owner`` in volmgr's scheme) may not be managed;
    None when it may."""
    if owner is not None and owner in owned_ids:
        return "Already managed"
    if not LV_NAME_RE.match(name):
        return "Name not usable"
    return None


def size_gb(size_bytes: int) -> int:
    """Whole GiB, rounded up (as the reference rounds a manageable volume's size)."""
    return max(1, -(-size_bytes // GiB))


def list_manageable_volumes(driver: LVMDriver,
                            owned_ids: Collection[str]) -> list[ManageableVolume]:
    """Every LV of the VG but the thin pool, sorted by name; ``owned_ids`` are the ids
    of the live volume rows (any host: two hosts may share a VG by mistake)."""
    found = []
    for lv in sorted(driver._lvs().values(), key=lambda lv: lv.name):
        if driver.thin and lv.name == driver.pool:
            continue
        if lv.name.startswith("snapshot-") or lv.origin:
            continue  # listed by list_manageable_snapshots
        owner = owner_of(lv.name, "volume-")
        reason = verdict(lv.name, owner, owned_ids)
        found.append(ManageableVolume(lv.name, size_gb(lv.size), reason is None, reason,
                                      owner if reason == "Already managed" else None))
    return found


def reference_name(reference: Mapping[str, Any]) -> str:
    name = reference.get(SOURCE_NAME) if isinstance(reference, Mapping) else None
    if not isinstance(name, str) or not LV_NAME_RE.match(name):
        raise exception.InvalidInput(
            reason=f"the reference must name an LV: {{\"{SOURCE_NAME}\": \"<LV name>\"}}")
    return name


def manage_existing_get_size(driver: LVMDriver, reference: Mapping[str, Any]) -> int:
    """The size in GiB (rounded up) the adopted volume's row will carry."""
    name = reference_name(reference)
    lv = driver._lv(name)
    if lv is None:
        raise exception.InvalidInput(reason=f"no LV named {name} in {driver.vg}")
    return size_gb(lv.size)


def manage_existing(driver: LVMDriver, volume_id: str, reference: Mapping[str, Any],
                    owned_ids: Collection[str]) -> int:
    """Adopt the LV ``reference`` names as volume ``volume_id``; returns its size in GiB.
    Idempotent: an LV already renamed for this volume is only sized again."""
    name = reference_name(reference)
    target = volume_name(volume_id)
    lv = driver._lv(target) if name != target else None
    if lv is not None:
        return _grow_to_whole_gib(driver, target, lv.size)
    lv = driver._lv(name)
    if lv is None:
        raise exception.InvalidInput(reason=f"no LV named {name} in {driver.vg}")
    candidate = next((entry for entry in list_manageable_volumes(driver, owned_ids)
                      if entry.name == name), None)
    if candidate is None or not candidate.safe_to_manage:
        why = candidate.reason_not_safe if candidate else "a snapshot or the thin pool"
        raise exception.InvalidInput(reason=f"LV {name} cannot be managed: {why}")
    # Grow first, rename last: a failure leaves the LV under its own name, so a row
    # that failed to adopt it can be deleted without touching it.
    gib = _grow_to_whole_gib(driver, name, lv.size)
    if name != target:
        driver._lvm("lvrename", driver.vg, name, target)
    return gib


def _grow_to_whole_gib(driver: LVMDriver, name: str, size: int) -> int:
    gib = size_gb(size)
    if size < gib * GiB:
        # The row says whole GiB: make the device say the same.
        driver._lvm("lvextend", "-L", f"{gib}g", f"{driver.vg}/{name}")
    return gib


# -- snapshots -------------------------------------------------------------------------

def list_manageable_snapshots(driver: LVMDriver,
                              owned_ids: Collection[str]) -> list[ManageableSnapshot]:
    """The VG's snapshot LVs (their origin named in volmgr's scheme), sorted by name;
    ``owned_ids`` are the ids of the live snapshot rows."""
    found = []
    for lv in sorted(driver._lvs().values(), key=lambda lv: lv.name):
        if not lv.origin:
            continue
        owner = owner_of(lv.name, "snapshot-")
        reason = verdict(lv.name, owner, owned_ids)
        if reason is None and owner_of(lv.origin, "volume-") is None:
            reason = "Origin not managed"
        found.append(ManageableSnapshot(lv.name, size_gb(lv.size), reason is None,
                                        lv.origin, reason,
                                        owner if reason == "Already managed" else None))
    return found


def _snapshot_lv(driver: LVMDriver, volume_id: str, name: str) -> Any:
    lv = driver._lv(name)
    if lv is None:
        raise exception.InvalidInput(reason=f"no LV named {name} in {driver.vg}")
    if lv.origin != volume_name(volume_id):
        raise exception.InvalidInput(
            reason=f"LV {name} is not a snapshot of volume {volume_id}")
    return lv


def manage_existing_snapshot_get_size(driver: LVMDriver, volume_id: str,
                                      reference: Mapping[str, Any]) -> int:
    return size_gb(_snapshot_lv(driver, volume_id, reference_name(reference)).size)


def manage_existing_snapshot(driver: LVMDriver, snapshot_id: str, volume_id: str,
                             reference: Mapping[str, Any],
                             owned_ids: Collection[str]) -> int:
    """Adopt the snapshot LV ``reference`` names as snapshot ``snapshot_id`` of
    ``volume_id``; idempotent like ``manage_existing``."""
    name = reference_name(reference)
    target = "snapshot-" + canonical_uuid(snapshot_id)
    done = driver._lv(target) if name != target else None
    if done is not None:
        return size_gb(done.size)
    lv = _snapshot_lv(driver, volume_id, name)
    reason = verdict(name, owner_of(name, "snapshot-"), owned_ids)
    if reason is not None:
        raise exception.InvalidInput(reason=f"LV {name} cannot be managed: {reason}")
    if name != target:
        driver._lvm("lvrename", driver.vg, name, target)
    return size_gb(lv.size)
