"""Who may see which org: the access policy file and the caller's scope.

The policy is a YAML file named by ``$AICOLLEAGUE_ACCESS_POLICY``::

    users:                          # user → orgs (names or fnmatch patterns: *, acme-*)
      alice: [acme-prod, acme-uat]
      ops-admin: ["*"]
    groups:                         # members get the group's orgs too
      billing-team:
        members: [bob, carol]
        orgs: [globex-prod]
    default: []                     # orgs everyone sees, named in the file or not (optional)

The caller is ``$AICOLLEAGUE_USER``, or else the operating-system login name
(:func:`getpass.getuser`). Without ``$AICOLLEAGUE_ACCESS_POLICY`` nothing is restricted
(local development, the bundled demo). With it, an unknown user sees only ``default`` (nothing
unless the file says otherwise), and a policy that cannot be read or does not have this exact
shape is an :class:`AccessPolicyError`: nothing is shown until it is fixed (fail closed).

The identity comes from the environment: the policy scopes what people see through the CLI,
``ask`` and the query library; it is not authentication. Whoever can read the data home or the
Neo4j credentials can read every org — keep those readable by the service account only.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

POLICY_ENV = "AICOLLEAGUE_ACCESS_POLICY"
USER_ENV = "AICOLLEAGUE_USER"
_TOP_KEYS = frozenset({"users", "groups", "default"})
_GROUP_KEYS = frozenset({"members", "orgs"})


class AccessError(RuntimeError):
    """Base of the access-control errors (never a :class:`GraphStoreError`, so no generic
    handler swallows a denial)."""


class AccessPolicyError(AccessError):
    """The policy file is missing, unreadable or malformed: nothing is shown (fail closed)."""


class AccessDenied(AccessError):
    """The org is outside the caller's scope. The message is the same whether or not the org
    exists, so a denial never reveals another org."""

    def __init__(self, org: str, scope: "AccessScope") -> None:
        self.org = org
        self.user = scope.user
        self.policy_path = scope.policy_path
        super().__init__(
            f"org {org!r} is not in your scope (policy file {scope.policy_path}, user {scope.user or '(unknown)'})"
            " — ask whoever maintains the policy file to grant it"
        )


@dataclass(frozen=True)
class AccessScope:
    """The orgs one caller may see. ``policy_path is None``: unrestricted (no policy)."""

    user: str | None
    policy_path: Path | None
    patterns: tuple[str, ...] = ()

    @property
    def unrestricted(self) -> bool:
        return self.policy_path is None

    def allows(self, org: str) -> bool:
        if self.unrestricted:
            return True
        return isinstance(org, str) and any(fnmatchcase(org, p) for p in self.patterns)

    def check(self, org: str) -> None:
        """Raise :class:`AccessDenied` unless ``org`` is in scope."""
        if not self.allows(org):
            raise AccessDenied(org, self)

    def filter(self, orgs: Iterable[str]) -> list[str]:
        """``orgs`` in scope, in their order."""
        return [o for o in orgs if self.allows(o)]

    def describe(self) -> str:
        if self.unrestricted:
            return f"no access policy (${POLICY_ENV} unset): every org is visible"
        shown = ", ".join(self.patterns) if self.patterns else "no org"
        return f"user {self.user or '(unknown)'} under policy {self.policy_path}: {shown}"


UNRESTRICTED = AccessScope(user=None, policy_path=None)


@dataclass(frozen=True)
class AccessPolicy:
    """A parsed policy file."""

    path: Path
    users: Mapping[str, tuple[str, ...]]
    groups: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]  # name → (members, orgs)
    default: tuple[str, ...] = ()

    def scope_for(self, user: str | None) -> AccessScope:
        patterns: list[str] = list(self.default)
        if user:
            patterns += self.users.get(user, ())
            for members, orgs in self.groups.values():
                if user in members:
                    patterns += orgs
        return AccessScope(user, self.path, tuple(dict.fromkeys(patterns)))


def _names(value: Any, path: Path, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list):
        raise AccessPolicyError(f"access policy {path}: {where} must be a list of names, got {type(value).__name__}"
                                " — write e.g. [acme-prod, \"acme-*\"]")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise AccessPolicyError(f"access policy {path}: {where} holds {item!r}, not a name")
        out.append(item.strip())
    return tuple(out)


def parse_policy(data: Any, path: Path) -> AccessPolicy:
    """Check the shape of a loaded policy document (see the module docstring)."""
    if not isinstance(data, dict):
        raise AccessPolicyError(f"access policy {path}: expected a mapping with users/groups/default, got "
                                f"{'an empty file' if data is None else type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise AccessPolicyError(f"access policy {path}: unknown key(s) {', '.join(unknown)} — allowed: "
                                f"{', '.join(sorted(_TOP_KEYS))}")
    users_raw = data.get("users") or {}
    if not isinstance(users_raw, dict):
        raise AccessPolicyError(f"access policy {path}: users must map user names to lists of orgs")
    users = {str(u): _names(v, path, f"users.{u}") for u, v in users_raw.items()}
    groups_raw = data.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise AccessPolicyError(f"access policy {path}: groups must map group names to {{members, orgs}}")
    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, g in groups_raw.items():
        if not isinstance(g, dict) or set(g) - _GROUP_KEYS or "members" not in g or "orgs" not in g:
            raise AccessPolicyError(f"access policy {path}: group {name!r} must have exactly members: [...] "
                                    "and orgs: [...]")
        groups[str(name)] = (_names(g["members"], path, f"groups.{name}.members"),
                             _names(g["orgs"], path, f"groups.{name}.orgs"))
    return AccessPolicy(path, users, groups, _names(data.get("default"), path, "default"))


def load_policy(path: str | os.PathLike[str]) -> AccessPolicy:
    """Read and check a policy file; every problem is an :class:`AccessPolicyError` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AccessPolicyError(f"access policy {p} cannot be read ({reason}) — fix ${POLICY_ENV}; "
                                "nothing is shown until it can") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise AccessPolicyError(f"access policy {p} is not valid YAML{where} — nothing is shown until it is "
                                "fixed") from None
    return parse_policy(data, p)


def current_user(environ: Mapping[str, str] | None = None) -> str | None:
    """``$AICOLLEAGUE_USER``, else the operating-system login name, else ``None``."""
    env = os.environ if environ is None else environ
    user = (env.get(USER_ENV) or "").strip()
    if user:
        return user
    try:
        return getpass.getuser() or None
    except (OSError, KeyError, ImportError):  # no login name (containers without a passwd entry)
        return None


def current_scope(environ: Mapping[str, str] | None = None) -> AccessScope:
    """The caller's scope from the environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    if POLICY_ENV not in env:
        return UNRESTRICTED
    raw = env[POLICY_ENV].strip()
    if not raw:
        raise AccessPolicyError(f"${POLICY_ENV} is set but empty — name the policy file, or unset it to "
                                "lift every restriction")
    return load_policy(Path(raw).expanduser()).scope_for(current_user(env))
