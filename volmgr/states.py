"""The volume, snapshot and attachment state machines (DESIGN.md §2.2), as data.

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

VOLUME_STATUSES = (
    CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, EXTENDING, DELETING,
    ERROR, ERROR_DELETING, ERROR_ATTACHING, ERROR_DETACHING, ERROR_EXTENDING,
)

#: Statuses a volume passes through while a manager works on it, mapped to the
#: status it lands in when the work fails for good.
VOLUME_TRANSITIONAL = {
    CREATING: ERROR,
    ATTACHING: ERROR_ATTACHING,
    DETACHING: ERROR_DETACHING,
    EXTENDING: ERROR_EXTENDING,
    DELETING: ERROR_DELETING,
}

#: Where each request may start from.
CAN_DELETE_FROM = (AVAILABLE, ERROR, ERROR_DELETING, ERROR_EXTENDING, ERROR_ATTACHING)
CAN_ATTACH_FROM = (AVAILABLE, ERROR_ATTACHING)
CAN_DETACH_FROM = (IN_USE, ERROR_DETACHING)
CAN_EXTEND_FROM = (AVAILABLE, ERROR_EXTENDING)
CAN_SNAPSHOT_FROM = (AVAILABLE, IN_USE)
CAN_CLONE_FROM = (AVAILABLE, IN_USE)

# Attachment statuses (attach_status column).
ATTACH_ATTACHING = "attaching"
ATTACH_ATTACHED = "attached"
ATTACH_DETACHING = "detaching"
ATTACH_DETACHED = "detached"
ATTACH_ERROR_ATTACHING = "error_attaching"
ATTACH_ERROR_DETACHING = "error_detaching"

# Snapshot statuses.
SNAP_CREATING = "creating"
SNAP_AVAILABLE = "available"
SNAP_DELETING = "deleting"
SNAP_ERROR = "error"
SNAP_ERROR_DELETING = "error_deleting"

SNAPSHOT_TRANSITIONAL = {
    SNAP_CREATING: SNAP_ERROR,
    SNAP_DELETING: SNAP_ERROR_DELETING,
}

SNAP_CAN_DELETE_FROM = (SNAP_AVAILABLE, SNAP_ERROR, SNAP_ERROR_DELETING)
