"""What the agents do with runtime signals (:mod:`aicolleague_pipelines.lib.salesforce.signals`).

- **Triage**: four rules turn failure groups into findings on the component that failed
  (Apex class or trigger, flow, test class) with count, first/last seen, a scrubbed sample
  message and the probable cause — the nearest metadata change on the same component or on
  one it depends on (graph, two hops) in the ``window_hours`` before the first failure of the
  current burst. :func:`apply_runtime_risk` boosts the risk of those findings by frequency
  (and, less, of the static findings on a component that is failing).
- **Monitor**: robust baselines (median/MAD, :mod:`~aicolleague_pipelines.lib.agents.anomaly`)
  over the per-day error, API and async series and the ``/limits`` snapshots; anomalies that
  reach the newest point become alerts, each sent once.
- **Insight**: error trend per week and the components with the most runtime failures.
- **Sensor**: :func:`signals_interval` — how often the org's API allowance lets the
  incremental signals run go.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from aicolleague_pipelines.lib.agents.anomaly import Anomaly, detect_all
from aicolleague_pipelines.lib.agents.model import Finding, Rule, RuleContext
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, OrgInventory
from aicolleague_pipelines.lib.salesforce.signals import FailureGroup, iso_z
from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore

#: How long before the first failure a metadata change counts as its probable cause.
WINDOW_HOURS = 72.0
#: A failure group not seen for this many days (before the newest covered day) has stopped.
STOPPED_AFTER_DAYS = 14
#: Failures per 7 days for each severity (at least).
SEVERITY_STEPS = ((100, "critical"), (20, "high"), (3, "medium"), (0, "low"))
#: Metrics baselined by the Monitor (per UTC day) and the /limits series it watches.
ERROR_METRICS = ("apex_exceptions", "async_failures", "flow_interview_errors", "flow_execution_errors",
                 "test_failures")
VOLUME_METRICS = ("api_requests", "async_jobs", "apex_executions", "flow_executions", "report_exports")
LIMIT_METRICS = ("limit:DailyApiRequests:used", "limit:DailyAsyncApexExecutions:used",
                 "limit:DataStorageMB:used_pct", "limit:FileStorageMB:used_pct")


def _ts(stamp: str) -> datetime:
    return datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)


def _ago(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        h, m = int(hours), round((hours - int(hours)) * 60)
        return f"{h} h" + (f" {m} min" if m and h < 10 else "")
    return f"{hours / 24:.1f} days"


# --- changes per component ---------------------------------------------------------------------


def component_changes(inventory: OrgInventory, events: Iterable[AuditEvent]) -> list[dict[str, Any]]:
    """Audit-trail rows attached to the inventory's components they name (``{key, at, action,
    display, id}``), using the Monitor's matching (:func:`~aicolleague_pipelines.lib.agents.diff.attach_audit`).
    Noise (logins as another user, password resets …) is dropped first."""
    from aicolleague_pipelines.lib.agents.diff import ComponentChange, attach_audit
    from aicolleague_pipelines.lib.agents.watch import meaningful

    evs = [e for e in meaningful(list(events)) if e.section != "Manage Users"]
    if not evs:
        return []
    shells = [ComponentChange(key=c.key, type=c.type, name=c.full_name, change="modified")
              for c in inventory.components]
    attach_audit(shells, evs)
    out = []
    for s in shells:
        for a in s.audit:
            at = iso_z(a.get("created_date"))
            if at:
                out.append({"key": s.key, "at": at, "action": a.get("action") or "", "id": a.get("id"),
                            "display": a.get("display") or "", "source": "audit trail"})
    return out


# --- triage --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeContext:
    """The runtime facts a Triage run looks at (loaded from the data home)."""

    groups: tuple[FailureGroup, ...]
    changes: tuple[dict[str, Any], ...] = ()
    latest_test_run: dict[str, Any] | None = None
    covered_until: str | None = None
    window_hours: float = WINDOW_HOURS

    @classmethod
    def load(cls, home: Path, org: str) -> "RuntimeContext | None":
        store = SignalStore(home, org)
        groups = store.failure_groups()
        if not groups and not store.state():
            return None
        state = store.state()
        return cls(tuple(groups), tuple(store.changes()), state.get("latest_test_run"), state.get("covered_until"))

    def reference(self, today: str) -> str:
        return self.covered_until or f"{today[:10]}T23:59:59Z"


def _burst_start(days: dict[str, list[Any]], gap_days: int = 2) -> str | None:
    """First failure of the latest burst: consecutive failure days with gaps of ≤ ``gap_days``."""
    if not days:
        return None
    ds = sorted(days)
    start = ds[-1]
    for prev, cur in zip(reversed(ds[:-1]), reversed(ds)):
        if (date.fromisoformat(cur) - date.fromisoformat(prev)).days > gap_days:
            break
        start = prev
    return str(days[start][1])


def dependency_index(graph: Any) -> dict[str, list[str]]:
    """source → targets of every edge of ``graph`` (what each component depends on)."""
    out: dict[str, list[str]] = {}
    for e in getattr(graph, "edges", ()) or ():
        out.setdefault(e.source, []).append(e.target)
    return out


#: Not a probable cause, and not walked through: an object is named by every change on it
#: ("Changed Lightning page Account Record Page" mentions Account), so it would link anything.
_NOT_A_CAUSE = ("CustomObject:",)


def _dependencies(out_edges: dict[str, list[str]], key: str, depth: int = 2) -> dict[str, int]:
    """What ``key`` depends on within ``depth`` hops → hop count (objects left out)."""
    seen: dict[str, int] = {}
    frontier = [key]
    for hop in range(1, depth + 1):
        nxt = []
        for k in frontier:
            for t in out_edges.get(k, ()):
                if t != key and t not in seen and not t.startswith(_NOT_A_CAUSE):
                    seen[t] = hop
                    nxt.append(t)
        frontier = nxt
    return seen


def probable_cause(component: str, first_failure: str, graph: Any, changes: Iterable[dict[str, Any]],
                   window_hours: float = WINDOW_HOURS,
                   out_edges: dict[str, list[str]] | None = None) -> dict[str, Any] | None:
    """The metadata change most likely behind failures that started at ``first_failure``:
    the newest change to ``component`` or to a component it depends on (two hops) made at most
    ``window_hours`` before, the component itself winning a tie. ``changes``: audit-trail
    matches (:func:`component_changes`); the graph's ``last_modified_date`` attributes count too.
    ``out_edges``: :func:`dependency_index` of the graph, when several calls share it."""
    deps = _dependencies(out_edges if out_edges is not None else dependency_index(graph), component)
    relevant = {component: 0, **deps}
    cands = [c for c in changes if c.get("key") in relevant]
    nodes = getattr(graph, "nodes", {}) or {}
    for key in relevant:
        node = nodes.get(key)
        stamp = iso_z((node.attrs or {}).get("last_modified_date")) if node is not None else None
        if stamp:
            cands.append({"key": key, "at": stamp, "action": "lastModified", "display": "", "source": "metadata"})
    first = _ts(first_failure)
    best: tuple[Any, ...] | None = None
    for c in cands:
        at = iso_z(c.get("at"))
        if not at:
            continue
        hours = (first - _ts(at)).total_seconds() / 3600
        if hours < 0 or hours > window_hours:
            continue
        rank = (at, -relevant[c["key"]], c.get("source") == "audit trail")
        if best is None or rank > best[0]:
            best = (rank, c, hours)
    if best is None:
        return None
    _, c, hours = best
    relation = "the same component" if c["key"] == component else (
        "a direct dependency" if relevant[c["key"]] == 1 else "a dependency (2 hops)")
    what = c.get("display") or "last modified"
    text = (f"{c['key']} ({relation}) changed {_ago(hours)} before the first failure"
            + (f": {what}" if c.get("display") else ""))
    return {"key": c["key"], "at": iso_z(c["at"]), "hours_before": round(hours, 2), "relation": relation,
            "action": c.get("action") or "", "display": c.get("display") or "", "text": text}


@dataclass
class _Agg:
    groups: list[FailureGroup] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    def days(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for g in self.groups:
            for d, (n, first) in g.days.items():
                cur = out.setdefault(d, [0, first])
                cur[0] += n
                cur[1] = min(cur[1], first)
        return out

    def recent(self, ref: str, days: int = 7) -> int:
        lo = (_ts(ref) - timedelta(days=days - 1)).date().isoformat()
        return sum(n for d, (n, _) in self.days().items() if lo <= d <= ref[:10])


_SIGNAL_RULE = {
    "apex_exception": "RUNTIME-APEX-EXCEPTION",
    "async_job": "RUNTIME-ASYNC-JOB-FAILURE",
    "flow_interview": "RUNTIME-FLOW-ERROR",
    "flow_execution": "RUNTIME-FLOW-ERROR",
    "test": "RUNTIME-TEST-FAILURE",
}
_WHAT_TO_DO = {
    "RUNTIME-APEX-EXCEPTION": "Reproduce with the sample in a sandbox, add a guard or a proper catch, and "
                              "cover the path with a test; if it started after a change, review or roll back "
                              "that change first.",
    "RUNTIME-ASYNC-JOB-FAILURE": "Check the job's first error (Apex Jobs in Setup), make the batch/queueable "
                                 "resilient per record (Database.update(records, false)) and alert on "
                                 "failures.",
    "RUNTIME-FLOW-ERROR": "Open the failed interviews (Paused and Failed Flow Interviews), add a fault path to "
                          "the failing element and fix its inputs; a changed subflow or Apex action is a "
                          "common cause.",
    "RUNTIME-TEST-FAILURE": "Fix the test or the code under test before the next deployment: failing tests "
                            "block production deploys that run tests.",
}


def _runtime_check(rule_id: str):
    signals = {s for s, r in _SIGNAL_RULE.items() if r == rule_id}

    def check(ctx: RuleContext) -> Iterable[Finding]:
        rt: RuntimeContext | None = getattr(ctx, "runtime", None)
        if rt is None:
            return []
        ref = rt.reference(ctx.today)
        by_comp: dict[str, _Agg] = defaultdict(_Agg)
        for g in rt.groups:
            if g.signal in signals and g.component:
                by_comp[g.component].groups.append(g)
        for agg in by_comp.values():
            # FlowInterview and the FlowExecution log see the same failed interviews: count once.
            if any(g.signal == "flow_interview" for g in agg.groups):
                agg.groups = [g for g in agg.groups if g.signal != "flow_execution"]
        out = []
        index = dependency_index(ctx.graph) if by_comp else {}
        for comp, agg in sorted(by_comp.items()):
            f = _finding(rule_id, ctx, rt, comp, agg, ref, index)
            if f is not None:
                out.append(f)
        return out

    return check


def _finding(rule_id: str, ctx: RuleContext, rt: RuntimeContext, comp: str, agg: _Agg, ref: str,
             index: dict[str, list[str]]) -> Finding | None:
    groups = sorted(agg.groups, key=lambda g: (-g.count, g.key))
    last_seen = max(g.last_seen for g in groups)
    first_seen = min(g.first_seen for g in groups)
    if rule_id == "RUNTIME-TEST-FAILURE":
        latest = rt.latest_test_run or {}
        start = latest.get("start") or latest.get("at")
        # Still failing only if it failed in the newest test run seen.
        if start and last_seen < (_ts(start) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"):
            return None
        severity = "high"
    else:
        recent = agg.recent(ref)
        stopped = (_ts(ref) - _ts(last_seen)).days > STOPPED_AFTER_DAYS
        severity = "low" if stopped else next(s for n, s in SEVERITY_STEPS if recent >= n)
    days = agg.days()
    # Test runs are days apart: a test failing run after run started failing at its first failure.
    burst = first_seen if rule_id == "RUNTIME-TEST-FAILURE" else (_burst_start(days) or first_seen)
    cause = probable_cause(comp, burst, ctx.graph, rt.changes, rt.window_hours, index)
    top = groups[0]
    kinds = sorted({g.error_type for g in groups})
    recent_n = agg.recent(ref)
    what = {"RUNTIME-TEST-FAILURE": "test methods failing", "RUNTIME-FLOW-ERROR": "flow interviews failed",
            "RUNTIME-ASYNC-JOB-FAILURE": "async job failures", "RUNTIME-APEX-EXCEPTION": "unhandled exceptions"}[rule_id]
    message = (f"{comp}: {agg.count} {what} ({', '.join(kinds[:3])}), {recent_n} in the last 7 days; "
               f"first {first_seen}, last {last_seen}")
    explanation = (f"Sample (scrubbed): {top.error_type}: {top.message or '(no message)'}"
                   + (f" [{top.detail}]" if top.detail else "") + ". ")
    if cause:
        explanation += f"Probable cause: {cause['text']}. "
    else:
        explanation += (f"No metadata change to it or its dependencies in the {rt.window_hours:g} h before the "
                        f"failures began ({burst}). ")
    explanation += _WHAT_TO_DO[rule_id]
    daily = {d: days[d][0] for d in sorted(days)[-30:]}
    return Finding(
        rule_id=rule_id, severity=severity, org=ctx.org, component=comp, message=message,
        explanation=explanation, evidence=top.source, category="runtime",
        extra={"count": agg.count, "recent_7d": recent_n, "first_seen": first_seen, "last_seen": last_seen,
               "burst_start": burst, "sample_message": top.message, "error_types": kinds,
               "details": sorted({g.detail for g in groups if g.detail})[:10], "daily": daily,
               "probable_cause": cause, "signals": sorted({g.signal for g in groups})},
    )


RUNTIME_RULES = [
    Rule("RUNTIME-APEX-EXCEPTION", "Unhandled Apex exceptions at runtime", "high", "runtime",
         "Event Monitoring's ApexUnexpectedException log shows exceptions thrown by this class or trigger in "
         "production; users see errors and transactions roll back.",
         _runtime_check("RUNTIME-APEX-EXCEPTION"), source="Event Monitoring"),
    Rule("RUNTIME-ASYNC-JOB-FAILURE", "Failing async Apex jobs", "high", "runtime",
         "AsyncApexJob rows of this class ended Failed or with failed batches: scheduled and queued work is "
         "silently not done.", _runtime_check("RUNTIME-ASYNC-JOB-FAILURE"), source="AsyncApexJob"),
    Rule("RUNTIME-FLOW-ERROR", "Flow interviews failing", "high", "runtime",
         "Interviews of this flow end in error (FlowInterview, FlowExecution event log): the automation did not "
         "run for those records.", _runtime_check("RUNTIME-FLOW-ERROR"), source="FlowInterview"),
    Rule("RUNTIME-TEST-FAILURE", "Apex tests failing", "high", "runtime",
         "Methods of this test class failed in the newest test run (ApexTestResult).",
         _runtime_check("RUNTIME-TEST-FAILURE"), source="ApexTestResult"),
]


def frequency(n: int) -> float:
    """0 … 1 on a log scale: 1 failure ≈ 0.15, 10 ≈ 0.52, 100 or more = 1."""
    return min(1.0, math.log10(1 + max(0, n)) / 2)


def apply_runtime_risk(findings: list[Finding], rt: RuntimeContext | None, today: str) -> list[Finding]:
    """After :func:`~aicolleague_pipelines.lib.agents.risk.score_findings`: runtime findings ×
    (1 + 0.6 × frequency of the last 7 days), other findings on a failing component × (1 + 0.25 ×
    frequency) — "raised" by what the org reports — capped at 100; re-sorted riskiest first."""
    if rt is None:
        return findings
    ref = rt.reference(today)
    per_comp: dict[str, _Agg] = defaultdict(_Agg)
    for g in rt.groups:
        if g.component:
            per_comp[g.component].groups.append(g)
    for f in findings:
        agg = per_comp.get(f.component)
        if agg is None:
            continue
        recent = agg.recent(ref)
        freq = frequency(recent)
        factor = 1 + (0.6 if f.category == "runtime" else 0.25) * freq
        if f.category != "runtime" and recent:
            f.extra["runtime_failures_7d"] = recent
        f.risk = round(min(100.0, f.risk * factor), 1)
        f.risk_parts["frequency"] = round(freq, 3)
        f.risk_parts["runtime_failures_7d"] = float(recent)
    findings.sort(key=lambda f: (-f.risk, f.rule_id, f.component, f.discriminator))
    return findings


# --- monitor -------------------------------------------------------------------------------------


def weekly_adjusted(points: list[tuple[str, float]], *, min_days: int = 21,
                    min_effect: float = 0.15) -> list[tuple[str, float]]:
    """A daily series divided by its day-of-week factors, when it has ``min_days`` days and a
    weekly rhythm of at least ``min_effect`` that stands out of the noise — so quiet weekends
    are not "drops" and busy Mondays not "spikes".

    Each day is compared with the median of the 7 days around it (one of each weekday, so the
    ratio is free of level shifts); a weekday's factor is the median of its ratios. The rhythm
    counts when the largest factor's distance from 1 exceeds three standard errors of a
    median of that many days (robust within-weekday scale)."""
    n = len(points)
    if n < min_days:
        return points
    vals = np.asarray([v for _, v in points], dtype=float)
    if float(np.median(vals)) < 5:
        return points  # sparse counts: no reliable rhythm
    wds = [date.fromisoformat(d[:10]).weekday() for d, _ in points]
    ratios: dict[int, list[float]] = defaultdict(list)
    for i, v in enumerate(vals):
        lo = min(max(0, i - 3), n - 7)
        trend = float(np.median(vals[lo:lo + 7]))
        if trend > 0:
            ratios[wds[i]].append(v / trend)
    if len(ratios) < 7 or min(len(r) for r in ratios.values()) < 3:
        return points
    factors = {wd: float(np.median(r)) for wd, r in ratios.items()}
    within = 1.4826 * float(np.median([abs(x - factors[wd]) for wd, r in ratios.items() for x in r]))
    se = 1.2533 * within / math.sqrt(min(len(r) for r in ratios.values()))
    effect = max(abs(f - 1) for f in factors.values())
    if min(factors.values()) <= 0.05 or effect < min_effect or effect < 3 * se:
        return points
    return [(d, round(v / factors[wd], 3)) for (d, v), wd in zip(points, wds)]


def runtime_series(store: SignalStore, *, adjust: bool = True) -> dict[str, list[tuple[str, float]]]:
    """The baselined series: errors per day (each signal and ``errors_total``), volumes per day
    (adjusted for the day of the week when they have a weekly rhythm) and the ``/limits`` usage
    snapshots."""
    daily = store.daily_series(list(ERROR_METRICS + VOLUME_METRICS))
    series: dict[str, list[tuple[str, float]]] = dict(daily)
    errs = [daily[m] for m in ERROR_METRICS if m in daily]
    if errs:
        series["errors_total"] = [(errs[0][i][0], sum(s[i][1] for s in errs)) for i in range(len(errs[0]))]
    if adjust:
        series = {k: weekly_adjusted(v) for k, v in series.items()}
    limits = store.limit_series()
    series.update({k: v for k, v in limits.items() if k in LIMIT_METRICS})
    return series


def runtime_anomalies(store: SignalStore, **kw: Any) -> list[Anomaly]:
    """Anomalies reaching the newest point of their series (older ones were news before). On a
    partial last day only spikes count (a day read half-way always looks low)."""
    series = runtime_series(store)
    partial = not store.last_day_complete()
    out = []
    for a in detect_all(series, **kw):
        pts = series.get(a.metric or "", [])
        if not pts or a.index + a.points - 1 < len(pts) - 1:
            continue
        if partial and a.direction == "drop" and not str(a.metric).startswith("limit:"):
            continue
        out.append(a)
    return out


def runtime_alerts(org: str, anomalies: Iterable[Anomaly]) -> list[Any]:
    from aicolleague_pipelines.lib.agents.alerts import Alert

    alerts = []
    for a in anomalies:
        kind = ("errors" if a.metric in ERROR_METRICS or a.metric == "errors_total"
                else "limits" if str(a.metric).startswith("limit:") else "volume")
        severity = a.severity
        if kind == "errors" and a.direction == "spike" and severity in ("low", "medium"):
            severity = "high"  # more failures than usual is never merely informational
        alerts.append(Alert(
            severity=severity, title=f"{org}: runtime {a.metric} {a.direction}",
            text=f"{a.describe()}. Baseline: median/MAD of the previous days"
                 + (" (daily values adjusted for the day of the week)." if kind != "limits" else "."), org=org,
            key=f"runtime:{org}:{a.metric}:{a.timestamp}",
            extra={"metric": a.metric, "score": round(a.score, 2), "kind": kind},
        ))
    return alerts


# --- insight -------------------------------------------------------------------------------------


def runtime_insight(store: SignalStore, today: str, top: int = 10) -> dict[str, Any] | None:
    """Error trend per ISO week, the last 7 days against the 7 before, the components with the
    most runtime failures, coverage and the notes of the latest run; None without history."""
    groups = store.failure_groups()
    state = store.state()
    if not groups and not state:
        return None
    rt = RuntimeContext(tuple(groups), covered_until=state.get("covered_until"))
    ref = rt.reference(today)
    series = store.daily_series(list(ERROR_METRICS))
    per_day: dict[str, float] = defaultdict(float)
    for pts in series.values():
        for d, v in pts:
            per_day[d] += v
    weeks: dict[str, float] = defaultdict(float)
    for d, v in per_day.items():
        day = date.fromisoformat(d)
        weeks[(day - timedelta(days=day.weekday())).isoformat()] += v
    end = _ts(ref).date()
    last7 = sum(v for d, v in per_day.items() if (end - date.fromisoformat(d)).days in range(0, 7))
    prev7 = sum(v for d, v in per_day.items() if (end - date.fromisoformat(d)).days in range(7, 14))
    per_comp: dict[str, _Agg] = defaultdict(_Agg)
    for g in groups:
        per_comp[g.component].groups.append(g)
    ranked = sorted(((k, a) for k, a in per_comp.items() if k), key=lambda kv: (-kv[1].count, kv[0]))
    coverage = store.coverage() or {}
    last_run = state.get("last_run") or {}
    return {
        "covered": list(store.covered()),
        "failures_total": sum(g.count for g in groups),
        "failures_by_signal": dict(sorted(_count_by(groups, "signal").items())),
        "unattributed": per_comp[""].count if "" in per_comp else 0,
        "last_7_days": last7, "previous_7_days": prev7,
        "change_pct": None if not prev7 else round(100 * (last7 - prev7) / prev7, 1),
        "weekly_errors": [{"week": w, "errors": v} for w, v in sorted(weeks.items())][-12:],
        "top_components": [{"component": k, "failures": a.count, "last_7_days": a.recent(ref),
                            "last_seen": max(g.last_seen for g in a.groups),
                            "error_types": sorted({g.error_type for g in a.groups})[:4]}
                           for k, a in ranked[:top]],
        "coverage_org_wide": coverage.get("org_wide"),
        "lowest_coverage": sorted((coverage.get("components") or {}).items(), key=lambda kv: kv[1])[:5],
        "notes": list(last_run.get("notes") or []),
    }


def _count_by(groups: Iterable[FailureGroup], attr: str) -> dict[str, int]:
    c: dict[str, int] = defaultdict(int)
    for g in groups:
        c[getattr(g, attr)] += g.count
    return c


def runtime_markdown(d: dict[str, Any] | None) -> str:
    """The Insight report's runtime section."""
    if not d:
        return ""
    change = "" if d.get("change_pct") is None else f" ({d['change_pct']:+g}% against the 7 days before)"
    L = ["### Runtime errors", "",
         f"{d['failures_total']} failures recorded ({', '.join(f'{k}: {v}' for k, v in d['failures_by_signal'].items()) or 'none'}); "
         f"{d['last_7_days']:g} in the last 7 days{change}. Covered: {d['covered'][0] or '—'} → {d['covered'][1] or '—'}.",
         ""]
    if d["weekly_errors"]:
        L += ["| week of | errors |", "|---|---:|", *[f"| {w['week']} | {w['errors']:g} |" for w in d["weekly_errors"]],
              ""]
    if d["top_components"]:
        L += ["Components with the most runtime failures:", "",
              "| component | failures | last 7 days | last seen | errors |", "|---|---:|---:|---|---|",
              *[f"| `{c['component']}` | {c['failures']} | {c['last_7_days']} | {c['last_seen']} | "
                f"{', '.join(c['error_types'])} |" for c in d["top_components"]], ""]
    if d.get("unattributed"):
        L += [f"{d['unattributed']} failures could not be attributed to a component (managed code hides its "
              "stack trace).", ""]
    if d.get("coverage_org_wide") is not None:
        low = ", ".join(f"`{k}` {v:g}%" for k, v in d.get("lowest_coverage") or [])
        L += [f"Org-wide Apex coverage: {d['coverage_org_wide']:g}%" + (f"; lowest: {low}" if low else "") + ".", ""]
    if d.get("notes"):
        L += ["Signals not read: " + "; ".join(d["notes"]), ""]
    return "\n".join(L)


# --- sensor --------------------------------------------------------------------------------------


def signals_interval(latest_limits: dict[str, Any] | None, calls_per_run: int, *, share: float = 0.02,
                     min_seconds: int = 300, max_seconds: int = 6 * 3600) -> tuple[int, str]:
    """Seconds between incremental signals runs of one org, and why.

    At most ``share`` of the daily API allowance (``DailyApiRequests.Max``) goes to signals
    runs of ``calls_per_run`` calls each; below 10% remaining the longest interval applies
    (the org's other integrations need what is left). Clamped to ``[min_seconds, max_seconds]``.
    """
    api = ((latest_limits or {}).get("limits") or {}).get("DailyApiRequests")
    if not api or not api.get("max"):
        return max_seconds, "no /limits reading yet: the longest interval"
    mx, remaining = float(api["max"]), float(api.get("remaining") or 0)
    if remaining < 0.1 * mx:
        return max_seconds, f"only {remaining:.0f} of {mx:.0f} daily API requests left"
    per_day = max(1.0, share * mx / max(1, calls_per_run))
    seconds = int(min(max_seconds, max(min_seconds, 86400 / per_day)))
    return seconds, (f"{share:.0%} of {mx:.0f} daily API requests at {calls_per_run} calls per run "
                     f"→ every {seconds // 60} min")
