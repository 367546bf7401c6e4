"""Run the functional tests in two parts: most of them in parallel (their waits are on
real processes, not on the CPU), then those marked ``exclusive`` alone, because they stop
a service the others share (RabbitMQ).

    python -m tools.run_functional [pytest arguments ...]      # what tox -e functional runs

Extra arguments (``-k lvm``, a file) go to both parts; a part that selects nothing is
not a failure unless neither selects anything. ``VOLMGR_FUNCTIONAL_WORKERS`` sets the
parallel part's processes (default 3; 0 runs it serially).
"""

from __future__ import annotations

import os
import subprocess
import sys

NO_TESTS_COLLECTED = 5


def run(args: list[str]) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    print("==>", " ".join(command[2:]), flush=True)
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    paths = extra if any(not a.startswith("-") and os.path.exists(a.split("::")[0])
                         for a in extra) else ["tests/functional", *extra]
    workers = int(os.environ.get("VOLMGR_FUNCTIONAL_WORKERS", "3"))
    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers > 0 else []
    codes = [run([*paths, *parallel, "-m", "not exclusive", "--durations=15"]),
             run([*paths, "-m", "exclusive"])]
    if all(code == NO_TESTS_COLLECTED for code in codes):
        return NO_TESTS_COLLECTED
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    return failed[0] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
