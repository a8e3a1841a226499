"""Apex / SOQL reference extraction: hand-written snippets, positive and negative assertions."""

from __future__ import annotations

import pytest

from aicolleague_pipelines.lib.graph.model import (
    CALLS,
    DML,
    DYNAMIC,
    EXTENDS,
    IMPLEMENTS,
    QUERIES,
    READ,
    REFERENCES,
    TRIGGER_ON,
    WRITE,
)
from aicolleague_pipelines.lib.graph.parsers.apex import parse_apex, tokenize
from aicolleague_pipelines.lib.graph.parsers.soql import parse_soql
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component


def _field(name: str, **attrs) -> Component:
    return Component("CustomField", name, attributes=attrs)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(
        [
            Component("CustomObject", "Account"),
            Component("CustomObject", "Program__c"),
            Component("CustomObject", "ServiceDelivery__c"),
            Component("CustomObject", "Invoice__c"),
            _field("Account.Industry"),
            _field("Account.Region__c"),
            _field("Program__c.Account__c", reference_to=["Account"]),
            _field("Program__c.Status__c"),
            _field("ServiceDelivery__c.Program__c", reference_to=["Program__c"]),
            _field("ServiceDelivery__c.Hours__c"),
            _field("Invoice__c.Amount__c"),
            _field("Invoice__c.Only_Here__c"),
            Component("ApexClass", "InvoiceService"),
            Component("ApexClass", "Util"),
            Component("ApexClass", "BaseHandler"),
            Component("ApexClass", "ITaxCalculator"),
        ]
    )


@pytest.fixture(scope="module")
def child_schema() -> Schema:
    """Lookups carrying a Metadata API ``relationshipName`` (the child relationship name)."""
    return Schema(
        [
            Component("CustomObject", "Program__c"),
            Component("CustomObject", "ServiceDelivery__c"),
            _field("ServiceDelivery__c.Program__c", reference_to=["Program__c"], relationship_name="Deliveries"),
            _field("ServiceDelivery__c.Hours__c"),
        ]
    )


def _apex(body: str, schema: Schema, name: str = "Foo", type_: str = "ApexClass", **attrs):
    return parse_apex(Component(type_, name, attributes={"body": body, **attrs}), schema)


def _has(refs, target, kind=None, access=None, line=None, dynamic=None) -> bool:
    return any(
        r.target == target
        and (kind is None or r.kind == kind)
        and (access is None or r.access == access)
        and (line is None or r.line == line)
        and (dynamic is None or r.dynamic == dynamic)
        for r in refs
    )


def _targets(refs) -> set[str]:
    return {r.target for r in refs}


# --- tokenizer ----------------------------------------------------------------------------
def test_tokenizer_drops_comments_keeps_lines_and_unescapes_strings() -> None:
    kinds, texts, lines = tokenize("a // x\n/* y\n z */ b 'it\\'s' [SELECT Id\nFROM X] c")
    assert texts[0] == "a" and lines[0] == 1
    assert texts[1] == "b" and lines[1] == 3
    assert texts[2] == "it's"
    assert texts[3].startswith("[SELECT") and lines[3] == 3
    assert texts[4] == "c" and lines[4] == 4


def test_comments_and_strings_yield_nothing(schema: Schema) -> None:
    body = """public class Foo {
    // Account.Industry [SELECT Id FROM Invoice__c] new InvoiceService()
    /* insert acc; Account.Region__c
       [SELECT Amount__c FROM Invoice__c] Util.run(); */
    String s = 'Account.Industry [SELECT Id FROM Invoice__c] InvoiceService.run()';
    String t = '/* not a comment */ Program__c.Status__c';
}"""
    assert _apex(body, schema) == []


# --- SOQL -----------------------------------------------------------------------------------
def test_soql_nested_relationship_path(schema: Schema) -> None:
    refs = parse_soql(
        "SELECT Id, Program__r.Account__r.Industry FROM ServiceDelivery__c WHERE Hours__c > 2", schema
    )
    assert all(r.kind == QUERIES and r.access == READ and not r.dynamic for r in refs)
    assert _targets(refs) == {
        "CustomObject:ServiceDelivery__c",
        "CustomField:ServiceDelivery__c.Id",
        "CustomField:ServiceDelivery__c.Program__c",
        "CustomField:Program__c.Account__c",
        "CustomField:Account.Industry",
        "CustomField:ServiceDelivery__c.Hours__c",
    }


def test_soql_standard_child_subquery_and_clauses(schema: Schema) -> None:
    q = """SELECT Name, (SELECT LastName FROM Contacts WHERE Email != null ORDER BY LastName)
           FROM Account a
           WHERE a.Industry = 'Tech' AND CreatedDate = LAST_N_DAYS:30 AND Id IN :ids
           AND Region__c IN (SELECT Status__c FROM Program__c)
           WITH SECURITY_ENFORCED ORDER BY Name DESC NULLS LAST LIMIT :lim FOR UPDATE"""
    refs = parse_soql(q, schema, line_offset=10)
    t = _targets(refs)
    assert {"CustomObject:Account", "CustomField:Account.Name", "CustomObject:Contact"} <= t
    assert {"CustomField:Contact.LastName", "CustomField:Contact.Email"} <= t
    assert {"CustomField:Account.Industry", "CustomField:Account.CreatedDate", "CustomField:Account.Region__c"} <= t
    assert {"CustomObject:Program__c", "CustomField:Program__c.Status__c"} <= t  # semi-join
    assert _has(refs, "CustomField:Account.Industry", line=13)
    # binds, literals, keywords, the alias never become fields
    for bad in ("ids", "lim", "Tech", "LAST_N_DAYS", "SECURITY_ENFORCED", "a", "Contacts", "DESC"):
        assert not any(x.endswith("." + bad) for x in t), bad
    assert "CustomField:Account.Contacts" not in t


def test_soql_custom_child_relationship(child_schema: Schema) -> None:
    refs = parse_soql("SELECT Id, (SELECT Hours__c FROM Deliveries__r) FROM Program__c", child_schema)
    assert _has(refs, "CustomObject:ServiceDelivery__c")
    assert _has(refs, "CustomField:ServiceDelivery__c.Hours__c")
    # unknown custom child relationship: skipped, not guessed
    refs = parse_soql("SELECT Id, (SELECT Name FROM Unknown__r) FROM Program__c", child_schema)
    assert _targets(refs) == {"CustomObject:Program__c", "CustomField:Program__c.Id"}


def test_soql_aggregates_aliases_typeof(schema: Schema) -> None:
    refs = parse_soql(
        "SELECT COUNT(Id) cnt, SUM(Amount__c) total, CALENDAR_YEAR(CreatedDate) yr FROM Invoice__c "
        "GROUP BY CALENDAR_YEAR(CreatedDate) HAVING COUNT(Id) > 1",
        schema,
    )
    t = _targets(refs)
    assert {"CustomField:Invoice__c.Id", "CustomField:Invoice__c.Amount__c", "CustomField:Invoice__c.CreatedDate"} <= t
    assert not any(x.endswith((".cnt", ".total", ".yr", ".COUNT", ".SUM", ".CALENDAR_YEAR")) for x in t)
    refs = parse_soql(
        "SELECT Id, TYPEOF What WHEN Account THEN Industry ELSE Name END FROM Task", schema
    )
    t = _targets(refs)
    assert {"CustomObject:Task", "CustomField:Task.WhatId", "CustomObject:Account", "CustomField:Account.Industry"} <= t
    assert "CustomField:Task.Name" not in t and "CustomField:Task.What" not in t


def test_sosl(schema: Schema) -> None:
    refs = parse_soql(
        "FIND {Acme*} IN ALL FIELDS RETURNING Account(Name, Industry WHERE Region__c = 'EU' LIMIT 5), "
        "Invoice__c(Amount__c), Contact LIMIT 20",
        schema,
    )
    t = _targets(refs)
    assert {"CustomObject:Account", "CustomField:Account.Name", "CustomField:Account.Industry"} <= t
    assert {"CustomField:Account.Region__c", "CustomObject:Invoice__c", "CustomField:Invoice__c.Amount__c"} <= t
    assert "CustomObject:Contact" in t
    assert not any("Acme" in x for x in t)


def test_inline_soql_in_apex_lines(schema: Schema) -> None:
    body = "public class Foo {\n  void m() {\n    List<Account> a = [SELECT Name\n      FROM Account\n      WHERE Industry = 'x'];\n  }\n}"
    refs = _apex(body, schema)
    assert _has(refs, "CustomField:Account.Name", QUERIES, READ, line=3)
    assert _has(refs, "CustomObject:Account", QUERIES, READ, line=4)
    assert _has(refs, "CustomField:Account.Industry", QUERIES, READ, line=5)


# --- dynamic SOQL --------------------------------------------------------------------------
def test_dynamic_soql_concatenation_marked_dynamic(schema: Schema) -> None:
    body = """public class Foo {
    public List<Account> find(String industry) {
        String q = 'SELECT Id, Name FROM Account '
            + 'WHERE Industry = \\'' + industry + '\\'';
        q += ' AND Region__c != null';
        return Database.query(q);
    }
    public Integer n() { return Database.countQuery('SELECT COUNT() FROM Invoice__c WHERE Amount__c > 0'); }
    public void other() { String unrelated = 'SELECT Hours__c FROM ServiceDelivery__c'; }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "CustomObject:Account", QUERIES, READ, line=3, dynamic=True)
    assert _has(refs, "CustomField:Account.Industry", QUERIES, line=4, dynamic=True)
    assert _has(refs, "CustomField:Account.Region__c", QUERIES, line=5, dynamic=True)
    assert _has(refs, "CustomField:Invoice__c.Amount__c", QUERIES, dynamic=True)
    assert "CustomField:Account.industry" not in _targets(refs)  # the bind variable
    # a string that never reaches Database.query is only a string
    assert "CustomObject:ServiceDelivery__c" not in _targets(refs)


def test_dynamic_get_put_and_global_describe(schema: Schema) -> None:
    body = """public class Foo {
    void m(Account acc, SObject rec) {
        Object v = acc.get('Industry');
        acc.put('Region__c', 'EU');
        rec.put('Only_Here__c', 1);
        rec.get('Ambiguous__c');
        Schema.SObjectType t = Schema.getGlobalDescribe().get('Program__c');
        Type h = Type.forName('InvoiceService');
    }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "CustomField:Account.Industry", DYNAMIC, READ, line=3, dynamic=True)
    assert _has(refs, "CustomField:Account.Region__c", DYNAMIC, WRITE, line=4, dynamic=True)
    assert _has(refs, "CustomField:Invoice__c.Only_Here__c", DYNAMIC, WRITE, line=5)  # unique in org
    assert not any("Ambiguous__c" in r.target for r in refs)
    assert _has(refs, "CustomObject:Program__c", DYNAMIC, line=7, dynamic=True)
    assert _has(refs, "ApexClass:InvoiceService", DYNAMIC, line=8, dynamic=True)


# --- DML and field access ------------------------------------------------------------------
def test_dml_on_typed_variables(schema: Schema) -> None:
    body = """public class Foo {
    private List<Invoice__c> pending;
    public void run(List<Account> accs, Map<Id, Program__c> progs) {
        insert accs;
        update progs.values();
        upsert pending;
        for (ServiceDelivery__c sd : [SELECT Id FROM ServiceDelivery__c]) { delete sd; }
        Database.update(accs, false);
        Database.insert(new Invoice__c(Amount__c = 1));
        insert as user new Account(Name = 'x');
        update [SELECT Id FROM Program__c];
        undelete (Account) something;
        update unknownThing;
    }
}"""
    refs = [r for r in _apex(body, schema) if r.kind == DML]
    assert all(r.access == WRITE for r in refs)
    got = {(r.target, r.line) for r in refs}
    assert got == {
        ("CustomObject:Account", 4),
        ("CustomObject:Program__c", 5),
        ("CustomObject:Invoice__c", 6),
        ("CustomObject:ServiceDelivery__c", 7),
        ("CustomObject:Account", 8),
        ("CustomObject:Invoice__c", 9),
        ("CustomObject:Account", 10),
        ("CustomObject:Program__c", 11),
        ("CustomObject:Account", 12),
    }


def test_field_write_vs_read_and_new_with_fields(schema: Schema) -> None:
    body = """public class Foo {
    void m(List<Account> accs) {
        Account acc = accs[0];
        acc.Industry = 'Tech';
        if (acc.Region__c == 'EU') {}
        String s = accs[0].Name;
        Invoice__c inv = new Invoice__c(Amount__c = 10, Status__c = acc.Industry);
        ServiceDelivery__c sd;
        String st = sd.Program__r.Account__r.Industry;
        sd.Hours__c += 2;
        Integer len = acc.Name.length();
    }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "CustomField:Account.Industry", REFERENCES, WRITE, line=4)
    assert not _has(refs, "CustomField:Account.Industry", REFERENCES, READ, line=4)
    assert _has(refs, "CustomField:Account.Region__c", REFERENCES, READ, line=5)
    assert not _has(refs, "CustomField:Account.Region__c", access=WRITE)
    assert _has(refs, "CustomField:Account.Name", REFERENCES, READ, line=6)
    assert _has(refs, "CustomField:Invoice__c.Amount__c", REFERENCES, WRITE, line=7)
    assert _has(refs, "CustomField:Invoice__c.Status__c", REFERENCES, WRITE, line=7)
    assert _has(refs, "CustomField:Account.Industry", REFERENCES, READ, line=7)
    assert _has(refs, "CustomObject:Invoice__c", REFERENCES, line=7)
    for key in (
        "CustomField:ServiceDelivery__c.Program__c",
        "CustomField:Program__c.Account__c",
        "CustomField:Account.Industry",
    ):
        assert _has(refs, key, REFERENCES, READ, line=9)
    assert _has(refs, "CustomField:ServiceDelivery__c.Hours__c", REFERENCES, WRITE, line=10)
    assert _has(refs, "CustomField:Account.Name", REFERENCES, READ, line=11)
    assert not any(r.target.endswith((".length", ".Name.length")) for r in refs)


def test_child_relationship_access_is_not_a_field(child_schema: Schema) -> None:
    body = "public class Foo { void m(Program__c p, ServiceDelivery__c d) { Integer n = p.Deliveries__r.size(); Program__c x = d.Program__r; } }"
    refs = _apex(body, child_schema)
    assert not any("Deliveries__r" in r.target for r in refs)
    assert _has(refs, "CustomField:ServiceDelivery__c.Program__c", REFERENCES, READ)
    assert not any(r.target.endswith("Program__r") for r in refs)


# --- schema tokens --------------------------------------------------------------------------
def test_schema_tokens(schema: Schema) -> None:
    body = """public class Foo {
    Schema.SObjectField f1 = Account.Industry;
    SObjectField f2 = Schema.Account.Region__c;
    DescribeFieldResult d = Schema.SObjectType.Invoice__c.fields.Amount__c;
    SObjectType t = Program__c.SObjectType;
    Map<String, SObjectField> m = Schema.SObjectType.ServiceDelivery__c.fields.getMap();
    Boolean b = Acme_Settings__c.getInstance().Disable__c;
}"""
    refs = _apex(body, schema)
    assert _has(refs, "CustomField:Account.Industry", REFERENCES, line=2)
    assert _has(refs, "CustomField:Account.Region__c", REFERENCES, line=3)
    assert _has(refs, "CustomField:Invoice__c.Amount__c", REFERENCES, line=4)
    assert _has(refs, "CustomObject:Program__c", REFERENCES, line=5)
    assert _has(refs, "CustomObject:ServiceDelivery__c", REFERENCES, line=6)
    assert _has(refs, "CustomField:Acme_Settings__c.Disable__c", REFERENCES, READ, line=7)
    t = _targets(refs)
    assert "CustomField:Program__c.SObjectType" not in t
    assert not any(x.endswith((".getMap", ".fields", ".getInstance")) for x in t)


# --- classes --------------------------------------------------------------------------------
def test_extends_implements_and_system_interfaces(schema: Schema) -> None:
    body = """public class Foo extends BaseHandler implements ITaxCalculator, Database.Batchable<SObject>, Queueable, Schedulable {
}"""
    refs = _apex(body, schema)
    assert _has(refs, "ApexClass:BaseHandler", EXTENDS, line=1)
    assert _has(refs, "ApexClass:ITaxCalculator", IMPLEMENTS, line=1)
    assert len([r for r in refs if r.kind in (EXTENDS, IMPLEMENTS)]) == 2
    assert not any("Batchable" in r.target or "Queueable" in r.target for r in refs)


def test_class_references_calls_generics_casts_inner(schema: Schema) -> None:
    body = """public class Foo {
    public class Inner {}
    void m(Object o) {
        InvoiceService.generate(null);
        Util u = new Util();
        List<InvoiceService> l;
        Util.Helper h = (Util.Helper) o;
        Integer c = Util.MAX_SIZE;
        Inner i = new Inner();
        Foo.Inner j;
        Missing.call();
        new NotInOrg();
        String s = String.valueOf(1); System.debug(s); Database.SaveResult r; Test.startTest();
    }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "ApexClass:InvoiceService", CALLS, line=4)
    assert _has(refs, "ApexClass:Util", CALLS, line=5)
    assert _has(refs, "ApexClass:Util", REFERENCES, line=5)
    assert _has(refs, "ApexClass:InvoiceService", REFERENCES, line=6)
    assert _has(refs, "ApexClass:Util", REFERENCES, line=7)
    assert _has(refs, "ApexClass:Util", REFERENCES, line=8)
    assert {r.target for r in refs} == {"ApexClass:InvoiceService", "ApexClass:Util"}


def test_namespaced_references_are_kept(schema: Schema) -> None:
    body = """public class Foo extends npsp.TDTM_Runnable {
    void m(Contact c) {
        npsp.TDTM_Config_API.getCachedRecords();
        String e = c.npe01__Preferred_Email__c;
        npsp__General_Accounting_Unit__c g;
        unknownns.Thing.run();
    }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "ApexClass:npsp__TDTM_Runnable", EXTENDS, line=1)
    assert _has(refs, "ApexClass:npsp__TDTM_Config_API", CALLS, line=3)
    assert _has(refs, "CustomField:Contact.npe01__Preferred_Email__c", REFERENCES, READ, line=4)
    assert _has(refs, "CustomObject:npsp__General_Accounting_Unit__c", REFERENCES, line=5)
    assert not any("unknownns" in r.target or "Thing" in r.target for r in refs)


def test_variables_shadow_types_and_locals_are_not_leaked(schema: Schema) -> None:
    body = """public class Foo {
    void a() { Account account = new Account(); account.Industry = 'x'; }
    void b(Map<String, Object> util) { util.put('x', 1); Object v = util.get('Industry'); }
    void c() { Integer order = 1; }
}"""
    refs = _apex(body, schema)
    assert _has(refs, "CustomField:Account.Industry", REFERENCES, WRITE, line=2)
    assert not any(r.line == 3 for r in refs)  # `util` is a variable, not the Util class
    assert not any(r.target == "CustomObject:Order" for r in refs)


# --- triggers -------------------------------------------------------------------------------
def test_trigger_header_and_trigger_new_fields(schema: Schema) -> None:
    body = """trigger AccountTrigger on Account (before insert, after update) {
    for (Account a : Trigger.new) {
        a.Region__c = 'EU';
    }
    Account old = Trigger.oldMap.get(Trigger.new[0].Id);
    if (Trigger.new[0].Industry != old.Industry) { InvoiceService.run(); }
    update Trigger.new;
}"""
    refs = _apex(body, schema, name="AccountTrigger", type_="ApexTrigger", object="Account")
    assert _has(refs, "CustomObject:Account", TRIGGER_ON, line=1)
    assert not any(r.kind == DML and r.line == 1 for r in refs)  # `before insert` is not DML
    assert _has(refs, "CustomField:Account.Region__c", REFERENCES, WRITE, line=3)
    assert _has(refs, "CustomField:Account.Id", REFERENCES, READ, line=5)
    assert _has(refs, "CustomField:Account.Industry", REFERENCES, READ, line=6)
    assert _has(refs, "ApexClass:InvoiceService", CALLS, line=6)
    assert _has(refs, "CustomObject:Account", DML, WRITE, line=7)


def test_references_are_deduplicated(schema: Schema) -> None:
    body = "public class Foo { void m(Account a) { a.Industry = a.Industry + a.Industry; } }"
    refs = _apex(body, schema)
    keys = [(r.target, r.kind, r.access, r.line, r.dynamic) for r in refs]
    assert len(keys) == len(set(keys))
    assert _has(refs, "CustomField:Account.Industry", access=WRITE)
    assert _has(refs, "CustomField:Account.Industry", access=READ)


def test_other_component_types_and_empty_bodies(schema: Schema) -> None:
    assert parse_apex(Component("Flow", "X", attributes={"body": "insert a;"}), schema) == []
    assert _apex("", schema) == []
    assert isinstance(_apex("public class Foo { void m( { [SELECT Id FROM", schema), list)


def test_truncated_source_ending_in_a_field_path_does_not_crash() -> None:
    from aicolleague_pipelines.lib.graph.parsers.apex import parse_apex
    from aicolleague_pipelines.lib.graph.schema import Schema
    from aicolleague_pipelines.lib.salesforce.model import Component

    body = "public class T { void m() { Account a = new Account(); a.Name"
    refs = parse_apex(Component("ApexClass", "T", attributes={"body": body}), Schema([]))
    assert any(r.target == "CustomField:Account.Name" for r in refs)
