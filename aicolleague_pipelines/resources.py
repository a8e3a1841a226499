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


class GeminiResource(dg.ConfigurableResource):
    """Gemini through google-genai, or the deterministic offline writer without a key.

    Only the *name* of the key's environment variable is configuration. ``base_url`` (or
    ``$GEMINI_BASE_URL``) points at another endpoint, e.g. a proxy or a test server.
    """

    data_home: DataHomeResource
    api_key_env: str = "GEMINI_API_KEY"
    model: str = "gemini-2.5-flash"
    temperature: float = 0.2
    max_output_tokens: int = 2048
    #: Tokens one run may spend; past it the offline writer answers.
    token_budget: int | None = 200_000
    timeout_s: float = 60.0
    retries: int = 3
    base_url: str | None = None

    def writer(self):
        """A writer for one run (the token budget belongs to it); responses are cached."""
        from aicolleague_pipelines.lib.llm import GeminiConfig, make_writer

        cfg = GeminiConfig(
            model=self.model,
            temperature=self.temperature,
            max_output_tokens=self.max_output_tokens,
            token_budget=self.token_budget,
            timeout_s=self.timeout_s,
            retries=self.retries,
            base_url=self.base_url or os.environ.get("GEMINI_BASE_URL") or None,
            api_key_env=self.api_key_env,
        )
        return make_writer(cache_dir=self.data_home.root() / "llm-cache", config=cfg)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, each created once."""
    data_home = DataHomeResource()
    return {
        "orgs": OrgsResource(),
        "data_home": data_home,
        "graph_store": GraphStoreResource(data_home=data_home),
        "llm": GeminiResource(data_home=data_home),
    }
