"""Findings as SARIF 2.1.0 (for code-scanning tools) and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from aicolleague_pipelines.lib.agents.model import Finding, Rule

_SARIF_LEVEL = {"info": "note", "low": "note", "medium": "warning", "high": "error", "critical": "error"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _location(f: Finding) -> dict[str, Any]:
    path, _, line = f.evidence.rpartition(":")
    if not path or not line.isdigit():
        path, line = f.evidence, ""
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": path or f.component}}}
    if line:
        loc["physicalLocation"]["region"] = {"startLine": int(line)}
    loc["logicalLocations"] = [{"fullyQualifiedName": f.component, "kind": "member"}]
    return loc


def to_sarif(findings: Iterable[Finding], rules: Iterable[Rule], tool_version: str = "0.1.0") -> dict:
    """A SARIF 2.1.0 log with one run; stable finding ids become partialFingerprints."""
    rules = list(rules)
    index = {r.id: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule_id,
            "level": _SARIF_LEVEL.get(f.severity, "warning"),
            "message": {"text": f"{f.message} {f.explanation}".strip()},
            "locations": [_location(f)],
            "partialFingerprints": {"aicolleagueFindingId/v1": f.id},
            "properties": {"org": f.org, "component": f.component, "severity": f.severity,
                           "risk": f.risk, "category": f.category},
        }
        if f.rule_id in index:
            result["ruleIndex"] = index[f.rule_id]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "aicolleague-triage",
                "version": tool_version,
                "informationUri": "https://github.com/aicolleague/aicolleague_pipelines",
                "rules": [{
                    "id": r.id,
                    "name": r.id.replace("-", " ").title().replace(" ", ""),
                    "shortDescription": {"text": r.title},
                    "fullDescription": {"text": r.description},
                    "defaultConfiguration": {"level": _SARIF_LEVEL.get(r.severity, "warning")},
                    "properties": {"category": r.category, "source": r.source, "severity": r.severity},
                } for r in rules],
            }},
            "results": results,
        }],
    }


CSV_COLUMNS = ("id", "org", "rule_id", "severity", "risk", "category", "component", "evidence",
               "message", "explanation")


def to_csv(findings: Iterable[Finding]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for f in findings:
        writer.writerow([f.id, f.org, f.rule_id, f.severity, f.risk, f.category, f.component,
                         f.evidence, f.message, f.explanation])
    return buf.getvalue()
