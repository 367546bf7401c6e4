"""Write docs/configuration.md, the operator's reference of every volmgr option, from the
same option lists oslo-config-generator reads (``volmgr.opts.list_opts``).

    python -m tools.config_reference [--output docs/configuration.md]

``tox -e genconfig`` runs it next to oslo-config-generator; a unit test fails when the
committed file is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from oslo_config import cfg

from volmgr import opts

HEADER = """# Configuration reference

Every option volmgr itself declares, by section, generated from the code by
`tox -e genconfig` (do not edit by hand). `etc/volmgr/volmgr.conf.sample` holds the same
options plus those of oslo.messaging (`[oslo_messaging_rabbit]`, notifications) and
keystonemiddleware (`[keystone_authtoken]`).
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(opt: cfg.Opt) -> str:
    value = opt.sample_default if opt.sample_default is not None else opt.default
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{_cell(value)}`"


def _type(opt: cfg.Opt) -> str:
    name = type(opt).__name__.removesuffix("Opt").lower() or "string"
    choices = getattr(opt.type, "choices", None)
    if choices:
        name += ": " + " \\| ".join(f"`{choice}`" for choice in choices)
    return name


def render(groups: Iterable[tuple[str, Iterable[cfg.Opt]]]) -> str:
    lines = [HEADER]
    for group, options in groups:
        lines += [f"## [{group}]", "", "| option | type | default | meaning |",
                  "|---|---|---|---|"]
        for opt in sorted(options, key=lambda o: o.name):
            lines.append(f"| `{opt.name}` | {_type(opt)} | {_default(opt)} | "
                         f"{_cell(opt.help)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/configuration.md")
    parser.add_argument("--output", default="docs/configuration.md")
    args = parser.parse_args(argv)
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(render(opts.list_opts()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
