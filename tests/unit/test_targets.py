"""Target helpers: tgtadm (scripted commands, a fake tgtd socket, real target files),
lioadm (rtslib mocked, since this kernel has no LIO) and none."""

from __future__ import annotations

import logging
import os
import stat
import sys
import types
from typing import Any

import pytest

from tests.unit.scripted import ScriptedExecutor
from volmgr import exception
from volmgr.volume.driver import VolumeRef
from volmgr.volume.targets import base
from volmgr.volume.targets.lio import LioAdm
from volmgr.volume.targets.none import NoTarget
from volmgr.volume.targets.tgt import NOBODY_ADDRESS, TgtAdm
from volmgr.volume.targets.tgt_socket import Err, TgtdRequestError

VOL = "0b5c9b3e-7a35-4a3e-9a73-2d3e8f6f0a01"
IQN = f"iqn.2010-10.org.openstack:volume-{VOL}"
DEV = "/dev/vg1/volume-" + VOL
INITIATOR = "iqn.1994-05.com.redhat:client1"
USER, SECRET = "user0123456789abcdef", "Secret0123456789"
AUTH = f"CHAP {USER} {SECRET}"
TGTADM = ["tgtadm", "-C", "4242", "--lld", "iscsi"]
SHOW = [*TGTADM, "--op", "show", "--mode", "target"]
WRITE_CACHE_OFF = ("mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14"
                   ":0:0:0:0:0:0")


def show(*targets: tuple[int, str, list[int]], accounts: tuple[str, ...] = (USER,),
         acl: tuple[str, ...] = ("ALL",)) -> str:
    lines = []
    for tid, iqn, luns in targets:
        lines += [f"Target {tid}: {iqn}", "    System information:", "        Driver: iscsi",
                  "    I_T nexus information:", "        I_T nexus: 1",
                  "            Initiator: iqn.x alias: none", "    LUN information:"]
        for lun in luns:
            lines += [f"        LUN: {lun}", "            Type: disk"]
        lines += ["    Account information:", *(f"        {a}" for a in accounts),
                  "    ACL information:", *(f"        {a}" for a in acl)]
    return "\n".join(lines) + "\n"


def build(tid: int, device: str = DEV, user: str = USER) -> list[list[str]]:
    """The tgtadm commands that build a target, in order, before its ACL is bound."""
    t = str(tid)
    return [[*TGTADM, "--op", "new", "--mode", "target", "--tid", t, "-T", IQN],
            [*TGTADM, "--op", "bind", "--mode", "account", "--tid", t, "--user", user],
            [*TGTADM, "--op", "new", "--mode", "logicalunit", "--tid", t, "--lun", "1",
             "-b", device],
            [*TGTADM, "--op", "update", "--mode", "logicalunit", "--tid", t, "--lun", "1",
             "--params", WRITE_CACHE_OFF]]


def bind_all(tid: int) -> list[str]:
    return [*TGTADM, "--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL"]


def bind_name(tid: int, name: str = INITIATOR) -> list[str]:
    return [*TGTADM, "--op", "bind", "--mode", "target", "--tid", str(tid),
            "--initiator-name", name]


def unbind_all(tid: int) -> list[str]:
    return [*TGTADM, "--op", "unbind", "--mode", "target", "--tid", str(tid), "-I", "ALL"]


def unbind_name(tid: int, name: str = INITIATOR) -> list[str]:
    return [*TGTADM, "--op", "unbind", "--mode", "target", "--tid", str(tid),
            "--initiator-name", name]


class FakeTgtd:
    """Stands in for tgtd's management socket; remembers the accounts it was given."""

    def __init__(self) -> None:
        self.accounts: dict[str, str] = {}
        self.calls: list[str] = []
        self.refuse: TgtdRequestError | None = None

    def new_account(self, username: str, password: str) -> None:
        self.calls.append(f"new {username}")
        if self.refuse is not None:
            raise self.refuse
        if username in self.accounts:
            raise TgtdRequestError(request="account new", code=Err.USER_EXIST,
                                   reason="this account already exists")
        self.accounts[username] = password

    def delete_account(self, username: str) -> None:
        self.calls.append(f"delete {username}")
        if self.accounts.pop(username, None) is None:
            raise TgtdRequestError(request="account delete", code=Err.NO_USER,
                                   reason="can't find the account")


@pytest.fixture
def scripted() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
def fake_tgtd() -> FakeTgtd:
    return FakeTgtd()


def make_tgt(conf, scripted, fake_tgtd, acl: bool) -> TgtAdm:
    conf.set_override("tgt_control_port", 4242, group="volume")
    conf.set_override("target_port", 3261, group="volume")
    conf.set_override("target_initiator_acl", acl, group="volume")
    helper = TgtAdm(conf, scripted)
    helper.tgtd = fake_tgtd  # type: ignore[assignment]
    return helper


@pytest.fixture
def tgt(conf, scripted, fake_tgtd) -> TgtAdm:
    """target_initiator_acl = false: every export admits any initiator with CHAP."""
    return make_tgt(conf, scripted, fake_tgtd, acl=False)


@pytest.fixture
def acl_tgt(conf, scripted, fake_tgtd) -> TgtAdm:
    """The default: an export is restricted to the initiator its connector names."""
    return make_tgt(conf, scripted, fake_tgtd, acl=True)


def test_restricting_to_the_connectors_initiator_is_the_default(conf) -> None:
    assert conf.volume.target_initiator_acl is True


def target_file(conf) -> str:
    return os.path.join(conf.volume.target_files_dir, f"volume-{VOL}")


def expect_build(scripted: ScriptedExecutor, tid: int = 1, live: str = "",
                 user: str = USER) -> None:
    scripted.expect(SHOW, stdout=live).expect(SHOW, stdout=live)
    for argv in build(tid, user=user):
        scripted.expect(argv)


# -- tgtadm: exporting ------------------------------------------------------------------


def test_create_export_builds_the_target_with_chap_before_lun_and_acl_last(
        tgt, scripted, fake_tgtd, conf) -> None:
    scripted.expect(SHOW, stdout="").expect(SHOW, stdout="")
    scripted.expect([*TGTADM, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN])
    scripted.expect(None)  # account bind: the user name is random, checked below
    scripted.expect(None).expect(None).expect(bind_all(1))
    update = tgt.create_export(VolumeRef(VOL, 1), DEV)
    scripted.assert_done()
    kind, user, secret = update["provider_auth"].split()
    assert kind == "CHAP" and len(user) == 20 and len(secret) == 16
    assert fake_tgtd.accounts == {user: secret}, "the account came through the socket"
    assert scripted.argvs[3:6] == build(1, user=user)[1:], "CHAP bound before the LUN"
    assert update["provider_location"] == f"127.0.0.1:3261,1 {IQN} 1"


def test_no_command_volmgr_runs_carries_the_secret_and_tgt_admin_is_never_run(
        tgt, scripted) -> None:
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()
    assert all(SECRET not in arg for argv in scripted.argvs for arg in argv)
    assert all(argv[0] == "tgtadm" for argv in scripted.argvs)


def test_the_target_file_keeps_the_export_for_tgts_boot_time_restore(tgt, scripted,
                                                                      conf) -> None:
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    text = open(target_file(conf)).read()
    assert f"<target {IQN}>" in text and f"backing-store {DEV}" in text
    assert f"incominguser {USER} {SECRET}" in text and "initiator-address ALL" in text
    assert "write-cache off" in text
    assert stat.S_IMODE(os.stat(target_file(conf)).st_mode) == 0o600


def test_every_volume_gets_its_own_random_chap_credentials(tgt, scripted) -> None:
    credentials = set()
    for _ in range(2):
        scripted.expect(SHOW).expect(SHOW)
        for _ in range(5):
            scripted.expect(None)
        credentials.add(tgt.create_export(VolumeRef(VOL, 1), DEV)["provider_auth"])
        os.unlink(tgt._file_path(VOL))
    assert len(credentials) == 2


def test_create_export_reuses_the_stored_chap_and_skips_a_complete_target(
        tgt, scripted, fake_tgtd) -> None:
    scripted.expect(SHOW, stdout=show((3, IQN, [0, 1])))
    update = tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert update["provider_auth"] == AUTH
    scripted.assert_done()
    assert fake_tgtd.calls == []


def test_the_new_target_takes_the_next_free_tid(tgt, scripted) -> None:
    live = show((1, "iqn.2000-01.other:a", [0]), (7, "iqn.2000-01.other:b", [0]))
    expect_build(scripted, tid=8, live=live)
    scripted.expect(bind_all(8))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_a_tid_taken_meanwhile_is_retried_with_the_next_one(tgt, scripted) -> None:
    scripted.expect(SHOW).expect(SHOW)
    scripted.expect([*TGTADM, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN],
                    stderr="tgtadm: this target already exists", exit_code=22)
    taken = show((1, "iqn.2000-01.other:a", [0]))
    scripted.expect(SHOW, stdout=taken).expect(SHOW, stdout=taken)
    for argv in build(2):
        scripted.expect(argv)
    scripted.expect(bind_all(2))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


@pytest.mark.parametrize("live", [
    show((3, IQN, [0])),                        # left without its LUN
    show((3, IQN, [0, 1]), accounts=()),        # without our CHAP account: not trusted
], ids=["without-its-lun", "without-our-account"])
def test_an_incomplete_live_target_is_rebuilt(tgt, scripted, live: str) -> None:
    scripted.expect(SHOW, stdout=live)
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "3", "--force"])
    scripted.expect(SHOW)
    for argv in build(1):
        scripted.expect(argv)
    scripted.expect(bind_all(1))
    tgt.ensure_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_a_complete_target_without_any_acl_gets_all_bound(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((3, IQN, [0, 1]), acl=()))
    scripted.expect(bind_all(3))
    tgt.ensure_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_a_leftover_account_is_replaced_so_tgtd_holds_the_current_secret(
        tgt, scripted, fake_tgtd) -> None:
    fake_tgtd.accounts[USER] = "StaleSecret"
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()
    assert fake_tgtd.accounts == {USER: SECRET}
    assert fake_tgtd.calls == [f"new {USER}", f"delete {USER}", f"new {USER}"]


def test_a_failed_step_removes_the_half_built_target_and_hides_the_secret(
        tgt, scripted) -> None:
    scripted.expect(SHOW).expect(SHOW)
    for argv in build(1)[:2]:
        scripted.expect(argv)
    scripted.expect(build(1)[2], stderr="tgtadm: invalid request", exit_code=22)
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "1", "--force"])
    with pytest.raises(exception.TargetError, match="invalid request") as caught:
        tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert SECRET not in str(caught.value)
    scripted.assert_done()


def test_tgtd_refusing_the_account_is_a_target_error_and_leaves_no_target(
        tgt, scripted, fake_tgtd) -> None:
    fake_tgtd.refuse = TgtdRequestError(request="account new", code=Err.TOO_MANY_USER,
                                        reason="too many accounts")
    scripted.expect(SHOW).expect(SHOW).expect(build(1)[0])
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "1", "--force"])
    with pytest.raises(exception.TargetError, match="too many accounts"):
        tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_without_access_to_tgtds_socket_tgtadm_creates_the_account_and_says_so(
        tgt, scripted, fake_tgtd, caplog) -> None:
    fake_tgtd.refuse = TgtdRequestError(request="account new", denied=True,
                                        reason="no permission to use tgtd's socket")
    scripted.expect(SHOW).expect(SHOW).expect(build(1)[0])
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "account", "--user", USER],
                    stderr="tgtadm: can't find the account", exit_code=22)
    scripted.expect([*TGTADM, "--op", "new", "--mode", "account", "--user", USER,
                     "--password", SECRET])
    for argv in build(1)[1:]:
        scripted.expect(argv)
    scripted.expect(bind_all(1))
    with caplog.at_level(logging.DEBUG):
        tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()
    assert "command line shows its secret" in caplog.text
    assert SECRET not in caplog.text, "the executor redacts the fallback's argv"


def test_ensure_export_recreates_a_missing_target_from_the_stored_credentials(
        tgt, scripted, fake_tgtd, conf) -> None:
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.ensure_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert f"incominguser {USER} {SECRET}" in open(target_file(conf)).read()
    assert fake_tgtd.accounts == {USER: SECRET}


def test_ensure_export_of_a_volume_never_exported_is_a_target_error(tgt, scripted) -> None:
    with pytest.raises(exception.TargetError, match="never exported"):
        tgt.ensure_export(VolumeRef(VOL, 1), DEV)


def test_remove_export_deletes_target_account_and_file(tgt, scripted, conf) -> None:
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "1", "--force"])
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "account", "--user", USER])
    tgt.remove_export(VolumeRef(VOL, 1, provider_auth=AUTH))
    scripted.assert_done()
    assert not os.path.exists(target_file(conf))


def test_remove_export_tolerates_a_target_and_account_already_gone(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout="")
    scripted.expect(None, stderr="tgtadm: can't find the account", exit_code=22)
    tgt.remove_export(VolumeRef(VOL, 1, provider_auth=AUTH))
    scripted.assert_done()


def test_remove_export_reports_other_tgtadm_failures(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    scripted.expect(None, stderr="tgtadm: out of memory", exit_code=1)
    with pytest.raises(exception.TargetError, match="out of memory"):
        tgt.remove_export(VolumeRef(VOL, 1, provider_auth=AUTH))


def test_initialize_connection_returns_os_brick_iscsi_connection_info(tgt, scripted) -> None:
    expect_build(scripted)
    scripted.expect(bind_all(1))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]))).expect(bind_name(1))
    info = tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV,
                                     {"initiator": INITIATOR})
    scripted.assert_done()
    assert info == {"driver_volume_type": "iscsi", "data": {
        "target_iqn": IQN, "target_portal": "127.0.0.1:3261", "target_lun": 1,
        "target_discovered": False, "auth_method": "CHAP",
        "auth_username": USER, "auth_password": SECRET,
        "target_portals": ["127.0.0.1:3261"], "target_iqns": [IQN], "target_luns": [1],
        "volume_id": VOL, "access_mode": "rw", "discard": False, "encrypted": False,
        "qos_specs": None}}


SECOND = "iqn.1994-05.com.redhat:client2"


def test_two_initiators_share_one_export_and_each_terminate_removes_only_its_own(
        acl_tgt, scripted) -> None:
    """Multiattach: every connector's initiator joins the ACL; terminating one leaves
    the other admitted (and the target, LUN and account in place)."""
    expect_build(scripted)
    acl_tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    ref = VolumeRef(VOL, 1, provider_auth=AUTH)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=())).expect(bind_name(1))
    acl_tgt.initialize_connection(ref, DEV, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR,)))
    scripted.expect(bind_name(1, SECOND))
    acl_tgt.initialize_connection(ref, DEV, {"initiator": SECOND})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR, SECOND)))
    scripted.expect(unbind_name(1, INITIATOR))
    acl_tgt.terminate_connection(ref, {"initiator": INITIATOR})
    scripted.assert_done()
    with open(os.path.join(acl_tgt.files_dir, "volume-" + VOL)) as handle:
        text = handle.read()
    assert f"initiator-name {SECOND}" in text
    assert f"initiator-name {INITIATOR}" not in text


def test_refresh_export_recreates_the_lun_over_the_grown_device(tgt, scripted) -> None:
    """tgtd sizes a LUN when it is made: after an online extend LUN 1 is made again over
    the same device (CHAP and ACL stay on the target), so READ CAPACITY shows the size;
    the target is offline meanwhile, and a delete refused for commands in flight is
    retried."""
    scripted.expect(SHOW, stdout=show((3, IQN, [0, 1]), acl=(INITIATOR,)))
    scripted.expect(state(3, "offline"))
    scripted.expect(DELETE_LUN3, stderr="tgtadm: this logical unit is still active",
                    exit_code=22)
    scripted.expect(DELETE_LUN3)
    scripted.expect([*TGTADM, "--op", "new", "--mode", "logicalunit", "--tid", "3",
                     "--lun", "1", "-b", DEV])
    scripted.expect([*TGTADM, "--op", "update", "--mode", "logicalunit", "--tid", "3",
                     "--lun", "1", "--params", WRITE_CACHE_OFF])
    scripted.expect(state(3, "ready"))
    tgt.refresh_export(VolumeRef(VOL, 2, provider_auth=AUTH), DEV)
    scripted.assert_done()


DELETE_LUN3 = [*TGTADM, "--op", "delete", "--mode", "logicalunit", "--tid", "3", "--lun", "1"]


def state(tid: int, value: str) -> list[str]:
    return [*TGTADM, "--op", "update", "--mode", "target", "--tid", str(tid), "--name",
            "state", "--value", value]


def test_a_refresh_that_cannot_remake_the_lun_puts_the_target_back_online(
        tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((3, IQN, [0, 1])))
    scripted.expect(state(3, "offline"))
    scripted.expect(DELETE_LUN3, stderr="tgtadm: out of memory", exit_code=1)
    scripted.expect(state(3, "ready"))
    with pytest.raises(exception.TargetError, match="out of memory"):
        tgt.refresh_export(VolumeRef(VOL, 2, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_refresh_export_of_a_volume_not_exported_does_nothing(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout="")
    tgt.refresh_export(VolumeRef(VOL, 2, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_initialize_connection_before_create_export_is_a_target_error(tgt) -> None:
    with pytest.raises(exception.TargetError, match="create_export first"):
        tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV, {})


# -- tgtadm: per-export initiator ACL ----------------------------------------------------

OTHER = "iqn.2024-01.org.volmgr:other"
VOLUME = VolumeRef(VOL, 1, provider_auth=AUTH)


def file_text(conf) -> str:
    with open(target_file(conf)) as handle:
        return handle.read()


def exported_for(helper: TgtAdm, scripted: ScriptedExecutor, connector: dict[str, Any],
                 open_mode: bool = False) -> None:
    """create_export then initialize_connection(connector), tgtd starting empty."""
    expect_build(scripted)
    if open_mode:
        scripted.expect(bind_all(1))
    helper.create_export(VOLUME, DEV)
    acl = ("ALL",) if open_mode else ()
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=acl))
    if connector.get("initiator"):
        scripted.expect(bind_name(1, connector["initiator"]))
    elif not open_mode:
        scripted.expect(bind_all(1))
    helper.initialize_connection(VOLUME, DEV, connector)
    scripted.assert_done()


def test_an_export_admits_nobody_until_a_connector_says_who_may_log_in(
        acl_tgt, scripted, conf) -> None:
    expect_build(scripted)
    acl_tgt.create_export(VOLUME, DEV)
    scripted.assert_done()
    assert not [argv for argv in scripted.argvs if "ALL" in argv]
    assert not [argv for argv in scripted.argvs if "--initiator-name" in argv]
    text = file_text(conf)
    assert "initiator-address ALL" not in text
    assert f"initiator-address {NOBODY_ADDRESS}" in text, "tgt-admin binds no ALL at boot"


def test_a_connector_naming_an_initiator_admits_only_that_initiator(acl_tgt, scripted,
                                                                    conf) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    assert not [argv for argv in scripted.argvs if "ALL" in argv]
    text = file_text(conf)
    assert f"initiator-name {INITIATOR}" in text
    assert f"initiator-address {NOBODY_ADDRESS}" in text and "address ALL" not in text
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR,)))
    scripted.expect(unbind_name(1))
    acl_tgt.terminate_connection(VOLUME, {"initiator": INITIATOR})
    scripted.assert_done()
    assert INITIATOR not in file_text(conf)
    assert f"initiator-address {NOBODY_ADDRESS}" in file_text(conf)


def test_a_connector_naming_no_initiator_admits_any_initiator_with_chap(acl_tgt, scripted,
                                                                       conf) -> None:
    exported_for(acl_tgt, scripted, {"host": "compute1"})
    assert scripted.argvs[-1] == bind_all(1), "ALL is bound last, after CHAP and the LUN"
    text = file_text(conf)
    assert "initiator-address ALL" in text and NOBODY_ADDRESS not in text
    assert f"incominguser {USER} {SECRET}" in text
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=("ALL",)))
    scripted.expect(unbind_all(1))
    acl_tgt.terminate_connection(VOLUME, {"host": "compute1"})
    scripted.assert_done()
    assert f"initiator-address {NOBODY_ADDRESS}" in file_text(conf)


def test_after_tgtd_lost_it_ensure_export_rebuilds_the_restriction_acl_last(
        acl_tgt, scripted, fake_tgtd) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    fake_tgtd.accounts.clear()  # tgtd restarted: nothing is live
    expect_build(scripted)
    scripted.expect(bind_name(1))
    acl_tgt.ensure_export(VOLUME, DEV)
    scripted.assert_done()
    assert not [argv for argv in scripted.argvs if "ALL" in argv]


def test_after_tgtd_lost_it_ensure_export_rebuilds_an_any_initiator_export_as_such(
        acl_tgt, scripted, fake_tgtd) -> None:
    exported_for(acl_tgt, scripted, {})
    fake_tgtd.accounts.clear()
    expect_build(scripted)
    scripted.expect(bind_all(1))
    acl_tgt.ensure_export(VOLUME, DEV)
    scripted.assert_done()


def test_an_all_bound_by_someone_else_on_a_restricted_target_is_taken_away(
        acl_tgt, scripted) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    # e.g. restored at boot by tgt-admin from a file an older volmgr wrote
    scripted.expect(SHOW, stdout=show((4, IQN, [0, 1]), acl=("ALL",)))
    scripted.expect(bind_name(4))  # admitted first, so it never loses access
    scripted.expect(unbind_all(4))
    acl_tgt.ensure_export(VOLUME, DEV)
    scripted.assert_done()


def test_ensure_export_leaves_exactly_the_recorded_acl(acl_tgt, scripted) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(
        NOBODY_ADDRESS, "10.0.0.0/8", INITIATOR, OTHER)))
    scripted.expect([*TGTADM, "--op", "unbind", "--mode", "target", "--tid", "1", "-I",
                     "10.0.0.0/8"])
    scripted.expect(unbind_name(1, OTHER))
    acl_tgt.ensure_export(VOLUME, DEV)
    scripted.assert_done()


def test_a_second_connector_naming_no_initiator_opens_a_restricted_target_until_it_goes(
        acl_tgt, scripted, conf) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR,)))
    scripted.expect(bind_all(1))
    acl_tgt.initialize_connection(VOLUME, DEV, {})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR, "ALL")))
    scripted.expect(unbind_all(1))
    acl_tgt.terminate_connection(VOLUME, {})
    scripted.assert_done()
    assert f"initiator-name {INITIATOR}" in file_text(conf)
    assert "address ALL" not in file_text(conf)


def test_terminate_connection_tolerates_an_acl_entry_or_target_already_gone(
        acl_tgt, scripted, conf) -> None:
    exported_for(acl_tgt, scripted, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=()))
    acl_tgt.terminate_connection(VOLUME, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout="")
    acl_tgt.terminate_connection(VOLUME, {"initiator": INITIATOR})
    os.unlink(target_file(conf))
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(INITIATOR,)))
    scripted.expect(unbind_name(1), stderr="tgtadm: this access control rule does not exist",
                    exit_code=22)
    acl_tgt.terminate_connection(VOLUME, {"initiator": INITIATOR})
    scripted.assert_done()


def test_with_target_initiator_acl_off_a_named_initiator_does_not_restrict(
        tgt, scripted, conf) -> None:
    exported_for(tgt, scripted, {"initiator": INITIATOR}, open_mode=True)
    assert "initiator-address ALL" in file_text(conf)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=("ALL", INITIATOR)))
    scripted.expect(unbind_name(1))
    tgt.terminate_connection(VOLUME, {"initiator": INITIATOR})
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=("ALL",)))
    tgt.terminate_connection(VOLUME, {})
    scripted.assert_done()
    assert "initiator-address ALL" in file_text(conf), "off means never restricted"
    assert not [argv for argv in scripted.argvs if argv == unbind_all(1)]


def test_turning_target_initiator_acl_on_restricts_exports_that_named_their_initiator(
        tgt, conf, scripted, fake_tgtd) -> None:
    exported_for(tgt, scripted, {"initiator": INITIATOR}, open_mode=True)
    restricting = make_tgt(conf, scripted, fake_tgtd, acl=True)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=("ALL", INITIATOR)))
    scripted.expect(unbind_all(1))
    restricting.ensure_export(VOLUME, DEV)
    scripted.assert_done()
    assert "address ALL" not in file_text(conf)


@pytest.mark.parametrize(("address", "admits_any"), [("ALL", True), (NOBODY_ADDRESS, False)])
def test_a_target_file_from_before_per_export_acls_keeps_what_it_admitted(
        acl_tgt, scripted, conf, address, admits_any) -> None:
    os.makedirs(conf.volume.target_files_dir, exist_ok=True)
    with open(target_file(conf), "w") as handle:
        handle.write(f"<target {IQN}>\n    backing-store {DEV}\n    driver iscsi\n"
                     f"    incominguser {USER} {SECRET}\n    write-cache off\n"
                     f"    initiator-address {address}\n</target>\n")
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), acl=(address,)))
    acl_tgt.ensure_export(VOLUME, DEV)
    scripted.assert_done()
    assert ("initiator-address ALL" in file_text(conf)) is admits_any
    assert file_text(conf).startswith("# volmgr-acl: ")


# -- tgtadm: input checks and parsing --------------------------------------------------


@pytest.mark.parametrize("initiator", ["iqn.x; reboot", "-I ALL", "iqn.2020-01.a:b\nc",
                                       "../../etc", 42])
def test_connectors_with_malformed_initiators_are_refused(tgt, scripted, initiator) -> None:
    with pytest.raises(exception.InvalidInput):
        tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV,
                                  {"initiator": initiator})
    assert scripted.calls == []


def test_device_paths_with_shell_meaning_are_refused(tgt, scripted) -> None:
    for path in ("/tmp/a b", "/tmp/$(x)", "/tmp/a;b", "relative", "/tmp/../etc/x"):
        with pytest.raises(exception.InvalidConfiguration):
            tgt.create_export(VolumeRef(VOL, 1), path)
    assert scripted.calls == []


def test_list_exported_volume_ids_reads_our_targets_only(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]), (2, "iqn.2000-01.other:thing", [0]),
                                      (3, "iqn.2010-10.org.openstack:volume-bogus", [0])))
    assert tgt.list_exported_volume_ids() == {VOL}


def test_tgtadm_show_is_read_into_luns_accounts_and_acl(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((2, IQN, [0, 1]), accounts=("a1", "a2"),
                                      acl=("ALL", INITIATOR)))
    (live,) = tgt._live_targets().values()
    assert (live.tid, live.luns, live.accounts, live.acl) == (
        2, {0, 1}, {"a1", "a2"}, {"ALL", INITIATOR})


def test_default_control_port_adds_no_c_option(conf, scripted) -> None:
    helper = TgtAdm(conf, scripted)
    assert helper.tgtd.path == "/var/run/tgtd/socket.0"
    scripted.expect(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target"])
    helper.list_exported_volume_ids()


def test_chap_never_shows_its_secret_in_repr() -> None:
    assert SECRET not in repr(base.Chap.parse(AUTH))


def test_malformed_provider_auth_is_refused() -> None:
    for value in ("CHAP onlyuser", "PLAIN a b", "CHAP a b;c"):
        with pytest.raises(exception.InvalidInput):
            base.Chap.parse(value)


# -- none -----------------------------------------------------------------------------


def test_none_helper_exports_nothing_and_names_the_local_path(conf, scripted) -> None:
    helper = NoTarget(conf, scripted)
    volume = VolumeRef(VOL, 1)
    assert helper.create_export(volume, DEV)["provider_auth"] is None
    helper.ensure_export(volume, DEV)
    assert helper.initialize_connection(volume, DEV, {}) == {
        "driver_volume_type": "local",
        "data": {"device_path": DEV, "volume_id": VOL, "access_mode": "rw"}}
    helper.remove_export(volume)
    assert scripted.calls == []


# -- lioadm (rtslib-fb mocked) ----------------------------------------------------------


class _Node:
    def delete(self) -> None:
        self.deleted = True
        self.registry.remove(self)


def fake_rtslib() -> Any:
    """An in-memory stand-in for the parts of rtslib-fb the helper uses."""
    state: dict[str, list[Any]] = {"targets": [], "storage_objects": [], "saves": []}

    class RTSLibError(Exception):
        pass

    class StorageObject(_Node):
        def __init__(self, name: str, dev: str) -> None:
            self.name, self.dev, self.registry = name, dev, state["storage_objects"]
            self.registry.append(self)

    class BlockStorageObject(StorageObject):
        pass

    class FileIOStorageObject(StorageObject):
        pass

    class FabricModule:
        def __init__(self, name: str) -> None:
            self.name = name

    class Target(_Node):
        def __new__(cls, fabric: Any, wwn: str, mode: str = "any") -> Any:
            for existing in state["targets"]:
                if existing.wwn == wwn:
                    return existing
            target = super().__new__(cls)
            target.wwn, target.tpgs, target.registry = wwn, [], state["targets"]
            state["targets"].append(target)
            return target

        def __init__(self, fabric: Any, wwn: str, mode: str = "any") -> None:
            pass

    class TPG:
        def __new__(cls, target: Any, tag: int, mode: str = "any") -> Any:
            for existing in target.tpgs:
                if existing.tag == tag:
                    return existing
            tpg = super().__new__(cls)
            tpg.tag, tpg.luns, tpg.network_portals, tpg.node_acls = tag, [], [], []
            tpg.attributes, tpg.enable, tpg.history = {}, False, []
            tpg.chap_userid = tpg.chap_password = ""
            target.tpgs.append(tpg)
            return tpg

        def __init__(self, target: Any, tag: int, mode: str = "any") -> None:
            pass

        def set_attribute(self, name: str, value: str) -> None:
            self.attributes[name] = value
            self.history.append((name, value, bool(self.luns)))

        def get_attribute(self, name: str) -> str:
            return str(self.attributes.get(name, "0"))

    class LUN:
        def __init__(self, tpg: Any, lun: int, storage_object: Any) -> None:
            self.lun, self.storage_object = lun, storage_object
            tpg.luns.append(self)

    class NetworkPortal:
        def __init__(self, tpg: Any, ip: str, port: int, mode: str = "any") -> None:
            self.ip_address, self.port = ip, port
            tpg.network_portals.append(self)

    class NodeACL(_Node):
        def __new__(cls, tpg: Any, wwn: str, mode: str = "any") -> Any:
            for existing in tpg.node_acls:
                if existing.node_wwn == wwn:
                    return existing
            acl = super().__new__(cls)
            acl.node_wwn, acl.mapped_luns, acl.registry = wwn, [], tpg.node_acls
            acl.chap_userid = acl.chap_password = ""
            tpg.node_acls.append(acl)
            return acl

        def __init__(self, tpg: Any, wwn: str, mode: str = "any") -> None:
            pass

    class MappedLUN:
        def __init__(self, acl: Any, mapped_lun: int, tpg_lun: Any) -> None:
            self.mapped_lun, self.tpg_lun = mapped_lun, tpg_lun
            acl.mapped_luns.append(self)

    class RTSRoot:
        @property
        def targets(self) -> list[Any]:
            return list(state["targets"])

        @property
        def storage_objects(self) -> list[Any]:
            return list(state["storage_objects"])

        def save_to_file(self) -> None:
            state["saves"].append(len(state["targets"]))

    module = types.ModuleType("rtslib_fb")
    for value in (BlockStorageObject, FileIOStorageObject, FabricModule, Target, TPG, LUN,
                  NetworkPortal, NodeACL, MappedLUN, RTSRoot):
        setattr(module, value.__name__, value)
    module.utils = types.SimpleNamespace(RTSLibError=RTSLibError)  # type: ignore[attr-defined]
    module.state = state  # type: ignore[attr-defined]
    return module


@pytest.fixture
def rtslib(monkeypatch) -> Any:
    module = fake_rtslib()
    monkeypatch.setitem(sys.modules, "rtslib_fb", module)
    return module


@pytest.fixture
def image(tmp_path) -> str:
    path = tmp_path / f"volume-{VOL}"
    path.write_bytes(b"\0" * 4096)
    return str(path)


def lio(conf, scripted, acl: bool = True) -> LioAdm:
    conf.set_override("target_initiator_acl", acl, group="volume")
    return LioAdm(conf, scripted)


def only_tpg(rtslib: Any) -> Any:
    (target,) = rtslib.state["targets"]
    (tpg,) = target.tpgs
    return tpg


def demo_mode(tpg: Any) -> bool:
    """Whether LIO admits initiators without a node ACL (generate_node_acls)."""
    return tpg.get_attribute("generate_node_acls") == "1"


def test_lio_create_export_builds_target_lun_and_portal_and_admits_nobody_yet(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    helper.create_export(VolumeRef(VOL, 1), image)
    (target,) = rtslib.state["targets"]
    tpg = only_tpg(rtslib)
    assert target.wwn == IQN and tpg.enable is True
    assert [(lun.lun, lun.storage_object.dev) for lun in tpg.luns] == [(0, image)]
    assert type(tpg.luns[0].storage_object).__name__ == "FileIOStorageObject"
    assert [(p.ip_address, p.port) for p in tpg.network_portals] == [("127.0.0.1", 3260)]
    assert tpg.attributes["authentication"] == "1"
    assert not demo_mode(tpg) and tpg.node_acls == []
    assert ("generate_node_acls", "0", False) in tpg.history, "closed before the LUN exists"
    assert rtslib.state["saves"], "the configuration is saved so it survives a reboot"
    assert scripted.calls == []


def test_lio_a_connector_naming_an_initiator_admits_only_it_with_chap(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    info = helper.initialize_connection(volume, image, {"initiator": INITIATOR})
    assert info["data"]["target_lun"] == 0 and info["data"]["auth_username"] == USER
    tpg = only_tpg(rtslib)
    (acl,) = tpg.node_acls
    assert (acl.node_wwn, acl.chap_userid, acl.chap_password) == (INITIATOR, USER, SECRET)
    assert [m.mapped_lun for m in acl.mapped_luns] == [0]
    assert not demo_mode(tpg) and ("generate_node_acls", "1") not in [
        h[:2] for h in tpg.history], "demo mode was never on"
    helper.terminate_connection(volume, {"initiator": INITIATOR})
    assert tpg.node_acls == [] and not demo_mode(tpg)
    helper.terminate_connection(volume, {"initiator": INITIATOR})  # already gone: fine


def test_lio_a_connector_naming_no_initiator_admits_any_initiator_with_chap(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.initialize_connection(volume, image, {"host": "compute1"})
    tpg = only_tpg(rtslib)
    assert demo_mode(tpg) and tpg.node_acls == []
    assert (tpg.chap_userid, tpg.chap_password) == (USER, SECRET)
    assert tpg.attributes["authentication"] == "1"
    helper.terminate_connection(volume, {"host": "compute1"})
    assert not demo_mode(tpg)


def test_lio_with_target_initiator_acl_off_a_named_initiator_does_not_restrict(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted, acl=False)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    tpg = only_tpg(rtslib)
    assert demo_mode(tpg) and (tpg.chap_userid, tpg.chap_password) == (USER, SECRET)
    helper.initialize_connection(volume, image, {"initiator": INITIATOR})
    assert demo_mode(tpg)
    helper.terminate_connection(volume, {"initiator": INITIATOR})
    helper.terminate_connection(volume, {})
    assert demo_mode(tpg), "off means never restricted"


def test_lio_ensure_export_rebuilds_a_lost_target_with_its_recorded_restriction(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.initialize_connection(volume, image, {"initiator": INITIATOR})
    rtslib.state["targets"].clear()
    helper.ensure_export(volume, image)
    assert helper.list_exported_volume_ids() == {VOL}
    tpg = only_tpg(rtslib)
    assert [acl.node_wwn for acl in tpg.node_acls] == [INITIATOR]
    assert not demo_mode(tpg)
    record = os.path.join(conf.volume.target_files_dir, "lio-acl", f"volume-{VOL}")
    assert SECRET not in open(record).read(), "the record holds names, never the secret"
    helper.remove_export(volume)
    assert not os.path.exists(record)


def test_lio_ensure_export_rebuilds_a_lost_any_initiator_export_as_such(
        conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.initialize_connection(volume, image, {})
    rtslib.state["targets"].clear()
    helper.ensure_export(volume, image)
    assert demo_mode(only_tpg(rtslib))


def test_lio_ensure_export_removes_node_acls_nobody_asked_for(conf, scripted, rtslib,
                                                              image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.initialize_connection(volume, image, {"initiator": INITIATOR})
    rtslib.NodeACL(only_tpg(rtslib), "iqn.2024-01.org.volmgr:other")
    helper.ensure_export(volume, image)
    assert [acl.node_wwn for acl in only_tpg(rtslib).node_acls] == [INITIATOR]


def test_lio_a_target_exported_before_acl_records_keeps_what_it_admitted(
        conf, scripted, rtslib, image) -> None:
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    lio(conf, scripted, acl=False).create_export(volume, image)  # demo mode, no record
    helper = lio(conf, scripted)
    helper.ensure_export(volume, image)
    assert demo_mode(only_tpg(rtslib))


def test_lio_exports_are_idempotent(conf, scripted, rtslib, image) -> None:
    helper = lio(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.create_export(volume, image)
    assert len(rtslib.state["targets"]) == 1 and len(only_tpg(rtslib).luns) == 1


def test_lio_remove_export_deletes_target_and_backstore_and_tolerates_gone(
        conf, scripted, rtslib, image) -> None:
    helper = LioAdm(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.remove_export(volume)
    helper.remove_export(volume)
    assert rtslib.state["targets"] == [] and rtslib.state["storage_objects"] == []


def test_lio_errors_become_target_errors(conf, scripted, rtslib, image) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise rtslib.utils.RTSLibError("configfs is not mounted")
    rtslib.FabricModule = broken
    with pytest.raises(exception.TargetError, match="configfs"):
        LioAdm(conf, scripted).create_export(VolumeRef(VOL, 1), image)


def test_lio_without_rtslib_installed_is_a_clear_target_error(conf, scripted,
                                                              monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rtslib_fb", None)
    with pytest.raises(exception.TargetError, match="rtslib-fb"):
        LioAdm(conf, scripted).list_exported_volume_ids()


def test_an_export_state_names_each_kind_of_repair_it_saw() -> None:
    from volmgr.volume.targets.base import ExportState

    drifted = ExportState(frozenset({1}), frozenset(), frozenset({"ALL"}))
    fixed = ExportState(frozenset({1}), frozenset({"user"}), frozenset({"iqn.x"}))
    assert drifted.repairs(fixed) == ["chap_restored", "acl_restored"]
    assert fixed.repairs(fixed) == []
    assert ExportState(frozenset(), frozenset({"user"})).repairs(
        ExportState(frozenset({1}), frozenset({"user"}))) == ["lun_restored"]
