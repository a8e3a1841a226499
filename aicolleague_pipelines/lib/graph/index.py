"""``GraphIndex``: an in-memory CSR adjacency over one graph snapshot.

Nodes are dense ids ``0..N-1`` (the store's ``nid``); edges are dense ids ``0..E-1`` (the
store's ``eid``: the position in the arrays the index was built from). Both directions are
kept as CSR (``indptr``/``nbr``/``eid``), so:

- ``impact`` (reverse reachability: who depends on X) and ``dependencies`` (forward) are a
  frontier BFS vectorised with numpy: gather the CSR slices of the whole frontier at once,
  drop already visited nodes with a *visited stamp* array reused across queries (a generation
  counter, so a small closure costs a few array operations, not an O(N) allocation), and keep
  the CSR position of the edge that reached each node — enough to rebuild every hit's path
  and the kind of its last edge lazily, for the hits actually returned.
- ``pagerank`` is power iteration with one sparse mat-vec per step; ``cycles`` is strongly
  connected components (scipy.sparse.csgraph) plus self loops; ``unused`` is a masked
  in-degree.

An index is immutable after construction. Queries on one index are not thread-safe (they
share the stamp arrays); the DuckDB store serialises them with its lock.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aicolleague_pipelines.lib.graph.model import CHILD_OF, EDGE_KINDS, RECORD_TYPE_OF, Edge, Node
from aicolleague_pipelines.lib.graph.store import Hit, UnknownComponentError

#: Edge kinds that only express structure (a field belongs to its object), not use.
STRUCTURAL_KINDS: tuple[str, ...] = (CHILD_OF, RECORD_TYPE_OF)

try:  # an O(N+E) counting sort in C++; private in scipy, so keep a numpy fallback
    from scipy.sparse import _sparsetools as _st

    _coo_tocsr = _st.coo_tocsr
except Exception:  # pragma: no cover - depends on the scipy build
    _coo_tocsr = None


def _index_dtype(n: int, e: int) -> type:
    return np.int32 if max(n, e) < 2**31 - 1 else np.int64


def _csr(n: int, rows: np.ndarray, cols: np.ndarray, idt: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of the edge list grouped by ``rows``: (indptr, nbr=cols in row order, eid order).

    Stable: edges of one row keep their input order. Already sorted input costs O(N) only.
    """
    e = len(rows)
    if e == 0 or bool(np.all(rows[1:] >= rows[:-1])):
        counts = np.bincount(rows, minlength=n) if e else np.zeros(n, np.int64)
        indptr = np.zeros(n + 1, idt)
        np.cumsum(counts, out=indptr[1:])
        return indptr, cols.astype(idt, copy=False), np.arange(e, dtype=idt)
    if _coo_tocsr is not None:
        indptr = np.empty(n + 1, idt)
        nbr = np.empty(e, idt)
        eids = np.empty(e, idt)
        _coo_tocsr(
            n, n, e, rows.astype(idt, copy=False), cols.astype(idt, copy=False),
            np.arange(e, dtype=idt), indptr, nbr, eids,
        )
        return indptr, nbr, eids
    order = np.argsort(rows, kind="stable").astype(idt)  # pragma: no cover
    counts = np.bincount(rows, minlength=n)  # pragma: no cover
    indptr = np.zeros(n + 1, idt)  # pragma: no cover
    np.cumsum(counts, out=indptr[1:])  # pragma: no cover
    return indptr, cols[order].astype(idt, copy=False), order  # pragma: no cover


def _codes(values: Any, names: Sequence[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
    """(small int codes, names) from either codes+names or a sequence of strings."""
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "iu":
        if names is None:
            raise ValueError(f"{what}: integer codes need their names")
        names = list(names)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= len(names)):
            raise ValueError(f"{what}: code out of range of the {len(names)} names")
        dt = np.uint8 if len(names) <= 255 else np.int32
        return arr.astype(dt, copy=False), names
    import pandas as pd

    if isinstance(values, pd.Categorical):
        cat = values
    else:
        cat = pd.Categorical(np.asarray(values, dtype=object))
    if (cat.codes < 0).any():
        raise ValueError(f"{what}: missing value")
    names = [str(c) for c in cat.categories]
    dt = np.uint8 if len(names) <= 255 else np.int32
    return cat.codes.astype(dt), names


@dataclass(frozen=True)
class Closure:
    """Raw result of a BFS: reached node ids in BFS order (depth ascending), their depth and
    the CSR position of the edge that reached them (in the traversal's direction)."""

    start: int
    reverse: bool
    ids: np.ndarray
    depth: np.ndarray
    pos: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


class GraphIndex:
    """Forward and reverse CSR adjacency over one snapshot (see module docstring)."""

    def __init__(
        self,
        keys: Sequence[str] | np.ndarray,
        types: Any,
        src: np.ndarray,
        dst: np.ndarray,
        kinds: Any,
        *,
        external: np.ndarray | Sequence[bool] | None = None,
        type_names: Sequence[str] | None = None,
        kind_names: Sequence[str] | None = EDGE_KINDS,
        org: str | None = None,
        version: int | None = None,
    ) -> None:
        self.org = org
        self.version = version
        self.keys = keys if isinstance(keys, np.ndarray) and keys.dtype == object else np.asarray(
            list(keys), dtype=object
        )
        n = self.n = int(self.keys.size)
        self.type_codes, self.type_names = _codes(types, type_names, "types")
        self.kind_codes, self.kind_names = _codes(kinds, kind_names, "kinds")
        self.external = (
            np.zeros(n, bool) if external is None else np.asarray(external, dtype=bool)
        )
        src = np.asarray(src)
        dst = np.asarray(dst)
        e = self.e = int(src.size)
        if not (dst.size == e == self.kind_codes.size):
            raise ValueError("src, dst and kinds must have the same length")
        if self.type_codes.size != n or self.external.size != n:
            raise ValueError("keys, types and external must have the same length")
        if e and (min(int(src.min()), int(dst.min())) < 0 or max(int(src.max()), int(dst.max())) >= n):
            raise ValueError("edge endpoint out of range of the node ids")
        idt = self._idt = _index_dtype(n, e)
        self.src = src.astype(idt, copy=False)
        self.dst = dst.astype(idt, copy=False)
        self.fwd_indptr, self.fwd_nbr, self.fwd_eid = _csr(n, self.src, self.dst, idt)
        self.rev_indptr, self.rev_nbr, self.rev_eid = _csr(n, self.dst, self.src, idt)
        self._key_to_id: dict[str, int] | None = None
        self._stamp: np.ndarray | None = None
        self._ppos: np.ndarray | None = None
        self._gen = 0
        self._pr_matrix: Any = None
        self._lock = threading.RLock()

    # --- construction ----------------------------------------------------------------
    @classmethod
    def from_graph(
        cls, nodes: Iterable[Node], edges: Iterable[Edge], *, org: str | None = None,
        version: int | None = None,
    ) -> "GraphIndex":
        """Index over Node/Edge objects (edge order = eid order)."""
        nodes = list(nodes)
        keys = [n.key for n in nodes]
        ids = {k: i for i, k in enumerate(keys)}
        if len(ids) != len(keys):
            raise ValueError("duplicate node keys")
        src: list[int] = []
        dst: list[int] = []
        kinds: list[str] = []
        for ed in edges:
            try:
                src.append(ids[ed.source])
                dst.append(ids[ed.target])
            except KeyError as exc:
                raise ValueError(f"edge {ed.source!r} -> {ed.target!r}: unknown node {exc.args[0]!r}") from None
            kinds.append(ed.kind)
        kind_names = sorted(set(EDGE_KINDS) | set(kinds))
        kmap = {k: i for i, k in enumerate(kind_names)}
        idx = cls(
            np.asarray(keys, dtype=object),
            [n.type for n in nodes],
            np.asarray(src, dtype=np.int64),
            np.asarray(dst, dtype=np.int64),
            np.asarray([kmap[k] for k in kinds], dtype=np.uint8),
            external=np.asarray([n.external for n in nodes], dtype=bool),
            kind_names=kind_names,
            org=org,
            version=version,
        )
        idx._key_to_id = ids
        return idx

    # --- keys ------------------------------------------------------------------------
    @property
    def key_to_id(self) -> dict[str, int]:
        if self._key_to_id is None:
            with self._lock:
                if self._key_to_id is None:
                    self._key_to_id = dict(zip(self.keys.tolist(), range(self.n)))
        return self._key_to_id

    def warm(self) -> "GraphIndex":
        """Build the lazy parts (key map, stamp arrays) now rather than on the first query."""
        _ = self.key_to_id
        self._ensure_stamp()
        return self

    def nid(self, key: str) -> int | None:
        return self.key_to_id.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.key_to_id

    def __len__(self) -> int:
        return self.n

    def suggest(self, key: str, n: int = 5) -> list[str]:
        """Close matches for an unknown key (case-insensitive equal first, then difflib)."""
        return close_matches(key, self.keys.tolist(), n=n)

    def _resolve(self, key: str) -> int:
        i = self.key_to_id.get(key)
        if i is None:
            sugg = self.suggest(key) if self.n <= 200_000 else []
            raise UnknownComponentError(self.org or "", key, sugg)
        return i

    def type_of(self, nid: int) -> str:
        return self.type_names[int(self.type_codes[nid])]

    def kind_of(self, eid: int) -> str:
        return self.kind_names[int(self.kind_codes[eid])]

    def nbytes(self) -> int:
        arrays = [
            self.type_codes, self.kind_codes, self.external, self.src, self.dst, self.fwd_indptr,
            self.fwd_nbr, self.fwd_eid, self.rev_indptr, self.rev_nbr, self.rev_eid,
        ]
        return int(sum(a.nbytes for a in arrays)) + 8 * self.n

    # --- BFS -------------------------------------------------------------------------
    def _ensure_stamp(self) -> None:
        if self._stamp is None:
            self._stamp = np.zeros(self.n, np.int32)
            self._ppos = np.zeros(self.n, self._idt)

    def closure(
        self, start: int, *, reverse: bool = True, depth: int | None = None
    ) -> Closure:
        """BFS from node id ``start`` (excluded from the result).

        ``reverse=True`` follows edges backwards (impact), ``False`` forwards (dependencies).
        ``depth`` limits the number of hops (None: unlimited).
        """
        if depth is not None and depth < 0:
            raise ValueError("depth must be >= 0")
        indptr, nbr = (self.rev_indptr, self.rev_nbr) if reverse else (self.fwd_indptr, self.fwd_nbr)
        with self._lock:
            self._ensure_stamp()
            stamp, ppos = self._stamp, self._ppos
            assert stamp is not None and ppos is not None
            if self._gen >= 2**31 - 2:
                stamp.fill(0)
                self._gen = 0
            self._gen += 1
            gen = self._gen
            stamp[start] = gen
            frontier = np.array([start], dtype=self._idt)
            out_ids: list[np.ndarray] = []
            out_pos: list[np.ndarray] = []
            out_dep: list[np.ndarray] = []
            d = 0
            while frontier.size and (depth is None or d < depth):
                d += 1
                if frontier.size == 1:
                    f = int(frontier[0])
                    pos = np.arange(indptr[f], indptr[f + 1], dtype=self._idt)
                else:
                    starts = indptr[frontier]
                    counts = indptr[frontier + 1] - starts
                    total = int(counts.sum())
                    if total == 0:
                        break
                    offs = np.cumsum(counts) - counts
                    pos = np.arange(total, dtype=self._idt) + np.repeat(starts - offs, counts)
                if pos.size == 0:
                    break
                cand = nbr[pos]
                fresh = stamp[cand] != gen
                cand = cand[fresh]
                if cand.size == 0:
                    break
                pos = pos[fresh]
                stamp[cand] = gen
                ppos[cand] = pos
                win = ppos[cand] == pos  # one winner per duplicated candidate
                if not win.all():
                    cand = cand[win]
                    pos = pos[win]
                out_ids.append(cand)
                out_pos.append(pos)
                out_dep.append(np.full(cand.size, d, np.int32))
                frontier = cand
        if out_ids:
            return Closure(start, reverse, np.concatenate(out_ids), np.concatenate(out_dep), np.concatenate(out_pos))
        empty = np.zeros(0, self._idt)
        return Closure(start, reverse, empty, np.zeros(0, np.int32), empty)

    def _hits(self, c: Closure, limit: int | None) -> list[Hit]:
        """Hits (sorted by depth, then key) with paths rebuilt from the parent edges."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        k = len(c) if limit is None else min(limit, len(c))
        if k == 0:
            return []
        indptr = self.rev_indptr if c.reverse else self.fwd_indptr
        eid_of = self.rev_eid if c.reverse else self.fwd_eid
        # Parent (the node whose CSR row holds the reaching edge) of every reached node.
        # BFS order: every ancestor of one of the first k hits is among the first k.
        parents = np.searchsorted(indptr, c.pos[:k], side="right") - 1
        eids = eid_of[c.pos[:k]]
        ids_l = c.ids[:k].tolist()
        par_of = dict(zip(ids_l, parents.tolist()))
        keys = self.keys
        start_key = keys[c.start]
        paths: dict[int, tuple[str, ...]] = {c.start: (start_key,)}

        def path(v: int) -> tuple[str, ...]:
            p = paths.get(v)
            if p is not None:
                return p
            chain = []
            while v not in paths:
                chain.append(v)
                v = par_of[v]
            p = paths[v]
            for u in reversed(chain):
                p = p + (keys[u],)
                paths[u] = p
            return p

        tc = self.type_codes[c.ids[:k]].tolist()
        ext = self.external[c.ids[:k]].tolist()
        kc = self.kind_codes[eids].tolist()
        dep = c.depth[:k].tolist()
        tn, kn = self.type_names, self.kind_names
        hits = [
            Hit(keys[v], tn[tc[i]], dep[i], path(v), kn[kc[i]], bool(ext[i]))
            for i, v in enumerate(ids_l)
        ]
        hits.sort(key=lambda h: (h.depth, h.key))
        return hits

    def impact(self, key: str, depth: int | None = None, limit: int | None = None) -> list[Hit]:
        """Everything that transitively depends on ``key``: hits sorted by (depth, key).

        With ``limit``, the ``limit`` closest hits (BFS order) are returned."""
        return self._hits(self.closure(self._resolve(key), reverse=True, depth=depth), limit)

    def dependencies(self, key: str, depth: int | None = None, limit: int | None = None) -> list[Hit]:
        """Everything ``key`` transitively depends on: hits sorted by (depth, key)."""
        return self._hits(self.closure(self._resolve(key), reverse=False, depth=depth), limit)

    def closure_size(self, key: str, *, reverse: bool = True, depth: int | None = None) -> int:
        return len(self.closure(self._resolve(key), reverse=reverse, depth=depth))

    def in_edge_ids(self, nid: int) -> np.ndarray:
        """Edge ids whose target is ``nid``."""
        return self.rev_eid[self.rev_indptr[nid] : self.rev_indptr[nid + 1]]

    def out_edge_ids(self, nid: int) -> np.ndarray:
        return self.fwd_eid[self.fwd_indptr[nid] : self.fwd_indptr[nid + 1]]

    def where_used(self, key: str) -> list[tuple[str, str]]:
        """Direct dependents of ``key``: sorted ``(source key, edge kind)`` pairs."""
        eids = self.in_edge_ids(self._resolve(key))
        srcs = self.src[eids].tolist()
        kc = self.kind_codes[eids].tolist()
        return sorted((self.keys[s], self.kind_names[k]) for s, k in zip(srcs, kc))

    # --- whole-graph analytics ------------------------------------------------------------
    def in_degree(self) -> np.ndarray:
        return np.diff(self.rev_indptr)

    def out_degree(self) -> np.ndarray:
        return np.diff(self.fwd_indptr)

    def pagerank(self, alpha: float = 0.85, tol: float = 1e-6, max_iter: int = 100) -> np.ndarray:
        """PageRank along dependency edges (a component depended on by many ranks high).

        Power iteration ``r ← α·Mr + (α·dangling + 1-α)/N`` until the L1 change is below
        ``tol``; sums to 1. Returns a float64 array indexed by node id.
        """
        n = self.n
        if n == 0:
            return np.zeros(0)
        from scipy.sparse import csr_matrix

        out = self.out_degree()
        if self._pr_matrix is None:
            inv = np.zeros(n, np.float64)
            nz = out > 0
            inv[nz] = 1.0 / out[nz]
            # row = target, columns = sources: (M r)[t] = Σ r[s] / outdeg(s) over edges s→t
            self._pr_matrix = csr_matrix(
                (inv[self.rev_nbr], self.rev_nbr, self.rev_indptr), shape=(n, n), copy=False
            )
        m = self._pr_matrix
        dangling = np.flatnonzero(out == 0)
        r = np.full(n, 1.0 / n)
        for _ in range(max_iter):
            new = m @ r
            new *= alpha
            new += (alpha * r[dangling].sum() + (1.0 - alpha)) / n
            err = float(np.abs(new - r).sum())
            r = new
            if err < tol:
                break
        r /= r.sum()
        return r

    def top(self, scores: np.ndarray, n: int = 20) -> list[tuple[str, float]]:
        n = min(n, scores.size)
        if n == 0:
            return []
        part = np.argpartition(-scores, n - 1)[:n]
        part = part[np.argsort(-scores[part], kind="stable")]
        return [(self.keys[i], float(scores[i])) for i in part]

    def cycle_ids(self) -> list[np.ndarray]:
        """Strongly connected components of size > 1 and self loops, as id arrays."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        out: list[np.ndarray] = []
        if self.e:
            g = csr_matrix(
                (np.ones(self.e, np.int8), self.fwd_nbr, self.fwd_indptr),
                shape=(self.n, self.n), copy=False,
            )
            _, labels = connected_components(g, directed=True, connection="strong")
            sizes = np.bincount(labels)
            big = np.flatnonzero(sizes > 1)
            if big.size:
                members = np.flatnonzero(np.isin(labels, big))
                order = members[np.argsort(labels[members], kind="stable")]
                splits = np.cumsum(sizes[np.sort(big)])[:-1]
                out.extend(np.split(order, splits))
            loops = np.unique(self.src[self.src == self.dst])
            in_big = set(np.flatnonzero(sizes[labels] > 1).tolist()) if big.size else set()
            out.extend(np.array([v]) for v in loops.tolist() if v not in in_big)
        return out

    def cycles(self) -> list[list[str]]:
        """Cycles: each a sorted list of keys; biggest first, then by first key."""
        res = [sorted(self.keys[i] for i in ids.tolist()) for ids in self.cycle_ids()]
        res.sort(key=lambda c: (-len(c), c[0]))
        return res

    def unused_ids(
        self, types: Iterable[str] | None = None, exclude_kinds: Iterable[str] = STRUCTURAL_KINDS,
        include_external: bool = False,
    ) -> np.ndarray:
        excl = [i for i, k in enumerate(self.kind_names) if k in set(exclude_kinds)]
        mask = ~np.isin(self.kind_codes, np.asarray(excl, dtype=self.kind_codes.dtype))
        mask &= self.src != self.dst
        used = np.zeros(self.n, bool)
        used[self.dst[mask]] = True
        sel = ~used
        if not include_external:
            sel &= ~self.external
        if types is not None:
            tset = set(types)
            codes = [i for i, t in enumerate(self.type_names) if t in tset]
            sel &= np.isin(self.type_codes, np.asarray(codes, dtype=self.type_codes.dtype))
        return np.flatnonzero(sel)

    def unused(
        self, types: Iterable[str] | None = None, exclude_kinds: Iterable[str] = STRUCTURAL_KINDS,
        include_external: bool = False,
    ) -> list[str]:
        """Keys nothing depends on, except through ``exclude_kinds`` (structural) edges.

        ``types`` restricts to those node types; external nodes are left out unless asked."""
        return sorted(self.keys[i] for i in self.unused_ids(types, exclude_kinds, include_external).tolist())


def close_matches(key: str, candidates: Sequence[str], n: int = 5, cutoff: float = 0.6) -> list[str]:
    """Case-insensitive equal keys first, then difflib matches (same type preferred)."""
    low = key.lower()
    exact = [c for c in candidates if c.lower() == low and c != key]
    type_, sep, _ = key.partition(":")
    same = [c for c in candidates if sep and c.startswith(type_ + ":")]
    pool = same or list(candidates)
    rest = [c for c in difflib.get_close_matches(key, pool, n=n, cutoff=cutoff) if c not in exact]
    if len(exact) + len(rest) < n and same:
        more = difflib.get_close_matches(key, candidates, n=n, cutoff=cutoff)
        rest += [c for c in more if c not in exact and c not in rest]
    return (exact + rest)[:n]
