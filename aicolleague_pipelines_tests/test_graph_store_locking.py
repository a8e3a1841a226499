"""The embedded store's file lock across processes (several runs' step processes share one
DuckDB file): a writer is not starved by readers that keep overlapping, a process that reads
twice does not deadlock behind a waiting writer, and giving up says what to do."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.graph.store import GraphStoreError
from aicolleague_pipelines.lib.graph.stores import EMBEDDED_FILE, open_store

# A reader process: reads the store in turns (open read-only, hold it, close) until the
# deadline, printing "reading" once and, at the end, the versions it saw.
READER = """
import sys, time
from pathlib import Path
from aicolleague_pipelines.lib.graph.stores import open_store
home, hold, until = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
seen = []
while time.time() < until:
    with open_store(home, read_only=True, lock_timeout=30) as s:
        seen.append(s.snapshots("org")[-1].version)
        if len(seen) == 1:
            print("reading", flush=True)
        time.sleep(hold)
    time.sleep(0.02)
print("versions", *seen, flush=True)
"""

WRITER = """
import sys
from pathlib import Path
from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.graph.stores import open_store
with open_store(Path(sys.argv[1]), lock_timeout=float(sys.argv[2])) as s:
    print("writing", flush=True)
    s.load_snapshot("org", [Node(key="ApexClass:B", type="ApexClass", name="B")], [])
"""


def _spawn(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _seed(home: Path) -> None:
    with open_store(home) as s:
        s.load_snapshot("org", [Node(key="ApexClass:A", type="ApexClass", name="A")], [])


def test_a_writer_gets_in_while_readers_keep_overlapping(tmp_path: Path) -> None:
    _seed(tmp_path)
    # Three readers, each holding the store most of the time, staggered so that at every
    # moment one of them has it open: polling alone never found a gap here.
    until = time.time() + 7
    readers = [_spawn(READER, tmp_path, 0.6, until) for _ in range(3)]
    try:
        for r in readers:
            assert r.stdout.readline().strip() == "reading", r.stderr.read()
        started = time.monotonic()
        with open_store(tmp_path, lock_timeout=6) as store:
            waited = time.monotonic() - started
            store.load_snapshot("org", [Node(key="ApexClass:B", type="ApexClass", name="B")], [])
        assert waited < 3, f"the writer waited {waited:.1f} s"
        outs = [r.communicate(timeout=60)[0] for r in readers]
    finally:
        for r in readers:
            r.kill()
    # The readers were held only briefly and went on reading, the new version included.
    for out in outs:
        versions = [int(v) for v in out.split("versions", 1)[1].split()]
        assert versions[0] == 1 and versions[-1] == 2, out


def test_a_process_reading_twice_does_not_deadlock_behind_a_waiting_writer(tmp_path: Path) -> None:
    _seed(tmp_path)
    turnstile = tmp_path / f"{EMBEDDED_FILE}.turnstile"
    first = open_store(tmp_path, read_only=True)
    writer = _spawn(WRITER, tmp_path, 30)
    try:
        # Until the writer waits at the turnstile (holding it, shutting new readers out).
        fd = os.open(turnstile, os.O_RDWR | os.O_CREAT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    break
                assert time.monotonic() < deadline and writer.poll() is None, writer.stderr.read()
                time.sleep(0.02)
        finally:
            os.close(fd)
        # This process already has the file open: a second store opens at once.
        started = time.monotonic()
        with open_store(tmp_path, read_only=True, lock_timeout=5) as second:
            assert second.snapshots("org")[-1].version == 1
        assert time.monotonic() - started < 2
        first.close()
        assert writer.stdout.readline().strip() == "writing", writer.stderr.read()
        assert writer.wait(timeout=30) == 0, writer.stderr.read()
    finally:
        first.close()
        writer.kill()
    with open_store(tmp_path, read_only=True) as store:
        assert store.snapshots("org")[-1].version == 2


def test_giving_up_names_the_store_and_what_to_do(tmp_path: Path) -> None:
    _seed(tmp_path)
    holder = _spawn(WRITER.replace('print("writing", flush=True)',
                                   'print("writing", flush=True); import time; time.sleep(20)'), tmp_path, 30)
    try:
        assert holder.stdout.readline().strip() == "writing", holder.stderr.read()
        with pytest.raises(GraphStoreError, match="still locked after .*let it finish or stop it") as err:
            open_store(tmp_path, read_only=True, lock_timeout=1)
        assert str(tmp_path / EMBEDDED_FILE) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
