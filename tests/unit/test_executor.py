"""The command executor: argv only, timeouts, root helper, LVM lock retries, redaction."""

from __future__ import annotations

import logging

import pytest

from tests.unit.scripted import ScriptedExecutor
from volmgr import exception
from volmgr.volume import executor as executor_mod
from volmgr.volume.executor import ProcessExecutor, redact


def test_a_command_string_is_refused_because_only_argument_lists_run() -> None:
    with pytest.raises(TypeError):
        ProcessExecutor().execute("ls -l")  # type: ignore[arg-type]


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(TypeError):
        ProcessExecutor().execute([])


def test_a_nul_byte_in_an_argument_is_refused() -> None:
    with pytest.raises(exception.InvalidInput):
        ProcessExecutor().execute(["echo", "a\x00b"])


def test_shell_syntax_in_an_argument_reaches_the_program_verbatim() -> None:
    result = ProcessExecutor().execute(["echo", "$(id); rm -rf / `x` | y && z"])
    assert result.stdout == "$(id); rm -rf / `x` | y && z\n"


def test_nonzero_exit_raises_with_command_exit_code_and_stderr() -> None:
    with pytest.raises(exception.ProcessExecutionError) as caught:
        ProcessExecutor().execute(["sh", "-c", "echo broken >&2; exit 3"])
    assert caught.value.kwargs["exit_code"] == 3
    assert caught.value.kwargs["stderr"] == "broken"
    assert "sh -c" in caught.value.kwargs["cmd"]
    assert "exit code 3" in str(caught.value)


def test_allowed_exit_codes_and_unchecked_exit_codes_return_the_result() -> None:
    assert ProcessExecutor().execute(["sh", "-c", "exit 5"], check_exit_code=[0, 5]).exit_code == 5
    assert ProcessExecutor().execute(["false"], check_exit_code=False).exit_code == 1


def test_a_command_running_past_its_timeout_is_killed_and_reported() -> None:
    with pytest.raises(exception.ProcessExecutionError) as caught:
        ProcessExecutor(timeout=30).execute(["sleep", "10"], timeout=0.3)
    assert caught.value.kwargs["exit_code"] == ProcessExecutor.TIMEOUT_EXIT_CODE
    assert "timed out after 0.3s" in caught.value.kwargs["stderr"]


def test_a_missing_binary_is_an_execution_error_not_a_crash() -> None:
    with pytest.raises(exception.ProcessExecutionError) as caught:
        ProcessExecutor().execute(["volmgr-no-such-binary"])
    assert caught.value.kwargs["exit_code"] == 127


def test_env_is_added_to_the_inherited_environment() -> None:
    result = ProcessExecutor().execute(["sh", "-c", 'echo "$VOLMGR_T $HOME"'],
                                       env={"VOLMGR_T": "x1"})
    assert result.stdout.startswith("x1 /")


def test_stdin_is_fed_to_the_command() -> None:
    assert ProcessExecutor().execute(["cat"], stdin="secret-in\n").stdout == "secret-in\n"


def test_the_root_helper_prefixes_only_commands_run_as_root() -> None:
    scripted = ScriptedExecutor(root_helper=["sudo", "-n"])
    scripted.expect(["sudo", "-n", "lvs"]).expect(["cp", "a", "b"])
    scripted.execute(["lvs"], run_as_root=True)
    scripted.execute(["cp", "a", "b"])
    scripted.assert_done()


def test_from_conf_reads_root_helper_timeout_and_retry_attempts(conf) -> None:
    conf.set_override("root_helper", "sudo -n", group="volume")
    conf.set_override("command_timeout", 7, group="volume")
    conf.set_override("lock_retry_attempts", 2, group="volume")
    built = executor_mod.from_conf(conf)
    assert built.root_helper == ("sudo", "-n")
    assert built.timeout == 7
    assert built.lock_retry_attempts == 2


def test_transient_lvm_lock_errors_are_retried_until_the_command_succeeds() -> None:
    scripted = ScriptedExecutor(lock_retry_attempts=3)
    lock = "  Can't get lock for vg1\n"
    scripted.expect(["lvs"], stderr=lock, exit_code=5).expect(["lvs"], stderr=lock,
                                                              exit_code=5)
    scripted.expect(["lvs"], stdout="ok")
    assert scripted.execute(["lvs"], retry_lock_errors=True).stdout == "ok"
    assert len(scripted.calls) == 3


def test_lock_errors_are_reported_once_the_attempts_are_spent() -> None:
    scripted = ScriptedExecutor(lock_retry_attempts=2)
    for _ in range(2):
        scripted.expect(["lvs"], stderr="Failed to lock logical volume", exit_code=5)
    with pytest.raises(exception.ProcessExecutionError):
        scripted.execute(["lvs"], retry_lock_errors=True)
    assert len(scripted.calls) == 2


def test_other_errors_and_commands_without_retry_are_not_retried() -> None:
    scripted = ScriptedExecutor(lock_retry_attempts=3)
    scripted.expect(["lvs"], stderr="Volume group not found", exit_code=5)
    with pytest.raises(exception.ProcessExecutionError):
        scripted.execute(["lvs"], retry_lock_errors=True)
    scripted.expect(["tgtadm"], stderr="Can't get lock", exit_code=5)
    with pytest.raises(exception.ProcessExecutionError):
        scripted.execute(["tgtadm"])
    assert len(scripted.calls) == 2


def test_secrets_are_redacted_from_errors_and_every_log_line(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="volmgr.volume.executor")
    secret = "Zq8sEcReT0123456"
    with pytest.raises(exception.ProcessExecutionError) as caught:
        ProcessExecutor().execute(["sh", "-c", 'echo "bad secret $0" >&2; exit 2', secret],
                                  secrets=[secret])
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.kwargs)
    assert "***" in str(caught.value)
    assert caplog.records, "the executor logs what it runs"
    assert secret not in caplog.text


def test_known_password_shapes_are_redacted_even_when_not_named() -> None:
    text = ("tgtadm --mode account --op new --user=u1 --password=hunter2 "
            "incominguser u1 hunter3 CHAP u1 hunter4 iscsi://u1%hunter5@127.0.0.1")
    cleaned = redact(text)
    for leaked in ("hunter2", "hunter3", "hunter4", "hunter5"):
        assert leaked not in cleaned
    assert "u1" in cleaned
