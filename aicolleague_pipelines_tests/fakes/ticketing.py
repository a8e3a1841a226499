"""A loopback fake of Jira Cloud REST v3 and the ServiceNow Table API (one threaded server).

``FakeTicketing()`` listens on 127.0.0.1 (a free port) and serves:

Jira Cloud (Basic auth ``jira_email:jira_token``)
    - ``POST /rest/api/3/issue``: validates ``fields`` (project key known, summary, issuetype,
      labels without spaces, description an ADF ``doc``) → ``201 {id, key, self}``; a bad field →
      ``400 {errorMessages, errors}`` like Jira;
    - ``GET /rest/api/3/search/jql?jql=labels = "x"`` → ``{issues: [...], isLast: true}``
      (404 when ``jira_new_search = False``, as on a site without the new endpoint);
    - ``GET /rest/api/3/search?jql=…`` (the older endpoint) → ``{startAt, maxResults, total, issues}``.
ServiceNow (Basic auth ``snow_user:snow_password``)
    - ``POST /api/now/table/incident`` → ``201 {result: {sys_id, number, …}}``;
    - ``GET /api/now/table/incident?sysparm_query=field=value^field2=value2&sysparm_limit=n``
      → ``{result: [...]}`` (``sysparm_fields`` honoured).

Bad or missing credentials → 401; the 401 body *echoes the credentials it got* (decoded), so
tests can prove that the client never passes an error body of a failed login on.

Knobs: ``fail(status, times=1, retry_after=None, method=None, path=None, processed=False)``
queues faults for the next matching requests (``processed``: do the work, then answer the fault) (``throttle_once()`` = one 429 with ``Retry-After: 0``,
``error_once()`` = one 500); ``add_jira_issue(labels)`` / ``add_incident(correlation_id)``
seed existing tickets. Every request is recorded in ``requests`` (method, path, query dict,
headers, json, status answered).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JIRA_PREFIX = "/rest/api/3/"
SNOW_TABLE = "/api/now/table/incident"


class FakeTicketing:
    def __init__(
        self,
        *,
        jira_email: str = "bot@example.test",
        jira_token: str = "jira-token",
        snow_user: str = "svc_aic",
        snow_password: str = "snow-password",
        jira_projects: tuple[str, ...] = ("AIC",),
        jira_issue_types: tuple[str, ...] = ("Bug", "Task"),
    ) -> None:
        self.jira_creds = (jira_email, jira_token)
        self.snow_creds = (snow_user, snow_password)
        self.jira_projects = set(jira_projects)
        self.jira_issue_types = set(jira_issue_types)
        #: False: ``/rest/api/3/search/jql`` answers 404 (forces the client's fallback).
        self.jira_new_search = True
        self.jira_issues: list[dict[str, Any]] = []
        self.incidents: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seq = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # --- knobs and seeds ---------------------------------------------------------------------

    def fail(self, status: int, times: int = 1, retry_after: str | float | None = None,
             method: str | None = None, path: str | None = None, *, processed: bool = False) -> None:
        """The next ``times`` requests matching ``method``/``path`` prefix get ``status``.

        ``processed=True``: the request is carried out first (an issue is created …) and only
        the answer is replaced — a gateway timeout after the work was done.
        """
        with self._lock:
            for _ in range(times):
                self._faults.append({"status": status, "retry_after": None if retry_after is None else str(retry_after),
                                     "method": method, "path": path, "processed": processed})

    def throttle_once(self, retry_after: str | float = 0, method: str | None = None, path: str | None = None) -> None:
        self.fail(429, 1, retry_after, method, path)

    def error_once(self, status: int = 500, method: str | None = None, path: str | None = None) -> None:
        self.fail(status, 1, None, method, path)

    def add_jira_issue(self, labels: list[str], summary: str = "existing", status: str = "To Do",
                       project: str = "AIC") -> str:
        with self._lock:
            return self._new_issue({"project": {"key": project}, "summary": summary, "labels": list(labels),
                                    "issuetype": {"name": "Bug"}}, status)["key"]

    def add_incident(self, correlation_id: str, short_description: str = "existing") -> str:
        with self._lock:
            return self._new_incident({"correlation_id": correlation_id, "short_description": short_description})["number"]

    # --- views -----------------------------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method) and (path is None or r["path"] == path)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeTicketing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _new_issue(self, fields: dict[str, Any], status: str = "To Do") -> dict[str, Any]:
        self._seq += 1
        project = fields["project"]["key"]
        issue = {"id": str(10000 + self._seq), "key": f"{project}-{self._seq}",
                 "self": f"{self.base_url}/rest/api/3/issue/{10000 + self._seq}",
                 "fields": {**fields, "status": {"name": status}}}
        self.jira_issues.append(issue)
        return issue

    def _new_incident(self, body: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        rec = {**{k: str(v) for k, v in body.items()}, "sys_id": f"{self._seq:032x}",
               "number": f"INC{10000 + self._seq:07d}", "state": "1"}
        self.incidents.append(rec)
        return rec

    def _take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for i, f in enumerate(self._faults):
            if (f["method"] in (None, method)) and (f["path"] is None or path.startswith(f["path"])):
                return self._faults.pop(i)
        return None

    @staticmethod
    def _creds(headers: Any) -> tuple[str, str] | None:
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
        except Exception:
            return None
        return user, secret

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = {"_invalid_json": raw.decode("utf-8", "replace")}
        rec = {"method": method, "path": path, "query": query, "headers": dict(h.headers.items()), "json": body}
        with self._lock:
            self.requests.append(rec)
            fault = self._take_fault(method, path)
            if fault:
                if fault["processed"]:
                    self._route(method, path, query, body, h.headers)
                status, payload, extra = fault["status"], {"errorMessages": ["injected fault"]}, {}
                if fault["retry_after"] is not None:
                    extra["Retry-After"] = fault["retry_after"]
            else:
                status, payload, extra = self._route(method, path, query, body, h.headers)
            rec["status"] = status
        out = json.dumps(payload).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(out)))
        for k, v in extra.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(out)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: Any) -> tuple[int, Any, dict[str, str]]:
        if path.startswith(JIRA_PREFIX):
            want = self.jira_creds
        elif path.startswith("/api/now/"):
            want = self.snow_creds
        else:
            return 404, {"error": "no such endpoint"}, {}
        got = self._creds(headers)
        if got != want:
            # Like a careless proxy: echo what was sent (a client must never pass this on).
            echo = f"{got[0]}:{got[1]}" if got else "none"
            if path.startswith(JIRA_PREFIX):
                return 401, {"errorMessages": [f"Client must be authenticated (got {echo})"]}, \
                    {"WWW-Authenticate": 'Basic realm="fake-jira"'}
            return 401, {"error": {"message": "User Not Authenticated", "detail": f"credentials {echo} rejected"},
                         "status": "failure"}, {}
        if path.startswith(JIRA_PREFIX):
            return self._jira(method, path, query, body)
        return self._snow(method, path, query, body)

    # Jira -------------------------------------------------------------------------------------

    def _jira(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/rest/api/3/issue":
            return self._jira_create(body)
        if method == "GET" and path in ("/rest/api/3/search/jql", "/rest/api/3/search"):
            if path.endswith("/jql") and not self.jira_new_search:
                return 404, {"errorMessages": ["Not found"]}, {}
            m = re.fullmatch(r'\s*labels\s*=\s*"([^"]+)"\s*', query.get("jql", ""))
            if not m:
                return 400, {"errorMessages": ["fake supports only labels = \"x\""]}, {}
            label = m.group(1)
            limit = int(query.get("maxResults") or 50)
            wanted = [x for x in (query.get("fields") or "").split(",") if x]
            hits = [i for i in self.jira_issues if label in i["fields"].get("labels", [])]
            issues = [{"id": i["id"], "key": i["key"], "self": i["self"],
                       "fields": {k: v for k, v in i["fields"].items() if not wanted or k in wanted}}
                      for i in hits[:limit]]
            if path.endswith("/jql"):
                return 200, {"issues": issues, "isLast": True}, {}
            return 200, {"startAt": 0, "maxResults": limit, "total": len(hits), "issues": issues}, {}
        return 404, {"errorMessages": ["Not found"]}, {}

    def _jira_create(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        fields = (body or {}).get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["fields is required"], "errors": {}}, {}
        errors: dict[str, str] = {}
        if (fields.get("project") or {}).get("key") not in self.jira_projects:
            errors["project"] = "valid project is required"
        if not str(fields.get("summary") or "").strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(fields["summary"]) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        if (fields.get("issuetype") or {}).get("name") not in self.jira_issue_types:
            errors["issuetype"] = "valid issue type is required"
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(not isinstance(x, str) or " " in x for x in labels):
            errors["labels"] = "label cannot contain spaces"
        desc = fields.get("description")
        if desc is not None and not (isinstance(desc, dict) and desc.get("type") == "doc"
                                     and desc.get("version") == 1 and isinstance(desc.get("content"), list)):
            errors["description"] = "Operation value must be an Atlassian Document."
        if errors:
            return 400, {"errorMessages": [], "errors": errors}, {}
        issue = self._new_issue(fields)
        return 201, {"id": issue["id"], "key": issue["key"], "self": issue["self"]}, {}

    # ServiceNow -------------------------------------------------------------------------------

    def _snow(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if path != SNOW_TABLE:
            return 400, {"error": {"message": "Invalid table", "detail": path}, "status": "failure"}, {}
        fields = [x for x in (query.get("sysparm_fields") or "").split(",") if x]

        def view(rec: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in rec.items() if not fields or k in fields}

        if method == "POST":
            if not isinstance(body, dict) or not body.get("short_description"):
                return 400, {"error": {"message": "short_description is required"}, "status": "failure"}, {}
            return 201, {"result": view(self._new_incident(body))}, {}
        conds = []
        for part in filter(None, (query.get("sysparm_query") or "").split("^")):
            k, sep, v = part.partition("=")
            if not sep:
                return 400, {"error": {"message": f"fake supports only field=value, got {part!r}"}}, {}
            conds.append((k, v))
        rows = [r for r in self.incidents if all(r.get(k) == v for k, v in conds)]
        limit = int(query.get("sysparm_limit") or 10000)
        return 200, {"result": [view(r) for r in rows[:limit]]}, {}
