"""volmgr-manage: the operator's command line (database, services, volumes, reconcile).

Each sub-command is a small function taking the parsed ``conf``; output is a table, or
JSON with ``--format json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

from volmgr import config, exception
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod

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
            print(f"drift: {problem}", file=sys.stderr)
        return 1
    print("Database schema matches the models.")
    return 0


def db_version(conf: cfg.ConfigOpts) -> int:
    print(migration.current_revision(_engine(conf)) or "none")
    return 0


COMMANDS: dict[str, dict[str, Command]] = {
    "db": {"sync": db_sync, "check": db_check, "downgrade": db_downgrade,
           "version": db_version},
}


def output(conf: cfg.ConfigOpts, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as an aligned table, or as JSON with ``--format json``."""
    if conf.command.format == "json":
        print(json.dumps(list(rows), indent=2, default=str))
        return
    widths = [max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w)
                        for c, w in zip(columns, widths, strict=True)))


def database(conf: cfg.ConfigOpts) -> Database:
    return Database.from_conf(conf)


def _add_parsers(subparsers: Any) -> None:
    for category, actions in COMMANDS.items():
        category_parser = subparsers.add_parser(category)
        action_parsers = category_parser.add_subparsers(dest="action")
        action_parsers.required = True
        for action in actions:
            parser = action_parsers.add_parser(action)
            parser.add_argument("args", nargs="*")
            parser.add_argument("--revision")
            parser.add_argument("--format", choices=["table", "json"], default="table")
            parser.add_argument("--state")
            parser.add_argument("--fix", action="store_true")
            parser.add_argument("--reason")
            parser.add_argument("--binary", default="volmgr-volume")
            parser.add_argument("--all", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    conf = config.new_conf()
    conf.register_cli_opt(cfg.SubCommandOpt(
        "command", title="Commands", handler=_add_parsers,
        help="db sync|check|downgrade|version"))
    config.parse_args(sys.argv[1:] if argv is None else argv, conf)
    handler = COMMANDS[conf.command.name][conf.command.action]
    try:
        return handler(conf)
    except exception.VolmgrError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
