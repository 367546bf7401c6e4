"""The sd_notify protocol, in a few lines and without a dependency.

A daemon started by systemd with ``Type=notify`` reports ``READY=1``, ``STOPPING=1`` and
watchdog pings as datagrams on ``$NOTIFY_SOCKET``. Outside systemd every call is a
no-op; a failed send is logged and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket

LOG = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        LOG.warning("sd_notify %s failed: %s", state.split("=", 1)[0], error)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WatchdogSec``), or None when the
    watchdog is off or meant for another process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds / 2 if seconds > 0 else None
