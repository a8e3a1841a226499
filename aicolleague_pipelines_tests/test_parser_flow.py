"""Flow references from real-shaped flow XML (parsed with the hardened XML → dict conversion)."""

from __future__ import annotations

import pytest

from aicolleague_pipelines.lib.graph.model import (
    APEX_ACTION,
    DML,
    QUERIES,
    READ,
    REFERENCES,
    SUBFLOW,
    TRIGGER_ON,
    WRITE,
)
from aicolleague_pipelines.lib.graph.parsers.flow import parse_flow
from aicolleague_pipelines.lib.graph.parsers.metadata import parse_metadata
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.safe_xml import element_to_dict, parse_xml_bytes
from aicolleague_pipelines.lib.salesforce.model import Component

NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'


def flow(xml: str, name: str = "F", **attrs) -> Component:
    data = element_to_dict(parse_xml_bytes(f"<Flow {NS}>{xml}</Flow>"))
    return Component("Flow", name, attributes={"metadata": data, **attrs})


@pytest.fixture(scope="module")
def schema() -> Schema:
    f = lambda n, **a: Component("CustomField", n, attributes=a)  # noqa: E731
    return Schema(
        [
            Component("CustomObject", "Case"),
            Component("CustomObject", "Account"),
            Component("CustomObject", "Program__c"),
            f("Case.SLA_Breach__c"),
            f("Case.Service_Delivery__c", reference_to=["ServiceDelivery__c"], relationship_name="Cases"),
            f("Account.Customer_Tier__c"),
            f("Program__c.Account__c", reference_to=["Account"], relationship_name="Programs"),
            f("Program__c.Status__c"),
            Component("ApexClass", "CaseEscalationAction"),
            Component("Flow", "Notify_Account_Team"),
            Component("LightningComponentBundle", "addressPicker"),
        ]
    )


RECORD_TRIGGERED = """
<actionCalls><name>Escalate_Case</name><actionName>caseescalationaction</actionName><actionType>apex</actionType>
  <inputParameters><name>caseId</name><value><elementReference>$Record.Id</elementReference></value></inputParameters>
  <inputParameters><name>note</name><value><stringValue>Tier {!Get_Account.Customer_Tier__c}</stringValue></value></inputParameters>
</actionCalls>
<actionCalls><name>Send_Alert</name><actionName>Case.Escalated_Alert</actionName><actionType>emailAlert</actionType></actionCalls>
<assignments><name>Set_Flag</name>
  <assignmentItems><assignToReference>$Record.SLA_Breach__c</assignToReference><operator>Assign</operator>
    <value><booleanValue>true</booleanValue></value></assignmentItems>
</assignments>
<decisions><name>Is_Platinum</name>
  <rules><name>Platinum</name>
    <conditions><leftValueReference>Get_Account.Customer_Tier__c</leftValueReference><operator>EqualTo</operator>
      <rightValue><stringValue>Platinum</stringValue></rightValue></conditions>
    <conditions><leftValueReference>$Record__Prior.Priority</leftValueReference><operator>NotEqualTo</operator>
      <rightValue><elementReference>$Record.Priority</elementReference></rightValue></conditions>
  </rules>
</decisions>
<formulas><name>Days_Open</name><dataType>Number</dataType>
  <expression>TODAY() - DATEVALUE({!$Record.CreatedDate}) /* {!$Record.Hidden__c} */ + LEN("{!$Record.NotAField__c}")</expression>
</formulas>
<interviewLabel>Case Escalation {!$Flow.CurrentDateTime}</interviewLabel>
<processType>AutoLaunchedFlow</processType>
<recordLookups><name>Get_Account</name>
  <filters><field>Id</field><operator>EqualTo</operator><value><elementReference>$Record.AccountId</elementReference></value></filters>
  <getFirstRecordOnly>true</getFirstRecordOnly>
  <object>Account</object>
  <queriedFields>Id</queriedFields><queriedFields>Customer_Tier__c</queriedFields>
  <storeOutputAutomatically>true</storeOutputAutomatically>
</recordLookups>
<recordUpdates><name>Flag_SLA_Breach</name>
  <inputAssignments><field>SLA_Breach__c</field><value><booleanValue>true</booleanValue></value></inputAssignments>
  <inputReference>$Record</inputReference>
</recordUpdates>
<recordUpdates><name>Activate_Programs</name>
  <filters><field>Account__c</field><operator>EqualTo</operator><value><elementReference>Get_Account.Id</elementReference></value></filters>
  <inputAssignments><field>Status__c</field><value><stringValue>Active</stringValue></value></inputAssignments>
  <object>Program__c</object>
</recordUpdates>
<recordDeletes><name>Delete_Old</name><inputReference>oldPrograms</inputReference></recordDeletes>
<start>
  <filters><field>Status</field><operator>NotEqualTo</operator><value><stringValue>Closed</stringValue></value></filters>
  <object>Case</object>
  <recordTriggerType>CreateAndUpdate</recordTriggerType>
  <triggerType>RecordAfterSave</triggerType>
</start>
<status>Active</status>
<subflows><name>Notify_Team</name><flowName>notify_account_team</flowName>
  <inputAssignments><name>ownerId</name><value><elementReference>Get_Account.OwnerId</elementReference></value></inputAssignments>
</subflows>
<textTemplates><name>Body</name><text>Case {!$Record.CaseNumber} for {!Get_Account.Name}; total {!Days_Open}</text></textTemplates>
<variables><name>oldPrograms</name><dataType>SObject</dataType><isCollection>true</isCollection><objectType>Program__c</objectType></variables>
"""


def rows(refs):
    return {(r.target, r.kind, r.access) for r in refs}


def test_record_triggered_flow(schema):
    refs = parse_flow(flow(RECORD_TRIGGERED), schema)
    got = rows(refs)
    expected = {
        ("CustomObject:Case", TRIGGER_ON, None),
        ("CustomField:Case.Status", REFERENCES, READ),  # start filter
        ("ApexClass:CaseEscalationAction", APEX_ACTION, None),  # canonical casing
        ("Flow:Notify_Account_Team", SUBFLOW, None),
        # lookup: object, filter, queried fields
        ("CustomObject:Account", QUERIES, READ),
        ("CustomField:Account.Id", QUERIES, READ),
        ("CustomField:Account.Customer_Tier__c", QUERIES, READ),
        # $Record reads and the output of the lookup used later
        ("CustomField:Case.AccountId", REFERENCES, READ),
        ("CustomField:Case.Id", REFERENCES, READ),
        ("CustomField:Case.Priority", REFERENCES, READ),
        ("CustomField:Case.CreatedDate", REFERENCES, READ),
        ("CustomField:Case.CaseNumber", REFERENCES, READ),
        ("CustomField:Account.Customer_Tier__c", REFERENCES, READ),
        ("CustomField:Account.OwnerId", REFERENCES, READ),
        ("CustomField:Account.Name", REFERENCES, READ),
        # writes
        ("CustomField:Case.SLA_Breach__c", REFERENCES, WRITE),  # assignment to $Record
        ("CustomObject:Case", DML, WRITE),  # update $Record
        ("CustomField:Case.SLA_Breach__c", DML, WRITE),
        ("CustomObject:Program__c", DML, WRITE),
        ("CustomField:Program__c.Status__c", DML, WRITE),
        ("CustomField:Program__c.Account__c", REFERENCES, READ),  # update filter
        ("CustomObject:Program__c", REFERENCES, READ),  # the sObject variable's type
    }
    assert expected <= got
    # negatives: comments / strings in formulas, email alerts, $Flow globals, resources
    targets = {r.target for r in refs}
    assert "CustomField:Case.Hidden__c" not in targets
    assert "CustomField:Case.NotAField__c" not in targets
    assert not any("Escalated_Alert" in t for t in targets)
    assert not any(t.endswith((".Days_Open", ".CurrentDateTime")) for t in targets)
    assert all(r.line is None for r in refs)


def test_details_name_the_element(schema):
    refs = parse_flow(flow(RECORD_TRIGGERED), schema)
    by = {(r.target, r.kind): r.detail for r in refs}
    assert by[("CustomObject:Program__c", DML)] == "recordUpdates:Activate_Programs (update)"
    assert by[("ApexClass:CaseEscalationAction", APEX_ACTION)] == "actionCalls:Escalate_Case"
    assert by[("CustomObject:Case", TRIGGER_ON)] == "RecordAfterSave CreateAndUpdate"
    assert by[("CustomObject:Program__c", DML)]  # delete via an sObject collection variable
    assert any(r.detail == "recordDeletes:Delete_Old (delete)" for r in refs)


def test_dispatcher_routes_flows(schema):
    assert rows(parse_metadata(flow(RECORD_TRIGGERED), schema)) == rows(parse_flow(flow(RECORD_TRIGGERED), schema))


def test_before_save_assignments_and_record_create_through_a_variable(schema):
    xml = """
    <assignments><name>Build</name>
      <assignmentItems><assignToReference>newProg.Status__c</assignToReference><operator>Assign</operator>
        <value><stringValue>New</stringValue></value></assignmentItems>
      <assignmentItems><assignToReference>newProg.Account__c</assignToReference><operator>Assign</operator>
        <value><elementReference>$Record.Id</elementReference></value></assignmentItems>
    </assignments>
    <recordCreates><name>Create_Program</name><inputReference>newProg</inputReference></recordCreates>
    <start><object>Account</object><recordTriggerType>Create</recordTriggerType><triggerType>RecordBeforeSave</triggerType></start>
    <variables><name>newProg</name><dataType>SObject</dataType><objectType>Program__c</objectType></variables>
    """
    got = rows(parse_flow(flow(xml), schema))
    assert {
        ("CustomObject:Account", TRIGGER_ON, None),
        ("CustomObject:Program__c", DML, WRITE),
        ("CustomField:Program__c.Status__c", DML, WRITE),
        ("CustomField:Program__c.Account__c", DML, WRITE),
        ("CustomField:Account.Id", REFERENCES, READ),
    } <= got
    # assigning to a variable's field is not itself a write to the org
    assert ("CustomField:Program__c.Status__c", REFERENCES, WRITE) not in got


def test_screen_flow_components_loops_and_lookups_into_variables(schema):
    xml = """
    <loops><name>Each_Program</name><collectionReference>progs</collectionReference></loops>
    <assignments><name>Sum</name>
      <assignmentItems><assignToReference>total</assignToReference><operator>Add</operator>
        <value><elementReference>Each_Program.Status__c</elementReference></value></assignmentItems>
    </assignments>
    <recordLookups><name>Get_Programs</name><object>Program__c</object>
      <outputReference>progs</outputReference><queriedFields>Status__c</queriedFields></recordLookups>
    <screens><name>Ask</name>
      <fields><name>Addr</name><extensionName>c:addressPicker</extensionName><fieldType>ComponentInstance</fieldType></fields>
      <fields><name>Std</name><extensionName>flowruntime:address</extensionName><fieldType>ComponentInstance</fieldType></fields>
      <fields><name>Section</name><fieldType>RegionContainer</fieldType>
        <fields><name>Col</name><fieldType>Region</fieldType>
          <fields><name>Tier</name><fieldType>ObjectProvided</fieldType><objectFieldReference>acct.Customer_Tier__c</objectFieldReference></fields>
        </fields>
      </fields>
      <fields><name>Msg</name><fieldText>Programs of {!acct.Name}: {!total}</fieldText><fieldType>DisplayText</fieldType></fields>
    </screens>
    <variables><name>acct</name><dataType>SObject</dataType><objectType>Account</objectType></variables>
    <variables><name>progs</name><dataType>SObject</dataType><isCollection>true</isCollection><objectType>Program__c</objectType></variables>
    <variables><name>total</name><dataType>Number</dataType></variables>
    """
    refs = parse_flow(flow(xml), schema)
    got = rows(refs)
    assert {
        ("LightningComponentBundle:addressPicker", REFERENCES, None),
        ("CustomField:Account.Customer_Tier__c", REFERENCES, WRITE),  # screen input of a record field
        ("CustomField:Account.Name", REFERENCES, READ),
        ("CustomField:Program__c.Status__c", REFERENCES, READ),  # through the loop's current item
        ("CustomField:Program__c.Status__c", QUERIES, READ),
    } <= got
    assert not any(r.kind == TRIGGER_ON for r in refs)  # not record-triggered
    assert not any("address" in r.target and "addressPicker" not in r.target for r in refs)


def test_scheduled_flow_queries_its_object(schema):
    xml = """<start><object>Program__c</object><triggerType>Scheduled</triggerType>
      <filters><field>Status__c</field><operator>EqualTo</operator><value><stringValue>Open</stringValue></value></filters>
      <schedule><frequency>Daily</frequency></schedule></start>"""
    got = rows(parse_flow(flow(xml), schema))
    assert got == {("CustomObject:Program__c", QUERIES, READ), ("CustomField:Program__c.Status__c", QUERIES, READ)}


def test_process_builder_object_and_apex_plugin(schema):
    xml = """<processMetadataValues><name>ObjectType</name><value><stringValue>Case</stringValue></value></processMetadataValues>
    <processType>Workflow</processType>
    <apexPluginCalls><name>Plugin</name><apexClass>LegacyPlugin</apexClass></apexPluginCalls>
    <variables><name>myVariable_current</name><dataType>SObject</dataType><objectType>Case</objectType></variables>
    <decisions><name>D</name><rules><name>R</name><conditions>
      <leftValueReference>myVariable_current.SLA_Breach__c</leftValueReference><operator>EqualTo</operator>
      <rightValue><booleanValue>true</booleanValue></rightValue></conditions></rules></decisions>"""
    got = rows(parse_flow(flow(xml), schema))
    assert ("CustomObject:Case", TRIGGER_ON, None) in got
    assert ("ApexClass:LegacyPlugin", APEX_ACTION, None) in got
    assert ("CustomField:Case.SLA_Breach__c", REFERENCES, READ) in got


def test_trigger_object_attribute_is_a_fallback_and_empty_metadata_is_fine(schema):
    assert parse_flow(Component("Flow", "Empty"), schema) == []
    c = flow("<recordLookups><name>G</name><object>Account</object></recordLookups>", trigger_object="Case")
    assert ("CustomObject:Case", TRIGGER_ON, None) in rows(parse_flow(c, schema))


def test_cross_object_record_path_uses_the_forward_relationship(schema):
    xml = """<start><object>Program__c</object><triggerType>RecordAfterSave</triggerType><recordTriggerType>Update</recordTriggerType></start>
    <decisions><name>D</name><rules><name>R</name><conditions>
      <leftValueReference>$Record.Account__r.Customer_Tier__c</leftValueReference><operator>EqualTo</operator>
      <rightValue><stringValue>Gold</stringValue></rightValue></conditions></rules></decisions>"""
    got = rows(parse_flow(flow(xml), schema))
    assert ("CustomField:Program__c.Account__c", REFERENCES, READ) in got
    assert ("CustomField:Account.Customer_Tier__c", REFERENCES, READ) in got
