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


# What tgt 1.0.85's tgtd answers to `tgtadm --op show --mode sys` (abridged).
SYSTEM_REPORT = (b"System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n"
                 b"    iser: error\nBacking stores:\n    rdwr (bsoflags sync:direct)\n\x00")


class FakeTgtd:
    """Accepts connections on a unix socket, records each request, answers as told.
    System report requests (the client's layout probe) are answered from
    ``system_report`` and recorded in ``probes``, apart from the rest."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[bytes] = []
        self.answers: list[bytes] = []
        self.probes: list[bytes] = []
        self.system_report = struct.pack("<II", 0, 8 + len(SYSTEM_REPORT)) + SYSTEM_REPORT
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
                request = header + _read(conn, length - 120)
                if struct.unpack_from("<II", header) == (Mode.SYSTEM, Op.SHOW):
                    self.probes.append(request)
                    conn.sendall(self.system_report)
                    continue
                self.requests.append(request)
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


def test_a_request_for_a_target_sends_its_tid_where_tgtadm_does(client, tgtd) -> None:
    client.request(Mode.ACCOUNT, Op.BIND, {"user": "u1"}, tid=1)
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


# -- the layout probe: a tgtd of another release is never sent a secret ---------------

# `tgtadm --lld iscsi --op show --mode sys`, as tgtadm 1.0.85 writes it (strace -e write):
# the bare 120-byte header, no parameters.
TGTADM_SHOW_SYSTEM = (
    b"\x00\x00\x00\x00" b"\x02\x00\x00\x00" + b"iscsi".ljust(64, b"\x00")
    + b"\x78\x00\x00\x00" b"\xff\xff\xff\xff" + b"\x00" * 8 + b"\xff" * 8 + b"\x00" * 24)


def test_the_first_secret_is_sent_only_after_tgtd_answered_the_probe_once(
        client, tgtd) -> None:
    client.new_account("u1", "p1secret")
    client.new_account("u1", "p1secret")
    assert tgtd.probes == [TGTADM_SHOW_SYSTEM]  # once per client, before the first
    assert tgtd.requests == [TGTADM_ACCOUNT_NEW, TGTADM_ACCOUNT_NEW]


@pytest.mark.parametrize("answer", [
    struct.pack("<II", Err.INVALID_REQUEST, 8),          # refused the request
    struct.pack("<II", 0, 8 + 6) + b"Hello\x00",          # answered something else
    b"\x00\x00",                                          # cut short
], ids=["refused", "other-report", "cut-short"])
def test_a_tgtd_that_answers_the_probe_otherwise_gets_no_secret_and_one_warning(
        client, tgtd, answer, caplog) -> None:
    tgtd.system_report = answer
    for _ in range(2):
        with pytest.raises(TgtdRequestError) as caught:
            client.new_account("u1", "p1secret")
        assert caught.value.denied  # the target helper falls back to tgtadm
        assert "tgt 1.0.85" in str(caught.value) and "p1secret" not in str(caught.value)
    assert tgtd.requests == []  # the secret never went to that tgtd
    assert len(tgtd.probes) == 1
    warnings = [r for r in caught_records(caplog) if "tgtadm instead" in r]
    assert len(warnings) == 1


def caught_records(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "volmgr.volume.targets.tgt_socket"]


def test_a_tgtd_that_is_not_running_is_not_judged_by_the_probe(tmp_path) -> None:
    client = TgtdSocket(4242, path=str(tmp_path / "nothing-here"), timeout=1)
    with pytest.raises(TgtdRequestError, match="tgtd is not running") as caught:
        client.new_account("u1", "p1secret")
    assert not caught.value.denied
    assert client.layout_problem() == ""


def test_the_target_helper_creates_the_account_with_tgtadm_when_the_probe_fails(
        conf, tgtd) -> None:
    from tests.unit.scripted import ScriptedExecutor
    from volmgr.volume.targets import base
    from volmgr.volume.targets.tgt import TgtAdm

    scripted = ScriptedExecutor()
    helper = TgtAdm(conf, scripted)
    helper.tgtd = TgtdSocket(4242, path=tgtd.path, timeout=5)
    tgtd.system_report = struct.pack("<II", Err.INVALID_REQUEST, 8)
    scripted.expect(None).expect(None)  # tgtadm: delete a leftover account, then new
    helper._create_account(base.Chap("u1", "p1secretp1secret"))
    scripted.assert_done()
    assert tgtd.requests == []
    assert "--password" in scripted.argvs[1] and "u1" in scripted.argvs[1]
