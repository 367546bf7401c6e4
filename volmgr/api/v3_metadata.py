"""``…/{id}/metadata`` and ``…/{id}/metadata/{key}`` of volumes and snapshots: the same
six calls for both, as the Block Storage API reference gives them.

``POST`` merges, ``PUT`` replaces; the item calls read, set and delete one key. Every
change is a read-modify-write under the row lock (``edits``), so two concurrent updates
never lose each other's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from volmgr import exception
from volmgr.api import edits
from volmgr.api import validation as v
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router

#: The resource's stored metadata, read for the caller (404 when it is not theirs).
Read = Callable[[ApiRequest, str], dict[str, Any]]
#: Apply a change for the caller; returns the new metadata.
Change = Callable[[ApiRequest, str, edits.MetadataChange], dict[str, Any]]


def body(value: Any, key: str = "metadata") -> dict[str, str]:
    """``{key: {...}}`` holding string keys and values."""
    return v.metadata(v.member(value, key), key)


def _missing(key: str) -> exception.NotFound:
    return exception.NotFound(f"Metadata item {key} was not found.")


class MetadataResource:
    """The metadata calls of one resource, whose id is the route parameter ``id_param``."""

    def __init__(self, id_param: str, read: Read, change: Change) -> None:
        self.id_param = id_param
        self.read = read
        self.change = change

    def _id(self, req: ApiRequest) -> str:
        return req.params[self.id_param]

    def show(self, req: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"metadata": self.read(req, self._id(req))})

    def merge(self, req: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"metadata": self.change(req, self._id(req),
                                                         edits.merge(body(req.body)))})

    def replace(self, req: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"metadata": self.change(req, self._id(req),
                                                         edits.replace(body(req.body)))})

    def show_item(self, req: ApiRequest) -> ApiResponse:
        key = req.params["key"]
        metadata = self.read(req, self._id(req))
        if key not in metadata:
            raise _missing(key)
        return ApiResponse(200, {"meta": {key: metadata[key]}})

    def set_item(self, req: ApiRequest) -> ApiResponse:
        key = req.params["key"]
        item = body(req.body, "meta")
        if len(item) != 1 or key not in item:
            raise v.bad("the body must be {\"meta\": {\"<key in the URL>\": \"value\"}}")
        self.change(req, self._id(req), edits.set_key(key, item[key]))
        return ApiResponse(200, {"meta": item})

    def delete_item(self, req: ApiRequest) -> ApiResponse:
        self.change(req, self._id(req), edits.delete_keys([req.params["key"]],
                                                          missing=_missing))
        return ApiResponse(200)

    def add_routes(self, router: Router, one: str) -> None:
        """Under ``one``, the resource's own path (``…/volumes/{volume_id}``)."""
        router.add("GET", one + "/metadata", self.show)
        router.add("POST", one + "/metadata", self.merge)
        router.add("PUT", one + "/metadata", self.replace)
        router.add("GET", one + "/metadata/{key}", self.show_item)
        router.add("PUT", one + "/metadata/{key}", self.set_item)
        router.add("DELETE", one + "/metadata/{key}", self.delete_item)
