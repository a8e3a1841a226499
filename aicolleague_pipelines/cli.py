"""``aicolleague`` — the command line over the project's library.

    aicolleague run [--org NAME ...]     register the orgs file's orgs and refresh each one
    aicolleague orgs                     list the orgs of the orgs file (validates it)
    aicolleague home                     print (and create) the local Dagster home
    aicolleague graph scan PATH --org N  scan an SFDX project: one JSON object per edge
    aicolleague impact|deps|where-used|boundary --org N KEY   query the graph store
    aicolleague ask --org N "which flows write Opportunity.Amount?"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _project_root() -> Path:
    return Path.cwd()


def cmd_run(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.runner import ensure_local_home, format_results, run_all_orgs

    home = ensure_local_home(_project_root())
    results = run_all_orgs(args.org or None)
    print(f"Refreshed {sum(1 for r in results if not r.org.startswith('('))} org(s):")
    print(format_results(results, home))
    return 0 if all(r.success for r in results) else 1


def cmd_orgs(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.orgs import OrgsConfigError, default_orgs_file, load_orgs

    path = Path(args.file) if args.file else default_orgs_file()
    try:
        orgs = load_orgs(path)
    except OrgsConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(orgs)} org(s) in {path}:")
    for org in orgs:
        print(f"  {org.describe()}")
    return 0


def cmd_home(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.runner import ensure_local_home

    print(ensure_local_home(_project_root()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aicolleague", description="aicolleague: the command line over the project's library.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="register the orgs and refresh each one (the main job)")
    p.add_argument("--org", action="append", help="only this org (repeatable)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("orgs", help="list and validate the orgs file")
    p.add_argument("--file", help="orgs file (default: $AICOLLEAGUE_ORGS_FILE or the demo)")
    p.set_defaults(func=cmd_orgs)
    p = sub.add_parser("home", help="print the local Dagster home (created if missing)")
    p.set_defaults(func=cmd_home)
    from aicolleague_pipelines.cli_graph import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
