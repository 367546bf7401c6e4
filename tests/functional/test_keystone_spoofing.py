"""Under ``auth_strategy = keystone`` a client cannot raise its rights with identity
headers of its own.

A real ``volmgr-api`` (waitress workers under gunicorn, PostgreSQL) with
keystonemiddleware.auth_token in front validates tokens against the fake Identity
service of ``fake_keystone``. A member of project A sends, besides its valid token,
every identity header auth_token writes (``X-Roles: admin``, ``X-Project-Id`` of
project B, ``X-User-Id``, ``X-Is-Admin-Project``...): auth_token strips them and writes
the token's own, so the caller stays a member of A. The same headers without a token, or
with an invalid one, are a 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.functional.fake_keystone import FakeKeystone
from tests.functional.test_api_keystone import VOLUME_HOST, Cloud, assert_refused_by_keystone
from tests.functional.volume_daemon import wait_for
from tests.unit.api_helpers import register_host
from volmgr.db import Database

FORGED = ("X-Roles", "X-Role", "X-Project-Id", "X-Tenant-Id", "X-Tenant", "X-User-Id",
          "X-User", "X-Identity-Status", "X-Is-Admin-Project", "X-Service-Roles",
          "X-Project-Name", "X-User-Name", "X-Domain-Id")


@pytest.fixture
def keystone() -> Iterator[FakeKeystone]:
    fake = FakeKeystone().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cloud(tmp_path: Path, keystone: FakeKeystone, postgres_db: Database,
          postgres_url: str) -> Iterator[Cloud]:
    register_host(postgres_db, VOLUME_HOST)
    built = Cloud(tmp_path, keystone, postgres_db, postgres_url)

    def healthy() -> bool:
        assert built.api.alive(), f"volmgr-api exited:\n{built.api.text()}"
        try:  # a worker still importing keystonemiddleware answers late, not never
            return requests.get(f"{built.base}/healthcheck", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    try:
        wait_for(healthy, 90, "volmgr-api /healthcheck")
        yield built
    finally:
        built.api.stop()


def forged(cloud: Cloud) -> dict[str, str]:
    claims = {"X-Roles": "admin,member", "X-Role": "admin",
              "X-Project-Id": cloud.project_b, "X-Tenant-Id": cloud.project_b,
              "X-Tenant": cloud.project_b, "X-User-Id": cloud.root.id, "X-User": "root",
              "X-Identity-Status": "Confirmed", "X-Is-Admin-Project": "True",
              "X-Service-Roles": "admin,service", "X-Project-Name": "project-b",
              "X-User-Name": "root", "X-Domain-Id": "default"}
    assert set(claims) == set(FORGED)
    return claims


def test_client_identity_headers_never_raise_a_members_rights(
        cloud: Cloud, keystone: FakeKeystone) -> None:
    a, b = cloud.project_a, cloud.project_b
    bob = cloud.token(cloud.bob)
    bobs = cloud.create(bob, b, "bob-vol")
    assert bobs.status_code == 202, bobs.text
    alice = cloud.token(cloud.alice)
    claims = forged(cloud)

    # Creating: the volume is alice's, in project A, whatever the headers claim.
    made = cloud.http("POST", f"/v3/{a}/volumes", alice, headers=claims,
                      json={"volume": {"size": 1, "name": "forged"}})
    assert made.status_code == 202, made.text
    volume = made.json()["volume"]
    stored = cloud.db.volume_get(volume["id"])
    assert (stored.user_id, stored.project_id) == (cloud.alice.id, a)
    shown = cloud.http("GET", f"/v3/{a}/volumes/{volume['id']}", alice, headers=claims)
    assert shown.status_code == 200, shown.text
    assert shown.json()["volume"]["os-vol-tenant-attr:tenant_id"] == a
    # Only admins see the host attribute: alice is not one.
    assert "os-vol-host-attr:host" not in shown.json()["volume"]

    # all_tenants is an admin's view: with forged admin roles alice still sees only A.
    for path in (f"/v3/{a}/volumes/detail?all_tenants=1",
                 f"/v1.1/{a}/os-volumes/detail?all_tenants=1"):
        listed = cloud.http("GET", path, alice, headers=claims)
        assert listed.status_code == 200, listed.text
        ids = {item["id"] for item in listed.json()["volumes"]}
        assert bobs.json()["volume"]["id"] not in ids and volume["id"] in ids, path

    # Project B stays out of reach, by URL and by id.
    for path in (f"/v3/{b}/volumes", f"/v3/{a}/volumes/{bobs.json()['volume']['id']}",
                 f"/v1.1/{b}/os-volumes"):
        assert cloud.http("GET", path, alice, headers=claims).status_code == 404, path

    # Without a valid token the forged headers authenticate nobody.
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{b}/volumes", headers=claims),
                               keystone)
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{b}/volumes", "gAAAAAforged",
                                          headers=claims), keystone)

    # The real admin's token does see every project: the check above is not vacuous.
    root = cloud.token(cloud.root)
    everyone = cloud.http("GET", f"/v3/{a}/volumes/detail?all_tenants=1", root)
    assert bobs.json()["volume"]["id"] in {item["id"] for item in everyone.json()["volumes"]}
