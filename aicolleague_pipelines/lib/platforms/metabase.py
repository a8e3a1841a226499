"""Metabase: databases, warehouse tables/columns, cards and dashboards, and what reads what.

``extract_metabase(cfg)`` reads one Metabase instance (live, or recorded with ``export:``)
and returns a :class:`PlatformExtract`:

- nodes ``MetabaseDatabase:<inst>/<db>``, ``WarehouseTable:<inst>/<db>.<schema>.<table>``
  (``<db>.<table>`` for engines without schemas), ``WarehouseColumn:<inst>/<db>.<schema>.
  <table>.<column>``, ``MetabaseCard:<inst>/<id>``, ``MetabaseDashboard:<inst>/<id>``;
- edges: table ``child_of`` database, column ``child_of`` table, column ``lookup_to`` the
  column its foreign key targets, card ``queries`` each table and column it reads (native SQL
  through :mod:`sql_lineage`, MBQL through the field ids of the metadata — legacy MBQL and
  MBQL 5 ``stages``), card ``queries`` the card/model it is built on (``card__12``,
  ``source-card``, ``{{#12}}``, metric references), dashboard ``shows`` each card (and
  ``queries`` the columns its filters are wired to);
- :class:`SalesforceLink` rows for warehouse tables that mirror Salesforce objects;
- aggregates (counts only) and call statistics.

Nothing personal is copied: no card SQL text, no creator/editor, no field values or
fingerprints; personal collections are named ``(personal collection)``.

Calls: ``GET /api/database``, ``GET /api/database/:id/metadata`` per database, ``GET
/api/collection``, ``GET /api/card``, ``GET /api/native-query-snippet`` (only if a card uses
a snippet), ``GET /api/dashboard`` and ``GET /api/dashboard/:id`` per dashboard.

Auth (``auth:``): ``api_key_env`` → header ``x-api-key``; or ``username_env`` +
``password_env`` → ``POST /api/session`` → header ``X-Metabase-Session``. None in export mode.

Options (``options:``):

- ``salesforce_mapping``: a list of rules, first match wins; each rule has ``schema`` (a
  schema name, case-insensitive), optional ``database`` (a database name),
  ``table_pattern`` (a regex matched against the whole table name, case-insensitive;
  default ``.*``), ``object`` (an explicit object name, or a template with ``{table}``,
  ``{schema}``, ``{database}`` and the pattern's named groups; default ``{table}``),
  optional ``column_map`` (``{column: Field}``, or ``{column: null}`` to skip one) and
  ``skip_columns`` (a regex; default ``_.*``: replication bookkeeping such as
  ``_fivetran_synced`` or ``_sdc_batched_at``). Without the option the default rule maps
  schema ``salesforce``: table ``account`` → ``Account``, column ``industry`` →
  ``Account.Industry``, ``program__c.account__c`` → ``Program__c.Account__c``. Casing is a
  best guess from the lower-cased names; the org graph matches names case-insensitively.
  ``salesforce_mapping: []`` turns linking off.
- ``default_schema``: the schema unqualified table names in native SQL resolve to when
  several schemas hold a table of that name (default: ``public`` for PostgreSQL/Redshift,
  ``dbo`` for SQL Server).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.model import CHILD_OF, LOOKUP_TO, QUERIES, READ, SHOWS, Edge, Node
from aicolleague_pipelines.lib.platforms.config import PlatformConfig, PlatformConfigError
from aicolleague_pipelines.lib.platforms.http import PlatformHttp
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.platforms.sql_lineage import analyze_sql, dialect_for_engine

DEFAULT_SALESFORCE_MAPPING: list[dict[str, Any]] = [
    {"schema": "salesforce", "table_pattern": ".*", "object": "{table}"}
]
_DEFAULT_SCHEMAS = {"postgres": "public", "redshift": "public", "sqlserver": "dbo"}
_SF_SUFFIX_RE = re.compile(r"^(.*?)(__(?:c|r|mdt|e|x|b|share|history|feed|kav))$", re.IGNORECASE)
_PERSONAL = "(personal collection)"


def extract_metabase(cfg: PlatformConfig, *, http: PlatformHttp | None = None) -> PlatformExtract:
    """Extract one Metabase instance; raises :class:`PlatformError` on a failed call."""
    started = time.perf_counter()
    extracted_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rules = _mapping_rules(cfg)
    client = http or PlatformHttp(cfg)
    try:
        if cfg.export is None:
            _authenticate(cfg, client)
        run = _Run(cfg, client, rules)
        run.extract()
    finally:
        if http is None:
            client.close()
    extract = PlatformExtract(
        platform="metabase",
        instance=cfg.name,
        extracted_at=extracted_at,
        nodes=sorted(run.nodes.values(), key=lambda n: n.key),
        edges=sorted(run.edges.values(), key=lambda e: (e.source, e.target, e.kind)),
        links=sorted(run.links, key=lambda link: (link.platform_key, link.sf_field or "")),
        aggregates=run.aggregates(),
        stats={**client.stats, "duration_s": round(time.perf_counter() - started, 3)},
        findings=run.findings,
    )
    return extract


# -- auth -------------------------------------------------------------------------------------


def _authenticate(cfg: PlatformConfig, http: PlatformHttp) -> None:
    try:
        if cfg.auth.get("api_key_env"):
            http.set_header("x-api-key", cfg.secret("api_key_env"))
            return
        if cfg.auth.get("username_env") and cfg.auth.get("password_env"):
            username, password = cfg.secret("username_env"), cfg.secret("password_env")
        else:
            raise PlatformError(
                cfg.name, "auth", "no Metabase credentials configured",
                "set auth.api_key_env, or auth.username_env and auth.password_env",
            )
    except PlatformConfigError as exc:
        raise PlatformError(cfg.name, "auth", str(exc)) from None
    body = http.request_json("POST", "/api/session",
                             json_body={"username": username, "password": password})
    session = body.get("id") if isinstance(body, dict) else None
    if not isinstance(session, str) or not session:
        raise PlatformError(cfg.name, "POST /api/session", "the login answer carries no session id",
                            "check that base_url points at Metabase")
    http.set_header("X-Metabase-Session", session)


# -- mapping rules ----------------------------------------------------------------------------


@dataclass
class _Rule:
    index: int
    schema: str
    database: str | None
    pattern: re.Pattern[str]
    obj: str
    column_map: dict[str, str | None]
    skip: re.Pattern[str]
    default: bool


def _mapping_rules(cfg: PlatformConfig) -> list[_Rule]:
    raw = cfg.options.get("salesforce_mapping")
    default = raw is None
    if default:
        raw = DEFAULT_SALESFORCE_MAPPING
    where = "options.salesforce_mapping"
    if not isinstance(raw, list):
        raise PlatformError(cfg.name, where, "must be a list of rules", "see the metabase docs")
    rules = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or not r.get("schema"):
            raise PlatformError(cfg.name, f"{where}[{i}]", "each rule needs at least 'schema'")
        try:
            pattern = re.compile(str(r.get("table_pattern") or ".*"), re.IGNORECASE)
            skip = re.compile(str(r.get("skip_columns") or "_.*"), re.IGNORECASE)
        except re.error as exc:
            raise PlatformError(cfg.name, f"{where}[{i}]", f"invalid regex: {exc}") from None
        cmap = r.get("column_map") or {}
        if not isinstance(cmap, dict):
            raise PlatformError(cfg.name, f"{where}[{i}]", "column_map must be a mapping")
        rules.append(_Rule(
            index=i, schema=str(r["schema"]).lower(),
            database=str(r["database"]).lower() if r.get("database") else None,
            pattern=pattern, obj=str(r.get("object") or "{table}"),
            column_map={str(k).lower(): (str(v) if v else None) for k, v in cmap.items()},
            skip=skip, default=default,
        ))
    return rules


def sf_case(name: str) -> str:
    """Best-effort Salesforce casing of a lower-cased API name (``program__c`` → ``Program__c``)."""
    if name != name.lower() and name != name.upper():
        return name  # the warehouse kept Salesforce's own casing
    name = name.lower()  # Snowflake-style upper case carries no casing information
    m = _SF_SUFFIX_RE.match(name)
    base, suffix = (m.group(1), m.group(2).lower()) if m else (name, "")
    parts = base.split("__")  # a namespace prefix: ns__field__c
    cased = "__".join("_".join(w[:1].upper() + w[1:] for w in p.split("_")) for p in parts)
    return cased + suffix


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Database:
    id: int
    name: str
    engine: str | None
    #: schema (or database name for schema-less engines) → table → [columns], for SQL lineage.
    sql_schema: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: (schema, table) lower-cased → table key; (schema, table, column) → column key.
    table_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    column_keys: dict[tuple[str, str, str], str] = field(default_factory=dict)


@dataclass
class _MbqlRefs:
    fields: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    tables: set[int] = field(default_factory=set)
    cards: set[int] = field(default_factory=set)
    metrics: set[int] = field(default_factory=set)


class _Run:
    def __init__(self, cfg: PlatformConfig, http: PlatformHttp, rules: list[_Rule]) -> None:
        self.cfg = cfg
        self.inst = cfg.name
        self.http = http
        self.rules = rules
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.links: list[SalesforceLink] = []
        self.findings: list[str] = []
        self.databases: dict[int, _Database] = {}
        self.field_keys: dict[int, str] = {}
        self.fks: list[tuple[str, int]] = []
        self.field_table: dict[int, str] = {}
        self.table_keys: dict[int, str] = {}
        self.table_columns: dict[int, dict[str, str]] = {}  # table id → column lower → key
        self.collections: dict[Any, str] = {}
        self.cards: dict[int, dict[str, Any]] = {}
        self.snippets: dict[str, str] | None = None
        self.counts: Counter[str] = Counter()
        self.cards_by_type: Counter[str] = Counter()
        self.cards_by_query: Counter[str] = Counter()
        self.engines: Counter[str] = Counter()

    # -- helpers --
    def get(self, path: str) -> Any:
        return self.http.get_json(path)

    def items(self, body: Any, what: str) -> list[dict[str, Any]]:
        """A list answer, bare or wrapped as ``{data: [...]}`` (Metabase ≥ 0.40)."""
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body = body["data"]
        if not isinstance(body, list):
            raise PlatformError(self.inst, what, "unexpected response shape (expected a list)",
                                "check that base_url points at Metabase's root")
        return [x for x in body if isinstance(x, dict)]

    def node(self, key: str, type_: str, attrs: dict[str, Any], external: bool = False) -> str:
        if key not in self.nodes:
            self.nodes[key] = Node(key=key, type=type_, name=key.split(":", 1)[1],
                                   external=external, attrs=attrs)
        elif not external and self.nodes[key].external:
            self.nodes[key] = Node(key=key, type=type_, name=key.split(":", 1)[1], attrs=attrs)
        return key

    def edge(self, source: str, target: str, kind: str, evidence: str, detail: str | None = None,
             access: str | None = None) -> None:
        ident = (source, target, kind)
        if source != target and ident not in self.edges:
            self.edges[ident] = Edge(source, target, kind, evidence, access=access, detail=detail)

    # -- steps --
    def extract(self) -> None:
        self.read_databases()
        self.read_collections()
        self.read_cards()
        self.read_dashboards()
        self.link_salesforce()

    def read_databases(self) -> None:
        for db in self.items(self.get("/api/database"), "GET /api/database"):
            db_id = db.get("id")
            if not isinstance(db_id, int) or db_id < 0 or db.get("is_saved_questions"):
                continue  # the virtual "Saved Questions" database of old versions
            meta = self.get(f"/api/database/{db_id}/metadata")
            if not isinstance(meta, dict):
                raise PlatformError(self.inst, "GET /api/database/:id/metadata",
                                    "unexpected response shape (expected an object)")
            name = str(meta.get("name") or db.get("name") or db_id)
            engine = meta.get("engine") or db.get("engine")
            self.engines[str(engine)] += 1
            d = _Database(db_id, name, engine)
            self.databases[db_id] = d
            db_key = self.node(f"MetabaseDatabase:{self.inst}/{name}", "MetabaseDatabase", {
                "metabase_id": db_id, "engine": engine, "is_sample": bool(db.get("is_sample")),
            })
            self.counts["databases"] += 1
            evidence = f"metabase:database/{db_id}/metadata"
            fks: list[tuple[str, int]] = []
            for t in meta.get("tables") or []:
                if not isinstance(t, dict) or not t.get("name"):
                    continue
                tname, schema = str(t["name"]), t.get("schema")
                prefix = f"{name}.{schema}.{tname}" if schema else f"{name}.{tname}"
                tkey = self.node(f"WarehouseTable:{self.inst}/{prefix}", "WarehouseTable", {
                    "metabase_id": t.get("id"), "database": name, "schema": schema,
                    "table": tname, "entity_type": t.get("entity_type"),
                })
                self.counts["tables"] += 1
                self.edge(tkey, db_key, CHILD_OF, evidence)
                sql_s = str(schema) if schema else name
                d.table_keys[(sql_s.lower(), tname.lower())] = tkey
                cols = d.sql_schema.setdefault(sql_s, {}).setdefault(tname, [])
                if isinstance(t.get("id"), int):
                    self.table_keys[t["id"]] = tkey
                tcols = self.table_columns.setdefault(t.get("id"), {})
                for f in t.get("fields") or []:
                    if not isinstance(f, dict) or not f.get("name"):
                        continue
                    fname = str(f["name"])
                    ckey = self.node(f"WarehouseColumn:{self.inst}/{prefix}.{fname}",
                                     "WarehouseColumn", {
                        "metabase_id": f.get("id"), "table": tkey.split(":", 1)[1],
                        "column": fname, "base_type": f.get("base_type"),
                        "semantic_type": f.get("semantic_type"),
                        "database_type": f.get("database_type"),
                    })
                    self.counts["columns"] += 1
                    self.edge(ckey, tkey, CHILD_OF, evidence)
                    if not f.get("nfc_path"):
                        cols.append(fname)
                        d.column_keys[(sql_s.lower(), tname.lower(), fname.lower())] = ckey
                        tcols.setdefault(fname.lower(), ckey)
                    if isinstance(f.get("id"), int):
                        self.field_keys[f["id"]] = ckey
                        self.field_table[f["id"]] = tkey
                    if isinstance(f.get("fk_target_field_id"), int):
                        fks.append((ckey, f["fk_target_field_id"]))
            self.fks += fks
        for ckey, target in self.fks:
            tkey = self.field_keys.get(target)
            if tkey:
                self.edge(ckey, tkey, LOOKUP_TO, "metabase:metadata fk_target_field_id")

    def read_collections(self) -> None:
        try:
            body = self.get("/api/collection")
            colls = self.items(body, "GET /api/collection")
        except PlatformError as exc:
            self.findings.append(f"collections not read ({exc.problem}); cards show no collection")
            return
        personal = {c.get("id") for c in colls
                    if c.get("personal_owner_id") or c.get("is_personal")}
        for c in colls:
            location = str(c.get("location") or "/")
            ancestors = {int(x) for x in location.strip("/").split("/") if x.isdigit()}
            is_personal = c.get("id") in personal or bool(ancestors & personal)
            self.collections[c.get("id")] = _PERSONAL if is_personal else str(c.get("name") or "")
        self.counts["collections"] = sum(1 for v in self.collections.values() if v != _PERSONAL
                                         and v)

    def read_cards(self) -> None:
        cards = self.items(self.get("/api/card"), "GET /api/card")
        for card in cards:
            if isinstance(card.get("id"), int) and not card.get("archived"):
                self.cards[card["id"]] = card
        for cid, card in sorted(self.cards.items()):
            ctype = card.get("type") or ("model" if card.get("dataset") else "question")
            self.cards_by_type[str(ctype)] += 1
            key = self.card_node(cid)
            self.read_card_query(cid, key, card)

    def card_node(self, cid: int) -> str:
        card = self.cards.get(cid)
        key = f"MetabaseCard:{self.inst}/{cid}"
        if card is None:
            return self.node(key, "MetabaseCard", {"metabase_id": cid}, external=True)
        ctype = card.get("type") or ("model" if card.get("dataset") else "question")
        dq = card.get("dataset_query") or {}
        db_id = dq.get("database") if isinstance(dq, dict) else None
        db = self.databases.get(db_id if isinstance(db_id, int) else card.get("database_id"))
        return self.node(key, "MetabaseCard", {
            "metabase_id": cid,
            "title": card.get("name"),
            "card_type": ctype,
            "display": card.get("display"),
            "query_type": _query_type(dq),
            "database": db.name if db else None,
            "collection": self.collections.get(card.get("collection_id"), None)
            if card.get("collection_id") is not None else "root",
        })

    def read_card_query(self, cid: int, key: str, card: dict[str, Any]) -> None:
        dq = card.get("dataset_query") or {}
        if not isinstance(dq, dict):
            dq = {}
        evidence = f"metabase:card/{cid}"
        qtype = _query_type(dq)
        self.cards_by_query[qtype] += 1
        db_id = dq.get("database") if isinstance(dq.get("database"), int) else card.get("database_id")
        db = self.databases.get(db_id) if isinstance(db_id, int) else None
        if qtype == "native":
            sql, tags, rest = _native_parts(dq)
            refs = _MbqlRefs()
            _walk_mbql(tags, refs)
            _walk_mbql(rest, refs)
            self.add_mbql_edges(key, refs, evidence, "field filter")
            self.read_native(cid, key, sql, db, evidence)
        elif qtype == "mbql":
            refs = _MbqlRefs()
            _walk_mbql(dq, refs)
            self.add_mbql_edges(key, refs, evidence, "MBQL")
        else:
            self.findings.append(f"card {cid}: query of unknown shape; its reads are not linked")
            self.counts["cards_unparsed"] += 1

    def read_native(self, cid: int, key: str, sql: str, db: _Database | None, evidence: str) -> None:
        if db is None:
            self.findings.append(f"card {cid}: native query on an unknown database; not linked")
            self.counts["cards_unparsed"] += 1
            return
        snippets = self.load_snippets() if "snippet" in sql.lower() else None
        default_schema = self.cfg.options.get("default_schema") or _DEFAULT_SCHEMAS.get(
            str(db.engine or "").lower())
        res = analyze_sql(sql, dialect_for_engine(db.engine), db.sql_schema,
                          default_schema=default_schema, snippets=snippets)
        for target in sorted(res.card_refs):
            self.edge(key, self.card_node(target), QUERIES, evidence, "native SQL {{#card}}", READ)
        if res.error:
            self.counts["cards_unparsed"] += 1
            self.nodes[key].attrs["parse_error"] = res.error
            self.findings.append(
                f"card {cid}: native SQL not parsed ({res.error}); its columns are not linked")
            return
        missing = sorted(s for s in res.snippets if snippets is None or s not in snippets)
        if missing:
            self.findings.append(f"card {cid}: snippet(s) {', '.join(missing)} not found")
        for schema, table in sorted(res.tables, key=str):
            self.edge(key, self.table_key(db, schema, table), QUERIES, evidence, "native SQL", READ)
        for schema, table, column in sorted(res.columns, key=str):
            self.edge(key, self.column_key(db, schema, table, column), QUERIES, evidence,
                      "native SQL", READ)
        if res.unresolved:
            self.nodes[key].attrs["unresolved_columns"] = sorted(res.unresolved)

    def table_key(self, db: _Database, schema: str | None, table: str) -> str:
        k = db.table_keys.get(((schema or "").lower(), table.lower()))
        if k:
            return k
        prefix = f"{db.name}.{schema}.{table}" if schema else f"{db.name}.{table}"
        return self.node(f"WarehouseTable:{self.inst}/{prefix}", "WarehouseTable",
                         {"database": db.name, "schema": schema, "table": table}, external=True)

    def column_key(self, db: _Database, schema: str | None, table: str, column: str) -> str:
        k = db.column_keys.get(((schema or "").lower(), table.lower(), column.lower()))
        if k:
            return k
        tkey = self.table_key(db, schema, table)
        tname = tkey.split(":", 1)[1]
        ckey = self.node(f"WarehouseColumn:{tname}.{column}", "WarehouseColumn",
                         {"table": tname, "column": column}, external=True)
        self.edge(ckey, tkey, CHILD_OF, "metabase:native SQL")
        return ckey

    def add_mbql_edges(self, key: str, refs: _MbqlRefs, evidence: str, detail: str) -> None:
        for tid in sorted(refs.tables):
            tkey = self.table_keys.get(tid)
            if tkey:
                self.edge(key, tkey, QUERIES, evidence, detail, READ)
            else:
                self.counts["unknown_table_refs"] += 1
        for fid in sorted(refs.fields):
            ckey = self.field_keys.get(fid)
            if ckey:
                self.edge(key, ckey, QUERIES, evidence, detail, READ)
                self.edge(key, self.field_table[fid], QUERIES, evidence, detail, READ)
            else:
                self.counts["unknown_field_refs"] += 1
        # Columns named rather than numbered (``["field", "amount", {...}]``): resolvable only
        # against the query's own source tables; on a card/model source the card edge covers them.
        for name in sorted(refs.names):
            hits = {self.table_columns.get(t, {}).get(name.lower()) for t in refs.tables} - {None}
            if len(hits) == 1:
                self.edge(key, hits.pop(), QUERIES, evidence, detail, READ)
        for cid in sorted(refs.cards):
            self.edge(key, self.card_node(cid), QUERIES, evidence, "source card", READ)
        for mid in sorted(refs.metrics):
            card = self.cards.get(mid)
            if card is not None and card.get("type") == "metric":
                self.edge(key, self.card_node(mid), QUERIES, evidence, "metric", READ)

    def load_snippets(self) -> dict[str, str]:
        if self.snippets is None:
            self.snippets = {}
            try:
                body = self.items(self.get("/api/native-query-snippet"),
                                  "GET /api/native-query-snippet")
                self.snippets = {str(s.get("name")): str(s.get("content") or "") for s in body}
            except PlatformError as exc:
                self.findings.append(f"snippets not read ({exc.problem}); cards using them are "
                                     "parsed without")
        return self.snippets

    def read_dashboards(self) -> None:
        listing = self.items(self.get("/api/dashboard"), "GET /api/dashboard")
        for item in sorted(listing, key=lambda d: d.get("id") if isinstance(d.get("id"), int) else 0):
            did = item.get("id")
            if not isinstance(did, int) or item.get("archived"):
                continue
            dash = self.get(f"/api/dashboard/{did}")
            if not isinstance(dash, dict):
                raise PlatformError(self.inst, "GET /api/dashboard/:id",
                                    "unexpected response shape (expected an object)")
            dashcards = dash.get("dashcards")
            if dashcards is None:
                dashcards = dash.get("ordered_cards")  # before 0.48
            dashcards = [d for d in dashcards or [] if isinstance(d, dict)]
            key = self.node(f"MetabaseDashboard:{self.inst}/{did}", "MetabaseDashboard", {
                "metabase_id": did, "title": dash.get("name") or item.get("name"),
                "collection": self.collections.get(dash.get("collection_id"))
                if dash.get("collection_id") is not None else "root",
                "dashcards": len(dashcards),
                "parameters": len(dash.get("parameters") or []),
            })
            self.counts["dashboards"] += 1
            self.counts["dashcards"] += len(dashcards)
            evidence = f"metabase:dashboard/{did}"
            for dc in dashcards:
                ids = [dc.get("card_id") or (dc.get("card") or {}).get("id")]
                ids += [s.get("id") for s in dc.get("series") or [] if isinstance(s, dict)]
                for cid in ids:
                    if isinstance(cid, int):
                        self.edge(key, self.card_node(cid), SHOWS, evidence)
                refs = _MbqlRefs()
                _walk_mbql(dc.get("parameter_mappings") or [], refs)
                for fid in sorted(refs.fields):
                    if fid in self.field_keys:
                        self.edge(key, self.field_keys[fid], QUERIES, evidence, "dashboard filter",
                                  READ)

    def link_salesforce(self) -> None:
        tables: dict[str, list[str]] = {}
        for n in self.nodes.values():
            if n.type == "WarehouseColumn" and not n.external:
                tables.setdefault(n.attrs["table"], []).append(n.attrs["column"])
        for n in sorted(self.nodes.values(), key=lambda n: n.key):
            if n.type != "WarehouseTable" or n.external or not n.attrs.get("schema"):
                continue
            db, schema, table = str(n.attrs["database"]), str(n.attrs["schema"]), n.attrs["table"]
            for rule in self.rules:
                if rule.schema != schema.lower() or (rule.database and rule.database != db.lower()):
                    continue
                m = rule.pattern.fullmatch(table)
                if not m:
                    continue
                if "{" in rule.obj:
                    try:
                        values = {"table": table, "schema": schema, "database": db,
                                  **{k: v or "" for k, v in m.groupdict().items()}}
                        obj = rule.obj.format(**{k: sf_case(v) for k, v in values.items()})
                    except (KeyError, IndexError, ValueError) as exc:
                        raise PlatformError(self.inst, f"options.salesforce_mapping[{rule.index}]",
                                            f"object template {rule.obj!r} fails: {exc}") from None
                else:
                    obj = rule.obj
                how = "default mapping" if rule.default else f"salesforce_mapping[{rule.index}]"
                self.links.append(SalesforceLink(n.key, obj, None, f"metabase: {how} "
                                                 f"({schema}.{table} → {obj})", self.cfg.org))
                self.counts["salesforce_tables_linked"] += 1
                for column in sorted(tables.get(n.name, [])):
                    low = column.lower()
                    if low in rule.column_map:
                        fname = rule.column_map[low]
                        if not fname:
                            continue
                    elif rule.skip.fullmatch(column):
                        continue
                    else:
                        fname = sf_case(column)
                    sf_field = fname if "." in fname else f"{obj}.{fname}"
                    self.links.append(SalesforceLink(
                        f"WarehouseColumn:{n.name}.{column}", sf_field.split(".", 1)[0], sf_field,
                        f"metabase: {how} ({schema}.{table}.{column} → {sf_field})", self.cfg.org,
                    ))
                    self.counts["salesforce_columns_linked"] += 1
                break

    def aggregates(self) -> dict[str, Any]:
        return {
            "databases": self.counts["databases"],
            "engines": dict(sorted(self.engines.items())),
            "tables": self.counts["tables"],
            "columns": self.counts["columns"],
            "cards": sum(self.cards_by_type.values()),
            "cards_by_type": {t: self.cards_by_type.get(t, 0) for t in
                              sorted({"question", "model", "metric", *self.cards_by_type})},
            "cards_by_query": dict(sorted(self.cards_by_query.items())),
            "cards_unparsed": self.counts["cards_unparsed"],
            "dashboards": self.counts["dashboards"],
            "dashcards": self.counts["dashcards"],
            "collections": self.counts["collections"],
            "unknown_field_refs": self.counts["unknown_field_refs"],
            "salesforce_tables_linked": self.counts["salesforce_tables_linked"],
            "salesforce_columns_linked": self.counts["salesforce_columns_linked"],
        }


# -- query shapes -----------------------------------------------------------------------------


def _query_type(dq: Any) -> str:
    if not isinstance(dq, dict):
        return "unknown"
    if dq.get("type") == "native":
        return "native"
    if dq.get("type") == "query":
        return "mbql"
    stages = dq.get("stages")
    if isinstance(stages, list) and stages and isinstance(stages[0], dict):
        return "native" if stages[0].get("lib/type") == "mbql.stage/native" else "mbql"
    return "unknown"


def _native_parts(dq: dict[str, Any]) -> tuple[str, Any, Any]:
    """(SQL, template tags, later MBQL stages) of a native query, legacy or MBQL 5."""
    if dq.get("type") == "native":
        native = dq.get("native") or {}
        return str(native.get("query") or ""), native.get("template-tags") or {}, None
    stages = dq.get("stages") or [{}]
    first = stages[0]
    sql = first.get("native")
    if isinstance(sql, dict):  # defensive: {query: ...}
        sql = sql.get("query")
    return str(sql or ""), first.get("template-tags") or {}, stages[1:]


def _walk_mbql(node: Any, refs: _MbqlRefs) -> None:
    """Collect field ids/names, table ids and card ids from any MBQL (legacy or 5) tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "source-table":
                if isinstance(v, int) and not isinstance(v, bool):
                    refs.tables.add(v)
                elif isinstance(v, str) and v.startswith("card__") and v[6:].isdigit():
                    refs.cards.add(int(v[6:]))
            elif k in ("source-card", "card-id") and isinstance(v, int) and not isinstance(v, bool):
                refs.cards.add(v)
            elif k == "source-field" and isinstance(v, int) and not isinstance(v, bool):
                refs.fields.add(v)
            _walk_mbql(v, refs)
    elif isinstance(node, list) and node:
        head = node[0]
        if head in ("field", "field-id", "field-literal"):
            for x in node[1:]:
                if isinstance(x, int) and not isinstance(x, bool):
                    refs.fields.add(x)
                elif isinstance(x, str):
                    refs.names.add(x)
                    break
        elif head == "metric":
            for x in node[1:]:
                if isinstance(x, int) and not isinstance(x, bool):
                    refs.metrics.add(x)
        for x in node:
            if isinstance(x, (list, dict)):
                _walk_mbql(x, refs)
