"""Hostile input end to end: names that look like SQL, Cypher or SOQL, XML bombs, oversized and
binary files, hostile names served by a live org.

What the lower layers already prove (and this module does not repeat): the stores round-trip
hostile keys byte-exact (``test_graph_store_duckdb.py`` / ``test_graph_store_neo4j.py``), the SFDX
reader refuses entity expansion and external entities and skips oversized, binary and
out-of-root files (``test_sfdx_reader.py``), the docs site cannot be escaped by a name
(``test_docs.py``). Here: the same names through the whole pipeline (files on disk → graph →
store → CLI → ``ask``; the Neo4j backend gets the same strings and its store tests cover
them), the findings reaching the report a person reads, SOQL built from names
by the live extractor, and a check that SQL/Cypher text never carries a value.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import dagster as dg
import pytest

from aicolleague_pipelines import cli
from aicolleague_pipelines.defs.salesforce.assets import sf_inventory
from aicolleague_pipelines.lib.agents.ask import answer
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines.lib.salesforce.live import extract_live_inventory, is_soql_identifier, soql_quote
from aicolleague_pipelines.lib.salesforce.report import inventory_markdown
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
from aicolleague_pipelines.resources import OrgsResource
from aicolleague_pipelines_tests.conftest import write_orgs_file
from aicolleague_pipelines_tests.fakes.conftest_fixtures import (  # noqa: F401 (fixtures)
    fake_salesforce,
    fake_salesforce_env,
    make_sf_client,
)
from aicolleague_pipelines_tests.fakes.salesforce import parse_soql, sf_id

PACKAGE = Path(__file__).resolve().parents[1] / "aicolleague_pipelines"
FIXTURES = Path(__file__).parent / "fixtures" / "sfdx"
ORG = "hostile-org"

#: Field API names as they sit in file names on disk: quotes, backslashes, unicode, and SQL,
#: Cypher and SOQL syntax. (A "/" cannot be in a file name; the stores' own tests cover it.)
FIELDS = [
    "Quote'd \"x\" \\ back\\\\__c",
    "Ünïcödé_日本語_🚀__c",
    "x'}) MATCH (n) DETACH DELETE n WITH 1 AS z MATCH (m {k: '__c",
    "a' OR Name LIKE '%__c",
    "'); DROP TABLE nodes;--__c",
    "$param {x: 1} `tick`__c",
]
LAYOUT = "Invoice__c-Hostile \"Lay'out\" \\ ü"
KEYS = [f"CustomField:Invoice__c.{n}" for n in FIELDS]
USERS = {f"Layout:{LAYOUT}", "PermissionSet:Hostile_PS"}
_XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'


def _hostile_project(root: Path) -> Path:
    base = root / "force-app/main/default"
    for d in ("objects/Invoice__c/fields", "layouts", "permissionsets"):
        (base / d).mkdir(parents=True)
    (root / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app", "default": true}]}')
    (base / "objects/Invoice__c/Invoice__c.object-meta.xml").write_text(
        f"{_XML}<CustomObject {_NS}><label>Invoice</label><pluralLabel>Invoices</pluralLabel></CustomObject>\n")
    for n in FIELDS:
        (base / f"objects/Invoice__c/fields/{n}.field-meta.xml").write_text(
            f"{_XML}<CustomField {_NS}><fullName>{escape(n)}</fullName><label>{escape(n)}</label>"
            "<type>Text</type><length>80</length></CustomField>\n", encoding="utf-8")
    items = "".join(f"<layoutItems><field>{escape(n)}</field></layoutItems>" for n in FIELDS)
    (base / f"layouts/{LAYOUT}.layout-meta.xml").write_text(
        f"{_XML}<Layout {_NS}><layoutSections><layoutColumns>{items}</layoutColumns></layoutSections></Layout>\n",
        encoding="utf-8")
    perms = "".join(f"<fieldPermissions><editable>true</editable><field>Invoice__c.{escape(n)}</field>"
                    "<readable>true</readable></fieldPermissions>" for n in FIELDS)
    (base / "permissionsets/Hostile_PS.permissionset-meta.xml").write_text(
        f"{_XML}<PermissionSet {_NS}><label>Hostile</label>{perms}</PermissionSet>\n", encoding="utf-8")
    return root


@pytest.fixture
def hostile_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, object]:
    inv = read_sfdx_project(_hostile_project(tmp_path / "project"), ORG)
    graph = build_org_graph(inv)
    home = tmp_path / "data"
    with DuckDBGraphStore(home / "graph.duckdb") as store:
        store.load_snapshot(ORG, graph.nodes.values(), graph.edges)
    monkeypatch.setenv("AICOLLEAGUE_HOME", str(home))
    for var in ("NEO4J_URI", "AICOLLEAGUE_ACCESS_POLICY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return home, graph


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- names through the whole pipeline -------------------------------------------------------
def test_hostile_names_survive_reader_and_graph_byte_exact(hostile_home) -> None:
    _, graph = hostile_home
    assert set(KEYS) | USERS <= set(graph.nodes)
    for key in KEYS:
        sources = {e.source for e in graph.edges if e.target == key and e.kind != "child_of"}
        assert sources == USERS, key
    ev = {e.evidence for e in graph.edges if e.source == f"Layout:{LAYOUT}"}
    assert ev == {f"force-app/main/default/layouts/{LAYOUT}.layout-meta.xml"}


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
def test_hostile_names_through_the_cli(hostile_home, capsys, key: str) -> None:
    code, out, err = _cli(capsys, "where-used", "--org", ORG, key, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["source"] for r in rows if r["kind"] != "child_of"} == USERS
    assert {r["target"] for r in rows} == {key}
    code, out, err = _cli(capsys, "impact", "--org", ORG, key, "--json")
    assert code == 0, err
    assert {json.loads(line)["key"] for line in out.splitlines()} == USERS
    assert all(json.loads(line)["path"][0] == key for line in out.splitlines())
    code, out, err = _cli(capsys, "impact", "--org", ORG, key)  # the table names the key verbatim
    assert code == 0 and key in out and f"Layout:{LAYOUT}" in out
    code, out, err = _cli(capsys, "compare", key)
    assert code == 0 and "present" in out


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
def test_hostile_names_through_ask(hostile_home, capsys, key: str) -> None:
    home, _ = hostile_home
    code, out, err = _cli(capsys, "ask", "--org", ORG, "--offline", "--json", f"where is {key} used?")
    assert code == 0, err
    a = json.loads(out)
    assert a["method"] == "where_used" and a["subject"] == key
    assert set(a["cited_keys"]) == {key} | USERS
    full_name = key.partition(":")[2]
    with DuckDBGraphStore(home / "graph.duckdb", read_only=True) as store:
        impact = answer(store, ORG, f"what breaks if I delete {full_name}?")
    assert impact.method == "impact" and impact.subject == key
    assert set(impact.cited_keys) >= USERS | {key}


# --- SQL / Cypher: text is constant, values are parameters ----------------------------------
_QUERY_WORDS = re.compile(r"\b(SELECT|INSERT|DELETE|UPDATE|MATCH|MERGE|CREATE|UNWIND|WHERE|DETACH|RETURN|DROP|"
                          r"SET|FROM|VALUES|CALL|REMOVE|WITH)\b")


def _constant_names(tree: ast.AST) -> set[str]:
    """Names that can only hold constant text: module-level string constants and loop variables
    over a literal tuple/list of strings (``for table in ("edges", "nodes")``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name) and t.id.upper() == t.id}
        if (isinstance(node, ast.For) and isinstance(node.target, ast.Name)
                and isinstance(node.iter, (ast.Tuple, ast.List))
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts)):
            names.add(node.target.id)
    return names


def _built_queries(path: Path) -> list[tuple[int, str]]:
    """Query text built at run time from anything but constants: f-strings, ``+``/``%``,
    ``.format`` whose literal parts hold SQL/Cypher keywords."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constant = _constant_names(tree)
    bad = []
    for node in ast.walk(tree):
        parts: list[ast.AST] = []
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            parts = [x for x in (node.left, node.right) if not isinstance(x, ast.Constant)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            parts = list(node.args) + [k.value for k in node.keywords]
        else:
            continue
        text = " ".join(c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str))
        if not _QUERY_WORDS.search(text):
            continue
        if any(not (isinstance(p, ast.Name) and p.id in constant) for p in parts):
            bad.append((node.lineno, text[:80]))
    return sorted({line: (line, text) for line, text in bad}.values())  # one per line (nested "+")


def test_sql_and_cypher_are_built_only_with_parameters(tmp_path: Path) -> None:
    """Every module that talks to DuckDB or Neo4j, and the query library: no query text is
    formatted with a value (keys, orgs, evidence travel as parameters or data frames)."""
    modules = [p for p in PACKAGE.rglob("*.py")
               if re.search(r"^\s*(import duckdb|import neo4j|from neo4j)", p.read_text(encoding="utf-8"), re.M)]
    modules.append(PACKAGE / "lib/graph/queries.py")
    assert {p.name for p in modules} >= {"store_duckdb.py", "store_neo4j.py"}
    found = {str(p.relative_to(PACKAGE)): _built_queries(p) for p in modules}
    assert {k: v for k, v in found.items() if v} == {}
    # the checker does catch a value formatted into a query
    probe = tmp_path / "probe.py"
    probe.write_text('T = "nodes"\n'
                     'def f(con, org):\n'
                     '    for t in ("a", "b"):\n'
                     '        con.execute(f"DELETE FROM {t} WHERE org = ?", [org])\n'
                     '    con.execute(f"DELETE FROM {T} WHERE org = ?", [org])\n'
                     '    con.execute(f"DELETE FROM nodes WHERE org = \'{org}\'")\n'
                     '    con.execute("MATCH (c {key: \'" + org + "\'}) DETACH DELETE c")\n')
    assert [line for line, _ in _built_queries(probe)] == [6, 7]


# --- SOQL built from names by the live extractor --------------------------------------------
SOQL_HOSTILE = ["Bob's BBQ", 'say "hi"', "back\\slash\\", "line\nbreak\r\ttab", "bell\b form\f",
                "' OR Name != '", "%_wild", "ünï 日本 🚀", "\\'; DROP"]


@pytest.mark.parametrize("value", SOQL_HOSTILE, ids=range(len(SOQL_HOSTILE)))
def test_soql_quote_round_trips_through_a_soql_parser(value: str) -> None:
    q = parse_soql(f"SELECT Id FROM Account WHERE Name = {soql_quote(value)} AND Id != null")
    assert q.where[0] == ("Name", "=", value)
    assert q.where[1][0] == "Id"  # nothing of the value leaked into the query's structure


def test_soql_identifiers_are_plain_api_names() -> None:
    assert all(is_soql_identifier(n) for n in ("Account", "ns__Rate__mdt", "PermissionsViewAllData", "A1_b__c"))
    for n in ("Rate__mdt WHERE Id != null", "x'__mdt", "1abc", "_x", "a.b", "a,b", "", "a b", "a\nb"):
        assert not is_soql_identifier(n), n


def test_live_extraction_quotes_hostile_names_from_the_org(make_sf_client, fake_salesforce) -> None:
    """The fake org serves an object whose API name holds quotes, a backslash and a line break,
    and a custom metadata type whose "name" is SOQL. The object's fields are still read (its
    name travels quoted in the FieldDefinition query), the type's records are not queried at all,
    and both become findings; nothing fails."""
    org = fake_salesforce.org
    hostile = "Evil'Obj\\\"x\nline__c"
    durable = sf_id("01I", 777)
    org.add("EntityDefinition", Id="000000000000000AAA", DurableId=durable, QualifiedApiName=hostile,
            DeveloperName="Evil", NamespacePrefix=None, Label="Evil", MasterLabel="Evil", IsCustomizable=True,
            IsCustomSetting=False, IsQueryable=True, KeyPrefix="a9Z", InternalSharingModel="Private",
            LastModifiedDate=None)
    org.add("FieldDefinition", Id="000000000000000AAA", DurableId=f"{durable}.Name", QualifiedApiName="Name",
            DeveloperName="Name", EntityDefinitionId=durable,
            EntityDefinition={"QualifiedApiName": hostile, "DurableId": durable, "DeveloperName": "Evil"},
            NamespacePrefix=None, Label="Name", DataType="Text(80)", Description="read through a quoted name",
            ComplianceGroup=None, SecurityClassification=None, RelationshipName=None)
    injected = "Rate__mdt WHERE DeveloperName != null ORDER BY Zz__mdt"
    org.add("EntityDefinition", Id="000000000000000AAA", DurableId=sf_id("01I", 778), QualifiedApiName=injected,
            DeveloperName="Rate", NamespacePrefix=None, Label="Rate", MasterLabel="Rate", IsCustomizable=True,
            IsCustomSetting=False, IsQueryable=True, KeyPrefix="m0Z", InternalSharingModel="Public",
            LastModifiedDate=None)
    client, cfg = make_sf_client()
    inv = extract_live_inventory(client, cfg)
    comps = inv.by_key()
    field = comps[f"CustomField:{hostile}.Name"]
    assert field.description == "read through a quoted name"
    fd_queries = [r.soql for r in fake_salesforce.queries() if r.obj == "FieldDefinition"]
    assert any(soql_quote(hostile) in q for q in fd_queries)
    # the "type name" only ever travels quoted, as data; it is never queried FROM
    assert not [q for q in (r.soql or "" for r in fake_salesforce.queries())
                if "Rate__mdt" in q.replace(soql_quote(injected), "")]
    msgs = [str(f) for f in inv.findings]
    assert any(repr(injected) in m and "not a valid API name" in m and "not read" in m for m in msgs), msgs
    assert any(repr(hostile) in m and "not described" in m for m in msgs), msgs
    assert "CustomField:Invoice__c.Amount__c" in comps  # the rest of the org is read as usual


# --- XML bombs, external entities, oversized and binary files: refused, and reported ---------
def _hostile_files_project(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    shutil.copytree(FIXTURES / "hostile", project)
    classes = project / "force-app/main/default/classes"
    meta = (classes / "Good.cls-meta.xml").read_text()
    (classes / "Huge.cls").write_bytes(b"public class Huge {}\n" + b"// padding\n" * 500_000)  # 5.5 MB
    (classes / "Huge.cls-meta.xml").write_text(meta)
    (classes / "Blob.cls").write_bytes(b"public class Blob {\x00\x01\x02}")
    (classes / "Blob.cls-meta.xml").write_text(meta)
    return project


REFUSED = {
    "Bomb__c.field-meta.xml": "entity-expansion",
    "Xxe__c.field-meta.xml": "external entity",
    "Param_Entity.flow-meta.xml": "external entity",
    "Huge.cls": "limit",
    "Blob.cls": "binary",
}


def test_refused_and_skipped_files_reach_the_report(tmp_path: Path, monkeypatch, capsys) -> None:
    """Through Dagster's sf_inventory asset: each refused or skipped file is a finding in the
    materialization's summary (what a person reads in the UI) and counts as a problem."""
    project = _hostile_files_project(tmp_path)
    orgs_file = write_orgs_file(tmp_path / "orgs.yaml", [{"name": ORG, "source": "sfdx", "path": str(project)}])
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(orgs_file))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, [ORG])
        result = dg.materialize([sf_inventory], instance=instance, partition_key=ORG,
                                resources={"orgs": OrgsResource()})
        assert result.success
        mat = result.asset_materializations_for_node("sf_inventory")[0]
    summary = mat.metadata["summary"].value
    for name, why in REFUSED.items():
        line = next((ln for ln in summary.splitlines() if name in ln), None)
        assert line is not None and why in line, (name, summary)
    assert mat.metadata["problems"].value >= len(REFUSED)
    assert mat.metadata["files_skipped"].value >= len(REFUSED)
    assert "root:x:" not in summary and "lollol" not in summary
    inv = result.output_for_node("sf_inventory")
    assert "ApexClass:Good" in inv.by_key() and "ApexClass:Huge" not in inv.by_key()
    # the same findings on the command line, each naming its file
    code, out, err = _cli(capsys, "graph", "scan", str(project), "--org", ORG)
    assert code == 0
    for name, why in REFUSED.items():
        assert any(name in ln and why in ln for ln in err.splitlines()), (name, err)
    assert inventory_markdown(inv, "sfdx").count("\n- ") >= len(REFUSED)
