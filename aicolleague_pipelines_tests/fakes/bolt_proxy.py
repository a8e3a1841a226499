"""A loopback TCP proxy in front of a Bolt server that breaks connections on cue.

The Neo4j store's fault tests need "the server dropped the connection after N statements"
without touching our code or the driver: the proxy relays bytes both ways unchanged and
reads the client's Bolt message stream (chunked messages, PackStream structs) only to count
statements and see the query text. Faults:

- ``drop_after_runs(n)``: after the ``n``-th RUN message (counted across connections) is
  forwarded, both sides are closed at once — the statement's transaction is never committed
  (the driver sees ``ServiceUnavailable`` / ``SessionExpired``).
- ``lose_commit_ack(contains, nth)``: the ``nth`` transaction that ran a query containing
  ``contains`` is committed on the server, but the server's answer to COMMIT is swallowed and
  the connection closed — the client cannot know whether its commit happened (the driver's
  ``IncompleteCommit``), the nastiest case for a loader.
- ``down = True``: every new connection is accepted and closed at once (server unreachable);
  with ``cut_all()`` the open ones go too.

``proxy.uri`` is the ``bolt://`` address to give the driver; ``proxy.events`` records what was
cut and when.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

BOLT_MAGIC = b"\x60\x60\xb0\x17"
RUN, BEGIN, COMMIT, ROLLBACK, RESET = 0x10, 0x11, 0x12, 0x13, 0x0F


def _packstream_string(buf: bytes, pos: int) -> str | None:
    """The PackStream string at ``buf[pos:]`` (None if it is not a string)."""
    if pos >= len(buf):
        return None
    marker = buf[pos]
    if 0x80 <= marker <= 0x8F:
        size, pos = marker & 0x0F, pos + 1
    elif marker == 0xD0:
        size, pos = buf[pos + 1], pos + 2
    elif marker == 0xD1:
        size, pos = struct.unpack(">H", buf[pos + 1 : pos + 3])[0], pos + 3
    elif marker == 0xD2:
        size, pos = struct.unpack(">I", buf[pos + 1 : pos + 5])[0], pos + 5
    else:
        return None
    return buf[pos : pos + size].decode("utf-8", "replace")


class _MessageReader:
    """Incremental de-chunker: feed bytes, get whole Bolt messages (payload without headers)."""

    def __init__(self) -> None:
        self.buf = b""
        self.message = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while len(self.buf) >= 2:
            size = struct.unpack(">H", self.buf[:2])[0]
            if size == 0:  # end of message
                self.buf = self.buf[2:]
                if self.message:
                    out.append(self.message)
                self.message = b""
                continue
            if len(self.buf) < 2 + size:
                break
            self.message += self.buf[2 : 2 + size]
            self.buf = self.buf[2 + size :]
        return out


class BoltProxy:
    """``with BoltProxy(("127.0.0.1", bolt_port)) as proxy: driver(proxy.uri, ...)``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.down = False
        self.runs = 0
        self.events: list[str] = []
        self._lock = threading.Lock()
        self._drop_after_runs: int | None = None
        self._commit_rule: dict[str, Any] | None = None
        self._conns: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="bolt-proxy")

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    # -- fault knobs ---------------------------------------------------------------------
    def drop_after_runs(self, n: int) -> None:
        with self._lock:
            self.runs = 0
            self._drop_after_runs = n

    def lose_commit_ack(self, contains: str, nth: int = 1) -> None:
        with self._lock:
            self._commit_rule = {"contains": contains, "nth": nth, "seen": 0}

    def cut_all(self) -> None:
        """Close every open connection now (the server "went away")."""
        with self._lock:
            conns, self._conns = self._conns, []
            self.events.append(f"all {len(conns) // 2} connection(s) cut")
        for s in conns:
            _close(s)

    def heal(self) -> None:
        """No more faults (connections already cut stay cut)."""
        with self._lock:
            self.down = False
            self._drop_after_runs = None
            self._commit_rule = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "BoltProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _close(s)

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns += [client, server]
            conn = {"client": client, "server": server, "cut": False, "tx_matches": False}
            threading.Thread(target=self._client_to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(conn,), daemon=True).start()

    # -- relaying ----------------------------------------------------------------------------
    def _client_to_server(self, conn: dict[str, Any]) -> None:
        client, server = conn["client"], conn["server"]
        reader = _MessageReader()
        handshake = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if len(handshake) < 20:  # magic + four version proposals, not chunked
                    take = 20 - len(handshake)
                    handshake += data[:take]
                    server.sendall(data[:take])
                    data = data[take:]
                    if not data:
                        continue
                for message in reader.feed(data):
                    self._inspect(conn, message)
                server.sendall(data)
                if conn.get("drop_now"):
                    self._cut(conn, "dropped after a RUN")
                    return
        except OSError:
            pass
        finally:
            if not conn["cut"]:
                _close(server)

    def _inspect(self, conn: dict[str, Any], message: bytes) -> None:
        if len(message) < 2 or not 0xB0 <= message[0] <= 0xBF:
            return
        sig = message[1]
        with self._lock:
            if sig == RUN:
                self.runs += 1
                query = _packstream_string(message, 2) or ""
                rule = self._commit_rule
                if rule and rule["contains"] in query:
                    conn["tx_matches"] = True
                if self._drop_after_runs is not None and self.runs >= self._drop_after_runs:
                    self._drop_after_runs = None
                    conn["drop_now"] = True
                    self.events.append(f"connection dropped after RUN #{self.runs}: {query.split()[0:3]}")
            elif sig == COMMIT:
                rule = self._commit_rule
                if rule and conn["tx_matches"]:
                    rule["seen"] += 1
                    if rule["seen"] == rule["nth"]:
                        self._commit_rule = None
                        conn["swallow_commit_ack"] = True
                        self.events.append(f"COMMIT #{rule['nth']} of a '{rule['contains']}' transaction "
                                           "reached the server; its answer is lost")
                conn["tx_matches"] = False
            elif sig in (BEGIN, ROLLBACK, RESET):
                conn["tx_matches"] = False

    def _server_to_client(self, conn: dict[str, Any]) -> None:
        client, server = conn["client"], conn["server"]
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if conn.get("swallow_commit_ack"):
                    # The server has answered the COMMIT (so it is committed): drop the answer.
                    self._cut(conn, "commit answer lost")
                    return
                if conn["cut"]:
                    return
                client.sendall(data)
        except OSError:
            pass
        finally:
            if not conn["cut"]:
                _close(client)

    def _cut(self, conn: dict[str, Any], why: str) -> None:
        conn["cut"] = True
        with self._lock:
            self.events.append(f"cut: {why}")
        for s in (conn["client"], conn["server"]):
            _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
