"""The runtime-signal history of one org, kept under the data home as JSON time series.

``$AICOLLEAGUE_HOME/runtime/<org>/``:

- ``state.json``: the cursor of each signal, the covered period, the newest test run and the
  anomaly alerts already sent;
- ``failures.json``: failure groups merged over runs (count, first/last seen, per day);
- ``daily.json``: ``{day: {metric: value}}`` — failures, async volume, API requests … per UTC day;
- ``limits.jsonl``: one ``/limits`` snapshot per line;
- ``runs.jsonl``: one summary per run (rows, queries, API calls, notes);
- ``coverage.json``: the latest coverage; ``changes.json``: metadata changes per component
  (from the audit trail) for the error → change correlation.

Everything in it is an aggregate or a scrubbed message (see
:mod:`aicolleague_pipelines.lib.salesforce.signals`); nothing comes from a log line verbatim.
Files are replaced atomically; one org's runs are serialised by Dagster's concurrency limit.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.salesforce.signals import FailureGroup, SignalsRun

#: Failure groups not seen for this long are forgotten.
FAILURE_RETENTION_DAYS = 90
#: Daily buckets, limit snapshots and changes older than this are dropped.
SERIES_RETENTION_DAYS = 180


def _day(stamp: str) -> date:
    return date.fromisoformat(stamp[:10])


def _shift(stamp: str, days: int) -> str:
    d = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc) - timedelta(days=days)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


class SignalStore:
    """Read and extend one org's runtime-signal history (see the module docstring)."""

    def __init__(self, home: Path, org: str) -> None:
        self.org = org
        self.dir = Path(home) / "runtime" / org

    # -- files ------------------------------------------------------------------------------
    def _read(self, name: str, default: Any) -> Any:
        path = self.dir / name
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            # A torn or hand-edited file: start that part afresh rather than fail every run.
            return default

    def _write(self, name: str, data: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.dir / name)

    def _lines(self, name: str) -> list[dict[str, Any]]:
        path = self.dir / name
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def _write_lines(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, sort_keys=True) + "\n")
        os.replace(tmp, self.dir / name)

    # -- reading ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        s = self._read("state.json", {})
        return s if isinstance(s, dict) else {}

    def cursors(self) -> dict[str, dict[str, Any]]:
        return dict(self.state().get("cursors") or {})

    def failure_groups(self) -> list[FailureGroup]:
        return [FailureGroup.from_dict(d) for d in self._read("failures.json", []) if isinstance(d, dict)]

    def daily(self) -> dict[str, dict[str, float]]:
        d = self._read("daily.json", {})
        return d if isinstance(d, dict) else {}

    def limit_snapshots(self) -> list[dict[str, Any]]:
        return self._lines("limits.jsonl")

    def runs(self) -> list[dict[str, Any]]:
        return self._lines("runs.jsonl")

    def coverage(self) -> dict[str, Any] | None:
        return self._read("coverage.json", None)

    def changes(self) -> list[dict[str, Any]]:
        return [c for c in self._read("changes.json", []) if isinstance(c, dict)]

    def covered(self) -> tuple[str | None, str | None]:
        s = self.state()
        return s.get("covered_from"), s.get("covered_until")

    def daily_series(self, metrics: list[str] | None = None) -> dict[str, list[tuple[str, float]]]:
        """``{metric: [(day, value)]}`` over every covered day, oldest first; a day without
        rows counts 0 (the signal was read and nothing happened). Metrics never seen are left
        out. The last day may be partial (see :meth:`last_day_complete`)."""
        daily = self.daily()
        start, end = self.covered()
        if not daily or not start or not end:
            return {}
        names = sorted({m for v in daily.values() for m in v}) if metrics is None else metrics
        out: dict[str, list[tuple[str, float]]] = {}
        first, last = _day(start), _day(end)
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        for name in names:
            pts = [(d, float((daily.get(d) or {}).get(name, 0.0))) for d in days]
            if any(v for _, v in pts):
                out[name] = pts
        return out

    def last_day_complete(self) -> bool:
        """Whether the newest day of the series has been read to its end."""
        _, end = self.covered()
        return bool(end) and str(end)[11:19] >= "23:59:59"

    def limit_series(self) -> dict[str, list[tuple[str, float]]]:
        """``limit:<Name>:used`` and ``limit:<Name>:used_pct`` per snapshot, oldest first."""
        out: dict[str, list[tuple[str, float]]] = {}
        for snap in sorted(self.limit_snapshots(), key=lambda s: s.get("at", "")):
            for name, v in (snap.get("limits") or {}).items():
                mx, rem = float(v.get("max") or 0), float(v.get("remaining") or 0)
                used = max(0.0, mx - rem)
                out.setdefault(f"limit:{name}:used", []).append((snap["at"], used))
                if mx:
                    out.setdefault(f"limit:{name}:used_pct", []).append((snap["at"], round(100 * used / mx, 2)))
        return {k: v for k, v in out.items() if any(x for _, x in v)}

    def latest_limits(self) -> dict[str, Any] | None:
        snaps = sorted(self.limit_snapshots(), key=lambda s: s.get("at", ""))  # stable: the last written wins
        return snaps[-1] if snaps else None

    def alerted(self) -> set[str]:
        return set(self.state().get("alerted") or [])

    # -- writing ------------------------------------------------------------------------------
    def record(self, run: SignalsRun, changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Merge one run into the history; returns the run's summary line. The state (cursors)
        is written last, so a crash in between re-reads the same rows rather than losing any."""
        state = self.state()
        until = max(x for x in (state.get("covered_until"), run.covered_until, run.started_at) if x)
        horizon = _shift(until, FAILURE_RETENTION_DAYS)
        series_horizon = _shift(until, SERIES_RETENTION_DAYS)[:10]

        groups = {g.key: g for g in self.failure_groups()}
        for g in run.failures:
            if g.key in groups:
                groups[g.key].merge(g)
            else:
                groups[g.key] = FailureGroup.from_dict(g.to_dict())
        kept = sorted((g for g in groups.values() if g.last_seen >= horizon), key=lambda g: (-g.count, g.key))
        self._write("failures.json", [g.to_dict() for g in kept])

        daily = self.daily()
        for day, metrics in run.daily.items():
            bucket = daily.setdefault(day, {})
            for name, v in metrics.items():
                bucket[name] = round(bucket.get(name, 0.0) + v, 3)
        if run.coverage and run.coverage.get("org_wide") is not None:
            daily.setdefault(run.started_at[:10], {})["coverage_pct"] = float(run.coverage["org_wide"])
        self._write("daily.json", {d: v for d, v in sorted(daily.items()) if d >= series_horizon})

        if run.limits:
            snaps = [s for s in self.limit_snapshots() if s.get("at", "") >= series_horizon] + run.limits
            self._write_lines("limits.jsonl", snaps)
        if run.coverage:
            self._write("coverage.json", run.coverage)
        if changes:
            merged = {(c.get("key"), c.get("at"), c.get("id")): c for c in self.changes()}
            for c in changes:
                merged[(c.get("key"), c.get("at"), c.get("id"))] = c
            self._write("changes.json", sorted((c for c in merged.values() if str(c.get("at")) >= series_horizon),
                                               key=lambda c: (c.get("at") or "", c.get("key") or "")))

        summary = {
            "started_at": run.started_at, "source": run.source_kind, "queries": run.queries,
            "downloads": run.downloads, "api_calls": run.api_calls, "duration_s": run.duration_s,
            "rows": dict(run.rows), "failures": run.counts(), "notes": [str(n) for n in run.notes],
        }
        self._write_lines("runs.jsonl", [r for r in self.runs() if r.get("started_at", "") >= series_horizon]
                          + [summary])

        starts = [d + "T00:00:00Z" for d in run.daily] + [g.first_seen for g in run.failures if g.first_seen]
        if run.source_kind == "live":
            starts.append(run.started_at)
        if state.get("covered_from"):
            starts.append(state["covered_from"])
        state["covered_from"] = min(starts) if starts else state.get("covered_from")
        if run.covered_until or state.get("covered_until"):
            state["covered_until"] = max(x for x in (state.get("covered_until"), run.covered_until) if x)
        if run.latest_test_run and (not state.get("latest_test_run")
                                    or run.latest_test_run["at"] >= state["latest_test_run"]["at"]):
            state["latest_test_run"] = run.latest_test_run
        state["cursors"] = dict(run.cursors)
        state["last_run"] = summary
        self._write("state.json", state)
        return summary

    def prune_before(self, cutoff: str, *, dry_run: bool = False) -> dict[str, int]:
        """Drop history older than ``cutoff`` (ISO 8601 UTC) — failure groups last seen before
        it, daily buckets, /limits snapshots, run summaries and changes — for the retention
        job. The cursors in ``state.json`` stay, so the next run stays incremental. Returns
        what was (or, with ``dry_run``, would be) dropped per file."""
        day = cutoff[:10]
        dropped: dict[str, int] = {}
        groups = self._read("failures.json", [])
        if isinstance(groups, list):
            keep = [g for g in groups if not (isinstance(g, dict) and str(g.get("last_seen", "")) < cutoff)]
            if len(keep) < len(groups):
                dropped["failures.json"] = len(groups) - len(keep)
                if not dry_run:
                    self._write("failures.json", keep)
        daily = self.daily()
        old_days = [d for d in daily if d < day]
        if old_days:
            dropped["daily.json"] = len(old_days)
            if not dry_run:
                self._write("daily.json", {d: v for d, v in sorted(daily.items()) if d >= day})
        for name, stamp in (("limits.jsonl", "at"), ("runs.jsonl", "started_at")):
            rows = self._lines(name)
            keep_rows = [r for r in rows if str(r.get(stamp, "")) >= cutoff]
            if len(keep_rows) < len(rows):
                dropped[name] = len(rows) - len(keep_rows)
                if not dry_run:
                    self._write_lines(name, keep_rows)
        changes = self.changes()
        keep_changes = [c for c in changes if str(c.get("at", "")) >= cutoff]
        if len(keep_changes) < len(changes):
            dropped["changes.json"] = len(changes) - len(keep_changes)
            if not dry_run:
                self._write("changes.json", keep_changes)
        return dropped

    def mark_alerted(self, keys: list[str], keep: int = 500) -> None:
        """Remember anomaly alerts already sent (the newest ``keep``)."""
        state = self.state()
        seen = list(state.get("alerted") or [])
        seen += [k for k in keys if k not in seen]
        state["alerted"] = seen[-keep:]
        self._write("state.json", state)
