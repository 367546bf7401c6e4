"""What one API request costs the API process itself, measured in-process: SQL statements,
transactions and CPU per volume create, CPU per delete, and CPU per detail listing of
1,000 volumes.

    python -m tools.api_cost [--server postgresql+psycopg://postgres@127.0.0.1] [-n 400]
                             [--profile 25]

It builds the real WSGI app over a scratch database on the server (created and dropped
here), with the RPC client replaced by a recorder, so only the API's own work is counted
(no bus, no manager, no HTTP server). CPU is this process's user+system time
(``getrusage``), so other load on the machine disturbs it less than wall time, but not
entirely: compare two trees by alternating runs in one sitting
(docs/performance.md, change 8). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import uuid
from typing import Any

import sqlalchemy as sa

from tests.unit import api_helpers as h
from volmgr import config, heap
from volmgr.db import Database, migration

DETAIL = "/v3/p1/volumes/detail?limit=1000"
LISTINGS = 30


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(server: str, n: int, profile: int = 0,
            freeze: bool = True) -> dict[str, float]:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    name = "api_cost_" + uuid.uuid4().hex[:8]
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    db: Database | None = None
    try:
        url = f"{server}/{name}"
        migration.upgrade(sa.create_engine(url))
        conf = config.new_conf()
        config.parse_args([], conf)
        db = Database.from_url(url)
        h.register_host(db, "node1", free=1_000_000)
        rpc = h.RecordingRPC()
        app = h.make_app(conf, db, rpc)
        if freeze:  # as a volmgr-api worker does once it is built (volmgr.heap)
            heap.freeze_startup_objects("api_cost")
        counts = {"statements": 0, "transactions": 0}

        def count(key: str) -> Any:
            return lambda *args: counts.__setitem__(key, counts[key] + 1)
        sa.event.listen(db.engine, "before_cursor_execute", count("statements"))
        sa.event.listen(db.engine, "begin", count("transactions"))

        def create() -> None:
            response = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
            assert response.status_int == 202, response.text

        for _ in range(50):  # warm-up: pools, caches, first compiles
            create()
        counts.update(statements=0, transactions=0)
        profiler = cProfile.Profile() if profile else None
        started = _cpu()
        if profiler:
            profiler.enable()
        for _ in range(n):
            create()
        create_cpu = (_cpu() - started) / n
        if profiler:
            profiler.disable()
            _print_profile(profiler, f"{n} creates", profile)
        result = {"statements_per_create": counts["statements"] / n,
                  "transactions_per_create": counts["transactions"] / n,
                  "cpu_ms_per_create": 1000 * create_cpu}
        # Deletes of available volumes (the manager's step marked by hand).
        doomed = []
        for _ in range(n):
            answer = h.call(app, "POST", "/v3/p1/volumes", {"volume": {"size": 1}})
            doomed.append(answer.json["volume"]["id"])
            h.finish(db, doomed[-1])
        profiler = cProfile.Profile() if profile else None
        started = _cpu()
        if profiler:
            profiler.enable()
        for volume_id in doomed:
            answer = h.call(app, "DELETE", f"/v3/p1/volumes/{volume_id}")
            assert answer.status_int == 202, answer.text
        result["cpu_ms_per_delete"] = 1000 * (_cpu() - started) / n
        if profiler:
            profiler.disable()
            _print_profile(profiler, f"{n} deletes", profile)
        while len(rpc.casts) < 1000 + n:
            create()
        headers = {"OpenStack-API-Version": "volume 3.60"}
        profiler = cProfile.Profile() if profile else None
        started = _cpu()
        if profiler:
            profiler.enable()
        for _ in range(LISTINGS):
            assert h.call(app, "GET", DETAIL, headers=headers).status_int == 200
        result["cpu_ms_per_detail_1000"] = 1000 * (_cpu() - started) / LISTINGS
        if profiler:
            profiler.disable()
            _print_profile(profiler, f"{LISTINGS} detail listings of 1,000", profile)
        return result
    finally:
        if db is not None:
            db.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _print_profile(profiler: cProfile.Profile, what: str, lines: int) -> None:
    """The functions with the most cumulative time (the profiler's own overhead
    inflates the CPU figures of a profiled run, so they are measured without it)."""
    print(f"--- profile of {what}, by cumulative time ---")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("-n", type=int, default=400, help="creates measured")
    parser.add_argument("--profile", type=int, default=0, metavar="LINES",
                        help="profile the creates and the listings with cProfile and "
                             "print this many of the costliest functions of each "
                             "(the CPU figures of such a run include the profiler)")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the start-up objects to the garbage collector (as "
                             "before docs/performance.md, change 18)")
    args = parser.parse_args(argv)
    for key, value in measure(args.server, args.n, args.profile,
                              freeze=not args.no_freeze).items():
        print(f"{key:26s} {value:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
