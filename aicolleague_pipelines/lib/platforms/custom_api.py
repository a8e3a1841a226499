"""Custom REST sources: any JSON API described entirely in ``platforms.yaml`` (kind ``custom``).

A new platform is a config entry, not code. Example (the bundled demo's entry)::

    - name: support-desk
      kind: custom
      org: acme-prod
      export: exports/support_desk        # or base_url: https://support.acme.example
      auth: {token_env: SUPPORT_DESK_TOKEN}
      options:
        auth: {type: bearer}              # bearer | basic | header | none
        entities:
          - name: tickets
            path: /api/v1/tickets
            record_path: data.items       # dotted path to the list in each page ('' = the page is the list)
            params: {status: any}         # static query parameters (optional)
            pagination: {style: cursor, cursor_path: meta.next_cursor, param: cursor,
                         limit_param: limit, limit: 5}
            max_pages: 1000
            salesforce_links:
              - {field: account_sf_id, sf_field: Account.Id}
              - {field: case_number, sf_field: Case.CaseNumber}
            aggregate: {count_by: [status, priority]}
          - name: organizations
            path: /api/v1/organizations
            record_path: organizations
            pagination: {style: none}
            salesforce_links:
              - {field: salesforce_account_id, sf_field: Account.Id}
            aggregate: {count_by: [plan]}

Options
-------
``auth`` (default ``{type: none}``): the secrets come from the entry's top-level ``auth`` by
environment variable, never from the file:

- ``bearer``: ``token_env`` → ``Authorization: Bearer <token>``;
- ``basic``: ``username_env`` + ``password_env`` → HTTP Basic;
- ``header``: ``key_env`` → ``<header>: <key>`` (``header`` defaults to ``X-Api-Key``);
- ``none``: no credentials. In ``export:`` mode no secret is read at all.

``entities`` (a non-empty list), each with ``name`` (letters, digits, ``-``, ``_``), ``path``
(starting with ``/``), ``record_path``, ``params``, ``max_pages`` (default 1000), ``max_fields``
(default 500), ``salesforce_links`` (``{field, sf_field: Object.Field}`` or ``{field,
sf_object: Object}``; ``field`` is a flattened name such as ``account.sf_id``), ``aggregate:
{count_by: [field, ...]}`` and ``pagination``:

- ``{style: cursor, cursor_path: meta.next_cursor, param: cursor}`` (optional ``limit_param`` +
  ``limit``, ``has_more_path``): stops when the cursor is missing/empty (or has_more is false);
  a cursor seen before stops paging with a finding;
- ``{style: offset, param: offset, limit_param: limit, limit: 100, start: 0}``: stops on a
  short or empty page;
- ``{style: page, param: page, size_param: per_page, size: 50, start: 1}``: same;
- ``{style: link}``: follows the RFC 5988 ``Link: <…>; rel="next"`` header (live only: recorded
  exports keep bodies, not headers);
- ``{style: next_url, next_path: links.next}``: follows a next-page URL found in the body;
- ``{style: none}``: one call.

Next-page URLs must stay on the configured server (credentials are never sent elsewhere). A
page identical to the previous one (a server ignoring the paging parameter) stops paging with
a finding, as does reaching ``max_pages`` while more pages remain.

What comes out (metadata and aggregates only — no record value is ever kept):

- ``ApiEntity:<inst>/<entity>`` nodes and ``ApiField:<inst>/<entity>.<field>`` nodes for the
  field names observed in records (nested objects flattened with dots, arrays of objects as
  ``field[].sub``), with their JSON types and how many records carry them; each field is
  ``child_of`` its entity. Keys that look like data rather than names (emails, ids, numbers —
  a map keyed by customer) are collapsed into ``parent.*``.
- :class:`SalesforceLink` rows ``ApiField → sf_field`` for the configured links (org = the
  entry's org).
- ``aggregates["entities"][<entity>]``: ``records``, ``pages``, ``complete``, ``count_by``
  (value → count, only for the ``count_by`` fields and only when categorical: at most 50
  distinct short scalar values, and not a personal-data field such as an email; otherwise a
  finding says it was skipped), ``link_coverage`` (per link field: ``present``, and for
  ``*.Id`` links ``looks_like_sf_id`` and, for objects with a known key prefix,
  ``prefix_matches``).
- ``stats``: ``calls``, ``retries``, ``rate_limited``, ``pages`` and ``records`` per entity,
  ``duration_s``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from aicolleague_pipelines.lib.graph.model import CHILD_OF, Edge, Node
from aicolleague_pipelines.lib.platforms.config import PlatformConfig, PlatformConfigError
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.platforms.chargebee import json_type
from aicolleague_pipelines.lib.salesforce.ids import looks_like_sf_id, sf_id_suffix

AUTH_TYPES = ("bearer", "basic", "header", "none")
STYLES = ("cursor", "offset", "page", "link", "next_url", "none")
MAX_CATEGORIES = 50
MAX_CATEGORY_LENGTH = 64
MAX_DEPTH = 6

_ENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DOTTED_RE = re.compile(r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")
_FIELD_RE = re.compile(r"^[A-Za-z0-9_$@-]+(\[\])?(\.[A-Za-z0-9_$@-]+(\[\])?)*$")
_SF_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*$")
_SF_OBJECT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: A JSON key that reads as a name (not as data such as an id, an email or a number).
_NAME_SEGMENT_RE = re.compile(r"^[@$]?[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_PERSONAL_FIELD_RE = re.compile(
    r"(^|[._\-\[\]])(e-?mail|phone|mobile|fax|first_?name|last_?name|full_?name|name|address|"
    r"street|city|zip|postcode|postal_?code|ssn|birth|dob|body|message|comment|description|"
    r"subject|ip|ip_address|password|token|secret)($|[._\-\[\]])",
    re.IGNORECASE,
)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_RE = re.compile(r"^\+?[\d\s().-]{7,}$")
#: Key prefixes of standard objects (for link coverage of ``<Object>.Id`` links).
SF_KEY_PREFIXES = {
    "Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "Case": "500",
    "User": "005", "Contract": "800", "Campaign": "701", "Product2": "01t", "Order": "801",
    "Quote": "0Q0", "Task": "00T", "Event": "00U", "Pricebook2": "01s", "Asset": "02i",
}

_ENTITY_KEYS = {
    "name", "path", "record_path", "params", "pagination", "max_pages", "max_fields",
    "salesforce_links", "aggregate",
}
_STYLE_KEYS = {
    "cursor": {"style", "cursor_path", "param", "limit_param", "limit", "has_more_path"},
    "offset": {"style", "param", "limit_param", "limit", "start"},
    "page": {"style", "param", "size_param", "size", "start"},
    "link": {"style", "limit_param", "limit"},
    "next_url": {"style", "next_path", "limit_param", "limit"},
    "none": {"style"},
}


# --- options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSpec:
    field: str
    sf_object: str
    sf_field: str | None


@dataclass(frozen=True)
class EntitySpec:
    name: str
    path: str
    record_path: str
    params: dict[str, str]
    pagination: dict[str, Any]
    max_pages: int
    max_fields: int
    links: tuple[LinkSpec, ...]
    count_by: tuple[str, ...]

    @property
    def style(self) -> str:
        return str(self.pagination["style"])


@dataclass(frozen=True)
class CustomApiOptions:
    auth_type: str
    auth_header: str
    entities: tuple[EntitySpec, ...]


def parse_options(cfg: PlatformConfig) -> CustomApiOptions:
    """Validate ``cfg.options``; every error names the instance and the offending key."""

    def bad(key: str, problem: str) -> PlatformConfigError:
        return PlatformConfigError(f"platform {cfg.name!r}: options.{key}: {problem}")

    opts = cfg.options
    if not isinstance(opts, dict):
        raise bad("", "must be a mapping with auth and entities")
    unknown = set(opts) - {"auth", "entities"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown option (expected auth, entities)")

    auth = opts.get("auth") or {"type": "none"}
    if not isinstance(auth, dict):
        raise bad("auth", "must be a mapping such as {type: bearer}")
    unknown = set(auth) - {"type", "header"}
    if unknown:
        raise bad(f"auth.{sorted(unknown)[0]}", "unknown key (expected type, header)")
    auth_type = auth.get("type", "none")
    if auth_type not in AUTH_TYPES:
        raise bad("auth.type", f"must be one of {', '.join(AUTH_TYPES)} (got {auth_type!r})")
    header = auth.get("header", "X-Api-Key")
    if not isinstance(header, str) or not re.match(r"^[A-Za-z0-9-]+$", header):
        raise bad("auth.header", f"must be an HTTP header name (got {header!r})")
    if header.lower() in ("host", "content-length", "cookie"):
        raise bad("auth.header", f"{header!r} cannot carry an API key")
    required = {"bearer": ("token_env",), "basic": ("username_env", "password_env"),
                "header": ("key_env",), "none": ()}[auth_type]
    missing = [k for k in required if k not in cfg.auth]
    if missing and cfg.export is None:
        raise PlatformConfigError(
            f"platform {cfg.name!r}: auth type {auth_type} needs auth.{', auth.'.join(missing)} "
            "(the name of the environment variable holding the secret)"
        )

    raw_entities = opts.get("entities")
    if not isinstance(raw_entities, list) or not raw_entities:
        raise bad("entities", "must be a non-empty list of {name, path, ...}")
    entities: list[EntitySpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_entities):
        entity = _parse_entity(raw, f"entities[{i}]", bad)
        if entity.name in seen:
            raise bad(f"entities[{i}].name", f"{entity.name!r} appears twice")
        seen.add(entity.name)
        entities.append(entity)
    return CustomApiOptions(auth_type=auth_type, auth_header=header, entities=tuple(entities))


def _parse_entity(raw: Any, where: str, bad: Any) -> EntitySpec:
    if not isinstance(raw, dict):
        raise bad(where, "must be a mapping with name and path")
    name = raw.get("name")
    if not isinstance(name, str) or not _ENTITY_RE.match(name):
        raise bad(f"{where}.name", f"must be letters, digits, - and _ (got {name!r})")
    where = f"{where} ({name})"
    unknown = set(raw) - _ENTITY_KEYS
    if unknown:
        raise bad(f"{where}.{sorted(unknown)[0]}",
                  f"unknown key (expected {', '.join(sorted(_ENTITY_KEYS))})")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "://" in path:
        raise bad(f"{where}.path",
                  f"must be a path starting with / and without a query string (got {path!r})")
    record_path = raw.get("record_path", "")
    if record_path is None:
        record_path = ""
    if not isinstance(record_path, str) or (record_path and not _DOTTED_RE.match(record_path)):
        raise bad(f"{where}.record_path", f"must be a dotted path like data.items (got {record_path!r})")
    params = raw.get("params") or {}
    if not isinstance(params, dict) or any(isinstance(v, (dict, list)) for v in params.values()):
        raise bad(f"{where}.params", "must be a mapping of query parameter → scalar value")
    max_pages = _positive_int(raw.get("max_pages", 1000), f"{where}.max_pages", bad)
    max_fields = _positive_int(raw.get("max_fields", 500), f"{where}.max_fields", bad)
    pagination = _parse_pagination(raw.get("pagination") or {"style": "none"}, f"{where}.pagination", bad)
    for key in ("param", "limit_param", "size_param"):
        if key in pagination and pagination[key] in params:
            raise bad(f"{where}.params.{pagination[key]}", "is also the pagination's parameter")

    links: list[LinkSpec] = []
    raw_links = raw.get("salesforce_links") or []
    if not isinstance(raw_links, list):
        raise bad(f"{where}.salesforce_links", "must be a list of {field, sf_field}")
    for j, link in enumerate(raw_links):
        lw = f"{where}.salesforce_links[{j}]"
        if not isinstance(link, dict):
            raise bad(lw, "must be a mapping {field, sf_field: Object.Field}")
        unknown = set(link) - {"field", "sf_field", "sf_object"}
        if unknown:
            raise bad(f"{lw}.{sorted(unknown)[0]}", "unknown key (expected field, sf_field, sf_object)")
        fld = link.get("field")
        if not isinstance(fld, str) or not _FIELD_RE.match(fld):
            raise bad(f"{lw}.field", f"must be a (dotted) field name (got {fld!r})")
        sf_field = link.get("sf_field")
        sf_object = link.get("sf_object")
        if sf_field is not None:
            if not isinstance(sf_field, str) or not _SF_FIELD_RE.match(sf_field):
                raise bad(f"{lw}.sf_field", f"must be Object.Field like Account.Id (got {sf_field!r})")
            obj = sf_field.split(".", 1)[0]
            if sf_object is not None and sf_object != obj:
                raise bad(f"{lw}.sf_object", f"{sf_object!r} contradicts sf_field {sf_field!r}")
            links.append(LinkSpec(fld, obj, sf_field))
        elif sf_object is not None:
            if not isinstance(sf_object, str) or not _SF_OBJECT_RE.match(sf_object):
                raise bad(f"{lw}.sf_object", f"must be an object API name (got {sf_object!r})")
            links.append(LinkSpec(fld, sf_object, None))
        else:
            raise bad(f"{lw}.sf_field", "is required (Object.Field, or sf_object: Object)")

    aggregate = raw.get("aggregate") or {}
    if not isinstance(aggregate, dict):
        raise bad(f"{where}.aggregate", "must be a mapping like {count_by: [status]}")
    unknown = set(aggregate) - {"count_by"}
    if unknown:
        raise bad(f"{where}.aggregate.{sorted(unknown)[0]}", "unknown key (expected count_by)")
    count_by = aggregate.get("count_by") or []
    if not isinstance(count_by, list) or not all(
        isinstance(c, str) and _DOTTED_RE.match(c) for c in count_by
    ):
        raise bad(f"{where}.aggregate.count_by", "must be a list of (dotted) field names")

    return EntitySpec(
        name=name, path=path, record_path=record_path,
        params={str(k): _scalar_param(v) for k, v in params.items()},
        pagination=pagination, max_pages=max_pages, max_fields=max_fields,
        links=tuple(links), count_by=tuple(count_by),
    )


def _parse_pagination(raw: Any, where: str, bad: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad(where, "must be a mapping like {style: cursor, ...}")
    style = raw.get("style")
    if style not in STYLES:
        raise bad(f"{where}.style", f"must be one of {', '.join(STYLES)} (got {style!r})")
    unknown = set(raw) - _STYLE_KEYS[style]
    if unknown:
        raise bad(f"{where}.{sorted(unknown)[0]}",
                  f"not a {style} pagination key (expected {', '.join(sorted(_STYLE_KEYS[style]))})")
    out: dict[str, Any] = {"style": style}
    if style == "cursor":
        out["cursor_path"] = _dotted(raw.get("cursor_path"), f"{where}.cursor_path", bad, required=True)
        out["param"] = _param(raw.get("param", "cursor"), f"{where}.param", bad)
        if "has_more_path" in raw:
            out["has_more_path"] = _dotted(raw["has_more_path"], f"{where}.has_more_path", bad, required=True)
    elif style == "offset":
        out["param"] = _param(raw.get("param", "offset"), f"{where}.param", bad)
        out["limit_param"] = _param(raw.get("limit_param", "limit"), f"{where}.limit_param", bad)
        out["limit"] = _positive_int(raw.get("limit", 100), f"{where}.limit", bad)
        out["start"] = _non_negative_int(raw.get("start", 0), f"{where}.start", bad)
    elif style == "page":
        out["param"] = _param(raw.get("param", "page"), f"{where}.param", bad)
        out["size_param"] = _param(raw.get("size_param", "per_page"), f"{where}.size_param", bad)
        out["size"] = _positive_int(raw.get("size", 50), f"{where}.size", bad)
        out["start"] = _non_negative_int(raw.get("start", 1), f"{where}.start", bad)
    elif style == "next_url":
        out["next_path"] = _dotted(raw.get("next_path"), f"{where}.next_path", bad, required=True)
    if style in ("cursor", "link", "next_url"):
        if ("limit_param" in raw) != ("limit" in raw):
            raise bad(f"{where}.{'limit' if 'limit_param' in raw else 'limit_param'}",
                      "limit_param and limit go together")
        if "limit_param" in raw:
            out["limit_param"] = _param(raw["limit_param"], f"{where}.limit_param", bad)
            out["limit"] = _positive_int(raw["limit"], f"{where}.limit", bad)
    for a, b in (("param", "limit_param"), ("param", "size_param")):
        if a in out and b in out and out[a] == out[b]:
            raise bad(f"{where}.{b}", f"must differ from {a} ({out[a]!r})")
    return out


def _dotted(value: Any, where: str, bad: Any, *, required: bool) -> str:
    if not isinstance(value, str) or not _DOTTED_RE.match(value):
        raise bad(where, f"{'is required: ' if value is None and required else ''}"
                         f"must be a dotted path like meta.next (got {value!r})")
    return value


def _param(value: Any, where: str, bad: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_.\[\]-]+$", value):
        raise bad(where, f"must be a query parameter name (got {value!r})")
    return value


def _positive_int(value: Any, where: str, bad: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad(where, f"must be a positive integer (got {value!r})")
    return value


def _non_negative_int(value: Any, where: str, bad: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad(where, f"must be an integer ≥ 0 (got {value!r})")
    return value


def _scalar_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- extraction -------------------------------------------------------------------------


def extract_custom_api(cfg: PlatformConfig, *, http: PlatformHttp | None = None) -> PlatformExtract:
    """Extract one custom REST source (live, or from its ``export:`` recorded responses)."""
    started = time.perf_counter()
    options = parse_options(cfg)
    own_client = http is None
    client = http or PlatformHttp(cfg)
    try:
        if cfg.export is None:
            _apply_auth(cfg, options, client)
        extract = PlatformExtract(
            platform="custom",
            instance=cfg.name,
            extracted_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        pages: dict[str, int] = {}
        records: dict[str, int] = {}
        entities_agg: dict[str, Any] = {}
        for entity in options.entities:
            result = _EntityRun(cfg, entity, client, extract.findings)
            result.run()
            pages[entity.name] = result.pages
            records[entity.name] = result.records
            entities_agg[entity.name] = _emit(cfg, entity, result, extract)
        extract.aggregates["entities"] = entities_agg
        extract.stats.update(
            calls=client.stats["calls"],
            retries=client.stats["retries"],
            rate_limited=client.stats["rate_limited"],
            pages=pages,
            records=records,
            duration_s=round(time.perf_counter() - started, 3),
        )
        return extract
    finally:
        if own_client:
            client.close()


def _apply_auth(cfg: PlatformConfig, options: CustomApiOptions, client: PlatformHttp) -> None:
    if options.auth_type == "bearer":
        client.set_header("Authorization", f"Bearer {cfg.secret('token_env')}")
    elif options.auth_type == "basic":
        pair = f"{cfg.secret('username_env')}:{cfg.secret('password_env')}".encode()
        client.set_header("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    elif options.auth_type == "header":
        client.set_header(options.auth_header, cfg.secret("key_env"))


@dataclass
class _FieldStats:
    types: set[str] = field(default_factory=set)
    present: int = 0


class _EntityRun:
    """Pages through one entity, keeping only field names/types and the configured counts."""

    def __init__(
        self, cfg: PlatformConfig, entity: EntitySpec, client: PlatformHttp, findings: list[str]
    ) -> None:
        self.cfg = cfg
        self.entity = entity
        self.client = client
        self.findings = findings
        self.pages = 0
        self.records = 0
        self.complete = True
        self.non_objects = 0
        self.fields: dict[str, _FieldStats] = {}
        self.dropped_fields = 0
        self.collapsed: set[str] = set()
        self.counts: dict[str, Counter[str]] = {c: Counter() for c in entity.count_by}
        self.count_unfit: dict[str, str] = {}
        self.link_cov: dict[str, dict[str, int]] = {
            link.field: {"present": 0, "looks_like_sf_id": 0, "prefix_matches": 0}
            for link in entity.links
        }

    # -- paging --
    def run(self) -> None:
        e, p = self.entity, self.entity.pagination
        style = e.style
        where = f"entity {e.name} ({e.path})"
        base_params = dict(e.params)
        if "limit_param" in p and style in ("cursor", "link", "next_url"):
            base_params[p["limit_param"]] = str(p["limit"])
        # (target, params) of the next request; target is the entity path or a next-page URL.
        target: str = e.path
        params: dict[str, str] | None = dict(base_params)
        if style == "offset":
            params[p["limit_param"]] = str(p["limit"])
            params[p["param"]] = str(p["start"])
        elif style == "page":
            params[p["size_param"]] = str(p["size"])
            params[p["param"]] = str(p["start"])
        seen_cursors: set[str] = set()
        previous_digest: str | None = None
        while True:
            if self.pages >= e.max_pages:
                self.complete = False
                self.findings.append(
                    f"{where}: stopped after max_pages={e.max_pages} pages while more pages "
                    "remained — counts are partial; raise max_pages if the source is that large"
                )
                return
            resp = self.client.request("GET", target, params=params)
            body = self.client.decode_json(resp)
            self.pages += 1
            items = self._records(body)
            digest = hashlib.sha256(
                json.dumps(items, sort_keys=True, default=str).encode()
            ).hexdigest()
            if items and digest == previous_digest:
                self.complete = False
                self.findings.append(
                    f"{where}: page {self.pages} repeated the previous page — the server seems "
                    f"to ignore the {style} paging parameters; stopped (check pagination)"
                )
                return
            previous_digest = digest
            for record in items:
                self._observe(record)

            if style == "none":
                return
            if style == "cursor":
                if "has_more_path" in p and _dig(body, p["has_more_path"]) in (False, None, "false"):
                    return
                cursor = _dig(body, p["cursor_path"])
                if cursor is None or cursor is False or cursor == "" or isinstance(cursor, (dict, list)):
                    return
                cursor = str(cursor)
                if cursor in seen_cursors:
                    self.complete = False
                    self.findings.append(
                        f"{where}: the cursor at {p['cursor_path']} repeated a cursor already "
                        f"followed (page {self.pages}); stopped to avoid paging forever"
                    )
                    return
                seen_cursors.add(cursor)
                params = dict(base_params)
                params[p["param"]] = cursor
            elif style == "offset":
                if len(items) < p["limit"]:
                    return
                params = dict(params or {})
                params[p["param"]] = str(int(params[p["param"]]) + len(items))
            elif style == "page":
                if len(items) < p["size"]:
                    return
                params = dict(params or {})
                params[p["param"]] = str(int(params[p["param"]]) + 1)
            else:  # link / next_url
                if style == "link":
                    nxt = resp.links.get("next", {}).get("url")
                else:
                    nxt = _dig(body, p["next_path"])
                if not nxt or not isinstance(nxt, str):
                    return
                resolved = self._next_target(str(resp.request.url), nxt, where)
                if resolved in seen_cursors:
                    self.complete = False
                    self.findings.append(
                        f"{where}: the next-page link repeated a link already followed "
                        f"(page {self.pages}); stopped to avoid paging forever"
                    )
                    return
                seen_cursors.add(resolved)
                target, params = resolved, None

    def _next_target(self, current: str, nxt: str, where: str) -> str:
        absolute = urljoin(current, nxt)
        parts, here = urlsplit(absolute), urlsplit(current)
        if (parts.scheme, parts.netloc) != (here.scheme, here.netloc):
            raise PlatformError(
                self.cfg.name, f"GET {self.entity.path}",
                f"{where}: the next-page link points at another server ({parts.netloc or '?'})",
                "credentials are only sent to the configured base_url; check the API's paging",
            )
        return absolute

    def _records(self, body: Any) -> list[Any]:
        rp = self.entity.record_path
        items = _dig(body, rp) if rp else body
        if not isinstance(items, list):
            if items is None and rp:
                got = (
                    f"an object with keys {_safe_keys(body)}" if isinstance(body, dict)
                    else f"a JSON {json_type(body)}"
                )
                problem = f"record_path {rp!r} not found in page {self.pages} (got {got})"
            else:
                problem = (
                    f"record_path {rp!r} is a JSON {json_type(items)} in page {self.pages}, "
                    "not a list of records"
                )
            raise PlatformError(
                self.cfg.name, f"GET {self.entity.path}", f"entity {self.entity.name}: {problem}",
                f"check options.entities ({self.entity.name}).record_path against the API's "
                "response shape (malformed page?)",
            )
        return items

    # -- observing (values are looked at here and never kept) --
    def _observe(self, record: Any) -> None:
        self.records += 1
        if not isinstance(record, dict):
            self.non_objects += 1
            return
        flat: dict[str, Any] = {}
        _flatten(record, "", flat, self.collapsed, 0)
        for name, value in flat.items():
            st = self.fields.get(name)
            if st is None:
                if len(self.fields) >= self.entity.max_fields:
                    self.dropped_fields += 1
                    continue
                st = self.fields[name] = _FieldStats()
            st.types.add(json_type(value))
            st.present += 1
        for fld, counter in self.counts.items():
            if fld in self.count_unfit:
                continue
            value = _dig(record, fld, missing=_MISSING)
            reason = _unfit_category(fld, value)
            if reason:
                self.count_unfit[fld] = reason
                counter.clear()
                continue
            counter[_category(value)] += 1
            if len(counter) > MAX_CATEGORIES:
                self.count_unfit[fld] = f"more than {MAX_CATEGORIES} distinct values"
                counter.clear()
        for link in self.entity.links:
            value = _dig(record, link.field)
            if value in (None, "") or isinstance(value, (dict, list)):
                continue
            cov = self.link_cov[link.field]
            cov["present"] += 1
            if link.sf_field and link.sf_field.endswith(".Id") and isinstance(value, str):
                if looks_like_sf_id(value):
                    cov["looks_like_sf_id"] += 1
                    prefix = SF_KEY_PREFIXES.get(link.sf_object)
                    if prefix and value.startswith(prefix):
                        cov["prefix_matches"] += 1


_MISSING = object()


def _emit(cfg: PlatformConfig, entity: EntitySpec, run: _EntityRun, extract: PlatformExtract) -> dict[str, Any]:
    """Nodes, edges, links and findings of one entity; returns its aggregates."""
    inst, name = cfg.name, entity.name
    where = f"entity {name} ({entity.path})"
    entity_key = f"ApiEntity:{inst}/{name}"
    extract.nodes.append(Node(
        key=entity_key, type="ApiEntity", name=f"{inst}/{name}",
        attrs={
            "path": entity.path, "pagination": entity.style, "records": run.records,
            "pages": run.pages, "complete": run.complete, "field_count": len(run.fields),
        },
    ))
    evidence = f"schema inference: GET {entity.path}"
    for fld in sorted(run.fields):
        st = run.fields[fld]
        extract.nodes.append(_field_node(inst, name, fld, {
            "json_types": sorted(st.types), "present_in": st.present,
        }))
        extract.edges.append(Edge(f"ApiField:{inst}/{name}.{fld}", entity_key, CHILD_OF, evidence))

    if run.non_objects:
        extract.findings.append(
            f"{where}: {run.non_objects} record(s) are not JSON objects; no fields inferred from them"
        )
    if run.collapsed:
        extract.findings.append(
            f"{where}: keys under {', '.join(sorted(run.collapsed))} look like data (ids, emails, "
            "numbers) rather than field names; collapsed into '<parent>.*'"
        )
    if run.dropped_fields:
        extract.findings.append(
            f"{where}: more than max_fields={entity.max_fields} distinct fields; the rest were "
            "not recorded"
        )
    if run.records == 0:
        extract.findings.append(f"{where}: no records returned; no schema inferred")

    coverage: dict[str, Any] = {}
    for link in entity.links:
        key = f"ApiField:{inst}/{name}.{link.field}"
        if link.field not in run.fields:
            extract.findings.append(
                f"{where}: link field {link.field!r} was not seen in any record — check "
                "salesforce_links (the link is kept as declared)"
            )
            extract.nodes.append(_field_node(inst, name, link.field, {
                "json_types": [], "present_in": 0, "declared_only": True,
            }))
            extract.edges.append(Edge(key, entity_key, CHILD_OF, "declared in salesforce_links"))
            run.fields[link.field] = _FieldStats()
        target = link.sf_field or link.sf_object
        extract.links.append(SalesforceLink(
            platform_key=key, sf_object=link.sf_object, sf_field=link.sf_field,
            evidence=f"platforms.yaml: {inst} entity {name} field {link.field} → {target}",
            org=cfg.org,
        ))
        cov = dict(run.link_cov[link.field])
        cov["records"] = run.records
        cov["sf_field"] = target
        if not (link.sf_field and link.sf_field.endswith(".Id")):
            cov.pop("looks_like_sf_id")
            cov.pop("prefix_matches")
        elif link.sf_object not in SF_KEY_PREFIXES:
            cov.pop("prefix_matches")
        coverage[link.field] = cov

    counts: dict[str, Any] = {}
    for fld in entity.count_by:
        if fld in run.count_unfit:
            extract.findings.append(
                f"{where}: count_by {fld!r} skipped — it does not look categorical "
                f"({run.count_unfit[fld]}); only counts of short categorical values are kept"
            )
            continue
        counts[fld] = dict(sorted(run.counts[fld].items(), key=lambda kv: (-kv[1], kv[0])))

    return {
        "records": run.records,
        "pages": run.pages,
        "complete": run.complete,
        "count_by": counts,
        "link_coverage": coverage,
    }


def _field_node(inst: str, entity: str, fld: str, attrs: dict[str, Any]) -> Node:
    return Node(
        key=f"ApiField:{inst}/{entity}.{fld}", type="ApiField", name=f"{inst}/{entity}.{fld}",
        attrs={"entity": entity, "field": fld, **attrs},
    )


# --- helpers ----------------------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any], collapsed: set[str], depth: int) -> None:
    """Field name → a sample value's type carrier (values are only typed, never kept)."""
    if not isinstance(value, dict):
        return
    for key, sub in value.items():
        key = str(key)
        if _NAME_SEGMENT_RE.match(key) and not _looks_like_data(key):
            name = f"{prefix}{key}"
        else:
            collapsed.add(prefix.rstrip(".") or "(top level)")
            name = f"{prefix}*"
        # Keep the first non-null sample's type per name and per record.
        if name not in out or out[name] is None:
            out[name] = sub
        if depth + 1 >= MAX_DEPTH:
            continue
        if isinstance(sub, dict):
            _flatten(sub, f"{name}.", out, collapsed, depth + 1)
        elif isinstance(sub, list):
            for element in sub:
                if isinstance(element, dict):
                    _flatten(element, f"{name}[].", out, collapsed, depth + 1)


def _looks_like_data(key: str) -> bool:
    digits = sum(ch.isdigit() for ch in key)
    if digits >= 6:
        return True
    if len(key) >= 16 and re.fullmatch(r"[0-9a-fA-F-]+", key):
        return True
    return False


def _dig(data: Any, path: str, missing: Any = None) -> Any:
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return missing
    return cur


def _safe_keys(body: dict[str, Any]) -> list[str]:
    return sorted(k for k in map(str, body) if _NAME_SEGMENT_RE.match(k) and not _looks_like_data(k))[:10]


def _unfit_category(fld: str, value: Any) -> str | None:
    if _PERSONAL_FIELD_RE.search(fld):
        return "its name suggests personal data or free text"
    if value is _MISSING or value is None or isinstance(value, bool):
        return None
    if isinstance(value, (dict, list)):
        return "its values are objects or arrays"
    if isinstance(value, float):
        return "its values are decimal numbers"
    text = str(value)
    if len(text) > MAX_CATEGORY_LENGTH:
        return f"values longer than {MAX_CATEGORY_LENGTH} characters (free text)"
    if _EMAIL_RE.search(text) or (isinstance(value, str) and _PHONE_RE.match(text)):
        return "its values look like personal data (emails, phone numbers)"
    return None


def _category(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    if value is None:
        return "(null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = [
    "CustomApiOptions", "EntitySpec", "LinkSpec", "extract_custom_api", "looks_like_sf_id",
    "parse_options", "sf_id_suffix",
]
