"""The extraction data model shared by every Salesforce source (live org, SFDX project, demo).

An org's extraction is an :class:`OrgInventory`: a flat list of :class:`Component` records
keyed ``Type:FullName`` (the canonical keys the graph and every tool rely on), plus the
problems met while reading (:class:`ExtractionFinding`) and run statistics.

``Component.attributes`` holds the type-specific facts. Conventions (all keys optional):

- ``CustomObject``: ``label``, ``custom`` (bool), ``object_kind`` (standard, custom,
  custom_metadata, platform_event, custom_setting, external, big_object), ``sharing_model``.
- ``CustomField``: ``data_type``, ``label``, ``formula``, ``reference_to`` (list of object
  names), ``relationship_name``, ``picklist_values`` (list of API names),
  ``controlling_field``, ``value_set`` (global value set name), ``compliance_group``,
  ``security_classification``, ``required``, ``unique``, ``external_id``, ``encrypted``,
  ``default_value``, ``length``, ``custom`` (bool).
- ``ApexClass`` / ``ApexTrigger``: ``body`` (source text), ``object`` (trigger's sObject),
  ``events`` (trigger events), ``is_test`` (class annotated ``@IsTest``).
- ``Flow``: ``process_type``, ``trigger_type``, ``trigger_object``, ``version_number``,
  ``active_version``, ``versions`` (list of ``{version_number, status, id}``), ``metadata``.
- ``ValidationRule``: ``error_condition_formula``, ``error_message``, ``error_display_field``.
- ``WorkflowRule``: ``formula``, ``criteria``, ``actions``; ``WorkflowFieldUpdate``: ``field``,
  ``formula``.
- ``Layout``, ``FlexiPage``, ``PermissionSet``, ``Profile``, ``Report``, ``RecordType``,
  ``CustomMetadata``, ``EmailTemplate``, ``GlobalValueSet``, ``CustomTab``, ``ApexPage``:
  ``metadata`` — the component's metadata as nested dicts/lists (XML element name → value;
  repeated elements → list), the same shape whether it came from a source file or from the
  Tooling API's ``Metadata`` column.
- ``LightningComponentBundle`` / ``AuraDefinitionBundle``: ``files`` (file name → text, source
  files only), ``metadata``.

Everything here is plain data: picklable, JSON-able through :meth:`Component.to_dict`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

#: Partition keys / org names: letters, digits, ``-`` and ``_`` (Dagster partition keys and
#: file names stay safe).
ORG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

#: Every component type the extractors produce, in a stable display order.
COMPONENT_TYPES = (
    "CustomObject",
    "CustomField",
    "RecordType",
    "ValidationRule",
    "ApexClass",
    "ApexTrigger",
    "Flow",
    "WorkflowRule",
    "WorkflowFieldUpdate",
    "Layout",
    "FlexiPage",
    "PermissionSet",
    "Profile",
    "Report",
    "CustomMetadata",
    "LightningComponentBundle",
    "AuraDefinitionBundle",
    "ApexPage",
    "EmailTemplate",
    "GlobalValueSet",
    "CustomTab",
)


def component_key(type_: str, full_name: str) -> str:
    """Canonical key ``Type:FullName`` (e.g. ``CustomField:Account.Industry``)."""
    return f"{type_}:{full_name}"


def split_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`component_key`: ``"CustomField:Account.Industry"`` → type, name."""
    type_, sep, name = key.partition(":")
    if not sep or not type_ or not name:
        raise ValueError(f"not a component key (want Type:FullName): {key!r}")
    return type_, name


@dataclass
class Component:
    """One metadata component of one org."""

    type: str
    full_name: str
    id: str | None = None
    namespace: str | None = None
    #: Key of the containing component (a field's object: ``CustomObject:Account``).
    parent: str | None = None
    api_version: str | None = None
    #: Raw status as the source reports it (Active, Inactive, Draft, Obsolete, Deleted …).
    status: str | None = None
    active: bool | None = None
    created_by: str | None = None
    created_date: str | None = None
    last_modified_by: str | None = None
    last_modified_date: str | None = None
    description: str | None = None
    #: ``unmanaged``, ``installed`` (from a managed package), ``beta``, or None when unknown.
    managed_state: str | None = None
    #: Where it was read: a path relative to the project root (``file:line`` not needed here)
    #: or an API object (``tooling:ApexClass``).
    source: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return component_key(self.type, self.full_name)

    @property
    def has_description(self) -> bool:
        return bool(self.description and self.description.strip())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["key"] = self.key
        d["has_description"] = self.has_description
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Component":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ExtractionFinding:
    """A problem met while extracting: never fatal for the whole org.

    ``location`` is the file (relative path) or API object concerned; ``hint`` says what to do.
    """

    org: str
    location: str
    severity: str  # "error" | "warning" | "info"
    message: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f" — {self.hint}" if self.hint else ""
        return f"[{self.severity}] org {self.org}: {self.location}: {self.message}{hint}"


@dataclass
class DependencyRow:
    """One ``MetadataComponentDependency`` row with its canonical keys resolved.

    ``source_key`` depends on (references) ``target_key``.
    """

    source_id: str | None
    source_type: str
    source_name: str
    source_namespace: str | None
    target_id: str | None
    target_type: str
    target_name: str
    target_namespace: str | None
    source_key: str
    target_key: str


@dataclass
class AuditEvent:
    """One ``SetupAuditTrail`` row (who changed what in Setup, and when)."""

    id: str | None
    created_date: str
    action: str
    section: str | None
    display: str | None
    created_by: str | None = None
    created_by_context: str | None = None
    created_by_issuer: str | None = None
    delegate_user: str | None = None
    responsible_namespace_prefix: str | None = None


@dataclass
class OrgInventory:
    """Everything one extraction of one org produced."""

    org: str
    source_kind: str  # "live" | "sfdx" | "demo"
    api_version: str | None
    extracted_at: str
    components: list[Component] = field(default_factory=list)
    findings: list[ExtractionFinding] = field(default_factory=list)
    #: api_calls, api_usage (``"18/5000"`` from Sforce-Limit-Info), duration_s, files_read …
    stats: dict[str, Any] = field(default_factory=dict)

    def by_key(self) -> dict[str, Component]:
        return {c.key: c for c in self.components}

    def counts_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.components:
            counts[c.type] = counts.get(c.type, 0) + 1
        return dict(sorted(counts.items()))


class ExtractionError(Exception):
    """An extraction failure that names the org, the component and what to do.

    Never put a secret in any of the parts: the message ends up in the Dagster event log.
    """

    def __init__(self, org: str, component: str, problem: str, hint: str = "") -> None:
        self.org = org
        self.component = component
        self.problem = problem
        self.hint = hint
        text = f"org {org!r}: {component}: {problem}"
        if hint:
            text += f" — {hint}"
        super().__init__(text)
