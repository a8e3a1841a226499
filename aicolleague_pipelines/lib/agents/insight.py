"""Insight: what an org looks like as a whole, and how it compares with other orgs (no LLM).

:func:`org_insight` reads one org's current snapshot (plus its kept snapshots for trends) and
the Triage findings, and returns an :class:`OrgInsight`:

- **hotspots**: the components everything hangs on, by PageRank along dependency edges and by
  transitive dependents (impact closure size); external placeholder nodes are left out;
- **complexity / tech debt**: components per type, Apex classes/triggers and their lines,
  flows and triggers per object, the objects with the most fields, unused components,
  dependency cycles, references to other namespaces, components without description, API
  versions and the share three or more years old;
- an **org health score** 0–100 with its breakdown (formula below);
- **trends** over the kept snapshots (nodes, edges, components per type) and, when a
  ``history`` of earlier runs is passed, findings and health over time;
- **plots** (PNG, matplotlib Agg) embedded in :meth:`OrgInsight.to_markdown`;
- **recommendations** ranked by impact, each citing component keys and rule ids.

:func:`cross_org_insight` compares orgs pairwise (default: every pair): components only in
one org, components in both whose ``content_hash`` / ``api_version`` / ``status`` differ, and
the health scores side by side.

Health score
------------
``score = 100 − (findings + unused + cycles + old_api + descriptions)``, each penalty capped
(the caps add up to 100, so the score stays within 0–100):

==============  =====  ==================================================================
part            cap    penalty
==============  =====  ==================================================================
findings        50     ``50 · (1 − exp(−d / 150))`` where ``d`` = severity-weighted findings
                       per 100 components (weights: critical 10, high 5, medium 2, low 0.5,
                       info 0.1; components = defined, non-external nodes). Strictly grows
                       with every extra finding, never reaches the cap.
unused          15     ``15 · min(1, share / 0.5)``; share = unused components (nothing
                       depends on them except structurally; types of
                       ``queries.DEFAULT_UNUSED_TYPES``, test classes left out) /
                       components of those types.
cycles          10     ``min(10, 2 · cycles)`` (strongly connected components and self loops).
old_api         15     ``15 · share`` of components with an ``api_version`` released three or
                       more years before ``today``.
descriptions    10     ``10 · share`` of components (with a ``has_description`` attribute)
                       that have none.
==============  =====  ==================================================================

Each penalty is rounded to 2 decimals and the score is ``100 −`` their sum, so the breakdown
adds up exactly (:meth:`HealthScore.contributions`).

Recommendation impact
---------------------
``impact = health_gain · blast`` where ``health_gain`` is the number of health points won back
by acting on exactly the cited components (for findings on one component: the drop in the
findings penalty if they were all fixed; for structural debt — at most 10 unused components,
one cycle, at most 10 old-API components, at most 10 undescribed hotspots — the drop of that
part's penalty) and ``blast = 1 + log10(1 + dependents)``
(transitive dependents of the component; 1 for org-wide items). So critical/high findings on
the most depended-on components come first.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from itertools import combinations
from typing import Any

import numpy as np

from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.graph.model import TRIGGER_ON, Edge, Node
from aicolleague_pipelines.lib.graph.queries import DEFAULT_UNUSED_TYPES
from aicolleague_pipelines.lib.graph.render import png_markdown
from aicolleague_pipelines.lib.graph.store import GraphStore

# --- the health formula's constants (see the module docstring) ------------------------------
HEALTH_SEVERITY_WEIGHT: dict[str, float] = {"critical": 10.0, "high": 5.0, "medium": 2.0, "low": 0.5, "info": 0.1}
HEALTH_CAPS: dict[str, float] = {"findings": 50.0, "unused": 15.0, "cycles": 10.0, "old_api": 15.0, "descriptions": 10.0}
_PLATFORM_TYPE_PREFIXES = ("Metabase", "Warehouse", "Chargebee", "Intercom", "Api")
FINDINGS_SCALE = 150.0  # weighted findings per 100 components that cost 63 % of the cap
UNUSED_SATURATION = 0.5  # an unused share of 50 % costs the whole cap
CYCLE_POINTS = 2.0  # per cycle
OLD_API_YEARS = 3.0

#: Up to this many defined components, the transitive dependents of every component are
#: computed; above it, only for candidates (top PageRank, top in-degree, components with findings).
EXACT_CLOSURE_LIMIT = 5000

_SEV_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_NS_SUFFIXES = {"c", "r", "mdt", "e", "b", "x", "s", "kav", "ka", "share", "history", "feed", "xo", "chn", "hd", "pc", "pr"}
_LINE_RE = re.compile(r":(\d+)$")
_APEX_TYPES = ("ApexClass", "ApexTrigger")

#: Node attributes compared between orgs.
DRIFT_ATTRS = ("content_hash", "api_version", "status")


# --- small helpers ----------------------------------------------------------------------------
def api_release_date(version: Any) -> date | None:
    """Approximate GA date of an API version (three releases a year; v62.0 = Sept 2024)."""
    try:
        v = float(version)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v <= 0:
        return None
    k, r = divmod(int(round(v)) - 62, 3)
    if r == 0:
        return date(2024 + k, 9, 1)
    if r == 1:
        return date(2025 + k, 2, 1)
    return date(2025 + k, 6, 1)


def _parse_day(today: str) -> date | None:
    try:
        return date.fromisoformat(str(today)[:10])
    except ValueError:
        return None


def namespace_of(node: Node) -> str | None:
    """The namespace prefix of a component (``npe01`` in ``Contact.npe01__WorkEmail__c``)."""
    ns = node.attrs.get("namespace") if node.attrs else None
    if ns:
        return str(ns)
    for part in node.name.split("."):
        bits = part.split("__")
        if len(bits) >= 3 and bits[0]:
            return bits[0]
        if len(bits) == 2 and bits[0] and bits[1] and bits[1].lower() not in _NS_SUFFIXES:
            return bits[0]
    return None


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _findings_penalty(weighted: float, components: int) -> float:
    density = 100.0 * weighted / max(components, 1)
    return HEALTH_CAPS["findings"] * (1.0 - math.exp(-density / FINDINGS_SCALE))


def _weight(f: Finding) -> float:
    return HEALTH_SEVERITY_WEIGHT.get(str(f.severity).lower(), 0.0)


# --- result types -------------------------------------------------------------------------------
@dataclass
class Hotspot:
    key: str
    type: str
    pagerank: float
    dependents: int  # transitive (impact closure size)
    direct_dependents: int  # distinct components with an edge to it
    findings: int = 0  # findings on it
    worst_severity: str | None = None
    has_description: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pagerank"] = round(self.pagerank, 6)
        return d


@dataclass
class HealthPart:
    name: str
    penalty: float  # points subtracted from 100 (rounded to 2 decimals)
    cap: float
    measure: float  # the quantity the penalty comes from (density, share, count)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "penalty": self.penalty, "cap": self.cap,
            "measure": round(self.measure, 4), "detail": self.detail,
        }


@dataclass
class HealthScore:
    score: float
    parts: list[HealthPart]
    base: float = 100.0

    def contributions(self) -> dict[str, float]:
        """``{"base": 100, part: −penalty, …}``: the values add up to :attr:`score`."""
        out = {"base": self.base}
        out.update({p.name: -p.penalty for p in self.parts})
        return out

    def part(self, name: str) -> HealthPart:
        return next(p for p in self.parts if p.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "base": self.base, "parts": [p.to_dict() for p in self.parts],
            "formula": "score = 100 - sum(penalties); see aicolleague_pipelines.lib.agents.insight",
        }


@dataclass
class Recommendation:
    rank: int
    kind: str  # "findings" | "unused" | "cycles" | "old_api" | "descriptions"
    title: str
    impact: float
    health_gain: float
    dependents: int
    components: list[str]  # keys present in the org's graph
    rule_ids: list[str]
    detail: str
    #: Cited keys that are not in the graph (findings on components the graph doesn't know).
    other_refs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["impact"] = round(self.impact, 3)
        d["health_gain"] = round(self.health_gain, 3)
        return d


@dataclass
class Complexity:
    components: int
    external: int
    edges: int
    types: dict[str, int]
    apex_classes: int
    apex_test_classes: int
    apex_triggers: int
    #: Lines of Apex: exact where a node carries ``lines``; otherwise a lower bound, the highest
    #: source line cited by the component's dependency evidence.
    apex_lines: int
    apex_lines_exact: int  # how many Apex components had an exact line count
    apex_lines_basis: str
    apex_largest: list[tuple[str, int]]
    flows: int
    flows_by_status: dict[str, int]
    flows_per_object: dict[str, int]
    triggers_per_object: dict[str, int]
    fields_per_object_top5: list[tuple[str, int]]
    unused: int
    unused_considered: int  # components of the types looked at
    unused_examples: list[str]
    cycles: int
    cycle_examples: list[list[str]]
    external_namespaces: dict[str, int]  # namespace → external components referenced
    without_description: int
    description_known: int
    api_versions: dict[str, int]
    api_version_known: int
    api_old: int  # released >= 3 years before today
    api_old_examples: list[str]

    @property
    def unused_share(self) -> float:
        return self.unused / self.unused_considered if self.unused_considered else 0.0

    @property
    def missing_description_share(self) -> float:
        return self.without_description / self.description_known if self.description_known else 0.0

    @property
    def old_api_share(self) -> float:
        return self.api_old / self.api_version_known if self.api_version_known else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["apex_largest"] = [list(x) for x in self.apex_largest]
        d["fields_per_object_top5"] = [list(x) for x in self.fields_per_object_top5]
        d["unused_share"] = round(self.unused_share, 4)
        d["missing_description_share"] = round(self.missing_description_share, 4)
        d["old_api_share"] = round(self.old_api_share, 4)
        return d


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _short_ts(ts: str) -> str:
    return str(ts)[:16].replace("T", " ")


@dataclass
class OrgInsight:
    org: str
    today: str
    version: int | None
    created_at: str | None
    hotspots_pagerank: list[Hotspot]
    hotspots_dependents: list[Hotspot]
    complexity: Complexity
    health: HealthScore
    #: One row per kept snapshot, oldest first: version, created_at, nodes, edges,
    #: components, external, types {type: defined components}.
    trends: list[dict[str, Any]]
    #: ``history`` rows (timestamp, findings, health) plus this run's (last).
    findings_history: list[dict[str, Any]]
    findings_by_severity: dict[str, int]
    findings_by_rule: dict[str, int]
    recommendations: list[Recommendation]
    _plots: dict[str, bytes] | None = field(default=None, repr=False, compare=False)
    #: Runtime errors: trend and the most failing components
    #: (:func:`aicolleague_pipelines.lib.agents.runtime.runtime_insight`), when signals exist.
    runtime: dict[str, Any] | None = None

    # --- outputs -------------------------------------------------------------------------
    def history_point(self) -> dict[str, Any]:
        """This run's row for the ``history`` of the next run."""
        return dict(self.findings_history[-1])

    def hotspot_keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for h in [*self.hotspots_pagerank, *self.hotspots_dependents]:
            seen.setdefault(h.key)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "today": self.today,
            "version": self.version,
            "created_at": self.created_at,
            "health": self.health.to_dict(),
            "hotspots": {
                "by_pagerank": [h.to_dict() for h in self.hotspots_pagerank],
                "by_dependents": [h.to_dict() for h in self.hotspots_dependents],
            },
            "complexity": self.complexity.to_dict(),
            "trends": [dict(t, types=dict(t["types"])) for t in self.trends],
            "findings": {
                "total": sum(self.findings_by_severity.values()),
                "by_severity": dict(self.findings_by_severity),
                "by_rule": dict(self.findings_by_rule),
                "history": [dict(h) for h in self.findings_history],
            },
            "recommendations": [r.to_dict() for r in self.recommendations],
            "runtime": self.runtime,
        }

    def plots(self) -> dict[str, bytes]:
        """PNG pictures by name (made once, on first use)."""
        if self._plots is None:
            self._plots = self._make_plots()
        return self._plots

    def _make_plots(self) -> dict[str, bytes]:
        plt = _plt()
        out: dict[str, bytes] = {}
        # health breakdown
        fig, ax = plt.subplots(figsize=(6.5, 2.6), dpi=80)
        names = [p.name for p in self.health.parts]
        ax.barh(names, [p.cap for p in self.health.parts], color="#e8e8e8", label="cap")
        ax.barh(names, [p.penalty for p in self.health.parts], color="#d62728", label="penalty")
        ax.invert_yaxis()
        ax.set_xlabel("points off 100")
        ax.set_title(f"{self.org}: health {self.health.score:g} / 100")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
        out["health"] = _png(fig)
        # components per type
        types = sorted(self.complexity.types.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        if types:
            fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(types) + 0.8), dpi=80)
            ax.barh([t for t, _ in types], [n for _, n in types], color="#1f77b4")
            ax.invert_yaxis()
            ax.set_xlabel("components")
            ax.set_title(f"{self.org}: components per type")
            out["types"] = _png(fig)
        # trends over snapshots
        if self.trends:
            fig, ax = plt.subplots(figsize=(6.5, 2.8), dpi=80)
            xs = list(range(len(self.trends)))
            ax.plot(xs, [t["nodes"] for t in self.trends], marker="o", label="nodes")
            ax.plot(xs, [t["edges"] for t in self.trends], marker="s", label="edges")
            ax.plot(xs, [t["components"] for t in self.trends], marker="^", label="components")
            ax.set_xticks(xs, [f"v{t['version']}" for t in self.trends], fontsize=7)
            ax.set_title(f"{self.org}: graph size over the kept snapshots")
            ax.legend(fontsize=7, frameon=False)
            out["trend"] = _png(fig)
        # findings and health over runs
        if len(self.findings_history) > 1:
            fig, ax = plt.subplots(figsize=(6.5, 2.8), dpi=80)
            xs = list(range(len(self.findings_history)))
            ax.plot(xs, [h.get("findings") or 0 for h in self.findings_history], marker="o",
                    color="#d62728", label="findings")
            ax.set_ylabel("findings")
            ax2 = ax.twinx()
            ax2.plot(xs, [h.get("health") if h.get("health") is not None else np.nan for h in self.findings_history],
                     marker="s", color="#2ca02c", label="health")
            ax2.set_ylabel("health")
            ax2.set_ylim(0, 100)
            ax.set_xticks(xs, [_short_ts(h.get("timestamp", ""))[:10] for h in self.findings_history],
                          fontsize=7, rotation=30)
            ax.set_title(f"{self.org}: findings and health over runs")
            out["history"] = _png(fig)
        return out

    def to_markdown(self, *, plots: bool = True, max_rows: int = 15) -> str:
        c = self.complexity
        h = self.health
        pics = self.plots() if plots else {}
        L: list[str] = [
            f"## Insight: org `{self.org}`",
            "",
            f"Snapshot v{self.version} ({self.created_at}), reference date {self.today}. "
            f"{c.components} components ({c.external} external references), {c.edges} dependencies, "
            f"{sum(self.findings_by_severity.values())} findings.",
            "",
            f"### Health score: **{h.score:g} / 100**",
            "",
            "100 minus capped penalties (formula in `aicolleague_pipelines.lib.agents.insight`).",
            "",
            "| part | penalty | cap | measure |",
            "|---|---:|---:|---|",
            *[f"| {p.name} | −{p.penalty:g} | {p.cap:g} | {_md_escape(p.detail)} |" for p in h.parts],
            f"| **score** | **{h.score:g}** | | 100 − {sum(p.penalty for p in h.parts):.2f} |",
            "",
        ]
        if "health" in pics:
            L += [png_markdown(pics["health"], f"health breakdown of {self.org}"), ""]
        L += ["### Top recommendations", ""]
        if not self.recommendations:
            L += ["Nothing to recommend.", ""]
        for r in self.recommendations:
            keys = ", ".join(f"`{k}`" for k in r.components[:8]) + (" …" if len(r.components) > 8 else "")
            rules = ", ".join(f"`{x}`" for x in r.rule_ids[:8]) or "—"
            L.append(
                f"{r.rank}. **{_md_escape(r.title)}** — impact {r.impact:.2f} (+{r.health_gain:.2f} health). "
                f"{_md_escape(r.detail)} Components: {keys or '—'}. Rules: {rules}."
            )
        L += ["", "### Hotspots", "", "By PageRank (what many components depend on, directly or not):", "",
              "| # | component | type | PageRank | dependents | direct | findings |",
              "|---:|---|---|---:|---:|---:|---:|"]
        for i, x in enumerate(self.hotspots_pagerank[:max_rows], 1):
            L.append(f"| {i} | `{_md_escape(x.key)}` | {x.type} | {x.pagerank:.4f} | {x.dependents} | "
                     f"{x.direct_dependents} | {x.findings} |")
        L += ["", "By transitive dependents (what a change can break):", "",
              "| # | component | type | dependents | direct | PageRank | findings |",
              "|---:|---|---|---:|---:|---:|---:|"]
        for i, x in enumerate(self.hotspots_dependents[:max_rows], 1):
            L.append(f"| {i} | `{_md_escape(x.key)}` | {x.type} | {x.dependents} | {x.direct_dependents} | "
                     f"{x.pagerank:.4f} | {x.findings} |")
        L += [
            "", "### Complexity and tech debt", "",
            "| indicator | value |", "|---|---|",
            f"| Apex classes (tests) | {c.apex_classes} ({c.apex_test_classes}) |",
            f"| Apex triggers | {c.apex_triggers} |",
            f"| Apex lines | {c.apex_lines} ({_md_escape(c.apex_lines_basis)}) |",
            f"| flows | {c.flows} ({', '.join(f'{k}: {v}' for k, v in sorted(c.flows_by_status.items())) or '—'}) |",
            f"| unused components | {c.unused} of {c.unused_considered} ({_pct(c.unused_share)}) |",
            f"| dependency cycles | {c.cycles} |",
            f"| components without description | {c.without_description} of {c.description_known} "
            f"({_pct(c.missing_description_share)}) |",
            f"| API version {OLD_API_YEARS:g}+ years old | {c.api_old} of {c.api_version_known} ({_pct(c.old_api_share)}) |",
            f"| external references to other namespaces | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(c.external_namespaces.items())) or 'none'} |",
            "",
        ]
        if "types" in pics:
            L += [png_markdown(pics["types"], f"components per type in {self.org}"), ""]
        else:
            L += ["| type | components |", "|---|---:|", *[f"| {t} | {n} |" for t, n in sorted(c.types.items())], ""]
        L += ["| object | fields | flows | triggers |", "|---|---:|---:|---:|"]
        objs = [o for o, _ in c.fields_per_object_top5]
        objs += sorted((set(c.flows_per_object) | set(c.triggers_per_object)) - set(objs))
        fields = dict(c.fields_per_object_top5)
        for o in objs[:max_rows]:
            L.append(f"| {o} | {fields.get(o, '')} | {c.flows_per_object.get(o, 0)} | {c.triggers_per_object.get(o, 0)} |")
        if c.apex_largest:
            L += ["", "Largest Apex: " + ", ".join(f"`{k}` ({n})" for k, n in c.apex_largest)]
        if c.api_versions:
            L += ["", "API versions: " + ", ".join(
                f"{v}: {n}" for v, n in sorted(c.api_versions.items(), key=lambda kv: -float(kv[0]) if _isnum(kv[0]) else 0)
            )]
        if c.cycle_examples:
            L += ["", "Cycles: " + "; ".join(" ↔ ".join(f"`{k}`" for k in cyc[:6]) for cyc in c.cycle_examples)]
        L += ["", "### Trends", "", "| snapshot | created | nodes | edges | components |", "|---|---|---:|---:|---:|"]
        for t in self.trends:
            L.append(f"| v{t['version']} | {_short_ts(t['created_at'])} | {t['nodes']} | {t['edges']} | {t['components']} |")
        changed = _changed_types(self.trends)
        if changed:
            L += ["", "Types whose count changed: " + ", ".join(
                f"{t} {' → '.join(str(v) for v in vals)}" for t, vals in changed[:max_rows]
            )]
        if "trend" in pics:
            L += ["", png_markdown(pics["trend"], f"graph size of {self.org} over time")]
        if len(self.findings_history) > 1:
            L += ["", "| run | findings | health |", "|---|---:|---:|"]
            L += [f"| {_short_ts(r.get('timestamp', ''))} | {r.get('findings', '')} | "
                  f"{'' if r.get('health') is None else r.get('health')} |" for r in self.findings_history]
            if "history" in pics:
                L += ["", png_markdown(pics["history"], f"findings and health of {self.org} over runs")]
        L += ["", "### Findings", "", "| severity | findings |", "|---|---:|",
              *[f"| {s} | {n} |" for s, n in self.findings_by_severity.items()]]
        if self.runtime:
            from aicolleague_pipelines.lib.agents.runtime import runtime_markdown

            L += ["", runtime_markdown(self.runtime)]
        return "\n".join(L) + "\n"


def _isnum(s: Any) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


def _changed_types(trends: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    if len(trends) < 2:
        return []
    names = sorted(set().union(*(t["types"] for t in trends)))
    out = []
    for n in names:
        vals = [int(t["types"].get(n, 0)) for t in trends]
        if len(set(vals)) > 1:
            out.append((n, vals))
    return out


# --- org insight ---------------------------------------------------------------------------------
def _type_counts(idx) -> dict[str, int]:
    ext = np.asarray(idx.external, dtype=bool)
    if not idx.n:
        return {}
    counts = np.bincount(np.asarray(idx.type_codes)[~ext], minlength=len(idx.type_names))
    return {name: int(c) for name, c in zip(idx.type_names, counts.tolist()) if c}


def _normalise_history(history: list[dict] | None) -> list[dict[str, Any]]:
    out = []
    for row in history or []:
        if not isinstance(row, dict):
            continue
        ts = row.get("timestamp", row.get("created_at", row.get("date", "")))
        fc = row.get("findings", row.get("findings_count"))
        if isinstance(fc, (list, tuple)):
            fc = len(fc)
        hs = row.get("health", row.get("health_score"))
        if isinstance(hs, dict):
            hs = hs.get("score")
        out.append({"timestamp": str(ts), "findings": None if fc is None else int(fc),
                    "health": None if hs is None else float(hs)})
    out.sort(key=lambda r: r["timestamp"])
    return out


def org_insight(
    store: GraphStore,
    org: str,
    findings: Iterable[Finding],
    *,
    top: int = 15,
    today: str,
    history: list[dict] | None = None,
    max_recommendations: int = 10,
    runtime: dict[str, Any] | None = None,
) -> OrgInsight:
    """Hotspots, complexity, health, trends and recommendations of ``org``'s current snapshot.

    ``findings``: the Triage findings of this org (findings of other orgs are ignored).
    ``today``: ISO date, the reference for API-version age (reproducible results).
    ``history``: earlier runs as dicts ``{"timestamp", "findings", "health"}`` (aliases
    ``created_at``/``findings_count``/``health_score`` accepted); this run's row is appended
    (see :meth:`OrgInsight.history_point`).
    ``runtime``: the org's runtime-error summary (:func:`~aicolleague_pipelines.lib.agents.runtime.runtime_insight`).
    """
    snaps = store.snapshots(org)  # raises UnknownOrgError for an unknown org
    current = snaps[-1] if snaps else None
    version = current.version if current else None
    idx = store.graph_index(org, version)
    nodes: dict[str, Node] = {n.key: n for n in store.nodes(org, version)}
    edges: list[Edge] = store.edges(org, version)
    fs = [f for f in findings if not f.org or f.org == org]
    day = _parse_day(today)

    ext = np.asarray(idx.external, dtype=bool)
    defined_ids = np.flatnonzero(~ext)
    n_components = int(defined_ids.size)

    # --- findings per component
    by_comp: dict[str, list[Finding]] = defaultdict(list)
    for f in fs:
        by_comp[f.component].append(f)

    # --- hotspots
    pr = idx.pagerank() if idx.n else np.zeros(0)
    indeg_distinct = np.zeros(idx.n, np.int64)
    if idx.e:
        keep = idx.src != idx.dst
        pairs = np.unique(np.stack([idx.dst[keep].astype(np.int64), idx.src[keep].astype(np.int64)]), axis=1)
        indeg_distinct = np.bincount(pairs[0], minlength=idx.n) if pairs.size else indeg_distinct
    closure_cache: dict[int, int] = {}

    def dependents(nid: int) -> int:
        if nid not in closure_cache:
            closure_cache[nid] = len(idx.closure(nid, reverse=True))
        return closure_cache[nid]

    if n_components <= EXACT_CLOSURE_LIMIT:
        candidates = defined_ids.tolist()
    else:
        k = max(top * 4, 50)
        cand = set()
        for arr in (pr, indeg_distinct.astype(float)):
            sc = np.where(ext, -np.inf, arr)
            part = np.argpartition(-sc, min(k, sc.size - 1))[:k]
            cand.update(int(i) for i in part if not ext[i])
        candidates = sorted(cand)
    for nid in candidates:
        dependents(nid)

    def hotspot(nid: int) -> Hotspot:
        key = idx.keys[nid]
        fl = by_comp.get(key, [])
        worst = min((f.severity for f in fl), key=lambda s: _SEV_ORDER.get(s, 9), default=None)
        nd = nodes.get(key)
        hd = nd.attrs.get("has_description") if nd else None
        return Hotspot(key, idx.type_of(nid), float(pr[nid]), dependents(nid), int(indeg_distinct[nid]),
                       len(fl), worst, None if hd is None else bool(hd))

    pr_def = np.where(ext, -np.inf, pr) if idx.n else pr
    by_pr = [int(i) for i in np.argsort(-pr_def, kind="stable")[: min(top, n_components)]]
    by_dep = sorted(candidates, key=lambda i: (-closure_cache[i], -float(pr[i]), idx.keys[i]))[:top]
    hotspots_pr = [hotspot(i) for i in by_pr]
    hotspots_dep = [hotspot(i) for i in by_dep]

    # --- complexity
    complexity = _complexity(idx, nodes, edges, day)

    # --- health
    # Findings density is per Salesforce component: platform nodes joined into the graph
    # (Metabase cards, warehouse columns …) must not dilute it.
    n_salesforce = sum(
        1 for n in nodes.values() if not n.external and not n.type.startswith(_PLATFORM_TYPE_PREFIXES)
    )
    health = _health(fs, n_salesforce or n_components, complexity)

    # --- trends
    trends = []
    for s in snaps:
        sidx = idx if s.version == version else store.graph_index(org, s.version)
        sext = np.asarray(sidx.external, dtype=bool)
        trends.append({
            "version": s.version, "created_at": s.created_at, "nodes": s.node_count, "edges": s.edge_count,
            "components": int((~sext).sum()), "external": int(sext.sum()), "types": _type_counts(sidx),
        })
    hist = _normalise_history(history)
    now_ts = current.created_at if current else str(today)
    point = {"timestamp": now_ts, "findings": len(fs), "health": health.score}
    hist = [h for h in hist if h["timestamp"] != now_ts] + [point]

    sev = Counter(str(f.severity).lower() for f in fs)
    by_sev = {s: sev.get(s, 0) for s in ("critical", "high", "medium", "low", "info")}
    by_sev.update({s: n for s, n in sev.items() if s not in by_sev})
    by_rule = dict(Counter(f.rule_id for f in fs).most_common())

    recs = _recommendations(idx, nodes, fs, by_comp, n_components, complexity, health, hotspots_pr + hotspots_dep,
                            dependents, max_recommendations)
    return OrgInsight(
        org=org, today=str(today), version=version, created_at=current.created_at if current else None,
        hotspots_pagerank=hotspots_pr, hotspots_dependents=hotspots_dep, complexity=complexity, health=health,
        trends=trends, findings_history=hist, findings_by_severity=by_sev, findings_by_rule=by_rule,
        recommendations=recs, runtime=runtime,
    )


def _complexity(idx, nodes: dict[str, Node], edges: list[Edge], day: date | None) -> Complexity:
    defined = [n for n in nodes.values() if not n.external]
    external = [n for n in nodes.values() if n.external]
    types = dict(sorted(Counter(n.type for n in defined).items()))

    # Apex and its lines
    apex = [n for n in defined if n.type in _APEX_TYPES]
    max_line: dict[str, int] = {}
    for e in edges:
        if e.source.startswith(("ApexClass:", "ApexTrigger:")):
            m = _LINE_RE.search(e.evidence or "")
            if m:
                v = int(m.group(1))
                if v > max_line.get(e.source, 0):
                    max_line[e.source] = v
    lines: dict[str, int] = {}
    exact = 0
    for n in apex:
        v = n.attrs.get("lines", n.attrs.get("line_count"))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lines[n.key] = int(v)
            exact += 1
        elif n.key in max_line:
            lines[n.key] = max_line[n.key]
    basis = (
        "exact line counts" if exact == len(apex) and apex else
        f"{exact} exact, the rest a lower bound: the highest source line cited by a dependency"
    )
    largest = sorted(lines.items(), key=lambda kv: (-kv[1], kv[0]))[:5]

    # flows and triggers per object
    flows = [n for n in defined if n.type == "Flow"]
    flows_by_status = dict(sorted(Counter(str(n.attrs.get("status") or "unknown") for n in flows).items()))
    flow_obj: dict[str, set[str]] = defaultdict(set)
    trig_obj: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if e.kind == TRIGGER_ON:
            obj = e.target.partition(":")[2]
            if e.source.startswith("Flow:"):
                flow_obj[obj].add(e.source)
            elif e.source.startswith("ApexTrigger:"):
                trig_obj[obj].add(e.source)
    for n in flows:
        obj = n.attrs.get("trigger_object")
        if obj:
            flow_obj[str(obj)].add(n.key)
    for n in defined:
        if n.type == "ApexTrigger" and n.attrs.get("trigger_object"):
            trig_obj[str(n.attrs["trigger_object"])].add(n.key)
    flows_per_object = {o: len(v) for o, v in sorted(flow_obj.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    triggers_per_object = {o: len(v) for o, v in sorted(trig_obj.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    fields = Counter(
        str(n.attrs.get("object") or n.name.partition(".")[0]) for n in defined if n.type == "CustomField"
    )
    fields_top5 = sorted(fields.items(), key=lambda kv: (-kv[1], kv[0]))[:5]

    # unused, cycles
    tests = {n.key for n in defined if n.attrs.get("is_test")}  # test classes are unused by nature
    unused_keys = [k for k in idx.unused(types=DEFAULT_UNUSED_TYPES) if k not in tests]
    considered = sum(types.get(t, 0) for t in DEFAULT_UNUSED_TYPES) - sum(
        1 for n in defined if n.key in tests and n.type in DEFAULT_UNUSED_TYPES
    )
    cyc = idx.cycles()

    # namespaces, descriptions, API versions
    ns = Counter(x for x in (namespace_of(n) for n in external) if x)
    with_desc_attr = [n for n in defined if "has_description" in n.attrs]
    no_desc = sum(1 for n in with_desc_attr if not n.attrs.get("has_description"))
    api = [(n.key, str(n.attrs["api_version"])) for n in defined if n.attrs.get("api_version") not in (None, "")]
    api_versions = dict(sorted(Counter(v for _, v in api).items(), key=lambda kv: (-float(kv[0]) if _isnum(kv[0]) else 0, kv[0])))
    old: list[tuple[float, str]] = []
    for key, v in api:
        rel = api_release_date(v)
        if rel is not None and day is not None and (day - rel).days / 365.25 >= OLD_API_YEARS:
            old.append((float(v), key))
    old.sort()
    return Complexity(
        components=len(defined), external=len(external), edges=len(edges), types=types,
        apex_classes=types.get("ApexClass", 0),
        apex_test_classes=sum(1 for n in apex if n.type == "ApexClass" and n.attrs.get("is_test")),
        apex_triggers=types.get("ApexTrigger", 0),
        apex_lines=sum(lines.values()), apex_lines_exact=exact, apex_lines_basis=basis, apex_largest=largest,
        flows=len(flows), flows_by_status=flows_by_status, flows_per_object=flows_per_object,
        triggers_per_object=triggers_per_object, fields_per_object_top5=fields_top5,
        unused=len(unused_keys), unused_considered=considered, unused_examples=unused_keys[:20],
        cycles=len(cyc), cycle_examples=cyc[:5], external_namespaces=dict(sorted(ns.items())),
        without_description=no_desc, description_known=len(with_desc_attr),
        api_versions=api_versions, api_version_known=len(api), api_old=len(old),
        api_old_examples=[k for _, k in old[:20]],
    )


def _health(fs: Sequence[Finding], n_components: int, c: Complexity) -> HealthScore:
    weighted = sum(_weight(f) for f in fs)
    density = 100.0 * weighted / max(n_components, 1)
    parts = [
        HealthPart("findings", round(_findings_penalty(weighted, n_components), 2), HEALTH_CAPS["findings"], density,
                   f"{len(fs)} findings, {weighted:g} severity-weighted = {density:.1f} per 100 components"),
        HealthPart("unused", round(HEALTH_CAPS["unused"] * min(1.0, c.unused_share / UNUSED_SATURATION), 2),
                   HEALTH_CAPS["unused"], c.unused_share,
                   f"{c.unused} of {c.unused_considered} unused ({_pct(c.unused_share)})"),
        HealthPart("cycles", round(min(HEALTH_CAPS["cycles"], CYCLE_POINTS * c.cycles), 2), HEALTH_CAPS["cycles"],
                   float(c.cycles), f"{c.cycles} dependency cycles"),
        HealthPart("old_api", round(HEALTH_CAPS["old_api"] * min(1.0, c.old_api_share), 2), HEALTH_CAPS["old_api"],
                   c.old_api_share,
                   f"{c.api_old} of {c.api_version_known} on an API version {OLD_API_YEARS:g}+ years old "
                   f"({_pct(c.old_api_share)})"),
        HealthPart("descriptions", round(HEALTH_CAPS["descriptions"] * min(1.0, c.missing_description_share), 2),
                   HEALTH_CAPS["descriptions"], c.missing_description_share,
                   f"{c.without_description} of {c.description_known} without description "
                   f"({_pct(c.missing_description_share)})"),
    ]
    score = round(max(0.0, 100.0 - sum(p.penalty for p in parts)), 2)
    return HealthScore(score, parts)


def _recommendations(
    idx, nodes: dict[str, Node], fs: Sequence[Finding], by_comp: dict[str, list[Finding]], n_components: int,
    c: Complexity, health: HealthScore, hotspots: list[Hotspot], dependents, limit: int,
) -> list[Recommendation]:
    recs: list[Recommendation] = []
    total_w = sum(_weight(f) for f in fs)
    base_pen = _findings_penalty(total_w, n_components)
    for comp, fl in by_comp.items():
        w = sum(_weight(f) for f in fl)
        if w <= 0:
            continue
        gain = base_pen - _findings_penalty(total_w - w, n_components)
        nid = idx.nid(comp)
        deps = dependents(nid) if nid is not None and not idx.external[nid] else 0
        blast = 1.0 + math.log10(1 + deps)
        sev = Counter(f.severity for f in fl)
        sev_txt = ", ".join(f"{sev[s]} {s}" for s in sorted(sev, key=lambda s: _SEV_ORDER.get(s, 9)))
        rules = sorted({f.rule_id for f in fl})
        in_graph = nid is not None
        recs.append(Recommendation(
            0, "findings", f"Fix {sev_txt} finding{'s' if len(fl) > 1 else ''} on {comp}", gain * blast, gain, deps,
            [comp] if in_graph else [], rules,
            f"{deps} component{'s' if deps != 1 else ''} depend{'s' if deps == 1 else ''} on it (transitively)"
            + ("." if in_graph else "; not in the dependency graph."),
            [] if in_graph else [comp],
        ))

    def rules_on(keys: Iterable[str], marker: str) -> list[str]:
        return sorted({f.rule_id for k in keys for f in by_comp.get(k, []) if marker in f.rule_id.upper()})

    # Structural items: the gain is what acting on exactly the cited components wins back.
    if c.unused:
        keys = c.unused_examples[:10]
        gain = HEALTH_CAPS["unused"] * min(1.0, c.unused_share / UNUSED_SATURATION)
        rest = (c.unused - len(keys)) / c.unused_considered if c.unused_considered else 0.0
        gain -= HEALTH_CAPS["unused"] * min(1.0, rest / UNUSED_SATURATION)
        recs.append(Recommendation(
            0, "unused", f"Remove or justify {len(keys)} of the {c.unused} unused components", gain, gain, 0, keys,
            rules_on(keys, "UNUSED"),
            f"Nothing depends on them ({_pct(c.unused_share)} of {c.unused_considered} unused, test classes "
            "left out); delete after checking reports and integrations, or document why they stay.",
        ))
    if c.cycles:
        cyc = c.cycle_examples[0]
        gain = min(HEALTH_CAPS["cycles"], CYCLE_POINTS * c.cycles) - min(HEALTH_CAPS["cycles"], CYCLE_POINTS * (c.cycles - 1))
        keys = cyc[:20]
        recs.append(Recommendation(
            0, "cycles", f"Break the dependency cycle of {len(cyc)} component{'s' if len(cyc) > 1 else ''}"
            + (f" ({c.cycles} cycles in all)" if c.cycles > 1 else ""), gain, gain, 0, keys,
            rules_on(keys, "CYCLE"), "Components in a cycle cannot be changed or deployed independently.",
        ))
    if c.api_old and c.api_version_known:
        keys = c.api_old_examples[:10]
        gain = HEALTH_CAPS["old_api"] * len(keys) / c.api_version_known
        recs.append(Recommendation(
            0, "old_api", f"Upgrade {len(keys)} of the {c.api_old} components on API versions "
            f"{OLD_API_YEARS:g}+ years old", gain, gain, 0, keys, rules_on(keys, "OLD-API"),
            "Oldest first; raise the version in the -meta.xml, run the tests, read the release notes.",
        ))
    if c.without_description and c.description_known:
        keys = list(dict.fromkeys(h.key for h in hotspots if h.has_description is False))[:10]
        if keys:
            gain = HEALTH_CAPS["descriptions"] * len(keys) / c.description_known
            recs.append(Recommendation(
                0, "descriptions", f"Describe the {len(keys)} most depended-on components without a description",
                gain, gain, 0, keys, rules_on(keys, "DESCRIPTION"),
                f"{c.without_description} components have no description; start with these hotspots.",
            ))
    recs.sort(key=lambda r: (-r.impact, r.kind, r.components[:1] or r.other_refs[:1]))
    recs = recs[:limit]
    for i, r in enumerate(recs, 1):
        r.rank = i
    return recs


# --- cross-org ----------------------------------------------------------------------------------
@dataclass
class PairDrift:
    a: str
    b: str
    only_in_a: list[str]  # defined in a, absent (or only an external reference) in b
    only_in_b: list[str]
    #: key → the drift attributes that differ, {attr: [value in a, value in b]}
    differing: dict[str, dict[str, list[Any]]]
    same: int
    by_type: dict[str, dict[str, int]]
    #: Ranking of the examples: direct dependents (max over both orgs) then key.
    weight: dict[str, int] = field(default_factory=dict, repr=False)

    def counts(self) -> dict[str, int]:
        return {"only_in_a": len(self.only_in_a), "only_in_b": len(self.only_in_b),
                "differing": len(self.differing), "same": self.same}

    def _top(self, keys: Iterable[str], n: int) -> list[str]:
        return sorted(keys, key=lambda k: (-self.weight.get(k, 0), k))[:n]

    def to_dict(self, max_examples: int = 20) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "counts": self.counts(), "by_type": self.by_type,
            "examples": {
                "only_in_a": self._top(self.only_in_a, max_examples),
                "only_in_b": self._top(self.only_in_b, max_examples),
                "differing": [{"key": k, "changed": self.differing[k]} for k in self._top(self.differing, max_examples)],
            },
        }


@dataclass
class CrossOrgInsight:
    orgs: list[str]
    pairs: list[PairDrift]
    health: dict[str, HealthScore]
    max_examples: int = 20
    _plots: dict[str, bytes] | None = field(default=None, repr=False, compare=False)

    def pair(self, a: str, b: str) -> PairDrift:
        for p in self.pairs:
            if (p.a, p.b) == (a, b):
                return p
        for p in self.pairs:
            if (p.a, p.b) == (b, a):
                return PairDrift(b, a, p.only_in_b, p.only_in_a,
                                 {k: {at: [v[1], v[0]] for at, v in d.items()} for k, d in p.differing.items()},
                                 p.same, {t: {"only_in_a": c["only_in_b"], "only_in_b": c["only_in_a"],
                                              "differing": c["differing"]} for t, c in p.by_type.items()}, p.weight)
        raise KeyError((a, b))

    def to_dict(self) -> dict[str, Any]:
        return {
            "orgs": list(self.orgs),
            "health": {o: h.to_dict() for o, h in self.health.items()},
            "pairs": [p.to_dict(self.max_examples) for p in self.pairs],
        }

    def plots(self) -> dict[str, bytes]:
        if self._plots is None:
            plt = _plt()
            out: dict[str, bytes] = {}
            if self.health:
                orgs = list(self.health)
                fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(orgs) + 1.0), dpi=80)
                ax.barh(orgs, [self.health[o].score for o in orgs], color="#2ca02c")
                for i, o in enumerate(orgs):
                    ax.text(self.health[o].score + 1, i, f"{self.health[o].score:g}", va="center", fontsize=8)
                ax.set_xlim(0, 105)
                ax.invert_yaxis()
                ax.set_title("Health score per org")
                out["health"] = _png(fig)
            if self.pairs:
                fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(self.pairs) + 1.0), dpi=80)
                labels = [f"{p.a} vs {p.b}" for p in self.pairs]
                a = np.array([len(p.only_in_a) for p in self.pairs])
                b = np.array([len(p.only_in_b) for p in self.pairs])
                d = np.array([len(p.differing) for p in self.pairs])
                ax.barh(labels, a, color="#1f77b4", label="only in first")
                ax.barh(labels, b, left=a, color="#ff7f0e", label="only in second")
                ax.barh(labels, d, left=a + b, color="#d62728", label="differing")
                ax.invert_yaxis()
                ax.set_xlabel("components")
                ax.set_title("Drift between orgs")
                ax.legend(fontsize=7, frameon=False)
                out["drift"] = _png(fig)
            self._plots = out
        return self._plots

    def to_markdown(self, *, plots: bool = True) -> str:
        pics = self.plots() if plots else {}
        names = list(HEALTH_CAPS)
        L = ["## Cross-org insight", "", "### Health side by side", "",
             "| org | score | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
        for o, h in self.health.items():
            L.append(f"| `{o}` | **{h.score:g}** | " + " | ".join(f"−{h.part(n).penalty:g}" for n in names) + " |")
        if "health" in pics:
            L += ["", png_markdown(pics["health"], "health score per org")]
        L += ["", "### Drift", "", "Compared: defined components (external references left out) by "
              "`content_hash`, `api_version` and `status`.", "",
              "| pair | only in first | only in second | differing | same |", "|---|---:|---:|---:|---:|"]
        for p in self.pairs:
            c = p.counts()
            L.append(f"| `{p.a}` vs `{p.b}` | {c['only_in_a']} | {c['only_in_b']} | {c['differing']} | {c['same']} |")
        if "drift" in pics:
            L += ["", png_markdown(pics["drift"], "drift between orgs")]
        for p in self.pairs:
            L += ["", f"#### `{p.a}` vs `{p.b}`", ""]
            if not (p.only_in_a or p.only_in_b or p.differing):
                L.append("No drift.")
                continue
            L += ["| component | drift | detail |", "|---|---|---|"]
            for k in p._top(p.only_in_a, self.max_examples):
                L.append(f"| `{_md_escape(k)}` | only in `{p.a}` | |")
            for k in p._top(p.only_in_b, self.max_examples):
                L.append(f"| `{_md_escape(k)}` | only in `{p.b}` | |")
            for k in p._top(p.differing, self.max_examples):
                det = "; ".join(
                    f"{at}: {v[0]} → {v[1]}" if at != "content_hash" else "content changed"
                    for at, v in p.differing[k].items()
                )
                L.append(f"| `{_md_escape(k)}` | differs | {_md_escape(det)} |")
            more = sum(max(0, len(x) - self.max_examples) for x in (p.only_in_a, p.only_in_b, p.differing))
            if more:
                L.append(f"\n… and {more} more (see the JSON).")
            if p.by_type:
                L += ["", "| type | only in first | only in second | differing |", "|---|---:|---:|---:|"]
                L += [f"| {t} | {c['only_in_a']} | {c['only_in_b']} | {c['differing']} |" for t, c in p.by_type.items()]
        return "\n".join(L) + "\n"


def _signatures(store: GraphStore, org: str) -> tuple[dict[str, tuple], dict[str, str], dict[str, int]]:
    """key → (content_hash, api_version, status) of defined components, their types, and
    distinct direct dependents (for ranking examples)."""
    sig: dict[str, tuple] = {}
    types: dict[str, str] = {}
    for n in store.nodes(org):
        if n.external:
            continue
        a = n.attrs or {}
        sig[n.key] = tuple(None if a.get(x) is None else str(a.get(x)) for x in DRIFT_ATTRS)
        types[n.key] = n.type
    idx = store.graph_index(org)
    indeg = np.diff(idx.rev_indptr) if idx.n else np.zeros(0, np.int64)
    weight = {k: int(d) for k, d in zip(idx.keys.tolist(), indeg.tolist()) if k in sig}
    return sig, types, weight


def cross_org_insight(
    store: GraphStore,
    orgs: list[str],
    per_org: dict[str, OrgInsight],
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    max_examples: int = 20,
) -> CrossOrgInsight:
    """Drift between orgs and their health side by side.

    ``pairs``: which orgs to compare (default: every pair of ``orgs``, in the given order).
    Only defined components are compared (an external reference is not a component of the org;
    a component defined in one org and only referenced in the other counts as *only in* the
    first). *Differing* = same key, different ``content_hash``, ``api_version`` or ``status``.
    """
    pairs = list(pairs) if pairs is not None else list(combinations(orgs, 2))
    needed = list(dict.fromkeys([o for pr in pairs for o in pr]))
    cache = {o: _signatures(store, o) for o in needed}
    out: list[PairDrift] = []
    for a, b in pairs:
        sa, ta, wa = cache[a]
        sb, tb, wb = cache[b]
        only_a = sorted(sa.keys() - sb.keys())
        only_b = sorted(sb.keys() - sa.keys())
        differing: dict[str, dict[str, list[Any]]] = {}
        same = 0
        for k in sa.keys() & sb.keys():
            va, vb = sa[k], sb[k]
            if va == vb:
                same += 1
                continue
            differing[k] = {at: [x, y] for at, x, y in zip(DRIFT_ATTRS, va, vb) if x != y}
        differing = dict(sorted(differing.items()))
        by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"only_in_a": 0, "only_in_b": 0, "differing": 0})
        for k in only_a:
            by_type[ta[k]]["only_in_a"] += 1
        for k in only_b:
            by_type[tb[k]]["only_in_b"] += 1
        for k in differing:
            by_type[ta[k]]["differing"] += 1
        weight = {k: max(wa.get(k, 0), wb.get(k, 0)) for k in [*only_a, *only_b, *differing]}
        out.append(PairDrift(a, b, only_a, only_b, differing, same, dict(sorted(by_type.items())), weight))
    health = {o: per_org[o].health for o in orgs if o in per_org}
    return CrossOrgInsight(list(orgs), out, health, max_examples)
