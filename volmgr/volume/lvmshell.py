"""Long-lived ``lvm`` shells: LVM commands without a new process each.

``lvm`` with no arguments reads commands on stdin and runs each in the same process, so
a command skips the start-up a new process pays (loading, config parsing, device
scanning set-up): about half of an ``lvcreate``'s CPU on the benchmark host. A shell
runs one command at a time, so ``ShellExecutor`` keeps a small pool of them.

Each shell runs with ``LVM_REPORT_FD=1`` and the command profile ``volmgr-shell``
(``<LVM system dir>/profile/volmgr-shell.profile``, see ``PROFILE``): every command then
answers on stdout with one JSON document that holds its report rows (``lvs``, ``vgs``)
and its log, whose ``shell`` record carries the return code and whose ``print``,
``warn`` and ``error`` records carry what a separate process would have written to
stdout and stderr. ``ShellExecutor`` turns that back into a ``CommandResult`` shaped like
a process's (exit code, text stdout with ``--noheadings``/``--separator`` rows), so the
driver's parsing and error handling are the same in both modes.

Only commands whose arguments the shell splits exactly as a process would get them run
in a shell (no whitespace, quotes, backslashes or ``#`` in any argument, no stdin);
anything else runs as a process. A shell that dies, times out or answers something that
is not a report is killed and replaced; the command's result is then a failure (exit
code -9 on a timeout, 127 otherwise), which the driver handles as any failed command
(it looks at the LV before it reports an error). A prompt (``[y/n]``) is answered "n",
as a process with no terminal would. The shell takes any LVM command, so it runs only
when volmgr-volume itself is root, never through a root helper.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from volmgr import exception
from volmgr.volume.executor import CommandResult, Executor

LOG = logging.getLogger(__name__)

PROFILE_NAME = "volmgr-shell"
#: The command profile every shell runs with: the command log on, selected down to what
#: a process would show (its status, its printed lines, warnings and errors), as JSON.
PROFILE = """\
# volmgr: the LVM shell's command profile ([lvm] lvm_shell = true). Install it as
# <LVM system dir>/profile/volmgr-shell.profile (/etc/lvm/profile by default).
log {
\treport_command_log = 1
\tcommand_log_selection = "log_context=shell || log_type=print || log_type=warn || log_type=error"
\tcommand_log_cols = "log_seq_num,log_type,log_context,log_message,log_ret_code"
\tcommand_log_sort = "log_seq_num"
}
report {
\toutput_format = "json"
}
"""
#: LVM commands the shell runs; the rest run as processes.
SHELL_COMMANDS = frozenset({"lvcreate", "lvremove", "lvextend", "lvs", "vgs"})
_UNSAFE = re.compile(r"[\s'\"\\#]")
#: LVM's return codes (ECMD_PROCESSED, ...) as a process's exit codes.
_EXIT_CODES = {"1": 0, "2": 2, "3": 3, "4": 4, "5": 5}
DEAD_EXIT_CODE = 127
TIMEOUT_EXIT_CODE = -9


def profile_path(system_dir: str) -> str:
    return os.path.join(system_dir, "profile", f"{PROFILE_NAME}.profile")


def runs_in_shell(argv: Sequence[str]) -> bool:
    return (bool(argv) and argv[0] in SHELL_COMMANDS
            and all(arg and not _UNSAFE.search(arg) for arg in argv))


class ShellDied(Exception):
    """The shell exited while it ran a command."""


class ShellGone(ShellDied):
    """The shell had exited before the command was sent: it did not run."""


class LVMShell:
    """One ``lvm`` process reading commands on stdin; one command at a time."""

    def __init__(self, env: Mapping[str, str]) -> None:
        full_env = dict(os.environ)
        full_env.update(env)
        full_env.update({"LVM_REPORT_FD": "1", "LVM_COMMAND_PROFILE": PROFILE_NAME})
        self.process = subprocess.Popen(
            ["lvm"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=full_env, close_fds=True)
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._stdout = self.process.stdout.fileno()
        self._stderr = self.process.stderr.fileno()
        for fd in (self._stdout, self._stderr):
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ)

    def run(self, argv: Sequence[str], timeout: float) -> dict[str, Any]:
        """Run one command; its JSON document. ShellDied or TimeoutError otherwise."""
        assert self.process.stdin is not None
        self._drain_stderr()
        if self.process.poll() is not None:
            raise ShellGone("the lvm shell had exited")
        try:
            self.process.stdin.write((" ".join(argv) + "\n").encode())
            self.process.stdin.flush()
        except OSError as error:
            raise ShellGone(f"cannot write to the lvm shell: {error}") from error
        deadline = time.monotonic() + timeout
        out = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            for key, _ in self._selector.select(remaining):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if key.fd == self._stderr:
                    if data:
                        LOG.debug("lvm shell stderr: %s", data.decode(errors="replace").strip())
                        if b"[y/n]" in data:
                            self._answer_no()  # as a process without a terminal would
                    continue
                if not data:
                    raise ShellDied("the lvm shell exited")
                out += data
            text = out.decode(errors="replace")
            start = text.find("{")
            if "[y/n]" in (text if start < 0 else text[:start]):
                self._answer_no()  # as a process without a terminal would
                out = out[start:] if start >= 0 else b""
                continue
            if start < 0:
                continue
            with contextlib.suppress(ValueError):
                document = json.loads(text[start:])
                if isinstance(document, dict) and "log" in document:
                    return document

    def _answer_no(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"n\n")
        self.process.stdin.flush()

    def _drain_stderr(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while data := os.read(self._stderr, 65536):
                LOG.debug("lvm shell stderr: %s", data.decode(errors="replace").strip())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._selector.close()
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


def as_result(argv: Sequence[str], document: dict[str, Any]) -> CommandResult:
    """What a process running ``argv`` would have left behind."""
    log = document.get("log", [])
    status = [r for r in log if r.get("log_context") == "shell"]
    code = str(status[-1].get("log_ret_code", "5")) if status else "5"
    stdout = "".join(r.get("log_message", "") + "\n" for r in log
                     if r.get("log_type") == "print")
    stderr = "".join(r.get("log_message", "") + "\n" for r in log
                     if r.get("log_type") in ("warn", "error"))
    stdout += _report_rows(argv, document.get("report", []))
    return CommandResult(tuple(argv), _EXIT_CODES.get(code, 5), stdout, stderr)


def _report_rows(argv: Sequence[str], reports: list[dict[str, Any]]) -> str:
    """Report rows as ``--noheadings --separator <sep> -o <fields>`` text."""
    if not reports:
        return ""
    fields = _option(argv, "-o")
    separator = _option(argv, "--separator") or " "
    lines = []
    for report in reports:
        for rows in report.values():
            for row in rows:
                names = fields.split(",") if fields else list(row)
                lines.append("  " + separator.join(str(row.get(n, "")) for n in names) + "\n")
    return "".join(lines)


def _option(argv: Sequence[str], name: str) -> str:
    for index, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[index + 1]
    return ""


class ShellExecutor(Executor):
    """Runs LVM commands in a pool of shells and everything else through ``base``."""

    def __init__(self, base: Executor, shells: int) -> None:
        if base.root_helper:
            raise exception.InvalidConfiguration(
                reason="[lvm] lvm_shell needs volmgr-volume to run as root: the shell "
                "takes any LVM command, so it never runs through a root helper")
        super().__init__(root_helper=(), timeout=base.timeout,
                         lock_retry_attempts=base.lock_retry_attempts,
                         retry_wait=base._sleep)
        self.base = base
        self._lock = threading.Lock()
        self._env: dict[str, str] | None = None
        #: Idle shells, and None for each free slot (a shell is started on demand).
        self._idle: queue.SimpleQueue[LVMShell | None] = queue.SimpleQueue()
        for _ in range(shells):
            self._idle.put(None)

    def _run(self, argv: tuple[str, ...], env: Mapping[str, str] | None, timeout: float,
             stdin: str | None) -> CommandResult:
        if stdin is not None or not runs_in_shell(argv):
            return self.base._run(argv, env, timeout, stdin)
        try:
            return self._run_once(argv, env, timeout)
        except ShellGone:
            # The shell had died before the command was sent, so it did not run: once
            # more, on a new shell.
            try:
                return self._run_once(argv, env, timeout)
            except ShellGone as error:
                return CommandResult(argv, DEAD_EXIT_CODE, "", str(error))

    def _run_once(self, argv: tuple[str, ...], env: Mapping[str, str] | None,
                  timeout: float) -> CommandResult:
        shell = self._checkout(dict(env or {}))
        try:
            document = shell.run(argv, timeout)
        except TimeoutError:
            self._discard(shell)
            return CommandResult(argv, TIMEOUT_EXIT_CODE, "",
                                 f"timed out after {timeout:g}s in the lvm shell")
        except ShellGone:
            self._discard(shell)
            raise
        except ShellDied as error:
            self._discard(shell)
            return CommandResult(argv, DEAD_EXIT_CODE, "", str(error))
        except BaseException:
            self._discard(shell)
            raise
        self._idle.put(shell)
        return as_result(argv, document)

    def _checkout(self, env: dict[str, str]) -> LVMShell:
        with self._lock:
            if self._env is None:
                self._env = env
            elif env != self._env:
                raise exception.InvalidConfiguration(
                    reason="every LVM command of one driver must share its environment")
        shell = self._idle.get()
        if shell is not None:
            return shell
        try:
            return LVMShell(env)
        except BaseException:
            self._idle.put(None)
            raise

    def _discard(self, shell: LVMShell) -> None:
        shell.close()
        self._idle.put(None)

    def close(self) -> None:
        """Stop the idle shells (busy ones finish their command first)."""
        while True:
            try:
                shell = self._idle.get_nowait()
            except queue.Empty:
                return
            if shell is not None:
                shell.close()
