"""The first hour with volmgr, for a new user and a new maintainer: one specification
(or more) per defect a newcomer met, grouped by what the newcomer was doing.

Everything here runs without root, services or network (SQLite, the in-process bus,
fakes), so ``.tox/py3/bin/pytest -q tests/unit`` stays a one-minute command.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


# -- the repository stands alone (docs/architecture.md) ---------------------------------

def _tracked_files() -> list[str]:
    """The repository's files: git's list in a checkout, else a walk of the tree."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
        return [name for name in listed if name and (ROOT / name).is_file()]
    skip = {".git", ".tox", ".venv", "build", "dist", "__pycache__", ".mypy_cache"}
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        found.extend(os.path.relpath(os.path.join(folder, n), ROOT) for n in names)
    return found


def _texts() -> dict[str, str]:
    texts = {}
    for name in _tracked_files():
        try:
            texts[name] = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
    return texts


# Documents that lived outside the repository, and references to an issue tracker the
# repository does not carry. Spelled in pieces so this file does not name them itself.
_OUTSIDE = re.compile("|".join([
    r"\bDESIGN" + r"\.md\b", r"\bNOTES" + r"\.md\b", r"(?<![\w.-])shared" + "/",
    r"\b[Ii]ssue" + r" #?\d+", "\u00a7"]))
_MARKDOWN = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
_REPO_PATH = re.compile(r"(?<![\w/.-])((?:docs|etc|tools|tests|volmgr)/[\w./-]*\.[\w-]+)")


def test_no_file_names_a_document_outside_the_repository() -> None:
    found = [f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
             for name, text in _texts().items() for match in _OUTSIDE.finditer(text)]
    assert found == [], ("these point at documents the repository does not hold; "
                         "point at a file under docs/ instead:\n" + "\n".join(found))


def test_every_document_or_file_a_file_names_exists() -> None:
    texts = _texts()
    tracked = set(_tracked_files())
    folders = {str(pathlib.PurePosixPath(name).parent) for name in tracked}
    folders |= {str(parent) for f in list(folders) for parent in pathlib.PurePosixPath(f).parents}
    missing = []
    for name, text in texts.items():
        for pattern in (_MARKDOWN, _REPO_PATH):
            for match in pattern.finditer(text):
                reference = match.group(1).rstrip(".")
                candidates = (reference,
                              os.path.normpath(os.path.join(os.path.dirname(name), reference)))
                if not any(c in tracked or c.rstrip("/") in folders for c in candidates):
                    missing.append(f"{name}: {reference}")
    assert sorted(set(missing)) == []


def test_the_architecture_document_covers_what_a_new_maintainer_asks() -> None:
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    for heading in ("## Layers, and who may import whom", "## The life of a create",
                    "## The state machine", "## Delivery and recovery: what is promised"):
        assert heading in text
    for source in ("volmgr/volume/executor.py", "volmgr/volume/thread_pool.py", "seed face"):
        assert source in text  # the words that could mislead are defined there


# Which package may import which (docs/architecture.md, "Layers"): a package not
# listed may not be imported; "top" is the top-level modules (exception, states, ...).
_MAY_IMPORT = {
    "top": {"top"},
    "db": {"top", "db"},
    "volume": {"top", "db", "volume"},
    "api": {"top", "db", "api", "volume.rpcapi"},
    "manage": {"top", "db", "volume", "manage"},
    "bench": {"top", "db", "bench"},
    "cmd": {"top", "db", "volume", "api", "manage", "cmd", "bench"},
}
_PACKAGES = ("api", "db", "volume", "manage", "cmd", "bench")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "volmgr":
        return None
    if len(parts) > 1 and parts[1] in _PACKAGES:
        return parts[1]
    return "top"


def _allowed(source: str, target_module: str) -> bool:
    target = _layer(target_module)
    allowed = _MAY_IMPORT[source]
    if target in allowed:
        return True
    return any(target_module == f"volmgr.{entry}" or target_module.startswith(
        f"volmgr.{entry}.") for entry in allowed if "." in entry)


def test_each_layer_imports_only_what_the_architecture_allows() -> None:
    broken = []
    for path in sorted((ROOT / "volmgr").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module == "volmgr.opts":
            continue  # lists every option of every package, for oslo-config-generator
        source = _layer(module)
        assert source is not None
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            broken.extend(f"{module} imports {target}" for target in targets
                          if _layer(target) is not None and not _allowed(source, target))
    assert broken == []


def test_a_manager_registering_every_option_loads_nothing_of_the_api() -> None:
    """``volmgr-volume`` registers every option (``volmgr.opts``); options the API
    owns live in ``volmgr.api.options``, so that loads none of the API's modules (nor
    WebOb, defusedxml, orjson): what the idle manager's memory is made of
    (docs/performance.md)."""
    import subprocess
    import sys
    probe = ("import sys\n"
             "from volmgr import config\n"
             "from volmgr.volume.service import VolumeService\n"
             "import volmgr.cmd.volume\n"
             "config.parse_args([], config.new_conf())\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith("
             "('volmgr.api.', 'webob', 'defusedxml', 'orjson')))))\n")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    assert loaded == ["volmgr.api.options"]


# -- volmgr-all: flags, iSCSI only when asked, the banner, failed start-ups, the demo ----

import socket  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402

from volmgr import exception  # noqa: E402
from volmgr.cmd import all as all_in_one  # noqa: E402


@pytest.fixture
def state_home(tmp_path, monkeypatch) -> pathlib.Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_volmgr_all_leaves_a_tgtd_that_answers_alone_unless_asked(state_home,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(all_in_one, "_tgtd_answers", lambda address, port: True)
    assert all_in_one.build_conf([]).volume.target_helper == "none"
    assert all_in_one.build_conf(["--iscsi"]).volume.target_helper == "tgtadm"


def test_volmgr_all_iscsi_without_a_tgtd_is_one_clear_line(state_home, monkeypatch,
                                                          capsys) -> None:
    monkeypatch.setattr(all_in_one, "_tgtd_answers", lambda address, port: False)
    assert all_in_one.main(["--iscsi"]) == 2
    err = capsys.readouterr().err
    assert "--iscsi: no tgtd answers on 127.0.0.1:3260" in err and "Traceback" not in err


def test_volmgr_all_takes_port_and_state_path_on_the_command_line(state_home) -> None:
    conf = all_in_one.build_conf(["--port", "9876", "--state-path", str(state_home / "s")])
    assert conf.api.bind_port == 9876
    assert conf.state_path == str(state_home / "s")
    assert conf.database.connection == f"sqlite:///{state_home}/s/volmgr.sqlite"


def test_the_banner_gives_cinder_the_microversion_and_volmgr_manage_the_state(
        state_home) -> None:
    conf = all_in_one.build_conf([])
    banner = all_in_one._banner(conf, "http://127.0.0.1:8776")
    cinder = next(line for line in banner.splitlines() if "--os-auth-type noauth" in line)
    assert "--os-volume-api-version 3.0" in cinder
    assert cinder.rstrip().endswith("--os-endpoint http://127.0.0.1:8776/v3 list")
    assert f"volmgr-manage --state-path {conf.state_path} volume list" in banner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _main_in_thread(argv: list[str], timeout: float = 30) -> int | None:
    """Run main(); None if it has not returned within ``timeout`` (it hangs)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(all_in_one.main(argv)),
                              daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else None


def test_a_manager_that_cannot_start_is_one_line_and_no_hang(state_home, monkeypatch,
                                                             capsys) -> None:
    def broken_start(self: object) -> None:
        raise exception.BackendError(reason="the backend is on fire")

    monkeypatch.setattr(all_in_one.VolumeService, "start", broken_start)
    port = _free_port()
    conf_file = state_home / "volmgr.conf"
    conf_file.write_text(f"[api]\nbind_port = {port}\n")
    assert _main_in_thread(["--demo", "--config-file", str(conf_file)]) == 1
    err = capsys.readouterr().err
    assert "volmgr-all: cannot start the volume manager:" in err
    assert "the backend is on fire" in err and "Traceback" not in err
    with socket.socket() as again:  # what it had started is released: the port is free
        again.bind(("127.0.0.1", port))


def test_a_state_directory_it_cannot_make_is_not_called_a_busy_port(state_home,
                                                                   capsys) -> None:
    blocker = state_home / "a-file"
    blocker.write_text("")
    conf_file = state_home / "volmgr.conf"
    conf_file.write_text(f"[DEFAULT]\nstate_path = {blocker / 'state'}\n[api]\nbind_port = 0\n")
    assert all_in_one.main(["--config-file", str(conf_file)]) == 1
    err = capsys.readouterr().err
    assert f"cannot create the state directory {blocker / 'state'}" in err
    assert "cannot listen" not in err and "Traceback" not in err


def test_the_demo_narrates_alone_and_keeps_the_service_log_in_a_file(state_home,
                                                                     capsys) -> None:
    assert _main_in_thread(["--demo"], timeout=120) == 0
    out, err = capsys.readouterr()
    assert "demo complete" in out
    assert " INFO " not in err and "answered 404" not in out + err
    log_file = state_home / "xdg" / "volmgr" / "volmgr-all-demo.log"
    assert f"(the service's log of this run: {log_file})" in out
    assert "answered 404" in log_file.read_text()


# -- volmgr-manage on volmgr-all's state; service and volume views ---------------------

import json  # noqa: E402
from typing import Any  # noqa: E402

from volmgr import states  # noqa: E402
from volmgr.cmd import manage  # noqa: E402
from volmgr.db import Database, engine, migration  # noqa: E402


def _manage(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = manage.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def manage_with(embedded_db, state_home, capsys) -> Any:
    """volmgr-manage with a config file naming the embedded database."""
    conf_file = state_home / "manage.conf"
    conf_file.write_text(f"[database]\nconnection = {embedded_db.engine.url}\n")

    def run(*args: str) -> tuple[int, str, str]:
        return _manage(capsys, "--config-file", str(conf_file), *args)
    return run



@pytest.fixture
def embedded_db(state_home, monkeypatch) -> Database:
    """A database where volmgr-all keeps it, and no config file anywhere."""
    monkeypatch.setenv("HOME", str(state_home / "home"))
    directory = state_home / "xdg" / "volmgr"
    directory.mkdir(parents=True)
    db = Database(engine.create_engine(f"sqlite:///{directory}/volmgr.sqlite"))
    migration.upgrade(db.engine)
    yield db
    db.dispose()


def test_volmgr_manage_without_a_config_file_reads_volmgr_alls_state(embedded_db,
                                                                     capsys) -> None:
    volume = embedded_db.volume_create(project_id="demo", user_id="me", size=1,
                                       display_name="vol1", status=states.AVAILABLE)
    code, out, err = _manage(capsys, "volume", "list", "--format", "json")
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)] == [volume.id]


def test_volmgr_manage_state_path_flag_and_a_missing_database_says_where_it_looked(
        state_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOME", str(state_home / "home"))
    code, out, err = _manage(capsys, "volume", "list")
    expected = state_home / "xdg" / "volmgr" / "volmgr.sqlite"
    assert code == 1 and out == ""
    assert f"no volmgr database at {expected}" in err
    assert "--config-file" in err and "--state-path" in err
    assert "/var/lib/volmgr" not in err
    assert not expected.exists()  # looking created nothing

    elsewhere = state_home / "elsewhere"
    code, out, err = _manage(capsys, "--state-path", str(elsewhere), "db", "sync")
    assert code == 0 and (elsewhere / "volmgr.sqlite").exists()


def test_service_list_speaks_cinders_words_and_a_stopped_service_is_down_at_once(
        embedded_db, manage_with) -> None:
    from volmgr.rpc import VOLUME_SERVICE as BINARY

    embedded_db.service_heartbeat("node1", BINARY, "volmgr-volume", {})
    _code, out, _ = manage_with("service", "list", "--format", "json")
    [row] = json.loads(out)
    assert (row["status"], row["state"]) == ("enabled", "up")

    embedded_db.service_stopped("node1", BINARY)  # what VolumeService.stop() records
    _, out, _ = manage_with("service", "list", "--format", "json")
    [row] = json.loads(out)
    assert (row["status"], row["state"]) == ("enabled", "down")


def test_a_volume_service_that_stops_cleanly_records_it(conf, db) -> None:
    from tests.unit.volume_fakes import FakeDriver
    from volmgr import rpc
    from volmgr.volume.notifications import VolumeNotifier
    from volmgr.volume.service import VolumeService

    transport = rpc.get_transport(conf, url="fake://")
    service = VolumeService(conf, db=db, driver=FakeDriver(), transport=transport,
                            notifier=VolumeNotifier(None))
    try:
        service.start()
        assert db.service_get(conf.host, rpc.VOLUME_SERVICE).last_heartbeat is not None
        service.stop(5)
        assert db.service_get(conf.host, rpc.VOLUME_SERVICE).last_heartbeat is None
    finally:
        transport.cleanup()


def test_volume_show_takes_a_name_and_refuses_an_ambiguous_one(embedded_db, manage_with) -> None:
    volume = embedded_db.volume_create(project_id="demo", user_id="me", size=1,
                                       display_name="vol1", status=states.AVAILABLE)
    code, out, err = manage_with("volume", "show", "vol1", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["id"] == volume.id

    twin = embedded_db.volume_create(project_id="other", user_id="u", size=1,
                                     display_name="vol1", status=states.AVAILABLE)
    code, out, err = manage_with("volume", "show", "vol1")
    assert code == 1 and volume.id in err and twin.id in err and "give the id" in err

    code, out, err = manage_with("volume", "show", "no-such-volume")
    assert code == 1 and "No volume has the id or the name 'no-such-volume'" in err


def test_volume_list_all_shows_a_deleted_row_as_deleted(embedded_db, manage_with) -> None:
    volume = embedded_db.volume_create(project_id="demo", user_id="me", size=1,
                                       status=states.AVAILABLE)
    embedded_db.volume_transition(volume.id, (states.AVAILABLE,),
                                  {"status": states.DELETING})
    embedded_db.volume_destroy(volume.id)
    _code, out, _ = manage_with("volume", "list", "--all", "--format", "json")
    [row] = json.loads(out)
    assert (row["id"], row["status"], row["deleted"]) == (volume.id, "deleted", True)
    _, out, _ = manage_with("volume", "list", "--all")
    assert "deleting" not in out and "deleted" in out


# -- both faces: why a volume failed; a token for another project ----------------------

from tests.unit import api_helpers as h  # noqa: E402


def test_the_compute_face_shows_why_a_volume_failed(app: Any, db: Database) -> None:
    created = h.call(app, "POST", "/v1.1/p1/os-volumes", {"volume": {"size": 1}})
    volume_id = created.json["volume"]["id"]
    healthy = h.call(app, "GET", f"/v1.1/p1/os-volumes/{volume_id}").json["volume"]
    assert "statusReason" not in healthy
    db.volume_transition(volume_id, (states.CREATING,), {
        "status": states.ERROR, "status_reason": "the backend refused (reference r-1)"})
    shown = h.call(app, "GET", f"/v1.1/p1/os-volumes/{volume_id}").json["volume"]
    assert shown["statusReason"] == "the backend refused (reference r-1)"
    listed = h.call(app, "GET", "/v1.1/p1/os-volumes/detail").json["volumes"]
    assert [v["statusReason"] for v in listed] == ["the backend refused (reference r-1)"]
    xml = h.call(app, "GET", f"/v1.1/p1/os-volumes/{volume_id}.xml")
    assert 'statusReason="the backend refused (reference r-1)"' in xml.text


def test_a_token_for_another_project_says_which_project_it_is_for(app: Any) -> None:
    # openstacksdk with auth_type "none" sends the token "notused".
    answer = h.call(app, "GET", "/v3/demo/volumes", token="notused")
    assert answer.status_int == 404
    assert "scoped to project notused" in answer.json["itemNotFound"]["message"]


# -- written once: the fault names of the XML face come from the fault table ------------

def test_every_fault_and_any_new_one_renders_as_compute_xml() -> None:
    import xml.etree.ElementTree as ET

    from volmgr.api import faults, seed_xml

    names = {name for _cls, _code, name in faults.FAULT_TABLE}
    names |= {value[1] for value in vars(faults).values()
              if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str)}
    names.add("aFaultAddedTomorrow")  # no second list to forget to update
    for name in sorted(names):
        element = seed_xml.serialize({name: {"code": 418, "message": "why"}})
        assert element.tag == name and element.get("code") == "418"
        assert element.find("message") is not None
        assert ET.tostring(element)


# -- tests that notice a break: holes a mutation run of volmgr/api/seed.py found ---------

def _seed_volume(app: Any, db: Database, token: str = h.TOKEN, project: str = "p1") -> str:
    answer = h.call(app, "POST", f"/v1.1/{project}/os-volumes", {"volume": {"size": 1}},
                    token=token)
    assert answer.status_int == 200, answer.text
    h.finish(db, answer.json["volume"]["id"])
    return str(answer.json["volume"]["id"])


def test_the_compute_list_pages_exactly_by_limit_and_offset(app: Any, db: Database) -> None:
    for _ in range(4):
        _seed_volume(app, db)
    everything = h.call(app, "GET", "/v1.1/p1/os-volumes")
    assert everything.status_int == 200
    order = [v["id"] for v in everything.json["volumes"]]
    assert len(order) == 4

    def page(query: str) -> list[str]:
        answer = h.call(app, "GET", f"/v1.1/p1/os-volumes/detail?{query}")
        assert answer.status_int == 200
        return [v["id"] for v in answer.json["volumes"]]

    assert page("limit=2&offset=1") == order[1:3]
    assert page("limit=1") == order[:1]
    assert page("offset=3") == order[3:]
    assert page("limit=0") == []


def test_only_an_admin_asking_for_all_tenants_sees_other_projects(app: Any,
                                                                  db: Database) -> None:
    mine = _seed_volume(app, db)
    theirs = _seed_volume(app, db, token=h.OTHER_TOKEN, project="p2")
    asked = h.call(app, "GET", "/v1.1/p1/os-volumes?all_tenants=1")
    assert [v["id"] for v in asked.json["volumes"]] == [mine]
    admin = h.call(app, "GET", "/v1.1/p1/os-volumes?all_tenants=1",
                   headers={"X-Roles": "admin"})
    assert {v["id"] for v in admin.json["volumes"]} == {mine, theirs}
    plain = h.call(app, "GET", "/v1.1/p1/os-volumes", headers={"X-Roles": "admin"})
    assert [v["id"] for v in plain.json["volumes"]] == [mine]


def test_a_servers_attachments_are_its_own(app: Any, db: Database) -> None:
    volume_id = _seed_volume(app, db)
    attach = h.call(app, "POST", "/v1.1/p1/servers/srv-a/os-volume_attachments",
                    {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb"}})
    assert attach.status_int == 202, attach.text
    listed = h.call(app, "GET", "/v1.1/p1/servers/srv-a/os-volume_attachments")
    assert listed.status_int == 200
    assert [a["volumeId"] for a in listed.json["volumeAttachments"]] == [volume_id]
    other = h.call(app, "GET", "/v1.1/p1/servers/srv-b/os-volume_attachments")
    assert other.json["volumeAttachments"] == []
    shown = h.call(app, "GET", f"/v1.1/p1/servers/srv-a/os-volume_attachments/{volume_id}")
    assert shown.status_int == 200 and shown.json["volumeAttachment"]["serverId"] == "srv-a"
    wrong = h.call(app, "GET", f"/v1.1/p1/servers/srv-b/os-volume_attachments/{volume_id}")
    assert wrong.status_int == 404


def test_an_attach_body_that_contradicts_itself_is_refused_naming_the_field(
        app: Any, db: Database) -> None:
    volume_id = _seed_volume(app, db)
    path = "/v1.1/p1/servers/srv-a/os-volume_attachments"
    cases = [
        ({"volumeId": volume_id, "serverId": "srv-z"}, "'serverId'"),
        ({"volumeId": volume_id, "id": "00000000-0000-0000-0000-000000000000"}, "'id'"),
        ({"volumeId": "not-a-uuid"}, "volumeId"),
        ({"volumeId": volume_id, "colour": "red"}, "volumeAttachment"),
    ]
    for body, named in cases:
        answer = h.call(app, "POST", path, {"volumeAttachment": body})
        assert answer.status_int == 400, (body, answer.text)
        assert named in answer.json["badRequest"]["message"], (body, answer.text)
    matching = {"volumeId": volume_id, "serverId": "srv-a", "id": volume_id}
    assert h.call(app, "POST", path, {"volumeAttachment": matching}).status_int == 202


def test_reads_of_the_compute_face_answer_200(app: Any, db: Database) -> None:
    volume_id = _seed_volume(app, db)
    for path in ("/v1.1/p1/extensions", "/v1.1/p1/extensions/os-volumes",
                 f"/v1.1/p1/os-volumes/{volume_id}", "/v1.1/p1/os-volumes/detail"):
        assert h.call(app, "GET", path).status_int == 200, path


def test_a_compute_create_keeps_what_it_was_given_and_names_what_it_refuses(
        app: Any, conf: Any) -> None:
    path = "/v1.1/p1/os-volumes"
    made = h.call(app, "POST", path, {"volume": {"size": 1, "availability_zone": "nova",
                                                 "display_name": "kept"}})
    assert made.status_int == 200, made.text
    view = made.json["volume"]
    assert (view["availabilityZone"], view["displayName"]) == ("nova", "kept")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", view["createdAt"])

    too_big = conf.api.max_volume_size + 1
    refused = [
        ({"size": too_big}, "'size'"),
        ({"size": 1, "display_name": 5}, "'display_name'"),
        ({"size": 1, "availability_zone": 5}, "'availability_zone'"),
        ({"size": 1, "volume_type": 5}, "'volume_type'"),
        ({"size": 1, "snapshot_id": "not-a-uuid"}, "snapshot_id"),
        ({"size": 1, "colour": "red"}, "'volume'"),
    ]
    for body, named in refused:
        answer = h.call(app, "POST", path, {"volume": body})
        assert answer.status_int == 400, (body, answer.text)
        assert named in answer.json["badRequest"]["message"], (body, answer.text)
    missing = h.call(app, "POST", path, {"volume": {
        "size": 1, "snapshot_id": "00000000-0000-0000-0000-000000000000"}})
    assert missing.status_int == 404, missing.text  # a snapshot that is not there


def test_compute_paging_and_attach_parameters_are_checked_by_name(app: Any, db: Database,
                                                                 conf: Any) -> None:
    volume_id = _seed_volume(app, db)
    lists = "/v1.1/p1/os-volumes"
    assert h.call(app, "GET", f"{lists}?offset=0").status_int == 200
    too_many = conf.api.osapi_max_limit + 1
    for query, named in ((f"limit={too_many}", "'limit'"), ("limit=x", "'limit'"),
                         ("offset=-1", "'offset'"), ("offset=x", "'offset'")):
        answer = h.call(app, "GET", f"{lists}?{query}")
        assert answer.status_int == 400, query
        assert named in answer.json["badRequest"]["message"], query
    for word in ("1", "true", "True"):
        admin = h.call(app, "GET", f"{lists}?all_tenants={word}", headers={"X-Roles": "admin"})
        assert [v["id"] for v in admin.json["volumes"]] == [volume_id], word
    path = "/v1.1/p1/servers/srv-a/os-volume_attachments"
    for device in ("vdb", 7):
        answer = h.call(app, "POST", path, {"volumeAttachment": {"volumeId": volume_id,
                                                                 "device": device}})
        assert answer.status_int == 400, device
        assert "'device'" in answer.json["badRequest"]["message"], device
