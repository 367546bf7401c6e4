"""Adopting existing storage and forgetting volumes, as a specification: the manageable
lists, os-volume-manage / os-snapshot-manage, os-unmanage, and recovery of an adoption
cut short.

Everything here is real but the bus: the API's real RPC client talks over oslo.messaging's
in-process transport to a real VolumeManager driving the file driver in tmp_path, so
sizes, renames and refusals come from the storage host as they would in production."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import rpc, states
from volmgr.db import Database
from volmgr.volume import rpcapi
from volmgr.volume.adoption import INTERRUPTED
from volmgr.volume.drivers import loader
from volmgr.volume.drivers.file import FileDriver
from volmgr.volume.manager import VolumeManager
from volmgr.volume.recovery import Recovery

HOST = "node1"
GiB = 1024 ** 3
V38 = {"OpenStack-API-Version": "volume 3.8"}
ADMIN = {**V38, "X-Roles": "admin"}


@pytest.fixture
def driver(conf: cfg.ConfigOpts) -> FileDriver:
    conf.set_override("driver", "file", group="volume")
    conf.set_override("target_helper", "none", group="volume")
    loaded = loader.load_driver(conf)
    assert isinstance(loaded, FileDriver)
    loaded.check_setup()
    return loaded


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database, driver: FileDriver) -> Iterator[VolumeManager]:
    mgr = VolumeManager(conf, db, driver, host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


@pytest.fixture
def api(conf: cfg.ConfigOpts, db: Database, manager: VolumeManager) -> Iterator[Any]:
    transport = rpc.get_transport(conf, url="fake://")
    server = rpc.get_server(transport, server=HOST, endpoints=[manager], explicit=True)
    server.start()
    h.register_host(db, HOST)
    yield h.make_app(conf, db, rpcapi.VolumeAPI(conf, transport, call_timeout=5))
    server.stop()
    server.wait()
    transport.cleanup()


def call(api: Any, method: str, path: str, body: Any = None,
         headers: dict[str, str] = ADMIN) -> Any:
    return h.call(api, method, f"/v3/p1{path}", body, headers=headers)


def wait_for(api: Any, path: str, status: str | None) -> dict[str, Any]:
    """Poll ``path`` until it shows ``status`` (None: until it is gone)."""
    deadline = time.monotonic() + 10
    while True:
        response = call(api, "GET", path)
        if status is None and response.status_int == 404:
            return {}
        if response.status_int == 200:
            body = next(iter(response.json.values()))
            if body["status"] == status:
                return dict(body)
        assert time.monotonic() < deadline, f"{path} never became {status}: {response.json}"
        time.sleep(0.02)


def new_volume(api: Any, size: int = 1) -> str:
    response = call(api, "POST", "/volumes", {"volume": {"size": size, "name": "orig"}})
    assert response.status_int == 202, response.json
    volume_id = str(response.json["volume"]["id"])
    wait_for(api, f"/volumes/{volume_id}", "available")
    return volume_id


def usage(api: Any) -> dict[str, int]:
    quota = call(api, "GET", "/os-quota-sets/p1?usage=True").json["quota_set"]
    return {key: quota[key]["in_use"] for key in ("volumes", "gigabytes", "snapshots")}


def manage(api: Any, name: str, path: str = "/os-volume-manage", **extra: Any) -> Any:
    body = {"volume": {"host": f"{HOST}@file#file", "ref": {"source-name": name},
                       "name": "adopted", **extra}}
    return call(api, "POST", path, body)


# -- unmanage, list, manage again --------------------------------------------------------

def test_an_unmanaged_volume_keeps_its_data_and_is_managed_again_under_a_new_id(
        api: Any, driver: FileDriver) -> None:
    volume_id = new_volume(api, size=2)
    path = os.path.join(driver.volumes_dir, f"volume-{volume_id}")
    with open(path, "r+b") as image:
        image.write(b"precious data")

    assert call(api, "POST", f"/volumes/{volume_id}/action",
                {"os-unmanage": {}}).status_int == 202
    wait_for(api, f"/volumes/{volume_id}", None)
    assert os.path.exists(path), "unmanage must leave the storage in place"
    assert usage(api) == {"volumes": 0, "gigabytes": 0, "snapshots": 0}

    listed = call(api, "GET", f"/manageable_volumes?host={HOST}").json
    assert listed == {"manageable-volumes": [
        {"reference": {"source-name": f"volume-{volume_id}"}, "size": 2,
         "safe_to_manage": True}]}

    response = manage(api, f"volume-{volume_id}")
    assert response.status_int == 202, response.json
    shown = response.json["volume"]
    assert (shown["status"], shown["size"], shown["name"]) == ("creating", 2, "adopted")
    new_id = shown["id"]
    assert new_id != volume_id
    adopted = wait_for(api, f"/volumes/{new_id}", "available")
    assert adopted["os-vol-host-attr:host"] == f"{HOST}@file#file"
    assert usage(api) == {"volumes": 1, "gigabytes": 2, "snapshots": 0}
    with open(os.path.join(driver.volumes_dir, f"volume-{new_id}"), "rb") as image:
        assert image.read(13) == b"precious data"
    assert not os.path.exists(path)

    # Now a row owns it: detail says so, and managing it twice is refused.
    [entry] = call(api, "GET", f"/manageable_volumes/detail?host={HOST}").json[
        "manageable-volumes"]
    assert entry == {"reference": {"source-name": f"volume-{new_id}"}, "size": 2,
                     "safe_to_manage": False, "reason_not_safe": "Already managed",
                     "cinder_id": new_id, "extra_info": None}
    again = manage(api, f"volume-{new_id}")
    assert again.status_int == 400 and "Already managed" in again.text
    assert usage(api) == {"volumes": 1, "gigabytes": 2, "snapshots": 0}


def test_a_hand_made_image_is_sized_up_to_whole_gib_and_renamed(
        api: Any, driver: FileDriver) -> None:
    legacy = os.path.join(driver.volumes_dir, "legacy.img")
    with open(legacy, "wb") as image:
        image.truncate(GiB + GiB // 2)
    [entry] = call(api, "GET", f"/manageable_volumes/detail?host={HOST}").json[
        "manageable-volumes"]
    assert (entry["reference"], entry["size"], entry["safe_to_manage"]) == (
        {"source-name": "legacy.img"}, 2, True)

    response = manage(api, "legacy.img", path="/manageable_volumes", bootable=True,
                      metadata={"origin": "legacy"})
    assert response.status_int == 202, response.json
    volume_id = response.json["volume"]["id"]
    shown = wait_for(api, f"/volumes/{volume_id}", "available")
    assert (shown["size"], shown["bootable"], shown["metadata"]) == (
        2, "true", {"origin": "legacy"})
    assert os.stat(os.path.join(driver.volumes_dir, f"volume-{volume_id}")).st_size == \
        2 * GiB
    assert not os.path.exists(legacy)


def test_lists_sort_page_and_summarise(api: Any, driver: FileDriver) -> None:
    for name, size in (("b.img", 3 * GiB), ("a.img", GiB), ("c.img", 2 * GiB)):
        with open(os.path.join(driver.volumes_dir, name), "wb") as image:
            image.truncate(size)

    def names(query: str) -> list[str]:
        response = call(api, "GET", f"/manageable_volumes?host={HOST}&{query}")
        assert response.status_int == 200, response.json
        return [e["reference"]["source-name"] for e in response.json["manageable-volumes"]]

    assert names("") == ["c.img", "b.img", "a.img"]  # by reference, descending
    assert names("sort_key=size&sort_dir=asc") == ["a.img", "c.img", "b.img"]
    assert names("sort=reference:asc&limit=2") == ["a.img", "b.img"]
    assert names("sort=reference:asc&offset=1&limit=1") == ["b.img"]
    assert names("sort=reference:asc&marker=a.img") == ["b.img", "c.img"]
    assert names('sort=reference:asc&marker={"source-name": "b.img"}') == ["c.img"]
    assert call(api, "GET", f"/manageable_volumes?host={HOST}&marker=zzz").status_int \
        == 404
    assert call(api, "GET", f"/manageable_volumes?host={HOST}&sort_key=name").status_int \
        == 400
    summary = call(api, "GET", f"/os-volume-manage?host={HOST}",
                   headers={"X-Roles": "admin"}).json["manageable-volumes"]
    assert set(summary[0]) == {"reference", "size", "safe_to_manage"}


# -- refusals: clear 4xx, nothing written ------------------------------------------------

@pytest.mark.parametrize(("body", "status", "words"), [
    ({"volume": {"ref": {"source-name": "x.img"}}}, 400, "'host' is required"),
    ({"volume": {"host": "elsewhere", "ref": {"source-name": "x.img"}}}, 404,
     "Host elsewhere not found"),
    ({"volume": {"host": HOST}}, 400, "'ref' must be an object"),
    ({"volume": {"host": HOST, "ref": {"source-id": "17"}}}, 400, "source-id is not"),
    ({"volume": {"host": HOST, "ref": {"source-name": "missing.img"}}}, 400,
     "no image named missing.img"),
    ({"volume": {"host": HOST, "ref": {"source-name": "../etc/passwd"}}}, 400,
     "reference must name"),
    ({"volume": {"host": HOST, "ref": {"source-name": "x.img"},
                 "availability_zone": "mars"}}, 400, "availability zone"),
    ({"volume": {"host": HOST, "ref": {"source-name": "x.img"},
                 "volume_type": "no-such-type"}}, 404, "no-such-type"),
    ({"volume": {"host": HOST, "ref": {"source-name": "x.img"}, "colour": "red"}}, 400,
     "colour"),
])
def test_a_bad_manage_request_is_a_clear_4xx_and_writes_nothing(
        api: Any, driver: FileDriver, body: Any, status: int, words: str) -> None:
    with open(os.path.join(driver.volumes_dir, "x.img"), "wb") as image:
        image.truncate(GiB)
    response = call(api, "POST", "/os-volume-manage", body)
    assert response.status_int == status, response.json
    assert words in response.text
    assert call(api, "GET", "/volumes?all_tenants=1").json["volumes"] == []
    assert usage(api)["volumes"] == 0
    assert os.path.exists(os.path.join(driver.volumes_dir, "x.img"))


def test_only_admins_manage_list_or_unmanage(api: Any, driver: FileDriver) -> None:
    volume_id = new_volume(api)
    member = V38
    assert call(api, "GET", f"/manageable_volumes?host={HOST}", headers=member).status_int \
        == 403
    assert manage(api, "x").status_int != 403  # the admin is not refused for policy
    response = call(api, "POST", "/os-volume-manage",
                    {"volume": {"host": HOST, "ref": {"source-name": "x"}}}, headers=member)
    assert response.status_int == 403 and "volume_manage" in response.text
    assert call(api, "POST", f"/volumes/{volume_id}/action", {"os-unmanage": {}},
                headers=member).status_int == 403
    assert wait_for(api, f"/volumes/{volume_id}", "available")


def test_manageable_volumes_starts_at_3_8_and_os_volume_manage_is_always_there(
        api: Any) -> None:
    old = {"OpenStack-API-Version": "volume 3.7", "X-Roles": "admin"}
    assert call(api, "GET", f"/manageable_volumes?host={HOST}", headers=old).status_int \
        == 404
    assert call(api, "GET", f"/os-volume-manage?host={HOST}", headers=old).status_int == 200
    extensions = {e["alias"] for e in call(api, "GET", "/extensions").json["extensions"]}
    assert {"os-volume-manage", "os-volume-unmanage", "os-snapshot-manage",
            "os-snapshot-unmanage"} <= extensions


def test_a_volume_in_use_or_with_snapshots_cannot_be_unmanaged(api: Any) -> None:
    volume_id = new_volume(api)
    response = call(api, "POST", "/snapshots", {"snapshot": {"volume_id": volume_id}})
    assert response.status_int == 202
    wait_for(api, f"/snapshots/{response.json['snapshot']['id']}", "available")
    refused = call(api, "POST", f"/volumes/{volume_id}/action", {"os-unmanage": {}})
    assert refused.status_int == 400, refused.json
    assert wait_for(api, f"/volumes/{volume_id}", "available")


def test_a_down_host_is_503_before_anything_is_written(api: Any, db: Database) -> None:
    volume_id = new_volume(api)
    db.service_stopped(HOST, rpc.TOPIC)  # a cleanly stopped manager is down at once
    assert call(api, "GET", f"/manageable_volumes?host={HOST}").status_int == 503
    assert manage(api, "x.img").status_int == 503
    assert call(api, "POST", f"/volumes/{volume_id}/action",
                {"os-unmanage": {}}).status_int == 503
    assert usage(api)["volumes"] == 1
    assert wait_for(api, f"/volumes/{volume_id}", "available")


# -- snapshots ------------------------------------------------------------------------------

def test_an_unmanaged_snapshot_is_listed_with_its_volume_and_managed_again(
        api: Any, driver: FileDriver) -> None:
    volume_id = new_volume(api)
    created = call(api, "POST", "/snapshots", {"snapshot": {"volume_id": volume_id}})
    snapshot_id = created.json["snapshot"]["id"]
    wait_for(api, f"/snapshots/{snapshot_id}", "available")

    assert call(api, "POST", f"/snapshots/{snapshot_id}/action",
                {"os-unmanage": {}}).status_int == 202
    wait_for(api, f"/snapshots/{snapshot_id}", None)
    assert usage(api)["snapshots"] == 0
    listed = call(api, "GET", f"/manageable_snapshots?host={HOST}").json
    assert listed == {"manageable-snapshots": [
        {"reference": {"source-name": f"snapshot-{snapshot_id}"}, "size": 1,
         "safe_to_manage": True, "source_reference": {"source-name": f"volume-{volume_id}"}}]}

    response = call(api, "POST", "/os-snapshot-manage", {"snapshot": {
        "volume_id": volume_id, "ref": {"source-name": f"snapshot-{snapshot_id}"},
        "name": "kept", "description": "adopted", "metadata": {"k": "v"}}})
    assert response.status_int == 202, response.json
    body = response.json["snapshot"]
    # Exactly the fields the reference's manage response has.
    assert set(body) == {"id", "status", "size", "metadata", "name", "description",
                         "volume_id", "created_at", "updated_at"}
    assert (body["status"], body["size"], body["volume_id"]) == ("creating", 1, volume_id)
    shown = wait_for(api, f"/snapshots/{body['id']}", "available")
    assert (shown["name"], shown["description"], shown["metadata"]) == (
        "kept", "adopted", {"k": "v"})
    assert usage(api)["snapshots"] == 1
    # The adopted snapshot is a real one: its volume cannot be deleted while it exists.
    assert call(api, "DELETE", f"/volumes/{volume_id}").status_int == 400


def test_a_snapshot_reference_of_another_volume_is_refused(api: Any) -> None:
    first, second = new_volume(api), new_volume(api)
    created = call(api, "POST", "/snapshots", {"snapshot": {"volume_id": first}})
    snapshot_id = created.json["snapshot"]["id"]
    wait_for(api, f"/snapshots/{snapshot_id}", "available")
    call(api, "POST", f"/snapshots/{snapshot_id}/action", {"os-unmanage": {}})
    wait_for(api, f"/snapshots/{snapshot_id}", None)
    response = call(api, "POST", "/os-snapshot-manage", {"snapshot": {
        "volume_id": second, "ref": {"source-name": f"snapshot-{snapshot_id}"}}})
    assert response.status_int == 400 and "no image named" in response.text
    assert usage(api)["snapshots"] == 0


# -- recovery --------------------------------------------------------------------------------

def test_recovery_finishes_an_adoption_that_renamed_and_fails_one_that_did_not(
        conf: cfg.ConfigOpts, db: Database, manager: VolumeManager,
        driver: FileDriver) -> None:
    renamed = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                               status=states.MANAGING)
    lost = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                            status=states.MANAGING)
    with open(os.path.join(driver.volumes_dir, f"volume-{renamed.id}"), "wb") as image:
        image.truncate(GiB)
    conf.set_override("recovery_age", 0, group="volume")
    Recovery(conf, db, manager).run_once()
    assert manager.wait_idle(10)
    assert db.volume_get(renamed.id).status == states.AVAILABLE
    failed = db.volume_get(lost.id)
    assert (failed.status, failed.status_reason) == (states.ERROR, INTERRUPTED)


def test_recovery_finishes_an_unmanage(conf: cfg.ConfigOpts, db: Database,
                                       manager: VolumeManager, driver: FileDriver) -> None:
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                              status=states.UNMANAGING)
    path = os.path.join(driver.volumes_dir, f"volume-{volume.id}")
    with open(path, "wb") as image:
        image.truncate(GiB)
    conf.set_override("recovery_age", 0, group="volume")
    Recovery(conf, db, manager).run_once()
    assert manager.wait_idle(10)
    assert db.volumes_by_ids([volume.id]) == {}
    assert os.path.exists(path)

