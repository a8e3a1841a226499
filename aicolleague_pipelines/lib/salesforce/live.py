"""Extract a live org's inventory, dependencies and audit trail through :class:`SalesforceClient`.

- :func:`extract_live_inventory` → :class:`OrgInventory` (components keyed ``Type:FullName``).
  A failure of one component type becomes an :class:`ExtractionFinding` and the rest goes on;
  authentication/connection failures (and every type failing) raise :class:`ExtractionError`.
- :func:`fetch_dependencies` → ``MetadataComponentDependency`` rows with canonical keys, through
  the Tooling API in id batches (the 2,000-row cap detected and split) or Bulk API 2.0.
- :func:`fetch_audit_trail` → ``SetupAuditTrail`` rows since a timestamp.

Tooling facts honoured (REFERENCE.md §3): ``Metadata``/``FullName`` only one row per query →
ids first, then ``GET tooling/sobjects/<Type>/<Id>`` through ``tooling/composite``;
EntityDefinition ignores LIMIT and rejects OR/NOT/COUNT; CustomField rows come without object
and without ``__c`` (object from ``TableEnumOrId`` via the EntityDefinition id map).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.orgs import OrgConfig
from aicolleague_pipelines.lib.salesforce.client import (
    SalesforceAPIError,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceUnavailableError,
)
from aicolleague_pipelines.lib.salesforce.model import (
    AuditEvent,
    Component,
    DependencyRow,
    ExtractionError,
    ExtractionFinding,
    OrgInventory,
    component_key,
)

log = logging.getLogger(__name__)

#: Component types whose ``Metadata`` is fetched (one row per id, via composite) by default.
DEFAULT_METADATA_TYPES = ("Flow", "ValidationRule", "Layout", "FlexiPage")
DEPENDENCY_CAP = 2000
_AUDIT = "CreatedDate, CreatedBy.Name, LastModifiedDate, LastModifiedBy.Name"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _rel(rec: dict[str, Any], path: str) -> Any:
    """``rec['A']['B']`` for ``A.B`` (JSON records), or ``rec['A.B']`` (Bulk CSV rows)."""
    if path in rec:
        return rec[path]
    cur: Any = rec
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _ns_name(ns: str | None, name: str) -> str:
    return f"{ns}__{name}" if ns and not name.startswith(f"{ns}__") else name


def _managed(rec: dict[str, Any]) -> str | None:
    state = rec.get("ManageableState")
    if state:
        s = str(state)
        return "unmanaged" if s == "unmanaged" else "beta" if "beta" in s.lower() else "installed"
    return "installed" if rec.get("NamespacePrefix") else None


def _common(rec: dict[str, Any], source: str) -> dict[str, Any]:
    return {
        "id": _s(rec.get("Id")),
        "namespace": _s(rec.get("NamespacePrefix")),
        "created_by": _s(_rel(rec, "CreatedBy.Name")),
        "created_date": _s(rec.get("CreatedDate")),
        "last_modified_by": _s(_rel(rec, "LastModifiedBy.Name")),
        "last_modified_date": _s(rec.get("LastModifiedDate")),
        "managed_state": _managed(rec),
        "source": source,
    }


def _soql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


@dataclass
class _Ctx:
    client: SalesforceClient
    org: OrgConfig
    inv: OrgInventory
    metadata_types: set[str]
    #: EntityDefinition DurableId (01I… or API name) → object API name.
    entity_by_id: dict[str, str] = field(default_factory=dict)
    #: CustomField id → ``Object.Field__c``.
    field_by_id: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    #: Folder id → DeveloperName (reports, email templates); None until read.
    folders: dict[str, str] | None = None

    def obj_name(self, table: Any) -> str | None:
        if table is None:
            return None
        t = str(table)
        return self.entity_by_id.get(t) or self.entity_by_id.get(t[:15]) or (None if _ID_RE.match(t) and
                                                                             t[:3] == "01I" else t)

    def add(self, c: Component) -> None:
        self.inv.components.append(c)

    def finding(self, location: str, message: str, hint: str = "", severity: str = "error") -> None:
        self.inv.findings.append(ExtractionFinding(self.org.name, location, severity, message, hint))


def extract_live_inventory(
    client: SalesforceClient,
    org: OrgConfig,
    *,
    metadata_types: Iterable[str] = DEFAULT_METADATA_TYPES,
    describe: bool = True,
) -> OrgInventory:
    """Read every supported component type of a live org into an :class:`OrgInventory`."""
    started = time.monotonic()
    inv = OrgInventory(org=org.name, source_kind="live", api_version=str(org.api_version),
                       extracted_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    ctx = _Ctx(client, org, inv, set(metadata_types))
    calls_before = client.stats.get("api_calls", 0)
    steps: list[tuple[str, str, Callable[[_Ctx], None]]] = [
        ("CustomObject", "tooling:EntityDefinition", _objects),
        ("CustomField", "tooling:CustomField/FieldDefinition/describe", lambda c: _fields(c, describe)),
        ("ApexClass", "tooling:ApexClass", _apex_classes),
        ("ApexTrigger", "tooling:ApexTrigger", _apex_triggers),
        ("Flow", "tooling:Flow", _flows),
        ("ValidationRule", "tooling:ValidationRule", _validation_rules),
        ("Layout", "tooling:Layout", _layouts),
        ("FlexiPage", "tooling:FlexiPage", _flexipages),
        ("PermissionSet", "rest:PermissionSet", _permission_sets),
        ("RecordType", "rest:RecordType", _record_types),
        ("Report", "rest:Report", _reports),
        ("LightningComponentBundle", "tooling:LightningComponentBundle", _lwc),
        ("AuraDefinitionBundle", "tooling:AuraDefinitionBundle", _aura),
        ("EmailTemplate", "rest:EmailTemplate", _email_templates),
    ]
    per_type_calls: dict[str, int] = {}
    for type_, location, step in steps:
        before = client.stats.get("api_calls", 0)
        try:
            step(ctx)
            ctx.succeeded.append(type_)
        except (SalesforceAuthError, SalesforceUnavailableError):
            raise  # the org as a whole is unreachable: no point going on
        except ExtractionError as exc:
            ctx.failed.append(type_)
            ctx.finding(location, f"{type_} not extracted: {exc.problem}",
                        exc.hint or "see the message; the other component types were extracted")
            log.warning("org %s: %s not extracted: %s", org.name, type_, exc)
        per_type_calls[type_] = client.stats.get("api_calls", 0) - before
    if not ctx.succeeded:
        raise ExtractionError(org.name, "all component types", "every component type failed to extract",
                              "; ".join(str(f) for f in inv.findings)[:1000])
    inv.stats.update({
        "api_calls": client.stats.get("api_calls", 0) - calls_before,
        "api_calls_by_type": per_type_calls,
        "api_usage": client.stats.get("api_usage"),
        "retries": client.stats.get("retries", 0),
        "reauths": client.stats.get("reauths", 0),
        "duration_s": round(time.monotonic() - started, 3),
        "components": len(inv.components),
        "failed_types": ctx.failed,
    })
    return inv


# --------------------------------------------------------------------------------------------
# Objects and fields
# --------------------------------------------------------------------------------------------
_OBJECT_KINDS = (("__mdt", "custom_metadata"), ("__e", "platform_event"), ("__x", "external"),
                 ("__b", "big_object"), ("__c", "custom"))


def _load_entities(ctx: _Ctx) -> list[dict[str, Any]]:
    # EntityDefinition ignores LIMIT and rejects OR/NOT/COUNT: one plain filtered query.
    rows = ctx.client.tooling_query_all(
        "SELECT DurableId, QualifiedApiName, DeveloperName, NamespacePrefix, Label, IsCustomSetting, "
        "KeyPrefix, InternalSharingModel, LastModifiedDate FROM EntityDefinition WHERE IsCustomizable = true",
        what="tooling:EntityDefinition")
    for r in rows:
        api = str(r["QualifiedApiName"])
        durable = str(r.get("DurableId") or api)
        ctx.entity_by_id[durable] = api
        ctx.entity_by_id[durable[:15]] = api
        ctx.entity_by_id[api] = api
    return rows


def _objects(ctx: _Ctx) -> None:
    rows = _load_entities(ctx)
    for r in rows:
        api = str(r["QualifiedApiName"])
        kind = "standard"
        for suffix, k in _OBJECT_KINDS:
            if api.endswith(suffix):
                kind = k
        if r.get("IsCustomSetting"):
            kind = "custom_setting"
        durable = str(r.get("DurableId") or api)
        ctx.add(Component(
            type="CustomObject", full_name=api, id=durable if durable != api else None,
            namespace=_s(r.get("NamespacePrefix")), last_modified_date=_s(r.get("LastModifiedDate")),
            managed_state="installed" if r.get("NamespacePrefix") else ("unmanaged" if kind != "standard" else None),
            source="tooling:EntityDefinition",
            attributes={"label": r.get("Label"), "custom": kind != "standard", "object_kind": kind,
                        "sharing_model": r.get("InternalSharingModel"), "key_prefix": r.get("KeyPrefix")},
        ))


def _fields(ctx: _Ctx, describe: bool) -> None:
    if not ctx.entity_by_id:
        _load_entities(ctx)
    entities: list[str] = sorted({v for v in ctx.entity_by_id.values()})
    # 1. CustomField (Tooling): ids and audit info of every custom field.
    cf_rows = ctx.client.tooling_query_all(
        f"SELECT Id, DeveloperName, NamespacePrefix, TableEnumOrId, ManageableState, {_AUDIT} FROM CustomField",
        what="tooling:CustomField")
    custom: dict[str, dict[str, Any]] = {}
    for r in cf_rows:
        obj = ctx.obj_name(r.get("TableEnumOrId"))
        if not obj:
            continue
        name = f"{obj}.{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}__c"
        custom[name] = r
        ctx.field_by_id[str(r["Id"])] = name
        ctx.field_by_id[str(r["Id"])[:15]] = name
    # 2. FieldDefinition (Tooling) in entity batches: description, compliance, data type.
    fdefs: dict[str, dict[str, Any]] = {}
    for i in range(0, len(entities), 20):
        batch = entities[i:i + 20]
        try:
            rows = ctx.client.tooling_query_all(
                "SELECT QualifiedApiName, EntityDefinition.QualifiedApiName, DataType, Label, Description, "
                "ComplianceGroup, SecurityClassification, RelationshipName FROM FieldDefinition "
                f"WHERE EntityDefinition.QualifiedApiName IN ({_soql_list(batch)})",
                what="tooling:FieldDefinition")
        except (SalesforceAuthError, SalesforceUnavailableError):
            raise
        except ExtractionError as exc:
            ctx.finding("tooling:FieldDefinition", f"field definitions of {', '.join(batch)} not read: "
                        f"{exc.problem}", "descriptions and compliance groups are missing for these objects",
                        "warning")
            continue
        for r in rows:
            fdefs[f"{_rel(r, 'EntityDefinition.QualifiedApiName')}.{r['QualifiedApiName']}"] = r
    # 3. describe per object: type, formula, references, picklists.
    described: set[str] = set()
    for obj in entities:
        dfields: list[dict[str, Any]] = []
        if describe:
            try:
                dfields = ctx.client.describe(obj).get("fields", [])
                described.add(obj)
            except (SalesforceAuthError, SalesforceUnavailableError):
                raise
            except ExtractionError as exc:
                ctx.finding(f"describe:{obj}", f"describe failed: {exc.problem}",
                            "fields of this object come from FieldDefinition only", "warning")
        seen: set[str] = set()
        for f in dfields:
            full = f"{obj}.{f['name']}"
            seen.add(full)
            ctx.add(_field_component(ctx, full, f, fdefs.get(full), custom.get(full)))
        for full, fd in fdefs.items():
            if full.startswith(f"{obj}.") and full not in seen:
                seen.add(full)
                ctx.add(_field_component(ctx, full, None, fd, custom.get(full)))
        for full, cr in custom.items():
            if full.startswith(f"{obj}.") and full not in seen:
                ctx.add(_field_component(ctx, full, None, None, cr))
    typed = {c.full_name for c in ctx.inv.components if c.type == "CustomField" and c.attributes.get("data_type")}
    hidden = [k for k in custom if k.split(".")[0] in described and k not in typed]
    if hidden:
        ctx.finding("describe", f"{len(hidden)} custom field(s) not visible to the integration user "
                    f"(e.g. {hidden[0]})", "grant field-level read access to see their types and formulas",
                    "warning")


def _default_value(d: dict[str, Any]) -> str | None:
    """A field's default as the Metadata API writes it (``defaultValue`` of the field's XML):
    describe puts a default *formula* in ``defaultValueFormula`` and a typed constant in
    ``defaultValue`` (a JSON boolean for checkboxes, which the formula parser must not get)."""
    formula = d.get("defaultValueFormula")
    if formula not in (None, ""):
        return str(formula)
    value = d.get("defaultValue")
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value in (None, "") else str(value)


def _field_component(ctx: _Ctx, full: str, d: dict[str, Any] | None, fd: dict[str, Any] | None,
                     cf: dict[str, Any] | None) -> Component:
    obj, _, fname = full.partition(".")
    attrs: dict[str, Any] = {"custom": fname.endswith("__c")}
    if d:
        attrs.update({
            "data_type": d.get("type"), "label": d.get("label"),
            "formula": d.get("calculatedFormula") if d.get("calculated") else None,
            "reference_to": list(d.get("referenceTo") or []),
            "relationship_name": d.get("relationshipName"),
            "picklist_values": [p.get("value") for p in d.get("picklistValues") or [] if p.get("active", True)],
            "controlling_field": d.get("controllerName"),
            "required": not d.get("nillable", True) and d.get("createable", True) and
            not d.get("defaultedOnCreate", False),
            "unique": bool(d.get("unique")), "external_id": bool(d.get("externalId")),
            "encrypted": bool(d.get("encrypted")), "default_value": _default_value(d),
            "length": d.get("length") or None,
        })
        attrs = {k: v for k, v in attrs.items() if v not in (None, [], "")} | {"custom": attrs["custom"]}
    if fd:
        attrs.setdefault("label", fd.get("Label"))
        if "data_type" not in attrs and fd.get("DataType"):
            attrs["data_type"] = fd.get("DataType")
        if fd.get("ComplianceGroup"):
            attrs["compliance_group"] = fd["ComplianceGroup"]
        if fd.get("SecurityClassification"):
            attrs["security_classification"] = fd["SecurityClassification"]
        if fd.get("RelationshipName") and "relationship_name" not in attrs:
            attrs["relationship_name"] = fd["RelationshipName"]
    common = _common(cf, "tooling:CustomField") if cf else {"source": "describe" if d else "tooling:FieldDefinition"}
    return Component(type="CustomField", full_name=full, parent=component_key("CustomObject", obj),
                     description=_s(fd.get("Description")) if fd else None, attributes=attrs, **common)


# --------------------------------------------------------------------------------------------
# Code and automation
# --------------------------------------------------------------------------------------------
_ISTEST = re.compile(r"@\s*istest\b", re.I)


def _apex_classes(ctx: _Ctx) -> None:
    for r in ctx.client.tooling_query_all(
            "SELECT Id, Name, NamespacePrefix, ApiVersion, Status, IsValid, Body, ManageableState, "
            f"{_AUDIT} FROM ApexClass", what="tooling:ApexClass"):
        body = r.get("Body") or ""
        ctx.add(Component(
            type="ApexClass", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["Name"])),
            api_version=_s(r.get("ApiVersion")), status=_s(r.get("Status")), active=r.get("Status") == "Active",
            attributes={"body": body if body != "(hidden)" else None, "is_test": bool(_ISTEST.search(body)),
                        "is_valid": r.get("IsValid")},
            **_common(r, "tooling:ApexClass")))


_TRIGGER_EVENTS = (("UsageBeforeInsert", "before insert"), ("UsageBeforeUpdate", "before update"),
                   ("UsageBeforeDelete", "before delete"), ("UsageAfterInsert", "after insert"),
                   ("UsageAfterUpdate", "after update"), ("UsageAfterDelete", "after delete"),
                   ("UsageAfterUndelete", "after undelete"))


def _apex_triggers(ctx: _Ctx) -> None:
    usage = ", ".join(u for u, _ in _TRIGGER_EVENTS)
    for r in ctx.client.tooling_query_all(
            f"SELECT Id, Name, NamespacePrefix, TableEnumOrId, ApiVersion, Status, Body, {usage}, "
            f"ManageableState, {_AUDIT} FROM ApexTrigger", what="tooling:ApexTrigger"):
        obj = ctx.obj_name(r.get("TableEnumOrId"))
        ctx.add(Component(
            type="ApexTrigger", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["Name"])),
            parent=component_key("CustomObject", obj) if obj else None,
            api_version=_s(r.get("ApiVersion")), status=_s(r.get("Status")), active=r.get("Status") == "Active",
            attributes={"body": r.get("Body"), "object": obj,
                        "events": [e for u, e in _TRIGGER_EVENTS if r.get(u)]},
            **_common(r, "tooling:ApexTrigger")))


def _fetch_metadata(ctx: _Ctx, tooling_type: str, ids: list[str]) -> dict[str, Any]:
    """``Metadata`` of each id, one row per id through composite (never a multi-row query)."""
    if not ids:
        return {}
    out: dict[str, Any] = {}
    results = ctx.client.tooling_composite_get([f"sobjects/{tooling_type}/{i}" for i in ids],
                                               what=f"tooling:{tooling_type} (Metadata)")
    failed = []
    for i, res in zip(ids, results):
        if res["status"] == 200 and isinstance(res["body"], dict):
            out[i] = res["body"].get("Metadata")
        else:
            failed.append(i)
    if failed:
        ctx.finding(f"tooling:{tooling_type}", f"Metadata not readable for {len(failed)} record(s) "
                    f"(e.g. {failed[0]})", "check the integration user's access to these components", "warning")
    return out


def _flows(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        "SELECT Id, DefinitionId, Definition.DeveloperName, Definition.NamespacePrefix, MasterLabel, "
        f"VersionNumber, Status, ProcessType, Description, ApiVersion, ManageableState, {_AUDIT} FROM Flow",
        what="tooling:Flow")
    by_def: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        dev = _rel(r, "Definition.DeveloperName")
        if not dev:
            continue
        name = _ns_name(_s(_rel(r, "Definition.NamespacePrefix")), str(dev))
        by_def.setdefault(name, []).append(r)
    chosen: dict[str, dict[str, Any]] = {}
    for name, versions in by_def.items():
        versions.sort(key=lambda v: int(v.get("VersionNumber") or 0))
        active = next((v for v in versions if v.get("Status") == "Active"), None)
        chosen[name] = active or versions[-1]
    metadata = _fetch_metadata(ctx, "Flow", [str(v["Id"]) for v in chosen.values()]) \
        if "Flow" in ctx.metadata_types else {}
    for name, versions in by_def.items():
        main = chosen[name]
        active = next((v for v in versions if v.get("Status") == "Active"), None)
        md = metadata.get(str(main["Id"]))
        start = (md or {}).get("start") or {}
        attrs: dict[str, Any] = {
            "process_type": main.get("ProcessType"),
            "version_number": main.get("VersionNumber"),
            "active_version": active.get("VersionNumber") if active else None,
            "versions": [{"version_number": v.get("VersionNumber"), "status": v.get("Status"), "id": v.get("Id")}
                         for v in versions],
            "label": main.get("MasterLabel"),
            "definition_id": main.get("DefinitionId"),
        }
        if start.get("triggerType"):
            attrs["trigger_type"] = start.get("triggerType")
        if start.get("object"):
            attrs["trigger_object"] = start.get("object")
        if md is not None:
            attrs["metadata"] = md
        common = _common(main, "tooling:Flow")
        common["namespace"] = _s(_rel(main, "Definition.NamespacePrefix"))
        ctx.add(Component(type="Flow", full_name=name, api_version=_s(main.get("ApiVersion")),
                          status=_s(main.get("Status")), active=active is not None,
                          description=_s(main.get("Description")), attributes=attrs, **common))


def _validation_rules(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        "SELECT Id, ValidationName, EntityDefinitionId, Active, Description, ErrorDisplayField, ErrorMessage, "
        f"NamespacePrefix, ManageableState, {_AUDIT} FROM ValidationRule", what="tooling:ValidationRule")
    metadata = _fetch_metadata(ctx, "ValidationRule", [str(r["Id"]) for r in rows]) \
        if "ValidationRule" in ctx.metadata_types else {}
    for r in rows:
        obj = ctx.obj_name(r.get("EntityDefinitionId")) or str(r.get("EntityDefinitionId"))
        md = metadata.get(str(r["Id"])) or {}
        attrs = {"error_message": r.get("ErrorMessage"), "error_display_field": r.get("ErrorDisplayField"),
                 "error_condition_formula": md.get("errorConditionFormula")}
        ctx.add(Component(
            type="ValidationRule", full_name=f"{obj}.{_ns_name(_s(r.get('NamespacePrefix')), str(r['ValidationName']))}",
            parent=component_key("CustomObject", obj), active=bool(r.get("Active")),
            status="Active" if r.get("Active") else "Inactive", description=_s(r.get("Description")),
            attributes={k: v for k, v in attrs.items() if v is not None}, **_common(r, "tooling:ValidationRule")))


def _layouts(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        f"SELECT Id, Name, TableEnumOrId, NamespacePrefix, LayoutType, ManageableState, {_AUDIT} FROM Layout",
        what="tooling:Layout")
    metadata = _fetch_metadata(ctx, "Layout", [str(r["Id"]) for r in rows]) if "Layout" in ctx.metadata_types else {}
    for r in rows:
        obj = ctx.obj_name(r.get("TableEnumOrId")) or str(r.get("TableEnumOrId"))
        attrs: dict[str, Any] = {"layout_type": r.get("LayoutType")}
        if str(r["Id"]) in metadata:
            attrs["metadata"] = metadata[str(r["Id"])]
        ctx.add(Component(type="Layout", full_name=f"{obj}-{_ns_name(_s(r.get('NamespacePrefix')), str(r['Name']))}",
                          parent=component_key("CustomObject", obj), attributes=attrs,
                          **_common(r, "tooling:Layout")))


def _flexipages(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        "SELECT Id, DeveloperName, MasterLabel, NamespacePrefix, EntityDefinitionId, Type, Description, "
        f"ManageableState, {_AUDIT} FROM FlexiPage", what="tooling:FlexiPage")
    metadata = _fetch_metadata(ctx, "FlexiPage", [str(r["Id"]) for r in rows]) \
        if "FlexiPage" in ctx.metadata_types else {}
    for r in rows:
        obj = ctx.obj_name(r.get("EntityDefinitionId"))
        attrs: dict[str, Any] = {"label": r.get("MasterLabel"), "page_type": r.get("Type")}
        if obj:
            attrs["object"] = obj
        if str(r["Id"]) in metadata:
            attrs["metadata"] = metadata[str(r["Id"])]
        ctx.add(Component(type="FlexiPage", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["DeveloperName"])),
                          parent=component_key("CustomObject", obj) if obj else None,
                          description=_s(r.get("Description")), attributes=attrs,
                          **_common(r, "tooling:FlexiPage")))


# --------------------------------------------------------------------------------------------
# Access, UI, reports
# --------------------------------------------------------------------------------------------
#: ``Profile.Name`` (the label the data API returns) → Metadata API full name, for the standard
#: profiles whose full name differs from their label. Custom profiles keep their name.
STANDARD_PROFILE_FULL_NAMES = {
    "System Administrator": "Admin",
    "Standard User": "Standard",
    "Read Only": "ReadOnly",
    "Solution Manager": "SolutionManager",
    "Marketing User": "MarketingProfile",
    "Contract Manager": "ContractManager",
    "Standard Platform User": "StandardAul",
}
#: Characters the Metadata API percent-encodes in profile full names (``Custom%3A Sales Profile``,
#: ``Force%2Ecom - Free User``).
_PROFILE_ESCAPES = {"%": "%25", ":": "%3A", ".": "%2E", "/": "%2F", "(": "%28", ")": "%29", "'": "%27",
                    "\"": "%22", "*": "%2A", "?": "%3F", "<": "%3C", ">": "%3E", "|": "%7C", "\\": "%5C"}


def profile_full_name(label: str) -> str:
    """A profile's Metadata API full name (the canonical ``Profile:<Name>`` key, as SFDX
    projects name ``<Name>.profile-meta.xml``) from its ``Profile.Name`` label."""
    if label in STANDARD_PROFILE_FULL_NAMES:
        return STANDARD_PROFILE_FULL_NAMES[label]
    return "".join(_PROFILE_ESCAPES.get(ch, ch) for ch in label)


def _permission_sets(ctx: _Ctx) -> None:
    for r in ctx.client.query_all(
            "SELECT Id, Name, Label, NamespacePrefix, IsOwnedByProfile, ProfileId, Profile.Name, IsCustom, "
            f"Description, {_AUDIT} FROM PermissionSet", what="rest:PermissionSet"):
        common = _common(r, "rest:PermissionSet")
        if r.get("IsOwnedByProfile"):
            pname = _rel(r, "Profile.Name")
            if not pname:
                continue
            common["id"] = _s(r.get("ProfileId")) or common["id"]
            ctx.add(Component(type="Profile", full_name=profile_full_name(str(pname)),
                              description=_s(r.get("Description")),
                              attributes={"label": str(pname), "permission_set_id": r.get("Id"),
                                          "custom": r.get("IsCustom")}, **common))
        else:
            ctx.add(Component(type="PermissionSet", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["Name"])),
                              description=_s(r.get("Description")),
                              attributes={"label": r.get("Label"), "custom": r.get("IsCustom")}, **common))


def _record_types(ctx: _Ctx) -> None:
    for r in ctx.client.query_all(
            "SELECT Id, Name, DeveloperName, SobjectType, NamespacePrefix, IsActive, Description, "
            f"BusinessProcessId, {_AUDIT} FROM RecordType", what="rest:RecordType"):
        obj = str(r.get("SobjectType"))
        ctx.add(Component(type="RecordType",
                          full_name=f"{obj}.{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                          parent=component_key("CustomObject", obj), active=bool(r.get("IsActive")),
                          status="Active" if r.get("IsActive") else "Inactive", description=_s(r.get("Description")),
                          attributes={"label": r.get("Name"), "business_process_id": r.get("BusinessProcessId")},
                          **_common(r, "rest:RecordType")))


def _folders(ctx: _Ctx) -> dict[str, str]:
    cache = ctx.folders
    if cache is None:
        cache = {}
        try:
            for r in ctx.client.query_all("SELECT Id, DeveloperName, Type FROM Folder WHERE Type IN "
                                          "('Report', 'Email')", what="rest:Folder"):
                if r.get("DeveloperName"):
                    cache[str(r["Id"])] = str(r["DeveloperName"])
                    cache[str(r["Id"])[:15]] = str(r["DeveloperName"])
        except (SalesforceAuthError, SalesforceUnavailableError):
            raise
        except ExtractionError as exc:
            ctx.finding("rest:Folder", f"folders not read: {exc.problem}",
                        "report/email template names fall back to unfiled$public", "warning")
        ctx.folders = cache
    return cache


def _reports(ctx: _Ctx) -> None:
    rows = ctx.client.query_all(
        "SELECT Id, Name, DeveloperName, FolderName, OwnerId, NamespacePrefix, Format, Description, LastRunDate, "
        f"{_AUDIT} FROM Report", what="rest:Report")
    folders = _folders(ctx) if rows else {}
    for r in rows:
        folder = folders.get(str(r.get("OwnerId"))) or "unfiled$public"
        ctx.add(Component(type="Report",
                          full_name=f"{folder}/{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                          description=_s(r.get("Description")),
                          attributes={"label": r.get("Name"), "folder_name": r.get("FolderName"),
                                      "format": r.get("Format"), "last_run_date": r.get("LastRunDate")},
                          **_common(r, "rest:Report")))


def _email_templates(ctx: _Ctx) -> None:
    rows = ctx.client.query_all(
        "SELECT Id, Name, DeveloperName, NamespacePrefix, FolderId, TemplateType, IsActive, Subject, Description, "
        f"{_AUDIT} FROM EmailTemplate", what="rest:EmailTemplate")
    folders = _folders(ctx) if rows else {}
    for r in rows:
        folder = folders.get(str(r.get("FolderId"))) or "unfiled$public"
        ctx.add(Component(type="EmailTemplate",
                          full_name=f"{folder}/{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                          active=bool(r.get("IsActive")), description=_s(r.get("Description")),
                          attributes={"label": r.get("Name"), "template_type": r.get("TemplateType"),
                                      "subject": r.get("Subject")},
                          **_common(r, "rest:EmailTemplate")))


def _bundles(ctx: _Ctx, type_: str, extra: str) -> None:
    for r in ctx.client.tooling_query_all(
            f"SELECT Id, DeveloperName, MasterLabel, NamespacePrefix, ApiVersion, Description, {extra}"
            f"ManageableState, {_AUDIT} FROM {type_}", what=f"tooling:{type_}"):
        attrs = {"label": r.get("MasterLabel")}
        if "IsExposed" in r:
            attrs["is_exposed"] = r.get("IsExposed")
        ctx.add(Component(type=type_, full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["DeveloperName"])),
                          api_version=_s(r.get("ApiVersion")), description=_s(r.get("Description")),
                          attributes=attrs, **_common(r, f"tooling:{type_}")))


def _lwc(ctx: _Ctx) -> None:
    _bundles(ctx, "LightningComponentBundle", "IsExposed, ")


def _aura(ctx: _Ctx) -> None:
    _bundles(ctx, "AuraDefinitionBundle", "")


# --------------------------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------------------------
_DEP_FIELDS = ("MetadataComponentId, MetadataComponentName, MetadataComponentNamespace, MetadataComponentType, "
               "RefMetadataComponentId, RefMetadataComponentName, RefMetadataComponentNamespace, "
               "RefMetadataComponentType")


def fetch_dependencies(
    client: SalesforceClient,
    org: OrgConfig,
    component_ids: Iterable[str] | None = None,
    batch_size: int = 50,
    *,
    inventory: OrgInventory | None = None,
    use_bulk: bool = False,
    findings: list[ExtractionFinding] | None = None,
) -> list[DependencyRow]:
    """``MetadataComponentDependency`` rows, names resolved to canonical keys.

    ``component_ids``: the source components to ask about (default: every id in
    ``inventory``; without either, the whole org in one query — capped at 2,000 rows, so pass
    ``use_bulk=True`` for large orgs). Batches returning exactly 2,000 rows are split and
    re-queried; a single id that still hits the cap, or a batch whose URL is too long (431),
    is reported in ``findings``. ``inventory`` supplies the id → key map used to name
    CustomFields ``Object.Field__c`` (else it is read from the org: EntityDefinition + CustomField).
    """
    notes = findings if findings is not None else []
    keys_by_id = _keys_by_id(client, inventory)
    if component_ids is None and inventory is not None:
        component_ids = [c.id for c in inventory.components if c.id and _ID_RE.match(c.id)]
        for c in inventory.components:  # every Flow version is its own dependency source
            if c.type == "Flow":
                component_ids += [str(v["id"]) for v in c.attributes.get("versions", []) if v.get("id")]
    raw: list[dict[str, Any]] = []
    if use_bulk:
        where = ""
        if component_ids is not None:
            ids = sorted(set(component_ids))
            if not ids:
                return []
            where = f" WHERE MetadataComponentId IN ({_soql_list(ids)})" if len(ids) <= 1000 else ""
        raw = client.tooling_bulk_query(f"SELECT {_DEP_FIELDS} FROM MetadataComponentDependency{where}",
                                        what="tooling-bulk:MetadataComponentDependency")
        if component_ids is not None and not where:
            wanted = set(component_ids)
            raw = [r for r in raw if r.get("MetadataComponentId") in wanted]
    elif component_ids is None:
        raw = client.tooling_query_all(f"SELECT {_DEP_FIELDS} FROM MetadataComponentDependency",
                                       what="tooling:MetadataComponentDependency")
        if len(raw) >= DEPENDENCY_CAP:
            notes.append(ExtractionFinding(org.name, "tooling:MetadataComponentDependency", "warning",
                                           f"the unfiltered query hit the {DEPENDENCY_CAP}-row cap; rows are missing",
                                           "pass component ids (batches) or use_bulk=True"))
    else:
        ids = sorted(set(component_ids))
        for i in range(0, len(ids), max(1, batch_size)):
            raw.extend(_dependency_batch(client, org, ids[i:i + batch_size], notes))
    # One row per (source, target): several versions of a flow yield the same edge; the row
    # from the component's own (active/latest) version id wins.
    primary = {c.id for c in inventory.components if c.id} if inventory is not None else set()
    raw.sort(key=lambda r: r.get("MetadataComponentId") not in primary)
    seen: set[tuple[Any, ...]] = set()
    out: list[DependencyRow] = []
    for r in raw:
        row = _dependency_row(r, keys_by_id)
        ident = (row.source_key, row.target_key)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(row)
    return out


def _dependency_batch(client: SalesforceClient, org: OrgConfig, ids: list[str],
                      notes: list[ExtractionFinding]) -> list[dict[str, Any]]:
    soql = f"SELECT {_DEP_FIELDS} FROM MetadataComponentDependency WHERE MetadataComponentId IN ({_soql_list(ids)})"
    try:
        rows = client.tooling_query_all(soql, what="tooling:MetadataComponentDependency")
    except SalesforceAPIError as exc:
        if exc.status == 431 and len(ids) > 1:
            half = len(ids) // 2
            return _dependency_batch(client, org, ids[:half], notes) + _dependency_batch(client, org, ids[half:], notes)
        raise
    if len(rows) >= DEPENDENCY_CAP:
        if len(ids) > 1:
            half = len(ids) // 2
            log.info("org %s: dependency batch of %d ids hit the %d-row cap; splitting", org.name, len(ids),
                     DEPENDENCY_CAP)
            return _dependency_batch(client, org, ids[:half], notes) + _dependency_batch(client, org, ids[half:], notes)
        notes.append(ExtractionFinding(org.name, "tooling:MetadataComponentDependency", "warning",
                                       f"component {ids[0]} alone has {DEPENDENCY_CAP}+ dependencies; "
                                       "the list is truncated", "re-run with use_bulk=True for this org"))
    return rows


def _keys_by_id(client: SalesforceClient, inventory: OrgInventory | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    if inventory is not None:
        for c in inventory.components:
            if c.id:
                keys[c.id] = c.key
                keys[c.id[:15]] = c.key
            if c.type == "Flow":
                for v in c.attributes.get("versions", []):
                    if v.get("id"):
                        keys[str(v["id"])] = c.key
                        keys[str(v["id"])[:15]] = c.key
        return keys
    # No inventory: the minimum needed to name custom fields and objects.
    entity: dict[str, str] = {}
    for r in client.tooling_query_all("SELECT DurableId, QualifiedApiName FROM EntityDefinition "
                                      "WHERE IsCustomizable = true", what="tooling:EntityDefinition"):
        entity[str(r["DurableId"])] = str(r["QualifiedApiName"])
        entity[str(r["DurableId"])[:15]] = str(r["QualifiedApiName"])
        if r["DurableId"] != r["QualifiedApiName"]:
            keys[str(r["DurableId"])] = component_key("CustomObject", str(r["QualifiedApiName"]))
            keys[str(r["DurableId"])[:15]] = keys[str(r["DurableId"])]
    for r in client.tooling_query_all("SELECT Id, DeveloperName, NamespacePrefix, TableEnumOrId FROM CustomField",
                                      what="tooling:CustomField"):
        t = str(r.get("TableEnumOrId"))
        obj = entity.get(t) or entity.get(t[:15]) or t
        key = component_key("CustomField", f"{obj}.{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}__c")
        keys[str(r["Id"])] = key
        keys[str(r["Id"])[:15]] = key
    return keys


def _dep_key(id_: str | None, type_: str, name: str, ns: str | None, keys: dict[str, str]) -> tuple[str, str, str]:
    """(type, full name, key) of one side of a dependency row."""
    if type_ == "StandardEntity":
        api = id_ or name
        return "CustomObject", api, component_key("CustomObject", api)
    if id_ and (id_ in keys or id_[:15] in keys):
        key = keys.get(id_) or keys[id_[:15]]
        t, _, n = key.partition(":")
        return t, n, key
    if type_ == "CustomObject" and not name.endswith("__c"):
        name = f"{_ns_name(ns, name)}__c"
    elif type_ not in ("CustomField",):
        name = _ns_name(ns, name)
    return type_, name, component_key(type_, name)


def _dependency_row(r: dict[str, Any], keys: dict[str, str]) -> DependencyRow:
    sid, tid = _s(r.get("MetadataComponentId")), _s(r.get("RefMetadataComponentId"))
    st, sn, sk = _dep_key(sid, str(r.get("MetadataComponentType")), str(r.get("MetadataComponentName")),
                          _s(r.get("MetadataComponentNamespace")), keys)
    tt, tn, tk = _dep_key(tid, str(r.get("RefMetadataComponentType")), str(r.get("RefMetadataComponentName")),
                          _s(r.get("RefMetadataComponentNamespace")), keys)
    return DependencyRow(source_id=sid, source_type=st, source_name=sn,
                         source_namespace=_s(r.get("MetadataComponentNamespace")), target_id=tid, target_type=tt,
                         target_name=tn, target_namespace=_s(r.get("RefMetadataComponentNamespace")),
                         source_key=sk, target_key=tk)


# --------------------------------------------------------------------------------------------
# Audit trail
# --------------------------------------------------------------------------------------------
def _soql_datetime(since: str, org: str) -> str:
    s = since.strip().replace("Z", "+00:00")
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ExtractionError(org, "rest:SetupAuditTrail", f"'since' is not an ISO datetime: {since[:40]!r}",
                              "pass e.g. 2024-05-01T00:00:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    d = d.astimezone(dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def fetch_audit_trail(client: SalesforceClient, org: OrgConfig, since: str | None) -> list[AuditEvent]:
    """``SetupAuditTrail`` rows (oldest first), only those after ``since`` when given."""
    where = f" WHERE CreatedDate > {_soql_datetime(since, org.name)}" if since else ""
    rows = client.query_all(
        "SELECT Id, Action, Section, Display, CreatedDate, CreatedBy.Name, CreatedByContext, CreatedByIssuer, "
        f"DelegateUser, ResponsibleNamespacePrefix FROM SetupAuditTrail{where} ORDER BY CreatedDate",
        what="rest:SetupAuditTrail")
    return [AuditEvent(id=_s(r.get("Id")), created_date=str(r.get("CreatedDate")), action=str(r.get("Action")),
                       section=_s(r.get("Section")), display=_s(r.get("Display")),
                       created_by=_s(_rel(r, "CreatedBy.Name")), created_by_context=_s(r.get("CreatedByContext")),
                       created_by_issuer=_s(r.get("CreatedByIssuer")), delegate_user=_s(r.get("DelegateUser")),
                       responsible_namespace_prefix=_s(r.get("ResponsibleNamespacePrefix"))) for r in rows]
