"""A loopback, configurable fake JSON REST API (plain HTTP on 127.0.0.1, a free port).

``FakeRestApi(auth=...)`` starts a threaded ``http.server``; ``fake.route(path, records,
style=..., page_size=...)`` serves ``records`` at ``path`` with one pagination style:

- ``cursor``: ``?cursor=<opaque>`` (and ``limit``); the next cursor sits at ``cursor_path``
  (default ``meta.next_cursor``) and is null on the last page;
- ``offset``: ``?offset=&limit=``;
- ``page``: ``?page=&per_page=`` (first page 1);
- ``link``: ``?page=`` with an RFC 5988 ``Link: <http://127.0.0.1:port/…?page=N>; rel="next"``
  header (``link_host`` sends the link to another server instead);
- ``next_url``: the next page's absolute URL in the body at ``next_path`` (default ``next``);
- ``none``: every record in one response.

Records are wrapped at ``record_path`` (default ``data.items``; ``""`` = the body is the list).
The page size comes from the request's limit parameter when given, else ``page_size``.

Auth (``auth=``): ``{"type": "bearer", "token": ...}``, ``{"type": "basic", "username": ...,
"password": ...}``, ``{"type": "header", "header": "X-Api-Key", "key": ...}`` or None (open);
anything else is a 401 JSON error.

Fault knobs per route: ``rate_limit_once=True`` (the first request is a 429 with
``Retry-After: 1``), ``malformed_page=N`` (page N's body is truncated JSON),
``wrong_shape_page=N`` (page N has no list at record_path), ``repeat_cursor=True`` (the
cursor never changes: a buggy API that would page forever), ``ignore_paging=True`` (every
request gets the first page: a server that ignores the paging parameters).

Every request is recorded in ``fake.requests`` (method, path, query dict, status).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Route:
    records: list[Any]
    style: str = "cursor"
    page_size: int = 2
    record_path: str = "data.items"
    cursor_path: str = "meta.next_cursor"
    next_path: str = "next"
    link_host: str | None = None
    rate_limit_once: bool = False
    malformed_page: int | None = None
    wrong_shape_page: int | None = None
    repeat_cursor: bool = False
    ignore_paging: bool = False
    hits: int = 0
    rate_limited: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0


class FakeRestApi:
    def __init__(self, *, auth: dict[str, str] | None = None) -> None:
        self.auth = auth
        self.routes: dict[str, Route] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def route(self, path: str, records: list[Any], **kwargs: Any) -> Route:
        r = Route(records=list(records), **kwargs)
        self.routes[path] = r
        return r

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeRestApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving ----------------------------------------------------------------------
    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        a = self.auth
        if not a:
            return True
        if a["type"] == "bearer":
            return h.headers.get("Authorization") == f"Bearer {a['token']}"
        if a["type"] == "basic":
            pair = base64.b64encode(f"{a['username']}:{a['password']}".encode()).decode()
            return h.headers.get("Authorization") == f"Basic {pair}"
        if a["type"] == "header":
            return h.headers.get(a.get("header", "X-Api-Key")) == a["key"]
        return False

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        rec = Recorded("GET", url.path, query)
        with self._lock:
            self.requests.append(rec)
        if not self._authorized(h):
            return self._send(h, rec, 401, {"message": "unauthorized"})
        route = self.routes.get(url.path)
        if route is None:
            return self._send(h, rec, 404, {"message": f"no route {url.path}"})
        with self._lock:
            route.hits += 1
            if route.rate_limit_once and not route.rate_limited:
                route.rate_limited = True
                return self._send(h, rec, 429, {"message": "slow down"}, {"Retry-After": "1"})
        self._serve_page(h, rec, route, url.path, query)

    def _serve_page(
        self, h: BaseHTTPRequestHandler, rec: Recorded, route: Route, path: str, q: dict[str, str]
    ) -> None:
        n = len(route.records)
        size = int(q.get("limit") or q.get("per_page") or route.page_size)
        style = route.style
        if route.ignore_paging:
            q = {}
        if style == "cursor":
            start = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
            if route.repeat_cursor and q.get("cursor"):
                start = size
        elif style == "offset":
            start = int(q.get("offset", 0))
        elif style in ("page", "link", "next_url"):
            start = (int(q.get("page", 1)) - 1) * size
        else:
            start, size = 0, max(n, 1)
        page_no = start // size + 1
        items = route.records[start:start + size]
        more = start + size < n
        body: Any = {}
        headers: dict[str, str] = {}
        if style == "cursor":
            if route.repeat_cursor:
                nxt: Any = base64.urlsafe_b64encode(str(size).encode()).decode()
            else:
                nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
            _put(body, route.cursor_path, nxt)
        elif style in ("link", "next_url") and more:
            host = route.link_host or self.base_url
            nq = {k: v for k, v in q.items() if k != "page"}
            nq["page"] = str(page_no + 1)
            link = f"{host}{path}?{urlencode(nq)}"
            if style == "link":
                headers["Link"] = f'<{link}>; rel="next", <{host}{path}?page=1>; rel="first"'
            else:
                _put(body, route.next_path, link)
        elif style == "next_url":
            _put(body, route.next_path, None)
        if route.wrong_shape_page == page_no:
            body = {"data": {"error": "temporarily unavailable"}}
        elif route.record_path:
            _put(body, route.record_path, items)
        else:
            body = items
        if route.malformed_page == page_no:
            raw = json.dumps(body).encode()[:-7]
            return self._send_raw(h, rec, 200, raw, headers)
        self._send(h, rec, 200, body, headers)

    def _send(
        self, h: BaseHTTPRequestHandler, rec: Recorded, status: int, body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_raw(h, rec, status, json.dumps(body).encode(), headers)

    def _send_raw(
        self, h: BaseHTTPRequestHandler, rec: Recorded, status: int, raw: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        rec.status = status
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)


def _put(body: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = body
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
