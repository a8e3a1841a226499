"""Whole-job runs: every demo org, failures isolated per org, PostgreSQL instance storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.lib.orgs import demo_root, load_orgs
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines.lib.salesforce.model import OrgInventory
from aicolleague_pipelines.runner import run_all_orgs
from aicolleague_pipelines_tests.conftest import write_orgs_file

ROOT = Path(__file__).resolve().parents[1]
DEMO_ORGS = [o.name for o in load_orgs(demo_root() / "orgs.yaml")]


def _run_org(instance: dg.DagsterInstance, org: str) -> dg.ExecuteInProcessResult:
    job = load_defs().resolve_job_def("org_refresh_job")
    return job.execute_in_process(instance=instance, partition_key=org, raise_on_error=False)


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_every_demo_org_materializes_every_asset() -> None:
    assert len(DEMO_ORGS) >= 3
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, DEMO_ORGS)
        for org in DEMO_ORGS:
            result = _run_org(instance, org)
            assert result.success, org
            materialized = {
                e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
            }
            assert materialized == {"sf_inventory", "sf_dependencies", "sf_audit_trail", "org_graph",
                                    "triage_findings", "monitor_changes", "finding_tickets",
                                    "insight_report", "fix_plans", "documentation",
                                    "knowledge_base", "graph_answers", "governance_report",
                                    "sf_runtime_signals", "runtime_monitor"}
            assert _check_results(result) == {
                "inventory_not_empty": True,
                "no_duplicate_keys": True,
                "every_field_has_its_object": True,
                "no_dangling_edges": True,
                "no_case_duplicate_keys": True,
            }
            inventory = result.output_for_node("sf_inventory")
            assert isinstance(inventory, OrgInventory) and inventory.org == org
            counts = inventory.counts_by_type()
            for type_ in ("CustomObject", "CustomField", "ApexClass", "ApexTrigger", "Flow",
                          "ValidationRule", "Layout", "PermissionSet", "Report"):
                assert counts.get(type_, 0) > 0, f"{org}: no {type_}"
            assert not [f for f in inventory.findings if f.severity == "error"], org

        # The audit-trail cursor: a second run of an org fetches no old rows again.
        first = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("sf_audit_trail"), asset_partitions=[DEMO_ORGS[0]]),
            limit=1,
        ).records[0].asset_materialization
        assert first is not None and first.metadata["new_events"].value > 0
        again = _run_org(instance, DEMO_ORGS[0])
        assert again.success
        assert again.output_for_node("sf_audit_trail") == []


def test_a_failing_org_fails_alone_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on: "server down"
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    monkeypatch.setenv("DEAD_ORG_TOKEN", "00Dfake!SECRET-TOKEN-VALUE-123")
    orgs_file = write_orgs_file(
        tmp_path / "orgs.yaml",
        [
            {"name": "acme-prod", "source": "demo"},
            {"name": "gone", "source": "sfdx", "path": "no-such-project"},
            {
                "name": "down",
                "source": "live",
                "instance_url": f"https://127.0.0.1:{dead_port}",
                "auth": {"kind": "access_token", "access_token_env": "DEAD_ORG_TOKEN"},
                "retry": {"attempts": 2, "base_delay": 0.01},
            },
        ],
    )
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(orgs_file))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    results = {r.org: r for r in run_all_orgs()}
    assert results["acme-prod"].success
    assert not results["gone"].success
    assert "gone" in results["gone"].error and "does not exist" in results["gone"].error
    assert not results["down"].success
    assert "down" in results["down"].error
    for r in results.values():
        assert "SECRET-TOKEN-VALUE" not in r.error
        # Our error (org, component, what to do), not Dagster's "Error occurred while executing".
        assert "Error occurred while executing" not in r.error
    combined = results["(all orgs)"]
    assert combined.success  # the combined view still builds from the orgs that worked
    assert combined.materialized["dependency_graph"]["orgs"] == 1
    with dg.DagsterInstance.get() as instance:
        assert set(instance.get_dynamic_partitions(ORG_PARTITIONS_NAME)) == {"acme-prod", "gone", "down"}
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("dependency_graph"), "every_registered_org_has_a_snapshot")]
        )
        evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
        assert evaluation.passed is False
        assert evaluation.metadata["missing"].value == "down, gone"
        runs = instance.get_runs(dg.RunsFilter(job_name="org_refresh_job"))
        assert len(runs) == 3
        assert {r.tags["dagster/partition"]: r.status.value for r in runs} == {
            "acme-prod": "SUCCESS", "gone": "FAILURE", "down": "FAILURE"}


def test_cli_run_prints_what_was_produced(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AICOLLEAGUE_"))}
    env["DAGSTER_HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "aicolleague"), "run", "--org", DEMO_ORGS[0]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{DEMO_ORGS[0]}" in proc.stdout and " ok " in proc.stdout
    assert "sf_inventory" in proc.stdout and "make dev" in proc.stdout


@pytest.mark.postgres
def test_runs_on_a_postgres_backed_instance(postgres_url: str) -> None:
    import psycopg2

    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
    dagster_url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    overrides = {"storage": {"postgres": {"postgres_url": dagster_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, DEMO_ORGS[:2])
        materialized = 0
        for org in DEMO_ORGS[:2]:
            result = _run_org(instance, org)
            assert result.success
            materialized += len(result.get_asset_materialization_events())
        assert set(instance.get_dynamic_partitions(ORG_PARTITIONS_NAME)) == set(DEMO_ORGS[:2])
    # The runs and materializations are really in PostgreSQL, not in a SQLite side file.
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 2
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
        # every asset of both runs (test_every_demo_org_materializes_every_asset names them)
        assert cur.fetchone()[0] == materialized >= 24


def _all_text_under(root: Path) -> bytes:
    blobs = []
    for p in root.rglob("*"):
        if p.is_file():
            blobs.append(p.read_bytes())
    return b"\n".join(blobs)


def test_live_org_refreshes_through_dagster_and_leaks_no_secret(
    fake_salesforce_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_salesforce_env
    orgs_file = write_orgs_file(
        tmp_path / "orgs.yaml",
        [
            {
                "name": "live-fake",
                "source": "live",
                "instance_url": fake.instance_url,
                "api_version": fake.version,
                "ca_bundle": fake.ca_path,
                "auth": {"kind": "client_credentials", **fake.auth_env_keys("client_credentials")},
            }
        ],
    )
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(orgs_file))
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["live-fake"])
        result = _run_org(instance, "live-fake")
        assert result.success
        inventory = result.output_for_node("sf_inventory")
        assert inventory.source_kind == "live" and len(inventory.components) > 40
        rows = result.output_for_node("sf_dependencies")
        assert len(rows) > 0 and all(":" in r.source_key and ":" in r.target_key for r in rows)
        assert len(result.output_for_node("sf_audit_trail")) > 0
        mats = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert mats["sf_inventory"]["api_calls"].value > 10
        assert "/5000" in mats["sf_inventory"]["api_usage"].value

        # No secret anywhere: event log, metadata, stored outputs, the graph store.
        secrets = [s for s in fake.secrets() if len(s) >= 8]
        assert secrets
        log_text = "\n".join(
            str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)
        )
        assert "sf_inventory" in log_text
        stored = _all_text_under(tmp_path)
        for secret in secrets:
            assert secret not in log_text
            assert secret.encode() not in stored
