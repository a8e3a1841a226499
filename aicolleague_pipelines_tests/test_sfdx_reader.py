"""The SFDX / Metadata API project reader and the hardened XML parser, on real files.

Fixture projects live in ``fixtures/sfdx/`` (hand-written); hostile variants that would be
awkward to keep in git (oversized, binary, symlinks, bad encodings) are built in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.safe_xml import (
    ALWAYS_LIST,
    MalformedXmlError,
    UnsafeXmlError,
    XmlTooLargeError,
    element_to_dict,
    parse_xml_bytes,
    parse_xml_file,
)
from aicolleague_pipelines.lib.salesforce.model import Component, ExtractionError, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import (
    object_kind,
    parse_trigger_header,
    read_sfdx_project,
    strip_cumulusci_tokens,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sfdx"


def _read(name: str, **kw) -> OrgInventory:
    return read_sfdx_project(FIXTURES / name, "test-org", **kw)


def _by_key(inv: OrgInventory) -> dict[str, Component]:
    return inv.by_key()


def _findings(inv: OrgInventory, severity: str) -> list:
    return [f for f in inv.findings if f.severity == severity]


@pytest.fixture(scope="module")
def multi() -> OrgInventory:
    return _read("multi_pkg")


@pytest.fixture(scope="module")
def mdapi() -> OrgInventory:
    return _read("mdapi_src")


# ------------------------------------------------------------------ source format
def test_source_format_several_package_directories(multi: OrgInventory) -> None:
    assert multi.org == "test-org"
    assert multi.source_kind == "sfdx"
    assert multi.api_version == "62.0"  # sourceApiVersion
    assert multi.stats["package_directories"] == ["force-app", "extra-pkg"]
    assert multi.stats["namespace"] == "acme"
    assert multi.stats["files_read"] > 40
    assert multi.stats["files_skipped"] == 0
    assert isinstance(multi.stats["duration_s"], float)
    assert not _findings(multi, "error")
    comps = _by_key(multi)
    # second package directory, metadata nested below billing/ (not main/default)
    job = comps["ApexClass:BillingJob"]
    assert job.source == "extra-pkg/billing/classes/BillingJob.cls"
    assert job.api_version == "62.0"
    assert "CustomField:Invoice__c.Due_Date__c" in comps
    # scripts/, config/ and manifest/ are not metadata
    assert not any("scripts/" in (c.source or "") for c in multi.components)
    assert multi.counts_by_type() == {
        "ApexClass": 3,
        "ApexPage": 1,
        "ApexTrigger": 1,
        "AuraDefinitionBundle": 1,
        "CustomField": 10,
        "CustomMetadata": 1,
        "CustomObject": 5,
        "CustomTab": 1,
        "EmailTemplate": 1,
        "FlexiPage": 1,
        "Flow": 2,
        "GlobalValueSet": 1,
        "Layout": 1,
        "LightningComponentBundle": 1,
        "PermissionSet": 1,
        "Profile": 1,
        "RecordType": 1,
        "Report": 1,
        "ValidationRule": 1,
        "WorkflowFieldUpdate": 2,
        "WorkflowRule": 1,
    }
    # everything is plain data
    json.dumps([c.to_dict() for c in multi.components])


def test_duplicate_across_package_directories_keeps_first(multi: OrgInventory) -> None:
    svc = _by_key(multi)["ApexClass:InvoiceService"]
    assert svc.source == "force-app/main/default/classes/InvoiceService.cls"
    assert svc.api_version == "61.0"
    dup = [f for f in _findings(multi, "warning") if "defined twice" in f.message]
    assert len(dup) == 1
    assert dup[0].location == "extra-pkg/billing/classes/InvoiceService.cls"
    assert "ApexClass:InvoiceService" in dup[0].message


def test_objects_and_kinds(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    inv = comps["CustomObject:Invoice__c"]
    assert inv.attributes["custom"] is True
    assert inv.attributes["object_kind"] == "custom"
    assert inv.attributes["label"] == "Invoice"
    assert inv.attributes["sharing_model"] == "ReadWrite"
    assert inv.description == "An invoice sent to a customer."
    assert inv.namespace is None
    assert comps["CustomObject:Rate__mdt"].attributes["object_kind"] == "custom_metadata"
    assert comps["CustomObject:Invoice_Event__e"].attributes["object_kind"] == "platform_event"
    assert comps["CustomObject:Billing_Settings__c"].attributes["object_kind"] == "custom_setting"


def test_standard_object_folder_with_only_custom_fields(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    account = comps["CustomObject:Account"]
    assert account.attributes["custom"] is False
    assert account.attributes["object_kind"] == "standard"
    assert account.source == "force-app/main/default/objects/Account"
    tier = comps["CustomField:Account.Tier__c"]
    assert tier.parent == "CustomObject:Account"
    assert tier.attributes["picklist_values"] == ["Gold"]
    assert tier.attributes["custom"] is True


def test_custom_field_attributes(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    amount = comps["CustomField:Invoice__c.Amount__c"]
    assert amount.parent == "CustomObject:Invoice__c"
    assert amount.description == "Net amount."
    assert amount.attributes["data_type"] == "Currency"
    assert amount.attributes["required"] is True
    assert amount.attributes["unique"] is False
    assert amount.attributes["precision"] == 16
    assert amount.attributes["label"] == "Amount"

    lookup = comps["CustomField:Invoice__c.Account__c"].attributes
    assert lookup["data_type"] == "Lookup"
    assert lookup["reference_to"] == ["Account"]
    assert lookup["relationship_name"] == "Invoices"

    status = comps["CustomField:Invoice__c.Status__c"].attributes
    assert status["picklist_values"] == ["Draft", "Sent", "Paid"]

    region = comps["CustomField:Invoice__c.Region__c"].attributes
    assert region["value_set"] == "Regions"
    assert region["controlling_field"] == "Status__c"
    assert region["picklist_values"] == []

    tax = comps["CustomField:Invoice__c.Tax_Id__c"].attributes
    assert tax["encrypted"] is True
    assert tax["encryption_scheme"] == "ProbabilisticEncryption"
    assert tax["compliance_group"] == "PII;GDPR"
    assert tax["security_classification"] == "Restricted"
    assert tax["external_id"] is True
    assert tax["unique"] is True
    assert tax["length"] == 20

    assert comps["CustomField:Invoice__c.Currency_Code__c"].attributes["default_value"] == '"EUR"'


def test_foreign_namespace_references_kept_as_is(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    formula = comps["CustomField:Invoice__c.Total_With_Tax__c"].attributes["formula"]
    assert formula == "Amount__c * (1 + Account__r.npe01__Tax_Rate__c)"
    assert "inv.npe01__Tax_Rate__c = 0.2;" in comps["ApexClass:InvoiceService"].attributes["body"]
    # a reference is not a component, and the package's own names carry no prefix
    assert not any("npe01" in k for k in comps)
    assert all(c.namespace is None for c in multi.components)


def test_record_type_and_validation_rule(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    rt = comps["RecordType:Invoice__c.Standard"]
    assert rt.parent == "CustomObject:Invoice__c"
    assert rt.active is True
    assert rt.attributes["metadata"]["picklistValues"][0]["picklist"] == "Status__c"
    vr = comps["ValidationRule:Invoice__c.Amount_Positive"]
    assert vr.parent == "CustomObject:Invoice__c"
    assert vr.active is True
    assert vr.attributes["error_condition_formula"] == "Amount__c <= 0 && ISPICKVAL(Status__c, 'Sent')"
    assert vr.attributes["error_message"] == "Amount must be positive"
    assert vr.attributes["error_display_field"] == "Amount__c"
    assert vr.description == "Amounts must be positive."


def test_apex_classes_and_triggers(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    svc = comps["ApexClass:InvoiceService"]
    assert svc.status == "Active" and svc.active is True
    # "@IsTest ... class" only inside a comment and a string literal
    assert svc.attributes["is_test"] is False
    assert svc.attributes["body"].lstrip().startswith("/**")
    assert comps["ApexClass:InvoiceServiceTest"].attributes["is_test"] is True
    trig = comps["ApexTrigger:InvoiceTrigger"]
    assert trig.api_version == "60.0"
    assert trig.attributes["object"] == "Invoice__c"  # not the commented-out header
    assert trig.attributes["events"] == ["before insert", "after update"]


def test_flows(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    flow = comps["Flow:Invoice_After_Save"]
    assert flow.status == "Active" and flow.active is True
    assert flow.api_version == "62.0"
    assert flow.description == "Stamps the account when an invoice is saved."
    a = flow.attributes
    assert a["process_type"] == "AutoLaunchedFlow"
    assert a["trigger_type"] == "RecordAfterSave"
    assert a["record_trigger_type"] == "CreateAndUpdate"
    assert a["trigger_object"] == "Invoice__c"
    # well-known repeated elements are lists even with one item
    assert a["metadata"]["recordUpdates"][0]["inputAssignments"][0]["field"] == "Tier__c"
    draft = comps["Flow:Draft_Screen_Flow"]
    assert draft.status == "Draft" and draft.active is False


def test_workflow_rules_and_field_updates(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    rule = comps["WorkflowRule:Invoice__c.Mark_Sent"]
    assert rule.parent == "CustomObject:Invoice__c"
    assert rule.active is False
    assert rule.attributes["actions"] == [{"name": "Set_Status_Sent", "type": "FieldUpdate"}]
    assert rule.attributes["criteria"][0]["field"] == "Invoice__c.Amount__c"
    upd = comps["WorkflowFieldUpdate:Invoice__c.Copy_Amount"]
    assert upd.attributes["field"] == "Amount__c"
    assert upd.attributes["formula"] == "Total_With_Tax__c / 1.2"
    assert comps["WorkflowFieldUpdate:Invoice__c.Set_Status_Sent"].attributes["literal_value"] == "Sent"


def test_metadata_components(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    layout = comps["Layout:Invoice__c-Invoice Layout"]
    assert layout.attributes["object"] == "Invoice__c"
    items = layout.attributes["metadata"]["layoutSections"][0]["layoutColumns"][0]["layoutItems"]
    assert items == [{"behavior": "Required", "field": "Amount__c"}]
    flexi = comps["FlexiPage:Invoice_Record_Page"].attributes["metadata"]
    assert flexi["sobjectType"] == "Invoice__c"
    assert flexi["flexiPageRegions"][0]["itemInstances"][0]["componentInstance"]["componentName"] == "invoiceCard"
    ps = comps["PermissionSet:Invoice_Admin"]
    assert ps.description == "Full access to invoices."
    assert ps.attributes["metadata"]["fieldPermissions"] == [
        {"editable": "true", "field": "Invoice__c.Amount__c", "readable": "true"}
    ]
    assert ps.attributes["metadata"]["objectPermissions"][0]["object"] == "Invoice__c"
    prof = comps["Profile:Admin"].attributes["metadata"]
    assert prof["classAccesses"] == [{"apexClass": "InvoiceService", "enabled": "true"}]
    report = comps["Report:Invoices/Open_Invoices"]
    assert report.attributes["metadata"]["reportType"] == "CustomEntity$Invoice__c"
    assert report.attributes["metadata"]["columns"] == [{"field": "Invoice__c.Amount__c"}]
    cmd = comps["CustomMetadata:Rate.Standard"]
    assert cmd.parent == "CustomObject:Rate__mdt"
    assert cmd.attributes["values"] == {"Percent__c": "20.0"}
    assert comps["GlobalValueSet:Regions"].attributes["metadata"]["customValue"][0]["fullName"] == "EMEA"
    assert comps["CustomTab:Invoice__c"].attributes["metadata"]["customObject"] == "true"
    page = comps["ApexPage:InvoicePdf"]
    assert "{!Invoice__c.Amount__c}" in page.attributes["body"]
    assert page.api_version == "59.0"
    email = comps["EmailTemplate:Invoice_Templates/Invoice_Sent"]
    assert "{!Invoice__c.Account__r.Name}" in email.attributes["body"]
    assert email.attributes["metadata"]["subject"] == "Your invoice"


def test_lightning_bundles(multi: OrgInventory) -> None:
    comps = _by_key(multi)
    lwc = comps["LightningComponentBundle:invoiceCard"]
    assert lwc.source == "force-app/main/default/lwc/invoiceCard"
    assert sorted(lwc.attributes["files"]) == ["invoiceCard.css", "invoiceCard.html", "invoiceCard.js"]
    assert "@salesforce/schema/Invoice__c.Amount__c" in lwc.attributes["files"]["invoiceCard.js"]
    assert lwc.api_version == "62.0"
    assert lwc.description == "Shows an invoice."
    assert lwc.attributes["metadata"]["targets"]["target"] == ["lightning__RecordPage"]
    assert lwc.attributes["metadata"]["isExposed"] == "true"
    aura = comps["AuraDefinitionBundle:InvoiceApp"]
    assert sorted(aura.attributes["files"]) == ["InvoiceApp.cmp", "InvoiceAppController.js"]
    assert aura.api_version == "58.0"


def test_unmodelled_types_reported_once_as_info(multi: OrgInventory) -> None:
    infos = [f for f in _findings(multi, "info") if "not modelled" in f.message]
    assert len(infos) == 1
    assert "labels (1)" in infos[0].message and "listView (1)" in infos[0].message


# ------------------------------------------------------------------ Metadata API format
def test_metadata_api_src_format(mdapi: OrgInventory) -> None:
    assert not _findings(mdapi, "error") and not _findings(mdapi, "warning")
    assert mdapi.stats["mdapi_folders"] == ["src"]
    assert mdapi.stats["package_directories"] == []
    comps = _by_key(mdapi)
    proj = comps["CustomObject:Project__c"]
    assert proj.source == "src/objects/Project__c.object"
    assert proj.attributes["sharing_model"] == "ControlledByParent"
    assert proj.description == "A customer project."
    md = comps["CustomField:Project__c.Account__c"]
    assert md.parent == "CustomObject:Project__c"
    assert md.attributes["data_type"] == "MasterDetail"
    assert md.attributes["reference_to"] == ["Account"]
    assert md.source == "src/objects/Project__c.object"
    # pre-API-38 <picklist> values
    assert comps["CustomField:Project__c.Phase__c"].attributes["picklist_values"] == ["Planning", "Delivery"]
    assert comps["RecordType:Project__c.Internal"].active is False
    vr = comps["ValidationRule:Project__c.Budget_Required"]
    assert vr.attributes["error_condition_formula"] == "ISBLANK(Budget__c)"
    # standard object file holding only fields
    assert comps["CustomObject:Account"].attributes["object_kind"] == "standard"
    summary = comps["CustomField:Account.Project_Count__c"].attributes
    assert summary["summary_foreign_key"] == "Project__c.Account__c"
    assert summary["summarized_field"] == "Project__c.Budget__c"
    trig = comps["ApexTrigger:ProjectTrigger"]
    assert trig.status == "Inactive" and trig.active is False
    assert trig.attributes["events"] == ["after insert", "after delete"]
    assert comps["ApexClass:ProjectService"].api_version == "45.0"
    assert comps["WorkflowRule:Project__c.Clear_On_Close"].attributes["formula"] == 'ISPICKVAL(Phase__c, "Delivery")'
    assert comps["WorkflowFieldUpdate:Project__c.Clear_Budget"].attributes["field"] == "Budget__c"
    assert comps["Layout:Project__c-Project Layout"].attributes["object"] == "Project__c"
    assert "Report:Projects/Projects_By_Phase" in comps
    assert comps["CustomMetadata:Setting.Default"].attributes["values"] == {"Enabled__c": "true"}
    assert comps["ApexPage:ProjectSummary"].attributes["label"] == "Project Summary"
    assert "CustomTab:Project__c" in comps
    assert "PermissionSet:Project_Manager" in comps and "Profile:Standard" in comps


def test_metadata_api_flow_versions(mdapi: OrgInventory) -> None:
    flow = _by_key(mdapi)["Flow:Project_Kickoff"]
    assert flow.active is True and flow.status == "Active"
    assert flow.attributes["active_version"] == 2
    assert flow.attributes["version_number"] == 2
    assert flow.source == "src/flows/Project_Kickoff-2.flow"
    assert flow.attributes["label"] == "Project Kickoff v2"
    assert [v["version_number"] for v in flow.attributes["versions"]] == [1, 2, 3]
    assert [v["status"] for v in flow.attributes["versions"]] == ["Obsolete", "Active", "Obsolete"]
    assert not any(k.startswith("Flow:Project_Kickoff-") for k in _by_key(mdapi))


def test_mixed_repository() -> None:
    inv = _read("mixed")
    comps = _by_key(inv)
    assert inv.stats["package_directories"] == ["force-app"]
    assert inv.stats["mdapi_folders"] == ["src"]
    assert comps["ApexClass:Legacy"].source == "src/classes/Legacy.cls"
    # the package directory comes first: its Shared wins over src/'s
    assert comps["ApexClass:Shared"].source == "force-app/main/default/classes/Shared.cls"
    assert "VERSION = 2" in comps["ApexClass:Shared"].attributes["body"]
    assert [f.location for f in inv.findings if "defined twice" in f.message] == ["src/classes/Shared.cls"]
    # fields from both formats on one (standard) object
    assert comps["CustomField:Account.Segment__c"].parent == "CustomObject:Account"
    assert comps["CustomField:Account.Legacy_Code__c"].parent == "CustomObject:Account"
    assert comps["CustomObject:Account"].attributes["custom"] is False
    # notes/Stray.cls lies outside packageDirectories and Metadata API folders
    assert "ApexClass:Stray" not in comps
    assert any(f.severity == "info" and "outside the package directories" in f.message for f in inv.findings)


def test_folder_without_project_file_is_scanned_entirely(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "multi_pkg" / "force-app", tmp_path / "anything")
    inv = read_sfdx_project(tmp_path, "plain", api_version="60.0", source_kind="demo")
    assert inv.api_version == "60.0"
    assert inv.source_kind == "demo"
    comps = _by_key(inv)
    assert comps["ApexClass:InvoiceService"].source == "anything/main/default/classes/InvoiceService.cls"
    assert "CustomField:Invoice__c.Amount__c" in comps
    assert not _findings(inv, "error")


# ------------------------------------------------------------------ CumulusCI tokens
def test_cumulusci_tokens_stripped() -> None:
    inv = _read("cumulusci")
    assert not _findings(inv, "error") and not _findings(inv, "warning")
    comps = _by_key(inv)
    gross = comps["CustomField:Invoice__c.Gross__c"]
    assert gross.attributes["formula"] == "Net__c * 1.2 + npsp__Fee__c"  # foreign prefix kept
    body = comps["ApexClass:InvoiceQuery"].attributes["body"]
    assert "'Invoice__c'" in body and "SELECT Gross__c FROM" in body and "forName('InvoiceQuery')" in body
    assert "%%%" not in body
    layout = comps["Layout:Invoice__c-Invoice Layout"]  # ___NAMESPACE___ stripped from the file name
    assert layout.source.endswith("___NAMESPACE___Invoice__c-___NAMESPACE___Invoice Layout.layout-meta.xml")
    assert layout.attributes["object"] == "Invoice__c"
    items = layout.attributes["metadata"]["layoutSections"][0]["layoutColumns"][0]["layoutItems"]
    assert items[0]["field"] == "Gross__c"
    assert comps["Flow:Invoice_Rollup"].attributes["trigger_object"] == "Invoice__c"
    assert comps["AuraDefinitionBundle:InvoiceShell"].attributes["files"]["InvoiceShell.cmp"] == (
        "<aura:component><c:invoiceCard/></aura:component>\n"
    )
    assert inv.stats["cumulusci_tokens_stripped"] == 8
    assert "%%%" not in json.dumps([c.to_dict() for c in inv.components])


def test_strip_cumulusci_tokens_helper() -> None:
    assert strip_cumulusci_tokens("%%%NAMESPACE%%%A__c %%%NAMESPACE_DOT%%%Cls %%%NAMESPACED_ORG%%%B__c") == (
        "A__c Cls B__c"
    )
    assert strip_cumulusci_tokens("<%%%NAMESPACE_OR_C%%%:cmp/>") == "<c:cmp/>"


# ------------------------------------------------------------------ hostile input
def test_malformed_and_unsafe_xml_become_findings_and_the_rest_is_read() -> None:
    inv = _read("hostile")
    comps = _by_key(inv)
    assert "ApexClass:Good" in comps
    assert comps["CustomField:Invoice__c.Ok__c"].attributes["data_type"] == "Checkbox"
    errors = {f.location.rsplit("/", 1)[-1]: f for f in _findings(inv, "error")}
    assert set(errors) == {
        "Broken__c.field-meta.xml",
        "Bomb__c.field-meta.xml",
        "Xxe__c.field-meta.xml",
        "Param_Entity.flow-meta.xml",
    }
    broken = errors["Broken__c.field-meta.xml"]
    assert broken.location == "force-app/main/default/objects/Invoice__c/fields/Broken__c.field-meta.xml"
    assert "mismatched tag" in broken.message and "line 5" in broken.message and "column" in broken.message
    assert broken.hint == "fix or remove the file; the rest of the project was read"
    assert "unsafe" in errors["Bomb__c.field-meta.xml"].message
    assert "entity-expansion" in errors["Bomb__c.field-meta.xml"].message
    assert "external entity" in errors["Xxe__c.field-meta.xml"].message
    assert "external entity" in errors["Param_Entity.flow-meta.xml"].message
    for key in ("CustomField:Invoice__c.Broken__c", "CustomField:Invoice__c.Bomb__c",
                "CustomField:Invoice__c.Xxe__c", "Flow:Param_Entity"):
        assert key not in comps
    assert inv.stats["files_skipped"] == 4


def test_billion_laughs_is_refused_cheaply() -> None:
    data = (FIXTURES / "hostile/force-app/main/default/objects/Invoice__c/fields/Bomb__c.field-meta.xml").read_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(UnsafeXmlError) as exc:
        parse_xml_bytes(data, source="Bomb__c.field-meta.xml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "Bomb__c.field-meta.xml" in str(exc.value)
    assert elapsed < 0.5
    assert peak < 1024 * 1024  # expanded, &lol9; would be ~3 GB of text
    started = time.perf_counter()
    inv = _read("hostile")
    assert time.perf_counter() - started < 1.0
    assert "lollol" not in json.dumps([c.to_dict() for c in inv.components])


def test_external_entity_content_never_appears(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    project = tmp_path / "p"
    shutil.copytree(FIXTURES / "hostile", project)
    field_dir = project / "force-app/main/default/objects/Invoice__c/fields"
    (field_dir / "Leak__c.field-meta.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY s SYSTEM "' + secret.as_uri() + '">]>\n'
        '<CustomField xmlns="http://soap.sforce.com/2006/04/metadata"><fullName>Leak__c</fullName>'
        "<description>&s;</description><type>Text</type></CustomField>\n"
    )
    inv = read_sfdx_project(project, "t")
    dumped = json.dumps([c.to_dict() for c in inv.components]) + "".join(str(f) for f in inv.findings)
    assert "TOP-SECRET-CONTENT" not in dumped
    assert "root:x:" not in dumped  # /etc/passwd of the committed Xxe__c fixture
    assert any(f.location.endswith("Leak__c.field-meta.xml") and "unsafe" in f.message for f in inv.findings)


def test_oversized_binary_bad_encoding_and_symlinks(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(FIXTURES / "hostile", project)
    classes = project / "force-app/main/default/classes"
    meta = (classes / "Good.cls-meta.xml").read_text()
    (classes / "Huge.cls").write_bytes(b"public class Huge {}\n" + b"// padding\n" * 600_000)  # ~6.6 MB
    (classes / "Huge.cls-meta.xml").write_text(meta)
    (classes / "Blob.cls").write_bytes(b"public class Blob {\x00\x01\x02}")
    (classes / "Blob.cls-meta.xml").write_text(meta)
    (classes / "Latin.cls").write_bytes("public class Latin { String s = 'café'; }\n".encode("cp1252"))
    (classes / "Latin.cls-meta.xml").write_text(meta)
    (classes / "Utf16.cls").write_bytes("public class Utf16 { String s = 'ü'; }\n".encode("utf-16"))
    (classes / "Utf16.cls-meta.xml").write_text(meta)
    fields = project / "force-app/main/default/objects/Invoice__c/fields"
    (fields / "Cp1252__c.field-meta.xml").write_bytes(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">'
        b"<fullName>Cp1252__c</fullName><label>Caf\xe9</label><type>Text</type></CustomField>\n"
    )
    (fields / "Bogus__c.field-meta.xml").write_bytes(
        b'<?xml version="1.0" encoding="x-no-such"?>\n<CustomField><type>Text</type></CustomField>\n'
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Outside.cls").write_text("public class Outside {}\n")
    (outside / "Outside.cls-meta.xml").write_text(meta)
    os.symlink(outside / "Outside.cls", classes / "Outside.cls")
    os.symlink(outside, project / "force-app/main/default/linked")
    os.symlink(classes, project / "force-app/main/default/loop")  # inside the root: loop-safe

    inv = read_sfdx_project(project, "t")
    comps = _by_key(inv)
    by_loc = {}
    for f in inv.findings:
        by_loc.setdefault(f.location.rsplit("/", 1)[-1], []).append(f)

    assert "ApexClass:Huge" not in comps
    assert by_loc["Huge.cls"][0].severity == "warning" and "limit" in by_loc["Huge.cls"][0].message
    assert "ApexClass:Blob" not in comps
    assert by_loc["Blob.cls"][0].severity == "warning" and "binary" in by_loc["Blob.cls"][0].message
    assert "café" in comps["ApexClass:Latin"].attributes["body"]
    assert "UTF-8" in by_loc["Latin.cls"][0].message
    assert "'ü'" in comps["ApexClass:Utf16"].attributes["body"]
    assert comps["CustomField:Invoice__c.Cp1252__c"].attributes["label"] == "Café"
    assert by_loc["Bogus__c.field-meta.xml"][0].severity == "error"
    assert "encoding" in by_loc["Bogus__c.field-meta.xml"][0].message
    assert "ApexClass:Outside" not in comps
    assert "outside the project root" in by_loc["Outside.cls"][0].message
    assert "outside the project root" in by_loc["linked"][0].message
    assert "ApexClass:Good" in comps
    assert inv.stats["files_skipped"] >= 6

    # a smaller limit applies to XML files too
    small = read_sfdx_project(project, "t", max_file_bytes=100)
    good = _by_key(small)["ApexClass:Good"]  # 21-byte body read, its 200-byte meta file skipped
    assert good.api_version is None
    assert any("limit" in f.message for f in small.findings if f.location.endswith("Good.cls-meta.xml"))
    assert "CustomField:Invoice__c.Ok__c" not in _by_key(small)


def test_bad_project_file_and_missing_package_dir(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "multi_pkg" / "force-app", tmp_path / "force-app")
    (tmp_path / "sfdx-project.json").write_text("{not json")
    inv = read_sfdx_project(tmp_path, "t")
    assert any(f.location == "sfdx-project.json" and f.severity == "error" for f in inv.findings)
    assert "ApexClass:InvoiceService" in _by_key(inv)  # scanned anyway

    (tmp_path / "sfdx-project.json").write_text(
        json.dumps({"packageDirectories": [{"path": "force-app"}, {"path": "gone"}, {"path": "../escape"}]})
    )
    inv = read_sfdx_project(tmp_path, "t")
    msgs = [f.message for f in inv.findings if f.location == "sfdx-project.json"]
    assert any("'gone' does not exist" in m for m in msgs)
    assert any("outside the project root" in m for m in msgs)
    assert inv.stats["package_directories"] == ["force-app"]


def test_missing_root_raises_extraction_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError) as exc:
        read_sfdx_project(tmp_path / "nope", "acme")
    assert "acme" in str(exc.value) and "not found" in str(exc.value)


def test_thousand_classes_read_fast(tmp_path: Path) -> None:
    (tmp_path / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app"}]}')
    classes = tmp_path / "force-app/main/default/classes"
    classes.mkdir(parents=True)
    meta = (FIXTURES / "hostile/force-app/main/default/classes/Good.cls-meta.xml").read_text()
    for i in range(1000):
        (classes / f"C{i}.cls").write_text(f"public class C{i} {{ Integer x = {i}; }}\n" * 20)
        (classes / f"C{i}.cls-meta.xml").write_text(meta)
    started = time.perf_counter()
    inv = read_sfdx_project(tmp_path, "perf")
    assert time.perf_counter() - started < 2.5
    assert inv.counts_by_type() == {"ApexClass": 1000}
    assert inv.stats["files_read"] == 2000


# ------------------------------------------------------------------ helpers
def test_element_to_dict_shapes() -> None:
    root = parse_xml_bytes(
        b'<PermissionSet xmlns="http://soap.sforce.com/2006/04/metadata" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b"<fieldPermissions><field>A.B__c</field><readable>true</readable></fieldPermissions>"
        b"<label>L</label><userPermissions><name>X</name></userPermissions>"
        b"<userPermissions><name>Y</name></userPermissions><description/>"
        b'<license xsi:nil="true"/><tag>a</tag><tag>b</tag></PermissionSet>'
    )
    d = element_to_dict(root)
    assert d == {
        "fieldPermissions": [{"field": "A.B__c", "readable": "true"}],
        "label": "L",
        "userPermissions": [{"name": "X"}, {"name": "Y"}],
        "description": None,
        "license": None,
        "tag": ["a", "b"],
    }
    assert {"fields", "validationRules", "recordLookups", "layoutItems", "classAccesses"} <= ALWAYS_LIST


def test_safe_xml_errors(tmp_path: Path) -> None:
    with pytest.raises(XmlTooLargeError):
        parse_xml_bytes(b"<a/>" * 100, max_bytes=50)
    with pytest.raises(MalformedXmlError) as exc:
        parse_xml_bytes(b"<a>\n<b></a>", source="x.xml")
    assert exc.value.line == 2 and exc.value.file == "x.xml"
    p = tmp_path / "ok.xml"
    p.write_bytes(b"<a><fields><x>1</x></fields></a>")
    assert element_to_dict(parse_xml_file(p)) == {"fields": [{"x": "1"}]}
    deep = b"<a>" * 1000 + b"</a>" * 1000
    with pytest.raises(UnsafeXmlError):
        element_to_dict(parse_xml_bytes(deep), source="deep.xml")


def test_small_parsers() -> None:
    assert parse_trigger_header("/* trigger X on Y (after delete) */ trigger T on Case(before update){}") == (
        "T",
        "Case",
        ["before update"],
    )
    assert object_kind("Account") == "standard"
    assert object_kind("ns__Thing__x") == "external"
    assert object_kind("Log__b") == "big_object"
    assert object_kind("Cfg__c", "List") == "custom_setting"


def test_decomposed_workflow_and_non_salesforce_files(tmp_path: Path) -> None:
    ns = 'xmlns="http://soap.sforce.com/2006/04/metadata"'
    wf = tmp_path / "force-app/workflows/Case"
    (wf / "rules").mkdir(parents=True)
    (wf / "fieldUpdates").mkdir()
    (wf / "rules/Escalate.workflowRule-meta.xml").write_text(
        f"<WorkflowRule {ns}><active>true</active><formula>IsEscalated</formula></WorkflowRule>"
    )
    (wf / "fieldUpdates/Bump.workflowFieldUpdate-meta.xml").write_text(
        f"<WorkflowFieldUpdate {ns}><field>Priority</field><literalValue>High</literalValue>"
        "<operation>Literal</operation></WorkflowFieldUpdate>"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.cls").write_text("\\NeedsTeXFormat{LaTeX2e}\n")  # not Apex
    (docs / "README.md").write_text("# notes\n")
    (tmp_path / ".profile").write_text("export X=1\n")
    inv = read_sfdx_project(tmp_path, "t")
    comps = _by_key(inv)
    rule = comps["WorkflowRule:Case.Escalate"]
    assert rule.active is True and rule.attributes["formula"] == "IsEscalated"
    assert rule.parent == "CustomObject:Case"
    assert comps["WorkflowFieldUpdate:Case.Bump"].attributes["literal_value"] == "High"
    assert comps["CustomObject:Case"].attributes["object_kind"] == "standard"
    assert set(inv.counts_by_type()) == {"CustomObject", "WorkflowRule", "WorkflowFieldUpdate"}
    assert not inv.findings


def test_forceignore_is_honoured(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "multi_pkg", tmp_path / "p")
    (tmp_path / "p/.forceignore").write_text(
        "# not deployed\n"
        "**/profiles/\n"
        "force-app/main/default/email/\n"
        "*.flow-meta.xml\n"
        "!Invoice_After_Save.flow-meta.xml\n"
        "extra-pkg/billing/classes/InvoiceService.cls*\n"
    )
    inv = read_sfdx_project(tmp_path / "p", "t")
    comps = _by_key(inv)
    assert "Profile:Admin" not in comps
    assert "EmailTemplate:Invoice_Templates/Invoice_Sent" not in comps
    assert "Flow:Draft_Screen_Flow" not in comps and "Flow:Invoice_After_Save" in comps
    assert not any("defined twice" in f.message for f in inv.findings)  # the duplicate is ignored
    assert inv.stats["files_forceignored"] == 7
    assert "ApexClass:BillingJob" in comps and "LightningComponentBundle:invoiceCard" in comps


def test_forceignore_rules() -> None:
    from aicolleague_pipelines.lib.salesforce.sfdx import ForceIgnore

    fi = ForceIgnore("**/jsconfig.json\n/config/\n**/__tests__/**\nprofiles\n!keep/profiles\n")
    assert fi.ignores("force-app/main/default/lwc/jsconfig.json")
    assert fi.ignores("config/scratch.json") and not fi.ignores("force-app/config/x.json")
    assert fi.ignores("force-app/lwc/a/__tests__/a.test.js")
    assert fi.ignores("force-app/main/profiles/Admin.profile-meta.xml")
    assert not fi.ignores("force-app/main/default/classes/A.cls")
