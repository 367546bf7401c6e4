"""How volmgr-manage prints results: aligned tables for people, JSON for scripts.

Results go to stdout; notes, warnings and progress go to stderr, so a script reading
``--format json`` never has to filter anything out. Secrets (CHAP passwords,
provider_auth) must never be handed to these functions.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg


def wants_json(conf: cfg.ConfigOpts) -> bool:
    return bool(conf.command.format == "json")


def cell(value: Any) -> Any:
    """A JSON-friendly value: ISO timestamps, everything else as is."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="seconds")
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(cell(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as left-aligned columns under a header; one line per row."""
    texts = [[_text(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(t[i]) for t in texts]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.extend("  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip()
                 for row in texts)
    return "\n".join(lines)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=cell)


def output(conf: cfg.ConfigOpts, rows: Sequence[Mapping[str, Any]],
           columns: Sequence[str]) -> None:
    """Print ``rows`` as an aligned table, or as a JSON list with ``--format json``."""
    if wants_json(conf):
        print(to_json([{k: cell(v) for k, v in row.items()} for row in rows]))
    else:
        print(table(rows, columns))


def output_record(conf: cfg.ConfigOpts, record: Mapping[str, Any]) -> None:
    """Print one object: a two-column Field/Value table, or a JSON object. Nested
    lists of mappings (e.g. attachments) become their own indented tables."""
    if wants_json(conf):
        print(to_json(record))
        return
    flat = [{"field": k, "value": v} for k, v in record.items()
            if not _is_table(v)]
    print(table(flat, ["field", "value"]))
    for key, value in record.items():
        if _is_table(value):
            print(f"\n{key}:")
            if value:
                print(table(value, list(value[0])))
            else:
                print("  (none)")


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)


def note(text: str) -> None:
    """A message for the operator that is not part of the result (stderr)."""
    print(text, file=sys.stderr)
