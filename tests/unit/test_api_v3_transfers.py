"""Block Storage v3 volume transfers (``/os-volume-transfer``, and ``/volume-transfers``
from 3.55): the owner offers an available volume and gets an auth key once; another
project accepts it with that key and receives the volume, its snapshots and their quota
usage in one step, or nothing changes at all."""

from __future__ import annotations

from typing import Any

import pytest

from tests.db_reads import quota_usage
from tests.unit import api_helpers as h
from volmgr import states
from volmgr.db import Database, models

ADMIN_TOKEN = "admin:adminproject"
LEGACY = "os-volume-transfer"
NEW = "volume-transfers"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {version}"}


def available(app: Any, db: Database, size: int = 1) -> str:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": size}})
    assert answer.status_int == 202, answer.text
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def snapshot(app: Any, db: Database, volume_id: str, *, finish: bool = True) -> str:
    answer = h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}})
    assert answer.status_int == 202, answer.text
    snapshot_id: str = answer.json["snapshot"]["id"]
    if finish:
        assert db.snapshot_transition(snapshot_id, (states.SNAP_CREATING,),
                                      {"status": states.SNAP_AVAILABLE})
    return snapshot_id


def offer(app: Any, volume_id: str, collection: str = LEGACY, version: str = "3.0",
          **fields: Any) -> dict[str, Any]:
    answer = h.call(app, "POST", f"/v3/p1/{collection}",
                    {"transfer": {"volume_id": volume_id, **fields}}, headers=mv(version))
    assert answer.status_int == 202, answer.text
    return answer.json["transfer"]  # type: ignore[no-any-return]


def accept(app: Any, transfer_id: str, auth_key: Any, collection: str = LEGACY,
           version: str = "3.0") -> Any:
    return h.call(app, "POST", f"/v3/p2/{collection}/{transfer_id}/accept",
                  {"accept": {"auth_key": auth_key}}, token=h.OTHER_TOKEN,
                  headers=mv(version))


# -- create --------------------------------------------------------------------------


def test_create_answers_202_with_the_auth_key_and_the_volume_awaits_transfer(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    transfer = offer(app, volume_id, name="  to p2 ")
    assert set(transfer) == {"id", "volume_id", "name", "created_at", "auth_key", "links"}
    assert transfer["volume_id"] == volume_id and transfer["name"] == "to p2"
    assert len(transfer["auth_key"]) == 16
    assert {"rel": "self", "href": f"http://localhost/v3/p1/os-volume-transfer/"
            f"{transfer['id']}"} in transfer["links"]
    assert db.volume_get(volume_id).status == "awaiting-transfer"
    shown = h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]
    assert shown["status"] == "awaiting-transfer"


def test_only_a_salted_hash_of_the_auth_key_is_stored(app: Any, db: Database) -> None:
    first = offer(app, available(app, db))
    second = offer(app, available(app, db))
    with db.transaction() as session:
        rows = {row.id: row for row in session.query(models.Transfer)}
    for transfer in (first, second):
        row = rows[transfer["id"]]
        stored = " ".join(str(getattr(row, column.name))
                          for column in models.Transfer.__table__.columns)
        assert transfer["auth_key"] not in stored
    assert rows[first["id"]].salt != rows[second["id"]].salt


@pytest.mark.parametrize(("version", "extra"), [
    ("3.0", set()),
    ("3.55", {"no_snapshots"}),
    ("3.57", {"no_snapshots", "source_project_id", "destination_project_id", "accepted"}),
])
def test_reply_fields_follow_the_microversion(app: Any, db: Database, version: str,
                                              extra: set[str]) -> None:
    transfer = offer(app, available(app, db), version=version)
    base = {"id", "volume_id", "name", "created_at", "links"}
    assert set(transfer) == base | {"auth_key"} | extra
    shown = h.call(app, "GET", f"/v3/p1/{LEGACY}/{transfer['id']}", headers=mv(version))
    assert set(shown.json["transfer"]) == base | extra
    if version == "3.57":
        assert (shown.json["transfer"]["source_project_id"],
                shown.json["transfer"]["destination_project_id"],
                shown.json["transfer"]["accepted"]) == ("p1", None, False)


def test_a_volume_that_is_not_available_cannot_be_offered(app: Any, db: Database) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    creating = answer.json["volume"]["id"]
    answer = h.call(app, "POST", f"/v3/p1/{LEGACY}", {"transfer": {"volume_id": creating}})
    assert answer.status_int == 400
    assert db.volume_get(creating).status == states.CREATING


def test_a_volume_is_offered_with_its_snapshots_only_when_they_are_available(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    snapshot(app, db, volume_id, finish=False)
    answer = h.call(app, "POST", f"/v3/p1/{LEGACY}", {"transfer": {"volume_id": volume_id}})
    assert answer.status_int == 400
    assert "snapshot" in answer.json["badRequest"]["message"]
    assert db.volume_get(volume_id).status == states.AVAILABLE
    # Without its snapshots (3.55) the offer is fine.
    offer(app, volume_id, NEW, "3.55", no_snapshots=True)


@pytest.mark.parametrize("body", [
    {"transfer": {"volume_id": "not a uuid"}}, {"transfer": {}},
    {"transfer": {"volume_id": "7f0c6f53-0000-4000-8000-000000000001", "x": 1}},
    {"transfer": {"volume_id": "7f0c6f53-0000-4000-8000-000000000001",
                  "no_snapshots": True}},
])
def test_a_malformed_create_is_400(app: Any, body: Any) -> None:
    assert h.call(app, "POST", f"/v3/p1/{LEGACY}", body).status_int == 400


def test_another_projects_or_a_missing_volume_is_404(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "POST", f"/v3/p2/{LEGACY}", {"transfer": {"volume_id": volume_id}},
                    token=h.OTHER_TOKEN)
    assert answer.status_int == 404
    assert db.volume_get(volume_id).status == states.AVAILABLE


def test_a_volume_awaiting_transfer_cannot_be_deleted_attached_or_extended(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    offer(app, volume_id)
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 400
    assert h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                  {"os-extend": {"new_size": 2}}).status_int == 400
    assert h.call(app, "POST", "/v1.1/p1/servers/s1/os-volume_attachments",
                  {"volumeAttachment": {"volumeId": volume_id}}).status_int == 409
    assert h.call(app, "POST", "/v3/p1/snapshots",
                  {"snapshot": {"volume_id": volume_id}}).status_int == 400
    assert db.volume_get(volume_id).status == "awaiting-transfer"


# -- read and list ---------------------------------------------------------------------


def test_owner_lists_and_shows_its_transfers_others_see_none(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    transfer = offer(app, volume_id, name="t")
    listed = h.call(app, "GET", f"/v3/p1/{LEGACY}").json
    assert listed == {"transfers": [{"id": transfer["id"], "volume_id": volume_id,
                                     "name": "t", "links": transfer["links"]}]}
    detail = h.call(app, "GET", f"/v3/p1/{LEGACY}/detail").json["transfers"]
    assert [t["created_at"] for t in detail] == [transfer["created_at"]]
    assert h.call(app, "GET", f"/v3/p2/{LEGACY}", token=h.OTHER_TOKEN).json == {
        "transfers": []}
    assert h.call(app, "GET", f"/v3/p2/{LEGACY}/{transfer['id']}",
                  token=h.OTHER_TOKEN).status_int == 404


def test_an_admin_lists_every_projects_transfers_with_all_tenants(
        app: Any, db: Database) -> None:
    offer(app, available(app, db))
    admin = {"X-Roles": "admin"}
    own = h.call(app, "GET", f"/v3/adminproject/{LEGACY}", token=ADMIN_TOKEN, headers=admin)
    assert own.json["transfers"] == []
    every = h.call(app, "GET", f"/v3/adminproject/{LEGACY}?all_tenants=1",
                   token=ADMIN_TOKEN, headers=admin)
    assert len(every.json["transfers"]) == 1


def test_listing_pages_with_limit_and_marker_at_3_59(app: Any, db: Database) -> None:
    ids = [offer(app, available(app, db), NEW, "3.59")["id"] for _ in range(3)]
    first = h.call(app, "GET", f"/v3/p1/{NEW}?limit=2", headers=mv("3.59")).json
    assert [t["id"] for t in first["transfers"]] == ids[:2]
    assert first["transfers_links"][0]["rel"] == "next"
    rest = h.call(app, "GET", f"/v3/p1/{NEW}?limit=2&marker={ids[1]}",
                  headers=mv("3.59")).json
    assert [t["id"] for t in rest["transfers"]] == ids[2:]
    newest = h.call(app, "GET", f"/v3/p1/{NEW}?sort=created_at:desc",
                    headers=mv("3.59")).json
    assert [t["id"] for t in newest["transfers"]] == ids[::-1]


def test_volume_transfers_exist_from_3_55(app: Any) -> None:
    assert h.call(app, "GET", f"/v3/p1/{NEW}", headers=mv("3.54")).status_int == 404
    assert h.call(app, "GET", f"/v3/p1/{NEW}", headers=mv("3.55")).status_int == 200
    assert h.call(app, "GET", f"/v3/{NEW}", headers=mv("3.55")).status_int == 200


# -- accept ----------------------------------------------------------------------------


@pytest.mark.parametrize(("collection", "version"), [(LEGACY, "3.0"), (NEW, "3.55"),
                                                     (NEW, "3.57")])
def test_accept_gives_the_volume_snapshots_and_quota_usage_to_the_receiver(
        app: Any, db: Database, collection: str, version: str) -> None:
    volume_id = available(app, db, size=3)
    snapshot_id = snapshot(app, db, volume_id)
    transfer = offer(app, volume_id, collection, version)
    answer = accept(app, transfer["id"], transfer["auth_key"], collection, version)
    assert answer.status_int == 202, answer.text
    assert answer.json == {"transfer": {
        "id": transfer["id"], "volume_id": volume_id, "name": None,
        "links": answer.json["transfer"]["links"]}}
    volume = db.volume_get(volume_id)
    assert (volume.status, volume.project_id, volume.user_id) == ("available", "p2", "u2")
    snap = db.snapshot_get(snapshot_id)
    assert (snap.project_id, snap.user_id) == ("p2", "u2")
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 0, "snapshots": 0}
    assert quota_usage(db, "p2") == {"volumes": 1, "gigabytes": 6, "snapshots": 1}
    # The receiver now owns it; the donor no longer sees it, and the offer is gone.
    assert h.call(app, "GET", f"/v3/p2/volumes/{volume_id}",
                  token=h.OTHER_TOKEN).status_int == 200
    assert h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").status_int == 404
    assert h.call(app, "GET", f"/v3/p1/{collection}/{transfer['id']}",
                  headers=mv(version)).status_int == 404
    assert accept(app, transfer["id"], transfer["auth_key"], collection,
                  version).status_int == 404


def test_a_transfer_without_snapshots_leaves_them_and_their_usage_with_the_donor(
        app: Any, db: Database) -> None:
    volume_id = available(app, db, size=2)
    snapshot_id = snapshot(app, db, volume_id)
    transfer = offer(app, volume_id, NEW, "3.55", no_snapshots=True)
    assert transfer["no_snapshots"] is True
    assert accept(app, transfer["id"], transfer["auth_key"], NEW, "3.55").status_int == 202
    assert db.snapshot_get(snapshot_id).project_id == "p1"
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 2, "snapshots": 1}
    assert quota_usage(db, "p2") == {"volumes": 1, "gigabytes": 2}


def test_a_wrong_auth_key_is_400_and_changes_nothing(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    transfer = offer(app, volume_id)
    for key in ("0" * 16, 12345):
        answer = accept(app, transfer["id"], key)
        assert answer.status_int == 400
        assert "auth key" in answer.json["badRequest"]["message"]
    volume = db.volume_get(volume_id)
    assert (volume.status, volume.project_id) == ("awaiting-transfer", "p1")
    assert accept(app, transfer["id"], transfer["auth_key"]).status_int == 202


@pytest.mark.parametrize("body", [{"accept": {}}, {"accept": {"auth_key": None}},
                                  {"accept": {"auth_key": "k", "x": 1}}, {"auth_key": "k"}])
def test_a_malformed_accept_is_400(app: Any, db: Database, body: Any) -> None:
    transfer = offer(app, available(app, db))
    answer = h.call(app, "POST", f"/v3/p2/{LEGACY}/{transfer['id']}/accept", body,
                    token=h.OTHER_TOKEN)
    assert answer.status_int == 400


def test_accepting_an_unknown_transfer_is_404(app: Any) -> None:
    assert accept(app, "7f0c6f53-0000-4000-8000-000000000009", "k").status_int == 404


def test_a_receiver_without_quota_is_refused_413_and_nothing_moves(
        app: Any, db: Database) -> None:
    volume_id = available(app, db, size=2)
    snapshot(app, db, volume_id)
    transfer = offer(app, volume_id)
    admin = {"X-Roles": "admin"}
    h.call(app, "PUT", "/v3/adminproject/os-quota-sets/p2",
           {"quota_set": {"gigabytes": 3}}, token=ADMIN_TOKEN, headers=admin)
    answer = accept(app, transfer["id"], transfer["auth_key"])
    assert answer.status_int == 413
    volume = db.volume_get(volume_id)
    assert (volume.status, volume.project_id) == ("awaiting-transfer", "p1")
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 4, "snapshots": 1}
    assert quota_usage(db, "p2").get("gigabytes", 0) == 0
    assert h.call(app, "GET", f"/v3/p1/{LEGACY}/{transfer['id']}").status_int == 200
    # The receiver's per-volume limit applies too.
    h.call(app, "PUT", "/v3/adminproject/os-quota-sets/p2",
           {"quota_set": {"gigabytes": -1, "per_volume_gigabytes": 1}},
           token=ADMIN_TOKEN, headers=admin)
    assert accept(app, transfer["id"], transfer["auth_key"]).status_int == 413
    h.call(app, "PUT", "/v3/adminproject/os-quota-sets/p2",
           {"quota_set": {"per_volume_gigabytes": -1}}, token=ADMIN_TOKEN, headers=admin)
    assert accept(app, transfer["id"], transfer["auth_key"]).status_int == 202


def test_a_snapshot_that_is_no_longer_available_stops_the_accept(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    snapshot_id = snapshot(app, db, volume_id)
    transfer = offer(app, volume_id)
    assert db.snapshot_transition(snapshot_id, (states.SNAP_AVAILABLE,),
                                  {"status": states.SNAP_ERROR})
    assert accept(app, transfer["id"], transfer["auth_key"]).status_int == 400
    assert db.volume_get(volume_id).project_id == "p1"
    assert quota_usage(db, "p2").get("volumes", 0) == 0


# -- delete ----------------------------------------------------------------------------


def test_deleting_a_transfer_makes_the_volume_available_again(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    transfer = offer(app, volume_id)
    assert h.call(app, "DELETE", f"/v3/p2/{LEGACY}/{transfer['id']}",
                  token=h.OTHER_TOKEN).status_int == 404
    answer = h.call(app, "DELETE", f"/v3/p1/{LEGACY}/{transfer['id']}")
    assert answer.status_int == 202
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert h.call(app, "GET", f"/v3/p1/{LEGACY}/{transfer['id']}").status_int == 404
    assert accept(app, transfer["id"], transfer["auth_key"]).status_int == 404
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202


def test_an_encrypted_volume_is_transferable_only_from_3_70_with_its_snapshots(
        app: Any, db: Database) -> None:
    with db.transaction() as session:
        volume_type = models.VolumeType(name="luks", is_public=True, extra_specs={})
        session.add(volume_type)
        session.flush()
        session.add(models.Encryption(volume_type_id=volume_type.id, provider="luks",
                                      cipher="aes-xts-plain64", key_size=256,
                                      control_location="front-end"))
    answer = h.call(app, "POST", "/v3/p1/volumes",
                    {"volume": {"size": 1, "volume_type": "luks"}})
    assert answer.status_int == 202, answer.text
    volume_id = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    body = {"transfer": {"volume_id": volume_id}}
    for collection, version in ((LEGACY, "3.70"), (NEW, "3.69")):
        answer = h.call(app, "POST", f"/v3/p1/{collection}", body, headers=mv(version))
        assert answer.status_int == 400, (collection, version)
        assert "encrypted" in answer.json["badRequest"]["message"]
    without = {"transfer": {"volume_id": volume_id, "no_snapshots": True}}
    assert h.call(app, "POST", f"/v3/p1/{NEW}", without,
                  headers=mv("3.70")).status_int == 400
    assert db.volume_get(volume_id).status == states.AVAILABLE
    transfer = offer(app, volume_id, NEW, "3.70")
    assert accept(app, transfer["id"], transfer["auth_key"], NEW, "3.70").status_int == 202
