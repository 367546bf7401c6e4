"""The progress display (tqdm): one redrawn line on a terminal, plain lines elsewhere,
nothing for quick operations, never anything on stdout."""

from __future__ import annotations

import io
import time

from volmgr.manage import progress as progress_mod
from volmgr.manage.progress import Progress


def _run(total: int, step: float, **options: object) -> str:
    stream = io.StringIO()
    with Progress("reconcile", total, stream=stream, delay=0, interval=0,
                  **options) as progress:  # type: ignore[arg-type]
        for _ in range(total):
            time.sleep(step)
            progress.advance()
    return stream.getvalue()


def test_on_a_terminal_one_line_is_redrawn_with_count_rate_and_eta() -> None:
    text = _run(5, 0.01, tty=True)
    assert "\n" not in text.rstrip("\n") and text.endswith("\n")
    frames = [frame.rstrip() for frame in text.rstrip("\n").split("\r")[1:]]
    assert frames[-1].startswith("reconcile: 5/5 (100%) ") and " done in " in frames[-1]
    assert all("/s" in frame and (" ETA " in frame or frame.startswith("reconcile: 5/5"))
               for frame in frames)
    counts = [int(f.split("/")[0].split()[-1]) for f in frames]
    assert counts == sorted(counts) and len(set(counts)) >= 3


def test_without_a_terminal_each_redraw_is_a_plain_line_and_the_last_comes_once() -> None:
    text = _run(4, 0.01, tty=False)
    assert "\r" not in text
    lines = text.splitlines()
    counts = [int(line.split("/")[0].split()[-1]) for line in lines]
    assert counts == sorted(set(counts)) and counts[-1] == 4 and len(counts) >= 3
    assert lines[-1].startswith("reconcile: 4/4 (100%)") and " done in " in lines[-1]


def test_plain_lines_are_spaced_by_the_interval_when_not_on_a_terminal() -> None:
    assert progress_mod.PLAIN_INTERVAL >= 5 and progress_mod.TTY_INTERVAL <= 0.1


def test_an_operation_faster_than_the_delay_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress("reconcile", 3, stream=stream, tty=False) as progress:
        for _ in range(3):
            progress.advance()
    assert stream.getvalue() == ""


def test_disabled_or_empty_progress_prints_nothing() -> None:
    stream = io.StringIO()
    for progress in (Progress("a", 5, stream=stream, enabled=False, delay=0, interval=0),
                     Progress("b", 0, stream=stream, delay=0, interval=0)):
        progress.advance()
        progress.close()
    assert stream.getvalue() == ""


def test_progress_goes_to_stderr_by_default(capsys) -> None:
    with Progress("bulk", 2, delay=0, interval=0) as progress:
        progress.advance(2)
    captured = capsys.readouterr()
    assert captured.out == "" and "bulk: 2/2 (100%)" in captured.err
