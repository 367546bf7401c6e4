"""The interface every iSCSI target helper (tgtadm, lioadm, none) implements.

A helper exports one block device or image per volume and describes the export in the
os-brick ``connection_info`` shape. It receives UUIDs, paths built from them and validated
initiator names only: never user text.
"""

from __future__ import annotations

import abc
import dataclasses
import re
import secrets
import string
import uuid
from typing import Any

from oslo_config import cfg

from volmgr import exception
from volmgr.iscsi_names import is_iscsi_name
from volmgr.volume.driver import VolumeRef
from volmgr.volume.executor import Executor

_CHAP_ALPHABET = string.ascii_letters + string.digits
CHAP_USERNAME_LENGTH = 20
# 16 is the longest secret some initiators (Windows, older open-iscsi) accept.
CHAP_SECRET_LENGTH = 16

# Paths handed to target tools; tgt-admin passes them through a shell internally, so
# only characters with no shell meaning are accepted.
_SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9/_.+:-]+$")


def volume_name(volume_id: str) -> str:
    """``volume-<uuid>``; raises InvalidInput for anything that is not a canonical UUID."""
    return "volume-" + canonical_uuid(volume_id)


def canonical_uuid(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise exception.InvalidInput(reason="volume and snapshot ids must be UUIDs") from None
    if str(parsed) != value:
        raise exception.InvalidInput(reason="volume and snapshot ids must be canonical UUIDs")
    return value


def safe_path(path: str) -> str:
    if not _SAFE_PATH_RE.match(path) or "/../" in path + "/" or "/./" in path + "/":
        raise exception.InvalidConfiguration(
            reason="device and image paths may hold only letters, digits and '/_.+:-'")
    return path


def valid_initiator(connector: dict[str, Any]) -> str | None:
    """The connector's initiator IQN, validated; None when it names none.

    A named initiator is the only one the export then admits (with
    ``target_initiator_acl``); naming none admits any initiator holding the CHAP secret.
    """
    initiator = connector.get("initiator")
    if initiator in (None, ""):
        return None
    if not is_iscsi_name(initiator):
        raise exception.InvalidInput(reason="connector initiator is not an iSCSI name")
    return str(initiator)


class Chap:
    """Per-volume CHAP credentials, stored with the volume as provider_auth."""

    def __init__(self, username: str, secret: str) -> None:
        for value in (username, secret):
            if not value or any(c not in _CHAP_ALPHABET for c in value):
                raise exception.InvalidInput(reason="malformed provider_auth")
        self.username = username
        self.secret = secret

    @classmethod
    def generate(cls) -> Chap:
        return cls(_random(CHAP_USERNAME_LENGTH), _random(CHAP_SECRET_LENGTH))

    @classmethod
    def parse(cls, provider_auth: str | None) -> Chap | None:
        if not provider_auth:
            return None
        parts = provider_auth.split()
        if len(parts) != 3 or parts[0] != "CHAP":
            raise exception.InvalidInput(reason="provider_auth is not 'CHAP <user> <secret>'")
        return cls(parts[1], parts[2])

    def provider_auth(self) -> str:
        return f"CHAP {self.username} {self.secret}"

    def __repr__(self) -> str:
        return f"Chap(username={self.username!r}, secret='***')"


def _random(length: int) -> str:
    return "".join(secrets.choice(_CHAP_ALPHABET) for _ in range(length))


@dataclasses.dataclass(frozen=True)
class ExportState:
    """What a live export holds, as far as the helper can tell (reconcile compares the
    state before and after a repair to count what it put back)."""

    luns: frozenset[int] = frozenset()
    accounts: frozenset[str] = frozenset()
    acl: frozenset[str] = frozenset()

    def repairs(self, after: ExportState) -> list[str]:
        """Kinds of repair that turned this state into ``after``."""
        kinds = [kind for kind, before, now in (
            ("lun_restored", self.luns, after.luns),
            ("chap_restored", self.accounts, after.accounts),
            ("acl_restored", self.acl, after.acl)) if before != now]
        return kinds


class TargetHelper(abc.ABC):
    """Exports volumes; every method is idempotent."""

    #: LUN number the volume appears at inside its target.
    lun = 1

    def __init__(self, conf: cfg.ConfigOpts, executor: Executor) -> None:
        self.conf = conf
        self.executor = executor
        self.target_prefix: str = conf.volume.target_prefix
        self.portal = f"{conf.volume.target_ip_address}:{conf.volume.target_port}"

    def iqn(self, volume_id: str) -> str:
        return self.target_prefix + volume_name(volume_id)

    def provider_location(self, volume_id: str) -> str:
        return f"{self.portal},1 {self.iqn(volume_id)} {self.lun}"

    def admits_any(self, any_initiator: bool) -> bool:
        """Whether an export admits every initiator that holds its CHAP secret: an
        attachment asked for that (its connector named no initiator), or
        ``[volume] target_initiator_acl`` is off. Otherwise only named initiators."""
        return any_initiator or not self.conf.volume.target_initiator_acl

    @abc.abstractmethod
    def create_export(self, volume: VolumeRef, device_path: str) -> dict[str, Any]:
        """Export ``device_path`` as the volume's target; returns model updates."""

    @abc.abstractmethod
    def ensure_export(self, volume: VolumeRef, device_path: str) -> None:
        """Re-create the export from what is stored if the target is missing."""

    @abc.abstractmethod
    def remove_export(self, volume: VolumeRef) -> None:
        """Remove the target; succeeds when it is already gone."""

    @abc.abstractmethod
    def initialize_connection(self, volume: VolumeRef, device_path: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """Admit ``connector`` and return connection_info (os-brick shape)."""

    @abc.abstractmethod
    def terminate_connection(self, volume: VolumeRef, connector: dict[str, Any]) -> None:
        """Withdraw what initialize_connection admitted."""

    def refresh_export(self, volume: VolumeRef, device_path: str) -> None:
        """Show the device's current size to initiators logged in now (after the device
        grew). A no-op for targets that read the size on every READ CAPACITY (LIO's
        block backstore, ``none``)."""
        return None

    @abc.abstractmethod
    def list_exported_volume_ids(self) -> set[str]:
        """UUIDs of the volumes this helper currently exports."""

    def export_state(self, volume_id: str) -> ExportState | None:
        """The live export of ``volume_id`` (None: there is none). Helpers that can read
        LUNs, CHAP accounts and ACLs fill them in; the default tells only whether the
        export exists."""
        return ExportState() if volume_id in self.list_exported_volume_ids() else None

    def iscsi_connection_info(self, volume: VolumeRef) -> dict[str, Any]:
        chap = Chap.parse(volume.provider_auth)
        if chap is None:
            raise exception.TargetError(
                reason=f"volume {volume.id} has no CHAP credentials; create_export first")
        return {
            "driver_volume_type": "iscsi",
            "data": {
                "target_iqn": self.iqn(volume.id),
                "target_portal": self.portal,
                "target_lun": self.lun,
                "target_discovered": False,
                "auth_method": "CHAP",
                "auth_username": chap.username,
                "auth_password": chap.secret,
                "target_portals": [self.portal],
                "target_iqns": [self.iqn(volume.id)],
                "target_luns": [self.lun],
                "volume_id": volume.id,
                "access_mode": "rw",
                "discard": False,
                "encrypted": False,
                "qos_specs": None,
            },
        }
