"""Jobs: the per-org refresh (the main job) and the combined cross-org pass."""

from pathlib import Path

import dagster as dg


def code_location_modules() -> list[str]:
    """The code location's modules: ``definitions`` and every module under ``defs/`` (found
    on disk, nothing imported)."""
    defs_dir = Path(__file__).parent
    names = ["aicolleague_pipelines.definitions"]
    for py in sorted(defs_dir.rglob("*.py")):
        parts = py.relative_to(defs_dir.parent.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


#: Default run config of org refreshes (schedules, sensors, the launchpad): step processes fork
#: from a server that imported the code location once. Dagster's default (spawn) imports it
#: again in every step — with 12 orgs on 2 cores that made the refresh about 3x slower
#: (``python -m bench scale-orgs``).
ORG_REFRESH_RUN_CONFIG = {"execution": {"config": {"multiprocess": {
    "start_method": {"forkserver": {"preload_modules": code_location_modules()}}}}}}

#: Unpartitioned assets that look across every org (run after the per-org refreshes).
CROSS_ORG_ASSETS = ("dependency_graph", "triage_overview", "insight_overview", "governance_overview")

#: Everything partitioned by org: extraction, the org's graph snapshot, then the agents.
org_refresh_job = dg.define_asset_job(
    "org_refresh_job",
    selection=dg.AssetSelection.groups("salesforce", "graph", "agents")
    - dg.AssetSelection.assets(*CROSS_ORG_ASSETS),
    description=(
        "Refresh one org: extract its metadata, build its graph, store a new snapshot, and run "
        "the Triage and Monitor agents over it."
    ),
    config=ORG_REFRESH_RUN_CONFIG,
)

#: Cross-org assets that read every org's current snapshot.
combined_job = dg.define_asset_job(
    "combined_job",
    selection=dg.AssetSelection.assets(*CROSS_ORG_ASSETS),
    description="Rebuild the cross-org views from every org's current snapshot.",
)

#: The incremental runtime-signals pass of one org (requested by ``runtime_signals_sensor`` as
#: often as the org's API allowance permits): signals, their baselines and alerts, Triage.
runtime_signals_job = dg.define_asset_job(
    "runtime_signals_job",
    selection=dg.AssetSelection.assets("sf_runtime_signals", "runtime_monitor", "triage_findings"),
    description=(
        "Read one org's runtime signals since the last run, alert on anomalies against their "
        "baselines, and refresh its Triage findings (inventory and graph from the last refresh)."
    ),
)
