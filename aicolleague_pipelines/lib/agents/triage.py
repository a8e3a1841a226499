"""The Triage rule engine: run every rule over one org, isolate failures, dedupe by id."""

from __future__ import annotations

import logging
from collections import Counter

from aicolleague_pipelines.lib.agents.model import Finding, Rule, RuleContext

log = logging.getLogger(__name__)


def all_rules() -> list[Rule]:
    """Every rule the engine knows (Apex/code rules, metadata/flow/security rules, and the
    runtime rules that fire only when ``RuleContext.runtime`` holds signals)."""
    from aicolleague_pipelines.lib.agents.rules_apex import APEX_RULES
    from aicolleague_pipelines.lib.agents.rules_metadata import METADATA_RULES
    from aicolleague_pipelines.lib.agents.runtime import RUNTIME_RULES

    rules = [*APEX_RULES, *METADATA_RULES, *RUNTIME_RULES]
    dupes = [rid for rid, n in Counter(r.id for r in rules).items() if n > 1]
    if dupes:
        raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
    return rules


def run_rules(ctx: RuleContext, rules: list[Rule]) -> tuple[list[Finding], list[str]]:
    """Findings of every rule (one per stable id) and the rules that crashed (with why).

    A crashing rule never loses the other rules' findings.
    """
    findings: dict[str, Finding] = {}
    errors: list[str] = []
    for rule in rules:
        try:
            for f in rule.check(ctx):
                f.category = f.category or rule.category
                findings.setdefault(f.id, f)
        except Exception as exc:  # a rule bug must not hide the other findings
            log.exception("rule %s failed on org %s", rule.id, ctx.org)
            errors.append(f"{rule.id}: {type(exc).__name__}: {exc}")
    return list(findings.values()), errors
