"""volmgr-all: the API and one volume manager in a single process, on embedded defaults.

Defaults: SQLite under ``state_path`` (``$XDG_STATE_HOME/volmgr``, by default
``~/.local/state/volmgr``), oslo.messaging's in-process ``fake://`` transport, the file
driver, and the tgtadm target helper when a tgtd answers on the target port (``none``
otherwise). Every default can be overridden with ``--config-file``. ``--demo`` drives
the running service through its own HTTP API once and exits. This is the quick start,
not a deployment: production runs ``volmgr-api`` and ``volmgr-volume`` separately over
RabbitMQ.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from oslo_config import cfg

from volmgr import config, log, rpc
from volmgr.api import auth, server
from volmgr.api.app import build_app
from volmgr.db import Database, migration
from volmgr.volume import notifications
from volmgr.volume.rpcapi import VolumeAPI
from volmgr.volume.service import VolumeService

LOG = logging.getLogger("volmgr.cmd.all")
PROGRAM = "volmgr-all"

cli_opts = [
    cfg.BoolOpt("demo", default=False,
                help="Create, attach, detach and delete one volume through the API, "
                "print what happens, then exit."),
]


def _default_state_path() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "volmgr")


def _tgtd_answers(address: str, port: int) -> bool:
    if shutil.which("tgtadm") is None:
        return False
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _choose_target_helper(conf: cfg.ConfigOpts) -> None:
    """Export over iSCSI when a tgtd answers on the configured portal, unless the
    operator named a target helper."""
    info = conf.get_location("target_helper", "volume")
    if info is not None and info.location not in (cfg.Locations.opt_default,
                                                   cfg.Locations.set_default):
        return
    answers = _tgtd_answers(conf.volume.target_ip_address, conf.volume.target_port)
    conf.set_default("target_helper", "tgtadm" if answers else "none", group="volume")


def build_conf(argv: Sequence[str]) -> cfg.ConfigOpts:
    """The embedded defaults, then whatever ``argv`` and config files say."""
    conf = config.new_conf()
    conf.register_cli_opts(cli_opts)
    rpc.register_messaging_opts(conf)
    conf.set_default("state_path", _default_state_path())
    conf.set_default("transport_url", "fake://")
    conf.set_default("driver", "file", group="volume")
    conf.set_default("bind_host", "127.0.0.1", group="api")
    if "--demo" in argv:
        # The demonstration talks only to itself: any free port will do, and a busy
        # 8776 (say, another volmgr) must not make it fail.
        conf.set_default("bind_port", 0, group="api")
    conf.set_default("report_interval", 5, group="volume")
    conf.set_default("recovery_interval", 15, group="volume")
    conf.set_default("recovery_age", 10, group="volume")
    config.parse_args(list(argv), conf, default_config_files=[])
    _choose_target_helper(conf)
    return conf


class AllInOne:
    """The database, the in-process bus, the manager and the HTTP server."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        # Listen first: a busy port is the likeliest mistake, and it should cost nothing.
        # Clients that connect meanwhile wait in the backlog until start().
        self.listener = server.listen(conf.api.bind_host, conf.api.bind_port)
        os.makedirs(conf.state_path, exist_ok=True)
        self.db = Database.from_conf(conf)
        migration.upgrade(self.db.engine)
        self.transport = rpc.get_transport(conf, url=conf.transport_url)
        self.service = VolumeService(conf, db=self.db, transport=self.transport,
                                     notifier=notifications.VolumeNotifier(None))
        rpcapi = VolumeAPI(conf, self.transport, cast_retry=conf.api.rpc_cast_retry,
                           call_timeout=conf.api.rpc_call_timeout)
        self.app = build_app(conf, self.db, rpcapi)
        # The same HTTP server as volmgr-api (waitress), in one process.
        self.httpd = server.HTTPServer(self.app, [self.listener], conf)
        self._http_thread = threading.Thread(target=self.httpd.serve_forever,
                                             name="volmgr-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.service.start()
        self._http_thread.start()

    def stop(self) -> None:
        self.httpd.close()
        if self._http_thread.is_alive():
            self._http_thread.join(timeout=5)
        self.listener.close()
        self.service.stop(self.conf.volume.graceful_shutdown_timeout)
        self.db.dispose()


def _banner(conf: cfg.ConfigOpts, url: str) -> str:
    return (
        f"volmgr-all is serving {url}\n"
        f"  state:    {conf.state_path} (database {conf.database.connection})\n"
        f"  storage:  {conf.volume.driver} driver, target helper {conf.volume.target_helper}\n"
        f"  bus:      {conf.transport_url}\n"
        "Try:\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' {url}/v1.1/demo/extensions\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' -H 'Content-Type: application/json' \\\n"
        f"       -d '{{\"volume\": {{\"size\": 1, \"display_name\": \"v1\"}}}}' "
        f"{url}/v1.1/demo/os-volumes\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' {url}/v1.1/demo/os-volumes/detail\n"
        f"  cinder --os-auth-type noauth --os-user-id me --os-project-id demo "
        f"--os-endpoint {url}/v3/demo list\n"
        "Stop with Ctrl-C.")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        conf = build_conf(sys.argv[1:] if argv is None else argv)
    except cfg.Error as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    log.setup(conf, PROGRAM)
    auth.warn_if_noauth(conf)
    try:
        node = AllInOne(conf)
    except OSError as error:
        print(f"{PROGRAM}: cannot listen on {conf.api.bind_host}:{conf.api.bind_port}: "
              f"{error.strerror}; stop whatever uses it or set [api] bind_port in a "
              "--config-file", file=sys.stderr)
        return 1
    try:
        node.start()
        if conf.demo:
            from volmgr.cmd import demo
            return demo.run(node.url, out=sys.stdout)
        print(_banner(conf, node.url), flush=True)
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        stop.wait()
        return 0
    finally:
        node.stop()
