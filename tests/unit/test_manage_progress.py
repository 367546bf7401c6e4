"""The progress display: one redrawn line on a terminal, periodic plain lines elsewhere,
nothing for quick operations, never anything on stdout."""

from __future__ import annotations

import io

from volmgr.manage.progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_count_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    with Progress("reconcile", 100, stream=stream, tty=True, clock=clock,
                  interval=0.05) as progress:
        for _ in range(50):
            clock.now += 0.1
            progress.advance()
    text = stream.getvalue()
    assert "\n" not in text.rstrip("\n") and text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) == 50  # one per 0.1 s step; the last one is already final
    assert frames[24].rstrip() == "reconcile: 25/100 (25%) 10.0/s ETA 8s"
    assert frames[-1].rstrip() == "reconcile: 50/100 (50%) 10.0/s ETA 5s"


def test_a_shorter_frame_pads_over_the_longer_one_before_it():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("x", 100, stream=stream, tty=True, clock=clock)
    clock.now += 1
    progress.advance(1)
    clock.now += 94
    progress.advance(94)
    first, second = stream.getvalue().split("\r")[1:]
    assert first == "x: 1/100 (1%) 1.0/s ETA 1m39s"
    assert second == "x: 95/100 (95%) 1.0/s ETA 5s "


def test_without_a_terminal_plain_lines_come_every_few_seconds():
    stream, clock = io.StringIO(), Clock()
    with Progress("force-delete", 10, stream=stream, tty=False, clock=clock,
                  interval=5) as progress:
        for _ in range(10):
            clock.now += 1
            progress.advance()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == ["force-delete: 5/10 (50%) 1.0/s ETA 5s",
                     "force-delete: 10/10 (100%) 1.0/s done in 10s"]


def test_an_operation_faster_than_one_interval_prints_nothing():
    stream = io.StringIO()
    with Progress("reconcile", 3, stream=stream, tty=False) as progress:
        for _ in range(3):
            progress.advance()
    assert stream.getvalue() == ""


def test_disabled_or_empty_progress_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    for progress in (Progress("a", 5, stream=stream, enabled=False, clock=clock, interval=0),
                     Progress("b", 0, stream=stream, clock=clock, interval=0)):
        clock.now += 1
        progress.advance()
        progress.close()
    assert stream.getvalue() == ""


def test_progress_goes_to_stderr_by_default(capsys):
    clock = Clock()
    with Progress("bulk", 2, clock=clock, interval=0) as progress:
        clock.now += 1
        progress.advance(2)
    captured = capsys.readouterr()
    assert captured.out == "" and "bulk: 2/2 (100%)" in captured.err


def test_durations_read_like_a_person_would_write_them():
    assert [format_duration(s) for s in (0, 59.4, 75, 3599, 3700)] == [
        "0s", "59s", "1m15s", "59m59s", "1h01m"]
