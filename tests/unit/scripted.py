"""A scripted executor for unit tests: each command must be exactly the next one expected.

It runs nothing. Validation, root helper, retries and redaction are the real ones from
``Executor``; only the process is replaced by the scripted reply.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping, Sequence

from volmgr.volume.executor import CommandResult, Executor


@dataclasses.dataclass
class Call:
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin: str | None
    timeout: float


class ScriptedExecutor(Executor):
    """Replies to the expected argv lists in order; any other command fails the test."""

    def __init__(self, root_helper: Sequence[str] = (), lock_retry_attempts: int = 3) -> None:
        super().__init__(root_helper=root_helper, timeout=30.0,
                         lock_retry_attempts=lock_retry_attempts, retry_wait=lambda _s: None)
        self.script: deque[tuple[list[str] | None, CommandResult]] = deque()
        self.calls: list[Call] = []

    def expect(self, argv: list[str] | None, stdout: str = "", stderr: str = "",
               exit_code: int = 0) -> ScriptedExecutor:
        """Script the next command (None accepts any argv) and its reply."""
        self.script.append((argv, CommandResult(tuple(argv or ()), exit_code, stdout, stderr)))
        return self

    def _run(self, argv: tuple[str, ...], env: Mapping[str, str] | None, timeout: float,
             stdin: str | None) -> CommandResult:
        self.calls.append(Call(argv, dict(env or {}), stdin, timeout))
        assert self.script, f"unexpected command: {list(argv)}"
        expected, reply = self.script.popleft()
        if expected is not None:
            assert list(argv) == expected, f"\nexpected {expected}\n     got {list(argv)}"
        return dataclasses.replace(reply, argv=argv)

    def assert_done(self) -> None:
        assert not self.script, f"commands expected but not run: {[a for a, _ in self.script]}"

    @property
    def argvs(self) -> list[list[str]]:
        return [list(call.argv) for call in self.calls]
