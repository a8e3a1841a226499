"""Questions asked of the graph, over any :class:`GraphStore` (the CSR index when it has one).

- :func:`impact` / :func:`dependencies` / :func:`where_used` — traversals with evidence.
- :func:`deployment_boundary` — a component set plus everything it depends on, as
  ``package.xml`` (external components listed as prerequisites, standard fields as not
  deployable).
- :func:`unused`, :func:`cycles`, :func:`top_ranked` — whole-graph analytics.
- :func:`compare_component` — one key across several orgs.
- :func:`suggest` — "did you mean" for a key.
- :class:`ScopedGraphStore` / :func:`scoped` — the access policy: a store that answers only for
  the orgs the caller may see (:mod:`aicolleague_pipelines.lib.access`). The CLI and ``ask`` go
  through it, so every query path passes the same single check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from aicolleague_pipelines.lib.access import AccessScope, current_scope
from aicolleague_pipelines.lib.graph.index import STRUCTURAL_KINDS, GraphIndex
from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store import (
    GraphStore,
    GraphStoreError,
    Hit,
    SnapshotInfo,
    UnknownComponentError,
    UnknownOrgError,
)

DEFAULT_API_VERSION = "62.0"

#: Component types that go into a package.xml, by Metadata API type name.
DEPLOYABLE_TYPES = frozenset(
    {
        "CustomObject",
        "CustomField",
        "ApexClass",
        "ApexTrigger",
        "Flow",
        "ValidationRule",
        "Layout",
        "PermissionSet",
        "Profile",
        "Report",
        "RecordType",
        "LightningComponentBundle",
        "AuraDefinitionBundle",
        "FlexiPage",
        "ApexPage",
        "WorkflowRule",
        "WorkflowFieldUpdate",
        "CustomMetadata",
        "EmailTemplate",
        "GlobalValueSet",
        "CustomTab",
    }
)

#: Types ``unused`` looks at by default (entry points such as triggers, flows, layouts,
#: permission sets and reports are unused by nature).
DEFAULT_UNUSED_TYPES = ("CustomField", "CustomObject", "ApexClass", "GlobalValueSet", "EmailTemplate", "ApexPage")


def _index(store: GraphStore, org: str) -> GraphIndex:
    return store.graph_index(org)


# --- traversals ------------------------------------------------------------------------
def impact(store: GraphStore, org: str, key: str, depth: int | None = None, limit: int | None = None) -> list[Hit]:
    """Everything that transitively depends on ``key`` (closest first; ``limit`` caps it)."""
    idx = _index(store, org)
    if key not in idx:
        raise UnknownComponentError(org, key, store.suggest(org, key))
    return idx.impact(key, depth=depth, limit=limit)


def dependencies(
    store: GraphStore, org: str, key: str, depth: int | None = None, limit: int | None = None
) -> list[Hit]:
    """Everything ``key`` transitively depends on (closest first; ``limit`` caps it)."""
    idx = _index(store, org)
    if key not in idx:
        raise UnknownComponentError(org, key, store.suggest(org, key))
    return idx.dependencies(key, depth=depth, limit=limit)


def where_used(store: GraphStore, org: str, key: str) -> list[Edge]:
    """Direct dependents of ``key`` with evidence (file:line, API row)."""
    return store.where_used(org, key)


def suggest(store: GraphStore, org: str, key: str, n: int = 5) -> list[str]:
    return store.suggest(org, key, n=n)


# --- deployment boundary -------------------------------------------------------------------
class DeploymentBoundary(tuple):
    """``(members, package_xml)`` — unpacks as a pair — with the details as attributes.

    - ``members``: Metadata API type → sorted keys deployed (the closure minus what cannot be).
    - ``package_xml``: the manifest (types and members sorted, ``<version>`` = API version).
    - ``prerequisites``: external components the closure needs (other namespaces, …): must
      already be in the target org.
    - ``not_deployed``: standard fields (no ``__c``): exist in every org, cannot be deployed.
    - ``unsupported``: keys whose type has no package.xml entry here.
    """

    members: dict[str, list[str]]
    package_xml: str
    prerequisites: list[str]
    not_deployed: list[str]
    unsupported: list[str]

    def __new__(
        cls, members: dict[str, list[str]], package_xml: str, prerequisites: list[str],
        not_deployed: list[str], unsupported: list[str],
    ) -> "DeploymentBoundary":
        self = super().__new__(cls, (members, package_xml))
        self.members = members
        self.package_xml = package_xml
        self.prerequisites = prerequisites
        self.not_deployed = not_deployed
        self.unsupported = unsupported
        return self


def _is_custom_field(full_name: str) -> bool:
    fld = full_name.rpartition(".")[2]
    return fld.endswith("__c")


def package_xml(members: dict[str, Iterable[str]], api_version: str) -> str:
    """A package.xml for ``{type: [full names]}`` (types and members sorted, escaped)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Package xmlns="http://soap.sforce.com/2006/04/metadata">',
    ]
    for type_ in sorted(members):
        names = sorted(set(members[type_]))
        if not names:
            continue
        lines.append("    <types>")
        lines += [f"        <members>{escape(n)}</members>" for n in names]
        lines.append(f"        <name>{escape(type_)}</name>")
        lines.append("    </types>")
    lines.append(f"    <version>{escape(str(api_version))}</version>")
    lines.append("</Package>")
    return "\n".join(lines) + "\n"


def deployment_boundary(
    store: GraphStore, org: str, keys: Sequence[str], api_version: str | None = None
) -> DeploymentBoundary:
    """``keys`` and everything they depend on, ready to deploy as one package.

    ``api_version`` defaults to the snapshot's ``meta["api_version"]``, then
    :data:`DEFAULT_API_VERSION`.
    """
    idx = _index(store, org)
    closure: set[int] = set()
    for key in keys:
        nid = idx.nid(key)
        if nid is None:
            raise UnknownComponentError(org, key, store.suggest(org, key))
        closure.add(nid)
        closure.update(idx.closure(nid, reverse=False).ids.tolist())
    if api_version is None:
        snaps = store.snapshots(org)
        api_version = str((snaps[-1].meta if snaps else {}).get("api_version") or DEFAULT_API_VERSION)
    members: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    prerequisites: list[str] = []
    not_deployed: list[str] = []
    unsupported: list[str] = []
    for nid in sorted(closure):
        key = idx.keys[nid]
        type_ = idx.type_of(nid)
        full = key.partition(":")[2] if key.startswith(type_ + ":") else key
        if idx.external[nid]:
            prerequisites.append(key)
        elif type_ not in DEPLOYABLE_TYPES:
            unsupported.append(key)
        elif type_ == "CustomField" and not _is_custom_field(full):
            not_deployed.append(key)
        else:
            members.setdefault(type_, []).append(key)
            names.setdefault(type_, []).append(full)
    members = {t: sorted(v) for t, v in sorted(members.items())}
    return DeploymentBoundary(
        members, package_xml(names, api_version), sorted(prerequisites), sorted(not_deployed), sorted(unsupported)
    )


# --- whole-graph analytics --------------------------------------------------------------
def unused(
    store: GraphStore, org: str, types: Iterable[str] | None = DEFAULT_UNUSED_TYPES,
    exclude_kinds: Iterable[str] = STRUCTURAL_KINDS,
) -> list[str]:
    """Components nothing depends on (edges of ``exclude_kinds`` don't count as use)."""
    return _index(store, org).unused(types=types, exclude_kinds=exclude_kinds)


def cycles(store: GraphStore, org: str) -> list[list[str]]:
    """Dependency cycles (strongly connected components, self references), biggest first."""
    return _index(store, org).cycles()


def top_ranked(store: GraphStore, org: str, n: int = 20, alpha: float = 0.85) -> list[tuple[str, float]]:
    """The ``n`` components with the highest PageRank along dependency edges."""
    idx = _index(store, org)
    return idx.top(idx.pagerank(alpha=alpha), n)


# --- across orgs ------------------------------------------------------------------------
@dataclass(frozen=True)
class OrgPresence:
    org: str
    present: bool
    type: str | None = None
    external: bool = False
    attrs_hash: str | None = None  # sha256 of the canonical JSON of the attributes (12 hex)
    api_version: str | None = None
    status: str | None = None
    dependents: int = 0  # direct: distinct components with an edge to it
    impacted: int = 0  # transitive (impact closure size)


@dataclass(frozen=True)
class Comparison:
    key: str
    orgs: dict[str, OrgPresence]
    #: attribute → {org: value (or a 12-hex hash when long)}, only attributes that differ
    #: between the orgs where the component is present.
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def present_in(self) -> list[str]:
        return [o for o, p in self.orgs.items() if p.present]

    @property
    def missing_in(self) -> list[str]:
        return [o for o, p in self.orgs.items() if not p.present]


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=True, default=str)


def _short(v: Any) -> Any:
    s = _canon(v)
    if len(s) <= 120:
        return v
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()[:12]


def compare_component(store: GraphStore, orgs: Sequence[str], key: str) -> Comparison:
    """``key`` in each of ``orgs``: presence, attribute differences, dependents counts."""
    if not orgs:
        raise GraphStoreError(f"no org to compare {key!r} in: the store has no snapshot you can see")
    per: dict[str, OrgPresence] = {}
    attrs: dict[str, dict[str, Any]] = {}
    for org in orgs:
        nd = store.node(org, key)  # raises UnknownOrgError for an unknown org
        if nd is None:
            per[org] = OrgPresence(org, False)
            continue
        idx = _index(store, org)
        nid = idx.nid(key)
        a = dict(nd.attrs)
        attrs[org] = a
        status = a.get("status")
        if status is None and "active_version" in a:
            status = "active" if a.get("active_version") else "inactive"
        per[org] = OrgPresence(
            org,
            True,
            nd.type,
            nd.external,
            hashlib.sha256(_canon(a).encode()).hexdigest()[:12],
            None if a.get("api_version") is None else str(a.get("api_version")),
            None if status is None else str(status),
            len(set(idx.rev_nbr[idx.rev_indptr[nid]:idx.rev_indptr[nid + 1]].tolist())) if nid is not None else 0,
            len(idx.closure(nid, reverse=True)) if nid is not None else 0,
        )
    if not attrs:
        first = orgs[0] if orgs else ""
        raise UnknownComponentError(first, key, store.suggest(first, key) if first else [])
    diffs: dict[str, dict[str, Any]] = {}
    if len(attrs) > 1:
        names = sorted(set().union(*(a.keys() for a in attrs.values())))
        for name in names:
            vals = {o: a.get(name) for o, a in attrs.items()}
            if len({_canon(v) for v in vals.values()}) > 1:
                diffs[name] = {o: _short(v) for o, v in vals.items()}
        types = {o: p.type for o, p in per.items() if p.present}
        if len(set(types.values())) > 1:
            diffs["type"] = types
    return Comparison(key, per, diffs)


# --- access scope -----------------------------------------------------------------------
class ScopedGraphStore(GraphStore):
    """A :class:`GraphStore` answering only for the orgs of one :class:`AccessScope`.

    Every method that takes an org checks it before the wrapped store is touched
    (:class:`~aicolleague_pipelines.lib.access.AccessDenied`, worded the same whether the org
    exists or not); :meth:`orgs` lists only orgs in scope, so cross-org views built on it
    (:func:`compare_component`, ``ask``'s comparisons) never see another org; an in-scope org
    without a snapshot is reported with suggestions drawn from in-scope orgs only. Nothing
    else of the wrapped store is reachable through it.
    """

    def __init__(self, inner: GraphStore, scope: AccessScope) -> None:
        self._inner = inner
        self.scope = scope

    def _call(self, fn: Any, org: str, *args: Any, **kwargs: Any) -> Any:
        self.scope.check(org)
        try:
            return fn(org, *args, **kwargs)
        except UnknownOrgError:
            raise self._unknown_org(org) from None

    def _unknown_org(self, org: str) -> UnknownOrgError:
        import difflib

        known = self.orgs()
        sugg = difflib.get_close_matches(org, known, n=3, cutoff=0.5)
        hint = (f" — did you mean: {', '.join(sugg)}?" if sugg
                else f" (orgs in your scope: {', '.join(known)})" if known
                else " (no org in your scope has a snapshot yet)")
        err = UnknownOrgError(f"no graph snapshot for org {org!r}{hint}")
        err.org = org  # type: ignore[attr-defined]
        err.suggestions = sugg  # type: ignore[attr-defined]
        return err

    def load_snapshot(self, org: str, nodes: Iterable[Node], edges: Iterable[Edge],
                      meta: dict[str, Any] | None = None, keep: int = 10) -> SnapshotInfo:
        return self._call(self._inner.load_snapshot, org, nodes, edges, meta=meta, keep=keep)

    def orgs(self) -> list[str]:
        return self.scope.filter(self._inner.orgs())

    def snapshots(self, org: str) -> list[SnapshotInfo]:
        return self._call(self._inner.snapshots, org)

    def nodes(self, org: str, version: int | None = None) -> list[Node]:
        return self._call(self._inner.nodes, org, version)

    def edges(self, org: str, version: int | None = None) -> list[Edge]:
        return self._call(self._inner.edges, org, version)

    def node(self, org: str, key: str, version: int | None = None) -> Node | None:
        return self._call(self._inner.node, org, key, version)

    def where_used(self, org: str, key: str) -> list[Edge]:
        return self._call(self._inner.where_used, org, key)

    def impact(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        return self._call(self._inner.impact, org, key, depth)

    def dependencies(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        return self._call(self._inner.dependencies, org, key, depth)

    def graph_index(self, org: str, version: int | None = None) -> GraphIndex:
        return self._call(self._inner.graph_index, org, version)

    def suggest(self, org: str, key: str, n: int = 5) -> list[str]:
        return self._call(self._inner.suggest, org, key, n=n)

    def close(self) -> None:
        self._inner.close()


def scoped(store: GraphStore, scope: AccessScope | None = None) -> GraphStore:
    """``store`` limited to ``scope`` (default: the caller's, from the environment — which
    raises :class:`~aicolleague_pipelines.lib.access.AccessPolicyError` for a bad policy).
    Without a policy the store itself is returned."""
    scope = current_scope() if scope is None else scope
    return store if scope.unrestricted else ScopedGraphStore(store, scope)
