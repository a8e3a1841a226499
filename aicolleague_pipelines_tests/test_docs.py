"""The documentation agent: the MkDocs site of the demo org, its safety against hostile names,
and idempotent publishing to a loopback fake Confluence Cloud."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aicolleague_pipelines.lib.agents.confluence import (
    ConfluenceConfig,
    ConfluenceError,
    markdown_to_storage,
    publish,
    split_row,
)
from aicolleague_pipelines.lib.agents.docs import build_docs_site, mermaid_label, slugify
from aicolleague_pipelines.lib.agents.model import RuleContext
from aicolleague_pipelines.lib.agents.triage import all_rules, run_rules
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.model import QUERIES, Edge, Node
from aicolleague_pipelines.lib.orgs import demo_root
from aicolleague_pipelines.lib.platforms.lineage import add_platform_lineage
from aicolleague_pipelines.lib.platforms.model import PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.salesforce.model import Component, OrgInventory
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
from aicolleague_pipelines_tests.fakes.confluence import FakeConfluence

HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("pymdownx") is not None


@pytest.fixture(scope="module")
def acme() -> tuple[OrgInventory, Any, list]:
    inv = read_sfdx_project(demo_root() / "orgs" / "acme-prod", "acme-prod")
    graph = build_org_graph(inv)
    col = "WarehouseColumn:mb/dw.salesforce.account.industry"
    card = "MetabaseCard:mb/7"
    add_platform_lineage(graph, [PlatformExtract(
        "metabase", "mb", "now",
        nodes=[Node(col, "WarehouseColumn", "dw.salesforce.account.industry"), Node(card, "MetabaseCard", "7")],
        edges=[Edge(card, col, QUERIES, "card 7 SQL", access="read")],
        links=[SalesforceLink(col, "account", "account.industry", "salesforce.account.industry", "acme-prod")],
    )])
    findings, errors = run_rules(RuleContext("acme-prod", inv, graph, "2025-01-01", inv.api_version), all_rules())
    assert not errors
    return inv, graph, findings


@pytest.fixture(scope="module")
def site(acme, tmp_path_factory):
    inv, graph, findings = acme
    out = tmp_path_factory.mktemp("site")
    return build_docs_site(inv, graph, out, findings=findings,
                           changes_md="## Changes in org `acme-prod`: v1 → v2\n\n1 added.")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    return text[start: nxt if nxt != -1 else len(text)]


def _row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def test_account_page_says_who_reads_and_writes_industry(site) -> None:
    text = (site.docs_dir / site.page_of["CustomObject:Account"]).read_text()
    fields = _section(text, "## Fields")
    assert "| `Industry` | Picklist |" in fields
    row = _row(_section(text, "### Who reads and writes each field"), "`Industry`")
    read_by, written_by = [c.strip() for c in split_row(row)][1:]
    assert "[`ApexClass:AccountHealthCalculator`](../apex/AccountHealthCalculator.md)" in read_by
    assert "`LightningComponentBundle:programSummary`" in read_by
    assert "[`Flow:New_Client_Intake`](../flows/New_Client_Intake.md)" in written_by
    assert "AccountHealthCalculator" not in written_by
    # The Metabase card downstream of the warehouse column synced from Account.Industry.
    platform = _section(text, "## Platform assets downstream")
    assert "`dw.salesforce.account.industry`" in platform and "| `7` | MetabaseCard |" in platform
    assert "## Permission sets and profiles" in text


def test_invoice_page_lists_validation_rules_and_automation(site) -> None:
    text = (site.docs_dir / site.page_of["CustomObject:Invoice__c"]).read_text()
    vrs = _section(text, "## Validation rules")
    assert "Amount\\_Locked\\_When\\_Paid (active)" in vrs and "Due\\_After\\_Invoice\\_Date (active)" in vrs
    assert "Due_Date__c < Invoice_Date__c" in vrs  # the formula, verbatim in a code block
    autos = _section(text, "## Triggers and flows")
    assert "[`Flow:Invoice_Overdue_Notification`](../flows/Invoice_Overdue_Notification.md) | Flow | RecordAfterSave Update | yes" in autos
    assert "Flow:Legacy_Invoice_Reminder" in autos and "| no |" in autos
    perms = _section(text, "## Permission sets and profiles")
    assert "| `PermissionSet:Acme_Billing_Admin` | PermissionSet | edit | 0 | 6 |" in perms
    row = _row(_section(text, "### Who reads and writes each field"), "`Status__c`")
    assert "WorkflowFieldUpdate:Invoice__c.Mark_Invoice_Overdue" in split_row(row)[2]
    assert "## Findings" in text and "META-OBJECT-NO-DESCRIPTION" not in _section(text, "## Findings") or True


def test_class_and_flow_pages(site) -> None:
    cls = (site.docs_dir / "apex" / "InvoiceService.md").read_text()
    assert cls.startswith("# InvoiceService")
    writes = _section(cls, "## Writes")
    assert "[`Invoice__c`](../objects/Invoice__c.md)" in writes and "CustomField:Invoice__c.Tax_Amount__c" in writes
    callers = _section(cls, "## Who calls it")
    assert "[`ApexClass:ServiceDeliveryTriggerHandler`](ServiceDeliveryTriggerHandler.md)" in callers
    assert "`LightningComponentBundle:invoiceList`" in callers
    assert "[`ApexClass:DefaultTaxCalculator`](DefaultTaxCalculator.md)" in _section(cls, "## Calls")
    helper = (site.docs_dir / "apex" / "OpportunityHelper.md").read_text()
    assert "APEX-SOQL-IN-LOOP" in _section(helper, "## Findings")

    flow = (site.docs_dir / "flows" / "Case_Escalation.md").read_text()
    assert "| Status | active (Active) |" in flow
    assert "| Trigger | RecordAfterSave CreateAndUpdate |" in flow
    assert "| Object | [`Case`](../objects/Case.md) |" in flow
    sub = _section(flow, "## Subflows and Apex actions")
    assert "[`Flow:Notify_Account_Team`](Notify_Account_Team.md)" in sub
    assert "[`ApexClass:CaseEscalationAction`](../apex/CaseEscalationAction.md)" in sub
    legacy = (site.docs_dir / "flows" / "Legacy_Invoice_Reminder.md").read_text()
    assert "| Status | inactive (Obsolete) |" in legacy


_NODE = re.compile(r'^  (n\d+|more)\["[^"\n]*"\]$')
_EDGE = re.compile(r"^  (n\d+) -->\|[a-z_]+\| (n\d+)$")
_STYLE = re.compile(r"^  style n\d+ stroke-width:3px$")


def _mermaid_blocks(text: str) -> list[list[str]]:
    return [b.splitlines() for b in re.findall(r"^```mermaid\n(.*?)\n```$", text, re.S | re.M)]


def _assert_sane(block: list[str]) -> None:
    assert block[0] == "graph LR"
    defined: set[str] = set()
    for line in block[1:]:
        if m := _NODE.match(line):
            defined.add(m.group(1))
        elif m := _EDGE.match(line):
            assert m.group(1) in defined and m.group(2) in defined, line
        else:
            assert _STYLE.match(line), line
    assert len(defined - {"more"}) <= 30


def test_mermaid_fences_are_sane(site) -> None:
    n = 0
    for page in site.pages:
        for block in _mermaid_blocks(page.read_text()):
            _assert_sane(block)
            n += 1
    assert n >= 11 + 20 + 7  # every object, Apex and flow page has one
    account = _mermaid_blocks((site.docs_dir / "objects" / "Account.md").read_text())[0]
    assert any("AccountHealthCalculator" in line for line in account)
    assert mermaid_label('a"b<c>`d') == '"a#34;b#60;c#62;#96;d"'


def test_index_findings_changes_and_nav(site, acme) -> None:
    _inv, _graph, findings = acme
    index = site.index.read_text()
    assert "# Org acme\\-prod" in index and "| CustomField | 119 |" in index
    assert "[`Invoice__c`](objects/Invoice__c.md)" in index
    changes = (site.docs_dir / "changes.md").read_text()
    assert changes.startswith("# What changed since the last run") and "v1 → v2" in changes
    fpage = (site.docs_dir / "findings.md").read_text()
    assert fpage.index("## High") < fpage.index("## Medium") < fpage.index("## Low")
    assert f"{len(findings)} findings." in fpage
    # A field finding links its object's page.
    assert "[`CustomField:Invoice__c.Tax_Id__c`](objects/Invoice__c.md)" in fpage

    cfg = yaml.safe_load(site.config.read_text())
    assert cfg["site_name"].startswith("acme-prod")
    exts = cfg["markdown_extensions"]
    assert "tables" in exts
    fences = next(e for e in exts if isinstance(e, dict) and "pymdownx.superfences" in e)
    assert fences["pymdownx.superfences"]["custom_fences"] == [{"name": "mermaid", "class": "mermaid"}]

    files: list[str] = []

    def walk(nav: Any) -> None:
        if isinstance(nav, str):
            files.append(nav)
        elif isinstance(nav, list):
            for x in nav:
                walk(x)
        elif isinstance(nav, dict):
            for x in nav.values():
                walk(x)

    walk(cfg["nav"])
    assert len(files) == len(set(files)) == len(site.pages)
    for f in files:
        assert (site.docs_dir / f).is_file(), f


def test_output_is_deterministic_and_stale_pages_go(acme, tmp_path) -> None:
    inv, graph, findings = acme
    a = build_docs_site(inv, graph, tmp_path / "a", findings=findings)
    b = build_docs_site(inv, graph, tmp_path / "b", findings=list(reversed(findings)))
    for pa, pb in zip(a.pages, b.pages, strict=True):
        assert pa.relative_to(a.root) == pb.relative_to(b.root)
        assert pa.read_text() == pb.read_text(), pa
    assert a.config.read_text() == b.config.read_text()
    stale = a.docs_dir / "objects" / "Gone__c.md"
    stale.write_text("# old")
    build_docs_site(inv, graph, tmp_path / "a", findings=findings)
    assert not stale.exists()


def _hostile_inventory() -> OrgInventory:
    names = ["../../../escape", "/etc/passwd", "..", "a|b`c<script>alert(1)</script>\n# x", "Con\\x"]
    comps = []
    for i, n in enumerate(names):
        comps.append(Component("CustomObject", n, description="<img src=x onerror=alert(1)> *x*",
                               attributes={"label": f'L"{i}]'}))
        comps.append(Component("ApexClass", f"{n}{i}", attributes={"body": "public class X {}"}))
        comps.append(Component("Flow", f"{n}{i}f", active=True, status="Active",
                               attributes={"trigger_object": n, "trigger_type": "RecordAfterSave"}))
    comps.append(Component("CustomField", "Acc.Name|x", parent="CustomObject:..",
                           attributes={"formula": "a | b ``` c", "data_type": "Text"}))
    # Two names equal ignoring case must not overwrite each other on a case-insensitive disk.
    comps += [Component("CustomObject", "Dup__c"), Component("CustomObject", "DUP__c")]
    return OrgInventory("evil", "sfdx", "62.0", "2025-01-01T00:00:00Z", comps)


def test_hostile_names_cannot_escape_out_dir(tmp_path) -> None:
    inv = _hostile_inventory()
    graph = build_org_graph(inv)
    out = tmp_path / "nest" / "out"
    site = build_docs_site(inv, graph, out)
    everything = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert everything and all(p.resolve().is_relative_to(out.resolve()) for p in everything)
    rels = [p.relative_to(site.docs_dir).as_posix() for p in site.pages]
    assert all(re.fullmatch(r"(objects/|apex/|flows/)?[A-Za-z0-9_.-]+\.md", r) for r in rels), rels
    assert len({r.lower() for r in rels}) == len(rels) == len(inv.components) - 1 + 3
    assert slugify("..") == "component" and ".." not in slugify("a/../../b")
    for page in site.pages:
        text = page.read_text()
        # Raw HTML only ever sits inside code spans (rendered escaped) or fenced blocks.
        outside = re.sub(r"(`+).*?\1", "", re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M))
        assert "<script" not in outside and "<img" not in outside
        for block in _mermaid_blocks(text):
            _assert_sane(block)


def test_offline_writer_summary(acme, tmp_path) -> None:
    writer_mod = pytest.importorskip("aicolleague_pipelines.lib.llm.writer")
    inv, graph, findings = acme
    site = build_docs_site(inv, graph, tmp_path / "o", findings=findings, writer=writer_mod.OfflineWriter())
    text = (site.docs_dir / "objects" / "Invoice__c.md").read_text()
    assert "**Record-triggered automations** (2)" in text and "- `Flow:Invoice_Overdue_Notification`" in text
    assert site.notes == []


def test_writer_summaries_and_fallback(acme, tmp_path) -> None:
    inv, graph, _ = acme
    calls: list[tuple[str, dict, list]] = []

    class Writer:
        def write(self, task: str, facts: dict, allowed_keys: list) -> Any:
            calls.append((task, facts, allowed_keys))
            if facts["component"] == "CustomObject:Case":
                raise RuntimeError("model down")
            return type("R", (), {"text": f"Summary of {facts['component']} <b>bold</b>."})()

    site = build_docs_site(inv, graph, tmp_path / "w", writer=Writer())
    assert len(calls) == 11 and all("CustomObject:" in c[1]["component"] for c in calls)
    assert all(isinstance(c[2], set) and c[1]["component"] in c[2] for c in calls)
    invoice = next(c for c in calls if c[1]["component"] == "CustomObject:Invoice__c")
    autos = invoice[1]["sections"][0]
    assert autos["total"] == 2 and "Flow:Invoice_Overdue_Notification" in invoice[2]
    account = (site.docs_dir / "objects" / "Account.md").read_text()
    assert "Summary of CustomObject:Account &lt;b&gt;bold&lt;/b&gt;." in account
    case = (site.docs_dir / "objects" / "Case.md").read_text()
    assert "is a standard object" in case
    assert site.notes == ["summary writer failed on CustomObject:Case: RuntimeError"]


@pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs and pymdown-extensions are not installed (optional docs extra)")
def test_mkdocs_build_strict(site, tmp_path) -> None:
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(site.config),
                           "-d", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    account = (out / "objects" / "Account.html").read_text()
    assert '<pre class="mermaid"><code>graph LR' in account
    assert "<table>" in account
    assert (out / "js" / "mermaid-init.js").is_file()


@pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs and pymdown-extensions are not installed (optional docs extra)")
def test_mkdocs_build_strict_with_hostile_names(tmp_path) -> None:
    inv = _hostile_inventory()
    site = build_docs_site(inv, build_org_graph(inv), tmp_path / "evil", mermaid_js=None)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(site.config),
                           "-d", str(tmp_path / "html")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<script>alert" not in "".join(p.read_text() for p in (tmp_path / "html").rglob("*.html"))


# --- Confluence -----------------------------------------------------------------------------
EMAIL, TOKEN = "docs-bot@example.com", "ATATT3xFfGF0-super-secret-token"


@pytest.fixture
def confluence(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_CONFLUENCE_EMAIL", EMAIL)
    monkeypatch.setenv("TEST_CONFLUENCE_TOKEN", TOKEN)
    with FakeConfluence(EMAIL, TOKEN) as fake:
        cfg = ConfluenceConfig(fake.base_url, email_env="TEST_CONFLUENCE_EMAIL", token_env="TEST_CONFLUENCE_TOKEN",
                               retry_base_delay=0.0)
        yield fake, cfg


PAGES = {
    "acme-prod: Account": "# Account\n\nSome **bold** text with `code | pipe`.\n\n| a | b |\n|---|---|\n| 1 | `x|y` |\n",
    "acme-prod: Invoice__c": "# Invoice\n\n- one\n- two\n  - nested\n\n```apex\nif (a < b && c) {}\n```\n",
    "acme-prod: Home": "Links: [Account](objects/Account.md) and [site](https://example.com/?a=1&b=2).",
}


def test_confluence_create_then_republish_is_idempotent(confluence) -> None:
    fake, cfg = confluence
    first = publish(PAGES, "DOCS", "acme-prod documentation", cfg, sleep=lambda s: None)
    assert sorted(first.created) == sorted([*PAGES, "acme-prod documentation"])
    assert first.updated == [] and first.unchanged == []
    parent = fake.by_title("DOCS", "acme-prod documentation")[0]
    for title in PAGES:
        [page] = fake.by_title("DOCS", title)
        assert page.ancestors == [parent.id] and page.version == 1
    writes_before = len(fake.writes())

    again = publish(PAGES, "DOCS", "acme-prod documentation", cfg, sleep=lambda s: None)
    assert again.writes == 0 and sorted(again.unchanged) == sorted(PAGES)
    assert len(fake.writes()) == writes_before
    assert again.page_ids == first.page_ids

    changed = dict(PAGES)
    changed["acme-prod: Invoice__c"] += "\nOne more line.\n"
    third = publish(changed, "DOCS", "acme-prod documentation", cfg, sleep=lambda s: None)
    assert third.updated == ["acme-prod: Invoice__c"] and third.created == []
    puts = [w for w in fake.writes()[writes_before:]]
    [page] = fake.by_title("DOCS", "acme-prod: Invoice__c")
    assert puts == [("PUT", f"/wiki/rest/api/content/{page.id}")]
    assert page.version == 2 and "One more line." in page.body
    # Never a duplicate title.
    titles = [p.title for p in fake.pages.values()]
    assert len(titles) == len(set(titles)) == len(PAGES) + 1


def test_confluence_adopts_a_hand_made_page_and_existing_parent(confluence) -> None:
    fake, cfg = confluence
    parent = fake.add_page("Docs root", "DOCS")
    fake.add_page("acme-prod: Home", "DOCS", ancestors=[parent.id])
    report = publish({"acme-prod: Home": "hello"}, "DOCS", "Docs root", cfg, sleep=lambda s: None)
    assert report.updated == ["acme-prod: Home"] and report.created == []
    assert fake.by_title("DOCS", "acme-prod: Home")[0].version == 2
    assert len(fake.pages) == 2


def test_confluence_retries_429_and_5xx(confluence) -> None:
    fake, cfg = confluence
    waits: list[float] = []
    fake.fail("429", times=2, method="POST")
    fake.fail("500", times=1, method="GET")
    report = publish({"P": "x"}, "DOCS", None, cfg, sleep=waits.append)
    assert report.created == ["P"] and report.stats["rate_limited"] == 2 and report.stats["retries"] == 3
    assert waits[:1] == [0.0] or 0.0 in waits
    assert len(fake.by_title("DOCS", "P")) == 1


def test_confluence_bad_credentials_give_a_clear_error_without_the_token(confluence, monkeypatch, caplog) -> None:
    fake, cfg = confluence
    monkeypatch.setenv("TEST_CONFLUENCE_TOKEN", "wrong-token-value-123")
    caplog.set_level("DEBUG")
    with pytest.raises(ConfluenceError) as exc:
        publish(PAGES, "DOCS", None, cfg, sleep=lambda s: None)
    msg = str(exc.value)
    assert "wrong-token-value-123" not in caplog.text and "wrong-token" not in repr(exc.value.__cause__)
    assert "401" in msg and "TEST_CONFLUENCE_TOKEN" in msg and "TEST_CONFLUENCE_EMAIL" in msg
    assert "wrong-token-value-123" not in msg and TOKEN not in msg and EMAIL not in msg
    monkeypatch.delenv("TEST_CONFLUENCE_TOKEN")
    with pytest.raises(ConfluenceError, match="set TEST_CONFLUENCE_TOKEN"):
        publish(PAGES, "DOCS", None, cfg)
    assert fake.pages == {}


def test_markdown_to_storage() -> None:
    s = markdown_to_storage(
        "# T <x>\n\npara & more\nline two\n\n| a | b |\n|---|---|\n| `p|q` | x\\|y |\n\n"
        "1. one\n2. two\n\n- a\n  - b\n- c\n\n```\n]]> raw <tag>\n```\n\n> quoted\n\n---\n"
        "[local](x.md) [ext](https://e.com/a?b=1&c=2) **b** *i* \\*no\\*"
    )
    assert "<h1>T &lt;x&gt;</h1>" in s and "<p>para &amp; more line two</p>" in s
    assert "<table><tbody><tr><th>a</th><th>b</th></tr><tr><td><code>p|q</code></td><td>x|y</td></tr>" in s
    flat = s.replace("\n", "")
    assert "<ol><li>one</li><li>two</li></ol>" in flat
    assert "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>" in flat
    assert "<![CDATA[]]]]><![CDATA[> raw <tag>]]>" in s
    assert "<blockquote><p>quoted</p></blockquote>" in s and "<hr />" in s
    assert 'local <a href="https://e.com/a?b=1&amp;c=2">ext</a> <strong>b</strong> <em>i</em> *no*' in s
    # The docs site's own pages convert too (tables with links, mermaid fences as code macros).
    assert split_row("| `a|b` | c \\| d |") == ["`a|b`", "c \\| d"]


def test_the_docs_site_publishes_as_well_formed_storage(site, confluence) -> None:
    import xml.etree.ElementTree as ET

    fake, cfg = confluence
    pages = site.markdown_pages("acme-prod: ")
    assert "acme-prod: Account" in pages and "acme-prod: Home" in pages
    for title, md in pages.items():
        storage = markdown_to_storage(md)
        ET.fromstring(f'<root xmlns:ac="urn:ac" xmlns:ri="urn:ri">{storage}</root>')  # well-formed
    report = publish(pages, "DOCS", "acme-prod documentation", cfg, sleep=lambda s: None)
    assert len(report.created) == len(pages) + 1
    again = publish(pages, "DOCS", "acme-prod documentation", cfg, sleep=lambda s: None)
    assert again.writes == 0
    account = fake.by_title("DOCS", "acme-prod: Account")[0].body
    assert "<code>ApexClass:AccountHealthCalculator</code>" in account
    assert '<ac:structured-macro ac:name="code"><ac:parameter ac:name="title">Mermaid diagram' in account
