"""Block Storage v3 user messages (``/messages``, from 3.3): why a request of the
caller's project ended in error, in the reference service's format.

The data layer writes the messages (``volmgr/db/messages.py``); this module lists,
shows and deletes them. A message is kept ``[DEFAULT] message_ttl`` seconds after it
was written (``guaranteed_until``): older ones are never shown, and the API purges them
at most once every ``PURGE_INTERVAL`` seconds per process, on the way to a listing.
Paging, sorting and filters follow the reference from 3.5; before 3.5 a listing gives
every live message. Members see their project's messages, administrators every
project's.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from volmgr.api import v3_listing
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import V3Deps, links, next_link, prefixed
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import messages, models

#: Seconds between two purges of expired messages by one API process.
PURGE_INTERVAL = 300.0
MIN_VERSION = "3.3"
PAGING_VERSION = "3.5"
#: Filters a member may use (the reference service's message filters).
MEMBER_FILTERS = frozenset({"resource_uuid", "resource_type", "event_id", "request_id",
                            "message_level"})


def message_view(req: ApiRequest, message: models.Message, ttl: int) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": message.id,
        "event_id": message.event_id,
        "user_message": messages.user_message(message),
        "message_level": message.message_level,
        "created_at": timestamp(message.created_at),
        "guaranteed_until": timestamp(message.created_at + datetime.timedelta(seconds=ttl)),
        "request_id": message.request_id or "",
        "links": links(req, "messages", message.id, message.project_id),
    }
    if message.resource_type:
        view["resource_type"] = message.resource_type
    if message.resource_uuid:
        view["resource_uuid"] = message.resource_uuid
    return view


class MessagesController:
    def __init__(self, deps: V3Deps) -> None:
        self.conf = deps.conf
        self.db = deps.db
        self._next_purge = 0.0

    @property
    def ttl(self) -> int:
        return int(self.conf.message_ttl)

    def _oldest_shown(self) -> datetime.datetime:
        return models.utcnow() - datetime.timedelta(seconds=self.ttl)

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            self.db.message_purge(self._oldest_shown())

    @staticmethod
    def _scope(req: ApiRequest) -> str | None:
        return None if req.ctx.is_admin else req.ctx.project_id

    def index(self, req: ApiRequest) -> ApiResponse:
        self._purge_now_and_then()
        scope = self._scope(req)
        if not req.at_least(PAGING_VERSION):
            rows = self.db.message_list(scope, newer_than=self._oldest_shown())
            return ApiResponse(200, {"messages": [message_view(req, m, self.ttl)
                                                  for m in rows]})
        listing = v3_listing.read(req, max_limit=self.conf.api.osapi_max_limit,
                                  columns=messages.COLUMNS, member_filters=MEMBER_FILTERS)
        rows = self.db.message_list(
            scope, filters=listing.filters, newer_than=self._oldest_shown(),
            marker=listing.marker, limit=listing.limit, offset=listing.offset,
            sort=listing.sort)
        body: dict[str, Any] = {"messages": [message_view(req, m, self.ttl) for m in rows]}
        if listing.asked_limit and len(rows) == listing.limit:
            body["messages_links"] = next_link(req, rows[-1].id)
        return ApiResponse(200, body)

    def show(self, req: ApiRequest) -> ApiResponse:
        message = self.db.message_get(req.params["message_id"], self._scope(req),
                                      newer_than=self._oldest_shown())
        return ApiResponse(200, {"message": message_view(req, message, self.ttl)})

    def delete(self, req: ApiRequest) -> ApiResponse:
        message_id = req.params["message_id"]
        scope = self._scope(req)
        self.db.message_get(message_id, scope, newer_than=self._oldest_shown())
        self.db.message_delete(message_id, scope)
        return ApiResponse(204)


def add_routes(router: Router, deps: V3Deps) -> None:
    controller = MessagesController(deps)
    for path in prefixed("/messages"):
        router.add("GET", path, controller.index, min_version=MIN_VERSION)
    for path in prefixed("/messages/{message_id}"):
        router.add("GET", path, controller.show, min_version=MIN_VERSION)
        router.add("DELETE", path, controller.delete, min_version=MIN_VERSION)
