"""Monitor for runtime signals: baselines, anomaly alerts, and the sensor that runs the
incremental signals pass as often as each org's API allowance allows."""

import json

import dagster as dg

from aicolleague_pipelines.defs.agents.monitor import alert_sinks_config
from aicolleague_pipelines.defs.governance import audit_for
from aicolleague_pipelines.defs.jobs import runtime_signals_job
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.defs.salesforce.runtime import sf_runtime_signals
from aicolleague_pipelines.lib.agents.alerts import dispatch
from aicolleague_pipelines.lib.agents.runtime import (
    runtime_alerts,
    runtime_anomalies,
    runtime_series,
    signals_interval,
)
from aicolleague_pipelines.lib.orgs import OrgsConfigError
from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore
from aicolleague_pipelines.resources import DataHomeResource, OrgsResource


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    deps=[sf_runtime_signals],
    description=(
        "Monitor agent, runtime side: robust baselines (median/MAD) of the org's errors per day, "
        "API requests, async Apex volume and /limits usage; anomalies reaching the newest point are "
        "alerted through the configured sinks, each once."
    ),
)
def runtime_monitor(context: dg.AssetExecutionContext, data_home: DataHomeResource) -> dg.Output[dict]:
    org = context.partition_key
    store = SignalStore(data_home.root(), org)
    series = runtime_series(store)
    anomalies = runtime_anomalies(store)
    seen = store.alerted()
    alerts = [a for a in runtime_alerts(org, anomalies) if a.dedupe_key not in seen]
    report = dispatch(alerts, alert_sinks_config(),
                      audit=audit_for(context, data_home.root())) if alerts else None
    if report is not None:
        if report.sent or report.ok:
            store.mark_alerted([a.dedupe_key for a in alerts])
        if not report.ok:
            context.log.warning(f"org {org}: some runtime alerts were not delivered: {report.to_dict()}")
    md = "\n".join(f"- {a.describe()}" for a in anomalies) or "no anomaly at the newest point"
    return dg.Output(
        {"anomalies": [a.to_dict() for a in anomalies], "alerts": [a.to_dict() for a in alerts],
         "dispatch": report.to_dict() if report else None},
        metadata={
            "series": dg.MetadataValue.int(len(series)),
            "days": dg.MetadataValue.int(max((len(v) for k, v in series.items() if not k.startswith("limit:")),
                                             default=0)),
            "anomalies": dg.MetadataValue.int(len(anomalies)),
            "alerts_sent": dg.MetadataValue.int(report.sent if report else 0),
            "summary": dg.MetadataValue.md(md),
        },
    )


@dg.sensor(
    job=runtime_signals_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests an incremental runtime-signals run per live org as often as its limits allow: at "
        "most 2% of the daily API requests (DailyApiRequests.Max from the last /limits reading) at the "
        "last run's cost, every 5 min to 6 h; the longest interval below 10% remaining. No API call "
        "itself. SFDX/demo orgs are left to the change sensor."
    ),
)
def runtime_signals_sensor(context: dg.SensorEvaluationContext, orgs: OrgsResource, data_home: DataHomeResource):
    from datetime import datetime, timezone

    try:
        last = json.loads(context.cursor) if context.cursor else {}
    except ValueError:
        last = {}
    registered = set(context.instance.get_dynamic_partitions(salesforce_orgs.name))
    try:
        live = [o for o in orgs.load() if o.source == "live" and o.name in registered]
    except OrgsConfigError as exc:
        return dg.SkipReason(f"orgs file unusable: {exc}")
    now = datetime.now(timezone.utc)
    requests, waits = [], []
    for org in live:
        store = SignalStore(data_home.root(), org.name)
        state = store.state()
        if not state.get("last_run"):
            waits.append(f"{org.name}: no signals run yet (the next refresh makes the first)")
            continue
        calls = int(state["last_run"].get("api_calls") or 0) or 10
        share = {"share": org.signals.api_share} if org.signals.api_share is not None else {}
        interval, why = signals_interval(store.latest_limits(), calls, **share)
        previous = last.get(org.name) or state["last_run"].get("started_at")
        elapsed = (now - datetime.fromisoformat(str(previous).replace("Z", "+00:00"))).total_seconds()
        if elapsed < interval:
            waits.append(f"{org.name}: next in {int(interval - elapsed)} s ({why})")
            continue
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        last[org.name] = stamp
        requests.append(dg.RunRequest(run_key=f"signals-{org.name}-{stamp}", partition_key=org.name,
                                      tags={"aicolleague/trigger": "runtime-signals",
                                            "aicolleague/interval": str(interval)}))
    cursor = json.dumps(last, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(waits) or "no live org registered", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
