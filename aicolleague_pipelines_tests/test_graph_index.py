"""GraphIndex: CSR traversals, paths, analytics on a small hand-built graph."""

from __future__ import annotations

import numpy as np
import pytest

from aicolleague_pipelines.lib.graph.index import GraphIndex, close_matches
from aicolleague_pipelines.lib.graph.model import (
    CALLS,
    CHILD_OF,
    GRANTS,
    LOOKUP_TO,
    QUERIES,
    REFERENCES,
    SHOWS,
    TRIGGER_ON,
    Edge,
    Node,
)
from aicolleague_pipelines.lib.graph.store import UnknownComponentError

AMOUNT = "CustomField:Invoice__c.Amount__c"
SVC = "ApexClass:InvoiceService"
UTIL = "ApexClass:Util"
TRG = "ApexTrigger:InvoiceTrigger"
LAYOUT = "Layout:Invoice__c-Invoice Layout"
PSET = "PermissionSet:Finance"
FLOW = "Flow:Close_Invoice"
INVOICE = "CustomObject:Invoice__c"
ACCOUNT = "CustomObject:Account"
INDUSTRY = "CustomField:Account.Industry"
NPE = "CustomField:Account.npe01__Foo__c"
LOOKUP = "CustomField:Invoice__c.Account__c"


def _n(key: str, external: bool = False, **attrs: object) -> Node:
    t, _, name = key.partition(":")
    return Node(key, t, name, external, dict(attrs))


def small_graph() -> tuple[list[Node], list[Edge]]:
    """Invoice app: a field used by code/layout/permset/flow, a call cycle, a self loop,
    an external (namespaced) field, a standard field, an orphan class."""
    nodes = [
        _n(ACCOUNT, label="Account"),
        _n(INVOICE, label="Invoice"),
        _n(AMOUNT, data_type="Currency"),
        _n(LOOKUP, data_type="Lookup", reference_to=["Account"]),
        _n(INDUSTRY, data_type="Picklist"),
        _n(NPE, external=True),
        _n(SVC, api_version="61.0", status="Active"),
        _n(UTIL, api_version="61.0"),
        _n(TRG, object="Invoice__c"),
        _n(LAYOUT),
        _n(PSET),
        _n(FLOW, active_version=3),
        _n("ApexClass:Orphan"),
        _n("ApexClass:Recursive"),
    ]
    e = Edge
    edges = [
        e(AMOUNT, INVOICE, CHILD_OF, "objects/Invoice__c/fields/Amount__c.field-meta.xml"),
        e(LOOKUP, INVOICE, CHILD_OF, "objects/Invoice__c/fields/Account__c.field-meta.xml"),
        e(LOOKUP, ACCOUNT, LOOKUP_TO, "objects/Invoice__c/fields/Account__c.field-meta.xml:5"),
        e(INDUSTRY, ACCOUNT, CHILD_OF, "objects/Account/fields/Industry.field-meta.xml"),
        e(SVC, AMOUNT, QUERIES, "classes/InvoiceService.cls:12", access="read", detail="SOQL SELECT"),
        e(SVC, INDUSTRY, REFERENCES, "classes/InvoiceService.cls:20"),
        e(SVC, NPE, REFERENCES, "classes/InvoiceService.cls:21"),
        e(SVC, UTIL, CALLS, "classes/InvoiceService.cls:30"),
        e(UTIL, SVC, CALLS, "classes/Util.cls:4"),
        e(TRG, INVOICE, TRIGGER_ON, "triggers/InvoiceTrigger.trigger:1"),
        e(TRG, SVC, CALLS, "triggers/InvoiceTrigger.trigger:3"),
        e(LAYOUT, AMOUNT, SHOWS, "layouts/Invoice__c-Invoice Layout.layout-meta.xml:40"),
        e(LAYOUT, INVOICE, CHILD_OF, "layouts/Invoice__c-Invoice Layout.layout-meta.xml"),
        e(PSET, AMOUNT, GRANTS, "permissionsets/Finance.permissionset-meta.xml:8", access="write"),
        e(FLOW, AMOUNT, REFERENCES, "flows/Close_Invoice.flow-meta.xml:77", access="write", detail="recordUpdate"),
        e("ApexClass:Recursive", "ApexClass:Recursive", CALLS, "classes/Recursive.cls:3"),
    ]
    return nodes, edges


@pytest.fixture
def idx() -> GraphIndex:
    nodes, edges = small_graph()
    return GraphIndex.from_graph(nodes, edges, org="acme")


def test_impact_paths_depth_and_kinds(idx: GraphIndex) -> None:
    hits = idx.impact(AMOUNT)
    got = {(h.key, h.depth, h.via_kind) for h in hits}
    assert got == {
        (SVC, 1, QUERIES), (LAYOUT, 1, SHOWS), (PSET, 1, GRANTS), (FLOW, 1, REFERENCES),
        (UTIL, 2, CALLS), (TRG, 2, CALLS),
    }
    by = {h.key: h for h in hits}
    assert by[UTIL].path == (AMOUNT, SVC, UTIL)
    assert by[TRG].path == (AMOUNT, SVC, TRG)
    assert by[SVC].path == (AMOUNT, SVC)
    assert by[SVC].type == "ApexClass"
    assert [h.depth for h in hits] == sorted(h.depth for h in hits)
    # the cycle SVC <-> UTIL does not loop, and the start is not a hit of itself
    assert AMOUNT not in by and len(hits) == len(by)
    assert {h.key for h in idx.impact(AMOUNT, depth=1)} == {SVC, LAYOUT, PSET, FLOW}
    assert idx.impact(AMOUNT, depth=0) == []
    assert len(idx.impact(AMOUNT, limit=2)) == 2
    assert all(h.depth == 1 for h in idx.impact(AMOUNT, limit=4))
    assert idx.closure_size(AMOUNT) == 6
    # a cycle member reaches itself only through the cycle: not reported
    assert {h.key for h in idx.impact(SVC)} == {UTIL, TRG}


def test_dependencies(idx: GraphIndex) -> None:
    hits = {h.key: h for h in idx.dependencies(TRG)}
    assert set(hits) == {INVOICE, SVC, AMOUNT, INDUSTRY, NPE, UTIL, ACCOUNT}
    assert hits[INVOICE].depth == 1 and hits[INVOICE].via_kind == TRIGGER_ON
    assert hits[ACCOUNT].depth == 3 and hits[ACCOUNT].path == (TRG, SVC, INDUSTRY, ACCOUNT)
    assert hits[NPE].external is True
    assert {h.key for h in idx.dependencies(TRG, depth=1)} == {INVOICE, SVC}


def test_where_used(idx: GraphIndex) -> None:
    assert idx.where_used(AMOUNT) == [
        (SVC, QUERIES), (FLOW, REFERENCES), (LAYOUT, SHOWS), (PSET, GRANTS),
    ]
    assert idx.where_used("ApexClass:Orphan") == []


def test_pagerank_sums_to_one_and_ranks_hub_first() -> None:
    nodes = [_n("CustomField:Account.Hub__c")] + [_n(f"ApexClass:C{i}") for i in range(20)]
    nodes += [_n("CustomField:Account.Other__c")]
    edges = [Edge(f"ApexClass:C{i}", "CustomField:Account.Hub__c", REFERENCES, "x") for i in range(20)]
    edges += [Edge("ApexClass:C0", "CustomField:Account.Other__c", REFERENCES, "x")]
    g = GraphIndex.from_graph(nodes, edges)
    pr = g.pagerank()
    assert pr.sum() == pytest.approx(1.0)
    assert g.top(pr, 1)[0][0] == "CustomField:Account.Hub__c"
    assert (pr > 0).all()


def test_cycles_and_unused(idx: GraphIndex) -> None:
    assert idx.cycles() == [sorted([SVC, UTIL]), ["ApexClass:Recursive"]]
    assert idx.unused(types=["ApexClass", "CustomField", "CustomObject"]) == [
        "ApexClass:Orphan", "ApexClass:Recursive", LOOKUP,
    ]
    # child_of counting as use: the lookup field is still unused (nothing points at it)
    assert INVOICE not in idx.unused(exclude_kinds=())


def test_unknown_key_suggests(idx: GraphIndex) -> None:
    with pytest.raises(UnknownComponentError) as ei:
        idx.impact("CustomField:Invoice__c.Amount_c")
    assert ei.value.suggestions[0] == AMOUNT
    assert close_matches("apexclass:util", [UTIL, SVC])[0] == UTIL


def test_arrays_fast_path_matches_objects_and_stamp_reuse() -> None:
    nodes, edges = small_graph()
    obj = GraphIndex.from_graph(nodes, edges)
    kind_names = sorted({e.kind for e in edges})
    arr = GraphIndex(
        np.array([n.key for n in nodes], dtype=object),
        [n.type for n in nodes],
        np.array([obj.nid(e.source) for e in edges]),
        np.array([obj.nid(e.target) for e in edges]),
        np.array([kind_names.index(e.kind) for e in edges], dtype=np.uint8),
        external=[n.external for n in nodes],
        kind_names=kind_names,
    )
    for key in (AMOUNT, TRG, ACCOUNT):
        assert arr.impact(key) == obj.impact(key)
        assert arr.dependencies(key) == obj.dependencies(key)
    # many queries reuse the visited stamps: results stay identical
    first = arr.impact(AMOUNT)
    for _ in range(500):
        arr.closure(arr.nid(ACCOUNT))
    assert arr.impact(AMOUNT) == first
    arr._gen = 2**31 - 2  # generation counter wraps: stamps are reset
    assert arr.impact(AMOUNT) == first


def test_bfs_on_random_graph_matches_reference() -> None:
    rng = np.random.default_rng(3)
    n, e = 300, 900
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    g = GraphIndex(np.array([f"ApexClass:C{i}" for i in range(n)], dtype=object), ["ApexClass"] * n,
                   src, dst, np.zeros(e, np.uint8), kind_names=["calls"])
    rev: dict[int, set[int]] = {}
    for s, d in zip(src.tolist(), dst.tolist()):
        rev.setdefault(d, set()).add(s)
    for start in range(0, n, 17):
        depth = {start: 0}
        frontier = [start]
        while frontier:
            nxt = []
            for v in frontier:
                for u in rev.get(v, ()):
                    if u not in depth:
                        depth[u] = depth[v] + 1
                        nxt.append(u)
            frontier = nxt
        hits = g.impact(f"ApexClass:C{start}")
        assert {h.key: h.depth for h in hits} == {f"ApexClass:C{v}": d for v, d in depth.items() if v != start}
        for h in hits:  # every path is a real reverse path of length depth
            assert len(h.path) == h.depth + 1 and h.path[0] == f"ApexClass:C{start}"
            for a, b in zip(h.path, h.path[1:]):
                assert int(b.split("C")[-1]) in rev[int(a.split("C")[-1])]  # b depends on a
