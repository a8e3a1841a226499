"""Quality checks of a built graph (plain data; the Dagster layer turns them into checks)."""

from __future__ import annotations

from collections import defaultdict

from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.salesforce.report import CheckOutcome


def graph_checks(graph: OrgGraph) -> list[CheckOutcome]:
    """No dangling edges; no two node keys equal but for case (Salesforce names are
    case-insensitive, so such a pair is one component split in two)."""
    dangling = tuple(
        sorted({f"{e.source} -> {e.target} ({e.kind})" for e in graph.dangling_edges()})
    )
    by_lower: dict[str, list[str]] = defaultdict(list)
    for key in graph.nodes:
        by_lower[key.lower()].append(key)
    dupes = tuple(sorted(" = ".join(sorted(v)) for v in by_lower.values() if len(v) > 1))
    return [
        CheckOutcome("no_dangling_edges", not dangling, dangling, "Edges to or from a missing node"),
        CheckOutcome(
            "no_case_duplicate_keys", not dupes, dupes, "Keys that differ only by letter case"
        ),
    ]
