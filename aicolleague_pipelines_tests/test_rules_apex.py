"""Apex rules (aicolleague_pipelines.lib.agents.rules_apex): one positive and one negative case
per rule on hand-written Apex (with comment/string traps), suppression, and the demo org."""

from __future__ import annotations

import re
from datetime import date

import pytest

from aicolleague_pipelines.lib.agents.model import SEVERITIES, Finding, RuleContext
from aicolleague_pipelines.lib.agents.rules_apex import (
    APEX_RULES,
    PMD_EQUIVALENTS,
    analyse,
    api_release,
    run_apex_rules,
)
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.model import Component, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

TODAY = "2026-11-20"
RULES = {r.id: r for r in APEX_RULES}


# --- builders -------------------------------------------------------------------------------------
def cls(name: str, body: str, api: str = "62.0") -> Component:
    is_test = bool(re.match(r"\s*@istest\b", body, re.IGNORECASE))
    return Component(
        type="ApexClass",
        full_name=name,
        api_version=api,
        source=f"force-app/main/default/classes/{name}.cls",
        attributes={"body": body, "is_test": is_test},
    )


def trg(name: str, obj: str, body: str, api: str = "62.0") -> Component:
    return Component(
        type="ApexTrigger",
        full_name=name,
        api_version=api,
        source=f"force-app/main/default/triggers/{name}.trigger",
        attributes={"body": body, "object": obj, "events": ["before insert"], "is_test": False},
    )


def obj(name: str) -> Component:
    return Component(type="CustomObject", full_name=name, attributes={"custom": name.endswith("__c")})


def ctx_of(*comps: Component, today: str = TODAY, api: str | None = "62.0") -> RuleContext:
    inv = OrgInventory(
        org="t",
        source_kind="sfdx",
        api_version=api,
        extracted_at="2026-11-20T00:00:00+00:00",
        components=[obj("Account"), obj("Opportunity"), obj("Invoice__c"), *comps],
    )
    return RuleContext(org="t", inventory=inv, graph=build_org_graph(inv), today=today, api_version=api)


def run(rule_id: str, *comps: Component, **kw: str) -> list[Finding]:
    return list(RULES[rule_id].check(ctx_of(*comps, **kw)))


def service(body: str, name: str = "Svc", sharing: str = "with sharing ") -> Component:
    return cls(name, f"public {sharing}class {name} {{\n{body}\n}}\n")


# --- registry -------------------------------------------------------------------------------------
def test_registry_is_complete_and_well_formed() -> None:
    assert len(APEX_RULES) >= 22
    assert len(RULES) == len(APEX_RULES)
    for r in APEX_RULES:
        assert r.id.startswith("APEX-") and r.severity in SEVERITIES
        assert r.title and r.description and r.source and r.category
        assert r.id in PMD_EQUIVALENTS


# --- loops ----------------------------------------------------------------------------------------
def test_soql_in_loop_for_while_do_and_nested_soql_for() -> None:
    body = """
    public void a(List<Opportunity> opps) {
        for (Opportunity o : opps) {
            Account acc = [SELECT Id FROM Account WHERE Id = :o.AccountId];
        }
    }
    public void b() {
        Integer i = 0;
        while (i < 3) { List<Account> l = Database.query('SELECT Id FROM Account'); i++; }
        do { Integer n = [SELECT COUNT() FROM Account]; i--; } while (i > 0);
    }
    public void c(Set<Id> ids) {
        for (Id x : ids) {
            for (Account a : [SELECT Id FROM Account WHERE Id = :x]) { }
        }
        for (Integer k = 0; k < 2; k++) if (k > 0) insert new Account(Name = 'x');
    }
    """
    found = run("APEX-SOQL-IN-LOOP", service(body))
    assert sorted(f.discriminator for f in found) == ["a#1", "b#1", "b#2", "c#1"]
    f = next(f for f in found if f.discriminator == "a#1")
    assert f.evidence == "force-app/main/default/classes/Svc.cls:5"
    assert f.severity == "high" and f.category == "performance" and f.component == "ApexClass:Svc"


def test_soql_in_loop_negative_soql_for_and_traps() -> None:
    body = """
    public void a(Set<Id> ids) {
        // for (Account a : accs) { [SELECT Id FROM Account]; }
        String s = 'for (x : y) { Database.query(q); }';
        List<Account> accs = [SELECT Id FROM Account WHERE Id IN :ids];
        for (Account a : [SELECT Id, Name FROM Account WHERE Id IN :ids]) {
            a.Name = 'for';
        }
        /* while (true) { [SELECT Id FROM Account] } */
    }
    """
    assert run("APEX-SOQL-IN-LOOP", service(body)) == []


def test_dml_in_loop_statements_and_database_methods() -> None:
    body = """
    public void a(List<Account> accs) {
        for (Account a : accs) {
            update a;
            Database.insert(new Contact(LastName = 'x'), false);
        }
        for (Account a : accs) EventBus.publish(new Ev__e());
    }
    """
    found = run("APEX-DML-IN-LOOP", service(body))
    assert [f.discriminator for f in found] == ["a#1", "a#2", "a#3"]


def test_dml_in_loop_negative() -> None:
    body = """
    public void a(List<Account> accs) {
        List<Account> toUpdate = new List<Account>();
        for (Account a : accs) {
            // update a;
            String msg = 'insert a;';
            toUpdate.add(a);
        }
        update toUpdate;
        Database.update(toUpdate, false);
    }
    """
    assert run("APEX-DML-IN-LOOP", service(body)) == []


def test_loop_rules_skip_test_classes() -> None:
    test = cls(
        "SvcTest",
        "@IsTest private class SvcTest { @IsTest static void t() {"
        " for (Integer i = 0; i < 3; i++) { insert new Account(Name = 'a'); }"
        " Assert.isTrue(true); } }",
    )
    assert run("APEX-DML-IN-LOOP", test) == []


def test_callout_in_loop() -> None:
    body = """
    public void a(List<String> bodies) {
        Http h = new Http();
        for (String b : bodies) {
            HttpRequest req = new HttpRequest();
            HttpResponse r = h.send(req);
        }
        for (String b : bodies) { new Http().send(new HttpRequest()); }
    }
    """
    assert len(run("APEX-CALLOUT-IN-LOOP", service(body))) == 2


def test_callout_in_loop_negative() -> None:
    body = """
    public void a(List<Messaging.SingleEmailMessage> mails, HttpRequest req) {
        for (Messaging.SingleEmailMessage m : mails) { m.setSubject('Http.send(req)'); }
        // for (String s : l) { new Http().send(req); }
        HttpResponse r = new Http().send(req);
        for (Object o : mails) { Messenger.send(o); }
    }
    """
    assert run("APEX-CALLOUT-IN-LOOP", service(body)) == []


def test_async_in_loop_including_future_methods_of_the_org() -> None:
    worker = service(
        "@future(callout=true) public static void push(Id recordId) { }", name="Worker"
    )
    body = """
    public void a(List<Id> ids) {
        for (Id x : ids) {
            System.enqueueJob(new Job(x));
            Worker.push(x);
        }
        for (Id x : ids) { Database.executeBatch(new Batch(x)); }
    }
    """
    found = run("APEX-ASYNC-IN-LOOP", service(body), worker)
    assert [f.discriminator for f in found] == ["a#1", "a#2", "a#3"]


def test_async_in_loop_negative() -> None:
    worker = service("public static void push(Id recordId) { }", name="Worker")
    body = """
    public void a(List<Id> ids) {
        for (Id x : ids) { Worker.push(x); String s = 'System.enqueueJob(j)'; }
        System.enqueueJob(new Job(ids));
    }
    """
    assert run("APEX-ASYNC-IN-LOOP", service(body), worker) == []


def test_describe_in_loop() -> None:
    body = """
    public void a(List<String> names) {
        for (String n : names) {
            Schema.SObjectType t = Schema.getGlobalDescribe().get(n);
        }
    }
    """
    assert len(run("APEX-DESCRIBE-IN-LOOP", service(body))) == 1


def test_describe_in_loop_negative() -> None:
    body = """
    public void a(List<String> names) {
        Map<String, Schema.SObjectType> gd = Schema.getGlobalDescribe();
        for (String n : names) { Schema.SObjectType t = gd.get(n); /* Schema.getGlobalDescribe() */ }
    }
    """
    assert run("APEX-DESCRIBE-IN-LOOP", service(body)) == []


def test_email_in_loop_and_negative() -> None:
    pos = "public void a(List<Messaging.SingleEmailMessage> ms) { for (Messaging.SingleEmailMessage m : ms) { Messaging.sendEmail(new List<Messaging.SingleEmailMessage>{ m }); } }"
    neg = "public void a(List<Messaging.SingleEmailMessage> ms) { for (Messaging.SingleEmailMessage m : ms) { m.setSubject('Messaging.sendEmail'); } Messaging.sendEmail(ms); }"
    assert len(run("APEX-EMAIL-IN-LOOP", service(pos))) == 1
    assert run("APEX-EMAIL-IN-LOOP", service(neg)) == []


# --- literals -------------------------------------------------------------------------------------
def test_hardcoded_ids_15_and_18_chars_in_literals_and_soql() -> None:
    body = """
    private static final Id OWNER = '0055e000004XyZaAAK';
    public void a() {
        Account acc = [SELECT Id FROM Account WHERE Id = '0015e00000AbCdE'];
    }
    """
    found = run("APEX-HARDCODED-ID", service(body))
    assert sorted(f.discriminator for f in found) == ["0015e00000AbCdE", "0055e000004XyZaAAK"]
    assert {f.evidence.rsplit(":", 1)[1] for f in found} == {"3", "5"}  # header line + blank


def test_hardcoded_ids_negative() -> None:
    body = """
    // owner was 0055e000004XyZaAAK before the migration
    /* '0015e00000AbCdE' */
    public void a() {
        String word = 'Internationaliz';   // 15 letters, no digits
        String num = '123456789012345';    // digits only
        String tax = '12-3456789';
        Id owner = UserInfo.getUserId();
    }
    """
    assert run("APEX-HARDCODED-ID", service(body)) == []


def test_hardcoded_url() -> None:
    body = "private static final String EP = 'https://erp.example.com/api/v2';\npublic String u() { return 'http://legacy.example.com'; }"
    found = run("APEX-HARDCODED-URL", service(body))
    assert sorted(f.discriminator for f in found) == [
        "http://legacy.example.com",
        "https://erp.example.com/api/v2",
    ]


def test_hardcoded_url_negative_named_credential_namespace_comment_and_tests() -> None:
    body = """
    // see https://erp.example.com/docs
    private static final String EP = 'callout:ERP/api/v2';
    private static final String NS = 'http://www.w3.org/2001/XMLSchema-instance';
    private static final String SOAP = 'http://soap.sforce.com/2006/04/metadata';
    """
    test = cls(
        "MockTest",
        "@IsTest private class MockTest { static final String EP = 'https://mock.example.com'; }",
    )
    assert run("APEX-HARDCODED-URL", service(body), test) == []


def test_hardcoded_profile_and_user_names_in_soql() -> None:
    body = """
    public void a() {
        List<User> admins = [SELECT Id FROM User WHERE Profile.Name = 'System Administrator'];
        Profile p = [SELECT Id FROM Profile WHERE Name = 'Acme Support Agent' LIMIT 1];
        List<User> u = Database.query('SELECT Id FROM User WHERE Username = \\'int@acme.com\\'');
    }
    """
    found = run("APEX-HARDCODED-NAME-IN-SOQL", service(body))
    assert sorted(f.discriminator for f in found) == [
        "Acme Support Agent",
        "System Administrator",
        "int@acme.com",
    ]


def test_hardcoded_names_negative() -> None:
    body = """
    public void a(Id profileId) {
        // [SELECT Id FROM User WHERE Profile.Name = 'System Administrator']
        List<Account> accs = [SELECT Id FROM Account WHERE Name = 'Acme'];
        List<User> us = [SELECT Id FROM User WHERE ProfileId = :profileId];
        String label = 'Profile.Name = \\'x\\'';
    }
    """
    assert run("APEX-HARDCODED-NAME-IN-SOQL", service(body)) == []


# --- SOQL injection -------------------------------------------------------------------------------
def test_soql_injection_direct_and_through_variables() -> None:
    body = """
    public static List<Account> a(String industry, String tier) {
        String soql = 'SELECT Id FROM Account WHERE Industry = \\'' + industry + '\\'';
        soql += ' AND Tier__c = \\'' + tier + '\\'';
        return Database.query(soql);
    }
    public static Integer b(String name) {
        return Database.countQuery('SELECT COUNT() FROM Account WHERE Name = \\'' + name + '\\'');
    }
    @AuraEnabled
    public static List<Account> c(Map<String, Object> payload) {
        String ref = (String) payload.get('ref');
        return Database.query('SELECT Id FROM Account WHERE Ref__c = \\'' + ref + '\\'');
    }
    """
    found = {f.discriminator: f for f in run("APEX-SOQL-INJECTION", service(body))}
    assert set(found) == {"a#1", "b#1", "c#1"}
    assert "industry" in found["a#1"].message and "tier" in found["a#1"].message
    assert found["a#1"].severity == "high"
    assert found["c#1"].severity == "critical"  # @AuraEnabled entry point
    assert found["a#1"].category == "security"


def test_soql_injection_negative_escaped_binds_safe_types_constants() -> None:
    body = """
    private static final String FIELDS = 'Id, Name';
    public static List<Account> a(String industry, Integer lim, Id ownerId, String q) {
        String safe = 'SELECT ' + FIELDS + ' FROM Account WHERE Industry = \\''
            + String.escapeSingleQuotes(industry) + '\\' LIMIT ' + lim;
        List<Account> r = Database.query(safe);
        r.addAll((List<Account>) Database.query('SELECT Id FROM Account WHERE OwnerId = \\'' + ownerId + '\\''));
        r.addAll((List<Account>) Database.query('SELECT Id FROM Account WHERE Industry = :industry'));
        r.addAll((List<Account>) Database.query(q));  // no concatenation here: not flagged
        // Database.query('SELECT Id FROM Account WHERE Name = ' + industry);
        String s = 'Database.query(\\'x\\' + industry)';
        return r;
    }
    """
    assert run("APEX-SOQL-INJECTION", service(body)) == []


# --- sharing --------------------------------------------------------------------------------------
def test_no_sharing_on_class_with_data_access() -> None:
    c = cls("Helper", "public class Helper { public void a() { update [SELECT Id FROM Account]; } }")
    found = run("APEX-NO-SHARING", c)
    assert [f.component for f in found] == ["ApexClass:Helper"]
    assert found[0].evidence.endswith("Helper.cls:1")


def test_no_sharing_negative() -> None:
    no_data = cls(
        "Utils",
        "public class Utils {\n  // [SELECT Id FROM Account]\n  public static String f() { return 'insert x;'; }\n}",
    )
    with_kw = cls("Sel", "public inherited sharing class Sel { public List<Account> a() { return [SELECT Id FROM Account]; } }")
    iface = cls("IThing", "public interface IThing { void run(); }")
    assert run("APEX-NO-SHARING", no_data, with_kw, iface) == []


def test_without_sharing_and_negative() -> None:
    pos = cls("Priv", "public without sharing class Priv { public void a() { } }")
    neg = cls("Pub", "/* without sharing */ public with sharing class Pub { String s = 'without sharing'; }")
    found = run("APEX-WITHOUT-SHARING", pos, neg)
    assert [f.component for f in found] == ["ApexClass:Priv"]
    assert found[0].severity == "low"


# --- exceptions -----------------------------------------------------------------------------------
def test_empty_catch() -> None:
    body = """
    public void a() {
        try { insert new Account(); } catch (DmlException e) { }
        try { insert new Account(); } catch (Exception e) {
            // nothing to do
        }
    }
    """
    found = run("APEX-EMPTY-CATCH", service(body))
    assert [f.discriminator for f in found] == ["a#1", "a#2"]


def test_empty_catch_negative() -> None:
    body = """
    public void a() {
        try { insert new Account(); } catch (DmlException e) { throw new AuraHandledException(e.getMessage()); }
        try { Integer.valueOf('x'); } catch (TypeException ignored) { }
        String s = 'catch (Exception e) { }';
    }
    """
    assert run("APEX-EMPTY-CATCH", service(body)) == []


def test_catch_generic_exception_debug_only() -> None:
    body = """
    public void a() {
        try { insert new Account(); } catch (Exception e) { System.debug(e.getMessage()); System.debug(LoggingLevel.ERROR, e); }
    }
    """
    assert len(run("APEX-CATCH-DEBUG-ONLY", service(body))) == 1


def test_catch_debug_only_negative() -> None:
    body = """
    public String a() {
        try { insert new Account(); } catch (DmlException e) { System.debug(e); }
        try { insert new Account(); } catch (Exception e) { System.debug(e); throw e; }
        try { insert new Account(); } catch (Exception e) { Logger.error(e); /* System.debug(e); */ }
        return 'catch (Exception e) { System.debug(e); }';
    }
    """
    assert run("APEX-CATCH-DEBUG-ONLY", service(body)) == []


# --- tests ----------------------------------------------------------------------------------------
def test_test_without_asserts_ignores_todo_comment() -> None:
    c = cls(
        "FooTest",
        """@IsTest
private class FooTest {
    @TestSetup static void setup() { insert new Account(Name = 'a'); }
    @IsTest static void noAsserts() {
        insert new Account(Name = 'System.assert(true)');
        // TODO: add assertions; System.assertEquals(1, 1);
    }
    static testMethod void legacyNoAsserts() { Integer i = 1; }
    @IsTest static void ok() { Assert.areEqual(1, 1); }
}
""",
    )
    found = run("APEX-TEST-NO-ASSERT", c)
    assert sorted(f.discriminator for f in found) == ["legacyNoAsserts", "noAsserts"]


def test_test_asserts_negative_system_assert_and_helpers() -> None:
    c = cls(
        "BarTest",
        """@IsTest
private class BarTest {
    @IsTest static void a() { System.assertEquals(1, 1, 'x'); }
    @IsTest static void b() { System.assert(true); }
    @IsTest static void c() { Assert.isTrue(true); }
    @IsTest static void d() { verify(2); }
    private static void verify(Integer n) { Assert.areEqual(2, n); }
}
""",
    )
    assert run("APEX-TEST-NO-ASSERT", c) == []


def test_seealldata_class_and_method_and_negative() -> None:
    pos = cls(
        "OldTest",
        "@IsTest(SeeAllData=true)\nprivate class OldTest {\n @IsTest(seeAllData = true) static void m() { Assert.isTrue(true); }\n}",
    )
    neg = cls(
        "NewTest",
        "@IsTest(SeeAllData=false)\nprivate class NewTest {\n // @IsTest(SeeAllData=true)\n @IsTest static void m() { Assert.isTrue(true); }\n}",
    )
    found = run("APEX-TEST-SEEALLDATA", pos, neg)
    assert sorted((f.component, f.discriminator) for f in found) == [
        ("ApexClass:OldTest", "class"),
        ("ApexClass:OldTest", "m"),
    ]


def test_no_test_coverage_proxy_through_calls_and_trigger_dml() -> None:
    svc = service("public static void go() { insert new Invoice__c(); }", name="InvSvc")
    handler = service("public void run() { }", name="InvHandler")
    trig = trg("InvTrigger", "Invoice__c", "trigger InvTrigger on Invoice__c (before insert) { new InvHandler().run(); }")
    lonely = service("public static void x() { }", name="Lonely")
    lonely_trg = trg("AccTrigger", "Account", "trigger AccTrigger on Account (before insert) { }")
    test = cls("InvSvcTest", "@IsTest private class InvSvcTest { @IsTest static void t() { InvSvc.go(); Assert.isTrue(true); } }")
    found = run("APEX-NO-TEST-COVERAGE", svc, handler, trig, lonely, lonely_trg, test)
    assert sorted(f.component for f in found) == ["ApexClass:Lonely", "ApexTrigger:AccTrigger"]


def test_no_test_coverage_negative_interface_and_tested_class() -> None:
    iface = cls("IThing", "public interface IThing { void run(); }")
    svc = service("public static void go() { }", name="Svc")
    test = cls("SvcTest", "@IsTest private class SvcTest { @IsTest static void t() { Svc.go(); Assert.isTrue(true); } }")
    assert run("APEX-NO-TEST-COVERAGE", iface, svc, test) == []


# --- triggers -------------------------------------------------------------------------------------
def test_trigger_logic() -> None:
    t1 = trg(
        "AccTrigger",
        "Account",
        "trigger AccTrigger on Account (before insert) {\n"
        "    List<User> u = [SELECT Id FROM User LIMIT 1];\n"
        "}\n",
    )
    long_body = "\n".join(f"    Integer v{i} = {i};" for i in range(8))
    t2 = trg("OppTrigger", "Opportunity", f"trigger OppTrigger on Opportunity (before insert) {{\n{long_body}\n}}")
    found = {f.component: f for f in run("APEX-TRIGGER-LOGIC", t1, t2)}
    assert set(found) == {"ApexTrigger:AccTrigger", "ApexTrigger:OppTrigger"}
    assert found["ApexTrigger:AccTrigger"].evidence.endswith("AccTrigger.trigger:2")


def test_trigger_logic_negative_delegation() -> None:
    t = trg(
        "AccTrigger",
        "Account",
        "trigger AccTrigger on Account (before insert, after update) {\n"
        "    // [SELECT Id FROM Account]; insert x; update y;\n"
        "    new AccountTriggerHandler().run(); // 'insert'\n"
        "}\n",
    )
    assert run("APEX-TRIGGER-LOGIC", t) == []


def test_multiple_triggers_on_one_object() -> None:
    a = trg("OppA", "Opportunity", "trigger OppA on Opportunity (before insert) { }")
    b = trg("OppB", "Opportunity", "trigger OppB on Opportunity (after update) { }")
    c = trg("AccT", "Account", "trigger AccT on Account (before insert) { }")
    found = run("APEX-MULTIPLE-TRIGGERS", a, b, c)
    assert [f.component for f in found] == ["CustomObject:Opportunity"]
    assert found[0].extra["triggers"] == ["ApexTrigger:OppA", "ApexTrigger:OppB"]


def test_multiple_triggers_negative_inactive() -> None:
    a = trg("OppA", "Opportunity", "trigger OppA on Opportunity (before insert) { }")
    b = trg("OppB", "Opportunity", "trigger OppB on Opportunity (after update) { }")
    b.status, b.active = "Inactive", False
    assert run("APEX-MULTIPLE-TRIGGERS", a, b) == []


# --- API versions ---------------------------------------------------------------------------------
def test_api_release_mapping() -> None:
    assert api_release(62.0) == (date(2024, 9, 1), "Winter '25")
    assert api_release(61.0) == (date(2024, 6, 1), "Summer '24")
    assert api_release(60.0) == (date(2024, 2, 1), "Spring '24")
    assert api_release(52.0) == (date(2021, 6, 1), "Summer '21")
    assert api_release(40.0) == (date(2017, 6, 1), "Summer '17")
    assert api_release(65.0) == (date(2025, 9, 1), "Winter '26")


def test_old_api_version() -> None:
    found = run(
        "APEX-OLD-API-VERSION",
        cls("Old", "public with sharing class Old { }", api="52.0"),
        cls("Ancient", "public with sharing class Ancient { }", api="29.0"),
    )
    by = {f.component: f for f in found}
    assert by["ApexClass:Old"].discriminator == "52.0" and by["ApexClass:Old"].severity == "medium"
    assert by["ApexClass:Ancient"].severity == "high"  # retired version


def test_old_api_version_negative_and_fallback_to_org_version() -> None:
    recent = cls("Recent", "public with sharing class Recent { }", api="61.0")
    assert run("APEX-OLD-API-VERSION", recent) == []
    # without a usable date the age is measured against the org's API version (9 versions)
    assert run("APEX-OLD-API-VERSION", cls("A", "public class A { }", api="54.0"), today="", api="62.0") == []
    assert len(run("APEX-OLD-API-VERSION", cls("A", "public class A { }", api="53.0"), today="", api="62.0")) == 1


# --- logging, size, nesting -----------------------------------------------------------------------
def test_debug_statements() -> None:
    body = "public void a() { System.debug('1'); System.debug('2'); System.debug(LoggingLevel.INFO, '3'); }"
    found = run("APEX-DEBUG-STATEMENTS", service(body))
    assert len(found) == 1 and found[0].extra["count"] == 3


def test_debug_statements_negative() -> None:
    body = "public void a() { System.debug('1'); // System.debug('2');\n String s = 'System.debug(3)'; System.debug('x'); }"
    test = cls("DbgTest", "@IsTest private class DbgTest { @IsTest static void t() { System.debug(1); System.debug(2); System.debug(3); Assert.isTrue(true); } }")
    assert run("APEX-DEBUG-STATEMENTS", service(body), test) == []


def test_long_method_and_negative_comments_do_not_count() -> None:
    long_body = "public void big() {\n" + "\n".join(f"    Integer v{i} = {i};" for i in range(90)) + "\n}"
    comments = "public void small() {\n" + "\n".join(f"    // line {i}" for i in range(200)) + "\n    Integer x = 1;\n}"
    found = run("APEX-LONG-METHOD", service(long_body + "\n" + comments))
    assert [f.discriminator for f in found] == ["big"]


def test_long_class_and_negative() -> None:
    methods = "\n".join(f"public Integer m{i}() {{\n return {i};\n}}" for i in range(400))
    assert len(run("APEX-LONG-CLASS", service(methods, name="Big"))) == 1
    comments = "\n".join(f"// {i}" for i in range(2000))
    assert run("APEX-LONG-CLASS", service(comments + "\npublic void a() { }", name="Small")) == []


def test_deep_nesting_and_negative() -> None:
    deep = """
    public void a(List<Account> accs) {
        if (accs != null) {
            for (Account x : accs) {
                if (x.Name != null) {
                    try {
                        while (true) {
                            if (x.Name == 'a') { break; }
                        }
                    } catch (Exception e) { throw e; }
                }
            }
        }
    }
    """
    shallow = """
    public void b(List<Account> accs) {
        if (accs == null) { return; }
        for (Account x : accs) {
            if (x.Name == null) { continue; }
            // if (a) { if (b) { if (c) { if (d) { if (e) { } } } } }
        }
        if (accs.isEmpty()) { } else if (accs.size() > 1) { } else if (accs.size() > 2) { } else { }
    }
    """
    found = run("APEX-DEEP-NESTING", service(deep))
    assert [f.discriminator for f in found] == ["a"] and found[0].extra["depth"] == 6
    assert run("APEX-DEEP-NESTING", service(shallow)) == []


# --- unused classes -------------------------------------------------------------------------------
def test_unused_class_only_used_by_tests() -> None:
    dead = service("public static void x() { }", name="Dead")
    test = cls("DeadTest", "@IsTest private class DeadTest { @IsTest static void t() { Dead.x(); Assert.isTrue(true); } }")
    found = run("APEX-UNUSED-CLASS", dead, test)
    assert [f.component for f in found] == ["ApexClass:Dead"]
    assert found[0].extra["test_references"] == ["ApexClass:DeadTest"]


def test_unused_class_negative_used_or_entry_point() -> None:
    used = service("public static void x() { }", name="Used")
    caller = trg("AccT", "Account", "trigger AccT on Account (before insert) { Used.x(); }")
    rest = cls("Api", "@RestResource(urlMapping='/x/*')\nglobal with sharing class Api { @HttpGet global static String g() { return 'Dead.x()'; } }")
    aura = service("@AuraEnabled public static String g() { return ''; }", name="Ctrl")
    sched = cls("Job", "public with sharing class Job implements Schedulable { public void execute(SchedulableContext sc) { } }")
    mention = service("// Orphan.x();\n public String s = 'Orphan';", name="Mentions")
    orphan_by_comment_only = service("public static void x() { }", name="Orphan")
    found = run("APEX-UNUSED-CLASS", used, caller, rest, aura, sched, mention, orphan_by_comment_only)
    # Mentions itself and Orphan (only named in a comment and a string) are unused
    assert sorted(f.component for f in found) == ["ApexClass:Mentions", "ApexClass:Orphan"]


# --- suppression ----------------------------------------------------------------------------------
def test_suppress_warnings_on_method_with_pmd_name_and_rule_id() -> None:
    body = """
    @SuppressWarnings('PMD.AvoidSoqlInLoops, PMD.ApexCRUDViolation')
    public void a(List<Id> ids) {
        for (Id x : ids) { Account acc = [SELECT Id FROM Account WHERE Id = :x]; }
    }
    @SuppressWarnings('APEX-SOQL-IN-LOOP')
    public void b(List<Id> ids) {
        for (Id x : ids) { Account acc = [SELECT Id FROM Account WHERE Id = :x]; }
    }
    public void c(List<Id> ids) {
        for (Id x : ids) { Account acc = [SELECT Id FROM Account WHERE Id = :x]; update acc; }
    }
    """
    found = run("APEX-SOQL-IN-LOOP", service(body))
    assert [f.discriminator for f in found] == ["c#1"]
    # suppressing one rule does not silence another
    assert len(run("APEX-DML-IN-LOOP", service(body))) == 1


def test_suppress_warnings_on_class() -> None:
    c = cls(
        "Legacy",
        "@SuppressWarnings('PMD')\npublic class Legacy {\n"
        "  private static final Id X = '0015e00000AbCdE';\n"
        "  public void a(List<Id> ids) { for (Id i : ids) { update new Account(Id = i); } }\n}",
    )
    assert run("APEX-HARDCODED-ID", c) == []
    assert run("APEX-DML-IN-LOOP", c) == []
    assert run("APEX-NO-SHARING", c) == []
    # a suppression on another rule leaves it on
    other = cls("Legacy2", "@SuppressWarnings('PMD.EmptyCatchBlock')\npublic class Legacy2 { private static final Id X = '0015e00000AbCdE'; }")
    assert len(run("APEX-HARDCODED-ID", other)) == 1


# --- structure ------------------------------------------------------------------------------------
def test_analysis_structure() -> None:
    a = analyse(
        "@IsTest(SeeAllData=true) public with sharing class X extends Base implements I1, Database.Batchable<SObject> {\n"
        "  public String p { get { return 'x'; } set; }\n"
        "  static { Integer z = 1; }\n"
        "  public class Inner { public void q() { } }\n"
        "  public void m(String s, List<Id> ids) { for (Id i : ids) { } }\n"
        "}"
    )
    top = a.top
    assert top is not None and top.name == "X" and top.sharing == "with"
    assert top.supertypes == ("base", "i1", "database.batchable")
    assert {m.name for m in a.methods} >= {"p", "<static>", "q", "m"}
    m = next(m for m in a.methods if m.name == "m")
    assert m.params == {"s": "string", "ids": "collection"}
    assert [t.name for t in a.types] == ["X", "Inner"]


# --- the demo org ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def acme_ctx() -> RuleContext:
    inv = read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod")
    return RuleContext(
        org="acme-prod", inventory=inv, graph=build_org_graph(inv), today=TODAY, api_version="62.0"
    )


PLANTED = {
    ("APEX-SOQL-IN-LOOP", "ApexClass:OpportunityHelper", "createRenewals#1"),
    ("APEX-SOQL-IN-LOOP", "ApexClass:OpportunityHelper", "syncProgramBudgets#1"),
    ("APEX-DML-IN-LOOP", "ApexClass:OpportunityHelper", "createRenewals#1"),
    ("APEX-DML-IN-LOOP", "ApexClass:OpportunityHelper", "syncProgramBudgets#1"),
    ("APEX-HARDCODED-ID", "ApexClass:OpportunityHelper", "0055e000004XyZaAAK"),
    ("APEX-HARDCODED-ID", "ApexClass:OpportunityHelper", "0015e00000AbCdE"),
    ("APEX-NO-SHARING", "ApexClass:OpportunityHelper", ""),
    ("APEX-NO-SHARING", "ApexClass:ErpIntegrationService", ""),
    ("APEX-NO-SHARING", "ApexClass:LegacyReportExporter", ""),
    ("APEX-OLD-API-VERSION", "ApexClass:OpportunityHelper", "52.0"),
    ("APEX-OLD-API-VERSION", "ApexClass:LegacyReportExporter", "40.0"),
    ("APEX-OLD-API-VERSION", "ApexClass:ErpIntegrationService", "58.0"),
    ("APEX-SOQL-INJECTION", "ApexClass:AccountHealthCalculator", "findAtRisk#1"),
    ("APEX-HARDCODED-URL", "ApexClass:ErpIntegrationService",
     "https://erp.acme-internal.com/api/v2/invoices"),
    ("APEX-EMPTY-CATCH", "ApexClass:ErpIntegrationService", "execute#1"),
    ("APEX-CALLOUT-IN-LOOP", "ApexClass:ErpIntegrationService", "execute#1"),
    ("APEX-WITHOUT-SHARING", "ApexClass:ContactPreferenceSync", ""),
    ("APEX-UNUSED-CLASS", "ApexClass:LegacyReportExporter", ""),
    ("APEX-TEST-NO-ASSERT", "ApexClass:OpportunityHelperTest", "testCreateRenewals"),
    ("APEX-TEST-SEEALLDATA", "ApexClass:AccountHealthCalculatorTest", "class"),
    ("APEX-TRIGGER-LOGIC", "ApexTrigger:OpportunityTrigger", ""),
    ("APEX-MULTIPLE-TRIGGERS", "CustomObject:Opportunity", ""),
}

GOOD = [
    "ApexClass:InvoiceService",
    "ApexClass:InvoiceServiceTest",
    "ApexClass:ServiceDeliveryTriggerHandler",
    "ApexClass:BaseTriggerHandler",
    "ApexClass:DefaultTaxCalculator",
    "ApexClass:ITaxCalculator",
    "ApexTrigger:ServiceDeliveryTrigger",
]


def test_demo_acme_prod_planted_problems(acme_ctx: RuleContext) -> None:
    found = run_apex_rules(acme_ctx)
    got = {(f.rule_id, f.component, f.discriminator) for f in found}
    assert PLANTED <= got, PLANTED - got
    # the good examples stay clean (all rules; none of them is old, untested or unused)
    assert [f for f in found if f.component in GOOD] == []
    # triggers that only delegate are not "logic in trigger"
    logic = {f.component for f in found if f.rule_id == "APEX-TRIGGER-LOGIC"}
    assert logic == {"ApexTrigger:OpportunityTrigger"}
    unused = {f.component for f in found if f.rule_id == "APEX-UNUSED-CLASS"}
    assert unused == {"ApexClass:LegacyReportExporter"}
    injection = [f for f in found if f.rule_id == "APEX-SOQL-INJECTION"]
    assert len(injection) == 1 and "industry" in injection[0].message
    # every finding is well formed: evidence path:line, known severity, category
    for f in found:
        assert f.org == "acme-prod" and f.severity in SEVERITIES and f.category
        assert re.search(r"\.(cls|trigger):\d+$", f.evidence), f
        assert f.message and "\n" not in f.message and f.explanation


def test_demo_ids_are_stable_and_unique(acme_ctx: RuleContext) -> None:
    first = run_apex_rules(acme_ctx)
    second = run_apex_rules(acme_ctx)
    assert [f.id for f in first] == [f.id for f in second]
    assert len({f.id for f in first}) == len(first)


def test_demo_globex_prod_planted_problems() -> None:
    inv = read_sfdx_project(demo_root() / "orgs" / "globex-prod", "globex-prod")
    ctx = RuleContext(org="globex-prod", inventory=inv, graph=build_org_graph(inv), today=TODAY, api_version="61.0")
    got = {(f.rule_id, f.component) for f in run_apex_rules(ctx)}
    assert {
        ("APEX-SOQL-INJECTION", "ApexClass:BillingWebhook"),
        ("APEX-HARDCODED-URL", "ApexClass:BillingWebhook"),
        ("APEX-HARDCODED-ID", "ApexClass:BillingWebhook"),
        ("APEX-SOQL-IN-LOOP", "ApexClass:RenewalBatch"),
        ("APEX-SOQL-IN-LOOP", "ApexClass:InvoiceGenerator"),
        ("APEX-DML-IN-LOOP", "ApexClass:InvoiceGenerator"),
        ("APEX-NO-SHARING", "ApexClass:InvoiceGenerator"),
        ("APEX-UNUSED-CLASS", "ApexClass:GlobexUtils"),
        ("APEX-OLD-API-VERSION", "ApexClass:GlobexUtils"),
        ("APEX-TRIGGER-LOGIC", "ApexTrigger:InvoiceTrigger"),
        ("APEX-SOQL-IN-LOOP", "ApexTrigger:InvoiceTrigger"),
    } <= got
    assert not {c for _, c in got} & {"ApexTrigger:SubscriptionTrigger", "ApexClass:SubscriptionService"}
