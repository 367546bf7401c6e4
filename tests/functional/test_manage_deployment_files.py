"""The deployment files in etc/ work with the real tools: lvm.conf.example is valid LVM
configuration whose filter hides unlisted disks, tgt's include line picks up exactly the
target files the tgtadm helper writes, and the logrotate rule rotates."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services
from volmgr import config
from volmgr.volume import executor as executor_mod
from volmgr.volume.targets import base as target_base
from volmgr.volume.targets import tgt

ETC = Path(__file__).resolve().parents[2] / "etc"
LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kwargs)


# -- lvm.conf.example ---------------------------------------------------------------


def test_lvm_conf_example_is_valid_lvm_configuration(tmp_path):
    services.require_binary("lvmconfig")
    shutil.copy(ETC / "volmgr" / "lvm.conf.example", tmp_path / "lvm.conf")
    result = _run(["lvmconfig", "--validate"],
                  env={**LVM_ENV, "LVM_SYSTEM_DIR": str(tmp_path)})
    assert result.returncode == 0 and "LVM configuration valid" in result.stdout, (
        result.stdout + result.stderr)
    shown = _run(["lvmconfig", "devices/global_filter"],
                 env={**LVM_ENV, "LVM_SYSTEM_DIR": str(tmp_path)})
    assert shown.stdout.strip().endswith('"r|.*|"]'), shown.stdout


@pytest.fixture
def two_loop_pvs(tmp_path: Any) -> Iterator[tuple[str, str, str, str]]:
    """Two loop devices, each a PV in its own uniquely named VG: (dev, vg, dev, vg)."""
    services.require_root()
    services.require_loop_devices()
    services.require_binary("losetup", "pvcreate", "vgcreate", "vgremove", "pvs")
    devices: list[str] = []
    vgs: list[str] = []
    setup_dir = tmp_path / "setup-lvm"
    setup_dir.mkdir()
    try:
        for index in range(2):
            image = tmp_path / f"pv{index}.img"
            with open(image, "wb") as handle:
                handle.truncate(16 * 1024 * 1024)
            attached = _run(["losetup", "-f", "--show", str(image)])
            if attached.returncode != 0:
                services.missing(f"losetup failed: {attached.stderr.strip()}")
            devices.append(attached.stdout.strip())
        # Creation scans only these two devices and never activates (no device-mapper).
        accept = ", ".join(f'"a|^{re.escape(d)}$|"' for d in devices)
        (setup_dir / "lvm.conf").write_text(
            f"devices {{ global_filter = [ {accept}, \"r|.*|\" ] }}\n"
            "global { activation = 0 }\n")
        env = {**LVM_ENV, "LVM_SYSTEM_DIR": str(setup_dir)}
        for device in devices:
            vg = f"volmgr-test-{uuid.uuid4().hex[:10]}"
            created = _run(["vgcreate", vg, device], env=env)
            assert created.returncode == 0, created.stderr
            vgs.append(vg)
        yield devices[0], vgs[0], devices[1], vgs[1]
    finally:
        env = {**LVM_ENV, "LVM_SYSTEM_DIR": str(setup_dir)}
        for vg in vgs:
            _run(["vgremove", "-f", vg], env=env)
        for device in devices:
            _run(["pvremove", "-ff", "-y", device], env=env)
            _run(["losetup", "-d", device])


def test_lvm_conf_example_filter_hides_every_disk_it_does_not_accept(
        tmp_path, two_loop_pvs):
    host_disk, host_vg, tenant_disk, tenant_vg = two_loop_pvs
    text = (ETC / "volmgr" / "lvm.conf.example").read_text()
    # The operator's edit: the accept patterns name this host's PV, the rest stays.
    edited, count = re.subn(r'"a\|\^/dev/sda\[0-9\]\*\$\|", "a\|\^/dev/sdb\$\|"',
                            f'"a|^{re.escape(host_disk)}$|"', text)
    assert count == 1, "the example's accept patterns changed; update this test"
    config_dir = tmp_path / "example"
    config_dir.mkdir()
    (config_dir / "lvm.conf").write_text(edited + "\nglobal { activation = 0 }\n")

    listed = _run(["pvs", "--noheadings", "-o", "pv_name,vg_name"],
                  env={**LVM_ENV, "LVM_SYSTEM_DIR": str(config_dir)})
    assert listed.returncode == 0, listed.stderr
    seen = [line.split() for line in listed.stdout.splitlines() if line.strip()]
    assert seen == [[host_disk, host_vg]]
    assert tenant_vg not in listed.stdout and tenant_disk not in listed.stdout


# -- tgt include --------------------------------------------------------------------


def test_tgt_include_line_loads_exactly_the_target_files_the_tgtadm_helper_writes(tmp_path):
    services.require_binary("tgt-admin")
    targets_dir = tmp_path / "state" / "targets"
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    conf.set_override("state_path", str(tmp_path / "state"))
    helper = tgt.TgtAdm(conf, executor_mod.from_conf(conf))
    assert helper.files_dir == str(targets_dir)  # the default the include line names
    volume_id = str(uuid.uuid4())
    image = tmp_path / "image"
    image.write_bytes(b"\0" * 4096)
    with helper._lock():  # the helper's own writer, so the format is the real one
        helper._write_file(volume_id, tgt._TargetFile(
            str(image), target_base.Chap.generate(), []))
    shutil.copy(targets_dir / f"volume-{volume_id}",
                targets_dir / f"volume-{volume_id}.tmp")  # a crash's leftover

    include = (ETC / "tgt" / "volmgr.conf").read_text()
    [line] = [x for x in include.splitlines() if x.startswith("include ")]
    assert line.startswith("include /var/lib/volmgr/targets/")
    (tmp_path / "targets.conf").write_text(
        line.replace("/var/lib/volmgr/targets", str(targets_dir)) + "\n")
    # --pretend prints what tgt-admin would do; an unused control port keeps it away
    # from any tgtd that is running.
    port = str(random.randint(20000, 29999))
    result = _run(["tgt-admin", "-C", port, "--conf", str(tmp_path / "targets.conf"),
                   "--pretend", "--execute"])
    added = re.findall(r"^# Adding target: (\S+)$", result.stdout, re.MULTILINE)
    assert added == [helper.iqn(volume_id)], result.stdout + result.stderr
    assert f"-b {image}" in result.stdout or str(image) in result.stdout


# -- logrotate ----------------------------------------------------------------------


def test_logrotate_rule_rotates_volmgr_logs_in_place(tmp_path):
    services.require_binary("logrotate")
    log_dir = tmp_path / "log"
    log_dir.mkdir(mode=0o755)
    log = log_dir / "volmgr-volume.log"
    log.write_text("a line the daemon wrote\n")
    rule = (ETC / "logrotate.d" / "volmgr").read_text()
    assert "/var/log/volmgr/*.log" in rule
    conf = tmp_path / "logrotate.conf"
    conf.write_text(rule.replace("/var/log/volmgr", str(log_dir)))
    conf.chmod(0o644)
    result = _run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(conf)])
    assert result.returncode == 0, result.stderr
    assert log.exists() and log.stat().st_size == 0  # truncated, same file
    assert (log_dir / "volmgr-volume.log.1").read_text() == "a line the daemon wrote\n"
