"""A small Identity v3 service for functional tests: just what keystonemiddleware 13
(through keystoneauth1 and keystoneclient) calls to validate tokens for volmgr-api.

It serves version discovery (``GET /`` and ``GET /v3``), password authentication
(``POST /v3/auth/tokens``) and token validation (``GET /v3/auth/tokens``), and records
every request it receives, with token values replaced by labels and passwords left out.
It never stands in for Keystone outside tests: no persistence, no policy beyond what the
middleware's calls need.
"""

from __future__ import annotations

import datetime
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DOMAIN = {"id": "default", "name": "Default"}
#: Identity API version advertised; keystoneauth only needs a 3.x.
VERSION = "v3.14"


@dataclass
class User:
    name: str
    password: str
    project: str
    roles: tuple[str, ...]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Token:
    label: str
    user: User
    expires_at: datetime.datetime
    domain_scoped: bool = False
    revoked: bool = False


@dataclass
class Seen:
    """One request the fake received, safe to print."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    body: Any = None

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        headers = " ".join(f"{k}={v}" for k, v in sorted(self.headers.items()))
        return f"{self.method} {self.path}{query} [{headers}] -> {self.status}"


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeKeystone:
    """The service: users, projects, tokens, and the log of requests."""

    #: Headers worth recording; token headers are recorded as labels, never values.
    RECORDED = ("X-Auth-Token", "X-Subject-Token", "OpenStack-Identity-Access-Rules",
                "Content-Type")

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.projects: dict[str, str] = {}  # id -> name
        self.tokens: dict[str, Token] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-keystone", daemon=True)

    def start(self) -> FakeKeystone:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what a test sets up ------------------------------------------------------------

    def add_project(self, name: str) -> str:
        project_id = uuid.uuid4().hex
        self.projects[project_id] = name
        return project_id

    def add_user(self, name: str, password: str, project: str,
                 roles: tuple[str, ...]) -> User:
        user = User(name, password, project, roles)
        self.users[name] = user
        return user

    def issue(self, user: User, label: str, lifetime: float = 3600.0,
              domain_scoped: bool = False) -> str:
        """A token for ``user``, as if it had authenticated (tests need not); scoped to
        the user's project, or to the default domain."""
        token_id = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=lifetime)
        with self._lock:
            self.tokens[token_id] = Token(label, user, expires, domain_scoped)
        return token_id

    def revoke(self, token_id: str) -> None:
        with self._lock:
            self.tokens[token_id].revoked = True

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method)
                    and (path is None or s.path.rstrip("/") == path.rstrip("/"))]

    # -- the Identity API ----------------------------------------------------------------

    def label(self, token_id: str | None) -> str:
        if token_id is None:
            return "-"
        token = self.tokens.get(token_id)
        return token.label if token is not None else "unknown-token"

    def version(self) -> dict[str, Any]:
        return {"id": VERSION, "status": "stable", "updated": "2019-01-22T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.url}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def catalog(self) -> list[dict[str, Any]]:
        # Unversioned, as devstack registers it: the middleware discovers v3 from here.
        endpoints = [{"id": uuid.uuid4().hex, "interface": interface, "region": "RegionOne",
                      "region_id": "RegionOne", "url": self.url}
                     for interface in ("public", "internal", "admin")]
        return [{"id": "identity-service", "type": "identity", "name": "keystone",
                 "endpoints": endpoints}]

    def token_body(self, token: Token, catalog: bool) -> dict[str, Any]:
        user = token.user
        issued = token.expires_at - datetime.timedelta(hours=1)
        body: dict[str, Any] = {
            "methods": ["password"], "expires_at": _iso(token.expires_at),
            "issued_at": _iso(issued), "audit_ids": [uuid.uuid4().hex[:22]],
            "is_domain": False,
            "user": {"id": user.id, "name": user.name, "domain": DOMAIN,
                     "password_expires_at": None},
            "roles": [{"id": f"role-{name}", "name": name} for name in user.roles],
        }
        if token.domain_scoped:
            body["domain"] = DOMAIN
        else:
            body["project"] = {"id": user.project, "name": self.projects[user.project],
                               "domain": DOMAIN}
        if catalog:
            body["catalog"] = self.catalog()
        return {"token": body}

    def authenticate(self, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            identity = body["auth"]["identity"]
            assert identity["methods"] == ["password"]
            given = identity["password"]["user"]
            scope = body["auth"]["scope"]["project"]
            user = self.users[given["name"]]
            ok = (given["password"] == user.password
                  and given["domain"]["name"] == DOMAIN["name"]
                  and scope["name"] == self.projects[user.project]
                  and scope["domain"]["name"] == DOMAIN["name"])
        except (KeyError, TypeError, AssertionError):
            ok = False
        if not ok:
            return 401, {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The request you have made requires "
                                   "authentication."}}, {}
        token_id = self.issue(user, f"password-token:{user.name}")
        return 201, self.token_body(self.tokens[token_id], catalog=True), {
            "X-Subject-Token": token_id}

    def validate(self, service: str | None, subject: str | None,
                 query: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        now = datetime.datetime.now(datetime.UTC)
        caller = self.tokens.get(service or "")
        if caller is None or caller.revoked or caller.expires_at < now:
            return 401, {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The request you have made requires "
                                   "authentication."}}, {}
        if subject != service and not {"service", "admin"} & set(caller.user.roles):
            return 403, {"error": {"code": 403, "title": "Forbidden",
                                   "message": "You are not authorized."}}, {}
        token = self.tokens.get(subject or "")
        if token is None or token.revoked or token.expires_at < now:
            return 404, {"error": {"code": 404, "title": "Not Found",
                                   "message": "Could not find token."}}, {}
        catalog = "nocatalog" not in query.split("&")
        return 200, self.token_body(token, catalog), {"X-Subject-Token": subject or ""}


def _handler_for(fake: FakeKeystone) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the fake keeps its own record in fake.seen

        def _record(self, body: Any = None) -> Seen:
            url = urlsplit(self.path)
            headers = {}
            for name in fake.RECORDED:
                value = self.headers.get(name)
                if value is not None:
                    headers[name] = fake.label(value) if "Token" in name else value
            seen = Seen(self.command, url.path, url.query, headers, body=body)
            with fake._lock:
                fake.seen.append(seen)
            return seen

        def _answer(self, seen: Seen, status: int, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
            seen.status = status
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            seen = self._record()
            path = seen.path.rstrip("/") or "/"
            if path == "/":
                self._answer(seen, 300, {"versions": {"values": [fake.version()]}})
            elif path == "/v3":
                self._answer(seen, 200, {"version": fake.version()})
            elif path == "/v3/auth/tokens":
                self._answer(seen, *fake.validate(self.headers.get("X-Auth-Token"),
                                                  self.headers.get("X-Subject-Token"),
                                                  seen.query))
            else:
                self._answer(seen, 404, {"error": {"code": 404, "title": "Not Found",
                                                   "message": seen.path}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                body = None
            seen = self._record(_without_password(body))
            if seen.path.rstrip("/") == "/v3/auth/tokens":
                self._answer(seen, *fake.authenticate(body))
            else:
                self._answer(seen, 404, {"error": {"code": 404, "title": "Not Found",
                                                   "message": seen.path}})

    return Handler


def _without_password(body: Any) -> Any:
    """The authentication request as recorded: the password replaced by its length."""
    try:
        copy = json.loads(json.dumps(body))
        user = copy["auth"]["identity"]["password"]["user"]
        user["password"] = f"<{len(user['password'])} characters>"
        return copy
    except (KeyError, TypeError, ValueError):
        return body
