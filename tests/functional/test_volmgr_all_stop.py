"""volmgr-all stops on the first Ctrl-C, whenever it arrives, and keeps its promise
about the work it accepted: a SIGINT sent in the middle of a burst of creates stops it
(logged), every create it answered finishes before it exits, and none is left for a
later start to find."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

VOLMGR_ALL = os.path.join(os.path.dirname(sys.executable), "volmgr-all")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _burst_then_sigint(tmp_path, round_: int) -> tuple[int, list[str], str, dict[str, str]]:
    state = tmp_path / f"state-{round_}"
    port = _free_port()
    process = subprocess.Popen([VOLMGR_ALL, "--port", str(port), "--state-path", str(state)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "volmgr-all is serving" in (process.stdout.readline() if process.stdout
                                           else "")
        accepted: list[str] = []
        lock = threading.Lock()

        def create() -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1.1/demo/os-volumes", method="POST",
                data=json.dumps({"volume": {"size": 1}}).encode(),
                headers={"X-Auth-Token": "me:demo", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    volume_id = json.loads(answer.read())["volume"]["id"]
            except OSError:
                return  # refused or cut off once the stop began: never accepted
            with lock:
                accepted.append(volume_id)

        clients = [threading.Thread(target=create) for _ in range(40)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        while len(accepted) < 5 + 3 * round_ and time.monotonic() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGINT)  # mid-burst
        for client in clients:
            client.join()
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with sqlite3.connect(state / "volmgr.sqlite") as db:
        statuses = dict(db.execute("SELECT id, status FROM volumes").fetchall())
    return process.returncode, accepted, err, statuses


@pytest.mark.parametrize("round_", range(3))
def test_a_sigint_mid_burst_stops_it_and_every_accepted_create_finishes(tmp_path,
                                                                       round_) -> None:
    code, accepted, err, statuses = _burst_then_sigint(tmp_path, round_)
    assert code == 0, err
    assert "Received SIGINT, stopping" in err
    assert accepted, "no create was answered before the stop"
    assert {statuses[volume_id] for volume_id in accepted} == {"available"}, err
    assert "Every accepted operation finished" in err
    assert "did not finish before the stop" not in err
