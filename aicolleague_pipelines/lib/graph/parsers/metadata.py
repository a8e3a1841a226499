"""References of declarative metadata: fields, validation rules, record types, workflow,
layouts, Lightning pages, permission sets / profiles, reports, custom metadata records,
email templates, tabs.

:func:`parse_metadata` dispatches on ``Component.type`` (Flows go to
:func:`~aicolleague_pipelines.lib.graph.parsers.flow.parse_flow`, LWC / Aura / Visualforce to
:func:`~aicolleague_pipelines.lib.graph.parsers.bundles.parse_bundle`; Apex and objects yield
nothing here). Metadata dicts come from :func:`aicolleague_pipelines.lib.safe_xml.element_to_dict`
(element → value, repeated → list) whether read from source or from the Tooling API, so every
accessor here accepts a single dict where a list is expected and ``"true"`` strings as booleans.

XML gives no line numbers: references carry ``line=None`` and a short ``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from aicolleague_pipelines.lib.graph.model import (
    CHILD_OF,
    CONTROLLED_BY,
    GRANTS,
    LOOKUP_TO,
    READ,
    RECORD_TYPE_OF,
    REFERENCES,
    SHOWS,
    USES_VALUE_SET,
    WRITE,
    Reference,
)
from aicolleague_pipelines.lib.graph.parsers.formula import parse_formula, parse_merge_text, resolve_identifier
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component, component_key


# --- small helpers ------------------------------------------------------------------------
def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _dicts(v: Any) -> list[dict]:
    return [x for x in _as_list(v) if isinstance(x, dict)]


def _s(d: Any, key: str) -> str | None:
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return None


def _true(d: Any, key: str) -> bool:
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool):
        return v
    return isinstance(v, str) and v.strip().lower() == "true"


def _meta(comp: Component) -> dict:
    md = comp.attributes.get("metadata")
    return md if isinstance(md, dict) else {}


def _dedupe(refs: list[Reference]) -> list[Reference]:
    seen: set[tuple] = set()
    out: list[Reference] = []
    for r in refs:
        k = (r.target, r.kind, r.access, r.detail)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _obj_field(schema: Schema, dotted: str) -> str | None:
    """``Account.Industry`` → ``CustomField:Account.Industry`` (canonical casing)."""
    obj, sep, fld = dotted.strip().partition(".")
    if not sep or not obj or not fld:
        return None
    return schema.field_key(obj, fld)


def _key(schema: Schema, type_: str, name: str) -> str:
    return schema.canonical_key(component_key(type_, name))


def _class_key(schema: Schema, name: str) -> str:
    return component_key("ApexClass", schema.apex_class(name) or name)


def _owner_object(comp: Component) -> str | None:
    """Object of an object part (``Account.Industry`` → ``Account``) or of a layout."""
    obj = comp.attributes.get("object")
    if isinstance(obj, str) and obj:
        return obj
    if comp.parent and comp.parent.startswith("CustomObject:"):
        return comp.parent.partition(":")[2]
    if comp.type == "Layout":
        return comp.full_name.split("-", 1)[0] if "-" in comp.full_name else None
    if "." in comp.full_name:
        return comp.full_name.split(".", 1)[0]
    return None


#: Objects every org has (used where a name could be an object or something else).
STANDARD_OBJECTS = frozenset(
    s.lower()
    for s in (
        "Account", "Contact", "Opportunity", "Lead", "Case", "User", "Campaign", "CampaignMember",
        "Product2", "Pricebook2", "PricebookEntry", "Contract", "Order", "OrderItem", "Task", "Event",
        "Asset", "Organization", "Profile", "UserRole", "RecordType", "OpportunityLineItem", "Quote",
        "QuoteLineItem", "Solution", "Entitlement", "ServiceContract", "WorkOrder", "Individual",
        "ContentVersion", "ContentDocument", "Attachment", "Note", "Group", "Partner", "Site",
    )
)


_STANDARD_CASING = {s.lower(): s for s in (
    "Account", "Contact", "Opportunity", "Lead", "Case", "User", "Campaign", "Product2", "Contract",
    "Order", "Task", "Event", "Asset", "Organization", "Profile", "UserRole", "RecordType",
)}


class _ObjectNames(Mapping):
    """Resource table for classic merge fields: any object name is a resource of its own type."""

    def __init__(self, schema: Schema, extra: Mapping[str, str | None] | None = None) -> None:
        self.schema = schema
        self.extra = {k.lower(): v for k, v in (extra or {}).items()}

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = key.lower()
        return k in self.extra or self.schema.has_object(k) or k in STANDARD_OBJECTS or k.endswith(("__c", "__mdt"))

    def __getitem__(self, key: str) -> str | None:
        k = key.lower()
        if k in self.extra:
            return self.extra[k]
        if k in self:
            return self.schema.object_name(_STANDARD_CASING.get(k, key))
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.extra)

    def __len__(self) -> int:
        return len(self.extra)


# --- CustomField ----------------------------------------------------------------------------
def parse_custom_field(comp: Component, schema: Schema) -> list[Reference]:
    a = comp.attributes
    obj, _, fld = comp.full_name.partition(".")
    refs: list[Reference] = [Reference(schema.object_key(obj), CHILD_OF)]
    for target in a.get("reference_to") or ():
        if target:
            refs.append(Reference(schema.object_key(target), LOOKUP_TO))
    if a.get("controlling_field"):
        refs.append(Reference(schema.field_key(obj, a["controlling_field"]), CONTROLLED_BY, access=READ))
    if a.get("value_set"):
        refs.append(Reference(_key(schema, "GlobalValueSet", a["value_set"]), USES_VALUE_SET))
    refs += parse_formula(a.get("formula"), obj, schema, detail="formula")
    refs += parse_formula(a.get("default_value"), obj, schema, detail="default value")
    for attr, detail in (("summarized_field", "roll-up summarized field"), ("summary_foreign_key", "roll-up foreign key")):
        k = _obj_field(schema, a.get(attr) or "")
        if k:
            refs.append(Reference(k, REFERENCES, access=READ, detail=detail))
    if a.get("summary_foreign_key"):
        child = a["summary_foreign_key"].split(".", 1)[0]
        refs.append(Reference(schema.object_key(child), REFERENCES, access=READ, detail="roll-up child object"))
    for item in _dicts(a.get("summary_filter_items")):
        k = _obj_field(schema, _s(item, "field") or "")
        if k:
            refs.append(Reference(k, REFERENCES, access=READ, detail="roll-up filter"))
    lf = a.get("lookup_filter")
    if isinstance(lf, dict):
        targets = [t for t in a.get("reference_to") or () if t]
        for item in _dicts(lf.get("filterItems")):
            for side in ("field", "valueField"):
                refs += _lookup_filter_path(_s(item, side), obj, targets, schema)
    return _dedupe(refs)


def _lookup_filter_path(path: str | None, obj: str, targets: list[str], schema: Schema) -> list[Reference]:
    """``$Source.Field__c`` (the record being edited), ``Account.Type`` (the lookup target),
    ``$User.X`` …"""
    if not path:
        return []
    head, _, rest = path.partition(".")
    keys: list[str]
    if not rest:
        keys = []
    elif head.startswith("$"):
        keys = resolve_identifier(path, obj, schema)
    else:
        keys = schema.resolve_path(head, rest)
    return [Reference(k, REFERENCES, access=READ, detail="lookup filter") for k in keys]


# --- ValidationRule / RecordType ----------------------------------------------------------
def parse_validation_rule(comp: Component, schema: Schema) -> list[Reference]:
    obj = _owner_object(comp)
    if not obj:
        return []
    refs = [Reference(schema.object_key(obj), CHILD_OF)]
    refs += parse_formula(comp.attributes.get("error_condition_formula"), obj, schema, detail="error condition")
    edf = comp.attributes.get("error_display_field")
    if edf:
        refs.append(Reference(schema.field_key(obj, edf), REFERENCES, access=READ, detail="error display field"))
    return _dedupe(refs)


def parse_record_type(comp: Component, schema: Schema) -> list[Reference]:
    obj = _owner_object(comp)
    if not obj:
        return []
    refs = [Reference(schema.object_key(obj), RECORD_TYPE_OF)]
    md = _meta(comp)
    for pv in _dicts(md.get("picklistValues")):
        name = _s(pv, "picklist")
        if name:
            refs.append(Reference(schema.field_key(obj, name), REFERENCES, access=READ, detail="picklist values"))
    return _dedupe(refs)


# --- Workflow -------------------------------------------------------------------------------
def _criteria_field(obj: str, field: str, schema: Schema) -> list[str]:
    """Workflow / approval criteria ``Account.Industry`` (``Object.Field``; the object may be
    the rule's own object or e.g. ``User``)."""
    head, sep, rest = field.partition(".")
    if not sep:
        return schema.resolve_path(obj, field)
    return schema.resolve_path(head, rest)


def parse_workflow_rule(comp: Component, schema: Schema) -> list[Reference]:
    obj = _owner_object(comp)
    if not obj:
        return []
    a = comp.attributes
    refs = [Reference(schema.object_key(obj), CHILD_OF)]
    refs += parse_formula(a.get("formula"), obj, schema, detail="rule formula")
    for c in _dicts(a.get("criteria")):
        for side in ("field", "valueField"):
            if _s(c, side):
                for k in _criteria_field(obj, _s(c, side), schema):  # type: ignore[arg-type]
                    refs.append(Reference(k, REFERENCES, access=READ, detail="rule criteria"))
    for act in _dicts(a.get("actions")):
        name, type_ = _s(act, "name"), (_s(act, "type") or "")
        if name and type_ == "FieldUpdate":
            refs.append(Reference(_key(schema, "WorkflowFieldUpdate", f"{obj}.{name}"), REFERENCES, detail="action"))
    return _dedupe(refs)


def parse_workflow_field_update(comp: Component, schema: Schema) -> list[Reference]:
    obj = _owner_object(comp)
    if not obj:
        return []
    a = comp.attributes
    refs = [Reference(schema.object_key(obj), CHILD_OF)]
    target_obj = obj
    tgt = a.get("target_object")
    if tgt and tgt.lower() != obj.lower():  # cross-object update (master-detail parent)
        f = schema.field(obj, tgt)
        rel = schema.relationship(obj, tgt)
        if f is not None and f.attributes.get("reference_to"):
            target_obj = f.attributes["reference_to"][0]
        elif rel is not None and schema.field(obj, rel[0]) is not None:
            target_obj = rel[1][0]
        else:
            target_obj = tgt
    if a.get("field"):
        refs.append(
            Reference(schema.field_key(target_obj, a["field"]), REFERENCES, access=WRITE, detail="field update")
        )
    refs += parse_formula(a.get("formula"), obj, schema, detail="field update formula")
    return _dedupe(refs)


_CALCULATED_TYPES = frozenset({"summary", "autonumber", "formula"})


def _is_calculated(schema: Schema, field_key: str) -> bool:
    """A formula / roll-up / auto-number field (never written through a page)."""
    obj, _, fld = field_key.partition(":")[2].partition(".")
    f = schema.field(obj, fld)
    if f is None:
        return False
    return bool(f.attributes.get("formula")) or (f.attributes.get("data_type") or "").lower() in _CALCULATED_TYPES


# --- Layout ---------------------------------------------------------------------------------
_BEHAVIOR_WRITE = frozenset({"edit", "required"})


def parse_layout(comp: Component, schema: Schema) -> list[Reference]:
    obj = _owner_object(comp)
    md = _meta(comp)
    if not obj:
        return []
    obj = schema.object_name(obj)
    refs = [Reference(schema.object_key(obj), CHILD_OF)]
    for section in _dicts(md.get("layoutSections")):
        for col in _dicts(section.get("layoutColumns")):
            for item in _dicts(col.get("layoutItems")):
                if _s(item, "field"):
                    key = schema.field_key(obj, _s(item, "field"))  # type: ignore[arg-type]
                    editable = (_s(item, "behavior") or "").lower() in _BEHAVIOR_WRITE
                    access = WRITE if editable and not _is_calculated(schema, key) else READ
                    refs.append(Reference(key, SHOWS, access=access))
                if _s(item, "page"):
                    refs.append(Reference(_key(schema, "ApexPage", _s(item, "page")), SHOWS, detail="Visualforce"))  # type: ignore[arg-type]
                if _s(item, "customLink"):
                    refs.append(
                        Reference(_key(schema, "WebLink", f"{obj}.{_s(item, 'customLink')}"), SHOWS, detail="custom link")
                    )
                if _s(item, "component"):  # canvas / Visualforce component
                    refs.append(Reference(_key(schema, "ApexComponent", _s(item, "component")), SHOWS))  # type: ignore[arg-type]
    for name in _as_list(md.get("customButtons")):
        if isinstance(name, str) and name.strip():
            refs.append(Reference(_key(schema, "WebLink", f"{obj}.{name.strip()}"), SHOWS, detail="custom button"))
    for rl in _dicts(md.get("relatedLists")):
        refs += _related_list(rl, obj, schema)
    mini = md.get("miniLayout")
    if isinstance(mini, dict):
        for f in _as_list(mini.get("fields")):
            if isinstance(f, str) and f.strip():
                refs.append(Reference(schema.field_key(obj, f.strip()), SHOWS, access=READ, detail="mini layout"))
    for item in _dicts((md.get("summaryLayout") or {}).get("summaryLayoutItems") if isinstance(md.get("summaryLayout"), dict) else None):
        if _s(item, "field"):
            refs.append(Reference(schema.field_key(obj, _s(item, "field")), SHOWS, access=READ, detail="summary layout"))  # type: ignore[arg-type]
    return _dedupe(refs)


def _related_list(rl: dict, obj: str, schema: Schema) -> list[Reference]:
    """``relatedList`` is ``Child__c.Lookup__c`` for custom relations (a standard list such as
    ``RelatedContactList`` names no field); ``fields`` are the child's columns."""
    refs: list[Reference] = []
    name = _s(rl, "relatedList") or ""
    child: str | None = None
    if "." in name:
        child, _, lookup = name.partition(".")
        child = schema.object_name(child)
        refs.append(Reference(schema.field_key(child, lookup), SHOWS, access=READ, detail="related list"))
    for f in _as_list(rl.get("fields")):
        if not isinstance(f, str) or not f.strip():
            continue
        f = f.strip()
        if "." in f:
            keys = _report_column(f, child, schema)
        elif child and "__" in f:
            keys = [schema.field_key(child, f)]
        elif child:
            keys = _legacy_field(child, f, schema, strict=True)
        else:
            keys = []
        refs += [Reference(k, SHOWS, access=READ, detail="related list column") for k in keys]
    return refs


# --- FlexiPage ------------------------------------------------------------------------------
def parse_flexipage(comp: Component, schema: Schema) -> list[Reference]:
    md = _meta(comp)
    obj = _s(md, "sobjectType")
    obj = schema.object_name(obj) if obj else None
    refs: list[Reference] = []
    if obj:
        refs.append(Reference(schema.object_key(obj), REFERENCES, access=READ, detail="sobjectType"))
    variables = {"record": obj}
    for region in _dicts(md.get("flexiPageRegions")):
        items = _dicts(region.get("itemInstances"))
        items += [{"componentInstance": c} for c in _dicts(region.get("componentInstances"))]
        for item in items:
            ci = item.get("componentInstance")
            if isinstance(ci, dict):
                refs += _component_instance(ci, obj, variables, schema)
            fi = item.get("fieldInstance")
            if isinstance(fi, dict):
                refs += _field_instance(fi, obj, variables, schema)
    return _dedupe(refs)


def _visibility(rule: Any, obj: str | None, variables: dict, schema: Schema) -> list[Reference]:
    refs: list[Reference] = []
    if not isinstance(rule, dict):
        return refs
    for c in _dicts(rule.get("criteria")):
        for side in ("leftValue", "rightValue"):
            v = _s(c, side)
            if v and "{!" in v:
                refs += parse_merge_text(v, obj, schema, variables=variables, detail="visibility rule")
    return refs


def _component_instance(ci: dict, obj: str | None, variables: dict, schema: Schema) -> list[Reference]:
    refs: list[Reference] = []
    name = _s(ci, "componentName") or ""
    ns, sep, cmp = name.partition(":")
    if sep and ns == "c" and cmp:
        lwc, aura = component_key("LightningComponentBundle", cmp), component_key("AuraDefinitionBundle", cmp)
        key = schema.canonical_key(aura if schema.has_component(aura) and not schema.has_component(lwc) else lwc)
        refs.append(Reference(key, SHOWS, detail="component"))
    props = {(_s(p, "name") or ""): p for p in _dicts(ci.get("componentInstanceProperties"))}
    for pname, p in props.items():
        value = _s(p, "value")
        if not value:
            continue
        if "{!" in value:
            refs += parse_merge_text(value, obj, schema, variables=variables, detail=f"{name} {pname}")
        elif name == "flowruntime:interview" and pname == "flowName":
            refs.append(Reference(component_key("Flow", schema.flow(value) or value), REFERENCES, detail=name))
        elif pname == "relatedListApiName" and obj:
            child = schema.child_relationship(obj, value)
            if child:
                refs.append(Reference(schema.field_key(*child), SHOWS, access=READ, detail="related list"))
        elif pname in ("fieldApiName", "field") and obj and re.fullmatch(r"[A-Za-z]\w*", value):
            refs.append(Reference(schema.field_key(obj, value), SHOWS, access=READ, detail=name))
    refs += _visibility(ci.get("visibilityRule"), obj, variables, schema)
    return refs


def _field_instance(fi: dict, obj: str | None, variables: dict, schema: Schema) -> list[Reference]:
    refs: list[Reference] = []
    item = _s(fi, "fieldItem") or ""
    behavior = ""
    for p in _dicts(fi.get("fieldInstanceProperties")):
        if _s(p, "name") == "uiBehavior":
            behavior = (_s(p, "value") or "").lower()
    head, _, rest = item.partition(".")
    if head.lower() == "record" and rest and obj:
        for k in schema.resolve_path(obj, rest):
            # "none" (the default) / "required" are editable unless the field is calculated
            access = READ if behavior == "readonly" or _is_calculated(schema, k) else WRITE
            refs.append(Reference(k, SHOWS, access=access, detail="field instance"))
    refs += _visibility(fi.get("visibilityRule"), obj, variables, schema)
    return refs


# --- PermissionSet / Profile ----------------------------------------------------------------
_OBJ_WRITE = ("allowCreate", "allowEdit", "allowDelete", "modifyAllRecords")
_OBJ_READ = ("allowRead", "viewAllRecords")


def parse_permissions(comp: Component, schema: Schema) -> list[Reference]:
    """Only enabled grants; object edit/create/delete/modify-all and editable fields → write."""
    md = _meta(comp)
    refs: list[Reference] = []
    for op in _dicts(md.get("objectPermissions")):
        obj = _s(op, "object")
        if not obj:
            continue
        if any(_true(op, k) for k in _OBJ_WRITE):
            refs.append(Reference(schema.object_key(obj), GRANTS, access=WRITE, detail="object permissions"))
        elif any(_true(op, k) for k in _OBJ_READ):
            refs.append(Reference(schema.object_key(obj), GRANTS, access=READ, detail="object permissions"))
    for fp in _dicts(md.get("fieldPermissions")):
        key = _obj_field(schema, _s(fp, "field") or "")
        if not key:
            continue
        if _true(fp, "editable"):
            refs.append(Reference(key, GRANTS, access=WRITE, detail="field permissions"))
        elif _true(fp, "readable"):
            refs.append(Reference(key, GRANTS, access=READ, detail="field permissions"))
    for ca in _dicts(md.get("classAccesses")):
        if _true(ca, "enabled") and _s(ca, "apexClass"):
            refs.append(Reference(_class_key(schema, _s(ca, "apexClass")), GRANTS, detail="class access"))  # type: ignore[arg-type]
    for pa in _dicts(md.get("pageAccesses")):
        if _true(pa, "enabled") and _s(pa, "apexPage"):
            refs.append(Reference(_key(schema, "ApexPage", _s(pa, "apexPage")), GRANTS, detail="page access"))  # type: ignore[arg-type]
    for rt in _dicts(md.get("recordTypeVisibilities")):
        if _true(rt, "visible") and _s(rt, "recordType"):
            refs.append(Reference(_key(schema, "RecordType", _s(rt, "recordType")), GRANTS, detail="record type"))  # type: ignore[arg-type]
    for cp in _dicts(md.get("customPermissions")):
        if _true(cp, "enabled") and _s(cp, "name"):
            refs.append(Reference(_key(schema, "CustomPermission", _s(cp, "name")), GRANTS, detail="custom permission"))  # type: ignore[arg-type]
    for fa in _dicts(md.get("flowAccesses")):
        if _true(fa, "enabled") and _s(fa, "flow"):
            name = _s(fa, "flow")
            refs.append(Reference(component_key("Flow", schema.flow(name) or name), GRANTS, detail="flow access"))  # type: ignore[arg-type]
    for tag in ("customMetadataTypeAccesses", "customSettingAccesses"):
        for ta in _dicts(md.get(tag)):
            if _true(ta, "enabled") and _s(ta, "name"):
                refs.append(Reference(schema.object_key(_s(ta, "name")), GRANTS, access=READ, detail=tag))  # type: ignore[arg-type]
    for tag in ("tabSettings", "tabVisibilities"):
        for ts in _dicts(md.get(tag)):
            tab, vis = _s(ts, "tab"), (_s(ts, "visibility") or "")
            if tab and not tab.startswith("standard-") and vis.lower() not in ("hidden", "none"):
                refs.append(Reference(_key(schema, "CustomTab", tab), GRANTS, detail="tab"))
    for la in _dicts(md.get("layoutAssignments")):
        if _s(la, "layout"):
            refs.append(Reference(_key(schema, "Layout", _s(la, "layout")), GRANTS, detail="layout assignment"))  # type: ignore[arg-type]
    return _dedupe(refs)


# --- Report ---------------------------------------------------------------------------------
_STD_REPORT_TYPES = {
    "accountlist": ("Account",),
    "contactlist": ("Contact",),
    "leadlist": ("Lead",),
    "opportunity": ("Opportunity",),
    "caselist": ("Case",),
    "campaignlist": ("Campaign",),
    "userlist": ("User",),
    "productlist": ("Product2",),
    "contractlist": ("Contract",),
    "assetlist": ("Asset",),
    "orderlist": ("Order",),
    "opportunityproduct": ("Opportunity", "OpportunityLineItem"),
    "contactrole": ("Opportunity", "Contact"),
    "accountcontactrole": ("Account", "Contact"),
    "campaignmember": ("Campaign", "CampaignMember"),
}
#: Upper-case legacy column prefixes of standard report types → object.
_LEGACY_OBJECTS = {
    "account": "Account",
    "contact": "Contact",
    "opportunity": "Opportunity",
    "lead": "Lead",
    "campaign": "Campaign",
    "product": "Product2",
    "users": "User",
    "user": "User",
    "case": "Case",
    "asset": "Asset",
    "contract": "Contract",
}
#: Upper-case legacy column names → field API names (the irregular and the common ones).
_LEGACY_FIELDS = {
    "name": "Name",
    "full_name": "Name",
    "opportunity_name": "Name",
    "account_name": "Name",
    "first_name": "FirstName",
    "last_name": "LastName",
    "title": "Title",
    "email": "Email",
    "phone": "Phone",
    "phone1": "Phone",
    "industry": "Industry",
    "type": "Type",
    "sales": "AnnualRevenue",
    "employees": "NumberOfEmployees",
    "url": "Website",
    "rating": "Rating",
    "description": "Description",
    "account_number": "AccountNumber",
    "address1_street": "BillingStreet",
    "address1_city": "BillingCity",
    "address1_state": "BillingState",
    "address1_zip": "BillingPostalCode",
    "address1_country": "BillingCountry",
    "address2_street": "ShippingStreet",
    "address2_city": "ShippingCity",
    "address2_state": "ShippingState",
    "address2_zip": "ShippingPostalCode",
    "address2_country": "ShippingCountry",
    "amount": "Amount",
    "stage_name": "StageName",
    "close_date": "CloseDate",
    "probability": "Probability",
    "lead_source": "LeadSource",
    "next_step": "NextStep",
    "forecast_category": "ForecastCategoryName",
    "company": "Company",
    "status": "Status",
    "subject": "Subject",
    "priority": "Priority",
    "origin": "Origin",
    "case_number": "CaseNumber",
    "created_date": "CreatedDate",
    "last_update": "LastModifiedDate",
    "owner": "OwnerId",
    "owner_name": "OwnerId",
}


def _legacy_field(obj: str, column: str, schema: Schema, *, strict: bool = False) -> list[str]:
    """``NAME`` / ``CUST_NAME`` / ``ADDRESS1_CITY`` on ``obj`` → field key(s).

    Known names map through a table; otherwise only a field the org defines (name equal
    ignoring case and underscores) is returned. ``strict`` ignores the table for bare columns
    of an object whose fields we know nothing about.
    """
    c = column.lower()
    if c.startswith("cust_"):
        c = c[5:]
    if c in _LEGACY_FIELDS:
        return [schema.field_key(obj, _LEGACY_FIELDS[c])]
    squashed = c.replace("_", "")
    for f in schema.fields_of(obj):
        fname = f.full_name.partition(".")[2]
        if fname.lower().replace("_", "") == squashed:
            return [f.key]
    return []


def _chain(obj: str, parts: list[str], schema: Schema) -> list[str]:
    """Field keys along ``parts`` from ``obj``: intermediates are lookup fields
    (``Account__c``) or relationship names (``Account``, ``Owner``)."""
    keys: list[str] = []
    current = obj
    for i, part in enumerate(parts):
        if i == len(parts) - 1:
            keys.append(schema.field_key(current, part))
            break
        f = schema.field(current, part)
        if f is not None and f.attributes.get("reference_to"):
            keys.append(f.key)
            current = f.attributes["reference_to"][0]
            continue
        child = schema.child_relationship(current, part)
        if child is not None:
            keys.append(schema.field_key(*child))
            current = child[0]
            continue
        rel = schema.relationship(current, part)
        if rel is None:
            keys.append(schema.field_key(current, part))
            break
        keys.append(schema.field_key(current, rel[0]))
        current = schema.object_name(rel[1][0])
    return keys


def _report_column(column: str, base: str | None, schema: Schema) -> list[str]:
    """A report column / filter / grouping name → field keys.

    Forms: ``ACCOUNT.NAME`` (legacy upper-case), ``Opportunity.Amount`` / ``Program__c.Account__c``
    (object-qualified, lookups may chain), ``Program__c$Status__c`` / ``Program__c.Deliveries__r$X``
    (custom report types), ``AMOUNT`` / ``CUST_NAME`` (bare, on the report's base object).
    """
    column = column.strip()
    if not column:
        return []
    if "$" in column:
        path, _, fld = column.rpartition("$")
        parts = [p for p in path.split(".") if p] + [fld]
        return _chain(schema.object_name(parts[0]), parts[1:], schema) if len(parts) > 1 else []
    parts = [p for p in column.split(".") if p]
    if len(parts) == 1:
        if not base:
            return []
        if parts[0].isupper() or parts[0].lower().startswith("cust_"):
            return _legacy_field(base, parts[0], schema)
        return [schema.field_key(base, parts[0])]
    head = parts[0]
    if head.isupper() and head.lower() in _LEGACY_OBJECTS:
        obj = _LEGACY_OBJECTS[head.lower()]
        if len(parts) == 2:
            return _legacy_field(obj, parts[1], schema) if parts[1].isupper() else [schema.field_key(obj, parts[1])]
        return _chain(obj, parts[1:], schema)
    if head.isupper():
        return []
    return _chain(schema.object_name(head), parts[1:], schema)


def report_objects(report_type: str | None, schema: Schema) -> tuple[list[str], str | None]:
    """Objects a report type is built on (first = base) and, for a custom report type, its name."""
    if not report_type:
        return [], None
    rt = report_type.strip()
    if schema.has_object(rt) and "$" not in rt:
        return [schema.object_name(rt)], None
    if rt.lower() in _STD_REPORT_TYPES:
        return list(_STD_REPORT_TYPES[rt.lower()]), None
    if "$" in rt:
        prefix, *objs = rt.split("$")
        std = prefix.replace("CustomEntity", "")
        out = []
        if std:
            out.append(_LEGACY_OBJECTS.get(std.lower(), std))
        out += [schema.object_name(o) for o in objs if o]
        return out, None
    if rt.lower().endswith("__c"):
        return [], rt  # a custom report type (custom object reports are CustomEntity$X__c)
    return [schema.object_name(rt)], None


def parse_report(comp: Component, schema: Schema) -> list[Reference]:
    md = _meta(comp)
    refs: list[Reference] = []
    objects, crt = report_objects(_s(md, "reportType"), schema)
    if crt:
        refs.append(Reference(_key(schema, "ReportType", crt), REFERENCES, detail="report type"))
    for o in objects:
        refs.append(Reference(schema.object_key(o), REFERENCES, access=READ, detail="report type"))
    base = objects[0] if objects else None

    def cols(names: list[str | None], detail: str, rel_base: str | None = base) -> None:
        for n in names:
            if n:
                for k in _report_column(n, rel_base, schema):
                    refs.append(Reference(k, SHOWS, access=READ, detail=detail))

    cols([_s(c, "field") for c in _dicts(md.get("columns"))], "column")
    flt = md.get("filter") if isinstance(md.get("filter"), dict) else {}
    cols([_s(c, "column") for c in _dicts(flt.get("criteriaItems"))], "filter")
    for tag in ("groupingsDown", "groupingsAcross"):
        cols([_s(g, "field") for g in _dicts(md.get(tag))], "grouping")
    for agg in _dicts(md.get("aggregates")):
        formula = _s(agg, "calculatedFormula") or ""
        cols(re.findall(r"([A-Za-z_][\w$]*(?:\.[\w$]+)*)\s*:\s*[A-Za-z]+", formula), "summary formula")
    for cf in _dicts(md.get("crossFilters")) + _dicts(flt.get("crossFilters")):
        rel_table = _s(cf, "relatedTable")
        if not rel_table:
            continue
        rel_obj = schema.object_name(rel_table)
        refs.append(Reference(schema.object_key(rel_obj), REFERENCES, access=READ, detail="cross filter"))
        join = _s(cf, "relatedTableJoinColumn")
        if join:
            refs.append(Reference(schema.field_key(rel_obj, join), REFERENCES, access=READ, detail="cross filter"))
        cols([_s(c, "column") for c in _dicts(cf.get("criteriaItems"))], "cross filter", rel_obj)
    return _dedupe(refs)


# --- CustomMetadata record ------------------------------------------------------------------
def parse_custom_metadata(comp: Component, schema: Schema) -> list[Reference]:
    a = comp.attributes
    obj = a.get("object")
    if not obj:
        type_name = comp.full_name.split(".", 1)[0]
        obj = type_name + "__mdt"
    obj = schema.object_name(obj)
    refs = [Reference(schema.object_key(obj), CHILD_OF)]
    values = a.get("values")
    if not isinstance(values, dict):
        values = {}
        for v in _dicts(_meta(comp).get("values")):
            if _s(v, "field"):
                values[_s(v, "field")] = v.get("value")
    for fld, value in values.items():
        refs.append(Reference(schema.field_key(obj, fld), REFERENCES, detail="record value"))
        f = schema.field(obj, fld)
        targets = [t.lower() for t in (f.attributes.get("reference_to") or ())] if f is not None else []
        if isinstance(value, str) and value.strip():
            v = value.strip()
            if "entitydefinition" in targets:
                refs.append(Reference(schema.object_key(v), REFERENCES, access=READ, detail=f"{fld} value"))
            elif "fielddefinition" in targets and "." in v:
                k = _obj_field(schema, v)
                if k:
                    refs.append(Reference(k, REFERENCES, access=READ, detail=f"{fld} value"))
    return _dedupe(refs)


# --- EmailTemplate --------------------------------------------------------------------------
_LIGHTNING_MERGE = re.compile(r"\{\{\{\s*([A-Za-z_][\w.]*)\s*\}\}\}")
_CLASSIC_EXTRA = {"receiving_user": "User", "sending_user": "User", "organization": "Organization",
                  "sender": "User", "user": "User"}


def parse_email_template(comp: Component, schema: Schema) -> list[Reference]:
    md = _meta(comp)
    body = comp.attributes.get("body") or ""
    ttype = (_s(md, "type") or "").lower()
    refs: list[Reference] = []
    if ttype == "visualforce" or "<messaging:emailtemplate" in body.lower():
        from aicolleague_pipelines.lib.graph.parsers.bundles import parse_visualforce

        return _dedupe(parse_visualforce(body, schema))
    related = _s(md, "relatedEntityType")
    variables = _ObjectNames(schema, _CLASSIC_EXTRA)
    if related:
        refs.append(Reference(schema.object_key(related), REFERENCES, access=READ, detail="related entity"))
    for text, line, detail in ((body, 1, "body"), (_s(md, "subject"), None, "subject")):
        if not text:
            continue
        refs += parse_merge_text(text, None, schema, variables=variables, line=line, detail=detail)
        for m in _LIGHTNING_MERGE.finditer(text):
            head, _, rest = m.group(1).partition(".")
            if rest and head.lower() in variables:
                obj = variables[head]
                for k in schema.resolve_path(obj, rest) if obj else []:
                    ln = None if line is None else text.count("\n", 0, m.start()) + 1
                    refs.append(Reference(k, REFERENCES, line=ln, access=READ, detail=detail))
    return _dedupe(refs)


# --- CustomTab ------------------------------------------------------------------------------
def parse_custom_tab(comp: Component, schema: Schema) -> list[Reference]:
    md = _meta(comp)
    refs: list[Reference] = []
    if _true(md, "customObject"):
        refs.append(Reference(schema.object_key(comp.full_name), REFERENCES, detail="object tab"))
    if _s(md, "page"):
        refs.append(Reference(_key(schema, "ApexPage", _s(md, "page")), REFERENCES))  # type: ignore[arg-type]
    if _s(md, "lwcComponent"):
        refs.append(Reference(_key(schema, "LightningComponentBundle", _s(md, "lwcComponent")), REFERENCES))  # type: ignore[arg-type]
    if _s(md, "auraComponent"):
        refs.append(Reference(_key(schema, "AuraDefinitionBundle", _s(md, "auraComponent")), REFERENCES))  # type: ignore[arg-type]
    if _s(md, "flexiPage"):
        refs.append(Reference(_key(schema, "FlexiPage", _s(md, "flexiPage")), REFERENCES))  # type: ignore[arg-type]
    return refs


# --- dispatcher -----------------------------------------------------------------------------
def parse_metadata(comp: Component, schema: Schema) -> list[Reference]:
    """References of any non-Apex component (``[]`` for types without references)."""
    t = comp.type
    if t == "Flow":
        from aicolleague_pipelines.lib.graph.parsers.flow import parse_flow

        return parse_flow(comp, schema)
    if t in ("LightningComponentBundle", "AuraDefinitionBundle", "ApexPage", "ApexComponent"):
        from aicolleague_pipelines.lib.graph.parsers.bundles import parse_bundle

        return parse_bundle(comp, schema)
    handler = _HANDLERS.get(t)
    return handler(comp, schema) if handler else []


_HANDLERS = {
    "CustomField": parse_custom_field,
    "ValidationRule": parse_validation_rule,
    "RecordType": parse_record_type,
    "WorkflowRule": parse_workflow_rule,
    "WorkflowFieldUpdate": parse_workflow_field_update,
    "Layout": parse_layout,
    "FlexiPage": parse_flexipage,
    "PermissionSet": parse_permissions,
    "Profile": parse_permissions,
    "Report": parse_report,
    "CustomMetadata": parse_custom_metadata,
    "EmailTemplate": parse_email_template,
    "CustomTab": parse_custom_tab,
}

__all__ = [
    "parse_custom_field",
    "parse_custom_metadata",
    "parse_custom_tab",
    "parse_email_template",
    "parse_flexipage",
    "parse_layout",
    "parse_metadata",
    "parse_permissions",
    "parse_record_type",
    "parse_report",
    "parse_validation_rule",
    "parse_workflow_field_update",
    "parse_workflow_rule",
    "report_objects",
]
