"""The database API: one ``Database`` object per process, built from ``conf``.

Callers (API, manager, CLI) hold a ``Database`` and call its methods; they never build
queries themselves. Every method is its own retried transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from oslo_config import cfg

from volmgr.db import engine as engine_mod
from volmgr.db.admin import AdminQueries
from volmgr.db.attachments import AttachmentQueries
from volmgr.db.messages import MessageQueries
from volmgr.db.quota import QuotaQueries
from volmgr.db.services import ServiceQueries
from volmgr.db.snapshots import SnapshotQueries
from volmgr.db.transfers import TransferQueries
from volmgr.db.types import TypeQueries
from volmgr.db.volume_updates import VolumeUpdateQueries
from volmgr.db.volumes import VolumeQueries


class Database(VolumeQueries, AttachmentQueries, SnapshotQueries, ServiceQueries,
               QuotaQueries, AdminQueries, TypeQueries, TransferQueries, MessageQueries,
               VolumeUpdateQueries):
    """Facade over volmgr's tables."""

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Database:
        engine = engine_mod.create_engine(
            conf.database.connection, pool_size=conf.database.max_pool_size,
            max_overflow=conf.database.max_overflow,
            pool_timeout=conf.database.pool_timeout)
        limits = {"volumes": conf.quota.volumes, "gigabytes": conf.quota.gigabytes,
                  "snapshots": conf.quota.snapshots}
        database = cls(engine, max_retries=conf.database.max_retries, quota_limits=limits)
        database.default_volume_type = conf.default_volume_type
        return database

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> Database:
        return cls(engine_mod.create_engine(url), **kwargs)  # type: ignore[arg-type]

    def ping(self) -> bool:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
