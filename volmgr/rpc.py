"""Message-bus plumbing: transports, RPC clients and servers, notifiers.

One transport per process (built once, reused by every request); the ``conf`` is always
passed in. The oslo.messaging 18.x option-registration gap is papered over here, and only
here (``_register_missing_messaging_opts``).
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

with warnings.catch_warnings():
    # Importing oslo.messaging imports eventlet, which warns that it is deprecated;
    # volmgr uses the threading executor and never eventlet.
    warnings.simplefilter("ignore", DeprecationWarning)
    import oslo_messaging as messaging

LOG = logging.getLogger(__name__)

#: The volume manager's one name, written only here: the topic its RPC servers consume
#: (a host's queue is ``volmgr-volume.<host>``), the ``binary`` (and ``topic``) of its rows
#: in the services table, and what its process calls itself in logs and messages.
VOLUME_SERVICE = "volmgr-volume"
#: The topic the volume managers consume: the manager's name.
TOPIC = VOLUME_SERVICE
CONTROL_EXCHANGE = "volmgr"

#: Modules whose exceptions may cross the bus and be re-raised by the caller.
ALLOWED_REMOTE_EXMODS = ["volmgr.exception"]


def _register_missing_messaging_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging 18.3 reads [oslo_messaging_tracing] and [oslo_messaging_metrics]
    from the conf it is given but registers them only on the global cfg.CONF."""
    try:
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing
    except ImportError:  # pragma: no cover - a release that no longer has them
        return
    for opts, group in ((tracing.oslo_messaging_tracing, "oslo_messaging_tracing"),
                        (metrics.oslo_messaging_metrics, "oslo_messaging_metrics")):
        try:
            conf.register_opts(opts, group=group)
        except cfg.DuplicateOptError:
            pass


#: Range of the per-process ``kombu_reconnect_delay`` default (seconds); see
#: ``_set_rabbit_defaults``.
RECONNECT_DELAY_RANGE = (1.0, 4.0)
_RECONNECT_DELAY = round(random.uniform(*RECONNECT_DELAY_RANGE), 2)  # noqa: S311


def _set_rabbit_defaults(conf: cfg.ConfigOpts) -> None:
    """Spread reconnects after a broker outage (docs/rpc.md).

    In oslo.messaging 18.3 every failed reconnect attempt sleeps ``kombu_reconnect_delay``
    plus kombu's deterministic backoff (``rabbit_retry_interval`` growing by
    ``rabbit_retry_backoff`` up to ``rabbit_interval_max``); ``kombu_reconnect_splay``
    only changes the figure that is logged. So each process draws its own delay once,
    and hundreds of daemons that lost the broker together do not knock on it together.
    An operator's value in the config file still wins: this is only the default.
    """
    try:
        from oslo_messaging._drivers import impl_rabbit
    except ImportError:  # pragma: no cover - a release that moved the module
        return
    group = "oslo_messaging_rabbit"
    try:
        conf.register_opts(impl_rabbit.rabbit_opts, group=group)
    except cfg.DuplicateOptError:  # pragma: no cover - registered differently elsewhere
        return
    conf.set_default("kombu_reconnect_delay", _RECONNECT_DELAY, group=group)


def register_messaging_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``transport_url`` and its siblings on ``conf`` so a caller can read or
    default them before any transport exists. These are the very option objects
    oslo.messaging registers itself later, so that registration is a no-op."""
    from oslo_messaging import transport as messaging_transport

    conf.register_opts(messaging_transport._transport_opts)


def prepare_conf(conf: cfg.ConfigOpts) -> None:
    """Register what oslo.messaging needs on ``conf``; idempotent."""
    _register_missing_messaging_opts(conf)
    _set_rabbit_defaults(conf)
    messaging.set_transport_defaults(control_exchange=CONTROL_EXCHANGE)


def get_transport(conf: cfg.ConfigOpts, url: str | None = None) -> messaging.Transport:
    prepare_conf(conf)
    return messaging.get_rpc_transport(conf, url=url,
                                       allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)


def get_notification_transport(conf: cfg.ConfigOpts) -> messaging.Transport:
    prepare_conf(conf)
    return messaging.get_notification_transport(
        conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)


def get_client(transport: messaging.Transport, *, topic: str = TOPIC,
               version: str | None = None, version_cap: str | None = None,
               timeout: int | None = None) -> messaging.RPCClient:
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(transport, target, version_cap=version_cap,
                                    timeout=timeout)


def get_server(transport: messaging.Transport, *, server: str, endpoints: Sequence[Any],
               topic: str = TOPIC, explicit: bool = False) -> messaging.RPCServer:
    """An RPC server on the threading executor. With ``explicit``, only endpoint methods
    decorated with ``oslo_messaging.expose`` can be invoked over the bus."""
    target = messaging.Target(topic=topic, server=server)
    policy = messaging.ExplicitRPCAccessPolicy if explicit else None
    return messaging.get_rpc_server(transport, target, list(endpoints),
                                    executor="threading", access_policy=policy)


def get_notifier(conf: cfg.ConfigOpts, publisher_id: str,
                 transport: messaging.Transport | None = None) -> messaging.Notifier:
    transport = transport or get_notification_transport(conf)
    return messaging.Notifier(transport, publisher_id=publisher_id)
