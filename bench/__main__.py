"""``python -m bench`` — graph store benchmarks vs targets (each scale in a fresh process).

Default: 1M components / 5M edges (a few minutes). ``--large`` adds 10M / 50M.
``python -m bench fault-matrix`` prints the fault-injection matrix (``bench/fault_matrix.py``).
``python -m bench scale-orgs`` refreshes 12 synthetic orgs concurrently through the daemon's run
queue on PostgreSQL (``bench/bench_scale_orgs.py``; about 10 minutes on 2 cores).
``--sfdx PATH`` also writes a synthetic SFDX project (for the scan benchmark).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

# metric, label, unit, target (None: reported only), lower is better
TARGETS_1M = [
    ("load_s", "load 1M components / 5M edges (embedded)", "s", 15.0),
    ("impact_typical_median_ms", "impact, typical component (closure < 1,000), median", "ms", 20.0),
    ("hub_closure_median_ms", "biggest hub's full closure, median", "ms", 300.0),
    ("where_used_median_ms", "where-used with evidence, median", "ms", 5.0),
    ("pagerank_s", "PageRank, whole graph", "s", 1.0),
    ("peak_rss_gb", "peak RSS", "GB", 2.0),
]
TARGETS_10M = [
    ("load_s", "load 10M components / 50M edges (embedded)", "s", 120.0),
    ("impact_typical_median_ms", "impact, typical component (closure < 1,000), median", "ms", 20.0),
    ("hub_closure_median_ms", "biggest hub's full closure, median", "ms", 1500.0),
    ("where_used_median_ms", "where-used with evidence, median", "ms", None),
    ("pagerank_s", "PageRank, whole graph", "s", None),
    ("peak_rss_gb", "peak RSS", "GB", 10.0),
]
INFO = [
    ("generate_s", "generator (not part of load)", "s"),
    ("hub_closure_size", "hub closure size", "nodes"),
    ("hub_key", "hub", ""),
    ("impact_typical_p90_ms", "impact typical p90", "ms"),
    ("hub_impact_limit1000_ms", "hub impact, 1,000 closest hits with paths", "ms"),
    ("typical_fraction", "random nodes with closure < 1,000", ""),
    ("pagerank_first_s", "PageRank incl. building the matrix", "s"),
    ("cycles_s", "cycles (strong components)", "s"),
    ("index_from_db_s", "index rebuilt from DuckDB tables", "s"),
    ("first_query_after_rebuild_s", "first query after rebuild (key map)", "s"),
    ("db_mb", "DuckDB file", "MB"),
]


def run_scale(nodes: int, edges: int, seed: int, workdir: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_graph", "--nodes", str(nodes), "--edges", str(edges),
           "--seed", str(seed), "--json"]
    if workdir:
        cmd += ["--workdir", workdir]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(title: str, res: dict[str, Any], targets: list[tuple[str, str, str, float | None]]) -> tuple[str, bool]:
    rows = [f"\n{title}", f"{'metric':<56} {'target':>10} {'measured':>12}  result", "-" * 90]
    ok = True
    for key, label, unit, target in targets:
        val = res.get(key)
        if target is None:
            verdict, tgt = "info", "—"
        else:
            passed = val is not None and val < target
            ok &= passed
            verdict, tgt = ("PASS" if passed else "FAIL"), f"< {target:g} {unit}"
        rows.append(f"{label:<56} {tgt:>10} {val!s:>9} {unit:<3} {verdict}")
    for key, label, unit in INFO:
        if key in res:
            rows.append(f"  {label:<54} {'':>10} {res[key]!s:>9} {unit}")
    return "\n".join(rows), ok


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fault-matrix"]:  # the fault × outcome table (bench/fault_matrix.py)
        from bench.fault_matrix import main as fault_matrix

        return fault_matrix(argv[1:])
    if argv[:1] == ["scale-orgs"]:  # many orgs at once through the run queue
        from bench.bench_scale_orgs import main as scale_orgs

        return scale_orgs(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--large", action="store_true", help="also run 10M components / 50M edges")
    ap.add_argument("--only-large", action="store_true", help="run only the 10M / 50M scale")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true", help="print raw results as JSON too")
    ap.add_argument("--sfdx", default=None, help="write a synthetic SFDX project to this path")
    ap.add_argument("--sfdx-classes", type=int, default=1000)
    a = ap.parse_args(argv)
    if a.sfdx:
        from bench.generator import write_sfdx_project

        print("SFDX project:", write_sfdx_project(a.sfdx, n_classes=a.sfdx_classes, seed=a.seed))
    scales = []
    if not a.only_large:
        scales.append(("1M components / 5M edges", 1_000_000, 5_000_000, TARGETS_1M))
    if a.large or a.only_large:
        scales.append(("10M components / 50M edges", 10_000_000, 50_000_000, TARGETS_10M))
    all_ok = True
    print("running scan of a 1,000-class SFDX project …", flush=True)
    scan = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.bench_scan", "--json"], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1])
    text, ok = table(
        f"Scan: {scan['classes']} Apex classes, {scan['components']} components, {scan['edges']} edges",
        scan,
        [("scan_median_s", "read + build the graph (graph scan), median of 5", "s", 5.0),
         ("read_median_s", "  of which reading the project", "s", None),
         ("build_median_s", "  of which parsing and building", "s", None)],
    )
    all_ok &= ok
    print(text, flush=True)
    for title, n, e, targets in scales:
        print(f"running {title} …", flush=True)
        res = run_scale(n, e, a.seed, a.workdir)
        text, ok = table(title, res, targets)
        all_ok &= ok
        print(text, flush=True)
        if a.json:
            print(json.dumps(res))
    print("\nALL PASS" if all_ok else "\nSOME TARGETS FAILED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
