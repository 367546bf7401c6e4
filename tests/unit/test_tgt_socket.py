"""tgtd's management socket client, against an in-process stand-in for tgtd that checks
the exact bytes tgtadm 1.0.85 sends (captured with strace on Debian 12)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from volmgr import exception
from volmgr.volume.targets import tgt_socket
from volmgr.volume.targets.tgt_socket import Err, Mode, Op, TgtdRequestError, TgtdSocket

# `tgtadm --lld iscsi --mode account --op new --user u1 --password p1secret`, as written
# to /var/run/tgtd/socket.N by tgt 1.0.85 (strace -e write): header, then parameters.
TGTADM_ACCOUNT_NEW = (
    b"\x07\x00\x00\x00" b"\x00\x00\x00\x00" + b"iscsi".ljust(64, b"\x00")
    + b"\x92\x00\x00\x00" b"\xff\xff\xff\xff" + b"\x00" * 8 + b"\xff" * 8 + b"\x00" * 24
    + b"user=u1,password=p1secret\x00")
# `tgtadm --lld iscsi --op bind --mode account --tid 1 --user u1`
TGTADM_ACCOUNT_BIND = (
    b"\x07\x00\x00\x00" b"\x03\x00\x00\x00" + b"iscsi".ljust(64, b"\x00")
    + b"\x80\x00\x00\x00" b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\xff" * 8 + b"\x00" * 24
    + b"user=u1\x00")


class FakeTgtd:
    """Accepts connections on a unix socket, records each request, answers as told."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[bytes] = []
        self.answers: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def answer(self, code: int = 0, text: bytes = b"", raw: bytes | None = None) -> None:
        self.answers.append(raw if raw is not None
                            else struct.pack("<II", code, 8 + len(text)) + text)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                header = _read(conn, 120)
                length = struct.unpack_from("<I", header, 72)[0]
                self.requests.append(header + _read(conn, length - 120))
                conn.sendall(self.answers.pop(0) if self.answers
                             else struct.pack("<II", 0, 8))

    def close(self) -> None:
        self.server.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def tgtd(tmp_path) -> Iterator[FakeTgtd]:
    daemon = FakeTgtd(str(tmp_path / "socket.4242"))
    yield daemon
    daemon.close()


@pytest.fixture
def client(tgtd) -> TgtdSocket:
    return TgtdSocket(4242, path=tgtd.path, timeout=5)


def test_account_new_sends_exactly_what_tgtadm_sends(client, tgtd) -> None:
    client.new_account("u1", "p1secret")
    assert tgtd.requests == [TGTADM_ACCOUNT_NEW]


def test_account_bind_sends_exactly_what_tgtadm_sends(client, tgtd) -> None:
    client.bind_account(1, "u1")
    assert tgtd.requests == [TGTADM_ACCOUNT_BIND]


def test_the_socket_is_tgtds_filesystem_socket_for_the_control_port() -> None:
    assert tgt_socket.socket_path(0) == "/var/run/tgtd/socket.0"
    assert TgtdSocket(4242).path == "/var/run/tgtd/socket.4242"


def test_a_refusal_is_a_target_error_in_tgtadms_words_without_the_secret(client,
                                                                        tgtd) -> None:
    tgtd.answer(code=Err.USER_EXIST)
    with pytest.raises(TgtdRequestError) as caught:
        client.new_account("u1", "p1secret")
    assert isinstance(caught.value, exception.TargetError)
    assert caught.value.code == Err.USER_EXIST and not caught.value.denied
    assert "this account already exists" in str(caught.value)
    assert "p1secret" not in str(caught.value) and "p1secret" not in repr(caught.value)


def test_unknown_answer_codes_are_reported_by_number(client, tgtd) -> None:
    tgtd.answer(code=99)
    with pytest.raises(TgtdRequestError, match="unknown tgtadm_errno 99"):
        client.delete_account("u1")


def test_show_returns_tgtds_text(client, tgtd) -> None:
    tgtd.answer(text=b"Target 1: iqn.x\n\x00")
    assert client.request(Mode.TARGET, Op.SHOW, {}) == "Target 1: iqn.x\n"


@pytest.mark.parametrize("raw", [struct.pack("<II", 0, 4), struct.pack("<II", 0, 100),
                                 b"\x00\x00"])
def test_malformed_or_cut_answers_are_errors(client, tgtd, raw) -> None:
    tgtd.answer(raw=raw)
    with pytest.raises(TgtdRequestError):
        client.new_account("u1", "p1secret")


def test_a_missing_tgtd_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(TgtdRequestError, match="tgtd is not running") as caught:
        TgtdSocket(path=str(tmp_path / "nothing")).new_account("u1", "p1secret")
    assert caught.value.code is None and not caught.value.denied


def test_a_socket_this_user_may_not_open_is_reported_as_denied(client, monkeypatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(TgtdRequestError, match="no permission") as caught:
        client.new_account("u1", "p1secret")
    assert caught.value.denied


@pytest.mark.parametrize("user, password", [("u1", "a,b"), ("u1", "a=b"), ("u,1", "p"),
                                            ("u1", "p\x00")])
def test_values_tgtd_would_split_differently_are_refused_before_sending(
        client, tgtd, user, password) -> None:
    with pytest.raises(exception.InvalidInput):
        client.new_account(user, password)
    assert tgtd.requests == []


def test_errors_survive_the_rpc_round_trip() -> None:
    import pickle
    error = TgtdRequestError(request="account new", code=14, reason="exists")
    again = pickle.loads(pickle.dumps(error))
    assert again == error and again.code == 14
