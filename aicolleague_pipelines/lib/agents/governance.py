"""Governance: SOC 2 / GDPR / HIPAA readiness indicators drawn from an org's metadata (no LLM).

:func:`org_governance` reads one org's current graph snapshot (fields, ``grants`` edges with
read/edit, lineage into reports, e-mail templates and the platforms around the org), the
permission sets and profiles of its extraction (user permissions are not graph edges) and the
org's audit-trail coverage ledger, and returns a :class:`GovernanceReport`:

- **sensitive fields** — found by compliance group (``complianceGroup``), data sensitivity
  level (``securityClassification``), or heuristics on the name, label and type (SSN, passport,
  date of birth, bank/card data, health, salary, e-mail/phone types, the personal standard
  fields of Contact/Lead/User) — each with: classified or not, encrypted (Shield scheme or
  Classic Encrypted Text) where the metadata says so, which permission sets/profiles grant read
  or edit on it (field-level security), whether a holder of View/Modify All Data outside the
  System Administrator profile has it, and **where it flows** (impact traversal: reports, e-mail
  templates, Metabase cards/dashboards and warehouse columns, Chargebee, Intercom, custom APIs);
- **who can see or modify everything**: permission sets/profiles with View All Data / Modify
  All Data, API-enabled and API-only (``ApiUserOnly``) holders;
- **audit-trail coverage and retention** from a per-org ledger (:func:`update_audit_ledger`,
  daily counts only — never names or texts): oldest/newest event, days of history observed,
  the gap against Salesforce's 180-day SetupAuditTrail retention, security-relevant actions;
- a **compliance score** 0–100 per framework and overall, with its breakdown and a trend.

Score
-----
Each indicator has a value in [0, 1] (or ``None`` when it cannot be measured here, e.g. no
audit trail was ever read, no high-sensitivity field exists) and a weight per framework:

==================  =====  ====  =====  ======================================================
indicator           SOC 2  GDPR  HIPAA  value
==================  =====  ====  =====  ======================================================
classified          1      3     1      share of sensitive fields (defined in the org) with a
                                        compliance group or a data sensitivity level
phi_classified      –      –     2      share of health-data fields tagged HIPAA/PHI (None
                                        when the org has no health-data field)
encrypted           2      2     3      share of high-sensitivity fields encrypted at rest
fls_restricted      2      3     3      share of sensitive fields that no View/Modify All Data
                                        holder (outside System Administrator) is granted
all_data_access     3      2     2      ``1 / (1 + view_all + 2·modify_all)`` over the
                                        permission sets/custom profiles holding them
contained           1      3     2      share of sensitive fields that reach no report, e-mail
                                        template or platform (Metabase, warehouse, Chargebee,
                                        Intercom, custom API)
audit_retention     3      1     3      days of SetupAuditTrail history observed / 180, capped
                                        at 1 (less any window possibly lost between reads)
==================  =====  ====  =====  ======================================================

A framework's score is ``100 · Σ w·v / Σ w`` over its measurable indicators; each indicator's
points (``100 · w·v / Σ w``, rounded to 2 decimals) are listed and add up to the score. The
overall score is the mean of the framework scores. These are readiness indicators from
metadata, not an audit opinion: they say where to look first.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from aicolleague_pipelines.lib.agents.rules_metadata import (
    PERSON_OBJECTS,
    SENSITIVE_CLASSIFICATIONS,
    _is_admin_profile,
    _is_managed,
    _user_permissions,
    sensitive_kind,
)
from aicolleague_pipelines.lib.graph.model import GRANTS, SYNCED_TO, WRITE, Edge, Node
from aicolleague_pipelines.lib.graph.store import GraphStore
from aicolleague_pipelines.lib.salesforce.model import AuditEvent, OrgInventory

FRAMEWORKS = ("SOC 2", "GDPR", "HIPAA")
#: Salesforce keeps SetupAuditTrail rows for 180 days; older ones are gone unless read before.
SALESFORCE_AUDIT_RETENTION_DAYS = 180

#: indicator id → (title, {framework: weight}).
INDICATORS: dict[str, tuple[str, dict[str, float]]] = {
    "classified": ("Sensitive fields classified", {"SOC 2": 1, "GDPR": 3, "HIPAA": 1}),
    "phi_classified": ("Health-data fields tagged HIPAA/PHI", {"HIPAA": 2}),
    "encrypted": ("High-sensitivity fields encrypted at rest", {"SOC 2": 2, "GDPR": 2, "HIPAA": 3}),
    "fls_restricted": ("Sensitive fields kept from all-data holders", {"SOC 2": 2, "GDPR": 3, "HIPAA": 3}),
    "all_data_access": ("Few View/Modify All Data holders", {"SOC 2": 3, "GDPR": 2, "HIPAA": 2}),
    "contained": ("Sensitive fields not exported", {"SOC 2": 1, "GDPR": 3, "HIPAA": 2}),
    "audit_retention": ("Audit-trail history vs 180 days", {"SOC 2": 3, "GDPR": 1, "HIPAA": 3}),
}

#: Traversal bounds for lineage (per sensitive field).
FLOW_DEPTH = 6
FLOW_LIMIT = 2000

#: Downstream component type (or type prefix) → where the data goes.
_FLOW_KINDS: dict[str, str] = {
    "Report": "report",
    "EmailTemplate": "e-mail",
    "MetabaseCard": "Metabase",
    "MetabaseDashboard": "Metabase",
    "WarehouseColumn": "warehouse",
    "WarehouseTable": "warehouse",
    "Chargebee": "Chargebee",
    "Intercom": "Intercom",
    "Api": "custom API",
}
#: Flow kinds that take values out of the org's field-level security (exports, e-mail, platforms).
EXPORT_KINDS = frozenset({"report", "e-mail", "Metabase", "warehouse", "Chargebee", "Intercom", "custom API"})
#: Components whose dependence on a field is access, not data flow.
_ACCESS_TYPES = ("PermissionSet", "Profile")

#: Standard fields of person objects (Contact, Lead, User …) that hold personal data.
PERSON_STANDARD_FIELDS = frozenset({
    "name", "firstname", "lastname", "middlename", "email", "phone", "mobilephone", "homephone",
    "otherphone", "assistantphone", "fax", "birthdate", "street", "address", "mailingstreet",
    "mailingaddress", "otherstreet", "otheraddress",
})
#: Name patterns beyond the Triage rules' (``rules_metadata.SENSITIVE_NAME_PATTERNS``) → category.
_EXTRA_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(p), what, cat)
    for p, what, cat in (
        # Not a bare "health": Account.Health_Score__c is customer health, not a person's.
        (r"medical|diagnos|patient|treatment|prescription|allerg|disabilit|medicare|medicaid|(^|_)mrn(_|$)"
         r"|insurance_?(number|id)|blood_?type|health_?(condition|record|plan|insurance|history|data|info)",
         "health data", "health"),
        (r"salary|compensation|(^|_)wages?(_|$)|(^|_)income(_|$)|(^|_)bonus(_|$)", "compensation", "compensation"),
        (r"gender|(^|_)race(_|$)|ethnic|religio|sexual|political|union_?member", "special-category data",
         "special"),
        (r"(^|_)ip_?address", "online identifier", "personal"),
    )
)
#: What ``sensitive_kind`` says → category.
_KIND_CATEGORY = {
    "social security number": "government_id",
    "passport number": "government_id",
    "national identifier": "government_id",
    "tax identifier": "government_id",
    "bank details": "payment",
    "payment card data": "payment",
    "special-category data": "special",
    "date of birth": "personal",
    "personal contact details": "contact",
}
#: Compliance groups (Salesforce's standard values) → category.
_GROUP_CATEGORY = {"hipaa": "health", "phi": "health", "pci": "payment"}
#: Categories that make a field high-sensitivity (encryption expected).
HIGH_CATEGORIES = frozenset({"government_id", "payment", "health", "special"})
#: SetupAuditTrail actions/sections about access and security (counted, never listed by user).
_SECURITY_AUDIT_RE = re.compile(
    r"perm|profile|role|sharing|password|login|user|encrypt|certificate|session|auth|mfa|ipranges|trusted",
    re.I,
)


# --- small helpers ----------------------------------------------------------------------------
def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _day(s: str | None) -> date | None:
    try:
        return date.fromisoformat(str(s)[:10]) if s else None
    except ValueError:
        return None


def _ts(s: str) -> datetime:
    """A SetupAuditTrail timestamp (``…Z``, ``….000+0000``) as an aware datetime."""
    t = str(s).strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", t):
        t = t[:-2] + ":" + t[-2:]
    dt = datetime.fromisoformat(t)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()).strip("_")


def flow_kind(type_: str) -> str | None:
    """Where data reaching a component of this type goes (``report``, ``Metabase`` …), or None."""
    if type_ in _FLOW_KINDS:
        return _FLOW_KINDS[type_]
    for prefix in ("Chargebee", "Intercom", "Api"):
        if type_.startswith(prefix):
            return _FLOW_KINDS[prefix]
    return None


# --- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flow:
    """A sensitive field reaching ``target`` (a report, card, platform field …) in ``hops`` steps."""

    target: str
    kind: str
    hops: int
    path: tuple[str, ...]


@dataclass
class SensitiveField:
    key: str
    object: str
    field: str
    label: str | None
    data_type: str | None
    #: Referenced but not defined in the extraction (a standard field seen only in code or on a
    #: platform): classification and encryption are unknown.
    external: bool
    reasons: list[str]
    categories: list[str]
    level: str  # "high" | "normal"
    compliance_group: str | None = None
    security_classification: str | None = None
    encrypted: bool | None = None
    encryption_scheme: str | None = None
    readers: list[str] = field(default_factory=list)  # read-only grants
    editors: list[str] = field(default_factory=list)  # edit grants
    all_data_holders: list[str] = field(default_factory=list)  # granted to a View/Modify All Data holder
    flows: list[Flow] = field(default_factory=list)  # exports only (EXPORT_KINDS)
    used_in_org: int = 0  # other downstream components (code, flows, formulas, layouts …)

    @property
    def classified(self) -> bool | None:
        if self.external and not (self.compliance_group or self.security_classification):
            return None
        return bool(self.compliance_group or self.security_classification)

    @property
    def restricted(self) -> bool:
        return not self.all_data_holders

    @property
    def exported(self) -> bool:
        return bool(self.flows)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flows"] = [asdict(f) for f in self.flows]
        d.update(classified=self.classified, restricted=self.restricted, exported=self.exported)
        return d


@dataclass
class AccessHolder:
    """A permission set or profile with org-wide power, or access to sensitive fields."""

    key: str
    view_all_data: bool
    modify_all_data: bool
    api_enabled: bool
    api_only: bool
    expected: bool  # the System Administrator profile: admin power by design
    managed: bool
    sensitive_read: list[str] = field(default_factory=list)
    sensitive_edit: list[str] = field(default_factory=list)

    @property
    def all_data(self) -> bool:
        return self.view_all_data or self.modify_all_data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditCoverage:
    available: bool
    events: int = 0
    oldest: str | None = None
    newest: str | None = None
    first_read: str | None = None
    last_read: str | None = None
    days_observed: int = 0
    days_with_events: int = 0
    #: Days possibly lost: reads more than 180 days apart let Salesforce drop events in between.
    possibly_lost_days: int = 0
    security_actions: dict[str, int] = field(default_factory=dict)

    @property
    def retention_gap_days(self) -> int:
        return max(0, SALESFORCE_AUDIT_RETENTION_DAYS - (self.days_observed - self.possibly_lost_days))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["retention_gap_days"] = self.retention_gap_days
        return d


@dataclass
class Indicator:
    id: str
    title: str
    value: float | None  # in [0, 1]; None: not measurable here
    why: str
    weights: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FrameworkScore:
    framework: str
    score: float | None
    #: indicator id → points (``100 · w·v / Σw``); the points add up to ``score``.
    points: dict[str, float] = field(default_factory=dict)
    not_measured: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GovernanceReport:
    org: str
    today: str
    snapshot_version: int | None
    fields: list[SensitiveField]
    holders: list[AccessHolder]
    audit: AuditCoverage
    indicators: list[Indicator]
    frameworks: dict[str, FrameworkScore]
    overall: float | None
    platform_links: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # oldest first, this run last
    recommendations: list[str] = field(default_factory=list)

    # -- derived ----------------------------------------------------------------------------
    def indicator(self, id_: str) -> Indicator:
        return next(i for i in self.indicators if i.id == id_)

    @property
    def trend(self) -> float | None:
        """Overall score change since the previous history point (None on the first run)."""
        if len(self.history) < 2 or self.overall is None or self.history[-2].get("overall") is None:
            return None
        return round(self.overall - float(self.history[-2]["overall"]), 2)

    def history_point(self) -> dict[str, Any]:
        return {
            "date": self.today,
            "snapshot_version": self.snapshot_version,
            "overall": self.overall,
            **{fw: s.score for fw, s in self.frameworks.items()},
            "sensitive_fields": len(self.fields),
        }

    def counts(self) -> dict[str, int]:
        defined = [f for f in self.fields if not f.external]
        return {
            "sensitive_fields": len(self.fields),
            "defined": len(defined),
            "unclassified": sum(1 for f in defined if not f.classified),
            "high_sensitivity": sum(1 for f in self.fields if f.level == "high"),
            "high_unencrypted": sum(1 for f in defined if f.level == "high" and not f.encrypted),
            "granted_to_all_data_holders": sum(1 for f in self.fields if not f.restricted),
            "exported": sum(1 for f in self.fields if f.exported),
            "all_data_holders": sum(1 for h in self.holders if h.all_data and not h.expected),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "today": self.today,
            "snapshot_version": self.snapshot_version,
            "overall": self.overall,
            "trend": self.trend,
            "frameworks": {k: v.to_dict() for k, v in self.frameworks.items()},
            "indicators": [i.to_dict() for i in self.indicators],
            "counts": self.counts(),
            "fields": [f.to_dict() for f in self.fields],
            "holders": [h.to_dict() for h in self.holders],
            "audit": self.audit.to_dict(),
            "platform_links": self.platform_links,
            "history": self.history,
            "recommendations": self.recommendations,
        }

    # -- CSV -----------------------------------------------------------------------------------
    def governance_csv(self) -> str:
        """One row per (framework, indicator) — weight, value, points, why — plus a total row
        per framework and the overall score."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["org", "framework", "indicator", "title", "weight", "value", "points", "why"])
        for fw, s in self.frameworks.items():
            for ind in self.indicators:
                if fw not in ind.weights:
                    continue
                w.writerow([self.org, fw, ind.id, ind.title, ind.weights[fw],
                            "" if ind.value is None else round(ind.value, 4), s.points.get(ind.id, ""), ind.why])
            w.writerow([self.org, fw, "score", "framework score", "", "", "" if s.score is None else s.score, ""])
        w.writerow([self.org, "overall", "score", "mean of the framework scores", "", "",
                    "" if self.overall is None else self.overall, ""])
        return buf.getvalue()

    def sensitive_fields_csv(self) -> str:
        """One row per sensitive field: why, classification, encryption, access and lineage."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["org", "key", "object", "field", "label", "data_type", "external", "level", "categories",
                    "reasons", "compliance_group", "security_classification", "classified", "encrypted",
                    "encryption_scheme", "read_granted_by", "edit_granted_by", "all_data_holders", "restricted",
                    "exported_to", "export_kinds", "used_in_org"])

        def yn(v: bool | None) -> str:
            return "unknown" if v is None else ("yes" if v else "no")

        for f in self.fields:
            w.writerow([self.org, f.key, f.object, f.field, f.label or "", f.data_type or "", yn(f.external),
                        f.level, ";".join(f.categories), "; ".join(f.reasons), f.compliance_group or "",
                        f.security_classification or "", yn(f.classified), yn(f.encrypted),
                        f.encryption_scheme or "", ";".join(f.readers), ";".join(f.editors),
                        ";".join(f.all_data_holders), yn(f.restricted), ";".join(fl.target for fl in f.flows),
                        ";".join(sorted({fl.kind for fl in f.flows})), f.used_in_org])
        return buf.getvalue()

    # -- Markdown --------------------------------------------------------------------------------
    def to_markdown(self, max_rows: int = 25) -> str:
        c = self.counts()
        score = "n/a" if self.overall is None else f"{self.overall:.0f}/100"
        fws = " · ".join(f"{fw} {'n/a' if s.score is None else f'{s.score:.0f}'}" for fw, s in self.frameworks.items())
        trend = ("first run" if self.trend is None else
                 f"{'▲' if self.trend > 0 else '▼' if self.trend < 0 else '='} {self.trend:+.1f} since "
                 f"{self.history[-2]['date']}")
        out = [
            f"### Governance — {self.org}",
            "",
            f"**Readiness {score}** ({fws}); trend: {trend}. Snapshot v{self.snapshot_version}, {self.today}.",
            "Indicators drawn from metadata, not an audit opinion: they say where to look first.",
            "",
            f"{c['sensitive_fields']} sensitive field(s) ({c['high_sensitivity']} high-sensitivity): "
            f"{c['unclassified']} unclassified, {c['high_unencrypted']} high-sensitivity unencrypted, "
            f"{c['granted_to_all_data_holders']} granted to a View/Modify All Data holder, "
            f"{c['exported']} flowing into reports, e-mail or other platforms. "
            f"{c['all_data_holders']} permission set(s)/profile(s) besides System Administrator can see or "
            "modify all data.",
            "",
            "#### Score breakdown",
            "",
            "| indicator | value | " + " | ".join(f"{fw} (weight → points)" for fw in FRAMEWORKS) + " | why |",
            "|---|---:|" + "---:|" * len(FRAMEWORKS) + "---|",
        ]
        for ind in self.indicators:
            cells = []
            for fw in FRAMEWORKS:
                if fw not in ind.weights:
                    cells.append("–")
                elif ind.value is None:
                    cells.append(f"{ind.weights[fw]:g} → n/a")
                else:
                    cells.append(f"{ind.weights[fw]:g} → {self.frameworks[fw].points.get(ind.id, 0):.1f}")
            out.append(f"| {ind.title} | {_pct(ind.value)} | " + " | ".join(cells) + f" | {_md(ind.why)} |")
        out.append("| **score** | | " + " | ".join(
            "n/a" if self.frameworks[fw].score is None else f"**{self.frameworks[fw].score:.1f}**"
            for fw in FRAMEWORKS) + " | |")
        if self.recommendations:
            out += ["", "#### What to do first", ""]
            out += [f"{i}. {r}" for i, r in enumerate(self.recommendations, 1)]
        out += ["", f"#### Sensitive fields ({len(self.fields)})", ""]
        if self.fields:
            out += ["| field | why | level | classified | encrypted | read / edit granted by | all-data holders "
                    "| flows to |", "|---|---|---|---|---|---|---|---|"]
            for f in self.fields[:max_rows]:
                cls = ("unknown" if f.classified is None else "**no**" if not f.classified else
                       _md(" / ".join(x for x in (f.compliance_group, f.security_classification) if x)))
                enc = "unknown" if f.encrypted is None else (f.encryption_scheme or "yes") if f.encrypted else "no"
                grants = ", ".join([f"`{k}` (read)" for k in f.readers] + [f"`{k}` (edit)" for k in f.editors])
                flows = ", ".join(sorted({fl.kind for fl in f.flows})) or "—"
                out.append(
                    f"| `{_md(f.key)}` | {_md('; '.join(f.reasons))} | {f.level} | {cls} | {enc} | {grants or 'none'} | {', '.join(f'`{h}`' for h in f.all_data_holders) or '—'} | {flows} |")
            if len(self.fields) > max_rows:
                out.append(f"\n… and {len(self.fields) - max_rows} more in sensitive_fields.csv.")
        else:
            out.append("No sensitive field found.")
        out += ["", "#### Who can see or modify everything", ""]
        powerful = [h for h in self.holders if h.all_data or h.api_only]
        if powerful:
            out += ["| permission set / profile | View All Data | Modify All Data | API enabled | API only "
                    "| sensitive fields granted | note |", "|---|---|---|---|---|---:|---|"]
            for h in powerful:
                note = ("System Administrator: by design" if h.expected else
                        "managed package" if h.managed else
                        "all-data access through the API and the UI (not API-only)"
                        if h.api_enabled and h.all_data and not h.api_only else "")
                out.append(f"| `{_md(h.key)}` | {'yes' if h.view_all_data else ''} | "
                           f"{'yes' if h.modify_all_data else ''} | {'yes' if h.api_enabled else ''} | "
                           f"{'yes' if h.api_only else ''} | {len(set(h.sensitive_read) | set(h.sensitive_edit))} "
                           f"| {note} |")
        else:
            out.append("No permission set or profile grants View All Data, Modify All Data or API Only User.")
        flows = [(f, fl) for f in self.fields for fl in f.flows]
        out += ["", f"#### Where sensitive fields flow ({len(flows)} export path(s))", ""]
        if flows:
            out += ["| field | reaches | kind | hops | path |", "|---|---|---|---:|---|"]
            for f, fl in flows[:max_rows]:
                out.append(f"| `{_md(f.key)}` | `{_md(fl.target)}` | {fl.kind} | {fl.hops} | "
                           + _md(" ← ".join(reversed(fl.path))) + " |")
            if len(flows) > max_rows:
                out.append(f"\n… and {len(flows) - max_rows} more in sensitive_fields.csv.")
        else:
            out.append("No sensitive field reaches a report, e-mail template or platform.")
        if self.platform_links:
            out += ["", "#### Platforms linked to this org", "",
                    "| platform component | Salesforce component | sensitive |", "|---|---|---|"]
            for link in self.platform_links[:max_rows]:
                out.append(f"| `{_md(link['platform'])}` | `{_md(link['salesforce'])}` | "
                           f"{'**yes**' if link['sensitive'] else ''} |")
        a = self.audit
        out += ["", "#### Audit trail", ""]
        if a.available:
            out += [
                f"- {a.events} SetupAuditTrail event(s) seen, oldest {a.oldest}, newest {a.newest}; read since "
                f"{a.first_read}, last {a.last_read}.",
                f"- {a.days_observed} day(s) of history observed ({a.days_with_events} with events); Salesforce "
                f"keeps {SALESFORCE_AUDIT_RETENTION_DAYS} days: gap **{a.retention_gap_days} day(s)**"
                + (f", {a.possibly_lost_days} day(s) possibly lost between reads" if a.possibly_lost_days else "")
                + ".",
            ]
            if a.security_actions:
                out.append("- Security-relevant actions: " + ", ".join(
                    f"{_md(k)} ({v})" for k, v in sorted(a.security_actions.items(), key=lambda kv: (-kv[1], kv[0]))))
        else:
            out.append("No SetupAuditTrail event read yet for this org (SFDX projects have none unless "
                       "`.aicolleague/audit_trail.json` is recorded beside them).")
        if len(self.history) > 1:
            out += ["", "#### Trend", "", "| date | snapshot | overall | " + " | ".join(FRAMEWORKS) + " |",
                    "|---|---:|---:|" + "---:|" * len(FRAMEWORKS)]
            for p in self.history[-10:]:
                out.append(f"| {p['date']} | v{p.get('snapshot_version')} | {_num(p.get('overall'))} | "
                           + " | ".join(_num(p.get(fw)) for fw in FRAMEWORKS) + " |")
        return "\n".join(out) + "\n"


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.1f}"


# --- detection ------------------------------------------------------------------------------------
def classify_field(node: Node) -> tuple[list[str], list[str], str] | None:
    """Why a CustomField node holds sensitive data: ``(reasons, categories, level)``, or None.

    Sources, in order: compliance group, data sensitivity level (Confidential, Restricted,
    Mission Critical), the Triage name patterns (:func:`rules_metadata.sensitive_kind`), the
    governance patterns (health, compensation, special categories), the field type (Email,
    Phone, Encrypted Text) and the personal standard fields of person objects.
    """
    a = node.attrs or {}
    obj, _, fname = node.name.partition(".")
    reasons: list[str] = []
    cats: set[str] = set()
    group = str(a.get("compliance_group") or "").strip()
    cls = str(a.get("security_classification") or "").strip()
    if group:
        reasons.append(f"compliance group {group}")
        for g in re.split(r"[;,]", group):
            cats.add(_GROUP_CATEGORY.get(g.strip().lower(), "personal"))
    if cls.lower() in SENSITIVE_CLASSIFICATIONS:
        reasons.append(f"classified {cls}")
    label = a.get("label") if isinstance(a.get("label"), str) else None
    kind = sensitive_kind(obj, fname, label)
    if kind:
        reasons.append(f"name looks like {kind}")
        cats.add(_KIND_CATEGORY.get(kind, "personal"))
        if kind == "special-category data" and re.search(r"medical|diagnos|health", _norm(fname + " " + (label or ""))):
            cats.add("health")
    base = fname[:-3] if fname.lower().endswith("__c") else fname
    for text in (_norm(base), _norm(label or "")):
        for rx, what, cat in _EXTRA_PATTERNS:
            if text and rx.search(text) and cat not in cats:
                reasons.append(f"name looks like {what}")
                cats.add(cat)
    dtype = str(a.get("data_type") or "")
    if dtype.lower() in ("email", "phone"):
        reasons.append(f"type {dtype}")
        cats.add("contact")
    elif dtype.lower() in ("encryptedtext", "encryptedstring"):
        reasons.append("Encrypted Text type")
        cats.add("personal")
    if obj in PERSON_OBJECTS and fname.lower() in PERSON_STANDARD_FIELDS:
        reasons.append(f"personal data on {obj}")
        cats.add("contact" if fname.lower() not in ("name", "firstname", "lastname", "middlename", "birthdate")
                 else "personal")
    if not reasons:
        return None
    high = bool(cats & HIGH_CATEGORIES) or cls.lower() in SENSITIVE_CLASSIFICATIONS or \
        bool({"health", "payment"} & {_GROUP_CATEGORY.get(g.strip().lower(), "") for g in re.split(r"[;,]", group)})
    return list(dict.fromkeys(reasons)), sorted(cats), "high" if high else "normal"


def is_encrypted(node: Node) -> bool | None:
    """Encrypted at rest per the metadata (Shield ``encryptionScheme`` / describe ``encrypted``, or
    Classic Encrypted Text); None for external nodes (not in the extraction)."""
    if node.external:
        return None
    a = node.attrs or {}
    return bool(a.get("encrypted")) or str(a.get("data_type") or "").lower() in ("encryptedtext", "encryptedstring")


def access_holders(inventory: OrgInventory) -> dict[str, AccessHolder]:
    """Permission sets and profiles with their org-wide user permissions (from the extraction)."""
    out: dict[str, AccessHolder] = {}
    for c in sorted(inventory.components, key=lambda c: c.key):
        if c.type not in ("PermissionSet", "Profile"):
            continue
        perms = set(_user_permissions(c))
        out[c.key] = AccessHolder(
            key=c.key,
            view_all_data="ViewAllData" in perms,
            modify_all_data="ModifyAllData" in perms,
            api_enabled="ApiEnabled" in perms,
            api_only="ApiUserOnly" in perms,
            expected=_is_admin_profile(c),
            managed=_is_managed(c),
        )
    return out


# --- audit-trail ledger -------------------------------------------------------------------------
def update_audit_ledger(ledger: dict[str, Any] | None, events: Sequence[AuditEvent], today: str) -> dict[str, Any]:
    """The org's audit-trail coverage ledger after this run's ``events`` (new SetupAuditTrail rows).

    Aggregates only: events per day, per security-relevant action, oldest/newest timestamps and
    the dates the trail was read. Events within the already-counted window are ignored, so a
    cursor reset (the whole trail read again) does not count anything twice; older events
    (a backfill) and newer ones are added.
    """
    led: dict[str, Any] = {
        "days": {}, "security_actions": {}, "oldest": None, "newest": None, "reads": [],
        **(ledger or {}),
    }
    days: dict[str, int] = dict(led["days"])
    sec: dict[str, int] = dict(led["security_actions"])
    oldest = _ts(led["oldest"]) if led["oldest"] else None
    newest = _ts(led["newest"]) if led["newest"] else None
    new_oldest, new_newest = oldest, newest
    for e in events:
        try:
            t = _ts(e.created_date)
        except ValueError:
            continue
        if oldest is not None and newest is not None and oldest <= t <= newest:
            continue  # already counted
        day = t.date().isoformat()
        days[day] = days.get(day, 0) + 1
        if _SECURITY_AUDIT_RE.search(f"{e.action} {e.section or ''}"):
            sec[e.action] = sec.get(e.action, 0) + 1
        new_oldest = t if new_oldest is None or t < new_oldest else new_oldest
        new_newest = t if new_newest is None or t > new_newest else new_newest
    reads = [r for r in led["reads"] if r != today] + [today]
    return {
        "days": dict(sorted(days.items())),
        "security_actions": dict(sorted(sec.items())),
        "oldest": new_oldest.isoformat() if new_oldest else None,
        "newest": new_newest.isoformat() if new_newest else None,
        "reads": sorted(reads)[-400:],
    }


def audit_coverage(ledger: dict[str, Any] | None, today: str) -> AuditCoverage:
    """Coverage and retention from a ledger (:func:`update_audit_ledger`)."""
    if not ledger or not ledger.get("oldest"):
        reads = sorted((ledger or {}).get("reads") or [])
        return AuditCoverage(available=False, first_read=reads[0] if reads else None,
                             last_read=reads[-1] if reads else None)
    reads = sorted(ledger.get("reads") or [today])
    oldest = _ts(ledger["oldest"]).date()
    end = max(_day(today) or oldest, _ts(ledger["newest"]).date())
    read_days = [d for d in (_day(r) for r in reads) if d]
    lost = 0
    for a, b in zip(read_days, read_days[1:]):
        lost += max(0, (b - a).days - SALESFORCE_AUDIT_RETENTION_DAYS)
    return AuditCoverage(
        available=True,
        events=sum(int(v) for v in ledger.get("days", {}).values()),
        oldest=ledger["oldest"],
        newest=ledger["newest"],
        first_read=reads[0],
        last_read=reads[-1],
        days_observed=(end - oldest).days + 1,
        days_with_events=len(ledger.get("days", {})),
        possibly_lost_days=lost,
        security_actions=dict(ledger.get("security_actions") or {}),
    )


# --- the report -------------------------------------------------------------------------------------
def _share(items: Sequence[Any], ok) -> tuple[float | None, int, int]:
    if not items:
        return None, 0, 0
    good = sum(1 for x in items if ok(x))
    return good / len(items), good, len(items)


def _names(keys: Iterable[str], n: int = 4) -> str:
    keys = list(keys)
    shown = ", ".join(k.split(":", 1)[-1] for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _indicators(fields: list[SensitiveField], holders: list[AccessHolder], audit: AuditCoverage) -> list[Indicator]:
    defined = [f for f in fields if not f.external]
    out: list[Indicator] = []

    def add(id_: str, value: float | None, why: str) -> None:
        title, weights = INDICATORS[id_]
        out.append(Indicator(id_, title, value, why, dict(weights)))

    v, good, n = _share(defined, lambda f: f.classified)
    missing = [f.key for f in defined if not f.classified]
    add("classified", v, f"{good} of {n} sensitive field(s) defined in the org have a compliance group or "
        "sensitivity level" + (f"; missing: {_names(missing)}" if missing else "") if n else
        "no sensitive field defined in the org")
    phi = [f for f in defined if "health" in f.categories]
    v, good, n = _share(phi, lambda f: bool(re.search(r"hipaa|phi", f.compliance_group or "", re.I)))
    add("phi_classified", v, f"{good} of {n} health-data field(s) tagged HIPAA/PHI" if n else
        "no health-data field found (HIPAA scored on the other indicators)")
    high = [f for f in defined if f.level == "high"]
    v, good, n = _share(high, lambda f: f.encrypted)
    clear = [f.key for f in high if not f.encrypted]
    add("encrypted", v, f"{good} of {n} high-sensitivity field(s) encrypted (Shield or Classic)"
        + (f"; in clear text: {_names(clear)}" if clear else "") if n else "no high-sensitivity field defined")
    v, good, n = _share(fields, lambda f: f.restricted)
    exposed = sorted({h for f in fields for h in f.all_data_holders})
    add("fls_restricted", v, f"{good} of {n} sensitive field(s) not granted to a View/Modify All Data holder"
        + (f"; granted through {_names(exposed)}" if exposed else "") if n else "no sensitive field")
    view = [h.key for h in holders if h.view_all_data and not h.modify_all_data and not h.expected]
    modify = [h.key for h in holders if h.modify_all_data and not h.expected]
    add("all_data_access", 1 / (1 + len(view) + 2 * len(modify)),
        f"{len(modify)} Modify All Data and {len(view)} View All Data holder(s) besides System Administrator"
        + (f": {_names(modify + view)}" if modify or view else ""))
    v, good, n = _share(fields, lambda f: not f.exported)
    kinds = Counter(fl.kind for f in fields for fl in f.flows)
    add("contained", v, f"{good} of {n} sensitive field(s) stay in the org"
        + (f"; exported via {', '.join(f'{k} ({c})' for k, c in sorted(kinds.items()))}" if kinds else "")
        if n else "no sensitive field")
    if audit.available:
        kept = max(0, audit.days_observed - audit.possibly_lost_days)
        add("audit_retention", min(1.0, kept / SALESFORCE_AUDIT_RETENTION_DAYS),
            f"{kept} of {SALESFORCE_AUDIT_RETENTION_DAYS} days of SetupAuditTrail history observed "
            f"(oldest event {str(audit.oldest)[:10]}); gap {audit.retention_gap_days} day(s)")
    else:
        add("audit_retention", None, "no SetupAuditTrail event read for this org yet")
    return out


def framework_scores(indicators: Sequence[Indicator]) -> dict[str, FrameworkScore]:
    """Score per framework: ``100 · Σ w·v / Σ w`` over measurable indicators, with points that add up."""
    out: dict[str, FrameworkScore] = {}
    for fw in FRAMEWORKS:
        parts = [(i, i.weights[fw]) for i in indicators if fw in i.weights]
        measured = [(i, w) for i, w in parts if i.value is not None]
        total_w = sum(w for _, w in measured)
        if not total_w:
            out[fw] = FrameworkScore(fw, None, {}, [i.id for i, _ in parts])
            continue
        points = {i.id: round(100 * w * float(i.value) / total_w, 2) for i, w in measured}  # type: ignore[arg-type]
        out[fw] = FrameworkScore(fw, round(sum(points.values()), 2), points,
                                 [i.id for i, _ in parts if i.value is None])
    return out


def _recommendations(fields: list[SensitiveField], holders: list[AccessHolder], audit: AuditCoverage) -> list[str]:
    recs: list[str] = []
    unclassified = [f.key for f in fields if f.classified is False]
    if unclassified:
        recs.append(f"Classify {len(unclassified)} field(s) (Compliance Categorization and Data Sensitivity "
                    f"Level): {_names(unclassified, 6)}.")
    clear = [f.key for f in fields if not f.external and f.level == "high" and not f.encrypted]
    if clear:
        recs.append(f"Encrypt {len(clear)} high-sensitivity field(s) with Shield Platform Encryption, or record "
                    f"the compensating control: {_names(clear, 6)}.")
    for h in holders:
        if h.all_data and not h.expected and (h.sensitive_read or h.sensitive_edit):
            fs = sorted(set(h.sensitive_read) | set(h.sensitive_edit))
            recs.append(f"`{h.key}` combines {'Modify' if h.modify_all_data else 'View'} All Data with access to "
                        f"{len(fs)} sensitive field(s) ({_names(fs)}): split the field access into a dedicated "
                        "permission set for the users who need it.")
    exported = [f for f in fields if f.exported]
    if exported:
        kinds = sorted({fl.kind for f in exported for fl in f.flows})
        recs.append(f"Review {len(exported)} sensitive field(s) leaving field-level security via "
                    f"{', '.join(kinds)}: {_names([f.key for f in exported], 6)} (remove, mask, or restrict "
                    "the audience and record the processor).")
    for h in holders:
        if h.api_enabled and h.all_data and not h.api_only and not h.expected and h.key.startswith("PermissionSet:") \
                and "integration" in h.key.lower():
            recs.append(f"`{h.key}` looks like an integration grant with all-data access: give its user the API "
                        "Only User permission and narrow it to the objects the integration needs.")
    if not audit.available:
        recs.append("Read the SetupAuditTrail regularly (a live org, or a recorded audit trail): no audit evidence "
                    "yet.")
    elif audit.retention_gap_days:
        recs.append(f"Keep the audit trail flowing: {audit.days_observed} of {SALESFORCE_AUDIT_RETENTION_DAYS} days "
                    "observed; export SetupAuditTrail (or use Field Audit Trail / Event Monitoring) before "
                    "Salesforce drops rows older than 180 days.")
    return recs


def org_governance(
    store: GraphStore,
    org: str,
    inventory: OrgInventory,
    *,
    audit_ledger: dict[str, Any] | None,
    today: str,
    history: list[dict[str, Any]] | None = None,
) -> GovernanceReport:
    """The governance report of ``org``'s current snapshot (see the module docstring).

    ``history``: earlier :meth:`GovernanceReport.history_point` entries (oldest first); the new
    point replaces one of the same date and snapshot version, so a rerun is not a trend.
    """
    snaps = store.snapshots(org)
    version = snaps[-1].version if snaps else None
    nodes = {n.key: n for n in store.nodes(org)}
    edges: list[Edge] = store.edges(org)
    index = store.graph_index(org)
    holders = access_holders(inventory)

    grants: dict[str, list[Edge]] = {}
    for e in edges:
        if e.kind == GRANTS and e.source.startswith(_ACCESS_TYPES):
            grants.setdefault(e.target, []).append(e)

    fields: list[SensitiveField] = []
    for key in sorted(nodes):
        node = nodes[key]
        if node.type != "CustomField" or "." not in node.name:
            continue
        found = classify_field(node)
        if found is None:
            continue
        reasons, cats, level = found
        a = node.attrs or {}
        obj, _, fname = node.name.partition(".")
        sf = SensitiveField(
            key=key, object=obj, field=fname, label=a.get("label"), data_type=a.get("data_type"),
            external=node.external, reasons=reasons, categories=cats, level=level,
            compliance_group=a.get("compliance_group") or None,
            security_classification=a.get("security_classification") or None,
            encrypted=is_encrypted(node), encryption_scheme=a.get("encryption_scheme") or None,
        )
        for e in sorted(grants.get(key, []), key=lambda e: e.source):
            (sf.editors if e.access == WRITE else sf.readers).append(e.source)
            h = holders.get(e.source)
            if h is not None:
                (h.sensitive_edit if e.access == WRITE else h.sensitive_read).append(key)
                if h.all_data and not h.expected and e.source not in sf.all_data_holders:
                    sf.all_data_holders.append(e.source)
        sf.readers = sorted(set(sf.readers) - set(sf.editors))
        sf.editors = sorted(set(sf.editors))
        if key in index:
            used = 0
            for hit in index.impact(key, depth=FLOW_DEPTH, limit=FLOW_LIMIT):
                if any(p.startswith(_ACCESS_TYPES) for p in hit.path[1:]):
                    continue  # access (and layouts assigned by a profile) is not data flow
                kind = flow_kind(hit.type)
                if kind in EXPORT_KINDS:
                    sf.flows.append(Flow(hit.key, kind, hit.depth, tuple(hit.path)))
                else:
                    used += 1
            sf.used_in_org = used
        fields.append(sf)
    # Most exposed first: high level, exported, granted to all-data holders, unclassified.
    fields.sort(key=lambda f: (f.level != "high", not f.exported, f.restricted, f.classified is not False, f.key))

    sensitive = {f.key for f in fields}
    platform_links = []
    for e in sorted(edges, key=lambda e: (e.target not in sensitive, e.source, e.target)):
        if e.kind == SYNCED_TO:
            platform_links.append({"platform": e.source, "salesforce": e.target, "sensitive": e.target in sensitive})

    audit = audit_coverage(audit_ledger, today)
    holder_list = [h for h in holders.values() if h.all_data or h.api_only or h.sensitive_read or h.sensitive_edit]
    for h in holder_list:
        h.sensitive_read = sorted(set(h.sensitive_read))
        h.sensitive_edit = sorted(set(h.sensitive_edit))
    indicators = _indicators(fields, holder_list, audit)
    frameworks = framework_scores(indicators)
    scored = [s.score for s in frameworks.values() if s.score is not None]
    overall = round(sum(scored) / len(scored), 2) if scored else None
    report = GovernanceReport(
        org=org, today=today, snapshot_version=version, fields=fields, holders=holder_list, audit=audit,
        indicators=indicators, frameworks=frameworks, overall=overall, platform_links=platform_links,
        recommendations=_recommendations(fields, holder_list, audit),
    )
    point = report.history_point()
    past = [p for p in (history or [])
            if not (p.get("date") == today and p.get("snapshot_version") == version)]
    report.history = (past + [point])[-200:]
    return report


# --- across orgs -----------------------------------------------------------------------------------
def governance_overview_markdown(reports: dict[str, dict[str, Any]]) -> str:
    """Scores side by side and classification drift: a field that is sensitive in several orgs
    but classified differently (or only in some) — from each org's ``governance.json``."""
    orgs = sorted(reports)
    out = ["### Governance across orgs", ""]
    if not orgs:
        return "\n".join(out + ["No governance report yet."]) + "\n"
    out += ["| org | overall | " + " | ".join(FRAMEWORKS) + " | trend | sensitive | unclassified | exported "
            "| all-data holders | audit days |", "|---|---:|" + "---:|" * (len(FRAMEWORKS) + 6)]
    for o in orgs:
        r = reports[o]
        c = r.get("counts", {})
        fw = r.get("frameworks", {})
        trend = r.get("trend")
        audit = r.get("audit", {})
        out.append(
            f"| {o} | {_num(r.get('overall'))} | " + " | ".join(_num(fw.get(f, {}).get("score")) for f in FRAMEWORKS)
            + f" | {'—' if trend is None else f'{trend:+.1f}'} | {c.get('sensitive_fields', 0)} | "
            f"{c.get('unclassified', 0)} | {c.get('exported', 0)} | {c.get('all_data_holders', 0)} | "
            f"{audit.get('days_observed', 0) if audit.get('available') else 'n/a'} |")
    drift = classification_drift(reports)
    out += ["", f"**Classification drift** ({len(drift)} field(s) classified differently between orgs)", ""]
    if drift:
        out += ["| field | " + " | ".join(orgs) + " |", "|---|" + "---|" * len(orgs)]
        for key, per in drift[:40]:
            out.append(f"| `{_md(key)}` | " + " | ".join(_md(per.get(o, "—")) for o in orgs) + " |")
    else:
        out.append("Every sensitive field present in several orgs is classified the same way in each.")
    return "\n".join(out) + "\n"


def classification_drift(reports: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """``(field key, {org: classification or 'unclassified'})`` for defined sensitive fields whose
    classification differs between the orgs that define them."""
    per_key: dict[str, dict[str, str]] = {}
    for org, r in reports.items():
        for f in r.get("fields", []):
            if f.get("external"):
                continue
            label = " / ".join(x for x in (f.get("compliance_group"), f.get("security_classification")) if x)
            per_key.setdefault(f["key"], {})[org] = label or "unclassified"
    return [(k, v) for k, v in sorted(per_key.items()) if len(v) > 1 and len(set(v.values())) > 1]


__all__ = [
    "FRAMEWORKS",
    "INDICATORS",
    "SALESFORCE_AUDIT_RETENTION_DAYS",
    "AccessHolder",
    "AuditCoverage",
    "Flow",
    "FrameworkScore",
    "GovernanceReport",
    "Indicator",
    "SensitiveField",
    "access_holders",
    "audit_coverage",
    "classification_drift",
    "classify_field",
    "flow_kind",
    "framework_scores",
    "governance_overview_markdown",
    "is_encrypted",
    "org_governance",
    "update_audit_ledger",
]
