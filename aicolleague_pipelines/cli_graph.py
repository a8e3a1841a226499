"""``aicolleague graph scan`` and the store queries: impact, where-used, deps, boundary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.access import AccessError
from aicolleague_pipelines.lib.graph.store import GraphStoreError, Hit


def _data_home() -> Path:
    return Path(os.environ.get("AICOLLEAGUE_HOME") or ".aicolleague").resolve()


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan an SFDX project (or any folder of metadata) and print one JSON object per edge."""
    from aicolleague_pipelines.lib.graph.build import build_org_graph
    from aicolleague_pipelines.lib.salesforce.sfdx import read_sfdx_project

    root = Path(args.path)
    if not root.is_dir():
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    inventory = read_sfdx_project(root, args.org)
    graph = build_org_graph(inventory)
    out = sys.stdout
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target, e.kind, e.evidence)):
        out.write(json.dumps(edge.to_dict(), ensure_ascii=False) + "\n")
    for finding in inventory.findings + graph.findings:
        if finding.severity != "info":
            print(str(finding), file=sys.stderr)
    print(
        f"{args.org}: {len(inventory.components)} components, {len(graph.nodes)} nodes, "
        f"{len(graph.edges)} edges",
        file=sys.stderr,
    )
    return 0


def _open_store():
    """The store, limited to the caller's orgs when an access policy is configured (the policy is
    read first: a bad one fails before any data is opened)."""
    from aicolleague_pipelines.lib.access import current_scope
    from aicolleague_pipelines.lib.graph.queries import scoped
    from aicolleague_pipelines.lib.graph.stores import open_store

    scope = current_scope()
    return scoped(open_store(_data_home(), read_only=True), scope)


def _print_hits(hits: list[Hit], as_json: bool, title: str) -> None:
    if as_json:
        for h in hits:
            print(json.dumps({"key": h.key, "type": h.type, "depth": h.depth,
                              "path": list(h.path), "via": h.via_kind,
                              "external": h.external}, ensure_ascii=False))
        return
    print(title)
    if not hits:
        print("  (nothing)")
        return
    width = min(max(len(h.key) for h in hits), 70)
    print(f"  {'depth':>5}  {'component':<{width}}  via")
    for h in hits:
        ext = " (external)" if h.external else ""
        print(f"  {h.depth:>5}  {h.key:<{width}}  {h.via_kind or ''}{ext}")
    print(f"  {len(hits)} component(s)")


def _run_query(args: argparse.Namespace, fn) -> int:
    try:
        with _open_store() as store:
            return fn(store)
    except (GraphStoreError, AccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_graph_orgs(args: argparse.Namespace) -> int:
    """The orgs with a snapshot in the store that the caller may see."""

    def run(store: Any) -> int:
        rows = []
        for org in store.orgs():
            snaps = store.snapshots(org)
            cur = snaps[-1]
            rows.append({"org": org, "version": cur.version, "created_at": cur.created_at,
                         "nodes": cur.node_count, "edges": cur.edge_count, "kept": len(snaps)})
        if args.json:
            for r in rows:
                print(json.dumps(r))
            return 0
        from aicolleague_pipelines.lib.access import current_scope

        print(f"{len(rows)} org(s) with a graph snapshot ({current_scope().describe()}):")
        for r in rows:
            print(f"  {r['org']:<24} v{r['version']:<4} {r['created_at']}  {r['nodes']} nodes, {r['edges']} edges")
        return 0

    return _run_query(args, run)


def cmd_impact(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        hits = queries.impact(store, args.org, args.key, depth=args.depth)
        _print_hits(hits, args.json, f"What depends on {args.key} in {args.org}:")
        return 0

    return _run_query(args, run)


def cmd_deps(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        hits = queries.dependencies(store, args.org, args.key, depth=args.depth)
        _print_hits(hits, args.json, f"What {args.key} needs in {args.org}:")
        return 0

    return _run_query(args, run)


def cmd_where_used(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        edges = queries.where_used(store, args.org, args.key)
        if args.json:
            for e in edges:
                print(json.dumps(e.to_dict(), ensure_ascii=False))
            return 0
        print(f"Where {args.key} is used in {args.org}:")
        for e in edges:
            acc = f" [{e.access}]" if e.access else ""
            print(f"  {e.source:<60} {e.kind}{acc}  {e.evidence}")
        print(f"  {len(edges)} direct use(s)")
        return 0

    return _run_query(args, run)


def cmd_boundary(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        result = queries.deployment_boundary(store, args.org, args.key, api_version=args.api_version)
        if args.output:
            Path(args.output).write_text(result.package_xml, encoding="utf-8")
        if args.json:
            print(json.dumps({
                "members": result.members,
                "prerequisites": result.prerequisites,
                "not_deployed": result.not_deployed,
                "unsupported": result.unsupported,
                "package_xml": result.package_xml,
            }, ensure_ascii=False, indent=2))
            return 0
        print(result.package_xml if not args.output else f"wrote {args.output}")
        notes = {
            "prerequisites (external: must already be in the target org)": result.prerequisites,
            "standard fields (exist in every org, not deployed)": result.not_deployed,
            "types a package.xml cannot carry": result.unsupported,
        }
        for title, keys in notes.items():
            if keys:
                print(f"{title}: {', '.join(keys)}", file=sys.stderr)
        return 0

    return _run_query(args, run)


def cmd_unused(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        types = args.type or queries.DEFAULT_UNUSED_TYPES
        keys = queries.unused(store, args.org, types=types)
        if args.json:
            for k in keys:
                print(json.dumps({"key": k}))
            return 0
        print(f"Components of {args.org} nothing depends on ({', '.join(types)}):")
        for k in keys:
            print(f"  {k}")
        print(f"  {len(keys)} component(s)")
        return 0

    return _run_query(args, run)


def cmd_cycles(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        found = queries.cycles(store, args.org)
        if args.json:
            for c in found:
                print(json.dumps({"cycle": c}))
            return 0
        print(f"Dependency cycles in {args.org}:")
        for c in found:
            print("  " + " -> ".join(c))
        print(f"  {len(found)} cycle(s)")
        return 0

    return _run_query(args, run)


def cmd_compare(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.graph import queries

    def run(store: Any) -> int:
        orgs = args.org or store.orgs()
        result = queries.compare_component(store, orgs, args.key)
        if args.json:
            print(json.dumps({
                "key": result.key,
                "orgs": {o: vars(p) for o, p in result.orgs.items()},
                "differences": result.differences,
            }, default=str, indent=2))
            return 0
        print(f"{args.key} across {', '.join(orgs)}:")
        for org, p in result.orgs.items():
            if not p.present:
                print(f"  {org:<20} absent")
                continue
            print(f"  {org:<20} present  api {p.api_version or '-':<6} status {p.status or '-':<10} "
                  f"direct dependents {p.dependents:<4} impacted {p.impacted}")
        for attr, values in result.differences.items():
            print(f"  differs in {attr}: " + "; ".join(f"{o}={v}" for o, v in values.items()))
        if not result.differences and len(result.present_in) > 1:
            print("  identical where present")
        return 0

    return _run_query(args, run)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer a question over the graph: offline patterns, or Gemini when a key is set."""
    from aicolleague_pipelines.lib.agents.ask import answer
    from aicolleague_pipelines.lib.llm import OfflineWriter, make_writer

    writer = OfflineWriter() if args.offline else make_writer(cache_dir=_data_home() / "llm-cache")

    def run(store: Any) -> int:
        a = answer(store, args.org, " ".join(args.question), writer)
        print(json.dumps(a.to_dict(), ensure_ascii=False, default=str) if args.json else a.text.rstrip())
        for note in a.notes:
            print(f"note: {note}", file=sys.stderr)
        return 1 if a.method == "not_found" else 0

    return _run_query(args, run)


def add_commands(sub: argparse._SubParsersAction) -> None:
    graph = sub.add_parser("graph", help="dependency-graph tools that need no Dagster")
    gsub = graph.add_subparsers(dest="graph_command", required=True)
    p = gsub.add_parser("scan", help="scan an SFDX project; print one JSON object per edge")
    p.add_argument("path")
    p.add_argument("--org", default="local", help="org name to scan under (default: local)")
    p.set_defaults(func=cmd_scan)
    p = gsub.add_parser("orgs", help="orgs with a graph snapshot that you may see (access policy)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_graph_orgs)

    def query(name: str, func, help_: str, many: bool = False) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        q.add_argument("--org", required=True)
        q.add_argument("key", nargs="+" if many else None, help="component key, e.g. CustomField:Account.Industry")
        q.add_argument("--json", action="store_true", help="one JSON object per line")
        q.set_defaults(func=func)
        return q

    query("impact", cmd_impact, "what transitively depends on a component").add_argument(
        "--depth", type=int, default=None)
    query("deps", cmd_deps, "what a component transitively needs").add_argument(
        "--depth", type=int, default=None)
    query("where-used", cmd_where_used, "direct uses of a component, with evidence")
    u = sub.add_parser("unused", help="components nothing depends on")
    u.add_argument("--org", required=True)
    u.add_argument("--type", action="append", help="component type (repeatable)")
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_unused)
    c = sub.add_parser("cycles", help="dependency cycles")
    c.add_argument("--org", required=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cycles)
    cmp_ = sub.add_parser("compare", help="one component across orgs")
    cmp_.add_argument("key")
    cmp_.add_argument("--org", action="append", help="org (repeatable; default: every org)")
    cmp_.add_argument("--json", action="store_true")
    cmp_.set_defaults(func=cmd_compare)
    a = sub.add_parser("ask", help="ask the graph a question in plain English")
    a.add_argument("--org", required=True)
    a.add_argument("question", nargs="+")
    a.add_argument("--json", action="store_true")
    a.add_argument("--offline", action="store_true", help="never call Gemini")
    a.set_defaults(func=cmd_ask)
    b = query("boundary", cmd_boundary, "deployment boundary and package.xml", many=True)
    b.add_argument("--api-version", default=None)
    b.add_argument("--output", "-o", help="write package.xml here")
