"""The UI for real: `dagster dev` on workspace.yaml with PostgreSQL storage, checked through
GraphQL, and a partitioned run launched through the GraphQL client that must succeed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(port: int, query: str, variables: dict | None = None) -> dict:
    r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}},
                      timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


WORKSPACE_Q = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { ... on RepositoryLocation { repositories { name
    assetNodes { assetKey { path } } jobs { name }
    sensors { name sensorState { status } } schedules { name scheduleState { status } } } }
  ... on PythonError { message } } } } } }"""


@pytest.mark.postgres
def test_dagster_dev_serves_the_code_location_and_runs_a_partition(postgres_url: str, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    settings = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    settings["storage"] = {"postgres": {"postgres_url": postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "NEO4J_", "GEMINI_"))}
    env.update(DAGSTER_HOME=str(home), AICOLLEAGUE_HOME=str(tmp_path / "data"),
               AICOLLEAGUE_MONITOR_INTERVAL="3600")
    bin_dir = Path(sys.executable).parent
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not come up"
            time.sleep(1)
        while True:  # the code location loads in its own process
            (entry,) = _gql(port, WORKSPACE_Q)["workspaceOrError"]["locationEntries"]
            if entry["loadStatus"] == "LOADED":
                break
            assert time.monotonic() < deadline, entry
            time.sleep(1)
        assert entry["name"] == "aicolleague_pipelines"
        (repo,) = entry["locationOrLoadError"]["repositories"]
        assets = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {"sf_inventory", "org_graph", "triage_findings", "monitor_changes", "insight_report",
                "fix_plans", "documentation", "dependency_graph", "platforms/metabase/acme_metabase"} <= assets
        assert {"org_refresh_job", "combined_job", "platforms_job"} <= {j["name"] for j in repo["jobs"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["org_registry_sensor"] == "RUNNING" and sensors["org_change_sensor"] == "RUNNING"
        assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}["nightly_org_refresh"] == "RUNNING"

        from dagster import DagsterRunStatus
        from dagster_graphql import DagsterGraphQLClient

        _gql(port, """mutation($sel: RepositorySelector!, $key: String!) {
          addDynamicPartition(repositorySelector: $sel, partitionsDefName: "salesforce_orgs", partitionKey: $key) {
            __typename } }""",
             {"sel": {"repositoryLocationName": "aicolleague_pipelines", "repositoryName": repo["name"]},
              "key": "globex-prod"})
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        # In-process execution keeps the test quick (the default forks a process per step).
        run_id = client.submit_job_execution(
            "org_refresh_job", tags={"dagster/partition": "globex-prod"},
            run_config={"execution": {"config": {"in_process": {}}}})
        while True:
            status = client.get_run_status(run_id)
            if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                break
            assert time.monotonic() < deadline + 240, f"run still {status}"
            time.sleep(2)
        assert status == DagsterRunStatus.SUCCESS, (tmp_path / "dev.log").read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    # The run and its materializations are in PostgreSQL.
    import psycopg2

    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == "SUCCESS"
