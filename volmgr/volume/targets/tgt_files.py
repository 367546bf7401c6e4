"""tgt target files: the text tgt-admin reads at boot, and volmgr's record of an export.

One file per exported volume (mode 0600: it holds the CHAP secret), rendered and parsed
here; the tgtadm helper does the locking and the atomic writes. A restricted export's file
must never let tgt-admin bind its implicit "ALL".
"""

from __future__ import annotations

import dataclasses

from volmgr.volume.targets import base

# A restricted target's file names this address so that tgt-admin (at boot) does not
# bind its implicit "ALL": no TCP peer has the address 0.0.0.0, so it admits nobody and
# only the initiator-name entries let initiators in.
NOBODY_ADDRESS = "0.0.0.0/32"
# First line of a target file: whether a connector without an initiator was admitted
# (tgt-admin's parser drops '#' comments). Files without it predate per-export ACLs.
_MARK = "# volmgr-acl:"
_MARK_ANY, _MARK_NAMED = "any-initiator", "named-initiators"


@dataclasses.dataclass
class TargetFile:
    """One export: its backing, CHAP, and what the connectors asked to admit."""

    device_path: str
    chap: base.Chap
    initiators: list[str]
    #: a connector that named no initiator was admitted (any initiator, with CHAP)
    any_initiator: bool = False


def render(iqn: str, lld: str, target: TargetFile, admits_any: bool) -> str:
    """The file describing the target the helper builds (``admits_any``: ALL bound)."""
    lines = [f"{_MARK} {_MARK_ANY if target.any_initiator else _MARK_NAMED}",
             f"<target {iqn}>",
             f"    backing-store {target.device_path}",
             f"    driver {lld}",
             f"    incominguser {target.chap.username} {target.chap.secret}",
             "    write-cache off"]
    # tgt-admin binds ALL when a target names no initiator-address: a restricted target
    # names one nobody has, so nothing but its initiator-name entries admits.
    if admits_any:
        lines.append("    initiator-address ALL")
    else:
        lines.append(f"    initiator-address {NOBODY_ADDRESS}")
    lines += [f"    initiator-name {name}" for name in target.initiators]
    lines.append("</target>")
    return "\n".join(lines) + "\n"


def parse(text: str) -> TargetFile | None:
    """The export a file describes; None when it names no CHAP account."""
    device_path, chap, initiators = "", None, []
    marked: bool | None = None
    address_all = False
    for line in text.splitlines():
        words = line.split()
        if line.startswith(_MARK):
            marked = line.removeprefix(_MARK).strip() == _MARK_ANY
        elif words == ["initiator-address", "ALL"]:
            address_all = True
        elif len(words) == 2 and words[0] == "backing-store":
            device_path = words[1]
        elif len(words) == 3 and words[0] == "incominguser":
            chap = base.Chap(words[1], words[2])
        elif len(words) == 2 and words[0] == "initiator-name" and base.is_iscsi_name(
                words[1]):
            initiators.append(words[1])
    if chap is None:
        return None
    # An unmarked file predates per-export ACLs: it admitted any initiator exactly when
    # it named ALL, and keeps doing so until that connection is terminated.
    return TargetFile(device_path, chap, initiators,
                      address_all if marked is None else marked)
