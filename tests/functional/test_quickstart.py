"""The README's first command, copy-pasted by a newcomer into a fresh clone, works."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests import services

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


def test_demo_exports_over_iscsi_when_asked_and_a_tgtd_answers(tmp_path) -> None:
    from tests.functional import storage_env

    storage_env.require_lvm()
    services.require_binary("tgtd", "tgtadm", "tgt-admin")
    with storage_env.make_tgtd(tmp_path / "tgtd") as tgtd:
        conf_file = tmp_path / "volmgr.conf"
        conf_file.write_text(
            f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
            f"[volume]\ntarget_ip_address = 127.0.0.1\ntarget_port = {tgtd.portal_port}\n"
            f"tgt_control_port = {tgtd.control_port}\n")
        result = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "volmgr-all"), "--demo", "--iscsi",
             "--config-file", str(conf_file)],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert '"driver_volume_type": "iscsi"' in result.stdout
        assert '"auth_password": "********"' in result.stdout
        assert f'"target_portal": "127.0.0.1:{tgtd.portal_port}"' in result.stdout
        assert tgtd.target_iqns() == set(), "the demo left an export behind"
