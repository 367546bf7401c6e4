"""``volmgr-bench`` (``tox -e bench``) runs a real stack end to end and reports what it
measured. Figures are printed, never asserted: this checks that the benchmark works and
that its report holds every figure docs/performance.md quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import services


def test_the_benchmark_drives_a_real_stack_and_reports_every_figure(
        tmp_path: Path) -> None:
    services.require_root()
    services.require_port("PostgreSQL", "127.0.0.1", 5432)
    services.require_port("RabbitMQ", "127.0.0.1", 5672)
    report_file = tmp_path / "report.json"
    bench = os.path.join(os.path.dirname(sys.executable), "volmgr-bench")
    result = subprocess.run(
        [bench, "-n", "6", "-c", "3", "--driver", "file", "--attach", "2", "--warmup", "3",
         "--idle-seconds", "0.5", "--json", str(report_file)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warm-up: 3 creates and deletes, not counted" in result.stdout
    assert "| create@3 | 6 | 3 |" in result.stdout
    report = json.loads(report_file.read_text())
    phases = report["phases"]
    assert set(phases) == {"create@3", "attach@3", "detach@3", "delete@3"}
    for name, phase in phases.items():
        assert phase["failures"] == 0, name
        assert phase["count"] == (2 if name.startswith(("attach", "detach")) else 6)
        assert phase["complete_p50_ms"] > 0
        cpu = phase["cpu_ms_per_op"]
        for process in ("api", "manager", "postgresql (this database)", "bench client"):
            assert process in cpu, (name, process)
    assert set(report["idle"]["rss_mib"]) >= {"api", "manager"}
    assert len(report["idle"]["rss_mib"]["api"]) == 2  # both API workers
