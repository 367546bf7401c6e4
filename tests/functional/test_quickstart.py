"""The README's first command, copy-pasted by a newcomer into a fresh clone, works."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _readme_commands() -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        return re.findall(r"```sh\n(.*?)\n```", readme.read(), flags=re.S)


def test_readme_starts_with_exactly_two_commands_the_demo_and_the_tests() -> None:
    first, second = _readme_commands()[:2]
    assert "volmgr-all --demo" in first
    assert second.strip() == "sudo tools/run-tests"
    with open(os.path.join(ROOT, ".ci/run"), encoding="utf-8") as ci:
        assert "tools/run-tests" in ci.read()


@pytest.mark.slow
def test_readme_first_command_runs_the_demo_in_a_fresh_clone(tmp_path) -> None:
    clone = tmp_path / "volmgr"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VIRTUAL_ENV", "PYTHON", "TOX"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    first = _readme_commands()[0]
    result = subprocess.run(["bash", "-c", first], cwd=clone, env=env, text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo complete" in result.stdout
    assert "in-use; connection info" in result.stdout
    assert '"auth_password": "********"' in result.stdout or '"driver_volume_type": "local"' \
        in result.stdout
    assert os.path.exists(tmp_path / "state" / "volmgr" / "volmgr.sqlite")
