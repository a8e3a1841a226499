"""Ask the graph a question in plain English: ``answer(store, org, question, writer) -> Answer``.

Retrieval is deterministic and offline; only the last step — facts to prose — goes through a
:class:`~aicolleague_pipelines.lib.llm.writer.Writer` (offline, or Gemini grounded in the facts).

Questions understood without any model (the ``method`` of the answer):

- ``where_used`` — "who/what uses X", "where is X used", "which layouts show X", "usages of X",
  "what depends on X": direct dependents of X with evidence (``store.where_used``); the parts of an
  object (``child_of`` edges: its fields, rules, layouts) are counted, not listed.
- ``writers`` — "which flows/classes write X", "what writes/updates/sets X", "who populates X":
  dependents whose edge has ``access=write``, filtered by the type words of the question
  (flows → Flow, classes → ApexClass, apex/code → ApexClass+ApexTrigger, layouts, …); when the
  filter leaves nothing, the other writers are listed in a section of their own.
- ``readers`` — "what reads/queries X": same with ``access=read``.
- ``impact`` — "what breaks if I change/delete/rename X", "impact of X", "what is affected by X":
  ``impact`` to depth 3, nearest first, with the path each one is reached by.
- ``dependencies`` — "what does X depend on / use / call", "dependencies of X": direct
  dependencies with edge kinds and access, plus the size of the transitive closure.
- ``changes`` — "what changed", "recent changes": :func:`~aicolleague_pipelines.lib.agents.diff.diff_snapshots`
  of the last two snapshots (added/removed/modified, breaking changes).
- ``compare`` — "compare X across orgs", "compare X between A and B", "is X the same in A and B",
  "how does X differ between A and B", "which orgs have X": :func:`~aicolleague_pipelines.lib.graph.queries.compare_component`
  over the orgs named, or every org the store shows.

A question that names an org ("… in the globex-prod org", "… in org globex-prod") is answered for
that org instead of ``org``, with a note. The store decides what may be seen: through a
:class:`~aicolleague_pipelines.lib.graph.queries.ScopedGraphStore` (the CLI's), an org outside the
caller's access policy raises :class:`~aicolleague_pipelines.lib.access.AccessDenied` and "every
org" means every org in scope.

X is resolved from the question: an exact key (``CustomField:Account.Industry``), a full name
(``Opportunity.Amount``, ``InvoiceService``, ``Invoice__c``), the name without ``__c`` /
underscores / case (``invoice.amount``), a field's own name when unique (``Industry``), ``the
Amount field on Opportunity``; typos through ``store.suggest`` and close matches (a single close
match is used, with a note). Ambiguous names and unknown ones are answered with the candidates.

A question no pattern matches: with a Gemini writer, keyword retrieval (the 10 best-matching
components and their 1-hop neighbourhood) and a grounded answer (``method="search"``); offline, a
``help`` answer listing the questions above.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.index import STRUCTURAL_KINDS
from aicolleague_pipelines.lib.graph.model import READ, WRITE, Edge, Node
from aicolleague_pipelines.lib.graph.store import GraphStore, GraphStoreError, UnknownComponentError
from aicolleague_pipelines.lib.llm.writer import OfflineWriter, Writer, mentioned_keys

IMPACT_DEPTH = 3
MAX_ITEMS = 60  # items listed per answer (counts stay exact)
MAX_SECTION = 25  # items listed per section

#: Display order, singular and plural nouns by component type (section titles: the plural, capitalised).
TYPE_NOUNS: dict[str, tuple[str, str]] = {
    "CustomObject": ("object", "objects"),
    "CustomField": ("field", "fields"),
    "ApexClass": ("Apex class", "Apex classes"),
    "ApexTrigger": ("Apex trigger", "Apex triggers"),
    "Flow": ("flow", "flows"),
    "WorkflowRule": ("workflow rule", "workflow rules"),
    "WorkflowFieldUpdate": ("workflow field update", "workflow field updates"),
    "ValidationRule": ("validation rule", "validation rules"),
    "Layout": ("page layout", "page layouts"),
    "FlexiPage": ("Lightning page", "Lightning pages"),
    "LightningComponentBundle": ("Lightning web component", "Lightning web components"),
    "AuraDefinitionBundle": ("Aura component", "Aura components"),
    "ApexPage": ("Visualforce page", "Visualforce pages"),
    "Report": ("report", "reports"),
    "Dashboard": ("dashboard", "dashboards"),
    "EmailTemplate": ("email template", "email templates"),
    "PermissionSet": ("permission set", "permission sets"),
    "PermissionSetGroup": ("permission set group", "permission set groups"),
    "Profile": ("profile", "profiles"),
    "RecordType": ("record type", "record types"),
    "GlobalValueSet": ("global value set", "global value sets"),
    "CustomMetadata": ("custom metadata record", "custom metadata records"),
    "CustomTab": ("tab", "tabs"),
    "WebLink": ("button or link", "buttons and links"),
}
TYPE_TITLES: dict[str, str] = {t: pl[0].upper() + pl[1:] for t, (_, pl) in TYPE_NOUNS.items()}
_TYPE_ORDER = {t: i for i, t in enumerate(TYPE_TITLES)}

#: Words of a question that name component types (intersected when several: "apex classes").
TYPE_WORDS: dict[str, frozenset[str]] = {
    **{w: frozenset({"Flow"}) for w in ("flow", "flows", "process", "processes")},
    **{w: frozenset({"ApexClass"}) for w in ("class", "classes")},
    **{w: frozenset({"ApexClass", "ApexTrigger"}) for w in ("apex", "code")},
    **{w: frozenset({"ApexTrigger"}) for w in ("trigger", "triggers")},
    **{w: frozenset({"Layout"}) for w in ("layout", "layouts")},
    **{w: frozenset({"FlexiPage", "ApexPage", "Layout"}) for w in ("page", "pages")},
    "lightning": frozenset({"FlexiPage", "LightningComponentBundle", "AuraDefinitionBundle"}),
    "visualforce": frozenset({"ApexPage"}),
    **{w: frozenset({"Report"}) for w in ("report", "reports")},
    **{w: frozenset({"Dashboard"}) for w in ("dashboard", "dashboards")},
    **{w: frozenset({"CustomField"}) for w in ("field", "fields", "formula", "formulas")},
    **{w: frozenset({"CustomObject"}) for w in ("object", "objects")},
    "validation": frozenset({"ValidationRule"}),
    **{w: frozenset({"ValidationRule", "WorkflowRule"}) for w in ("rule", "rules")},
    "permission": frozenset({"PermissionSet", "PermissionSetGroup", "Profile"}),
    **{w: frozenset({"PermissionSet", "PermissionSetGroup"}) for w in ("set", "sets")},
    **{w: frozenset({"Profile"}) for w in ("profile", "profiles")},
    **{w: frozenset({"LightningComponentBundle"}) for w in ("lwc", "lwcs")},
    "aura": frozenset({"AuraDefinitionBundle"}),
    "email": frozenset({"EmailTemplate"}),
    **{w: frozenset({"EmailTemplate"}) for w in ("template", "templates")},
    **{w: frozenset({"WorkflowRule", "WorkflowFieldUpdate"}) for w in ("workflow", "workflows")},
    **{w: frozenset({"Flow", "ApexTrigger", "WorkflowRule", "WorkflowFieldUpdate"})
       for w in ("automation", "automations")},
}
_FILLER = frozenset({"the", "my", "our", "other", "all", "things", "component", "components", "metadata",
                     "items", "parts", "else", "of", "kind", "kinds", "type", "types", "web", "field", "update",
                     "updates"})
_WRITE_VERBS = frozenset({"write", "writes", "update", "updates", "set", "sets", "populate", "populates",
                          "modify", "modifies", "change", "changes", "fill", "fills", "overwrite", "overwrites",
                          "stamp", "stamps", "assign", "assigns"})
_READ_VERBS = frozenset({"read", "reads", "query", "queries", "select", "selects"})
_USE_VERBS = frozenset({"use", "uses", "reference", "references", "call", "calls", "show", "shows",
                        "display", "displays", "touch", "touches", "need", "needs", "invoke", "invokes"})
_DEPEND_VERBS = frozenset({"depend", "depends", "rely", "relies"})

_CHANGES = re.compile(
    r"^(?:so\s+)?(?:what|which\s+\w+)\s+(?:has\s+|have\s+)?changed\b|^what(?:'s|\s+is)\s+new\b"
    r"|^(?:show\s+(?:me\s+)?|list\s+)?(?:the\s+)?(?:recent\s+|latest\s+|last\s+)?changes(?:\s+since.*|\s+in\s+.*)?$"
    r"|\bwhat\s+changed\b|\bchanges\s+since\s+(?:the\s+)?last\b",
    re.I,
)
_MOD_VERB = (r"(?:change|changes|changed|changing|delete|deletes|deleted|deleting|remove|removes|removed|removing|"
             r"rename|renames|renamed|renaming|modify|modifies|modified|modifying|drop|drops|dropped|"
             r"deactivate|deactivates|deactivated|edit|edits|edited|retype|retypes)")
_IMPACT = [
    re.compile(r"\bwhat\s+(?:would\s+|will\s+|could\s+|might\s+|else\s+)?(?:break|breaks|fails?|"
               r"(?:is|gets|would\s+be|will\s+be)\s+(?:affected|impacted))\s+(?:if|when)\s+"
               r"(?:i|we|you|someone|somebody)?\s*(?:were\s+to\s+|was\s+to\s+)?" + _MOD_VERB + r"\s+(?P<x>.+)$", re.I),
    re.compile(r"\b(?:impact|blast\s+radius|consequences?|effects?)\s+of\s+(?:a\s+change\s+to\s+|"
               r"(?:changing|deleting|removing|renaming|modifying)\s+)?(?P<x>.+)$", re.I),
    re.compile(r"\bwhat\s+(?:is|are|would\s+be|gets?)\s+(?:affected|impacted)\s+by\s+(?:a\s+change\s+to\s+|"
               r"(?:changing|deleting|removing|renaming|modifying)\s+)?(?P<x>.+)$", re.I),
    re.compile(r"\b(?:can|could|may)\s+(?:i|we)\s+(?:safely\s+)?" + _MOD_VERB + r"\s+(?P<x>.+)$", re.I),
    re.compile(r"\bis\s+it\s+safe\s+to\s+" + _MOD_VERB + r"\s+(?P<x>.+)$", re.I),
]
_DEPS = [
    re.compile(r"\bwhat\s+(?:else\s+)?(?:does|do|did)\s+(?P<x>.+?)\s+(?:depend|rely)\s+on$", re.I),
    re.compile(r"\bwhat\s+(?:does|do)\s+(?P<x>.+?)\s+(?:use|reference|call|need|read|touch|query|write|update)$", re.I),
    re.compile(r"\b(?:dependencies|dependences|prerequisites)\s+(?:of|for)\s+(?P<x>.+)$", re.I),
    re.compile(r"\bwhat\s+is\s+(?P<x>.+?)\s+dependent\s+on$", re.I),
    re.compile(r"\bwhat\s+(?:is|are)\s+(?P<x>.+?)'s\s+dependencies$", re.I),
]
_WHERE = [
    re.compile(r"\bwhere\s+(?:is|are|was)\s+(?P<x>.+?)\s+(?:used|referenced|shown|displayed|called|read|written)"
               r"(?:\s+(?:in|at|from|anywhere)\b.*)?$", re.I),
    re.compile(r"\b(?:usages?|uses|references|dependents)\s+(?:of|for|to)\s+(?P<x>.+)$", re.I),
    re.compile(r"\bwhere[- ]used\s+(?:for\s+|of\s+)?(?P<x>.+)$", re.I),
    re.compile(r"\b(?:is|are)\s+(?P<x>.+?)\s+(?:used|referenced)(?:\s+anywhere)?$", re.I),
]

_COMPARE = [
    re.compile(r"^compare\s+(?P<x>.+?)(?:\s+(?:between|across|among|in|over)\s+(?P<orgs>.+))?$", re.I),
    re.compile(r"^(?:is|are)\s+(?P<x>.+?)\s+(?:the\s+same|identical|different|consistent|in\s+sync)\s+"
               r"(?:in|across|between|among|on)\s+(?P<orgs>.+)$", re.I),
    re.compile(r"^(?:how\s+(?:does|do)\s+)?(?P<x>.+?)\s+(?:differ|differs|vary|varies)\s+"
               r"(?:between|across|among|in)\s+(?P<orgs>.+)$", re.I),
    re.compile(r"^(?:what\s+(?:is|are)\s+the\s+)?differences?\s+(?:of|in|for)\s+(?P<x>.+?)\s+"
               r"(?:between|across|among)\s+(?P<orgs>.+)$", re.I),
    re.compile(r"^(?:which|what)\s+orgs?\s+(?:have|has|contain|contains|define|defines|include|includes)\s+"
               r"(?P<x>.+)$", re.I),
]
_ORG_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
#: "in the acme-prod org" / "in org acme-prod" / "org `acme-prod`" — an org named by the question.
_ORG_MENTIONS = [
    re.compile(r"\s*\b(?:in|on|of|for|from|at|within)\s+(?:the\s+)?org(?:anization)?\s+[`'\"]?(?P<o>" + _ORG_NAME
               + r")[`'\"]?(?=\W|$)", re.I),
    re.compile(r"\s*\b(?:in|on|of|for|from|at|within)\s+(?:the\s+)?[`'\"]?(?P<o>" + _ORG_NAME
               + r")[`'\"]?\s+org(?:anization)?\b", re.I),
    re.compile(r"\s*\borg\s+[`'\"](?P<o>" + _ORG_NAME + r")[`'\"]", re.I),
]
#: Words that sit where an org name could ("in the same org", "org wide defaults"): not org names.
_NOT_ORGS = frozenset({"a", "an", "the", "this", "that", "same", "my", "our", "your", "their", "whole", "entire",
                       "current", "other", "another", "any", "every", "each", "all", "one", "wide", "salesforce"})

HELP_LINES = [
    "who/what uses X — or: where is X used?",
    "which flows/classes/triggers/layouts write X — or: what writes X?",
    "what reads X?",
    "what breaks if I change/delete X — or: impact of X",
    "what does X depend on?",
    "what changed (since the last snapshot)?",
    "compare X across orgs — or: is X the same in A and B?",
]


@dataclass
class Answer:
    text: str
    cited_keys: list[str]
    #: where_used | writers | readers | impact | dependencies | changes | search | help | not_found | ambiguous
    method: str
    facts: dict[str, Any]
    source: str = "offline"  # the writer's source: gemini | offline | cache
    subject: str | None = None
    rejected_citations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "cited_keys": list(self.cited_keys), "method": self.method,
            "source": self.source, "subject": self.subject, "rejected_citations": list(self.rejected_citations),
            "notes": list(self.notes), "facts": self.facts,
        }


@dataclass(frozen=True)
class Intent:
    method: str
    phrase: str | None = None
    types: frozenset[str] | None = None  # type filter (writers/readers/where_used)
    type_words: str = ""
    orgs: tuple[str, ...] = ()  # compare: the orgs named ("" → every org the store shows)


@dataclass
class Resolution:
    key: str | None
    candidates: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    note: str | None = None


# --- parsing ----------------------------------------------------------------------------
def _clean_question(question: str) -> str:
    q = " ".join(question.strip().split())
    return q.rstrip("?!. ").strip()


def _types_of(words: Sequence[str]) -> frozenset[str] | None:
    sets = [TYPE_WORDS[w] for w in words if w in TYPE_WORDS]
    if not sets:
        return None
    inter = frozenset.intersection(*sets)
    return inter or frozenset().union(*sets)


def _verb_split(q: str) -> Intent | None:
    """"which <type words> <verb> X" / "what <verb> X" / "who <verb> X"."""
    words = q.split()
    if len(words) < 3 or words[0].lower() not in {"which", "what", "who"}:
        return None
    between: list[str] = []
    for i in range(1, min(len(words) - 1, 7)):
        w = re.sub(r"[^a-z]", "", words[i].lower())
        prev = between[-1] if between else ""
        is_verb = w in _WRITE_VERBS or w in _READ_VERBS or w in _USE_VERBS or w in _DEPEND_VERBS
        if w in {"set", "sets"} and prev == "permission":
            is_verb = False
        if w in {"update", "updates"} and prev == "field":
            is_verb = False
        if is_verb:
            rest = words[i + 1:]
            if w in _DEPEND_VERBS:
                if not rest or rest[0].lower() != "on":
                    return None
                rest = rest[1:]
            if not rest:
                return None
            types = _types_of(between)
            method = "writers" if w in _WRITE_VERBS else "readers" if w in _READ_VERBS else "where_used"
            if w in {"write", "writes"} or w in _READ_VERBS:
                rest = rest[1:] if rest and rest[0].lower() in {"to", "into", "from"} else rest
            return Intent(method, " ".join(rest), types, " ".join(between))
        if w in TYPE_WORDS or w in _FILLER or w in {"apex", "lightning"}:
            between.append(w)
            continue
        return None
    return None


def org_mentions(question: str) -> tuple[str, list[str]]:
    """(the question without its org mentions, the orgs it names, in order)."""
    found: list[tuple[int, str]] = []
    q = question
    for rx in _ORG_MENTIONS:
        def cut(m: re.Match) -> str:
            if m.group("o").lower() in _NOT_ORGS:
                return m.group(0)
            found.append((m.start(), m.group("o")))
            return ""
        q = rx.sub(cut, q)
    return q, list(dict.fromkeys(o for _, o in sorted(found)))


def _orgs_listed(text: str | None) -> list[str]:
    """Org names of "acme-prod and globex-prod" / "a, b vs c"; [] for "all orgs", "every org"."""
    if not text:
        return []
    out = []
    for part in re.split(r"\s*(?:,|&|/|\band\b|\bvs\.?|\bversus\b)\s*", text.strip(), flags=re.I):
        words = [w.strip("`'\"") for w in part.split()
                 if w.lower().strip("`'\"") not in {"the", "org", "orgs", "organization", "organizations", "both"}]
        if len(words) == 1 and re.fullmatch(_ORG_NAME, words[0]) and words[0].lower() not in _NOT_ORGS:
            out.append(words[0])
    return list(dict.fromkeys(out))


def parse_question(question: str) -> Intent:
    q = _clean_question(question)
    if not q:
        return Intent("help")
    for rx in _COMPARE:
        m = rx.search(q)
        if m:
            return Intent("compare", m.group("x"), orgs=tuple(_orgs_listed(m.groupdict().get("orgs"))))
    if _CHANGES.search(q):
        return Intent("changes")
    for rx in _IMPACT:
        m = rx.search(q)
        if m:
            return Intent("impact", m.group("x"))
    for rx in _DEPS:
        m = rx.search(q)
        if m:
            return Intent("dependencies", m.group("x"))
    verb = _verb_split(q)
    if verb is not None:
        return verb
    for rx in _WHERE:
        m = rx.search(q)
        if m:
            return Intent("where_used", m.group("x"))
    return Intent("search", q)


# --- resolving X --------------------------------------------------------------------------
_HINT_WORDS = {
    "field": "CustomField", "object": "CustomObject", "class": "ApexClass", "trigger": "ApexTrigger",
    "flow": "Flow", "layout": "Layout", "report": "Report", "rule": "ValidationRule",
    "profile": "Profile", "template": "EmailTemplate", "page": None, "component": None, "the": None,
    "custom": None, "standard": None, "apex": "ApexClass", "permission": "PermissionSet", "set": None,
    "validation": "ValidationRule", "lwc": "LightningComponentBundle",
}


def _norm(s: str) -> str:
    s = s.lower().replace("__c", "").replace("__mdt", "")
    return re.sub(r"[\s_\-']", "", s)


def _priority(node: Node) -> tuple[int, int, str]:
    return (1 if node.external else 0, _TYPE_ORDER.get(node.type, 99), node.key)


def _strip_phrase(phrase: str) -> tuple[str, str | None]:
    """(name-ish phrase, type hint) — drops articles, type words, quotes, trailing org mentions."""
    p = phrase.strip().strip("\"'`“”‘’ ").rstrip("?!.,;: ")
    p = re.sub(r"\s+(?:in|on|of)\s+(?:the\s+)?(?:org\s+)?[\w\-]+\s+org$", "", p, flags=re.I)
    p = re.sub(r"\s+(?:anywhere|at\s+all|today|now)$", "", p, flags=re.I)
    # "the Amount field on Opportunity" / "Amount field of the Opportunity object"
    m = re.match(r"^(?:the\s+)?(?P<f>[\w.]+)\s+field\s+(?:on|of|in)\s+(?:the\s+)?(?P<o>[\w]+)(?:\s+object)?$", p, re.I)
    if m:
        return f"{m.group('o')}.{m.group('f')}", "CustomField"
    m = re.match(r"^(?:the\s+)?(?P<o>\w+)'s\s+(?P<f>[\w.]+)(?:\s+field)?$", p, re.I)
    if m:
        return f"{m.group('o')}.{m.group('f')}", "CustomField"
    hint: str | None = None
    words = p.split()
    kept: list[str] = []
    for i, w in enumerate(words):
        lw = w.lower()
        if lw in _HINT_WORDS and (":" not in w) and len(words) > 1:
            if _HINT_WORDS[lw] and hint is None:
                hint = _HINT_WORDS[lw]
            continue
        kept.append(w)
    return (" ".join(kept) if kept else p), hint


def resolve_component(store: GraphStore, org: str, phrase: str, nodes: Sequence[Node] | None = None) -> Resolution:
    """The component a phrase of a question names (see the module docstring)."""
    nodes = list(nodes if nodes is not None else store.nodes(org))
    p, hint = _strip_phrase(phrase)
    if not p:
        return Resolution(None)
    by_key = {n.key.lower(): n for n in nodes}

    def pick(cands: Iterable[Node]) -> list[Node]:
        cands = list({n.key: n for n in cands}.values())
        if hint:
            hinted = [n for n in cands if n.type == hint]
            cands = hinted or cands
        return sorted(cands, key=_priority)

    def exact(term: str) -> Resolution | None:
        t = term.lower()
        if t in by_key:
            return Resolution(by_key[t].key)
        if ":" in term:
            typ, _, nm = term.partition(":")
            hits = [n for n in nodes if n.type.lower() == typ.lower() and _norm(n.name) == _norm(nm)]
            if hits:
                return Resolution(pick(hits)[0].key)
        hits = pick(n for n in nodes if n.name.lower() == t)
        if not hits:
            hits = pick(n for n in nodes if _norm(n.name) == _norm(term))
        if hits:
            # Equal names of different types (an object and its tab): the type order decides,
            # unless two of the best type tie.
            best = [n for n in hits if _TYPE_ORDER.get(n.type, 99) == _TYPE_ORDER.get(hits[0].type, 99)
                    and n.external == hits[0].external]
            if len(best) == 1:
                return Resolution(best[0].key)
            return Resolution(None, [n.key for n in best])
        return None

    res = exact(p)
    if res is not None:
        return res
    # Tokens of a longer phrase: the one that looks like a component name first.
    tokens = [t.strip("\"'`,;:()") for t in p.split()]
    if len(tokens) > 1:
        for t in sorted(tokens, key=lambda t: (not re.search(r"[._:/]|[a-z][A-Z]", t), -len(t))):
            if len(t) < 3 or t.lower() in _FILLER:
                continue
            res = exact(t)
            if res is not None and res.key:
                return res
    # The last segment of a name (a field's own name, a report's developer name) or a label.
    seg = _norm(p)
    segs = pick(n for n in nodes if _norm(re.split(r"[./]", n.name)[-1]) == seg
                or _norm(str(n.attrs.get("label") or "")) == seg)
    if len(segs) == 1:
        return Resolution(segs[0].key, note=f"'{phrase.strip()}' read as `{segs[0].key}`")
    if len(segs) > 1:
        defined = [n for n in segs if not n.external]
        if len(defined) == 1:
            return Resolution(defined[0].key, note=f"'{phrase.strip()}' read as `{defined[0].key}`")
        return Resolution(None, [n.key for n in segs][:10])
    # Typos: close names (a single clear winner is used), then the store's own suggestions.
    names = {n.name.lower(): n for n in sorted(nodes, key=_priority, reverse=True)}
    close = difflib.get_close_matches(p.lower(), list(names), n=3, cutoff=0.85)
    if close:
        scores = [difflib.SequenceMatcher(None, p.lower(), c).ratio() for c in close]
        if len(close) == 1 or scores[0] - scores[1] >= 0.05:
            n = names[close[0]]
            return Resolution(n.key, note=f"no component is named '{p}'; answered for `{n.key}` (closest match)")
    suggestions: list[str] = [names[c].key for c in close]
    for guess in (p, f"CustomField:{p}", f"ApexClass:{p}", f"CustomObject:{p}"):
        try:
            suggestions += store.suggest(org, guess, n=5)
        except GraphStoreError:  # pragma: no cover - backend specific
            pass
    return Resolution(None, suggestions=list(dict.fromkeys(suggestions))[:5])


# --- facts ------------------------------------------------------------------------------
def _title(type_: str) -> str:
    return TYPE_TITLES.get(type_, f"{type_} components")


def _type_sort(key: str) -> tuple[int, str]:
    return (_TYPE_ORDER.get(key.partition(":")[0], 99), key)


def _describe_edges(edges: Sequence[Edge], max_details: int = 3) -> str:
    kinds = sorted({e.kind for e in edges})
    access = sorted({e.access for e in edges if e.access})
    details = list(dict.fromkeys(e.detail for e in edges if e.detail))
    s = ", ".join(kinds)
    if access:
        s += f" ({'/'.join(access)})"
    if details:
        s += ": " + ", ".join(details[:max_details]) + (" …" if len(details) > max_details else "")
    if any(e.dynamic for e in edges):
        s += " [dynamic]"
    return s


def _evidence(edges: Sequence[Edge], n: int = 2) -> list[str]:
    return list(dict.fromkeys(e.evidence for e in edges if e.evidence))[:n]


def _sections_by_type(grouped: dict[str, list[Edge]], budget: int = MAX_ITEMS) -> list[dict[str, Any]]:
    by_type: dict[str, list[str]] = defaultdict(list)
    for key in sorted(grouped, key=_type_sort):
        by_type[key.partition(":")[0]].append(key)
    sections = []
    left = budget
    for type_ in sorted(by_type, key=lambda t: (_TYPE_ORDER.get(t, 99), t)):
        keys = by_type[type_]
        shown = keys[: max(0, min(MAX_SECTION, left))]
        left -= len(shown)
        sections.append({
            "title": _title(type_),
            "total": len(keys),
            "items": [{"key": k, "detail": _describe_edges(grouped[k]), "evidence": _evidence(grouped[k])}
                      for k in shown],
        })
    return sections


def _noun(type_: str, n: int) -> str:
    sing, plural = TYPE_NOUNS.get(type_, (f"{type_} component", f"{type_} components"))
    return sing if n == 1 else plural


def _count_phrase(keys: Iterable[str]) -> str:
    c = Counter(k.partition(":")[0] for k in keys)
    return ", ".join(f"{n} {_noun(t, n)}" for t, n in sorted(c.items(), key=lambda kv: (_TYPE_ORDER.get(kv[0], 99), kv[0])))


def _subject(store: GraphStore, org: str, key: str) -> dict[str, Any]:
    nd = store.node(org, key)
    d: dict[str, Any] = {"key": key}
    if nd is not None:
        d.update({"type": nd.type, "name": nd.name})
        if nd.external:
            d["external"] = True
        for a in ("label", "data_type", "status", "active", "process_type", "trigger_object"):
            if nd.attrs.get(a) is not None:
                d[a] = nd.attrs[a]
    return d


def _facts_where_used(store: GraphStore, org: str, key: str, intent: Intent) -> dict[str, Any]:
    edges = store.where_used(org, key)
    access = {"writers": WRITE, "readers": READ}.get(intent.method)
    structural = [e for e in edges if e.kind in STRUCTURAL_KINDS]
    relevant = [e for e in edges if e.kind not in STRUCTURAL_KINDS]
    if access:
        relevant = [e for e in relevant if e.access == access]
    grouped: dict[str, list[Edge]] = defaultdict(list)
    for e in relevant:
        grouped[e.source].append(e)
    wanted = {k: v for k, v in grouped.items() if not intent.types or k.partition(":")[0] in intent.types}
    others = {k: v for k, v in grouped.items() if k not in wanted}
    plural = (intent.type_words.strip() or "components") if intent.types else "components"
    singular = plural[:-2] if plural.endswith(("sses", "ches")) else plural.rstrip("s")
    verb = {"writers": "write", "readers": "read", "where_used": "use"}[intent.method]
    n = len(wanted)
    mix = f" ({_count_phrase(wanted)})" if len({k.partition(":")[0] for k in wanted}) > 1 else ""
    if intent.method == "where_used":
        summary = (f"`{key}` is used directly by {n} {singular if n == 1 else plural} in org `{org}`{mix}."
                   if n else f"No {plural} in org `{org}` use `{key}` directly.")
    else:
        summary = (f"{n} {singular if n == 1 else plural} {verb + 's' if n == 1 else verb} `{key}` in org `{org}`{mix}."
                   if n else f"No {plural} {verb} `{key}` in org `{org}`.")
    sections = _sections_by_type(wanted)
    notes: list[str] = []
    if intent.types and others:
        sec = _sections_by_type(others, budget=MAX_SECTION)
        items = [it for s in sec for it in s["items"]]
        sections.append({"title": f"Other components that {verb} it", "total": len(others), "items": items})
    if structural:
        notes.append(f"{len({e.source for e in structural})} components belong to it (its fields, rules, layouts, "
                     "record types: child_of) and are not listed.")
    if intent.method == "writers":
        notes.append("Writes found in code, flows, workflow field updates, layouts (editable fields) and "
                     "permission sets (edit access); dynamic or managed-package writes may be missing.")
    return {"summary": summary, "sections": sections, "notes": notes,
            "counts": {"matching": n, "other": len(others), "edges": len(relevant)}}


def _facts_impact(store: GraphStore, org: str, key: str) -> dict[str, Any]:
    from aicolleague_pipelines.lib.graph import queries

    hits = queries.impact(store, org, key, depth=IMPACT_DEPTH)
    direct = defaultdict(list)
    for e in store.where_used(org, key):
        direct[e.source].append(e)
    by_depth: dict[int, list] = defaultdict(list)
    for h in hits:
        by_depth[h.depth].append(h)
    titles = {1: "Direct dependents", 2: "Two hops away", 3: "Three hops away"}
    sections = []
    left = MAX_ITEMS
    for d in sorted(by_depth):
        hs = sorted(by_depth[d], key=lambda h: _type_sort(h.key))
        shown = hs[: max(0, min(MAX_SECTION, left))]
        left -= len(shown)
        items = []
        for h in shown:
            if d == 1 and h.key in direct:
                detail, ev = _describe_edges(direct[h.key]), _evidence(direct[h.key])
            else:
                via = h.path[-2] if len(h.path) >= 2 else key
                detail, ev = f"via `{via}` ({h.via_kind or 'dependency'})", []
            items.append({"key": h.key, "detail": detail, "evidence": ev})
        sections.append({"title": titles.get(d, f"{d} hops away"), "total": len(hs), "items": items})
    n = len(hits)
    n1 = len(by_depth.get(1, []))
    summary = (f"Changing or deleting `{key}` affects {n} components in org `{org}` within {IMPACT_DEPTH} hops, "
               f"{n1} of them directly ({_count_phrase(h.key for h in hits)})." if n
               else f"Nothing in org `{org}` depends on `{key}`: changing or deleting it breaks no known component.")
    notes = ["Impact follows dependency edges backwards; dynamic references (Database.query strings, "
             "managed packages) can hide more."]
    return {"summary": summary, "sections": sections, "notes": notes,
            "counts": {"impacted": n, "direct": n1, "depth": IMPACT_DEPTH}}


def _facts_dependencies(store: GraphStore, org: str, key: str) -> dict[str, Any]:
    from aicolleague_pipelines.lib.graph import queries

    hits = queries.dependencies(store, org, key, depth=None)
    direct_keys = {h.key for h in hits if h.depth == 1}
    grouped: dict[str, list[Edge]] = defaultdict(list)
    for e in store.edges(org):
        if e.source == key and e.target in direct_keys:
            grouped[e.target].append(e)
    for k in direct_keys - set(grouped):
        grouped[k] = []
    n1 = len(direct_keys)
    summary = (f"`{key}` depends directly on {n1} components in org `{org}` ({_count_phrase(direct_keys)}); "
               f"{len(hits)} in total, transitively." if n1
               else f"`{key}` depends on nothing in org `{org}`.")
    sections = _sections_by_type(grouped)
    return {"summary": summary, "sections": sections, "notes": [],
            "counts": {"direct": n1, "transitive": len(hits)}}


def _facts_changes(store: GraphStore, org: str) -> dict[str, Any]:
    from aicolleague_pipelines.lib.agents.diff import diff_snapshots

    cs = diff_snapshots(store, org, impact_depth=IMPACT_DEPTH, impact_limit=MAX_SECTION)
    if cs.baseline:
        n = len(cs.added)
        return {"summary": (f"Org `{org}` has a single snapshot (v{cs.new_version}, {cs.new_created_at}) with {n} "
                            "components: there is no earlier snapshot to compare with yet."),
                "sections": [], "notes": ["Run the refresh again after a change to see what changed."],
                "counts": cs.summary()}
    s = cs.summary()
    summary = (f"Between snapshot v{cs.old_version} ({cs.old_created_at}) and v{cs.new_version} "
               f"({cs.new_created_at}) of org `{org}`: {s['added']} added, {s['removed']} removed, "
               f"{s['modified']} modified, {s['breaking']} breaking.")
    if cs.is_empty:
        summary = (f"Nothing changed in org `{org}` between snapshot v{cs.old_version} and v{cs.new_version}.")
    sections: list[dict[str, Any]] = []
    if cs.breaking:
        sections.append({"title": "Breaking changes", "total": len(cs.breaking), "items": [
            {"key": b.key, "detail": f"{b.reason}: {b.detail}"
             + (f"; still referenced by {', '.join(f'`{r}`' for r in b.referenced_by[:5])}" if b.referenced_by else "")
             + (f"; {len(b.dependents)} dependents" if b.dependents else "")}
            for b in cs.breaking[:MAX_SECTION]]})
    for title, rows in (("Removed", cs.removed), ("Added", cs.added), ("Modified", cs.modified)):
        if not rows:
            continue
        items = []
        for c in sorted(rows, key=lambda c: _type_sort(c.key))[:MAX_SECTION]:
            detail = ", ".join(c.changed_attrs) if c.changed else ""
            who = " ".join(x for x in (c.last_modified_by, c.last_modified_date) if x)
            if who:
                detail = f"{detail}; by {who}" if detail else f"by {who}"
            items.append({"key": c.key, "detail": detail})
        sections.append({"title": title, "total": len(rows), "items": items})
    return {"summary": summary, "sections": sections, "notes": [], "counts": s}


_STOP = frozenset("""a an and any are be by can do does for from have how i in is it its me my of on or our
show tell that the their them there these this to us was we what when where which who why will with you your
about all org component components list give please get find""".split())


def _facts_search(store: GraphStore, org: str, question: str, nodes: Sequence[Node]) -> dict[str, Any]:
    words = [w for w in re.findall(r"[A-Za-z0-9_.]+", question.lower()) if len(w) >= 3 and w not in _STOP]
    scored: list[tuple[float, Node]] = []
    for nd in nodes:
        hay = f"{nd.name} {nd.attrs.get('label') or ''}".lower()
        parts = set(re.split(r"[._/\s\-]+", hay.replace("__c", "")))
        score = 0.0
        for w in words:
            ww = w.replace("__c", "")
            forms = {ww, ww[:-1] if len(ww) > 4 and ww.endswith("s") else ww}  # invoices → invoice
            if forms & parts:
                score += 2
            elif any(f in hay for f in forms):
                score += 1
        if score:
            scored.append((score - (0.5 if nd.external else 0), nd))
    scored.sort(key=lambda sn: (-sn[0], _priority(sn[1])))
    top = [nd for _, nd in scored[:10]]
    top_keys = {nd.key for nd in top}
    all_edges = store.edges(org) if top else []
    out_edges: dict[str, list[Edge]] = defaultdict(list)
    for e in all_edges:
        if e.source in top_keys:
            out_edges[e.source].append(e)
    sections = []
    if top:
        sections.append({"title": "Matching components", "total": len(scored), "items": [
            {"key": nd.key, "detail": ", ".join(f"{a}: {nd.attrs[a]}" for a in ("label", "data_type", "status")
                                                if nd.attrs.get(a) is not None)} for nd in top]})
    for nd in top:
        used_by: dict[str, list[Edge]] = defaultdict(list)
        for e in store.where_used(org, nd.key):
            if e.kind not in STRUCTURAL_KINDS:
                used_by[e.source].append(e)
        uses: dict[str, list[Edge]] = defaultdict(list)
        for e in out_edges.get(nd.key, []):
            uses[e.target].append(e)
        items = ([{"key": k, "detail": "uses it: " + _describe_edges(v)} for k, v in sorted(used_by.items())[:8]]
                 + [{"key": k, "detail": "it uses: " + _describe_edges(v)} for k, v in sorted(uses.items())[:8]])
        if items:
            sections.append({"title": f"Around {nd.key}", "total": len(items), "items": items})
    summary = (f"{len(scored)} components of org `{org}` match the words of the question; the {len(top)} best "
               "and their direct neighbours follow." if top else f"No component of org `{org}` matches the question's words.")
    return {"summary": summary, "sections": sections, "notes": [], "counts": {"matching": len(scored)}}


def _allowed_keys(facts: dict[str, Any]) -> set[str]:
    keys: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "key" and isinstance(x, str):
                    keys.add(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and "`" in v:
            keys.update(mentioned_keys(v))

    walk(facts)
    return keys


_TASKS = {
    "where_used": "list the components that use {subject} directly, by type, with what they do with it",
    "writers": "list the components that write {subject}{filtered}",
    "readers": "list the components that read {subject}{filtered}",
    "impact": "explain what would break if {subject} were changed or deleted, nearest dependents first",
    "dependencies": "list what {subject} depends on, by type",
    "changes": "summarise what changed between the last two snapshots, breaking changes first",
    "search": "answer the question from the matching components and their neighbours only; say so when the "
              "facts do not answer it",
}


def _offline(text_facts: dict[str, Any], method: str, subject: str | None = None, notes: Sequence[str] = ()) -> Answer:
    allowed = _allowed_keys(text_facts)
    w = OfflineWriter().write("", text_facts, allowed)
    return Answer(w.text, w.cited_keys, method, text_facts, "offline", subject, [], list(notes))


def _check_orgs(store: GraphStore, orgs: Sequence[str], question: str, org: str) -> Answer | None:
    """Each of ``orgs`` through the store (a scoped store raises AccessDenied outside the caller's
    scope); a not_found answer for one without a snapshot."""
    for o in orgs:
        try:
            store.snapshots(o)
        except GraphStoreError as exc:
            return _offline({"question": question, "org": org, "method": "not_found", "summary": str(exc)},
                            "not_found")
    return None


def answer(store: GraphStore, org: str, question: str, writer: Writer | None = None) -> Answer:
    """Answer ``question`` about ``org`` from the graph (see the module docstring)."""
    writer = writer or OfflineWriter()
    rest, named = org_mentions(question)
    intent = parse_question(rest)
    if intent.method == "compare":
        return _answer_compare(store, org, question, intent, named, writer)
    notes: list[str] = []
    if named:
        refused = _check_orgs(store, named, question, org)
        if refused is not None:
            return refused
        if named[0] != org:
            notes.append(f"answered for org `{named[0]}`, which the question names (not `{org}`)")
            org = named[0]
        if len(named) > 1:
            notes.append(f"the question names several orgs ({', '.join(named)}); answered for `{org}` only — "
                         "ask 'compare X across …' to compare them")
    a = _answer(store, org, question, intent, writer)
    a.notes = [*notes, *a.notes]
    return a


def _answer_compare(store: GraphStore, org: str, question: str, intent: Intent, named: Sequence[str],
                    writer: Writer) -> Answer:
    from aicolleague_pipelines.lib.graph import queries

    orgs = list(dict.fromkeys([*intent.orgs, *named])) or store.orgs()
    base = {"question": question, "org": org, "method": "compare", "orgs": list(orgs)}
    refused = _check_orgs(store, orgs, question, org)
    if refused is not None:
        return refused
    if not orgs:
        return _offline({**base, "method": "not_found", "summary": "There is no org with a graph snapshot to compare."},
                        "not_found")
    home = org if org in orgs else orgs[0]
    res = resolve_component(store, home, intent.phrase or "")
    for other in (o for o in orgs if o != home):
        if res.key is not None:
            break
        found = resolve_component(store, other, intent.phrase or "")
        if found.key is not None:
            home, res = other, found
    if res.key is None:
        phrase = _strip_phrase(intent.phrase or "")[0]
        facts = {**base, "method": "not_found",
                 "summary": f"I found no component matching '{phrase}' in org(s) {', '.join(f'`{o}`' for o in orgs)}.",
                 "sections": ([{"title": "Candidates", "items": [{"key": k} for k in res.candidates]}]
                              if res.candidates else [])}
        return _offline(facts, "not_found")
    key = res.key
    cmp_ = queries.compare_component(store, orgs, key)
    present, missing = cmp_.present_in, cmp_.missing_in
    summary = (f"`{key}` is defined in {len(present)} of {len(orgs)} org(s) ({', '.join(present)})"
               + (f"; missing in {', '.join(missing)}" if missing else "") + ".")
    if len(present) > 1:
        summary += (" It differs in: " + ", ".join(cmp_.differences) + "." if cmp_.differences
                    else " It is identical where present.")
    items = []
    for o, p in cmp_.orgs.items():
        detail = (f"{o}: present — api version {p.api_version or '-'}, status {p.status or '-'}, "
                  f"{p.dependents} direct dependents, {p.impacted} impacted" if p.present else f"{o}: absent")
        items.append({"detail": detail})
    sections = [{"title": "Per org", "total": len(items), "items": items}]
    if cmp_.differences:
        sections.append({"title": "Differences", "total": len(cmp_.differences), "items": [
            {"detail": f"{attr}: " + "; ".join(f"{o} = {v}" for o, v in vals.items())}
            for attr, vals in list(cmp_.differences.items())[:MAX_SECTION]]})
    facts = {**base, "summary": summary, "sections": sections, "subject": _subject(store, home, key),
             "notes": [res.note] if res.note else []}
    task = (f"Answer the question {question!r}: compare `{key}` across the Salesforce orgs {', '.join(orgs)} — "
            "where it is present or missing and how it differs.")
    w = writer.write(task, facts, _allowed_keys(facts))
    return Answer(w.text, w.cited_keys, "compare", facts, w.source, key, list(w.rejected_citations),
                  [*facts["notes"], *w.notes])


def _answer(store: GraphStore, org: str, question: str, intent: Intent, writer: Writer) -> Answer:
    base = {"question": question, "org": org, "method": intent.method}
    nodes: list[Node] | None = None

    if intent.method == "search" and isinstance(writer, OfflineWriter):
        intent = Intent("help")
    if intent.method == "help":
        facts = {**base, "summary": "I can answer these questions about an org's dependency graph offline "
                 "(X is a component: Account.Industry, CustomField:Opportunity.Amount, InvoiceService, Invoice__c):",
                 "sections": [{"title": "I can answer", "items": [{"detail": h} for h in HELP_LINES]}],
                 "notes": ["Set GEMINI_API_KEY to ask anything else (answers stay grounded in the graph)."]}
        return _offline(facts, "help")

    subject_key: str | None = None
    notes: list[str] = []
    facts_body: dict[str, Any]
    if intent.method in {"where_used", "writers", "readers", "impact", "dependencies"}:
        nodes = store.nodes(org)
        res = resolve_component(store, org, intent.phrase or "", nodes)
        if res.key is None:
            phrase = _strip_phrase(intent.phrase or "")[0]
            if res.candidates:
                facts = {**base, "method": "ambiguous",
                         "summary": f"'{phrase}' matches several components in org `{org}`; ask again with one of these keys:",
                         "sections": [{"title": "Candidates", "items": [{"key": k} for k in res.candidates]}]}
                return _offline(facts, "ambiguous")
            facts = {**base, "method": "not_found",
                     "summary": f"I found no component matching '{phrase}' in org `{org}`.",
                     "sections": ([{"title": "Did you mean", "items": [{"key": k} for k in res.suggestions]}]
                                  if res.suggestions else []),
                     "notes": ["Use a key (CustomField:Account.Industry) or a full name (Account.Industry)."]}
            return _offline(facts, "not_found")
        subject_key = res.key
        if res.note:
            notes.append(res.note)
        try:
            if intent.method == "impact":
                facts_body = _facts_impact(store, org, subject_key)
            elif intent.method == "dependencies":
                facts_body = _facts_dependencies(store, org, subject_key)
            else:
                facts_body = _facts_where_used(store, org, subject_key, intent)
        except UnknownComponentError as exc:  # pragma: no cover - resolved keys exist
            return _offline({**base, "method": "not_found", "summary": str(exc)}, "not_found")
        facts_body["subject"] = _subject(store, org, subject_key)
        if intent.types:
            facts_body["type_filter"] = sorted(intent.types)
    elif intent.method == "changes":
        facts_body = _facts_changes(store, org)
    else:  # search (Gemini only)
        nodes = store.nodes(org)
        facts_body = _facts_search(store, org, question, nodes)

    facts = {**base, **facts_body}
    facts["notes"] = [*notes, *facts.get("notes", [])]
    allowed = _allowed_keys(facts)
    filtered = f" (only {', '.join(sorted(intent.types))})" if intent.types else ""
    task = (f"Answer the question {question!r} about Salesforce org {org!r}: "
            + _TASKS[intent.method].format(subject=f"`{subject_key}`" if subject_key else "", filtered=filtered) + ".")
    w = writer.write(task, facts, allowed)
    return Answer(w.text, w.cited_keys, intent.method, facts, w.source, subject_key, list(w.rejected_citations),
                  [*notes, *w.notes])
