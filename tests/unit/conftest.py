"""Fixtures of the API unit tests: an in-process app over the SQLite ``db`` with one
registered volume host, and the recording RPC client it casts to."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from tests.unit import api_helpers as h
from volmgr.db import Database


@pytest.fixture
def rpcapi() -> h.RecordingRPC:
    return h.RecordingRPC()


@pytest.fixture
def app(conf: cfg.ConfigOpts, db: Database, rpcapi: h.RecordingRPC) -> Any:
    h.register_host(db)
    return h.make_app(conf, db, rpcapi)
