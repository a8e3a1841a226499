"""A loopback fake Confluence Cloud (REST API v1 content endpoints) speaking the wire format.

``FakeConfluence(email, token)`` starts a threaded ``http.server`` on a free 127.0.0.1 port;
``fake.base_url`` is the site URL (the client adds ``/wiki``).

- Basic auth ``email:token``, otherwise 401 ``{statusCode: 401, message: "Unauthorized"}``.
- ``GET /wiki/rest/api/content?title=&spaceKey=&type=page&expand=version,body.storage`` →
  ``{results: [...], start, limit, size, _links}`` (exact title match within the space;
  ``body.storage`` only when expanded).
- ``POST /wiki/rest/api/content`` → the new page; 400 when a page with that title exists in the
  space (Confluence's "A page with this title already exists"), when the ancestor is unknown or
  the body is not ``representation: storage``.
- ``PUT /wiki/rest/api/content/{id}`` → the page; ``version.number`` must be current + 1
  (otherwise 409, like Confluence), 404 for an unknown id.
- ``fake.fail(kind, times, method=None)``: the next ``times`` matching requests answer
  ``"429"`` (``Retry-After: 0``) or ``"500"``.

Requests are recorded in ``fake.requests`` as ``(method, path, query dict, json body or None,
authorization header)``.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API = "/wiki/rest/api/content"


@dataclass
class Page:
    id: str
    title: str
    space: str
    ancestors: list[str]
    body: str
    version: int = 1
    history: list[str] = field(default_factory=list)

    def to_json(self, expand: set[str], base: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "type": "page",
            "status": "current",
            "title": self.title,
            "space": {"key": self.space},
            "ancestors": [{"id": a} for a in self.ancestors],
            "_links": {"webui": f"/spaces/{self.space}/pages/{self.id}", "self": f"{base}{API}/{self.id}"},
        }
        if "version" in expand:
            d["version"] = {"number": self.version, "by": {"displayName": "Fake"}}
        if "body.storage" in expand:
            d["body"] = {"storage": {"value": self.body, "representation": "storage"}}
        return d


class FakeConfluence:
    def __init__(self, email: str = "bot@example.com", token: str = "FAKE-CONFLUENCE-TOKEN-9f2c") -> None:
        self.email = email
        self.token = token
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any, str]] = []
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next_id = 10000
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                fake._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeConfluence":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, kind: str, times: int = 1, method: str | None = None) -> None:
        self._faults.append({"kind": kind, "times": times, "method": method})

    def add_page(self, title: str, space: str, body: str = "<p>hand-made</p>", ancestors: list[str] | None = None) -> Page:
        with self._lock:
            page = Page(self._new_id(), title, space, list(ancestors or []), body)
            self.pages[page.id] = page
            return page

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _q, _b, _a in self.requests if m in ("POST", "PUT")]

    def by_title(self, space: str, title: str) -> list[Page]:
        return [p for p in self.pages.values() if p.space == space and p.title == title]

    # --- serving ---------------------------------------------------------------------------
    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        auth = h.headers.get("Authorization") or ""
        with self._lock:
            self.requests.append((method, parts.path, query, body, auth))
            for fault in self._faults:
                if fault["times"] > 0 and fault["method"] in (None, method):
                    fault["times"] -= 1
                    if fault["kind"] == "429":
                        return self._send(h, 429, {"statusCode": 429, "message": "Rate limited"},
                                          {"Retry-After": "0"})
                    return self._send(h, 500, {"statusCode": 500, "message": "Internal Server Error"})
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if auth != expected:
            return self._send(h, 401, {"statusCode": 401, "message": "Unauthorized"})
        with self._lock:
            if method == "GET" and parts.path == API:
                return self._get(h, query)
            if method == "POST" and parts.path == API:
                return self._post(h, body)
            if method == "PUT" and parts.path.startswith(API + "/"):
                return self._put(h, parts.path[len(API) + 1:], body)
        return self._send(h, 404, {"statusCode": 404, "message": "No route"})

    def _get(self, h: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        expand = set((q.get("expand") or "").split(","))
        hits = [p for p in sorted(self.pages.values(), key=lambda p: int(p.id))
                if (not q.get("title") or p.title == q["title"])
                and (not q.get("spaceKey") or p.space == q["spaceKey"])]
        results = [p.to_json(expand, self.base_url) for p in hits]
        self._send(h, 200, {"results": results, "start": 0, "limit": 25, "size": len(results),
                            "_links": {"base": f"{self.base_url}/wiki", "context": "/wiki"}})

    def _validate(self, body: Any) -> tuple[str, str, str, list[str]] | str:
        if not isinstance(body, dict) or body.get("type") != "page":
            return "type must be page"
        title = body.get("title")
        space = (body.get("space") or {}).get("key")
        storage = ((body.get("body") or {}).get("storage") or {})
        if not title or not space:
            return "title and space.key are required"
        if storage.get("representation") != "storage" or not isinstance(storage.get("value"), str):
            return "body.storage with representation storage is required"
        ancestors = [str(a.get("id")) for a in body.get("ancestors") or []]
        for a in ancestors:
            if a not in self.pages:
                return f"ancestor {a} not found"
        return title, space, storage["value"], ancestors

    def _post(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        v = self._validate(body)
        if isinstance(v, str):
            return self._send(h, 400, {"statusCode": 400, "message": v})
        title, space, value, ancestors = v
        if self.by_title(space, title):
            return self._send(h, 400, {"statusCode": 400, "message":
                                       "A page with this title already exists: A page already exists with "
                                       "the same TITLE in this space"})
        page = Page(self._new_id(), title, space, ancestors, value)
        self.pages[page.id] = page
        self._send(h, 200, page.to_json({"version", "body.storage"}, self.base_url))

    def _put(self, h: BaseHTTPRequestHandler, page_id: str, body: Any) -> None:
        page = self.pages.get(page_id)
        if page is None:
            return self._send(h, 404, {"statusCode": 404, "message": f"No content with id {page_id}"})
        v = self._validate(body)
        if isinstance(v, str):
            return self._send(h, 400, {"statusCode": 400, "message": v})
        title, space, value, ancestors = v
        number = ((body.get("version") or {}).get("number"))
        if number != page.version + 1:
            return self._send(h, 409, {"statusCode": 409, "message":
                                       f"Version must be incremented on update. Current version is: {page.version}"})
        if any(p.id != page_id for p in self.by_title(space, title)):
            return self._send(h, 400, {"statusCode": 400, "message": "A page with this title already exists"})
        page.history.append(page.body)
        page.title, page.space, page.body, page.version = title, space, value, number
        if ancestors:
            page.ancestors = ancestors
        self._send(h, 200, page.to_json({"version", "body.storage"}, self.base_url))

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
