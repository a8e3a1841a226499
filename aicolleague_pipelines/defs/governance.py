"""Governance: the audit log of automated actions, and data retention (thin over lib/)."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from pydantic import Field

from aicolleague_pipelines.lib.audit import AuditLog, RunInfo, counts, to_markdown
from aicolleague_pipelines.lib.retention import RetentionConfigError, RetentionPolicy, apply_retention
from aicolleague_pipelines.resources import DataHomeResource, GraphStoreResource

GROUP = "governance"
TRIGGER_TAG = "aicolleague/trigger"


# --- who is acting: the run (or sensor) behind an audit entry ----------------------------------
def trigger_of(tags: dict[str, str]) -> str:
    """Why a run exists: our trigger tag, else the schedule, sensor or backfill, else manual."""
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG]
    for tag, label in (("dagster/schedule_name", "schedule"), ("dagster/sensor_name", "sensor"),
                       ("dagster/backfill", "backfill")):
        if tags.get(tag):
            return f"{label}:{tags[tag]}"
    return "manual"


def run_info(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> RunInfo:
    """Run id, job, trigger and partition of the running step."""
    run = context.run
    return RunInfo(
        run_id=run.run_id,
        job=run.job_name,
        trigger=trigger_of(dict(run.tags or {})),
        partition=context.partition_key if context.has_partition_key else None,
    )


def audit_for(context: dg.AssetExecutionContext, home: Path, org: str | None = None) -> AuditLog:
    """The data home's audit log, stamping entries with this run (and ``org``, default: the
    partition); an entry that cannot be written is reported in the run's log."""
    info = run_info(context)
    return AuditLog.for_home(home, run=info, org=org or info.partition, on_error=context.log.error)


def audit_for_sensor(context: dg.SensorEvaluationContext, home: Path, sensor: str, trigger: str) -> AuditLog:
    """The audit log for actions the tick of ``sensor`` takes itself (no run)."""
    return AuditLog.for_home(home, run=RunInfo(sensor=sensor, trigger=trigger), on_error=context.log.error)


# --- data retention ----------------------------------------------------------------------------
class RetentionConfig(dg.Config):
    max_age_days: float | None = Field(
        default=None,
        description="Prune snapshots, findings history, plans, alerts and caches older than this "
                    "(default: $AICOLLEAGUE_RETENTION_DAYS, else 90). The current snapshot of each "
                    "org is always kept.",
    )
    audit_max_age_days: float | None = Field(
        default=None,
        description="Prune whole months of the audit log older than this (default: "
                    "$AICOLLEAGUE_AUDIT_RETENTION_DAYS, else 365).",
    )
    dry_run: bool = Field(default=False, description="Report what would be pruned; delete nothing.")


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    description=(
        "Data retention: every org's graph snapshots older than the retention age (never the "
        "current one), Insight run history points, stale fix plans, alert lines, cached LLM "
        "responses, outputs of orgs that no longer have a snapshot, and audit-log months past "
        "the audit retention age. What was pruned is in the metadata, the run log and the audit log."
    ),
)
def data_retention(
    context: dg.AssetExecutionContext, config: RetentionConfig, graph_store: GraphStoreResource
) -> dg.MaterializeResult:
    try:
        policy = RetentionPolicy.resolve(config.max_age_days, config.audit_max_age_days)
    except RetentionConfigError as exc:
        raise dg.Failure(description=f"data retention not run: {exc}") from None
    home = graph_store.data_home.root()
    audit = audit_for(context, home)
    with graph_store.open() as store:
        report = apply_retention(home, store, policy, dry_run=config.dry_run, audit=audit)
    for p in report.pruned:
        context.log.info(f"retention: {'would prune' if config.dry_run else 'pruned'} {p.category} "
                         f"{p.item} ({p.detail})")
    metadata = {
        "cutoff": report.cutoff.isoformat(timespec="seconds"),
        "max_age_days": dg.MetadataValue.float(policy.max_age_days),
        "audit_max_age_days": dg.MetadataValue.float(policy.audit_max_age_days),
        "dry_run": config.dry_run,
        "pruned": dg.MetadataValue.int(len(report.pruned)),
        "pruned_by_category": dg.MetadataValue.json(report.by_category()),
        "snapshots_pruned": dg.MetadataValue.json(report.snapshots()),
        "current_snapshots_kept": dg.MetadataValue.json(report.current),
        "bytes_freed": dg.MetadataValue.int(0 if config.dry_run else report.bytes),
        "summary": dg.MetadataValue.md(report.to_markdown()),
    }
    if report.errors:
        for err in report.errors:
            context.log.error(f"retention: {err}")
        raise dg.Failure(description=f"data retention: {len(report.errors)} error(s); everything else "
                                     f"was pruned: {'; '.join(report.errors[:5])}", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


# --- the audit log as an asset ----------------------------------------------------------------
class AuditLogConfig(dg.Config):
    recent: int = Field(default=50, description="Newest entries shown in the Markdown table.")


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    code_version="1",
    deps=[data_retention],
    description=(
        "Audit log of every automated action — tickets created or linked, alerts sent, fix plans "
        "proposed, approved, rejected or gated, documentation published, data pruned — with what, "
        "why, when, the run (id, job, trigger) and the org. Stored as JSON lines under "
        "<data home>/audit/; query it with `aicolleague audit`."
    ),
)
def audit_log(
    context: dg.AssetExecutionContext, config: AuditLogConfig, data_home: DataHomeResource
) -> dg.MaterializeResult:
    log = AuditLog.for_home(data_home.root())
    entries = log.entries()
    now = datetime.now(timezone.utc)
    last_day = [e for e in entries if (e.time or now) >= now - timedelta(days=1)]
    c = counts(entries)
    if log.unreadable:
        context.log.warning(f"audit log: {log.unreadable} unreadable line(s) skipped")
    md = [to_markdown(entries, config.recent), "", "| kind | entries |", "|---|---:|",
          *[f"| `{k}` | {n} |" for k, n in c["by_kind"].items()],
          "", "| org | entries |", "|---|---:|", *[f"| {o} | {n} |" for o, n in c["by_org"].items()]]
    return dg.MaterializeResult(metadata={
        "entries": dg.MetadataValue.int(len(entries)),
        "last_24h": dg.MetadataValue.int(len(last_day)),
        "failed": dg.MetadataValue.int(c["by_outcome"].get("failed", 0)),
        "by_kind": dg.MetadataValue.json(c["by_kind"]),
        "by_org": dg.MetadataValue.json(c["by_org"]),
        "by_outcome": dg.MetadataValue.json(c["by_outcome"]),
        "unreadable_lines": dg.MetadataValue.int(log.unreadable),
        "segments": dg.MetadataValue.int(len(log.segments())),
        "location": dg.MetadataValue.path(str(log.directory)),
        "recent": dg.MetadataValue.md("\n".join(md)),
    })


retention_job = dg.define_asset_job(
    "retention_job",
    selection=dg.AssetSelection.assets(data_retention, audit_log),
    description="Prune data older than the retention age, then refresh the audit log asset.",
)


@dg.schedule(
    job=retention_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily 03:30 UTC: data retention ($AICOLLEAGUE_RETENTION_DAYS, default 90 days).",
)
def daily_retention(context: dg.ScheduleEvaluationContext):
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"retention-{stamp}", tags={TRIGGER_TAG: "daily-retention"})
