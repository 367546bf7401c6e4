"""The shipped systemd units pass ``systemd-analyze verify`` and keep their sandboxing.

verify insists that ExecStart binaries exist, and a test machine has volmgr in a virtual
environment rather than /usr/bin: each unit is checked as a copy whose volmgr-* commands
point at the installed ones (the only change made), so a typo in a key, a section or a
command line still fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

UNITS_DIR = Path(__file__).resolve().parents[2] / "etc" / "systemd"
EXPECTED_UNITS = ("volmgr-api.service", "volmgr-volume.service")
#: Highest ``systemd-analyze security`` exposure (0-10) each unit may have. The API never
#: touches storage and gets the full sandbox; the manager needs root, /dev and LVM's
#: state for lvcreate/tgtadm, so it keeps a weaker one. Raising a number needs a reason.
MAX_EXPOSURE = {"volmgr-api.service": 3.0, "volmgr-volume.service": 7.0}
BIN_DIR = Path(sys.executable).parent
# An absolute path to a volmgr entry point, e.g. /usr/bin/volmgr-volume.
_VOLMGR_COMMAND = re.compile(r"(?<![\w/.-])(/[\w/.-]*/)?(volmgr-(?:api|volume|manage|all))\b")
_EXEC_KEYS = ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop",
              "ExecStopPost", "ExecCondition")


def _point_at_installed(text: str) -> str:
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in _EXEC_KEYS:
            line = _VOLMGR_COMMAND.sub(lambda m: str(BIN_DIR / m.group(2)), line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _installed_copy(unit: str, tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        services.missing("systemd-analyze is not installed (apt-get install -y systemd)")
    source = UNITS_DIR / unit
    assert source.is_file(), f"etc/systemd/{unit} is missing"
    text = source.read_text()
    for command in _VOLMGR_COMMAND.finditer(text):
        assert (BIN_DIR / command.group(2)).exists(), f"{command.group(2)} is not installed"
    copy = tmp_path / unit
    copy.write_text(_point_at_installed(text))
    return copy


def _unit_files() -> list[str]:
    found = sorted(p.name for p in UNITS_DIR.glob("*.service")) if UNITS_DIR.is_dir() else []
    return sorted(set(found) | set(EXPECTED_UNITS))


def test_rewriting_points_volmgr_commands_at_the_installed_entry_points():
    text = ("[Service]\nExecStart=/usr/bin/volmgr-volume --config-file "
            "/etc/volmgr/volmgr.conf\nExecReload=/bin/kill -HUP $MAINPID\n"
            "Description=/usr/bin/volmgr-volume\n")
    rewritten = _point_at_installed(text).splitlines()
    assert rewritten[1] == (f"ExecStart={BIN_DIR}/volmgr-volume --config-file "
                            "/etc/volmgr/volmgr.conf")
    assert rewritten[2] == "ExecReload=/bin/kill -HUP $MAINPID"
    assert rewritten[3] == "Description=/usr/bin/volmgr-volume"


@pytest.mark.parametrize("unit", _unit_files())
def test_systemd_analyze_verify_accepts_the_unit(unit, tmp_path):
    copy = _installed_copy(unit, tmp_path)
    assert any(line.startswith("ExecStart=") for line in copy.read_text().splitlines())

    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    # verify exits 0 on mere warnings (an unknown key is "ignored"); anything it says
    # about our unit is a defect, what it says about the host's own units is not.
    about_unit = [line for line in (result.stdout + result.stderr).splitlines()
                  if unit in line or str(copy) in line]
    assert result.returncode == 0 and about_unit == [], result.stdout + result.stderr


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_unit_sandboxing_stays_within_its_exposure_budget(unit, tmp_path):
    copy = _installed_copy(unit, tmp_path)
    threshold = int(MAX_EXPOSURE[unit] * 10)  # systemd-analyze counts in tenths
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={threshold}",
         "--no-pager", str(copy)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_COLORS": "0"})
    summary = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, "\n".join(summary) or result.stdout + result.stderr
