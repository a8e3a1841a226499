"""The dependency graph: one snapshot per org in the graph store, and the combined view."""

from collections import Counter

import dagster as dg

from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.graph import queries, render
from aicolleague_pipelines.lib.graph.build import OrgGraph, build_org_graph
from aicolleague_pipelines.lib.graph.checks import graph_checks
from aicolleague_pipelines.lib.platforms.extract import load_extracts
from aicolleague_pipelines.lib.platforms.lineage import add_platform_lineage, platforms_for_org
from aicolleague_pipelines.lib.salesforce.model import DependencyRow, OrgInventory
from aicolleague_pipelines.resources import GraphStoreResource

GROUP = "graph"


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name=GROUP,
    kinds={"python", "duckdb"},
    code_version="1",
    description=(
        "One org's dependency graph: every component plus external references, edges parsed "
        "from Apex, formulas, flows, layouts, permission sets, reports, LWC/Aura (and the "
        "Dependency API for live orgs). Loaded into the graph store as a new snapshot."
    ),
    check_specs=[
        dg.AssetCheckSpec("no_dangling_edges", asset="org_graph"),
        dg.AssetCheckSpec("no_case_duplicate_keys", asset="org_graph"),
    ],
)
def org_graph(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    sf_inventory: OrgInventory,
    sf_dependencies: list[DependencyRow],
):
    graph = build_org_graph(sf_inventory, sf_dependencies)
    # Cross-platform lineage: the latest extract of every platform that mirrors this org.
    platforms = platforms_for_org(load_extracts(graph_store.data_home.root()), graph.org)
    platform_counts = add_platform_lineage(graph, platforms)
    for finding in graph.findings:
        context.log.warning(str(finding))
    with graph_store.open() as store:
        info = store.load_snapshot(
            graph.org,
            graph.nodes.values(),
            graph.edges,
            meta={
                "api_version": graph.api_version,
                "run_id": context.run.run_id,
                # Per-run figures kept with the snapshot: Monitor's anomaly series.
                "stats": {
                    "api_calls": int(sf_inventory.stats.get("api_calls", 0) or 0),
                    "extraction_problems": sum(
                        1 for f in sf_inventory.findings if f.severity != "info"
                    ),
                    "parse_failures": len(graph.findings),
                },
            },
            keep=graph_store.keep_snapshots,
        )
        unused = queries.unused(store, graph.org)
        cycles = queries.cycles(store, graph.org)
        ranked = queries.top_ranked(store, graph.org, n=10)
    picture = render.hub_picture_png(graph.nodes, graph.edges)
    yield dg.Output(
        graph,
        metadata={
            "org": graph.org,
            "store": graph_store.kind(),
            "snapshot_version": dg.MetadataValue.int(info.version),
            "nodes": dg.MetadataValue.int(len(graph.nodes)),
            "edges": dg.MetadataValue.int(len(graph.edges)),
            "external_nodes": dg.MetadataValue.int(
                sum(1 for n in graph.nodes.values() if n.external)
            ),
            "edges_by_kind": dg.MetadataValue.json(graph.counts_by_kind()),
            "parse_findings": dg.MetadataValue.int(len(graph.findings)),
            "platform_components": dg.MetadataValue.json(platform_counts),
            "unused_components": dg.MetadataValue.int(len(unused)),
            "cycles": dg.MetadataValue.int(len(cycles)),
            "top_ranked": dg.MetadataValue.md(
                "| component | PageRank |\n|---|---:|\n"
                + "\n".join(f"| `{k}` | {score:.4f} |" for k, score in ranked)
            ),
            "summary": dg.MetadataValue.md(
                render.graph_markdown(graph.org, graph.nodes, graph.edges)
            ),
            "most_connected": dg.MetadataValue.md(
                render.png_markdown(picture, f"most-connected components of {graph.org}")
            ),
        },
    )
    for check in graph_checks(graph):
        yield dg.AssetCheckResult(
            check_name=check.name,
            passed=check.passed,
            metadata={"problems": check.problems_count, "examples": check.examples_md},
        )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "duckdb"},
    code_version="1",
    deps=[org_graph],
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[dg.AssetCheckSpec("every_registered_org_has_a_snapshot", asset="dependency_graph")],
    description=(
        "The combined view over every org's current snapshot in the graph store: sizes per "
        "org, components shared between orgs, and the store's snapshot history."
    ),
)
def dependency_graph(context: dg.AssetExecutionContext, graph_store: GraphStoreResource):
    with graph_store.open(read_only=False) as store:
        orgs = store.orgs()
        rows = []
        presence: Counter[str] = Counter()
        for org in orgs:
            snaps = store.snapshots(org)
            current = snaps[-1]
            nodes = store.nodes(org)
            presence.update(n.key for n in nodes if not n.external)
            rows.append(
                {
                    "org": org,
                    "version": current.version,
                    "created_at": current.created_at,
                    "nodes": current.node_count,
                    "edges": current.edge_count,
                    "snapshots_kept": len(snaps),
                }
            )
    shared = sum(1 for n in presence.values() if n > 1)
    registered = set(context.instance.get_dynamic_partitions(salesforce_orgs.name))
    missing = sorted(registered - set(orgs))
    md = [
        "### Combined dependency graph",
        "",
        f"{len(orgs)} org(s); {shared} components defined in more than one org.",
        "",
        "| org | snapshot | created | nodes | edges | kept |",
        "|---|---:|---|---:|---:|---:|",
        *[
            f"| {r['org']} | v{r['version']} | {r['created_at']} | {r['nodes']} | {r['edges']} "
            f"| {r['snapshots_kept']} |"
            for r in rows
        ],
    ]
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="every_registered_org_has_a_snapshot",
                passed=not missing,
                metadata={
                    "missing": ", ".join(missing) or "none",
                    "hint": "refresh these orgs (their org_graph has never succeeded)"
                    if missing else "",
                },
            )
        ],
        metadata={
            "orgs": dg.MetadataValue.int(len(orgs)),
            "nodes": dg.MetadataValue.int(sum(r["nodes"] for r in rows)),
            "edges": dg.MetadataValue.int(sum(r["edges"] for r in rows)),
            "shared_components": dg.MetadataValue.int(shared),
            "summary": dg.MetadataValue.md("\n".join(md)),
        }
    )
