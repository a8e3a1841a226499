"""Questions in plain English over the demo org acme-prod: offline, and through a fake Gemini."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.agents.ask import Answer, answer, parse_question
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.graph.store import GraphStore
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.llm import GeminiClient, GeminiConfig, GeminiWriter, OfflineWriter, ResponseCache
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
from aicolleague_pipelines_tests.fakes.gemini import FAKE_GEMINI_KEY, FakeGemini

ORG = "acme-prod"


@pytest.fixture(scope="module")
def graph():
    return build_org_graph(read_sfdx_project(demo_root() / "orgs" / ORG, ORG))


@pytest.fixture(scope="module")
def store(graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphStore]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("NEO4J_URI", raising=False)  # the embedded store
        s = open_store(tmp_path_factory.mktemp("ask-store"))
    s.load_snapshot(ORG, graph.nodes.values(), graph.edges, meta={"api_version": "62.0"})
    yield s
    s.close()


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as f:
        yield f


def _gemini(fake: FakeGemini, cache: ResponseCache | None = None) -> GeminiWriter:
    return GeminiWriter(GeminiClient(GeminiConfig(base_url=fake.base_url, timeout_s=3, backoff_s=0.01),
                                     api_key=FAKE_GEMINI_KEY), cache=cache)


S = "CustomField:"
IMPACT_INVOICE_AMOUNT = {
    "ApexClass:DefaultTaxCalculator", "ApexClass:ErpIntegrationService", "ApexClass:InvoicePrintController",
    "ApexClass:InvoiceService", "ApexClass:InvoiceServiceTest", "ApexPage:InvoicePrint",
    "EmailTemplate:Acme_Billing/Invoice_Overdue", "EmailTemplate:Acme_Billing/Invoice_Sent",
    "Flow:Invoice_Overdue_Notification", "Layout:Account-Account Layout", "Layout:Invoice__c-Invoice Layout",
    "LightningComponentBundle:invoiceList", "PermissionSet:Acme_Billing_Admin",
    "Report:Acme_Finance_Reports/Overdue_Invoices", "ValidationRule:Invoice__c.Amount_Locked_When_Paid",
    # two and three hops away
    "ApexClass:ServiceDeliveryTriggerHandler", "PermissionSet:Integration_User_Super", "Profile:Admin",
    "ApexTrigger:ServiceDeliveryTrigger",
}
INVOICE_SERVICE_DEPS = {
    "CustomObject:Invoice__c", "CustomObject:ServiceDelivery__c", "ApexClass:DefaultTaxCalculator",
    "ApexClass:ITaxCalculator",
    *(S + f for f in ("Account.Region__c", "Invoice__c.Account__c", "Invoice__c.Amount__c", "Invoice__c.Days_Overdue__c",
                      "Invoice__c.Due_Date__c", "Invoice__c.Id", "Invoice__c.Invoice_Date__c", "Invoice__c.Name",
                      "Invoice__c.Paid__c", "Invoice__c.Status__c", "Invoice__c.Tax_Amount__c",
                      "Program__c.Account__c", "ServiceDelivery__c.Amount__c", "ServiceDelivery__c.Id",
                      "ServiceDelivery__c.Invoice__c", "ServiceDelivery__c.Program__c")),
}

#: (question, method, subject, cited keys besides the subject, first line starts with)
TEN_QUESTIONS = [
    ("which flows write Opportunity.Amount?", "writers", S + "Opportunity.Amount",
     {"ApexClass:OpportunityHelperTest", "Layout:Opportunity-Opportunity Layout"},  # the other writers
     "No flows write `CustomField:Opportunity.Amount`"),
    ("where is Account.Industry used?", "where_used", S + "Account.Industry",
     {"ApexClass:AccountHealthCalculator", "ApexClass:LegacyReportExporter", "Flow:New_Client_Intake",
      "Layout:Account-Account Layout", "LightningComponentBundle:programSummary"},
     "`CustomField:Account.Industry` is used directly by 5 components"),
    ("what breaks if I delete Invoice__c.Amount__c?", "impact", S + "Invoice__c.Amount__c", IMPACT_INVOICE_AMOUNT,
     "Changing or deleting `CustomField:Invoice__c.Amount__c` affects 19 components"),
    ("what does InvoiceService depend on?", "dependencies", "ApexClass:InvoiceService", INVOICE_SERVICE_DEPS,
     "`ApexClass:InvoiceService` depends directly on 20 components"),
    ("which classes write Account.Industry?", "writers", S + "Account.Industry",
     {"Flow:New_Client_Intake", "Layout:Account-Account Layout"}, "No classes write `CustomField:Account.Industry`"),
    ("Which flows write Account.Industry", "writers", S + "Account.Industry",
     {"Flow:New_Client_Intake", "Layout:Account-Account Layout"}, "1 flow writes `CustomField:Account.Industry`"),
    ("what reads Invoice__c.Amount__c?", "readers", S + "Invoice__c.Amount__c",
     {"ApexClass:DefaultTaxCalculator", "ApexClass:ErpIntegrationService", "ApexClass:InvoicePrintController",
      "ApexClass:InvoiceService", "ApexClass:InvoiceServiceTest", "Flow:Invoice_Overdue_Notification",
      "ValidationRule:Invoice__c.Amount_Locked_When_Paid", "Layout:Account-Account Layout",
      "LightningComponentBundle:invoiceList", "ApexPage:InvoicePrint", "Report:Acme_Finance_Reports/Overdue_Invoices",
      "EmailTemplate:Acme_Billing/Invoice_Overdue", "EmailTemplate:Acme_Billing/Invoice_Sent"},
     "13 components read `CustomField:Invoice__c.Amount__c`"),
    ("what writes Program__c.Status__c?", "writers", S + "Program__c.Status__c",
     {"ApexClass:InvoiceServiceTest", "ApexTrigger:OpportunityTrigger", "Flow:New_Client_Intake",
      "Flow:Opportunity_Program_Sync", "Layout:Program__c-Program Layout", "FlexiPage:Program_Record_Page",
      "PermissionSet:Acme_Delivery_Manager"},
     "7 components write `CustomField:Program__c.Status__c`"),
    ("what does the Case_Escalation flow depend on?", "dependencies", "Flow:Case_Escalation",
     {"CustomObject:Account", "CustomObject:Case", "ApexClass:CaseEscalationAction", "Flow:Notify_Account_Team",
      *(S + f for f in ("Account.Customer_Tier__c", "Account.Id", "Account.OwnerId", "Case.AccountId", "Case.Id",
                        "Case.Priority", "Case.SLA_Breach__c", "Case.Status"))},
     "`Flow:Case_Escalation` depends directly on 12 components"),
    ("who uses the Amount field on Opportunity?", "where_used", S + "Opportunity.Amount",
     {S + "Account.Annual_Contract_Value__c", S + "Opportunity.Expected_Margin_Amount__c",
      "ApexClass:OpportunityHelper", "ApexClass:OpportunityHelperTest", "ApexTrigger:OpportunityTrigger",
      "Layout:Account-Account Layout", "Layout:Opportunity-Opportunity Layout",
      "Report:Acme_Sales_Reports/Pipeline_by_Program"},
     "`CustomField:Opportunity.Amount` is used directly by 8 components"),
]


@pytest.mark.parametrize("question,method,subject,keys,first", TEN_QUESTIONS, ids=[q[0] for q in TEN_QUESTIONS])
def test_ten_questions_offline(store: GraphStore, question: str, method: str, subject: str, keys: set[str],
                               first: str) -> None:
    a = answer(store, ORG, question, OfflineWriter())
    assert (a.method, a.subject, a.source) == (method, subject, "offline")
    assert set(a.cited_keys) == {subject, *keys}
    assert a.text.startswith(first), a.text
    for k in a.cited_keys:
        assert f"`{k}`" in a.text
    assert answer(store, ORG, question).text == a.text  # deterministic; OfflineWriter is the default


def test_writers_filtered_by_type_list_the_matches_first(store: GraphStore) -> None:
    a = answer(store, ORG, "which flows write Account.Industry?")
    titles = [s["title"] for s in a.facts["sections"]]
    assert titles == ["Flows", "Other components that write it"]
    assert [i["key"] for i in a.facts["sections"][0]["items"]] == ["Flow:New_Client_Intake"]
    assert a.facts["type_filter"] == ["Flow"]


def test_impact_lists_nearest_first_with_paths(store: GraphStore) -> None:
    a = answer(store, ORG, "impact of Invoice__c.Amount__c")
    assert a.method == "impact" and a.facts["counts"] == {"impacted": 19, "direct": 15, "depth": 3}
    assert [s["title"] for s in a.facts["sections"]] == ["Direct dependents", "Two hops away", "Three hops away"]
    assert "- `ApexTrigger:ServiceDeliveryTrigger` — via `ApexClass:ServiceDeliveryTriggerHandler` (calls)" in a.text


@pytest.mark.parametrize("question,method,phrase,types", [
    ("Who uses Account.Industry?", "where_used", "Account.Industry", None),
    ("what uses InvoiceService", "where_used", "InvoiceService", None),
    ("where is Invoice__c used in reports?", "where_used", "Invoice__c", None),
    ("what depends on Invoice__c", "where_used", "Invoice__c", None),
    ("which layouts show Invoice__c.Amount__c", "where_used", "Invoice__c.Amount__c", frozenset({"Layout"})),
    ("which apex classes update Invoice__c.Status__c?", "writers", "Invoice__c.Status__c", frozenset({"ApexClass"})),
    ("which permission sets write Invoice__c.Amount__c", "writers", "Invoice__c.Amount__c",
     frozenset({"PermissionSet", "PermissionSetGroup"})),
    ("which triggers write to Opportunity.Margin__c", "writers", "Opportunity.Margin__c", frozenset({"ApexTrigger"})),
    ("what queries Account.Industry?", "readers", "Account.Industry", None),
    ("what would break if we renamed Account.Health_Score__c?", "impact", "Account.Health_Score__c", None),
    ("is it safe to delete Invoice__c.Tax_Id__c?", "impact", "Invoice__c.Tax_Id__c", None),
    ("what is affected by changing InvoiceService", "impact", "InvoiceService", None),
    ("dependencies of Flow:Case_Escalation", "dependencies", "Flow:Case_Escalation", None),
    ("what does OpportunityTrigger use?", "dependencies", "OpportunityTrigger", None),
    ("what changed?", "changes", None, None),
    ("What changed since the last refresh?", "changes", None, None),
    ("tell me about invoices", "search", "tell me about invoices", None),
])
def test_parse_question(question: str, method: str, phrase: str | None, types: frozenset | None) -> None:
    intent = parse_question(question)
    assert (intent.method, intent.phrase, intent.types) == (method, phrase, types)


@pytest.mark.parametrize("question,subject", [
    ("where is CustomField:Account.Industry used?", S + "Account.Industry"),
    ("where is account.industry used?", S + "Account.Industry"),
    ("who uses Industry?", S + "Account.Industry"),  # a field's own name, unique
    ("who uses invoice.amount?", S + "Invoice__c.Amount__c"),  # without __c, any case
    ("what uses Invoice__c?", "CustomObject:Invoice__c"),  # the object, not its tab
    ("what does the InvoiceService class depend on?", "ApexClass:InvoiceService"),
    ("what breaks if I change Account's Health_Score__c field", S + "Account.Health_Score__c"),
])
def test_subject_resolution(store: GraphStore, question: str, subject: str) -> None:
    assert answer(store, ORG, question).subject == subject


def test_typo_is_resolved_with_a_note(store: GraphStore) -> None:
    a = answer(store, ORG, "where is Opportunity.Amout used?")
    assert a.subject == S + "Opportunity.Amount"
    assert any("closest match" in n for n in a.notes)
    assert "closest match" in a.text


def test_ambiguous_and_unknown_names(store: GraphStore) -> None:
    a = answer(store, ORG, "what uses Amount?")
    assert a.method == "ambiguous" and a.subject is None
    assert set(a.cited_keys) == {S + "Opportunity.Amount", S + "Invoice__c.Amount__c", S + "ServiceDelivery__c.Amount__c"}
    b = answer(store, ORG, "what breaks if I delete Invoice__c.Totally_Unknown__c?")
    assert b.method == "not_found" and "I found no component matching" in b.text


def test_unmatched_question_offline_lists_what_it_can_answer(store: GraphStore) -> None:
    a = answer(store, ORG, "tell me a story about invoices")
    assert a.method == "help" and a.cited_keys == []
    assert "what breaks if I change/delete X" in a.text and "where is X used" in a.text


def test_what_changed(graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEO4J_URI", raising=False)
    with open_store(tmp_path / "s") as st:
        st.load_snapshot(ORG, graph.nodes.values(), graph.edges)
        first = answer(st, ORG, "what changed?")
        assert first.method == "changes" and "single snapshot" in first.text
        nodes = dict(graph.nodes)
        gone = S + "Account.Health_Score__c"
        nodes[gone] = Node(gone, "CustomField", "Account.Health_Score__c", external=True)
        flow = "Flow:Case_Escalation"
        nodes[flow] = dataclasses.replace(nodes[flow], attrs={**nodes[flow].attrs, "status": "Obsolete", "active": False})
        st.load_snapshot(ORG, nodes.values(), graph.edges)
        a = answer(st, ORG, "what changed since the last snapshot?")
    assert a.method == "changes"
    assert ": 0 added, 1 removed, 1 modified, 1 breaking." in a.text.splitlines()[0]
    assert [s["title"] for s in a.facts["sections"]] == ["Breaking changes", "Removed", "Modified"]
    assert {gone, flow, "ApexClass:AccountHealthCalculator"} <= set(a.cited_keys)
    assert "- `Flow:Case_Escalation` — active, status" in a.text


# --- through Gemini (the loopback fake) ------------------------------------------------------
def test_ten_questions_through_gemini(store: GraphStore, fake: FakeGemini) -> None:
    writer = _gemini(fake)
    for question, method, subject, keys, _ in TEN_QUESTIONS:
        offline = answer(store, ORG, question)
        a = answer(store, ORG, question, writer)
        assert (a.method, a.subject, a.source, a.rejected_citations) == (method, subject, "gemini", [])
        # the fake cites every allowed key it finds in the prompt: the facts' keys, nothing else
        assert set(a.cited_keys) >= set(offline.cited_keys) == {subject, *keys}
        assert a.facts == offline.facts
        assert fake.requests[-1].prompt.count(f"TASK: Answer the question {question!r}") == 1
    assert len(fake.requests) == len(TEN_QUESTIONS)


def test_gemini_hallucination_in_an_answer_falls_back_to_the_offline_text(store: GraphStore, fake: FakeGemini) -> None:
    fake.reply('{"text": "`Flow:New_Client_Intake` and `Flow:Industry_Backfill` write it.", '
               '"cited_keys": ["Flow:New_Client_Intake", "Flow:Industry_Backfill"]}')
    a = answer(store, ORG, "which flows write Account.Industry?", _gemini(fake))
    assert a.source == "offline" and a.rejected_citations == ["Flow:Industry_Backfill"]
    assert a.text == answer(store, ORG, "which flows write Account.Industry?").text
    assert any("not in the facts" in n for n in a.notes)


def test_gemini_answers_unmatched_questions_from_keyword_retrieval(store: GraphStore, fake: FakeGemini,
                                                                   tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    a = answer(store, ORG, "tell me about overdue invoices", _gemini(fake, cache))
    assert a.method == "search" and a.source == "gemini" and a.rejected_citations == []
    matching = a.facts["sections"][0]
    assert matching["title"] == "Matching components" and len(matching["items"]) == 10
    top = [i["key"] for i in matching["items"]]
    assert "Flow:Invoice_Overdue_Notification" in top and "CustomObject:Invoice__c" in top
    assert any(s["title"].startswith("Around ") for s in a.facts["sections"])
    assert set(a.cited_keys) >= set(top)
    n = len(fake.requests)
    again = answer(store, ORG, "tell me about overdue invoices", _gemini(fake, cache))
    assert again.source == "cache" and len(fake.requests) == n and again.text == a.text


def test_help_and_unknowns_never_call_gemini(store: GraphStore, fake: FakeGemini) -> None:
    w = _gemini(fake)
    assert answer(store, ORG, "what uses Amount?", w).method == "ambiguous"
    assert answer(store, ORG, "where is Nope__c.Nothing__c used", w).method == "not_found"
    assert fake.requests == []


def test_answer_to_dict_round_trips(store: GraphStore) -> None:
    a = answer(store, ORG, "where is Account.Industry used?")
    d = a.to_dict()
    assert d["method"] == "where_used" and d["cited_keys"] == a.cited_keys and isinstance(a, Answer)


def test_answers_from_a_read_only_store(graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI does (``open_store(home, read_only=True)``): every method works read-only."""
    monkeypatch.delenv("NEO4J_URI", raising=False)
    with open_store(tmp_path / "ro") as st:
        st.load_snapshot(ORG, graph.nodes.values(), graph.edges)
    with open_store(tmp_path / "ro", read_only=True) as ro:
        for q in ("what breaks if I delete Invoice__c.Amount__c?", "what does InvoiceService depend on?",
                  "which flows write Account.Industry?", "what changed?", "what uses Amount?"):
            assert answer(ro, ORG, q).text
