"""``/metrics`` of volmgr-api and the HTTP series (see docs/operations.md, "Metrics").

``MetricsMiddleware`` wraps the application (``/metrics`` is one of its public paths, so
keystonemiddleware lets it through): it answers ``GET /metrics`` itself, without
authentication (a Prometheus server holds no Keystone token; no series names a volume or a
project), and times every other request, labelled by the route template the application
matched (``environ[ROUTE_KEY]``), never by the raw path. ``[api] expose_metrics = false``
turns the path off (404 like any unknown path).

The heartbeat age of every service is read from the services table at scrape time, so a
host whose daemon died (and so serves no metrics) is still visible here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from volmgr import metrics
from volmgr.db import Database, models
from volmgr.db.services import is_up

LOG = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PATH = "/metrics"
#: Where the application leaves the matched route's template for this middleware.
ROUTE_KEY = "volmgr.route"
#: The route label of a request no route matched (404/405, or refused before routing).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceCollector(Collector):
    """Heartbeat age, up and disabled of every row of the services table."""

    def __init__(self, db: Database, down_time: int) -> None:
        self.db = db
        self.down_time = down_time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "volmgr_service_heartbeat_age_seconds",
            "Seconds since the service last heartbeated (as the API's database sees it).",
            labels=["host", "binary"])
        up = GaugeMetricFamily(
            "volmgr_service_up", "1 when the service heartbeated within "
            "service_down_time and has not stopped, else 0.", labels=["host", "binary"])
        disabled = GaugeMetricFamily(
            "volmgr_service_disabled", "1 when an operator disabled the service.",
            labels=["host", "binary"])
        try:
            services = self.db.service_list()
        except Exception as error:  # a scrape must still answer the HTTP series
            LOG.warning("metrics: could not read the services table: %s", error)
            services = []
        now = models.utcnow()
        for service in services:
            labels = [service.host, service.binary]
            if service.last_heartbeat is not None:
                age.add_metric(labels, (now - service.last_heartbeat).total_seconds())
            up.add_metric(labels, 1.0 if is_up(service, self.down_time, now) else 0.0)
            disabled.add_metric(labels, 1.0 if service.disabled else 0.0)
        yield age
        yield up
        yield disabled

    def describe(self) -> list[GaugeMetricFamily]:
        return []


class MetricsMiddleware:
    """Serves ``/metrics`` and records every other request's route, status and time."""

    def __init__(self, app: WSGIApp, collectors: Iterable[Collector] = (),
                 expose: bool = True) -> None:
        self.app = app
        self.collectors = tuple(collectors)
        self.expose = expose

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.expose and environ.get("PATH_INFO") == PATH \
                and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body, content_type = metrics.render(metrics.registry_for_scrape(),
                                                *self.collectors)
            start_response("200 OK", [("Content-Type", content_type),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        started = time.monotonic()
        seen: dict[str, str] = {}

        def recording(status: str, headers: list[tuple[str, str]],
                      exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording)
        finally:
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in _METHODS else "other"
            route = str(environ.get(ROUTE_KEY) or UNMATCHED)
            metrics.HTTP_REQUESTS.labels(route, method, seen.get("status", "500")).inc()
            metrics.HTTP_LATENCY.labels(route, method).observe(time.monotonic() - started)
