"""Nightly full refresh of every registered org."""


import dagster as dg

from aicolleague_pipelines.defs.jobs import org_refresh_job
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs


@dg.schedule(
    job=org_refresh_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 UTC: a full refresh of every registered org (one run each).",
)
def nightly_org_refresh(context: dg.ScheduleEvaluationContext):
    orgs = context.instance.get_dynamic_partitions(salesforce_orgs.name)
    if not orgs:
        return dg.SkipReason("no org registered yet (the org registry sensor adds them)")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(
            run_key=f"nightly-{stamp}-{org}",
            partition_key=org,
            tags={"aicolleague/trigger": "nightly"},
        )
        for org in orgs
    ]
