"""A client for tgtd's management socket, for the requests that carry a CHAP secret.

``tgtadm`` takes an account's password on its command line, where every local user can
read it (``ps``); this module sends the same request tgtadm would, straight to the
socket, so the secret exists only in this process and in tgtd. It must never log or put
a request's parameters into an error message.

The wire format is that of tgt 1.0.85 (Debian 12), read from tgtadm with ``strace``: a
120-byte ``struct tgtadm_req`` (native x86-64 layout, little-endian) followed by a
NUL-terminated ``key=value,...`` string, answered by an 8-byte ``struct tgtadm_rsp``
(error code, total length) and ``length - 8`` bytes of text.

Other tgt versions may lay the request out differently, and tgtd reports no version. So
before the first request that carries a secret, the client sends a harmless one (``show
--mode system``, what ``tgtadm --op show --mode sys`` sends) and checks that the answer
is tgtd's system report for this driver. A tgtd that answers otherwise is not spoken to
again: the request fails as ``denied`` (the caller then uses ``tgtadm``) and one
warning says why.
"""

from __future__ import annotations

import enum
import logging
import socket
import struct

from volmgr import exception

LOG = logging.getLogger(__name__)

SOCKET_DIR = "/var/run/tgtd"
LLD_NAME_LEN = 64
# mode, op, lld[64], len, tid, sid, lun, cid, host_no, device_type, ac_dir, pack, padding
_REQUEST = struct.Struct("<II64sIiQQIIIII4x")
_RESPONSE = struct.Struct("<II")
# tgtadm's "no LUN" and "no target" values.
_NO_LUN = 0xFFFF_FFFF_FFFF_FFFF
_NO_TID = -1
_MAX_RESPONSE = 16 * 1024 * 1024
# Parameters are joined with "," and split at "="; tgtd has no escaping.
_FORBIDDEN = (",", "=", "\x00")
#: The tgt release whose request layout this client speaks.
LAYOUT_VERSION = "1.0.85"
#: Seconds the layout probe waits for tgtd's answer.
PROBE_TIMEOUT = 5.0


class Mode(enum.IntEnum):
    SYSTEM = 0
    TARGET = 1
    DEVICE = 2
    PORTAL = 3
    LLD = 4
    SESSION = 5
    CONNECTION = 6
    ACCOUNT = 7


class Op(enum.IntEnum):
    NEW = 0
    DELETE = 1
    SHOW = 2
    BIND = 3
    UNBIND = 4
    UPDATE = 5


class Err(enum.IntEnum):
    """tgtd's answer codes (``enum tgtadm_errno``), with tgtadm's words for them."""

    SUCCESS = 0
    UNKNOWN_ERR = 1
    NOMEM = 2
    NO_DRIVER = 3
    NO_TARGET = 4
    NO_LUN = 5
    NO_SESSION = 6
    NO_CONNECTION = 7
    NO_BINDING = 8
    TARGET_EXIST = 9
    BINDING_EXIST = 10
    LUN_EXIST = 11
    ACL_EXIST = 12
    ACL_NOEXIST = 13
    USER_EXIST = 14
    NO_USER = 15
    TOO_MANY_USER = 16
    INVALID_REQUEST = 17
    OUTACCOUNT_EXIST = 18
    TARGET_ACTIVE = 19
    LUN_ACTIVE = 20
    DRIVER_ACTIVE = 21
    UNSUPPORTED_OPERATION = 22
    UNKNOWN_PARAM = 23
    PREVENT_REMOVAL = 24


# The same words tgtadm prints, so callers and operators see one vocabulary.
_WORDS = {
    Err.UNKNOWN_ERR: "unknown error", Err.NOMEM: "out of memory",
    Err.NO_DRIVER: "can't find the driver", Err.NO_TARGET: "can't find the target",
    Err.NO_LUN: "can't find the logical unit", Err.NO_SESSION: "can't find the session",
    Err.NO_CONNECTION: "can't find the connection", Err.NO_BINDING: "can't find the binding",
    Err.TARGET_EXIST: "this target already exists",
    Err.BINDING_EXIST: "this binding already exists",
    Err.LUN_EXIST: "this logical unit number already exists",
    Err.ACL_EXIST: "this access control rule already exists",
    Err.ACL_NOEXIST: "this access control rule does not exist",
    Err.USER_EXIST: "this account already exists", Err.NO_USER: "can't find the account",
    Err.TOO_MANY_USER: "too many accounts", Err.INVALID_REQUEST: "invalid request",
    Err.OUTACCOUNT_EXIST: "this target already has an outgoing account",
    Err.TARGET_ACTIVE: "this target is still active",
    Err.LUN_ACTIVE: "this logical unit is still active",
    Err.DRIVER_ACTIVE: "this driver is busy",
    Err.UNSUPPORTED_OPERATION: "this operation isn't supported",
    Err.UNKNOWN_PARAM: "unknown parameter",
    Err.PREVENT_REMOVAL: "this device has Prevent Removal set",
}


class TgtdRequestError(exception.TargetError):
    """tgtd refused a management request (``code`` is its answer), or could not be
    reached at all (``code`` is None; ``denied`` when this process cannot use the socket:
    it refused this user, or the tgtd behind it does not speak this request layout)."""

    message = "tgtd %(request)s failed: %(reason)s"

    @property
    def code(self) -> int | None:
        code = self.kwargs.get("code")
        return None if code is None else int(code)

    @property
    def denied(self) -> bool:
        return bool(self.kwargs.get("denied", False))


def socket_path(control_port: int) -> str:
    """Where tgtd started with ``-C control_port`` listens (a filesystem socket)."""
    return f"{SOCKET_DIR}/socket.{int(control_port)}"


class TgtdSocket:
    """One request per connection, as tgtadm does; nothing is kept between requests."""

    def __init__(self, control_port: int = 0, lld: str = "iscsi", timeout: float = 30.0,
                 path: str | None = None) -> None:
        if not lld or len(lld.encode()) >= LLD_NAME_LEN:
            raise exception.InvalidConfiguration(reason=f"bad tgtd driver name {lld!r}")
        self.path = path or socket_path(control_port)
        self.lld = lld
        self.timeout = timeout
        #: None until the layout probe got an answer; then "" (this tgtd speaks tgt
        #: 1.0.85's layout) or why it does not.
        self._layout_problem: str | None = None

    # -- the requests volmgr needs --------------------------------------------------

    def new_account(self, username: str, password: str) -> None:
        """``tgtadm --mode account --op new --user U --password P``, off argv. Refused
        as ``denied`` when the tgtd behind the socket does not speak this layout."""
        problem = self.layout_problem()
        if problem:
            raise TgtdRequestError(request="account new", denied=True, reason=problem)
        self.request(Mode.ACCOUNT, Op.NEW, {"user": username, "password": password},
                     what="account new")

    def layout_problem(self) -> str:
        """Why this tgtd does not speak tgt 1.0.85's request layout ("" when it does),
        from a harmless system report request sent once. A tgtd that is not running or
        not ours to use is not judged: the next request reports that itself."""
        if self._layout_problem is not None:
            return self._layout_problem
        probe = TgtdSocket(lld=self.lld, timeout=min(self.timeout, PROBE_TIMEOUT),
                           path=self.path)
        try:
            text = probe.request(Mode.SYSTEM, Op.SHOW, {}, what="show system")
        except TgtdRequestError as error:
            if error.code is None and (error.denied or "is not running" in str(error)):
                return ""
            answer = str(error)
        else:
            if text.startswith("System:") and f"\n    {self.lld}: " in text:
                self._layout_problem = ""
                return ""
            answer = f"an unexpected report ({len(text)} bytes)"
        self._layout_problem = (
            f"tgtd at {self.path} does not answer a system report request laid out as tgt "
            f"{LAYOUT_VERSION} lays it out, as that release would ({answer})")
        LOG.warning("%s; volmgr will not send it requests that carry secrets and creates "
                    "CHAP accounts with tgtadm instead", self._layout_problem)
        return self._layout_problem

    def delete_account(self, username: str) -> None:
        self.request(Mode.ACCOUNT, Op.DELETE, {"user": username}, what="account delete")

    # -- the protocol -----------------------------------------------------------------

    def request(self, mode: Mode, op: Op, params: dict[str, str], *, tid: int = _NO_TID,
                lun: int = _NO_LUN, what: str = "request") -> str:
        """Send one request; return tgtd's text answer or raise TgtdRequestError."""
        # A request without parameters is the bare header, as tgtadm sends it.
        body = encode_params(params) if params else b""
        header = _REQUEST.pack(int(mode), int(op), self.lld.encode(),
                               _REQUEST.size + len(body), tid, 0, lun, 0, 0, 0, 0, 0)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.path)
                conn.sendall(header + body)
                code, length = _RESPONSE.unpack(_recv_exactly(conn, _RESPONSE.size))
                if length < _RESPONSE.size or length > _MAX_RESPONSE:
                    raise TgtdRequestError(request=what, reason="malformed answer")
                text = _recv_exactly(conn, length - _RESPONSE.size)
        except PermissionError:
            raise TgtdRequestError(request=what, denied=True, reason=(
                f"no permission to use tgtd's socket {self.path}")) from None
        except FileNotFoundError:
            raise TgtdRequestError(request=what, reason=(
                f"tgtd is not running ({self.path} does not exist)")) from None
        except OSError as error:
            # Only the path and the errno text: the request body stays out of errors.
            raise TgtdRequestError(request=what, reason=(
                f"cannot talk to tgtd at {self.path}: {error.strerror or error}")) from None
        if code != Err.SUCCESS:
            raise TgtdRequestError(request=what, code=code, reason=describe(code))
        return text.rstrip(b"\x00").decode(errors="replace")


def encode_params(params: dict[str, str]) -> bytes:
    """``key=value,...`` plus the NUL tgtd expects; refuses what tgtd would mis-split."""
    for key, value in params.items():
        if not key or any(c in key or c in value for c in _FORBIDDEN):
            raise exception.InvalidInput(reason=f"tgtd parameter {key!r} holds ',', '=' "
                                         "or NUL")
    return (",".join(f"{key}={value}" for key, value in params.items()) + "\x00").encode()


def describe(code: int) -> str:
    try:
        return _WORDS[Err(code)]
    except (ValueError, KeyError):
        return f"(unknown tgtadm_errno {code})"


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("tgtd closed the socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
