"""Shared fixtures. Fakes of the far ends live in ``fakes/``; nothing of ours is mocked."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_DSN_BASE = os.environ.get("AICOLLEAGUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own data home; no orgs file or Dagster home leaks in from the shell."""
    monkeypatch.setenv("AICOLLEAGUE_HOME", str(tmp_path / "aicolleague_home"))
    monkeypatch.delenv("AICOLLEAGUE_ORGS_FILE", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def write_orgs_file(path: Path, orgs: list[dict]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"orgs": orgs}, sort_keys=False))
    return path


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's real PostgreSQL server, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"aic_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{PG_DSN_BASE}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_DSN_BASE} is not reachable ({exc}); .ci/run starts it")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_DSN_BASE}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


# The loopback fake Salesforce fixtures, available to every test module.
from aicolleague_pipelines_tests.fakes.conftest_fixtures import (  # noqa: E402,F401
    fake_salesforce,
    fake_salesforce_env,
    make_sf_client,
)

# `dagster dev` on PostgreSQL, started once per session for every UI test.
from aicolleague_pipelines_tests.ui_fixtures import dagster_dev  # noqa: E402,F401
