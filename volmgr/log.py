"""Logging of volmgr's daemons: stderr (the journal under systemd), levels from ``conf``.

``[DEFAULT] debug`` and ``[DEFAULT] default_log_levels`` are mutable: ``reload`` (SIGHUP)
re-reads the config files and applies new levels without a restart. Secrets are never
passed to a logger here; callers redact before they log.
"""

from __future__ import annotations

import logging
import os
import sys

from oslo_config import cfg

log_opts = [
    cfg.BoolOpt("debug", default=False, mutable=True,
                help="Log at DEBUG instead of INFO. Re-read on SIGHUP."),
    cfg.ListOpt("default_log_levels", mutable=True,
                default=["amqp=WARNING", "kombu=WARNING", "oslo_messaging=INFO",
                         "sqlalchemy=WARNING", "stevedore=WARNING", "urllib3=WARNING"],
                help="logger=LEVEL pairs for noisy libraries. Re-read on SIGHUP."),
]

_HANDLER_NAME = "volmgr-stderr"


def _format(program: str) -> str:
    # journald stamps every line itself; a terminal or a file needs the time.
    if os.environ.get("JOURNAL_STREAM"):
        return f"{program}[%(process)d] %(levelname)s %(name)s %(message)s"
    return f"%(asctime)s {program}[%(process)d] %(levelname)s %(name)s %(message)s"


def apply_levels(conf: cfg.ConfigOpts) -> None:
    """Set the root and per-library levels from ``conf``."""
    logging.getLogger().setLevel(logging.DEBUG if conf.debug else logging.INFO)
    for pair in conf.default_log_levels:
        name, _, level = pair.partition("=")
        if name and level:
            logging.getLogger(name.strip()).setLevel(level.strip().upper())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the object
    it was at set-up (an embedding program or a test may swap stderr later)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup(conf: cfg.ConfigOpts, program: str) -> None:
    """Send every log record to stderr, once per process."""
    root = logging.getLogger()
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(_format(program)))
        root.addHandler(handler)
    apply_levels(conf)
    logging.captureWarnings(True)


def reload(conf: cfg.ConfigOpts) -> None:
    """Re-read the config files and apply changed log levels (the SIGHUP action)."""
    conf.mutate_config_files()
    apply_levels(conf)
    logging.getLogger(__name__).info("Log levels reloaded: debug=%s", conf.debug)
