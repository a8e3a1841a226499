"""Alerts and sinks against a loopback webhook receiver (nothing of ours is mocked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.agents.alerts import (
    Alert,
    AlertConfigError,
    FileSink,
    SlackSink,
    WebhookSink,
    dispatch,
    sinks_from_config,
)
from aicolleague_pipelines_tests.fakes.webhook import FakeWebhook, dead_url

SECRET_PATH = "/hooks/T0FAKE/B0FAKE/FAKESECRET-xoxb-9f8e7d6c5b4a"


@pytest.fixture
def hook():
    with FakeWebhook() as h:
        yield h


def _alerts() -> list[Alert]:
    return [
        Alert("critical", "Field removed but still used", "`Account.Region__c` was removed; 3 dependents.",
              org="prod", key="breaking:prod:Account.Region__c",
              links=[{"title": "impact", "url": "https://example.test/impact?k=Account.Region__c"}]),
        Alert("medium", "Edge count dropped", "edges 5120 → 3900 (-24%)", org="prod", key="anomaly:edges"),
        Alert("info", "Snapshot loaded", "v12", org="prod", key="info:v12"),
    ]


def test_file_sink_default_path_and_jsonl(tmp_path: Path) -> None:
    report = dispatch(_alerts(), None)  # no config → the default file sink
    path = Path(tmp_path / "aicolleague_home" / "alerts" / "alerts.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["key"] for x in lines] == ["breaking:prod:Account.Region__c", "anomaly:edges", "info:v12"]
    assert lines[0]["severity"] == "critical" and lines[0]["org"] == "prod"
    assert lines[0]["links"] == [{"title": "impact", "url": "https://example.test/impact?k=Account.Region__c"}]
    assert report.sent == 3 and report.failed == 0 and report.ok
    dispatch(_alerts()[:1], [FileSink(name="f", path=path)])  # appends
    assert len(path.read_text().splitlines()) == 4


def test_payload_shapes_and_severity_routing(hook: FakeWebhook, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIC_TEST_WEBHOOK", hook.url("/generic"))
    monkeypatch.setenv("AIC_TEST_SLACK", hook.url(SECRET_PATH))
    sinks = sinks_from_config({"sinks": [
        {"type": "file", "path": str(tmp_path / "a.jsonl")},
        {"type": "webhook", "name": "ops", "url_env": "AIC_TEST_WEBHOOK", "min_severity": "medium"},
        {"type": "slack", "name": "chat", "url_env": "AIC_TEST_SLACK", "min_severity": "high"},
    ]})
    report = dispatch(_alerts(), sinks)
    assert report.sink("file").sent == 3
    assert (report.sink("ops").sent, report.sink("ops").skipped) == (2, 1)
    assert (report.sink("chat").sent, report.sink("chat").skipped) == (1, 2)

    generic = hook.bodies("/generic")
    assert [b["severity"] for b in generic] == ["critical", "medium"]
    assert set(generic[0]) >= {"severity", "title", "text", "org", "key", "links", "created_at"}
    assert generic[1]["text"] == "edges 5120 → 3900 (-24%)"

    (slack,) = hook.bodies(SECRET_PATH)
    assert set(slack) == {"text", "blocks"}
    assert "CRITICAL" in slack["text"] and "Field removed but still used" in slack["text"]
    types = [b["type"] for b in slack["blocks"]]
    assert types[0] == "header" and "context" in types and "section" in types
    assert slack["blocks"][0]["text"]["type"] == "plain_text"
    assert any("<https://example.test/impact?k=Account.Region__c|impact>" in (b.get("text") or {}).get("text", "")
               for b in slack["blocks"])
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in slack["blocks"])


def test_retry_on_500_then_success(hook: FakeWebhook, monkeypatch) -> None:
    monkeypatch.setenv("AIC_TEST_WEBHOOK", hook.url("/r"))
    hook.fail(500, times=1)
    sink = WebhookSink(name="ops", url_env="AIC_TEST_WEBHOOK", backoff=0.01)
    report = dispatch(_alerts()[:1], [sink])
    r = report.sink("ops")
    assert (r.sent, r.failed, r.attempts, r.retries) == (1, 0, 2, 1)
    assert len(hook.rejected) == 1 and len(hook.requests) == 1


def test_retry_on_429_honours_retry_after(hook: FakeWebhook, monkeypatch) -> None:
    monkeypatch.setenv("AIC_TEST_SLACK", hook.url(SECRET_PATH))
    hook.fail(429, times=1, retry_after="0.05")
    report = dispatch(_alerts()[:1], [SlackSink(name="chat", url_env="AIC_TEST_SLACK", backoff=0.01)])
    assert report.sink("chat").sent == 1 and report.sink("chat").retries == 1


def test_4xx_not_retried_and_exhausted_retries(hook: FakeWebhook, monkeypatch) -> None:
    monkeypatch.setenv("AIC_TEST_WEBHOOK", hook.url("/x"))
    hook.fail(400, times=1)
    r = dispatch(_alerts()[:1], [WebhookSink(name="w", url_env="AIC_TEST_WEBHOOK", backoff=0.01)]).sink("w")
    assert (r.failed, r.attempts) == (1, 1) and "HTTP 400" in r.errors[0]
    hook.fail(503, times=5)
    r = dispatch(_alerts()[:1], [WebhookSink(name="w", url_env="AIC_TEST_WEBHOOK", retries=2, backoff=0.01)]).sink("w")
    assert (r.failed, r.attempts) == (1, 3) and "HTTP 503 after 3 attempt(s)" in r.errors[0]


def test_dead_sink_does_not_stop_others_and_secret_never_leaks(
    hook: FakeWebhook, monkeypatch, caplog, tmp_path: Path
) -> None:
    dead = dead_url()
    monkeypatch.setenv("AIC_DEAD_HOOK", dead)
    monkeypatch.setenv("AIC_TEST_SLACK", hook.url(SECRET_PATH))
    monkeypatch.delenv("AIC_UNSET_HOOK", raising=False)
    caplog.set_level(logging.DEBUG)
    # The platform HTTP layer quiets httpx to WARNING when imported; this test wants to see
    # that even httpx's own request lines are redacted, so it opens them up explicitly.
    caplog.set_level(logging.DEBUG, logger="httpx")
    sinks = sinks_from_config([
        {"type": "webhook", "name": "dead", "url_env": "AIC_DEAD_HOOK", "backoff": 0.01, "retries": 1},
        {"type": "slack", "name": "unset", "url_env": "AIC_UNSET_HOOK"},
        {"type": "slack", "name": "chat", "url_env": "AIC_TEST_SLACK", "backoff": 0.01},
        {"type": "file", "name": "file", "path": str(tmp_path / "a.jsonl")},
    ])
    report = dispatch(_alerts(), sinks)  # never raises
    assert report.sink("dead").failed == 3 and report.sink("dead").sent == 0
    assert report.sink("unset").failed == 3
    assert "AIC_UNSET_HOOK is not set" in report.sink("unset").errors[0]
    assert report.sink("chat").sent == 3 and report.sink("file").sent == 3
    assert not report.ok

    # Drive the slack sink into an error, too (its URL must not show up in errors either).
    hook.fail(500, times=10)
    report2 = dispatch(_alerts()[:1], [SlackSink(name="chat", url_env="AIC_TEST_SLACK", retries=1, backoff=0.01)])
    assert report2.sink("chat").failed == 1

    texts = [
        json.dumps(report.to_dict()), str(report), repr(report), repr(sinks),
        json.dumps(report2.to_dict()), str(report2), caplog.text,
        " ".join(r.getMessage() for r in caplog.records),
    ]
    for text in texts:
        for secret in (dead, "SECRET-dead-token-0000", hook.url(SECRET_PATH), "FAKESECRET-xoxb-9f8e7d6c5b4a"):
            assert secret not in text
    # httpx logs every request line with its URL: those records are rewritten.
    assert any(r.name == "httpx" and "<redacted>" in r.getMessage() for r in caplog.records)


def test_dedupe_by_key_keeps_most_severe(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    alerts = [
        Alert("low", "Edge count dropped", "a", org="prod", key="k1"),
        Alert("high", "Edge count dropped", "b", org="prod", key="k1"),
        Alert("medium", "Other", "c", org="prod"),
        Alert("medium", "Other", "c again", org="prod"),  # default key: org + title
    ]
    report = dispatch(alerts, [FileSink(name="f", path=path)])
    assert (report.alerts, report.deduplicated) == (2, 2)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["key"], r["severity"], r["text"]) for r in rows][0] == ("k1", "high", "b")


def test_config_errors_are_clear() -> None:
    with pytest.raises(AlertConfigError, match="unknown type 'email'"):
        sinks_from_config([{"type": "email"}])
    with pytest.raises(AlertConfigError, match="set url_env"):
        sinks_from_config([{"type": "slack"}])
    with pytest.raises(AlertConfigError, match="unknown min_severity"):
        sinks_from_config([{"type": "file", "min_severity": "urgent"}])
    with pytest.raises(AlertConfigError, match="unknown setting"):
        sinks_from_config([{"type": "webhook", "url_env": "X", "uri": "y"}])
    with pytest.raises(ValueError):
        Alert("sev9", "t", "x")
