"""Dagster resources: the one place where environment and configuration meet the code.

Secrets are never resource config values written anywhere: live orgs name the environment
variables that hold their credentials in the orgs file, and :class:`OrgsResource` reads them
only when a run needs them (through :meth:`AuthConfig.secret`), so nothing secret is stored in
run config, the event log or asset metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from aicolleague_pipelines.lib.orgs import ORGS_FILE_ENV, OrgConfig, OrgsConfigError, load_orgs

DATA_HOME_ENV = "AICOLLEAGUE_HOME"


class OrgsResource(dg.ConfigurableResource):
    """Which orgs exist and how to reach them (``orgs.yaml``).

    ``orgs_file`` defaults to ``$AICOLLEAGUE_ORGS_FILE``, else the bundled demo's orgs file.
    """

    orgs_file: str | None = None

    def path(self) -> Path | None:
        raw = self.orgs_file or os.environ.get(ORGS_FILE_ENV)
        return Path(raw) if raw else None

    def load(self) -> list[OrgConfig]:
        return load_orgs(self.path())

    def get(self, name: str) -> OrgConfig:
        """The org registered under partition key ``name`` (clear error if it left the file)."""
        orgs = {o.name: o for o in self.load()}
        if name not in orgs:
            raise OrgsConfigError(
                f"org {name!r} is a partition but no longer in the orgs file "
                f"({self.path() or 'bundled demo'}); its history is kept — add it back to "
                "refresh it, or delete the partition in the UI"
            )
        return orgs[name]


class DataHomeResource(dg.ConfigurableResource):
    """Where the project keeps its own files (graph store, snapshots, exports).

    ``path`` defaults to ``$AICOLLEAGUE_HOME``, else ``./.aicolleague``.
    """

    path: str | None = None

    def root(self) -> Path:
        p = Path(self.path or os.environ.get(DATA_HOME_ENV) or ".aicolleague").resolve()
        p.mkdir(parents=True, exist_ok=True)
        return p


class GraphStoreResource(dg.ConfigurableResource):
    """The graph store: Neo4j when ``NEO4J_URI`` is set (credentials from ``NEO4J_USER`` /
    ``NEO4J_PASSWORD``), else the embedded DuckDB file under the data home."""

    data_home: DataHomeResource
    #: Snapshots kept per org for diffs and trends.
    keep_snapshots: int = 10

    def open(self, read_only: bool = False):
        from aicolleague_pipelines.lib.graph.stores import open_store

        return open_store(self.data_home.root(), read_only=read_only)

    def kind(self) -> str:
        from aicolleague_pipelines.lib.graph.stores import store_kind

        return store_kind()


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, each created once."""
    data_home = DataHomeResource()
    return {
        "orgs": OrgsResource(),
        "data_home": data_home,
        "graph_store": GraphStoreResource(data_home=data_home),
    }
