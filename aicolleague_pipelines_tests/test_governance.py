"""Governance: sensitive fields, access, lineage, audit coverage and the readiness score —
on a small hand-built org, on the bundled demo orgs, and through Dagster."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from aicolleague_pipelines.lib.agents.governance import (
    FRAMEWORKS,
    INDICATORS,
    audit_coverage,
    classification_drift,
    classify_field,
    framework_scores,
    governance_overview_markdown,
    org_governance,
    update_audit_ledger,
)
from aicolleague_pipelines.lib.graph.build import build_org_graph, node_for
from aicolleague_pipelines.lib.graph.model import REFERENCES, Edge, Node
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.platforms.config import load_platforms
from aicolleague_pipelines.lib.platforms.extract import extract_platform
from aicolleague_pipelines.lib.platforms.lineage import add_platform_lineage, platforms_for_org
from aicolleague_pipelines.lib.platforms.model import PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.salesforce.extract import read_recorded_audit_trail
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, Component, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

TODAY = "2026-11-25"


# --- a small org built by hand ---------------------------------------------------------------------
def _field(name: str, **attrs) -> Component:
    obj = name.split(".")[0]
    return Component("CustomField", name, parent=f"CustomObject:{obj}", source=f"objects/{name}.field-meta.xml",
                     attributes={"custom": name.endswith("__c"), **attrs})


def _holder(type_: str, name: str, perms: list[str], fields: dict[str, str]) -> Component:
    md = {
        "userPermissions": [{"name": p, "enabled": "true"} for p in perms],
        "fieldPermissions": [{"field": f, "readable": "true", "editable": "true" if a == "edit" else "false"}
                             for f, a in fields.items()],
    }
    return Component(type_, name, source=f"{type_}/{name}", attributes={"metadata": md})


def _small_inventory() -> OrgInventory:
    comps = [
        Component("CustomObject", "Contact", attributes={"object_kind": "standard", "custom": False}),
        Component("CustomObject", "Account", attributes={"object_kind": "standard", "custom": False}),
        _field("Contact.SSN__c", data_type="EncryptedText", compliance_group="PII;GDPR",
               security_classification="Restricted", encrypted=True, label="SSN"),
        _field("Contact.Medical_Condition__c", data_type="Text", label="Medical Condition"),
        _field("Contact.Salary__c", data_type="Currency", security_classification="Confidential",
               encrypted=True, encryption_scheme="DeterministicEncryption", label="Salary"),
        _field("Contact.Work_Email__c", data_type="Email", label="Work Email"),
        _field("Contact.Nickname__c", data_type="Text", security_classification="Public", label="Nickname"),
        _field("Account.Health_Score__c", data_type="Number", label="Health Score"),  # customer health
        _holder("PermissionSet", "Support", ["ViewAllData"], {"Contact.Medical_Condition__c": "read"}),
        _holder("PermissionSet", "Integration", ["ApiEnabled", "ApiUserOnly", "ModifyAllData"],
                {"Contact.SSN__c": "edit"}),
        _holder("PermissionSet", "HR", [], {"Contact.Salary__c": "read"}),
        _holder("Profile", "Admin", ["ModifyAllData", "ViewAllData", "ApiEnabled"], {"Contact.SSN__c": "edit"}),
        Component("Report", "HR/Payroll", source="reports/HR/Payroll.report-meta.xml", attributes={
            "metadata": {"reportType": "ContactList", "columns": [{"field": "Contact.Salary__c"}]}}),
        Component("EmailTemplate", "Mail/Welcome", source="email/Mail/Welcome.email", attributes={
            "body": "Hello, your address is {!Contact.Work_Email__c}", "metadata": {"type": "text"}}),
    ]
    return OrgInventory("small", "sfdx", "62.0", "2026-11-25T00:00:00Z", comps)


def _metabase() -> PlatformExtract:
    col = "WarehouseColumn:mb/wh.sf.contact.medical_condition__c"
    card, dash = "MetabaseCard:mb/7", "MetabaseDashboard:mb/3"
    return PlatformExtract(
        "metabase", "mb", "2026-11-25T00:00:00Z",
        nodes=[Node(col, "WarehouseColumn", col.split(":", 1)[1]), Node(card, "MetabaseCard", "mb/7"),
               Node(dash, "MetabaseDashboard", "mb/3")],
        edges=[Edge(card, col, REFERENCES, "card 7 sql"), Edge(dash, card, REFERENCES, "dashboard 3")],
        links=[SalesforceLink(col, "Contact", "Contact.Medical_Condition__c", "salesforce_mapping", org="small")],
    )


@pytest.fixture
def small_store(tmp_path: Path):
    inv = _small_inventory()
    graph = build_org_graph(inv)
    add_platform_lineage(graph, [_metabase()])
    store = open_store(tmp_path / "g")
    store.load_snapshot("small", graph.nodes.values(), graph.edges)
    yield store, inv
    store.close()


def _events(*days: str, action: str = "changedApexClass") -> list[AuditEvent]:
    return [AuditEvent(f"0Ym{i:012d}", f"{d}T10:00:00.000+0000", action, "Apex Class", "x")
            for i, d in enumerate(days)]


def test_classify_field_sources_and_false_positives() -> None:
    def cls(name: str, external: bool = False, **attrs):
        return classify_field(Node(f"CustomField:{name}", "CustomField", name, external, attrs))

    reasons, cats, level = cls("Contact.SSN__c", compliance_group="PII;GDPR", security_classification="Restricted")
    assert reasons[:2] == ["compliance group PII;GDPR", "classified Restricted"] and level == "high"
    assert "government_id" in cats
    assert cls("Contact.Notes__c", compliance_group="HIPAA")[1] == ["health"]
    assert cls("Patient__c.Diagnosis_Code__c")[1:] == (["health", "special"], "high")  # GDPR art. 9 too
    assert cls("Employee__c.Annual_Salary__c")[1:] == (["compensation"], "normal")
    assert cls("Invoice__c.Billing_Email__c", data_type="Email")[0] == ["type Email"]
    assert cls("Lead.MobilePhone", external=True)[0] == ["personal data on Lead"]
    assert cls("Contact.Gender_Identity__c")[1:] == (["special"], "high")
    # Not personal: customer health, an account's name, an explicitly public field.
    assert cls("Account.Health_Score__c", data_type="Number") is None
    assert cls("Account.Name", external=True) is None
    assert cls("Contact.Nickname__c", security_classification="Public") is None


def test_small_org_fields_access_lineage_and_score(small_store) -> None:
    store, inv = small_store
    ledger = update_audit_ledger(None, _events("2026-06-01", "2026-11-20", "2026-11-24"), TODAY)
    rep = org_governance(store, "small", inv, audit_ledger=ledger, today=TODAY)
    by = {f.key: f for f in rep.fields}
    assert set(by) == {"CustomField:Contact.SSN__c", "CustomField:Contact.Medical_Condition__c",
                       "CustomField:Contact.Salary__c", "CustomField:Contact.Work_Email__c"}
    ssn, med = by["CustomField:Contact.SSN__c"], by["CustomField:Contact.Medical_Condition__c"]
    sal, mail = by["CustomField:Contact.Salary__c"], by["CustomField:Contact.Work_Email__c"]
    # Classification and encryption (Classic Encrypted Text, a Shield scheme, clear text).
    assert ssn.classified and ssn.encrypted and ssn.encryption_scheme is None
    assert sal.encrypted and sal.encryption_scheme == "DeterministicEncryption"
    assert med.classified is False and med.encrypted is False and med.level == "high"
    # Field-level security from the grants edges; Admin holds all data by design, not counted.
    assert ssn.editors == ["PermissionSet:Integration", "Profile:Admin"] and ssn.readers == []
    assert ssn.all_data_holders == ["PermissionSet:Integration"]
    assert med.readers == ["PermissionSet:Support"] and med.all_data_holders == ["PermissionSet:Support"]
    assert sal.readers == ["PermissionSet:HR"] and sal.restricted
    # Lineage: the medical field reaches Metabase through the warehouse, salary a report,
    # the e-mail an e-mail template; SSN goes nowhere.
    assert {(f.target, f.kind, f.hops) for f in med.flows} == {
        ("WarehouseColumn:mb/wh.sf.contact.medical_condition__c", "warehouse", 1),
        ("MetabaseCard:mb/7", "Metabase", 2), ("MetabaseDashboard:mb/3", "Metabase", 3)}
    dash = next(f for f in med.flows if f.kind == "Metabase" and f.hops == 3)
    assert dash.path == (med.key, "WarehouseColumn:mb/wh.sf.contact.medical_condition__c", "MetabaseCard:mb/7",
                         "MetabaseDashboard:mb/3")
    assert [(f.target, f.kind) for f in sal.flows] == [("Report:HR/Payroll", "report")]
    assert [(f.target, f.kind) for f in mail.flows] == [("EmailTemplate:Mail/Welcome", "e-mail")]
    assert not ssn.flows
    # Holders: View/Modify All Data, API only.
    holders = {h.key: h for h in rep.holders}
    assert holders["PermissionSet:Integration"].api_only and holders["PermissionSet:Integration"].modify_all_data
    assert holders["Profile:Admin"].expected and not holders["PermissionSet:Support"].expected
    # Indicators, exactly.
    ind = {i.id: i.value for i in rep.indicators}
    assert ind["classified"] == pytest.approx(2 / 4)  # SSN and Salary of SSN, Medical, Salary, Work email
    assert ind["phi_classified"] == 0.0  # the medical field is not tagged HIPAA
    assert ind["encrypted"] == pytest.approx(2 / 3)  # SSN, Salary encrypted; Medical not
    assert ind["fls_restricted"] == pytest.approx(2 / 4)  # SSN (Integration) and Medical (Support) are not
    assert ind["all_data_access"] == pytest.approx(1 / (1 + 1 + 2))  # Support views, Integration modifies
    assert ind["contained"] == pytest.approx(1 / 4)  # only SSN stays
    assert ind["audit_retention"] == pytest.approx(178 / 180)  # 2026-06-01 … 2026-11-25
    # Scores: 100·Σw·v/Σw, with points that add up to the score.
    for fw in FRAMEWORKS:
        weights = {k: w[fw] for k, (_, w) in INDICATORS.items() if fw in w}
        expected = 100 * sum(weights[k] * ind[k] for k in weights) / sum(weights.values())
        s = rep.frameworks[fw]
        assert s.score == pytest.approx(expected, abs=0.02)
        assert s.score == pytest.approx(sum(s.points.values()), abs=1e-9)
    assert rep.overall == pytest.approx(sum(rep.frameworks[f].score for f in FRAMEWORKS) / 3, abs=0.01)
    # Outputs: Markdown, CSVs that parse, recommendations naming the components.
    md = rep.to_markdown()
    assert "Readiness" in md and "MetabaseDashboard:mb/3" in md and "PermissionSet:Support" in md
    rows = list(csv.DictReader(io.StringIO(rep.sensitive_fields_csv())))
    assert {r["key"] for r in rows} == set(by)
    med_row = next(r for r in rows if r["key"] == med.key)
    assert med_row["classified"] == "no" and med_row["export_kinds"] == "Metabase;warehouse"
    score_rows = list(csv.DictReader(io.StringIO(rep.governance_csv())))
    total = next(r for r in score_rows if r["framework"] == "GDPR" and r["indicator"] == "score")
    assert float(total["points"]) == rep.frameworks["GDPR"].score
    assert any("Medical_Condition__c" in r and r.startswith("Classify") for r in rep.recommendations)
    assert any("PermissionSet:Support" in r for r in rep.recommendations)


def test_unmeasurable_indicators_leave_the_score_alone(small_store) -> None:
    store, inv = small_store
    rep = org_governance(store, "small", inv, audit_ledger=None, today=TODAY)
    assert rep.indicator("audit_retention").value is None and not rep.audit.available
    assert "audit_retention" in rep.frameworks["SOC 2"].not_measured
    assert rep.frameworks["SOC 2"].score == pytest.approx(sum(rep.frameworks["SOC 2"].points.values()))
    # No indicator measurable at all: no score rather than a made-up one.
    empty = framework_scores([i.__class__(i.id, i.title, None, "n/a", i.weights) for i in rep.indicators])
    assert all(s.score is None for s in empty.values())


def test_history_trend_and_rerun_of_the_same_snapshot(small_store) -> None:
    store, inv = small_store
    first = org_governance(store, "small", inv, audit_ledger=None, today="2026-11-20")
    assert first.trend is None and len(first.history) == 1
    again = org_governance(store, "small", inv, audit_ledger=None, today="2026-11-20", history=first.history)
    assert len(again.history) == 1  # same day, same snapshot: replaced, not a trend point
    ledger = update_audit_ledger(None, _events("2026-09-01"), TODAY)
    later = org_governance(store, "small", inv, audit_ledger=ledger, today=TODAY, history=again.history)
    assert [p["date"] for p in later.history] == ["2026-11-20", TODAY]
    assert later.trend == pytest.approx(later.overall - first.overall, abs=0.01) and later.trend > 0
    assert "#### Trend" in later.to_markdown()


def test_audit_ledger_counts_each_event_once_and_measures_retention() -> None:
    first = update_audit_ledger(None, _events("2026-11-01", "2026-11-01", "2026-11-03"), "2026-11-05")
    assert first["days"] == {"2026-11-01": 2, "2026-11-03": 1}
    # A cursor reset re-reads the same rows: nothing counted twice; a newer and an older row count.
    second = update_audit_ledger(first, _events("2026-11-01", "2026-11-03", "2026-11-06", "2026-10-30",
                                                action="PermSetAssign"), "2026-11-07")
    assert second["days"] == {"2026-10-30": 1, "2026-11-01": 2, "2026-11-03": 1, "2026-11-06": 1}
    assert second["security_actions"] == {"PermSetAssign": 2}
    cov = audit_coverage(second, "2026-11-07")
    assert (cov.events, cov.days_observed, cov.days_with_events) == (5, 9, 4)
    assert cov.retention_gap_days == 180 - 9 and cov.first_read == "2026-11-05"
    # Reads 200 days apart: Salesforce may have dropped 20 days of rows in between.
    late = update_audit_ledger(second, _events("2027-05-26"), "2027-05-26")
    cov = audit_coverage(late, "2027-05-26")
    assert cov.possibly_lost_days == 200 - 180 and cov.retention_gap_days == 0
    assert not audit_coverage(update_audit_ledger(None, [], TODAY), TODAY).available


def test_live_encryption_attributes_reach_the_graph_node() -> None:
    comp = _field("Contact.Tax_Id__c", data_type="Text", encrypted=True, encryption_scheme="ProbabilisticEncryption")
    attrs = node_for(comp).attrs
    assert attrs["encrypted"] is True and attrs["encryption_scheme"] == "ProbabilisticEncryption"
    assert "encrypted" not in node_for(_field("Contact.Plain__c", encrypted=False)).attrs


# --- the bundled demo orgs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """acme-prod and globex-prod read from disk, joined to the demo platforms as org_graph does."""
    extracts = [extract_platform(cfg) for cfg in load_platforms()]
    store = open_store(tmp_path_factory.mktemp("demo") / "g")
    out = {}
    for org in ("acme-prod", "globex-prod"):
        project = demo_root() / "orgs" / org
        inv = read_sfdx_project(project, org, source_kind="demo")
        graph = build_org_graph(inv)
        add_platform_lineage(graph, platforms_for_org(extracts, org))
        store.load_snapshot(org, graph.nodes.values(), graph.edges)
        ledger = update_audit_ledger(None, read_recorded_audit_trail(org, project, None), TODAY)
        out[org] = org_governance(store, org, inv, audit_ledger=ledger, today=TODAY)
    store.close()
    return out


def test_demo_acme_prod(demo_reports) -> None:
    rep = demo_reports["acme-prod"]
    by = {f.key: f for f in rep.fields}
    ssn = by["CustomField:Contact.SSN__c"]
    assert ssn.classified and ssn.encrypted and ssn.level == "high"
    assert "PermissionSet:Integration_User_Super" in ssn.all_data_holders
    assert "PermissionSet:Acme_Billing_Admin" in ssn.readers
    assert by["CustomField:Contact.Passport_Number__c"].classified is False
    dob = by["CustomField:Contact.Date_of_Birth__c"]
    assert dob.classified and not dob.encrypted  # Confidential, in clear text
    assert "CustomField:Account.Health_Score__c" not in by  # customer health is not health data
    # Where personal data flows: the Metabase warehouse, a card and its dashboard; a report.
    email_kinds = {f.kind for f in by["CustomField:Contact.Email"].flows}
    assert email_kinds == {"warehouse", "Metabase"}
    assert [f.target for f in by["CustomField:Invoice__c.Billing_Email__c"].flows] == [
        "Report:Acme_Finance_Reports/Overdue_Invoices"]
    holders = {h.key: h for h in rep.holders}
    sup = holders["PermissionSet:Integration_User_Super"]
    assert sup.modify_all_data and sup.view_all_data and sup.api_enabled and not sup.api_only
    assert holders["Profile:Acme Support Agent"].view_all_data and holders["Profile:Admin"].expected
    assert rep.counts()["all_data_holders"] == 2
    # The recorded audit trail: 28 rows, 2026-10-20 … 2026-11-19, far short of 180 days.
    assert rep.audit.events == 28 and rep.audit.oldest.startswith("2026-10-20")
    assert rep.audit.days_observed == 37 and rep.audit.retention_gap_days == 143
    assert rep.audit.security_actions.get("PermSetEnableUserPerm") == 1
    for fw in FRAMEWORKS:
        assert 0 < rep.frameworks[fw].score < 100
    assert 0 < rep.overall < 100
    assert any(r.startswith("Encrypt") and "Date_of_Birth__c" in r for r in rep.recommendations)


def test_demo_globex_prod_and_classification_drift(demo_reports) -> None:
    rep = demo_reports["globex-prod"]
    by = {f.key: f for f in rep.fields}
    card = by["CustomField:Invoice__c.Card_Last4__c"]
    assert card.classified is False and card.level == "high"
    assert ("EmailTemplate:Globex_Notifications/Payment_Failed", "e-mail") in {(f.target, f.kind) for f in card.flows}
    email = by["CustomField:Contact.Personal_Email__c"]
    assert email.classified and "Report:Globex_Customer_Success/Customer_Birthdays" in {f.target for f in email.flows}
    assert email.all_data_holders == ["PermissionSet:Globex_Support"]
    dicts = {o: json.loads(json.dumps(r.to_dict(), default=str)) for o, r in demo_reports.items()}
    drift = dict(classification_drift(dicts))
    # The planted swap: Personal_Email__c classified only in globex, Date_of_Birth__c only in acme.
    assert drift["CustomField:Contact.Personal_Email__c"] == {
        "acme-prod": "unclassified", "globex-prod": "PII;GDPR;CCPA / Confidential"}
    assert drift["CustomField:Contact.Date_of_Birth__c"]["globex-prod"] == "unclassified"
    md = governance_overview_markdown(dicts)
    assert "| acme-prod |" in md and "Contact.Personal_Email__c" in md


# --- through Dagster ---------------------------------------------------------------------------------
def test_governance_assets_in_dagster(tmp_path: Path) -> None:
    from aicolleague_pipelines.definitions import defs as load_defs
    from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME

    defs = load_defs()
    job = defs.resolve_job_def("org_refresh_job")
    keys = [dg.AssetKey(k) for k in ("sf_inventory", "sf_dependencies", "sf_audit_trail", "org_graph",
                                     "governance_report")]
    home = Path(os.environ["AICOLLEAGUE_HOME"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, ["acme-prod", "globex-prod"])
        assert defs.resolve_job_def("platforms_job").execute_in_process(instance=instance).success
        runs = [job.execute_in_process(instance=instance, partition_key=org, asset_selection=keys)
                for org in ("acme-prod", "acme-prod", "globex-prod")]
        assert all(r.success for r in runs)
        meta = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in runs[1].get_asset_materialization_events()}["governance_report"]
        assert 0 < meta["overall_score"].value < 100
        assert set(meta["scores"].value) == set(FRAMEWORKS)
        assert "Where sensitive fields flow" in meta["report"].value
        assert "MetabaseDashboard:acme-metabase/21" in meta["report"].value
        table = meta["score_breakdown"].value
        assert [r.data["indicator"] for r in table.records] == list(INDICATORS)
        out = runs[1].output_for_node("governance_report")
        # The second refresh read no new audit-trail row: the ledger still holds the 28, once.
        assert out["audit"]["events"] == 28 and len(out["history"]) == 2 and out["trend"] == 0
        reports = home / "reports" / "acme-prod"
        assert Path(meta["sensitive_fields_csv"].value) == reports / "sensitive_fields.csv"
        assert (reports / "governance.csv").read_text().startswith("org,framework,indicator")
        assert "CustomField:Contact.SSN__c" in (reports / "sensitive_fields.csv").read_text()
        combined = defs.resolve_job_def("combined_job").execute_in_process(instance=instance)
        assert combined.success
        overview = {e.asset_key.to_user_string(): e.materialization.metadata
                    for e in combined.get_asset_materialization_events()}["governance_overview"]
        assert set(overview["overall"].value) == {"acme-prod", "globex-prod"}
        assert overview["classification_drift"].value >= 2
        assert (home / "reports" / "governance_overview.md").is_file()


def test_make_demo_summary_line_shows_the_governance_score(tmp_path: Path) -> None:
    from aicolleague_pipelines.runner import OrgRunResult, format_results

    r = OrgRunResult("acme-prod", True, "run-1", 1.0,
                     materialized={"governance_report": {"overall_score": 44.12}})
    assert "governance 44/100" in format_results([r], tmp_path)
