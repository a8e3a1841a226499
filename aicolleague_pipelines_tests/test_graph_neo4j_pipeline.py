"""With NEO4J_URI set, the pipeline and the CLI use the Neo4j backend (here: a Bolt server on
loopback), and nothing lands in the embedded file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines_tests.fakes.bolt_server import bolt_server  # noqa: F401 (fixture)


@pytest.fixture
def neo4j_env(bolt_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: F811
    user, password = bolt_server.auth
    env = {
        "NEO4J_URI": bolt_server.uri,
        "NEO4J_USER": user,
        "NEO4J_PASSWORD": password,
        "NEO4J_DATABASE": bolt_server.database,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_org_refresh_writes_the_graph_to_neo4j(neo4j_env: dict[str, str], tmp_path: Path) -> None:
    defs = load_defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["globex-prod"])
        result = defs.resolve_job_def("org_refresh_job").execute_in_process(
            instance=instance, partition_key="globex-prod", raise_on_error=False
        )
        assert result.success
        graph = result.output_for_node("org_graph")
        mat = next(
            e.materialization for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "org_graph"
        )
        assert mat.metadata["store"].value == "neo4j"
        combined = defs.resolve_job_def("combined_job").execute_in_process(instance=instance)
        assert combined.success

    with Neo4jGraphStore.from_env() as store:
        assert "globex-prod" in store.orgs()
        info = store.snapshots("globex-prod")[-1]
        assert (info.node_count, info.edge_count) == (len(graph.nodes), len(graph.edges))
        uses = store.where_used("globex-prod", "CustomField:Account.Industry")
        assert uses and all(e.target == "CustomField:Account.Industry" for e in uses)
    # The embedded store was not used.
    assert not (Path(os.environ["AICOLLEAGUE_HOME"]) / "graph.duckdb").exists()

    env = dict(os.environ)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "aicolleague"), "impact", "--org", "globex-prod",
         "CustomObject:Account", "--depth", "1"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "component(s)" in proc.stdout
    assert neo4j_env["NEO4J_PASSWORD"] not in proc.stdout + proc.stderr
