"""The audit log (lib/audit.py) and data retention (lib/retention.py, defs/governance.py).

- several processes appending at once lose nothing and tear no line, even while retention
  rewrites an alerts file under the same lock;
- an alert delivered to the loopback webhook and a ticket created on the loopback Jira by real
  ``org_refresh_job`` runs are in the audit log with those runs' ids;
- plans proposed / approved / gated and Confluence publishing are recorded, scrubbed;
- retention on the DuckDB and the Neo4j store (over ArcadeDB's Bolt) removes old snapshots,
  never the current one, and a rerun is a no-op;
- ``retention_job`` materializes through Dagster, prunes the data home by age, and the
  ``audit_log`` asset and ``aicolleague audit`` show what it did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.lib.agents.approvals import ApprovalLedger, NotApproved, approvals_from_file
from aicolleague_pipelines.lib.agents.confluence import ConfluenceConfig, publish
from aicolleague_pipelines.lib.audit import AuditLog, RunInfo, append_line, parse_since, rewrite_lines
from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store import UnknownOrgError
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines.lib.retention import RetentionConfigError, RetentionPolicy
from aicolleague_pipelines_tests.conftest import write_orgs_file
from aicolleague_pipelines_tests.fakes.bolt_server import bolt_server  # noqa: F401 (fixture)
from aicolleague_pipelines_tests.fakes.confluence import FakeConfluence
from aicolleague_pipelines_tests.fakes.ticketing import FakeTicketing
from aicolleague_pipelines_tests.fakes.webhook import FakeWebhook

NOW = datetime.now(timezone.utc)


def _home() -> Path:
    return Path(os.environ["AICOLLEAGUE_HOME"])


def _audit_text(home: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((home / "audit").glob("*.jsonl")))


# --- concurrency ---------------------------------------------------------------------------------
_WRITER = r"""
import sys
from aicolleague_pipelines.lib.audit import AuditLog, RunInfo, append_line
from pathlib import Path
home, worker, n, alerts = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
log = AuditLog.for_home(home, run=RunInfo(run_id=f"run-{worker}", job="t"), org=f"org-{worker}")
pad = ["x" * 100] * 45  # ~5 KB lines: beyond PIPE_BUF, where O_APPEND alone promises nothing
for i in range(n):
    log.record("alert.send", f"worker {worker} entry {i}", details={"worker": worker, "seq": i, "pad": pad})
    append_line(alerts, '{"created_at": "2999-01-01T00:00:00Z", "w": %d, "i": %d}' % (worker, i))
"""


def test_concurrent_appends_from_several_processes_lose_nothing(tmp_path: Path) -> None:
    home, alerts = tmp_path / "home", tmp_path / "home" / "alerts" / "alerts.jsonl"
    alerts.parent.mkdir(parents=True)
    # old alert lines that retention drops while the writers append new ones
    alerts.write_text("".join(json.dumps({"created_at": "2000-01-01T00:00:00Z", "old": i}) + "\n" for i in range(50)))
    workers, n = 4, 150
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(home), str(w), str(n), str(alerts)])
             for w in range(workers)]
    rewrites = 0
    while any(p.poll() is None for p in procs):  # rewrite the alerts file under the writers' feet
        rewrite_lines(alerts, lambda line: '"old"' not in line)
        rewrites += 1
        time.sleep(0.005)
    assert all(p.wait(timeout=60) == 0 for p in procs)
    rewrite_lines(alerts, lambda line: '"old"' not in line)

    raw = [ln for p in sorted((home / "audit").glob("*.jsonl")) for ln in p.read_text().splitlines()]
    entries = [json.loads(ln) for ln in raw]  # every line is whole, valid JSON
    assert len(entries) == workers * n and len({e["id"] for e in entries}) == workers * n
    for w in range(workers):
        mine = [e for e in entries if e["details"]["worker"] == w]
        assert [e["details"]["seq"] for e in mine] == list(range(n))  # in order, none lost
        assert {e["run"]["run_id"] for e in mine} == {f"run-{w}"} and {e["org"] for e in mine} == {f"org-{w}"}
    assert len(AuditLog.for_home(home).entries(kind="alert", org="org-2")) == n
    lines = [json.loads(ln) for ln in alerts.read_text().splitlines()]
    assert not [x for x in lines if "old" in x]
    assert sorted((x["w"], x["i"]) for x in lines) == [(w, i) for w in range(workers) for i in range(n)]
    assert rewrites >= 1


# --- alerts and tickets from real runs ----------------------------------------------------------
def test_alert_and_ticket_from_org_refresh_runs_are_audited_with_run_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aicolleague_pipelines.cli import main

    project = tmp_path / "acme"
    shutil.copytree(demo_root() / "orgs" / "acme-prod", project)
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(
        tmp_path / "orgs.yaml", [{"name": "acme", "source": "sfdx", "path": "acme"}])))
    jira_token, hook_secret = "AUDIT-jira-token-5e1d", "SECRETHOOKPATH9f3a"
    with FakeWebhook() as hook, FakeTicketing(jira_token=jira_token) as jira:
        monkeypatch.setenv("T_HOOK_URL", hook.url(f"/hooks/T0/B0/{hook_secret}"))
        monkeypatch.setenv("T_JIRA_EMAIL", "bot@example.test")
        monkeypatch.setenv("T_JIRA_TOKEN", jira_token)
        (tmp_path / "alerts.yaml").write_text(
            "sinks:\n  - {type: webhook, name: ops-hook, url_env: T_HOOK_URL, min_severity: high}\n"
            "tickets:\n  sink: jira\n  min_severity: high\n  min_risk: 0\n  max_per_run: 3\n"
            f"  jira: {{base_url: '{jira.base_url}', project_key: AIC, email_env: T_JIRA_EMAIL,"
            " api_token_env: T_JIRA_TOKEN}\n")
        monkeypatch.setenv("AICOLLEAGUE_ALERTS_FILE", str(tmp_path / "alerts.yaml"))
        job = load_defs().resolve_job_def("org_refresh_job")
        # the part of the refresh that acts: extraction, graph, Triage → tickets, Monitor → alerts
        only = [dg.AssetKey(k) for k in ("sf_inventory", "sf_audit_trail", "sf_dependencies", "org_graph",
                                         "triage_findings", "finding_tickets", "monitor_changes")]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme"])
            first = job.execute_in_process(instance=instance, partition_key="acme", asset_selection=only,
                                           tags={"aicolleague/trigger": "nightly"})
            assert first.success
            next(project.rglob("Invoice__c/fields/Amount__c.field-meta.xml")).unlink()  # a breaking change
            second = job.execute_in_process(instance=instance, partition_key="acme", asset_selection=only)
            assert second.success
        posted = hook.bodies(f"/hooks/T0/B0/{hook_secret}")
        assert len(jira.jira_issues) == 6 and posted  # max_per_run 3: three more on the second run

    log = AuditLog.for_home(_home())
    tickets = log.entries(kind="ticket.create")
    assert [t.ref for t in tickets] == [i["key"] for i in jira.jira_issues]
    assert [t.run["run_id"] for t in tickets] == [first.run_id] * 3 + [second.run_id] * 3
    for t in tickets:
        assert t.outcome == "ok" and t.org == "acme" and t.target.startswith("jira")
        assert "risk" in t.why and t.details["finding_id"] in t.what
    assert tickets[0].run == {"run_id": first.run_id, "job": "org_refresh_job", "trigger": "nightly",
                              "partition": "acme"}
    sent = log.entries(kind="alert", org="acme")
    assert len(sent) == len(posted) and {a.outcome for a in sent} == {"ok"}
    assert {a.ref for a in sent} == {p["key"] for p in posted}
    assert all(a.run["run_id"] == second.run_id and a.run["trigger"] == "manual" and a.target == "webhook:ops-hook"
               for a in sent)
    assert any("Invoice__c.Amount__c" in a.what for a in sent)
    text = _audit_text(_home())
    assert jira_token not in text and hook_secret not in text and "bot@example.test" not in text

    assert main(["audit", "--kind", "ticket", "--org", "acme", "--since", "1h", "--json"]) == 0
    assert main(["audit", "--since", "yesterday-ish"]) == 2
    assert main(["audit", "--run", second.run_id]) == 0


def test_cli_filters_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aicolleague_pipelines.cli import main

    log = AuditLog.for_home(_home(), run=RunInfo(run_id="r1", job="j", trigger="manual"))
    log.record("alert.send", "old one", org="a", at=NOW - timedelta(days=10))
    log.record("alert.send", "new one", org="a")
    log.record("ticket.create", "ticket", org="b")
    assert main(["audit", "--kind", "alert", "--since", "7d", "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["what"] for r in rows] == ["new one"] and rows[0]["run"]["run_id"] == "r1"
    assert main(["audit", "--org", "b"]) == 0
    out = capsys.readouterr().out
    assert "ticket.create" in out and "alert.send" not in out and "j (r1)" in out
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)


# --- plans and docs ------------------------------------------------------------------------------
def test_plan_events_are_audited_once_and_people_are_pseudonymised(tmp_path: Path) -> None:
    audit = AuditLog.for_home(tmp_path, run=RunInfo(sensor="approvals_sensor", trigger="file:approvals.yaml"))
    ledger = ApprovalLedger(tmp_path / "ledger.json", audit=audit)
    assert ledger.register("plan-1", "delete CustomField:A.B__c in acme", org="acme", digest="d1")
    assert not ledger.register("plan-1", "delete CustomField:A.B__c in acme", org="acme", digest="d1")
    with pytest.raises(NotApproved):
        ledger.require_approved("plan-1")
    f = tmp_path / "approvals.yaml"
    f.write_text("approvals:\n  - {plan: plan-1, decision: approved, by: dana.lee@example.com, reason: CAB 42}\n")
    assert len(approvals_from_file(f, ledger).applied) == 1
    assert approvals_from_file(f, ledger).applied == []  # re-read: no second entry
    ledger.require_approved("plan-1", digest="d1")
    kinds = [(e.kind, e.outcome) for e in audit.entries()]
    assert kinds == [("plan.propose", "ok"), ("plan.gate", "refused"), ("plan.approve", "ok"),
                     ("plan.gate", "allowed")]
    approve = audit.entries(kind="plan.approve")[0]
    assert approve.org == "acme" and approve.why == "CAB 42" and approve.ref == "plan-1"
    assert approve.actor.startswith("user:") and approve.run == {"sensor": "approvals_sensor",
                                                                  "trigger": "file:approvals.yaml"}
    assert "dana.lee" not in _audit_text(tmp_path)
    assert ledger.decisions("plan-1")[0].by == "dana.lee@example.com"  # the ledger keeps the name


def test_confluence_publishing_is_audited_only_when_it_writes(tmp_path: Path, monkeypatch) -> None:
    email, token = "docs-bot@example.com", "ATATT-audit-secret-token"
    monkeypatch.setenv("T_CF_EMAIL", email)
    monkeypatch.setenv("T_CF_TOKEN", token)
    audit = AuditLog.for_home(tmp_path, run=RunInfo(run_id="run-docs", job="org_refresh_job"), org="acme")
    pages = {"acme: Account": "# Account\n\ntext", "acme: Home": "home"}
    with FakeConfluence(email, token) as fake:
        cfg = ConfluenceConfig(fake.base_url, email_env="T_CF_EMAIL", token_env="T_CF_TOKEN", retry_base_delay=0.0)
        publish(pages, "DOCS", "acme documentation", cfg, sleep=lambda s: None, audit=audit, org="acme")
        publish(pages, "DOCS", "acme documentation", cfg, sleep=lambda s: None, audit=audit, org="acme")
        publish({**pages, "acme: Home": "changed"}, "DOCS", "acme documentation", cfg, sleep=lambda s: None,
                audit=audit, org="acme")
    entries = audit.entries(kind="docs")
    assert [(len(e.details["created"]), e.details["updated"]) for e in entries] == [(3, []), (0, ["acme: Home"])]
    assert all(e.target == "confluence:DOCS" and e.run["run_id"] == "run-docs" for e in entries)
    assert token not in _audit_text(tmp_path) and email not in _audit_text(tmp_path)


# --- retention on both stores ---------------------------------------------------------------------
def _graph(i: int) -> tuple[list[Node], list[Edge]]:
    nodes = [Node("CustomObject:Account", "CustomObject", "Account"),
             Node(f"CustomField:Account.F{i}__c", "CustomField", f"Account.F{i}__c")]
    return nodes, [Edge(nodes[1].key, nodes[0].key, "child_of", f"fields/F{i}.xml")]


class _DuckDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = DuckDBGraphStore(path)

    def backdate(self, org: str, version: int, when: datetime) -> None:
        self.store.close()  # change the stored timestamp at the far end: the file itself
        con = duckdb.connect(str(self.path))
        con.execute("UPDATE snapshots SET created_at = ? WHERE org = ? AND version = ?",
                    [when.isoformat(), org, version])
        con.close()
        self.store = DuckDBGraphStore(self.path)

    def rows(self, org: str) -> int:
        return int(self.store._q("SELECT count(*) FROM nodes WHERE org = ?", [org])[0][0])


class _Neo4j:
    def __init__(self, server) -> None:
        from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore

        self.store = Neo4jGraphStore(server.uri, auth=server.auth, database=server.database)

    def backdate(self, org: str, version: int, when: datetime) -> None:
        self.store._driver.execute_query(
            "MATCH (s:Snapshot {org: $org, version: $v}) SET s.created_at = $t",
            org=org, v=version, t=when.isoformat(), database_=self.store.database)

    def rows(self, org: str) -> int:
        return self.store._driver.execute_query(
            "MATCH (c:Component {org: $org}) RETURN count(c) AS n", org=org,
            database_=self.store.database).records[0]["n"]


@pytest.fixture(params=["duckdb", "neo4j"])
def backend(request, tmp_path: Path):
    if request.param == "duckdb":
        b = _DuckDB(tmp_path / "graph.duckdb")
    else:
        b = _Neo4j(request.getfixturevalue("bolt_server"))
    yield b
    if request.param == "neo4j":
        for org in ("ret_a", "ret_b"):
            try:
                b.store.drop_org(org)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
    b.store.close()


def test_prune_older_than_keeps_the_current_snapshot_and_reruns_are_no_ops(backend) -> None:
    for i in range(4):
        backend.store.load_snapshot("ret_a", *_graph(i))
    backend.store.load_snapshot("ret_b", *_graph(9))
    for version, days in ((1, 200), (2, 100), (3, 10), (4, 120)):  # the current one (v4) is old too
        backend.backdate("ret_a", version, NOW - timedelta(days=days))
    backend.backdate("ret_b", 1, NOW - timedelta(days=500))
    cutoff = NOW - timedelta(days=90)

    assert backend.store.prune_older_than("ret_a", cutoff) == [1, 2]
    assert [s.version for s in backend.store.snapshots("ret_a")] == [3, 4]
    assert backend.store.prune_older_than("ret_a", cutoff) == []  # idempotent
    assert backend.store.prune_older_than("ret_a", NOW + timedelta(days=1)) == [3]
    assert backend.store.prune_older_than("ret_a", NOW + timedelta(days=1)) == []
    assert [s.version for s in backend.store.snapshots("ret_a")] == [4]
    assert backend.rows("ret_a") == 2  # only the current snapshot's nodes are left
    assert sorted(n.key for n in backend.store.nodes("ret_a")) == sorted(n.key for n in _graph(3)[0])
    assert backend.store.where_used("ret_a", "CustomObject:Account")[0].source == "CustomField:Account.F3__c"
    assert backend.store.prune_older_than("ret_b", cutoff) == []  # its only snapshot is current
    assert [s.version for s in backend.store.snapshots("ret_b")] == [1]
    with pytest.raises(UnknownOrgError):
        backend.store.prune_older_than("ret_nope", cutoff)


def test_retention_policy_from_config_then_env() -> None:
    assert RetentionPolicy.resolve(environ={}) == RetentionPolicy(90.0, 365.0)
    env = {"AICOLLEAGUE_RETENTION_DAYS": "30", "AICOLLEAGUE_AUDIT_RETENTION_DAYS": "400"}
    assert RetentionPolicy.resolve(environ=env) == RetentionPolicy(30.0, 400.0)
    assert RetentionPolicy.resolve(7, environ=env).max_age_days == 7
    with pytest.raises(RetentionConfigError, match=r"\$AICOLLEAGUE_RETENTION_DAYS.*'ninety'"):
        RetentionPolicy.resolve(environ={"AICOLLEAGUE_RETENTION_DAYS": "ninety"})
    with pytest.raises(RetentionConfigError, match="max_age_days"):
        RetentionPolicy.resolve(-1, environ={})


# --- the retention job through Dagster -----------------------------------------------------------
def _old(path: Path, days: float) -> Path:
    t = (NOW - timedelta(days=days)).timestamp()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))
    return path


def _seed_data_home(home: Path) -> None:
    store = DuckDBGraphStore(home / "graph.duckdb")
    for i in range(3):
        store.load_snapshot("acme", *_graph(i))
    store.close()
    con = duckdb.connect(str(home / "graph.duckdb"))
    for version, days in ((1, 200), (2, 95), (3, 150)):
        con.execute("UPDATE snapshots SET created_at = ? WHERE org = 'acme' AND version = ?",
                    [(NOW - timedelta(days=days)).isoformat(), version])
    con.close()
    for plan, days in (("plan-old", 120), ("plan-new", 2)):
        (home / "plans" / "acme" / plan / "rollback").mkdir(parents=True)
        (home / "plans" / "acme" / plan / "package.xml").write_text("<Package/>")
        _old(home / "plans" / "acme" / plan, days)
    _write(home / "alerts" / "alerts.jsonl", "".join(
        json.dumps({"created_at": (NOW - timedelta(days=d)).isoformat(), "title": f"{d} days"}) + "\n"
        for d in (300, 91, 1)))
    _old(_write(home / "llm-cache" / "aaa.json", "{}"), 100)
    _write(home / "llm-cache" / "bbb.json", "{}")
    (home / "reports" / "acme").mkdir(parents=True)
    (home / "reports" / "acme" / "insight_history.json").write_text(json.dumps([
        {"timestamp": (NOW - timedelta(days=d)).isoformat(), "findings": d, "health": 50.0} for d in (400, 120, 5)]))
    _old(home / "reports" / "acme" / "insight_history.json", 1)
    (home / "reports" / "gone-org").mkdir()
    (home / "reports" / "gone-org" / "triage.csv").write_text("id\n")
    _old(home / "reports" / "gone-org", 200)
    (home / "knowledge").mkdir()
    _old(_write(home / "knowledge" / "gone-org.json", "{}"), 200)
    _old(_write(home / "knowledge" / "acme.json", "{}"), 200)  # acme has a snapshot: kept
    _write(home / "audit" / "2001-01.jsonl", json.dumps({"kind": "alert.send", "at": "2001-01-05T00:00:00Z"}) + "\n")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_retention_job_materializes_through_dagster(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from aicolleague_pipelines.cli import main

    home = _home()
    _seed_data_home(home)
    monkeypatch.setenv("AICOLLEAGUE_RETENTION_DAYS", "90")
    job = load_defs().resolve_job_def("retention_job")
    with dg.instance_for_test() as instance:
        dry = job.execute_in_process(instance=instance, run_config={
            "ops": {"data_retention": {"config": {"dry_run": True}}}})
        assert dry.success
        meta = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in dry.get_asset_materialization_events()}["data_retention"]
        assert meta["dry_run"].value is True and meta["snapshots_pruned"].value == {"acme": [1, 2]}
        assert (home / "plans" / "acme" / "plan-old").is_dir()  # a dry run deletes nothing

        result = job.execute_in_process(instance=instance)
        assert result.success
        mats = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
        meta = mats["data_retention"]
        assert meta["snapshots_pruned"].value == {"acme": [1, 2]}
        assert meta["current_snapshots_kept"].value == {"acme": 3}  # 150 days old, still current
        assert meta["pruned_by_category"].value == {
            "alerts": 1, "audit": 1, "insight_history": 1, "llm_cache": 1, "orphan": 2, "plan": 1, "snapshot": 2}
        assert "plan-old" in meta["summary"].value
        audit_meta = mats["audit_log"]
        assert audit_meta["by_kind"].value == {"retention.prune": 7} and audit_meta["entries"].value == 7
        # one entry per (category, org): snapshots, history, plans of acme; gone-org's leftovers;
        # alerts, cache and audit months belong to no org
        assert audit_meta["by_org"].value == {"(none)": 3, "acme": 3, "gone-org": 1}
        assert "retention.prune" in audit_meta["recent"].value

        again = job.execute_in_process(instance=instance)  # idempotent: nothing left to prune
        again_meta = {e.asset_key.to_user_string(): e.materialization.metadata
                      for e in again.get_asset_materialization_events()}["data_retention"]
        assert again_meta["pruned"].value == 0

    store = DuckDBGraphStore(home / "graph.duckdb", read_only=True)
    assert [s.version for s in store.snapshots("acme")] == [3]
    store.close()
    assert not (home / "plans" / "acme" / "plan-old").exists() and (home / "plans" / "acme" / "plan-new").is_dir()
    alerts = [json.loads(ln)["title"] for ln in (home / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert alerts == ["1 days"]
    history = json.loads((home / "reports" / "acme" / "insight_history.json").read_text())
    assert [h["findings"] for h in history] == [5]
    assert not (home / "llm-cache" / "aaa.json").exists() and (home / "llm-cache" / "bbb.json").exists()
    assert not (home / "reports" / "gone-org").exists() and not (home / "knowledge" / "gone-org.json").exists()
    assert (home / "knowledge" / "acme.json").exists()
    assert not (home / "audit" / "2001-01.jsonl").exists()

    pruned = AuditLog.for_home(home).entries(kind="retention")
    assert {e.run["run_id"] for e in pruned} == {result.run_id}
    assert all(e.run["job"] == "retention_job" and e.run["trigger"] == "manual" for e in pruned)
    snap = next(e for e in pruned if e.ref == "snapshot")
    assert snap.org == "acme" and snap.details == {"versions": [1, 2], "current_kept": 3}
    assert "older than 90 day(s)" in snap.why

    capsys.readouterr()
    assert main(["audit", "--kind", "retention", "--org", "acme"]) == 0
    out = capsys.readouterr().out
    assert "deleted 2 graph snapshot(s) of acme" in out and "retention_job" in out


def test_daily_retention_schedule_requests_one_run_a_day() -> None:
    from aicolleague_pipelines.defs.governance import daily_retention

    assert daily_retention.default_status == dg.DefaultScheduleStatus.RUNNING
    assert daily_retention.job_name == "retention_job"
    when = datetime(2025, 6, 1, 3, 30, tzinfo=timezone.utc)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when
    ) as ctx:
        req = daily_retention.evaluate_tick(ctx).run_requests[0]
    assert req.run_key == "retention-2025-06-01" and req.tags["aicolleague/trigger"] == "daily-retention"


def test_retention_prunes_old_runtime_history_and_keeps_the_cursors(tmp_path: Path) -> None:
    """The demo's recorded signals (about five weeks of them) go through the real reader and
    store; a retention pass at a cutoff inside that period drops the older points only, keeps
    the cursors (the next signals run stays incremental) and a rerun drops nothing more."""
    from aicolleague_pipelines.lib.retention import apply_retention
    from aicolleague_pipelines.lib.salesforce.extract import RECORDED_DIR
    from aicolleague_pipelines.lib.salesforce.signals import RECORDED_SIGNALS_DIR, RecordedSource, read_signals
    from aicolleague_pipelines.lib.salesforce.signals_store import SignalStore

    folder = demo_root() / "orgs" / "acme-prod" / RECORDED_DIR / RECORDED_SIGNALS_DIR
    home = tmp_path / "home"
    store = SignalStore(home, "acme-prod")
    store.record(read_signals(RecordedSource(folder, "acme-prod"), "acme-prod", None, {}))
    days = sorted(store.daily())
    groups = store.failure_groups()
    cursors = store.cursors()
    assert len(days) > 20 and groups and cursors
    cut_day = days[len(days) // 2]
    cutoff = datetime.fromisoformat(cut_day).replace(tzinfo=timezone.utc)
    now = cutoff + timedelta(days=30)
    policy = RetentionPolicy(max_age_days=30)

    dry = apply_retention(home, None, policy, now=now, dry_run=True)
    assert [p.category for p in dry.pruned] == ["runtime_history"] and sorted(store.daily()) == days

    report = apply_retention(home, None, policy, now=now)
    (pruned,) = [p for p in report.pruned if p.category == "runtime_history"]
    assert pruned.org == "acme-prod" and "daily.json" in pruned.detail
    assert sorted(store.daily()) == [d for d in days if d >= cut_day]
    stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {g.key for g in store.failure_groups()} == {g.key for g in groups if g.last_seen >= stamp}
    assert all(str(c.get("at")) >= stamp for c in store.changes())
    assert all(s.get("at", "") >= stamp for s in store.limit_snapshots())
    assert store.cursors() == cursors
    assert not [p for p in apply_retention(home, None, policy, now=now).pruned if p.category == "runtime_history"]


def test_retention_prunes_old_governance_trend_points_but_never_the_newest(tmp_path: Path) -> None:
    from aicolleague_pipelines.lib.retention import apply_retention

    path = tmp_path / "reports" / "acme-prod" / "governance_history.json"
    path.parent.mkdir(parents=True)
    points = [{"date": d, "snapshot_version": v, "overall": 40.0 + v}
              for v, d in enumerate(["2026-01-05", "2026-03-01", "2026-06-20", "2026-11-20"], start=1)]
    path.write_text(json.dumps(points))
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    report = apply_retention(tmp_path, None, RetentionPolicy(max_age_days=180), now=now)
    assert [(p.category, p.org) for p in report.pruned] == [("governance_history", "acme-prod")]
    assert [p["date"] for p in json.loads(path.read_text())] == ["2026-06-20", "2026-11-20"]
    # Even when every point is old, the newest (the trend's current value) stays.
    apply_retention(tmp_path, None, RetentionPolicy(max_age_days=1), now=now)
    assert [p["date"] for p in json.loads(path.read_text())] == ["2026-11-20"]
