"""XML documents of the Compute 1.1 "Volumes" extension face (the seed): rendering of
responses and faults, and decoding of request bodies already parsed by defusedxml.

Request XML is only ever parsed by ``wsgi.parse_body`` (defusedxml, DTDs forbidden); this
module builds documents with ElementTree and walks trees it is handed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds documents; defusedxml parses
from collections.abc import Mapping
from typing import Any

from volmgr import exception
from volmgr.api import input_gate
from volmgr.api.wsgi import local_name

COMPUTE_NS = "http://docs.openstack.org/compute/api/v1.1"
ATOM_NS = "http://www.w3.org/2005/Atom"


def _is_fault(value: Any) -> bool:
    """A fault body's value, whatever its name (the fault table is the one list of
    names, and a fault added there must render here too): ``{"code", "message"}``."""
    return isinstance(value, Mapping) and {"code", "message"} <= set(value) <= {
        "code", "message", "details"}

_VOLUME_ATTRS = ("id", "status", "size", "availabilityZone", "createdAt", "displayName",
                 "displayDescription", "volumeType", "snapshotId", "statusReason")
_ATTACHMENT_ATTRS = ("id", "volumeId", "serverId", "device")


def _set(element: ET.Element, name: str, value: Any) -> None:
    # An absent value is an absent attribute, as the seed's templates rendered None.
    # Stored text may predate the input gate: what XML cannot carry becomes U+FFFD.
    if value is not None:
        element.set(input_gate.xml_name(name) if ":" not in name else name,
                    input_gate.xml_text(str(value)))


def _text(value: Any) -> str | None:
    return None if value is None else input_gate.xml_text(str(value))


def _extension(parent: ET.Element | None, ext: Mapping[str, Any],
               root: bool = False) -> ET.Element:
    element = ET.Element("extension") if parent is None else ET.SubElement(parent,
                                                                           "extension")
    if root:
        element.set("xmlns", COMPUTE_NS)
        element.set("xmlns:atom", ATOM_NS)
    for name in ("name", "namespace", "alias", "updated"):
        _set(element, name, ext.get(name))
    ET.SubElement(element, "description").text = _text(ext.get("description"))
    for link in ext.get("links") or ():
        atom = ET.SubElement(element, "atom:link")
        for key, value in link.items():
            _set(atom, key, value)
    return element


def _attachment(element: ET.Element, attachment: Mapping[str, Any]) -> ET.Element:
    for name in _ATTACHMENT_ATTRS:
        _set(element, name, attachment.get(name))
    if "connection_info" in attachment:
        _nested(element, "connection_info", attachment["connection_info"])
    return element


def _nested(parent: ET.Element, tag: str, value: Any) -> None:
    """A dict as an element: scalars as attributes, dicts as child elements."""
    child = ET.SubElement(parent, input_gate.xml_name(tag))
    if not isinstance(value, Mapping):
        child.text = _text(value)
        return
    for key, item in value.items():
        if isinstance(item, Mapping):
            _nested(child, str(key), item)
        else:
            _set(child, str(key), item)


def _volume(element: ET.Element, volume: Mapping[str, Any]) -> ET.Element:
    for name in _VOLUME_ATTRS:
        _set(element, name, volume.get(name))
    attachments = ET.SubElement(element, "attachments")
    for attachment in volume.get("attachments") or ():
        _attachment(ET.SubElement(attachments, "attachment"), attachment)
    metadata = ET.SubElement(element, "metadata")
    for key, value in (volume.get("metadata") or {}).items():
        meta = ET.SubElement(metadata, "meta", key=input_gate.xml_text(str(key)))
        meta.text = _text(value)
    return element


def serialize(body: Mapping[str, Any]) -> ET.Element:
    """The XML element for a seed-face response body (one top-level key)."""
    ((key, value),) = body.items()
    if key == "extensions":
        root = ET.Element("extensions", {"xmlns": COMPUTE_NS, "xmlns:atom": ATOM_NS})
        for ext in value:
            _extension(root, ext)
        return root
    if key == "extension":
        return _extension(None, value, root=True)
    if key == "volumes":
        root = ET.Element("volumes")
        for volume in value:
            _volume(ET.SubElement(root, "volume"), volume)
        return root
    if key == "volume":
        return _volume(ET.Element("volume"), value)
    if key == "volumeAttachments":
        root = ET.Element("volumeAttachments")
        for attachment in value:
            _attachment(ET.SubElement(root, "volumeAttachment"), attachment)
        return root
    if key == "volumeAttachment":
        return _attachment(ET.Element("volumeAttachment"), value)
    if _is_fault(value):
        root = ET.Element(key, {"code": str(value.get("code")), "xmlns": COMPUTE_NS})
        ET.SubElement(root, "message").text = _text(value.get("message"))
        return root
    raise ValueError(f"no XML form for {key!r}")  # pragma: no cover - a programming error


_MAX_DEPTH = 4


def _fields(element: ET.Element, depth: int = 0) -> dict[str, Any]:
    """Attributes and simple child elements of ``element`` as a dict of strings."""
    if depth > _MAX_DEPTH:
        raise exception.InvalidInput(reason="XML body is nested too deeply")
    values: dict[str, Any] = {local_name(k): v for k, v in element.attrib.items()
                              if not k.startswith("{http://www.w3.org/2000/xmlns")}
    for child in element:
        name = local_name(child.tag)
        if name == "metadata":
            values[name] = {meta.get("key", ""): meta.text or "" for meta in child}
        elif len(child) or child.attrib:
            values[name] = _fields(child, depth + 1)
        else:
            values[name] = child.text or ""
    return values


def deserialize(root: ET.Element) -> dict[str, Any]:
    """A request document as the JSON body it stands for: ``<volume size="1" .../>``
    becomes ``{"volume": {"size": "1", ...}}``."""
    return {local_name(root.tag): _fields(root)}
