"""Hostile strings through every field and path parameter of
both faces, on PostgreSQL, MariaDB and SQLite.

One app per backend (each over its own scratch database, one volume host, a recording
RPC client) receives exactly the same requests in the same order. Each request carries
one generated string in one place: a path parameter of any route the router knows
(generic, so routes added later are covered too), a query parameter of the list
routes, a field of a create, snapshot, attach or action body (JSON, and XML for the
Compute 1.1 face), a metadata key or value, the token's user or project, or a header.
The strings include NUL, lone surrogates, every control character, U+FFFE/U+FFFF,
multi-byte and four-byte characters and values longer than their columns.

For every request: no backend answers 5xx, all three answer the same status, and every
XML answer parses.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
import webob
from defusedxml import ElementTree as SafeET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr.api.app import build_app
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod

QUOTA = {"volumes": 100000, "gigabytes": 10000000, "snapshots": 100000}

#: Strings every target receives (a deterministic sweep before the generated ones).
SWEEP = [
    "\x00", "a\x00b", "\x01", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "a\ud800",
    "\udfff", "\ufffe", "\uffff", "a" * 37, "a" * 256, "\u00e9" * 256, "\U0001F600" * 3,
    "", "%00", "<x/>&amp;'\"",
]
#: Path parameters all meet the same code: fewer strings keep the sweep short.
ROUTE_SWEEP = ["\x00", "\x01", "a\ud800", "\ufffe", "a" * 37, "a" * 256, "\U0001F600" * 3,
               "", "%00"]
#: Every control character, each on its own, through one place of each kind.
CONTROLS = [chr(code) for code in range(32)] + ["\x7f"]
CONTROL_PLACES = ("v3 create name", "seed create metadata key", "seed XML create "
                  "display_name", "query /v3/p1/volumes/detail?name", "token user",
                  "header X-Roles")

POOL = concurrent.futures.ThreadPoolExecutor(3)

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclasses.dataclass
class Backend:
    name: str
    db: Database
    app: Any
    volume_id: str
    snapshot_id: str
    heartbeat: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(frozen=True)
class Sent:
    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    token: str = h.TOKEN


#: A place for a string: (a label, how to build the request for one backend).
Target = tuple[str, Callable[[str, Backend], Sent]]


def _path_part(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def _header(text: str) -> str:
    # What a WSGI server hands on: the header's bytes as latin-1 text.
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _xml_attr(text: str) -> str:
    # Characters a document cannot hold literally go in as character references,
    # which the parser then refuses: what an XML client would send.
    return _XML_FORBIDDEN.sub(lambda m: f"&#{ord(m.group())};", quoteattr(text)[1:-1])


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _fill(name: str, backend: Backend) -> str:
    return {"project_id": "p1", "volume_id": backend.volume_id,
            "snapshot_id": backend.snapshot_id, "server_id": "srv-prop",
            "alias": "os-volumes"}.get(name, "x")


def route_targets(app: Any) -> list[Target]:
    """Every path parameter of every route the app serves (GET/DELETE/POST with an
    empty object: the state must not depend on which string came first)."""
    targets: list[Target] = []
    for route in app.router.routes:
        if route.pattern.startswith("/v3/") and "{project_id}" not in route.pattern:
            continue  # the same handler as its /v3/{project_id} twin
        for param in re.findall(r"\{(\w+)\}", route.pattern):
            def make(text: str, backend: Backend, route: Any = route,
                     param: str = param) -> Sent:
                path = re.sub(r"\{(\w+)\}", lambda m: _path_part(text) if m.group(1) == param
                              else _fill(m.group(1), backend), route.pattern)
                if route.method in ("POST", "PUT"):
                    return Sent(route.method, path, b"{}")
                # Deleting the seeded volume would change what later requests see.
                return Sent("GET" if route.method == "DELETE" else route.method, path)
            targets.append((f"{route.method} {route.pattern} {{{param}}}", make))
    return targets


def field_targets() -> list[Target]:
    targets: list[Target] = []
    for face, path, names in (
            ("v3", "/v3/p1/volumes", ("name", "description", "display_name",
                                      "display_description", "availability_zone",
                                      "volume_type", "snapshot_id")),
            ("seed", "/v1.1/p1/os-volumes", ("display_name", "display_description",
                                            "availability_zone", "volume_type",
                                            "snapshot_id"))):
        for name in names:
            targets.append((f"{face} create {name}",
                            lambda t, b, path=path, name=name: Sent(
                                "POST", path, _json({"volume": {"size": 1, name: t}}))))
        targets.append((f"{face} create metadata value", lambda t, b, path=path: Sent(
            "POST", path, _json({"volume": {"size": 1, "metadata": {"k": t}}}))))
        targets.append((f"{face} create metadata key", lambda t, b, path=path: Sent(
            "POST", path, _json({"volume": {"size": 1, "metadata": {t or "k": "v"}}}))))
    for name in ("display_name", "display_description", "availability_zone"):
        targets.append((f"seed XML create {name}", lambda t, b, name=name: Sent(
            "POST", "/v1.1/p1/os-volumes",
            f'<volume size="1" {name}="{_xml_attr(t)}"/>'.encode("utf-8", "surrogatepass"),
            "application/xml", (("Accept", "application/xml"),))))
    targets.append(("seed XML metadata", lambda t, b: Sent(
        "POST", "/v1.1/p1/os-volumes",
        (f'<volume size="1"><metadata><meta key="{_xml_attr(t)}">{_xml_attr(t)}</meta>'
         f"</metadata></volume>").encode("utf-8", "surrogatepass"),
        "application/xml", (("Accept", "application/xml"),))))
    for name in ("name", "description", "display_name", "display_description"):
        targets.append((f"v3 snapshot {name}", lambda t, b, name=name: Sent(
            "POST", "/v3/p1/snapshots",
            _json({"snapshot": {"volume_id": b.volume_id, name: t}}))))
    targets.append(("v3 snapshot volume_id", lambda t, b: Sent(
        "POST", "/v3/p1/snapshots", _json({"snapshot": {"volume_id": t}}))))
    targets.append(("v3 snapshot metadata", lambda t, b: Sent(
        "POST", "/v3/p1/snapshots",
        _json({"snapshot": {"volume_id": b.volume_id, "metadata": {t or "k": t}}}))))
    attach = "/v1.1/p1/servers/srv-prop/os-volume_attachments"
    # A device that is never valid keeps every attach from succeeding (state stays).
    for where in ("volumeId", "device", "initiator", "host"):
        def body(t: str, b: Backend, where: str = where) -> Sent:
            attachment: dict[str, Any] = {"volumeId": b.volume_id, "device": "vdb"}
            if where in ("volumeId", "device"):
                attachment[where] = t
            else:
                attachment["connector"] = {where: t}
            return Sent("POST", attach, _json({"volumeAttachment": attachment}))
        targets.append((f"seed attach {where}", body))
    targets.append(("v3 action name", lambda t, b: Sent(
        "POST", f"/v3/p1/volumes/{b.volume_id}/action", _json({t: {}}))))
    targets.append(("v3 os-extend new_size", lambda t, b: Sent(
        "POST", f"/v3/p1/volumes/{b.volume_id}/action",
        _json({"os-extend": {"new_size": t}}))))
    for path in ("/v3/p1/volumes/detail", "/v3/p1/snapshots", "/v1.1/p1/os-volumes/detail"):
        for name in ("name", "status", "marker", "volume_id", "limit", "offset",
                     "all_tenants", "sort", "metadata"):
            targets.append((f"query {path}?{name}", lambda t, b, path=path, name=name: Sent(
                "GET", f"{path}?{name}={_path_part(t)}")))
        targets.append((f"query {path} name", lambda t, b, path=path: Sent(
            "GET", f"{path}?{_path_part(t) or 'x'}=1")))
    targets.append(("seed XML list", lambda t, b: Sent(
        "GET", f"/v1.1/p1/os-volumes/detail.xml?all_tenants={_path_part(t)}")))
    targets.append(("token project", lambda t, b: Sent(
        "GET", f"/v3/{_path_part(t) or 'x'}/volumes", token=_header("u:" + t))))
    targets.append(("token user", lambda t, b: Sent(
        "POST", "/v3/p1/volumes", _json({"volume": {"size": 1}}), token=_header(t + ":p1"))))
    for header in ("X-Roles", "OpenStack-API-Version", "X-OpenStack-Request-Id",
                   "Accept", "Content-Type"):
        targets.append((f"header {header}", lambda t, b, header=header: Sent(
            "GET", "/v3/p1/volumes/detail", headers=((header, _header(t)),))))
    targets.append(("seed unknown path, XML fault", lambda t, b: Sent(
        "GET", f"/v1.1/p1/{_path_part(t) or 'x'}.xml")))
    return targets


def send(backend: Backend, sent: Sent) -> webob.Response:
    request = webob.Request.blank(sent.path, method=sent.method)
    request.headers["X-Auth-Token"] = sent.token
    if sent.body is not None:
        request.body = sent.body
        request.content_type = sent.content_type
    for name, value in sent.headers:
        request.headers[name] = value
    return request.get_response(backend.app)


def check_everywhere(backends: list[Backend], label: str,
                     make: Callable[[str, Backend], Sent], text: str) -> None:
    for backend in backends:
        if time.monotonic() - backend.heartbeat > 10:
            # The volume host stays up: a host silent for a minute is another answer.
            h.register_host(backend.db, "prop-node", free=1e9)
            backend.heartbeat = time.monotonic()
    # The three backends answer at once (each app is its own process-like island).
    replies = list(POOL.map(lambda backend: send(backend, make(text, backend)), backends))
    answers = {}
    for backend, answer in zip(backends, replies, strict=True):
        where = f"{label} {text!r} on {backend.name}"
        assert answer.status_int < 500, f"{where}: {answer.status} {answer.text[:300]}"
        if answer.content_type == "application/xml":
            SafeET.fromstring(answer.body)  # parses, or the test fails here
        answers[backend.name] = answer.status_int
    assert len(set(answers.values())) == 1, f"{label} {text!r}: {answers}"


def _backend(name: str, url: str, conf: cfg.ConfigOpts) -> Backend:
    db = Database(engine_mod.create_engine(url), quota_limits=QUOTA)
    migration.upgrade(db.engine)
    h.register_host(db, "prop-node", free=1e9)
    app = build_app(conf, db=db, volume_rpcapi=h.RecordingRPC())
    volume = send(Backend(name, db, app, "", ""), Sent(
        "POST", "/v3/p1/volumes", _json({"volume": {"size": 1, "name": "seeded"}})))
    volume_id = volume.json["volume"]["id"]
    h.finish(db, volume_id)
    snapshot = send(Backend(name, db, app, volume_id, ""), Sent(
        "POST", "/v3/p1/snapshots", _json({"snapshot": {"volume_id": volume_id}})))
    return Backend(name, db, app, volume_id, snapshot.json["snapshot"]["id"])


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Backend]]:
    from tests import services
    from tests.conftest import _create_scratch_database, _drop_scratch_database
    from volmgr import config

    services.require_port("PostgreSQL", "127.0.0.1", 5432)
    services.require_port("MariaDB", "127.0.0.1", 3306)
    tmp: Path = tmp_path_factory.mktemp("property")
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    conf.set_override("state_path", str(tmp / "state"))
    name = f"volmgr_prop_{tmp.name[-8:].replace('-', '_')}"
    postgres = _create_scratch_database(services.POSTGRES_ADMIN_URL, name)
    mysql = _create_scratch_database(services.MYSQL_ADMIN_URL, name)
    built = [_backend("sqlite", f"sqlite:///{tmp}/prop.sqlite", conf),
             _backend("postgresql", postgres, conf), _backend("mariadb", mysql, conf)]
    try:
        yield built
    finally:
        for backend in built:
            backend.db.dispose()
        _drop_scratch_database(services.POSTGRES_ADMIN_URL, name)
        _drop_scratch_database(services.MYSQL_ADMIN_URL, name)


def all_targets(backends: list[Backend]) -> list[Target]:
    return route_targets(backends[0].app) + field_targets()


def test_every_place_takes_every_hostile_string_the_same_way_on_every_backend(
        backends: list[Backend]) -> None:
    targets = all_targets(backends)
    assert len(targets) > 80
    places = {label for label, _make in targets}
    assert set(CONTROL_PLACES) <= places
    routes = {label for label, _make in route_targets(backends[0].app)}
    for label, make in targets:
        strings = ROUTE_SWEEP if label in routes else SWEEP
        for text in strings + (CONTROLS if label in CONTROL_PLACES else []):
            check_everywhere(backends, label, make, text)


#: Any code point, surrogates and controls included, in short and long strings.
ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=20),
    st.text(st.characters(exclude_categories=()), min_size=250, max_size=300),
    st.text(st.sampled_from("a\x00\x01\x1f\ud800\ufffe\uffff\u00e9\U0001F600 /%"),
            max_size=40))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_generated_strings_in_generated_places(backends: list[Backend],
                                               data: st.DataObject) -> None:
    label, make = data.draw(st.sampled_from(all_targets(backends)), label="target")
    check_everywhere(backends, label, make, data.draw(ANY_TEXT, label="text"))
