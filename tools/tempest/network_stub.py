"""A stand-in for the one Neutron call Tempest makes in this deployment.

With ``[service_available] neutron = true`` (needed so the volume classes that ask for
a default network run at all) and ``create_isolated_networks = false``, Tempest creates
no network, but when it deletes each dynamic project it first lists the project's
security groups to delete the default one. There is no Neutron here, so this answers
that list with none; every other request gets 404, which Tempest reports as such.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"NeutronError": {"type": "HTTPNotFound",
                                          "message": "no Neutron in this test cloud"}})

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/").endswith("/security-groups"):
            self._send(200, {"security_groups": []})
        else:
            self._not_found()

    do_DELETE = do_POST = do_PUT = _not_found

    def log_message(self, format: str, *args: object) -> None:
        pass


class NetworkStub:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> NetworkStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for a serve_forever that never began
            self.server.shutdown()
        self.server.server_close()
