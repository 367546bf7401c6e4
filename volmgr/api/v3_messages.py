"""Block Storage v3: (being written)."""

from __future__ import annotations

from volmgr.api.v3_base import V3Deps
from volmgr.api.wsgi import Router


def add_routes(router: Router, deps: V3Deps) -> None:
    """No routes yet."""
