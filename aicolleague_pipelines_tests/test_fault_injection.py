"""The fault-injection matrix: fault × outcome, through the fake servers and the real stores.

Every row injects one fault at the far end (fake Salesforce, fake Metabase, a proxy in front
of the Bolt server, the OS: a file-size limit or SIGKILL) and then checks, in
:mod:`aicolleague_pipelines_tests.fault_scenarios`, that the last good snapshot is intact and
queryable (version, counts, a where-used answer), that a rerun completes with a clean run's
counts and nothing half-written or duplicated, and — for runs through Dagster — that the error
names the org, the component and what to do.

| layer | fault | expected |
|---|---|---|
| Salesforce API | queryMore page 2: HTTP 500 / reset / truncated JSON / body cut, once | retried |
| Salesforce API | queryMore page 2: HTTP 503 on every attempt | failed cleanly |
| Salesforce API | REQUEST_LIMIT_EXCEEDED twice / on every attempt | retried / failed cleanly |
| Salesforce API | INVALID_SESSION_ID mid-run: client credentials / static token | retried / failed cleanly |
| Metadata retrieve | malformed XML in the zip / corrupt zip | failed cleanly (plan kept) |
| platform | 429 with Retry-After twice / on every attempt; truncated page once / every attempt | retried / failed cleanly |
| DuckDB | disk full mid-load; SIGKILL mid-load (bulk and pipeline paths) | failed cleanly |
| Neo4j | connection dropped mid-load / COMMIT answer lost | retried / failed cleanly |

Only in ``python -m bench fault-matrix`` (seconds each on the Bolt stand-in, or large): Neo4j
unreachable from mid-load on, Neo4j's COMMIT answer lost inside ``org_graph`` through Dagster,
DuckDB killed at random points of a load, and the DuckDB faults at 1M components / 5M edges.

Related single-fault tests elsewhere (not repeated here): the client's own retry/re-auth unit
tests (``test_salesforce_client.py``), iterators raising mid-load in both stores
(``test_graph_store_duckdb.py``, ``test_graph_store_neo4j.py``), platform clients' 429 and
truncated pages (``test_platform_*.py``). ``python -m bench fault-matrix`` runs these scenarios
at larger sizes and prints the table with recovery times.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aicolleague_pipelines_tests import fault_scenarios as fs
from aicolleague_pipelines_tests.fakes.bolt_server import bolt_server  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fs.LiveHarness]:
    h = fs.LiveHarness(tmp_path_factory.mktemp("faults"))
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def platforms(harness: fs.LiveHarness) -> Iterator[fs.PlatformHarness]:
    p = fs.PlatformHarness(harness)
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("name", list(fs.SALESFORCE_FAULTS))
def test_salesforce_api_fault(harness: fs.LiveHarness, name: str) -> None:
    fault, inject, expect, says, org = fs.SALESFORCE_FAULTS[name]
    outcome = fs.salesforce_fault(harness, fault, inject, org=org, expect=expect, says=says)
    assert outcome.result == expect


@pytest.mark.parametrize("kind", ["malformed_xml", "corrupt_zip"])
def test_metadata_retrieve_fault(harness: fs.LiveHarness, kind: str) -> None:
    outcome = fs.retrieve_fault(harness, kind)
    assert outcome.result == "failed cleanly" and "incomplete" in outcome.message


@pytest.mark.parametrize("kind", ["rate_limited", "rate_limited_persistent", "truncated_page", "truncated_page_persistent"])
def test_platform_fault(platforms: fs.PlatformHarness, kind: str) -> None:
    outcome = fs.platform_fault(platforms, kind)
    assert outcome.result == ("retried" if kind in ("rate_limited", "truncated_page") else "failed cleanly")


def test_duckdb_disk_full_mid_load(tmp_path: Path) -> None:
    outcome = fs.duckdb_disk_full(tmp_path, nodes=200_000, edges=1_000_000)
    assert "File too large" in outcome.message


@pytest.mark.parametrize(("api", "nodes", "edges"), [("arrays", 200_000, 1_000_000), ("snapshot", 20_000, 100_000)])
def test_duckdb_sigkill_mid_load(tmp_path: Path, api: str, nodes: int, edges: int) -> None:
    outcome = fs.duckdb_sigkill(tmp_path, nodes=nodes, edges=edges, api=api)
    assert outcome.result == "failed cleanly"


@pytest.mark.parametrize("kind", ["drop", "lost_commit"])
def test_neo4j_connection_fault(bolt_server, kind: str) -> None:  # noqa: F811
    outcome = fs.neo4j_fault(bolt_server, kind)
    assert outcome.result == ("retried" if kind == "drop" else "failed cleanly")
