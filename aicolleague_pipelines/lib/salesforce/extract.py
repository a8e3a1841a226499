"""One entry point per extraction, whatever the org's source (live org, SFDX project, demo).

The Dagster assets call these; so do the CLI and the tests. Each returns plain data from
:mod:`aicolleague_pipelines.lib.salesforce.model` and raises
:class:`~aicolleague_pipelines.lib.salesforce.model.ExtractionError` (naming the org, the
component and what to do) when nothing useful could be read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from aicolleague_pipelines.lib.orgs import OrgConfig
from aicolleague_pipelines.lib.salesforce.model import (
    AuditEvent,
    DependencyRow,
    ExtractionError,
    ExtractionFinding,
    OrgInventory,
)

if TYPE_CHECKING:
    from aicolleague_pipelines.lib.salesforce.client import SalesforceClient

#: Recorded extras beside an SFDX project (the demo ships them; a user's project may too).
RECORDED_DIR = ".aicolleague"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def live_client(org: OrgConfig) -> Iterator["SalesforceClient"]:
    """An authenticated client for a live org (closed afterwards)."""
    from aicolleague_pipelines.lib.salesforce.client import RetryPolicy, SalesforceClient

    retry = RetryPolicy(max_attempts=org.retry_attempts, base_delay=org.retry_base_delay)
    client = SalesforceClient(org, retry=retry)
    try:
        yield client
    finally:
        client.close()


def extract_inventory(org: OrgConfig) -> OrgInventory:
    """Read every component of ``org`` into an :class:`OrgInventory`."""
    started = time.perf_counter()
    if org.source in ("sfdx", "demo"):
        from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

        if org.path is None or not org.path.is_dir():
            raise ExtractionError(
                org.name,
                "sfdx project",
                f"folder {org.path} does not exist",
                "fix 'path' in the orgs file or check out the project there",
            )
        inventory = read_sfdx_project(
            org.path, org.name, api_version=org.api_version, source_kind=org.source
        )
    elif org.source == "live":
        from aicolleague_pipelines.lib.salesforce.live import extract_live_inventory

        with live_client(org) as client:
            inventory = extract_live_inventory(client, org)
    else:  # load_orgs already refuses this; keep the error explicit for hand-made configs
        raise ExtractionError(org.name, "orgs file", f"unknown source {org.source!r}")
    inventory.stats.setdefault("duration_s", round(time.perf_counter() - started, 3))
    return inventory


#: ``dependencies: auto`` switches to Bulk API 2.0 above this many components: Id batches
#: of 50 would cost one call per 50 components, a bulk job a handful of calls in all.
BULK_DEPENDENCY_THRESHOLD = 5000


def extract_dependencies(
    org: OrgConfig, inventory: OrgInventory
) -> tuple[list[DependencyRow], list[ExtractionFinding]]:
    """MetadataComponentDependency rows for a live org, and notes on what could not be read.

    SFDX/demo sources have none: the graph derives every edge by parsing their metadata.
    """
    if org.source != "live" or org.dependency_mode == "off":
        return [], []
    from aicolleague_pipelines.lib.salesforce.live import fetch_dependencies

    findings: list[ExtractionFinding] = []
    use_bulk = org.dependency_mode == "bulk" or (
        org.dependency_mode == "auto" and len(inventory.components) > BULK_DEPENDENCY_THRESHOLD
    )
    with live_client(org) as client:
        if use_bulk:
            try:
                return (
                    fetch_dependencies(client, org, inventory=inventory, use_bulk=True, findings=findings),
                    findings,
                )
            except ExtractionError as exc:
                if org.dependency_mode == "bulk":
                    raise
                findings.append(
                    ExtractionFinding(
                        org.name,
                        "tooling-bulk:MetadataComponentDependency",
                        "warning",
                        f"Bulk API 2.0 query failed ({exc.problem}); fell back to Tooling Id batches",
                        "set 'dependencies: tooling' for this org to skip the bulk attempt",
                    )
                )
        rows = fetch_dependencies(client, org, inventory=inventory, findings=findings)
    return rows, findings


def extract_audit_trail(org: OrgConfig, since: str | None) -> list[AuditEvent]:
    """SetupAuditTrail rows created after ``since`` (ISO 8601), oldest first."""
    if org.source == "live":
        from aicolleague_pipelines.lib.salesforce.live import fetch_audit_trail

        with live_client(org) as client:
            return fetch_audit_trail(client, org, since)
    assert org.path is not None
    return read_recorded_audit_trail(org.name, org.path, since)


def read_recorded_audit_trail(org: str, project: Path, since: str | None) -> list[AuditEvent]:
    """Audit-trail rows recorded beside a source project (``.aicolleague/audit_trail.json``)."""
    path = project / RECORDED_DIR / "audit_trail.json"
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        events = [AuditEvent(**row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise ExtractionError(
            org,
            str(path.relative_to(project)),
            f"recorded audit trail is malformed: {exc}",
            "fix or delete the file; it holds a JSON list of SetupAuditTrail rows",
        ) from None
    events.sort(key=lambda e: e.created_date)
    return [e for e in events if since is None or e.created_date > since]
