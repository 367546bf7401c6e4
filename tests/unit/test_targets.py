"""Target helpers: tgtadm (scripted commands, real target files), lioadm (rtslib mocked,
since this kernel has no LIO) and none."""

from __future__ import annotations

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
from volmgr.volume.targets.tgt import TgtAdm

VOL = "0b5c9b3e-7a35-4a3e-9a73-2d3e8f6f0a01"
IQN = f"iqn.2010-10.org.openstack:volume-{VOL}"
DEV = "/dev/vg1/volume-" + VOL
INITIATOR = "iqn.1994-05.com.redhat:client1"
AUTH = "CHAP user0123456789abcdef Secret0123456789"
TGTADM = ["tgtadm", "-C", "4242", "--lld", "iscsi"]
SHOW = [*TGTADM, "--op", "show", "--mode", "target"]


def show(*targets: tuple[int, str, list[int]]) -> str:
    lines = []
    for tid, iqn, luns in targets:
        lines += [f"Target {tid}: {iqn}", "    System information:", "        Driver: iscsi",
                  "    LUN information:"]
        for lun in luns:
            lines += [f"        LUN: {lun}", "            Type: disk"]
        lines += ["    Account information:", "    ACL information:", "        ALL"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def scripted() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
def tgt(conf, scripted) -> TgtAdm:
    conf.set_override("tgt_control_port", 4242, group="volume")
    conf.set_override("target_port", 3261, group="volume")
    return TgtAdm(conf, scripted)


def target_file(conf) -> str:
    return os.path.join(conf.volume.target_files_dir, f"volume-{VOL}")


# -- tgtadm ---------------------------------------------------------------------------


def test_create_export_writes_a_private_target_file_and_runs_tgt_admin(tgt, scripted,
                                                                       conf) -> None:
    scripted.expect(SHOW, stdout="")
    scripted.expect(["tgt-admin", "-C", "4242", "--conf", target_file(conf), "--update", IQN])
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    update = tgt.create_export(VolumeRef(VOL, 1), DEV)
    scripted.assert_done()
    kind, user, secret = update["provider_auth"].split()
    assert kind == "CHAP" and len(user) == 20 and len(secret) == 16
    assert update["provider_location"] == f"127.0.0.1:3261,1 {IQN} 1"
    text = open(target_file(conf)).read()
    assert f"<target {IQN}>" in text and f"backing-store {DEV}" in text
    assert f"incominguser {user} {secret}" in text and "initiator-address ALL" in text
    assert stat.S_IMODE(os.stat(target_file(conf)).st_mode) == 0o600
    assert all(secret not in arg for argv in scripted.argvs for arg in argv)


def test_every_volume_gets_its_own_random_chap_credentials(tgt, scripted) -> None:
    credentials = set()
    for _ in range(2):
        scripted.expect(SHOW).expect(None).expect(SHOW, stdout=show((1, IQN, [0, 1])))
        credentials.add(tgt.create_export(VolumeRef(VOL, 1), DEV)["provider_auth"])
        os.unlink(tgt._file_path(VOL))
    assert len(credentials) == 2


def test_create_export_reuses_the_stored_chap_and_skips_a_live_target(tgt, scripted) -> None:
    scripted.expect(SHOW, stdout=show((3, IQN, [0, 1])))
    update = tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert update["provider_auth"] == AUTH
    scripted.assert_done()


def test_a_target_left_without_its_lun_is_rebuilt(tgt, scripted, conf) -> None:
    scripted.expect(SHOW, stdout=show((3, IQN, [0])))
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "3", "--force"])
    scripted.expect(["tgt-admin", "-C", "4242", "--conf", target_file(conf), "--update", IQN])
    scripted.expect(SHOW, stdout=show((4, IQN, [0, 1])))
    tgt.ensure_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.assert_done()


def test_a_failed_tgt_admin_is_a_target_error_without_the_secret(tgt, scripted) -> None:
    scripted.expect(SHOW).expect(None, stdout="tgtadm --password=Secret0123456789 failed")
    scripted.expect(SHOW, stdout=show((1, IQN, [0])))
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "1", "--force"])
    with pytest.raises(exception.TargetError) as caught:
        tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert "Secret0123456789" not in str(caught.value)
    scripted.assert_done()


def test_ensure_export_recreates_a_missing_target_from_the_stored_credentials(
        tgt, scripted, conf) -> None:
    scripted.expect(SHOW).expect(None).expect(SHOW, stdout=show((1, IQN, [0, 1])))
    tgt.ensure_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert "incominguser user0123456789abcdef Secret0123456789" in open(target_file(conf)).read()


def test_ensure_export_of_a_volume_never_exported_is_a_target_error(tgt, scripted) -> None:
    with pytest.raises(exception.TargetError, match="never exported"):
        tgt.ensure_export(VolumeRef(VOL, 1), DEV)


def test_remove_export_deletes_target_account_and_file(tgt, scripted, conf) -> None:
    scripted.expect(SHOW).expect(None).expect(SHOW, stdout=show((1, IQN, [0, 1])))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "target", "--tid", "1", "--force"])
    scripted.expect([*TGTADM, "--op", "delete", "--mode", "account", "--user",
                     "user0123456789abcdef"])
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
    scripted.expect(SHOW).expect(None).expect(SHOW, stdout=show((1, IQN, [0, 1])))
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    info = tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV,
                                     {"initiator": INITIATOR})
    assert info == {"driver_volume_type": "iscsi", "data": {
        "target_iqn": IQN, "target_portal": "127.0.0.1:3261", "target_lun": 1,
        "target_discovered": False, "auth_method": "CHAP",
        "auth_username": "user0123456789abcdef", "auth_password": "Secret0123456789",
        "volume_id": VOL, "access_mode": "rw"}}


def test_initialize_connection_before_create_export_is_a_target_error(tgt) -> None:
    with pytest.raises(exception.TargetError, match="create_export first"):
        tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV, {})


def test_with_initiator_acl_only_the_connector_is_bound_and_persisted(conf, scripted) -> None:
    conf.set_override("target_initiator_acl", True, group="volume")
    conf.set_override("tgt_control_port", 4242, group="volume")
    tgt = TgtAdm(conf, scripted)
    scripted.expect(SHOW).expect(None).expect(SHOW, stdout=show((1, IQN, [0, 1])))
    # tgt-admin binds ALL to a target without initiator-address; the helper takes it away.
    scripted.expect([*TGTADM, "--op", "unbind", "--mode", "target", "--tid", "1", "-I", "ALL"])
    tgt.create_export(VolumeRef(VOL, 1, provider_auth=AUTH), DEV)
    assert "initiator-address" not in open(target_file(conf)).read()
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1]))).expect(SHOW, stdout=show((1, IQN,
                                                                                 [0, 1])))
    scripted.expect([*TGTADM, "--op", "bind", "--mode", "target", "--tid", "1",
                     "--initiator-name", INITIATOR])
    tgt.initialize_connection(VolumeRef(VOL, 1, provider_auth=AUTH), DEV,
                              {"initiator": INITIATOR})
    assert f"initiator-name {INITIATOR}" in open(target_file(conf)).read()
    scripted.expect(SHOW, stdout=show((1, IQN, [0, 1])))
    scripted.expect([*TGTADM, "--op", "unbind", "--mode", "target", "--tid", "1",
                     "--initiator-name", INITIATOR])
    tgt.terminate_connection(VolumeRef(VOL, 1, provider_auth=AUTH), {"initiator": INITIATOR})
    assert INITIATOR not in open(target_file(conf)).read()
    scripted.assert_done()


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


def test_default_control_port_adds_no_c_option(conf, scripted) -> None:
    helper = TgtAdm(conf, scripted)
    scripted.expect(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target"])
    helper.list_exported_volume_ids()


def test_chap_never_shows_its_secret_in_repr() -> None:
    assert "Secret0123456789" not in repr(base.Chap.parse(AUTH))


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
            tpg.attributes, tpg.enable = {}, False
            tpg.chap_userid = tpg.chap_password = ""
            target.tpgs.append(tpg)
            return tpg

        def __init__(self, target: Any, tag: int, mode: str = "any") -> None:
            pass

        def set_attribute(self, name: str, value: str) -> None:
            self.attributes[name] = value

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


def test_lio_create_export_builds_target_lun_portal_and_chap(conf, scripted, rtslib,
                                                             image) -> None:
    helper = LioAdm(conf, scripted)
    update = helper.create_export(VolumeRef(VOL, 1), image)
    _, user, secret = update["provider_auth"].split()
    (target,) = rtslib.state["targets"]
    (tpg,) = target.tpgs
    assert target.wwn == IQN and tpg.enable is True
    assert [(lun.lun, lun.storage_object.dev) for lun in tpg.luns] == [(0, image)]
    assert type(tpg.luns[0].storage_object).__name__ == "FileIOStorageObject"
    assert [(p.ip_address, p.port) for p in tpg.network_portals] == [("127.0.0.1", 3260)]
    assert tpg.attributes["authentication"] == "1"
    assert (tpg.chap_userid, tpg.chap_password) == (user, secret)
    assert rtslib.state["saves"], "the configuration is saved so it survives a reboot"
    assert scripted.calls == []


def test_lio_exports_are_idempotent_and_ensure_export_rebuilds_a_lost_target(
        conf, scripted, rtslib, image) -> None:
    helper = LioAdm(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.create_export(volume, image)
    assert len(rtslib.state["targets"]) == 1 and len(rtslib.state["targets"][0].tpgs[0].luns) == 1
    rtslib.state["targets"].clear()
    helper.ensure_export(volume, image)
    assert helper.list_exported_volume_ids() == {VOL}


def test_lio_remove_export_deletes_target_and_backstore_and_tolerates_gone(
        conf, scripted, rtslib, image) -> None:
    helper = LioAdm(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    helper.remove_export(volume)
    helper.remove_export(volume)
    assert rtslib.state["targets"] == [] and rtslib.state["storage_objects"] == []


def test_lio_initiator_acl_maps_the_lun_with_chap_for_that_initiator(conf, scripted, rtslib,
                                                                    image) -> None:
    conf.set_override("target_initiator_acl", True, group="volume")
    helper = LioAdm(conf, scripted)
    volume = VolumeRef(VOL, 1, provider_auth=AUTH)
    helper.create_export(volume, image)
    info = helper.initialize_connection(volume, image, {"initiator": INITIATOR})
    assert info["data"]["target_lun"] == 0 and info["data"]["auth_username"] == \
        "user0123456789abcdef"
    (acl,) = rtslib.state["targets"][0].tpgs[0].node_acls
    assert (acl.node_wwn, acl.chap_userid, acl.chap_password) == (
        INITIATOR, "user0123456789abcdef", "Secret0123456789")
    assert [m.mapped_lun for m in acl.mapped_luns] == [0]
    assert rtslib.state["targets"][0].tpgs[0].attributes.get("generate_node_acls") is None
    helper.terminate_connection(volume, {"initiator": INITIATOR})
    assert rtslib.state["targets"][0].tpgs[0].node_acls == []


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
