"""The small HTTP toolkit both API faces share: a path router, the request handed to
controllers, bounded body reading, JSON/XML body parsing and response rendering.

It knows nothing about volumes, and it never decides a status code for an error: that
is ``faults.FAULT_TABLE``'s job.
"""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET  # builds documents; defusedxml parses
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import webob
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from volmgr import exception
from volmgr.api import faults, input_gate
from volmgr.api import microversion as mv
from volmgr.context import RequestContext

JSON = "json"
XML = "xml"

#: Builds an XML element from a response body (a face's serializer); None for JSON only.
XmlSerializer = Callable[[Mapping[str, Any]], ET.Element]
#: Turns a parsed XML request document into the dict a JSON body would have been.
XmlDeserializer = Callable[[ET.Element], dict[str, Any]]


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class HTTPError(Exception):
    """A fault decided by the HTTP layer (no route, wrong method, bad media type)."""

    def __init__(self, fault: tuple[int, str], message: str) -> None:
        super().__init__(message)
        self.status, self.fault = fault
        self.message = message


@dataclasses.dataclass
class ApiRequest:
    """What a controller sees: the parsed route, the caller and the decoded body."""

    http: webob.Request
    params: dict[str, str]
    context: RequestContext | None
    fmt: str
    body: Any = None
    #: The v3 microversion the request is served at (3.0 for the Compute 1.1 face).
    version: mv.Version = mv.MIN_VERSION

    def at_least(self, version: str) -> bool:
        """Whether the request's microversion is ``version`` or newer."""
        return self.version >= mv.parse(version)

    @property
    def ctx(self) -> RequestContext:
        if self.context is None:  # pragma: no cover - routes needing it are not public
            raise exception.NotAuthorized()
        return self.context

    def query(self, name: str) -> str | None:
        value = self.http.GET.get(name)
        return None if value is None else str(value)


@dataclasses.dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


Handler = Callable[[ApiRequest], ApiResponse]


@dataclasses.dataclass(frozen=True)
class Face:
    """How one API face speaks: XML hooks and ``.xml``/``.json`` suffixes (seed only)."""

    xml_serializer: XmlSerializer | None = None
    xml_deserializer: XmlDeserializer | None = None
    suffixes: bool = False


JSON_ONLY = Face()


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str]
    public: bool = False
    face: Face = JSON_ONLY
    min_version: mv.Version = mv.MIN_VERSION
    max_version: mv.Version | None = None

    def serves(self, version: mv.Version) -> bool:
        return self.min_version <= version and (self.max_version is None
                                                or version <= self.max_version)


_PARAM = re.compile(r"\{(\w+)\}")


def _compile(pattern: str) -> re.Pattern[str]:
    parts = _PARAM.split(pattern)
    regex = ""
    for index, part in enumerate(parts):
        regex += re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
    # \Z, not $: "$" also matches before a final newline ("/volumes%0a" is no route).
    return re.compile(f"^{regex}\\Z")


class Router:
    """Method + path-template routing; first matching template wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, public: bool = False,
            face: Face = JSON_ONLY, min_version: str | None = None,
            max_version: str | None = None) -> None:
        """Route ``method pattern`` to ``handler``; a v3 route that exists only from (or
        up to) a microversion names it, and answers 404 outside that range."""
        self.routes.append(Route(
            method, pattern, handler, _compile(pattern), public, face,
            mv.parse(min_version) if min_version else mv.MIN_VERSION,
            mv.parse(max_version) if max_version else None))

    def match(self, method: str, path: str, version: mv.Version = mv.MIN_VERSION,
              ) -> tuple[Route, dict[str, str], str | None]:
        """The route, its parameters and a format forced by a ``.xml``/``.json`` suffix."""
        allowed: set[str] = set()
        # HEAD is GET without the body (webob drops it on the way out).
        wanted = "GET" if method == "HEAD" else method
        for candidate, suffix in _path_variants(path):
            for route in self.routes:
                if suffix is not None and not route.face.suffixes:
                    continue
                found = route.regex.match(candidate)
                if found is None or not route.serves(version):
                    continue
                if route.method != wanted:
                    allowed.add(route.method)
                    continue
                return route, found.groupdict(), suffix
        if "GET" in allowed:
            allowed.add("HEAD")
        if allowed:
            raise HTTPError(faults.METHOD_NOT_ALLOWED,
                            f"Method {method} is not allowed here; allowed: "
                            f"{', '.join(sorted(allowed))}.")
        raise HTTPError(faults.NOT_FOUND, f"No resource at {path}.")


def _path_variants(path: str) -> list[tuple[str, str | None]]:
    # Block Storage v3 resources have no trailing-slash form (``/v3/{p}/volumes/`` is
    # 404, as in the reference); the version documents and the Compute 1.1 face
    # accept one.
    if not path.startswith("/v3/") or path.count("/") <= 2:
        path = path.rstrip("/") or "/"
    variants: list[tuple[str, str | None]] = [(path, None)]
    for suffix in (JSON, XML):
        if path.endswith("." + suffix):
            variants.insert(0, (path[: -len(suffix) - 1], suffix))
    return variants


def negotiate(http: webob.Request, route: Route, forced: str | None) -> str:
    """JSON unless the route speaks XML and the caller asked for it."""
    if route.face.xml_serializer is None:
        return JSON
    if forced is not None:
        return forced
    best = http.accept.best_match(["application/json", "application/xml", "text/xml"])
    return XML if best in ("application/xml", "text/xml") else JSON


def read_body(http: webob.Request, limit: int) -> bytes:
    """The request body, or RequestTooLarge when it is over ``limit`` bytes (also for
    chunked bodies that announce no length)."""
    length = http.content_length
    if length is not None:
        if length > limit:
            raise exception.RequestTooLarge(limit=limit)
        try:
            return http.body if length else b""
        except (webob.request.DisconnectionError, OSError) as error:
            raise ClientDisconnected(str(error)) from None
    if http.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    try:
        data: bytes = http.environ["wsgi.input"].read(limit + 1)
    except OSError as error:
        raise ClientDisconnected(str(error)) from None
    if len(data) > limit:
        raise exception.RequestTooLarge(limit=limit)
    return data


def parse_body(raw: bytes, content_type: str, route: Route) -> Any:
    """Decode a request body: XML when the caller says so and the route accepts it,
    JSON otherwise. Malformed input is InvalidInput (400)."""
    if not raw.strip():
        return None
    if content_type in ("application/xml", "text/xml"):
        if route.face.xml_deserializer is None:
            raise HTTPError(faults.UNSUPPORTED_MEDIA_TYPE,
                            "This resource accepts JSON bodies only.")
        try:
            root = SafeET.fromstring(raw, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException, ValueError, LookupError) as error:
            # LookupError: an encoding declaration Python does not know.
            raise exception.InvalidInput(reason=f"malformed XML body: {error}") from None
        return route.face.xml_deserializer(root)
    try:
        return json.loads(raw)
    except RecursionError:
        raise exception.InvalidInput(reason="malformed JSON body: nested too deeply") \
            from None
    except (UnicodeDecodeError, ValueError) as error:
        raise exception.InvalidInput(reason=f"malformed JSON body: {error}") from None


def render(http: webob.Request | None, response: ApiResponse, fmt: str,
           serializer: XmlSerializer | None) -> webob.Response:
    answer = webob.Response(status=response.status)
    answer.headers.update(response.headers)
    if response.body is None:
        answer.content_type = None
        answer.body = b""
        return answer
    if fmt == XML and serializer is not None:
        # Whatever is stored (rows older than the input gate included), the document
        # must parse: characters XML 1.0 cannot carry become U+FFFD.
        element = input_gate.xml_safe_tree(serializer(response.body))
        answer.content_type = "application/xml"
        answer.charset = "UTF-8"
        answer.body = b"<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(
            element, encoding="utf-8", xml_declaration=False)
        return answer
    answer.content_type = "application/json"
    answer.charset = None
    answer.body = json_bytes(response.body)
    return answer


def json_bytes(body: Any) -> bytes:
    """``body`` as UTF-8 JSON. orjson encodes a detail listing of 1,000 volumes about
    twenty times faster than the standard library (docs/performance.md); the standard
    library still takes what orjson refuses (an integer beyond 64 bits, a lone
    surrogate in a row stored before the input gate), so no answer changes."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode("utf-8")


def local_name(tag: str) -> str:
    """An XML tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]
