"""The volume daemon's side of the metrics (series defined in ``volmgr.metrics``).

* ``submit`` queues a manager job on the keyed thread pool, counted as queued until it
  starts and then timed by kind and outcome, with its bus lag;
* ``update_backend`` sets the VG, thin-pool, export and iSCSI-session gauges (called
  with every heartbeat, so the figures are at most ``report_interval`` old);
* ``serve`` starts the HTTP endpoint on ``[volume] metrics_host``:``metrics_port``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import prometheus_client

from volmgr import metrics
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.thread_pool import KeyedThreadPool

LOG = logging.getLogger(__name__)

_NEXUS_LINE = re.compile(r"^\s+I_T nexus: \d+\s*$", re.MULTILINE)
_TARGET_LINE = re.compile(r"^Target \d+: (\S+)\s*$", re.MULTILINE)


def submit(pool: KeyedThreadPool, key: str, host: str, kind: str,
           sent_at: float | None, job: Callable[[], None]) -> None:
    """``pool.submit(key, job)``, with ``job`` counted and timed."""
    def run() -> None:
        metrics.QUEUED.labels(host).dec()
        with metrics.operation(host, kind, sent_at):
            job()

    metrics.QUEUED.labels(host).inc()
    try:
        pool.submit(key, run)
    except BaseException:
        metrics.QUEUED.labels(host).dec()
        raise


def update_capacity(host: str, capabilities: dict[str, Any] | None) -> None:
    """VG gauges from the heartbeat's capabilities (no extra command)."""
    if not capabilities or "volume_group" not in capabilities:
        return
    vg = str(capabilities["volume_group"])
    gib = 1024 ** 3
    total = float(capabilities.get("total_capacity_bytes")
                  or capabilities.get("total_capacity_gb", 0) * gib)
    free = float(capabilities.get("free_capacity_bytes")
                 or capabilities.get("free_capacity_gb", 0) * gib)
    metrics.VG_SIZE.labels(host, vg).set(total)
    metrics.VG_FREE.labels(host, vg).set(free)
    metrics.VG_ALLOCATED.labels(host, vg).set(
        float(capabilities.get("provisioned_capacity_gb", 0)) * gib)


def update_backend(host: str, driver: VolumeDriver) -> None:
    """Thin-pool use, exports and iSCSI sessions: a command or two each heartbeat."""
    _update_thin_pool(host, driver)
    exports, sessions = _targets(driver)
    if exports is not None:
        metrics.EXPORTS.labels(host).set(exports)
    if sessions is not None:
        metrics.ISCSI_SESSIONS.labels(host).set(sessions)


def _update_thin_pool(host: str, driver: VolumeDriver) -> None:
    if not getattr(driver, "thin", False):
        return
    vg, pool = driver.vg, driver.pool  # type: ignore[attr-defined]
    output = driver._lvm(  # type: ignore[attr-defined]
        "lvs", "--noheadings", "--separator", "|", "-o", "data_percent,metadata_percent",
        f"{vg}/{pool}").stdout
    fields = [field.strip() for field in output.strip().split("|")]
    if len(fields) == 2 and all(fields):
        metrics.THIN_DATA.labels(host, vg, pool).set(float(fields[0]) / 100.0)
        metrics.THIN_METADATA.labels(host, vg, pool).set(float(fields[1]) / 100.0)


def _targets(driver: VolumeDriver) -> tuple[int | None, int | None]:
    """(exports, sessions) as the target service shows them; tgtd answers both in one
    listing; other helpers give the export count only."""
    target = getattr(driver, "target", None)
    if target is None:
        return None, None
    tgtadm = getattr(target, "_tgtadm", None)
    if tgtadm is None:
        return len(driver.list_exported_volume_ids()), None
    listing = tgtadm("--op", "show", "--mode", "target").stdout
    prefix = getattr(target, "target_prefix", "")
    exports = sum(1 for iqn in _TARGET_LINE.findall(listing) if iqn.startswith(prefix))
    return exports, len(_NEXUS_LINE.findall(listing))


class Endpoint:
    """The daemon's ``/metrics`` HTTP server (prometheus_client's, on its own thread)."""

    def __init__(self, host: str, port: int) -> None:
        self.server, self.thread = prometheus_client.start_http_server(port, addr=host)
        LOG.info("Serving metrics on http://%s:%d/metrics", host,
                 self.server.server_address[1])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
