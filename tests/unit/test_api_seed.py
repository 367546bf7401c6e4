"""The seed face (/v1.1/{project}): extensions, os-volumes and os-volume_attachments,
in JSON and XML, against the in-process app with a recording RPC client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from defusedxml import ElementTree as SafeET

from tests.db_reads import newest_attachment
from tests.unit import api_helpers as h
from volmgr import states
from volmgr.db import Database

NS = "{http://docs.openstack.org/compute/api/v1.1}"
SEED_EXTENSIONS = json.loads(
    '{"extensions": [{"updated": "2011-03-25T00:00:00+00:00", "name": "Volumes", '
    '"links": [], "namespace": "http://docs.openstack.org/ext/volumes/api/v1.1", '
    '"alias": "os-volumes", "description": "Volumes support"}]}')


def create(app: Any, size: int = 1, **fields: Any) -> dict[str, Any]:
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", {"volume": {"size": size, **fields}})
    assert answer.status_int == 200, answer.text
    return answer.json["volume"]  # type: ignore[no-any-return]


def available_volume(app: Any, db: Database) -> str:
    volume_id = create(app)["id"]
    h.finish(db, volume_id)
    return volume_id


def test_extensions_json_equals_the_seed_document_field_for_field(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/extensions")
    assert answer.status_int == 200
    assert answer.json == SEED_EXTENSIONS


def test_extensions_xml_carries_the_same_values_in_the_compute_namespace(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/extensions",
                    headers={"Accept": "application/xml"})
    assert answer.content_type == "application/xml"
    assert b'xmlns:atom="http://www.w3.org/2005/Atom"' in answer.body
    root = SafeET.fromstring(answer.body)
    assert root.tag == NS + "extensions"
    (ext,) = root.findall(NS + "extension")
    seed = SEED_EXTENSIONS["extensions"][0]
    for key in ("name", "namespace", "alias", "updated"):
        assert ext.get(key) == seed[key]
    assert ext.find(NS + "description").text == seed["description"]  # type: ignore[union-attr]


def test_xml_suffix_selects_xml_and_json_suffix_forces_json(app: Any) -> None:
    xml = h.call(app, "GET", "/v1.1/p1/extensions.xml")
    assert xml.content_type == "application/xml"
    forced = h.call(app, "GET", "/v1.1/p1/extensions.json",
                    headers={"Accept": "application/xml"})
    assert forced.json == SEED_EXTENSIONS


def test_single_extension_by_alias_and_unknown_alias_is_404(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/extensions/os-volumes")
    assert answer.json == {"extension": SEED_EXTENSIONS["extensions"][0]}
    missing = h.call(app, "GET", "/v1.1/p1/extensions/os-nothing")
    assert missing.status_int == 404
    assert "os-nothing" in missing.json["itemNotFound"]["message"]


def test_create_answers_200_with_a_creating_camelcase_volume_and_casts_to_the_host(
        app: Any, rpcapi: h.RecordingRPC) -> None:
    volume = create(app, 2, display_name="vol1", display_description="d",
                    metadata={"k": "v"})
    assert volume["status"] == "creating"
    assert volume["size"] == 2
    assert volume["displayName"] == "vol1"
    assert volume["displayDescription"] == "d"
    assert volume["availabilityZone"] == "nova"
    assert volume["metadata"] == {"k": "v"}
    assert volume["attachments"] == []
    assert set(volume) == {"id", "status", "size", "availabilityZone", "createdAt",
                           "displayName", "displayDescription", "volumeType",
                           "snapshotId", "metadata", "attachments"}
    (cast,) = rpcapi.casts
    assert (cast.method, cast.host, cast.args["volume_id"]) == (
        "create_volume", "node1", volume["id"])
    assert cast.context.project_id == "p1"


def test_list_detail_and_show_return_the_projects_volumes(app: Any) -> None:
    first = create(app, display_name="a")
    second = create(app, display_name="b")
    for path in ("/v1.1/p1/os-volumes", "/v1.1/p1/os-volumes/detail"):
        listed = h.call(app, "GET", path).json["volumes"]
        assert {v["id"] for v in listed} == {first["id"], second["id"]}
    shown = h.call(app, "GET", f"/v1.1/p1/os-volumes/{first['id']}").json["volume"]
    assert shown["displayName"] == "a"


def test_list_honours_limit_and_offset(app: Any) -> None:
    ids = [create(app)["id"] for _ in range(3)]
    page = h.call(app, "GET", "/v1.1/p1/os-volumes?limit=2&offset=1").json["volumes"]
    assert len(page) == 2
    assert {v["id"] for v in page} <= set(ids)


def test_volume_xml_has_attributes_attachments_and_metadata(app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    db.volume_update(volume_id, {"metadata_": {"k": "v"}})
    answer = h.call(app, "GET", f"/v1.1/p1/os-volumes/{volume_id}.xml")
    root = SafeET.fromstring(answer.body)
    assert root.tag == "volume"
    assert root.get("id") == volume_id and root.get("size") == "1"
    assert root.get("status") == "available"
    assert root.find("attachments") is not None
    assert root.find("metadata/meta").get("key") == "k"  # type: ignore[union-attr]
    assert root.find("metadata/meta").text == "v"  # type: ignore[union-attr]


def test_create_from_an_xml_body(app: Any) -> None:
    body = (b'<?xml version="1.0"?><volume size="3" display_name="x">'
            b'<metadata><meta key="a">b</meta></metadata></volume>')
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes.xml", raw=body,
                    content_type="application/xml")
    assert answer.status_int == 200, answer.text
    root = SafeET.fromstring(answer.body)
    assert root.get("size") == "3" and root.get("displayName") == "x"
    assert root.find("metadata/meta").text == "b"  # type: ignore[union-attr]


def test_xml_with_entity_expansion_is_refused_with_400(app: Any) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><volume size="1" display_name="&b;"/>')
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", raw=bomb,
                    content_type="application/xml", headers={"Accept": "application/xml"})
    assert answer.status_int == 400
    root = SafeET.fromstring(answer.body)
    assert root.tag == NS + "badRequest" and root.get("code") == "400"
    assert "XML" in root.find(NS + "message").text  # type: ignore[union-attr, operator]


def test_deeply_nested_xml_is_400_not_a_crash(app: Any) -> None:
    body = b"<volume>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</volume>"
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", raw=body,
                    content_type="application/xml")
    assert answer.status_int == 400
    assert "nested" in answer.json["badRequest"]["message"]


def test_malformed_xml_is_400(app: Any) -> None:
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", raw=b"<volume size='1'",
                    content_type="application/xml")
    assert answer.status_int == 400
    assert "malformed XML" in answer.json["badRequest"]["message"]


def test_delete_answers_202_and_casts_to_the_volumes_host(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    volume_id = available_volume(app, db)
    answer = h.call(app, "DELETE", f"/v1.1/p1/os-volumes/{volume_id}")
    assert answer.status_int == 202
    assert db.volume_get(volume_id).status == states.DELETING
    assert rpcapi.casts[-1].method == "delete_volume"
    assert rpcapi.casts[-1].host == "node1"


def test_attach_answers_202_records_the_attachment_and_casts(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    volume_id = available_volume(app, db)
    connector = {"initiator": "iqn.1993-08.org.debian:01:abc", "host": "compute1",
                 "ip": "10.0.0.5"}
    answer = h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments",
                    {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb",
                                          "connector": connector}})
    assert answer.status_int == 202, answer.text
    assert answer.json == {"volumeAttachment": {"id": volume_id, "volumeId": volume_id,
                                                "serverId": "srv1", "device": "/dev/vdb"}}
    assert db.volume_get(volume_id).status == states.ATTACHING
    attachment = newest_attachment(db, volume_id)
    assert attachment is not None and attachment.connector == connector
    assert rpcapi.casts[-1].method == "attach_volume"
    assert rpcapi.casts[-1].args["attachment_id"] == attachment.id


@pytest.mark.parametrize("initiator", ["iqn.x", "iqn.compute-1:abc", "eui.XYZ", "naa.0",
                                       "iqn.2004-10.com.\u00dcBUNTU:x", "iqn.2004-10.com.a;rm"])
def test_attach_with_an_initiator_no_target_would_accept_is_400_and_changes_nothing(
        app: Any, db: Database, rpcapi: h.RecordingRPC, initiator: str) -> None:
    volume_id = available_volume(app, db)
    casts = len(rpcapi.casts)
    answer = h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments",
                    {"volumeAttachment": {"volumeId": volume_id,
                                          "connector": {"initiator": initiator}}})
    assert answer.status_int == 400
    assert "iSCSI name" in answer.json["badRequest"]["message"]
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert len(rpcapi.casts) == casts


def test_connection_info_is_shown_to_the_owner_once_in_use_and_never_in_lists(
        app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    path = f"/v1.1/p1/servers/srv1/os-volume_attachments/{volume_id}"
    h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments",
           {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb"}})
    assert "connection_info" not in h.call(app, "GET", path).json["volumeAttachment"]
    h.attach_done(db, volume_id)
    shown = h.call(app, "GET", path).json["volumeAttachment"]
    assert shown["connection_info"]["data"]["auth_password"] == "secret"
    listed = h.call(app, "GET", "/v1.1/p1/servers/srv1/os-volume_attachments").json
    assert listed == {"volumeAttachments": [{"id": volume_id, "volumeId": volume_id,
                                             "serverId": "srv1", "device": "/dev/vdb"}]}
    volume = h.call(app, "GET", f"/v1.1/p1/os-volumes/{volume_id}").json["volume"]
    assert volume["status"] == "in-use"
    assert volume["attachments"][0]["serverId"] == "srv1"
    admin = h.call(app, "GET", path, token="admin:p9", headers={"X-Roles": "admin"})
    assert admin.status_int == 200
    assert "connection_info" not in admin.json["volumeAttachment"]


def test_attachment_xml_carries_connection_info(app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments.xml",
           raw=f'<volumeAttachment volumeId="{volume_id}" device="/dev/vdc">'
           '<connector initiator="iqn.2004-10.com.example:host1"/></volumeAttachment>'
           .encode(), content_type="application/xml")
    attachment = newest_attachment(db, volume_id)
    assert attachment is not None
    assert attachment.connector == {"initiator": "iqn.2004-10.com.example:host1"}
    h.attach_done(db, volume_id)
    answer = h.call(app, "GET",
                    f"/v1.1/p1/servers/srv1/os-volume_attachments/{volume_id}.xml")
    root = SafeET.fromstring(answer.body)
    assert root.get("device") == "/dev/vdc"
    assert root.find("connection_info/data").get("auth_method") == "CHAP"  # type: ignore[union-attr]


def test_detach_answers_202_and_casts(app: Any, db: Database,
                                      rpcapi: h.RecordingRPC) -> None:
    volume_id = available_volume(app, db)
    h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments",
           {"volumeAttachment": {"volumeId": volume_id}})
    h.attach_done(db, volume_id)
    answer = h.call(app, "DELETE",
                    f"/v1.1/p1/servers/srv1/os-volume_attachments/{volume_id}")
    assert answer.status_int == 202
    assert db.volume_get(volume_id).status == states.DETACHING
    assert rpcapi.casts[-1].method == "detach_volume"


def test_attach_of_an_in_use_volume_is_refused_with_409_naming_its_status(
        app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    body = {"volumeAttachment": {"volumeId": volume_id}}
    h.call(app, "POST", "/v1.1/p1/servers/srv1/os-volume_attachments", body)
    h.attach_done(db, volume_id)
    again = h.call(app, "POST", "/v1.1/p1/servers/srv2/os-volume_attachments", body)
    assert again.status_int == 409
    assert "in-use" in again.json["conflictingRequest"]["message"]


def test_show_attachment_of_an_unattached_volume_is_404(app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    answer = h.call(app, "GET", f"/v1.1/p1/servers/srv1/os-volume_attachments/{volume_id}")
    assert answer.status_int == 404
    assert answer.json["itemNotFound"]["code"] == 404


def test_detach_of_an_unattached_volume_is_404(app: Any, db: Database) -> None:
    volume_id = available_volume(app, db)
    answer = h.call(app, "DELETE",
                    f"/v1.1/p1/servers/srv1/os-volume_attachments/{volume_id}")
    assert answer.status_int == 404


def test_unknown_seed_path_answers_an_xml_fault_when_xml_is_asked(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/os-nothing.xml")
    assert answer.status_int == 404
    assert SafeET.fromstring(answer.body).tag == NS + "itemNotFound"
