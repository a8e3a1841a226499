"""Graph store benchmark at one scale (run in its own process so peak RSS is per scale).

``python -m bench.bench_graph --nodes 1000000 --edges 5000000 --json`` prints one JSON
object with the measurements; ``python -m bench`` runs the scales and prints the table.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from bench.generator import generate

ORG = "bench"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def run(n_nodes: int, n_edges: int, seed: int = 0, workdir: str | None = None, samples: int = 200) -> dict[str, Any]:
    res: dict[str, Any] = {"nodes": n_nodes, "edges": n_edges, "seed": seed}
    gen_s, g = _timed(generate, n_nodes, n_edges, seed)
    res["generate_s"] = round(gen_s, 2)
    res["edges_actual"] = g.n_edges
    tmp = tempfile.TemporaryDirectory(dir=workdir)
    db = Path(tmp.name) / "graph.duckdb"
    store = DuckDBGraphStore(db)
    load_s, info = _timed(
        store.load_arrays, ORG, g.keys, g.type_codes, g.src, g.dst, g.kind_codes,
        type_names=g.type_names, kind_names=g.kind_names, evidence="synthetic",
    )
    assert info.node_count == g.n_nodes and info.edge_count == g.n_edges
    res["load_s"] = round(load_s, 2)
    res["db_mb"] = round(db.stat().st_size / 2**20, 1)
    idx = store.graph_index(ORG)
    key_map_s, _ = _timed(lambda: idx.key_to_id)  # built during load (duplicate check): ~0
    res["key_map_s"] = round(key_map_s, 3)

    # --- typical components: random nodes whose impact closure is < 1,000 ----------------
    rng = np.random.default_rng(seed + 1)
    typical: list[str] = []
    sizes: list[int] = []
    tried = 0
    while len(typical) < samples and tried < samples * 20:
        nid = int(rng.integers(0, idx.n))
        tried += 1
        size = len(idx.closure(nid))
        sizes.append(size)
        if size < 1000:
            typical.append(idx.keys[nid])
    res["typical_fraction"] = round(len(typical) / tried, 3)
    res["random_closure_median"] = int(statistics.median(sizes))
    times = []
    hit_counts = []
    for key in typical:
        gc.collect(0)
        dt, hits = _timed(store.impact, ORG, key)
        times.append(dt)
        hit_counts.append(len(hits))
        del hits
    res["impact_typical_median_ms"] = _ms(statistics.median(times))
    res["impact_typical_p90_ms"] = _ms(float(np.percentile(times, 90)))
    res["impact_typical_hits_median"] = int(statistics.median(hit_counts))

    # --- where-used (direct dependents with evidence from DuckDB) --------------------------
    times = []
    for key in typical:
        dt, _ = _timed(store.where_used, ORG, key)
        times.append(dt)
    res["where_used_median_ms"] = _ms(statistics.median(times))
    res["where_used_p90_ms"] = _ms(float(np.percentile(times, 90)))

    # --- the biggest hub: the largest closure among the top in-degree nodes ---------------
    indeg = idx.in_degree()
    cands = np.argsort(-indeg)[:5].tolist()
    best = max(cands, key=lambda v: len(idx.closure(v)))
    runs = []
    size = 0
    for _ in range(5):
        dt, c = _timed(idx.closure, best)
        runs.append(dt)
        size = len(c)
        del c
    res["hub_key"] = idx.keys[best]
    res["hub_in_degree"] = int(indeg[best])
    res["hub_closure_size"] = size
    res["hub_closure_median_ms"] = _ms(statistics.median(runs))
    dt, hits = _timed(store.impact, ORG, idx.keys[best], limit=1000)
    res["hub_impact_limit1000_ms"] = _ms(dt)
    del hits

    # --- whole-graph analytics -------------------------------------------------------------
    pr_first, pr = _timed(idx.pagerank)
    pr_second, pr = _timed(idx.pagerank)
    res["pagerank_first_s"] = round(pr_first, 3)
    res["pagerank_s"] = round(pr_second, 3)
    res["pagerank_top"] = idx.top(pr, 1)[0][0]
    del pr
    dt, cyc = _timed(idx.cycle_ids)
    res["cycles_s"] = round(dt, 3)
    res["cycles"] = len(cyc)
    del cyc
    dt, un = _timed(idx.unused_ids, ["CustomField", "ApexClass"])
    res["unused_s"] = round(dt, 3)

    # --- a new process: the index rebuilt from the tables ------------------------------------
    del idx
    store._indexes.clear()
    gc.collect()
    dt, _ = _timed(store.graph_index, ORG)
    res["index_from_db_s"] = round(dt, 2)
    dt, _ = _timed(store.impact, ORG, typical[0])  # includes the lazy key map
    res["first_query_after_rebuild_s"] = round(dt, 2)

    store.close()
    tmp.cleanup()
    res["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_graph")
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--edges", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--workdir", default=None, help="where the temporary DuckDB file goes")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.nodes, a.edges, a.seed, a.workdir, a.samples)
    print(json.dumps(res) if a.json else json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
