"""What the loopback HTTP fakes share: a threaded server on 127.0.0.1, start/stop and ``with``
support, and queued faults (``fail(kind, times, path_contains)``) their handlers take."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackFake:
    """Base of a fake platform: subclasses implement ``_handle(handler)`` for GET requests and
    call :meth:`_serve` at the end of their ``__init__``."""

    def _serve(self) -> None:
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, kind: str, times: int = 1, path_contains: str = "") -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with fault
        ``kind`` (what a kind means is the subclass's)."""
        with self._lock:
            self._faults.append({"kind": kind, "times": times, "path": path_contains})

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            for f in self._faults:
                if f["times"] > 0 and f["path"] in path:
                    f["times"] -= 1
                    return f["kind"]
        return None
