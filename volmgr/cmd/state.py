"""Where the embedded quick start keeps its state, and the ``--state-path`` flag.

``volmgr-all`` runs without a config file and keeps its SQLite database and image files
under ``$XDG_STATE_HOME/volmgr`` (``~/.local/state/volmgr``). ``volmgr-manage`` run
without a config file looks there too, so an operator can inspect what ``volmgr-all``
did without writing one.
"""

from __future__ import annotations

import os

from oslo_config import cfg

from volmgr import config

#: The option ``--state-path`` sets: ``[DEFAULT] state_path`` itself, so a config file
#: may still set it and ``$state_path`` in other options follows it.
_BASE = next(opt for opt in config.core_opts if opt.name == "state_path")


def embedded_state_path() -> str:
    """volmgr-all's state directory: ``$XDG_STATE_HOME/volmgr``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "volmgr")


def register_state_path_flag(conf: cfg.ConfigOpts) -> None:
    """Make ``[DEFAULT] state_path`` settable as ``--state-path DIR`` too."""
    conf.unregister_opt(_BASE)
    conf.register_cli_opt(cfg.StrOpt(
        "state-path", dest="state_path", default=_BASE.default, metavar="DIR",
        help=(_BASE.help or "") + " Also [DEFAULT] state_path in a config file."))


def state_path_given(conf: cfg.ConfigOpts) -> bool:
    """Whether ``state_path`` came from the command line or a config file."""
    info = conf.get_location("state_path")
    return info is not None and info.location not in (cfg.Locations.opt_default,
                                                       cfg.Locations.set_default)
