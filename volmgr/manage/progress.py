"""Progress display for long volmgr-manage operations (reconcile, bulk force-delete),
drawn by tqdm.

It writes to stderr only, so ``--format json`` on stdout stays machine-readable. On a
terminal tqdm redraws one line (count/total, rate, ETA); otherwise (logs, pipes, cron)
each redraw becomes a plain line, at most one every few seconds. Nothing is shown for
an operation that finishes within the first ``DELAY`` seconds.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

#: Seconds between redraws on a terminal; finer is flicker, not information.
TTY_INTERVAL = 0.1
#: Seconds between plain lines when stderr is not a terminal.
PLAIN_INTERVAL = 5.0
#: Seconds an operation runs before anything is shown.
DELAY = 1.0
#: ``reconcile: 120/1000 (12%) 40.00it/s ETA 00:22``
FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) {rate_fmt} ETA {remaining}"
#: The last line: ``reconcile: 1000/1000 (100%) 40.00it/s done in 00:25``
DONE_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) {rate_fmt} done in {elapsed}"


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._count = ""

    def write(self, text: str) -> None:
        for frame in text.split("\r"):
            count = frame.split(")", 1)[0]  # "label: n/total (p%"
            if frame.strip() and count != self._count:  # close() redraws the last one
                self._count = count
                self.stream.write(frame.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts finished items of a known total and shows how far along it is.

    Use as a context manager; ``advance()`` after each item.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 enabled: bool = True, tty: bool | None = None,
                 delay: float | None = None, interval: float | None = None) -> None:
        stream = stream if stream is not None else sys.stderr
        tty = _isatty(stream) if tty is None else tty
        self.enabled = enabled and total > 0
        self.bar = tqdm(
            total=total, desc=label, file=stream if tty else _Lines(stream),
            disable=not self.enabled, delay=DELAY if delay is None else delay,
            bar_format=FORMAT, unit="",
            mininterval=interval if interval is not None else (
                TTY_INTERVAL if tty else PLAIN_INTERVAL),
            miniters=1, dynamic_ncols=tty, leave=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def done(self) -> int:
        return int(self.bar.n)

    def advance(self, count: int = 1) -> None:
        if self.enabled and self.bar.n + count >= self.bar.total:
            self.bar.bar_format = DONE_FORMAT
        self.bar.update(count)

    def close(self) -> None:
        """Finish the display: the final count if anything was shown, then a newline
        on a terminal so the shell prompt starts clean."""
        if self.enabled and self.bar.n >= self.bar.total:
            self.bar.bar_format = DONE_FORMAT
        self.bar.close()
