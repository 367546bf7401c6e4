"""The data layer of volume types, as volume create and attach use it: resolving a type
(default, by id, by name, private), multiattach and front-end QoS."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from volmgr import exception
from volmgr.db import Database, types


def test_a_migrated_database_has_the_default_type(db: Database) -> None:
    default = db.volume_type_resolve(None, project_id="p1", is_admin=False)
    assert default.name == "__DEFAULT__"
    assert default.is_public
    assert db.volume_type_get(default.id).name == "__DEFAULT__"


def test_the_configured_default_type_is_used(conf: cfg.ConfigOpts) -> None:
    from volmgr.db import migration

    conf.set_override("default_volume_type", "gold")
    database = Database.from_conf(conf)
    migration.upgrade(database.engine)
    try:
        with pytest.raises(exception.VolumeTypeNotFound, match="gold"):
            database.volume_type_resolve(None, project_id="p1", is_admin=False)
        gold = database.volume_type_create("gold")
        assert database.volume_type_resolve(None, project_id="p1", is_admin=False).id == gold.id
    finally:
        database.dispose()


def test_a_type_is_found_by_id_or_by_name(db: Database) -> None:
    gold = db.volume_type_create("gold", description="fast")
    assert db.volume_type_resolve(gold.id, project_id="p1", is_admin=False).id == gold.id
    assert db.volume_type_resolve("gold", project_id="p1", is_admin=False).id == gold.id
    for unknown in ("silver", "7f0c6f53-0000-4000-8000-000000000009"):
        with pytest.raises(exception.VolumeTypeNotFound):
            db.volume_type_resolve(unknown, project_id="p1", is_admin=False)


def test_a_private_type_is_found_only_by_projects_with_access_and_admins(
        db: Database) -> None:
    private = db.volume_type_create("private", is_public=False)
    for name_or_id in (private.id, "private"):
        with pytest.raises(exception.VolumeTypeNotFound):
            db.volume_type_resolve(name_or_id, project_id="p1", is_admin=False)
        assert db.volume_type_resolve(name_or_id, project_id="p9", is_admin=True).id \
            == private.id
    db.volume_type_access_add(private.id, "p1")
    assert db.volume_type_resolve("private", project_id="p1", is_admin=False).id == private.id
    with pytest.raises(exception.VolumeTypeNotFound):
        db.volume_type_resolve("private", project_id="p2", is_admin=False)


def test_a_deleted_type_is_gone(db: Database) -> None:
    old = db.volume_type_create("old")
    db.volume_type_delete(old.id)
    with pytest.raises(exception.VolumeTypeNotFound):
        db.volume_type_get(old.id)
    with pytest.raises(exception.VolumeTypeNotFound):
        db.volume_type_resolve("old", project_id="p1", is_admin=True)


@pytest.mark.parametrize(("value", "expected"), [
    ("<is> True", True), ("<is>  true", True), ("True", True), ("<is> False", False),
    ("False", False), (None, False), ("yes", False)])
def test_multiattach_comes_from_the_extra_spec(db: Database, value: str | None,
                                               expected: bool) -> None:
    specs = {} if value is None else {"multiattach": value}
    volume_type = db.volume_type_create("t", extra_specs=specs)
    assert types.is_multiattach(volume_type) is expected
    assert types.is_multiattach(db.volume_type_get(volume_type.id)) is expected


def test_qos_specs_reach_the_connection_only_for_front_end_consumers(db: Database) -> None:
    volume_type = db.volume_type_create("limited")
    assert types.qos_specs_for(db.volume_type_get(volume_type.id)) is None
    front = db.qos_specs_create("front", consumer="front-end",
                                specs={"total_iops_sec": "500"})
    db.qos_specs_associate(front.id, volume_type.id)
    loaded = db.volume_type_resolve("limited", project_id="p1", is_admin=False)
    assert types.qos_specs_for(loaded) == {"total_iops_sec": "500"}
    db.qos_specs_set(front.id, consumer="both", specs={"read_bytes_sec": "1000"})
    assert types.qos_specs_for(db.volume_type_get(volume_type.id)) == {
        "total_iops_sec": "500", "read_bytes_sec": "1000"}
    db.qos_specs_set(front.id, consumer="back-end")
    assert types.qos_specs_for(db.volume_type_get(volume_type.id)) is None
    db.qos_specs_disassociate(front.id, volume_type.id)
    assert db.volume_type_get(volume_type.id).qos_specs_id is None


def test_a_type_in_use_cannot_be_deleted_or_changed(db: Database) -> None:
    gold = db.volume_type_create("gold")
    db.volume_create(project_id="p1", user_id="u1", size=1, display_name="v",
                     display_description=None, volume_type="gold", volume_type_id=gold.id)
    with pytest.raises(exception.VolumeTypeInUse):
        db.volume_type_delete(gold.id)
    with pytest.raises(exception.VolumeTypeInUse):
        db.volume_type_extra_specs_set(gold.id, {"a": "b"})
    with pytest.raises(exception.VolumeTypeInUse):
        db.encryption_create(gold.id, {"provider": "luks"})


def test_the_default_type_cannot_be_deleted(db: Database) -> None:
    default = db.volume_type_default()
    with pytest.raises(exception.InvalidVolumeType):
        db.volume_type_delete(default.id)


def test_encrypted_types_are_known_for_volume_views(db: Database) -> None:
    plain = db.volume_type_create("plain")
    secret = db.volume_type_create("secret")
    assert db.volume_types_encrypted([plain.id, secret.id, None]) == set()
    db.encryption_create(secret.id, {"provider": "luks", "control_location": "front-end"})
    assert db.volume_types_encrypted([plain.id, secret.id, None]) == {secret.id}
    db.encryption_delete(secret.id)
    assert db.volume_types_encrypted([secret.id]) == set()


def test_an_in_use_volume_keeps_its_front_end_qos_across_a_retype(db: Database) -> None:
    old = db.volume_type_create("old")
    new = db.volume_type_create("new")
    qos = db.qos_specs_create("q", consumer="front-end", specs={"total_iops_sec": "9"})
    db.qos_specs_associate(qos.id, new.id)
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, volume_type="old",
                              volume_type_id=old.id)
    assert db.volume_transition(volume.id, ("creating",), {"status": "in-use"})
    with pytest.raises(exception.InvalidVolume, match="QoS"):
        db.volume_retype(volume.id, new.id, project_id="p1")
    assert db.volume_transition(volume.id, ("in-use",), {"status": "available"})
    retyped = db.volume_retype(volume.id, new.id, project_id="p1")
    assert (retyped.volume_type, retyped.volume_type_id) == ("new", new.id)
    with pytest.raises(exception.VolumeNotFound):
        db.volume_retype(volume.id, old.id, project_id="p2")
