"""The dependency graph's data model: nodes keyed ``Type:FullName``, directed edges.

Direction: an edge ``source → target`` means *source depends on target* (a field depends on
its object, a layout on the fields it shows, a trigger on its object, a lookup field on its
target object, an Apex class on the fields it reads). "Impact of X" = everything that can
reach X; "dependencies of X" = everything X reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- edge kinds (a closed vocabulary; parsers use these constants) ------------------------
CHILD_OF = "child_of"  # field/validation rule/record type/layout → its object
LOOKUP_TO = "lookup_to"  # lookup / master-detail field → target object
CONTROLLED_BY = "controlled_by"  # dependent picklist → controlling field
USES_VALUE_SET = "uses_value_set"  # picklist field → GlobalValueSet
REFERENCES = "references"  # generic reference (formula field → field, code → field/object)
QUERIES = "queries"  # SOQL/SOSL FROM object, or field selected/filtered (access=read)
DML = "dml"  # insert/update/upsert/delete/merge on an object (access=write)
CALLS = "calls"  # Apex → Apex class (static call, new X(), method), LWC/Aura → Apex
EXTENDS = "extends"
IMPLEMENTS = "implements"
TRIGGER_ON = "trigger_on"  # ApexTrigger / record-triggered Flow → object
SUBFLOW = "subflow"  # Flow → Flow
APEX_ACTION = "apex_action"  # Flow → ApexClass (invocable)
SHOWS = "shows"  # Layout / FlexiPage / Report → field or component
GRANTS = "grants"  # PermissionSet / Profile → object, field, class, page
RECORD_TYPE_OF = "record_type_of"  # RecordType → object
IMPORTS = "imports"  # LWC → @salesforce/schema field/object, @salesforce/apex method
DYNAMIC = "dynamic"  # a dynamic reference (Database.query(str), get('Field__c'))
API_DEPENDENCY = "api_dependency"  # a MetadataComponentDependency row
SYNCED_TO = "synced_to"  # platform column → Salesforce field (cross-platform lineage)

EDGE_KINDS = (
    CHILD_OF,
    LOOKUP_TO,
    CONTROLLED_BY,
    USES_VALUE_SET,
    REFERENCES,
    QUERIES,
    DML,
    CALLS,
    EXTENDS,
    IMPLEMENTS,
    TRIGGER_ON,
    SUBFLOW,
    APEX_ACTION,
    SHOWS,
    GRANTS,
    RECORD_TYPE_OF,
    IMPORTS,
    DYNAMIC,
    API_DEPENDENCY,
    SYNCED_TO,
)

READ = "read"
WRITE = "write"


@dataclass(frozen=True)
class Reference:
    """What a parser found in one component's text: a reference to ``target`` (a key).

    ``line`` is 1-based within the parsed text (None when not applicable). ``access`` is
    ``read``/``write`` when knowable. ``dynamic`` marks references to a name built at run time.
    ``detail`` is a short free text (e.g. ``"SOQL WHERE"``, ``"DML update"``).
    """

    target: str
    kind: str
    line: int | None = None
    access: str | None = None
    dynamic: bool = False
    detail: str | None = None


@dataclass
class Node:
    key: str  # Type:FullName within its org (or platform instance)
    type: str
    name: str
    #: Referenced but not defined in the org (another namespace, a standard field only seen in code).
    external: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)


def placeholder_node(key: str) -> Node:
    """The external node a store creates for an edge endpoint missing from a snapshot's nodes:
    ``Type:FullName`` split leniently (``Unknown`` type when the key has no type prefix)."""
    type_, sep, name = key.partition(":")
    if not sep or not type_ or not name:
        type_, name = "Unknown", key
    return Node(key=key, type=type_, name=name, external=True)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str
    #: Where it was found: ``path:line`` for source files, ``tooling:MetadataComponentDependency``…
    evidence: str
    access: str | None = None
    dynamic: bool = False
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "evidence": self.evidence,
        }
        if self.access:
            d["access"] = self.access
        if self.dynamic:
            d["dynamic"] = True
        if self.detail:
            d["detail"] = self.detail
        return d
