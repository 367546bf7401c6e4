"""Volume types as an operator manages them with the real ``openstack`` client: private
types shared with one project, type properties, encryption records and QoS specs.

The cloud (Keystone, volmgr-api under keystone, volmgr-volume) is the one of
tests/functional/test_openstack_cli.py.
"""

from __future__ import annotations

import uuid

from tests.functional.test_openstack_cli import OpenStackCLI, cli  # noqa: F401 - fixture


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _plain(cli: OpenStackCLI, *args: str) -> None:  # noqa: F811
    """An admin command that prints nothing (and takes no ``-f``)."""
    done = cli.run(cli.admin, *args)
    assert done.returncode == 0, f"openstack {' '.join(args)}: {done.stderr}{done.stdout}"


def test_a_private_type_is_shared_with_one_project(cli: OpenStackCLI) -> None:  # noqa: F811
    name = _name("private")
    created = cli.ok(cli.admin, "volume", "type", "create", "--private", "--project",
                     cli.project_ids["alpha"], name)
    assert created["is_public"] is False
    assert name in {t["Name"] for t in cli.ok(cli.alice, "volume", "type", "list")}
    assert name not in {t["Name"] for t in cli.ok(cli.bob, "volume", "type", "list")}
    volume = cli.new_volume(cli.alice, "--type", name)
    assert volume["type"] == name
    refused = cli.run(cli.bob, "volume", "create", "--size", "1", "--type", created["id"],
                      "never-made")
    assert refused.returncode != 0, refused.stdout
    shown = cli.ok(cli.admin, "volume", "type", "show", name)
    assert cli.project_ids["alpha"] in str(shown["access_project_ids"])


def test_type_properties_are_set_and_unset(cli: OpenStackCLI) -> None:  # noqa: F811
    name = _name("props")
    cli.ok(cli.admin, "volume", "type", "create", name)
    cli.ok(cli.admin, "volume", "type", "set", "--property", "tier=gold", "--property",
           "multiattach=<is> False", name)
    assert cli.ok(cli.admin, "volume", "type", "show", name)["properties"] == {
        "tier": "gold", "multiattach": "<is> False"}
    cli.ok(cli.admin, "volume", "type", "unset", "--property", "tier", name)
    assert cli.ok(cli.admin, "volume", "type", "show", name)["properties"] == {
        "multiattach": "<is> False"}
    renamed = _name("renamed")
    cli.ok(cli.admin, "volume", "type", "set", "--name", renamed, "--description", "d",
           name)
    assert cli.ok(cli.admin, "volume", "type", "show", renamed)["description"] == "d"
    cli.ok(cli.admin, "volume", "type", "delete", renamed)
    assert renamed not in {t["Name"] for t in cli.ok(cli.admin, "volume", "type", "list")}


def test_an_encrypted_type_records_its_encryption(cli: OpenStackCLI) -> None:  # noqa: F811
    name = _name("encrypted")
    cli.ok(cli.admin, "volume", "type", "create", "--encryption-provider", "luks",
           "--encryption-cipher", "aes-xts-plain64", "--encryption-key-size", "256",
           "--encryption-control-location", "front-end", name)
    shown = cli.ok(cli.admin, "volume", "type", "show", "--encryption-type", name)
    encryption = shown["encryption"]
    assert encryption["provider"] == "luks"
    assert encryption["cipher"] == "aes-xts-plain64"
    assert encryption["key_size"] == 256
    assert encryption["control_location"] == "front-end"


def test_qos_specs_are_associated_with_a_type(cli: OpenStackCLI) -> None:  # noqa: F811
    type_name, qos_name = _name("limited"), _name("qos")
    volume_type = cli.ok(cli.admin, "volume", "type", "create", type_name)
    qos = cli.ok(cli.admin, "volume", "qos", "create", "--consumer", "front-end",
                 "--property", "read_iops_sec=100", qos_name)
    assert qos["consumer"] == "front-end"
    _plain(cli, "volume", "qos", "associate", qos_name, type_name)
    shown = cli.ok(cli.admin, "volume", "qos", "show", qos_name)
    assert type_name in str(shown.get("associations"))
    assert shown["properties"] == {"read_iops_sec": "100"}
    _plain(cli, "volume", "qos", "disassociate", "--volume-type", volume_type["id"],
           qos_name)
    assert type_name not in str(cli.ok(cli.admin, "volume", "qos", "show",
                                       qos_name).get("associations"))
    cli.ok(cli.admin, "volume", "qos", "delete", qos_name)
    assert qos_name not in {q["Name"] for q in cli.ok(cli.admin, "volume", "qos", "list")}
    refused = cli.run(cli.alice, "volume", "qos", "list")
    assert refused.returncode != 0
