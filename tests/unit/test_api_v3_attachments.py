"""The v3 attachments API and the volume connection actions as a specification: one
attachment model behind three doors, connection_info in the reply, multiattach, the
state machine of docs/rpc.md, and 503 when the storage host is down.

The RPC client here runs a real VolumeManager (over a FakeDriver that keeps an ACL of
admitted initiators) in-process: casts are delivered at once, calls answer."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from tests.unit import api_helpers as h
from tests.unit.volume_fakes import FakeDriver
from volmgr import exception, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume.manager import VolumeManager
from volmgr.volume.operations import volume_ref
from volmgr.volume.recovery import Recovery

HOST = "node1"
V = {"OpenStack-API-Version": "volume 3.54"}
ADMIN = {**V, "X-Roles": "admin"}
INI1 = "iqn.1993-08.org.debian:01:aaaa"
INI2 = "iqn.1993-08.org.debian:01:bbbb"


class AclDriver(FakeDriver):
    """A FakeDriver whose exports remember the initiators admitted to them."""

    def __init__(self) -> None:
        super().__init__()
        self.acl: dict[str, set[str]] = {}

    def initialize_connection(self, volume: Any, connector: dict[str, Any]) -> dict[str, Any]:
        info = super().initialize_connection(volume, connector)
        if volume.id not in self.exports:
            raise exception.TargetError(reason="not exported")
        self.acl.setdefault(volume.id, set()).add(connector.get("initiator") or "*")
        return info

    def terminate_connection(self, volume: Any, connector: dict[str, Any]) -> None:
        super().terminate_connection(volume, connector)
        self.acl.get(volume.id, set()).discard(connector.get("initiator") or "*")

    def remove_export(self, volume: Any) -> None:
        super().remove_export(volume)
        self.acl.pop(volume.id, None)


class LoopbackRPC(h.RecordingRPC):
    """Records casts like RecordingRPC, then delivers them (and calls) to a manager."""

    def __init__(self, manager: VolumeManager) -> None:
        super().__init__()
        self.manager = manager
        self.down = False

    def _record(self, method: str, context: RequestContext, host: str,
                **args: Any) -> None:
        super()._record(method, context, host, **args)
        if method in ("attach_volume", "detach_volume"):
            getattr(self.manager, method)(context.to_dict(), **args)
            assert self.manager.wait_idle(10)

    def connect_attachment(self, context: RequestContext, host: str, volume_id: str,
                           attachment_id: str, connector: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise exception.ServiceUnavailable(reason="timed out")
        return self.manager.connect_attachment(context.to_dict(), volume_id,
                                               attachment_id, connector)

    def terminate_connection(self, context: RequestContext, host: str, volume_id: str,
                             connector: dict[str, Any],
                             attachment_id: str | None = None) -> None:
        self.manager.terminate_connection(context.to_dict(), volume_id, connector,
                                          attachment_id)


@pytest.fixture
def driver() -> AclDriver:
    return AclDriver()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database, driver: AclDriver) -> Any:
    mgr = VolumeManager(conf, db, driver, host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


@pytest.fixture
def loop(manager: VolumeManager) -> LoopbackRPC:
    return LoopbackRPC(manager)


@pytest.fixture
def api(conf: cfg.ConfigOpts, db: Database, loop: LoopbackRPC) -> Any:
    h.register_host(db, HOST)
    return h.make_app(conf, db, loop)


def volume(db: Database, driver: AclDriver, *, multiattach: bool = False,
           project: str = "p1") -> str:
    vol = db.volume_create(project_id=project, user_id="u1", size=1, host=HOST,
                           display_name="v", status=states.AVAILABLE,
                           multiattach=multiattach)
    driver.volumes[vol.id] = 1
    return vol.id


def status(db: Database, volume_id: str) -> str:
    return db.volume_get(volume_id).status


def post(api: Any, body: Any, headers: dict[str, str] = V) -> Any:
    return h.call(api, "POST", "/v3/p1/attachments", body, headers=headers)


def action(api: Any, volume_id: str, body: Any, headers: dict[str, str] = V) -> Any:
    return h.call(api, "POST", f"/v3/p1/volumes/{volume_id}/action", body, headers=headers)


# -- the v3 attachments API -----------------------------------------------------------


def test_reserve_connect_complete_delete_walks_the_states_and_answers_connection_info(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    created = post(api, {"attachment": {"volume_uuid": vol, "instance_uuid": "srv-1"}})
    assert created.status_int == 200, created.text
    att = created.json["attachment"]
    assert (att["status"], att["instance"], att["volume_id"], att["connection_info"]) == (
        "reserved", "srv-1", vol, {})
    assert status(db, vol) == "reserved" and vol not in driver.exports

    updated = h.call(api, "PUT", f"/v3/p1/attachments/{att['id']}",
                     {"attachment": {"connector": {"initiator": INI1, "host": "c1"}}},
                     headers=V)
    assert updated.status_int == 200, updated.text
    info = updated.json["attachment"]["connection_info"]
    assert info["driver_volume_type"] == "iscsi"
    assert info["data"]["access_mode"] == "rw" and info["data"]["auth_password"] == "secret"
    assert updated.json["attachment"]["status"] == "attaching"
    assert driver.acl[vol] == {INI1}

    done = h.call(api, "POST", f"/v3/p1/attachments/{att['id']}/action",
                  {"os-complete": None}, headers=V)
    assert done.status_int == 204, done.text
    assert status(db, vol) == "in-use"
    shown = h.call(api, "GET", f"/v3/p1/volumes/{vol}", headers=V).json["volume"]
    assert [a["attachment_id"] for a in shown["attachments"]] == [att["id"]]

    gone = h.call(api, "DELETE", f"/v3/p1/attachments/{att['id']}", headers=V)
    assert gone.status_int == 200 and gone.json == {"attachments": []}
    assert status(db, vol) == "available"
    assert vol not in driver.exports and vol not in driver.acl


def test_create_with_a_connector_answers_connection_info_and_ro_mode_at_354(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    created = post(api, {"attachment": {"volume_uuid": vol, "instance_uuid": "srv-1",
                                        "mode": "ro",
                                        "connector": {"initiator": INI1, "host": "c1"}}})
    assert created.status_int == 200, created.text
    att = created.json["attachment"]
    assert att["attach_mode"] == "ro"
    assert att["connection_info"]["data"]["access_mode"] == "ro"
    assert att["status"] == "attaching"
    below = post(api, {"attachment": {"volume_uuid": vol, "mode": "ro"}},
                 headers={"OpenStack-API-Version": "volume 3.53"})
    assert below.status_int == 400


def test_attachments_are_routes_from_327_and_complete_from_344(
        api: Any, db: Database, driver: AclDriver) -> None:
    assert h.call(api, "GET", "/v3/p1/attachments",
                  headers={"OpenStack-API-Version": "volume 3.26"}).status_int == 404
    assert h.call(api, "GET", "/v3/p1/attachments",
                  headers={"OpenStack-API-Version": "volume 3.27"}).status_int == 200
    vol = volume(db, driver)
    att = post(api, {"attachment": {"volume_uuid": vol}}).json["attachment"]
    old = h.call(api, "POST", f"/v3/p1/attachments/{att['id']}/action",
                 {"os-complete": None}, headers={"OpenStack-API-Version": "volume 3.43"})
    assert old.status_int == 404


def test_a_second_attachment_of_a_plain_volume_is_refused(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    assert post(api, {"attachment": {"volume_uuid": vol}}).status_int == 200
    again = post(api, {"attachment": {"volume_uuid": vol}})
    assert again.status_int == 400, again.text


def test_multiattach_admits_each_initiator_and_each_detach_withdraws_only_its_own(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver, multiattach=True)
    ids = []
    for server, initiator in (("s1", INI1), ("s2", INI2)):
        att = post(api, {"attachment": {"volume_uuid": vol, "instance_uuid": server,
                                        "connector": {"initiator": initiator,
                                                      "host": server}}})
        assert att.status_int == 200, att.text
        ids.append(att.json["attachment"]["id"])
        assert h.call(api, "POST", f"/v3/p1/attachments/{ids[-1]}/action",
                      {"os-complete": None}, headers=V).status_int == 204
    assert status(db, vol) == "in-use" and driver.acl[vol] == {INI1, INI2}
    left = h.call(api, "DELETE", f"/v3/p1/attachments/{ids[0]}", headers=V)
    assert [a["id"] for a in left.json["attachments"]] == [ids[1]]
    assert status(db, vol) == "in-use" and driver.acl[vol] == {INI2}
    assert vol in driver.exports
    h.call(api, "DELETE", f"/v3/p1/attachments/{ids[1]}", headers=V)
    assert status(db, vol) == "available" and vol not in driver.exports


def test_list_filters_and_another_project_sees_nothing(
        api: Any, db: Database, driver: AclDriver) -> None:
    one, two = volume(db, driver), volume(db, driver)
    a1 = post(api, {"attachment": {"volume_uuid": one, "instance_uuid": "s1"}})
    post(api, {"attachment": {"volume_uuid": two, "instance_uuid": "s2"}})
    listed = h.call(api, "GET", f"/v3/p1/attachments?volume_id={one}", headers=V)
    assert [a["id"] for a in listed.json["attachments"]] == [a1.json["attachment"]["id"]]
    detail = h.call(api, "GET", "/v3/p1/attachments/detail?instance_id=s2", headers=V)
    assert [a["volume_id"] for a in detail.json["attachments"]] == [two]
    assert "connection_info" in detail.json["attachments"][0]
    bad = h.call(api, "GET", "/v3/p1/attachments?colour=red", headers=V)
    assert bad.status_int == 400
    other = h.call(api, "GET", "/v3/p2/attachments", token=h.OTHER_TOKEN, headers=V)
    assert other.json["attachments"] == []
    stranger = h.call(api, "GET", f"/v3/p2/attachments/{a1.json['attachment']['id']}",
                      token=h.OTHER_TOKEN, headers=V)
    assert stranger.status_int == 404


def test_a_host_that_is_down_answers_503_before_anything_is_written(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = db.volume_create(project_id="p1", user_id="u1", size=1, host="node-gone",
                           display_name="v", status=states.AVAILABLE).id
    answer = post(api, {"attachment": {"volume_uuid": vol,
                                       "connector": {"initiator": INI1}}})
    assert answer.status_int == 503, answer.text
    assert "node-gone" in answer.json["serviceUnavailable"]["message"]
    assert status(db, vol) == "available" and not db.attachment_list(volume_id=vol)
    legacy = action(api, vol, {"os-initialize_connection": {
        "connector": {"initiator": INI1}}})
    assert legacy.status_int == 503
    assert status(db, vol) == "available" and not db.attachment_list(volume_id=vol)
    reserved = post(api, {"attachment": {"volume_uuid": vol}}).json["attachment"]
    put = h.call(api, "PUT", f"/v3/p1/attachments/{reserved['id']}",
                 {"attachment": {"connector": {"initiator": INI1}}}, headers=V)
    assert put.status_int == 503
    assert db.attachment_get(reserved["id"]).attach_status == "reserved"


def test_a_call_that_times_out_answers_503(api: Any, db: Database, driver: AclDriver,
                                          loop: LoopbackRPC) -> None:
    vol = volume(db, driver)
    att = post(api, {"attachment": {"volume_uuid": vol}}).json["attachment"]
    loop.down = True
    answer = h.call(api, "PUT", f"/v3/p1/attachments/{att['id']}",
                    {"attachment": {"connector": {"initiator": INI1}}}, headers=V)
    assert answer.status_int == 503


def test_a_connect_the_host_refuses_leaves_error_attaching_and_nothing_admitted(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    att = post(api, {"attachment": {"volume_uuid": vol}}).json["attachment"]
    driver.fail["initialize_connection"] = exception.TargetError(reason="tgtd gone")
    answer = h.call(api, "PUT", f"/v3/p1/attachments/{att['id']}",
                    {"attachment": {"connector": {"initiator": INI1}}}, headers=V)
    assert answer.status_int == 500
    assert db.attachment_get(att["id"]).attach_status == "error_attaching"
    assert vol not in driver.exports
    del driver.fail["initialize_connection"]
    retried = h.call(api, "PUT", f"/v3/p1/attachments/{att['id']}",
                     {"attachment": {"connector": {"initiator": INI1}}}, headers=V)
    assert retried.status_int == 200 and driver.acl[vol] == {INI1}


# -- the volume actions (legacy) --------------------------------------------------------


def test_legacy_actions_walk_reserve_to_detach_and_the_v3_api_sees_it(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    assert action(api, vol, {"os-reserve": {}}).status_int == 202
    assert status(db, vol) == "attaching"
    assert action(api, vol, {"os-reserve": {}}).status_int == 400
    init = action(api, vol, {"os-initialize_connection": {
        "connector": {"initiator": INI1, "host": "c1"}}})
    assert init.status_int == 200, init.text
    assert init.json["connection_info"]["data"]["auth_method"] == "CHAP"
    assert action(api, vol, {"os-attach": {"instance_uuid": "srv-9",
                                           "mountpoint": "/dev/vdb"}}).status_int == 202
    assert status(db, vol) == "in-use"
    listed = h.call(api, "GET", f"/v3/p1/attachments?volume_id={vol}", headers=V)
    (att,) = listed.json["attachments"]
    assert (att["status"], att["instance"]) == ("attached", "srv-9")
    seed = h.call(api, "GET", f"/v1.1/p1/servers/srv-9/os-volume_attachments/{vol}")
    assert seed.status_int == 200 and seed.json["volumeAttachment"]["device"] == "/dev/vdb"

    assert action(api, vol, {"os-begin_detaching": {}}).status_int == 202
    assert status(db, vol) == "detaching"
    assert action(api, vol, {"os-roll_detaching": {}}).status_int == 202
    assert status(db, vol) == "in-use"
    action(api, vol, {"os-begin_detaching": {}})
    assert action(api, vol, {"os-terminate_connection": {
        "connector": {"initiator": INI1, "host": "c1"}}}).status_int == 202
    assert driver.acl[vol] == set()
    assert action(api, vol, {"os-detach": {"attachment_id": att["id"]}}).status_int == 202
    assert status(db, vol) == "available" and vol not in driver.exports


def test_reserve_then_unreserve_returns_to_available(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    action(api, vol, {"os-reserve": {}})
    assert action(api, vol, {"os-unreserve": {}}).status_int == 202
    assert status(db, vol) == "available" and not db.attachment_list(volume_id=vol)
    missing = "0e3fb5a0-0000-4000-8000-000000000000"
    assert action(api, missing, {"os-reserve": {}}).status_int == 404
    assert action(api, missing, {"os-unreserve": {}}).status_int == 404
    assert action(api, "xxx", {"os-detach": {}}).status_int == 404


def test_os_attach_without_a_reservation_and_force_detach_by_an_admin(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    assert action(api, vol, {"os-attach": {"instance_uuid": "srv-1",
                                           "mountpoint": "/dev/vdc"}}).status_int == 202
    shown = h.call(api, "GET", f"/v3/p1/volumes/{vol}", headers=V).json["volume"]
    (att,) = shown["attachments"]
    assert (att["server_id"], att["device"], att["id"]) == ("srv-1", "/dev/vdc", vol)
    assert db.volume_transition(vol, ("in-use",), {"status": "error"})
    refused = action(api, vol, {"os-force_detach": {"attachment_id": att["attachment_id"]}})
    assert refused.status_int == 403
    forced = action(api, vol, {"os-force_detach": {"attachment_id": att["attachment_id"]}},
                    headers=ADMIN)
    assert forced.status_int == 202, forced.text
    assert status(db, vol) == "available"


def test_an_attachment_made_through_the_compute_face_ends_through_v3(
        api: Any, db: Database, driver: AclDriver) -> None:
    vol = volume(db, driver)
    made = h.call(api, "POST", "/v1.1/p1/servers/srv-5/os-volume_attachments",
                  {"volumeAttachment": {"volumeId": vol, "device": "/dev/vdb",
                                        "connector": {"initiator": INI1}}})
    assert made.status_int == 202, made.text
    assert status(db, vol) == "in-use" and driver.acl[vol] == {INI1}
    (att,) = h.call(api, "GET", "/v3/p1/attachments", headers=V).json["attachments"]
    assert (att["instance"], att["status"]) == ("srv-5", "attached")
    h.call(api, "DELETE", f"/v3/p1/attachments/{att['id']}", headers=V)
    assert status(db, vol) == "available" and vol not in driver.exports


# -- recovery of a half-made connect ----------------------------------------------------


def test_recovery_undoes_a_connect_that_never_stored_its_connection_info(
        api: Any, db: Database, driver: AclDriver, manager: VolumeManager,
        conf: cfg.ConfigOpts) -> None:
    vol = volume(db, driver)
    att = post(api, {"attachment": {"volume_uuid": vol}}).json["attachment"]
    # What a manager killed between admitting the initiator and recording it leaves:
    db.attachment_connect_begin(att["id"], {"initiator": INI1})
    driver.create_export(volume_ref(db.volume_get(vol)))
    driver.acl[vol] = {INI1}
    conf.set_override("recovery_age", 0, group="volume")
    Recovery(conf, db, manager).run_once()
    assert manager.wait_idle(10)
    assert db.attachment_get(att["id"]).attach_status == "reserved"
    assert vol not in driver.exports and not driver.acl.get(vol)
    assert status(db, vol) == "reserved"


def test_list_pages_newest_first_by_default_and_admins_see_every_project(
        api: Any, db: Database, driver: AclDriver) -> None:
    made = [post(api, {"attachment": {"volume_uuid": volume(db, driver),
                                      "instance_uuid": f"s{n}"}}).json["attachment"]["id"]
            for n in range(3)]
    other = volume(db, driver, project="p2")
    foreign = db.attachment_reserve(other, server_id="sx", project_id=None,
                                    flow=states.FLOW_V3).id
    page = h.call(api, "GET", "/v3/p1/attachments?limit=2", headers=V).json["attachments"]
    assert [a["id"] for a in page] == made[::-1][:2]
    rest = h.call(api, "GET", f"/v3/p1/attachments?limit=2&marker={page[-1]['id']}",
                  headers=V).json["attachments"]
    assert [a["id"] for a in rest] == [made[0]]
    oldest = h.call(api, "GET", "/v3/p1/attachments?sort=created_at:asc&offset=1",
                    headers=V).json["attachments"]
    assert [a["id"] for a in oldest] == made[1:]
    mine = h.call(api, "GET", "/v3/p1/attachments", headers=ADMIN).json["attachments"]
    assert foreign not in {a["id"] for a in mine}
    everyone = h.call(api, "GET", "/v3/p1/attachments?all_tenants=1",
                      headers=ADMIN).json["attachments"]
    assert foreign in {a["id"] for a in everyone}
    reserved = h.call(api, "GET", "/v3/p1/attachments?status=attached",
                      headers=V).json["attachments"]
    assert reserved == []
