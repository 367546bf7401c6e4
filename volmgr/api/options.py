"""Options of the ``[api]`` group, owned by the API process."""

from __future__ import annotations

from oslo_config import cfg

api_opts = [
    cfg.HostAddressOpt("bind_host", default="0.0.0.0",  # noqa: S104 - a server is meant to listen
                       help="Address the API listens on."),
    cfg.PortOpt("bind_port", default=8776, help="TCP port the API listens on."),
    cfg.IntOpt("workers", default=2, min=1,
               help="Number of API worker processes volmgr-api starts."),
    cfg.IntOpt("threads", default=1, min=1,
               help="Request threads per worker process. A request reaches a thread only "
               "once it has been received whole, so slow clients never hold one."),
    cfg.IntOpt("worker_timeout", default=60, min=1,
               help="Seconds a worker process's event loop may stay unresponsive before "
               "the master restarts it (slow clients and long requests do not count)."),
    cfg.BoolOpt("access_log", default=False,
                help="Log one line per request to stderr."),
    cfg.IntOpt("max_volume_size", default=1024, min=1,
               help="Largest volume, in GiB, a single request may create or extend to."),
    cfg.IntOpt("max_request_body_size", default=114688, min=1024,
               help="Largest request body, in bytes; larger bodies answer 413."),
    cfg.IntOpt("osapi_max_limit", default=1000, min=1,
               help="Most items a single list request returns."),
    cfg.IntOpt("rpc_cast_retry", default=1, min=0,
               help="Connection attempts a cast makes before the API gives up and leaves "
               "the request to the manager's recovery; keeps the API answering while the "
               "broker is down."),
    cfg.IntOpt("rpc_call_timeout", default=30, min=1,
               help="Seconds the API waits for a storage host to admit a connector and "
               "answer its connection_info (PUT /attachments/{id}, "
               "os-initialize_connection, os-terminate_connection); past it the request "
               "answers 503 and the host's recovery finishes or undoes the work. Keep it "
               "below worker_timeout."),
    cfg.BoolOpt("expose_metrics", default=True,
                help="Serve Prometheus metrics at GET /metrics without authentication "
                "(no series names a volume or a project; restrict the path at the load "
                "balancer if it must not be reachable). See docs/operations.md."),
    cfg.FloatOpt("max_oversubscription_ratio", default=20.0, min=1.0,
                 help="For thin-provisioned hosts: how many times the physical capacity "
                 "may be promised to volumes when choosing a host."),
]


#: ``[DEFAULT]`` options the API owns (here, not in the modules that read them, so that
#: a manager registering every option imports nothing of the API).
message_opts = [
    cfg.IntOpt("message_ttl", default=2592000, min=1,
               help="Seconds a user message (Block Storage v3 /messages: why a request "
               "ended in error) is kept and shown after it was written; older messages "
               "are purged."),
]

