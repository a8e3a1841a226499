"""Monitor: what changed since the last snapshot, what that breaks, and what looks abnormal."""

import os
from pathlib import Path

import dagster as dg
import yaml

from aicolleague_pipelines.defs.governance import audit_for
from aicolleague_pipelines.defs.graph.assets import org_graph
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.alerts import Alert, dispatch, sinks_from_config
from aicolleague_pipelines.lib.agents.anomaly import detect_all, metric_series_from_snapshots
from aicolleague_pipelines.lib.agents.diff import diff_snapshots
from aicolleague_pipelines.lib.salesforce.model import AuditEvent
from aicolleague_pipelines.resources import GraphStoreResource

ALERTS_FILE_ENV = "AICOLLEAGUE_ALERTS_FILE"


def load_alert_config() -> dict | None:
    """The alerts file ``$AICOLLEAGUE_ALERTS_FILE`` (YAML with ``sinks:`` and ``tickets:``)."""
    path = os.environ.get(ALERTS_FILE_ENV)
    if not path:
        return None
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or None


def alert_sinks_config() -> dict | None:
    """Only the ``sinks:`` part (None → the default file sink)."""
    cfg = load_alert_config()
    return {"sinks": cfg.get("sinks")} if cfg and cfg.get("sinks") else None


def alerts_for(org: str, changes, anomalies) -> list[Alert]:
    alerts = []
    for b in changes.breaking:
        alerts.append(Alert(
            severity="critical" if b.platform_dependents else "high",
            title=f"{org}: breaking change on {b.key}",
            text=f"{b.reason}: {b.detail}. Still used by {len(b.referenced_by)} component(s); "
                 f"{len(b.dependents)} transitive dependent(s), {len(b.platform_dependents)} on "
                 "other platforms.",
            org=org,
            key=f"breaking:{org}:{b.key}:{b.reason}",
            extra={"component": b.key, "reason": b.reason},
        ))
    for a in anomalies:
        alerts.append(Alert(
            severity=a.severity,
            title=f"{org}: {a.metric} {a.direction}",
            text=f"{a.metric} = {a.value:g} against a baseline of {a.baseline:g} "
                 f"(robust score {a.score:.1f}, {a.kind}).",
            org=org,
            key=f"anomaly:{org}:{a.metric}:{a.timestamp}",
            extra={"metric": a.metric, "score": round(a.score, 2)},
        ))
    return alerts


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    deps=[org_graph],
    description=(
        "Monitor agent: components added, removed and modified since the previous graph "
        "snapshot (with who and when from the audit trail), breaking changes (removed or "
        "retyped components still referenced, with their Salesforce and platform dependents), "
        "anomalies in the org's metrics over its snapshots, and the alerts sent for them."
    ),
)
def monitor_changes(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    sf_audit_trail: list[AuditEvent],
) -> dg.Output[dict]:
    org = context.partition_key
    with graph_store.open(read_only=True) as store:
        changes = diff_snapshots(store, org, audit_events=sf_audit_trail)
        series = metric_series_from_snapshots(store, org)
    # Findings and health over past runs, as kept by the Insight agent.
    history_file = graph_store.data_home.root() / "reports" / org / "insight_history.json"
    if history_file.is_file():
        import json

        history = json.loads(history_file.read_text())
        for name in ("findings", "health"):
            points = [(h["timestamp"], float(h[name])) for h in history if h.get(name) is not None]
            if points:
                series[f"history:{name}"] = points
    # Only anomalies reaching the newest point of their series are news (older ones were
    # alerted when they happened).
    anomalies = [
        a for a in detect_all(series)
        if a.metric in series and a.index + a.points - 1 >= len(series[a.metric]) - 1
    ]
    alerts = [] if changes.baseline else alerts_for(org, changes, anomalies)
    report = dispatch(alerts, alert_sinks_config(),
                      audit=audit_for(context, graph_store.data_home.root())) if alerts else None
    if report is not None and not report.ok:
        context.log.warning(f"org {org}: some alerts were not delivered: {report.to_dict()}")
    result = {
        "changes": changes.to_dict(),
        "changes_markdown": changes.to_markdown(),
        "anomalies": [a.to_dict() for a in anomalies],
        "alerts": [a.to_dict() for a in alerts],
        "dispatch": report.to_dict() if report else None,
    }
    md = changes.to_markdown()
    if anomalies:
        md += "\n\n### Anomalies\n\n" + "\n".join(f"- {a.describe()}" for a in anomalies)
    return dg.Output(
        result,
        metadata={
            "baseline": changes.baseline,
            "added": dg.MetadataValue.int(len(changes.added)),
            "removed": dg.MetadataValue.int(len(changes.removed)),
            "modified": dg.MetadataValue.int(len(changes.modified)),
            "breaking_changes": dg.MetadataValue.int(len(changes.breaking)),
            "anomalies": dg.MetadataValue.int(len(anomalies)),
            "alerts_sent": dg.MetadataValue.int(report.sent if report else 0),
            "summary": dg.MetadataValue.md(md),
        },
    )
