"""The one gate every string from outside passes: path parameters, query, headers, the
caller's identity and every string (keys included) of a decoded JSON or XML body.

* A string holding a character that XML 1.0 cannot carry (NUL and the other C0 controls
  but tab, LF and CR; lone UTF-16 surrogates; U+FFFE, U+FFFF) is refused with a 400
  fault naming the field. Such a string could not be stored the same way on every
  database (PostgreSQL refuses NUL, a surrogate cannot be encoded) nor be given back in
  an XML document.
* A string longer than the column that stores it is refused with a 400 fault naming
  the field. The limits are read from the SQLAlchemy schema itself
  (``column_length``, ``param_limit``): there is no second list of numbers, and
  SQLite (which stores any length) answers exactly as PostgreSQL and MariaDB do.

``ApiApplication.handle`` runs ``check_request`` on every request before a controller
sees it, and ``check_identity`` on every caller; ``validation`` uses ``check_text`` and
``column_length`` for body fields. ``xml_safe_tree`` is the output side: whatever is
stored, an XML answer always parses.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET  # builds documents; defusedxml parses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import webob

from volmgr import exception
from volmgr.context import RequestContext
from volmgr.db import models

#: Characters XML 1.0 cannot carry (https://www.w3.org/TR/xml/#charsets).
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"
_NAME_START = re.compile(r"[^A-Za-z_:]")
_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.:-]")


def _describe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "a NUL character"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X})"
    return f"the character U+{code:04X}"


def _bad(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def _shown(field: str) -> str:
    # A field name can itself be the caller's text (a metadata key, a query name).
    return FORBIDDEN.sub(REPLACEMENT, field)[:80]


def check_text(value: str, field: str) -> str:
    """``value`` unless it holds a character no backend and no XML answer can carry."""
    found = FORBIDDEN.search(value)
    if found is not None:
        raise _bad(f"'{_shown(field)}' must not contain {_describe(found.group())}")
    return value


def check_length(value: str, field: str, limit: int | None) -> str:
    if limit is not None and len(value) > limit:
        raise _bad(f"'{_shown(field)}' is longer than {limit} characters")
    return value


def column_length(column: Any) -> int | None:
    """The declared length of a String column (a mapped attribute such as
    ``models.Volume.display_name`` or a Core ``Column``); None when unbounded."""
    expression = getattr(column, "expression", column)
    kind = getattr(expression, "type", None)
    if isinstance(kind, sa.String) and not isinstance(kind, sa.Text):
        return kind.length
    return None


def _string_columns() -> list[tuple[str, sa.Column[Any]]]:
    return [(table.name, col) for table in models.Base.metadata.tables.values()
            for col in table.columns if column_length(col) is not None]


@functools.cache
def param_limit(name: str) -> int | None:
    """The length limit of a path parameter, from the schema: the shortest column of
    that name (``server_id``, ``project_id``...), else for ``<thing>_id`` the ``id``
    of the ``<thing>s`` table (``attachment_id`` → volume_attachments.id)."""
    lengths = [column_length(col) for _table, col in _string_columns() if col.name == name]
    if not lengths and name.endswith("_id"):
        stem = name[:-3]
        lengths = [column_length(col) for table, col in _string_columns()
                   if col.name == "id" and (table in (stem + "s", stem + "es")
                                            or table.endswith("_" + stem + "s"))]
    known = [length for length in lengths if length is not None]
    return min(known) if known else None


def scan(value: Any, field: str) -> None:
    """Every string in a decoded body (dict keys included), iteratively: a body nested
    as deep as the JSON decoder allows must not exhaust the stack here."""
    pending: list[tuple[Any, str]] = [(value, field)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    check_text(key, f"{where} key" if where else "key")
                pending.append((child, name))
        elif isinstance(item, list | tuple):
            pending.extend((child, f"{where}[{index}]") for index, child in enumerate(item))


def check_request(http: webob.Request, params: Mapping[str, str], body: Any) -> None:
    """The request's path parameters, query, headers and decoded body."""
    for name, value in params.items():
        check_length(check_text(value, name), name, param_limit(name))
    for name, value in http.GET.items():
        check_text(name, "query parameter name")
        check_text(value, name)
    for name, value in http.headers.items():
        # A middleware in front (keystonemiddleware) may leave a header slot empty.
        if isinstance(value, str):
            check_text(value, name)
    if body is not None:
        scan(body, "")


def check_identity(ctx: RequestContext) -> None:
    """The caller's project and user, as the token (or keystonemiddleware) gave them,
    must fit the columns that record them."""
    for field, column in (("project_id", models.Volume.project_id),
                          ("user_id", models.Volume.user_id)):
        value = getattr(ctx, field) or ""
        check_length(check_text(value, f"token {field}"), f"token {field}",
                     column_length(column))


# -- the database boundary -----------------------------------------------------------


def _limits(table: sa.Table) -> dict[str, int]:
    return {col.key: length for col in table.columns
            if (length := column_length(col)) is not None}


def _written(statement: Any, multiparams: Any, params: Any) -> list[Mapping[Any, Any]]:
    """Each row the statement writes, as column key -> value: its embedded values, and
    the parameters supplied with it (a parameter that a prebuilt statement binds to a
    column, ``values(name=bindparam("b_name"))``, counts under that column's key)."""
    rows: list[Mapping[Any, Any]] = []
    embedded = getattr(statement, "_values", None) or {}
    bound_to: dict[str, str] = {}
    if embedded:
        row: dict[Any, Any] = {}
        for key, value in embedded.items():
            column = getattr(key, "key", key)
            if isinstance(value, sa.BindParameter) and value.value is None:
                bound_to[value.key] = column
            else:
                row[column] = getattr(value, "value", value)
        rows.append(row)
    supplied: list[Mapping[Any, Any]] = []
    for group in (multiparams, [params] if params else []):
        for given in group or ():
            if isinstance(given, Mapping):
                supplied.append(given)
            elif isinstance(given, list | tuple):
                supplied.extend(item for item in given if isinstance(item, Mapping))
    rows.extend({bound_to.get(key, key): value for key, value in item.items()}
                for item in supplied)
    return rows


def check_write(statement: Any, multiparams: Any = None, params: Any = None) -> None:
    """A string an INSERT or UPDATE would write into a column too short for it is a 400
    naming ``table.column``: SQLite would keep it whole, PostgreSQL and MariaDB refuse
    it. The limits are the columns' own."""
    if not isinstance(statement, sa.Insert | sa.Update):
        return
    table = statement.table
    if not isinstance(table, sa.Table):
        return
    limits = _limits(table)
    for row in _written(statement, multiparams, params):
        for key, value in row.items():
            limit = limits.get(str(key))
            if limit is not None and isinstance(value, str) and len(value) > limit:
                raise _bad(f"'{table.name}.{key}' is longer than {limit} characters")


def guard_writes(engine: sa.Engine) -> None:
    """Run ``check_write`` before every statement ``engine`` executes (once per engine)."""
    if not sa.event.contains(engine, "before_execute", _before_execute):
        sa.event.listen(engine, "before_execute", _before_execute)


def _before_execute(conn: Any, statement: Any, multiparams: Any, params: Any,
                    execution_options: Any) -> None:
    check_write(statement, multiparams, params)


# -- output --------------------------------------------------------------------------


def xml_text(value: str) -> str:
    """``value`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return FORBIDDEN.sub(REPLACEMENT, value)


def xml_name(value: str) -> str:
    """An element or attribute name built from data, made a well-formed XML name."""
    name = _NAME_CHAR.sub("_", value) or "_"
    return name if not _NAME_START.match(name[0]) else "_" + name


def xml_safe_tree(root: ET.Element) -> ET.Element:
    """``root`` with every text, tail, attribute and tag fit for an XML 1.0 document
    (namespace declarations and prefixed names are kept)."""
    for element in root.iter():
        if isinstance(element.tag, str) and not element.tag.startswith("{"):
            element.tag = xml_name(element.tag)
        if element.text is not None:
            element.text = xml_text(str(element.text))
        if element.tail is not None:
            element.tail = xml_text(str(element.tail))
        if element.attrib:
            cleaned = {(key if key.startswith("{") else xml_name(key)): xml_text(str(val))
                       for key, val in element.attrib.items()}
            element.attrib.clear()
            element.attrib.update(cleaned)
    return root
