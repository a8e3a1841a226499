"""The audit log: one append-only record per automated action.

Every action the project takes on its own — a ticket created or linked, an alert sent, a fix
plan proposed, approved, rejected or checked before an action it gates, documentation
published, data pruned by retention — is recorded with **what** was done, **why**, **when**
(UTC), **by which run** (Dagster run id, job, trigger tag, partition — or the sensor that acted)
and for **which org**, plus its outcome (``ok``, ``failed``, ``refused``, ``allowed``).

Storage: JSON lines under ``<data home>/audit/``, one segment file per UTC month
(``2025-06.jsonl``). Why files and not a table: several Dagster run processes (one per org, the
multiprocess executor, sensors) append at the same time, and the embedded DuckDB store admits
one writer process only, while SQLite would need busy-retry loops; an append is instead one
``os.write`` of one complete line to a file opened ``O_APPEND`` while holding an exclusive
``flock`` — the kernel places every line at the end, whole, with no reader-visible torn line and
no lost line (``test_audit_retention`` appends from several processes at once). Files are never
rewritten: retention removes whole month segments older than the audit retention age. The
lines are plain JSON, so ``grep``/``jq`` work, and :meth:`AuditLog.entries` filters them.

Entries hold no secrets and no personal data: free text is scrubbed (registered webhook
secrets, credentials in URLs, query strings, ``token=``-like pairs, e-mail addresses), detail
values must be JSON scalars or short lists of them, and keys that name secrets are dropped.
An approver who signs with an e-mail address is recorded as a stable pseudonym
(``user:<hash>``); the approvals ledger keeps the name for those who may read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUDIT_DIR = "audit"
ENTRY_VERSION = 1
OUTCOMES = ("ok", "failed", "refused", "allowed")
#: The kinds of action recorded (``--kind alert`` matches every ``alert.*``).
KINDS = (
    "alert.send",
    "ticket.create",
    "ticket.link",
    "plan.propose",
    "plan.approve",
    "plan.reject",
    "plan.gate",
    "docs.publish",
    "retention.prune",
)
_SEGMENT_RE = re.compile(r"^(\d{4})-(\d{2})\.jsonl$")
_MAX_TEXT = 400
_MAX_LIST = 50


class AuditError(RuntimeError):
    """The audit log cannot be written or a query is malformed (message says what to do)."""


# --- scrubbing: no secrets, no personal data ---------------------------------------------------
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_URL_RE = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s?#@]*@)?([^/\s?#]*)([^\s?#]*)(\?[^\s#]*)?(#\S*)?", re.I)
_SECRET_PAIR_RE = re.compile(
    r"(?i)\b(access[_-]?token|api[_-]?key|api[_-]?token|token|secret|client[_-]?secret|password|passwd|"
    r"session[_-]?id|sig|signature|authorization)\b(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_KEY_RE = re.compile(r"(?i)(password|passwd|secret|token|authorization|api[_-]?key|credential|cookie)")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def scrub(text: Any, limit: int = _MAX_TEXT) -> str:
    """``text`` without secrets or e-mail addresses, control characters removed, cut to ``limit``."""
    s = "" if text is None else str(text)
    try:  # webhook URLs / ticket credentials registered by the clients that read them
        from aicolleague_pipelines.lib.agents.alerts import redact

        s = redact(s)
    except ImportError:  # pragma: no cover - the agents package is part of the project
        pass
    s = _URL_RE.sub(lambda m: f"{m.group(1)}{m.group(3)}{m.group(4)}", s)  # no user:pw@, ?query, #frag
    s = _SECRET_PAIR_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", s)
    s = _BEARER_RE.sub(lambda m: f"{m.group(1)} <redacted>", s)
    s = _EMAIL_RE.sub("<email>", s)
    s = _CTRL_RE.sub(" ", s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def pseudonym(actor: str | None) -> str:
    """An actor safe to record: names/handles as given, e-mail addresses as ``user:<hash>``."""
    a = (actor or "").strip()
    if not a:
        return ""
    if _EMAIL_RE.search(a):
        return "user:" + hashlib.sha256(a.lower().encode()).hexdigest()[:12]
    return scrub(a, 80)


def _clean_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (details or {}).items():
        key = str(k)
        if _SECRET_KEY_RE.search(key):
            continue  # a value under a secret-sounding key is never recorded
        cleaned = _clean_value(v)
        if cleaned is not _DROP:
            out[key] = cleaned
    return out


_DROP = object()


def _clean_value(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return scrub(v)
    if isinstance(v, (list, tuple, set, frozenset)) and depth == 0:
        items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else list(v)
        vals = [c for c in (_clean_value(i, 1) for i in items[:_MAX_LIST]) if c is not _DROP]
        if len(items) > _MAX_LIST:
            vals.append(f"… {len(items) - _MAX_LIST} more")
        return vals
    if isinstance(v, Mapping) and depth == 0:
        return _clean_details(v)
    return _DROP  # deeper structures or objects: not audit material


# --- entries ----------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive → UTC); None when unparseable."""
    try:
        t = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunInfo:
    """Which run (or sensor) acted: filled from the Dagster context by the ``defs`` wrappers."""

    run_id: str | None = None
    job: str | None = None
    #: Why the run exists: the ``aicolleague/trigger`` tag, ``schedule:<name>``,
    #: ``sensor:<name>``, ``backfill:<id>`` or ``manual``.
    trigger: str | None = None
    partition: str | None = None
    #: For actions taken by a sensor tick rather than a run.
    sensor: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class AuditEntry:
    kind: str
    what: str
    at: str
    outcome: str = "ok"
    org: str | None = None
    why: str = ""
    #: The system acted on, by name (``jira``, ``webhook:pager``, ``confluence:DOCS``,
    #: ``graph-store``) — never a URL.
    target: str = ""
    #: The identifier on that system (ticket key, plan id, alert key, page count …).
    ref: str = ""
    actor: str = "aicolleague"
    run: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    v: int = ENTRY_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": self.v, "id": self.id, "at": self.at, "kind": self.kind, "outcome": self.outcome,
            "org": self.org, "what": self.what, "why": self.why, "target": self.target,
            "ref": self.ref, "actor": self.actor, "run": dict(self.run), "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AuditEntry":
        return cls(
            kind=str(d.get("kind") or ""), what=str(d.get("what") or ""), at=str(d.get("at") or ""),
            outcome=str(d.get("outcome") or "ok"), org=d.get("org"), why=str(d.get("why") or ""),
            target=str(d.get("target") or ""), ref=str(d.get("ref") or ""),
            actor=str(d.get("actor") or ""), run=dict(d.get("run") or {}),
            details=dict(d.get("details") or {}), id=str(d.get("id") or ""), v=int(d.get("v") or 1),
        )

    @property
    def time(self) -> datetime | None:
        return parse_time(self.at)

    def matches_kind(self, kind: str | None) -> bool:
        return not kind or self.kind == kind or self.kind.startswith(kind.rstrip(".") + ".")


# --- one-line appends that are safe across processes -----------------------------------------
@contextlib.contextmanager
def locked_file(path: Path, flags: int = os.O_RDWR) -> Iterator[int]:
    """An fd of ``path`` (created if missing) under an exclusive ``flock`` on *that* file.

    If another process replaced or removed ``path`` while we waited for the lock, the fd
    points at a dead inode: reopen, so a line is never appended to a file nobody will read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        fd = os.open(path, flags | os.O_CREAT, 0o640)
        try:
            _flock(fd)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # closing releases the lock
    raise AuditError(f"{path}: replaced concurrently 100 times in a row; giving up")  # pragma: no cover


def _flock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: O_APPEND alone
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def append_line(path: Path, line: str, *, fsync: bool = False) -> None:
    """Append one line (a newline is added) to ``path`` in one ``write`` under the file's lock."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    with locked_file(path, os.O_WRONLY | os.O_APPEND) as fd:
        view = memoryview(data)
        while view:  # a regular file takes the whole buffer; loop only for the pathological case
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)


def rewrite_lines(path: Path, keep: Callable[[str], bool]) -> tuple[int, int]:
    """Rewrite ``path`` keeping the lines ``keep`` accepts, atomically (temp file + replace) and
    under the same lock as :func:`append_line`, so no concurrent append is lost.

    Returns (lines kept, lines dropped); a missing file is (0, 0) and is not created.
    """
    if not path.is_file():
        return 0, 0
    with locked_file(path, os.O_RDONLY) as fd:
        with os.fdopen(os.dup(fd), "rb") as fh:
            lines = fh.read().decode("utf-8", "replace").splitlines()
        kept = [ln for ln in lines if not ln.strip() or keep(ln)]
        dropped = len(lines) - len(kept)
        if dropped:
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                tmp.write_text("".join(ln + "\n" for ln in kept if ln.strip()), encoding="utf-8")
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    return len(kept), dropped


# --- the log ------------------------------------------------------------------------------------
def segment_name(t: datetime) -> str:
    t = t.astimezone(timezone.utc)
    return f"{t.year:04d}-{t.month:02d}.jsonl"


def _segment_month(path: Path) -> tuple[datetime, datetime] | None:
    """[start, end) of the month a segment file covers."""
    m = _SEGMENT_RE.match(path.name)
    if not m:
        return None
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=timezone.utc)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


class AuditLog:
    """The audit log under ``directory`` (``<data home>/audit``), optionally bound to a run.

    ``AuditLog.for_home(home).bind(run=RunInfo(...), org="acme")`` gives a log whose
    :meth:`record` stamps every entry with that run and org. Writing never raises (the action
    an entry describes has already happened): an entry that cannot be written is logged at
    ERROR level, passed to ``on_error`` (e.g. the Dagster run log) and kept in
    :attr:`write_errors`.
    """

    def __init__(
        self, directory: Path | str, *, run: RunInfo | None = None, org: str | None = None,
        fsync: bool = False, on_error: Callable[[str], Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.run = run or RunInfo()
        self.org = org
        self.fsync = fsync
        self.on_error = on_error
        self.write_errors: list[str] = []
        #: Lines that were not valid JSON when read (never expected; counted, not fatal).
        self.unreadable = 0

    @classmethod
    def for_home(cls, home: Path | str, **kwargs: Any) -> "AuditLog":
        return cls(Path(home) / AUDIT_DIR, **kwargs)

    def bind(self, *, run: RunInfo | None = None, org: str | None = None) -> "AuditLog":
        """A log writing to the same place with ``run``/``org`` as the defaults of its entries."""
        out = AuditLog(self.directory, run=run or self.run, org=org if org is not None else self.org,
                       fsync=self.fsync, on_error=self.on_error)
        out.write_errors = self.write_errors  # one error list per run, whoever wrote
        return out

    def __repr__(self) -> str:
        return f"AuditLog({str(self.directory)!r}, run={self.run.run_id!r}, org={self.org!r})"

    # --- writing -----------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        what: str,
        *,
        why: str = "",
        outcome: str = "ok",
        org: str | None = None,
        target: str = "",
        ref: str = "",
        actor: str = "aicolleague",
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry (scrubbed; see the module docstring) and return it."""
        if outcome not in OUTCOMES:
            raise AuditError(f"audit outcome must be one of {OUTCOMES}, got {outcome!r}")
        if not kind or not re.fullmatch(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+", kind):
            raise AuditError(f"audit kind must look like 'area.action', got {kind!r}")
        t = at or _now()
        entry = AuditEntry(
            kind=kind, what=scrub(what), at=_iso(t), outcome=outcome,
            org=org if org is not None else self.org, why=scrub(why), target=scrub(target, 120),
            ref=scrub(ref, 200), actor=pseudonym(actor) or "aicolleague", run=self.run.to_dict(),
            details=_clean_details(details), id=uuid.uuid4().hex,
        )
        line = json.dumps(entry.to_dict(), ensure_ascii=False, sort_keys=True, default=str)
        path = self.directory / segment_name(t)
        try:
            append_line(path, line, fsync=self.fsync)
        except OSError as exc:
            msg = f"cannot append to the audit log {path}: {exc.strerror or type(exc).__name__}"
            self.write_errors.append(msg)
            log.error("audit: %s — lost entry %s %s (%s)", msg, kind, entry.ref, entry.what)
            if self.on_error is not None:
                self.on_error(f"audit: {msg} — lost entry {kind} {entry.ref}: {entry.what}")
        return entry

    # --- reading -----------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Month segment files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _SEGMENT_RE.match(p.name))

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: str | None = None,
        kind: str | None = None,
        outcome: str | None = None,
        run_id: str | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, oldest first. ``kind`` may be a prefix
        (``alert`` → ``alert.*``). Only the month segments overlapping [since, until) are read."""
        out: list[AuditEntry] = []
        for path in self.segments():
            span = _segment_month(path)
            if span and ((since and span[1] <= since) or (until and span[0] >= until)):
                continue
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise AuditError(f"cannot read audit segment {path}: {exc.strerror}") from exc
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    e = AuditEntry.from_dict(json.loads(line))
                except (ValueError, TypeError, AttributeError):
                    self.unreadable += 1
                    continue
                t = e.time
                if since and (t is None or t < since):
                    continue
                if until and (t is None or t >= until):
                    continue
                if org and e.org != org:
                    continue
                if not e.matches_kind(kind):
                    continue
                if outcome and e.outcome != outcome:
                    continue
                if run_id and e.run.get("run_id") != run_id:
                    continue
                out.append(e)
        out.sort(key=lambda e: e.at)
        return out

    # --- retention ---------------------------------------------------------------------------
    def prune_segments(self, cutoff: datetime, *, dry_run: bool = False) -> list[tuple[Path, int]]:
        """Remove month segments that end at or before ``cutoff`` (whole months only: the log is
        never rewritten). Returns (path, bytes) of each segment removed."""
        removed = []
        for path in self.segments():
            span = _segment_month(path)
            if span and span[1] <= cutoff:
                size = path.stat().st_size
                if not dry_run:
                    path.unlink()
                removed.append((path, size))
        return removed


# --- presentation --------------------------------------------------------------------------------
def _cell(text: Any, n: int = 90) -> str:
    s = "" if text is None else str(text)
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def run_label(run: Mapping[str, str]) -> str:
    """``job (run 1a2b3c4d)`` / ``sensor approvals_sensor`` / ``-``."""
    if run.get("run_id"):
        return f"{run.get('job') or 'run'} ({run['run_id'][:8]})"
    if run.get("sensor"):
        return f"sensor {run['sensor']}"
    return "-"


def to_markdown(entries: Iterable[AuditEntry], limit: int = 50) -> str:
    """A Markdown table of the newest ``limit`` entries, newest first."""
    rows = sorted(entries, key=lambda e: e.at, reverse=True)[:limit]
    if not rows:
        return "_No automated action recorded yet._"
    md = ["| when (UTC) | kind | outcome | org | what | why | run | trigger |",
          "|---|---|---|---|---|---|---|---|"]
    for e in rows:
        md.append(
            f"| {e.at[:19].replace('T', ' ')} | `{e.kind}` | {e.outcome} | {_cell(e.org or '-', 30)} "
            f"| {_cell(e.what)} | {_cell(e.why, 70)} | {_cell(run_label(e.run), 40)} "
            f"| {_cell(e.run.get('trigger') or '-', 30)} |"
        )
    return "\n".join(md)


def counts(entries: Iterable[AuditEntry]) -> dict[str, dict[str, int]]:
    """Entries counted by kind, by org and by outcome."""
    by_kind: Counter[str] = Counter()
    by_org: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    for e in entries:
        by_kind[e.kind] += 1
        by_org[e.org or "(none)"] += 1
        by_outcome[e.outcome] += 1
    return {"by_kind": dict(sorted(by_kind.items())), "by_org": dict(sorted(by_org.items())),
            "by_outcome": dict(sorted(by_outcome.items()))}


_SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` (ago), or an ISO date/datetime, as an aware UTC datetime."""
    m = _SINCE_RE.match(value or "")
    if m:
        return (now or _now()) - timedelta(**{_UNITS[m.group(2).lower()]: float(m.group(1))})
    t = parse_time(value)
    if t is None:
        raise AuditError(f"--since {value!r}: want an age like 7d, 12h, 30m, 2w or an ISO date (2025-06-01)")
    return t


__all__ = [
    "AUDIT_DIR", "KINDS", "OUTCOMES", "AuditEntry", "AuditError", "AuditLog", "RunInfo",
    "append_line", "counts", "locked_file", "parse_since", "parse_time", "pseudonym",
    "rewrite_lines", "run_label", "scrub", "segment_name", "to_markdown",
]
