"""Cheap "did anything change?" probes per org, for the Monitor's change sensor.

- SFDX / demo projects: a fingerprint of the project tree from file names, sizes and
  modification times (one ``os.scandir`` walk, no file is read), plus the newest recorded
  audit-trail row.
- Live orgs: one SetupAuditTrail query for rows newer than the cursor (one API call plus a
  token request), filtered by an allow-list of noise (logins as another user, password
  resets, …) so routine admin activity does not trigger a refresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from aicolleague_pipelines.lib.orgs import OrgConfig
from aicolleague_pipelines.lib.salesforce.model import AuditEvent

#: SetupAuditTrail actions that say nothing about metadata (configurable per call).
DEFAULT_NOISE_ACTIONS = frozenset({
    "suOrgAdminLogin", "suOrgAdminLogout", "suNetworkAdminLogin", "suNetworkAdminLogout",
    "loginAsGranted", "resetPassword", "changedpassword", "PasswordReset", "passwordReset",
    "changedUserEmailVerifiedStatusVerified", "useremailchangesent", "frozeuser", "unfrozeuser",
    "activateduser", "deactivateduser", "changedUserPhone", "changedemail",
})
#: Sections to ignore entirely (none by default: "Manage Users" also holds permission-set and
#: profile changes, which matter).
DEFAULT_NOISE_SECTIONS: frozenset[str] = frozenset()

_SKIP_DIRS = {".git", ".sfdx", ".sf", "node_modules", ".venv", "__pycache__"}


@dataclass(frozen=True)
class Probe:
    """What a probe saw: a token to compare with the cursor, and a human summary."""

    token: str
    summary: str


def tree_fingerprint(root: Path) -> tuple[str, int]:
    """Hash of (relative path, size, mtime) of every file below ``root``; and the file count."""
    h = hashlib.sha256()
    count = 0
    stack = [root]
    entries: list[tuple[str, int, int]] = []
    while stack:
        folder = stack.pop()
        try:
            it = list(os.scandir(folder))
        except OSError:
            continue
        for e in it:
            if e.is_dir(follow_symlinks=False):
                if e.name not in _SKIP_DIRS:
                    stack.append(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                entries.append((os.path.relpath(e.path, root), st.st_size, st.st_mtime_ns))
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
        count += 1
    return h.hexdigest()[:24], count


def meaningful(events: list[AuditEvent], noise_actions=DEFAULT_NOISE_ACTIONS,
               noise_sections=DEFAULT_NOISE_SECTIONS) -> list[AuditEvent]:
    """Audit rows that can change metadata (noise dropped)."""
    return [e for e in events if e.action not in noise_actions and (e.section or "") not in noise_sections]


def probe_source_project(org: OrgConfig) -> Probe:
    """Fingerprint of an SFDX/demo project (the recorded audit trail is part of the tree)."""
    assert org.path is not None
    token, files = tree_fingerprint(org.path)
    return Probe(token, f"{files} files, fingerprint {token[:8]}")


def probe_live_org(org: OrgConfig, since: str | None, noise_actions=DEFAULT_NOISE_ACTIONS,
                   noise_sections=DEFAULT_NOISE_SECTIONS) -> tuple[Probe, list[AuditEvent]]:
    """Newest meaningful Setup change since ``since``; the token is its date (or ``since``)."""
    from aicolleague_pipelines.lib.salesforce.extract import live_client
    from aicolleague_pipelines.lib.salesforce.live import fetch_audit_trail

    with live_client(org) as client:
        events = fetch_audit_trail(client, org, since)
    real = meaningful(events, noise_actions, noise_sections)
    newest = max((e.created_date for e in events), default=since) or ""
    summary = (
        f"{len(real)} Setup change(s) since {since or 'the start'}"
        + (f" (+{len(events) - len(real)} ignored as noise)" if len(events) > len(real) else "")
        + (": " + "; ".join((e.display or e.action)[:80] for e in real[-3:]) if real else "")
    )
    # Only meaningful rows move the token: noise alone never requests a run.
    token = max((e.created_date for e in real), default=since) or ""
    return Probe(token or newest, summary), real


def load_cursor(raw: str | None) -> dict[str, str]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
