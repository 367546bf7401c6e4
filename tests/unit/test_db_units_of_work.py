"""``Database.run_together``: a request's reads and its write as one transaction.

The API runs a create (type, hosts, quota, insert) and a delete (row, host check,
guarded write) this way: one pool checkout, ping, BEGIN and COMMIT instead of one per
query (docs/performance.md). These specify what callers may rely on.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.db_reads import quota_usage
from volmgr import exception, states
from volmgr.db import Database, models


def _begins(db: Database) -> list[int]:
    counted = [0]

    def count(*args: Any) -> None:
        counted[0] += 1
    sa.event.listen(db.engine, "begin", count)
    return counted


def _create(db: Database, project: str = "p1") -> models.Volume:
    return db.volume_create(project_id=project, user_id="u", size=1, host="node1")


def test_every_query_inside_joins_one_transaction(db: Database) -> None:
    begins = _begins(db)

    def work() -> str:
        volume = _create(db)
        db.volume_get(volume.id)
        db.volume_transition(volume.id, [states.CREATING], {"status": states.AVAILABLE})
        return volume.id
    volume_id = db.run_together(work)
    assert begins[0] == 1
    assert db.volume_get(volume_id).status == states.AVAILABLE


def test_a_failure_anywhere_inside_undoes_every_write_of_the_unit(db: Database) -> None:
    def work() -> None:
        _create(db)
        raise exception.InvalidInput(reason="refused after the insert")
    with pytest.raises(exception.InvalidInput):
        db.run_together(work)
    assert db.volume_list("p1") == []
    assert quota_usage(db, "p1").get("volumes", 0) == 0


def test_a_transient_failure_re_runs_the_whole_unit(db: Database) -> None:
    attempts = []

    def work() -> str:
        attempts.append(1)
        volume = _create(db)
        if len(attempts) == 1:
            # What a deadlock looks like to the retry policy; the first attempt's
            # insert must not survive it.
            raise sa.exc.OperationalError("UPDATE quota_usages", {},
                                          Exception("database is locked"))
        return volume.id
    volume_id = db.run_together(work)
    assert len(attempts) == 2
    assert [v.id for v in db.volume_list("p1")] == [volume_id]
    assert quota_usage(db, "p1")["volumes"] == 1


def test_outside_a_unit_each_query_is_its_own_transaction(db: Database) -> None:
    begins = _begins(db)
    volume = _create(db)
    db.volume_get(volume.id)
    assert begins[0] == 2


def test_a_unit_inside_a_unit_is_part_of_it(db: Database) -> None:
    begins = _begins(db)
    db.run_together(lambda: db.run_together(lambda: _create(db)))
    assert begins[0] == 1


def test_inserting_a_row_refuses_a_name_that_is_no_column(db: Database) -> None:
    """``insert_new`` (the create's INSERT) writes only columns it knows: a misspelt
    attribute is an error, not a value silently left out."""
    from volmgr.db.core import insert_new
    with pytest.raises(TypeError, match="no column sise"):
        db.run(lambda session: insert_new(session, models.Volume, project_id="p1",
                                          user_id="u", sise=1))
    assert db.volume_list("p1") == []
