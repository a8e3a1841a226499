"""``python -m bench fault-matrix`` — the fault-injection matrix as a fault × outcome table.

Runs the scenarios of ``aicolleague_pipelines_tests/fault_scenarios.py`` (the same code the
test suite runs, with more rows and larger sizes) and prints, per fault: the outcome, what the
user is left with, how long the faulty run took and how long until a good current snapshot was
back (rerun included); then the messages the failing runs showed. Every row also checks the
last good snapshot, the rerun and duplicates; a row whose checks fail prints FAIL and the exit
code is 1.

Options: ``--quick`` (suite sizes), ``--kill-trials N`` (SIGKILLs at random points of a load),
``--skip-neo4j`` (no ArcadeDB Bolt server).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from aicolleague_pipelines_tests import fault_scenarios as fs


def _row(rows: list, layer: str, fault: str, fn: Callable[[], fs.Outcome]) -> None:
    print(f"  {layer}: {fault} …", flush=True)
    try:
        rows.append(fn())
    except Exception as exc:  # noqa: BLE001 - a failing row is reported, the others still run
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if not isinstance(exc, AssertionError):
            traceback.print_exc()
        rows.append(fs.Outcome(layer, fault, "FAIL", detail, 0.0, 0.0))


def run(args: argparse.Namespace) -> list[fs.Outcome]:
    rows: list[fs.Outcome] = []
    work = Path(tempfile.mkdtemp(prefix="aic-fault-matrix-"))
    big = (200_000, 1_000_000) if args.quick else (1_000_000, 5_000_000)
    mid = (20_000, 100_000) if args.quick else (200_000, 1_000_000)
    try:
        harness = fs.LiveHarness(work / "live")
        platforms = fs.PlatformHarness(harness)
        try:
            for fault, inject, expect, says, org in fs.SALESFORCE_FAULTS.values():
                _row(rows, "Salesforce API", fault, lambda f=fault, i=inject, e=expect, s=says, o=org:
                     fs.salesforce_fault(harness, f, i, org=o, expect=e, says=s))
            for kind in ("malformed_xml", "corrupt_zip"):
                _row(rows, "Metadata API retrieve", kind, lambda k=kind: fs.retrieve_fault(harness, k))
            for kind in ("rate_limited", "rate_limited_persistent", "truncated_page", "truncated_page_persistent"):
                _row(rows, "platform (Metabase)", kind, lambda k=kind: fs.platform_fault(platforms, k))
            bolt = None
            if not args.skip_neo4j:
                try:
                    from aicolleague_pipelines_tests.fakes.bolt_server import BoltServer

                    bolt = BoltServer().start()
                except BaseException as exc:  # noqa: BLE001 - pytest.skip is a BaseException
                    print(f"  (no Bolt server: {exc}; Neo4j rows skipped)")
            if bolt is not None:
                try:
                    for kind in ("drop", "lost_commit", "down"):
                        _row(rows, "graph store (Neo4j/Bolt)", kind,
                             lambda k=kind: fs.neo4j_fault(bolt, k, nodes=2_000, edges=8_000, batch=500))
                    _row(rows, "graph store (Neo4j/Bolt)", "lost commit via Dagster",
                         lambda: fs.neo4j_dagster_fault(harness, bolt))
                finally:
                    bolt.stop()
        finally:
            platforms.close()
            harness.close()

        def fresh(name: str) -> Path:
            path = work / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            return path

        for api, (n, e) in (("arrays", big), ("snapshot", mid)):
            _row(rows, "graph store (DuckDB)", f"disk full ({api})",
                 lambda a=api, n=n, e=e: fs.duckdb_disk_full(fresh(f"full-{a}"), nodes=n, edges=e, api=a))
            _row(rows, "graph store (DuckDB)", f"SIGKILL ({api})",
                 lambda a=api, n=n, e=e: fs.duckdb_sigkill(fresh(f"kill-{a}"), nodes=n, edges=e, api=a))
        rng = random.Random(args.seed)
        for trial in range(args.kill_trials):
            delay = rng.uniform(0.02, 0.5)  # a 200k / 1M bulk load takes about 0.6 s here
            _row(rows, "graph store (DuckDB)", f"SIGKILL at {delay:.2f} s (trial {trial + 1})",
                 lambda d=delay, t=trial: fs.duckdb_sigkill(fresh(f"kill-{t}"), nodes=200_000,
                                                            edges=1_000_000, delay=d, seed=t + 10))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def render(rows: list[fs.Outcome]) -> str:
    head = f"| layer | fault | outcome | what is left | faulty run | back to good |\n|---|---|---|---|---:|---:|"
    lines = [head]
    for r in rows:
        lines.append(f"| {r.layer} | {r.fault} | {r.result} | {r.detail} | {r.fault_run_s:.2f} s | "
                     f"{r.recover_s:.2f} s |")
    messages = [(r.fault, r.message) for r in rows if r.message]
    if messages:
        lines += ["", "Messages the user saw:"]
        for fault, message in messages:
            text = f"- {fault}: " + " ".join(message.split())
            # keep the start (org, component) and the end (what to do) of long messages
            lines.append(text if len(text) <= 300 else f"{text[:190]} … {text[-105:]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench fault-matrix", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the test suite's sizes")
    ap.add_argument("--kill-trials", type=int, default=5, help="SIGKILLs at random points of a bulk load")
    ap.add_argument("--skip-neo4j", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print("fault matrix: running the scenarios …", flush=True)
    rows = run(args)
    print()
    print(render(rows))
    failed = [r for r in rows if r.result == "FAIL"]
    print(f"\n{len(rows)} faults, {len(failed)} failed checks, {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
