"""Fault-injection scenarios: one fault at the far end, then what the user is left with.

Shared by ``test_fault_injection.py`` (the matrix, small sizes) and ``python -m bench
fault-matrix`` (the same scenarios, larger, printed as a fault × outcome table). Faults are
injected only where the real world would put them — the loopback fake Salesforce, the fake
Metabase, a TCP proxy in front of the Bolt server, the operating system (a file-size limit, a
SIGKILL) — never by replacing a function of ours.

After every fault a scenario checks, and raises ``AssertionError`` naming what broke:

- the last good snapshot is intact and queryable: same version, same node/edge counts, the
  same where-used answer for the busiest component;
- a rerun completes and nothing is duplicated: the rerun's counts and where-used equal a clean
  run's, every kept version's stored rows equal its recorded counts (no half-written version),
  versions ascend and the current one is the newest;
- where the fault fails a Dagster run, the failure names the org (or platform), the component
  and what to do.

Each scenario returns an :class:`Outcome` (what happened, how long the faulty run took, the
time from the fault to a good current snapshot again, the message the user saw).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORG = "live-fake"  # client credentials: re-authenticates on its own
TOKEN_ORG = "live-token"  # a static access token: cannot be renewed
SELECTION = ("sf_inventory", "sf_dependencies", "org_graph")
MB_KEY_ENV = "FAULTS_MB_KEY"
RETRY = {"attempts": 3, "base_delay": 0.01}


# --------------------------------------------------------------------------------------------
# Outcomes and checks
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    layer: str
    fault: str
    #: "retried" (the run completed by itself) or "failed cleanly" (the run failed, nothing
    #: was damaged, the rerun completed).
    result: str
    detail: str
    fault_run_s: float
    #: From injecting the fault to a good current snapshot again (rerun included).
    recover_s: float
    message: str = ""


@dataclass(frozen=True)
class GraphState:
    """What a user can see of one org in a graph store."""

    version: int
    nodes: int
    edges: int
    where_used: tuple[tuple[str, str, str], ...]
    #: (version, node_count, edge_count) of every kept snapshot, as listed.
    snapshots: tuple[tuple[int, int, int], ...]
    #: (version, node rows, edge rows) actually stored, every version incl. invisible ones.
    rows: tuple[tuple[int, int, int], ...]


def check_intact(before: GraphState, after: GraphState, fault: str) -> None:
    assert after == before, f"{fault}: the last good snapshot changed:\n before {before}\n after  {after}"


def check_sane(state: GraphState, fault: str) -> None:
    versions = [v for v, _, _ in state.snapshots]
    assert versions == sorted(set(versions)), f"{fault}: snapshot list not ascending/unique: {versions}"
    assert versions and versions[-1] == state.version, f"{fault}: current v{state.version} is not the newest"
    listed = {(v, n, e) for v, n, e in state.snapshots}
    assert set(state.rows) == listed, (
        f"{fault}: stored rows {state.rows} differ from the listed snapshots {state.snapshots} "
        "(a half-written or duplicated version)"
    )


def check_recovered(before: GraphState, after: GraphState, clean: GraphState, fault: str) -> None:
    assert after.version > before.version, f"{fault}: no new snapshot after the rerun"
    got = (after.nodes, after.edges, after.where_used)
    assert got == (clean.nodes, clean.edges, clean.where_used), (
        f"{fault}: the rerun differs from a clean run: {got[:2]} vs {(clean.nodes, clean.edges)}"
    )
    check_sane(after, fault)


def check_message(message: str, fault: str, *parts: str) -> None:
    missing = [p for p in parts if p not in message]
    assert not missing, f"{fault}: the error does not say {missing}: {message!r}"


def _setenv(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def patched_env(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block; restore afterwards."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            _setenv(k, v)
        yield
    finally:
        for k, v in old.items():
            _setenv(k, v)


def duckdb_state(path: Path, org: str, key: str | None = None) -> GraphState:
    """The org's state in a DuckDB graph file, read through the store (counts, where-used) and
    the raw tables (rows per version)."""
    import duckdb

    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    with DuckDBGraphStore(path, read_only=True) as store:
        snaps = store.snapshots(org)
        cur = snaps[-1]
        used = store.where_used(org, key) if key else []
    con = duckdb.connect(str(path), read_only=True)
    try:
        nrows = dict(con.execute("SELECT version, count(*) FROM nodes WHERE org = ? GROUP BY 1", [org]).fetchall())
        erows = dict(con.execute("SELECT version, count(*) FROM edges WHERE org = ? GROUP BY 1", [org]).fetchall())
    finally:
        con.close()
    return GraphState(
        cur.version, cur.node_count, cur.edge_count,
        tuple(sorted((e.source, e.kind, e.evidence) for e in used)),
        tuple((s.version, s.node_count, s.edge_count) for s in snaps),
        tuple(sorted((int(v), int(n), int(erows.get(v, 0))) for v, n in nrows.items())),
    )


def busiest_key(path: Path, org: str) -> str:
    """The component with the most direct dependents (deterministic: ties by key)."""
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    with DuckDBGraphStore(path, read_only=True) as store:
        idx = store.graph_index(org)
        indeg = idx.rev_indptr[1:] - idx.rev_indptr[:-1]
        best = max(range(idx.n), key=lambda i: (int(indeg[i]), idx.keys[i]))
        return str(idx.keys[best])


# --------------------------------------------------------------------------------------------
# A live org behind the fake Salesforce, refreshed through Dagster's org_refresh_job
# --------------------------------------------------------------------------------------------
@dataclass
class RunReport:
    success: bool
    seconds: float
    message: str = ""
    step: str = ""


def _report(result: Any, seconds: float) -> RunReport:
    """The run's outcome and, for a failed step, what the user reads in the UI: a ``Failure``'s
    description, else the error and its causes."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            user = data.user_failure_data
            if user and user.description:
                return RunReport(False, seconds, user.description, event.step_key or "")
            parts, error = [], data.error
            while error is not None:
                parts.append(error.message.strip())
                error = error.cause
            return RunReport(False, seconds, "\n".join(parts), event.step_key or "")
    return RunReport(result.success, seconds)


class LiveHarness:
    """The fake org, an orgs file with two live orgs on it, a data home and a Dagster instance.

    Runs go through ``org_refresh_job`` (extraction + graph load: ``SELECTION``), with the
    environment (data home, orgs file, fake secrets) applied for the duration of each call.
    """

    def __init__(self, root: Path) -> None:
        import dagster as dg

        from aicolleague_pipelines.definitions import defs as load_defs
        from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
        from aicolleague_pipelines_tests.conftest import write_orgs_file
        from aicolleague_pipelines_tests.fakes.salesforce import FakeSalesforce

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.fake = FakeSalesforce().start()
        self.fake.org.page_size = 5  # every inventory query pages: queryMore is exercised
        self.fake.retrieve_in_progress_polls = 0
        self.home = root / "data"
        common = {"source": "live", "instance_url": self.fake.instance_url, "api_version": self.fake.version,
                  "ca_bundle": self.fake.ca_path, "retry": RETRY}
        orgs_file = write_orgs_file(root / "orgs.yaml", [
            {"name": ORG, **common, "auth": {"kind": "client_credentials",
                                             **self.fake.auth_env_keys("client_credentials")}},
            {"name": TOKEN_ORG, **common, "auth": {"kind": "access_token",
                                                   **self.fake.auth_env_keys("access_token")}},
        ])
        self.env: dict[str, str | None] = {
            "AICOLLEAGUE_HOME": str(self.home), "AICOLLEAGUE_ORGS_FILE": str(orgs_file),
            "REQUESTS_CA_BUNDLE": None, "NEO4J_URI": None,
        }
        for kind in ("access_token", "client_credentials"):
            self.env.update(self.fake.env_for(kind))
        (root / "dagster").mkdir(exist_ok=True)
        self._instance_cm = dg.instance_for_test(temp_dir=str(root / "dagster"))
        self.instance = self._instance_cm.__enter__()
        self.instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, [ORG, TOKEN_ORG])
        with patched_env(self.env):
            self.job = load_defs().resolve_job_def("org_refresh_job")
        self.clean: dict[str, GraphState] = {}
        self.keys: dict[str, str] = {}

    def close(self) -> None:
        self._instance_cm.__exit__(None, None, None)
        self.fake.close()

    @property
    def db(self) -> Path:
        return self.home / "graph.duckdb"

    def heal(self) -> None:
        """No fault any more; the static token is valid again (as after refreshing it)."""
        from aicolleague_pipelines_tests.fakes.salesforce import FAKE_STATIC_TOKEN, Faults

        self.fake.faults = Faults()
        with self.fake.lock:
            self.fake.valid_tokens.add(FAKE_STATIC_TOKEN)

    def run(self, org: str, extra_env: dict[str, str | None] | None = None) -> RunReport:
        import dagster as dg

        with patched_env({**self.env, **(extra_env or {})}):
            t0 = time.perf_counter()
            result = self.job.execute_in_process(
                instance=self.instance, partition_key=org, raise_on_error=False,
                asset_selection=[dg.AssetKey(k) for k in SELECTION],
            )
            seconds = time.perf_counter() - t0
        return _report(result, seconds)

    def state(self, org: str) -> GraphState:
        return duckdb_state(self.db, org, self.keys.get(org))

    def baseline(self, org: str) -> GraphState:
        """A clean run of ``org`` (once): the reference every rerun must equal."""
        if org not in self.clean:
            self.heal()
            report = self.run(org)
            assert report.success, f"clean run of {org} failed: {report.message}"
            self.keys[org] = busiest_key(self.db, org)
            self.clean[org] = self.state(org)
        return self.clean[org]


def _faults_hit(fake: Any) -> int:
    return sum(f["initial"] - f["times"] for f in fake.faults.queued if "initial" in f)


def _queue(kind: Any, times: int, path: str) -> Callable[[Any], None]:
    def inject(fake: Any) -> None:
        fake.faults.fail(kind, times=times, path_contains=path)
        fake.faults.queued[-1]["initial"] = times

    return inject


def salesforce_fault(h: LiveHarness, fault: str, inject: Callable[[Any], None], *, org: str = ORG,
                     expect: str = "retried", says: tuple[str, ...] = ()) -> Outcome:
    """Refresh ``org`` through Dagster with ``inject``'s fault in the fake org."""
    clean = h.baseline(org)
    h.heal()
    before = h.state(org)
    requests_before = len(h.fake.requests)
    inject(h.fake)
    t0 = time.perf_counter()
    report = h.run(org)
    hits = _faults_hit(h.fake) + sum(1 for r in h.fake.requests[requests_before:] if r.status == 401)
    if expect == "retried":
        assert report.success, f"{fault}: the run failed instead of recovering: {report.message}"
        check_recovered(before, h.state(org), clean, fault)
        return Outcome("Salesforce API", fault, "retried", f"{hits} faulty answer(s) absorbed, run completed",
                       report.seconds, time.perf_counter() - t0)
    assert not report.success, f"{fault}: the run succeeded although the fault persisted"
    check_intact(before, h.state(org), fault)
    check_message(report.message, fault, f"org {org!r}", "—", *says)
    h.heal()
    rerun = h.run(org)
    assert rerun.success, f"{fault}: the rerun failed: {rerun.message}"
    check_recovered(before, h.state(org), clean, fault)
    return Outcome("Salesforce API", fault, "failed cleanly", f"{report.step} failed; rerun completed",
                   report.seconds, time.perf_counter() - t0, report.message)


QUERY_MORE = "/tooling/query/01g"  # a queryMore locator: page 2 of a paged Tooling query

#: name → (fault, injection, expected result, words the error must contain, org)
SALESFORCE_FAULTS: dict[str, tuple[str, Callable[[Any], None], str, tuple[str, ...], str]] = {
    "sf_page2_500": ("queryMore page 2: HTTP 500 once", _queue(500, 1, QUERY_MORE), "retried", (), ORG),
    "sf_page2_reset": ("queryMore page 2: connection reset once", _queue("reset", 1, QUERY_MORE), "retried", (),
                       ORG),
    "sf_page2_truncated_json": ("queryMore page 2: truncated JSON once", _queue("truncated_json", 1, QUERY_MORE),
                                "retried", (), ORG),
    "sf_page2_cut_body": ("queryMore page 2: body cut mid-transfer once", _queue("cut_body", 1, QUERY_MORE),
                          "retried", (), ORG),
    "sf_page2_503_persistent": ("queryMore page 2: HTTP 503 on every attempt", _queue(503, 1000, QUERY_MORE),
                                "failed cleanly", ("tooling:", "gave up after 3 attempts", "retry later"), ORG),
    "sf_limit_403": ("REQUEST_LIMIT_EXCEEDED (403) twice", _queue("REQUEST_LIMIT_EXCEEDED", 2, "/query"),
                     "retried", (), ORG),
    "sf_limit_403_persistent": ("REQUEST_LIMIT_EXCEEDED (403) on every attempt",
                                _queue("REQUEST_LIMIT_EXCEEDED", 1000, "/query"), "failed cleanly",
                                ("REQUEST_LIMIT_EXCEEDED", "retry later or raise the limit"), ORG),
    "sf_session_expires_oauth": ("session expires mid-run (INVALID_SESSION_ID), client credentials",
                                 lambda fake: setattr(fake.faults, "expire_session_after", 12), "retried", (), ORG),
    "sf_session_expires_token": ("session expires mid-run (INVALID_SESSION_ID), static access token",
                                 lambda fake: setattr(fake.faults, "expire_session_after", 12), "failed cleanly",
                                 ("INVALID_SESSION_ID", "SF_FAKE_ACCESS_TOKEN", "re-run"), TOKEN_ORG),
}


# --------------------------------------------------------------------------------------------
# Metadata API retrieve (Fix agent rollback bundles): malformed XML, a corrupt zip
# --------------------------------------------------------------------------------------------
def _mangle_zip(data: bytes, victim_suffix: str) -> tuple[bytes, str]:
    """``data`` with the first entry ending in ``victim_suffix`` cut in half (XML left open)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    victim = ""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            blob = src.read(info)
            if not victim and info.filename.endswith(victim_suffix):
                victim, blob = info.filename, blob[: len(blob) // 2]
            dst.writestr(info.filename, blob)
    assert victim, f"no {victim_suffix} file in the retrieved zip"
    return out.getvalue(), victim


RETRIEVE_TARGET = "CustomField:Invoice__c.Amount__c"  # used by a class, a validation rule, a layout


def retrieve_fault(h: LiveHarness, kind: str) -> Outcome:
    """A delete plan for a field of the fake org with its rollback bundle retrieved through the
    Metadata API, whose retrieve answers with a mangled zip."""
    from aicolleague_pipelines.lib.agents.fix import PlannedChange, plan_change
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
    from aicolleague_pipelines.lib.salesforce.client import RetryPolicy, SalesforceClient

    fault = {"malformed_xml": "retrieved zip holds malformed XML",
             "corrupt_zip": "retrieved zip is corrupt (cut short)"}[kind]
    h.baseline(ORG)
    h.heal()
    before = h.state(ORG)
    target = RETRIEVE_TARGET
    captured: dict[str, bytes] = {}

    def plan(out: str) -> Any:
        with patched_env(h.env), DuckDBGraphStore(h.db, read_only=True) as store:
            client = SalesforceClient(h.fake.org_config("client_credentials", name=ORG),
                                      retry=RetryPolicy(3, 0.001, 0.01), bulk_poll_interval=0.01)
            try:
                def retriever(members: dict[str, list[str]]) -> bytes:
                    captured.setdefault("zip", data := client.retrieve_metadata(members))
                    return data

                return plan_change(store, ORG, PlannedChange("delete", target, reason="fault matrix"),
                                   project_root=None, retriever=retriever, out_dir=h.root / out)
            finally:
                client.close()

    def complete(p: Any) -> dict[str, bool]:
        return {r.key: r.complete for r in p.rollback}

    clean = plan("plan-clean")
    assert target in complete(clean) and complete(clean)[target], f"{fault}: clean plan incomplete: {clean.notes}"
    if kind == "malformed_xml":
        h.fake.faults.retrieve_zip, victim = _mangle_zip(captured["zip"], ".object")  # the target's file
        says = (victim.removeprefix("unpackaged/"), "not well-formed XML", "sf project retrieve start")
    else:
        h.fake.faults.retrieve_zip = captured["zip"][: len(captured["zip"]) // 2]
        says = ("not a zip archive", "sf project retrieve start")
    t0 = time.perf_counter()
    bad = plan("plan-fault")
    fault_s = time.perf_counter() - t0
    assert bad.ok and bad.steps == clean.steps, f"{fault}: the plan itself changed"
    assert not bad.rollback_complete and not complete(bad)[target], (
        f"{fault}: a broken rollback copy of {target} is reported complete")
    note = next((n for n in bad.notes if "rollback bundle incomplete" in n and says[0] in n), "")
    check_message(note, fault, *says)
    check_intact(before, h.state(ORG), fault)
    h.heal()
    again = plan("plan-rerun")
    assert complete(again) == complete(clean) and again.rollback_files == clean.rollback_files, (
        f"{fault}: the rerun's rollback bundle differs from a clean one: {again.notes}")
    return Outcome("Metadata API retrieve", fault, "failed cleanly",
                   "plan kept, rollback marked incomplete with the manual retrieve command; rerun complete",
                   fault_s, time.perf_counter() - t0, note)


# --------------------------------------------------------------------------------------------
# Platforms: the Metabase asset through Dagster
# --------------------------------------------------------------------------------------------
class PlatformHarness:
    NAME = "mb-faults"

    def __init__(self, h: LiveHarness) -> None:
        from aicolleague_pipelines_tests.fakes.metabase import FAKE_API_KEY, FakeMetabase

        self.h = h
        self.fake = FakeMetabase().__enter__()
        self.env = {**h.env, MB_KEY_ENV: FAKE_API_KEY}
        self.clean: tuple | None = None

    def close(self) -> None:
        self.fake.__exit__(None, None, None)

    def cfg(self) -> Any:
        from aicolleague_pipelines.lib.platforms.config import PlatformConfig

        return PlatformConfig(name=self.NAME, kind="metabase", org=ORG, base_url=self.fake.url,
                              auth={"api_key_env": MB_KEY_ENV}, retry_attempts=3, retry_base_delay=0.01)

    def run(self) -> RunReport:
        import dagster as dg

        from aicolleague_pipelines.defs.platforms.assets import build_platform_asset
        from aicolleague_pipelines.resources import DataHomeResource

        with patched_env(self.env):
            t0 = time.perf_counter()
            result = dg.materialize([build_platform_asset(self.cfg())], instance=self.h.instance,
                                    resources={"data_home": DataHomeResource(path=str(self.h.home))},
                                    raise_on_error=False)
            seconds = time.perf_counter() - t0
        return _report(result, seconds)

    def state(self) -> tuple[str, tuple]:
        """(digest of the saved extract file, the lineage the org graph joins)."""
        from aicolleague_pipelines.lib.platforms.extract import PLATFORMS_DIR, load_extracts

        path = self.h.home / PLATFORMS_DIR / f"{self.NAME}.json"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        [ex] = load_extracts(self.h.home, [self.NAME]) or [None]
        lineage = () if ex is None else (
            tuple(sorted(n.key for n in ex.nodes)), tuple(sorted((e.source, e.target, e.kind) for e in ex.edges)),
            tuple(sorted(repr(link) for link in ex.links)))
        return digest, lineage

    def baseline(self) -> tuple:
        if self.clean is None:
            report = self.run()
            assert report.success, f"clean platform run failed: {report.message}"
            self.clean = self.state()[1]
        return self.clean

    def heal(self) -> None:
        self.fake.faults.rate_limits.clear()
        self.fake.faults.malformed_pages.clear()


def platform_fault(p: PlatformHarness, kind: str) -> Outcome:
    faults = {
        "rate_limited": ("HTTP 429 with Retry-After: 0.2 s, twice",
                         lambda: p.fake.rate_limit("/api/card", times=2, retry_after="0.2")),
        "rate_limited_persistent": ("HTTP 429 on every attempt",
                                    lambda: p.fake.rate_limit("/api/card", times=1000, retry_after="0")),
        "truncated_page": ("truncated JSON page, once", lambda: p.fake.malformed("/api/card")),
        "truncated_page_persistent": ("truncated JSON page on every attempt",
                                      lambda: p.fake.malformed("/api/card", times=1000)),
    }
    fault, inject = faults[kind]
    clean = p.baseline()
    p.heal()
    before = p.state()
    inject()
    t0 = time.perf_counter()
    report = p.run()
    if kind == "truncated_page":
        assert report.success, f"{fault}: {report.message}"
        assert p.state()[1] == clean, f"{fault}: the extract differs from a clean one"
        return Outcome("platform (Metabase)", fault, "retried", "page asked for again, extract equal to a clean one",
                       report.seconds, time.perf_counter() - t0)
    if kind == "rate_limited":
        assert report.success, f"{fault}: {report.message}"
        assert report.seconds >= 0.4, f"{fault}: Retry-After was not honoured ({report.seconds:.2f} s)"
        assert p.state()[1] == clean, f"{fault}: the extract differs from a clean one"
        return Outcome("platform (Metabase)", fault, "retried", "waited as told, extract equal to a clean one",
                       report.seconds, time.perf_counter() - t0)
    assert not report.success, f"{fault}: the run succeeded"
    says = ("HTTP 429 after 3 attempts", "retry later") if kind != "truncated_page_persistent" else ("not valid JSON", "retry")
    check_message(report.message, fault, f"platform {p.NAME!r}", "GET /api/card", "—", *says)
    assert p.state() == before, f"{fault}: the last good extract changed"
    p.heal()
    rerun = p.run()
    assert rerun.success and p.state()[1] == clean, f"{fault}: the rerun failed or differs: {rerun.message}"
    return Outcome("platform (Metabase)", fault, "failed cleanly", "last good extract kept (org graph joins it); "
                   "rerun completed", report.seconds, time.perf_counter() - t0, report.message)


# --------------------------------------------------------------------------------------------
# DuckDB: disk full (RLIMIT_FSIZE) and SIGKILL during a load, in a child process
# --------------------------------------------------------------------------------------------
def synthetic(n: int, e: int, seed: int) -> Any:
    from bench.generator import generate

    return generate(n, e, seed=seed)


def _objects(g: Any) -> tuple[list, list]:
    from aicolleague_pipelines.lib.graph.model import EDGE_KINDS, Edge, Node
    from bench.generator import TYPE_NAMES

    keys = g.keys.tolist()
    nodes = [Node(k, TYPE_NAMES[t], k.partition(":")[2]) for k, t in zip(keys, g.type_codes.tolist())]
    edges = [Edge(keys[s], keys[d], EDGE_KINDS[k], f"synthetic:{i}")
             for i, (s, d, k) in enumerate(zip(g.src.tolist(), g.dst.tolist(), g.kind_codes.tolist()))]
    return nodes, edges


def load_synthetic(store: Any, org: str, g: Any, api: str, *, marker: Callable[[], None] | None = None,
                   marker_at: float = 0.5) -> Any:
    """Load the generated org with ``load_arrays`` (bulk) or ``load_snapshot`` (the pipeline's
    path); ``marker`` is called when the edge iterator is ``marker_at`` through."""
    from bench.generator import TYPE_NAMES

    if api == "arrays":
        if marker:
            marker()
        return store.load_arrays(org, g.keys, g.type_codes, g.src, g.dst, g.kind_codes, type_names=TYPE_NAMES)
    nodes, edges = _objects(g)
    at = int(len(edges) * marker_at)

    def edge_stream() -> Iterator[Any]:
        for i, edge in enumerate(edges):
            if i == at and marker:
                marker()
            yield edge

    return store.load_snapshot(org, nodes, edge_stream())


def expected_state(g: Any, key: str) -> tuple[int, int, int]:
    """(nodes, edges, where-used count of ``key``) of a clean load of ``g``."""
    nid = int(list(g.keys).index(key))
    return len(g.keys), len(g.src), int((g.dst == nid).sum())


def _child_main(argv: list[str]) -> int:
    """``python -m aicolleague_pipelines_tests.fault_scenarios load ...``: load a generated org
    (the process the parent kills or starves of disk)."""
    import argparse

    from aicolleague_pipelines.lib.graph.store import GraphStoreError
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--org", required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--edges", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--api", choices=("arrays", "snapshot"), default="arrays")
    ap.add_argument("--fsize-extra", type=int, default=None, help="file-size limit: current files + this")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds the edge stream stalls at the marker")
    a = ap.parse_args(argv)
    g = synthetic(a.nodes, a.edges, a.seed)
    db = Path(a.db)
    if a.fsize_extra is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        biggest = max(p.stat().st_size for p in db.parent.iterdir() if p.is_file())
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + a.fsize_extra, resource.RLIM_INFINITY))

    def marker() -> None:
        print("loading", flush=True)
        if a.pause:
            time.sleep(a.pause)

    store = DuckDBGraphStore(db)
    try:
        info = load_synthetic(store, a.org, g, a.api, marker=marker)
    except GraphStoreError as exc:
        print(json.dumps({"error": str(exc), "cause": type(exc.__cause__).__name__}), flush=True)
        return 3
    finally:
        with contextlib.suppress(Exception):
            store.close()
    print(json.dumps({"done": info.version}), flush=True)
    return 0


def _child(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "aicolleague_pipelines_tests.fault_scenarios", "load", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _small_good_snapshot(db: Path, org: str) -> tuple[GraphState, Any]:
    """v1 of ``org``: a small generated graph, the last good snapshot the faults must spare."""
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    db.parent.mkdir(parents=True, exist_ok=True)
    g1 = synthetic(2_000, 8_000, seed=1)
    with DuckDBGraphStore(db) as store:
        load_synthetic(store, org, g1, "snapshot")
    return duckdb_state(db, org, busiest_key(db, org)), g1


def _rerun_and_check(db: Path, org: str, g: Any, api: str, before: GraphState, fault: str) -> GraphState:
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    with DuckDBGraphStore(db) as store:
        load_synthetic(store, org, g, api)
    key = busiest_key(db, org)
    after = duckdb_state(db, org, key)
    assert after.version == before.version + 1, f"{fault}: rerun made v{after.version}, not v{before.version + 1}"
    assert (after.nodes, after.edges, len(after.where_used)) == expected_state(g, key), (
        f"{fault}: the rerun differs from a clean load: {(after.nodes, after.edges)}")
    check_sane(after, fault)
    assert [v for v, _, _ in after.snapshots] == [v for v, _, _ in before.snapshots] + [after.version]
    return after


def duckdb_disk_full(work: Path, *, nodes: int = 200_000, edges: int = 1_000_000, extra: int = 1 << 20,
                     api: str = "arrays") -> Outcome:
    """The disk fills up (a file-size limit) while a child process writes a snapshot."""
    fault = f"disk full during a load ({api}, {nodes:,} nodes / {edges:,} edges)"
    db = work / "graph.duckdb"
    org = "big"
    before, _ = _small_good_snapshot(db, org)
    t0 = time.perf_counter()
    proc = _child(["--db", str(db), "--org", org, "--nodes", str(nodes), "--edges", str(edges), "--seed", "2",
                   "--api", api, "--fsize-extra", str(extra)])
    out, err = proc.communicate(timeout=300)
    fault_s = time.perf_counter() - t0
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert proc.returncode == 3 and lines and "error" in lines[-1], (
        f"{fault}: the load did not fail with a GraphStoreError (rc {proc.returncode}): {out[-500:]} {err[-2000:]}")
    message = lines[-1]["error"]
    check_message(message, fault, f"org {org!r}", str(db), "File too large", "previous snapshot stays current",
                  "disk space")
    check_intact(before, duckdb_state(db, org, busiest_key(db, org)), fault)
    _rerun_and_check(db, org, synthetic(nodes, edges, 2), api, before, fault)
    return Outcome("graph store (DuckDB)", fault, "failed cleanly",
                   "GraphStoreError names org, file, cause; v1 intact; rerun complete",
                   fault_s, time.perf_counter() - t0, message)


def duckdb_sigkill(work: Path, *, nodes: int = 200_000, edges: int = 1_000_000, api: str = "arrays",
                   delay: float | None = None, seed: int = 2) -> Outcome:
    """A child process loading a large generated org is SIGKILLed mid-load.

    ``arrays``: killed as soon as the database file has grown (data of the new version is on
    disk, not committed), or after ``delay`` seconds. ``snapshot``: the edge stream stalls
    half-way (nodes written), and the child is killed there."""
    fault = f"process SIGKILLed mid-load ({api}, {nodes:,} nodes / {edges:,} edges)"
    db = work / "graph.duckdb"
    org = "big"
    before, _ = _small_good_snapshot(db, org)
    size0 = db.stat().st_size
    t0 = time.perf_counter()
    proc = _child(["--db", str(db), "--org", org, "--nodes", str(nodes), "--edges", str(edges), "--seed",
                   str(seed), "--api", api, "--pause", "5" if api == "snapshot" else "0"])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "loading", f"{fault}: child did not start loading: {line!r} {proc.stderr.read()[-2000:]}"
        deadline = time.monotonic() + 60
        if api == "arrays" and delay is None:
            wal = db.with_name(db.name + ".wal")
            while db.stat().st_size == size0 and not wal.exists():
                assert proc.poll() is None, f"{fault}: the load finished before anything was seen on disk"
                assert time.monotonic() < deadline
                time.sleep(0.002)
            when = "after the new version's first blocks reached the file"
        elif api == "arrays":
            time.sleep(delay)
            when = f"{delay:.3f} s into the load"
        else:
            when = "with half the edges streamed"
        assert proc.poll() is None, f"{fault}: the load finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and '"done"' not in rest, f"{fault}: not killed mid-load: {rest}"
    fault_s = time.perf_counter() - t0
    check_intact(before, duckdb_state(db, org, busiest_key(db, org)), fault)
    _rerun_and_check(db, org, synthetic(nodes, edges, seed), api, before, fault)
    return Outcome("graph store (DuckDB)", fault, "failed cleanly", f"killed {when}; v1 intact; rerun complete",
                   fault_s, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Neo4j (ArcadeDB's Bolt server) behind a proxy that breaks connections
# --------------------------------------------------------------------------------------------
def neo4j_state(store: Any, org: str, key: str) -> GraphState:
    snaps = store.snapshots(org)
    cur = snaps[-1]
    used = store.where_used(org, key)

    def per_version(query: str) -> dict[int, int]:
        records = store._driver.execute_query(query, {"org": org}, database_=store.database).records
        return {int(r["v"]): int(r["n"]) for r in records}

    nodes = per_version("MATCH (c:Component {org: $org}) RETURN c.version AS v, count(c) AS n")
    edges = per_version("MATCH (c:Component {org: $org})-[e:DEPENDS_ON]->() RETURN c.version AS v, count(e) AS n")
    return GraphState(
        cur.version, cur.node_count, cur.edge_count,
        tuple(sorted((e.source, e.kind, e.evidence) for e in used)),
        tuple((s.version, s.node_count, s.edge_count) for s in snaps),
        tuple(sorted((v, n, edges.get(v, 0)) for v, n in nodes.items())),
    )


def neo4j_fault(bolt: Any, kind: str, *, nodes: int = 80, edges: int = 240, batch: int = 40) -> Outcome:
    """A lib-level load into Neo4j through :class:`BoltProxy` with a connection fault."""
    import uuid

    from aicolleague_pipelines.lib.graph.store import GraphStoreError
    from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore
    from aicolleague_pipelines_tests.fakes.bolt_proxy import BoltProxy

    fault = {
        "drop": "connection dropped after N statements (mid-load)",
        "lost_commit": "COMMIT reached the server, its answer lost (IncompleteCommit)",
        "down": "server unreachable from mid-load on",
    }[kind]
    org = f"faults_{uuid.uuid4().hex[:8]}"
    g1, g2 = synthetic(nodes // 4, edges // 4, 1), synthetic(nodes, edges, 2)
    n1, e1 = _objects(g1)
    n2, e2 = _objects(g2)
    with BoltProxy(("127.0.0.1", bolt.bolt_port)) as proxy:
        store = Neo4jGraphStore(proxy.uri, auth=bolt.auth, database=bolt.database, batch_size=batch,
                                max_transaction_retry_time=0.5)
        try:
            store.load_snapshot(org, n1, e1)
            key = max(sorted(n.key for n in n1), key=lambda k: sum(1 for e in e1 if e.target == k))
            before = neo4j_state(store, org, key)
            message = ""
            t0 = time.perf_counter()
            if kind == "drop":
                proxy.drop_after_runs(6)  # RUN #6 of the load: a few batches into the new version
            elif kind == "lost_commit":
                proxy.lose_commit_ack("DEPENDS_ON", nth=2)  # the second edge batch
            else:
                def down_from_now() -> Iterator[Any]:  # the caller's edge stream: the server goes away
                    for i, edge in enumerate(e2):
                        if i == len(e2) // 2:
                            proxy.down = True
                            proxy.cut_all()
                        yield edge
            try:
                info = store.load_snapshot(org, n2, down_from_now() if kind == "down" else e2)
                result = "retried"
                assert kind == "drop", f"{fault}: the load succeeded (v{info.version})"
            except GraphStoreError as exc:
                result, message = "failed cleanly", str(exc)
                assert kind != "drop", f"{fault}: the driver did not retry: {exc}"
            fault_s = time.perf_counter() - t0
            assert proxy.events, f"{fault}: the proxy never injected the fault"
            proxy.heal()
            if result == "failed cleanly":
                check_message(message, fault, f"org {org!r}", "previous snapshot stays current", "rerun")
                after_fault = neo4j_state(store, org, key)
                if kind == "down":
                    # The partial version could not be cleaned up (no server): it stays
                    # invisible ('loading'); pruning deletes it once stale.
                    assert after_fault.snapshots == before.snapshots and after_fault.version == before.version
                    assert after_fault.where_used == before.where_used
                    store.stale_after_s = 0.0
                else:
                    check_intact(before, after_fault, fault)
                store.load_snapshot(org, n2, e2)
            key2 = max(sorted(n.key for n in n2), key=lambda k: sum(1 for e in e2 if e.target == k))
            after = neo4j_state(store, org, key2)
            assert after.version > before.version
            assert (after.nodes, after.edges, len(after.where_used)) == expected_state(g2, key2), (
                f"{fault}: counts differ from a clean load: {(after.nodes, after.edges)}")
            check_sane(after, fault)
            detail = {"drop": "driver reconnected and retried the batch; no duplicates",
                      "lost_commit": "load abandoned, partial version deleted; rerun complete",
                      "down": "load failed; partial version invisible, pruned by the rerun"}[kind]
            return Outcome("graph store (Neo4j/Bolt)", fault, result, detail, fault_s,
                           time.perf_counter() - t0, message)
        finally:  # the org's data stays: its name is unique and the server is a throwaway
            store.close()


def neo4j_dagster_fault(h: LiveHarness, bolt: Any) -> Outcome:
    """org_refresh_job on Neo4j (through the proxy): the second edge batch's COMMIT answer is lost."""
    from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore
    from aicolleague_pipelines_tests.fakes.bolt_proxy import BoltProxy

    fault = "Neo4j COMMIT answer lost during org_graph (through Dagster)"
    user, password = bolt.auth
    with BoltProxy(("127.0.0.1", bolt.bolt_port)) as proxy:
        env = {"NEO4J_URI": proxy.uri, "NEO4J_USER": user, "NEO4J_PASSWORD": password,
               "NEO4J_DATABASE": bolt.database}
        h.heal()
        first = h.run(ORG, env)
        assert first.success, first.message
        with patched_env(env), Neo4jGraphStore.from_env() as store:
            key = busiest_neo4j_key(store, ORG)
            clean = before = neo4j_state(store, ORG, key)
            proxy.lose_commit_ack("DEPENDS_ON", nth=1)
            t0 = time.perf_counter()
            report = h.run(ORG, env)
            assert not report.success and report.step == "org_graph", f"{fault}: {report}"
            check_message(report.message, fault, f"org {ORG!r}", "Neo4j", "previous snapshot stays current",
                          "rerun")
            check_intact(before, neo4j_state(store, ORG, key), fault)
            rerun = h.run(ORG, env)
            assert rerun.success, f"{fault}: rerun failed: {rerun.message}"
            check_recovered(before, neo4j_state(store, ORG, key), clean, fault)
            store.drop_org(ORG)  # the harness's other scenarios may use this server too
    return Outcome("graph store (Neo4j/Bolt)", fault, "failed cleanly", "org_graph failed, v1 intact; rerun complete",
                   report.seconds, time.perf_counter() - t0, report.message)


def busiest_neo4j_key(store: Any, org: str) -> str:
    counts: dict[str, int] = {}
    for e in store.edges(org):
        counts[e.target] = counts.get(e.target, 0) + 1
    return max(sorted(counts), key=lambda k: counts[k])


if __name__ == "__main__":  # the child process of the DuckDB scenarios
    if sys.argv[1:2] == ["load"]:
        sys.exit(_child_main(sys.argv[2:]))
    sys.exit("usage: python -m aicolleague_pipelines_tests.fault_scenarios load --db … --org … --nodes … --edges …")
