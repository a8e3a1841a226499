"""Intercom (REST API 2.x) extract: the data attribute schema and aggregate counts.

What is read (``GET``, ``Authorization: Bearer <token>``, ``Intercom-Version: 2.11``)::

    /data_attributes?model=contact|company|conversation  → IntercomAttribute nodes
    /contacts           cursor paging (pages.next.starting_after, per_page ≤ 150)
    /conversations      cursor paging, list under "conversations"
    /companies          page-numbered (?page=N&per_page=50) up to 10,000 companies; beyond
                        that /companies/scroll with scroll_param (from the start, de-duplicated)
    /tags

Contacts and conversations are people: names, emails, phones, locations, message bodies and
custom attribute *values* never leave this module. What comes out is the attribute schema
(``IntercomAttribute:<inst>/<model>.<name>`` with data type and custom flag) and aggregates:
contacts per role (user/lead), company count, conversations per state and per ISO week,
tag usage counts, and the coverage of the Salesforce link attribute (how many records carry
a value and how many values look like valid Salesforce ids — never the values).

``options`` (all optional)::

    api_version: "2.11"            # Intercom-Version header
    salesforce_link:
      model: company               # contact | company | conversation
      attribute: salesforce_id     # a custom attribute (or a standard one, e.g. company_id)
      sf_field: Account.Id
      object: Account              # default: from sf_field
      id_prefix: "001"             # default: from object
    per_page: 150                  # contacts and conversations (1..150)
    companies_per_page: 50         # 1..60
    company_page_limit: 10000      # companies reachable by page number before scrolling
    models: [contact, company, conversation]   # data attribute models to read

``base_url`` is ``https://api.intercom.io`` (or the EU / AU regional host).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.platforms.chargebee import has_value, link_settings, looks_like_sf_id, utc_now
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract, SalesforceLink

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2.11"
MODELS = ("contact", "company", "conversation")
DEFAULT_LINK = {"model": "company", "attribute": "salesforce_id", "object": "Account", "sf_field": "Account.Id"}
COMPANY_PAGE_LIMIT = 10_000


def extract_intercom(cfg: PlatformConfig, *, http: PlatformHttp | None = None) -> PlatformExtract:
    """Read one Intercom workspace (live or recorded) into schema nodes and aggregates."""
    started = time.monotonic()
    inst = cfg.name
    link = link_settings(cfg, DEFAULT_LINK)
    if link.get("model") not in MODELS:
        raise PlatformError(inst, "options.salesforce_link.model", f"unknown model {link.get('model')!r}",
                            "use contact, company or conversation")
    models = [str(m) for m in (cfg.options.get("models") or MODELS)]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise PlatformError(inst, "options.models", f"unknown model(s) {unknown}", "use contact, company, conversation")
    per_page = _int_option(cfg, "per_page", 150, 1, 150)
    companies_per_page = _int_option(cfg, "companies_per_page", 50, 1, 60)
    page_limit = _int_option(cfg, "company_page_limit", COMPANY_PAGE_LIMIT, 1, 10**9)

    own_http = http is None
    if http is None:
        http = PlatformHttp(cfg, headers={"Accept": "application/json"})
    try:
        http.set_header("Intercom-Version", str(cfg.options.get("api_version") or DEFAULT_VERSION))
        if cfg.export is None:
            http.set_header("Authorization", f"Bearer {cfg.secret('token_env')}")
        pages: Counter[str] = Counter()
        ex = PlatformExtract(platform="intercom", instance=inst, extracted_at=utc_now())
        link_model, link_attr = link["model"], link["attribute"]
        prefix = link.get("id_prefix")
        coverage: Counter[str] = Counter()

        def classify(record: dict[str, Any]) -> tuple[bool, bool]:
            """(carries a link value, the value looks like a Salesforce id) — never the value."""
            custom = record.get("custom_attributes")
            value = custom.get(link_attr) if isinstance(custom, dict) and link_attr in custom else record.get(link_attr)
            return has_value(value), has_value(value) and looks_like_sf_id(value, prefix)

        def count_link(flags: tuple[bool, bool]) -> None:
            coverage["records"] += 1
            coverage["with_value"] += flags[0]
            coverage["valid"] += flags[1]

        def note_link(model: str, record: dict[str, Any]) -> None:
            if model == link_model:
                count_link(classify(record))

        # -- schema ---------------------------------------------------------------------------
        nodes: dict[str, Node] = {}
        for model in models:
            body = http.get_json("/data_attributes", {"model": model})
            pages["data_attributes"] += 1
            for attr in _list(body, "data", inst, "GET /data_attributes"):
                name = attr.get("name")
                if not isinstance(name, str) or not name:
                    continue
                key = f"IntercomAttribute:{inst}/{model}.{name}"
                nodes[key] = Node(
                    key=key,
                    type="IntercomAttribute",
                    name=f"{inst}/{model}.{name}",
                    attrs={
                        "model": model,
                        "attribute": name,
                        "full_name": attr.get("full_name") or name,
                        "data_type": attr.get("data_type"),
                        "custom": bool(attr.get("custom")),
                        "archived": bool(attr.get("archived")),
                        **({"label": attr["label"]} if isinstance(attr.get("label"), str) else {}),
                        **({"options": len(attr["options"])} if isinstance(attr.get("options"), list) else {}),
                    },
                )

        # -- contacts (people: counted, never copied) ----------------------------------------
        roles: Counter[str] = Counter()
        for contact in _cursor(http, inst, "/contacts", "data", per_page, pages):
            roles[str(contact.get("role") or "unknown")] += 1
            note_link("contact", contact)

        # -- companies -------------------------------------------------------------------------
        companies, scrolled = _companies(http, inst, companies_per_page, page_limit, pages, classify)
        if link_model == "company":
            for flags in companies.values():
                count_link(flags)

        # -- conversations ----------------------------------------------------------------------
        states: Counter[str] = Counter()
        weeks: Counter[str] = Counter()
        tag_use: Counter[str] = Counter()
        untagged = 0
        conv_count = 0
        for conv in _cursor(http, inst, "/conversations", "conversations", per_page, pages):
            conv_count += 1
            state = conv.get("state")
            if not isinstance(state, str):
                state = "open" if conv.get("open") else "closed" if conv.get("open") is False else "unknown"
            states[state] += 1
            created = conv.get("created_at")
            if isinstance(created, (int, float)) and not isinstance(created, bool):
                year, week, _ = dt.datetime.fromtimestamp(created, dt.timezone.utc).isocalendar()
                weeks[f"{year}-W{week:02d}"] += 1
            else:
                weeks["(unknown)"] += 1
            tags = conv.get("tags")
            tag_list = tags.get("tags") if isinstance(tags, dict) else None
            names = {str(t.get("name")) for t in tag_list or [] if isinstance(t, dict) and t.get("name")}
            for name in names:
                tag_use[name] += 1
            if not names:
                untagged += 1
            note_link("conversation", conv)

        # -- tags ---------------------------------------------------------------------------------
        body = http.get_json("/tags")
        pages["tags"] += 1
        known_tags = {str(t.get("name")) for t in _list(body, "data", inst, "GET /tags") if t.get("name")}

        # -- link, aggregates -----------------------------------------------------------------------
        link_key = f"IntercomAttribute:{inst}/{link_model}.{link_attr}"
        if link_key not in nodes:
            nodes[link_key] = Node(
                key=link_key, type="IntercomAttribute", name=f"{inst}/{link_model}.{link_attr}",
                attrs={"model": link_model, "attribute": link_attr, "seen": False},
            )
            ex.findings.append(
                f"the Salesforce link attribute {link_model}.{link_attr} is not among the "
                f"workspace's data attributes — check options.salesforce_link"
            )
        nodes[link_key].attrs["salesforce_link"] = link.get("sf_field")
        ex.nodes = list(nodes.values())
        ex.links = [
            SalesforceLink(
                platform_key=link_key,
                sf_object=link["object"],
                sf_field=link.get("sf_field") or None,
                evidence=f"intercom:{link_model}.{link_attr} (options.salesforce_link)",
                org=cfg.org,
            )
        ]
        ex.aggregates = {
            "attributes": {
                "count": len([n for n in nodes.values() if n.attrs.get("seen", True)]),
                "custom": sum(1 for n in nodes.values() if n.attrs.get("custom")),
                "by_model": dict(sorted(Counter(n.attrs["model"] for n in nodes.values()
                                                if n.attrs.get("seen", True)).items())),
            },
            "contacts": {"count": sum(roles.values()), "by_role": dict(sorted(roles.items()))},
            "companies": {"count": len(companies), "read_by": "scroll" if scrolled else "page"},
            "conversations": {
                "count": conv_count,
                "by_state": dict(sorted(states.items())),
                "by_week": dict(sorted(weeks.items())),
            },
            "tags": {
                "count": len(known_tags),
                "conversations_by_tag": {name: tag_use.get(name, 0) for name in sorted(known_tags | set(tag_use))},
                "untagged_conversations": untagged,
            },
            "salesforce_link": ex.link_coverage({"model": link_model, "attribute": link_attr}, link, coverage),
        }
        ex.stats = {
            **http.stats,
            "pages": dict(sorted(pages.items())),
            "records": {"contacts": sum(roles.values()), "companies": len(companies),
                        "conversations": conv_count, "attributes": len(nodes), "tags": len(known_tags)},
            "duration_s": round(time.monotonic() - started, 3),
        }
        log.info(
            "intercom %s: %d attributes, %d contacts, %d companies, %d conversations, %d calls",
            inst, len(nodes), sum(roles.values()), len(companies), conv_count, http.stats["calls"],
        )
        return ex
    finally:
        if own_http:
            http.close()


def _int_option(cfg: PlatformConfig, name: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(cfg.options.get(name, default))
    except (TypeError, ValueError):
        raise PlatformError(cfg.name, f"options.{name}", "must be a number", f"{lo}..{hi}") from None
    return max(lo, min(hi, value))


def _list(body: Any, key: str, inst: str, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise PlatformError(inst, what, f"unexpected response: no {key!r} array",
                            "is base_url the Intercom API host (https://api.intercom.io)?")
    return [r for r in body[key] if isinstance(r, dict)]


def _cursor(
    http: PlatformHttp, inst: str, path: str, key: str, per_page: int, pages: Counter[str]
) -> Iterator[dict[str, Any]]:
    """Cursor paging: ``pages.next.starting_after`` until there is no next page."""
    after: str | None = None
    seen: set[str] = set()
    name = path.strip("/")
    while True:
        params: dict[str, Any] = {"per_page": per_page}
        if after:
            params["starting_after"] = after
        body = http.get_json(path, params)
        pages[name] += 1
        yield from _list(body, key, inst, f"GET {path}")
        nxt = (body.get("pages") or {}).get("next") if isinstance(body.get("pages"), dict) else None
        after = nxt.get("starting_after") if isinstance(nxt, dict) else None
        if not after:
            return
        if after in seen:
            raise PlatformError(inst, f"GET {path}", "the same starting_after cursor came back twice",
                                "the platform is paging in a loop; retry later")
        seen.add(after)


def _companies(
    http: PlatformHttp, inst: str, per_page: int, page_limit: int, pages: Counter[str],
    classify: Callable[[dict[str, Any]], tuple[bool, bool]],
) -> tuple[dict[str, tuple[bool, bool]], bool]:
    """Every company id → its link flags; page numbers up to ``page_limit`` companies, then
    the scroll API (from the start: ids de-duplicate what the pages already read)."""
    companies: dict[str, tuple[bool, bool]] = {}
    page = 1
    while True:
        body = http.get_json("/companies", {"page": page, "per_page": per_page})
        pages["companies"] += 1
        data = _list(body, "data", inst, "GET /companies")
        total = body.get("total_count")
        if page == 1 and isinstance(total, int) and total > page_limit:
            break  # more than page numbers can reach: scroll from the start
        for c in data:
            companies[str(c.get("id"))] = classify(c)
        meta = body.get("pages") if isinstance(body.get("pages"), dict) else {}
        total_pages = meta.get("total_pages")
        if not data or (isinstance(total_pages, int) and page >= total_pages) or (
            not isinstance(total_pages, int) and not meta.get("next")
        ):
            return companies, False
        if (page + 1) * per_page > page_limit:
            break  # the next page is beyond what page numbers reach
        page += 1
    # scroll: a fresh pass over every company (ids de-duplicate the pages already read)
    scroll: str | None = None
    while True:
        body = http.get_json("/companies/scroll", {"scroll_param": scroll} if scroll else None)
        pages["companies_scroll"] += 1
        data = _list(body, "data", inst, "GET /companies/scroll")
        if not data:
            return companies, True
        for c in data:
            companies[str(c.get("id"))] = classify(c)
        scroll = body.get("scroll_param")
        if not scroll:
            return companies, True
