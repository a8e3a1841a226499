"""A loopback fake Chargebee site (API v2) speaking the real wire format over plain HTTP.

``FakeChargebee(site)`` starts a threaded ``http.server`` on a free 127.0.0.1 port serving an
in-memory site; the real extract (httpx through :class:`PlatformHttp`) talks to it.

What it speaks (REFERENCE.md §4):

- Basic auth, API key as user and an empty password; otherwise 401 with Chargebee's error
  body ``{message, type, api_error_code, http_status_code}``.
- ``GET /api/v2/items``, ``/item_prices``, ``/customers``, ``/subscriptions``: lists
  ``{"list": [{"customer": {...}}], "next_offset": "[\\"<ts>\\",\\"<n>\\"]"}`` — ``next_offset``
  absent on the last page; ``limit`` 1..100 (else 400 ``param: limit``); a bad ``offset`` is
  a 400. Subscription entries also carry the subscriber's ``customer`` (as Chargebee does).
- Faults (``fake.fail(kind, times, path_contains)``): ``"429"`` (rate limited,
  ``api_request_limit_exceeded``), ``"500"``, ``"truncate"`` (a 200 whose JSON body is cut
  in half).

Every request is recorded in ``fake.requests`` (method, path, query, status, auth ok) and
every 200 body in ``fake.responses`` keyed like :func:`recorded_key` (to write exports).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aicolleague_pipelines.lib.platforms.chargebee import sf_id_checksum
from aicolleague_pipelines.lib.platforms.http import recorded_key
from aicolleague_pipelines_tests.fakes.loopback import LoopbackFake

FAKE_CHARGEBEE_KEY = "test_FAKESECRET-cb-key-8c1d2e"
RESOURCES = {"items": "item", "item_prices": "item_price", "customers": "customer", "subscriptions": "subscription"}
_TS = 1_700_000_000_000


def account_id(n: int) -> str:
    """A valid 18-character Account id (prefix 001, correct case-safe suffix)."""
    id15 = f"001Dn{n:07d}Xa" + "Qz"[n % 2]
    return id15 + sf_id_checksum(id15)


@dataclass
class Site:
    items: list[dict[str, Any]] = field(default_factory=list)
    item_prices: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)


def build_site(
    n_customers: int = 25,
    *,
    person: Any = None,
    link_value: Any = None,
    statuses: tuple[str, ...] = ("active", "active", "active", "in_trial", "non_renewing", "cancelled", "paused"),
    countries: tuple[str | None, ...] = ("US", "GB", "DE", "US", "FR", None),
) -> Site:
    """A deterministic site: 3 plans + 2 addons + 1 charge, prices in USD/EUR, customers with
    one subscription each.

    ``person(i)`` → dict of the personal fields of customer ``i`` (first_name, last_name, email,
    phone, company, line1, city, cf_notes …); ``link_value(i)`` → the ``cf_sf_account_id`` value
    (None = absent).
    """
    person = person or (lambda i: {
        "first_name": "Test", "last_name": f"Person {i}", "email": f"test.person{i}@example.com",
        "phone": f"+1 555 010 {i:04d}", "company": f"Example Co {i}", "line1": f"{i} Example Street",
        "city": "Springfield", "cf_notes": f"Test note {i}",
    })
    if link_value is None:
        def link_value(i: int) -> Any:
            if i % 10 == 7:
                return None  # missing
            if i % 10 == 3:
                return f"ACME-{i:04d}"  # an old ERP key, not a Salesforce id
            return account_id(i)
    site = Site()
    plans = [("starter", "Starter", 2900), ("growth", "Growth", 9900), ("enterprise", "Enterprise", 49900)]
    for pid, name, cents in plans:
        site.items.append({"id": pid, "name": name, "type": "plan", "status": "active", "item_family_id": "acme-app",
                           "enabled_for_checkout": True, "object": "item", "resource_version": _TS})
        site.item_prices.append({"id": f"{pid}-USD-Monthly", "name": f"{name} USD Monthly", "item_id": pid,
                                 "item_type": "plan", "status": "active", "currency_code": "USD", "price": cents,
                                 "pricing_model": "flat_fee", "period": 1, "period_unit": "month", "object": "item_price"})
        site.item_prices.append({"id": f"{pid}-EUR-Yearly", "name": f"{name} EUR Yearly", "item_id": pid,
                                 "item_type": "plan", "status": "active", "currency_code": "EUR", "price": cents * 12,
                                 "pricing_model": "flat_fee", "period": 1, "period_unit": "year", "object": "item_price"})
    site.items.append({"id": "extra-seats", "name": "Extra seats", "type": "addon", "status": "active",
                       "item_family_id": "acme-app", "unit": "seat", "object": "item"})
    site.item_prices.append({"id": "extra-seats-USD-Monthly", "name": "Extra seats USD Monthly", "item_id": "extra-seats",
                             "item_type": "addon", "status": "active", "currency_code": "USD", "price": 500,
                             "pricing_model": "per_unit", "period": 1, "period_unit": "month", "object": "item_price"})
    site.items.append({"id": "priority-support", "name": "Priority support", "type": "addon", "status": "active",
                       "item_family_id": "acme-app", "object": "item"})
    site.item_prices.append({"id": "priority-support-USD-Monthly", "name": "Priority support USD Monthly",
                             "item_id": "priority-support", "item_type": "addon", "status": "active",
                             "currency_code": "USD", "pricing_model": "tiered", "period": 1, "period_unit": "month",
                             "tiers": [{"starting_unit": 1, "ending_unit": 10, "price": 1000},
                                       {"starting_unit": 11, "price": 800}], "object": "item_price"})
    site.items.append({"id": "onboarding", "name": "Onboarding", "type": "charge", "status": "active", "object": "item"})
    site.item_prices.append({"id": "onboarding-USD", "name": "Onboarding USD", "item_id": "onboarding",
                             "item_type": "charge", "status": "active", "currency_code": "USD", "price": 150000,
                             "pricing_model": "flat_fee", "object": "item_price"})
    prices = {p["id"]: p for p in site.item_prices}
    for i in range(1, n_customers + 1):
        p = person(i)
        cust: dict[str, Any] = {
            "id": f"cust_{i:05d}", "first_name": p.get("first_name"), "last_name": p.get("last_name"),
            "email": p.get("email"), "phone": p.get("phone"), "company": p.get("company"),
            "auto_collection": "on", "net_term_days": 0, "allow_direct_debit": False,
            "created_at": 1_690_000_000 + i * 3600, "taxability": "taxable", "deleted": False,
            "object": "customer", "preferred_currency_code": "EUR" if i % 4 == 0 else "USD",
            "cf_notes": p.get("cf_notes"), "cf_segment": "smb" if i % 3 else "enterprise",
        }
        country = countries[i % len(countries)]
        if country:
            cust["billing_address"] = {"first_name": p.get("first_name"), "last_name": p.get("last_name"),
                                       "line1": p.get("line1"), "city": p.get("city"), "country": country,
                                       "validation_status": "not_validated", "object": "billing_address"}
        value = link_value(i)
        if value is not None:
            cust["cf_sf_account_id"] = value
        site.customers.append(cust)
        plan = plans[i % 3][0]
        eur = i % 4 == 0
        main = prices[f"{plan}-EUR-Yearly" if eur else f"{plan}-USD-Monthly"]
        sub_items = [{"item_price_id": main["id"], "item_type": "plan", "quantity": 1, "unit_price": main["price"],
                      "amount": main["price"], "object": "subscription_item"}]
        if not eur and i % 5 == 0:
            seats = 1 + i % 4
            sub_items.append({"item_price_id": "extra-seats-USD-Monthly", "item_type": "addon", "quantity": seats,
                              "unit_price": 500, "object": "subscription_item"})  # no amount: price × quantity
        if not eur and i % 6 == 0:
            sub_items.append({"item_price_id": "onboarding-USD", "item_type": "charge", "quantity": 1,
                              "unit_price": 150000, "amount": 150000, "object": "subscription_item"})
        status = statuses[i % len(statuses)]
        sub: dict[str, Any] = {
            "id": f"sub_{i:05d}", "customer_id": cust["id"], "status": status,
            "currency_code": "EUR" if eur else "USD", "billing_period": 1,
            "billing_period_unit": "year" if eur else "month", "created_at": cust["created_at"] + 60,
            "subscription_items": sub_items, "object": "subscription", "deleted": False,
            "cf_renewal_owner_note": p.get("cf_notes"),
        }
        if i % 2 == 0:  # half carry Chargebee's own mrr; the rest are computed
            sub["mrr"] = expected_sub_mrr(sub, prices) if status in ("active", "non_renewing") else 0
        site.subscriptions.append(sub)
    return site


def expected_sub_mrr(sub: dict[str, Any], prices: dict[str, dict[str, Any]]) -> int:
    """Reference MRR of a subscription (minor units/month), excluding one-off charges."""
    total = 0
    for si in sub["subscription_items"]:
        if si.get("item_type") == "charge":
            continue
        amount = si.get("amount", si.get("unit_price", 0) * si.get("quantity", 1))
        unit = prices[si["item_price_id"]].get("period_unit", "month")
        total += round(amount / 12) if unit == "year" else amount
    return total


class FakeChargebee(LoopbackFake):
    def __init__(self, site: Site | None = None, *, api_key: str = FAKE_CHARGEBEE_KEY) -> None:
        self.site = site or build_site()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.responses: dict[str, Any] = {}
        self._serve()

    @property
    def base_url(self) -> str:
        return self.root_url + "/api/v2"

    # ----------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        auth_ok = h.headers.get("Authorization") == "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        record = {"method": "GET", "path": path, "query": query, "auth_ok": auth_ok}
        self.requests.append(record)

        def send(status: int, body: Any, *, raw: bytes | None = None) -> None:
            record["status"] = status
            data = raw if raw is not None else json.dumps(body).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json;charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        def error(status: int, message: str, type_: str, code: str, param: str | None = None) -> None:
            body = {"message": message, "type": type_, "api_error_code": code, "error_code": code,
                    "error_msg": message, "http_status_code": status}
            if param:
                body["param"] = param
            send(status, body)

        if not auth_ok:
            return error(401, "Sorry, authentication failed. Invalid api key", "authentication",
                         "api_authentication_failed")
        fault = self._take_fault(path)
        if fault == "429":
            return error(429, "Sorry, access has been blocked temporarily due to request count exceeding "
                         "acceptable limits. Please try after some time.", "rate_limit", "api_request_limit_exceeded")
        if fault == "500":
            return error(500, "Sorry, something went wrong", "internal", "internal_error")
        resource = path.removeprefix("/api/v2/")
        if not path.startswith("/api/v2/") or resource not in RESOURCES:
            return error(404, f"Sorry, we couldn't find that resource", "invalid_request", "resource_not_found")
        try:
            limit = int(query.get("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return error(400, "limit : The value is invalid. It must be between 1 and 100", "invalid_request",
                         "param_wrong_value", "limit")
        start = 0
        if "offset" in query:
            try:
                ts, n = json.loads(query["offset"])
                start = int(n)
                assert ts == str(_TS) and start > 0
            except Exception:
                return error(400, "offset : invalid value", "invalid_request", "param_wrong_value", "offset")
        rows = getattr(self.site, resource)
        entity = RESOURCES[resource]
        page = rows[start : start + limit]
        customers = {c["id"]: c for c in self.site.customers}
        entries = []
        for r in page:
            entry = {entity: r}
            if entity == "subscription" and r.get("customer_id") in customers:
                entry["customer"] = customers[r["customer_id"]]
            entries.append(entry)
        body: dict[str, Any] = {"list": entries}
        if start + limit < len(rows):
            body["next_offset"] = json.dumps([str(_TS), str(start + limit)], separators=(",", ":"))
        if fault == "truncate":
            data = json.dumps(body).encode()
            return send(200, None, raw=data[: len(data) // 2])
        self.responses[recorded_key("GET", path, query)] = body
        send(200, body)
