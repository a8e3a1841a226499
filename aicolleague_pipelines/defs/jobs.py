"""Jobs: the per-org refresh (the main job) and the combined cross-org pass."""

import dagster as dg

#: Everything partitioned by org: extraction, then the org's graph snapshot.
org_refresh_job = dg.define_asset_job(
    "org_refresh_job",
    selection=dg.AssetSelection.groups("salesforce", "graph")
    - dg.AssetSelection.assets("dependency_graph"),
    description="Refresh one org: extract its metadata, build its graph, store a new snapshot.",
)

#: Cross-org assets that read every org's current snapshot.
combined_job = dg.define_asset_job(
    "combined_job",
    selection=dg.AssetSelection.assets("dependency_graph"),
    description="Rebuild the cross-org views from every org's current snapshot.",
)
