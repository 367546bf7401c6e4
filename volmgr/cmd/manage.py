"""volmgr-manage: the operator's command line (database, services, volumes, reconcile).

``volmgr-manage --config-file F <category> <action> [args]``. Each action is a small
function taking the parsed ``conf`` (its arguments under ``conf.command``); output is
an aligned table, or JSON with ``--format json``. A volmgr error prints ``error: ...``
on stderr and exits 1. The commands live in volmgr/manage/; this module only parses.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import url as sa_url

from volmgr import config, exception, rpc, states
from volmgr.cmd import state
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod
from volmgr.manage import adopt, reconcile, services, volumes

Command = Callable[[cfg.ConfigOpts], int]


def _engine(conf: cfg.ConfigOpts) -> Any:
    return engine_mod.create_engine(conf.database.connection)


def db_sync(conf: cfg.ConfigOpts) -> int:
    engine = _engine(conf)
    revision = conf.command.revision or "head"
    migration.upgrade(engine, revision)
    print(f"Database is at revision {migration.current_revision(engine)}.")
    return 0


def db_downgrade(conf: cfg.ConfigOpts) -> int:
    engine = _engine(conf)
    migration.downgrade(engine, conf.command.revision or "base")
    print(f"Database is at revision {migration.current_revision(engine)}.")
    return 0


def db_check(conf: cfg.ConfigOpts) -> int:
    problems = migration.drift(_engine(conf))
    if problems:
        for problem in problems:
            # Revision problems are (kind, sentence); Alembic's diffs are tuples to show.
            text = problem[1] if problem and problem[0] == "revision" else problem
            print(f"drift: {text}", file=sys.stderr)
        return 1
    print("Database schema matches the models.")
    return 0


def db_version(conf: cfg.ConfigOpts) -> int:
    print(migration.current_revision(_engine(conf)) or "none")
    return 0


def database(conf: cfg.ConfigOpts) -> Database:
    return Database.from_conf(conf)


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argparse argument of an action."""

    flags: tuple[str, ...]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Action:
    handler: Command
    help: str
    args: tuple[Arg, ...] = ()
    epilog: str | None = None


def _arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


_REVISION = _arg("--revision", help="Alembic revision (default: head for sync, base for "
                 "downgrade).")
_BINARY = _arg("--binary", default=rpc.VOLUME_SERVICE, help="Service binary (default: "
               "%(default)s).")
# Sub-command dests share oslo.config's namespace: ``host`` would clash with
# [DEFAULT] host, hence the explicit dests.
_HOST = _arg("service_host", metavar="host",
             help="Host name as the service registered it ([DEFAULT] host).")
_VOLUME = _arg("volume_id", metavar="volume",
               help="The volume's id, or its name when no other volume has that name.")

COMMANDS: dict[str, dict[str, Action]] = {
    "db": {
        "sync": Action(db_sync, "Create or upgrade the schema.", (_REVISION,)),
        "check": Action(db_check, "Exit 1 if the schema differs from the models."),
        "downgrade": Action(db_downgrade, "Downgrade the schema.", (_REVISION,)),
        "version": Action(db_version, "Print the schema revision."),
    },
    "service": {
        "list": Action(services.service_list,
                       "Services: status (enabled/disabled: taking new volumes or not), "
                       "state (up/down: heartbeating or not), capacity.",
                       (_arg("--binary", help="Only services of this binary."),)),
        "disable": Action(services.service_disable,
                          "Stop scheduling new volumes to HOST.",
                          (_HOST, _BINARY, _arg("--reason", help="Why (shown in list)."))),
        "enable": Action(services.service_enable, "Schedule new volumes to HOST again.",
                         (_HOST, _BINARY)),
        "remove": Action(services.service_remove,
                         "Give up on HOST for good (refused while it is up): its "
                         "transitional volumes, snapshots and attachments go to error_* "
                         "with a reason, and its service row is deleted.",
                         (_HOST, _BINARY, _arg("--reason",
                                               help="status_reason to record."))),
    },
    "volume": {
        "list": Action(volumes.volume_list, "Volumes of every project.", (
            _arg("--all", action="store_true", help="Include deleted volumes."),
            _arg("--host", dest="on_host", help="Only volumes on this host."),
            _arg("--status", help="Only volumes in this status."))),
        "show": Action(volumes.volume_show,
                       "One volume with its status_reason and attachments.",
                       (_VOLUME,)),
        "reset-state": Action(volumes.volume_reset_state,
                              "Set a volume's status by hand (storage is not touched).", (
            _VOLUME,
            _arg("--state", required=True, metavar="STATE",
                 help="One of: " + ", ".join(states.VOLUME_STATUSES)),
            _arg("--reason", help="status_reason to record."))),
        "force-delete": Action(volumes.volume_force_delete,
                               "Delete volumes whatever their status.",
                               (_arg("volume_ids", nargs="+", metavar="volume_id"),)),
        "manageable": Action(adopt.volume_manageable,
                             "LVs (or image files) of this host's backend and whether "
                             "each can be adopted."),
        "manage": Action(adopt.volume_manage,
                         "Adopt an LV (or image file) of this host's backend as a new "
                         "available volume (grown to whole GiB, renamed volume-<uuid>).", (
            _arg("source_name", metavar="name", help="The LV's (or file's) current name."),
            _arg("--project", required=True, help="Project that will own the volume "
                 "(its quota is charged)."),
            _arg("--name", dest="display_name", help="Volume name (default: the LV's)."))),
        "unmanage": Action(adopt.volume_unmanage,
                           "Forget an available volume; its LV is left in place.",
                           (_VOLUME,)),
    },
    "snapshot": {
        "manageable": Action(adopt.snapshot_manageable,
                             "Snapshots on this host's backend and whether each can be "
                             "adopted."),
        "manage": Action(adopt.snapshot_manage,
                         "Adopt a snapshot of VOLUME as a new available snapshot "
                         "(renamed snapshot-<uuid>).", (
            _arg("source_name", metavar="name", help="The snapshot's current name."),
            _arg("--volume", dest="volume_id", required=True,
                 help="The managed volume it is a snapshot of."),
            _arg("--name", dest="display_name", help="Snapshot name (default: its "
                 "current name)."))),
        "unmanage": Action(adopt.snapshot_unmanage,
                           "Forget an available snapshot; its storage is left in place.",
                           (_arg("snapshot_id", metavar="snapshot"),)),
    },
    "reconcile": {
        "run": Action(reconcile.reconcile, "Compare DB and backend on this host.", (
            _arg("--fix", action="store_true",
                 help="Remove orphan volumes, snapshots and targets; set rows whose "
                 "backing volume or snapshot is missing to error."),)),
    },
}

_RECONCILE_EPILOG = (
    "Compares the volume rows of this host ([DEFAULT] host) with the backend's volumes "
    "and targets. Exit status: 0 no differences (or all repaired), 3 differences found "
    "and not repaired, 1 error or a repair failed.")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json"], default="table",
                        help="Output format (default: table).")


def _add_args(parser: argparse.ArgumentParser, action: Action) -> None:
    for arg in action.args:
        parser.add_argument(*arg.flags, **arg.options)
    _add_format(parser)


def _add_parsers(subparsers: Any) -> None:
    for category, actions in COMMANDS.items():
        if category == "reconcile":
            # ``reconcile [--fix]`` has no action word; it is the category's only action.
            parser = subparsers.add_parser(category, help=actions["run"].help,
                                           epilog=_RECONCILE_EPILOG)
            parser.set_defaults(action="run")
            _add_args(parser, actions["run"])
            continue
        category_parser = subparsers.add_parser(category, help=f"{category} commands")
        action_parsers = category_parser.add_subparsers(dest="action")
        action_parsers.required = True
        for name, action in actions.items():
            _add_args(action_parsers.add_parser(name, help=action.help), action)


def _embedded_fallback(conf: cfg.ConfigOpts) -> bool:
    """Without a config file or ``--state-path``, the only volmgr on this machine that
    can have written a database is volmgr-all: use its state directory."""
    if conf.config_file or state.state_path_given(conf):
        return False
    conf.set_default("state_path", state.embedded_state_path())
    return True


def _require_database(conf: cfg.ConfigOpts, fallback: bool) -> None:
    """Commands other than db need a migrated database: say where it was looked for
    instead of a traceback, and never create an empty SQLite file as a side effect."""
    url = sa_url.make_url(conf.database.connection)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not os.path.exists(url.database):
        if not fallback:
            raise exception.DBError(reason=(
                f"no volmgr database at {url.database}; run 'volmgr-manage db sync' to "
                "create it, or point --config-file or --state-path at an existing one"))
        raise exception.DBError(reason=(
            f"no volmgr database at {url.database} (no config file was found, so "
            "volmgr-manage looked in volmgr-all's state directory). Point it at yours "
            "with --config-file FILE ([database] connection) or --state-path DIR (the "
            "state_path of volmgr-all or volmgr-volume)"))
    migration.require_database(conf.database.connection)


def main(argv: Sequence[str] | None = None) -> int:
    conf = config.new_conf()
    state.register_state_path_flag(conf)
    conf.register_cli_opt(cfg.SubCommandOpt(
        "command", title="Commands", handler=_add_parsers,
        help="db sync|check|downgrade|version; service list|disable|enable|remove; "
        "volume list|show|reset-state|force-delete|manageable|manage|unmanage; "
        "snapshot manageable|manage|unmanage; "
        "reconcile [--fix]"))
    config.parse_args(sys.argv[1:] if argv is None else argv, conf)
    fallback = _embedded_fallback(conf)
    handler = COMMANDS[conf.command.name][conf.command.action].handler
    try:
        if conf.command.name != "db":
            _require_database(conf, fallback)
        return handler(conf)
    except exception.VolmgrError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
