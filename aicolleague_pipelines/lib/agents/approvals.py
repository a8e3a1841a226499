"""Approval state of fix plans: changes are never deployed automatically.

Every plan has a stable id (:func:`plan_id`: a hash of the org and the change, not of the
wording of its reason) and is ``pending`` until someone approves it. The
:class:`ApprovalLedger` is one JSON file:

.. code-block:: json

    {
      "version": 1,
      "plans": {"<plan id>": {"what": "delete CustomField:Invoice__c.Amount__c in acme-prod",
                              "org": "acme-prod", "digest": "…", "registered_at": "…"}},
      "state": {"<plan id>": {"decision": "approved", "by": "ana", "at": "…", "reason": "…",
                              "digest": "…"}},
      "decisions": [{"plan": "…", "decision": "approved", "what": "…", "by": "ana",
                     "at": "…", "reason": "…", "source": "api", "digest": null}],
      "applied_entries": ["<hash of an approvals-file entry already merged>"]
    }

- ``decisions`` is append-only: what (plan id + description), who, when (UTC ISO 8601), why.
- The latest decision of a plan is its state (``approved`` / ``rejected``); no decision →
  ``pending``.
- Writes are atomic (temp file in the same folder, fsync, ``os.replace``) and serialised
  across processes with an ``flock`` on ``<ledger>.lock``: a crash half-way leaves the previous
  ledger intact.
- :func:`approvals_from_file` merges a file a person edits (``approvals: [{plan, decision, by,
  reason}]``, YAML or JSON) into the ledger. Each distinct entry is applied once ever (its hash
  is remembered), so re-reading the file is idempotent and never overrides a later decision
  taken elsewhere.
- :func:`ApprovalLedger.require_approved` raises :class:`NotApproved` unless the plan's latest
  decision is ``approved`` (and, when a digest is given and one was approved, the plan's
  content did not change since).
- With an :class:`~aicolleague_pipelines.lib.audit.AuditLog`, the ledger is also the one place
  that feeds the project's audit log for plans: a plan proposed (new, or its content changed:
  ``plan.propose``), each decision once it is durably in the ledger (``plan.approve`` /
  ``plan.reject``, with who, why and where it came from) and each gate check
  (``plan.gate``: ``allowed`` or ``refused``). The ledger stays the plan state; the audit log is
  the cross-cutting record with the run that acted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.audit import AuditLog

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
DECISIONS = (APPROVED, REJECTED)
LEDGER_VERSION = 1


def plan_id(
    org: str, action: str, key: str, new_name: str | None = None, new_type: str | None = None,
    ref: str | None = None,
) -> str:
    """Stable id of a planned change: the same change on the same org → the same id."""
    raw = "\x1f".join((org, action, key, new_name or "", new_type or "", ref or ""))
    return "plan-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


class NotApproved(PermissionError):
    """A plan was about to be deployed without an approval."""

    def __init__(self, plan: str, state: str, detail: str = "") -> None:
        self.plan = plan
        self.state = state
        msg = f"plan {plan} is {state}, not approved: changes are never deployed automatically"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class ApprovalError(ValueError):
    """A malformed decision (unknown decision value, missing plan id or author)."""


@dataclass(frozen=True)
class Decision:
    plan: str
    decision: str  # approved | rejected
    by: str
    at: str  # ISO 8601 UTC
    reason: str = ""
    what: str = ""
    source: str = "api"  # api | file:<path>
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MergeResult:
    """What :func:`approvals_from_file` did."""

    applied: list[Decision] = field(default_factory=list)
    skipped: int = 0  # entries already merged before
    errors: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _empty() -> dict[str, Any]:
    return {"version": LEDGER_VERSION, "plans": {}, "state": {}, "decisions": [], "applied_entries": []}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: temp file beside it, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (best effort)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class ApprovalLedger:
    """Approval state of plans, in one JSON file (see the module docstring)."""

    def __init__(self, path: Path | str, audit: AuditLog | None = None) -> None:
        self.path = Path(path)
        self.audit = audit

    def _audit_decisions(self, decisions: list[Decision], plans: dict[str, Any]) -> None:
        for d in decisions if self.audit is not None else ():
            self.audit.record(
                f"plan.{'approve' if d.decision == APPROVED else 'reject'}",
                f"plan {d.plan} {d.decision}: {d.what or 'unregistered plan'}",
                why=d.reason or "no reason given", org=plans.get(d.plan, {}).get("org") or None,
                target="approvals-ledger", ref=d.plan, actor=d.by,
                details={"source": d.source, "digest": d.digest, "decided_at": d.at},
            )

    # --- storage -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            try:
                import fcntl

                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not on POSIX
                pass
            yield

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _empty()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApprovalError(
                f"approval ledger {self.path} is not valid JSON ({exc}); restore it from backup "
                "or version control — it is never rewritten partially"
            ) from exc
        base = _empty()
        base.update(data)
        return base

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    # --- API -------------------------------------------------------------------------------
    def register(self, plan: str, what: str, *, org: str = "", digest: str | None = None) -> bool:
        """Remember a plan (pending until decided) with a one-line description of the change.

        Returns whether the plan is new or its content (digest) changed — then it is recorded
        as ``plan.propose`` in the audit log."""
        with self._locked():
            data = self._read()
            entry = data["plans"].get(plan, {})
            is_new = not entry
            changed = is_new or entry.get("digest") != digest
            entry.update({"what": what, "org": org, "digest": digest})
            entry.setdefault("registered_at", _now())
            data["plans"][plan] = entry
            self._write(data)
        if changed and self.audit is not None:
            self.audit.record(
                "plan.propose", f"plan {plan} proposed: {what}",
                why="new plan: deploys nothing until approved" if is_new
                else "plan content changed: an earlier approval no longer covers it",
                org=org or None, target="approvals-ledger", ref=plan,
                details={"digest": digest, "state": data["state"].get(plan, {}).get("decision", PENDING)},
            )
        return changed

    def record(
        self, plan: str, decision: str, by: str, reason: str = "", *, at: str | None = None,
        source: str = "api", digest: str | None = None,
    ) -> Decision:
        """Append a decision and make it the plan's state."""
        with self._locked():
            data = self._read()
            dec = self._record(data, plan, decision, by, reason, at=at, source=source, digest=digest)
            self._write(data)
            self._audit_decisions([dec], data["plans"])  # only once durably in the ledger
        return dec

    def _record(
        self, data: dict[str, Any], plan: str, decision: str, by: str, reason: str, *,
        at: str | None, source: str, digest: str | None,
    ) -> Decision:
        decision = (decision or "").strip().lower()
        if decision not in DECISIONS:
            raise ApprovalError(f"plan {plan}: decision must be one of {DECISIONS}, got {decision!r}")
        if not plan or not str(plan).strip():
            raise ApprovalError("a decision needs the plan id")
        if not by or not str(by).strip():
            raise ApprovalError(f"plan {plan}: a decision needs who took it ('by')")
        registered = data["plans"].get(plan, {})
        if digest is None:
            digest = registered.get("digest")
        dec = Decision(
            plan=str(plan), decision=decision, by=str(by), at=at or _now(), reason=str(reason or ""),
            what=registered.get("what", ""), source=source, digest=digest,
        )
        data["decisions"].append(dec.to_dict())
        data["state"][dec.plan] = {
            "decision": dec.decision, "by": dec.by, "at": dec.at, "reason": dec.reason, "digest": dec.digest,
        }
        return dec

    def state(self, plan: str) -> str:
        """``pending`` (no decision yet), ``approved`` or ``rejected`` (the latest decision)."""
        st = self._read()["state"].get(plan)
        return st["decision"] if st else PENDING

    def decisions(self, plan: str | None = None) -> list[Decision]:
        """The append-only decision log (oldest first), optionally for one plan."""
        out = [Decision(**d) for d in self._read()["decisions"]]
        return [d for d in out if plan is None or d.plan == plan]

    def plans(self) -> dict[str, dict[str, Any]]:
        """Registered plans with their state."""
        data = self._read()
        ids = set(data["plans"]) | set(data["state"])
        return {
            p: {**data["plans"].get(p, {}), "state": data["state"].get(p, {}).get("decision", PENDING)}
            for p in sorted(ids)
        }

    def require_approved(self, plan: str, digest: str | None = None) -> Decision:
        """The approving decision, or :class:`NotApproved` (pending, rejected, or the plan's
        content changed since it was approved — when both digests are known). With an audit
        log, the check is recorded (``plan.gate``: ``allowed`` / ``refused``)."""
        try:
            dec = self._require_approved(plan, digest)
        except NotApproved as exc:
            if self.audit is not None:
                self.audit.record("plan.gate", f"action on plan {plan} refused: {exc.state}", why=str(exc),
                                  outcome="refused", org=self.plans().get(plan, {}).get("org") or None,
                                  target="approvals-ledger", ref=plan)
            raise
        if self.audit is not None:
            self.audit.record("plan.gate", f"action on plan {plan} allowed", why=f"approved: {dec.reason}",
                              outcome="allowed", org=self.plans().get(plan, {}).get("org") or None,
                              target="approvals-ledger", ref=plan, actor=dec.by)
        return dec

    def _require_approved(self, plan: str, digest: str | None) -> Decision:
        data = self._read()
        st = data["state"].get(plan)
        if not st:
            raise NotApproved(plan, PENDING)
        if st["decision"] != APPROVED:
            raise NotApproved(plan, st["decision"], f"by {st['by']}: {st.get('reason') or 'no reason given'}")
        if digest and st.get("digest") and st["digest"] != digest:
            raise NotApproved(
                plan, "stale", f"approved content {st['digest']} differs from the current plan {digest}; "
                "re-review and approve again",
            )
        for d in reversed(data["decisions"]):
            if d["plan"] == plan:
                return Decision(**d)
        raise NotApproved(plan, PENDING)  # pragma: no cover - state without a log entry


# --- the approvals file a person edits ----------------------------------------------------
def _entry_hash(entry: dict[str, Any]) -> str:
    canon = json.dumps(
        {k: str(entry.get(k) or "").strip() for k in ("plan", "decision", "by", "reason", "at")},
        sort_keys=True,
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


def read_approvals_file(path: Path | str) -> list[dict[str, Any]]:
    """Entries of an approvals file (YAML or JSON): ``approvals: [{plan, decision, by, reason}]``
    (a bare list is accepted too). A missing file has no entries."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if path.suffix.lower() == ".json":
        data = json.loads(text) if text.strip() else {}
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    entries = data.get("approvals", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ApprovalError(f"{path}: 'approvals' must be a list of {{plan, decision, by, reason}}")
    return [e for e in entries if e is not None]


def approvals_from_file(path: Path | str, ledger: ApprovalLedger) -> MergeResult:
    """Merge the decisions of an approvals file into ``ledger`` (idempotent).

    Each distinct entry (plan, decision, by, reason, at) is applied once ever; malformed entries
    are reported in ``errors`` and the rest still apply."""
    result = MergeResult()
    entries = read_approvals_file(path)
    with ledger._locked():
        data = ledger._read()
        done = set(data.get("applied_entries", []))
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                result.errors.append(f"{path}: entry {i + 1} is not a mapping: {entry!r}")
                continue
            h = _entry_hash(entry)
            if h in done:
                result.skipped += 1
                continue
            try:
                dec = ledger._record(
                    data, str(entry.get("plan") or "").strip(), str(entry.get("decision") or ""),
                    str(entry.get("by") or "").strip(), str(entry.get("reason") or ""),
                    at=str(entry["at"]) if entry.get("at") else None, source=f"file:{Path(path).name}",
                    digest=None,
                )
            except ApprovalError as exc:
                result.errors.append(f"{path}: entry {i + 1}: {exc}")
                continue
            done.add(h)
            data.setdefault("applied_entries", []).append(h)
            result.applied.append(dec)
        if result.applied:
            ledger._write(data)
            ledger._audit_decisions(result.applied, data["plans"])
    return result
