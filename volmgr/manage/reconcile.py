"""``volmgr-manage reconcile [--fix]``: compare this host's volume rows with what its
backend really holds, and report (or repair) the differences.

Problems found:

* ``orphan_lv`` - a volume on the backend with no live row anywhere (a crash between
  lvcreate and the INSERT's rollback, or a hand-made copy): removed with ``--fix``.
* ``orphan_target`` - an export whose volume has no live row, or whose row is in a
  status that has no business being exported: removed with ``--fix``.
* ``missing_lv`` - a live row in a status that needs its backing volume, but the
  backend has none (removed by hand, lost disk): set to ``error`` with ``--fix``.
* ``orphan_snapshot`` - a snapshot on the backend with no live snapshot row: removed
  with ``--fix``; ``missing_snapshot`` - an available snapshot row whose snapshot is
  gone: set to ``error`` with ``--fix``.
* ``foreign_lv`` / ``foreign_target`` - a volume or export on this host whose live row
  names another host: only reported, never touched (two hosts sharing a backend, or a
  wrong ``[DEFAULT] host``, is a configuration problem for a person to resolve).

It must never touch a volume a row still claims, and never change a row that moved
while it looked: each repair re-checks and uses a guarded UPDATE.
"""

from __future__ import annotations

from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.db import Database
from volmgr.manage.output import note, output, wants_json
from volmgr.manage.progress import Progress
from volmgr.volume.drift import (  # noqa: F401 - the comparison, shared with volmgr-volume
    EXPORT_EXPECTED,
    MISSING_REASON,
    NEEDS_BACKING,
    ORDER,
    Finding,
    find_problems,
    fix_problems,
)
from volmgr.volume.driver import VolumeDriver

#: Exit codes, after nova-manage's audit commands: scripts can tell "clean" from
#: "found something" without parsing output.
EXIT_CLEAN = 0
EXIT_FAILED = 1
EXIT_FOUND = 3


def _require_registered_host(db: Database, host: str) -> None:
    """--fix deletes data; a wrong database or host name would make every volume look
    orphaned, so insist that this host's manager is known to this database."""
    try:
        db.service_get(host, rpc.VOLUME_SERVICE)
    except exception.ServiceNotFound:
        raise exception.InvalidConfiguration(
            reason=f"no {rpc.VOLUME_SERVICE} service for host {host!r} in this database; "
            "refusing --fix (check [DEFAULT] host and [database] connection)") from None


def load_driver(conf: cfg.ConfigOpts) -> VolumeDriver:
    from volmgr.volume.drivers import loader

    driver: VolumeDriver = loader.load_driver(conf)
    driver.check_setup()
    return driver


def reconcile(conf: cfg.ConfigOpts) -> int:
    host = conf.host
    db = Database.from_conf(conf)
    try:
        if conf.command.fix:
            _require_registered_host(db, host)
        driver = load_driver(conf)
        findings = find_problems(db, driver, host)
        if conf.command.fix and findings:
            with Progress("reconcile --fix", len(findings)) as progress:
                fix_problems(db, driver, findings, progress)
    finally:
        db.dispose()
    if findings or wants_json(conf):
        output(conf, [f.row() for f in findings],
               ("problem", "volume_id", "status", "detail", "action"))
    else:
        print(f"No differences between the database and the backend on host {host}.")
    if not findings:
        return EXIT_CLEAN
    if not conf.command.fix:
        note(f"{len(findings)} difference(s) found on host {host}; "
             "run with --fix to repair them")
        return EXIT_FOUND
    failed = [f for f in findings if f.action.startswith("failed")]
    if failed:
        note(f"{len(failed)} of {len(findings)} repair(s) failed")
        return EXIT_FAILED
    if any(f.action == "reported only" for f in findings):
        return EXIT_FOUND
    return EXIT_CLEAN
