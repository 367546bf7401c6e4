"""Block Storage v3 microversions: what a request asks for and what this API serves.

A client names the version it speaks in ``OpenStack-API-Version: volume 3.N`` (or
``volume latest``). No header means 3.0, the base version. A version outside
``MIN_VERSION`` to ``MAX_VERSION`` answers 406; a malformed one answers 400. Every v3 answer
carries the version it was served at, and ``Vary`` on the header.

Controllers ask ``req.at_least("3.27")`` where a field or behaviour starts at a given
microversion; routes that exist only from a microversion on carry ``min_version`` and
answer 404 below it, as the Block Storage API reference describes.
"""

from __future__ import annotations

import functools
import re

from volmgr.api import faults

SERVICE = "volume"
HEADER = "OpenStack-API-Version"
#: Cinder's older header, still sent by some clients; read when the new one is absent.
LEGACY_HEADER = "X-OpenStack-Volume-API-Version"

Version = tuple[int, int]

MIN_VERSION: Version = (3, 0)
#: The newest microversion served: what current python-cinderclient asks for.
MAX_VERSION: Version = (3, 71)

_VERSION = re.compile(r"^([1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class VersionError(Exception):
    """A version header that is malformed (400) or outside the served range (406)."""

    def __init__(self, fault: tuple[int, str], message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message


@functools.lru_cache(maxsize=512)
def parse(text: str) -> Version:
    """``"3.27"`` → ``(3, 27)``; ValueError when it is not ``MAJOR.MINOR``. Cached: the
    views ask ``at_least`` several times per item of a listing."""
    found = _VERSION.match(text.strip())
    if found is None:
        raise ValueError(text)
    return int(found.group(1)), int(found.group(2))


def text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def _requested(header: str) -> str | None:
    """The version named for ``volume`` in a header that may list several services."""
    for item in header.split(","):
        service, _, version = item.strip().partition(" ")
        if service.strip().lower() == SERVICE:
            return version.strip()
    return None


def negotiate(header: str | None, legacy_header: str | None = None) -> Version:
    """The microversion a request is served at, or VersionError."""
    if header:
        asked = _requested(header)
    elif legacy_header:
        asked = legacy_header.strip()
    else:
        asked = None
    if asked is None or asked == "":
        return MIN_VERSION
    if asked.lower() == "latest":
        return MAX_VERSION
    try:
        version = parse(asked)
    except ValueError:
        raise VersionError(faults.BAD_REQUEST,
                           f"API version {asked[:20]!r} is not of the form MAJOR.MINOR "
                           f"or 'latest'.") from None
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(faults.NOT_ACCEPTABLE,
                           f"Version {text(version)} is not supported by the API. Minimum "
                           f"is {text(MIN_VERSION)} and maximum is {text(MAX_VERSION)}.")
    return version


def response_header(version: Version) -> str:
    return f"{SERVICE} {text(version)}"
