"""The one way volmgr runs storage commands: argument lists, never a shell string.

Every command gets a timeout, optionally the configured root helper, and (for LVM) retries
on LVM's transient lock errors. Failures raise ``ProcessExecutionError`` whose command,
stderr and log lines have every secret redacted. Nothing here may ever build a command
from user text; callers pass UUID-derived names and sizes only.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import tenacity
from oslo_config import cfg

from volmgr import exception

LOG = logging.getLogger(__name__)

REDACTED = "***"

#: stderr fragments LVM prints when another LVM command holds a lock it needs; the
#: command itself did nothing, so running it again is safe.
LVM_TRANSIENT_ERRORS = (
    "Can't get lock",
    "Failed to lock",
    "Resource temporarily unavailable",
    "Device or resource busy",
)

# Secrets that can appear inside tool output (tgt-admin -v echoes tgtadm command lines,
# target files carry "incominguser <user> <secret>"); redacted even when the caller did not
# name them.
_SECRET_PATTERNS = (
    re.compile(r"(--password[= ])(\S+)"),
    re.compile(r"(incominguser\s+\S+\s+)(\S+)"),
    re.compile(r"(\bCHAP\s+\S+\s+)(\S+)"),
    re.compile(r"(iscsi://[^%@/\s]+%)([^@\s]+)"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret and every recognisable password replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


class Executor(abc.ABC):
    """Runs commands for drivers and target helpers.

    Subclasses implement only ``_run``; validation, the root helper, retries, redaction
    and logging live here so a scripted test executor exercises exactly the same path.
    """

    def __init__(self, root_helper: Sequence[str] = (), timeout: float = 120.0,
                 lock_retry_attempts: int = 5,
                 retry_wait: Callable[[float], None] = time.sleep) -> None:
        self.root_helper = tuple(root_helper)
        self.timeout = timeout
        self.lock_retry_attempts = lock_retry_attempts
        self._sleep = retry_wait

    def execute(self, cmd: Sequence[str], *, run_as_root: bool = False,
                env: Mapping[str, str] | None = None, timeout: float | None = None,
                check_exit_code: bool | Sequence[int] = True, stdin: str | None = None,
                secrets: Sequence[str] = (),
                retry_lock_errors: bool = False) -> CommandResult:
        """Run ``cmd`` (a list of arguments) and return its result.

        ``secrets`` are strings that must never appear in an error or a log line (they
        may be in stdin). ``retry_lock_errors`` re-runs the command when it failed on one
        of ``LVM_TRANSIENT_ERRORS``.
        """
        argv = self._argv(cmd, run_as_root)
        allowed = self._allowed_codes(check_exit_code)

        def attempt() -> CommandResult:
            result = self._run_logged(argv, env, timeout or self.timeout, stdin, secrets)
            if allowed is not None and result.exit_code not in allowed:
                raise exception.ProcessExecutionError(
                    cmd=redact(shlex.join(argv), secrets), exit_code=result.exit_code,
                    stderr=redact(result.stderr.strip(), secrets))
            return result

        if not retry_lock_errors:
            return attempt()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_transient_lock_error),
            stop=tenacity.stop_after_attempt(self.lock_retry_attempts),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
            sleep=self._sleep, reraise=True,
            before_sleep=lambda state: LOG.warning(
                "transient LVM lock error, retrying (attempt %d): %s",
                state.attempt_number, state.outcome.exception() if state.outcome else ""))
        return retrying(attempt)

    @staticmethod
    def _allowed_codes(check_exit_code: bool | Sequence[int]) -> frozenset[int] | None:
        if check_exit_code is True:
            return frozenset({0})
        if check_exit_code is False:
            return None
        return frozenset(check_exit_code)

    def _argv(self, cmd: Sequence[str], run_as_root: bool) -> tuple[str, ...]:
        # A str is a Sequence[str] too: refuse it, it would mean a shell-ish command line.
        if isinstance(cmd, str | bytes) or not cmd:
            raise TypeError("cmd must be a non-empty list of arguments, not a string")
        for arg in cmd:
            if not isinstance(arg, str):
                raise TypeError(f"command arguments must be str, got {type(arg).__name__}")
            if "\x00" in arg:
                raise exception.InvalidInput(reason="NUL byte in a command argument")
        prefix = self.root_helper if run_as_root else ()
        return (*prefix, *cmd)

    def _run_logged(self, argv: tuple[str, ...], env: Mapping[str, str] | None,
                    timeout: float, stdin: str | None,
                    secrets: Sequence[str]) -> CommandResult:
        shown = redact(shlex.join(argv), secrets)
        LOG.debug("running: %s", shown)
        started = time.monotonic()
        result = self._run(argv, env, timeout, stdin)
        LOG.debug("finished in %.3fs with exit code %d: %s", time.monotonic() - started,
                  result.exit_code, shown)
        if result.exit_code != 0 and result.stderr:
            LOG.debug("stderr of %s: %s", shown, redact(result.stderr.strip(), secrets))
        return result

    @abc.abstractmethod
    def _run(self, argv: tuple[str, ...], env: Mapping[str, str] | None, timeout: float,
             stdin: str | None) -> CommandResult:
        """Run ``argv`` once; return its result (a timeout is exit code -9)."""


def _is_transient_lock_error(error: BaseException) -> bool:
    return (isinstance(error, exception.ProcessExecutionError)
            and any(text in str(error.kwargs.get("stderr", ""))
                    for text in LVM_TRANSIENT_ERRORS))


class ProcessExecutor(Executor):
    """Runs commands as child processes (``subprocess``, ``shell=False``)."""

    TIMEOUT_EXIT_CODE = -9

    def _run(self, argv: tuple[str, ...], env: Mapping[str, str] | None, timeout: float,
             stdin: str | None) -> CommandResult:
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        try:
            completed = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, env=full_env,
                timeout=timeout, check=False, stdin=None if stdin is not None
                else subprocess.DEVNULL, close_fds=True)
        except subprocess.TimeoutExpired as error:
            return CommandResult(argv, self.TIMEOUT_EXIT_CODE, _text(error.stdout),
                                 f"{_text(error.stderr)}\ntimed out after {timeout:g}s")
        except OSError as error:
            # A missing binary or a permission problem is reported like any failure.
            return CommandResult(argv, 127, "", f"cannot run {argv[0]}: {error.strerror}")
        return CommandResult(argv, completed.returncode, completed.stdout, completed.stderr)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def from_conf(conf: cfg.ConfigOpts) -> ProcessExecutor:
    """The executor the manager uses, configured from ``[volume]``."""
    return ProcessExecutor(root_helper=shlex.split(conf.volume.root_helper),
                           timeout=conf.volume.command_timeout,
                           lock_retry_attempts=conf.volume.lock_retry_attempts)
