"""Asset metadata for the extraction assets, built from :mod:`lib.salesforce.report`."""

from __future__ import annotations

from collections import Counter
from typing import Any

import dagster as dg

from aicolleague_pipelines.lib.salesforce import report
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, DependencyRow, OrgInventory


def inventory_metadata(inv: OrgInventory, origin: str) -> dict[str, Any]:
    counts = inv.counts_by_type()
    meta: dict[str, Any] = {
        "org": inv.org,
        "source": inv.source_kind,
        "api_version": inv.api_version or "",
        "components": dg.MetadataValue.int(len(inv.components)),
        "findings": dg.MetadataValue.int(len(inv.findings)),
        # Warnings and errors only (info notes such as "types not modelled" excluded).
        "problems": dg.MetadataValue.int(sum(1 for f in inv.findings if f.severity != "info")),
        "counts_by_type": dg.MetadataValue.table(
            records=[dg.TableRecord({"type": t, "count": n}) for t, n in counts.items()],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("type", "string"), dg.TableColumn("count", "int")]
            ),
        ),
        "summary": dg.MetadataValue.md(report.inventory_markdown(inv, origin)),
    }
    for key in ("api_calls", "duration_s", "files_read", "files_skipped"):
        if key in inv.stats:
            meta[key] = inv.stats[key]
    if inv.stats.get("api_usage"):
        meta["api_usage"] = str(inv.stats["api_usage"])
    return meta


def dependency_metadata(rows: list[DependencyRow], source_kind: str) -> dict[str, Any]:
    kinds = Counter(r.source_type for r in rows)
    return {
        "rows": dg.MetadataValue.int(len(rows)),
        "source_types": dg.MetadataValue.json(dict(kinds.most_common())),
        "summary": dg.MetadataValue.md(report.dependency_markdown(rows, source_kind)),
    }


def audit_metadata(events: list[AuditEvent], since: str | None, cursor: str | None) -> dict[str, Any]:
    return {
        "new_events": dg.MetadataValue.int(len(events)),
        "since": since or "",
        # Read back by the next run of this partition: only newer rows are fetched.
        "cursor": cursor or "",
        "summary": dg.MetadataValue.md(report.audit_markdown(events, since)),
    }
