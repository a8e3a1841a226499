"""Apex code rules: deterministic checks over Apex classes and triggers of one org.

Drawn from PMD's Apex rules, Salesforce Code Analyzer and OrgCheck. Every rule works on the
token stream of :func:`aicolleague_pipelines.lib.graph.parsers.apex.tokenize` (comments are
dropped and string literals are single tokens, so a pattern in a comment or a string never
triggers a *code* rule; only the literal rules — hard-coded Ids, URLs, names — look inside
string literals), plus a small structural pass (:func:`analyse`) that finds types, methods,
loops, control-flow nesting, ``catch`` blocks and statements. Graph rules (several triggers on
one object, untested and unused classes) read :class:`OrgGraph` edges.

Conventions:

- Components from a managed package (``namespace`` set or ``managed_state == "installed"``)
  are skipped: nobody in the org can change them.
- Loop rules (SOQL, DML, callouts, async, describe, e-mail in loops) skip test classes: test
  data set-up runs once on a handful of records and cannot hit production limits.
- ``APEX-HARDCODED-URL`` skips test classes too (mock endpoints are normal there) and XML
  namespace URIs (``http://www.w3.org/…``, ``http://soap.sforce.com/…``), which are names,
  not endpoints. ``APEX-HARDCODED-ID`` does not skip tests: an Id baked into a test breaks it
  in every other org.
- Finding ids stay stable across runs *and across unrelated edits*: discriminators are the
  method name plus the occurrence number inside the method (``createRenewals#1``), the
  literal (Ids, URLs, names), the method name, or the API version — never a bare line
  number. The line is still in ``evidence`` (``component.source:line``) and ``extra["line"]``.
- Suppression: ``@SuppressWarnings('PMD.AvoidSoqlInLoops')`` (any PMD name listed in
  :data:`PMD_EQUIVALENTS`), ``@SuppressWarnings('PMD')`` (everything) or our own rule id
  (``@SuppressWarnings('APEX-SOQL-IN-LOOP')``), on a class (its whole body, inner classes
  included) or on a method (that method), silences the rule there. Several names may be
  separated by commas in one string.
- ``APEX-OLD-API-VERSION``: Salesforce ships three releases a year, each with a new API
  version: Spring (≈ February), Summer (≈ June) and Winter (≈ September, named after the next
  year). Anchor: **v62.0 = Winter '25 = September 2024**; so v61.0 = Summer '24 (June 2024),
  v60.0 = Spring '24 (February 2024), v59.0 = Winter '24 (September 2023), v52.0 = Summer '21,
  v40.0 = Summer '17 (see :func:`api_release`). A component is flagged when its version was
  released three or more years before ``RuleContext.today`` (or, with no usable ``today``,
  when it is nine or more versions behind ``RuleContext.api_version``). Versions 30.0 and
  older are retired by Salesforce (Summer '25) and flagged ``high``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from aicolleague_pipelines.lib.agents.model import Finding, Rule, RuleContext
from aicolleague_pipelines.lib.graph.model import (
    APEX_ACTION,
    CALLS,
    DML as DML_EDGE,
    EXTENDS,
    IMPLEMENTS,
    REFERENCES,
    TRIGGER_ON,
)
from aicolleague_pipelines.lib.graph.parsers.apex import ID, NUM, OP, SOQL, STR, tokenize
from aicolleague_pipelines.lib.salesforce.model import Component

__all__ = [
    "APEX_RULES",
    "PMD_EQUIVALENTS",
    "Analysis",
    "analyse",
    "api_release",
    "run_apex_rules",
]

# --- thresholds (module constants so callers and docs can quote them) -------------------------
TRIGGER_MAX_STATEMENTS = 5
DEBUG_STATEMENT_THRESHOLD = 3
METHOD_MAX_LINES = 80
CLASS_MAX_LINES = 1000
NESTING_MAX_DEPTH = 4
OLD_API_YEARS = 3
RETIRED_API_VERSION = 30.0


# ==============================================================================================
# Structural analysis
# ==============================================================================================
@dataclass
class TypeDecl:
    name: str
    kind: str  # class | interface | enum | trigger
    line: int  # first line of the declaration (annotations included)
    end_line: int
    body_start: int  # token index of "{"
    body_end: int  # token index of "}"
    outer: int  # index of the enclosing TypeDecl, -1 for top level
    sharing: str | None = None  # with | without | inherited
    annotations: dict[str, list[str]] = field(default_factory=dict)  # name → lowered arg tokens
    suppress: frozenset[str] = frozenset()
    modifiers: frozenset[str] = frozenset()
    supertypes: tuple[str, ...] = ()  # lowered extends/implements names
    #: class fields: lowered name → (lowered type or "", init token range or None)
    fields: dict[str, tuple[str, tuple[int, int] | None]] = field(default_factory=dict)


@dataclass
class Method:
    name: str
    type_index: int
    line: int  # first line of the declaration (annotations included)
    end_line: int
    body_start: int
    body_end: int
    annotations: dict[str, list[str]] = field(default_factory=dict)
    suppress: frozenset[str] = frozenset()
    modifiers: frozenset[str] = frozenset()
    params: dict[str, str] = field(default_factory=dict)  # lowered name → lowered type
    statements: int = 0
    max_nest: int = 0
    max_nest_line: int = 0

    @property
    def is_test(self) -> bool:
        return "istest" in self.annotations or "testmethod" in self.modifiers


@dataclass
class Catch:
    type: str  # lowered exception type
    var: str
    line: int
    body_start: int
    body_end: int
    method: int


@dataclass
class Analysis:
    kinds: list[int]
    texts: list[str]
    lows: list[str]
    lines: list[int]
    pair: list[int]
    loop: list[int]  # loop depth of each token
    loop_line: list[int]  # line of the innermost enclosing loop (0 = none)
    nest: list[int]  # control-flow nesting depth of each token
    method_of: list[int]  # index into methods, -1 outside any method
    type_of: list[int]  # innermost TypeDecl, -1
    stmt_start: list[bool]  # first token of a statement
    types: list[TypeDecl]
    methods: list[Method]
    catches: list[Catch]
    #: lowered local declarations per method: name → lowered type
    locals: dict[int, dict[str, str]]

    @property
    def top(self) -> TypeDecl | None:
        for t in self.types:
            if t.outer == -1:
                return t
        return None

    def method_name(self, i: int) -> str:
        m = self.method_of[i]
        if m < 0:
            t = self.type_of[i]
            return f"<{self.types[t].name}>" if t >= 0 else "<top>"
        return self.methods[m].name

    def is_call(self, i: int, head: str, names: Iterable[str]) -> bool:
        """``head . name (`` at token ``i`` (lowered comparison, ``head`` not after a dot)."""
        lows = self.lows
        return (
            i + 3 < len(lows)
            and self.kinds[i] == ID
            and lows[i] == head
            and self.texts[i + 1] == "."
            and lows[i + 2] in names
            and self.texts[i + 3] == "("
            and (i == 0 or self.texts[i - 1] != ".")
        )


_NEST_KW = frozenset(("if", "for", "while", "do", "try", "switch"))
_TYPE_KW = frozenset(("class", "interface", "enum"))
_SHARING = frozenset(("with", "without", "inherited"))


def _pairs(kinds: list[int], texts: list[str]) -> list[int]:
    n = len(texts)
    pair = [-1] * n
    stack: list[int] = []
    closing = {")": "(", "]": "[", "}": "{"}
    for i, (k, t) in enumerate(zip(kinds, texts)):
        if k != OP:
            continue
        if t in "([{" and len(t) == 1:
            stack.append(i)
        elif t in closing and len(t) == 1:
            # pop until the matching opener (tolerates unbalanced input)
            while stack and texts[stack[-1]] != closing[t]:
                j = stack.pop()
                pair[j] = i
            if stack:
                j = stack.pop()
                pair[j] = i
                pair[i] = j
    for j in stack:
        pair[j] = n - 1
    return [p if p >= 0 else i for i, p in enumerate(pair)]


class _Walker:
    """Recursive descent over the token stream (types → members → statements)."""

    def __init__(self, text: str) -> None:
        kinds, texts, lines = tokenize(text)
        self.k, self.t, self.ln = kinds, texts, lines
        self.low = [s.lower() if kd == ID else s for kd, s in zip(kinds, texts)]
        n = self.n = len(texts)
        self.pair = _pairs(kinds, texts)
        self.loop = [0] * n
        self.loop_line = [0] * n
        self.nest = [0] * n
        self.method_of = [-1] * n
        self.type_of = [-1] * n
        self.stmt_start = [False] * n
        self.types: list[TypeDecl] = []
        self.methods: list[Method] = []
        self.catches: list[Catch] = []
        self.locals: dict[int, dict[str, str]] = defaultdict(dict)
        self.cur_method = -1

    # -- helpers -------------------------------------------------------------------------
    def op(self, i: int, s: str) -> bool:
        return 0 <= i < self.n and self.k[i] == OP and self.t[i] == s

    def line(self, i: int) -> int:
        return self.ln[min(i, self.n - 1)] if self.n else 1

    def end_line(self, i: int) -> int:
        if not self.n:
            return 1
        i = min(i, self.n - 1)
        return self.ln[i] + (self.t[i].count("\n") if self.k[i] == SOQL else 0)

    def mark(self, lo: int, hi: int, ctx: tuple[int, int, int]) -> None:
        loop, loop_line, nest = ctx
        for i in range(max(lo, 0), min(hi, self.n)):
            self.loop[i] = loop
            self.loop_line[i] = loop_line
            self.nest[i] = nest
            self.method_of[i] = self.cur_method
        if self.cur_method >= 0 and hi > lo:
            m = self.methods[self.cur_method]
            if nest > m.max_nest:
                m.max_nest = nest
                m.max_nest_line = self.line(lo)

    def annotations(self, lo: int, hi: int) -> tuple[dict[str, list[str]], int]:
        """Annotations at the start of ``[lo, hi)``: name → lowered argument tokens."""
        ann: dict[str, list[str]] = {}
        i = lo
        while i + 1 < hi and self.op(i, "@") and self.k[i + 1] == ID:
            name = self.low[i + 1]
            args: list[str] = []
            i += 2
            if self.op(i, "("):
                close = self.pair[i]
                args = [self.t[j].lower() for j in range(i + 1, close)]
                i = close + 1
            ann[name] = args
        return ann, i

    @staticmethod
    def suppressions(ann: dict[str, list[str]]) -> frozenset[str]:
        args = ann.get("suppresswarnings")
        if args is None:
            return frozenset()
        names: set[str] = set()
        for a in args:
            for part in a.split(","):
                part = part.strip()
                if part:
                    names.add(part)
        return frozenset(names)

    # -- declarations ----------------------------------------------------------------------
    def parse_file(self) -> None:
        self.members(0, self.n, -1)

    def members(self, lo: int, hi: int, owner: int) -> None:
        i = lo
        while i < hi:
            j = i
            has_eq = False
            while j < hi:
                if self.k[j] == OP:
                    s = self.t[j]
                    if s in ("(", "["):
                        j = self.pair[j] + 1
                        continue
                    if s == "=":
                        has_eq = True
                    elif s == ";":
                        break
                    elif s == "{":
                        if has_eq:
                            j = self.pair[j] + 1
                            continue
                        break
                    elif s == "}":
                        break
                j += 1
            if j >= hi:
                break
            if self.op(j, ";"):
                self.field_member(i, j, owner)
                i = j + 1
                continue
            if self.op(j, "}"):  # stray closer
                i = j + 1
                continue
            close = self.pair[j]
            ann, k = self.annotations(i, j)
            header = [x for x in range(k, j) if self.k[x] == ID]
            kw = next((x for x in header if self.low[x] in _TYPE_KW), None)
            if self.low[i] == "trigger" or (header and self.low[header[0]] == "trigger"):
                self.trigger_decl(i, j, close, ann)
            elif kw is not None and kw + 1 < j:
                self.type_decl(i, k, j, close, kw, ann, owner)
            elif j > i and self.op(j - 1, ")"):
                self.method_decl(i, k, j, close, ann, owner)
            else:  # property accessors or a static initializer
                self.block_member(i, k, j, close, ann, owner)
            i = close + 1

    def field_member(self, lo: int, semi: int, owner: int) -> None:
        if owner < 0:
            return
        _, k = self.annotations(lo, semi)
        # "<mods> Type name [= init] [, name2 = init2]" — first declarator is enough here
        eq = next((x for x in range(k, semi) if self.op(x, "=")), None)
        end = eq if eq is not None else semi
        if end - 1 >= k and self.k[end - 1] == ID:
            name = self.low[end - 1]
            typ = self.low[end - 2] if end - 2 >= k and self.k[end - 2] == ID else ""
            init = (eq + 1, semi) if eq is not None else None
            self.types[owner].fields[name] = (typ, init)

    def type_decl(
        self, lo: int, k: int, brace: int, close: int, kw: int, ann: dict, owner: int
    ) -> None:
        header = [x for x in range(k, brace) if self.k[x] == ID]
        lows = [self.low[x] for x in header]
        sharing = None
        for a, b in zip(lows, lows[1:]):
            if b == "sharing" and a in _SHARING:
                sharing = a
        supers: list[str] = []
        collecting = False
        x = kw + 2
        while x < brace:
            if self.k[x] == ID:
                w = self.low[x]
                if w in ("extends", "implements"):
                    collecting = True
                elif collecting and not self.op(x - 1, "."):
                    name = w
                    y = x
                    while self.op(y + 1, ".") and y + 2 < brace and self.k[y + 2] == ID:
                        name += "." + self.low[y + 2]
                        y += 2
                    supers.append(name)
                    x = y
            elif self.op(x, "<"):  # skip generic arguments
                depth = 0
                while x < brace:
                    if self.op(x, "<"):
                        depth += 1
                    elif self.op(x, ">"):
                        depth -= 1
                        if depth == 0:
                            break
                    x += 1
            x += 1
        decl = TypeDecl(
            name=self.t[kw + 1],
            kind=self.low[kw],
            line=self.line(lo),
            end_line=self.end_line(close),
            body_start=brace,
            body_end=close,
            outer=owner,
            sharing=sharing,
            annotations=ann,
            suppress=self.suppressions(ann),
            modifiers=frozenset(w for w in lows[: lows.index(self.low[kw])]),
            supertypes=tuple(supers),
        )
        self.types.append(decl)
        idx = len(self.types) - 1
        for x in range(lo, close + 1):
            self.type_of[x] = idx
        if decl.kind != "enum":
            self.members(brace + 1, close, idx)

    def trigger_decl(self, lo: int, brace: int, close: int, ann: dict) -> None:
        name_at = next((x for x in range(lo, brace) if self.low[x] == "trigger"), lo) + 1
        decl = TypeDecl(
            name=self.t[name_at] if name_at < brace else "trigger",
            kind="trigger",
            line=self.line(lo),
            end_line=self.end_line(close),
            body_start=brace,
            body_end=close,
            outer=-1,
            annotations=ann,
        )
        self.types.append(decl)
        idx = len(self.types) - 1
        for x in range(lo, close + 1):
            self.type_of[x] = idx
        self.start_method("<trigger>", idx, lo, brace, close, {}, frozenset(), {})
        self.block(brace + 1, close, (0, 0, 0))
        self.cur_method = -1

    def start_method(
        self,
        name: str,
        owner: int,
        lo: int,
        brace: int,
        close: int,
        ann: dict,
        mods: frozenset[str],
        params: dict[str, str],
    ) -> None:
        self.methods.append(
            Method(
                name=name,
                type_index=owner,
                line=self.line(lo),
                end_line=self.end_line(close),
                body_start=brace,
                body_end=close,
                annotations=ann,
                suppress=self.suppressions(ann),
                modifiers=mods,
                params=params,
            )
        )
        self.cur_method = len(self.methods) - 1
        for x in range(lo, close + 1):
            self.method_of[x] = self.cur_method

    def method_decl(
        self, lo: int, k: int, brace: int, close: int, ann: dict, owner: int
    ) -> None:
        open_ = self.pair[brace - 1]
        name = self.t[open_ - 1] if open_ - 1 >= k and self.k[open_ - 1] == ID else "<anonymous>"
        mods = frozenset(self.low[x] for x in range(k, open_) if self.k[x] == ID)
        params: dict[str, str] = {}
        start = open_ + 1
        depth = 0
        for x in range(open_ + 1, brace):
            s = self.t[x] if self.k[x] == OP else ""
            if s == "<":
                depth += 1
            elif s == ">":
                depth -= 1
            if (s == "," and depth == 0) or x == brace - 1:
                end = x
                if end - 1 >= start and self.k[end - 1] == ID:
                    pname = self.low[end - 1]
                    prev = end - 2
                    typ = self.low[prev] if prev >= start and self.k[prev] == ID else "collection"
                    params[pname] = typ
                start = x + 1
        self.start_method(name, owner, lo, brace, close, ann, mods, params)
        self.block(brace + 1, close, (0, 0, 0))
        self.cur_method = -1

    def block_member(
        self, lo: int, k: int, brace: int, close: int, ann: dict, owner: int
    ) -> None:
        ids = [self.low[x] for x in range(k, brace) if self.k[x] == ID]
        name = "<static>" if ids in (["static"], []) else ids[-1]
        self.start_method(name, owner, lo, brace, close, ann, frozenset(ids), {})
        if ids in (["static"], []):
            self.block(brace + 1, close, (0, 0, 0))
        else:  # property: get { … } set { … }
            x = brace + 1
            while x < close:
                if self.op(x, "{"):
                    self.stmt(x, close, (0, 0, 0))
                    x = self.pair[x] + 1
                else:
                    x += 1
        self.cur_method = -1

    # -- statements ------------------------------------------------------------------------
    def block(self, lo: int, hi: int, ctx: tuple[int, int, int]) -> None:
        i = lo
        while i < hi:
            nxt = self.stmt(i, hi, ctx)
            i = nxt if nxt > i else i + 1

    def count(self, i: int) -> None:
        self.stmt_start[i] = True
        if self.cur_method >= 0:
            self.methods[self.cur_method].statements += 1

    def stmt(self, i: int, hi: int, ctx: tuple[int, int, int]) -> int:
        if i >= hi:
            return hi
        if self.op(i, "{"):
            close = self.pair[i]
            self.mark(i, i + 1, ctx)
            self.mark(close, close + 1, ctx)
            self.block(i + 1, close, ctx)
            return close + 1
        if self.op(i, ";"):
            self.mark(i, i + 1, ctx)
            return i + 1
        loop, loop_line, nest = ctx
        inner = (loop, loop_line, nest + 1)
        looped = (loop + 1, self.line(i), nest + 1)
        w = self.low[i] if self.k[i] == ID else ""
        if w in _NEST_KW:
            self.count(i)
        if w == "if" and self.op(i + 1, "("):
            p = self.pair[i + 1]
            self.mark(i, p + 1, ctx)
            k = self.stmt(p + 1, hi, inner)
            if k < hi and self.k[k] == ID and self.low[k] == "else":
                self.mark(k, k + 1, ctx)
                if k + 1 < hi and self.k[k + 1] == ID and self.low[k + 1] == "if":
                    return self.stmt(k + 1, hi, ctx)
                return self.stmt(k + 1, hi, inner)
            return k
        if w == "for" and self.op(i + 1, "("):
            p = self.pair[i + 1]
            semi = None
            x = i + 2
            while x < p:
                if self.k[x] == OP and self.t[x] in ("(", "[", "{"):
                    x = self.pair[x] + 1
                    continue
                if self.op(x, ";"):
                    semi = x
                    break
                x += 1
            if semi is None:  # for (T v : expr) — the expression runs once
                self.mark(i, p + 1, ctx)
            else:  # for (init; cond; step) — cond and step run every iteration
                self.mark(i, semi + 1, ctx)
                self.mark(semi + 1, p + 1, looped)
            return self.stmt(p + 1, hi, looped)
        if w == "while" and self.op(i + 1, "("):
            p = self.pair[i + 1]
            self.mark(i, i + 1, ctx)
            self.mark(i + 1, p + 1, looped)
            return self.stmt(p + 1, hi, looped)
        if w == "do":
            self.mark(i, i + 1, ctx)
            k = self.stmt(i + 1, hi, looped)
            if k < hi and self.low[k] == "while" and self.op(k + 1, "("):
                p = self.pair[k + 1]
                self.mark(k, p + 1, looped)
                k = p + 1
                if self.op(k, ";"):
                    self.mark(k, k + 1, ctx)
                    k += 1
            return k
        if w == "try":
            self.mark(i, i + 1, ctx)
            k = self.stmt(i + 1, hi, inner)
            while k < hi and self.k[k] == ID and self.low[k] in ("catch", "finally"):
                if self.low[k] == "catch" and self.op(k + 1, "("):
                    p = self.pair[k + 1]
                    self.mark(k, p + 1, ctx)
                    ids = [x for x in range(k + 2, p) if self.k[x] == ID]
                    if self.op(p + 1, "{"):
                        self.catches.append(
                            Catch(
                                type=".".join(self.low[x] for x in ids[:-1]) or "exception",
                                var=self.low[ids[-1]] if ids else "",
                                line=self.line(k),
                                body_start=p + 1,
                                body_end=self.pair[p + 1],
                                method=self.cur_method,
                            )
                        )
                    k = self.stmt(p + 1, hi, inner)
                else:
                    self.mark(k, k + 1, ctx)
                    k = self.stmt(k + 1, hi, inner)
            return k
        if w == "switch" and i + 1 < hi and self.low[i + 1] == "on":
            x = i + 2
            while x < hi and not self.op(x, "{"):
                x = self.pair[x] + 1 if self.k[x] == OP and self.t[x] in ("(", "[") else x + 1
            if x >= hi:
                return hi
            close = self.pair[x]
            self.mark(i, x + 1, ctx)
            self.mark(close, close + 1, ctx)
            y = x + 1
            while y < close:
                if self.op(y, "{"):
                    self.stmt(y, close, inner)
                    y = self.pair[y] + 1
                else:
                    self.mark(y, y + 1, inner)
                    y += 1
            return close + 1
        # simple statement up to ";" (nested brackets skipped: initialisers, anonymous lists …)
        self.count(i)
        j = i
        while j < hi:
            if self.k[j] == OP:
                s = self.t[j]
                if s in ("(", "[", "{"):
                    j = self.pair[j] + 1
                    continue
                if s == ";":
                    j += 1
                    break
                if s == "}":
                    break
            j += 1
        self.mark(i, j, ctx)
        self.record_locals(i, j)
        return j

    def record_locals(self, lo: int, hi: int) -> None:
        """``Type name = …`` / ``Type name;`` declarations of the current method."""
        if self.cur_method < 0:
            return
        x = lo + 1
        while x < hi:
            if (
                self.k[x] == ID
                and self.k[x - 1] in (ID, OP)
                and (self.k[x - 1] == ID or self.t[x - 1] in (">", "]"))
                and x + 1 < self.n
                and self.k[x + 1] == OP
                and self.t[x + 1] in ("=", ";", ",", ":")
                and (x - 2 < lo or not self.op(x - 2, "."))
            ):
                prev = self.low[x - 1] if self.k[x - 1] == ID else "collection"
                if prev not in ("return", "new", "else", "throw"):
                    self.locals[self.cur_method].setdefault(self.low[x], prev)
            x += 1


@lru_cache(maxsize=4096)
def analyse(text: str) -> Analysis:
    """Tokens plus structure of one Apex class or trigger body (cached by text)."""
    w = _Walker(text)
    w.parse_file()
    return Analysis(
        kinds=w.k,
        texts=w.t,
        lows=w.low,
        lines=w.ln,
        pair=w.pair,
        loop=w.loop,
        loop_line=w.loop_line,
        nest=w.nest,
        method_of=w.method_of,
        type_of=w.type_of,
        stmt_start=w.stmt_start,
        types=w.types,
        methods=w.methods,
        catches=w.catches,
        locals=dict(w.locals),
    )


# ==============================================================================================
# Shared helpers
# ==============================================================================================
def _apex(ctx: RuleContext, tests: bool | None = None) -> Iterator[tuple[Component, Analysis]]:
    """Local (non-managed) Apex classes and triggers with a body; ``tests`` filters."""
    for comp in ctx.inventory.components:
        if comp.type not in ("ApexClass", "ApexTrigger"):
            continue
        if comp.namespace or comp.managed_state == "installed":
            continue
        body = comp.attributes.get("body")
        if not isinstance(body, str) or not body.strip():
            continue
        a = analyse(body)
        if tests is not None and _is_test(comp, a) != tests:
            continue
        yield comp, a


def _is_test(comp: Component, a: Analysis) -> bool:
    if comp.type != "ApexClass":
        return False
    if comp.attributes.get("is_test"):
        return True
    top = a.top
    return bool(top and "istest" in top.annotations)


def _evidence(comp: Component, line: int | None) -> str:
    where = comp.source or comp.key
    return f"{where}:{line}" if line else where


def _where(a: Analysis, i: int) -> str:
    m = a.method_of[i]
    if m >= 0 and a.methods[m].name == "<trigger>":
        return "the trigger body"
    if m >= 0:
        return f"{a.method_name(i)}()"
    t = a.type_of[i]
    return f"the declarations of {a.types[t].name}" if t >= 0 else "the file"


class _Ordinals:
    """``method#n`` discriminators: the n-th occurrence of a rule inside one method."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = defaultdict(int)

    def __call__(self, a: Analysis, i: int) -> str:
        name = a.method_name(i)
        self.seen[name] += 1
        return f"{name}#{self.seen[name]}"


def _make(
    rule: "_Spec",
    ctx: RuleContext,
    comp: Component | None,
    message: str,
    explanation: str,
    line: int | None = None,
    discriminator: str = "",
    severity: str | None = None,
    component: str | None = None,
    evidence: str | None = None,
    **extra: object,
) -> Finding:
    if line is not None:
        extra["line"] = line
    return Finding(
        rule_id=rule.id,
        severity=severity or rule.severity,
        org=ctx.org,
        component=component or (comp.key if comp else ""),
        message=message,
        explanation=explanation,
        evidence=evidence if evidence is not None else (_evidence(comp, line) if comp else ""),
        discriminator=discriminator,
        category=rule.category,
        extra=dict(extra),
    )


def _dyn_query_at(a: Analysis, i: int) -> bool:
    return a.is_call(i, "database", _DB_QUERY) or a.is_call(i, "search", ("query", "find"))


_DB_QUERY = frozenset(
    (
        "query",
        "querywithbinds",
        "countquery",
        "countquerywithbinds",
        "getquerylocator",
        "getquerylocatorwithbinds",
    )
)
_DB_DML = frozenset(
    (
        "insert", "insertasync", "insertimmediate", "update", "updateasync", "updateimmediate",
        "upsert", "delete", "deleteasync", "deleteimmediate", "undelete", "merge",
        "convertlead", "emptyrecyclebin",
    )
)
_DML_WORDS = frozenset(("insert", "update", "upsert", "delete", "undelete", "merge"))


def _soql_positions(a: Analysis) -> Iterator[int]:
    for i, k in enumerate(a.kinds):
        if k == SOQL or _dyn_query_at(a, i):
            yield i


def _dml_positions(a: Analysis) -> Iterator[int]:
    for i, k in enumerate(a.kinds):
        if k != ID:
            continue
        low = a.lows[i]
        if (
            low in _DML_WORDS
            and a.stmt_start[i]
            and i + 1 < len(a.kinds)
            and not (a.kinds[i + 1] == OP and a.texts[i + 1] in ("=", ".", ";", ")", ","))
        ):
            yield i
        elif a.is_call(i, "database", _DB_DML) or a.is_call(i, "eventbus", ("publish",)):
            yield i


def _has_data_access(a: Analysis) -> bool:
    return next(_soql_positions(a), None) is not None or next(_dml_positions(a), None) is not None


# ==============================================================================================
# Rules
# ==============================================================================================
@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    severity: str
    category: str
    description: str
    source: str
    pmd: tuple[str, ...] = ()


_SPECS: dict[str, _Spec] = {}
_CHECKS: dict[str, Callable[[RuleContext], Iterable[Finding]]] = {}


def _rule(
    id: str,
    title: str,
    severity: str,
    category: str,
    description: str,
    source: str,
    pmd: tuple[str, ...] = (),
) -> Callable[[Callable[[RuleContext, _Spec], Iterable[Finding]]], Callable]:
    spec = _Spec(id, title, severity, category, description, source, pmd)

    def deco(fn: Callable[[RuleContext, _Spec], Iterable[Finding]]) -> Callable:
        _SPECS[id] = spec
        _CHECKS[id] = lambda ctx: list(_suppressed_filter(ctx, spec, fn(ctx, spec)))
        return fn

    return deco


# --- loops ------------------------------------------------------------------------------------
def _in_loop_rule(
    ctx: RuleContext,
    rule: _Spec,
    positions: Callable[[Analysis], Iterable[int]],
    what: str,
    explanation: str,
) -> Iterator[Finding]:
    for comp, a in _apex(ctx, tests=False):
        ordinal = _Ordinals()
        for i in positions(a):
            if a.loop[i] <= 0:
                continue
            line = a.lines[i]
            yield _make(
                rule,
                ctx,
                comp,
                f"{what} inside a loop (loop at line {a.loop_line[i]}) in {_where(a, i)}",
                explanation,
                line,
                ordinal(a, i),
                loop_line=a.loop_line[i],
                method=a.method_name(i),
            )


@_rule(
    "APEX-SOQL-IN-LOOP",
    "SOQL query inside a loop",
    "high",
    "performance",
    "A SOQL/SOSL query (inline or Database.query/countQuery/getQueryLocator, Search.query) runs "
    "inside a for/while/do loop, including a SOQL for-loop nested in another loop. Each "
    "iteration spends one of the 100 synchronous queries of the transaction.",
    "PMD OperationWithLimitsInLoop / AvoidSoqlInLoops; Code Analyzer; OrgCheck",
    ("OperationWithLimitsInLoop", "AvoidSoqlInLoops", "AvoidSoslInLoops"),
)
def _soql_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    return _in_loop_rule(
        ctx,
        rule,
        _soql_positions,
        "SOQL query",
        "Every iteration runs one query; with 200 records per trigger chunk the transaction "
        "hits the 100-query governor limit (System.LimitException: Too many SOQL queries: 101). "
        "Collect the keys in a Set before the loop, run one query with `WHERE … IN :keys`, and "
        "read the results from a Map inside the loop.",
    )


@_rule(
    "APEX-DML-IN-LOOP",
    "DML inside a loop",
    "high",
    "performance",
    "A DML statement (insert/update/upsert/delete/undelete/merge), a Database.* DML method or "
    "EventBus.publish runs inside a loop: each iteration spends one of the 150 DML statements.",
    "PMD OperationWithLimitsInLoop / AvoidDmlStatementsInLoops; Code Analyzer; OrgCheck",
    ("OperationWithLimitsInLoop", "AvoidDmlStatementsInLoops"),
)
def _dml_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    return _in_loop_rule(
        ctx,
        rule,
        _dml_positions,
        "DML operation",
        "Each iteration issues one DML statement (limit 150 per transaction) and fires the "
        "object's triggers, flows and validation once per record. Add the records to a List "
        "inside the loop and run a single DML statement on the list after the loop.",
    )


def _callout_positions(a: Analysis) -> Iterator[int]:
    for i, k in enumerate(a.kinds):
        if k != ID:
            continue
        if a.is_call(i, "webservicecallout", ("invoke",)):
            yield i
        elif (
            a.lows[i] == "send"
            and i >= 2
            and a.texts[i - 1] == "."
            and i + 1 < len(a.texts)
            and a.texts[i + 1] == "("
        ):
            recv = i - 2
            if a.kinds[recv] == OP and a.texts[recv] == ")":
                opener = a.pair[recv]
                if opener >= 2 and a.lows[opener - 1] == "http" and a.lows[opener - 2] == "new":
                    yield i
            elif a.kinds[recv] == ID:
                m = a.method_of[i]
                decl = a.locals.get(m, {}).get(a.lows[recv]) or (
                    a.methods[m].params.get(a.lows[recv]) if m >= 0 else None
                )
                t = a.type_of[i]
                if decl is None and t >= 0:
                    decl = a.types[t].fields.get(a.lows[recv], ("",))[0]
                if decl == "http":
                    yield i


@_rule(
    "APEX-CALLOUT-IN-LOOP",
    "HTTP callout inside a loop",
    "high",
    "performance",
    "Http.send (or WebServiceCallout.invoke) is called inside a loop. A transaction may make at "
    "most 100 callouts and 120 s of cumulative callout time.",
    "PMD OperationWithLimitsInLoop; Code Analyzer",
    ("OperationWithLimitsInLoop",),
)
def _callout_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    return _in_loop_rule(
        ctx,
        rule,
        _callout_positions,
        "HTTP callout",
        "One callout per record exhausts the 100-callout and 120-second limits on large batches "
        "and makes the job as slow as the sum of all round trips. Send the records in one bulk "
        "request, or process them in a Batchable/Queueable chain sized to the callout limits.",
    )


def _future_methods(ctx: RuleContext) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for comp, a in _apex(ctx):
        for m in a.methods:
            if "future" in m.annotations and m.type_index >= 0:
                out.add((a.types[m.type_index].name.lower(), m.name.lower()))
    return out


_ASYNC_CALLS = (
    ("system", ("enqueuejob", "schedule", "schedulebatch")),
    ("database", ("executebatch",)),
)


def _async_positions_factory(ctx: RuleContext) -> Callable[[Analysis], Iterator[int]]:
    future = _future_methods(ctx)
    future_names = {m for _, m in future}

    def positions(a: Analysis) -> Iterator[int]:
        for i, k in enumerate(a.kinds):
            if k != ID:
                continue
            if any(a.is_call(i, head, names) for head, names in _ASYNC_CALLS):
                yield i
                continue
            low = a.lows[i]
            if low not in future_names or i + 1 >= len(a.texts) or a.texts[i + 1] != "(":
                continue
            if i >= 2 and a.texts[i - 1] == ".":
                if a.kinds[i - 2] == ID and (a.lows[i - 2], low) in future:
                    yield i
            elif i >= 1 and a.lows[i - 1] not in ("void", "new") and a.kinds[i - 1] != ID:
                t = a.type_of[i]
                while t >= 0 and a.types[t].outer >= 0:
                    t = a.types[t].outer
                if t >= 0 and (a.types[t].name.lower(), low) in future:
                    yield i

    return positions


@_rule(
    "APEX-ASYNC-IN-LOOP",
    "Asynchronous job started inside a loop",
    "high",
    "performance",
    "System.enqueueJob, Database.executeBatch, System.schedule/scheduleBatch or a call to an "
    "@future method of the org inside a loop. A transaction may enqueue 50 jobs and call 50 "
    "future methods; batch and scheduled jobs are limited org-wide.",
    "PMD OperationWithLimitsInLoop; Code Analyzer",
    ("OperationWithLimitsInLoop",),
)
def _async_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    return _in_loop_rule(
        ctx,
        rule,
        _async_positions_factory(ctx),
        "Asynchronous job (future/queueable/batch/schedule)",
        "Starting one job per record hits the limits of 50 queueable jobs / 50 @future calls per "
        "transaction and floods the flex queue. Collect the record Ids and start one job that "
        "processes them all.",
    )


@_rule(
    "APEX-DESCRIBE-IN-LOOP",
    "Schema describe call inside a loop",
    "medium",
    "performance",
    "Schema.getGlobalDescribe() or Schema.describeSObjects() inside a loop: both are expensive "
    "(the global describe of a large org takes hundreds of milliseconds of CPU).",
    "PMD OperationWithLimitsInLoop; Code Analyzer (EagerlyLoadedDescribeSObjectResult)",
    ("OperationWithLimitsInLoop", "EagerlyLoadedDescribeSObjectResult"),
)
def _describe_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    names = ("getglobaldescribe", "describesobjects", "describetabs")
    return _in_loop_rule(
        ctx,
        rule,
        lambda a: (i for i in range(len(a.kinds)) if a.is_call(i, "schema", names)),
        "Schema describe call",
        "The describe result does not change during the transaction: call it once before the "
        "loop (or cache it in a static variable) and reuse the Map; better, use the SObjectType "
        "token directly (Account.SObjectType.getDescribe()).",
    )


@_rule(
    "APEX-EMAIL-IN-LOOP",
    "Messaging.sendEmail inside a loop",
    "medium",
    "performance",
    "Messaging.sendEmail inside a loop: a transaction may call sendEmail only 10 times.",
    "PMD OperationWithLimitsInLoop",
    ("OperationWithLimitsInLoop",),
)
def _email_in_loop(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    return _in_loop_rule(
        ctx,
        rule,
        lambda a: (
            i for i in range(len(a.kinds)) if a.is_call(i, "messaging", ("sendemail",))
        ),
        "Messaging.sendEmail",
        "The 11th call in one transaction throws a LimitException. Build the list of "
        "SingleEmailMessage objects in the loop and send them with one sendEmail call.",
    )


# --- hard-coded literals ------------------------------------------------------------------------
_ID_RE = re.compile(r"^[a-zA-Z0-9]{5}0[a-zA-Z0-9]{9}(?:[A-Z0-5]{3})?$")
_QUOTED_RE = re.compile(r"'((?:\\.|[^'\\])*)'")


def looks_like_record_id(s: str) -> bool:
    """15/18-character record Id: key prefix + pod (5 chars), a reserved ``0``, 9 chars of
    record number, optional 3-char checksum suffix (alphabet A–Z, 0–5); at least 3 digits
    and one letter, so words and numbers do not match."""
    if len(s) not in (15, 18) or not _ID_RE.match(s):
        return False
    digits = sum(c.isdigit() for c in s)
    return digits >= 3 and any(c.isalpha() for c in s)


def _string_literals(a: Analysis) -> Iterator[tuple[int, str]]:
    """Every string literal: Apex literals and the quoted values inside inline SOQL."""
    for i, k in enumerate(a.kinds):
        if k == STR:
            yield i, a.texts[i]
        elif k == SOQL:
            for m in _QUOTED_RE.finditer(a.texts[i]):
                yield i, m.group(1)


@_rule(
    "APEX-HARDCODED-ID",
    "Hard-coded record Id",
    "high",
    "maintainability",
    "A 15- or 18-character Salesforce record Id (key prefix pattern) appears in a string literal "
    "or an inline SOQL literal. Record Ids differ between production, sandboxes and scratch "
    "orgs, so the code breaks after a refresh or a deployment.",
    "PMD AvoidHardcodingId; OrgCheck (hard-coded Ids)",
    ("AvoidHardcodingId",),
)
def _hardcoded_id(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        seen: set[str] = set()
        for i, lit in _string_literals(a):
            if not looks_like_record_id(lit) or lit in seen:
                continue
            seen.add(lit)
            yield _make(
                rule,
                ctx,
                comp,
                f"Hard-coded record Id '{lit}' in {_where(a, i)}",
                "Record Ids are org-specific: this value points at nothing (or at another "
                "record) in sandboxes and other orgs. Look the record up by a stable key "
                "(DeveloperName, external Id, a Custom Metadata or Custom Setting value, "
                "Custom Label) instead.",
                a.lines[i],
                lit,
                literal=lit,
                key_prefix=lit[:3],
            )


_URL_RE = re.compile(r"^\s*(https?://[^\s'\"]+)", re.IGNORECASE)
_XML_NS_HOSTS = (
    "www.w3.org",
    "schemas.xmlsoap.org",
    "soap.sforce.com",
    "schemas.microsoft.com",
    "www.w3c.org",
    "purl.org",
    "xmlns.com",
)


@_rule(
    "APEX-HARDCODED-URL",
    "Hard-coded URL",
    "medium",
    "maintainability",
    "A string literal holds an http(s) endpoint. Test classes (mock endpoints) and XML "
    "namespace URIs are ignored. Endpoints belong in a Named Credential (`callout:Name`) or in "
    "Custom Metadata, so they can differ per org and carry their authentication.",
    "OrgCheck (hard-coded URLs); Code Analyzer (security: Named Credentials)",
    ("AvoidHardcodedURL",),
)
def _hardcoded_url(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        seen: set[str] = set()
        for i, k in enumerate(a.kinds):
            if k != STR:
                continue
            m = _URL_RE.match(a.texts[i])
            if not m:
                continue
            url = m.group(1)
            host = re.sub(r"^https?://", "", url, flags=re.IGNORECASE).split("/")[0].lower()
            if host in _XML_NS_HOSTS or url in seen:
                continue
            seen.add(url)
            yield _make(
                rule,
                ctx,
                comp,
                f"Hard-coded URL '{url}' in {_where(a, i)}",
                "The endpoint is baked into the code: sandboxes call production systems, a host "
                "change needs a deployment, and credentials end up in code or headers. Use a "
                "Named Credential (`req.setEndpoint('callout:ERP/…')`) or read the URL from "
                "Custom Metadata.",
                a.lines[i],
                url,
                url=url,
                host=host,
            )


_SOQL_NAME_FILTER_RE = re.compile(
    r"\b((?:[A-Za-z]+\.)?(?:Profile\.Name|UserRole\.(?:Name|DeveloperName)|Username)|"
    r"(?:Owner|CreatedBy|LastModifiedBy|User)\.(?:Name|Username))"
    r"\s*(?:=|!=|<>|\bLIKE\b|\bIN\b)\s*\(?\s*'([^']+)'",
    re.IGNORECASE,
)
_SOQL_FROM_NAMED_RE = re.compile(r"\bFROM\s+(Profile|User|UserRole|Group|PermissionSet)\b", re.I)
_SOQL_NAME_RE = re.compile(
    r"\b(Name|DeveloperName|Username|Email)\s*(?:=|!=|<>|\bLIKE\b|\bIN\b)\s*\(?\s*'([^']+)'",
    re.IGNORECASE,
)
_SOQL_TEXT_RE = re.compile(r"\bselect\b.+\bfrom\b", re.IGNORECASE | re.DOTALL)


@_rule(
    "APEX-HARDCODED-NAME-IN-SOQL",
    "Hard-coded Profile/User/Role name in a SOQL filter",
    "medium",
    "maintainability",
    "A SOQL WHERE clause compares Profile.Name, UserRole.Name, Username, Owner.Name … (or the "
    "Name of a Profile/User/UserRole/Group/PermissionSet query) with a literal. Names are "
    "renamed, translated and differ per org; the query silently returns nothing.",
    "OrgCheck (hard-coded names); PMD-style best practice",
    ("AvoidHardcodedNames",),
)
def _hardcoded_name(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        seen: set[str] = set()
        for i, k in enumerate(a.kinds):
            if k == SOQL:
                text = a.texts[i]
            elif k == STR and _SOQL_TEXT_RE.search(a.texts[i]):
                text = a.texts[i].replace("\\'", "'")
            else:
                continue
            hits = [(m.group(1), m.group(2)) for m in _SOQL_NAME_FILTER_RE.finditer(text)]
            if _SOQL_FROM_NAMED_RE.search(text):
                hits += [(m.group(1), m.group(2)) for m in _SOQL_NAME_RE.finditer(text)]
            for fld, value in hits:
                if value in seen:
                    continue
                seen.add(value)
                yield _make(
                    rule,
                    ctx,
                    comp,
                    f"SOQL in {_where(a, i)} filters {fld} = '{value}'",
                    "Profile, role, user and group names are labels: admins rename them, "
                    "translations change them and other orgs spell them differently. Use a "
                    "Custom Permission (FeatureManagement.checkPermission), a permission set "
                    "assignment, a DeveloperName kept in Custom Metadata, or the running user's "
                    "Id from UserInfo.",
                    a.lines[i],
                    value,
                    field=fld,
                    literal=value,
                )


# --- SOQL injection -----------------------------------------------------------------------------
_SAFE_TYPES = frozenset(
    ("integer", "long", "decimal", "double", "boolean", "date", "datetime", "time", "id")
)
_SAFE_CALLS = frozenset(
    (
        "escapesinglequotes", "size", "getname", "getlocalname", "getsobjecttype", "count",
        "today", "now", "getuserid", "getorganizationid", "getprofileid", "length",
        "getrecordtypeid", "daysbetween",
    )
)
_NUMERIC_HEADS = frozenset(("integer", "decimal", "double", "long", "date", "datetime", "math"))
_ENTRY_ANNOTATIONS = frozenset(
    (
        "auraenabled", "remoteaction", "invocablemethod", "httpget", "httppost", "httpput",
        "httppatch", "httpdelete",
    )
)


class _Taint:
    """Which operands of a query string come from input that is not escaped."""

    def __init__(self, a: Analysis, m: int) -> None:
        self.a = a
        self.m = m
        self.method = a.methods[m] if m >= 0 else None
        self.locals = a.locals.get(m, {})
        self.cache: dict[str, tuple[bool, bool]] = {}
        self.assigns = self._assignments()

    def _assignments(self) -> dict[str, list[tuple[str, int, int]]]:
        a = self.a
        out: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        if self.method is None:
            return out
        lo, hi = self.method.body_start + 1, self.method.body_end
        for i in range(lo, hi):
            if a.kinds[i] != ID or i + 1 >= hi:
                continue
            if a.kinds[i + 1] != OP or a.texts[i + 1] not in ("=", "+="):
                continue
            if a.texts[i - 1] == "." and a.lows[i - 2] != "this":
                continue
            end = i + 2
            while end < hi:
                if a.kinds[end] == OP and a.texts[end] in ("(", "[", "{"):
                    end = a.pair[end] + 1
                    continue
                if a.kinds[end] == OP and a.texts[end] in (";", ","):
                    break
                end += 1
            out[a.lows[i]].append((a.texts[i + 1], i + 2, end))
        return out

    def operands(self, lo: int, hi: int) -> list[tuple[int, int]]:
        a = self.a
        parts: list[tuple[int, int]] = []
        start = lo
        i = lo
        while i < hi:
            if a.kinds[i] == OP and a.texts[i] in ("(", "[", "{"):
                i = a.pair[i] + 1
                continue
            if a.kinds[i] == OP and a.texts[i] == "+":
                parts.append((start, i))
                start = i + 1
            i += 1
        parts.append((start, hi))
        return [(s, e) for s, e in parts if e > s]

    def var(self, name: str) -> tuple[bool, bool]:
        """(tainted, injectable) of a variable of the method or class."""
        if name in self.cache:
            return self.cache[name]
        self.cache[name] = (False, False)  # cycle guard
        a = self.a
        result = (True, False)
        typ = self.locals.get(name) or (self.method.params.get(name) if self.method else None)
        t = a.type_of[self.method.body_start] if self.method else -1
        fld = None
        while t >= 0 and fld is None:
            fld = a.types[t].fields.get(name)
            t = a.types[t].outer
        if typ is None and fld is not None:
            typ = fld[0]
        if typ in _SAFE_TYPES:
            result = (False, False)
        elif name in self.assigns:
            tainted = injectable = False
            for op, lo, hi in self.assigns[name]:
                et, ei = self.expr(lo, hi)
                tainted |= et
                injectable |= ei or (op == "+=" and et)
            if self.method and name in self.method.params:
                tainted = True
            result = (tainted, injectable)
        elif self.method and name in self.method.params:
            result = (True, False)
        elif fld is not None and fld[1] is not None:
            result = self.expr(*fld[1])
        self.cache[name] = result
        return result

    def operand(self, lo: int, hi: int) -> tuple[bool, bool, str]:
        """(tainted, injectable, label) of one operand of a concatenation."""
        a = self.a
        # strip casts and enclosing parentheses
        while lo < hi and a.kinds[lo] == OP and a.texts[lo] == "(":
            close = a.pair[lo]
            if close == hi - 1:
                t, inj = self.expr(lo + 1, close)
                return t, inj, _label(a, lo, hi)
            inner = range(lo + 1, close)
            if all(a.kinds[x] == ID or a.texts[x] in (".", "<", ">", ",") for x in inner):
                lo = close + 1  # a cast
                continue
            break
        if lo >= hi:
            return False, False, ""
        label = _label(a, lo, hi)
        if hi - lo == 1:
            k, low, text = a.kinds[lo], a.lows[lo], a.texts[lo]
            if k in (STR, NUM, SOQL) or low in ("true", "false", "null"):
                return False, False, label
            if k == ID:
                if re.fullmatch(r"[A-Z][A-Z0-9_]*", text) and len(text) > 1:
                    return False, False, label  # a constant
                t, inj = self.var(low)
                return t, inj, label
            return False, False, label
        # calls and chains
        lows = a.lows
        ids = [x for x in range(lo, hi) if a.kinds[x] == ID]
        if not ids:
            return False, False, label
        if lows[ids[0]] == "string" and len(ids) > 1 and lows[ids[1]] in ("join", "valueof"):
            paren = ids[1] + 1
            if paren < hi and a.texts[paren] == "(":
                return (*self.args_taint(paren), label)
        call_names = [
            lows[x] for x in ids if x + 1 < hi and a.texts[x + 1] == "(" and x > lo
        ]
        if call_names and call_names[-1] in _SAFE_CALLS:
            return False, False, label
        if lows[ids[0]] in _NUMERIC_HEADS:
            return False, False, label
        head = lows[ids[0]]
        if lows[ids[0]] in ("this",) and len(ids) > 1:
            head = lows[ids[1]]
        if a.kinds[lo] == ID and hi - lo == 3 and a.texts[lo + 1] == ".":
            # obj.field: tainted if obj is input
            t, _ = self.var(head)
            return t, False, label
        return True, False, label

    def args_taint(self, paren: int) -> tuple[bool, bool]:
        close = self.a.pair[paren]
        t, inj = self.expr(paren + 1, close)
        return t, inj

    def expr(self, lo: int, hi: int) -> tuple[bool, bool]:
        ops = self.operands(lo, hi)
        tainted = injectable = False
        for s, e in ops:
            t, inj, _ = self.operand(s, e)
            tainted |= t
            injectable |= inj or (t and len(ops) > 1)
        return tainted, injectable

    def culprits(self, lo: int, hi: int, seen: frozenset[str] = frozenset()) -> list[str]:
        """Labels of the operands that make the expression injectable; a local variable
        that is itself built by concatenation is replaced by its own culprits."""
        a = self.a
        ops = self.operands(lo, hi)
        out: list[str] = []
        for s, e in ops:
            t, inj, label = self.operand(s, e)
            if not (inj or (t and len(ops) > 1)):
                continue
            name = a.lows[s] if e - s == 1 and a.kinds[s] == ID else ""
            if inj and name in self.assigns and name not in seen:
                for op, alo, ahi in self.assigns[name]:
                    if op == "+=" and self.expr(alo, ahi)[0]:
                        inner = [
                            _label(a, x, y)
                            for x, y in self.operands(alo, ahi)
                            if self.operand(x, y)[0]
                        ]
                    else:
                        inner = self.culprits(alo, ahi, seen | {name})
                    out.extend(x for x in inner if x not in out)
            elif label not in out:
                out.append(label)
        return out


def _label(a: Analysis, lo: int, hi: int) -> str:
    text = "".join(
        (f"'{a.texts[x]}'" if a.kinds[x] == STR else a.texts[x]) for x in range(lo, min(hi, lo + 8))
    )
    return text if hi - lo <= 8 else text + "…"


@_rule(
    "APEX-SOQL-INJECTION",
    "SOQL injection: dynamic query built from unescaped input",
    "high",
    "security",
    "Database.query/countQuery/queryWithBinds/getQueryLocator (or Search.query) runs a string "
    "built by concatenating a variable (a parameter, a value from a request, a field of an "
    "input object) that is not passed through String.escapeSingleQuotes and is not of a safe "
    "type (Id, Integer, Decimal, Date, Boolean …), directly or through local String variables. "
    "Severity is raised to critical when the method is an external entry point (@RestResource, "
    "@AuraEnabled, @RemoteAction, @InvocableMethod, webservice).",
    "PMD ApexSOQLInjection; Code Analyzer; Salesforce secure coding guide",
    ("ApexSOQLInjection",),
)
def _soql_injection(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        ordinal = _Ordinals()
        top = a.top
        rest = bool(top and "restresource" in top.annotations)
        for i in range(len(a.kinds)):
            if not _dyn_query_at(a, i):
                continue
            paren = i + 3
            close = a.pair[paren]
            end = paren + 1
            while end < close:
                if a.kinds[end] == OP and a.texts[end] in ("(", "[", "{"):
                    end = a.pair[end] + 1
                    continue
                if a.kinds[end] == OP and a.texts[end] == ",":
                    break
                end += 1
            taint = _Taint(a, a.method_of[i])
            _, injectable = taint.expr(paren + 1, end)
            if not injectable:
                continue
            culprits = taint.culprits(paren + 1, end)
            m = a.method_of[i]
            meth = a.methods[m] if m >= 0 else None
            entry = rest or bool(
                meth
                and (
                    _ENTRY_ANNOTATIONS & set(meth.annotations)
                    or "webservice" in meth.modifiers
                )
            )
            call = f"{a.texts[i]}.{a.texts[i + 2]}"
            yield _make(
                rule,
                ctx,
                comp,
                f"{call} in {_where(a, i)} runs a query built from unescaped input "
                f"({', '.join(culprits) or 'concatenated variables'})",
                "A caller can close the quote and append any condition (`x' OR Name LIKE '%`), "
                "reading records the filter was meant to hide. Use bind variables "
                "(`WHERE Industry = :industry`, or Database.queryWithBinds with a bind map); if "
                "the string must be concatenated, wrap every input in "
                "String.escapeSingleQuotes() and whitelist field and object names against the "
                "schema.",
                a.lines[i],
                ordinal(a, i),
                severity="critical" if entry else None,
                culprits=culprits,
                entry_point=entry,
            )


# --- sharing --------------------------------------------------------------------------------------
@_rule(
    "APEX-NO-SHARING",
    "Class with data access declares no sharing keyword",
    "medium",
    "security",
    "A top-level, non-test class runs SOQL or DML but declares neither `with sharing`, "
    "`without sharing` nor `inherited sharing`. Its sharing then depends on the caller (and is "
    "`without sharing` when it is the entry point), so record-level security is not enforced "
    "on purpose.",
    "PMD ApexSharingViolations; Code Analyzer; OrgCheck",
    ("ApexSharingViolations",),
)
def _no_sharing(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        top = a.top
        if comp.type != "ApexClass" or top is None or top.kind != "class" or top.sharing:
            continue
        if not _has_data_access(a):
            continue
        yield _make(
            rule,
            ctx,
            comp,
            f"Class {top.name} runs SOQL/DML without a sharing keyword",
            "Without a keyword the class inherits the caller's sharing, and runs in system "
            "mode (all records visible) when it is called first — from a trigger, a batch, a "
            "REST call. Declare `with sharing` (the default choice), `inherited sharing` for "
            "utilities, or `without sharing` with a comment saying why.",
            top.line,
            "",
        )


@_rule(
    "APEX-WITHOUT-SHARING",
    "Class declared without sharing",
    "low",
    "security",
    "A non-test class is declared `without sharing`: it ignores record-level security for "
    "every query and DML it runs. Sometimes needed; it should be small, documented and reviewed.",
    "PMD ApexSharingViolations; OrgCheck",
    ("ApexSharingViolations",),
)
def _without_sharing(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        for t in a.types:
            if t.sharing != "without":
                continue
            yield _make(
                rule,
                ctx,
                comp,
                f"Class {t.name} is declared without sharing",
                "Every user who can call it sees and changes records regardless of sharing "
                "rules. Keep the `without sharing` part as small as possible (an inner class for "
                "the one privileged operation), document why, and use `with sharing` elsewhere.",
                t.line,
                t.name if t.outer >= 0 else "",
            )


# --- exceptions ---------------------------------------------------------------------------------
_ALLOWED_EMPTY_CATCH_VAR = re.compile(r"^(ignored|expected)$", re.IGNORECASE)


@_rule(
    "APEX-EMPTY-CATCH",
    "Empty catch block",
    "medium",
    "reliability",
    "A catch block with no statement (a comment alone does not count) swallows the exception: "
    "the error disappears and the transaction continues with partial work. Variables named "
    "`ignored` or `expected` are exempt (PMD's convention).",
    "PMD EmptyCatchBlock; Code Analyzer",
    ("EmptyCatchBlock",),
)
def _empty_catch(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        ordinal = _Ordinals()
        for c in a.catches:
            if c.body_end != c.body_start + 1 or _ALLOWED_EMPTY_CATCH_VAR.match(c.var):
                continue
            yield _make(
                rule,
                ctx,
                comp,
                f"Empty catch ({c.type}) in {_where(a, c.body_start)}",
                "Nobody will know the operation failed: callouts, DML or parsing errors vanish. "
                "Log the error (a logging framework or a platform event), rethrow a meaningful "
                "exception, or record the failure on the record being processed.",
                c.line,
                ordinal(a, c.body_start),
                exception_type=c.type,
            )


@_rule(
    "APEX-CATCH-DEBUG-ONLY",
    "Generic exception caught and only logged with System.debug",
    "medium",
    "reliability",
    "`catch (Exception e)` whose body only calls System.debug: debug logs are off in production "
    "unless someone is tracing, so the error is swallowed just like with an empty catch.",
    "PMD AvoidCatchingGenericException / EmptyCatchBlock spirit; Code Analyzer",
    ("AvoidCatchingGenericException",),
)
def _catch_debug_only(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        ordinal = _Ordinals()
        for c in a.catches:
            if c.type not in ("exception", "system.exception"):
                continue
            lo, hi = c.body_start + 1, c.body_end
            if hi <= lo:
                continue
            starts = [i for i in range(lo, hi) if a.stmt_start[i]]
            if starts and all(a.is_call(i, "system", ("debug",)) for i in starts):
                yield _make(
                    rule,
                    ctx,
                    comp,
                    f"catch (Exception) in {_where(a, c.body_start)} only calls System.debug",
                    "System.debug output exists only while a debug log is being recorded; in "
                    "production the failure is invisible. Catch the specific exception you "
                    "expect, and log it durably (logging framework, platform event) or rethrow.",
                    c.line,
                    ordinal(a, c.body_start),
                )


# --- tests -----------------------------------------------------------------------------------------
def _has_assert(a: Analysis, lo: int, hi: int, helpers: frozenset[str] = frozenset()) -> bool:
    for i in range(lo, hi):
        if a.kinds[i] != ID:
            continue
        low = a.lows[i]
        nxt = a.texts[i + 1] if i + 1 < len(a.texts) else ""
        if low == "system" and nxt == "." and i + 2 < hi and a.lows[i + 2].startswith("assert"):
            return True
        if low == "assert" and nxt == "." and (i == 0 or a.texts[i - 1] != "."):
            return True
        if nxt == "(" and (low.startswith("assert") or low in helpers):
            return True
        if low == "expectedexception" and i > 0 and a.texts[i - 1] == "@":
            return True
    return False


@_rule(
    "APEX-TEST-NO-ASSERT",
    "Test method without assertions",
    "medium",
    "testing",
    "An @IsTest (or testMethod) method contains no System.assert*/Assert.* call (nor a call to "
    "a helper of the class that asserts): it only produces coverage and cannot fail on wrong "
    "results.",
    "PMD ApexUnitTestClassShouldHaveAsserts; Code Analyzer",
    ("ApexUnitTestClassShouldHaveAsserts",),
)
def _test_no_assert(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=True):
        helpers = frozenset(
            m.name.lower()
            for m in a.methods
            if not m.is_test and _has_assert(a, m.body_start, m.body_end)
        )
        for m in a.methods:
            if not m.is_test or "testsetup" in m.annotations:
                continue
            if _has_assert(a, m.body_start, m.body_end, helpers):
                continue
            yield _make(
                rule,
                ctx,
                comp,
                f"Test method {m.name}() has no assertion",
                "A test without assertions passes whatever the code does, so regressions ship "
                "unnoticed while coverage looks fine. Assert the outcome (Assert.areEqual on "
                "the records written, the values returned, the exception thrown).",
                m.line,
                m.name,
                method=m.name,
            )


@_rule(
    "APEX-TEST-SEEALLDATA",
    "Test uses @IsTest(SeeAllData=true)",
    "medium",
    "testing",
    "A test class or method is annotated @IsTest(SeeAllData=true): it reads the org's real data, "
    "so it behaves differently in every org and fails after a sandbox refresh or in "
    "deployments to an empty org.",
    "PMD ApexUnitTestShouldNotUseSeeAllDataTrue; Code Analyzer",
    ("ApexUnitTestShouldNotUseSeeAllDataTrue",),
)
def _seealldata(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    def on(ann: dict[str, list[str]]) -> bool:
        args = ann.get("istest")
        if not args:
            return False
        return any(
            args[j] == "seealldata" and j + 2 < len(args) and args[j + 2] == "true"
            for j in range(len(args))
        )

    for comp, a in _apex(ctx):
        if comp.type != "ApexClass":
            continue
        for t in a.types:
            if on(t.annotations):
                yield _make(
                    rule,
                    ctx,
                    comp,
                    f"Test class {t.name} is annotated @IsTest(SeeAllData=true)",
                    "The test depends on records that exist only in some orgs. Create the data "
                    "it needs in @TestSetup (or a test data factory) and remove SeeAllData.",
                    t.line,
                    "class" if t.outer < 0 else t.name,
                )
        for m in a.methods:
            if on(m.annotations):
                yield _make(
                    rule,
                    ctx,
                    comp,
                    f"Test method {m.name}() is annotated @IsTest(SeeAllData=true)",
                    "The test depends on records that exist only in some orgs. Create the data "
                    "it needs in @TestSetup (or a test data factory) and remove SeeAllData.",
                    m.line,
                    m.name,
                )


def _coverage_reach(ctx: RuleContext) -> set[str]:
    """Apex classes/triggers a test reaches: calls/extends/implements/references from tests,
    transitively, and triggers on the objects that reached code writes with DML."""
    g = ctx.graph
    out_edges: dict[str, list] = defaultdict(list)
    triggers_on: dict[str, list[str]] = defaultdict(list)
    for e in g.edges:
        out_edges[e.source].append(e)
        if e.kind == TRIGGER_ON and e.source.startswith("ApexTrigger:"):
            triggers_on[e.target].append(e.source)
    tests = [
        k
        for k, n in g.nodes.items()
        if n.type == "ApexClass" and n.attrs.get("is_test")
    ]
    for comp, a in _apex(ctx, tests=True):
        if comp.key not in tests:
            tests.append(comp.key)
    reached: set[str] = set(tests)
    frontier = list(tests)
    follow = (CALLS, EXTENDS, IMPLEMENTS, REFERENCES, APEX_ACTION)
    while frontier:
        src = frontier.pop()
        for e in out_edges.get(src, ()):
            nxt: list[str] = []
            if e.kind in follow and e.target.startswith(("ApexClass:", "ApexTrigger:")):
                nxt = [e.target]
            elif e.kind == DML_EDGE:
                nxt = triggers_on.get(e.target, [])
            for t in nxt:
                if t not in reached:
                    reached.add(t)
                    frontier.append(t)
    return reached


@_rule(
    "APEX-NO-TEST-COVERAGE",
    "No test exercises this class or trigger",
    "medium",
    "testing",
    "Proxy for code coverage from the dependency graph: no test class reaches the class (by "
    "calls, extends, implements or references, transitively), and for triggers no reached code "
    "writes the trigger's object with DML. Interfaces and enums are ignored. A real coverage "
    "run (ApexCodeCoverageAggregate) is authoritative.",
    "OrgCheck (classes without tests); Salesforce 75% coverage rule",
    (),
)
def _no_test_coverage(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    reached = _coverage_reach(ctx)
    for comp, a in _apex(ctx, tests=False):
        top = a.top
        if top is None or top.kind in ("interface", "enum") or comp.key in reached:
            continue
        what = "trigger" if comp.type == "ApexTrigger" else "class"
        yield _make(
            rule,
            ctx,
            comp,
            f"No test reaches {what} {comp.full_name}",
            "Untested code blocks deployments once org coverage drops under 75% (and every "
            "trigger needs some coverage), and its behaviour is unprotected against change. Add "
            "a test class that exercises it with asserts on the outcome"
            + (" (insert/update records of the trigger's object)." if what == "trigger" else "."),
            top.line,
            "",
        )


# --- triggers ----------------------------------------------------------------------------------------
@_rule(
    "APEX-TRIGGER-LOGIC",
    "Logic in the trigger body",
    "medium",
    "maintainability",
    f"A trigger body runs SOQL or DML directly, or has more than {TRIGGER_MAX_STATEMENTS} "
    "statements. Triggers should delegate to a handler class (one trigger per object, logic "
    "in testable, reusable classes).",
    "PMD AvoidLogicInTrigger; Code Analyzer; OrgCheck",
    ("AvoidLogicInTrigger",),
)
def _trigger_logic(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        if comp.type != "ApexTrigger":
            continue
        body = next((m for m in a.methods if m.name == "<trigger>"), None)
        if body is None:
            continue
        soql = [i for i in _soql_positions(a)]
        dml = [i for i in _dml_positions(a)]
        if not soql and not dml and body.statements <= TRIGGER_MAX_STATEMENTS:
            continue
        parts = [f"{body.statements} statements"]
        if soql:
            parts.append(f"{len(soql)} quer{'y' if len(soql) == 1 else 'ies'}")
        if dml:
            parts.append(f"{len(dml)} DML operation{'s' if len(dml) > 1 else ''}")
        first = min(soql + dml) if soql or dml else body.body_start
        yield _make(
            rule,
            ctx,
            comp,
            f"Trigger {comp.full_name} holds logic in its body ({', '.join(parts)})",
            "Logic in a trigger cannot be reused or unit-tested on its own, its order against "
            "other triggers on the object is undefined, and it cannot be bypassed. Move it to a "
            "handler class (e.g. `new OpportunityTriggerHandler().run();`) and keep the trigger "
            "a one-line dispatcher.",
            a.lines[first],
            "",
            statements=body.statements,
            queries=len(soql),
            dml=len(dml),
        )


@_rule(
    "APEX-MULTIPLE-TRIGGERS",
    "Several Apex triggers on one object",
    "medium",
    "maintainability",
    "More than one active Apex trigger is defined on the same object (from the graph's "
    "trigger_on edges). Salesforce does not guarantee their order of execution.",
    "PMD/Code Analyzer best practice (one trigger per object); OrgCheck",
    (),
)
def _multiple_triggers(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    by_obj: dict[str, list] = defaultdict(list)
    for e in ctx.graph.edges:
        if e.kind != TRIGGER_ON or not e.source.startswith("ApexTrigger:"):
            continue
        node = ctx.graph.nodes.get(e.source)
        if node is not None and (
            node.attrs.get("active") is False
            or str(node.attrs.get("status", "")).lower() in ("inactive", "deleted")
        ):
            continue
        if all(x.source != e.source for x in by_obj[e.target]):
            by_obj[e.target].append(e)
    for obj, edges in sorted(by_obj.items()):
        if len(edges) < 2:
            continue
        edges = sorted(edges, key=lambda x: x.source)
        names = [x.source.split(":", 1)[1] for x in edges]
        obj_name = obj.split(":", 1)[1]
        yield Finding(
            rule_id=rule.id,
            severity=rule.severity,
            org=ctx.org,
            component=obj,
            message=f"{len(edges)} Apex triggers on {obj_name}: {', '.join(names)}",
            explanation="The execution order of several triggers on one object is not "
            "guaranteed, so they can overwrite each other's changes and double the queries and "
            "DML per save. Merge them into one trigger that dispatches to a handler class.",
            evidence=edges[0].evidence,
            discriminator="",
            category=rule.category,
            extra={"triggers": [x.source for x in edges]},
        )


# --- API versions --------------------------------------------------------------------------------------
def api_release(version: float) -> tuple[date, str]:
    """Approximate GA date and release name of an API version (v62.0 = Winter '25, Sept 2024)."""
    idx = int(round(version)) - 62
    k, r = divmod(idx, 3)
    if r == 0:
        d, name = date(2024 + k, 9, 1), f"Winter '{(25 + k) % 100:02d}"
    elif r == 1:
        d, name = date(2025 + k, 2, 1), f"Spring '{(25 + k) % 100:02d}"
    else:
        d, name = date(2025 + k, 6, 1), f"Summer '{(25 + k) % 100:02d}"
    return d, name


def _version(s: str | None) -> float | None:
    try:
        return float(s) if s else None
    except ValueError:
        return None


@_rule(
    "APEX-OLD-API-VERSION",
    f"API version {OLD_API_YEARS}+ years old",
    "medium",
    "maintainability",
    "The class or trigger is saved with an API version released three or more years before the "
    "reference date (three releases a year; v62.0 = Winter '25, Sept 2024). Old versions keep "
    "old platform behaviour, miss newer security defaults and are eventually retired "
    "(versions 30.0 and older are retired: high).",
    "OrgCheck (old API versions); Salesforce API end-of-life policy",
    (),
)
def _old_api(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    try:
        today: date | None = date.fromisoformat(str(ctx.today)[:10])
    except ValueError:
        today = None
    org_v = _version(ctx.api_version)
    for comp, a in _apex(ctx):
        v = _version(comp.api_version)
        if v is None:
            continue
        released, name = api_release(v)
        if today is not None:
            age = (today - released).days / 365.25
            old = age >= OLD_API_YEARS
        elif org_v is not None:
            age = (org_v - v) / 3
            old = org_v - v >= 3 * OLD_API_YEARS
        else:
            continue
        if not old:
            continue
        behind = f", {org_v - v:.0f} versions behind the org's {ctx.api_version}" if org_v else ""
        retired = v <= RETIRED_API_VERSION
        top = a.top
        yield _make(
            rule,
            ctx,
            comp,
            f"API version {comp.api_version} ({name}) is {age:.1f} years old{behind}",
            "Code keeps the platform behaviour of its API version: old versions miss newer "
            "defaults and fixes and Salesforce retires them (21.0–30.0 are gone). Raise the "
            "version in the -meta.xml file, run the tests, and review the release notes of the "
            "versions skipped." + (" This version is retired: calls may fail." if retired else ""),
            top.line if top else 1,
            str(comp.api_version),
            severity="high" if retired else None,
            api_version=comp.api_version,
            release=name,
            age_years=round(age, 1),
        )


# --- logging, size, nesting -----------------------------------------------------------------------------
@_rule(
    "APEX-DEBUG-STATEMENTS",
    "Many System.debug statements",
    "low",
    "performance",
    f"A non-test class or trigger has {DEBUG_STATEMENT_THRESHOLD} or more System.debug calls. "
    "Debug statements cost CPU even when no log is recorded (their arguments are evaluated) "
    "and may leak data into logs.",
    "PMD AvoidDebugStatements; Code Analyzer",
    ("AvoidDebugStatements",),
)
def _debug_statements(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx, tests=False):
        calls = [i for i in range(len(a.kinds)) if a.is_call(i, "system", ("debug",))]
        if len(calls) < DEBUG_STATEMENT_THRESHOLD:
            continue
        yield _make(
            rule,
            ctx,
            comp,
            f"{len(calls)} System.debug statements in {comp.full_name}",
            "Arguments of System.debug are built on every call (string concatenation, "
            "serialisation) and count against the CPU limit; personal data may end up in debug "
            "logs. Remove them, or route diagnostics through a logging framework with levels.",
            a.lines[calls[0]],
            "",
            count=len(calls),
        )


def _code_lines(a: Analysis, lo: int, hi: int) -> int:
    lines: set[int] = set()
    for i in range(max(lo, 0), min(hi + 1, len(a.kinds))):
        lines.add(a.lines[i])
        if a.kinds[i] == SOQL:
            lines.update(range(a.lines[i], a.lines[i] + a.texts[i].count("\n") + 1))
    return len(lines)


@_rule(
    "APEX-LONG-METHOD",
    "Very long method",
    "low",
    "maintainability",
    f"A method has more than {METHOD_MAX_LINES} lines of code (comments and blank lines not "
    "counted). Long methods mix responsibilities and are hard to test.",
    "PMD ExcessiveMethodLength / NcssMethodCount",
    ("ExcessiveMethodLength", "NcssMethodCount"),
)
def _long_method(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        for m in a.methods:
            n = _code_lines(a, m.body_start, m.body_end)
            if n <= METHOD_MAX_LINES:
                continue
            where = "the trigger body" if m.name == "<trigger>" else f"Method {m.name}()"
            yield _make(
                rule,
                ctx,
                comp,
                f"{where} has {n} lines of code",
                "Split it into smaller, named methods (one responsibility each) that can be "
                "tested and reused separately.",
                m.line,
                m.name,
                lines=n,
            )


@_rule(
    "APEX-LONG-CLASS",
    "Very long class",
    "low",
    "maintainability",
    f"A class has more than {CLASS_MAX_LINES} lines of code (comments and blank lines not "
    "counted): a sign of a 'god class' that does too much.",
    "PMD ExcessiveClassLength / NcssTypeCount",
    ("ExcessiveClassLength", "NcssTypeCount"),
)
def _long_class(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        top = a.top
        if top is None or top.kind == "trigger":
            continue
        n = _code_lines(a, 0, len(a.kinds) - 1)
        if n <= CLASS_MAX_LINES:
            continue
        yield _make(
            rule,
            ctx,
            comp,
            f"Class {top.name} has {n} lines of code",
            "Split it by responsibility (selector, service, domain, controller) so each part "
            "can be understood, tested and deployed on its own.",
            top.line,
            "",
            lines=n,
        )


@_rule(
    "APEX-DEEP-NESTING",
    "Deeply nested control flow",
    "low",
    "maintainability",
    f"A method nests if/for/while/do/try/switch more than {NESTING_MAX_DEPTH} levels deep, "
    "which makes its paths hard to follow and to test.",
    "PMD AvoidDeeplyNestedIfStmts / CognitiveComplexity",
    ("AvoidDeeplyNestedIfStmts", "CognitiveComplexity"),
)
def _deep_nesting(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    for comp, a in _apex(ctx):
        for m in a.methods:
            if m.max_nest <= NESTING_MAX_DEPTH:
                continue
            where = "the trigger body" if m.name == "<trigger>" else f"{m.name}()"
            yield _make(
                rule,
                ctx,
                comp,
                f"Control flow nested {m.max_nest} levels deep in {where}",
                "Use guard clauses (return/continue early), extract the inner blocks into "
                "methods, and replace nested conditions with maps or polymorphism.",
                m.max_nest_line,
                m.name,
                depth=m.max_nest,
            )


# --- unused classes -----------------------------------------------------------------------------------------
_ENTRY_SUPERTYPES = frozenset(
    (
        "schedulable", "system.schedulable", "messaging.inboundemailhandler",
        "inboundemailhandler", "auth.registrationhandler", "auth.authproviderpluginclass",
        "process.plugin", "site.urlrewriter", "installhandler", "uninstallhandler",
        "quickaction.quickactiondefaultshandler", "txnsecurity.eventcondition",
        "auth.conncectedappplugin", "auth.connectedappplugin", "canvas.canvaslifecyclehandler",
        "commercepayments.paymentgatewayadapter",
    )
)
_ENTRY_METHOD_ANN = _ENTRY_ANNOTATIONS | {"namespaceaccessible"}


def _is_entry_point(a: Analysis) -> bool:
    top = a.top
    if top is None:
        return False
    if "global" in top.modifiers or "restresource" in top.annotations:
        return True
    for t in a.types:
        if set(t.supertypes) & _ENTRY_SUPERTYPES:
            return True
    for m in a.methods:
        if _ENTRY_METHOD_ANN & set(m.annotations) or "webservice" in m.modifiers:
            return True
    return False


@_rule(
    "APEX-UNUSED-CLASS",
    "Apex class not used by anything but tests",
    "low",
    "maintainability",
    "No component of the org depends on the class (no incoming edge in the dependency graph "
    "other than from test classes) and it is no entry point (global, @RestResource, "
    "@AuraEnabled, @InvocableMethod, @RemoteAction, webservice, Schedulable, e-mail handler …). "
    "Dynamic uses (Type.forName with a computed name, anonymous Apex, external callers) cannot "
    "be seen: check before deleting.",
    "OrgCheck (unused Apex classes); sfdx-hardis",
    ("UnusedClass",),
)
def _unused_class(ctx: RuleContext, rule: _Spec) -> Iterable[Finding]:
    g = ctx.graph
    tests = {k for k, n in g.nodes.items() if n.attrs.get("is_test")}
    for comp, a in _apex(ctx, tests=True):
        tests.add(comp.key)
    used: set[str] = set()
    for e in g.edges:
        if e.source != e.target and e.source not in tests:
            used.add(e.target)
    for comp, a in _apex(ctx, tests=False):
        if comp.type != "ApexClass" or comp.key in used or _is_entry_point(a):
            continue
        test_users = sorted(
            {e.source for e in g.edges if e.target == comp.key and e.source in tests}
        )
        top = a.top
        yield _make(
            rule,
            ctx,
            comp,
            f"Class {comp.full_name} is not referenced by any component"
            + (f" except its tests ({', '.join(x.split(':', 1)[1] for x in test_users)})"
               if test_users else ""),
            "Dead code still costs: it counts against the org's Apex size limit, drags "
            "coverage and must be kept compiling on every change. Confirm nothing calls it "
            "dynamically (Type.forName, anonymous Apex, external API clients), then delete it "
            "together with its tests.",
            top.line if top else 1,
            "",
            test_references=test_users,
        )


# ==============================================================================================
# Suppression, registry, runner
# ==============================================================================================
#: Our rule id → PMD rule names that suppress it (``@SuppressWarnings('PMD.<name>')``).
PMD_EQUIVALENTS: dict[str, tuple[str, ...]] = {}


def _suppression_names(spec: _Spec) -> frozenset[str]:
    names = {"pmd", spec.id.lower()}
    names.update(f"pmd.{p.lower()}" for p in spec.pmd)
    return frozenset(names)


def _suppressed_filter(
    ctx: RuleContext, spec: _Spec, findings: Iterable[Finding]
) -> Iterator[Finding]:
    names = _suppression_names(spec)
    comps = {c.key: c for c in ctx.inventory.components if c.type in ("ApexClass", "ApexTrigger")}
    for f in findings:
        comp = comps.get(f.component)
        body = comp.attributes.get("body") if comp is not None else None
        if isinstance(body, str):
            a = analyse(body)
            line = f.extra.get("line")
            if _is_suppressed(a, names, line if isinstance(line, int) else None):
                continue
        yield f


def _is_suppressed(a: Analysis, names: frozenset[str], line: int | None) -> bool:
    for t in a.types:
        if t.suppress & names and (line is None or t.line <= line <= t.end_line):
            if line is not None or t.outer < 0:
                return True
    if line is None:
        return False
    for m in a.methods:
        if m.suppress & names and m.line <= line <= m.end_line:
            return True
    return False


def _build_rules() -> list[Rule]:
    rules: list[Rule] = []
    for rid, spec in _SPECS.items():
        PMD_EQUIVALENTS[rid] = spec.pmd
        rules.append(
            Rule(
                id=spec.id,
                title=spec.title,
                severity=spec.severity,
                category=spec.category,
                description=spec.description,
                check=_CHECKS[rid],
                source=spec.source,
            )
        )
    return rules


APEX_RULES: list[Rule] = _build_rules()


def run_apex_rules(ctx: RuleContext, rules: Iterable[Rule] = APEX_RULES) -> list[Finding]:
    """All findings of ``rules`` on one org, in a stable order (rule order, then source order)."""
    out: list[Finding] = []
    for rule in rules:
        out.extend(rule.check(ctx))
    return out
