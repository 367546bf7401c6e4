"""The small request context carried from the API through RPC to the manager.

It holds identities only (request id, user, project, roles); never ORM objects or
credentials, because it is serialized into every message.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """Who asked for an operation, and under which request id it is logged."""

    project_id: str
    user_id: str
    roles: tuple[str, ...] = ()
    request_id: str = dataclasses.field(default_factory=new_request_id)
    #: When the API cast the request (epoch seconds), for the bus-lag metric.
    sent_at: float | None = dataclasses.field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "user_id": self.user_id,
            "roles": list(self.roles),
            "request_id": self.request_id,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RequestContext:
        return cls(
            project_id=str(values.get("project_id") or ""),
            user_id=str(values.get("user_id") or ""),
            roles=tuple(values.get("roles") or ()),
            request_id=str(values.get("request_id") or new_request_id()),
            sent_at=_seconds(values.get("sent_at")),
        )

    @classmethod
    def admin(cls, request_id: str | None = None) -> RequestContext:
        """A context for the service's own work (recovery, heartbeat, operator CLI)."""
        return cls(
            project_id="",
            user_id="volmgr",
            roles=("admin",),
            request_id=request_id or new_request_id(),
        )


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
