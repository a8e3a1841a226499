"""Summaries and quality checks of extraction results, as plain data and Markdown.

The Dagster layer turns these into asset metadata and check results; the CLI prints them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aicolleague_pipelines.lib.salesforce.model import (
    AuditEvent,
    DependencyRow,
    OrgInventory,
)

_MAX_EXAMPLES = 10


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    problems: tuple[str, ...]
    description: str

    @property
    def problems_count(self) -> int:
        return len(self.problems)

    @property
    def examples_md(self) -> str:
        if not self.problems:
            return f"{self.description}: no problems."
        lines = [f"- `{p}`" for p in self.problems[:_MAX_EXAMPLES]]
        more = len(self.problems) - _MAX_EXAMPLES
        if more > 0:
            lines.append(f"- … and {more} more")
        return f"{self.description}:\n\n" + "\n".join(lines)


def inventory_checks(inv: OrgInventory) -> list[CheckOutcome]:
    """Structural checks on an inventory: non-empty, unique keys, every field's object present."""
    keys = Counter(c.key for c in inv.components)
    dupes = tuple(sorted(k for k, n in keys.items() if n > 1))
    orphans = tuple(
        sorted(
            f"{c.key} (object {c.parent or '?'} missing)"
            for c in inv.components
            if c.type == "CustomField" and (c.parent is None or c.parent not in keys)
        )
    )
    return [
        CheckOutcome(
            "inventory_not_empty",
            bool(inv.components),
            () if inv.components else (f"org {inv.org}: no components read",),
            "The extraction found components",
        ),
        CheckOutcome("no_duplicate_keys", not dupes, dupes, "Keys that occur more than once"),
        CheckOutcome(
            "every_field_has_its_object",
            not orphans,
            orphans,
            "Fields whose object is not in the inventory",
        ),
    ]


def inventory_markdown(inv: OrgInventory, origin: str) -> str:
    """A readable summary: counts per type, extraction stats, findings."""
    counts = inv.counts_by_type()
    lines = [
        f"### Inventory of `{inv.org}`",
        "",
        f"{origin} — {len(inv.components)} components, extracted {inv.extracted_at}.",
        "",
        "| type | count |",
        "|---|---:|",
        *[f"| {t} | {n} |" for t, n in counts.items()],
    ]
    stats = {k: v for k, v in inv.stats.items() if isinstance(v, (int, float, str))}
    if stats:
        lines += ["", "**Extraction:** " + ", ".join(f"{k} = {v}" for k, v in stats.items())]
    no_desc = sum(1 for c in inv.components if not c.has_description)
    lines += ["", f"Components without a description: {no_desc}."]
    if inv.findings:
        by_sev = Counter(f.severity for f in inv.findings)
        lines += [
            "",
            "**Findings while reading:** "
            + ", ".join(f"{n} {sev}" for sev, n in sorted(by_sev.items())),
            "",
            *[f"- {f}" for f in inv.findings[:_MAX_EXAMPLES]],
        ]
        if len(inv.findings) > _MAX_EXAMPLES:
            lines.append(f"- … and {len(inv.findings) - _MAX_EXAMPLES} more")
    return "\n".join(lines)


def dependency_markdown(rows: list[DependencyRow], source_kind: str) -> str:
    if source_kind != "live":
        return (
            "No Dependency API for this source: SFDX and demo projects are not live orgs. "
            "The graph derives their edges by parsing the metadata."
        )
    pairs = Counter((r.source_type, r.target_type) for r in rows)
    lines = [
        f"{len(rows)} MetadataComponentDependency rows.",
        "",
        "| component type | depends on type | rows |",
        "|---|---|---:|",
        *[f"| {s} | {t} | {n} |" for (s, t), n in pairs.most_common(25)],
    ]
    return "\n".join(lines)


def audit_markdown(events: list[AuditEvent], since: str | None) -> str:
    if not events:
        return f"No Setup changes since {since or 'the beginning'}."
    sections = Counter(e.section or "(none)" for e in events)
    lines = [
        f"{len(events)} Setup change(s) since {since or 'the beginning of the trail'}.",
        "",
        "| section | changes |",
        "|---|---:|",
        *[f"| {s} | {n} |" for s, n in sections.most_common()],
        "",
        "Latest:",
        "",
        *[
            f"- {e.created_date} {e.created_by or '?'}: {e.display or e.action}"
            for e in events[-_MAX_EXAMPLES:][::-1]
        ],
    ]
    return "\n".join(lines)
