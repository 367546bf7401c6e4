"""Host choice: up and enabled volume services only, most free capacity that fits,
thin hosts bounded by the over-subscription ratio."""

from __future__ import annotations

import datetime

import pytest
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr import exception
from volmgr.api.scheduler import Scheduler, candidate
from volmgr.db import Database, models


def test_the_host_with_most_free_capacity_that_fits_is_chosen(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "small", free=5)
    h.register_host(db, "big", free=50)
    scheduler = Scheduler(conf, db)
    assert scheduler.choose_host(1) == "big"
    assert scheduler.choose_host(50) == "big"


def test_no_host_fits_raises_no_valid_host_naming_the_best_offer(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "small", free=5)
    with pytest.raises(exception.NoValidHost, match="5 GiB"):
        Scheduler(conf, db).choose_host(6)


def test_disabled_hosts_are_not_chosen(conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "a", free=100)
    h.register_host(db, "b", free=10)
    db.service_set_disabled("a", "volmgr-volume", True, "maintenance")
    assert Scheduler(conf, db).choose_host(1) == "b"


def test_hosts_without_a_recent_heartbeat_are_not_chosen(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "stale", free=100)
    h.register_host(db, "fresh", free=10)
    old = models.utcnow() - datetime.timedelta(seconds=conf.service_down_time + 5)
    with db.transaction() as session:
        session.query(models.Service).filter_by(host="stale").update(
            {"last_heartbeat": old})
    assert Scheduler(conf, db).choose_host(1) == "fresh"


def test_no_service_at_all_is_no_valid_host(conf: cfg.ConfigOpts, db: Database) -> None:
    with pytest.raises(exception.NoValidHost, match="no volume service"):
        Scheduler(conf, db).choose_host(1)


def test_thin_hosts_may_promise_up_to_the_oversubscription_ratio() -> None:
    thin = {"thin_provisioning_support": True, "total_capacity_gb": 10,
            "free_capacity_gb": 10, "provisioned_capacity_gb": 150}
    assert candidate("t", thin, 20.0).free_gb == 50
    assert candidate("t", thin, 1.0).free_gb == 0
    full = {**thin, "free_capacity_gb": 0.5, "provisioned_capacity_gb": 0}
    assert candidate("t", full, 20.0).free_gb == 10


def test_thin_host_wins_over_a_fuller_thick_host(conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "thick", free=20)
    h.register_host(db, "thin", free=10, total=10, thin=True, provisioned=0)
    assert Scheduler(conf, db).choose_host(30) == "thin"


def test_volumes_promised_since_the_last_heartbeat_count_against_a_host(
        conf: cfg.ConfigOpts, db: Database) -> None:
    h.register_host(db, "small", free=3.0)
    h.register_host(db, "big", free=4.0)
    scheduler = Scheduler(conf, db)
    first = scheduler.choose_host(2)
    assert first == "big"
    db.volume_create(project_id="p1", user_id="u1", size=2, host=first)
    # "big" still reports 4 GiB free until its next heartbeat, but 2 are promised.
    assert scheduler.choose_host(2) == "small"
    db.volume_create(project_id="p1", user_id="u1", size=2, host="small")
    with pytest.raises(exception.NoValidHost):
        scheduler.choose_host(3)
