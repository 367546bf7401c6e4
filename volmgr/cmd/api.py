"""Entry point of volmgr-api: serves the WSGI app with ``[api] workers`` worker
processes, each a waitress HTTP server (``volmgr.api.server``) with ``[api] threads``
request threads, supervised by gunicorn's arbiter.

The master process only parses the configuration and supervises; each worker builds its
own ``Database`` engine and oslo.messaging transport once, right after the fork (an
engine or AMQP connection shared across a fork breaks), and reuses them for every
request.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from oslo_config import cfg

from volmgr import config, heap, log, metrics
from volmgr.api import auth

LOG = logging.getLogger("volmgr.api")


class APIServer(BaseApplication):  # type: ignore[misc]
    """gunicorn embedded: settings from ``conf``, the app built per worker."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        super().__init__()

    def gunicorn_settings(self) -> dict[str, Any]:
        api = self.conf.api
        settings: dict[str, Any] = {
            "bind": [f"{api.bind_host}:{api.bind_port}"],
            "workers": api.workers,
            # waitress in each worker: it buffers whole requests before a thread of
            # its [api] threads sees them, and times out idle and slow clients.
            "worker_class": "volmgr.api.server.WaitressWorker",
            "timeout": api.worker_timeout,
            "graceful_timeout": 30,
            "preload_app": False,
            "proc_name": "volmgr-api",
            # Multiprocess metrics: a dead worker's live gauges are dropped.
            "child_exit": lambda server, worker: metrics.worker_exited(worker.pid),
            "errorlog": "-",
            "loglevel": "info",
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at a fixed per-user path: several
            # API services (or tests) on one host would fight over it.
            settings["control_socket_disable"] = True
        return settings

    def load_config(self) -> None:
        for key, value in self.gunicorn_settings().items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        # Runs in each worker after fork (preload_app is off).
        from volmgr.api.app import build_app

        app = build_app(self.conf)
        heap.freeze_startup_objects("volmgr-api worker")
        LOG.info("volmgr-api worker ready (auth_strategy=%s)", self.conf.auth_strategy)
        return app


def main(argv: list[str] | None = None) -> int:
    conf = config.parse_args(sys.argv[1:] if argv is None else argv)
    log.setup(conf, "volmgr-api")
    auth.warn_if_noauth(conf)
    LOG.info("volmgr-api listening on %s:%d with %d worker(s)", conf.api.bind_host,
             conf.api.bind_port, conf.api.workers)
    # Before any worker forks: every worker writes its samples where /metrics sums them.
    operator_dir = os.environ.get(metrics.MULTIPROC_ENV)
    metrics_dir = metrics.enable_multiprocess()
    try:
        APIServer(conf).run()
    finally:
        metrics.cleanup_multiprocess(metrics_dir, created=not operator_dir)
    return 0
