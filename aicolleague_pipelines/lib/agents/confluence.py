"""Publishing Markdown pages to Confluence Cloud (REST API v1), idempotently.

:func:`publish` takes ``{title: markdown}`` and, for each page (sorted by title):

1. finds it: ``GET /wiki/rest/api/content?title=…&spaceKey=…&type=page&expand=version,body.storage``;
2. converts the Markdown to Confluence *storage format* (:func:`markdown_to_storage`) and hashes
   it (title + body); the hash is written into the page as a small footer line
   ``aicolleague-hash: <sha256>`` — plain text survives Confluence's storage normalisation
   (an HTML comment or attribute might not), and no extra content-property call is needed;
3. absent → ``POST /wiki/rest/api/content`` ``{type: page, title, space: {key}, ancestors:
   [{id: parent}], body: {storage: {value, representation: "storage"}}}``;
   present with the same hash → nothing (no write); present with another hash (or none) →
   ``PUT /wiki/rest/api/content/{id}`` with ``version: {number: n + 1}``.

The parent page (``parent_title``) is found the same way, and created at the space's root when
missing. A create that races another publisher (``400`` "already exists") re-reads and updates
instead: a title is never duplicated.

HTTP: Basic auth with the email and API token read from the environment variables named in
:class:`ConfluenceConfig` (``CONFLUENCE_EMAIL`` / ``CONFLUENCE_API_TOKEN`` by default); retries
with exponential backoff + jitter on 429 (honouring ``Retry-After``), 5xx, timeouts and
connection errors. Errors (:class:`ConfluenceError`) name the call (method + path, never query
values, headers or bodies we sent) and what to do; credentials never appear in them or in logs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from aicolleague_pipelines.lib.audit import AuditLog
from aicolleague_pipelines.lib.retry_after import retry_after_seconds

log = logging.getLogger(__name__)
# httpx logs request lines at INFO (query strings carry page titles): keep them out of run logs.
logging.getLogger("httpx").setLevel(logging.WARNING)

API = "/wiki/rest/api/content"
HASH_MARKER = "aicolleague-hash:"
_HASH_RE = re.compile(re.escape(HASH_MARKER) + r"\s*([0-9a-f]{64})")


class ConfluenceError(Exception):
    """A publishing failure naming the call and what to do (never a credential)."""


@dataclass(frozen=True)
class ConfluenceConfig:
    #: ``https://<site>.atlassian.net`` (the ``/wiki`` prefix is added by the client).
    base_url: str
    email_env: str = "CONFLUENCE_EMAIL"
    token_env: str = "CONFLUENCE_API_TOKEN"
    retry_attempts: int = 5
    retry_base_delay: float = 1.0
    #: Longest single wait (a ``Retry-After`` above it is capped).
    max_wait: float = 60.0
    timeout: float = 30.0
    ca_bundle: str | None = None

    def credentials(self) -> tuple[str, str]:
        email = os.environ.get(self.email_env, "").strip()
        token = os.environ.get(self.token_env, "").strip()
        missing = [n for n, v in ((self.email_env, email), (self.token_env, token)) if not v]
        if missing:
            raise ConfluenceError(
                f"Confluence credentials missing: set {' and '.join(missing)} "
                "(the Atlassian account email and an API token)"
            )
        return email, token


@dataclass
class PublishReport:
    space_key: str
    parent_id: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: title → page id
    page_ids: dict[str, str] = field(default_factory=dict)
    #: calls, retries, rate_limited, writes
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.updated)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space_key": self.space_key,
            "parent_id": self.parent_id,
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "page_ids": dict(self.page_ids),
            "stats": dict(self.stats),
        }


# --- HTTP ---------------------------------------------------------------------------------
class _Client:
    def __init__(self, cfg: ConfluenceConfig, sleep: Callable[[float], None],
                 transport: httpx.BaseTransport | None) -> None:
        email, token = cfg.credentials()
        self.cfg = cfg
        self._sleep = sleep
        self.stats = {"calls": 0, "retries": 0, "rate_limited": 0, "writes": 0}
        basic = base64.b64encode(f"{email}:{token}".encode()).decode()
        self._client = httpx.Client(
            base_url=cfg.base_url.rstrip("/"),
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            timeout=cfg.timeout,
            transport=transport,
            verify=cfg.ca_bundle or True,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json_body: Any = None, ok_statuses: tuple[int, ...] = ()) -> httpx.Response:
        what = f"{method} {path}"
        attempts = max(1, self.cfg.retry_attempts)
        for attempt in range(1, attempts + 1):
            self.stats["calls"] += 1
            try:
                resp = self._client.request(method, path, params=params, json=json_body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == attempts:
                    raise ConfluenceError(
                        f"Confluence {what}: {type(exc).__name__} after {attempts} attempts — "
                        "check that the site is reachable (base_url, network, TLS)"
                    ) from None
                self._backoff(attempt, None)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if resp.status_code == 429:
                    self.stats["rate_limited"] += 1
                if attempt == attempts:
                    raise ConfluenceError(
                        f"Confluence {what}: HTTP {resp.status_code} after {attempts} attempts — "
                        + ("rate limited: retry later" if resp.status_code == 429 else "Confluence is failing; retry later")
                    )
                self._backoff(attempt, resp)
                continue
            if resp.status_code in (401, 403):
                raise ConfluenceError(
                    f"Confluence {what}: HTTP {resp.status_code}: authentication refused — check the "
                    f"email in {self.cfg.email_env} and the API token in {self.cfg.token_env} "
                    "(and that the account may edit the space)"
                )
            if resp.status_code >= 400 and resp.status_code not in ok_statuses:
                raise ConfluenceError(f"Confluence {what}: HTTP {resp.status_code}: {_error_text(resp)}")
            if method != "GET" and resp.status_code < 300:
                self.stats["writes"] += 1
            return resp
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, resp: httpx.Response | None) -> None:
        self.stats["retries"] += 1
        delay = self.cfg.retry_base_delay * (2 ** (attempt - 1)) * (1 + random.random() * 0.5)
        if resp is not None and resp.status_code == 429:
            hinted = retry_after_seconds(resp.headers)
            if hinted is not None:
                delay = hinted
        self._sleep(min(max(delay, 0.0), self.cfg.max_wait))

    def json(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise ConfluenceError(f"Confluence {what}: response is not valid JSON") from None


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return "non-JSON error body"
    if isinstance(body, dict):
        msg = body.get("message") or (body.get("data") or {}).get("errors")
        if isinstance(msg, str):
            return msg[:200]
    return "error"


# --- publishing ---------------------------------------------------------------------------
def content_hash(title: str, storage: str) -> str:
    return hashlib.sha256(f"{title}\x00{storage}".encode("utf-8", "surrogatepass")).hexdigest()


def _with_footer(storage: str, digest: str) -> str:
    return (f"{storage}\n<p><sub>Generated by AI Colleague from the org's metadata; edits made here are "
            f"replaced on the next publish. {HASH_MARKER} {digest}</sub></p>")


def stored_hash(storage_value: str) -> str | None:
    """The hash a published page carries in its footer (None for pages we did not write)."""
    m = _HASH_RE.search(storage_value or "")
    return m.group(1) if m else None


def _find(client: _Client, space_key: str, title: str) -> dict[str, Any] | None:
    resp = client.call("GET", API, params={"title": title, "spaceKey": space_key, "type": "page",
                                           "expand": "version,body.storage"})
    body = client.json(resp, f"GET {API}")
    results = [r for r in (body.get("results") or []) if r.get("title") == title]
    return results[0] if results else None


def _page_body(title: str, space_key: str, parent_id: str | None, value: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "page",
        "title": title,
        "space": {"key": space_key},
        "body": {"storage": {"value": value, "representation": "storage"}},
    }
    if parent_id:
        body["ancestors"] = [{"id": parent_id}]
    return body


def _upsert(client: _Client, report: PublishReport, space_key: str, parent_id: str | None,
            title: str, storage: str) -> str:
    digest = content_hash(title, storage)
    value = _with_footer(storage, digest)
    existing = _find(client, space_key, title)
    if existing is None:
        resp = client.call("POST", API, json_body=_page_body(title, space_key, parent_id, value),
                           ok_statuses=(400,))
        if resp.status_code == 200 or resp.status_code == 201:
            page_id = str(client.json(resp, f"POST {API}")["id"])
            report.created.append(title)
            return page_id
        # 400: most likely created meanwhile by another publisher — update instead, never duplicate.
        existing = _find(client, space_key, title)
        if existing is None:
            raise ConfluenceError(f"Confluence POST {API}: HTTP 400: {_error_text(resp)}")
    page_id = str(existing["id"])
    current = ((existing.get("body") or {}).get("storage") or {}).get("value", "")
    if stored_hash(current) == digest:
        report.unchanged.append(title)
        return page_id
    number = int((existing.get("version") or {}).get("number") or 1)
    body = _page_body(title, space_key, parent_id, value)
    body["id"] = page_id
    body["version"] = {"number": number + 1, "message": f"{HASH_MARKER} {digest[:12]}"}
    client.call("PUT", f"{API}/{page_id}", json_body=body)
    report.updated.append(title)
    return page_id


def publish(
    pages: Mapping[str, str],
    space_key: str,
    parent_title: str | None,
    cfg: ConfluenceConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    audit: AuditLog | None = None,
    org: str | None = None,
) -> PublishReport:
    """Create or update ``pages`` (title → Markdown) under ``parent_title`` in ``space_key``.

    With ``audit``, a run that wrote pages (or failed) is recorded as one ``docs.publish``
    entry for ``org`` with the titles created and updated; a run that changed nothing is not."""
    if not re.fullmatch(r"[A-Za-z0-9~_-]{1,255}", space_key or ""):
        raise ConfluenceError(f"not a Confluence space key: {space_key!r}")
    for title in pages:
        if not title.strip() or len(title) > 255:
            raise ConfluenceError(f"unusable page title (empty or longer than 255): {title[:60]!r}")
    client = _Client(cfg, sleep, transport)
    report = PublishReport(space_key=space_key)
    error: str | None = None
    try:
        if parent_title:
            parent = _find(client, space_key, parent_title)
            if parent is None:
                parent_id = _upsert(client, report, space_key, None, parent_title,
                                    markdown_to_storage("Pages generated by AI Colleague."))
            else:
                parent_id = str(parent["id"])
            report.parent_id = parent_id
            report.page_ids[parent_title] = parent_id
        for title in sorted(pages):
            if title == parent_title:
                continue
            report.page_ids[title] = _upsert(client, report, space_key, report.parent_id, title,
                                             markdown_to_storage(pages[title]))
    except Exception as exc:
        error = str(exc) if isinstance(exc, ConfluenceError) else f"unexpected {type(exc).__name__}"
        raise
    finally:
        report.stats = dict(client.stats)
        client.close()
        if audit is not None and (report.writes or error):
            audit.record(
                "docs.publish",
                f"Confluence space {space_key}: {len(report.created)} page(s) created, "
                f"{len(report.updated)} updated, {len(report.unchanged)} unchanged",
                why="generated documentation differs from the published pages",
                outcome="failed" if error else "ok", org=org, target=f"confluence:{space_key}",
                ref=parent_title or "", details={"created": report.created, "updated": report.updated,
                                                 "error": error},
            )
    log.info("confluence space %s: %d created, %d updated, %d unchanged", space_key,
             len(report.created), len(report.updated), len(report.unchanged))
    return report


# --- Markdown → storage format --------------------------------------------------------------
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ENTITY_OK = r"(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot|apos)"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HR = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_LIST = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")


def _esc(text: str) -> str:
    """HTML-escape, keeping the few entities Markdown text may already carry."""
    text = re.sub(r"&(?!" + _ENTITY_OK + ";)", "&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def inline(text: str) -> str:
    """Inline Markdown → storage: code spans, backslash escapes, links, bold, italic."""
    slots: list[str] = []

    def keep(s: str) -> str:
        slots.append(s)
        return f"\x00{len(slots) - 1}\x00"

    # Code spans (a run of n backticks closes on the next run of exactly n).
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "`":
            j = i
            while j < len(text) and text[j] == "`":
                j += 1
            run = text[i:j]
            m = re.compile(r"(?<!`)" + run + r"(?!`)").search(text, j)
            if m:
                content = text[j:m.start()]
                if content.startswith(" ") and content.endswith(" ") and content.strip():
                    content = content[1:-1]
                out.append(keep(f"<code>{html.escape(content, quote=False)}</code>"))
                i = m.end()
                continue
            out.append(run)
            i = j
            continue
        if text[i] == "\\" and i + 1 < len(text) and not text[i + 1].isalnum() and not text[i + 1].isspace():
            out.append(keep(html.escape(text[i + 1])))
            i += 2
            continue
        out.append(text[i])
        i += 1
    s = _esc("".join(out))

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), html.unescape(m.group(2))
        if re.match(r"^(https?:|mailto:)", url, re.I):
            return keep(f'<a href="{html.escape(url, quote=True)}">') + label + keep("</a>")
        return label  # a relative link to another Markdown page: keep its text

    s = re.sub(r"\[([^\]\x00]*(?:\x00\d+\x00[^\]\x00]*)*)\]\(([^)\s]+)\)", link, s)
    s = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", s)
    while "\x00" in s:
        s = re.sub(r"\x00(\d+)\x00", lambda m: slots[int(m.group(1))], s)
    return s


def split_row(line: str) -> list[str]:
    """Cells of a Markdown table row (pipes inside code spans or escaped do not split)."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells, cur, i, tick = [], [], 0, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            cur.append("\\|")
            i += 2
            continue
        if ch == "`":
            j = i
            while j < len(line) and line[j] == "`":
                j += 1
            n = j - i
            tick = 0 if tick == n else (n if tick == 0 else tick)
            cur.append(line[i:j])
            i = j
            continue
        if ch == "|" and not tick:
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    cells.append("".join(cur).strip())
    return cells


def _code_macro(code: str, lang: str) -> str:
    lang = re.sub(r"[^a-z0-9+#-]", "", lang.lower())
    param = ""
    if lang and lang not in ("mermaid", "text"):
        param = f'<ac:parameter ac:name="language">{lang}</ac:parameter>'
    elif lang == "mermaid":
        param = '<ac:parameter ac:name="title">Mermaid diagram</ac:parameter>'
    cdata = code.replace("]]>", "]]]]><![CDATA[>")
    return (f'<ac:structured-macro ac:name="code">{param}'
            f"<ac:plain-text-body><![CDATA[{cdata}]]></ac:plain-text-body></ac:structured-macro>")


def markdown_to_storage(md: str) -> str:
    """A small Markdown → Confluence storage converter: headings, paragraphs, (nested) lists,
    tables, fenced code blocks, block quotes, rules; inline code, links, bold, italic.
    Everything else is escaped text. Deterministic."""
    lines = _CTRL.sub("", md.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    out: list[str] = []
    para: list[str] = []
    lists: list[tuple[int, str]] = []  # (indent, "ul"/"ol") stack, an <li> open at each level

    def flush_para() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(s.strip() for s in para))}</p>")
            para.clear()

    def close_lists(to_indent: int = -1) -> None:
        while lists and lists[-1][0] > to_indent:
            out.append(f"</li></{lists.pop()[1]}>")

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush_para()
            close_lists()
            marker, lang = fence.group(1), fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines):
                close = lines[i].strip()
                if close and set(close) == {marker[0]} and len(close) >= len(marker):
                    break
                body.append(lines[i])
                i += 1
            out.append(_code_macro("\n".join(body), lang))
            i += 1
            continue
        if not line.strip():
            flush_para()
            # A blank line ends a list only if the next line is not a list item.
            nxt = next((ln for ln in lines[i + 1:] if ln.strip()), "")
            if lists and not _LIST.match(nxt):
                close_lists()
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_para()
            close_lists()
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if _HR.match(line) and not para:
            close_lists()
            out.append("<hr />")
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]) and "-" in lines[i + 1]:
            flush_para()
            close_lists()
            header = split_row(line)
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                rows.append(split_row(lines[i]))
                i += 1
            t = ["<table><tbody><tr>", *[f"<th>{inline(c)}</th>" for c in header], "</tr>"]
            for r in rows:
                r = (r + [""] * len(header))[: max(len(header), 1)]
                t += ["<tr>", *[f"<td>{inline(c)}</td>" for c in r], "</tr>"]
            t.append("</tbody></table>")
            out.append("".join(t))
            continue
        item = _LIST.match(line)
        if item:
            flush_para()
            indent = len(item.group(1).expandtabs(4))
            tag = "ol" if item.group(2)[0].isdigit() else "ul"
            if lists and indent > lists[-1][0]:
                out.append(f"<{tag}><li>")
                lists.append((indent, tag))
            else:
                close_lists(indent)
                if lists and lists[-1][0] == indent and lists[-1][1] == tag:
                    out.append("</li><li>")
                else:
                    if lists and lists[-1][0] == indent:
                        out.append(f"</li></{lists.pop()[1]}>")
                    out.append(f"<{tag}><li>")
                    lists.append((indent, tag))
            out.append(inline(item.group(3)))
            i += 1
            continue
        if line.lstrip().startswith(">"):
            flush_para()
            close_lists()
            quote: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quote.append(re.sub(r"^\s*>\s?", "", lines[i]))
                i += 1
            out.append(f"<blockquote>{markdown_to_storage(chr(10).join(quote))}</blockquote>")
            continue
        if lists:  # a continuation line of a list item
            out.append(" " + inline(line.strip()))
            i += 1
            continue
        para.append(line)
        i += 1
    flush_para()
    close_lists()
    return "\n".join(out)
