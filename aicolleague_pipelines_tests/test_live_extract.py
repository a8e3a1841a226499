"""Live extraction (inventory, dependencies, audit trail) against the loopback fake org."""

from __future__ import annotations

import json
import logging

import pytest

from aicolleague_pipelines.lib.salesforce.client import SalesforceAPIError, SalesforceAuthError
from aicolleague_pipelines.lib.salesforce.live import (
    extract_live_inventory,
    fetch_audit_trail,
    fetch_dependencies,
)
from aicolleague_pipelines.lib.salesforce.model import ExtractionError
from aicolleague_pipelines_tests.fakes.conftest_fixtures import (  # noqa: F401 - fixtures
    fake_salesforce,
    fake_salesforce_env,
    make_sf_client,
)
from aicolleague_pipelines_tests.fakes.salesforce import sf_id

#: HTTP requests for one full extraction of the fake's default org with client credentials:
#: 1 token + EntityDefinition + CustomField + FieldDefinition + 5 describes (+1 composite: picklist /
#: roll-up field Metadata) + ApexClass + ApexTrigger + Flow (+1 composite) + ValidationRule (+1)
#: + Layout (+1) + FlexiPage (+1) + WorkflowRule + WorkflowFieldUpdate + ApexPage + GlobalValueSet
#: + CustomTab + RecordType + PermissionSet 7 (describe, PermissionSet, ObjectPermissions,
#: FieldPermissions, SetupEntityAccess, PermissionSetTabSetting, ProfileLayout) + Report (+1 Folder,
#: +1 Analytics describe) + LWC (+1 resources) + Aura (+1 definitions) + EmailTemplate.
EXPECTED_CALLS = 41


def _extract(make_sf_client, kind="client_credentials"):
    client, org = make_sf_client(kind)
    return client, org, extract_live_inventory(client, org)


def test_full_extraction_of_the_default_org(make_sf_client, fake_salesforce, capsys):
    client, org, inv = _extract(make_sf_client)
    assert inv.org == "fake-live" and inv.source_kind == "live" and not inv.findings
    assert inv.counts_by_type() == {
        "ApexClass": 3, "ApexTrigger": 1, "AuraDefinitionBundle": 1, "CustomField": 31, "CustomObject": 5,
        "EmailTemplate": 1, "FlexiPage": 1, "Flow": 2, "Layout": 3, "LightningComponentBundle": 1,
        "PermissionSet": 1, "Profile": 1, "RecordType": 2, "Report": 1, "ValidationRule": 3,
    }
    by = inv.by_key()
    inv_obj = by["CustomObject:Invoice__c"]
    assert inv_obj.id == sf_id("01I", 1) and inv_obj.attributes["object_kind"] == "custom"
    assert by["CustomObject:Account"].attributes["object_kind"] == "standard"
    tax = by["CustomField:Invoice__c.Tax__c"]
    assert tax.attributes["formula"] == "Amount__c * 0.2" and tax.parent == "CustomObject:Invoice__c"
    assert tax.id and tax.id.startswith("00N") and tax.last_modified_by == "Bob Builder"
    acc = by["CustomField:Invoice__c.Account__c"]
    assert acc.attributes["reference_to"] == ["Account"] and acc.attributes["relationship_name"] == "Account__r"
    assert acc.description == "Billed account."
    sub = by["CustomField:Project__c.Sub_Region__c"]
    assert sub.attributes["controlling_field"] == "Region__c"
    assert sub.attributes["picklist_values"] == ["DACH", "Nordics", "US_East"]
    email = by["CustomField:Contact.Email"]
    assert email.attributes["compliance_group"] == "PII;GDPR"
    assert email.attributes["security_classification"] == "Confidential"
    assert by["CustomField:Account.Industry"].attributes["custom"] is False
    cls = by["ApexClass:InvoiceService"]
    assert "Invoice__c" in cls.attributes["body"] and cls.api_version == "62.0" and cls.status == "Active"
    assert cls.last_modified_by == "Carla Coder" and cls.created_by == "Ada Admin"
    assert by["ApexClass:InvoiceServiceTest"].attributes["is_test"] is True
    trg = by["ApexTrigger:AccountTrigger"]
    assert trg.attributes["object"] == "Account" and trg.attributes["events"] == ["before insert", "before update"]
    flow = by["Flow:Invoice_Approval"]
    assert flow.attributes["active_version"] == 2 and flow.active is True
    assert [(v["version_number"], v["status"]) for v in flow.attributes["versions"]] == [
        (1, "Obsolete"), (2, "Active"), (3, "Draft")]
    assert flow.id == sf_id("301", 2)  # the active version
    assert flow.attributes["trigger_object"] == "Invoice__c"
    assert flow.attributes["trigger_type"] == "RecordAfterSave"
    assert flow.attributes["metadata"]["status"] == "Active"
    vr = by["ValidationRule:Invoice__c.Amount_Positive"]
    assert vr.attributes["error_condition_formula"] == "Amount__c <= 0" and vr.active is True
    assert by["ValidationRule:Account.Region_Required"].active is False
    assert "Layout:Invoice__c-Invoice Layout" in by
    assert by["FlexiPage:Invoice_Record_Page"].attributes["metadata"]["sobjectType"] == "Invoice__c"
    assert by["Profile:Admin"].id == sf_id("00e", 1)  # Metadata API full name of "System Administrator"
    assert by["Profile:Admin"].attributes["label"] == "System Administrator"
    assert "PermissionSet:Invoice_Manager" in by
    assert "RecordType:Opportunity.New_Business" in by
    assert by["Report:Sales_Reports/Open_Invoices"].attributes["folder_name"] == "Sales Reports"
    assert "EmailTemplate:Billing_Templates/Invoice_Reminder" in by
    assert "LightningComponentBundle:invoiceSummary" in by and "AuraDefinitionBundle:accountBanner" in by
    # API calls: counted exactly, and the same number the fake saw.
    with capsys.disabled():
        print(f"\n[live extraction of the fake default org: {inv.stats['api_calls']} API calls, "
              f"api-usage {inv.stats['api_usage']}, by type {inv.stats['api_calls_by_type']}]")
    assert inv.stats["api_calls"] == EXPECTED_CALLS == len(fake_salesforce.requests)
    assert inv.stats["api_usage"] == f"{EXPECTED_CALLS - 1}/5000"
    json.dumps([c.to_dict() for c in inv.components])  # plain data


def test_metadata_is_only_ever_fetched_one_row_at_a_time(make_sf_client, fake_salesforce):
    _, _, inv = _extract(make_sf_client)
    # The fake answers 400 MALFORMED_QUERY to a Metadata/FullName query matching >1 row: none happened.
    assert all(r.status == 200 for r in fake_salesforce.requests)
    for r in fake_salesforce.queries():
        selected = {f.strip().lower() for f in r.soql.split(" FROM ")[0][len("SELECT "):].split(",")}
        if selected & {"metadata", "fullname"}:
            assert r.matched is not None and r.matched <= 1, r.soql
    composite = [r for r in fake_salesforce.requests if r.path.endswith("/tooling/composite")]
    urls = [s["url"] for c in composite for s in c.body["compositeRequest"]]
    assert len(composite) == 5  # Flow, ValidationRule, Layout, FlexiPage, CustomField (picklists)
    assert sum("/Flow/" in u for u in urls) == 2  # one version per flow (active, else latest)
    assert sum("/ValidationRule/" in u for u in urls) == 3


def test_the_fake_would_refuse_a_multi_row_metadata_query(make_sf_client):
    client, _ = make_sf_client()
    with pytest.raises(SalesforceAPIError) as ei:
        client.tooling_query_all("SELECT Id, Metadata FROM ValidationRule")
    assert ei.value.error_code == "MALFORMED_QUERY" and "no more than one row" in str(ei.value)
    with pytest.raises(SalesforceAPIError, match="COUNT"):
        client.tooling_query_all("SELECT COUNT() FROM EntityDefinition")
    with pytest.raises(SalesforceAPIError, match="OR"):
        client.tooling_query_all("SELECT DurableId FROM EntityDefinition WHERE IsCustomizable = true OR "
                                 "IsCustomSetting = true")
    # EntityDefinition ignores LIMIT.
    assert len(client.tooling_query_all("SELECT DurableId FROM EntityDefinition LIMIT 1")) == 5


def test_one_failing_type_becomes_a_finding(make_sf_client, fake_salesforce):
    del fake_salesforce.org.objects["FlexiPage"]  # e.g. an API version / permission gap
    _, _, inv = _extract(make_sf_client)
    assert "FlexiPage" not in inv.counts_by_type() and inv.counts_by_type()["ApexClass"] == 3
    (f,) = inv.findings
    assert f.org == "fake-live" and f.location == "tooling:FlexiPage" and "INVALID_TYPE" in f.message
    assert f.hint
    assert inv.stats["failed_types"] == ["FlexiPage"]


def test_auth_failure_fails_the_whole_extraction(make_sf_client, monkeypatch, fake_salesforce, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SF_FAKE_CLIENT_SECRET", "FAKESECRET-rotated-away-0000")
    client, org = make_sf_client()
    with pytest.raises(SalesforceAuthError) as ei:
        extract_live_inventory(client, org)
    assert "fake-live" in str(ei.value) and "$SF_FAKE_CLIENT_SECRET" in str(ei.value)
    assert "FAKESECRET" not in str(ei.value) + caplog.text


def test_org_down_fails_the_whole_extraction(make_sf_client, fake_salesforce):
    from aicolleague_pipelines.lib.salesforce.client import RetryPolicy

    client, org = make_sf_client(retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    fake_salesforce.stop()
    with pytest.raises(ExtractionError, match="fake-live.*cannot connect"):
        extract_live_inventory(client, org)


def test_session_expiring_during_extraction_is_invisible(make_sf_client, fake_salesforce, caplog):
    caplog.set_level(logging.DEBUG)
    fake_salesforce.org.page_size = 4
    _, _, baseline = _extract(make_sf_client)
    fake_salesforce.requests.clear()
    client, org = make_sf_client("jwt", login_url=fake_salesforce.instance_url)
    client.connect()
    fake_salesforce.faults.expire_session_after = 3  # dies mid-paging of CustomField
    inv = extract_live_inventory(client, org)
    assert [c.key for c in inv.components] == [c.key for c in baseline.components]
    assert inv.stats["reauths"] == 1 and not inv.findings
    blob = json.dumps([c.to_dict() for c in inv.components]) + json.dumps(inv.stats) + caplog.text
    for secret in fake_salesforce.secrets():
        assert secret not in blob


def test_dependencies_resolve_custom_fields_and_standard_objects(make_sf_client, fake_salesforce):
    client, org, inv = _extract(make_sf_client)
    before = len(fake_salesforce.requests)
    deps = fetch_dependencies(client, org, inventory=inv, batch_size=10)
    edges = {(d.source_key, d.target_key) for d in deps}
    assert ("ApexClass:InvoiceService", "CustomField:Invoice__c.Amount__c") in edges
    assert ("ApexClass:InvoiceService", "CustomObject:Invoice__c") in edges
    assert ("ApexTrigger:AccountTrigger", "CustomObject:Account") in edges
    assert ("CustomField:Opportunity.Net_Amount__c", "CustomField:Opportunity.Discount_Percent__c") in edges
    assert ("Flow:Invoice_Approval", "CustomField:Invoice__c.Status__c") in edges
    assert ("ValidationRule:Invoice__c.Amount_Positive", "CustomField:Invoice__c.Amount__c") in edges
    assert ("FlexiPage:Invoice_Record_Page", "LightningComponentBundle:invoiceSummary") in edges
    assert len(deps) == 16  # 17 rows, two flow versions give one edge
    keys = inv.by_key()
    assert all(d.source_key in keys and d.target_key in keys for d in deps)
    flow_row = next(d for d in deps if d.source_key == "Flow:Invoice_Approval")
    assert flow_row.source_id == sf_id("301", 2)  # the active version's row wins
    mcd = [r for r in fake_salesforce.requests[before:] if r.obj == "MetadataComponentDependency"]
    assert len(mcd) == len(fake_salesforce.requests) - before  # only dependency queries, batched
    assert all("MetadataComponentId IN (" in r.soql for r in mcd)


def test_dependencies_without_inventory_resolve_names_themselves(make_sf_client):
    client, org = make_sf_client()
    deps = fetch_dependencies(client, org, [sf_id("01p", 1), sf_id("0Rb", 1)])
    assert {d.target_key for d in deps} == {"CustomObject:Invoice__c", "CustomField:Invoice__c.Amount__c",
                                            "CustomField:Invoice__c.Account__c", "ApexClass:InvoiceService"}


def test_dependency_cap_splits_batches(make_sf_client, fake_salesforce):
    org_data = fake_salesforce.org
    ids = [sf_id("01p", 101), sf_id("01p", 102), sf_id("01p", 103)]
    for k, i in enumerate(ids):
        org_data.add_dependencies(i, "ApexClass", f"Big{k}", 900, start=k * 1000)
    client, org = make_sf_client()
    findings = []
    deps = fetch_dependencies(client, org, ids, batch_size=3, findings=findings)
    assert len(deps) == 2700 and not findings
    mcd = [r for r in fake_salesforce.requests if r.obj == "MetadataComponentDependency"]
    assert mcd[0].matched == 2000  # capped, detected, split
    assert [r.matched for r in mcd] == [2000, 900, 1800]  # [a,b,c] → [a] + [b,c]
    # A single component beyond the cap is reported, not silently truncated.
    org_data.add_dependencies(sf_id("01p", 104), "ApexClass", "Huge", 2100, start=10_000)
    findings.clear()
    fetch_dependencies(client, org, [sf_id("01p", 104)], findings=findings)
    assert len(findings) == 1 and "use_bulk=True" in findings[0].hint


def test_dependency_bulk_mode_matches_tooling(make_sf_client, fake_salesforce):
    fake_salesforce.org.bulk_page_size = 5
    client, org, inv = _extract(make_sf_client)
    via_tooling = fetch_dependencies(client, org, inventory=inv)
    via_bulk = fetch_dependencies(client, org, inventory=inv, use_bulk=True)
    assert {(d.source_key, d.target_key) for d in via_bulk} == {(d.source_key, d.target_key) for d in via_tooling}
    assert any(r.path.endswith("/tooling/jobs/query") for r in fake_salesforce.requests)


def test_long_urls_get_smaller_batches(make_sf_client, fake_salesforce):
    fake_salesforce.org.max_url_length = 1200
    client, org, inv = _extract(make_sf_client)
    deps = fetch_dependencies(client, org, inventory=inv, batch_size=100)
    assert len(deps) == 16
    assert any(r.status == 431 for r in fake_salesforce.requests)


def test_audit_trail_since(make_sf_client):
    client, org = make_sf_client()
    events = fetch_audit_trail(client, org, None)
    assert [e.action for e in events] == ["createdCF", "changedApexClass", "activatedFlow",
                                          "changedValidationFormula", "PermSetFlsChanged"]
    assert events[0].created_by == "Ada Admin"
    later = fetch_audit_trail(client, org, events[2].created_date)
    assert [e.action for e in later] == ["changedValidationFormula", "PermSetFlsChanged"]
    assert fetch_audit_trail(client, org, "2024-06-01T18:45:00+02:00")[0].action == "PermSetFlsChanged"
    with pytest.raises(ExtractionError, match="ISO datetime"):
        fetch_audit_trail(client, org, "yesterday' OR Id != null")


def test_fields_hidden_by_field_level_security_are_kept_and_reported(make_sf_client, fake_salesforce):
    d = fake_salesforce.org.describes["Invoice__c"]
    d["fields"] = [f for f in d["fields"] if f["name"] != "Tax__c"]  # describe omits FLS-hidden fields
    _, _, inv = _extract(make_sf_client)
    tax = inv.by_key()["CustomField:Invoice__c.Tax__c"]
    assert tax.id and tax.id.startswith("00N") and tax.attributes["data_type"].startswith("Formula")
    assert not inv.findings  # FieldDefinition still gave the type
    del fake_salesforce.org.objects["FieldDefinition"].records[:]
    fake_salesforce.requests.clear()
    _, _, inv2 = _extract(make_sf_client)
    assert "CustomField:Invoice__c.Tax__c" in inv2.by_key()
    (f,) = [f for f in inv2.findings if "not visible" in f.message]
    assert "Invoice__c.Tax__c" in f.message and f.severity == "warning"


def test_dependency_mode_bulk_and_auto_fallback(fake_salesforce_env, monkeypatch) -> None:
    """`dependencies: bulk` goes through Bulk API 2.0; `auto` on a big org falls back to Tooling
    Id batches when the bulk job fails, with a warning finding."""
    import dataclasses

    from aicolleague_pipelines.lib.salesforce import extract
    from aicolleague_pipelines.lib.salesforce.extract import extract_dependencies, extract_inventory

    fake = fake_salesforce_env
    org = dataclasses.replace(fake.org_config("client_credentials"), retry_attempts=2, retry_base_delay=0.01)
    inventory = extract_inventory(org)
    rows, notes = extract_dependencies(dataclasses.replace(org, dependency_mode="bulk"), inventory)
    assert rows and not notes
    assert any("/tooling/jobs/query" in r.path for r in fake.requests)

    fake.requests.clear()
    monkeypatch.setattr(extract, "BULK_DEPENDENCY_THRESHOLD", 1)
    fake.faults.fail(500, times=10, path_contains="/tooling/jobs/query")
    rows2, notes2 = extract_dependencies(dataclasses.replace(org, dependency_mode="auto"), inventory)
    assert {(r.source_key, r.target_key) for r in rows2} == {(r.source_key, r.target_key) for r in rows}
    assert len(notes2) == 1 and "fell back" in notes2[0].message
    rows3, _ = extract_dependencies(dataclasses.replace(org, dependency_mode="off"), inventory)
    assert rows3 == []


def test_classification_and_shield_encryption_read_live(monkeypatch) -> None:
    """The SFDX fixture with a Shield-encrypted, classified field served by the fake and read live:
    compliance group, sensitivity level, ``encrypted`` (describe) and the encryption scheme (the
    field's Tooling ``Metadata``) all reach the inventory and the graph node, as from SFDX."""
    from pathlib import Path

    from aicolleague_pipelines.lib.graph.build import node_for
    from aicolleague_pipelines.lib.salesforce.client import RetryPolicy, SalesforceClient
    from aicolleague_pipelines_tests.fakes.salesforce import FakeSalesforce, demo_org

    org, sfdx = demo_org(Path(__file__).parent / "fixtures" / "sfdx" / "multi_pkg", "multi")
    with FakeSalesforce(org) as fake:
        for var, value in fake.env_for("client_credentials").items():
            monkeypatch.setenv(var, value)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        config = fake.org_config("client_credentials", name="multi")
        client = SalesforceClient(config, retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01))
        live = extract_live_inventory(client, config)
        client.close()
    keep = ("encrypted", "encryption_scheme", "compliance_group", "security_classification")
    key = "CustomField:Invoice__c.Tax_Id__c"
    got = {k: live.by_key()[key].attributes.get(k) for k in keep}
    assert got == {k: sfdx.by_key()[key].attributes.get(k) for k in keep} == {
        "encrypted": True, "encryption_scheme": "ProbabilisticEncryption", "compliance_group": "PII;GDPR",
        "security_classification": "Restricted"}
    node = node_for(live.by_key()[key]).attrs
    assert node["encrypted"] is True and node["encryption_scheme"] == "ProbabilisticEncryption"
    assert node["compliance_group"] == "PII;GDPR" and node["security_classification"] == "Restricted"
    assert not any(c.attributes.get("encryption_scheme") for c in live.components if c.key != key)
