"""Every volmgr exception rebuilds from its args/kwargs, so it survives the bus."""

from __future__ import annotations

import inspect
import pickle
import sys
import warnings

import pytest

from volmgr import exception

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from oslo_messaging import _utils as _unused  # noqa: F401
    from oslo_messaging._drivers import common as rpc_common

ALL_ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(exception, inspect.isclass)
     if issubclass(cls, exception.VolmgrError)),
    key=lambda cls: cls.__name__)

SAMPLE_KWARGS = {
    "volume_id": "7f0c6f53-0000-4000-8000-000000000001",
    "snapshot_id": "7f0c6f53-0000-4000-8000-000000000002",
    "server_id": "server-1", "host": "node1", "binary": "volmgr-volume",
    "alias": "os-nothing", "reason": "a reason", "status": "in-use",
    "expected": "available", "resource": "gigabytes", "requested": 5, "in_use": 18,
    "limit": 20, "cmd": "lvcreate -n volume-x", "exit_code": 5, "stderr": "boom",
    "method": "extend_volume", "needed": "1.1", "cap": "1.0",
}


def _sample(cls: type[exception.VolmgrError]) -> exception.VolmgrError:
    return cls(**SAMPLE_KWARGS)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_error_rebuilds_equal_from_its_args_and_kwargs(cls: type[exception.VolmgrError]) -> None:
    original = _sample(cls)
    rebuilt = type(original)(*original.args, **original.kwargs)
    assert rebuilt == original
    assert str(rebuilt) == str(original)
    assert rebuilt.kwargs == original.kwargs


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_error_survives_pickling(cls: type[exception.VolmgrError]) -> None:
    original = _sample(cls)
    assert pickle.loads(pickle.dumps(original)) == original


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_error_crosses_oslo_messaging_as_the_same_class(
        cls: type[exception.VolmgrError]) -> None:
    original = _sample(cls)
    try:
        raise original
    except exception.VolmgrError:
        wire = rpc_common.serialize_remote_exception(sys.exc_info())
    received = rpc_common.deserialize_remote_exception(wire, ["volmgr.exception"])
    assert isinstance(received, cls)
    assert str(received).splitlines()[0] == str(original)


def test_message_template_is_filled_from_kwargs() -> None:
    error = exception.VolumeNotFound(volume_id="abc")
    assert str(error) == "Volume abc could not be found."


def test_template_mismatch_still_produces_a_message() -> None:
    error = exception.VolumeNotFound(wrong="abc")
    assert "could not be found" in str(error)


def test_explicit_message_wins_over_template() -> None:
    assert str(exception.NotFound("gone")) == "gone"


def test_every_error_has_a_one_sentence_docstring() -> None:
    for cls in ALL_ERRORS:
        assert cls.__doc__ and cls.__doc__.strip().endswith("."), cls.__name__
