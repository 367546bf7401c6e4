"""Bring-up and tear-down of the Tempest cloud: Keystone (from PyPI, in its own
virtualenv, served by gunicorn) on PostgreSQL, ``volmgr-api`` with ``auth_strategy =
keystone`` and one ``volmgr-volume`` (file driver) on RabbitMQ and PostgreSQL.

Everything a run makes is named with one random suffix (databases, the volume host and
so its RabbitMQ queue), lives under the run's state directory, and is removed by
``Cloud.stop`` (the state directory stays, with the logs, for reading afterwards).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tools.tempest.network_stub import NetworkStub

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "etc" / "tempest"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"

#: What each helper virtualenv holds. Keystone and Tempest pin their own OpenStack
#: libraries, which need not agree with volmgr's, so each gets its own.
VENVS: dict[str, list[str]] = {
    "keystone": ["keystone>=30,<31", "gunicorn>=23", "psycopg2-binary>=2.9"],
    "tempest": ["tempest>=47,<48"],
}
#: The programs the harness runs from each virtualenv.
SCRIPTS: dict[str, list[str]] = {
    "keystone": ["keystone-manage", "gunicorn"],
    "tempest": ["tempest"],
}


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def render(template: str, target: Path, values: Mapping[str, object]) -> Path:
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    if left:
        raise RuntimeError(f"{template}: {', '.join(sorted(set(left)))} left unfilled")
    target.write_text(text)
    return target


def http(method: str, url: str, body: object | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the harness only talks to its own services: {url}")
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            raw = answer.read()
            status, got = answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return status, got, json.loads(raw) if raw.strip() else None


def venv_ready(venv: Path, name: str) -> bool:
    """The virtualenv holds what VENVS[name] asks for and its programs can start: the
    marker matches, the interpreter runs and every program of SCRIPTS[name] is there."""
    marker = venv / "harness-requirements.txt"
    if not marker.exists() or marker.read_text() != "\n".join(VENVS[name]):
        return False
    if any(not os.access(venv / "bin" / script, os.X_OK) for script in SCRIPTS[name]):
        return False
    try:
        return subprocess.run([str(venv / "bin" / "python"), "-c", "pass"],
                              check=False, timeout=60).returncode == 0
    except OSError:  # the interpreter the virtualenv was made from is gone
        return False


def ensure_venv(base: Path, name: str) -> Path:
    """A virtualenv with VENVS[name], built once and rebuilt when the list changes or
    the one there cannot run. Builders wait for each other on a lock file, so parallel
    test processes never build into the same directory at once."""
    import fcntl

    venv = base / name
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready(venv, name):
            return venv
        log(f"building the {name} virtualenv ({', '.join(VENVS[name])}) in {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip_log = base / f"pip-{name}.log"
        with open(pip_log, "wb") as out:
            for args in (["--upgrade", "pip"], VENVS[name]):
                done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                                       *args], stdout=out, stderr=subprocess.STDOUT,
                                      check=False)
                if done.returncode:
                    raise RuntimeError(f"pip install {' '.join(args)} failed: "
                                       f"see {pip_log}")
        (venv / "harness-requirements.txt").write_text("\n".join(VENVS[name]))
        if not venv_ready(venv, name):
            missing = [s for s in SCRIPTS[name] if not (venv / "bin" / s).exists()]
            raise RuntimeError(f"the {name} virtualenv in {venv} was built but cannot "
                               f"run (missing: {', '.join(missing) or 'none'}; "
                               f"interpreter: {os.path.realpath(venv / 'bin' / 'python')}); "
                               f"see {pip_log}")
    return venv


class Process:
    def __init__(self, name: str, argv: list[str], logfile: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name, self.logfile = name, logfile
        with open(logfile, "ab") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=cwd or ROOT,
                                          env={**os.environ, **(env or {})},
                                          start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.logfile.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class Cloud:
    """One Keystone, one volmgr-api and one volmgr-volume, for one run."""

    def __init__(self, state: Path, venvs: Path, *, tempest: bool = True) -> None:
        self.state, self.venvs, self.with_tempest = state, venvs, tempest
        suffix = secrets.token_hex(3)
        self.keystone_db, self.volmgr_db = f"tempest_keystone_{suffix}", f"tempest_volmgr_{suffix}"
        self.host = f"tempest-{suffix}"
        self.admin_password = secrets.token_urlsafe(12)
        self.service_password = secrets.token_urlsafe(12)
        self.keystone_port, self.volmgr_port = free_port(), free_port()
        self.keystone_url = f"http://127.0.0.1:{self.keystone_port}"
        self.volmgr_url = f"http://127.0.0.1:{self.volmgr_port}"
        self.processes: list[Process] = []
        self.databases: list[str] = []
        self.network = NetworkStub()
        self.keystone_venv = self.tempest_venv = Path()
        self._token = ""
        self.bin = Path(sys.executable).parent

    # -- services and virtualenvs -------------------------------------------------------

    def check_services(self) -> None:
        for name, port in (("PostgreSQL", 5432), ("RabbitMQ", 5672)):
            if not port_open(port):
                raise RuntimeError(f"{name} does not answer on 127.0.0.1:{port}")

    def build_venvs(self) -> None:
        self.keystone_venv = ensure_venv(self.venvs, "keystone")
        if self.with_tempest:
            self.tempest_venv = ensure_venv(self.venvs, "tempest")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)

    # -- Keystone ----------------------------------------------------------------------

    def keystone_manage(self, *args: str) -> None:
        # keystone-manage reads --config-file (OS_KEYSTONE_CONFIG_FILES is the WSGI
        # application's); without it, it would use /etc/keystone and ./keystone.db.
        argv = [str(self.keystone_venv / "bin" / "keystone-manage"), "--config-file",
                str(self.state / "keystone.conf"), *args]
        with open(self.state / "keystone-manage.log", "ab") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=self.state, check=False)
        if done.returncode:
            raise RuntimeError(f"keystone-manage {args[0]} failed: see "
                               f"{self.state / 'keystone-manage.log'}")

    def keystone_env(self) -> dict[str, str]:
        return {"OS_KEYSTONE_CONFIG_FILES": str(self.state / "keystone.conf")}

    def start_keystone(self) -> None:
        log(f"Keystone on {self.keystone_url} (database {self.keystone_db})")
        self.create_database(self.keystone_db)
        render("keystone.conf.in", self.state / "keystone.conf",
               {"STATE": self.state, "KEYSTONE_DB": self.keystone_db})
        for directory in ("keystone-fernet-keys", "keystone-credential-keys"):
            (self.state / directory).mkdir(mode=0o700, exist_ok=True)
        owner = ("--keystone-user", "root", "--keystone-group", "root")
        self.keystone_manage("db_sync")
        self.keystone_manage("fernet_setup", *owner)
        self.keystone_manage("credential_setup", *owner)
        self.keystone_manage(
            "bootstrap", "--bootstrap-password", self.admin_password,
            "--bootstrap-region-id", "RegionOne",
            "--bootstrap-public-url", f"{self.keystone_url}/v3",
            "--bootstrap-internal-url", f"{self.keystone_url}/v3")
        gunicorn = self.keystone_venv / "bin" / "gunicorn"
        argv = [str(gunicorn), "--bind", f"127.0.0.1:{self.keystone_port}", "--workers", "3",
                "--timeout", "120", "--pythonpath", str(ROOT / "tools" / "tempest"),
                "--name", "tempest-keystone"]
        helptext = subprocess.run([str(gunicorn), "--help"], capture_output=True, text=True,
                                  check=False).stdout
        if "--no-control-socket" in helptext:
            argv.append("--no-control-socket")  # else ~/.gunicorn/gunicorn.ctl is shared
        argv.append("keystone_wsgi:application")
        keystone = Process("keystone", argv, self.state / "keystone-gunicorn.log",
                           env=self.keystone_env())
        self.processes.append(keystone)

        def ready() -> bool:
            keystone.check()
            try:
                return http("GET", f"{self.keystone_url}/v3")[0] == 200
            except OSError:
                return False
        wait_for(ready, 90, "Keystone to answer GET /v3")

    def admin_token(self) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": self.admin_password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        status, headers, answer = http("POST", f"{self.keystone_url}/v3/auth/tokens", body)
        if status != 201:
            raise RuntimeError(f"Keystone refused the admin login: {status} {answer}")
        return headers["X-Subject-Token"]

    def identity(self, method: str, path: str, body: object | None = None) -> Any:
        """One Identity v3 call as the bootstrap admin."""
        if not self._token:
            self._token = self.admin_token()
        status, _, answer = http(method, f"{self.keystone_url}/v3{path}", body,
                                 {"X-Auth-Token": self._token})
        if status not in (200, 201, 204):
            raise RuntimeError(f"Keystone {method} {path}: {status} {answer}")
        return answer

    def add_user(self, name: str, password: str, project: str,
                 roles: tuple[str, ...] = ("member",)) -> dict[str, str]:
        """A user with ``roles`` on ``project`` (made when missing); its and the
        project's ids."""
        found = self.identity("GET", f"/projects?name={project}")["projects"]
        project_id = found[0]["id"] if found else self.identity("POST", "/projects", {
            "project": {"name": project, "domain_id": "default"}})["project"]["id"]
        known = {r["name"]: r["id"] for r in self.identity("GET", "/roles")["roles"]}
        for role in roles:
            if role not in known:
                known[role] = self.identity("POST", "/roles", {"role": {"name": role}})[
                    "role"]["id"]
        user_id = self.identity("POST", "/users", {"user": {
            "name": name, "password": password, "domain_id": "default",
            "default_project_id": project_id}})["user"]["id"]
        for role in roles:
            self.identity("PUT", f"/projects/{project_id}/users/{user_id}/roles/{known[role]}")
        return {"user_id": user_id, "project_id": project_id}

    def register(self) -> None:
        """The service user volmgr-api validates tokens with, and the catalog: the volume
        service under both of its types, and the network stand-in."""
        self.add_user("volmgr", self.service_password, "service", ("service", "admin"))
        volume_url = f"{self.volmgr_url}/v3/%(project_id)s"
        catalog = [("block-storage", "volmgr", volume_url), ("volumev3", "volmgrv3", volume_url),
                   ("network", "network-stand-in", self.network.url)]
        for service_type, name, url in catalog:
            service = self.identity("POST", "/services", {"service": {
                "type": service_type, "name": name}})["service"]
            for interface in ("public", "internal", "admin"):
                self.identity("POST", "/endpoints", {"endpoint": {
                    "service_id": service["id"], "interface": interface, "url": url,
                    "region_id": "RegionOne"}})

    # -- volmgr ------------------------------------------------------------------------

    def volmgr_config(self) -> Path:
        return self.state / "volmgr.conf"

    def start_volmgr(self) -> None:
        log(f"volmgr-api on {self.volmgr_url}, volmgr-volume host {self.host} "
            f"(database {self.volmgr_db})")
        self.create_database(self.volmgr_db)
        (self.state / "volmgr" / "volumes").mkdir(parents=True, exist_ok=True)
        render("volmgr.conf.in", self.volmgr_config(), {
            "STATE": self.state, "HOST": self.host, "VOLMGR_DB": self.volmgr_db,
            "VOLMGR_PORT": self.volmgr_port, "KEYSTONE_URL": self.keystone_url,
            "SERVICE_PASSWORD": self.service_password})
        config = ["--config-file", str(self.volmgr_config())]
        subprocess.run([str(self.bin / "volmgr-manage"), *config, "db", "sync"], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        # volmgr from this checkout, whatever the virtualenv's editable install points at.
        env = {"PYTHONPATH": str(ROOT)}
        volume = Process("volmgr-volume", [str(self.bin / "volmgr-volume"), *config],
                         self.state / "volmgr-volume.log", env=env)
        self.processes.append(volume)
        api = Process("volmgr-api", [str(self.bin / "volmgr-api"), *config],
                      self.state / "volmgr-api.log", env=env)
        self.processes.append(api)

        from volmgr import rpc
        from volmgr.db import Database

        db = Database.from_url(
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.volmgr_db}")

        def volume_up() -> bool:
            volume.check()
            return any(s.host == self.host and "free_capacity_gb" in (s.capabilities or {})
                       for s in db.services_up(rpc.TOPIC, 60))

        def api_up() -> bool:
            api.check()
            try:
                return http("GET", f"{self.volmgr_url}/healthcheck")[0] == 200
            except OSError:
                return False
        try:
            wait_for(volume_up, 90, "volmgr-volume to report its capacity")
        finally:
            db.engine.dispose()
        wait_for(api_up, 90, "volmgr-api /healthcheck")

    def microversions(self) -> tuple[str, str]:
        """The range volmgr's version document announces (GET /v3/)."""
        status, _, answer = http("GET", f"{self.volmgr_url}/v3/")
        if status != 200:
            raise RuntimeError(f"GET /v3/ answered {status}")
        version = answer["versions"][0]
        return version.get("min_version") or "3.0", version.get("version") or "3.0"

    # -- whole cloud -------------------------------------------------------------------

    def start(self) -> None:
        self.check_services()
        self.build_venvs()
        self.network.start()
        self.start_keystone()
        self.register()
        self.start_volmgr()

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # tear-down goes on whatever one process did
                print(f"could not stop {process.name}: {error}", file=sys.stderr)
        self.processes.clear()
        self.network.stop()
        self.delete_queues()
        self.drop_databases()

    def delete_queues(self) -> None:
        try:
            import kombu

            from volmgr import rpc

            connect: Any = getattr(kombu, "Connection")  # noqa: B009 (kombu has no stubs)
            with connect(RABBIT_URL, connect_timeout=5) as connection:
                connection.channel().queue_delete(f"{rpc.TOPIC}.{self.host}")
        except Exception as error:  # tear-down only: never hides the run's result
            print(f"could not delete the run's RabbitMQ queue: {error}", file=sys.stderr)

    def drop_databases(self) -> None:
        import psycopg

        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
                for name in self.databases:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as error:
            print(f"could not drop {self.databases}: {error}", file=sys.stderr)
        self.databases.clear()
