"""Declarative metadata and UI bundle references: fields, rules, workflow, layouts, Lightning
pages, permission sets / profiles, reports, custom metadata, email templates, LWC, Aura and
Visualforce."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph.model import (
    CALLS,
    CHILD_OF,
    CONTROLLED_BY,
    EXTENDS,
    GRANTS,
    IMPORTS,
    LOOKUP_TO,
    READ,
    RECORD_TYPE_OF,
    REFERENCES,
    SHOWS,
    USES_VALUE_SET,
    WRITE,
)
from aicolleague_pipelines.lib.graph.parsers.bundles import kebab_to_camel, parse_bundle
from aicolleague_pipelines.lib.graph.parsers.metadata import parse_metadata, report_objects
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.safe_xml import element_to_dict, parse_xml_bytes
from aicolleague_pipelines.lib.salesforce.model import Component

NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'


def md(root: str, xml: str) -> dict:
    return element_to_dict(parse_xml_bytes(f"<{root} {NS}>{xml}</{root}>"))


def comp(type_: str, name: str, **attrs) -> Component:
    return Component(type_, name, attributes=attrs)


def rows(refs) -> set[tuple]:
    return {(r.target, r.kind, r.access) for r in refs}


def targets(refs) -> set[str]:
    return {r.target for r in refs}


@pytest.fixture(scope="module")
def schema() -> Schema:
    f = lambda n, **a: Component("CustomField", n, attributes=a)  # noqa: E731
    return Schema(
        [
            Component("CustomObject", "Account"),
            Component("CustomObject", "Program__c"),
            Component("CustomObject", "ServiceDelivery__c"),
            Component("CustomObject", "Invoice__c"),
            f("Account.Industry"),
            f("Account.Region__c", value_set="Region"),
            f("Account.Customer_Tier__c"),
            f("Account.Health_Status__c", formula="IF(Health_Score__c > 50, 'OK', 'Bad')"),
            f("Program__c.Account__c", reference_to=["Account"], relationship_name="Programs"),
            f("Program__c.Status__c"),
            f("Program__c.Budget__c"),
            f("ServiceDelivery__c.Program__c", reference_to=["Program__c"], relationship_name="Deliveries"),
            f("ServiceDelivery__c.Hours__c"),
            f("Invoice__c.Account__c", reference_to=["Account"], relationship_name="Invoices"),
            f("Invoice__c.Amount__c"),
            Component("ApexClass", "InvoiceService"),
            Component("ApexClass", "ProgramController"),
            Component("Flow", "Intake"),
            Component("LightningComponentBundle", "programSummary"),
            Component("AuraDefinitionBundle", "deliveryLogger"),
            Component("GlobalValueSet", "Region"),
        ]
    )


# --- CustomField / ValidationRule / RecordType -------------------------------------------
def test_custom_field_edges(schema):
    c = comp(
        "CustomField",
        "Account.Sub_Region__c",
        controlling_field="region__c",
        value_set="region",
        formula=None,
        default_value='"EMEA"',
    )
    assert rows(parse_metadata(c, schema)) == {
        ("CustomObject:Account", CHILD_OF, None),
        ("CustomField:Account.Region__c", CONTROLLED_BY, READ),
        ("GlobalValueSet:Region", USES_VALUE_SET, None),
    }


def test_lookup_and_formula_field(schema):
    lookup = comp("CustomField", "Program__c.Account__c", reference_to=["Account"])
    assert rows(parse_metadata(lookup, schema)) == {
        ("CustomObject:Program__c", CHILD_OF, None),
        ("CustomObject:Account", LOOKUP_TO, None),
    }
    formula = comp("CustomField", "ServiceDelivery__c.Client__c", formula="Program__r.Account__r.Industry & \"x\"")
    assert rows(parse_metadata(formula, schema)) == {
        ("CustomObject:ServiceDelivery__c", CHILD_OF, None),
        ("CustomField:ServiceDelivery__c.Program__c", REFERENCES, READ),
        ("CustomField:Program__c.Account__c", REFERENCES, READ),
        ("CustomField:Account.Industry", REFERENCES, READ),
    }


def test_roll_up_summary_and_lookup_filter(schema):
    c = comp(
        "CustomField",
        "Program__c.Total_Hours__c",
        summarized_field="ServiceDelivery__c.Hours__c",
        summary_foreign_key="ServiceDelivery__c.Program__c",
        summary_filter_items=[{"field": "ServiceDelivery__c.Billable__c", "operation": "equals", "value": "true"}],
    )
    got = rows(parse_metadata(c, schema))
    assert {
        ("CustomField:ServiceDelivery__c.Hours__c", REFERENCES, READ),
        ("CustomField:ServiceDelivery__c.Program__c", REFERENCES, READ),
        ("CustomObject:ServiceDelivery__c", REFERENCES, READ),
        ("CustomField:ServiceDelivery__c.Billable__c", REFERENCES, READ),
    } <= got
    lf = comp(
        "CustomField",
        "Invoice__c.Program__c",
        reference_to=["Program__c"],
        lookup_filter={"filterItems": [{"field": "Program__c.Account__c", "operation": "equals", "valueField": "$Source.Account__c"}]},
    )
    got = rows(parse_metadata(lf, schema))
    assert ("CustomField:Program__c.Account__c", REFERENCES, READ) in got
    assert ("CustomField:Invoice__c.Account__c", REFERENCES, READ) in got


def test_validation_rule(schema):
    c = Component(
        "ValidationRule",
        "Account.Tier_Needs_Industry",
        parent="CustomObject:Account",
        attributes={
            "error_condition_formula": 'AND(ISPICKVAL(Customer_Tier__c, "Gold"), ISBLANK(Industry), $Profile.Name <> "Admin")',
            "error_display_field": "Industry",
        },
    )
    assert rows(parse_metadata(c, schema)) == {
        ("CustomObject:Account", CHILD_OF, None),
        ("CustomField:Account.Customer_Tier__c", REFERENCES, READ),
        ("CustomField:Account.Industry", REFERENCES, READ),
        ("CustomField:Profile.Name", REFERENCES, READ),
    }


def test_record_type(schema):
    meta = md("RecordType", "<fullName>Partner</fullName><active>true</active>"
              "<picklistValues><picklist>Industry</picklist><values><fullName>Tech</fullName></values></picklistValues>")
    c = comp("RecordType", "Account.Partner", metadata=meta)
    assert rows(parse_metadata(c, schema)) == {
        ("CustomObject:Account", RECORD_TYPE_OF, None),
        ("CustomField:Account.Industry", REFERENCES, READ),
    }


# --- Workflow -----------------------------------------------------------------------------
def test_workflow_rule_and_field_update(schema):
    rule = comp(
        "WorkflowRule",
        "Invoice__c.Overdue",
        formula=None,
        criteria=[{"field": "Invoice__c.Amount__c", "operation": "greaterThan", "value": "0"},
                  {"field": "User.Department", "operation": "equals", "value": "Billing"}],
        actions=[{"name": "Mark_Overdue", "type": "FieldUpdate"}, {"name": "Mail", "type": "Alert"}],
    )
    assert rows(parse_metadata(rule, schema)) == {
        ("CustomObject:Invoice__c", CHILD_OF, None),
        ("CustomField:Invoice__c.Amount__c", REFERENCES, READ),
        ("CustomField:User.Department", REFERENCES, READ),
        ("WorkflowFieldUpdate:Invoice__c.Mark_Overdue", REFERENCES, None),
    }
    upd = comp("WorkflowFieldUpdate", "Invoice__c.Mark_Overdue", field="Status__c", formula="IF(Amount__c > 0, 'Overdue', 'Open')")
    assert rows(parse_metadata(upd, schema)) == {
        ("CustomObject:Invoice__c", CHILD_OF, None),
        ("CustomField:Invoice__c.Status__c", REFERENCES, WRITE),
        ("CustomField:Invoice__c.Amount__c", REFERENCES, READ),
    }
    cross = comp("WorkflowFieldUpdate", "Invoice__c.Touch_Account", field="Industry", target_object="Account__c")
    assert ("CustomField:Account.Industry", REFERENCES, WRITE) in rows(parse_metadata(cross, schema))


# --- Layout -------------------------------------------------------------------------------
LAYOUT = """
<customButtons>Print_Invoice</customButtons>
<layoutSections><layoutColumns>
  <layoutItems><behavior>Required</behavior><field>Name</field></layoutItems>
  <layoutItems><behavior>Edit</behavior><field>industry</field></layoutItems>
  <layoutItems><behavior>Edit</behavior><field>Health_Status__c</field></layoutItems>
  <layoutItems><behavior>Readonly</behavior><field>Customer_Tier__c</field></layoutItems>
  <layoutItems><height>200</height><page>AccountMap</page></layoutItems>
</layoutColumns></layoutSections>
<relatedLists><fields>NAME</fields><fields>Status__c</fields><relatedList>Program__c.Account__c</relatedList></relatedLists>
<relatedLists><fields>CONTACT.TITLE</fields><fields>CONTACT.EMAIL</fields><relatedList>RelatedContactList</relatedList></relatedLists>
"""


def test_layout(schema):
    c = comp("Layout", "Account-Account Layout", metadata=md("Layout", LAYOUT))
    got = rows(parse_metadata(c, schema))
    assert got == {
        ("CustomObject:Account", CHILD_OF, None),
        ("CustomField:Account.Name", SHOWS, WRITE),
        ("CustomField:Account.Industry", SHOWS, WRITE),
        ("CustomField:Account.Health_Status__c", SHOWS, READ),  # a formula is never edited
        ("CustomField:Account.Customer_Tier__c", SHOWS, READ),
        ("ApexPage:AccountMap", SHOWS, None),
        ("WebLink:Account.Print_Invoice", SHOWS, None),
        ("CustomField:Program__c.Account__c", SHOWS, READ),
        ("CustomField:Program__c.Name", SHOWS, READ),
        ("CustomField:Program__c.Status__c", SHOWS, READ),
        ("CustomField:Contact.Title", SHOWS, READ),
        ("CustomField:Contact.Email", SHOWS, READ),
    }


# --- FlexiPage ----------------------------------------------------------------------------
FLEXIPAGE = """
<flexiPageRegions>
  <itemInstances><fieldInstance>
    <fieldInstanceProperties><name>uiBehavior</name><value>none</value></fieldInstanceProperties>
    <fieldItem>Record.Industry</fieldItem></fieldInstance></itemInstances>
  <itemInstances><fieldInstance>
    <fieldInstanceProperties><name>uiBehavior</name><value>readonly</value></fieldInstanceProperties>
    <fieldItem>Record.Customer_Tier__c</fieldItem></fieldInstance></itemInstances>
  <itemInstances><componentInstance>
    <componentInstanceProperties><name>title</name><value>Programs</value></componentInstanceProperties>
    <componentName>c:programSummary</componentName>
    <visibilityRule><criteria><leftValue>{!Record.Region__c}</leftValue><operator>EQUAL</operator><rightValue>EMEA</rightValue></criteria></visibilityRule>
  </componentInstance></itemInstances>
  <itemInstances><componentInstance><componentName>c:deliveryLogger</componentName></componentInstance></itemInstances>
  <itemInstances><componentInstance>
    <componentInstanceProperties><name>relatedListApiName</name><value>Programs__r</value></componentInstanceProperties>
    <componentName>force:relatedListSingleContainer</componentName></componentInstance></itemInstances>
  <itemInstances><componentInstance>
    <componentInstanceProperties><name>flowName</name><value>intake</value></componentInstanceProperties>
    <componentName>flowruntime:interview</componentName></componentInstance></itemInstances>
  <itemInstances><componentInstance><componentName>force:highlightsPanel</componentName></componentInstance></itemInstances>
  <name>main</name><type>Region</type>
</flexiPageRegions>
<pageTemplate>flexipage:recordHomeTemplateDesktop</pageTemplate>
<sobjectType>Account</sobjectType>
<type>RecordPage</type>
"""


def test_flexipage(schema):
    c = comp("FlexiPage", "Account_Record_Page", metadata=md("FlexiPage", FLEXIPAGE))
    assert rows(parse_metadata(c, schema)) == {
        ("CustomObject:Account", REFERENCES, READ),
        ("CustomField:Account.Industry", SHOWS, WRITE),
        ("CustomField:Account.Customer_Tier__c", SHOWS, READ),
        ("LightningComponentBundle:programSummary", SHOWS, None),
        ("AuraDefinitionBundle:deliveryLogger", SHOWS, None),  # an Aura bundle in this org
        ("CustomField:Account.Region__c", REFERENCES, READ),
        ("CustomField:Program__c.Account__c", SHOWS, READ),
        ("Flow:Intake", REFERENCES, None),
    }


# --- PermissionSet / Profile --------------------------------------------------------------
PERMSET = """
<classAccesses><apexClass>InvoiceService</apexClass><enabled>true</enabled></classAccesses>
<classAccesses><apexClass>ProgramController</apexClass><enabled>false</enabled></classAccesses>
<customPermissions><enabled>true</enabled><name>Approve_Discounts</name></customPermissions>
<fieldPermissions><editable>true</editable><field>Account.Industry</field><readable>true</readable></fieldPermissions>
<fieldPermissions><editable>false</editable><field>Account.Customer_Tier__c</field><readable>true</readable></fieldPermissions>
<fieldPermissions><editable>false</editable><field>Account.Region__c</field><readable>false</readable></fieldPermissions>
<objectPermissions><allowCreate>false</allowCreate><allowDelete>false</allowDelete><allowEdit>true</allowEdit>
  <allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords><object>Invoice__c</object><viewAllRecords>false</viewAllRecords></objectPermissions>
<objectPermissions><allowCreate>false</allowCreate><allowDelete>false</allowDelete><allowEdit>false</allowEdit>
  <allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords><object>Program__c</object><viewAllRecords>false</viewAllRecords></objectPermissions>
<objectPermissions><allowCreate>false</allowCreate><allowDelete>false</allowDelete><allowEdit>false</allowEdit>
  <allowRead>false</allowRead><modifyAllRecords>false</modifyAllRecords><object>ServiceDelivery__c</object><viewAllRecords>false</viewAllRecords></objectPermissions>
<pageAccesses><apexPage>InvoicePrint</apexPage><enabled>true</enabled></pageAccesses>
<recordTypeVisibilities><recordType>Account.Partner</recordType><visible>true</visible></recordTypeVisibilities>
<recordTypeVisibilities><recordType>Account.Hidden</recordType><visible>false</visible></recordTypeVisibilities>
<tabSettings><tab>Invoice__c</tab><visibility>Visible</visibility></tabSettings>
<tabSettings><tab>standard-Account</tab><visibility>Visible</visibility></tabSettings>
<flowAccesses><enabled>true</enabled><flow>Intake</flow></flowAccesses>
"""


def test_permission_set_read_vs_edit_and_only_enabled_grants(schema):
    c = comp("PermissionSet", "Billing", metadata=md("PermissionSet", PERMSET))
    got = rows(parse_metadata(c, schema))
    assert got == {
        ("ApexClass:InvoiceService", GRANTS, None),
        ("CustomPermission:Approve_Discounts", GRANTS, None),
        ("CustomField:Account.Industry", GRANTS, WRITE),
        ("CustomField:Account.Customer_Tier__c", GRANTS, READ),
        ("CustomObject:Invoice__c", GRANTS, WRITE),
        ("CustomObject:Program__c", GRANTS, READ),
        ("ApexPage:InvoicePrint", GRANTS, None),
        ("RecordType:Account.Partner", GRANTS, None),
        ("CustomTab:Invoice__c", GRANTS, None),
        ("Flow:Intake", GRANTS, None),
    }


def test_profile_uses_the_same_rules_plus_layout_assignments(schema):
    xml = PERMSET + "<layoutAssignments><layout>Account-Account Layout</layout></layoutAssignments>"
    got = rows(parse_metadata(comp("Profile", "Admin", metadata=md("Profile", xml)), schema))
    assert ("Layout:Account-Account Layout", GRANTS, None) in got
    assert ("ApexClass:ProgramController", GRANTS, None) not in got


# --- Report -------------------------------------------------------------------------------
def test_report_on_a_standard_report_type_with_legacy_columns(schema):
    xml = """<columns><field>ACCOUNT.NAME</field></columns><columns><field>INDUSTRY</field></columns>
    <columns><field>Account.Customer_Tier__c</field></columns><columns><field>ROWCOUNT_NOT_A_FIELD</field></columns>
    <filter><criteriaItems><column>ACCOUNT.ADDRESS1_CITY</column><operator>equals</operator><value>Paris</value></criteriaItems></filter>
    <groupingsDown><field>Account.Region__c</field></groupingsDown>
    <reportType>AccountList</reportType>"""
    got = rows(parse_metadata(comp("Report", "F/R", metadata=md("Report", xml)), schema))
    assert got == {
        ("CustomObject:Account", REFERENCES, READ),
        ("CustomField:Account.Name", SHOWS, READ),
        ("CustomField:Account.Industry", SHOWS, READ),
        ("CustomField:Account.Customer_Tier__c", SHOWS, READ),
        ("CustomField:Account.BillingCity", SHOWS, READ),
        ("CustomField:Account.Region__c", SHOWS, READ),
    }


def test_report_on_custom_objects_and_custom_report_types(schema):
    xml = """<columns><field>CUST_NAME</field></columns><columns><field>Program__c.Account__c</field></columns>
    <columns><field>ServiceDelivery__c.Hours__c</field></columns>
    <aggregates><calculatedFormula>ServiceDelivery__c.Hours__c:SUM / RowCount</calculatedFormula><developerName>F1</developerName></aggregates>
    <crossFilters><criteriaItems><column>Amount__c</column><operator>greaterThan</operator><value>0</value></criteriaItems>
      <operation>with</operation><primaryTableColumn>CUST_ID</primaryTableColumn><relatedTable>Invoice__c</relatedTable>
      <relatedTableJoinColumn>Account__c</relatedTableJoinColumn></crossFilters>
    <reportType>CustomEntityCustomEntity$Program__c$ServiceDelivery__c</reportType>"""
    got = rows(parse_metadata(comp("Report", "F/R2", metadata=md("Report", xml)), schema))
    assert {
        ("CustomObject:Program__c", REFERENCES, READ),
        ("CustomObject:ServiceDelivery__c", REFERENCES, READ),
        ("CustomField:Program__c.Name", SHOWS, READ),
        ("CustomField:Program__c.Account__c", SHOWS, READ),
        ("CustomField:ServiceDelivery__c.Hours__c", SHOWS, READ),
        ("CustomObject:Invoice__c", REFERENCES, READ),
        ("CustomField:Invoice__c.Account__c", REFERENCES, READ),
        ("CustomField:Invoice__c.Amount__c", SHOWS, READ),
    } <= got
    crt = """<columns><field>Program__c$Status__c</field></columns>
    <columns><field>Program__c.Deliveries__r$Hours__c</field></columns><reportType>Programs_with_Deliveries__c</reportType>"""
    got = rows(parse_metadata(comp("Report", "F/R3", metadata=md("Report", crt)), schema))
    assert got == {
        ("ReportType:Programs_with_Deliveries__c", REFERENCES, None),
        ("CustomField:Program__c.Status__c", SHOWS, READ),
        ("CustomField:ServiceDelivery__c.Program__c", SHOWS, READ),
        ("CustomField:ServiceDelivery__c.Hours__c", SHOWS, READ),
    }


def test_report_objects(schema):
    assert report_objects("Opportunity", schema) == (["Opportunity"], None)
    assert report_objects("CustomEntity$program__c", schema) == (["Program__c"], None)
    assert report_objects("AccountCustomEntity$Invoice__c", schema) == (["Account", "Invoice__c"], None)
    assert report_objects("My_CRT__c", schema) == ([], "My_CRT__c")


# --- CustomMetadata / EmailTemplate / CustomTab -------------------------------------------
def test_custom_metadata_record(schema):
    c = comp("CustomMetadata", "Integration_Setting.ERP", object="Integration_Setting__mdt",
             values={"Endpoint_URL__c": "https://x", "Active__c": "true"})
    assert rows(parse_metadata(c, schema)) == {
        ("CustomObject:Integration_Setting__mdt", CHILD_OF, None),
        ("CustomField:Integration_Setting__mdt.Endpoint_URL__c", REFERENCES, None),
        ("CustomField:Integration_Setting__mdt.Active__c", REFERENCES, None),
    }


def test_classic_email_template(schema):
    body = "Dear {!Contact.FirstName},\ninvoice {!Invoice__c.Amount__c} for {!Invoice__c.Account__r.Industry}\nfrom {!Sending_User.Email} — {!NotAnObject}"
    meta = md("EmailTemplate", "<subject>Invoice {!Invoice__c.Name}</subject><type>text</type>")
    refs = parse_metadata(comp("EmailTemplate", "Billing/Overdue", body=body, metadata=meta), schema)
    assert rows(refs) == {
        ("CustomField:Contact.FirstName", REFERENCES, READ),
        ("CustomField:Invoice__c.Amount__c", REFERENCES, READ),
        ("CustomField:Invoice__c.Account__c", REFERENCES, READ),
        ("CustomField:Account.Industry", REFERENCES, READ),
        ("CustomField:User.Email", REFERENCES, READ),
        ("CustomField:Invoice__c.Name", REFERENCES, READ),
    }
    assert {r.line for r in refs if r.target == "CustomField:Account.Industry"} == {2}


def test_lightning_and_visualforce_email_templates(schema):
    lightning = comp("EmailTemplate", "L/T", body="Hi {{{Account.Name}}}, tier {{{Account.Customer_Tier__c}}}",
                     metadata={"type": "custom", "relatedEntityType": "Account"})
    assert {"CustomField:Account.Name", "CustomField:Account.Customer_Tier__c", "CustomObject:Account"} <= targets(
        parse_metadata(lightning, schema)
    )
    vf = comp("EmailTemplate", "V/T", metadata={"type": "visualforce"}, body=(
        '<messaging:emailTemplate subject="Program {!relatedTo.Name}" recipientType="Contact" relatedToType="Program__c">\n'
        '<messaging:plainTextEmailBody>{!recipient.FirstName}: {!relatedTo.Account__r.Industry}</messaging:plainTextEmailBody>\n'
        "</messaging:emailTemplate>"))
    assert {
        "CustomObject:Program__c", "CustomObject:Contact", "CustomField:Program__c.Name", "CustomField:Contact.FirstName",
        "CustomField:Program__c.Account__c", "CustomField:Account.Industry",
    } <= targets(parse_metadata(vf, schema))


def test_custom_tab_and_types_without_references(schema):
    assert rows(parse_metadata(comp("CustomTab", "Invoice__c", metadata={"customObject": "true"}), schema)) == {
        ("CustomObject:Invoice__c", REFERENCES, None)
    }
    assert parse_metadata(comp("GlobalValueSet", "Region", metadata={"customValue": []}), schema) == []
    assert parse_metadata(comp("ApexClass", "X", body="class X {}"), schema) == []


# --- LWC / Aura / Visualforce -------------------------------------------------------------
LWC_JS = """import { LightningElement, wire } from 'lwc';
import getOpen from '@salesforce/apex/InvoiceService.getOpenInvoices';
import ns from '@salesforce/apex/acme.Remote.call';
import INDUSTRY from '@salesforce/schema/Account.Industry';
import TIER from "@salesforce/schema/Program__c.Account__r.Customer_Tier__c";
import ACCOUNT from '@salesforce/schema/Account';
import GREETING from '@salesforce/label/c.Greeting';
import CAN from '@salesforce/customPermission/Approve';
import { util } from 'c/sharedUtils';
// import old from '@salesforce/apex/Legacy.method';
/* import x from '@salesforce/schema/Account.Hidden__c'; */
export default class X extends LightningElement {
    @wire(getRecord, { recordId: '$recordId', fields: ['Account.Name', 'Account.Region__c'] }) rec;
}
"""
LWC_HTML = """<template>
  <c-child-comp record-id={recordId}></c-child-comp>
  <!-- <c-commented-out></c-commented-out> -->
  <lightning-record-edit-form object-api-name="Account" record-id={recordId}>
    <lightning-input-field field-name="Industry"></lightning-input-field>
    <lightning-output-field field-name="Customer_Tier__c"></lightning-output-field>
  </lightning-record-edit-form>
  <lightning-record-view-form object-api-name={objectApiName}>
    <lightning-output-field field-name="Dynamic__c"></lightning-output-field>
  </lightning-record-view-form>
  <lightning-button label="Go"></lightning-button>
</template>"""


def test_lwc_imports_calls_and_children(schema):
    c = comp("LightningComponentBundle", "programSummary", files={"programSummary.js": LWC_JS, "programSummary.html": LWC_HTML},
             metadata={"targetConfigs": {"targetConfig": [{"objects": {"object": "Account"}}]}})
    refs = parse_bundle(c, schema)
    got = rows(refs)
    assert {
        ("ApexClass:InvoiceService", CALLS, None),
        ("ApexClass:acme__Remote", CALLS, None),
        ("CustomField:Account.Industry", IMPORTS, READ),
        ("CustomField:Program__c.Account__c", IMPORTS, READ),
        ("CustomField:Account.Customer_Tier__c", IMPORTS, READ),
        ("CustomObject:Account", IMPORTS, READ),
        ("CustomLabel:Greeting", IMPORTS, None),
        ("CustomPermission:Approve", IMPORTS, None),
        ("LightningComponentBundle:sharedUtils", IMPORTS, None),
        ("CustomField:Account.Name", REFERENCES, READ),
        ("CustomField:Account.Region__c", REFERENCES, READ),
        ("LightningComponentBundle:childComp", REFERENCES, None),
        ("CustomObject:Account", REFERENCES, READ),
        ("CustomField:Account.Industry", REFERENCES, WRITE),
        ("CustomField:Account.Customer_Tier__c", REFERENCES, READ),
    } <= got
    t = targets(refs)
    assert "ApexClass:Legacy" not in t and "CustomField:Account.Hidden__c" not in t
    assert "LightningComponentBundle:commentedOut" not in t
    assert not any("Dynamic__c" in x or "button" in x.lower() or "card" in x.lower() for x in t)
    line = {(r.target, r.kind): (r.line, r.detail) for r in refs}
    assert line[("ApexClass:InvoiceService", CALLS)] == (2, "programSummary.js getOpenInvoices")
    assert line[("LightningComponentBundle:childComp", REFERENCES)][0] == 2


def test_kebab_to_camel():
    assert kebab_to_camel("child-comp") == "childComp"
    assert kebab_to_camel("my-a-b-c") == "myABC"
    assert kebab_to_camel("single") == "single"


def test_aura_bundle(schema):
    cmp_ = """<aura:component controller="ProgramController" extends="c:baseCmp" implements="force:hasRecordId">
    <aura:registerEvent name="saved" type="c:savedEvent"/>
    <c:programSummary recordId="{!v.recordId}"/>
    <c:otherCmp/>
    <lightning:button label="{!$Label.c.Save}" onclick="{!c.handleSave}"/>
</aura:component>"""
    js = '({ handleSave: function(cmp) { var a = cmp.get("c.save"); $A.createComponent("c:popup", {}, function(){}); } })'
    refs = parse_bundle(comp("AuraDefinitionBundle", "deliveryLogger", files={"deliveryLogger.cmp": cmp_, "deliveryLoggerController.js": js}), schema)
    got = rows(refs)
    assert {
        ("ApexClass:ProgramController", CALLS, None),
        ("AuraDefinitionBundle:baseCmp", EXTENDS, None),
        ("AuraDefinitionBundle:savedEvent", REFERENCES, None),
        ("LightningComponentBundle:programSummary", REFERENCES, None),  # the org defines it as LWC
        ("AuraDefinitionBundle:otherCmp", REFERENCES, None),
        ("CustomLabel:Save", REFERENCES, None),
        ("AuraDefinitionBundle:popup", REFERENCES, None),
    } <= got
    t = targets(refs)
    assert not any(x.endswith((":save", ":handleSave", ":hasRecordId")) for x in t)
    assert all(r.target != "AuraDefinitionBundle:deliveryLogger" for r in refs)


def test_visualforce_page(schema):
    page = """<apex:page standardController="Account" extensions="InvoiceService, acme.Ext" recordSetVar="accts">
  <h1>{!Account.Name}</h1> <!-- {!Account.Hidden__c} -->
  <apex:inputField value="{!Account.Industry}"/>
  <apex:outputText value="{!IF(Account.Customer_Tier__c == 'Gold', $Label.Gold, someProperty)}"/>
  <apex:repeat value="{!Account.Programs__r}" var="p">{!p.Status__c} {!p.Account__r.Region__c}</apex:repeat>
  <apex:include pageName="Footer"/>
  <c:invoiceTable/>
  <script>var x = "{!$Setup.Acme_Settings__c.Rate__c}";</script>
</apex:page>"""
    refs = parse_bundle(comp("ApexPage", "AccountSummary", body=page), schema)
    got = rows(refs)
    assert {
        ("CustomObject:Account", REFERENCES, READ),
        ("ApexClass:InvoiceService", CALLS, None),
        ("ApexClass:acme__Ext", CALLS, None),
        ("CustomField:Account.Name", REFERENCES, READ),
        ("CustomField:Account.Industry", REFERENCES, WRITE),
        ("CustomField:Account.Customer_Tier__c", REFERENCES, READ),
        ("CustomLabel:Gold", REFERENCES, None),
        ("CustomField:Program__c.Status__c", REFERENCES, READ),
        ("CustomField:Program__c.Account__c", REFERENCES, READ),
        ("CustomField:Account.Region__c", REFERENCES, READ),
        ("ApexPage:Footer", REFERENCES, None),
        ("ApexComponent:invoiceTable", REFERENCES, None),
        ("CustomField:Acme_Settings__c.Rate__c", REFERENCES, READ),
    } <= got
    t = targets(refs)
    assert "CustomField:Account.Hidden__c" not in t
    assert not any("someProperty" in x for x in t)
    assert ("CustomField:Account.Industry", REFERENCES, READ) not in got
    assert {r.line for r in refs if r.target == "CustomField:Account.Industry"} == {3}


def test_controller_page(schema):
    refs = parse_bundle(comp("ApexPage", "P", body='<apex:page controller="programcontroller">{!programs}</apex:page>'), schema)
    assert rows(refs) == {("ApexClass:ProgramController", CALLS, None)}


# --- the demo orgs: every component parses, nothing points at a broken name -------------------
DEMO = Path(__file__).resolve().parents[1] / "aicolleague_pipelines" / "demo" / "orgs"


@pytest.mark.skipif(not DEMO.is_dir(), reason="no demo orgs")
@pytest.mark.parametrize("org", sorted(p.name for p in DEMO.iterdir() if p.is_dir()) if DEMO.is_dir() else [])
def test_demo_orgs_parse_without_custom_targets_the_org_lacks(org):
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

    inv = read_sfdx_project(DEMO / org, org)
    schema = Schema(inv.components)
    keys = {c.key.lower() for c in inv.components}
    missing = set()
    total = 0
    for c in inv.components:
        refs = parse_metadata(c, schema)
        total += len(refs)
        for r in refs:
            type_, _, name = r.target.partition(":")
            if type_ == "CustomField":  # standard fields of custom objects are fine
                obj, _, fld = name.partition(".")
                unknown = (obj.endswith("__c") and not schema.has_object(obj)) or (
                    fld.endswith("__c") and r.target.lower() not in keys
                )
            else:  # (web links are not read from SFDX sources)
                unknown = "__" in name and r.target.lower() not in keys and type_ != "WebLink"
            # a custom component the org does not define (managed-package names aside)
            if unknown and "npe01__" not in name:
                missing.add((c.key, r.target))
    assert total > 100
    assert not missing, sorted(missing)
