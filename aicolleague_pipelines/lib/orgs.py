"""``orgs.yaml``: which Salesforce orgs the project watches, and how each is reached.

Example (see ``orgs.example.yaml`` at the project root)::

    orgs:
      - name: acme-prod            # partition key: letters, digits, - and _
        source: demo               # a bundled demo org (the embedded default)
      - name: my-package
        source: sfdx
        path: ../my-package        # relative to this file
      - name: prod
        source: live
        instance_url: https://acme.my.salesforce.com
        api_version: "62.0"
        auth:
          kind: client_credentials        # access_token | client_credentials | jwt | password
          client_id_env: SF_PROD_CLIENT_ID
          client_secret_env: SF_PROD_CLIENT_SECRET

Secrets are never written in the file: only the *names* of environment variables
(keys ending in ``_env``). A literal secret in the file is refused with a clear error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aicolleague_pipelines.lib.salesforce.model import ORG_NAME_RE

ORGS_FILE_ENV = "AICOLLEAGUE_ORGS_FILE"
DEPENDENCY_MODES = ("auto", "tooling", "bulk", "off")
DEFAULT_API_VERSION = "62.0"

#: Which ``*_env`` keys each auth kind needs (required, optional).
AUTH_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "access_token": (("access_token_env",), ()),
    "client_credentials": (("client_id_env", "client_secret_env"), ()),
    "jwt": (("client_id_env", "username_env", "private_key_env"), ()),
    "password": (
        ("username_env", "password_env"),
        ("security_token_env", "client_id_env", "client_secret_env"),
    ),
}
#: Keys that would hold a secret in clear; refused (name an env var instead).
_LITERAL_SECRET_KEYS = {
    "access_token",
    "session_id",
    "client_secret",
    "private_key",
    "password",
    "security_token",
    "token",
}


class OrgsConfigError(ValueError):
    """orgs.yaml is missing, malformed or unsafe; the message says where and what to do."""


@dataclass(frozen=True)
class AuthConfig:
    kind: str
    #: ``*_env`` key → environment variable name (never the secret itself).
    env: dict[str, str] = field(default_factory=dict)
    #: Where OAuth token requests go (login/test.salesforce.com or a My Domain URL).
    login_url: str | None = None

    def secret(self, key: str, org: str) -> str:
        """Read the secret named by ``key`` (e.g. ``client_secret_env``) from the environment."""
        var = self.env.get(key)
        if not var:
            raise OrgsConfigError(f"org {org!r}: auth.{key} is not configured")
        value = os.environ.get(var)
        if not value:
            raise OrgsConfigError(
                f"org {org!r}: environment variable {var} (auth.{key}) is not set — "
                f"export it before running, or fix auth.{key} in the orgs file"
            )
        return value

    def optional_secret(self, key: str) -> str | None:
        var = self.env.get(key)
        return os.environ.get(var) if var else None


@dataclass(frozen=True)
class SignalSettings:
    """Per-org runtime-signal settings from the orgs file (None: the library default)."""

    signals: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    max_log_mb: float | None = None
    lookback_days: int | None = None
    api_share: float | None = None

    def read_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``collect_signals`` (only what the file set)."""
        kw: dict[str, Any] = {}
        if self.signals is not None:
            kw["signals"] = self.signals
        if self.event_types is not None:
            kw["event_types"] = self.event_types
        if self.max_log_mb is not None:
            kw["max_log_bytes"] = int(self.max_log_mb * 1024 * 1024)
        if self.lookback_days is not None:
            kw["lookback_days"] = self.lookback_days
        return kw


@dataclass(frozen=True)
class OrgConfig:
    name: str
    source: str  # "live" | "sfdx" | "demo"
    path: Path | None = None  # sfdx: project root; demo: bundled project root
    instance_url: str | None = None
    api_version: str = DEFAULT_API_VERSION
    auth: AuthConfig | None = None
    ca_bundle: str | None = None
    #: Free-form labels (environment: production/sandbox, owner team…).
    labels: dict[str, str] = field(default_factory=dict)
    #: Live orgs: attempts per API call on rate limits/5xx/timeouts, and the first backoff (s).
    retry_attempts: int = 5
    retry_base_delay: float = 1.0
    #: Live orgs: how to read MetadataComponentDependency — ``auto`` (Bulk API 2.0 above
    #: a few thousand components, Tooling Id batches below), ``tooling``, ``bulk`` or ``off``.
    dependency_mode: str = "auto"
    #: Runtime signals (the ``signals:`` mapping): which to read, which EventLogFile types, the
    #: log size cap, the first run's lookback and the share of the daily API allowance the
    #: signals sensor may spend. Empty: the defaults of ``lib/salesforce/signals.py``.
    signals: SignalSettings = field(default_factory=SignalSettings)

    def describe(self) -> str:
        """A one-line description safe to log (no secrets, only env var names)."""
        if self.source == "live":
            return f"{self.name}: live org at {self.instance_url} (auth {self.auth.kind if self.auth else '?'})"
        return f"{self.name}: {self.source} project at {self.path}"


def demo_root() -> Path:
    """Folder of the bundled demo (orgs.yaml, one SFDX project per org, recorded extras)."""
    return Path(str(resources.files("aicolleague_pipelines") / "demo"))


def default_orgs_file() -> Path:
    """The orgs file in force: ``$AICOLLEAGUE_ORGS_FILE`` or the bundled demo's."""
    env = os.environ.get(ORGS_FILE_ENV)
    return Path(env) if env else demo_root() / "orgs.yaml"


def load_orgs(path: str | os.PathLike[str] | None = None) -> list[OrgConfig]:
    """Read and validate an orgs file. Raises :class:`OrgsConfigError` naming the problem."""
    p = Path(path) if path else default_orgs_file()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OrgsConfigError(
            f"orgs file {p} not found — create it (see orgs.example.yaml) or unset {ORGS_FILE_ENV}"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise OrgsConfigError(f"orgs file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("orgs"), list):
        raise OrgsConfigError(f"orgs file {p}: expected a top-level 'orgs:' list")
    orgs: list[OrgConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(data["orgs"]):
        org = _parse_org(entry, i, p)
        if org.name in seen:
            raise OrgsConfigError(f"orgs file {p}: org name {org.name!r} appears twice")
        seen.add(org.name)
        orgs.append(org)
    return orgs


def _parse_org(entry: Any, index: int, file: Path) -> OrgConfig:
    where = f"orgs file {file}, entry {index + 1}"
    if not isinstance(entry, dict):
        raise OrgsConfigError(f"{where}: expected a mapping with name and source")
    name = str(entry.get("name", ""))
    if not ORG_NAME_RE.match(name):
        raise OrgsConfigError(
            f"{where}: org name {name!r} is invalid — use letters, digits, '-' and '_' "
            "(it becomes a Dagster partition key)"
        )
    where = f"orgs file {file}, org {name!r}"
    leaked = _LITERAL_SECRET_KEYS & set(_all_keys(entry))
    if leaked:
        raise OrgsConfigError(
            f"{where}: {', '.join(sorted(leaked))} must not be written in the file — "
            f"put the secret in an environment variable and name it with "
            f"{', '.join(sorted(k + '_env' for k in leaked))}"
        )
    source = entry.get("source")
    api_version = str(entry.get("api_version", DEFAULT_API_VERSION))
    labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
    signals = _parse_signals(entry.get("signals"), where)
    if source == "demo":
        demo_name = str(entry.get("demo", name))
        path = demo_root() / "orgs" / demo_name
        if not path.is_dir():
            raise OrgsConfigError(f"{where}: no bundled demo org named {demo_name!r}")
        return OrgConfig(name, "demo", path=path, api_version=api_version, labels=labels, signals=signals)
    if source == "sfdx":
        raw = entry.get("path")
        if not raw:
            raise OrgsConfigError(f"{where}: source sfdx needs a 'path' to the project")
        path = Path(raw)
        if not path.is_absolute():
            path = (file.parent / path).resolve()
        return OrgConfig(name, "sfdx", path=path, api_version=api_version, labels=labels, signals=signals)
    if source == "live":
        url = str(entry.get("instance_url", "")).rstrip("/")
        if not url.startswith("https://"):
            raise OrgsConfigError(
                f"{where}: live orgs need instance_url starting with https:// (got {url!r})"
            )
        auth = _parse_auth(entry.get("auth"), where)
        ca = entry.get("ca_bundle")
        if ca and not Path(ca).is_absolute():
            ca = str((file.parent / ca).resolve())
        retry = entry.get("retry") or {}
        try:
            attempts = int(retry.get("attempts", 5))
            base_delay = float(retry.get("base_delay", 1.0))
        except (TypeError, ValueError, AttributeError):
            attempts, base_delay = -1, -1.0
        if not (1 <= attempts <= 20 and 0 <= base_delay <= 60):
            raise OrgsConfigError(
                f"{where}: retry needs attempts between 1 and 20 and base_delay between 0 and 60 s"
            )
        dependency_mode = str(entry.get("dependencies", "auto"))
        if dependency_mode not in DEPENDENCY_MODES:
            raise OrgsConfigError(
                f"{where}: dependencies must be one of {', '.join(DEPENDENCY_MODES)} "
                f"(got {dependency_mode!r})"
            )
        return OrgConfig(
            name,
            "live",
            instance_url=url,
            api_version=api_version,
            auth=auth,
            ca_bundle=ca,
            labels=labels,
            retry_attempts=attempts,
            retry_base_delay=base_delay,
            dependency_mode=dependency_mode,
            signals=signals,
        )
    raise OrgsConfigError(f"{where}: source must be one of live, sfdx, demo (got {source!r})")


def _parse_signals(raw: Any, where: str) -> SignalSettings:
    """The ``signals:`` mapping of an org, validated."""
    if raw is None:
        return SignalSettings()
    from aicolleague_pipelines.lib.salesforce.signals import SIGNALS

    if not isinstance(raw, dict):
        raise OrgsConfigError(f"{where}: signals must be a mapping (read, event_types, max_log_mb, "
                              "lookback_days, api_share)")
    unknown = set(raw) - {"read", "event_types", "max_log_mb", "lookback_days", "api_share"}
    if unknown:
        raise OrgsConfigError(f"{where}: signals does not use {', '.join(sorted(map(str, unknown)))} "
                              "(known: read, event_types, max_log_mb, lookback_days, api_share)")

    def names(key: str, allowed: tuple[str, ...] | None) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise OrgsConfigError(f"{where}: signals.{key} must be a list of names")
        bad = [v for v in value if allowed is not None and v not in allowed]
        if bad:
            raise OrgsConfigError(f"{where}: signals.{key} has unknown {', '.join(bad)} "
                                  f"(known: {', '.join(allowed or ())})")
        if allowed is None and not all(v.isidentifier() for v in value):
            raise OrgsConfigError(f"{where}: signals.{key} must be EventLogFile EventType names "
                                  "(letters, digits, '_')")
        return tuple(value)

    def number(key: str, low: float, high: float, cast: type) -> Any:
        value = raw.get(key)
        if value is None:
            return None
        try:
            number_ = cast(value)
        except (TypeError, ValueError):
            number_ = None
        if number_ is None or isinstance(value, bool) or not (low <= number_ <= high):
            raise OrgsConfigError(f"{where}: signals.{key} must be a number between {low:g} and {high:g}")
        return number_

    return SignalSettings(
        signals=names("read", SIGNALS),
        event_types=names("event_types", None),
        max_log_mb=number("max_log_mb", 1, 10_000, float),
        lookback_days=number("lookback_days", 1, 30, int),
        api_share=number("api_share", 0.001, 0.5, float),
    )


def _parse_auth(raw: Any, where: str) -> AuthConfig:
    if not isinstance(raw, dict):
        raise OrgsConfigError(f"{where}: live orgs need an 'auth:' mapping with a kind")
    kind = raw.get("kind")
    if kind not in AUTH_KINDS:
        raise OrgsConfigError(
            f"{where}: auth.kind must be one of {', '.join(AUTH_KINDS)} (got {kind!r})"
        )
    required, optional = AUTH_KINDS[kind]
    env = {k: str(v) for k, v in raw.items() if k.endswith("_env") and v}
    missing = [k for k in required if k not in env]
    if missing:
        raise OrgsConfigError(
            f"{where}: auth kind {kind} needs {', '.join(missing)} (names of environment variables)"
        )
    unknown = set(env) - set(required) - set(optional)
    if unknown:
        raise OrgsConfigError(f"{where}: auth kind {kind} does not use {', '.join(sorted(unknown))}")
    login_url = raw.get("login_url")
    if login_url and not str(login_url).startswith("https://"):
        raise OrgsConfigError(f"{where}: auth.login_url must start with https://")
    return AuthConfig(kind=kind, env=env, login_url=str(login_url).rstrip("/") if login_url else None)


def _all_keys(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        out = [str(k) for k in obj]
        for v in obj.values():
            out.extend(_all_keys(v))
        return out
    if isinstance(obj, list):
        return [k for v in obj for k in _all_keys(v)]
    return []
