"""The front door: one regression test (or more) per defect it once had.

1. idle and slow connections must not take the API down (the HTTP server buffers whole
   requests before a thread sees them, and times out idle and slow clients);
2. a NUL in an id or a filter is a 400 naming the field, never a database error;
3. a string longer than its column is a 400, on SQLite too (limits from the schema);
4. a lone surrogate anywhere (names, descriptions, metadata) is a 400;
5. an XML body declaring an unknown encoding is a 400;
6. XML answers always parse, whatever is stored; NUL is refused in metadata keys too;
7. a client leaving mid-body is one INFO line, no traceback, no 500;
8. volmgr-all's server: a bare CR cannot smuggle a header, chunked bodies are answered,
   idle connections time out;
9. the server's own errors are fault bodies (JSON or XML), and HEAD works like GET.

Servers here listen on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import io
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import webob
from defusedxml import ElementTree as SafeET
from oslo_config import cfg

from tests.db_reads import newest_attachment
from tests.unit import api_helpers as h
from volmgr import exception
from volmgr.api import input_gate, server
from volmgr.cmd import all as all_in_one
from volmgr.db import Database, models

# -- an HTTP server on 127.0.0.1 -------------------------------------------------------


class Served:
    """``app`` behind volmgr's HTTP server, in a thread, on a free local port."""

    def __init__(self, app: Any, conf: cfg.ConfigOpts) -> None:
        self.listener = server.listen("127.0.0.1", 0)
        self.http = server.HTTPServer(app, [self.listener], conf)
        self.port = self.http.address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.sockets: list[socket.socket] = []

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sockets.append(sock)
        return sock

    def exchange(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send ``data`` on a new connection; everything the server answers until it
        closes the connection or goes quiet for ``timeout``."""
        sock = self.connect()
        sock.sendall(data)
        return read_all(sock, timeout)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.http.close()
        self.thread.join(timeout=5)
        self.listener.close()


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except TimeoutError:
        pass
    return out


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def served(app: Any, conf: cfg.ConfigOpts) -> Iterator[Served]:
    running = Served(app, conf)
    yield running
    running.close()


HEALTH = b"GET /healthcheck HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

# -- 1. idle and slow clients ----------------------------------------------------------


def test_1_idle_and_half_sent_requests_do_not_stop_others_being_answered(
        served: Served, conf: cfg.ConfigOpts) -> None:
    assert conf.api.threads == 1  # the default: one request thread
    for _ in range(50):
        served.connect()  # idle: not a byte
    for _ in range(20):
        served.connect().sendall(b"GET /healthcheck HTTP/1.1\r\nHost: t\r\n")
    for _ in range(20):
        served.connect().sendall(b"POST /v3/p1/volumes HTTP/1.1\r\nHost: t\r\n"
                                 b"Content-Length: 500\r\n\r\n{\"volume\"")
    started = time.monotonic()
    status, _headers, body = split(served.exchange(HEALTH))
    assert (status, json.loads(body)) == (200, {"status": "OK"})
    assert time.monotonic() - started < 2


def test_1_idle_and_slow_connections_are_timed_out(
        app: Any, conf: cfg.ConfigOpts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "CLIENT_TIMEOUT", 1)
    monkeypatch.setattr(server, "REQUEST_DEADLINE", 3)
    monkeypatch.setattr(server, "CLEANUP_INTERVAL", 1)
    running = Served(app, conf)
    try:
        idle = running.connect()
        trickle = running.connect()
        began = time.monotonic()
        trickle.sendall(b"G")
        assert closed_by_server(idle, within=4)
        still_open = True
        for byte in b"ET /healthcheck HTTP/1.1\r\nHost: t\r\nX-Slow: 123456789":
            time.sleep(0.25)  # never silent for CLIENT_TIMEOUT, but never finished
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                still_open = False
                break
            if closed_by_server_nowait(trickle):
                still_open = False
                break
        assert not still_open or closed_by_server(trickle, within=4)
        assert time.monotonic() - began < 3 + 4 + 1
    finally:
        running.close()


def closed_by_server_nowait(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


# -- 2. NUL ----------------------------------------------------------------------------


@pytest.mark.parametrize("path,field", [
    ("/v3/p1/volumes/x%00", "volume_id"),
    ("/v3/p1/volumes/detail?name=%00", "name"),
    ("/v3/p1/snapshots?volume_id=%00", "volume_id"),
    ("/v1.1/p1/servers/%00/os-volume_attachments", "server_id"),
    ("/v1.1/p1/os-volumes/a%00b", "volume_id"),
    ("/v3/p1/snapshots/%00", "snapshot_id"),
])
def test_2_a_nul_in_an_id_or_a_filter_is_a_400_naming_the_field(
        app: Any, path: str, field: str) -> None:
    answer = h.call(app, "GET", path)
    assert answer.status_int == 400, answer.text
    message = answer.json["badRequest"]["message"]
    assert f"'{field}'" in message and "NUL" in message


# -- 3. longer than the column ---------------------------------------------------------


def test_3_limits_come_from_the_schema() -> None:
    assert input_gate.param_limit("server_id") == \
        models.VolumeAttachment.__table__.c.server_id.type.length
    assert input_gate.param_limit("volume_id") == models.Volume.__table__.c.id.type.length
    assert input_gate.column_length(models.Volume.project_id) == 255


@pytest.mark.parametrize("token,field", [("u:" + "p" * 300, "project_id"),
                                         ("u" * 300 + ":p1", "user_id")])
def test_3_a_token_naming_a_too_long_project_or_user_is_a_400(
        app: Any, db: Database, token: str, field: str) -> None:
    project = token.partition(":")[2]
    answer = h.call(app, "POST", f"/v3/{project}/volumes", {"volume": {"size": 1}},
                    token=token)
    assert answer.status_int == 400, answer.text
    assert f"token {field}" in answer.json["badRequest"]["message"]
    assert db.volume_list(None) == []  # SQLite would have stored it


def test_3_a_300_character_server_id_in_the_attach_url_is_a_400(app: Any,
                                                                   db: Database) -> None:
    volume = h.call(app, "POST", "/v1.1/p1/os-volumes",
                    {"volume": {"size": 1}}).json["volume"]["id"]
    h.finish(db, volume)
    answer = h.call(app, "POST", f"/v1.1/p1/servers/{'s' * 300}/os-volume_attachments",
                    {"volumeAttachment": {"volumeId": volume, "device": "/dev/vdb"}})
    assert answer.status_int == 400, answer.text
    assert "'server_id' is longer than 255" in answer.json["badRequest"]["message"]
    assert newest_attachment(db, volume) is None


def test_3_a_name_longer_than_its_column_is_a_400(app: Any) -> None:
    limit = input_gate.column_length(models.Volume.display_name)
    assert limit is not None
    ok = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1, "name": "n" * limit}})
    assert ok.status_int == 202
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "name": "n" * (limit + 1)}})
    assert answer.status_int == 400
    assert f"longer than {limit}" in answer.json["badRequest"]["message"]


def test_3_any_write_of_a_string_longer_than_its_column_is_a_400(app: Any,
                                                                 db: Database) -> None:
    # Whatever controller wrote it: the database boundary checks every INSERT/UPDATE.
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, display_name="ok")
    with pytest.raises(exception.InvalidInput, match=r"volumes\.display_name"):
        db.volume_update(volume.id, {"display_name": "y" * 256})
    with pytest.raises(exception.InvalidInput, match=r"volumes\.availability_zone"):
        db.volume_create(project_id="p1", user_id="u1", size=1,
                         availability_zone="z" * 256)
    assert db.volume_get(volume.id).display_name == "ok"


# -- 4. lone surrogates ----------------------------------------------------------------

SURROGATE = "a\ud800"


@pytest.mark.parametrize("path,body,field", [
    ("/v3/p1/volumes", {"volume": {"size": 1, "name": SURROGATE}}, "volume.name"),
    ("/v3/p1/volumes", {"volume": {"size": 1, "description": SURROGATE}},
     "volume.description"),
    ("/v3/p1/volumes", {"volume": {"size": 1, "metadata": {"k": SURROGATE}}},
     "volume.metadata.k"),
    ("/v3/p1/volumes", {"volume": {"size": 1, "metadata": {SURROGATE: "v"}}},
     "volume.metadata key"),
    ("/v1.1/p1/os-volumes", {"volume": {"size": 1, "display_name": SURROGATE}},
     "volume.display_name"),
    ("/v1.1/p1/os-volumes", {"volume": {"size": 1, "display_description": SURROGATE}},
     "volume.display_description"),
    ("/v3/p1/snapshots", {"snapshot": {"volume_id": "0" * 36, "name": SURROGATE}},
     "snapshot.name"),
])
def test_4_a_lone_surrogate_is_a_400_naming_the_field(app: Any, db: Database, path: str,
                                                      body: Any, field: str) -> None:
    # Raw JSON: json.dumps escapes the surrogate as \ud800, which decodes to it again.
    answer = h.call(app, "POST", path, raw=json.dumps(body).encode())
    assert answer.status_int == 400, answer.text
    message = answer.json["badRequest"]["message"]
    assert f"'{field}'" in message and "surrogate" in message
    assert db.volume_list(None) == []


# -- 5. unknown XML encoding -----------------------------------------------------------


def test_5_an_xml_body_in_an_unknown_encoding_is_a_400(app: Any) -> None:
    body = b'<?xml version="1.0" encoding="x-bogus"?><volume size="1"/>'
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", raw=body,
                    content_type="application/xml")
    assert answer.status_int == 400, answer.text
    assert "malformed XML" in answer.json["badRequest"]["message"]


def test_5_characters_xml_refuses_in_a_body_are_refused_by_the_gate_too(app: Any) -> None:
    body = '<volume size="1" display_name="a&#x85;b"><metadata><meta key="k">\ufffd</meta>' \
           '</metadata></volume>'
    ok = h.call(app, "POST", "/v1.1/p1/os-volumes", raw=body.encode(),
                content_type="application/xml")
    assert ok.status_int == 200, ok.text
    bad = h.call(app, "POST", "/v1.1/p1/os-volumes",
                 raw=b'<volume size="1" display_name="a&#1;"/>',
                 content_type="application/xml")
    assert bad.status_int == 400


# -- 6. XML answers always parse -------------------------------------------------------

STORED_BADLY = "x\x00\x01\x0b\x1f\ufffe\uffffy"
#: JSON columns keep even a lone surrogate (stored as the escape ``\ud800``).
IN_JSON = STORED_BADLY + "\ud800"


def test_6_xml_listings_parse_whatever_was_stored(app: Any, db: Database) -> None:
    # Rows written before the input gate existed (straight into the database).
    db.volume_create(project_id="p2", user_id="u2", size=1, display_name=STORED_BADLY,
                     display_description=STORED_BADLY, metadata={IN_JSON: IN_JSON})
    db.volume_create(project_id="p1", user_id="u1", size=1, display_name="fine")
    names: dict[str, set[str | None]] = {}
    for path in ("/v1.1/p1/os-volumes/detail?all_tenants=1", "/v1.1/p1/os-volumes.xml"):
        answer = h.call(app, "GET", path, headers={"Accept": "application/xml",
                                                   "X-Roles": "admin"})
        assert answer.status_int == 200
        root = SafeET.fromstring(answer.body)  # parses
        names[path] = {volume.get("displayName") for volume in root}
    everyone = names["/v1.1/p1/os-volumes/detail?all_tenants=1"]
    assert "fine" in everyone
    assert "x\ufffd\ufffd\ufffd\ufffd\ufffd\ufffdy" in everyone  # one tenant's name
    assert names["/v1.1/p1/os-volumes.xml"] == {"fine"}


def test_6_an_xml_fault_echoing_a_url_with_control_characters_parses(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/nothing%01%0b%1f.xml")
    assert answer.status_int == 404
    fault = SafeET.fromstring(answer.body)
    assert fault.get("code") == "404"


def test_6_a_nul_is_refused_in_metadata_keys_as_in_values(app: Any) -> None:
    for metadata in ({"k\x00": "v"}, {"k": "v\x00"}):
        answer = h.call(app, "POST", "/v1.1/p1/os-volumes",
                        {"volume": {"size": 1, "metadata": metadata}})
        assert answer.status_int == 400, metadata
        assert "NUL" in answer.json["badRequest"]["message"]


def test_6_the_serializer_itself_never_builds_a_broken_document() -> None:
    from volmgr.api import seed_xml, wsgi
    body = {"volume": {"id": "i", "displayName": IN_JSON,
                       "metadata": {IN_JSON: IN_JSON},
                       "attachments": [{"id": "a", "connection_info": {
                           "bad key\x01": {"1x": IN_JSON}}}]}}
    rendered = wsgi.render(None, wsgi.ApiResponse(200, body), wsgi.XML, seed_xml.serialize)
    SafeET.fromstring(rendered.body)


def test_6_json_answers_carry_whatever_the_standard_library_would() -> None:
    """JSON answers are encoded by orjson for speed; what it refuses on its own (an
    integer beyond 64 bits, a non-string key, a lone surrogate in old rows) still
    renders, as the standard library renders it."""
    from volmgr.api import wsgi
    body = {"quota_set": {"gigabytes": 2**70, "id": "p"}, "by_size": {1: "one"},
            "name": IN_JSON}
    rendered = wsgi.render(None, wsgi.ApiResponse(200, body), wsgi.JSON, None)
    assert rendered.content_type == "application/json"
    assert json.loads(rendered.body) == {"quota_set": {"gigabytes": 2**70, "id": "p"},
                                         "by_size": {"1": "one"}, "name": IN_JSON}

# -- 7. the client goes away mid-body --------------------------------------------------


def test_7_a_client_leaving_mid_body_is_one_info_line_without_a_traceback(
        app: Any, caplog: pytest.LogCaptureFixture) -> None:
    request = webob.Request.blank("/v3/p1/volumes", method="POST")
    request.headers["X-Auth-Token"] = h.TOKEN
    request.content_type = "application/json"
    request.environ["CONTENT_LENGTH"] = "100"
    request.environ["wsgi.input"] = io.BytesIO(b'{"volume": ')  # then the client left
    with caplog.at_level(logging.DEBUG):
        answer = request.get_response(app)
    assert answer.status_int < 500
    records = [r for r in caplog.records if r.name.startswith("volmgr")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.INFO and records[0].exc_info is None
    assert "went away" in records[0].getMessage()


def test_7_the_server_logs_a_client_leaving_mid_body_once_at_info(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        sock = served.connect()
        sock.sendall(b"POST /v3/p1/volumes HTTP/1.1\r\nHost: t\r\nX-Auth-Token: u1:p1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"vo")
        time.sleep(0.3)
        sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                "went away" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1
    assert gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- 8. volmgr-all's server ------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[all_in_one.AllInOne]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    conf_file = tmp_path / "all.conf"
    conf_file.write_text("[api]\nbind_port = 0\n[volume]\ntarget_helper = none\n")
    conf = all_in_one.build_conf(["--config-file", str(conf_file)])
    running = all_in_one.AllInOne(conf, server.listen("127.0.0.1", 0))
    running.start()
    yield running
    running.stop()


def _to(node: all_in_one.AllInOne, data: bytes) -> bytes:
    port = int(node.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        return read_all(sock, 10)


def test_8_volmgr_all_serves_with_the_same_server_as_volmgr_api(
        node: all_in_one.AllInOne) -> None:
    assert isinstance(node.httpd, server.HTTPServer)


def test_8_a_bare_cr_in_a_header_cannot_make_an_admin(node: all_in_one.AllInOne) -> None:
    status, headers, body = split(_to(node, (
        b"GET /v3/p1/volumes?all_tenants=1 HTTP/1.1\r\nHost: t\r\n"
        b"X-Auth-Token: u:p1\rX-Roles: admin\r\nConnection: close\r\n\r\n")))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "badRequest" in json.loads(body)


def test_8_a_chunked_body_is_answered(node: all_in_one.AllInOne) -> None:
    payload = b'{"volume": {"size": 1, "name": "chunky"}}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in (payload[:10], payload[10:])) + b"0\r\n\r\n"
    status, _headers, body = split(_to(node, (
        b"POST /v3/p1/volumes HTTP/1.1\r\nHost: t\r\nX-Auth-Token: u:p1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked)))
    assert status == 202, body
    assert json.loads(body)["volume"]["name"] == "chunky"


def test_8_volmgr_all_keeps_answering_while_clients_sit_idle(
        node: all_in_one.AllInOne) -> None:
    port = int(node.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    try:
        started = time.monotonic()
        assert split(_to(node, HEALTH))[0] == 200
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()


# -- 9. the server's own errors; HEAD --------------------------------------------------


def test_9_a_malformed_request_is_a_json_fault(served: Served) -> None:
    status, headers, body = split(served.exchange(
        b"GET /v3/p1/volumes HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"))
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["badRequest"]["code"] == 400


def test_9_oversized_headers_are_a_431_fault_in_xml_when_asked(served: Served) -> None:
    sock = served.connect()
    sock.sendall(b"GET /v1.1/p1/os-volumes HTTP/1.1\r\nHost: t\r\n"
                 b"Accept: application/xml\r\nX-Big: ")
    # In small pieces until the server answers: it reads each before the next comes
    # (bytes it never read would make the kernel reset the connection).
    sent = 0
    while sent <= server.MAX_HEADER_BYTES and not select.select([sock], [], [], 0.02)[0]:
        sock.sendall(b"a" * 2048)
        sent += 2048
    status, headers, body = split(read_all(sock, 5))
    assert status == 431
    assert headers["content-type"].startswith("application/xml")
    fault = SafeET.fromstring(body)
    assert fault.tag.endswith("requestHeaderFieldsTooLarge") and fault.get("code") == "431"


def test_9_a_body_over_the_limit_is_a_413_fault_naming_the_limit(
        served: Served, conf: cfg.ConfigOpts) -> None:
    limit = conf.api.max_request_body_size
    status, _headers, body = split(served.exchange(
        b"POST /v3/p1/volumes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (limit + 1)))
    assert status == 413
    assert f"larger than {limit} bytes" in json.loads(body)["requestEntityTooLarge"]["message"]


def test_9_an_unknown_transfer_coding_is_a_501_fault(served: Served) -> None:
    status, _headers, body = split(served.exchange(
        b"POST /v3/p1/volumes HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"))
    assert status == 501 and json.loads(body)["notImplemented"]["code"] == 501


def test_9_a_token_in_a_malformed_header_is_neither_echoed_nor_logged(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = served.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n"
                                 b"X-Auth-Token: secret-token\rX: y\r\n\r\n")
    assert split(answer)[0] == 400
    assert b"secret-token" not in answer
    assert "secret-token" not in caplog.text


@pytest.mark.parametrize("path", ["/healthcheck", "/v3/p1/volumes", "/v1.1/p1/os-volumes",
                                  "/v1.1/p1/extensions", "/"])
def test_9_head_answers_wherever_get_does(app: Any, path: str) -> None:
    get = h.call(app, "GET", path)
    head = h.call(app, "HEAD", path)
    assert head.status_int == get.status_int
    assert head.body == b""


def test_9_head_over_http_has_the_get_headers_and_no_body(served: Served) -> None:
    status, headers, body = split(served.exchange(
        b"HEAD /healthcheck HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert status == 200 and body == b""
    assert headers["content-type"] == "application/json"


def test_9_405_lists_head_with_get(app: Any) -> None:
    answer = h.call(app, "PUT", "/healthcheck")
    assert answer.status_int == 405
    assert "HEAD" in answer.json["badMethod"]["message"]


def test_the_access_log_is_one_line_per_request_without_headers(
        app: Any, conf: cfg.ConfigOpts, caplog: pytest.LogCaptureFixture) -> None:
    conf.set_override("access_log", True, group="api")
    running = Served(app, conf)
    try:
        with caplog.at_level(logging.INFO, logger="volmgr.api.access"):
            answer = running.exchange(b"GET /v3/p1/volumes%0a HTTP/1.1\r\nHost: t\r\n"
                                      b"X-Auth-Token: u1:p1\r\nConnection: close\r\n\r\n")
    finally:
        running.close()
    assert split(answer)[0] == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "volmgr.api.access"]
    assert len(lines) == 1
    assert lines[0].startswith("127.0.0.1 GET /v3/p1/volumes\\n 404 ")
    assert "u1:p1" not in lines[0]


def test_a_local_tls_proxy_may_say_the_scheme(served: Served) -> None:
    status, _headers, body = split(served.exchange(
        b"GET /v3 HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Proto: https\r\n"
        b"Connection: close\r\n\r\n"))
    assert status == 200
    links = json.loads(body)["version"]["links"]
    assert {"rel": "self", "href": "https://api.example/v3/"} in links


# -- noauth says what it trusts --------------------------------------------------------


def test_noauth_warns_once_at_start_up(conf: cfg.ConfigOpts,
                                       caplog: pytest.LogCaptureFixture) -> None:
    from volmgr.api import auth
    with caplog.at_level(logging.WARNING):
        auth.warn_if_noauth(conf)
        conf.set_override("auth_strategy", "keystone")
        auth.warn_if_noauth(conf)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "X-Roles: admin" in warnings[0].getMessage()


def test_the_api_servers_connection_limit_fits_its_descriptors() -> None:
    limit = server.connection_limit()
    import resource
    assert limit <= resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert limit >= 50
