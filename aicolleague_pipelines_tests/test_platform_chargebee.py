"""Chargebee extract against a loopback fake site and against the bundled demo export."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph.model import CHILD_OF
from aicolleague_pipelines.lib.platforms.chargebee import extract_chargebee, looks_like_sf_id, sf_id_checksum
from aicolleague_pipelines.lib.platforms.config import PlatformConfig, PlatformConfigError
from aicolleague_pipelines.lib.platforms.http import RECORDED_FILE, PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError
from aicolleague_pipelines_tests.fakes.chargebee import (
    FAKE_CHARGEBEE_KEY,
    FakeChargebee,
    build_site,
    expected_sub_mrr,
)

EXPORT = Path(__file__).resolve().parents[1] / "aicolleague_pipelines" / "demo" / "exports" / "chargebee"
ENV = "CB_TEST_API_KEY"


@pytest.fixture
def site():
    return build_site(230)  # 3 pages of customers and of subscriptions at limit=100


@pytest.fixture
def fake(site):
    with FakeChargebee(site) as f:
        yield f


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(ENV, FAKE_CHARGEBEE_KEY)


def cfg_for(fake: FakeChargebee, **kw) -> PlatformConfig:
    base = dict(name="acme-billing", kind="chargebee", org="acme-prod", base_url=fake.base_url,
                auth={"api_key_env": ENV}, retry_attempts=4, retry_base_delay=0.001)
    base.update(kw)
    return PlatformConfig(**base)


def test_catalogue_nodes_edges_and_custom_fields(fake, site):
    ex = extract_chargebee(cfg_for(fake))
    assert (ex.platform, ex.instance) == ("chargebee", "acme-billing")
    keys = {n.key: n for n in ex.nodes}
    assert {k for k in keys if k.startswith("ChargebeeItem:")} == {
        f"ChargebeeItem:acme-billing/{i['id']}" for i in site.items}
    assert {k for k in keys if k.startswith("ChargebeeItemPrice:")} == {
        f"ChargebeeItemPrice:acme-billing/{p['id']}" for p in site.item_prices}
    growth = keys["ChargebeeItemPrice:acme-billing/growth-USD-Monthly"]
    assert growth.type == "ChargebeeItemPrice" and growth.name == "acme-billing/growth-USD-Monthly"
    assert growth.attrs["price"] == 9900 and growth.attrs["period_unit"] == "month"
    assert keys["ChargebeeItemPrice:acme-billing/priority-support-USD-Monthly"].attrs["tiers"] == 2
    assert keys["ChargebeeItem:acme-billing/extra-seats"].attrs["type"] == "addon"
    assert {(e.source, e.target, e.kind) for e in ex.edges} == {
        (f"ChargebeeItemPrice:acme-billing/{p['id']}", f"ChargebeeItem:acme-billing/{p['item_id']}", CHILD_OF)
        for p in site.item_prices}
    cf = {k.split("/", 1)[1]: n.attrs for k, n in keys.items() if k.startswith("ChargebeeCustomField:")}
    assert set(cf) == {"customer.cf_notes", "customer.cf_segment", "customer.cf_sf_account_id",
                       "subscription.cf_renewal_owner_note"}
    assert cf["customer.cf_sf_account_id"]["value_types"] == ["string"]
    assert cf["customer.cf_sf_account_id"]["salesforce_link"] == "Account.Id"
    assert cf["customer.cf_segment"]["records_with_value"] == 230
    assert ex.links and ex.links[0].platform_key == "ChargebeeCustomField:acme-billing/customer.cf_sf_account_id"
    assert (ex.links[0].sf_object, ex.links[0].sf_field, ex.links[0].org) == ("Account", "Account.Id", "acme-prod")
    assert ex.links[0].platform_key in keys


def test_aggregates_are_the_right_numbers(fake, site):
    ex = extract_chargebee(cfg_for(fake))
    agg = ex.aggregates
    assert agg["customers"]["count"] == 230
    countries = Counter((c.get("billing_address") or {}).get("country") or "(none)" for c in site.customers)
    assert agg["customers"]["by_country"] == dict(countries)
    assert agg["subscriptions"]["count"] == 230
    assert agg["subscriptions"]["by_status"] == dict(Counter(s["status"] for s in site.subscriptions))
    prices = {p["id"]: p for p in site.item_prices}
    want: Counter[str] = Counter()
    for s in site.subscriptions:
        if s["status"] in ("active", "non_renewing"):
            want[s["currency_code"]] += expected_sub_mrr(s, prices)
    assert agg["mrr"]["by_currency"] == dict(want)
    # the per-item-price split adds up to the total here (no discounts in the fixture)
    per_price: Counter[str] = Counter()
    for amounts in agg["mrr"]["by_item_price"].values():
        per_price.update(amounts)
    assert dict(per_price) == dict(want)
    assert "onboarding-USD" not in agg["mrr"]["by_item_price"]  # one-off charge, not recurring
    assert set(agg["mrr"]["by_item"]) == {"starter", "growth", "enterprise", "extra-seats"}
    link = agg["salesforce_link"]
    values = [c.get("cf_sf_account_id") for c in site.customers]
    present = [v for v in values if v]
    assert link["records"] == 230 and link["with_value"] == len(present)
    assert link["valid_ids"] == sum(1 for v in present if looks_like_sf_id(v, "001"))
    assert 0 < link["invalid_ids"] == len(present) - link["valid_ids"]
    assert link["without_value"] == 230 - len(present)
    assert any("do not look like Account ids" in f for f in ex.findings)


def test_paging_auth_and_stats(fake):
    ex = extract_chargebee(cfg_for(fake))
    cust = [r for r in fake.requests if r["path"] == "/api/v2/customers"]
    assert [r["query"].get("offset") is None for r in cust] == [True, False, False]
    assert all(r["query"]["limit"] == "100" and r["auth_ok"] for r in fake.requests)
    assert ex.stats["pages"] == {"items": 1, "item_prices": 1, "customers": 3, "subscriptions": 3}
    assert ex.stats["calls"] == 8 == len(fake.requests)
    assert ex.stats["retries"] == 0 and ex.stats["duration_s"] >= 0


def test_base_url_with_or_without_api_prefix_and_page_size(fake):
    host = fake.base_url.removesuffix("/api/v2")
    a = extract_chargebee(cfg_for(fake, base_url=host, options={"page_size": 50}))
    assert a.aggregates["customers"]["count"] == 230 and a.stats["pages"]["customers"] == 5
    assert {r["query"]["limit"] for r in fake.requests} == {"50"}


def test_auth_failure_names_the_call_not_the_key(fake, monkeypatch):
    monkeypatch.setenv(ENV, "test_WRONGSECRET-key-0000")
    with pytest.raises(PlatformError) as err:
        extract_chargebee(cfg_for(fake))
    text = str(err.value)
    assert "401" in text and "acme-billing" in text and "GET " in text and "/api/v2/items" in text
    assert "WRONGSECRET" not in text and FAKE_CHARGEBEE_KEY not in text


def test_missing_key_env_is_a_config_error(fake, monkeypatch):
    monkeypatch.delenv(ENV)
    with pytest.raises(PlatformConfigError, match=ENV):
        extract_chargebee(cfg_for(fake))


def test_rate_limited_then_success(fake):
    fake.fail("429", times=2, path_contains="subscriptions")
    sleeps: list[float] = []
    cfg = cfg_for(fake)
    with PlatformHttp(cfg, sleep=sleeps.append) as http:  # a caller-made client is used as is
        ex = extract_chargebee(cfg, http=http)
    assert ex.aggregates["subscriptions"]["count"] == 230
    assert ex.stats["rate_limited"] == 2 and ex.stats["retries"] == 2 and len(sleeps) == 2
    assert ex.stats["calls"] == 10


def test_rate_limited_too_long_gives_up(fake):
    fake.fail("429", times=10, path_contains="items")
    with pytest.raises(PlatformError, match="HTTP 429 after 4 attempts"):
        extract_chargebee(cfg_for(fake))


def test_truncated_page_once_is_retried(fake):
    fake.fail("truncate", times=1, path_contains="customers")
    ex = extract_chargebee(cfg_for(fake))
    assert ex.stats["retries"] == 1
    assert ex.aggregates == extract_chargebee(cfg_for(fake)).aggregates


def test_truncated_page_every_time_is_a_clear_error(fake):
    fake.fail("truncate", times=10, path_contains="customers")
    with pytest.raises(PlatformError) as err:
        extract_chargebee(cfg_for(fake))
    assert "/api/v2/customers" in str(err.value) and "not valid JSON" in str(err.value)


def test_not_a_chargebee_list_is_a_clear_error(tmp_path):
    (tmp_path / RECORDED_FILE).write_text(json.dumps({"GET /api/v2/items?limit=100": {"data": []}}))
    cfg = PlatformConfig(name="odd", kind="chargebee", export=tmp_path)
    with pytest.raises(PlatformError, match="no 'list' array"):
        extract_chargebee(cfg)


def test_custom_link_option_on_subscriptions(fake, site):
    for i, s in enumerate(site.subscriptions):
        s["cf_sf_contact"] = "003Dn0000001XaQ" if i % 2 else None  # 15-char Contact ids / nulls
    ex = extract_chargebee(cfg_for(fake, options={"salesforce_link": {"field": "cf_sf_contact",
                                                                      "entity": "subscription",
                                                                      "object": "Contact"}}))
    link = ex.links[0]
    assert link.platform_key == "ChargebeeCustomField:acme-billing/subscription.cf_sf_contact"
    assert (link.sf_object, link.sf_field) == ("Contact", "Contact.Id")
    node = next(n for n in ex.nodes if n.key == link.platform_key)
    assert node.attrs["value_types"] == ["null", "string"]
    agg = ex.aggregates["salesforce_link"]
    assert (agg["records"], agg["with_value"], agg["valid_ids"]) == (230, 115, 115)


def test_link_field_never_seen_is_a_finding(fake):
    ex = extract_chargebee(cfg_for(fake, options={"salesforce_link": {"field": "cf_salesforce"}}))
    node = next(n for n in ex.nodes if n.key == "ChargebeeCustomField:acme-billing/customer.cf_salesforce")
    assert node.attrs["seen"] is False and ex.links[0].platform_key == node.key
    assert ex.aggregates["salesforce_link"]["with_value"] == 0
    assert any("cf_salesforce was not seen" in f for f in ex.findings)


def test_salesforce_id_checks():
    id15 = "001Dn0000005Xaz"
    assert looks_like_sf_id(id15, "001") and looks_like_sf_id(id15 + sf_id_checksum(id15), "001")
    assert looks_like_sf_id(id15 + sf_id_checksum(id15).lower(), "001")  # suffix is case-insensitive
    assert not looks_like_sf_id(id15 + "AAA", "001")  # wrong checksum
    assert not looks_like_sf_id("003Dn0000005Xaz", "001")  # a Contact id
    assert not looks_like_sf_id("001Dn00000-5Xaz", "001") and not looks_like_sf_id(12345, None)
    assert not looks_like_sf_id("001Dn0000005Xa", "001")  # 14 chars


def test_demo_export():
    cfg = PlatformConfig(name="acme-chargebee", kind="chargebee", org="acme-prod", export=EXPORT)
    ex = extract_chargebee(cfg)  # no API key needed for recorded responses
    assert ex.stats["calls"] == len(json.loads((EXPORT / RECORDED_FILE).read_text()))
    assert ex.stats["pages"]["customers"] >= 2  # the export pages with next_offset
    plans = [n for n in ex.nodes if n.type == "ChargebeeItem" and n.attrs.get("type") == "plan"]
    assert len(plans) == 3
    assert ex.links[0].org == "acme-prod" and ex.links[0].sf_field == "Account.Id"
    link = ex.aggregates["salesforce_link"]
    assert link["valid_ids"] > 0 and link["invalid_ids"] > 0 and link["without_value"] > 0
    assert ex.aggregates["mrr"]["by_currency"]["USD"] > 0
    assert set(ex.aggregates["subscriptions"]["by_status"]) >= {"active", "cancelled", "in_trial"}
