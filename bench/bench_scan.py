"""Scan benchmark: read a synthetic 1,000-class SFDX project and build its graph.

``python -m bench.bench_scan [--classes 1000] [--repeat 5] [--json]`` prints the median of
``read_sfdx_project`` + ``build_org_graph`` (what ``aicolleague graph scan`` does) over
``--repeat`` runs, after one warm-up (so the OS file cache is warm, as on a second scan).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def run(classes: int, repeat: int, seed: int = 0) -> dict:
    from aicolleague_pipelines.lib.graph.build import build_org_graph
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
    from bench.generator import write_sfdx_project

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "org"
        write_sfdx_project(root, n_classes=classes, seed=seed)
        read_times, build_times = [], []
        graph = inv = None
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            inv = read_sfdx_project(root, "bench")
            t1 = time.perf_counter()
            graph = build_org_graph(inv)
            t2 = time.perf_counter()
            if i:  # the first run warms the file cache and imports
                read_times.append(t1 - t0)
                build_times.append(t2 - t1)
        totals = [r + b for r, b in zip(read_times, build_times)]
        assert inv is not None and graph is not None
        return {
            "classes": classes,
            "components": len(inv.components),
            "files_read": inv.stats.get("files_read"),
            "edges": len(graph.edges),
            "read_median_s": round(statistics.median(read_times), 3),
            "build_median_s": round(statistics.median(build_times), 3),
            "scan_median_s": round(statistics.median(totals), 3),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_scan")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.classes, a.repeat)
    print(json.dumps(res) if a.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
