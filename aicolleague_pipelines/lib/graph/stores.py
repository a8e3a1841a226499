"""Choosing the graph store: Neo4j when ``NEO4J_URI`` is set, the embedded DuckDB file otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from aicolleague_pipelines.lib.graph.store import GraphStore

NEO4J_URI_ENV = "NEO4J_URI"
EMBEDDED_FILE = "graph.duckdb"


def store_kind() -> str:
    return "neo4j" if os.environ.get(NEO4J_URI_ENV) else "embedded"


def open_store(data_home: Path, read_only: bool = False) -> GraphStore:
    """The configured store. Neo4j credentials come from NEO4J_USER / NEO4J_PASSWORD."""
    if store_kind() == "neo4j":
        from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore

        return Neo4jGraphStore.from_env()
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    data_home.mkdir(parents=True, exist_ok=True)
    return DuckDBGraphStore(data_home / EMBEDDED_FILE, read_only=read_only)
