"""Chargebee (API v2) extract: the product catalogue, custom fields and billing aggregates.

What is read (``GET``, Basic auth with the API key as user and an empty password)::

    /api/v2/items          plans, addons, charges       → ChargebeeItem nodes
    /api/v2/item_prices    prices of those items        → ChargebeeItemPrice nodes (child_of item)
    /api/v2/customers      people / companies that pay  → counts + custom field *types* only
    /api/v2/subscriptions  what they pay for            → counts by status, MRR per item price

Lists are ``{"list": [{"customer": {...}}, ...], "next_offset": "..."}``; the next page is
requested with ``offset=<next_offset>`` until ``next_offset`` is absent (``limit`` ≤ 100).

Customers are people: their names, emails, phones, addresses and custom field *values* never
leave this module. What comes out is the catalogue (items and prices are product data), the
custom fields' names and value types (``ChargebeeCustomField:<inst>/<entity>.<cf_name>``),
and aggregates: customer count and counts per billing country code, subscription counts per
status, MRR per currency / item / item price (currency minor units), and how many customers
carry a Salesforce link value and how many of those look like valid Salesforce ids.

``options`` (all optional)::

    salesforce_link:            # which custom field holds the Salesforce record id
      field: cf_sf_account_id   # default
      entity: customer          # customer | subscription
      object: Account
      sf_field: Account.Id
      id_prefix: "001"          # key prefix a valid id starts with (default: from object)
    page_size: 100              # 1..100
    mrr_statuses: [active, non_renewing]   # subscriptions counted in MRR

``base_url`` is ``https://<site>.chargebee.com`` (with or without ``/api/v2``).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from aicolleague_pipelines.lib.graph.model import CHILD_OF, Edge, Node
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.salesforce.ids import looks_like_sf_id
from aicolleague_pipelines.lib.salesforce.ids import sf_id_suffix as sf_id_checksum  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
MAX_PAGE_SIZE = 100
DEFAULT_LINK = {"field": "cf_sf_account_id", "entity": "customer", "object": "Account", "sf_field": "Account.Id"}
DEFAULT_MRR_STATUSES = ("active", "non_renewing")
#: Key prefixes of common Salesforce objects (the first three characters of a record id).
SF_KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Contract": "800",
    "Order": "801",
    "User": "005",
}
#: Months per billing period unit, to bring a price to a monthly amount.
_MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


# --------------------------------------------------------------------------------------------
# Helpers shared with the Intercom extract
# --------------------------------------------------------------------------------------------
def json_type(value: Any) -> str:
    """The JSON type name of a value (its type, never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def link_settings(cfg: PlatformConfig, defaults: dict[str, str]) -> dict[str, str]:
    raw = cfg.options.get("salesforce_link") or {}
    if not isinstance(raw, dict):
        raise PlatformError(
            cfg.name, "options.salesforce_link", "must be a mapping",
            f"e.g. salesforce_link: {defaults}",
        )
    out = dict(defaults)
    out.update({str(k): str(v) for k, v in raw.items() if v is not None})
    if "sf_field" not in raw and "object" in raw:
        out["sf_field"] = f"{out['object']}.Id"
    if "object" not in raw and "sf_field" in raw and "." in out["sf_field"]:
        out["object"] = out["sf_field"].split(".", 1)[0]
    if "id_prefix" not in out:
        prefix = SF_KEY_PREFIXES.get(out["object"])
        if prefix:
            out["id_prefix"] = prefix
    return out


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------------------------
# The extract
# --------------------------------------------------------------------------------------------
def extract_chargebee(cfg: PlatformConfig, *, http: PlatformHttp | None = None) -> PlatformExtract:
    """Read one Chargebee site (live or recorded) into metadata and aggregates."""
    started = time.monotonic()
    inst = cfg.name
    link = link_settings(cfg, DEFAULT_LINK)
    if link.get("entity") not in ("customer", "subscription"):
        raise PlatformError(
            inst, "options.salesforce_link.entity", f"unknown entity {link.get('entity')!r}",
            "use customer or subscription",
        )
    page_size = _page_size(cfg)
    mrr_statuses = set(cfg.options.get("mrr_statuses") or DEFAULT_MRR_STATUSES)

    own_http = http is None
    if http is None:
        http = PlatformHttp(cfg, headers={"Accept": "application/json"})
    root = _api_root(cfg)
    try:
        if cfg.export is None:
            key = cfg.secret("api_key_env")
            token = base64.b64encode(f"{key}:".encode()).decode("ascii")
            http.set_header("Authorization", f"Basic {token}")
        pages: Counter[str] = Counter()

        def records(resource: str, entity: str) -> Iterator[dict[str, Any]]:
            yield from _paged(http, inst, root, resource, entity, page_size, pages)

        ex = PlatformExtract(platform="chargebee", instance=inst, extracted_at=utc_now())

        # -- catalogue ----------------------------------------------------------------------
        items: dict[str, Node] = {}
        for item in records("items", "item"):
            item_id = str(item.get("id", ""))
            if not item_id:
                continue
            node = Node(
                key=f"ChargebeeItem:{inst}/{item_id}",
                type="ChargebeeItem",
                name=f"{inst}/{item_id}",
                attrs=_pick(item, "name", "type", "status", "item_family_id", "unit", "enabled_for_checkout"),
            )
            items[item_id] = node
        prices: dict[str, dict[str, Any]] = {}
        price_nodes: dict[str, Node] = {}
        edges: list[Edge] = []
        for price in records("item_prices", "item_price"):
            pid = str(price.get("id", ""))
            if not pid:
                continue
            prices[pid] = price
            attrs = _pick(
                price, "name", "item_id", "item_type", "status", "currency_code", "price",
                "pricing_model", "period", "period_unit", "trial_period", "trial_period_unit",
            )
            if isinstance(price.get("tiers"), list):
                attrs["tiers"] = len(price["tiers"])
            price_nodes[pid] = Node(
                key=f"ChargebeeItemPrice:{inst}/{pid}",
                type="ChargebeeItemPrice",
                name=f"{inst}/{pid}",
                attrs=attrs,
            )
            item_id = price.get("item_id")
            if item_id:
                item_id = str(item_id)
                if item_id not in items:
                    items[item_id] = Node(
                        key=f"ChargebeeItem:{inst}/{item_id}",
                        type="ChargebeeItem",
                        name=f"{inst}/{item_id}",
                        external=True,
                        attrs={"type": price.get("item_type")} if price.get("item_type") else {},
                    )
                edges.append(
                    Edge(price_nodes[pid].key, items[item_id].key, CHILD_OF, "chargebee:item_prices.item_id")
                )

        # -- customers (people: only types and counts leave this block) --------------------
        custom_fields: dict[tuple[str, str], dict[str, Any]] = {}
        link_field = link["field"]
        link_counts = Counter()

        def note_custom_fields(entity: str, record: dict[str, Any]) -> None:
            for name, value in record.items():
                if not name.startswith("cf_"):
                    continue
                slot = custom_fields.setdefault((entity, name), {"types": set(), "with_value": 0})
                slot["types"].add(json_type(value))
                if has_value(value):
                    slot["with_value"] += 1

        def note_link(entity: str, record: dict[str, Any]) -> None:
            if entity != link["entity"]:
                return
            link_counts["records"] += 1
            value = record.get(link_field)
            if not has_value(value):
                return
            link_counts["with_value"] += 1
            if looks_like_sf_id(value, link.get("id_prefix")):
                link_counts["valid"] += 1

        customer_count = 0
        countries: Counter[str] = Counter()
        for customer in records("customers", "customer"):
            customer_count += 1
            note_custom_fields("customer", customer)
            note_link("customer", customer)
            addr = customer.get("billing_address")
            country = addr.get("country") if isinstance(addr, dict) else None
            if isinstance(country, str) and len(country.strip()) == 2 and country.strip().isalpha():
                countries[country.strip().upper()] += 1
            else:
                countries["(none)"] += 1

        # -- subscriptions -------------------------------------------------------------------
        sub_count = 0
        by_status: Counter[str] = Counter()
        mrr_by_currency: dict[str, int] = defaultdict(int)
        mrr_by_price: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        mrr_by_item: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        subs_by_price: Counter[str] = Counter()
        computed_mrr = 0
        for sub in records("subscriptions", "subscription"):
            sub_count += 1
            status = str(sub.get("status") or "unknown")
            by_status[status] += 1
            note_custom_fields("subscription", sub)
            note_link("subscription", sub)
            sub_items = sub.get("subscription_items")
            sub_items = [si for si in sub_items if isinstance(si, dict)] if isinstance(sub_items, list) else []
            for si in sub_items:
                if si.get("item_price_id"):
                    subs_by_price[str(si["item_price_id"])] += 1
            if status not in mrr_statuses:
                continue
            currency = str(sub.get("currency_code") or "").upper() or "(unknown)"
            item_mrr = {}
            for si in sub_items:
                pid = str(si.get("item_price_id") or "")
                if pid and si.get("item_type") != "charge":  # one-off charges are not recurring
                    item_mrr[pid] = _item_monthly(si, prices.get(pid))
            if isinstance(sub.get("mrr"), (int, float)) and not isinstance(sub.get("mrr"), bool):
                total = int(sub["mrr"])
            else:
                total = sum(item_mrr.values())
                computed_mrr += 1
            mrr_by_currency[currency] += total
            for pid, amount in item_mrr.items():
                mrr_by_price[pid][currency] += amount
                item_id = prices.get(pid, {}).get("item_id")
                if item_id:
                    mrr_by_item[str(item_id)][currency] += amount

        # -- nodes, links, aggregates ---------------------------------------------------------
        for pid, node in price_nodes.items():
            node.attrs["subscriptions"] = subs_by_price.get(pid, 0)
            if pid in mrr_by_price:
                node.attrs["mrr"] = dict(sorted(mrr_by_price[pid].items()))
        cf_nodes: list[Node] = []
        link_entity = link["entity"]
        if (link_entity, link_field) not in custom_fields:
            custom_fields[(link_entity, link_field)] = {"types": set(), "with_value": 0, "unseen": True}
            ex.findings.append(
                f"the Salesforce link field {link_entity}.{link_field} was not seen on any "
                f"{link_entity} — check options.salesforce_link.field"
            )
        for (entity, name), info in sorted(custom_fields.items()):
            attrs: dict[str, Any] = {
                "entity": entity,
                "field": name,
                "value_types": sorted(info["types"]),
                "records_with_value": info["with_value"],
            }
            if info.get("unseen"):
                attrs["seen"] = False
            if (entity, name) == (link_entity, link_field):
                attrs["salesforce_link"] = link["sf_field"]
            cf_nodes.append(
                Node(
                    key=f"ChargebeeCustomField:{inst}/{entity}.{name}",
                    type="ChargebeeCustomField",
                    name=f"{inst}/{entity}.{name}",
                    attrs=attrs,
                )
            )
        ex.nodes = [*items.values(), *price_nodes.values(), *cf_nodes]
        ex.edges = edges
        ex.links = [
            SalesforceLink(
                platform_key=f"ChargebeeCustomField:{inst}/{link_entity}.{link_field}",
                sf_object=link["object"],
                sf_field=link.get("sf_field") or None,
                evidence=f"chargebee:{link_entity}.{link_field} (options.salesforce_link)",
                org=cfg.org,
            )
        ]
        ex.aggregates = {
            "items": {"count": len([n for n in items.values() if not n.external]),
                      "by_type": _count_by(items.values(), "type")},
            "item_prices": {"count": len(price_nodes)},
            "customers": {"count": customer_count, "by_country": dict(sorted(countries.items()))},
            "subscriptions": {"count": sub_count, "by_status": dict(sorted(by_status.items()))},
            "mrr": {
                "unit": "currency minor units per month",
                "statuses": sorted(mrr_statuses),
                "by_currency": dict(sorted(mrr_by_currency.items())),
                "by_item": {k: dict(sorted(v.items())) for k, v in sorted(mrr_by_item.items())},
                "by_item_price": {k: dict(sorted(v.items())) for k, v in sorted(mrr_by_price.items())},
                "subscriptions_computed_from_items": computed_mrr,
            },
            "salesforce_link": ex.link_coverage({"entity": link_entity, "field": link_field}, link, link_counts),
        }
        ex.stats = {
            **http.stats,
            "pages": dict(sorted(pages.items())),
            "records": {"items": len(items), "item_prices": len(price_nodes),
                        "customers": customer_count, "subscriptions": sub_count},
            "duration_s": round(time.monotonic() - started, 3),
        }
        log.info(
            "chargebee %s: %d items, %d item prices, %d customers, %d subscriptions, %d calls",
            inst, len(items), len(price_nodes), customer_count, sub_count, http.stats["calls"],
        )
        return ex
    finally:
        if own_http:
            http.close()


def _api_root(cfg: PlatformConfig) -> str:
    """Where ``/api/v2`` lives: absolute (``base_url`` with or without ``/api/v2``) when live,
    so any :class:`PlatformHttp` built on the config works; path-only for recorded exports."""
    if cfg.export is not None or not cfg.base_url:
        return API_PREFIX
    parts = urlsplit(cfg.base_url)
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}{path}{API_PREFIX}"


def _page_size(cfg: PlatformConfig) -> int:
    try:
        size = int(cfg.options.get("page_size", MAX_PAGE_SIZE))
    except (TypeError, ValueError):
        raise PlatformError(cfg.name, "options.page_size", "must be a number", "1..100") from None
    return max(1, min(MAX_PAGE_SIZE, size))


def _paged(
    http: PlatformHttp, inst: str, root: str, resource: str, entity: str, limit: int, pages: Counter[str]
) -> Iterator[dict[str, Any]]:
    """Every ``entity`` record of a Chargebee list, page by page."""
    path = f"{root}/{resource}"
    offset: str | None = None
    seen_offsets: set[str] = set()
    while True:
        params: dict[str, Any] = {"limit": limit}
        if offset is not None:
            params["offset"] = offset
        body = http.get_json(path, params)
        pages[resource] += 1
        if not isinstance(body, dict) or not isinstance(body.get("list"), list):
            raise PlatformError(
                inst, f"GET {path}", "unexpected response: no 'list' array (page "
                f"{pages[resource]})", "is base_url a Chargebee site (https://<site>.chargebee.com)?",
            )
        for entry in body["list"]:
            record = entry.get(entity) if isinstance(entry, dict) else None
            if isinstance(record, dict):
                yield record
        nxt = body.get("next_offset")
        if not nxt:
            return
        offset = str(nxt)
        if offset in seen_offsets:
            raise PlatformError(inst, f"GET {path}", "the same next_offset came back twice",
                                "the platform is paging in a loop; retry later")
        seen_offsets.add(offset)


def _pick(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: record[k] for k in keys if record.get(k) is not None}


def _count_by(nodes: Any, attr: str) -> dict[str, int]:
    c = Counter(str(n.attrs.get(attr) or "unknown") for n in nodes if not n.external)
    return dict(sorted(c.items()))


def _item_monthly(si: dict[str, Any], price: dict[str, Any] | None) -> int:
    """A subscription item's monthly amount in minor units (amount, or unit price × quantity)."""
    amount = si.get("amount")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        unit = si.get("unit_price")
        if not isinstance(unit, (int, float)) or isinstance(unit, bool):
            unit = (price or {}).get("price")
        if not isinstance(unit, (int, float)) or isinstance(unit, bool):
            return 0
        qty = si.get("quantity")
        qty = qty if isinstance(qty, (int, float)) and not isinstance(qty, bool) else 1
        amount = unit * qty
    period = (price or {}).get("period") or 1
    unit_name = (price or {}).get("period_unit") or "month"
    months = _MONTHS_PER.get(str(unit_name), 1.0) * (period if isinstance(period, (int, float)) else 1)
    if months <= 0:
        return 0
    return int(round(amount / months))
