"""Insight agent over the bundled demo orgs (acme-prod, acme-uat, globex-prod)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.agents.insight import (
    HEALTH_CAPS,
    api_release_date,
    cross_org_insight,
    org_insight,
)
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

TODAY = "2026-11-20"
ORGS = ("acme-prod", "acme-uat", "globex-prod")

_GRAPHS: dict = {}


def _graph(name: str):
    if name not in _GRAPHS:
        _GRAPHS[name] = build_org_graph(read_sfdx_project(demo_root() / "orgs" / name, name))
    return _GRAPHS[name]


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "graph")
    for name in ORGS:
        g = _graph(name)
        s.load_snapshot(name, g.nodes.values(), g.edges)
    yield s
    s.close()


def _f(rule: str, severity: str, component: str, org: str = "acme-prod", disc: str = "") -> Finding:
    return Finding(rule, severity, org, component, f"{rule} on {component}", "why", discriminator=disc)


def _findings(org: str = "acme-prod") -> list[Finding]:
    return [
        _f("APEX-SOQL-IN-LOOP", "high", "ApexClass:OpportunityHelper", org),
        _f("APEX-DML-IN-LOOP", "high", "ApexClass:OpportunityHelper", org),
        _f("SEC-MODIFY-ALL-DATA", "critical", "PermissionSet:Integration_User_Super", org),
        _f("META-FIELD-UNUSED", "low", "CustomField:Account.Legacy_ERP_Id__c", org),
        _f("AUTOMATION-FLOW-AND-TRIGGER", "medium", "CustomObject:Opportunity", org),
        _f("APEX-OLD-API-VERSION", "medium", "ApexClass:LegacyReportExporter", org),
        _f("META-OBJECT-NO-DESCRIPTION", "info", "CustomObject:Client_Onboarding_Checklist__c", org),
    ]


def test_hotspots_types_and_account_near_top(store) -> None:
    ins = org_insight(store, "acme-prod", _findings(), today=TODAY, top=10)
    pr_keys = [h.key for h in ins.hotspots_pagerank]
    dep_keys = [h.key for h in ins.hotspots_dependents]
    assert "CustomObject:Account" in pr_keys[:3]
    assert dep_keys[0] == "CustomObject:Account"  # the most depended-on component of acme
    assert len(pr_keys) == len(dep_keys) == 10
    nodes = {n.key: n for n in store.nodes("acme-prod")}
    for h in [*ins.hotspots_pagerank, *ins.hotspots_dependents]:
        assert not nodes[h.key].external and h.type == nodes[h.key].type
    acc = next(h for h in ins.hotspots_dependents if h.key == "CustomObject:Account")
    idx = store.graph_index("acme-prod")
    assert acc.dependents == idx.closure_size("CustomObject:Account") > acc.direct_dependents > 0
    # sorted
    assert [h.dependents for h in ins.hotspots_dependents] == sorted(
        (h.dependents for h in ins.hotspots_dependents), reverse=True
    )


def test_complexity_indicators(store) -> None:
    c = org_insight(store, "acme-prod", [], today=TODAY).complexity
    assert c.types["CustomObject"] >= 10 and c.apex_classes == c.types["ApexClass"]
    assert c.apex_triggers == 4 and c.apex_lines > 0
    assert c.fields_per_object_top5[0] == ("Client_Onboarding_Checklist__c", 36)
    assert c.triggers_per_object["Opportunity"] == 2  # OpportunityTrigger + OpportunityRenewalTrigger
    assert c.flows_per_object["Invoice__c"] == 2  # Invoice_Overdue_Notification + Legacy_Invoice_Reminder
    assert c.flows_by_status == {"Active": 5, "Draft": 1, "Obsolete": 1}
    assert "CustomField:Account.Legacy_ERP_Id__c" in c.unused_examples
    assert "ApexClass:LegacyReportExporter" in c.unused_examples
    assert not any(k.endswith("Test") for k in c.unused_examples)  # test classes left out
    assert c.cycles == 0
    assert c.external_namespaces == {"npe01": 2, "npsp": 1}
    assert 0 < c.without_description < c.description_known
    assert c.api_versions["40.0"] == 1
    # LegacyReportExporter (40.0) is the oldest; 62.0 (Sept 2024) is not 3 years old in Nov 2026
    assert c.api_old_examples[0] == "ApexClass:LegacyReportExporter"
    nodes = {n.key: n for n in store.nodes("acme-prod")}
    assert all(nodes[k].attrs["api_version"] != "62.0" for k in c.api_old_examples)
    assert api_release_date("62.0").isoformat() == "2024-09-01"
    assert api_release_date("40.0").isoformat() == "2017-06-01"
    assert api_release_date(None) is None


def test_health_score_breakdown_and_monotonic(store) -> None:
    scores = []
    base = _findings()
    variants = [
        [],
        base,
        base + [_f("APEX-SOQL-INJECTION", "high", "ApexClass:AccountHealthCalculator")],
        base + [_f("APEX-SOQL-INJECTION", "high", "ApexClass:AccountHealthCalculator"),
                *[_f("SEC-VIEW-ALL-DATA", "critical", "Profile:Acme Support Agent", disc=str(i)) for i in range(20)]],
    ]
    for fs in variants:
        h = org_insight(store, "acme-prod", fs, today=TODAY).health
        assert 0 <= h.score <= 100
        assert [p.name for p in h.parts] == list(HEALTH_CAPS)
        assert sum(h.contributions().values()) == pytest.approx(h.score, abs=1e-9)
        assert h.score == pytest.approx(100 - sum(p.penalty for p in h.parts), abs=1e-9)
        for p in h.parts:
            assert 0 <= p.penalty <= p.cap
        scores.append(h.score)
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    # the same number of findings, more severe → lower
    low = [_f("X", "low", "ApexClass:InvoiceService", disc=str(i)) for i in range(5)]
    crit = [_f("X", "critical", "ApexClass:InvoiceService", disc=str(i)) for i in range(5)]
    assert (org_insight(store, "acme-prod", crit, today=TODAY).health.score
            < org_insight(store, "acme-prod", low, today=TODAY).health.score)
    # findings of another org are ignored
    other = org_insight(store, "acme-prod", _findings("globex-prod"), today=TODAY).health
    assert other.part("findings").penalty == 0


def test_trends_follow_snapshots_and_history(store) -> None:
    g = _graph("acme-uat")
    store.load_snapshot("acme-prod", g.nodes.values(), g.edges)  # a second snapshot of acme-prod
    history = [
        {"timestamp": "2026-11-01T00:00:00+00:00", "findings": 12, "health": 61.5},
        {"created_at": "2026-11-10T00:00:00+00:00", "findings_count": 9, "health_score": 63.0},
    ]
    ins = org_insight(store, "acme-prod", _findings(), today=TODAY, history=history)
    snaps = store.snapshots("acme-prod")
    assert len(ins.trends) == len(snaps) == 2
    assert [t["nodes"] for t in ins.trends] == [s.node_count for s in snaps]
    assert [t["edges"] for t in ins.trends] == [s.edge_count for s in snaps]
    assert ins.trends[0]["types"]["ApexClass"] + 1 == ins.trends[1]["types"]["ApexClass"]  # ChurnRiskScorer
    assert [h["findings"] for h in ins.findings_history] == [12, 9, len(_findings())]
    assert ins.history_point() == {"timestamp": snaps[-1].created_at, "findings": 7, "health": ins.health.score}
    md = ins.to_markdown()
    a0, a1 = ins.trends[0]["types"]["ApexClass"], ins.trends[1]["types"]["ApexClass"]
    assert f"ApexClass {a0} → {a1}" in md
    assert "findings and health" in md


def test_markdown_embeds_png_and_dict_is_json(store) -> None:
    ins = org_insight(store, "acme-prod", _findings(), today=TODAY)
    md = ins.to_markdown()
    assert "![" in md and "](data:image/png;base64,iVBOR" in md  # PNG magic, base64
    assert "Health score" in md and "CustomObject:Account" in md
    d = ins.to_dict()
    text = json.dumps(d)
    assert "base64" not in text
    assert d["health"]["score"] == ins.health.score
    assert d["findings"]["total"] == len(_findings())
    assert "data:image" not in ins.to_markdown(plots=False)


def test_recommendations_cite_existing_keys_and_rank_by_impact(store) -> None:
    fs = _findings() + [_f("X-GHOST", "high", "ApexClass:DoesNotExist")]
    ins = org_insight(store, "acme-prod", fs, today=TODAY)
    recs = ins.recommendations
    assert recs and [r.rank for r in recs] == list(range(1, len(recs) + 1))
    assert [r.impact for r in recs] == sorted((r.impact for r in recs), reverse=True)
    keys = {n.key for n in store.nodes("acme-prod")}
    rule_ids = {f.rule_id for f in fs}
    for r in recs:
        assert r.components or r.other_refs
        assert set(r.components) <= keys
        assert set(r.rule_ids) <= rule_ids
    # high findings on a used Apex class outrank a medium finding on the same kind of component
    by_comp = {r.components[0]: r for r in recs if r.kind == "findings" and r.components}
    assert by_comp["ApexClass:OpportunityHelper"].rule_ids == ["APEX-DML-IN-LOOP", "APEX-SOQL-IN-LOOP"]
    assert by_comp["ApexClass:OpportunityHelper"].rank < by_comp["ApexClass:LegacyReportExporter"].rank
    ghost = [r for r in recs if "ApexClass:DoesNotExist" in r.other_refs]
    assert ghost and not ghost[0].components
    kinds = {r.kind for r in recs}
    assert {"unused", "old_api", "descriptions"} <= kinds


PLANTED_ONLY_PROD = {"CustomField:Opportunity.Competitor__c"}
PLANTED_ONLY_UAT = {"CustomField:Account.Churn_Risk__c", "ApexClass:ChurnRiskScorer"}
PLANTED_DIFFERING = {
    "ApexClass:InvoiceService",  # body changed
    "ValidationRule:Account.Tax_Id_Format",  # formula and message changed
    "ApexClass:ProgramController",  # apiVersion 62.0 → 63.0
    # Also planted (demo/README.md, "acme-uat: drift from acme-prod"):
    "Flow:Invoice_Overdue_Notification",  # Active in prod, Draft in UAT
    "Layout:Opportunity-Opportunity Layout",  # Competitor__c removed from the layout
}


def test_cross_org_drift_is_exactly_the_planted_drift(store) -> None:
    per = {o: org_insight(store, o, _findings(o), today=TODAY) for o in ORGS}
    x = cross_org_insight(store, list(ORGS), per)
    assert [(p.a, p.b) for p in x.pairs] == [
        ("acme-prod", "acme-uat"), ("acme-prod", "globex-prod"), ("acme-uat", "globex-prod")
    ]
    p = x.pair("acme-prod", "acme-uat")
    assert set(p.only_in_a) == PLANTED_ONLY_PROD
    assert set(p.only_in_b) == PLANTED_ONLY_UAT
    assert set(p.differing) == PLANTED_DIFFERING
    assert p.differing["ApexClass:ProgramController"]["api_version"] == ["62.0", "63.0"]
    assert p.differing["Flow:Invoice_Overdue_Notification"]["status"] == ["Active", "Draft"]
    assert set(p.differing["ApexClass:InvoiceService"]) == {"content_hash"}
    assert p.same > 150
    rev = x.pair("acme-uat", "acme-prod")
    assert set(rev.only_in_a) == PLANTED_ONLY_UAT
    assert rev.differing["ApexClass:ProgramController"]["api_version"] == ["63.0", "62.0"]
    # different companies drift a lot
    g = x.pair("acme-prod", "globex-prod")
    assert len(g.only_in_a) > 100 and "CustomObject:Subscription__c" in g.only_in_b
    # outputs
    d = x.to_dict()
    json.dumps(d)
    assert d["pairs"][0]["counts"] == {"only_in_a": 1, "only_in_b": 2, "differing": 5, "same": p.same}
    assert all(len(pp["examples"]["only_in_a"]) <= 20 for pp in d["pairs"])
    assert set(d["health"]) == set(ORGS)
    md = x.to_markdown()
    assert "](data:image/png;base64," in md
    for o in ORGS:
        assert re.search(rf"\| `{o}` \| \*\*{per[o].health.score:g}\*\* \|", md)
    assert "api_version: 62.0 → 63.0" in md


def test_cross_org_custom_pairs(store) -> None:
    per = {o: org_insight(store, o, [], today=TODAY) for o in ("acme-prod", "acme-uat")}
    x = cross_org_insight(store, ["acme-prod", "acme-uat"], per, pairs=[("acme-uat", "acme-prod")])
    assert len(x.pairs) == 1 and (x.pairs[0].a, x.pairs[0].b) == ("acme-uat", "acme-prod")
    assert set(x.pairs[0].only_in_a) == PLANTED_ONLY_UAT


def test_platform_nodes_do_not_dilute_the_health_score(tmp_path) -> None:
    """Joining Metabase/warehouse nodes into an org graph leaves its findings density alone."""
    from aicolleague_pipelines.lib.agents.insight import org_insight
    from aicolleague_pipelines.lib.agents.model import Finding
    from aicolleague_pipelines.lib.graph.build import build_org_graph
    from aicolleague_pipelines.lib.graph.model import Node
    from aicolleague_pipelines.lib.graph.stores import open_store
    from aicolleague_pipelines.lib.orgs import demo_root
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

    g = build_org_graph(read_sfdx_project(demo_root() / "orgs" / "globex-prod", "globex-prod"))
    fs = [Finding("R", "high", "plain", k, "m", "e", discriminator=str(i))
          for i, k in enumerate(list(g.nodes)[:20])]
    with open_store(tmp_path) as store:
        store.load_snapshot("plain", g.nodes.values(), g.edges)
        for n in range(300):
            g.nodes[f"WarehouseColumn:mb/dw.t.c{n}"] = Node(f"WarehouseColumn:mb/dw.t.c{n}", "WarehouseColumn", f"c{n}")
        store.load_snapshot("joined", g.nodes.values(), g.edges)
        a = org_insight(store, "plain", fs, today="2026-11-25")
        b = org_insight(store, "joined", [Finding(f.rule_id, f.severity, "joined", f.component, f.message,
                                                  f.explanation, discriminator=f.discriminator) for f in fs],
                        today="2026-11-25")
    assert a.health.part("findings").penalty == b.health.part("findings").penalty
