"""The real ``openstack`` client (python-openstackclient) against volmgr, as an operator
and two tenants would use it.

The cloud is the one ``tox -e tempest`` brings up (``tools/tempest/cloud.py``): Keystone
30 from PyPI on PostgreSQL, ``volmgr-api`` with ``auth_strategy = keystone`` and one
``volmgr-volume`` (file driver) on RabbitMQ and PostgreSQL. The client finds volmgr in
Keystone's catalog and logs in with passwords, so roles come only from Keystone: the
admin manages volume types and quotas and lists services; ``alice`` (project alpha) and
``bob`` (project beta) are members. The Keystone virtualenv is built once under
``<this venv>/helpers/keystone`` (VOLMGR_TEMPEST_VENVS overrides the place).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.functional.volume_daemon import wait_for
from tools.tempest.cloud import Cloud

BIN = Path(sys.executable).parent


class User:
    def __init__(self, name: str, password: str, project: str) -> None:
        self.name, self.password, self.project = name, password, project


class OpenStackCLI:
    """The cloud and the ``openstack`` command as each of its users."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.admin = User("admin", cloud.admin_password, "admin")
        self.alice = User("alice", f"pw-{uuid.uuid4().hex}", "alpha")
        self.bob = User("bob", f"pw-{uuid.uuid4().hex}", "beta")
        self.project_ids = {"admin": ""}
        for user in (self.alice, self.bob):
            made = cloud.add_user(user.name, user.password, user.project)
            self.project_ids[user.project] = made["project_id"]

    def run(self, user: User, *args: str) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
        env.update({
            "OS_AUTH_URL": f"{self.cloud.keystone_url}/v3", "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": user.name, "OS_PASSWORD": user.password,
            "OS_PROJECT_NAME": user.project, "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne",
            "OS_INTERFACE": "public"})
        return subprocess.run([str(BIN / "openstack"), *args], capture_output=True,
                              text=True, timeout=120, check=False, env=env)

    def ok(self, user: User, *args: str) -> Any:
        """Run a command that must succeed; its ``-f json`` output parsed (or None)."""
        wants_json = args[-2:] != ("-f", "value") and not any(
            a in ("set", "unset", "delete") for a in args[:3])
        argv = [*args, "-f", "json"] if wants_json else list(args)
        done = self.run(user, *argv)
        assert done.returncode == 0, (
            f"openstack {' '.join(argv)} as {user.name} exited {done.returncode}:\n"
            f"{done.stderr}{done.stdout}")
        return json.loads(done.stdout) if wants_json and done.stdout.strip() else None

    def volume(self, user: User, name_or_id: str) -> dict[str, Any]:
        return self.ok(user, "volume", "show", name_or_id)

    def wait_available(self, user: User, volume_id: str) -> dict[str, Any]:
        def available() -> dict[str, Any] | None:
            volume = self.volume(user, volume_id)
            assert not volume["status"].startswith("error"), volume
            return volume if volume["status"] == "available" else None
        return wait_for(available, 60, f"volume {volume_id} available", interval=0.5)

    def new_volume(self, user: User, *options: str) -> dict[str, Any]:
        name = f"cli-{uuid.uuid4().hex[:8]}"
        created = self.ok(user, "volume", "create", "--size", "1", *options, name)
        assert created["name"] == name
        return self.wait_available(user, created["id"])


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenStackCLI]:
    services.require_port("PostgreSQL", "127.0.0.1", 5432)
    services.require_port("RabbitMQ", "127.0.0.1", 5672)
    venvs = Path(os.environ.get("VOLMGR_TEMPEST_VENVS", Path(sys.prefix) / "helpers"))
    cloud = Cloud(tmp_path_factory.mktemp("osc-cloud"), venvs, tempest=False)
    try:
        cloud.start()
        yield OpenStackCLI(cloud)
    finally:
        cloud.stop()


def test_volume_type_create_and_list(cli: OpenStackCLI) -> None:
    name = f"gold-{uuid.uuid4().hex[:6]}"
    created = cli.ok(cli.admin, "volume", "type", "create", "--description", "fast disks",
                     "--property", "volume_backend_name=file", name)
    assert created["name"] == name
    assert created["description"] == "fast disks"
    listed = {t["Name"]: t for t in cli.ok(cli.admin, "volume", "type", "list", "--long")}
    assert name in listed
    assert listed[name]["Is Public"] is True
    shown = cli.ok(cli.admin, "volume", "type", "show", name)
    assert shown["id"] == created["id"]
    assert shown["properties"] == {"volume_backend_name": "file"}
    # A member sees the public type but may not make one.
    assert name in {t["Name"] for t in cli.ok(cli.alice, "volume", "type", "list")}
    refused = cli.run(cli.alice, "volume", "type", "create", f"mine-{uuid.uuid4().hex[:6]}")
    assert refused.returncode != 0
    assert "403" in refused.stderr or "Forbidden" in refused.stderr, refused.stderr


def test_volume_create_with_a_type(cli: OpenStackCLI) -> None:
    name = f"silver-{uuid.uuid4().hex[:6]}"
    cli.ok(cli.admin, "volume", "type", "create", name)
    volume = cli.new_volume(cli.alice, "--type", name)
    assert volume["type"] == name
    assert volume["size"] == 1
    unknown = cli.run(cli.alice, "volume", "create", "--size", "1", "--type",
                      f"no-such-{uuid.uuid4().hex[:6]}", "never-made")
    assert unknown.returncode != 0, unknown.stdout


def test_volume_properties_set_and_unset(cli: OpenStackCLI) -> None:
    volume = cli.new_volume(cli.alice)
    cli.ok(cli.alice, "volume", "set", "--property", "tier=fast", "--property", "owner=ops",
           volume["id"])
    assert cli.volume(cli.alice, volume["id"])["properties"] == {"tier": "fast",
                                                                 "owner": "ops"}
    cli.ok(cli.alice, "volume", "unset", "--property", "owner", volume["id"])
    assert cli.volume(cli.alice, volume["id"])["properties"] == {"tier": "fast"}


def test_volume_set_name(cli: OpenStackCLI) -> None:
    volume = cli.new_volume(cli.alice)
    renamed = f"renamed-{uuid.uuid4().hex[:6]}"
    cli.ok(cli.alice, "volume", "set", "--name", renamed, "--description", "now named",
           volume["id"])
    shown = cli.volume(cli.alice, renamed)
    assert shown["id"] == volume["id"]
    assert shown["name"] == renamed
    assert shown["description"] == "now named"


def test_quota_show_and_set(cli: OpenStackCLI) -> None:
    beta = cli.project_ids["beta"]
    before = {q["Resource"]: q["Limit"]
              for q in cli.ok(cli.admin, "quota", "show", "--volume", beta)}
    assert before["volumes"] >= 1 and before["gigabytes"] >= 1, before
    cli.ok(cli.admin, "quota", "set", "--volumes", "7", "--gigabytes", "70", beta)
    after = {q["Resource"]: q["Limit"]
             for q in cli.ok(cli.admin, "quota", "show", "--volume", beta)}
    assert after["volumes"] == 7 and after["gigabytes"] == 70, after
    # The project's member reads its own quota; setting it is the admin's.
    own = {q["Resource"]: q["Limit"] for q in cli.ok(cli.bob, "quota", "show", "--volume")}
    assert own["volumes"] == 7
    refused = cli.run(cli.bob, "quota", "set", "--volumes", "100", beta)
    assert refused.returncode != 0


def test_availability_zone_list_volume(cli: OpenStackCLI) -> None:
    zones = cli.ok(cli.alice, "availability", "zone", "list", "--volume")
    assert {"Zone Name": "nova", "Zone Status": "available"} in zones, zones


def test_volume_service_list(cli: OpenStackCLI) -> None:
    listed = cli.ok(cli.admin, "volume", "service", "list")
    mine = [s for s in listed if s["Host"].split("@")[0] == cli.cloud.host]
    assert mine, listed
    assert mine[0]["Status"] == "enabled"
    assert mine[0]["State"] == "up"
    assert mine[0]["Zone"] == "nova"


def test_volume_transfer_request_create_and_accept(cli: OpenStackCLI) -> None:
    volume = cli.new_volume(cli.alice)
    request = cli.ok(cli.alice, "volume", "transfer", "request", "create", "--name",
                     "to-beta", volume["id"])
    assert request["volume_id"] == volume["id"]
    assert request["auth_key"]
    listed = cli.ok(cli.alice, "volume", "transfer", "request", "list")
    assert request["id"] in {t["ID"] for t in listed}
    wrong = cli.run(cli.bob, "volume", "transfer", "request", "accept", "--auth-key",
                    "not-the-key", request["id"])
    assert wrong.returncode != 0
    accepted = cli.ok(cli.bob, "volume", "transfer", "request", "accept", "--auth-key",
                      request["auth_key"], request["id"])
    assert accepted["volume_id"] == volume["id"]
    assert cli.volume(cli.bob, volume["id"])["status"] == "available"
    gone = cli.run(cli.alice, "volume", "show", volume["id"])
    assert gone.returncode != 0, "alpha still sees the volume it gave away"
