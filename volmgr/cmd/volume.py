"""Entry point of volmgr-volume (not built yet: see its issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("volmgr-volume: not yet implemented", file=sys.stderr)
    return 2
