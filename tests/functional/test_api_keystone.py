"""volmgr-api with ``auth_strategy = keystone``: a real ``volmgr-api`` process (gunicorn,
2 workers) over a scratch PostgreSQL database, keystonemiddleware.auth_token in front,
validating tokens against the fake Identity v3 service of ``fake_keystone``.

The caller's project and roles come only from the validated token: a URL naming another
project is refused, identity headers a client sends are ignored, only an admin-role token
lists all projects, and an unknown, revoked or missing token is refused with 401 and a
WWW-Authenticate header naming Keystone. The ``[keystone_authtoken]`` options are read
from volmgr's own config file (the fake sees the configured service user, and a disabled
token cache means a revoked token is refused at once). The service password never
reaches the log, even at debug level. No volume manager runs: creates are cast over
fake:// and stay ``creating``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.fake_keystone import FakeKeystone, User
from tests.functional.test_api_clients import BIN, Process, free_port, wait_for, write_config
from tests.unit.api_helpers import register_host
from volmgr.db import Database

VOLUME_HOST = "fks-volume-node"


class Cloud:
    """The fake Keystone with its users, and the volmgr-api process behind it."""

    def __init__(self, tmp: Path, keystone: FakeKeystone, db: Database, db_url: str) -> None:
        self.tmp, self.keystone, self.db = tmp, keystone, db
        self.service_password = f"svc-pw-{uuid.uuid4().hex}"
        service_project = keystone.add_project("service")
        self.project_a = keystone.add_project("project-a")
        self.project_b = keystone.add_project("project-b")
        keystone.add_user("volmgr", self.service_password, service_project, ("service",))
        self.alice = keystone.add_user("alice", "alice-pw", self.project_a, ("member",))
        self.bob = keystone.add_user("bob", "bob-pw", self.project_b, ("member",))
        self.root = keystone.add_user("root", "root-pw", self.project_a, ("admin", "member"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = write_config(tmp / "api.conf", {
            "DEFAULT": {"host": f"fks-api-{self.port}", "transport_url": "fake://",
                        "state_path": tmp / "state", "auth_strategy": "keystone",
                        "debug": True},
            "database": {"connection": db_url},
            "api": {"bind_host": "127.0.0.1", "bind_port": self.port, "workers": 2},
            "keystone_authtoken": {
                "www_authenticate_uri": f"{keystone.url}/v3",
                "auth_url": keystone.url, "auth_type": "password",
                "username": "volmgr", "password": self.service_password,
                "project_name": "service", "user_domain_name": "Default",
                "project_domain_name": "Default",
                # Off, so a revoked token is refused at once (and the option is seen
                # to come from this file: every request is validated with the fake).
                "token_cache_time": -1},
        })
        self.api = Process("volmgr-api", config, tmp / "api.log")

    def wait_ready(self) -> None:
        def healthy() -> bool:
            assert self.api.alive(), f"volmgr-api exited:\n{self.api.text()}"
            try:
                return requests.get(f"{self.base}/healthcheck", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or still booting
                return False
        wait_for(healthy, 60, "volmgr-api /healthcheck")

    def token(self, user: User, label: str | None = None, **kwargs: Any) -> str:
        return self.keystone.issue(user, label or user.name, **kwargs)

    def http(self, method: str, path: str, token: str | None = None,
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Auth-Token"] = token
        return requests.request(method, f"{self.base}{path}", headers=sent, timeout=30,
                                **kwargs)

    def create(self, token: str, project: str, name: str) -> requests.Response:
        return self.http("POST", f"/v3/{project}/volumes", token,
                         json={"volume": {"size": 1, "name": name}})

    def listed(self, token: str, path: str) -> set[str]:
        answer = self.http("GET", path, token)
        assert answer.status_code == 200, answer.text
        return {volume["id"] for volume in answer.json()["volumes"]}

    def cinder(self, token: str, project: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The cinder CLI with keystoneauth's admin_token plugin. cinderclient 9.10 only
        registers its own options, so the plugin's ``token`` comes from OS_TOKEN (which
        also keeps it off argv) and ``endpoint`` from --os-endpoint; it still insists
        on a project id, which the endpoint already names."""
        argv = [str(BIN / "cinder"), "--os-auth-type", "admin_token",
                "--os-endpoint", f"{self.base}/v3/{project}", "--os-project-id", project,
                *args]
        env = {**os.environ, "OS_TOKEN": token}
        for name in ("OS_AUTH_TYPE", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD"):
            env.pop(name, None)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              env=env)


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
    try:
        built.wait_ready()
        yield built
    finally:
        built.api.stop()


def assert_refused_by_keystone(answer: requests.Response, keystone: FakeKeystone) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers.get("WWW-Authenticate") == f'Keystone uri="{keystone.url}/v3"'


def test_keystone_tokens_decide_project_and_roles_of_a_real_volmgr_api(
        cloud: Cloud, keystone: FakeKeystone) -> None:
    a, b = cloud.project_a, cloud.project_b

    # -- public documents answer without a token ----------------------------------------
    for path, status in [("/", 300), ("/v3", 200), ("/v3/", 200), ("/healthcheck", 200),
                         ("/openapi.json", 200)]:
        assert cloud.http("GET", path).status_code == status, path
    assert keystone.requests("GET", "/v3/auth/tokens") == []

    # -- a member's token works in its own project ---------------------------------------
    alice = cloud.token(cloud.alice)
    assert cloud.listed(alice, f"/v3/{a}/volumes") == set()
    created = cloud.create(alice, a, "alice-vol")
    assert created.status_code == 202, created.text
    volume = created.json()["volume"]
    shown = cloud.http("GET", f"/v3/{a}/volumes/{volume['id']}", alice).json()["volume"]
    assert (shown["user_id"], shown["os-vol-tenant-attr:tenant_id"]) == (cloud.alice.id, a)
    assert cloud.db.volume_get(volume["id"]).project_id == a
    assert cloud.listed(alice, f"/v3/{a}/volumes/detail") == {volume["id"]}
    seed = cloud.http("GET", f"/v1.1/{a}/os-volumes", alice)
    assert seed.status_code == 200 and [v["id"] for v in seed.json()["volumes"]] == [
        volume["id"]]

    # -- the project comes from the token, never from the client -------------------------
    for method, path in [("GET", f"/v3/{b}/volumes"),
                         ("GET", f"/v3/{b}/volumes/{volume['id']}"),
                         ("GET", f"/v1.1/{b}/os-volumes")]:
        answer = cloud.http(method, path, alice)
        assert answer.status_code == 404, (path, answer.text)
    assert cloud.create(alice, b, "sneaky").status_code == 404
    claimed = {"X-Project-Id": b, "X-Tenant-Id": b, "X-User-Id": "mallory",
               "X-Roles": "admin", "X-Identity-Status": "Confirmed"}
    spoofed = cloud.http("POST", f"/v3/{a}/volumes", alice, headers=claimed,
                         json={"volume": {"size": 1, "name": "spoofed"}})
    assert spoofed.status_code == 202, spoofed.text
    spoofed_id = spoofed.json()["volume"]["id"]
    assert cloud.db.volume_get(spoofed_id).project_id == a
    assert (spoofed.json()["volume"]["user_id"],
            cloud.http("GET", f"/v3/{a}/volumes/{spoofed_id}", alice).json()["volume"][
                "os-vol-tenant-attr:tenant_id"]) == (cloud.alice.id, a)
    assert cloud.http("GET", f"/v3/{b}/volumes", alice, headers=claimed).status_code == 404
    # Identity headers without any token do not authenticate either.
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{b}/volumes", headers=claimed),
                               keystone)

    # -- all_tenants: only an admin-role token sees every project ------------------------
    bob = cloud.token(cloud.bob)
    bobs = cloud.create(bob, b, "bob-vol").json()["volume"]["id"]
    mine = {volume["id"], spoofed.json()["volume"]["id"]}
    assert cloud.listed(alice, f"/v3/{a}/volumes?all_tenants=1") == mine
    assert cloud.listed(bob, f"/v3/{b}/volumes?all_tenants=1") == {bobs}
    root = cloud.token(cloud.root)
    assert cloud.listed(root, f"/v3/{a}/volumes?all_tenants=1") >= mine | {bobs}
    assert cloud.listed(root, f"/v3/{a}/volumes") == mine

    # -- unknown, revoked, expired, domain-scoped and missing tokens ---------------------
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{a}/volumes", "gAAAAAbogus"),
                               keystone)
    carol = cloud.token(cloud.alice, "alice-second")
    assert cloud.http("GET", f"/v3/{a}/volumes", carol).status_code == 200
    keystone.revoke(carol)
    for _ in range(4):  # both workers, whichever takes the request
        assert_refused_by_keystone(cloud.http("GET", f"/v3/{a}/volumes", carol), keystone)
    expired = cloud.token(cloud.alice, "alice-expired", lifetime=-60)
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{a}/volumes", expired), keystone)
    domain = cloud.token(cloud.alice, "alice-domain", domain_scoped=True)
    answer = cloud.http("GET", f"/v3/{a}/volumes", domain)
    assert_refused_by_keystone(answer, keystone)
    assert "project-scoped" in answer.text
    assert_refused_by_keystone(cloud.http("GET", f"/v3/{a}/volumes"), keystone)
    assert_refused_by_keystone(cloud.http("POST", f"/v3/{a}/volumes",
                                          json={"volume": {"size": 1}}), keystone)

    # -- python-cinderclient with a token ------------------------------------------------
    listing = cloud.cinder(alice, a, "list")
    assert listing.returncode == 0, listing.stderr
    assert volume["id"] in listing.stdout and bobs not in listing.stdout
    refused = cloud.cinder("gAAAAAbogus", a, "list")
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr

    # -- what keystonemiddleware asked the Identity service ------------------------------
    for seen in keystone.seen:
        print(seen, seen.body or "")
    auths = keystone.requests("POST", "/v3/auth/tokens")
    assert 1 <= len(auths) <= 2  # one service login per worker that took a request
    assert all(seen.status == 201 for seen in auths)
    assert auths[0].body["auth"]["identity"]["password"]["user"]["name"] == "volmgr"
    assert auths[0].body["auth"]["scope"]["project"] == {"name": "service",
                                                         "domain": {"name": "Default"}}
    validations = keystone.requests("GET", "/v3/auth/tokens")
    assert {seen.headers["X-Auth-Token"] for seen in validations} <= {
        "password-token:volmgr"}
    assert all(seen.headers.get("OpenStack-Identity-Access-Rules") == "1"
               for seen in validations)
    # token_cache_time = -1 from the file: every request with a token is validated anew.
    before = len(keystone.requests("GET", "/v3/auth/tokens"))
    for _ in range(3):
        assert cloud.http("GET", f"/v3/{a}/volumes", alice).status_code == 200
    assert len(keystone.requests("GET", "/v3/auth/tokens")) == before + 3
    def answers(label: str) -> list[int]:
        return [seen.status for seen in validations if seen.headers["X-Subject-Token"] == label]
    assert answers("alice-second") == [200, 404, 404, 404, 404]  # revoked after one use
    assert answers("alice-expired") == [404]
    assert answers("alice-domain") == [200]  # valid, but volmgr wants a project
    assert set(answers("unknown-token")) == {404}

    # -- the log: no service password, no user token, no server error --------------------
    assert cloud.api.stop() == 0
    log = cloud.api.text()
    assert "Starting Keystone auth_token middleware" in log
    assert cloud.service_password not in log
    for token in (alice, bob, root, carol):
        assert token not in log
    assert " ERROR " not in log and " CRITICAL " not in log, log
