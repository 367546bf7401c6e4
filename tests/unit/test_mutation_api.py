"""Behaviour of the API that a mutation-testing run found unpinned (see docs/decisions.md,
"Mutation testing"): another project's writes are refused and change nothing, filters
are validated, the admin's reset sets every field it accepts, and errors name what
they are about."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import webob
from oslo_config import cfg

from tests.unit import api_helpers as h
from tests.unit.test_api_v3_attachments import AclDriver, LoopbackRPC
from volmgr import exception, states
from volmgr.api import auth
from volmgr.db import Database
from volmgr.volume.manager import VolumeManager

ADMIN = {"X-Roles": "admin"}
ADMIN_TOKEN = "root:adm"
INITIATOR = "iqn.1993-08.org.debian:01:cafe"


def _available(app: Any, db: Database, **fields: Any) -> str:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1, **fields}})
    assert answer.status_int == 202, answer.text
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def _shown(app: Any, volume_id: str) -> dict[str, Any]:
    return h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json[  # type: ignore[no-any-return]
        "volume"]


def test_another_project_cannot_rename_my_volume_nor_replace_its_metadata(
        app: Any, db: Database) -> None:
    volume_id = _available(app, db, name="mine", metadata={"owner": "p1"})
    answer = h.call(app, "PUT", f"/v3/p2/volumes/{volume_id}",
                    {"volume": {"name": "stolen", "metadata": {"owner": "p2"}}},
                    token=h.OTHER_TOKEN)
    assert answer.status_int == 404
    shown = _shown(app, volume_id)
    assert (shown["name"], shown["metadata"]) == ("mine", {"owner": "p1"})


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_another_project_cannot_change_my_volumes_metadata(app: Any, db: Database,
                                                          method: str) -> None:
    volume_id = _available(app, db, metadata={"owner": "p1"})
    answer = h.call(app, method, f"/v3/p2/volumes/{volume_id}/metadata",
                    {"metadata": {"owner": "p2"}}, token=h.OTHER_TOKEN)
    assert answer.status_int == 404
    assert _shown(app, volume_id)["metadata"] == {"owner": "p1"}


def test_another_project_cannot_set_image_metadata_on_my_volume(app: Any,
                                                                db: Database) -> None:
    volume_id = _available(app, db)
    answer = h.call(app, "POST", f"/v3/p2/volumes/{volume_id}/action",
                    {"os-set_image_metadata": {"metadata": {"os": "evil"}}},
                    token=h.OTHER_TOKEN)
    assert answer.status_int == 404
    assert _shown(app, volume_id).get("volume_image_metadata", {}) == {}


def test_the_size_filter_selects_by_size_and_refuses_a_negative_size(
        app: Any, db: Database) -> None:
    volume_id = _available(app, db)
    listed = h.call(app, "GET", "/v3/p1/volumes?size=1")
    assert listed.status_int == 200, listed.text
    assert [v["id"] for v in listed.json["volumes"]] == [volume_id]
    assert h.call(app, "GET", "/v3/p1/volumes?size=0").json["volumes"] == []
    answer = h.call(app, "GET", "/v3/p1/volumes?size=-1")
    assert answer.status_int == 400
    assert "size" in answer.json["badRequest"]["message"]


def test_the_admins_reset_sets_the_migration_status(app: Any, db: Database) -> None:
    volume_id = _available(app, db)
    answer = h.call(app, "POST", f"/v3/adm/volumes/{volume_id}/action",
                    {"os-reset_status": {"migration_status": "migrating"}},
                    token=ADMIN_TOKEN, headers=ADMIN)
    assert answer.status_int == 202, answer.text
    shown = h.call(app, "GET", f"/v3/adm/volumes/{volume_id}", token=ADMIN_TOKEN,
                   headers=ADMIN).json["volume"]
    assert shown["os-vol-mig-status-attr:migstat"] == "migrating"
    assert shown["status"] == "available"


def test_unsetting_a_missing_image_metadata_key_is_a_404_naming_the_key(
        app: Any, db: Database) -> None:
    volume_id = _available(app, db)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-unset_image_metadata": {"key": "no-such-key"}})
    assert answer.status_int == 404
    assert "no-such-key" in answer.json["itemNotFound"]["message"]


@pytest.mark.parametrize("binary", ["cinder-volume", "cinder-backup"])
def test_enabling_a_service_that_does_not_run_names_the_host(app: Any, binary: str) -> None:
    answer = h.call(app, "PUT", "/v3/adm/os-services/enable",
                    {"host": "ghost-host", "binary": binary},
                    token=ADMIN_TOKEN, headers=ADMIN)
    assert answer.status_int == 404
    assert "ghost-host" in answer.json["itemNotFound"]["message"]


def test_a_keystone_token_without_a_project_is_refused_as_not_project_scoped() -> None:
    http = webob.Request.blank("/v3/p1/volumes", headers={
        "X-Identity-Status": "Confirmed", "X-User-Id": "u1"})
    with pytest.raises(exception.NotAuthorized, match="project-scoped"):
        auth.keystone_context(http)


@pytest.mark.parametrize(("method", "path", "body", "policy"), [
    ("POST", "/v3/p1/volumes/{volume_id}/action", {"os-force_detach": {}},
     "volume_extension:volume_admin_actions:force_detach"),
    ("GET", "/v3/p1/qos-specs/any/disassociate_all", None,
     "volume_extension:qos_specs_manage:update"),
    ("POST", "/v3/p1/types", {"volume_type": {"name": "gold"}},
     "volume_extension:type_create"),
])
def test_a_member_is_refused_an_admin_call_by_the_policys_name(
        app: Any, db: Database, method: str, path: str, body: Any, policy: str) -> None:
    volume_id = _available(app, db)
    answer = h.call(app, method, path.format(volume_id=volume_id), body)
    assert answer.status_int == 403
    assert answer.json["forbidden"]["message"] == (
        f"Policy doesn't allow {policy} to be performed.")


def test_a_type_with_an_over_long_description_is_refused_naming_the_field(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/adm/types",
                    {"volume_type": {"name": "gold", "description": "d" * 256}},
                    token=ADMIN_TOKEN, headers=ADMIN)
    assert answer.status_int == 400
    assert "'description'" in answer.json["badRequest"]["message"]


def test_freeze_without_a_host_says_the_host_is_required(app: Any) -> None:
    answer = h.call(app, "PUT", "/v3/adm/os-services/freeze", {},
                    token=ADMIN_TOKEN, headers=ADMIN)
    assert answer.status_int == 400
    assert "'host' is required" in answer.json["badRequest"]["message"]


def test_a_volume_shows_replication_status_as_the_v3_schema_requires(
        app: Any, db: Database) -> None:
    shown = _shown(app, _available(app, db))
    assert "replication_status" in shown and shown["replication_status"] is None


def test_a_client_accepting_only_text_xml_gets_xml(app: Any) -> None:
    answer = h.call(app, "GET", "/v1.1/p1/os-volumes", headers={"Accept": "text/xml"})
    assert answer.status_int == 200
    assert answer.content_type in ("application/xml", "text/xml")
    assert answer.body.lstrip().startswith(b"<")


def test_deleting_a_volume_being_cloned_says_so_while_other_volumes_have_snapshots(
        app: Any, db: Database) -> None:
    source = _available(app, db)
    clone = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "source_volid": source}})
    assert clone.status_int == 202, clone.text
    other = _available(app, db)
    snapshot = h.call(app, "POST", "/v3/p1/snapshots",
                      {"snapshot": {"volume_id": other}})
    assert snapshot.status_int == 202, snapshot.text
    answer = h.call(app, "DELETE", f"/v3/p1/volumes/{source}")
    assert answer.status_int == 400
    assert "being cloned" in answer.json["badRequest"]["message"]


@pytest.fixture
def looped(conf: cfg.ConfigOpts, db: Database) -> Iterator[tuple[Any, AclDriver]]:
    """An app whose casts and calls reach a real manager over an in-memory driver."""
    driver = AclDriver()
    manager = VolumeManager(conf, db, driver, host="node1")
    h.register_host(db, "node1")
    yield h.make_app(conf, db, LoopbackRPC(manager)), driver
    manager.wait_idle(10)
    manager.close()


def test_initialize_connection_on_a_free_volume_reserves_and_connects_one_attachment(
        looped: tuple[Any, AclDriver], db: Database) -> None:
    app, driver = looped
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host="node1",
                              status=states.AVAILABLE)
    driver.volumes[volume.id] = 1
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume.id}/action",
                    {"os-initialize_connection": {"connector": {"initiator": INITIATOR}}})
    assert answer.status_int == 200, answer.text
    assert answer.json["connection_info"]["driver_volume_type"] == "iscsi"
    (attachment,) = db.attachment_list(volume_id=volume.id)
    assert attachment.attach_status == states.ATTACH_ATTACHING
    assert attachment.connection_info and driver.acl[volume.id] == {INITIATOR}
    attached = h.call(app, "POST", f"/v3/p1/volumes/{volume.id}/action",
                      {"os-attach": {"instance_uuid": "srv-1", "mountpoint": "/dev/vdb"}})
    assert attached.status_int == 202
    assert db.volume_get(volume.id).status == states.IN_USE
