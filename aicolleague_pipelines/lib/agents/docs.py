"""Documentation agent: a MkDocs-compatible Markdown site of one org, built from its graph.

:func:`build_docs_site` writes, under ``out_dir``::

    mkdocs.yml                 site_name, nav, markdown_extensions (tables, toc, superfences
                               with a ``mermaid`` custom fence), extra_javascript
    docs/index.md              org summary, counts per type, links
    docs/objects/<Name>.md     one page per object (fields, who reads/writes each field,
                               validation rules, triggers & flows, permissions, platform
                               assets downstream, a Mermaid graph of local dependencies)
    docs/apex/<Name>.md        one page per Apex class and trigger (reads/writes/calls, callers,
                               findings)
    docs/flows/<Name>.md       one page per flow (trigger, object, reads/writes, subflows, Apex
                               actions, status)
    docs/changes.md            "what changed since the last run" (``ChangeSet.to_markdown()``)
    docs/findings.md           findings grouped by severity, linked to component pages
    docs/js/mermaid-init.js    turns the ``mermaid`` fences into diagrams in the browser

``out_dir`` belongs to the site: a ``.md`` file under ``docs/`` that this run did not write (the
page of a component removed since the last run) is deleted. Files are rewritten only when their
content changed. Output is deterministic (sorted, stable names). File names come from :func:`slugify`: only
``[A-Za-z0-9_.-]``, no leading dot, bounded length, and a short hash whenever the name had to
change or two names collide case-insensitively — a component name can never write outside
``out_dir`` (every path is also checked after resolution).

Text from the org (names, labels, descriptions, formulas) is escaped for Markdown and HTML; the
Mermaid diagrams use generated node ids (``n0``, ``n1`` …) and quoted, entity-encoded labels.

``writer`` (optional) is an object with ``write(task, facts, allowed_keys) -> obj with .text``
used for a one-paragraph summary per object page; without it (or when it fails) the summary is
the deterministic one from :func:`component_summary`.

Build the HTML site with ``mkdocs build -f <out_dir>/mkdocs.yml`` (``mkdocs`` and
``pymdown-extensions`` installed).
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aicolleague_pipelines.lib.agents.diff import is_platform_key
from aicolleague_pipelines.lib.agents.model import SEVERITIES, Finding
from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.graph.model import (
    APEX_ACTION,
    CALLS,
    CHILD_OF,
    EXTENDS,
    GRANTS,
    IMPLEMENTS,
    IMPORTS,
    LOOKUP_TO,
    QUERIES,
    READ,
    RECORD_TYPE_OF,
    REFERENCES,
    SHOWS,
    SUBFLOW,
    SYNCED_TO,
    TRIGGER_ON,
    WRITE,
    Edge,
    Node,
)
from aicolleague_pipelines.lib.salesforce.model import Component, OrgInventory

log = logging.getLogger(__name__)

#: Default Mermaid build loaded by the browser (None in ``build_docs_site`` → no script tag).
DEFAULT_MERMAID_JS = "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.min.js"
#: At most this many nodes in one Mermaid diagram (the centre included).
MERMAID_MAX_NODES = 30
#: Longest slug before the hash suffix.
_SLUG_MAX = 80

_SECTIONS = {
    "CustomObject": "objects",
    "ApexClass": "apex",
    "ApexTrigger": "apex",
    "Flow": "flows",
}

MERMAID_INIT_JS = """\
// Generated: render ```mermaid fences (pymdownx.superfences custom fence → <pre class="mermaid">).
(function () {
  function render() {
    if (typeof mermaid === "undefined") { return; }
    document.querySelectorAll("pre.mermaid").forEach(function (pre) {
      var div = document.createElement("div");
      div.className = "mermaid";
      div.textContent = pre.textContent;
      pre.replaceWith(div);
    });
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
    mermaid.run({ querySelector: "div.mermaid" });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
"""


# --- escaping -------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: Any) -> str:
    """Org text as inline Markdown: one line, HTML-escaped, Markdown specials backslashed."""
    s = " ".join(str(value if value is not None else "").split())
    s = html.escape(s, quote=False)
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_code(value: Any) -> str:
    """Org text as an inline code span (one line; the fence outgrows any backtick run)."""
    s = " ".join(str(value if value is not None else "").split())
    if not s:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or longest else ""
    # Python-Markdown's tables do not split a row on a pipe inside a code span.
    return f"{fence}{pad}{s}{pad}{fence}"


def md_block(text: str, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run in ``text``."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def slugify(name: str) -> str:
    """A safe file stem: ``[A-Za-z0-9_.-]`` only, no leading dot, bounded length."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    s = re.sub(r"\.{2,}", ".", s)[:_SLUG_MAX].strip("-.")
    return s or "component"


def _short_hash(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _relpath(target: str, start_dir: str) -> str:
    return Path(os.path.relpath(target, start_dir or ".")).as_posix()


# --- a read-only view of the graph ----------------------------------------------------------
class GraphView:
    """Incoming/outgoing edge indexes over an :class:`OrgGraph` plus the inventory's components."""

    def __init__(self, inventory: OrgInventory | None, graph: OrgGraph) -> None:
        self.graph = graph
        self.nodes: dict[str, Node] = graph.nodes
        self.components: dict[str, Component] = inventory.by_key() if inventory else {}
        self.out: dict[str, list[Edge]] = defaultdict(list)
        self.inc: dict[str, list[Edge]] = defaultdict(list)
        for e in sorted(graph.edges, key=lambda e: (e.source, e.target, e.kind, e.evidence, e.access or "")):
            self.out[e.source].append(e)
            self.inc[e.target].append(e)
        self.children: dict[str, list[str]] = defaultdict(list)
        for key, comp in self.components.items():
            if comp.parent:
                self.children[comp.parent].append(key)
        for e in graph.edges:
            if e.kind in (CHILD_OF, RECORD_TYPE_OF) and e.source not in self.children[e.target]:
                self.children[e.target].append(e.source)
        for lst in self.children.values():
            lst.sort()

    def type_of(self, key: str) -> str:
        node = self.nodes.get(key)
        if node is not None:
            return node.type
        return key.partition(":")[0]

    def name_of(self, key: str) -> str:
        node = self.nodes.get(key)
        return node.name if node is not None else key.partition(":")[2]

    def defined(self, key: str) -> bool:
        node = self.nodes.get(key)
        return key in self.components or (node is not None and not node.external)

    def attr(self, key: str, name: str, default: Any = None) -> Any:
        comp = self.components.get(key)
        if comp is not None and name in comp.attributes:
            return comp.attributes[name]
        node = self.nodes.get(key)
        if node is not None and name in node.attrs:
            return node.attrs[name]
        return default

    def sources(self, key: str, *, kinds: Iterable[str] | None = None, access: str | None = None,
                exclude_kinds: Iterable[str] = ()) -> list[str]:
        ks = set(kinds) if kinds is not None else None
        ex = set(exclude_kinds)
        out = {e.source for e in self.inc.get(key, ())
               if (ks is None or e.kind in ks) and e.kind not in ex and (access is None or e.access == access)}
        return sorted(out)

    def targets(self, key: str, *, kinds: Iterable[str] | None = None, access: str | None = None,
                exclude_kinds: Iterable[str] = ()) -> list[str]:
        ks = set(kinds) if kinds is not None else None
        ex = set(exclude_kinds)
        out = {e.target for e in self.out.get(key, ())
               if (ks is None or e.kind in ks) and e.kind not in ex and (access is None or e.access == access)}
        return sorted(out)

    def dependents(self, key: str) -> list[str]:
        """Components that depend on ``key`` directly (children and grants excluded)."""
        return self.sources(key, exclude_kinds=(CHILD_OF, GRANTS))

    def object_of(self, key: str) -> str | None:
        """The object a field/rule/trigger/flow belongs to (its API name), if any."""
        type_ = self.type_of(key)
        name = self.name_of(key)
        if type_ == "CustomObject":
            return name
        comp = self.components.get(key)
        if comp is not None and comp.parent and comp.parent.startswith("CustomObject:"):
            return comp.parent.partition(":")[2]
        if type_ == "ApexTrigger":
            return self.attr(key, "object")
        if type_ == "Flow":
            return self.attr(key, "trigger_object")
        if type_ in ("CustomField", "ValidationRule", "RecordType", "WorkflowRule", "WorkflowFieldUpdate") \
                and "." in name:
            return name.split(".", 1)[0]
        if type_ == "Layout" and "-" in name:
            return name.split("-", 1)[0]
        return None


def component_summary(view: GraphView, key: str) -> str:
    """A deterministic one-paragraph summary of a component (plain text, no Markdown)."""
    type_ = view.type_of(key)
    name = view.name_of(key)
    comp = view.components.get(key)
    desc = (comp.description or "").strip() if comp else ""
    parts: list[str] = []
    if type_ == "CustomObject":
        label = view.attr(key, "label") or name
        kind = view.attr(key, "object_kind") or ("custom" if name.endswith("__c") else "standard")
        kids = view.children.get(key, [])
        fields = [k for k in kids if view.type_of(k) == "CustomField" and view.defined(k)]
        vrs = [k for k in kids if view.type_of(k) == "ValidationRule"]
        automations = view.sources(key, kinds=(TRIGGER_ON,))
        writers = _component_sources(view, [key, *fields], WRITE)
        readers = _component_sources(view, [key, *fields], READ)
        parts.append(
            f"{label} ({name}) is a {kind} object with {len(fields)} documented fields, "
            f"{len(vrs)} validation rules and {len(automations)} record-triggered automations."
        )
        parts.append(f"{len(readers)} components read its records or fields and {len(writers)} write them.")
    elif type_ in ("ApexClass", "ApexTrigger"):
        reads = view.targets(key, access=READ, exclude_kinds=(GRANTS,))
        writes = view.targets(key, access=WRITE, exclude_kinds=(GRANTS,))
        calls = view.targets(key, kinds=(CALLS,))
        callers = view.sources(key, kinds=(CALLS, APEX_ACTION, IMPORTS))
        what = "Apex trigger" if type_ == "ApexTrigger" else (
            "Apex test class" if view.attr(key, "is_test") else "Apex class")
        on = f" on {view.attr(key, 'object')}" if type_ == "ApexTrigger" and view.attr(key, "object") else ""
        parts.append(
            f"{what} {name}{on}: reads {len(reads)} fields or objects, writes {len(writes)}, "
            f"calls {len(calls)} classes and is called by {len(callers)} components."
        )
    elif type_ == "Flow":
        obj = view.attr(key, "trigger_object")
        trig = view.attr(key, "trigger_type")
        status = (comp.status if comp else None) or view.attr(key, "status") or "unknown status"
        ptype = view.attr(key, "process_type") or "Flow"
        trigger = f", triggered {trig} on {obj}" if obj else ""
        parts.append(f"{ptype} {name} ({status}){trigger}: reads "
                     f"{len(view.targets(key, access=READ))} fields or objects and writes "
                     f"{len(view.targets(key, access=WRITE))}.")
    else:
        label = view.attr(key, "label")
        obj = view.object_of(key)
        where = f" on {obj}" if obj and type_ != "CustomObject" else ""
        dtype = view.attr(key, "data_type")
        parts.append(f"{type_} {name}{where}" + (f" ({dtype})" if dtype else "")
                     + (f", labelled {label!r}" if label else "") + ".")
        parts.append(f"{len(view.dependents(key))} components depend on it.")
    if desc:
        parts.append(f"Description: {' '.join(desc.split())}")
    return " ".join(parts)


def _component_sources(view: GraphView, keys: Sequence[str], access: str) -> list[str]:
    out: set[str] = set()
    for k in keys:
        out.update(view.sources(k, access=access, exclude_kinds=(GRANTS,)))
    return sorted(out - set(keys))


# --- the site ----------------------------------------------------------------------------------
@dataclass
class DocsSite:
    root: Path
    #: Every Markdown page written (absolute paths, sorted).
    pages: list[Path]
    #: ``docs/index.md``.
    index: Path
    #: ``mkdocs.yml``.
    config: Path
    #: Component key → page path relative to ``docs/``.
    page_of: dict[str, str] = field(default_factory=dict)
    #: Page path relative to ``docs/`` → title.
    titles: dict[str, str] = field(default_factory=dict)
    #: Non-fatal problems (a writer that failed, a page name that had to change …).
    notes: list[str] = field(default_factory=list)

    @property
    def docs_dir(self) -> Path:
        return self.root / "docs"

    def markdown_pages(self, title_prefix: str = "") -> dict[str, str]:
        """Title → Markdown of every page (for :func:`confluence.publish`); titles are unique."""
        out: dict[str, str] = {}
        for rel, title in sorted(self.titles.items()):
            t = f"{title_prefix}{title}"
            if t in out:
                t = f"{t} ({rel})"
            out[t] = (self.docs_dir / rel).read_text(encoding="utf-8")
        return out


class _Site:
    def __init__(self, view: GraphView, findings: Sequence[Finding]) -> None:
        self.view = view
        self.findings_by_component: dict[str, list[Finding]] = defaultdict(list)
        for f in sorted(findings, key=_finding_order):
            self.findings_by_component[f.component].append(f)
        self.page_of: dict[str, str] = {}
        self.notes: list[str] = []

    def assign(self, keys: Iterable[str]) -> None:
        """Stable, collision-free page paths (case-insensitively unique)."""
        used: set[str] = set()
        for key in sorted(keys):
            section = _SECTIONS[self.view.type_of(key)]
            name = self.view.name_of(key)
            slug = slugify(name)
            if slug != name or f"{section}/{slug}".lower() in used:
                slug = f"{slug}-{_short_hash(key)}"
            while f"{section}/{slug}".lower() in used:  # pragma: no cover - hash collision
                slug = f"{slug}-{_short_hash(slug)}"
            used.add(f"{section}/{slug}".lower())
            self.page_of[key] = f"{section}/{slug}.md"

    def link(self, key: str, from_page: str, label: str | None = None) -> str:
        """``[`Name`](rel.md)`` when the component has a page, else ``Type:Name`` as code."""
        text = md_code(label if label is not None else self._label(key))
        page = self.page_of.get(key)
        if page is None:
            return text
        return f"[{text}]({_relpath(page, os.path.dirname(from_page))})"

    def _label(self, key: str) -> str:
        return key

    def links(self, keys: Iterable[str], from_page: str, limit: int = 40) -> str:
        keys = list(keys)
        shown = [self.link(k, from_page) for k in keys[:limit]]
        if len(keys) > limit:
            shown.append(f"… (+{len(keys) - limit})")
        return ", ".join(shown) if shown else "—"


def _finding_order(f: Finding) -> tuple:
    sev = SEVERITIES.index(f.severity) if f.severity in SEVERITIES else -1
    return (-sev, f.rule_id, f.component, f.discriminator, f.id)


def build_docs_site(
    inventory: OrgInventory,
    graph: OrgGraph,
    out_dir: str | os.PathLike[str],
    *,
    findings: Sequence[Finding] | None = None,
    changes_md: str | None = None,
    writer: Any = None,
    mermaid_js: str | None = DEFAULT_MERMAID_JS,
) -> DocsSite:
    """Write the site (see the module docstring) and return what was written."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    root_real = root.resolve()
    docs = root / "docs"
    view = GraphView(inventory, graph)
    site = _Site(view, findings or [])
    documented = [c.key for c in inventory.components if c.type in _SECTIONS]
    site.assign(documented)

    rendered: dict[str, tuple[str, str]] = {}  # rel path → (title, markdown)
    for key in sorted(documented):
        rel = site.page_of[key]
        type_ = view.type_of(key)
        if type_ == "CustomObject":
            body = _object_page(site, key, rel, writer)
        elif type_ in ("ApexClass", "ApexTrigger"):
            body = _apex_page(site, key, rel)
        else:
            body = _flow_page(site, key, rel)
        rendered[rel] = (view.name_of(key), body)
    rendered["index.md"] = ("Home", _index_page(site, inventory, graph, findings or []))
    rendered["changes.md"] = ("What changed", _changes_page(changes_md))
    rendered["findings.md"] = ("Findings", _findings_page(site, findings or []))

    written: list[Path] = []
    for rel, (_title, text) in sorted(rendered.items()):
        written.append(_write(root_real, docs / rel, text))
    _write(root_real, docs / "js" / "mermaid-init.js", MERMAID_INIT_JS)
    # Pages of components that no longer exist must not linger from an earlier run.
    keep = {p.resolve() for p in written}
    if docs.is_dir():
        for p in sorted(docs.rglob("*.md")):
            if not p.is_symlink() and p.resolve() not in keep:
                p.unlink()
    config = _write(root_real, root / "mkdocs.yml", _mkdocs_yml(inventory.org, site, rendered, mermaid_js))
    return DocsSite(
        root=root,
        pages=sorted(written),
        index=docs / "index.md",
        config=config,
        page_of=dict(sorted(site.page_of.items())),
        titles={rel: t for rel, (t, _b) in sorted(rendered.items())},
        notes=site.notes,
    )


def _write(root_real: Path, path: Path, text: str) -> Path:
    target = path.resolve()
    if not target.is_relative_to(root_real):
        raise ValueError(f"refusing to write outside the site folder: {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text if text.endswith("\n") else text + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != data:
        target.write_text(data, encoding="utf-8")
    return path


def _nav_title(title: str) -> str:
    """Nav titles reach the theme's HTML unescaped: keep them to harmless characters."""
    return re.sub(r"[<>&\"'`\\]", "_", " ".join(title.split()))[:120] or "component"


def _mkdocs_yml(org: str, site: _Site, rendered: dict[str, tuple[str, str]], mermaid_js: str | None) -> str:
    def section(prefix: str, type_: str | None = None) -> list[dict[str, str]]:
        items = []
        for key, rel in site.page_of.items():
            if rel.startswith(prefix) and (type_ is None or site.view.type_of(key) == type_):
                items.append((_nav_title(rendered[rel][0]), rel))
        return [{title: rel} for title, rel in sorted(items, key=lambda t: (t[0].lower(), t[1]))]

    nav: list[Any] = [{"Home": "index.md"}, {"What changed": "changes.md"}, {"Findings": "findings.md"}]
    for title, items in (
        ("Objects", section("objects/")),
        ("Apex classes", section("apex/", "ApexClass")),
        ("Apex triggers", section("apex/", "ApexTrigger")),
        ("Flows", section("flows/")),
    ):
        if items:
            nav.append({title: items})
    cfg: dict[str, Any] = {
        "site_name": f"{org} — Salesforce org documentation",
        "docs_dir": "docs",
        "use_directory_urls": False,
        "nav": nav,
        "markdown_extensions": [
            "tables",
            {"toc": {"permalink": True}},
            {"pymdownx.superfences": {"custom_fences": [{"name": "mermaid", "class": "mermaid"}]}},
        ],
        "extra_javascript": ([mermaid_js] if mermaid_js else []) + ["js/mermaid-init.js"],
    }
    header = "# Generated by aicolleague (documentation agent): do not edit by hand.\n"
    return header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=1000)


# --- mermaid ---------------------------------------------------------------------------------
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.:/()\-]")


def mermaid_label(text: str) -> str:
    """A quoted Mermaid label: safe characters kept, everything else as ``#code;`` entities."""
    text = " ".join(text.split())[:120]
    return '"' + "".join(ch if _MERMAID_SAFE.fullmatch(ch) else f"#{ord(ch)};" for ch in text) + '"'


def mermaid_graph(center: str, edges: Iterable[tuple[str, str, str]], view: GraphView,
                  max_nodes: int = MERMAID_MAX_NODES) -> str:
    """``graph LR`` of ``(source, target, kind)`` edges around ``center``, at most ``max_nodes``."""
    edges = sorted(set(edges))
    order: list[str] = [center]
    for s, t, _k in edges:
        for k in (s, t):
            if k not in order:
                order.append(k)
    kept = order[:max_nodes]
    dropped = len(order) - len(kept)
    ids = {k: f"n{i}" for i, k in enumerate(kept)}
    lines = ["graph LR"]
    for k in kept:
        lines.append(f"  {ids[k]}[{mermaid_label(f'{view.type_of(k)}: {view.name_of(k)}')}]")
    seen: set[tuple[str, str, str]] = set()
    for s, t, kind in edges:
        if s in ids and t in ids and (s, t, kind) not in seen:
            seen.add((s, t, kind))
            lines.append(f"  {ids[s]} -->|{re.sub(r'[^a-z_]', '', kind)}| {ids[t]}")
    if dropped:
        lines.append(f"  more[{mermaid_label(f'… {dropped} more not shown')}]")
    lines.append(f"  style {ids[center]} stroke-width:3px")
    return md_block("\n".join(lines), "mermaid")


_KIND_PRIORITY = {k: i for i, k in enumerate(
    (TRIGGER_ON, "dml", QUERIES, REFERENCES, APEX_ACTION, CALLS, SUBFLOW, LOOKUP_TO, SYNCED_TO,
     IMPORTS, "dynamic", EXTENDS, IMPLEMENTS, SHOWS, GRANTS))}


def _bounded(edges: Iterable[tuple[str, str, str]], center: str, max_nodes: int) -> list[tuple[str, str, str]]:
    """Keep the edges of the ``max_nodes - 1`` most relevant neighbours (by edge kind, name)."""
    best: dict[str, tuple[int, str]] = {}
    edges = list(set(edges))
    for s, t, k in edges:
        other = t if s == center else s
        rank = (_KIND_PRIORITY.get(k, 50), other)
        if other not in best or rank < best[other]:
            best[other] = rank
    keep = {k for k, _ in sorted(best.items(), key=lambda kv: kv[1])[: max_nodes - 1]}
    dropped = len(best) - len(keep)
    out = [e for e in edges if (e[0] if e[1] == center else e[1]) in keep]
    return sorted(out) + ([("…", "…", str(dropped))] if dropped else [])


def _diagram(site: _Site, center: str, edges: Iterable[tuple[str, str, str]]) -> str:
    bounded = _bounded(edges, center, MERMAID_MAX_NODES)
    extra = [e for e in bounded if e[0] == "…"]
    real = [e for e in bounded if e[0] != "…"]
    text = mermaid_graph(center, real, site.view)
    if extra:
        text += f"\n\n*{extra[0][2]} more related components are not drawn.*"
    return text


# --- pages -----------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(md_code(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return md_text(value)


def _findings_section(site: _Site, keys: Sequence[str], rel: str) -> list[str]:
    rows = []
    for k in keys:
        for f in site.findings_by_component.get(k, []):
            rows.append((f, k))
    if not rows:
        return ["## Findings", "", "No findings."]
    out = ["## Findings", "", "| Severity | Rule | Component | Message |", "|---|---|---|---|"]
    for f, k in rows:
        out.append(f"| {md_text(f.severity)} | {md_code(f.rule_id)} | {site.link(k, rel)} | {md_text(f.message)} |")
    return out


def _summary(site: _Site, key: str, writer: Any) -> str:
    text = component_summary(site.view, key)
    if writer is None:
        return md_text(text)
    view = site.view
    autos = view.sources(key, kinds=(TRIGGER_ON,))
    members = [key, *view.children.get(key, [])]
    found = [(k, f) for k in members for f in site.findings_by_component.get(k, [])]
    # The facts follow the writers' convention (lib/llm/writer.py): summary, sections of
    # {title, items: [{key, detail}], total}, notes; extra keys are context.
    facts: dict[str, Any] = {
        "component": key,
        "type": view.type_of(key),
        "label": view.attr(key, "label"),
        "description": (view.components[key].description if key in view.components else None),
        "summary": text,
        "sections": [
            {"title": "Record-triggered automations", "total": len(autos),
             "items": [{"key": a, "detail": " ".join(str(x) for x in (
                 view.type_of(a), view.attr(a, "trigger_type"), ", ".join(view.attr(a, "events") or [])) if x)}
                       for a in autos]},
            {"title": "Findings", "total": len(found),
             "items": [{"key": k, "detail": f"{f.severity} {f.rule_id}: {f.message}"} for k, f in found[:10]]},
        ],
    }
    allowed = {key, *autos, *(k for k, _f in found[:10])}
    try:
        result = writer.write(
            "Write a short summary of this Salesforce object for its documentation page: what it "
            "holds, what automates it, what to watch out for. Use only the facts given.",
            facts, allowed,
        )
        out = str(getattr(result, "text", "") or "").strip()
    except Exception as exc:  # a failing writer must not lose the page
        site.notes.append(f"summary writer failed on {key}: {type(exc).__name__}")
        return md_text(text)
    if not out:
        return md_text(text)
    # Keep the writer's Markdown (paragraph, bullets) but never raw HTML or page headings.
    lines = [re.sub(r"^#+\s*", "", ln.rstrip()) for ln in html.escape(out, quote=False).splitlines()]
    return "\n".join(lines)


def _object_page(site: _Site, key: str, rel: str, writer: Any) -> str:
    view = site.view
    name = view.name_of(key)
    label = view.attr(key, "label") or name
    kids = view.children.get(key, [])
    fields = [k for k in kids if view.type_of(k) == "CustomField"]
    out = [f"# {md_text(label)} ({md_text(name)})", "", _summary(site, key, writer), ""]
    comp = view.components.get(key)
    facts = [("API name", md_code(name)), ("Kind", _cell(view.attr(key, "object_kind"))),
             ("Sharing model", _cell(view.attr(key, "sharing_model"))),
             ("Fields", f"{len(fields)} ({sum(1 for f in fields if view.defined(f))} defined in the org)")]
    if comp is not None and comp.source:
        facts.append(("Source", md_code(comp.source)))
    out += ["| Fact | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts], ""]

    # Fields
    out += ["## Fields", ""]
    if fields:
        out += ["| API name | Type | Label | Formula | Picklist values | References | Compliance |",
                "|---|---|---|---|---|---|---|"]
        for f in fields:
            fname = view.name_of(f).split(".", 1)[-1]
            compliance = ", ".join(str(x) for x in (view.attr(f, "compliance_group"),
                                                    view.attr(f, "security_classification")) if x)
            picks = view.attr(f, "picklist_values") or []
            vs = view.attr(f, "value_set")
            picks_cell = _cell(list(picks)[:25]) + (f" (+{len(picks) - 25})" if len(picks) > 25 else "")
            if vs:
                picks_cell = (picks_cell + " " if picks_cell else "") + f"value set {md_code(vs)}"
            ext = "" if view.defined(f) else " *(not defined in the org)*"
            out.append(
                f"| {md_code(fname)}{ext} | {_cell(view.attr(f, 'data_type'))} | {_cell(view.attr(f, 'label'))} "
                f"| {md_code(view.attr(f, 'formula') or '')} | {picks_cell} "
                f"| {_cell(view.attr(f, 'reference_to'))} | {md_text(compliance)} |"
            )
        out += ["", "### Who reads and writes each field", "",
                "| Field | Read by | Written by |", "|---|---|---|"]
        for f in fields:
            readers = [k for k in view.sources(f, access=READ, exclude_kinds=(GRANTS,)) if k not in kids]
            writers = [k for k in view.sources(f, access=WRITE, exclude_kinds=(GRANTS,)) if k not in kids]
            readers += [k for k in view.sources(f, access=READ, exclude_kinds=(GRANTS,)) if k in kids]
            writers += [k for k in view.sources(f, access=WRITE, exclude_kinds=(GRANTS,)) if k in kids]
            fname = view.name_of(f).split(".", 1)[-1]
            out.append(f"| {md_code(fname)} | {site.links(readers, rel)} | {site.links(writers, rel)} |")
    else:
        out.append("No fields known.")
    out.append("")

    # Record-level access
    rec_read = view.sources(key, access=READ, exclude_kinds=(GRANTS,))
    rec_write = view.sources(key, access=WRITE, exclude_kinds=(GRANTS,))
    out += ["## Who reads and writes its records", "",
            f"- **Reads** (queries): {site.links(rec_read, rel)}",
            f"- **Writes** (DML, record creates/updates): {site.links(rec_write, rel)}", ""]

    # Validation rules
    vrs = [k for k in kids if view.type_of(k) == "ValidationRule"]
    out += ["## Validation rules", ""]
    if not vrs:
        out.append("None.")
    for vr in vrs:
        c = view.components.get(vr)
        active = c.active if c is not None else view.attr(vr, "active")
        state = "active" if active else ("inactive" if active is False else "status unknown")
        out += [f"### {md_text(view.name_of(vr).split('.', 1)[-1])} ({state})", ""]
        msg = view.attr(vr, "error_message")
        if msg:
            out += [f"Error message: {md_text(msg)}", ""]
        formula = view.attr(vr, "error_condition_formula")
        if formula:
            out += [md_block(str(formula), "text"), ""]
    out.append("")

    # Triggers, flows and other automation
    autos = view.sources(key, kinds=(TRIGGER_ON,))
    workflow = [k for k in kids if view.type_of(k) in ("WorkflowRule", "WorkflowFieldUpdate")]
    out += ["## Triggers and flows", ""]
    if autos or workflow:
        out += ["| Component | Type | When | Active |", "|---|---|---|---|"]
        for a in [*autos, *workflow]:
            t = view.type_of(a)
            if t == "ApexTrigger":
                when = ", ".join(view.attr(a, "events") or [])
            elif t == "Flow":
                when = " ".join(str(x) for x in (view.attr(a, "trigger_type"), view.attr(a, "record_trigger_type")) if x)
            else:
                when = ""
            c = view.components.get(a)
            active = c.active if c is not None else None
            out.append(f"| {site.link(a, rel)} | {md_text(t)} | {md_text(when)} | {_cell(active)} |")
    else:
        out.append("None.")
    out.append("")

    # Permissions
    out += ["## Permission sets and profiles", ""]
    grants: dict[str, dict[str, Any]] = {}
    for e in view.inc.get(key, []):
        if e.kind == GRANTS:
            g = grants.setdefault(e.source, {"object": set(), "read": set(), "edit": set()})
            g["object"].add("edit" if e.access == WRITE else "read" if e.access == READ else "")
    for f in fields:
        for e in view.inc.get(f, []):
            if e.kind == GRANTS:
                g = grants.setdefault(e.source, {"object": set(), "read": set(), "edit": set()})
                g["edit" if e.access == WRITE else "read"].add(f)
    if grants:
        out += ["| Granted by | Type | Object access | Fields readable | Fields editable |", "|---|---|---|---|---|"]
        for g_key in sorted(grants):
            g = grants[g_key]
            obj_access = "edit" if "edit" in g["object"] else "read" if "read" in g["object"] else "—"
            out.append(f"| {site.link(g_key, rel)} | {md_text(view.type_of(g_key))} | {obj_access} "
                       f"| {len(g['read'] - g['edit'])} | {len(g['edit'])} |")
    else:
        out.append("No permission set or profile in the extraction grants access.")
    out.append("")

    # Platform assets downstream
    platform = _platform_downstream(view, [key, *fields])
    out += ["## Platform assets downstream", ""]
    if platform:
        out += ["| Asset | Type | Via |", "|---|---|---|"]
        for pk, via in platform:
            out.append(f"| {md_code(view.name_of(pk))} | {md_text(view.type_of(pk))} | {md_code(via)} |")
    else:
        out.append("No warehouse, BI or SaaS asset is known to use this object.")
    out.append("")

    # Diagram
    edges: list[tuple[str, str, str]] = []
    members = set([key, *kids])
    for m in sorted(members):
        for e in view.inc.get(m, []):
            if e.source not in members and e.kind not in (GRANTS, SHOWS):
                edges.append((e.source, key, e.kind))
        for e in view.out.get(m, []):
            if e.target not in members and e.kind not in (CHILD_OF,):
                tgt = e.target
                # A field of another object: draw its object.
                obj = view.object_of(tgt) if view.type_of(tgt) == "CustomField" else None
                if obj:
                    tgt = f"CustomObject:{obj}"
                if tgt != key:
                    edges.append((key, tgt, e.kind))
    out += ["## Local dependencies", "", _diagram(site, key, edges), ""]
    out += _findings_section(site, [key, *kids], rel)
    return "\n".join(out)


def _platform_downstream(view: GraphView, start: Sequence[str], limit: int = 50) -> list[tuple[str, str]]:
    """Platform nodes reaching ``start`` through synced_to/queries/shows/references edges."""
    seen: dict[str, str] = {}
    frontier = list(start)
    while frontier and len(seen) < limit:
        nxt: list[str] = []
        for k in frontier:
            for e in view.inc.get(k, []):
                if e.kind in (SYNCED_TO, QUERIES, SHOWS, REFERENCES) and is_platform_key(e.source) \
                        and e.source not in seen:
                    seen[e.source] = f"{e.kind} {view.name_of(k)}"
                    nxt.append(e.source)
        frontier = sorted(nxt)
    return sorted(seen.items())[:limit]


def _access_table(site: _Site, key: str, rel: str) -> list[str]:
    view = site.view
    out: list[str] = []
    for title, access in (("Reads", READ), ("Writes", WRITE)):
        targets = view.targets(key, access=access, exclude_kinds=(GRANTS,))
        out += [f"## {title}", ""]
        if not targets:
            out += ["Nothing found.", ""]
            continue
        by_obj: dict[str, list[str]] = defaultdict(list)
        for t in targets:
            by_obj[view.object_of(t) or "—"].append(t)
        out += ["| Object | Fields and objects |", "|---|---|"]
        for obj in sorted(by_obj):
            obj_key = f"CustomObject:{obj}"
            obj_cell = site.link(obj_key, rel, obj) if obj != "—" else "—"
            out.append(f"| {obj_cell} | {site.links(by_obj[obj], rel)} |")
        out.append("")
    return out


def _apex_page(site: _Site, key: str, rel: str) -> str:
    view = site.view
    name = view.name_of(key)
    type_ = view.type_of(key)
    comp = view.components.get(key)
    kind = "Apex trigger" if type_ == "ApexTrigger" else "Apex class"
    out = [f"# {md_text(name)}", "", md_text(component_summary(view, key)), ""]
    facts = [("Type", kind), ("API version", _cell(comp.api_version if comp else None)),
             ("Status", _cell(comp.status if comp else None)), ("Test class", _cell(view.attr(key, "is_test")))]
    if type_ == "ApexTrigger":
        obj = view.attr(key, "object")
        facts.append(("Object", site.link(f"CustomObject:{obj}", rel, obj) if obj else ""))
        facts.append(("Events", md_text(", ".join(view.attr(key, "events") or []))))
    if comp is not None and comp.source:
        facts.append(("Source", md_code(comp.source)))
    if comp is not None and comp.has_description:
        facts.append(("Description", md_text(comp.description)))
    out += ["| Fact | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts], ""]
    out += _access_table(site, key, rel)
    calls = view.targets(key, kinds=(CALLS,))
    ext = view.targets(key, kinds=(EXTENDS, IMPLEMENTS))
    callers = view.sources(key, kinds=(CALLS, APEX_ACTION, IMPORTS))
    refs = [k for k in view.sources(key, exclude_kinds=(GRANTS, CHILD_OF)) if k not in callers]
    granted = view.sources(key, kinds=(GRANTS,))
    out += ["## Calls", "", f"- **Calls**: {site.links(calls, rel)}",
            f"- **Extends / implements**: {site.links(ext, rel)}", "",
            "## Who calls it", "", f"- **Called by**: {site.links(callers, rel)}",
            f"- **Other references**: {site.links(refs, rel)}",
            f"- **Access granted by**: {site.links(granted, rel)}", ""]
    edges = [(key, e.target, e.kind) for e in view.out.get(key, []) if e.kind != GRANTS]
    edges += [(e.source, key, e.kind) for e in view.inc.get(key, []) if e.kind not in (GRANTS,)]
    out += ["## Dependencies", "", _diagram(site, key, _collapse_fields(view, key, edges)), ""]
    out += _findings_section(site, [key], rel)
    return "\n".join(out)


def _collapse_fields(view: GraphView, center: str, edges: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Draw fields as their objects (a class touching 20 fields of one object is one arrow)."""
    out = set()
    for s, t, k in edges:
        if s == center and view.type_of(t) == "CustomField" and view.object_of(t):
            t = f"CustomObject:{view.object_of(t)}"
        if s != t:
            out.add((s, t, k))
    return sorted(out)


def _flow_page(site: _Site, key: str, rel: str) -> str:
    view = site.view
    name = view.name_of(key)
    comp = view.components.get(key)
    label = view.attr(key, "label") or name
    obj = view.attr(key, "trigger_object")
    active = comp.active if comp is not None else None
    out = [f"# {md_text(label)} ({md_text(name)})", "", md_text(component_summary(view, key)), ""]
    facts = [
        ("Status", f"{'active' if active else 'inactive' if active is False else 'unknown'}"
                   + (f" ({md_text(comp.status)})" if comp is not None and comp.status else "")),
        ("Process type", _cell(view.attr(key, "process_type"))),
        ("Trigger", md_text(" ".join(str(x) for x in (view.attr(key, "trigger_type"),
                                                      view.attr(key, "record_trigger_type")) if x)) or "—"),
        ("Object", site.link(f"CustomObject:{obj}", rel, obj) if obj else "—"),
        ("Version", _cell(view.attr(key, "version_number") or view.attr(key, "active_version"))),
        ("API version", _cell(comp.api_version if comp else None)),
    ]
    if comp is not None and comp.source:
        facts.append(("Source", md_code(comp.source)))
    if comp is not None and comp.has_description:
        facts.append(("Description", md_text(comp.description)))
    out += ["| Fact | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts], ""]
    out += _access_table(site, key, rel)
    out += ["## Subflows and Apex actions", "",
            f"- **Subflows**: {site.links(view.targets(key, kinds=(SUBFLOW,)), rel)}",
            f"- **Apex actions**: {site.links(view.targets(key, kinds=(APEX_ACTION,)), rel)}",
            f"- **Used as a subflow by**: {site.links(view.sources(key, kinds=(SUBFLOW,)), rel)}", ""]
    edges = [(key, e.target, e.kind) for e in view.out.get(key, []) if e.kind != GRANTS]
    edges += [(e.source, key, e.kind) for e in view.inc.get(key, []) if e.kind != GRANTS]
    out += ["## Dependencies", "", _diagram(site, key, _collapse_fields(view, key, edges)), ""]
    out += _findings_section(site, [key], rel)
    return "\n".join(out)


def _index_page(site: _Site, inventory: OrgInventory, graph: OrgGraph, findings: Sequence[Finding]) -> str:
    view = site.view
    rel = "index.md"
    out = [f"# Org {md_text(inventory.org)}", "",
           f"Extracted {md_text(inventory.extracted_at)} from a {md_text(inventory.source_kind)} source"
           + (f", API version {md_text(inventory.api_version)}" if inventory.api_version else "") + ".", "",
           f"{len(inventory.components)} components, {len(graph.edges)} dependencies, "
           f"{len(findings)} findings.", "",
           "- [What changed since the last run](changes.md)", "- [Findings](findings.md)", "",
           "## Components by type", "", "| Type | Count |", "|---|---|"]
    for t, n in inventory.counts_by_type().items():
        out.append(f"| {md_text(t)} | {n} |")
    out.append("")
    sev = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        sev[f.severity] = sev.get(f.severity, 0) + 1
    out += ["## Findings by severity", "", "| Severity | Count |", "|---|---|",
            *[f"| {md_text(s)} | {n} |" for s, n in sev.items()], ""]
    for title, types in (("Objects", ("CustomObject",)), ("Apex classes", ("ApexClass",)),
                         ("Apex triggers", ("ApexTrigger",)), ("Flows", ("Flow",))):
        keys = sorted(k for k in site.page_of if view.type_of(k) in types)
        if not keys:
            continue
        out += [f"## {title}", "", "| Component | Dependents | Findings |", "|---|---|---|"]
        for k in keys:
            out.append(f"| {site.link(k, rel, view.name_of(k))} | {len(view.dependents(k))} "
                       f"| {len(site.findings_by_component.get(k, []))} |")
        out.append("")
    return "\n".join(out)


def _changes_page(changes_md: str | None) -> str:
    out = ["# What changed since the last run", ""]
    if changes_md and changes_md.strip():
        out.append(changes_md.strip())
    else:
        out.append("No earlier run to compare with.")
    return "\n".join(out)


def _findings_page(site: _Site, findings: Sequence[Finding]) -> str:
    rel = "findings.md"
    out = ["# Findings", "", f"{len(findings)} findings."]
    by_sev: dict[str, list[Finding]] = defaultdict(list)
    for f in sorted(findings, key=_finding_order):
        by_sev[f.severity].append(f)
    for sev in [*reversed(SEVERITIES), *sorted(set(by_sev) - set(SEVERITIES))]:
        rows = by_sev.get(sev)
        if not rows:
            continue
        out += ["", f"## {md_text(sev.capitalize())} ({len(rows)})", "",
                "| Rule | Component | Message | Evidence |", "|---|---|---|---|"]
        for f in rows:
            page_key = f.component if f.component in site.page_of else None
            if page_key is None:  # a field or rule: link its object's page
                obj = site.view.object_of(f.component)
                if obj and f"CustomObject:{obj}" in site.page_of:
                    page_key = f"CustomObject:{obj}"
            comp_cell = site.link(page_key, rel, f.component) if page_key else md_code(f.component)
            out.append(f"| {md_code(f.rule_id)} | {comp_cell} | {md_text(f.message)} | {md_code(f.evidence)} |")
    return "\n".join(out)
