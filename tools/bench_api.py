"""volmgr-api benchmark: request latency and throughput of a real ``volmgr-api``
(gunicorn) over a scratch PostgreSQL database and RabbitMQ (``fake://`` when no broker).

    python -m tools.bench_api [--requests 400] [--workers 1 2] [--concurrency 1 8]

No manager consumes the casts: this measures the API's own work (validate, guarded
write, schedule, cast, answer). It prints figures and never passes or fails on time;
the machine is shared and noisy, so compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
import sqlalchemy as sa

from volmgr import rpc
from volmgr.db import Database, migration

ADMIN_PG = os.environ.get("VOLMGR_TEST_POSTGRES",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RABBIT = os.environ.get("VOLMGR_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")
BIN = Path(sys.executable).parent


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    name = f"volmgr_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield ADMIN_PG.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextlib.contextmanager
def _api(db_url: str, workers: int, workdir: Path) -> Iterator[str]:
    port = _free_port()
    transport = RABBIT if _port_open(5672) else "fake://"
    config = workdir / f"api-{workers}.conf"
    config.write_text(
        f"[DEFAULT]\nhost = bench-api-{port}\ntransport_url = {transport}\n"
        f"state_path = {workdir}\n[database]\nconnection = {db_url}\n"
        f"[quota]\nvolumes = -1\ngigabytes = -1\nsnapshots = -1\n"
        f"[api]\nbind_host = 127.0.0.1\nbind_port = {port}\nworkers = {workers}\n")
    log = open(workdir / f"api-{workers}.log", "ab")
    process = subprocess.Popen([str(BIN / "volmgr-api"), "--config-file", str(config)],
                               stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{base}/healthcheck", timeout=2).ok:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"volmgr-api did not start; see {log.name}")
            time.sleep(0.2)
        print(f"  volmgr-api workers={workers} transport={transport.split(':')[0]}")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def _run(label: str, count: int, concurrency: int,
         request: Callable[[requests.Session, int], requests.Response]) -> None:
    sessions = [requests.Session() for _ in range(concurrency)]
    latencies: list[float] = []
    failures = 0

    def one(index: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        answer = request(sessions[index % concurrency], index)
        latencies.append(time.perf_counter() - started)
        if answer.status_code >= 300:
            failures += 1

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    ms = [1000 * latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.95, 0.99)]
    print(f"  {label:<28} c={concurrency:<3} {count / elapsed:8.1f} req/s   "
          f"p50 {ms[0]:6.1f} ms  p95 {ms[1]:6.1f} ms  p99 {ms[2]:6.1f} ms  "
          f"mean {1000 * statistics.fmean(latencies):6.1f} ms  non-2xx {failures}")


def _round(base: str, count: int, concurrency: int) -> None:
    token = {"X-Auth-Token": "bench:bench"}
    created: list[str] = []

    def create(session: requests.Session, index: int) -> requests.Response:
        answer = session.post(f"{base}/v3/bench/volumes", headers=token,
                              json={"volume": {"size": 1}})
        created.append(answer.json()["volume"]["id"])
        return answer

    def show(session: requests.Session, index: int) -> requests.Response:
        return session.get(f"{base}/v3/bench/volumes/{created[index % len(created)]}",
                           headers=token)

    def listing(session: requests.Session, index: int) -> requests.Response:
        return session.get(f"{base}/v3/bench/volumes/detail?limit=50", headers=token)

    _run("POST /v3/volumes (create)", count, concurrency, create)
    _run("GET /v3/volumes/{id}", count, concurrency, show)
    _run("GET /v3/volumes/detail?50", count // 2, concurrency, listing)
    _run("GET /healthcheck", count, concurrency, lambda s, i: s.get(f"{base}/healthcheck"))


def bench(count: int, workers_list: list[int], concurrency_list: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="volmgr-bench-api-") as tmp, \
            scratch_postgres() as db_url:
        db = Database.from_url(db_url)
        migration.upgrade(db.engine)
        db.service_heartbeat("bench-host", rpc.TOPIC, rpc.TOPIC,
                             {"free_capacity_gb": 10 ** 9, "total_capacity_gb": 10 ** 9})
        for workers in workers_list:
            with _api(db_url, workers, Path(tmp)) as base:
                for concurrency in concurrency_list:
                    _round(base, count, concurrency)
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="volmgr-api latency and throughput")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    print(f"volmgr-api benchmark: {args.requests} requests per row, {os.cpu_count()} CPUs")
    bench(args.requests, args.workers, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
