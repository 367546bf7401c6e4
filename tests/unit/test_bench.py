"""The benchmark's bookkeeping: what it reports must be what the processes spent."""

from __future__ import annotations

import os

from volmgr.bench import cli, load, procs


def test_cpu_delta_sums_a_group_and_splits_out_reaped_children() -> None:
    group = procs.Group("manager", [1, 2], children_label="manager children (LVM)")
    before = {"manager": {1: procs.Usage(1.0, 10.0), 2: procs.Usage(2.0, 0.0)}}
    # pid 3 appeared during the phase: all it spent counts.
    group.pids.append(3)
    after = {"manager": {1: procs.Usage(1.5, 12.0), 2: procs.Usage(2.25, 0.0),
                         3: procs.Usage(0.5, 0.0)}}
    spent = procs.cpu_delta([group], before, after)
    assert spent == {"manager": 1.25, "manager children (LVM)": 2.0}


def test_usage_and_memory_of_this_process() -> None:
    usage = procs.usage(os.getpid())
    assert usage is not None and usage.own > 0
    rss, peak = procs.memory_mib(os.getpid())
    assert 0 < rss <= peak
    assert procs.usage(2 ** 30) is None  # no such process


def test_percentiles_and_phase_summary() -> None:
    phase = load.PhaseResult("create", count=4, concurrency=2, wall=2.0,
                             request=[0.001, 0.002, 0.003, 0.100],
                             complete=[0.1, 0.2, 0.3, 0.4], cpu={"api": 0.02})
    summary = phase.summary()
    assert summary["per_second"] == 2.0
    assert summary["request_p50_ms"] in (2.0, 3.0)
    assert summary["request_p99_ms"] == 100.0
    assert summary["cpu_ms_per_op"] == {"api": 5.0}


def test_set_options_become_config_sections() -> None:
    text = cli.extra_conf(["volume.executor_thread_pool_size=16", "lvm.lvm_shell=true",
                           "debug=true"])
    assert "[volume]\nexecutor_thread_pool_size = 16\n" in text
    assert "[lvm]\nlvm_shell = true\n" in text
    assert "[DEFAULT]\ndebug = true\n" in text


def test_arguments_have_the_issue_defaults() -> None:
    args = cli.parse_args(["-n", "300", "-c", "10", "20", "--preload", "1000"])
    assert (args.count, args.concurrency, args.preload) == (300, [10, 20], 1000)
    assert (args.driver, args.api_workers, args.managers, args.size) == ("lvm", 2, 1, 1)
