"""Platform extracts joined to an org graph: synced_to edges, case-insensitive matching,
org scoping, and the whole chain through Dagster and the CLI."""

from __future__ import annotations

from pathlib import Path

from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.checks import graph_checks
from aicolleague_pipelines.lib.graph.model import CHILD_OF, QUERIES, SYNCED_TO, Edge, Node
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.platforms.config import load_platforms
from aicolleague_pipelines.lib.platforms.extract import (
    extract_platform,
    load_extracts,
    save_extract,
)
from aicolleague_pipelines.lib.platforms.lineage import add_platform_lineage, platforms_for_org
from aicolleague_pipelines.lib.platforms.model import PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project


def _acme():
    return build_org_graph(read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod"))


def _toy_extract(org: str | None = "acme-prod") -> PlatformExtract:
    col = "WarehouseColumn:mb/dw.salesforce.account.industry"
    card = "MetabaseCard:mb/7"
    return PlatformExtract(
        "metabase", "mb", "now",
        nodes=[Node(col, "WarehouseColumn", "dw.salesforce.account.industry"),
               Node(card, "MetabaseCard", "7")],
        edges=[Edge(card, col, QUERIES, "card 7 SQL")],
        # Lower case as a warehouse would spell it: matched case-insensitively.
        links=[SalesforceLink(col, "account", "account.industry", "salesforce.account.industry", org)],
    )


def test_links_become_synced_to_edges_on_the_orgs_own_casing() -> None:
    g = _acme()
    counts = add_platform_lineage(g, [_toy_extract()])
    assert counts == {"mb": 2}
    edge = next(e for e in g.edges if e.kind == SYNCED_TO)
    assert edge.target == "CustomField:Account.Industry"
    assert all(c.passed for c in graph_checks(g)), [c.problems for c in graph_checks(g)]
    # A standard field only a platform mentions becomes an external node under its object.
    g2 = _acme()
    ex = _toy_extract()
    ex.links[0] = SalesforceLink(ex.links[0].platform_key, "Account", "Account.SicDesc", "x", "acme-prod")
    add_platform_lineage(g2, [ex])
    assert g2.nodes["CustomField:Account.SicDesc"].external
    assert any(e.source == "CustomField:Account.SicDesc" and e.kind == CHILD_OF for e in g2.edges)


def test_platforms_join_only_the_org_they_mirror() -> None:
    extracts = [_toy_extract("acme-prod"), _toy_extract("globex-prod")]
    assert [e.links[0].org for e in platforms_for_org(extracts, "acme-prod")] == ["acme-prod"]
    g = build_org_graph(read_sfdx_project(demo_root() / "orgs" / "globex-prod", "globex-prod"))
    add_platform_lineage(g, [_toy_extract("acme-prod")])
    assert not any(e.kind == SYNCED_TO for e in g.edges)
    assert "MetabaseCard:mb/7" not in g.nodes


def test_demo_platforms_extract_save_and_load_round_trip(tmp_path: Path) -> None:
    configs = load_platforms()
    assert configs, "the demo ships platform exports"
    for cfg in configs:
        ex = extract_platform(cfg)
        assert ex.nodes and ex.links, cfg.name
        save_extract(tmp_path, ex)
    loaded = {e.instance: e for e in load_extracts(tmp_path)}
    assert set(loaded) == {c.name for c in configs}
    g = _acme()
    add_platform_lineage(g, platforms_for_org(loaded.values(), "acme-prod"))
    synced = [e for e in g.edges if e.kind == SYNCED_TO]
    assert any(e.target == "CustomField:Account.Id" for e in synced)
    assert all(c.passed for c in graph_checks(g))


def test_demo_platforms_through_dagster_reach_impact_answers() -> None:
    import os
    import subprocess
    import sys

    import dagster as dg

    from aicolleague_pipelines.definitions import defs as load_defs
    from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME

    defs = load_defs()
    with dg.instance_for_test() as instance:
        platforms = defs.resolve_job_def("platforms_job").execute_in_process(instance=instance)
        assert platforms.success
        mats = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in platforms.get_asset_materialization_events()}
        assert {k.split("/")[1] for k in mats} == {"custom", "chargebee", "intercom", "metabase"}
        for meta in mats.values():
            assert meta["calls"].value >= 1 and meta["components"].value > 0
            assert "duration_s" in meta
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme-prod"])
        result = defs.resolve_job_def("org_refresh_job").execute_in_process(
            instance=instance, partition_key="acme-prod")
        assert result.success
        graph_meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                          if e.asset_key.to_user_string() == "org_graph")
        assert set(graph_meta["platform_components"].value) == {
            "support-desk", "acme-billing", "acme-support-chat", "acme-metabase"}
        assert "Cross-platform:" in graph_meta["summary"].value
        assert "links into Salesforce fields" in graph_meta["summary"].value

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "aicolleague"), "impact", "--org", "acme-prod",
         "CustomField:Account.Id", "--depth", "1", "--json"],
        capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ChargebeeCustomField:acme-billing/customer.cf_sf_account_id" in proc.stdout
    assert "IntercomAttribute:acme-support-chat/company.salesforce_id" in proc.stdout


def test_impact_of_a_salesforce_field_lists_metabase_cards_and_dashboards(tmp_path: Path) -> None:
    """The issue's acceptance line: impact on Account.Industry reaches Metabase."""
    from aicolleague_pipelines.lib.graph.stores import open_store
    from aicolleague_pipelines.lib.graph import queries

    g = _acme()
    extracts = [extract_platform(c) for c in load_platforms() if c.kind == "metabase"]
    add_platform_lineage(g, extracts)
    with open_store(tmp_path) as store:
        store.load_snapshot("acme-prod", g.nodes.values(), g.edges)
        hits = queries.impact(store, "acme-prod", "CustomField:Account.Industry")
    types = {h.type for h in hits}
    assert {"WarehouseColumn", "MetabaseCard", "MetabaseDashboard"} <= types
    card = next(h for h in hits if h.type == "MetabaseCard")
    assert card.path[0] == "CustomField:Account.Industry"
    assert card.path[1].startswith("WarehouseColumn:acme-metabase/")
