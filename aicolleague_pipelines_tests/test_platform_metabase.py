"""Metabase connector: SQL lineage, MBQL (legacy and 5), the loopback fake, the demo export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph.model import CHILD_OF, LOOKUP_TO, QUERIES, SHOWS
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.metabase import (
    _MbqlRefs,
    _walk_mbql,
    extract_metabase,
    sf_case,
)
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract
from aicolleague_pipelines.lib.platforms.sql_lineage import (
    analyze_sql,
    columns_read,
    dialect_for_engine,
)
from aicolleague_pipelines_tests.fakes.metabase import (
    DEMO_EXPORT,
    FAKE_API_KEY,
    FAKE_PASSWORD,
    FAKE_USERNAME,
    FakeMetabase,
    Shapes,
    demo_instance,
)

SCHEMA = {
    "salesforce": {
        "account": ["id", "name", "industry", "region__c"],
        "opportunity": ["id", "accountid", "amount", "stagename"],
        "program__c": ["id", "account__c", "status__c"],
    },
    "analytics": {"Revenue Daily": ["Day", "Revenue"], "account": ["id", "score"]},
}
INST = "mb"
C = f"WarehouseColumn:{INST}/Warehouse.salesforce"  # column key prefix in the fake
T = f"WarehouseTable:{INST}/Warehouse.salesforce"


def card(n: int) -> str:
    return f"MetabaseCard:{INST}/{n}"


# -- SQL lineage -------------------------------------------------------------------------------


def test_sql_joins_and_aliases() -> None:
    sql = """SELECT a.industry, SUM(o.amount) AS total
             FROM salesforce.account a JOIN salesforce.opportunity AS o ON o.accountid = a.id
             WHERE stagename = 'Closed Won' GROUP BY 1 ORDER BY total DESC"""
    assert columns_read(sql, "postgres", SCHEMA) == {
        ("salesforce", "account", "industry"), ("salesforce", "account", "id"),
        ("salesforce", "opportunity", "amount"), ("salesforce", "opportunity", "accountid"),
        ("salesforce", "opportunity", "stagename"),  # unqualified, resolved through the schema
    }
    res = analyze_sql(sql, "postgres", SCHEMA)
    assert res.tables == {("salesforce", "account"), ("salesforce", "opportunity")}
    assert res.unresolved == set() and res.error is None  # ORDER BY total is an alias


def test_sql_ctes_traced_to_base_tables() -> None:
    explicit = """WITH active AS (SELECT p.account__c, p.status__c FROM salesforce.program__c p
                                  WHERE p.status__c = 'Active')
                  SELECT acc.name FROM active x JOIN salesforce.account acc ON acc.id = x.account__c"""
    assert columns_read(explicit, "postgres", SCHEMA) == {
        ("salesforce", "program__c", "account__c"), ("salesforce", "program__c", "status__c"),
        ("salesforce", "account", "name"), ("salesforce", "account", "id"),
    }
    # SELECT * inside a CTE: only the columns the outer query uses (plus the CTE's own filter).
    star = """WITH big AS (SELECT * FROM salesforce.opportunity WHERE amount > 1000)
              SELECT stagename FROM big"""
    assert columns_read(star, "postgres", SCHEMA) == {
        ("salesforce", "opportunity", "amount"), ("salesforce", "opportunity", "stagename"),
    }


def test_sql_subqueries_derived_and_correlated() -> None:
    sql = """SELECT t.stagename FROM (SELECT stagename, amount FROM salesforce.opportunity) t
             WHERE EXISTS (SELECT 1 FROM salesforce.account a
                           WHERE a.industry = 'Tech' AND a.id IN (SELECT account__c
                                                                  FROM salesforce.program__c))"""
    assert columns_read(sql, "postgres", SCHEMA) == {
        ("salesforce", "opportunity", "stagename"), ("salesforce", "opportunity", "amount"),
        ("salesforce", "account", "industry"), ("salesforce", "account", "id"),
        ("salesforce", "program__c", "account__c"),
    }


def test_sql_quoted_identifiers_keep_schema_spelling() -> None:
    sql = 'SELECT "Day", r."Revenue" FROM analytics."Revenue Daily" r WHERE "Day" > now()'
    assert columns_read(sql, "postgres", SCHEMA) == {
        ("analytics", "Revenue Daily", "Day"), ("analytics", "Revenue Daily", "Revenue"),
    }
    # Upper-case Snowflake spelling still matches the lower-case metadata.
    assert columns_read('SELECT INDUSTRY FROM SALESFORCE."ACCOUNT"', "snowflake", SCHEMA) == {
        ("salesforce", "account", "industry")}
    # BigQuery back-ticks.
    assert columns_read("SELECT a.amount FROM `salesforce.opportunity` a", "bigquery", SCHEMA) == {
        ("salesforce", "opportunity", "amount")}


def test_sql_select_star_expanded_from_schema() -> None:
    assert columns_read("SELECT * FROM salesforce.account", "postgres", SCHEMA) == {
        ("salesforce", "account", c) for c in ("id", "name", "industry", "region__c")}
    assert columns_read("SELECT a.*, o.amount FROM salesforce.account a JOIN "
                        "salesforce.opportunity o ON o.accountid = a.id", "postgres", SCHEMA) == {
        *{("salesforce", "account", c) for c in ("id", "name", "industry", "region__c")},
        ("salesforce", "opportunity", "amount"), ("salesforce", "opportunity", "accountid")}


def test_sql_metabase_template_tags() -> None:
    sql = """SELECT industry FROM salesforce.account
             WHERE {{tier_filter}} [[AND region__c = {{region}}]] [[AND name LIKE '%{{q}}%']]"""
    assert columns_read(sql, "postgres", SCHEMA) == {
        ("salesforce", "account", c) for c in ("industry", "region__c", "name")}
    # An optional clause that does not parse when kept is dropped instead.
    odd = "SELECT industry FROM salesforce.account [[WHERE region__c = {{r}}]] [[WHERE id = {{i}}]]"
    assert ("salesforce", "account", "industry") in columns_read(odd, "postgres", SCHEMA)
    # Card references and snippets.
    res = analyze_sql("SELECT m.x, a.industry FROM {{#12-my-model}} m JOIN salesforce.account a "
                      "ON a.id = m.account_id WHERE {{snippet: only tech}}", "postgres", SCHEMA,
                      snippets={"only tech": "a.industry = 'Tech'"})
    assert res.error is None and res.card_refs == {12} and res.snippets == {"only tech"}
    assert res.columns == {("salesforce", "account", "industry"), ("salesforce", "account", "id")}
    assert res.tables == {("salesforce", "account")}


def test_sql_unqualified_tables_and_unknowns() -> None:
    # `account` exists in two schemas: the default schema decides; otherwise it stays unknown.
    sql = "SELECT industry FROM account"
    assert analyze_sql(sql, "postgres", SCHEMA, default_schema="salesforce").columns == {
        ("salesforce", "account", "industry")}
    assert analyze_sql(sql, "postgres", SCHEMA).columns == {(None, "account", "industry")}
    # `opportunity` is unique: resolved without a default.
    assert columns_read("SELECT amount FROM opportunity", "postgres", SCHEMA) == {
        ("salesforce", "opportunity", "amount")}
    res = analyze_sql("SELECT foo, industry FROM nowhere n JOIN salesforce.account a ON a.id = n.x",
                      "postgres", SCHEMA)
    assert ("salesforce", "account", "industry") in res.columns
    assert (None, "nowhere", "x") in res.columns and res.unresolved == {"foo"}


@pytest.mark.parametrize("sql", ["SELECT FROM WHERE oops (((", "SELEC broken", "", "show tables",
                                 "SELECT a FROM t WHERE x = 'unterminated"])
def test_sql_unparsable_is_reported_not_raised(sql: str) -> None:
    res = analyze_sql(sql, "postgres", SCHEMA)
    assert res.error and res.columns == set()
    assert columns_read(sql, "postgres", SCHEMA) == set()


def test_dialect_for_engine() -> None:
    assert dialect_for_engine("postgres") == "postgres"
    assert dialect_for_engine("bigquery-cloud-sdk") == "bigquery"
    assert dialect_for_engine("sqlserver") == "tsql"
    assert dialect_for_engine("snowflake") == "snowflake"
    assert dialect_for_engine("something-new") is None


# -- MBQL ----------------------------------------------------------------------------------------


def test_mbql_legacy_shapes() -> None:
    refs = _MbqlRefs()
    _walk_mbql({"type": "query", "database": 1, "query": {
        "source-query": {"source-table": 5, "filter": ["=", ["field-id", 11], "x"]},
        "aggregation": [["sum", ["fk->", ["field-id", 12], ["field-id", 40]]]],
        "breakout": [["datetime-field", ["joined-field", "P", ["field-id", 41]], "month"],
                     ["field", 13, {"source-field": 12}]],
        "joins": [{"alias": "P", "source-table": "card__7", "condition": ["=", ["field", 14, None],
                                                                          ["field", "x", None]]}],
    }}, refs)
    assert refs.tables == {5} and refs.cards == {7}
    assert refs.fields == {11, 12, 13, 14, 40, 41} and refs.names == {"x"}


def test_mbql5_shapes() -> None:
    refs = _MbqlRefs()
    _walk_mbql({"lib/type": "mbql/query", "database": 1, "stages": [
        {"lib/type": "mbql.stage/mbql", "source-table": 5,
         "aggregation": [["sum", {"lib/uuid": "u1"}, ["field", {"lib/uuid": "u2",
                                                                "base-type": "type/Float"}, 21]]],
         "breakout": [["field", {"lib/uuid": "u3", "source-field": 22}, 23]],
         "joins": [{"lib/type": "mbql/join", "alias": "J",
                    "stages": [{"lib/type": "mbql.stage/mbql", "source-card": 9}],
                    "conditions": [["=", {"lib/uuid": "u4"}, ["field", {"lib/uuid": "u5"}, 24],
                                    ["field", {"lib/uuid": "u6", "join-alias": "J"}, "acct"]]]}]},
        {"lib/type": "mbql.stage/mbql", "filters": [[">", {"lib/uuid": "u7"},
                                                    ["metric", {"lib/uuid": "u8"}, 30], 5]]},
    ]}, refs)
    assert refs.tables == {5} and refs.cards == {9} and refs.metrics == {30}
    assert refs.fields == {21, 22, 23, 24} and refs.names == {"acct"}


# -- end to end through the fake -------------------------------------------------------------------


def _cfg(fake: FakeMetabase, auth: dict[str, str], **kw: object) -> PlatformConfig:
    return PlatformConfig(name=INST, kind="metabase", org="acme-prod", base_url=fake.url, auth=auth,
                          retry_attempts=4, retry_base_delay=0.001, **kw)  # type: ignore[arg-type]


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MB_TEST_KEY", FAKE_API_KEY)
    monkeypatch.setenv("MB_TEST_USER", FAKE_USERNAME)
    monkeypatch.setenv("MB_TEST_PASSWORD", FAKE_PASSWORD)
    return {"api_key_env": "MB_TEST_KEY"}


def edge_set(ex: PlatformExtract) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in ex.edges}


def test_extract_with_api_key(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        ex = extract_metabase(_cfg(fake, key_env))
        assert fake.calls("POST", "/api/session") == 0
    edges = edge_set(ex)
    keys = {n.key for n in ex.nodes}
    assert {"MetabaseDatabase:mb/Warehouse", f"{T}.account", f"{C}.account.industry",
            card(1), "MetabaseDashboard:mb/1"} <= keys
    # structure
    assert (f"{T}.account", "MetabaseDatabase:mb/Warehouse", CHILD_OF) in edges
    assert (f"{C}.account.industry", f"{T}.account", CHILD_OF) in edges
    assert (f"{C}.opportunity.accountid", f"{C}.account.id", LOOKUP_TO) in edges
    # native SQL with join, alias and an optional clause
    assert {(card(1), f"{C}.account.industry", QUERIES), (card(1), f"{C}.opportunity.amount", QUERIES),
            (card(1), f"{C}.account.region__c", QUERIES), (card(1), f"{T}.opportunity", QUERIES)} <= edges
    # CTE + field filter (template tag dimension) + another schema
    assert {(card(2), f"{C}.program__c.status__c", QUERIES),
            (card(2), f"{C}.account.customer_tier__c", QUERIES),
            (card(2), "WarehouseColumn:mb/Warehouse.analytics.account_health.health_score", QUERIES),
            } <= edges
    # quoted names
    assert (card(3), "WarehouseColumn:mb/Warehouse.analytics.Revenue Daily.Revenue", QUERIES) in edges
    # MBQL: implicit join through the FK (source-field), explicit join, card on a model
    assert {(card(4), f"{C}.opportunity.amount", QUERIES), (card(4), f"{C}.account.industry", QUERIES),
            (card(4), f"{C}.opportunity.accountid", QUERIES)} <= edges
    assert {(card(5), f"{C}.program__c.budget__c", QUERIES),
            (card(5), f"{C}.program__c.account__c", QUERIES)} <= edges
    assert (card(6), card(5), QUERIES) in edges
    assert (card(8), card(5), QUERIES) in edges  # {{#5-...}} in native SQL
    # dashboards: cards, series, filters wired to columns; text cards ignored
    assert {("MetabaseDashboard:mb/1", card(1), SHOWS), ("MetabaseDashboard:mb/1", card(4), SHOWS),
            ("MetabaseDashboard:mb/1", card(7), SHOWS), ("MetabaseDashboard:mb/2", card(8), SHOWS),
            ("MetabaseDashboard:mb/1", f"{C}.account.region__c", QUERIES)} <= edges
    assert not any(s.startswith("MetabaseDashboard") and t == card(2) for s, t, _ in edges
                   if s.endswith("/1"))
    nodes = {n.key: n for n in ex.nodes}
    assert nodes[card(5)].attrs["card_type"] == "model"
    assert nodes[card(7)].attrs["card_type"] == "metric"
    assert nodes[card(1)].attrs["collection"] == "Sales"
    assert nodes[card(9)].attrs["collection"] == "(personal collection)"
    assert ex.aggregates["cards_by_type"] == {"question": 7, "model": 1, "metric": 1}
    assert ex.aggregates["dashboards"] == 2 and ex.aggregates["dashcards"] == 7
    assert (ex.aggregates["databases"], ex.aggregates["tables"], ex.aggregates["columns"]) == (1, 6, 28)
    assert ex.aggregates["cards_unparsed"] == 1
    assert ex.stats["calls"] == 8 and ex.stats["retries"] == 0 and "duration_s" in ex.stats
    # the broken card is a finding, not a crash
    assert any(f.startswith("card 9: native SQL not parsed") for f in ex.findings)
    assert nodes[card(9)].attrs["parse_error"]
    assert all(e.evidence.startswith("metabase:") for e in ex.edges)


def test_no_personal_data_or_secrets_in_extract(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        ex = extract_metabase(_cfg(fake, key_env))
    text = json.dumps(dataclasses.asdict(ex))
    for needle in ("@", "Jane", "Analyst", "FAKESECRET", "warehouse.internal", "SELECT"):
        assert needle not in text, needle


def test_session_auth_gives_the_same_extract(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        by_key = extract_metabase(_cfg(fake, key_env))
        by_session = extract_metabase(_cfg(fake, {"username_env": "MB_TEST_USER",
                                                  "password_env": "MB_TEST_PASSWORD"}))
        assert fake.calls("POST", "/api/session") == 1
    assert edge_set(by_session) == edge_set(by_key)
    assert by_session.links == by_key.links and by_session.stats["calls"] == 9


@pytest.mark.parametrize("version", [(0, 39), (0, 57)])
def test_old_and_mbql5_versions_give_the_same_lineage(key_env: dict[str, str],
                                                      version: tuple[int, int]) -> None:
    with FakeMetabase() as modern:
        base = extract_metabase(_cfg(modern, key_env))
    with FakeMetabase(version=version) as fake:
        ex = extract_metabase(_cfg(fake, key_env))
        raw = Shapes(fake.data, version)
        if version < (0, 48):
            assert "ordered_cards" in raw.get("/api/dashboard/1", {})[1]
            assert isinstance(raw.get("/api/database", {})[1], list)
        else:
            assert "stages" in raw.get("/api/card", {})[1][3]["dataset_query"]
    assert edge_set(ex) == edge_set(base)
    assert ex.aggregates["cards_by_type"]["model"] == 1


def test_bad_api_key_is_a_clear_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_KEY", "mb_FAKESECRET-wrong-key")
    with FakeMetabase() as fake, pytest.raises(PlatformError) as err:
        extract_metabase(_cfg(fake, {"api_key_env": "MB_TEST_KEY"}))
    msg = str(err.value)
    assert "'mb'" in msg and "GET /api/database" in msg and "HTTP 401" in msg
    assert "credentials" in msg and "FAKESECRET" not in msg


def test_bad_password_and_missing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_USER", FAKE_USERNAME)
    monkeypatch.setenv("MB_TEST_PASSWORD", "FAKESECRET-not-it")
    auth = {"username_env": "MB_TEST_USER", "password_env": "MB_TEST_PASSWORD"}
    with FakeMetabase() as fake:
        with pytest.raises(PlatformError) as err:
            extract_metabase(_cfg(fake, auth))
        assert "POST /api/session" in str(err.value) and "FAKESECRET" not in str(err.value)
        monkeypatch.delenv("MB_TEST_PASSWORD")
        with pytest.raises(PlatformError, match="MB_TEST_PASSWORD"):
            extract_metabase(_cfg(fake, auth))
        with pytest.raises(PlatformError, match="no Metabase credentials"):
            extract_metabase(_cfg(fake, {}))


def test_rate_limit_is_retried_honouring_retry_after(key_env: dict[str, str]) -> None:
    slept: list[float] = []
    with FakeMetabase() as fake:
        fake.rate_limit("/api/card", times=2, retry_after="1.5")
        cfg = _cfg(fake, key_env)
        with PlatformHttp(cfg, sleep=slept.append) as http:
            ex = extract_metabase(cfg, http=http)
    assert slept == [1.5, 1.5]
    assert ex.stats["retries"] == 2 and ex.stats["rate_limited"] == 2 and ex.stats["calls"] == 10
    assert ex.aggregates["cards"] == 9


def test_rate_limit_exhausted_is_a_clear_error(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        fake.rate_limit("/api/dashboard", times=10, retry_after="0")
        with pytest.raises(PlatformError, match=r"GET /api/dashboard: HTTP 429 after 4 attempts"):
            extract_metabase(_cfg(fake, key_env))


def test_malformed_page_once_is_retried(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        clean = extract_metabase(_cfg(fake, key_env))
        fake.malformed("/api/dashboard/2")
        again = extract_metabase(_cfg(fake, key_env))
    assert again.stats["retries"] == 1
    assert len(again.nodes) == len(clean.nodes) and len(again.links) == len(clean.links)


def test_malformed_page_every_time_is_a_clear_error(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        fake.malformed("/api/dashboard/2", times=10)
        with pytest.raises(PlatformError) as err:
            extract_metabase(_cfg(fake, key_env))
    assert "GET /api/dashboard/2" in str(err.value) and "not valid JSON" in str(err.value)


# -- Salesforce links --------------------------------------------------------------------------------


def test_sf_case() -> None:
    assert sf_case("account") == "Account" and sf_case("industry") == "Industry"
    assert sf_case("program__c") == "Program__c" and sf_case("account__c") == "Account__c"
    assert sf_case("annual_contract_value__c") == "Annual_Contract_Value__c"
    assert sf_case("acme__widget__c") == "Acme__Widget__c"
    assert sf_case("ACCOUNT") == "Account" and sf_case("StageName") == "StageName"


def test_default_mapping_links_salesforce_schema(key_env: dict[str, str]) -> None:
    with FakeMetabase() as fake:
        ex = extract_metabase(_cfg(fake, key_env))
    links = {(lk.platform_key, lk.sf_field or lk.sf_object) for lk in ex.links}
    assert (f"{C}.account.industry", "Account.Industry") in links
    assert (f"{C}.program__c.account__c", "Program__c.Account__c") in links
    assert (f"{T}.program__c", "Program__c") in links
    assert not any("_fivetran" in k or "analytics" in k for k, _ in links)
    assert {lk.org for lk in ex.links} == {"acme-prod"}
    ind = next(lk for lk in ex.links if lk.platform_key == f"{C}.account.industry")
    assert ind.sf_object == "Account" and "default mapping" in ind.evidence


def test_custom_mapping_rules(key_env: dict[str, str]) -> None:
    rules = [{"schema": "analytics", "table_pattern": r"account_(?P<what>health)",
              "object": "Account_{what}__c",
              "column_map": {"account_id": "Account__c", "computed_at": None}},
             {"schema": "salesforce", "table_pattern": "opportunity", "object": "Opportunity",
              "column_map": {"stagename": "StageName", "accountid": "Opportunity.AccountId"}}]
    with FakeMetabase() as fake:
        ex = extract_metabase(_cfg(fake, key_env, options={"salesforce_mapping": rules}))
        off = extract_metabase(_cfg(fake, key_env, options={"salesforce_mapping": []}))
        with pytest.raises(PlatformError, match="invalid regex"):
            extract_metabase(_cfg(fake, key_env, options={"salesforce_mapping": [
                {"schema": "x", "table_pattern": "("}]}))
    links = {(lk.platform_key, lk.sf_field) for lk in ex.links}
    hk = "WarehouseColumn:mb/Warehouse.analytics.account_health"
    assert (f"{hk}.account_id", "Account_Health__c.Account__c") in links
    assert (f"{hk}.health_score", "Account_Health__c.Health_Score") in links
    assert not any(k == f"{hk}.computed_at" for k, _ in links)
    assert (f"{C}.opportunity.stagename", "Opportunity.StageName") in links
    assert (f"{C}.opportunity.accountid", "Opportunity.AccountId") in links
    assert not any("salesforce.account" in k for k, _ in links)  # only the listed rules apply
    assert off.links == []


# -- the demo export ------------------------------------------------------------------------------


def _demo_cfg() -> PlatformConfig:
    return PlatformConfig(name="acme-metabase-demo", kind="metabase", org="acme-prod",
                          export=DEMO_EXPORT)


def test_demo_export_is_current() -> None:
    recorded = json.loads((DEMO_EXPORT / "responses.json").read_text(encoding="utf-8"))
    assert recorded == json.loads(json.dumps(Shapes(demo_instance(), (0, 50)).recorded())), (
        "regenerate: python -m aicolleague_pipelines_tests.fakes.metabase --write-demo")


def test_demo_export_matches_a_live_extract(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = extract_metabase(_demo_cfg())
    monkeypatch.setenv("MB_TEST_KEY", FAKE_API_KEY)
    with FakeMetabase(demo_instance()) as fake:
        live = extract_metabase(dataclasses.replace(
            _demo_cfg(), export=None, base_url=fake.url, auth={"api_key_env": "MB_TEST_KEY"}))
    assert recorded.nodes == live.nodes and recorded.edges == live.edges
    assert recorded.links == live.links and recorded.aggregates == live.aggregates
    assert recorded.findings == [] and recorded.stats["calls"] == live.stats["calls"] == 7

    db = "WarehouseColumn:acme-metabase-demo/Acme Warehouse.salesforce"
    edges = edge_set(recorded)
    native_industry = [s for s, t, k in edges if t == f"{db}.account.industry" and k == QUERIES]
    assert "MetabaseCard:acme-metabase-demo/101" in native_industry
    assert ("MetabaseCard:acme-metabase-demo/102", f"{db}.opportunity.amount", QUERIES) in edges
    assert ("MetabaseCard:acme-metabase-demo/107", "MetabaseCard:acme-metabase-demo/106",
            QUERIES) in edges
    links = {(lk.platform_key, lk.sf_field) for lk in recorded.links}
    for col, field in [("account.industry", "Account.Industry"),
                       ("account.customer_tier__c", "Account.Customer_Tier__c"),
                       ("opportunity.services_type__c", "Opportunity.Services_Type__c"),
                       ("invoice__c.status__c", "Invoice__c.Status__c"),
                       ("servicedelivery__c.hours__c", "Servicedelivery__c.Hours__c")]:
        assert (f"{db}.{col}", field) in links
    assert recorded.aggregates["cards"] >= 6 and recorded.aggregates["dashboards"] == 2
    assert "@" not in json.dumps(dataclasses.asdict(recorded))


def test_demo_export_through_the_platforms_file(tmp_path: Path) -> None:
    from aicolleague_pipelines.lib.platforms.config import load_platforms
    from aicolleague_pipelines.lib.platforms.extract import extract_platform

    f = tmp_path / "platforms.yaml"
    f.write_text(f"platforms:\n  - name: acme-metabase-demo\n    kind: metabase\n"
                 f"    org: acme-prod\n    export: {DEMO_EXPORT}\n")
    ex = extract_platform(load_platforms(f)[0])
    assert ex.platform == "metabase" and ex.instance == "acme-metabase-demo"
    assert ex.aggregates["cards_by_type"] == {"question": 7, "model": 1, "metric": 1}
