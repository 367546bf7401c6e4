"""Prometheus metrics as an operator reads them: the series volmgr-api's ``/metrics`` and
the volume manager expose, their labels (route templates, kinds, outcomes, never a volume
or project id), and the sum across the API's worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from oslo_config import cfg
from prometheus_client.parser import text_string_to_metric_families

from tests.unit import api_helpers as h
from tests.unit.volume_fakes import FakeDriver
from volmgr import exception, metrics, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume import metrics as volume_metrics
from volmgr.volume.manager import VolumeManager
from volmgr.volume.notifications import VolumeNotifier

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(text)
             if n == name and all(lab.get(k) == want for k, want in labels.items())]
    return sum(found)


def scrape(app: Any) -> str:
    answer = h.call(app, "GET", "/metrics", token=None)
    assert answer.status_int == 200
    assert answer.content_type == "text/plain"
    return str(answer.text)


# -- volmgr-api ---------------------------------------------------------------------------


def test_api_metrics_need_no_token_and_count_requests_by_route_template(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db)
    app = h.make_app(conf, db, h.RecordingRPC())
    before = scrape(app)
    route = "/v3/{project_id}/volumes"
    created = [h.call(app, "POST", f"/v3/{h.PROJECT}/volumes", {"volume": {"size": 1}})
               for _ in range(3)]
    assert all(answer.status_int == 202 for answer in created)
    volume_id = created[0].json["volume"]["id"]
    assert h.call(app, "GET", f"/v3/{h.PROJECT}/volumes/{volume_id}").status_int == 200
    assert h.call(app, "GET", "/no/such/path").status_int == 404
    text = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("volmgr_api_requests_total", route=route, method="POST", status="202") == 3
    assert delta("volmgr_api_requests_total", route="/v3/{project_id}/volumes/{volume_id}",
                 method="GET", status="200") == 1
    assert delta("volmgr_api_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    assert delta("volmgr_api_request_duration_seconds_count", route=route,
                 method="POST") == 3
    # Cardinality: no label carries a volume id or a project id.
    for _, labels, _ in samples(text):
        for label in labels.values():
            assert volume_id not in label and label != h.PROJECT


def test_api_metrics_show_every_services_heartbeat_age_and_whether_it_is_up(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "node1")
    h.register_host(db, "node2")
    db.service_stopped("node2", "volmgr-volume")
    text = scrape(h.make_app(conf, db, h.RecordingRPC()))
    age = value(text, "volmgr_service_heartbeat_age_seconds", host="node1")
    assert 0 <= age < 60
    assert value(text, "volmgr_service_up", host="node1") == 1
    assert value(text, "volmgr_service_up", host="node2") == 0


def test_metrics_path_is_public_under_keystone_and_can_be_turned_off(
        conf: cfg.ConfigOpts, db: Database) -> None:
    conf.set_override("auth_strategy", "keystone")
    app = h.make_app(conf, db, h.RecordingRPC())
    # auth_token would refuse a caller without a token; /metrics never meets it.
    assert "volmgr_api_request_duration_seconds" in scrape(app)
    conf.set_override("auth_strategy", "noauth")
    conf.set_override("expose_metrics", False, group="api")
    app = h.make_app(conf, db, h.RecordingRPC())
    assert h.call(app, "GET", "/metrics", token=None).status_int in (401, 404)


def test_api_worker_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    """What volmgr-api's master sets up: each worker process writes its own samples,
    and a scrape answered by any one worker sums them all."""
    directory = tmp_path / "metrics"
    # The master imports the library first, switches mode, then forks two workers.
    master = textwrap.dedent(f"""
        import os
        from volmgr import metrics
        metrics.enable_multiprocess({str(directory)!r})
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                metrics.HTTP_REQUESTS.labels("/v3/{{project_id}}/volumes", "POST",
                                             "202").inc(2)
                os._exit(0)
            os.waitpid(pid, 0)
        body, _ = metrics.render(metrics.registry_for_scrape())
        print(body.decode())
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(metrics.MULTIPROC_ENV, None)
    scraped = subprocess.run([sys.executable, "-c", master], check=True, cwd=ROOT, env=env,
                             capture_output=True, text=True).stdout
    assert value(scraped, "volmgr_api_requests_total", method="POST", status="202") == 4


# -- volmgr-volume ------------------------------------------------------------------------

HOST = "metrics-node"


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database) -> Iterator[tuple[VolumeManager, FakeDriver]]:
    driver = FakeDriver()
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(None), host=HOST)
    yield mgr, driver
    mgr.wait_idle(10)
    mgr.close()


def registry_value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_operations_are_counted_by_kind_and_outcome_with_duration_and_bus_lag(
        manager: tuple[VolumeManager, FakeDriver], db: Database) -> None:
    mgr, driver = manager
    ok = {"host": HOST, "kind": "create_volume", "outcome": "success"}
    failed = {"host": HOST, "kind": "create_volume", "outcome": "error"}
    before_ok, before_failed = (registry_value("volmgr_operations_total", **ok),
                                registry_value("volmgr_operations_total", **failed))
    lag_before = registry_value("volmgr_operation_bus_lag_seconds_count",
                                host=HOST, kind="create_volume")
    lag_sum_before = registry_value("volmgr_operation_bus_lag_seconds_sum", host=HOST,
                                    kind="create_volume")
    ctx = {**RequestContext(project_id="p1", user_id="u1").to_dict(),
           "sent_at": time.time() - 2.0}  # cast two seconds ago
    good = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                            display_name="a", status=states.CREATING).id
    mgr.create_volume(ctx, good)
    assert mgr.wait_idle(10)
    driver.fail["create_volume"] = exception.BackendError(reason="disk on fire")
    bad = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                           display_name="b", status=states.CREATING).id
    mgr.create_volume(ctx, bad)
    assert mgr.wait_idle(10)
    assert db.volume_get(bad).status == states.ERROR
    assert registry_value("volmgr_operations_total", **ok) == before_ok + 1
    assert registry_value("volmgr_operations_total", **failed) == before_failed + 1
    assert registry_value("volmgr_operation_duration_seconds_count", host=HOST,
                          kind="create_volume") >= 2
    assert registry_value("volmgr_operation_bus_lag_seconds_count", host=HOST,
                          kind="create_volume") == lag_before + 2
    # Both lags were at least the two seconds since the cast.
    assert registry_value("volmgr_operation_bus_lag_seconds_sum", host=HOST,
                          kind="create_volume") - lag_sum_before >= 4.0
    assert registry_value("volmgr_operations_in_flight", host=HOST) == 0
    assert registry_value("volmgr_operations_queued", host=HOST) == 0


def test_queued_and_in_flight_show_work_waiting_behind_a_busy_volume(
        manager: tuple[VolumeManager, FakeDriver], db: Database) -> None:
    mgr, driver = manager
    gate = threading.Event()
    driver.gates["extend_volume"] = gate
    volume_id = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                                 display_name="c", status=states.EXTENDING).id
    driver.volumes[volume_id] = 1
    ctx = RequestContext(project_id="p1", user_id="u1").to_dict()
    mgr.extend_volume(ctx, volume_id, 2)
    mgr.extend_volume(ctx, volume_id, 3)  # waits for the first: same volume
    deadline = time.monotonic() + 5
    while registry_value("volmgr_operations_in_flight", host=HOST) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert registry_value("volmgr_operations_queued", host=HOST) == 1
    gate.set()
    assert mgr.wait_idle(10)
    assert registry_value("volmgr_operations_in_flight", host=HOST) == 0
    assert registry_value("volmgr_operations_queued", host=HOST) == 0


def test_capacity_from_the_heartbeat_becomes_vg_gauges() -> None:
    volume_metrics.update_capacity("cap-node", {
        "volume_group": "vg0", "total_capacity_bytes": 10 * 1024 ** 3,
        "free_capacity_bytes": 4 * 1024 ** 3, "total_capacity_gb": 10.0,
        "free_capacity_gb": 4.0, "provisioned_capacity_gb": 6.0})
    labels = {"host": "cap-node", "vg": "vg0"}
    assert registry_value("volmgr_vg_size_bytes", **labels) == 10 * 1024 ** 3
    assert registry_value("volmgr_vg_free_bytes", **labels) == 4 * 1024 ** 3
    assert registry_value("volmgr_vg_allocated_bytes", **labels) == 6 * 1024 ** 3


def test_tgtd_listing_gives_exports_and_iscsi_sessions() -> None:
    listing = textwrap.dedent("""\
        Target 1: iqn.2010-10.org.openstack:volume-1
            System information:
                Driver: iscsi
                State: ready
            I_T nexus information:
                I_T nexus: 3
                    Initiator: iqn.1994-05.com.redhat:a alias: a
                I_T nexus: 4
                    Initiator: iqn.1994-05.com.redhat:b alias: b
        Target 2: iqn.2010-10.org.openstack:volume-2
            System information:
                Driver: iscsi
            I_T nexus information:
        Target 3: iqn.other:not-ours
            I_T nexus information:
        """)

    class Target:
        target_prefix = "iqn.2010-10.org.openstack:"

        def _tgtadm(self, *args: str) -> Any:
            return type("Result", (), {"stdout": listing})()

    class Driver:
        target = Target()

    volume_metrics.update_backend("tgt-node", Driver())  # type: ignore[arg-type]
    assert registry_value("volmgr_exports", host="tgt-node") == 2
    assert registry_value("volmgr_iscsi_sessions", host="tgt-node") == 2


def test_the_operations_guide_documents_every_series() -> None:
    guide = (ROOT / "docs/operations.md").read_text()
    for collector in list(prometheus_client.REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            if family.name.startswith("volmgr_"):
                suffix = "_total" if family.type == "counter" else ""
                assert f"`{family.name}{suffix}`" in guide, family.name
    for name in ("volmgr_service_heartbeat_age_seconds", "volmgr_service_up",
                 "volmgr_service_disabled"):
        assert f"`{name}`" in guide
