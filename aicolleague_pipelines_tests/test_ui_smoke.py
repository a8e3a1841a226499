"""The UI for real: `dagster dev` on workspace.yaml with PostgreSQL storage (the shared
``dagster_dev`` fixture, started once per session), checked through GraphQL, and a partitioned
run launched through the GraphQL client that must succeed."""

from __future__ import annotations

import pytest

from aicolleague_pipelines_tests.ui_fixtures import DEMO_ORG, DagsterDev

WORKSPACE_Q = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { ... on RepositoryLocation { repositories { name
    assetNodes { assetKey { path } } jobs { name }
    sensors { name sensorState { status } } schedules { name scheduleState { status } } } }
  ... on PythonError { message } } } } } }"""


@pytest.mark.postgres
def test_dagster_dev_serves_the_code_location_and_runs_a_partition(dagster_dev: DagsterDev) -> None:
    (entry,) = dagster_dev.gql(WORKSPACE_Q)["workspaceOrError"]["locationEntries"]
    assert entry["name"] == "aicolleague_pipelines" and entry["loadStatus"] == "LOADED"
    (repo,) = entry["locationOrLoadError"]["repositories"]
    assets = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
    assert {"sf_inventory", "org_graph", "triage_findings", "monitor_changes", "insight_report",
            "fix_plans", "documentation", "dependency_graph", "platforms/metabase/acme_metabase"} <= assets
    assert {"org_refresh_job", "combined_job", "platforms_job"} <= {j["name"] for j in repo["jobs"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["org_registry_sensor"] == "RUNNING" and sensors["org_change_sensor"] == "RUNNING"
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}["nightly_org_refresh"] == "RUNNING"

    # A partitioned run through the GraphQL client (DagsterGraphQLClient.submit_job_execution).
    run_id, status = dagster_dev.refresh(DEMO_ORG)
    assert status == "SUCCESS", dagster_dev.log_tail()

    # The run and its materializations are in PostgreSQL.
    import psycopg2

    with psycopg2.connect(dagster_dev.postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == "SUCCESS"
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                    "'ASSET_MATERIALIZATION' AND partition = %s", (run_id, DEMO_ORG))
        assert cur.fetchone()[0] >= 10
