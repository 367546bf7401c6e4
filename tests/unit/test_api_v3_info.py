"""Block Storage v3: availability zones, services, hosts, pools, capabilities and
extensions, as an operator (and Tempest's volume admin tests) see them."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import exception, rpc, states
from volmgr.api import scheduler, v3_info, wsgi
from volmgr.api.v3_base import V3Deps
from volmgr.db import Database, models

ADMIN = {"X-Roles": "admin"}
ADMIN_TOKEN = "root:adm"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def admin_get(app: Any, path: str, version: str | None = None) -> Any:
    headers = dict(ADMIN)
    if version:
        headers["OpenStack-API-Version"] = f"volume {version}"
    return h.call(app, "GET", f"/v3/adm{path}", token=ADMIN_TOKEN, headers=headers)


def admin_put(app: Any, path: str, body: Any) -> Any:
    return h.call(app, "PUT", f"/v3/adm{path}", body, token=ADMIN_TOKEN, headers=ADMIN)


def make_stale(db: Database, host: str) -> None:
    """The host's manager stopped heartbeating an hour ago."""
    services = models.table(models.Service)
    with db.transaction() as session:
        session.execute(sa.update(services).where(services.c.host == host).values(
            last_heartbeat=models.utcnow() - datetime.timedelta(hours=1)))


def create(app: Any, size: int = 1, token: str = h.TOKEN) -> dict[str, Any]:
    project = token.split(":")[1]
    answer = h.call(app, "POST", f"/v3/{project}/volumes", {"volume": {"size": size}},
                    token=token)
    assert answer.status_int == 202, answer.text
    return answer.json["volume"]  # type: ignore[no-any-return]


# -- display_host --------------------------------------------------------------------


def test_display_host_is_host_at_backend_hash_pool(conf: cfg.ConfigOpts) -> None:
    assert v3_info.display_host("node1", conf) == "node1@lvm#lvm"
    assert v3_info.display_host(None, conf) is None
    conf.set_override("driver", "file", group="volume")
    assert v3_info.display_host("node1", conf) == "node1@file#file"
    conf.set_override("volume_backend_name", "gold", group="volume")
    assert v3_info.display_host("node1", conf) == "node1@gold#gold"


@pytest.mark.parametrize(("name", "expected"), [
    ("node1", "node1"), ("node1@lvm", "node1"), ("node1@lvm#lvm", "node1"),
    ("node1#lvm", "node1"), ("node1@other", None), ("node1@lvm#other", None), ("", None),
])
def test_manager_host_reads_every_shown_form(conf: cfg.ConfigOpts, name: str,
                                             expected: str | None) -> None:
    assert v3_info.manager_host(name, conf) == expected


# -- availability zones ----------------------------------------------------------------


def test_availability_zone_is_available_while_a_volume_service_is_up(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    conf.set_override("storage_availability_zone", "zone-a")
    answer = h.call(app, "GET", "/v3/p1/os-availability-zone")
    assert answer.status_int == 200
    assert answer.json == {"availabilityZoneInfo": [
        {"zoneName": "zone-a", "zoneState": {"available": True}}]}
    make_stale(db, "node1")
    zones = h.call(app, "GET", "/v3/p1/os-availability-zone").json["availabilityZoneInfo"]
    assert zones == [{"zoneName": "zone-a", "zoneState": {"available": False}}]


# -- services --------------------------------------------------------------------------


def test_services_list_volume_managers_as_cinder_volume_and_the_api_as_scheduler(
        app: Any, conf: cfg.ConfigOpts) -> None:
    conf.set_override("host", "apinode")
    answer = admin_get(app, "/os-services")
    assert answer.status_int == 200
    volume, sched = answer.json["services"]
    assert volume == {
        "binary": "cinder-volume", "host": "node1@lvm", "zone": "nova",
        "status": "enabled", "state": "up", "updated_at": volume["updated_at"],
        "disabled_reason": None, "replication_status": "disabled",
        "active_backend_id": None, "frozen": False}
    assert TIMESTAMP.match(volume["updated_at"])
    assert sched == {"binary": "cinder-scheduler", "host": "apinode", "zone": "nova",
                     "status": "enabled", "state": "up",
                     "updated_at": sched["updated_at"], "disabled_reason": None}
    at_3_7 = admin_get(app, "/os-services", "3.7").json["services"]
    assert all(service["cluster"] is None for service in at_3_7)
    at_3_49 = admin_get(app, "/os-services", "3.49").json["services"]
    assert at_3_49[0]["backend_state"] == "up"


def test_a_silent_manager_is_down(app: Any, db: Database) -> None:
    make_stale(db, "node1")
    (volume,) = admin_get(app, "/os-services?binary=cinder-volume").json["services"]
    assert volume["state"] == "down"


def test_services_filter_by_host_and_binary_as_the_reference_does(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    conf.set_override("host", "node1")
    h.register_host(db, "node2")

    def listed(query: str) -> list[tuple[str, str]]:
        services = admin_get(app, f"/os-services?{query}").json["services"]
        return [(s["binary"], s["host"]) for s in services]

    assert listed("host=node1") == [("cinder-volume", "node1@lvm"),
                                    ("cinder-scheduler", "node1")]
    assert listed("host=node1@lvm") == [("cinder-volume", "node1@lvm")]
    assert listed("binary=cinder-volume") == [("cinder-volume", "node1@lvm"),
                                              ("cinder-volume", "node2@lvm")]
    assert listed("binary=volmgr-volume&host=node2") == [("cinder-volume", "node2@lvm")]
    assert listed("binary=cinder-scheduler") == [("cinder-scheduler", "node1")]
    assert listed("host=nowhere") == []


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/os-services"), ("PUT", "/os-services/disable"), ("GET", "/os-hosts"),
    ("GET", "/os-hosts/node1@lvm"), ("GET", "/scheduler-stats/get_pools"),
    ("GET", "/capabilities/node1"),
])
def test_admin_calls_are_refused_to_members(app: Any, method: str, path: str) -> None:
    body = {"host": "node1", "binary": "cinder-volume"} if method == "PUT" else None
    answer = h.call(app, method, f"/v3/p1{path}", body)
    assert answer.status_int == 403, answer.text


def test_a_disabled_volume_service_gets_no_new_volumes(app: Any, db: Database) -> None:
    answer = admin_put(app, "/os-services/disable",
                       {"host": "node1@lvm", "binary": "cinder-volume"})
    assert answer.status_int == 200
    assert answer.json == {"host": "node1@lvm", "service": "", "binary": "cinder-volume",
                           "status": "disabled", "disabled": True}
    assert db.service_get("node1", rpc.TOPIC).disabled
    assert create(app)["status"] == states.ERROR
    (service,) = admin_get(app, "/os-services?binary=cinder-volume").json["services"]
    assert service["status"] == "disabled"
    assert admin_get(app, "/os-availability-zone").json["availabilityZoneInfo"][0][
        "zoneState"] == {"available": False}

    answer = admin_put(app, "/os-services/enable",
                       {"host": "node1", "binary": "cinder-volume"})
    assert answer.status_int == 200
    assert answer.json == {"host": "node1", "service": "", "binary": "cinder-volume",
                           "status": "enabled", "disabled": False, "disabled_reason": None}
    assert create(app)["status"] == states.CREATING


def test_disable_log_reason_records_and_shows_the_reason(app: Any) -> None:
    answer = admin_put(app, "/os-services/disable-log-reason",
                       {"host": "node1@lvm", "binary": "cinder-volume",
                        "disabled_reason": "disk replacement"})
    assert answer.status_int == 200
    assert answer.json["disabled_reason"] == "disk replacement"
    assert answer.json["status"] == "disabled" and answer.json["disabled"] is True
    (service,) = admin_get(app, "/os-services?binary=cinder-volume").json["services"]
    assert (service["status"], service["disabled_reason"]) == ("disabled",
                                                               "disk replacement")
    admin_put(app, "/os-services/enable", {"host": "node1@lvm", "service": "cinder-volume"})
    (service,) = admin_get(app, "/os-services?binary=cinder-volume").json["services"]
    assert (service["status"], service["disabled_reason"]) == ("enabled", None)


@pytest.mark.parametrize(("action", "body", "status"), [
    ("enable", {"host": "invalid_host", "binary": "cinder-volume"}, 404),
    ("disable", {"host": "node1@lvm", "binary": "invalid_binary"}, 404),
    ("disable", {"host": "node1@other", "binary": "cinder-volume"}, 404),
    ("disable", {"host": "node1@lvm"}, 400),
    ("disable", {"binary": "cinder-volume"}, 400),
    ("disable", {"host": "node1@lvm", "binary": "cinder-volume", "colour": "red"}, 400),
    ("disable", ["node1"], 400),
    ("disable-log-reason", {"host": "node1@lvm", "binary": "cinder-volume",
                            "disabled_reason": None}, 400),
    ("disable-log-reason", {"host": "node1@lvm", "binary": "cinder-volume",
                            "disabled_reason": "  "}, 400),
    ("disable", {"host": "apinode", "binary": "cinder-scheduler"}, 400),
    ("freeze", {"host": "invalid_host"}, 400),
    ("thaw", {"host": "invalid_host"}, 400),
    ("freeze", {"host": "node1@lvm"}, 400),
    ("reboot", {"host": "node1@lvm"}, 404),
])
def test_service_updates_refuse_what_they_cannot_do(
        app: Any, db: Database, conf: cfg.ConfigOpts, action: str, body: Any,
        status: int) -> None:
    conf.set_override("host", "apinode")
    answer = admin_put(app, f"/os-services/{action}", body)
    assert answer.status_int == status, answer.text
    assert not db.service_get("node1", rpc.TOPIC).disabled


# -- hosts -----------------------------------------------------------------------------


def test_hosts_list_enabled_services_and_show_a_volume_hosts_usage(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    conf.set_override("host", "apinode")
    h.register_host(db, "node2")
    db.service_set_disabled("node2", rpc.TOPIC, True)
    hosts = admin_get(app, "/os-hosts").json["hosts"]
    assert [(x["host_name"], x["service"]) for x in hosts] == [
        ("node1@lvm", "cinder-volume"), ("apinode", "cinder-scheduler")]
    assert hosts[0]["zone"] == "nova"
    assert hosts[0]["service-status"] == "available"
    assert hosts[0]["service-state"] == "enabled"
    assert TIMESTAMP.match(hosts[0]["last-update"])
    assert admin_get(app, "/os-hosts?zone=elsewhere").json["hosts"] == []

    mine = create(app, 2)
    create(app, 3)
    create(app, 4, token=h.OTHER_TOKEN)
    h.finish(db, mine["id"])
    db.snapshot_create(mine["id"], project_id="p1", user_id="u1")
    answer = admin_get(app, "/os-hosts/node1@lvm")
    assert answer.status_int == 200
    resources = [entry["resource"] for entry in answer.json["host"]]
    assert resources == [
        {"host": "node1@lvm", "project": "(total)", "volume_count": "3",
         "total_volume_gb": "9", "snapshot_count": "1", "total_snapshot_gb": "2"},
        {"host": "node1@lvm", "project": "p1", "volume_count": "2",
         "total_volume_gb": "5", "snapshot_count": "1", "total_snapshot_gb": "2"},
        {"host": "node1@lvm", "project": "p2", "volume_count": "1",
         "total_volume_gb": "4", "snapshot_count": "0", "total_snapshot_gb": "0"}]
    assert admin_get(app, "/os-hosts/apinode").status_int == 404
    assert admin_get(app, "/os-hosts/nowhere@lvm").status_int == 404


# -- pools and capabilities ------------------------------------------------------------


def test_pools_are_named_host_backend_pool_with_their_reported_capacity(
        app: Any, db: Database, conf: cfg.ConfigOpts) -> None:
    conf.set_override("max_oversubscription_ratio", 1.0, group="api")
    h.register_host(db, "node2", free=50.0, total=80.0, thin=True, provisioned=30.0)
    create(app, 3)  # lands on node1, the one with most room
    assert admin_get(app, "/scheduler-stats/get_pools").json == {
        "pools": [{"name": "node1@lvm#lvm"}, {"name": "node2@lvm#lvm"}]}
    node1, node2 = admin_get(app, "/scheduler-stats/get_pools?detail=True").json["pools"]
    caps = node1["capabilities"]
    assert node1["name"] == "node1@lvm#lvm"
    assert (caps["total_capacity_gb"], caps["free_capacity_gb"],
            caps["allocated_capacity_gb"]) == (100.0, 100.0, 3.0)
    assert (caps["vendor_name"], caps["storage_protocol"], caps["volume_backend_name"],
            caps["pool_name"]) == ("Open Source", "iSCSI", "lvm", "lvm")
    assert caps["reserved_percentage"] == 0 and caps["QoS_support"] is False
    assert isinstance(caps["driver_version"], str)
    assert caps["thick_provisioning_support"] is True
    assert TIMESTAMP.match(caps["timestamp"])
    assert node2["capabilities"]["thin_provisioning_support"] is True
    assert node2["capabilities"]["provisioned_capacity_gb"] == 30.0
    assert admin_get(app, "/scheduler-stats/get_pools?detail=maybe").status_int == 400


def test_pools_leave_out_hosts_that_are_down_or_disabled(app: Any, db: Database) -> None:
    h.register_host(db, "node2")
    h.register_host(db, "node3")
    make_stale(db, "node2")
    db.service_set_disabled("node3", rpc.TOPIC, True)
    pools = admin_get(app, "/scheduler-stats/get_pools").json["pools"]
    assert pools == [{"name": "node1@lvm#lvm"}]


def test_pools_filter_by_name_and_capability_from_3_28(app: Any, db: Database) -> None:
    h.register_host(db, "node2", thin=True)
    query = "/scheduler-stats/get_pools?name=node2@lvm%23lvm"
    assert len(admin_get(app, query).json["pools"]) == 2  # ignored before 3.28
    assert admin_get(app, query, "3.28").json["pools"] == [{"name": "node2@lvm#lvm"}]
    thin = "/scheduler-stats/get_pools?thin_provisioning_support=true"
    assert admin_get(app, thin, "3.28").json["pools"] == [{"name": "node2@lvm#lvm"}]
    assert admin_get(app, "/scheduler-stats/get_pools?free_capacity_gb=100",
                     "3.28").json["pools"] == [{"name": "node1@lvm#lvm"},
                                               {"name": "node2@lvm#lvm"}]


def test_backend_name_option_names_pools_and_volume_hosts(
        app: Any, conf: cfg.ConfigOpts) -> None:
    conf.set_override("volume_backend_name", "gold", group="volume")
    (pool,) = admin_get(app, "/scheduler-stats/get_pools?detail=true").json["pools"]
    assert pool["name"] == "node1@gold#gold"
    assert pool["capabilities"]["volume_backend_name"] == "gold"
    volume_id = create(app)["id"]
    shown = admin_get(app, f"/volumes/{volume_id}").json["volume"]
    assert shown["os-vol-host-attr:host"] == "node1@gold#gold"


@pytest.mark.parametrize("name", ["node1", "node1@lvm", "node1@lvm%23lvm"])
def test_capabilities_agree_with_the_pool(app: Any, name: str) -> None:
    answer = admin_get(app, f"/capabilities/{name}")
    assert answer.status_int == 200
    caps = answer.json
    assert caps == {
        "namespace": "OS::Storage::Capabilities::node1@lvm", "vendor_name": "Open Source",
        "volume_backend_name": "lvm", "pool_name": "lvm",
        "driver_version": caps["driver_version"], "storage_protocol": "iSCSI",
        "display_name": None, "description": None, "visibility": None,
        "replication_targets": [], "properties": {}}
    (pool,) = admin_get(app, "/scheduler-stats/get_pools?detail=true").json["pools"]
    for key in ("vendor_name", "volume_backend_name", "storage_protocol",
                "driver_version"):
        assert pool["capabilities"][key] == caps[key]


def test_capabilities_of_a_thin_host_describe_thin_provisioning(
        app: Any, db: Database) -> None:
    h.register_host(db, "node2", thin=True)
    properties = admin_get(app, "/capabilities/node2").json["properties"]
    assert set(properties) == {"thin_provisioning"}
    assert set(properties["thin_provisioning"]) == {"title", "description", "type"}


@pytest.mark.parametrize("name", ["nowhere", "node1@other", "node1@lvm%23other"])
def test_capabilities_of_an_unknown_backend_is_404(app: Any, name: str) -> None:
    assert admin_get(app, f"/capabilities/{name}").status_int == 404


# -- extensions ------------------------------------------------------------------------


def test_extensions_list_what_is_served(app: Any) -> None:
    answer = h.call(app, "GET", "/v3/p1/extensions")
    assert answer.status_int == 200
    extensions = answer.json["extensions"]
    for extension in extensions:
        assert set(extension) == {"name", "alias", "description", "updated", "links"}
        assert extension["links"] == []
        assert datetime.datetime.fromisoformat(extension["updated"])
    aliases = {e["alias"] for e in extensions}
    assert {"os-hosts", "os-services", "os-availability-zone", "scheduler-stats",
            "capabilities", "os-extended-services", "os-vol-host-attr",
            "os-vol-tenant-attr", "os-volume-actions"} <= aliases
    assert "Hosts" in {e["name"] for e in extensions}


def test_an_extension_without_its_route_or_action_is_not_listed(
        conf: cfg.ConfigOpts, db: Database) -> None:
    router = wsgi.Router()
    deps = V3Deps(conf, db, ops=None, rpcapi=None)  # type: ignore[arg-type]
    info = v3_info.InfoController(router, deps)
    v3_info.add_routes(router, deps)
    request = wsgi.ApiRequest(None, {}, None, "json")  # type: ignore[arg-type]
    aliases = {e["alias"] for e in info.extensions(request).body["extensions"]}
    assert "os-hosts" in aliases and "os-vol-host-attr" in aliases
    assert not aliases & {"os-volume-actions", "os-admin-actions", "qos-specs",
                          "os-quota-sets", "os-volume-transfer", "os-types-manage"}


# -- host choice honours the volume type's extra specs --------------------------------


@pytest.mark.parametrize(("specs", "fits"), [
    ({}, True),
    ({"storage_protocol": "iSCSI", "vendor_name": "Open Source"}, True),
    ({"storage_protocol": "FC"}, False),
    ({"vendor_name": "someone"}, False),
    ({"volume_backend_name": "lvm"}, True),
    ({"capabilities:volume_backend_name": "lvm"}, True),
    ({"volume_backend_name": "gold"}, False),
    ({"RESKEY:anything": "x", "vendor:thing": "y"}, True),
    ({"no_such_capability": "1"}, False),
    ({"thin_provisioning_support": "<is> True"}, False),
    ({"thick_provisioning_support": "<is> True"}, True),
    ({"free_capacity_gb": ">= 50"}, True),
    ({"free_capacity_gb": ">= 500"}, False),
    ({"storage_protocol": "<or> FC <or> iSCSI"}, True),
    ({"storage_protocol": "s== iSCSI"}, True),
    ({"vendor_name": "<in> Source"}, True),
])
def test_host_choice_honours_extra_specs(conf: cfg.ConfigOpts, db: Database,
                                         specs: dict[str, str], fits: bool) -> None:
    h.register_host(db)
    chooser = scheduler.Scheduler(conf, db)
    if fits:
        assert chooser.choose_host(1, specs) == "node1"
    else:
        with pytest.raises(exception.NoValidHost, match="capabilities"):
            chooser.choose_host(1, specs)
