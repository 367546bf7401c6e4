"""``tox -e tempest``: bring up the cloud, run Tempest's volume API tests against it,
count the result, tear the cloud down.

    python -m tools.tempest.run [--regex R] [--concurrency N] [--keep]

Exit status: 0 when every selected test passed or was skipped by a feature flag, and
at least one passed; 1 when a test, a class set-up or tear-down failed, or a listed test
never ran; 2 when the cloud could not be brought up. The logs, the subunit stream
(``run.subunit``) and a JSON summary stay in the state directory afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.tempest.cloud import ROOT, TEMPLATES, Cloud, log, render

DEFAULT_REGEX = r"^tempest\.api\.volume"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regex", default=DEFAULT_REGEX, help="tests to run (tempest --regex)")
    parser.add_argument("--exclude-list", type=Path, default=TEMPLATES / "exclude.txt",
                        help="regexes of tests not run, each with its reason")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--state", type=Path, default=Path(sys.prefix) / "run",
                        help="where configs, logs and the subunit stream go (emptied first)")
    parser.add_argument("--venvs", type=Path, default=Path(sys.prefix) / "helpers",
                        help="where the Keystone and Tempest virtualenvs are kept")
    parser.add_argument("--keep", action="store_true",
                        help="after the run, keep the cloud up until Ctrl-C")
    parser.add_argument("--up", action="store_true",
                        help="only bring the cloud up and keep it until Ctrl-C")
    return parser.parse_args(argv)


def tempest_workspace(cloud: Cloud, state: Path) -> Path:
    tempest = cloud.tempest_venv / "bin" / "tempest"
    workspace = state / "workspace"
    subprocess.run([str(tempest), "init", "--workspace-path", str(state / "workspaces.yaml"),
                    str(workspace)], check=True, stdout=subprocess.DEVNULL)
    low, high = cloud.microversions()
    render("tempest.conf.in", workspace / "etc" / "tempest.conf", {
        "WORKSPACE": workspace, "ADMIN_PASSWORD": cloud.admin_password,
        "KEYSTONE_URL": cloud.keystone_url, "MIN_MICROVERSION": low,
        "MAX_MICROVERSION": high})
    log(f"Tempest workspace {workspace} (volume microversions {low} to {high})")
    return workspace


def run_tempest(cloud: Cloud, workspace: Path, args: argparse.Namespace) -> int:
    tempest = str(cloud.tempest_venv / "bin" / "tempest")
    python = str(cloud.tempest_venv / "bin" / "python")
    select = ["--regex", args.regex, "--exclude-list", str(args.exclude_list)]
    listed = workspace / "listed.txt"
    with open(listed, "w") as out:
        subprocess.run([tempest, "run", "--list-tests", *select], cwd=workspace, check=True,
                       stdout=out)
    stream = args.state / "run.subunit"
    log(f"tempest run {' '.join(select)} --concurrency {args.concurrency}")
    started = time.monotonic()
    with open(stream, "wb") as out:
        subprocess.run([tempest, "run", *select, "--concurrency", str(args.concurrency),
                        "--subunit"], cwd=workspace, stdout=out, check=False)
    log(f"Tempest took {time.monotonic() - started:.0f}s; counting {stream}")
    return subprocess.run([python, str(ROOT / "tools" / "tempest" / "count.py"), str(stream),
                           "--listed", str(listed), "--json",
                           str(args.state / "summary.json")], check=False).returncode


def wait_for_interrupt(cloud: Cloud) -> None:
    print(f"Keystone {cloud.keystone_url}/v3 (admin / {cloud.admin_password}), "
          f"volmgr {cloud.volmgr_url}; configs and logs in {cloud.state}. Ctrl-C stops.",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.state = args.state.resolve()
    shutil.rmtree(args.state, ignore_errors=True)
    args.state.mkdir(parents=True)
    cloud = Cloud(args.state, args.venvs.resolve())
    started = time.monotonic()
    try:
        try:
            cloud.start()
        except Exception as error:
            print(f"error: the cloud did not come up: {error}", file=sys.stderr)
            return 2
        log(f"cloud up in {time.monotonic() - started:.0f}s")
        if args.up:
            wait_for_interrupt(cloud)
            return 0
        workspace = tempest_workspace(cloud, args.state)
        code = run_tempest(cloud, workspace, args)
        if args.keep:
            wait_for_interrupt(cloud)
        return code
    finally:
        cloud.stop()
        log(f"torn down; {time.monotonic() - started:.0f}s in all; logs in {args.state}")


if __name__ == "__main__":
    sys.exit(main())
