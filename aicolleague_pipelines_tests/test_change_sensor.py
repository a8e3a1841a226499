"""The Monitor's change sensor: runs only for orgs that changed, noise ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.defs.agents.sensors import org_change_sensor
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines.resources import OrgsResource
from aicolleague_pipelines_tests.conftest import write_orgs_file


def _tick(instance, orgs_file: Path, cursor: str | None):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"orgs": OrgsResource(orgs_file=str(orgs_file))}) as ctx:
        result = org_change_sensor(ctx)
    return result


def test_source_project_change_requests_one_run_for_that_org(tmp_path: Path) -> None:
    for name in ("a", "b"):
        shutil.copytree(demo_root() / "orgs" / "globex-prod", tmp_path / name)
    f = write_orgs_file(tmp_path / "orgs.yaml", [{"name": n, "source": "sfdx", "path": n} for n in "ab"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["a", "b"])
        first = _tick(instance, f, None)
        assert not first.run_requests and set(json.loads(first.cursor)) == {"a", "b"}
        again = _tick(instance, f, first.cursor)
        assert not again.run_requests and again.cursor == first.cursor
        cls = next((tmp_path / "b").rglob("*.cls"))
        cls.write_text(cls.read_text() + "\n// edited\n")
        changed = _tick(instance, f, again.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["b"]
        assert changed.run_requests[0].tags["aicolleague/trigger"] == "change-detected"
        assert _tick(instance, f, changed.cursor).run_requests == []


def test_live_org_audit_trail_change_and_noise(fake_salesforce_env, tmp_path: Path) -> None:
    fake = fake_salesforce_env
    f = write_orgs_file(tmp_path / "orgs.yaml", [{
        "name": "live", "source": "live", "instance_url": fake.instance_url, "api_version": fake.version,
        "ca_bundle": fake.ca_path, "retry": {"attempts": 2, "base_delay": 0.01},
        "auth": {"kind": "client_credentials", **fake.auth_env_keys("client_credentials")},
    }])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["live"])
        first = _tick(instance, f, None)
        assert not first.run_requests
        before = len(fake.api_requests())
        quiet = _tick(instance, f, first.cursor)
        assert not quiet.run_requests
        assert len(fake.api_requests()) - before == 1  # one query per tick: cheap
        fake.org.add("SetupAuditTrail", Id="0Ym000000000099AAA", Action="suOrgAdminLogin", Section="Manage Users",
                     Display="Logged in using Login-As access for user x", CreatedDate="2030-01-01T00:00:00.000+0000",
                     CreatedById=None, CreatedBy=None, CreatedByContext=None, CreatedByIssuer=None,
                     DelegateUser=None, ResponsibleNamespacePrefix=None)
        noise = _tick(instance, f, quiet.cursor)
        assert not noise.run_requests  # login-as is noise
        fake.org.add("SetupAuditTrail", Id="0Ym000000000100AAA", Action="changedApexClass", Section="Apex Class",
                     Display="Changed Class code: InvoiceService", CreatedDate="2030-01-02T00:00:00.000+0000",
                     CreatedById=None, CreatedBy=None, CreatedByContext=None, CreatedByIssuer=None,
                     DelegateUser=None, ResponsibleNamespacePrefix=None)
        real = _tick(instance, f, noise.cursor)
        assert [r.partition_key for r in real.run_requests] == ["live"]
        assert "InvoiceService" in real.run_requests[0].tags["aicolleague/change"]


def test_real_tick_through_the_code_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(demo_root() / "orgs" / "globex-prod", tmp_path / "g")
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(
        tmp_path / "orgs.yaml", [{"name": "g", "source": "sfdx", "path": "g"}])))
    defs = load_defs()
    sensor = defs.get_sensor_def("org_change_sensor")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["g"])

        def tick(cursor):
            with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                         sensor_name="org_change_sensor", cursor=cursor,
                                         resources=defs.resources) as ctx:
                return sensor.evaluate_tick(ctx)

        first = tick(None)
        assert not first.run_requests
        (tmp_path / "g" / "force-app" / "main" / "default" / "new.txt").write_text("x")
        second = tick(first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["g"]


def test_noise_allow_list_is_configurable(
    fake_salesforce_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_salesforce_env
    (tmp_path / "alerts.yaml").write_text("monitor:\n  ignore_sections: [Apex Class]\n")
    monkeypatch.setenv("AICOLLEAGUE_ALERTS_FILE", str(tmp_path / "alerts.yaml"))
    f = write_orgs_file(tmp_path / "orgs.yaml", [{
        "name": "live", "source": "live", "instance_url": fake.instance_url, "api_version": fake.version,
        "ca_bundle": fake.ca_path, "retry": {"attempts": 2, "base_delay": 0.01},
        "auth": {"kind": "client_credentials", **fake.auth_env_keys("client_credentials")},
    }])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["live"])
        first = _tick(instance, f, None)
        fake.org.add("SetupAuditTrail", Id="0Ym000000000101AAA", Action="changedApexClass", Section="Apex Class",
                     Display="Changed Class code: X", CreatedDate="2030-01-03T00:00:00.000+0000",
                     CreatedById=None, CreatedBy=None, CreatedByContext=None, CreatedByIssuer=None,
                     DelegateUser=None, ResponsibleNamespacePrefix=None)
        assert not _tick(instance, f, first.cursor).run_requests  # that section is ignored here
