"""Many orgs at once: synthetic SFDX orgs refreshed concurrently the way production runs them.

``python -m bench scale-orgs [--orgs 12] [--classes 300] [--objects 60] [--max-runs 3]``

What runs (nothing here is simulated):

* one synthetic SFDX project per org (``bench.generator.write_sfdx_project``) and an orgs
  file naming them;
* a fresh PostgreSQL database and a ``DAGSTER_HOME`` holding the project's own
  ``dagster.yaml`` (PostgreSQL storage from ``DAGSTER_PG_*``, the run queue with its
  per-``dagster/partition`` limit of 1); only ``max_concurrent_runs`` is sized for the machine;
* ``dagster-webserver`` and ``dagster-daemon run`` on ``workspace.yaml``: the orgs are added as
  partitions (through GraphQL, before the orgs file exists, so org_registry_sensor requests
  nothing) and one ``org_refresh_job`` run per org is submitted through the GraphQL client
  (plus a second run of each of the first ``--repeat`` orgs, right behind its first: the
  per-org limit must hold it while other orgs overtake it); the daemon dequeues them and each
  run uses the multiprocess executor as the job's default run config sets it (``forkserver``
  with the code location preloaded; ``--start-method spawn`` for Dagster's default);
* meanwhile the RSS/PSS of the whole process tree (webserver, daemon, code servers, run
  workers, step processes) is sampled from ``/proc`` (Linux).

Reported: wall time (first submit → last run finished), peak memory of the tree and of one run,
each run's outcome, the most runs seen running at once, that no two runs of one org overlapped
(from the runs' start/end times), and that the graph store holds every org with the component
counts the generator wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.dagster_services import LOCATION, FreshDatabase, Services, dagster_env, write_dagster_home

PG_BASE_ENV = "AICOLLEAGUE_TEST_PG"
DEFAULT_PG_BASE = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class SynthOrg:
    name: str
    path: Path
    counts: dict[str, int]


@dataclass
class ScaleResult:
    """What one concurrent refresh of many orgs measured (see :func:`run_concurrent_refresh`)."""

    wall_s: float
    runs: list[dict[str, Any]]
    peak_tree_rss_mb: float
    peak_tree_pss_mb: float
    peak_run_pss_mb: float
    max_runs_at_once: int
    same_org_overlaps: list[str]
    store_problems: list[str]
    store_orgs: int
    snapshots: dict[str, int] = field(default_factory=dict)
    #: Seconds each store open waited for other processes' locks (the >1 s ones steps log).
    lock_waits: list[float] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] != "SUCCESS"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "runs": len(self.runs),
            "succeeded": len(self.runs) - len(self.failed),
            "failed": [f"{r['org']} {r['run_id']} {r['status']}" for r in self.failed],
            "peak_tree_rss_mb": self.peak_tree_rss_mb,
            "peak_tree_pss_mb": self.peak_tree_pss_mb,
            "peak_run_pss_mb": self.peak_run_pss_mb,
            "max_runs_at_once": self.max_runs_at_once,
            "same_org_overlaps": self.same_org_overlaps,
            "store_orgs": self.store_orgs,
            "store_problems": self.store_problems,
            "snapshots": self.snapshots,
            "lock_waits_over_1s": len(self.lock_waits),
            "longest_lock_wait_s": max(self.lock_waits, default=0.0),
            "run_seconds": {r["org"] + ("#2" if r["repeat"] else ""): r["seconds"] for r in self.runs},
        }


def write_orgs(root: Path, n: int, classes: int, objects: int, fields_per_object: int,
               seed: int = 0) -> list[SynthOrg]:
    """``n`` synthetic SFDX projects under ``root``, each from its own seed."""
    from bench.generator import write_sfdx_project

    orgs = []
    for i in range(n):
        path = root / f"org{i:02d}"
        counts = write_sfdx_project(path, n_classes=classes, n_objects=objects,
                                    fields_per_object=fields_per_object, seed=seed + i)
        orgs.append(SynthOrg(f"synthetic-{i:02d}", path, counts))
    return orgs


# --- process tree memory (Linux /proc; no extra dependency) ---------------------------------


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields after its ')' are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (ppid, cmd)
    return table


def _mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB; PSS shares pages between forked processes fairly."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _is_run_worker(table: dict[int, tuple[int, str]], pid: int) -> bool:
    """A run worker: what a code server (``dagster api grpc``) starts for each run, either a
    multiprocessing child (the default run launcher) or ``dagster api execute_run``."""
    ppid, cmd = table[pid]
    parent = table.get(ppid, (0, ""))[1]
    return "execute_run" in cmd or ("api grpc" in parent and "spawn_main" in cmd)


class TreeSampler(threading.Thread):
    """Samples the memory of every descendant of ``roots`` until stopped: the sum over the
    tree, and per run (a run worker — ``dagster api execute_run`` — plus its step processes)."""

    def __init__(self, roots: list[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.interval = interval
        self.peak_rss_kb = self.peak_pss_kb = self.peak_run_pss_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)

        def tree(pid: int) -> list[int]:
            out, todo = [], [pid]
            while todo:
                p = todo.pop()
                out.append(p)
                todo.extend(children.get(p, []))
            return out

        pids = [p for r in self.roots if r in table for p in tree(r)]
        mem = {p: _mem_kb(p) for p in pids}
        self.peak_rss_kb = max(self.peak_rss_kb, sum(m[0] for m in mem.values()))
        self.peak_pss_kb = max(self.peak_pss_kb, sum(m[1] for m in mem.values()))
        for p in pids:
            if _is_run_worker(table, p):
                run_pss = sum(mem.get(q, (0, 0))[1] for q in tree(p))
                self.peak_run_pss_kb = max(self.peak_run_pss_kb, run_pss)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def job_executor_config(step_concurrency: int, start_method: str) -> dict[str, Any]:
    """The executor config org_refresh_job's own runs get (its default run config: forkserver
    with the code location preloaded), with the step concurrency sized; ``spawn`` for Dagster's
    default instead."""
    import copy

    from aicolleague_pipelines.defs.jobs import ORG_REFRESH_RUN_CONFIG

    executor = copy.deepcopy(ORG_REFRESH_RUN_CONFIG["execution"]["config"])
    executor["multiprocess"]["max_concurrent"] = step_concurrency
    if start_method != "forkserver":
        executor["multiprocess"]["start_method"] = {start_method: {}}
    return executor


def run_concurrent_refresh(
    workdir: Path,
    orgs: list[SynthOrg],
    pg_url: str,
    *,
    max_concurrent_runs: int = 3,
    step_concurrency: int = 2,
    start_method: str = "forkserver",
    repeat: int = 2,
    timeout_s: float = 1800.0,
    only: list[str] | None = None,
    progress: Any = None,
) -> ScaleResult:
    """Refresh every org concurrently through the daemon's run queue on PostgreSQL storage and
    measure it. ``repeat``: the first orgs also get a second run, submitted right behind the
    first, which the per-partition limit must hold until the first finishes. ``only``: run
    just these assets of org_refresh_job and what they depend on (default: the whole job)."""
    say = progress or (lambda _msg: None)
    data_home = workdir / "data"
    home = write_dagster_home(workdir / "dagster_home", max_concurrent_runs)
    orgs_file = workdir / "orgs.yaml"
    orgs_file.unlink(missing_ok=True)
    services = Services(dagster_env(home, data_home, orgs_file, pg_url), workdir / "logs")
    deadline = time.monotonic() + timeout_s
    sampler = None
    executor = job_executor_config(step_concurrency, start_method)
    try:
        # The orgs file appears only once the orgs are partitions: org_registry_sensor never
        # sees an org it would register and request a run for (until then it skips: no file),
        # so the only runs are the ones submitted here.
        services.start_webserver()
        services.start_daemon()
        services.wait_until_loaded(deadline)
        services.add_partitions([o.name for o in orgs])
        orgs_file.write_text(yaml.safe_dump(
            {"orgs": [{"name": o.name, "source": "sfdx", "path": str(o.path)} for o in orgs]}, sort_keys=False))
        sampler = TreeSampler([p.pid for p in services.procs.values()])
        sampler.start()
        assets = services.upstream_closure(only) if only else None
        submitted: list[tuple[str, str, bool]] = []
        t0 = time.time()
        # A repeated org's second run goes right behind its first: the queue's per-partition
        # limit has to hold it back while other orgs' runs overtake it.
        order = [(o.name, again) for i, o in enumerate(orgs) for again in (False, True)[: 2 if i < repeat else 1]]
        for name, again in order:
            run_id = services.submit_org_refresh(name, executor, {"aicolleague/trigger": "bench-scale-orgs"},
                                                 assets=assets)
            submitted.append((run_id, name, again))
        say(f"submitted {len(submitted)} runs for {len(orgs)} orgs; the daemon dequeues them")
        rows = services.wait_for_runs(
            [s[0] for s in submitted], deadline,
            progress=lambda done, n: say(f"  {done}/{n} runs finished ({time.time() - t0:.0f} s)"))
    finally:
        services.stop()
        if sampler is not None:
            sampler.stop()

    by_id = {r["runId"]: r for r in rows}
    runs = []
    for run_id, name, again in submitted:
        r = by_id[run_id]
        runs.append({"run_id": run_id, "org": name, "repeat": again, "status": r["status"],
                     "start": r["startTime"], "end": r["endTime"],
                     "seconds": round((r["endTime"] or 0) - (r["startTime"] or 0), 1)})
    wall = max(r["end"] or t0 for r in runs) - t0
    problems, snapshots, store_orgs = verify_store(data_home, orgs, repeat)
    return ScaleResult(
        wall_s=round(wall, 1),
        runs=runs,
        peak_tree_rss_mb=round(sampler.peak_rss_kb / 1024, 1),
        peak_tree_pss_mb=round(sampler.peak_pss_kb / 1024, 1),
        peak_run_pss_mb=round(sampler.peak_run_pss_kb / 1024, 1),
        max_runs_at_once=max_overlap(runs),
        same_org_overlaps=same_org_overlaps(runs),
        store_problems=problems,
        store_orgs=store_orgs,
        snapshots=snapshots,
        lock_waits=lock_waits(home),
    )


def lock_waits(dagster_home: Path) -> list[float]:
    """The waits for the graph store's file lock that step processes logged (stderr compute
    logs of every run: ``graph store …: waited N s for other processes' locks``)."""
    pattern = re.compile(r"graph store .*: waited ([0-9.]+) s for other processes' locks")
    waits = []
    for log in (dagster_home / "storage").glob("*/compute_logs/*.err"):
        waits += [float(m.group(1)) for m in pattern.finditer(log.read_text(errors="replace"))]
    return sorted(waits)


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The most runs that were running at one instant (from their start/end times)."""
    events = sorted([(r["start"], 1) for r in runs if r["start"]] +
                    [(r["end"], -1) for r in runs if r["end"]], key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def same_org_overlaps(runs: list[dict[str, Any]]) -> list[str]:
    """Pairs of runs of one org whose [start, end] intervals intersect (should be none)."""
    out = []
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a["org"] == b["org"] and a["start"] and b["start"] and a["end"] and b["end"]:
                if a["start"] < b["end"] and b["start"] < a["end"]:
                    out.append(f"{a['org']}: {a['run_id']} and {b['run_id']} overlapped")
    return out


def verify_store(data_home: Path, orgs: list[SynthOrg], repeat: int) -> tuple[list[str], dict[str, int], int]:
    """Every org's current snapshot holds what the generator wrote (custom objects, custom
    fields, Apex classes), and repeated orgs have one snapshot per run."""
    from aicolleague_pipelines.lib.graph.store import GraphStoreError
    from aicolleague_pipelines.lib.graph.stores import open_store

    problems: list[str] = []
    snapshots: dict[str, int] = {}
    try:
        store = open_store(data_home, read_only=True, lock_timeout=30)
    except GraphStoreError as exc:
        return [f"graph store unreadable: {exc}"], snapshots, 0
    with store:
        present = set(store.orgs())
        for i, org in enumerate(orgs):
            if org.name not in present:
                problems.append(f"{org.name}: no snapshot in the graph store")
                continue
            snapshots[org.name] = len(store.snapshots(org.name))
            want_snaps = 2 if i < repeat else 1
            if snapshots[org.name] != want_snaps:
                problems.append(f"{org.name}: {snapshots[org.name]} snapshots, expected {want_snaps}")
            got = Counter(n.type for n in store.nodes(org.name) if not n.external)
            want = {"CustomObject": org.counts["objects"], "CustomField": org.counts["fields"],
                    "ApexClass": org.counts["classes"]}
            for typ, n in want.items():
                if got[typ] != n:
                    problems.append(f"{org.name}: {got[typ]} {typ} nodes, the generator wrote {n}")
    return problems, snapshots, len(present)


def report(res: ScaleResult, orgs: list[SynthOrg], max_runs: int, start_method: str) -> str:
    sizes = orgs[0].counts
    lines = [
        f"\n{len(orgs)} orgs ({sizes['classes']} Apex classes, {sizes['objects']} objects, "
        f"{sizes['fields']} fields each) — {len(res.runs)} runs of org_refresh_job, "
        f"at most {max_runs} at once, PostgreSQL storage, multiprocess executor ({start_method})",
        "-" * 90,
        f"{'wall time (first submit → last run finished)':<56} {res.wall_s:>9} s",
        f"{'runs succeeded':<56} {len(res.runs) - len(res.failed):>9} / {len(res.runs)}",
        f"{'most runs running at once (from start/end times)':<56} {res.max_runs_at_once:>9}",
        f"{'runs of one org overlapping':<56} {len(res.same_org_overlaps):>9}",
        f"{'peak memory, whole process tree (PSS)':<56} {res.peak_tree_pss_mb:>9} MB",
        f"{'peak memory, whole process tree (sum of RSS)':<56} {res.peak_tree_rss_mb:>9} MB",
        f"{'peak memory, one run incl. its step processes (PSS)':<56} {res.peak_run_pss_mb:>9} MB",
        f"{'graph store lock waits over 1 s (from the step logs)':<56} {len(res.lock_waits):>9}",
        f"{'  the longest':<56} {max(res.lock_waits, default=0.0):>9} s",
        f"{'orgs in the graph store':<56} {res.store_orgs:>9}",
        f"{'store checks (counts per org vs generator)':<56} "
        f"{'ok' if not res.store_problems else len(res.store_problems):>9}",
        "run seconds per org: " + ", ".join(f"{k} {v}" for k, v in res.to_dict()["run_seconds"].items()),
    ]
    lines += [f"  FAILED {f}" for f in res.to_dict()["failed"]]
    lines += [f"  OVERLAP {o}" for o in res.same_org_overlaps]
    lines += [f"  STORE {p}" for p in res.store_problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scale-orgs", description=__doc__.split("\n")[0])
    ap.add_argument("--orgs", type=int, default=12)
    ap.add_argument("--classes", type=int, default=300, help="Apex classes per org")
    ap.add_argument("--objects", type=int, default=60, help="custom objects per org")
    ap.add_argument("--fields", type=int, default=20, help="custom fields per object")
    ap.add_argument("--max-runs", type=int, default=3, help="max_concurrent_runs of the run queue")
    ap.add_argument("--step-concurrency", type=int, default=2, help="multiprocess max_concurrent per run")
    ap.add_argument("--start-method", choices=("forkserver", "spawn"), default="forkserver")
    ap.add_argument("--repeat", type=int, default=2, help="orgs that get a second run right behind the first")
    ap.add_argument("--pg", default=os.environ.get(PG_BASE_ENV, DEFAULT_PG_BASE),
                    help="PostgreSQL server URL without database (a fresh database is created)")
    ap.add_argument("--workdir", default=None, help="keep projects, logs and data here")
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scale-orgs-") as tmp:
        workdir = Path(a.workdir) if a.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"writing {a.orgs} synthetic SFDX orgs under {workdir} …", flush=True)
        orgs = write_orgs(workdir, a.orgs, a.classes, a.objects, a.fields)
        with FreshDatabase(a.pg, keep=a.keep_db) as pg_url:
            print(f"PostgreSQL database {pg_url.rsplit('/', 1)[1]}; starting webserver and daemon …",
                  flush=True)
            res = run_concurrent_refresh(
                workdir, orgs, pg_url, max_concurrent_runs=a.max_runs,
                step_concurrency=a.step_concurrency, start_method=a.start_method,
                repeat=min(a.repeat, a.orgs), timeout_s=a.timeout,
                progress=lambda m: print(m, flush=True))
        print(report(res, orgs, a.max_runs, a.start_method), flush=True)
        if a.json:
            print(json.dumps(res.to_dict()))
    ok = not (res.failed or res.same_org_overlaps or res.store_problems)
    print("\nALL OK" if ok else "\nPROBLEMS (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
