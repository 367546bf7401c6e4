"""Progress display for long volmgr-manage operations (reconcile, bulk force-delete).

It writes to stderr only, so ``--format json`` on stdout stays machine-readable. On a
terminal it redraws one line (count/total, rate, ETA); otherwise (logs, pipes, cron) it
prints a plain line every few seconds. It must never write to stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Seconds between redraws on a terminal; finer is flicker, not information.
TTY_INTERVAL = 0.1
#: Seconds between plain lines when stderr is not a terminal.
PLAIN_INTERVAL = 5.0


def format_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3700`` → ``1h01m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, seconds = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts finished items of a known total and shows how far along it is.

    Use as a context manager; ``advance()`` after each item. Nothing is shown for
    operations that finish before the first redraw interval, so quick commands stay
    quiet.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 enabled: bool = True, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 interval: float | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self._isatty(self.stream) if tty is None else tty
        self.clock = clock
        self.interval = interval if interval is not None else (
            TTY_INTERVAL if self.tty else PLAIN_INTERVAL)
        self.started = clock()
        self._last_shown = self.started
        self._shown_at: int | None = None  # ``done`` when the display was last drawn
        self._width = 0

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last_shown >= self.interval:
            self._last_shown = now
            self._show(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The status text, e.g. ``reconcile: 120/1000 (12%) 40.0/s ETA 22s``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        percent = 100 * self.done // self.total if self.total else 100
        text = f"{self.label}: {self.done}/{self.total} ({percent}%) {rate:.1f}/s"
        if self.done >= self.total:
            return f"{text} done in {format_duration(elapsed)}"
        if rate > 0:
            return f"{text} ETA {format_duration((self.total - self.done) / rate)}"
        return text

    def _show(self, text: str) -> None:
        if self.tty:
            # Pad over the previous, possibly longer, line instead of relying on ANSI.
            padding = " " * max(0, self._width - len(text))
            self.stream.write(f"\r{text}{padding}")
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown_at = self.done

    def close(self) -> None:
        """Finish the display: a final line if anything was shown (unless it is already
        the last one), and a newline on a terminal so the shell prompt starts clean."""
        if not self.enabled or self._shown_at is None:
            return
        if self._shown_at != self.done:
            self._show(self.line())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False
