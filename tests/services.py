"""Where the real services of the functional tests live, and how a missing one is
reported: a skip with the reason locally, a failure under VOLMGR_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "VOLMGR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get(
    "VOLMGR_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
RABBIT_URL = os.environ.get("VOLMGR_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")


def services_required() -> bool:
    return os.environ.get("VOLMGR_REQUIRE_SERVICES") == "1"


def missing(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when services are required (CI)."""
    if services_required():
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_port(name: str, host: str, port: int) -> None:
    if not port_open(host, port):
        missing(f"{name} does not answer on {host}:{port}")


def require_binary(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            missing(f"{name} is not installed (apt-get install -y lvm2 tgt libiscsi-bin)")


def require_root() -> None:
    if os.geteuid() != 0:
        missing("needs root (loop devices, LVM, tgtd)")


def require_loop_devices() -> None:
    if not os.path.exists("/dev/loop-control"):
        missing("this machine has no loop devices (/dev/loop-control)")
