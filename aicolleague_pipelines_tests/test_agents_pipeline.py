"""Triage and Monitor through Dagster: findings on the demo, SARIF on disk, and a breaking
change detected after a field that code still uses is deleted from the project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines_tests.conftest import write_orgs_file


def _mats(result) -> dict:
    return {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


def test_monitor_reports_a_breaking_change_and_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "acme"
    shutil.copytree(demo_root() / "orgs" / "acme-prod", project)
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(
        tmp_path / "orgs.yaml", [{"name": "acme", "source": "sfdx", "path": "acme"}])))
    alerts_file = tmp_path / "alerts.jsonl"
    (tmp_path / "alerts.yaml").write_text(
        f"sinks:\n  - {{type: file, name: ops, path: {alerts_file}, min_severity: high}}\n")
    monkeypatch.setenv("AICOLLEAGUE_ALERTS_FILE", str(tmp_path / "alerts.yaml"))
    job = load_defs().resolve_job_def("org_refresh_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme"])
        first = job.execute_in_process(instance=instance, partition_key="acme")
        assert first.success
        assert _mats(first)["monitor_changes"]["baseline"].value is True
        triage = first.output_for_node("triage_findings")
        assert {f.rule_id for f in triage} >= {"APEX-SOQL-IN-LOOP", "SEC-MODIFY-ALL-DATA"}
        assert triage == sorted(triage, key=lambda f: -f.risk)

        # Delete a field that Apex still reads, change a class, then refresh again.
        field = next(project.rglob("Invoice__c/fields/Amount__c.field-meta.xml"))
        field.unlink()
        cls = next(project.rglob("classes/InvoicePrintController.cls"))
        cls.write_text(cls.read_text() + "\n// touched\n")
        second = job.execute_in_process(instance=instance, partition_key="acme")
        assert second.success
        meta = _mats(second)["monitor_changes"]
        assert meta["baseline"].value is False
        assert meta["removed"].value >= 1 and meta["modified"].value >= 1
        assert meta["breaking_changes"].value >= 1
        out = second.output_for_node("monitor_changes")
        breaking = {b["key"]: b for b in out["changes"]["breaking"]}
        assert "CustomField:Invoice__c.Amount__c" in breaking
        assert "ApexClass:InvoiceService" in breaking["CustomField:Invoice__c.Amount__c"]["referenced_by"]
        sent = [json.loads(line) for line in alerts_file.read_text().splitlines()]
        assert any("Invoice__c.Amount__c" in a["title"] for a in sent)
        assert all(a["severity"] in ("high", "critical") for a in sent)  # routing by severity


def test_triage_writes_sarif_and_csv_for_each_org(tmp_path: Path) -> None:
    import os

    job = load_defs().resolve_job_def("org_refresh_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["globex-prod"])
        result = job.execute_in_process(instance=instance, partition_key="globex-prod")
        assert result.success
        meta = _mats(result)["triage_findings"]
        assert meta["rules_run"].value >= 40 and meta["rules_failed"].value == 0
        assert meta["findings"].value > 10
    reports = Path(os.environ["AICOLLEAGUE_HOME"]) / "reports" / "globex-prod"
    sarif = json.loads((reports / "triage.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert (reports / "triage.csv").read_text().startswith("id,org,rule_id")


def test_high_risk_findings_become_jira_tickets_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aicolleague_pipelines_tests.fakes.ticketing import FakeTicketing

    with FakeTicketing(jira_token="JIRA-SECRET-TOKEN-42") as jira:
        monkeypatch.setenv("T_JIRA_EMAIL", "bot@example.test")
        monkeypatch.setenv("T_JIRA_TOKEN", "JIRA-SECRET-TOKEN-42")
        (tmp_path / "alerts.yaml").write_text(
            "tickets:\n"
            "  sink: jira\n  min_severity: high\n  min_risk: 40\n  max_per_run: 50\n"
            f"  jira: {{base_url: '{jira.base_url}', project_key: AIC, email_env: T_JIRA_EMAIL,"
            " api_token_env: T_JIRA_TOKEN}\n")
        monkeypatch.setenv("AICOLLEAGUE_ALERTS_FILE", str(tmp_path / "alerts.yaml"))
        job = load_defs().resolve_job_def("org_refresh_job")
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["globex-prod"])
            first = job.execute_in_process(instance=instance, partition_key="globex-prod")
            assert first.success
            created = _mats(first)["finding_tickets"]["created"].value
            assert created >= 1 and len(jira.jira_issues) == created
            high = [f for f in first.output_for_node("triage_findings")
                    if f.severity in ("high", "critical") and f.risk >= 40]
            assert created == len(high)
            labels = {lab for i in jira.jira_issues for lab in i["fields"]["labels"]}
            assert {f"finding-{f.id}" for f in high} <= labels
            second = job.execute_in_process(instance=instance, partition_key="globex-prod")
            assert _mats(second)["finding_tickets"]["created"].value == 0
            assert len(jira.jira_issues) == created  # no duplicate tickets
            logs = "\n".join(str(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id))
            assert "JIRA-SECRET-TOKEN-42" not in logs


def test_insight_per_org_and_across_orgs(tmp_path: Path) -> None:
    import os
    from datetime import datetime, timezone

    from aicolleague_pipelines.defs.agents.insight import weekly_insight

    defs = load_defs()
    job = defs.resolve_job_def("org_refresh_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme-prod", "acme-uat"])
        for org in ("acme-prod", "acme-uat"):
            result = job.execute_in_process(instance=instance, partition_key=org)
            assert result.success
            meta = _mats(result)["insight_report"]
            assert 0 <= meta["health_score"].value <= 100
            assert "data:image/png;base64," in meta["report"].value  # trend/breakdown plots
        combined = defs.resolve_job_def("combined_job").execute_in_process(instance=instance)
        assert combined.success
        overview = _mats(combined)["insight_overview"]
        assert set(overview["health"].value) == {"acme-prod", "acme-uat"}
        # The planted sandbox drift is in the cross-org report.
        assert "Churn_Risk__c" in overview["report"].value
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 23, 6, tzinfo=timezone.utc)
        ) as ctx:
            requests = weekly_insight(ctx)
        assert sorted(r.partition_key for r in requests) == ["acme-prod", "acme-uat"]
    history = json.loads((Path(os.environ["AICOLLEAGUE_HOME"]) / "reports" / "acme-prod"
                          / "insight_history.json").read_text())
    assert len(history) == 1 and "health" in history[0]


def test_monitor_alerts_on_an_anomalous_jump_at_the_newest_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight quiet refreshes, then the project suddenly gains 40 fields: an anomaly alert."""
    project = tmp_path / "g"
    shutil.copytree(demo_root() / "orgs" / "globex-prod", project)
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(
        tmp_path / "orgs.yaml", [{"name": "g", "source": "sfdx", "path": "g"}])))
    # The Monitor and what it reads (graph snapshots, audit trail): the other agents do not feed
    # its snapshot metrics, and nine full refreshes would triple the test's time.
    job = load_defs().resolve_job_def("org_refresh_job").get_subset(asset_selection={
        dg.AssetKey(k) for k in ("sf_inventory", "sf_dependencies", "sf_audit_trail", "org_graph", "monitor_changes")})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["g"])
        for _ in range(8):
            assert job.execute_in_process(instance=instance, partition_key="g").success
        fields = next(project.rglob("objects/Account/fields"))
        template = next(fields.glob("*.field-meta.xml")).read_text()
        for i in range(40):
            name = f"Bulk_{i}__c"
            (fields / f"{name}.field-meta.xml").write_text(
                template.replace(template.split("<fullName>")[1].split("</fullName>")[0], name))
        result = job.execute_in_process(instance=instance, partition_key="g")
        assert result.success
        out = result.output_for_node("monitor_changes")
        metrics = {a["metric"] for a in out["anomalies"]}
        assert "type:CustomField" in metrics or "nodes" in metrics, metrics
        assert any(a["title"].startswith("g: ") and "spike" in a["title"] for a in out["alerts"])
        assert len(out["changes"]["added"]) >= 40


def test_fix_plan_from_run_config_waits_for_approval(tmp_path: Path) -> None:
    import os

    from aicolleague_pipelines.defs.agents.fix import approvals_sensor, ledger_for
    from aicolleague_pipelines.resources import DataHomeResource, GraphStoreResource

    defs = load_defs()
    job = defs.resolve_job_def("org_refresh_job")
    run_config = {"ops": {"fix_plans": {"config": {"changes": [
        {"action": "delete", "key": "CustomField:Invoice__c.Amount__c", "reason": "replaced by Net_Amount__c"}]}}}}
    home = Path(os.environ["AICOLLEAGUE_HOME"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme-prod"])
        result = job.execute_in_process(instance=instance, partition_key="acme-prod", run_config=run_config)
        assert result.success
        (plan,) = result.output_for_node("fix_plans")
        assert plan["state"] == "pending"
        folder = Path(plan["folder"])
        destructive = (folder / "destructive" / "destructiveChanges.xml").read_text()
        assert "<members>Invoice__c.Amount__c</members>" in destructive
        assert (folder / "package.xml").is_file() and (folder / "rollback" / "package.xml").is_file()
        assert any(p.name == "Amount__c.field-meta.xml" for p in (folder / "rollback").rglob("*"))

        (home / "approvals.yaml").write_text(
            f"approvals:\n  - {{plan: {plan['id']}, decision: approved, by: dana, reason: reviewed in CAB}}\n")
        store_res = GraphStoreResource(data_home=DataHomeResource())
        with dg.build_sensor_context(instance=instance, resources={"graph_store": store_res}) as ctx:
            tick = approvals_sensor(ctx)
        assert "1 decision(s) recorded" in (tick.skip_reason.skip_message or "")
        ledger = ledger_for(home)
        assert ledger.state(plan["id"]) == "approved"
        (decision,) = [d for d in ledger.decisions() if d.plan == plan["id"] and d.decision == "approved"]
        assert decision.by == "dana" and decision.reason == "reviewed in CAB" and decision.at
        again = job.execute_in_process(instance=instance, partition_key="acme-prod", run_config=run_config)
        assert again.output_for_node("fix_plans")[0]["state"] == "approved"


def test_answers_and_docs_use_gemini_when_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from aicolleague_pipelines_tests.fakes.gemini import FakeGemini

    defs = load_defs()
    job = defs.resolve_job_def("org_refresh_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme-prod"])
        offline = job.execute_in_process(instance=instance, partition_key="acme-prod")
        answers = offline.output_for_node("graph_answers")
        assert len(answers) == 10 and {a["source"] for a in answers} == {"offline"}
        flows = next(a for a in answers if a["question"] == "which flows write Account.Industry?")
        assert "Flow:New_Client_Intake" in flows["cited_keys"]
        assert _mats(offline)["documentation"]["writer"].value == "OfflineWriter"
        assert _mats(offline)["insight_report"]["summary_writer"].value == "offline"

        with FakeGemini(api_key="FAKE-GEMINI-KEY-123") as fake:
            monkeypatch.setenv("GEMINI_API_KEY", "FAKE-GEMINI-KEY-123")
            monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
            online = job.execute_in_process(instance=instance, partition_key="acme-prod")
            assert online.success
            got = online.output_for_node("graph_answers")
            assert "gemini" in {a["source"] for a in got}
            assert _mats(online)["documentation"]["writer"].value == "GeminiWriter"
            # Insight summaries, finding explanations and plan narratives take the LLM path too.
            assert _mats(online)["insight_report"]["summary_writer"].value in ("gemini", "cache")
            assert ", gemini):" in _mats(online)["triage_findings"]["top_risks_explained"].value
            plans = online.output_for_node("fix_plans")
            assert plans and {p["explanation_source"] for p in plans} <= {"gemini", "cache"}
            assert len(fake.requests) > 0
            logs = "\n".join(str(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id))
            assert "FAKE-GEMINI-KEY-123" not in logs


def test_ask_job_answers_questions_from_run_config() -> None:
    defs = load_defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["globex-prod"])
        assert defs.resolve_job_def("org_refresh_job").execute_in_process(
            instance=instance, partition_key="globex-prod").success
        result = defs.resolve_job_def("ask_job").execute_in_process(
            instance=instance, partition_key="globex-prod",
            run_config={"ops": {"graph_answers": {"config": {"questions": [
                "where is Account.Industry used?", "what is the meaning of life?"]}}}})
        assert result.success
        first, second = result.output_for_node("graph_answers")
        assert first["method"] == "where_used" and first["cited_keys"]
        assert second["method"] == "help"  # offline: says which questions it can answer


def test_live_org_fix_plan_retrieves_its_rollback_bundle(
    fake_salesforce_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_salesforce_env
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(tmp_path / "orgs.yaml", [{
        "name": "live", "source": "live", "instance_url": fake.instance_url, "api_version": fake.version,
        "ca_bundle": fake.ca_path, "retry": {"attempts": 2, "base_delay": 0.01},
        "auth": {"kind": "client_credentials", **fake.auth_env_keys("client_credentials")},
    }])))
    job = load_defs().resolve_job_def("org_refresh_job")
    # Invoice__c.Account__c: used by Apex and layouts (the fake cannot build report files).
    run_config = {"ops": {"fix_plans": {"config": {"changes": [
        {"action": "delete", "key": "CustomField:Invoice__c.Account__c"}]}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["live"])
        result = job.execute_in_process(instance=instance, partition_key="live", run_config=run_config)
        assert result.success
        (plan,) = result.output_for_node("fix_plans")
        assert plan["rollback_complete"] is True, "\n".join(plan.get("notes") or [])
        rollback = Path(plan["folder"]) / "rollback"
        assert (rollback / "package.xml").is_file()
        assert any(p.name == "InvoiceService.cls" for p in rollback.rglob("*"))
        assert any("/services/Soap/m/" in r.path for r in fake.requests)
