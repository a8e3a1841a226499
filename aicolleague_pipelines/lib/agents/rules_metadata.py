"""Metadata rules: data model, automation (Flows, workflow, Process Builder), permissions and
personal data. Deterministic checks over one org's :class:`OrgInventory` and :class:`OrgGraph`
(no LLM), drawn from OrgCheck, Lightning Flow Scanner and sfdx-hardis.

Conventions shared by every rule here:

- Components are visited in key order, so findings come out in the same order on every run;
  a finding's ``discriminator`` names the spot within the component (flow element, permission,
  field, id …), so ``Finding.id`` is stable.
- ``evidence`` is the component's ``source`` (file or API object), followed by the metadata
  element in parentheses where one is concerned (``flows/X.flow-meta.xml (recordUpdates:Y)``);
  for graph-based findings it is the edge's evidence.
- Managed-package components (``namespace`` set or ``managed_state == "installed"``) are left
  alone: their owner has to fix them, not the org.
- The standard *System Administrator* profile (``Profile:Admin``) holds every admin permission by
  design; the permission rules skip it (they are about *custom* grants of power).
- Runtime flow rules (fault paths, DML/queries in loops, several flows per object) look only at
  active flows; inactive ones are reported once by ``FLOW-INACTIVE``.

"Unused custom field" (``META-FIELD-UNUSED``): a custom field nothing *uses*. Use = any incoming
edge except structural (``child_of``, ``record_type_of``), access (``grants``: a permission set
or profile granting FLS) and display on a page (``shows`` from a Layout or FlexiPage). Code,
formulas, validation rules, flows, workflow, reports, email templates, LWC imports, dependent
picklists and roll-ups all count as use. A reference from an *inactive* flow (Draft/Obsolete)
does not count either: such a field is reported, with the inactive flows named in the message
(delete the flow, or activate it, before deleting the field). Values stored in custom metadata
records don't count as use (data, not logic). Severity: medium when nothing at all refers to the
field, low when it is still on a page, granted, or mentioned by an inactive flow. Master-detail
fields (they define the relationship) and formula/roll-up fields shown on a page (display-only by
design) are never reported.

Thresholds are module constants (``THRESHOLDS``), so a caller may tune them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aicolleague_pipelines.lib.agents.model import Finding, Rule, RuleContext
from aicolleague_pipelines.lib.graph.model import (
    CHILD_OF,
    GRANTS,
    RECORD_TYPE_OF,
    SHOWS,
    TRIGGER_ON,
    Edge,
)
from aicolleague_pipelines.lib.salesforce.model import Component

#: Tunable limits (read at check time, so tests and callers may change them).
THRESHOLDS: dict[str, int] = {
    "custom_object_fields": 30,  # custom fields on a custom object (OrgCheck warns early)
    "standard_object_fields": 100,  # custom fields added to a standard object
    "validation_rules_per_object": 10,  # active validation rules per object
    "layouts_per_object": 5,
    "flow_versions": 10,  # versions kept for one flow (sfdx-hardis: purge old versions)
    "flow_api_age_versions": 9,  # 3 releases a year: 9 versions behind ≈ 3 years old
}

#: Profiles that hold admin power by design (the standard System Administrator profile).
EXPECTED_ADMIN_PROFILES = frozenset({"Admin", "System Administrator"})

#: Powerful user permissions → (severity, why).
POWERFUL_PERMISSIONS: dict[str, tuple[str, str]] = {
    "ModifyAllData": ("critical", "edit and delete every record of every object, bypassing sharing"),
    "ViewAllData": ("high", "read every record of every object, bypassing sharing"),
    "AuthorApex": ("high", "write and run Apex, which runs in system mode"),
    "ModifyMetadata": ("high", "change any metadata through the API"),
    "ManageUsers": ("high", "create users, reset passwords and assign profiles and permission sets"),
    "ManageProfilesPermissionsets": ("high", "grant any permission to anybody"),
    "ManageInternalUsers": ("high", "create and edit internal users"),
    "CustomizeApplication": ("medium", "change the data model, automation and page setup"),
    "AssignPermissionSets": ("medium", "assign any permission set, including powerful ones"),
    "ManageSharing": ("medium", "change org-wide defaults and sharing rules"),
    "ManageRoles": ("medium", "change the role hierarchy (and with it record visibility)"),
    "ResetPasswords": ("medium", "reset other users' passwords"),
    "ManageDataIntegrations": ("medium", "manage integrations that move data in and out"),
}
_DEDICATED_PERMISSION_RULES = {"ModifyAllData", "ViewAllData"}

#: Objects whose records are master data: a Cascade delete from them wipes dependent records.
MASTER_DATA_OBJECTS = frozenset(
    {"Account", "Contact", "Lead", "User", "Product2", "Pricebook2", "Campaign", "Asset", "Individual"}
)
#: Objects that hold people (a tax id there is a person's, not a company's).
PERSON_OBJECTS = frozenset({"Contact", "Lead", "User", "Individual", "Person", "PersonAccount"})

#: Name/label patterns of personal or otherwise sensitive data → what it is.
SENSITIVE_NAME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), what)
    for p, what in (
        (r"(^|_)ssn(_|$)|social_?security", "social security number"),
        (r"passport", "passport number"),
        (r"birth|(^|_)dob(_|$)", "date of birth"),
        (r"personal_?(email|mobile|phone|address)", "personal contact details"),
        (r"home_?(phone|address|email)", "personal contact details"),
        (r"national_?id|(^|_)nino(_|$)|drivers?_?licen[cs]e", "national identifier"),
        (r"(^|_)iban(_|$)|bank_?account|routing_?number|sort_?code", "bank details"),
        (r"credit_?card|card_?(number|num|no|last_?4)|(^|_)cvv(_|$)", "payment card data"),
        (r"religio|ethnic|medical|diagnos|health_?condition|sexual_?orientation", "special-category data"),
    )
)
#: Patterns that are personal only on person objects (a company's EIN is not personal data).
PERSON_ONLY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"tax_?id|(^|_)tin(_|$)|tax_?number"), "tax identifier"),
)
SENSITIVE_CLASSIFICATIONS = frozenset({"confidential", "restricted", "missioncritical"})

#: A Salesforce record Id: 15 or 18 characters, the 6th is "0" (reserved pod character).
_ID_RE = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z0-9]{5}0[A-Za-z0-9]{9}(?:[A-Za-z0-9]{3})?)(?![A-Za-z0-9_])")
_NAMESPACED_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*__[A-Za-z0-9_]+__(c|r|mdt|e|x|b|kav)$", re.I)
_USER_OR_PROFILE_RE = re.compile(
    r"\$(Profile|UserRole)\.\w+|\$User\.(Username|ProfileId|UserRoleId|Id|Email)\b", re.I
)
_LITERAL_USERNAME_RE = re.compile(r"[\"'][^\"'\s@]+@[^\"'\s@]+\.[^\"'\s@]+[\"']")

FLOW_DML_ELEMENTS = ("recordCreates", "recordUpdates", "recordDeletes")
FLOW_FAULT_ELEMENTS = (*FLOW_DML_ELEMENTS, "actionCalls")
#: Process Builder process types.
PROCESS_BUILDER_TYPES = frozenset({"Workflow", "InvocableProcess", "CustomEvent"})
_INACTIVE_FLOW_STATUSES = frozenset({"draft", "obsolete", "inactive", "invaliddraft"})

# --- registry ------------------------------------------------------------------------------

METADATA_RULES: list[Rule] = []
_META: dict[str, Rule] = {}

Check = Callable[[RuleContext], Iterable[Finding]]


def _rule(
    id: str, title: str, severity: str, category: str, source: str, description: str
) -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        rule = Rule(id, title, severity, category, description, fn, source)
        METADATA_RULES.append(rule)
        _META[id] = rule
        return fn

    return deco


def _f(
    ctx: RuleContext,
    rule_id: str,
    component: str,
    message: str,
    explanation: str,
    evidence: str = "",
    discriminator: str = "",
    severity: str | None = None,
    **extra: Any,
) -> Finding:
    rule = _META[rule_id]
    return Finding(
        rule_id=rule_id,
        severity=severity or rule.severity,
        org=ctx.org,
        component=component,
        message=message,
        explanation=explanation,
        evidence=evidence,
        discriminator=discriminator,
        category=rule.category,
        extra=dict(extra),
    )


# --- helpers -------------------------------------------------------------------------------


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _true(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def _comps(ctx: RuleContext, *types: str) -> list[Component]:
    return sorted((c for c in ctx.inventory.components if c.type in types), key=lambda c: c.key)


def _is_managed(c: Component) -> bool:
    return bool(c.namespace) or c.managed_state in ("installed", "beta")


def _is_custom_field(c: Component) -> bool:
    if c.attributes.get("custom") is not None:
        return bool(c.attributes["custom"])
    return c.full_name.endswith("__c")


def _is_custom_object(c: Component) -> bool:
    kind = c.attributes.get("object_kind")
    if kind:
        return kind == "custom"
    return bool(c.attributes.get("custom")) or c.full_name.endswith("__c")


def _where(c: Component, element: str = "") -> str:
    src = c.source or c.key
    return f"{src} ({element})" if element else src


def _obj_of(c: Component) -> str:
    """The object a child component (field, validation rule …) belongs to."""
    if c.parent and c.parent.startswith("CustomObject:"):
        return c.parent.split(":", 1)[1]
    return c.full_name.split(".", 1)[0]


def _field_name(full_name: str) -> str:
    return full_name.split(".", 1)[-1]


def _meta(c: Component) -> dict:
    md = c.attributes.get("metadata")
    return md if isinstance(md, dict) else {}


def _flow_status(c: Component) -> str:
    return (c.status or _meta(c).get("status") or "").strip()


def _flow_is_active(c: Component) -> bool:
    if c.active is not None:
        return bool(c.active)
    status = _flow_status(c).lower()
    return status not in _INACTIVE_FLOW_STATUSES


def _is_admin_profile(c: Component) -> bool:
    return c.type == "Profile" and c.full_name in EXPECTED_ADMIN_PROFILES


def _user_permissions(c: Component) -> list[str]:
    names = []
    for p in _as_list(_meta(c).get("userPermissions")):
        if isinstance(p, dict) and _true(p.get("enabled")) and p.get("name"):
            names.append(str(p["name"]))
    return sorted(set(names))


def _norm(text: str) -> str:
    text = re.sub(r"__c$", "", text.strip(), flags=re.I)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)  # camelCase → snake
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def sensitive_kind(obj: str, field: str, label: str | None = None) -> str | None:
    """What personal/sensitive data a field's name (or label) suggests, or None."""
    names = [_norm(field.split("__")[-2] if field.count("__") >= 2 else field)]
    if label:
        names.append(_norm(label))
    for name in names:
        for rx, what in SENSITIVE_NAME_PATTERNS:
            if rx.search(name):
                return what
        if obj in PERSON_OBJECTS:
            for rx, what in PERSON_ONLY_PATTERNS:
                if rx.search(name):
                    return what
    return None


def _is_classified(c: Component) -> bool:
    a = c.attributes
    return bool((a.get("compliance_group") or "").strip() or (a.get("security_classification") or "").strip())


def _sensitive_fields(ctx: RuleContext) -> dict[str, str]:
    """Field key → why it is sensitive (classification, or name pattern), for defined fields
    and for external ones (standard fields seen in code) whose name looks personal."""
    out: dict[str, str] = {}
    for c in _comps(ctx, "CustomField"):
        a = c.attributes
        group = (a.get("compliance_group") or "").strip()
        cls = (a.get("security_classification") or "").strip()
        if group:
            out[c.key] = f"compliance group {group}"
        elif cls.lower() in SENSITIVE_CLASSIFICATIONS:
            out[c.key] = f"classified {cls}"
        else:
            what = sensitive_kind(_obj_of(c), _field_name(c.full_name), a.get("label"))
            if what:
                out[c.key] = f"looks like {what}"
    for key, node in ctx.graph.nodes.items():
        if node.external and node.type == "CustomField" and key not in out and "." in node.name:
            obj, fld = node.name.split(".", 1)
            what = sensitive_kind(obj, fld)
            if what:
                out[key] = f"looks like {what}"
    return out


def _incoming(ctx: RuleContext) -> dict[str, list[Edge]]:
    inc: dict[str, list[Edge]] = defaultdict(list)
    for e in ctx.graph.edges:
        inc[e.target].append(e)
    return inc


def _string_leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in nested metadata, skipping names, labels and layout."""
    skip = {"name", "label", "description", "locationX", "locationY", "apiVersion", "interviewLabel"}
    if isinstance(value, dict):
        for k in sorted(value):
            if k in skip:
                continue
            yield from _string_leaves(value[k], f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item, path)
    elif isinstance(value, str):
        yield path, value


def _ids_in(text: str) -> list[str]:
    out = []
    for m in _ID_RE.finditer(text or ""):
        tok = m.group(1)
        if sum(ch.isdigit() for ch in tok) >= 3 and not tok.isdigit():
            out.append(tok)
    return out


# --- flow structure ------------------------------------------------------------------------

_FLOW_ELEMENT_TYPES = (
    "actionCalls",
    "apexPluginCalls",
    "assignments",
    "collectionProcessors",
    "customErrors",
    "decisions",
    "loops",
    "orchestratedStages",
    "recordCreates",
    "recordDeletes",
    "recordLookups",
    "recordRollbacks",
    "recordUpdates",
    "screens",
    "steps",
    "subflows",
    "transforms",
    "waits",
)


def _flow_elements(md: dict) -> dict[str, tuple[str, dict]]:
    """Element name → (element type, element)."""
    out: dict[str, tuple[str, dict]] = {}
    for etype in _FLOW_ELEMENT_TYPES:
        for el in _as_list(md.get(etype)):
            if isinstance(el, dict) and el.get("name"):
                out[str(el["name"])] = (etype, el)
    return out


def _connector_targets(el: Any, exclude: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(connector key, target) of every connector in an element (rules, wait events …)."""
    out: list[tuple[str, str]] = []

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict):
            if key.lower().endswith("connector") and key not in exclude:
                tgt = v.get("targetReference")
                if isinstance(tgt, str) and tgt:
                    out.append((key, tgt))
                return
            for k in sorted(v):
                walk(v[k], k)
        elif isinstance(v, list):
            for item in v:
                walk(item, key)

    if isinstance(el, dict):
        for k in sorted(el):
            if k not in exclude:
                walk(el[k], k)
    return out


def _fault_handlers(elements: dict[str, tuple[str, dict]]) -> set[str]:
    """Elements reached from a fault connector: the fault-handling branches."""
    starts = [t for _, (_, el) in elements.items() for k, t in _connector_targets(el) if k == "faultConnector"]
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        name = stack.pop()
        if name in seen or name not in elements:
            continue
        seen.add(name)
        stack.extend(t for _, t in _connector_targets(elements[name][1]))
    return seen


def _loop_bodies(elements: dict[str, tuple[str, dict]]) -> dict[str, set[str]]:
    """Loop name → names of the elements inside its body."""
    bodies: dict[str, set[str]] = {}
    for name, (etype, el) in sorted(elements.items()):
        if etype != "loops":
            continue
        nxt = el.get("nextValueConnector")
        start = nxt.get("targetReference") if isinstance(nxt, dict) else None
        done = el.get("noMoreValuesConnector")
        exit_ = done.get("targetReference") if isinstance(done, dict) else None
        body: set[str] = set()
        stack = [start] if start else []
        while stack:
            cur = stack.pop()
            if cur in body or cur == name or cur == exit_ or cur not in elements:
                continue
            body.add(cur)
            stack.extend(t for _, t in _connector_targets(elements[cur][1]))
        bodies[name] = body
    return bodies


def _flows(ctx: RuleContext, active_only: bool = False) -> list[Component]:
    return [
        c for c in _comps(ctx, "Flow") if not _is_managed(c) and (not active_only or _flow_is_active(c))
    ]


def _record_trigger(c: Component) -> tuple[str | None, str | None]:
    """(object, trigger type) of a record-triggered flow, else (None, None)."""
    a = c.attributes
    start = _meta(c).get("start") if isinstance(_meta(c).get("start"), dict) else {}
    ttype = a.get("trigger_type") or start.get("triggerType")
    obj = a.get("trigger_object") or start.get("object")
    if ttype and str(ttype).startswith("Record") and obj:
        return str(obj), str(ttype)
    return None, None


# === descriptions ==========================================================================


@_rule(
    "META-FIELD-NO-DESCRIPTION",
    "Custom field without description",
    "low",
    "maintainability",
    "OrgCheck (fields: no description)",
    "A custom field with no description: nobody can tell later what it holds, who fills it and "
    "whether it may be deleted. Write what it means, where its value comes from and who owns it.",
)
def check_field_no_description(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "CustomField"):
        if _is_custom_field(c) and not _is_managed(c) and not c.has_description:
            yield _f(
                ctx,
                "META-FIELD-NO-DESCRIPTION",
                c.key,
                f"Custom field {c.full_name} has no description",
                "Add a description saying what the field means, where its value comes from "
                "(user, integration, automation) and who owns it; admins and tools rely on it to "
                "decide whether a field may be changed or deleted.",
                _where(c),
            )


@_rule(
    "META-OBJECT-NO-DESCRIPTION",
    "Custom object without description",
    "low",
    "maintainability",
    "OrgCheck (objects: no description)",
    "A custom object with no description. Describe the business entity it models and who owns it.",
)
def check_object_no_description(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "CustomObject"):
        if _is_custom_object(c) and not _is_managed(c) and not c.has_description:
            yield _f(
                ctx,
                "META-OBJECT-NO-DESCRIPTION",
                c.key,
                f"Custom object {c.full_name} has no description",
                "Describe the business entity the object models, its owner team and how records "
                "are created; it is the entry point for anyone changing the data model.",
                _where(c),
            )


@_rule(
    "FLOW-NO-DESCRIPTION",
    "Flow without description",
    "low",
    "maintainability",
    "Lightning Flow Scanner (FlowDescription)",
    "A flow with no description: its purpose, trigger and owner are undocumented.",
)
def check_flow_no_description(ctx: RuleContext) -> Iterator[Finding]:
    for c in _flows(ctx):
        if not c.has_description:
            yield _f(
                ctx,
                "FLOW-NO-DESCRIPTION",
                c.key,
                f"Flow {c.full_name} has no description",
                "Add a description with the flow's purpose, what starts it and the owning team; "
                "Flow Builder shows it and it is the first thing a maintainer reads.",
                _where(c),
            )


@_rule(
    "META-VR-NO-DESCRIPTION",
    "Validation rule without description",
    "info",
    "maintainability",
    "OrgCheck (validation rules: no description)",
    "A validation rule with no description: the business rule behind the formula is unrecorded.",
)
def check_vr_no_description(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "ValidationRule"):
        if not _is_managed(c) and not c.has_description:
            yield _f(
                ctx,
                "META-VR-NO-DESCRIPTION",
                c.key,
                f"Validation rule {c.full_name} has no description",
                "Describe the business rule (and its source, e.g. a policy number) so the "
                "formula can be changed safely.",
                _where(c),
            )


@_rule(
    "SEC-PERMSET-NO-DESCRIPTION",
    "Permission set without description",
    "low",
    "security",
    "OrgCheck (permission sets: no description)",
    "A permission set with no description: reviewers cannot tell which job it is for, so access "
    "reviews cannot judge whether its holders should have it.",
)
def check_permset_no_description(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "PermissionSet"):
        if not _is_managed(c) and not c.has_description:
            powerful = [p for p in _user_permissions(c) if p in POWERFUL_PERMISSIONS]
            sev = "medium" if powerful else None
            extra = f" It grants {', '.join(powerful)}." if powerful else ""
            yield _f(
                ctx,
                "SEC-PERMSET-NO-DESCRIPTION",
                c.key,
                f"Permission set {c.full_name} has no description",
                "Say which job the permission set is for and who approves assignments; access "
                "reviews depend on it." + extra,
                _where(c),
                severity=sev,
            )


# === unused components =====================================================================


def _inactive_flow_keys(ctx: RuleContext) -> set[str]:
    return {c.key for c in _comps(ctx, "Flow") if not _flow_is_active(c)}


def _is_use(e: Edge, nodes: dict, inactive_flows: set[str]) -> bool:
    if e.kind in (CHILD_OF, RECORD_TYPE_OF, GRANTS):
        return False
    src_type = nodes[e.source].type if e.source in nodes else e.source.split(":", 1)[0]
    if e.kind == SHOWS and src_type in ("Layout", "FlexiPage"):
        return False
    if src_type == "CustomMetadata":
        return False
    if e.source in inactive_flows:
        return False
    return e.source != e.target


@_rule(
    "META-FIELD-UNUSED",
    "Custom field not used by any logic",
    "medium",
    "maintainability",
    "OrgCheck (fields: not referenced), sfdx-hardis (unused metadata)",
    "A custom field that no code, formula, validation rule, active flow, workflow, report, email "
    "template or component uses: it is at most on a page layout or in a permission set. It costs "
    "storage, clutters pages and slows every change. Check its data, then delete it or document "
    "why it stays. Medium when nothing at all refers to it; low when it is still shown on a page, "
    "granted, or mentioned by an inactive flow (people may fill it in by hand). Formula and "
    "roll-up fields shown on a page are display-only by design and not reported.",
)
def check_field_unused(ctx: RuleContext) -> Iterator[Finding]:
    inc = _incoming(ctx)
    inactive = _inactive_flow_keys(ctx)
    nodes = ctx.graph.nodes
    for c in _comps(ctx, "CustomField"):
        if not _is_custom_field(c) or _is_managed(c):
            continue
        if c.attributes.get("data_type") == "MasterDetail":
            continue  # defines the relationship itself; never "unused"
        edges = inc.get(c.key, [])
        if any(_is_use(e, nodes, inactive) for e in edges):
            continue
        shown = sorted({e.source for e in edges if e.kind == SHOWS})
        granted = sorted({e.source for e in edges if e.kind == GRANTS})
        drafts = sorted({e.source for e in edges if e.source in inactive})
        computed = bool(c.attributes.get("formula")) or c.attributes.get("data_type") == "Summary"
        if computed and shown:
            continue  # a formula / roll-up shown on a page is display-only by design
        where = []
        if shown:
            where.append(f"shown on {len(shown)} page(s)")
        if granted:
            where.append(f"granted by {len(granted)} permission set(s)/profile(s)")
        if drafts:
            where.append("referenced only by inactive " + ", ".join(drafts))
        tail = f" ({'; '.join(where)})" if where else ""
        explanation = (
            "Nothing reads or writes this field in code, formulas, validation rules, active "
            "flows, workflow, reports or email templates. Check whether it still holds data "
            "anyone needs (a report on populated values, or ask the owner); then remove it from "
            "layouts and permission sets and delete it, or add a description saying why it stays."
        )
        if drafts:
            explanation += " Delete or activate the inactive flows that mention it first."
        yield _f(
            ctx,
            "META-FIELD-UNUSED",
            c.key,
            f"Custom field {c.full_name} is not used by any logic{tail}",
            explanation,
            _where(c),
            severity=None if not (shown or granted or drafts) else "low",
            shown_on=shown,
            granted_by=granted,
            inactive_flows=drafts,
        )


@_rule(
    "FLOW-UNUSED",
    "Autolaunched flow that nothing calls",
    "low",
    "maintainability",
    "OrgCheck (flows: not referenced), sfdx-hardis (unused metadata)",
    "An active autolaunched flow with no trigger (no record trigger, no schedule, no platform "
    "event) that no flow, Apex class, button or component refers to: it can never run.",
)
def check_flow_unused(ctx: RuleContext) -> Iterator[Finding]:
    inc = _incoming(ctx)
    for c in _flows(ctx, active_only=True):  # inactive ones: FLOW-INACTIVE
        md = _meta(c)
        if (c.attributes.get("process_type") or md.get("processType")) != "AutoLaunchedFlow":
            continue
        start = md.get("start") if isinstance(md.get("start"), dict) else {}
        if c.attributes.get("trigger_type") or start.get("triggerType") or start.get("schedule"):
            continue
        if any(e.source != c.key for e in inc.get(c.key, [])):
            continue
        yield _f(
            ctx,
            "FLOW-UNUSED",
            c.key,
            f"Autolaunched flow {c.full_name} has no trigger and nothing calls it",
            "No flow calls it as a subflow and no Apex, component or button refers to it (within "
            "what the graph sees: a REST call or a custom button URL may still start it). Confirm "
            "with the owner, then deactivate and delete it.",
            _where(c),
        )


@_rule(
    "FLOW-INACTIVE",
    "Inactive flow (Draft or Obsolete)",
    "low",
    "maintainability",
    "sfdx-hardis (inactive flows), Lightning Flow Scanner (InactiveFlow)",
    "A flow whose version is Draft, Obsolete or Inactive: dead automation that confuses "
    "maintainers, keeps fields and classes referenced and may be activated by mistake.",
)
def check_flow_inactive(ctx: RuleContext) -> Iterator[Finding]:
    for c in _flows(ctx):
        if _flow_is_active(c):
            continue
        status = _flow_status(c) or "Inactive"
        yield _f(
            ctx,
            "FLOW-INACTIVE",
            c.key,
            f"Flow {c.full_name} is {status}",
            "An inactive flow does nothing but keeps its fields, objects and Apex referenced "
            "(they look used) and may be activated by mistake. Finish and activate it, or "
            "delete it (with all its versions); it stays in version control if needed.",
            _where(c),
            discriminator=status.lower(),
            status=status,
        )


@_rule(
    "FLOW-TOO-MANY-VERSIONS",
    "Flow with too many versions",
    "low",
    "maintainability",
    "sfdx-hardis (purge obsolete flow versions), OrgCheck",
    "A flow that keeps more versions than the threshold: old versions count toward limits, slow "
    "deployments and clutter the flow's history.",
)
def check_flow_versions(ctx: RuleContext) -> Iterator[Finding]:
    limit = THRESHOLDS["flow_versions"]
    for c in _flows(ctx):
        versions = _as_list(c.attributes.get("versions"))
        if len(versions) > limit:
            inactive = sum(1 for v in versions if isinstance(v, dict) and (v.get("status") or "") != "Active")
            yield _f(
                ctx,
                "FLOW-TOO-MANY-VERSIONS",
                c.key,
                f"Flow {c.full_name} has {len(versions)} versions (more than {limit})",
                f"{inactive} of them are not active. Delete obsolete versions (Setup → Flows → "
                "the flow → versions, or `sf hardis:org:purge:flow`); keep history in version "
                "control instead.",
                _where(c),
                versions=len(versions),
            )


# === flow runtime ==========================================================================


@_rule(
    "FLOW-MISSING-FAULT-PATH",
    "Flow DML or action without a fault path",
    "medium",
    "flow",
    "Lightning Flow Scanner (MissingFaultPath)",
    "A Create/Update/Delete Records or Action element of an active flow with no fault connector: "
    "when it fails the user sees an unhandled-fault screen (or the whole transaction is rolled "
    "back) and nobody is told why.",
)
def check_flow_fault_path(ctx: RuleContext) -> Iterator[Finding]:
    for c in _flows(ctx, active_only=True):
        _, ttype = _record_trigger(c)
        if ttype == "RecordBeforeSave":
            continue  # before-save flows can't do DML or actions
        md = _meta(c)
        elements = _flow_elements(md)
        handlers = _fault_handlers(elements)
        for name, (etype, el) in sorted(elements.items()):
            if etype not in FLOW_FAULT_ELEMENTS or name in handlers:
                continue
            if isinstance(el.get("faultConnector"), dict):
                continue
            what = el.get("object") or el.get("actionName") or el.get("inputReference") or ""
            label = f"{etype}:{name}"
            yield _f(
                ctx,
                "FLOW-MISSING-FAULT-PATH",
                c.key,
                f"Flow {c.full_name}: {label}{f' ({what})' if what else ''} has no fault path",
                "Add a fault connector that logs the error ($Flow.FaultMessage) to a log object "
                "or platform event and tells the user or an admin; in record-triggered flows, "
                "decide whether the failure should block the save (custom error) or not.",
                _where(c, label),
                discriminator=label,
            )


def _loop_findings(ctx: RuleContext, rule_id: str, kinds: tuple[str, ...], what: str, fix: str) -> Iterator[Finding]:
    for c in _flows(ctx, active_only=True):
        elements = _flow_elements(_meta(c))
        reported: set[str] = set()
        for loop, body in sorted(_loop_bodies(elements).items()):
            for name in sorted(body):
                etype, el = elements[name]
                if etype not in kinds or name in reported:
                    continue
                reported.add(name)
                label = f"{etype}:{name}"
                obj = el.get("object") or el.get("inputReference") or ""
                yield _f(
                    ctx,
                    rule_id,
                    c.key,
                    f"Flow {c.full_name}: {label}{f' ({obj})' if obj else ''} {what} inside loop {loop}",
                    fix,
                    _where(c, label),
                    discriminator=label,
                    loop=loop,
                )


@_rule(
    "FLOW-DML-IN-LOOP",
    "Flow DML inside a loop",
    "high",
    "performance",
    "Lightning Flow Scanner (DMLStatementInLoop)",
    "A Create/Update/Delete Records element inside a loop: one DML statement per iteration, which "
    "hits the 150-DML governor limit as soon as the collection grows.",
)
def check_flow_dml_in_loop(ctx: RuleContext) -> Iterator[Finding]:
    yield from _loop_findings(
        ctx,
        "FLOW-DML-IN-LOOP",
        FLOW_DML_ELEMENTS,
        "runs DML",
        "Inside the loop, only assign: add each record to a collection variable; after the loop, "
        "create/update/delete the whole collection with one element.",
    )


@_rule(
    "FLOW-QUERY-IN-LOOP",
    "Flow Get Records inside a loop",
    "high",
    "performance",
    "Lightning Flow Scanner (SOQLQueryInLoop)",
    "A Get Records element inside a loop: one SOQL query per iteration, which hits the "
    "100-query governor limit as soon as the collection grows.",
)
def check_flow_query_in_loop(ctx: RuleContext) -> Iterator[Finding]:
    yield from _loop_findings(
        ctx,
        "FLOW-QUERY-IN-LOOP",
        ("recordLookups",),
        "queries records",
        "Query once before the loop (Get Records with an IN filter on the collected ids, or a "
        "broader filter) and match records in the loop; or move the logic to invocable Apex.",
    )


# === automation overlap ====================================================================


def _active_record_flows(ctx: RuleContext) -> dict[str, list[tuple[Component, str]]]:
    """Object → [(flow, trigger type)] for active record-triggered flows."""
    out: dict[str, list[tuple[Component, str]]] = defaultdict(list)
    for c in _flows(ctx, active_only=True):
        obj, ttype = _record_trigger(c)
        if obj and ttype:
            out[obj].append((c, ttype))
    return out


def _trigger_objects(ctx: RuleContext) -> dict[str, list[str]]:
    """Object → Apex triggers on it (from trigger_on edges, falling back to attributes)."""
    out: dict[str, set[str]] = defaultdict(set)
    for e in ctx.graph.edges:
        if e.kind == TRIGGER_ON and e.source.startswith("ApexTrigger:"):
            out[e.target.split(":", 1)[1]].add(e.source)
    for c in _comps(ctx, "ApexTrigger"):
        if c.active is False:
            continue
        obj = c.attributes.get("object")
        if obj:
            out[str(obj)].add(c.key)
    inactive = {c.key for c in _comps(ctx, "ApexTrigger") if c.active is False}
    return {o: sorted(t - inactive) for o, t in out.items() if t - inactive}


def _obj_key(ctx: RuleContext, obj: str) -> str:
    key = f"CustomObject:{obj}"
    if key in ctx.graph.nodes:
        return key
    low = key.lower()
    return next((k for k in ctx.graph.nodes if k.lower() == low), key)


@_rule(
    "AUTOMATION-FLOW-AND-TRIGGER",
    "Record-triggered flow and Apex trigger on the same object",
    "medium",
    "automation",
    "OrgCheck, Salesforce architects' automation guidance",
    "An object automated both by Apex triggers and by record-triggered flows: the order between "
    "them is not under your control, so updates may run twice, recurse or override each other.",
)
def check_flow_and_trigger(ctx: RuleContext) -> Iterator[Finding]:
    triggers = _trigger_objects(ctx)
    flows = _active_record_flows(ctx)
    for obj in sorted(set(triggers) & set(flows)):
        fnames = sorted(f.key for f, _ in flows[obj])
        yield _f(
            ctx,
            "AUTOMATION-FLOW-AND-TRIGGER",
            _obj_key(ctx, obj),
            f"{obj} is automated by {len(triggers[obj])} Apex trigger(s) and {len(fnames)} "
            "record-triggered flow(s)",
            f"Triggers: {', '.join(triggers[obj])}; flows: {', '.join(fnames)}. Salesforce does "
            "not guarantee the order between triggers and flows. Choose one automation tool per "
            "object (typically one trigger with a handler, or flows only), or at least document "
            "the interplay and test it with bulk data.",
            ", ".join(fnames + triggers[obj]),
            triggers=triggers[obj],
            flows=fnames,
        )


@_rule(
    "FLOW-MULTIPLE-RECORD-TRIGGERED",
    "Several record-triggered flows on one object and trigger type",
    "low",
    "automation",
    "Lightning Flow Scanner (TriggerOrder), Salesforce flow trigger explorer",
    "Several active record-triggered flows for the same object and the same moment (before save, "
    "after save, before delete): without an explicit Trigger Order their order is arbitrary.",
)
def check_multiple_record_flows(ctx: RuleContext) -> Iterator[Finding]:
    for obj, items in sorted(_active_record_flows(ctx).items()):
        by_type: dict[str, list[Component]] = defaultdict(list)
        for c, ttype in items:
            by_type[ttype].append(c)
        for ttype, flows in sorted(by_type.items()):
            if len(flows) < 2:
                continue
            names = sorted(f.full_name for f in flows)
            unordered = [f.full_name for f in flows if not _meta(f).get("triggerOrder")]
            yield _f(
                ctx,
                "FLOW-MULTIPLE-RECORD-TRIGGERED",
                _obj_key(ctx, obj),
                f"{obj} has {len(flows)} active {ttype} flows: {', '.join(names)}",
                "Consolidate them into one flow per object and moment where possible, or set "
                "Trigger Order on each so the sequence is explicit"
                + (f" (no order on: {', '.join(sorted(unordered))})." if unordered else "."),
                ", ".join(sorted(f.key for f in flows)),
                discriminator=ttype,
                flows=names,
            )


@_rule(
    "AUTOMATION-WORKFLOW-RULE",
    "Workflow rule (legacy automation)",
    "medium",
    "automation",
    "sfdx-hardis, OrgCheck (Workflow Rules retirement)",
    "Workflow rules are retired (end of support December 2025): they get no fixes or new "
    "features, and mixed with flows the order of automation is hard to follow.",
)
def check_workflow_rules(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "WorkflowRule"):
        if _is_managed(c):
            continue
        active = c.active is not False
        actions = [f"{a.get('type')}:{a.get('name')}" for a in _as_list(c.attributes.get("actions")) if isinstance(a, dict)]
        yield _f(
            ctx,
            "AUTOMATION-WORKFLOW-RULE",
            c.key,
            f"Workflow rule {c.full_name} ({'active' if active else 'inactive'}) should be migrated to a flow",
            "Use Setup → Migrate to Flow to turn it into a record-triggered flow (field updates "
            "→ before-save flow, alerts and outbound messages → after-save flow), test, then "
            "deactivate and delete the rule." + (f" Actions: {', '.join(actions)}." if actions else "")
            + ("" if active else " It is inactive: it can simply be deleted."),
            _where(c),
            severity=None if active else "low",
        )


@_rule(
    "AUTOMATION-PROCESS-BUILDER",
    "Process Builder process (legacy automation)",
    "medium",
    "automation",
    "sfdx-hardis, OrgCheck, Lightning Flow Scanner",
    "Process Builder is retired alongside workflow rules: processes are slow (one interview per "
    "record, no bulkification of criteria) and no longer supported.",
)
def check_process_builder(ctx: RuleContext) -> Iterator[Finding]:
    for c in _flows(ctx):
        ptype = c.attributes.get("process_type") or _meta(c).get("processType")
        if ptype not in PROCESS_BUILDER_TYPES:
            continue
        active = _flow_is_active(c)
        yield _f(
            ctx,
            "AUTOMATION-PROCESS-BUILDER",
            c.key,
            f"Process Builder process {c.full_name} ({ptype}, {'active' if active else 'inactive'}) "
            "should be migrated to a flow",
            "Rebuild it as a record-triggered flow (Migrate to Flow handles simple processes), "
            "test with bulk data, then deactivate the process and delete its versions.",
            _where(c),
            severity=None if active else "low",
        )


@_rule(
    "AUTOMATION-LEGACY-AND-MODERN",
    "Workflow rules or processes on an object that also has flows or triggers",
    "medium",
    "automation",
    "OrgCheck, Salesforce order of execution",
    "An object automated by legacy tools (workflow rules, Process Builder) and by record-triggered "
    "flows or Apex triggers: workflow field updates re-fire triggers and flows, so the same "
    "record may be processed twice and the behaviour depends on the order of execution.",
)
def check_legacy_and_modern(ctx: RuleContext) -> Iterator[Finding]:
    legacy: dict[str, list[str]] = defaultdict(list)
    for c in _comps(ctx, "WorkflowRule"):
        if c.active is not False and not _is_managed(c):
            legacy[_obj_of(c)].append(c.key)
    for c in _flows(ctx, active_only=True):
        ptype = c.attributes.get("process_type") or _meta(c).get("processType")
        if ptype in PROCESS_BUILDER_TYPES:
            obj = c.attributes.get("trigger_object")
            if not obj:
                for pmv in _as_list(_meta(c).get("processMetadataValues")):
                    if isinstance(pmv, dict) and pmv.get("name") == "ObjectType":
                        obj = (pmv.get("value") or {}).get("stringValue")
            if obj:
                legacy[str(obj)].append(c.key)
    flows = {o: [f.key for f, _ in items] for o, items in _active_record_flows(ctx).items()}
    triggers = _trigger_objects(ctx)
    for obj in sorted(legacy):
        modern = sorted(set(flows.get(obj, [])) - set(legacy[obj])) + triggers.get(obj, [])
        if not modern:
            continue
        old = sorted(legacy[obj])
        yield _f(
            ctx,
            "AUTOMATION-LEGACY-AND-MODERN",
            _obj_key(ctx, obj),
            f"{obj} mixes legacy automation ({len(old)}) with record-triggered flows/triggers ({len(modern)})",
            f"Legacy: {', '.join(old)}; modern: {', '.join(modern)}. Migrate the workflow rules / "
            "processes into the object's record-triggered flow (or trigger handler) so one place "
            "decides what happens on save, and check the overlapping actions are not duplicated.",
            ", ".join(old + modern),
            legacy=old,
            modern=modern,
        )


@_rule(
    "FLOW-OLD-API-VERSION",
    "Flow on an old API version",
    "low",
    "maintainability",
    "Lightning Flow Scanner (APIVersion), OrgCheck",
    "A flow whose API version is about three years (nine releases) or more behind the org: it "
    "runs with old runtime behaviour and misses fixes of later releases.",
)
def check_flow_api_version(ctx: RuleContext) -> Iterator[Finding]:
    org_api = ctx.api_version or ctx.inventory.api_version
    try:
        current = float(org_api) if org_api else None
    except ValueError:
        current = None
    if current is None:
        return
    limit = current - THRESHOLDS["flow_api_age_versions"]
    for c in _flows(ctx):
        api = c.api_version or _meta(c).get("apiVersion")
        try:
            v = float(api) if api else None
        except ValueError:
            v = None
        if v is not None and v <= limit:
            yield _f(
                ctx,
                "FLOW-OLD-API-VERSION",
                c.key,
                f"Flow {c.full_name} is on API {api} (org: {org_api})",
                "Open the flow, raise its API version in the flow properties (Advanced), re-test "
                "and save a new version; or delete it if it is no longer needed.",
                _where(c),
                api_version=str(api),
            )


# === hard-coded values =====================================================================


def _id_sources(c: Component) -> Iterator[tuple[str, str]]:
    """(where in the component, text) to scan for hard-coded ids."""
    a = c.attributes
    if c.type == "Flow":
        yield from _string_leaves(_meta(c))
    elif c.type == "CustomField":
        for k in ("formula", "default_value"):
            if isinstance(a.get(k), str):
                yield k, a[k]
    elif c.type == "ValidationRule":
        if isinstance(a.get("error_condition_formula"), str):
            yield "errorConditionFormula", a["error_condition_formula"]
    elif c.type == "WorkflowRule":
        if isinstance(a.get("formula"), str):
            yield "formula", a["formula"]
        for crit in _as_list(a.get("criteria")):
            if isinstance(crit, dict) and isinstance(crit.get("value"), str):
                yield "criteriaItems", crit["value"]
    elif c.type == "WorkflowFieldUpdate":
        for k in ("formula", "literal_value", "lookup_value"):
            if isinstance(a.get(k), str):
                yield k, a[k]


@_rule(
    "META-HARDCODED-ID",
    "Hard-coded record Id in a flow, formula or validation rule",
    "high",
    "maintainability",
    "Lightning Flow Scanner (HardcodedId), OrgCheck",
    "A 15/18-character record Id written into a flow, formula, validation rule or workflow: "
    "Ids differ between sandboxes and production, so the logic silently breaks after a deploy "
    "or a sandbox refresh.",
)
def check_hardcoded_ids(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "Flow", "CustomField", "ValidationRule", "WorkflowRule", "WorkflowFieldUpdate"):
        if _is_managed(c):
            continue
        seen: set[str] = set()
        for where, text in _id_sources(c):
            for rid in _ids_in(text):
                if rid in seen:
                    continue
                seen.add(rid)
                yield _f(
                    ctx,
                    "META-HARDCODED-ID",
                    c.key,
                    f"{c.type} {c.full_name} hard-codes the record Id {rid}",
                    "Look the record up by a stable key instead: a custom metadata or custom "
                    "setting value, a DeveloperName (record types, queues, groups via Get "
                    "Records), or $Setup/$CustomMetadata in formulas.",
                    _where(c, where),
                    discriminator=rid,
                )


@_rule(
    "META-VR-HARDCODED-USER-OR-PROFILE",
    "Validation rule bypass by profile, role or user name",
    "medium",
    "maintainability",
    "OrgCheck, Salesforce validation rule best practices",
    "A validation rule that tests $Profile, $UserRole or a specific user (username, Id, a literal "
    "e-mail address): bypasses tied to names break when a profile is renamed, cannot be granted "
    "temporarily, and hide who is exempt.",
)
def check_vr_user_or_profile(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "ValidationRule"):
        if _is_managed(c):
            continue
        formula = c.attributes.get("error_condition_formula") or ""
        hits = sorted({m.group(0) for m in _USER_OR_PROFILE_RE.finditer(formula)})
        hits += sorted({m.group(0) for m in _LITERAL_USERNAME_RE.finditer(formula)})
        if not hits:
            continue
        inactive = c.active is False
        yield _f(
            ctx,
            "META-VR-HARDCODED-USER-OR-PROFILE",
            c.key,
            f"Validation rule {c.full_name} is bypassed by {', '.join(hits)}",
            "Replace the name test with a custom permission ($Permission.Bypass_Validation) or a "
            "hierarchy custom setting, assigned through a permission set; exemptions then show in "
            "access reviews and survive renames.",
            _where(c, "errorConditionFormula"),
            severity="low" if inactive else None,
            matches=hits,
        )


# === data model ============================================================================


def _fields_by_object(ctx: RuleContext) -> dict[str, list[Component]]:
    out: dict[str, list[Component]] = defaultdict(list)
    for c in _comps(ctx, "CustomField"):
        if _is_custom_field(c):
            out[c.parent or f"CustomObject:{_obj_of(c)}"].append(c)
    return out


@_rule(
    "META-OBJECT-TOO-MANY-FIELDS",
    "Object with too many custom fields",
    "low",
    "data-model",
    "OrgCheck (objects: field count)",
    "An object with more custom fields than the threshold (30 on custom objects, 100 on standard "
    "ones): wide objects hint at a model that should be split, slow pages and approach the "
    "edition's field limit.",
)
def check_too_many_fields(ctx: RuleContext) -> Iterator[Finding]:
    objects = {c.key: c for c in _comps(ctx, "CustomObject")}
    for obj_key, fields in sorted(_fields_by_object(ctx).items()):
        obj = objects.get(obj_key)
        custom = obj is not None and _is_custom_object(obj)
        if obj is not None and obj.attributes.get("object_kind") not in (None, "custom", "standard"):
            continue  # settings, custom metadata, events …
        limit = THRESHOLDS["custom_object_fields" if custom else "standard_object_fields"]
        if len(fields) <= limit:
            continue
        unused_hint = sum(1 for f in fields if not f.has_description)
        yield _f(
            ctx,
            "META-OBJECT-TOO-MANY-FIELDS",
            obj_key,
            f"{obj_key.split(':', 1)[1]} has {len(fields)} custom fields (threshold {limit})",
            f"{unused_hint} of them have no description. Review which fields are still used "
            "(see META-FIELD-UNUSED), delete the dead ones, and consider moving groups of "
            "related fields (e.g. checklists) to a child object.",
            obj.source if obj and obj.source else obj_key,
            field_count=len(fields),
            threshold=limit,
        )


@_rule(
    "META-OBJECT-TOO-MANY-VALIDATION-RULES",
    "Object with too many active validation rules",
    "low",
    "data-model",
    "OrgCheck (objects: validation rule count)",
    "An object with more active validation rules than the threshold: saves fail for reasons "
    "users cannot predict, and data loads and integrations become fragile.",
)
def check_too_many_vrs(ctx: RuleContext) -> Iterator[Finding]:
    by_obj: dict[str, list[str]] = defaultdict(list)
    for c in _comps(ctx, "ValidationRule"):
        if c.active is not False:
            by_obj[_obj_of(c)].append(c.full_name)
    limit = THRESHOLDS["validation_rules_per_object"]
    for obj, names in sorted(by_obj.items()):
        if len(names) > limit:
            yield _f(
                ctx,
                "META-OBJECT-TOO-MANY-VALIDATION-RULES",
                _obj_key(ctx, obj),
                f"{obj} has {len(names)} active validation rules (threshold {limit})",
                "Merge rules that test the same condition, move process rules into the flow that "
                "drives the process, and give integrations a documented bypass.",
                _obj_key(ctx, obj),
                count=len(names),
                threshold=limit,
            )


@_rule(
    "META-OBJECT-TOO-MANY-LAYOUTS",
    "Object with too many page layouts",
    "low",
    "data-model",
    "OrgCheck (objects: layout count)",
    "An object with more page layouts than the threshold: every field change has to be repeated "
    "on each layout; Dynamic Forms or fewer layouts with record types are easier to keep right.",
)
def check_too_many_layouts(ctx: RuleContext) -> Iterator[Finding]:
    by_obj: dict[str, list[str]] = defaultdict(list)
    for c in _comps(ctx, "Layout"):
        obj = c.attributes.get("object") or c.full_name.split("-", 1)[0]
        by_obj[str(obj)].append(c.full_name)
    limit = THRESHOLDS["layouts_per_object"]
    for obj, names in sorted(by_obj.items()):
        if len(names) > limit:
            yield _f(
                ctx,
                "META-OBJECT-TOO-MANY-LAYOUTS",
                _obj_key(ctx, obj),
                f"{obj} has {len(names)} page layouts (threshold {limit})",
                "Remove layouts no profile/record type is assigned to, merge near-identical ones "
                "and consider Dynamic Forms with visibility rules on a single Lightning page.",
                _obj_key(ctx, obj),
                count=len(names),
                threshold=limit,
            )


@_rule(
    "META-VR-INACTIVE",
    "Inactive validation rule",
    "low",
    "maintainability",
    "OrgCheck, sfdx-hardis",
    "An inactive validation rule: dead logic that keeps fields referenced and may be switched "
    "back on without review.",
)
def check_vr_inactive(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "ValidationRule"):
        if c.active is False and not _is_managed(c):
            yield _f(
                ctx,
                "META-VR-INACTIVE",
                c.key,
                f"Validation rule {c.full_name} is inactive",
                "If the rule is no longer wanted, delete it (it stays in version control); if it "
                "was switched off temporarily (data load), switch it back on or record why not in "
                "its description.",
                _where(c),
            )


@_rule(
    "META-FORMULA-EXTERNAL-PACKAGE-REFERENCE",
    "Formula references another package's component",
    "medium",
    "data-model",
    "OrgCheck (formula dependencies), sfdx-hardis (missing package dependencies)",
    "A formula field or validation rule that uses a field or object of a managed package "
    "(namespaced) not defined in the project: it breaks on any org or scratch org without that "
    "package and ties the org to the package's upgrades.",
)
def check_formula_external(ctx: RuleContext) -> Iterator[Finding]:
    by_key = ctx.inventory.by_key()
    for e in sorted(ctx.graph.edges, key=lambda e: (e.source, e.target, e.kind)):
        src = by_key.get(e.source)
        if src is None or _is_managed(src):
            continue
        if src.type == "CustomField" and not src.attributes.get("formula"):
            continue
        if src.type not in ("CustomField", "ValidationRule"):
            continue
        node = ctx.graph.nodes.get(e.target)
        if node is None or not node.external:
            continue
        name = _field_name(node.name)
        if not _NAMESPACED_RE.match(name):
            continue
        ns = name.split("__", 1)[0]
        yield _f(
            ctx,
            "META-FORMULA-EXTERNAL-PACKAGE-REFERENCE",
            src.key,
            f"{src.type} {src.full_name} uses {node.name} from package {ns}, not defined in the project",
            f"Declare the dependency on the {ns} package (sfdx-project.json `dependencies`, "
            "install it in sandboxes and scratch orgs) or replace the reference with a field of "
            "your own that an integration keeps in sync.",
            e.evidence,
            discriminator=e.target,
            package=ns,
        )


@_rule(
    "META-LOOKUP-DELETE-CONSTRAINT",
    "Lookup with a missing or cascading delete behaviour",
    "medium",
    "data-model",
    "OrgCheck, Salesforce data model best practices",
    "A lookup field whose delete behaviour is not set, or set to Cascade on master data "
    "(Account, Contact, User …): deleting one master record silently deletes dependent records.",
)
def check_lookup_delete(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "CustomField"):
        a = c.attributes
        if a.get("data_type") != "Lookup" or not _is_custom_field(c) or _is_managed(c):
            continue
        targets = [str(t) for t in _as_list(a.get("reference_to"))]
        if not targets or "User" in targets:
            continue  # lookups to User have no delete behaviour
        if "delete_constraint" not in a:
            continue  # the source did not say (live extraction): nothing to judge
        dc = a.get("delete_constraint")
        target = ", ".join(targets)
        if not dc:
            yield _f(
                ctx,
                "META-LOOKUP-DELETE-CONSTRAINT",
                c.key,
                f"Lookup {c.full_name} → {target} has no explicit delete behaviour",
                "Salesforce then clears the value (SetNull). Decide explicitly: Restrict if the "
                "record makes no sense without its parent, SetNull if it does; set "
                "deleteConstraint in the field definition.",
                _where(c, "deleteConstraint"),
                severity="low",
                discriminator="missing",
            )
        elif dc == "Cascade":
            master = any(t in MASTER_DATA_OBJECTS for t in targets)
            yield _f(
                ctx,
                "META-LOOKUP-DELETE-CONSTRAINT",
                c.key,
                f"Lookup {c.full_name} → {target} deletes its records when the {target} is deleted",
                "Cascade delete on a lookup bypasses the user's delete permission on this object"
                + (" and the parent is master data, deleted or merged routinely" if master else "")
                + ". Use Restrict (or SetNull) unless the records are meaningless without their "
                "parent; then a master-detail relationship states it openly.",
                _where(c, "deleteConstraint"),
                severity="high" if master else "medium",
                discriminator="cascade",
            )


# === permissions ===========================================================================


def _holders(ctx: RuleContext) -> list[Component]:
    return [c for c in _comps(ctx, "PermissionSet", "Profile") if not _is_managed(c) and not _is_admin_profile(c)]


def _perm_finding(ctx: RuleContext, rule_id: str, c: Component, perm: str) -> Finding:
    sev, why = POWERFUL_PERMISSIONS[perm]
    kind = "Permission set" if c.type == "PermissionSet" else "Profile"
    return _f(
        ctx,
        rule_id,
        c.key,
        f"{kind} {c.full_name} grants {perm}",
        f"{perm} lets its holders {why}. Keep it to the System Administrator profile; give "
        "integration and support users object- and field-level permissions for what they "
        "actually need, review who holds this permission set/profile, and track assignments in "
        "the audit trail.",
        _where(c, f"userPermissions:{perm}"),
        discriminator=perm,
        severity=sev,
        permission=perm,
    )


@_rule(
    "SEC-MODIFY-ALL-DATA",
    "Modify All Data outside the System Administrator profile",
    "critical",
    "security",
    "OrgCheck (permission sets/profiles: admin-like permissions)",
    "A permission set or custom profile granting Modify All Data: its holders can edit and delete "
    "every record in the org, regardless of sharing.",
)
def check_modify_all_data(ctx: RuleContext) -> Iterator[Finding]:
    for c in _holders(ctx):
        if "ModifyAllData" in _user_permissions(c):
            yield _perm_finding(ctx, "SEC-MODIFY-ALL-DATA", c, "ModifyAllData")


@_rule(
    "SEC-VIEW-ALL-DATA",
    "View All Data outside the System Administrator profile",
    "high",
    "security",
    "OrgCheck (permission sets/profiles: admin-like permissions)",
    "A permission set or custom profile granting View All Data: its holders can read every record "
    "in the org, including personal data, regardless of sharing.",
)
def check_view_all_data(ctx: RuleContext) -> Iterator[Finding]:
    for c in _holders(ctx):
        if "ViewAllData" in _user_permissions(c):
            yield _perm_finding(ctx, "SEC-VIEW-ALL-DATA", c, "ViewAllData")


@_rule(
    "SEC-ADMIN-PERMISSION",
    "Administrative permission outside the System Administrator profile",
    "high",
    "security",
    "OrgCheck (permission sets/profiles: admin-like permissions)",
    "A permission set or custom profile granting an administrative permission (Author Apex, "
    "Manage Users, Customize Application, Modify Metadata …); the finding's severity depends on "
    "the permission.",
)
def check_admin_permissions(ctx: RuleContext) -> Iterator[Finding]:
    for c in _holders(ctx):
        for perm in _user_permissions(c):
            if perm in POWERFUL_PERMISSIONS and perm not in _DEDICATED_PERMISSION_RULES:
                yield _perm_finding(ctx, "SEC-ADMIN-PERMISSION", c, perm)


@_rule(
    "SEC-OBJECT-MODIFY-ALL",
    "Modify All Records on an object",
    "medium",
    "security",
    "OrgCheck (object permissions)",
    "A permission set or custom profile with Modify All on an object: its holders can edit, "
    "delete and transfer every record of that object, whatever the sharing model.",
)
def check_object_modify_all(ctx: RuleContext) -> Iterator[Finding]:
    for c in _holders(ctx):
        for op in _as_list(_meta(c).get("objectPermissions")):
            if not isinstance(op, dict) or not _true(op.get("modifyAllRecords")):
                continue
            obj = str(op.get("object") or "")
            kind = "Permission set" if c.type == "PermissionSet" else "Profile"
            yield _f(
                ctx,
                "SEC-OBJECT-MODIFY-ALL",
                c.key,
                f"{kind} {c.full_name} has Modify All on {obj}",
                "Grant Read/Create/Edit and let sharing decide which records; keep Modify All "
                "for data stewards who need it, in a dedicated, described permission set.",
                _where(c, f"objectPermissions:{obj}"),
                discriminator=obj,
                object=obj,
            )


# === personal data =========================================================================


@_rule(
    "SEC-PII-UNCLASSIFIED",
    "Personal data field without classification",
    "medium",
    "security",
    "Salesforce Data Classification, GDPR/CCPA records of processing",
    "A field whose name or label suggests personal data (SSN, passport, date of birth, personal "
    "e-mail or phone, bank or card details …) with no compliance group and no data sensitivity "
    "level: privacy tools, Shield and data-subject requests will miss it.",
)
def check_pii_unclassified(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "CustomField"):
        if _is_managed(c) or _is_classified(c):
            continue
        what = sensitive_kind(_obj_of(c), _field_name(c.full_name), c.attributes.get("label"))
        if not what:
            continue
        yield _f(
            ctx,
            "SEC-PII-UNCLASSIFIED",
            c.key,
            f"Field {c.full_name} looks like {what} but has no data classification",
            "Set its Compliance Categorization (e.g. PII;GDPR) and Data Sensitivity Level "
            "(Confidential or Restricted) in the field definition, then review who can read it "
            "(field-level security) and whether it must be encrypted.",
            _where(c),
            kind=what,
        )


@_rule(
    "SEC-CLASSIFIED-NOT-ENCRYPTED",
    "Confidential or Restricted field not encrypted",
    "medium",
    "security",
    "Salesforce Shield Platform Encryption guidance",
    "A field classified Confidential, Restricted or Mission Critical that is stored in clear "
    "text: the classification says it needs protection at rest, and nothing provides it.",
)
def check_classified_not_encrypted(ctx: RuleContext) -> Iterator[Finding]:
    for c in _comps(ctx, "CustomField"):
        a = c.attributes
        cls = (a.get("security_classification") or "").strip()
        if _is_managed(c) or cls.lower() not in SENSITIVE_CLASSIFICATIONS:
            continue
        if a.get("encrypted") or a.get("data_type") == "EncryptedText":
            continue
        yield _f(
            ctx,
            "SEC-CLASSIFIED-NOT-ENCRYPTED",
            c.key,
            f"Field {c.full_name} is classified {cls} but not encrypted",
            "Encrypt it with Shield Platform Encryption (deterministic if it is filtered on), or "
            "record why not (compensating controls, classification too high); at least restrict "
            "its field-level security to the roles that need it.",
            _where(c),
            classification=cls,
        )


@_rule(
    "SEC-SENSITIVE-FIELD-VIEW-ALL-DATA",
    "Sensitive field granted together with View/Modify All Data",
    "high",
    "security",
    "OrgCheck, GDPR data minimisation",
    "A permission set or custom profile that has View All Data (or Modify All Data) and also "
    "field access to personal/sensitive fields: its holders can read those values on every "
    "record of the org.",
)
def check_sensitive_with_view_all(ctx: RuleContext) -> Iterator[Finding]:
    sensitive = _sensitive_fields(ctx)
    for c in _holders(ctx):
        perms = set(_user_permissions(c)) & {"ViewAllData", "ModifyAllData"}
        if not perms:
            continue
        for fp in _as_list(_meta(c).get("fieldPermissions")):
            if not isinstance(fp, dict) or not (_true(fp.get("readable")) or _true(fp.get("editable"))):
                continue
            fkey = f"CustomField:{fp.get('field')}"
            fkey = next((k for k in sensitive if k.lower() == fkey.lower()), fkey)
            if fkey not in sensitive:
                continue
            access = "edit" if _true(fp.get("editable")) else "read"
            fname = fkey.split(":", 1)[1]
            yield _f(
                ctx,
                "SEC-SENSITIVE-FIELD-VIEW-ALL-DATA",
                c.key,
                f"{c.full_name} gives {access} access to {fname} ({sensitive[fkey]}) together with "
                f"{' and '.join(sorted(perms))}",
                "Holders can read this field on every record of the org. Remove the field access "
                "(or the all-data permission) from this permission set, grant the field in a "
                "separate, described permission set to the few users who need it, and review the "
                "assignments.",
                _where(c, f"fieldPermissions:{fname}"),
                discriminator=fkey,
                field=fkey,
                access=access,
            )


@_rule(
    "SEC-SENSITIVE-FIELD-IN-REPORT-OR-EMAIL",
    "Report or email template exposing a sensitive field",
    "medium",
    "security",
    "GDPR data minimisation, OrgCheck",
    "A report column/filter or an email template merge field that uses a personal/sensitive "
    "field: reports are exported and e-mails leave the org, so the value escapes field-level "
    "security and encryption.",
)
def check_sensitive_in_reports(ctx: RuleContext) -> Iterator[Finding]:
    sensitive = _sensitive_fields(ctx)
    seen: set[tuple[str, str]] = set()
    for e in sorted(ctx.graph.edges, key=lambda e: (e.source, e.target, e.evidence)):
        if not e.source.startswith(("Report:", "EmailTemplate:")) or e.target not in sensitive:
            continue
        if (e.source, e.target) in seen:
            continue
        seen.add((e.source, e.target))
        kind = "Report" if e.source.startswith("Report:") else "Email template"
        yield _f(
            ctx,
            "SEC-SENSITIVE-FIELD-IN-REPORT-OR-EMAIL",
            e.source,
            f"{kind} {e.source.split(':', 1)[1]} uses {e.target.split(':', 1)[1]} ({sensitive[e.target]})",
            "Remove the field if it is not needed, or mask it (last four characters via a "
            "formula); restrict the report folder / template to the audience allowed to see it.",
            e.evidence,
            discriminator=e.target,
            field=e.target,
        )


__all__ = ["METADATA_RULES", "THRESHOLDS", "sensitive_kind"]
