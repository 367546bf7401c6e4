"""The detail listing's attachments on PostgreSQL, where the page's volume ids travel
as one array parameter (``= ANY``) instead of an ``IN`` list."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from tests.unit import api_helpers as h
from tests.unit.test_api_v3_volumes import detail_listing_shows_attachments_as_show_does
from volmgr.db import Database


def test_a_detail_listing_on_postgresql_shows_attachments_as_show_does(
        conf: cfg.ConfigOpts, postgres_db: Database) -> None:
    h.register_host(postgres_db)
    app: Any = h.make_app(conf, postgres_db, h.RecordingRPC())
    detail_listing_shows_attachments_as_show_does(app, postgres_db)
