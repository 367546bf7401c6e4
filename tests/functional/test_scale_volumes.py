"""Many volumes on PostgreSQL: ``volmgr-manage db sync`` of every migration on the data
set, v3 list/detail with paging, filters and sorts answering in bounded time with no
sequential scan of volumes, snapshots or attachments on the hot paths, and cheap scans
for recovery and reconcile.

Small numbers by default (the functional suite); ``VOLMGR_SCALE=full`` (``tox -e
scale``) runs the figures of docs/scaling.md: 10,000 volumes and 5,000 attachments."""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from tests.unit import api_helpers as h
from volmgr import states
from volmgr.db import Database, migration, models
from volmgr.db import engine as engine_mod

FULL = os.environ.get("VOLMGR_SCALE") == "full"
VOLUMES = 10_000 if FULL else 2_000
ATTACHMENTS = VOLUMES // 2
SNAPSHOTS = VOLUMES // 5
PROJECTS = 20
HOSTS = 5
SAMPLES = 100 if FULL else 20
#: Upper bound for the p99 of one list request in-process (a 2-core machine shared with
#: other work); the measured figures are in docs/scaling.md and far below it.
P99_BOUND_S = 1.0
MANAGE = os.path.join(os.path.dirname(sys.executable), "volmgr-manage")
V327 = {"OpenStack-API-Version": "volume 3.27"}
ADMIN = {"X-Roles": "admin"}
LISTED_TABLES = ("volumes", "snapshots", "volume_attachments")
#: Measured but not index-served: across all projects, a sort on a nullable column
#: orders by COALESCE(column, ...) (so NULLs page portably), which no plain index
#: serves; within one project the project's index bounds it (docs/scaling.md).
SCANS = "volumes detail, all projects, sort updated_at (admin)"


def _fill_at_first_revision(engine: sa.Engine) -> dict[str, Any]:
    """Rows written with the schema of migration 0001 (columns reflected), so every
    later migration runs over them."""
    meta = sa.MetaData()
    tables = {name: sa.Table(name, meta, autoload_with=engine) for name in LISTED_TABLES}
    start = datetime.datetime(2026, 1, 1)
    volumes: list[dict[str, Any]] = []
    for n in range(VOLUMES):
        at = start + datetime.timedelta(seconds=n)
        attached = n < ATTACHMENTS
        deleted = not attached and n % 10 == 9
        status = states.IN_USE if attached else (states.ERROR if n % 50 == 1 else
                                                  states.AVAILABLE)
        volumes.append({
            "id": str(uuid.UUID(int=n + 1)), "project_id": f"project-{n % PROJECTS:02d}",
            "user_id": f"user-{n % 7}", "host": f"host-{n % HOSTS}", "size": 1 + n % 10,
            "status": "deleted" if deleted else status, "status_reason": None,
            "status_changed_at": at, "recovery_attempts": 0,
            "display_name": f"vol-{n:05d}", "display_description": None,
            "availability_zone": "nova", "volume_type": None, "snapshot_id": None,
            "source_volid": None, "metadata": {"n": str(n % 3)},
            "provider_location": None, "provider_auth": None, "target_size": None,
            "created_at": at, "updated_at": at, "deleted": deleted,
            "deleted_at": at if deleted else None})
    attachments = [{
        "id": str(uuid.UUID(int=10**9 + n)), "volume_id": volumes[n]["id"],
        "server_id": f"server-{n}", "device": "/dev/vdb", "attach_status": "attached",
        "connector": {"initiator": f"iqn.1993-08.org.debian:01:{n}"},
        "connection_info": {"driver_volume_type": "iscsi"},
        "attached_at": volumes[n]["created_at"], "detached_at": None,
        "created_at": volumes[n]["created_at"], "updated_at": None, "deleted": False,
        "deleted_at": None} for n in range(ATTACHMENTS)]
    snapshots = [{
        "id": str(uuid.UUID(int=2 * 10**9 + n)), "volume_id": volumes[v]["id"],
        "project_id": volumes[v]["project_id"], "user_id": volumes[v]["user_id"],
        "size": volumes[v]["size"], "status": "available", "status_reason": None,
        "status_changed_at": volumes[v]["created_at"], "recovery_attempts": 0,
        "display_name": f"snap-{n:05d}", "display_description": None,
        "host": volumes[v]["host"], "metadata": {}, "created_at": volumes[v]["created_at"],
        "updated_at": None, "deleted": False, "deleted_at": None}
        for n, v in enumerate(range(ATTACHMENTS, ATTACHMENTS + SNAPSHOTS))]
    with engine.begin() as connection:
        for name, rows in (("volumes", volumes), ("volume_attachments", attachments),
                           ("snapshots", snapshots)):
            columns = set(tables[name].c.keys())
            assert set(rows[0]) == columns, (name, columns ^ set(rows[0]))
            for chunk in range(0, len(rows), 2000):
                connection.execute(tables[name].insert(), rows[chunk:chunk + 2000])
    return {"volumes": volumes, "attachments": attachments, "snapshots": snapshots}


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


class Recorder:
    """SELECTs the app sends, to EXPLAIN them afterwards with their parameters."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[tuple[str, Any]] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, parameters))


def _seq_scans(engine: sa.Engine, statement: str, parameters: Any, *,
               index_only: bool = False) -> list[str]:
    """Sequential scans of the listed tables in the plan of ``statement``; with
    ``index_only`` the planner is told to avoid them, so one that remains means no
    index can serve the query at all."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if index_only:
            cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(str(row[0]) for row in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()
    return [line.strip() for line in plan.splitlines()
            if "Seq Scan on" in line and any(f" {t} " in line + " " for t in LISTED_TABLES)]


def _main_listing(statement: str) -> bool:
    """The page query itself (not the attachments loaded for the page's volumes)."""
    head = statement.lstrip()[:40]
    return head.startswith(("SELECT volumes.", "SELECT snapshots.")) and "LIMIT" in statement


@pytest.mark.slow
def test_many_volumes_on_postgres_sync_list_and_scan_in_bounded_time(
        tmp_path, postgres_url: str, conf) -> None:
    engine = engine_mod.create_engine(postgres_url)
    migration.upgrade(engine, "0001")
    data = _fill_at_first_revision(engine)

    # -- db sync of every later migration over the data set --------------------------
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(f"[database]\nconnection = {postgres_url}\n")
    began = time.monotonic()
    synced = subprocess.run([MANAGE, "--config-file", str(conf_file), "db", "sync"],
                            capture_output=True, text=True, timeout=600)
    sync_s = time.monotonic() - began
    assert synced.returncode == 0, synced.stderr
    check = subprocess.run([MANAGE, "--config-file", str(conf_file), "db", "check"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr + check.stdout
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))
        counted = connection.execute(sa.text(
            "SELECT count(*) FROM volumes WHERE deleted = false")).scalar_one()
    live = [v for v in data["volumes"] if not v["deleted"]]
    assert counted == len(live)

    # -- the API's listings -----------------------------------------------------------
    db = Database(engine)
    h.register_host(db, "host-0")
    app = h.make_app(conf, db, h.RecordingRPC())
    project = "project-03"
    mine = sorted((v for v in live if v["project_id"] == project),
                  key=lambda v: (v["created_at"], v["id"]), reverse=True)
    middle_marker = mine[len(mine) // 2]["id"]
    attached_volume = data["attachments"][40]["volume_id"]
    token, admin_token = f"u1:{project}", "admin:admin"
    requests: dict[str, tuple[str, dict[str, str], str]] = {
        "volumes, first page": (f"/v3/{project}/volumes?limit=50", {}, token),
        "volumes detail, first page": (f"/v3/{project}/volumes/detail?limit=50", {}, token),
        "volumes detail, page after a marker": (
            f"/v3/{project}/volumes/detail?limit=50&marker={middle_marker}", {}, token),
        "volumes detail, status filter, sort by name": (
            f"/v3/{project}/volumes/detail?status=available&sort=name:asc&limit=50",
            {}, token),
        "volumes detail, name filter": (
            f"/v3/{project}/volumes/detail?name=vol-00043", {}, token),
        "volumes detail, sort size desc then created_at": (
            f"/v3/{project}/volumes/detail?sort=size:desc,created_at:asc&limit=50",
            {}, token),
        "volumes detail, all projects (admin)": (
            "/v3/admin/volumes/detail?all_tenants=1&limit=100", ADMIN, admin_token),
        "volumes detail, all projects, host filter (admin)": (
            "/v3/admin/volumes/detail?all_tenants=1&host=host-3&limit=100", ADMIN,
            admin_token),
        "volumes detail, all projects, sort updated_at (admin)": (
            "/v3/admin/volumes/detail?all_tenants=1&sort=updated_at:asc&limit=100", ADMIN,
            admin_token),
        "snapshots detail, first page": (
            f"/v3/{project}/snapshots/detail?limit=50", {}, token),
        "snapshots detail, all projects, volume filter (admin)": (
            f"/v3/admin/snapshots/detail?all_tenants=1&volume_id={live[-1]['id']}",
            ADMIN, admin_token),
        "attachments, first page": (
            f"/v3/{project}/attachments?limit=50", V327, token),
        "attachments, volume filter": (
            f"/v3/{data['volumes'][40]['project_id']}/attachments?volume_id="
            f"{attached_volume}", V327, f"u1:{data['volumes'][40]['project_id']}"),
    }
    recorder = Recorder(engine)
    seq_scans: list[Any] = []
    chosen_seq_scans: set[str] = set()
    figures: dict[str, tuple[float, float]] = {}
    for name, (path, headers, who) in requests.items():
        recorder.statements.clear()
        samples = []
        for _ in range(SAMPLES):
            began = time.perf_counter()
            answer = h.call(app, "GET", path, token=who, headers=headers)
            samples.append(time.perf_counter() - began)
            assert answer.status_int == 200, (path, answer.text)
        figures[name] = (statistics.median(samples), _p99(samples))
        seen = set()
        for statement, parameters in ([] if name == SCANS else recorder.statements):
            if statement in seen or not any(t in statement for t in LISTED_TABLES):
                continue
            seen.add(statement)
            # An index can serve every query; the page query itself uses one.
            scans = _seq_scans(engine, statement, parameters, index_only=True)
            if _main_listing(statement):
                scans += _seq_scans(engine, statement, parameters)
            if scans:
                seq_scans.append((name, scans, statement[:300]))
            elif _seq_scans(engine, statement, parameters):
                chosen_seq_scans.add(name)
    body = h.call(app, "GET", f"/v3/{project}/volumes/detail?limit=50&marker={middle_marker}",
                  token=token).json
    assert [v["id"] for v in body["volumes"]] == [
        v["id"] for v in mine[len(mine) // 2 + 1:len(mine) // 2 + 51]]

    # -- recovery's and reconcile's scans ---------------------------------------------
    scans: dict[str, float] = {}
    for name, work in (
            ("recovery: stuck volumes", lambda: db.volumes_stuck("host-1", models.utcnow())),
            ("recovery: stuck snapshots",
             lambda: db.snapshots_stuck("host-1", models.utcnow())),
            ("recovery: stuck attachments",
             lambda: db.attachments_stuck("host-1", models.utcnow())),
            ("reconcile: rows of a host", lambda: db.volumes_by_host("host-1"))):
        recorder.statements.clear()
        began = time.perf_counter()
        work()
        scans[name] = time.perf_counter() - began
        if name.startswith("recovery"):  # reconcile reads every row of the host anyway
            for statement, parameters in recorder.statements:
                assert not _seq_scans(engine, statement, parameters, index_only=True), (
                    name, statement)

    print(f"\n{VOLUMES} volumes ({len(live)} live), {ATTACHMENTS} attachments, "
          f"{SNAPSHOTS} snapshots, {PROJECTS} projects; {SAMPLES} requests each")
    print(f"volmgr-manage db sync 0001 -> head over the data set: {sync_s:.1f} s")
    for name, (median, p99) in figures.items():
        note = ("  (sequential scan)" if name == SCANS else
                "  (planner hash-joins the attachments)" if name in chosen_seq_scans else "")
        print(f"  {name:58s} median {median * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
              f"{note}")
    for name, seconds in scans.items():
        print(f"  {name:58s} {seconds * 1000:6.1f} ms")
    assert not seq_scans, "\n".join(map(str, seq_scans))
    worst = max(p99 for _, p99 in figures.values())
    assert worst <= P99_BOUND_S, figures
    db.dispose()
