"""The one place that picks the storage driver and its target helper from the
configuration (``[volume] driver``, ``[volume] target_helper``).

The interface the manager drives is ``volmgr.volume.driver.VolumeDriver``; the LVM and
file drivers share ``volmgr.volume.drivers.exporting.ExportingDriver``.
"""

from __future__ import annotations

from oslo_config import cfg

from volmgr import exception
from volmgr.volume import executor as executor_mod
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.targets.base import TargetHelper


def load_target_helper(conf: cfg.ConfigOpts,
                       executor: executor_mod.Executor) -> TargetHelper:
    """The helper named by ``[volume] target_helper``."""
    name = conf.volume.target_helper
    if name == "tgtadm":
        from volmgr.volume.targets.tgt import TgtAdm
        return TgtAdm(conf, executor)
    if name == "lioadm":
        from volmgr.volume.targets.lio import LioAdm
        return LioAdm(conf, executor)
    if name == "none":
        from volmgr.volume.targets.none import NoTarget
        return NoTarget(conf, executor)
    raise exception.InvalidConfiguration(reason=f"unknown target_helper {name!r}")


def load_driver(conf: cfg.ConfigOpts,
                executor: executor_mod.Executor | None = None) -> VolumeDriver:
    """The driver named by ``[volume] driver``, exporting through its target helper.

    ``executor`` (the command runner) defaults to a ProcessExecutor built from
    ``[volume]``; tests pass a scripted one.
    """
    executor = executor or executor_mod.from_conf(conf)
    target = load_target_helper(conf, executor)
    name = conf.volume.driver
    if name == "lvm":
        from volmgr.volume.drivers.lvm import LVMDriver
        return LVMDriver(conf, executor, target)
    if name == "file":
        from volmgr.volume.drivers.file import FileDriver
        return FileDriver(conf, executor, target)
    raise exception.InvalidConfiguration(reason=f"unknown volume driver {name!r}")
