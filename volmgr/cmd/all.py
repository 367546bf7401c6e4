"""volmgr-all: the API and one volume manager in a single process, on embedded defaults.

Defaults: SQLite under ``state_path`` (``$XDG_STATE_HOME/volmgr``, by default
``~/.local/state/volmgr``; ``--state-path`` moves it), port 8776 (``--port``),
oslo.messaging's in-process ``fake://`` transport, the file driver, and no iSCSI export:
``--iscsi`` exports through the tgtd answering on the target port, which is never used
unless asked (it may be someone else's). Every default can be overridden with
``--config-file``. ``--demo`` drives the running service through its own HTTP API once
and exits. This is the quick start, not a deployment: production runs ``volmgr-api`` and
``volmgr-volume`` separately over RabbitMQ.

Stopping (Ctrl-C or SIGTERM, whenever it arrives): the HTTP server stops answering, the
work already accepted finishes within ``[volume] graceful_shutdown_timeout``, and what is
left is logged by volume id (the next start re-drives it). A start-up that fails prints
one line naming what failed, releases what was started and exits 1.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from oslo_config import cfg

from volmgr import config, exception, heap, log, rpc, states
from volmgr.api import auth, server
from volmgr.api.app import build_app
from volmgr.cmd import state
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
    cfg.PortOpt("port", help="Serve HTTP on this port (default 8776; [api] bind_port)."),
    cfg.BoolOpt("iscsi", default=False,
                help="Export volumes over iSCSI through the tgtd answering on "
                "[volume] target_ip_address:target_port (127.0.0.1:3260). Without it "
                "no tgtd is ever touched and attachments are local."),
]

#: Seconds the manager must stay idle, with accepted work still owed, before a stop
#: stops waiting for casts that may still be on their way to it.
SETTLE = 1.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupError(Exception):
    """volmgr-all cannot start; the message names what failed."""


def _default_state_path() -> str:
    return state.embedded_state_path()


def _tgtd_answers(address: str, port: int) -> bool:
    if shutil.which("tgtadm") is None:
        return False
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _choose_target_helper(conf: cfg.ConfigOpts) -> None:
    """No iSCSI unless asked: ``--iscsi`` exports through the tgtd on the configured
    portal (which must answer); a target helper named in a config file wins."""
    info = conf.get_location("target_helper", "volume")
    if info is not None and info.location not in (cfg.Locations.opt_default,
                                                   cfg.Locations.set_default):
        return
    if not conf.iscsi:
        conf.set_default("target_helper", "none", group="volume")
        return
    portal = f"{conf.volume.target_ip_address}:{conf.volume.target_port}"
    if not _tgtd_answers(conf.volume.target_ip_address, conf.volume.target_port):
        raise StartupError(f"--iscsi: no tgtd answers on {portal} (or tgtadm is not "
                           "installed); start one, or drop --iscsi")
    conf.set_default("target_helper", "tgtadm", group="volume")


def build_conf(argv: Sequence[str]) -> cfg.ConfigOpts:
    """The embedded defaults, then whatever ``argv`` and config files say."""
    conf = config.new_conf()
    conf.register_cli_opts(cli_opts)
    state.register_state_path_flag(conf)
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
    if conf.port is not None:
        conf.set_override("bind_port", conf.port, group="api")
    _choose_target_helper(conf)
    return conf


class AllInOne:
    """The database, the in-process bus, the manager and the HTTP server."""

    def __init__(self, conf: cfg.ConfigOpts, listener: socket.socket) -> None:
        """Build every piece on ``listener`` (already listening: clients that connect
        meanwhile wait in the backlog until start()). Raises StartupError, naming the
        step that failed, after releasing whatever was built before it."""
        self.conf = conf
        self.listener = listener
        self._started = False
        self._release: list[tuple[str, object]] = []
        step = "state directory"
        try:
            try:
                os.makedirs(conf.state_path, exist_ok=True)
            except OSError as error:
                raise StartupError(f"cannot create the state directory {conf.state_path}: "
                                   f"{error.strerror or error}; choose another with "
                                   "--state-path") from None
            step = "database"
            self.db = Database.from_conf(conf)
            self._release.append(("database", self.db.dispose))
            migration.upgrade(self.db.engine)
            step = "message bus"
            self.transport = rpc.get_transport(conf, url=conf.transport_url)
            self._release.append(("message bus", self.transport.cleanup))
            step = "volume manager"
            self.service = VolumeService(conf, db=self.db, transport=self.transport,
                                         notifier=notifications.VolumeNotifier(None))
            step = "API"
            rpcapi = VolumeAPI(conf, self.transport, cast_retry=conf.api.rpc_cast_retry,
                               call_timeout=conf.api.rpc_call_timeout)
            self.app = build_app(conf, self.db, rpcapi)
            # The same HTTP server as volmgr-api (waitress), in one process.
            self.httpd = server.HTTPServer(self.app, [self.listener], conf)
        except StartupError:
            self._release_all()
            raise
        except Exception as error:
            self._release_all()
            raise StartupError(f"cannot start the {step}: {_describe(error)}") from error
        self._http_thread = threading.Thread(target=self.httpd.serve_forever,
                                             name="volmgr-http", daemon=True)

    def _release_all(self) -> None:
        for what, release in reversed(self._release):
            try:
                release()  # type: ignore[operator]
            except Exception as error:
                LOG.debug("Releasing the %s failed: %s", what, error)
        self._release.clear()

    @property
    def url(self) -> str:
        host, port = self.httpd.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Start the manager, then serve. Raises StartupError (with everything this
        object built released) when the manager cannot start."""
        try:
            self.service.start()
        except Exception as error:
            self._abandon()
            raise StartupError(f"cannot start the volume manager: {_describe(error)}") \
                from error
        self._started = True
        self._http_thread.start()

    def _abandon(self) -> None:
        """Release a node whose start failed: nothing is served, nothing is owed."""
        if not self._release:
            return  # already released
        self.httpd.close(grace=0.1)
        self.service.stop(0)
        self._release_all()

    def owed(self) -> list[str]:
        """Ids of this host's volumes whose accepted operation has not finished."""
        return sorted(volume.id for volume in self.db.volumes_by_host(
            self.conf.host, tuple(states.VOLUME_TRANSITIONAL)))

    def _finish_accepted(self, deadline: float) -> None:
        """Let the work already accepted finish: while rows are owed, wait as long as
        the manager is busy, or until it has been idle for SETTLE seconds (a cast still
        on its way would have reached it by then), or until ``deadline``."""
        idle_since: float | None = None
        while time.monotonic() < deadline and self.owed():
            if self.service.manager.wait_idle(0.2):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= SETTLE:
                    return
            else:
                idle_since = None
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop answering HTTP, finish the accepted work (within
        ``graceful_shutdown_timeout``), stop the manager, and log what is left."""
        if not self._started:
            self._abandon()
            return
        deadline = time.monotonic() + self.conf.volume.graceful_shutdown_timeout
        self.httpd.close()
        if self._http_thread.is_alive():
            self._http_thread.join(timeout=5)
        self.listener.close()
        self._finish_accepted(deadline)
        self.service.stop(max(deadline - time.monotonic(), 0.0))
        left = self.owed()
        if left:
            LOG.warning("%d accepted operation(s) did not finish before the stop (volumes "
                        "%s); the next start of volmgr-all on %s re-drives them after "
                        "[volume] recovery_age (%d s)", len(left), ", ".join(left),
                        self.conf.state_path, self.conf.volume.recovery_age)
        else:
            LOG.info("Every accepted operation finished")
        self._release_all()


def _describe(error: BaseException) -> str:
    if isinstance(error, exception.VolmgrError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {error}"


def _cinder() -> str:
    """How to call cinder: the one installed next to this volmgr, if any."""
    beside = os.path.join(os.path.dirname(sys.executable), "cinder")
    return beside if os.path.exists(beside) else "cinder"


def _banner(conf: cfg.ConfigOpts, url: str) -> str:
    iscsi = "" if conf.volume.target_helper != "none" else (
        f" (--iscsi exports through a tgtd on {conf.volume.target_ip_address}:"
        f"{conf.volume.target_port})")
    return (
        f"volmgr-all is serving {url}\n"
        f"  state:    {conf.state_path} (database {conf.database.connection})\n"
        f"  storage:  {conf.volume.driver} driver, target helper "
        f"{conf.volume.target_helper}{iscsi}\n"
        f"  bus:      {conf.transport_url}\n"
        "Try:\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' {url}/v1.1/demo/extensions\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' -H 'Content-Type: application/json' \\\n"
        f"       -d '{{\"volume\": {{\"size\": 1, \"display_name\": \"v1\"}}}}' "
        f"{url}/v1.1/demo/os-volumes\n"
        f"  curl -s -H 'X-Auth-Token: me:demo' {url}/v1.1/demo/os-volumes/detail\n"
        f"  {_cinder()} --os-auth-type noauth --os-user-id me --os-project-id demo "
        f"--os-volume-api-version 3.0 --os-endpoint {url}/v3 list\n"
        f"  volmgr-manage --state-path {conf.state_path} volume list\n"
        "Stop with Ctrl-C.")


@contextmanager
def _signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM, never lost: blocked in this thread (and so in every thread
    started meanwhile, which inherit the mask) and collected by ``_wait_for_signal``;
    a handler records any that reaches a thread started before. Restored on exit."""
    received: list[int] = []

    def _record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, _record) for signum in _STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield received
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait_for_signal(received: list[int]) -> int:
    while not received:
        info = signal.sigtimedwait(_STOP_SIGNALS, 0.5)
        if info is not None:
            received.append(info.si_signo)
    return received[0]


@contextmanager
def _quiet_console(conf: cfg.ConfigOpts) -> Iterator[str]:
    """During the demo the console shows only its narration and WARNING or worse; the
    whole log goes to ``volmgr-all-demo.log`` in the state directory."""
    path = os.path.join(conf.state_path, "volmgr-all-demo.log")
    try:
        os.makedirs(conf.state_path, exist_ok=True)
    except OSError as error:
        raise StartupError(f"cannot create the state directory {conf.state_path}: "
                           f"{error.strerror or error}; choose another with "
                           "--state-path") from None
    console = [h for h in logging.getLogger().handlers
               if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout)]
    levels = [h.level for h in console]
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(
        "%(asctime)s volmgr-all[%(process)d] %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(to_file)
    for handler in console:
        handler.setLevel(logging.WARNING)
    try:
        yield path
    finally:
        for handler, level in zip(console, levels, strict=True):
            handler.setLevel(level)
        logging.getLogger().removeHandler(to_file)
        to_file.close()


def _listen(conf: cfg.ConfigOpts) -> socket.socket:
    # Listen first: a busy port is the likeliest mistake, and it should cost nothing.
    try:
        return server.listen(conf.api.bind_host, conf.api.bind_port)
    except OSError as error:
        raise StartupError(f"cannot listen on {conf.api.bind_host}:{conf.api.bind_port}: "
                           f"{error.strerror}; stop whatever uses it or choose another "
                           "port with --port") from None


def _demo(conf: cfg.ConfigOpts) -> int:
    from volmgr.cmd import demo

    with _quiet_console(conf) as log_path:
        node = AllInOne(conf, _listen(conf))
        node.start()
        try:
            code = demo.run(node.url, out=sys.stdout)
        except KeyboardInterrupt:
            print("demo interrupted", flush=True)
            code = 130
        finally:
            node.stop()
    print(f"(the service's log of this run: {log_path})", flush=True)
    return code


def _serve(conf: cfg.ConfigOpts) -> int:
    with _signals_held() as received:
        node = AllInOne(conf, _listen(conf))
        node.start()
        heap.freeze_startup_objects(PROGRAM)
        try:
            print(_banner(conf, node.url), flush=True)
            signum = _wait_for_signal(received)
            LOG.info("Received %s, stopping: no new requests; accepted work finishes "
                     "within %d s", signal.Signals(signum).name,
                     conf.volume.graceful_shutdown_timeout)
        finally:
            node.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        conf = build_conf(sys.argv[1:] if argv is None else argv)
    except (cfg.Error, StartupError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    log.setup(conf, PROGRAM)
    auth.warn_if_noauth(conf)
    try:
        if conf.demo:
            return _demo(conf)
        return _serve(conf)
    except StartupError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
