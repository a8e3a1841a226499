"""Fix: remediation and rollback plans with deployable artifacts, gated by approvals."""

import contextlib
import hashlib
from pathlib import Path

import dagster as dg

from aicolleague_pipelines.defs.governance import audit_for, audit_for_sensor
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.approvals import ApprovalLedger, approvals_from_file
from aicolleague_pipelines.lib.audit import AuditLog
from aicolleague_pipelines.lib.agents.fix import DELETE_RULES, PlannedChange, plan_change, plan_for_finding
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.salesforce.model import OrgInventory
from aicolleague_pipelines.lib.agents.narrate import plan_summary
from aicolleague_pipelines.lib.salesforce.extract import live_client
from aicolleague_pipelines.lib.salesforce.model import ExtractionError
from aicolleague_pipelines.resources import GeminiResource, GraphStoreResource, OrgsResource

APPROVALS_FILE = "approvals.yaml"
LEDGER_FILE = "approvals_ledger.json"


class ChangeSpec(dg.Config):
    action: str  # delete | rename | change_type | deactivate | edit
    key: str
    new_name: str | None = None
    new_type: str | None = None
    reason: str = ""


class FixPlansConfig(dg.Config):
    """Planned changes to plan for; with none, plans for the riskiest findings that say what
    to change (unused components, inactive flows …), up to ``auto_limit``."""

    changes: list[ChangeSpec] = []
    finding_ids: list[str] = []
    auto_limit: int = 3


def ledger_for(home: Path, audit: AuditLog | None = None) -> ApprovalLedger:
    """The approvals ledger of the data home; with ``audit``, plan events go to the audit log."""
    return ApprovalLedger(home / LEDGER_FILE, audit=audit)


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    description=(
        "Fix agent: for planned changes (run config) or findings, ordered steps (dependents "
        "first, cycles grouped) saying what to edit where, effort and risk, platform assets "
        "that would break, and deployable artifacts: package.xml, destructiveChanges.xml and a "
        "rollback bundle. Plans are never deployed: each waits for an approval recorded in "
        "<data home>/approvals.yaml, and every decision is logged."
    ),
)
def fix_plans(
    context: dg.AssetExecutionContext,
    config: FixPlansConfig,
    orgs: OrgsResource,
    graph_store: GraphStoreResource,
    llm: GeminiResource,
    sf_inventory: OrgInventory,
    triage_findings: list[Finding],
) -> dg.Output[list[dict]]:
    org = context.partition_key
    org_cfg = orgs.get(org)
    home = graph_store.data_home.root()
    project = org_cfg.path if org_cfg.source in ("sfdx", "demo") else None
    sources = {c.key: c.source for c in sf_inventory.components if c.source}
    ledger = ledger_for(home, audit_for(context, home))
    plans = []
    with contextlib.ExitStack() as stack:
        # Live orgs: the rollback bundle is retrieved through the Metadata API (a failed
        # login or retrieve still yields the plan, marked rollback_complete=False).
        retriever = None
        if org_cfg.source == "live":
            try:
                client = stack.enter_context(live_client(org_cfg))
                retriever = client.retrieve_metadata
            except ExtractionError as exc:
                context.log.warning(f"org {org}: no rollback retrieve possible: {exc}")
        store = stack.enter_context(graph_store.open(read_only=True))
        for spec in config.changes:
            plans.append(plan_change(
                store, org, PlannedChange.from_dict(spec.model_dump()),
                project_root=project, inventory_sources=sources, retriever=retriever,
            ))
        wanted = set(config.finding_ids)
        chosen = [f for f in triage_findings if f.id in wanted]
        if not config.changes and not wanted:
            chosen = [f for f in triage_findings if f.rule_id in DELETE_RULES][: config.auto_limit]
        for f in chosen:
            plans.append(plan_for_finding(store, org, f, project_root=project,
                                          inventory_sources=sources, retriever=retriever))
    writer = llm.writer()
    rows, md = [], ["### Fix plans", "",
                    "| plan | change | state | steps | effort | risk | artifacts |",
                    "|---|---|---|---:|---|---|---|"]
    for plan in plans:
        out = plan.write(home / "plans" / org / plan.id)
        ledger.register(plan.id, plan.summary(), org=org, digest=plan.digest)
        state = "refused" if plan.refused else ledger.state(plan.id)
        narrative = plan_summary(writer, plan)
        (out / "explanation.md").write_text(narrative.text, encoding="utf-8")
        rows.append({**plan.to_dict(), "state": state, "folder": str(out),
                     "explanation": narrative.text, "explanation_source": narrative.source})
        md.append(f"| `{plan.id}` | {plan.summary()} | {state} | {len(plan.steps)} | {plan.effort} "
                  f"| {plan.risk} | `{out}` |")
        context.log.info(f"plan {plan.id}: {plan.summary()} — state {state}")
    md += ["", f"Approve a plan by adding it to `{home / APPROVALS_FILE}`:", "",
           "```yaml", "approvals:", "  - {plan: <plan id>, decision: approved, by: <you>, reason: <why>}", "```"]
    return dg.Output(rows, metadata={
        "plans": dg.MetadataValue.int(len(rows)),
        "pending": dg.MetadataValue.int(sum(1 for r in rows if r["state"] == "pending")),
        "summary": dg.MetadataValue.md("\n".join(md)),
        "first_plan": dg.MetadataValue.md(plans[0].to_markdown()) if plans else "no plan",
    })


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches <data home>/approvals.yaml: merges new approvals and rejections into the "
        "approval ledger (append-only decision log). Nothing is deployed automatically."
    ),
)
def approvals_sensor(context: dg.SensorEvaluationContext, graph_store: GraphStoreResource):
    home = graph_store.data_home.root()
    path = home / APPROVALS_FILE
    if not path.is_file():
        return dg.SkipReason(f"no approvals file at {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if context.cursor == digest:
        return dg.SkipReason("approvals file unchanged")
    audit = audit_for_sensor(context, home, "approvals_sensor", f"file:{APPROVALS_FILE}")
    result = approvals_from_file(path, ledger_for(home, audit))
    for err in result.errors:
        context.log.warning(f"approvals file: {err}")
    for d in result.applied:
        context.log.info(f"plan {d.plan}: {d.decision} by {d.by} ({d.reason})")
    return dg.SensorResult(
        skip_reason=f"{len(result.applied)} decision(s) recorded, {len(result.errors)} error(s)",
        cursor=digest,
    )
