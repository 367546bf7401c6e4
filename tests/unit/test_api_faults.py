"""Validation, faults, quota, state conflicts, authentication and tenant isolation, on
both faces."""

from __future__ import annotations

import json
from typing import Any

import pytest
from oslo_config import cfg

from tests.db_reads import quota_usage
from tests.unit import api_helpers as h
from volmgr import exception, states
from volmgr.api import faults
from volmgr.db import Database


def available(app: Any, db: Database, token: str = h.TOKEN, project: str = "p1") -> str:
    answer = h.call(app, "POST", f"/v3/{project}/volumes", {"volume": {"size": 1}},
                    token=token)
    volume_id: str = answer.json["volume"]["id"]
    h.finish(db, volume_id)
    return volume_id


def test_every_fault_class_maps_to_one_code_and_name() -> None:
    cases = [(exception.VolumeNotFound(volume_id="x"), 404, "itemNotFound"),
             (exception.InvalidInput(reason="r"), 400, "badRequest"),
             (exception.VolumeStatusConflict(volume_id="x", status="s", expected="e"),
              409, "conflictingRequest"),
             (exception.QuotaExceeded(resource="volumes", requested=1, in_use=1, limit=1),
              413, "overLimit"),
             (exception.RequestTooLarge(limit=10), 413, "requestEntityTooLarge"),
             (RuntimeError("secret detail"), 500, "computeFault")]
    for error, status, name in cases:
        code, fault, _message = faults.classify(error)
        assert (code, fault) == (status, name)
    assert "secret detail" not in faults.classify(RuntimeError("secret detail"))[2]


def test_an_unexpected_error_is_a_500_compute_fault_without_its_text(
        app: Any, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("password=hunter2")
    monkeypatch.setattr(db, "volume_list", boom)
    answer = h.call(app, "GET", "/v1.1/p1/os-volumes")
    assert answer.status_int == 500
    assert "hunter2" not in answer.text
    assert answer.json["computeFault"]["code"] == 500


@pytest.mark.parametrize("path", ["/v1.1/p1/os-volumes", "/v3/p1/volumes"])
@pytest.mark.parametrize("raw", [b"{", b"[1,", b"\xff\xfe", b'{"volume": {"size": 1}'])
def test_malformed_json_is_400_naming_the_problem(app: Any, path: str, raw: bytes) -> None:
    answer = h.call(app, "POST", path, raw=raw)
    assert answer.status_int == 400
    assert "malformed JSON" in answer.json["badRequest"]["message"]


def test_deeply_nested_json_is_400_not_a_crash(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes", raw=b"[" * 100_000)
    assert answer.status_int == 400
    assert "nested" in answer.json["badRequest"]["message"]


def test_a_url_that_is_not_utf8_is_400(app: Any) -> None:
    import webob
    for path, query in (("/v3/p1/volumes/\xff", ""), ("/v3/p1/volumes", "limit=%ff")):
        request = webob.Request.blank("/")
        request.environ.update(PATH_INFO=path, QUERY_STRING=query,
                               HTTP_X_AUTH_TOKEN=h.TOKEN)
        answer = request.get_response(app)
        assert answer.status_int == 400
        assert "UTF-8" in answer.json["badRequest"]["message"]


@pytest.mark.parametrize("body, problem", [
    ({"volume": {"size": 1, "colour": "red"}}, "colour"),
    ({"volume": {"size": 1}, "extra": 1}, "extra"),
    ({"volume": {"size": 1, "metadata": {"k": 1}}}, "metadata.k"),
    ({"volume": {"size": 1, "display_name": 5}}, "display_name"),
    ({"volume": {}}, "size"),
    ({"volume": 1}, "volume"),
    ([], "volume"),
])
def test_unknown_or_mistyped_fields_are_400_naming_the_field(
        app: Any, body: Any, problem: str) -> None:
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", body)
    assert answer.status_int == 400
    assert problem in answer.json["badRequest"]["message"]


@pytest.mark.parametrize("size", [0, -1, 1.5, "1.0", True, None, "abc", 1025, 10**30])
def test_size_must_be_a_positive_integer_within_max_volume_size(app: Any, size: Any) -> None:
    for path in ("/v1.1/p1/os-volumes", "/v3/p1/volumes"):
        answer = h.call(app, "POST", path, {"volume": {"size": size}})
        assert answer.status_int == 400, (path, size, answer.text)
        assert "size" in answer.json["badRequest"]["message"]


def test_a_size_given_as_a_digit_string_is_accepted(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": "2"}})
    assert answer.status_int == 202
    assert answer.json["volume"]["size"] == 2


def test_a_body_over_max_request_body_size_is_413(app: Any, conf: cfg.ConfigOpts) -> None:
    limit = conf.api.max_request_body_size
    body = json.dumps({"volume": {"size": 1, "display_description": "x" * limit}})
    answer = h.call(app, "POST", "/v3/p1/volumes", raw=body.encode())
    assert answer.status_int == 413
    assert str(limit) in answer.json["requestEntityTooLarge"]["message"]


def test_a_chunked_body_over_the_limit_is_413(app: Any, conf: cfg.ConfigOpts) -> None:
    import io

    import webob
    request = webob.Request.blank("/v3/p1/volumes", method="POST")
    request.headers["X-Auth-Token"] = h.TOKEN
    request.headers["Transfer-Encoding"] = "chunked"
    request.environ["wsgi.input"] = io.BytesIO(b"x" * (conf.api.max_request_body_size + 5))
    request.environ.pop("CONTENT_LENGTH", None)
    assert request.get_response(app).status_int == 413


def test_quota_exhaustion_is_413_over_limit_and_reserves_nothing(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    limited = Database(db.engine, quota_limits={"volumes": 2, "gigabytes": 1000,
                                                "snapshots": 10})
    app = h.make_app(conf, limited, h.RecordingRPC())
    for _ in range(2):
        assert h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}}).status_int \
            == 202
    before = quota_usage(db, "p1")
    answer = h.call(app, "POST", "/v1.1/p1/os-volumes", {"volume": {"size": 1}})
    assert answer.status_int == 413
    assert "volumes" in answer.json["overLimit"]["message"]
    assert quota_usage(db, "p1") == before
    assert len(db.volume_list("p1")) == 2


def test_gigabytes_quota_also_limits_extend(app: Any, db: Database,
                                            conf: cfg.ConfigOpts) -> None:
    limited = Database(db.engine, quota_limits={"volumes": 10, "gigabytes": 5,
                                                "snapshots": 10})
    app = h.make_app(conf, limited, h.RecordingRPC())
    volume_id = available(app, db)
    answer = h.call(app, "POST", f"/v3/p1/volumes/{volume_id}/action",
                    {"os-extend": {"new_size": 6}})
    assert answer.status_int == 413
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert quota_usage(db, "p1")["gigabytes"] == 1


def test_delete_of_attached_volume_is_refused_409_on_compute_and_400_on_v3(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    h.call(app, "POST", "/v1.1/p1/servers/s1/os-volume_attachments",
           {"volumeAttachment": {"volumeId": volume_id}})
    h.attach_done(db, volume_id)
    for path, status, fault in ((f"/v1.1/p1/os-volumes/{volume_id}", 409,
                                 "conflictingRequest"),
                                (f"/v3/p1/volumes/{volume_id}", 400, "badRequest")):
        answer = h.call(app, "DELETE", path)
        assert answer.status_int == status
        assert "in-use" in answer.json[fault]["message"]
    assert db.volume_get(volume_id).status == states.IN_USE


def test_no_valid_host_leaves_a_visible_error_volume_with_a_reason_and_its_quota_released(
        conf: cfg.ConfigOpts, db: Database) -> None:
    rpcapi = h.RecordingRPC()
    app = h.make_app(conf, db, rpcapi)
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    assert answer.status_int == 202
    volume = answer.json["volume"]
    assert volume["status"] == "error"
    # The v3 face tells why through a user message (3.3), as the reference service does.
    messages = h.call(app, "GET", "/v3/p1/messages",
                      headers={"OpenStack-API-Version": "volume 3.3"}).json["messages"]
    assert [m["resource_uuid"] for m in messages] == [volume["id"]]
    assert rpcapi.casts == []
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 0}


def test_no_valid_host_still_answers_413_when_over_quota(
        conf: cfg.ConfigOpts, db: Database) -> None:
    db.quota_limits["gigabytes"] = 2
    app = h.make_app(conf, db, h.RecordingRPC())
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 3}})
    assert answer.status_int == 413
    assert "gigabytes" in answer.json["overLimit"]["message"]
    assert db.volume_list("p1") == []


def test_deleting_a_never_scheduled_volume_completes_in_the_api_and_frees_quota(
        conf: cfg.ConfigOpts, db: Database) -> None:
    rpcapi = h.RecordingRPC()
    app = h.make_app(conf, db, rpcapi)
    volume_id = h.call(app, "POST", "/v3/p1/volumes",
                       {"volume": {"size": 1}}).json["volume"]["id"]
    assert h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}").status_int == 202
    assert h.call(app, "GET", f"/v3/p1/volumes/{volume_id}").status_int == 404
    assert rpcapi.casts == []
    assert quota_usage(db, "p1") == {"volumes": 0, "gigabytes": 0}


def test_a_failed_cast_still_answers_2xx_and_leaves_the_row_for_recovery(
        app: Any, db: Database, rpcapi: h.RecordingRPC) -> None:
    rpcapi.fail = True
    answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
    assert answer.status_int == 202
    row = db.volume_get(answer.json["volume"]["id"])
    assert (row.status, row.host) == (states.CREATING, "node1")


def test_missing_token_is_401(app: Any) -> None:
    answer = h.call(app, "GET", "/v3/p1/volumes", token=None)
    assert answer.status_int == 401
    assert "X-Auth-Token" in answer.json["unauthorized"]["message"]


def test_a_token_without_colon_means_user_equals_project(app: Any) -> None:
    answer = h.call(app, "POST", "/v3/solo/volumes", {"volume": {"size": 1}}, token="solo")
    assert answer.status_int == 202
    assert answer.json["volume"]["user_id"] == "solo"
    shown = h.call(app, "GET", f"/v3/solo/volumes/{answer.json['volume']['id']}",
                   token="solo")
    assert shown.json["volume"]["os-vol-tenant-attr:tenant_id"] == "solo"


def test_wrong_method_is_405(app: Any) -> None:
    assert h.call(app, "PUT", "/v3/p1/volumes").status_int == 405


def test_another_project_gets_404_on_every_read_delete_extend_and_attach(
        app: Any, db: Database) -> None:
    volume_id = available(app, db)
    snapshot_id = h.call(app, "POST", "/v3/p1/snapshots",
                         {"snapshot": {"volume_id": volume_id}}).json["snapshot"]["id"]
    other = h.OTHER_TOKEN
    attempts = [
        ("GET", f"/v1.1/p2/os-volumes/{volume_id}", None),
        ("DELETE", f"/v1.1/p2/os-volumes/{volume_id}", None),
        ("POST", "/v1.1/p2/servers/s9/os-volume_attachments",
         {"volumeAttachment": {"volumeId": volume_id}}),
        ("GET", f"/v1.1/p2/servers/s9/os-volume_attachments/{volume_id}", None),
        ("GET", f"/v3/p2/volumes/{volume_id}", None),
        ("DELETE", f"/v3/p2/volumes/{volume_id}", None),
        ("POST", f"/v3/p2/volumes/{volume_id}/action", {"os-extend": {"new_size": 2}}),
        ("POST", "/v3/p2/snapshots", {"snapshot": {"volume_id": volume_id}}),
        ("GET", f"/v3/p2/snapshots/{snapshot_id}", None),
        ("DELETE", f"/v3/p2/snapshots/{snapshot_id}", None),
        # The first project's URL with the second project's token.
        ("GET", f"/v3/p1/volumes/{volume_id}", None),
        ("GET", "/v1.1/p1/os-volumes", None),
    ]
    for method, path, body in attempts:
        answer = h.call(app, method, path, body, token=other)
        assert answer.status_int == 404, (method, path, answer.text)
        assert "itemNotFound" in answer.json
    assert h.call(app, "GET", "/v3/p2/volumes", token=other).json["volumes"] == []
    assert h.call(app, "GET", "/v1.1/p2/os-volumes", token=other).json["volumes"] == []
    assert db.volume_get(volume_id).status == states.AVAILABLE


def test_an_admin_may_act_on_any_projects_volume(app: Any, db: Database) -> None:
    volume_id = available(app, db)
    answer = h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}", token="root:adm",
                    headers={"X-Roles": "admin"})
    assert answer.status_int == 202
