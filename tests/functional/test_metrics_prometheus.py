"""A real Prometheus server (Debian's ``prometheus`` package) scrapes a real volmgr-api
(two worker processes) and volmgr-volume (``[volume] metrics_port``) while a user makes a
few volumes, one create fails and one volume is attached; Prometheus' query API then
answers with the series docs/operations.md promises, and ``promtool check metrics``
accepts both exposition texts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.storage_env import Tgtd, tgtd  # noqa: F401
from tests.functional.test_attach_flow import INI1, AttachWalk, connector
from tests.functional.test_walkthrough import free_port
from tests.functional.volume_daemon import wait_for

SCRAPE_INTERVAL = 1


def prometheus_binaries() -> tuple[str, str]:
    """prometheus and promtool; installed from Debian when missing and we are root."""
    if shutil.which("prometheus") is None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "prometheus"], env=env,
                       capture_output=True, timeout=600, check=False)
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        if os.environ.get("VOLMGR_REQUIRE_SERVICES"):
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return prometheus, promtool


class Prometheus:
    """One prometheus process scraping the given jobs every second."""

    def __init__(self, tmp: Path, jobs: dict[str, str]) -> None:
        self.binary, self.promtool = prometheus_binaries()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "prometheus.yml"
        scrape = [{"job_name": job, "scrape_interval": f"{SCRAPE_INTERVAL}s",
                   "scrape_timeout": f"{SCRAPE_INTERVAL}s",
                   "static_configs": [{"targets": [target]}]}
                  for job, target in jobs.items()]
        self.config.write_text(json.dumps({"scrape_configs": scrape}))  # YAML ⊃ JSON
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={self.config}",
                 f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False
        wait_for(ready, 30, "prometheus ready", interval=0.2)

    def query(self, expression: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as answer:
            document = json.loads(answer.read())
        assert document["status"] == "success", document
        return list(document["data"]["result"])

    def value(self, expression: str) -> float | None:
        """The single value of an expression, None while it has no sample."""
        result = self.query(expression)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def walk(tmp_path: Path, postgres_url: str, rabbit_url: str,
         tgtd: Tgtd) -> Iterator[AttachWalk]:  # noqa: F811
    built = AttachWalk(tmp_path, postgres_url, rabbit_url, tgtd)
    built.metrics_port = free_port()  # type: ignore[attr-defined]
    built.config.write_text(built.config.read_text().replace(
        "[volume]\n", f"[volume]\nmetrics_host = 127.0.0.1\nmetrics_port = "
        f"{built.metrics_port}\nreport_interval = 1\n"))  # type: ignore[attr-defined]
    try:
        built.manage("db", "sync")
        built.start()
        yield built
    finally:
        built.close()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        return str(answer.read().decode())


def test_prometheus_scrapes_the_api_and_the_volume_daemon(walk: AttachWalk,
                                                         tmp_path: Path) -> None:
    volume_metrics = f"127.0.0.1:{walk.metrics_port}"  # type: ignore[attr-defined]
    prom = Prometheus(tmp_path, {"volmgr-api": f"127.0.0.1:{walk.port}",
                                 "volmgr-volume": volume_metrics})
    try:
        # A few creates, a failed create (a clone whose source image vanished behind
        # volmgr's back), and an attach through the v3 attachments API.
        volumes = [walk.new_volume() for _ in range(3)]
        source = walk.new_volume()
        image = tmp_path / "state" / "volumes" / f"volume-{source}"
        assert image.exists()
        image.unlink()
        clone = walk.client().volumes.create(1, source_volid=source)
        wait_for(lambda: walk.status(clone.id) == "error", 30, "the clone fails")
        cinder = walk.client()
        reserved = cinder.attachments.create(volumes[0], None, instance_id="server-1")
        cinder.attachments.update(reserved["id"], connector(INI1, "compute-1"))
        cinder.attachments.complete(reserved["id"])
        assert walk.status(volumes[0]) == "in-use"

        host = walk.host
        expectations = {
            # Both targets scraped.
            'up{job="volmgr-api"}': 1,
            'up{job="volmgr-volume"}': 1,
            # HTTP by route template, method and status, summed over both API workers.
            'sum(volmgr_api_requests_total{route="/v3/{project_id}/volumes",'
            'method="POST",status="202"})': 5,
            'sum(volmgr_api_request_duration_seconds_count{route="/v3/{project_id}/volumes",'
            'method="POST"})': 5,
            'sum(volmgr_api_requests_total{route="/v3/{project_id}/attachments",'
            'method="POST"})': 1,
            # Operations by kind and outcome, with durations and the bus lag.
            f'volmgr_operations_total{{host="{host}",kind="create_volume",'
            'outcome="success"}': 4,
            f'volmgr_operations_total{{host="{host}",kind="create_volume",'
            'outcome="error"}': 1,
            f'volmgr_operations_total{{host="{host}",kind="connect_attachment",'
            'outcome="success"}': 1,
            f'volmgr_operation_duration_seconds_count{{host="{host}",'
            'kind="create_volume"}': 5,
            f'volmgr_operation_bus_lag_seconds_count{{host="{host}",'
            'kind="create_volume"}': 5,
            # Nothing running now; one export (the attached volume).
            f'volmgr_operations_in_flight{{host="{host}"}}': 0,
            f'volmgr_operations_queued{{host="{host}"}}': 0,
            f'volmgr_exports{{host="{host}"}}': 1,
            # The API's view of the volume host.
            f'volmgr_service_up{{host="{host}",binary="volmgr-volume"}}': 1,
        }

        def all_seen() -> bool:
            return all(prom.value(query) == want for query, want in expectations.items())
        try:
            wait_for(all_seen, 30, "the expected series in Prometheus", interval=0.5)
        except AssertionError:
            seen = {query: prom.value(query) for query in expectations}
            raise AssertionError(f"Prometheus answered {seen}") from None
        age = prom.value(f'volmgr_service_heartbeat_age_seconds{{host="{host}",'
                         'binary="volmgr-volume"}')
        assert age is not None and 0 <= age < 10
        assert prom.value(f'volmgr_iscsi_sessions{{host="{host}"}}') is not None
        # The mean bus lag of the creates: positive, and well under a second here.
        lag = prom.value(f'volmgr_operation_bus_lag_seconds_sum{{host="{host}",'
                         f'kind="create_volume"}} / volmgr_operation_bus_lag_seconds_count'
                         f'{{host="{host}",kind="create_volume"}}')
        assert lag is not None and 0 < lag < 1, lag
        # No series names a volume or a project.
        for series in prom.query('{__name__=~"volmgr_.+"}'):
            text = json.dumps(series["metric"])
            assert walk.project not in text
            assert not any(volume in text for volume in [*volumes, source, clone.id])

        # The exposition texts pass Prometheus' own linter.
        for url in (f"{walk.base}/metrics", f"http://{volume_metrics}/metrics"):
            checked = subprocess.run([prom.promtool, "check", "metrics"], input=fetch(url),
                                     capture_output=True, text=True, timeout=30, check=False)
            assert checked.returncode == 0, f"{url}: {checked.stdout}{checked.stderr}"
    finally:
        prom.close()


def test_the_alerting_rules_in_the_operations_guide_are_valid_rules(tmp_path: Path) -> None:
    _, promtool = prometheus_binaries()
    guide = (Path(__file__).resolve().parents[2] / "docs/operations.md").read_text()
    section = guide[guide.index("### Example alerting rules"):]
    rules = section[section.index("```yaml\n") + 8:section.index("```\n", 8)]
    (tmp_path / "rules.yml").write_text(rules)
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                             capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
