"""Runtime signals: incremental extraction through the fake Salesforce (cursors, API calls,
missing licences), the recorded demo path, error → change correlation, scrubbing of personal
data, the Dagster wiring (asset, Triage, Monitor alerts, Insight, sensor) and the anomaly
baselines on generated series."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.lib.agents.model import RuleContext
from aicolleague_pipelines.lib.agents.runtime import (
    RUNTIME_RULES,
    RuntimeContext,
    apply_runtime_risk,
    component_changes,
    probable_cause,
    runtime_anomalies,
    signals_interval,
)
from aicolleague_pipelines.lib.graph.build import OrgGraph, build_org_graph
from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.extract import read_recorded_audit_trail
from aicolleague_pipelines.lib.salesforce.live import fetch_audit_trail
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
from aicolleague_pipelines.lib.salesforce.signals import (
    LiveSource,
    RecordedSource,
    read_signals,
    scrub_message,
)
from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore
from aicolleague_pipelines_tests.fakes.salesforce import (
    FakeSalesforce,
    add_log_file,
    add_runtime_objects,
    demo_org,
    runtime_from_recording,
    sf_id,
)

DEMO = demo_root() / "orgs"
#: Personal details and record data planted in the demo recordings' log lines and error messages
#: (and the fake's): none may reach an asset, its metadata, the data home or an alert.
PLANTED = ("Sofia Alvarez", "Liam Novak", "Mei Tanaka", "Carlos Mendes", "Jane Cooper", "Northwind",
           "sofia.alvarez@", "liam.novak@", "mei.tanaka@", "jane.cooper", "billing.test@", "+1 415 555",
           "203.0.113.", "198.51.100.", "0055e000005SoFa", "0054x000002MeTa", "0054x000003CaMe", "0065e00000Gh",
           "a0B4x00000Rk", "0014x00000K9", "00O5e000000AbCd", "Grace Hopper", "grace@", "10.20.30.40",
           "0015e00000XyZ99AAA")
APEX_CSV = (
    '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","EXCEPTION_TYPE","EXCEPTION_MESSAGE",'
    '"STACK_TRACE","EXCEPTION_CATEGORY","TIMESTAMP_DERIVED","USER_ID_DERIVED","CLIENT_IP"\n'
    '"ApexUnexpectedException","20261120101500.123","4aBcDeFgHiJkLmNoPqRsTu","00DFAKE00000000","0055e000005SoFa",'
    '"System.DmlException","Update failed. First exception on row 0 with id 0015e00000XyZ99AAA; first error: '
    'FIELD_CUSTOM_VALIDATION_EXCEPTION, Owner Grace Hopper (grace@example.org) must approve","Class.InvoiceService.'
    'markPaid: line 12, column 1\nTrigger.AccountTrigger: line 3, column 1","DmlException",'
    '"2026-11-20T10:15:00.123Z","0055e000005SoFaAAK","10.20.30.40"\n'
)


def _leaks(text: str) -> list[str]:
    return [p for p in PLANTED if p in text]


# --- live, through the fake ----------------------------------------------------------------------


def _live_org(fake: FakeSalesforce) -> None:
    org = fake.org
    add_runtime_objects(org)
    cls = sf_id("01p", 1)
    org.add("AsyncApexJob", Id=sf_id("707", 1), ApexClassId=cls, ApexClass={"Name": "InvoiceService"},
            JobType="Queueable", Status="Completed", ExtendedStatus=None, NumberOfErrors=0, JobItemsProcessed=1,
            TotalJobItems=1, MethodName=None, CreatedDate="2026-11-20T08:00:00.000+0000",
            CompletedDate="2026-11-20T08:00:05.000+0000")
    org.add("AsyncApexJob", Id=sf_id("707", 2), ApexClassId=cls, ApexClass={"Name": "InvoiceService"},
            JobType="BatchApex", Status="Failed", NumberOfErrors=3, JobItemsProcessed=3, TotalJobItems=3,
            ExtendedStatus="First error: Insert failed for Grace Hopper (grace@example.org)", MethodName=None,
            CreatedDate="2026-11-20T09:00:00.000+0000", CompletedDate="2026-11-20T09:01:00.000+0000")
    org.add("ApexTestRunResult", Id=sf_id("05m", 1), AsyncApexJobId=sf_id("707", 9), Status="Completed",
            StartTime="2026-11-20T02:00:00.000+0000", EndTime="2026-11-20T02:04:00.000+0000", MethodsEnqueued=2,
            MethodsCompleted=2, MethodsFailed=1, ClassesCompleted=1, JobName=None, IsAllTests=True)
    org.add("ApexTestResult", Id=sf_id("07M", 1), ApexClassId=sf_id("01p", 2), ApexClass={"Name": "InvoiceServiceTest"},
            MethodName="marksPaid", Outcome="Fail", Message="System.AssertException: Assertion Failed: Expected: 1, "
            "Actual: 0", StackTrace="Class.InvoiceServiceTest.marksPaid: line 20, column 1",
            TestTimestamp="2026-11-20T02:01:00.000+0000", RunTime=10, AsyncApexJobId=sf_id("707", 9),
            ApexTestRunResultId=sf_id("05m", 1))
    org.add("ApexOrgWideCoverage", Id=sf_id("715", 1), PercentCovered=77)
    org.add("ApexCodeCoverageAggregate", Id=sf_id("715", 2), ApexClassOrTriggerId=cls,
            ApexClassOrTrigger={"Name": "InvoiceService"}, NumLinesCovered=30, NumLinesUncovered=10)
    org.add("FlowVersionView", Id=sf_id("301", 7), DurableId=sf_id("301", 7), VersionNumber=2, Status="Active",
            Label="Invoice Approval", FlowDefinitionViewId=sf_id("300", 7),
            FlowDefinitionView={"ApiName": "Invoice_Approval", "DurableId": sf_id("300", 7)})
    org.add("FlowInterview", Id=sf_id("0Fo", 1), Name="FI-1", InterviewLabel="Invoice Approval for Grace Hopper",
            InterviewStatus="Error", CurrentElement="Update_Invoice", FlowVersionViewId=sf_id("301", 7),
            Guid="abc", PauseLabel=None, Error="Update failed for grace@example.org", OwnerId=sf_id("005", 1),
            CreatedDate="2026-11-20T11:00:00.000+0000", LastModifiedDate="2026-11-20T11:00:01.000+0000")
    add_log_file(org, "ApexUnexpectedException", "2026-11-20T00:00:00Z", APEX_CSV, created="2026-11-21T03:00:00Z")
    org.limits = {"DailyApiRequests": {"Max": 15000, "Remaining": 14000},
                  "DataStorageMB": {"Max": 1024, "Remaining": 800}}


def test_incremental_cursors_read_only_new_rows_and_count_api_calls(make_sf_client, fake_salesforce_env) -> None:
    fake = fake_salesforce_env
    _live_org(fake)
    client, org = make_sf_client("client_credentials")
    inv = None
    first = read_signals(LiveSource(client, now="2026-11-21T06:00:00Z"), org.name, inv, {})
    assert first.notes == []
    assert first.counts() == {"apex_exception": 1, "async_job": 1, "flow_interview": 1, "test": 1}
    groups = {g.signal: g for g in first.failures}
    assert groups["apex_exception"].component == "ApexClass:InvoiceService"  # innermost frame of our code
    assert groups["apex_exception"].detail == "line 12"
    assert groups["flow_interview"].component == "Flow:Invoice_Approval"  # via FlowVersionView
    assert first.coverage == {"at": "2026-11-21T06:00:00Z", "org_wide": 77.0,
                              "components": {"ApexClass:InvoiceService": 75.0}}
    # async, test runs, test results, flow interviews, flow versions, event logs, limits, 2 coverage
    assert first.queries == 9 and first.downloads == 1
    assert first.api_calls == first.queries + first.downloads + 1  # + the OAuth token request
    assert first.daily["2026-11-20"]["async_jobs"] == 2 and first.daily["2026-11-20"]["async_failures"] == 1

    # Nothing happened: one query per signal (no coverage, no download), nothing read again.
    before = len(fake.api_requests())
    second = read_signals(LiveSource(client, now="2026-11-21T07:00:00Z"), org.name, inv, first.cursors)
    assert second.failures == [] and second.daily == {}
    assert second.queries == 5 and second.downloads == 0 and second.api_calls == 5
    new_queries = [r.soql for r in fake.api_requests()[before:] if r.soql]
    assert len(new_queries) == 4  # + GET /limits
    assert any("CompletedDate >= 2026-11-20T09:01:00Z" in q for q in new_queries)
    assert any("CreatedDate >= 2026-11-21T03:00:00Z" in q for q in new_queries)

    # New rows, one in the same second as the cursor: read once, the old ones never again.
    fake.org.add("AsyncApexJob", Id=sf_id("707", 3), ApexClass={"Name": "InvoiceService"}, JobType="Queueable",
                 Status="Failed", NumberOfErrors=0, JobItemsProcessed=1, TotalJobItems=1,
                 ExtendedStatus="Read timed out", MethodName=None, CreatedDate="2026-11-20T09:00:30.000+0000",
                 CompletedDate="2026-11-20T09:01:00.000+0000")
    add_log_file(fake.org, "ApexUnexpectedException", "2026-11-21T00:00:00Z",
                 APEX_CSV.replace("2026-11-20T10:15", "2026-11-21T10:15"), created="2026-11-22T03:00:00Z")
    third = read_signals(LiveSource(client, now="2026-11-22T06:00:00Z"), org.name, inv, second.cursors)
    assert third.rows["async_jobs"] == 1 and third.rows["event_logs"] == 1
    assert third.counts() == {"apex_exception": 1, "async_job": 1}
    fourth = read_signals(LiveSource(client, now="2026-11-22T07:00:00Z"), org.name, inv, third.cursors)
    assert fourth.failures == []


def test_missing_licences_are_notes_not_failures(make_sf_client, fake_salesforce_env) -> None:
    fake = fake_salesforce_env
    add_runtime_objects(fake.org, event_monitoring=False, skip=("ApexOrgWideCoverage", "ApexCodeCoverageAggregate"))
    client, org = make_sf_client("client_credentials")
    run = read_signals(LiveSource(client), org.name, None, {})
    notes = {n.signal: n for n in run.notes}
    assert set(notes) == {"event_logs", "coverage"}
    assert "not licensed" in notes["event_logs"].message and "INVALID_TYPE" in notes["event_logs"].message
    assert "View Event Log Files" in notes["event_logs"].hint
    assert run.coverage is None and "event_logs" not in run.cursors
    assert {"async_jobs", "tests", "flow_interviews", "limits"} <= set(run.cursors)  # the rest was read
    # The next run tries the unlicensed signal again (no cursor was stored for it).
    again = read_signals(LiveSource(client), org.name, None, run.cursors)
    assert {n.signal for n in again.notes} == {"event_logs", "coverage"}


def test_live_fake_and_recording_agree_and_link_failures_to_changes(
        fake_salesforce_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """acme-prod's recorded signals served by the fake Salesforce: the live path reads the same
    failures as the recorded reader, and Triage links them to the audit-trail changes."""
    project = DEMO / "acme-prod"
    fake_org, inventory = demo_org(project)
    runtime_from_recording(fake_org, project / ".aicolleague" / "signals")
    with FakeSalesforce(fake_org) as fake:
        for var, value in fake.env_for("client_credentials").items():
            monkeypatch.setenv(var, value)
        cfg = fake.org_config("client_credentials", name="acme-prod")
        from aicolleague_pipelines.lib.salesforce.client import RetryPolicy, SalesforceClient

        with SalesforceClient(cfg, retry=RetryPolicy(max_attempts=2, base_delay=0.001)) as client:
            live = read_signals(LiveSource(client, now="2026-11-20T06:00:00Z", lookback_days=60), "acme-prod",
                                inventory, {})
            events = fetch_audit_trail(client, cfg, None)
    recorded = read_signals(RecordedSource(project / ".aicolleague" / "signals", "acme-prod"), "acme-prod",
                            inventory, {})
    assert {g.key: g.count for g in live.failures} == {g.key: g.count for g in recorded.failures}
    assert live.downloads == recorded.downloads > 30 and live.notes == []

    store = SignalStore(tmp_path, "acme-prod")
    store.record(live, component_changes(inventory, events))
    graph = build_org_graph(inventory)
    ctx = RuleContext("acme-prod", inventory, graph, "2026-11-25", inventory.api_version,
                      runtime=RuntimeContext.load(tmp_path, "acme-prod"))
    findings = {f.component: f for r in RUNTIME_RULES for f in r.check(ctx)}
    trig = findings["ApexTrigger:OpportunityTrigger"]
    assert trig.rule_id == "RUNTIME-APEX-EXCEPTION" and trig.severity == "critical"
    cause = trig.extra["probable_cause"]
    assert cause["key"] == "ApexTrigger:OpportunityTrigger" and cause["relation"] == "the same component"
    assert 1.5 < cause["hours_before"] < 1.6 and "Changed Opportunity Trigger code" in cause["display"]
    assert "Probable cause: ApexTrigger:OpportunityTrigger (the same component) changed 1 h 35 min" in trig.explanation
    flow = findings["Flow:Case_Escalation"]
    assert flow.extra["probable_cause"]["key"] == "ApexClass:CaseEscalationAction"
    assert flow.extra["probable_cause"]["relation"] == "a direct dependency"
    assert flow.extra["count"] == sum(g.count for g in live.failures if g.signal == "flow_interview")
    assert findings["ApexClass:ErpIntegrationService"].extra["probable_cause"] is None  # nothing changed


def test_probable_cause_rules() -> None:
    nodes = {k: Node(k, k.split(":")[0], k.split(":")[1]) for k in (
        "Flow:F", "ApexClass:A", "ApexClass:B", "CustomObject:Account", "ApexClass:Far")}
    graph = OrgGraph("o", nodes, [Edge("Flow:F", "ApexClass:A", "calls", "x"), Edge("ApexClass:A", "ApexClass:B",
                                                                                   "calls", "x"),
                                  Edge("ApexClass:B", "ApexClass:Far", "calls", "x"),
                                  Edge("Flow:F", "CustomObject:Account", "reads", "x")])
    first = "2026-11-10T12:00:00Z"

    def cause(*changes):
        return probable_cause("Flow:F", first, graph, [
            {"key": k, "at": at, "action": "changed", "display": f"changed {k}"} for k, at in changes])

    assert cause(("Flow:F", "2026-11-10T10:00:00Z"))["relation"] == "the same component"
    two = cause(("ApexClass:B", "2026-11-10T11:00:00Z"), ("Flow:F", "2026-11-09T11:00:00Z"))
    assert two["key"] == "ApexClass:B" and two["relation"] == "a dependency (2 hops)" and two["hours_before"] == 1
    assert cause(("ApexClass:Far", "2026-11-10T11:00:00Z")) is None  # three hops away
    assert cause(("Flow:F", "2026-11-10T12:30:00Z")) is None  # after the first failure
    assert cause(("Flow:F", "2026-11-06T12:00:00Z")) is None  # outside the 72 h window
    assert cause(("CustomObject:Account", "2026-11-10T11:00:00Z")) is None  # objects link everything
    tie = cause(("ApexClass:A", "2026-11-10T11:00:00Z"), ("Flow:F", "2026-11-10T11:00:00Z"))
    assert tie["key"] == "Flow:F"
    nodes["ApexClass:A"].attrs["last_modified_date"] = "2026-11-10T11:30:00.000+0000"  # live inventories
    assert cause()["key"] == "ApexClass:A" and cause()["text"].startswith("ApexClass:A (a direct dependency) changed 30 min")


def test_scrub_message_keeps_the_error_and_drops_the_person() -> None:
    s = scrub_message("System.DmlException: Update failed. First exception on row 0 with id 0065e00000Gh7KpAAJ; "
                      "first error: FIELD_CUSTOM_VALIDATION_EXCEPTION, Program owner Sofia Alvarez "
                      "(sofia.alvarez@acme.com, +1 415 555 0100) must approve 'Northwind': [Program__c]")
    assert s == ("System.DmlException: Update failed. First exception on row 0 with id <id>; first error: "
                 "FIELD_CUSTOM_VALIDATION_EXCEPTION, Program owner <name> (<email>, <number>) must approve "
                 "'<value>': [Program__c]")
    assert scrub_message("Too many SOQL queries: 101") == "Too many SOQL queries: <n>"
    assert scrub_message("Assertion Failed: see https://x.example/a?b=1 from 10.1.2.3 for user Ada") == \
        "Assertion Failed: see <url> from <ip> for user <name>"
    assert scrub_message("Attempt to de-reference a null object") == "Attempt to de-reference a null object"
    assert len(scrub_message("x" * 1000)) <= 240


def test_limits_drive_the_signals_interval() -> None:
    snap = {"limits": {"DailyApiRequests": {"max": 15000, "remaining": 14000}}}
    seconds, why = signals_interval(snap, calls_per_run=10)
    assert seconds == 2880 and "2% of 15000" in why  # 300 calls a day → 30 runs
    assert signals_interval({"limits": {"DailyApiRequests": {"max": 5_000_000, "remaining": 4e6}}}, 10)[0] == 300
    assert signals_interval({"limits": {"DailyApiRequests": {"max": 15000, "remaining": 900}}}, 10)[0] == 6 * 3600
    assert signals_interval(None, 10)[0] == 6 * 3600


# --- the demo through Dagster ---------------------------------------------------------------------


def test_demo_org_runtime_findings_alerts_insight_and_no_personal_data(tmp_path: Path, monkeypatch) -> None:
    from aicolleague_pipelines.definitions import defs as load_defs
    from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME

    alerts_file = tmp_path / "alerts.jsonl"
    (tmp_path / "alerts.yaml").write_text(f"sinks:\n  - {{type: file, name: ops, path: {alerts_file}}}\n")
    monkeypatch.setenv("AICOLLEAGUE_ALERTS_FILE", str(tmp_path / "alerts.yaml"))
    defs = load_defs()
    selection = ["sf_inventory", "sf_dependencies", "sf_audit_trail", "org_graph", "sf_runtime_signals", "runtime_monitor",
                 "triage_findings", "insight_report"]
    job = defs.resolve_job_def("org_refresh_job").get_subset(asset_selection={dg.AssetKey(k) for k in selection})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["globex-prod"])
        result = job.execute_in_process(instance=instance, partition_key="globex-prod")
        assert result.success
        meta = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
        sig = meta["sf_runtime_signals"]
        assert sig["source"].value == "recorded" and sig["new_failures"].value > 100
        assert sig["failures_by_signal"].value.keys() == {"apex_exception", "async_job", "flow_interview"}
        assert sig["not_available"].value == [] and sig["log_downloads"].value > 50
        findings = {f.component: f for f in result.output_for_node("triage_findings") if f.category == "runtime"}
        assert set(findings) == {"ApexTrigger:InvoiceTrigger", "ApexClass:RenewalBatch",
                                 "Flow:Subscription_Status_Sync"}
        sync = findings["Flow:Subscription_Status_Sync"].extra["probable_cause"]
        assert sync["key"] == "Flow:Subscription_Status_Sync" and "Activated flow version #2" in sync["display"]
        triage = result.output_for_node("triage_findings")
        loop = next(f for f in triage if f.rule_id == "APEX-SOQL-IN-LOOP" and f.component == "ApexTrigger:InvoiceTrigger")
        assert loop.risk_parts["frequency"] > 0.5 and loop.extra["runtime_failures_7d"] > 10  # raised
        assert triage == sorted(triage, key=lambda f: -f.risk)
        sent = [json.loads(line) for line in alerts_file.read_text().splitlines()]
        assert [a["title"] for a in sent] == ["globex-prod: runtime async_failures spike"]
        from aicolleague_pipelines.lib.audit import AuditLog

        audited = AuditLog.for_home(Path(os.environ["AICOLLEAGUE_HOME"])).entries(kind="alert")
        assert [(e.org, e.run.get("run_id"))
                for e in audited] == [("globex-prod", result.run_id)]
        assert "### Runtime errors" in meta["insight_report"]["report"].value
        assert "`ApexTrigger:InvoiceTrigger` | 104 |" in meta["insight_report"]["report"].value

        # A second pass (the sensor's job): nothing new is read, the alert is not sent twice.
        again = defs.resolve_job_def("runtime_signals_job").execute_in_process(
            instance=instance, partition_key="globex-prod")
        assert again.success
        m2 = {e.asset_key.to_user_string(): e.materialization.metadata for e in again.get_asset_materialization_events()}
        assert m2["sf_runtime_signals"]["new_failures"].value == 0 and m2["sf_runtime_signals"]["queries"].value == 5
        assert m2["runtime_monitor"]["alerts_sent"].value == 0
        assert len(alerts_file.read_text().splitlines()) == 1

        # No personal detail or record data from the log lines anywhere: the runtime assets'
        # events and metadata, the runtime findings, Insight's runtime part, the data home, alerts.
        logs = "\n".join(str(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id)
                         if e.step_key in ("sf_runtime_signals", "runtime_monitor"))
        runtime_findings = json.dumps([[f.message, f.explanation, f.extra] for f in findings.values()], default=str)
        insight = json.dumps(result.output_for_node("insight_report").get("runtime"))
    home = Path(os.environ["AICOLLEAGUE_HOME"])
    texts = [logs, alerts_file.read_text(), runtime_findings, insight]
    texts += [p.read_text(errors="replace") for p in (home / "runtime").rglob("*") if p.is_file()]
    leaks = {p for t in texts for p in _leaks(t)}
    assert leaks == set(), leaks
    assert "<email>" in runtime_findings and "<name>" in runtime_findings  # scrubbed, not dropped


def test_runtime_signals_sensor_requests_runs_as_the_limits_allow(tmp_path: Path, fake_salesforce_env) -> None:
    from datetime import datetime, timedelta, timezone

    from aicolleague_pipelines.defs.agents.runtime import runtime_signals_sensor
    from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
    from aicolleague_pipelines.lib.salesforce.signals import SignalsRun
    from aicolleague_pipelines.resources import DataHomeResource, OrgsResource
    from aicolleague_pipelines_tests.conftest import write_orgs_file

    fake = fake_salesforce_env
    orgs = write_orgs_file(tmp_path / "orgs.yaml", [
        {"name": "live", "source": "live", "instance_url": fake.instance_url, "api_version": fake.version,
         "ca_bundle": fake.ca_path, "auth": {"kind": "access_token", "access_token_env": "SF_FAKE_ACCESS_TOKEN"}},
        {"name": "demo", "source": "sfdx", "path": str(DEMO / "acme-uat")}])
    home = tmp_path / "home"
    resources = {"orgs": OrgsResource(orgs_file=str(orgs)), "data_home": DataHomeResource(path=str(home))}
    def tick(instance, cursor=None):
        with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
            return runtime_signals_sensor(ctx)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["live", "demo"])
        assert "live: no signals run yet" in tick(instance).skip_reason.skip_message  # a refresh makes the first

        now = datetime.now(timezone.utc)
        run = SignalsRun("live", "live", (now - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ"), api_calls=10)
        run.limits = [{"at": run.started_at, "limits": {"DailyApiRequests": {"max": 15000, "remaining": 14000}}}]
        SignalStore(home, "live").record(run)
        waiting = tick(instance).skip_reason.skip_message
        assert "live: next in" in waiting and "every 48 min" in waiting  # 20 of 48 min have passed

        run.limits[0]["limits"]["DailyApiRequests"] = {"max": 1_000_000, "remaining": 900_000}  # every 5 min
        SignalStore(home, "live").record(run)
        result = tick(instance)
        assert [r.partition_key for r in result.run_requests] == ["live"]  # never the sfdx project
        assert result.run_requests[0].tags["aicolleague/trigger"] == "runtime-signals"
        assert not tick(instance, result.cursor).run_requests  # just requested


# --- baselines --------------------------------------------------------------------------------------


def test_anomaly_alerts_on_generated_series_loose_thresholds() -> None:
    """The full measurement is ``python -m bench.bench_runtime`` (300 series, printed)."""
    from bench.bench_runtime import evaluate, make_runtime_batch

    m = evaluate(make_runtime_batch(90, seed=3))["all"]
    print(f"\nruntime anomalies: precision={m['precision']} recall={m['recall']} ({m['injected']} injected)")
    assert m["precision"] >= 0.8 and m["recall"] >= 0.85


def test_partial_last_day_only_alerts_on_spikes(tmp_path: Path) -> None:
    from aicolleague_pipelines.lib.salesforce.signals import SignalsRun

    store = SignalStore(tmp_path, "o")
    run = SignalsRun("o", "live", "2026-11-20T08:00:00Z")
    for i in range(19):  # 1–19 November, complete days
        run.bump(f"2026-11-{i + 1:02d}T10:00:00Z", "async_jobs", 100 + (i % 3))
    run.bump("2026-11-20T07:00:00Z", "async_jobs", 30)  # today, read until 08:00 only
    run.covered_until = "2026-11-20T08:00:00Z"
    store.record(run)
    assert not store.last_day_complete()
    assert runtime_anomalies(store) == []  # a half-read day is not a drop
    run2 = SignalsRun("o", "live", "2026-11-20T09:00:00Z")
    run2.bump("2026-11-20T08:30:00Z", "async_jobs", 400)
    run2.covered_until = "2026-11-20T09:00:00Z"
    store.record(run2)
    assert [(a.metric, a.direction) for a in runtime_anomalies(store)] == [("async_jobs", "spike")]


def test_recorded_reader_refuses_malformed_files(tmp_path: Path) -> None:
    from aicolleague_pipelines.lib.salesforce.model import ExtractionError

    (tmp_path / "AsyncApexJob.json").write_text("{not json")
    with pytest.raises(ExtractionError, match=r"org 'x'.*AsyncApexJob.json.*malformed"):
        read_signals(RecordedSource(tmp_path, "x"), "x", None, {})


def test_runtime_rules_are_silent_without_signals_and_risk_unchanged() -> None:
    inv = read_sfdx_project(DEMO / "acme-uat", "acme-uat")
    ctx = RuleContext("acme-uat", inv, build_org_graph(inv), "2026-11-25", inv.api_version)
    assert [f for r in RUNTIME_RULES for f in r.check(ctx)] == []
    assert apply_runtime_risk([], None, "2026-11-25") == []
    events = read_recorded_audit_trail("acme-uat", DEMO / "acme-uat", None)
    changes = component_changes(inv, events)
    assert {c["key"] for c in changes} >= {"ApexClass:InvoiceService", "ApexClass:ChurnRiskScorer"}
    assert not any("Login-As" in c["display"] or "password" in c["display"].lower() for c in changes)


def test_orgs_file_signal_settings_choose_what_is_read(tmp_path: Path, fake_salesforce_env) -> None:
    """``signals:`` in the orgs file: only the listed signals and event types are queried, the
    first run's lookback and the log size cap follow it; the sensor's API share too."""
    import dataclasses

    from aicolleague_pipelines.lib.agents.runtime import signals_interval
    from aicolleague_pipelines.lib.orgs import load_orgs
    from aicolleague_pipelines.lib.salesforce.signals import collect_signals
    from aicolleague_pipelines_tests.conftest import write_orgs_file

    fake = fake_salesforce_env
    _live_org(fake)
    entry = {"name": "fake-live", "source": "sfdx", "path": ".",
             "signals": {"read": ["async_jobs", "event_logs", "limits"], "event_types": ["FlowExecution"],
                         "lookback_days": 3, "max_log_mb": 2, "api_share": 0.1}}
    (loaded,) = load_orgs(write_orgs_file(tmp_path / "orgs.yaml", [entry]))
    assert loaded.signals.read_kwargs() == {"signals": ("async_jobs", "event_logs", "limits"),
                                            "event_types": ("FlowExecution",), "lookback_days": 3,
                                            "max_log_bytes": 2 * 1024 * 1024}
    org = dataclasses.replace(fake.org_config(), signals=loaded.signals)
    before = len(fake.api_requests())
    run = collect_signals(org, None, {})
    soql = [r.soql for r in fake.api_requests()[before:] if r.soql]
    assert len(soql) == 2 and run.queries == 3  # AsyncApexJob, EventLogFile + GET /limits
    assert any("FROM AsyncApexJob" in q for q in soql) and not any("FlowInterview" in q for q in soql)
    (logs,) = [q for q in soql if "FROM EventLogFile" in q]
    assert "'FlowExecution'" in logs and "ApexUnexpectedException" not in logs
    # The first run looks back 3 days, not the default 7: the fake's failures of 2026-11-20 are
    # older than that whenever this runs after 2026-11-23.
    from datetime import datetime, timedelta, timezone

    since = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%d")
    (jobs,) = [q for q in soql if "FROM AsyncApexJob" in q]
    assert f">= {since}T" in jobs, jobs
    assert run.counts() == {}
    assert set(run.cursors) == {"async_jobs", "event_logs", "limits"}
    limits = {"limits": {"DailyApiRequests": {"max": 100000.0, "remaining": 90000.0}}}
    assert signals_interval(limits, 10, share=loaded.signals.api_share)[0] < signals_interval(limits, 10)[0]


@pytest.mark.parametrize("signals, says", [
    ("all", "signals must be a mapping"),
    ({"read": ["async_jobs", "tweets"]}, "unknown tweets"),
    ({"event_types": ["API'); --"]}, "EventType names"),
    ({"lookback_days": 90}, "between 1 and 30"),
    ({"api_share": True}, "between 0.001 and 0.5"),
    ({"interval": "Hourly"}, "does not use interval"),
])
def test_orgs_file_signal_settings_are_validated(tmp_path: Path, signals, says) -> None:
    from aicolleague_pipelines.lib.orgs import OrgsConfigError, load_orgs
    from aicolleague_pipelines_tests.conftest import write_orgs_file

    path = write_orgs_file(tmp_path / "orgs.yaml", [{"name": "x", "source": "sfdx", "path": ".", "signals": signals}])
    with pytest.raises(OrgsConfigError, match="org 'x'.*" + says.replace("(", r"\(").replace(")", r"\)")):
        load_orgs(path)
