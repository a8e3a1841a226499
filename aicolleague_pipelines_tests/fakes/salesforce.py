"""A loopback fake Salesforce org speaking the real wire format over TLS.

``FakeSalesforce()`` starts a threaded HTTPS server on 127.0.0.1 (certificate from a throwaway
``trustme`` CA, valid for ``127.0.0.1`` and ``localhost``) serving an in-memory org. Our real
client code and the real ``simple-salesforce`` talk to it; nothing of ours is replaced.

What it speaks (see REFERENCE.md §3 for the real API facts it reproduces):

- ``POST /services/oauth2/token``: client_credentials (HTTP Basic or body credentials),
  password (password + security token), JWT bearer (``assertion`` RS256, iss/sub/aud/exp
  checked, signature verified against the fake's public key unless ``org.verify_jwt=False``).
- REST ``/services/data/vXX.X/query?q=`` and ``/query/<locator>`` (queryMore), Tooling
  ``/tooling/query?q=`` and ``/tooling/query/<locator>`` (adds size/queryLocator/
  entityTypeName); page size configurable (``org.page_size``); ``nextRecordsUrl`` only
  while ``done`` is false.
- A small, honest SOQL subset: ``SELECT f[, Rel.f] FROM Obj [WHERE c AND c ...]
  [ORDER BY f [ASC|DESC]] [LIMIT n] [OFFSET n]``; conditions ``=, !=, <, >, <=, >=, LIKE,
  IN (...), NOT IN (...)``; anything else (OR, NOT, GROUP BY, sub-queries) is a 400 — real
  Salesforce would accept some of it, the fake says so in the message.
- Tooling rules: selecting ``Metadata``/``FullName`` with more than one matching row → 400
  MALFORMED_QUERY; EntityDefinition/FieldDefinition reject COUNT/OR/NOT and ignore LIMIT;
  FieldDefinition needs a filter on its entity; MetadataComponentDependency returns at most
  2,000 rows, never pages, refuses ORDER BY and filters on the Name fields.
- Unknown objects/fields → 400 INVALID_TYPE / INVALID_FIELD; URLs longer than
  ``org.max_url_length`` → 431.
- ``GET /tooling/sobjects/<Type>/<Id>``, ``POST /tooling/composite`` (≤25 subrequests),
  Bulk API 2.0 query jobs on ``/tooling/jobs/query`` (create, status, CSV results paged
  with ``Sforce-Locator``), ``GET /sobjects/<Obj>/describe``, ``GET /limits``.
- Runtime signals (``add_runtime_objects``): AsyncApexJob, ApexTestRunResult/ApexTestResult,
  ApexOrgWideCoverage/ApexCodeCoverageAggregate (Tooling only), FlowInterview, FlowVersionView,
  EventLogFile with its LogFile CSV at ``GET sobjects/EventLogFile/<Id>/LogFile``; an object not
  added answers INVALID_TYPE (not licensed). ``org.limits`` sets the ``/limits`` answer.
- Every API response carries ``Sforce-Limit-Info: api-usage=N/5000``; errors are JSON arrays
  ``[{"message", "errorCode"}]``.
- SOAP Metadata API ``POST /services/Soap/m/<version>[/...]`` (``SOAPAction`` header required,
  any value): ``retrieve`` (RetrieveRequest with ``unpackaged`` types/members → AsyncResult
  id, state Queued) and ``checkRetrieveStatus`` (InProgress for ``org.retrieve_in_progress_polls``
  polls, then Succeeded with ``zipFile``: ``package.xml`` plus the members in Metadata API
  format built from the org's data — ``classes/X.cls`` + ``-meta.xml``, ``triggers``, ``pages``,
  ``objects/Obj.object`` holding the requested ``<fields>``/``<validationRules>``…, ``flows``,
  ``layouts`` …, under ``unpackaged/`` unless ``singlePackage`` is true; members it cannot build
  are ``messages`` "cannot be found", as in Salesforce). The session comes from
  ``<SessionHeader><sessionId>`` (the ``Authorization`` header is ignored); errors are SOAP
  faults (HTTP 500, ``sf:INVALID_SESSION_ID`` …).

Fault knobs (``fake.faults``): ``expire_session_after`` (N more API requests succeed, then
every issued token is revoked → 401 INVALID_SESSION_ID, also mid-paging), ``fail(kind,
times, path_contains)`` with kind ``"REQUEST_LIMIT_EXCEEDED"`` (403), ``429``, ``503``,
``delay_s``/``delay_times`` (slow responses), ``down`` (connections are dropped without a
response).
``retrieve_failure`` (a retrieve ends Failed with that error message; ``retrieve_zip``
overrides the zip bytes returned, e.g. a hostile archive). ``fake.stop()`` shuts the server down (connection refused afterwards).

Every request is recorded in ``fake.requests`` (method, path, query, soql, status).
"""

from __future__ import annotations

import base64
import copy
import csv
import datetime as dt
import io
import itertools
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

# --------------------------------------------------------------------------------------------
# Recognisable fake secrets: tests assert they never leak into logs, errors or stats.
# --------------------------------------------------------------------------------------------
FAKE_CLIENT_ID = "3MVG9FAKE-client-id-not-secret"
FAKE_CLIENT_SECRET = "FAKESECRET-client-s3cr3t-7f3a9c"
FAKE_USERNAME = "integration@fake.example.com"
FAKE_PASSWORD = "FAKESECRET-passw0rd-41b2"
FAKE_SECURITY_TOKEN = "FAKESECRET-sectok-9d8e"
FAKE_STATIC_TOKEN = "00DFAKE!FAKESECRET-static-access-token-5c6d"

API_LIMIT = 5000
DUMMY_DEPENDENCY_ID = "000000000000000AAA"


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style id: 3-char key prefix, 12 digits, 3-char suffix."""
    return f"{prefix}{n:012d}AAA"


# --------------------------------------------------------------------------------------------
# The in-memory org
# --------------------------------------------------------------------------------------------
_AUDIT_FIELDS = ["CreatedDate", "CreatedById", "CreatedBy", "LastModifiedDate", "LastModifiedById", "LastModifiedBy"]
_USER_FIELDS = {"Id", "Name", "Username"}


@dataclass
class FakeObject:
    """One queryable sObject: its field names (canonical case), relationships and rows."""

    name: str
    fields: list[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    tooling: bool = True
    data: bool = False
    #: relationship name → allowed sub-fields (``CreatedBy`` → {Name, ...}).
    relationships: dict[str, set[str]] = field(default_factory=dict)

    def canonical(self, name: str) -> str | None:
        low = name.lower()
        for f in itertools.chain(self.fields, self.relationships):
            if f.lower() == low:
                return f
        return None


@dataclass
class FakeOrg:
    """The dataset the fake serves; tests may edit it freely (the server reads it live)."""

    objects: dict[str, FakeObject] = field(default_factory=dict)
    #: describe payloads by object API name.
    describes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``analytics/reports/<id>/describe`` answers by report id (15 or 18 characters).
    report_describes: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_size: int = 2000
    max_url_length: int = 16_000
    dependency_cap: int = 2000
    bulk_page_size: int = 50_000
    #: Bulk job status polls answering InProgress before JobComplete.
    bulk_polls_in_progress: int = 1
    api_versions: tuple[str, ...] = ("58.0", "59.0", "60.0", "61.0", "62.0", "63.0")
    verify_jwt: bool = True
    org_id: str = "00DFAKE000000001AAA"[:18]
    #: ``GET sobjects/EventLogFile/<Id>/LogFile`` bodies by EventLogFile Id (see add_runtime_objects).
    log_files: dict[str, bytes] = field(default_factory=dict)
    #: ``GET /limits`` answer; None → DailyApiRequests only, from the fake's usage counter.
    limits: dict[str, Any] | None = None

    def obj(self, name: str) -> FakeObject:
        for k, v in self.objects.items():
            if k.lower() == name.lower():
                return v
        raise KeyError(name)

    def add(self, obj: str, **record: Any) -> dict[str, Any]:
        rec = dict(record)
        self.obj(obj).records.append(rec)
        return rec

    def add_dependencies(self, source_id: str, source_type: str, source_name: str, n: int,
                         *, target_type: str = "CustomField", start: int = 0) -> None:
        """Add ``n`` synthetic dependency rows from one component (for the 2,000-row cap)."""
        rows = self.obj("MetadataComponentDependency").records
        for i in range(start, start + n):
            rows.append(_dep(source_id, source_name, source_type,
                             sf_id("00N", 900_000 + i), f"Synthetic_{i}", target_type))


def _user(name: str) -> dict[str, Any]:
    return {"Name": name, "Id": sf_id("005", zlib.crc32(name.encode()) % 10**9), "Username": f"{name.split()[0].lower()}@fake.example.com"}


def _stamp(rec: dict[str, Any], created: str, modified: str | None = None,
           by: str = "Ada Admin", mod_by: str | None = None) -> dict[str, Any]:
    rec.setdefault("CreatedDate", created)
    rec.setdefault("CreatedBy", _user(by))
    rec.setdefault("LastModifiedDate", modified or created)
    rec.setdefault("LastModifiedBy", _user(mod_by or by))
    return rec


def _dep(src_id: str, src_name: str, src_type: str, ref_id: str, ref_name: str, ref_type: str,
         src_ns: str | None = None, ref_ns: str | None = None) -> dict[str, Any]:
    return {
        "Id": DUMMY_DEPENDENCY_ID,
        "MetadataComponentId": src_id,
        "MetadataComponentName": src_name,
        "MetadataComponentNamespace": src_ns,
        "MetadataComponentType": src_type,
        "RefMetadataComponentId": ref_id,
        "RefMetadataComponentName": ref_name,
        "RefMetadataComponentNamespace": ref_ns,
        "RefMetadataComponentType": ref_type,
    }


def _std(name: str, fields: list[str], *, tooling: bool = True, data: bool = False,
         rels: dict[str, set[str]] | None = None, audit: bool = True) -> FakeObject:
    f = ["Id", *fields] + ([x for x in _AUDIT_FIELDS if x not in ("CreatedBy", "LastModifiedBy")] if audit else [])
    relationships = {"CreatedBy": _USER_FIELDS, "LastModifiedBy": _USER_FIELDS} if audit else {}
    relationships.update(rels or {})
    return FakeObject(name, f, tooling=tooling, data=data, relationships=relationships)


# Field specs: (api name, type, label, extra describe keys)
def _field(name: str, type_: str, label: str, **extra: Any) -> dict[str, Any]:
    d = {
        "name": name, "type": type_, "label": label, "custom": name.endswith("__c"),
        "calculated": False, "calculatedFormula": None, "referenceTo": [], "relationshipName": None,
        "picklistValues": [], "controllerName": None, "inlineHelpText": None, "externalId": False,
        "unique": False, "nillable": True, "length": 0, "defaultValue": None, "encrypted": False,
        "dependentPicklist": False,
    }
    for k, v in extra.items():
        if k == "picklist":
            d["picklistValues"] = [{"value": p, "label": p.replace("_", " "), "active": True,
                                    "defaultValue": False, "validFor": None} for p in v]
        elif k == "compliance":
            d["_compliance"] = v
        elif k == "description":
            d["_description"] = v
        else:
            d[k] = v
    return d


_ENTITIES: list[dict[str, Any]] = [
    # QualifiedApiName, label, custom-object id (None for standard), key prefix, sharing
    {"api": "Account", "label": "Account", "id": None, "prefix": "001", "sharing": "ReadWrite"},
    {"api": "Contact", "label": "Contact", "id": None, "prefix": "003", "sharing": "ControlledByParent"},
    {"api": "Opportunity", "label": "Opportunity", "id": None, "prefix": "006", "sharing": "ReadWrite"},
    {"api": "Invoice__c", "label": "Invoice", "id": sf_id("01I", 1), "prefix": "a01", "sharing": "Private"},
    {"api": "Project__c", "label": "Project", "id": sf_id("01I", 2), "prefix": "a02", "sharing": "ReadWrite"},
]

_FIELDS: dict[str, list[dict[str, Any]]] = {
    "Account": [
        _field("Id", "id", "Account ID", nillable=False),
        _field("Name", "string", "Account Name", nillable=False, length=255),
        _field("Industry", "picklist", "Industry", picklist=["Agriculture", "Banking", "Energy"]),
        _field("AnnualRevenue", "currency", "Annual Revenue"),
        _field("Region__c", "picklist", "Region", picklist=["EMEA", "AMER", "APAC"],
               description="Sales region of the account."),
        _field("Customer_Tier__c", "string", "Customer Tier", calculated=True,
               calculatedFormula='IF(AnnualRevenue > 1000000, "Gold", "Silver")', length=1300),
    ],
    "Contact": [
        _field("Id", "id", "Contact ID", nillable=False),
        _field("LastName", "string", "Last Name", nillable=False, length=80),
        _field("Email", "email", "Email", length=80, compliance=("PII;GDPR", "Confidential")),
        _field("AccountId", "reference", "Account ID", referenceTo=["Account"], relationshipName="Account"),
        _field("Preferred_Channel__c", "picklist", "Preferred Channel", picklist=["Email", "Phone"]),
    ],
    "Opportunity": [
        _field("Id", "id", "Opportunity ID", nillable=False),
        _field("Name", "string", "Name", nillable=False, length=120),
        _field("StageName", "picklist", "Stage", nillable=False,
               picklist=["Prospecting", "Negotiation", "Closed Won", "Closed Lost"]),
        _field("Amount", "currency", "Amount"),
        _field("AccountId", "reference", "Account ID", referenceTo=["Account"], relationshipName="Account"),
        _field("Discount_Percent__c", "percent", "Discount Percent"),
        _field("Net_Amount__c", "currency", "Net Amount", calculated=True,
               calculatedFormula="Amount * (1 - Discount_Percent__c)"),
    ],
    "Invoice__c": [
        _field("Id", "id", "Record ID", nillable=False),
        _field("Name", "string", "Invoice Number", nillable=False, length=80),
        _field("Account__c", "reference", "Account", referenceTo=["Account"], relationshipName="Account__r",
               description="Billed account."),
        _field("Opportunity__c", "reference", "Opportunity", referenceTo=["Opportunity"],
               relationshipName="Opportunity__r"),
        _field("Amount__c", "currency", "Amount", compliance=("", "Internal")),
        _field("Status__c", "picklist", "Status", picklist=["Draft", "Sent", "Paid"]),
        _field("Tax__c", "currency", "Tax", calculated=True, calculatedFormula="Amount__c * 0.2"),
        _field("External_Ref__c", "string", "External Ref", externalId=True, unique=True, length=40),
    ],
    "Project__c": [
        _field("Id", "id", "Record ID", nillable=False),
        _field("Name", "string", "Project Name", nillable=False, length=80),
        _field("Invoice__c", "reference", "Invoice", referenceTo=["Invoice__c"], relationshipName="Invoice__r"),
        _field("Region__c", "picklist", "Region", picklist=["EMEA", "AMER"]),
        _field("Sub_Region__c", "picklist", "Sub Region", picklist=["DACH", "Nordics", "US_East"],
               controllerName="Region__c", dependentPicklist=True),
    ],
}

_CLASSES = {
    "InvoiceService": (
        "public with sharing class InvoiceService {\n"
        "    public static Decimal total(Id accountId) {\n"
        "        Decimal t = 0;\n"
        "        for (Invoice__c inv : [SELECT Amount__c FROM Invoice__c WHERE Account__c = :accountId]) {\n"
        "            t += inv.Amount__c;\n"
        "        }\n"
        "        return t;\n"
        "    }\n"
        "}\n"
    ),
    "InvoiceServiceTest": (
        "@IsTest\nprivate class InvoiceServiceTest {\n"
        "    @IsTest static void totals() { System.assertEquals(0, InvoiceService.total(null)); }\n}\n"
    ),
    "AccountTriggerHandler": (
        "public class AccountTriggerHandler {\n"
        "    public static void beforeSave(List<Account> rows) {\n"
        "        for (Account a : rows) { if (a.Region__c == null) a.Region__c = 'EMEA'; }\n"
        "    }\n}\n"
    ),
}


def _flow_metadata(process_type: str, label: str, obj: str | None, trigger: str | None,
                   status: str) -> dict[str, Any]:
    md: dict[str, Any] = {
        "apiVersion": 62.0, "label": label, "processType": process_type, "status": status,
        "description": None,
    }
    if obj:
        md["start"] = {"object": obj, "triggerType": trigger, "recordTriggerType": "CreateAndUpdate",
                       "filters": [{"field": "Status__c", "operator": "EqualTo", "value": {"stringValue": "Sent"}}]}
        md["recordUpdates"] = [{"name": "Mark_Paid", "inputAssignments": [
            {"field": "Status__c", "value": {"stringValue": "Paid"}}]}]
    else:
        md["screens"] = [{"name": "Kickoff", "fields": [{"name": "Project_Name", "fieldType": "InputField"}]}]
    return md


def default_org() -> FakeOrg:
    """A small realistic org: 3 standard + 2 custom objects, fields incl. formulas, lookups and a
    dependent picklist, 3 Apex classes, a trigger, 2 flows with versions, validation rules,
    layouts, a Lightning page, permission sets and a profile, record types, a report, an LWC, an
    Aura bundle, an email template, dependency rows and audit-trail rows."""
    org = FakeOrg()
    o = org.objects
    o["EntityDefinition"] = FakeObject(
        "EntityDefinition",
        ["Id", "DurableId", "QualifiedApiName", "DeveloperName", "NamespacePrefix", "Label", "MasterLabel",
         "IsCustomizable", "IsCustomSetting", "IsQueryable", "KeyPrefix", "InternalSharingModel",
         "ExternalSharingModel", "DeploymentStatus", "PublisherId", "LastModifiedDate", "LastModifiedById"],
        tooling=True, data=True)
    o["FieldDefinition"] = FakeObject(
        "FieldDefinition",
        ["Id", "DurableId", "QualifiedApiName", "DeveloperName", "EntityDefinitionId", "NamespacePrefix",
         "Label", "DataType", "Description", "ComplianceGroup", "SecurityClassification", "BusinessStatus",
         "RelationshipName", "IsIndexed", "IsNillable", "LastModifiedDate", "LastModifiedById"],
        tooling=True, data=True,
        relationships={"EntityDefinition": {"QualifiedApiName", "DurableId", "DeveloperName"},
                       "LastModifiedBy": _USER_FIELDS})
    o["CustomField"] = _std("CustomField", ["DeveloperName", "NamespacePrefix", "TableEnumOrId", "EntityDefinitionId",
                                            "ManageableState", "Description", "InlineHelpText", "Length",
                                            "FullName", "Metadata"])
    o["CustomObject"] = _std("CustomObject", ["DeveloperName", "NamespacePrefix", "ManageableState", "Description",
                                              "SharingModel", "ExternalName", "FullName", "Metadata"])
    o["ApexClass"] = _std("ApexClass", ["Name", "NamespacePrefix", "ApiVersion", "Status", "IsValid", "Body",
                                        "LengthWithoutComments", "ManageableState", "FullName", "Metadata"], data=True)
    o["ApexTrigger"] = _std("ApexTrigger", ["Name", "NamespacePrefix", "TableEnumOrId", "EntityDefinitionId",
                                            "ApiVersion", "Status", "IsValid", "Body", "UsageBeforeInsert",
                                            "UsageAfterInsert", "UsageBeforeUpdate", "UsageAfterUpdate",
                                            "UsageBeforeDelete", "UsageAfterDelete", "UsageAfterUndelete",
                                            "ManageableState", "FullName", "Metadata"], data=True)
    o["Flow"] = _std("Flow", ["DefinitionId", "MasterLabel", "VersionNumber", "Status", "ProcessType",
                              "Description", "ApiVersion", "ManageableState", "FullName", "Metadata"],
                     rels={"Definition": {"DeveloperName", "NamespacePrefix", "MasterLabel", "ActiveVersionId",
                                          "LatestVersionId"}})
    o["ValidationRule"] = _std("ValidationRule", ["ValidationName", "EntityDefinitionId", "Active", "Description",
                                                  "ErrorDisplayField", "ErrorMessage", "NamespacePrefix",
                                                  "ManageableState", "FullName", "Metadata"],
                               rels={"EntityDefinition": {"QualifiedApiName", "DurableId"}})
    o["Layout"] = _std("Layout", ["Name", "TableEnumOrId", "EntityDefinitionId", "NamespacePrefix", "LayoutType",
                                  "ManageableState", "FullName", "Metadata"])
    o["FlexiPage"] = _std("FlexiPage", ["DeveloperName", "MasterLabel", "NamespacePrefix", "EntityDefinitionId",
                                        "Type", "Description", "ManageableState", "FullName", "Metadata"])
    o["LightningComponentBundle"] = _std("LightningComponentBundle", [
        "DeveloperName", "MasterLabel", "NamespacePrefix", "ApiVersion", "IsExposed", "Description",
        "ManageableState", "FullName", "Metadata"])
    o["AuraDefinitionBundle"] = _std("AuraDefinitionBundle", [
        "DeveloperName", "MasterLabel", "NamespacePrefix", "ApiVersion", "Description", "ManageableState",
        "FullName", "Metadata"])
    o["MetadataComponentDependency"] = FakeObject("MetadataComponentDependency", [
        "Id", "MetadataComponentId", "MetadataComponentName", "MetadataComponentNamespace",
        "MetadataComponentType", "RefMetadataComponentId", "RefMetadataComponentName",
        "RefMetadataComponentNamespace", "RefMetadataComponentType"], tooling=True)
    # Data-API objects
    o["PermissionSet"] = _std("PermissionSet", ["Name", "Label", "NamespacePrefix", "IsOwnedByProfile", "ProfileId",
                                                "IsCustom", "Type", "Description", *USER_PERMISSION_COLUMNS],
                              tooling=True, data=True, rels={"Profile": {"Name", "Id"}})
    o["RecordType"] = _std("RecordType", ["Name", "DeveloperName", "SobjectType", "NamespacePrefix", "IsActive",
                                          "Description", "BusinessProcessId"], tooling=False, data=True)
    o["Report"] = _std("Report", ["Name", "DeveloperName", "FolderName", "OwnerId", "NamespacePrefix", "Format",
                                  "Description", "LastRunDate"], tooling=False, data=True)
    o["Folder"] = _std("Folder", ["Name", "DeveloperName", "Type", "NamespacePrefix", "AccessType"],
                       tooling=False, data=True)
    o["EmailTemplate"] = _std("EmailTemplate", ["Name", "DeveloperName", "NamespacePrefix", "FolderId", "FolderName",
                                                "TemplateType", "IsActive", "Subject", "Description",
                                                "UiType", "Body", "HtmlValue", "Markup", "RelatedEntityType"],
                                tooling=False, data=True)
    _add_access_and_ui_objects(org)
    o["SetupAuditTrail"] = FakeObject("SetupAuditTrail", [
        "Id", "Action", "Section", "Display", "CreatedDate", "CreatedById", "CreatedByContext",
        "CreatedByIssuer", "DelegateUser", "ResponsibleNamespacePrefix"],
        tooling=False, data=True, relationships={"CreatedBy": _USER_FIELDS})
    for std_name in ("Account", "Contact", "Opportunity", "Invoice__c", "Project__c"):
        o[std_name] = FakeObject(std_name, [f["name"] for f in _FIELDS[std_name]], tooling=False, data=True)

    t0 = "2024-01-10T09:00:00.000+0000"
    t1 = "2024-06-02T14:30:00.000+0000"
    # Entities, fields
    cf_n = itertools.count(1)
    for e in _ENTITIES:
        durable = e["id"] or e["api"]
        custom = e["api"].endswith("__c")
        org.add("EntityDefinition", Id=DUMMY_DEPENDENCY_ID, DurableId=durable, QualifiedApiName=e["api"],
                DeveloperName=e["api"].removesuffix("__c"), NamespacePrefix=None, Label=e["label"],
                MasterLabel=e["label"], IsCustomizable=True, IsCustomSetting=False, IsQueryable=True,
                KeyPrefix=e["prefix"], InternalSharingModel=e["sharing"], ExternalSharingModel="Private",
                DeploymentStatus="Deployed" if custom else None, PublisherId="System" if not custom else "<local>",
                LastModifiedDate=t1 if custom else None, LastModifiedById=None)
        if custom:
            org.add("CustomObject", **_stamp({"Id": e["id"], "DeveloperName": e["api"].removesuffix("__c"),
                                              "NamespacePrefix": None, "ManageableState": "unmanaged",
                                              "Description": f"{e['label']} records.", "SharingModel": e["sharing"],
                                              "ExternalName": None, "FullName": e["api"],
                                              "Metadata": {"label": e["label"], "sharingModel": e["sharing"]}},
                                             t0, t1))
        fields = _FIELDS[e["api"]]
        for f in fields:
            group, klass = f.get("_compliance", (None, None))
            fid = None
            if f["custom"]:
                fid = sf_id("00N", next(cf_n))
                f["_id"] = fid
                org.add("CustomField", **_stamp({
                    "Id": fid, "DeveloperName": f["name"].removesuffix("__c"), "NamespacePrefix": None,
                    "TableEnumOrId": durable, "EntityDefinitionId": durable, "ManageableState": "unmanaged",
                    "Description": f.get("_description"), "InlineHelpText": None, "Length": f["length"] or None,
                    "FullName": f"{e['api']}.{f['name']}",
                    "Metadata": {"label": f["label"], "type": f["type"], "formula": f["calculatedFormula"]}},
                    t0, t1, mod_by="Bob Builder"))
            dtype = {"reference": f"Lookup({','.join(f['referenceTo'])})", "picklist": "Picklist",
                     "currency": "Currency(16, 2)", "string": "Text(255)", "id": "Lookup()", "email": "Email",
                     "percent": "Percent(3, 2)"}.get(f["type"], f["type"])
            if f["calculated"]:
                dtype = f"Formula ({dtype.split('(')[0]})"
            org.add("FieldDefinition", Id=DUMMY_DEPENDENCY_ID,
                    DurableId=f"{durable}.{fid[:15] if fid else f['name']}",
                    QualifiedApiName=f["name"], DeveloperName=f["name"].removesuffix("__c"),
                    EntityDefinitionId=durable, EntityDefinition={"QualifiedApiName": e["api"], "DurableId": durable,
                                                                  "DeveloperName": e["api"].removesuffix("__c")},
                    NamespacePrefix=None, Label=f["label"], DataType=dtype, Description=f.get("_description"),
                    ComplianceGroup=group, SecurityClassification=klass, BusinessStatus="Active" if group else None,
                    RelationshipName=f["relationshipName"], IsIndexed=f["name"] in ("Id", "Name"),
                    IsNillable=f["nillable"], LastModifiedDate=t1 if f["custom"] else None, LastModifiedById=None,
                    LastModifiedBy=_user("Bob Builder") if f["custom"] else None)
        org.describes[e["api"]] = {
            "name": e["api"], "label": e["label"], "custom": custom, "keyPrefix": e["prefix"],
            "queryable": True, "fields": [{k: v for k, v in f.items() if not k.startswith("_")} for f in fields],
            "childRelationships": [], "recordTypeInfos": [],
        }
    fid = {f"{obj}.{f['name']}": f.get("_id") for obj, fs in _FIELDS.items() for f in fs}
    obj_id = {e["api"]: (e["id"] or e["api"]) for e in _ENTITIES}

    # Apex
    cls_ids = {}
    for i, (name, body) in enumerate(_CLASSES.items(), start=1):
        cls_ids[name] = sf_id("01p", i)
        org.add("ApexClass", **_stamp({
            "Id": cls_ids[name], "Name": name, "NamespacePrefix": None, "ApiVersion": 62.0, "Status": "Active",
            "IsValid": True, "Body": body, "LengthWithoutComments": len(body), "ManageableState": "unmanaged",
            "FullName": name, "Metadata": {"apiVersion": 62.0, "status": "Active"}}, t0, t1, mod_by="Carla Coder"))
    trg_id = sf_id("01q", 1)
    org.add("ApexTrigger", **_stamp({
        "Id": trg_id, "Name": "AccountTrigger", "NamespacePrefix": None, "TableEnumOrId": "Account",
        "EntityDefinitionId": "Account", "ApiVersion": 62.0, "Status": "Active", "IsValid": True,
        "Body": "trigger AccountTrigger on Account (before insert, before update) {\n"
                "    AccountTriggerHandler.beforeSave(Trigger.new);\n}\n",
        "UsageBeforeInsert": True, "UsageAfterInsert": False, "UsageBeforeUpdate": True, "UsageAfterUpdate": False,
        "UsageBeforeDelete": False, "UsageAfterDelete": False, "UsageAfterUndelete": False,
        "ManageableState": "unmanaged", "FullName": "AccountTrigger", "Metadata": {"apiVersion": 62.0}}, t0, t1))

    # Flows: Invoice_Approval v1 Obsolete, v2 Active, v3 Draft; Project_Kickoff v1 Active
    flow_ids: dict[tuple[str, int], str] = {}
    n = itertools.count(1)
    for dev, label, ptype, objn, trig, versions, def_n in (
        ("Invoice_Approval", "Invoice Approval", "AutoLaunchedFlow", "Invoice__c", "RecordAfterSave",
         ["Obsolete", "Active", "Draft"], 1),
        ("Project_Kickoff", "Project Kickoff", "Flow", None, None, ["Active"], 2),
    ):
        def_id = sf_id("300", def_n)
        active = None
        ids = []
        for v, status in enumerate(versions, start=1):
            vid = sf_id("301", next(n))
            ids.append(vid)
            flow_ids[(dev, v)] = vid
            if status == "Active":
                active = vid
        for v, status in enumerate(versions, start=1):
            org.add("Flow", **_stamp({
                "Id": flow_ids[(dev, v)], "DefinitionId": def_id, "MasterLabel": label, "VersionNumber": v,
                "Status": status, "ProcessType": ptype, "Description": f"{label} v{v}", "ApiVersion": 62.0,
                "ManageableState": "unmanaged", "FullName": f"{dev}-{v}",
                "Definition": {"DeveloperName": dev, "NamespacePrefix": None, "MasterLabel": label,
                               "ActiveVersionId": active, "LatestVersionId": ids[-1]},
                "Metadata": _flow_metadata(ptype, label, objn, trig, status)}, t0, t1))

    # Validation rules
    vr = [
        (sf_id("03d", 1), "Invoice__c", "Amount_Positive", True, "Amount__c <= 0", "Amount must be positive.",
         "Amount__c"),
        (sf_id("03d", 2), "Opportunity", "Discount_Limit", True, "Discount_Percent__c > 0.5",
         "Discount above 50% needs approval.", None),
        (sf_id("03d", 3), "Account", "Region_Required", False, "ISBLANK(TEXT(Region__c))", "Pick a region.",
         "Region__c"),
    ]
    for vid, objn, name, active, formula, msg, disp in vr:
        org.add("ValidationRule", **_stamp({
            "Id": vid, "ValidationName": name, "EntityDefinitionId": obj_id[objn],
            "EntityDefinition": {"QualifiedApiName": objn, "DurableId": obj_id[objn]}, "Active": active,
            "Description": f"Guard on {objn}", "ErrorDisplayField": disp, "ErrorMessage": msg,
            "NamespacePrefix": None, "ManageableState": "unmanaged", "FullName": f"{objn}.{name}",
            "Metadata": {"active": active, "description": f"Guard on {objn}", "errorConditionFormula": formula,
                         "errorDisplayField": disp, "errorMessage": msg}}, t0, t1))

    # Layouts, FlexiPage
    for i, (objn, name, fields) in enumerate((
        ("Account", "Account Layout", ["Name", "Industry", "Region__c"]),
        ("Invoice__c", "Invoice Layout", ["Name", "Account__c", "Amount__c", "Status__c"]),
        ("Opportunity", "Opportunity Layout", ["Name", "StageName", "Amount", "Net_Amount__c"]),
    ), start=1):
        org.add("Layout", **_stamp({
            "Id": sf_id("00h", i), "Name": name, "TableEnumOrId": obj_id[objn], "EntityDefinitionId": obj_id[objn],
            "NamespacePrefix": None, "LayoutType": "Standard", "ManageableState": "unmanaged",
            "FullName": f"{objn}-{name}",
            "Metadata": {"layoutSections": [{"label": "Information", "layoutColumns": [
                {"layoutItems": [{"field": f, "behavior": "Edit"} for f in fields]}]}]}}, t0, t1))
    org.add("FlexiPage", **_stamp({
        "Id": sf_id("0M0", 1), "DeveloperName": "Invoice_Record_Page", "MasterLabel": "Invoice Record Page",
        "NamespacePrefix": None, "EntityDefinitionId": obj_id["Invoice__c"], "Type": "RecordPage",
        "Description": None, "ManageableState": "unmanaged", "FullName": "Invoice_Record_Page",
        "Metadata": {"masterLabel": "Invoice Record Page", "type": "RecordPage", "sobjectType": "Invoice__c",
                     "flexiPageRegions": [{"name": "main", "itemInstances": [
                         {"componentInstance": {"componentName": "c:invoiceSummary"}}]}]}}, t0, t1))
    # LWC / Aura
    org.add("LightningComponentBundle", **_stamp({
        "Id": sf_id("0Rb", 1), "DeveloperName": "invoiceSummary", "MasterLabel": "Invoice Summary",
        "NamespacePrefix": None, "ApiVersion": 62.0, "IsExposed": True, "Description": "Shows invoice totals.",
        "ManageableState": "unmanaged", "FullName": "invoiceSummary",
        "Metadata": {"apiVersion": 62.0, "isExposed": True}}, t0, t1))
    org.add("AuraDefinitionBundle", **_stamp({
        "Id": sf_id("0Ab", 1), "DeveloperName": "accountBanner", "MasterLabel": "accountBanner",
        "NamespacePrefix": None, "ApiVersion": 55.0, "Description": None, "ManageableState": "unmanaged",
        "FullName": "accountBanner", "Metadata": {"apiVersion": 55.0}}, t0))
    # Permission sets / profile
    org.add("PermissionSet", **_stamp({
        "Id": sf_id("0PS", 1), "Name": "Invoice_Manager", "Label": "Invoice Manager", "NamespacePrefix": None,
        "IsOwnedByProfile": False, "ProfileId": None, "Profile": None, "IsCustom": True, "Type": "Regular",
        "Description": "Manage invoices."}, t0, t1))
    org.add("PermissionSet", **_stamp({
        "Id": sf_id("0PS", 2), "Name": "X00e000000000001AAA", "Label": "00e000000000001AAA",
        "NamespacePrefix": None, "IsOwnedByProfile": True, "ProfileId": sf_id("00e", 1),
        "Profile": {"Name": "System Administrator", "Id": sf_id("00e", 1)}, "IsCustom": False,
        "Type": "Profile", "Description": None}, t0))
    # Record types, folders, reports, email templates
    org.add("RecordType", **_stamp({
        "Id": sf_id("012", 1), "Name": "New Business", "DeveloperName": "New_Business", "SobjectType": "Opportunity",
        "NamespacePrefix": None, "IsActive": True, "Description": None, "BusinessProcessId": sf_id("019", 1)}, t0))
    org.add("RecordType", **_stamp({
        "Id": sf_id("012", 2), "Name": "Partner", "DeveloperName": "Partner", "SobjectType": "Account",
        "NamespacePrefix": None, "IsActive": True, "Description": "Partner accounts", "BusinessProcessId": None}, t0))
    org.add("Folder", **_stamp({"Id": sf_id("00l", 1), "Name": "Sales Reports", "DeveloperName": "Sales_Reports",
                                "Type": "Report", "NamespacePrefix": None, "AccessType": "Public"}, t0))
    org.add("Folder", **_stamp({"Id": sf_id("00l", 2), "Name": "Billing Templates", "DeveloperName": "Billing_Templates",
                                "Type": "Email", "NamespacePrefix": None, "AccessType": "Public"}, t0))
    org.add("Report", **_stamp({
        "Id": sf_id("00O", 1), "Name": "Open Invoices", "DeveloperName": "Open_Invoices", "FolderName": "Sales Reports",
        "OwnerId": sf_id("00l", 1), "NamespacePrefix": None, "Format": "Tabular", "Description": "Unpaid invoices.",
        "LastRunDate": t1}, t0, t1))
    org.report_describes[sf_id("00O", 1)] = report_describe_from_metadata({
        "name": "Open Invoices", "format": "Tabular", "reportType": "CustomEntity$Invoice__c",
        "columns": [{"field": "CUST_NAME"}, {"field": "Invoice__c.Amount__c", "aggregateTypes": "Sum"}],
        "filter": {"criteriaItems": [{"column": "Invoice__c.Paid__c", "operator": "equals", "value": "0"}]}},
        sf_id("00O", 1), "Sales_Reports/Open_Invoices")
    org.add("EmailTemplate", **_stamp({
        "Id": sf_id("00X", 1), "Name": "Invoice Reminder", "DeveloperName": "Invoice_Reminder", "NamespacePrefix": None,
        "FolderId": sf_id("00l", 2), "FolderName": "Billing Templates", "TemplateType": "text", "IsActive": True,
        "Subject": "Your invoice {!Invoice__c.Name}", "Description": None, "UiType": "Aloha"}, t0))

    # Dependencies
    deps = org.obj("MetadataComponentDependency").records
    deps += [
        _dep(cls_ids["InvoiceService"], "InvoiceService", "ApexClass", sf_id("01I", 1), "Invoice", "CustomObject"),
        _dep(cls_ids["InvoiceService"], "InvoiceService", "ApexClass", fid["Invoice__c.Amount__c"], "Amount",
             "CustomField"),
        _dep(cls_ids["InvoiceService"], "InvoiceService", "ApexClass", fid["Invoice__c.Account__c"], "Account",
             "CustomField"),
        _dep(cls_ids["InvoiceServiceTest"], "InvoiceServiceTest", "ApexClass", cls_ids["InvoiceService"],
             "InvoiceService", "ApexClass"),
        _dep(cls_ids["AccountTriggerHandler"], "AccountTriggerHandler", "ApexClass", "Account", "Account",
             "StandardEntity"),
        _dep(cls_ids["AccountTriggerHandler"], "AccountTriggerHandler", "ApexClass", fid["Account.Region__c"],
             "Region", "CustomField"),
        _dep(trg_id, "AccountTrigger", "ApexTrigger", cls_ids["AccountTriggerHandler"], "AccountTriggerHandler",
             "ApexClass"),
        _dep(trg_id, "AccountTrigger", "ApexTrigger", "Account", "Account", "StandardEntity"),
        _dep(flow_ids[("Invoice_Approval", 1)], "Invoice_Approval", "Flow", fid["Invoice__c.Status__c"], "Status",
             "CustomField"),
        _dep(flow_ids[("Invoice_Approval", 2)], "Invoice_Approval", "Flow", fid["Invoice__c.Status__c"], "Status",
             "CustomField"),
        _dep(sf_id("03d", 1), "Amount_Positive", "ValidationRule", fid["Invoice__c.Amount__c"], "Amount",
             "CustomField"),
        _dep(sf_id("03d", 2), "Discount_Limit", "ValidationRule", fid["Opportunity.Discount_Percent__c"],
             "Discount_Percent", "CustomField"),
        _dep(sf_id("00h", 2), "Invoice Layout", "Layout", fid["Invoice__c.Amount__c"], "Amount", "CustomField"),
        _dep(fid["Project__c.Invoice__c"], "Invoice", "CustomField", sf_id("01I", 1), "Invoice", "CustomObject"),
        _dep(fid["Opportunity.Net_Amount__c"], "Net_Amount", "CustomField", fid["Opportunity.Discount_Percent__c"],
             "Discount_Percent", "CustomField"),
        _dep(sf_id("0Rb", 1), "invoiceSummary", "LightningComponentBundle", cls_ids["InvoiceService"],
             "InvoiceService", "ApexClass"),
        _dep(sf_id("0M0", 1), "Invoice_Record_Page", "FlexiPage", sf_id("0Rb", 1), "invoiceSummary",
             "LightningComponentBundle"),
    ]
    # Audit trail
    for i, (when, action, section, display) in enumerate((
        ("2024-05-01T08:00:00.000+0000", "createdCF", "Customize Invoices", "Created custom field Tax (Currency)"),
        ("2024-05-03T10:15:00.000+0000", "changedApexClass", "Apex Class", "Changed Class code: InvoiceService"),
        ("2024-05-20T12:00:00.000+0000", "activatedFlow", "Flows", "Activated flow version Invoice_Approval v2"),
        ("2024-06-01T16:45:00.000+0000", "changedValidationFormula", "Customize Opportunities",
         "Changed validation formula Discount_Limit"),
        ("2024-06-02T14:30:00.000+0000", "PermSetFlsChanged", "Manage Users",
         "Changed field permissions for Invoice_Manager"),
    ), start=1):
        org.add("SetupAuditTrail", Id=sf_id("0Ym", i), Action=action, Section=section, Display=display,
                CreatedDate=when, CreatedById=None, CreatedBy=_user("Ada Admin"), CreatedByContext=None,
                CreatedByIssuer=None, DelegateUser=None, ResponsibleNamespacePrefix=None)
    return org


#: PermissionSet user-permission checkbox columns the fake serves (a real org has ~400).
USER_PERMISSION_COLUMNS = (
    "PermissionsApiEnabled", "PermissionsAuthorApex", "PermissionsCustomizeApplication", "PermissionsExportReport",
    "PermissionsManageUsers", "PermissionsModifyAllData", "PermissionsModifyMetadata", "PermissionsRunReports",
    "PermissionsViewAllData", "PermissionsViewAllUsers", "PermissionsViewSetup",
)


# --------------------------------------------------------------------------------------------
# Runtime signals: async jobs, tests, coverage, flow interviews, event log files
# --------------------------------------------------------------------------------------------
_RUNTIME_OBJECTS: dict[str, tuple[list[str], bool, bool, dict[str, set[str]]]] = {
    # name: (fields, data API, Tooling API, relationships)
    "AsyncApexJob": (["Id", "ApexClassId", "JobType", "Status", "ExtendedStatus", "NumberOfErrors",
                      "JobItemsProcessed", "TotalJobItems", "MethodName", "CreatedDate", "CompletedDate"],
                     True, True, {"ApexClass": {"Name", "NamespacePrefix"}}),
    "ApexTestRunResult": (["Id", "AsyncApexJobId", "Status", "StartTime", "EndTime", "MethodsEnqueued",
                           "MethodsCompleted", "MethodsFailed", "ClassesCompleted", "JobName", "IsAllTests"],
                          True, True, {}),
    "ApexTestResult": (["Id", "ApexClassId", "MethodName", "Outcome", "Message", "StackTrace", "TestTimestamp",
                        "RunTime", "AsyncApexJobId", "ApexTestRunResultId"], True, True, {"ApexClass": {"Name"}}),
    "ApexOrgWideCoverage": (["Id", "PercentCovered"], False, True, {}),
    "ApexCodeCoverageAggregate": (["Id", "ApexClassOrTriggerId", "NumLinesCovered", "NumLinesUncovered"],
                                  False, True, {"ApexClassOrTrigger": {"Name"}}),
    "FlowInterview": (["Id", "Name", "InterviewLabel", "InterviewStatus", "CurrentElement", "FlowVersionViewId",
                       "Guid", "PauseLabel", "Error", "OwnerId", "CreatedDate", "LastModifiedDate"],
                      True, False, {}),
    "FlowVersionView": (["Id", "DurableId", "VersionNumber", "Status", "Label", "FlowDefinitionViewId"], True, False,
                        {"FlowDefinitionView": {"ApiName", "DurableId"}}),
    "EventLogFile": (["Id", "EventType", "LogDate", "Interval", "LogFileLength", "LogFileContentType",
                      "LogFileFieldNames", "LogFileFieldTypes", "Sequence", "ApiVersion", "CreatedDate"],
                     True, False, {}),
}


def add_runtime_objects(org: FakeOrg, *, event_monitoring: bool = True, skip: tuple[str, ...] = ()) -> FakeOrg:
    """Serve the runtime-signal objects (empty). Without ``event_monitoring`` (or for objects in
    ``skip``) the object does not exist: queries answer 400 INVALID_TYPE, as in an org without
    the licence."""
    for name, (fields, data, tooling, rels) in _RUNTIME_OBJECTS.items():
        if name in skip or (name == "EventLogFile" and not event_monitoring):
            continue
        if not any(k.lower() == name.lower() for k in org.objects):
            org.objects[name] = FakeObject(name, list(fields), tooling=tooling, data=data, relationships=dict(rels))
    return org


def add_log_file(org: FakeOrg, event_type: str, log_date: str, csv_text: str, *, created: str | None = None,
                 interval: str = "Daily", rid: str | None = None) -> dict[str, Any]:
    """An EventLogFile row and its LogFile CSV (served at ``sobjects/EventLogFile/<Id>/LogFile``)."""
    data = csv_text.encode()
    rid = rid or sf_id("0AT", len(org.log_files) + 1)
    header = csv_text.splitlines()[0] if csv_text else ""
    org.log_files[rid] = data
    return org.add("EventLogFile", Id=rid, EventType=event_type, LogDate=_sf_datetime(log_date),
                   Interval=interval, LogFileLength=len(data), LogFileContentType="CSV",
                   LogFileFieldNames=header.replace('"', ""), LogFileFieldTypes=None, Sequence=1, ApiVersion=62.0,
                   CreatedDate=_sf_datetime(created or log_date))


def runtime_from_recording(org: FakeOrg, folder: str | Path) -> FakeOrg:
    """Load recorded runtime signals (the demo's ``.aicolleague/signals/``: ``<Object>.json``,
    ``EventLogFile/<Id>.csv``, ``limits.json``, ``unavailable.json``) into the fake org, so a live
    extraction reads through the API exactly what the recorded reader reads from disk."""
    root = Path(folder)
    unavailable = json.loads((root / "unavailable.json").read_text()) if (root / "unavailable.json").is_file() else {}
    add_runtime_objects(org, skip=tuple(unavailable))
    for name in _RUNTIME_OBJECTS:
        path = root / f"{name}.json"
        if name in unavailable or not path.is_file():
            continue
        obj = org.obj(name)
        for rec in json.loads(path.read_text()):
            obj.records.append(copy.deepcopy(rec))
    for rid, blob in ((p.stem, p.read_bytes()) for p in sorted((root / "EventLogFile").glob("*.csv"))):
        org.log_files[rid] = blob
    if (root / "limits.json").is_file() and "limits" not in unavailable:
        snaps = json.loads((root / "limits.json").read_text())
        if snaps:
            org.limits = snaps[-1]["limits"]
    return org


def _add_access_and_ui_objects(org: FakeOrg) -> None:
    """Objects for permission-set access, workflow, Visualforce, value sets, tabs, bundle sources
    (empty; ``org_from_inventory`` fills them) and the PermissionSet describe."""
    o = org.objects
    perm = ["PermissionsRead", "PermissionsCreate", "PermissionsEdit", "PermissionsDelete",
            "PermissionsViewAllRecords", "PermissionsModifyAllRecords"]
    o["ObjectPermissions"] = _std("ObjectPermissions", ["ParentId", "SobjectType", *perm], tooling=False, data=True,
                                  rels={"Parent": {"IsOwnedByProfile", "IsCustom", "Name"}})
    o["FieldPermissions"] = _std("FieldPermissions", ["ParentId", "SobjectType", "Field", "PermissionsRead",
                                                      "PermissionsEdit"], tooling=False, data=True,
                                 rels={"Parent": {"IsOwnedByProfile", "IsCustom", "Name"}})
    o["SetupEntityAccess"] = _std("SetupEntityAccess", ["ParentId", "SetupEntityId", "SetupEntityType"],
                                  tooling=False, data=True, rels={"Parent": {"IsOwnedByProfile", "IsCustom", "Name"}})
    o["PermissionSetTabSetting"] = _std("PermissionSetTabSetting", ["ParentId", "Name", "Visibility"],
                                        tooling=False, data=True)
    o["CustomPermission"] = _std("CustomPermission", ["DeveloperName", "MasterLabel", "NamespacePrefix",
                                                      "Description"], tooling=True, data=True)
    o["ProfileLayout"] = _std("ProfileLayout", ["ProfileId", "LayoutId", "RecordTypeId", "TableEnumOrId"])
    o["WorkflowRule"] = _std("WorkflowRule", ["Name", "TableEnumOrId", "NamespacePrefix", "ManageableState",
                                              "FullName", "Metadata"])
    o["WorkflowFieldUpdate"] = _std("WorkflowFieldUpdate", ["Name", "SourceTableEnumOrId", "FieldDefinitionId",
                                                            "LiteralValue", "NamespacePrefix", "ManageableState",
                                                            "FullName", "Metadata"])
    o["ApexPage"] = _std("ApexPage", ["Name", "NamespacePrefix", "MasterLabel", "ApiVersion", "ControllerType",
                                      "ControllerKey", "Description", "Markup", "IsAvailableInTouch",
                                      "IsConfirmationTokenRequired", "ManageableState"], data=True)
    o["GlobalValueSet"] = _std("GlobalValueSet", ["DeveloperName", "MasterLabel", "NamespacePrefix", "Description",
                                                  "ManageableState", "FullName", "Metadata"])
    o["CustomTab"] = _std("CustomTab", ["DeveloperName", "MasterLabel", "NamespacePrefix", "Type", "Description",
                                        "ManageableState", "FullName", "Metadata"])
    o["LightningComponentResource"] = _std("LightningComponentResource", [
        "LightningComponentBundleId", "FilePath", "Format", "Source"])
    o["AuraDefinition"] = _std("AuraDefinition", ["AuraDefinitionBundleId", "DefType", "Format", "Source"])
    _permission_set_describe(org)


def _permission_set_describe(org: FakeOrg) -> None:
    org.describes["PermissionSet"] = {
        "name": "PermissionSet", "label": "Permission Set", "custom": False, "keyPrefix": "0PS", "queryable": True,
        "customSetting": False, "childRelationships": [], "recordTypeInfos": [],
        "fields": [_field("Id", "id", "Permission Set ID", nillable=False, length=18),
                   _field("Name", "string", "Name", length=80), _field("Label", "string", "Label", length=80),
                   _field("IsOwnedByProfile", "boolean", "Is Owned By Profile"),
                   _field("IsCustom", "boolean", "Custom")] +
                  [_field(c, "boolean", c[len("Permissions"):]) for c in USER_PERMISSION_COLUMNS],
    }


# --------------------------------------------------------------------------------------------
# SOQL subset
# --------------------------------------------------------------------------------------------
class SoqlError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Query:
    fields: list[str]
    obj: str
    where: list[tuple[str, str, Any]]
    order_by: tuple[str, bool] | None = None
    limit: int | None = None
    offset: int | None = None
    count: bool = False


_TOKEN_RE = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(<=|>=|!=|<>|=|<|>|\(|\)|,)|([^\s,()=<>!']+))")


def _tokenize(soql: str) -> list[str]:
    pos, out = 0, []
    s = soql.strip()
    while pos < len(s):
        m = _TOKEN_RE.match(s, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at {s[pos:pos + 20]!r}")
        tok = m.group(1) or m.group(2) or m.group(3)
        out.append(tok)
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


#: SOQL's quoted-string escapes; any other backslash sequence is an error, as in Salesforce
#: (``\_`` / ``\%`` become plain ``_`` / ``%``: this fake's LIKE does not tell them apart).
_SOQL_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\",
                  "_": "_", "%": "%"}


def _unescape(body: str) -> str:
    if "\n" in body or "\r" in body:
        raise SoqlError("MALFORMED_QUERY", "line break not allowed in a quoted string")

    def one(m: re.Match) -> str:
        c = m.group(1)
        if c[0] in "uU" and len(c) == 5:
            return chr(int(c[1:], 16))
        key = c.lower() if c in "NRTBF" else c
        if key in _SOQL_UNESCAPE:
            return _SOQL_UNESCAPE[key]
        raise SoqlError("MALFORMED_QUERY", f"Invalid string literal: unknown escape sequence \\{c}")

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, body)


def _literal(tok: str) -> Any:
    if tok.startswith("'"):
        return _unescape(tok[1:-1])
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", tok):
        return float(tok) if "." in tok else int(tok)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?", tok):
        return _Date(tok)
    raise SoqlError("MALFORMED_QUERY", f"unexpected literal {tok!r}")


class _Date(str):
    """A bare SOQL date/datetime literal."""


def parse_soql(soql: str) -> Query:
    toks = _tokenize(soql)
    i = 0

    def peek(k: int = 0) -> str:
        return toks[i + k] if i + k < len(toks) else ""

    def take(expect: str | None = None) -> str:
        nonlocal i
        tok = peek()
        if not tok or (expect and tok.upper() != expect):
            raise SoqlError("MALFORMED_QUERY", f"expected {expect or 'a token'} near {tok!r}")
        i += 1
        return tok

    take("SELECT")
    fields: list[str] = []
    count = False
    while True:
        f = take()
        if f.upper() == "COUNT" and peek() == "(":
            take("(")
            take(")")
            count = True
        elif f == "(" or f.upper() == "TYPEOF":
            raise SoqlError("MALFORMED_QUERY", "fake Salesforce: sub-queries/TYPEOF not supported")
        else:
            fields.append(f)
        if peek() == ",":
            take(",")
            continue
        break
    take("FROM")
    obj = take()
    where: list[tuple[str, str, Any]] = []
    if peek().upper() == "WHERE":
        take()
        while True:
            if peek().upper() == "NOT" or peek() == "(":
                raise SoqlError("MALFORMED_QUERY", "NOT / parenthesised conditions: unsupported here")
            f = take()
            op = take().upper()
            if op == "NOT" and peek().upper() == "IN":
                take()
                op = "NOT IN"
            if op in ("IN", "NOT IN"):
                take("(")
                vals = []
                while True:
                    vals.append(_literal(take()))
                    if peek() == ",":
                        take(",")
                        continue
                    take(")")
                    break
                where.append((f, op, vals))
            elif op in ("=", "!=", "<>", "<", ">", "<=", ">=", "LIKE"):
                where.append((f, "!=" if op == "<>" else op, _literal(take())))
            else:
                raise SoqlError("MALFORMED_QUERY", f"unexpected operator {op!r}")
            nxt = peek().upper()
            if nxt == "AND":
                take()
                continue
            if nxt in ("OR", "NOT"):
                raise SoqlError("MALFORMED_QUERY", f"{nxt}: unsupported here")
            break
    order_by = None
    limit = offset = None
    while peek():
        kw = take().upper()
        if kw == "ORDER":
            take("BY")
            f = take()
            desc = False
            if peek().upper() in ("ASC", "DESC"):
                desc = take().upper() == "DESC"
            if peek().upper() == "NULLS":
                take()
                take()
            order_by = (f, desc)
        elif kw == "LIMIT":
            limit = int(take())
        elif kw == "OFFSET":
            offset = int(take())
        else:
            raise SoqlError("MALFORMED_QUERY", f"fake Salesforce: unsupported clause {kw}")
    return Query(fields, obj, where, order_by, limit, offset, count)


def _parse_dt(v: Any) -> dt.datetime | None:
    if not isinstance(v, str) or not re.match(r"\d{4}-\d{2}-\d{2}", v):
        return None
    s = v.replace("Z", "+00:00")
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def _get_path(rec: dict[str, Any], path: str) -> Any:
    cur: Any = rec
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        key = next((k for k in cur if k.lower() == part.lower()), None)
        if key is None:
            return None
        cur = cur[key]
    return cur


def _cmp_value(a: Any, b: Any) -> tuple[Any, Any]:
    da, db = _parse_dt(a), _parse_dt(b)
    if da and db:
        return da, db
    if isinstance(a, str) and isinstance(b, str):
        return a.lower(), b.lower()
    return a, b


def _matches(rec: dict[str, Any], where: list[tuple[str, str, Any]]) -> bool:
    for f, op, val in where:
        v = _get_path(rec, f)
        if op in ("IN", "NOT IN"):
            hit = any(_cmp_value(v, x)[0] == _cmp_value(v, x)[1] for x in val)
            if hit != (op == "IN"):
                return False
            continue
        if op == "LIKE":
            pat = "^" + re.escape(str(val)).replace("%", ".*").replace("_", ".") + "$"
            if v is None or not re.match(pat, str(v), re.I):
                return False
            continue
        if v is None or val is None:
            ok = (v is None and val is None) if op == "=" else (op == "!=" and (v is None) != (val is None))
            if not ok:
                return False
            continue
        a, b = _cmp_value(v, val)
        try:
            ok = {"=": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        except TypeError:
            ok = False
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Faults and recording
# --------------------------------------------------------------------------------------------
@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    soql: str | None
    body: Any = None
    status: int | None = None
    #: Query results only: object queried and number of rows matched (before paging).
    obj: str | None = None
    matched: int | None = None


@dataclass
class Faults:
    #: After this many more authenticated API requests, every issued token is revoked.
    expire_session_after: int | None = None
    #: Delay (seconds) applied to the next ``delay_times`` requests (None: all requests).
    delay_s: float = 0.0
    delay_times: int | None = None
    delay_path_contains: str | None = None
    #: Drop every connection without answering.
    down: bool = False
    #: Queued failures: dicts {kind, times, path_contains}.
    queued: list[dict[str, Any]] = field(default_factory=list)
    #: Metadata API retrieve: end every retrieve as Failed with this message.
    retrieve_failure: str | None = None
    #: Metadata API retrieve: return these zip bytes instead of the built archive.
    retrieve_zip: bytes | None = None

    def fail(self, kind: str | int, times: int = 1, path_contains: str | None = None) -> None:
        """Queue ``times`` failures of ``kind``: "REQUEST_LIMIT_EXCEEDED", 429, 500, 502, 503;
        "reset" (the connection is closed without an answer); "truncated_json" (a 200 whose
        JSON body is cut in half, Content-Length matching the cut body); "cut_body" (a 200
        announcing the whole body, of which half is sent before the connection is closed)."""
        self.queued.append({"kind": kind, "times": times, "path_contains": path_contains})

    def slow(self, seconds: float, times: int | None = 1, path_contains: str | None = None) -> None:
        self.delay_s, self.delay_times, self.delay_path_contains = seconds, times, path_contains


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------
class _DropConnection(Exception):
    """Raised while handling a request: close the connection without answering."""


@dataclass
class _Mangled:
    """A response body sent as is (JSON content type); ``declared``: the Content-Length to
    announce instead (larger than ``data``: the connection is closed after ``data``)."""

    data: bytes
    declared: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: clients time out on purpose
        pass


class FakeSalesforce:
    """Context manager: ``with FakeSalesforce() as sf: sf.instance_url, sf.ca_path ...``."""

    def __init__(self, org: FakeOrg | None = None, *, version: str = "62.0") -> None:
        self.org = org or default_org()
        self.version = version
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self.valid_tokens: set[str] = {FAKE_STATIC_TOKEN}
        self.issued_tokens: list[str] = []
        self.api_usage = 0
        self._locators: dict[str, dict[str, Any]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._retrieves: dict[str, dict[str, Any]] = {}
        #: Polls answered InProgress before a retrieve succeeds.
        self.retrieve_in_progress_polls = 1
        self._ca = trustme.CA()
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-sf-")
        self.ca_path = str(Path(self._tmp.name) / "fake-sf-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_path)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._jwt_key: Any = None
        self.jwt_private_key_pem: str = ""
        self.jwt_audiences: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeSalesforce":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwt_private_key_pem = self._jwt_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        cert = self._ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.jwt_audiences = {self.instance_url, "https://login.salesforce.com", "https://test.salesforce.com"}
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-salesforce")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "FakeSalesforce":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def instance_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- helpers for tests -------------------------------------------------------------------
    def env_for(self, kind: str, prefix: str = "SF_FAKE") -> dict[str, str]:
        """Environment variables holding this fake's (fake) secrets for an auth kind."""
        if kind == "access_token":
            return {f"{prefix}_ACCESS_TOKEN": FAKE_STATIC_TOKEN}
        if kind == "client_credentials":
            return {f"{prefix}_CLIENT_ID": FAKE_CLIENT_ID, f"{prefix}_CLIENT_SECRET": FAKE_CLIENT_SECRET}
        if kind == "jwt":
            return {f"{prefix}_CLIENT_ID": FAKE_CLIENT_ID, f"{prefix}_USERNAME": FAKE_USERNAME,
                    f"{prefix}_PRIVATE_KEY": self.jwt_private_key_pem}
        if kind == "password":
            return {f"{prefix}_USERNAME": FAKE_USERNAME, f"{prefix}_PASSWORD": FAKE_PASSWORD,
                    f"{prefix}_SECURITY_TOKEN": FAKE_SECURITY_TOKEN, f"{prefix}_CLIENT_ID": FAKE_CLIENT_ID,
                    f"{prefix}_CLIENT_SECRET": FAKE_CLIENT_SECRET}
        raise ValueError(kind)

    def auth_env_keys(self, kind: str, prefix: str = "SF_FAKE") -> dict[str, str]:
        """``*_env`` key → variable name, as orgs.yaml would hold them."""
        return {f"{var[len(prefix) + 1:].lower()}_env": var for var in self.env_for(kind, prefix)}

    def org_config(self, kind: str = "client_credentials", name: str = "fake-live", prefix: str = "SF_FAKE",
                   *, login_url: str | None = None, api_version: str | None = None) -> Any:
        from aicolleague_pipelines.lib.orgs import AuthConfig, OrgConfig

        return OrgConfig(name=name, source="live", instance_url=self.instance_url,
                         api_version=api_version or self.version,
                         auth=AuthConfig(kind=kind, env=self.auth_env_keys(kind, prefix), login_url=login_url),
                         ca_bundle=self.ca_path)

    def secrets(self) -> list[str]:
        """Every secret value the fake knows (for leak assertions)."""
        pem_body = "".join(self.jwt_private_key_pem.splitlines()[1:-1])
        return [FAKE_CLIENT_SECRET, FAKE_PASSWORD, FAKE_SECURITY_TOKEN, FAKE_STATIC_TOKEN, pem_body[:64],
                *self.issued_tokens]

    def api_requests(self) -> list[RecordedRequest]:
        """Recorded requests other than OAuth token requests."""
        return [r for r in self.requests if not r.path.startswith("/services/oauth2/")]

    def queries(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.soql]

    def revoke_all_tokens(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    # -- request handling (called from handler threads) -------------------------------------
    def handle(self, h: "_Handler", method: str) -> None:
        split = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        rec = RecordedRequest(method, split.path, query, query.get("q"))
        with self.lock:
            self.requests.append(rec)
            faults = self.faults
            if faults.down:
                h.drop()
                return
            delay = 0.0
            if faults.delay_s and (faults.delay_path_contains is None or faults.delay_path_contains in h.path):
                if faults.delay_times is None or faults.delay_times > 0:
                    delay = faults.delay_s
                    if faults.delay_times is not None:
                        faults.delay_times -= 1
        if delay:
            time.sleep(delay)
        try:
            status, headers, body = self._dispatch(h, method, split.path, query, raw, rec)
        except _DropConnection:
            rec.status = 0
            h.drop()
            return
        except SoqlError as exc:
            status, headers, body = exc.status, {}, _err(exc.code, exc.message)
        except Exception as exc:  # a bug in the fake: make it visible
            status, headers, body = 500, {}, _err("UNKNOWN_EXCEPTION", f"fake Salesforce bug: {exc!r}")
        rec.status = status
        h.respond(status, headers, body)

    def _authorized(self, h: "_Handler") -> bool:
        auth = h.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        return self._token_valid(token)

    def _token_valid(self, token: str) -> bool:
        with self.lock:
            if self.faults.expire_session_after is not None:
                if self.faults.expire_session_after <= 0:
                    self.valid_tokens.clear()
                    self.faults.expire_session_after = None
                else:
                    self.faults.expire_session_after -= 1
            return token in self.valid_tokens

    def _queued_fault(self, path: str) -> Any:
        with self.lock:
            for f in self.faults.queued:
                if f["times"] > 0 and (not f["path_contains"] or f["path_contains"] in path):
                    f["times"] -= 1
                    return f["kind"]
        return None

    def _dispatch(self, h: "_Handler", method: str, path: str, query: dict[str, str], raw: bytes,
                  rec: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        if len(h.path) > self.org.max_url_length:
            return 431, {}, "Request Header Fields Too Large"
        if path == "/services/oauth2/token" and method == "POST":
            return self._token(h, raw)
        if path.startswith("/services/Soap/m/"):
            return self._soap_metadata(h, method, path, raw, rec)
        if not self._authorized(h):
            return 401, {}, _err("INVALID_SESSION_ID", "Session expired or invalid")
        kind = self._queued_fault(path)
        if kind == "reset":
            raise _DropConnection
        if kind == "REQUEST_LIMIT_EXCEEDED":
            return 403, {}, _err("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if kind in (429, 500, 502, 503):
            body = _err("SERVER_UNAVAILABLE", "Service Unavailable") if kind != 429 else \
                _err("REQUEST_LIMIT_EXCEEDED", "Too many requests")
            return int(kind), {}, body
        with self.lock:
            self.api_usage += 1
            usage = self.api_usage
        headers = {"Sforce-Limit-Info": f"api-usage={usage}/{API_LIMIT}"}
        body_json = None
        if raw:
            try:
                body_json = json.loads(raw)
            except ValueError:
                return 400, headers, _err("JSON_PARSER_ERROR", "request body is not JSON")
            rec.body = body_json
        status, extra, body = self._route(method, path, query, body_json, rec)
        headers.update(extra)
        if kind in ("truncated_json", "cut_body") and status == 200:
            data = json.dumps(body).encode()
            body = _Mangled(data[: len(data) // 2], len(data) if kind == "cut_body" else None)
        return status, headers, body

    def _route(self, method: str, path: str, query: dict[str, str], body: Any,
               rec: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        m = re.match(r"^/services/data/v(\d+\.\d+)(/.*)?$", path)
        if not m:
            return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
        version, rest = m.group(1), (m.group(2) or "/").rstrip("/") or "/"
        if version not in self.org.api_versions:
            return 404, {}, _err("NOT_FOUND", f"API version {version} is not supported")
        tooling = rest.startswith("/tooling/")
        sub = rest[len("/tooling"):] if tooling else rest
        if method == "GET" and sub == "/query":
            if "q" not in query:
                return 400, {}, _err("MALFORMED_QUERY", "missing q parameter")
            return 200, {}, self._query(query["q"], tooling, version, rec)
        m2 = re.match(r"^/query/([\w-]+)$", sub)
        if method == "GET" and m2:
            return 200, {}, self._query_more(m2.group(1), tooling, version)
        if method == "GET" and sub == "/limits" and not tooling:
            if self.org.limits is not None:
                return 200, {}, copy.deepcopy(self.org.limits)
            return 200, {}, {"DailyApiRequests": {"Max": API_LIMIT, "Remaining": API_LIMIT - self.api_usage}}
        m2 = re.match(r"^/sobjects/EventLogFile/(\w+)/LogFile$", sub)
        if method == "GET" and m2 and not tooling:
            blob = self.org.log_files.get(m2.group(1))
            if blob is None or not any(o.lower() == "eventlogfile" for o in self.org.objects):
                return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
            return 200, {"Content-Type": "text/csv"}, blob
        m2 = re.match(r"^/sobjects/(\w+)/describe$", sub)
        if method == "GET" and m2 and not tooling:
            d = next((v for k, v in self.org.describes.items() if k.lower() == m2.group(1).lower()), None)
            if d is None:
                return 404, {}, _err("NOT_FOUND", f"The requested resource does not exist: {m2.group(1)}")
            return 200, {}, d
        m2 = re.match(r"^/analytics/reports/(\w+)/describe$", sub)
        if method == "GET" and m2 and not tooling:
            rid = m2.group(1)
            d = self.org.report_describes.get(rid) or next(
                (v for k, v in self.org.report_describes.items() if k[:15] == rid[:15]), None)
            if d is None:
                return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
            return 200, {}, copy.deepcopy(d)
        m2 = re.match(r"^/sobjects/(\w+)/(\w+)$", sub)
        if method == "GET" and m2:
            return self._get_record(m2.group(1), m2.group(2), tooling, version)
        if method == "POST" and sub == "/composite" and tooling:
            return self._composite(body, version, rec)
        if tooling and sub == "/jobs/query" and method == "POST":
            return self._bulk_create(body, version)
        m2 = re.match(r"^/jobs/query/(\w+)(/results)?$", sub)
        if tooling and m2 and method == "GET":
            if m2.group(2):
                return self._bulk_results(m2.group(1), query)
            return self._bulk_status(m2.group(1))
        return 404, {}, _err("NOT_FOUND", f"The requested resource does not exist: {path}")

    # -- OAuth -------------------------------------------------------------------------------
    def _token(self, h: "_Handler", raw: bytes) -> tuple[int, dict[str, str], Any]:
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        cid, csecret = form.get("client_id"), form.get("client_secret")
        basic = h.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                cid, _, csecret = base64.b64decode(basic[6:]).decode().partition(":")
            except Exception:
                return 400, {}, {"error": "invalid_client", "error_description": "bad Basic header"}
        bad = {"error": "invalid_grant", "error_description": "authentication failure"}
        if grant == "client_credentials":
            if cid != FAKE_CLIENT_ID or csecret != FAKE_CLIENT_SECRET:
                return 400, {}, {"error": "invalid_client", "error_description": "invalid client credentials"}
        elif grant == "password":
            if cid != FAKE_CLIENT_ID or csecret != FAKE_CLIENT_SECRET:
                return 400, {}, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
            if form.get("username") != FAKE_USERNAME or form.get("password") != FAKE_PASSWORD + FAKE_SECURITY_TOKEN:
                return 400, {}, bad
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            import jwt

            try:
                if self.org.verify_jwt:
                    claims = jwt.decode(form.get("assertion", ""), self._jwt_key.public_key(), algorithms=["RS256"],
                                        audience=sorted(self.jwt_audiences), options={"require": ["exp", "iss", "sub",
                                                                                                  "aud"]})
                else:
                    claims = jwt.decode(form.get("assertion", ""), options={"verify_signature": False})
            except jwt.PyJWTError as exc:
                return 400, {}, {"error": "invalid_grant", "error_description": f"invalid assertion: {type(exc).__name__}"}
            if claims.get("iss") != FAKE_CLIENT_ID:
                return 400, {}, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
            if claims.get("sub") != FAKE_USERNAME:
                return 400, {}, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
        else:
            return 400, {}, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
        token = f"00DFAKE!FAKESECRET-{uuid.uuid4().hex}"
        with self.lock:
            self.valid_tokens.add(token)
            self.issued_tokens.append(token)
        return 200, {}, {
            "access_token": token, "instance_url": self.instance_url,
            "id": f"{self.instance_url}/id/{self.org.org_id}/005000000000001AAA", "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)), "signature": "ZmFrZQ==", "scope": "api",
        }

    # -- queries -----------------------------------------------------------------------------
    def _query(self, soql: str, tooling: bool, version: str, rec: RecordedRequest) -> Any:
        q = parse_soql(soql)
        try:
            obj = self.org.obj(q.obj)
        except KeyError:
            raise SoqlError("INVALID_TYPE", f"sObject type '{q.obj}' is not supported.") from None
        if (tooling and not obj.tooling) or (not tooling and not obj.data):
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj.name}' is not supported"
                            f"{' by the Tooling API' if tooling else ''}.")
        rec.obj = obj.name
        fields = [self._check_field(obj, f) for f in q.fields]
        for f, _, _ in q.where:
            self._check_field(obj, f)
        defn = obj.name in ("EntityDefinition", "FieldDefinition")
        mcd = obj.name == "MetadataComponentDependency"
        if defn and q.count:
            raise SoqlError("MALFORMED_QUERY", f"{obj.name} does not support aggregate queries (COUNT)")
        if obj.name == "FieldDefinition" and not any(
            f.lower().startswith("entitydefinition") or f.lower() == "durableid" for f, _, _ in q.where
        ):
            raise SoqlError("MALFORMED_QUERY", "FieldDefinition: query must filter on EntityDefinitionId, "
                            "EntityDefinition.QualifiedApiName or DurableId")
        if mcd:
            if q.order_by:
                raise SoqlError("MALFORMED_QUERY", "MetadataComponentDependency does not support ORDER BY")
            if any(f.lower().endswith("componentname") for f, _, _ in q.where):
                raise SoqlError("MALFORMED_QUERY", "MetadataComponentDependency: filtering on the Name fields "
                                "is not supported")
        rows = [r for r in obj.records if _matches(r, q.where)]
        if q.order_by:
            f, desc = q.order_by
            rows.sort(key=lambda r: (_get_path(r, f) is None, _cmp_value(_get_path(r, f), "")[0] or ""),
                      reverse=desc)
        if not defn:
            if q.offset:
                rows = rows[q.offset:]
            if q.limit is not None:
                rows = rows[:q.limit]
        if mcd:
            rows = rows[: self.org.dependency_cap]
        rec.matched = len(rows)
        if tooling and len(rows) > 1 and any(f.split(".")[0].lower() in ("metadata", "fullname") for f in fields):
            raise SoqlError("MALFORMED_QUERY", "When retrieving results with Metadata or FullName fields, the query "
                            f"qualifications must specify no more than one row for retrieval. Result size: {len(rows)}")
        if q.count:
            return {"totalSize": len(rows), "done": True, "records": []}
        records = [self._render(obj, r, fields, tooling, version) for r in rows]
        page = len(records) if mcd else max(1, self.org.page_size)
        return self._page(obj.name, records, 0, page, tooling, version, soql)

    def _check_field(self, obj: FakeObject, f: str) -> str:
        parts = f.split(".")
        canon = obj.canonical(parts[0])
        if canon is None or (len(parts) == 1 and canon in obj.relationships and canon not in obj.fields):
            raise SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{obj.name}'. If you are attempting "
                            "to use a custom field, be sure to append the '__c' after the custom field name.")
        if len(parts) > 1:
            allowed = obj.relationships.get(canon)
            if allowed is None or len(parts) != 2 or parts[1].lower() not in {a.lower() for a in allowed}:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{f}' in field path.")
            sub = next(a for a in allowed if a.lower() == parts[1].lower())
            return f"{canon}.{sub}"
        return canon

    def _render(self, obj: FakeObject, r: dict[str, Any], fields: list[str], tooling: bool,
                version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/{'tooling/' if tooling else ''}sobjects"
        out: dict[str, Any] = {"attributes": {"type": obj.name, "url": f"{base}/{obj.name}/{r.get('Id')}"}}
        for f in fields:
            if "." in f:
                rel, sub = f.split(".")
                val = r.get(rel)
                if val is None:
                    out.setdefault(rel, None)
                    continue
                rtype = "User" if rel.endswith("By") else rel
                target = out.get(rel) or {"attributes": {"type": rtype, "url": f"{base}/{rtype}/{val.get('Id')}"}}
                target[sub] = copy.deepcopy(val.get(sub))
                out[rel] = target
            else:
                out[f] = copy.deepcopy(r.get(f))
        return out

    def _page(self, objname: str, records: list[dict[str, Any]], start: int, size: int, tooling: bool,
              version: str, soql: str) -> dict[str, Any]:
        chunk = records[start:start + size]
        done = start + size >= len(records)
        body: dict[str, Any] = {}
        if tooling:
            body.update({"size": len(records), "totalSize": len(records), "done": done, "queryLocator": None,
                         "entityTypeName": objname})
        else:
            body.update({"totalSize": len(records), "done": done})
        if not done:
            with self.lock:
                key = f"01gFAKE{len(self._locators) + 1:08d}"
                self._locators[key] = {"records": records, "obj": objname, "size": size, "tooling": tooling}
            loc = f"{key}-{start + size}"
            body["nextRecordsUrl"] = f"/services/data/v{version}/{'tooling/' if tooling else ''}query/{loc}"
            if tooling:
                body["queryLocator"] = loc
        body["records"] = chunk
        return body

    def _query_more(self, locator: str, tooling: bool, version: str) -> Any:
        key, _, off = locator.rpartition("-")
        state = self._locators.get(key)
        if not state or not off.isdigit() or state["tooling"] != tooling:
            raise SoqlError("INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(state["obj"], state["records"], int(off), state["size"], tooling, version, "")

    def _get_record(self, objname: str, rid: str, tooling: bool, version: str) -> tuple[int, dict[str, str], Any]:
        try:
            obj = self.org.obj(objname)
        except KeyError:
            return 404, {}, _err("NOT_FOUND", f"The requested resource does not exist: {objname}")
        if (tooling and not obj.tooling) or (not tooling and not obj.data):
            return 404, {}, _err("NOT_FOUND", f"The requested resource does not exist: {objname}")
        r = next((x for x in obj.records if x.get("Id") == rid or str(x.get("Id", ""))[:15] == rid), None)
        if r is None:
            return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
        out = {"attributes": {"type": obj.name, "url": f"/services/data/v{version}/{'tooling/' if tooling else ''}"
                              f"sobjects/{obj.name}/{rid}"}}
        out.update({k: copy.deepcopy(v) for k, v in r.items()})
        return 200, {}, out

    def _composite(self, body: Any, version: str, rec: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        subs = (body or {}).get("compositeRequest")
        if not isinstance(subs, list) or not subs:
            return 400, {}, _err("INVALID_INPUT", "compositeRequest is required")
        if len(subs) > 25:
            return 400, {}, _err("LIMIT_EXCEEDED", f"Composite request limit exceeded: {len(subs)} > 25 subrequests")
        out = []
        for s in subs:
            url = str(s.get("url", ""))
            m = re.match(r"^/services/data/v(\d+\.\d+)/tooling/sobjects/(\w+)/(\w+)$", url)
            if s.get("method", "GET") != "GET" or not m:
                st, b = 400, _err("INVALID_INPUT", f"fake Salesforce: unsupported subrequest {url}")
            else:
                st, _, b = self._get_record(m.group(2), m.group(3), True, m.group(1))
            out.append({"body": b, "httpHeaders": {}, "httpStatusCode": st, "referenceId": s.get("referenceId")})
        return 200, {}, {"compositeResponse": out}

    # -- Bulk API 2.0 (tooling query jobs) ---------------------------------------------------
    def _bulk_create(self, body: Any, version: str) -> tuple[int, dict[str, str], Any]:
        soql = (body or {}).get("query")
        if (body or {}).get("operation") not in ("query", "queryAll") or not soql:
            return 400, {}, _err("INVALIDJOB", "operation query and a query are required")
        q = parse_soql(soql)
        try:
            obj = self.org.obj(q.obj)
        except KeyError:
            raise SoqlError("INVALID_TYPE", f"sObject type '{q.obj}' is not supported.") from None
        fields = [self._check_field(obj, f) for f in q.fields]
        for f, _, _ in q.where:
            self._check_field(obj, f)
        rows = [r for r in obj.records if _matches(r, q.where)]
        if obj.name == "MetadataComponentDependency":
            rows = rows[:100_000]
        job_id = f"750FAKE{len(self._jobs) + 1:011d}"
        with self.lock:
            self._jobs[job_id] = {"rows": rows, "fields": fields, "polls": self.org.bulk_polls_in_progress,
                                  "object": obj.name, "query": soql}
        return 200, {}, {"id": job_id, "operation": "query", "object": obj.name, "state": "UploadComplete",
                         "apiVersion": float(version), "contentType": "CSV", "lineEnding": "LF",
                         "columnDelimiter": "COMMA"}

    def _bulk_status(self, job_id: str) -> tuple[int, dict[str, str], Any]:
        job = self._jobs.get(job_id)
        if not job:
            return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
        with self.lock:
            if job["polls"] > 0:
                job["polls"] -= 1
                state = "InProgress"
            else:
                state = "JobComplete"
        return 200, {}, {"id": job_id, "object": job["object"], "state": state,
                         "numberRecordsProcessed": len(job["rows"]) if state == "JobComplete" else 0}

    def _bulk_results(self, job_id: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        job = self._jobs.get(job_id)
        if not job:
            return 404, {}, _err("NOT_FOUND", "The requested resource does not exist")
        if job["polls"] > 0:
            return 400, {}, _err("INVALIDJOBSTATE", "job is not complete")
        start = int(query.get("locator") or 0)
        size = int(query.get("maxRecords") or self.org.bulk_page_size)
        size = min(size, self.org.bulk_page_size)
        chunk = job["rows"][start:start + size]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(job["fields"])
        for r in chunk:
            row = []
            for f in job["fields"]:
                v = _get_path(r, f)
                row.append("" if v is None else ("true" if v is True else "false" if v is False else v))
            w.writerow(row)
        nxt = start + size
        headers = {"Content-Type": "text/csv", "Sforce-NumberOfRecords": str(len(chunk)),
                   "Sforce-Locator": str(nxt) if nxt < len(job["rows"]) else "null"}
        return 200, headers, buf.getvalue().encode()


    # -- SOAP Metadata API (retrieve) -----------------------------------------------------------
    def _soap_metadata(self, h: "_Handler", method: str, path: str, raw: bytes, rec: RecordedRequest
                       ) -> tuple[int, dict[str, str], Any]:
        import xml.etree.ElementTree as ET

        m = re.match(r"^/services/Soap/m/(\d+\.\d+)(/.*)?$", path)
        if method != "POST" or not m:
            return 404, {}, "Not Found"
        if m.group(1) not in self.org.api_versions:
            return _soap_fault("UNSUPPORTED_API_VERSION", f"UNSUPPORTED_API_VERSION: {m.group(1)}")
        if "SOAPAction" not in h.headers:
            return _soap_fault("INVALID_REQUEST", "No SOAPAction header")  # real: 500 "no SOAPAction header!"
        try:
            env = ET.fromstring(raw)
        except ET.ParseError as exc:
            return _soap_fault("INVALID_XML", f"could not parse the request: {exc}")
        sid = (env.findtext(".//{*}SessionHeader/{*}sessionId") or "").strip()
        if not self._token_valid(sid):
            return _soap_fault("INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: "
                                                     "Illegal Session")
        kind = self._queued_fault(path)
        if kind == "REQUEST_LIMIT_EXCEEDED":
            return _soap_fault("REQUEST_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")
        if kind in (429, 500, 502, 503):
            return int(kind), {}, "Service Unavailable"
        with self.lock:
            self.api_usage += 1
        body = env.find("{*}Body")
        call = body[0] if body is not None and len(body) else None
        if call is None:
            return _soap_fault("INVALID_REQUEST", "empty SOAP Body")
        op = call.tag.rsplit("}", 1)[-1]
        rec.body = {"soap": op}
        if op == "retrieve":
            req = call.find("{*}retrieveRequest")
            if req is None:
                return _soap_fault("INVALID_REQUEST", "retrieve needs a retrieveRequest")
            members: dict[str, list[str]] = {}
            for t in req.findall("{*}unpackaged/{*}types"):
                name = (t.findtext("{*}name") or "").strip()
                members.setdefault(name, []).extend((x.text or "").strip() for x in t.findall("{*}members"))
            if not members:
                return _soap_fault("INVALID_CROSS_REFERENCE_KEY", "No package or unpackaged manifest specified")
            single = (req.findtext("{*}singlePackage") or "false").strip().lower() == "true"
            with self.lock:
                rid = sf_id("09S", len(self._retrieves) + 1)
                self._retrieves[rid] = {"members": members, "single": single, "polls": 0,
                                        "version": (req.findtext("{*}apiVersion") or m.group(1)).strip()}
            rec.body["members"] = members
            return _soap_ok("retrieveResponse", f"<done>false</done><id>{rid}</id><state>Queued</state>")
        if op == "checkRetrieveStatus":
            rid = (call.findtext("{*}asyncProcessId") or "").strip()
            include_zip = (call.findtext("{*}includeZip") or "true").strip().lower() != "false"
            with self.lock:
                job = self._retrieves.get(rid)
                if job is not None:
                    job["polls"] += 1
            if job is None:
                return _soap_fault("INVALID_ID_FIELD", f"INVALID_ID_FIELD: Retrieve result {rid!r} not found")
            if job["polls"] <= self.retrieve_in_progress_polls:
                return _soap_ok("checkRetrieveStatusResponse",
                                f"<done>false</done><id>{rid}</id><status>InProgress</status><success>false</success>")
            if self.faults.retrieve_failure:
                msg = _xml_escape(self.faults.retrieve_failure)
                return _soap_ok("checkRetrieveStatusResponse",
                                f"<done>true</done><errorMessage>{msg}</errorMessage><errorStatusCode>"
                                f"UNKNOWN_EXCEPTION</errorStatusCode><id>{rid}</id><status>Failed</status>"
                                "<success>false</success>")
            zip_bytes, props, missing = self.retrieve_archive(job["members"], job["version"], single=job["single"])
            if self.faults.retrieve_zip is not None:
                zip_bytes = self.faults.retrieve_zip
            parts = ["<done>true</done>"]
            for fname, full, type_ in props:
                parts.append(f"<fileProperties><fileName>{_xml_escape(fname)}</fileName><fullName>"
                             f"{_xml_escape(full)}</fullName><type>{type_}</type></fileProperties>")
            parts.append(f"<id>{rid}</id>")
            for type_, full in missing:
                parts.append(f"<messages><fileName>{'' if job['single'] else 'unpackaged/'}package.xml</fileName>"
                             f"<problem>Entity of type &apos;{type_}&apos; named &apos;{_xml_escape(full)}&apos; "
                             "cannot be found</problem></messages>")
            parts.append("<status>Succeeded</status><success>true</success>")
            if include_zip:
                parts.append(f"<zipFile>{base64.b64encode(zip_bytes).decode()}</zipFile>")
            return _soap_ok("checkRetrieveStatusResponse", "".join(parts))
        return _soap_fault("INVALID_OPERATION", f"the fake does not implement {op}")

    def retrieve_archive(self, members: dict[str, list[str]], version: str, *, single: bool = False
                         ) -> tuple[bytes, list[tuple[str, str, str]], list[tuple[str, str]]]:
        """The zip a Metadata API retrieve of ``members`` returns: (bytes, fileProperties
        (fileName, fullName, type), members that cannot be found (type, fullName))."""
        prefix = "" if single else "unpackaged/"
        files: dict[str, str] = {}
        props: list[tuple[str, str, str]] = []
        missing: list[tuple[str, str]] = []
        objects: dict[str, dict[str, Any]] = {}  # object → {"self": md | None, children: [(tag, xml)]}

        def rows(type_: str) -> list[dict[str, Any]]:
            o = self.org.objects.get(type_)
            return o.records if o else []

        def find(type_: str, full: str) -> dict[str, Any] | None:
            return next((r for r in rows(type_) if r.get("FullName") == full or
                         (r.get("Name") == full and not r.get("NamespacePrefix"))), None)

        def add(path: str, text: str, full: str, type_: str) -> None:
            files[path] = text
            props.append((prefix + path, full, type_))

        for type_, names in members.items():
            for full in names:
                code = _CODE_FILES.get(type_)
                if code:
                    folder, suffix, body_col = code
                    r = find(type_, full)
                    if r is None or r.get(body_col) is None:
                        missing.append((type_, full))
                        continue
                    add(f"{folder}/{full}.{suffix}", str(r[body_col]), full, type_)
                    meta = {"apiVersion": r.get("ApiVersion") or float(version), "status": r.get("Status")}
                    if type_ == "ApexPage":
                        meta = {"apiVersion": r.get("ApiVersion") or float(version), "label": r.get("MasterLabel")
                                or full}
                    files[f"{folder}/{full}.{suffix}-meta.xml"] = _md_document(type_, meta)
                elif type_ == "CustomObject":
                    r = find(type_, full)
                    if r is None:
                        missing.append((type_, full))
                        continue
                    objects.setdefault(full, {"self": None, "children": []})["self"] = r.get("Metadata") or {}
                elif type_ in _OBJECT_CHILDREN:
                    r = find(type_, full)
                    obj, _, child = full.partition(".")
                    if r is None or not isinstance(r.get("Metadata"), dict) or not child:
                        missing.append((type_, full))
                        continue
                    md = {"fullName": child, **{k: v for k, v in r["Metadata"].items() if k != "fullName"}}
                    if type_ == "CustomField" and md.get("type") in _FIELD_TYPES:  # describe → Metadata API
                        md["type"] = _FIELD_TYPES[md["type"]]
                    objects.setdefault(obj, {"self": None, "children": []})["children"].append(
                        (_OBJECT_CHILDREN[type_], md))
                    props.append((f"{prefix}objects/{obj}.object", full, type_))
                elif type_ == "Flow":
                    versions = [r for r in rows("Flow") if (r.get("Definition") or {}).get("DeveloperName") == full]
                    active = next((r for r in versions if r.get("Id") == (r.get("Definition") or {}).get(
                        "ActiveVersionId")), None)
                    r = active or max(versions, key=lambda r: r.get("VersionNumber") or 0, default=None)
                    if r is None or not isinstance(r.get("Metadata"), dict):
                        missing.append((type_, full))
                        continue
                    add(f"flows/{full}.flow", _md_document("Flow", r["Metadata"]), full, type_)
                elif type_ in _GENERIC_FILES:
                    folder, suffix = _GENERIC_FILES[type_]
                    r = find(type_, full)
                    if r is None or not isinstance(r.get("Metadata"), dict):
                        missing.append((type_, full))
                        continue
                    add(f"{folder}/{full}.{suffix}", _md_document(type_, r["Metadata"]), full, type_)
                else:
                    missing.append((type_, full))
        for obj, parts in sorted(objects.items()):
            md = dict(parts["self"] or {})
            for tag, child in parts["children"]:
                md.setdefault(tag, []).append(child)
            files[f"objects/{obj}.object"] = _md_document("CustomObject", md)
            if parts["self"] is not None:
                props.append((f"{prefix}objects/{obj}.object", obj, "CustomObject"))
        files["package.xml"] = _package_xml(members, version)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(files):
                zf.writestr(prefix + path, files[path].encode("utf-8"))
        return buf.getvalue(), props, missing


#: Metadata API file layout of the types the fake retrieves.
_CODE_FILES = {"ApexClass": ("classes", "cls", "Body"), "ApexTrigger": ("triggers", "trigger", "Body"),
               "ApexPage": ("pages", "page", "Markup")}
_OBJECT_CHILDREN = {"CustomField": "fields", "ValidationRule": "validationRules", "RecordType": "recordTypes",
                    "ListView": "listViews", "WebLink": "webLinks", "CompactLayout": "compactLayouts",
                    "BusinessProcess": "businessProcesses", "FieldSet": "fieldSets"}
_GENERIC_FILES = {"Layout": ("layouts", "layout"), "FlexiPage": ("flexipages", "flexipage"),
                  "PermissionSet": ("permissionsets", "permissionset"), "Profile": ("profiles", "profile"),
                  "CustomTab": ("tabs", "tab"), "GlobalValueSet": ("globalValueSets", "globalValueSet"),
                  "FlowDefinition": ("flowDefinitions", "flowDefinition")}
_MD_NS = "http://soap.sforce.com/2006/04/metadata"
_FIELD_TYPES = {"currency": "Currency", "string": "Text", "picklist": "Picklist", "reference": "Lookup",
                "boolean": "Checkbox", "double": "Number", "percent": "Percent", "date": "Date",
                "datetime": "DateTime", "email": "Email", "textarea": "TextArea", "phone": "Phone", "url": "Url",
                "multipicklist": "MultiselectPicklist"}


def _xml_escape(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(str(text), {"'": "&apos;", '"': "&quot;"})


def _md_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return _xml_escape(v)


def _md_elements(md: Any, indent: str) -> list[str]:
    out: list[str] = []
    if not isinstance(md, dict):
        return out
    items = list(md.items())
    items.sort(key=lambda kv: (kv[0] != "fullName", kv[0]))
    for k, v in items:
        if v is None or k in ("urls", "attributes") or k.startswith("_"):
            continue
        for item in (v if isinstance(v, list) else [v]):
            if item is None:
                continue
            if isinstance(item, dict):
                inner = _md_elements(item, indent + "    ")
                out += [f"{indent}<{k}>", *inner, f"{indent}</{k}>"]
            else:
                out.append(f"{indent}<{k}>{_md_value(item)}</{k}>")
    return out


def _md_document(root: str, md: Any) -> str:
    md = {k: v for k, v in (md or {}).items() if k != "fullName"} if isinstance(md, dict) else {}
    body = _md_elements(md, "    ")
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', f'<{root} xmlns="{_MD_NS}">', *body,
                      f"</{root}>"]) + "\n"


def _package_xml(members: dict[str, list[str]], version: str) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f'<Package xmlns="{_MD_NS}">']
    for t in sorted(members):
        out.append("    <types>")
        out += [f"        <members>{_xml_escape(n)}</members>" for n in sorted(members[t])]
        out += [f"        <name>{t}</name>", "    </types>"]
    out += [f"    <version>{version}</version>", "</Package>"]
    return "\n".join(out) + "\n"


def _soap_envelope(inner: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="' + _MD_NS + '"><soapenv:Body>' + inner
            + "</soapenv:Body></soapenv:Envelope>").encode("utf-8")


def _soap_ok(response: str, result: str) -> tuple[int, dict[str, str], Any]:
    return 200, {"Content-Type": "text/xml;charset=UTF-8"}, _soap_envelope(
        f"<{response}><result>{result}</result></{response}>")


def _soap_fault(code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return 500, {"Content-Type": "text/xml;charset=UTF-8"}, (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="http://soap.sforce.com/2006/04/metadata">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{_xml_escape(message)}"
        "</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>").encode("utf-8")


def _err(code: str, message: str) -> list[dict[str, Any]]:
    return [{"message": message, "errorCode": code}]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeSalesforce
    timeout = 10

    def setup(self) -> None:
        super().setup()
        try:  # headers and body go out in separate writes: without this, Nagle + delayed ACK cost 40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    def do_GET(self) -> None:
        self.server_fake.handle(self, "GET")

    def do_POST(self) -> None:
        self.server_fake.handle(self, "POST")

    def do_PATCH(self) -> None:
        self.server_fake.handle(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server_fake.handle(self, "DELETE")

    def drop(self) -> None:
        """Close the connection without (the rest of) an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def respond(self, status: int, headers: dict[str, str], body: Any) -> None:
        if isinstance(body, _Mangled):
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(body.declared or len(body.data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body.data)
            if body.declared:
                self.wfile.flush()
                self.drop()
            return
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            ctype = headers.pop("Content-Type", "application/octet-stream")
        elif isinstance(body, str):
            data = body.encode()
            ctype = "text/plain"
        else:
            data = json.dumps(body).encode()
            ctype = "application/json;charset=UTF-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# Serving an SFDX project's org: OrgInventory (read by read_sfdx_project) → FakeOrg
# --------------------------------------------------------------------------------------------
_ID_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id18(id15: str) -> str:
    """The real 15 → 18 character Salesforce id conversion (case-checksum suffix)."""
    if len(id15) != 15:
        raise ValueError(id15)
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _ID_SUFFIX_CHARS[bits]
    return id15 + suffix


def realistic_id(prefix: str, n: int, pod: str = "8c0000") -> str:
    """A realistic-looking 18-character id: key prefix, pod/instance part, a mixed-case base-62
    counter, and the proper case-checksum suffix (``01p8c00000Ab3xZQAY`` style)."""
    v, digits = n * 7919 + 104_729, ""
    for _ in range(6):
        v, r = divmod(v, 62)
        digits = _B62[r] + digits
    return id18(f"{prefix}{pod}{digits}")


#: Metadata API profile names of the standard profiles → the label ``Profile.Name`` returns.
STANDARD_PROFILE_LABELS = {
    "Admin": "System Administrator",
    "Standard": "Standard User",
    "ReadOnly": "Read Only",
    "SolutionManager": "Solution Manager",
    "MarketingProfile": "Marketing User",
    "ContractManager": "Contract Manager",
    "StandardAul": "Standard Platform User",
}

#: Metadata API field type (SFDX ``<type>``) → describe ``type`` (SOAP type).
DESCRIBE_TYPES = {
    "Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Html": "textarea",
    "EncryptedText": "encryptedstring", "AutoNumber": "string", "Number": "double", "Currency": "currency",
    "Percent": "percent", "Checkbox": "boolean", "Date": "date", "DateTime": "datetime", "Time": "time",
    "Picklist": "picklist", "MultiselectPicklist": "multipicklist", "Lookup": "reference",
    "MasterDetail": "reference", "Hierarchy": "reference", "ExternalLookup": "reference",
    "MetadataRelationship": "string", "Email": "email", "Phone": "phone", "Url": "url",
    "Location": "location",
}

#: Standard fields whose describe type the builder needs for roll-up summaries.
_STANDARD_FIELD_TYPES = {"Amount": "currency", "ExpectedRevenue": "currency", "AnnualRevenue": "currency",
                         "Probability": "percent", "TotalOpportunityQuantity": "double"}

_STANDARD_KEY_PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "Case": "500",
                          "User": "005", "Campaign": "701", "Task": "00T", "Event": "00U", "Product2": "01t",
                          "Contract": "800", "Order": "801", "Asset": "02i"}

#: Tooling ``Metadata`` properties typed as arrays (always a JSON list, even with one element).
_TOOLING_ARRAYS = frozenset({
    "actionCalls", "apexPluginCalls", "assignments", "assignmentItems", "choices", "collectionProcessors",
    "conditions", "constants", "customErrors", "decisions", "dynamicChoiceSets", "environments", "filters",
    "formulas", "inputAssignments", "inputParameters", "loops", "outputAssignments", "outputParameters",
    "processMetadataValues", "queriedFields", "recordCreates", "recordDeletes", "recordLookups",
    "recordUpdates", "rules", "scheduledPaths", "screens", "fields", "stages", "steps", "subflows",
    "textTemplates", "transforms", "variables", "waits", "waitEvents",
    # Layout / FlexiPage
    "layoutSections", "layoutColumns", "layoutItems", "relatedLists", "platformActionListItems",
    "quickActionListItems", "flexiPageRegions", "itemInstances", "componentInstanceProperties",
    "criteria", "fieldInstanceProperties", "excludeButtons", "multilineLayoutFields",
})
_TOOLING_NUMBERS = frozenset({
    "apiVersion", "locationX", "locationY", "numberValue", "scale", "precision", "length", "visibleLines",
    "sortOrder", "emptySpace", "offsetNumber", "activeVersionNumber", "latestVersionNumber", "mode",
})


def tooling_metadata_json(value: Any, key: str | None = None) -> Any:
    """An SFDX metadata dict (XML element → string/dict/list) as the Tooling API's ``Metadata``
    column returns it: booleans and numbers typed, array properties always lists."""
    if isinstance(value, dict):
        out = {k: tooling_metadata_json(v, k) for k, v in value.items() if k != "fullName"}
        return out
    if isinstance(value, list):
        return [tooling_metadata_json(v, key) for v in value if v is not None]
    if isinstance(value, str):
        if key in ("stringValue", "label", "name", "description", "interviewLabel", "inputText", "value"):
            return value
        low = value.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        if key in _TOOLING_NUMBERS and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
            return float(value) if "." in value or key == "apiVersion" else int(value)
    return value


def _tooling_md(md: Any) -> dict[str, Any]:
    out = tooling_metadata_json(md or {})
    stack = [out]
    while stack:  # array properties holding a single element become one-element lists
        cur = stack.pop()
        if isinstance(cur, dict):
            for k, v in list(cur.items()):
                if k in _TOOLING_ARRAYS and not isinstance(v, list) and v is not None:
                    cur[k] = v = [v]
                stack.append(v)
        elif isinstance(cur, list):
            stack.extend(cur)
    return out


def _sf_datetime(iso: str) -> str:
    """``2026-11-19T13:10:31Z`` → ``2026-11-19T13:10:31.000+0000`` (the REST API's format)."""
    d = _parse_dt(iso)
    if d is None:
        return iso
    d = d.astimezone(dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


def _sfdx_field_describe_type(comp: Any, by_key: dict[str, Any]) -> str:
    a = comp.attributes
    t = a.get("data_type") or "Text"
    if t == "Summary":
        if a.get("summary_operation") == "count":
            return "double"
        target = a.get("summarized_field") or ""
        tc = by_key.get(f"CustomField:{target}")
        if tc is not None:
            return _sfdx_field_describe_type(tc, by_key)
        return _STANDARD_FIELD_TYPES.get(target.partition(".")[2], "double")
    return DESCRIBE_TYPES.get(t, t.lower())


def _field_definition_type(comp: Any, objects: dict[str, Any]) -> str:
    a = comp.attributes
    t = a.get("data_type") or "Text"
    if a.get("formula"):
        return f"Formula ({t})"
    if t in ("Lookup", "MasterDetail"):
        labels = [(objects.get(r) or {}).get("label") or r for r in a.get("reference_to") or []]
        return f"{'Master-Detail' if t == 'MasterDetail' else 'Lookup'}({','.join(labels)})"
    if t == "Summary":
        return f"Roll-Up Summary ({str(a.get('summary_operation') or 'sum').upper()} " \
               f"{(a.get('summary_foreign_key') or '').partition('.')[0]})"
    if t in ("Number", "Currency", "Percent"):
        return f"{t}({a.get('precision') or 18}, {a.get('scale') or 0})"
    if t in ("Text", "EncryptedText", "Url"):
        return {"Text": "Text", "EncryptedText": "Text (Encrypted)", "Url": "URL"}[t] + f"({a.get('length') or 255})"
    if t == "LongTextArea":
        return f"Long Text Area({a.get('length') or 32768})"
    return {"MultiselectPicklist": "Picklist (Multi-Select)", "DateTime": "Date/Time", "TextArea": "Text Area(255)"
            }.get(t, t)


#: Standard fields an org always has (describe lists them; SFDX projects hold no file for them).
def standard_fields_for(obj: str, kind: str) -> list[dict[str, Any]]:
    out = [_field("Id", "id", "Record ID", nillable=False, length=18)]
    if kind == "custom_metadata":
        out += [_field("DeveloperName", "string", "Custom Metadata Record Name", nillable=False, length=40),
                _field("MasterLabel", "string", "Label", nillable=False, length=40)]
    elif kind in ("custom", "custom_setting") or obj in ("Account", "Opportunity"):
        out.append(_field("Name", "string", f"{obj.removesuffix('__c').replace('_', ' ')} Name", nillable=False,
                          length=80))
    elif obj in ("Contact", "Lead"):
        out.append(_field("Name", "string", "Full Name", length=121))
    return out


def org_from_inventory(
    inventory: Any,
    *,
    audit_trail: Any = None,
    standard_fields: bool = True,
    flow_history: bool = True,
    org_id: str | None = None,
) -> FakeOrg:
    """A :class:`FakeOrg` serving the org an SFDX project describes (e.g. the demo acme-prod).

    ``inventory`` is an ``OrgInventory`` from ``read_sfdx_project``. Every component type the
    live extraction reads gets the rows the real APIs would return: EntityDefinition /
    CustomObject / CustomField / FieldDefinition / describe, ApexClass / ApexTrigger (Body,
    ApiVersion, Status, Usage*), Flow versions + FlowDefinition (``Metadata`` in the Tooling JSON
    shape), ValidationRule, Layout, FlexiPage (``Metadata``), PermissionSet (profiles as
    ``IsOwnedByProfile`` rows named by their label), RecordType, Folder + Report, Folder +
    EmailTemplate, LightningComponentBundle / AuraDefinitionBundle, SetupAuditTrail (from
    ``audit_trail``: a path to a recorded ``audit_trail.json`` or its rows) and
    MetadataComponentDependency rows derived from the graph the SFDX source yields.

    ``standard_fields``: describe also lists ``Id``/``Name`` (…) as a real org does.
    ``flow_history``: an active flow also has an older Obsolete version (as orgs do).
    Ids are realistic 18-character ids with the right key prefixes (01p, 01q, 00N, 01I, 300,
    301, 03d, 00h, 0M0, 0PS, 00e, 012, 00O, 00l, 00X, 0Rb, 0Ab, 0Ym).
    The ids of every component are in ``org.component_ids`` (canonical key → id).
    """
    from aicolleague_pipelines.lib.graph.build import build_org_graph

    org = default_org()
    for name in [n for n, o in org.objects.items() if n in ("Account", "Contact", "Opportunity", "Invoice__c",
                                                             "Project__c")]:
        del org.objects[name]
    for o in org.objects.values():
        o.records.clear()
    org.describes = {}
    _permission_set_describe(org)
    org.objects["FlowDefinition"] = _std("FlowDefinition", [
        "DeveloperName", "MasterLabel", "NamespacePrefix", "Description", "ActiveVersionId", "LatestVersionId",
        "ManageableState", "FullName", "Metadata"])
    if org_id:
        org.org_id = org_id
    by_key = inventory.by_key()
    comps = [c for c in inventory.components]
    counters: dict[str, itertools.count] = {}
    ids: dict[str, str] = {}

    def new_id(prefix: str) -> str:
        return realistic_id(prefix, next(counters.setdefault(prefix, itertools.count(1))))

    t0, t1 = "2025-03-04T09:12:00.000+0000", "2026-10-28T15:40:00.000+0000"
    admin, dev = "Dana Whitfield", "Tom Okafor"

    def of(type_: str) -> list[Any]:
        return [c for c in comps if c.type == type_]

    def stamp(rec: dict[str, Any], by: str = admin, mod_by: str | None = None) -> dict[str, Any]:
        return _stamp(rec, t0, t1, by=by, mod_by=mod_by or by)

    # -- objects -----------------------------------------------------------------------------
    objects: dict[str, dict[str, Any]] = {}
    custom_prefix = itertools.count(1)
    for c in of("CustomObject"):
        api, kind = c.full_name, c.attributes.get("object_kind") or "standard"
        custom = kind != "standard"
        durable = new_id("01I") if custom else api
        if custom:
            ids[c.key] = durable
            kp = ("m0" if kind == "custom_metadata" else "a0") + _B62[next(custom_prefix) % 62]
        else:
            kp = _STANDARD_KEY_PREFIXES.get(api)
        label = c.attributes.get("label") or api.removesuffix("__c").replace("_", " ")
        objects[api] = {"durable": durable, "label": label, "kind": kind, "prefix": kp}
        org.add("EntityDefinition", Id=DUMMY_DEPENDENCY_ID, DurableId=durable, QualifiedApiName=api,
                DeveloperName=re.sub(r"__(c|mdt|e|x|b)$", "", api), NamespacePrefix=c.namespace, Label=label,
                MasterLabel=label, IsCustomizable=True, IsCustomSetting=kind == "custom_setting", IsQueryable=True,
                KeyPrefix=kp, InternalSharingModel=c.attributes.get("sharing_model") or
                ("Public" if kind == "custom_setting" else None),
                ExternalSharingModel=c.attributes.get("external_sharing_model"),
                DeploymentStatus="Deployed" if custom else None, PublisherId="<local>" if custom else "System",
                LastModifiedDate=t1 if custom else None, LastModifiedById=None)
        if custom:
            org.add("CustomObject", **stamp({
                "Id": durable, "DeveloperName": re.sub(r"__(c|mdt|e|x|b)$", "", api), "NamespacePrefix": c.namespace,
                "ManageableState": "unmanaged", "Description": c.description,
                "SharingModel": c.attributes.get("sharing_model"), "ExternalName": None, "FullName": api,
                "Metadata": {"label": label, "pluralLabel": c.attributes.get("plural_label"),
                             "sharingModel": c.attributes.get("sharing_model"), "description": c.description}}))

    def durable_of(obj: str | None) -> str | None:
        return (objects.get(obj) or {}).get("durable") if obj else None

    # -- fields ------------------------------------------------------------------------------
    gvs = {c.full_name: c for c in of("GlobalValueSet")}
    describe_fields: dict[str, list[dict[str, Any]]] = {api: [] for api in objects}
    for c in of("CustomField"):
        obj, _, fname = c.full_name.partition(".")
        if obj not in objects:
            continue
        a = c.attributes
        custom = fname.endswith("__c")
        fid = new_id("00N") if custom else None
        if fid:
            ids[c.key] = fid
        picklist = list(a.get("picklist_values") or [])
        if not picklist and a.get("value_set") in gvs:
            picklist = [v.get("fullName") for v in _dicts_of(gvs[a["value_set"]].attributes.get("metadata"),
                                                              "customValue") if v.get("fullName")]
        d = _field(fname, _sfdx_field_describe_type(c, by_key), a.get("label") or fname,
                   picklist=picklist, referenceTo=list(a.get("reference_to") or []),
                   relationshipName=a.get("relationship_name"), calculated=bool(a.get("formula")) or
                   a.get("data_type") == "Summary", calculatedFormula=a.get("formula"),
                   controllerName=a.get("controlling_field"), dependentPicklist=bool(a.get("controlling_field")),
                   externalId=bool(a.get("external_id")), unique=bool(a.get("unique")),
                   encrypted=bool(a.get("encrypted")), nillable=not a.get("required"),
                   length=int(a.get("length") or 0), defaultValue=None, defaultValueFormula=a.get("default_value"),
                   inlineHelpText=a.get("inline_help_text"), custom=custom)
        if d["type"] == "boolean":
            # describe: a checkbox's default is a JSON boolean, never a formula
            d["nillable"], d["defaultValue"], d["defaultValueFormula"] = False, a.get("default_value") == "true", None
        d["_def"] = {"compliance": (a.get("compliance_group"), a.get("security_classification")),
                     "description": c.description, "id": fid, "dtype": _field_definition_type(c, objects)}
        describe_fields[obj].append(d)
        if custom:
            org.add("CustomField", **stamp({
                "Id": fid, "DeveloperName": fname.removesuffix("__c"), "NamespacePrefix": c.namespace,
                "TableEnumOrId": objects[obj]["durable"], "EntityDefinitionId": objects[obj]["durable"],
                "ManageableState": "unmanaged", "Description": c.description,
                "InlineHelpText": a.get("inline_help_text"), "Length": a.get("length"), "FullName": c.full_name,
                "Metadata": _as_arrays(_tooling_md(a.get("metadata") or {
                    "label": a.get("label"), "type": a.get("data_type"), "formula": a.get("formula"),
                    "summarizedField": a.get("summarized_field"), "summaryForeignKey": a.get("summary_foreign_key"),
                    "summaryOperation": a.get("summary_operation"),
                    "summaryFilterItems": a.get("summary_filter_items"),
                    "encryptionScheme": a.get("encryption_scheme"),
                    "valueSet": {"valueSetName": a["value_set"], "restricted": True} if a.get("value_set") else None}),
                    "summaryFilterItems")}, mod_by=dev))
    for api, info in objects.items():
        fields = describe_fields[api]
        if standard_fields:
            have = {f["name"] for f in fields}
            fields[:0] = [f for f in standard_fields_for(api, info["kind"]) if f["name"] not in have]
        for f in fields:
            meta = f.pop("_def", None) or {"compliance": (None, None), "description": None, "id": None,
                                            "dtype": {"id": "Lookup()", "string": "Text(80)"}.get(f["type"], "Text")}
            group, klass = meta["compliance"]
            fid = meta["id"]
            org.add("FieldDefinition", Id=DUMMY_DEPENDENCY_ID,
                    DurableId=f"{info['durable']}.{fid[:15] if fid else f['name']}", QualifiedApiName=f["name"],
                    DeveloperName=f["name"].removesuffix("__c"), EntityDefinitionId=info["durable"],
                    EntityDefinition={"QualifiedApiName": api, "DurableId": info["durable"],
                                      "DeveloperName": re.sub(r"__(c|mdt|e|x|b)$", "", api)},
                    NamespacePrefix=None, Label=f["label"], DataType=meta["dtype"], Description=meta["description"],
                    ComplianceGroup=group, SecurityClassification=klass, BusinessStatus="Active" if group else None,
                    RelationshipName=f["relationshipName"], IsIndexed=f["name"] in ("Id", "Name") or f["externalId"],
                    IsNillable=f["nillable"], LastModifiedDate=t1 if f["custom"] else None, LastModifiedById=None,
                    LastModifiedBy=_user(dev) if f["custom"] else None)
        org.describes[api] = {
            "name": api, "label": info["label"], "custom": info["kind"] != "standard", "keyPrefix": info["prefix"],
            "queryable": True, "customSetting": info["kind"] == "custom_setting",
            "fields": fields, "childRelationships": [], "recordTypeInfos": [],
        }

    # -- Apex ---------------------------------------------------------------------------------
    for c in of("ApexClass"):
        body = c.attributes.get("body") or ""
        ids[c.key] = new_id("01p")
        org.add("ApexClass", **stamp({
            "Id": ids[c.key], "Name": c.full_name, "NamespacePrefix": c.namespace,
            "ApiVersion": float(c.api_version or 62.0), "Status": c.status or "Active", "IsValid": True,
            "Body": body, "LengthWithoutComments": len(body), "ManageableState": "unmanaged", "FullName": c.full_name,
            "Metadata": {"apiVersion": float(c.api_version or 62.0), "status": c.status or "Active",
                         "packageVersions": []}}, by=admin, mod_by=dev))
    for c in of("ApexTrigger"):
        obj = c.attributes.get("object")
        events = set(c.attributes.get("events") or [])
        ids[c.key] = new_id("01q")
        usage = {u: e in events for u, e in (
            ("UsageBeforeInsert", "before insert"), ("UsageAfterInsert", "after insert"),
            ("UsageBeforeUpdate", "before update"), ("UsageAfterUpdate", "after update"),
            ("UsageBeforeDelete", "before delete"), ("UsageAfterDelete", "after delete"),
            ("UsageAfterUndelete", "after undelete"))}
        org.add("ApexTrigger", **stamp({
            "Id": ids[c.key], "Name": c.full_name, "NamespacePrefix": c.namespace,
            "TableEnumOrId": durable_of(obj) or obj, "EntityDefinitionId": durable_of(obj) or obj,
            "ApiVersion": float(c.api_version or 62.0), "Status": c.status or "Active", "IsValid": True,
            "Body": c.attributes.get("body") or "", **usage, "ManageableState": "unmanaged",
            "FullName": c.full_name, "Metadata": {"apiVersion": float(c.api_version or 62.0),
                                                  "status": c.status or "Active"}}, by=admin, mod_by=dev))

    # -- Flows: FlowDefinition (300) + versions (301) ----------------------------------------
    flow_version_ids: dict[str, list[str]] = {}
    for c in of("Flow"):
        md = c.attributes.get("metadata") or {}
        status = c.status or str(md.get("status") or "Active")
        statuses = ["Obsolete", status] if flow_history and status == "Active" else [status]
        def_id = new_id("300")
        ids[c.key] = def_id
        vids = [new_id("301") for _ in statuses]
        flow_version_ids[c.key] = vids
        active = next((v for v, s in zip(vids, statuses) if s == "Active"), None)
        label = c.attributes.get("label") or c.full_name
        org.add("FlowDefinition", **stamp({
            "Id": def_id, "DeveloperName": c.full_name, "MasterLabel": label, "NamespacePrefix": c.namespace,
            "Description": c.description, "ActiveVersionId": active, "LatestVersionId": vids[-1],
            "ManageableState": "unmanaged", "FullName": c.full_name,
            "Metadata": {"activeVersionNumber": statuses.index("Active") + 1 if active else None,
                         "description": c.description}}))
        for n, (vid, st) in enumerate(zip(vids, statuses), start=1):
            vmd = _tooling_md(md)
            vmd["status"] = st
            org.add("Flow", **stamp({
                "Id": vid, "DefinitionId": def_id, "MasterLabel": label, "VersionNumber": n, "Status": st,
                "ProcessType": c.attributes.get("process_type") or md.get("processType"),
                "Description": c.description, "ApiVersion": float(c.api_version or md.get("apiVersion") or 62.0),
                "ManageableState": "unmanaged", "FullName": f"{c.full_name}-{n}",
                "Definition": {"DeveloperName": c.full_name, "NamespacePrefix": c.namespace, "MasterLabel": label,
                               "ActiveVersionId": active, "LatestVersionId": vids[-1]},
                "Metadata": vmd}, mod_by=dev))

    # -- validation rules, layouts, Lightning pages -----------------------------------------
    for c in of("ValidationRule"):
        obj, _, name = c.full_name.partition(".")
        a = c.attributes
        ids[c.key] = new_id("03d")
        org.add("ValidationRule", **stamp({
            "Id": ids[c.key], "ValidationName": name, "EntityDefinitionId": durable_of(obj) or obj,
            "EntityDefinition": {"QualifiedApiName": obj, "DurableId": durable_of(obj) or obj},
            "Active": bool(c.active), "Description": c.description, "ErrorDisplayField": a.get("error_display_field"),
            "ErrorMessage": a.get("error_message"), "NamespacePrefix": c.namespace, "ManageableState": "unmanaged",
            "FullName": c.full_name,
            "Metadata": {"active": bool(c.active), "description": c.description,
                         "errorConditionFormula": a.get("error_condition_formula"),
                         "errorDisplayField": a.get("error_display_field"), "errorMessage": a.get("error_message"),
                         "shouldEvaluateOnClient": False}}))
    for c in of("Layout"):
        obj, _, name = c.full_name.partition("-")
        ids[c.key] = new_id("00h")
        org.add("Layout", **stamp({
            "Id": ids[c.key], "Name": name, "TableEnumOrId": durable_of(obj) or obj,
            "EntityDefinitionId": durable_of(obj) or obj, "NamespacePrefix": c.namespace, "LayoutType": "Standard",
            "ManageableState": "unmanaged", "FullName": c.full_name,
            "Metadata": _tooling_md(c.attributes.get("metadata"))}))
    for c in of("FlexiPage"):
        md = c.attributes.get("metadata") or {}
        obj = md.get("sobjectType") if isinstance(md, dict) else None
        ids[c.key] = new_id("0M0")
        org.add("FlexiPage", **stamp({
            "Id": ids[c.key], "DeveloperName": c.full_name, "MasterLabel": c.attributes.get("label") or c.full_name,
            "NamespacePrefix": c.namespace, "EntityDefinitionId": durable_of(obj) or obj,
            "Type": md.get("type") if isinstance(md, dict) else None, "Description": c.description,
            "ManageableState": "unmanaged", "FullName": c.full_name, "Metadata": _tooling_md(md)}))

    # -- permission sets and profiles --------------------------------------------------------
    ps_ids: dict[str, str] = {}
    for c in of("PermissionSet"):
        ids[c.key] = ps_ids[c.key] = new_id("0PS")
        org.add("PermissionSet", **stamp({
            "Id": ids[c.key], "Name": c.full_name, "Label": c.attributes.get("label") or c.full_name,
            "NamespacePrefix": c.namespace, "IsOwnedByProfile": False, "ProfileId": None, "Profile": None,
            "IsCustom": True, "Type": "Regular", "Description": c.description}))
    for c in of("Profile"):
        pid = new_id("00e")
        ids[c.key] = pid
        md = c.attributes.get("metadata") or {}
        custom = str(md.get("custom", "true")).lower() == "true" if isinstance(md, dict) else True
        label = STANDARD_PROFILE_LABELS.get(c.full_name, c.full_name)
        ps_ids[c.key] = new_id("0PS")
        org.add("PermissionSet", **stamp({
            "Id": ps_ids[c.key], "Name": f"X{pid}", "Label": pid, "NamespacePrefix": None,
            "IsOwnedByProfile": True, "ProfileId": pid, "Profile": {"Name": label, "Id": pid}, "IsCustom": custom,
            "Type": "Profile", "Description": c.description}))

    # -- record types ----------------------------------------------------------------------------
    bp_ids: dict[str, str] = {}
    for c in of("RecordType"):
        obj, _, dev_name = c.full_name.partition(".")
        bp = c.attributes.get("business_process")
        if bp and f"{obj}.{bp}" not in bp_ids:
            bp_ids[f"{obj}.{bp}"] = new_id("019")
        ids[c.key] = new_id("012")
        org.add("RecordType", **stamp({
            "Id": ids[c.key], "Name": c.attributes.get("label") or dev_name, "DeveloperName": dev_name,
            "SobjectType": obj, "NamespacePrefix": c.namespace, "IsActive": c.active is not False,
            "Description": c.description, "BusinessProcessId": bp_ids.get(f"{obj}.{bp}") if bp else None}))

    # -- folders, reports, email templates ---------------------------------------------------
    folder_ids: dict[tuple[str, str], str] = {}

    def folder(kind: str, dev_name: str) -> str:
        if (kind, dev_name) not in folder_ids:
            folder_ids[(kind, dev_name)] = fid_ = new_id("00l")
            org.add("Folder", **stamp({"Id": fid_, "Name": dev_name.replace("_", " "), "DeveloperName": dev_name,
                                       "Type": kind, "NamespacePrefix": None, "AccessType": "Public"}))
        return folder_ids[(kind, dev_name)]

    for c in of("Report"):
        fname, _, dev_name = c.full_name.rpartition("/")
        md = c.attributes.get("metadata") or {}
        ids[c.key] = new_id("00O")
        org.add("Report", **stamp({
            "Id": ids[c.key], "Name": md.get("name") or dev_name, "DeveloperName": dev_name,
            "FolderName": fname.replace("_", " "), "OwnerId": folder("Report", fname), "NamespacePrefix": c.namespace,
            "Format": md.get("format"), "Description": c.description or md.get("description"),
            "LastRunDate": t1}))
    for c in of("EmailTemplate"):
        fname, _, dev_name = c.full_name.rpartition("/")
        md = c.attributes.get("metadata") or {}
        ids[c.key] = new_id("00X")
        org.add("EmailTemplate", **stamp({
            "Id": ids[c.key], "Name": md.get("name") or c.attributes.get("label") or dev_name,
            "DeveloperName": dev_name, "NamespacePrefix": c.namespace, "FolderId": folder("Email", fname),
            "FolderName": fname.replace("_", " "), "TemplateType": md.get("type") or "text",
            "IsActive": str(md.get("available", "true")).lower() == "true", "Subject": md.get("subject"),
            "Description": c.description, "UiType": md.get("uiType") or "Aloha",
            "Body": c.attributes.get("body") if (md.get("type") or "text") == "text" else None,
            "HtmlValue": c.attributes.get("body") if md.get("type") in ("html", "custom") else None,
            "Markup": c.attributes.get("body") if md.get("type") == "visualforce" else None,
            "RelatedEntityType": md.get("relatedEntityType")}))

    # -- LWC / Aura ----------------------------------------------------------------------------
    for type_, prefix in (("LightningComponentBundle", "0Rb"), ("AuraDefinitionBundle", "0Ab")):
        for c in of(type_):
            md = c.attributes.get("metadata") or {}
            ids[c.key] = new_id(prefix)
            rec = {"Id": ids[c.key], "DeveloperName": c.full_name,
                   "MasterLabel": c.attributes.get("label") or md.get("masterLabel") or c.full_name,
                   "NamespacePrefix": c.namespace, "ApiVersion": float(c.api_version or md.get("apiVersion") or 62.0),
                   "Description": c.description or md.get("description"), "ManageableState": "unmanaged",
                   "FullName": c.full_name, "Metadata": _tooling_md(md)}
            if type_ == "LightningComponentBundle":
                rec["IsExposed"] = str(md.get("isExposed", "false")).lower() == "true"
            org.add(type_, **stamp(rec, mod_by=dev))

    # -- Visualforce, workflow, value sets, tabs, custom metadata records ------------------------
    for c in of("ApexPage"):
        md = c.attributes.get("metadata") or {}
        ids[c.key] = new_id("066")
        org.add("ApexPage", **stamp({
            "Id": ids[c.key], "Name": c.full_name, "NamespacePrefix": c.namespace,
            "MasterLabel": c.attributes.get("label") or md.get("label") or c.full_name,
            "ApiVersion": float(c.api_version or md.get("apiVersion") or 62.0), "ControllerType": "1",
            "ControllerKey": None, "Description": c.description, "Markup": c.attributes.get("body") or "",
            "IsAvailableInTouch": _xml_true(md.get("availableInTouch")),
            "IsConfirmationTokenRequired": _xml_true(md.get("confirmationTokenRequired")),
            "ManageableState": "unmanaged"}, mod_by=dev))
    for c in of("WorkflowRule"):
        obj, _, name = c.full_name.partition(".")
        ids[c.key] = new_id("01Q")
        org.add("WorkflowRule", **stamp({
            "Id": ids[c.key], "Name": name, "TableEnumOrId": durable_of(obj) or obj, "NamespacePrefix": c.namespace,
            "ManageableState": "unmanaged", "FullName": c.full_name,
            "Metadata": _as_arrays(_tooling_md(c.attributes.get("metadata")), "actions", "criteriaItems")}))
    for c in of("WorkflowFieldUpdate"):
        obj, _, name = c.full_name.partition(".")
        md = c.attributes.get("metadata") or {}
        ids[c.key] = new_id("04Y")
        org.add("WorkflowFieldUpdate", **stamp({
            "Id": ids[c.key], "Name": md.get("name") or name, "SourceTableEnumOrId": durable_of(obj) or obj,
            "FieldDefinitionId": None, "LiteralValue": md.get("literalValue"), "NamespacePrefix": c.namespace,
            "ManageableState": "unmanaged", "FullName": c.full_name, "Metadata": _tooling_md(md)}))
    for c in of("GlobalValueSet"):
        md = copy.deepcopy(c.attributes.get("metadata") or {})
        md["customValue"] = [{("valueName" if k == "fullName" else k): v for k, v in cv.items()}
                             for cv in _dicts_of(md, "customValue")]
        ids[c.key] = new_id("0Nt")
        org.add("GlobalValueSet", **stamp({
            "Id": ids[c.key], "DeveloperName": c.full_name, "MasterLabel": md.get("masterLabel") or c.full_name,
            "NamespacePrefix": c.namespace, "Description": c.description, "ManageableState": "unmanaged",
            "FullName": c.full_name, "Metadata": _as_arrays(_tooling_md(md), "customValue")}))
    for c in of("CustomTab"):
        md = c.attributes.get("metadata") or {}
        ids[c.key] = new_id("01r")
        object_tab = _xml_true(md.get("customObject"))
        org.add("CustomTab", **stamp({
            "Id": ids[c.key], "DeveloperName": re.sub(r"__c$", "", c.full_name) if object_tab else c.full_name,
            "MasterLabel": (objects.get(c.full_name) or {}).get("label") or c.full_name,
            "NamespacePrefix": c.namespace, "Type": "customObject" if object_tab else "page" if md.get("page") else
            "url", "Description": c.description, "ManageableState": "unmanaged", "FullName": c.full_name,
            "Metadata": _tooling_md(md)}))
    mdt_records: dict[str, list[Any]] = {api: [] for api, info in objects.items() if info["kind"] == "custom_metadata"}
    for c in of("CustomMetadata"):
        api = c.attributes.get("object") or c.full_name.partition(".")[0] + "__mdt"
        if api in mdt_records:
            mdt_records[api].append(c)
    for api, recs in mdt_records.items():
        fields = [f for f in of("CustomField") if f.full_name.startswith(f"{api}.") and f.full_name.endswith("__c")]
        org.objects[api] = FakeObject(api, ["Id", "DeveloperName", "MasterLabel", "Label", "NamespacePrefix",
                                            "QualifiedApiName", *[f.full_name.partition(".")[2] for f in fields]],
                                      tooling=False, data=True)
        types = {f.full_name.partition(".")[2]: f.attributes.get("data_type") for f in fields}
        for c in recs:
            dev_name = c.full_name.partition(".")[2]
            row = {"Id": new_id(objects[api]["prefix"] or "m00"), "DeveloperName": dev_name,
                   "MasterLabel": c.attributes.get("label") or dev_name, "Label": c.attributes.get("label") or dev_name,
                   "NamespacePrefix": c.namespace, "QualifiedApiName": dev_name}
            for fname, value in (c.attributes.get("values") or {}).items():
                row[fname] = _typed_value(value, types.get(fname))
            ids[c.key] = row["Id"]
            org.add(api, **row)

    # -- permission-set and profile access (ObjectPermissions, FieldPermissions, ...) ------------
    entity_ids = {"ApexClass": "ApexClass", "ApexPage": "ApexPage", "Flow": "FlowDefinition"}
    custom_perms: dict[str, str] = {}
    for c in of("PermissionSet") + of("Profile"):
        md = c.attributes.get("metadata") or {}
        parent = ps_ids[c.key]
        ps_row = next(r for r in org.obj("PermissionSet").records if r["Id"] == parent)
        for up in _dicts_of(md, "userPermissions"):
            col = f"Permissions{up.get('name')}"
            if col in USER_PERMISSION_COLUMNS and _xml_true(up.get("enabled")):
                ps_row[col] = True
        for col in USER_PERMISSION_COLUMNS:
            ps_row.setdefault(col, False)
        for op in _dicts_of(md, "objectPermissions"):
            org.add("ObjectPermissions", Id=new_id("110"), ParentId=parent, SobjectType=op.get("object"),
                    **{col: _xml_true(op.get(key)) for col, key in (
                        ("PermissionsRead", "allowRead"), ("PermissionsCreate", "allowCreate"),
                        ("PermissionsEdit", "allowEdit"), ("PermissionsDelete", "allowDelete"),
                        ("PermissionsViewAllRecords", "viewAllRecords"),
                        ("PermissionsModifyAllRecords", "modifyAllRecords"))})
        for fp in _dicts_of(md, "fieldPermissions"):
            if _xml_true(fp.get("readable")) or _xml_true(fp.get("editable")):  # no row without access
                org.add("FieldPermissions", Id=new_id("01k"), ParentId=parent,
                        SobjectType=str(fp.get("field")).partition(".")[0], Field=fp.get("field"),
                        PermissionsRead=_xml_true(fp.get("readable")), PermissionsEdit=_xml_true(fp.get("editable")))
        grants: list[tuple[str | None, str]] = []
        for tag, attr, type_ in (("classAccesses", "apexClass", "ApexClass"), ("pageAccesses", "apexPage", "ApexPage"),
                                 ("flowAccesses", "flow", "Flow")):
            for item in _dicts_of(md, tag):
                if _xml_true(item.get("enabled")):
                    grants.append((ids.get(f"{type_}:{item.get(attr)}"), entity_ids[type_]))
        for tag in ("customMetadataTypeAccesses", "customSettingAccesses"):
            for item in _dicts_of(md, tag):
                if _xml_true(item.get("enabled")):
                    grants.append((durable_of(item.get("name")), "CustomEntityDefinition"))
        for item in _dicts_of(md, "customPermissions"):
            if _xml_true(item.get("enabled")) and item.get("name"):
                if item["name"] not in custom_perms:
                    custom_perms[item["name"]] = new_id("0CP")
                    org.add("CustomPermission", **stamp({"Id": custom_perms[item["name"]],
                                                         "DeveloperName": item["name"], "MasterLabel": item["name"],
                                                         "NamespacePrefix": None, "Description": None}))
                grants.append((custom_perms[item["name"]], "CustomPermission"))
        for eid, etype in grants:
            if eid:
                org.add("SetupEntityAccess", Id=new_id("0J0"), ParentId=parent, SetupEntityId=eid,
                        SetupEntityType=etype)
        for tag in ("tabSettings", "tabVisibilities"):
            for ts in _dicts_of(md, tag):
                vis = {"Visible": "DefaultOn", "Available": "DefaultOff"}.get(str(ts.get("visibility")),
                                                                              str(ts.get("visibility")))
                if vis in ("DefaultOn", "DefaultOff"):  # hidden tabs have no row
                    org.add("PermissionSetTabSetting", Id=new_id("01o"), ParentId=parent, Name=ts.get("tab"),
                            Visibility=vis)
        if c.type == "Profile":
            for la in _dicts_of(md, "layoutAssignments"):
                lid = ids.get(f"Layout:{la.get('layout')}")
                if lid:
                    obj = str(la.get("layout")).partition("-")[0]
                    org.add("ProfileLayout", Id=new_id("01G"), ProfileId=ids[c.key], LayoutId=lid,
                            RecordTypeId=ids.get(f"RecordType:{la.get('recordType')}") if la.get("recordType") else None,
                            TableEnumOrId=durable_of(obj) or obj)

    # -- report contents (Analytics API describe) and bundle sources -----------------------------
    for c in of("Report"):
        org.report_describes[ids[c.key]] = report_describe_from_metadata(c.attributes.get("metadata") or {},
                                                                          ids[c.key], c.full_name)
    for c in of("LightningComponentBundle"):
        for fname, text in sorted((c.attributes.get("files") or {}).items()):
            org.add("LightningComponentResource", Id=new_id("0Rd"), LightningComponentBundleId=ids[c.key],
                    FilePath=f"lwc/{c.full_name}/{fname}", Format=fname.rpartition(".")[2], Source=text)
    for c in of("AuraDefinitionBundle"):
        for fname, text in sorted((c.attributes.get("files") or {}).items()):
            suffix = fname[len(c.full_name):] if fname.startswith(c.full_name) else ""
            def_type = next((t for t, s_ in _AURA_DEF_TYPES.items() if s_ == suffix), None)
            if def_type:
                org.add("AuraDefinition", Id=new_id("0Ad"), AuraDefinitionBundleId=ids[c.key], DefType=def_type,
                        Format="JS" if suffix.endswith(".js") else "XML", Source=text)

    # -- audit trail ------------------------------------------------------------------------------
    rows: list[dict[str, Any]] = []
    if isinstance(audit_trail, (str, Path)):
        p = Path(audit_trail)
        rows = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else []
    elif audit_trail:
        rows = list(audit_trail)
    for i, r in enumerate(rows, start=1):
        org.add("SetupAuditTrail", Id=r.get("id") or new_id("0Ym"), Action=r.get("action"), Section=r.get("section"),
                Display=r.get("display"), CreatedDate=_sf_datetime(str(r.get("created_date"))), CreatedById=None,
                CreatedBy=_user(r["created_by"]) if r.get("created_by") else None,
                CreatedByContext=r.get("created_by_context"), CreatedByIssuer=r.get("created_by_issuer"),
                DelegateUser=r.get("delegate_user"), ResponsibleNamespacePrefix=r.get("responsible_namespace_prefix"))

    # -- MetadataComponentDependency, from the graph of the source --------------------------------
    org.obj("MetadataComponentDependency").records.extend(
        dependency_rows_from_graph(build_org_graph(inventory).edges, by_key, ids, flow_version_ids))
    org.component_ids = ids  # type: ignore[attr-defined]
    org.flow_version_ids = flow_version_ids  # type: ignore[attr-defined]
    return org


def _xml_true(v: Any) -> bool:
    return v is True or str(v).strip().lower() == "true"


def _as_arrays(md: Any, *keys: str) -> Any:
    """Tooling JSON types these (top-level) properties as arrays: a single element is a list."""
    if isinstance(md, dict):
        for k in keys:
            v = md.get(k)
            if v is None:
                md.pop(k, None) if k in md else None
            elif not isinstance(v, list):
                md[k] = [v]
    return md


def _typed_value(value: Any, data_type: str | None) -> Any:
    """A custom metadata record value (a string in the SFDX file) as the REST API types it."""
    if value is None:
        return None
    if data_type == "Checkbox":
        return _xml_true(value)
    if data_type in ("Number", "Currency", "Percent"):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: AuraDefinition ``DefType`` → the file name suffix in the bundle folder.
_AURA_DEF_TYPES = {"COMPONENT": ".cmp", "APPLICATION": ".app", "EVENT": ".evt", "INTERFACE": ".intf",
                   "CONTROLLER": "Controller.js", "HELPER": "Helper.js", "RENDERER": "Renderer.js", "STYLE": ".css",
                   "DOCUMENTATION": ".auradoc", "DESIGN": ".design", "SVG": ".svg", "TOKENS": ".tokens"}


def report_describe_from_metadata(md: dict[str, Any], report_id: str, full_name: str) -> dict[str, Any]:
    """The ``analytics/reports/<id>/describe`` answer for a report given in Metadata API form."""
    flt = md.get("filter") if isinstance(md.get("filter"), dict) else {}
    fmt = str(md.get("format") or "Tabular").upper()
    summaries = [f"s!{c['field']}" for c in _dicts_of(md, "columns") if c.get("aggregateTypes") == "Sum"]
    rm: dict[str, Any] = {
        "id": report_id, "name": md.get("name") or full_name.rpartition("/")[2],
        "developerName": full_name.rpartition("/")[2], "reportFormat": fmt,
        "reportType": {"type": md.get("reportType"), "label": str(md.get("reportType") or "")},
        "detailColumns": [c.get("field") for c in _dicts_of(md, "columns") if c.get("field")],
        "reportFilters": [{"column": f.get("column"), "operator": f.get("operator"), "value": f.get("value"),
                           "filterType": "fieldValue", "isRunPageEditable": _xml_true(f.get("isUnlocked"))}
                          for f in _dicts_of(flt, "criteriaItems")],
        "reportBooleanFilter": flt.get("booleanFilter"),
        "groupingsDown": [{"name": g.get("field"), "sortOrder": g.get("sortOrder"),
                           "dateGranularity": g.get("dateGranularity") or "None", "sortAggregate": None}
                          for g in _dicts_of(md, "groupingsDown")],
        "groupingsAcross": [{"name": g.get("field"), "sortOrder": g.get("sortOrder"),
                             "dateGranularity": g.get("dateGranularity") or "None", "sortAggregate": None}
                            for g in _dicts_of(md, "groupingsAcross")],
        "aggregates": summaries + ["RowCount"],
        "customSummaryFormula": {a.get("developerName"): {"formula": a.get("calculatedFormula"),
                                                          "label": a.get("masterLabel"), "formulaType": "number"}
                                 for a in _dicts_of(md, "aggregates") if a.get("developerName")},
        "crossFilters": [{"includesObject": str(cf.get("operation") or "with") == "with",
                          "primaryEntityField": cf.get("primaryTableColumn"), "relatedEntity": cf.get("relatedTable"),
                          "relatedEntityJoinField": cf.get("relatedTableJoinColumn"),
                          "criteriaItems": [{"column": i.get("column"), "operator": i.get("operator"),
                                             "value": i.get("value")} for i in _dicts_of(cf, "criteriaItems")]}
                         for cf in _dicts_of(md, "crossFilters") + _dicts_of(flt, "crossFilters")],
        "hasDetailRows": _xml_true(md.get("showDetails", "true")), "scope": md.get("scope") or "organization",
    }
    tf = md.get("timeFrameFilter")
    if isinstance(tf, dict) and tf.get("dateColumn"):
        rm["standardDateFilter"] = {"column": tf.get("dateColumn"), "durationValue": tf.get("interval"),
                                    "startDate": None, "endDate": None}
    return {"reportMetadata": rm, "reportExtendedMetadata": {"aggregateColumnInfo": {}, "detailColumnInfo": {}},
            "reportTypeMetadata": {"categories": [], "dataTypeFilterOperatorMap": {}}}


def _dicts_of(md: Any, key: str) -> list[dict[str, Any]]:
    v = md.get(key) if isinstance(md, dict) else None
    if isinstance(v, dict):
        return [v]
    return [x for x in v or [] if isinstance(x, dict)]


#: Component types the Dependency API reports as sources, and the edge kinds it knows (no
#: containment, lookups → target object, value sets, permission grants: REFERENCE.md §3 gaps).
DEPENDENCY_SOURCE_TYPES = frozenset({"ApexClass", "ApexTrigger", "Flow", "ValidationRule", "Layout", "FlexiPage",
                                     "LightningComponentBundle", "AuraDefinitionBundle", "CustomField"})
DEPENDENCY_TARGET_TYPES = frozenset({"ApexClass", "CustomField", "CustomObject", "LightningComponentBundle",
                                     "AuraDefinitionBundle", "Flow"})
DEPENDENCY_EDGE_KINDS = frozenset({"references", "queries", "dml", "calls", "extends", "implements", "imports",
                                   "trigger_on", "apex_action", "shows"})


def _dep_side(key: str, by_key: dict[str, Any], ids: dict[str, str]) -> tuple[str, str, str] | None:
    """(Id, Name, Type) of one side of a dependency row, in the Dependency API's naming."""
    comp = by_key.get(key)
    if comp is None:
        return None
    t, name = comp.type, comp.full_name
    if t == "CustomObject":
        if comp.attributes.get("object_kind", "standard") == "standard":
            return name, name, "StandardEntity"
        return ids[key], re.sub(r"__(c|mdt|e|x|b)$", "", name), "CustomObject"
    if t == "CustomField":
        fld = name.partition(".")[2]
        if not fld.endswith("__c") or key not in ids:
            return None  # standard fields: a known gap of the API
        return ids[key], fld.removesuffix("__c"), "CustomField"
    if key not in ids:
        return None
    if t == "ValidationRule":
        name = name.partition(".")[2]
    elif t == "Layout":
        name = name.partition("-")[2]
    return ids[key], name, t


def dependency_rows_from_graph(edges: Any, by_key: dict[str, Any], ids: dict[str, str],
                               flow_version_ids: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``MetadataComponentDependency`` rows for the edges the API would report: both ends
    defined components of supported types, static references only. A flow's row is repeated
    for each of its versions (the API lists inactive versions too)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for e in edges:
        if e.kind not in DEPENDENCY_EDGE_KINDS or getattr(e, "dynamic", False):
            continue
        st, tt = e.source.partition(":")[0], e.target.partition(":")[0]
        if st not in DEPENDENCY_SOURCE_TYPES or tt not in DEPENDENCY_TARGET_TYPES:
            continue
        if (e.source, e.target) in seen:
            continue
        src, tgt = _dep_side(e.source, by_key, ids), _dep_side(e.target, by_key, ids)
        if src is None or tgt is None:
            continue
        seen.add((e.source, e.target))
        src_ids = flow_version_ids.get(e.source) or [src[0]]
        tgt_id = (flow_version_ids.get(e.target) or [tgt[0]])[-1]
        for sid in src_ids:
            rows.append(_dep(sid, src[1], src[2], tgt_id, tgt[1], tgt[2]))
    return rows


def demo_org(project: str | Path, org: str = "acme-prod", **kwargs: Any) -> tuple[FakeOrg, Any]:
    """(FakeOrg, the SFDX OrgInventory) for a bundled demo project such as
    ``aicolleague_pipelines/demo/orgs/acme-prod`` (with its recorded audit trail)."""
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

    root = Path(project)
    inventory = read_sfdx_project(root, org)
    org_json = root / ".aicolleague" / "org.json"
    org_id = None
    if org_json.is_file():
        org_id = json.loads(org_json.read_text(encoding="utf-8")).get("org_id")
    kwargs.setdefault("audit_trail", root / ".aicolleague" / "audit_trail.json")
    return org_from_inventory(inventory, org_id=org_id, **kwargs), inventory
