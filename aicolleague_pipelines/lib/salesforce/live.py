"""Extract a live org's inventory, dependencies and audit trail through :class:`SalesforceClient`.

- :func:`extract_live_inventory` → :class:`OrgInventory` (components keyed ``Type:FullName``).
  A failure of one component type becomes an :class:`ExtractionFinding` and the rest goes on;
  authentication/connection failures (and every type failing) raise :class:`ExtractionError`.
- :func:`fetch_dependencies` → ``MetadataComponentDependency`` rows with canonical keys, through
  the Tooling API in id batches (the 2,000-row cap detected and split) or Bulk API 2.0.
- :func:`fetch_audit_trail` → ``SetupAuditTrail`` rows since a timestamp.

Permission sets / profiles carry their access in the SFDX ``metadata`` shape (ObjectPermissions,
FieldPermissions, SetupEntityAccess, PermissionSetTabSetting, ProfileLayout, ``Permissions*``
columns; REST, paged), reports their contents through the Analytics API (one request per report,
capped by ``report_describes``), bundles their source files; workflow rules / field updates,
value sets and tabs their ``Metadata``; custom metadata records come from one query per type.

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
from collections import Counter
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
DEFAULT_METADATA_TYPES = ("Flow", "ValidationRule", "Layout", "FlexiPage", "WorkflowRule", "GlobalValueSet",
                          "CustomTab", "CustomField")
#: Reports whose contents are read through ``analytics/reports/<id>/describe`` (1 request each).
DEFAULT_REPORT_DESCRIBES = 500
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


#: SOQL's quoted-string escapes (a raw line break inside quotes is an error, so it is escaped too).
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}
#: An API name that may stand in SOQL text unquoted (object, field, column): letters, digits,
#: underscores, starting with a letter — ``ns__Rate__mdt``, ``PermissionsViewAllData``.
_SOQL_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal, quotes included, every reserved character escaped.

    Names from the org (object and field names, ids) only ever reach SOQL through this or
    :func:`is_soql_identifier`; a quote, backslash or line break in a name stays data.
    """
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in str(value)) + "'"


def is_soql_identifier(name: str) -> bool:
    """Whether ``name`` can be written into SOQL unquoted (identifiers cannot be parameters)."""
    return isinstance(name, str) and _SOQL_IDENTIFIER.fullmatch(name) is not None


def _soql_list(values: Iterable[str]) -> str:
    return ", ".join(soql_quote(v) for v in values)


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
    report_describes: int | None = DEFAULT_REPORT_DESCRIBES,
) -> OrgInventory:
    """Read every supported component type of a live org into an :class:`OrgInventory`.

    ``report_describes``: at most this many reports (most recently run first) get their
    columns, filters and groupings through the Analytics API — one HTTP request per report;
    ``0`` skips report contents, ``None`` describes every report."""
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
        ("WorkflowRule", "tooling:WorkflowRule", _workflow_rules),
        ("WorkflowFieldUpdate", "tooling:WorkflowFieldUpdate", _workflow_field_updates),
        ("ApexPage", "tooling:ApexPage", _apex_pages),
        ("GlobalValueSet", "tooling:GlobalValueSet", _global_value_sets),
        ("CustomTab", "tooling:CustomTab", _custom_tabs),
        ("CustomMetadata", "rest:<Type>__mdt", _custom_metadata_records),
        ("RecordType", "rest:RecordType", _record_types),
        ("PermissionSet", "rest:PermissionSet", _permission_sets),
        ("Report", "rest:Report", lambda c: _reports(c, report_describes)),
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
        if describe and not is_soql_identifier(obj):  # it would be part of the describe URL
            ctx.finding(f"describe:{obj}", f"object {obj!r} has a name that is not a valid API name; not described",
                        "its fields come from FieldDefinition only", "warning")
        elif describe:
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
    if "CustomField" in ctx.metadata_types:
        _field_metadata(ctx, fdefs, custom)
    typed = {c.full_name for c in ctx.inv.components if c.type == "CustomField" and c.attributes.get("data_type")}
    hidden = [k for k in custom if k.split(".")[0] in described and k not in typed]
    if hidden:
        ctx.finding("describe", f"{len(hidden)} custom field(s) not visible to the integration user "
                    f"(e.g. {hidden[0]})", "grant field-level read access to see their types and formulas",
                    "warning")


def _field_metadata(ctx: _Ctx, fdefs: dict[str, dict[str, Any]], custom: dict[str, dict[str, Any]]) -> None:
    """What describe lacks — roll-up summary definitions, the global value set a picklist uses
    and the Shield Platform Encryption scheme of an encrypted field — from the ``Metadata`` of
    those custom fields (FieldDefinition ``DataType`` ``Roll-Up Summary (…)`` / ``Picklist…``,
    or describe ``encrypted`` on a field that is not Classic Encrypted Text), one composite
    subrequest each (25 per request)."""
    fields = {c.full_name: c for c in ctx.inv.components if c.type == "CustomField" and c.full_name in custom}
    wanted = {str(custom[k]["Id"]): k for k, fd in fdefs.items()
              if k in custom and str(fd.get("DataType") or "").startswith(("Roll-Up Summary", "Picklist"))}
    wanted.update({str(custom[k]["Id"]): k for k, c in fields.items()
                   if c.attributes.get("encrypted") and c.attributes.get("data_type") != "encryptedstring"})
    if not wanted:
        return
    metadata = _fetch_metadata(ctx, "CustomField", sorted(wanted))
    comps = {k: c for k, c in fields.items() if k in set(wanted.values())}
    for fid, md in metadata.items():
        comp = comps.get(wanted[fid])
        if comp is None or not isinstance(md, dict):
            continue
        a = comp.attributes
        if md.get("encryptionScheme") and md["encryptionScheme"] != "None":
            a["encryption_scheme"] = md["encryptionScheme"]
        vs = md.get("valueSet")
        if isinstance(vs, dict) and vs.get("valueSetName"):
            a["value_set"] = vs["valueSetName"]
        for attr, key in (("summarized_field", "summarizedField"), ("summary_foreign_key", "summaryForeignKey"),
                          ("summary_operation", "summaryOperation")):
            if md.get(key):
                a[attr] = md[key]
        items = [i for i in md.get("summaryFilterItems") or [] if isinstance(i, dict)]
        if items:
            a["summary_filter_items"] = [{k: _xml_text(v) for k, v in i.items() if v is not None} for i in items]


def _xml_text(v: Any) -> Any:
    """A Tooling JSON scalar as the Metadata API XML (and so the SFDX reader) writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    return v


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
            # describe flags Shield-encrypted fields; Classic encryption is its own type.
            "encrypted": bool(d.get("encrypted")) or d.get("type") == "encryptedstring",
            "default_value": _default_value(d),
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


def _fetch_records(ctx: _Ctx, tooling_type: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each id's full Tooling record (``FullName``, ``Metadata`` …), one row per id through
    composite (never a multi-row ``Metadata`` query). Unreadable ids → one warning finding."""
    if not ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    results = ctx.client.tooling_composite_get([f"sobjects/{tooling_type}/{i}" for i in ids],
                                               what=f"tooling:{tooling_type} (Metadata)")
    failed = []
    for i, res in zip(ids, results):
        if res["status"] == 200 and isinstance(res["body"], dict):
            out[i] = res["body"]
        else:
            failed.append(i)
    if failed:
        ctx.finding(f"tooling:{tooling_type}", f"Metadata not readable for {len(failed)} record(s) "
                    f"(e.g. {failed[0]})", "check the integration user's access to these components", "warning")
    return out


def _fetch_metadata(ctx: _Ctx, tooling_type: str, ids: list[str]) -> dict[str, Any]:
    """``Metadata`` of each id (see :func:`_fetch_records`)."""
    return {i: body.get("Metadata") for i, body in _fetch_records(ctx, tooling_type, ids).items()}


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


def _workflow_rules(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        f"SELECT Id, Name, TableEnumOrId, NamespacePrefix, ManageableState, {_AUDIT} FROM WorkflowRule",
        what="tooling:WorkflowRule")
    records = _fetch_records(ctx, "WorkflowRule", [str(r["Id"]) for r in rows]) \
        if "WorkflowRule" in ctx.metadata_types else {}
    for r in rows:
        obj = ctx.obj_name(r.get("TableEnumOrId")) or str(r.get("TableEnumOrId"))
        body = records.get(str(r["Id"])) or {}
        md = body.get("Metadata") if isinstance(body.get("Metadata"), dict) else None
        name = _ns_name(_s(r.get("NamespacePrefix")), str(r["Name"]))
        attrs: dict[str, Any] = {}
        active = None
        if md is not None:
            attrs = {"formula": _s(md.get("formula")), "criteria": list(md.get("criteriaItems") or []),
                     "boolean_filter": _s(md.get("booleanFilter")), "actions": list(md.get("actions") or []),
                     "trigger_type": md.get("triggerType"), "metadata": md}
            active = bool(md.get("active"))
        ctx.add(Component(type="WorkflowRule", full_name=f"{obj}.{name}", parent=component_key("CustomObject", obj),
                          active=active, status=None if active is None else "Active" if active else "Inactive",
                          description=_s((md or {}).get("description")), attributes=attrs,
                          **_common(r, "tooling:WorkflowRule")))


def _workflow_field_updates(ctx: _Ctx) -> None:
    # ``Name`` is the label: the API name is only in ``FullName`` (one row per id).
    rows = ctx.client.tooling_query_all(
        f"SELECT Id, Name, SourceTableEnumOrId, NamespacePrefix, ManageableState, {_AUDIT} FROM WorkflowFieldUpdate",
        what="tooling:WorkflowFieldUpdate")
    records = _fetch_records(ctx, "WorkflowFieldUpdate", [str(r["Id"]) for r in rows])
    for r in rows:
        body = records.get(str(r["Id"]))
        if not body or not body.get("FullName"):
            continue  # reported by _fetch_records
        obj = ctx.obj_name(r.get("SourceTableEnumOrId")) or str(body["FullName"]).partition(".")[0]
        md = body.get("Metadata") if isinstance(body.get("Metadata"), dict) else {}
        full = str(body["FullName"])
        attrs = {"field": md.get("field"), "formula": _s(md.get("formula")), "label": md.get("name") or r.get("Name"),
                 "operation": md.get("operation"), "literal_value": _s(md.get("literalValue")),
                 "lookup_value": _s(md.get("lookupValue")), "target_object": _s(md.get("targetObject")),
                 "metadata": md}
        ctx.add(Component(type="WorkflowFieldUpdate", full_name=full, parent=component_key("CustomObject", obj),
                          description=_s(md.get("description")), attributes=attrs,
                          **_common(r, "tooling:WorkflowFieldUpdate")))


def _apex_pages(ctx: _Ctx) -> None:
    for r in ctx.client.tooling_query_all(
            "SELECT Id, Name, NamespacePrefix, MasterLabel, ApiVersion, ControllerType, ControllerKey, Description, "
            f"Markup, IsAvailableInTouch, IsConfirmationTokenRequired, ManageableState, {_AUDIT} FROM ApexPage",
            what="tooling:ApexPage"):
        md = {"apiVersion": _s(r.get("ApiVersion")), "availableInTouch": _xml_text(r.get("IsAvailableInTouch")),
              "confirmationTokenRequired": _xml_text(r.get("IsConfirmationTokenRequired")),
              "description": _s(r.get("Description")), "label": r.get("MasterLabel")}
        ctx.add(Component(type="ApexPage", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["Name"])),
                          api_version=_s(r.get("ApiVersion")), description=_s(r.get("Description")),
                          attributes={"body": r.get("Markup"), "label": r.get("MasterLabel"),
                                      "controller_type": r.get("ControllerType"),
                                      "controller_key": r.get("ControllerKey"),
                                      "metadata": {k: v for k, v in md.items() if v is not None}},
                          **_common(r, "tooling:ApexPage")))


def _global_value_sets(ctx: _Ctx) -> None:
    rows = ctx.client.tooling_query_all(
        f"SELECT Id, DeveloperName, MasterLabel, NamespacePrefix, Description, ManageableState, {_AUDIT} "
        "FROM GlobalValueSet", what="tooling:GlobalValueSet")
    metadata = _fetch_metadata(ctx, "GlobalValueSet", [str(r["Id"]) for r in rows]) \
        if "GlobalValueSet" in ctx.metadata_types else {}
    for r in rows:
        attrs: dict[str, Any] = {"label": r.get("MasterLabel")}
        md = metadata.get(str(r["Id"]))
        if isinstance(md, dict):
            # Tooling names a value ``valueName``; the Metadata API (and SFDX files) ``fullName``.
            md = dict(md)
            md["customValue"] = [{("fullName" if k == "valueName" else k): v for k, v in cv.items()}
                                 for cv in md.get("customValue") or [] if isinstance(cv, dict)]
            attrs["metadata"] = md
        ctx.add(Component(type="GlobalValueSet", full_name=_ns_name(_s(r.get("NamespacePrefix")),
                                                                    str(r["DeveloperName"])),
                          description=_s(r.get("Description")), attributes=attrs,
                          **_common(r, "tooling:GlobalValueSet")))


def _custom_tabs(ctx: _Ctx) -> None:
    # DeveloperName of an object tab is the object without ``__c``: the name comes from FullName.
    rows = ctx.client.tooling_query_all(
        f"SELECT Id, DeveloperName, MasterLabel, NamespacePrefix, Type, Description, ManageableState, {_AUDIT} "
        "FROM CustomTab", what="tooling:CustomTab")
    records = _fetch_records(ctx, "CustomTab", [str(r["Id"]) for r in rows]) \
        if "CustomTab" in ctx.metadata_types else {}
    for r in rows:
        body = records.get(str(r["Id"])) or {}
        name = _s(body.get("FullName"))
        if not name:
            dev = _ns_name(_s(r.get("NamespacePrefix")), str(r["DeveloperName"]))
            name = f"{dev}__c" if r.get("Type") == "customObject" and not dev.endswith("__c") else dev
        attrs: dict[str, Any] = {"label": r.get("MasterLabel"), "tab_type": r.get("Type")}
        if isinstance(body.get("Metadata"), dict):
            attrs["metadata"] = body["Metadata"]
        ctx.add(Component(type="CustomTab", full_name=name, description=_s(r.get("Description")), attributes=attrs,
                          **_common(r, "tooling:CustomTab")))


def _custom_metadata_records(ctx: _Ctx) -> None:
    """Records of every custom metadata type: one REST query (paged) per ``__mdt`` type."""
    if not ctx.entity_by_id:
        _load_entities(ctx)
    types = sorted({v for v in ctx.entity_by_id.values() if v.endswith("__mdt")})
    fields_of: dict[str, list[str]] = {t: [] for t in types}
    for c in ctx.inv.components:
        if c.type == "CustomField" and c.full_name.endswith("__c"):
            obj = c.full_name.partition(".")[0]
            if obj in fields_of:
                fields_of[obj].append(c.full_name.partition(".")[2])
    failed: list[str] = []
    for t in types:
        # The type and its fields are written into the SOQL text (names cannot be parameters):
        # anything but a plain API name is refused, never interpolated.
        odd = [n for n in [t, *fields_of[t]] if not is_soql_identifier(n)]
        if not is_soql_identifier(t):
            ctx.finding(f"rest:{t}", f"custom metadata type {t!r} has a name that is not a valid API name; "
                        "its records were not read", "check the type's API name in Setup", "warning")
            continue
        if odd:
            ctx.finding(f"rest:{t}", f"fields {', '.join(repr(n) for n in odd)} of {t} have names that are not "
                        "valid API names; their values were not read", "check the fields' API names in Setup",
                        "warning")
        fields = sorted(set(fields_of[t]) - set(odd))
        try:
            rows = ctx.client.query_all(
                f"SELECT Id, DeveloperName, MasterLabel, NamespacePrefix{''.join(', ' + f for f in fields)} FROM {t}",
                what=f"rest:{t}")
        except (SalesforceAuthError, SalesforceUnavailableError):
            raise
        except ExtractionError as exc:
            failed.append(t)
            ctx.finding(f"rest:{t}", f"custom metadata records of {t} not read: {exc.problem}",
                        "grant the integration user read access to this type", "warning")
            continue
        type_name = t.removesuffix("__mdt")
        for r in rows:
            values = {f: _xml_text(r.get(f)) for f in fields if r.get(f) is not None}
            for f, v in list(values.items()):  # metadata relationships come back as durable ids
                if isinstance(v, str) and _ID_RE.match(v) and v[:3] == "01I":
                    values[f] = ctx.obj_name(v) or v
            md = {"label": r.get("MasterLabel"), "values": [{"field": f, "value": v} for f, v in values.items()]}
            ctx.add(Component(type="CustomMetadata",
                              full_name=f"{type_name}.{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                              parent=component_key("CustomObject", t), id=_s(r.get("Id")),
                              namespace=_s(r.get("NamespacePrefix")),
                              managed_state="installed" if r.get("NamespacePrefix") else None, source=f"rest:{t}",
                              attributes={"label": r.get("MasterLabel"), "object": t, "values": values,
                                          "metadata": md}))
    if types and len(failed) == len(types):
        raise ExtractionError(ctx.org.name, "rest:<Type>__mdt", "no custom metadata type could be queried",
                              "see the warnings above")


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


_OBJECT_PERMS = (("PermissionsRead", "allowRead"), ("PermissionsCreate", "allowCreate"),
                 ("PermissionsEdit", "allowEdit"), ("PermissionsDelete", "allowDelete"),
                 ("PermissionsViewAllRecords", "viewAllRecords"), ("PermissionsModifyAllRecords", "modifyAllRecords"))
#: User-permission columns per PermissionSet query (≈25 characters each: the URL stays short).
_USER_PERM_BATCH = 120


def _tf(v: Any) -> str:
    """A permission flag as the Metadata API XML (and so the SFDX reader) writes it."""
    return "true" if v is True or str(v).lower() == "true" else "false"


def _permission_sets(ctx: _Ctx) -> None:
    """Permission sets and profiles (a profile is the PermissionSet row it owns), and their access
    in the ``metadata`` shape of the SFDX files: user permissions (PermissionSet ``Permissions*``
    columns), ObjectPermissions, FieldPermissions, SetupEntityAccess (Apex classes and pages,
    custom metadata types / settings, custom permissions, flows), PermissionSetTabSetting and,
    for profiles, ProfileLayout. Each access query is paged (2,000 rows a page: an org with
    300,000 FieldPermissions rows costs 150 requests for them) and may fail on its own (a warning)."""
    user_perms = _user_permission_columns(ctx)
    first, rest = user_perms[:_USER_PERM_BATCH], user_perms[_USER_PERM_BATCH:]
    rows = ctx.client.query_all(
        "SELECT Id, Name, Label, NamespacePrefix, IsOwnedByProfile, ProfileId, Profile.Name, IsCustom, "
        f"Description, {_AUDIT}{''.join(', ' + c for c in first)} FROM PermissionSet", what="rest:PermissionSet")
    by_ps: dict[str, Component] = {}
    for r in rows:
        common = _common(r, "rest:PermissionSet")
        md: dict[str, Any] = {}
        if r.get("IsOwnedByProfile"):
            pname = _rel(r, "Profile.Name")
            if not pname:
                continue
            common["id"] = _s(r.get("ProfileId")) or common["id"]
            md["custom"] = _tf(r.get("IsCustom"))
            comp = Component(type="Profile", full_name=profile_full_name(str(pname)),
                             description=_s(r.get("Description")),
                             attributes={"label": str(pname), "permission_set_id": r.get("Id"),
                                         "custom": r.get("IsCustom"), "metadata": md}, **common)
        else:
            md["label"] = r.get("Label")
            comp = Component(type="PermissionSet", full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["Name"])),
                             description=_s(r.get("Description")),
                             attributes={"label": r.get("Label"), "custom": r.get("IsCustom"), "metadata": md},
                             **common)
        if comp.description:
            md["description"] = comp.description
        ctx.add(comp)
        by_ps[str(r["Id"])] = by_ps[str(r["Id"])[:15]] = comp
    if not by_ps:
        return
    _user_permissions(ctx, by_ps, rows, first)
    for i in range(0, len(rest), _USER_PERM_BATCH):
        cols = rest[i:i + _USER_PERM_BATCH]
        _optional(ctx, "rest:PermissionSet", "user permissions", lambda cols=cols: _user_permissions(
            ctx, by_ps, ctx.client.query_all(f"SELECT Id, {', '.join(cols)} FROM PermissionSet",
                                             what="rest:PermissionSet"), cols))
    _optional(ctx, "rest:ObjectPermissions", "object permissions", lambda: _object_permissions(ctx, by_ps))
    _optional(ctx, "rest:FieldPermissions", "field permissions", lambda: _field_permissions(ctx, by_ps))
    _optional(ctx, "rest:SetupEntityAccess", "class, page, custom permission and flow access",
              lambda: _setup_entity_access(ctx, by_ps))
    _optional(ctx, "rest:PermissionSetTabSetting", "tab settings", lambda: _tab_settings(ctx, by_ps))
    if any(c.type == "Profile" for c in by_ps.values()):
        _optional(ctx, "tooling:ProfileLayout", "profile layout assignments", lambda: _profile_layouts(ctx, by_ps))
    for comp in {id(c): c for c in by_ps.values()}.values():
        md = comp.attributes["metadata"]
        for key, sort_key in (("objectPermissions", "object"), ("fieldPermissions", "field"),
                              ("classAccesses", "apexClass"), ("pageAccesses", "apexPage"),
                              ("customPermissions", "name"), ("customMetadataTypeAccesses", "name"),
                              ("customSettingAccesses", "name"), ("flowAccesses", "flow"), ("tabSettings", "tab"),
                              ("tabVisibilities", "tab"), ("userPermissions", "name")):
            if key in md:
                md[key].sort(key=lambda d, k=sort_key: str(d.get(k)))


def _optional(ctx: _Ctx, location: str, what: str, fn: Callable[[], None],
              hint: str = "the components are listed without it; check the integration user's access "
                          "(View Setup and Configuration)") -> None:
    """Run one optional part of a step; its failure is a warning, never the step's failure."""
    try:
        fn()
    except (SalesforceAuthError, SalesforceUnavailableError):
        raise
    except ExtractionError as exc:
        ctx.finding(location, f"{what} not read: {exc.problem}", hint, "warning")


def _user_permission_columns(ctx: _Ctx) -> list[str]:
    """The org's ``Permissions*`` checkbox columns of PermissionSet (from describe: they vary by
    edition, licences and API version)."""
    try:
        fields = ctx.client.describe("PermissionSet").get("fields", [])
    except (SalesforceAuthError, SalesforceUnavailableError):
        raise
    except ExtractionError as exc:
        ctx.finding("describe:PermissionSet", f"user permissions not read: {exc.problem}",
                    "permission sets and profiles are listed without their user permissions", "warning")
        return []
    return sorted(str(f["name"]) for f in fields
                  if str(f.get("name", "")).startswith("Permissions") and f.get("type") == "boolean"
                  and is_soql_identifier(str(f["name"])))  # written into the SOQL text: plain names only


def _user_permissions(ctx: _Ctx, by_ps: dict[str, Component], rows: list[dict[str, Any]], cols: list[str]) -> None:
    for r in rows:
        comp = by_ps.get(str(r.get("Id")))
        if comp is None:
            continue
        perms = comp.attributes["metadata"].setdefault("userPermissions", [])
        perms += [{"enabled": "true", "name": c[len("Permissions"):]} for c in cols if r.get(c) is True]
        if not perms:
            del comp.attributes["metadata"]["userPermissions"]


def _object_permissions(ctx: _Ctx, by_ps: dict[str, Component]) -> None:
    for r in ctx.client.query_all(
            f"SELECT ParentId, SobjectType, {', '.join(c for c, _ in _OBJECT_PERMS)} FROM ObjectPermissions",
            what="rest:ObjectPermissions"):
        comp = by_ps.get(str(r.get("ParentId")))
        if comp is not None and r.get("SobjectType"):
            comp.attributes["metadata"].setdefault("objectPermissions", []).append(
                {"object": str(r["SobjectType"]), **{k: _tf(r.get(c)) for c, k in _OBJECT_PERMS}})


def _field_permissions(ctx: _Ctx, by_ps: dict[str, Component]) -> None:
    for r in ctx.client.query_all(
            "SELECT ParentId, SobjectType, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions",
            what="rest:FieldPermissions"):
        comp = by_ps.get(str(r.get("ParentId")))
        if comp is not None and r.get("Field"):
            comp.attributes["metadata"].setdefault("fieldPermissions", []).append(
                {"editable": _tf(r.get("PermissionsEdit")), "field": str(r["Field"]),
                 "readable": _tf(r.get("PermissionsRead"))})


def _setup_entity_access(ctx: _Ctx, by_ps: dict[str, Component]) -> None:
    rows = ctx.client.query_all("SELECT ParentId, SetupEntityId, SetupEntityType FROM SetupEntityAccess",
                                what="rest:SetupEntityAccess")
    names: dict[str, dict[str, str]] = {"ApexClass": {}, "ApexPage": {}, "FlowDefinition": {}}
    for c in ctx.inv.components:
        if c.type in ("ApexClass", "ApexPage") and c.id:
            names[c.type][c.id] = names[c.type][c.id[:15]] = c.full_name
        elif c.type == "Flow" and c.attributes.get("definition_id"):
            d = str(c.attributes["definition_id"])
            names["FlowDefinition"][d] = names["FlowDefinition"][d[:15]] = c.full_name
    if any(r.get("SetupEntityType") == "CustomPermission" for r in rows):
        names["CustomPermission"] = {}
        for r in ctx.client.query_all("SELECT Id, DeveloperName, NamespacePrefix FROM CustomPermission",
                                      what="rest:CustomPermission"):
            n = _ns_name(_s(r.get("NamespacePrefix")), str(r["DeveloperName"]))
            names["CustomPermission"][str(r["Id"])] = names["CustomPermission"][str(r["Id"])[:15]] = n
    unresolved: Counter[str] = Counter()
    for r in rows:
        comp = by_ps.get(str(r.get("ParentId")))
        etype, eid = str(r.get("SetupEntityType")), str(r.get("SetupEntityId"))
        if comp is None:
            continue
        md = comp.attributes["metadata"]
        if etype == "CustomEntityDefinition":
            obj = ctx.obj_name(eid)
            if not obj or _ID_RE.match(obj):
                unresolved[etype] += 1
                continue
            key = "customMetadataTypeAccesses" if obj.endswith("__mdt") else "customSettingAccesses"
            md.setdefault(key, []).append({"enabled": "true", "name": obj})
            continue
        if etype not in names:
            continue  # connected apps, apps (TabSet), … are not modelled
        name = names[etype].get(eid) or names[etype].get(eid[:15])
        if name is None:
            unresolved[etype] += 1
            continue
        key, attr = {"ApexClass": ("classAccesses", "apexClass"), "ApexPage": ("pageAccesses", "apexPage"),
                     "CustomPermission": ("customPermissions", "name"),
                     "FlowDefinition": ("flowAccesses", "flow")}[etype]
        md.setdefault(key, []).append({attr: name, "enabled": "true"})
    if unresolved:
        ctx.finding("rest:SetupEntityAccess", "access to components not in the inventory was skipped: " +
                    ", ".join(f"{n} {t}" for t, n in sorted(unresolved.items())),
                    "usually managed-package components hidden from the integration user", "info")


def _tab_settings(ctx: _Ctx, by_ps: dict[str, Component]) -> None:
    for r in ctx.client.query_all("SELECT ParentId, Name, Visibility FROM PermissionSetTabSetting",
                                  what="rest:PermissionSetTabSetting"):
        comp = by_ps.get(str(r.get("ParentId")))
        if comp is None or not r.get("Name"):
            continue
        vis = str(r.get("Visibility") or "")
        if comp.type == "Profile":
            comp.attributes["metadata"].setdefault("tabVisibilities", []).append({"tab": r["Name"], "visibility": vis})
        else:  # permission sets write Visible / Available (DefaultOn / DefaultOff here)
            vis = {"DefaultOn": "Visible", "DefaultOff": "Available"}.get(vis, vis)
            comp.attributes["metadata"].setdefault("tabSettings", []).append({"tab": r["Name"], "visibility": vis})


def _profile_layouts(ctx: _Ctx, by_ps: dict[str, Component]) -> None:
    profiles = {c.id: c for c in by_ps.values() if c.type == "Profile" and c.id}
    profiles.update({k[:15]: c for k, c in list(profiles.items()) if k})
    layouts = {c.id: c.full_name for c in ctx.inv.components if c.type == "Layout" and c.id}
    rtypes = {c.id: c.full_name for c in ctx.inv.components if c.type == "RecordType" and c.id}
    for r in ctx.client.tooling_query_all("SELECT Id, ProfileId, LayoutId, RecordTypeId FROM ProfileLayout",
                                          what="tooling:ProfileLayout"):
        comp = profiles.get(str(r.get("ProfileId"))) or profiles.get(str(r.get("ProfileId"))[:15])
        layout = layouts.get(str(r.get("LayoutId")))
        if comp is None or layout is None:
            continue
        la = {"layout": layout}
        if r.get("RecordTypeId") and rtypes.get(str(r["RecordTypeId"])):
            la["recordType"] = rtypes[str(r["RecordTypeId"])]
        comp.attributes["metadata"].setdefault("layoutAssignments", []).append(la)


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


def _reports(ctx: _Ctx, describes: int | None = DEFAULT_REPORT_DESCRIBES) -> None:
    rows = ctx.client.query_all(
        "SELECT Id, Name, DeveloperName, FolderName, OwnerId, NamespacePrefix, Format, Description, LastRunDate, "
        f"{_AUDIT} FROM Report", what="rest:Report")
    folders = _folders(ctx) if rows else {}
    comps: dict[str, Component] = {}
    for r in rows:
        folder = folders.get(str(r.get("OwnerId"))) or "unfiled$public"
        comp = Component(type="Report",
                         full_name=f"{folder}/{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                         description=_s(r.get("Description")),
                         attributes={"label": r.get("Name"), "folder_name": r.get("FolderName"),
                                     "format": r.get("Format"), "last_run_date": r.get("LastRunDate")},
                         **_common(r, "rest:Report"))
        ctx.add(comp)
        comps[str(r["Id"])] = comp
    # Contents: one Analytics API request per report, most recently run first, up to the cap.
    order = sorted(rows, key=lambda r: str(r.get("LastRunDate") or ""), reverse=True)
    wanted = order if describes is None else order[:max(0, describes)]
    if describes is not None and len(order) > len(wanted) and describes > 0:
        ctx.finding("analytics:reports", f"contents of {len(order) - len(wanted)} of {len(order)} reports not read "
                    f"(report_describes={describes})", "raise report_describes to read them (1 request each)", "info")
    failed: list[str] = []
    for r in wanted:
        rid = str(r["Id"])
        try:
            desc = ctx.client.call(f"analytics:reports/{rid}/describe",
                                   lambda sf, rid=rid: sf.restful(f"analytics/reports/{rid}/describe"))
        except (SalesforceAuthError, SalesforceUnavailableError):
            raise
        except ExtractionError:
            failed.append(comps[rid].full_name)
            continue
        md = report_metadata_from_describe(desc)
        if md:
            comps[rid].attributes["metadata"] = md
    if failed:
        ctx.finding("analytics:reports", f"contents of {len(failed)} report(s) not readable (e.g. {failed[0]})",
                    "the integration user needs access to the report folders (and Run Reports)", "warning")


def report_metadata_from_describe(desc: Any) -> dict[str, Any]:
    """``analytics/reports/<id>/describe`` → the report's Metadata API shape (as the SFDX reader
    yields it): ``reportType``, ``format``, ``columns [{field}]``, ``filter {criteriaItems
    [{column, operator, value}], booleanFilter}``, ``groupingsDown/Across [{field, …}]``,
    ``aggregates`` (custom summary formulas), ``crossFilters``, ``timeFrameFilter``."""
    rm = (desc or {}).get("reportMetadata") if isinstance(desc, dict) else None
    if not isinstance(rm, dict):
        return {}
    md: dict[str, Any] = {"name": rm.get("name")}
    rt = rm.get("reportType")
    md["reportType"] = rt.get("type") if isinstance(rt, dict) else rt
    fmt = str(rm.get("reportFormat") or "")
    md["format"] = fmt[:1] + fmt[1:].lower() if fmt else None
    md["columns"] = [{"field": c} for c in rm.get("detailColumns") or [] if isinstance(c, str)]
    criteria = [{"column": f.get("column"), "operator": f.get("operator"), "value": f.get("value")}
                for f in rm.get("reportFilters") or [] if isinstance(f, dict) and f.get("column")]
    if criteria:
        md["filter"] = {"criteriaItems": criteria}
        if rm.get("reportBooleanFilter"):
            md["filter"]["booleanFilter"] = rm["reportBooleanFilter"]
    for tag in ("groupingsDown", "groupingsAcross"):
        gs = [{"field": g.get("name"), "sortOrder": g.get("sortOrder"), "dateGranularity": g.get("dateGranularity")}
              for g in rm.get(tag) or [] if isinstance(g, dict) and g.get("name")]
        if gs:
            md[tag] = [{k: v for k, v in g.items() if v is not None} for g in gs]
    formulas = rm.get("customSummaryFormula")
    if isinstance(formulas, dict) and formulas:
        md["aggregates"] = [{"developerName": n, "calculatedFormula": f.get("formula"), "masterLabel": f.get("label")}
                            for n, f in formulas.items() if isinstance(f, dict)]
    cross = []
    for cf in rm.get("crossFilters") or []:
        if isinstance(cf, dict) and cf.get("relatedEntity"):
            cross.append({"operation": "with" if cf.get("includesObject", True) else "without",
                          "primaryTableColumn": cf.get("primaryEntityField"), "relatedTable": cf.get("relatedEntity"),
                          "relatedTableJoinColumn": cf.get("relatedEntityJoinField"),
                          "criteriaItems": [{"column": c.get("column"), "operator": c.get("operator"),
                                             "value": c.get("value")} for c in cf.get("criteriaItems") or []
                                            if isinstance(c, dict)]})
    if cross:
        md["crossFilters"] = cross
    sdf = rm.get("standardDateFilter")
    if isinstance(sdf, dict) and sdf.get("column"):
        md["timeFrameFilter"] = {"dateColumn": sdf.get("column"), "interval": sdf.get("durationValue")}
    return {k: v for k, v in md.items() if v not in (None, [], "")}


def _email_templates(ctx: _Ctx) -> None:
    rows = ctx.client.query_all(
        "SELECT Id, Name, DeveloperName, NamespacePrefix, FolderId, TemplateType, IsActive, Subject, Description, "
        f"Body, HtmlValue, Markup, RelatedEntityType, UiType, {_AUDIT} FROM EmailTemplate", what="rest:EmailTemplate")
    folders = _folders(ctx) if rows else {}
    for r in rows:
        folder = folders.get(str(r.get("FolderId"))) or "unfiled$public"
        ttype = str(r.get("TemplateType") or "text")
        # The .email file of a template: Visualforce markup, the HTML (html/custom/Lightning), or text.
        body = r.get("Markup") if ttype == "visualforce" else (r.get("HtmlValue") or r.get("Body"))
        md = {"available": _tf(r.get("IsActive")), "description": _s(r.get("Description")), "name": r.get("Name"),
              "subject": r.get("Subject"), "type": ttype, "uiType": r.get("UiType"),
              "relatedEntityType": _s(r.get("RelatedEntityType"))}
        ctx.add(Component(type="EmailTemplate",
                          full_name=f"{folder}/{_ns_name(_s(r.get('NamespacePrefix')), str(r['DeveloperName']))}",
                          active=bool(r.get("IsActive")), description=_s(r.get("Description")),
                          attributes={"label": r.get("Name"), "template_type": r.get("TemplateType"),
                                      "subject": r.get("Subject"), "body": body,
                                      "metadata": {k: v for k, v in md.items() if v is not None}},
                          **_common(r, "rest:EmailTemplate")))


#: AuraDefinition ``DefType`` → file name suffix in the bundle folder.
_AURA_SUFFIX = {"COMPONENT": ".cmp", "APPLICATION": ".app", "EVENT": ".evt", "INTERFACE": ".intf",
                "CONTROLLER": "Controller.js", "HELPER": "Helper.js", "RENDERER": "Renderer.js", "STYLE": ".css",
                "DOCUMENTATION": ".auradoc", "DESIGN": ".design", "SVG": ".svg", "TOKENS": ".tokens"}


def _bundles(ctx: _Ctx, type_: str, extra: str) -> None:
    comps: dict[str, Component] = {}
    for r in ctx.client.tooling_query_all(
            f"SELECT Id, DeveloperName, MasterLabel, NamespacePrefix, ApiVersion, Description, {extra}"
            f"ManageableState, {_AUDIT} FROM {type_}", what=f"tooling:{type_}"):
        attrs = {"label": r.get("MasterLabel")}
        if "IsExposed" in r:
            attrs["is_exposed"] = r.get("IsExposed")
        comp = Component(type=type_, full_name=_ns_name(_s(r.get("NamespacePrefix")), str(r["DeveloperName"])),
                         api_version=_s(r.get("ApiVersion")), description=_s(r.get("Description")),
                         attributes=attrs, **_common(r, f"tooling:{type_}"))
        ctx.add(comp)
        comps[str(r["Id"])] = comps[str(r["Id"])[:15]] = comp
    if comps:
        _optional(ctx, f"tooling:{type_}", "bundle source files", lambda: _bundle_files(ctx, type_, comps))


def _bundle_files(ctx: _Ctx, type_: str, comps: dict[str, Component]) -> None:
    """Source files of every bundle in one paged query (LightningComponentResource /
    AuraDefinition), as ``files`` (file name → text) like the SFDX reader."""
    if type_ == "LightningComponentBundle":
        rows = ctx.client.tooling_query_all("SELECT Id, LightningComponentBundleId, FilePath, Format, Source "
                                            "FROM LightningComponentResource", what="tooling:LightningComponentResource")
        for r in rows:
            comp = comps.get(str(r.get("LightningComponentBundleId")))
            if comp is not None and r.get("FilePath") and isinstance(r.get("Source"), str):
                name = str(r["FilePath"]).rsplit("/", 1)[-1]
                if not name.endswith(".js-meta.xml"):
                    comp.attributes.setdefault("files", {})[name] = r["Source"]
    else:
        rows = ctx.client.tooling_query_all("SELECT Id, AuraDefinitionBundleId, DefType, Format, Source "
                                            "FROM AuraDefinition", what="tooling:AuraDefinition")
        for r in rows:
            comp = comps.get(str(r.get("AuraDefinitionBundleId")))
            suffix = _AURA_SUFFIX.get(str(r.get("DefType")))
            if comp is not None and suffix and isinstance(r.get("Source"), str):
                comp.attributes.setdefault("files", {})[comp.full_name.split("__")[-1] + suffix] = r["Source"]


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
