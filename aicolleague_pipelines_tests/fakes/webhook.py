"""A loopback webhook receiver recording the JSON posted to it.

``FakeWebhook()`` starts a threaded HTTP server on 127.0.0.1 (a free port). Every ``POST`` is
recorded in ``fake.requests`` (path, headers, parsed JSON body) and answered ``200 ok`` unless
a fault is queued:

- ``fail(status, times=1, retry_after=None)``: the next ``times`` posts get ``status``
  (e.g. 500 or 429, with ``Retry-After`` when given) and are recorded in ``fake.rejected``;
- ``url(path)``: the URL of a path on this server; a token-like path (``/hooks/T0/B0/SECRET``)
  stands for a Slack-style secret webhook URL.

Use it as a context manager (``with FakeWebhook() as hook: ...``) or call ``close()``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeWebhook:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self._faults: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw.decode("utf-8")) if raw else None
                except ValueError:
                    body = {"_invalid_json": raw.decode("utf-8", "replace")}
                rec = {"path": self.path, "headers": dict(self.headers.items()), "json": body}
                with fake._lock:
                    fault = fake._faults.pop(0) if fake._faults else None
                    (fake.rejected if fault else fake.requests).append(rec)
                status, retry_after = fault if fault else (200, None)
                out = b"ok" if status < 300 else b"error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path if path.startswith('/') else '/' + path}"

    def fail(self, status: int, times: int = 1, retry_after: str | float | None = None) -> None:
        with self._lock:
            ra = None if retry_after is None else str(retry_after)
            self._faults.extend([(status, ra)] * times)

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [r["json"] for r in self.requests if path is None or r["path"] == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeWebhook":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/hooks/dead/SECRET-dead-token-0000"
