"""A loopback fake Intercom workspace (REST API 2.x) speaking the real wire format over HTTP.

``FakeIntercom(workspace)`` starts a threaded ``http.server`` on a free 127.0.0.1 port.

What it speaks (REFERENCE.md §4):

- ``Authorization: Bearer <token>``, otherwise 401 ``{type: "error.list", request_id,
  errors: [{code: "unauthorized", message: "Access Token Invalid"}]}``; the
  ``Intercom-Version`` header is recorded per request (unsupported versions → 400
  ``intercom_version_invalid``).
- ``GET /data_attributes?model=contact|company|conversation``.
- ``GET /contacts`` and ``GET /conversations``: cursor paging, ``per_page`` ≤ 150 (else 400),
  ``pages: {type, page, per_page, total_pages, next: {page, starting_after}}`` (``next``
  absent on the last page); conversations listed under ``conversations``.
- ``GET /companies?page=N&per_page=M`` (M ≤ 60): page numbers reach only the first
  ``company_page_limit`` companies (10,000 on Intercom; small here) — a page beyond is a 400;
  ``GET /companies/scroll`` then ``?scroll_param=`` pages ``scroll_size`` companies at a time
  until ``data`` is empty; an unknown ``scroll_param`` is a 404.
- ``GET /tags``.
- Every response carries ``X-RateLimit-Limit/Remaining/Reset``; faults
  (``fake.fail(kind, times, path_contains)``): ``"429"`` (with ``X-RateLimit-Reset`` = now),
  ``"500"``, ``"truncate"`` (a 200 whose JSON is cut in half).

Requests are recorded in ``fake.requests`` and 200 bodies in ``fake.responses`` (keyed like
:func:`recorded_key`, to write exports).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aicolleague_pipelines.lib.platforms.http import recorded_key
from aicolleague_pipelines_tests.fakes.chargebee import account_id
from aicolleague_pipelines_tests.fakes.loopback import LoopbackFake

FAKE_INTERCOM_TOKEN = "dG9rOkZBS0VTRUNSRVQtaWMtdG9rZW4tNGQ1ZQ=="
SUPPORTED_VERSIONS = {"2.7", "2.8", "2.9", "2.10", "2.11", "Unstable"}
WEEK = 7 * 86400
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC (a Monday, ISO week 2024-W01)


@dataclass
class Workspace:
    attributes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)


def _attr(model: str, name: str, data_type: str, custom: bool, label: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "data_attribute", "name": name, "full_name": f"custom_attributes.{name}" if custom else name,
        "label": label, "description": "", "data_type": data_type, "api_writable": True, "ui_writable": custom,
        "messenger_writable": False, "custom": custom, "archived": False, "model": model, **extra,
    }


def build_workspace(
    n_contacts: int = 30,
    n_companies: int = 12,
    n_conversations: int = 20,
    *,
    person: Any = None,
    company_name: Any = None,
    link_value: Any = None,
) -> Workspace:
    """A deterministic workspace. ``person(i)`` → personal fields of contact ``i`` (name, email,
    phone, city, note, body); ``link_value(i)`` → company ``i``'s ``salesforce_id`` (None: absent)."""
    person = person or (lambda i: {"name": f"Test Person {i}", "email": f"test.person{i}@example.com",
                                   "phone": f"+1 555 020 {i:04d}", "city": "Springfield",
                                   "note": f"Test note {i}", "body": f"<p>Hello, this is test message {i}.</p>"})
    company_name = company_name or (lambda i: f"Example Company {i}")
    if link_value is None:
        def link_value(i: int) -> Any:
            if i % 6 == 5:
                return None
            if i % 6 == 2:
                return f"acct-{i}"  # not a Salesforce id
            return account_id(i)
    ws = Workspace()
    ws.attributes = {
        "contact": [
            _attr("contact", "name", "string", False, "Name"),
            _attr("contact", "email", "string", False, "Email"),
            _attr("contact", "phone", "string", False, "Phone"),
            _attr("contact", "role", "string", False, "Role"),
            _attr("contact", "last_seen_at", "date", False, "Last seen"),
            _attr("contact", "account_note", "string", True, "Account note"),
            _attr("contact", "plan_tier", "string", True, "Plan tier", options=[{"value": "gold"}, {"value": "silver"}]),
        ],
        "company": [
            _attr("company", "name", "string", False, "Company name"),
            _attr("company", "company_id", "string", False, "Company ID"),
            _attr("company", "monthly_spend", "float", False, "Monthly Spend"),
            _attr("company", "salesforce_id", "string", True, "Salesforce Account Id"),
            _attr("company", "churn_risk", "boolean", True, "Churn risk"),
        ],
        "conversation": [
            _attr("conversation", "priority", "string", False, "Priority"),
            _attr("conversation", "issue_type", "string", True, "Issue type"),
        ],
    }
    ws.tags = [{"type": "tag", "id": str(100 + n), "name": name}
               for n, name in enumerate(["billing", "bug", "feature-request", "vip", "unused-tag"])]
    for i in range(1, n_companies + 1):
        custom: dict[str, Any] = {"churn_risk": i % 4 == 0}
        value = link_value(i)
        if value is not None:
            custom["salesforce_id"] = value
        ws.companies.append({
            "type": "company", "id": f"65a{i:09d}c0", "company_id": f"acme-co-{i}", "name": company_name(i),
            "app_id": "fakeapp1", "created_at": T0 - 86400 * i, "updated_at": T0, "remote_created_at": T0 - 86400 * i,
            "monthly_spend": 100 * i, "session_count": i, "user_count": 2, "size": 10 * i,
            "website": f"https://co{i}.example.com", "industry": "Software",
            "plan": {"type": "plan", "id": "1", "name": "Growth"}, "custom_attributes": custom,
            "tags": {"type": "tag.list", "tags": []}, "segments": {"type": "segment.list", "segments": []},
        })
    for i in range(1, n_contacts + 1):
        p = person(i)
        ws.contacts.append({
            "type": "contact", "id": f"6600{i:08d}ab", "workspace_id": "fakeapp1", "external_id": f"ext-{i}",
            "role": "lead" if i % 3 == 0 else "user", "email": p.get("email"), "phone": p.get("phone"),
            "name": p.get("name"), "avatar": None, "owner_id": None, "social_profiles": {"type": "list", "data": []},
            "has_hard_bounced": False, "marked_email_as_spam": False, "unsubscribed_from_emails": False,
            "created_at": T0 - 3600 * i, "updated_at": T0, "signed_up_at": T0 - 3600 * i, "last_seen_at": T0,
            "browser_language": "en", "language_override": None,
            "location": {"type": "location", "country": "United States", "region": "Illinois", "city": p.get("city")},
            "custom_attributes": {"account_note": p.get("note"), "plan_tier": "gold" if i % 2 else "silver"},
            "tags": {"type": "list", "data": [], "url": f"/contacts/6600{i:08d}ab/tags", "total_count": 0, "has_more": False},
            "companies": {"type": "list", "data": [{"type": "company", "id": f"65a{1 + i % max(1, n_companies):09d}c0"}],
                          "url": f"/contacts/6600{i:08d}ab/companies", "total_count": 1, "has_more": False},
        })
    states = ("open", "closed", "closed", "snoozed")
    tag_sets = ([], ["billing"], ["bug"], ["billing", "vip"], ["feature-request"], ["bug", "vip"])
    tag_ids = {t["name"]: t["id"] for t in ws.tags}
    for i in range(1, n_conversations + 1):
        p = person(1 + (i - 1) % max(1, n_contacts))
        state = states[i % len(states)]
        created = T0 + (i % 3) * WEEK + 3600 * i
        ws.conversations.append({
            "type": "conversation", "id": str(9000 + i), "title": None, "created_at": created, "updated_at": created + 600,
            "waiting_since": None, "snoozed_until": created + 86400 if state == "snoozed" else None,
            "open": state != "closed", "state": state, "read": True, "priority": "not_priority",
            "admin_assignee_id": None, "team_assignee_id": None,
            "tags": {"type": "tag.list", "tags": [{"type": "tag", "id": tag_ids[t], "name": t, "applied_at": created,
                                                   "applied_by": {"type": "admin", "id": "1"}}
                                                  for t in tag_sets[i % len(tag_sets)]]},
            "conversation_rating": None,
            "source": {"type": "conversation", "id": f"src{i}", "delivered_as": "customer_initiated",
                       "subject": "", "body": p.get("body"),
                       "author": {"type": "user", "id": f"6600{i:08d}ab", "name": p.get("name"), "email": p.get("email")},
                       "attachments": [], "url": None, "redacted": False},
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": f"6600{i:08d}ab",
                                                               "external_id": f"ext-{i}"}]},
            "teammates": {"type": "admin.list", "admins": []},
            "custom_attributes": {"issue_type": p.get("note")},
            "first_contact_reply": None, "sla_applied": None, "statistics": None,
            "conversation_parts": None, "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
        })
    return ws


class FakeIntercom(LoopbackFake):
    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        token: str = FAKE_INTERCOM_TOKEN,
        company_page_limit: int = 10_000,
        scroll_size: int = 15,
        company_total_count: bool = True,
    ) -> None:
        self.ws = workspace or build_workspace()
        self.token = token
        self.company_page_limit = company_page_limit
        self.scroll_size = scroll_size
        #: False: company pages omit ``total_count`` (the client only learns of the limit late).
        self.company_total_count = company_total_count
        self.requests: list[dict[str, Any]] = []
        self.responses: dict[str, Any] = {}
        self._scrolls: dict[str, int] = {}
        self._serve()

    @property
    def base_url(self) -> str:
        return self.root_url

    # ----------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        auth_ok = h.headers.get("Authorization") == f"Bearer {self.token}"
        record: dict[str, Any] = {"method": "GET", "path": path, "query": query, "auth_ok": auth_ok,
                                  "version": h.headers.get("Intercom-Version")}
        self.requests.append(record)

        def send(status: int, body: Any, *, raw: bytes | None = None, reset: int | None = None) -> None:
            record["status"] = status
            data = raw if raw is not None else json.dumps(body).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.send_header("X-RateLimit-Limit", "1000")
            h.send_header("X-RateLimit-Remaining", "0" if status == 429 else "997")
            h.send_header("X-RateLimit-Reset", str(reset if reset is not None else int(time.time()) + 10))
            h.end_headers()
            h.wfile.write(data)

        def error(status: int, code: str, message: str, **kw: Any) -> None:
            send(status, {"type": "error.list", "request_id": uuid.uuid4().hex[:20],
                          "errors": [{"code": code, "message": message}]}, **kw)

        if not auth_ok:
            return error(401, "unauthorized", "Access Token Invalid")
        version = record["version"]
        if version is not None and version not in SUPPORTED_VERSIONS:
            return error(400, "intercom_version_invalid", "Requested resource is not available in current API version.")
        fault = self._take_fault(path)
        if fault == "429":
            return error(429, "rate_limit_exceeded", "Exceeded rate limit of 1000 in 60 seconds",
                         reset=int(time.time()))
        if fault == "500":
            return error(500, "server_error", "Server Error")
        try:
            body = self._route(path, query)
        except _ApiError as exc:
            return error(exc.status, exc.code, exc.message)
        if fault == "truncate":
            data = json.dumps(body).encode()
            return send(200, None, raw=data[: len(data) // 2])
        self.responses[recorded_key("GET", path, query)] = body
        send(200, body)

    def _route(self, path: str, q: dict[str, str]) -> Any:
        if path == "/data_attributes":
            model = q.get("model", "contact")
            if model not in self.ws.attributes:
                raise _ApiError(400, "parameter_invalid", "model must be one of contact, company, conversation")
            return {"type": "list", "data": self.ws.attributes[model]}
        if path == "/contacts":
            return self._cursor(self.ws.contacts, q, "data", "list")
        if path == "/conversations":
            return self._cursor(self.ws.conversations, q, "conversations", "conversation.list")
        if path == "/companies":
            return self._company_page(q)
        if path == "/companies/scroll":
            return self._scroll(q)
        if path == "/tags":
            return {"type": "list", "data": self.ws.tags}
        raise _ApiError(404, "not_found", "Resource Not Found")

    def _cursor(self, rows: list[dict[str, Any]], q: dict[str, str], key: str, type_: str) -> dict[str, Any]:
        per_page = _int(q.get("per_page", "50"))
        if not 1 <= per_page <= 150:
            raise _ApiError(400, "parameter_invalid", "per_page must be between 1 and 150")
        start = 0
        if q.get("starting_after"):
            try:
                start = int(base64.urlsafe_b64decode(q["starting_after"].encode()).decode().split(":")[1])
            except Exception:
                raise _ApiError(400, "parameter_invalid", "starting_after is invalid") from None
        page_no = start // per_page + 1
        total_pages = max(1, -(-len(rows) // per_page))
        pages: dict[str, Any] = {"type": "pages", "page": page_no, "per_page": per_page, "total_pages": total_pages}
        if start + per_page < len(rows):
            token = base64.urlsafe_b64encode(f"cursor:{start + per_page}".encode()).decode()
            pages["next"] = {"page": page_no + 1, "starting_after": token}
        return {"type": type_, key: rows[start : start + per_page], "total_count": len(rows), "pages": pages}

    def _company_page(self, q: dict[str, str]) -> dict[str, Any]:
        page, per_page = _int(q.get("page", "1")), _int(q.get("per_page", "15"))
        if not 1 <= per_page <= 60:
            raise _ApiError(400, "parameter_invalid", "per_page must be between 1 and 60")
        if page < 1 or page * per_page > self.company_page_limit:
            raise _ApiError(400, "parameter_invalid",
                            f"page limit reached: only the first {self.company_page_limit} companies can be paged, "
                            "use the scroll API (/companies/scroll)")
        rows = self.ws.companies
        total_pages = max(1, -(-len(rows) // per_page))
        nxt = f"https://api.intercom.io/companies?per_page={per_page}&page={page + 1}" if page < total_pages else None
        body: dict[str, Any] = {"type": "list", "data": rows[(page - 1) * per_page : page * per_page],
                                "total_count": len(rows),
                                "pages": {"type": "pages", "next": nxt, "page": page, "per_page": per_page}}
        if self.company_total_count:
            body["pages"]["total_pages"] = total_pages
        else:
            del body["total_count"]
        return body

    def _scroll(self, q: dict[str, str]) -> dict[str, Any]:
        param = q.get("scroll_param")
        with self._lock:
            if param:
                if param not in self._scrolls:
                    raise _ApiError(404, "scroll_param_not_found", "scroll parameter not found")
                start = self._scrolls[param]
            else:
                param, start = f"sc{len(self._scrolls) + 1:030d}", 0
            self._scrolls[param] = start + self.scroll_size
        return {"type": "list", "data": self.ws.companies[start : start + self.scroll_size], "pages": None,
                "total_count": None, "scroll_param": param}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1
