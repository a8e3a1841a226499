"""Risk score of a finding: severity × blast radius × change recency, 0–100.

- severity: the rule's weight (info 0.1 … critical 1.0);
- blast radius: how many components transitively depend on the component (and how many of
  them sit on other platforms — a broken Metabase dashboard is invisible to Salesforce
  admins), on a log scale saturating at 1,000 dependents;
- recency: components changed in the last weeks are likelier to be the cause of tonight's
  trouble; decays from 1.0 (changed today) to 0 over 90 days.

score = 100 × severity × (0.55 + 0.30 × blast + 0.15 × recency), so severity dominates and a
critical finding on a hub that changed yesterday scores highest. Every part is kept in
``Finding.risk_parts`` so the ranking can be explained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime

from aicolleague_pipelines.lib.agents.model import SEVERITY_WEIGHT, Finding
from aicolleague_pipelines.lib.graph.build import OrgGraph

_PLATFORM_PREFIXES = ("Metabase", "Warehouse", "Chargebee", "Intercom", "Api")


def _days_since(stamp: str | None, today: date) -> float | None:
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()
    except ValueError:
        return None
    return max(0.0, (today - when).days)


def score_findings(
    findings: list[Finding],
    graph: OrgGraph,
    impact: Callable[[str], list[str]],
    today: str,
) -> list[Finding]:
    """Fill ``risk``/``risk_parts`` in place and return the findings, riskiest first.

    ``impact(key)`` returns the keys that transitively depend on ``key`` (from the store).
    """
    ref = date.fromisoformat(today[:10])
    cache: dict[str, list[str]] = {}
    for f in findings:
        if f.component not in cache:
            cache[f.component] = impact(f.component) if f.component in graph.nodes else []
        dependents = cache[f.component]
        platform = sum(1 for k in dependents if k.split(":", 1)[0].startswith(_PLATFORM_PREFIXES))
        blast = min(1.0, math.log10(1 + len(dependents) + 2 * platform) / 3)
        node = graph.nodes.get(f.component)
        days = _days_since(node.attrs.get("last_modified_date") if node else None, ref)
        recency = 0.0 if days is None else max(0.0, 1 - days / 90)
        severity = SEVERITY_WEIGHT.get(f.severity, 0.5)
        f.risk = round(100 * severity * (0.55 + 0.30 * blast + 0.15 * recency), 1)
        f.risk_parts = {
            "severity": severity,
            "blast_radius": round(blast, 3),
            "dependents": float(len(dependents)),
            "platform_dependents": float(platform),
            "recency": round(recency, 3),
        }
    findings.sort(key=lambda f: (-f.risk, f.rule_id, f.component, f.discriminator))
    return findings
