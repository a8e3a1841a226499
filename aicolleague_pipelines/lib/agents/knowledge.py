"""Knowledge base: what every component is, what depends on it, and what the rules say about it.

:func:`build_knowledge_base` turns one org's inventory, graph, findings and triage rules into a
:class:`KnowledgeBase`:

- ``entries``: component key → :class:`KBEntry` (summary, type, object, dependents and
  dependencies counts, documentation page, best-practice notes = the rules that fired on it
  with their title, description and how many times);
- ``faq``: one :class:`FaqEntry` per rule that fired — how many components, why it matters
  (the rule's description), how to fix (the findings' explanation), example components.

:meth:`KnowledgeBase.search` is a deterministic ranked keyword search over names, keys, objects,
summaries and notes. :meth:`to_json` / :meth:`from_json` round-trip exactly (sorted keys).

External placeholder nodes (referenced, not defined) are not entries.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aicolleague_pipelines.lib.agents.docs import GraphView, component_summary
from aicolleague_pipelines.lib.agents.model import SEVERITIES, Finding, Rule
from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.graph.model import CHILD_OF, GRANTS
from aicolleague_pipelines.lib.salesforce.model import OrgInventory

FORMAT_VERSION = 1


@dataclass
class Note:
    """A best-practice note: a triage rule that fired on the component."""

    rule_id: str
    title: str
    description: str
    severity: str
    count: int = 1


@dataclass
class KBEntry:
    key: str
    type: str
    name: str
    summary: str
    object: str | None = None
    label: str | None = None
    #: Components that depend on this one directly (children and permission grants excluded).
    dependents: int = 0
    dependencies: int = 0
    #: Up to 10 dependents' keys (sorted), for "who uses it" answers.
    top_dependents: list[str] = field(default_factory=list)
    #: Documentation page relative to the site's ``docs/`` (when built alongside).
    page: str | None = None
    notes: list[Note] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KBEntry":
        d = dict(d)
        d["notes"] = [Note(**n) for n in d.get("notes", [])]
        return cls(**d)


@dataclass
class FaqEntry:
    rule_id: str
    title: str
    severity: str
    category: str
    #: Distinct components with at least one finding of the rule.
    components: int
    findings: int
    why: str
    how_to_fix: str
    examples: list[str] = field(default_factory=list)

    @property
    def question(self) -> str:
        return f"Why does {self.rule_id} ({self.title}) fire on {self.components} components, and how do I fix it?"


@dataclass
class SearchHit:
    key: str
    score: float
    entry: KBEntry


@dataclass
class KnowledgeBase:
    org: str
    entries: dict[str, KBEntry] = field(default_factory=dict)
    faq: dict[str, FaqEntry] = field(default_factory=dict)

    # --- search ---------------------------------------------------------------------------
    def search_scored(self, query: str, limit: int = 10) -> list[SearchHit]:
        terms = _terms(query)
        if not terms:
            return []
        hits: list[SearchHit] = []
        phrase = " ".join(query.lower().split())
        for key, e in self.entries.items():
            name = e.name.lower()
            # A field's or rule's own name (after ``Object.``); the object part counts lower.
            short = name.split(".", 1)[1] if "." in name and e.object else name
            label = (e.label or "").lower()
            key_l = key.lower()
            obj = (e.object or "").lower()
            summary = e.summary.lower()
            notes = " ".join(f"{n.rule_id} {n.title}" for n in e.notes).lower()
            score = 0.0
            for t in terms:
                s = 0.0
                if t in (short, name, label):
                    s = 10.0
                elif short.startswith(t):
                    s = 7.0
                elif t in short:
                    s = 5.0
                elif t in label:
                    s = 4.0
                elif obj and (t == obj or obj.startswith(t)):
                    s = 3.0
                elif t in key_l:
                    s = 2.0
                if t in summary:
                    s += min(summary.count(t), 3) * 0.1
                if t in notes:
                    s += 0.2
                if s == 0:
                    score = 0.0
                    break  # every term must match somewhere
                score += s
            if score:
                if phrase == name or phrase == short:
                    score += 5.0
                # Among equals: the components people look up first, then the most depended on.
                score += _TYPE_BOOST.get(e.type, 0.0) - (0.5 if e.type == "ApexClass" and _is_test(e) else 0.0)
                score += min(e.dependents, 50) / 100
                hits.append(SearchHit(key, round(score, 4), e))
        hits.sort(key=lambda h: (-h.score, h.key))
        return hits[: max(0, limit)]

    def search(self, query: str, limit: int = 10) -> list[KBEntry]:
        """Entries matching every word of ``query``, best first (name > label/key > object >
        summary/notes; ties by dependents then key)."""
        return [h.entry for h in self.search_scored(query, limit)]

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "org": self.org,
            "entries": [self.entries[k].to_dict() for k in sorted(self.entries)],
            "faq": [asdict(self.faq[k]) for k in sorted(self.faq)],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "KnowledgeBase":
        d = json.loads(text)
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported knowledge base format {d.get('format')!r} (want {FORMAT_VERSION})")
        entries = {e["key"]: KBEntry.from_dict(e) for e in d.get("entries", [])}
        faq = {f["rule_id"]: FaqEntry(**f) for f in d.get("faq", [])}
        return cls(org=d["org"], entries=entries, faq=faq)

    def to_markdown(self, max_rows: int = 50) -> str:
        """The FAQ as Markdown (for a docs page or an asset's metadata)."""
        out = [f"## Recurring findings in `{self.org}`", ""]
        if not self.faq:
            return "\n".join([*out, "No findings."])
        order = sorted(self.faq.values(), key=lambda f: (-_sev(f.severity), -f.components, f.rule_id))
        for f in order[:max_rows]:
            out += [f"### {f.rule_id}: {f.title}", "",
                    f"*{f.severity}*, {f.components} components, {f.findings} findings.", "",
                    f"**Why it matters.** {f.why}", "", f"**How to fix.** {f.how_to_fix}", ""]
        return "\n".join(out)


_TYPE_BOOST = {"CustomObject": 0.6, "ApexClass": 0.5, "Flow": 0.5, "ApexTrigger": 0.5, "CustomField": 0.3}


def _is_test(e: KBEntry) -> bool:
    return e.name.lower().endswith("test") or "test class" in e.summary.lower()


def _sev(s: str) -> int:
    return SEVERITIES.index(s) if s in SEVERITIES else -1


_SPLIT = re.compile(r"[^a-z0-9_]+")


def _terms(query: str) -> list[str]:
    terms = [t.strip("_") for t in _SPLIT.split(query.lower())]
    return sorted({t for t in terms if t}, key=lambda t: (-len(t), t))


def build_knowledge_base(
    inventory: OrgInventory,
    graph: OrgGraph,
    findings: Sequence[Finding],
    rules: Iterable[Rule],
    *,
    page_of: dict[str, str] | None = None,
) -> KnowledgeBase:
    """Entries for every defined component, notes from fired rules, and the FAQ.

    ``page_of`` (``DocsSite.page_of``) links entries to their documentation pages.
    """
    view = GraphView(inventory, graph)
    rule_by_id = {r.id: r for r in rules}
    by_component: dict[str, list[Finding]] = defaultdict(list)
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_component[f.component].append(f)
        by_rule[f.rule_id].append(f)

    entries: dict[str, KBEntry] = {}
    keys = sorted({c.key for c in inventory.components}
                  | {k for k, n in graph.nodes.items() if not n.external})
    for key in keys:
        deps = view.dependents(key)
        dependencies = view.targets(key, exclude_kinds=(CHILD_OF, GRANTS))
        notes: list[Note] = []
        counts = Counter(f.rule_id for f in by_component.get(key, []))
        for rid in sorted(counts):
            rule = rule_by_id.get(rid)
            sample = by_component[key][0] if rule is None else None
            notes.append(Note(
                rule_id=rid,
                title=rule.title if rule else rid,
                description=rule.description if rule else (sample.explanation if sample else ""),
                severity=rule.severity if rule else (sample.severity if sample else "info"),
                count=counts[rid],
            ))
        label = view.attr(key, "label")
        entries[key] = KBEntry(
            key=key,
            type=view.type_of(key),
            name=view.name_of(key),
            summary=component_summary(view, key),
            object=view.object_of(key),
            label=str(label) if label else None,
            dependents=len(deps),
            dependencies=len(dependencies),
            top_dependents=deps[:10],
            page=(page_of or {}).get(key),
            notes=notes,
        )

    faq: dict[str, FaqEntry] = {}
    for rid in sorted(by_rule):
        fs = sorted(by_rule[rid], key=lambda f: (f.component, f.discriminator))
        rule = rule_by_id.get(rid)
        comps = sorted({f.component for f in fs})
        fix = Counter(f.explanation for f in fs if f.explanation).most_common(1)
        faq[rid] = FaqEntry(
            rule_id=rid,
            title=rule.title if rule else rid,
            severity=rule.severity if rule else fs[0].severity,
            category=(rule.category if rule else "") or fs[0].category,
            components=len(comps),
            findings=len(fs),
            why=(rule.description if rule else "") or (fs[0].explanation or fs[0].message),
            how_to_fix=fix[0][0] if fix else (rule.description if rule else ""),
            examples=comps[:5],
        )
    return KnowledgeBase(org=inventory.org, entries=entries, faq=faq)
