"""build_org_graph on the demo orgs: concrete edges, externals, traps, failure isolation;
and the `aicolleague graph scan` CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph import model as m
from aicolleague_pipelines.lib.graph.build import OrgGraph, build_org_graph
from aicolleague_pipelines.lib.graph.checks import graph_checks
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.model import Component, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

DEMO = demo_root() / "orgs"


@pytest.fixture(scope="module")
def acme() -> OrgGraph:
    return build_org_graph(read_sfdx_project(DEMO / "acme-prod", "acme-prod"))


def _has(g: OrgGraph, source: str, target: str, kind: str, access: str | None = None) -> bool:
    return any(
        e.source == source and e.target == target and e.kind == kind
        and (access is None or e.access == access)
        for e in g.edges
    )


def _dependents(g: OrgGraph, target: str) -> set[str]:
    return {e.source for e in g.edges if e.target == target and e.kind != m.CHILD_OF}


def test_structural_edges(acme: OrgGraph) -> None:
    assert _has(acme, "CustomField:Contact.SSN__c", "CustomObject:Contact", m.CHILD_OF)
    assert _has(acme, "CustomField:Program__c.Account__c", "CustomObject:Account", m.LOOKUP_TO)
    assert _has(acme, "CustomField:Account.Sub_Region__c", "CustomField:Account.Region__c", m.CONTROLLED_BY)
    assert _has(acme, "CustomField:Account.Region__c", "GlobalValueSet:Region", m.USES_VALUE_SET)
    assert _has(acme, "ApexTrigger:OpportunityTrigger", "CustomObject:Opportunity", m.TRIGGER_ON)
    assert _has(acme, "ApexTrigger:OpportunityRenewalTrigger", "CustomObject:Opportunity", m.TRIGGER_ON)


def test_formula_cross_object_path_resolves_through_lookups(acme: OrgGraph) -> None:
    src = "CustomField:ServiceDelivery__c.Client_Name__c"
    assert _has(acme, src, "CustomField:ServiceDelivery__c.Program__c", m.REFERENCES)
    assert _has(acme, src, "CustomField:Program__c.Account__c", m.REFERENCES)
    assert _has(acme, src, "CustomField:Account.Name", m.REFERENCES)


def test_apex_edges_with_read_write_and_evidence(acme: OrgGraph) -> None:
    assert _has(acme, "ApexClass:ServiceDeliveryTriggerHandler", "ApexClass:BaseTriggerHandler", m.EXTENDS)
    assert _has(acme, "ApexClass:DefaultTaxCalculator", "ApexClass:ITaxCalculator", m.IMPLEMENTS)
    dml = [e for e in acme.edges if e.source == "ApexClass:OpportunityHelper" and e.kind == m.DML]
    assert dml and all(e.access == m.WRITE for e in dml)
    # Evidence points at the file and line.
    assert all(".cls:" in e.evidence for e in dml)
    path, _, line = dml[0].evidence.rpartition(":")
    text = (DEMO / "acme-prod" / path).read_text().splitlines()
    assert 1 <= int(line) <= len(text)
    dyn = [e for e in acme.edges if e.source == "ApexClass:AccountHealthCalculator" and e.dynamic]
    assert dyn, "Database.query with concatenation is recorded as dynamic"


def test_comments_and_strings_are_not_references(acme: OrgGraph) -> None:
    for field in ("Account.Legacy_ERP_Id__c", "Account.Website_Domain__c", "Account.Strategic_Notes__c"):
        key = f"CustomField:{field}"
        if key in acme.nodes:
            users = {s for s in _dependents(acme, key) if s.startswith(("ApexClass:", "ApexTrigger:"))}
            assert not users, f"{key} used by {users}"


def test_external_nodes_for_other_packages_and_standard_fields(acme: OrgGraph) -> None:
    ext = acme.nodes["CustomField:Contact.npe01__Preferred_Email__c"]
    assert ext.external
    assert _has(acme, "CustomField:Contact.npe01__Preferred_Email__c", "CustomObject:Contact", m.CHILD_OF)
    name = acme.nodes["CustomField:Account.Name"]
    assert name.external and name.type == "CustomField"
    # "Where is Account.Industry used?" has answers although the Dependency API has none.
    assert len(_dependents(acme, "CustomField:Account.Industry")) >= 3


def test_permission_sets_grant_with_access(acme: OrgGraph) -> None:
    grants = [e for e in acme.edges if e.source == "PermissionSet:Integration_User_Super" and e.kind == m.GRANTS]
    assert any(e.target == "CustomField:Contact.SSN__c" and e.access == m.WRITE for e in grants)


def test_graph_checks_pass_on_every_demo_org() -> None:
    for org in ("acme-prod", "acme-uat", "globex-prod"):
        g = build_org_graph(read_sfdx_project(DEMO / org, org))
        assert not g.findings
        assert all(c.passed for c in graph_checks(g)), org


def test_a_crashing_parser_becomes_a_finding_and_loses_nothing_else() -> None:
    inv = OrgInventory("x", "sfdx", "62.0", "now", components=[
        Component("CustomObject", "Account"),
        Component("CustomField", "Account.A__c", parent="CustomObject:Account"),
        Component("ApexClass", "Boom", attributes={"body": "class Boom {}"}),
    ])

    def boom(comp, schema):
        raise RuntimeError("parser bug")

    from aicolleague_pipelines.lib.graph.build import _parsers

    table = dict(_parsers())
    table["ApexClass"] = boom
    g = build_org_graph(inv, parsers=table)
    assert _has(g, "CustomField:Account.A__c", "CustomObject:Account", m.CHILD_OF)
    assert len(g.findings) == 1 and "ApexClass:Boom" in g.findings[0].message


def test_checks_catch_case_duplicates_and_dangling_edges() -> None:
    g = OrgGraph("x", {
        "CustomField:Account.Industry": m.Node("CustomField:Account.Industry", "CustomField", "Account.Industry"),
        "CustomField:Account.industry": m.Node("CustomField:Account.industry", "CustomField", "Account.industry"),
    }, [m.Edge("CustomField:Account.Industry", "CustomObject:Account", m.CHILD_OF, "x")])
    outcome = {c.name: c for c in graph_checks(g)}
    assert not outcome["no_dangling_edges"].passed
    assert not outcome["no_case_duplicate_keys"].passed


def test_scan_cli_prints_one_json_edge_per_line() -> None:
    exe = Path(sys.executable).parent / "aicolleague"
    proc = subprocess.run(
        [str(exe), "graph", "scan", str(DEMO / "globex-prod"), "--org", "globex"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    edges = [json.loads(line) for line in lines]
    assert len(edges) > 100
    for e in edges:
        assert {"source", "target", "kind", "evidence"} <= set(e)
        assert ":" in e["source"] and ":" in e["target"] and e["kind"] in m.EDGE_KINDS
    assert any(e["kind"] == "child_of" and e["target"] == "CustomObject:Account" for e in edges)
    assert "globex:" in proc.stderr and "edges" in proc.stderr


def test_scan_cli_on_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "aicolleague"
    proc = subprocess.run([str(exe), "graph", "scan", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
