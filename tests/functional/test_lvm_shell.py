"""``[lvm] lvm_shell``: the LVM driver's commands in long-lived ``lvm`` shells, against
real LVM on a loop-device VG. Same observable behaviour as one process per command, and
no LVM command falls back to a process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.functional.storage_env import (
    LoopVG,
    RecordingExecutor,
    loop_vg,  # noqa: F401 - fixture
)
from volmgr import exception
from volmgr.volume import lvmshell
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers import loader
from volmgr.volume.drivers.lvm import LVMDriver

GiB = 1024 ** 3


@pytest.fixture
def shell_driver(conf: Any, loop_vg: LoopVG) -> LVMDriver:  # noqa: F811
    loop_vg.configure(conf)
    conf.set_override("target_helper", "none", group="volume")
    conf.set_override("volume_clear", "none", group="lvm")
    conf.set_override("lvm_shell", True, group="lvm")
    conf.set_override("lvm_shell_count", 2, group="lvm")
    driver = loader.load_driver(conf, executor=RecordingExecutor())
    assert isinstance(driver, LVMDriver)
    driver.check_setup()
    yield driver
    driver.executor.close()  # type: ignore[attr-defined]


def _processes(driver: LVMDriver) -> list[tuple[str, ...]]:
    """LVM commands that ran as processes instead of in a shell."""
    base = driver.executor.base  # type: ignore[attr-defined]
    return [argv for argv in base.argvs if argv[0] in lvmshell.SHELL_COMMANDS]


def test_create_extend_delete_through_the_shell_are_seen_by_lvs(shell_driver: LVMDriver,
                                                                loop_vg: LoopVG) -> None:  # noqa: F811
    volume = VolumeRef(str(uuid.uuid4()), 1)
    shell_driver.create_volume(volume)
    assert loop_vg.lvs() == {f"volume-{volume.id}": GiB}
    shell_driver.create_volume(volume)  # a re-driven create: lvcreate fails, the LV fits
    shell_driver.extend_volume(volume, 2)
    assert loop_vg.lvs() == {f"volume-{volume.id}": 2 * GiB}
    assert shell_driver.list_volume_ids() == {volume.id}
    capacity = shell_driver.get_capacity()
    size, free = loop_vg.vgs()
    assert (capacity.total_gb, capacity.free_gb) == (size / GiB, free / GiB)
    shell_driver.delete_volume(volume)
    assert loop_vg.lvs() == {}
    shell_driver.delete_volume(volume)  # already gone: still success
    assert _processes(shell_driver) == []
    assert lvmshell.profile_path(str(loop_vg.lvm_dir)).endswith("volmgr-shell.profile")


def test_a_failure_in_the_shell_carries_lvms_exit_code_and_reason(
        shell_driver: LVMDriver, loop_vg: LoopVG) -> None:  # noqa: F811
    with pytest.raises(exception.ProcessExecutionError, match="insufficient free space") as err:
        shell_driver.create_volume(VolumeRef(str(uuid.uuid4()), 50))
    assert err.value.kwargs["exit_code"] == 5
    assert loop_vg.lvs() == {}
    with pytest.raises(exception.BackendError, match="exists with"):
        volume = VolumeRef(str(uuid.uuid4()), 1)
        shell_driver.create_volume(volume)
        shell_driver.create_volume(VolumeRef(volume.id, 2))
    shell_driver.delete_volume(volume)
    assert _processes(shell_driver) == []


def test_concurrent_commands_share_the_pool_and_a_killed_shell_is_replaced(
        shell_driver: LVMDriver, loop_vg: LoopVG) -> None:  # noqa: F811
    import concurrent.futures

    volumes = [VolumeRef(str(uuid.uuid4()), 1) for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(shell_driver.create_volume, volumes))
    assert set(loop_vg.lvs()) == {f"volume-{v.id}" for v in volumes}
    executor = shell_driver.executor
    shell = executor._idle.get()  # type: ignore[attr-defined]
    if shell is not None:
        shell.process.kill()
        shell.process.wait()
    executor._idle.put(shell)  # type: ignore[attr-defined]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(shell_driver.delete_volume, volumes))
    assert loop_vg.lvs() == {}
