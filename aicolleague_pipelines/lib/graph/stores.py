"""Choosing the graph store: Neo4j when ``NEO4J_URI`` is set, the embedded DuckDB file otherwise."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, readers and writer just poll
    fcntl = None  # type: ignore[assignment]

from aicolleague_pipelines.lib.graph.store import GraphStore, GraphStoreError

log = logging.getLogger(__name__)

NEO4J_URI_ENV = "NEO4J_URI"
EMBEDDED_FILE = "graph.duckdb"


def store_kind() -> str:
    return "neo4j" if os.environ.get(NEO4J_URI_ENV) else "embedded"


def open_store(data_home: Path, read_only: bool = False, lock_timeout: float = 300.0) -> GraphStore:
    """The configured store. Neo4j credentials come from NEO4J_USER / NEO4J_PASSWORD.

    The embedded store is one DuckDB file shared by every process (runs of several orgs at
    once, their step processes, the CLI): opening it waits up to ``lock_timeout`` seconds for
    other processes' locks, writers first (see :func:`_open_duckdb`)."""
    if store_kind() == "neo4j":
        from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore

        return Neo4jGraphStore.from_env()
    data_home.mkdir(parents=True, exist_ok=True)
    return _open_duckdb(data_home / EMBEDDED_FILE, read_only, lock_timeout)


#: DuckDB files this process has open (store objects not yet closed), by path.
_OPEN_HERE: Counter[str] = Counter()
_OPEN_HERE_GUARD = threading.Lock()


def _open_duckdb(path: Path, read_only: bool, lock_timeout: float) -> GraphStore:
    """Open the DuckDB file, waiting for other processes' locks with writers first.

    DuckDB lets one process open a file read-write or several read-only, never both, and a
    refused open fails at once (no queue). Polling alone starves a writer while readers keep
    overlapping (several runs' agent steps): measured here, four processes reading in turn
    kept a writer out for more than 30 s. So a turnstile file beside the database gives
    writers priority: a writer holds it exclusively while it waits for the readers inside to
    finish, and a reader passes through it (shared, only for the moment of opening), so no new
    reader enters while a writer waits. A process that already has the file open skips the
    turnstile: DuckDB shares the open database within a process, and waiting there behind a
    writer that waits for this very process would deadlock.
    """
    import duckdb

    key = str(path)
    started = time.monotonic()
    deadline = started + lock_timeout
    with _OPEN_HERE_GUARD:
        nested = _OPEN_HERE[key] > 0
    turnstile = None if nested or fcntl is None else _Turnstile(path.with_name(path.name + ".turnstile"))
    delay = 0.02
    try:
        if turnstile is not None and not read_only:
            turnstile.enter(exclusive=True, deadline=deadline, path=path)
        while True:
            if turnstile is not None and read_only:
                turnstile.enter(exclusive=False, deadline=deadline, path=path)
            try:
                store = _tracked_store_class()(path, read_only=read_only)
                break
            except (duckdb.IOException, GraphStoreError) as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise GraphStoreError(
                        f"graph store {path}: still locked after {time.monotonic() - started:.0f} s "
                        f"({exc}) — another process keeps it open; let it finish or stop it "
                        "(an open `aicolleague` command, a notebook), then rerun"
                    ) from exc
            finally:
                if turnstile is not None and read_only:
                    turnstile.leave()
            time.sleep(delay)
            # A waiting writer has shut new readers out: it only waits for those inside.
            delay = min(delay * 2, 0.25 if not read_only else 1.0)
    finally:
        if turnstile is not None:
            turnstile.close()
    waited = time.monotonic() - started
    if waited > 1.0:
        log.warning("graph store %s: waited %.1f s for other processes' locks (%s)",
                    path, waited, "read-only" if read_only else "read-write")
    return store


class _Turnstile:
    """``flock`` on a file beside the database, polled until a deadline (no blocking call
    that could outlive it)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def enter(self, exclusive: bool, deadline: float, path: Path) -> None:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(self.fd, mode)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GraphStoreError(
                        f"graph store {path}: a writer has been waiting for it past the timeout — "
                        "another process keeps the store open; let it finish or stop it, then rerun"
                    ) from None
                time.sleep(0.02)

    def leave(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)  # releases any lock still held


@functools.cache
def _tracked_store_class():
    """``DuckDBGraphStore`` that counts itself in :data:`_OPEN_HERE` while open."""
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    class TrackedDuckDBGraphStore(DuckDBGraphStore):
        def __init__(self, path: Path, read_only: bool = False) -> None:
            super().__init__(path, read_only=read_only)
            self._tracked_key: str | None = str(path)
            with _OPEN_HERE_GUARD:
                _OPEN_HERE[self._tracked_key] += 1

        def close(self) -> None:
            try:
                super().close()
            finally:
                with _OPEN_HERE_GUARD:
                    if self._tracked_key is not None:
                        _OPEN_HERE[self._tracked_key] -= 1
                        self._tracked_key = None

    return TrackedDuckDBGraphStore
