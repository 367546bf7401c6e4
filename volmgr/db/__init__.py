"""The data layer: the only package in volmgr that writes SQL."""

from volmgr.db.api import Database

__all__ = ["Database"]
