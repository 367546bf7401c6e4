"""The ``volmgr-volume`` service: manager, RPC server, heartbeat and recovery loops.

``start`` brings the pieces up in the order that keeps promises (backend checked, exports
restored, then consuming); ``stop`` stops consuming first and lets in-flight operations
finish within a bound. Signals and systemd belong to ``volmgr.cmd.volume``; this class
can also run embedded (``volmgr-all``) on an in-process transport.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from volmgr import exception, metrics, rpc
from volmgr.db import Database
from volmgr.volume import metrics as volume_metrics
from volmgr.volume import notifications
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.manager import VolumeManager
from volmgr.volume.reconcile import Reconciler
from volmgr.volume.recovery import Recovery

LOG = logging.getLogger(__name__)


class VolumeService:
    """One manager daemon's moving parts; ``conf.host`` names its queue and service row."""

    def __init__(self, conf: cfg.ConfigOpts, *, db: Database | None = None,
                 driver: VolumeDriver | None = None, transport: Any | None = None,
                 notifier: notifications.VolumeNotifier | None = None) -> None:
        self.conf = conf
        self.host: str = conf.host
        self._owned: list[Callable[[], None]] = []
        if db is None:
            db = Database.from_conf(conf)
            self._owned.append(db.dispose)
        if driver is None:
            from volmgr.volume.drivers import loader
            driver = loader.load_driver(conf)
        if transport is None:
            transport = rpc.get_transport(conf)
            self._owned.append(transport.cleanup)
        if notifier is None:
            notifier, notify_transport = notifications.build(conf, self.host)
            if notify_transport is not None:
                self._owned.append(notify_transport.cleanup)
        self.db = db
        self.driver = driver
        self.transport = transport
        self.manager = VolumeManager(conf, db, driver, notifier, host=self.host)
        self.recovery = Recovery(conf, db, self.manager)
        self.reconciler = Reconciler(db, driver, self.manager, conf.volume.reconcile_grace)
        self._server: Any = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.metrics_endpoint: volume_metrics.Endpoint | None = None

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Check the backend, report, restore exports, then consume the queue."""
        LOG.info("Starting %s on host %s with the %s driver", rpc.VOLUME_SERVICE, self.host,
                 self.driver.name)
        self.driver.check_setup()
        self.report_state()
        self.recovery.restore_exports()
        self._server = rpc.get_server(self.transport, server=self.host,
                                      endpoints=[self.manager], explicit=True)
        # Returns once the queue is declared and consumed: casts are no longer dropped.
        self._server.start()
        LOG.info("Consuming topic %s as server %s", rpc.TOPIC, self.host)
        if self.conf.volume.metrics_port:
            self.metrics_endpoint = volume_metrics.Endpoint(self.conf.volume.metrics_host,
                                                            self.conf.volume.metrics_port)
        self._spawn("heartbeat", self.conf.volume.report_interval, self.report_state)
        self._spawn("recovery", self.conf.volume.recovery_interval, self.run_recovery,
                    run_first=True)
        if self.conf.volume.reconcile_interval:
            self._spawn("reconcile", self.conf.volume.reconcile_interval, self.run_reconcile)

    def stop(self, timeout: float) -> bool:
        """Stop consuming, wait up to ``timeout`` s for in-flight work, release resources.

        Returns whether every operation finished; unfinished ones stay transitional in the
        database and the next start re-drives them.
        """
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
        # Down at once: the scheduler sends no new volume here, and the API answers 503
        # for operations on this host's volumes instead of queueing them, while in-flight
        # work drains (marked again below, in case a heartbeat was being written now).
        self._mark_stopped()
        drained = self.manager.wait_idle(timeout)
        if drained:
            LOG.info("In-flight operations finished")
        else:
            LOG.warning("Stopping with operations still running on volumes %s; recovery "
                        "will re-drive them", ", ".join(self.manager.thread_pool.pending_keys()))
        self.manager.close()
        if self._server is not None:
            self._server.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        # The heartbeat loop has stopped now, so nothing undoes this one.
        self._mark_stopped()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        for release in reversed(self._owned):
            try:
                release()
            except Exception as error:
                LOG.debug("Release failed: %s", error)
        return drained

    def _mark_stopped(self) -> None:
        """Down for service lists, the scheduler and the API from now on, not after
        ``service_down_time`` without a heartbeat."""
        try:
            self.db.service_stopped(self.host, rpc.VOLUME_SERVICE)
        except Exception as error:
            LOG.warning("Could not record the stop in the services table: %s", error)

    def alive(self) -> bool:
        """Whether every background loop is still running (the watchdog's question)."""
        return all(thread.is_alive() for thread in self._threads)

    # -- periodic work ---------------------------------------------------------------

    def report_state(self) -> None:
        """Heartbeat with the driver's capacity; a failure is logged, never fatal."""
        capabilities: dict[str, Any] | None
        try:
            capabilities = self.manager.capabilities()
        except Exception as error:
            LOG.warning("Could not read capacity from the %s driver: %s",
                        self.driver.name, error)
            capabilities = None  # keep the last figures, still say we are alive
        try:
            self.db.service_heartbeat(self.host, rpc.VOLUME_SERVICE, rpc.TOPIC, capabilities)
        except Exception as error:
            LOG.warning("Heartbeat failed: %s", error)
        volume_metrics.update_capacity(self.host, capabilities)
        if self.metrics_endpoint is not None:
            try:
                volume_metrics.update_backend(self.host, self.driver)
            except Exception as error:
                LOG.warning("Could not read exports and sessions for metrics: %s", error)

    def run_recovery(self) -> None:
        try:
            report = self.recovery.run_once()
            for _, status in report.redriven:
                metrics.RECOVERY_REDRIVES.labels(self.host, status).inc()
            for _, status in report.failed:
                metrics.RECOVERY_GIVE_UPS.labels(self.host, status).inc()
        except exception.ServiceUnavailable:
            if not self._stopping.is_set():
                raise
            LOG.info("Recovery pass cut short by shutdown")
        except Exception:
            LOG.exception("Recovery pass failed; retrying in %s s",
                          self.conf.volume.recovery_interval)

    def run_reconcile(self) -> None:
        try:
            self.reconciler.run_once()
        except exception.ServiceUnavailable:
            if not self._stopping.is_set():
                raise
        except Exception:
            LOG.exception("Reconcile pass failed; retrying in %s s",
                          self.conf.volume.reconcile_interval)

    def _spawn(self, name: str, interval: float, func: Callable[[], None],
               run_first: bool = False) -> None:
        def loop() -> None:
            if run_first and not self._stopping.is_set():
                func()
            while not self._stopping.wait(interval):
                func()

        thread = threading.Thread(target=loop, name=f"volmgr-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)
