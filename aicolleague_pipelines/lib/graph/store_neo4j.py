"""The Neo4j backend of :class:`~aicolleague_pipelines.lib.graph.store.GraphStore`.

Graph model (one Neo4j database may hold many orgs and several versions of each)::

    (:Component {uid, org, version, key, type, name, external, attrs_json})
        uid = "<org>|<version>|<key>"  (unique constraint; org may not contain "|")
    (:Component)-[:DEPENDS_ON {kind, evidence, access, dynamic, detail}]->(:Component)
    (:Snapshot {uid, org, version, created_at, node_count, edge_count, meta_json, current, state})

Loading a snapshot (:meth:`Neo4jGraphStore.load_snapshot`):

1. the schema (constraints first, then indexes) is created once per store instance;
2. a ``Snapshot`` is created for version ``max + 1`` with ``state='loading'`` and
   ``current=false`` (the unique ``Snapshot.uid`` makes two concurrent loaders of one org
   collide instead of sharing a version);
3. nodes, then edges, are written in ``UNWIND $rows`` batches of ``batch_size``, each batch
   its own managed transaction (``execute_write`` retries transient errors). The fast path
   is ``CREATE`` for nodes and ``MATCH``-both-endpoints for edges; a batch it cannot take
   whole (a key given twice; an edge endpoint that is not among the nodes) is rolled back and
   rewritten with ``MERGE`` (a repeated key: the last one wins; an unknown endpoint becomes an
   *external* node, ``Type:Name`` split like ``split_key``, ``Unknown`` without a colon);
4. only then one small transaction marks the new version ``complete`` and ``current`` and
   clears ``current`` on the old one. Readers resolve the current version first and then
   read that version only, so they see the old snapshot or the new one, never a mix;
5. on any failure before the flip, the partial version is deleted (best effort; if that
   fails too, its ``Snapshot`` stays as ``state='failed'`` and the next load's pruning retries);
   the old snapshot stays current and complete;
6. complete versions beyond ``keep`` are pruned (marked ``deleting`` first, then removed in
   batches), as are failed loads and loads left ``loading`` for over ``stale_after_s``.

Traversals are a breadth-first search in Python, one query per level
(``UNWIND $frontier ... MATCH (x:Component {uid: ...})<-[e:DEPENDS_ON]-(n)``) rather than a
variable-length pattern: ``-[*1..N]-`` enumerates every *path* (relationship-unique trails in
Neo4j, other rules in other engines), which explodes on the dense hubs of real orgs (an object
with 10⁵ dependents reached through cycles), and cannot report one shortest path per
component without ``shortestPath`` per target. Level-by-level BFS visits each component once,
costs one indexed lookup per frontier key, returns the BFS (shortest) path of every hit, stops
at ``depth``, and is the same plain Cypher in Neo4j and in the Bolt stand-in the tests use.

Every query is a constant string in this module; data only ever travels as parameters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import neo4j
from neo4j.exceptions import ConstraintError, DriverError, Neo4jError

from aicolleague_pipelines.lib.graph.model import Edge, Node, placeholder_node
from aicolleague_pipelines.lib.graph.store import (
    GraphStore,
    GraphStoreError,
    Hit,
    SnapshotInfo,
    UnknownComponentError,
    UnknownOrgError,
    created_before,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ENV_URI = "NEO4J_URI"
ENV_USER = "NEO4J_USER"
ENV_PASSWORD = "NEO4J_PASSWORD"
ENV_DATABASE = "NEO4J_DATABASE"

LOADING, COMPLETE, FAILED, DELETING = "loading", "complete", "failed", "deleting"

# --- schema (constraints before indexes; every statement idempotent) ----------------------
SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT aic_component_uid IF NOT EXISTS "
    "FOR (c:Component) REQUIRE c.uid IS UNIQUE",
    "CREATE CONSTRAINT aic_snapshot_uid IF NOT EXISTS "
    "FOR (s:Snapshot) REQUIRE s.uid IS UNIQUE",
    "CREATE INDEX aic_component_org_version_key IF NOT EXISTS "
    "FOR (c:Component) ON (c.org, c.version, c.key)",
    "CREATE INDEX aic_snapshot_org IF NOT EXISTS FOR (s:Snapshot) ON (s.org)",
)

# --- snapshot bookkeeping -------------------------------------------------------------------
Q_ALLOCATE = """
OPTIONAL MATCH (s:Snapshot {org: $org})
WITH coalesce(max(s.version), 0) + 1 AS v
CREATE (n:Snapshot {uid: $org + '|' + toString(v), org: $org, version: v,
                    created_at: $created_at, state: 'loading', current: false,
                    node_count: 0, edge_count: 0, meta_json: $meta_json})
RETURN v AS version
"""
Q_SNAPSHOTS = """
MATCH (s:Snapshot {org: $org})
RETURN s.version AS version, s.state AS state, s.current AS current,
       s.created_at AS created_at, s.node_count AS node_count,
       s.edge_count AS edge_count, s.meta_json AS meta_json
"""
Q_ORGS = """
MATCH (s:Snapshot)
WHERE s.state = 'complete'
RETURN DISTINCT s.org AS org
"""
Q_NEWER_COMPLETE = """
MATCH (s:Snapshot {org: $org})
WHERE s.state = 'complete' AND s.version > $version
RETURN count(s) AS n
"""
Q_FLIP_NEW = """
MATCH (s:Snapshot {org: $org, version: $version})
WHERE s.state = 'loading'
SET s.state = 'complete', s.current = true,
    s.node_count = $node_count, s.edge_count = $edge_count
RETURN count(s) AS n
"""
Q_FLIP_OLD = """
MATCH (s:Snapshot {org: $org})
WHERE s.current = true AND s.version <> $version
SET s.current = false
RETURN count(s) AS n
"""
Q_MARK = """
MATCH (s:Snapshot {org: $org, version: $version})
WHERE s.state IN $from_states
SET s.state = $state, s.current = false
RETURN count(s) AS n
"""
Q_DELETE_SNAPSHOT = """
MATCH (s:Snapshot {org: $org, version: $version})
DELETE s
RETURN count(*) AS n
"""

# --- writing ----------------------------------------------------------------------------------
# Fast paths: CREATE nodes / MATCH endpoints. A batch they cannot take whole (a key given twice
# → uniqueness violation; an edge endpoint that is not a node → fewer edges than rows) is rolled
# back and written again with the MERGE variant, which is slower but takes anything.
Q_WRITE_NODES = """
UNWIND $rows AS r
CREATE (c:Component {uid: $prefix + r.key, org: $org, version: $version, key: r.key,
                     type: r.type, name: r.name, external: r.external,
                     attrs_json: r.attrs_json})
RETURN count(c) AS n
"""
Q_MERGE_NODES = """
UNWIND $rows AS r
MERGE (c:Component {uid: $prefix + r.key})
SET c.org = $org, c.version = $version, c.key = r.key, c.type = r.type, c.name = r.name,
    c.external = r.external, c.attrs_json = r.attrs_json
RETURN count(*) AS n
"""
Q_WRITE_EDGES = """
UNWIND $rows AS r
MATCH (s:Component {uid: $prefix + r.source})
MATCH (t:Component {uid: $prefix + r.target})
CREATE (s)-[e:DEPENDS_ON {kind: r.kind, evidence: r.evidence, access: r.access,
                          dynamic: r.dynamic, detail: r.detail}]->(t)
RETURN count(e) AS n
"""
Q_MERGE_EDGES = """
UNWIND $rows AS r
MERGE (s:Component {uid: $prefix + r.source})
  ON CREATE SET s.org = $org, s.version = $version, s.key = r.source, s.external = true,
                s.attrs_json = '{}', s.placeholder = true
MERGE (t:Component {uid: $prefix + r.target})
  ON CREATE SET t.org = $org, t.version = $version, t.key = r.target, t.external = true,
                t.attrs_json = '{}', t.placeholder = true
CREATE (s)-[e:DEPENDS_ON {kind: r.kind, evidence: r.evidence, access: r.access,
                          dynamic: r.dynamic, detail: r.detail}]->(t)
RETURN count(e) AS n
"""
Q_PLACEHOLDERS = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.placeholder = true
RETURN c.key AS key
"""
Q_FILL_PLACEHOLDERS = """
UNWIND $rows AS r
MATCH (c:Component {uid: r.uid})
SET c.type = r.type, c.name = r.name
REMOVE c.placeholder
RETURN count(*) AS n
"""
Q_COUNT_NODES = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.key IS NOT NULL
RETURN count(c) AS n
"""
Q_COUNT_EDGES = """
MATCH (c:Component {org: $org, version: $version})-[e:DEPENDS_ON]->(:Component)
WHERE c.key IS NOT NULL
RETURN count(e) AS n
"""

# --- deleting (batched: bounded transaction size even for hubs) -----------------------------
Q_DELETE_EDGES_BATCH = """
MATCH (c:Component {org: $org, version: $version})-[e:DEPENDS_ON]->()
WHERE c.key IS NOT NULL
WITH e LIMIT $limit
DELETE e
RETURN count(*) AS n
"""
Q_DELETE_NODES_BATCH = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.key IS NOT NULL
WITH c LIMIT $limit
DETACH DELETE c
RETURN count(*) AS n
"""

# --- reading ----------------------------------------------------------------------------------
Q_NODES = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.key IS NOT NULL
RETURN c.key AS key, c.type AS type, c.name AS name, c.external AS external,
       c.attrs_json AS attrs_json
"""
Q_EDGES = """
MATCH (s:Component {org: $org, version: $version})-[e:DEPENDS_ON]->(t:Component)
WHERE s.key IS NOT NULL
RETURN s.key AS source, t.key AS target, e.kind AS kind, e.evidence AS evidence,
       e.access AS access, e.dynamic AS dynamic, e.detail AS detail
"""
Q_NODE = """
MATCH (c:Component {uid: $uid})
RETURN c.key AS key, c.type AS type, c.name AS name, c.external AS external,
       c.attrs_json AS attrs_json
"""
Q_WHERE_USED = """
MATCH (s:Component)-[e:DEPENDS_ON]->(t:Component {uid: $uid})
RETURN s.key AS source, t.key AS target, e.kind AS kind, e.evidence AS evidence,
       e.access AS access, e.dynamic AS dynamic, e.detail AS detail
"""
Q_STEP_IN = """
UNWIND $keys AS k
MATCH (x:Component {uid: $prefix + k})<-[e:DEPENDS_ON]-(n:Component)
RETURN k AS parent, n.key AS key, n.type AS type, n.external AS external, e.kind AS kind
"""
Q_STEP_OUT = """
UNWIND $keys AS k
MATCH (x:Component {uid: $prefix + k})-[e:DEPENDS_ON]->(n:Component)
RETURN k AS parent, n.key AS key, n.type AS type, n.external AS external, e.kind AS kind
"""
Q_KEYS_OF_TYPE = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.key IS NOT NULL AND c.type = $type
RETURN c.key AS key
LIMIT $limit
"""
Q_KEYS = """
MATCH (c:Component {org: $org, version: $version})
WHERE c.key IS NOT NULL
RETURN c.key AS key
LIMIT $limit
"""


class _NeedsMerge(Exception):
    """A fast-path batch did not write every row: roll back and use the MERGE variant."""


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _split_key(key: str) -> tuple[str, str]:
    """``Type:FullName`` → (type, name), lenient (an external placeholder must not fail)."""
    node = placeholder_node(key)
    return node.type, node.name


def _redact_uri(uri: str) -> str:
    """The URI without any ``user:password@`` part (for repr, logs and messages)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _node_from(r: Any) -> Node:
    attrs_json = r["attrs_json"]
    return Node(
        key=r["key"],
        type=r["type"],
        name=r["name"],
        external=bool(r["external"]),
        attrs=json.loads(attrs_json) if attrs_json else {},
    )


def _edge_from(r: Any) -> Edge:
    return Edge(
        source=r["source"],
        target=r["target"],
        kind=r["kind"],
        evidence=r["evidence"],
        access=r["access"],
        dynamic=bool(r["dynamic"]),
        detail=r["detail"],
    )


def _edge_sort_key(e: Edge) -> tuple:
    return (e.source, e.target, e.kind, e.evidence, e.access or "", e.dynamic, e.detail or "")


class Neo4jGraphStore(GraphStore):
    """Versioned per-org dependency graphs in Neo4j (or anything speaking Bolt + Cypher)."""

    #: A load still ``loading`` after this long is treated as abandoned and pruned.
    stale_after_s: float = 6 * 3600
    #: Frontier keys per traversal query (one hub level can be 10⁵+ keys).
    frontier_batch: int = 10_000
    #: Keys scanned for "did you mean" suggestions.
    suggestion_scan_limit: int = 100_000

    def __init__(
        self,
        uri: str,
        auth: tuple[str, str] | None = None,
        database: str | None = None,
        batch_size: int = 5000,
        **driver_config: Any,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.uri = _redact_uri(uri)
        self.user = auth[0] if auth else None
        self.database = database
        self.batch_size = batch_size
        self._schema_ready = False
        try:
            self._driver = neo4j.GraphDatabase.driver(uri, auth=auth, **driver_config)
        except (DriverError, Neo4jError, ValueError) as exc:
            detail = str(exc).replace(uri, self.uri)  # the message may quote a user:pw@ URI
            raise GraphStoreError(
                f"cannot configure the Neo4j driver for {self.uri}: {detail} — check {ENV_URI}"
            ) from None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> "Neo4jGraphStore":
        """From NEO4J_URI, NEO4J_USER (default ``neo4j``), NEO4J_PASSWORD, NEO4J_DATABASE.

        Without NEO4J_PASSWORD (and NEO4J_USER) the driver connects without authentication.
        """
        env = os.environ if environ is None else environ
        uri = env.get(ENV_URI)
        if not uri:
            raise GraphStoreError(f"{ENV_URI} is not set: cannot open the Neo4j graph store")
        password = env.get(ENV_PASSWORD)
        user = env.get(ENV_USER)
        auth = (user or "neo4j", password) if password is not None else None
        if user and password is None:
            raise GraphStoreError(f"{ENV_USER} is set but {ENV_PASSWORD} is not")
        return cls(uri, auth=auth, database=env.get(ENV_DATABASE) or None, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(uri={self.uri!r}, user={self.user!r}, "
            f"database={self.database!r}, batch_size={self.batch_size})"
        )

    def close(self) -> None:
        self._driver.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _session(self, write: bool) -> neo4j.Session:
        return self._driver.session(
            database=self.database,
            default_access_mode=neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS,
            # read-your-writes across a cluster: every session shares the driver's bookmarks
            bookmark_manager=self._driver.execute_query_bookmark_manager,
        )

    def _wrap(self, exc: Exception, org: str | None, what: str) -> GraphStoreError:
        where = f"org {org!r}: " if org is not None else ""
        return GraphStoreError(f"{where}{what} failed on Neo4j at {self.uri}: {exc}")

    def _read(self, org: str | None, what: str, fn: Callable[..., T], /, *args: Any) -> T:
        try:
            with self._session(write=False) as session:
                return session.execute_read(fn, *args)
        except (Neo4jError, DriverError) as exc:
            raise self._wrap(exc, org, what) from exc

    def _write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self._session(write=True) as session:
            return session.execute_write(fn, *args, **kwargs)

    def _read_query(self, org: str | None, what: str, query: str, /, **params: Any) -> list[Any]:
        def work(tx: neo4j.ManagedTransaction) -> list[Any]:
            return list(tx.run(query, params))

        return self._read(org, what, work)

    @staticmethod
    def _single(tx: neo4j.ManagedTransaction, query: str, /, **params: Any) -> Any:
        record = tx.run(query, params).single()
        return None if record is None else record[0]

    def verify_connectivity(self) -> None:
        """Raise :class:`GraphStoreError` (never showing the password) when Neo4j is unreachable."""
        try:
            self._driver.verify_connectivity()
        except (Neo4jError, DriverError) as exc:
            raise GraphStoreError(
                f"Neo4j at {self.uri} is not reachable: {exc} — check {ENV_URI}, {ENV_USER}, "
                f"{ENV_PASSWORD}"
            ) from exc

    def ensure_schema(self) -> None:
        """Create the uniqueness constraints, then the indexes (idempotent)."""
        if self._schema_ready:
            return
        for statement in SCHEMA_STATEMENTS:
            try:
                self._write(lambda tx, q=statement: tx.run(q).consume())
            except (Neo4jError, DriverError) as exc:
                raise self._wrap(exc, None, f"creating the schema ({statement!r})") from exc
        self._schema_ready = True

    @staticmethod
    def _check_org(org: str) -> None:
        if not isinstance(org, str) or not org:
            raise GraphStoreError(f"org must be a non-empty string, got {org!r}")
        if "|" in org:
            raise GraphStoreError(f"org {org!r}: names may not contain '|' (used in node uids)")

    @staticmethod
    def _prefix(org: str, version: int) -> str:
        return f"{org}|{version}|"

    # --- writing ----------------------------------------------------------------------------
    def load_snapshot(
        self,
        org: str,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        meta: dict[str, Any] | None = None,
        keep: int = 10,
    ) -> SnapshotInfo:
        self._check_org(org)
        if keep < 1:
            raise GraphStoreError(f"org {org!r}: keep must be >= 1, got {keep}")
        try:
            meta_json = json.dumps(meta or {}, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise GraphStoreError(f"org {org!r}: snapshot meta is not JSON: {exc}") from exc
        self.ensure_schema()
        created_at = _now()
        version = self._allocate(org, created_at, meta_json)
        started = time.perf_counter()
        try:
            n_rows = self._write_nodes(org, version, nodes)
            e_rows = self._write_edges(org, version, edges)
            self._fill_placeholders(org, version)
            node_count, edge_count = self._count(org, version)
            self._flip(org, version, node_count, edge_count)
        except BaseException as exc:
            self._abandon(org, version, exc)
            if isinstance(exc, (Neo4jError, DriverError)):
                raise GraphStoreError(
                    f"{self._wrap(exc, org, f'loading snapshot v{version}')} — the previous "
                    "snapshot stays current; rerun the refresh (if it keeps failing, check that "
                    f"Neo4j is up and reachable at {ENV_URI})"
                ) from exc
            raise
        log.info(
            "org %r: snapshot v%d current — %d nodes (%d rows), %d edges (%d rows) in %.1f s",
            org, version, node_count, n_rows, edge_count, e_rows, time.perf_counter() - started,
        )
        try:
            self.prune(org, keep)
        except (Neo4jError, DriverError, GraphStoreError) as exc:
            log.warning("org %r: pruning old snapshots failed (retried next load): %s", org, exc)
        return SnapshotInfo(
            org=org,
            version=version,
            created_at=created_at,
            node_count=node_count,
            edge_count=edge_count,
            meta=json.loads(meta_json),
        )

    def _allocate(self, org: str, created_at: str, meta_json: str) -> int:
        for attempt in range(5):
            try:
                return int(
                    self._write(
                        self._single, Q_ALLOCATE, org=org, created_at=created_at,
                        meta_json=meta_json,
                    )
                )
            except ConstraintError:  # another loader took this version number: take the next
                log.info("org %r: version number taken concurrently (attempt %d)", org, attempt)
            except (Neo4jError, DriverError) as exc:
                raise self._wrap(exc, org, "starting a snapshot") from exc
        raise GraphStoreError(
            f"org {org!r}: could not allocate a snapshot version (concurrent loads?)"
        )

    def _write_batch(self, fast: str, slow: str, rows: list[dict], **params: Any) -> bool:
        """Write one batch with ``fast``; on a batch it cannot take whole, with ``slow``.

        Returns whether the slow path was needed.
        """

        def attempt(tx: neo4j.ManagedTransaction) -> None:
            n = self._single(tx, fast, rows=rows, **params)
            if n != len(rows):
                raise _NeedsMerge  # rolls this transaction back

        try:
            self._write(attempt)
            return False
        except (_NeedsMerge, ConstraintError):
            self._write(self._single, slow, rows=rows, **params)
            return True

    def _write_nodes(self, org: str, version: int, nodes: Iterable[Node]) -> int:
        params = {"org": org, "version": version, "prefix": self._prefix(org, version)}
        total = 0
        for chunk in _batched(nodes, self.batch_size):
            rows = [
                {
                    "key": n.key,
                    "type": n.type,
                    "name": n.name,
                    "external": bool(n.external),
                    "attrs_json": json.dumps(
                        n.attrs or {}, sort_keys=True, ensure_ascii=False, default=str
                    ),
                }
                for n in chunk
            ]
            if self._write_batch(Q_WRITE_NODES, Q_MERGE_NODES, rows, **params):
                log.info("org %r: a node batch repeats keys; merged (the last one wins)", org)
            total += len(rows)
        return total

    def _write_edges(self, org: str, version: int, edges: Iterable[Edge]) -> int:
        params = {"org": org, "version": version, "prefix": self._prefix(org, version)}
        total = 0
        for chunk in _batched(edges, self.batch_size):
            rows = [
                {
                    "source": e.source,
                    "target": e.target,
                    "kind": e.kind,
                    "evidence": e.evidence,
                    "access": e.access,
                    "dynamic": bool(e.dynamic),
                    "detail": e.detail,
                }
                for e in chunk
            ]
            self._write_batch(Q_WRITE_EDGES, Q_MERGE_EDGES, rows, **params)
            total += len(rows)
        return total

    def _fill_placeholders(self, org: str, version: int) -> None:
        """Type and name for the external nodes created for edges' unknown endpoints."""
        prefix = self._prefix(org, version)

        def keys(tx: neo4j.ManagedTransaction) -> list[str]:
            return [r["key"] for r in tx.run(Q_PLACEHOLDERS, org=org, version=version)]

        found = self._write(keys)
        if found:
            log.warning(
                "org %r: %d edge endpoint(s) were not among the nodes; stored as external "
                "nodes (e.g. %r)", org, len(found), found[0],
            )
        for chunk in _batched(found, self.batch_size):
            rows = []
            for key in chunk:
                type_, name = _split_key(key)
                rows.append({"uid": prefix + key, "type": type_, "name": name})
            self._write(self._single, Q_FILL_PLACEHOLDERS, rows=rows)

    def _count(self, org: str, version: int) -> tuple[int, int]:
        def work(tx: neo4j.ManagedTransaction) -> tuple[int, int]:
            n = self._single(tx, Q_COUNT_NODES, org=org, version=version)
            e = self._single(tx, Q_COUNT_EDGES, org=org, version=version)
            return int(n or 0), int(e or 0)

        return self._write(work)

    def _flip(self, org: str, version: int, node_count: int, edge_count: int) -> None:
        """The one small transaction that makes ``version`` current."""

        def work(tx: neo4j.ManagedTransaction) -> None:
            if self._single(tx, Q_NEWER_COMPLETE, org=org, version=version):
                raise GraphStoreError(
                    f"org {org!r}: a newer snapshot was completed while v{version} was loading "
                    f"(concurrent loads of one org); v{version} is discarded"
                )
            n = self._single(
                tx, Q_FLIP_NEW, org=org, version=version, node_count=node_count,
                edge_count=edge_count,
            )
            if n != 1:
                raise GraphStoreError(
                    f"org {org!r}: snapshot v{version} is no longer being loaded "
                    "(pruned as stale by another process?)"
                )
            self._single(tx, Q_FLIP_OLD, org=org, version=version)

        self._write(work)

    def _abandon(self, org: str, version: int, cause: BaseException) -> None:
        """Best effort after a failed load: delete the partial version (never the current one)."""
        try:
            marked = self._write(
                self._single, Q_MARK, org=org, version=version, state=FAILED,
                from_states=[LOADING, FAILED],
            )
            if not marked:
                # The flip may have committed even though the driver reported an error
                # (connection lost during commit): then this version is live — keep it.
                log.error(
                    "org %r: load of v%d failed (%s) but its snapshot is no longer 'loading'; "
                    "not deleting it", org, version, type(cause).__name__,
                )
                return
            self._delete_version(org, version)
            log.warning(
                "org %r: load of v%d failed (%s); partial data deleted, previous snapshot "
                "still current", org, version, type(cause).__name__,
            )
        except Exception as exc:  # noqa: BLE001 - best effort; the load's error matters
            log.error(
                "org %r: could not delete partial snapshot v%d (%s); it stays marked 'failed' "
                "and invisible, and the next load retries", org, version, exc,
            )

    def _delete_version(self, org: str, version: int) -> None:
        for query in (Q_DELETE_EDGES_BATCH, Q_DELETE_NODES_BATCH):
            while self._write(
                self._single, query, org=org, version=version, limit=self.batch_size
            ):
                pass
        self._write(self._single, Q_DELETE_SNAPSHOT, org=org, version=version)

    def prune(self, org: str, keep: int = 10) -> list[int]:
        """Delete complete versions beyond the newest ``keep``, failed loads and stale ones.

        Returns the versions deleted. The current version is never pruned.
        """
        self._check_org(org)
        rows = self._read_query(org, "listing snapshots", Q_SNAPSHOTS, org=org)
        complete = sorted(
            (r for r in rows if r["state"] == COMPLETE), key=lambda r: r["version"]
        )
        current = self._pick_current(complete)
        doomed = [r["version"] for r in complete[:-keep] if r["version"] != current]
        now = dt.datetime.now(dt.timezone.utc)
        for r in rows:
            if r["state"] in (FAILED, DELETING):
                doomed.append(r["version"])
            elif r["state"] == LOADING:
                try:
                    age = (now - dt.datetime.fromisoformat(r["created_at"])).total_seconds()
                except (TypeError, ValueError):
                    age = float("inf")
                if age > self.stale_after_s:
                    doomed.append(r["version"])
        deleted = self._delete_versions(org, doomed, "pruning")
        if deleted:
            log.info("org %r: pruned snapshot versions %s", org, deleted)
        return deleted

    def prune_older_than(self, org: str, cutoff: dt.datetime) -> list[int]:
        """Delete ``org``'s snapshots created before ``cutoff``, never the current one (data
        retention). Loads still in progress are left to :meth:`prune`'s staleness rule."""
        current = self._resolve(org, None)  # also: UnknownOrgError for an org without snapshots
        rows = self._read_query(org, "listing snapshots", Q_SNAPSHOTS, org=org)
        doomed = [
            r["version"] for r in rows
            if r["version"] != current and r["state"] != LOADING
            and created_before(r["created_at"], cutoff)
        ]
        deleted = self._delete_versions(org, doomed, "pruning by age")
        if deleted:
            log.info("org %r: pruned snapshot versions %s (created before %s)", org, deleted,
                     cutoff.isoformat())
        return deleted

    def _delete_versions(self, org: str, versions: Iterable[int], what: str) -> list[int]:
        """Mark each version ``deleting`` (invisible to readers at once), then delete it in
        batches. Returns the versions deleted, ascending."""
        deleted = []
        for version in sorted(set(versions)):
            try:
                self._write(
                    self._single, Q_MARK, org=org, version=version, state=DELETING,
                    from_states=[COMPLETE, FAILED, DELETING, LOADING],
                )
                self._delete_version(org, version)
            except (Neo4jError, DriverError) as exc:
                raise self._wrap(exc, org, f"{what} snapshot v{version}") from exc
            deleted.append(version)
        return deleted

    def drop_org(self, org: str) -> None:
        """Delete every version of ``org`` (all states)."""
        self._check_org(org)
        rows = self._read_query(org, "listing snapshots", Q_SNAPSHOTS, org=org)
        self._delete_versions(org, (r["version"] for r in rows), "dropping")

    # --- reading ----------------------------------------------------------------------------
    @staticmethod
    def _pick_current(complete: list[Any]) -> int | None:
        """The current version among complete snapshot rows (newest flagged one; else newest)."""
        flagged = [r["version"] for r in complete if r["current"]]
        if flagged:
            return max(flagged)
        return max((r["version"] for r in complete), default=None)

    def orgs(self) -> list[str]:
        return sorted(r["org"] for r in self._read_query(None, "listing orgs", Q_ORGS))

    def snapshots(self, org: str) -> list[SnapshotInfo]:
        self._check_org(org)
        rows = self._read_query(org, "listing snapshots", Q_SNAPSHOTS, org=org)
        complete = [r for r in rows if r["state"] == COMPLETE]
        current = self._pick_current(complete)
        # oldest first, the current one last (it is the newest unless loads raced)
        complete.sort(key=lambda r: (r["version"] == current, r["version"]))
        return [
            SnapshotInfo(
                org=org,
                version=int(r["version"]),
                created_at=r["created_at"],
                node_count=int(r["node_count"] or 0),
                edge_count=int(r["edge_count"] or 0),
                meta=json.loads(r["meta_json"]) if r["meta_json"] else {},
            )
            for r in complete
        ]

    def current_version(self, org: str) -> int:
        return self._resolve(org, None)

    def _resolve(self, org: str, version: int | None) -> int:
        """The version to read: the current one, or ``version`` if it is a kept snapshot."""
        self._check_org(org)
        rows = self._read_query(org, "listing snapshots", Q_SNAPSHOTS, org=org)
        complete = [r for r in rows if r["state"] == COMPLETE]
        if not complete:
            known = self.orgs()
            raise UnknownOrgError(
                f"org {org!r} has no snapshot in Neo4j at {self.uri}"
                + (f" (orgs with snapshots: {', '.join(known)})" if known else "")
                + " — load one first"
            )
        if version is None:
            return int(self._pick_current(complete))  # type: ignore[arg-type]
        kept = sorted(int(r["version"]) for r in complete)
        if version not in kept:
            raise GraphStoreError(
                f"org {org!r} has no snapshot version {version}; kept versions: "
                f"{', '.join(map(str, kept))}"
            )
        return version

    def nodes(self, org: str, version: int | None = None) -> list[Node]:
        v = self._resolve(org, version)
        rows = self._read_query(org, "reading nodes", Q_NODES, org=org, version=v)
        return sorted((_node_from(r) for r in rows), key=lambda n: n.key)

    def edges(self, org: str, version: int | None = None) -> list[Edge]:
        v = self._resolve(org, version)
        rows = self._read_query(org, "reading edges", Q_EDGES, org=org, version=v)
        return sorted((_edge_from(r) for r in rows), key=_edge_sort_key)

    def node(self, org: str, key: str, version: int | None = None) -> Node | None:
        v = self._resolve(org, version)
        rows = self._read_query(
            org, "reading a node", Q_NODE, uid=self._prefix(org, v) + key
        )
        return _node_from(rows[0]) if rows else None

    # --- traversals -------------------------------------------------------------------------
    def _require(self, org: str, version: int, key: str) -> Node:
        rows = self._read_query(
            org, "reading a node", Q_NODE, uid=self._prefix(org, version) + key
        )
        if rows:
            return _node_from(rows[0])
        raise UnknownComponentError(org, key, self._suggest(org, version, key))

    def _suggest(self, org: str, version: int, key: str, n: int = 5) -> list[str]:
        type_, _name = _split_key(key)
        keys = [
            r["key"]
            for r in self._read_query(
                org, "suggesting keys", Q_KEYS_OF_TYPE, org=org, version=version,
                type=type_, limit=self.suggestion_scan_limit,
            )
        ]
        if not keys:
            keys = [
                r["key"]
                for r in self._read_query(
                    org, "suggesting keys", Q_KEYS, org=org, version=version,
                    limit=self.suggestion_scan_limit,
                )
            ]
        lower = key.lower()
        same_ci = sorted(k for k in keys if k.lower() == lower)
        by_lower: dict[str, str] = {}
        for k in keys:
            by_lower.setdefault(k.lower(), k)
        close = [by_lower[k] for k in difflib.get_close_matches(lower, list(by_lower), n=n)]
        out: list[str] = []
        for k in same_ci + close:
            if k not in out and k != key:
                out.append(k)
        return out[:n]

    def where_used(self, org: str, key: str) -> list[Edge]:
        v = self._resolve(org, None)
        self._require(org, v, key)
        rows = self._read_query(
            org, "where-used", Q_WHERE_USED, uid=self._prefix(org, v) + key
        )
        return sorted((_edge_from(r) for r in rows), key=_edge_sort_key)

    def impact(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        return self._bfs(org, key, depth, Q_STEP_IN)

    def dependencies(self, org: str, key: str, depth: int | None = None) -> list[Hit]:
        return self._bfs(org, key, depth, Q_STEP_OUT)

    def _bfs(self, org: str, key: str, depth: int | None, step: str) -> list[Hit]:
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, got {depth}")
        v = self._resolve(org, None)  # versions are immutable: one resolve, many levels
        self._require(org, v, key)
        prefix = self._prefix(org, v)
        paths: dict[str, tuple[str, ...]] = {key: (key,)}
        hits: list[Hit] = []
        frontier = [key]
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            order = {k: i for i, k in enumerate(frontier)}
            best: dict[str, tuple[int, str, Any]] = {}  # child → (parent rank, kind, row)
            for chunk in _batched(frontier, self.frontier_batch):
                for r in self._read_query(
                    org, "traversing", step, keys=chunk, prefix=prefix
                ):
                    child = r["key"]
                    if child in paths:
                        continue
                    cand = (order[r["parent"]], r["kind"] or "", r)
                    if child not in best or cand[:2] < best[child][:2]:
                        best[child] = cand
            frontier = sorted(best)
            for child in frontier:
                rank, kind, r = best[child]
                path = paths[r["parent"]] + (child,)
                paths[child] = path
                hits.append(
                    Hit(
                        key=child,
                        type=r["type"],
                        depth=level,
                        path=path,
                        via_kind=r["kind"],
                        external=bool(r["external"]),
                    )
                )
        return hits
