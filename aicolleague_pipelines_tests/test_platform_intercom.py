"""Intercom extract against a loopback fake workspace and against the bundled demo export."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.platforms.chargebee import looks_like_sf_id
from aicolleague_pipelines.lib.platforms.config import PlatformConfig, PlatformConfigError
from aicolleague_pipelines.lib.platforms.http import RECORDED_FILE, PlatformHttp
from aicolleague_pipelines.lib.platforms.intercom import extract_intercom
from aicolleague_pipelines.lib.platforms.model import PlatformError
from aicolleague_pipelines_tests.fakes.intercom import FAKE_INTERCOM_TOKEN, FakeIntercom, build_workspace

EXPORT = Path(__file__).resolve().parents[1] / "aicolleague_pipelines" / "demo" / "exports" / "intercom"
ENV = "IC_TEST_TOKEN"


@pytest.fixture
def ws():
    return build_workspace(320, 40, 170)  # contacts: 3 pages of 150; conversations: 2 pages


@pytest.fixture
def fake(ws):
    with FakeIntercom(ws) as f:
        yield f


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv(ENV, FAKE_INTERCOM_TOKEN)


def cfg_for(fake: FakeIntercom, **kw) -> PlatformConfig:
    base = dict(name="acme-support", kind="intercom", org="acme-prod", base_url=fake.base_url,
                auth={"token_env": ENV}, retry_attempts=4, retry_base_delay=0.001)
    base.update(kw)
    return PlatformConfig(**base)


def test_attribute_nodes_and_link(fake, ws):
    ex = extract_intercom(cfg_for(fake))
    assert (ex.platform, ex.instance) == ("intercom", "acme-support")
    nodes = {n.key: n for n in ex.nodes}
    want = {f"IntercomAttribute:acme-support/{m}.{a['name']}" for m, attrs in ws.attributes.items() for a in attrs}
    assert set(nodes) == want
    sf = nodes["IntercomAttribute:acme-support/company.salesforce_id"]
    assert sf.type == "IntercomAttribute" and sf.name == "acme-support/company.salesforce_id"
    assert sf.attrs["data_type"] == "string" and sf.attrs["custom"] is True
    assert sf.attrs["full_name"] == "custom_attributes.salesforce_id"
    assert nodes["IntercomAttribute:acme-support/contact.email"].attrs["custom"] is False
    assert nodes["IntercomAttribute:acme-support/contact.plan_tier"].attrs["options"] == 2
    assert ex.edges == []
    (link,) = ex.links
    assert (link.platform_key, link.sf_object, link.sf_field, link.org) == (
        sf.key, "Account", "Account.Id", "acme-prod")
    assert ex.aggregates["attributes"] == {"count": 14, "custom": 5,
                                           "by_model": {"company": 5, "contact": 7, "conversation": 2}}


def test_aggregates_are_the_right_numbers(fake, ws):
    ex = extract_intercom(cfg_for(fake))
    agg = ex.aggregates
    assert agg["contacts"] == {"count": 320, "by_role": dict(Counter(c["role"] for c in ws.contacts))}
    assert agg["companies"] == {"count": 40, "read_by": "page"}
    conv = agg["conversations"]
    assert conv["count"] == 170 and conv["by_state"] == dict(Counter(c["state"] for c in ws.conversations))
    weeks = Counter("{}-W{:02d}".format(*dt.datetime.fromtimestamp(c["created_at"], dt.timezone.utc).isocalendar()[:2])
                    for c in ws.conversations)
    assert conv["by_week"] == dict(sorted(weeks.items())) and "2024-W01" in conv["by_week"]
    tag_use = Counter(t["name"] for c in ws.conversations for t in c["tags"]["tags"])
    assert agg["tags"]["conversations_by_tag"] == {**{t["name"]: 0 for t in ws.tags}, **tag_use}
    assert agg["tags"]["conversations_by_tag"]["unused-tag"] == 0 and agg["tags"]["count"] == 5
    assert agg["tags"]["untagged_conversations"] == sum(1 for c in ws.conversations if not c["tags"]["tags"])
    values = [c["custom_attributes"].get("salesforce_id") for c in ws.companies]
    present = [v for v in values if v]
    link = agg["salesforce_link"]
    assert (link["records"], link["with_value"], link["without_value"]) == (40, len(present), 40 - len(present))
    assert link["valid_ids"] == sum(1 for v in present if looks_like_sf_id(v, "001")) > 0
    assert link["invalid_ids"] > 0 and any("do not look like Account ids" in f for f in ex.findings)


def test_paging_headers_and_stats(fake):
    ex = extract_intercom(cfg_for(fake))
    assert all(r["auth_ok"] and r["version"] == "2.11" for r in fake.requests)
    contacts = [r["query"] for r in fake.requests if r["path"] == "/contacts"]
    assert [q.get("starting_after") is None for q in contacts] == [True, False, False]
    assert {q["per_page"] for q in contacts} == {"150"}
    assert [r["query"] for r in fake.requests if r["path"] == "/companies"] == [{"page": "1", "per_page": "50"}]
    assert ex.stats["pages"] == {"companies": 1, "contacts": 3, "conversations": 2, "data_attributes": 3, "tags": 1}
    assert ex.stats["calls"] == len(fake.requests) == 10


def test_api_version_and_link_options(fake, ws):
    for i, c in enumerate(ws.contacts):
        c["custom_attributes"]["sf_contact_id"] = "003Dn0000001XaQ" if i % 4 == 0 else ""
    ex = extract_intercom(cfg_for(fake, options={
        "api_version": "2.9", "salesforce_link": {"model": "contact", "attribute": "sf_contact_id",
                                                  "sf_field": "Contact.Id"}}))
    assert {r["version"] for r in fake.requests} == {"2.9"}
    (link,) = ex.links
    assert link.platform_key == "IntercomAttribute:acme-support/contact.sf_contact_id"
    assert (link.sf_object, link.sf_field) == ("Contact", "Contact.Id")
    node = next(n for n in ex.nodes if n.key == link.platform_key)
    assert node.attrs["seen"] is False  # not a declared data attribute in the fixture
    assert any("not among the workspace's data attributes" in f for f in ex.findings)
    agg = ex.aggregates["salesforce_link"]
    assert (agg["records"], agg["with_value"], agg["valid_ids"]) == (320, 80, 80)


def test_companies_beyond_the_page_limit_are_scrolled(ws):
    # the fake pages only the first 15 companies (Intercom: 10,000); total_count tells at once
    with FakeIntercom(ws, company_page_limit=15, scroll_size=15) as fake:
        ex = extract_intercom(cfg_for(fake, options={"companies_per_page": 5, "company_page_limit": 15}))
    assert ex.aggregates["companies"] == {"count": 40, "read_by": "scroll"}
    scroll = [r for r in fake.requests if r["path"] == "/companies/scroll"]
    assert len(scroll) == 4 and "scroll_param" not in scroll[0]["query"]
    assert all(r["query"]["scroll_param"] == "sc000000000000000000000000000001" for r in scroll[1:])
    assert ex.aggregates["salesforce_link"]["records"] == 40
    assert all(r["status"] == 200 for r in fake.requests)


def test_scroll_switch_without_total_count_deduplicates(ws):
    with FakeIntercom(ws, company_page_limit=15, scroll_size=7, company_total_count=False) as fake:
        ex = extract_intercom(cfg_for(fake, options={"companies_per_page": 5, "company_page_limit": 15}))
    pages = [r["query"]["page"] for r in fake.requests if r["path"] == "/companies"]
    assert pages == ["1", "2", "3"]  # page 4 would be beyond the limit: switch to scroll
    assert ex.aggregates["companies"]["count"] == 40  # the 15 paged companies are not counted twice
    assert ex.aggregates["salesforce_link"]["records"] == 40
    assert ex.stats["pages"]["companies_scroll"] == 7  # 6 data pages + the empty one


def test_naive_paging_beyond_the_limit_is_refused_by_the_fake(ws):
    # guard for the fake itself: asking for page numbers past the limit is a 400 (as on Intercom)
    with FakeIntercom(ws, company_page_limit=15) as fake:
        with pytest.raises(PlatformError, match="HTTP 400: page limit reached"):
            extract_intercom(cfg_for(fake, options={"companies_per_page": 5, "company_page_limit": 1000}))


def test_auth_failure_names_the_call_not_the_token(fake, monkeypatch):
    monkeypatch.setenv(ENV, "WRONGSECRET-token-1234")
    with pytest.raises(PlatformError) as err:
        extract_intercom(cfg_for(fake))
    text = str(err.value)
    assert "401" in text and "GET /data_attributes" in text and "acme-support" in text
    assert "WRONGSECRET" not in text and FAKE_INTERCOM_TOKEN not in text


def test_missing_token_env_is_a_config_error(fake, monkeypatch):
    monkeypatch.delenv(ENV)
    with pytest.raises(PlatformConfigError, match=ENV):
        extract_intercom(cfg_for(fake))


def test_rate_limited_then_success_honours_reset(fake):
    fake.fail("429", times=2, path_contains="/conversations")
    sleeps: list[float] = []
    cfg = cfg_for(fake, retry_base_delay=30.0)  # would be a long wait if X-RateLimit-Reset were ignored
    with PlatformHttp(cfg, sleep=sleeps.append) as http:
        ex = extract_intercom(cfg, http=http)
    assert ex.aggregates["conversations"]["count"] == 170
    assert ex.stats["rate_limited"] == 2 and ex.stats["retries"] == 2
    assert len(sleeps) == 2 and all(s <= 1.0 for s in sleeps)


def test_server_errors_are_retried(fake):
    fake.fail("500", times=1, path_contains="/tags")
    sleeps: list[float] = []
    cfg = cfg_for(fake)
    # Intercom sends X-RateLimit-Reset on every response; the shared layer also honours it
    # after a 5xx (a wait until the window resets), so the test records sleeps instead
    with PlatformHttp(cfg, sleep=sleeps.append) as http:
        ex = extract_intercom(cfg, http=http)
    assert ex.stats["retries"] == 1 and len(sleeps) == 1 and ex.aggregates["tags"]["count"] == 5


def test_truncated_page_once_is_retried(fake):
    fake.fail("truncate", times=1, path_contains="/contacts")
    ex = extract_intercom(cfg_for(fake))
    assert ex.stats["retries"] == 1
    assert ex.aggregates == extract_intercom(cfg_for(fake)).aggregates


def test_truncated_page_every_time_is_a_clear_error(fake):
    fake.fail("truncate", times=10, path_contains="/contacts")
    with pytest.raises(PlatformError) as err:
        extract_intercom(cfg_for(fake))
    assert "GET /contacts" in str(err.value) and "not valid JSON" in str(err.value)


def test_unexpected_shape_is_a_clear_error(tmp_path):
    (tmp_path / RECORDED_FILE).write_text(json.dumps({"GET /data_attributes?model=contact": {"items": []}}))
    with pytest.raises(PlatformError, match="no 'data' array"):
        extract_intercom(PlatformConfig(name="odd", kind="intercom", export=tmp_path))


def test_demo_export():
    cfg = PlatformConfig(name="acme-intercom", kind="intercom", org="acme-prod", export=EXPORT)
    ex = extract_intercom(cfg)  # no token needed for recorded responses
    assert ex.stats["calls"] == len(json.loads((EXPORT / RECORDED_FILE).read_text()))
    assert ex.stats["pages"]["contacts"] >= 2
    agg = ex.aggregates
    assert agg["contacts"]["by_role"]["user"] > 0 and agg["contacts"]["by_role"]["lead"] > 0
    assert agg["companies"]["count"] > 0 and agg["conversations"]["count"] > 0
    assert sum(agg["tags"]["conversations_by_tag"].values()) > 0
    link = agg["salesforce_link"]
    assert link["valid_ids"] > 0 and link["invalid_ids"] > 0 and link["without_value"] > 0
    assert ex.links[0].platform_key == "IntercomAttribute:acme-intercom/company.salesforce_id"
    assert ex.links[0].org == "acme-prod"


def test_link_on_a_standard_company_attribute(fake):
    ex = extract_intercom(cfg_for(fake, options={"salesforce_link": {"attribute": "company_id"}}))
    assert ex.links[0].platform_key == "IntercomAttribute:acme-support/company.company_id"
    agg = ex.aggregates["salesforce_link"]
    assert (agg["records"], agg["with_value"], agg["valid_ids"]) == (40, 40, 0)  # acme-co-N keys
