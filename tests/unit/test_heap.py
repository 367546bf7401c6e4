"""Daemons exempt their start-up objects from the cycle collector once they are ready
(docs/performance.md, change 18)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from volmgr import heap
from volmgr.cmd import volume as volume_cmd


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_start_up_are_no_longer_scanned() -> None:
    built_at_start_up = [{"route": n} for n in range(1000)]
    before = gc.get_freeze_count()
    frozen = heap.freeze_startup_objects("test")
    assert frozen == gc.get_freeze_count() >= before + len(built_at_start_up)
    tracked = {id(obj) for obj in gc.get_objects()}
    assert id(built_at_start_up) not in tracked
    assert id(built_at_start_up[0]) not in tracked
    made_later: list[int] = []
    assert id(made_later) in {id(obj) for obj in gc.get_objects()}


def test_start_up_garbage_is_collected_not_kept() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    marker = id(cycle)
    del cycle
    heap.freeze_startup_objects("test")
    assert gc.garbage == []
    assert marker not in {id(obj) for obj in gc.get_objects(generation=None)}


def test_the_volume_manager_freezes_once_started_and_before_it_reports_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    class Service:
        def __init__(self, conf: cfg.ConfigOpts) -> None:
            events.append("built")

        def start(self) -> None:
            events.append("started")

        def stop(self, timeout: float) -> None:
            events.append("stopped")

    monkeypatch.setattr(volume_cmd, "VolumeService", Service)
    monkeypatch.setattr(volume_cmd.heap, "freeze_startup_objects",
                        lambda process: events.append(f"freeze {process}") or 0)
    monkeypatch.setattr(volume_cmd.systemd, "notify",
                        lambda message: events.append(message.split("=")[0]))
    monkeypatch.setattr(volume_cmd, "_serve", lambda *args: events.append("serving"))
    config = tmp_path / "volmgr.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n")
    assert volume_cmd.main(["--config-file", str(config)]) == 0
    assert events[:5] == ["built", "started", "freeze volmgr-volume", "READY", "serving"]
