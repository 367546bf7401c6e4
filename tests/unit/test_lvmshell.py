"""What an LVM shell's JSON answer becomes: the result a process would have given."""

from __future__ import annotations

import pytest

from tests.unit.scripted import ScriptedExecutor
from volmgr import exception
from volmgr.volume import lvmshell


def test_only_lvm_commands_with_plain_arguments_run_in_a_shell() -> None:
    assert lvmshell.runs_in_shell(["lvcreate", "-n", "volume-x", "-L", "1g", "vg"])
    assert lvmshell.runs_in_shell(["lvremove", "-f", "-S", "lv_name=x&&!(lv_role=origin)",
                                   "vg"])
    assert not lvmshell.runs_in_shell(["lvremove", "-S", "lv_name=x && x", "vg"])
    assert not lvmshell.runs_in_shell(["lvs", "-o", "it's"])
    assert not lvmshell.runs_in_shell(["dd", "if=/dev/zero"])
    assert not lvmshell.runs_in_shell(["vgremove", "vg"])
    assert not lvmshell.runs_in_shell(["lvs", ""])


def test_a_successful_command_is_exit_code_0_with_its_printed_lines() -> None:
    document = {"log": [
        {"log_seq_num": "3", "log_type": "warn", "log_context": "processing",
         "log_message": "WARNING: Logical volume vg/x not zeroed.", "log_ret_code": "0"},
        {"log_seq_num": "4", "log_type": "print", "log_context": "processing",
         "log_message": 'Logical volume "x" created.', "log_ret_code": "0"},
        {"log_seq_num": "6", "log_type": "status", "log_context": "shell",
         "log_message": "success", "log_ret_code": "1"}]}
    result = lvmshell.as_result(("lvcreate", "-n", "x", "-L", "1g", "vg"), document)
    assert result.exit_code == 0
    assert result.stdout == 'Logical volume "x" created.\n'
    assert "not zeroed" in result.stderr


def test_a_failed_command_keeps_lvms_exit_code_and_error() -> None:
    document = {"log": [
        {"log_type": "error", "log_context": "processing",
         "log_message": 'Logical Volume "x" already exists in volume group "vg"',
         "log_ret_code": "0"},
        {"log_type": "status", "log_context": "shell", "log_message": "failure",
         "log_ret_code": "5"}]}
    result = lvmshell.as_result(("lvcreate",), document)
    assert (result.exit_code, result.stdout) == (5, "")
    assert "already exists" in result.stderr


def test_report_rows_come_back_as_noheadings_separator_text_in_the_asked_order() -> None:
    argv = ("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|", "-o",
            "lv_name,lv_size,lv_role", "vg/x")
    document = {"report": [{"lv": [{"lv_role": "public", "lv_size": "1073741824",
                                    "lv_name": "x"}]}],
                "log": [{"log_type": "status", "log_context": "shell",
                         "log_ret_code": "1"}]}
    result = lvmshell.as_result(argv, document)
    assert result.stdout == "  x|1073741824|public\n"


def test_the_shell_is_refused_behind_a_root_helper() -> None:
    with pytest.raises(exception.InvalidConfiguration, match="root"):
        lvmshell.ShellExecutor(ScriptedExecutor(root_helper=["sudo", "-n"]), 2)


def test_other_commands_go_to_the_process_executor() -> None:
    base = ScriptedExecutor()
    shells = lvmshell.ShellExecutor(base, 1)
    base.expect(["dd", "if=/dev/zero", "of=/dev/x"], stdout="ok")
    assert shells.execute(["dd", "if=/dev/zero", "of=/dev/x"]).stdout == "ok"
    base.assert_done()
