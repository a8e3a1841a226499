"""Custom REST sources (kind ``custom``) end to end through a loopback fake REST API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aicolleague_pipelines.lib.platforms import custom_api
from aicolleague_pipelines.lib.platforms.config import PlatformConfig, PlatformConfigError
from aicolleague_pipelines.lib.platforms.custom_api import (
    extract_custom_api,
    looks_like_sf_id,
    sf_id_suffix,
)
from aicolleague_pipelines.lib.platforms.extract import extract_platform, to_json
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract
from aicolleague_pipelines_tests.fakes.rest_api import FakeRestApi

DEMO_EXPORT = (
    Path(custom_api.__file__).resolve().parents[2] / "demo" / "exports" / "support_desk"
)

PAGINATIONS = {
    "cursor": {"style": "cursor", "cursor_path": "meta.next_cursor", "param": "cursor",
               "limit_param": "limit", "limit": 2},
    "offset": {"style": "offset", "param": "offset", "limit_param": "limit", "limit": 2},
    "page": {"style": "page", "param": "page", "size_param": "per_page", "size": 2, "start": 1},
    "link": {"style": "link"},
    "next_url": {"style": "next_url", "next_path": "next"},
    "none": {"style": "none"},
}


@pytest.fixture
def fake() -> Iterator[FakeRestApi]:
    with FakeRestApi() as f:
        yield f


def tickets(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "status": ["open", "closed"][i % 2], "priority": "high" if i < 2 else "low",
         "account_sf_id": "0015e00000AbCdE", "subject": f"MARKER_SUBJECT_{i}"}
        for i in range(n)
    ]


def make_cfg(base_url: str | None, entities: list[dict[str, Any]], *,
             auth: dict[str, Any] | None = None, cfg_auth: dict[str, str] | None = None,
             export: Path | None = None, name: str = "desk") -> PlatformConfig:
    options: dict[str, Any] = {"entities": entities}
    if auth is not None:
        options["auth"] = auth
    return PlatformConfig(
        name=name, kind="custom", org="acme-prod", base_url=base_url, auth=cfg_auth or {},
        export=export, options=options, retry_attempts=3, retry_base_delay=0.01,
    )


def entity(**kw: Any) -> dict[str, Any]:
    base = {"name": "tickets", "path": "/api/v1/tickets", "record_path": "data.items",
            "pagination": PAGINATIONS["cursor"]}
    base.update(kw)
    return base


def run(cfg: PlatformConfig) -> tuple[PlatformExtract, list[float]]:
    slept: list[float] = []
    with PlatformHttp(cfg, sleep=slept.append) as http:
        return extract_custom_api(cfg, http=http), slept


def serialised(ex: PlatformExtract) -> str:
    return json.dumps(to_json(ex), default=str)


# --- pagination ----------------------------------------------------------------------------


def test_cursor_pagination_end_to_end(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(5), style="cursor")
    ex, _ = run(make_cfg(fake.base_url, [entity(
        salesforce_links=[{"field": "account_sf_id", "sf_field": "Account.Id"}],
        aggregate={"count_by": ["status", "priority"]},
    )]))
    agg = ex.aggregates["entities"]["tickets"]
    assert agg["records"] == 5 and agg["pages"] == 3 and agg["complete"] is True
    assert agg["count_by"] == {"status": {"open": 3, "closed": 2}, "priority": {"low": 3, "high": 2}}
    assert ex.stats["pages"] == {"tickets": 3} and ex.stats["records"] == {"tickets": 5}
    assert ex.stats["calls"] == 3 and ex.stats["duration_s"] >= 0
    cursors = [r.query.get("cursor") for r in fake.requests]
    assert cursors[0] is None and len(set(cursors[1:])) == 2
    assert all(r.query["limit"] == "2" for r in fake.requests)
    assert ex.platform == "custom" and ex.instance == "desk" and not ex.findings
    assert "ApiEntity:desk/tickets" in {n.key for n in ex.nodes}


@pytest.mark.parametrize(
    ("style", "n", "pages"),
    [("cursor", 5, 3), ("offset", 5, 3), ("offset", 4, 3), ("page", 5, 3), ("page", 6, 4),
     ("link", 5, 3), ("next_url", 5, 3), ("none", 5, 1)],
)
def test_every_pagination_style(fake: FakeRestApi, style: str, n: int, pages: int) -> None:
    fake.route("/api/v1/tickets", tickets(n), style=style, page_size=2)
    ex, _ = run(make_cfg(fake.base_url, [entity(pagination=PAGINATIONS[style])]))
    agg = ex.aggregates["entities"]["tickets"]
    assert (agg["records"], agg["pages"], agg["complete"]) == (n, pages, True)
    assert not ex.findings
    assert len(fake.requests) == pages


def test_record_path_empty_means_body_is_the_list(fake: FakeRestApi) -> None:
    fake.route("/list", tickets(3), style="none", record_path="")
    ex, _ = run(make_cfg(fake.base_url, [entity(name="things", path="/list", record_path="",
                                                pagination={"style": "none"})]))
    assert ex.aggregates["entities"]["things"]["records"] == 3


def test_static_params_are_sent(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(3), style="offset")
    run(make_cfg(fake.base_url, [entity(params={"status": "any", "archived": False},
                                        pagination=PAGINATIONS["offset"])]))
    assert all(r.query["status"] == "any" and r.query["archived"] == "false" for r in fake.requests)
    assert [r.query["offset"] for r in fake.requests] == ["0", "2"]


# --- infinite paging guards ----------------------------------------------------------------


def test_repeated_cursor_is_stopped_with_a_finding(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(6), style="cursor", repeat_cursor=True)
    ex, _ = run(make_cfg(fake.base_url, [entity()]))
    agg = ex.aggregates["entities"]["tickets"]
    assert agg["pages"] == 2 and agg["complete"] is False
    assert len(fake.requests) == 2
    assert any("repeated a cursor already followed" in f for f in ex.findings)


def test_server_ignoring_paging_params_is_stopped(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(6), style="offset", ignore_paging=True)
    ex, _ = run(make_cfg(fake.base_url, [entity(pagination=PAGINATIONS["offset"])]))
    assert ex.aggregates["entities"]["tickets"]["complete"] is False
    assert len(fake.requests) == 2
    assert any("repeated the previous page" in f for f in ex.findings)


@pytest.mark.parametrize("style", ["cursor", "page", "link"])
def test_max_pages_stops_with_a_finding(fake: FakeRestApi, style: str) -> None:
    fake.route("/api/v1/tickets", tickets(9), style=style, page_size=2)
    ex, _ = run(make_cfg(fake.base_url, [entity(pagination=PAGINATIONS[style], max_pages=2)]))
    agg = ex.aggregates["entities"]["tickets"]
    assert (agg["pages"], agg["records"], agg["complete"]) == (2, 4, False)
    assert len(fake.requests) == 2
    assert any("max_pages=2" in f and "tickets" in f for f in ex.findings)


def test_next_link_to_another_server_is_refused(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(5), style="link", link_host="http://evil.invalid:9")
    with pytest.raises(PlatformError, match="another server") as err:
        run(make_cfg(fake.base_url, [entity(pagination={"style": "link"})]))
    assert "desk" in str(err.value)
    assert len(fake.requests) == 1


# --- auth ----------------------------------------------------------------------------------

AUTHS = [
    ({"type": "bearer", "token": "tok-123"}, {"type": "bearer"}, {"token_env": "DESK_TOKEN"},
     {"DESK_TOKEN": "tok-123"}),
    ({"type": "basic", "username": "svc", "password": "pw-456"}, {"type": "basic"},
     {"username_env": "DESK_USER", "password_env": "DESK_PASS"},
     {"DESK_USER": "svc", "DESK_PASS": "pw-456"}),
    ({"type": "header", "header": "X-Desk-Key", "key": "key-789"},
     {"type": "header", "header": "X-Desk-Key"}, {"key_env": "DESK_KEY"}, {"DESK_KEY": "key-789"}),
]


@pytest.mark.parametrize(("server", "options", "cfg_auth", "env"), AUTHS,
                         ids=["bearer", "basic", "header"])
def test_each_auth_type(monkeypatch: pytest.MonkeyPatch, server: dict, options: dict,
                        cfg_auth: dict, env: dict) -> None:
    with FakeRestApi(auth=server) as api:
        api.route("/api/v1/tickets", tickets(3), style="cursor")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = make_cfg(api.base_url, [entity()], auth=options, cfg_auth=cfg_auth)
        ex, _ = run(cfg)
        assert ex.aggregates["entities"]["tickets"]["records"] == 3
        assert all(r.status == 200 for r in api.requests)

        for k in env:
            monkeypatch.setenv(k, "wrong-secret")
        with pytest.raises(PlatformError, match="HTTP 401: authentication refused") as err:
            run(cfg)
        assert "desk" in str(err.value) and "wrong-secret" not in str(err.value)

        with pytest.raises(PlatformError, match="401"):
            run(make_cfg(api.base_url, [entity()]))  # no auth configured at all


def test_missing_secret_env_var_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_TOKEN", raising=False)
    cfg = make_cfg("http://127.0.0.1:9", [entity()], auth={"type": "bearer"},
                   cfg_auth={"token_env": "DESK_TOKEN"})
    with pytest.raises(PlatformConfigError, match="DESK_TOKEN.*not set"):
        extract_custom_api(cfg)
    with pytest.raises(PlatformConfigError, match=r"'desk'.*auth type basic needs auth\.username_env"):
        extract_custom_api(make_cfg("http://127.0.0.1:9", [entity()], auth={"type": "basic"}))


# --- faults --------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(5), style="cursor", rate_limit_once=True)
    ex, slept = run(make_cfg(fake.base_url, [entity()]))
    assert slept == [1.0]
    assert ex.stats["rate_limited"] == 1 and ex.stats["retries"] == 1 and ex.stats["calls"] == 4
    assert ex.aggregates["entities"]["tickets"]["records"] == 5
    assert [r.status for r in fake.requests] == [429, 200, 200, 200]


def test_malformed_page_is_a_clear_error(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(5), style="cursor", malformed_page=2)
    with pytest.raises(PlatformError) as err:
        run(make_cfg(fake.base_url, [entity()]))
    text = str(err.value)
    assert "'desk'" in text and "GET /api/v1/tickets" in text and "not valid JSON" in text
    assert "cursor=" not in text  # the call is named without its query string


def test_page_without_the_record_list_is_a_clear_error(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(5), style="cursor", wrong_shape_page=2)
    with pytest.raises(PlatformError) as err:
        run(make_cfg(fake.base_url, [entity()]))
    text = str(err.value)
    assert "'desk'" in text and "entity tickets" in text and "record_path 'data.items'" in text
    assert "page 2" in text


def test_record_path_pointing_at_a_non_list(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", tickets(2), style="none")
    with pytest.raises(PlatformError, match="record_path 'data' is a JSON object"):
        run(make_cfg(fake.base_url, [entity(record_path="data", pagination={"style": "none"})]))


# --- schema inference and privacy ----------------------------------------------------------


def personal_records() -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        out.append({
            "id": 1000 + i,
            "ref": f"MARKER_REF_{i}",
            "status": ["open", "pending", "solved"][i % 3],
            "requester": {
                "name": f"MARKER_NAME_{i}",
                "email": f"marker.email.{i}@MARKER-DOMAIN.example",
                "address": {"city": "MARKER_CITY", "zip": "MARKER_ZIP"},
            },
            "body": "MARKER_BODY " * 20,
            "tags": ["MARKER_TAG"],
            "lines": [{"sku": "MARKER_SKU", "qty": 2}],
            "score": 4.5 if i % 2 else None,
            "vip": bool(i % 2),
            "by_user": {f"marker{i}@MARKER-MAP.example": 1, "u_1234567": 2},
            "account_sf_id": "0015e00000AbCdE",
        })
    return out


def test_schema_inference_and_no_value_leaves_the_platform(fake: FakeRestApi) -> None:
    fake.route("/api/v1/tickets", personal_records(), style="cursor", page_size=25)
    ex, _ = run(make_cfg(fake.base_url, [entity(
        pagination={**PAGINATIONS["cursor"], "limit": 25},
        salesforce_links=[{"field": "account_sf_id", "sf_field": "Account.Id"}],
        aggregate={"count_by": ["status", "requester.email", "ref", "body"]},
    )]))
    fields = {n.attrs["field"]: n for n in ex.nodes if n.type == "ApiField"}
    assert {"id", "ref", "status", "requester", "requester.name", "requester.email",
            "requester.address", "requester.address.city", "requester.address.zip", "body",
            "tags", "lines", "lines[].sku", "lines[].qty", "score", "vip", "by_user",
            "by_user.*", "account_sf_id"} == set(fields)
    assert fields["requester.address.city"].attrs["json_types"] == ["string"]
    assert fields["requester"].attrs["json_types"] == ["object"]
    assert fields["lines"].attrs["json_types"] == ["array"]
    assert fields["lines[].qty"].attrs["json_types"] == ["integer"]
    assert fields["score"].attrs["json_types"] == ["null", "number"]
    assert fields["vip"].attrs["json_types"] == ["boolean"]
    assert fields["id"].attrs["present_in"] == 60
    assert fields["requester.email"].key == "ApiField:desk/tickets.requester.email"
    assert fields["requester.email"].name == "desk/tickets.requester.email"
    child_of = {(e.source, e.target) for e in ex.edges if e.kind == "child_of"}
    assert all((n.key, "ApiEntity:desk/tickets") in child_of for n in fields.values())

    agg = ex.aggregates["entities"]["tickets"]
    assert agg["count_by"] == {"status": {"open": 20, "pending": 20, "solved": 20}}
    text = " ".join(ex.findings)
    assert "count_by 'requester.email' skipped" in text
    assert "count_by 'ref' skipped" in text and "more than 50 distinct values" in text
    assert "count_by 'body' skipped" in text
    assert "by_user" in text and "collapsed" in text

    out = serialised(ex)
    assert "MARKER" not in out.upper()
    assert "@" not in out  # no email, not even as a map key


def test_categorical_count_by_under_the_limit_is_kept(fake: FakeRestApi) -> None:
    records = [{"id": i, "region": f"R{i % 50}"} for i in range(100)]
    fake.route("/r", records, style="none", record_path="items")
    ex, _ = run(make_cfg(fake.base_url, [entity(name="r", path="/r", record_path="items",
                                                pagination={"style": "none"},
                                                aggregate={"count_by": ["region", "missing"]})]))
    counts = ex.aggregates["entities"]["r"]["count_by"]
    assert len(counts["region"]) == 50 and sum(counts["region"].values()) == 100
    assert counts["missing"] == {"(missing)": 100}


# --- Salesforce links ----------------------------------------------------------------------


def test_salesforce_links_and_coverage(fake: FakeRestApi) -> None:
    acc15 = "0015e00000AbCdE"
    acc18 = acc15 + sf_id_suffix(acc15)
    records = [
        {"id": 1, "account": {"sf_id": acc15}, "contact_id": "0035e00000QwErT", "case_no": "00001026"},
        {"id": 2, "account": {"sf_id": acc18}, "contact_id": "0015e00000QwErT", "case_no": None},
        {"id": 3, "account": {"sf_id": acc15[:15] + "XYZ"}, "contact_id": None},
        {"id": 4, "account": {"sf_id": "ACME-42"}, "contact_id": ""},
        {"id": 5, "account": None},
    ]
    fake.route("/t", records, style="none")
    ex, _ = run(make_cfg(fake.base_url, [entity(
        name="t", path="/t", pagination={"style": "none"},
        salesforce_links=[
            {"field": "account.sf_id", "sf_field": "Account.Id"},
            {"field": "contact_id", "sf_field": "Contact.Id"},
            {"field": "case_no", "sf_field": "Case.CaseNumber"},
            {"field": "program_ref", "sf_object": "Program__c"},
        ],
    )]))
    links = {(link.platform_key, link.sf_object, link.sf_field, link.org) for link in ex.links}
    assert links == {
        ("ApiField:desk/t.account.sf_id", "Account", "Account.Id", "acme-prod"),
        ("ApiField:desk/t.contact_id", "Contact", "Contact.Id", "acme-prod"),
        ("ApiField:desk/t.case_no", "Case", "Case.CaseNumber", "acme-prod"),
        ("ApiField:desk/t.program_ref", "Program__c", None, "acme-prod"),
    }
    node_keys = {n.key for n in ex.nodes}
    assert all(link.platform_key in node_keys for link in ex.links)
    cov = ex.aggregates["entities"]["t"]["link_coverage"]
    assert cov["account.sf_id"] == {"present": 4, "looks_like_sf_id": 2, "prefix_matches": 2,
                                    "records": 5, "sf_field": "Account.Id"}
    assert cov["contact_id"] == {"present": 2, "looks_like_sf_id": 2, "prefix_matches": 1,
                                 "records": 5, "sf_field": "Contact.Id"}
    assert cov["case_no"] == {"present": 1, "records": 5, "sf_field": "Case.CaseNumber"}
    assert any("'program_ref' was not seen" in f for f in ex.findings)
    assert "0015e00000AbCdE" not in serialised(ex)


def test_sf_id_checksum() -> None:
    assert sf_id_suffix("001000000000001") == "AAA"
    assert looks_like_sf_id("0015e00000AbCdE")
    assert looks_like_sf_id("0015e00000AbCdE" + sf_id_suffix("0015e00000AbCdE"))
    wrong = "AAB" if sf_id_suffix("0015e00000AbCdE") != "AAB" else "AAC"
    assert not looks_like_sf_id("0015e00000AbCdE" + wrong)
    assert not looks_like_sf_id("ACME-42") and not looks_like_sf_id("0015e00000AbCd")


# --- option validation ---------------------------------------------------------------------

E = entity()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, r"options\.entities: must be a non-empty list"),
        ({"entities": [E], "colour": 1}, r"options\.colour: unknown option"),
        ({"entities": [E], "auth": {"type": "oauth"}}, r"options\.auth\.type: must be one of"),
        ({"entities": [E], "auth": {"type": "header", "header": "X Key"}}, r"options\.auth\.header"),
        ({"entities": [{**E, "name": "bad name"}]}, r"options\.entities\[0\]\.name"),
        ({"entities": [{**E, "path": "api/v1"}]}, r"entities\[0\] \(tickets\)\.path"),
        ({"entities": [{**E, "path": "/a?x=1"}]}, r"\(tickets\)\.path.*without a query string"),
        ({"entities": [{**E, "pagination": {"style": "scroll"}}]},
         r"\(tickets\)\.pagination\.style: must be one of cursor, offset"),
        ({"entities": [{**E, "pagination": {"style": "cursor"}}]},
         r"\(tickets\)\.pagination\.cursor_path: is required"),
        ({"entities": [{**E, "pagination": {"style": "offset", "size": 3}}]},
         r"\(tickets\)\.pagination\.size: not a offset pagination key"),
        ({"entities": [{**E, "pagination": {"style": "page", "size": 0}}]},
         r"\(tickets\)\.pagination\.size: must be a positive integer"),
        ({"entities": [{**E, "pagination": {"style": "cursor", "cursor_path": "m.c", "limit": 5}}]},
         r"\(tickets\)\.pagination\.limit_param: limit_param and limit go together"),
        ({"entities": [{**E, "max_pages": 0}]}, r"\(tickets\)\.max_pages: must be a positive"),
        ({"entities": [{**E, "pages": 3}]}, r"\(tickets\)\.pages: unknown key"),
        ({"entities": [{**E, "record_path": "data..items"}]}, r"\(tickets\)\.record_path"),
        ({"entities": [{**E, "salesforce_links": [{"field": "a", "sf_field": "Account"}]}]},
         r"salesforce_links\[0\]\.sf_field: must be Object\.Field"),
        ({"entities": [{**E, "salesforce_links": [{"field": "a"}]}]},
         r"salesforce_links\[0\]\.sf_field: is required"),
        ({"entities": [{**E, "salesforce_links": [{"field": "a", "sf_field": "Account.Id",
                                                    "sf_object": "Contact"}]}]},
         r"salesforce_links\[0\]\.sf_object: 'Contact' contradicts"),
        ({"entities": [{**E, "aggregate": {"count_by": "status"}}]},
         r"\(tickets\)\.aggregate\.count_by: must be a list"),
        ({"entities": [{**E, "aggregate": {"sum": ["x"]}}]}, r"\(tickets\)\.aggregate\.sum: unknown"),
        ({"entities": [E, E]}, r"entities\[1\]\.name: 'tickets' appears twice"),
        ({"entities": [{**E, "params": {"limit": 3}}]},
         r"\(tickets\)\.params\.limit: is also the pagination's parameter"),
    ],
)
def test_bad_options_are_clear_errors(options: dict, expected: str) -> None:
    cfg = PlatformConfig(name="desk", kind="custom", base_url="http://127.0.0.1:9", options=options)
    with pytest.raises(PlatformConfigError, match=expected) as err:
        extract_custom_api(cfg)
    assert str(err.value).startswith("platform 'desk': ")


# --- the bundled demo export ---------------------------------------------------------------


def docstring_example() -> dict[str, Any]:
    doc = custom_api.__doc__ or ""
    block = doc.split("::\n", 1)[1].split("\nOptions\n", 1)[0]
    return yaml.safe_load(block)[0]


def test_demo_export_matches_the_documented_entry() -> None:
    entry = docstring_example()
    assert entry["export"] == "exports/support_desk"
    cfg = PlatformConfig(name=entry["name"], kind="custom", org=entry["org"],
                         auth=entry["auth"], export=DEMO_EXPORT, options=entry["options"])
    ex = extract_platform(cfg)  # the generic entry point; no secret is needed in export mode
    agg = ex.aggregates["entities"]["tickets"]
    assert agg["pages"] == 3 and agg["records"] == 12 and agg["complete"] is True
    assert set(agg["count_by"]) == {"status", "priority"}
    assert ex.aggregates["entities"]["organizations"]["count_by"]["plan"]["growth"] == 2
    cov = agg["link_coverage"]["account_sf_id"]
    assert cov["present"] == 10 and cov["looks_like_sf_id"] == 9 == cov["prefix_matches"]
    assert {link.sf_field for link in ex.links} >= {"Account.Id", "Case.CaseNumber"}
    assert all(link.org == "acme-prod" for link in ex.links)
    assert not ex.findings
    out = serialised(ex)
    assert "@" not in out and "acme-customer" not in out and "Whitfield" not in out
    assert not re.search(r"001[0-9A-Za-z]{12}", out)


# --- the HTTP layer's raw request ----------------------------------------------------------


def test_raw_request_names_the_path_without_query(fake: FakeRestApi) -> None:
    cfg = make_cfg(fake.base_url, [entity()])
    with PlatformHttp(cfg, sleep=lambda s: None) as http:
        with pytest.raises(PlatformError) as err:
            http.request("GET", f"{fake.base_url}/nowhere?secret=abc")
        assert "GET /nowhere" in str(err.value) and "secret" not in str(err.value)
        with pytest.raises(PlatformError, match=r"GET /nowhere\?x=1: HTTP 404"):
            http.request_json("GET", "/nowhere?x=1")  # request_json keeps naming path as given
