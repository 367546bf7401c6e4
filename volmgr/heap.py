"""Keep what a daemon builds at start-up out of the garbage collector's scans.

CPython's cycle collector walks every tracked object of the generation it collects. A
volmgr process holds about 100,000 such objects once it has imported oslo.messaging,
SQLAlchemy and WebOb and built its engine, transport and routes: a full collection then
walks all of them, and it happens every few hundred requests, while every request of
the process waits (measured in docs/performance.md, change 18). Nothing made at start-up
is garbage later, so each daemon moves those objects to the collector's permanent
generation once it is ready (``gc.freeze``); the collector then walks only what requests
made since.
"""

from __future__ import annotations

import gc
import logging

LOG = logging.getLogger(__name__)


def freeze_startup_objects(process: str) -> int:
    """Collect what start-up left as garbage, then exempt every object alive now from
    later collections; returns how many were exempted. Call once, when ``process`` is
    ready to serve."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    LOG.debug("%s: %d start-up objects exempt from garbage collection", process, frozen)
    return frozen
