"""Volume transfers racing on PostgreSQL (READ COMMITTED) and MariaDB (REPEATABLE
READ): several projects accept the same offer while its owner withdraws it. Exactly one
request wins each offer, and every project's quota usage equals what its live rows
hold."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from tests.db_reads import quota_usage
from volmgr import exception, states
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod

RECEIVERS = ("p2", "p3", "p4")


@pytest.fixture(params=["postgres_url", "mysql_url"], ids=["postgresql", "mariadb"])
def real_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(engine_mod.create_engine(request.getfixturevalue(request.param)),
                        quota_limits={"volumes": 100, "gigabytes": 1000, "snapshots": 100})
    migration.upgrade(database.engine)
    yield database
    database.dispose()


def _outcome(work: Callable[[], object]) -> str:
    try:
        work()
    except exception.VolmgrError as error:
        return type(error).__name__
    return "won"


def _race(db: Database, transfer_id: str, auth_key: str) -> list[str]:
    calls: list[Callable[[], object]] = [
        (lambda p=project: db.transfer_accept(transfer_id, auth_key, project_id=p,
                                              user_id="u-" + p))
        for project in RECEIVERS]
    calls.append(lambda: db.transfer_delete(transfer_id, "p1"))
    outcomes: list[str] = []
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> None:
        start.wait(10)
        outcomes.append(_outcome(call))
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_one_request_wins_each_offer_and_usage_follows_the_rows(real_db: Database) -> None:
    for _ in range(6):
        volume = real_db.volume_create(project_id="p1", user_id="u1", size=2, host="n",
                                       status=states.AVAILABLE)
        snapshot = real_db.snapshot_create(volume.id, project_id="p1", user_id="u1")
        assert real_db.snapshot_transition(snapshot.id, (states.SNAP_CREATING,),
                                           {"status": states.SNAP_AVAILABLE})
        transfer, auth_key = real_db.transfer_create(volume.id, project_id="p1")
        outcomes = _race(real_db, transfer.id, auth_key)
        assert sorted(outcomes) == ["TransferNotFound"] * 3 + ["won"], outcomes
        assert real_db.volume_get(volume.id).status == states.AVAILABLE
        owner = real_db.volume_get(volume.id).project_id
        assert real_db.snapshot_get(snapshot.id).project_id == owner
    for project in ("p1", *RECEIVERS):
        volumes = real_db.volume_list(project)
        snapshots = real_db.snapshot_list(project)
        usage = quota_usage(real_db, project)
        assert usage.get("volumes", 0) == len(volumes)
        assert usage.get("snapshots", 0) == len(snapshots)
        assert usage.get("gigabytes", 0) == sum(v.size for v in volumes) + sum(
            s.size for s in snapshots)
