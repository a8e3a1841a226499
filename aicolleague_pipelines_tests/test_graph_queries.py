"""Store-agnostic queries: deployment boundary, compare across orgs, analytics, suggestions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph import queries as q
from aicolleague_pipelines.lib.graph.model import CALLS, REFERENCES, Edge, Node
from aicolleague_pipelines.lib.graph.store import UnknownComponentError, UnknownOrgError
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines_tests.test_graph_index import (
    AMOUNT,
    INDUSTRY,
    NPE,
    SVC,
    TRG,
    UTIL,
    small_graph,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBGraphStore]:
    s = DuckDBGraphStore(tmp_path / "graph.duckdb")
    nodes, edges = small_graph()
    s.load_snapshot("acme", nodes, edges, meta={"api_version": "61.0"})
    yield s
    s.close()


EXPECTED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Package xmlns="http://soap.sforce.com/2006/04/metadata">
    <types>
        <members>InvoiceService</members>
        <members>Util</members>
        <name>ApexClass</name>
    </types>
    <types>
        <members>InvoiceTrigger</members>
        <name>ApexTrigger</name>
    </types>
    <types>
        <members>Invoice__c.Amount__c</members>
        <name>CustomField</name>
    </types>
    <types>
        <members>Account</members>
        <members>Invoice__c</members>
        <name>CustomObject</name>
    </types>
    <version>61.0</version>
</Package>
"""


def test_deployment_boundary_package_xml(store: DuckDBGraphStore) -> None:
    members, xml = q.deployment_boundary(store, "acme", [TRG])
    assert xml == EXPECTED_XML
    assert members == {
        "ApexClass": [SVC, UTIL],
        "ApexTrigger": [TRG],
        "CustomField": [AMOUNT],
        "CustomObject": ["CustomObject:Account", "CustomObject:Invoice__c"],
    }
    b = q.deployment_boundary(store, "acme", [TRG], api_version="62.0")
    assert b.prerequisites == [NPE]
    assert b.not_deployed == [INDUSTRY]
    assert b.unsupported == []
    assert "<version>62.0</version>" in b.package_xml
    # several roots, escaped names
    b2 = q.deployment_boundary(store, "acme", ["Layout:Invoice__c-Invoice Layout", "PermissionSet:Finance"])
    assert b2.members["Layout"] == ["Layout:Invoice__c-Invoice Layout"]
    assert "<members>Invoice__c-Invoice Layout</members>" in b2.package_xml
    assert q.package_xml({"ApexClass": ["A&B<"]}, "60.0").count("<members>A&amp;B&lt;</members>") == 1
    with pytest.raises(UnknownComponentError):
        q.deployment_boundary(store, "acme", ["ApexTrigger:InvoiceTriger"])


def test_traversal_queries(store: DuckDBGraphStore) -> None:
    assert [h.key for h in q.impact(store, "acme", AMOUNT, limit=4)] == sorted(
        [SVC, "Flow:Close_Invoice", "Layout:Invoice__c-Invoice Layout", "PermissionSet:Finance"]
    )
    assert {h.key for h in q.dependencies(store, "acme", SVC, depth=1)} == {AMOUNT, INDUSTRY, NPE, UTIL}
    assert [e.evidence for e in q.where_used(store, "acme", UTIL)] == ["classes/InvoiceService.cls:30"]
    assert q.suggest(store, "acme", "ApexClass:InvoiceServce")[0] == SVC
    with pytest.raises(UnknownComponentError) as ei:
        q.impact(store, "acme", "ApexClass:Utill")
    assert UTIL in ei.value.suggestions


def test_analytics(store: DuckDBGraphStore) -> None:
    assert q.cycles(store, "acme") == [sorted([SVC, UTIL]), ["ApexClass:Recursive"]]
    assert q.unused(store, "acme") == ["ApexClass:Orphan", "ApexClass:Recursive", "CustomField:Invoice__c.Account__c"]
    assert q.unused(store, "acme", types=["Flow"]) == ["Flow:Close_Invoice"]
    top = q.top_ranked(store, "acme", n=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_compare_component_across_orgs(store: DuckDBGraphStore) -> None:
    store.load_snapshot(
        "acme-uat",
        [
            Node(SVC, "ApexClass", "InvoiceService", attrs={"api_version": "62.0", "status": "Active"}),
            Node(UTIL, "ApexClass", "Util"),
            Node("ApexClass:New", "ApexClass", "New"),
        ],
        [Edge(UTIL, SVC, CALLS, "u:1"), Edge("ApexClass:New", SVC, REFERENCES, "n:1"), Edge("ApexClass:New", UTIL, CALLS, "n:2")],
    )
    c = q.compare_component(store, ["acme", "acme-uat"], SVC)
    assert c.present_in == ["acme", "acme-uat"] and c.missing_in == []
    a, u = c.orgs["acme"], c.orgs["acme-uat"]
    assert (a.api_version, u.api_version) == ("61.0", "62.0")
    assert a.status == u.status == "Active"
    assert a.attrs_hash != u.attrs_hash
    assert c.differences == {"api_version": {"acme": "61.0", "acme-uat": "62.0"}}
    assert (a.dependents, a.impacted) == (2, 2)  # Util, InvoiceTrigger
    assert (u.dependents, u.impacted) == (2, 2)  # Util, New
    c2 = q.compare_component(store, ["acme", "acme-uat"], TRG)
    assert c2.present_in == ["acme"] and c2.missing_in == ["acme-uat"] and c2.differences == {}
    flow = q.compare_component(store, ["acme"], "Flow:Close_Invoice")
    assert flow.orgs["acme"].status == "active"
    with pytest.raises(UnknownComponentError):
        q.compare_component(store, ["acme", "acme-uat"], "ApexClass:NowhereAtAll")
    with pytest.raises(UnknownOrgError):
        q.compare_component(store, ["acme", "acme-qa"], SVC)
