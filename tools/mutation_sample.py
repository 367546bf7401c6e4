"""Mutation testing of the API, db and volume packages on a fixed-seed sample.

Not part of the test run: it needs mutmut 3.8.1 (``pip install mutmut==3.8.1``), which is
not in test-requirements, and it works on a COPY of the tree, because mutmut writes
``mutants/`` and its configuration next to the code. A full run (several thousand mutants)
takes CPU-hours; a sample of about 120 mutants per package takes about half an hour on
one core and gives the score to within about +-8 points. docs/decisions.md, section
"Mutation testing", has the figures and the reasoning.

    python tools/mutation_sample.py prepare /tmp/mut      # copy the tree, write the config
    cd /tmp/mut && python3 -m venv .venv && \
        .venv/bin/pip install -e . -r test-requirements.txt mutmut==3.8.1
    .venv/bin/python tools/mutation_sample.py sample --per-package 120 --seed 20240612
    .venv/bin/python tools/mutation_sample.py run        # mutmut run --max-children 1 <sample>
    .venv/bin/python tools/mutation_sample.py report     # per-package score, Wilson 95 %

``sample`` generates every mutant (no tests run) and writes the drawn names, one a line,
to ``mutation-sample.txt``; ``run`` and ``report`` read that file, so a rerun after new
tests (copy them into the copy's tests/unit) checks exactly the same mutants.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

PACKAGES = ("api", "db", "volume")
SAMPLE_FILE = Path("mutation-sample.txt")
CONFIG = """
[tool.mutmut]
source_paths = ["volmgr"]
only_mutate = ["volmgr/api/*", "volmgr/db/*", "volmgr/volume/*"]
do_not_mutate = ["volmgr/db/migrations/*"]
# the schemathesis fuzz test takes 30 s and reaches nearly every API function: with it
# each API mutant would cost half a minute; the other 1,100 unit tests are kept
pytest_add_cli_args_test_selection = ["tests/unit", "--ignore=tests/unit/test_api_fuzz.py"]
pytest_add_cli_args = ["-p", "no:cacheprovider"]
also_copy = ["etc", "docs", "tools", "bin", "setup.py", "README.md", "tox.ini"]
"""
# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into four outcomes
OUTCOME = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
           36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}


def prepare(dest: Path) -> None:
    """Copy the tree without VCS, virtualenvs and build output; add mutmut's config."""
    src = Path(__file__).resolve().parent.parent
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(
        ".git", ".tox", ".venv", "mutants", "*.egg-info", "__pycache__", ".*_cache"))
    with (dest / "pyproject.toml").open("a") as out:
        out.write(CONFIG)


def generate() -> list[str]:
    """Write every mutant under mutants/ (mutmut run's first step) and return the names."""
    from mutmut.__main__ import create_mutants
    from mutmut.mutation.trampoline import set_mutant_under_test
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    set_mutant_under_test("mutant_generation")
    Path("mutants").mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    create_mutants(1)
    return sorted(key for _, key, _ in _results())


def _results() -> list[tuple[str, str, int | None]]:
    """(package, mutant name, exit code or None) for every generated mutant."""
    rows = []
    for meta in Path("mutants/volmgr").rglob("*.py.meta"):
        package = meta.relative_to("mutants/volmgr").parts[0]
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            rows.append((package, key, code))
    return rows


def sample(per_package: int, seed: int) -> None:
    names = generate()
    rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
    drawn: list[str] = []
    for package in PACKAGES:
        pool = [n for n in names if n.split(".")[1] == package]
        picked = sorted(rng.sample(pool, min(per_package, len(pool))))
        drawn += picked
        print(f"{package}: {len(pool)} mutants generated, {len(picked)} drawn (seed {seed})")
    SAMPLE_FILE.write_text("\n".join(drawn) + "\n")


def run() -> int:
    names = SAMPLE_FILE.read_text().split()
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names]
    return subprocess.call(cmd)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of the proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def report() -> None:
    """Killed (timeouts count as killed) out of the whole sample, per package."""
    wanted = set(SAMPLE_FILE.read_text().split())
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors = []
    for package, key, code in _results():
        if key in wanted:
            outcome = OUTCOME.get(code, "not checked") if code is not None else "not checked"
            counts[package][outcome] += 1
            if outcome in ("survived", "no tests"):
                survivors.append(f"{key}: {outcome}")
    print("package  sample  killed  timeout  survived  no-tests  not-checked  score  95% CI")
    for package in PACKAGES:
        c = counts[package]
        n = sum(c.values())
        k = c["killed"] + c["timeout"]
        low, high = wilson(k, n)
        print(f"{package:8} {n:6} {c['killed']:7} {c['timeout']:8} {c['survived']:9} "
              f"{c['no tests']:9} {c['not checked']:12}  {k / max(n, 1):5.1%}  "
              f"{low:.1%}-{high:.1%}")
    Path("mutation-survivors.txt").write_text("\n".join(sorted(survivors)) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("dest", type=Path)
    drawing = sub.add_parser("sample")
    drawing.add_argument("--per-package", type=int, default=120)
    drawing.add_argument("--seed", type=int, required=True)
    sub.add_parser("run")
    sub.add_parser("report")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dest)
    elif args.command == "sample":
        sample(args.per_package, args.seed)
    elif args.command == "run":
        return run()
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
