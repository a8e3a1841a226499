"""``aicolleague`` — the command line over the project's library.

    aicolleague run [--org NAME ...]     register the orgs file's orgs and refresh each one
    aicolleague orgs                     list the orgs of the orgs file (validates it)
    aicolleague home                     print (and create) the local Dagster home
    aicolleague graph scan PATH --org N  scan an SFDX project: one JSON object per edge
    aicolleague impact|deps|where-used|boundary --org N KEY   query the graph store
    aicolleague ask --org N "which flows write Opportunity.Amount?"
    aicolleague audit [--org N] [--kind K] [--since 7d] [--json]   automated actions recorded
    aicolleague graph orgs               orgs with a graph snapshot you may see

With $AICOLLEAGUE_ACCESS_POLICY set, every command shows only the orgs of the caller's scope
(lib/access.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _project_root() -> Path:
    return Path.cwd()


def _scope_or_exit():
    """The caller's access scope, or ``None`` after printing why the policy is unusable."""
    from aicolleague_pipelines.lib.access import AccessPolicyError, current_scope

    try:
        return current_scope()
    except AccessPolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.access import AccessDenied
    from aicolleague_pipelines.runner import ensure_local_home, format_results, run_all_orgs

    scope = _scope_or_exit()
    if scope is None:
        return 2
    only = args.org or None
    if not scope.unrestricted:
        # Refresh (and so document) only orgs in scope; a named org outside it is refused
        # before anything runs, with the same words whether it exists or not.
        try:
            for org in only or []:
                scope.check(org)
        except AccessDenied as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from aicolleague_pipelines.lib.orgs import OrgsConfigError, default_orgs_file
        from aicolleague_pipelines.resources import OrgsResource

        try:
            visible = scope.filter(o.name for o in OrgsResource().load())
        except OrgsConfigError as exc:
            print(f"error: {_scoped_config_error(str(exc), default_orgs_file(), scope)}", file=sys.stderr)
            return 2
        unknown = sorted(set(only or []) - set(visible))
        if unknown or not visible:
            print(f"error: {'unknown org(s) ' + ', '.join(unknown) if unknown else 'no org'} in your scope of the "
                  f"orgs file (yours: {', '.join(visible) or 'none'})", file=sys.stderr)
            return 2
        only = only or visible
    home = ensure_local_home(_project_root())
    results = run_all_orgs(only)
    if not scope.unrestricted:  # the rows of other orgs' runs (platforms, all orgs) are not shown
        results = [r for r in results if scope.allows(r.org)]
    print(f"Refreshed {sum(1 for r in results if not r.org.startswith('('))} org(s):")
    print(format_results(results, home))
    return 0 if all(r.success for r in results) else 1


def cmd_orgs(args: argparse.Namespace) -> int:
    from aicolleague_pipelines.lib.orgs import OrgsConfigError, default_orgs_file, load_orgs

    scope = _scope_or_exit()
    if scope is None:
        return 2
    path = Path(args.file) if args.file else default_orgs_file()
    try:
        orgs = load_orgs(path)
    except OrgsConfigError as exc:
        print(f"error: {_scoped_config_error(str(exc), path, scope)}", file=sys.stderr)
        return 2
    if not scope.unrestricted:
        orgs = [o for o in orgs if scope.allows(o.name)]
        print(f"{len(orgs)} org(s) in {path} in your scope ({scope.describe()}):")
        for org in orgs:
            print(f"  {org.describe()}")
        return 0
    print(f"{len(orgs)} org(s) in {path}:")
    for org in orgs:
        print(f"  {org.describe()}")
    return 0


def _scoped_config_error(message: str, path: Path, scope: Any) -> str:
    """The orgs file's error as a scoped user may read it: shown when every org it names is in
    scope; otherwise (another org named, or a YAML error quoting the file) only that the file is
    invalid — the details would reveal orgs outside the scope."""
    import re

    if scope.unrestricted:
        return message
    named = re.findall(r"\borg(?: name)? '([^']*)'", message)
    if named and all(scope.allows(n) for n in named):
        return message
    return (f"the orgs file {path} is invalid; the details name orgs outside your scope "
            f"({scope.describe()}) — ask someone who sees every org to run `aicolleague orgs`")


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
    from aicolleague_pipelines.cli_audit import add_commands as add_audit_commands

    add_audit_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
