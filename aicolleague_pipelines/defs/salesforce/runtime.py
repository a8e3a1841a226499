"""``sf_runtime_signals``: what each org reports about itself while it runs (errors, failing
jobs and tests, flow interviews, event logs, limits), read incrementally into the data home."""

import dagster as dg

from aicolleague_pipelines.defs.salesforce.assets import GROUP, _as_failure
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.runtime import component_changes
from aicolleague_pipelines.lib.orgs import OrgsConfigError
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, ExtractionError, OrgInventory
from aicolleague_pipelines.lib.salesforce.signals import collect_signals, failures_by_component, run_markdown
from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore
from aicolleague_pipelines.resources import DataHomeResource, OrgsResource


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"salesforce", "python"},
    code_version="1",
    description=(
        "Runtime signals of one org since the previous run (a cursor per signal): failed async Apex "
        "jobs, failing tests and coverage, failed/paused flow interviews, Event Monitoring logs "
        "(unexpected Apex exceptions, flow executions, API and Apex volume; downloaded, reduced to "
        "aggregates and scrubbed messages) and /limits. Appended to the time series under "
        "$AICOLLEAGUE_HOME/runtime/<org>/. Unlicensed objects become notes, not failures. "
        "SFDX/demo orgs read recordings from .aicolleague/signals/."
    ),
)
def sf_runtime_signals(
    context: dg.AssetExecutionContext,
    orgs: OrgsResource,
    data_home: DataHomeResource,
    sf_inventory: OrgInventory,
    sf_audit_trail: list[AuditEvent],
) -> dg.Output[dict]:
    org_name = context.partition_key
    store = SignalStore(data_home.root(), org_name)
    try:
        org = orgs.get(org_name)
        run = collect_signals(org, sf_inventory, store.cursors())
    except (ExtractionError, OrgsConfigError) as exc:
        raise _as_failure(exc, org_name, "runtime signals") from None
    for note in run.notes:
        context.log.info(f"org {org_name}: {note}")
    summary = store.record(run, component_changes(sf_inventory, sf_audit_trail))
    not_available = sorted({n.signal for n in run.notes if n.level == "not_available"})
    api = (run.limits[-1]["limits"].get("DailyApiRequests") if run.limits else None) or {}
    return dg.Output(
        {"summary": summary, "failures": run.counts(), "components": failures_by_component(run.failures)},
        metadata={
            "source": run.source_kind,
            "new_failures": dg.MetadataValue.int(run.failure_count()),
            "failures_by_signal": dg.MetadataValue.json(run.counts()),
            "rows_by_signal": dg.MetadataValue.json(dict(run.rows)),
            "not_available": dg.MetadataValue.json(not_available),
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in run.notes) or "none"),
            # Read back by the next run from the data home; shown here for the record.
            "cursor": dg.MetadataValue.json({k: v.get("at") for k, v in run.cursors.items()}),
            "covered_until": run.covered_until or "",
            "api_calls": dg.MetadataValue.int(run.api_calls),
            "queries": dg.MetadataValue.int(run.queries),
            "log_downloads": dg.MetadataValue.int(run.downloads),
            "api_requests_max": dg.MetadataValue.int(int(api.get("max") or 0)),
            "api_requests_remaining": dg.MetadataValue.int(int(api.get("remaining") or 0)),
            "duration_s": run.duration_s,
            "summary": dg.MetadataValue.md(run_markdown(run)),
        },
    )
