"""Fix plans: what to edit, in which order, what to deploy and how to roll back a change.

:func:`plan_change` turns a :class:`PlannedChange` (delete / rename / change_type / deactivate
/ edit a component) into a :class:`FixPlan` computed from the dependency graph:

- **Steps** — the components to edit, ordered *dependents first, target last*: the affected
  set is the target plus everything that transitively depends on it (``impact``); steps follow
  a reverse topological order of the dependency graph restricted to that set (a component comes
  before everything it depends on, the furthest dependents first). Strongly connected
  components (cycles) become one step "handle together". Direct dependents get ``edit`` steps
  whose actions come from the edges' kinds and evidence ("remove Invoice__c.Amount__c from the
  SOQL at force-app/…/InvoiceService.cls:22", "remove the field from Layout X", "revoke the
  field permission in PermissionSet Y"); indirect ones get ``review`` (retest) steps. Each step
  has an effort (S/M/L: component type and number of references) and a risk (low/medium/high:
  type and the component's own blast radius).
- **Platform impact** — dependents on other platforms (Metabase, warehouse, Chargebee,
  Intercom, custom APIs) are listed apart with what breaks: no Salesforce deploy fixes them.
- **Artifacts** (:meth:`FixPlan.write`):

  - ``package.xml`` — what to deploy after editing (the edited dependents; for ``rename`` the
    new component; for ``change_type`` / ``deactivate`` / ``edit`` the target too), at the org's
    API version.
  - ``destructive/package.xml`` + ``destructive/destructiveChanges.xml`` — for ``delete`` (and
    the old name of a ``rename``). The Metadata API deletes with a deploy whose folder holds a
    ``package.xml`` that lists no types (only ``<version>``) and a ``destructiveChanges.xml`` in
    the package.xml format (no wildcards):
    ``sf project deploy start --metadata-dir destructive``. To edit and delete in one deploy
    instead, pass the same file as ``--post-destructive-changes`` with the main ``package.xml``
    (deletions run after the updates, API ≥ 33.0).
  - ``deactivate/`` — for a flow: ``package.xml`` + ``flowDefinitions/<Flow>.flowDefinition``
    with ``<activeVersionNumber>0</activeVersionNumber>`` (metadata format; deploying a flow
    file with another ``<status>`` does not deactivate the active version).
  - ``rollback/`` — the pre-change source files of every touched component copied byte for
    byte from the SFDX project (``project_root / Component.source``, with the ``-meta.xml``
    companions and whole bundle folders), a ``package.xml`` and an ``sfdx-project.json``, so a
    rollback is one deploy: ``cd rollback && sf project deploy start --manifest package.xml``.
    Without a project (live org) ``rollback/package.xml`` is the retrieve manifest to run
    *before* the change and ``rollback_complete`` is False — unless a ``retriever`` is given
    (``members → zip bytes``, e.g. ``SalesforceClient.retrieve_metadata``): then the touched
    components are retrieved from the org now and unpacked (safely: no absolute paths, no
    ``..``, no links, bounded sizes) into ``rollback/`` in Metadata API format (``classes/X.cls``
    + ``-meta.xml``, ``objects/Obj.object`` …) next to that ``package.xml``; ``rollback_complete``
    is True when every touched component came back, and the rollback is
    ``sf project deploy start --metadata-dir rollback``. A failed or partial retrieve keeps the
    manifest, ``rollback_complete`` False and a note saying what is missing.
  - ``plan.md`` / ``plan.json``.

Plans refuse (``FixPlan.refused``) what the platform does not allow: deleting, renaming or
changing the type of a standard field or object, changing managed-package (external)
components, or non-Salesforce components.

Plans are only plans: nothing is deployed here. Every plan has a stable ``id`` (see
:mod:`.approvals`) and stays ``pending`` until approved in the approval ledger.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import logging
import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.agents.approvals import PENDING, plan_id
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.graph.model import (
    API_DEPENDENCY,
    APEX_ACTION,
    CALLS,
    CHILD_OF,
    CONTROLLED_BY,
    DML,
    DYNAMIC,
    EXTENDS,
    GRANTS,
    IMPLEMENTS,
    IMPORTS,
    LOOKUP_TO,
    QUERIES,
    RECORD_TYPE_OF,
    REFERENCES,
    SHOWS,
    SUBFLOW,
    SYNCED_TO,
    TRIGGER_ON,
    USES_VALUE_SET,
    Edge,
)
from aicolleague_pipelines.lib.graph.queries import DEFAULT_API_VERSION, DEPLOYABLE_TYPES, package_xml
from aicolleague_pipelines.lib.graph.store import GraphStore, UnknownComponentError
from aicolleague_pipelines.lib.safe_xml import XmlError, parse_xml_bytes

ACTIONS = ("delete", "rename", "change_type", "deactivate", "edit")
PLATFORM_PREFIXES = ("Metabase", "Warehouse", "Chargebee", "Intercom", "Api")

#: Salesforce Metadata API types a plan may put in a manifest (graph node types are already
#: Metadata API type names).
METADATA_TYPES = frozenset(
    DEPLOYABLE_TYPES
    | {"WebLink", "ListView", "FlowDefinition", "CompactLayout", "BusinessProcess", "StandardValueSet",
       "Workflow", "WorkflowAlert", "QuickAction", "CustomApplication", "StaticResource"}
)
#: What may be deactivated, and how.
DEACTIVATABLE = ("Flow", "ValidationRule", "ApexTrigger", "WorkflowRule")

_CODE_TYPES = frozenset({"ApexClass", "ApexTrigger", "Flow", "LightningComponentBundle", "AuraDefinitionBundle", "ApexPage"})
_LOGIC_TYPES = frozenset({"ValidationRule", "WorkflowRule", "WorkflowFieldUpdate", "CustomField", "EmailTemplate", "FlexiPage"})
_EFFORTS = ("S", "M", "L")
_RISKS = ("low", "medium", "high")
_SUFFIXES = ("__c", "__mdt", "__e", "__b", "__x", "__kav", "__share", "__history")

#: Rule ids of triage findings that map to a deletion.
DELETE_RULES = frozenset(
    {"META-FIELD-UNUSED", "APEX-UNUSED-CLASS", "FLOW-INACTIVE", "FLOW-UNUSED", "META-VR-INACTIVE"}
)


# --- input ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedChange:
    action: str  # delete | rename | change_type | deactivate | edit
    key: str  # Type:FullName of the target
    new_name: str | None = None  # rename: the new full name (e.g. Invoice__c.Total__c)
    new_type: str | None = None  # change_type: the new field data type (e.g. Text)
    reason: str = ""  # why (free text; not part of the plan id)
    #: Distinguishes two ``edit`` plans on one component (e.g. the finding id).
    ref: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}: use one of {', '.join(ACTIONS)}")
        if ":" not in self.key:
            raise ValueError(f"not a component key (want Type:FullName): {self.key!r}")
        if self.action == "rename" and not self.new_name:
            raise ValueError("rename needs new_name")
        if self.action == "change_type" and not self.new_type:
            raise ValueError("change_type needs new_type")

    def plan_id(self, org: str) -> str:
        return plan_id(org, self.action, self.key, self.new_name, self.new_type, self.ref)

    def describe(self) -> str:
        if self.action == "rename":
            return f"rename {self.key} to {self.new_name}"
        if self.action == "change_type":
            return f"change the type of {self.key} to {self.new_type}"
        return f"{self.action} {self.key}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlannedChange":
        return cls(
            action=str(d["action"]), key=str(d["key"]), new_name=d.get("new_name"), new_type=d.get("new_type"),
            reason=str(d.get("reason") or ""), ref=d.get("ref"),
        )


# --- output -------------------------------------------------------------------------------
@dataclass
class PlanStep:
    order: int
    key: str
    type: str
    kind: str  # edit | review | cycle | target | blocked
    actions: list[str]  # what to edit
    why: str
    effort: str  # S | M | L
    risk: str  # low | medium | high
    references: int = 0  # edges from this component to the target
    depth: int = 0  # 0 = target, 1 = direct dependent …
    evidence: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # cycle: every component of it
    source: str | None = None  # file relative to the project root


@dataclass
class PlatformImpact:
    key: str
    type: str
    depth: int
    path: list[str]
    via: str | None
    breaks: str


@dataclass
class RollbackEntry:
    key: str
    source: str | None
    files: list[str]  # paths relative to the project root, copied into rollback/
    complete: bool
    #: "project" (files copied from the SFDX project) or "retrieved" (files relative to
    #: rollback/, retrieved from the org in Metadata API format).
    origin: str = "project"


@dataclass
class FixPlan:
    id: str
    org: str
    change: PlannedChange
    api_version: str
    target_type: str
    state: str = PENDING
    refused: str | None = None
    snapshot_version: int | None = None
    steps: list[PlanStep] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    platform_impact: list[PlatformImpact] = field(default_factory=list)
    deploy_members: dict[str, list[str]] = field(default_factory=dict)  # Metadata type → full names
    destructive_members: dict[str, list[str]] = field(default_factory=dict)
    rollback: list[RollbackEntry] = field(default_factory=list)
    rollback_complete: bool = False
    effort: str = "S"
    risk: str = "low"
    notes: list[str] = field(default_factory=list)
    finding: str | None = None  # id of the triage finding the plan came from
    #: Text artifacts by path relative to the output folder (rollback copies excluded).
    artifacts: dict[str, str] = field(default_factory=dict)
    project_root: str | None = None
    written_to: str | None = None
    #: "source" (SFDX project copies) or "metadata" (retrieved from the org, Metadata API format).
    rollback_format: str = "source"
    #: Retrieved rollback files by path relative to rollback/ (not serialised into plan.json).
    rollback_files: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def digest(self) -> str:
        """Hash of what the plan would do (steps, manifests): changes when the graph does."""
        payload = json.dumps(
            [[(s.key, s.kind, s.actions) for s in self.steps], self.deploy_members, self.destructive_members,
             self.refused],
            sort_keys=True, default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def summary(self) -> str:
        if self.refused:
            return f"{self.change.describe()} in {self.org}: refused — {self.refused}"
        edits = sum(1 for s in self.steps if s.kind in ("edit", "cycle", "blocked"))
        reviews = sum(1 for s in self.steps if s.kind == "review")
        return (
            f"{self.change.describe()} in {self.org}: {len(self.steps)} steps ({edits} to edit, "
            f"{reviews} to review), {len(self.platform_impact)} platform assets affected, "
            f"effort {self.effort}, risk {self.risk}, rollback "
            f"{'complete' if self.rollback_complete else 'INCOMPLETE (retrieve first)'}"
        )

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["change"] = asdict(self.change)
        d["digest"] = self.digest
        d["summary"] = self.summary()
        d.pop("artifacts")
        d.pop("rollback_files", None)
        if self.rollback_files:
            d["artifact_files"] = sorted(self.artifacts) + sorted(f"rollback/{r}" for r in self.rollback_files)
        else:
            d["artifact_files"] = sorted(self.artifacts) + (["rollback/<copied sources>"] if self.rollback_complete
                                                            else [])
        return d

    def to_markdown(self) -> str:
        out = [f"# Fix plan `{self.id}` — {self.change.describe()}", ""]
        out.append(f"- Org: `{self.org}` (snapshot {self.snapshot_version}), API version {self.api_version}")
        out.append(f"- State: **{self.state}** — nothing is deployed until the plan is approved")
        if self.change.reason:
            out.append(f"- Reason: {self.change.reason}")
        if self.finding:
            out.append(f"- From finding `{self.finding}`")
        if self.refused:
            out += ["", f"**Refused:** {self.refused}", ""]
            return "\n".join(out) + "\n"
        out.append(f"- Effort **{self.effort}**, risk **{self.risk}**, digest `{self.digest}`")
        out += ["", "## Steps (in this order: dependents first, the target last)", ""]
        out.append("| # | component | step | what to edit | why | effort | risk |")
        out.append("|---|---|---|---|---|---|---|")
        for s in self.steps:
            comp = f"`{s.key}`" if not s.members else "<br>".join(f"`{m}`" for m in s.members)
            what = "<br>".join(_md(a) for a in s.actions)
            out.append(f"| {s.order} | {comp} | {s.kind} | {what} | {_md(s.why)} | {s.effort} | {s.risk} |")
        if self.cycles:
            out += ["", "## Cycles (edit and deploy each group together)", ""]
            out += [f"- {' ↔ '.join(f'`{k}`' for k in c)}" for c in self.cycles]
        out += ["", "## Platform impact (outside Salesforce: no deploy fixes these)", ""]
        if self.platform_impact:
            out.append("| asset | type | via | what breaks |")
            out.append("|---|---|---|---|")
            for p in self.platform_impact:
                out.append(f"| `{p.key}` | {p.type} | {_md(' → '.join(p.path))} | {_md(p.breaks)} |")
        else:
            out.append("None found in the graph.")
        out += ["", "## Artifacts", ""]
        for name in sorted(self.artifacts):
            out.append(f"- `{name}`")
        if self.rollback:
            n = sum(len(r.files) for r in self.rollback)
            kind = "files retrieved from the org (Metadata API format)" if self.rollback_format == "metadata" \
                else "source files"
            out.append(f"- `rollback/`: {n} {kind} of {len(self.rollback)} components"
                       + ("" if self.rollback_complete else " — INCOMPLETE, see below"))
        out += ["", "## How to apply (after approval)", ""]
        out += [f"{i}. {t}" for i, t in enumerate(self.instructions(), 1)]
        if self.notes:
            out += ["", "## Notes", ""]
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def instructions(self) -> list[str]:
        steps: list[str] = []
        if not self.rollback_complete and self.rollback:
            steps.append(
                "Retrieve the current metadata first (rollback bundle incomplete): `sf project retrieve "
                f"start --manifest rollback/package.xml --target-org {self.org} --target-metadata-dir "
                "rollback/retrieved --unzip`"
            )
        if "deactivate/package.xml" in self.artifacts:
            steps.append("Deactivate the flow: `sf project deploy start --metadata-dir deactivate`")
        if self.deploy_members:
            steps.append(
                "Edit the components as listed in the steps (in order), then deploy them: "
                "`sf project deploy start --manifest package.xml` (from the SFDX project root)"
            )
        if self.destructive_members:
            steps.append(
                "Delete: `sf project deploy start --metadata-dir destructive` (package.xml without types "
                "+ destructiveChanges.xml); or in the same deploy as the edits: add "
                "`--post-destructive-changes destructive/destructiveChanges.xml` to the previous command"
            )
        if self.rollback and self.rollback_format == "metadata":
            steps.append("Roll back if needed: `sf project deploy start --metadata-dir rollback` (the retrieved "
                         "pre-change metadata)")
        elif self.rollback:
            steps.append("Roll back if needed: `cd rollback && sf project deploy start --manifest package.xml`")
        return steps

    def write(self, out_dir: Path | str) -> Path:
        """Write the artifacts and the rollback bundle into ``out_dir`` (created)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.written_to = str(out)
        for rel, text in self.artifacts.items():
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        if self.rollback_complete and self.project_root:
            root = Path(self.project_root)
            for entry in self.rollback:
                for rel in entry.files:
                    dst = out / "rollback" / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(root / rel, dst)
        if self.rollback_files:
            base = (out / "rollback").resolve()
            for rel, blob in self.rollback_files.items():
                dst = (base / rel).resolve()
                if not dst.is_relative_to(base):  # checked on unpacking already
                    raise ValueError(f"rollback file outside rollback/: {rel!r}")
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(blob)
        (out / "plan.md").write_text(self.to_markdown(), encoding="utf-8")
        (out / "plan.json").write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- helpers -----------------------------------------------------------------------------
def _full(key: str) -> str:
    return key.partition(":")[2]


def _type(key: str) -> str:
    return key.partition(":")[0]


def _is_platform(type_: str) -> bool:
    return type_.startswith(PLATFORM_PREFIXES)


def _is_custom(type_: str, full: str) -> bool:
    """Whether the platform lets a subscriber delete/rename/retype it (custom field/object)."""
    if type_ == "CustomField":
        return full.rpartition(".")[2].endswith("__c")
    if type_ == "CustomObject":
        return full.endswith(_SUFFIXES)
    return True


def _namespaced(full: str) -> bool:
    """``npe01__Field__c`` (a managed package's): two ``__`` in the last name segment."""
    last = full.rpartition(".")[2]
    return last.count("__") >= 2


def _bump(level: str, scale: Sequence[str], n: int = 1) -> str:
    return scale[min(len(scale) - 1, scale.index(level) + n)]


def _max(levels: Iterable[str], scale: Sequence[str]) -> str:
    idx = [scale.index(x) for x in levels]
    return scale[max(idx)] if idx else scale[0]


def _effort(type_: str, refs: int, is_test: bool = False) -> str:
    base = "M" if type_ in _CODE_TYPES and not is_test else "S"
    if type_ in _CODE_TYPES and is_test:
        base = "S"
    if refs >= 6:
        return _bump(base, _EFFORTS, 2)
    if refs >= 3:
        return _bump(base, _EFFORTS)
    return base


def _risk(type_: str, attrs: Mapping[str, Any], blast: int, platform: int) -> str:
    if attrs.get("is_test"):
        return "low"
    level = "medium" if type_ in _CODE_TYPES else "low"
    if type_ == "ApexTrigger" or (type_ == "Flow" and attrs.get("trigger_type") and attrs.get("active") is not False):
        level = _bump(level, _RISKS)  # runs on every save of its object
    if platform:
        level = _bump(level, _RISKS)
    if blast >= 50:
        level = _bump(level, _RISKS, 2)
    elif blast >= 10:
        level = _bump(level, _RISKS)
    return level


def _platform_breaks(type_: str, target: str, action: str) -> str:
    name = _full(target)
    gone = {"delete": "is deleted", "rename": "is renamed", "change_type": "changes type",
            "deactivate": "is deactivated", "edit": "changes"}[action]
    if type_ == "WarehouseColumn":
        return f"the synced column stops receiving values (or the sync job fails) when {name} {gone}"
    if type_ == "WarehouseTable":
        return f"the table's sync from Salesforce fails or drops columns when {name} {gone}"
    if type_.startswith("Metabase"):
        return f"questions/dashboards reading it return errors or empty columns when {name} {gone}"
    if type_.startswith("Chargebee"):
        return f"the Chargebee ↔ Salesforce field mapping breaks when {name} {gone}"
    if type_.startswith("Intercom"):
        return f"the Intercom attribute synced from Salesforce stops updating when {name} {gone}"
    if type_.startswith("Api"):
        return f"API consumers reading it get errors or nulls when {name} {gone}"
    return f"depends on {name}, which {gone}"  # pragma: no cover


def _action_text(edge: Edge, dep_type: str, target: str, change: PlannedChange) -> str:
    """What to do in ``edge.source`` about its reference to the target, from kind + evidence."""
    name = _full(target)
    dep = _full(edge.source)
    at = edge.evidence
    detail = f" ({edge.detail})" if edge.detail else ""
    act = change.action
    if act == "rename":
        verb_ref = f"replace {name} with {change.new_name}"
    elif act == "change_type":
        verb_ref = f"adapt the use of {name} to type {change.new_type}"
    elif act == "deactivate":
        verb_ref = f"stop relying on {name} (it will be inactive)"
    elif act == "edit":
        verb_ref = f"retest the use of {name}"
    else:
        verb_ref = f"remove {name}"
    k = edge.kind
    if k == QUERIES:
        where = edge.detail or "SOQL"
        return f"{verb_ref} in the SOQL ({where}) at {at}" if act != "delete" else f"remove {name} from the SOQL at {at}"
    if k == DML:
        return f"{verb_ref}: DML{detail} at {at}"
    if k == SHOWS:
        what = {"Layout": "Layout", "FlexiPage": "Lightning page", "Report": "Report"}.get(dep_type, dep_type)
        if act == "delete":
            return f"remove the field from {what} {dep}{detail}"
        return f"{verb_ref} in {what} {dep}{detail}"
    if k == GRANTS:
        perm = {"CustomField": "field permission", "CustomObject": "object permission", "ApexClass": "class access",
                "ApexPage": "page access", "CustomTab": "tab setting"}.get(_type(target), "access")
        if act == "delete":
            return f"revoke the {perm} for {name} in {dep_type} {dep}"
        return f"{verb_ref} in the {perm} of {dep_type} {dep}"
    if k == CALLS:
        return f"{verb_ref}: call{detail} at {at}" if act != "delete" else f"remove the call to {name}{detail} at {at}"
    if k in (EXTENDS, IMPLEMENTS):
        rel = "extend" if k == EXTENDS else "implement"
        return f"stop to {rel} {name} at {at}" if act == "delete" else f"{verb_ref}: {rel}s it at {at}"
    if k == SUBFLOW:
        return f"remove the subflow element{detail} calling {name} in flow {dep}" if act in ("delete", "deactivate") \
            else f"{verb_ref} in the subflow element{detail}"
    if k == APEX_ACTION:
        return f"remove the Apex action{detail} calling {name} in flow {dep}" if act == "delete" \
            else f"{verb_ref} in the Apex action{detail}"
    if k == IMPORTS:
        return f"{verb_ref}: import{detail} at {at}"
    if k == TRIGGER_ON:
        return f"delete or move the {dep_type} {dep} (it runs on {name})" if act == "delete" else f"{verb_ref} ({dep_type} on it)"
    if k == LOOKUP_TO:
        return f"delete or repoint the lookup field {dep} (it points to {name})" if act == "delete" \
            else f"{verb_ref} in the relationship field {dep}"
    if k in (CHILD_OF, RECORD_TYPE_OF):
        return f"goes with {name}: deleted together with it" if act == "delete" else f"{verb_ref} (belongs to it)"
    if k == CONTROLLED_BY:
        return f"remove the controlling field {name} from dependent picklist {dep}" if act == "delete" \
            else f"{verb_ref}: controlling field of {dep}"
    if k == USES_VALUE_SET:
        return f"move {dep} off the value set {name}" if act == "delete" else f"{verb_ref}: value set of {dep}"
    if k == DYNAMIC:
        return f"check the dynamic reference{detail} at {at} (built at run time) and {verb_ref}"
    if k == API_DEPENDENCY:
        return f"{verb_ref} in {dep_type} {dep} (reported by MetadataComponentDependency)"
    if k == REFERENCES:
        if dep_type == "CustomField":
            return f"rewrite the formula of field {dep} without {name}{detail}" if act == "delete" \
                else f"{verb_ref} in the formula of field {dep}{detail}"
        if dep_type == "ValidationRule":
            return f"rewrite the error condition of validation rule {dep} without {name}" if act == "delete" \
                else f"{verb_ref} in validation rule {dep}"
        if dep_type == "Flow":
            return f"{verb_ref} from flow element{detail} in {dep}"
        if dep_type in ("WorkflowRule", "WorkflowFieldUpdate"):
            return f"{verb_ref} in the criteria/formula of {dep_type} {dep}"
        if dep_type == "EmailTemplate":
            return f"{verb_ref}: merge field in the template body at {at}"
        return f"{verb_ref}{detail} at {at}"
    if k == SYNCED_TO:
        return f"{verb_ref}: synced from it ({at})"
    return f"{verb_ref}: {k}{detail} at {at}"


def _scc(nodes: Sequence[str], succ: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def _dependents_first(
    groups: list[list[str]], succ: Mapping[str, set[str]], depth: Mapping[str, int]
) -> list[list[str]]:
    """Groups (SCCs) in reverse topological order: a group comes before every group it depends
    on; among ready groups the furthest (deepest) first, then by key."""
    gid = {k: i for i, g in enumerate(groups) for k in g}
    gsucc: list[set[int]] = [set() for _ in groups]
    indeg = [0] * len(groups)  # number of dependents (groups pointing at it) not yet placed
    for i, g in enumerate(groups):
        for k in g:
            for t in succ.get(k, ()):
                j = gid.get(t)
                if j is not None and j != i and j not in gsucc[i]:
                    gsucc[i].add(j)
                    indeg[j] += 1

    def prio(i: int) -> tuple:
        return (-max(depth.get(k, 0) for k in groups[i]), groups[i][0])

    heap = [(prio(i), i) for i in range(len(groups)) if indeg[i] == 0]
    heapq.heapify(heap)
    order: list[list[str]] = []
    while heap:
        _, i = heapq.heappop(heap)
        order.append(groups[i])
        for j in sorted(gsucc[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (prio(j), j))
    return order


def _source_files(root: Path, source: str) -> list[str]:
    """Project-relative files holding a component: the file, its ``-meta.xml`` companion, or a
    bundle folder's files."""
    p = root / source
    if p.is_dir():
        return sorted(str(f.relative_to(root)) for f in p.rglob("*") if f.is_file())
    if not p.is_file():
        return []
    files = [source]
    if not source.endswith("-meta.xml"):
        meta = root / (source + "-meta.xml")
        if meta.is_file():
            files.append(source + "-meta.xml")
    return files


def _sfdx_project_json(files: Iterable[str], api_version: str) -> str:
    tops = sorted({f.split("/", 1)[0] for f in files})
    dirs = [{"path": t, "default": i == 0} for i, t in enumerate(tops)]
    return json.dumps({"packageDirectories": dirs, "sourceApiVersion": api_version}, indent=2) + "\n"


def _flow_definition() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<FlowDefinition xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <activeVersionNumber>0</activeVersionNumber>\n"
        "</FlowDefinition>\n"
    )


# --- rollback from a Metadata API retrieve ------------------------------------------------------
log = logging.getLogger(__name__)

#: ``members → zip bytes`` (a Metadata API retrieve), e.g.
#: ``lambda members: client.retrieve_metadata(members, api_version)``.
Retriever = Callable[[dict[str, list[str]]], bytes]

#: Limits on a retrieved archive (the Metadata API itself caps a retrieve at 10,000 files and
#: ~400 MB unzipped).
MAX_RETRIEVED_FILES = 10_000
MAX_RETRIEVED_FILE_BYTES = 64 * 1024 * 1024
MAX_RETRIEVED_TOTAL_BYTES = 256 * 1024 * 1024


class RetrievedArchiveError(ValueError):
    """A retrieved zip that is refused (path traversal, links, too large, not a zip)."""


def safe_unzip(data: bytes, *, max_files: int = MAX_RETRIEVED_FILES, max_file_bytes: int = MAX_RETRIEVED_FILE_BYTES,
               max_total_bytes: int = MAX_RETRIEVED_TOTAL_BYTES) -> dict[str, bytes]:
    """The files of a zip by archive path. Refuses the whole archive (``RetrievedArchiveError``)
    on an absolute path, a drive letter, a backslash, a ``..`` or empty path part, a symbolic
    link, a duplicate name, or more than the given number of files / bytes (sizes checked on
    the bytes actually read, not only the declared ones)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise RetrievedArchiveError(f"not a zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise RetrievedArchiveError(f"{len(infos)} entries (limit {max_files})")
        out: dict[str, bytes] = {}
        total = 0
        for info in infos:
            name = info.filename
            parts = name.rstrip("/").split("/")
            if (not name or name.startswith("/") or "\\" in name or "\x00" in name or re.match(r"^[A-Za-z]:", name)
                    or any(p in ("", ".", "..") for p in parts)):
                raise RetrievedArchiveError(f"unsafe path in the archive: {name!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise RetrievedArchiveError(f"symbolic link in the archive: {name!r}")
            if info.is_dir():
                continue
            if info.file_size > max_file_bytes or total + info.file_size > max_total_bytes:
                raise RetrievedArchiveError(f"archive too large at {name!r} (limits {max_file_bytes} bytes a file, "
                                            f"{max_total_bytes} in all)")
            try:
                with zf.open(info) as fh:
                    blob = fh.read(max_file_bytes + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:  # e.g. encrypted, CRC error
                raise RetrievedArchiveError(f"cannot read {name!r} ({exc})") from None
            total += len(blob)
            if len(blob) > max_file_bytes or total > max_total_bytes:
                raise RetrievedArchiveError(f"archive too large at {name!r}")
            if name in out:
                raise RetrievedArchiveError(f"duplicate entry {name!r}")
            out[name] = blob
    return out


#: Metadata API format: type → (folder, suffix); children of an object / workflow file.
_MDAPI_FILES = {
    "ApexClass": ("classes", "cls"), "ApexTrigger": ("triggers", "trigger"), "ApexPage": ("pages", "page"),
    "ApexComponent": ("components", "component"), "CustomObject": ("objects", "object"),
    "Flow": ("flows", "flow"), "FlowDefinition": ("flowDefinitions", "flowDefinition"),
    "Layout": ("layouts", "layout"), "FlexiPage": ("flexipages", "flexipage"),
    "PermissionSet": ("permissionsets", "permissionset"), "Profile": ("profiles", "profile"),
    "CustomTab": ("tabs", "tab"), "GlobalValueSet": ("globalValueSets", "globalValueSet"),
    "StandardValueSet": ("standardValueSets", "standardValueSet"), "EmailTemplate": ("email", "email"),
    "Report": ("reports", "report"), "Dashboard": ("dashboards", "dashboard"),
    "CustomApplication": ("applications", "app"), "QuickAction": ("quickActions", "quickAction"),
    "StaticResource": ("staticresources", "resource"), "CustomMetadata": ("customMetadata", "md"),
    "Workflow": ("workflows", "workflow"),
}
_MDAPI_BUNDLES = {"LightningComponentBundle": "lwc", "AuraDefinitionBundle": "aura"}
_MDAPI_CHILDREN = {
    "CustomField": ("objects", "object", "fields"), "ValidationRule": ("objects", "object", "validationRules"),
    "RecordType": ("objects", "object", "recordTypes"), "ListView": ("objects", "object", "listViews"),
    "WebLink": ("objects", "object", "webLinks"), "CompactLayout": ("objects", "object", "compactLayouts"),
    "BusinessProcess": ("objects", "object", "businessProcesses"), "FieldSet": ("objects", "object", "fieldSets"),
    "WorkflowRule": ("workflows", "workflow", "rules"), "WorkflowFieldUpdate": ("workflows", "workflow", "fieldUpdates"),
    "WorkflowAlert": ("workflows", "workflow", "alerts"),
}


def _retrieved_paths(key: str, files: Mapping[str, bytes]) -> list[str]:
    """The retrieved files (paths relative to the package root) holding component ``key``."""
    t, full = _type(key), _full(key)
    if t in _MDAPI_CHILDREN:
        folder, suffix, tag = _MDAPI_CHILDREN[t]
        parent, _, child = full.partition(".")
        path = f"{folder}/{parent}.{suffix}"
        blob = files.get(path)
        if blob is None or not child:
            return []
        pat = re.compile(rb"<" + tag.encode() + rb">\s*<fullName>\s*" + re.escape(child.encode()) + rb"\s*</fullName>")
        return [path] if pat.search(blob) else []
    if t in _MDAPI_BUNDLES:
        prefix = f"{_MDAPI_BUNDLES[t]}/{full}/"
        return sorted(f for f in files if f.startswith(prefix))
    if t in _MDAPI_FILES:
        folder, suffix = _MDAPI_FILES[t]
        base = f"{folder}/{full}.{suffix}"
        if t == "StaticResource":
            return sorted(f for f in files if f.startswith(f"{folder}/{full}."))
        return [f for f in (base, base + "-meta.xml") if f in files]
    # Unknown layout: any file named after the component.
    return sorted(f for f in files if f.rsplit("/", 1)[-1].split(".", 1)[0] == full.rsplit("/", 1)[-1])


def _retrieve_rollback(plan: FixPlan, members: Mapping[str, list[str]], retriever: Retriever
                       ) -> tuple[bool, str | None]:
    """Fill ``plan.rollback`` from a retrieve of ``members``: (complete, problem note or None)."""
    manual = (f"retrieve rollback/package.xml from the org before applying the change (`sf project retrieve "
              f"start --manifest rollback/package.xml --target-org {plan.org} --target-metadata-dir "
              "rollback/retrieved --unzip`)")
    try:
        data = retriever({t: list(v) for t, v in members.items()})
        if not isinstance(data, (bytes, bytearray)):
            raise RetrievedArchiveError(f"the retriever returned {type(data).__name__}, not zip bytes")
        files = safe_unzip(bytes(data))
    except Exception as exc:  # the plan is still useful without the rollback copy
        log.warning("org %s: rollback retrieve failed: %s", plan.org, exc)
        return False, f"rollback bundle incomplete: the Metadata API retrieve failed ({type(exc).__name__}: {exc}); " \
            + manual
    # singlePackage=false puts everything under unpackaged/; singlePackage=true at the root.
    if "package.xml" not in files and "unpackaged/package.xml" in files:
        files = {k[len("unpackaged/"):]: v for k, v in files.items() if k.startswith("unpackaged/")}
    files.pop("package.xml", None)  # rollback/package.xml is the plan's own manifest (same members)
    used: set[str] = set()
    malformed: dict[str, str] = {}  # file → what is wrong with it (the message names the file)
    for entry in plan.rollback:
        paths = _retrieved_paths(entry.key, files)
        for path in paths:
            problem = malformed.get(path) or _malformed_metadata_xml(path, files[path])
            if problem:
                malformed[path] = problem
        # A file cut short or mangled on the way cannot be deployed back: not a rollback copy.
        entry.files, entry.origin = paths, "retrieved"
        entry.complete = bool(paths) and not any(p in malformed for p in paths)
        used.update(paths)
    plan.rollback_files = {k: v for k, v in sorted(files.items()) if k in used}
    plan.rollback_format = "metadata"
    missing = [r.key for r in plan.rollback if not r.files]
    problems = []
    if malformed:
        log.warning("org %s: retrieved rollback files that are not well-formed XML: %s", plan.org,
                    ", ".join(sorted(malformed)))
        broken = [r.key for r in plan.rollback if any(p in malformed for p in r.files)]
        problems.append("retrieved files that are not well-formed XML ("
                        + "; ".join(v for _, v in sorted(malformed.items())) + ") for " + ", ".join(broken))
    if missing:
        problems.append("the org's retrieve did not return " + ", ".join(missing))
    if problems:
        return False, "rollback bundle incomplete: " + "; ".join(problems) + "; " + manual
    return True, None


#: Metadata API folders whose files are not XML documents (sources, bodies, binaries).
_NON_XML_SUFFIXES = {"cls", "trigger", "page", "component", "resource", "email"}
_XML_FOLDERS = {folder: suffix for folder, suffix in _MDAPI_FILES.values() if suffix not in _NON_XML_SUFFIXES}


def _malformed_metadata_xml(path: str, blob: bytes) -> str | None:
    """What is wrong with a retrieved metadata XML file (None when it parses, or is not XML)."""
    folder, _, name = path.partition("/")
    if not (path.endswith(".xml") or (folder in _XML_FOLDERS and name.endswith("." + _XML_FOLDERS[folder]))):
        return None
    try:
        parse_xml_bytes(blob, source=path, max_bytes=None)
    except XmlError as exc:
        return str(exc)
    return None


# --- planning ----------------------------------------------------------------------------
def plan_change(
    store: GraphStore,
    org: str,
    change: PlannedChange,
    *,
    api_version: str | None = None,
    project_root: Path | str | None = None,
    inventory_sources: Mapping[str, str] | None = None,
    out_dir: Path | str | None = None,
    max_review: int = 200,
    retriever: Retriever | None = None,
) -> FixPlan:
    """The plan for ``change`` on ``org`` (see the module docstring); written to ``out_dir``
    when given. Raises :class:`UnknownComponentError` for an unknown key.

    ``retriever`` (used only without ``project_root``): called once with the rollback members
    ({Metadata type: [full names]}), returns the Metadata API retrieve zip; see the module
    docstring. Its failures never fail the plan."""
    snaps = store.snapshots(org)
    if api_version is None:
        api_version = str((snaps[-1].meta if snaps else {}).get("api_version") or DEFAULT_API_VERSION)
    idx = store.graph_index(org)
    tnid = idx.nid(change.key)
    if tnid is None:
        raise UnknownComponentError(org, change.key, store.suggest(org, change.key))
    target = change.key
    ttype = idx.type_of(tnid)
    tfull = _full(target)
    tnode = store.node(org, target)
    tattrs = dict(tnode.attrs) if tnode else {}
    plan = FixPlan(
        id=change.plan_id(org), org=org, change=change, api_version=api_version, target_type=ttype,
        snapshot_version=snaps[-1].version if snaps else None,
        project_root=str(project_root) if project_root else None,
    )
    if change.ref:
        plan.finding = change.ref

    # --- refusals --------------------------------------------------------------------------
    refused = None
    if _is_platform(ttype) or ttype not in METADATA_TYPES:
        refused = f"{target} is not a Salesforce metadata component this planner can change ({ttype})"
    elif bool(idx.external[tnid]) and change.action != "edit":
        refused = (f"{target} is not defined in the org's metadata (managed package or standard component "
                   "seen only through references): it cannot be changed here")
    elif change.action in ("delete", "rename", "change_type") and not _is_custom(ttype, tfull):
        what = "field" if ttype == "CustomField" else "object"
        verb = {"delete": "deleted", "rename": "renamed", "change_type": "given another type"}[change.action]
        refused = f"{target} is a standard {what}: standard {what}s cannot be {verb} (remove it from layouts and permissions instead)"
    elif change.action in ("delete", "rename", "change_type") and _namespaced(tfull):
        refused = f"{target} belongs to a managed package (namespace prefix): only the package can change it"
    elif change.action == "change_type" and ttype != "CustomField":
        refused = f"change_type applies to fields, not to {ttype}"
    elif change.action == "deactivate" and ttype not in DEACTIVATABLE:
        refused = f"deactivate applies to {', '.join(DEACTIVATABLE)}, not to {ttype} (delete it instead)"
    elif change.action == "rename" and ttype == "CustomField" and not str(change.new_name).endswith("__c"):
        refused = f"the new name of a custom field must end with __c: {change.new_name!r}"
    if refused:
        plan.refused = refused
        if out_dir is not None:
            plan.write(out_dir)
        return plan

    # --- the affected set --------------------------------------------------------------------
    hits = idx.impact(target)
    platform_hits = [h for h in hits if _is_platform(h.type)]
    sf_hits = [h for h in hits if not _is_platform(h.type)]
    depth = {h.key: h.depth for h in sf_hits}
    depth[target] = 0
    hit_of = {h.key: h for h in sf_hits}
    direct_edges: dict[str, list[Edge]] = {}
    for e in store.where_used(org, target):
        if e.source != target and not _is_platform(_type(e.source)):
            direct_edges.setdefault(e.source, []).append(e)
    # A permission set / profile granting access to an indirect dependent needs no retest.
    grant_only = [h for h in sf_hits if h.key not in direct_edges and h.via_kind == GRANTS]
    if grant_only:
        drop = {h.key for h in grant_only}
        sf_hits = [h for h in sf_hits if h.key not in drop]
        plan.notes.append(
            f"{len(drop)} permission sets/profiles only grant access to indirect dependents (not listed): "
            + ", ".join(sorted(drop))
        )
    if change.action == "edit":
        # An edit in place keeps the interface: retest the direct dependents only.
        keep = set(direct_edges)
        sf_hits = [h for h in sf_hits if h.key in keep][:max_review]
    elif len(sf_hits) > max_review + len(direct_edges):
        keep = set(direct_edges) | {h.key for h in sf_hits if h.key not in direct_edges}
        kept = [h for h in sf_hits if h.key in direct_edges]
        kept += [h for h in sf_hits if h.key not in direct_edges][:max_review]
        plan.notes.append(
            f"{len(sf_hits) - len(kept)} further indirect dependents are not listed as review steps "
            f"(limit {max_review}); see the impact query"
        )
        sf_hits = kept
    affected = [target] + [h.key for h in sf_hits]
    aset = set(affected)
    succ: dict[str, set[str]] = {k: set() for k in affected}
    for k in affected:
        nid = idx.nid(k)
        for eid in idx.out_edge_ids(nid).tolist():
            t = idx.keys[int(idx.dst[eid])]
            if t in aset and t != k:
                succ[k].add(t)

    # Cycles among the affected set (the target included, so a target inside a cycle shows).
    all_sccs = _scc(affected, succ)
    plan.cycles = sorted((c for c in all_sccs if len(c) > 1), key=lambda c: (-len(c), c[0]))
    for c in plan.cycles:
        if target in c:
            plan.notes.append(
                f"{target} is in a dependency cycle with {', '.join(k for k in c if k != target)}: their "
                "references to it must be removed in the same deployment as the change"
            )
    # Steps: SCCs of the affected set without the target; the target last.
    rest = [k for k in affected if k != target]
    sub = {k: {t for t in succ[k] if t != target} for k in rest}
    groups = _scc(rest, sub)
    ordered = _dependents_first(groups, sub, depth)

    # Blast radius of each component (its own impact size) for step risk.
    def blast(k: str) -> tuple[int, int]:
        nid = idx.nid(k)
        c = idx.closure(nid, reverse=True)
        types = [idx.type_of(int(i)) for i in c.ids.tolist()] if len(c) < 5000 else []
        return len(c), sum(1 for t in types if _is_platform(t))

    def node_attrs(k: str) -> dict[str, Any]:
        nd = store.node(org, k)
        return dict(nd.attrs) if nd else {}

    def source_of(k: str, attrs: Mapping[str, Any]) -> str | None:
        src = (inventory_sources or {}).get(k) or attrs.get("source")
        if not src or str(src).startswith(("tooling:", "api:")) or ":" in str(src).split("/", 1)[0]:
            return None
        return str(src)

    def make_step(k: str) -> PlanStep:
        nid = idx.nid(k)
        type_ = idx.type_of(nid)
        attrs = node_attrs(k)
        edges = direct_edges.get(k, [])
        b, bp = blast(k)
        h = hit_of.get(k)
        src = source_of(k, attrs)
        if bool(idx.external[nid]):
            kind = "blocked"
            actions = [f"{k} is not in the org's metadata (managed package?): it cannot be edited here — "
                       f"the {change.action} may fail while it refers to {target}"]
            why = f"refers to {target}"
        elif edges and change.action != "edit":
            kind = "edit"
            actions = list(dict.fromkeys(_action_text(e, type_, target, change) for e in edges))
            kinds = sorted({e.kind for e in edges})
            why = (f"refers to {tfull} directly ({', '.join(kinds)}; {len(edges)} reference"
                   f"{'s' if len(edges) != 1 else ''}): the {change.action.replace('_', ' ')} breaks it otherwise")
        else:
            kind = "review"
            via = " → ".join(_full(p) for p in (h.path[::-1] if h else (k, target)))
            actions = [f"retest {_full(k)} after the edits" if change.action != "edit"
                       else f"retest {_full(k)} after the edit of {tfull}"]
            why = f"depends on {tfull} indirectly ({via})" if not edges else f"uses {tfull} ({', '.join(sorted({e.kind for e in edges}))})"
        effort = _effort(type_, len(edges), bool(attrs.get("is_test"))) if kind != "review" else "S"
        risk = _risk(type_, attrs, b, bp)
        return PlanStep(
            order=0, key=k, type=type_, kind=kind, actions=actions, why=why, effort=effort, risk=risk,
            references=len(edges), depth=depth.get(k, 0), evidence=sorted({e.evidence for e in edges}),
            source=src,
        )

    steps: list[PlanStep] = []
    for g in ordered:
        if len(g) == 1:
            steps.append(make_step(g[0]))
            continue
        parts = [make_step(k) for k in g]
        actions = [f"{p.key}: {a}" for p in parts for a in p.actions]
        kinds = {p.kind for p in parts}
        steps.append(PlanStep(
            order=0, key=g[0], type="cycle", kind="cycle", actions=actions,
            why=(f"{len(g)} components depend on each other ({' ↔ '.join(_full(k) for k in g)}): edit and deploy "
                 "them together" + (" — some refer to the target directly" if kinds & {"edit", "blocked"} else "")),
            effort=_bump(_max([p.effort for p in parts], _EFFORTS), _EFFORTS),
            risk=_max([p.risk for p in parts], _RISKS),
            references=sum(p.references for p in parts), depth=min(p.depth for p in parts),
            evidence=sorted({ev for p in parts for ev in p.evidence}), members=list(g),
        ))
        if not any(g == c for c in plan.cycles):  # pragma: no cover - cycles are SCCs of a superset
            plan.cycles.append(list(g))

    # The target step.
    tb, tbp = blast(target)
    tsrc = source_of(target, tattrs)
    tevidence = [tsrc] if tsrc else []
    a = change.action
    if a == "delete":
        tactions = [f"delete {tfull} (destructive/destructiveChanges.xml)"]
        if ttype == "CustomField":
            tactions.append("its data goes to the Recycle Bin for 15 days: export it first if anyone may need it")
        if ttype == "Flow" and tattrs.get("active"):
            tactions.insert(0, "deactivate the flow first (deactivate/): an active flow cannot be deleted")
    elif a == "rename":
        tactions = [f"create {change.new_name} as a copy of {tfull} (same type and settings)"]
        if ttype == "CustomField":
            tactions.append(f"copy the data from {tfull} to {change.new_name} (Data Loader / Bulk API update)")
        tactions.append(f"delete {tfull} once every dependent uses {change.new_name} (destructive/)")
    elif a == "change_type":
        tactions = [
            f"change the type of {tfull} from {tattrs.get('data_type') or '?'} to {change.new_type} in {tsrc or 'its field file'}",
            "Salesforce refuses a type change while Apex or formulas reference the field in an incompatible "
            "way, and data may be truncated or lost: back up the data first",
        ]
    elif a == "deactivate":
        if ttype == "Flow":
            if tattrs.get("active") is False:
                tactions = [f"{tfull} is already inactive ({tattrs.get('status') or 'inactive'}): nothing to deploy"]
            else:
                tactions = [f"deactivate {tfull}: deploy deactivate/ (FlowDefinition activeVersionNumber 0)"]
        elif ttype == "ApexTrigger":
            tactions = [f"set <status>Inactive</status> in {tsrc or 'the .trigger-meta.xml'}"]
        else:
            tactions = [f"set <active>false</active> in {tsrc or 'its metadata file'}"]
    else:
        tactions = [change.reason or f"edit {tfull}"]
    tdeps = len(sf_hits)
    steps.append(PlanStep(
        order=0, key=target, type=ttype, kind="target", actions=tactions,
        why=(change.reason or change.describe()) + f" ({tdeps} dependent{'s' if tdeps != 1 else ''})",
        effort=_effort(ttype, 0, bool(tattrs.get("is_test"))) if a != "rename" else "M",
        risk=_risk(ttype, tattrs, tb, tbp), depth=0, evidence=tevidence, source=tsrc,
    ))
    for i, s in enumerate(steps, 1):
        s.order = i
    plan.steps = steps

    # --- platform impact --------------------------------------------------------------------
    plan.platform_impact = [
        PlatformImpact(h.key, h.type, h.depth, list(h.path), h.via_kind, _platform_breaks(h.type, target, a))
        for h in platform_hits
    ]

    # --- manifests ----------------------------------------------------------------------------
    edited: list[str] = []
    for s in steps:
        if s.kind == "edit":
            edited.append(s.key)
        elif s.kind == "cycle":
            edited += [k for k in s.members if k in direct_edges]
    if a in ("change_type", "edit") or (a == "deactivate" and ttype != "Flow"):
        edited.append(target)
    deploy: dict[str, list[str]] = {}
    skipped: list[str] = []
    for k in edited:
        t = _type(k)
        if t in METADATA_TYPES and not bool(idx.external[idx.nid(k)]):
            if t == "CustomField" and not _is_custom(t, _full(k)):
                skipped.append(k)
                continue
            deploy.setdefault(t, []).append(_full(k))
        else:
            skipped.append(k)
    if a == "rename":
        deploy.setdefault(ttype, []).append(str(change.new_name))
    if skipped:
        plan.notes.append(f"not deployable through a manifest (edit by hand): {', '.join(sorted(skipped))}")
    plan.deploy_members = {t: sorted(set(v)) for t, v in sorted(deploy.items())}
    if plan.deploy_members:
        plan.artifacts["package.xml"] = package_xml(plan.deploy_members, api_version)
    if a in ("delete", "rename"):
        plan.destructive_members = {ttype: [tfull]}
        plan.artifacts["destructive/destructiveChanges.xml"] = package_xml(plan.destructive_members, api_version)
        plan.artifacts["destructive/package.xml"] = package_xml({}, api_version)
        if ttype == "CustomObject":
            plan.notes.append("deleting an object deletes its fields, validation rules, record types and layouts too")
    if ttype == "Flow" and ((a == "deactivate" and tattrs.get("active") is not False) or (a == "delete" and tattrs.get("active"))):
        plan.artifacts["deactivate/package.xml"] = package_xml({"FlowDefinition": [tfull]}, api_version)
        plan.artifacts[f"deactivate/flowDefinitions/{tfull}.flowDefinition"] = _flow_definition()
    if a == "deactivate" and ttype == "Flow" and steps[:-1]:
        plan.notes.append("callers of an inactive flow fail at run time: edit or retest them (steps above)")

    # --- rollback bundle ----------------------------------------------------------------------
    touched = [target] + [k for k in edited if k != target]
    root = Path(project_root) if project_root else None
    rb_members: dict[str, list[str]] = {}
    all_files: list[str] = []
    complete = True
    seen_files: set[str] = set()
    for k in dict.fromkeys(touched):
        t = _type(k)
        if t not in METADATA_TYPES or bool(idx.external[idx.nid(k)]) or (t == "CustomField" and not _is_custom(t, _full(k))):
            continue
        rb_members.setdefault(t, []).append(_full(k))
        src = source_of(k, node_attrs(k))
        files = _source_files(root, src) if (root and src) else []
        ok = bool(files)
        complete &= ok
        files = [f for f in files if f not in seen_files]
        seen_files.update(files)
        all_files += files
        plan.rollback.append(RollbackEntry(k, src, files, ok))
    if ttype == "Flow" and a in ("deactivate", "delete") and tattrs.get("active"):
        plan.notes.append("to reactivate the flow after a rollback, activate its version in Setup (or deploy "
                          "a FlowDefinition with its version number)")
    if a == "delete" and ttype == "CustomField":
        plan.notes.append("a rollback recreates the field empty: undelete it from the Recycle Bin within 15 days "
                          "to get its data back")
    retrieve_problem: str | None = None
    if root is None and retriever is not None and rb_members:
        complete, retrieve_problem = _retrieve_rollback(plan, rb_members, retriever)
    plan.rollback_complete = bool(plan.rollback) and complete
    if rb_members:
        plan.artifacts["rollback/package.xml"] = package_xml(rb_members, api_version)
        if plan.rollback_format == "metadata" or retrieve_problem:
            if retrieve_problem:
                plan.notes.append(retrieve_problem)
        elif plan.rollback_complete:
            plan.artifacts["rollback/sfdx-project.json"] = _sfdx_project_json(all_files, api_version)
        else:
            missing = [r.key for r in plan.rollback if not r.complete]
            plan.notes.append(
                "rollback bundle incomplete (no SFDX project source for: " + ", ".join(missing)
                + "): retrieve rollback/package.xml from the org before applying the change"
            )

    # --- overall effort and risk --------------------------------------------------------------
    work = [s for s in steps if s.kind in ("edit", "cycle", "blocked", "target")]
    eff = _max([s.effort for s in work], _EFFORTS)
    if len(work) > 10:
        eff = "L"
    elif len(work) > 3:
        eff = _max([eff, "M"], _EFFORTS)
    plan.effort = eff
    risk = _max([s.risk for s in steps], _RISKS)
    if plan.platform_impact or any(s.kind == "blocked" for s in steps):
        risk = _bump(risk, _RISKS)
    if len(hits) >= 25:
        risk = _max([risk, "medium"], _RISKS)
    plan.risk = risk
    if out_dir is not None:
        plan.write(out_dir)
    return plan


def change_for_finding(finding: Finding) -> PlannedChange:
    """The change a triage finding calls for: unused field/class/flow and inactive flow or
    validation rule → delete; anything else → an edit in place described by the finding."""
    reason = f"{finding.rule_id}: {finding.message}"
    if finding.rule_id in DELETE_RULES:
        return PlannedChange("delete", finding.component, reason=reason, ref=finding.id)
    return PlannedChange("edit", finding.component, reason=reason, ref=finding.id)


def plan_for_finding(
    store: GraphStore,
    org: str,
    finding: Finding,
    *,
    api_version: str | None = None,
    project_root: Path | str | None = None,
    inventory_sources: Mapping[str, str] | None = None,
    out_dir: Path | str | None = None,
    retriever: Retriever | None = None,
) -> FixPlan:
    """A fix plan for a triage finding (see :func:`change_for_finding`)."""
    change = change_for_finding(finding)
    plan = plan_change(
        store, org, change, api_version=api_version, project_root=project_root,
        inventory_sources=inventory_sources, retriever=retriever,
    )
    plan.finding = finding.id
    if change.action == "edit" and plan.ok:
        tstep = plan.steps[-1]
        where = f" at {finding.evidence}" if finding.evidence else ""
        tstep.actions = [f"edit in place{where}: {finding.explanation}"]
        tstep.why = f"{finding.rule_id} ({finding.severity}): {finding.message}"
    if out_dir is not None:
        plan.write(out_dir)
    return plan
