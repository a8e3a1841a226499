"""``DuckDBGraphStore``: the embedded default :class:`GraphStore` (one DuckDB file, no server).

Tables (one row set per ``(org, version)``)::

    snapshots(org, version, created_at, node_count, edge_count, meta JSON, current)
    nodes(org, version, nid, key, type, name, external, attrs JSON)
    edges(org, version, eid, src, dst, kind, evidence, access, dynamic, detail)

``nid`` is the node's position in the snapshot (0..N-1); ``src``/``dst`` are nids. Edges are
written sorted by ``dst`` (stable), and ``eid`` is that position, so the in-edges of one node
are one contiguous ``eid`` range: DuckDB's per-row-group min/max statistics prune the scan
and where-used costs about a millisecond at 5M edges without any ART index (which would
triple load time). Nodes are written in ``nid`` order for the same reason.

Writing: a snapshot is written with DuckDB's bulk path (``INSERT INTO … SELECT … FROM``
a pandas frame, in batches), and the new version, the ``current`` flag flip and the pruning to
``keep`` versions are one transaction: any failure (a bad edge, a generator raising half-way)
rolls back and the previous snapshot stays current and intact. Data only travels as
parameters or frames, never inside SQL text.

Traversals run on a :class:`GraphIndex` (CSR in memory) cached per ``(org, version)``: built
from the arrays at load time, or from the tables on first use in a new process. A cached
index is dropped when its org gets a new snapshot; the cache holds ``index_cache_size``
indexes (LRU).

Concurrency: DuckDB allows one process to open a file read-write, or any number of processes
to open it ``read_only`` — not both at once. So: one writer process (the Dagster run that
refreshes the graph), and readers either share that process's store object (every method
takes the store's lock, so threads are safe and a reader never sees a half-written snapshot)
or open the file ``read_only=True`` while no writer has it open. A read-only store sees the
snapshots current when it runs each query (the index cache is keyed by version).
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from aicolleague_pipelines.lib.graph.index import GraphIndex, _codes, _csr, _index_dtype, close_matches
from aicolleague_pipelines.lib.graph.model import EDGE_KINDS, Edge, Node, placeholder_node
from aicolleague_pipelines.lib.graph.store import (
    GraphStore,
    GraphStoreError,
    Hit,
    SnapshotInfo,
    UnknownComponentError,
    UnknownOrgError,
    created_before,
)

_DDL = (
    """CREATE TABLE IF NOT EXISTS snapshots (
        org VARCHAR NOT NULL, version INTEGER NOT NULL, created_at VARCHAR NOT NULL,
        node_count BIGINT NOT NULL, edge_count BIGINT NOT NULL, meta VARCHAR,
        current BOOLEAN NOT NULL, PRIMARY KEY (org, version))""",
    """CREATE TABLE IF NOT EXISTS nodes (
        org VARCHAR NOT NULL, version INTEGER NOT NULL, nid INTEGER NOT NULL,
        key VARCHAR NOT NULL, type VARCHAR NOT NULL, name VARCHAR NOT NULL,
        external BOOLEAN NOT NULL, attrs VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS edges (
        org VARCHAR NOT NULL, version INTEGER NOT NULL, eid BIGINT NOT NULL,
        src INTEGER NOT NULL, dst INTEGER NOT NULL, kind VARCHAR NOT NULL,
        evidence VARCHAR NOT NULL, access VARCHAR, dynamic BOOLEAN NOT NULL, detail VARCHAR)""",
)

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _dumps(obj: Any) -> str:
    # ensure_ascii: lone surrogates and odd code points survive as JSON escapes.
    return json.dumps(obj, ensure_ascii=True, sort_keys=True, default=_json_default)


def _obj(values: Sequence[Any]) -> pd.Series:
    """An object-dtype column (no pandas string inference: None stays NULL, '' stays '')."""
    return pd.Series(values, dtype=object)


class DuckDBGraphStore(GraphStore):
    """Versioned per-org graph snapshots in one DuckDB file (see module docstring)."""

    def __init__(
        self,
        path: str | Path,
        read_only: bool = False,
        *,
        batch_rows: int = 200_000,
        index_cache_size: int = 4,
        config: dict[str, Any] | None = None,
    ) -> None:
        """``config``: DuckDB settings (e.g. ``{"memory_limit": "4GB", "threads": 2}``)."""
        self.path = str(path)
        self.read_only = read_only
        self.batch_rows = max(1, int(batch_rows))
        self.index_cache_size = max(1, int(index_cache_size))
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=dict(config or {}))
        except duckdb.Error as exc:
            raise GraphStoreError(
                f"cannot open graph store {self.path!r}"
                f"{' read-only' if read_only else ''}: {exc} — DuckDB allows one read-write "
                "process or several read-only ones, not both"
            ) from exc
        self._lock = threading.RLock()
        self._indexes: OrderedDict[tuple[str, int], GraphIndex] = OrderedDict()
        if not read_only:
            for ddl in _DDL:
                self._con.execute(ddl)
        self._has_tables = self._tables_exist()

    def _tables_exist(self) -> bool:
        rows = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('snapshots', 'nodes', 'edges')"
        ).fetchone()
        return bool(rows and rows[0] == 3)

    def close(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._con.close()

    # --- helpers -----------------------------------------------------------------------
    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._con.execute(sql, list(params)).fetchall()

    def _org_error(self, org: str) -> UnknownOrgError:
        known = self.orgs()
        low = {o.lower(): o for o in known}
        sugg = [low[org.lower()]] if org.lower() in low else []
        sugg += [o for o in difflib.get_close_matches(org, known, n=3, cutoff=0.5) if o not in sugg]
        hint = f" — did you mean: {', '.join(sugg)}?" if sugg else (
            f" (known: {', '.join(known)})" if known else " (the store is empty: load a snapshot first)"
        )
        err = UnknownOrgError(f"no graph snapshot for org {org!r}{hint}")
        err.org = org  # type: ignore[attr-defined]
        err.suggestions = sugg  # type: ignore[attr-defined]
        return err

    def _version(self, org: str, version: int | None = None) -> int:
        """The current version of ``org`` (or check that ``version`` is kept)."""
        if not self._has_tables:
            raise self._org_error(org)
        if version is None:
            rows = self._q("SELECT version FROM snapshots WHERE org = ? AND current", [org])
            if not rows:
                raise self._org_error(org)
            return int(rows[0][0])
        rows = self._q("SELECT 1 FROM snapshots WHERE org = ? AND version = ?", [org, int(version)])
        if not rows:
            if not self._q("SELECT 1 FROM snapshots WHERE org = ? LIMIT 1", [org]):
                raise self._org_error(org)
            kept = [s.version for s in self.snapshots(org)]
            raise GraphStoreError(f"org {org!r} has no snapshot version {version} (kept: {kept})")
        return int(version)

    # --- writing -----------------------------------------------------------------------
    def _begin_snapshot(self, org: str, meta: dict[str, Any] | None) -> tuple[int, str]:
        if not isinstance(org, str) or not org:
            raise GraphStoreError("org must be a non-empty string")
        rows = self._q("SELECT max(version) FROM snapshots WHERE org = ?", [org])
        version = int(rows[0][0] or 0) + 1
        created = _now()
        self._con.execute(
            "INSERT INTO snapshots VALUES (?, ?, ?, 0, 0, ?, false)",
            [org, version, created, _dumps(meta or {})],
        )
        return version, created

    def _finish_snapshot(self, org: str, version: int, n: int, e: int, keep: int) -> None:
        self._con.execute(
            "UPDATE snapshots SET node_count = ?, edge_count = ? WHERE org = ? AND version = ?",
            [n, e, org, version],
        )
        self._con.execute("UPDATE snapshots SET current = (version = ?) WHERE org = ?", [version, org])
        versions = [r[0] for r in self._q("SELECT version FROM snapshots WHERE org = ? ORDER BY version", [org])]
        drop = versions[:-keep]
        if drop:
            cutoff = max(drop)
            for table in ("edges", "nodes", "snapshots"):
                self._con.execute(f"DELETE FROM {table} WHERE org = ? AND version <= ?", [org, cutoff])

    def _insert_frame(self, name: str, df: pd.DataFrame, sql: str, params: Sequence[Any]) -> None:
        """``sql`` over ``df`` registered as view ``name``. When the insert fails (a full disk),
        the transaction is aborted and unregistering would raise "transaction is aborted",
        hiding the real cause: so that error is not raised."""
        con = self._con
        con.register(name, df)
        try:
            con.execute(sql, list(params))
        except BaseException:
            try:
                con.unregister(name)
            except duckdb.Error:
                pass
            raise
        con.unregister(name)

    def _abandon_load(self, org: str, exc: BaseException) -> None:
        """Roll back a failed snapshot write; a DuckDB error (disk full, no write permission, a
        failed commit) is raised as a GraphStoreError naming the org, the file and what to do.
        The previous snapshot stays current either way."""
        try:
            self._con.rollback()
        except duckdb.Error:
            pass  # a failed commit has already ended the transaction
        if isinstance(exc, duckdb.Error):
            raise GraphStoreError(
                f"org {org!r}: writing a new graph snapshot to {self.path} failed "
                f"({type(exc).__name__}: {exc}) — the previous snapshot stays current; check the "
                "free disk space and write permission there, then rerun the refresh"
            ) from exc

    def _publish(self, org: str, version: int, idx: GraphIndex | None) -> None:
        for k in [k for k in self._indexes if k[0] == org]:
            del self._indexes[k]
        if idx is not None:
            idx.org, idx.version = org, version
            self._cache(org, version, idx)

    def _cache(self, org: str, version: int, idx: GraphIndex) -> None:
        self._indexes[(org, version)] = idx
        self._indexes.move_to_end((org, version))
        while len(self._indexes) > self.index_cache_size:
            self._indexes.popitem(last=False)

    def _info(self, org: str, version: int) -> SnapshotInfo:
        r = self._q(
            "SELECT org, version, created_at, node_count, edge_count, meta FROM snapshots WHERE org = ? AND version = ?",
            [org, version],
        )[0]
        return SnapshotInfo(r[0], int(r[1]), r[2], int(r[3]), int(r[4]), json.loads(r[5] or "{}"))

    def load_snapshot(
        self,
        org: str,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        meta: dict[str, Any] | None = None,
        keep: int = 10,
    ) -> SnapshotInfo:
        if keep < 1:
            raise GraphStoreError("keep must be >= 1")
        self._require_writable()
        with self._lock:
            con = self._con
            con.begin()
            try:
                version, _ = self._begin_snapshot(org, meta)
                ids: dict[str, int] = {}
                keys: list[str] = []
                types: list[str] = []
                external: list[bool] = []
                cols: dict[str, list[Any]] = {"key": [], "type": [], "name": [], "external": [], "attrs": []}
                start = 0

                def flush_nodes() -> None:
                    nonlocal start, cols
                    k = len(cols["key"])
                    if not k:
                        return
                    df = pd.DataFrame(
                        {
                            "nid": np.arange(start, start + k, dtype=np.int32),
                            "key": _obj(cols["key"]),
                            "type": _obj(cols["type"]),
                            "name": _obj(cols["name"]),
                            "external": np.asarray(cols["external"], dtype=bool),
                            "attrs": _obj(cols["attrs"]),
                        }
                    )
                    self._insert_frame(
                        "_aic_nodes_df", df,
                        "INSERT INTO nodes SELECT ?, ?, nid, key::VARCHAR, type::VARCHAR, "
                        "name::VARCHAR, external, attrs::VARCHAR FROM _aic_nodes_df",
                        [org, version],
                    )
                    start += k
                    cols = {c: [] for c in cols}

                for nd in nodes:
                    key = nd.key
                    if not isinstance(key, str) or not key:
                        raise GraphStoreError(f"org {org!r}: node key must be a non-empty string, got {key!r}")
                    if key in ids:
                        raise GraphStoreError(f"org {org!r}: duplicate node key {key!r}")
                    ids[key] = len(keys)
                    keys.append(key)
                    types.append(nd.type)
                    external.append(bool(nd.external))
                    cols["key"].append(key)
                    cols["type"].append(nd.type)
                    cols["name"].append(nd.name)
                    cols["external"].append(bool(nd.external))
                    cols["attrs"].append(_dumps(nd.attrs) if nd.attrs else None)
                    if len(cols["key"]) >= self.batch_rows:
                        flush_nodes()
                flush_nodes()

                src: list[int] = []
                dst: list[int] = []
                ecols: dict[str, list[Any]] = {"kind": [], "evidence": [], "access": [], "dynamic": [], "detail": []}
                placeholders: list[str] = []

                def endpoint(key: str) -> int:
                    # An endpoint missing from the nodes becomes an external node, as in the
                    # Neo4j store: a caller's oversight must not lose the edge or the load.
                    nid = ids.get(key)
                    if nid is None:
                        if not isinstance(key, str) or not key:
                            raise GraphStoreError(
                                f"org {org!r}: edge endpoint must be a non-empty string, got {key!r}")
                        ph = placeholder_node(key)
                        nid = ids[key] = len(keys)
                        keys.append(key)
                        types.append(ph.type)
                        external.append(True)
                        for col, value in (("key", key), ("type", ph.type), ("name", ph.name),
                                           ("external", True), ("attrs", None)):
                            cols[col].append(value)
                        placeholders.append(key)
                    return nid

                for ed in edges:
                    src.append(endpoint(ed.source))
                    dst.append(endpoint(ed.target))
                    ecols["kind"].append(ed.kind)
                    ecols["evidence"].append(ed.evidence if ed.evidence is not None else "")
                    ecols["access"].append(ed.access)
                    ecols["dynamic"].append(bool(ed.dynamic))
                    ecols["detail"].append(ed.detail)
                flush_nodes()
                if placeholders:
                    log.warning(
                        "org %r: %d edge endpoint(s) were not among the nodes; stored as external "
                        "nodes (e.g. %r)", org, len(placeholders), placeholders[0],
                    )
                e = len(src)
                dyn_a = np.asarray(ecols.pop("dynamic"), dtype=bool)
                src_a = np.asarray(src, dtype=np.int64)
                dst_a = np.asarray(dst, dtype=np.int64)
                order = np.argsort(dst_a, kind="stable")
                src_a, dst_a = src_a[order], dst_a[order]
                for lo in range(0, e, self.batch_rows):
                    sel = order[lo : lo + self.batch_rows]
                    df = pd.DataFrame(
                        {
                            "eid": np.arange(lo, lo + sel.size, dtype=np.int64),
                            "src": src_a[lo : lo + sel.size].astype(np.int32),
                            "dst": dst_a[lo : lo + sel.size].astype(np.int32),
                            **{c: _obj([v[i] for i in sel.tolist()]) for c, v in ecols.items()},
                            "dynamic": dyn_a[sel],
                        }
                    )
                    self._insert_frame(
                        "_aic_edges_df", df,
                        "INSERT INTO edges SELECT ?, ?, eid, src, dst, kind::VARCHAR, evidence::VARCHAR, "
                        "access::VARCHAR, dynamic, detail::VARCHAR FROM _aic_edges_df",
                        [org, version],
                    )
                kinds_sorted = [ecols["kind"][i] for i in order.tolist()]
                kind_names = sorted(set(EDGE_KINDS) | set(kinds_sorted))
                kmap = {k: i for i, k in enumerate(kind_names)}
                self._finish_snapshot(org, version, len(keys), e, keep)
                con.commit()
            except BaseException as exc:
                self._abandon_load(org, exc)
                raise
            idx = GraphIndex(
                np.asarray(keys, dtype=object),
                types,
                src_a,
                dst_a,
                np.asarray([kmap[k] for k in kinds_sorted], dtype=np.uint8),
                external=np.asarray(external, dtype=bool),
                kind_names=kind_names,
            )
            idx._key_to_id = ids
            self._publish(org, version, idx)
            return self._info(org, version)

    def load_arrays(
        self,
        org: str,
        keys: Sequence[str] | np.ndarray,
        types: Any,
        src: np.ndarray,
        dst: np.ndarray,
        kinds: Any,
        *,
        external: np.ndarray | None = None,
        type_names: Sequence[str] | None = None,
        kind_names: Sequence[str] | None = EDGE_KINDS,
        evidence: str = "",
        meta: dict[str, Any] | None = None,
        keep: int = 10,
    ) -> SnapshotInfo:
        """Bulk path: a snapshot from columns, no Python object per edge.

        ``keys``: one key per node (nid = position). ``types``/``kinds``: strings per row, or
        integer codes with ``type_names``/``kind_names``. ``src``/``dst``: nid arrays. Node
        names are the part of the key after ``Type:``; attrs are empty; every edge gets the
        same ``evidence``. Same atomicity as :meth:`load_snapshot`.
        """
        if keep < 1:
            raise GraphStoreError("keep must be >= 1")
        self._require_writable()
        try:
            keys_a = keys if isinstance(keys, np.ndarray) and keys.dtype == object else np.asarray(list(keys), dtype=object)
            tcodes, tnames = _codes(types, type_names, "types")
            kcodes, knames = _codes(kinds, kind_names, "kinds")
            src = np.asarray(src)
            dst = np.asarray(dst)
            n, e = int(keys_a.size), int(src.size)
            if dst.size != e or kcodes.size != e or tcodes.size != n:
                raise ValueError("keys/types and src/dst/kinds must have matching lengths")
            if e and (min(int(src.min()), int(dst.min())) < 0 or max(int(src.max()), int(dst.max())) >= n):
                raise ValueError("edge endpoint out of range of the node ids")
            # Stable counting sort by dst: eid order = reverse-CSR order (see module docstring).
            idt = _index_dtype(n, e)
            rev_indptr, src_sorted, order = _csr(n, dst.astype(idt, copy=False), src.astype(idt, copy=False), idt)
            dst_sorted = np.repeat(np.arange(n, dtype=idt), np.diff(rev_indptr))
            kcodes_sorted = kcodes[order]
            del order, rev_indptr
        except ValueError as exc:
            raise GraphStoreError(f"org {org!r}: {exc}") from exc
        idx = GraphIndex(
            keys_a, tcodes, src_sorted, dst_sorted, kcodes_sorted,
            external=external, type_names=tnames, kind_names=knames,
        )
        if len(idx.key_to_id) != n:
            raise GraphStoreError(f"org {org!r}: duplicate node keys")
        ext = idx.external
        with self._lock:
            con = self._con
            con.begin()
            try:
                version, _ = self._begin_snapshot(org, meta)
                for lo in range(0, n, 2_000_000):
                    hi = min(n, lo + 2_000_000)
                    ndf = pd.DataFrame(
                        {
                            "nid": np.arange(lo, hi, dtype=np.int32),
                            "key": keys_a[lo:hi],
                            "type": pd.Categorical.from_codes(tcodes[lo:hi].astype(np.int32), categories=tnames),
                            "external": ext[lo:hi],
                        }
                    )
                    self._insert_frame(
                        "_aic_nodes_df", ndf,
                        "INSERT INTO nodes SELECT ?, ?, nid, key::VARCHAR, type::VARCHAR, "
                        "substr(key::VARCHAR, strpos(key::VARCHAR, ':') + 1), external, NULL FROM _aic_nodes_df",
                        [org, version],
                    )
                for lo in range(0, e, 10_000_000):
                    hi = min(e, lo + 10_000_000)
                    edf = pd.DataFrame(
                        {
                            "eid": np.arange(lo, hi, dtype=np.int64),
                            "src": idx.src[lo:hi],
                            "dst": idx.dst[lo:hi],
                            "kind": pd.Categorical.from_codes(idx.kind_codes[lo:hi].astype(np.int32), categories=knames),
                        }
                    )
                    self._insert_frame(
                        "_aic_edges_df", edf,
                        "INSERT INTO edges SELECT ?, ?, eid, src, dst, kind::VARCHAR, ?, NULL, false, NULL "
                        "FROM _aic_edges_df",
                        [org, version, evidence],
                    )
                self._finish_snapshot(org, version, n, e, keep)
                con.commit()
            except BaseException as exc:
                self._abandon_load(org, exc)
                raise
            self._publish(org, version, idx)
            return self._info(org, version)

    def prune_older_than(self, org: str, cutoff: datetime) -> list[int]:
        """Delete ``org``'s snapshots created before ``cutoff``, never the current one (data
        retention), in one transaction. Returns the versions deleted."""
        self._require_writable()
        with self._lock:
            current = self._version(org)  # UnknownOrgError for an org without snapshots
            rows = self._q("SELECT version, created_at FROM snapshots WHERE org = ? ORDER BY version", [org])
            doomed = [int(v) for v, created in rows if int(v) != current and created_before(created, cutoff)]
            if not doomed:
                return []
            con = self._con
            con.begin()
            try:
                for table in ("edges", "nodes", "snapshots"):
                    con.execute(f"DELETE FROM {table} WHERE org = ? AND list_contains(?, version)", [org, doomed])
                con.commit()
            except BaseException:
                con.rollback()
                raise
            for v in doomed:
                self._indexes.pop((org, v), None)
            return doomed

    def _require_writable(self) -> None:
        if self.read_only:
            raise GraphStoreError(f"graph store {self.path!r} is open read-only")

    # --- reading -----------------------------------------------------------------------
    def orgs(self) -> list[str]:
        if not self._has_tables:
            self._has_tables = self._tables_exist()
            if not self._has_tables:
                return []
        with self._lock:
            return [r[0] for r in self._q("SELECT DISTINCT org FROM snapshots ORDER BY org")]

    def snapshots(self, org: str) -> list[SnapshotInfo]:
        with self._lock:
            self._version(org)
            rows = self._q(
                "SELECT org, version, created_at, node_count, edge_count, meta FROM snapshots "
                "WHERE org = ? ORDER BY version",
                [org],
            )
        return [SnapshotInfo(r[0], int(r[1]), r[2], int(r[3]), int(r[4]), json.loads(r[5] or "{}")) for r in rows]

    def snapshot(self, org: str, version: int | None = None) -> SnapshotInfo:
        """Info of the current (or a given kept) snapshot of ``org``."""
        with self._lock:
            return self._info(org, self._version(org, version))

    @staticmethod
    def _node(row: tuple[Any, ...]) -> Node:
        return Node(row[0], row[1], row[2], bool(row[3]), json.loads(row[4]) if row[4] else {})

    def nodes(self, org: str, version: int | None = None) -> list[Node]:
        with self._lock:
            v = self._version(org, version)
            rows = self._q(
                "SELECT key, type, name, external, attrs FROM nodes WHERE org = ? AND version = ? ORDER BY nid",
                [org, v],
            )
        return [self._node(r) for r in rows]

    def _keys(self, org: str, v: int) -> Sequence[str]:
        idx = self._indexes.get((org, v))
        if idx is not None:
            return idx.keys
        return [r[0] for r in self._q("SELECT key FROM nodes WHERE org = ? AND version = ? ORDER BY nid", [org, v])]

    def edges(self, org: str, version: int | None = None) -> list[Edge]:
        with self._lock:
            v = self._version(org, version)
            keys = self._keys(org, v)
            rows = self._q(
                "SELECT src, dst, kind, evidence, access, dynamic, detail FROM edges "
                "WHERE org = ? AND version = ? ORDER BY eid",
                [org, v],
            )
        return [Edge(keys[r[0]], keys[r[1]], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def node(self, org: str, key: str, version: int | None = None) -> Node | None:
        with self._lock:
            v = self._version(org, version)
            idx = self._indexes.get((org, v))
            if idx is not None:
                nid = idx.nid(key)
                if nid is None:
                    return None
                rows = self._q(
                    "SELECT key, type, name, external, attrs FROM nodes WHERE org = ? AND version = ? AND nid = ?",
                    [org, v, nid],
                )
            else:
                rows = self._q(
                    "SELECT key, type, name, external, attrs FROM nodes WHERE org = ? AND version = ? AND key = ?",
                    [org, v, key],
                )
        return self._node(rows[0]) if rows else None

    def suggest(self, org: str, key: str, n: int = 5) -> list[str]:
        """Keys of ``org`` close to ``key`` (case-insensitive equal first, then difflib over the
        200 most similar keys by Jaro-Winkler, computed in DuckDB so it scales to 10M keys)."""
        with self._lock:
            v = self._version(org)
            rows = self._q(
                "SELECT key FROM nodes WHERE org = ? AND version = ? "
                "ORDER BY jaro_winkler_similarity(lower(key), lower(?)) DESC, key LIMIT 200",
                [org, v, key],
            )
        return close_matches(key, [r[0] for r in rows], n=n)

    # --- traversals --------------------------------------------------------------------
    def graph_index(self, org: str, version: int | None = None) -> GraphIndex:
        """The CSR index of ``org``'s current (or given) snapshot, built once and cached."""
        with self._lock:
            v = self._version(org, version)
            idx = self._indexes.get((org, v))
            if idx is not None:
                self._indexes.move_to_end((org, v))
                return idx
            idx = self._build_index(org, v)
            self._cache(org, v, idx)
            return idx

    def _build_index(self, org: str, v: int) -> GraphIndex:
        type_names = [r[0] for r in self._q("SELECT DISTINCT type FROM nodes WHERE org = ? AND version = ? ORDER BY 1", [org, v])]
        kind_names = sorted(
            set(EDGE_KINDS)
            | {r[0] for r in self._q("SELECT DISTINCT kind FROM edges WHERE org = ? AND version = ?", [org, v])}
        )
        nd = self._con.execute(
            "SELECT nid, key, (list_position(?, type) - 1)::INTEGER AS t, external FROM nodes "
            "WHERE org = ? AND version = ?",
            [type_names, org, v],
        ).fetchnumpy()
        ed = self._con.execute(
            "SELECT eid, src, dst, (list_position(?, kind) - 1)::INTEGER AS k FROM edges "
            "WHERE org = ? AND version = ?",
            [kind_names, org, v],
        ).fetchnumpy()
        nid = np.asarray(nd["nid"])
        keys = np.asarray(nd["key"], dtype=object)
        tcodes = np.asarray(nd["t"])
        ext = np.asarray(nd["external"], dtype=bool)
        if nid.size and not np.array_equal(nid, np.arange(nid.size)):
            o = np.argsort(nid)
            keys, tcodes, ext = keys[o], tcodes[o], ext[o]
        eid = np.asarray(ed["eid"])
        src, dst, kc = np.asarray(ed["src"]), np.asarray(ed["dst"]), np.asarray(ed["k"])
        if eid.size and not np.array_equal(eid, np.arange(eid.size)):
            o = np.argsort(eid)
            src, dst, kc = src[o], dst[o], kc[o]
        return GraphIndex(
            keys, tcodes, src, dst, kc, external=ext, type_names=type_names, kind_names=kind_names,
            org=org, version=v,
        )

    def _nid(self, org: str, idx: GraphIndex, key: str) -> int:
        nid = idx.nid(key)
        if nid is None:
            raise UnknownComponentError(org, key, self.suggest(org, key))
        return nid

    def where_used(self, org: str, key: str, version: int | None = None) -> list[Edge]:
        with self._lock:
            idx = self.graph_index(org, version)
            nid = self._nid(org, idx, key)
            lo, hi = int(idx.rev_indptr[nid]), int(idx.rev_indptr[nid + 1])
            if hi == lo:
                return []
            rows = self._q(
                "SELECT src, kind, evidence, access, dynamic, detail FROM edges "
                "WHERE org = ? AND version = ? AND eid >= ? AND eid < ? ORDER BY eid",
                [org, idx.version, lo, hi],
            )
            keys = idx.keys
        out = [Edge(keys[r[0]], key, r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]
        out.sort(key=lambda ed: (ed.source, ed.kind, ed.evidence))
        return out

    def impact(
        self, org: str, key: str, depth: int | None = None, *, limit: int | None = None,
        version: int | None = None,
    ) -> list[Hit]:
        with self._lock:
            idx = self.graph_index(org, version)
            return idx._hits(idx.closure(self._nid(org, idx, key), reverse=True, depth=depth), limit)

    def dependencies(
        self, org: str, key: str, depth: int | None = None, *, limit: int | None = None,
        version: int | None = None,
    ) -> list[Hit]:
        with self._lock:
            idx = self.graph_index(org, version)
            return idx._hits(idx.closure(self._nid(org, idx, key), reverse=False, depth=depth), limit)
