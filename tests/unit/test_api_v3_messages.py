"""Block Storage v3 user messages (3.3): when a request ends in ``error_*`` its owner
can read why, in the reference service's format, and nothing more than the kind of
failure."""

from __future__ import annotations

import datetime
import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import rpc, states
from volmgr.db import Database, messages, models

V33 = {"OpenStack-API-Version": "volume 3.3"}
V35 = {"OpenStack-API-Version": "volume 3.5"}
ADMIN = {"X-Roles": "admin", **V33}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%f"
SECRET_REASON = ("storage command lvcreate failed: /dev/vg-secret/volume-1 on "
                 "host storage-07")


def list_messages(app: Any, token: str = h.TOKEN, query: str = "",
                  headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    project = token.split(":")[1]
    answer = h.call(app, "GET", f"/v3/{project}/messages{query}", token=token,
                    headers=headers or V33)
    assert answer.status_int == 200, answer.text
    return answer.json["messages"]  # type: ignore[no-any-return]


def unscheduled_volume(app: Any, db: Database, token: str = h.TOKEN) -> tuple[str, str]:
    """Create a volume no host can take; its id and the create's request id."""
    db.service_set_disabled("node1", rpc.TOPIC, True)
    project = token.split(":")[1]
    answer = h.call(app, "POST", f"/v3/{project}/volumes", {"volume": {"size": 1}},
                    token=token)
    assert answer.status_int == 202, answer.text
    db.service_set_disabled("node1", rpc.TOPIC, False)
    assert answer.json["volume"]["status"] == states.ERROR
    return answer.json["volume"]["id"], answer.headers["x-openstack-request-id"]


def placed_volume(db: Database, status: str = states.CREATING,
                  project: str = "p1") -> str:
    volume = db.volume_create(project_id=project, user_id="u1", size=1, host="node1",
                              status=status)
    return volume.id


def test_a_volume_no_host_can_take_leaves_a_message_in_the_reference_format(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    conf.set_override("message_ttl", 3600)
    volume_id, request_id = unscheduled_volume(app, db)
    (message,) = list_messages(app)
    assert set(message) == {"id", "event_id", "user_message", "message_level",
                            "created_at", "guaranteed_until", "request_id", "links",
                            "resource_type", "resource_uuid"}
    assert UUID.match(message["id"])
    assert message["event_id"] == "VOLUME_VOLUME_001_003"
    assert message["user_message"].startswith("schedule allocate volume:")
    assert "No storage host" in message["user_message"]
    assert message["message_level"] == "ERROR"
    assert (message["resource_type"], message["resource_uuid"]) == ("VOLUME", volume_id)
    assert message["request_id"] == request_id
    created = datetime.datetime.strptime(message["created_at"], TIMESTAMP)
    until = datetime.datetime.strptime(message["guaranteed_until"], TIMESTAMP)
    assert until - created == datetime.timedelta(seconds=3600)
    assert {"rel": "self",
            "href": f"http://localhost/v3/p1/messages/{message['id']}"} in message["links"]
    shown = h.call(app, "GET", f"/v3/p1/messages/{message['id']}", headers=V33)
    assert shown.status_int == 200
    assert shown.json == {"message": message}


def test_messages_need_microversion_3_3(app: Any, db: Database) -> None:
    unscheduled_volume(app, db)
    for version in (None, "3.2"):
        headers = {"OpenStack-API-Version": f"volume {version}"} if version else {}
        answer = h.call(app, "GET", "/v3/p1/messages", headers=headers)
        assert answer.status_int == 404


@pytest.mark.parametrize(("start", "end", "event", "action"), [
    (states.CREATING, states.ERROR, "VOLUME_VOLUME_008_012",
     "create volume from backend storage"),
    (states.DELETING, states.ERROR_DELETING, "VOLUME_VOLUME_901_901", "delete volume"),
    (states.ATTACHING, states.ERROR_ATTACHING, "VOLUME_VOLUME_002_021", "attach volume"),
    (states.DETACHING, states.ERROR_DETACHING, "VOLUME_VOLUME_902_022", "detach volume"),
    (states.EXTENDING, states.ERROR_EXTENDING, "VOLUME_VOLUME_007_010", "extend volume"),
])
def test_every_volume_failure_leaves_one_message_without_the_hosts_details(
        app: Any, db: Database, start: str, end: str, event: str, action: str) -> None:
    volume_id = placed_volume(db, start)
    with messages.request_scope("req-failing-one"):
        assert db.volume_transition(volume_id, (start,),
                                    {"status": end, "status_reason": SECRET_REASON})
    (message,) = list_messages(app)
    assert message["event_id"] == event
    assert message["user_message"].startswith(action + ":")
    assert message["resource_uuid"] == volume_id
    assert message["request_id"] == "req-failing-one"
    for secret in ("lvcreate", "/dev", "vg-secret", "storage-07", "volume-1"):
        assert secret not in message["user_message"]


def test_a_failed_extend_through_its_own_path_leaves_a_message(app: Any,
                                                               db: Database) -> None:
    volume_id = placed_volume(db, states.AVAILABLE)
    db.volume_begin_extend(volume_id, 2)
    assert db.volume_fail_extend(volume_id, SECRET_REASON)
    (message,) = list_messages(app)
    assert message["event_id"] == "VOLUME_VOLUME_007_010"


@pytest.mark.parametrize(("start", "end", "event"), [
    (states.SNAP_CREATING, states.SNAP_ERROR, "VOLUME_VOLUME_SNAPSHOT_009_013"),
    (states.SNAP_DELETING, states.SNAP_ERROR_DELETING, "VOLUME_VOLUME_SNAPSHOT_010_016"),
])
def test_snapshot_failures_leave_messages(app: Any, db: Database, start: str, end: str,
                                          event: str) -> None:
    volume_id = placed_volume(db, states.AVAILABLE)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    if start != snapshot.status:
        assert db.snapshot_transition(snapshot.id, (snapshot.status,),
                                      {"status": states.SNAP_AVAILABLE})
        assert db.snapshot_transition(snapshot.id, (states.SNAP_AVAILABLE,),
                                      {"status": start})
    assert db.snapshot_transition(snapshot.id, (start,),
                                  {"status": end, "status_reason": SECRET_REASON})
    (message,) = list_messages(app)
    assert (message["event_id"], message["resource_type"],
            message["resource_uuid"]) == (event, "VOLUME_SNAPSHOT", snapshot.id)


def test_success_lost_races_and_operator_resets_leave_no_message(
        app: Any, db: Database) -> None:
    volume_id = placed_volume(db, states.CREATING)
    assert db.volume_transition(volume_id, (states.CREATING,),
                                {"status": states.AVAILABLE})
    # A late failure report loses the guarded UPDATE: no message either.
    assert not db.volume_transition(volume_id, (states.CREATING,),
                                    {"status": states.ERROR, "status_reason": "late"})
    stuck = placed_volume(db, states.CREATING)
    assert db.volume_reset_state(stuck, states.CREATING, states.ERROR,
                                 "status reset by an administrator (req-1)")
    assert list_messages(app) == []


def test_messages_belong_to_their_project_and_admins_see_all(app: Any,
                                                             db: Database) -> None:
    mine, _ = unscheduled_volume(app, db)
    theirs, _ = unscheduled_volume(app, db, token=h.OTHER_TOKEN)
    (own,) = list_messages(app)
    (other,) = list_messages(app, token=h.OTHER_TOKEN)
    assert (own["resource_uuid"], other["resource_uuid"]) == (mine, theirs)
    assert h.call(app, "GET", f"/v3/p1/messages/{other['id']}",
                  headers=V33).status_int == 404
    assert h.call(app, "DELETE", f"/v3/p1/messages/{other['id']}",
                  headers=V33).status_int == 404
    every = list_messages(app, token="root:adm", headers=ADMIN)
    assert {m["resource_uuid"] for m in every} == {mine, theirs}


def test_delete_removes_a_message(app: Any, db: Database) -> None:
    unscheduled_volume(app, db)
    (message,) = list_messages(app)
    path = f"/v3/p1/messages/{message['id']}"
    answer = h.call(app, "DELETE", path, headers=V33)
    assert answer.status_int == 204 and answer.body == b""
    assert h.call(app, "GET", path, headers=V33).status_int == 404
    assert h.call(app, "DELETE", path, headers=V33).status_int == 404
    assert list_messages(app) == []


def age_messages(db: Database, seconds: int) -> None:
    table = models.table(models.Message)
    with db.transaction() as session:
        session.execute(sa.update(table).values(
            created_at=models.utcnow() - datetime.timedelta(seconds=seconds)))


def test_expired_messages_are_not_shown_and_are_purged(app: Any, db: Database,
                                                       conf: cfg.ConfigOpts) -> None:
    conf.set_override("message_ttl", 60)
    unscheduled_volume(app, db)
    (message,) = list_messages(app)
    age_messages(db, 61)
    assert h.call(app, "GET", f"/v3/p1/messages/{message['id']}",
                  headers=V33).status_int == 404
    assert db.message_purge(models.utcnow() - datetime.timedelta(seconds=60)) == 1
    with db.transaction() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(
            models.Message)).scalar_one() == 0


def test_a_listing_purges_expired_messages(app: Any, db: Database,
                                           conf: cfg.ConfigOpts) -> None:
    conf.set_override("message_ttl", 60)
    unscheduled_volume(app, db)
    age_messages(db, 120)
    assert list_messages(app) == []
    with db.transaction() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(
            models.Message)).scalar_one() == 0


def test_paging_sorting_and_filters_from_3_5(app: Any, db: Database) -> None:
    volumes = [unscheduled_volume(app, db)[0] for _ in range(3)]
    newest_first = [m["resource_uuid"] for m in list_messages(app, headers=V35)]
    assert newest_first == volumes[::-1]
    page = h.call(app, "GET", "/v3/p1/messages?limit=2", headers=V35).json
    assert [m["resource_uuid"] for m in page["messages"]] == volumes[:0:-1]
    assert "marker=" in page["messages_links"][0]["href"]
    marker = page["messages"][-1]["id"]
    rest = list_messages(app, query=f"?limit=2&marker={marker}", headers=V35)
    assert [m["resource_uuid"] for m in rest] == volumes[:1]
    oldest_first = list_messages(app, query="?sort=created_at:asc", headers=V35)
    assert [m["resource_uuid"] for m in oldest_first] == volumes
    only = list_messages(app, query=f"?resource_uuid={volumes[1]}", headers=V35)
    assert [m["resource_uuid"] for m in only] == [volumes[1]]
    assert h.call(app, "GET", "/v3/p1/messages?sort=size", headers=V35).status_int == 400
    assert h.call(app, "GET", "/v3/p1/messages?limit=1&marker=nope",
                  headers=V35).status_int == 404
    # Before 3.5 the parameters are not read.
    assert len(list_messages(app, query="?limit=1")) == 3


def test_the_request_id_follows_work_onto_another_thread() -> None:
    seen: list[str | None] = []

    def job() -> None:
        seen.append(messages._request_id.get())

    worker = threading.Thread(target=messages.in_request_scope("req-abc", job))
    worker.start()
    worker.join()
    assert seen == ["req-abc"]
    assert messages._request_id.get() is None


def test_a_type_no_host_satisfies_ends_in_error_with_a_message(app: Any,
                                                               db: Database) -> None:
    """Tempest's way of making a user message: a type asking for capabilities no
    backend has."""
    bogus = db.volume_type_create("bogus", extra_specs={"storage_protocol": "carrier",
                                                        "vendor_name": "nobody"})
    fitting = db.volume_type_create("fitting", extra_specs={"storage_protocol": "iSCSI",
                                                            "vendor_name": "Open Source"})
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "volume_type": bogus.id}})
    assert answer.status_int == 202, answer.text
    assert answer.json["volume"]["status"] == states.ERROR
    (message,) = list_messages(app)
    assert (message["resource_uuid"], message["event_id"]) == (
        answer.json["volume"]["id"], "VOLUME_VOLUME_001_003")
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "volume_type": fitting.id}})
    assert answer.json["volume"]["status"] == states.CREATING


def test_a_manager_failure_names_the_request_that_asked(conf: cfg.ConfigOpts,
                                                        db: Database) -> None:
    from tests.unit.volume_fakes import FakeDriver, RecordingSink
    from volmgr import exception
    from volmgr.context import RequestContext
    from volmgr.volume.manager import VolumeManager
    from volmgr.volume.notifications import VolumeNotifier

    driver = FakeDriver()
    driver.fail["create_volume"] = exception.BackendError(reason="VG vg-secret is full")
    manager = VolumeManager(conf, db, driver, VolumeNotifier(RecordingSink()),
                            host="node1")
    try:
        volume_id = placed_volume(db)
        ctx = RequestContext(project_id="p1", user_id="u1", request_id="req-asked")
        manager.create_volume(ctx.to_dict(), volume_id)
        assert manager.wait_idle(10)
    finally:
        manager.close()
    (message,) = db.message_list("p1")
    assert (message.resource_uuid, message.request_id, message.event_id) == (
        volume_id, "req-asked", "VOLUME_VOLUME_008_012")
    assert "vg-secret" not in messages.user_message(message)
