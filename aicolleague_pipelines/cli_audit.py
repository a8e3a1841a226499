"""``aicolleague audit``: query the audit log of automated actions (lib/audit.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aicolleague_pipelines.lib.audit import AuditError, AuditLog, counts, parse_since, run_label


def _data_home() -> Path:
    return Path(os.environ.get("AICOLLEAGUE_HOME") or ".aicolleague").resolve()


def cmd_audit(args: argparse.Namespace) -> int:
    """Print matching entries, oldest first (``--json``: one JSON object per line)."""
    from aicolleague_pipelines.lib.access import AccessError, current_scope

    try:
        scope = current_scope()
        if args.org:
            scope.check(args.org)  # same words whether the org exists or not
        since = parse_since(args.since) if args.since else None
        log = AuditLog.for_home(_data_home())
        entries = log.entries(since=since, org=args.org, kind=args.kind, outcome=args.outcome,
                              run_id=args.run)
    except (AccessError, AuditError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not scope.unrestricted:  # entries of orgs outside the caller's scope are not shown
        entries = [e for e in entries if e.org is None or scope.allows(e.org)]
    if args.limit:
        entries = entries[-args.limit:]
    if args.json:
        for e in entries:
            print(json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True))
        return 0
    if not entries:
        print(f"no audit entries match (log: {log.directory})")
        return 0
    for e in entries:
        print(f"{e.at[:19].replace('T', ' ')}  {e.kind:<16} {e.outcome:<8} {(e.org or '-'):<14} "
              f"{e.what}")
        extra = [f"why: {e.why}"] if e.why else []
        extra.append(f"run: {run_label(e.run)}" + (f", trigger {e.run['trigger']}" if e.run.get("trigger") else ""))
        print("    " + " · ".join(extra))
    by = counts(entries)
    print(f"\n{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: "
          + ", ".join(f"{k} {n}" for k, n in by["by_kind"].items()))
    if log.unreadable:
        print(f"warning: {log.unreadable} unreadable line(s) skipped", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="automated actions recorded in the audit log")
    p.add_argument("--org", help="only this org")
    p.add_argument("--kind", help="only this kind, or a prefix: alert, ticket.create, plan, retention …")
    p.add_argument("--since", help="age (7d, 12h, 30m, 2w) or ISO date/time")
    p.add_argument("--outcome", choices=("ok", "failed", "refused", "allowed"))
    p.add_argument("--run", help="only entries of this Dagster run id")
    p.add_argument("--limit", type=int, default=0, help="only the newest N entries")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_audit)
