"""Synthetic large Salesforce-like orgs for the benchmarks.

:func:`generate` builds a graph as numpy arrays for ``DuckDBGraphStore.load_arrays``: objects,
fields (``child_of`` their object, some ``lookup_to`` another), Apex classes (``queries`` /
``references`` fields, ``dml``/``queries`` objects, ``calls`` classes), triggers, flows,
validation rules, layouts (``shows`` fields), permission sets (``grants``), reports. Targets
are drawn from a power law (``floor(n·u^a)``), so a few hub objects/fields/classes are
referenced by very many components, as in real orgs; Apex calls and subflows go mostly from a
higher to a lower index (a DAG, like real layering) with a few back edges, so there are cycles.

:func:`write_sfdx_project` writes an SFDX source project on disk (objects with field XML,
Apex classes with SOQL over the generated fields and calls between classes) for the scan
benchmark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aicolleague_pipelines.lib.graph.model import (
    APEX_ACTION,
    CALLS,
    CHILD_OF,
    DML,
    EDGE_KINDS,
    GRANTS,
    LOOKUP_TO,
    QUERIES,
    REFERENCES,
    SHOWS,
    SUBFLOW,
    TRIGGER_ON,
)

TYPE_NAMES = (
    "CustomObject",
    "CustomField",
    "ApexClass",
    "ApexTrigger",
    "Flow",
    "ValidationRule",
    "Layout",
    "PermissionSet",
    "Report",
)
STANDARD_OBJECTS = ("Account", "Contact", "Opportunity", "Case", "Lead", "User", "Task", "Campaign")
_K = {k: i for i, k in enumerate(EDGE_KINDS)}


@dataclass
class SyntheticOrg:
    keys: np.ndarray  # object array of str, index = nid
    type_codes: np.ndarray  # uint8 into TYPE_NAMES
    src: np.ndarray  # int32
    dst: np.ndarray  # int32
    kind_codes: np.ndarray  # uint8 into EDGE_KINDS
    type_names: tuple[str, ...] = TYPE_NAMES
    kind_names: tuple[str, ...] = EDGE_KINDS
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # type → [start, end)

    @property
    def n_nodes(self) -> int:
        return int(self.keys.size)

    @property
    def n_edges(self) -> int:
        return int(self.src.size)


def _pl(rng: np.random.Generator, n: int, size: int, a: float) -> np.ndarray:
    """``size`` draws in ``[0, n)`` skewed towards 0 (power law, exponent ``a`` > 1)."""
    if n <= 0 or size <= 0:
        return np.zeros(max(size, 0), np.int64)
    return np.minimum((n * rng.random(size) ** a).astype(np.int64), n - 1)


def generate(n_nodes: int = 1_000_000, n_edges: int = 5_000_000, seed: int = 0) -> SyntheticOrg:
    rng = np.random.default_rng(seed)
    n_nodes = max(n_nodes, 100)
    sizes = {
        "CustomObject": max(10, int(0.005 * n_nodes)),
        "CustomField": int(0.55 * n_nodes),
        "ApexClass": int(0.12 * n_nodes),
        "ApexTrigger": int(0.01 * n_nodes),
        "Flow": int(0.07 * n_nodes),
        "ValidationRule": int(0.05 * n_nodes),
        "Layout": int(0.05 * n_nodes),
        "PermissionSet": max(1, int(0.005 * n_nodes)),
    }
    sizes["Report"] = n_nodes - sum(sizes.values())
    ranges: dict[str, tuple[int, int]] = {}
    at = 0
    for t in TYPE_NAMES:
        ranges[t] = (at, at + sizes[t])
        at += sizes[t]
    type_codes = np.repeat(np.arange(len(TYPE_NAMES), dtype=np.uint8), [sizes[t] for t in TYPE_NAMES])

    srcs: list[np.ndarray] = []
    dsts: list[np.ndarray] = []
    kinds: list[np.ndarray] = []

    def add(src_type: str, s_local: np.ndarray, dst_type: str, d_local: np.ndarray, kind: str | np.ndarray) -> None:
        srcs.append(s_local + ranges[src_type][0])
        dsts.append(d_local + ranges[dst_type][0])
        if isinstance(kind, str):
            kinds.append(np.full(s_local.size, _K[kind], np.uint8))
        else:
            kinds.append(kind.astype(np.uint8))

    def uni(t: str, size: int) -> np.ndarray:
        return rng.integers(0, sizes[t], size) if sizes[t] else np.zeros(size, np.int64)

    n_obj, n_fld = sizes["CustomObject"], sizes["CustomField"]
    obj_of_field = _pl(rng, n_obj, n_fld, 2.0)
    add("CustomField", np.arange(n_fld), "CustomObject", obj_of_field, CHILD_OF)
    obj_of_vr = _pl(rng, n_obj, sizes["ValidationRule"], 2.0)
    add("ValidationRule", np.arange(sizes["ValidationRule"]), "CustomObject", obj_of_vr, CHILD_OF)
    obj_of_layout = _pl(rng, n_obj, sizes["Layout"], 2.0)
    add("Layout", np.arange(sizes["Layout"]), "CustomObject", obj_of_layout, CHILD_OF)
    add("ApexTrigger", np.arange(sizes["ApexTrigger"]), "CustomObject", _pl(rng, n_obj, sizes["ApexTrigger"], 1.5), TRIGGER_ON)
    lookups = rng.choice(n_fld, size=n_fld // 10, replace=False)
    add("CustomField", lookups, "CustomObject", _pl(rng, n_obj, lookups.size, 3.0), LOOKUP_TO)

    rest = max(0, n_edges - sum(a.size for a in srcs))
    share = lambda f: int(rest * f)  # noqa: E731
    n = share(0.30)  # Apex → fields
    add("ApexClass", uni("ApexClass", n), "CustomField", _pl(rng, n_fld, n, 2.5),
        np.where(rng.random(n) < 0.5, _K[QUERIES], _K[REFERENCES]))
    n = share(0.12)  # Apex → Apex, mostly downwards (a DAG) …
    n_cls = sizes["ApexClass"]
    caller = rng.integers(1, max(2, n_cls), n) % max(1, n_cls)
    callee = np.minimum((caller * rng.random(n) ** 2.0).astype(np.int64), max(0, n_cls - 1))
    back = rng.random(n) < 0.0005  # … with a few back edges (cycles)
    caller[back], callee[back] = callee[back].copy(), caller[back].copy()
    add("ApexClass", caller, "ApexClass", callee, CALLS)
    n = share(0.05)
    add("ApexClass", uni("ApexClass", n), "CustomObject", _pl(rng, n_obj, n, 2.0),
        np.where(rng.random(n) < 0.6, _K[QUERIES], _K[DML]))
    n = share(0.02)
    add("ApexTrigger", uni("ApexTrigger", n), "ApexClass", _pl(rng, n_cls, n, 2.0), CALLS)
    n = share(0.10)
    add("Flow", uni("Flow", n), "CustomField", _pl(rng, n_fld, n, 2.5), REFERENCES)
    n = share(0.02)
    n_flow = sizes["Flow"]
    parent = rng.integers(1, max(2, n_flow), n) % max(1, n_flow)
    add("Flow", parent, "Flow", np.minimum((parent * rng.random(n) ** 2.0).astype(np.int64), max(0, n_flow - 1)), SUBFLOW)
    n = share(0.02)
    add("Flow", uni("Flow", n), "ApexClass", _pl(rng, n_cls, n, 2.0), APEX_ACTION)
    n = share(0.05)
    add("ValidationRule", uni("ValidationRule", n), "CustomField", _pl(rng, n_fld, n, 2.5), REFERENCES)
    n = share(0.12)
    add("Layout", uni("Layout", n), "CustomField", _pl(rng, n_fld, n, 2.5), SHOWS)
    n = share(0.08)
    add("PermissionSet", uni("PermissionSet", n), "CustomField", _pl(rng, n_fld, n, 1.5), GRANTS)
    n = share(0.01)
    add("PermissionSet", uni("PermissionSet", n), "CustomObject", _pl(rng, n_obj, n, 1.5), GRANTS)
    n = share(0.01)
    add("PermissionSet", uni("PermissionSet", n), "ApexClass", _pl(rng, n_cls, n, 1.5), GRANTS)
    n = rest - sum(share(f) for f in (0.30, 0.12, 0.05, 0.02, 0.10, 0.02, 0.02, 0.05, 0.12, 0.08, 0.01, 0.01))
    add("Report", uni("Report", n), "CustomField", _pl(rng, n_fld, n, 2.5), SHOWS)

    src = np.concatenate(srcs).astype(np.int32)
    dst = np.concatenate(dsts).astype(np.int32)
    kind_codes = np.concatenate(kinds)

    obj_names = [STANDARD_OBJECTS[i] if i < len(STANDARD_OBJECTS) else f"Obj{i}__c" for i in range(n_obj)]
    keys: list[str] = [f"CustomObject:{o}" for o in obj_names]
    keys += [f"CustomField:{obj_names[o]}.Fld{i}__c" for i, o in enumerate(obj_of_field.tolist())]
    keys += [f"ApexClass:Cls{i}" for i in range(n_cls)]
    keys += [f"ApexTrigger:Trg{i}" for i in range(sizes["ApexTrigger"])]
    keys += [f"Flow:Flow{i}" for i in range(n_flow)]
    keys += [f"ValidationRule:{obj_names[o]}.VR{i}" for i, o in enumerate(obj_of_vr.tolist())]
    keys += [f"Layout:{obj_names[o]}-Layout{i}" for i, o in enumerate(obj_of_layout.tolist())]
    keys += [f"PermissionSet:PS{i}" for i in range(sizes["PermissionSet"])]
    keys += [f"Report:Folder{i % 97}/Rep{i}" for i in range(sizes["Report"])]
    return SyntheticOrg(np.asarray(keys, dtype=object), type_codes, src, dst, kind_codes, ranges=ranges)


# --- an SFDX project on disk for the scan benchmark -------------------------------------
_FIELD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>{name}</fullName>
    <label>{label}</label>
{body}</CustomField>
"""
_OBJECT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <label>{label}</label>
    <pluralLabel>{label}s</pluralLabel>
    <nameField><label>Name</label><type>Text</type></nameField>
    <deploymentStatus>Deployed</deploymentStatus>
    <sharingModel>ReadWrite</sharingModel>
</CustomObject>
"""
_CLS_META = """<?xml version="1.0" encoding="UTF-8"?>
<ApexClass xmlns="http://soap.sforce.com/2006/04/metadata">
    <apiVersion>{api}</apiVersion>
    <status>Active</status>
</ApexClass>
"""


def write_sfdx_project(
    path: str | Path,
    n_classes: int = 1000,
    n_objects: int | None = None,
    fields_per_object: int = 20,
    seed: int = 0,
    api_version: str = "62.0",
) -> dict[str, int]:
    """Write an SFDX source project: custom objects with field XML (some lookups), Apex
    classes whose SOQL selects generated fields (power-law choice of object and fields) and
    that call lower-numbered classes. Returns counts of what was written."""
    rng = np.random.default_rng(seed)
    root = Path(path)
    n_objects = n_objects if n_objects is not None else max(5, n_classes // 20)
    base = root / "force-app" / "main" / "default"
    (base / "classes").mkdir(parents=True, exist_ok=True)
    (root / "sfdx-project.json").write_text(
        json.dumps(
            {
                "packageDirectories": [{"path": "force-app", "default": True}],
                "name": "synthetic",
                "sourceApiVersion": api_version,
            },
            indent=2,
        )
    )
    objects = [f"Obj{i}__c" for i in range(n_objects)]
    fields = {o: [f"Fld{j}__c" for j in range(fields_per_object)] for o in objects}
    n_files = 1
    n_lookups = 0
    for oi, o in enumerate(objects):
        odir = base / "objects" / o
        (odir / "fields").mkdir(parents=True, exist_ok=True)
        (odir / f"{o}.object-meta.xml").write_text(_OBJECT_XML.format(label=o[:-3]))
        n_files += 1
        for fj, f in enumerate(fields[o]):
            if fj == 0 and oi > 0:
                target = objects[int(_pl(rng, oi, 1, 2.0)[0])]
                body = (
                    f"    <type>Lookup</type>\n    <referenceTo>{target}</referenceTo>\n"
                    f"    <relationshipName>{o[:-3]}_{f[:-3]}</relationshipName>\n"
                    "    <deleteConstraint>SetNull</deleteConstraint>\n"
                )
                n_lookups += 1
            else:
                body = "    <type>Text</type>\n    <length>255</length>\n"
            (odir / "fields" / f"{f}.field-meta.xml").write_text(
                _FIELD_XML.format(name=f, label=f[:-3], body=body)
            )
            n_files += 1
    n_soql = 0
    for c in range(n_classes):
        lines = [f"public with sharing class Cls{c} {{"]
        for q in range(int(rng.integers(1, 4))):
            o = objects[int(_pl(rng, n_objects, 1, 2.0)[0])]
            picks = sorted({fields[o][int(i)] for i in _pl(rng, fields_per_object, 4, 2.0)})
            lines += [
                f"    public static List<{o}> query{q}(Set<Id> ids) {{",
                f"        return [SELECT Id, {', '.join(picks)} FROM {o} WHERE Id IN :ids];",
                "    }",
            ]
            n_soql += 1
        if c > 0:
            callee = int(c * rng.random() ** 2)
            lines += [
                "    public static void run() {",
                f"        Cls{callee}.run();",
                f"        update new {objects[0]}(Name = 'x');",
                "    }",
            ]
        else:
            lines += ["    public static void run() {}"]
        lines.append("}")
        (base / "classes" / f"Cls{c}.cls").write_text("\n".join(lines) + "\n")
        (base / "classes" / f"Cls{c}.cls-meta.xml").write_text(_CLS_META.format(api=api_version))
        n_files += 2
    return {
        "objects": n_objects,
        "fields": n_objects * fields_per_object,
        "lookups": n_lookups,
        "classes": n_classes,
        "soql": n_soql,
        "files": n_files,
    }
