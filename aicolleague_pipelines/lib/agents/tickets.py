"""Triage: tickets for new high-risk findings (Jira Cloud, ServiceNow, or only an asset).

Configuration (the ``tickets:`` section of the alerts YAML)::

    tickets:
      sink: jira                 # jira | servicenow | asset (the default: no HTTP at all)
      min_risk: 60               # a finding needs risk >= min_risk ...
      min_severity: high         # ... and severity >= min_severity
      max_per_run: 20            # at most this many new tickets are attempted per run
      jira:
        base_url: https://yourco.atlassian.net
        project_key: AIC
        issue_type: Bug
        email_env: AIC_JIRA_EMAIL
        api_token_env: AIC_JIRA_API_TOKEN
        labels: [salesforce]
      servicenow:
        base_url: https://yourco.service-now.com
        username_env: AIC_SNOW_USER
        password_env: AIC_SNOW_PASSWORD
        assignment_group: Salesforce Platform
        category: software
      # optional: retries: 3, backoff: 0.25, max_backoff: 5, timeout: 10,
      #           max_consecutive_failures: 3

:func:`route_findings` picks the findings at or above both thresholds (highest risk first, each
finding id once), skips those already in the local *ledger* (a JSON file: finding id → ticket
key, per ticket target) without asking the ticket system, asks the ticket system whether a
ticket already exists (Jira: label ``finding-<id>``; ServiceNow: ``correlation_id``
``aicolleague-<id>``), and creates one otherwise — up to ``max_per_run`` creations a run (the
rest wait for the next run: ``skipped_over_cap``).

- Jira Cloud REST v3: ``POST /rest/api/3/issue`` (Basic auth e-mail:API token), description in
  Atlassian Document Format; dedup by ``GET /rest/api/3/search/jql`` (falls back to the older
  ``GET /rest/api/3/search`` when that answers 404/410).
- ServiceNow Table API: ``POST /api/now/table/incident`` (Basic auth), dedup by
  ``GET /api/now/table/incident?sysparm_query=correlation_id=aicolleague-<id>``.
- ``asset``: nothing is sent; the tickets (summary, text …) are only in the returned report,
  which the caller stores as an asset. The ledger still applies, so each run's report lists the
  findings that are *new* since the previous runs.

429 and 5xx answers and transport errors are retried with a short exponential backoff
(``Retry-After`` honoured up to ``max_backoff``); before re-sending a create that may have
reached the server (5xx, transport error) the ticket system is searched again, so a retry does
not make a duplicate. 401/403 or missing credentials stop the run's remaining creations (no
lock-out by repeated failed logins); so do ``max_consecutive_failures`` failures in a row.
:func:`route_findings` never raises because the ticket system fails: the :class:`TicketReport`
says what was created, what was already ticketed, what was skipped and what failed. The ledger
is rewritten atomically (temporary file + ``os.replace``, under a lock file) after every new
entry, merged with what another run may have written meanwhile.

Credentials are read from the environment variables named by ``*_env``; their values (and the
Basic ``Authorization`` value) never appear in a report, an exception text or a log record
(the redaction filter of :mod:`.alerts` on httpx/httpcore covers them too).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx

from aicolleague_pipelines.lib.agents import alerts as _alerts
from aicolleague_pipelines.lib.agents.alerts import redact
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.audit import AuditLog
from aicolleague_pipelines.lib.retry_after import retry_after_seconds

log = logging.getLogger(__name__)

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
SINKS = ("asset", "jira", "servicenow")
LEDGER_VERSION = 1
APP_LABEL = "aicolleague"
CORRELATION_PREFIX = "aicolleague-"


class TicketConfigError(ValueError):
    """The ``tickets`` configuration is invalid (the message never contains a secret)."""


class TicketError(RuntimeError):
    """One ticket operation failed (message already free of secrets)."""


class _FatalTicketError(TicketError):
    """The ticket system cannot be used this run at all (bad credentials, env unset …)."""


class _AlreadyExists(Exception):
    def __init__(self, key: str, url: str = "") -> None:
        super().__init__(key)
        self.key, self.url = key, url


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _register_secret(*values: str) -> None:
    """Adds raw secret values to the redaction set shared with :mod:`.alerts`."""
    with _alerts._SECRETS_LOCK:
        _alerts._SECRETS.update(v for v in values if v and len(v) >= 4)


def _severity(value: Any, what: str) -> str:
    s = str(value).strip().lower()
    if s not in SEVERITY_RANK:
        raise TicketConfigError(f"unknown {what} {value!r} (one of: {', '.join(SEVERITIES)})")
    return s


def _base_url(value: Any, what: str) -> str:
    url = str(value or "").strip().rstrip("/")
    if not url:
        raise TicketConfigError(f"{what}: base_url is required")
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise TicketConfigError(f"{what}: base_url is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TicketConfigError(f"{what}: base_url must be an http(s) URL")
    if parsed.userinfo:
        raise TicketConfigError(f"{what}: base_url must not contain credentials (use the *_env settings)")
    return url


def _check_keys(cfg: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise TicketConfigError(f"{what}: unknown setting(s) {', '.join(map(str, unknown))}")


def _env_name(cfg: Mapping[str, Any], key: str, what: str) -> str:
    name = str(cfg.get(key) or "").strip()
    if not name:
        raise TicketConfigError(f"{what}: {key} is required (the environment variable holding it)")
    return name


# --- configuration ---------------------------------------------------------------------------


@dataclass
class JiraConfig:
    base_url: str
    project_key: str
    email_env: str
    api_token_env: str
    issue_type: str = "Bug"
    labels: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "JiraConfig":
        if not isinstance(cfg, Mapping):
            raise TicketConfigError("tickets.jira must be a mapping")
        _check_keys(cfg, {"base_url", "project_key", "issue_type", "email_env", "api_token_env", "labels"},
                    "tickets.jira")
        project = str(cfg.get("project_key") or "").strip()
        if not project:
            raise TicketConfigError("tickets.jira: project_key is required")
        labels = cfg.get("labels") or []
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, (list, tuple)):
            raise TicketConfigError("tickets.jira: labels must be a list")
        return cls(
            base_url=_base_url(cfg.get("base_url"), "tickets.jira"),
            project_key=project,
            email_env=_env_name(cfg, "email_env", "tickets.jira"),
            api_token_env=_env_name(cfg, "api_token_env", "tickets.jira"),
            issue_type=str(cfg.get("issue_type") or "Bug"),
            labels=[_label(x) for x in labels if str(x).strip()],
        )


@dataclass
class ServiceNowConfig:
    base_url: str
    username_env: str
    password_env: str
    assignment_group: str = ""
    category: str = ""

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "ServiceNowConfig":
        if not isinstance(cfg, Mapping):
            raise TicketConfigError("tickets.servicenow must be a mapping")
        _check_keys(cfg, {"base_url", "username_env", "password_env", "assignment_group", "category"},
                    "tickets.servicenow")
        return cls(
            base_url=_base_url(cfg.get("base_url"), "tickets.servicenow"),
            username_env=_env_name(cfg, "username_env", "tickets.servicenow"),
            password_env=_env_name(cfg, "password_env", "tickets.servicenow"),
            assignment_group=str(cfg.get("assignment_group") or ""),
            category=str(cfg.get("category") or ""),
        )


@dataclass
class TicketConfig:
    sink: str = "asset"
    min_risk: float = 60.0
    min_severity: str = "high"
    max_per_run: int = 20
    jira: JiraConfig | None = None
    servicenow: ServiceNowConfig | None = None
    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 5.0
    timeout: float = 10.0
    #: After this many failed tickets in a row, the rest of the run is not attempted.
    max_consecutive_failures: int = 3

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> "TicketConfig":
        """From the ``tickets`` mapping (``None`` or ``{}`` → the ``asset`` sink, defaults)."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, Mapping):
            raise TicketConfigError(f"tickets: want a mapping, got {type(cfg).__name__}")
        _check_keys(cfg, {"sink", "min_risk", "min_severity", "max_per_run", "jira", "servicenow", "retries",
                          "backoff", "max_backoff", "timeout", "max_consecutive_failures"}, "tickets")
        sink = str(cfg.get("sink") or "asset").strip().lower()
        if sink not in SINKS:
            raise TicketConfigError(f"tickets: unknown sink {sink!r} (one of: {', '.join(SINKS)})")
        try:
            nums = {
                "min_risk": float(cfg.get("min_risk", 60.0)),
                "max_per_run": int(cfg.get("max_per_run", 20)),
                "retries": int(cfg.get("retries", 3)),
                "backoff": float(cfg.get("backoff", 0.25)),
                "max_backoff": float(cfg.get("max_backoff", 5.0)),
                "timeout": float(cfg.get("timeout", 10.0)),
                "max_consecutive_failures": int(cfg.get("max_consecutive_failures", 3)),
            }
        except (TypeError, ValueError) as exc:
            raise TicketConfigError(f"tickets: a numeric setting is not a number ({exc})") from None
        if nums["max_per_run"] < 0 or nums["retries"] < 0:
            raise TicketConfigError("tickets: max_per_run and retries must be >= 0")
        jira = JiraConfig.from_dict(cfg["jira"]) if cfg.get("jira") else None
        snow = ServiceNowConfig.from_dict(cfg["servicenow"]) if cfg.get("servicenow") else None
        if sink == "jira" and jira is None:
            raise TicketConfigError("tickets: sink is jira but there is no tickets.jira section")
        if sink == "servicenow" and snow is None:
            raise TicketConfigError("tickets: sink is servicenow but there is no tickets.servicenow section")
        return cls(sink=sink, min_severity=_severity(cfg.get("min_severity", "high"), "tickets.min_severity"),
                   jira=jira, servicenow=snow, **nums)

    def qualifies(self, finding: Finding) -> bool:
        sev = SEVERITY_RANK.get(str(finding.severity).lower(), -1)
        return sev >= SEVERITY_RANK[self.min_severity] and float(finding.risk or 0.0) >= self.min_risk


# --- ticket content --------------------------------------------------------------------------


def _label(text: Any) -> str:
    return "-".join(str(text).split())  # Jira labels cannot contain whitespace


def finding_label(finding_id: str) -> str:
    return f"finding-{finding_id}"


def correlation_id(finding_id: str) -> str:
    return f"{CORRELATION_PREFIX}{finding_id}"


def ticket_summary(f: Finding, limit: int = 255) -> str:
    return _cut(f"[{f.severity.upper()}] {f.rule_id}: {f.message} ({f.component})", limit)


def _risk_text(f: Finding) -> str:
    text = f"{f.risk:g}/100"
    if f.risk_parts:
        parts = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                          for k, v in f.risk_parts.items())
        text += f" ({parts})"
    return text


def _facts(f: Finding) -> list[tuple[str, str, bool]]:
    """(label, value, is_code) lines shared by the Jira and ServiceNow texts."""
    out = [("Org", f.org, True), ("Component", f.component, True)]
    if f.evidence:
        out.append(("Evidence", f.evidence, True))
    out += [("Rule", f.rule_id + (f" ({f.category})" if f.category else ""), False),
            ("Severity", f.severity, False), ("Risk", _risk_text(f), False), ("Finding id", f.id, True)]
    return [(k, v, c) for k, v, c in out if v]


def plain_description(f: Finding) -> str:
    lines = [f.message, ""]
    if f.explanation:
        lines += [f.explanation, ""]
    lines += [f"{k}: {v}" for k, v, _ in _facts(f)]
    lines += ["", "Raised by AI Colleague triage; the finding id stays the same run after run."]
    return "\n".join(lines)


def _t(text: str, *marks: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = [{"type": m} for m in marks]
    return node


def _p(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [n for n in nodes if n.get("text")]}


def adf_description(f: Finding) -> dict[str, Any]:
    """The finding as an Atlassian Document Format (ADF) ``doc`` for a Jira description."""
    content: list[dict[str, Any]] = [_p(_t(f.message or f.rule_id))]
    if f.explanation:
        content.append({"type": "heading", "attrs": {"level": 3}, "content": [_t("Why it matters")]})
        content.append(_p(_t(f.explanation)))
    items = [
        {"type": "listItem", "content": [_p(_t(f"{k}: ", "strong"), _t(v, "code") if code else _t(v))]}
        for k, v, code in _facts(f)
    ]
    content.append({"type": "bulletList", "content": items})
    content.append(_p(_t("Raised by AI Colleague triage; the finding id stays the same run after run.", "em")))
    return {"type": "doc", "version": 1, "content": content}


# --- report ----------------------------------------------------------------------------------


@dataclass
class TicketReport:
    sink: str
    #: (finding id, ticket key) of tickets created this run.
    created: list[tuple[str, str]] = field(default_factory=list)
    #: (finding id, ticket key) of findings that had a ticket already (ledger or ticket system).
    already_ticketed: list[tuple[str, str]] = field(default_factory=list)
    #: Finding ids found ticketed by the ticket system's search (subset of ``already_ticketed``).
    found_by_search: list[str] = field(default_factory=list)
    skipped_below_threshold: list[str] = field(default_factory=list)
    #: Qualifying finding ids left for a later run because of ``max_per_run``.
    skipped_over_cap: list[str] = field(default_factory=list)
    #: (finding id, error text without secrets).
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: One record per created ticket: finding id, key, url, summary, text, severity, risk …
    tickets: list[dict[str, Any]] = field(default_factory=list)
    #: Problems with the ledger file (it could not be read or written); the run went on.
    ledger_errors: list[str] = field(default_factory=list)
    requests: int = 0
    retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.ledger_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "ok": self.ok,
            "created": [list(x) for x in self.created],
            "already_ticketed": [list(x) for x in self.already_ticketed],
            "found_by_search": list(self.found_by_search),
            "skipped_below_threshold": list(self.skipped_below_threshold),
            "skipped_over_cap": list(self.skipped_over_cap),
            "failed": [list(x) for x in self.failed],
            "tickets": [dict(t) for t in self.tickets],
            "ledger_errors": list(self.ledger_errors),
            "requests": self.requests,
            "retries": self.retries,
        }

    def __str__(self) -> str:
        return (f"tickets via {self.sink}: {len(self.created)} created, {len(self.already_ticketed)} already "
                f"ticketed, {len(self.skipped_below_threshold)} below threshold, {len(self.skipped_over_cap)} "
                f"over the cap, {len(self.failed)} failed")


# --- ledger ----------------------------------------------------------------------------------

_LEDGER_LOCK = threading.Lock()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Process-wide and (where ``fcntl`` exists) cross-process lock around a ledger update."""
    with _LEDGER_LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(path.with_name(path.name + ".lock"), "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class Ledger:
    """finding id → ticket, per ticket target, in one JSON file rewritten atomically."""

    def __init__(self, path: Path | str | None, target: str, report: TicketReport) -> None:
        self.path = Path(path) if path is not None else None
        self.target = target
        self.report = report
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None:
            self.entries = dict(self._read().get("targets", {}).get(target, {}))

    def _read(self) -> dict[str, Any]:
        assert self.path is not None
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self._error(f"cannot read ledger {self.path}: {exc.strerror or type(exc).__name__}")
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("targets", {}), dict):
                raise ValueError("not a ledger")
            return data
        except ValueError:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                os.replace(self.path, aside)
                self._error(f"ledger {self.path} was not valid JSON; kept as {aside.name}, starting afresh")
            except OSError:
                self._error(f"ledger {self.path} is not valid JSON and cannot be moved aside")
            return {}

    def _error(self, msg: str) -> None:
        msg = redact(msg)
        self.report.ledger_errors.append(msg)
        log.warning("tickets: %s", msg)

    def get(self, finding_id: str) -> dict[str, Any] | None:
        return self.entries.get(finding_id)

    def record(self, finding_id: str, key: str, url: str = "", via: str = "created") -> None:
        entry = {"key": key, "url": url, "via": via, "at": _now()}
        self.entries[finding_id] = entry
        if self.path is None:
            return
        try:
            with _file_lock(self.path):
                data = self._read() or {}
                targets = data.setdefault("targets", {})
                section = targets.setdefault(self.target, {})
                section[finding_id] = entry
                data["version"] = LEDGER_VERSION
                data["updated_at"] = _now()
                self._write(data)
        except OSError as exc:
            self._error(f"cannot write ledger {self.path}: {exc.strerror or type(exc).__name__}")

    def _write(self, data: dict[str, Any]) -> None:
        assert self.path is not None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


# --- ticket systems --------------------------------------------------------------------------


class _Backend:
    name = "backend"

    def __init__(self, cfg: TicketConfig, client: httpx.Client | None, report: TicketReport) -> None:
        self.cfg = cfg
        self.client = client
        self.report = report
        self.base = ""
        self.auth_header = ""
        self.env_names = ""

    def target(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def prepare(self) -> None:
        """Read credentials; :class:`_FatalTicketError` when the backend cannot work at all."""

    def find(self, f: Finding) -> tuple[str, str] | None:  # pragma: no cover
        raise NotImplementedError

    def create(self, f: Finding) -> tuple[str, str, dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def _basic(self, user_env: str, secret_env: str, what: str) -> None:
        user = os.environ.get(user_env, "").strip()
        secret = os.environ.get(secret_env, "").strip()
        missing = [n for n, v in ((user_env, user), (secret_env, secret)) if not v]
        if missing:
            raise _FatalTicketError(f"{self.name}: environment variable(s) {', '.join(missing)} not set ({what})")
        token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        _register_secret(secret, token, f"{user}:{secret}")
        self.auth_header = f"Basic {token}"
        self.env_names = f"${user_env} / ${secret_env}"

    def _error_text(self, resp: httpx.Response) -> str:
        return ""

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok_statuses: tuple[int, ...] = (),
        recheck: Callable[[], tuple[str, str] | None] | None = None,
    ) -> httpx.Response:
        """One request with retries; returns a 2xx (or ``ok_statuses``) answer or raises.

        ``recheck`` runs before re-sending after an answer that may mean the request was
        processed (5xx, transport error); when it finds the ticket, :class:`_AlreadyExists`.
        """
        assert self.client is not None
        cfg = self.cfg
        attempts = max(1, int(cfg.retries) + 1)
        headers = {"Authorization": self.auth_header, "Accept": "application/json"}
        last = ""
        for attempt in range(attempts):
            if attempt and recheck is not None and last and not last.startswith("HTTP 429"):
                hit = recheck()
                if hit:
                    raise _AlreadyExists(*hit)
            self.report.requests += 1
            wait = min(cfg.max_backoff, cfg.backoff * (2**attempt))
            try:
                resp = self.client.request(method, self.base + path, params=params, json=body, headers=headers,
                                           timeout=cfg.timeout)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__} on {method} {path}"
            else:
                status = resp.status_code
                if status < 300 or status in ok_statuses:
                    return resp
                if status in (401, 403):
                    verb = "authentication failed" if status == 401 else "permission denied"
                    raise _FatalTicketError(
                        f"{self.name}: {verb} (HTTP {status} on {method} {path}); check the credentials in "
                        f"{self.env_names}")
                last = f"HTTP {status} on {method} {path}"
                if status != 429 and status < 500:
                    detail = self._error_text(resp)
                    raise TicketError(f"{self.name}: {last}{': ' + detail if detail else ''} (not retried)")
                retry_after = retry_after_seconds(resp.headers)
                if retry_after is not None:
                    wait = min(cfg.max_backoff, retry_after)
            if attempt < attempts - 1:
                self.report.retries += 1
                time.sleep(wait)
        raise TicketError(f"{self.name}: {last} after {attempts} attempt(s)")

    @staticmethod
    def _json(resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise TicketError(f"{what}: the answer is not JSON (HTTP {resp.status_code})") from None


class JiraBackend(_Backend):
    name = "jira"

    def __init__(self, cfg: TicketConfig, client: httpx.Client | None, report: TicketReport) -> None:
        super().__init__(cfg, client, report)
        assert cfg.jira is not None
        self.jira = cfg.jira
        self.base = self.jira.base_url
        self.legacy_search = False

    def target(self) -> str:
        return f"jira:{httpx.URL(self.base).host}/{self.jira.project_key}"

    def prepare(self) -> None:
        self._basic(self.jira.email_env, self.jira.api_token_env, "the Jira e-mail and API token")

    def _error_text(self, resp: httpx.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        parts = [str(m) for m in data.get("errorMessages") or []]
        errors = data.get("errors") or {}
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        return _cut(redact("; ".join(parts)), 300)

    def find(self, f: Finding) -> tuple[str, str] | None:
        params = {"jql": f'labels = "{finding_label(f.id)}"', "fields": "key,status", "maxResults": 1}
        resp = None
        if not self.legacy_search:
            resp = self.call("GET", "/rest/api/3/search/jql", params=params, ok_statuses=(404, 410))
            if resp.status_code in (404, 410):
                self.legacy_search = True
                resp = None
        if resp is None:
            resp = self.call("GET", "/rest/api/3/search", params=params)
        data = self._json(resp, "jira search")
        issues = data.get("issues") if isinstance(data, dict) else None
        if issues:
            key = str(issues[0].get("key") or issues[0].get("id") or "")
            if key:
                return key, f"{self.base}/browse/{key}"
        return None

    def fields(self, f: Finding) -> dict[str, Any]:
        labels: list[str] = []
        for label in [*self.jira.labels, APP_LABEL, finding_label(f.id)]:
            if label not in labels:
                labels.append(label)
        return {
            "project": {"key": self.jira.project_key},
            "summary": ticket_summary(f, 255),
            "issuetype": {"name": self.jira.issue_type},
            "labels": labels,
            "description": adf_description(f),
        }

    def create(self, f: Finding) -> tuple[str, str, dict[str, Any]]:
        resp = self.call("POST", "/rest/api/3/issue", body={"fields": self.fields(f)}, recheck=lambda: self.find(f))
        data = self._json(resp, "jira create")
        key = str((data or {}).get("key") or "")
        if not key:
            raise TicketError("jira: create answered without an issue key")
        return key, f"{self.base}/browse/{key}", {"id": str(data.get("id") or "")}


class ServiceNowBackend(_Backend):
    name = "servicenow"
    TABLE = "/api/now/table/incident"

    def __init__(self, cfg: TicketConfig, client: httpx.Client | None, report: TicketReport) -> None:
        super().__init__(cfg, client, report)
        assert cfg.servicenow is not None
        self.snow = cfg.servicenow
        self.base = self.snow.base_url

    def target(self) -> str:
        return f"servicenow:{httpx.URL(self.base).host}"

    def prepare(self) -> None:
        self._basic(self.snow.username_env, self.snow.password_env, "the ServiceNow user name and password")

    def _error_text(self, resp: httpx.Response) -> str:
        try:
            err = resp.json().get("error") or {}
        except (ValueError, AttributeError):
            return ""
        if not isinstance(err, dict):
            return ""
        return _cut(redact(" — ".join(str(err[k]) for k in ("message", "detail") if err.get(k))), 300)

    def _url(self, sys_id: str) -> str:
        return f"{self.base}/nav_to.do?uri=incident.do?sys_id={sys_id}" if sys_id else ""

    def find(self, f: Finding) -> tuple[str, str] | None:
        params = {"sysparm_query": f"correlation_id={correlation_id(f.id)}",
                  "sysparm_fields": "number,sys_id", "sysparm_limit": "1"}
        data = self._json(self.call("GET", self.TABLE, params=params), "servicenow query")
        rows = data.get("result") if isinstance(data, dict) else None
        if rows:
            row = rows[0]
            key = str(row.get("number") or row.get("sys_id") or "")
            if key:
                return key, self._url(str(row.get("sys_id") or ""))
        return None

    @staticmethod
    def urgency_impact(f: Finding) -> tuple[str, str]:
        """ServiceNow 1 (high) … 3 (low): urgency from the severity, impact from the risk."""
        urgency = {"critical": "1", "high": "2"}.get(f.severity, "3")
        impact = "1" if f.risk >= 80 else "2" if f.risk >= 50 else "3"
        return urgency, impact

    def body(self, f: Finding) -> dict[str, Any]:
        urgency, impact = self.urgency_impact(f)
        body = {
            "short_description": ticket_summary(f, 160),
            "description": plain_description(f),
            "urgency": urgency,
            "impact": impact,
            "category": self.snow.category,
            "assignment_group": self.snow.assignment_group,
            "correlation_id": correlation_id(f.id),
            "correlation_display": APP_LABEL,
        }
        return {k: v for k, v in body.items() if v != ""}

    def create(self, f: Finding) -> tuple[str, str, dict[str, Any]]:
        resp = self.call("POST", self.TABLE, params={"sysparm_fields": "number,sys_id"}, body=self.body(f),
                         recheck=lambda: self.find(f))
        data = self._json(resp, "servicenow create")
        row = (data or {}).get("result") if isinstance(data, dict) else None
        if not isinstance(row, dict) or not (row.get("number") or row.get("sys_id")):
            raise TicketError("servicenow: create answered without an incident number")
        sys_id = str(row.get("sys_id") or "")
        return str(row.get("number") or sys_id), self._url(sys_id), {"sys_id": sys_id}


# --- routing ---------------------------------------------------------------------------------


def _order(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.id, f)
    return sorted(seen.values(), key=lambda f: (-float(f.risk or 0.0), -SEVERITY_RANK.get(f.severity, -1), f.id))


def _ticket_record(f: Finding, key: str, url: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    rec = {
        "finding_id": f.id,
        "key": key,
        "url": url,
        "summary": ticket_summary(f),
        "text": plain_description(f),
        "severity": f.severity,
        "risk": f.risk,
        "rule_id": f.rule_id,
        "org": f.org,
        "component": f.component,
        "evidence": f.evidence,
    }
    rec.update(extra or {})
    return rec


def route_findings(
    findings: Iterable[Finding],
    config: TicketConfig | Mapping[str, Any] | None,
    ledger_path: Path | str | None,
    *,
    client: httpx.Client | None = None,
    audit: AuditLog | None = None,
) -> TicketReport:
    """Ticket the findings at or above the thresholds that have no ticket yet (see module doc).

    With ``audit``, each ticket created (``ticket.create``), each existing ticket found and
    linked in the ledger (``ticket.link``) and each failed attempt is recorded.

    ``config`` is a :class:`TicketConfig` or the ``tickets`` mapping (``None`` → ``asset``);
    ``ledger_path`` the JSON ledger (``None``: no ledger, only the ticket system's search).
    Raises only :class:`TicketConfigError` for an invalid config mapping; every ticket-system
    or ledger failure ends up in the report.
    """
    cfg = config if isinstance(config, TicketConfig) else TicketConfig.from_dict(config)
    report = TicketReport(sink=cfg.sink)
    ordered = _order(findings)
    due: list[Finding] = []
    for f in ordered:
        if cfg.qualifies(f):
            due.append(f)
        else:
            report.skipped_below_threshold.append(f.id)

    backend: _Backend | None = None
    if cfg.sink == "jira":
        backend = JiraBackend(cfg, None, report)
    elif cfg.sink == "servicenow":
        backend = ServiceNowBackend(cfg, None, report)
    ledger = Ledger(ledger_path, backend.target() if backend else "asset", report)

    todo: list[Finding] = []
    for f in due:
        hit = ledger.get(f.id)
        if hit:
            report.already_ticketed.append((f.id, str(hit.get("key") or "")))
        elif len(todo) < cfg.max_per_run:
            todo.append(f)
        else:
            report.skipped_over_cap.append(f.id)
    if not todo:
        _log_report(report)
        return report

    if backend is None:  # the asset sink: the report is the ticket
        for f in todo:
            key = f"asset:{f.id}"
            report.created.append((f.id, key))
            report.tickets.append(_ticket_record(f, key, ""))
            ledger.record(f.id, key)
            _audit_ticket(audit, "ticket.create", f, "asset", cfg, key=key)
        _log_report(report)
        return report

    own = client is None
    http = client or httpx.Client(follow_redirects=False)
    backend.client = http
    try:
        _route_remote(backend, todo, ledger, report, audit)
    finally:
        if own:
            http.close()
    _log_report(report)
    return report


def _route_remote(
    backend: _Backend, todo: list[Finding], ledger: Ledger, report: TicketReport,
    audit: AuditLog | None = None,
) -> None:
    cfg = backend.cfg
    target = backend.target()

    def failed(f: Finding, msg: str) -> None:
        report.failed.append((f.id, msg))
        _audit_ticket(audit, "ticket.create", f, target, cfg, error=msg)

    try:
        backend.prepare()
    except _FatalTicketError as exc:
        msg = redact(str(exc))
        for f in todo:
            failed(f, msg)
        return
    in_a_row = 0
    for i, f in enumerate(todo):
        try:
            hit = backend.find(f)
            if hit:
                report.already_ticketed.append((f.id, hit[0]))
                report.found_by_search.append(f.id)
                ledger.record(f.id, hit[0], hit[1], via="search")
                _audit_ticket(audit, "ticket.link", f, target, cfg, key=hit[0])
                in_a_row = 0
                continue
            try:
                key, url, extra = backend.create(f)
            except _AlreadyExists as found:
                report.already_ticketed.append((f.id, found.key))
                report.found_by_search.append(f.id)
                ledger.record(f.id, found.key, found.url, via="search")
                _audit_ticket(audit, "ticket.link", f, target, cfg, key=found.key)
                in_a_row = 0
                continue
            report.created.append((f.id, key))
            report.tickets.append(_ticket_record(f, key, url, extra))
            ledger.record(f.id, key, url)
            _audit_ticket(audit, "ticket.create", f, target, cfg, key=key)
            in_a_row = 0
        except _FatalTicketError as exc:
            msg = redact(str(exc))
            failed(f, msg)
            for g in todo[i + 1:]:
                failed(g, f"not attempted: {msg}")
            return
        except TicketError as exc:
            failed(f, redact(str(exc)))
            in_a_row += 1
        except Exception as exc:  # never let one finding stop the run
            failed(f, redact(f"{backend.name}: unexpected {type(exc).__name__}"))
            in_a_row += 1
        if cfg.max_consecutive_failures and in_a_row >= cfg.max_consecutive_failures and i + 1 < len(todo):
            msg = f"not attempted: {backend.name} failed {in_a_row} time(s) in a row this run"
            for g in todo[i + 1:]:
                failed(g, msg)
            return


def _audit_ticket(
    audit: AuditLog | None, kind: str, f: Finding, target: str, cfg: TicketConfig, *,
    key: str = "", error: str | None = None,
) -> None:
    """A ``ticket.create`` / ``ticket.link`` audit entry: which finding, why it qualified."""
    if audit is None:
        return
    verb = "linked existing" if kind == "ticket.link" else ("could not create" if error else "created")
    details: dict[str, Any] = {"finding_id": f.id, "rule_id": f.rule_id, "severity": f.severity,
                               "risk": f.risk, "component": f.component}
    if error:
        details["error"] = error
    audit.record(
        kind, f"{verb} {target} ticket {key or ''} for finding {f.id} ({f.rule_id} on {f.component})".replace("  ", " "),
        why=f"{f.severity} finding with risk {f.risk:g} (thresholds: severity >= {cfg.min_severity}, "
            f"risk >= {cfg.min_risk:g})",
        outcome="failed" if error else "ok", org=f.org, target=target, ref=key or f.id, details=details,
    )


def _log_report(report: TicketReport) -> None:
    if report.failed or report.ledger_errors:
        log.warning("tickets: %s (%s)", report, redact("; ".join(e for _, e in report.failed[:3])))
    else:
        log.info("tickets: %s", report)
