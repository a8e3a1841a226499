"""A loopback fake Metabase speaking the real API's shapes (see REFERENCE.md §4).

``FakeMetabase(data)`` starts a threaded HTTP server on 127.0.0.1 (a free port) serving an
in-memory :class:`MetabaseData`:

- auth: ``x-api-key`` (``FAKE_API_KEY``) or ``POST /api/session`` with
  ``FAKE_USERNAME``/``FAKE_PASSWORD`` → ``{id}`` then ``X-Metabase-Session``; anything else is
  401 ``Unauthenticated`` (a bad login: 401 ``{"errors": {"password": ...}}``);
- ``GET /api/database`` (``{data, total}``; a bare list before 0.40),
  ``/api/database/:id/metadata``, ``/api/card`` (array), ``/api/card/:id``,
  ``/api/dashboard``, ``/api/dashboard/:id`` (``dashcards``; ``ordered_cards`` before 0.48),
  ``/api/collection``, ``/api/native-query-snippet``;
- ``version``: ``(0, 39)`` old shapes (also models as ``dataset: true`` before 0.49),
  ``(0, 50)`` modern legacy-MBQL, ``(0, 57)`` cards in MBQL 5 (``stages``) unless
  ``?legacy-mbql=true``;
- faults: ``rate_limit(path, times, retry_after)`` → 429 with ``Retry-After``;
  ``malformed(path, times)`` → 200 with a truncated JSON body.

Cards carry personal data the extractor must not copy (creator name and e-mail, a personal
collection named after a person). Every request is recorded in ``fake.requests``.

:func:`small_instance` is the test instance, :func:`demo_instance` the demo's (its recorded
answers are ``aicolleague_pipelines/demo/exports/metabase/responses.json``; regenerate with
``python -m aicolleague_pipelines_tests.fakes.metabase --write-demo``).
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAKE_API_KEY = "mb_FAKESECRET-api-key-3f9a1c"
FAKE_USERNAME = "bi-robot@fake.example.com"
FAKE_PASSWORD = "FAKESECRET-mb-passw0rd-77"

DEMO_EXPORT = (Path(__file__).resolve().parents[2] / "aicolleague_pipelines" / "demo" / "exports"
               / "metabase")


# -- the data -----------------------------------------------------------------------------------


@dataclass
class MetabaseData:
    databases: list[dict[str, Any]] = field(default_factory=list)  # with "tables"[{"fields"}]
    cards: list[dict[str, Any]] = field(default_factory=list)  # legacy MBQL dataset_query
    dashboards: list[dict[str, Any]] = field(default_factory=list)  # with "dashcards"
    collections: list[dict[str, Any]] = field(default_factory=list)
    snippets: list[dict[str, Any]] = field(default_factory=list)
    _field_ids: dict[str, int] = field(default_factory=dict)
    _table_ids: dict[str, int] = field(default_factory=dict)

    def fid(self, path: str) -> int:
        """A field id by ``schema.table.column``."""
        return self._field_ids[path]

    def tid(self, path: str) -> int:
        return self._table_ids[path]

    def add_database(self, db_id: int, name: str, engine: str,
                     tables: dict[str, list[tuple[Any, ...]]]) -> None:
        """``tables``: ``{"schema.table": [(column, base_type, semantic_type?, fk "s.t.c"?)]}``."""
        table_ids = itertools.count(db_id * 100 + 1)
        field_ids = itertools.count(db_id * 1000 + 1)
        out_tables = []
        fks: list[tuple[dict[str, Any], str]] = []
        for path, cols in tables.items():
            schema, tname = path.split(".", 1)
            tid = next(table_ids)
            self._table_ids[path] = tid
            fields = []
            for col in cols:
                cname, base_type = col[0], col[1]
                semantic = col[2] if len(col) > 2 else None
                fid = next(field_ids)
                self._field_ids[f"{path}.{cname}"] = fid
                f = {
                    "id": fid, "name": cname, "display_name": cname.replace("_", " ").title(),
                    "table_id": tid, "base_type": base_type, "effective_type": base_type,
                    "semantic_type": semantic, "database_type": _db_type(base_type),
                    "fk_target_field_id": None, "visibility_type": "normal", "nfc_path": None,
                    "fingerprint": {"global": {"distinct-count": 42, "nil%": 0.0}},
                }
                if len(col) > 3 and col[3]:
                    fks.append((f, col[3]))
                fields.append(f)
            out_tables.append({
                "id": tid, "db_id": db_id, "name": tname, "schema": schema,
                "display_name": tname.replace("_", " ").title(), "entity_type": "entity/GenericTable",
                "visibility_type": None, "active": True, "fields": fields,
            })
        for f, target in fks:
            f["fk_target_field_id"] = self._field_ids[target]
        self.databases.append({
            "id": db_id, "name": name, "engine": engine, "is_sample": False,
            "is_saved_questions": False, "features": ["nested-queries", "native-parameters"],
            "details": {"host": "warehouse.internal", "dbname": "analytics", "user": "metabase"},
            "tables": out_tables,
        })


def _db_type(base_type: str) -> str:
    return {"type/Text": "varchar", "type/Integer": "int4", "type/BigInteger": "int8",
            "type/Float": "float8", "type/Decimal": "numeric", "type/Boolean": "bool",
            "type/Date": "date", "type/DateTime": "timestamp"}.get(base_type, "varchar")


_CREATOR = {"id": 7, "email": "jane.analyst@fake.example.com", "first_name": "Jane",
            "last_name": "Analyst", "common_name": "Jane Analyst"}


_DEMO_CREATOR = {"id": 2, "email": "bi-team@acme.example", "first_name": "BI", "last_name": "Team",
                 "common_name": "BI Team"}


def _card(cid: int, name: str, db: int, dq: dict[str, Any], *, type_: str = "question",
          collection_id: int | None = 1, display: str = "table",
          creator: dict[str, Any] | None = None) -> dict[str, Any]:
    creator = creator or _CREATOR
    query_type = "native" if dq.get("type") == "native" else "query"
    return {
        "id": cid, "name": name, "type": type_, "display": display, "database_id": db,
        "collection_id": collection_id, "query_type": query_type, "archived": False,
        "description": None, "creator_id": creator["id"], "creator": dict(creator),
        "last-edit-info": {k: creator[k] for k in ("email", "first_name", "last_name")},
        "dataset_query": {"database": db, **dq},
        "result_metadata": [{"name": "x", "base_type": "type/Text",
                             "fingerprint": {"type": {"type/Text": {"average-length": 9.1}}}}],
    }


def _native(sql: str, tags: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "native", "native": {"query": sql, "template-tags": tags or {}}}


def _text_tag(name: str, type_: str = "text") -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name,
            "display-name": name.title(), "type": type_}


def _dim_tag(name: str, field_id: int, widget: str = "string/=") -> dict[str, Any]:
    return {**_text_tag(name, "dimension"), "dimension": ["field", field_id, None],
            "widget-type": widget}


def _f(field_id: int | str, **opts: Any) -> list[Any]:
    return ["field", field_id, opts or None]


def small_instance() -> MetabaseData:
    """A small realistic instance: one PostgreSQL warehouse, 9 cards, 2 dashboards."""
    d = MetabaseData()
    T, I, F, Dc, B, Dt = ("type/Text", "type/Integer", "type/Float", "type/Decimal",
                          "type/Boolean", "type/DateTime")
    d.add_database(1, "Warehouse", "postgres", {
        "salesforce.account": [("id", T, "type/PK"), ("name", T, "type/Name"), ("industry", T),
                               ("region__c", T), ("customer_tier__c", T), ("ownerid", T),
                               ("_fivetran_synced", Dt)],
        "salesforce.opportunity": [("id", T, "type/PK"),
                                   ("accountid", T, "type/FK", "salesforce.account.id"),
                                   ("amount", Dc, "type/Currency"), ("stagename", T),
                                   ("closedate", Dt),
                                   ("program__c", T, "type/FK", "salesforce.program__c.id")],
        "salesforce.program__c": [("id", T, "type/PK"), ("name", T),
                                  ("account__c", T, "type/FK", "salesforce.account.id"),
                                  ("status__c", T), ("budget__c", Dc)],
        "salesforce.contact": [("id", T, "type/PK"),
                               ("accountid", T, "type/FK", "salesforce.account.id"),
                               ("email", T, "type/Email"), ("firstname", T), ("lastname", T)],
        "analytics.account_health": [("account_id", T, "type/FK", "salesforce.account.id"),
                                     ("health_score", F), ("computed_at", Dt)],
        "analytics.Revenue Daily": [("Day", "type/Date"), ("Revenue", Dc)],
    })
    fid = d.fid
    d.collections = [
        {"id": 1, "name": "Sales", "location": "/", "personal_owner_id": None},
        {"id": 2, "name": "Customer Success", "location": "/", "personal_owner_id": None},
        {"id": 3, "name": "Jane Analyst's Personal Collection", "location": "/",
         "personal_owner_id": 7},
        {"id": 4, "name": "Jane's drafts", "location": "/3/", "personal_owner_id": None},
    ]
    d.snippets = [{"id": 1, "name": "has_region", "content": "m.region__c IS NOT NULL"}]
    d.cards = [
        _card(1, "Revenue by industry", 1, _native(
            "SELECT a.industry, SUM(o.amount) AS revenue\n"
            "FROM salesforce.account a\n"
            "JOIN salesforce.opportunity o ON o.accountid = a.id\n"
            "WHERE o.stagename = 'Closed Won' [[AND a.region__c = {{region}}]]\n"
            "GROUP BY a.industry ORDER BY revenue DESC",
            {"region": _text_tag("region")})),
        _card(2, "Active programs and health", 1, _native(
            "WITH active_programs AS (\n"
            "  SELECT p.account__c, COUNT(*) AS n FROM salesforce.program__c p\n"
            "  WHERE p.status__c = 'Active' GROUP BY 1)\n"
            "SELECT acc.name, ap.n, h.health_score\n"
            "FROM active_programs ap\n"
            "JOIN salesforce.account acc ON acc.id = ap.account__c\n"
            "LEFT JOIN analytics.account_health h ON h.account_id = acc.id\n"
            "WHERE {{tier}}",
            {"tier": _dim_tag("tier", fid("salesforce.account.customer_tier__c"))}),
            collection_id=2),
        _card(3, "Daily revenue", 1, _native(
            'SELECT "Day", "Revenue" FROM analytics."Revenue Daily" WHERE "Day" >= {{start}}',
            {"start": _text_tag("start", "date")}), display="line"),
        _card(4, "Pipeline by stage (tech accounts)", 1, {"type": "query", "query": {
            "source-table": d.tid("salesforce.opportunity"),
            "aggregation": [["sum", _f(fid("salesforce.opportunity.amount"))]],
            "breakout": [_f(fid("salesforce.opportunity.stagename"))],
            "filter": ["=", _f(fid("salesforce.account.industry"),
                               **{"source-field": fid("salesforce.opportunity.accountid")}),
                       "Technology"],
        }}, display="bar"),
        _card(5, "Accounts with programs", 1, {"type": "query", "query": {
            "source-table": d.tid("salesforce.account"),
            "fields": [_f(fid("salesforce.account.id")), _f(fid("salesforce.account.name")),
                       _f(fid("salesforce.account.region__c"))],
            "joins": [{
                "alias": "Program", "source-table": d.tid("salesforce.program__c"),
                "condition": ["=", _f(fid("salesforce.account.id")),
                              _f(fid("salesforce.program__c.account__c"), **{"join-alias": "Program"})],
                "fields": [_f(fid("salesforce.program__c.budget__c"), **{"join-alias": "Program"})],
            }],
        }}, type_="model", collection_id=2),
        _card(6, "Accounts by region (from model)", 1, {"type": "query", "query": {
            "source-table": "card__5",
            "aggregation": [["count"]],
            "breakout": [["field", "region__c", {"base-type": "type/Text"}]],
        }}, collection_id=2, display="pie"),
        _card(7, "Won pipeline", 1, {"type": "query", "query": {
            "source-table": d.tid("salesforce.opportunity"),
            "aggregation": [["sum", _f(fid("salesforce.opportunity.amount"))]],
            "filter": ["and", ["=", _f(fid("salesforce.opportunity.stagename")), "Closed Won"],
                       ["time-interval", _f(fid("salesforce.opportunity.closedate")), -12, "month"]],
        }}, type_="metric", display="scalar"),
        _card(8, "Regions on the model", 1, _native(
            "SELECT m.region__c, COUNT(*) AS accounts FROM {{#5-accounts-with-programs}} m\n"
            "WHERE {{snippet: has_region}} GROUP BY 1",
            {"#5-accounts-with-programs": {**_text_tag("#5-accounts-with-programs", "card"),
                                           "card-id": 5},
             "snippet: has_region": {**_text_tag("snippet: has_region", "snippet"),
                                     "snippet-name": "has_region", "snippet-id": 1}}),
            collection_id=2),
        _card(9, "Scratch (broken)", 1, _native("SELECT FROM WHERE oops ((("),
              collection_id=4),
    ]
    d.dashboards = [
        {"id": 1, "name": "Sales overview", "collection_id": 1,
         "parameters": [{"id": "p1", "name": "Region", "slug": "region", "type": "string/="}],
         "dashcards": [
             {"id": 11, "card_id": 1, "series": [], "parameter_mappings": [
                 {"parameter_id": "p1", "card_id": 1, "target": ["variable", ["template-tag", "region"]]}]},
             {"id": 12, "card_id": 4, "series": [{"id": 7, "name": "Won pipeline"}],
              "parameter_mappings": [
                  {"parameter_id": "p1", "card_id": 4,
                   "target": ["dimension", _f(fid("salesforce.account.region__c"), **{
                       "source-field": fid("salesforce.opportunity.accountid")})]}]},
             {"id": 13, "card_id": None, "series": [], "parameter_mappings": [],
              "visualization_settings": {"text": "Numbers refresh nightly"}},
         ]},
        {"id": 2, "name": "Account health", "collection_id": 2, "parameters": [],
         "dashcards": [{"id": 21, "card_id": c, "series": [], "parameter_mappings": []}
                       for c in (2, 3, 6, 8)]},
    ]
    return d


def demo_instance() -> MetabaseData:
    """The demo's Metabase over acme-prod's replicated Salesforce data."""
    d = MetabaseData()
    T, I, F, Dc, B, Dt, Da = ("type/Text", "type/Integer", "type/Float", "type/Decimal",
                              "type/Boolean", "type/DateTime", "type/Date")
    PK, FK = "type/PK", "type/FK"
    d.add_database(2, "Acme Warehouse", "postgres", {
        "salesforce.account": [
            ("id", T, PK), ("name", T, "type/Name"), ("industry", T), ("customer_tier__c", T),
            ("region__c", T), ("sub_region__c", T), ("annual_contract_value__c", Dc, "type/Currency"),
            ("health_score__c", F, "type/Score"), ("renewal_date__c", Da), ("_fivetran_synced", Dt)],
        "salesforce.opportunity": [
            ("id", T, PK), ("accountid", T, FK, "salesforce.account.id"), ("name", T),
            ("amount", Dc, "type/Currency"), ("stagename", T), ("closedate", Da),
            ("services_type__c", T), ("program__c", T, FK, "salesforce.program__c.id"),
            ("margin__c", F), ("_fivetran_synced", Dt)],
        "salesforce.program__c": [
            ("id", T, PK), ("name", T), ("account__c", T, FK, "salesforce.account.id"),
            ("status__c", T), ("budget__c", Dc, "type/Currency"), ("start_date__c", Da),
            ("end_date__c", Da), ("_fivetran_synced", Dt)],
        "salesforce.servicedelivery__c": [
            ("id", T, PK), ("program__c", T, FK, "salesforce.program__c.id"),
            ("invoice__c", T, FK, "salesforce.invoice__c.id"), ("hours__c", F), ("rate__c", Dc),
            ("amount__c", Dc, "type/Currency"), ("billable__c", B), ("delivery_date__c", Da),
            ("status__c", T), ("_fivetran_synced", Dt)],
        "salesforce.invoice__c": [
            ("id", T, PK), ("account__c", T, FK, "salesforce.account.id"),
            ("amount__c", Dc, "type/Currency"), ("status__c", T), ("due_date__c", Da),
            ("paid__c", B), ("days_overdue__c", I), ("_fivetran_synced", Dt)],
        "salesforce.contact": [
            ("id", T, PK), ("accountid", T, FK, "salesforce.account.id"), ("firstname", T),
            ("lastname", T), ("email", T, "type/Email"), ("is_primary__c", B),
            ("_fivetran_synced", Dt)],
        "analytics.account_health_daily": [
            ("account_id", T, FK, "salesforce.account.id"), ("day", Da), ("health_score", F)],
        "analytics.revenue_monthly": [("month", Da), ("region", T), ("revenue", Dc)],
    })
    fid, tid = d.fid, d.tid
    d.collections = [
        {"id": 10, "name": "Revenue", "location": "/", "personal_owner_id": None},
        {"id": 11, "name": "Delivery", "location": "/", "personal_owner_id": None},
    ]
    d.cards = [
        _card(101, "ACV by industry and tier", 2, _native(
            "SELECT a.industry, a.customer_tier__c AS tier,\n"
            "       SUM(a.annual_contract_value__c) AS acv, COUNT(*) AS accounts\n"
            "FROM salesforce.account a\n"
            "WHERE a.industry IS NOT NULL [[AND a.region__c = {{region}}]]\n"
            "GROUP BY 1, 2 ORDER BY acv DESC",
            {"region": _text_tag("region")}), collection_id=10, display="bar"),
        _card(102, "Open pipeline by stage", 2, {"type": "query", "query": {
            "source-table": tid("salesforce.opportunity"),
            "aggregation": [["sum", _f(fid("salesforce.opportunity.amount"))], ["count"]],
            "breakout": [_f(fid("salesforce.opportunity.stagename"))],
            "filter": ["not-null", _f(fid("salesforce.opportunity.services_type__c"))],
        }}, collection_id=10, display="bar"),
        _card(103, "Won amount by customer tier", 2, {"type": "query", "query": {
            "source-table": tid("salesforce.opportunity"),
            "aggregation": [["sum", _f(fid("salesforce.opportunity.amount"))]],
            "breakout": [_f(fid("salesforce.account.customer_tier__c"),
                            **{"source-field": fid("salesforce.opportunity.accountid")})],
            "filter": ["=", _f(fid("salesforce.opportunity.stagename")), "Closed Won"],
        }}, collection_id=10, display="pie"),
        _card(104, "Total pipeline", 2, {"type": "query", "query": {
            "source-table": tid("salesforce.opportunity"),
            "aggregation": [["sum", _f(fid("salesforce.opportunity.amount"))]],
        }}, type_="metric", collection_id=10, display="scalar"),
        _card(105, "Overdue invoices by region", 2, _native(
            "WITH overdue AS (\n"
            "  SELECT i.account__c, i.amount__c, i.days_overdue__c\n"
            "  FROM salesforce.invoice__c i\n"
            "  WHERE i.status__c = 'Overdue' AND NOT i.paid__c)\n"
            "SELECT a.region__c, COUNT(*) AS invoices, SUM(o.amount__c) AS overdue_amount\n"
            "FROM overdue o JOIN salesforce.account a ON a.id = o.account__c\n"
            "GROUP BY 1", {}), collection_id=11, display="table"),
        _card(106, "Program delivery", 2, {"type": "query", "query": {
            "source-table": tid("salesforce.servicedelivery__c"),
            "fields": [_f(fid("salesforce.servicedelivery__c.hours__c")),
                       _f(fid("salesforce.servicedelivery__c.amount__c")),
                       _f(fid("salesforce.servicedelivery__c.billable__c")),
                       _f(fid("salesforce.servicedelivery__c.delivery_date__c"))],
            "joins": [{
                "alias": "Program", "source-table": tid("salesforce.program__c"),
                "condition": ["=", _f(fid("salesforce.servicedelivery__c.program__c")),
                              _f(fid("salesforce.program__c.id"), **{"join-alias": "Program"})],
                "fields": [_f(fid("salesforce.program__c.name"), **{"join-alias": "Program"}),
                           _f(fid("salesforce.program__c.status__c"), **{"join-alias": "Program"})],
            }],
        }}, type_="model", collection_id=11),
        _card(107, "Delivered hours by program status", 2, {"type": "query", "query": {
            "source-table": "card__106",
            "aggregation": [["sum", ["field", "hours__c", {"base-type": "type/Float"}]]],
            "breakout": [["field", "Program__status__c", {"base-type": "type/Text"}]],
        }}, collection_id=11, display="bar"),
        _card(108, "Program utilisation", 2, _native(
            "SELECT p.name AS program, p.budget__c,\n"
            "       SUM(sd.amount__c) AS delivered, SUM(sd.hours__c) AS hours\n"
            "FROM salesforce.program__c AS p\n"
            "JOIN salesforce.servicedelivery__c AS sd ON sd.program__c = p.id\n"
            "WHERE sd.billable__c AND {{delivery_date}}\n"
            "GROUP BY 1, 2",
            {"delivery_date": _dim_tag("delivery_date",
                                       fid("salesforce.servicedelivery__c.delivery_date__c"),
                                       "date/all-options")}), collection_id=11),
        _card(109, "Accounts with a primary contact", 2, _native(
            "SELECT a.customer_tier__c, COUNT(DISTINCT c.accountid) AS accounts,\n"
            "       COUNT(c.email) AS contacts_with_email\n"
            "FROM salesforce.contact c\n"
            "JOIN salesforce.account a ON a.id = c.accountid\n"
            "WHERE c.is_primary__c\n"
            "GROUP BY 1", {}), collection_id=11, display="bar"),
    ]
    d.dashboards = [
        {"id": 20, "name": "Revenue & pipeline", "collection_id": 10,
         "parameters": [{"id": "r1", "name": "Region", "slug": "region", "type": "string/="}],
         "dashcards": [
             {"id": 201, "card_id": 101, "series": [], "parameter_mappings": [
                 {"parameter_id": "r1", "card_id": 101,
                  "target": ["variable", ["template-tag", "region"]]}]},
             {"id": 202, "card_id": 102, "series": [], "parameter_mappings": [
                 {"parameter_id": "r1", "card_id": 102,
                  "target": ["dimension", _f(fid("salesforce.account.region__c"), **{
                      "source-field": fid("salesforce.opportunity.accountid")})]}]},
             {"id": 203, "card_id": 103, "series": [], "parameter_mappings": []},
             {"id": 204, "card_id": 104, "series": [], "parameter_mappings": []},
         ]},
        {"id": 21, "name": "Delivery & billing", "collection_id": 11, "parameters": [],
         "dashcards": [{"id": 210 + i, "card_id": c, "series": [], "parameter_mappings": []}
                       for i, c in enumerate((105, 106, 107, 108, 109))]},
    ]
    for c in d.cards:
        c["creator_id"], c["creator"] = _DEMO_CREATOR["id"], dict(_DEMO_CREATOR)
        c["last-edit-info"] = {k: _DEMO_CREATOR[k] for k in ("email", "first_name", "last_name")}
    return d


# -- serialising as a given version would --------------------------------------------------------


class Shapes:
    """Response bodies as Metabase ``version`` answers them (no auth, no faults)."""

    def __init__(self, data: MetabaseData, version: tuple[int, int] = (0, 50)) -> None:
        self.data = data
        self.version = version

    def get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        d = self.data
        if parts == ["api", "database"]:
            items = [{k: v for k, v in db.items() if k != "tables"} for db in d.databases]
            return 200, (items if self.version < (0, 40) else {"data": items, "total": len(items)})
        if len(parts) == 4 and parts[:2] == ["api", "database"] and parts[3] == "metadata":
            db = next((x for x in d.databases if str(x["id"]) == parts[2]), None)
            return (200, copy.deepcopy(db)) if db else (404, "Not found.")
        if parts == ["api", "card"]:
            return 200, [self.card(c, query) for c in d.cards]
        if len(parts) == 3 and parts[:2] == ["api", "card"]:
            c = next((x for x in d.cards if str(x["id"]) == parts[2]), None)
            return (200, self.card(c, query)) if c else (404, "Not found.")
        if parts == ["api", "dashboard"]:
            return 200, [{k: v for k, v in x.items() if k != "dashcards"} for x in d.dashboards]
        if len(parts) == 3 and parts[:2] == ["api", "dashboard"]:
            x = next((y for y in d.dashboards if str(y["id"]) == parts[2]), None)
            if not x:
                return 404, "Not found."
            out = copy.deepcopy(x)
            cards = {c["id"]: c for c in d.cards}
            for dc in out["dashcards"]:
                dc["dashboard_id"] = x["id"]
                dc["card"] = self.card(cards[dc["card_id"]], query) if dc["card_id"] in cards else {}
            if self.version < (0, 48):
                out["ordered_cards"] = out.pop("dashcards")
            return 200, out
        if parts == ["api", "collection"]:
            return 200, copy.deepcopy(d.collections)
        if parts == ["api", "native-query-snippet"]:
            return 200, copy.deepcopy(d.snippets)
        return 404, "API endpoint does not exist."

    def card(self, card: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        out = copy.deepcopy(card)
        if self.version < (0, 49):
            out["dataset"] = out.pop("type") == "model"
        if self.version >= (0, 57) and query.get("legacy-mbql") != "true":
            out["dataset_query"] = to_mbql5(out["dataset_query"], out["id"])
        return out

    def recorded(self) -> dict[str, Any]:
        """Every GET the extractor makes, keyed as ``http.recorded_key`` keys them."""
        paths = ["/api/database", "/api/collection", "/api/card", "/api/dashboard",
                 "/api/native-query-snippet"]
        paths += [f"/api/database/{db['id']}/metadata" for db in self.data.databases]
        paths += [f"/api/dashboard/{x['id']}" for x in self.data.dashboards]
        out = {}
        for p in sorted(paths):
            status, body = self.get(p, {})
            assert status == 200, p
            out[f"GET {p}"] = body
        return out


def to_mbql5(dq: dict[str, Any], seed: int) -> dict[str, Any]:
    """A legacy ``dataset_query`` as Metabase ≥ 0.57 returns it (``lib/type``, ``stages``)."""
    counter = itertools.count()

    def uid() -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{seed}-{next(counter)}"))

    def clause(x: Any) -> Any:
        if isinstance(x, list) and x and isinstance(x[0], str):
            head = x[0]
            if head == "field":
                opts = {k: v for k, v in (x[2] or {}).items()} if len(x) > 2 else {}
                opts.setdefault("base-type", "type/*")
                return ["field", {"lib/uuid": uid(), **opts}, x[1]]
            return [head, {"lib/uuid": uid()}, *[clause(a) for a in x[1:]]]
        if isinstance(x, list):
            return [clause(a) for a in x]
        return x

    def tags(t: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(t)
        for tag in out.values():
            if "dimension" in tag:
                tag["dimension"] = clause(tag["dimension"])
        return out

    if dq.get("type") == "native":
        stage = {"lib/type": "mbql.stage/native", "native": dq["native"]["query"],
                 "template-tags": tags(dq["native"].get("template-tags") or {})}
        return {"lib/type": "mbql/query", "database": dq["database"], "stages": [stage]}

    def stage_of(q: dict[str, Any]) -> list[dict[str, Any]]:
        stages: list[dict[str, Any]] = []
        st: dict[str, Any] = {"lib/type": "mbql.stage/mbql"}
        src = q.get("source-table")
        if isinstance(src, str) and src.startswith("card__"):
            st["source-card"] = int(src[6:])
        elif src is not None:
            st["source-table"] = src
        if "source-query" in q:
            stages = stage_of(q["source-query"])
        for k in ("fields", "breakout", "aggregation", "order-by"):
            if k in q:
                st[k] = [clause(x) for x in q[k]]
        if "filter" in q:
            f = q["filter"]
            parts = f[1:] if f[0] == "and" else [f]
            st["filters"] = [clause(x) for x in parts]
        if "limit" in q:
            st["limit"] = q["limit"]
        if "joins" in q:
            st["joins"] = [{
                "lib/type": "mbql/join", "alias": j.get("alias"), "strategy": "left-join",
                "stages": [{"lib/type": "mbql.stage/mbql", **(
                    {"source-card": int(j["source-table"][6:])}
                    if str(j.get("source-table", "")).startswith("card__")
                    else {"source-table": j.get("source-table")})}],
                "conditions": [clause(j["condition"])] if "condition" in j else [],
                "fields": [clause(x) for x in j["fields"]] if isinstance(j.get("fields"), list)
                else j.get("fields", "all"),
            } for j in q["joins"]]
        return stages + [st]

    return {"lib/type": "mbql/query", "database": dq["database"], "stages": stage_of(dq["query"])}


# -- the server ----------------------------------------------------------------------------------


@dataclass
class _Faults:
    rate_limits: dict[str, list[Any]] = field(default_factory=dict)  # path → [times, retry_after]
    malformed_pages: dict[str, int] = field(default_factory=dict)


class FakeMetabase:
    def __init__(self, data: MetabaseData | None = None, *, version: tuple[int, int] = (0, 50),
                 api_key: str = FAKE_API_KEY, username: str = FAKE_USERNAME,
                 password: str = FAKE_PASSWORD) -> None:
        self.data = data or small_instance()
        self.version = version
        self.api_key = api_key
        self.username = username
        self.password = password
        self.sessions: set[str] = set()
        self.faults = _Faults()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_DELETE(self) -> None:  # noqa: N802
                fake._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeMetabase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # fault knobs
    def rate_limit(self, path: str, times: int = 1, retry_after: str = "0") -> None:
        self.faults.rate_limits[path] = [times, retry_after]

    def malformed(self, path: str, times: int = 1) -> None:
        self.faults.malformed_pages[path] = times

    def calls(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for r in self.requests if (method is None or r["method"] == method)
                   and (path is None or r["path"] == path))

    # handling
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        status, body, headers, raw_out = self._route(h, method, path, query, raw)
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query,
                                  "status": status})
        if raw_out is None:
            if isinstance(body, str):
                raw_out, ctype = body.encode(), "text/plain; charset=utf-8"
            else:
                raw_out, ctype = json.dumps(body).encode(), "application/json;charset=utf-8"
        else:
            ctype = "application/json;charset=utf-8"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(raw_out)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw_out)

    def _route(self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, str],
               raw: bytes) -> tuple[int, Any, dict[str, str], bytes | None]:
        with self._lock:
            rl = self.faults.rate_limits.get(path)
            if rl and rl[0] > 0:
                rl[0] -= 1
                return 429, "Too many requests", {"Retry-After": rl[1]}, None
        if method == "POST" and path == "/api/session":
            try:
                creds = json.loads(raw or b"{}")
            except ValueError:
                return 400, {"errors": {"username": "value must be a non-blank string."}}, {}, None
            if creds.get("username") == self.username and creds.get("password") == self.password:
                sid = str(uuid.uuid4())
                with self._lock:
                    self.sessions.add(sid)
                return 200, {"id": sid}, {}, None
            return 401, {"errors": {"password": "did not match stored password"}}, {}, None
        key = h.headers.get("x-api-key")
        session = h.headers.get("X-Metabase-Session")
        if not ((key and key == self.api_key) or (session and session in self.sessions)):
            return 401, "Unauthenticated", {}, None
        if method == "DELETE" and path == "/api/session":
            self.sessions.discard(session or "")
            return 204, "", {}, None
        if method != "GET":
            return 404, "API endpoint does not exist.", {}, None
        status, body = Shapes(self.data, self.version).get(path, query)
        with self._lock:
            n = self.faults.malformed_pages.get(path, 0)
            if n > 0 and status == 200:
                self.faults.malformed_pages[path] = n - 1
                text = json.dumps(body).encode()
                return 200, None, {}, text[: max(1, len(text) // 2)]
        return status, body, {}, None


def write_demo_export(folder: Path = DEMO_EXPORT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "responses.json"
    data = Shapes(demo_instance(), (0, 50)).recorded()
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write-demo"]:
        print(write_demo_export())
    else:
        print("usage: python -m aicolleague_pipelines_tests.fakes.metabase --write-demo")
