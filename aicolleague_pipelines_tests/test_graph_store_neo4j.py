"""The Neo4j graph store over real Bolt.

``TestNeo4jStoreOverArcadeDB`` runs the suite against ArcadeDB's Bolt server
(``fakes/bolt_server.py``, one server per module): the real ``neo4j`` driver, real
transactions and rollbacks, but ArcadeDB's Cypher engine. ``TestNeo4jStoreOnRealNeo4j`` runs
the same suite against the Neo4j named by NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD
(/ NEO4J_DATABASE) and is skipped without it. Every test works in its own uniquely named
orgs and drops them afterwards, so a shared Neo4j database is safe to use.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator

import pytest

from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store import (
    GraphStoreError,
    UnknownComponentError,
    UnknownOrgError,
)
from aicolleague_pipelines.lib.graph.store_neo4j import SCHEMA_STATEMENTS, Neo4jGraphStore
from aicolleague_pipelines_tests.fakes.bolt_server import bolt_server  # noqa: F401 (fixture)

HOSTILE = [
    "CustomField:Acc'ount.Name__c",
    'ApexClass:Say"Hello"',
    "ApexClass:back\\slash\\\\n",
    "CustomObject:Ünïcødé_对象__c",
    "Flow:'}) DETACH DELETE n //",
    "Flow:\"}) MATCH (n) DETACH DELETE n RETURN 1 //",
    "ApexClass:multi\nline\r\nkey\ttab",
    "ApexClass:emoji😀|pipe|and`backtick`",
    "ApexClass:$param {curly} [bracket]",
    "ApexClass:\u0000nul-and-\u2028sep",
]


def _graph(prefix: str = "") -> tuple[list[Node], list[Edge]]:
    """A small org: an object, two fields, a class reading one and writing the other."""
    nodes = [
        Node("CustomObject:Account", "CustomObject", "Account", attrs={"label": "Account"}),
        Node(
            "CustomField:Account.Tier__c",
            "CustomField",
            "Account.Tier__c",
            attrs={"type": "Picklist", "values": ["Gold", "Silver"], "required": False,
                   "length": 255, "ratio": 0.25, "nested": {"a": [1, {"b": None}]}},
        ),
        Node("CustomField:Account.Score__c", "CustomField", "Account.Score__c"),
        Node(f"ApexClass:{prefix}Scorer", "ApexClass", f"{prefix}Scorer"),
        Node("CustomObject:ns__Ext__c", "CustomObject", "ns__Ext__c", external=True),
    ]
    edges = [
        Edge("CustomField:Account.Tier__c", "CustomObject:Account", "child_of",
             "objects/Account/fields/Tier__c.field-meta.xml"),
        Edge("CustomField:Account.Score__c", "CustomObject:Account", "child_of",
             "objects/Account/fields/Score__c.field-meta.xml"),
        Edge(f"ApexClass:{prefix}Scorer", "CustomField:Account.Tier__c", "queries",
             "classes/Scorer.cls:12", access="read", detail="SOQL WHERE"),
        Edge(f"ApexClass:{prefix}Scorer", "CustomField:Account.Score__c", "dml",
             "classes/Scorer.cls:20", access="write", detail="DML update"),
        Edge(f"ApexClass:{prefix}Scorer", "CustomObject:Account", "queries",
             "classes/Scorer.cls:12", access="read"),
        # a second edge between the same pair, another kind
        Edge(f"ApexClass:{prefix}Scorer", "CustomObject:Account", "dml",
             "classes/Scorer.cls:20", access="write"),
        Edge(f"ApexClass:{prefix}Scorer", "CustomObject:ns__Ext__c", "dynamic",
             "classes/Scorer.cls:31", dynamic=True, detail="Database.query(str)"),
    ]
    return nodes, edges


def _sorted_nodes(nodes: list[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: n.key)


def _sorted_edges(edges: list[Edge]) -> list[Edge]:
    return sorted(edges, key=lambda e: (e.source, e.target, e.kind, e.evidence))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StoreSuite:
    """The contract, run against whichever Bolt server the subclass's ``store`` points at."""

    @pytest.fixture
    def store(self) -> Iterator[Neo4jGraphStore]:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def new_org(self, store: Neo4jGraphStore) -> Iterator:
        made: list[str] = []

        def make(label: str = "org") -> str:
            name = f"t_{label}_{uuid.uuid4().hex[:8]}"
            made.append(name)
            return name

        yield make
        for name in made:
            store.drop_org(name)

    def _count(self, store: Neo4jGraphStore, org: str, version: int | None = None) -> int:
        """Component nodes of ``org`` (of ``version``) in the database, whatever their state."""
        query = (
            "MATCH (c:Component {org: $org}) RETURN count(c) AS n"
            if version is None
            else "MATCH (c:Component {org: $org, version: $version}) RETURN count(c) AS n"
        )
        records = store._driver.execute_query(
            query, {"org": org, "version": version}, database_=store.database
        ).records
        return records[0]["n"]

    # --- connectivity and schema ----------------------------------------------------------
    def test_connectivity(self, store: Neo4jGraphStore) -> None:
        store.verify_connectivity()

    def test_wrong_password_is_a_store_error_that_never_shows_the_password(
        self, store: Neo4jGraphStore
    ) -> None:
        secret = "Wr0ng-Pa55word-" + uuid.uuid4().hex[:6]
        bad = Neo4jGraphStore(store.uri, auth=(store.user or "neo4j", secret),
                              database=store.database)
        try:
            with pytest.raises(GraphStoreError) as info:
                bad.verify_connectivity()
            assert secret not in str(info.value) and secret not in repr(info.value)
            assert secret not in repr(bad)
        finally:
            bad.close()

    def test_unreachable_server_is_a_store_error(self) -> None:
        store = Neo4jGraphStore(
            f"bolt://127.0.0.1:{_free_port()}", auth=("neo4j", "pw"),
            connection_timeout=2.0,
        )
        try:
            with pytest.raises(GraphStoreError, match="not reachable"):
                store.verify_connectivity()
        finally:
            store.close()

    def test_schema_is_idempotent_and_enforces_unique_uids(self, store: Neo4jGraphStore) -> None:
        for _ in range(2):
            store._schema_ready = False
            store.ensure_schema()
        rows = store._driver.execute_query("SHOW CONSTRAINTS", database_=store.database).records
        ours = [r for r in rows if r["name"] in ("aic_component_uid", "aic_snapshot_uid")]
        assert sorted(r["name"] for r in ours) == ["aic_component_uid", "aic_snapshot_uid"]
        for r in ours:
            # "UNIQUENESS" (Neo4j 5, ArcadeDB) or "NODE_PROPERTY_UNIQUENESS" (newer Neo4j)
            assert "UNIQUENESS" in r["type"] and r["properties"] == ["uid"]
        indexes = store._driver.execute_query("SHOW INDEXES", database_=store.database).records
        composite = [r for r in indexes if r["name"] == "aic_component_org_version_key"]
        assert len(composite) == 1 and composite[0]["properties"] == ["org", "version", "key"]
        uid = f"t_dup_{uuid.uuid4().hex}"
        store._driver.execute_query("CREATE (:Component {uid: $uid})", uid=uid,
                                    database_=store.database)
        try:
            from neo4j.exceptions import ConstraintError

            with pytest.raises(ConstraintError):
                store._driver.execute_query("CREATE (:Component {uid: $uid})", uid=uid,
                                            database_=store.database)
        finally:
            store._driver.execute_query("MATCH (c:Component {uid: $uid}) DELETE c", uid=uid,
                                        database_=store.database)

    # --- round trips --------------------------------------------------------------------------
    def test_load_and_read_back_everything(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        nodes, edges = _graph()
        info = store.load_snapshot(org, iter(nodes), iter(edges), meta={"api": "62.0", "n": 3})
        assert (info.org, info.version, info.node_count, info.edge_count) == (org, 1, 5, 7)
        assert info.meta == {"api": "62.0", "n": 3}
        assert store.nodes(org) == _sorted_nodes(nodes)
        assert store.edges(org) == _sorted_edges(edges)
        assert store.node(org, "CustomField:Account.Tier__c") == nodes[1]
        assert store.node(org, "CustomField:Account.Nope__c") is None
        assert org in store.orgs()
        [snap] = store.snapshots(org)
        assert snap == info
        assert store.current_version(org) == 1

    def test_where_used_is_one_hop_with_evidence(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        nodes, edges = _graph()
        store.load_snapshot(org, nodes, edges)
        used = store.where_used(org, "CustomObject:Account")
        assert used == _sorted_edges([e for e in edges if e.target == "CustomObject:Account"])
        assert store.where_used(org, "ApexClass:Scorer") == []

    def test_unknown_component_and_org_errors(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        store.load_snapshot(org, *_graph())
        with pytest.raises(UnknownComponentError) as info:
            store.impact(org, "customfield:account.tier__C")
        assert info.value.suggestions[0] == "CustomField:Account.Tier__c"
        assert "did you mean" in str(info.value)
        with pytest.raises(UnknownComponentError) as info:
            store.where_used(org, "CustomField:Account.Tierr__c")
        assert "CustomField:Account.Tier__c" in info.value.suggestions
        with pytest.raises(UnknownComponentError):
            store.dependencies(org, "Nothing:Like.This.At_All")
        missing = new_org("missing")
        for call in (
            lambda: store.nodes(missing),
            lambda: store.edges(missing),
            lambda: store.node(missing, "CustomObject:Account"),
            lambda: store.where_used(missing, "CustomObject:Account"),
            lambda: store.impact(missing, "CustomObject:Account"),
        ):
            with pytest.raises(UnknownOrgError, match=missing):
                call()
        assert store.snapshots(missing) == []

    def test_hostile_keys_round_trip_byte_exact(self, store: Neo4jGraphStore, new_org) -> None:
        bystander = new_org("bystander")
        store.load_snapshot(bystander, *_graph())
        org = new_org("it's \"hostile\" \\ ünï }) //")
        nodes = [
            Node(key, key.partition(":")[0], key.partition(":")[2] + "\n'name'",
                 attrs={"raw": key, key: [key, "\\'\""]})
            for key in HOSTILE
        ]
        edges = [
            Edge(HOSTILE[i], HOSTILE[(i + 1) % len(HOSTILE)], "references",
                 f"{HOSTILE[i]}:{i}", access="read", detail=HOSTILE[-1 - i])
            for i in range(len(HOSTILE))
        ]
        store.load_snapshot(org, nodes, edges, meta={"note": HOSTILE[4]})
        assert store.nodes(org) == _sorted_nodes(nodes)
        assert store.edges(org) == _sorted_edges(edges)
        for key in HOSTILE:
            assert store.node(org, key).key.encode() == key.encode()
        assert [e.source for e in store.where_used(org, HOSTILE[5])] == [HOSTILE[4]]
        assert len(store.impact(org, HOSTILE[0])) == len(HOSTILE) - 1  # a ring
        assert store.snapshots(org)[-1].meta == {"note": HOSTILE[4]}
        # nothing else was touched
        assert store.nodes(bystander) == _sorted_nodes(_graph()[0])
        assert store.edges(bystander) == _sorted_edges(_graph()[1])

    def test_edge_to_an_unknown_key_gets_an_external_node(
        self, store: Neo4jGraphStore, new_org
    ) -> None:
        org = new_org()
        nodes = [Node("ApexClass:A", "ApexClass", "A")]
        edges = [
            Edge("ApexClass:A", "ApexClass:Gone", "calls", "classes/A.cls:3"),
            Edge("ApexClass:A", "weird-no-colon", "references", "classes/A.cls:4"),
        ]
        info = store.load_snapshot(org, nodes, edges)
        assert info.node_count == 3 and info.edge_count == 2
        assert store.node(org, "ApexClass:Gone") == Node(
            "ApexClass:Gone", "ApexClass", "Gone", external=True
        )
        assert store.node(org, "weird-no-colon") == Node(
            "weird-no-colon", "Unknown", "weird-no-colon", external=True
        )
        assert store.edges(org) == _sorted_edges(edges)

    def test_duplicate_node_keys_last_one_wins(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        nodes = [Node("ApexClass:A", "ApexClass", "A", attrs={"v": 1}),
                 Node("ApexClass:A", "ApexClass", "A", attrs={"v": 2})]
        info = store.load_snapshot(org, nodes, [])
        assert info.node_count == 1
        assert store.nodes(org) == [nodes[1]]

    # --- snapshots: atomic replace, pruning, isolation ----------------------------------
    def test_failure_half_way_keeps_the_old_snapshot_current_and_complete(
        self, store: Neo4jGraphStore, new_org
    ) -> None:
        org = new_org()
        old_nodes, old_edges = _graph()
        store.load_snapshot(org, old_nodes, old_edges, meta={"run": "old"})
        seen_during_load = []

        new_nodes = [Node(f"ApexClass:New{i}", "ApexClass", f"New{i}") for i in range(20)]

        def failing_edges() -> Iterator[Edge]:
            for i in range(19):
                yield Edge(f"ApexClass:New{i}", f"ApexClass:New{i + 1}", "calls", f"x.cls:{i}")
                if i == 12:
                    # several batches of the new version are committed by now: a reader
                    # still sees exactly the old snapshot
                    seen_during_load.append(
                        (store.current_version(org), store.nodes(org), store.edges(org),
                         self._count(store, org, 2))
                    )
                if i == 15:
                    raise RuntimeError("extractor crashed half-way")

        with pytest.raises(RuntimeError, match="half-way"):
            store.load_snapshot(org, new_nodes, failing_edges(), meta={"run": "new"})
        [(current, nodes_then, edges_then, partial)] = seen_during_load
        assert current == 1 and partial == 20  # the new version was really being written
        assert nodes_then == _sorted_nodes(old_nodes)
        assert edges_then == _sorted_edges(old_edges)
        # after the failure: the old snapshot, complete, and no trace of the partial one
        assert [s.version for s in store.snapshots(org)] == [1]
        assert store.snapshots(org)[0].meta == {"run": "old"}
        assert store.nodes(org) == _sorted_nodes(old_nodes)
        assert store.edges(org) == _sorted_edges(old_edges)
        assert self._count(store, org) == len(old_nodes)
        # and the next load works normally
        info = store.load_snapshot(org, new_nodes, [])
        assert store.current_version(org) == info.version
        assert store.nodes(org) == _sorted_nodes(new_nodes)

    def test_failure_in_nodes_keeps_old_snapshot(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        store.load_snapshot(org, *_graph())

        def failing_nodes() -> Iterator[Node]:
            for i in range(10):
                yield Node(f"ApexClass:N{i}", "ApexClass", f"N{i}")
            raise ValueError("bad inventory")

        with pytest.raises(ValueError, match="bad inventory"):
            store.load_snapshot(org, failing_nodes(), [])
        assert store.nodes(org) == _sorted_nodes(_graph()[0])
        assert self._count(store, org) == len(_graph()[0])

    def test_replace_then_prune_beyond_keep(self, store: Neo4jGraphStore, new_org) -> None:
        org = new_org()
        for i in range(4):
            nodes = [Node(f"ApexClass:V{i}_{j}", "ApexClass", f"V{i}_{j}") for j in range(i + 1)]
            info = store.load_snapshot(org, nodes, [], meta={"i": i}, keep=2)
            assert info.version == i + 1
            assert store.nodes(org) == nodes
        assert [s.version for s in store.snapshots(org)] == [3, 4]
        assert [s.meta for s in store.snapshots(org)] == [{"i": 2}, {"i": 3}]
        v3_keys = [n.key for n in store.nodes(org, version=3)]
        assert v3_keys == [f"ApexClass:V2_{j}" for j in range(3)]
        with pytest.raises(GraphStoreError, match="kept versions: 3, 4"):
            store.nodes(org, version=1)
        assert self._count(store, org, 1) == 0 and self._count(store, org, 2) == 0
        assert self._count(store, org) == 3 + 4

    def test_orgs_are_isolated(self, store: Neo4jGraphStore, new_org) -> None:
        a, b = new_org("a"), new_org("b")
        nodes_a, edges_a = _graph("A")
        nodes_b, edges_b = _graph("B")
        store.load_snapshot(a, nodes_a, edges_a)
        store.load_snapshot(b, nodes_b, edges_b)
        store.load_snapshot(b, nodes_b[:2], edges_b[:1], keep=1)  # replace and prune b only
        assert store.nodes(a) == _sorted_nodes(nodes_a)
        assert store.edges(a) == _sorted_edges(edges_a)
        assert store.nodes(b) == _sorted_nodes(nodes_b[:2])
        assert [s.version for s in store.snapshots(a)] == [1]
        assert [s.version for s in store.snapshots(b)] == [2]
        assert {h.key for h in store.impact(a, "CustomObject:Account")} == {
            "CustomField:Account.Tier__c", "CustomField:Account.Score__c", "ApexClass:AScorer",
        }
        assert [h.key for h in store.impact(b, "CustomObject:Account")] == [
            "CustomField:Account.Tier__c"
        ]
        assert {a, b} <= set(store.orgs())
        with pytest.raises(GraphStoreError, match=re.escape("'|'")):
            store.load_snapshot("bad|org", [], [])

    # --- traversals ---------------------------------------------------------------------------
    @pytest.fixture
    def cyclic(self, store: Neo4jGraphStore, new_org) -> str:
        """A ← B ← C ← D, C → A, and A → D closing a cycle (X → Y: X depends on Y)."""
        org = new_org("cycle")
        nodes = [Node(f"ApexClass:{k}", "ApexClass", k) for k in "ABCDE"]
        edges = [
            Edge("ApexClass:B", "ApexClass:A", "calls", "B.cls:1"),
            Edge("ApexClass:C", "ApexClass:B", "calls", "C.cls:1"),
            Edge("ApexClass:C", "ApexClass:A", "extends", "C.cls:2"),
            Edge("ApexClass:D", "ApexClass:C", "calls", "D.cls:1"),
            Edge("ApexClass:A", "ApexClass:D", "references", "A.cls:9"),
            Edge("ApexClass:E", "ApexClass:E", "calls", "E.cls:1"),  # self-loop
        ]
        store.load_snapshot(org, nodes, edges)
        return org

    def test_impact_with_depth_and_paths_on_a_cycle(self, store: Neo4jGraphStore, cyclic) -> None:
        hits = store.impact(cyclic, "ApexClass:A")
        assert [(h.key, h.depth, h.path, h.via_kind) for h in hits] == [
            ("ApexClass:B", 1, ("ApexClass:A", "ApexClass:B"), "calls"),
            ("ApexClass:C", 1, ("ApexClass:A", "ApexClass:C"), "extends"),
            ("ApexClass:D", 2, ("ApexClass:A", "ApexClass:C", "ApexClass:D"), "calls"),
        ]
        assert all(h.type == "ApexClass" and not h.external for h in hits)
        assert [h.key for h in store.impact(cyclic, "ApexClass:A", depth=1)] == [
            "ApexClass:B", "ApexClass:C"
        ]
        assert store.impact(cyclic, "ApexClass:A", depth=0) == []
        assert store.impact(cyclic, "ApexClass:E") == []  # only itself

    def test_dependencies_with_depth_and_paths_on_a_cycle(
        self, store: Neo4jGraphStore, cyclic
    ) -> None:
        hits = store.dependencies(cyclic, "ApexClass:D")
        assert [(h.key, h.depth, h.path, h.via_kind) for h in hits] == [
            ("ApexClass:C", 1, ("ApexClass:D", "ApexClass:C"), "calls"),
            ("ApexClass:A", 2, ("ApexClass:D", "ApexClass:C", "ApexClass:A"), "extends"),
            ("ApexClass:B", 2, ("ApexClass:D", "ApexClass:C", "ApexClass:B"), "calls"),
        ]
        assert [h.key for h in store.dependencies(cyclic, "ApexClass:D", depth=1)] == [
            "ApexClass:C"
        ]

    def test_traversal_reads_the_current_version_only(
        self, store: Neo4jGraphStore, new_org
    ) -> None:
        org = new_org()
        store.load_snapshot(org, [Node("ApexClass:A", "ApexClass", "A")],
                            [Edge("ApexClass:B", "ApexClass:A", "calls", "v1")])
        store.load_snapshot(org, [Node("ApexClass:A", "ApexClass", "A")],
                            [Edge("ApexClass:C", "ApexClass:A", "calls", "v2")])
        assert [h.key for h in store.impact(org, "ApexClass:A")] == ["ApexClass:C"]
        assert [e.evidence for e in store.where_used(org, "ApexClass:A")] == ["v2"]
        assert [e.evidence for e in store.edges(org, version=1)] == ["v1"]


class TestNeo4jStoreOverArcadeDB(StoreSuite):
    @pytest.fixture
    def store(self, bolt_server) -> Iterator[Neo4jGraphStore]:  # noqa: F811
        s = Neo4jGraphStore(
            bolt_server.uri, auth=bolt_server.auth, database=bolt_server.database, batch_size=3
        )
        try:
            yield s
        finally:
            s.close()


@pytest.mark.neo4j
@pytest.mark.skipif(
    not os.environ.get("NEO4J_URI"),
    reason="NEO4J_URI is not set: the suite runs against a real Neo4j only when "
    "NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD (/ NEO4J_DATABASE) name one",
)
class TestNeo4jStoreOnRealNeo4j(StoreSuite):
    @pytest.fixture
    def store(self) -> Iterator[Neo4jGraphStore]:
        s = Neo4jGraphStore.from_env(batch_size=3)
        try:
            yield s
        finally:
            s.close()


# --- without any server ------------------------------------------------------------------------
def test_from_env_needs_a_uri_and_never_shows_the_password() -> None:
    with pytest.raises(GraphStoreError, match="NEO4J_URI"):
        Neo4jGraphStore.from_env({})
    secret = "hunter2-" + uuid.uuid4().hex[:6]
    store = Neo4jGraphStore.from_env(
        {"NEO4J_URI": "bolt://127.0.0.1:7687", "NEO4J_USER": "me", "NEO4J_PASSWORD": secret,
         "NEO4J_DATABASE": "graphs"}
    )
    try:
        assert (store.user, store.database) == ("me", "graphs")
        assert secret not in repr(store) and secret not in str(vars(store))
    finally:
        store.close()
    with pytest.raises(GraphStoreError, match="NEO4J_PASSWORD"):
        Neo4jGraphStore.from_env({"NEO4J_URI": "bolt://x:7687", "NEO4J_USER": "me"})


def test_schema_statements_create_constraints_before_indexes() -> None:
    kinds = [s.split()[1] for s in SCHEMA_STATEMENTS]
    assert kinds == sorted(kinds, key=lambda k: k != "CONSTRAINT")
    assert all("IF NOT EXISTS" in s for s in SCHEMA_STATEMENTS)
