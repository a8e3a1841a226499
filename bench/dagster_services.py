"""Real Dagster services for benchmarks and the UI tests: a fresh PostgreSQL database, a
``DAGSTER_HOME`` holding the project's ``dagster.yaml``, and ``dagster dev`` /
``dagster-webserver`` / ``dagster-daemon`` processes on ``workspace.yaml``, talked to through
GraphQL. Shared by ``bench/bench_scale_orgs.py`` and the tests' ``dagster_dev`` fixture."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "aicolleague_pipelines"
TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FreshDatabase:
    """A new database on the PostgreSQL server at ``base`` (``postgresql://user@host:port``),
    dropped on exit (its connections ended first) unless ``keep``."""

    def __init__(self, base: str, keep: bool = False, prefix: str = "aic_bench") -> None:
        self.base = base.rstrip("/")
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.keep = keep

    def _admin(self):
        import psycopg2

        conn = psycopg2.connect(f"{self.base}/postgres", connect_timeout=5)
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        return conn

    def _execute(self, *statements: tuple[str, tuple]) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
        finally:
            conn.close()

    def __enter__(self) -> str:
        self._execute((f'CREATE DATABASE "{self.name}"', ()))
        return f"{self.base}/{self.name}"

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self._execute(
                ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.name,)),
                (f'DROP DATABASE IF EXISTS "{self.name}"', ()),
            )


def write_dagster_home(home: Path, max_concurrent_runs: int | None = None,
                       postgres_url: str | None = None) -> Path:
    """``home/dagster.yaml``: the project's own settings. ``postgres_url`` replaces the
    ``DAGSTER_PG_*`` environment lookups with one URL; ``max_concurrent_runs`` sizes the run
    queue for the machine (the per-partition limit stays as the project sets it)."""
    home.mkdir(parents=True, exist_ok=True)
    settings = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    if max_concurrent_runs is not None:
        settings["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    if postgres_url is not None:
        # dagster-postgres ships psycopg2; SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3.
        url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        settings["storage"] = {"postgres": {"postgres_url": url}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return home


def dagster_env(home: Path, data_home: Path, orgs_file: Path | None = None,
                pg_url: str | None = None) -> dict[str, str]:
    """The environment of the Dagster processes: this shell's minus any Dagster, Neo4j or Gemini
    settings, plus the instance home, the data home, the orgs file and ``DAGSTER_PG_*`` (what
    the project's dagster.yaml reads) from ``pg_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "NEO4J_", "GEMINI_"))}
    env.update(
        DAGSTER_HOME=str(home),
        AICOLLEAGUE_HOME=str(data_home),
        # The change sensor has nothing to do here; keep its probes out of the way.
        AICOLLEAGUE_MONITOR_INTERVAL="3600",
    )
    if orgs_file is not None:
        env["AICOLLEAGUE_ORGS_FILE"] = str(orgs_file)
    if pg_url is not None:
        pg = urlparse(pg_url)
        env.update(
            DAGSTER_PG_HOST=pg.hostname or "127.0.0.1",
            DAGSTER_PG_PORT=str(pg.port or 5432),
            DAGSTER_PG_USER=pg.username or "postgres",
            DAGSTER_PG_PASSWORD=pg.password or "",
            DAGSTER_PG_DB=pg.path.lstrip("/"),
        )
    return env


class Services:
    """Dagster processes on workspace.yaml, each in its own process group (stopped with SIGINT,
    then SIGKILL), logs under ``logdir``. ``port`` is the webserver's."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.logdir / f"{name}.log").open("w")
        self._logs.append(log)
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_dev(self) -> None:
        """``dagster dev``: webserver and daemon together, as a developer runs them."""
        self.start("dev", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port))

    def start_webserver(self) -> None:
        self.start("webserver", "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1",
                   "-p", str(self.port))

    def start_daemon(self) -> None:
        self.start("daemon", "dagster-daemon", "run", "-w", "workspace.yaml")

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name in self.procs:
            path = self.logdir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}.log ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()

    # --- GraphQL ---------------------------------------------------------------------------

    def gql(self, query: str, variables: dict | None = None) -> dict:
        """One GraphQL request to the webserver; GraphQL errors raise."""
        import requests

        r = requests.post(f"http://127.0.0.1:{self.port}/graphql",
                          json={"query": query, "variables": variables or {}}, timeout=60)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_loaded(self, deadline: float) -> None:
        """Until the webserver answers and the code location reports LOADED (it loads in its
        own process, after the server is up); a location that failed to load raises."""
        import requests

        while True:
            self.check_alive()
            try:
                entries = self.gql(LOCATION_STATUS_Q)["workspaceOrError"].get("locationEntries") or []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e["locationOrLoadError"] for e in entries
                              if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise RuntimeError(f"code location failed to load: {errors}")
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"code location not loaded in time:\n{self.log_tail()}")
            time.sleep(0.5)

    def add_partitions(self, names: list[str]) -> None:
        """Register orgs as ``salesforce_orgs`` partitions (what org_registry_sensor does)."""
        for name in names:
            data = self.gql(ADD_PARTITION_M, {
                "sel": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"},
                "key": name})["addDynamicPartition"]
            if data["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise RuntimeError(f"could not add partition {name}: {data}")

    def submit_org_refresh(self, org: str, executor: dict[str, Any], tags: dict[str, str] | None = None,
                           assets: list[str] | None = None) -> str:
        """Submit one ``org_refresh_job`` run of ``org``'s partition (queued; the daemon
        launches it); ``executor`` is the run config's ``execution.config``. ``assets``: only
        these (``launchRun`` with an asset selection), else the whole job through
        ``DagsterGraphQLClient``."""
        tags = {"dagster/partition": org, **(tags or {})}
        run_config = {"execution": {"config": executor}}
        if assets is None:
            from dagster_graphql import DagsterGraphQLClient

            return DagsterGraphQLClient("127.0.0.1", port_number=self.port).submit_job_execution(
                "org_refresh_job", tags=tags, run_config=run_config)
        out = self.gql(LAUNCH_RUN_M, {"params": {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                         "jobName": "org_refresh_job",
                         "assetSelection": [{"path": a.split("/")} for a in assets]},
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }})["launchRun"]
        if out["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun for {org} failed: {out}")
        return out["run"]["runId"]

    def upstream_closure(self, targets: list[str]) -> list[str]:
        """``targets`` and every asset they depend on, transitively (keys as ``a/b``)."""
        deps = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]]
                for n in self.gql(ASSET_DEPS_Q)["assetNodes"]}
        seen: set[str] = set()
        todo = list(targets)
        while todo:
            key = todo.pop()
            if key not in seen:
                seen.add(key)
                todo.extend(deps.get(key, []))
        return sorted(seen)

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """``runId status startTime endTime`` of each run."""
        return self.gql(RUNS_Q, {"ids": run_ids})["runsOrError"]["results"]

    def wait_for_runs(self, run_ids: list[str], deadline: float, progress: Any = None) -> list[dict[str, Any]]:
        """Poll until every run is SUCCESS, FAILURE or CANCELED; returns :meth:`runs`."""
        done_before = -1
        while True:
            self.check_alive()
            rows = self.runs(run_ids)
            done = sum(1 for r in rows if r["status"] in TERMINAL)
            if progress and done != done_before:
                progress(done, len(run_ids))
                done_before = done
            if done == len(run_ids):
                return rows
            if time.monotonic() > deadline:
                states = sorted(f"{r['runId'][:8]} {r['status']}" for r in rows)
                raise TimeoutError(f"runs not finished in time: {states}\n{self.log_tail()}")
            time.sleep(1.0)


LOCATION_STATUS_Q = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

ADD_PARTITION_M = """mutation($sel: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $sel, partitionsDefName: "salesforce_orgs",
    partitionKey: $key) { __typename ... on PythonError { message } } }"""

RUNS_Q = """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { ... on Runs {
  results { runId status startTime endTime tags { key value } } } } }"""

ASSET_DEPS_Q = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"

LAUNCH_RUN_M = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
