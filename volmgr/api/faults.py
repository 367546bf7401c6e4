"""The one table that turns volmgr exceptions into HTTP status codes and fault names.

Controllers raise ``volmgr.exception`` classes and never pick a status code themselves;
an exception that is not in the table is a bug and answers 500 ``computeFault`` without
leaking its text.
"""

from __future__ import annotations

import logging

from volmgr import exception

LOG = logging.getLogger(__name__)

#: Most specific classes first: the first ``isinstance`` match wins.
FAULT_TABLE: tuple[tuple[type[exception.VolmgrError], int, str], ...] = (
    (exception.NotFound, 404, "itemNotFound"),
    (exception.RequestTooLarge, 413, "requestEntityTooLarge"),
    (exception.Invalid, 400, "badRequest"),
    (exception.Conflict, 409, "conflictingRequest"),
    (exception.QuotaExceeded, 413, "overLimit"),
    (exception.NotAuthorized, 401, "unauthorized"),
    (exception.Forbidden, 403, "forbidden"),
    (exception.NoValidHost, 400, "badRequest"),
    (exception.RPCVersionCapped, 400, "badRequest"),
    (exception.ServiceUnavailable, 503, "serviceUnavailable"),
)

#: Faults raised by the HTTP layer itself, not by an exception class.
BAD_REQUEST = (400, "badRequest")
NOT_FOUND = (404, "itemNotFound")
METHOD_NOT_ALLOWED = (405, "badMethod")
NOT_ACCEPTABLE = (406, "notAcceptable")
UNSUPPORTED_MEDIA_TYPE = (415, "badMediaType")
#: Answered by the HTTP server itself (volmgr/api/server.py), before the app runs.
REQUEST_TOO_LARGE = (413, "requestEntityTooLarge")
HEADERS_TOO_LARGE = (431, "requestHeaderFieldsTooLarge")
NOT_IMPLEMENTED = (501, "notImplemented")
INTERNAL = (500, "computeFault")


#: The Block Storage v3 face answers a request that the resource's current state does
#: not allow with 400, as the reference service does (its "Invalid volume" faults);
#: the Compute 1.1 face keeps 409. Other conflicts (a name taken) stay 409 on both.
V3_STATE_CONFLICTS: tuple[type[exception.VolmgrError], ...] = (
    exception.VolumeStatusConflict, exception.SnapshotStatusConflict,
    exception.VolumeHasSnapshots, exception.SnapshotInUse, exception.VolumeIsAttached,
)


def classify(error: BaseException, *, v3_face: bool = False) -> tuple[int, str, str]:
    """``(status, fault name, message)`` for ``error``; unknown errors are 500s whose
    text stays in the log, never in the answer."""
    if isinstance(error, exception.VolmgrError):
        if v3_face and isinstance(error, V3_STATE_CONFLICTS):
            return BAD_REQUEST[0], BAD_REQUEST[1], str(error)
        for cls, status, name in FAULT_TABLE:
            if isinstance(error, cls):
                return status, name, str(error)
    LOG.error("Unexpected error serving a request", exc_info=error)
    return INTERNAL[0], INTERNAL[1], "The server has either erred or is incapable of " \
        "performing the requested operation."
