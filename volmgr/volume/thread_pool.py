"""The manager's thread pool: a bounded pool of worker threads that runs jobs sharing a
key one at a time, in arrival order (``KeyedThreadPool``; its bound is ``[volume]
executor_thread_pool_size``). Not to be confused with ``volmgr.volume.executor``, the
command runner every storage command goes through.

The manager keys every operation by volume id, so two messages about one volume never
run at once while different volumes proceed in parallel. A queued job never occupies a
worker while it waits for its key, so a burst about one volume cannot starve the rest.
Jobs must catch their own errors; this module only logs what escapes.

Workers start on demand, one whenever a job is ready and none is idle, up to the bound:
a large bound (sized so the pool never holds back work the storage could run) costs
nothing on an idle manager, and a started worker stays for the next burst.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable

from volmgr import exception

LOG = logging.getLogger(__name__)

Job = Callable[[], None]


class KeyedThreadPool:
    """Up to ``workers`` daemon threads; jobs with equal keys run one at a time."""

    def __init__(self, workers: int, name: str = "volmgr-worker") -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs: dict[str, collections.deque[Job]] = {}
        self._ready: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._closed = False
        self._max_workers = workers
        self._name = name
        self._threads: list[threading.Thread] = []
        #: Keys in ``_ready`` that no worker has taken yet, and workers waiting for one.
        self._queued = 0
        self._waiting = 0

    def _make_ready(self, key: str) -> None:
        """Hand ``key`` to a worker, starting one if none is free (lock held)."""
        self._queued += 1
        self._ready.put(key)
        if self._queued > self._waiting and len(self._threads) < self._max_workers:
            # Daemon threads: a shutdown that gives up waiting must not hang on them; the
            # database rows they leave transitional are re-driven by recovery.
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"{self._name}-{len(self._threads)}")
            self._threads.append(thread)
            self._waiting += 1
            thread.start()

    def submit(self, key: str, job: Job) -> None:
        """Queue ``job`` behind every earlier job of ``key``."""
        with self._lock:
            if self._closed:
                raise exception.ServiceUnavailable(reason="the volume manager is stopping")
            jobs = self._jobs.get(key)
            if jobs is None:
                self._jobs[key] = collections.deque([job])
                self._make_ready(key)
            else:
                jobs.append(job)

    def pending_keys(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is running or queued; False when ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._jobs:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self) -> None:
        """Refuse new jobs; queued ones still run. Workers exit once idle."""
        with self._lock:
            self._closed = True
            if not self._jobs:
                self._release_workers()

    def _release_workers(self) -> None:
        for _ in self._threads:
            self._ready.put(None)

    def _work(self) -> None:
        while True:
            key = self._ready.get()
            if key is None:
                return
            with self._lock:
                self._queued -= 1
                self._waiting -= 1
                job = self._jobs[key][0]
            try:
                job()
            except Exception:
                LOG.exception("Unhandled error in a job for %s", key)
            with self._lock:
                jobs = self._jobs[key]
                jobs.popleft()
                self._waiting += 1
                if jobs:
                    self._make_ready(key)
                else:
                    del self._jobs[key]
                    if not self._jobs:
                        self._idle.notify_all()
                        if self._closed:
                            self._release_workers()
