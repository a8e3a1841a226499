"""The code location loads; the registry sensor and the nightly schedule behave."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.defs.salesforce.schedules import nightly_org_refresh
from aicolleague_pipelines.defs.salesforce.sensors import org_registry_sensor
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME, diff_orgs
from aicolleague_pipelines.resources import OrgsResource
from aicolleague_pipelines_tests.conftest import write_orgs_file

ROOT = Path(__file__).resolve().parents[1]


def _orgs_file(tmp_path: Path, names: list[str]) -> Path:
    for n in names:
        (tmp_path / n).mkdir(exist_ok=True)
    return write_orgs_file(
        tmp_path / "orgs.yaml", [{"name": n, "source": "sfdx", "path": n} for n in names]
    )


def test_definitions_load_with_every_object() -> None:
    defs = load_defs()
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"sf_inventory", "sf_dependencies", "sf_audit_trail"} <= keys
    assert repo.has_job("org_refresh_job")
    assert {s.name for s in repo.sensor_defs} >= {"org_registry_sensor"}
    assert {s.name for s in repo.schedule_defs} >= {"nightly_org_refresh"}
    # Sensors and schedules run by default (a fresh instance needs no clicks).
    assert org_registry_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert nightly_org_refresh.default_status == dg.DefaultScheduleStatus.RUNNING


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": str(Path(sys.executable).parent), "DAGSTER_HOME": str(home), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_diff_orgs_reports_added_and_removed() -> None:
    d = diff_orgs(["a", "b", "c"], ["b", "z"])
    assert d.added == ("a", "c") and d.removed == ("z",)
    assert "history kept" in d.summary()
    assert not diff_orgs(["a"], ["a"]).changed


def test_registry_sensor_adds_new_orgs_and_requests_their_first_run(tmp_path: Path) -> None:
    f = _orgs_file(tmp_path, ["acme", "globex"])
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"orgs": OrgsResource(orgs_file=str(f))})
        result = org_registry_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        assert [r.partition_key for r in result.run_requests] == ["acme", "globex"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["acme", "globex"]
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme", "globex"])

        # Nothing new: no runs. One org removed from the file: reported, partition kept.
        _orgs_file(tmp_path, ["acme"])
        ctx = dg.build_sensor_context(instance=instance, resources={"orgs": OrgsResource(orgs_file=str(f))})
        result = org_registry_sensor(ctx)
        assert not result.run_requests
        assert "globex" in (result.skip_reason.skip_message or "")
        assert set(instance.get_dynamic_partitions(ORG_PARTITIONS_NAME)) == {"acme", "globex"}


def test_registry_sensor_skips_with_reason_on_a_broken_orgs_file(tmp_path: Path) -> None:
    f = tmp_path / "orgs.yaml"
    f.write_text("orgs: [ {name: 'bad name', source: demo} ]")
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"orgs": OrgsResource(orgs_file=str(f))})
        result = org_registry_sensor(ctx)
        assert isinstance(result, dg.SkipReason)
        assert "invalid" in (result.skip_message or "")


def test_registry_sensor_real_tick_registers_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the sensor daemon's own evaluation path (evaluate_tick on an instance ref)."""
    f = _orgs_file(tmp_path, ["one", "two"])
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(f))
    defs = load_defs()
    sensor = defs.get_sensor_def("org_registry_sensor")
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(
            instance_ref=instance.get_ref(),
            definitions=defs,
            sensor_name="org_registry_sensor",
            resources=defs.resources,
        ) as ctx:
            data = sensor.evaluate_tick(ctx)
        assert [r.partition_key for r in data.run_requests] == ["one", "two"]
        for req in data.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        assert set(instance.get_dynamic_partitions(ORG_PARTITIONS_NAME)) == {"one", "two"}
        for req in data.run_requests:
            assert req.tags["aicolleague/trigger"] == "org-registered"


def test_nightly_schedule_requests_one_run_per_registered_org() -> None:
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
            assert isinstance(nightly_org_refresh(ctx), dg.SkipReason)
            instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["a", "b"])
            requests = nightly_org_refresh(ctx)
        assert [r.partition_key for r in requests] == ["a", "b"]
        assert requests[0].run_key == "nightly-2026-11-25-a"
