"""Load throughput of the Neo4j graph store with UNWIND batches of 1k / 5k / 10k rows.

    python -m bench.bench_neo4j                 # ArcadeDB's Bolt server (arcadedb-embedded)
    NEO4J_URI=bolt://host:7687 NEO4J_USER=neo4j NEO4J_PASSWORD=... python -m bench.bench_neo4j
    python -m bench.bench_neo4j --nodes 50000 --edges 250000 --batch-sizes 1000,5000,10000 --json

Each batch size loads the same synthetic org (Salesforce-like keys, power-law in-degree so a
few hub objects take a large share of the edges, as real orgs do) through
``Neo4jGraphStore.load_snapshot`` into its own throwaway org, timing the node phase and the
edge phase separately (the rest — schema, counting, the flip — is reported as overhead), then
one impact traversal (depth 3) from the biggest hub, then drops the org. An uncounted warm-up
load runs first (``--no-warmup`` skips it). Against a real Neo4j only
orgs named ``bench_<random>`` are written and they are dropped afterwards.

Numbers through ArcadeDB measure the driver + Bolt + our batching on ArcadeDB's engine, not
Neo4j's; they bound our client-side cost, not Neo4j's server-side speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any

from aicolleague_pipelines.lib.graph.model import EDGE_KINDS, Edge, Node
from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore


def synthetic_org(n_nodes: int, n_edges: int, seed: int = 7) -> tuple[list[Node], list[Edge]]:
    rng = random.Random(seed)
    n_objects = max(1, n_nodes // 20)
    nodes: list[Node] = [
        Node(f"CustomObject:Obj{i}__c", "CustomObject", f"Obj{i}__c") for i in range(n_objects)
    ]
    types = ("CustomField", "ApexClass", "Flow", "Layout", "ValidationRule")
    while len(nodes) < n_nodes:
        i = len(nodes)
        t = types[i % len(types)]
        name = f"Obj{i % n_objects}__c.F{i}__c" if t == "CustomField" else f"{t}{i}"
        nodes.append(Node(f"{t}:{name}", t, name, attrs={"n": i, "label": f"Label {i}"}))
    keys = [n.key for n in nodes]
    edges: list[Edge] = []
    for j in range(n_edges):
        src = keys[rng.randrange(len(keys))]
        # Pareto-distributed target rank: a handful of hubs get most of the references
        rank = min(len(keys) - 1, int(rng.paretovariate(1.2)) - 1)
        tgt = keys[rank]
        kind = EDGE_KINDS[j % len(EDGE_KINDS)]
        edges.append(
            Edge(src, tgt, kind, f"src/{src}.cls:{j % 500}",
                 access=("read", "write", None)[j % 3], dynamic=j % 17 == 0,
                 detail="SOQL WHERE" if j % 5 == 0 else None)
        )
    return nodes, edges


def _timed(store: Neo4jGraphStore, name: str, times: dict[str, float]) -> None:
    original = getattr(store, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0

    setattr(store, name, wrapper)


def run(
    store: Neo4jGraphStore, n_nodes: int, n_edges: int, batch_sizes: list[int], warmup: bool = True
) -> list[dict]:
    nodes, edges = synthetic_org(n_nodes, n_edges)
    hub = nodes[0].key
    if warmup:  # a JVM server (ArcadeDB, Neo4j) runs interpreted until its JIT has seen the queries
        w_nodes, w_edges = synthetic_org(max(100, n_nodes // 10), max(500, n_edges // 10), seed=1)
        org = f"bench_{uuid.uuid4().hex[:10]}"
        t0 = time.perf_counter()
        try:
            store.load_snapshot(org, w_nodes, w_edges, keep=1)
            store.impact(org, w_nodes[0].key, depth=3)
        finally:
            store.drop_org(org)
        print(f"warm-up load ({len(w_nodes):,} nodes, {len(w_edges):,} edges, not counted): "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    for bs in batch_sizes:
        store.batch_size = bs
        org = f"bench_{uuid.uuid4().hex[:10]}"
        times: dict[str, float] = {}
        _timed(store, "_write_nodes", times)
        _timed(store, "_write_edges", times)
        try:
            t0 = time.perf_counter()
            info = store.load_snapshot(org, nodes, edges, keep=1)
            total = time.perf_counter() - t0
            t1 = time.perf_counter()
            hits = store.impact(org, hub, depth=3)
            impact_s = time.perf_counter() - t1
        finally:
            del store._write_nodes, store._write_edges  # back to the class's methods
            t2 = time.perf_counter()
            store.drop_org(org)
            drop_s = time.perf_counter() - t2
        node_s, edge_s = times["_write_nodes"], times["_write_edges"]
        row = {
            "batch_size": bs,
            "nodes": info.node_count,
            "edges": info.edge_count,
            "node_phase_s": round(node_s, 3),
            "edge_phase_s": round(edge_s, 3),
            "overhead_s": round(total - node_s - edge_s, 3),
            "total_s": round(total, 3),
            "nodes_per_s": round(info.node_count / node_s),
            "edges_per_s": round(info.edge_count / edge_s),
            "impact_depth3_hits": len(hits),
            "impact_depth3_s": round(impact_s, 3),
            "drop_s": round(drop_s, 3),
        }
        results.append(row)
        print(
            f"batch {bs:>6}: {row['nodes_per_s']:>8,} nodes/s  {row['edges_per_s']:>8,} edges/s  "
            f"(nodes {node_s:.2f} s, edges {edge_s:.2f} s, other {row['overhead_s']:.2f} s; "
            f"impact(hub, depth 3) {len(hits):,} hits in {impact_s:.2f} s; drop {drop_s:.2f} s)",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--edges", type=int, default=100_000)
    p.add_argument("--batch-sizes", default="1000,5000,10000")
    p.add_argument("--no-warmup", action="store_true", help="skip the uncounted warm-up load")
    p.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    args = p.parse_args(argv)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]

    with ExitStack() as stack:
        if os.environ.get("NEO4J_URI"):
            store = Neo4jGraphStore.from_env()
            target = f"Neo4j at {store.uri}"
        else:
            try:
                from aicolleague_pipelines_tests.fakes.bolt_server import BoltServer

                server = stack.enter_context(BoltServer(heap_size="2g"))
            except (ImportError, BaseException) as exc:  # pytest.skip raises a BaseException
                if isinstance(exc, KeyboardInterrupt):
                    raise
                print(f"no Bolt server: set NEO4J_URI or `pip install arcadedb-embedded` ({exc})",
                      file=sys.stderr)
                return 2
            print(f"ArcadeDB Bolt server started in {server.startup_seconds:.1f} s")
            store = Neo4jGraphStore(server.uri, auth=server.auth, database=server.database)
            target = f"ArcadeDB (Bolt) at {server.uri}"
        stack.callback(store.close)
        store.verify_connectivity()
        print(f"{target}: {args.nodes:,} nodes, {args.edges:,} edges per load")
        results = run(store, args.nodes, args.edges, batch_sizes, warmup=not args.no_warmup)
    if args.json:
        print(json.dumps({"target": target, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
