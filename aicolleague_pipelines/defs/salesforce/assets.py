"""Per-org extraction assets: inventory, Dependency API rows, Setup audit trail.

Thin wrappers over :mod:`aicolleague_pipelines.lib.salesforce.extract`. A failed extraction
fails only its own org's partition, with a message naming the org, the component and what to
do; the previous good materialization stays in place for everything downstream.
"""


from collections.abc import Iterator

import dagster as dg

from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.orgs import OrgsConfigError
from aicolleague_pipelines.defs.salesforce import metadata
from aicolleague_pipelines.lib.salesforce import report
from aicolleague_pipelines.lib.salesforce.extract import (
    extract_audit_trail,
    extract_dependencies,
    extract_inventory,
)
from aicolleague_pipelines.lib.salesforce.model import (
    AuditEvent,
    DependencyRow,
    ExtractionError,
    OrgInventory,
)
from aicolleague_pipelines.resources import OrgsResource

GROUP = "salesforce"


def _as_failure(exc: Exception, org: str, step: str) -> dg.Failure:
    """A Dagster failure with the org, the component and the hint in plain sight."""
    meta: dict[str, str] = {"org": org, "step": step}
    if isinstance(exc, ExtractionError):
        meta.update(component=exc.component, problem=exc.problem, what_to_do=exc.hint or "")
    return dg.Failure(description=str(exc), metadata=meta, allow_retries=False)


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"salesforce", "python"},
    code_version="1",
    description=(
        "Every metadata component of one org (objects, fields, Apex, flows, validation rules, "
        "layouts, permission sets, reports …) keyed Type:FullName, read from the live org's "
        "Tooling/REST APIs, an SFDX project, or the bundled demo."
    ),
    check_specs=[
        dg.AssetCheckSpec("inventory_not_empty", asset="sf_inventory", blocking=True),
        dg.AssetCheckSpec("no_duplicate_keys", asset="sf_inventory"),
        dg.AssetCheckSpec("every_field_has_its_object", asset="sf_inventory"),
    ],
)
def sf_inventory(context: dg.AssetExecutionContext, orgs: OrgsResource) -> Iterator:
    org_name = context.partition_key
    try:
        org = orgs.get(org_name)
        inventory = extract_inventory(org)
    except (ExtractionError, OrgsConfigError) as exc:
        raise _as_failure(exc, org_name, "inventory") from None
    for finding in inventory.findings:
        log = context.log.error if finding.severity == "error" else context.log.warning
        if finding.severity != "info":
            log(str(finding))
    yield dg.Output(inventory, metadata=metadata.inventory_metadata(inventory, org.describe()))
    for check in report.inventory_checks(inventory):
        yield dg.AssetCheckResult(
            check_name=check.name,
            passed=check.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"problems": check.problems_count, "examples": check.examples_md},
        )


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"salesforce", "python"},
    code_version="1",
    description=(
        "MetadataComponentDependency rows (Tooling API, Beta) for live orgs, with canonical "
        "keys resolved. Empty for SFDX/demo sources: the graph parses their metadata instead."
    ),
)
def sf_dependencies(
    context: dg.AssetExecutionContext, orgs: OrgsResource, sf_inventory: OrgInventory
) -> dg.Output[list[DependencyRow]]:
    org_name = context.partition_key
    try:
        org = orgs.get(org_name)
        rows, findings = extract_dependencies(org, sf_inventory)
    except (ExtractionError, OrgsConfigError) as exc:
        raise _as_failure(exc, org_name, "dependencies") from None
    for finding in findings:
        context.log.warning(str(finding))
    meta = metadata.dependency_metadata(rows, org.source)
    meta["problems"] = dg.MetadataValue.int(len(findings))
    return dg.Output(rows, metadata=meta)


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"salesforce", "python"},
    code_version="1",
    description=(
        "SetupAuditTrail rows created since the previous materialization of this org "
        "(the cursor is kept in the materialization metadata). Feeds the Monitor agent."
    ),
)
def sf_audit_trail(
    context: dg.AssetExecutionContext, orgs: OrgsResource
) -> dg.Output[list[AuditEvent]]:
    org_name = context.partition_key
    since = _previous_cursor(context, org_name)
    try:
        org = orgs.get(org_name)
        events = extract_audit_trail(org, since)
    except (ExtractionError, OrgsConfigError) as exc:
        raise _as_failure(exc, org_name, "audit trail") from None
    cursor = events[-1].created_date if events else since
    return dg.Output(events, metadata=metadata.audit_metadata(events, since, cursor))


def _previous_cursor(context: dg.AssetExecutionContext, partition: str) -> str | None:
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[partition]),
        limit=1,
    )
    for record in result.records:
        mat = record.asset_materialization
        value = mat.metadata.get("cursor") if mat else None
        if value is not None and value.value:
            return str(value.value)
    return None
