"""Block Storage v3 quota sets, quota classes and /limits, as Tempest's admin quota
tests and the openstack client use them; and that creates, snapshots and extends obey
the project's own limit, else the default class, else the [quota] options."""

from __future__ import annotations

from typing import Any

import pytest

from tests.db_reads import quota_usage
from tests.unit import api_helpers as h
from volmgr.db import Database, models

ADMIN = {"X-Roles": "admin"}
ADMIN_TOKEN = "admin:adminproject"
GLOBAL_KEYS = {"volumes", "snapshots", "gigabytes", "backups", "backup_gigabytes",
               "per_volume_gigabytes", "groups"}


def project_wide(quota_set: dict[str, Any]) -> dict[str, Any]:
    """The project-wide entries (and id); per-type keys exist for each volume type."""
    typed = {key for key in quota_set if key not in GLOBAL_KEYS | {"id"}}
    assert all(key.split("_", 1)[0] in ("volumes", "gigabytes", "snapshots")
               for key in typed), typed
    return {key: value for key, value in quota_set.items() if key not in typed}


def admin_call(app: Any, method: str, path: str, body: Any = None,
               version: str | None = None) -> Any:
    headers = dict(ADMIN)
    if version:
        headers["OpenStack-API-Version"] = f"volume {version}"
    return h.call(app, method, path, body, token=ADMIN_TOKEN, headers=headers)


def set_quota(app: Any, project: str, **limits: Any) -> Any:
    return admin_call(app, "PUT", f"/v3/adminproject/os-quota-sets/{project}",
                      {"quota_set": limits})


def create(app: Any, size: int = 1, token: str = h.TOKEN, project: str = "p1") -> Any:
    return h.call(app, "POST", f"/v3/{project}/volumes", {"volume": {"size": size}},
                  token=token)


def available(app: Any, db: Database, size: int = 1) -> str:
    answer = create(app, size)
    assert answer.status_int == 202, answer.text
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def add_volume_type(db: Database, name: str) -> str:
    with db.transaction() as session:
        volume_type = models.VolumeType(name=name, is_public=True, extra_specs={})
        session.add(volume_type)
        session.flush()
        return volume_type.id


# -- reading quota sets -------------------------------------------------------------


def test_a_member_reads_its_own_quota_set_with_the_configured_defaults(app: Any) -> None:
    answer = h.call(app, "GET", "/v3/p1/os-quota-sets/p1")
    assert answer.status_int == 200
    assert list(answer.json) == ["quota_set"]
    assert project_wide(answer.json["quota_set"]) == {
        "id": "p1", "volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10,
        "backup_gigabytes": 1000, "per_volume_gigabytes": -1, "groups": 10}


def test_a_member_may_not_read_another_projects_quotas_or_defaults(app: Any) -> None:
    for path in ("/v3/p1/os-quota-sets/p2", "/v3/p1/os-quota-sets/p2/defaults"):
        answer = h.call(app, "GET", path)
        assert answer.status_int == 403, path
        assert "forbidden" in answer.json


def test_usage_true_gives_limit_in_use_and_reserved_per_resource(
        app: Any, db: Database) -> None:
    volume_id = available(app, db, size=3)
    h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}})
    answer = h.call(app, "GET", "/v3/p1/os-quota-sets/p1?usage=True")
    assert answer.status_int == 200
    quota_set = answer.json["quota_set"]
    assert quota_set["id"] == "p1"
    assert set(project_wide(quota_set)) - {"id"} == GLOBAL_KEYS
    assert quota_set["volumes"] == {"limit": 10, "in_use": 1, "reserved": 0}
    assert quota_set["gigabytes"] == {"limit": 1000, "in_use": 6, "reserved": 0}
    assert quota_set["snapshots"] == {"limit": 10, "in_use": 1, "reserved": 0}
    assert quota_set["backups"] == {"limit": 10, "in_use": 0, "reserved": 0}


def test_usage_that_is_not_a_boolean_is_400(app: Any) -> None:
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1?usage=maybe").status_int == 400
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1?usage=false").json[
        "quota_set"]["volumes"] == 10


def test_the_quota_routes_exist_without_a_project_in_the_url(app: Any) -> None:
    assert h.call(app, "GET", "/v3/os-quota-sets/p1").status_int == 200
    assert h.call(app, "GET", "/v3/os-quota-sets/p1/defaults").status_int == 200
    assert h.call(app, "GET", "/v3/limits").status_int == 200


# -- updating and deleting ----------------------------------------------------------


def test_an_admin_sets_a_projects_limits_and_only_that_project_changes(app: Any) -> None:
    answer = set_quota(app, "p1", gigabytes=1009, volumes=11, snapshots=11, backups=11,
                       backup_gigabytes=1009, per_volume_gigabytes=1009)
    assert answer.status_int == 200
    assert "id" not in answer.json["quota_set"]
    assert project_wide(answer.json["quota_set"]) == {
        "gigabytes": 1009, "volumes": 11, "snapshots": 11, "backups": 11,
        "backup_gigabytes": 1009, "per_volume_gigabytes": 1009, "groups": 10}
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]["volumes"] == 11
    other = h.call(app, "GET", "/v3/p2/os-quota-sets/p2", token=h.OTHER_TOKEN)
    assert other.json["quota_set"]["volumes"] == 10


def test_limits_may_be_sent_as_strings_of_digits_and_minus_one_is_unlimited(
        app: Any) -> None:
    answer = set_quota(app, "p1", volumes="7", gigabytes=-1, tenant_id="p1")
    assert answer.status_int == 200, answer.text
    assert answer.json["quota_set"]["volumes"] == 7
    assert answer.json["quota_set"]["gigabytes"] == -1


@pytest.mark.parametrize("body", [
    {"quota_set": {"volumes": -2}}, {"quota_set": {"volumes": "ten"}},
    {"quota_set": {"volumes": True}}, {"quota_set": {"volumes": 2**31}},
    {"quota_set": {"no_such_resource": 1}}, {"quota_set": {}}, {"quota": {"volumes": 1}},
])
def test_a_bad_quota_set_is_400_and_changes_nothing(app: Any, body: Any) -> None:
    answer = admin_call(app, "PUT", "/v3/adminproject/os-quota-sets/p1", body)
    assert answer.status_int == 400, answer.text
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]["volumes"] == 10


def test_an_unknown_key_is_named_in_the_fault(app: Any) -> None:
    answer = set_quota(app, "p1", volumes=3, bogus=1)
    assert answer.status_int == 400
    assert "Bad key(s) in quota set: bogus" in answer.json["badRequest"]["message"]
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]["volumes"] == 10


def test_a_limit_below_current_usage_is_400(app: Any, db: Database) -> None:
    available(app, db, size=2)
    available(app, db, size=2)
    answer = set_quota(app, "p1", volumes=1)
    assert answer.status_int == 400
    assert "Current usage is 2" in answer.json["badRequest"]["message"]
    # Equal to usage, unlimited, and per_volume_gigabytes (not a usage) are fine.
    assert set_quota(app, "p1", volumes=2, gigabytes=-1).status_int == 200
    assert set_quota(app, "p1", per_volume_gigabytes=1).status_int == 200


def test_members_may_not_change_or_delete_quotas(app: Any) -> None:
    assert h.call(app, "PUT", "/v3/p1/os-quota-sets/p1",
                  {"quota_set": {"volumes": 100}}).status_int == 403
    assert h.call(app, "DELETE", "/v3/p1/os-quota-sets/p1").status_int == 403
    assert h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]["volumes"] == 10


def test_delete_returns_the_project_to_the_defaults(app: Any) -> None:
    set_quota(app, "p1", volumes=15, snapshots=3)
    answer = admin_call(app, "DELETE", "/v3/adminproject/os-quota-sets/p1")
    assert answer.status_int == 200 and answer.body == b""
    quota_set = h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]
    assert (quota_set["volumes"], quota_set["snapshots"]) == (10, 10)


# -- enforcement ----------------------------------------------------------------------


def test_a_projects_own_volume_limit_is_enforced_413(app: Any, db: Database) -> None:
    set_quota(app, "p1", volumes=1, gigabytes=-1)
    assert create(app).status_int == 202
    answer = create(app)
    assert answer.status_int == 413
    assert "volumes" in answer.json["overLimit"]["message"]
    assert quota_usage(db, "p1")["volumes"] == 1
    # Another project keeps the default.
    assert create(app, token=h.OTHER_TOKEN, project="p2").status_int == 202


def test_the_gigabytes_limit_bounds_create_snapshot_and_extend(
        app: Any, db: Database) -> None:
    volume_id = available(app, db, size=2)
    set_quota(app, "p1", gigabytes=3)
    assert create(app, size=2).status_int == 413
    assert h.call(app, "POST", "/v3/p1/snapshots",
                  {"snapshot": {"volume_id": volume_id}}).status_int == 413
    assert h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                  {"os-extend": {"new_size": 4}}).status_int == 413
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 2}


def test_the_snapshots_limit_is_enforced(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    set_quota(app, "p1", snapshots=1)
    body = {"snapshot": {"volume_id": volume_id}}
    assert h.call(app, "POST", "/v3/p1/snapshots", body).status_int == 202
    assert h.call(app, "POST", "/v3/p1/snapshots", body).status_int == 413


def test_per_volume_gigabytes_bounds_create_and_extend(app: Any, db: Database) -> None:
    set_quota(app, "p1", per_volume_gigabytes=2)
    answer = create(app, size=3)
    assert answer.status_int == 413
    assert "larger than maximum allowed limit 2G" in answer.json["overLimit"]["message"]
    volume_id = available(app, db, size=2)
    assert h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                  {"os-extend": {"new_size": 3}}).status_int == 413
    assert quota_usage(db, "p1") == {"volumes": 1, "gigabytes": 2}


def test_the_default_class_limits_projects_without_their_own_limit(
        app: Any, db: Database) -> None:
    admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default",
               {"quota_class_set": {"volumes": 1}})
    assert create(app).status_int == 202
    assert create(app).status_int == 413
    # The project's own limit wins over the class.
    set_quota(app, "p1", volumes=3)
    assert create(app).status_int == 202


def test_the_compute_face_obeys_the_same_limits(app: Any) -> None:
    set_quota(app, "p1", volumes=0)
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", {"volume": {"size": 1}})
    assert answer.status_int == 413


# -- quota classes ----------------------------------------------------------------------


def test_the_default_class_shows_the_defaults_with_its_name_as_id(app: Any) -> None:
    answer = admin_call(app, "GET", "/v3/adminproject/os-quota-class-sets/default")
    assert answer.status_int == 200
    assert list(answer.json) == ["quota_class_set"]
    assert project_wide(answer.json["quota_class_set"]) == {
        "id": "default", "volumes": 10, "snapshots": 10, "gigabytes": 1000,
        "backups": 10, "backup_gigabytes": 1000, "per_volume_gigabytes": -1,
        "groups": 10}


def test_updating_the_default_class_changes_every_projects_defaults(
        app: Any, db: Database) -> None:
    add_volume_type(db, "gold")
    update = {"volumes": 11, "gigabytes": 1001, "volumes_gold": 4, "snapshots_gold": 5,
              "gigabytes_gold": 6}
    answer = admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default",
                        {"quota_class_set": update})
    assert answer.status_int == 200, answer.text
    assert update.items() <= answer.json["quota_class_set"].items()
    assert "id" not in answer.json["quota_class_set"]
    for project in ("adminproject", "a-new-project"):
        defaults = admin_call(app, "GET",
                              f"/v3/adminproject/os-quota-sets/{project}/defaults").json
        assert update.items() <= defaults["quota_set"].items()
        assert defaults["quota_set"]["id"] == project
    shown = h.call(app, "GET", "/v3/p1/os-quota-sets/p1").json["quota_set"]
    assert update.items() <= shown.items()


def test_per_type_keys_exist_only_for_existing_volume_types(app: Any, db: Database) -> None:
    body = {"quota_class_set": {"volumes_silver": 1}}
    answer = admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default", body)
    assert answer.status_int == 400
    assert "volumes_silver" in answer.json["badRequest"]["message"]
    add_volume_type(db, "silver")
    assert admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default",
                      body).status_int == 200
    assert set_quota(app, "p1", gigabytes_silver=5).status_int == 200
    quota_set = h.call(app, "GET", "/v3/p1/os-quota-sets/p1?usage=true").json["quota_set"]
    assert quota_set["gigabytes_silver"] == {"limit": 5, "in_use": 0, "reserved": 0}
    assert quota_set["volumes_silver"]["limit"] == 1
    assert quota_set["snapshots_silver"]["limit"] == -1


def test_another_class_falls_back_to_the_default_class(app: Any) -> None:
    admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default",
               {"quota_class_set": {"volumes": 20}})
    answer = admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/gold",
                        {"quota_class_set": {"snapshots": 30}})
    assert answer.status_int == 200
    shown = admin_call(app, "GET", "/v3/adminproject/os-quota-class-sets/gold").json
    assert shown["quota_class_set"]["id"] == "gold"
    assert (shown["quota_class_set"]["snapshots"], shown["quota_class_set"]["volumes"]) \
        == (30, 20)


def test_quota_classes_are_for_admins_only(app: Any) -> None:
    assert h.call(app, "GET", "/v3/p1/os-quota-class-sets/default").status_int == 403
    assert h.call(app, "PUT", "/v3/p1/os-quota-class-sets/default",
                  {"quota_class_set": {"volumes": 99}}).status_int == 403


@pytest.mark.parametrize("body", [
    {"quota_class_set": {"volumes": -5}}, {"quota_class_set": {"bad key!": 1}},
    {"quota_class_set": "volumes"}, {"quota_class_set": {"volumes": 1}, "extra": 1},
])
def test_a_bad_quota_class_set_is_400(app: Any, body: Any) -> None:
    answer = admin_call(app, "PUT", "/v3/adminproject/os-quota-class-sets/default", body)
    assert answer.status_int == 400, answer.text


# -- /limits ----------------------------------------------------------------------------


def test_limits_give_exactly_the_absolute_limits_and_usage_of_the_caller(
        app: Any, db: Database) -> None:
    available(app, db, size=2)
    set_quota(app, "p1", volumes=5)
    answer = h.call(app, "GET", "/v3/p1/limits")
    assert answer.status_int == 200
    assert answer.json == {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": 5, "maxTotalSnapshots": 10, "maxTotalVolumeGigabytes": 1000,
        "maxTotalBackups": 10, "maxTotalBackupGigabytes": 1000,
        "totalVolumesUsed": 1, "totalGigabytesUsed": 2, "totalSnapshotsUsed": 0,
        "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0}}}


def test_an_admin_names_the_project_of_limits_from_3_39(app: Any, db: Database) -> None:
    available(app, db, size=2)
    old = admin_call(app, "GET", "/v3/adminproject/limits?project_id=p1", version="3.38")
    assert old.json["limits"]["absolute"]["totalVolumesUsed"] == 0
    new = admin_call(app, "GET", "/v3/adminproject/limits?project_id=p1", version="3.39")
    assert new.json["limits"]["absolute"]["totalVolumesUsed"] == 1
    member = h.call(app, "GET", "/v3/p2/limits?project_id=p1", token=h.OTHER_TOKEN,
                    headers={"OpenStack-API-Version": "volume 3.39"})
    assert member.json["limits"]["absolute"]["totalVolumesUsed"] == 0


def test_per_type_usage_counts_the_live_volumes_and_snapshots_of_each_type(
        app: Any, db: Database) -> None:
    answer = create(app, size=2)
    type_name = answer.json["volume"]["volume_type"]
    volume_id = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    h.call(app, "POST", "/v3/p1/snapshots", {"snapshot": {"volume_id": volume_id}})
    quota_set = h.call(app, "GET", "/v3/p1/os-quota-sets/p1?usage=True").json["quota_set"]
    assert quota_set[f"volumes_{type_name}"]["in_use"] == 1
    assert quota_set[f"snapshots_{type_name}"]["in_use"] == 1
    assert quota_set[f"gigabytes_{type_name}"]["in_use"] == 4
