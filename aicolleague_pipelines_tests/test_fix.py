"""Fix plans (ordered steps, manifests, rollback bundle) and the approval ledger."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.agents import approvals as approvals_mod
from aicolleague_pipelines.lib.agents.approvals import (
    ApprovalError,
    ApprovalLedger,
    NotApproved,
    approvals_from_file,
)
from aicolleague_pipelines.lib.agents.fix import FixPlan, PlannedChange, plan_change, plan_for_finding
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.graph.model import CALLS, CHILD_OF, QUERIES, REFERENCES, SYNCED_TO, Edge, Node
from aicolleague_pipelines.lib.graph.store import UnknownComponentError
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.orgs import demo_root

ORG = "acme-prod"
AMOUNT = "CustomField:Invoice__c.Amount__c"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from aicolleague_pipelines.lib.graph.build import build_org_graph
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

    root = demo_root() / "orgs" / ORG
    inv = read_sfdx_project(root, ORG)
    graph = build_org_graph(inv)
    store = open_store(tmp_path_factory.mktemp("graph"))
    store.load_snapshot(ORG, graph.nodes.values(), graph.edges, meta={"api_version": inv.api_version})
    yield store, root, inv, graph
    store.close()


@pytest.fixture(scope="module")
def amount_plan(demo, tmp_path_factory: pytest.TempPathFactory) -> tuple[FixPlan, Path]:
    store, root, inv, _ = demo
    out = tmp_path_factory.mktemp("plan")
    sources = {c.key: c.source for c in inv.components if c.source}
    plan = plan_change(
        store, ORG, PlannedChange("delete", AMOUNT, reason="replaced by Total__c"),
        api_version="62.0", project_root=root, inventory_sources=sources, out_dir=out,
    )
    return plan, out


def _step(plan: FixPlan, key: str):
    for s in plan.steps:
        if s.key == key or key in s.members:
            return s
    raise AssertionError(f"no step for {key}: {[s.key for s in plan.steps]}")


# --- delete a field on the demo org ----------------------------------------------------
def test_delete_field_steps_with_evidence(amount_plan) -> None:
    plan, _ = amount_plan
    assert plan.ok and plan.state == "pending"
    svc = _step(plan, "ApexClass:InvoiceService")
    assert svc.kind == "edit"
    assert any(
        a == "remove Invoice__c.Amount__c from the SOQL at force-app/main/default/classes/InvoiceService.cls:22"
        for a in svc.actions
    ), svc.actions
    assert "force-app/main/default/classes/InvoiceService.cls:22" in svc.evidence
    assert svc.effort in ("M", "L") and svc.references == 3
    lay = _step(plan, "Layout:Invoice__c-Invoice Layout")
    assert lay.actions == ["remove the field from Layout Invoice__c-Invoice Layout"] and lay.effort == "S"
    ps = _step(plan, "PermissionSet:Acme_Billing_Admin")
    assert ps.actions == ["revoke the field permission for Invoice__c.Amount__c in PermissionSet Acme_Billing_Admin"]
    vr = _step(plan, "ValidationRule:Invoice__c.Amount_Locked_When_Paid")
    assert "rewrite the error condition" in vr.actions[0]
    # every direct dependent has an edit step
    direct = {"ApexClass:InvoiceService", "ApexClass:InvoiceServiceTest", "ApexClass:ErpIntegrationService",
              "ApexClass:DefaultTaxCalculator", "ApexClass:InvoicePrintController", "Flow:Invoice_Overdue_Notification",
              "Layout:Account-Account Layout", "Report:Acme_Finance_Reports/Overdue_Invoices",
              "LightningComponentBundle:invoiceList", "ApexPage:InvoicePrint",
              "EmailTemplate:Acme_Billing/Invoice_Overdue", "EmailTemplate:Acme_Billing/Invoice_Sent"}
    assert direct <= {s.key for s in plan.steps if s.kind == "edit"}


def test_delete_field_order_dependents_first_target_last(amount_plan, demo) -> None:
    plan, _ = amount_plan
    store = demo[0]
    assert plan.steps[-1].key == AMOUNT and plan.steps[-1].kind == "target"
    assert [s.order for s in plan.steps] == list(range(1, len(plan.steps) + 1))
    pos = {}
    for s in plan.steps:
        for k in s.members or [s.key]:
            pos[k] = s.order
    checked = 0
    for e in store.edges(ORG):  # e.source depends on e.target: source's step comes first
        if e.source in pos and e.target in pos and pos[e.source] != pos[e.target]:
            assert pos[e.source] < pos[e.target], (e.source, e.target)
            checked += 1
    assert checked >= 20
    # an indirect dependent (the trigger reaching the field through its handler) comes early
    trig = _step(plan, "ApexTrigger:ServiceDeliveryTrigger")
    assert trig.kind == "review" and trig.order < _step(plan, "ApexClass:InvoiceService").order
    assert not plan.cycles


def test_delete_field_manifests(amount_plan) -> None:
    plan, out = amount_plan
    assert (out / "destructive" / "destructiveChanges.xml").read_text() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Package xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <types>\n"
        "        <members>Invoice__c.Amount__c</members>\n"
        "        <name>CustomField</name>\n"
        "    </types>\n"
        "    <version>62.0</version>\n"
        "</Package>\n"
    )
    assert (out / "destructive" / "package.xml").read_text() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Package xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <version>62.0</version>\n"
        "</Package>\n"
    )
    pkg = (out / "package.xml").read_text()
    assert "<members>InvoiceService</members>" in pkg and "<members>Invoice__c-Invoice Layout</members>" in pkg
    assert "<members>Acme_Billing_Admin</members>" in pkg and "<version>62.0</version>" in pkg
    assert "Invoice__c.Amount__c" not in pkg  # the target is deleted, not deployed
    assert "ServiceDeliveryTrigger" not in pkg  # reviewed, not edited
    md = (out / "plan.md").read_text()
    assert "| # | component |" in md and "destructive/destructiveChanges.xml" in md and plan.id in md
    d = json.loads((out / "plan.json").read_text())
    assert d["id"] == plan.id and d["steps"][-1]["key"] == AMOUNT and d["change"]["action"] == "delete"


def test_rollback_bundle_byte_identical(amount_plan, demo) -> None:
    plan, out = amount_plan
    root = demo[1]
    assert plan.rollback_complete
    rb = out / "rollback"
    expected = [
        "force-app/main/default/objects/Invoice__c/fields/Amount__c.field-meta.xml",
        "force-app/main/default/classes/InvoiceService.cls",
        "force-app/main/default/classes/InvoiceService.cls-meta.xml",
        "force-app/main/default/layouts/Invoice__c-Invoice Layout.layout-meta.xml",
        "force-app/main/default/permissionsets/Acme_Billing_Admin.permissionset-meta.xml",
        "force-app/main/default/lwc/invoiceList/invoiceList.js",
        "unpackaged/email/Acme_Billing/Invoice_Overdue.email-meta.xml",
    ]
    for rel in expected:
        assert (rb / rel).read_bytes() == (root / rel).read_bytes(), rel
    copied = [p for p in rb.rglob("*") if p.is_file() and p.name not in ("package.xml", "sfdx-project.json")]
    for p in copied:
        assert p.read_bytes() == (root / p.relative_to(rb)).read_bytes()
    rpkg = (rb / "package.xml").read_text()
    assert "<members>Invoice__c.Amount__c</members>" in rpkg and "<members>InvoiceService</members>" in rpkg
    proj = json.loads((rb / "sfdx-project.json").read_text())
    assert {d["path"] for d in proj["packageDirectories"]} == {"force-app", "unpackaged"}


def test_no_project_rollback_incomplete(demo, tmp_path: Path) -> None:
    store = demo[0]
    plan = plan_change(store, ORG, PlannedChange("delete", AMOUNT), project_root=None,
                       inventory_sources=None, out_dir=tmp_path)
    assert plan.api_version == "62.0"  # from the snapshot meta
    assert not plan.rollback_complete
    assert (tmp_path / "rollback" / "package.xml").is_file()
    assert not (tmp_path / "rollback" / "force-app").exists()
    assert any("retrieve" in n for n in plan.notes)
    assert "sf project retrieve start --manifest rollback/package.xml" in plan.to_markdown()


# --- other actions -------------------------------------------------------------------------
def test_deactivate_flow(demo, tmp_path: Path) -> None:
    store, root = demo[0], demo[1]
    plan = plan_change(store, ORG, PlannedChange("deactivate", "Flow:Notify_Account_Team"),
                       project_root=root, out_dir=tmp_path)
    assert plan.ok
    caller = _step(plan, "Flow:Case_Escalation")
    assert caller.kind == "edit" and "subflow" in caller.actions[0]
    assert caller.order < plan.steps[-1].order and plan.steps[-1].key == "Flow:Notify_Account_Team"
    assert "FlowDefinition activeVersionNumber 0" in plan.steps[-1].actions[0]
    fd = (tmp_path / "deactivate" / "flowDefinitions" / "Notify_Account_Team.flowDefinition").read_text()
    assert "<activeVersionNumber>0</activeVersionNumber>" in fd
    assert "<name>FlowDefinition</name>" in (tmp_path / "deactivate" / "package.xml").read_text()
    assert not plan.destructive_members
    # the flow file itself is in the rollback bundle, byte-identical
    rel = "force-app/main/default/flows/Notify_Account_Team.flow-meta.xml"
    assert (tmp_path / "rollback" / rel).read_bytes() == (root / rel).read_bytes()


def test_change_type_with_formula_dependents(demo) -> None:
    store = demo[0]
    plan = plan_change(store, ORG, PlannedChange("change_type", "CustomField:Account.Health_Score__c", new_type="Text"))
    formula = _step(plan, "CustomField:Account.Health_Status__c")
    assert formula.kind == "edit"
    assert "adapt the use of Account.Health_Score__c to type Text in the formula of field Account.Health_Status__c" in formula.actions[0]
    assert plan.steps[-1].key == "CustomField:Account.Health_Score__c"
    assert "to Text" in plan.steps[-1].actions[0]
    assert "Account.Health_Score__c" in plan.deploy_members["CustomField"]  # the retyped field deploys
    assert "Account.Health_Status__c" in plan.deploy_members["CustomField"]
    assert not plan.destructive_members


def test_standard_field_refused(demo, tmp_path: Path) -> None:
    store = demo[0]
    plan = plan_change(store, ORG, PlannedChange("delete", "CustomField:Account.Industry"), out_dir=tmp_path)
    assert not plan.ok and "standard field" in plan.refused and "cannot be deleted" in plan.refused
    assert not plan.steps and not (tmp_path / "destructive").exists()
    assert "Refused" in (tmp_path / "plan.md").read_text()
    with pytest.raises(UnknownComponentError):
        plan_change(store, ORG, PlannedChange("delete", "CustomField:Invoice__c.Amount_c"))


def test_rename_field(demo) -> None:
    store = demo[0]
    plan = plan_change(store, ORG, PlannedChange("rename", AMOUNT, new_name="Invoice__c.Total__c"))
    svc = _step(plan, "ApexClass:InvoiceService")
    assert any("replace Invoice__c.Amount__c with Invoice__c.Total__c" in a for a in svc.actions)
    assert "Invoice__c.Total__c" in plan.deploy_members["CustomField"]
    assert plan.destructive_members == {"CustomField": ["Invoice__c.Amount__c"]}


def test_plan_ids_stable(demo) -> None:
    store = demo[0]
    a = plan_change(store, ORG, PlannedChange("delete", AMOUNT, reason="one"))
    b = plan_change(store, ORG, PlannedChange("delete", AMOUNT, reason="another wording"))
    assert a.id == b.id and a.id.startswith("plan-") and a.digest == b.digest
    assert a.id != plan_change(store, ORG, PlannedChange("deactivate", "Flow:Notify_Account_Team")).id
    assert a.id != PlannedChange("delete", AMOUNT).plan_id("acme-uat")
    assert a.id == "plan-" + __import__("hashlib").sha256(
        "\x1f".join((ORG, "delete", AMOUNT, "", "", "")).encode()).hexdigest()[:16]


def test_plan_for_findings(demo) -> None:
    store = demo[0]
    unused = Finding("META-FIELD-UNUSED", "medium", ORG, "CustomField:Account.Website_Domain__c",
                     "Custom field Website_Domain__c is not used", "delete it")
    p = plan_for_finding(store, ORG, unused)
    assert p.change.action == "delete" and p.finding == unused.id
    assert p.destructive_members == {"CustomField": ["Account.Website_Domain__c"]}
    inactive = Finding("FLOW-INACTIVE", "low", ORG, "Flow:Legacy_Invoice_Reminder", "Flow is Obsolete", "delete it")
    p = plan_for_finding(store, ORG, inactive)
    assert p.destructive_members == {"Flow": ["Legacy_Invoice_Reminder"]}
    assert not any(k.startswith("deactivate/") for k in p.artifacts)  # already inactive
    soql = Finding("APEX-SOQL-IN-LOOP", "high", ORG, "ApexClass:OpportunityHelper", "SOQL in a loop",
                   "Move the query before the loop and use a map.",
                   evidence="force-app/main/default/classes/OpportunityHelper.cls:12")
    p = plan_for_finding(store, ORG, soql)
    assert p.change.action == "edit" and p.steps[-1].kind == "target"
    assert p.steps[-1].actions == [
        "edit in place at force-app/main/default/classes/OpportunityHelper.cls:12: "
        "Move the query before the loop and use a map."
    ]
    assert p.deploy_members == {"ApexClass": ["OpportunityHelper"]} and not p.destructive_members
    assert all(s.kind in ("review", "target") for s in p.steps)
    assert p.id != plan_for_finding(store, ORG, Finding(
        "APEX-DML-IN-LOOP", "high", ORG, "ApexClass:OpportunityHelper", "DML in a loop", "x")).id


# --- hand-built graphs: cycles and platform impact ----------------------------------------
def _node(key: str, **attrs) -> Node:
    t, _, n = key.partition(":")
    return Node(key=key, type=t, name=n, attrs=attrs)


def test_cycle_called_out(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g")
    f = "CustomField:Obj__c.F__c"
    nodes = [_node("CustomObject:Obj__c"), _node(f), _node("ApexClass:A"), _node("ApexClass:B"),
             _node("ApexClass:C"), _node("WarehouseColumn:dw/obj.f"), _node("MetabaseCard:mb/1")]
    edges = [
        Edge(f, "CustomObject:Obj__c", CHILD_OF, "x"),
        Edge("ApexClass:A", f, QUERIES, "classes/A.cls:3", detail="SOQL SELECT"),
        Edge("ApexClass:A", "ApexClass:B", CALLS, "classes/A.cls:9"),
        Edge("ApexClass:B", "ApexClass:A", CALLS, "classes/B.cls:4"),
        Edge("ApexClass:C", "ApexClass:A", CALLS, "classes/C.cls:2"),
        Edge("WarehouseColumn:dw/obj.f", f, SYNCED_TO, "fivetran"),
        Edge("MetabaseCard:mb/1", "WarehouseColumn:dw/obj.f", REFERENCES, "metabase:card/1"),
    ]
    store.load_snapshot("t", nodes, edges, meta={"api_version": "61.0"})
    plan = plan_change(store, "t", PlannedChange("delete", f), project_root=None, inventory_sources=None)
    assert plan.cycles == [["ApexClass:A", "ApexClass:B"]]
    keys = [s.key for s in plan.steps]
    assert keys == ["ApexClass:C", "ApexClass:A", f]
    cyc = plan.steps[1]
    assert cyc.kind == "cycle" and cyc.members == ["ApexClass:A", "ApexClass:B"]
    assert "edit and deploy them together" in cyc.why
    assert "ApexClass:A: remove Obj__c.F__c from the SOQL at classes/A.cls:3" in cyc.actions
    assert plan.deploy_members == {"ApexClass": ["A"]}
    assert "Cycles" in plan.to_markdown()
    # platform assets listed apart, with what breaks; not steps
    assert {p.key for p in plan.platform_impact} == {"WarehouseColumn:dw/obj.f", "MetabaseCard:mb/1"}
    wc = next(p for p in plan.platform_impact if p.type == "WarehouseColumn")
    assert "stops receiving values" in wc.breaks and wc.depth == 1
    assert not any(k.startswith(("Warehouse", "Metabase")) for k in keys)
    assert plan.risk == "high" or plan.risk == "medium"
    assert "MetabaseCard:mb/1" in plan.to_markdown()
    store.close()


# --- approvals ------------------------------------------------------------------------------
def test_approvals_via_file(tmp_path: Path) -> None:
    ledger = ApprovalLedger(tmp_path / "ledger.json")
    pid = PlannedChange("delete", AMOUNT).plan_id(ORG)
    ledger.register(pid, f"delete {AMOUNT} in {ORG}", org=ORG, digest="d1")
    assert ledger.state(pid) == "pending"
    with pytest.raises(NotApproved, match="pending"):
        ledger.require_approved(pid)
    f = tmp_path / "approvals.yaml"
    f.write_text(f"approvals:\n  - plan: {pid}\n    decision: approved\n    by: ana\n    reason: data exported\n")
    r = approvals_from_file(f, ledger)
    assert len(r.applied) == 1 and not r.errors
    assert ledger.state(pid) == "approved"
    dec = ledger.require_approved(pid)
    assert dec.by == "ana" and dec.reason == "data exported" and dec.source == "file:approvals.yaml"
    assert ledger.require_approved(pid, digest="d1").decision == "approved"
    with pytest.raises(NotApproved, match="stale"):
        ledger.require_approved(pid, digest="d2")
    # idempotent: re-reading the file applies nothing, and never overrides a later decision
    assert approvals_from_file(f, ledger).skipped == 1
    ledger.record(pid, "rejected", "bob", "wait for Q3")
    assert approvals_from_file(f, ledger).applied == []
    assert ledger.state(pid) == "rejected"
    log = ledger.decisions(pid)
    assert [(d.decision, d.by) for d in log] == [("approved", "ana"), ("rejected", "bob")]
    assert all(d.what == f"delete {AMOUNT} in {ORG}" and d.at.endswith("Z") and d.reason for d in log)


def test_rejected_raises_and_bad_entries(tmp_path: Path) -> None:
    ledger = ApprovalLedger(tmp_path / "ledger.json")
    ledger.record("plan-x", "rejected", "carol", "too risky")
    with pytest.raises(NotApproved, match="rejected.*carol.*too risky"):
        ledger.require_approved("plan-x")
    with pytest.raises(ApprovalError):
        ledger.record("plan-x", "maybe", "carol")
    with pytest.raises(ApprovalError):
        ledger.record("plan-x", "approved", "")
    f = tmp_path / "approvals.json"
    f.write_text(json.dumps({"approvals": [
        {"plan": "plan-y", "decision": "approved", "by": "dan"},
        {"plan": "plan-z", "decision": "ok", "by": "dan"},
        "nonsense",
    ]}))
    r = approvals_from_file(f, ledger)
    assert [d.plan for d in r.applied] == ["plan-y"] and len(r.errors) == 2
    assert ledger.state("plan-y") == "approved" and ledger.state("plan-z") == "pending"
    assert approvals_from_file(tmp_path / "missing.yaml", ledger).applied == []
    assert set(ledger.plans()) == {"plan-x", "plan-y"}


def test_ledger_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.json"
    ledger = ApprovalLedger(path)
    ledger.record("plan-a", "approved", "ana", "ok")
    before = path.read_bytes()

    def crash(src, dst):  # the process dies between writing the temp file and the rename
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(approvals_mod.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ledger.record("plan-a", "rejected", "bob", "no")
    monkeypatch.undo()
    assert path.read_bytes() == before  # the previous ledger is intact and readable
    assert ledger.state("plan-a") == "approved"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    real_fdopen = os.fdopen

    class Half:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError("disk full")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(approvals_mod.os, "fdopen", lambda fd, *a, **k: Half(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="disk full"):
        ledger.record("plan-a", "rejected", "bob", "no")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert len(ledger.decisions()) == 1
