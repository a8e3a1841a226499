"""The knowledge base of the demo org: entries, best-practice notes, FAQ, search, JSON."""

from __future__ import annotations

from collections import Counter

import pytest

from aicolleague_pipelines.lib.agents.docs import build_docs_site
from aicolleague_pipelines.lib.agents.knowledge import KnowledgeBase, build_knowledge_base
from aicolleague_pipelines.lib.agents.model import Finding, RuleContext
from aicolleague_pipelines.lib.agents.triage import all_rules, run_rules
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project


@pytest.fixture(scope="module")
def acme():
    inv = read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod")
    graph = build_org_graph(inv)
    rules = all_rules()
    findings, errors = run_rules(RuleContext("acme-prod", inv, graph, "2025-01-01", inv.api_version), rules)
    assert not errors
    return inv, graph, findings, rules


@pytest.fixture(scope="module")
def kb(acme) -> KnowledgeBase:
    inv, graph, findings, rules = acme
    return build_knowledge_base(inv, graph, findings, rules)


def test_entries_cover_every_defined_component(kb, acme) -> None:
    inv, graph, _f, _r = acme
    assert set(kb.entries) >= {c.key for c in inv.components}
    assert not any(graph.nodes[k].external for k in kb.entries if k in graph.nodes)
    e = kb.entries["ApexClass:InvoiceService"]
    assert e.type == "ApexClass" and e.name == "InvoiceService"
    assert e.dependents == 3 and "ApexClass:ServiceDeliveryTriggerHandler" in e.top_dependents
    assert "writes 10" in e.summary
    field = kb.entries["CustomField:Invoice__c.Status__c"]
    assert field.object == "Invoice__c" and field.label == "Status"


def test_notes_come_from_the_rules_that_fired(kb, acme) -> None:
    _inv, _g, findings, rules = acme
    helper = kb.entries["ApexClass:OpportunityHelper"]
    note = next(n for n in helper.notes if n.rule_id == "APEX-SOQL-IN-LOOP")
    rule = next(r for r in rules if r.id == "APEX-SOQL-IN-LOOP")
    assert note.title == rule.title and note.description == rule.description
    assert note.count == sum(1 for f in findings if f.rule_id == rule.id and f.component == helper.key) == 2
    # Every finding is a note somewhere, and nothing else is.
    per_comp = Counter((f.component, f.rule_id) for f in findings)
    notes = {(k, n.rule_id): n.count for k, e in kb.entries.items() for n in e.notes}
    assert notes == {k: v for k, v in per_comp.items() if k[0] in kb.entries}


def test_faq_counts_match_findings(kb, acme) -> None:
    _inv, _g, findings, rules = acme
    by_rule = Counter(f.rule_id for f in findings)
    assert set(kb.faq) == set(by_rule)
    for rid, faq in kb.faq.items():
        assert faq.findings == by_rule[rid]
        assert faq.components == len({f.component for f in findings if f.rule_id == rid})
        assert faq.why and faq.how_to_fix and faq.examples
    soql = kb.faq["APEX-SOQL-IN-LOOP"]
    assert soql.components == 1 and soql.findings == 2 and "governor limit" in soql.how_to_fix
    assert kb.faq["META-FIELD-NO-DESCRIPTION"].components == by_rule["META-FIELD-NO-DESCRIPTION"]
    md = kb.to_markdown()
    assert md.index("APEX-SOQL-IN-LOOP") < md.index("META-FIELD-NO-DESCRIPTION")  # high before low


def test_search_is_ranked_and_deterministic(kb) -> None:
    hits = kb.search("invoice")
    keys = [e.key for e in hits]
    assert "ApexClass:InvoiceService" in keys and len(keys) == 10
    assert keys[0] == "CustomObject:Invoice__c"
    assert keys == [e.key for e in kb.search("Invoice")] == [e.key for e in kb.search("  INVOICE ")]
    assert [e.key for e in kb.search("invoiceservice", limit=3)][0] == "ApexClass:InvoiceService"
    # Every word must match; notes make rule words searchable.
    assert [e.key for e in kb.search("invoice service test")] == ["ApexClass:InvoiceServiceTest"]
    assert "ApexClass:OpportunityHelper" in [e.key for e in kb.search("soql loop")]
    assert kb.search("") == [] and kb.search("zzzz-no-such-thing") == []
    scored = kb.search_scored("invoice", limit=50)
    assert [h.score for h in scored] == sorted((h.score for h in scored), reverse=True)


def test_json_round_trip_and_doc_links(kb, acme, tmp_path) -> None:
    text = kb.to_json()
    again = KnowledgeBase.from_json(text)
    assert again.to_json() == text and again.entries == kb.entries
    assert [e.key for e in again.search("invoice")] == [e.key for e in kb.search("invoice")]
    with pytest.raises(ValueError, match="format"):
        KnowledgeBase.from_json('{"format": 99, "org": "x"}')
    inv, graph, findings, rules = acme
    site = build_docs_site(inv, graph, tmp_path / "site", findings=findings)
    linked = build_knowledge_base(inv, graph, findings, rules, page_of=site.page_of)
    assert linked.entries["ApexClass:InvoiceService"].page == "apex/InvoiceService.md"
    assert linked.entries["CustomField:Invoice__c.Status__c"].page is None


def test_findings_of_unknown_rules_still_make_faq_entries(acme) -> None:
    inv, graph, _findings, _rules = acme
    f = Finding("CUSTOM-X", "medium", "acme-prod", "ApexClass:InvoiceService", "msg", "do this", category="custom")
    kb = build_knowledge_base(inv, graph, [f], [])
    assert kb.faq["CUSTOM-X"].why == "do this" and kb.faq["CUSTOM-X"].components == 1
    assert kb.entries["ApexClass:InvoiceService"].notes[0].title == "CUSTOM-X"
