"""Keeps the ``salesforce_orgs`` partitions in step with the orgs file."""


import dagster as dg

from aicolleague_pipelines.defs.jobs import org_refresh_job
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.orgs import OrgsConfigError
from aicolleague_pipelines.lib.registry import diff_orgs
from aicolleague_pipelines.resources import OrgsResource


@dg.sensor(
    job=org_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Registers every org of the orgs file as a partition of salesforce_orgs and requests a "
        "first refresh of each new one. Orgs removed from the file are reported, never deleted: "
        "their history stays."
    ),
)
def org_registry_sensor(context: dg.SensorEvaluationContext, orgs: OrgsResource):
    try:
        configured = [o.name for o in orgs.load()]
    except OrgsConfigError as exc:
        # A broken orgs file must not silently drop orgs: skip the tick, say why.
        return dg.SkipReason(f"orgs file unusable, nothing changed: {exc}")
    registered = context.instance.get_dynamic_partitions(salesforce_orgs.name)
    diff = diff_orgs(configured, registered)
    if diff.removed and context.cursor != ",".join(diff.removed):
        context.log.warning(diff.summary())
    if not diff.added:
        return dg.SensorResult(skip_reason=diff.summary(), cursor=",".join(diff.removed))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=name, tags={"aicolleague/trigger": "org-registered"})
            for name in diff.added
        ],
        dynamic_partitions_requests=[salesforce_orgs.build_add_request(list(diff.added))],
        cursor=",".join(diff.removed),
    )
