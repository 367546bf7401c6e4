"""``POST …/{id}/action`` dispatch: a body of one key, the action's name, whose value is
the action's arguments. Each API module registers the actions it owns in the table of
its resource, with the microversion each starts at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from volmgr.api import microversion as mv
from volmgr.api import validation as v
from volmgr.api.wsgi import ApiRequest, ApiResponse

#: ``handler(req, resource_id, args)``; ``args`` is the action's value, as sent.
ActionHandler = Callable[[ApiRequest, str, Any], ApiResponse]


class ActionTable:
    """The actions of one resource (volumes, snapshots, attachments, types …)."""

    def __init__(self, resource: str, id_param: str) -> None:
        self.resource = resource
        self.id_param = id_param
        self._actions: dict[str, tuple[ActionHandler, mv.Version]] = {}

    def add(self, name: str, handler: ActionHandler, min_version: str = "3.0") -> None:
        if name in self._actions:
            raise ValueError(f"action {name} registered twice")
        self._actions[name] = (handler, mv.parse(min_version))

    def names(self, version: mv.Version = mv.MAX_VERSION) -> list[str]:
        return sorted(n for n, (_, since) in self._actions.items() if since <= version)

    def dispatch(self, req: ApiRequest) -> ApiResponse:
        if not isinstance(req.body, dict) or len(req.body) != 1:
            raise v.bad(f"a {self.resource} action body is one object such as "
                        f"{{\"<action>\": {{...}}}}")
        ((name, args),) = req.body.items()
        entry = self._actions.get(name)
        if entry is None or entry[1] > req.version:
            raise v.bad(f"{self.resource} action {str(name)[:40]!r} is not supported at "
                        f"microversion {mv.text(req.version)}; supported: "
                        f"{', '.join(self.names(req.version))}")
        handler, _ = entry
        return handler(req, req.params[self.id_param], args)
