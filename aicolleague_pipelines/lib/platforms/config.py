"""``platforms.yaml``: the business platforms around the orgs, and how to reach each one.

Example (the bundled demo's file is ``aicolleague_pipelines/demo/platforms.yaml``)::

    platforms:
      - name: acme-metabase          # instance name: letters, digits, - and _
        kind: metabase               # metabase | chargebee | intercom | custom
        org: acme-prod               # the Salesforce org whose data this platform mirrors
        base_url: https://metabase.acme.example
        auth: {api_key_env: METABASE_API_KEY}
        options: {...}               # kind-specific (see each connector's docstring)
      - name: acme-metabase-demo
        kind: metabase
        org: acme-prod
        export: exports/metabase     # recorded API responses instead of a live server

Secrets are named by environment variable (``*_env`` keys), never written in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.model import ORG_NAME_RE

PLATFORMS_FILE_ENV = "AICOLLEAGUE_PLATFORMS_FILE"
KINDS = ("metabase", "chargebee", "intercom", "custom")
_LITERAL_SECRET_KEYS = {"api_key", "token", "password", "secret", "access_token", "client_secret"}


class PlatformConfigError(ValueError):
    """platforms.yaml is missing, malformed or unsafe; the message says where and what to do."""


@dataclass(frozen=True)
class PlatformConfig:
    name: str
    kind: str
    org: str | None = None
    base_url: str | None = None
    #: ``*_env`` key → environment variable name.
    auth: dict[str, str] = field(default_factory=dict)
    #: Folder of recorded API responses (demo / offline); used instead of ``base_url``.
    export: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ca_bundle: str | None = None
    retry_attempts: int = 5
    retry_base_delay: float = 1.0

    def secret(self, key: str) -> str:
        """The secret named by ``auth[key]`` (e.g. ``api_key_env``), from the environment."""
        var = self.auth.get(key)
        if not var:
            raise PlatformConfigError(f"platform {self.name!r}: auth.{key} is not configured")
        value = os.environ.get(var)
        if not value:
            raise PlatformConfigError(
                f"platform {self.name!r}: environment variable {var} (auth.{key}) is not set — "
                "export it before running"
            )
        return value


def default_platforms_file() -> Path:
    env = os.environ.get(PLATFORMS_FILE_ENV)
    return Path(env) if env else demo_root() / "platforms.yaml"


def load_platforms(path: str | os.PathLike[str] | None = None) -> list[PlatformConfig]:
    """Read and validate a platforms file (a missing default file means no platforms)."""
    p = Path(path) if path else default_platforms_file()
    if not p.is_file():
        if path or os.environ.get(PLATFORMS_FILE_ENV):
            raise PlatformConfigError(f"platforms file {p} not found")
        return []
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlatformConfigError(f"platforms file {p} is not valid YAML: {exc}") from None
    entries = data.get("platforms") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise PlatformConfigError(f"platforms file {p}: expected a top-level 'platforms:' list")
    out: list[PlatformConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        cfg = _parse(entry, i, p)
        if cfg.name in seen:
            raise PlatformConfigError(f"platforms file {p}: name {cfg.name!r} appears twice")
        seen.add(cfg.name)
        out.append(cfg)
    return out


def _parse(entry: Any, index: int, file: Path) -> PlatformConfig:
    where = f"platforms file {file}, entry {index + 1}"
    if not isinstance(entry, dict):
        raise PlatformConfigError(f"{where}: expected a mapping with name and kind")
    name = str(entry.get("name", ""))
    if not ORG_NAME_RE.match(name):
        raise PlatformConfigError(f"{where}: name {name!r} is invalid — letters, digits, - and _")
    where = f"platforms file {file}, platform {name!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise PlatformConfigError(f"{where}: kind must be one of {', '.join(KINDS)} (got {kind!r})")
    auth = entry.get("auth") or {}
    if not isinstance(auth, dict):
        raise PlatformConfigError(f"{where}: auth must be a mapping of *_env keys")
    leaked = _LITERAL_SECRET_KEYS & {str(k) for k in auth}
    if leaked:
        raise PlatformConfigError(
            f"{where}: {', '.join(sorted(leaked))} must not be written in the file — name an "
            f"environment variable with {', '.join(sorted(k + '_env' for k in leaked))}"
        )
    export = entry.get("export")
    base_url = entry.get("base_url")
    if export:
        export_path = Path(export)
        if not export_path.is_absolute():
            export_path = (file.parent / export_path).resolve()
        if not export_path.is_dir():
            raise PlatformConfigError(f"{where}: export folder {export_path} does not exist")
    else:
        export_path = None
        if not base_url or not str(base_url).startswith(("https://", "http://")):
            raise PlatformConfigError(f"{where}: needs base_url (http[s]://…) or export (a folder)")
    retry = entry.get("retry") or {}
    return PlatformConfig(
        name=name,
        kind=kind,
        org=str(entry["org"]) if entry.get("org") else None,
        base_url=str(base_url).rstrip("/") if base_url else None,
        auth={str(k): str(v) for k, v in auth.items() if str(k).endswith("_env")},
        export=export_path,
        options=dict(entry.get("options") or {}),
        ca_bundle=entry.get("ca_bundle"),
        retry_attempts=int(retry.get("attempts", 5)),
        retry_base_delay=float(retry.get("base_delay", 1.0)),
    )
