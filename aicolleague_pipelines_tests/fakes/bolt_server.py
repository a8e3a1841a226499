"""A Bolt-speaking graph server on loopback for the Neo4j backend's tests.

No Neo4j or Memgraph server can be installed from the registries here; ``arcadedb-embedded``
(PyPI: an ArcadeDB server with its own JRE and the Bolt protocol plugin) can. The official
``neo4j`` driver talks to it over real Bolt (handshake, auth, managed transactions, rollback),
so our store code runs unchanged. It is ArcadeDB's Cypher engine, not Neo4j's: it stands in for
the protocol and the driver, not for Neo4j's planner or every corner of its Cypher semantics
(REFERENCE.md §7). Tests needing true Neo4j run when ``NEO4J_URI`` is set.

Usage::

    with BoltServer() as server:           # or the ``bolt_server`` fixture (module scope)
        driver = neo4j.GraphDatabase.driver(server.uri, auth=server.auth)
        driver.execute_query("RETURN 1", database_=server.database)

Ports are free loopback ports picked at start; data and logs live in a temporary directory
removed on exit (ArcadeDB's application log is redirected there instead of ``./log``). The
JVM is started once per process (JPype cannot restart it) with a 1 GB heap unless something
else in the process started it first; stopping the server leaves the JVM running.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"

_LOG_PROPERTIES = """\
handlers = java.util.logging.FileHandler
.level = WARNING
com.arcadedb.level = WARNING
java.util.logging.FileHandler.level = INFO
java.util.logging.FileHandler.pattern = {pattern}
java.util.logging.FileHandler.formatter = com.arcadedb.log.LogFormatter
java.util.logging.FileHandler.limit = 10000000
java.util.logging.FileHandler.count = 1
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _close_bolt_connections(java_server: object) -> int:
    """Close the sockets of ``java_server``'s Bolt connections that outlive its stop().

    ArcadeDB serves each Bolt connection on a non-daemon thread blocked reading its socket,
    and ``stop()`` leaves them be. A driver still open when the test process exits (a pooled
    connection of a store nobody closed) then keeps the JVM waiting for that thread forever:
    the process hangs at exit. Closing the server side of those sockets ends the threads.
    """
    import jpype

    executor_cls = jpype.JClass("com.arcadedb.bolt.BoltNetworkExecutor")
    socket_field = executor_cls.class_.getDeclaredField("socket")
    server_field = executor_cls.class_.getDeclaredField("server")
    socket_field.setAccessible(True)
    server_field.setAccessible(True)
    thread_cls = jpype.JClass("java.lang.Thread")
    closed = 0
    for thread in thread_cls.getAllStackTraces().keySet():
        if not isinstance(thread, executor_cls) or not thread.isAlive():
            continue
        if not server_field.get(thread).equals(java_server):
            continue
        sock = socket_field.get(thread)
        if sock is not None:
            try:
                sock.close()
                closed += 1
            except Exception:  # noqa: BLE001 - already closed
                pass
    return closed


def _import_arcadedb():
    try:
        import arcadedb_embedded  # noqa: F401  (heavy: JPype + bundled JRE)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(
            "arcadedb-embedded is not installed, so there is no Bolt server to test the Neo4j "
            "backend against: `pip install arcadedb-embedded` (dev extra), or set NEO4J_URI "
            f"to run the neo4j-marked tests against a real Neo4j ({exc})"
        )
    return arcadedb_embedded


class BoltServer:
    """ArcadeDB with its Bolt plugin on ``127.0.0.1``; one database named ``database``."""

    def __init__(self, database: str = "graph", heap_size: str = "1g") -> None:
        self.database = database
        self.heap_size = heap_size
        self.user = "root"
        self._password = secrets.token_urlsafe(18)
        self.http_port = 0
        self.bolt_port = 0
        self.root: Path | None = None
        self.startup_seconds: float | None = None
        self._server = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self._password)

    def __repr__(self) -> str:  # never the password
        return f"BoltServer(uri={self.uri!r}, database={self.database!r}, user={self.user!r})"

    def start(self) -> "BoltServer":
        arcadedb = _import_arcadedb()
        import jpype
        from arcadedb_embedded.jvm import start_jvm

        t0 = time.perf_counter()
        self.root = Path(tempfile.mkdtemp(prefix="aic_bolt_"))
        props = self.root / "arcadedb-log.properties"
        props.write_text(_LOG_PROPERTIES.format(pattern=(self.root / "arcadedb.log").as_posix()))
        if not jpype.isJVMStarted():  # else its heap and logging setup stay as they are
            # JVM crash logs (hs_err_pid*.log) default to ./log/ in the working directory
            os.environ.setdefault(
                "ARCADEDB_JVM_ERROR_FILE",
                str(Path(tempfile.gettempdir()) / "arcadedb_hs_err_pid%p.log"),
            )
            start_jvm(
                heap_size=self.heap_size,
                jvm_args=[f"-Djava.util.logging.config.file={props}"],
            )
        last_exc: Exception | None = None
        for _attempt in range(3):  # a picked port can be taken between pick and bind
            self.http_port, self.bolt_port = _free_port(), _free_port()
            server = arcadedb.create_server(
                root_path=str(self.root / "databases"),
                root_password=self._password,
                config={
                    "host": "127.0.0.1",
                    "http_port": self.http_port,
                    "server_plugins": BOLT_PLUGIN,
                    "bolt_port": self.bolt_port,
                },
            )
            try:
                server.start()
            except Exception as exc:  # pragma: no cover - port race
                last_exc = exc
                continue
            self._server = server
            break
        else:  # pragma: no cover
            self.stop()
            raise RuntimeError(f"ArcadeDB Bolt server did not start: {last_exc}")
        self._server.create_database(self.database)
        self.startup_seconds = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        if self._server is not None:
            java_server = self._server._java_server
            try:
                self._server.stop()
            finally:
                self._server = None
                _close_bolt_connections(java_server)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "BoltServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bolt_server_fixture() -> Iterator[BoltServer]:
    """Body of a module-scoped fixture: ``bolt_server = pytest.fixture(scope="module")(...)``."""
    with BoltServer() as server:
        yield server


#: Import into a test module to get one server per module.
bolt_server = pytest.fixture(scope="module", name="bolt_server")(bolt_server_fixture)
