"""The Block Storage v3 face: version documents, volumes, os-extend, snapshots,
pagination and filters, as python-cinderclient and openstacksdk use them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.db_reads import quota_usage
from tests.unit import api_helpers as h
from volmgr import states
from volmgr.db import Database


def create(app: Any, size: int = 1, **fields: Any) -> dict[str, Any]:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": size, **fields}})
    assert answer.status_int == 202, answer.text
    return answer.json["volume"]  # type: ignore[no-any-return]


def available(app: Any, db: Database, **fields: Any) -> str:
    volume_id: str = create(app, **fields)["id"]
    h.finish(db, volume_id)
    return volume_id


@pytest.mark.parametrize("path", ["/v3", "/v3/"])
def test_v3_version_document_answers_200_without_auth(app: Any, path: str) -> None:
    answer = h.call(app, "GET", path, token=None)
    assert answer.status_int == 200
    version = answer.json["version"]
    assert (version["version"], version["min_version"]) == ("3.71", "3.0")
    assert {"rel": "self", "href": "http://localhost/v3/"} in version["links"]


def test_root_answers_300_with_the_versions_list_without_auth(app: Any) -> None:
    answer = h.call(app, "GET", "/", token=None)
    assert answer.status_int == 300
    (version,) = answer.json["versions"]
    assert version["id"] == "v3.0" and version["status"] == "CURRENT"
    assert version["media-types"][0]["type"] == \
        "application/vnd.openstack.volume+json;version=3"


def test_healthcheck_and_openapi_need_no_auth(app: Any) -> None:
    assert h.call(app, "GET", "/healthcheck", token=None).json == {"status": "OK"}
    document = h.call(app, "GET", "/openapi.json", token=None).json
    assert document["openapi"].startswith("3.")
    assert "/v1.1/{project_id}/os-volumes" in document["paths"]
    assert "/v3/{project_id}/volumes/{volume_id}/action" in document["paths"]


def test_create_answers_202_with_the_keys_clients_need(app: Any,
                                                       rpcapi: h.RecordingRPC) -> None:
    volume = create(app, 1, name="v", description="d", metadata={"a": "b"})
    for key in ("id", "name", "status", "size", "availability_zone", "created_at",
                "updated_at", "description", "volume_type", "snapshot_id", "source_volid",
                "metadata", "attachments", "bootable", "encrypted", "multiattach",
                "user_id", "links"):
        assert key in volume
    assert volume["status"] == "creating" and volume["name"] == "v"
    assert volume["attachments"] == [] and volume["bootable"] == "false"
    assert volume["user_id"] == "u1"
    assert rpcapi.methods() == ["create_volume"]


def test_create_accepts_what_cinderclient_sends_with_nulls(app: Any) -> None:
    body = {"volume": {"size": 1, "consistencygroup_id": None, "snapshot_id": None,
                       "name": "c", "description": None, "volume_type": None,
                       "availability_zone": None, "metadata": {}, "imageRef": None,
                       "source_volid": None, "backup_id": None}}
    assert h.call(app, "POST", "/v3/p1/volumes", body).status_int == 202


def test_create_with_an_unsupported_feature_set_is_400(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "imageRef": "some-image"}})
    assert answer.status_int == 400
    assert "imageRef" in answer.json["badRequest"]["message"]


def test_list_summary_and_detail_and_show(app: Any) -> None:
    volume = create(app, name="one")
    summary = h.call(app, "GET", "/v3/p1/volumes").json["volumes"]
    assert summary == [{"id": volume["id"], "name": "one", "links": volume["links"]}]
    detail = h.call(app, "GET", "/v3/p1/volumes/detail").json["volumes"]
    assert detail[0]["status"] == "creating"
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume['id']}").json["volume"]
    assert shown["id"] == volume["id"]


def test_paths_without_project_use_the_tokens_project(app: Any) -> None:
    volume = create(app)
    assert h.call(app, "GET", "/v3/volumes/detail").json["volumes"][0]["id"] == \
        volume["id"]
    assert h.call(app, "GET", f"/v3/volumes/{volume['id']}").status_int == 200


def test_name_and_status_filters(app: Any, db: Database) -> None:
    a = available(app, db, name="alpha")
    create(app, name="beta")
    by_name = h.call(app, "GET", "/v3/p1/volumes/detail?name=alpha").json["volumes"]
    assert [v["id"] for v in by_name] == [a]
    by_status = h.call(app, "GET", "/v3/p1/volumes/detail?status=available").json
    assert [v["id"] for v in by_status["volumes"]] == [a]


def test_limit_and_marker_page_through_every_volume_once(app: Any) -> None:
    ids = {create(app)["id"] for _ in range(5)}
    seen: list[str] = []
    url = "/v3/p1/volumes/detail?limit=2"
    while url:
        page = h.call(app, "GET", url).json
        assert len(page["volumes"]) <= 2
        seen += [v["id"] for v in page["volumes"]]
        links = page.get("volumes_links") or []
        url = links[0]["href"].replace("http://localhost", "") if links else ""
    assert sorted(seen) == sorted(ids)


def test_unknown_marker_is_404(app: Any) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes?marker=nope")
    assert answer.status_int == 404


def test_unknown_volume_is_a_real_404_fault(app: Any) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes/0b2d3f1e-0000-0000-0000-000000000000")
    assert answer.status_int == 404
    assert answer.json["itemNotFound"]["code"] == 404


def test_delete_answers_202_and_casts(app: Any, db: Database,
                                      rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202
    assert db.volume_get(volume_id).status == states.DELETING
    assert rpcapi.methods()[-1] == "delete_volume"


def test_extend_answers_202_reserves_the_extra_quota_and_casts(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-extend": {"new_size": 3}})
    assert answer.status_int == 202, answer.text
    assert db.volume_get(volume_id).status == states.EXTENDING
    assert quota_usage(db, "p1")["gigabytes"] == 3
    assert rpcapi.casts[-1].method == "extend_volume"
    assert rpcapi.casts[-1].args["new_size"] == 3


def test_extend_to_a_smaller_size_is_refused_with_400_naming_the_size(
        app: Any, db: Database) -> None:
    volume_id = available(app, db, size=2)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-extend": {"new_size": 1}})
    assert answer.status_int == 400
    assert "current size 2" in answer.json["badRequest"]["message"]


def test_extend_of_a_creating_volume_is_400_naming_its_status(app: Any) -> None:
    volume_id = create(app)["id"]
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-extend": {"new_size": 2}})
    assert answer.status_int == 400
    assert "creating" in answer.json["badRequest"]["message"]


def test_unknown_action_is_400(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-teleport": {"to": "mars"}})
    assert answer.status_int == 400
    assert "os-teleport" in answer.json["badRequest"]["message"]


def test_snapshot_create_list_show_delete(app: Any, db: Database,
                                          rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "POST", "/v3/p1/snapshots",
                    {"snapshot": {"volume_id": volume_id, "force": False, "name": "s",
                                  "description": None, "metadata": {}}})
    assert answer.status_int == 202, answer.text
    snapshot = answer.json["snapshot"]
    assert (snapshot["status"], snapshot["volume_id"], snapshot["size"]) == (
        "creating", volume_id, 1)
    assert rpcapi.casts[-1].method == "create_snapshot"
    assert rpcapi.casts[-1].args == {"snapshot_id": snapshot["id"]}
    for path in ("/v3/p1/snapshots", "/v3/p1/snapshots/detail"):
        assert [s["id"] for s in h.call(app, "GET", path).json["snapshots"]] == \
            [snapshot["id"]]
    shown = h.call(app, "GET", f"/v3/p1/snapshots/{snapshot['id']}").json["snapshot"]
    assert shown["name"] == "s"
    db.snapshot_transition(snapshot["id"], (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    assert h.call(app, "DELETE", f"/v3/p1/snapshots/{snapshot['id']}").status_int == 202
    assert db.snapshot_get(snapshot["id"]).status == states.SNAP_DELETING
    assert rpcapi.casts[-1].method == "delete_snapshot"


def test_snapshot_of_an_in_use_volume_needs_force(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    h.call(app, "POST", "/v1.1/p1/servers/s1/os-volume_attachments",
           {"volumeAttachment": {"volumeId": volume_id}})
    h.attach_done(db, volume_id)
    refused = h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}})
    assert refused.status_int == 400
    assert "in-use" in refused.json["badRequest"]["message"]
    forced = h.call(app, "POST", "/v3/p1/snapshots",
                    {"snapshot": {"volume_id": volume_id, "force": True}})
    assert forced.status_int == 202


def test_delete_of_a_volume_with_snapshots_is_400(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}})
    answer = h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}")
    assert answer.status_int == 400
    assert "snapshots" in answer.json["badRequest"]["message"]


def available_snapshot(app: Any, db: Database, size: int) -> dict[str, Any]:
    """A snapshot of a new ``size`` GiB volume, moved to available as its manager would."""
    volume_id = available(app, db, size=size)
    snap = h.call(app, "POST", "/v3/p1/snapshots",
                  {"snapshot": {"volume_id": volume_id}}).json["snapshot"]
    db.snapshot_transition(snap["id"], (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    return snap  # type: ignore[no-any-return]


def test_create_from_a_snapshot_goes_to_the_snapshots_host(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    snap = available_snapshot(app, db, size=2)
    h.register_host(db, "node2", free=500)
    too_small = h.call(app, "POST", "/v3/p1/volumes",
                       {"volume": {"size": 1, "snapshot_id": snap["id"]}})
    assert too_small.status_int == 400
    volume = create(app, 2, snapshot_id=snap["id"])
    assert volume["snapshot_id"] == snap["id"]
    assert (rpcapi.casts[-1].host, rpcapi.casts[-1].args["snapshot_id"]) == (
        "node1", snap["id"])


def test_create_from_a_snapshot_is_refused_with_400_while_rpc_is_capped_and_writes_nothing(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    snap = available_snapshot(app, db, size=2)
    rpcapi.capped.add("create_volume")
    before = len(db.volume_list("p1"))
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 2, "snapshot_id": snap["id"]}})
    assert answer.status_int == 400
    assert "upgrade_levels" in answer.json["badRequest"]["message"]
    assert len(db.volume_list("p1")) == before
    assert "create_volume" not in rpcapi.methods()[-1:]


@pytest.mark.parametrize(("header", "served"), [
    ("volume 3.0", "3.0"), ("volume 3.27", "3.27"), ("volume latest", "3.71"),
    ("compute 2.1", "3.0"), ("compute 2.1, volume 3.50", "3.50")])
def test_a_microversion_in_range_is_served_and_echoed(app: Any, header: str,
                                                        served: str) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes", headers={"OpenStack-API-Version": header})
    assert answer.status_int == 200
    assert answer.headers["OpenStack-API-Version"] == f"volume {served}"
    assert answer.headers["Vary"] == "OpenStack-API-Version"


@pytest.mark.parametrize("asked", ["3.72", "4.0", "2.9"])
def test_a_microversion_outside_the_range_is_refused_with_406(app: Any, asked: str) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes",
                    headers={"OpenStack-API-Version": f"volume {asked}"})
    assert answer.status_int == 406
    message = answer.json["notAcceptable"]["message"]
    assert asked in message and "3.0" in message and "3.71" in message


@pytest.mark.parametrize("asked", ["3", "3.x", "v3.1", "3.01"])
def test_a_malformed_microversion_is_400(app: Any, asked: str) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes",
                    headers={"OpenStack-API-Version": f"volume {asked}"})
    assert answer.status_int == 400
    assert "MAJOR.MINOR" in answer.json["badRequest"]["message"]


def test_admin_lists_all_tenants_only_when_asked(app: Any) -> None:
    mine = create(app)["id"]
    theirs = h.call(app, "POST", "/v3/p2/volumes", {"volume": {"size": 1}},
                    token=h.OTHER_TOKEN).json["volume"]["id"]
    admin = {"X-Roles": "admin,member"}
    own = h.call(app, "GET", "/v3/adm/volumes", token="root:adm", headers=admin).json
    assert own["volumes"] == []
    every = h.call(app, "GET", "/v3/adm/volumes/detail?all_tenants=1", token="root:adm",
                   headers=admin).json
    assert {v["id"] for v in every["volumes"]} == {mine, theirs}
    assert every["volumes"][0]["os-vol-host-attr:host"].startswith("node1@")
    member = h.call(app, "GET", "/v3/p1/volumes?all_tenants=1").json
    assert [v["id"] for v in member["volumes"]] == [mine]
