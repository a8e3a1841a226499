"""Several orgs refreshed at once the production way, small: the benchmark's code path
(``bench/bench_scale_orgs.py``) with three tiny synthetic SFDX orgs — the project's
dagster.yaml on a fresh PostgreSQL database, ``dagster-webserver`` + ``dagster-daemon``, runs
submitted through the GraphQL client and dequeued by the daemon (two at once), each on the
multiprocess executor, every step process opening the one embedded DuckDB graph store.

One org gets a second run submitted right behind its first: the per-org limit of the run queue
(``dagster/partition``, limit 1) must keep the two apart while the other orgs overtake it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_scale_orgs import run_concurrent_refresh, write_orgs

pytestmark = pytest.mark.postgres


def test_three_orgs_refresh_concurrently_with_one_run_per_org_at_a_time(postgres_url: str, tmp_path: Path) -> None:
    orgs = write_orgs(tmp_path / "orgs", 3, classes=12, objects=4, fields_per_object=5)
    # The graph load (the store's one writer) and agents reading the store after it, with
    # everything upstream: 8 of the job's steps, so the test stays quick.
    res = run_concurrent_refresh(tmp_path, orgs, postgres_url, max_concurrent_runs=2,
                                 step_concurrency=2, repeat=1, timeout_s=240,
                                 only=["insight_report", "monitor_changes"])
    assert not res.failed, (res.failed, res.to_dict())
    assert len(res.runs) == 4
    # Two orgs' runs really overlapped; the queue never ran more than allowed.
    assert res.max_runs_at_once == 2, res.to_dict()
    # The repeated org's runs did not, and the second one was held, not dropped.
    assert res.same_org_overlaps == []
    first, again = [r for r in res.runs if r["org"] == orgs[0].name]
    assert again["start"] >= first["end"]
    # Every org is in the graph store with what the generator wrote; the repeated org has two
    # snapshots (one per run), the others one.
    assert res.store_problems == []
    assert res.store_orgs == 3
    assert res.snapshots == {orgs[0].name: 2, orgs[1].name: 1, orgs[2].name: 1}
    assert res.peak_tree_pss_mb > 0 and res.peak_run_pss_mb > 0


def test_org_refreshes_fork_their_steps_from_a_server_that_loaded_the_code_location() -> None:
    """What schedules, sensors and the launchpad use for a partition of org_refresh_job: the
    multiprocess executor on forkserver, preloading every module of the code location — each
    of them importable, since a wrong name would fail every run."""
    import importlib

    from aicolleague_pipelines.definitions import defs

    job = defs().resolve_job_def("org_refresh_job")
    executor = job.get_run_config_for_partition_key("acme-prod")["execution"]["config"]["multiprocess"]
    modules = executor["start_method"]["forkserver"]["preload_modules"]
    assert {"aicolleague_pipelines.definitions", "aicolleague_pipelines.defs.jobs",
            "aicolleague_pipelines.defs.graph.assets", "aicolleague_pipelines.defs.agents.triage"} <= set(modules)
    for name in modules:
        importlib.import_module(name)
