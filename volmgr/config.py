"""Options every volmgr process shares, and the one way a process builds its ``conf``.

Each module registers the options it owns on the ``ConfigOpts`` it is handed; nothing
here or anywhere else reads a global ``cfg.CONF`` at import time.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from oslo_config import cfg

import volmgr

core_opts = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="Name of this node. A volume manager consumes RPC on the topic "
        "'volmgr-volume' with this name as server, and its services row carries it.",
    ),
    cfg.StrOpt(
        "state_path",
        default="/var/lib/volmgr",
        help="Directory for volmgr's own state: persistent target files, file-driver "
        "images, the embedded SQLite database and lock files.",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="noauth",
        choices=[
            ("noauth", "X-Auth-Token: <user>:<project> is trusted as is (development)."),
            ("keystone", "Tokens are validated by keystonemiddleware.auth_token."),
        ],
        help="How the API authenticates callers.",
    ),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="Seconds without a heartbeat after which a service is considered down "
        "and is no longer chosen for new volumes.",
    ),
    cfg.StrOpt(
        "storage_availability_zone",
        default="nova",
        help="Availability zone reported for volumes created on this deployment.",
    ),
]

quota_opts = [
    cfg.IntOpt("volumes", default=10, min=-1,
               help="Volumes a project may own; -1 means unlimited."),
    cfg.IntOpt("gigabytes", default=1000, min=-1,
               help="Total GiB of volumes and snapshots a project may own; -1 means unlimited."),
    cfg.IntOpt("snapshots", default=10, min=-1,
               help="Snapshots a project may own; -1 means unlimited."),
]


def new_conf() -> cfg.ConfigOpts:
    """A fresh ``ConfigOpts`` with every volmgr option registered."""
    from volmgr import opts

    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(list(options), group=None if group == "DEFAULT" else group)
    return conf


def parse_args(
    argv: Sequence[str] | None,
    conf: cfg.ConfigOpts | None = None,
    default_config_files: list[str] | None = None,
) -> cfg.ConfigOpts:
    """Build (or reuse) a conf and parse ``argv`` (without the program name) into it."""
    conf = conf if conf is not None else new_conf()
    conf(
        list(argv) if argv is not None else None,
        project="volmgr",
        version=volmgr.__version__,
        default_config_files=default_config_files,
    )
    return conf
