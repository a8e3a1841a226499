"""Org isolation and the access policy: no query path shows a user an org outside their scope.

Two SFDX orgs share every key (``Invoice__c``, ``Invoice__c.Amount__c``, ``InvoiceService`` …);
``globex-b`` also holds canaries — components whose names contain ``zebra`` (an Apex class, a
field, a Metabase card joined by platform lineage, and ``InvoiceService`` attributes) — that
exist nowhere else. ``alice`` may see ``acme-a`` only: every path (impact, where-used, deps,
boundary, unused, cycles, compare, ask, orgs listings, run, docs) is driven through the real
CLI or library, and ``zebra`` must never appear in what she gets — output or error. The same
commands run as ``admin`` (``*``) do show the canaries, so the checks can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicolleague_pipelines import cli
from aicolleague_pipelines.lib.access import (
    AccessDenied,
    AccessPolicyError,
    current_scope,
    load_policy,
)
from aicolleague_pipelines.lib.agents.ask import answer
from aicolleague_pipelines.lib.agents.docs import build_docs_site
from aicolleague_pipelines.lib.graph import queries
from aicolleague_pipelines.lib.graph.build import build_org_graph
from aicolleague_pipelines.lib.graph.model import Node
from aicolleague_pipelines.lib.graph.store import GraphStoreError
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore
from aicolleague_pipelines.lib.platforms.lineage import add_platform_lineage, platforms_for_org
from aicolleague_pipelines.lib.platforms.model import PlatformExtract, SalesforceLink
from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project
from aicolleague_pipelines_tests.conftest import write_orgs_file
from aicolleague_pipelines_tests.fakes.bolt_server import bolt_server  # noqa: F401 (fixture)

A, B = "acme-a", "globex-b"
CANARY = "zebra"
AMOUNT = "CustomField:Invoice__c.Amount__c"
SVC = "ApexClass:InvoiceService"
POLICY = """\
users:
  alice: [acme-a]
  admin: ["*"]
  wanda: ["acme-*"]
groups:
  billing-team:
    members: [bob]
    orgs: [globex-b]
"""

_CLASS_META = ('<?xml version="1.0" encoding="UTF-8"?>\n<ApexClass xmlns="http://soap.sforce.com/2006/04/metadata">'
               "<apiVersion>{v}</apiVersion><status>Active</status></ApexClass>\n")
_FIELD = ('<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">'
          "<fullName>{name}</fullName><label>{label}</label><type>Number</type><precision>18</precision>"
          "<scale>2</scale></CustomField>\n")


def _project(root: Path, api: str, classes: dict[str, str], fields: dict[str, str]) -> Path:
    base = root / "force-app/main/default"
    (base / "classes").mkdir(parents=True)
    (base / "objects/Invoice__c/fields").mkdir(parents=True)
    (root / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app", "default": true}]}')
    (base / "objects/Invoice__c/Invoice__c.object-meta.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">'
        "<label>Invoice</label><pluralLabel>Invoices</pluralLabel><sharingModel>ReadWrite</sharingModel>"
        "</CustomObject>\n")
    for name, label in fields.items():
        (base / f"objects/Invoice__c/fields/{name}.field-meta.xml").write_text(_FIELD.format(name=name, label=label))
    for name, body in classes.items():
        (base / f"classes/{name}.cls").write_text(body)
        (base / f"classes/{name}.cls-meta.xml").write_text(_CLASS_META.format(v=api))
    return root


_SERVICE = ("public with sharing class InvoiceService {\n"
            "    public static Decimal total(Id invoiceId) {\n"
            "        Invoice__c inv = [SELECT Id, Amount__c FROM Invoice__c WHERE Id = :invoiceId];\n"
            "        return inv.Amount__c;\n    }\n}\n")


def _extracts() -> list[PlatformExtract]:
    """Metabase cards per org: acme-a's is plain, globex-b's is a canary (platform lineage)."""
    out = []
    for org, card in ((A, "MetabaseCard:metabase-a/revenue"), (B, f"MetabaseCard:metabase-b/{CANARY}-canary-card")):
        out.append(PlatformExtract("metabase", card.split(":")[1].split("/")[0], "2024-01-01T00:00:00Z",
                                   nodes=[Node(card, "MetabaseCard", card.split(":", 1)[1])],
                                   links=[SalesforceLink(card, "Invoice__c", "Invoice__c.Amount__c",
                                                         "card sql", org=org)]))
    return out


@pytest.fixture(scope="module")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both orgs read from disk, their graphs built and joined to the platforms as org_graph does."""
    root = tmp_path_factory.mktemp("orgs")
    pa = _project(root / A, "62.0", {
        "InvoiceService": _SERVICE,
        "AcmeReport": "public class AcmeReport {\n    Decimal t = InvoiceService.total(null);\n}\n",
    }, {"Amount__c": "Amount"})
    pb = _project(root / B, "58.0", {
        "InvoiceService": _SERVICE.replace("public static", f"// {CANARY} canary comment\n    public static"),
        f"Zebra{CANARY.capitalize()}CanaryService": (
            f"public class Zebra{CANARY.capitalize()}CanaryService {{\n"
            "    Decimal t = InvoiceService.total(null);\n"
            "    List<Invoice__c> l = [SELECT Zebra_Canary__c, Amount__c FROM Invoice__c];\n}\n"),
    }, {"Amount__c": "Amount", "Zebra_Canary__c": "Zebra canary"})
    out = {}
    for org, path in ((A, pa), (B, pb)):
        inv = read_sfdx_project(path, org)
        graph = build_org_graph(inv)
        add_platform_lineage(graph, platforms_for_org(_extracts(), org))
        out[org] = (inv, graph, path)
    return out


@pytest.fixture
def home(tmp_path: Path, orgs: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    with DuckDBGraphStore(data / "graph.duckdb") as store:
        for org, (_, graph, _) in orgs.items():
            store.load_snapshot(org, graph.nodes.values(), graph.edges, meta={"api_version": "62.0"})
    monkeypatch.setenv("AICOLLEAGUE_HOME", str(data))
    for k in ("NEO4J_URI", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    monkeypatch.setenv("AICOLLEAGUE_ACCESS_POLICY", str(policy))
    write_orgs_file(tmp_path / "orgs.yaml", [{"name": o, "source": "sfdx", "path": str(p)}
                                             for o, (_, _, p) in orgs.items()])
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(tmp_path / "orgs.yaml"))
    return data


def _run(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, user: str | None, *argv: str
         ) -> tuple[int, str, str]:
    if user is None:
        monkeypatch.delenv("AICOLLEAGUE_USER", raising=False)
    else:
        monkeypatch.setenv("AICOLLEAGUE_USER", user)
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


#: Every query path of the CLI, on keys both orgs share: alice asks about acme-a. The second
#: item is what the same command shows someone who may see globex-b (the control): a canary
#: component, or at least the org.
IN_SCOPE = [
    (("impact", "--org", A, AMOUNT), CANARY),
    (("impact", "--org", A, "CustomObject:Invoice__c", "--json"), CANARY),
    (("where-used", "--org", A, AMOUNT), CANARY),
    (("where-used", "--org", A, SVC, "--json"), CANARY),
    (("deps", "--org", A, SVC), B),
    (("boundary", "--org", A, SVC, "--json"), None),
    (("unused", "--org", A, "--type", "CustomField"), B),
    (("cycles", "--org", A), B),
    (("compare", SVC), B),
    (("compare", AMOUNT, "--json"), B),
    (("graph", "orgs"), B),
    (("orgs",), B),
    (("ask", "--org", A, "--offline", "what breaks if I delete Invoice__c.Amount__c?"), CANARY),
    (("ask", "--org", A, "--offline", "who uses Invoice__c.Amount__c?"), CANARY),
    (("ask", "--org", A, "--offline", "what uses InvoiceService?", "--json"), CANARY),
    (("ask", "--org", A, "--offline", "compare InvoiceService across orgs"), B),
    (("ask", "--org", A, "--offline", "which orgs have Invoice__c.Amount__c?", "--json"), B),
    (("ask", "--org", A, "--offline", "what changed?"), B),
]
#: The same questions about globex-b: each one refused.
OUT_OF_SCOPE = [
    ("impact", "--org", B, AMOUNT),
    ("where-used", "--org", B, AMOUNT, "--json"),
    ("deps", "--org", B, SVC),
    ("boundary", "--org", B, SVC),
    ("unused", "--org", B),
    ("cycles", "--org", B),
    ("compare", SVC, "--org", A, "--org", B),
    ("ask", "--org", B, "--offline", "who uses Invoice__c.Amount__c?"),
    ("ask", "--org", A, "--offline", "who uses Invoice__c.Amount__c in the globex-b org?"),
    ("ask", "--org", A, "--offline", "what breaks if I delete Amount__c in org globex-b"),
    ("ask", "--org", A, "--offline", "compare InvoiceService between acme-a and globex-b"),
    ("ask", "--org", A, "--offline", "is Invoice__c.Amount__c the same in acme-a and globex-b?"),
    ("run", "--org", B),
]


@pytest.mark.parametrize("argv,control", IN_SCOPE, ids=lambda a: " ".join(a)[:60] if isinstance(a, tuple) else "")
def test_in_scope_paths_never_show_another_orgs_components(home, capsys, monkeypatch, argv, control) -> None:
    code, out, err = _run(capsys, monkeypatch, "alice", *argv)
    assert code == 0, err
    assert out.strip()
    assert CANARY not in (out + err).lower()
    assert B not in out + err
    # the control: the same command for someone who may see every org
    code, out, err = _run(capsys, monkeypatch, "admin", *[B if a == A else a for a in argv])
    assert code == 0, err
    if control:
        assert control in out.lower(), argv


@pytest.mark.parametrize("argv", OUT_OF_SCOPE, ids=lambda a: " ".join(a)[:60])
def test_out_of_scope_paths_are_refused_without_revealing_anything(home, capsys, monkeypatch, argv) -> None:
    code, out, err = _run(capsys, monkeypatch, "alice", *argv)
    assert code == 2
    assert out == ""
    assert f"org '{B}' is not in your scope (policy file {home.parent / 'policy.yaml'}, user alice)" in err
    assert CANARY not in err.lower()
    # the control: someone who may see both orgs gets an answer (globex-b's canaries included)
    if argv[0] != "run":
        code, out, err = _run(capsys, monkeypatch, "admin", *argv)
        assert code == 0, err


def test_a_denial_reads_the_same_whether_the_org_exists_or_not(home, capsys, monkeypatch) -> None:
    for cmd in (("impact", "--org", "{org}", AMOUNT), ("ask", "--org", "{org}", "--offline", "who uses Amount__c"),
                ("ask", "--org", A, "--offline", "who uses Amount__c in the {org} org"),
                ("compare", SVC, "--org", "{org}"), ("run", "--org", "{org}")):
        seen = []
        for org in (B, "nowhere-z"):
            code, out, err = _run(capsys, monkeypatch, "alice", *[a.format(org=org) for a in cmd])
            seen.append((code, out, err.replace(org, "<org>")))
        assert seen[0] == seen[1] and seen[0][0] == 2, cmd
    # a component only another org holds is just missing, as any unknown key is
    key = "CustomField:Invoice__c.Zebra_Canary__c"
    for argv in (("impact", "--org", A, key), ("compare", key), ("where-used", "--org", A, key),
                 ("ask", "--org", A, "--offline", "who uses Invoice__c.Zebra_Canary__c")):
        code, out, err = _run(capsys, monkeypatch, "alice", *argv)
        assert code in (1, 2), argv
        assert f"'{A}' has no component" in err or "no component matching" in out, (argv, out, err)
        assert B not in out + err and CANARY not in (out + err).replace(key, "").replace("Zebra_Canary__c", "").lower()


def test_an_in_scope_org_without_a_snapshot_lists_only_orgs_in_scope(home, capsys, monkeypatch) -> None:
    code, out, err = _run(capsys, monkeypatch, "wanda", "impact", "--org", "acme-zz", AMOUNT)  # acme-* matches
    assert code == 2
    assert "no graph snapshot for org 'acme-zz'" in err and A in err and B not in err


def test_fail_closed_unknown_user_and_fallback_identity(home, capsys, monkeypatch) -> None:
    code, out, err = _run(capsys, monkeypatch, "mallory", "graph", "orgs")
    assert code == 0 and out.startswith("0 org(s)") and A not in out.replace("acme-", "") and B not in out
    code, out, err = _run(capsys, monkeypatch, "mallory", "impact", "--org", A, AMOUNT)
    assert code == 2 and f"org '{A}' is not in your scope" in err and "user mallory" in err
    code, out, err = _run(capsys, monkeypatch, "mallory", "orgs")
    assert code == 0 and "0 org(s)" in out and B not in out
    # without $AICOLLEAGUE_USER the operating-system login name is the identity
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "bob")
    code, out, err = _run(capsys, monkeypatch, None, "graph", "orgs", "--json")
    assert code == 0 and [json.loads(line)["org"] for line in out.splitlines()] == [B]


def test_without_a_policy_everything_is_visible(home, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AICOLLEAGUE_ACCESS_POLICY")
    code, out, err = _run(capsys, monkeypatch, "mallory", "graph", "orgs", "--json")
    assert [json.loads(line)["org"] for line in out.splitlines()] == [A, B]
    code, out, err = _run(capsys, monkeypatch, "mallory", "impact", "--org", B, AMOUNT)
    assert code == 0 and CANARY in out.lower()


@pytest.mark.parametrize("text,needle", [
    ("users: [alice", "not valid YAML at line"),
    ("", "empty file"),
    ("users: alice\n", "users must map"),
    ("users:\n  alice: acme-a\n", "users.alice must be a list"),
    ("users:\n  alice: [acme-a, 7]\n", "holds 7"),
    ("user:\n  alice: [acme-a]\n", "unknown key(s) user"),
    ("groups:\n  g: {members: [alice]}\n", "group 'g' must have exactly members"),
    ("groups:\n  g: {members: [alice], orgs: [acme-a], admin: true}\n", "group 'g' must have exactly"),
    ("- alice\n", "expected a mapping"),
])
def test_a_malformed_policy_shows_nothing(home, capsys, monkeypatch, text, needle) -> None:
    policy = home.parent / "policy.yaml"
    policy.write_text(text)
    for argv in (("impact", "--org", A, AMOUNT), ("graph", "orgs"), ("orgs",), ("run",),
                 ("ask", "--org", A, "--offline", "who uses Amount__c")):
        code, out, err = _run(capsys, monkeypatch, "alice", *argv)
        assert (code, out) == (2, ""), argv
        assert needle in err and str(policy) in err, (argv, err)
        assert CANARY not in err.lower()


def test_a_missing_or_empty_policy_setting_shows_nothing(home, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AICOLLEAGUE_ACCESS_POLICY", str(home.parent / "no-such-policy.yaml"))
    code, out, err = _run(capsys, monkeypatch, "admin", "graph", "orgs")
    assert (code, out) == (2, "") and "no-such-policy.yaml cannot be read" in err
    monkeypatch.setenv("AICOLLEAGUE_ACCESS_POLICY", " ")
    code, out, err = _run(capsys, monkeypatch, "admin", "impact", "--org", A, AMOUNT)
    assert (code, out) == (2, "") and "AICOLLEAGUE_ACCESS_POLICY is set but empty" in err


def test_policy_file_scopes_groups_wildcards_and_default(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(POLICY + "default: [shared-demo]\n")
    pol = load_policy(p)
    assert pol.scope_for("alice").patterns == ("shared-demo", A)
    assert pol.scope_for("bob").filter([A, B, "shared-demo"]) == [B, "shared-demo"]
    assert pol.scope_for("wanda").filter([A, "acme-uat", B]) == [A, "acme-uat"]
    assert pol.scope_for("admin").filter([A, B]) == [A, B]
    assert pol.scope_for("nobody").filter([A, B, "shared-demo"]) == ["shared-demo"]
    assert pol.scope_for(None).filter([A]) == []
    env = {"AICOLLEAGUE_ACCESS_POLICY": str(p), "AICOLLEAGUE_USER": "bob"}
    scope = current_scope(env)
    assert scope.user == "bob" and scope.allows(B) and not scope.allows(A)
    with pytest.raises(AccessDenied, match=r"org 'acme-a' is not in your scope \(policy file .*p.yaml, user bob\)"):
        scope.check(A)
    assert current_scope({}).unrestricted
    with pytest.raises(AccessPolicyError):
        current_scope({"AICOLLEAGUE_ACCESS_POLICY": ""})


# --- the query library ----------------------------------------------------------------------
def _alice(home: Path) -> tuple[DuckDBGraphStore, queries.ScopedGraphStore]:
    raw = DuckDBGraphStore(home / "graph.duckdb", read_only=True)
    return raw, queries.scoped(raw, load_policy(home.parent / "policy.yaml").scope_for("alice"))


@pytest.mark.parametrize("call", [
    lambda s: s.nodes(B), lambda s: s.edges(B), lambda s: s.node(B, SVC), lambda s: s.snapshots(B),
    lambda s: s.where_used(B, AMOUNT), lambda s: s.impact(B, AMOUNT), lambda s: s.dependencies(B, SVC),
    lambda s: s.graph_index(B), lambda s: s.suggest(B, "Zebra"), lambda s: s.load_snapshot(B, [], []),
    lambda s: queries.impact(s, B, AMOUNT), lambda s: queries.where_used(s, B, AMOUNT),
    lambda s: queries.dependencies(s, B, SVC), lambda s: queries.deployment_boundary(s, B, [SVC]),
    lambda s: queries.unused(s, B), lambda s: queries.cycles(s, B), lambda s: queries.top_ranked(s, B),
    lambda s: queries.compare_component(s, [A, B], SVC),
    lambda s: answer(s, B, "who uses Amount__c"), lambda s: answer(s, A, "compare InvoiceService in acme-a and globex-b"),
])
def test_every_library_path_to_another_org_is_denied(home, call) -> None:
    raw, store = _alice(home)
    with raw:
        with pytest.raises(AccessDenied) as exc:
            call(store)
        assert CANARY not in str(exc.value).lower()
        admin = queries.scoped(raw, load_policy(home.parent / "policy.yaml").scope_for("admin"))
        try:
            call(admin)  # the control: the same call in a scope holding globex-b is not denied
        except GraphStoreError as exc:  # only the load: this store is open read-only
            assert "read-only" in str(exc)


def test_library_cross_org_views_are_filtered_to_the_scope(home, monkeypatch) -> None:
    raw, store = _alice(home)
    with raw:
        assert raw.orgs() == [A, B] and store.orgs() == [A]
        cmp_ = queries.compare_component(store, store.orgs(), SVC)
        assert list(cmp_.orgs) == [A] and not cmp_.differences
        a = answer(store, A, "compare InvoiceService across orgs")
        assert a.method == "compare" and B not in a.text and CANARY not in json.dumps(a.to_dict()).lower()
        full = answer(raw, A, "compare InvoiceService across orgs")  # unscoped: both, and they differ
        assert f"{B}: present" in full.text and "api_version" in full.text
        with pytest.raises(AccessDenied):
            store.nodes("acme-nope")  # outside the scope: denied before the store is asked
    # scoped() without a policy is the store itself; with one it reads the environment
    monkeypatch.delenv("AICOLLEAGUE_ACCESS_POLICY")
    assert queries.scoped(raw) is raw


def test_docs_of_an_org_hold_nothing_of_another_org(orgs: dict, tmp_path: Path) -> None:
    """The Learn docs path: each org's site is built from its own inventory and graph, with the
    platform lineage of its own platforms only (as org_graph joins them)."""
    pages = {}
    for org in (A, B):
        inv, graph, _ = orgs[org]
        site = build_docs_site(inv, graph, tmp_path / org, mermaid_js=None)
        pages[org] = "".join(p.read_text(encoding="utf-8") for p in site.pages if p.suffix == ".md")
    assert "Invoice__c.Amount__c" in pages[A] or "Amount__c" in pages[A]
    assert CANARY not in pages[A].lower()
    assert "metabase-a/revenue" in pages[A]
    assert CANARY in pages[B].lower() and "metabase-b" in pages[B]  # the control


def test_orgs_with_identical_keys_stay_separate_in_the_embedded_store(home) -> None:
    with DuckDBGraphStore(home / "graph.duckdb", read_only=True) as store:
        _assert_isolated(store)


def _assert_isolated(store) -> None:
    keys = {org: {n.key for n in store.nodes(org)} for org in (A, B)}
    shared = keys[A] & keys[B]
    assert {AMOUNT, SVC, "CustomObject:Invoice__c"} <= shared
    for org in (A, B):
        for key in shared:
            seen = ({e.source for e in store.where_used(org, key)} | {e.target for e in store.where_used(org, key)}
                    | {h.key for h in store.impact(org, key)} | {h.key for h in store.dependencies(org, key)})
            assert seen <= keys[org], (org, key, seen - keys[org])
        for e in store.edges(org):
            assert e.source in keys[org] and e.target in keys[org]
    assert not any(CANARY in k.lower() for k in keys[A])
    assert {h.key for h in store.impact(B, AMOUNT)} - keys[A]  # B's own dependents are there


def test_orgs_with_identical_keys_stay_separate_in_neo4j(orgs: dict, bolt_server, home) -> None:  # noqa: F811
    from aicolleague_pipelines.lib.graph.store_neo4j import Neo4jGraphStore

    store = Neo4jGraphStore(bolt_server.uri, auth=bolt_server.auth, database=bolt_server.database)
    try:
        for org, (_, graph, _) in orgs.items():
            store.load_snapshot(org, graph.nodes.values(), graph.edges)
        _assert_isolated(store)
        alice = queries.scoped(store, load_policy(home.parent / "policy.yaml").scope_for("alice"))
        with pytest.raises(AccessDenied):
            alice.where_used(B, AMOUNT)
        assert A in alice.orgs() and B not in alice.orgs()
    finally:
        for org in (A, B):
            store.drop_org(org)
        store.close()


def test_an_invalid_orgs_file_names_no_org_outside_the_scope(home, capsys, monkeypatch, tmp_path) -> None:
    entries = [{"name": A, "source": "sfdx", "path": "."}, {"name": B, "source": "live", "instance_url": "http://x"}]
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(tmp_path / "bad.yaml", entries)))
    code, out, err = _run(capsys, monkeypatch, "admin", "orgs")
    assert code == 2 and f"org '{B}'" in err and "https://" in err  # the details, for who sees all
    for argv in (("orgs",), ("run",)):
        code, out, err = _run(capsys, monkeypatch, "alice", *argv)
        assert code == 2 and B not in err and "invalid" in err and "outside your scope" in err, argv
    # An error about an org in the scope keeps its details; a YAML error (it quotes the file) does not.
    entries = [{"name": A, "source": "live", "instance_url": "http://x"}, {"name": B, "source": "sfdx", "path": "."}]
    write_orgs_file(tmp_path / "bad.yaml", entries)
    code, out, err = _run(capsys, monkeypatch, "alice", "orgs")
    assert code == 2 and f"org '{A}'" in err and "https://" in err
    (tmp_path / "bad.yaml").write_text(f"orgs:\n  - name: {B}\n    source: [unclosed\n")
    code, out, err = _run(capsys, monkeypatch, "alice", "orgs")
    assert code == 2 and B not in err and "invalid" in err
