"""Optional sampling profiles (py-spy) of the stack's Python processes during a phase,
summarised as "where the CPU went": the share of samples under each frame."""

from __future__ import annotations

import collections
import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


@contextlib.contextmanager
def recording(py_spy: str, pids: dict[str, list[int]], out: Path,
              rate: int = 250) -> Iterator[dict[str, list[Path]]]:
    """py-spy ``record --gil --format raw`` every pid while the block runs: only the
    thread holding the GIL is sampled, so the counts are Python CPU, not wall time
    (C code that releases the GIL, e.g. libpq waiting on the socket, is not seen)."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}
    running = []
    for name, group in pids.items():
        for pid in group:
            path = out / f"{name}-{pid}.txt"
            files.setdefault(name, []).append(path)
            running.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                 "--gil", "--nonblocking", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield files
    finally:
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def summarise(paths: list[Path], top: int = 25) -> list[tuple[str, float, float]]:
    """(frame, inclusive share, self share) of the hottest frames, shares of all samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError), open(path) as handle:
            for line in handle:
                stack, _, count_text = line.rstrip("\n").rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                total += count
                frames = [_short(frame) for frame in stack.split(";")]
                for frame in set(frames):
                    inclusive[frame] += count
                own[frames[-1]] += count
    if not total:
        return []
    return [(frame, inclusive[frame] / total, own[frame] / total)
            for frame, _ in inclusive.most_common(top)]


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        file = file.split("/work/main/", 1)[-1]
    return f"{match.group('func')} ({file})"
