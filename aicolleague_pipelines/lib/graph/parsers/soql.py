"""SOQL / SOSL reference extraction (inline Apex queries and dynamic query strings).

``parse_soql(query, schema)`` returns ``QUERIES`` references (access ``read``) to the queried
objects and to every field the query selects, filters, groups or orders by. Relationship paths
(``Program__r.Account__r.Name``) resolve through :meth:`Schema.resolve_path` (the lookups along
the way are referenced too). Child-relationship subqueries (``(SELECT Id FROM Contacts)``)
resolve to the child object when the relationship is known; semi-join subqueries in ``WHERE``
are queries of their own. Bind expressions (``:var``), literals, date literals, functions,
aliases and clause keywords never yield references.

A hand-written tokenizer: quoted strings are skipped, so a literal never becomes a field.
"""

from __future__ import annotations

import re

from aicolleague_pipelines.lib.graph.model import QUERIES, READ, Reference
from aicolleague_pipelines.lib.graph.schema import Schema

# token kinds
_ID, _STR, _NUM, _OP = "id", "str", "num", "op"

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<str>'(?:\\.|[^'\\])*'?)
  | (?P<brace>\{[^}]*\}?)
  | (?P<num>[0-9][\w\-:.+]*)
  | (?P<id>[A-Za-z_][\w]*(?:\s*\.\s*[A-Za-z_][\w]*)*)
  | (?P<op>[<>!=]=|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_CLAUSES = {
    "select",
    "from",
    "where",
    "with",
    "group",
    "having",
    "order",
    "limit",
    "offset",
    "for",
    "using",
    "all",
    "update",
}
#: Words that are never field names in a SOQL condition / list.
_KEYWORDS = {
    "select", "from", "where", "with", "group", "by", "having", "order", "limit", "offset",
    "for", "update", "view", "reference", "tracking", "viewstat", "all", "rows", "using",
    "scope", "and", "or", "not", "in", "like", "includes", "excludes", "asc", "desc", "nulls",
    "first", "last", "null", "true", "false", "typeof", "when", "then", "else", "end", "as",
    "rollup", "cube", "security_enforced", "user_mode", "system_mode", "data", "category", "at",
    "above", "below", "above_or_below", "find", "returning", "fields", "standard", "custom",
    "snippet", "division", "network", "metadata", "pricebookid", "spell_correction",
    "highlight", "mine", "everything", "delegated", "team", "my_territory",
    "my_team_territory", "mineandmygroups",
}
_DATE_LITERAL_RE = re.compile(
    r"^(yesterday|today|tomorrow|(last|this|next)_(week|month|quarter|year|90_days|fiscal_quarter|fiscal_year)"
    r"|(last|next)_n_\w+|n_\w+_ago)$",
    re.IGNORECASE,
)

#: Child relationship name → child object for common standard relationships.
STANDARD_CHILD_RELATIONSHIPS: dict[str, str] = {
    "contacts": "Contact",
    "opportunities": "Opportunity",
    "cases": "Case",
    "opportunitylineitems": "OpportunityLineItem",
    "opportunitycontactroles": "OpportunityContactRole",
    "accountcontactrelations": "AccountContactRelation",
    "contactrelations": "AccountContactRelation",
    "childaccounts": "Account",
    "assets": "Asset",
    "contracts": "Contract",
    "orders": "Order",
    "orderitems": "OrderItem",
    "quotes": "Quote",
    "quotelineitems": "QuoteLineItem",
    "tasks": "Task",
    "events": "Event",
    "activityhistories": "ActivityHistory",
    "openactivities": "OpenActivity",
    "notes": "Note",
    "attachments": "Attachment",
    "notesandattachments": "NoteAndAttachment",
    "contentdocumentlinks": "ContentDocumentLink",
    "combinedattachments": "CombinedAttachment",
    "campaignmembers": "CampaignMember",
    "users": "User",
    "feeds": "FeedItem",
    "histories": "History",
    "emailmessages": "EmailMessage",
    "entitlements": "Entitlement",
    "workorders": "WorkOrder",
    "partners": "Partner",
    "accountteammembers": "AccountTeamMember",
    "opportunityteammembers": "OpportunityTeamMember",
    "pricebookentries": "PricebookEntry",
    "recordtypes": "RecordType",
    "shares": "Share",
}


class _Tok:
    __slots__ = ("kind", "text", "low", "line")

    def __init__(self, kind: str, text: str, line: int) -> None:
        self.kind = kind
        self.text = text
        self.low = text.lower()
        self.line = line


def _tokenize(query: str, line_offset: int) -> list[_Tok]:
    toks: list[_Tok] = []
    line = 1 + line_offset
    for m in _TOKEN_RE.finditer(query):
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            continue
        if kind == "nl":
            line += 1
            continue
        start_line = line
        line += text.count("\n")
        if kind == "id":
            if "\n" in text or " " in text or "\t" in text:
                text = re.sub(r"\s+", "", text)
            toks.append(_Tok(_ID, text, start_line))
        elif kind in ("str", "brace"):
            toks.append(_Tok(_STR, text, start_line))
        elif kind == "num":
            toks.append(_Tok(_NUM, text, start_line))
        else:
            toks.append(_Tok(_OP, text, start_line))
    return _drop_binds(toks)


def _drop_binds(toks: list[_Tok]) -> list[_Tok]:
    """Remove Apex bind expressions (``:var``, ``:acc.Id``, ``:ids[0]``, ``:m.keySet()``)."""
    out: list[_Tok] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        if t.kind == _OP and t.text == ":":
            # date literal with a parameter (LAST_N_DAYS:5) → keep the literal, skip the number
            if out and out[-1].kind == _ID and _DATE_LITERAL_RE.match(out[-1].text):
                i += 1
                if i < n and toks[i].kind in (_NUM, _ID):
                    i += 1
                continue
            i += 1
            # skip one Apex expression: prefix operators, `new T(...)`, ids, calls, indexes
            while i < n and toks[i].kind == _OP and toks[i].text in ("-", "!", "+"):
                i += 1
            if i < n and toks[i].kind == _ID and toks[i].low == "new":
                i += 1
            if i < n and toks[i].kind in (_ID, _NUM, _STR):
                i += 1
            elif i < n and toks[i].text == "(":
                i = _skip_group(toks, i)
            while i < n:
                tt = toks[i]
                if tt.kind == _OP and tt.text in ("(", "["):
                    i = _skip_group(toks, i)
                elif tt.kind == _OP and tt.text == "<":  # generic: new Set<Id>(...)
                    depth = 0
                    while i < n:
                        if toks[i].text == "<":
                            depth += 1
                        elif toks[i].text == ">":
                            depth -= 1
                            if depth == 0:
                                i += 1
                                break
                        i += 1
                elif tt.kind == _OP and tt.text == "." and i + 1 < n and toks[i + 1].kind == _ID:
                    i += 2
                elif tt.kind == _STR and tt.text.startswith("{"):  # new Set<Id>{...}
                    i += 1
                else:
                    break
            continue
        out.append(t)
        i += 1
    return out


def _skip_group(toks: list[_Tok], i: int) -> int:
    """Index after the group opened at ``toks[i]`` (``(`` or ``[``)."""
    opener = toks[i].text
    closer = ")" if opener == "(" else "]"
    depth = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        if t.kind == _OP:
            if t.text == opener:
                depth += 1
            elif t.text == closer:
                depth -= 1
                if depth == 0:
                    return i + 1
        i += 1
    return n


def _group_end(toks: list[_Tok], i: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``toks[i]`` (len(toks) when unbalanced)."""
    return _skip_group(toks, i) - 1


class _Collector:
    def __init__(self, schema: Schema, dynamic: bool) -> None:
        self.schema = schema
        self.dynamic = dynamic
        self.refs: list[Reference] = []
        self.seen: set[tuple] = set()

    def add(self, target: str, line: int, detail: str) -> None:
        key = (target, line)
        if key in self.seen:
            return
        self.seen.add(key)
        self.refs.append(
            Reference(target=target, kind=QUERIES, line=line, access=READ, dynamic=self.dynamic, detail=detail)
        )

    def obj(self, name: str, line: int, detail: str) -> None:
        if _valid_name(name):
            self.add(self.schema.object_key(name), line, detail)

    def path(self, obj: str | None, alias: str | None, path: str, line: int, detail: str) -> None:
        if obj is None:
            return
        parts = path.split(".")
        if not all(_valid_name(p) for p in parts):
            return
        if len(parts) > 1:
            first = parts[0].lower()
            if (alias and first == alias.lower()) or (
                first == obj.lower() and self.schema.relationship(obj, parts[0]) is None
            ):
                parts = parts[1:]
        if not parts or parts[-1].lower() in _KEYWORDS and len(parts) == 1:
            return
        for key in self.schema.resolve_path(obj, ".".join(parts)):
            self.add(key, line, detail)


_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and not name.endswith("_")


def child_object(schema: Schema, parent: str | None, rel: str) -> str | None:
    """The child object of child relationship ``rel`` on ``parent`` (None when unknown)."""
    finder = getattr(schema, "child_relationship", None)
    if parent and finder is not None:
        found = finder(parent, rel)
        if found:
            return found[0]
    return STANDARD_CHILD_RELATIONSHIPS.get(rel.lower())


def parse_soql(query: str, schema: Schema, line_offset: int = 0, *, dynamic: bool = False) -> list[Reference]:
    """References of one SOQL or SOSL query (with or without the surrounding ``[ ]``).

    Lines are 1-based within ``query`` plus ``line_offset``.
    """
    text = query.strip()
    if text.startswith("[") and text.endswith("]"):
        text = query[query.index("[") + 1 : query.rindex("]")]
    else:
        text = query
    toks = _tokenize(text, line_offset)
    col = _Collector(schema, dynamic)
    try:
        _parse_statement(toks, col)
    except Exception:  # noqa: BLE001 - best effort: a malformed query yields what was found
        pass
    return col.refs


def _parse_statement(toks: list[_Tok], col: _Collector) -> None:
    # a dynamic query may carry noise before the keyword: find the first SELECT / FIND
    for i, t in enumerate(toks):
        if t.kind == _ID and t.low == "select":
            _parse_select(toks[i:], col, parent=None)
            return
        if t.kind == _ID and t.low == "find":
            _parse_sosl(toks[i:], col)
            return


def _split_top(toks: list[_Tok], start: int, end: int) -> dict[str, int]:
    """Positions of the top-level clause keywords of a SELECT in ``toks[start:end]``."""
    pos: dict[str, int] = {}
    depth = 0
    for i in range(start, end):
        t = toks[i]
        if t.kind == _OP:
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
        elif depth == 0 and t.kind == _ID and t.low in _CLAUSES and t.low not in pos:
            if t.low == "update" and "for" not in pos:
                continue
            pos[t.low] = i
    return pos


def _parse_select(toks: list[_Tok], col: _Collector, parent: str | None) -> None:
    """``toks`` start at SELECT; ``parent`` is set for a child-relationship subquery."""
    end = len(toks)
    pos = _split_top(toks, 1, end)
    if "from" not in pos:
        return
    f = pos["from"]
    if f + 1 >= end or toks[f + 1].kind != _ID:
        return
    from_tok = toks[f + 1]
    alias = None
    if f + 2 < end and toks[f + 2].kind == _ID and toks[f + 2].low not in _KEYWORDS:
        alias = toks[f + 2].text
    name = from_tok.text
    if parent is not None:
        rel = name.split(".")[-1]
        obj = child_object(col.schema, parent, rel)
        if obj is None:
            obj_name = None
        else:
            obj_name = col.schema.object_name(obj)
            col.obj(obj_name, from_tok.line, "SOQL subquery FROM")
    else:
        obj_name = col.schema.object_name(name) if "." not in name else None
        if obj_name:
            col.obj(obj_name, from_tok.line, "SOQL FROM")
    # field list
    _parse_field_list(toks, 1, f, col, obj_name, alias, "SOQL SELECT")
    # other clauses
    order = sorted((p, k) for k, p in pos.items() if k != "from")
    for idx, (p, k) in enumerate(order):
        stop = order[idx + 1][0] if idx + 1 < len(order) else end
        if k in ("where", "having"):
            _parse_condition(toks, p + 1, stop, col, obj_name, alias, f"SOQL {k.upper()}")
        elif k == "group":
            _parse_condition(toks, p + 1, stop, col, obj_name, alias, "SOQL GROUP BY")
        elif k == "order":
            _parse_condition(toks, p + 1, stop, col, obj_name, alias, "SOQL ORDER BY")
        # with / limit / offset / for / using / all / update: no fields


def _parse_field_list(
    toks: list[_Tok], start: int, stop: int, col: _Collector, obj: str | None, alias: str | None, detail: str
) -> None:
    i = start
    while i < stop:
        t = toks[i]
        if t.kind == _OP and t.text == "(":
            end = _group_end(toks, i)
            inner = toks[i + 1 : end]
            if inner and inner[0].kind == _ID and inner[0].low == "select":
                _parse_select(inner, col, parent=obj)
            i = end + 1
            continue
        if t.kind == _ID and t.low == "typeof":
            i = _parse_typeof(toks, i, stop, col, obj, alias)
            continue
        if t.kind == _ID:
            nxt = toks[i + 1] if i + 1 < stop else None
            if nxt is not None and nxt.kind == _OP and nxt.text == "(":
                end = _group_end(toks, i + 1)
                if t.low != "fields":
                    _parse_condition(toks, i + 2, end, col, obj, alias, detail)
                i = end + 1
                # alias after an aggregate: skip one identifier
                if i < stop and toks[i].kind == _ID and toks[i].low not in _KEYWORDS:
                    i += 1
                continue
            prev = toks[i - 1] if i > start else None
            is_alias = prev is not None and (prev.kind == _ID or (prev.kind == _OP and prev.text == ")"))
            if not is_alias and t.low not in _KEYWORDS:
                col.path(obj, alias, t.text, t.line, detail)
        i += 1


def _parse_typeof(
    toks: list[_Tok], i: int, stop: int, col: _Collector, obj: str | None, alias: str | None
) -> int:
    """``TYPEOF What WHEN Account THEN Name, Phone ELSE Name END`` → index after END."""
    i += 1
    if i >= stop:
        return stop
    rel_tok = toks[i]
    schema = col.schema
    rel_field = None
    if obj and rel_tok.kind == _ID:
        rel = schema.relationship(obj, rel_tok.text)
        if rel:
            rel_field = rel[0]
            col.add(schema.field_key(obj, rel_field), rel_tok.line, "SOQL TYPEOF")
    i += 1
    current: str | None = None
    while i < stop:
        t = toks[i]
        if t.kind == _ID:
            if t.low == "end":
                return i + 1
            if t.low == "when" and i + 1 < stop:
                current = toks[i + 1].text
                col.obj(current, toks[i + 1].line, "SOQL TYPEOF")
                i += 2
                continue
            if t.low == "then":
                i += 1
                continue
            if t.low == "else":
                current = None
                i += 1
                continue
            if current:
                col.path(current, None, t.text, t.line, "SOQL TYPEOF")
        i += 1
    return stop


def _parse_condition(
    toks: list[_Tok], start: int, stop: int, col: _Collector, obj: str | None, alias: str | None, detail: str
) -> None:
    i = start
    while i < stop:
        t = toks[i]
        if t.kind == _OP and t.text == "(":
            end = _group_end(toks, i)
            inner = toks[i + 1 : min(end, stop)]
            if inner and inner[0].kind == _ID and inner[0].low == "select":
                _parse_select(inner, col, parent=None)  # semi-join: a query of its own
            else:
                _parse_condition(toks, i + 1, min(end, stop), col, obj, alias, detail)
            i = end + 1
            continue
        if t.kind == _ID:
            nxt = toks[i + 1] if i + 1 < stop else None
            if nxt is not None and nxt.kind == _OP and nxt.text == "(":
                i += 1  # a function name (CALENDAR_YEAR, DISTANCE, GEOLOCATION, ROLLUP …)
                continue
            if t.low in _KEYWORDS or _DATE_LITERAL_RE.match(t.text):
                i += 1
                continue
            prev = toks[i - 1] if i > start else None
            if prev is not None and prev.kind == _ID and prev.low not in _KEYWORDS:
                i += 1  # an alias (GROUP BY … / ORDER BY … after an expression): skip
                continue
            col.path(obj, alias, t.text, t.line, detail)
        i += 1


def _parse_sosl(toks: list[_Tok], col: _Collector) -> None:
    n = len(toks)
    r = None
    for i, t in enumerate(toks):
        if t.kind == _ID and t.low == "returning":
            r = i
            break
    if r is None:
        return
    i = r + 1
    while i < n:
        t = toks[i]
        if t.kind != _ID or t.low in ("with", "limit", "update", "offset"):
            break
        obj = col.schema.object_name(t.text)
        col.obj(obj, t.line, "SOSL RETURNING")
        i += 1
        if i < n and toks[i].kind == _OP and toks[i].text == "(":
            end = _group_end(toks, i)
            inner = toks[i + 1 : end]
            pos = _split_top(inner, 0, len(inner))
            order = sorted(pos.items(), key=lambda kv: kv[1])
            first_clause = order[0][1] if order else len(inner)
            _parse_field_list(inner, 0, first_clause, col, obj, None, "SOSL RETURNING")
            for idx, (k, p) in enumerate(order):
                stop = order[idx + 1][1] if idx + 1 < len(order) else len(inner)
                if k in ("where", "order"):
                    _parse_condition(inner, p + 1, stop, col, obj, None, f"SOSL {k.upper()}")
            i = end + 1
        if i < n and toks[i].kind == _OP and toks[i].text == ",":
            i += 1
            continue
        break
