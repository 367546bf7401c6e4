"""``volmgr-volume`` with chosen driver methods slowed down, for crash and SIGTERM tests.

``VOLMGR_TEST_SLOW="create_volume=0.5,extend_volume=2"`` sleeps that many seconds before
each call (and prints ``slow-driver: <method> <volume id> begins`` to stderr). Everything
else is the real entry point; the drivers themselves carry no test-only branches.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from volmgr.cmd import volume as volume_cmd
from volmgr.volume.drivers import loader

_load_driver = loader.load_driver


def _slowed(method: Any, name: str, seconds: float) -> Any:
    def slow(*args: Any, **kwargs: Any) -> Any:
        subject = getattr(args[0], "id", "") if args else ""
        print(f"slow-driver: {name} {subject} begins", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return method(*args, **kwargs)
    return slow


def load_driver(conf: Any, executor: Any = None) -> Any:
    driver = _load_driver(conf, executor)
    for item in filter(None, os.environ.get("VOLMGR_TEST_SLOW", "").split(",")):
        name, _, seconds = item.partition("=")
        setattr(driver, name, _slowed(getattr(driver, name), name, float(seconds)))
    return driver


loader.load_driver = load_driver  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(volume_cmd.main())
