"""Checks on decoded request bodies and query strings, shared by both faces.

Every failure is ``InvalidInput`` naming the field and the problem, so a caller can fix
the request; nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from volmgr import exception, iscsi_names
from volmgr.api import input_gate
from volmgr.db import models

_DIGITS = re.compile(r"^[0-9]{1,12}$")
#: Names are as long as the column that stores them may hold (the schema decides).
MAX_NAME: int = input_gate.column_length(models.Volume.display_name) or 255
MAX_DESCRIPTION = 4096
MAX_METADATA_ITEMS = 64


def bad(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def member(body: Any, key: str) -> dict[str, Any]:
    """``body[key]`` as an object; the body must be exactly ``{key: {...}}``."""
    if not isinstance(body, dict):
        raise bad(f"the body must be a JSON object with a '{key}' member")
    if key not in body:
        raise bad(f"the body must contain '{key}'")
    extra = sorted(set(body) - {key})
    if extra:
        raise bad(f"unknown top-level field(s): {', '.join(map(str, extra))}")
    value = body[key]
    if not isinstance(value, dict):
        raise bad(f"'{key}' must be an object")
    return value


def only_fields(values: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise bad(f"unknown field(s) in '{where}': {', '.join(map(str, unknown))}")


def integer(value: Any, field: str, *, minimum: int = 1,
            maximum: int | None = None) -> int:
    """A whole number (JSON integer or a string of digits, as XML gives them)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad(f"'{field}' must be an integer")
    if isinstance(value, str):
        if not _DIGITS.match(value.strip()):
            raise bad(f"'{field}' must be an integer, got {value[:40]!r}")
        value = int(value.strip())
    if value < minimum:
        raise bad(f"'{field}' must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise bad(f"'{field}' must be at most {maximum}, got {value}")
    return value


def size(value: Any, max_size: int, field: str = "size") -> int:
    if value is None:
        raise bad(f"'{field}' is required")
    return integer(value, field, minimum=1, maximum=max_size)


def text(value: Any, field: str, max_length: int | None = MAX_NAME) -> str | None:
    """An optional string, stripped of nothing, bounded in length, holding no character
    the input gate refuses (NUL, other controls, lone surrogates, U+FFFE/U+FFFF)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"'{field}' must be a string")
    input_gate.check_length(value, field, max_length)
    return input_gate.check_text(value, field)


def required_text(value: Any, field: str, max_length: int = MAX_NAME) -> str:
    result = text(value, field, max_length)
    if not result:
        raise bad(f"'{field}' is required")
    return result


def metadata(value: Any, field: str = "metadata") -> dict[str, str]:
    """A flat string → string object of bounded size."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"'{field}' must be an object of strings")
    if len(value) > MAX_METADATA_ITEMS:
        raise bad(f"'{field}' holds more than {MAX_METADATA_ITEMS} items")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_NAME:
            raise bad(f"'{field}' keys must be strings of 1 to {MAX_NAME} characters")
        checked = text(item, f"{field}.{key}")
        if checked is None:
            raise bad(f"'{field}.{key}' must be a string")
        result[key] = checked
    return result


def boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise bad(f"'{field}' must be a boolean")


def unsupported_if_set(values: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Fields a client may send as null/false that volmgr does not implement."""
    for field in fields:
        if values.get(field) not in (None, False, "", {}, []):
            raise bad(f"'{field}' is not supported by this service")


def connector(value: Any) -> dict[str, str]:
    """The initiator description an attach may carry (initiator IQN, host, ip)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("'connector' must be an object")
    only_fields(value, ("initiator", "host", "ip", "multipath", "platform", "os_type"),
                "connector")
    result: dict[str, str] = {}
    for key, item in value.items():
        if key == "multipath":
            result[key] = str(boolean(item, "connector.multipath")).lower()
            continue
        checked = text(item, f"connector.{key}")
        if checked is not None:
            result[key] = checked
    initiator = result.get("initiator")
    if initiator is not None and not iscsi_names.is_iscsi_name(initiator):
        raise bad(f"'connector.initiator' must be {iscsi_names.DESCRIPTION}")
    return result


def uuid_like(value: Any, field: str) -> str:
    """Ids are UUID strings; anything else cannot name a resource."""
    checked = required_text(value, field, 64)
    if not re.match(r"^[0-9a-fA-F-]{1,64}$", checked):
        raise bad(f"'{field}' must be a UUID")
    return checked
