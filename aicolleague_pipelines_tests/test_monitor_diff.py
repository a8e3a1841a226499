"""Snapshot diffs: added/removed/modified components, edges, breaking changes, audit trail."""

from __future__ import annotations

import json

import pytest

from aicolleague_pipelines.lib.agents.diff import (
    FIELD_TYPE_CHANGED,
    FLOW_DEACTIVATED,
    REMOVED_STILL_REFERENCED,
    ChangeSet,
    attach_audit,
    diff_snapshots,
)
from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store import GraphStoreError
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines.lib.salesforce.model import AuditEvent


def _n(key: str, external: bool = False, **attrs) -> Node:
    type_, _, name = key.partition(":")
    return Node(key, type_, name, external=external, attrs=attrs)


def _e(src: str, dst: str, kind: str = "references") -> Edge:
    return Edge(src, dst, kind, "test")


def _v1() -> tuple[list[Node], list[Edge]]:
    nodes = [
        _n("CustomObject:Account", content_hash="o1"),
        _n("CustomField:Account.Region__c", content_hash="f1", data_type="Text",
           last_modified_by="Ada", last_modified_date="2025-03-01T10:00:00Z"),
        _n("CustomField:Account.Tier__c", content_hash="t1", data_type="Picklist"),
        _n("CustomField:Account.Old__c", content_hash="x1", data_type="Text"),
        _n("ApexClass:RegionService", content_hash="a1", api_version="58.0"),
        _n("Flow:Route_Leads", content_hash="fl1", status="Active", active=True),
        _n("Flow:Caller_Flow", content_hash="fc1", status="Active", active=True),
        _n("Layout:Account-Main", content_hash="l1"),
        _n("WarehouseColumn:mb/dwh.public.accounts.region", content_hash="w1"),
        _n("MetabaseCard:mb/42", content_hash="c1"),
        _n("MetabaseDashboard:mb/7", content_hash="d1"),
        _n("ApexClass:Unrelated", content_hash="u1", api_version="58.0"),
    ]
    edges = [
        _e("CustomField:Account.Region__c", "CustomObject:Account", "child_of"),
        _e("CustomField:Account.Tier__c", "CustomObject:Account", "child_of"),
        _e("CustomField:Account.Old__c", "CustomObject:Account", "child_of"),
        _e("ApexClass:RegionService", "CustomField:Account.Region__c", "queries"),
        _e("Layout:Account-Main", "CustomField:Account.Region__c", "shows"),
        _e("Layout:Account-Main", "CustomField:Account.Tier__c", "shows"),
        _e("WarehouseColumn:mb/dwh.public.accounts.region", "CustomField:Account.Region__c", "synced_to"),
        _e("MetabaseCard:mb/42", "WarehouseColumn:mb/dwh.public.accounts.region", "queries"),
        _e("MetabaseDashboard:mb/7", "MetabaseCard:mb/42", "shows"),
        _e("Flow:Caller_Flow", "Flow:Route_Leads", "subflow"),
        _e("Flow:Route_Leads", "CustomField:Account.Tier__c", "references"),
    ]
    return nodes, edges


def _v2() -> tuple[list[Node], list[Edge]]:
    """Region__c removed (still referenced → external node), Old__c removed cleanly, Tier__c
    changed type, Route_Leads deactivated, RegionService's body changed, New__c added."""
    nodes = [
        _n("CustomObject:Account", content_hash="o1"),
        _n("CustomField:Account.Region__c", external=True),
        _n("CustomField:Account.Tier__c", content_hash="t2", data_type="Text",
           last_modified_by="Grace", last_modified_date="2025-03-02T09:00:00Z"),
        _n("CustomField:Account.New__c", content_hash="n1", data_type="Number"),
        _n("ApexClass:RegionService", content_hash="a2", api_version="61.0"),
        _n("Flow:Route_Leads", content_hash="fl2", status="Obsolete", active=False),
        _n("Flow:Caller_Flow", content_hash="fc1", status="Active", active=True),
        _n("Layout:Account-Main", content_hash="l1", last_modified_by="Grace"),  # who/when only
        _n("WarehouseColumn:mb/dwh.public.accounts.region", content_hash="w1"),
        _n("MetabaseCard:mb/42", content_hash="c1"),
        _n("MetabaseDashboard:mb/7", content_hash="d1"),
        _n("ApexClass:Unrelated", content_hash="u1", api_version="58.0"),
    ]
    edges = [
        _e("CustomField:Account.Tier__c", "CustomObject:Account", "child_of"),
        _e("CustomField:Account.New__c", "CustomObject:Account", "child_of"),
        _e("ApexClass:RegionService", "CustomField:Account.Region__c", "queries"),
        _e("Layout:Account-Main", "CustomField:Account.Region__c", "shows"),
        _e("Layout:Account-Main", "CustomField:Account.Tier__c", "shows"),
        _e("WarehouseColumn:mb/dwh.public.accounts.region", "CustomField:Account.Region__c", "synced_to"),
        _e("MetabaseCard:mb/42", "WarehouseColumn:mb/dwh.public.accounts.region", "queries"),
        _e("MetabaseDashboard:mb/7", "MetabaseCard:mb/42", "shows"),
        _e("Flow:Caller_Flow", "Flow:Route_Leads", "subflow"),
        _e("Flow:Route_Leads", "CustomField:Account.Tier__c", "references"),
    ]
    return nodes, edges


@pytest.fixture
def store():
    s = DuckDBGraphStore(":memory:")
    yield s
    s.close()


def test_baseline_single_snapshot(store) -> None:
    store.load_snapshot("acme", *_v1())
    cs = diff_snapshots(store, "acme")
    assert cs.baseline and cs.old_version is None and cs.new_version == 1
    assert len(cs.added) == 12 and not cs.removed and not cs.modified and not cs.breaking
    assert len(cs.edges_added) == 11
    assert "baseline snapshot v1" in cs.to_markdown()


def test_added_removed_modified_and_edges(store) -> None:
    store.load_snapshot("acme", *_v1())
    store.load_snapshot("acme", *_v2())
    cs = diff_snapshots(store, "acme")
    assert (cs.old_version, cs.new_version, cs.baseline) == (1, 2, False)
    assert [c.key for c in cs.added] == ["CustomField:Account.New__c"]
    assert [c.key for c in cs.removed] == ["CustomField:Account.Old__c", "CustomField:Account.Region__c"]
    removed = {c.key: c for c in cs.removed}
    assert removed["CustomField:Account.Region__c"].last_modified_by == "Ada"  # from the old node
    mod = {c.key: c for c in cs.modified}
    assert set(mod) == {"CustomField:Account.Tier__c", "ApexClass:RegionService", "Flow:Route_Leads"}
    assert mod["CustomField:Account.Tier__c"].changed["data_type"] == ["Picklist", "Text"]
    assert mod["CustomField:Account.Tier__c"].changed_attrs == ["content_hash", "data_type"]
    assert mod["CustomField:Account.Tier__c"].last_modified_by == "Grace"
    assert mod["ApexClass:RegionService"].changed_attrs == ["api_version", "content_hash"]
    assert set(mod["Flow:Route_Leads"].changed_attrs) == {"active", "content_hash", "status"}
    # Who/when alone is not a modification.
    assert "Layout:Account-Main" not in mod
    assert cs.edges_added == [("CustomField:Account.New__c", "CustomObject:Account", "child_of")]
    assert sorted(cs.edges_removed) == [
        ("CustomField:Account.Old__c", "CustomObject:Account", "child_of"),
        ("CustomField:Account.Region__c", "CustomObject:Account", "child_of"),
    ]
    assert cs.edge_kind_counts() == {"child_of": {"added": 1, "removed": 2}}


def test_breaking_changes_with_salesforce_and_platform_dependents(store) -> None:
    store.load_snapshot("acme", *_v1())
    store.load_snapshot("acme", *_v2())
    cs = diff_snapshots(store, "acme")
    br = {b.key: b for b in cs.breaking}
    assert set(br) == {"CustomField:Account.Region__c", "CustomField:Account.Tier__c", "Flow:Route_Leads"}

    region = br["CustomField:Account.Region__c"]
    assert region.reason == REMOVED_STILL_REFERENCED
    assert region.referenced_by == [
        "ApexClass:RegionService", "Layout:Account-Main", "WarehouseColumn:mb/dwh.public.accounts.region",
    ]
    assert set(region.salesforce_dependents) == {"ApexClass:RegionService", "Layout:Account-Main"}
    assert region.platform_dependents == [
        "WarehouseColumn:mb/dwh.public.accounts.region", "MetabaseCard:mb/42", "MetabaseDashboard:mb/7",
    ]
    assert not region.truncated

    tier = br["CustomField:Account.Tier__c"]
    assert tier.reason == FIELD_TYPE_CHANGED and "Picklist to Text" in tier.detail
    assert set(tier.dependents) == {"Layout:Account-Main", "Flow:Route_Leads", "Flow:Caller_Flow"}

    flow = br["Flow:Route_Leads"]
    assert flow.reason == FLOW_DEACTIVATED and flow.dependents == ["Flow:Caller_Flow"]

    # A clean removal (nobody references it any more) and a body-only change are not breaking.
    assert "CustomField:Account.Old__c" not in br and "ApexClass:RegionService" not in br


def test_removed_component_referenced_by_dangling_edge() -> None:
    """A removed key referenced but absent from the new node set (a backend that lets edges
    dangle) is still found: the check reads edges, not the external flag."""

    class Loose(DuckDBGraphStore):
        def nodes(self, org, version=None):
            return [n for n in super().nodes(org, version) if not n.external]

    s = Loose(":memory:")
    try:
        s.load_snapshot("acme", *_v1())
        s.load_snapshot("acme", *_v2())
        cs = diff_snapshots(s, "acme")
        assert "CustomField:Account.Region__c" in {b.key for b in cs.breaking}
    finally:
        s.close()


def test_impact_limit_truncates(store) -> None:
    hub = "CustomObject:Hub__c"
    v1 = [_n(hub, content_hash="h")] + [_n(f"ApexClass:C{i}", content_hash="c") for i in range(30)]
    e1 = [_e(f"ApexClass:C{i}", hub) for i in range(30)]
    store.load_snapshot("acme", v1, e1)
    v2 = [_n(hub, external=True)] + v1[1:]
    store.load_snapshot("acme", v2, e1)
    cs = diff_snapshots(store, "acme", impact_limit=10)
    (b,) = cs.breaking
    assert b.truncated and len(b.referenced_by) == 30 and len(b.dependents) == 30  # direct refs kept
    cs = diff_snapshots(store, "acme")
    assert not cs.breaking[0].truncated


def test_explicit_versions_and_errors(store) -> None:
    store.load_snapshot("acme", *_v1())
    store.load_snapshot("acme", *_v2())
    store.load_snapshot("acme", *_v2())
    assert diff_snapshots(store, "acme").is_empty  # v2 → v3: nothing changed
    cs = diff_snapshots(store, "acme", old_version=1, new_version=3)
    assert len(cs.breaking) == 3
    with pytest.raises(GraphStoreError, match="no snapshot version 9"):
        diff_snapshots(store, "acme", old_version=9)


def test_markdown_and_dict(store) -> None:
    store.load_snapshot("acme", *_v1())
    store.load_snapshot("acme", *_v2())
    cs = diff_snapshots(store, "acme")
    md = cs.to_markdown()
    assert "v1 → v2" in md and "### Breaking changes" in md and "| Component | Type | Changed | By | When |" in md
    assert "`CustomField:Account.Tier__c`" in md and "Grace" in md
    d = json.loads(json.dumps(cs.to_dict()))
    assert d["summary"] == {"added": 1, "removed": 2, "modified": 3, "edges_added": 1, "edges_removed": 2, "breaking": 3}
    assert d["edges"]["by_kind"]["child_of"] == {"added": 1, "removed": 2}
    assert {b["reason"] for b in d["breaking"]} == {REMOVED_STILL_REFERENCED, FIELD_TYPE_CHANGED, FLOW_DEACTIVATED}
    assert isinstance(cs, ChangeSet)


def test_attach_audit_best_effort(store) -> None:
    store.load_snapshot("acme", *_v1())
    store.load_snapshot("acme", *_v2())
    cs = diff_snapshots(store, "acme")
    events = [
        AuditEvent("1", "2025-03-02T08:59:00Z", "deletedCF", "Customize Accounts",
                   "Deleted custom field Region__c from Account", created_by="ada@acme.test"),
        AuditEvent("2", "2025-03-02T09:00:00Z", "changedCFType", "Customize Accounts",
                   "Changed Account field Tier from Picklist to Text", created_by="grace@acme.test"),
        AuditEvent("3", "2025-03-02T09:05:00Z", "activatedinteractiondefversion", "Flows",
                   'Deactivated flow version #3 "Route Leads"', created_by="grace@acme.test"),
        AuditEvent("4", "2025-03-02T09:06:00Z", "changedApexClass", "Apex Class",
                   "Changed Apex Class code RegionService", created_by="lin@acme.test"),
        AuditEvent("5", "2025-03-02T09:07:00Z", "loginas", "Manage Users",
                   "Logged in as a user (Tier support)", created_by="ops@acme.test"),
        AuditEvent("6", "2025-01-01T00:00:00Z", "changedApexClass", "Apex Class",
                   "Changed Apex Class code RegionService", created_by="old@acme.test"),
    ]
    n = attach_audit(cs, events, since="2025-03-01")
    by = {c.key: c for c in cs.changes}
    assert [a["id"] for a in by["CustomField:Account.Region__c"].audit] == ["1"]
    assert [a["id"] for a in by["CustomField:Account.Tier__c"].audit] == ["2"]
    assert [a["id"] for a in by["Flow:Route_Leads"].audit] == ["3"]
    assert [a["id"] for a in by["ApexClass:RegionService"].audit] == ["4"]
    assert by["ApexClass:RegionService"].last_modified_by == "lin@acme.test"  # filled from audit
    assert by["CustomField:Account.Tier__c"].last_modified_by == "Grace"  # node attr wins
    assert by["CustomField:Account.New__c"].audit == [] and by["CustomField:Account.Old__c"].audit == []
    assert n == 4
