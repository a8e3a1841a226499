"""Monitor: alerts and where they go (a JSON-lines file, a generic webhook, Slack).

An :class:`Alert` has a severity (``info`` < ``low`` < ``medium`` < ``high`` < ``critical``),
a title, a text, the org, a dedupe ``key`` and links. Sinks come from a config dict (the
``alerts`` section of a config file)::

    {"sinks": [
        {"type": "file", "path": "/var/aicolleague/alerts.jsonl"},            # the default
        {"type": "webhook", "name": "ops", "url_env": "AIC_OPS_WEBHOOK_URL", "min_severity": "medium"},
        {"type": "slack", "url_env": "AIC_SLACK_WEBHOOK_URL", "min_severity": "high"}
    ]}

- ``file``: appends one JSON object per alert and line (default path
  ``$AICOLLEAGUE_HOME/alerts/alerts.jsonl``);
- ``webhook``: one JSON ``POST`` per alert (:meth:`Alert.to_dict`);
- ``slack``: one ``POST`` per alert with a Slack incoming-webhook payload
  ``{"text": …, "blocks": [...]}`` (also fits Mattermost / Rocket.Chat compatible hooks).

Webhook URLs are secrets: they are read from the environment variable named by ``url_env``
(a literal ``url`` is accepted for non-secret endpoints, and is treated as secret all the
same). A URL never appears in a report, a log record (httpx's request log lines included) or
an exception text: sinks are named by ``name`` and ``$url_env``.

:func:`dispatch` sends alerts to every sink whose ``min_severity`` they reach, deduplicates
them by ``key`` within the run (the most severe copy wins), retries 429 and 5xx answers and
transport errors with a short exponential backoff (``Retry-After`` honoured up to
``max_backoff``), and never raises because one sink fails: the :class:`DispatchReport` says
what was sent and what failed, per sink.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from aicolleague_pipelines.lib.audit import AuditLog, append_line
from aicolleague_pipelines.lib.retry_after import retry_after_seconds

log = logging.getLogger(__name__)

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
SEVERITY_EMOJI = {
    "info": ":information_source:",
    "low": ":large_blue_circle:",
    "medium": ":large_yellow_circle:",
    "high": ":large_orange_circle:",
    "critical": ":red_circle:",
}
DEFAULT_FILE = Path("alerts") / "alerts.jsonl"


class AlertConfigError(ValueError):
    """A sink configuration is invalid (the message never contains a URL)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _severity(value: str, what: str = "severity") -> str:
    s = str(value).strip().lower()
    if s not in SEVERITY_RANK:
        raise AlertConfigError(f"unknown {what} {value!r} (one of: {', '.join(SEVERITIES)})")
    return s


# --- secrets never leave -------------------------------------------------------------------

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def _register_secret(url: str) -> None:
    parts = {url}
    split = httpx.URL(url)
    raw_path = split.raw_path.decode("ascii", "replace")
    if len(raw_path) > 1:
        parts.add(raw_path)  # path + query (tokens live there)
        if split.query:
            parts.add(split.query.decode("ascii", "replace"))
    with _SECRETS_LOCK:
        _SECRETS.update(p for p in parts if len(p) >= 6)


def redact(text: str) -> str:
    """``text`` with every known webhook URL (or its path/query) replaced by ``<redacted>``."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


class _RedactFilter(logging.Filter):
    """Rewrites log records of httpx/httpcore (which log request URLs) without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - a broken record: leave it to logging
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return True


_FILTER = _RedactFilter()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)


# --- alerts ----------------------------------------------------------------------------------


@dataclass
class Alert:
    severity: str
    title: str
    text: str
    org: str | None = None
    #: Dedupe key: the same key twice in one dispatch is sent once. Default: org + title.
    key: str | None = None
    #: ``[{"title": ..., "url": ...}]`` (plain URL strings are accepted too).
    links: list[Any] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    #: Small JSON-able facts (metric, score, finding id …) sent with the webhook/file payloads.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.severity = _severity(self.severity)

    @property
    def dedupe_key(self) -> str:
        if self.key:
            return self.key
        raw = "\x1f".join((self.org or "", self.title))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def link_list(self) -> list[dict[str, str]]:
        out = []
        for link in self.links:
            if isinstance(link, str):
                out.append({"title": link, "url": link})
            elif isinstance(link, Mapping) and link.get("url"):
                out.append({"title": str(link.get("title") or link["url"]), "url": str(link["url"])})
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "severity": self.severity,
            "title": self.title,
            "text": self.text,
            "org": self.org,
            "key": self.dedupe_key,
            "links": self.link_list(),
            "created_at": self.created_at,
        }
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    def slack_payload(self) -> dict[str, Any]:
        org = f" — org `{self.org}`" if self.org else ""
        fallback = f"[{self.severity.upper()}] {self.title}{org}"
        header = f"{self.severity.upper()}: {self.title}"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(header, 150), "emoji": True}},
        ]
        if self.text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(self.text, 3000)}})
        links = self.link_list()
        if links:
            lines = "\n".join(f"• <{ln['url']}|{_slack_escape(ln['title'])}>" for ln in links[:10])
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(lines, 3000)}})
        ctx = [f"{SEVERITY_EMOJI[self.severity]} *{self.severity}*"]
        if self.org:
            ctx.append(f"org `{self.org}`")
        ctx.append(f"key `{self.dedupe_key}`")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(ctx)}]})
        return {"text": _cut(fallback, 3000), "blocks": blocks}


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "¦")


# --- sinks -----------------------------------------------------------------------------------


class SinkError(RuntimeError):
    """One alert could not be delivered (message already free of secrets)."""


@dataclass
class Sink:
    name: str
    min_severity: str = "info"

    type = "sink"

    def accepts(self, alert: Alert) -> bool:
        return SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.min_severity]

    def describe(self) -> str:
        return f"{self.type} sink {self.name!r}"

    def check(self) -> None:
        """Raise :class:`SinkError` when the sink cannot work at all (e.g. URL env unset)."""

    def send(self, alert: Alert, client: httpx.Client, stats: "SinkResult") -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass
class FileSink(Sink):
    path: Path = field(default_factory=lambda: default_alert_file())

    type = "file"
    _lock = threading.Lock()

    def describe(self) -> str:
        return f"file sink {self.name!r} ({self.path})"

    def send(self, alert: Alert, client: httpx.Client, stats: "SinkResult") -> None:
        line = json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True, default=str)
        stats.attempts += 1
        try:
            # One locked O_APPEND write per line: safe beside other run processes and beside
            # data retention rewriting the file (same lock).
            with self._lock:
                append_line(self.path, line)
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or type(exc).__name__}") from None


@dataclass
class WebhookSink(Sink):
    url_env: str | None = None
    url: str | None = field(default=None, repr=False)
    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 5.0
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    type = "webhook"

    def describe(self) -> str:
        where = f"${self.url_env}" if self.url_env else "url from config"
        return f"{self.type} sink {self.name!r} ({where})"

    def _url(self) -> str:
        url = os.environ.get(self.url_env, "").strip() if self.url_env else ""
        url = url or (self.url or "").strip()
        if not url:
            if self.url_env:
                raise SinkError(f"environment variable {self.url_env} is not set (the webhook URL)")
            raise SinkError("no webhook URL configured (set url_env)")
        try:
            parsed = httpx.URL(url)
        except Exception:
            raise SinkError(f"the webhook URL in {'$' + self.url_env if self.url_env else 'the config'} is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SinkError(f"the webhook URL in {'$' + self.url_env if self.url_env else 'the config'} must be http(s)")
        _register_secret(url)
        return url

    def check(self) -> None:
        self._url()

    def payload(self, alert: Alert) -> dict[str, Any]:
        return alert.to_dict()

    def send(self, alert: Alert, client: httpx.Client, stats: "SinkResult") -> None:
        url = self._url()
        body = self.payload(alert)
        attempts = max(1, int(self.retries) + 1)
        last = ""
        for attempt in range(attempts):
            stats.attempts += 1
            wait = min(self.max_backoff, self.backoff * (2**attempt))
            try:
                resp = client.post(url, json=body, headers=self.headers or None, timeout=self.timeout)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
                stats.retries += attempt < attempts - 1
            else:
                if resp.status_code < 300:
                    return
                last = f"HTTP {resp.status_code}"
                if resp.status_code != 429 and resp.status_code < 500:
                    raise SinkError(f"{last} (not retried)")
                retry_after = retry_after_seconds(resp.headers)
                if retry_after is not None:
                    wait = min(self.max_backoff, retry_after)
                stats.retries += attempt < attempts - 1
            if attempt < attempts - 1:
                time.sleep(wait)
        raise SinkError(f"{last} after {attempts} attempt(s)")


@dataclass
class SlackSink(WebhookSink):
    type = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        return alert.slack_payload()


SINK_TYPES: dict[str, type[Sink]] = {"file": FileSink, "webhook": WebhookSink, "slack": SlackSink}


def default_alert_file() -> Path:
    home = os.environ.get("AICOLLEAGUE_HOME") or ".aicolleague"
    return Path(home) / DEFAULT_FILE


def sink_from_config(cfg: Mapping[str, Any], index: int = 0) -> Sink:
    if not isinstance(cfg, Mapping):
        raise AlertConfigError(f"sink #{index + 1}: want a mapping, got {type(cfg).__name__}")
    type_ = str(cfg.get("type") or "file").lower()
    cls = SINK_TYPES.get(type_)
    if cls is None:
        raise AlertConfigError(f"sink #{index + 1}: unknown type {type_!r} (one of: {', '.join(SINK_TYPES)})")
    name = str(cfg.get("name") or (type_ if index == 0 else f"{type_}-{index + 1}"))
    min_sev = _severity(cfg.get("min_severity", "info"), f"min_severity of sink {name!r}")
    allowed = {"type", "name", "min_severity"}
    if cls is FileSink:
        allowed |= {"path"}
        kw: dict[str, Any] = {}
        if cfg.get("path"):
            kw["path"] = Path(os.path.expandvars(os.path.expanduser(str(cfg["path"]))))
    else:
        allowed |= {"url_env", "url", "retries", "backoff", "max_backoff", "timeout", "headers"}
        if not cfg.get("url_env") and not cfg.get("url"):
            raise AlertConfigError(f"{type_} sink {name!r}: set url_env (the environment variable holding the URL)")
        kw = {k: cfg[k] for k in ("url_env", "url", "retries", "backoff", "max_backoff", "timeout", "headers") if k in cfg}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise AlertConfigError(f"{type_} sink {name!r}: unknown setting(s) {', '.join(unknown)}")
    return cls(name=name, min_severity=min_sev, **kw)


def sinks_from_config(config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[Sink]:
    """Sinks from ``{"sinks": [...]}``, a bare list, or ``{name: {...}}``; none → the file sink."""
    if config is None:
        return [FileSink(name="file")]
    if isinstance(config, Mapping):
        if "sinks" in config:
            items = config["sinks"] or []
        else:
            items = [{"name": k, **v} for k, v in config.items()]
    else:
        items = list(config)
    if not isinstance(items, (list, tuple)):
        raise AlertConfigError("alerts.sinks must be a list")
    sinks = [sink_from_config(c, i) for i, c in enumerate(items)]
    names = [s.name for s in sinks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AlertConfigError(f"duplicate sink name(s): {', '.join(dup)}")
    return sinks or [FileSink(name="file")]


# --- dispatch --------------------------------------------------------------------------------


@dataclass
class SinkResult:
    name: str
    type: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # below min_severity
    attempts: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "attempts": self.attempts,
            "retries": self.retries,
            "errors": list(self.errors),
        }


@dataclass
class DispatchReport:
    alerts: int = 0  # after dedupe
    deduplicated: int = 0
    sinks: list[SinkResult] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.sinks)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sinks)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sinks)

    def sink(self, name: str) -> SinkResult:
        for s in self.sinks:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "deduplicated": self.deduplicated,
            "sent": self.sent,
            "failed": self.failed,
            "ok": self.ok,
            "sinks": [s.to_dict() for s in self.sinks],
        }

    def __str__(self) -> str:
        parts = [f"{s.name}: {s.sent} sent, {s.failed} failed" for s in self.sinks]
        return f"{self.alerts} alert(s) ({self.deduplicated} duplicate(s) dropped) — " + "; ".join(parts)


def dedupe(alerts: Iterable[Alert]) -> tuple[list[Alert], int]:
    """One alert per key (the most severe; on a tie the first), in first-seen order."""
    best: dict[str, Alert] = {}
    order: list[str] = []
    n = 0
    for a in alerts:
        n += 1
        k = a.dedupe_key
        if k not in best:
            best[k] = a
            order.append(k)
        elif SEVERITY_RANK[a.severity] > SEVERITY_RANK[best[k].severity]:
            best[k] = a
    return [best[k] for k in order], n - len(order)


def dispatch(
    alerts: Iterable[Alert],
    sinks: Sequence[Sink] | Mapping[str, Any] | None = None,
    *,
    client: httpx.Client | None = None,
    audit: AuditLog | None = None,
) -> DispatchReport:
    """Send ``alerts`` to ``sinks`` (sink objects or a config, see :func:`sinks_from_config`).

    With ``audit``, every delivery attempt (alert × sink) is recorded as an ``alert.send``
    entry: ``ok`` or ``failed`` with the error (never the URL)."""
    if sinks is None or isinstance(sinks, Mapping) or (
        isinstance(sinks, Sequence) and sinks and isinstance(sinks[0], Mapping)
    ):
        sink_list = sinks_from_config(sinks)  # type: ignore[arg-type]
    else:
        sink_list = list(sinks)
    unique, dropped = dedupe(alerts)
    report = DispatchReport(alerts=len(unique), deduplicated=dropped)
    own = client is None
    http = client or httpx.Client(follow_redirects=False)
    try:
        for sink in sink_list:
            res = SinkResult(name=sink.name, type=sink.type)
            report.sinks.append(res)
            todo = [a for a in unique if sink.accepts(a)]
            res.skipped = len(unique) - len(todo)
            if not todo:
                continue
            try:
                sink.check()
            except SinkError as exc:
                res.failed = len(todo)
                res.errors.append(redact(str(exc)))
                log.warning("alerts: %s unusable: %s", sink.describe(), redact(str(exc)))
                for alert in todo:
                    _audit_send(audit, alert, sink, redact(str(exc)))
                continue
            for alert in todo:
                error = None
                try:
                    sink.send(alert, http, res)
                except SinkError as exc:
                    error = redact(str(exc))
                except Exception as exc:  # never let one sink stop the others
                    error = f"unexpected {type(exc).__name__}"
                if error is None:
                    res.sent += 1
                else:
                    res.failed += 1
                    res.errors.append(redact(f"{alert.dedupe_key}: {error}"))
                _audit_send(audit, alert, sink, error)
            if res.failed:
                log.warning("alerts: %s: %d sent, %d failed (%s)", sink.describe(), res.sent, res.failed,
                            redact("; ".join(res.errors[:3])))
            else:
                log.info("alerts: %s: %d sent", sink.describe(), res.sent)
    finally:
        if own:
            http.close()
    return report


def _audit_send(audit: AuditLog | None, alert: Alert, sink: Sink, error: str | None) -> None:
    """One ``alert.send`` audit entry: the alert's title and why (its text), the sink by name."""
    if audit is None:
        return
    details = {"severity": alert.severity, **{k: v for k, v in alert.extra.items()
                                              if isinstance(v, (str, int, float, bool))}}
    if error:
        details["error"] = error
    audit.record(
        "alert.send", f"{alert.severity} alert to {sink.type} sink {sink.name!r}: {alert.title}",
        why=alert.text, outcome="failed" if error else "ok", org=alert.org,
        target=f"{sink.type}:{sink.name}", ref=alert.dedupe_key, details=details,
    )
