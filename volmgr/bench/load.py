"""The benchmark's client: closed-loop phases over HTTP, and bare LVM commands.

Every phase keeps ``concurrency`` operations in flight: a client thread sends its
request, waits until the volume reached its end state, then sends the next. So "10 at
a time" means the same thing for volmgr end to end and for bare ``lvcreate``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import gc
import http.client
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from volmgr.bench.stack import LoopVG, run

LOG = logging.getLogger(__name__)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclasses.dataclass
class PhaseResult:
    """What one phase measured; latencies in seconds."""

    name: str
    count: int
    concurrency: int
    wall: float
    request: list[float] = dataclasses.field(default_factory=list)
    complete: list[float] = dataclasses.field(default_factory=list)
    failures: int = 0
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall else float("nan")

    def summary(self) -> dict[str, Any]:
        ms = 1000.0
        return {
            "count": self.count, "concurrency": self.concurrency,
            "seconds": round(self.wall, 3), "per_second": round(self.rate, 1),
            "request_p50_ms": round(ms * percentile(self.request, 0.5), 1),
            "request_p99_ms": round(ms * percentile(self.request, 0.99), 1),
            "complete_p50_ms": round(ms * percentile(self.complete, 0.5), 1),
            "complete_p99_ms": round(ms * percentile(self.complete, 0.99), 1),
            "failures": self.failures,
            "cpu_ms_per_op": {name: round(ms * spent / max(self.count, 1), 2)
                              for name, spent in self.cpu.items()},
        }


class Api:
    """A minimal HTTP client (one connection per request, as gunicorn's sync workers
    close them anyway); noauth token ``bench:<project>``."""

    def __init__(self, endpoint: str, project: str) -> None:
        parts = urlsplit(endpoint)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.project = project
        self.headers = {"X-Auth-Token": f"bench:{project}", "Content-Type": "application/json",
                        "Accept": "application/json"}

    def call(self, method: str, path: str, body: Any = None, *,
             parse: bool = True) -> tuple[int, Any]:
        """Status and decoded body; ``parse=False`` reads the body but does not decode
        it (a listing's megabyte of JSON would cost this process, on the same cores as
        the API, about as much CPU as the API spent encoding it)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload, headers=self.headers)
            answer = connection.getresponse()
            data = answer.read()
            return answer.status, json.loads(data) if data and parse else None
        finally:
            connection.close()

    def v3(self, suffix: str) -> str:
        return f"/v3/{self.project}{suffix}"


class Watcher:
    """Tells a waiting client when its volume reached a state, and when it got there.

    With the database (a stack the benchmark started) the time is the row's own
    ``updated_at``/``deleted_at``, so the poll interval adds nothing to a latency;
    against ``--endpoint`` it is when a poll of the API first saw the state.
    """

    def __init__(self, api: Api, db_url: str | None, interval: float) -> None:
        self.api = api
        self.interval = interval
        # One connection, kept by the watcher's thread; autocommit, so each poll sees
        # the latest rows and no transaction stays open between polls.
        self.engine = (sa.create_engine(db_url, pool_size=1, isolation_level="AUTOCOMMIT")
                       if db_url else None)
        self._connection: sa.Connection | None = None
        self._waiting: dict[str, tuple[str, threading.Event, list[Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-watch")
        self._thread.start()

    def wait(self, volume_id: str, goal: str, timeout: float = 600) -> tuple[str, float]:
        """Block until ``volume_id`` is ``goal`` ("gone" for deleted) or an error
        status; return (status, epoch seconds it got there)."""
        event = threading.Event()
        box: list[Any] = []
        with self._lock:
            self._waiting[volume_id] = (goal, event, box)
        if not event.wait(timeout):
            with self._lock:
                self._waiting.pop(volume_id, None)
            return "timeout", time.time()
        return box[0], box[1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._connection is not None:
            self._connection.close()
        if self.engine is not None:
            self.engine.dispose()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                waiting = dict(self._waiting)
            if not waiting:
                continue
            try:
                seen = self._poll_db(list(waiting)) if self.engine else self._poll_api()
            except Exception as error:  # a failed poll is retried next interval
                LOG.debug("poll failed: %s", error)
                continue
            now = time.time()
            with self._lock:
                for volume_id, (goal, event, box) in list(self._waiting.items()):
                    status, when = seen.get(volume_id, ("gone", None))
                    if status == goal or status.startswith("error"):
                        box.extend([status, when or now])
                        del self._waiting[volume_id]
                        event.set()

    #: One statement text whatever the number of ids, so the server prepares it once:
    #: the watcher polls every few milliseconds on the cores it measures.
    _POLL = sa.text("SELECT id, status, deleted, updated_at, deleted_at FROM volumes "
                    "WHERE id = ANY(:ids)")

    def _poll_db(self, ids: list[str]) -> dict[str, tuple[str, float | None]]:
        assert self.engine is not None
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        seen: dict[str, tuple[str, float | None]] = {}
        try:
            rows = self._connection.execute(self._POLL, {"ids": ids}).all()
        except sa.exc.DBAPIError:
            self._connection.close()  # reconnect at the next poll
            raise
        for row in rows:
            if row.deleted:
                seen[row.id] = ("gone", _epoch(row.deleted_at))
            else:
                seen[row.id] = (row.status, _epoch(row.updated_at))
        return seen

    def _poll_api(self) -> dict[str, tuple[str, float | None]]:
        status, body = self.api.call("GET", self.api.v3("/volumes/detail?limit=1000"))
        if status != 200:
            raise RuntimeError(f"listing answered {status}")
        return {v["id"]: (v["status"], None) for v in body["volumes"]}


def _epoch(value: datetime.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


def closed_loop(name: str, count: int, concurrency: int,
                one: Callable[[int], tuple[float, float | None, bool]]) -> PhaseResult:
    """Run ``one(i)`` for i < count, ``concurrency`` at a time. ``one`` returns (request
    latency, completion latency or None, ok)."""
    result = PhaseResult(name, count, concurrency, 0.0)
    lock = threading.Lock()

    def task(index: int) -> None:
        try:
            request, complete, ok = one(index)
        except Exception:  # counted as a failure; the phase goes on
            request, complete, ok = float("nan"), None, False
        with lock:
            result.request.append(request)
            if complete is not None:
                result.complete.append(complete)
            if not ok:
                result.failures += 1

    # The client is the measuring instrument: a pause of its own would show up as the
    # service's latency. Its cycle collector, which would walk the whole process every
    # few hundred requests, waits until the phase is over.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(task, range(count)))
        result.wall = time.perf_counter() - started
    finally:
        gc.enable()
    return result


class VolumeLoad:
    """Create, delete, attach and detach through the API, each waited for."""

    def __init__(self, api: Api, watcher: Watcher, size: int) -> None:
        self.api = api
        self.watcher = watcher
        self.size = size
        self.created: list[str] = []
        self._lock = threading.Lock()

    def create(self, index: int) -> tuple[float, float | None, bool]:
        sent = time.time()
        started = time.perf_counter()
        status, body = self.api.call("POST", self.api.v3("/volumes"),
                                     {"volume": {"size": self.size}})
        request = time.perf_counter() - started
        if status not in (200, 202):
            return request, None, False
        volume_id = body["volume"]["id"]
        state, when = self.watcher.wait(volume_id, "available")
        with self._lock:
            self.created.append(volume_id)
        return request, when - sent, state == "available"

    def delete(self, index: int) -> tuple[float, float | None, bool]:
        volume_id = self.created[index]
        sent = time.time()
        started = time.perf_counter()
        status, _ = self.api.call("DELETE", self.api.v3(f"/volumes/{volume_id}"))
        request = time.perf_counter() - started
        if status != 202:
            return request, None, False
        state, when = self.watcher.wait(volume_id, "gone")
        return request, when - sent, state == "gone"

    def attach(self, index: int) -> tuple[float, float | None, bool]:
        volume_id = self.created[index]
        sent = time.time()
        started = time.perf_counter()
        status, _ = self.api.call(
            "POST", f"/v1.1/{self.api.project}/servers/{_server(volume_id)}"
            "/os-volume_attachments",
            {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb",
                                  "connector": {"host": "bench-compute"}}})
        request = time.perf_counter() - started
        if status not in (200, 202):
            return request, None, False
        state, when = self.watcher.wait(volume_id, "in-use")
        return request, when - sent, state == "in-use"

    def detach(self, index: int) -> tuple[float, float | None, bool]:
        volume_id = self.created[index]
        sent = time.time()
        started = time.perf_counter()
        status, _ = self.api.call(
            "DELETE", f"/v1.1/{self.api.project}/servers/{_server(volume_id)}"
            f"/os-volume_attachments/{volume_id}")
        request = time.perf_counter() - started
        if status not in (200, 202):
            return request, None, False
        state, when = self.watcher.wait(volume_id, "available")
        return request, when - sent, state == "available"

    def listing(self, index: int) -> tuple[float, float | None, bool]:
        started = time.perf_counter()
        status, _ = self.api.call("GET", self.api.v3("/volumes/detail?limit=1000"),
                                  parse=False)
        return time.perf_counter() - started, None, status == 200


def _server(volume_id: str) -> str:
    """A stable fake server id per volume."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, volume_id))


class RawLVM:
    """Bare ``lvcreate``/``lvremove`` on the benchmark's VG, as the driver runs them."""

    def __init__(self, vg: LoopVG, size: int) -> None:
        self.vg = vg
        self.size = size
        self.names: list[str] = []
        self._lock = threading.Lock()

    def create(self, index: int) -> tuple[float, float | None, bool]:
        name = f"bench-raw-{uuid.uuid4()}"
        started = time.perf_counter()
        result = run(["lvcreate", "-n", name, "-L", f"{self.size}g", self.vg.name],
                     env=self.vg.env, check=False)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.names.append(name)
        return elapsed, elapsed, result.returncode == 0

    def delete(self, index: int) -> tuple[float, float | None, bool]:
        name = self.names[index]
        started = time.perf_counter()
        result = run(["lvremove", "-f", f"{self.vg.name}/{name}"], env=self.vg.env,
                     check=False)
        elapsed = time.perf_counter() - started
        return elapsed, elapsed, result.returncode == 0
