"""Choosing the graph store: Neo4j when ``NEO4J_URI`` is set, the embedded DuckDB file otherwise."""

from __future__ import annotations

import os
import time
from pathlib import Path

from aicolleague_pipelines.lib.graph.store import GraphStore, GraphStoreError

NEO4J_URI_ENV = "NEO4J_URI"
EMBEDDED_FILE = "graph.duckdb"


def store_kind() -> str:
    return "neo4j" if os.environ.get(NEO4J_URI_ENV) else "embedded"


def open_store(data_home: Path, read_only: bool = False, lock_timeout: float = 300.0) -> GraphStore:
    """The configured store. Neo4j credentials come from NEO4J_USER / NEO4J_PASSWORD."""
    if store_kind() == "neo4j":
        from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore

        return Neo4jGraphStore.from_env()
    import duckdb

    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    data_home.mkdir(parents=True, exist_ok=True)
    # DuckDB lets one process hold the file: runs of other orgs (the run queue allows several
    # at once) wait their turn instead of failing.
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return DuckDBGraphStore(data_home / EMBEDDED_FILE, read_only=read_only)
        except (duckdb.IOException, GraphStoreError) as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
