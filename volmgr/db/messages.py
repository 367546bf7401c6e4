"""(being written)"""

from __future__ import annotations

from volmgr.db.core import DatabaseCore


class MessageQueries(DatabaseCore):
    """(being written)"""
