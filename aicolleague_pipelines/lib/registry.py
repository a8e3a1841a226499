"""Keeping the org partitions in step with the orgs file (plain logic, used by the sensor
and the demo runner)."""

from __future__ import annotations

from dataclasses import dataclass

ORG_PARTITIONS_NAME = "salesforce_orgs"


@dataclass(frozen=True)
class RegistryDiff:
    """What changed between the orgs file and the registered partitions."""

    added: tuple[str, ...]
    #: In the partitions but no longer in the file: reported, never deleted (history stays).
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"registered {len(self.added)} new org(s): {', '.join(self.added)}")
        if self.removed:
            parts.append(
                f"{len(self.removed)} org(s) no longer in the orgs file, history kept: "
                f"{', '.join(self.removed)}"
            )
        return "; ".join(parts) or "orgs file and partitions agree"


def diff_orgs(configured: list[str], registered: list[str]) -> RegistryDiff:
    """Compare org names in the file (in file order) with registered partition keys."""
    reg = set(registered)
    conf = set(configured)
    return RegistryDiff(
        added=tuple(n for n in configured if n not in reg),
        removed=tuple(sorted(reg - conf)),
    )
