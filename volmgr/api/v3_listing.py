"""Query parameters of v3 list calls, read as the Block Storage API reference gives
them: ``limit`` (capped at ``osapi_max_limit``, never an error for being large),
``marker``, ``offset``, ``sort`` (``key[:dir],…``) or the older ``sort_key``/``sort_dir``,
``all_tenants``, ``with_count`` (3.45) and the resource's filters.

Unknown filters are ignored below 3.31 and refused (400) from 3.31 on, as the reference
service does; administrators may filter on any column the resource has.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from volmgr.api import validation as v
from volmgr.api.wsgi import ApiRequest

#: Parameters that steer the listing rather than filter it.
CONTROL = frozenset({"limit", "marker", "offset", "sort", "sort_key", "sort_dir",
                     "all_tenants", "with_count", "detail"})

#: API name -> column, per resource: what each filter and sort key means.
VOLUME_COLUMNS = {
    "id": "id", "name": "display_name", "display_name": "display_name",
    "status": "status", "size": "size", "bootable": "bootable",
    "availability_zone": "availability_zone", "created_at": "created_at",
    "updated_at": "updated_at", "migration_status": "migration_status",
    "volume_type_id": "volume_type_id", "user_id": "user_id",
    "project_id": "project_id", "host": "host", "description": "display_description",
}
SNAPSHOT_COLUMNS = {
    "id": "id", "name": "display_name", "display_name": "display_name",
    "status": "status", "size": "size", "volume_id": "volume_id",
    "created_at": "created_at", "updated_at": "updated_at", "project_id": "project_id",
    "user_id": "user_id", "description": "display_description",
}
#: Filters a member may use (the reference service's default resource filters).
VOLUME_MEMBER_FILTERS = frozenset({"name", "status", "metadata", "bootable",
                                   "migration_status", "availability_zone", "group_id",
                                   "size", "created_at", "updated_at", "consumes_quota",
                                   "display_name"})
SNAPSHOT_MEMBER_FILTERS = frozenset({"name", "status", "volume_id", "metadata",
                                     "availability_zone", "consumes_quota",
                                     "display_name"})

_BOOLEAN_COLUMNS = frozenset({"bootable"})
_INTEGER_COLUMNS = frozenset({"size"})


@dataclasses.dataclass
class Listing:
    """What a list request asks for, ready for the database layer."""

    limit: int
    marker: str | None
    offset: int
    sort: list[tuple[str, str]]
    filters: dict[str, Any]
    metadata: dict[str, str]
    all_projects: bool
    with_count: bool
    #: ``limit`` as the caller gave it (None: the default page size applies).
    asked_limit: int | None

    def row_filter(self) -> Callable[[Any], bool] | None:
        """The metadata filter as a predicate on rows (JSON is not portable in SQL)."""
        if not self.metadata:
            return None
        wanted = self.metadata

        def matches(row: Any) -> bool:
            stored = row.metadata_ or {}
            return all(stored.get(key) == value for key, value in wanted.items())
        return matches


def _metadata_filter(text: str) -> dict[str, str]:
    """``metadata={"k": "v"}`` as JSON or a Python-literal dict (what clients send)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise v.bad("'metadata' filter is nested too deeply") from None
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise v.bad("'metadata' filter must be an object such as "
                        "{\"key\": \"value\"}") from None
    if not isinstance(value, dict):
        raise v.bad("'metadata' filter must be an object such as {\"key\": \"value\"}")
    return {str(key): str(item) for key, item in value.items()}


def _sort(req: ApiRequest, columns: Mapping[str, str]) -> list[tuple[str, str]]:
    params = req.http.GET
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise v.bad("the 'sort_key' and 'sort_dir' parameters cannot be used with the "
                    "'sort' parameter")
    pairs: list[tuple[str, str]] = []
    if "sort" in params:
        for item in str(params["sort"]).split(","):
            key, _, direction = item.strip().partition(":")
            pairs.append((key.strip(), direction.strip() or "desc"))
    else:
        keys = str(params.get("sort_key", "created_at")).split(",")
        directions = str(params.get("sort_dir", "desc")).split(",")
        for index, key in enumerate(keys):
            direction = directions[index] if index < len(directions) else directions[-1]
            pairs.append((key.strip(), direction.strip() or "desc"))
    order: list[tuple[str, str]] = []
    for key, direction in pairs:
        if key not in columns:
            raise v.bad(f"invalid sort key {key[:40]!r}; valid keys: "
                        f"{', '.join(sorted(columns))}")
        if direction.lower() not in ("asc", "desc"):
            raise v.bad(f"invalid sort direction {direction[:20]!r}; use asc or desc")
        order.append((columns[key], direction.lower()))
    return order


def _filter_value(column: str, text: str) -> Any:
    if column in _BOOLEAN_COLUMNS:
        return v.boolean(text, column)
    if column in _INTEGER_COLUMNS:
        return v.integer(text, column, minimum=0)
    return text


def read(req: ApiRequest, *, max_limit: int, columns: Mapping[str, str],
         member_filters: frozenset[str], ignore: frozenset[str] = frozenset(),
         ) -> Listing:
    """Parse a v3 list request for a resource whose API names map to ``columns``."""
    params = req.http.GET
    limit_text = params.get("limit")
    asked_limit: int | None = None
    if limit_text is not None:
        asked_limit = min(v.integer(str(limit_text), "limit", minimum=0), max_limit)
    offset_text = params.get("offset")
    offset = v.integer(str(offset_text), "offset", minimum=0) if offset_text else 0
    all_tenants = str(params.get("all_tenants", "")).lower() in ("1", "true", "yes")
    with_count = (req.at_least("3.45") and str(params.get("with_count", "")).lower()
                  in ("1", "true", "yes"))
    filters: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in params.items():
        if key in CONTROL or key in ignore:
            continue
        text = str(value)
        if key == "metadata":
            metadata = _metadata_filter(text)
            continue
        allowed = req.ctx.is_admin or key in member_filters
        column = columns.get(key)
        if column is None or not allowed:
            if key not in member_filters:
                unknown.append(key)
            continue
        if key == "project_id" and not all_tenants:
            continue
        filters[column] = _filter_value(column, text)
    if unknown and req.at_least("3.31"):
        raise v.bad(f"Invalid filters {','.join(sorted(unknown))} are found in query "
                    f"options.")
    return Listing(limit=asked_limit if asked_limit is not None else max_limit,
                   marker=params.get("marker") or None, offset=offset,
                   sort=_sort(req, columns), filters=filters, metadata=metadata,
                   all_projects=all_tenants and req.ctx.is_admin, with_count=with_count,
                   asked_limit=asked_limit)
