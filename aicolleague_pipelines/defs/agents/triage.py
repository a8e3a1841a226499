"""Triage: risk-ranked findings per org, exported as SARIF 2.1.0 and CSV."""

import json
from collections import Counter
from datetime import datetime, timezone

import dagster as dg

from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.defs.salesforce.runtime import sf_runtime_signals
from aicolleague_pipelines.lib.agents.export import to_csv, to_sarif
from aicolleague_pipelines.lib.agents.model import SEVERITIES, Finding, RuleContext
from aicolleague_pipelines.lib.agents.risk import score_findings
from aicolleague_pipelines.lib.agents.runtime import RuntimeContext, apply_runtime_risk
from aicolleague_pipelines.lib.agents.triage import all_rules, run_rules
from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.salesforce.model import OrgInventory
from aicolleague_pipelines.lib.agents.narrate import finding_explanations
from aicolleague_pipelines.resources import GeminiResource, GraphStoreResource

GROUP = "agents"


def _top_table(findings: list[Finding], n: int = 15) -> str:
    lines = ["| risk | severity | rule | component | evidence |", "|---:|---|---|---|---|"]
    for f in findings[:n]:
        lines.append(f"| {f.risk} | {f.severity} | {f.rule_id} | `{f.component}` | {f.evidence} |")
    return "\n".join(lines)


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[sf_runtime_signals],
    description=(
        "Triage agent: every rule (Apex, flows, metadata, security) over the org, each finding "
        "with a stable id and a risk score (severity × blast radius from the graph × change "
        "recency), plus runtime findings from the org's signals (failing classes, triggers, flows "
        "and tests, with the probable cause; risk boosted by frequency). Also written as SARIF "
        "2.1.0 and CSV under the data home."
    ),
)
def triage_findings(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    llm: GeminiResource,
    sf_inventory: OrgInventory,
    org_graph: OrgGraph,
) -> dg.Output[list[Finding]]:
    org = context.partition_key
    today = datetime.now(timezone.utc).date().isoformat()
    rules = all_rules()
    runtime = RuntimeContext.load(graph_store.data_home.root(), org)  # None before any signals run
    ctx = RuleContext(org, sf_inventory, org_graph, today, sf_inventory.api_version, runtime=runtime)
    findings, errors = run_rules(ctx, rules)
    for err in errors:
        context.log.error(f"org {org}: rule failed (its findings are missing): {err}")
    with graph_store.open(read_only=True) as store:
        index = store.graph_index(org)  # one in-memory index for every blast-radius lookup

    def impact(key: str) -> list[str]:
        return [h.key for h in index.impact(key, limit=5000)] if key in index else []

    score_findings(findings, org_graph, impact, today)
    apply_runtime_risk(findings, runtime, today)
    out = graph_store.data_home.root() / "reports" / org
    out.mkdir(parents=True, exist_ok=True)
    (out / "triage.sarif").write_text(json.dumps(to_sarif(findings, rules), indent=1), encoding="utf-8")
    (out / "triage.csv").write_text(to_csv(findings), encoding="utf-8")
    explained = finding_explanations(llm.writer(), findings, limit=5)
    explanations_md = "\n\n".join(
        f"**{f.rule_id}** on `{f.component}` (risk {f.risk}, {w.source}):\n\n{w.text.strip()}"
        for f, w in zip(findings, explained)
    )
    by_sev = Counter(f.severity for f in findings)
    by_rule = Counter(f.rule_id for f in findings)
    return dg.Output(
        findings,
        metadata={
            "findings": dg.MetadataValue.int(len(findings)),
            "by_severity": dg.MetadataValue.json({s: by_sev.get(s, 0) for s in reversed(SEVERITIES)}),
            "by_rule": dg.MetadataValue.json(dict(by_rule.most_common())),
            "rules_run": dg.MetadataValue.int(len(rules)),
            "rules_failed": dg.MetadataValue.int(len(errors)),
            "runtime_findings": dg.MetadataValue.int(sum(1 for f in findings if f.category == "runtime")),
            "top_risks": dg.MetadataValue.md(_top_table(findings)),
            "top_risks_explained": dg.MetadataValue.md(explanations_md or "no finding"),
            "sarif": dg.MetadataValue.path(str(out / "triage.sarif")),
            "csv": dg.MetadataValue.path(str(out / "triage.csv")),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[triage_findings],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Triage across orgs: findings per org and severity, the riskiest findings overall, "
        "and the rules that fire in several orgs (read from each org's latest triage CSV)."
    ),
)
def triage_overview(graph_store: GraphStoreResource) -> dg.MaterializeResult:
    import csv

    reports = graph_store.data_home.root() / "reports"
    rows: list[dict] = []
    for path in sorted(reports.glob("*/triage.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows.extend(csv.DictReader(fh))
    for r in rows:
        r["risk"] = float(r["risk"])
    orgs = sorted({r["org"] for r in rows})
    per_org = {o: Counter(r["severity"] for r in rows if r["org"] == o) for o in orgs}
    rule_orgs: dict[str, set[str]] = {}
    for r in rows:
        rule_orgs.setdefault(r["rule_id"], set()).add(r["org"])
    shared = sorted(((rid, len(os_)) for rid, os_ in rule_orgs.items() if len(os_) > 1),
                    key=lambda x: (-x[1], x[0]))
    top = sorted(rows, key=lambda r: -r["risk"])[:20]
    sev_cols = list(reversed(SEVERITIES))
    md = [
        "### Triage across orgs", "",
        "| org | " + " | ".join(sev_cols) + " | total |",
        "|---|" + "---:|" * (len(sev_cols) + 1),
        *[f"| {o} | " + " | ".join(str(per_org[o].get(s, 0)) for s in sev_cols)
          + f" | {sum(per_org[o].values())} |" for o in orgs],
        "", "**Riskiest findings**", "",
        "| risk | org | rule | component |", "|---:|---|---|---|",
        *[f"| {r['risk']} | {r['org']} | {r['rule_id']} | `{r['component']}` |" for r in top],
        "", "**Rules firing in several orgs:** "
        + (", ".join(f"{rid} ({n})" for rid, n in shared[:25]) or "none"),
    ]
    return dg.MaterializeResult(metadata={
        "orgs": dg.MetadataValue.int(len(orgs)),
        "findings": dg.MetadataValue.int(len(rows)),
        "summary": dg.MetadataValue.md("\n".join(md)),
    })


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    description=(
        "Ticket routing for new findings at or above the risk and severity thresholds: Jira "
        "(REST v3) or ServiceNow (Table API incidents) when configured under `tickets:` in "
        "$AICOLLEAGUE_ALERTS_FILE, else recorded here only. A finding already ticketed (ledger, "
        "or found by label / correlation id on the ticket system) is never ticketed twice."
    ),
)
def finding_tickets(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    triage_findings: list[Finding],
) -> dg.Output[dict]:
    from aicolleague_pipelines.defs.agents.monitor import load_alert_config
    from aicolleague_pipelines.defs.governance import audit_for
    from aicolleague_pipelines.lib.agents.tickets import TicketConfig, route_findings

    org = context.partition_key
    cfg = TicketConfig.from_dict((load_alert_config() or {}).get("tickets"))
    ledger = graph_store.data_home.root() / "tickets" / f"{org}.json"
    report = route_findings(triage_findings, cfg, ledger,
                            audit=audit_for(context, graph_store.data_home.root()))
    if not report.ok:
        context.log.warning(f"org {org}: {report} — {report.failed[:5]} {report.ledger_errors}")
    return dg.Output(report.to_dict(), metadata={
        "sink": cfg.sink,
        "created": dg.MetadataValue.int(len(report.created)),
        "already_ticketed": dg.MetadataValue.int(len(report.already_ticketed)),
        "over_cap": dg.MetadataValue.int(len(report.skipped_over_cap)),
        "failed": dg.MetadataValue.int(len(report.failed)),
    })
