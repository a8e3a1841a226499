"""The query commands (impact, deps, where-used, boundary) against a real embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

EXE = str(Path(sys.executable).parent / "aicolleague")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    graph = build_org_graph(read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod"))
    with open_store(data) as store:
        store.load_snapshot("acme-prod", graph.nodes.values(), graph.edges, meta={"api_version": "62.0"})
    return data


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env["AICOLLEAGUE_HOME"] = str(home)
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_where_used_lists_direct_uses_with_evidence(home: Path) -> None:
    proc = _cli(home, "where-used", "--org", "acme-prod", "CustomField:Account.Industry", "--json")
    assert proc.returncode == 0, proc.stderr
    uses = [json.loads(line) for line in proc.stdout.splitlines()]
    sources = {u["source"] for u in uses}
    assert "ApexClass:AccountHealthCalculator" in sources
    assert all(u["target"] == "CustomField:Account.Industry" for u in uses)
    assert any(u["evidence"].endswith(".cls:7") for u in uses)


def test_impact_with_depth_and_paths(home: Path) -> None:
    proc = _cli(home, "impact", "--org", "acme-prod", "CustomField:Account.Industry", "--depth", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert hits and max(h["depth"] for h in hits) <= 2
    test_hit = next(h for h in hits if h["key"] == "ApexClass:AccountHealthCalculatorTest")
    assert test_hit["depth"] == 2
    assert test_hit["path"] == [
        "CustomField:Account.Industry", "ApexClass:AccountHealthCalculator",
        "ApexClass:AccountHealthCalculatorTest",
    ]
    table = _cli(home, "impact", "--org", "acme-prod", "CustomField:Account.Industry")
    assert "AccountHealthCalculatorTest" in table.stdout and "component(s)" in table.stdout


def test_deps_and_boundary_package_xml(home: Path, tmp_path: Path) -> None:
    proc = _cli(home, "deps", "--org", "acme-prod", "ApexClass:InvoiceService", "--json")
    deps = {json.loads(line)["key"] for line in proc.stdout.splitlines()}
    assert "ApexClass:ITaxCalculator" in deps and "CustomObject:Invoice__c" in deps
    out = tmp_path / "package.xml"
    proc = _cli(home, "boundary", "--org", "acme-prod", "ApexClass:InvoiceService", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    xml = out.read_text()
    assert "<members>InvoiceService</members>" in xml and "<version>62.0</version>" in xml
    assert "<members>Invoice__c.Amount__c</members>" in xml


def test_unknown_component_and_org_fail_with_suggestions(home: Path) -> None:
    proc = _cli(home, "impact", "--org", "acme-prod", "CustomField:Account.Industy")
    assert proc.returncode == 2
    assert "did you mean" in proc.stderr and "CustomField:Account.Industry" in proc.stderr
    proc = _cli(home, "where-used", "--org", "nope", "CustomObject:Account")
    assert proc.returncode == 2 and "acme-prod" in proc.stderr


def test_unused_cycles_and_compare(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(data) as store:
        for org in ("acme-prod", "acme-uat"):
            g = build_org_graph(read_sfdx_project(demo_root() / "orgs" / org, org))
            store.load_snapshot(org, g.nodes.values(), g.edges)
    proc = _cli(data, "unused", "--org", "acme-prod", "--type", "CustomField", "--json")
    unused = {json.loads(line)["key"] for line in proc.stdout.splitlines()}
    # Mentioned only in comments and strings: still unused.
    assert "CustomField:Account.Legacy_ERP_Id__c" in unused
    assert "CustomField:Account.Industry" not in unused
    proc = _cli(data, "unused", "--org", "acme-prod", "--type", "ApexClass", "--json")
    assert "ApexClass:LegacyReportExporter" in proc.stdout
    proc = _cli(data, "cycles", "--org", "acme-prod")
    assert proc.returncode == 0 and "cycle(s)" in proc.stdout
    # Drift between prod and its sandbox: the changed Apex body and the UAT-only field.
    proc = _cli(data, "compare", "ApexClass:InvoiceService", "--json")
    result = json.loads(proc.stdout)
    assert set(result["orgs"]) == {"acme-prod", "acme-uat"}
    assert "content_hash" in result["differences"]
    proc = _cli(data, "compare", "CustomField:Account.Churn_Risk__c")
    assert "acme-prod            absent" in proc.stdout
    proc = _cli(data, "compare", "CustomField:Account.Industry")
    assert "identical where present" in proc.stdout
