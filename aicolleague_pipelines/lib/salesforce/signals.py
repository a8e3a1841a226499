"""Runtime signals of one org: what it reports about itself while it runs.

Incremental per org and per signal (a cursor each), one query per signal when nothing
happened, read through :class:`~aicolleague_pipelines.lib.salesforce.client.SalesforceClient`
for live orgs or from recordings beside an SFDX/demo project (``.aicolleague/signals/``):

==================  ==========================================================================
signal              what is read
==================  ==========================================================================
``async_jobs``      ``AsyncApexJob`` completed since the cursor (volume; Failed / NumberOfErrors)
``tests``           ``ApexTestRunResult`` since the cursor; ``ApexTestResult`` of runs that
                    failed
``coverage``        ``ApexOrgWideCoverage`` and ``ApexCodeCoverageAggregate`` (Tooling), only
                    when new test runs were seen
``flow_interviews`` ``FlowInterview`` in ``Error`` / ``Paused`` since the cursor, mapped to the
                    Flow through the inventory's version ids (``FlowVersionView`` otherwise)
``event_logs``      ``EventLogFile`` (Event Monitoring) since the cursor; each LogFile CSV is
                    downloaded and reduced to aggregates (ApexUnexpectedException,
                    FlowExecution, ApexExecution, API, ReportExport …)
``limits``          ``/limits`` once per run (a time series)
==================  ==========================================================================

An object the org does not have (``INVALID_TYPE``: not licensed, e.g. Event Monitoring) or
the integration user may not read becomes a :class:`SignalNote`, never a failure.
``FlowExecutionErrorEvent`` is a platform event that cannot be queried (subscribers only), so
flow errors come from ``FlowInterview`` and the FlowExecution event log instead.

**Privacy.** Only aggregates and scrubbed messages leave this module: user ids, names, IP
addresses, request ids, record ids, e-mail addresses, numbers and quoted values in log lines and
error messages are never kept (:func:`scrub_message`); Apex stack traces are reduced to the
class/trigger that threw.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicolleague_pipelines.lib.salesforce.live import _rel as get_path  # rec["A"]["B"] for "A.B"
from aicolleague_pipelines.lib.salesforce.model import ExtractionError, OrgInventory

if TYPE_CHECKING:
    from aicolleague_pipelines.lib.orgs import OrgConfig
    from aicolleague_pipelines.lib.salesforce.client import SalesforceClient

SIGNALS = ("async_jobs", "tests", "coverage", "flow_interviews", "event_logs", "limits")
#: EventLogFile types read by default (others are counted only if asked for).
DEFAULT_EVENT_TYPES = ("ApexUnexpectedException", "FlowExecution", "ApexExecution", "API", "ReportExport")
#: LogFile CSVs above this size are skipped with a note (an API log of a big org is gigabytes).
MAX_LOG_BYTES = 50 * 1024 * 1024
#: First run of a live org: how far back to look (AsyncApexJob keeps about 7 days anyway).
LOOKBACK_DAYS = 7
#: Error codes meaning "this org / user cannot read that object" — a note, not a failure.
UNAVAILABLE_CODES = frozenset({
    "INVALID_TYPE", "NOT_FOUND", "INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY",
    "FUNCTIONALITY_NOT_ENABLED", "API_DISABLED_FOR_ORG", "INVALID_FIELD",
})
_TEST_JOB_TYPES = {"TestRequest", "TestWorker"}
RECORDED_SIGNALS_DIR = "signals"


class SignalUnavailable(Exception):
    """An object the org does not expose to this user (not licensed, no permission, old API)."""

    def __init__(self, obj: str, code: str, message: str) -> None:
        super().__init__(f"{obj}: {code}: {message}")
        self.obj, self.code, self.message = obj, code, message


# --- privacy -----------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"\b(?:https?|ftp)://\S+", re.I)
_IP_RE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){4,7}\b", re.I)
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”")
_PHONE_RE = re.compile(r"\+?\d[\d ().-]{6,}\d")
#: Record ids (15/18 characters), GUIDs without dashes, tokens: letters and digits mixed.
_TOKEN_RE = re.compile(r"\b[A-Za-z0-9]{12,64}\b")
_NUMBER_RE = re.compile(r"(?<![\w.])\d{2,}(?:[.,]\d+)?(?![\w])")
#: Two or more capitalised words in a row ("Sofia Alvarez", "Acme Delivery Manager"): names —
#: unless a word of Salesforce's own error vocabulary is among them ("Assertion Failed").
_NAME_RUN_RE = re.compile(r"\b[A-Z][a-z]+(?:[ '-][A-Z][a-z]+)+\b")
_ERROR_WORDS = frozenset({
    "Apex", "Assertion", "Attempt", "Class", "Delete", "Error", "Exception", "Failed", "Field", "First", "Flow",
    "Insert", "Invalid", "Limit", "List", "Many", "Maximum", "Null", "Record", "Required", "System", "Too",
    "Trigger", "Undelete", "Update", "Upsert", "Validation",
})
_NAME_AFTER_RE = re.compile(r"\b(user|contact|owner|lead|customer|by)\s+[A-Z][a-z]+\b", re.I)
_MASKS = ("<id>", "<email>", "<url>", "<ip>", "<value>", "<number>", "<n>", "<name>")


def _mask_token(m: re.Match[str]) -> str:
    tok = m.group(0)
    # A record id or token mixes letters and at least three digits; words and API names do not.
    digits = sum(c.isdigit() for c in tok)
    return "<id>" if digits >= 3 and digits < len(tok) else tok


def _mask_name(m: re.Match[str]) -> str:
    words = re.split(r"[ '-]", m.group(0))
    return m.group(0) if any(w in _ERROR_WORDS for w in words) else "<name>"


def scrub_message(text: Any, max_len: int = 240) -> str:
    """An error message with record data and personal details replaced by placeholders.

    Record ids, e-mail addresses, URLs, IP addresses, quoted values, phone-like and other
    numbers (two digits or more), and runs of capitalised words (people's and records' names)
    become ``<id>``, ``<email>``, ``<url>``, ``<ip>``, ``'<value>'``, ``<number>``, ``<n>``,
    ``<name>``; the result is one line of at most ``max_len`` characters. Exception types,
    error codes (``FIELD_CUSTOM_VALIDATION_EXCEPTION``) and API names (``Account__c``) stay.
    """
    if text is None:
        return ""
    s = re.sub(r"\s+", " ", str(text)).strip()
    s = _URL_RE.sub("<url>", s)
    s = _EMAIL_RE.sub("<email>", s)
    s = _QUOTED_RE.sub("'<value>'", s)
    s = _IP_RE.sub("<ip>", s)
    s = _TOKEN_RE.sub(_mask_token, s)
    s = _PHONE_RE.sub("<number>", s)
    s = _NUMBER_RE.sub("<n>", s)
    s = _NAME_RUN_RE.sub(_mask_name, s)
    s = _NAME_AFTER_RE.sub(lambda m: f"{m.group(1)} <name>", s)
    for mask in _MASKS:  # "<name> <name>" → "<name>"
        s = re.sub(rf"(?:{re.escape(mask)}[ ,]*){{2,}}", mask + " ", s).strip()
    return s if len(s) <= max_len else s[: max_len - 1] + "…"


_FRAME_RE = re.compile(r"\b(Class|Trigger)\.([A-Za-z_][\w.]*?)(?:: line (\d+))", re.S)


def stack_frames(trace: Any) -> list[tuple[str, str, int | None]]:
    """``(kind, dotted name, line)`` of each Apex frame of a stack trace, innermost first
    (``Class.OpportunityHelper.createRenewals: line 22, column 1`` →
    ``("Class", "OpportunityHelper.createRenewals", 22)``). Nothing else of the trace is kept."""
    out = []
    for m in _FRAME_RE.finditer(str(trace or "")):
        out.append((m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None))
    return out


# --- timestamps --------------------------------------------------------------------------------


def iso_z(value: Any) -> str | None:
    """A Salesforce timestamp in any of its spellings (``2026-11-03T17:25:00.000+0000``,
    ``...Z``, an event log's ``20261103172500.123``) as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    if value is None or value == "":
        return None
    s = str(value).strip()
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?", s)
    if m:
        return "{}-{}-{}T{}:{}:{}Z".format(*m.groups())
    s = s.replace("Z", "+00:00")
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    try:
        d = datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_before(stamp: str, days: int) -> str:
    d = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (d - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the result model --------------------------------------------------------------------------


@dataclass
class FailureGroup:
    """Failures of one kind on one component: the same (signal, component, error type,
    detail, scrubbed message) counted, with first/last seen and a count per UTC day."""

    signal: str  # apex_exception | async_job | flow_interview | flow_execution | test
    component: str  # Type:FullName key; "" when nothing attributes it (managed code …)
    error_type: str  # System.NullPointerException, BatchApex, Fail, Error …
    message: str  # scrubbed (see scrub_message)
    detail: str = ""  # test method, flow element, "line 14" …
    source: str = ""  # AsyncApexJob, EventLogFile:ApexUnexpectedException …
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    #: day → [failures that day, first failure's timestamp that day]
    days: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.signal, self.component, self.error_type, self.detail, self.message)

    def add(self, at: str, n: int = 1) -> None:
        self.count += n
        self.first_seen = min(self.first_seen or at, at)
        self.last_seen = max(self.last_seen, at)
        day = self.days.setdefault(at[:10], [0, at])
        day[0] += n
        day[1] = min(day[1], at)

    def merge(self, other: "FailureGroup") -> None:
        self.count += other.count
        self.first_seen = min(x for x in (self.first_seen, other.first_seen) if x) if (
            self.first_seen or other.first_seen) else ""
        self.last_seen = max(self.last_seen, other.last_seen)
        for day, (n, first) in other.days.items():
            mine = self.days.setdefault(day, [0, first])
            mine[0] += n
            mine[1] = min(mine[1], first)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FailureGroup":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class SignalNote:
    """Why a signal was not (fully) read: ``not_available`` (not licensed / no permission),
    ``skipped`` (by design, e.g. a log file too big) or ``error`` (the query failed)."""

    signal: str
    level: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.signal}: {self.message}" + (f" — {self.hint}" if self.hint else "")


@dataclass
class SignalsRun:
    """What one incremental run read: failure groups, per-day metric increments, limit
    snapshots, coverage, notes, the new cursors and the cost."""

    org: str
    source_kind: str  # live | recorded | none
    started_at: str
    failures: list[FailureGroup] = field(default_factory=list)
    #: day → metric → increment (async_jobs, apex_exceptions, api_requests …).
    daily: dict[str, dict[str, float]] = field(default_factory=dict)
    #: [{"at", "limits": {name: {"max", "remaining"}}}] oldest first.
    limits: list[dict[str, Any]] = field(default_factory=list)
    #: {"at", "org_wide": pct | None, "components": {key: pct}} when coverage was read.
    coverage: dict[str, Any] | None = None
    #: The newest test run seen: {"at", "methods", "failed"}.
    latest_test_run: dict[str, Any] | None = None
    #: Aggregates that are not per day (API requests per API type, exception categories …).
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[SignalNote] = field(default_factory=list)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    queries: int = 0
    downloads: int = 0
    api_calls: int = 0
    duration_s: float = 0.0
    #: Until when the signals are known (a live run: its start; a recording: its end).
    covered_until: str | None = None

    def bump(self, at: str | None, metric: str, n: float = 1.0) -> None:
        if at:
            day = self.daily.setdefault(at[:10], {})
            day[metric] = day.get(metric, 0.0) + n

    def failure_count(self) -> int:
        return sum(g.count for g in self.failures)

    def counts(self) -> dict[str, int]:
        """Failures per signal."""
        c: Counter[str] = Counter()
        for g in self.failures:
            c[g.signal] += g.count
        return dict(sorted(c.items()))


class _Groups:
    def __init__(self) -> None:
        self.by_key: dict[tuple, FailureGroup] = {}

    def add(self, at: str | None, n: int = 1, **kw: Any) -> None:
        if not at:
            return
        g = FailureGroup(**kw)
        g = self.by_key.setdefault(g.key, g)
        g.add(at, n)


# --- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cond:
    field: str
    op: str  # = != > >= < <= IN
    value: Any


def soql(obj: str, fields: Iterable[str], where: Iterable[Cond] = (), order_by: str | None = None) -> str:
    """A SOQL statement; datetimes (``YYYY-MM-DDTHH:MM:SSZ``) unquoted, strings escaped."""

    def lit(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        s = str(v)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", s):
            return s
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    parts = [f"SELECT {', '.join(fields)} FROM {obj}"]
    conds = []
    for c in where:
        if c.op == "IN":
            conds.append(f"{c.field} IN ({', '.join(lit(v) for v in c.value)})")
        else:
            conds.append(f"{c.field} {c.op} {lit(c.value)}")
    if conds:
        parts.append("WHERE " + " AND ".join(conds))
    if order_by:
        parts.append(f"ORDER BY {order_by}")
    return " ".join(parts)


class LiveSource:
    """Queries and downloads through the org's :class:`SalesforceClient`."""

    kind = "live"

    def __init__(self, client: "SalesforceClient", *, now: str | None = None,
                 lookback_days: int = LOOKBACK_DAYS) -> None:
        self.client = client
        self.now = now or utc_now()
        self.lookback_days = lookback_days
        self.queries = 0
        self.downloads = 0
        self._calls0 = int(client.stats.get("api_calls", 0))

    @property
    def api_calls(self) -> int:
        return int(self.client.stats.get("api_calls", 0)) - self._calls0

    def default_since(self) -> str | None:
        """Where a signal without a cursor starts (the first run reads ``lookback_days``)."""
        return _days_before(self.now, self.lookback_days)

    def query(self, obj: str, fields: list[str], where: list[Cond], *, tooling: bool = False,
              order_by: str | None = None) -> list[dict[str, Any]]:
        from aicolleague_pipelines.lib.salesforce.client import SalesforceAPIError

        text = soql(obj, fields, where, order_by)
        self.queries += 1
        what = f"{'tooling' if tooling else 'rest'}:{obj}"
        try:
            if tooling:
                return self.client.tooling_query_all(text, what=what)
            return self.client.query_all(text, what=what)
        except SalesforceAPIError as exc:
            if (exc.error_code or "") in UNAVAILABLE_CODES or exc.status in (403, 404):
                raise SignalUnavailable(obj, exc.error_code or f"HTTP {exc.status}", exc.problem) from None
            raise

    def log_file(self, rec: dict[str, Any]) -> bytes:
        self.downloads += 1
        rid = str(rec.get("Id") or "")
        if not re.fullmatch(r"\w{15,18}", rid):
            raise ValueError(f"not an EventLogFile id: {rid!r}")
        return self.client.download(f"sobjects/EventLogFile/{rid}/LogFile", what=f"EventLogFile:{rid}")

    def limit_snapshots(self, since: str | None) -> list[dict[str, Any]]:
        from aicolleague_pipelines.lib.salesforce.client import SalesforceAPIError

        self.queries += 1
        try:
            raw = self.client.limits()
        except SalesforceAPIError as exc:
            if exc.status in (403, 404) or (exc.error_code or "") in UNAVAILABLE_CODES:
                raise SignalUnavailable("limits", exc.error_code or f"HTTP {exc.status}", exc.problem) from None
            raise
        return [{"at": self.now, "limits": normalise_limits(raw)}]


class RecordedSource:
    """Recorded API answers beside an SFDX/demo project: ``<Object>.json`` (the records a query
    returns), ``EventLogFile/<Id>.csv``, ``limits.json`` (a list of ``{"at", "limits"}``) and
    ``unavailable.json`` (``{object: "INVALID_TYPE: message"}`` — what the org cannot serve).
    The same conditions as the live queries are applied, so cursors behave identically."""

    kind = "recorded"

    def __init__(self, folder: Path, org: str) -> None:
        self.folder = folder
        self.org = org
        self.queries = 0
        self.downloads = 0
        self.api_calls = 0
        self.now = utc_now()
        raw = self._json("unavailable.json", default={})
        self.unavailable = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _json(self, name: str, default: Any = None) -> Any:
        path = self.folder / name
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ExtractionError(self.org, f".aicolleague/{RECORDED_SIGNALS_DIR}/{name}",
                                  f"recorded signals are malformed: {exc}",
                                  "fix or delete the file (JSON, as the API returns it)") from None

    def default_since(self) -> str | None:
        return None  # a recording is read whole the first time

    def _unavailable(self, obj: str) -> None:
        if obj in self.unavailable:
            code, _, message = self.unavailable[obj].partition(":")
            raise SignalUnavailable(obj, code.strip(), message.strip())

    def query(self, obj: str, fields: list[str], where: list[Cond], *, tooling: bool = False,
              order_by: str | None = None) -> list[dict[str, Any]]:
        self.queries += 1
        self._unavailable(obj)
        rows = self._json(f"{obj}.json")
        if rows is None:
            raise SignalUnavailable(obj, "NOT_RECORDED", f"no recording of {obj}")
        if not isinstance(rows, list):
            raise ExtractionError(self.org, f".aicolleague/{RECORDED_SIGNALS_DIR}/{obj}.json",
                                  "expected a JSON list of records", "record the query's records array")
        out = [copy.deepcopy(r) for r in rows if isinstance(r, dict) and all(_holds(r, c) for c in where)]
        if order_by:
            out.sort(key=lambda r: iso_z(get_path(r, order_by)) or str(get_path(r, order_by) or ""))
        return out

    def log_file(self, rec: dict[str, Any]) -> bytes:
        self.downloads += 1
        rid = str(rec.get("Id") or "")
        path = self.folder / "EventLogFile" / f"{rid}.csv"
        if not re.fullmatch(r"\w{15,18}", rid) or not path.is_file():
            raise SignalUnavailable("EventLogFile", "NOT_RECORDED", f"no recorded LogFile for {rid}")
        return path.read_bytes()

    def limit_snapshots(self, since: str | None) -> list[dict[str, Any]]:
        self.queries += 1
        self._unavailable("limits")
        snaps = self._json("limits.json", default=None)
        if snaps is None:
            raise SignalUnavailable("limits", "NOT_RECORDED", "no recording of /limits")
        out = []
        for s in snaps if isinstance(snaps, list) else []:
            at = iso_z(s.get("at")) if isinstance(s, dict) else None
            if at and (since is None or at > since):
                out.append({"at": at, "limits": normalise_limits(s.get("limits") or {})})
        return sorted(out, key=lambda s: s["at"])


def _holds(rec: dict[str, Any], c: Cond) -> bool:
    v = get_path(rec, c.field)
    if c.op == "IN":
        return v in c.value
    if v is None:
        return c.op == "!=" and c.value is not None
    a, b = v, c.value
    ta, tb = iso_z(a) if isinstance(a, str) else None, iso_z(b) if isinstance(b, str) else None
    if ta and tb:
        a, b = ta, tb
    try:
        return {"=": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[c.op]
    except TypeError:
        return False


def normalise_limits(raw: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``/limits`` as ``{name: {"max", "remaining"}}`` (numeric entries only)."""
    out: dict[str, dict[str, float]] = {}
    for name, v in (raw or {}).items():
        if isinstance(v, dict) and isinstance(v.get("Max", v.get("max")), (int, float)):
            mx = float(v.get("Max", v.get("max")))
            rem = v.get("Remaining", v.get("remaining"))
            out[str(name)] = {"max": mx, "remaining": float(rem) if isinstance(rem, (int, float)) else mx}
    return dict(sorted(out.items()))


# --- component mapping -------------------------------------------------------------------------


class Components:
    """Maps what the APIs name (class names, stack frames, flow version ids) to graph keys."""

    def __init__(self, inventory: OrgInventory | None) -> None:
        self.keys: set[str] = set()
        self.flow_versions: dict[str, str] = {}
        for c in inventory.components if inventory else []:
            self.keys.add(c.key)
            if c.type == "Flow":
                for v in c.attributes.get("versions") or []:
                    if v.get("id"):
                        self.flow_versions[str(v["id"])[:15]] = c.key

    def apex_class(self, name: Any) -> str:
        return f"ApexClass:{name}" if name else ""

    def from_stack(self, trace: Any) -> tuple[str, str]:
        """(component key, "line N") of the innermost frame of our own code (else any frame)."""
        frames = stack_frames(trace)
        best: tuple[str, str] | None = None
        for kind, dotted, line in frames:
            parts = dotted.split(".")
            if kind == "Trigger":
                cands = [f"ApexTrigger:{parts[0]}"]
            else:
                cands = [f"ApexClass:{parts[0]}"]
                if len(parts) > 1:  # a namespaced class: Class.ns.Name.method
                    cands.append(f"ApexClass:{parts[0]}__{parts[1]}")
            where = f"line {line}" if line else ""
            for key in cands:
                if key in self.keys:
                    return key, where
            best = best or (cands[0], where)
        return best or ("", "")

    def flow_version(self, vid: Any) -> str | None:
        return self.flow_versions.get(str(vid or "")[:15])


# --- extraction --------------------------------------------------------------------------------


def _incremental(src: Any, run: SignalsRun, signal: str, cursors: dict[str, dict[str, Any]], obj: str,
                 fields: list[str], date_field: str, where: list[Cond], *, tooling: bool = False
                 ) -> list[dict[str, Any]]:
    """Rows of ``obj`` newer than the signal's cursor (one query), the cursor moved forward.

    The filter is ``>=`` the cursor's second and the rows already seen at that second are
    dropped by Id: Salesforce datetimes have one-second resolution, so ``>`` could miss a row
    committed in the same second as the newest one read."""
    cur = cursors.get(signal) or {}
    since = cur.get("at") or src.default_since()
    conds = ([Cond(date_field, ">=", since)] if since else []) + where
    rows = src.query(obj, fields, conds, tooling=tooling, order_by=date_field)
    seen = set(cur.get("ids") or ())
    new, newest, newest_ids = [], cur.get("at"), set(seen)
    for r in rows:
        at = iso_z(get_path(r, date_field))
        if at is None or (cur.get("at") and (at < cur["at"] or (at == cur["at"] and r.get("Id") in seen))):
            continue
        new.append(r)
        if newest is None or at > newest:
            newest, newest_ids = at, set()
        if at == newest:
            newest_ids.add(str(r.get("Id")))
    run.cursors[signal] = {"at": newest, "ids": sorted(i for i in newest_ids if i and i != "None")}
    run.rows[signal] = run.rows.get(signal, 0) + len(new)
    return new


def _async_jobs(src: Any, run: SignalsRun, cursors: dict, groups: _Groups, comps: Components) -> None:
    rows = _incremental(src, run, "async_jobs", cursors, "AsyncApexJob", [
        "Id", "ApexClass.Name", "JobType", "Status", "ExtendedStatus", "NumberOfErrors", "JobItemsProcessed",
        "TotalJobItems", "MethodName", "CompletedDate"], "CompletedDate",
        [Cond("Status", "IN", ["Completed", "Failed", "Aborted"])])
    for r in rows:
        at = iso_z(r.get("CompletedDate"))
        job_type = str(r.get("JobType") or "")
        if job_type in _TEST_JOB_TYPES:
            continue
        run.bump(at, "async_jobs")
        errors = int(r.get("NumberOfErrors") or 0)
        if r.get("Status") == "Failed" or errors > 0:
            run.bump(at, "async_failures")
            status = r.get("ExtendedStatus") or f"job {str(r.get('Status') or '').lower()}"
            groups.add(at, max(1, errors) if r.get("Status") != "Failed" else 1, signal="async_job",
                       component=comps.apex_class(get_path(r, "ApexClass.Name")), error_type=job_type or "async",
                       message=scrub_message(status), detail=str(r.get("MethodName") or ""), source="AsyncApexJob")


def _tests(src: Any, run: SignalsRun, cursors: dict, groups: _Groups) -> bool:
    """Test runs since the cursor; the results of runs with failures. True when runs were seen."""
    runs = _incremental(src, run, "tests", cursors, "ApexTestRunResult", [
        "Id", "AsyncApexJobId", "Status", "StartTime", "EndTime", "MethodsCompleted", "MethodsFailed"],
        "EndTime", [])
    failed_runs = []
    for r in runs:
        at = iso_z(r.get("EndTime"))
        run.bump(at, "test_runs")
        run.bump(at, "test_methods", float(r.get("MethodsCompleted") or 0))
        run.bump(at, "test_failures", float(r.get("MethodsFailed") or 0))
        if int(r.get("MethodsFailed") or 0) > 0:
            failed_runs.append(r)
        if at and (run.latest_test_run is None or at >= run.latest_test_run["at"]):
            run.latest_test_run = {"at": at, "start": iso_z(r.get("StartTime")) or at,
                                   "methods": int(r.get("MethodsCompleted") or 0),
                                   "failed": int(r.get("MethodsFailed") or 0)}
    for i in range(0, len(failed_runs), 50):
        ids = [str(r["Id"]) for r in failed_runs[i:i + 50]]
        for t in src.query("ApexTestResult", ["Id", "ApexClass.Name", "MethodName", "Outcome", "Message",
                                              "StackTrace", "TestTimestamp", "ApexTestRunResultId"],
                           [Cond("ApexTestRunResultId", "IN", ids)]):
            if t.get("Outcome") in ("Pass", "Skip", None):
                continue
            groups.add(iso_z(t.get("TestTimestamp")), signal="test",
                       component=f"ApexClass:{get_path(t, 'ApexClass.Name')}", error_type=str(t["Outcome"]),
                       message=scrub_message(t.get("Message")), detail=str(t.get("MethodName") or ""),
                       source="ApexTestResult")
    return bool(runs)


def _coverage(src: Any, run: SignalsRun) -> None:
    org_wide = src.query("ApexOrgWideCoverage", ["PercentCovered"], [], tooling=True)
    per = src.query("ApexCodeCoverageAggregate", ["ApexClassOrTriggerId", "ApexClassOrTrigger.Name",
                                                  "NumLinesCovered", "NumLinesUncovered"], [], tooling=True)
    comps: dict[str, float] = {}
    for r in per:
        cov, unc = int(r.get("NumLinesCovered") or 0), int(r.get("NumLinesUncovered") or 0)
        name = get_path(r, "ApexClassOrTrigger.Name")
        if not name or cov + unc == 0:
            continue
        type_ = "ApexTrigger" if str(r.get("ApexClassOrTriggerId") or "").startswith("01q") else "ApexClass"
        comps[f"{type_}:{name}"] = round(100.0 * cov / (cov + unc), 1)
    pct = org_wide[0].get("PercentCovered") if org_wide else None
    run.coverage = {"at": run.started_at, "org_wide": float(pct) if pct is not None else None,
                    "components": dict(sorted(comps.items()))}
    run.rows["coverage"] = len(per) + len(org_wide)


def _flow_interviews(src: Any, run: SignalsRun, cursors: dict, groups: _Groups, comps: Components,
                     api_version: float) -> None:
    fields = ["Id", "InterviewStatus", "CurrentElement", "FlowVersionViewId", "CreatedDate", "LastModifiedDate"]
    if api_version >= 62.0:
        fields.append("Error")  # the failure's message, from API 62.0
    rows = _incremental(src, run, "flow_interviews", cursors, "FlowInterview", fields, "LastModifiedDate",
                        [Cond("InterviewStatus", "IN", ["Error", "Paused"])])
    unknown = sorted({str(r.get("FlowVersionViewId")) for r in rows
                      if r.get("FlowVersionViewId") and comps.flow_version(r["FlowVersionViewId"]) is None})
    for i in range(0, len(unknown), 100):  # versions newer than the inventory
        try:
            views = src.query("FlowVersionView", ["DurableId", "VersionNumber", "FlowDefinitionView.ApiName"],
                              [Cond("DurableId", "IN", unknown[i:i + 100])])
        except SignalUnavailable:
            break
        for v in views:
            if get_path(v, "FlowDefinitionView.ApiName"):
                comps.flow_versions[str(v["DurableId"])[:15]] = f"Flow:{get_path(v, 'FlowDefinitionView.ApiName')}"
    for r in rows:
        at = iso_z(r.get("LastModifiedDate"))
        if r.get("InterviewStatus") == "Paused":
            run.bump(at, "flow_interviews_paused")
            continue
        run.bump(at, "flow_interview_errors")
        element = str(r.get("CurrentElement") or "")
        message = scrub_message(r.get("Error")) or (f"interview failed at element {element}" if element
                                                    else "interview failed")
        groups.add(at, signal="flow_interview", component=comps.flow_version(r.get("FlowVersionViewId")) or "",
                   error_type="Error", message=message, detail=element, source="FlowInterview")


#: LogFile columns read per event type; every other column (USER_ID, CLIENT_IP, REQUEST_ID,
#: SESSION_KEY, URI …) is never looked at.
def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _row_time(row: dict[str, str], fallback: str | None) -> str | None:
    return iso_z(row.get("TIMESTAMP_DERIVED")) or iso_z(row.get("TIMESTAMP")) or fallback


def _parse_log(event_type: str, text: str, fallback: str | None, run: SignalsRun, groups: _Groups,
               comps: Components) -> int:
    """Aggregate one LogFile CSV; returns its row count."""
    reader = csv.DictReader(io.StringIO(text))
    n = 0
    by_type = run.breakdown.setdefault(f"event_log:{event_type}", {})
    for row in reader:
        n += 1
        at = _row_time(row, fallback)
        if event_type == "ApexUnexpectedException":
            run.bump(at, "apex_exceptions")
            key, where = comps.from_stack(row.get("STACK_TRACE"))
            etype = str(row.get("EXCEPTION_TYPE") or "Exception")
            category = str(row.get("EXCEPTION_CATEGORY") or etype)
            by_type[category] = by_type.get(category, 0) + 1
            groups.add(at, signal="apex_exception", component=key, error_type=etype,
                       message=scrub_message(row.get("EXCEPTION_MESSAGE")), detail=where,
                       source="EventLogFile:ApexUnexpectedException")
        elif event_type == "FlowExecution":
            interviews = _num(row.get("NUMBER_OF_INTERVIEWS")) or 1.0
            errors = _num(row.get("NUMBER_OF_ERRORS"))
            run.bump(at, "flow_executions", interviews)
            if errors > 0:
                run.bump(at, "flow_execution_errors", errors)
                key = comps.flow_version(row.get("FLOW_VERSION_ID")) or ""
                groups.add(at, int(errors), signal="flow_execution", component=key, error_type="FlowError",
                           message="flow interviews ended in error", source="EventLogFile:FlowExecution")
        elif event_type == "ApexExecution":
            run.bump(at, "apex_executions")
            run.bump(at, "apex_cpu_ms", _num(row.get("CPU_TIME")))
            quiddity = str(row.get("QUIDDITY") or "?")
            by_type[quiddity] = by_type.get(quiddity, 0) + 1
        elif event_type == "API":
            run.bump(at, "api_requests")
            api = str(row.get("API_TYPE") or "?")
            by_type[api] = by_type.get(api, 0) + 1
        elif event_type == "ReportExport":
            run.bump(at, "report_exports")
        else:
            run.bump(at, f"event_log:{event_type}")
    return n


def _event_logs(src: Any, run: SignalsRun, cursors: dict, groups: _Groups, comps: Components,
                event_types: tuple[str, ...], interval: str, max_log_bytes: int) -> None:
    rows = _incremental(src, run, "event_logs", cursors, "EventLogFile", [
        "Id", "EventType", "LogDate", "Interval", "LogFileLength", "CreatedDate"], "CreatedDate",
        [Cond("EventType", "IN", list(event_types)), Cond("Interval", "=", interval)])
    lines = 0
    for r in rows:
        size = _num(r.get("LogFileLength"))
        if size > max_log_bytes:
            run.notes.append(SignalNote("event_logs", "skipped",
                                        f"{r.get('EventType')} log of {str(r.get('LogDate'))[:10]} is "
                                        f"{size / 1e6:.0f} MB, over the {max_log_bytes / 1e6:.0f} MB cap",
                                        "raise max_log_bytes or read that event type hourly"))
            continue
        try:
            raw = src.log_file(r)
        except SignalUnavailable as exc:
            run.notes.append(SignalNote("event_logs", "error", exc.message))
            continue
        text = raw.decode("utf-8-sig", errors="replace")
        lines += _parse_log(str(r.get("EventType")), text, iso_z(r.get("LogDate")), run, groups, comps)
    run.rows["event_log_lines"] = run.rows.get("event_log_lines", 0) + lines


def _limits(src: Any, run: SignalsRun, cursors: dict) -> None:
    since = (cursors.get("limits") or {}).get("at")
    snaps = src.limit_snapshots(since)
    run.limits = snaps
    run.rows["limits"] = len(snaps)
    newest = max((s["at"] for s in snaps), default=since)
    run.cursors["limits"] = {"at": newest, "ids": []}


def read_signals(src: Any, org: str, inventory: OrgInventory | None, cursors: dict[str, dict[str, Any]], *,
                 api_version: str | float | None = None, event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES,
                 interval: str = "Daily", max_log_bytes: int = MAX_LOG_BYTES,
                 signals: Iterable[str] = SIGNALS) -> SignalsRun:
    """One incremental run over ``src`` (a :class:`LiveSource` or :class:`RecordedSource`).

    ``cursors``: the previous run's :attr:`SignalsRun.cursors` (``{}`` the first time). A
    signal the org cannot serve becomes a note; auth and availability errors of the org
    itself (:class:`~aicolleague_pipelines.lib.salesforce.model.ExtractionError`) propagate.
    """
    from aicolleague_pipelines.lib.salesforce.client import SalesforceAPIError

    started = time.perf_counter()
    run = SignalsRun(org=org, source_kind=src.kind, started_at=src.now)
    groups = _Groups()
    comps = Components(inventory)
    wanted = set(signals)
    version = float(api_version or (inventory.api_version if inventory else None) or 62.0)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("async_jobs", lambda: _async_jobs(src, run, cursors, groups, comps)),
        ("tests", lambda: _tests(src, run, cursors, groups)),
        ("flow_interviews", lambda: _flow_interviews(src, run, cursors, groups, comps, version)),
        ("event_logs", lambda: _event_logs(src, run, cursors, groups, comps, tuple(event_types), interval,
                                           max_log_bytes)),
        ("limits", lambda: _limits(src, run, cursors)),
    ]
    tests_seen = False
    for name, step in steps:
        if name not in wanted:
            if name in cursors:
                run.cursors[name] = cursors[name]
            continue
        try:
            result = step()
            tests_seen = tests_seen or (name == "tests" and bool(result))
        except SignalUnavailable as exc:
            run.notes.append(_unavailable_note(name, exc))
            _keep_cursor(run, cursors, name)
        except SalesforceAPIError as exc:  # a query this org refuses; auth/availability errors propagate
            run.notes.append(SignalNote(name, "error", exc.problem, exc.hint))
            _keep_cursor(run, cursors, name)
    # Coverage changes only when tests ran: read it then (and on the very first run).
    if "coverage" in wanted and (tests_seen or "coverage" not in cursors):
        try:
            _coverage(src, run)
            run.cursors["coverage"] = {"at": run.started_at, "ids": []}
        except SignalUnavailable as exc:
            run.notes.append(_unavailable_note("coverage", exc))
    elif "coverage" in cursors:
        run.cursors["coverage"] = cursors["coverage"]
    run.failures = sorted(groups.by_key.values(), key=lambda g: (-g.count, g.key))
    run.queries, run.downloads, run.api_calls = src.queries, src.downloads, src.api_calls
    run.duration_s = round(time.perf_counter() - started, 3)
    stamps = [g.last_seen for g in run.failures] + [d + "T23:59:59Z" for d in run.daily] + \
        [s["at"] for s in run.limits]
    run.covered_until = src.now if src.kind == "live" else max(stamps, default=None)
    return run


def _keep_cursor(run: SignalsRun, cursors: dict[str, dict[str, Any]], name: str) -> None:
    """A signal that failed keeps its previous cursor: the next run reads the same rows again."""
    if name in cursors:
        run.cursors[name] = cursors[name]
    else:
        run.cursors.pop(name, None)


_PERMISSION_HINTS = {
    "event_logs": "Event Monitoring (Shield or the add-on) and the View Event Log Files permission",
    "coverage": "View Setup and Configuration (Tooling API)",
    "tests": "View Setup and Configuration",
    "async_jobs": "View Setup and Configuration",
    "flow_interviews": "Run Flows or View All Data (FlowInterview)",
    "limits": "View Setup and Configuration (/limits)",
}


def _unavailable_note(signal: str, exc: SignalUnavailable) -> SignalNote:
    need = _PERMISSION_HINTS.get(signal, "the object's licence and permission")
    if exc.code == "NOT_RECORDED":
        return SignalNote(signal, "not_available", f"not recorded ({exc.message})", "")
    if exc.code == "INVALID_FIELD":
        return SignalNote(signal, "not_available", f"{exc.obj}: a field is not available at this API version "
                          f"({exc.message})", "raise api_version in orgs.yaml")
    return SignalNote(signal, "not_available", f"{exc.obj} not licensed or not visible to the integration user "
                      f"({exc.code})", f"needs {need}; the other signals are read")


def collect_signals(org: "OrgConfig", inventory: OrgInventory | None, cursors: dict[str, dict[str, Any]],
                    **kw: Any) -> SignalsRun:
    """Runtime signals of ``org`` since ``cursors``: live through the API, SFDX/demo projects
    from their recordings (``.aicolleague/signals/``; none → an empty run with a note). The
    org's ``signals:`` settings from the orgs file apply; ``kw`` overrides them."""
    kw = {**org.signals.read_kwargs(), **kw}
    lookback = kw.pop("lookback_days", LOOKBACK_DAYS)
    if org.source == "live":
        from aicolleague_pipelines.lib.salesforce.extract import live_client

        with live_client(org) as client:
            return read_signals(LiveSource(client, lookback_days=lookback), org.name, inventory, cursors,
                                api_version=org.api_version, **kw)
    from aicolleague_pipelines.lib.salesforce.extract import RECORDED_DIR

    folder = (org.path or Path(".")) / RECORDED_DIR / RECORDED_SIGNALS_DIR
    if not folder.is_dir():
        run = SignalsRun(org=org.name, source_kind="none", started_at=utc_now())
        run.notes.append(SignalNote("all", "not_available", f"no recorded signals for this {org.source} project",
                                    f"record them under {RECORDED_DIR}/{RECORDED_SIGNALS_DIR}/ or connect the "
                                    "org live"))
        run.cursors = dict(cursors)
        return run
    return read_signals(RecordedSource(folder, org.name), org.name, inventory, cursors,
                        api_version=org.api_version, **kw)


def failures_by_component(groups: Iterable[FailureGroup]) -> dict[str, int]:
    """Failure count per component key (unattributed ones under ``""``), biggest first."""
    c: defaultdict[str, int] = defaultdict(int)
    for g in groups:
        c[g.component] += g.count
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def run_markdown(run: SignalsRun, top: int = 10) -> str:
    """A short Markdown account of one run: failures per component, notes, limits, cost."""
    L = [f"**{run.org}** — runtime signals ({run.source_kind}), {run.failure_count()} new failure(s) in "
         f"{len(run.failures)} group(s); {run.queries} queries, {run.downloads} log downloads, "
         f"{run.api_calls} API calls.", ""]
    comps = failures_by_component(run.failures)
    if comps:
        L += ["| component | new failures |", "|---|---:|",
              *[f"| `{k or '(unattributed)'}` | {n} |" for k, n in list(comps.items())[:top]], ""]
    if run.notes:
        L += ["Notes:", *[f"- {n}" for n in run.notes], ""]
    if run.limits:
        latest = run.limits[-1]["limits"]
        rows = [(k, v) for k, v in latest.items() if k in ("DailyApiRequests", "DailyAsyncApexExecutions",
                                                          "DataStorageMB", "FileStorageMB")]
        if rows:
            L += ["| limit | used | max |", "|---|---:|---:|",
                  *[f"| {k} | {v['max'] - v['remaining']:g} | {v['max']:g} |" for k, v in rows], ""]
    return "\n".join(L)
