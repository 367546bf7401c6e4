"""Every option volmgr declares, for oslo-config-generator and for ``config.new_conf``.

Options live in the modules that own them; this module only collects them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from oslo_config import cfg


def list_opts() -> list[tuple[str, Iterable[cfg.Opt]]]:
    from volmgr import config, log
    from volmgr.api import options as api_options
    from volmgr.db import engine
    from volmgr.db import types as db_types
    from volmgr.volume import options as volume_options

    return [
        ("DEFAULT", list(itertools.chain(config.core_opts, log.log_opts,
                                          api_options.message_opts,
                                          db_types.type_opts))),
        ("quota", config.quota_opts),
        ("database", engine.database_opts),
        ("api", api_options.api_opts),
        ("volume", volume_options.volume_opts),
        ("lvm", volume_options.lvm_opts),
        ("file", volume_options.file_opts),
        ("upgrade_levels", volume_options.upgrade_opts),
    ]
