"""The manager's worker pool: as many operations at once as there are volumes with work
(up to the bound), one at a time per volume, and no thread before there is work."""

from __future__ import annotations

import threading

from volmgr.volume.thread_pool import KeyedThreadPool

WAIT = 10  # seconds: a bound on a hang, never a measurement


def _workers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name + "-")]


class Blocking:
    """Jobs that report they started and then wait to be released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started = threading.Semaphore(0)
        self.done = threading.Semaphore(0)

    def job(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        self.release.wait(WAIT)
        with self.lock:
            self.running -= 1
        self.done.release()


def test_an_idle_pool_has_no_threads_and_a_burst_runs_every_volume_at_once() -> None:
    pool = KeyedThreadPool(64, name="pool-burst")
    assert _workers("pool-burst") == []
    jobs = Blocking()
    for index in range(10):
        pool.submit(f"volume-{index}", jobs.job)
    for _ in range(10):
        assert jobs.started.acquire(timeout=WAIT)
    assert jobs.most == 10  # nothing held back while 10 volumes had work
    assert len(_workers("pool-burst")) == 10  # not 64
    jobs.release.set()
    assert pool.wait_idle(WAIT)
    pool.close()


def test_the_bound_holds_and_queued_work_still_runs() -> None:
    pool = KeyedThreadPool(3, name="pool-bound")
    jobs = Blocking()
    for index in range(5):
        pool.submit(f"volume-{index}", jobs.job)
    for _ in range(3):
        assert jobs.started.acquire(timeout=WAIT)
    assert not jobs.started.acquire(timeout=0.2)  # the other two wait for a worker
    assert len(_workers("pool-bound")) == 3
    jobs.release.set()
    for _ in range(5):
        assert jobs.done.acquire(timeout=WAIT)
    assert jobs.most == 3
    assert pool.wait_idle(WAIT)
    pool.close()


def test_one_volume_runs_one_job_at_a_time_in_order_on_a_large_pool() -> None:
    pool = KeyedThreadPool(32, name="pool-order")
    seen: list[int] = []
    jobs = Blocking()

    def step(number: int) -> None:
        jobs.job()
        seen.append(number)

    jobs.release.set()
    for number in range(20):
        pool.submit("one-volume", lambda n=number: step(n))
    assert pool.wait_idle(WAIT)
    assert seen == list(range(20))
    assert jobs.most == 1
    assert len(_workers("pool-order")) == 1
    pool.close()


def test_workers_are_reused_across_bursts_and_exit_on_close() -> None:
    pool = KeyedThreadPool(16, name="pool-reuse")
    for _burst in range(3):
        jobs = Blocking()
        for index in range(4):
            pool.submit(f"volume-{index}", jobs.job)
        for _ in range(4):
            assert jobs.started.acquire(timeout=WAIT)
        jobs.release.set()
        assert pool.wait_idle(WAIT)
    assert len(_workers("pool-reuse")) == 4
    pool.close()
    for thread in _workers("pool-reuse"):
        thread.join(WAIT)
    assert _workers("pool-reuse") == []
