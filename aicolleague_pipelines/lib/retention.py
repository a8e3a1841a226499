"""Data retention: graph snapshots, findings history and other outputs older than an age go.

What is pruned (``cutoff`` = now − ``max_age_days``; the audit log has its own, longer age):

============================  =====================================================================
graph snapshots               every org's snapshots created before the cutoff
                              (:meth:`GraphStore.prune_older_than`) — **never the current one**
``reports/<org>/insight_history.json``  run points (findings, health) older than the cutoff; the
                              newest point always stays
``plans/<org>/<plan id>/``    fix-plan folders not rewritten since the cutoff (a plan still
                              proposed is rewritten by every Fix run, so only stale ones age out)
``alerts/*.jsonl``            alert lines created before the cutoff (rewritten atomically under
                              the same lock the file sink appends with)
``llm-cache/*.json``          cached LLM responses written before the cutoff
per-org outputs of orgs       ``reports/<org>/``, ``docs/<org>/``, ``knowledge/<org>.json``,
without any snapshot          ``plans/<org>/`` of orgs that no longer have a snapshot, when
                              nothing in them is newer than the cutoff (an org that still has a
                              snapshot keeps its current findings, docs and knowledge, however old)
``audit/YYYY-MM.jsonl``       whole months ending before the audit cutoff
============================  =====================================================================

Never touched: the approvals ledger, the ticket ledgers (they stop duplicate tickets), platform
extracts (current data), the orgs/alerts/approvals files people edit.

Every item pruned is returned in a :class:`RetentionReport` and, when an :class:`AuditLog` is
given, recorded as ``retention.prune`` entries (one per org for snapshots, one per category and
org for files). ``dry_run`` reports without deleting. A failure on one org or one file is
reported in ``errors`` and the rest still runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.audit import AuditLog, parse_time, rewrite_lines
from aicolleague_pipelines.lib.graph.store import GraphStore, GraphStoreError, created_before

log = logging.getLogger(__name__)

RETENTION_DAYS_ENV = "AICOLLEAGUE_RETENTION_DAYS"
AUDIT_RETENTION_DAYS_ENV = "AICOLLEAGUE_AUDIT_RETENTION_DAYS"
DEFAULT_DAYS = 90.0
DEFAULT_AUDIT_DAYS = 365.0


class RetentionConfigError(ValueError):
    """A retention age is not a number of days ≥ 0 (the message names the setting)."""


def _days(value: Any, what: str) -> float:
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise RetentionConfigError(f"{what} must be a number of days, got {value!r}") from None
    if not days >= 0 or days == float("inf"):
        raise RetentionConfigError(f"{what} must be a number of days >= 0, got {value!r}")
    return days


@dataclass(frozen=True)
class RetentionPolicy:
    """How old data may get. ``max_age_days=0`` prunes everything but what is current."""

    max_age_days: float = DEFAULT_DAYS
    audit_max_age_days: float = DEFAULT_AUDIT_DAYS

    @classmethod
    def resolve(
        cls,
        max_age_days: float | None = None,
        audit_max_age_days: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "RetentionPolicy":
        """Explicit values (run config) first, then ``$AICOLLEAGUE_RETENTION_DAYS`` /
        ``$AICOLLEAGUE_AUDIT_RETENTION_DAYS``, then 90 / 365 days."""
        env = os.environ if environ is None else environ

        def pick(explicit: float | None, var: str, default: float, what: str) -> float:
            if explicit is not None:
                return _days(explicit, what)
            raw = (env.get(var) or "").strip()
            return _days(raw, f"${var}") if raw else default

        return cls(
            max_age_days=pick(max_age_days, RETENTION_DAYS_ENV, DEFAULT_DAYS, "max_age_days"),
            audit_max_age_days=pick(audit_max_age_days, AUDIT_RETENTION_DAYS_ENV, DEFAULT_AUDIT_DAYS,
                                    "audit_max_age_days"),
        )

    def cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.max_age_days)

    def audit_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.audit_max_age_days)


@dataclass(frozen=True)
class Pruned:
    """One thing removed (or, in a dry run, that would be)."""

    category: str  # snapshot | insight_history | governance_history | runtime_history | plan | alerts | llm_cache | orphan | audit
    org: str | None
    #: Relative to the data home, or ``graph:<org>@v<version>`` for a snapshot.
    item: str
    detail: str = ""
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "org": self.org, "item": self.item, "detail": self.detail,
                "bytes": self.bytes}


@dataclass
class RetentionReport:
    cutoff: datetime
    audit_cutoff: datetime
    dry_run: bool = False
    pruned: list[Pruned] = field(default_factory=list)
    #: org → its current snapshot version (kept whatever its age).
    current: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def by_category(self) -> dict[str, int]:
        return dict(sorted(Counter(p.category for p in self.pruned).items()))

    def snapshots(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for p in self.pruned:
            if p.category == "snapshot":
                out[p.org or ""].append(int(p.item.rsplit("@v", 1)[1]))
        return dict(out)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.pruned)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(), "audit_cutoff": self.audit_cutoff.isoformat(),
            "dry_run": self.dry_run, "by_category": self.by_category(), "snapshots": self.snapshots(),
            "current": dict(self.current), "bytes": self.bytes, "errors": list(self.errors),
            "pruned": [p.to_dict() for p in self.pruned],
        }

    def to_markdown(self, limit: int = 100) -> str:
        verb = "Would prune" if self.dry_run else "Pruned"
        md = [f"{verb} data older than **{self.cutoff:%Y-%m-%d %H:%M} UTC** (audit log: older than "
              f"{self.audit_cutoff:%Y-%m-%d} UTC). Current snapshots are always kept: "
              + (", ".join(f"`{o}` v{v}" for o, v in sorted(self.current.items())) or "none") + "."]
        if not self.pruned:
            md += ["", "_Nothing was old enough to prune._"]
        else:
            md += ["", "| category | org | item | detail |", "|---|---|---|---|"]
            for p in self.pruned[:limit]:
                md.append(f"| {p.category} | {p.org or '-'} | `{p.item}` | {p.detail} |")
            if len(self.pruned) > limit:
                md.append(f"| … | | {len(self.pruned) - limit} more | |")
        if self.errors:
            md += ["", "**Errors**", ""] + [f"- {e}" for e in self.errors]
        return "\n".join(md)


# --- helpers -----------------------------------------------------------------------------------
def _mtime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def _newest_mtime(path: Path) -> float:
    """Newest modification time of ``path`` or anything below it."""
    newest = path.stat().st_mtime
    if path.is_dir():
        for p in path.rglob("*"):
            try:
                newest = max(newest, p.stat().st_mtime)
            except FileNotFoundError:  # removed while we looked
                continue
    return newest


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


# --- the pruning passes ------------------------------------------------------------------------
class _Pruner:
    def __init__(self, home: Path, report: RetentionReport) -> None:
        self.home = home
        self.report = report

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.home).as_posix()
        except ValueError:
            return path.as_posix()

    def error(self, msg: str) -> None:
        self.report.errors.append(msg)
        log.error("retention: %s", msg)

    def remove_if_old(self, path: Path, category: str, org: str | None, cutoff: datetime) -> None:
        """Remove ``path`` (file or folder) when nothing in it is newer than ``cutoff``."""
        try:
            newest = _newest_mtime(path)
            if _mtime(newest) >= cutoff:
                return
            size = _size(path)
            if not self.report.dry_run:
                _remove(path)
        except OSError as exc:
            self.error(f"{self.rel(path)}: cannot prune: {exc.strerror or type(exc).__name__}")
            return
        self.report.pruned.append(Pruned(category, org, self.rel(path),
                                         f"last written {_mtime(newest):%Y-%m-%d}", size))

    # snapshots -------------------------------------------------------------------------------
    def snapshots(self, store: GraphStore, cutoff: datetime) -> None:
        try:
            orgs = store.orgs()
        except GraphStoreError as exc:
            self.error(f"graph snapshots not pruned: {exc}")
            return
        for org in orgs:
            try:
                infos = store.snapshots(org)
                self.report.current[org] = infos[-1].version
                created = {s.version: s.created_at for s in infos}
                if self.report.dry_run:
                    doomed = [s.version for s in infos[:-1] if created_before(s.created_at, cutoff)]
                else:
                    doomed = store.prune_older_than(org, cutoff)
            except GraphStoreError as exc:
                self.error(f"org {org!r}: snapshots not pruned: {exc}")
                continue
            for v in doomed:
                self.report.pruned.append(Pruned("snapshot", org, f"graph:{org}@v{v}",
                                                 f"created {str(created.get(v, '?'))[:10]}"))

    # files -------------------------------------------------------------------------------------
    def insight_history(self, cutoff: datetime) -> None:
        self.history_points(cutoff, "insight_history.json", "timestamp", "insight_history")

    def governance_history(self, cutoff: datetime) -> None:
        self.history_points(cutoff, "governance_history.json", "date", "governance_history")

    def history_points(self, cutoff: datetime, name: str, stamp: str, category: str) -> None:
        """Drop the points of ``reports/<org>/<name>`` (a JSON list) whose ``stamp`` is before
        ``cutoff``; the newest point always stays (the trend's current value)."""
        for path in sorted((self.home / "reports").glob(f"*/{name}")):
            org = path.parent.name
            try:
                before = path.stat().st_mtime_ns
                rows = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(rows, list) or len(rows) < 2:
                    continue
                rows.sort(key=lambda r: str(r.get(stamp, "")) if isinstance(r, dict) else "")
                old = [r for r in rows[:-1] if isinstance(r, dict) and _before(r.get(stamp), cutoff)]
                if not old:
                    continue
                if not self.report.dry_run:
                    keep = [r for r in rows if not any(r is o for o in old)]
                    tmp = path.with_name(f".{path.name}.retention.tmp")
                    tmp.write_text(json.dumps(keep, indent=1), encoding="utf-8")
                    # The agent rewrites this file each run: if it did so meanwhile,
                    # keep its version (the old points go on the next pass).
                    if path.stat().st_mtime_ns != before:
                        tmp.unlink()
                        continue
                    os.replace(tmp, path)
            except (OSError, ValueError) as exc:
                self.error(f"{self.rel(path)}: history not pruned: {getattr(exc, 'strerror', None) or exc}")
                continue
            self.report.pruned.append(Pruned(category, org, self.rel(path),
                                             f"{len(old)} run point(s) before {cutoff:%Y-%m-%d}"))

    def runtime_history(self, cutoff: datetime) -> None:
        """Old points of each org's runtime-signal history (failures, daily series, /limits,
        run summaries, changes); the cursors stay so the next signals run stays incremental."""
        from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore

        stamp = cutoff.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for folder in sorted((self.home / "runtime").glob("*")):
            if not folder.is_dir():
                continue
            org = folder.name
            try:
                dropped = SignalStore(self.home, org).prune_before(stamp, dry_run=self.report.dry_run)
            except OSError as exc:
                self.error(f"runtime/{org}: history not pruned: {exc.strerror or type(exc).__name__}")
                continue
            if dropped:
                detail = ", ".join(f"{n} from {name}" for name, n in sorted(dropped.items()))
                self.report.pruned.append(Pruned("runtime_history", org, f"runtime/{org}/",
                                                 f"{detail} before {cutoff:%Y-%m-%d}"))

    def plans(self, cutoff: datetime) -> None:
        for folder in sorted((self.home / "plans").glob("*/*")):
            if folder.is_dir():
                self.remove_if_old(folder, "plan", folder.parent.name, cutoff)

    def alerts(self, cutoff: datetime) -> None:
        for path in sorted((self.home / "alerts").glob("*.jsonl")):
            def keep(line: str) -> bool:
                try:
                    return not _before(json.loads(line).get("created_at"), cutoff)
                except (ValueError, AttributeError):
                    return True  # never drop what we cannot date
            try:
                if self.report.dry_run:
                    lines = path.read_text(encoding="utf-8").splitlines()
                    dropped = sum(1 for ln in lines if ln.strip() and not keep(ln))
                else:
                    _, dropped = rewrite_lines(path, keep)
            except OSError as exc:
                self.error(f"{self.rel(path)}: alerts not pruned: {exc.strerror or type(exc).__name__}")
                continue
            if dropped:
                self.report.pruned.append(Pruned("alerts", None, self.rel(path),
                                                 f"{dropped} alert line(s) before {cutoff:%Y-%m-%d}"))

    def llm_cache(self, cutoff: datetime) -> None:
        files = sorted((self.home / "llm-cache").glob("*.json"))
        old = []
        for path in files:
            try:
                if _mtime(path.stat().st_mtime) < cutoff:
                    size = path.stat().st_size
                    if not self.report.dry_run:
                        path.unlink()
                    old.append(size)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.error(f"{self.rel(path)}: cannot prune: {exc.strerror or type(exc).__name__}")
        if old:  # one line for the lot: cache entries are anonymous hashes
            self.report.pruned.append(Pruned("llm_cache", None, "llm-cache/",
                                             f"{len(old)} cached response(s)", sum(old)))

    def orphans(self, orgs_with_snapshots: set[str], cutoff: datetime) -> None:
        candidates: list[tuple[str, Path]] = []
        for sub in ("reports", "docs", "plans"):
            for p in sorted((self.home / sub).glob("*")):
                if p.is_dir():
                    candidates.append((p.name, p))
        for p in sorted((self.home / "knowledge").glob("*.json")):
            candidates.append((p.stem, p))
        for org, path in candidates:
            if org not in orgs_with_snapshots:
                self.remove_if_old(path, "orphan", org, cutoff)

    def audit_segments(self, cutoff: datetime) -> None:
        log_ = AuditLog.for_home(self.home)
        try:
            removed = log_.prune_segments(cutoff, dry_run=self.report.dry_run)
        except OSError as exc:
            self.error(f"audit segments not pruned: {exc.strerror or type(exc).__name__}")
            return
        for path, size in removed:
            self.report.pruned.append(Pruned("audit", None, self.rel(path), "whole month", size))


def _before(value: Any, cutoff: datetime) -> bool:
    t = parse_time(value) if value else None
    return t is not None and t < cutoff


# --- entry point -------------------------------------------------------------------------------
def apply_retention(
    home: Path,
    store: GraphStore | None,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    audit: AuditLog | None = None,
) -> RetentionReport:
    """Prune ``home`` (the data home) and ``store`` by ``policy``; see the module docstring.

    ``store`` None skips the graph and the orphan pass (which needs to know the orgs)."""
    now = now or datetime.now(timezone.utc)
    report = RetentionReport(policy.cutoff(now), policy.audit_cutoff(now), dry_run=dry_run)
    pruner = _Pruner(Path(home), report)
    started = time.perf_counter()
    if store is not None:
        pruner.snapshots(store, report.cutoff)
    pruner.insight_history(report.cutoff)
    pruner.governance_history(report.cutoff)
    pruner.runtime_history(report.cutoff)
    pruner.plans(report.cutoff)
    pruner.alerts(report.cutoff)
    pruner.llm_cache(report.cutoff)
    if store is not None:
        try:
            pruner.orphans(set(store.orgs()), report.cutoff)
        except GraphStoreError as exc:
            pruner.error(f"orphaned org outputs not pruned: {exc}")
    pruner.audit_segments(report.audit_cutoff)
    log.info("retention: %s %d item(s) (%s) in %.2f s%s", "would prune" if dry_run else "pruned",
             len(report.pruned), report.by_category(), time.perf_counter() - started,
             f"; {len(report.errors)} error(s)" if report.errors else "")
    if audit is not None and not dry_run:
        record_pruned(audit, report, policy)
    return report


def record_pruned(audit: AuditLog, report: RetentionReport, policy: RetentionPolicy) -> None:
    """``retention.prune`` audit entries: one per org for snapshots, one per (category, org)
    for files."""
    groups: dict[tuple[str, str | None], list[Pruned]] = defaultdict(list)
    for p in report.pruned:
        groups[(p.category, p.org)].append(p)
    for (category, org), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        age = policy.audit_max_age_days if category == "audit" else policy.max_age_days
        if category == "snapshot":
            versions = sorted(int(p.item.rsplit("@v", 1)[1]) for p in items)
            what = f"deleted {len(versions)} graph snapshot(s) of {org}: v" + ", v".join(map(str, versions))
            details: dict[str, Any] = {"versions": versions, "current_kept": report.current.get(org or "")}
            target = "graph-store"
        else:
            what = f"pruned {len(items)} {category.replace('_', ' ')} item(s)" + (f" of {org}" if org else "")
            details = {"items": [p.item for p in items], "bytes": sum(p.bytes for p in items)}
            target = "data-home"
        audit.record("retention.prune", what, why=f"older than {age:g} day(s) (cutoff "
                     f"{(report.audit_cutoff if category == 'audit' else report.cutoff):%Y-%m-%d %H:%M} UTC)",
                     org=org, target=target, ref=category, details=details)

