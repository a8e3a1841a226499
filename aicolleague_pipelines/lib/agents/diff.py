"""Monitor: what changed between two snapshots of one org's graph, and what it may break.

:func:`diff_snapshots` compares two kept versions of an org (default: the last two) and returns
a :class:`ChangeSet`:

- ``added`` / ``removed`` / ``modified`` components (external placeholder nodes are not
  components: a component that turns into an external node was *removed*, an external node that
  becomes defined was *added*). *Modified* means ``content_hash``, ``api_version``, ``status``,
  ``active`` or ``data_type`` changed; ``changed`` lists every attribute that differs (who/when
  attributes excluded), with old and new values;
- who/when: the ``last_modified_by`` / ``last_modified_date`` node attributes, and, after
  :func:`attach_audit`, the ``SetupAuditTrail`` rows whose display text names the component
  (best effort);
- edges added/removed (``source, target, kind``), with counts per kind;
- **breaking changes**:

  - a removed component still referenced in the NEW snapshot (its dependents now point at an
    external node with the same key — or at a key absent from the new node set);
  - a field whose ``data_type`` changed, or a Flow deactivated, that has dependents.

  Each lists its dependents: ``store.impact`` on the OLD snapshot (``impact_depth`` hops,
  at most ``impact_limit`` hits), split into Salesforce and platform components (keys like
  ``MetabaseCard:…``, ``WarehouseColumn:…``). An Apex API change (a removed method) is not
  detectable from the graph and is not reported.

With a single snapshot everything is ``added`` and ``baseline=True`` (nothing is breaking).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store import GraphStore, GraphStoreError, Hit
from aicolleague_pipelines.lib.salesforce.model import AuditEvent

#: Attributes whose change makes a component "modified".
SIGNIFICANT_ATTRS = ("content_hash", "api_version", "status", "active", "data_type")
#: Who/when attributes: reported, never counted as a change.
WHO_WHEN_ATTRS = ("last_modified_by", "last_modified_date")
#: Type prefixes of platform (non-Salesforce) components.
PLATFORM_TYPE_PREFIXES = ("Metabase", "Warehouse", "Chargebee", "Intercom", "ApiEntity", "ApiField")

REMOVED_STILL_REFERENCED = "removed_still_referenced"
FIELD_TYPE_CHANGED = "field_type_changed"
FLOW_DEACTIVATED = "flow_deactivated"


def is_platform_key(key: str) -> bool:
    type_ = key.partition(":")[0]
    return type_.startswith(PLATFORM_TYPE_PREFIXES)


@dataclass
class ComponentChange:
    key: str
    type: str
    name: str
    change: str  # "added" | "removed" | "modified"
    #: attribute → [old, new] (modified only)
    changed: dict[str, list[Any]] = field(default_factory=dict)
    last_modified_by: str | None = None
    last_modified_date: str | None = None
    #: Matching SetupAuditTrail rows (see :func:`attach_audit`).
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed_attrs(self) -> list[str]:
        return sorted(self.changed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "type": self.type,
            "name": self.name,
            "change": self.change,
        }
        if self.changed:
            d["changed_attrs"] = self.changed_attrs
            d["changed"] = {k: list(v) for k, v in sorted(self.changed.items())}
        if self.last_modified_by:
            d["last_modified_by"] = self.last_modified_by
        if self.last_modified_date:
            d["last_modified_date"] = self.last_modified_date
        if self.audit:
            d["audit"] = list(self.audit)
        return d


@dataclass
class BreakingChange:
    key: str
    reason: str  # REMOVED_STILL_REFERENCED | FIELD_TYPE_CHANGED | FLOW_DEACTIVATED
    detail: str
    #: Components of the NEW snapshot that still reference the key directly (removals).
    referenced_by: list[str] = field(default_factory=list)
    #: Transitive dependents in the OLD snapshot (``store.impact``), nearest first.
    dependents: list[str] = field(default_factory=list)
    salesforce_dependents: list[str] = field(default_factory=list)
    platform_dependents: list[str] = field(default_factory=list)
    #: True when the impact hit ``impact_limit`` (there may be more dependents).
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "reason": self.reason,
            "detail": self.detail,
            "referenced_by": list(self.referenced_by),
            "dependents": list(self.dependents),
            "salesforce_dependents": list(self.salesforce_dependents),
            "platform_dependents": list(self.platform_dependents),
            "truncated": self.truncated,
        }


def _edge_key(e: Edge) -> tuple[str, str, str]:
    return (e.source, e.target, e.kind)


@dataclass
class ChangeSet:
    org: str
    old_version: int | None
    new_version: int
    baseline: bool = False
    old_created_at: str | None = None
    new_created_at: str | None = None
    added: list[ComponentChange] = field(default_factory=list)
    removed: list[ComponentChange] = field(default_factory=list)
    modified: list[ComponentChange] = field(default_factory=list)
    edges_added: list[tuple[str, str, str]] = field(default_factory=list)
    edges_removed: list[tuple[str, str, str]] = field(default_factory=list)
    breaking: list[BreakingChange] = field(default_factory=list)

    # --- summaries ------------------------------------------------------------------------
    @property
    def changes(self) -> list[ComponentChange]:
        return [*self.added, *self.removed, *self.modified]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.modified or self.edges_added or self.edges_removed)

    def edge_kind_counts(self) -> dict[str, dict[str, int]]:
        add = Counter(k for _, _, k in self.edges_added)
        rem = Counter(k for _, _, k in self.edges_removed)
        return {
            kind: {"added": add.get(kind, 0), "removed": rem.get(kind, 0)}
            for kind in sorted(set(add) | set(rem))
        }

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
            "edges_added": len(self.edges_added),
            "edges_removed": len(self.edges_removed),
            "breaking": len(self.breaking),
        }

    def to_dict(self, max_edges: int | None = 1000) -> dict[str, Any]:
        def edges(rows: list[tuple[str, str, str]]) -> list[dict[str, str]]:
            rows = rows if max_edges is None else rows[:max_edges]
            return [{"source": s, "target": t, "kind": k} for s, t, k in rows]

        return {
            "org": self.org,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "baseline": self.baseline,
            "old_created_at": self.old_created_at,
            "new_created_at": self.new_created_at,
            "summary": self.summary(),
            "added": [c.to_dict() for c in self.added],
            "removed": [c.to_dict() for c in self.removed],
            "modified": [c.to_dict() for c in self.modified],
            "edges": {
                "added_count": len(self.edges_added),
                "removed_count": len(self.edges_removed),
                "by_kind": self.edge_kind_counts(),
                "added": edges(self.edges_added),
                "removed": edges(self.edges_removed),
            },
            "breaking": [b.to_dict() for b in self.breaking],
        }

    def to_markdown(self, max_rows: int = 200) -> str:
        s = self.summary()
        title = (
            f"## Changes in org `{self.org}`: baseline snapshot v{self.new_version}"
            if self.baseline
            else f"## Changes in org `{self.org}`: v{self.old_version} → v{self.new_version}"
        )
        out = [
            title,
            "",
            f"{s['added']} added, {s['removed']} removed, {s['modified']} modified components; "
            f"{s['edges_added']} dependencies added, {s['edges_removed']} removed; "
            f"**{s['breaking']} breaking**.",
            "",
        ]
        if self.breaking:
            out += ["### Breaking changes", "", "| Component | Why | Still referenced by | Dependents (SF / platform) |",
                    "|---|---|---|---|"]
            for b in self.breaking[:max_rows]:
                deps = f"{len(b.salesforce_dependents)} / {len(b.platform_dependents)}"
                if b.truncated:
                    deps += " (truncated)"
                shown = ", ".join(f"`{_md(k)}`" for k in b.dependents[:5])
                if len(b.dependents) > 5:
                    shown += f", … (+{len(b.dependents) - 5})"
                refs = ", ".join(f"`{_md(k)}`" for k in b.referenced_by[:5])
                if len(b.referenced_by) > 5:
                    refs += f", … (+{len(b.referenced_by) - 5})"
                out.append(f"| `{_md(b.key)}` | {_md(b.detail)} | {refs or '—'} | {deps}: {shown or '—'} |")
            out.append("")
        for label, rows in (("Added", self.added), ("Removed", self.removed), ("Modified", self.modified)):
            if not rows:
                continue
            out += [f"### {label} ({len(rows)})", "", "| Component | Type | Changed | By | When |",
                    "|---|---|---|---|---|"]
            for c in rows[:max_rows]:
                who = c.last_modified_by or ""
                if c.audit and not who:
                    who = c.audit[0].get("created_by") or ""
                when = c.last_modified_date or (c.audit[0].get("created_date") if c.audit else "") or ""
                changed = ", ".join(c.changed_attrs) if c.changed else ""
                out.append(f"| `{_md(c.key)}` | {_md(c.type)} | {_md(changed) or '—'} | {_md(who) or '—'} | {_md(when) or '—'} |")
            if len(rows) > max_rows:
                out.append(f"| … {len(rows) - max_rows} more | | | | |")
            out.append("")
        kinds = self.edge_kind_counts()
        if kinds:
            out += ["### Dependencies by kind", "", "| Kind | Added | Removed |", "|---|---|---|"]
            for kind, n in kinds.items():
                out.append(f"| {kind} | {n['added']} | {n['removed']} |")
            out.append("")
        return "\n".join(out).rstrip() + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- computing ------------------------------------------------------------------------------


def _defined(nodes: Iterable[Node]) -> dict[str, Node]:
    return {n.key: n for n in nodes if not n.external}


def _change(node: Node, change: str, changed: dict[str, list[Any]] | None = None) -> ComponentChange:
    a = node.attrs or {}
    return ComponentChange(
        key=node.key,
        type=node.type,
        name=node.name,
        change=change,
        changed=changed or {},
        last_modified_by=a.get("last_modified_by"),
        last_modified_date=a.get("last_modified_date"),
    )


def _attr_diff(old: Node, new: Node) -> dict[str, list[Any]]:
    oa, na = old.attrs or {}, new.attrs or {}
    return {
        k: [oa.get(k), na.get(k)]
        for k in sorted(set(oa) | set(na))
        if k not in WHO_WHEN_ATTRS and oa.get(k) != na.get(k)
    }


def _is_active(node: Node) -> bool | None:
    a = node.attrs or {}
    if isinstance(a.get("active"), bool):
        return a["active"]
    status = a.get("status")
    if isinstance(status, str) and status:
        return status.strip().lower() == "active"
    return None


def _impact(store: GraphStore, org: str, key: str, version: int, depth: int, limit: int) -> list[Hit]:
    """``store.impact`` on a given version (backends without ``version=`` fall back to the
    version's :class:`GraphIndex`)."""
    try:
        params = inspect.signature(store.impact).parameters
    except (TypeError, ValueError):  # pragma: no cover - exotic callables
        params = {}
    if "version" in params:
        kw: dict[str, Any] = {"version": version}
        if "limit" in params:
            kw["limit"] = limit
        hits = store.impact(org, key, depth, **kw)
    else:
        hits = store.graph_index(org, version).impact(key, depth=depth, limit=limit)
    return list(hits)[:limit]


def diff_snapshots(
    store: GraphStore,
    org: str,
    old_version: int | None = None,
    new_version: int | None = None,
    *,
    impact_depth: int = 5,
    impact_limit: int = 200,
    audit_events: Sequence[AuditEvent] | None = None,
) -> ChangeSet:
    """Compare two snapshots of ``org`` (default: the last two kept ones)."""
    snaps = store.snapshots(org)
    if not snaps:  # pragma: no cover - backends raise UnknownOrgError first
        raise GraphStoreError(f"no graph snapshot for org {org!r}")
    by_version = {s.version: s for s in snaps}
    if new_version is None:
        new_version = snaps[-1].version
    if new_version not in by_version:
        raise GraphStoreError(
            f"org {org!r} has no snapshot version {new_version} (kept: {sorted(by_version)})"
        )
    if old_version is None:
        older = [s.version for s in snaps if s.version < new_version]
        old_version = older[-1] if older else None
    elif old_version not in by_version:
        raise GraphStoreError(
            f"org {org!r} has no snapshot version {old_version} (kept: {sorted(by_version)})"
        )

    new_nodes_all = store.nodes(org, new_version)
    new_nodes = _defined(new_nodes_all)
    cs = ChangeSet(
        org=org,
        old_version=old_version,
        new_version=new_version,
        new_created_at=by_version[new_version].created_at,
    )
    new_edges = store.edges(org, new_version)
    if old_version is None:
        cs.baseline = True
        cs.added = [_change(n, "added") for k, n in sorted(new_nodes.items())]
        cs.edges_added = sorted({_edge_key(e) for e in new_edges})
        if audit_events:
            attach_audit(cs, audit_events)
        return cs

    cs.old_created_at = by_version[old_version].created_at
    old_nodes = _defined(store.nodes(org, old_version))
    old_edges = store.edges(org, old_version)

    for key in sorted(new_nodes.keys() - old_nodes.keys()):
        cs.added.append(_change(new_nodes[key], "added"))
    removed_keys = sorted(old_nodes.keys() - new_nodes.keys())
    for key in removed_keys:
        cs.removed.append(_change(old_nodes[key], "removed"))
    for key in sorted(old_nodes.keys() & new_nodes.keys()):
        o, n = old_nodes[key], new_nodes[key]
        diff = _attr_diff(o, n)
        if any(a in diff for a in SIGNIFICANT_ATTRS):
            cs.modified.append(_change(n, "modified", diff))

    old_ek = {_edge_key(e) for e in old_edges}
    new_ek = {_edge_key(e) for e in new_edges}
    cs.edges_added = sorted(new_ek - old_ek)
    cs.edges_removed = sorted(old_ek - new_ek)

    # --- breaking changes ---------------------------------------------------------------
    def dependents(key: str) -> tuple[list[str], bool]:
        try:
            hits = _impact(store, org, key, old_version, impact_depth, impact_limit + 1)
        except GraphStoreError:
            return [], False
        keys = [h.key for h in hits if h.key != key]
        return keys[:impact_limit], len(keys) > impact_limit

    def breaking(key: str, reason: str, detail: str, referenced_by: list[str]) -> BreakingChange | None:
        deps, truncated = dependents(key)
        if reason != REMOVED_STILL_REFERENCED and not deps:
            return None
        # Direct references in the new snapshot count as dependents even if the old one lacked them.
        for k in referenced_by:
            if k not in deps:
                deps.append(k)
        return BreakingChange(
            key=key,
            reason=reason,
            detail=detail,
            referenced_by=referenced_by,
            dependents=deps,
            salesforce_dependents=[d for d in deps if not is_platform_key(d)],
            platform_dependents=[d for d in deps if is_platform_key(d)],
            truncated=truncated,
        )

    if removed_keys:
        removed_set = set(removed_keys)
        # In the new snapshot a removed component is either an external node with the same key
        # (dependents still reference it) or gone; an edge may also dangle (a key absent from
        # the node set) when a backend or loader lets it through.
        refs: dict[str, set[str]] = {}
        for e in new_edges:
            if e.target in removed_set and e.source != e.target:
                refs.setdefault(e.target, set()).add(e.source)
        for key in removed_keys:
            srcs = sorted(refs.get(key, ()))
            if not srcs:
                continue
            node = old_nodes[key]
            b = breaking(
                key,
                REMOVED_STILL_REFERENCED,
                f"{node.type} {node.name} was removed but {len(srcs)} component(s) still reference it",
                srcs,
            )
            if b:
                cs.breaking.append(b)

    for ch in cs.modified:
        o, n = old_nodes[ch.key], new_nodes[ch.key]
        if n.type == "CustomField" and "data_type" in ch.changed:
            old_t, new_t = ch.changed["data_type"]
            if old_t and new_t:
                b = breaking(ch.key, FIELD_TYPE_CHANGED, f"field type changed from {old_t} to {new_t}", [])
                if b:
                    cs.breaking.append(b)
        elif n.type == "Flow" and _is_active(o) is True and _is_active(n) is False:
            b = breaking(ch.key, FLOW_DEACTIVATED, "flow deactivated", [])
            if b:
                cs.breaking.append(b)

    if audit_events:
        attach_audit(cs, audit_events)
    return cs


# --- audit trail correlation ------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _contains_word(hay: str, needle: str) -> bool:
    if not needle:
        return False
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(needle) + r"(?![A-Za-z0-9_])", hay) is not None


def _audit_terms(c: ComponentChange) -> tuple[list[str], list[str]]:
    """(strong terms, weak terms) naming the component, lower case."""
    name = c.name or c.key.partition(":")[2]
    strong = {name.lower()}
    weak: set[str] = set()
    if "." in name:
        obj, _, short = name.rpartition(".")
        strong.add(f"{obj} {short}".lower())
        short_nc = re.sub(r"__c$", "", short)
        weak.update({short.lower(), short_nc.lower(), short_nc.replace("_", " ").lower()})
        if c.type == "CustomField":
            strong.add(f"{obj} field {short_nc}".lower())
    else:
        weak.add(name.replace("_", " ").lower())
    return sorted(strong), sorted(t for t in weak if len(t) >= 4 and t not in strong)


def attach_audit(changes: ChangeSet | Iterable[ComponentChange], events: Iterable[AuditEvent],
                 *, since: str | None = None) -> int:
    """Attach ``SetupAuditTrail`` rows to the changes whose component their display text names.

    Best effort: a full name (``Account.Region__c``) matches strongly; a short name
    (``Region__c``) only when the event also names the object, or when it contains ``__``
    (custom API names are distinctive). ``since``: ignore events created before it (ISO
    text compare). Fills ``last_modified_by``/``last_modified_date`` from the newest matching
    event when the node attributes lack them. Returns the number of matches.
    """
    rows = changes.changes if isinstance(changes, ChangeSet) else list(changes)
    evs = [e for e in events if e.display and (since is None or (e.created_date or "") >= since)]
    evs.sort(key=lambda e: e.created_date or "", reverse=True)
    low = [(e, _norm(e.display or "")) for e in evs]
    n = 0
    for c in rows:
        strong, weak = _audit_terms(c)
        obj = c.name.rpartition(".")[0].lower() if "." in c.name else ""
        # Without an object, the component's type word ("flow", "class", "trigger") must appear.
        type_word = re.findall(r"[A-Z][a-z]+", c.type)[-1:] or [c.type]
        context = obj or type_word[0].lower()
        for e, text in low:
            match = None
            if any(_contains_word(text, t) for t in strong):
                match = "name"
            else:
                for t in weak:
                    if _contains_word(text, t) and (_contains_word(text, context) or "__" in t):
                        match = "partial"
                        break
            if not match:
                continue
            c.audit.append(
                {
                    "id": e.id,
                    "created_date": e.created_date,
                    "created_by": e.created_by,
                    "action": e.action,
                    "section": e.section,
                    "display": e.display,
                    "match": match,
                }
            )
            n += 1
        if c.audit:
            newest = c.audit[0]
            if not c.last_modified_by and newest.get("created_by"):
                c.last_modified_by = newest["created_by"]
            if not c.last_modified_date and newest.get("created_date"):
                c.last_modified_date = newest["created_date"]
    return n
