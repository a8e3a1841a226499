"""Shared types of the agents (Triage, Monitor, Insight …): findings and rules.

A finding is reproducible without an LLM: the same problem on the same component yields the
same ``id`` run after run (so it can be tracked, deduplicated, ticketed and closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.salesforce.model import OrgInventory

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_WEIGHT = {"info": 0.1, "low": 0.25, "medium": 0.5, "high": 0.8, "critical": 1.0}


def finding_id(rule_id: str, org: str, component: str, discriminator: str = "") -> str:
    """Stable id: the same rule on the same component (and same spot) → the same id."""
    raw = "\x1f".join((rule_id, org, component, discriminator))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class Finding:
    rule_id: str  # e.g. "APEX-SOQL-IN-LOOP"
    severity: str  # one of SEVERITIES
    org: str
    component: str  # canonical key, e.g. ApexClass:OpportunityHelper
    message: str  # one line: what is wrong
    explanation: str  # why it matters and what to do
    #: Where: "path:line" (source files) or an API object; may be "".
    evidence: str = ""
    #: Distinguishes two findings of one rule on one component (e.g. the line's text).
    discriminator: str = ""
    #: Filled by risk scoring: 0–100, with its parts.
    risk: float = 0.0
    risk_parts: dict[str, float] = field(default_factory=dict)
    category: str = ""  # apex, flow, security, data-model, maintainability, performance …
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return finding_id(self.rule_id, self.org, self.component, self.discriminator)


@dataclass(frozen=True)
class RuleContext:
    """Everything a rule may look at for one org."""

    org: str
    inventory: OrgInventory
    graph: OrgGraph
    #: Reference date for age-based rules (ISO date), so results are reproducible.
    today: str
    #: Org API version (e.g. "62.0") for "API version three or more years old" rules.
    api_version: str | None = None
    #: Runtime signals (:class:`~aicolleague_pipelines.lib.agents.runtime.RuntimeContext`), if any.
    runtime: Any = None


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    category: str
    #: What the rule checks and why (used in SARIF rule help and the knowledge base).
    description: str
    check: Callable[[RuleContext], Iterable[Finding]]
    #: Where the rule comes from (OrgCheck, PMD, Flow Scanner, sfdx-hardis …).
    source: str = ""
