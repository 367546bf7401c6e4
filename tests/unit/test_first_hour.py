"""The first hour with volmgr, for a new user and a new maintainer: one specification
(or more) per defect a newcomer met, grouped by what the newcomer was doing.

Everything here runs without root, services or network (SQLite, the in-process bus,
fakes), so ``.tox/py3/bin/pytest -q tests/unit`` stays a one-minute command.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


# -- the repository stands alone (docs/architecture.md) ---------------------------------

def _tracked_files() -> list[str]:
    """The repository's files: git's list in a checkout, else a walk of the tree."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
        return [name for name in listed if name and (ROOT / name).is_file()]
    skip = {".git", ".tox", ".venv", "build", "dist", "__pycache__", ".mypy_cache"}
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        found.extend(os.path.relpath(os.path.join(folder, n), ROOT) for n in names)
    return found


def _texts() -> dict[str, str]:
    texts = {}
    for name in _tracked_files():
        try:
            texts[name] = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
    return texts


# Documents that lived outside the repository, and references to an issue tracker the
# repository does not carry. Spelled in pieces so this file does not name them itself.
_OUTSIDE = re.compile("|".join([
    r"\bDESIGN" + r"\.md\b", r"\bNOTES" + r"\.md\b", r"(?<![\w.-])shared" + "/",
    r"\b[Ii]ssue" + r" #?\d+", "\u00a7"]))
_MARKDOWN = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
_REPO_PATH = re.compile(r"(?<![\w/.-])((?:docs|etc|tools|tests|volmgr)/[\w./-]*\.[\w-]+)")


def test_no_file_names_a_document_outside_the_repository() -> None:
    found = [f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
             for name, text in _texts().items() for match in _OUTSIDE.finditer(text)]
    assert found == [], ("these point at documents the repository does not hold; "
                         "point at a file under docs/ instead:\n" + "\n".join(found))


def test_every_document_or_file_a_file_names_exists() -> None:
    texts = _texts()
    tracked = set(_tracked_files())
    folders = {str(pathlib.PurePosixPath(name).parent) for name in tracked}
    folders |= {str(parent) for f in list(folders) for parent in pathlib.PurePosixPath(f).parents}
    missing = []
    for name, text in texts.items():
        for pattern in (_MARKDOWN, _REPO_PATH):
            for match in pattern.finditer(text):
                reference = match.group(1).rstrip(".")
                candidates = (reference,
                              os.path.normpath(os.path.join(os.path.dirname(name), reference)))
                if not any(c in tracked or c.rstrip("/") in folders for c in candidates):
                    missing.append(f"{name}: {reference}")
    assert sorted(set(missing)) == []


def test_the_architecture_document_covers_what_a_new_maintainer_asks() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for heading in ("## Layers, and who may import whom", "## The life of a create",
                    "## The state machine", "## Delivery and recovery: what is promised"):
        assert heading in text
    for source in ("volmgr/volume/executor.py", "volmgr/volume/serial.py", "seed face"):
        assert source in text  # the words that mean two things are defined there


# Which package may import which (docs/architecture.md, "Layers"): a package not
# listed may not be imported; "top" is the top-level modules (exception, states, ...).
_MAY_IMPORT = {
    "top": {"top"},
    "db": {"top", "db"},
    "volume": {"top", "db", "volume"},
    "api": {"top", "db", "api", "volume.rpcapi"},
    "manage": {"top", "db", "volume", "manage"},
    "bench": {"top", "db", "bench"},
    "cmd": {"top", "db", "volume", "api", "manage", "cmd", "bench"},
}
_PACKAGES = ("api", "db", "volume", "manage", "cmd", "bench")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "volmgr":
        return None
    if len(parts) > 1 and parts[1] in _PACKAGES:
        return parts[1]
    return "top"


def _allowed(source: str, target_module: str) -> bool:
    target = _layer(target_module)
    allowed = _MAY_IMPORT[source]
    if target in allowed:
        return True
    return any(target_module == f"volmgr.{entry}" or target_module.startswith(
        f"volmgr.{entry}.") for entry in allowed if "." in entry)


def test_each_layer_imports_only_what_the_architecture_allows() -> None:
    broken = []
    for path in sorted((ROOT / "volmgr").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module == "volmgr.opts":
            continue  # lists every option of every package, for oslo-config-generator
        source = _layer(module)
        assert source is not None
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            broken.extend(f"{module} imports {target}" for target in targets
                          if _layer(target) is not None and not _allowed(source, target))
    assert broken == []
