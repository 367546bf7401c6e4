"""``volmgr-bench`` command line: set up, run the phases, print the table and JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from volmgr.bench import load, procs, profile
from volmgr.bench.stack import LoopVG, Stack, loop_vg, port_open, scratch_postgres

ADMIN_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
APP_NAME = "volmgr-bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="volmgr-bench", description="volmgr end to end, side by side with bare LVM")
    parser.add_argument("-n", "--count", type=int, default=100,
                        help="volumes created and deleted per concurrency (default 100)")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[10],
                        help="operations in flight; several values run one after another")
    parser.add_argument("--size", type=int, default=1, help="GiB per volume")
    parser.add_argument("--driver", choices=["lvm", "file"], default="lvm")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--managers", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, metavar="W",
                        help="create and delete W volumes before measuring, not counted "
                        "(0: measure from a cold start)")
    parser.add_argument("--preload", type=int, default=0, metavar="K",
                        help="fill the VG and the database with K volumes first")
    parser.add_argument("--attach", type=int, default=None, metavar="A",
                        help="attach and detach A of the created volumes (default "
                        "min(N, 30); 0 skips)")
    parser.add_argument("--list-requests", type=int, default=50,
                        help="GET /volumes/detail of the preloaded project, when K > 0")
    parser.add_argument("--recovery-rows", type=int, default=0, metavar="R",
                        help="time recovery's scan of one host over R more rows (R/2 stuck "
                        "in 'creating', R/2 'available'); needs the stack's database")
    parser.add_argument("--set", action="append", default=[], metavar="GROUP.OPTION=VALUE",
                        help="extra volmgr option for every process, e.g. "
                        "volume.executor_thread_pool_size=16")
    parser.add_argument("--endpoint", help="drive a running API instead of starting a stack "
                        "(no raw LVM side, no per-process CPU)")
    parser.add_argument("--project", default="bench")
    parser.add_argument("--postgres", default=os.environ.get("VOLMGR_TEST_POSTGRES", ADMIN_PG),
                        help="admin URL of the PostgreSQL server for the scratch database")
    parser.add_argument("--transport-url",
                        default=os.environ.get("VOLMGR_TEST_RABBIT", RABBIT))
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--poll-interval", type=float, default=0.005)
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="profile the API workers and managers with this py-spy during "
                        "each create phase and print where their CPU went")
    parser.add_argument("--keep", action="store_true",
                        help="leave the work directory (logs, configs) behind")
    return parser.parse_args(argv)


def extra_conf(settings: list[str]) -> str:
    by_group: dict[str, list[str]] = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        group, _, option = key.rpartition(".")
        by_group.setdefault(group or "DEFAULT", []).append(f"{option} = {value}")
    return "".join(f"[{group}]\n" + "\n".join(lines) + "\n"
                   for group, lines in by_group.items())


#: The benchmark's own process (its load threads and its watcher): shown, so its share
#: of the cores is known, but not part of a phase's total.
CLIENT = "bench client"


class Meter:
    """CPU of every process of the stack between two points."""

    def __init__(self, stack: Stack | None, db_url: str | None, admin_url: str) -> None:
        self.stack = stack
        self.db_name = db_url.rsplit("/", 1)[1] if db_url else None
        self.admin = sa.create_engine(admin_url, pool_size=1,
                                      connect_args={"application_name": APP_NAME})
        self.rabbit = procs.pids_named("beam.smp")

    def groups(self) -> list[procs.Group]:
        if self.stack is None:
            return []
        groups = self.stack.groups()
        with self.admin.connect() as connection:
            pids = [row[0] for row in connection.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :name "
                "AND application_name <> :me"), {"name": self.db_name, "me": APP_NAME})]
        groups.append(procs.Group("postgresql (this database)", pids))
        groups.append(procs.Group("rabbitmq (whole broker)", self.rabbit))
        return groups

    @contextlib.contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        groups = self.groups()
        before = procs.sample(groups)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = resource.getrusage(resource.RUSAGE_SELF)
        yield
        mine = resource.getrusage(resource.RUSAGE_SELF)
        into[CLIENT] = (
            (mine.ru_utime + mine.ru_stime) - (client.ru_utime + client.ru_stime))
        groups = self.groups()
        after = procs.sample(groups)
        into.update(procs.cpu_delta(groups, before, after))
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw = (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
        if raw > 0:
            into["bench's own LVM commands"] = raw

    def memory(self) -> dict[str, list[tuple[float, float]]]:
        return {group.name: [procs.memory_mib(pid) for pid in group.pids]
                for group in self.groups()}

    def close(self) -> None:
        self.admin.dispose()


def run_phase(meter: Meter, name: str, count: int, concurrency: int,
              one: Callable[[int], tuple[float, float | None, bool]]) -> load.PhaseResult:
    cpu: dict[str, float] = {}
    with meter.measure(cpu):
        result = load.closed_loop(name, count, concurrency, one)
    result.cpu = cpu
    print(f"  {name:<34} {result.rate:8.1f}/s  failures {result.failures}", flush=True)
    return result


def benchmark(args: argparse.Namespace, endpoint: str, db_url: str | None,
              stack: Stack | None, vg: LoopVG | None) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(),
                                          "loadavg_at_start": os.getloadavg()},
                              "args": {k: (str(v) if isinstance(v, Path) else v)
                                       for k, v in vars(args).items()},
                              "phases": {}, "ratios": {}}
    meter = Meter(stack, db_url, args.postgres)
    api = load.Api(endpoint, args.project)
    watcher = load.Watcher(api, db_url, args.poll_interval)
    try:
        if stack is not None:
            time.sleep(1.0)  # let start-up settle (heartbeat, first recovery pass)
            idle: dict[str, float] = {}
            with meter.measure(idle):
                time.sleep(args.idle_seconds)
            report["idle"] = {
                "cpu_percent_of_a_core": {k: round(100 * v / args.idle_seconds, 2)
                                          for k, v in idle.items()},
                "rss_mib": {k: [round(rss, 1) for rss, _ in v]
                            for k, v in meter.memory().items()}}
        if args.warmup:
            warm_up(args, endpoint, watcher)
        if args.preload:
            preload = load.VolumeLoad(load.Api(endpoint, args.project + "-preload"),
                                      watcher, args.size)
            result = run_phase(meter, f"preload {args.preload}", args.preload, 20,
                               preload.create)
            report["phases"]["preload"] = result.summary()
        for concurrency in args.concurrency:
            report["phases"].update(
                one_concurrency(args, meter, api, watcher, vg, concurrency))
        if args.preload and args.list_requests:
            lister = load.VolumeLoad(load.Api(endpoint, args.project + "-preload"),
                                     watcher, args.size)
            result = run_phase(meter, f"GET detail of {min(args.preload, 1000)}",
                               args.list_requests, 10, lister.listing)
            report["phases"]["list_detail"] = result.summary()
        if args.recovery_rows and db_url:
            report["phases"]["recovery_scan"] = recovery_scan(db_url, args.recovery_rows)
        if stack is not None:
            report["peak_rss_mib"] = {k: [round(peak, 1) for _, peak in v]
                                      for k, v in meter.memory().items()}
    finally:
        watcher.close()
        meter.close()
    for key, phase in report["phases"].items():
        if key.startswith("create") or key.startswith("delete"):
            kind, _, concurrency = key.partition("@")
            raw = [report["phases"].get(f"raw {kind} {when}@{concurrency}")
                   for when in ("before", "after")]
            rates = [r["per_second"] for r in raw if r]
            if rates:
                mean = sum(rates) / len(rates)
                report["ratios"][key] = {"end_to_end_per_s": phase["per_second"],
                                         "raw_per_s": round(mean, 1),
                                         "ratio": round(phase["per_second"] / mean, 2)}
    return report


def warm_up(args: argparse.Namespace, endpoint: str, watcher: load.Watcher) -> None:
    """Create and delete ``args.warmup`` volumes, not counted: a process's first
    requests open its database and broker connections and compile its statements, and
    a phase should measure the service running, not starting."""
    volumes = load.VolumeLoad(load.Api(endpoint, args.project + "-warmup"), watcher,
                              args.size)
    concurrency = min(args.warmup, max(args.concurrency))
    load.closed_loop("warm-up create", args.warmup, concurrency, volumes.create)
    load.closed_loop("warm-up delete", len(volumes.created), concurrency, volumes.delete)
    print(f"  warm-up: {args.warmup} creates and deletes, not counted", flush=True)


def one_concurrency(args: argparse.Namespace, meter: Meter, api: load.Api,
                    watcher: load.Watcher, vg: LoopVG | None,
                    concurrency: int) -> dict[str, Any]:
    print(f"== concurrency {concurrency}, N = {args.count}", flush=True)
    phases: dict[str, Any] = {}
    at = f"@{concurrency}"

    def raw(when: str) -> None:
        if vg is None:
            return
        lvm = load.RawLVM(vg, args.size)
        phases[f"raw create {when}{at}"] = run_phase(
            meter, f"raw lvcreate ({when})", args.count, concurrency, lvm.create).summary()
        phases[f"raw delete {when}{at}"] = run_phase(
            meter, f"raw lvremove ({when})", args.count, concurrency, lvm.delete).summary()

    raw("before")
    volumes = load.VolumeLoad(api, watcher, args.size)
    with profiled(args, meter, f"create{at}", phases):
        phases["create" + at] = run_phase(meter, "create (POST -> available)", args.count,
                                          concurrency, volumes.create).summary()
    attach = min(args.count, 30) if args.attach is None else min(args.attach, args.count)
    if attach:
        phases["attach" + at] = run_phase(meter, "attach (-> in-use)", attach,
                                          min(concurrency, attach), volumes.attach).summary()
        phases["detach" + at] = run_phase(meter, "detach (-> available)", attach,
                                          min(concurrency, attach), volumes.detach).summary()
    phases["delete" + at] = run_phase(meter, "delete (DELETE -> gone)",
                                      len(volumes.created), concurrency,
                                      volumes.delete).summary()
    raw("after")
    return phases


def recovery_scan(db_url: str, rows: int) -> dict[str, Any]:
    """Seconds for ``volumes_stuck`` of one host among ``rows`` extra rows of it."""
    import concurrent.futures
    import datetime

    from volmgr import states
    from volmgr.db import Database

    db = Database.from_url(db_url, quota_limits={"volumes": -1, "gigabytes": -1})
    host = "bench-recovery-host"
    try:
        def insert(index: int) -> None:
            db.volume_create(project_id="bench-recovery", user_id="bench", size=1,
                             host=host, hold_quota=False,
                             status=states.CREATING if index % 2 else states.AVAILABLE)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(insert, range(rows)))
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            found = db.volumes_stuck(host, datetime.datetime.now(datetime.UTC).replace(
                tzinfo=None))
            timings.append(time.perf_counter() - started)
        print(f"  recovery scan: {len(found)} stuck rows of {rows} found in "
              f"{1000 * min(timings):.0f}-{1000 * max(timings):.0f} ms", flush=True)
        return {"rows": rows, "stuck_found": len(found),
                "seconds_min": round(min(timings), 3), "seconds_max": round(max(timings), 3)}
    finally:
        db.dispose()


@contextlib.contextmanager
def profiled(args: argparse.Namespace, meter: Meter, name: str,
             phases: dict[str, Any]) -> Iterator[None]:
    if not args.py_spy or meter.stack is None:
        yield
        return
    pids = {group.name: group.pids for group in meter.stack.groups()}
    out = meter.stack.workdir / "profiles" / name.replace("@", "-")
    with profile.recording(args.py_spy, pids, out) as files:
        yield
    phases[f"profile {name}"] = summary = {
        process: [[frame, round(100 * inclusive, 1), round(100 * own, 1)]
                  for frame, inclusive, own in profile.summarise(paths, top=80)]
        for process, paths in files.items()}
    for process, rows in summary.items():
        print(f"  profile of {process} during {name}: % of samples, inclusive / self")
        for frame, inclusive, own in rows[:25]:
            print(f"    {inclusive:5.1f} {own:5.1f}  {frame}")


def print_table(report: dict[str, Any]) -> None:
    print("\n| phase | n | c | per s | request p50 / p99 ms | complete p50 / p99 ms | fail |")
    print("|---|---|---|---|---|---|---|")
    measured = {k: v for k, v in report["phases"].items()
                if not k.startswith("profile") and k != "recovery_scan"}
    for name, phase in measured.items():
        print(f"| {name} | {phase['count']} | {phase['concurrency']} | "
              f"{phase['per_second']} | {phase['request_p50_ms']} / "
              f"{phase['request_p99_ms']} | {phase['complete_p50_ms']} / "
              f"{phase['complete_p99_ms']} | {phase['failures']} |")
    if report["ratios"]:
        print("\n| end to end ÷ raw LVM (same VG, same concurrency) | volmgr/s | raw/s "
              "| ratio |")
        print("|---|---|---|---|")
        for name, ratio in report["ratios"].items():
            print(f"| {name} | {ratio['end_to_end_per_s']} | {ratio['raw_per_s']} | "
                  f"{ratio['ratio']} |")
    processes = sorted({p for phase in measured.values()
                        for p in phase["cpu_ms_per_op"]})
    if processes:
        print("\nCPU ms per operation")
        print("| phase | " + " | ".join(processes) + " | total, without the client |")
        print("|---|" + "---|" * (len(processes) + 1))
        for name, phase in measured.items():
            cpu = phase["cpu_ms_per_op"]
            print(f"| {name} | " + " | ".join(str(cpu.get(p, "")) for p in processes)
                  + f" | {round(sum(v for k, v in cpu.items() if k != CLIENT), 2)} |")
    if "idle" in report:
        print("\nidle CPU % of a core:", report["idle"]["cpu_percent_of_a_core"])
        print("idle RSS MiB:", report["idle"]["rss_mib"])
    if "peak_rss_mib" in report:
        print("peak RSS MiB:", report["peak_rss_mib"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"volmgr-bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    if args.endpoint:
        report = benchmark(args, args.endpoint, None, None, None)
    else:
        report = run_stack(args)
    print_table(report)
    text = json.dumps(report, indent=2, sort_keys=True)
    print("\nJSON:\n" + text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def run_stack(args: argparse.Namespace) -> dict[str, Any]:
    if not port_open("127.0.0.1", 5672) and args.transport_url.startswith("rabbit"):
        raise SystemExit("RabbitMQ is not answering on 127.0.0.1:5672")
    workdir = Path(tempfile.mkdtemp(prefix="volmgr-bench-"))
    volumes = args.preload + 3 * args.count * len(args.concurrency) + 64
    with contextlib.ExitStack() as stack:
        vg = None
        if args.driver == "lvm":
            if os.geteuid() != 0:
                raise SystemExit("the LVM benchmark builds a loop-device VG: run it as root")
            vg = stack.enter_context(loop_vg(workdir / "vg", volumes * args.size + 64))
        db_url = stack.enter_context(scratch_postgres(args.postgres))
        from volmgr.db import migration
        engine = sa.create_engine(db_url)
        migration.upgrade(engine)
        engine.dispose()
        services = Stack(workdir, db_url=db_url, transport_url=args.transport_url,
                         driver=args.driver, api_workers=args.api_workers,
                         managers=args.managers, vg=vg, extra_conf=extra_conf(args.set))
        stack.callback(services.stop)
        services.start()
        print(f"stack up: {services.endpoint}, {args.managers} manager(s), "
              f"{args.api_workers} API worker(s), driver {args.driver}, work dir {workdir}",
              flush=True)
        report = benchmark(args, services.endpoint, db_url, services, vg)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return report


if __name__ == "__main__":
    sys.exit(main())
