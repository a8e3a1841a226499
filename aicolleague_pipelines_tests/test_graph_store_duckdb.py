"""DuckDBGraphStore: versioning, atomic swap, byte-exact round trip, isolation, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aicolleague_pipelines.lib.graph.model import CALLS, CHILD_OF, EDGE_KINDS, QUERIES, REFERENCES, Edge, Node
from aicolleague_pipelines.lib.graph.store import GraphStoreError, UnknownComponentError, UnknownOrgError
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines_tests.test_graph_index import AMOUNT, SVC, TRG, UTIL, small_graph


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBGraphStore]:
    s = DuckDBGraphStore(tmp_path / "graph.duckdb")
    yield s
    s.close()


def _tiny(n: int) -> tuple[list[Node], list[Edge]]:
    nodes = [Node(f"ApexClass:C{i}", "ApexClass", f"C{i}") for i in range(n)]
    edges = [Edge(f"ApexClass:C{i}", f"ApexClass:C{i - 1}", CALLS, f"classes/C{i}.cls:1") for i in range(1, n)]
    return nodes, edges


def test_round_trip_and_traversals(store: DuckDBGraphStore) -> None:
    nodes, edges = small_graph()
    info = store.load_snapshot("acme", nodes, edges, meta={"api_version": "61.0"})
    assert (info.org, info.version, info.node_count, info.edge_count) == ("acme", 1, len(nodes), len(edges))
    assert info.meta == {"api_version": "61.0"}
    assert store.orgs() == ["acme"]
    assert store.nodes("acme") == nodes
    assert sorted(store.edges("acme"), key=repr) == sorted(edges, key=repr)
    assert store.node("acme", SVC) == nodes[6]
    assert store.node("acme", "ApexClass:Nope") is None
    used = store.where_used("acme", AMOUNT)
    assert [(e.source, e.kind, e.evidence) for e in used] == [
        (SVC, QUERIES, "classes/InvoiceService.cls:12"),
        ("Flow:Close_Invoice", REFERENCES, "flows/Close_Invoice.flow-meta.xml:77"),
        ("Layout:Invoice__c-Invoice Layout", "shows", "layouts/Invoice__c-Invoice Layout.layout-meta.xml:40"),
        ("PermissionSet:Finance", "grants", "permissionsets/Finance.permissionset-meta.xml:8"),
    ]
    assert used[0].access == "read" and used[0].detail == "SOQL SELECT" and used[0].target == AMOUNT
    hits = {h.key: h for h in store.impact("acme", AMOUNT)}
    assert hits[UTIL].path == (AMOUNT, SVC, UTIL) and hits[TRG].depth == 2
    assert {h.key for h in store.impact("acme", AMOUNT, depth=1)} == {
        SVC, "Flow:Close_Invoice", "Layout:Invoice__c-Invoice Layout", "PermissionSet:Finance",
    }
    assert {h.key for h in store.dependencies("acme", TRG, depth=1)} == {"CustomObject:Invoice__c", SVC}


def test_index_rebuilt_from_tables_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    nodes, edges = small_graph()
    with DuckDBGraphStore(path) as s:
        s.load_snapshot("acme", nodes, edges)
        before = (s.impact("acme", AMOUNT), s.dependencies("acme", TRG), s.where_used("acme", AMOUNT))
    ro = DuckDBGraphStore(path, read_only=True)
    try:
        after = (ro.impact("acme", AMOUNT), ro.dependencies("acme", TRG), ro.where_used("acme", AMOUNT))
        assert after == before
        assert ro.graph_index("acme").cycles() == [sorted([SVC, UTIL]), ["ApexClass:Recursive"]]
        with pytest.raises(GraphStoreError, match="read-only"):
            ro.load_snapshot("acme", nodes, edges)
    finally:
        ro.close()


def test_versions_pruning_and_history(store: DuckDBGraphStore) -> None:
    for n in range(2, 7):
        store.load_snapshot("acme", *_tiny(n), keep=3)
    snaps = store.snapshots("acme")
    assert [s.version for s in snaps] == [3, 4, 5]
    assert [s.node_count for s in snaps] == [4, 5, 6]
    assert len(store.nodes("acme")) == 6
    assert len(store.nodes("acme", version=3)) == 4
    assert len(store.edges("acme", version=4)) == 4
    with pytest.raises(GraphStoreError, match="no snapshot version 1"):
        store.nodes("acme", version=1)
    # old versions' rows are gone, not only their snapshot row
    assert store._q("SELECT count(*) FROM nodes WHERE org = 'acme' AND version < 3") == [(0,)]
    assert store._q("SELECT count(*) FROM edges WHERE org = 'acme' AND version < 3") == [(0,)]
    # the cached index follows the new snapshot
    assert store.graph_index("acme").n == 6
    store.load_snapshot("acme", *_tiny(9), keep=3)
    assert store.graph_index("acme").n == 9
    assert len(store.impact("acme", "ApexClass:C0")) == 8
    assert [k for k in store._indexes if k[0] == "acme"] == [("acme", 6)]


def test_failed_load_leaves_previous_snapshot_current(tmp_path: Path) -> None:
    store = DuckDBGraphStore(tmp_path / "g.duckdb", batch_rows=2)  # several batches per load
    nodes, edges = small_graph()
    store.load_snapshot("acme", nodes, edges)
    before = (store.nodes("acme"), store.edges("acme"), store.impact("acme", AMOUNT))

    bad_edges = edges + [Edge(SVC, "", CALLS, "classes/InvoiceService.cls:99")]
    with pytest.raises(GraphStoreError, match="edge endpoint must be a non-empty string"):
        store.load_snapshot("acme", [Node("ApexClass:New", "ApexClass", "New")] + nodes, bad_edges)

    def exploding_nodes() -> Iterator[Node]:
        yield from nodes[:7]  # several batches are already written inside the transaction
        raise RuntimeError("extractor died")

    with pytest.raises(RuntimeError, match="extractor died"):
        store.load_snapshot("acme", exploding_nodes(), edges)

    def exploding_edges() -> Iterator[Edge]:
        yield from edges[:5]
        raise RuntimeError("parser died")

    with pytest.raises(RuntimeError, match="parser died"):
        store.load_snapshot("acme", nodes, exploding_edges(), keep=1)  # would prune v1

    with pytest.raises(GraphStoreError, match="duplicate"):
        store.load_snapshot("acme", nodes + nodes[:1], edges)

    assert [s.version for s in store.snapshots("acme")] == [1]
    assert (store.nodes("acme"), store.edges("acme"), store.impact("acme", AMOUNT)) == before
    assert store._q("SELECT count(*) FROM nodes WHERE version <> 1") == [(0,)]
    store.close()
    reopened = DuckDBGraphStore(tmp_path / "g.duckdb", read_only=True)
    assert reopened.nodes("acme") == before[0] and reopened.impact("acme", AMOUNT) == before[2]
    reopened.close()


def test_edge_to_an_unknown_key_gets_an_external_node(store: DuckDBGraphStore) -> None:
    """Same contract as the Neo4j store (test_graph_store_neo4j.py): the edge is kept and its
    missing endpoint is stored as an external node."""
    nodes = [Node("ApexClass:A", "ApexClass", "A")]
    edges = [
        Edge("ApexClass:A", "ApexClass:Gone", CALLS, "classes/A.cls:3"),
        Edge("ApexClass:A", "weird-no-colon", "references", "classes/A.cls:4"),
    ]
    info = store.load_snapshot("solo", nodes, edges)
    assert info.node_count == 3 and info.edge_count == 2
    assert store.node("solo", "ApexClass:Gone") == Node("ApexClass:Gone", "ApexClass", "Gone", external=True)
    assert store.node("solo", "weird-no-colon") == Node("weird-no-colon", "Unknown", "weird-no-colon", external=True)
    assert sorted(store.edges("solo"), key=lambda e: e.target) == sorted(edges, key=lambda e: e.target)
    assert [h.key for h in store.impact("solo", "ApexClass:Gone")] == ["ApexClass:A"]


HOSTILE = [
    "CustomField:Account.It's__c",
    'ApexClass:Quote"d',
    "ApexClass:Back\\slash\\\\",
    "ApexClass:'); DROP TABLE nodes;--",
    "Flow:MATCH (n) DETACH DELETE n // ` $param {x: 1}",
    "CustomObject:Ünïcödé_日本語__c 🚀",
    "Report:Folder/With\nnewline\ttab\x00nul",
    "ApexClass:%_wildcards%",
]


def test_hostile_keys_round_trip_byte_exact(store: DuckDBGraphStore) -> None:
    nodes = [
        Node(k, k.partition(":")[0], k.partition(":")[2], attrs={"label": k, "nested": {"q": "'\"\\"}, "n": [1, 2.5, None]})
        for k in HOSTILE
    ]
    edges = [
        Edge(HOSTILE[i], HOSTILE[i + 1], REFERENCES, f"path/{HOSTILE[i]}:{i}", access="read", detail=HOSTILE[i])
        for i in range(len(HOSTILE) - 1)
    ]
    store.load_snapshot("o'rg; DROP", nodes, edges, meta={"note": "'); DROP TABLE snapshots;--"})
    assert store.orgs() == ["o'rg; DROP"]
    assert store.nodes("o'rg; DROP") == nodes
    assert store.edges("o'rg; DROP") == edges
    for k in HOSTILE:
        assert store.node("o'rg; DROP", k) == nodes[HOSTILE.index(k)]
    assert [e.source for e in store.where_used("o'rg; DROP", HOSTILE[3])] == [HOSTILE[2]]
    hits = store.impact("o'rg; DROP", HOSTILE[-1])
    assert hits[-1].path == tuple(reversed(HOSTILE))
    assert store.snapshots("o'rg; DROP")[0].meta == {"note": "'); DROP TABLE snapshots;--"}
    assert store._q("SELECT count(*) FROM nodes") == [(len(HOSTILE),)]


def test_org_isolation(store: DuckDBGraphStore) -> None:
    nodes, edges = small_graph()
    store.load_snapshot("acme", nodes, edges)
    other = [Node(AMOUNT, "CustomField", "Invoice__c.Amount__c"), Node("ApexClass:GlobexOnly", "ApexClass", "GlobexOnly")]
    store.load_snapshot("globex", other, [Edge("ApexClass:GlobexOnly", AMOUNT, QUERIES, "globex.cls:1")])
    assert {h.key for h in store.impact("globex", AMOUNT)} == {"ApexClass:GlobexOnly"}
    assert "ApexClass:GlobexOnly" not in {h.key for h in store.impact("acme", AMOUNT)}
    assert [e.source for e in store.where_used("globex", AMOUNT)] == ["ApexClass:GlobexOnly"]
    assert store.node("acme", "ApexClass:GlobexOnly") is None
    assert len(store.nodes("globex")) == 2 and len(store.edges("globex")) == 1
    store.load_snapshot("globex", other, [], keep=1)  # a new globex version leaves acme alone
    assert [s.version for s in store.snapshots("acme")] == [1]
    assert store.impact("globex", AMOUNT) == []
    assert len(store.impact("acme", AMOUNT)) == 6
    assert store.orgs() == ["acme", "globex"]


def test_unknown_org_and_component_errors(store: DuckDBGraphStore) -> None:
    nodes, edges = small_graph()
    store.load_snapshot("acme-prod", nodes, edges)
    with pytest.raises(UnknownOrgError, match="acme-prod"):
        store.impact("acme-prd", AMOUNT)
    with pytest.raises(UnknownOrgError):
        store.nodes("nope")
    with pytest.raises(UnknownComponentError) as ei:
        store.impact("acme-prod", "CustomField:Invoice__c.Amont__c")
    assert ei.value.suggestions[0] == AMOUNT and "did you mean" in str(ei.value)
    with pytest.raises(UnknownComponentError) as ei:
        store.where_used("acme-prod", "apexclass:invoiceservice")
    assert ei.value.suggestions[0] == SVC
    with pytest.raises(UnknownComponentError):
        store.dependencies("acme-prod", "Flow:Nothing_Like_It_At_All_xyz")


def test_empty_store_and_empty_snapshot(tmp_path: Path) -> None:
    s = DuckDBGraphStore(tmp_path / "e.duckdb")
    assert s.orgs() == []
    with pytest.raises(UnknownOrgError, match="empty"):
        s.snapshots("x")
    s.load_snapshot("x", [], [])
    assert s.nodes("x") == [] and s.edges("x") == [] and s.graph_index("x").n == 0
    with pytest.raises(GraphStoreError):
        s.load_snapshot("x", [], [], keep=0)
    s.close()


def test_load_arrays_bulk_path(store: DuckDBGraphStore) -> None:
    keys = np.array([f"ApexClass:C{i}" for i in range(50)] + ["CustomObject:Account"], dtype=object)
    types = np.array([0] * 50 + [1], dtype=np.uint8)
    src = np.arange(50)
    dst = np.array([50] + list(range(49)))  # C0 → Account, Ci → C(i-1)
    kinds = np.array([EDGE_KINDS.index(QUERIES)] + [EDGE_KINDS.index(CALLS)] * 49, dtype=np.uint8)
    info = store.load_arrays(
        "bulk", keys, types, src, dst, kinds, type_names=["ApexClass", "CustomObject"], evidence="synthetic"
    )
    assert (info.node_count, info.edge_count) == (51, 50)
    hits = store.impact("bulk", "CustomObject:Account")
    assert len(hits) == 50 and hits[-1].path[-1] == "ApexClass:C49" and hits[0].via_kind == QUERIES
    assert store.node("bulk", "ApexClass:C7") == Node("ApexClass:C7", "ApexClass", "C7", False, {})
    assert store.where_used("bulk", "ApexClass:C3") == [Edge("ApexClass:C4", "ApexClass:C3", CALLS, "synthetic")]
    store._indexes.clear()  # rebuilt from the tables: same answers
    assert store.impact("bulk", "CustomObject:Account") == hits
    with pytest.raises(GraphStoreError, match="out of range"):
        store.load_arrays("bulk", keys, types, src, dst + 100, kinds, type_names=["ApexClass", "CustomObject"])
    with pytest.raises(GraphStoreError, match="duplicate"):
        store.load_arrays("bulk", np.array(["A:x", "A:x"], dtype=object), ["A", "A"], np.array([0]), np.array([1]), [CHILD_OF])
    assert [s.version for s in store.snapshots("bulk")] == [1]


def test_a_second_process_waits_for_the_writer_lock(tmp_path) -> None:
    """Runs of different orgs in parallel processes share one DuckDB file: the second waits."""
    import subprocess
    import sys
    import time as _time

    from aicolleague_pipelines.lib.graph.stores import open_store

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; "
         "from aicolleague_pipelines.lib.graph.stores import open_store; "
         "s=open_store(Path(sys.argv[1])); print('locked', flush=True); time.sleep(1.5); s.close()",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = _time.monotonic()
    with open_store(tmp_path, lock_timeout=30) as store:
        waited = _time.monotonic() - started
        assert store.orgs() == []
    holder.wait(timeout=30)
    assert waited > 0.5  # it really waited for the other process
