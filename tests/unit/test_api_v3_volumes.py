"""Block Storage v3 volumes and snapshots as the reference and Tempest's response
schemas describe them: fields per microversion, update, metadata, clone, cascade and
forced delete, admin actions, sorting, filtering and paging."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import webob

from tests.unit import api_helpers as h
from volmgr import states
from volmgr.db import Database

ADMIN = {"X-Roles": "admin"}
ADMIN_TOKEN = "root:adm"


def create(app: Any, size: int = 1, **fields: Any) -> dict[str, Any]:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": size, **fields}})
    assert answer.status_int == 202, answer.text
    return answer.json["volume"]  # type: ignore[no-any-return]


def available(app: Any, db: Database, **fields: Any) -> str:
    volume_id: str = create(app, **fields)["id"]
    h.finish(db, volume_id)
    return volume_id


def action(app: Any, volume_id: str, body: dict[str, Any], **kwargs: Any) -> Any:
    return h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action", body, **kwargs)


def snapshot(app: Any, db: Database, volume_id: str, **fields: Any) -> str:
    answer = h.call(app, "POST", "/v3/p1/snapshots",
                    {"snapshot": {"volume_id": volume_id, **fields}})
    assert answer.status_int == 202, answer.text
    snapshot_id: str = answer.json["snapshot"]["id"]
    db.snapshot_transition(snapshot_id, (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    return snapshot_id


# -- views ------------------------------------------------------------------------------


def test_create_reply_has_no_extension_attributes_but_show_does(app: Any) -> None:
    created = create(app, name="v")
    assert not [key for key in created if key.startswith("os-")]
    assert created["volume_type"] == "__DEFAULT__"
    assert (created["bootable"], created["multiattach"], created["encrypted"]) == (
        "false", False, False)
    shown = h.call(app, "GET", f"/v3/p1/volumes/{created['id']}").json["volume"]
    assert shown["os-vol-tenant-attr:tenant_id"] == "p1"
    assert "os-vol-host-attr:host" not in shown


def test_admin_sees_the_host_as_host_backend_pool(app: Any) -> None:
    volume_id = create(app)["id"]
    shown = h.call(app, "GET", f"/v3/adm/volumes/{volume_id}", token=ADMIN_TOKEN,
                   headers=ADMIN).json["volume"]
    host = shown["os-vol-host-attr:host"]
    assert host.startswith("node1@") and "#" in host


@pytest.mark.parametrize(("version", "present", "absent"), [
    ("3.0", set(), {"group_id", "volume_type_id", "shared_targets", "consumes_quota"}),
    ("3.13", {"group_id"}, {"volume_type_id"}),
    ("3.48", {"shared_targets", "service_uuid"}, {"volume_type_id"}),
    ("3.63", {"volume_type_id"}, {"consumes_quota"}),
    ("3.65", {"consumes_quota", "volume_type_id"}, set()),
])
def test_fields_appear_at_their_microversion(app: Any, version: str, present: set[str],
                                             absent: set[str]) -> None:
    volume_id = create(app)["id"]
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}",
                   headers={"OpenStack-API-Version": f"volume {version}"}).json["volume"]
    assert present <= set(shown)
    assert not absent & set(shown)


def test_snapshot_views_summary_detail_and_user_id_at_3_41(app: Any, db: Database) -> None:
    snapshot_id = snapshot(app, db, available(app, db))
    plain = h.call(app, "GET", "/v3/p1/snapshots").json["snapshots"][0]
    assert plain["id"] == snapshot_id and "os-extended-snapshot-attributes:progress" \
        not in plain and "metadata" in plain
    detail = h.call(app, "GET", "/v3/p1/snapshots/detail").json["snapshots"][0]
    assert detail["os-extended-snapshot-attributes:progress"] == "100%"
    assert "user_id" not in detail
    newer = h.call(app, "GET", f"/v3/p1/snapshots/{snapshot_id}",
                   headers={"OpenStack-API-Version": "volume 3.41"}).json["snapshot"]
    assert newer["user_id"] == "u1"


# -- create -----------------------------------------------------------------------------


def test_unknown_volume_type_is_404_and_nothing_is_written(app: Any, db: Database) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "volume_type": "no-such-type"}})
    assert answer.status_int == 404
    assert "no-such-type" in answer.json["itemNotFound"]["message"]
    assert db.volume_list("p1") == []


@pytest.mark.parametrize("field", ["snapshot_id", "source_volid"])
def test_a_source_that_does_not_exist_is_404(app: Any, db: Database, field: str) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, field: "9b9a1f9e-1d1f-4c39-9a55-0d7f6f3b0c11"}})
    assert answer.status_int == 404
    assert db.volume_list("p1") == []


def test_a_clone_takes_the_source_size_and_host_and_casts_with_the_source(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    source = available(app, db, size=3)
    clone = h.call(app, "POST", "/v3/p1/volumes",
                   {"volume": {"source_volid": source}}).json["volume"]
    assert (clone["size"], clone["source_volid"]) == (3, source)
    cast = rpcapi.casts[-1]
    assert (cast.method, cast.host, cast.args["source_volid"]) == (
        "create_volume", "node1", source)
    refused = h.call(app, "DELETE", f"/v3/p1/volumes/{source}")
    assert refused.status_int == 400
    assert "cloned" in refused.json["badRequest"]["message"]


def test_a_create_and_a_delete_are_one_transaction_each_and_cast_after_it(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    """The type, the hosts, the quota and the insert (the row, the host check and the
    guarded write for a delete) commit together; the manager is told only afterwards,
    so it always finds the row (docs/performance.md, "one transaction per request")."""
    events: list[str] = []
    sa.event.listen(db.engine, "begin", lambda *args: events.append("begin"))
    sa.event.listen(db.engine, "commit", lambda *args: events.append("commit"))
    real_record = rpcapi._record

    def recording(method: str, *args: Any, **kwargs: Any) -> None:
        events.append(f"cast {method}")
        real_record(method, *args, **kwargs)
    rpcapi._record = recording  # type: ignore[method-assign]
    volume_id = create(app)["id"]
    assert events == ["begin", "commit", "cast create_volume"]
    h.finish(db, volume_id)
    events.clear()
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202
    assert events == ["begin", "commit", "cast delete_volume"]
    assert (rpcapi.casts[-1].method, rpcapi.casts[-1].args["volume_id"]) == (
        "delete_volume", volume_id)


def test_multiattach_in_the_body_is_refused_with_a_pointer_to_types(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "multiattach": True}})
    assert answer.status_int == 400
    assert "volume type" in answer.json["badRequest"]["message"]


def test_size_is_required_without_a_source(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"name": "x"}})
    assert answer.status_int == 400
    assert "size" in answer.json["badRequest"]["message"]


# -- update and metadata ----------------------------------------------------------------


def test_update_renames_and_answers_200_with_the_volume(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "PUT", f"/v3/p1/volumes/{volume_id}",
                    {"volume": {"name": "new", "description": "d", "metadata": {"a": "1"}}})
    assert answer.status_int == 200
    view = answer.json["volume"]
    assert (view["name"], view["description"], view["metadata"]) == ("new", "d", {"a": "1"})
    assert "os-vol-tenant-attr:tenant_id" not in view


def test_another_projects_volume_cannot_be_updated(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "PUT", f"/v3/p2/volumes/{volume_id}", {"volume": {"name": "x"}},
                    token=h.OTHER_TOKEN)
    assert answer.status_int == 404
    assert db.volume_get(volume_id).display_name is None


def test_volume_metadata_create_replace_item_and_delete(app: Any, db: Database) -> None:
    volume_id = available(app, db, metadata={"keep": "1"})
    base = f"/v3/p1/volumes/{volume_id}/metadata"
    merged = h.call(app, "POST", base, {"metadata": {"a": "x"}})
    assert merged.status_int == 200 and merged.json["metadata"] == {"keep": "1", "a": "x"}
    item = h.call(app, "PUT", base + "/a", {"meta": {"a": "y"}})
    assert item.json == {"meta": {"a": "y"}}
    assert h.call(app, "GET", base + "/a").json == {"meta": {"a": "y"}}
    mismatch = h.call(app, "PUT", base + "/a", {"meta": {"b": "y"}})
    assert mismatch.status_int == 400
    assert h.call(app, "DELETE", base + "/keep").status_int == 200
    assert h.call(app, "DELETE", base + "/keep").status_int == 404
    replaced = h.call(app, "PUT", base, {"metadata": {"only": "1"}})
    assert replaced.json["metadata"] == {"only": "1"}
    assert h.call(app, "GET", base).json == {"metadata": {"only": "1"}}


def test_snapshot_update_and_metadata(app: Any, db: Database) -> None:
    snapshot_id = snapshot(app, db, available(app, db))
    renamed = h.call(app, "PUT", f"/v3/p1/snapshots/{snapshot_id}",
                     {"snapshot": {"name": "s2", "description": "d"}})
    assert renamed.status_int == 200
    assert (renamed.json["snapshot"]["name"], renamed.json["snapshot"]["description"]) == (
        "s2", "d")
    base = f"/v3/p1/snapshots/{snapshot_id}/metadata"
    assert h.call(app, "POST", base, {"metadata": {"k": "v"}}).json == {
        "metadata": {"k": "v"}}
    assert h.call(app, "GET", base + "/k").json == {"meta": {"k": "v"}}
    assert h.call(app, "DELETE", base + "/k").status_int == 200
    assert h.call(app, "GET", base).json == {"metadata": {}}


# -- actions ----------------------------------------------------------------------------


def test_bootable_and_readonly_flags(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    assert action(app, volume_id, {"os-set_bootable": {"bootable": True}}).status_int == 200
    assert h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"][
        "bootable"] == "true"
    bad = action(app, volume_id, {"os-set_bootable": {"bootable": "perhaps"}})
    assert bad.status_int == 400
    assert action(app, volume_id,
                  {"os-update_readonly_flag": {"readonly": True}}).status_int == 202
    assert db.volume_get(volume_id).admin_metadata == {"readonly": "True"}


def test_image_metadata_actions(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    set_ = action(app, volume_id, {"os-set_image_metadata": {"metadata": {"os": "deb"}}})
    assert set_.json == {"metadata": {"os": "deb"}}
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]
    assert shown["volume_image_metadata"] == {"os": "deb"}
    assert action(app, volume_id, {"os-show_image_metadata": None}).json == {
        "metadata": {"os": "deb"}}
    assert action(app, volume_id,
                  {"os-unset_image_metadata": {"key": "os"}}).status_int == 200
    assert action(app, volume_id,
                  {"os-unset_image_metadata": {"key": "os"}}).status_int == 404


def test_reset_status_is_admin_only(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    refused = action(app, volume_id, {"os-reset_status": {"status": "error"}})
    assert refused.status_int == 403
    assert "reset_status" in refused.json["forbidden"]["message"]
    done = h.call(app, "POST", f"/v3/adm/volumes/{volume_id}/action",
                  {"os-reset_status": {"status": "error"}}, token=ADMIN_TOKEN,
                  headers=ADMIN)
    assert done.status_int == 202
    assert db.volume_get(volume_id).status == states.ERROR
    unknown = h.call(app, "POST", f"/v3/adm/volumes/{volume_id}/action",
                     {"os-reset_status": {"status": "sideways"}}, token=ADMIN_TOKEN,
                     headers=ADMIN)
    assert unknown.status_int == 400


def test_force_delete_closes_attachments_and_casts(app: Any, db: Database,
                                                   rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    h.call(app, "POST", "/v1.1/p1/servers/s1/os-volume_attachments",
           {"volumeAttachment": {"volumeId": volume_id}})
    h.attach_done(db, volume_id)
    assert action(app, volume_id, {"os-force_delete": {}}).status_int == 403
    done = h.call(app, "POST", f"/v3/adm/volumes/{volume_id}/action",
                  {"os-force_delete": {}}, token=ADMIN_TOKEN, headers=ADMIN)
    assert done.status_int == 202
    assert db.volume_get(volume_id).status == states.DELETING
    assert rpcapi.methods()[-1] == "delete_volume"


def test_migration_is_refused_with_a_clear_fault(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = action(app, volume_id, {"os-migrate_volume_completion": {"new_volume": "x"}})
    assert answer.status_int == 400
    assert "not supported" in answer.json["badRequest"]["message"]


def test_an_unknown_action_names_the_supported_ones(app: Any, db: Database) -> None:
    answer = action(app, available(app, db), {"os-fly": {}})
    assert answer.status_int == 400
    assert "os-extend" in answer.json["badRequest"]["message"]


# -- delete -----------------------------------------------------------------------------


def test_cascade_delete_casts_snapshot_deletes_before_the_volume(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    first, second = snapshot(app, db, volume_id), snapshot(app, db, volume_id)
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 400
    answer = h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}?cascade=true")
    assert answer.status_int == 202
    assert rpcapi.methods()[-3:] == ["delete_snapshot", "delete_snapshot", "delete_volume"]
    assert {c.args.get("snapshot_id") for c in rpcapi.casts[-3:-1]} == {first, second}
    assert db.snapshot_get(first).status == states.SNAP_DELETING
    assert db.volume_get(volume_id).status == states.DELETING


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_the_collection_with_a_trailing_slash_is_404(app: Any, method: str) -> None:
    answer = h.call(app, method, "/v3/p1/volumes/")
    assert answer.status_int == 404


# -- listing ----------------------------------------------------------------------------


def test_sort_by_name_and_size_in_both_directions(app: Any, db: Database) -> None:
    for name, size in (("b", 2), ("a", 3), ("c", 1)):
        available(app, db, name=name, size=size)
    names = [v["name"] for v in h.call(app, "GET", "/v3/p1/volumes?sort=name:asc")
             .json["volumes"]]
    assert names == ["a", "b", "c"]
    sizes = [v["size"] for v in h.call(
        app, "GET", "/v3/p1/volumes/detail?sort_key=size&sort_dir=desc").json["volumes"]]
    assert sizes == [3, 2, 1]


def test_paging_after_a_marker_follows_the_sort(app: Any, db: Database) -> None:
    for name in "dbeac":
        available(app, db, name=name)
    seen: list[str] = []
    url = "/v3/p1/volumes?sort=name:asc&limit=2"
    while url:
        body = h.call(app, "GET", url).json
        seen += [v["name"] for v in body["volumes"]]
        links = body.get("volumes_links") or []
        url = links[0]["href"].replace("http://localhost", "") if links else ""
    assert seen == list("abcde")


@pytest.mark.parametrize(("query", "status"), [
    ("sort=color:asc", 400), ("sort=name:up", 400), ("sort=name&sort_key=size", 400),
    ("limit=-1", 400), ("limit=x", 400), ("offset=-2", 400)])
def test_bad_listing_parameters_are_400(app: Any, query: str, status: int) -> None:
    answer = h.call(app, "GET", f"/v3/p1/volumes?{query}")
    assert answer.status_int == status
    assert answer.json["badRequest"]["message"]


def test_a_limit_above_the_maximum_is_capped_not_refused(app: Any, db: Database) -> None:
    available(app, db)
    answer = h.call(app, "GET", "/v3/p1/volumes?limit=100000000")
    assert answer.status_int == 200 and len(answer.json["volumes"]) == 1


@pytest.mark.parametrize("collection", ["volumes", "snapshots"])
def test_an_unknown_marker_is_404(app: Any, collection: str) -> None:
    answer = h.call(app, "GET", f"/v3/p1/{collection}?marker=nope")
    assert answer.status_int == 404


def test_filters_by_metadata_status_and_bootable(app: Any, db: Database) -> None:
    tagged = available(app, db, metadata={"tier": "gold"})
    available(app, db, metadata={"tier": "iron"})
    found = h.call(app, "GET", '/v3/p1/volumes?metadata={"tier": "gold"}').json
    assert [v["id"] for v in found["volumes"]] == [tagged]
    assert h.call(app, "GET", "/v3/p1/volumes?status=error").json["volumes"] == []
    assert h.call(app, "GET", "/v3/p1/volumes?bootable=true").json["volumes"] == []


def test_unknown_filters_are_ignored_before_3_31_and_refused_after(app: Any) -> None:
    assert h.call(app, "GET", "/v3/p1/volumes?colour=red").status_int == 200
    refused = h.call(app, "GET", "/v3/p1/volumes?colour=red",
                     headers={"OpenStack-API-Version": "volume 3.31"})
    assert refused.status_int == 400
    assert "colour" in refused.json["badRequest"]["message"]


def test_with_count_at_3_45_counts_every_match(app: Any, db: Database) -> None:
    for _ in range(3):
        available(app, db)
    body = h.call(app, "GET", "/v3/p1/volumes?limit=1&with_count=true",
                  headers={"OpenStack-API-Version": "volume 3.45"}).json
    assert (len(body["volumes"]), body["count"]) == (1, 3)


def test_summary_at_3_12(app: Any, db: Database) -> None:
    available(app, db, size=2, metadata={"k": "v"})
    available(app, db, size=3)
    assert h.call(app, "GET", "/v3/p1/volumes/summary").status_int == 404
    body = h.call(app, "GET", "/v3/p1/volumes/summary",
                  headers={"OpenStack-API-Version": "volume 3.36"}).json
    assert body == {"volume-summary": {"total_size": 5, "total_count": 2,
                                       "metadata": {"k": ["v"]}}}


def test_snapshot_of_no_volume_is_404(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": None}})
    assert answer.status_int == 404


def test_a_header_slot_left_empty_by_a_middleware_is_no_server_error(app: Any) -> None:
    # keystonemiddleware leaves some identity headers as None in the WSGI environ.
    request = webob.Request.blank("/v3/p1/volumes")
    request.headers["X-Auth-Token"] = h.TOKEN
    request.environ["HTTP_X_SERVICE_CATALOG"] = None
    assert request.get_response(app).status_int == 200


def test_readonly_flag_shows_in_the_metadata_view(app: Any, db: Database) -> None:
    volume_id = available(app, db, metadata={"k": "v"})
    action(app, volume_id, {"os-update_readonly_flag": {"readonly": False}})
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]
    assert shown["metadata"] == {"k": "v", "readonly": "False"}
    assert h.call(app, "GET", f"/v3/p1/volumes/{volume_id}/metadata").json == {
        "metadata": {"k": "v"}}


def test_an_error_volume_view_has_only_reference_fields(app: Any, db: Database) -> None:
    volume_id = create(app)["id"]
    db.volume_transition(volume_id, (states.CREATING,),
                         {"status": states.ERROR, "status_reason": "Create failed (x)"})
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]
    assert shown["status"] == "error" and "status_reason" not in shown


def test_snapshot_force_delete_and_reported_progress(app: Any, db: Database,
                                                     rpcapi: h.RecordingRPC) -> None:
    snapshot_id = snapshot(app, db, available(app, db))
    admin = {"token": ADMIN_TOKEN, "headers": ADMIN}
    base = f"/v3/adm/snapshots/{snapshot_id}/action"
    h.call(app, "POST", base, {"os-reset_status": {"status": "creating"}}, **admin)
    reported = h.call(app, "POST", f"/v3/p1/snapshots/{snapshot_id}/action",
                      {"os-update_snapshot_status": {"status": "error", "progress": "80%"}})
    assert reported.status_int == 202
    shown = h.call(app, "GET", f"/v3/p1/snapshots/{snapshot_id}").json["snapshot"]
    assert (shown["status"], shown["os-extended-snapshot-attributes:progress"]) == (
        "error", "80%")
    assert h.call(app, "POST", f"/v3/p1/snapshots/{snapshot_id}/action",
                  {"os-force_delete": {}}).status_int == 403
    assert h.call(app, "POST", base, {"os-force_delete": {}}, **admin).status_int == 202
    assert db.snapshot_get(snapshot_id).status == states.SNAP_DELETING
    assert rpcapi.methods()[-1] == "delete_snapshot"


@pytest.mark.parametrize("collection", ["volumes", "snapshots"])
def test_a_deeply_nested_metadata_filter_is_400(app: Any, collection: str) -> None:
    answer = h.call(app, "GET", f"/v3/p1/{collection}?metadata=" + "[" * 5000)
    assert answer.status_int == 400
    assert "metadata" in answer.json["badRequest"]["message"]


def test_a_volume_of_an_encrypted_type_says_encrypted(app: Any, db: Database) -> None:
    admin = {"token": ADMIN_TOKEN, "headers": ADMIN}
    kind = h.call(app, "POST", "/v3/adm/types", {"volume_type": {"name": "luks"}},
                  **admin).json["volume_type"]
    made = h.call(app, "POST", f"/v3/adm/types/{kind['id']}/encryption",
                  {"encryption": {"provider": "luks", "control_location": "front-end",
                                  "cipher": "aes-xts-plain64", "key_size": 256}}, **admin)
    assert made.status_int == 200, made.text
    created = create(app, volume_type="luks")
    assert created["encrypted"] is True
    assert create(app)["encrypted"] is False
    listed = h.call(app, "GET", "/v3/p1/volumes/detail").json["volumes"]
    assert {v["id"]: v["encrypted"] for v in listed}[created["id"]] is True


def test_cascade_delete_on_a_down_host_is_503_and_changes_nothing(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    volume_id = available(app, db)
    snapshot_id = snapshot(app, db, volume_id)
    db.service_stopped("node1", "volmgr-volume")
    casts = len(rpcapi.casts)
    answer = h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}?cascade=true")
    assert answer.status_int == 503
    assert "node1" in answer.json["serviceUnavailable"]["message"]
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert db.snapshot_get(snapshot_id).status == states.SNAP_AVAILABLE
    assert len(rpcapi.casts) == casts


@pytest.mark.parametrize("collection", ["volumes", "snapshots"])
def test_update_refuses_a_name_longer_than_the_column(app: Any, db: Database,
                                                      collection: str) -> None:
    volume_id = available(app, db)
    item_id = volume_id if collection == "volumes" else snapshot(app, db, volume_id)
    key = collection[:-1]
    answer = h.call(app, "PUT", f"/v3/p1/{collection}/{item_id}",
                    {key: {"display_name": "n" * 256}})
    assert answer.status_int == 400
    assert "display_name" in answer.json["badRequest"]["message"]


# -- listings ---------------------------------------------------------------------------


def detail_listing_shows_attachments_as_show_does(app: Any, db: Database) -> None:
    """A detail listing reads the page's attachments by a query of its own (not the ORM
    relationship): each volume shows what its show shows, attached attachments only,
    on every page. Run on SQLite here and on PostgreSQL by
    tests/functional/test_listing_postgres.py (an array parameter there)."""
    attached = [available(app, db) for _ in range(3)]
    reserved, plain = available(app, db), available(app, db)
    for server, volume_id in zip(("s1", "s2", "s2"), attached, strict=True):
        answer = h.call(app, "POST", f"/v1.1/p1/servers/{server}/os-volume_attachments",
                        {"volumeAttachment": {"volumeId": volume_id}})
        assert answer.status_int == 202, answer.text
        h.attach_done(db, volume_id)
    h.call(app, "POST", "/v1.1/p1/servers/s3/os-volume_attachments",
           {"volumeAttachment": {"volumeId": reserved}})  # reserved, never attached

    def shown(volume_id: str) -> list[dict[str, Any]]:
        answer = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}")
        return answer.json["volume"]["attachments"]  # type: ignore[no-any-return]

    listed = {volume["id"]: volume["attachments"] for volume in
              h.call(app, "GET", "/v3/p1/volumes/detail").json["volumes"]}
    assert set(listed) == {*attached, reserved, plain}
    for volume_id in listed:
        assert listed[volume_id] == shown(volume_id)
    assert [a["server_id"] for v in attached for a in listed[v]] == ["s1", "s2", "s2"]
    assert all(a["attachment_id"] and a["volume_id"] == v
               for v in attached for a in listed[v])
    assert listed[reserved] == [] and listed[plain] == []
    paged: dict[str, Any] = {}
    marker = ""
    while True:
        page = h.call(app, "GET", f"/v3/p1/volumes/detail?limit=2{marker}").json
        paged.update((volume["id"], volume["attachments"]) for volume in page["volumes"])
        if "volumes_links" not in page:
            break
        marker = f"&marker={page['volumes'][-1]['id']}"
    assert paged == listed


def test_a_detail_listing_shows_each_volumes_attachments_as_show_does(
        app: Any, db: Database) -> None:
    detail_listing_shows_attachments_as_show_does(app, db)
