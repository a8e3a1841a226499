"""Monitor's change sensor: a run for an org's partition only when the org changed."""

import os

import dagster as dg

from aicolleague_pipelines.defs.jobs import org_refresh_job
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.watch import (
    DEFAULT_NOISE_ACTIONS,
    DEFAULT_NOISE_SECTIONS,
    load_cursor,
    probe_live_org,
    probe_source_project,
)
from aicolleague_pipelines.lib.orgs import OrgsConfigError
from aicolleague_pipelines.lib.salesforce.model import ExtractionError
from aicolleague_pipelines.resources import OrgsResource

INTERVAL_ENV = "AICOLLEAGUE_MONITOR_INTERVAL"


@dg.sensor(
    job=org_refresh_job,
    minimum_interval_seconds=int(os.environ.get(INTERVAL_ENV, "300")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches every registered org cheaply (live: SetupAuditTrail rows since the cursor, "
        "noise such as login-as and password resets ignored; SFDX/demo: a fingerprint of the "
        "project tree) and requests a refresh of that org's partition only when it changed. "
        f"Interval: ${INTERVAL_ENV} seconds (default 300)."
    ),
)
def org_change_sensor(context: dg.SensorEvaluationContext, orgs: OrgsResource):
    cursor = load_cursor(context.cursor)
    registered = set(context.instance.get_dynamic_partitions(salesforce_orgs.name))
    try:
        configured = [o for o in orgs.load() if o.name in registered]
    except OrgsConfigError as exc:
        return dg.SkipReason(f"orgs file unusable: {exc}")
    requests = []
    notes = []
    noise_actions, noise_sections = noise_filters()
    for org in configured:
        previous = cursor.get(org.name)
        try:
            if org.source == "live":
                probe, _ = probe_live_org(org, previous or None, noise_actions, noise_sections)
            else:
                probe = probe_source_project(org)
        except (ExtractionError, OrgsConfigError, OSError) as exc:
            notes.append(f"{org.name}: probe failed ({exc}); will retry next tick")
            continue
        if previous is None:
            cursor[org.name] = probe.token  # first sight: the registry sensor ran it already
            continue
        if probe.token != previous:
            cursor[org.name] = probe.token
            requests.append(dg.RunRequest(
                run_key=f"change-{org.name}-{probe.token}",
                partition_key=org.name,
                tags={"aicolleague/trigger": "change-detected",
                      "aicolleague/change": probe.summary[:200]},
            ))
    for note in notes:
        context.log.warning(note)
    if not requests:
        return dg.SensorResult(
            skip_reason="no org changed" + (f" ({'; '.join(notes)})" if notes else ""),
            cursor=json_dumps(cursor),
        )
    return dg.SensorResult(run_requests=requests, cursor=json_dumps(cursor))


def noise_filters() -> tuple[frozenset[str], frozenset[str]]:
    """Audit-trail noise: the defaults plus ``monitor.ignore_actions`` / ``ignore_sections`` of
    $AICOLLEAGUE_ALERTS_FILE (``monitor.replace_defaults: true`` drops the defaults)."""
    from aicolleague_pipelines.defs.agents.monitor import load_alert_config

    cfg = ((load_alert_config() or {}).get("monitor") or {})
    base_a = frozenset() if cfg.get("replace_defaults") else DEFAULT_NOISE_ACTIONS
    base_s = frozenset() if cfg.get("replace_defaults") else DEFAULT_NOISE_SECTIONS
    return (base_a | frozenset(map(str, cfg.get("ignore_actions") or ())),
            base_s | frozenset(map(str, cfg.get("ignore_sections") or ())))


def json_dumps(data: dict) -> str:
    import json

    return json.dumps(data, sort_keys=True)
