"""Ticket routing against a loopback fake Jira Cloud / ServiceNow (nothing of ours is mocked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.agents.tickets import (
    TicketConfig,
    TicketConfigError,
    route_findings,
)
from aicolleague_pipelines_tests.fakes.ticketing import FakeTicketing

JIRA_EMAIL = "aic-bot@example.test"
JIRA_TOKEN = "MARKER-jira-token-7c1f9e2d"
SNOW_USER = "svc_aicolleague"
SNOW_PASSWORD = "MARKER-snow-pw-42ab8810"
FAST = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5}


def _f(rule: str, severity: str, risk: float, component: str = "ApexClass:OrderService", **kw) -> Finding:
    f = Finding(
        rule_id=rule, severity=severity, org="prod", component=component,
        message=kw.pop("message", f"{rule} on {component}"),
        explanation=kw.pop("explanation", "Governor limits will be hit under bulk loads; move the query out of the loop."),
        evidence=kw.pop("evidence", "classes/OrderService.cls:42"), risk=risk, category="apex", **kw,
    )
    f.risk_parts = {"severity": 0.8, "blast_radius": 0.6}
    return f


HIGH = _f("APEX-SOQL-IN-LOOP", "high", 72.5)
CRIT = _f("SEC-SHARING", "critical", 91.0, component="ApexClass:PaymentGateway", evidence="")


@pytest.fixture
def fake(monkeypatch):
    with FakeTicketing(jira_email=JIRA_EMAIL, jira_token=JIRA_TOKEN, snow_user=SNOW_USER,
                       snow_password=SNOW_PASSWORD) as f:
        monkeypatch.setenv("AIC_T_JIRA_EMAIL", JIRA_EMAIL)
        monkeypatch.setenv("AIC_T_JIRA_TOKEN", JIRA_TOKEN)
        monkeypatch.setenv("AIC_T_SNOW_USER", SNOW_USER)
        monkeypatch.setenv("AIC_T_SNOW_PASSWORD", SNOW_PASSWORD)
        yield f


def jira_cfg(fake: FakeTicketing, **kw) -> dict:
    return {"sink": "jira", **FAST, **kw, "jira": {
        "base_url": fake.base_url + "/", "project_key": "AIC", "issue_type": "Bug",
        "email_env": "AIC_T_JIRA_EMAIL", "api_token_env": "AIC_T_JIRA_TOKEN", "labels": ["salesforce", "tech debt"]}}


def snow_cfg(fake: FakeTicketing, **kw) -> dict:
    return {"sink": "servicenow", **FAST, **kw, "servicenow": {
        "base_url": fake.base_url, "username_env": "AIC_T_SNOW_USER", "password_env": "AIC_T_SNOW_PASSWORD",
        "assignment_group": "Salesforce Platform", "category": "software"}}


def _texts(node) -> list[str]:
    if isinstance(node, dict):
        out = [node["text"]] if node.get("type") == "text" else []
        for child in node.get("content", []):
            out += _texts(child)
        return out
    return []


def _no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (JIRA_TOKEN, SNOW_PASSWORD, "MARKER-"):
            assert secret not in text


# --- config ------------------------------------------------------------------------------------


def test_config_defaults_and_validation(fake: FakeTicketing) -> None:
    cfg = TicketConfig.from_dict(None)
    assert (cfg.sink, cfg.min_risk, cfg.min_severity, cfg.max_per_run) == ("asset", 60.0, "high", 20)
    cfg = TicketConfig.from_dict(jira_cfg(fake))
    assert cfg.jira.base_url == fake.base_url and cfg.jira.labels == ["salesforce", "tech-debt"]
    for bad, msg in [
        ({"sink": "email"}, "unknown sink"),
        ({"sink": "jira"}, "no tickets.jira section"),
        ({"min_severity": "urgent"}, "unknown tickets.min_severity"),
        ({"colour": "red"}, "unknown setting"),
        ({"sink": "jira", "jira": {"base_url": "https://x.test", "project_key": "A", "email_env": "E"}}, "api_token_env"),
        ({"sink": "servicenow", "servicenow": {"base_url": "https://u:p@x.test", "username_env": "U",
                                               "password_env": "P"}}, "must not contain credentials"),
    ]:
        with pytest.raises(TicketConfigError, match=msg):
            TicketConfig.from_dict(bad)


def test_asset_sink_makes_no_http_call(fake: FakeTicketing, tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(500)))
    cfg = {**jira_cfg(fake), "sink": "asset"}  # a jira section is present but not used
    low = _f("APEX-DEBUG", "low", 10.0)
    report = route_findings([HIGH, CRIT, low], cfg, tmp_path / "ledger.json", client=client)
    assert report.created == [(CRIT.id, f"asset:{CRIT.id}"), (HIGH.id, f"asset:{HIGH.id}")]
    assert report.skipped_below_threshold == [low.id]
    assert report.tickets[0]["summary"].startswith("[CRITICAL] SEC-SHARING") and "Risk: 91/100" in report.tickets[0]["text"]
    assert seen == [] and fake.requests == [] and report.requests == 0
    # the ledger makes the next run report only new findings
    again = route_findings([HIGH, CRIT], None, tmp_path / "ledger.json")
    assert again.created == [] and {k for k, _ in again.already_ticketed} == {HIGH.id, CRIT.id}


# --- Jira ----------------------------------------------------------------------------------------


def test_jira_create_with_adf_description(fake: FakeTicketing, tmp_path: Path) -> None:
    report = route_findings([HIGH], jira_cfg(fake), tmp_path / "ledger.json")
    assert report.ok, report.to_dict()
    (issue,) = fake.jira_issues
    assert report.created == [(HIGH.id, issue["key"])]
    assert report.tickets[0]["url"] == f"{fake.base_url}/browse/{issue['key']}"
    (post,) = fake.calls("POST", "/rest/api/3/issue")
    assert post["headers"]["Authorization"].startswith("Basic ")
    fields = post["json"]["fields"]
    assert set(fields) == {"project", "summary", "issuetype", "labels", "description"}
    assert fields["project"] == {"key": "AIC"} and fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == "[HIGH] APEX-SOQL-IN-LOOP: APEX-SOQL-IN-LOOP on ApexClass:OrderService (ApexClass:OrderService)"
    assert fields["labels"] == ["salesforce", "tech-debt", "aicolleague", f"finding-{HIGH.id}"]
    doc = fields["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    kinds = [n["type"] for n in doc["content"]]
    assert kinds[0] == "paragraph" and "heading" in kinds and "bulletList" in kinds
    for node in doc["content"]:  # every block has non-empty inline content
        assert node["content"]
    texts = _texts(doc)
    assert HIGH.message in texts and HIGH.explanation in texts
    assert "ApexClass:OrderService" in texts and "classes/OrderService.cls:42" in texts
    assert any("72.5/100" in t for t in texts)
    bullets = next(n for n in doc["content"] if n["type"] == "bulletList")
    assert all(item["type"] == "listItem" and item["content"][0]["type"] == "paragraph" for item in bullets["content"])
    comp = next(t for item in bullets["content"] for t in item["content"][0]["content"]
                if t["text"] == "ApexClass:OrderService")
    assert comp["marks"] == [{"type": "code"}]
    # the dedup search came first, on the new endpoint
    (search,) = fake.calls("GET", "/rest/api/3/search/jql")
    assert search["query"]["jql"] == f'labels = "finding-{HIGH.id}"' and search["query"]["fields"] == "key,status"
    assert fake.requests.index(search) < fake.requests.index(post)


def test_jira_dedup_via_search_and_legacy_fallback(fake: FakeTicketing, tmp_path: Path) -> None:
    existing = fake.add_jira_issue(["aicolleague", f"finding-{HIGH.id}"], status="In Progress")
    report = route_findings([HIGH], jira_cfg(fake), tmp_path / "ledger.json")
    assert report.already_ticketed == [(HIGH.id, existing)] and report.found_by_search == [HIGH.id]
    assert report.created == [] and fake.calls("POST") == [] and len(fake.jira_issues) == 1
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    (section,) = ledger["targets"].values()
    assert section[HIGH.id]["key"] == existing and section[HIGH.id]["via"] == "search"

    # a site without /search/jql (404): the older /search endpoint is used, once per run
    fake.jira_new_search = False
    existing2 = fake.add_jira_issue([f"finding-{CRIT.id}"])
    other = _f("APEX-NO-ASSERT", "high", 70.0, component="ApexClass:Other")
    report = route_findings([CRIT, other], jira_cfg(fake), None)
    assert report.already_ticketed == [(CRIT.id, existing2)]
    assert [k for k, _ in report.created] == [other.id]
    assert len(fake.calls("GET", "/rest/api/3/search/jql")) == 2  # 1 from the first run + 1 404 here
    assert len(fake.calls("GET", "/rest/api/3/search")) == 2


def test_jira_dedup_via_ledger_across_runs(fake: FakeTicketing, tmp_path: Path) -> None:
    ledger = tmp_path / "home" / "tickets" / "prod.json"
    first = route_findings([HIGH, CRIT], jira_cfg(fake), ledger)
    assert len(first.created) == 2 and len(fake.jira_issues) == 2
    n = len(fake.requests)
    second = route_findings([HIGH, CRIT], jira_cfg(fake), ledger)
    assert second.created == [] and sorted(second.already_ticketed) == sorted(first.created)
    assert len(fake.requests) == n  # not even a search: the ledger answered
    assert second.requests == 0 and fake.calls("POST") and len(fake.calls("POST")) == 2
    data = json.loads(ledger.read_text())
    assert data["version"] == 1 and list(ledger.parent.glob("*.tmp")) == []


def test_thresholds_and_cap(fake: FakeTicketing, tmp_path: Path) -> None:
    findings = [
        _f("R-CRIT-LOW-RISK", "critical", 40.0),      # risk too low
        _f("R-MED-HIGH-RISK", "medium", 95.0),        # severity too low
        _f("R-A", "high", 60.0, component="C:a"),     # exactly at the threshold
        _f("R-B", "critical", 88.0, component="C:b"),
        _f("R-C", "high", 75.0, component="C:c"),
        _f("R-D", "high", 65.0, component="C:d"),
    ]
    ledger = tmp_path / "ledger.json"
    report = route_findings(findings + [findings[3]], jira_cfg(fake, max_per_run=2), ledger)
    ids = {f.rule_id: f.id for f in findings}
    assert sorted(report.skipped_below_threshold) == sorted([ids["R-CRIT-LOW-RISK"], ids["R-MED-HIGH-RISK"]])
    assert [k for k, _ in report.created] == [ids["R-B"], ids["R-C"]]  # highest risk first
    assert report.skipped_over_cap == [ids["R-D"], ids["R-A"]]
    assert len(fake.calls("POST")) == 2
    nxt = route_findings(findings, jira_cfg(fake, max_per_run=2), ledger)
    assert [k for k, _ in nxt.created] == [ids["R-D"], ids["R-A"]] and nxt.skipped_over_cap == []
    lax = route_findings(findings, jira_cfg(fake, min_risk=0, min_severity="medium"), ledger)
    assert {k for k, _ in lax.created} == {ids["R-CRIT-LOW-RISK"], ids["R-MED-HIGH-RISK"]}
    assert len(fake.jira_issues) == 6


def test_429_then_success(fake: FakeTicketing, tmp_path: Path) -> None:
    fake.throttle_once(retry_after="0", method="POST")
    report = route_findings([HIGH], jira_cfg(fake), tmp_path / "ledger.json")
    assert [k for k, _ in report.created] == [HIGH.id] and report.failed == [] and report.retries == 1
    assert [c["status"] for c in fake.calls("POST")] == [429, 201] and len(fake.jira_issues) == 1
    assert len(fake.calls("GET")) == 1  # a 429 was not processed: no re-search before re-posting


def test_5xx_after_processing_does_not_duplicate(fake: FakeTicketing, tmp_path: Path) -> None:
    fake.fail(502, method="POST", processed=True)  # created, but the answer was lost
    report = route_findings([HIGH], jira_cfg(fake), tmp_path / "ledger.json")
    assert len(fake.jira_issues) == 1 and len(fake.calls("POST")) == 1
    assert report.already_ticketed == [(HIGH.id, fake.jira_issues[0]["key"])] and report.failed == []
    fake.error_once(500, method="POST")  # not processed: searched again, then re-posted
    report = route_findings([CRIT], jira_cfg(fake), tmp_path / "ledger.json")
    assert [k for k, _ in report.created] == [CRIT.id] and len(fake.jira_issues) == 2


def test_persistent_500_fails_without_raising_and_keeps_ledger(fake: FakeTicketing, tmp_path: Path, caplog) -> None:
    ledger = tmp_path / "ledger.json"
    route_findings([HIGH], jira_cfg(fake), ledger)
    before = json.loads(ledger.read_text())
    fake.fail(500, times=100, method="POST")
    more = [_f(f"R-{i}", "high", 70.0 + i, component=f"C:{i}") for i in range(4)]
    report = route_findings([HIGH, *more], jira_cfg(fake, retries=2), ledger)
    assert report.created == [] and report.already_ticketed == [(HIGH.id, before["targets"][next(iter(before["targets"]))][HIGH.id]["key"])]
    assert len(report.failed) == 4 and not report.ok
    errors = [e for _, e in report.failed]
    assert errors[0] == "jira: HTTP 500 on POST /rest/api/3/issue after 3 attempt(s)"
    assert errors[3].startswith("not attempted: jira failed 3 time(s) in a row")
    assert [c["status"] for c in fake.calls("POST")] == [201] + [500] * 9  # 3 findings × 3 attempts; 4th not tried
    assert json.loads(ledger.read_text())["targets"] == before["targets"]  # intact, still valid
    assert "1 already ticketed" in str(report) and "4 failed" in str(report)


def test_bad_credentials_fail_clearly_without_the_secret(fake: FakeTicketing, tmp_path: Path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AIC_T_JIRA_TOKEN", "MARKER-wrong-token-0badc0de")
    report = route_findings([HIGH, CRIT], jira_cfg(fake), tmp_path / "ledger.json")
    assert report.created == [] and len(report.failed) == 2
    (first, second) = report.failed
    assert first[1] == ("jira: authentication failed (HTTP 401 on GET /rest/api/3/search/jql); check the "
                        "credentials in $AIC_T_JIRA_EMAIL / $AIC_T_JIRA_TOKEN")
    assert second[1].startswith("not attempted: jira: authentication failed")
    assert len(fake.requests) == 1  # no hammering of the login (lock-out)
    _no_secret(json.dumps(report.to_dict()), str(report), caplog.text,
               " ".join(r.getMessage() for r in caplog.records))
    assert not (tmp_path / "ledger.json").exists()

    # ServiceNow, and a missing variable: no request at all
    monkeypatch.setenv("AIC_T_SNOW_PASSWORD", "MARKER-wrong-pw-1234")
    report = route_findings([HIGH], snow_cfg(fake), None)
    assert report.failed[0][1].startswith("servicenow: authentication failed (HTTP 401 on GET /api/now/table/incident)")
    monkeypatch.delenv("AIC_T_SNOW_USER")
    n = len(fake.requests)
    report = route_findings([HIGH], snow_cfg(fake), None)
    assert report.failed == [(HIGH.id, "servicenow: environment variable(s) AIC_T_SNOW_USER not set "
                                       "(the ServiceNow user name and password)")]
    assert len(fake.requests) == n
    _no_secret(json.dumps(report.to_dict()), caplog.text)


def test_jira_400_is_reported_and_not_retried(fake: FakeTicketing, tmp_path: Path) -> None:
    cfg = jira_cfg(fake)
    cfg["jira"]["project_key"] = "NOPE"
    report = route_findings([HIGH], cfg, tmp_path / "ledger.json")
    assert report.failed == [(HIGH.id, "jira: HTTP 400 on POST /rest/api/3/issue: project: valid project is "
                                       "required (not retried)")]
    assert len(fake.calls("POST")) == 1


# --- ServiceNow ----------------------------------------------------------------------------------


def test_servicenow_create_and_dedup_by_correlation_id(fake: FakeTicketing, tmp_path: Path) -> None:
    existing = fake.add_incident(f"aicolleague-{CRIT.id}")
    ledger = tmp_path / "ledger.json"
    report = route_findings([HIGH, CRIT], snow_cfg(fake), ledger)
    assert report.already_ticketed == [(CRIT.id, existing)] and report.found_by_search == [CRIT.id]
    (post,) = fake.calls("POST", "/api/now/table/incident")
    body = post["json"]
    assert body == {
        "short_description": "[HIGH] APEX-SOQL-IN-LOOP: APEX-SOQL-IN-LOOP on ApexClass:OrderService (ApexClass:OrderService)",
        "description": body["description"],
        "urgency": "2", "impact": "2", "category": "software", "assignment_group": "Salesforce Platform",
        "correlation_id": f"aicolleague-{HIGH.id}", "correlation_display": "aicolleague",
    }
    assert HIGH.explanation in body["description"] and "Component: ApexClass:OrderService" in body["description"]
    number = fake.incidents[-1]["number"]
    assert report.created == [(HIGH.id, number)]
    assert report.tickets[0]["sys_id"] == fake.incidents[-1]["sys_id"]
    gets = fake.calls("GET", "/api/now/table/incident")
    assert [g["query"]["sysparm_query"] for g in gets] == [f"correlation_id=aicolleague-{CRIT.id}",
                                                           f"correlation_id=aicolleague-{HIGH.id}"]
    assert gets[0]["query"]["sysparm_fields"] == "number,sys_id" and gets[0]["query"]["sysparm_limit"] == "1"
    # without a ledger, the correlation_id query alone prevents a second incident
    again = route_findings([HIGH, CRIT], snow_cfg(fake), None)
    assert again.created == [] and sorted(again.found_by_search) == sorted([HIGH.id, CRIT.id])
    assert len(fake.incidents) == 2
    # with the ledger: no request at all
    n = len(fake.requests)
    assert route_findings([HIGH, CRIT], snow_cfg(fake), ledger).requests == 0 and len(fake.requests) == n


def test_corrupt_ledger_is_kept_aside_and_run_goes_on(fake: FakeTicketing, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    ledger.write_text("{not json")
    report = route_findings([HIGH], jira_cfg(fake), ledger)
    assert [k for k, _ in report.created] == [HIGH.id]
    assert report.ledger_errors and "not valid JSON" in report.ledger_errors[0]
    assert list(tmp_path.glob("ledger.json.corrupt-*"))[0].read_text() == "{not json"
    assert HIGH.id in json.dumps(json.loads(ledger.read_text()))
