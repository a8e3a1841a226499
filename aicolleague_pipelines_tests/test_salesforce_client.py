"""SalesforceClient against the loopback fake org (real simple-salesforce, real TLS)."""

from __future__ import annotations

import json
import logging

import pytest

from aicolleague_pipelines.lib.salesforce.client import (
    RetryPolicy,
    SalesforceAPIError,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceUnavailableError,
)
from aicolleague_pipelines.lib.salesforce.model import ExtractionError
from aicolleague_pipelines_tests.fakes.conftest_fixtures import (  # noqa: F401 - fixtures
    fake_salesforce,
    fake_salesforce_env,
    make_sf_client,
)
from aicolleague_pipelines_tests.fakes.salesforce import (
    FAKE_CLIENT_SECRET,
    FAKE_STATIC_TOKEN,
    sf_id,
)


def _assert_no_secret(fake, *texts: str) -> None:
    for text in texts:
        for secret in fake.secrets():
            assert secret not in text, f"a secret leaked into: {text[:200]}"


def _token_requests(fake) -> int:
    return sum(1 for r in fake.requests if r.path == "/services/oauth2/token")


@pytest.mark.parametrize("kind", ["access_token", "client_credentials", "jwt", "password"])
def test_each_auth_kind_reaches_the_org(make_sf_client, fake_salesforce, kind):
    client, _ = make_sf_client(kind, login_url=fake_salesforce.instance_url if kind == "jwt" else None)
    rows = client.tooling_query_all("SELECT Id, Name FROM ApexClass")
    assert sorted(r["Name"] for r in rows) == ["AccountTriggerHandler", "InvoiceService", "InvoiceServiceTest"]
    assert _token_requests(fake_salesforce) == (0 if kind == "access_token" else 1)
    assert client.stats["auth_calls"] == (0 if kind == "access_token" else 1)
    _assert_no_secret(fake_salesforce, json.dumps(client.stats))


def test_jwt_audience_defaults_to_login_salesforce_com(make_sf_client, fake_salesforce):
    # Without login_url the token goes to the instance (My Domain) with aud=login.salesforce.com.
    client, _ = make_sf_client("jwt")
    assert client.query_all("SELECT Id FROM RecordType")
    fake_salesforce.jwt_audiences = {fake_salesforce.instance_url}
    client2, _ = make_sf_client("jwt")
    with pytest.raises(SalesforceAuthError) as ei:
        client2.query_all("SELECT Id FROM RecordType")
    assert "invalid_grant" in str(ei.value) and "$SF_FAKE_PRIVATE_KEY" in str(ei.value)
    _assert_no_secret(fake_salesforce, str(ei.value))


def test_wrong_client_secret_is_a_clear_auth_error(make_sf_client, fake_salesforce, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SF_FAKE_CLIENT_SECRET", "FAKESECRET-wrong-secret-123")
    client, _ = make_sf_client("client_credentials")
    with pytest.raises(SalesforceAuthError) as ei:
        client.query_all("SELECT Id FROM RecordType")
    msg = str(ei.value)
    assert "fake-live" in msg and "invalid_client" in msg and "$SF_FAKE_CLIENT_SECRET" in msg
    assert "FAKESECRET-wrong-secret-123" not in msg
    _assert_no_secret(fake_salesforce, msg, caplog.text, json.dumps(client.stats))
    assert "FAKESECRET-wrong-secret-123" not in caplog.text


def test_missing_env_var_names_it(make_sf_client, monkeypatch):
    monkeypatch.delenv("SF_FAKE_CLIENT_SECRET")
    client, _ = make_sf_client("client_credentials")
    with pytest.raises(SalesforceAuthError, match="SF_FAKE_CLIENT_SECRET"):
        client.connect()


def test_paging_across_several_pages(make_sf_client, fake_salesforce):
    fake_salesforce.org.page_size = 2
    client, _ = make_sf_client()
    fields = client.tooling_query_all("SELECT Id, DeveloperName, TableEnumOrId FROM CustomField")
    assert len(fields) == 14 and len({r["Id"] for r in fields}) == 14
    more = [r for r in fake_salesforce.requests if r.path.startswith("/services/data/v62.0/tooling/query/01g")]
    assert len(more) == 6  # 14 rows, 2 a page: 1 query + 6 queryMore
    audit = client.query_all("SELECT Id, Action FROM SetupAuditTrail ORDER BY CreatedDate")
    assert [r["Id"] for r in audit] == [sf_id("0Ym", i) for i in range(1, 6)]
    assert any(r.path.startswith("/services/data/v62.0/query/01g") for r in fake_salesforce.requests)


def test_invalid_session_mid_paging_reauthenticates_and_completes(make_sf_client, fake_salesforce, caplog):
    caplog.set_level(logging.DEBUG)
    fake_salesforce.org.page_size = 3
    client, _ = make_sf_client("client_credentials")
    client.connect()
    fake_salesforce.faults.expire_session_after = 2  # query + 1 queryMore succeed, then the token dies
    rows = client.tooling_query_all("SELECT Id, DeveloperName FROM CustomField")
    assert len(rows) == 14 and len({r["Id"] for r in rows}) == 14  # complete, no duplicates
    statuses = [r.status for r in fake_salesforce.api_requests()]
    assert 401 in statuses
    assert _token_requests(fake_salesforce) == 2
    assert client.stats["reauths"] == 1
    # The page that failed was re-requested with the same locator, not the query restarted.
    assert sum(1 for r in fake_salesforce.requests if r.soql) == 1
    _assert_no_secret(fake_salesforce, caplog.text, json.dumps(client.stats))


def test_access_token_expiry_names_the_env_var(make_sf_client, fake_salesforce, caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = make_sf_client("access_token")
    assert client.query_all("SELECT Id FROM RecordType")
    fake_salesforce.revoke_all_tokens()
    with pytest.raises(SalesforceAuthError) as ei:
        client.query_all("SELECT Id FROM RecordType")
    msg = str(ei.value)
    assert "fake-live" in msg and "INVALID_SESSION_ID" in msg and "$SF_FAKE_ACCESS_TOKEN" in msg
    assert FAKE_STATIC_TOKEN not in msg
    _assert_no_secret(fake_salesforce, msg, caplog.text)


@pytest.mark.parametrize("kind", ["REQUEST_LIMIT_EXCEEDED", 429, 503])
def test_transient_failures_are_retried(make_sf_client, fake_salesforce, kind):
    client, _ = make_sf_client()
    client.connect()
    fake_salesforce.faults.fail(kind, times=2)
    rows = client.tooling_query_all("SELECT Id, Name FROM ApexClass")
    assert len(rows) == 3
    assert client.stats["retries"] == 2
    assert [r.status for r in fake_salesforce.api_requests()][-3:][:2] == [403 if kind == "REQUEST_LIMIT_EXCEEDED"
                                                                           else kind] * 2


def test_other_403_is_not_retried(make_sf_client, fake_salesforce):
    client, _ = make_sf_client()
    with pytest.raises(SalesforceAPIError) as ei:
        client.tooling_query_all("SELECT Id, Nope__c FROM ApexClass")
    assert ei.value.error_code == "INVALID_FIELD" and ei.value.status == 400
    assert "tooling:ApexClass" in str(ei.value) and client.stats["retries"] == 0


def test_retries_are_bounded(make_sf_client, fake_salesforce):
    client, _ = make_sf_client(retry=RetryPolicy(max_attempts=3, base_delay=0.001))
    client.connect()
    fake_salesforce.faults.fail(503, times=10)
    with pytest.raises(SalesforceUnavailableError) as ei:
        client.query_all("SELECT Id FROM RecordType")
    assert "fake-live" in str(ei.value) and "rest:RecordType" in str(ei.value) and "3 attempts" in str(ei.value)
    assert len([r for r in fake_salesforce.api_requests() if r.status == 503]) == 3


def test_slow_response_times_out_then_is_retried(make_sf_client, fake_salesforce):
    client, _ = make_sf_client(timeout=(1.0, 0.25))
    client.connect()
    fake_salesforce.faults.slow(0.6, times=1, path_contains="/query")
    assert len(client.query_all("SELECT Id FROM RecordType")) == 2
    assert client.stats["retries"] == 1


def test_persistently_slow_org_gives_a_clear_error(make_sf_client, fake_salesforce):
    client, _ = make_sf_client(timeout=(1.0, 0.15), retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    client.connect()
    fake_salesforce.faults.slow(0.4, times=None)
    with pytest.raises(SalesforceUnavailableError) as ei:
        client.query_all("SELECT Id FROM RecordType")
    assert "no answer within the timeout" in str(ei.value) and "fake-live" in str(ei.value)


@pytest.mark.parametrize("how", ["stopped", "dropping"])
def test_server_down_is_a_clear_error(make_sf_client, fake_salesforce, how, caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = make_sf_client(retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    if how == "stopped":
        fake_salesforce.stop()
    else:
        fake_salesforce.faults.down = True
    with pytest.raises(ExtractionError) as ei:
        client.query_all("SELECT Id FROM RecordType")
    msg = str(ei.value)
    assert "fake-live" in msg and "cannot connect" in msg and "instance_url" in msg
    _assert_no_secret(fake_salesforce, msg, caplog.text)
    assert FAKE_CLIENT_SECRET not in caplog.text


def test_tls_is_verified_and_shell_ca_bundle_ignored(make_sf_client, fake_salesforce, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    client, _ = make_sf_client()
    assert client.query_all("SELECT Id FROM RecordType")  # trust_env=False: ca_bundle wins
    from dataclasses import replace

    org = replace(fake_salesforce.org_config("client_credentials"), ca_bundle=None)
    bad = SalesforceClient(org, retry=RetryPolicy(max_attempts=1), timeout=2)
    with pytest.raises(SalesforceUnavailableError, match="ca_bundle"):
        bad.connect()


def test_composite_goes_in_batches_of_25(make_sf_client, fake_salesforce):
    client, _ = make_sf_client()
    ids = [sf_id("01p", i) for i in (1, 2, 3)] * 10  # 30 subrequests
    res = client.tooling_composite_get([f"sobjects/ApexClass/{i}" for i in ids] + ["sobjects/ApexClass/01pNOPE"])
    assert len(res) == 31 and all(r["status"] == 200 for r in res[:30]) and res[30]["status"] == 404
    assert res[0]["body"]["Name"] == "InvoiceService"
    posts = [r for r in fake_salesforce.requests if r.path.endswith("/tooling/composite")]
    assert [len(p.body["compositeRequest"]) for p in posts] == [25, 6]


def test_bulk_query_pages_through_locators(make_sf_client, fake_salesforce):
    fake_salesforce.org.bulk_page_size = 7
    fake_salesforce.org.bulk_polls_in_progress = 2
    fake_salesforce.org.add_dependencies(sf_id("01p", 1), "ApexClass", "InvoiceService", 20)
    client, _ = make_sf_client()
    rows = client.tooling_bulk_query("SELECT MetadataComponentId, RefMetadataComponentName, "
                                     "MetadataComponentNamespace FROM MetadataComponentDependency")
    assert len(rows) == 17 + 20
    assert rows[0]["MetadataComponentNamespace"] is None
    results = [r for r in fake_salesforce.requests if r.path.endswith("/results")]
    assert len(results) == 6  # ceil(37 / 7)
    polls = [r for r in fake_salesforce.requests if r.method == "GET" and r.path.rsplit("/", 2)[-2] == "query"]
    assert len(polls) == 3  # InProgress, InProgress, JobComplete


def test_describe_and_api_usage(make_sf_client, fake_salesforce):
    client, _ = make_sf_client()
    d = client.describe("Invoice__c")
    assert {f["name"] for f in d["fields"]} >= {"Amount__c", "Tax__c"}
    with pytest.raises(SalesforceAPIError) as ei:
        client.describe("Nope__c")
    assert ei.value.status == 404 and "describe:Nope__c" in str(ei.value)
    assert client.stats["api_usage"] == f"{fake_salesforce.api_usage}/5000"
    assert client.stats["api_calls"] == len(fake_salesforce.requests)
    assert client.limits()["DailyApiRequests"]["Max"] == 5000


def test_eternal_invalid_session_stops_after_one_reauth(make_sf_client, fake_salesforce):
    client, _ = make_sf_client()
    client.connect()
    # Every token dies immediately: re-authenticate once, then give up clearly.
    fake_salesforce.faults.expire_session_after = 0
    orig = fake_salesforce._token

    def token_then_revoke(h, raw):
        out = orig(h, raw)
        fake_salesforce.faults.expire_session_after = 0
        return out

    fake_salesforce._token = token_then_revoke
    with pytest.raises(SalesforceAuthError, match="again right after re-authenticating"):
        client.query_all("SELECT Id FROM RecordType")
    assert client.stats["reauths"] == 1


def test_close_and_context_manager(make_sf_client):
    client, _ = make_sf_client()
    with client as c:
        assert c.query_all("SELECT Id FROM RecordType")
    assert client.query_all("SELECT Id FROM RecordType")  # reconnects after close
