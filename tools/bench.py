"""volmgr benchmarks: numbers measured here, compared as ratios within one run.

    python -m tools.bench lvm        # LVM commands: 1 vs 4 vs 8 at a time (root, loop VG)
    python -m tools.bench manager    # manager: creates end to end, pool of 1 vs 8 (root, PG)
    python -m tools.bench idle       # RSS of an idle volmgr-volume daemon (RabbitMQ, PG)
    python -m tools.bench all

The machine is shared and noisy, so nothing here passes or fails on time; it prints
figures. Each section reports a ratio against its own serial baseline from the same run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tools.bench_api import scratch_postgres
from volmgr import config, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database, migration
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers import loader


def _conf(state: Path):  # type: ignore[no-untyped-def]
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    conf.set_override("state_path", str(state))
    conf.set_override("target_helper", "none", group="volume")
    conf.set_override("volume_clear", "none", group="lvm")
    return conf


@contextmanager
def _loop_vg(workdir: Path) -> Iterator[object]:
    from tests.functional.storage_env import make_loop_vg

    with make_loop_vg(workdir, size_mib=65536) as vg:
        yield vg


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:7.1f}/s"


def _timed_pool(jobs: list[Callable[[], object]], workers: int) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return time.perf_counter() - start


def bench_lvm(count: int = 48) -> None:
    """The driver's create and delete, ``count`` volumes, 1, 4 and 8 at a time."""
    print(f"== LVM driver on a loop VG: {count} x create then delete (activation = 0)")
    with tempfile.TemporaryDirectory() as tmp, _loop_vg(Path(tmp) / "vg") as vg:
        conf = _conf(Path(tmp) / "state")
        vg.configure(conf)  # type: ignore[attr-defined]
        driver = loader.load_driver(conf)
        baseline: dict[str, float] = {}
        for workers in (1, 4, 8):
            volumes = [VolumeRef(id=str(uuid.uuid4()), size=1) for _ in range(count)]
            created = _timed_pool([lambda v=v: driver.create_volume(v) for v in volumes],
                                  workers)
            deleted = _timed_pool([lambda v=v: driver.delete_volume(v) for v in volumes],
                                  workers)
            baseline.setdefault("create", created)
            baseline.setdefault("delete", deleted)
            print(f"  {workers} at a time: create {_rate(count, created)} "
                  f"(x{baseline['create'] / created:.1f})   delete {_rate(count, deleted)} "
                  f"(x{baseline['delete'] / deleted:.1f})")


def bench_manager(count: int = 48) -> None:
    """Creates end to end through the manager (fake:// bus, PostgreSQL, LVM), with a
    pool of 1 and of 8 workers: the gain from running different volumes concurrently."""
    from volmgr.volume import notifications
    from volmgr.volume.rpcapi import VolumeAPI
    from volmgr.volume.service import VolumeService

    print(f"== manager: {count} creates cast over fake://, PostgreSQL, LVM on a loop VG")
    results: dict[int, float] = {}
    for workers in (1, 8):
        with tempfile.TemporaryDirectory() as tmp, _loop_vg(Path(tmp) / "vg") as vg, \
                scratch_postgres() as url:
            conf = _conf(Path(tmp) / "state")
            vg.configure(conf)  # type: ignore[attr-defined]
            conf.set_override("connection", url, group="database")
            conf.set_override("executor_thread_pool_size", workers, group="volume")
            conf.set_override("recovery_interval", 3600, group="volume")
            conf.set_override("volumes", -1, group="quota")
            conf.set_override("gigabytes", -1, group="quota")
            db = Database.from_conf(conf)
            migration.upgrade(db.engine)
            transport = rpc.get_transport(conf, url="fake://")
            service = VolumeService(conf, db=db, transport=transport,
                                    notifier=notifications.VolumeNotifier(None))
            service.start()
            client = VolumeAPI(conf, transport)
            context = RequestContext(project_id="bench", user_id="bench")
            ids = [db.volume_create(project_id="bench", user_id="bench", size=1,
                                    host=conf.host).id for _ in range(count)]
            start = time.perf_counter()
            for volume_id in ids:
                client.create_volume(context, conf.host, volume_id)
            while any(db.volume_get(v).status == states.CREATING for v in ids):
                time.sleep(0.02)
            results[workers] = time.perf_counter() - start
            available = sum(db.volume_get(v).status == states.AVAILABLE for v in ids)
            for volume_id in ids:
                db.volume_transition(volume_id, [states.AVAILABLE], {"status": states.DELETING})
                client.delete_volume(context, conf.host, volume_id)
            deadline = time.monotonic() + 120
            while vg.lvs() and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.05)
            service.stop(30)
            db.dispose()
            print(f"  pool of {workers}: {_rate(count, results[workers])} "
                  f"({available}/{count} available)")
    print(f"  concurrency gain: x{results[1] / results[8]:.1f}")


def bench_idle(seconds: float = 8.0) -> None:
    """Resident memory of a real volmgr-volume process idling on RabbitMQ."""
    print("== idle volmgr-volume daemon (file driver, RabbitMQ, PostgreSQL)")
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as url:
        engine = sa.create_engine(url)
        migration.upgrade(engine)
        engine.dispose()
        conf_file = Path(tmp) / "volmgr.conf"
        conf_file.write_text(
            f"[DEFAULT]\nhost = bench-{uuid.uuid4().hex[:8]}\nstate_path = {tmp}\n"
            "transport_url = rabbit://guest:guest@127.0.0.1:5672/\n"
            f"[database]\nconnection = {url}\n"
            "[volume]\ndriver = file\ntarget_helper = none\n")
        binary = os.path.join(os.path.dirname(sys.executable), "volmgr-volume")
        process = subprocess.Popen([binary, "--config-file", str(conf_file)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(seconds)
            samples = []
            for _ in range(5):
                samples.append(_rss_mib(process.pid))
                time.sleep(0.5)
            print(f"  RSS after {seconds:.0f} s idle: {statistics.median(samples):.1f} MiB "
                  f"(threads: {len(os.listdir(f'/proc/{process.pid}/task'))})")
        finally:
            process.terminate()
            process.wait(30)


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


SECTIONS: dict[str, Callable[[], None]] = {
    "lvm": bench_lvm, "manager": bench_manager, "idle": bench_idle,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("sections", nargs="*", default=["all"],
                        choices=[*SECTIONS, "api", "all"])
    args = parser.parse_args(argv)
    chosen = [*SECTIONS, "api"] if "all" in args.sections else args.sections
    for name in chosen:
        if name == "api":
            subprocess.run([sys.executable, "-m", "tools.bench_api"], check=False)
        else:
            SECTIONS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
