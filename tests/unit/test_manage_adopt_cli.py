"""``volmgr-manage volume|snapshot manageable|manage|unmanage`` on the storage host, with
the file driver on real files: what is listed, adopted under a new id at whole GiB, and
forgotten with the storage left in place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from volmgr import states
from volmgr.cmd import manage
from volmgr.db import Database

GiB = 1024 ** 3


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def run(tmp_path: Path, state: Path, db: Database, capsys: pytest.CaptureFixture[str]) -> Any:
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = node1\nstate_path = {state}\ntransport_url = fake:/\n"
        f"[database]\nconnection = {db.engine.url.render_as_string(hide_password=False)}\n"
        "[volume]\ndriver = file\ntarget_helper = none\n")

    def runner(*args: str) -> tuple[int, Any, str]:
        code = manage.main(["--config-file", str(conf_file), *args, "--format", "json"])
        captured = capsys.readouterr()
        out = json.loads(captured.out) if captured.out.strip().startswith(("[", "{")) \
            else captured.out
        return code, out, captured.err
    return runner


def test_a_file_is_adopted_as_a_volume_and_its_snapshot_unmanaged_and_adopted_again(
        run: Any, state: Path, db: Database) -> None:
    volumes = state / "volumes"
    volumes.mkdir(parents=True)
    with open(volumes / "legacy.img", "wb") as image:
        image.truncate(GiB + 1)

    code, listed, _ = run("volume", "manageable")
    assert code == 0 and listed == [{"name": "legacy.img", "size": 2, "safe_to_manage": True,
                                     "reason_not_safe": None, "cinder_id": None}]
    code, volume, err = run("volume", "manage", "legacy.img", "--project", "p1")
    assert code == 0, err
    assert (volume["status"], volume["size"]) == ("available", 2)
    assert os.stat(volumes / f"volume-{volume['id']}").st_size == 2 * GiB

    snapshot_dir = volumes / "snapshots" / f"volume-{volume['id']}"
    snapshot_dir.mkdir(parents=True)
    with open(snapshot_dir / "nightly", "wb") as image:
        image.truncate(2 * GiB)
    code, listed, _ = run("snapshot", "manageable")
    assert listed == [{"name": "nightly", "size": 2, "volume": f"volume-{volume['id']}",
                       "safe_to_manage": True, "reason_not_safe": None, "cinder_id": None}]
    code, snapshot, err = run("snapshot", "manage", "nightly", "--volume", volume["id"])
    assert code == 0, err
    assert db.snapshot_get(snapshot["id"]).status == states.SNAP_AVAILABLE
    assert os.listdir(snapshot_dir) == [f"snapshot-{snapshot['id']}"]

    code, out, _ = run("snapshot", "unmanage", snapshot["id"])
    assert code == 0 and "left in place" in out
    assert os.listdir(snapshot_dir) == [f"snapshot-{snapshot['id']}"]
    code, listed, _ = run("snapshot", "manageable")
    assert [(e["name"], e["safe_to_manage"]) for e in listed] == [
        (f"snapshot-{snapshot['id']}", True)]


def test_a_missing_file_is_a_clear_error_and_no_row(run: Any, db: Database) -> None:
    code, _, err = run("volume", "manage", "nothing.img", "--project", "p1")
    assert code == 1 and "no image named nothing.img" in err
    assert db.volume_list(None) == []
