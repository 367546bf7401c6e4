"""The quick-start demonstration: one volume's life through the public HTTP API.

It speaks only HTTP (urllib), exactly as any client would, so what it prints is what the
API really answered. The CHAP secret in the connection info is masked on screen.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

PROJECT = "demo"
TOKEN = "demo-user:demo"  # noqa: S105 - noauth token: user:project, no secret
SERVER = "demo-server-1"
INITIATOR = "iqn.2026-11.org.volmgr:demo-initiator"


class DemoFailed(Exception):
    """A step of the demonstration did not reach the expected state in time."""


def _request(base: str, method: str, path: str,
             body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - base is our own http:// URL
        f"{base}/v1.1/{PROJECT}{path}", data=data, method=method,
        headers={"X-Auth-Token": TOKEN, "Content-Type": "application/json",
                 "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def _wait_status(base: str, volume_id: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        code, body = _request(base, "GET", f"/os-volumes/{volume_id}")
        if wanted == "gone" and code == 404:
            return
        if code == 200:
            status = body["volume"]["status"]
            if status == wanted:
                return
            if status.startswith("error"):
                raise DemoFailed(f"volume went to {status}")
        time.sleep(0.2)
    raise DemoFailed(f"volume still {status} after {timeout:.0f} s, wanted {wanted}")


def _masked(connection_info: dict[str, Any]) -> dict[str, Any]:
    data = dict(connection_info.get("data", {}))
    if data.get("auth_password"):
        data["auth_password"] = "********"  # noqa: S105 - a mask, not a secret
    return {**connection_info, "data": data}


def run(base: str, out: TextIO) -> int:
    """Run the demonstration against ``base``; 0 when every step worked."""
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    try:
        code, body = _request(base, "GET", "/extensions")
        aliases = [e["alias"] for e in body["extensions"]]
        say(f"GET /extensions -> {code}: {aliases}")
        code, body = _request(base, "POST", "/os-volumes", {"volume": {
            "size": 1, "display_name": "demo-volume",
            "display_description": "made by volmgr-all --demo"}})
        if code != 200:
            raise DemoFailed(f"create answered {code}: {body}")
        volume_id = body["volume"]["id"]
        say(f"POST /os-volumes -> {code}: volume {volume_id} is {body['volume']['status']}")
        _wait_status(base, volume_id, "available")
        say("   ... the manager created it: available")
        code, body = _request(base, "POST", f"/servers/{SERVER}/os-volume_attachments", {
            "volumeAttachment": {"volumeId": volume_id, "device": "/dev/vdb",
                                 "connector": {"initiator": INITIATOR, "host": "localhost"}}})
        if code != 202:
            raise DemoFailed(f"attach answered {code}: {body}")
        say(f"POST /servers/{SERVER}/os-volume_attachments -> {code}")
        _wait_status(base, volume_id, "in-use")
        code, body = _request(base, "GET", f"/servers/{SERVER}/os-volume_attachments/{volume_id}")
        info = body["volumeAttachment"].get("connection_info", {})
        say("   ... attached: in-use; connection info:")
        say("   " + json.dumps(_masked(info), indent=2, sort_keys=True).replace("\n", "\n   "))
        code, body = _request(base, "DELETE",
                              f"/servers/{SERVER}/os-volume_attachments/{volume_id}")
        say(f"DELETE /servers/{SERVER}/os-volume_attachments/{volume_id} -> {code}")
        _wait_status(base, volume_id, "available")
        say("   ... detached: available")
        code, body = _request(base, "DELETE", f"/os-volumes/{volume_id}")
        say(f"DELETE /os-volumes/{volume_id} -> {code}")
        _wait_status(base, volume_id, "gone")
        say("   ... deleted: the volume is gone")
    except (DemoFailed, KeyError, TypeError, OSError) as error:
        say(f"demo failed: {error}")
        return 1
    say("demo complete")
    return 0
