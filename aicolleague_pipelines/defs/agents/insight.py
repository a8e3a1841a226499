"""Insight: hotspots, tech debt, a health score with its breakdown, trends and drift."""

import json
import pickle
from datetime import datetime, timezone

import dagster as dg

from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.insight import OrgInsight, cross_org_insight, org_insight
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.agents.narrate import insight_summary
from aicolleague_pipelines.lib.agents.runtime import runtime_insight
from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore
from aicolleague_pipelines.resources import GeminiResource, GraphStoreResource

GROUP = "agents"
_CACHE = "insight.pickle"  # the OrgInsight for the cross-org pass (our own data home)


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    description=(
        "Insight agent for one org: hotspots (PageRank and transitive dependents), complexity "
        "and tech-debt indicators, a health score 0–100 with its breakdown, trends over the kept "
        "snapshots and over past runs (plots), recommendations ranked by impact, and the runtime "
        "error trend with the components that fail most (from the org's runtime signals)."
    ),
)
def insight_report(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    llm: GeminiResource,
    triage_findings: list[Finding],
) -> dg.Output[dict]:
    org = context.partition_key
    today = datetime.now(timezone.utc).date().isoformat()
    out = graph_store.data_home.root() / "reports" / org
    out.mkdir(parents=True, exist_ok=True)
    hist_file = out / "insight_history.json"
    history = json.loads(hist_file.read_text()) if hist_file.exists() else []
    with graph_store.open(read_only=True) as store:
        ins = org_insight(store, org, triage_findings, today=today, history=history,
                          runtime=runtime_insight(SignalStore(graph_store.data_home.root(), org), today))
    hist_file.write_text(json.dumps(ins.findings_history, indent=1))
    summary = insight_summary(llm.writer(), org, ins)
    full_md = f"### Summary ({summary.source})\n\n{summary.text.strip()}\n\n" + ins.to_markdown()
    (out / "insight.md").write_text(full_md, encoding="utf-8")
    (out / "insight.json").write_text(json.dumps(ins.to_dict(), indent=1, default=str), encoding="utf-8")
    (out / _CACHE).write_bytes(pickle.dumps(ins))
    return dg.Output(
        ins.to_dict(),
        metadata={
            "health_score": dg.MetadataValue.float(float(ins.health.score)),
            "health_breakdown": dg.MetadataValue.json(ins.health.contributions()),
            "runtime_failures_7d": dg.MetadataValue.float(float((ins.runtime or {}).get("last_7_days") or 0)),
            "recommendations": dg.MetadataValue.int(len(ins.recommendations)),
            "summary_writer": summary.source,
            # The full report with trend plots embedded (PNG data URIs).
            "report": dg.MetadataValue.md(full_md),
            "report_file": dg.MetadataValue.path(str(out / "insight.md")),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[insight_report],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Insight across orgs: health scores side by side and drift between every pair of orgs "
        "(components only in one, components whose definition, API version or status differ)."
    ),
)
def insight_overview(graph_store: GraphStoreResource) -> dg.MaterializeResult:
    reports = graph_store.data_home.root() / "reports"
    per_org: dict[str, OrgInsight] = {}
    for path in sorted(reports.glob(f"*/{_CACHE}")):
        per_org[path.parent.name] = pickle.loads(path.read_bytes())
    with graph_store.open(read_only=True) as store:
        orgs = [o for o in sorted(per_org) if o in store.orgs()]
        x = cross_org_insight(store, orgs, {o: per_org[o] for o in orgs})
    (reports / "insight_overview.md").write_text(x.to_markdown(), encoding="utf-8")
    return dg.MaterializeResult(metadata={
        "orgs": dg.MetadataValue.int(len(orgs)),
        "health": dg.MetadataValue.json({o: float(per_org[o].health.score) for o in orgs}),
        "report": dg.MetadataValue.md(x.to_markdown()),
    })


insight_job = dg.define_asset_job(
    "insight_job",
    selection=dg.AssetSelection.assets("insight_report"),
    description="Recompute each org's Insight report from its latest graph and findings.",
)


@dg.schedule(
    job=insight_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 06:00 UTC: the weekly Insight pass over every registered org.",
)
def weekly_insight(context: dg.ScheduleEvaluationContext):
    orgs = context.instance.get_dynamic_partitions(salesforce_orgs.name)
    if not orgs:
        return dg.SkipReason("no org registered yet")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(run_key=f"insight-{stamp}-{o}", partition_key=o,
                          tags={"aicolleague/trigger": "weekly-insight"}) for o in orgs]
