"""Prometheus metrics of volmgr (``prometheus_client``; see docs/operations.md, "Metrics").

Every series is defined here, in one place, so names and labels stay consistent. Labels
name hosts, services, routes, operation kinds and outcomes only: never a volume id or a
project id (each would make a new series per volume or tenant).

``volmgr-api`` runs several worker processes: ``enable_multiprocess`` (called by the
master before it forks) switches the library to its multiprocess mode, in which every
worker writes its samples to files in one directory and ``/metrics`` sums them
(``registry_for_scrape``). ``volmgr-volume`` is one process and serves the default
registry on ``[volume] metrics_port``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

#: Environment variable naming the multiprocess directory (the library's own name).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OPERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                      600.0)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0)

# -- volmgr-api ---------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "volmgr_api_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "volmgr_api_request_duration_seconds",
    "Time from a request reaching the application to its answer being ready.",
    ["route", "method"], buckets=_LATENCY_BUCKETS)

# -- volmgr-volume ------------------------------------------------------------------------

OPERATIONS = Counter(
    "volmgr_operations", "Operations the volume manager finished, by kind and outcome "
    "(success, error: the row was set to an error state, exception: the job raised).",
    ["host", "kind", "outcome"])
OPERATION_DURATION = Histogram(
    "volmgr_operation_duration_seconds", "Run time of one manager operation.",
    ["host", "kind"], buckets=_OPERATION_BUCKETS)
BUS_LAG = Histogram(
    "volmgr_operation_bus_lag_seconds", "Time from the API casting a request (right after "
    "its database write) to the manager starting the work: bus plus manager queue.",
    ["host", "kind"], buckets=_LAG_BUCKETS)
IN_FLIGHT = Gauge("volmgr_operations_in_flight", "Operations running now.", ["host"])
QUEUED = Gauge("volmgr_operations_queued",
               "Operations received and waiting for their volume's turn or a worker.",
               ["host"])
RECOVERY_REDRIVES = Counter(
    "volmgr_recovery_redrives", "Stuck requests recovery queued again, by the status the "
    "row was stuck in.", ["host", "status"])
RECOVERY_GIVE_UPS = Counter(
    "volmgr_recovery_give_ups", "Stuck requests recovery gave up on (row set to error_*), "
    "by the status the row was stuck in.", ["host", "status"])
VG_SIZE = Gauge("volmgr_vg_size_bytes", "Size of the volume group (thin: of the pool).",
                ["host", "vg"])
VG_FREE = Gauge("volmgr_vg_free_bytes", "Free space in the volume group (thin: in the "
                "pool).", ["host", "vg"])
VG_ALLOCATED = Gauge("volmgr_vg_allocated_bytes",
                     "Bytes promised to volmgr's volumes and snapshots.", ["host", "vg"])
THIN_DATA = Gauge("volmgr_thin_pool_data_ratio", "Used fraction (0-1) of the thin pool's "
                  "data space.", ["host", "vg", "pool"])
THIN_METADATA = Gauge("volmgr_thin_pool_metadata_ratio", "Used fraction (0-1) of the thin "
                      "pool's metadata space.", ["host", "vg", "pool"])
EXPORTS = Gauge("volmgr_exports", "iSCSI targets this host exports.", ["host"])
UNEXPLAINED_LVS = Gauge("volmgr_unexplained_lvs", "Volumes on the backend that no database row "
                        "of this host explains, as the last reconcile pass found them "
                        "(reported, never deleted without volmgr-manage reconcile --fix).",
                        ["host"])
RECONCILE_REPAIRS = Counter("volmgr_reconcile_repairs", "Drift the continuous reconcile "
                            "repaired, by kind (export_rebuilt, lun_restored, chap_restored, "
                            "acl_restored, stale_export_removed).",
                            ["host", "kind"])
ISCSI_SESSIONS = Gauge("volmgr_iscsi_sessions", "iSCSI sessions (I_T nexuses) logged in to "
                       "this host's targets.", ["host"])

# -- helpers ------------------------------------------------------------------------------

_local = threading.local()


def note_failure() -> None:
    """Called where an operation records its failure: the running job's outcome becomes
    ``error`` (the job itself catches the error and writes the row)."""
    _local.failed = True


@contextlib.contextmanager
def operation(host: str, kind: str, sent_at: float | None = None) -> Iterator[None]:
    """Time one manager job and count it by outcome; ``sent_at`` (the API's cast time,
    epoch seconds) gives the bus lag."""
    started = time.time()
    if sent_at is not None:
        BUS_LAG.labels(host, kind).observe(max(started - sent_at, 0.0))
    IN_FLIGHT.labels(host).inc()
    _local.failed = False
    outcome = "exception"
    try:
        yield
        outcome = "error" if _local.failed else "success"
    finally:
        IN_FLIGHT.labels(host).dec()
        OPERATIONS.labels(host, kind, outcome).inc()
        OPERATION_DURATION.labels(host, kind).observe(time.time() - started)
        _local.failed = False


def enable_multiprocess(directory: str | None = None) -> str:
    """Put this process (and the workers it forks) in the library's multiprocess mode,
    with a fresh sample directory; returns it. The caller removes it at exit
    (``cleanup_multiprocess``)."""
    path = directory or os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(
        prefix="volmgr-api-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # samples of an earlier run are not this run's
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path
    # The value class is chosen when the library is imported: choose again, so every
    # sample made from now on (labelled children are made lazily) goes to the files.
    values.ValueClass = values.get_value_class()
    return path


def cleanup_multiprocess(path: str, created: bool) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: forget a dead worker's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


def registry_for_scrape() -> prometheus_client.CollectorRegistry:
    """What ``/metrics`` renders: every worker's samples summed in multiprocess mode,
    else this process's registry."""
    if os.environ.get(MULTIPROC_ENV):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def render(registry: prometheus_client.CollectorRegistry,
           *extra: prometheus_client.registry.Collector) -> tuple[bytes, str]:
    """The exposition text of ``registry`` plus ``extra`` collectors (collected at scrape
    time, in this process only), and its content type."""
    if extra:
        combined = prometheus_client.CollectorRegistry()
        combined.register(_Union(registry))
        for collector in extra:
            combined.register(collector)
        registry = combined
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


class _Union(prometheus_client.registry.Collector):
    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[prometheus_client.Metric]:
        yield from self.registry.collect()

    def describe(self) -> list[prometheus_client.Metric]:
        return []  # checked for duplicates by the source registry already
