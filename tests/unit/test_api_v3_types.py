"""Block Storage v3 volume types, extra specs, type access, encryption records and QoS
specs, as python-cinderclient, openstacksdk and Tempest use them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit import api_helpers as h
from volmgr.db import Database

ADMIN = {"X-Roles": "admin"}
ADMIN_TOKEN = "root:adm"
UUID_MISSING = "7f0c6f53-0000-4000-8000-00000000dead"
MEMBER_KEYS = {"id", "name", "is_public", "description", "extra_specs",
               "os-volume-type-access:is_public"}


def admin(app: Any, method: str, path: str, body: Any = None, *,
          headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return h.call(app, method, path, body, token=ADMIN_TOKEN,
                  headers={**ADMIN, **(headers or {})}, **kwargs)


def member(app: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return h.call(app, method, path, body, **kwargs)


def fault(answer: Any, status: int) -> str:
    """The fault's message, after checking the status and that there is one."""
    assert answer.status_int == status, answer.text
    ((_, body),) = answer.json.items()
    assert body["code"] == status
    assert body["message"]
    return str(body["message"])


def new_type(app: Any, name: str = "gold", **fields: Any) -> dict[str, Any]:
    answer = admin(app, "POST", "/v3/adm/types", {"volume_type": {"name": name, **fields}})
    assert answer.status_int == 200, answer.text
    return answer.json["volume_type"]  # type: ignore[no-any-return]


def new_qos(app: Any, name: str = "limits", **specs: Any) -> dict[str, Any]:
    answer = admin(app, "POST", "/v3/adm/qos-specs", {"qos_specs": {"name": name, **specs}})
    assert answer.status_int == 200, answer.text
    return answer.json["qos_specs"]  # type: ignore[no-any-return]


# -- The default type -----------------------------------------------------------------


def test_everyone_sees_the_default_type(app: Any) -> None:
    (listed,) = member(app, "GET", "/v3/p1/types").json["volume_types"]
    assert listed["name"] == "__DEFAULT__"
    assert set(listed) == MEMBER_KEYS
    shown = member(app, "GET", "/v3/p1/types/default")
    assert shown.status_int == 200
    assert shown.json["volume_type"] == listed
    assert member(app, "GET", f"/v3/types/{listed['id']}").json["volume_type"] == listed


def test_admins_also_see_the_qos_specs_id(app: Any) -> None:
    (listed,) = admin(app, "GET", "/v3/adm/types").json["volume_types"]
    assert set(listed) == MEMBER_KEYS | {"qos_specs_id"}
    assert listed["qos_specs_id"] is None


def test_the_default_type_cannot_be_deleted_or_renamed(app: Any) -> None:
    default = member(app, "GET", "/v3/p1/types/default").json["volume_type"]
    assert "default" in fault(admin(app, "DELETE", f"/v3/adm/types/{default['id']}"), 400)
    fault(admin(app, "PUT", f"/v3/adm/types/{default['id']}",
                {"volume_type": {"name": "other"}}), 400)


def test_a_volume_without_a_type_gets_the_default_one(app: Any) -> None:
    answer = member(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    assert answer.status_int == 202, answer.text
    assert answer.json["volume"]["volume_type"] == "__DEFAULT__"


def test_projects_get_their_own_default_type_from_3_62(app: Any) -> None:
    v362 = {"OpenStack-API-Version": "volume 3.62"}
    gold = new_type(app, "gold")
    fault(admin(app, "GET", "/v3/adm/default-types"), 404)  # not before 3.62
    assert admin(app, "GET", "/v3/adm/default-types", headers=v362).json == \
        {"default_types": []}
    fault(admin(app, "GET", "/v3/adm/default-types/p1", headers=v362), 404)
    answer = admin(app, "PUT", "/v3/adm/default-types/p1",
                   {"default_type": {"volume_type": "gold"}}, headers=v362)
    assert (answer.status_int, answer.json) == (200, {"default_type": {
        "project_id": "p1", "volume_type_id": gold["id"]}})
    assert admin(app, "GET", "/v3/adm/default-types/p1", headers=v362).json == answer.json
    assert admin(app, "GET", "/v3/adm/default-types", headers=v362).json == \
        {"default_types": [answer.json["default_type"]]}
    assert member(app, "GET", "/v3/p1/types/default").json["volume_type"]["name"] == "gold"
    assert "default" in fault(admin(app, "DELETE", f"/v3/adm/types/{gold['id']}"), 400)
    created = member(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    assert created.json["volume"]["volume_type"] == "gold"
    other = member(app, "GET", "/v3/p2/types/default", token=h.OTHER_TOKEN)
    assert other.json["volume_type"]["name"] == "__DEFAULT__"
    fault(member(app, "PUT", "/v3/p1/default-types/p1",
                 {"default_type": {"volume_type": "gold"}}, headers=v362), 403)
    for method in ("GET", "DELETE"):
        fault(member(app, method, "/v3/p1/default-types/p1", headers=v362), 403)
    assert admin(app, "DELETE", "/v3/adm/default-types/p1", headers=v362).status_int == 204
    assert member(app, "GET", "/v3/p1/types/default").json["volume_type"]["name"] == \
        "__DEFAULT__"


@pytest.mark.parametrize("body", [
    None, {"default_type": {}}, {"default_type": {"volume_type": "nothing"}},
    {"default_type": {"volume_type": "gold", "x": 1}}, {"default_type": "gold"}])
def test_setting_a_project_default_refuses_bad_input(app: Any, body: Any) -> None:
    new_type(app, "gold")
    fault(admin(app, "PUT", "/v3/adm/default-types/p1", body,
                headers={"OpenStack-API-Version": "volume 3.62"}), 400)


# -- Types ----------------------------------------------------------------------------


def test_admin_creates_a_type_and_everyone_reads_it(app: Any) -> None:
    created = new_type(app, "gold", description="fast disks",
                       extra_specs={"volume_backend_name": "lvm", "multiattach": "<is> True"})
    assert set(created) == {"id", "name", "is_public", "description", "extra_specs",
                            "os-volume-type-access:is_public"}
    assert (created["name"], created["description"], created["is_public"]) == \
        ("gold", "fast disks", True)
    shown = admin(app, "GET", f"/v3/adm/types/{created['id']}").json["volume_type"]
    assert shown["extra_specs"] == {"volume_backend_name": "lvm",
                                    "multiattach": "<is> True"}
    as_member = member(app, "GET", f"/v3/p1/types/{created['id']}").json["volume_type"]
    assert as_member["extra_specs"] == {"multiattach": "<is> True"}, \
        "members read only the user-visible extra specs"
    names = [t["name"] for t in member(app, "GET", "/v3/p1/types").json["volume_types"]]
    assert sorted(names) == ["__DEFAULT__", "gold"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v3/p1/types", {"volume_type": {"name": "x"}}),
    ("PUT", "/v3/p1/types/{id}", {"volume_type": {"name": "x"}}),
    ("DELETE", "/v3/p1/types/{id}", None),
    ("POST", "/v3/p1/types/{id}/extra_specs", {"extra_specs": {"a": "b"}}),
    ("PUT", "/v3/p1/types/{id}/extra_specs/a", {"a": "c"}),
    ("DELETE", "/v3/p1/types/{id}/extra_specs/a", None),
    ("GET", "/v3/p1/types/{id}/os-volume-type-access", None),
    ("POST", "/v3/p1/types/{id}/action", {"addProjectAccess": {"project": "p1"}}),
    ("GET", "/v3/p1/types/{id}/encryption", None),
    ("POST", "/v3/p1/types/{id}/encryption",
     {"encryption": {"provider": "luks", "control_location": "front-end"}}),
    ("GET", "/v3/p1/qos-specs", None),
    ("POST", "/v3/p1/qos-specs", {"qos_specs": {"name": "q"}}),
])
def test_members_are_refused_admin_calls_with_403(app: Any, method: str, path: str,
                                                  body: Any) -> None:
    volume_type = new_type(app, "private", **{"os-volume-type-access:is_public": False})
    admin(app, "POST", f"/v3/adm/types/{volume_type['id']}/extra_specs",
          {"extra_specs": {"a": "b"}})
    admin(app, "POST", f"/v3/adm/types/{volume_type['id']}/action",
          {"addProjectAccess": {"project": "p1"}})
    answer = member(app, method, path.format(id=volume_type["id"]), body)
    assert "Policy doesn't allow" in fault(answer, 403)
    unchanged = admin(app, "GET", f"/v3/adm/types/{volume_type['id']}").json["volume_type"]
    assert (unchanged["name"], unchanged["extra_specs"]) == ("private", {"a": "b"})


@pytest.mark.parametrize(("body", "words"), [
    ({"volume_type": {"name": ""}}, "name"),
    ({"volume_type": {"name": "   "}}, "name"),
    ({"volume_type": {"name": "x" * 256}}, "name"),
    ({"volume_type": {}}, "name"),
    ({"volume_type": {"name": 5}}, "name"),
    ({"volume_type": {"name": "t", "colour": "red"}}, "colour"),
    ({"volume_type": {"name": "t", "extra_specs": {"bad key!": "v"}}}, "key"),
    ({"volume_type": {"name": "t", "extra_specs": {"k": {"nested": 1}}}}, "string"),
    ({"volume_type": {"name": "t", "extra_specs": ["k"]}}, "object"),
    ({"volume_type": {"name": "t", "os-volume-type-access:is_public": "maybe"}},
     "boolean"),
    ({"volume_type": {"name": "t", "extra_specs": {"multiattach": "<is> True",
                                                   "cacheable": "<is> True"}}},
     "cacheable"),
    ({"volume_type": "gold"}, "object"),
    ({"type": {"name": "t"}}, "volume_type"),
    (None, "volume_type"),
])
def test_create_refuses_bad_input_with_400_naming_the_problem(app: Any, body: Any,
                                                              words: str) -> None:
    assert words in fault(admin(app, "POST", "/v3/adm/types", body), 400)


def test_a_type_name_is_unique(app: Any) -> None:
    gold = new_type(app, "gold")
    assert "gold" in fault(admin(app, "POST", "/v3/adm/types",
                                 {"volume_type": {"name": "gold"}}), 409)
    silver = new_type(app, "silver")
    fault(admin(app, "PUT", f"/v3/adm/types/{silver['id']}",
                {"volume_type": {"name": "gold"}}), 409)
    assert admin(app, "DELETE", f"/v3/adm/types/{gold['id']}").status_int == 202
    new_type(app, "gold")  # the name is free again


def test_update_changes_name_description_and_visibility(app: Any) -> None:
    gold = new_type(app, "gold", description="old")
    answer = admin(app, "PUT", f"/v3/adm/types/{gold['id']}", {"volume_type": {
        "name": "platinum", "description": "new", "is_public": False}})
    assert answer.status_int == 200
    updated = answer.json["volume_type"]
    assert set(updated) == {"id", "name", "is_public", "description", "extra_specs"}
    assert (updated["name"], updated["description"], updated["is_public"]) == \
        ("platinum", "new", False)
    shown = admin(app, "GET", f"/v3/adm/types/{gold['id']}").json["volume_type"]
    assert (shown["name"], shown["is_public"],
            shown["os-volume-type-access:is_public"]) == ("platinum", False, False)
    fault(member(app, "GET", f"/v3/p1/types/{gold['id']}"), 404)


@pytest.mark.parametrize("body", [
    {"volume_type": {}}, {"volume_type": {"name": None, "description": None}},
    {"volume_type": {"name": ""}}, {"volume_type": {"is_public": "perhaps"}},
    {"volume_type": {"extra_specs": {}}}, {"volume_type": []}, None])
def test_update_refuses_an_empty_or_bad_change(app: Any, body: Any) -> None:
    gold = new_type(app, "gold")
    fault(admin(app, "PUT", f"/v3/adm/types/{gold['id']}", body), 400)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_unknown_type_is_404(app: Any, method: str) -> None:
    body = {"volume_type": {"name": "x"}} if method == "PUT" else None
    message = fault(admin(app, method, f"/v3/adm/types/{UUID_MISSING}", body), 404)
    assert UUID_MISSING in message


def test_show_is_by_id_not_by_name(app: Any) -> None:
    new_type(app, "gold")
    fault(admin(app, "GET", "/v3/adm/types/gold"), 404)


def test_a_type_in_use_cannot_be_deleted_or_have_its_specs_changed(
        app: Any, db: Database) -> None:
    gold = new_type(app, "gold", extra_specs={"a": "b"})
    answer = member(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1,
                                                              "volume_type": "gold"}})
    assert answer.status_int == 202, answer.text
    assert answer.json["volume"]["volume_type"] == "gold"
    assert "in use" in fault(admin(app, "DELETE", f"/v3/adm/types/{gold['id']}"), 400)
    fault(admin(app, "POST", f"/v3/adm/types/{gold['id']}/extra_specs",
                {"extra_specs": {"c": "d"}}), 400)
    fault(admin(app, "DELETE", f"/v3/adm/types/{gold['id']}/extra_specs/a"), 400)
    fault(admin(app, "POST", f"/v3/adm/types/{gold['id']}/encryption",
                {"encryption": {"provider": "luks", "control_location": "front-end"}}), 400)
    assert db.volume_type_get(gold["id"]).extra_specs == {"a": "b"}


def test_volume_create_with_an_unknown_or_hidden_type_is_404(app: Any) -> None:
    private = new_type(app, "private", **{"os-volume-type-access:is_public": False})
    for name_or_id in ("nothing", UUID_MISSING, "private", private["id"]):
        answer = member(app, "POST", "/v3/p1/volumes",
                        {"volume": {"size": 1, "volume_type": name_or_id}})
        fault(answer, 404)


# -- Listing --------------------------------------------------------------------------


def test_admins_filter_by_visibility_members_see_what_is_shared(app: Any) -> None:
    new_type(app, "public")
    shared = new_type(app, "shared", **{"os-volume-type-access:is_public": False})
    new_type(app, "hidden", **{"os-volume-type-access:is_public": False})
    admin(app, "POST", f"/v3/adm/types/{shared['id']}/action",
          {"addProjectAccess": {"project": "p1"}})

    def names(answer: Any) -> list[str]:
        assert answer.status_int == 200, answer.text
        return sorted(t["name"] for t in answer.json["volume_types"])

    assert names(member(app, "GET", "/v3/p1/types")) == ["__DEFAULT__", "public", "shared"]
    assert names(member(app, "GET", "/v3/p1/types?is_public=false")) == \
        ["__DEFAULT__", "public", "shared"], "members cannot widen or narrow visibility"
    assert names(admin(app, "GET", "/v3/adm/types")) == ["__DEFAULT__", "public"]
    assert names(admin(app, "GET", "/v3/adm/types?is_public=false")) == ["hidden", "shared"]
    assert names(admin(app, "GET", "/v3/adm/types?is_public=None")) == \
        ["__DEFAULT__", "hidden", "public", "shared"]
    fault(admin(app, "GET", "/v3/adm/types?is_public=perhaps"), 400)


def test_list_sorts_pages_and_filters_by_extra_specs(app: Any) -> None:
    for name in ("b", "c", "a"):
        new_type(app, name, extra_specs={"multiattach": "<is> True"} if name != "b" else {})
    answer = admin(app, "GET", "/v3/adm/types?sort=name:asc&limit=2")
    first = [t["name"] for t in answer.json["volume_types"]]
    assert first == ["__DEFAULT__", "a"]
    assert "volume_type_links" in answer.json
    last_id = answer.json["volume_types"][-1]["id"]
    rest = admin(app, "GET", f"/v3/adm/types?sort=name:asc&limit=2&marker={last_id}")
    assert [t["name"] for t in rest.json["volume_types"]] == ["b", "c"]
    wanted = json.dumps({"multiattach": "<is> True"})
    filtered = member(app, "GET", f"/v3/p1/types?extra_specs={wanted}&sort_key=name"
                      "&sort_dir=asc")
    assert [t["name"] for t in filtered.json["volume_types"]] == ["a", "c"]
    secret = json.dumps({"volume_backend_name": "lvm"})
    assert member(app, "GET", f"/v3/p1/types?extra_specs={secret}").json == \
        {"volume_types": []}, "members cannot probe specs they may not read"
    fault(admin(app, "GET", "/v3/adm/types?sort=colour:asc"), 400)
    assert len(member(app, "GET", "/v3/p1/types?name=a").json["volume_types"]) == 4, \
        "below 3.52 a member's other filters are ignored"
    late = {"OpenStack-API-Version": "volume 3.52"}
    assert "name" in fault(member(app, "GET", "/v3/p1/types?name=a", headers=late), 400)
    named = admin(app, "GET", "/v3/adm/types?name=a", headers=late)
    assert [t["name"] for t in named.json["volume_types"]] == ["a"]
    fault(admin(app, "GET", f"/v3/adm/types?marker={UUID_MISSING}"), 404)
    fault(admin(app, "GET", "/v3/adm/types?extra_specs=[1"), 400)
    fault(admin(app, "GET", "/v3/adm/types?extra_specs=" + "[" * 5000), 400)
    assert len(admin(app, "GET", "/v3/adm/types?created_at=bad").json["volume_types"]) \
        == 4, "timestamps sort but do not filter"
    fault(admin(app, "GET", "/v3/adm/types?limit=-1"), 400)


# -- Extra specs ----------------------------------------------------------------------


def test_extra_specs_lifecycle(app: Any) -> None:
    gold = new_type(app, "gold")
    base = f"/v3/adm/types/{gold['id']}/extra_specs"
    created = admin(app, "POST", base, {"extra_specs": {"a": "1", "multiattach": "<is> True",
                                                        "n": 5}})
    assert created.status_int == 200
    assert created.json == {"extra_specs": {"a": "1", "multiattach": "<is> True",
                                            "n": "5"}}
    assert admin(app, "GET", base).json == {"extra_specs": {
        "a": "1", "multiattach": "<is> True", "n": "5"}}
    assert admin(app, "GET", f"{base}/a").json == {"a": "1"}
    updated = admin(app, "PUT", f"{base}/a", {"a": "2"})
    assert (updated.status_int, updated.json) == (200, {"a": "2"})
    assert admin(app, "DELETE", f"{base}/a").status_int == 202
    fault(admin(app, "GET", f"{base}/a"), 404)
    fault(admin(app, "DELETE", f"{base}/a"), 404)
    as_member = f"/v3/p1/types/{gold['id']}/extra_specs"
    assert member(app, "GET", as_member).json == {"extra_specs": {"multiattach": "<is> True"}}
    assert member(app, "GET", f"{as_member}/multiattach").json == \
        {"multiattach": "<is> True"}
    fault(member(app, "GET", f"{as_member}/n"), 404)


@pytest.mark.parametrize(("method", "suffix", "body", "words"), [
    ("PUT", "/a", None, "one extra spec"),
    ("PUT", "/a", {"b": "1"}, "mismatch"),
    ("PUT", "/a", {"a": "1", "b": "2"}, "one extra spec"),
    ("PUT", "/a", {"a": ["1"]}, "string"),
    ("POST", "", None, "extra_specs"),
    ("POST", "", {"extra_specs": ["invalid"]}, "object"),
    ("POST", "", {"extra_specs": {"has space": "v"}}, "key"),
    ("POST", "", {"extra_specs": {"k": "v" * 256}}, "k"),
    ("POST", "", {"extra_specs": {"k": None}}, "string"),
    ("POST", "", {"extra_specs": {"cacheable": "<is> True"}}, "cacheable"),
])
def test_extra_spec_changes_refuse_bad_input(app: Any, method: str, suffix: str,
                                             body: Any, words: str) -> None:
    gold = new_type(app, "gold", extra_specs={"multiattach": "<is> True"})
    answer = admin(app, method, f"/v3/adm/types/{gold['id']}/extra_specs{suffix}", body)
    assert words in fault(answer, 400)


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("POST", "", {"extra_specs": {"a": "b"}}),
    ("GET", "/a", None), ("PUT", "/a", {"a": "b"}), ("DELETE", "/a", None)])
def test_extra_specs_of_an_unknown_type_are_404(app: Any, method: str, suffix: str,
                                                body: Any) -> None:
    fault(admin(app, method, f"/v3/adm/types/{UUID_MISSING}/extra_specs{suffix}", body),
          404)


# -- Type access ----------------------------------------------------------------------


def test_private_type_access_is_granted_and_withdrawn(app: Any) -> None:
    private = new_type(app, "private", **{"os-volume-type-access:is_public": False})
    type_id = private["id"]
    access = f"/v3/adm/types/{type_id}/os-volume-type-access"
    action = f"/v3/adm/types/{type_id}/action"
    assert admin(app, "GET", access).json == {"volume_type_access": []}
    fault(member(app, "GET", f"/v3/p1/types/{type_id}"), 404)
    assert admin(app, "POST", action, {"addProjectAccess": {"project": "p1"}}).status_int \
        == 202
    fault(admin(app, "POST", action, {"addProjectAccess": {"project": "p1"}}), 409)
    assert admin(app, "GET", access).json == {"volume_type_access": [
        {"volume_type_id": type_id, "project_id": "p1"}]}
    assert member(app, "GET", f"/v3/p1/types/{type_id}").status_int == 200
    assert member(app, "POST", "/v3/p1/volumes", {"volume": {
        "size": 1, "volume_type": "private"}}).status_int == 202
    fault(member(app, "GET", f"/v3/p2/types/{type_id}", token=h.OTHER_TOKEN), 404)
    assert admin(app, "POST", action,
                 {"removeProjectAccess": {"project": "p1"}}).status_int == 202
    fault(admin(app, "POST", action, {"removeProjectAccess": {"project": "p1"}}), 404)
    fault(member(app, "GET", f"/v3/p1/types/{type_id}"), 404)


def test_public_types_have_no_access_list(app: Any) -> None:
    public = new_type(app, "public")
    fault(admin(app, "GET", f"/v3/adm/types/{public['id']}/os-volume-type-access"), 404)
    for action in ("addProjectAccess", "removeProjectAccess"):
        fault(admin(app, "POST", f"/v3/adm/types/{public['id']}/action",
                    {action: {"project": "p1"}}), 400)


@pytest.mark.parametrize("body", [
    None, {}, {"addProjectAccess": {}}, {"addProjectAccess": {"project": ""}},
    {"addProjectAccess": {"project": 5}}, {"addProjectAccess": "p1"},
    {"addProjectAccess": {"project": "p1", "x": 1}}, {"os-extend": {"new_size": 2}},
    {"addProjectAccess": {"project": "p1"}, "removeProjectAccess": {"project": "p1"}}])
def test_type_actions_refuse_bad_bodies(app: Any, body: Any) -> None:
    private = new_type(app, "private", **{"os-volume-type-access:is_public": False})
    fault(admin(app, "POST", f"/v3/adm/types/{private['id']}/action", body), 400)


# -- Encryption records ---------------------------------------------------------------


def test_encryption_record_lifecycle(app: Any) -> None:
    gold = new_type(app, "gold")
    base = f"/v3/adm/types/{gold['id']}/encryption"
    assert admin(app, "GET", base).json == {}
    spec = {"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256,
            "control_location": "front-end"}
    created = admin(app, "POST", base, {"encryption": spec})
    assert created.status_int == 200, created.text
    record = created.json["encryption"]
    assert {k: record[k] for k in spec} == spec
    assert record["volume_type_id"] == gold["id"]
    shown = admin(app, "GET", base).json
    assert set(shown) == {"volume_type_id", "encryption_id", "key_size", "provider",
                          "control_location", "cipher", "deleted", "created_at",
                          "updated_at", "deleted_at"}
    assert shown["encryption_id"] == record["encryption_id"] and shown["deleted"] is False
    assert admin(app, "GET", f"{base}/cipher").json == {"cipher": "aes-xts-plain64"}
    fault(admin(app, "GET", f"{base}/colour"), 404)
    fault(admin(app, "POST", base, {"encryption": spec}), 400)
    change = {"key_size": 128, "provider": "other", "control_location": "back-end"}
    updated = admin(app, "PUT", f"{base}/{record['encryption_id']}", {"encryption": change})
    assert (updated.status_int, updated.json) == (200, {"encryption": change})
    shown = admin(app, "GET", base).json
    assert {k: shown[k] for k in change} == change and shown["cipher"] == "aes-xts-plain64"
    assert admin(app, "DELETE", f"{base}/{record['encryption_id']}").status_int == 202
    assert admin(app, "GET", base).json == {}
    fault(admin(app, "DELETE", f"{base}/{record['encryption_id']}"), 404)
    fault(admin(app, "PUT", f"{base}/{record['encryption_id']}", {"encryption": change}),
          404)


@pytest.mark.parametrize("encryption", [
    {"control_location": "front-end"}, {"provider": "luks"},
    {"provider": "luks", "control_location": "middle"},
    {"provider": "luks", "control_location": "front-end", "key_size": -1},
    {"provider": "luks", "control_location": "front-end", "key_size": "big"},
    {"provider": "luks", "control_location": "front-end", "colour": "red"},
    {"provider": 5, "control_location": "front-end"}])
def test_encryption_create_refuses_bad_input(app: Any, encryption: dict[str, Any]) -> None:
    gold = new_type(app, "gold")
    fault(admin(app, "POST", f"/v3/adm/types/{gold['id']}/encryption",
                {"encryption": encryption}), 400)


def test_encryption_of_an_unknown_type_is_404(app: Any) -> None:
    base = f"/v3/adm/types/{UUID_MISSING}/encryption"
    fault(admin(app, "GET", base), 404)
    fault(admin(app, "POST", base, {"encryption": {"provider": "luks",
                                                   "control_location": "front-end"}}), 404)


# -- QoS specs ------------------------------------------------------------------------


def test_qos_specs_lifecycle(app: Any) -> None:
    answer = admin(app, "POST", "/v3/adm/qos-specs", {"qos_specs": {
        "name": " limits ", "consumer": "front-end", "read_iops_sec": "2000"}})
    assert answer.status_int == 200, answer.text
    assert set(answer.json) == {"qos_specs", "links"}
    qos = answer.json["qos_specs"]
    assert qos == {"id": qos["id"], "name": "limits", "consumer": "front-end",
                   "specs": {"read_iops_sec": "2000"}}
    assert {link["rel"] for link in answer.json["links"]} == {"self", "bookmark"}
    assert qos in admin(app, "GET", "/v3/adm/qos-specs").json["qos_specs"]
    base = f"/v3/adm/qos-specs/{qos['id']}"
    assert admin(app, "GET", base).json["qos_specs"] == qos
    set_key = admin(app, "PUT", base, {"qos_specs": {"iops_bytes": "500"}})
    assert (set_key.status_int, set_key.json) == (200, {"qos_specs": {"iops_bytes": "500"}})
    assert admin(app, "GET", base).json["qos_specs"]["specs"] == {
        "read_iops_sec": "2000", "iops_bytes": "500"}
    assert admin(app, "PUT", f"{base}/delete_keys", {"keys": ["iops_bytes"]}).status_int \
        == 202
    fault(admin(app, "PUT", f"{base}/delete_keys", {"keys": ["iops_bytes"]}), 404)
    assert admin(app, "GET", base).json["qos_specs"]["specs"] == {"read_iops_sec": "2000"}
    assert admin(app, "DELETE", base).status_int == 202
    fault(admin(app, "GET", base), 404)


def test_qos_specs_associate_with_types(app: Any, db: Database) -> None:
    qos = new_qos(app, "limits", consumer="front-end", total_iops_sec="100")
    types = [new_type(app, name) for name in ("a", "b", "c")]
    base = f"/v3/adm/qos-specs/{qos['id']}"
    for volume_type in types:
        answer = admin(app, "GET", f"{base}/associate?vol_type_id={volume_type['id']}")
        assert answer.status_int == 202
    associations = admin(app, "GET", f"{base}/associations").json["qos_associations"]
    assert sorted(a["id"] for a in associations) == sorted(t["id"] for t in types)
    assert {a["association_type"] for a in associations} == {"volume_type"}
    shown = admin(app, "GET", f"/v3/adm/types/{types[0]['id']}").json["volume_type"]
    assert shown["qos_specs_id"] == qos["id"]
    other = new_qos(app, "other")
    fault(admin(app, "GET", f"/v3/adm/qos-specs/{other['id']}/associate"
                f"?vol_type_id={types[0]['id']}"), 400)
    assert "disassociate" in fault(admin(app, "DELETE", base), 400)
    assert admin(app, "GET", f"{base}/disassociate?vol_type_id={types[0]['id']}") \
        .status_int == 202
    assert len(admin(app, "GET", f"{base}/associations").json["qos_associations"]) == 2
    assert admin(app, "GET", f"{base}/disassociate_all").status_int == 202
    assert admin(app, "GET", f"{base}/associations").json == {"qos_associations": []}
    admin(app, "GET", f"{base}/associate?vol_type_id={types[1]['id']}")
    assert admin(app, "DELETE", f"{base}?force=True").status_int == 202
    assert db.volume_type_get(types[1]["id"]).qos_specs_id is None


@pytest.mark.parametrize(("method", "suffix", "body", "status"), [
    ("GET", "/associate", None, 400),
    ("GET", f"/associate?vol_type_id={UUID_MISSING}", None, 404),
    ("GET", "/disassociate", None, 400),
    ("PUT", "/delete_keys", {"keys": "a"}, 400),
    ("PUT", "/delete_keys", {"keys": [1]}, 400),
    ("PUT", "/delete_keys", {"keys": ["a", "a"]}, 400),
    ("PUT", "/delete_keys", None, 400),
    ("PUT", "", {"qos_specs": {"consumer": "nobody"}}, 400),
    ("PUT", "", {"qos_specs": ["a"]}, 400),
    ("PUT", "", None, 400),
    ("DELETE", "?force=perhaps", None, 400),
])
def test_qos_calls_refuse_bad_input(app: Any, method: str, suffix: str, body: Any,
                                    status: int) -> None:
    qos = new_qos(app, "limits", a="1")
    fault(admin(app, method, f"/v3/adm/qos-specs/{qos['id']}{suffix}", body), status)


@pytest.mark.parametrize("body", [
    None, {"qos_specs": {}}, {"qos_specs": {"name": ""}},
    {"qos_specs": {"name": "q", "consumer": "everyone"}},
    {"qos_specs": {"name": "q", "iops": {"a": 1}}}, {"qos_specs": "q"}])
def test_qos_create_refuses_bad_input(app: Any, body: Any) -> None:
    fault(admin(app, "POST", "/v3/adm/qos-specs", body), 400)


def test_qos_names_are_unique_and_unknown_specs_404(app: Any) -> None:
    new_qos(app, "limits")
    fault(admin(app, "POST", "/v3/adm/qos-specs", {"qos_specs": {"name": "limits"}}), 409)
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/associations"),
                           ("GET", "/disassociate_all")):
        fault(admin(app, method, f"/v3/adm/qos-specs/{UUID_MISSING}{suffix}"), 404)
    fault(admin(app, "PUT", f"/v3/adm/qos-specs/{UUID_MISSING}",
                {"qos_specs": {"a": "1"}}), 404)


def test_front_end_qos_reaches_the_volume_type_the_attach_reads(app: Any,
                                                                db: Database) -> None:
    from volmgr.db import types as db_types

    qos = new_qos(app, "limits", consumer="front-end", total_iops_sec="100")
    gold = new_type(app, "gold")
    admin(app, "GET", f"/v3/adm/qos-specs/{qos['id']}/associate?vol_type_id={gold['id']}")
    assert db_types.qos_specs_for(db.volume_type_get(gold["id"])) == \
        {"total_iops_sec": "100"}


# -- Robustness -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b"[]", b"{\"a\": 1}",
                                 b"{\"volume_type\": null}", b"\xff\xfe"])
@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v3/adm/types"), ("PUT", "/v3/adm/types/{id}"),
    ("POST", "/v3/adm/types/{id}/extra_specs"), ("PUT", "/v3/adm/types/{id}/extra_specs/k"),
    ("POST", "/v3/adm/types/{id}/action"), ("POST", "/v3/adm/types/{id}/encryption"),
    ("PUT", "/v3/adm/types/{id}/encryption/x"), ("POST", "/v3/adm/qos-specs"),
    ("PUT", "/v3/adm/qos-specs/{id}"), ("PUT", "/v3/adm/qos-specs/{id}/delete_keys")])
def test_malformed_bodies_are_400_never_500(app: Any, raw: bytes, method: str,
                                            path: str) -> None:
    gold = new_type(app, "gold")
    answer = h.call(app, method, path.format(id=gold["id"]), token=ADMIN_TOKEN,
                    headers=ADMIN, raw=raw)
    assert 400 <= answer.status_int < 500, answer.text
    assert answer.json


# -- Retype (the os-retype volume action's handler) ------------------------------------


def retype(conf: Any, db: Database, volume_id: str, args: Any, *,
           roles: tuple[str, ...] = ()) -> Any:
    import webob

    from volmgr.api import v3_types
    from volmgr.api.v3_base import V3Deps
    from volmgr.api.wsgi import ApiRequest
    from volmgr.context import RequestContext

    deps = V3Deps(conf=conf, db=db, ops=None, rpcapi=None)  # type: ignore[arg-type]
    req = ApiRequest(http=webob.Request.blank(f"/v3/p1/volumes/{volume_id}/action"),
                     params={"volume_id": volume_id},
                     context=RequestContext("p1", "u1", roles), fmt="json",
                     body={"os-retype": args})
    return v3_types.retype_action(deps)(req, volume_id, args)


def typed_volume(app: Any, db: Database, type_name: str) -> str:
    answer = member(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1,
                                                              "volume_type": type_name}})
    assert answer.status_int == 202, answer.text
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def test_retype_changes_the_type_in_place(app: Any, conf: Any, db: Database) -> None:
    new_type(app, "one")
    new_type(app, "two", extra_specs={"volume_backend_name": "file"})
    conf.set_override("driver", "file", group="volume")
    volume_id = typed_volume(app, db, "one")
    assert retype(conf, db, volume_id, {"new_type": "two",
                                        "migration_policy": "never"}).status == 202
    shown = member(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]
    assert shown["volume_type"] == "two"
    assert shown["status"] == "available"


def test_os_retype_is_a_volume_action(app: Any, db: Database) -> None:
    new_type(app, "one")
    new_type(app, "two")
    volume_id = typed_volume(app, db, "one")
    action = f"/v3/p1/volumes/{volume_id}/action"
    answer = member(app, "POST", action, {"os-retype": {"new_type": "two",
                                                         "migration_policy": "on-demand"}})
    assert answer.status_int == 202, answer.text
    assert member(app, "GET", f"/v3/p1/volumes/{volume_id}").json["volume"]["volume_type"] \
        == "two"
    assert "already has" in fault(member(app, "POST", action,
                                         {"os-retype": {"new_type": "two"}}), 400)
    fault(member(app, "POST", action, {"os-retype": {"new_type": "nothing"}}), 404)
    fault(member(app, "POST", action, {"os-retype": {}}), 400)
    fault(member(app, "POST", f"/v3/p1/volumes/{UUID_MISSING}/action",
                 {"os-retype": {"new_type": "one"}}), 404)


def test_retype_refuses_what_would_need_a_migration_or_is_no_change(
        app: Any, conf: Any, db: Database) -> None:
    from volmgr import exception

    new_type(app, "one")
    new_type(app, "elsewhere", extra_specs={"volume_backend_name": "no-such-backend"})
    shared = new_type(app, "shared", extra_specs={"multiattach": "<is> True"})
    encrypted = new_type(app, "encrypted")
    admin(app, "POST", f"/v3/adm/types/{encrypted['id']}/encryption",
          {"encryption": {"provider": "luks", "control_location": "front-end"}})
    volume_id = typed_volume(app, db, "one")
    for target in ("one", "elsewhere", "encrypted"):
        with pytest.raises(exception.Invalid):
            retype(conf, db, volume_id, {"new_type": target})
    with pytest.raises(exception.VolumeTypeNotFound):
        retype(conf, db, volume_id, {"new_type": "nothing"})
    for bad in ({}, {"new_type": "shared", "migration_policy": "sometimes"},
                {"new_type": "shared", "x": 1}, "shared"):
        with pytest.raises(exception.InvalidInput):
            retype(conf, db, volume_id, bad)
    assert db.volume_transition(volume_id, ("available",), {"status": "in-use"})
    # (This host cannot multiattach at all, so the data layer is asked directly.)
    with pytest.raises(exception.InvalidVolume, match="multiattach"):
        db.volume_retype(volume_id, shared["id"], project_id="p1")
    assert db.volume_transition(volume_id, ("in-use",), {"status": "extending"})
    with pytest.raises(exception.VolumeStatusConflict):
        db.volume_retype(volume_id, shared["id"], project_id="p1")
    assert db.volume_get(volume_id).volume_type == "one"
