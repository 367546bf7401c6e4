"""iSCSI names (RFC 3720): the one definition the API validates connectors with and the
target helpers trust, so an initiator the API accepts is one every helper accepts."""

from __future__ import annotations

import re

_ISCSI_NAME_RE = re.compile(
    r"^(iqn\.\d{4}-\d{2}\.[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[A-Za-z0-9.:_-]+)?"
    r"|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}(?:[0-9A-Fa-f]{16})?)$")

#: What the API tells a caller whose connector names something else.
DESCRIPTION = ("an iSCSI name: iqn.YYYY-MM.reversed.domain[:identifier], eui. and 16 hex "
               "digits, or naa. and 16 or 32 hex digits")


def is_iscsi_name(value: object) -> bool:
    return isinstance(value, str) and _ISCSI_NAME_RE.match(value) is not None
