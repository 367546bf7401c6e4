"""Entry point of volmgr-all (not built yet: see its issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("volmgr-all: not yet implemented", file=sys.stderr)
    return 2
