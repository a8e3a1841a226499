"""``dagster dev`` on PostgreSQL storage, started once per test session for every UI test (the
GraphQL smoke test and the headless-Chromium check share it).

The orgs file names one demo org, ``globex-prod``, registered as a partition *before* the
daemon starts: org_registry_sensor then has nothing new to request, so the only org run is
the one the tests launch through the GraphQL client (:meth:`DagsterDev.refresh`), once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.dagster_services import FreshDatabase, Services, dagster_env, write_dagster_home

DEMO_ORG = "globex-prod"
PG_DSN_BASE = os.environ.get("AICOLLEAGUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@dataclass
class DagsterDev:
    services: Services
    postgres_url: str
    data_home: Path
    #: org → (run id, final status) of the run :meth:`refresh` launched.
    _runs: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.services.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gql(self, query: str, variables: dict | None = None) -> dict:
        return self.services.gql(query, variables)

    def log_tail(self) -> str:
        return self.services.log_tail()

    def refresh(self, org: str = DEMO_ORG, timeout_s: float = 300) -> tuple[str, str]:
        """One ``org_refresh_job`` run of ``org`` through the GraphQL client (in-process
        executor: one process, quick), launched on first call and awaited; later calls return
        the same ``(run id, status)``."""
        if org not in self._runs:
            run_id = self.services.submit_org_refresh(org, {"in_process": {}})
            (row,) = self.services.wait_for_runs([run_id], time.monotonic() + timeout_s)
            self._runs[org] = (run_id, row["status"])
        return self._runs[org]


@pytest.fixture(scope="session")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """``dagster dev -w workspace.yaml`` with the project's dagster.yaml on a fresh PostgreSQL
    database; yields once the code location reports LOADED."""
    pytest.importorskip("psycopg2")
    root = tmp_path_factory.mktemp("dagster_dev")
    db = FreshDatabase(PG_DSN_BASE, prefix="aic_test_ui")
    try:
        postgres_url = db.__enter__()
    except Exception as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_DSN_BASE} is not reachable ({exc}); .ci/run starts it")
    home = write_dagster_home(root / "dagster_home", postgres_url=postgres_url)
    orgs_file = root / "orgs.yaml"
    orgs_file.write_text(f"orgs:\n  - name: {DEMO_ORG}\n    source: demo\n")
    _register_partition(home, DEMO_ORG)
    services = Services(dagster_env(home, root / "data", orgs_file), root / "logs")
    try:
        services.start_dev()
        services.wait_until_loaded(time.monotonic() + 180)
        yield DagsterDev(services, postgres_url, root / "data")
    finally:
        services.stop()
        db.__exit__(None, None, None)


def _register_partition(home: Path, org: str) -> None:
    """Add the org's partition straight into the instance's storage."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("salesforce_orgs", [org])
