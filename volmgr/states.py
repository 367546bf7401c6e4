"""The volume, snapshot and attachment state machines, as data (docs/architecture.md,
"The state machine").

The API, the manager, recovery and the operator CLI all read the allowed transitions
from here, so the state machine is written down exactly once.
"""

from __future__ import annotations

# Volume statuses.
CREATING = "creating"
AVAILABLE = "available"
ATTACHING = "attaching"
IN_USE = "in-use"
DETACHING = "detaching"
EXTENDING = "extending"
DELETING = "deleting"
ERROR = "error"
ERROR_DELETING = "error_deleting"
ERROR_ATTACHING = "error_attaching"
ERROR_DETACHING = "error_detaching"
ERROR_EXTENDING = "error_extending"
#: Offered to another project (a pending volume transfer); nothing else may start.
AWAITING_TRANSFER = "awaiting-transfer"
#: Reserved for an attachment through the v3 attachments API (no export yet).
RESERVED = "reserved"
#: Existing storage being adopted (os-volume-manage), and a volume being forgotten
#: without touching its storage (os-unmanage). Clients see them as ``creating`` and
#: ``deleting`` (``PUBLIC_STATUS``), as the reference service shows them.
MANAGING = "managing"
UNMANAGING = "unmanaging"

VOLUME_STATUSES = (
    CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, EXTENDING, DELETING,
    ERROR, ERROR_DELETING, ERROR_ATTACHING, ERROR_DETACHING, ERROR_EXTENDING,
    AWAITING_TRANSFER, RESERVED, MANAGING, UNMANAGING,
)

#: Statuses a volume passes through while a manager works on it, mapped to the
#: status it lands in when the work fails for good.
VOLUME_TRANSITIONAL = {
    CREATING: ERROR,
    ATTACHING: ERROR_ATTACHING,
    DETACHING: ERROR_DETACHING,
    EXTENDING: ERROR_EXTENDING,
    DELETING: ERROR_DELETING,
    MANAGING: ERROR,
    UNMANAGING: ERROR,
}

#: Internal statuses and the status clients are shown for them (volumes and snapshots).
PUBLIC_STATUS = {MANAGING: CREATING, UNMANAGING: DELETING}


def public_status(status: str) -> str:
    """The status the API shows for ``status``."""
    return PUBLIC_STATUS.get(status, status)

#: Where each request may start from.
CAN_DELETE_FROM = (AVAILABLE, ERROR, ERROR_DELETING, ERROR_EXTENDING, ERROR_ATTACHING)
CAN_ATTACH_FROM = (AVAILABLE, ERROR_ATTACHING)
CAN_DETACH_FROM = (IN_USE, ERROR_DETACHING)
CAN_EXTEND_FROM = (AVAILABLE, ERROR_EXTENDING)
#: From 3.42 an attached volume may grow too (its live LUN shows the new size).
CAN_EXTEND_ATTACHED_FROM = (AVAILABLE, ERROR_EXTENDING, IN_USE)
CAN_SNAPSHOT_FROM = (AVAILABLE, IN_USE)
CAN_CLONE_FROM = (AVAILABLE, IN_USE)
#: Unmanaging forgets the row and leaves the storage; it needs no attachments and no
#: snapshots, like a delete.
CAN_UNMANAGE_FROM = (AVAILABLE, ERROR)

# Attachment statuses (attach_status column). An attachment's life (docs/rpc.md):
# reserved -> attaching (export being made: connection_info empty; export made:
# connection_info set, the client's turn) -> attached -> detaching -> detached (the
# row is soft-deleted). A failed connect leaves error_attaching, a failed detach
# error_detaching; both may be retried or deleted.
ATTACH_RESERVED = "reserved"
ATTACH_ATTACHING = "attaching"
ATTACH_ATTACHED = "attached"
ATTACH_DETACHING = "detaching"
ATTACH_DETACHED = "detached"
ATTACH_ERROR_ATTACHING = "error_attaching"
ATTACH_ERROR_DETACHING = "error_detaching"
ATTACH_STATUSES = (ATTACH_RESERVED, ATTACH_ATTACHING, ATTACH_ATTACHED, ATTACH_DETACHING,
                   ATTACH_DETACHED, ATTACH_ERROR_ATTACHING, ATTACH_ERROR_DETACHING)
#: Where an attachment may be (re)connected from (a connector given or changed).
ATTACH_CAN_CONNECT_FROM = (ATTACH_RESERVED, ATTACH_ATTACHING, ATTACH_ERROR_ATTACHING,
                           ATTACH_ATTACHED)
#: Volume statuses an attachment change may start from, and which the volume's
#: status is derived from once the change is done (docs/rpc.md, "Attachments").
ATTACHABLE_VOLUME = (AVAILABLE, RESERVED, ATTACHING, IN_USE)
SETTLED_BY_ATTACHMENTS = (AVAILABLE, RESERVED, ATTACHING, IN_USE, DETACHING)

# Attachment flows (attachment ``flow`` column): who completes the attach.
FLOW_COMPUTE = "compute"  # Compute 1.1 os-volume_attachments: the manager completes it
FLOW_V3 = "v3"            # v3 attachments API: the client's os-complete does
FLOW_LEGACY = "legacy"    # volume actions: the client's os-attach does

# Snapshot statuses.
SNAP_CREATING = "creating"
SNAP_AVAILABLE = "available"
SNAP_DELETING = "deleting"
SNAP_ERROR = "error"
SNAP_ERROR_DELETING = "error_deleting"
SNAP_MANAGING = MANAGING
SNAP_UNMANAGING = UNMANAGING

SNAPSHOT_TRANSITIONAL = {
    SNAP_CREATING: SNAP_ERROR,
    SNAP_DELETING: SNAP_ERROR_DELETING,
    SNAP_MANAGING: SNAP_ERROR,
    SNAP_UNMANAGING: SNAP_ERROR,
}

SNAP_CAN_DELETE_FROM = (SNAP_AVAILABLE, SNAP_ERROR, SNAP_ERROR_DELETING)
SNAP_CAN_UNMANAGE_FROM = (SNAP_AVAILABLE, SNAP_ERROR)
