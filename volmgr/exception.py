"""The one exception hierarchy of volmgr.

Every error volmgr raises on purpose is a ``VolmgrError``. Instances keep the keyword
arguments they were built from, so ``type(e)(*e.args, **e.kwargs)`` rebuilds an equal
error on the far side of oslo.messaging. HTTP status codes are *not* decided here: the
API layer maps exception classes to codes in one table.
"""

from __future__ import annotations

from typing import Any


class VolmgrError(Exception):
    """Base of every volmgr error; ``message`` is a template filled from ``kwargs``."""

    message = "An unknown error occurred."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError, ValueError):
                # A template that does not match its kwargs must not hide the real error.
                message = f"{self.message} {kwargs!r}"
        self.msg = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.msg

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.msg, self.kwargs))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.msg == other.msg  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.msg))


def _rebuild(cls: type[VolmgrError], msg: str, kwargs: dict[str, Any]) -> VolmgrError:
    return cls(msg, **kwargs)


# -- Lookups --------------------------------------------------------------------------


class NotFound(VolmgrError):
    """Raised when a requested resource does not exist or is not visible to the caller."""

    message = "Resource could not be found."


class VolumeNotFound(NotFound):
    """Raised when no volume with that id exists in the caller's project."""

    message = "Volume %(volume_id)s could not be found."


class SnapshotNotFound(NotFound):
    """Raised when no snapshot with that id exists in the caller's project."""

    message = "Snapshot %(snapshot_id)s could not be found."


class AttachmentNotFound(NotFound):
    """Raised when the volume is not attached to the named server."""

    message = "Volume %(volume_id)s is not attached to server %(server_id)s."


class ServiceNotFound(NotFound):
    """Raised when no service row matches the host (and binary) asked for."""

    message = "Service %(host)s %(binary)s could not be found."


class VolumeTypeNotFound(NotFound):
    """Raised when no volume type with that id (or name) is visible to the caller."""

    message = "Volume type %(volume_type_id)s could not be found."


class VolumeTypeExtraSpecsNotFound(NotFound):
    """Raised when a volume type has no extra spec with that key."""

    message = "Volume type %(volume_type_id)s has no extra specs with key %(extra_specs_key)s."


class VolumeTypeAccessNotFound(NotFound):
    """Raised when a project is not on a volume type's access list, or the type has none."""

    message = "Volume type access not found for %(volume_type_id)s / %(project_id)s."


class VolumeTypeEncryptionNotFound(NotFound):
    """Raised when a volume type has no encryption record (or not that field of it)."""

    message = "Volume type encryption for type %(volume_type_id)s does not exist."


class VolumeTypeProjectDefaultNotFound(NotFound):
    """Raised when a project has no default volume type of its own."""

    message = "Default volume type of project %(project_id)s could not be found."


class QoSSpecsNotFound(NotFound):
    """Raised when no QoS specs with that id exist."""

    message = "QoS specs %(qos_specs_id)s could not be found."


class QoSSpecsKeyNotFound(NotFound):
    """Raised when QoS specs have no key of that name."""

    message = "QoS spec %(key)s could not be found in QoS specs %(qos_specs_id)s."


class ExtensionNotFound(NotFound):
    """Raised when the extension alias asked for is not served."""

    message = "Extension %(alias)s could not be found."


class TransferNotFound(NotFound):
    """Raised when no pending volume transfer with that id is visible to the caller."""

    message = "Transfer %(transfer_id)s could not be found."


# -- Bad input ------------------------------------------------------------------------


class Invalid(VolmgrError):
    """Raised when a request is malformed or its values are out of range."""

    message = "Unacceptable parameters."


class InvalidInput(Invalid):
    """Raised when a request body or parameter fails validation."""

    message = "Invalid input: %(reason)s"


class InvalidVolume(Invalid):
    """Raised when the volume cannot undergo the operation in its current status."""

    message = "Invalid volume: %(reason)s"


class InvalidSnapshot(Invalid):
    """Raised when the snapshot cannot undergo the operation in its current status."""

    message = "Invalid snapshot: %(reason)s"


class InvalidConfiguration(Invalid):
    """Raised at start-up when the configuration cannot work (e.g. unknown driver)."""

    message = "Invalid configuration: %(reason)s"


class InvalidAuthKey(Invalid):
    """Raised when a volume transfer is accepted with the wrong authentication key."""

    message = "Invalid auth key: %(reason)s"


class InvalidVolumeType(Invalid):
    """Raised when a volume type cannot undergo the operation (default type, public type)."""

    message = "Invalid volume type: %(reason)s"


class VolumeTypeInUse(InvalidVolumeType):
    """Raised when deleting or changing a volume type that live volumes were made with."""

    message = "Volume type %(volume_type_id)s is in use by a volume."


class VolumeTypeEncryptionExists(Invalid):
    """Raised when creating an encryption record for a type that already has one."""

    message = "Volume type encryption for type %(volume_type_id)s already exists."


class QoSSpecsInUse(Invalid):
    """Raised when deleting QoS specs still associated with volume types, without force."""

    message = ("QoS specs %(qos_specs_id)s are associated with volume types; "
               "disassociate them or delete with force=True.")


class RequestTooLarge(Invalid):
    """Raised when a request body exceeds the configured maximum size."""

    message = "Request body is larger than %(limit)d bytes."


# -- Conflicts ------------------------------------------------------------------------


class Conflict(VolmgrError):
    """Raised when the resource's state forbids the operation right now."""

    message = "The request conflicts with the resource's current state."


class VolumeStatusConflict(Conflict):
    """Raised when a guarded transition loses: the volume is not in an expected status."""

    message = (
        "Volume %(volume_id)s is %(status)s; the operation needs one of: %(expected)s."
    )


class SnapshotStatusConflict(Conflict):
    """Raised when a guarded snapshot transition loses."""

    message = (
        "Snapshot %(snapshot_id)s is %(status)s; the operation needs one of: %(expected)s."
    )


class VolumeHasSnapshots(Conflict):
    """Raised when deleting a volume (or LV) that still has snapshots."""

    message = "Volume %(volume_id)s still has snapshots; delete them first."


class SnapshotInUse(Conflict):
    """Raised when deleting a snapshot that a volume is still being created from."""

    message = ("Snapshot %(snapshot_id)s is the source of a volume still being created; "
               "delete it once that volume is available.")


class VolumeIsAttached(Conflict):
    """Raised when deleting or re-attaching a volume that has an attachment."""

    message = "Volume %(volume_id)s is attached; detach it first."


class VolumeTypeExists(Conflict):
    """Raised when a volume type name is already taken."""

    message = "Volume type with name %(name)s already exists."


class VolumeTypeAccessExists(Conflict):
    """Raised when a project already has access to the private volume type."""

    message = "Volume type access for %(volume_type_id)s / %(project_id)s already exists."


class QoSSpecsExists(Conflict):
    """Raised when a QoS specs name is already taken."""

    message = "QoS specs %(name)s already exist."


# -- Limits ---------------------------------------------------------------------------


class QuotaExceeded(VolmgrError):
    """Raised when a reservation would take a project's usage over its limit."""

    message = (
        "Quota exceeded for %(resource)s: requested %(requested)d, "
        "in use %(in_use)d, limit %(limit)d."
    )


class VolumeSizeExceedsLimit(QuotaExceeded):
    """Raised when a volume would be larger than the project's per_volume_gigabytes."""

    message = ("Requested volume size %(size)dG is larger than maximum allowed limit "
               "%(limit)dG.")


class NoValidHost(VolmgrError):
    """Raised when no up and enabled volume service can hold the request."""

    message = "No valid host was found: %(reason)s"


# -- Authorization --------------------------------------------------------------------


class NotAuthorized(VolmgrError):
    """Raised when the caller presents no valid credentials."""

    message = "Not authorized."


class Forbidden(VolmgrError):
    """Raised when the caller is known but may not perform the operation."""

    message = "Policy does not allow this operation."


# -- Backends and processes -----------------------------------------------------------


class BackendError(VolmgrError):
    """Raised when a storage backend (LVM, image files, a target helper) fails."""

    message = "Storage backend error: %(reason)s"


class ProcessExecutionError(BackendError):
    """Raised when a command exits non-zero or times out; secrets already redacted."""

    message = (
        "Command %(cmd)s failed with exit code %(exit_code)s: %(stderr)s"
    )


class TargetError(BackendError):
    """Raised when an iSCSI target helper cannot create, change or remove an export."""

    message = "iSCSI target error: %(reason)s"


class DBError(VolmgrError):
    """Raised when the database fails in a way retries could not cure."""

    message = "Database error: %(reason)s"


class RPCVersionCapped(VolmgrError):
    """Raised when a capped RPC client is asked to send a method newer than its cap."""

    message = (
        "RPC method %(method)s needs version %(needed)s but the client is capped "
        "at %(cap)s ([upgrade_levels] volume)."
    )


class ServiceIsUp(Conflict):
    """Raised when an operation meant for a dead host (``service remove``) finds its
    service still heartbeating."""

    message = ("Service %(host)s %(binary)s is up (it heartbeated within the last "
               "%(down_time)s s); stop it first")


class ServiceUnavailable(VolmgrError):
    """Raised when the message bus cannot be reached within the bounded retry."""

    message = "Service unavailable: %(reason)s"
