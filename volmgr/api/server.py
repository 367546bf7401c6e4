"""The HTTP server of ``volmgr-api`` and ``volmgr-all``: waitress.

waitress reads every connection on one event loop (poll) and hands a request to a
thread of the pool only once its headers *and* its whole body are in memory, so an idle
or slow client costs a socket and a few kilobytes, never a thread. Its parser refuses a
bare CR or LF in a header, de-chunks chunked bodies and caps header and body sizes.

On top of waitress this module adds what volmgr needs (see docs/decisions.md, "HTTP
server"):

* a connection silent for ``CLIENT_TIMEOUT`` seconds is closed, and so is one that has
  not delivered a whole request within ``REQUEST_DEADLINE`` seconds (a client that
  trickles a header byte a second);
* errors the server answers itself (400 malformed request, 413, 431 header section too
  large, 501 unknown transfer coding) carry the same fault body as every other error,
  JSON or XML as the caller asked;
* a client that goes away before its request is complete is one INFO line;
* ``volmgr-api`` runs ``[api] workers`` processes, each a waitress server on the shared
  listening socket, under gunicorn's arbiter (``WaitressWorker``): gunicorn supervises,
  restarts and stops the processes, waitress speaks HTTP.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import webob.acceptparse
from gunicorn.workers.base import Worker
from oslo_config import cfg
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from volmgr.api import faults, seed_xml, wsgi

LOG = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("volmgr.api.access")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Seconds a connection may stay silent (idle keep-alive, or a client that stopped
#: sending) before it is closed.
CLIENT_TIMEOUT = 30
#: Seconds a client has to deliver one whole request, headers and body, once it began.
REQUEST_DEADLINE = 60
#: How often (seconds) the event loop looks for connections to time out.
CLEANUP_INTERVAL = 2
#: Largest request line plus header section, in bytes; larger answers 431.
MAX_HEADER_BYTES = 65536
#: Bytes of a request kept to answer a 431 in the format the caller asked for.
_HEAD_BYTES = 4096
#: Connections queued by the kernel while the event loop is busy.
BACKLOG = 2048
#: File descriptors kept back for the database, the bus and the logs.
RESERVED_FDS = 100

#: waitress's error statuses, as fault-table faults.
_SERVER_FAULTS: dict[int, tuple[int, str]] = {
    400: faults.BAD_REQUEST,
    413: faults.REQUEST_TOO_LARGE,
    431: faults.HEADERS_TOO_LARGE,
    500: faults.INTERNAL,
    501: faults.NOT_IMPLEMENTED,
}


def connection_limit() -> int:
    """Connections one process accepts at once: as many as its file descriptors allow.
    The soft descriptor limit is raised to the hard one first (as nginx does), so a
    crowd of idle clients meets the kernel's limit, not an accident of the shell."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return max(soft - RESERVED_FDS, 50)


def adjustments(conf: cfg.ConfigOpts) -> Adjustments:
    """waitress's settings from ``[api]``."""
    return Adjustments(
        threads=conf.api.threads,
        channel_timeout=CLIENT_TIMEOUT,
        cleanup_interval=CLEANUP_INTERVAL,
        connection_limit=connection_limit(),
        asyncore_use_poll=True,
        # waitress refuses a body of exactly its limit; the app's limit is inclusive.
        max_request_body_size=conf.api.max_request_body_size + 1,
        max_request_header_size=MAX_HEADER_BYTES,
        backlog=BACKLOG,
        ident="volmgr",
        expose_tracebacks=False,
        log_socket_errors=False,
        # As gunicorn did: a TLS-terminating proxy on this host may say the scheme
        # (links then read https://); nobody else may.
        trusted_proxy="127.0.0.1",
        trusted_proxy_headers={"x-forwarded-proto"},
        clear_untrusted_proxy_headers=True,
        log_untrusted_proxy_headers=False,
    )


def fault_document(path: str, accept: str | None, status: int,
                   message: str) -> tuple[str, bytes, str]:
    """``(status line, body, content type)`` of a fault the server answers itself: the
    fault table's name and shape, XML for the Compute 1.1 face when asked for."""
    code, name = _SERVER_FAULTS.get(status, (status, faults.BAD_REQUEST[1]))
    wants_xml = path.startswith("/v1.1/") and (
        path.endswith(".xml") or webob.acceptparse.create_accept_header(accept).best_match(
            ["application/json", "application/xml"]) == "application/xml")
    response = wsgi.ApiResponse(code, {name: {"code": code, "message": message}})
    rendered = wsgi.render(None, response, wsgi.XML if wants_xml else wsgi.JSON,
                           seed_xml.serialize)
    return rendered.status, rendered.body, rendered.headers["Content-Type"]


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _FaultTask(ErrorTask):
    """waitress's own error answers (malformed request, too large...) as fault bodies."""

    def execute(self) -> None:
        error = self.request.error
        path, accept = _sniff(self.channel.request_head)
        if getattr(self.request, "path", None) and error.code != 431:
            path, accept = self.request.path, self.request.headers.get("ACCEPT")
        # waitress quotes the offending line in some messages: it may hold a token,
        # so only the sentence before the quote is told (and logged).
        detail = str(error.body).split('"', 1)[0].strip().rstrip(".")
        if error.code == 413:  # waitress's own limit is one byte over the app's
            detail = f"the body is larger than {self.channel.adj.max_request_body_size - 1} " \
                "bytes"
        message = f"{error.reason}: {detail}." if detail else f"{error.reason}."
        status, body, content_type = fault_document(path, accept, error.code, message)
        LOG.info("%s answered %s: %s", _printable(self.channel.addr[0]), status,
                 _printable(message))
        self.status = status
        self.response_headers.append(("Content-Type", content_type))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _sniff(head: bytes) -> tuple[str, str | None]:
    """Path and Accept header from the first bytes of a request the parser gave up on
    (a header section too large is never parsed)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    path = parts[1].split("?", 1)[0] if len(parts) > 2 else "/"
    accept = next((line.split(":", 1)[1].strip() for line in lines[1:]
                   if line.lower().startswith("accept:")), None)
    return path, accept


class _Channel(HTTPChannel):
    """One client connection: remembers when its current request began (and its first
    bytes), and says so once when the client goes away before finishing it."""

    error_task_class = _FaultTask
    request_began = 0.0
    request_head = b""
    timed_out = False
    request: Any

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.time()
            self.request_head = b""
        if len(self.request_head) < _HEAD_BYTES:
            self.request_head += data[:_HEAD_BYTES - len(self.request_head)]
        return bool(super().received(data))

    def handle_close(self) -> None:
        partial = self.request
        if partial is not None and not partial.completed:
            what = (f"took longer than {REQUEST_DEADLINE} s to send its request"
                    if self.timed_out else "went away before sending its whole request")
            LOG.info("client %s %s (%d header bytes, %d of %d body bytes)",
                     _printable(str(self.addr[0])), what, partial.header_bytes_received,
                     partial.body_bytes_received, partial.content_length)
            self.request = None
        super().handle_close()


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - REQUEST_DEADLINE
        for channel in list(self.active_channels.values()):
            if (channel.request is not None and not channel.requests
                    and channel.request_began < cutoff):
                channel.timed_out = True
                channel.will_close = True


def listen(host: str, port: int) -> socket.socket:
    """The listening socket (IPv4 or IPv6 by the address given)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG,
                                reuse_port=False)


class AccessLog:
    """One INFO line per request on ``volmgr.api.access`` (``[api] access_log``): the
    peer, method, path, status, bytes and milliseconds; never a header."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        seen: dict[str, str] = {}

        def recording(status: str, headers: list[tuple[str, str]],
                      exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            seen["length"] = next((value for name, value in headers
                                   if name.lower() == "content-length"), "-")
            return start_response(status, headers, exc_info)

        body = self.app(environ, recording)
        ACCESS_LOG.info("%s %s %s %s %s %.1f ms", environ.get("REMOTE_ADDR", "-"),
                        _printable(environ.get("REQUEST_METHOD", "-")),
                        _printable(environ.get("PATH_INFO", "")), seen.get("status", "-"),
                        seen.get("length", "-"), (time.monotonic() - started) * 1000)
        return body


class HTTPServer:
    """waitress on already-listening sockets, driven by whoever calls ``poll`` (the
    gunicorn worker's loop) or ``serve_forever`` (volmgr-all's thread)."""

    def __init__(self, app: WSGIApp, sockets: Sequence[socket.socket],
                 conf: cfg.ConfigOpts) -> None:
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        if conf.api.access_log:
            app = AccessLog(app)
        self.adj = adjustments(conf)
        self.map: dict[int, Any] = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(self.adj.threads)
        self.servers = [
            _Server(app, self.map, _sock=sock, dispatcher=self.dispatcher, adj=self.adj,
                    bind_socket=False,
                    sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))
            for sock in sockets]
        self._stopping = threading.Event()
        self._loop_thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.servers[0].socket.getsockname()[:2]
        return str(host), int(port)

    def poll(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self.map, use_poll=True, count=1)

    def serve_forever(self) -> None:
        self._loop_thread = threading.current_thread()
        while not self._stopping.is_set():
            self.poll(0.5)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.accepting = False

    def busy(self) -> bool:
        return any(channel.requests for server in self.servers
                   for channel in server.active_channels.values())

    def close(self, grace: float = 5.0) -> None:
        """Stop the loop (when ``serve_forever`` runs it), close every connection and
        let running requests finish for up to ``grace`` seconds."""
        self._stopping.set()
        for server in self.servers:
            server.pull_trigger()
        loop = self._loop_thread
        if loop is not None and loop is not threading.current_thread():
            loop.join(timeout=5)
        self.dispatcher.shutdown(cancel_pending=True, timeout=grace)
        wasyncore.close_all(self.map, ignore_all=True)


class WaitressWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker process that serves with waitress. The arbiter's heartbeat is
    the event loop's, so slow clients never get a worker killed; ``SIGTERM`` stops
    accepting, lets requests in flight finish (``graceful_timeout``) and exits."""

    def run(self) -> None:
        server = HTTPServer(self.wsgi, [listener.sock for listener in self.sockets],
                            self.app.conf)
        while self.alive:
            self.notify()
            server.poll(1.0)
            if self.ppid != os.getppid():
                LOG.info("parent changed, shutting down")
                break
        server.stop_accepting()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while server.busy() and time.monotonic() < deadline:
            self.notify()
            server.poll(0.2)
        server.close(grace=max(deadline - time.monotonic(), 0.1))
