"""The volmgr-api WSGI application and the factory that builds it.

``build_app(conf, db=None, volume_rpcapi=None)`` gives the WSGI callable: the version
documents, ``/healthcheck`` and ``/openapi.json`` answer without authentication; every
other path needs a caller (noauth header, or keystonemiddleware.auth_token in front when
``auth_strategy = keystone``). The app holds one ``Database`` and one RPC client for the
life of the process; it never builds either per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import webob
from oslo_config import cfg

from volmgr import exception
from volmgr.api import (
    auth,
    faults,
    input_gate,
    openapi,
    seed,
    seed_xml,
    v3,
    v3_attachments,
    v3_info,
    v3_manageable,
    v3_messages,
    v3_quotas,
    v3_snapshots,
    v3_transfers,
    v3_types,
    wsgi,
)
from volmgr.api import metrics as api_metrics
from volmgr.api import microversion as mv
from volmgr.api.operations import ApiOperations, CastingAPI
from volmgr.api.v3_base import V3Deps
from volmgr.db import Database, messages

LOG = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Paths served without authentication, also when keystonemiddleware is in front.
PUBLIC_PATHS = ("/", "/v3", "/healthcheck", "/openapi.json", "/metrics")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_public(path: str) -> bool:
    return (path.rstrip("/") or "/") in PUBLIC_PATHS


class ApiApplication:
    """Routes a request, authenticates it, runs the controller and renders the answer
    or the fault."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, rpcapi: CastingAPI) -> None:
        self.conf = conf
        self.db = db
        self.ops = ApiOperations(conf, db, rpcapi)
        self.router = wsgi.Router()
        self.router.add("GET", "/", self.versions, public=True)
        self.router.add("GET", "/v3", self.version_v3, public=True)
        self.router.add("GET", "/healthcheck", self.healthcheck, public=True)
        self.router.add("GET", "/openapi.json", self.openapi, public=True)
        max_size, max_limit = conf.api.max_volume_size, conf.api.osapi_max_limit
        seed.add_routes(self.router, self.ops, max_size, max_limit)
        deps = V3Deps(conf, db, self.ops, rpcapi)
        self.metrics = api_metrics.MetricsMiddleware(
            self._serve, [api_metrics.ServiceCollector(db, conf.service_down_time)],
            expose=conf.api.expose_metrics)
        # Specific collections before the volume routes' catch-all ids.
        for module in (v3_types, v3_quotas, v3_transfers, v3_info, v3_messages,
                       v3_attachments, v3_manageable, v3_snapshots, v3):
            module.add_routes(self.router, deps)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.metrics(environ, start_response)  # /metrics, then self._serve

    def _serve(self, environ: dict[str, Any],
               start_response: Callable[..., Any]) -> Iterable[bytes]:
        http = webob.Request(environ)
        response = self.handle(http)
        return response(environ, start_response)  # type: ignore[no-any-return]

    def handle(self, http: webob.Request) -> webob.Response:
        route: wsgi.Route | None = None
        fmt = wsgi.JSON
        request_id: str | None = None
        try:
            path = http.path_info
            http.GET  # noqa: B018 - decode the query string once, here, or refuse it
        except UnicodeDecodeError:
            return self._fault(http, "?", None, fmt, *faults.BAD_REQUEST,
                               "The URL is not valid UTF-8.", None)
        is_v3 = path == "/v3" or path.startswith("/v3/")
        version = mv.MIN_VERSION
        try:
            if is_v3:
                try:
                    version = mv.negotiate(http.headers.get(mv.HEADER),
                                           http.headers.get(mv.LEGACY_HEADER))
                except mv.VersionError as error:
                    raise wsgi.HTTPError(error.fault, error.message) from None
            route, params, forced = self.router.match(http.method, path, version)
            http.environ[api_metrics.ROUTE_KEY] = route.pattern  # the metrics' label
            fmt = wsgi.negotiate(http, route, forced)
            context = None
            if not route.public:
                context = auth.context_for(http, self.conf.auth_strategy)
                request_id = context.request_id
                input_gate.check_identity(context)
                auth.check_project(context, params.get("project_id"))
            raw = wsgi.read_body(http, self.conf.api.max_request_body_size)
            body = wsgi.parse_body(raw, http.content_type, route) if raw else None
            input_gate.check_request(http, params, body)
            request = wsgi.ApiRequest(http, params, context, fmt, body, version)
            with messages.request_scope(request_id):  # user messages name the request
                result = route.handler(request)
        except wsgi.ClientDisconnected as error:
            # Nobody is left to read an answer: one line, no traceback.
            LOG.info("%s %s: the client went away mid-request (%s)",
                     _printable(http.method), _printable(path), _printable(str(error)))
            return webob.Response(status=400)
        except wsgi.HTTPError as error:
            return self._fault(http, path, route, fmt, error.status, error.fault,
                               error.message, request_id)
        except Exception as error:  # every error becomes a fault body
            status, name, message = faults.classify(error, v3_face=is_v3)
            return self._fault(http, path, route, fmt, status, name, message, request_id)
        if request_id:
            result.headers.setdefault("x-openstack-request-id", request_id)
        if is_v3:
            result.headers.setdefault(mv.HEADER, mv.response_header(version))
            result.headers.setdefault("Vary", mv.HEADER)
        return wsgi.render(http, result, fmt, route.face.xml_serializer)

    def _fault(self, http: webob.Request, path: str, route: wsgi.Route | None, fmt: str,
               status: int, name: str, message: str,
               request_id: str | None) -> webob.Response:
        # The path is the caller's text, percent-decoded: escape control characters so a
        # URL cannot write a line of its own into the log.
        logged = (_printable(http.method), _printable(path), status, _printable(message))
        if status >= 500:
            LOG.error("%s %s answered %d: %s", *logged)
        else:
            LOG.info("%s %s answered %d: %s", *logged)
        headers = {"x-openstack-request-id": request_id} if request_id else {}
        if status == 401 and self.conf.auth_strategy != "keystone":
            # Under keystone, auth_token adds the header naming the real Identity URI
            # to every 401 on its way out; a second one here would contradict it.
            headers["WWW-Authenticate"] = "Keystone uri='unset'"
        result = wsgi.ApiResponse(status, {name: {"code": status, "message": message}},
                                  headers)
        serializer = route.face.xml_serializer if route is not None else None
        if route is None and path.startswith("/v1.1/"):
            # An unknown seed path still answers in the format the caller asked for.
            serializer = seed_xml.serialize
            fmt = wsgi.XML if (path.endswith(".xml") or http.accept.best_match(
                ["application/json", "application/xml"]) == "application/xml") else fmt
        return wsgi.render(http, result, fmt, serializer)

    # -- public documents ----------------------------------------------------------

    def versions(self, req: wsgi.ApiRequest) -> wsgi.ApiResponse:
        return wsgi.ApiResponse(300, {"versions": [v3.version_document(req.http.host_url)]})

    def version_v3(self, req: wsgi.ApiRequest) -> wsgi.ApiResponse:
        return wsgi.ApiResponse(200, {"version": v3.version_document(req.http.host_url),
                                      "versions": [v3.version_document(req.http.host_url)]})

    def healthcheck(self, req: wsgi.ApiRequest) -> wsgi.ApiResponse:
        try:
            self.db.ping()
        except Exception as error:  # any database failure: unhealthy
            raise exception.ServiceUnavailable(reason=f"database: {type(error).__name__}") \
                from None
        return wsgi.ApiResponse(200, {"status": "OK"})

    def openapi(self, req: wsgi.ApiRequest) -> wsgi.ApiResponse:
        return wsgi.ApiResponse(200, openapi.document(self.conf))


class KeystoneGate:
    """Sends public paths straight to the app and everything else through
    keystonemiddleware.auth_token first."""

    def __init__(self, app: WSGIApp, authenticated: WSGIApp) -> None:
        self.app = app
        self.authenticated = authenticated

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_public(environ.get("PATH_INFO", "/")):
            return self.app(environ, start_response)
        return self.authenticated(environ, start_response)


def default_rpcapi(conf: cfg.ConfigOpts) -> CastingAPI:
    """The process's one RPC client, with the bounded cast retry the API needs."""
    from volmgr import rpc
    from volmgr.volume.rpcapi import VolumeAPI

    return VolumeAPI(conf, rpc.get_transport(conf), cast_retry=conf.api.rpc_cast_retry,
                     call_timeout=conf.api.rpc_call_timeout)


def build_app(conf: cfg.ConfigOpts, db: Database | None = None,
              volume_rpcapi: CastingAPI | None = None) -> WSGIApp:
    """The WSGI callable; ``db`` and ``volume_rpcapi`` default to ones built from
    ``conf`` (call this once per process, after any fork)."""
    db = db if db is not None else Database.from_conf(conf)
    rpcapi = volume_rpcapi if volume_rpcapi is not None else default_rpcapi(conf)
    # The input gate's last line: a string longer than its column is a 400 on every
    # backend (SQLite would store it whole), whichever controller wrote it.
    input_gate.guard_writes(db.engine)
    app = ApiApplication(conf, db, rpcapi)
    if conf.auth_strategy != "keystone":
        return app
    from keystonemiddleware import auth_token

    return KeystoneGate(app, auth_token.AuthProtocol(app, {"oslo_config_config": conf}))
