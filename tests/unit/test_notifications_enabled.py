"""Notifications cost nothing when no driver is configured, and are sent when one is."""

from __future__ import annotations

from volmgr import config, rpc
from volmgr.volume import notifications


def _conf(*drivers: str):  # type: ignore[no-untyped-def]
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    rpc.register_messaging_opts(conf)
    conf.set_override("transport_url", "fake://")
    if drivers:
        rpc.get_notification_transport(conf).cleanup()  # registers the notification opts
        conf.set_override("driver", list(drivers), group="oslo_messaging_notifications")
    return conf


def test_without_a_driver_the_notifier_is_disabled_and_owns_no_transport() -> None:
    notifier, transport = notifications.build(_conf(), "host1")
    assert not notifier.enabled
    assert transport is None


def test_with_a_driver_the_notifier_is_enabled() -> None:
    notifier, transport = notifications.build(_conf("messagingv2"), "host1")
    try:
        assert notifier.enabled
    finally:
        transport.cleanup()
