"""Entry point of ``volmgr-volume --config-file F``: the manager daemon of one storage host.

Logs to stderr (the journal under systemd). SIGTERM/SIGINT stop consuming and let
in-flight operations finish within ``[volume] graceful_shutdown_timeout``, then exit 0;
SIGHUP re-reads log levels. Under systemd it reports READY=1 once the queue is consumed,
STOPPING=1 on shutdown, and WATCHDOG=1 while its loops are alive.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from oslo_config import cfg

from volmgr import config, exception, heap, log, rpc, systemd
from volmgr.volume.service import VolumeService

LOG = logging.getLogger("volmgr.cmd.volume")


class _StopBeforeReady(Exception):
    """SIGTERM arrived while the service was still starting (e.g. waiting for the broker)."""


class _Signals:
    """Turns signals into flags the main loop acts on; handlers only set state."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.started = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        if not self.started:
            raise _StopBeforeReady()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload.set()


def _serve(conf: cfg.ConfigOpts, service: VolumeService, signals: _Signals) -> None:
    watchdog = systemd.watchdog_interval()
    tick = min(watchdog, 1.0) if watchdog else 1.0
    if watchdog:
        systemd.notify("WATCHDOG=1")
    while not signals.stop.wait(tick):
        if signals.reload.is_set():
            signals.reload.clear()
            try:
                log.reload(conf)
            except Exception as error:
                LOG.error("Reloading the configuration failed: %s", error)
        if watchdog and service.alive():
            systemd.notify("WATCHDOG=1")


def main(argv: Sequence[str] | None = None) -> int:
    conf = config.new_conf()
    try:
        config.parse_args(list(argv) if argv is not None else sys.argv[1:], conf)
    except cfg.Error as error:
        print(f"{rpc.VOLUME_SERVICE}: {error}", file=sys.stderr)
        return 2
    log.setup(conf, rpc.VOLUME_SERVICE)
    if conf.volume.nice:
        os.nice(conf.volume.nice)
        LOG.info("Running at nice +%d ([volume] nice)", conf.volume.nice)
    signals = _Signals()
    signals.install()
    service: VolumeService | None = None
    try:
        service = VolumeService(conf)
        service.start()
        signals.started = True
        heap.freeze_startup_objects(rpc.VOLUME_SERVICE)
        systemd.notify(f"READY=1\nSTATUS=consuming as {conf.host}")
        LOG.info("%s ready", rpc.VOLUME_SERVICE)
        _serve(conf, service, signals)
    except _StopBeforeReady:
        LOG.info("Stop requested during start-up")
    except exception.VolmgrError as error:
        LOG.error("%s cannot start: %s", rpc.VOLUME_SERVICE, error)
        return 1
    except Exception:
        LOG.exception("%s failed", rpc.VOLUME_SERVICE)
        return 1
    finally:
        signals.started = True  # a late signal must not interrupt the shutdown itself
    LOG.info("Stopping: no new messages; waiting up to %s s for in-flight operations",
             conf.volume.graceful_shutdown_timeout)
    systemd.notify("STOPPING=1")
    if service is not None:
        service.stop(conf.volume.graceful_shutdown_timeout)
    LOG.info("%s stopped", rpc.VOLUME_SERVICE)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
