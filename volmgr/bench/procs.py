"""CPU seconds and resident memory of processes, read from ``/proc``.

``utime + stime`` is what a process itself spent; ``cutime + cstime`` is what the
children it has waited for spent (a manager's LVM commands). Figures are deltas between
two ``Sample``s, so processes shared with others on the machine (RabbitMQ) still show
what they did during a phase, plus whatever the others made them do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Usage:
    own: float  # CPU seconds of the process itself
    children: float  # CPU seconds of children it reaped


def usage(pid: int) -> Usage | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return Usage((utime + stime) / TICKS, (cutime + cstime) / TICKS)


def memory_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB; NaN when the process is gone."""
    rss = peak = float("nan")
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, peak


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                data = handle.read()
        except OSError:
            continue
        if int(data[data.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() == name:
                    found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


@dataclasses.dataclass
class Group:
    """A named set of processes whose CPU is summed (e.g. the API's gunicorn workers)."""

    name: str
    pids: list[int]
    #: Count the CPU of reaped children separately (the manager's LVM commands).
    children_label: str | None = None


Sample = dict[str, dict[int, Usage]]


def sample(groups: Iterable[Group]) -> Sample:
    taken: Sample = {}
    for group in groups:
        taken.setdefault(group.name, {}).update(
            {pid: u for pid in group.pids if (u := usage(pid)) is not None})
    return taken


def cpu_delta(groups: Iterable[Group], before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each group (and each group's reaped children) spent between samples."""
    spent: dict[str, float] = {}
    for group in groups:
        own = children = 0.0
        for pid, end in after.get(group.name, {}).items():
            start = before.get(group.name, {}).get(pid, Usage(0.0, 0.0))
            own += end.own - start.own
            children += end.children - start.children
        spent[group.name] = spent.get(group.name, 0.0) + own
        if group.children_label:
            spent[group.children_label] = spent.get(group.children_label, 0.0) + children
    return spent
