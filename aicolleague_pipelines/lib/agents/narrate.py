"""Prose for agent outputs, through any writer (Gemini or the offline writer).

Each function turns an agent's structured result into the writer's facts format
(``{summary, sections: [{title, total, items: [{key, detail, evidence}]}], notes}``) and
the set of component keys the prose may cite — a Gemini answer citing anything else is
refused by the writer and the offline text is used.
"""

from __future__ import annotations

from typing import Any

from aicolleague_pipelines.lib.agents.model import Finding


def insight_summary(writer: Any, org: str, insight: Any) -> Any:
    """An executive summary of an org's Insight report (health, hotspots, what to do first)."""
    recs = insight.recommendations[:5]
    hot = insight.hotspots_pagerank[:5]
    facts = {
        "summary": f"Org {org} has a health score of {insight.health.score} / 100.",
        "sections": [
            {"title": "Health penalties", "total": len(insight.health.parts),
             "items": [{"key": "", "detail": f"{name}: -{pen}"}
                       for name, pen in insight.health.contributions().items()
                       if isinstance(pen, (int, float)) and pen]},
            {"title": "Top recommendations", "total": len(insight.recommendations),
             "items": [{"key": (r.components or [""])[0], "detail": f"{r.title} (+{r.health_gain} health)"}
                       for r in recs]},
            {"title": "Hotspots", "total": len(insight.hotspots_pagerank),
             "items": [{"key": h.key, "detail": f"{h.dependents} dependents, {h.findings} findings"}
                       for h in hot]},
        ],
        "notes": [],
    }
    keys = {k for r in recs for k in r.components} | {h.key for h in hot}
    return writer.write(f"Summarise the health of Salesforce org {org} for its admins: what "
                        "is wrong, why it matters and what to do first.", facts, keys)


def finding_explanations(writer: Any, findings: list[Finding], limit: int = 5) -> list[Any]:
    """Plain-language explanations of the riskiest findings (one writer call each)."""
    out = []
    for f in findings[:limit]:
        facts = {
            "summary": f"{f.rule_id} ({f.severity}, risk {f.risk}) on {f.component}: {f.message}",
            "sections": [{"title": "Evidence", "total": 1,
                          "items": [{"key": f.component, "detail": f.explanation, "evidence": f.evidence}]}],
            "notes": [f"risk parts: {f.risk_parts}"] if f.risk_parts else [],
        }
        out.append(writer.write("Explain this finding to a Salesforce admin and say how to fix it.",
                                facts, {f.component}))
    return out


def plan_summary(writer: Any, plan: Any) -> Any:
    """A short narrative of a fix plan: what changes, in which order, what could break."""
    d = plan.to_dict()
    steps = d.get("steps", [])
    facts = {
        "summary": plan.summary(),
        "sections": [
            {"title": "Steps", "total": len(steps),
             "items": [{"key": s.get("key", ""), "detail": "; ".join(s.get("actions") or [])[:300],
                        "evidence": (s.get("evidence") or [""])[0] if isinstance(s.get("evidence"), list)
                        else s.get("evidence") or ""} for s in steps[:15]]},
            {"title": "Platform assets affected", "total": len(d.get("platform_impact") or []),
             "items": [{"key": p.get("key", ""), "detail": p.get("breaks", "")}
                       for p in (d.get("platform_impact") or [])[:10] if isinstance(p, dict)]},
        ],
        "notes": list(d.get("notes") or [])[:5],
    }
    keys = {s.get("key") for s in steps if s.get("key")} | {
        p.get("key") for p in (d.get("platform_impact") or []) if isinstance(p, dict) and p.get("key")}
    return writer.write("Explain this change plan to the admin who must approve it.", facts, keys)
