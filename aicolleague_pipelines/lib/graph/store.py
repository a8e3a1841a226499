"""The ``GraphStore`` interface: versioned per-org snapshots of nodes and edges.

Two backends implement it: :mod:`.store_duckdb` (embedded default, no server) and
:mod:`.store_neo4j` (when ``NEO4J_URI`` is configured). Every method is scoped to one org;
nothing crosses orgs unless a caller asks for several by name.

Contract shared by both backends (tested against both):

- :meth:`load_snapshot` writes a complete new version of one org and makes it current in one
  atomic step: a reader sees either the old snapshot or the new one, never a mix, and a
  failure half-way leaves the previous current snapshot intact and queryable.
- The last ``keep`` versions stay for diffs and trends; older ones are pruned.
- Queries read the current snapshot unless a ``version`` is given.
- :meth:`prune_older_than` deletes snapshots older than a cutoff, never the current one
  (data retention); reruns delete nothing more.
- Component keys, evidence strings and attributes round-trip byte-exact (quotes,
  backslashes, unicode, Cypher/SQL syntax in names are just data: parameters only).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aicolleague_pipelines.lib.graph.model import Edge, Node

if TYPE_CHECKING:  # pragma: no cover
    from aicolleague_pipelines.lib.graph.index import GraphIndex


class GraphStoreError(RuntimeError):
    """A store operation failed; the message names the org and what to do."""


class UnknownOrgError(GraphStoreError):
    pass


class UnknownComponentError(GraphStoreError):
    def __init__(self, org: str, key: str, suggestions: Sequence[str] = ()) -> None:
        self.org = org
        self.key = key
        self.suggestions = list(suggestions)
        hint = f" — did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"org {org!r} has no component {key!r}{hint}")


def created_before(created_at: Any, cutoff: datetime) -> bool:
    """Whether a snapshot's ``created_at`` (ISO 8601; naive means UTC) is before ``cutoff``.
    Unreadable timestamps are never "before": retention keeps what it cannot date."""
    try:
        t = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=timezone.utc)
    return t < cutoff


@dataclass(frozen=True)
class SnapshotInfo:
    org: str
    version: int
    created_at: str  # ISO 8601 UTC
    node_count: int
    edge_count: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One component reached by a traversal: its depth and the path of keys from the start."""

    key: str
    type: str
    depth: int
    path: tuple[str, ...]  # start … key (inclusive)
    via_kind: str | None = None  # kind of the last edge on the path
    external: bool = False


class GraphStore(abc.ABC):
    """Versioned per-org graph storage with traversal queries."""

    # --- writing ---------------------------------------------------------------------
    @abc.abstractmethod
    def load_snapshot(
        self,
        org: str,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        meta: dict[str, Any] | None = None,
        keep: int = 10,
    ) -> SnapshotInfo:
        """Store a new version of ``org``'s graph and make it current atomically."""

    # --- reading ---------------------------------------------------------------------
    @abc.abstractmethod
    def orgs(self) -> list[str]:
        """Orgs with at least one snapshot."""

    @abc.abstractmethod
    def snapshots(self, org: str) -> list[SnapshotInfo]:
        """Kept snapshots of ``org``, oldest first (the last one is current)."""

    @abc.abstractmethod
    def nodes(self, org: str, version: int | None = None) -> list[Node]:
        ...

    @abc.abstractmethod
    def edges(self, org: str, version: int | None = None) -> list[Edge]:
        ...

    @abc.abstractmethod
    def node(self, org: str, key: str, version: int | None = None) -> Node | None:
        ...

    # --- traversals --------------------------------------------------------------------
    @abc.abstractmethod
    def where_used(self, org: str, key: str) -> list[Edge]:
        """Edges whose target is ``key`` (direct dependents, with evidence)."""

    @abc.abstractmethod
    def impact(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        """Everything that transitively depends on ``key`` (reverse reachability)."""

    @abc.abstractmethod
    def dependencies(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        """Everything ``key`` transitively depends on (forward reachability)."""

    # --- retention -----------------------------------------------------------------------------
    def prune_older_than(self, org: str, cutoff: datetime) -> list[int]:
        """Delete ``org``'s snapshots created before ``cutoff`` (an aware datetime), never the
        current one, whatever its age. Returns the versions deleted, ascending; ``[]`` when there
        is nothing to delete, so a rerun is a no-op. A snapshot whose ``created_at`` cannot be
        read is kept. Both real backends implement it; a wrapper that does not raises."""
        raise GraphStoreError(
            f"org {org!r}: {type(self).__name__} cannot prune snapshots by age — run retention "
            "against the store itself (embedded DuckDB or Neo4j)"
        )

    # --- optional (defaults work for any backend; backends may do better) --------------------
    def graph_index(self, org: str, version: int | None = None) -> "GraphIndex":
        """An in-memory CSR index of one snapshot, for whole-graph analytics (PageRank, cycles,
        unused). Default: built from :meth:`nodes`/:meth:`edges` on every call; the DuckDB
        store caches it per (org, version)."""
        from aicolleague_pipelines.lib.graph.index import GraphIndex

        return GraphIndex.from_graph(self.nodes(org, version), self.edges(org, version), org=org)

    def suggest(self, org: str, key: str, n: int = 5) -> list[str]:
        """Keys of ``org`` close to ``key`` (for "did you mean"). Default: difflib over all keys."""
        from aicolleague_pipelines.lib.graph.index import close_matches

        return close_matches(key, [nd.key for nd in self.nodes(org)], n=n)

    def close(self) -> None:  # pragma: no cover - default no-op
        pass

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
