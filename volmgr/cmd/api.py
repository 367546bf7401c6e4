"""Entry point of volmgr-api (not built yet: see its issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("volmgr-api: not yet implemented", file=sys.stderr)
    return 2
