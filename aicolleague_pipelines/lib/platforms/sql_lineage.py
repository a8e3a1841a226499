"""Which warehouse columns a native SQL query reads (Metabase native questions), with sqlglot.

``columns_read(sql, dialect, schema)`` → ``{(schema, table, column), ...}``; the richer
:func:`analyze_sql` also returns the tables, the Metabase card references (``{{#12}}``), the
snippets used, the column names it could not tie to a table, and — for SQL it cannot parse —
an error text instead of an exception.

What it resolves:

- table aliases, joins, unqualified columns (through the metadata schema), correlated
  sub-queries, derived tables and CTEs (a CTE's columns are traced to its base tables: the
  columns a CTE references are read, and a ``SELECT *`` inside a CTE counts only the columns
  the outer query actually uses), ``SELECT *`` at the top (expanded from the schema);
- quoted identifiers and any identifier case: names are matched case-insensitively against
  the schema and returned in the schema's spelling (names not in the schema come back
  lower-cased);
- unqualified tables: the one schema that holds a table of that name, else ``default_schema``;
- Metabase's template syntax, replaced before parsing: variables ``{{var}}`` and field
  filters become a literal, optional clauses ``[[ AND x = {{var}} ]]`` are kept (their
  columns are read when the filter is used) or, if that does not parse, dropped, card
  references ``{{#12-name}}`` become a table ``__metabase_card_12`` reported in ``card_refs``,
  snippets ``{{snippet: name}}`` are inlined when their text is given, else blanked.

``schema`` is ``{schema_name: {table_name: [column, ...] | {column: type}}}`` — the names
tables are qualified with in SQL (for engines without schemas, e.g. MySQL, use the database
name).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema

Column = tuple[str | None, str, str]
TableRef = tuple[str | None, str]

CARD_TABLE_PREFIX = "__metabase_card_"
_AMBIGUOUS = "__ambiguous_schema__"

#: Metabase database ``engine`` → sqlglot dialect (None = sqlglot's generic dialect).
ENGINE_DIALECTS = {
    "postgres": "postgres",
    "redshift": "redshift",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "bigquery-cloud-sdk": "bigquery",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlserver": "tsql",
    "oracle": "oracle",
    "sparksql": "spark",
    "databricks": "databricks",
    "hive-like": "hive",
    "presto": "presto",
    "presto-jdbc": "presto",
    "starburst": "trino",
    "trino": "trino",
    "athena": "athena",
    "clickhouse": "clickhouse",
    "duckdb": "duckdb",
    "sqlite": "sqlite",
    "druid": "druid",
    "druid-jdbc": "druid",
    "teradata": "teradata",
    "materialize": "materialize",
    "h2": "postgres",  # Metabase's sample database; close enough for SELECTs
}

_QUERY_TYPES = (exp.Query, exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create)
_OPTIONAL_RE = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_CARD_REF_RE = re.compile(r"\{\{\s*#(\d+)(?:-[^}]*)?\s*\}\}")
_SNIPPET_RE = re.compile(r"\{\{\s*snippet:\s*([^}]*?)\s*\}\}", re.IGNORECASE)
_VAR_RE = re.compile(r"\{\{\s*[^}]*?\s*\}\}")

# qualify() logs unsupported syntax it falls back on; callers get `error` instead.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


@dataclass
class SqlLineage:
    columns: set[Column] = field(default_factory=set)
    tables: set[TableRef] = field(default_factory=set)
    card_refs: set[int] = field(default_factory=set)
    snippets: set[str] = field(default_factory=set)
    #: Column names that could not be tied to a table (unknown table, ambiguous join).
    unresolved: set[str] = field(default_factory=set)
    #: Set when the SQL could not be parsed (the other fields are then empty).
    error: str | None = None


def dialect_for_engine(engine: str | None) -> str | None:
    return ENGINE_DIALECTS.get((engine or "").lower())


def columns_read(
    sql: str, dialect: str | None = None, schema: Mapping[str, Any] | None = None
) -> set[Column]:
    """The ``(schema, table, column)`` triples ``sql`` reads (empty when it cannot be parsed)."""
    return analyze_sql(sql, dialect, schema).columns


def strip_template(sql: str, *, keep_optional: bool = True, snippets: Mapping[str, str] | None = None,
                   unknown_snippet: str = "") -> tuple[str, set[int], set[str]]:
    """Replace Metabase template syntax; returns the SQL, card ids and snippet names."""
    cards: set[int] = set()
    used: set[str] = set()
    snippets = snippets or {}

    def snippet(m: re.Match[str]) -> str:
        name = m.group(1)
        used.add(name)
        text = snippets.get(name)
        return f" {text} " if text is not None else unknown_snippet

    def card(m: re.Match[str]) -> str:
        cards.add(int(m.group(1)))
        return f" {CARD_TABLE_PREFIX}{m.group(1)} "

    out = sql
    for _ in range(3):  # snippets may hold template syntax themselves
        out = _SNIPPET_RE.sub(snippet, out)
    out = _CARD_REF_RE.sub(card, out)
    out = _OPTIONAL_RE.sub((lambda m: f" {m.group(1)} ") if keep_optional else " ", out)
    out = _VAR_RE.sub(" 1 ", out)
    return out, cards, used


def analyze_sql(
    sql: str,
    dialect: str | None = None,
    schema: Mapping[str, Any] | None = None,
    *,
    default_schema: str | None = None,
    snippets: Mapping[str, str] | None = None,
) -> SqlLineage:
    """Everything :func:`columns_read` knows about one query; never raises on bad SQL."""
    cat = _Catalog(schema or {})
    statements: list[exp.Expression] | None = None
    first_error: str | None = None
    cards: set[int] = set()
    used: set[str] = set()
    for keep_optional, unknown_snippet in ((True, ""), (False, ""), (True, " 1 "), (False, " 1 ")):
        text, cards, used = strip_template(
            sql, keep_optional=keep_optional, snippets=snippets, unknown_snippet=unknown_snippet
        )
        try:
            parsed = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except SqlglotError as exc:
            first_error = first_error or _short(exc)
            continue
        if not parsed:
            first_error = first_error or "empty query"
            continue
        if not any(isinstance(s, _QUERY_TYPES) for s in parsed):
            first_error = first_error or "not a query sqlglot understands"
            continue
        statements = parsed
        break
    if statements is None:
        return SqlLineage(card_refs=cards, snippets=used, error=first_error or "unparsable")

    out = SqlLineage(card_refs=set(cards), snippets=set(used))
    for stmt in statements:
        if not isinstance(stmt, _QUERY_TYPES):
            continue
        try:
            _analyze_statement(stmt, dialect, cat, default_schema, out)
        except SqlglotError as exc:
            out.error = f"could not resolve columns: {_short(exc)}"
        except RecursionError:
            out.error = "query too deeply nested to analyse"
    for s, t in list(out.tables):
        if s is None and t.startswith(CARD_TABLE_PREFIX):
            out.tables.discard((s, t))
            out.card_refs.add(int(t[len(CARD_TABLE_PREFIX):]))
    out.columns = {c for c in out.columns if not c[1].startswith(CARD_TABLE_PREFIX)}
    return out


# --------------------------------------------------------------------------------------------


class _Catalog:
    """The metadata schema, lower-cased for matching, remembering each name's real spelling."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.mapping: dict[str, dict[str, dict[str, str]]] = {}
        self.spelling: dict[tuple[str, ...], str] = {}
        self.tables_by_name: dict[str, list[str]] = {}
        for sname, tables in schema.items():
            s = str(sname).lower()
            self.spelling[(s,)] = str(sname)
            tmap = self.mapping.setdefault(s, {})
            for tname, cols in (tables or {}).items():
                t = str(tname).lower()
                self.spelling[(s, t)] = str(tname)
                self.tables_by_name.setdefault(t, []).append(s)
                cmap = tmap.setdefault(t, {})
                names: Iterable[Any] = cols.keys() if isinstance(cols, Mapping) else (cols or [])
                for cname in names:
                    c = str(cname).lower()
                    self.spelling[(s, t, c)] = str(cname)
                    cmap[c] = "UNKNOWN"

    def schema(self, dialect: str | None) -> MappingSchema:
        return MappingSchema(self.mapping, dialect=dialect, normalize=False)

    def column(self, s: str | None, t: str, c: str) -> Column:
        if s is None or s == _AMBIGUOUS:
            return (None, t, c)
        return (
            self.spelling.get((s,), s),
            self.spelling.get((s, t), t),
            self.spelling.get((s, t, c), c),
        )

    def table(self, s: str | None, t: str) -> TableRef:
        if s is None or s == _AMBIGUOUS:
            return (None, t)
        return (self.spelling.get((s,), s), self.spelling.get((s, t), t))


def _analyze_statement(
    stmt: exp.Expression, dialect: str | None, cat: _Catalog, default_schema: str | None,
    out: SqlLineage,
) -> None:
    _normalise(stmt)
    _qualify_tables(stmt, cat, (default_schema or "").lower() or None)
    schema = cat.schema(dialect)
    common = dict(
        dialect=dialect, schema=schema, validate_qualify_columns=False, quote_identifiers=False,
    )
    # Pass 1: every column written in the query (no star expansion).
    explicit = qualify(stmt.copy(), expand_stars=False, **common)
    unresolved = _collect(explicit, cat, out)
    # Pass 2: stars expanded, then projections nobody uses pruned from CTEs / derived tables.
    if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star)
           for s in stmt.find_all(exp.Star, exp.Column)):
        expanded = qualify(stmt.copy(), expand_stars=True, **common)
        try:
            expanded = pushdown_projections(expanded)
        except SqlglotError:
            pass  # a star over an unknown source: keep every expanded column
        # A name is unresolved only if star expansion did not resolve it either.
        unresolved &= _collect(expanded, cat, out, stars_only=True)
    out.unresolved |= unresolved


def _normalise(stmt: exp.Expression) -> None:
    """Lower-case and quote every identifier, so matching is case-insensitive in any dialect."""
    for ident in stmt.find_all(exp.Identifier):
        ident.set("this", str(ident.this).lower())
        ident.set("quoted", True)


def _qualify_tables(stmt: exp.Expression, cat: _Catalog, default_schema: str | None) -> None:
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    for table in stmt.find_all(exp.Table):
        if table.args.get("db") or not table.name or table.name in ctes:
            continue
        if table.name.startswith(CARD_TABLE_PREFIX):
            continue
        holders = cat.tables_by_name.get(table.name, [])
        chosen = holders[0] if len(holders) == 1 else (
            default_schema if default_schema in holders else None
        )
        if not chosen and len(holders) > 1:
            chosen = _AMBIGUOUS  # several schemas hold it: keep the table, schema unknown
        if chosen:
            table.set("db", exp.to_identifier(chosen, quoted=True))


def _collect(
    root: exp.Expression, cat: _Catalog, out: SqlLineage, *, stars_only: bool = False
) -> set[str]:
    """Add the base-table columns of every scope to ``out``; returns the unresolved names."""
    unresolved: set[str] = set()
    for scope in traverse_scope(root):
        base = {alias: src for alias, src in scope.sources.items() if isinstance(src, exp.Table)}
        if not stars_only:
            for src in base.values():
                if src.name:
                    out.tables.add(cat.table(src.db or None, src.name))
        for col in scope.columns:
            if not col.name or isinstance(col.this, exp.Star):
                continue
            src = _source_of(scope, col.table)
            if src is None and not col.table:
                # Unqualified and not in the schema: with one base table it can only be that one.
                if len(base) == 1 and not any(isinstance(s, Scope) for s in scope.sources.values()):
                    src = next(iter(base.values()))
                else:
                    if not _is_alias_ref(scope, col):
                        unresolved.add(col.name)
                    continue
            if isinstance(src, exp.Table) and src.name:
                out.columns.add(cat.column(src.db or None, src.name, col.name))
    return unresolved


def _source_of(scope: Scope, alias: str) -> Any:
    if not alias:
        return None
    s: Scope | None = scope
    while s is not None:
        if alias in s.sources:
            return s.sources[alias]
        s = s.parent
    return None


def _is_alias_ref(scope: Scope, col: exp.Column) -> bool:
    """``ORDER BY total`` where ``total`` is a projection's alias."""
    sel = scope.expression
    if not isinstance(sel, exp.Select) or col.find_ancestor(exp.Order, exp.Having, exp.Group,
                                                            exp.Qualify) is None:
        return False
    return any(e.alias == col.name for e in sel.expressions)


_TOKEN_RE = re.compile(r"<Token token_type: [^,]*, text: (.*?), line: \d+.*?>")


def _short(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors and isinstance(errors[0], dict) and errors[0].get("description"):
        e = errors[0]
        text = f"{e['description']} (line {e.get('line')}, column {e.get('col')})"
    else:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = _TOKEN_RE.sub(lambda m: repr(m.group(1)), text)
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[:200]
