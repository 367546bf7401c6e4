"""Every command block of the README, run literally, in order, in one shell, in a fresh
clone: the quick start, volmgr-all in the background, both faces (curl), the cinder
CLI, the openstacksdk snippet, volmgr-manage on volmgr-all's state, and the stop. A
block that needs a step the README does not give fails here.

Two blocks are not run: ``sudo tools/run-tests`` (the CI command, which runs this very
test) and the unit-test command (``test_the_readme_unit_test_command_*`` below runs it).
The only liberty taken: when another program already listens on 8776, the blocks are
run with that port number replaced by a free one.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT = 8776


def readme_blocks() -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        return re.findall(r"```sh\n(.*?)\n```", readme.read(), flags=re.S)


def _is_unit_test_block(block: str) -> bool:
    return "pytest" in block and "tests/unit" in block


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_env(tmp_path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VIRTUAL_ENV", "PYTHON", "TOX", "OS_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def _run_script(script: str, cwd: str, env: dict[str, str],
                timeout: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # volmgr-all in the background too
        out, _ = process.communicate()
        pytest.fail(f"the README's commands did not finish in {timeout:.0f} s:\n{out}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def test_the_readme_gives_every_block_this_test_runs() -> None:
    blocks = readme_blocks()
    assert "volmgr-all --demo" in blocks[0]
    assert blocks[1].strip() == "sudo tools/run-tests"
    assert any(_is_unit_test_block(b) for b in blocks)
    text = "\n".join(blocks)
    for step in ("volmgr-all >", "/v1.1/demo", "os-volume_attachments", ".venv/bin/cinder",
                 "--os-volume-api-version 3.0", "import openstack",
                 ".venv/bin/volmgr-manage", "kill %1"):
        assert step in text, f"the README no longer shows {step!r}"


@pytest.mark.slow
def test_every_readme_command_block_runs_literally_in_a_fresh_clone(tmp_path) -> None:
    clone = tmp_path / "volmgr"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    blocks = [b for b in readme_blocks()
              if b.strip() != "sudo tools/run-tests" and not _is_unit_test_block(b)]
    port = PORT if _port_free(PORT) else _free_port()
    script = ["set -e"]
    for number, block in enumerate(blocks):
        script.append(f"echo '=== block {number} ==='")
        script.append(block.replace(str(PORT), str(port)))
    result = _run_script("\n".join(script) + "\necho '=== all blocks ran ==='\n",
                         str(clone), _fresh_env(tmp_path), timeout=1500)
    out = result.stdout
    assert result.returncode == 0 and "=== all blocks ran ===" in out, out

    assert "demo complete" in out                                    # the quick start
    assert '"volumeAttachment"' in out and '"connection_info"' in out  # Compute 1.1
    assert " vol1 " in out                                            # cinder list
    assert "downgrad" not in out.lower()  # the microversion is given, no warning
    assert "sdk-vol available 1" in out                              # openstacksdk
    services = [line.split() for line in out.splitlines() if "volmgr-volume" in line]
    assert any(row[2:4] == ["enabled", "up"] for row in services), out  # manage
    log = (clone / "volmgr-all.log").read_text()
    assert "Received SIGTERM, stopping" in log
    assert "Every accepted operation finished" in log
    deleted = [line for line in out.splitlines() if " deleted " in f" {line} "]
    assert deleted, "volume list --all shows the deleted volumes as deleted"


def _as_user(command: list[str], env: dict[str, str], home: str) -> tuple[list[str],
                                                                  dict[str, str]]:
    """``command`` as the unprivileged ``nobody`` when this test runs as root, with the
    system's python3 first on PATH (root's own interpreters may be out of its reach)."""
    if os.geteuid() != 0:
        return command, env
    env = {**env, "HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    env.pop("PIP_CONSTRAINT", None)
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            *command], env


@pytest.mark.slow
def test_the_readme_unit_test_command_needs_no_root_services_or_config(
        tmp_path, request) -> None:
    """The README's first command (without the demo) and its unit-test command, in a
    fresh clone, as an unprivileged user when this test runs as root; the tests
    themselves with no network but loopback when this machine allows a namespace of
    their own, so no RabbitMQ, PostgreSQL or MariaDB can be reached."""
    if os.geteuid() == 0:
        # pytest's own temporary directories are root's alone: work where nobody may.
        tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="volmgr-readme-unit-"))
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
        tmp_path.chmod(0o755)
    clone = tmp_path / "volmgr"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
    install = readme_blocks()[0].split("&& .venv/bin/volmgr-all")[0]
    [unit] = [b for b in readme_blocks() if _is_unit_test_block(b)]
    requirements, tests = (part.strip() for part in unit.split("&&", 1))
    command, env = _as_user(["bash", "-c", f"set -e\n{install}\n{requirements}"],
                            _fresh_env(tmp_path), str(tmp_path))
    installed = subprocess.run(command, cwd=clone, env=env, text=True,
                               capture_output=True, timeout=1500)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    command, env = _as_user(["bash", "-c", tests], _fresh_env(tmp_path), str(tmp_path))
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "-",
                   *command]
    result = subprocess.run(command, cwd=clone, env=env, text=True, capture_output=True,
                            timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    print(summary, file=sys.stderr)
