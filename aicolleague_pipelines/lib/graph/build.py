"""Build one org's dependency graph from its extraction.

Nodes: every component of the inventory, plus *external* nodes for what is referenced but not
defined (another package's components, standard fields seen only in code or formulas).
Edges: what the parsers find in each component (Apex, formulas, flows, layouts, permission
sets, reports, LWC/Aura/Visualforce …) ∪ the Dependency API rows of live orgs. Every edge
carries its kind, its evidence (``path:line`` or the API object) and read/write where known.

A parser failing on one component becomes a finding; the rest of the graph is still built.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.model import API_DEPENDENCY, CHILD_OF, Edge, Node, Reference
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import (
    Component,
    DependencyRow,
    ExtractionFinding,
    OrgInventory,
    split_key,
)

log = logging.getLogger(__name__)

#: Node attributes copied from components (small facts only: bodies stay in the inventory).
_NODE_FACTS = (
    "namespace",
    "api_version",
    "status",
    "active",
    "managed_state",
    "last_modified_by",
    "last_modified_date",
    "created_date",
    "source",
)
_ATTR_FACTS = (
    "data_type",
    "label",
    "custom",
    "object_kind",
    "process_type",
    "trigger_type",
    "trigger_object",
    "compliance_group",
    "security_classification",
    "is_test",
    "object",
)


@dataclass
class OrgGraph:
    org: str
    nodes: dict[str, Node]
    edges: list[Edge]
    findings: list[ExtractionFinding] = field(default_factory=list)
    api_version: str | None = None

    def counts_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(e.kind for e in self.edges).items()))

    def counts_by_type(self) -> dict[str, int]:
        return dict(sorted(Counter(n.type for n in self.nodes.values()).items()))

    def dangling_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.source not in self.nodes or e.target not in self.nodes]


Parser = Callable[[Component, Schema], list[Reference]]


def _parsers() -> dict[str, Parser]:
    """Component type → parser (imported lazily: each parser module is independent)."""
    from aicolleague_pipelines.lib.graph.parsers.apex import parse_apex
    from aicolleague_pipelines.lib.graph.parsers.bundles import parse_bundle
    from aicolleague_pipelines.lib.graph.parsers.flow import parse_flow
    from aicolleague_pipelines.lib.graph.parsers.metadata import parse_metadata

    table: dict[str, Parser] = {
        "ApexClass": parse_apex,
        "ApexTrigger": parse_apex,
        "Flow": parse_flow,
        "LightningComponentBundle": parse_bundle,
        "AuraDefinitionBundle": parse_bundle,
        "ApexPage": parse_bundle,
    }
    for type_ in (
        "CustomField",
        "ValidationRule",
        "RecordType",
        "WorkflowRule",
        "WorkflowFieldUpdate",
        "Layout",
        "FlexiPage",
        "PermissionSet",
        "Profile",
        "Report",
        "CustomMetadata",
        "EmailTemplate",
        "CustomObject",
        "CustomTab",
    ):
        table[type_] = parse_metadata
    return table


def content_hash(component: Component) -> str:
    """A short hash of everything the component defines (body, formula, metadata …), so a
    change that leaves the small facts alone still shows between snapshots and orgs."""
    payload = json.dumps(
        [component.description, component.api_version, component.status, component.attributes],
        sort_keys=True,
        default=str,
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def node_for(component: Component) -> Node:
    attrs: dict[str, Any] = {"content_hash": content_hash(component)}
    for name in _NODE_FACTS:
        value = getattr(component, name)
        if value not in (None, ""):
            attrs[name] = value
    for name in _ATTR_FACTS:
        value = component.attributes.get(name)
        if value not in (None, "", [], {}):
            attrs[name] = value
    if component.attributes.get("encrypted") is True:  # only when set: "False" on every field is noise
        attrs["encrypted"] = True
        scheme = component.attributes.get("encryption_scheme")
        if scheme and scheme != "None":
            attrs["encryption_scheme"] = scheme
    attrs["has_description"] = component.has_description
    return Node(key=component.key, type=component.type, name=component.full_name, attrs=attrs)


def external_node(key: str) -> Node:
    type_, name = split_key(key)
    return Node(key=key, type=type_, name=name, external=True)


def _evidence(component: Component, ref: Reference) -> str:
    where = component.source or f"{component.type}:{component.full_name}"
    return f"{where}:{ref.line}" if ref.line else where


def build_org_graph(
    inventory: OrgInventory,
    dependencies: Iterable[DependencyRow] = (),
    parsers: dict[str, Parser] | None = None,
) -> OrgGraph:
    """Nodes and edges of one org (see the module docstring)."""
    table = _parsers() if parsers is None else parsers
    schema = Schema(inventory.components)
    nodes: dict[str, Node] = {}
    for comp in inventory.components:
        nodes.setdefault(comp.key, node_for(comp))
    edges: dict[tuple, Edge] = {}
    findings: list[ExtractionFinding] = []

    def add(edge: Edge) -> None:
        if edge.source == edge.target:
            return
        ident = (edge.source, edge.target, edge.kind, edge.access, edge.evidence, edge.dynamic)
        edges.setdefault(ident, edge)

    for comp in inventory.components:
        parser = table.get(comp.type)
        if parser is None:
            continue
        try:
            refs = parser(comp, schema)
        except Exception as exc:  # a parser bug must not lose the rest of the graph
            log.exception("parser failed on %s", comp.key)
            findings.append(
                ExtractionFinding(
                    inventory.org,
                    comp.source or comp.key,
                    "error",
                    f"could not parse {comp.key}: {type(exc).__name__}: {exc}",
                    "its outgoing dependencies are missing from the graph; please report it",
                )
            )
            continue
        for ref in refs:
            target = schema.canonical_key(ref.target)
            add(
                Edge(
                    source=comp.key,
                    target=target,
                    kind=ref.kind,
                    evidence=_evidence(comp, ref),
                    access=ref.access,
                    dynamic=ref.dynamic,
                    detail=ref.detail,
                )
            )

    for row in dependencies:
        add(
            Edge(
                source=schema.canonical_key(row.source_key),
                target=schema.canonical_key(row.target_key),
                kind=API_DEPENDENCY,
                evidence="tooling:MetadataComponentDependency",
            )
        )

    # Every target (and source of an API row) not defined in the org becomes an external node.
    for edge in list(edges.values()):
        for key in (edge.source, edge.target):
            if key not in nodes:
                try:
                    nodes[key] = external_node(key)
                except ValueError:
                    findings.append(
                        ExtractionFinding(
                            inventory.org, edge.evidence, "warning", f"unusable reference {key!r}"
                        )
                    )
    # External fields hang off their object, so an object's impact includes code that only
    # touches its standard fields.
    for key, node in list(nodes.items()):
        if node.external and node.type == "CustomField" and "." in node.name:
            obj_key = f"CustomObject:{node.name.split('.', 1)[0]}"
            obj_key = schema.canonical_key(obj_key)
            if obj_key not in nodes:
                nodes[obj_key] = external_node(obj_key)
            add(Edge(key, obj_key, CHILD_OF, "implied by the field name"))

    graph_edges = [e for e in edges.values() if e.source in nodes and e.target in nodes]
    return OrgGraph(
        org=inventory.org,
        nodes=nodes,
        edges=graph_edges,
        findings=findings,
        api_version=inventory.api_version,
    )
