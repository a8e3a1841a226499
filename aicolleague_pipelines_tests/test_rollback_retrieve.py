"""Live-org rollback bundles: the Fix agent retrieves the pre-change metadata of every touched
component through the Metadata API (SOAP ``retrieve`` / ``checkRetrieveStatus``), with the real
``SalesforceClient`` (simple-salesforce's ``SfdcMetadataApi``) against the TLS fake org."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from aicolleague_pipelines.lib.agents.fix import (
    PlannedChange,
    RetrievedArchiveError,
    plan_change,
    safe_unzip,
)
from aicolleague_pipelines.lib.graph.model import CHILD_OF, QUERIES, REFERENCES, SHOWS, Edge, Node
from aicolleague_pipelines.lib.graph.stores import open_store
from aicolleague_pipelines.lib.salesforce.client import (
    RetryPolicy,
    SalesforceAPIError,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceUnavailableError,
)
from aicolleague_pipelines_tests.fakes.salesforce import FakeSalesforce

ORG = "fake-live"
AMOUNT = "CustomField:Invoice__c.Amount__c"
CLASS = "ApexClass:InvoiceService"
VR = "ValidationRule:Invoice__c.Amount_Positive"
LAYOUT = "Layout:Invoice__c-Invoice Layout"


def _node(key: str, **attrs: Any) -> Node:
    t, _, n = key.partition(":")
    return Node(key=key, type=t, name=n, attrs=attrs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """A live org's graph (no SFDX project): Invoice__c.Amount__c used by an Apex class, a
    validation rule and a layout — all of which the fake's default org has."""
    s = open_store(tmp_path / "graph")
    nodes = [_node("CustomObject:Invoice__c"), _node(AMOUNT, source="tooling:CustomField"),
             _node(CLASS, source="tooling:ApexClass"), _node(VR), _node(LAYOUT)]
    edges = [
        Edge(AMOUNT, "CustomObject:Invoice__c", CHILD_OF, "x"),
        Edge(CLASS, AMOUNT, QUERIES, "tooling:ApexClass/InvoiceService:4", detail="SOQL SELECT"),
        Edge(VR, AMOUNT, REFERENCES, "formula"),
        Edge(LAYOUT, AMOUNT, SHOWS, "layout"),
    ]
    s.load_snapshot(ORG, nodes, edges, meta={"api_version": "62.0"})
    yield s
    s.close()


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSalesforce, SalesforceClient, list[float]]]:
    sleeps: list[float] = []
    with FakeSalesforce() as fake:
        for var, value in fake.env_for("client_credentials").items():
            monkeypatch.setenv(var, value)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        client = SalesforceClient(fake.org_config("client_credentials", name=ORG), timeout=(5.0, 20.0),
                                  retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01),
                                  bulk_poll_interval=0.01, bulk_max_wait=1.0, sleep=sleeps.append)
        yield fake, client, sleeps
        client.close()


def _body(fake: FakeSalesforce, type_: str, name: str) -> str:
    return next(r["Body"] for r in fake.org.objects[type_].records if r["Name"] == name)


def _soap_ops(fake: FakeSalesforce) -> list[str]:
    return [r.body["soap"] for r in fake.requests if r.path.startswith("/services/Soap/m/") and r.body]


def test_live_delete_plan_retrieves_the_rollback_bundle(store, live, tmp_path: Path) -> None:
    fake, client, sleeps = live
    out = tmp_path / "plan"
    plan = plan_change(store, ORG, PlannedChange("delete", AMOUNT, reason="replaced"), project_root=None,
                       retriever=lambda members: client.retrieve_metadata(members, "62.0"), out_dir=out)
    assert plan.ok
    assert plan.rollback_complete, plan.notes
    assert plan.rollback_format == "metadata"
    assert {r.key: r.files for r in plan.rollback} == {
        AMOUNT: ["objects/Invoice__c.object"],
        CLASS: ["classes/InvoiceService.cls", "classes/InvoiceService.cls-meta.xml"],
        VR: ["objects/Invoice__c.object"],
        LAYOUT: ["layouts/Invoice__c-Invoice Layout.layout"],
    }
    rb = out / "rollback"
    # the class body byte for byte as the org holds it, with its -meta.xml
    assert (rb / "classes" / "InvoiceService.cls").read_text() == _body(fake, "ApexClass", "InvoiceService")
    assert "<apiVersion>62.0</apiVersion>" in (rb / "classes" / "InvoiceService.cls-meta.xml").read_text()
    obj = (rb / "objects" / "Invoice__c.object").read_text()
    assert "<fullName>Amount__c</fullName>" in obj and "<type>Currency</type>" in obj
    assert "<fullName>Amount_Positive</fullName>" in obj and "Amount__c &lt;= 0" in obj
    assert "<fullName>Status__c</fullName>" not in obj  # only the requested members
    assert (rb / "layouts" / "Invoice__c-Invoice Layout.layout").is_file()
    manifest = (rb / "package.xml").read_text()
    for member in ("InvoiceService", "Invoice__c.Amount__c", "Invoice__c.Amount_Positive", "Invoice__c-Invoice Layout"):
        assert f"<members>{member}</members>" in manifest
    assert not (rb / "sfdx-project.json").exists()  # Metadata API format, not a source project
    assert not (rb / "unpackaged").exists()
    # what the org was asked for, and what it cost
    assert _soap_ops(fake) == ["retrieve", "checkRetrieveStatus", "checkRetrieveStatus"]  # InProgress once
    asked = next(r.body["members"] for r in fake.requests if r.body and r.body.get("soap") == "retrieve")
    assert asked == {"ApexClass": ["InvoiceService"], "CustomField": ["Invoice__c.Amount__c"],
                     "Layout": ["Invoice__c-Invoice Layout"], "ValidationRule": ["Invoice__c.Amount_Positive"]}
    assert client.stats["api_calls"] == 4  # token + retrieve + 2 × checkRetrieveStatus
    assert client.stats["metadata_retrieves"] == 1 and client.stats["retries"] == 0
    assert sleeps == [0.01]
    # the plan tells how to roll back, and does not ask for a manual retrieve
    md = (out / "plan.md").read_text()
    assert "sf project deploy start --metadata-dir rollback" in md
    assert "sf project retrieve start" not in md
    assert not any("incomplete" in n for n in plan.notes)
    data = json.loads((out / "plan.json").read_text())
    assert data["rollback_complete"] is True and "rollback_files" not in data
    assert "rollback/classes/InvoiceService.cls" in data["artifact_files"]


def test_retrieve_failure_keeps_the_manifest_and_says_so(store, live, tmp_path: Path) -> None:
    fake, client, _ = live
    fake.faults.retrieve_failure = "INVALID_CROSS_REFERENCE_KEY: insufficient access rights on object id"
    plan = plan_change(store, ORG, PlannedChange("delete", AMOUNT), project_root=None,
                       retriever=lambda members: client.retrieve_metadata(members), out_dir=tmp_path)
    assert plan.ok and plan.steps  # the plan itself is still produced
    assert not plan.rollback_complete
    note = next(n for n in plan.notes if "retrieve failed" in n)
    assert "SalesforceAPIError" in note and f"org '{ORG}'" in note and "insufficient access rights" in note
    assert "sf project retrieve start --manifest rollback/package.xml" in note
    assert (tmp_path / "rollback" / "package.xml").is_file()
    assert not (tmp_path / "rollback" / "classes").exists()
    assert "sf project retrieve start --manifest rollback/package.xml" in plan.to_markdown()


def test_client_retrieve_failure_is_a_clear_error(live) -> None:
    fake, client, _ = live
    fake.faults.retrieve_failure = "UNKNOWN_EXCEPTION: An unexpected error occurred"
    with pytest.raises(SalesforceAPIError) as ei:
        client.retrieve_metadata({"ApexClass": ["InvoiceService"]})
    msg = str(ei.value)
    assert f"org '{ORG}'" in msg and "metadata:retrieve" in msg and "Failed" in msg
    assert "sf project retrieve start" in msg and "Metadata API access" in msg
    assert not any(s in msg for s in fake.secrets())


def test_zip_with_path_traversal_is_refused(store, live, tmp_path: Path) -> None:
    fake, client, _ = live
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("unpackaged/package.xml", "<Package/>")
        zf.writestr("unpackaged/classes/InvoiceService.cls", "class X {}")
        zf.writestr("../evil", "pwned")
    fake.faults.retrieve_zip = buf.getvalue()  # through the real client and fake org
    out = tmp_path / "out" / "plan"
    plan = plan_change(store, ORG, PlannedChange("delete", AMOUNT), project_root=None,
                       retriever=lambda members: client.retrieve_metadata(members), out_dir=out)
    assert not plan.rollback_complete and not plan.rollback_files
    assert any("unsafe path in the archive: '../evil'" in n for n in plan.notes)
    assert not (tmp_path / "out" / "evil").exists() and not (out / "evil").exists()
    assert not (out / "rollback" / "classes").exists()
    assert (out / "rollback" / "package.xml").is_file()


@pytest.mark.parametrize("name", ["/etc/passwd", "a/../../b", "C:/x", "a\\..\\b", "a//b"])
def test_safe_unzip_refuses_unsafe_names(name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), "x")
    with pytest.raises(RetrievedArchiveError, match="unsafe path"):
        safe_unzip(buf.getvalue())


def test_safe_unzip_refuses_links_bombs_and_junk() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("classes/link.cls")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(RetrievedArchiveError, match="symbolic link"):
        safe_unzip(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("classes/Big.cls", b"0" * 200_000)  # compresses to almost nothing
    with pytest.raises(RetrievedArchiveError, match="too large"):
        safe_unzip(buf.getvalue(), max_file_bytes=100_000)
    with pytest.raises(RetrievedArchiveError, match="too large"):
        safe_unzip(buf.getvalue(), max_total_bytes=100_000)
    with pytest.raises(RetrievedArchiveError, match="entries"):
        safe_unzip(buf.getvalue(), max_files=0)
    with pytest.raises(RetrievedArchiveError, match="not a zip"):
        safe_unzip(b"PK\x03\x04 certainly not a zip")
    assert safe_unzip(buf.getvalue()) == {"classes/Big.cls": b"0" * 200_000}


def test_partial_retrieve_names_what_is_missing(tmp_path: Path, live) -> None:
    fake, client, _ = live
    s = open_store(tmp_path / "g")
    ghost = "ApexClass:GhostService"  # in the graph, gone from the org
    s.load_snapshot(ORG, [_node(AMOUNT), _node(CLASS), _node(ghost)],
                    [Edge(CLASS, AMOUNT, QUERIES, "x"), Edge(ghost, AMOUNT, QUERIES, "y")],
                    meta={"api_version": "62.0"})
    plan = plan_change(s, ORG, PlannedChange("delete", AMOUNT), project_root=None,
                       retriever=client.retrieve_metadata, out_dir=tmp_path)
    s.close()
    assert not plan.rollback_complete
    assert {r.key: r.complete for r in plan.rollback} == {AMOUNT: True, CLASS: True, ghost: False}
    assert any("did not return ApexClass:GhostService" in n for n in plan.notes)
    assert (tmp_path / "rollback" / "classes" / "InvoiceService.cls").is_file()  # what came back is kept
    assert client.last_retrieve_messages == [
        {"file": "unpackaged/package.xml",
         "problem": "Entity of type 'ApexClass' named 'GhostService' cannot be found"}]


def test_soap_session_header_expiry_reauthenticates(live) -> None:
    fake, client, _ = live
    client.connect()
    fake.faults.expire_session_after = 1  # the retrieve goes through, the first poll hits a dead session
    data = client.retrieve_metadata({"ApexClass": ["InvoiceService"]})
    files = safe_unzip(data)
    assert files["unpackaged/classes/InvoiceService.cls"].decode() == _body(fake, "ApexClass", "InvoiceService")
    assert client.stats["reauths"] == 1 and client.stats["auth_calls"] == 2
    assert any(r.status == 500 and r.path.startswith("/services/Soap/m/") for r in fake.requests)


def test_soap_invalid_session_with_static_token_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSalesforce() as fake:
        for var, value in fake.env_for("access_token").items():
            monkeypatch.setenv(var, value)
        client = SalesforceClient(fake.org_config("access_token"), retry=RetryPolicy(2, 0.001, 0.01))
        fake.revoke_all_tokens()
        with pytest.raises(SalesforceAuthError, match="INVALID_SESSION_ID"):
            client.retrieve_metadata({"ApexClass": ["InvoiceService"]})
        client.close()


def test_soap_limit_fault_is_retried_and_polling_is_bounded(live) -> None:
    fake, client, sleeps = live
    fake.faults.fail("REQUEST_LIMIT_EXCEEDED", times=1, path_contains="/services/Soap/m/")
    assert safe_unzip(client.retrieve_metadata({"ApexClass": ["InvoiceService"]}))
    assert client.stats["retries"] == 1
    sleeps.clear()
    fake.retrieve_in_progress_polls = 1000
    with pytest.raises(SalesforceUnavailableError, match="still InProgress"):
        client.retrieve_metadata({"ApexClass": ["InvoiceService"]})
    assert sleeps[:4] == [0.01, 0.02, 0.04, 0.08] and max(sleeps) == 0.08  # backoff, capped at 8×
    assert sum(sleeps) <= 1.0 + 0.08
