"""Metadata rules: one positive and one negative case per rule on tiny hand-built orgs (the graph
is built for real with ``build_org_graph``), then every rule over the bundled acme-prod demo."""

from __future__ import annotations

from typing import Any

import pytest

from aicolleague_pipelines.lib.agents import rules_metadata as rm
from aicolleague_pipelines.lib.agents.model import SEVERITIES, Finding, RuleContext
from aicolleague_pipelines.lib.agents.rules_metadata import METADATA_RULES
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.model import Component, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

ORG = "tiny"
RULES = {r.id: r for r in METADATA_RULES}


# --- builders ------------------------------------------------------------------------------


def inventory(*comps: Component, api: str | None = "62.0") -> OrgInventory:
    return OrgInventory(ORG, "sfdx", api, "2026-11-20T00:00:00Z", list(comps))


def run(rule_id: str, *comps: Component, api: str | None = "62.0") -> list[Finding]:
    inv = inventory(*comps, api=api)
    ctx = RuleContext(ORG, inv, build_org_graph(inv), "2026-11-20", api)
    return list(RULES[rule_id].check(ctx))


def comps_of(findings: list[Finding]) -> set[str]:
    return {f.component for f in findings}


def obj(name: str, desc: str | None = "A business object.", kind: str | None = None) -> Component:
    custom = name.endswith("__c")
    return Component(
        "CustomObject",
        name,
        description=desc,
        source=f"objects/{name}/{name}.object-meta.xml",
        attributes={"custom": custom, "object_kind": kind or ("custom" if custom else "standard")},
    )


def fld(qual: str, desc: str | None = "What it holds.", **attrs: Any) -> Component:
    o, f = qual.split(".", 1)
    base = {"custom": f.endswith("__c"), "data_type": "Text", "label": f.removesuffix("__c").replace("_", " ")}
    return Component(
        "CustomField",
        qual,
        parent=f"CustomObject:{o}",
        description=desc,
        source=f"objects/{o}/fields/{f}.field-meta.xml",
        attributes={**base, **attrs},
    )


def flow(
    name: str,
    elements: dict | None = None,
    status: str = "Active",
    desc: str | None = "What the flow does.",
    process_type: str = "AutoLaunchedFlow",
    api: str = "62.0",
    start: dict | None = None,
    **attrs: Any,
) -> Component:
    md = {"processType": process_type, "status": status, "apiVersion": api, **(elements or {})}
    if start is not None:
        md["start"] = start
    a = {"label": name, "process_type": process_type, "metadata": md}
    if start and start.get("triggerType"):
        a.update(trigger_type=start["triggerType"], trigger_object=start.get("object"))
    a.update(attrs)
    return Component(
        "Flow",
        name,
        status=status,
        active=status == "Active",
        api_version=api,
        description=desc,
        source=f"flows/{name}.flow-meta.xml",
        attributes=a,
    )


def record_flow(name: str, sobject: str, ttype: str = "RecordAfterSave", **kw: Any) -> Component:
    start = {"object": sobject, "triggerType": ttype, "recordTriggerType": "CreateAndUpdate"}
    return flow(name, start=start, **kw)


def vr(qual: str, formula: str = "ISBLANK(Name)", active: bool = True, desc: str | None = "Policy X.") -> Component:
    o, n = qual.split(".", 1)
    return Component(
        "ValidationRule",
        qual,
        parent=f"CustomObject:{o}",
        status="Active" if active else "Inactive",
        active=active,
        description=desc,
        source=f"objects/{o}/validationRules/{n}.validationRule-meta.xml",
        attributes={"error_condition_formula": formula, "error_message": "No."},
    )


def perms(
    name: str,
    user: tuple[str, ...] = (),
    fields: tuple[tuple[str, bool, bool], ...] = (),
    objects: tuple[tuple[str, bool], ...] = (),
    desc: str | None = "For the billing team.",
    type_: str = "PermissionSet",
) -> Component:
    md = {
        "userPermissions": [{"enabled": "true", "name": p} for p in user],
        "fieldPermissions": [
            {"field": f, "readable": str(r).lower(), "editable": str(e).lower()} for f, r, e in fields
        ],
        "objectPermissions": [
            {"object": o, "allowRead": "true", "modifyAllRecords": str(m).lower(), "viewAllRecords": "false"}
            for o, m in objects
        ],
    }
    folder = "permissionsets" if type_ == "PermissionSet" else "profiles"
    return Component(type_, name, description=desc, source=f"{folder}/{name}", attributes={"metadata": md})


def trigger(name: str, sobject: str) -> Component:
    return Component(
        "ApexTrigger",
        name,
        status="Active",
        active=True,
        source=f"triggers/{name}.trigger",
        attributes={"object": sobject, "events": ["before insert"], "body": f"trigger {name} on {sobject} (before insert) {{ }}"},
    )


def apex(name: str, body: str) -> Component:
    return Component("ApexClass", name, status="Active", active=True, source=f"classes/{name}.cls", attributes={"body": body})


def layout(sobject: str, fields: list[str], name: str | None = None) -> Component:
    items = [{"field": f, "behavior": "Edit"} for f in fields]
    return Component(
        "Layout",
        name or f"{sobject}-{sobject} Layout",
        source=f"layouts/{name or sobject}.layout-meta.xml",
        attributes={"object": sobject, "metadata": {"layoutSections": [{"layoutColumns": [{"layoutItems": items}]}]}},
    )


def workflow_rule(qual: str, active: bool = True, formula: str = "Paid__c") -> Component:
    o = qual.split(".", 1)[0]
    return Component(
        "WorkflowRule",
        qual,
        parent=f"CustomObject:{o}",
        status="Active" if active else "Inactive",
        active=active,
        source=f"workflows/{o}.workflow-meta.xml",
        attributes={"formula": formula, "criteria": [], "actions": [{"name": "Stamp", "type": "FieldUpdate"}]},
    )


# --- the rule set --------------------------------------------------------------------------


def test_rule_set_is_well_formed() -> None:
    assert len(METADATA_RULES) >= 20
    assert len(RULES) == len(METADATA_RULES), "rule ids must be unique"
    for r in METADATA_RULES:
        assert r.severity in SEVERITIES, r.id
        assert r.title and r.description and r.source and r.category, r.id
        assert callable(r.check)


# --- descriptions --------------------------------------------------------------------------


def test_field_no_description() -> None:
    found = run("META-FIELD-NO-DESCRIPTION", obj("Thing__c"), fld("Thing__c.Bare__c", desc=None))
    assert comps_of(found) == {"CustomField:Thing__c.Bare__c"}
    assert found[0].evidence.endswith("Bare__c.field-meta.xml") and found[0].category == "maintainability"


def test_field_no_description_negative() -> None:
    managed = fld("Thing__c.ns__Pkg__c", desc=None)
    managed.namespace = "ns"
    found = run(
        "META-FIELD-NO-DESCRIPTION",
        obj("Account"),
        obj("Thing__c"),
        fld("Thing__c.Documented__c"),
        fld("Account.Industry", desc=None, custom=False),  # standard field
        managed,
    )
    assert found == []


def test_object_no_description() -> None:
    found = run("META-OBJECT-NO-DESCRIPTION", obj("Thing__c", desc=None), obj("Account", desc=None))
    assert comps_of(found) == {"CustomObject:Thing__c"}


def test_object_no_description_negative() -> None:
    assert run("META-OBJECT-NO-DESCRIPTION", obj("Thing__c"), obj("Cfg__mdt", desc=None, kind="custom_metadata")) == []


def test_flow_no_description() -> None:
    found = run("FLOW-NO-DESCRIPTION", flow("Bare", desc=None), flow("Documented"))
    assert comps_of(found) == {"Flow:Bare"}


def test_flow_no_description_negative() -> None:
    assert run("FLOW-NO-DESCRIPTION", flow("Documented"), flow("Also", desc="Does things.")) == []


def test_vr_no_description() -> None:
    found = run("META-VR-NO-DESCRIPTION", obj("Account"), vr("Account.Bare", desc=None), vr("Account.Ok"))
    assert comps_of(found) == {"ValidationRule:Account.Bare"}
    assert found[0].severity == "info"


def test_vr_no_description_negative() -> None:
    assert run("META-VR-NO-DESCRIPTION", obj("Account"), vr("Account.Ok")) == []


def test_permset_no_description() -> None:
    found = run(
        "SEC-PERMSET-NO-DESCRIPTION",
        perms("Plain", desc=None),
        perms("Powerful", user=("ModifyAllData",), desc=None),
    )
    sev = {f.component: f.severity for f in found}
    assert sev == {"PermissionSet:Plain": "low", "PermissionSet:Powerful": "medium"}


def test_permset_no_description_negative() -> None:
    assert run("SEC-PERMSET-NO-DESCRIPTION", perms("Described"), perms("Profile X", desc=None, type_="Profile")) == []


# --- unused --------------------------------------------------------------------------------


def test_field_unused() -> None:
    found = run(
        "META-FIELD-UNUSED",
        obj("Thing__c"),
        fld("Thing__c.Orphan__c"),
        fld("Thing__c.OnLayout__c"),
        fld("Thing__c.DraftOnly__c"),
        fld("Thing__c.Read__c"),
        fld("Thing__c.Display__c", formula="Read__c & 'x'"),  # formula shown on the layout
        layout("Thing__c", ["OnLayout__c", "Display__c", "DraftOnly__c"]),
        flow(
            "Wizard",
            status="Draft",
            process_type="Flow",
            elements={"recordCreates": [{"name": "Create", "object": "Thing__c",
                                         "inputAssignments": [{"field": "DraftOnly__c", "value": {"booleanValue": "true"}}]}]},
        ),
    )
    by = {f.component: f for f in found}
    assert set(by) == {"CustomField:Thing__c.Orphan__c", "CustomField:Thing__c.OnLayout__c", "CustomField:Thing__c.DraftOnly__c"}
    assert by["CustomField:Thing__c.Orphan__c"].severity == "medium"
    assert by["CustomField:Thing__c.OnLayout__c"].severity == "low"
    assert "inactive Flow:Wizard" in by["CustomField:Thing__c.DraftOnly__c"].message


def test_field_unused_negative() -> None:
    found = run(
        "META-FIELD-UNUSED",
        obj("Thing__c"),
        obj("Account"),
        fld("Thing__c.Queried__c"),
        fld("Thing__c.Parent__c", data_type="MasterDetail", reference_to=["Account"]),
        fld("Account.Industry", custom=False),
        apex("ThingService", "public with sharing class ThingService {\n"
             "  public static List<Thing__c> all() { return [SELECT Queried__c FROM Thing__c]; }\n}"),
    )
    assert found == []


def test_flow_unused() -> None:
    found = run("FLOW-UNUSED", flow("Lonely"), flow("Screen", process_type="Flow"))
    assert comps_of(found) == {"Flow:Lonely"}


def test_flow_unused_negative() -> None:
    found = run(
        "FLOW-UNUSED",
        obj("Account"),
        flow("Sub"),
        flow("Caller", process_type="Flow", elements={"subflows": [{"name": "Call", "flowName": "Sub"}]}),
        record_flow("OnSave", "Account"),
        flow("Draft_Sub", status="Draft"),  # inactive: FLOW-INACTIVE's business
    )
    assert found == []


def test_flow_inactive() -> None:
    found = run("FLOW-INACTIVE", flow("Old", status="Obsolete"), flow("Wip", status="Draft"), flow("Live"))
    assert {(f.component, f.extra["status"]) for f in found} == {("Flow:Old", "Obsolete"), ("Flow:Wip", "Draft")}


def test_flow_inactive_negative() -> None:
    assert run("FLOW-INACTIVE", flow("Live")) == []


def test_flow_too_many_versions() -> None:
    versions = [{"version_number": i, "status": "Obsolete", "id": f"301{i:012d}"} for i in range(1, 12)]
    versions.append({"version_number": 12, "status": "Active", "id": "301000000000012"})
    found = run("FLOW-TOO-MANY-VERSIONS", flow("Busy", versions=versions))
    assert comps_of(found) == {"Flow:Busy"} and "12 versions" in found[0].message


def test_flow_too_many_versions_negative() -> None:
    versions = [{"version_number": i, "status": "Obsolete"} for i in range(1, 4)]
    assert run("FLOW-TOO-MANY-VERSIONS", flow("Calm", versions=versions), flow("NoInfo")) == []


# --- flow runtime --------------------------------------------------------------------------


def test_flow_missing_fault_path() -> None:
    elements = {
        "recordUpdates": [{"name": "Upd", "object": "Account", "connector": {"targetReference": "Act"}}],
        "actionCalls": [{"name": "Act", "actionName": "emailSimple", "actionType": "emailSimple"}],
    }
    found = run("FLOW-MISSING-FAULT-PATH", obj("Account"), record_flow("Sync", "Account", elements=elements))
    assert sorted(f.discriminator for f in found) == ["actionCalls:Act", "recordUpdates:Upd"]
    assert {f.evidence for f in found} == {
        "flows/Sync.flow-meta.xml (recordUpdates:Upd)",
        "flows/Sync.flow-meta.xml (actionCalls:Act)",
    }
    assert all(f.component == "Flow:Sync" and f.severity == "medium" for f in found)


def test_flow_missing_fault_path_negative() -> None:
    handled = {
        "recordCreates": [
            {"name": "Create", "object": "Account", "faultConnector": {"targetReference": "Log"}},
            {"name": "Log", "object": "Log__c"},  # the fault handler itself
        ],
    }
    unhandled = {"recordDeletes": [{"name": "Del", "object": "Account"}]}
    found = run(
        "FLOW-MISSING-FAULT-PATH",
        obj("Account"),
        flow("Handled", elements=handled),
        flow("Draft", elements=unhandled, status="Draft"),
        record_flow("BeforeSave", "Account", ttype="RecordBeforeSave", elements=unhandled),
    )
    assert found == []


def _loop_flow(name: str, body_type: str, after_type: str) -> Component:
    elements: dict[str, Any] = {
        "loops": [{"name": "Each", "collectionReference": "items",
                   "nextValueConnector": {"targetReference": "Check"},
                   "noMoreValuesConnector": {"targetReference": "After"}}],
        "decisions": [{"name": "Check", "defaultConnector": {"targetReference": "Each"},
                       "rules": [{"name": "Yes", "connector": {"targetReference": "Inner"}}]}],
    }
    elements.setdefault(body_type, []).append(
        {"name": "Inner", "object": "Account", "connector": {"targetReference": "Each"},
         "faultConnector": {"targetReference": "Each"}})
    elements.setdefault(after_type, []).append({"name": "After", "object": "Account",
                                                "faultConnector": {"targetReference": "Each"}})
    return flow(name, elements=elements)


def test_flow_dml_in_loop() -> None:
    found = run("FLOW-DML-IN-LOOP", obj("Account"), _loop_flow("Looper", "recordUpdates", "recordCreates"))
    assert [(f.component, f.discriminator, f.extra["loop"]) for f in found] == [("Flow:Looper", "recordUpdates:Inner", "Each")]


def test_flow_dml_in_loop_negative() -> None:
    # DML only after the loop; the element in the loop body is an assignment-free lookup
    found = run("FLOW-DML-IN-LOOP", obj("Account"), _loop_flow("Fine", "recordLookups", "recordUpdates"))
    assert found == []


def test_flow_query_in_loop() -> None:
    found = run("FLOW-QUERY-IN-LOOP", obj("Account"), _loop_flow("Looper", "recordLookups", "recordUpdates"))
    assert [f.discriminator for f in found] == ["recordLookups:Inner"] and found[0].severity == "high"


def test_flow_query_in_loop_negative() -> None:
    found = run("FLOW-QUERY-IN-LOOP", obj("Account"), _loop_flow("Fine", "recordUpdates", "recordLookups"))
    assert found == []


# --- automation overlap --------------------------------------------------------------------


def test_flow_and_trigger_same_object() -> None:
    found = run("AUTOMATION-FLOW-AND-TRIGGER", obj("Account"), trigger("AccountTrigger", "Account"),
                record_flow("Account_Sync", "Account"))
    assert comps_of(found) == {"CustomObject:Account"}
    assert found[0].extra == {"triggers": ["ApexTrigger:AccountTrigger"], "flows": ["Flow:Account_Sync"]}


def test_flow_and_trigger_same_object_negative() -> None:
    found = run(
        "AUTOMATION-FLOW-AND-TRIGGER",
        obj("Account"),
        obj("Contact"),
        trigger("AccountTrigger", "Account"),
        record_flow("Contact_Sync", "Contact"),
        record_flow("Old_Account_Sync", "Account", status="Obsolete"),
    )
    assert found == []


def test_multiple_record_triggered_flows() -> None:
    found = run("FLOW-MULTIPLE-RECORD-TRIGGERED", obj("Account"), record_flow("A1", "Account"), record_flow("A2", "Account"))
    assert [(f.component, f.discriminator) for f in found] == [("CustomObject:Account", "RecordAfterSave")]


def test_multiple_record_triggered_flows_negative() -> None:
    found = run(
        "FLOW-MULTIPLE-RECORD-TRIGGERED",
        obj("Account"),
        record_flow("After", "Account"),
        record_flow("Before", "Account", ttype="RecordBeforeSave"),
        record_flow("Retired", "Account", status="Obsolete"),
    )
    assert found == []


def test_workflow_rule() -> None:
    found = run("AUTOMATION-WORKFLOW-RULE", obj("Invoice__c"), fld("Invoice__c.Paid__c", data_type="Checkbox"),
                workflow_rule("Invoice__c.Live"), workflow_rule("Invoice__c.Off", active=False))
    assert {f.component: f.severity for f in found} == {
        "WorkflowRule:Invoice__c.Live": "medium",
        "WorkflowRule:Invoice__c.Off": "low",
    }


def test_workflow_rule_negative() -> None:
    assert run("AUTOMATION-WORKFLOW-RULE", obj("Invoice__c"), record_flow("Invoice_Flow", "Invoice__c")) == []


def test_process_builder() -> None:
    found = run("AUTOMATION-PROCESS-BUILDER", flow("Old_Process", process_type="Workflow"),
                flow("Retired_Process", process_type="Workflow", status="Obsolete"))
    assert {f.component: f.severity for f in found} == {"Flow:Old_Process": "medium", "Flow:Retired_Process": "low"}


def test_process_builder_negative() -> None:
    assert run("AUTOMATION-PROCESS-BUILDER", flow("Modern"), flow("Screen", process_type="Flow")) == []


def test_legacy_and_modern_automation() -> None:
    found = run("AUTOMATION-LEGACY-AND-MODERN", obj("Invoice__c"), fld("Invoice__c.Paid__c", data_type="Checkbox"),
                workflow_rule("Invoice__c.Stamp"), record_flow("Invoice_Notify", "Invoice__c"))
    assert comps_of(found) == {"CustomObject:Invoice__c"}
    assert found[0].extra["legacy"] == ["WorkflowRule:Invoice__c.Stamp"]
    assert found[0].extra["modern"] == ["Flow:Invoice_Notify"]


def test_legacy_and_modern_automation_negative() -> None:
    found = run(
        "AUTOMATION-LEGACY-AND-MODERN",
        obj("Invoice__c"),
        obj("Account"),
        fld("Invoice__c.Paid__c", data_type="Checkbox"),
        workflow_rule("Invoice__c.Stamp"),
        record_flow("Account_Notify", "Account"),
        record_flow("Invoice_Old", "Invoice__c", status="Obsolete"),
    )
    assert found == []


def test_flow_old_api_version() -> None:
    found = run("FLOW-OLD-API-VERSION", flow("Ancient", api="49.0"), flow("Recent", api="59.0"))
    assert comps_of(found) == {"Flow:Ancient"} and "49.0" in found[0].message


def test_flow_old_api_version_negative() -> None:
    assert run("FLOW-OLD-API-VERSION", flow("Recent", api="60.0")) == []
    assert run("FLOW-OLD-API-VERSION", flow("Ancient", api="49.0"), api=None) == []  # org version unknown


# --- hard-coded values ---------------------------------------------------------------------


def test_hardcoded_ids() -> None:
    owner = {"assignments": [{"name": "Set_Owner", "assignmentItems": [
        {"assignToReference": "rec.OwnerId", "operator": "Assign", "value": {"stringValue": "0055e000004XyZaAAK"}}]}]}
    found = run(
        "META-HARDCODED-ID",
        obj("Account"),
        flow("Assign", elements=owner),
        vr("Account.Only_For_Queue", formula="OwnerId <> '00G5e000000AbCd'"),
        fld("Account.Default_Rt__c", formula="IF(RecordTypeId = \"0125e000000XyZ1AAA\", 1, 0)", data_type="Number"),
    )
    assert {(f.component, f.discriminator) for f in found} == {
        ("Flow:Assign", "0055e000004XyZaAAK"),
        ("ValidationRule:Account.Only_For_Queue", "00G5e000000AbCd"),
        ("CustomField:Account.Default_Rt__c", "0125e000000XyZ1AAA"),
    }
    assert all(f.severity == "high" for f in found)


def test_hardcoded_ids_negative() -> None:
    found = run(
        "META-HARDCODED-ID",
        obj("Account"),
        flow("Clean", elements={"decisions": [{"name": "Won", "rules": [{"name": "R", "conditions": [
            {"leftValueReference": "$Record.StageName", "operator": "EqualTo",
             "rightValue": {"stringValue": "Closed Won"}}]}]}]}),
        vr("Account.Tax", formula='NOT(REGEX(Tax_Id__c, "[0-9]{2}-[0-9]{7}"))'),
        fld("Account.Label__c", formula='"Acme_Sales_Process_2024"'),
    )
    assert found == []


def test_vr_user_or_profile() -> None:
    found = run(
        "META-VR-HARDCODED-USER-OR-PROFILE",
        obj("Account"),
        vr("Account.By_Profile", formula='AND(Discount__c > 0.2, $Profile.Name <> "System Administrator")'),
        vr("Account.By_User", formula='AND(ISBLANK(Tax_Id__c), $User.Username <> "integration@globex.example")'),
        vr("Account.Off", formula='$Profile.Name <> "Sales"', active=False),
    )
    by = {f.component: f for f in found}
    assert by["ValidationRule:Account.By_Profile"].extra["matches"] == ["$Profile.Name"]
    assert "\"integration@globex.example\"" in by["ValidationRule:Account.By_User"].extra["matches"]
    assert by["ValidationRule:Account.Off"].severity == "low"


def test_vr_user_or_profile_negative() -> None:
    found = run(
        "META-VR-HARDCODED-USER-OR-PROFILE",
        obj("Case"),
        vr("Case.Dept", formula='$User.Department <> "Support Management"'),
        vr("Case.Perm", formula="AND(ISBLANK(Subject), NOT($Permission.Bypass_Validation))"),
    )
    assert found == []


# --- data model ----------------------------------------------------------------------------


def test_object_too_many_fields() -> None:
    fields = [fld(f"Wide__c.F{i}__c") for i in range(31)]
    found = run("META-OBJECT-TOO-MANY-FIELDS", obj("Wide__c"), *fields)
    assert comps_of(found) == {"CustomObject:Wide__c"}
    assert found[0].extra == {"field_count": 31, "threshold": 30}


def test_object_too_many_fields_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = [fld(f"Narrow__c.F{i}__c") for i in range(30)]
    standard = [fld(f"Account.F{i}__c") for i in range(31)]  # standard objects: threshold 100
    assert run("META-OBJECT-TOO-MANY-FIELDS", obj("Narrow__c"), obj("Account"), *narrow, *standard) == []
    monkeypatch.setitem(rm.THRESHOLDS, "standard_object_fields", 20)
    assert comps_of(run("META-OBJECT-TOO-MANY-FIELDS", obj("Account"), *standard)) == {"CustomObject:Account"}


def test_object_too_many_validation_rules() -> None:
    rules = [vr(f"Account.R{i}") for i in range(11)]
    found = run("META-OBJECT-TOO-MANY-VALIDATION-RULES", obj("Account"), *rules)
    assert comps_of(found) == {"CustomObject:Account"} and found[0].extra["count"] == 11


def test_object_too_many_validation_rules_negative() -> None:
    rules = [vr(f"Account.R{i}") for i in range(10)] + [vr(f"Account.Off{i}", active=False) for i in range(3)]
    assert run("META-OBJECT-TOO-MANY-VALIDATION-RULES", obj("Account"), *rules) == []


def test_object_too_many_layouts() -> None:
    layouts = [layout("Account", [], name=f"Account-L{i}") for i in range(6)]
    found = run("META-OBJECT-TOO-MANY-LAYOUTS", obj("Account"), *layouts)
    assert comps_of(found) == {"CustomObject:Account"} and found[0].extra["count"] == 6


def test_object_too_many_layouts_negative() -> None:
    layouts = [layout("Account", [], name=f"Account-L{i}") for i in range(5)]
    assert run("META-OBJECT-TOO-MANY-LAYOUTS", obj("Account"), *layouts) == []


def test_vr_inactive() -> None:
    found = run("META-VR-INACTIVE", obj("Case"), vr("Case.Off", active=False), vr("Case.On"))
    assert comps_of(found) == {"ValidationRule:Case.Off"}


def test_vr_inactive_negative() -> None:
    assert run("META-VR-INACTIVE", obj("Case"), vr("Case.On")) == []


def test_formula_external_package_reference() -> None:
    found = run(
        "META-FORMULA-EXTERNAL-PACKAGE-REFERENCE",
        obj("Contact"),
        fld("Contact.Pref__c", formula='IF(ISPICKVAL(npe01__Preferred_Email__c, "Personal"), Email, "")'),
    )
    assert [(f.component, f.extra["package"]) for f in found] == [("CustomField:Contact.Pref__c", "npe01")]
    assert found[0].discriminator == "CustomField:Contact.npe01__Preferred_Email__c"


def test_formula_external_package_reference_negative() -> None:
    found = run(
        "META-FORMULA-EXTERNAL-PACKAGE-REFERENCE",
        obj("Contact"),
        fld("Contact.Own__c"),
        fld("Contact.Display__c", formula="Own__c & Account.Name & Email"),  # standard fields are external too
    )
    assert found == []


def test_lookup_delete_constraint() -> None:
    found = run(
        "META-LOOKUP-DELETE-CONSTRAINT",
        obj("Account"),
        obj("Thing__c"),
        obj("Other__c"),
        fld("Thing__c.Account__c", data_type="Lookup", reference_to=["Account"], delete_constraint="Cascade"),
        fld("Thing__c.Other__c", data_type="Lookup", reference_to=["Other__c"], delete_constraint=None),
    )
    assert {(f.component, f.severity, f.discriminator) for f in found} == {
        ("CustomField:Thing__c.Account__c", "high", "cascade"),
        ("CustomField:Thing__c.Other__c", "low", "missing"),
    }


def test_lookup_delete_constraint_negative() -> None:
    found = run(
        "META-LOOKUP-DELETE-CONSTRAINT",
        obj("Account"),
        obj("Thing__c"),
        fld("Thing__c.Account__c", data_type="Lookup", reference_to=["Account"], delete_constraint="Restrict"),
        fld("Thing__c.Owner__c", data_type="Lookup", reference_to=["User"], delete_constraint=None),
        fld("Thing__c.Live__c", data_type="Lookup", reference_to=["Account"]),  # live extraction: unknown
    )
    assert found == []


# --- permissions ---------------------------------------------------------------------------


def test_modify_all_data() -> None:
    found = run("SEC-MODIFY-ALL-DATA", perms("Integration", user=("ApiEnabled", "ModifyAllData")))
    assert [(f.component, f.severity, f.discriminator) for f in found] == [
        ("PermissionSet:Integration", "critical", "ModifyAllData")
    ]


def test_modify_all_data_negative() -> None:
    found = run(
        "SEC-MODIFY-ALL-DATA",
        perms("Admin", user=("ModifyAllData",), type_="Profile"),  # System Administrator: by design
        perms("Api", user=("ApiEnabled",)),
    )
    assert found == []


def test_view_all_data() -> None:
    found = run("SEC-VIEW-ALL-DATA", perms("Support Agent", user=("ViewAllData",), type_="Profile"))
    assert comps_of(found) == {"Profile:Support Agent"} and found[0].severity == "high"


def test_view_all_data_negative() -> None:
    disabled = perms("Off")
    disabled.attributes["metadata"]["userPermissions"] = [{"enabled": "false", "name": "ViewAllData"}]
    assert run("SEC-VIEW-ALL-DATA", disabled, perms("Admin", user=("ViewAllData",), type_="Profile")) == []


def test_admin_permissions() -> None:
    found = run("SEC-ADMIN-PERMISSION", perms("Dev", user=("AuthorApex", "CustomizeApplication", "ModifyAllData")))
    assert {(f.discriminator, f.severity) for f in found} == {("AuthorApex", "high"), ("CustomizeApplication", "medium")}


def test_admin_permissions_negative() -> None:
    assert run("SEC-ADMIN-PERMISSION", perms("Api", user=("ApiEnabled", "ViewSetup"))) == []


def test_object_modify_all() -> None:
    found = run("SEC-OBJECT-MODIFY-ALL", obj("Account"), perms("Steward", objects=(("Account", True), ("Contact", False))))
    assert [(f.component, f.discriminator) for f in found] == [("PermissionSet:Steward", "Account")]


def test_object_modify_all_negative() -> None:
    assert run("SEC-OBJECT-MODIFY-ALL", obj("Account"), perms("Reader", objects=(("Account", False),))) == []


# --- personal data -------------------------------------------------------------------------


def test_sensitive_kind_patterns() -> None:
    assert rm.sensitive_kind("Contact", "SSN__c") == "social security number"
    assert rm.sensitive_kind("Contact", "Date_of_Birth__c") == "date of birth"
    assert rm.sensitive_kind("Contact", "HomePhone") == "personal contact details"
    assert rm.sensitive_kind("Contact", "Tax_Id__c") == "tax identifier"
    assert rm.sensitive_kind("Account", "Tax_Id__c") is None  # a company's EIN
    assert rm.sensitive_kind("Invoice__c", "Card_Last4__c") == "payment card data"
    assert rm.sensitive_kind("Account", "Health_Score__c") is None
    assert rm.sensitive_kind("Contact", "Billing_Email__c") is None


def test_pii_unclassified() -> None:
    found = run(
        "SEC-PII-UNCLASSIFIED",
        obj("Contact"),
        obj("Invoice__c"),
        fld("Contact.Passport_Number__c"),
        fld("Contact.Tax_Id__c"),
        fld("Invoice__c.Card_Last4__c"),
    )
    assert comps_of(found) == {
        "CustomField:Contact.Passport_Number__c",
        "CustomField:Contact.Tax_Id__c",
        "CustomField:Invoice__c.Card_Last4__c",
    }


def test_pii_unclassified_negative() -> None:
    found = run(
        "SEC-PII-UNCLASSIFIED",
        obj("Contact"),
        obj("Account"),
        fld("Contact.SSN__c", compliance_group="PII;GDPR", security_classification="Restricted"),
        fld("Contact.Birth_Place__c", security_classification="Confidential"),
        fld("Account.Tax_Id__c"),
        fld("Contact.Favourite_Colour__c"),
    )
    assert found == []


def test_classified_not_encrypted() -> None:
    found = run("SEC-CLASSIFIED-NOT-ENCRYPTED", obj("Contact"),
                fld("Contact.Date_of_Birth__c", data_type="Date", compliance_group="PII", security_classification="Confidential"))
    assert comps_of(found) == {"CustomField:Contact.Date_of_Birth__c"} and found[0].extra["classification"] == "Confidential"


def test_classified_not_encrypted_negative() -> None:
    found = run(
        "SEC-CLASSIFIED-NOT-ENCRYPTED",
        obj("Contact"),
        fld("Contact.SSN__c", data_type="EncryptedText", security_classification="Restricted", encrypted=True),
        fld("Contact.Passport__c", security_classification="Restricted", encrypted=True),  # Shield
        fld("Contact.Nickname__c", security_classification="Internal"),
    )
    assert found == []


def test_sensitive_field_with_view_all_data() -> None:
    found = run(
        "SEC-SENSITIVE-FIELD-VIEW-ALL-DATA",
        obj("Contact"),
        fld("Contact.SSN__c", compliance_group="PII"),
        fld("Contact.Personal_Email__c", data_type="Email"),
        fld("Contact.Nickname__c"),
        perms("Super", user=("ViewAllData",), fields=(("Contact.SSN__c", True, True),
                                                      ("Contact.Personal_Email__c", True, False),
                                                      ("Contact.Nickname__c", True, True))),
    )
    assert {(f.component, f.discriminator, f.extra["access"]) for f in found} == {
        ("PermissionSet:Super", "CustomField:Contact.SSN__c", "edit"),
        ("PermissionSet:Super", "CustomField:Contact.Personal_Email__c", "read"),
    }


def test_sensitive_field_with_view_all_data_negative() -> None:
    found = run(
        "SEC-SENSITIVE-FIELD-VIEW-ALL-DATA",
        obj("Contact"),
        fld("Contact.SSN__c", compliance_group="PII"),
        perms("Billing", fields=(("Contact.SSN__c", True, False),)),  # FLS without all-data power
        perms("Super", user=("ViewAllData",), fields=(("Contact.SSN__c", False, False),)),
    )
    assert found == []


def _template(name: str, body: str) -> Component:
    return Component("EmailTemplate", name, source=f"email/{name}.email",
                     attributes={"body": body, "metadata": {"type": "text", "subject": "Hello"}})


def _report(name: str, report_type: str, columns: list[str]) -> Component:
    return Component("Report", name, source=f"reports/{name}.report-meta.xml",
                     attributes={"metadata": {"reportType": report_type, "columns": [{"field": c} for c in columns]}})


def test_sensitive_field_in_report_or_email() -> None:
    found = run(
        "SEC-SENSITIVE-FIELD-IN-REPORT-OR-EMAIL",
        obj("Contact"),
        obj("Invoice__c"),
        fld("Contact.SSN__c", compliance_group="PII"),
        fld("Invoice__c.Card_Last4__c"),
        fld("Invoice__c.Amount__c"),
        _template("Hr/Welcome", "Dear {!Contact.FirstName}, your SSN is {!Contact.SSN__c}."),
        _report("Fin/Cards", "CustomEntity$Invoice__c", ["Invoice__c.Card_Last4__c", "Invoice__c.Amount__c"]),
    )
    assert [(f.component, f.discriminator) for f in found] == [
        ("EmailTemplate:Hr/Welcome", "CustomField:Contact.SSN__c"),
        ("Report:Fin/Cards", "CustomField:Invoice__c.Card_Last4__c"),
    ]


def test_sensitive_field_in_report_or_email_negative() -> None:
    found = run(
        "SEC-SENSITIVE-FIELD-IN-REPORT-OR-EMAIL",
        obj("Contact"),
        fld("Contact.SSN__c", compliance_group="PII"),
        fld("Contact.Nickname__c"),
        _template("Hr/Welcome", "Hi {!Contact.Nickname__c}."),
        _report("Hr/Nicknames", "Contact", ["Contact.Nickname__c"]),
    )
    assert found == []


# --- the acme-prod demo --------------------------------------------------------------------


def _demo_findings() -> list[Finding]:
    inv = read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod")
    ctx = RuleContext("acme-prod", inv, build_org_graph(inv), "2026-11-20", inv.api_version)
    return [f for r in METADATA_RULES for f in r.check(ctx)]


@pytest.fixture(scope="module")
def demo() -> list[Finding]:
    return _demo_findings()


PLANTED = {
    # unused fields (nothing references them, or only comments / string literals do)
    ("META-FIELD-UNUSED", "CustomField:Account.Legacy_ERP_Id__c"),
    ("META-FIELD-UNUSED", "CustomField:Account.Website_Domain__c"),
    ("META-FIELD-UNUSED", "CustomField:Account.Strategic_Notes__c"),
    ("META-FIELD-UNUSED", "CustomField:Contact.Passport_Number__c"),
    ("META-FIELD-UNUSED", "CustomField:Lead.Personal_Mobile__c"),
    ("META-FIELD-UNUSED", "CustomField:Client_Onboarding_Checklist__c.Travel_Policy_Shared__c"),
    ("META-FIELD-UNUSED", "CustomField:Client_Onboarding_Checklist__c.Kickoff_Call_Held__c"),  # Draft flow only
    # the wide object, no descriptions
    ("META-OBJECT-TOO-MANY-FIELDS", "CustomObject:Client_Onboarding_Checklist__c"),
    ("META-OBJECT-NO-DESCRIPTION", "CustomObject:Client_Onboarding_Checklist__c"),
    ("FLOW-NO-DESCRIPTION", "Flow:Notify_Account_Team"),
    ("FLOW-NO-DESCRIPTION", "Flow:Opportunity_Program_Sync"),
    ("FLOW-NO-DESCRIPTION", "Flow:Legacy_Invoice_Reminder"),
    ("FLOW-NO-DESCRIPTION", "Flow:Client_Onboarding_Wizard"),
    ("SEC-PERMSET-NO-DESCRIPTION", "PermissionSet:Integration_User_Super"),
    ("META-FIELD-NO-DESCRIPTION", "CustomField:Account.Legacy_ERP_Id__c"),
    ("META-VR-NO-DESCRIPTION", "ValidationRule:Invoice__c.Amount_Locked_When_Paid"),
    # flows
    ("FLOW-MISSING-FAULT-PATH", "Flow:Notify_Account_Team"),
    ("FLOW-MISSING-FAULT-PATH", "Flow:Opportunity_Program_Sync"),
    ("FLOW-INACTIVE", "Flow:Legacy_Invoice_Reminder"),
    ("FLOW-INACTIVE", "Flow:Client_Onboarding_Wizard"),
    ("FLOW-OLD-API-VERSION", "Flow:Legacy_Invoice_Reminder"),
    ("AUTOMATION-FLOW-AND-TRIGGER", "CustomObject:Opportunity"),
    ("AUTOMATION-LEGACY-AND-MODERN", "CustomObject:Invoice__c"),
    ("AUTOMATION-WORKFLOW-RULE", "WorkflowRule:Invoice__c.Invoice_Overdue"),
    ("AUTOMATION-WORKFLOW-RULE", "WorkflowRule:Invoice__c.Invoice_Paid"),
    # validation rules, formulas
    ("META-VR-HARDCODED-USER-OR-PROFILE", "ValidationRule:Opportunity.Discount_Requires_Approval"),
    ("META-VR-INACTIVE", "ValidationRule:Case.Level3_Requires_Manager"),
    ("META-FORMULA-EXTERNAL-PACKAGE-REFERENCE", "CustomField:Contact.Preferred_Email_Display__c"),
    # permissions and personal data
    ("SEC-MODIFY-ALL-DATA", "PermissionSet:Integration_User_Super"),
    ("SEC-VIEW-ALL-DATA", "PermissionSet:Integration_User_Super"),
    ("SEC-VIEW-ALL-DATA", "Profile:Acme Support Agent"),
    ("SEC-OBJECT-MODIFY-ALL", "PermissionSet:Integration_User_Super"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Contact.Personal_Email__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Contact.Home_Phone__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Contact.Passport_Number__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Lead.Personal_Mobile__c"),
    ("SEC-CLASSIFIED-NOT-ENCRYPTED", "CustomField:Contact.Date_of_Birth__c"),
    ("SEC-SENSITIVE-FIELD-VIEW-ALL-DATA", "PermissionSet:Integration_User_Super"),
}

CLEAN = {
    ("FLOW-MISSING-FAULT-PATH", "Flow:New_Client_Intake"),
    ("FLOW-MISSING-FAULT-PATH", "Flow:Case_Escalation"),
    ("FLOW-MISSING-FAULT-PATH", "Flow:Client_Onboarding_Wizard"),  # Draft: FLOW-INACTIVE only
    ("META-FIELD-UNUSED", "CustomField:Invoice__c.Amount__c"),
    ("META-FIELD-UNUSED", "CustomField:Account.Tax_Id__c"),
    ("META-FIELD-UNUSED", "CustomField:Account.Customer_Tier__c"),
    ("META-FIELD-UNUSED", "CustomField:Program__c.Account__c"),  # master-detail
    ("META-FIELD-UNUSED", "CustomField:Account.Health_Status__c"),  # formula shown on a page
    ("META-OBJECT-TOO-MANY-FIELDS", "CustomObject:Account"),
    ("META-OBJECT-NO-DESCRIPTION", "CustomObject:Invoice__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Contact.SSN__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Contact.Date_of_Birth__c"),
    ("SEC-PII-UNCLASSIFIED", "CustomField:Account.Tax_Id__c"),
    ("SEC-CLASSIFIED-NOT-ENCRYPTED", "CustomField:Contact.SSN__c"),
    ("SEC-PERMSET-NO-DESCRIPTION", "PermissionSet:Acme_Billing_Admin"),
    ("META-VR-HARDCODED-USER-OR-PROFILE", "ValidationRule:Case.Level3_Requires_Manager"),
    ("AUTOMATION-FLOW-AND-TRIGGER", "CustomObject:ServiceDelivery__c"),
    ("AUTOMATION-FLOW-AND-TRIGGER", "CustomObject:Case"),
    ("FLOW-OLD-API-VERSION", "Flow:Opportunity_Program_Sync"),
}


def test_demo_finds_planted_problems(demo: list[Finding]) -> None:
    found = {(f.rule_id, f.component) for f in demo}
    assert PLANTED - found == set()
    assert CLEAN & found == set()
    # nothing at all on the good examples and the standard admin profile
    clean_components = {"Flow:New_Client_Intake", "Flow:Case_Escalation", "PermissionSet:Acme_Delivery_Manager", "Profile:Admin"}
    assert {f.component for f in demo} & clean_components == set()
    # the three sensitive fields of the super permission set, each its own finding
    assert {f.discriminator for f in demo if f.rule_id == "SEC-SENSITIVE-FIELD-VIEW-ALL-DATA"} == {
        "CustomField:Contact.SSN__c",
        "CustomField:Contact.Date_of_Birth__c",
        "CustomField:Contact.Personal_Email__c",
    }
    assert {f.discriminator for f in demo if f.rule_id == "SEC-OBJECT-MODIFY-ALL"} == {"Account", "Invoice__c"}
    wide = next(f for f in demo if f.rule_id == "META-OBJECT-TOO-MANY-FIELDS")
    assert wide.extra["field_count"] == 36
    unused = {f.component: f for f in demo if f.rule_id == "META-FIELD-UNUSED"}
    assert unused["CustomField:Account.Legacy_ERP_Id__c"].severity == "medium"
    assert "Client_Onboarding_Wizard" in unused["CustomField:Client_Onboarding_Checklist__c.Kickoff_Call_Held__c"].message


def test_demo_findings_are_well_formed_and_stable(demo: list[Finding]) -> None:
    for f in demo:
        assert f.severity in SEVERITIES and f.category and f.org == "acme-prod"
        assert f.message and f.explanation and f.evidence, f
        assert f.rule_id in RULES
    ids = [f.id for f in demo]
    assert len(ids) == len(set(ids)), "two findings share an id: a discriminator is missing"
    assert [f.id for f in _demo_findings()] == ids  # same ids, same order, on a fresh read
