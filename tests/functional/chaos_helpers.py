"""Helpers of the chaos test: an HTTP client that files every answer in a ledger (and
flags any 5xx other than the documented "host is down" refusal, lost answer or fault
without a proper body), what the test knows about
the volumes it made, and inventories of the real storage (LVs, image files, tgtd
targets). Test-only: it never changes product code or another test's resources.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import requests

from tests import services
from tests.db_reads import quota_usage
from tests.functional.storage_env import LoopVG, Tgtd
from tests.functional.volume_daemon import rabbitmqctl, wait_for
from volmgr import states
from volmgr.db import Database

FAULT_NAMES = {"itemNotFound", "badRequest", "conflictingRequest", "overLimit",
               "requestEntityTooLarge", "unauthorized", "forbidden", "badMethod",
               "notAcceptable", "badMediaType", "serviceUnavailable"}
VOLUME_FINAL = ("available", "in-use", "error", "error_deleting", "error_attaching",
                "error_detaching", "error_extending")
SNAPSHOT_FINAL = ("available", "error", "error_deleting")
GiB = 1024 ** 3


class Ledger:
    """Every answer by (operation, HTTP status), the broken ones, and what was accepted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: collections.Counter[tuple[str, int]] = collections.Counter()
        self.violations: list[str] = []
        #: op -> ids whose request got a 2xx (create: new volume ids, delete: deleted...).
        self.accepted: dict[str, list[Any]] = collections.defaultdict(list)

    def record(self, op: str, status: int, body: Any, what: str) -> None:
        problem = None
        if status == 0:
            problem = f"{op} {what}: no answer ({body})"
        elif status == 503 and host_down_refusal(body):
            pass  # the documented refusal while the owning host is down; nothing written
        elif status >= 500:
            problem = f"{op} {what}: {status} {body}"
        elif status >= 400 and not proper_fault(status, body):
            problem = f"{op} {what}: {status} without a proper fault body: {body!r}"
        with self.lock:
            self.outcomes[(op, status)] += 1
            if problem:
                self.violations.append(problem)

    def accept(self, op: str, item: Any) -> None:
        with self.lock:
            self.accepted[op].append(item)

    def total(self) -> int:
        with self.lock:
            return sum(self.outcomes.values())

    def summary(self) -> str:
        with self.lock:
            by_op: dict[str, dict[int, int]] = collections.defaultdict(dict)
            for (op, status), count in sorted(self.outcomes.items()):
                by_op[op][status] = count
        lines = [f"  {op:<22} " + "  ".join(f"{code}x{n}" for code, n in codes.items())
                 for op, codes in sorted(by_op.items())]
        return "\n".join(lines)


def host_down_refusal(body: Any) -> bool:
    """The 503 an operation on a volume of a down storage host gets, before anything is
    written (docs/scaling.md): a proper fault naming the host as down."""
    return (proper_fault(503, body) and "serviceUnavailable" in body
            and "is down" in body["serviceUnavailable"]["message"])


def proper_fault(status: int, body: Any) -> bool:
    """``{"<faultName>": {"code": status, "message": "..."}}`` with a known name."""
    if not isinstance(body, dict) or len(body) != 1:
        return False
    ((name, inner),) = body.items()
    return (name in FAULT_NAMES and isinstance(inner, dict) and inner.get("code") == status
            and isinstance(inner.get("message"), str) and bool(inner["message"]))


class Api:
    """Plain HTTP against both faces of one volmgr-api, on behalf of one project."""

    def __init__(self, base: str, project: str, ledger: Ledger) -> None:
        self.base = base
        self.project = project
        self.token = f"chaos-user:{project}"
        self.ledger = ledger
        self.session = requests.Session()

    def call(self, op: str, method: str, path: str, body: Any = None,
             token: str | None = None) -> tuple[int, Any]:
        """Send one request, file its answer under ``op``; (status, JSON body or text)."""
        try:
            answer = self.session.request(
                method, self.base + path, json=body, timeout=30,
                headers={"X-Auth-Token": token or self.token, "Accept": "application/json"})
        except requests.RequestException as error:
            self.ledger.record(op, 0, repr(error), f"{method} {path}")
            return 0, None
        try:
            payload: Any = answer.json() if answer.content else None
        except ValueError:
            payload = answer.text
        self.ledger.record(op, answer.status_code, payload, f"{method} {path}")
        return answer.status_code, payload

    # -- the requests of the mix ------------------------------------------------------

    def create(self, size: int, seed_face: bool, snapshot_id: str | None = None,
               op: str = "create") -> tuple[int, str | None]:
        body: dict[str, Any] = {"size": size}
        if snapshot_id:
            body["snapshot_id"] = snapshot_id
        if seed_face:
            body["display_name"] = "chaos"
            status, answer = self.call(op, "POST", f"/v1.1/{self.project}/os-volumes",
                                       {"volume": body})
        else:
            body["name"] = "chaos"
            status, answer = self.call(op, "POST", f"/v3/{self.project}/volumes",
                                       {"volume": body})
        volume_id = answer["volume"]["id"] if 200 <= status < 300 else None
        return status, volume_id

    def delete(self, volume_id: str, seed_face: bool, op: str = "delete") -> int:
        path = (f"/v1.1/{self.project}/os-volumes/{volume_id}" if seed_face
                else f"/v3/{self.project}/volumes/{volume_id}")
        return self.call(op, "DELETE", path)[0]

    def extend(self, volume_id: str, new_size: int, op: str = "extend") -> int:
        return self.call(op, "POST", f"/v3/{self.project}/volumes/{volume_id}/action",
                         {"os-extend": {"new_size": new_size}})[0]

    def attach(self, volume_id: str, server: str, initiator: str,
               op: str = "attach") -> int:
        connector = {"initiator": initiator, "host": server, "ip": "127.0.0.1"}
        return self.call(op, "POST", f"/v1.1/{self.project}/servers/{server}/"
                         "os-volume_attachments",
                         {"volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb",
                                               "connector": connector}})[0]

    def detach(self, volume_id: str, server: str, op: str = "detach") -> int:
        return self.call(op, "DELETE", f"/v1.1/{self.project}/servers/{server}/"
                         f"os-volume_attachments/{volume_id}")[0]

    def snapshot(self, volume_id: str, op: str = "snapshot_create") -> tuple[int, str | None]:
        status, answer = self.call(op, "POST", f"/v3/{self.project}/snapshots",
                                   {"snapshot": {"volume_id": volume_id, "name": "chaos"}})
        return status, answer["snapshot"]["id"] if 200 <= status < 300 else None

    def delete_snapshot(self, snapshot_id: str, op: str = "snapshot_delete") -> int:
        return self.call(op, "DELETE", f"/v3/{self.project}/snapshots/{snapshot_id}")[0]

    def show(self, volume_id: str, op: str = "show") -> tuple[int, Any]:
        return self.call(op, "GET", f"/v3/{self.project}/volumes/{volume_id}")

    def list_volumes(self, seed_face: bool, op: str = "list") -> int:
        path = (f"/v1.1/{self.project}/os-volumes/detail" if seed_face
                else f"/v3/{self.project}/volumes/detail")
        return self.call(op, "GET", path)[0]


class Known:
    """What the clients learnt: volume ids per project (with their host once looked up)
    and snapshot ids; gone ids stay, so later requests on them test 404s too."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.volumes: dict[str, list[str]] = collections.defaultdict(list)
        self.snapshots: dict[str, list[str]] = collections.defaultdict(list)
        self.hosts: dict[str, str | None] = {}
        self.gone: set[str] = set()

    def add_volume(self, project: str, volume_id: str, host: str | None) -> None:
        with self.lock:
            self.volumes[project].append(volume_id)
            self.hosts[volume_id] = host

    def add_snapshot(self, project: str, snapshot_id: str) -> None:
        with self.lock:
            self.snapshots[project].append(snapshot_id)

    def mark_gone(self, volume_id: str) -> None:
        with self.lock:
            self.gone.add(volume_id)

    def volume_ids(self, project: str, host: str | None = None,
                   live: bool = False) -> list[str]:
        """The project's volume ids (on ``host``); ``live``: not yet seen answer 404."""
        with self.lock:
            return [v for v in self.volumes[project]
                    if (host is None or self.hosts.get(v) == host)
                    and not (live and v in self.gone)]

    def snapshot_ids(self, project: str) -> list[str]:
        with self.lock:
            return list(self.snapshots[project])


# -- inventories of the real storage ------------------------------------------------------


def uuid_of(name: str, prefix: str = "volume-") -> str | None:
    """The id in ``volume-<uuid>`` (or an IQN ending in it)."""
    tail = name.rsplit(":", 1)[-1]
    return tail[len(prefix):] if tail.startswith(prefix) else None


def image_files(volumes_dir: Path) -> set[str]:
    """Volume ids of the file driver's image files (also half-written ``.part`` ones)."""
    found = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(volumes_dir):
            if entry.is_file():
                found.add(entry.name.lstrip(".").removesuffix(".part"))
    return {uuid_of(name) or name for name in found}


def snapshot_files(volumes_dir: Path) -> set[str]:
    """Snapshot ids of the file driver's snapshot copies."""
    found: set[str] = set()
    root = volumes_dir / "snapshots"
    with contextlib.suppress(FileNotFoundError):
        for directory in os.scandir(root):
            if directory.is_dir():
                for entry in os.scandir(directory.path):
                    name = entry.name.lstrip(".").removesuffix(".part")
                    found.add(uuid_of(name, "snapshot-") or name)
    return found


def target_files(files_dir: Path) -> set[str]:
    """Volume ids of the persistent tgt target files."""
    with contextlib.suppress(FileNotFoundError):
        return {uuid_of(entry.name.removesuffix(".tmp")) or entry.name
                for entry in os.scandir(files_dir) if entry.name != ".lock"}
    return set()


@contextlib.contextmanager
def rabbit_outage(seconds: float) -> Iterator[float]:
    """Stop RabbitMQ's app for about ``seconds``, always starting it again; yields once
    the broker is down. Other suites may share the broker: keep it short."""
    started_at = time.monotonic()
    stopped = rabbitmqctl("stop_app")
    try:
        assert stopped.returncode == 0, stopped.stderr
        yield started_at
        remaining = seconds - (time.monotonic() - started_at)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        started = rabbitmqctl("start_app")
        assert started.returncode == 0, started.stderr
        wait_for(lambda: services.port_open("127.0.0.1", 5672), 30, "RabbitMQ back")


class World(Protocol):
    """What the checks need of the test's cluster."""

    db: Database
    projects: tuple[str, str]
    lvm_host: str
    file_host: str
    volumes_dir: Path
    targets_dir: Path
    vg: LoopVG
    tgtd: Tgtd

    def live_volumes(self) -> list[Any]: ...

    def live_snapshots(self) -> list[Any]: ...

    def transitional(self, host: str | None = None) -> list[str]: ...


# -- the checks of the end state ----------------------------------------------------


def check_rows_final(world: World) -> list[str]:
    problems = []
    for volume in world.live_volumes():
        if volume.status not in VOLUME_FINAL:
            problems.append(f"volume {volume.id} is {volume.status}")
        if volume.status.startswith("error") and not volume.status_reason:
            problems.append(f"volume {volume.id} is {volume.status} without a reason")
        attachments = world.db.attachment_list(volume_id=volume.id)
        attached = [a for a in attachments if a.attach_status == states.ATTACH_ATTACHED]
        if volume.status == states.IN_USE and len(attached) != 1:
            problems.append(f"in-use volume {volume.id} has attachments "
                            f"{[(a.server_id, a.attach_status) for a in attachments]}")
        if volume.status == states.AVAILABLE and attachments:
            problems.append(f"available volume {volume.id} has live attachments")
    for snapshot in world.live_snapshots():
        if snapshot.status not in SNAPSHOT_FINAL:
            problems.append(f"snapshot {snapshot.id} is {snapshot.status}")
        if snapshot.status.startswith("error") and not snapshot.status_reason:
            problems.append(f"snapshot {snapshot.id} is {snapshot.status} without a reason")
    return problems


#: Statuses in which the backing storage must exist (error/error_deleting: it may not).
HAS_STORAGE = (states.AVAILABLE, states.IN_USE, states.ERROR_ATTACHING,
               states.ERROR_DETACHING, states.ERROR_EXTENDING)
EXPORTED = (states.IN_USE, states.ERROR_DETACHING)


def check_storage(world: World) -> list[str]:
    problems = []
    volumes = world.live_volumes()
    on = {host: {v.id: v for v in volumes if v.host == host}
          for host in (world.lvm_host, world.file_host)}
    lvs = {uuid_of(name) or name: size for name, size in world.vg.lvs().items()}
    for label, present, rows in (("LV", set(lvs), on[world.lvm_host]),
                                 ("image", image_files(world.volumes_dir),
                                  on[world.file_host])):
        leaked = present - set(rows)
        missing = {i for i, v in rows.items() if v.status in HAS_STORAGE} - present
        if leaked:
            problems.append(f"{label}s without a live volume: {sorted(leaked)}")
        if missing:
            problems.append(f"live volumes without their {label}: {sorted(missing)}")
    for volume_id, volume in on[world.lvm_host].items():
        if volume.status == states.AVAILABLE and lvs.get(volume_id) != volume.size * GiB:
            problems.append(f"LV of {volume_id} is {lvs.get(volume_id)} bytes, the row "
                            f"says {volume.size} GiB")
    snapshots = {s.id: s for s in world.live_snapshots() if s.host == world.file_host}
    copies = snapshot_files(world.volumes_dir)
    if copies - set(snapshots):
        problems.append(f"snapshot copies without a live snapshot: "
                        f"{sorted(copies - set(snapshots))}")
    wanted = {i for i, s in snapshots.items() if s.status == states.SNAP_AVAILABLE}
    if wanted - copies:
        problems.append(f"available snapshots without a copy: {sorted(wanted - copies)}")
    exported = {i for i, v in on[world.file_host].items() if v.status in EXPORTED}
    targets = {uuid_of(iqn) for iqn in world.tgtd.target_iqns()}
    if targets != exported:
        problems.append(f"tgtd targets {sorted(map(str, targets))} != attached volumes "
                        f"{sorted(exported)}")
    if target_files(world.targets_dir) != exported:
        problems.append(f"target files {sorted(target_files(world.targets_dir))} != "
                        f"attached volumes {sorted(exported)}")
    return problems


def check_quota(world: World) -> list[str]:
    problems = []
    for project in world.projects:
        volumes = [v for v in world.db.volume_list(project) if v.quota_held]
        snapshots = world.db.snapshot_list(project)
        expected = {"volumes": len(volumes), "snapshots": len(snapshots),
                    "gigabytes": sum(v.size for v in volumes) + sum(s.size for s in snapshots)}
        usage = quota_usage(world.db, project)
        actual = {key: usage.get(key, 0) for key in expected}
        if actual != expected:
            problems.append(f"quota of {project}: usage {actual}, live rows hold {expected}")
    return problems


def check_promises(world: World, ledger: Ledger) -> list[str]:
    """Every 2xx was done or visibly failed."""
    problems = []
    volumes = {v.id: v for v in world.live_volumes()}
    snapshots = {s.id: s for s in world.live_snapshots()}
    deleted = set(ledger.accepted["delete"])
    for volume_id in ledger.accepted["create"]:
        if volume_id not in volumes and volume_id not in deleted:
            problems.append(f"volume {volume_id} vanished without an accepted delete")
    for volume_id in deleted:
        if volume_id in volumes and volumes[volume_id].status != states.ERROR_DELETING:
            problems.append(f"accepted delete of {volume_id} left it "
                            f"{volumes[volume_id].status}")
    for snapshot_id in ledger.accepted["snapshot_create"]:
        if snapshot_id not in snapshots and \
                snapshot_id not in ledger.accepted["snapshot_delete"]:
            problems.append(f"snapshot {snapshot_id} vanished without an accepted delete")
    for snapshot_id in ledger.accepted["snapshot_delete"]:
        if snapshot_id in snapshots and snapshots[snapshot_id].status != "error_deleting":
            problems.append(f"accepted delete of snapshot {snapshot_id} left it "
                            f"{snapshots[snapshot_id].status}")
    targets: dict[str, int] = {}
    for volume_id, new_size in ledger.accepted["extend"]:
        targets[volume_id] = max(new_size, targets.get(volume_id, 0))
    for volume_id, target in targets.items():
        volume = volumes.get(volume_id)
        if volume is not None and not volume.status.startswith("error") and \
                volume.size < target:
            problems.append(f"accepted extend of {volume_id} to {target} GiB left it "
                            f"{volume.size} GiB and {volume.status}")
    attaches = ledger.accepted["attach"]
    detached = set(ledger.accepted["detach"])
    for index, (volume_id, server) in enumerate(attaches):
        volume = volumes.get(volume_id)
        if volume is None or (volume_id, server) in detached:
            continue
        servers = {a.server_id for a in world.db.attachment_list(volume_id=volume_id)
                   if a.attach_status == states.ATTACH_ATTACHED}
        later = any(v == volume_id for v, _ in attaches[index + 1:])
        if server not in servers and volume.status != states.ERROR_ATTACHING and not later:
            problems.append(f"accepted attach of {volume_id} to {server} left it "
                            f"{volume.status} attached to {sorted(servers)}")
    return problems


def delete_everything(world: World, api: dict[str, Api], timeout: float = 60) -> None:
    """Detach, delete snapshots, then delete volumes through the API until none is left."""
    deadline = time.monotonic() + timeout
    while world.live_volumes() or world.live_snapshots():
        assert time.monotonic() < deadline, \
            f"could not delete everything: {world.transitional()} " \
            f"{[(v.id, v.status) for v in world.live_volumes()]}"
        for snapshot in world.live_snapshots():
            if snapshot.status in states.SNAP_CAN_DELETE_FROM:
                api[snapshot.project_id].delete_snapshot(snapshot.id, op="cleanup")
        for volume in world.live_volumes():
            client = api[volume.project_id]
            if volume.status in states.CAN_DETACH_FROM:
                for attachment in world.db.attachment_list(volume_id=volume.id):
                    client.detach(volume.id, attachment.server_id, op="cleanup")
            elif volume.status in states.CAN_DELETE_FROM:
                client.delete(volume.id, seed_face=False, op="cleanup")
        time.sleep(0.5)
