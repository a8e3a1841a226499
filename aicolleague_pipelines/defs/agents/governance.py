"""Governance: SOC 2 / GDPR / HIPAA readiness per org and across orgs (lib/agents/governance.py)."""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.governance import (
    FRAMEWORKS,
    classification_drift,
    governance_overview_markdown,
    org_governance,
    update_audit_ledger,
)
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, OrgInventory
from aicolleague_pipelines.resources import GraphStoreResource

GROUP = "agents"


def _read_json(path: Path, default):
    """A JSON file of ours, or ``default`` when absent (a corrupt file is an error naming it)."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise dg.Failure(f"{path} is not valid JSON ({exc}); fix or delete it (it is rebuilt, losing the "
                         "score trend or audit coverage it held)") from None


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[dg.AssetKey("org_graph")],
    description=(
        "Governance for one org: sensitive fields (compliance group, sensitivity level, name/type "
        "heuristics) — classified, encrypted, which permission sets/profiles grant read/edit, where "
        "they flow (reports, e-mail, Metabase, Chargebee, Intercom …) — View/Modify All Data and "
        "API-only holders, audit-trail coverage vs Salesforce's 180-day retention, and a SOC 2 / "
        "GDPR / HIPAA readiness score with its breakdown and trend. Markdown here, CSV under "
        "reports/<org>/."
    ),
)
def governance_report(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    sf_inventory: OrgInventory,
    sf_audit_trail: list[AuditEvent],
) -> dg.Output[dict]:
    org = context.partition_key
    today = datetime.now(timezone.utc).date().isoformat()
    out = graph_store.data_home.root() / "reports" / org
    out.mkdir(parents=True, exist_ok=True)
    ledger_file, hist_file = out / "audit_coverage.json", out / "governance_history.json"
    ledger = update_audit_ledger(_read_json(ledger_file, None), sf_audit_trail, today)
    with graph_store.open(read_only=True) as store:
        report = org_governance(store, org, sf_inventory, audit_ledger=ledger, today=today,
                                history=_read_json(hist_file, []))
    ledger_file.write_text(json.dumps(ledger, indent=1), encoding="utf-8")
    hist_file.write_text(json.dumps(report.history, indent=1), encoding="utf-8")
    md = report.to_markdown()
    files = {
        "governance.md": md,
        "governance.json": json.dumps(report.to_dict(), indent=1, default=str),
        "governance.csv": report.governance_csv(),
        "sensitive_fields.csv": report.sensitive_fields_csv(),
    }
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    breakdown = dg.MetadataValue.table(
        records=[
            dg.TableRecord({
                "indicator": ind.id,
                "value": -1.0 if ind.value is None else round(ind.value, 4),
                **{fw: report.frameworks[fw].points.get(ind.id, 0.0) for fw in FRAMEWORKS},
                "why": ind.why,
            })
            for ind in report.indicators
        ],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("indicator", "string"),
            dg.TableColumn("value", "float", description="0–1; -1 when not measurable"),
            *[dg.TableColumn(fw, "float", description=f"points towards the {fw} score") for fw in FRAMEWORKS],
            dg.TableColumn("why", "string"),
        ]),
    )
    meta = {
        "overall_score": dg.MetadataValue.float(float(report.overall or 0.0)),
        "scores": dg.MetadataValue.json({fw: s.score for fw, s in report.frameworks.items()}),
        "trend": dg.MetadataValue.float(float(report.trend or 0.0)),
        "counts": dg.MetadataValue.json(report.counts()),
        "audit_days_observed": dg.MetadataValue.int(report.audit.days_observed),
        "score_breakdown": breakdown,
        "report": dg.MetadataValue.md(md),
        **{name.replace(".", "_"): dg.MetadataValue.path(str(out / name))
           for name in ("governance.csv", "sensitive_fields.csv", "governance.md")},
    }
    return dg.Output(report.to_dict(), metadata=meta)


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[governance_report],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Governance across orgs: readiness scores side by side and classification drift (a "
        "sensitive field classified in one org and not, or differently, in another)."
    ),
)
def governance_overview(graph_store: GraphStoreResource) -> dg.MaterializeResult:
    reports_dir = graph_store.data_home.root() / "reports"
    with graph_store.open(read_only=True) as store:
        current = set(store.orgs())
    reports = {p.parent.name: _read_json(p, {}) for p in sorted(reports_dir.glob("*/governance.json"))
               if p.parent.name in current}
    md = governance_overview_markdown(reports)
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "governance_overview.md").write_text(md, encoding="utf-8")
    return dg.MaterializeResult(metadata={
        "orgs": dg.MetadataValue.int(len(reports)),
        "overall": dg.MetadataValue.json({o: r.get("overall") for o, r in reports.items()}),
        "classification_drift": dg.MetadataValue.int(len(classification_drift(reports))),
        "report": dg.MetadataValue.md(md),
        "report_file": dg.MetadataValue.path(str(reports_dir / "governance_overview.md")),
    })
