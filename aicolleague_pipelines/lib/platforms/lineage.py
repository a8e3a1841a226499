"""Joining platform extracts to an org's graph: cross-platform lineage.

Platform nodes and their internal edges (dashboard → card → column → table) are added to the
org graph of the org each platform mirrors, and every :class:`SalesforceLink` becomes a
``synced_to`` edge from the platform component to the Salesforce field (or object) it holds.
Salesforce names from platforms arrive in whatever case the warehouse or API used, so they
are matched case-insensitively against the org's existing nodes; an unmatched field becomes
an external node like any other reference the org does not define.
"""

from __future__ import annotations

from collections.abc import Iterable

from aicolleague_pipelines.lib.graph.build import OrgGraph, external_node
from aicolleague_pipelines.lib.graph.model import CHILD_OF, SYNCED_TO, Edge
from aicolleague_pipelines.lib.platforms.model import PlatformExtract


def platforms_for_org(extracts: Iterable[PlatformExtract], org: str) -> list[PlatformExtract]:
    """The extracts whose links point at ``org`` (or at every org)."""
    out = []
    for ex in extracts:
        if any(link.org in (None, org) for link in ex.links):
            out.append(ex)
    return out


def add_platform_lineage(graph: OrgGraph, extracts: Iterable[PlatformExtract]) -> dict[str, int]:
    """Merge ``extracts`` into ``graph`` in place; returns counts per platform instance."""
    by_lower = {k.lower(): k for k in graph.nodes}
    seen_edges = {(e.source, e.target, e.kind, e.evidence) for e in graph.edges}
    counts: dict[str, int] = {}

    def canonical(key: str) -> str:
        return by_lower.get(key.lower(), key)

    def add_edge(edge: Edge) -> None:
        ident = (edge.source, edge.target, edge.kind, edge.evidence)
        if ident not in seen_edges and edge.source != edge.target:
            seen_edges.add(ident)
            graph.edges.append(edge)

    def ensure_node(key: str) -> str:
        key = canonical(key)
        if key not in graph.nodes:
            graph.nodes[key] = external_node(key)
            by_lower[key.lower()] = key
        return key

    for ex in extracts:
        links = [link for link in ex.links if link.org in (None, graph.org)]
        if not links and not any(link.org is None for link in ex.links):
            continue
        for node in ex.nodes:
            if node.key not in graph.nodes:
                graph.nodes[node.key] = node
                by_lower[node.key.lower()] = node.key
        for edge in ex.edges:
            if edge.source in graph.nodes and edge.target in graph.nodes:
                add_edge(edge)
        for link in links:
            if link.platform_key not in graph.nodes:
                continue
            if link.sf_field:
                target = ensure_node(f"CustomField:{link.sf_field}")
                obj = ensure_node(f"CustomObject:{link.sf_field.split('.', 1)[0]}")
                if graph.nodes[target].external:
                    add_edge(Edge(target, obj, CHILD_OF, "implied by the field name"))
            else:
                target = ensure_node(f"CustomObject:{link.sf_object}")
            add_edge(Edge(link.platform_key, target, SYNCED_TO, link.evidence))
        counts[ex.instance] = len(ex.nodes)
    return counts
