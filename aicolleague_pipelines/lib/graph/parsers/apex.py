"""Apex reference extraction: what an Apex class or trigger reads, writes, queries and calls.

``parse_apex(component, schema)`` returns :class:`Reference` records (targets are canonical
keys, lines 1-based within the body) for:

- inline SOQL/SOSL (``QUERIES``, read) — see :mod:`.soql`;
- dynamic SOQL (``Database.query``/``queryWithBinds``/``countQuery``/``getQueryLocator``,
  ``Search.query``) built from literals, directly or through a ``String`` variable
  (``QUERIES``, ``dynamic=True``); ``sobj.get('F')``/``put('F', v)``,
  ``Schema.getGlobalDescribe().get('Obj')``, ``Type.forName('Cls')`` (``DYNAMIC``);
- DML statements and ``Database.insert/update/…`` (``DML``, write) on the object type of the
  expression (typed variables, parameters, loop variables, class fields, ``new X(...)``,
  ``Trigger.new``, inline SOQL);
- field reads and writes through typed sObject variables (``acc.Industry = …`` → write,
  ``acc.Owner.Email`` → read of ``OwnerId`` and ``User.Email``), ``new Account(Name = …)``;
- schema tokens (``Account.Industry``, ``Schema.SObjectType.Account.fields.Industry``,
  ``Obj__c.SObjectType``) and sObject types used as types (``REFERENCES``);
- Apex classes of the org or of another namespace (``npsp.Foo``): ``new X()``/``X.m()``
  (``CALLS``), ``extends`` (``EXTENDS``), ``implements`` (``IMPLEMENTS``), other uses
  (``REFERENCES``). System types and namespaces never yield references;
- a trigger's object (``TRIGGER_ON``).

A hand-written tokenizer: comments and string literals never yield references (string
literals only feed the dynamic-query and ``get``/``put`` patterns above).
"""

from __future__ import annotations

import re

from aicolleague_pipelines.lib.graph.model import (
    CALLS,
    DML,
    DYNAMIC,
    EXTENDS,
    IMPLEMENTS,
    QUERIES,
    READ,
    REFERENCES,
    TRIGGER_ON,
    WRITE,
    Reference,
)
from aicolleague_pipelines.lib.graph.parsers.soql import STANDARD_CHILD_RELATIONSHIPS, parse_soql
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component, component_key

__all__ = ["parse_apex", "parse_soql", "tokenize", "is_sobject_name"]

# --- tokenizer ----------------------------------------------------------------------------
ID, STR, NUM, OP, SOQL = 0, 1, 2, 3, 4

_TOKEN_RE = re.compile(
    r"""
    [ \t\r\f\v\n]*
    (?:
        (?P<lc>//[^\n]*)
      | (?P<bc>/\*.*?(?:\*/|\Z))
      | (?P<str>'(?:\\.|[^'\\\n])*'?)
      | (?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<num>[0-9][0-9A-Za-z_.]*)
      | (?P<op>\?\.|==+|!==?|<=|>=|\+=|-=|\*=|/=|&&|\|\||\+\+|--|[^\sA-Za-z0-9_])
      | (?P<end>\Z)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_QUERY_START_RE = re.compile(r"\[\s*(?:select|find)\b", re.IGNORECASE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_KIND = {"id": ID, "str": STR, "num": NUM, "op": OP}


def _unescape(lit: str) -> str:
    body = lit[1:-1] if len(lit) >= 2 and lit.endswith("'") else lit[1:]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def tokenize(text: str) -> tuple[list[int], list[str], list[int]]:
    """``(kinds, texts, lines)``; comments dropped, strings unescaped, ``[SELECT …]`` one token."""
    kinds: list[int] = []
    texts: list[str] = []
    lines: list[int] = []
    line = 1
    pos = 0
    n = len(text)
    match = _TOKEN_RE.match
    count = text.count
    query_start = _QUERY_START_RE.match
    while pos < n:
        m = match(text, pos)
        if m is None:  # pragma: no cover - the op group matches any character
            pos += 1
            continue
        kind = m.lastgroup
        start = m.start(kind)
        if start > pos:
            line += count("\n", pos, start)
        if kind == "end":
            break
        tok = m.group(kind)
        if kind == "op" and tok == "[" and query_start(text, start):
            end = _query_end(text, start)
            q = text[start:end]
            kinds.append(SOQL)
            texts.append(q)
            lines.append(line)
            line += q.count("\n")
            pos = end
            continue
        pos = m.end()
        if kind == "lc":
            continue
        if kind == "bc":
            line += tok.count("\n")
            continue
        kinds.append(_KIND[kind])  # type: ignore[index]
        texts.append(_unescape(tok) if kind == "str" else tok)
        lines.append(line)
    return kinds, texts, lines


def _query_end(text: str, pos: int) -> int:
    """Index after the ``]`` closing the inline query opened at ``text[pos]``."""
    depth = 0
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            i += 1
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


# --- vocabularies -------------------------------------------------------------------------
_CUSTOM_SUFFIXES = ("__c", "__mdt", "__e", "__x", "__b", "__kav", "__share", "__history", "__feed")
STANDARD_OBJECTS = frozenset(
    s.lower()
    for s in """
    Account Contact Lead Opportunity Case User Task Event Campaign Product2 Pricebook2
    PricebookEntry OpportunityLineItem OpportunityContactRole Asset Contract Order OrderItem Quote
    QuoteLineItem Group GroupMember Profile RecordType ContentVersion ContentDocument
    ContentDocumentLink Attachment Note EmailMessage FeedItem FeedComment AccountContactRelation
    CampaignMember Entitlement ServiceContract WorkOrder WorkOrderLineItem Individual
    AccountTeamMember OpportunityTeamMember PermissionSet PermissionSetAssignment UserRole
    Organization BusinessHours Holiday Document Folder EmailTemplate OrgWideEmailAddress
    CaseComment Solution Partner AccountShare OpportunityShare CaseShare ContactShare LeadShare
    ProcessInstance ProcessInstanceWorkitem ProcessInstanceStep AsyncApexJob CronTrigger
    CronJobDetail ApexClass ApexTrigger ApexPage StaticResource Site Network NetworkMember
    CollaborationGroup CollaborationGroupMember Topic TopicAssignment Territory2 UserTerritory2Association
    ObjectTerritory2Association LiveChatTranscript MessagingSession ServiceAppointment ServiceResource
    ServiceTerritory Location Address Shipment ProductItem Knowledge__kav LoginHistory
    AuthSession UserLogin PermissionSetLicense PackageLicense UserLicense Report Dashboard
    ListView Calendar DuplicateRule MatchingRule EntitySubscription Idea Vote
    """.split()
)
#: System namespaces / types: never references (as a chain head, a type, a qualifier).
SYSTEM_NAMES = frozenset(
    s.lower()
    for s in """
    System Database Schema Search String Integer Long Double Decimal Boolean Date Datetime Time
    Blob Id Object List Map Set Iterable Iterator SObject SObjectType SObjectField Math JSON
    JSONParser JSONGenerator JSONToken Test Limits UserInfo Trigger TriggerOperation ApexPages
    Messaging Http HttpRequest HttpResponse HttpCalloutMock Type Url Crypto EncodingUtil Pattern
    Matcher Exception DmlException QueryException NullPointerException ListException
    CalloutException JSONException TypeException StringException MathException
    SecurityException NoAccessException HandledException AuraHandledException
    Label Site Network Approval Process Flow Auth ConnectApi Cache Canvas Dom XmlStreamReader
    XmlStreamWriter Queueable Schedulable Batchable Finalizer FinalizerContext QueueableContext
    SchedulableContext BatchableContext Stateful AllowsCallouts Comparable Callable
    Savepoint SaveResult UpsertResult DeleteResult UndeleteResult MergeResult LeadConvert
    LeadConvertResult QueryLocator QueryLocatorIterator DMLOptions Error StatusCode
    DescribeSObjectResult DescribeFieldResult DisplayType PicklistEntry FieldSet FieldSetMember
    RecordTypeInfo ChildRelationship SoapType Address Location TimeZone Version Request
    Quiddity Page PageReference StandardController StandardSetController SelectOption
    Component Continuation EventBus RestContext RestRequest RestResponse Reflection Metadata
    Messaging SingleEmailMessage MassEmailMessage EmailFileAttachment InboundEmail
    InboundEnvelope InboundEmailResult InboundEmailHandler Trigger Void Enum Environment
    Formula FormulaEval QuickAction Process InvocableMethod InvocableVariable AccessLevel
    AccessType SObjectAccessDecision Security DataSource Wave Functions Assert
    Iterator CustomIterator
    """.split()
)
#: Managed-package namespaces seen often in orgs (plus what the schema shows).
KNOWN_NAMESPACES = frozenset(
    """npsp npe01 npe03 npe4 npe5 npo02 pmdm sfal caseman outfunds sbqq sbaa blng dlrs et4ae5
    finserv healthcloudga vlocity_cmt vlocity_ins vlocity_ps llc_bi pse fferpcore c2g
    mkto_si dsfs echosign_dev1 rh2 fsc omnistudio""".split()
)
_KEYWORDS = frozenset(
    """abstract after before break catch class continue do else enum extends final finally
    for global if implements instanceof interface new null on override private protected
    public return set static super switch testmethod this throw transient trigger try virtual
    void webservice when while with without inherited sharing true false insert update upsert
    delete undelete merge as""".split()
)
_CORE_TYPES = frozenset(
    """system database schema string integer long double decimal boolean date datetime time
    blob id object list map set sobject trigger test limits userinfo math json type""".split()
)
_NOT_FIELDS = frozenset(("sobjecttype", "fields", "class", "fieldsets"))
_DML_WORDS = frozenset(("insert", "update", "upsert", "delete", "undelete", "merge"))
_DB_DML = {
    "insert": "insert", "insertasync": "insert", "insertimmediate": "insert",
    "update": "update", "updateasync": "update", "updateimmediate": "update",
    "upsert": "upsert", "delete": "delete", "deleteasync": "delete", "deleteimmediate": "delete",
    "undelete": "undelete", "merge": "merge",
}
_DYNAMIC_QUERY = {
    ("database", "query"), ("database", "querywithbinds"), ("database", "countquery"),
    ("database", "countquerywithbinds"), ("database", "getquerylocator"),
    ("database", "getquerylocatorwithbinds"), ("search", "query"), ("search", "find"),
}
_ASSIGN_OPS = frozenset(("=", "+=", "-=", "*=", "/=", "++", "--", "|=", "&="))
_DECL_FOLLOW = frozenset(("=", ";", ",", ")", ":", "{"))
_COLLECTIONS = frozenset(("list", "set", "iterable", "iterator"))


def is_sobject_name(name: str, schema: Schema) -> bool:
    """Does ``name`` denote an sObject type (org object, custom suffix, well-known standard)?"""
    low = name.lower()
    if low in STANDARD_OBJECTS or schema.has_object(name):
        return True
    if not low.endswith(_CUSTOM_SUFFIXES):
        return False
    base = low[: low.rindex("__")]
    return bool(base) and base[0].isalpha() and not base.endswith("_")


# A variable's type: (sObject name or "SObject" or None, collection kind) where collection kind
# is "" (single), "list" (list/set/array) or "map" (map values); or ("String", "") for strings.
_VarType = tuple  # (str | None, str)


class _Parser:
    def __init__(self, component: Component, schema: Schema) -> None:
        self.c = component
        self.schema = schema
        body = component.attributes.get("body") or ""
        self.kinds, self.texts, self.lines = tokenize(body)
        self.lows = [t.lower() for t in self.texts]
        self.n = len(self.kinds)
        self.out: dict[tuple, Reference] = {}
        self.self_name = component.full_name.lower()
        self.own_classes: set[str] = {self.self_name}
        self.trigger_object: str | None = None
        if component.type == "ApexTrigger":
            obj = component.attributes.get("object")
            self.trigger_object = schema.object_name(obj) if obj else None
        self.namespaces = KNOWN_NAMESPACES | schema.namespaces()
        self._sobj_cache: dict[str, bool] = {}
        self._class_cache: dict[str, str | None] = {}
        self.skip: set[int] = set()  # token indexes already accounted for
        self.type_pos: set[int] = set()  # tokens in a declaration's type position
        self.decls: dict[int, tuple[str, _VarType]] = {}  # name token index → (name, type)
        self.fields_fallback: dict[str, set] = {}  # any declaration in the file
        self.str_vars: dict[str, list[list[tuple[int, str]]]] = {}

    # --- output ----------------------------------------------------------------------
    def add(
        self,
        target: str,
        kind: str,
        line: int | None,
        access: str | None = None,
        dynamic: bool = False,
        detail: str | None = None,
    ) -> None:
        key = (target, kind, access, line, dynamic)
        if key not in self.out:
            self.out[key] = Reference(target, kind, line, access, dynamic, detail)

    def add_refs(self, refs: list[Reference]) -> None:
        for r in refs:
            self.add(r.target, r.kind, r.line, r.access, r.dynamic, r.detail)

    # --- name classification -----------------------------------------------------------
    def is_sobject(self, name: str) -> bool:
        low = name.lower()
        hit = self._sobj_cache.get(low)
        if hit is None:
            hit = low not in SYSTEM_NAMES and is_sobject_name(name, self.schema)
            self._sobj_cache[low] = hit
        return hit

    def org_class(self, name: str) -> str | None:
        low = name.lower()
        if low in self._class_cache:
            return self._class_cache[low]
        found = None
        if low not in self.own_classes and low not in _CORE_TYPES:
            found = self.schema.apex_class(name)
        self._class_cache[low] = found
        return found

    # --- token helpers -----------------------------------------------------------------
    def op(self, i: int, text: str) -> bool:
        return 0 <= i < self.n and self.kinds[i] == OP and self.texts[i] == text

    def group_end(self, i: int) -> int:
        """Index of the token closing the bracket at ``i`` (``(``, ``[``, ``{``, ``<``)."""
        opener = self.texts[i]
        closer = {"(": ")", "[": "]", "{": "}", "<": ">"}[opener]
        depth = 0
        kinds, texts = self.kinds, self.texts
        for j in range(i, self.n):
            if kinds[j] == OP:
                t = texts[j]
                if t == opener:
                    depth += 1
                elif t == closer:
                    depth -= 1
                    if depth == 0:
                        return j
                elif opener == "<" and t in (";", "{", "(", ")", "="):
                    return -1
        return self.n

    def chain(self, i: int) -> list[int]:
        """Token indexes of ``a.b.c`` (``?.`` too) starting at identifier ``i``."""
        out = [i]
        kinds, texts = self.kinds, self.texts
        j = i + 1
        while j + 1 < self.n and kinds[j] == OP and texts[j] in (".", "?.") and kinds[j + 1] == ID:
            out.append(j + 1)
            j += 2
        return out

    # --- pass 1: declarations ------------------------------------------------------------
    def parse_type(self, i: int) -> tuple[int, _VarType, list[int]] | None:
        """A type starting at ``i`` → (index after it, var type, its identifier tokens)."""
        kinds, lows = self.kinds, self.lows
        if kinds[i] != ID or lows[i] in _KEYWORDS:
            return None
        ids = self.chain(i)
        j = ids[-1] + 1
        args: list[_VarType] = []
        if self.op(j, "<"):
            end = self.group_end(j)
            if end < 0 or end >= self.n:
                return None
            # split the generic arguments at top level
            k = j + 1
            depth = 0
            start = k
            while k <= end:
                t = self.texts[k] if kinds[k] == OP else None
                if t == "<":
                    depth += 1
                elif t == ">" and depth > 0:
                    depth -= 1
                elif (t == "," and depth == 0) or k == end:
                    sub = self.parse_type(start) if start < k else None
                    if sub is not None:
                        args.append(sub[1])
                        ids.extend(sub[2])
                    start = k + 1
                k += 1
            j = end + 1
        array = False
        while self.op(j, "[") and self.op(j + 1, "]"):
            array = True
            j += 2
        head = [lows[x] for x in self.chain(i)]
        name = head[-1]
        if head[0] == "schema" and len(head) == 2:
            name = head[1]
        vt: _VarType
        if name in _COLLECTIONS and args:
            vt = (args[0][0], "list")
        elif name == "map" and len(args) == 2:
            vt = (args[1][0], "map")
        elif name == "sobject":
            vt = ("SObject", "")
        elif name == "string" and len(head) == 1:
            vt = ("String", "")
        elif len(head) == 1 and self.is_sobject(self.texts[i]):
            vt = (self.schema.object_name(self.texts[i]), "")
        else:
            vt = (None, "")
        if array:
            vt = (vt[0], "list") if vt[1] == "" else vt
        return j, vt, ids

    def collect_declarations(self) -> None:
        kinds, lows, texts = self.kinds, self.lows, self.texts
        n = self.n
        i = 0
        blocks: list[bool] = []  # per open brace: is it a class body?
        class_pending = False
        paren = 0
        while i < n:
            k = kinds[i]
            if k == OP:
                t = texts[i]
                if t == "{":
                    blocks.append(class_pending)
                    class_pending = False
                elif t == "}":
                    if blocks:
                        blocks.pop()
                elif t == "(":
                    paren += 1
                elif t == ")":
                    paren = max(0, paren - 1)
            elif k == ID:
                low = lows[i]
                if low in ("class", "interface", "enum") and i + 1 < n and kinds[i + 1] == ID:
                    self.own_classes.add(lows[i + 1])
                    class_pending = True
                    i += 2
                    continue
                if (
                    i + 1 < n
                    and (kinds[i + 1] == ID or texts[i + 1] in ("<", ".", "["))
                    and low not in _KEYWORDS
                    and not (i > 0 and kinds[i - 1] == OP and texts[i - 1] in (".", "?."))
                ):
                    t = self.parse_type(i)
                    if t is not None:
                        j, vt, ids = t
                        if (
                            j + 1 < n
                            and kinds[j] == ID
                            and lows[j] not in _KEYWORDS
                            and kinds[j + 1] == OP
                            and texts[j + 1] in _DECL_FOLLOW
                        ):
                            if vt[0] == "SObject" and texts[j + 1] == "=":
                                vt = self._refine_generic(j + 2, vt)
                            self.decls[j] = (lows[j], vt)
                            if paren == 0 and blocks and blocks[-1]:  # a class field / property
                                self.fields_fallback.setdefault(lows[j], set()).add(vt)
                            self.type_pos.update(ids)
                            i = j + 1
                            continue
            i += 1

    def _refine_generic(self, j: int, vt: _VarType) -> _VarType:
        """``SObject s = new Account(...)`` / ``= (Account) x`` → Account."""
        kinds, texts = self.kinds, self.texts
        if j + 1 < self.n and kinds[j] == ID and self.lows[j] == "new" and kinds[j + 1] == ID:
            if self.is_sobject(texts[j + 1]) and self.op(j + 2, "("):
                return (self.schema.object_name(texts[j + 1]), "")
        if self.op(j, "(") and j + 2 < self.n and kinds[j + 1] == ID and self.op(j + 2, ")"):
            if self.is_sobject(texts[j + 1]):
                return (self.schema.object_name(texts[j + 1]), "")
        return vt

    # --- variable lookup ---------------------------------------------------------------
    def var_type(self, low: str, scopes: list[dict]) -> _VarType | None:
        for scope in reversed(scopes):
            if low in scope:
                return scope[low]
        found = self.fields_fallback.get(low)
        if found and len(found) == 1:
            return next(iter(found))
        if found:
            typed = {t for t in found if t[0] is not None}
            if len(typed) == 1:
                return next(iter(typed))
            return (None, "")
        return None

    # --- pass 2 -------------------------------------------------------------------------
    def run(self) -> list[Reference]:
        self.collect_declarations()
        kinds, lows, texts, lines = self.kinds, self.lows, self.texts, self.lines
        n = self.n
        scopes: list[dict] = [{}]
        pending: dict = {}
        paren = 0
        paren_stack: list[int] = []
        self.scopes = scopes
        if self.c.type == "ApexTrigger":
            self.trigger_header()
        i = 0
        while i < n:
            k = kinds[i]
            if k == OP:
                t = texts[i]
                if t == "{":
                    paren_stack.append(paren)
                    scope: dict = {}
                    if paren == 0 and pending:
                        scope.update(pending)
                        pending = {}
                    scopes.append(scope)
                    paren = 0
                elif t == "}":
                    if len(scopes) > 1:
                        scopes.pop()
                    paren = paren_stack.pop() if paren_stack else 0
                elif t == "(":
                    paren += 1
                elif t == ")":
                    paren = max(0, paren - 1)
                elif t == ";" and paren == 0:
                    pending = {}
                elif t == "@" and i + 1 < n and kinds[i + 1] == ID:  # annotation
                    i += 2
                    if self.op(i, "("):
                        i = self.group_end(i) + 1
                    continue
                i += 1
                continue
            if k == SOQL:
                self.add_refs(parse_soql(texts[i], self.schema, lines[i] - 1))
                i += 1
                continue
            if k != ID or i in self.skip:
                i += 1
                continue
            decl = self.decls.get(i)
            if decl is not None:
                name, vt = decl
                (pending if paren > 0 else scopes[-1])[name] = vt
                if vt[0] == "String" and self.op(i + 1, "="):
                    self.str_vars.setdefault(name, []).append(self.string_fragments(i + 2))
                i += 1
                continue
            if i > 0 and kinds[i - 1] == OP and texts[i - 1] in (".", "?."):
                i += 1
                continue
            low = lows[i]
            if low in _KEYWORDS and low not in ("trigger", "this", "super"):
                self.keyword(i, low)
                i += 1
                continue
            i = self.expression(i)
        return list(self.out.values())

    # --- trigger header ------------------------------------------------------------------
    def trigger_header(self) -> None:
        lows, kinds, texts = self.lows, self.kinds, self.texts
        for i in range(self.n):
            if kinds[i] == ID and lows[i] == "trigger":
                if i + 3 < self.n and lows[i + 2] == "on" and kinds[i + 3] == ID:
                    obj = self.trigger_object or self.schema.object_name(texts[i + 3])
                    self.trigger_object = obj
                    self.add(self.schema.object_key(obj), TRIGGER_ON, self.lines[i + 3], detail="trigger")
                    end = self.group_end(i + 4) if self.op(i + 4, "(") else i + 3
                    self.skip.update(range(i, end + 1))
                return
        if self.trigger_object:
            self.add(self.schema.object_key(self.trigger_object), TRIGGER_ON, 1, detail="trigger")

    # --- keywords --------------------------------------------------------------------------
    def keyword(self, i: int, low: str) -> None:
        if low in _DML_WORDS:
            self.dml_statement(i, low)
        elif low in ("extends", "implements"):
            self.inheritance(i, low)
        elif low == "new":
            self.new_expr(i)

    def inheritance(self, i: int, low: str) -> None:
        kinds, lows = self.kinds, self.lows
        kind = EXTENDS if low == "extends" else IMPLEMENTS
        j = i + 1
        while j < self.n and kinds[j] == ID and lows[j] not in ("implements", "extends"):
            ids = self.chain(j)
            self.skip.update(ids)
            target = self.class_target(ids)
            if target:
                self.add(target, kind, self.lines[j], detail=low)
            j = ids[-1] + 1
            if self.op(j, "<"):
                end = self.group_end(j)
                if end > 0:
                    self.skip.update(range(j, end + 1))
                    j = end + 1
            if self.op(j, ","):
                j += 1
                continue
            break

    def class_target(self, ids: list[int]) -> str | None:
        """Key of the Apex class a qualified name designates (org or namespaced), or None."""
        texts, lows = self.texts, self.lows
        head = lows[ids[0]]
        if head in SYSTEM_NAMES and len(ids) > 1:
            return None
        found = self.org_class(texts[ids[0]])
        if found:
            return component_key("ApexClass", found)
        if len(ids) > 1 and head in self.namespaces and head not in self.own_classes:
            return component_key("ApexClass", f"{texts[ids[0]]}__{texts[ids[1]]}")
        return None

    def new_expr(self, i: int) -> None:
        """``new Account(Name = 'x')`` → writes; ``new X()`` → CALLS (the type is handled next)."""
        j = i + 1
        if j >= self.n or self.kinds[j] != ID:
            return
        ids = self.chain(j)
        after = ids[-1] + 1
        if len(ids) == 1 and self.is_sobject(self.texts[j]) and not self.var_type(self.lows[j], self.scopes):
            obj = self.schema.object_name(self.texts[j])
            self.add(self.schema.object_key(obj), REFERENCES, self.lines[j], detail="new")
            self.skip.add(j)
            if self.op(after, "("):
                self.constructor_fields(obj, after)
            return
        target = self.class_target(ids)
        if target:
            self.add(target, CALLS, self.lines[j], detail="new")
            self.skip.update(ids)

    def constructor_fields(self, obj: str, open_i: int) -> None:
        end = self.group_end(open_i)
        kinds, texts = self.kinds, self.texts
        depth = 0
        expect_name = True
        for j in range(open_i + 1, end):
            if kinds[j] == OP:
                t = texts[j]
                if t in ("(", "[", "{"):
                    depth += 1
                elif t in (")", "]", "}"):
                    depth -= 1
                elif t == "," and depth == 0:
                    expect_name = True
                    continue
            if depth == 0 and expect_name:
                expect_name = False
                if kinds[j] == ID and self.op(j + 1, "="):
                    for key in self.schema.resolve_path(obj, texts[j]):
                        self.add(key, REFERENCES, self.lines[j], WRITE, detail="new sObject field")
                    self.skip.add(j)

    # --- DML -------------------------------------------------------------------------------
    def dml_statement(self, i: int, low: str) -> None:
        j = i + 1
        if j < self.n and self.kinds[j] == OP:
            if self.texts[j] != "(" and self.texts[j] != "[":
                return  # not a statement (e.g. an identifier misuse)
        if j + 1 < self.n and self.lows[j] == "as" and self.lows[j + 1] in ("user", "system"):
            self.skip.update((j, j + 1))
            j += 2
        obj = self.expr_type(j)
        if obj:
            self.add(self.schema.object_key(obj), DML, self.lines[i], WRITE, detail=f"DML {low}")

    def expr_type(self, j: int) -> str | None:
        """The sObject type of the record(s) an expression starting at ``j`` denotes."""
        kinds, lows, texts = self.kinds, self.lows, self.texts
        if j >= self.n:
            return None
        if kinds[j] == SOQL:
            m = re.search(r"\bfrom\s+([A-Za-z_][\w]*)", texts[j], re.IGNORECASE)
            return self.schema.object_name(m.group(1)) if m else None
        if kinds[j] == OP and texts[j] == "(":
            # a cast `(Account) x` / `(List<Account>) x` or a parenthesised expression
            t = self.parse_type(j + 1) if j + 1 < self.n else None
            if t is not None and self.op(t[0], ")"):
                if t[1][0] not in (None, "SObject", "String"):
                    return t[1][0]
                return self.expr_type(t[0] + 1)
            return self.expr_type(j + 1)
        if kinds[j] != ID:
            return None
        if lows[j] == "new":
            t = self.parse_type(j + 1) if j + 1 < self.n else None
            if t is not None and t[1][0] not in (None, "SObject", "String"):
                return t[1][0]
            return None
        ids = self.chain(j)
        heads = [lows[x] for x in ids]
        if heads[0] == "trigger" and len(heads) > 1 and heads[1] in ("new", "old", "newmap", "oldmap"):
            return self.trigger_object
        if heads[0] == "this" and len(ids) > 1:
            heads = heads[1:]
        vt = self.var_type(heads[0], self.scopes)
        if vt and vt[0] not in (None, "SObject", "String"):
            if len(heads) == 1 or heads[1] in ("values", "get", "clone", "deepclone") or vt[1] == "":
                return vt[0]
        return None

    # --- expressions ---------------------------------------------------------------------
    def expression(self, i: int) -> int:
        """Handle the identifier chain starting at ``i``; return the next index to visit."""
        kinds, lows, texts, lines = self.kinds, self.lows, self.texts, self.lines
        ids = self.chain(i)
        heads = [lows[x] for x in ids]
        last = ids[-1]
        nxt = last + 1
        call = self.op(nxt, "(")
        head = heads[0]
        # unqualified call of a local method: nothing
        if len(ids) == 1 and call:
            return nxt
        if head == "this" and len(ids) > 1:
            ids, heads = ids[1:], heads[1:]
            head = heads[0]
            if len(ids) == 1 and call:
                return nxt
        # trigger context variables
        if head == "trigger" and len(heads) > 1:
            if heads[1] in ("new", "old", "newmap", "oldmap") and self.trigger_object:
                kind = "map" if heads[1].endswith("map") else "list"
                self.record_access((self.trigger_object, kind), ids, 1)
            return nxt
        in_type_pos = i in self.type_pos
        vt = None if in_type_pos else self.var_type(head, self.scopes)
        if vt is not None:
            if vt[0] is not None and vt[0] != "String":
                self.record_access(vt, ids, 0)
            elif vt[0] == "String" and len(ids) == 1 and self.op(nxt, "+="):
                self.str_vars.setdefault(head, [[]])
                if not self.str_vars[head]:
                    self.str_vars[head].append([])
                self.str_vars[head][-1].extend(self.string_fragments(nxt + 1))
            elif vt[0] == "String" and len(ids) == 1 and self.op(nxt, "="):
                self.str_vars.setdefault(head, []).append(self.string_fragments(nxt + 1))
            return ids[-1] + 1
        if head in SYSTEM_NAMES and not self.org_class(texts[i]):
            self.system_chain(ids, heads)
            return ids[-1] + 1
        if self.is_sobject(texts[i]):
            self.schema_token(ids, 0)
            return ids[-1] + 1
        target = self.class_target(ids)
        if target:
            prev_new = i > 0 and kinds[i - 1] == ID and lows[i - 1] == "new"
            kind = CALLS if (prev_new or (len(ids) > 1 and call)) else REFERENCES
            if kind == REFERENCES and len(ids) > 2 and call and heads[0] in self.namespaces:
                kind = CALLS
            self.add(target, kind, lines[i], detail="static call" if kind == CALLS else "type")
            return ids[-1] + 1
        return ids[-1] + 1

    def system_chain(self, ids: list[int], heads: list[str]) -> None:
        lines, texts = self.lines, self.texts
        n = len(heads)
        last = ids[-1]
        call = self.op(last + 1, "(")
        if n >= 2 and (heads[0], heads[1]) in _DYNAMIC_QUERY and n == 2 and call:
            self.dynamic_query(last + 1, lines[ids[0]])
            return
        if n == 2 and heads[0] == "database" and heads[1] in _DB_DML and call:
            obj = self.expr_type(last + 2)
            if obj:
                self.add(self.schema.object_key(obj), DML, lines[ids[0]], WRITE, detail=f"DML Database.{heads[1]}")
            return
        if n == 2 and heads[0] == "type" and heads[1] == "forname" and call:
            lits = self.call_literals(last + 1)
            if lits:
                name = lits[-1][1]
                found = self.schema.apex_class(name)
                if found and name.lower() not in self.own_classes:
                    self.add(component_key("ApexClass", found), DYNAMIC, lits[-1][0], dynamic=True, detail="Type.forName")
            return
        if heads[0] == "schema" and n >= 2:
            if heads[1] == "getglobaldescribe" and call:
                self.global_describe(last + 1)
                return
            if heads[1] == "sobjecttype" and n >= 3 and self.is_sobject(texts[ids[2]]):
                self.schema_token(ids, 2)
                return
            if self.is_sobject(texts[ids[1]]) and heads[1] not in SYSTEM_NAMES:
                self.schema_token(ids, 1)
            return
        if heads[0] == "sobjecttype" and n >= 2 and self.is_sobject(texts[ids[1]]):
            self.schema_token(ids, 1)

    def schema_token(self, ids: list[int], at: int) -> None:
        """``Account.Industry`` / ``Account.SObjectType`` / ``Account.fields.Industry``…"""
        texts, lows, lines = self.texts, self.lows, self.lines
        obj = self.schema.object_name(texts[ids[at]])
        self.add(self.schema.object_key(obj), REFERENCES, lines[ids[at]], detail="schema" if len(ids) > at + 1 else "type")
        rest = ids[at + 1 :]
        if rest and lows[rest[0]] in ("fields", "fieldsets"):
            if lows[rest[0]] == "fieldsets":
                return
            rest = rest[1:]
        if not rest:
            return
        f = rest[0]
        if self.op(f + 1, "(") and lows[f] in ("getinstance", "getorgdefaults", "getvalues"):
            self.follow_record(obj, self.group_end(f + 1) + 1)  # custom setting / metadata
            return
        if lows[f] in ("sobjecttype", "getsobjecttype", "class") or self.op(f + 1, "("):
            return
        self.add(self.schema.field_key(obj, texts[f]), REFERENCES, lines[f], detail="schema")

    def global_describe(self, open_i: int) -> None:
        """``Schema.getGlobalDescribe().get('Obj__c')``."""
        end = self.group_end(open_i)
        j = end + 1
        if self.op(j, ".") and j + 2 < self.n and self.lows[j + 1] == "get" and self.op(j + 2, "("):
            lits = self.call_literals(j + 2)
            if lits and len(lits) == 1:
                line, name = lits[0]
                if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                    self.add(self.schema.object_key(name), DYNAMIC, line, READ, True, "getGlobalDescribe")

    def call_literals(self, open_i: int) -> list[tuple[int, str]]:
        end = self.group_end(open_i)
        return [(self.lines[j], self.texts[j]) for j in range(open_i + 1, min(end, self.n)) if self.kinds[j] == STR]

    # --- record field access ---------------------------------------------------------------
    def record_access(self, vt: _VarType, ids: list[int], at: int) -> None:
        """Field reads/writes through a variable of type ``vt``; ``ids[at]`` is the variable."""
        obj, coll = vt
        lows, texts = self.lows, self.texts
        rest = ids[at + 1 :]
        nxt = ids[-1] + 1
        if coll:
            # accs[0].Name, m.get(id).Name, m.values()[0].Name
            if coll == "map" and rest and lows[rest[0]] == "get" and self.op(rest[0] + 1, "("):
                end = self.group_end(rest[0] + 1)
                self.follow_record(obj, end + 1)
            elif not rest and self.op(nxt, "["):
                end = self.group_end(nxt)
                self.follow_record(obj, end + 1)
            return
        if not rest:
            return
        first = rest[0]
        if self.op(first + 1, "("):
            method = lows[first]
            if method in ("get", "put"):
                self.dynamic_field(obj, first, method)
            return
        self.field_path(obj, rest)

    def follow_record(self, obj: str | None, j: int) -> None:
        if obj is None or obj == "SObject":
            return
        if self.op(j, ".") or self.op(j, "?."):
            if j + 1 < self.n and self.kinds[j + 1] == ID:
                ids = self.chain(j + 1)
                if self.op(ids[0] + 1, "("):
                    if self.lows[ids[0]] in ("get", "put"):
                        self.dynamic_field(obj, ids[0], self.lows[ids[0]])
                    return
                self.field_path(obj, ids)

    def field_path(self, obj: str | None, rest: list[int]) -> None:
        if obj is None or obj == "SObject":
            return
        texts, lines = self.texts, self.lines
        path: list[int] = []
        for x in rest:
            if self.op(x + 1, "("):
                break
            path.append(x)
        if not path or self.lows[path[0]] in _NOT_FIELDS:
            return
        nxt = path[-1] + 1  # truncated source can end right after the path
        write = path[-1] == rest[-1] and nxt < self.n and self.kinds[nxt] == OP and self.texts[nxt] in _ASSIGN_OPS
        if path[-1] + 1 < self.n and self.texts[path[-1] + 1] == "=" and self.op(path[-1] + 2, "="):
            write = False
        keys = self.resolve(obj, [texts[x] for x in path])
        for n_, key in enumerate(keys):
            is_last = n_ == len(keys) - 1
            line = lines[path[min(n_, len(path) - 1)]]
            access = WRITE if (write and is_last) else READ
            self.add(key, REFERENCES, line, access, detail="field write" if access == WRITE else "field read")

    def resolve(self, obj: str, parts: list[str]) -> list[str]:
        """Field keys of a record path; a trailing relationship yields its lookup field only,
        a child relationship (``acc.Contacts``, ``acc.Programs__r``) yields nothing."""
        schema = self.schema
        current = obj
        for idx, part in enumerate(parts):
            finder = getattr(schema, "child_relationship", None)
            if finder is not None and finder(current, part) or (
                part.lower() in STANDARD_CHILD_RELATIONSHIPS and not schema.has_field(current, part)
            ):
                return schema.resolve_path(obj, ".".join(parts[:idx]) + ".Id")[:-1] if idx else []
            if idx < len(parts) - 1:
                rel = schema.relationship(current, part)
                if rel is None:
                    break
                current = schema.object_name(rel[1][0])
        last = parts[-1]
        if not schema.has_field(current, last) and (
            last.lower().endswith("__r") or schema.relationship(current, last) is not None
        ):
            return schema.resolve_path(obj, ".".join(parts) + ".Id")[:-1]
        return schema.resolve_path(obj, ".".join(parts))

    def dynamic_field(self, obj: str | None, method_i: int, method: str) -> None:
        lits = self.call_literals(method_i + 1)
        if not lits:
            return
        line, name = lits[0]
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*", name):
            return
        access = WRITE if method == "put" else READ
        if obj is None or obj == "SObject":
            owners = self.schema.objects_with_field(name)
            if len(owners) != 1:
                return
            obj = owners[0]
        for key in self.resolve(obj, name.split(".")):
            self.add(key, DYNAMIC, line, access, True, f"sObject.{method}")

    # --- dynamic SOQL -------------------------------------------------------------------------
    def string_fragments(self, j: int) -> list[tuple[int, str]]:
        """Literal fragments of a string expression from ``j`` to ``;`` (top level only)."""
        out: list[tuple[int, str]] = []
        kinds, texts = self.kinds, self.texts
        while j < self.n:
            k = kinds[j]
            if k == OP:
                t = texts[j]
                if t in (";", ")", ",", "}"):
                    break
                if t in ("(", "[", "{"):
                    j = self.group_end(j) + 1
                    continue
            elif k == STR:
                out.append((self.lines[j], texts[j]))
            elif k == ID:
                frags = self.str_vars.get(self.lows[j])
                if frags and not self.op(j + 1, ".") and not self.op(j + 1, "("):
                    for seg in frags:
                        out.extend(seg)
            j += 1
        return out

    def dynamic_query(self, open_i: int, line: int) -> None:
        end = self.group_end(open_i)
        j = open_i + 1
        # the first argument only
        segments: list[list[tuple[int, str]]] = []
        kinds, lows = self.kinds, self.lows
        if j < end and kinds[j] == ID and (self.op(j + 1, ")") or self.op(j + 1, ",")):
            segments = list(self.str_vars.get(lows[j], []))
        else:
            segments = [self.string_fragments(j)]
        for seg in segments:
            if not seg:
                continue
            text, first = _join_fragments(seg)
            self.add_refs(parse_soql(text, self.schema, first - 1, dynamic=True))


def _join_fragments(frags: list[tuple[int, str]]) -> tuple[str, int]:
    """One query text whose line numbers follow the fragments' lines."""
    first = frags[0][0]
    parts: list[str] = []
    cur = first
    for line, text in frags:
        if line > cur:
            parts.append("\n" * (line - cur))
            cur = line
        else:
            parts.append(" ")
        parts.append(text)
        cur += text.count("\n")
    return "".join(parts), first


def parse_apex(component: Component, schema: Schema) -> list[Reference]:
    """References found in an ApexClass / ApexTrigger body (``attributes["body"]``)."""
    if component.type not in ("ApexClass", "ApexTrigger"):
        return []
    return _Parser(component, schema).run()
