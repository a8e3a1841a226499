"""References of a Flow (or Process Builder process) from its metadata dict.

``comp.attributes["metadata"]`` is the flow XML as nested dicts (element name → value, repeated
elements → lists — :func:`aicolleague_pipelines.lib.safe_xml.element_to_dict`). What it yields:

- record-triggered / platform-event start (``start.object``) → ``TRIGGER_ON`` the object;
  start filters / filter formula → fields read; scheduled start → ``QUERIES`` the object;
- ``recordLookups`` / ``dynamicChoiceSets`` → ``QUERIES`` the object, filter / queried / sort /
  output fields (read);
- ``recordCreates`` / ``recordUpdates`` / ``recordDeletes`` → ``DML`` write on the object and
  on every field assigned (``inputAssignments``, or, with ``inputReference``, the fields the
  flow's assignments set on that variable — ``$Record`` is the triggering record);
- assignments to ``$Record.Field`` → write (before-save flows persist them);
- ``$Record`` / ``$Record__Prior`` / sObject-variable paths in conditions, formulas, text
  templates, screens, action inputs → read;
- ``subflows`` → ``SUBFLOW``; ``actionCalls`` of type apex and ``apexPluginCalls`` →
  ``APEX_ACTION``; screen components / local actions ``c:x`` → the LWC/Aura bundle;
  Apex-defined variables → the class.

XML gives no line numbers here: references carry ``line=None`` and a ``detail`` naming the
element (``"recordUpdates:Update_Account"``).
"""

from __future__ import annotations

from typing import Any

from aicolleague_pipelines.lib.graph.model import (
    APEX_ACTION,
    DML,
    QUERIES,
    READ,
    REFERENCES,
    SUBFLOW,
    TRIGGER_ON,
    WRITE,
    Reference,
)
from aicolleague_pipelines.lib.graph.parsers.formula import (
    parse_formula,
    parse_merge_text,
    resolve_identifier,
)
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component, component_key

#: Flow element lists (top-level keys holding named elements).
_ELEMENT_TYPES = (
    "start",
    "actionCalls",
    "apexPluginCalls",
    "assignments",
    "choices",
    "collectionProcessors",
    "constants",
    "customErrors",
    "decisions",
    "dynamicChoiceSets",
    "formulas",
    "loops",
    "orchestratedStages",
    "recordCreates",
    "recordDeletes",
    "recordLookups",
    "recordRollbacks",
    "recordUpdates",
    "screens",
    "stages",
    "steps",
    "subflows",
    "textTemplates",
    "transforms",
    "variables",
    "waits",
)
#: Keys whose string value is a resource path read by the element.
_READ_REF_KEYS = frozenset(
    {"elementReference", "leftValueReference", "collectionReference", "objectFieldReference", "rightValueReference"}
)
#: Keys the generic walk leaves to the element handlers (or that never hold references).
_SKIP_KEYS = frozenset(
    {
        "processMetadataValues",
        "connector",
        "defaultConnector",
        "faultConnector",
        "nextValueConnector",
        "noMoreValuesConnector",
        "targetReference",
        "assignToReference",
        "assignNextValueToReference",
        "assignRecordIdToReference",
        "outputReference",
        "inputReference",
        "expression",
        "filterFormula",
    }
)


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _s(d: Any, key: str) -> str | None:
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return None


def _strip_merge(path: str) -> str:
    p = path.strip()
    if p.startswith("{!") and p.endswith("}"):
        p = p[2:-1].strip()
    return p


class _FlowParser:
    def __init__(self, comp: Component, schema: Schema) -> None:
        self.comp = comp
        self.schema = schema
        self.md: dict = comp.attributes.get("metadata") or {}
        if not isinstance(self.md, dict):
            self.md = {}
        self.refs: list[Reference] = []
        self.start: dict = self.md.get("start") if isinstance(self.md.get("start"), dict) else {}
        obj = (
            _s(self.start, "object")
            or comp.attributes.get("trigger_object")
            or self._process_builder_object()
        )
        self.base: str | None = schema.object_name(obj) if obj else None
        #: lower resource name → object type (None: not an sObject resource)
        self.vars: dict[str, str | None] = {}
        #: lower variable name → fields assigned to it (``var.Field`` in assignments)
        self.assigned: dict[str, list[str]] = {}

    # --- helpers -------------------------------------------------------------------------
    def add(self, target: str, kind: str, detail: str | None, access: str | None = None) -> None:
        self.refs.append(Reference(target=target, kind=kind, access=access, detail=detail))

    def obj_key(self, name: str) -> str:
        return self.schema.object_key(name)

    def elements(self, etype: str) -> list[dict]:
        return [e for e in _as_list(self.md.get(etype)) if isinstance(e, dict)]

    def _process_builder_object(self) -> str | None:
        for pmv in _as_list(self.md.get("processMetadataValues")):
            if isinstance(pmv, dict) and _s(pmv, "name") == "ObjectType":
                v = pmv.get("value")
                return _s(v, "stringValue")
        return None

    def path_keys(self, path: str) -> list[str]:
        return resolve_identifier(_strip_merge(path), self.base, self.schema, variables=self.vars)

    def path_refs(self, path: str | None, detail: str, access: str = READ, kind: str = REFERENCES) -> None:
        if not path:
            return
        for key in self.path_keys(path):
            self.add(key, kind, detail, access if key.startswith(("CustomField:", "CustomObject:")) else None)

    def var_object(self, ref: str | None) -> str | None:
        """Object type of a resource reference (``$Record``, ``varName``, ``Get_X``)."""
        if not ref:
            return None
        name = _strip_merge(ref).lower()
        if name in ("$record", "$record__prior"):
            return self.base
        return self.vars.get(name)

    def field_key(self, obj: str | None, field: str | None) -> list[str]:
        if not obj or not field:
            return []
        return self.schema.resolve_path(obj, field)

    # --- resources ---------------------------------------------------------------------
    def collect_resources(self) -> None:
        for v in self.elements("variables"):
            name = _s(v, "name")
            if name:
                is_sobject = (_s(v, "dataType") or "").lower() == "sobject"
                obj = _s(v, "objectType") if is_sobject else None
                self.vars[name.lower()] = self.schema.object_name(obj) if obj else None
        for etype in ("constants", "formulas", "textTemplates", "choices", "dynamicChoiceSets", "stages"):
            for e in self.elements(etype):
                if _s(e, "name"):
                    self.vars.setdefault(_s(e, "name").lower(), None)  # type: ignore[union-attr]
        for e in self.elements("recordLookups"):
            name = _s(e, "name")
            if name and not _s(e, "outputReference") and not e.get("outputAssignments"):
                obj = _s(e, "object")
                self.vars[name.lower()] = self.schema.object_name(obj) if obj else None
        for etype in ("recordCreates", "actionCalls", "subflows", "screens", "apexPluginCalls", "collectionProcessors"):
            for e in self.elements(etype):
                if _s(e, "name"):
                    self.vars.setdefault(_s(e, "name").lower(), None)  # type: ignore[union-attr]
            if etype == "screens":
                for e in self.elements("screens"):
                    for f in self._screen_fields(e):
                        if _s(f, "name"):
                            self.vars.setdefault(_s(f, "name").lower(), None)  # type: ignore[union-attr]
        for e in self.elements("loops"):  # the loop element is its current item (API ≥ 57)
            name = _s(e, "name")
            if name:
                self.vars[name.lower()] = self.var_object(_s(e, "collectionReference"))
                nxt = _s(e, "assignNextValueToReference")
                if nxt and nxt.lower() in self.vars and self.vars[nxt.lower()] is None:
                    self.vars[nxt.lower()] = self.vars[name.lower()]
        for e in self.elements("assignments"):
            for item in _as_list(e.get("assignmentItems")):
                target = _s(item, "assignToReference")
                if target and "." in target:
                    var, _, fld = _strip_merge(target).partition(".")
                    self.assigned.setdefault(var.lower(), []).append(fld)

    def _screen_fields(self, container: dict) -> list[dict]:
        out: list[dict] = []
        for f in _as_list(container.get("fields")):
            if isinstance(f, dict):
                out.append(f)
                out += self._screen_fields(f)  # sections / columns nest fields
        return out

    # --- generic walk --------------------------------------------------------------------
    def walk(self, value: Any, detail: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in _SKIP_KEYS:
                    continue
                if k in _READ_REF_KEYS and isinstance(v, str):
                    self.path_refs(v, detail)
                else:
                    self.walk(v, detail)
        elif isinstance(value, list):
            for v in value:
                self.walk(v, detail)
        elif isinstance(value, str) and "{!" in value:
            self.refs += parse_merge_text(value, self.base, self.schema, variables=self.vars, detail=detail)

    def formula(self, text: str | None, detail: str) -> None:
        self.refs += parse_formula(text, self.base, self.schema, variables=self.vars, detail=detail)

    def filters(self, obj: str | None, filters: Any, detail: str, kind: str = REFERENCES) -> None:
        for f in _as_list(filters):
            for key in self.field_key(obj, _s(f, "field")):
                self.add(key, kind, detail, READ)

    # --- elements ------------------------------------------------------------------------
    def run(self) -> list[Reference]:
        self.collect_resources()
        self.do_start()
        for etype in _ELEMENT_TYPES:
            if etype == "start":
                continue
            for e in self.elements(etype):
                detail = f"{etype}:{_s(e, 'name') or '?'}"
                self.walk(e, detail)
                handler = getattr(self, f"do_{etype}", None)
                if handler:
                    handler(e, detail)
        return _dedupe(self.refs)

    def do_start(self) -> None:
        if not self.base:
            return
        detail = "start"
        trigger_type = _s(self.start, "triggerType") or self.comp.attributes.get("trigger_type")
        rtt = _s(self.start, "recordTriggerType") or self.comp.attributes.get("record_trigger_type")
        if trigger_type and trigger_type.lower() == "scheduled":
            self.add(self.obj_key(self.base), QUERIES, "start:Scheduled", READ)
            self.filters(self.base, self.start.get("filters"), detail, QUERIES)
        else:
            text = " ".join(x for x in (trigger_type, rtt) if x) or (
                "Process Builder" if (self.md.get("processType") == "Workflow") else None
            )
            self.add(self.obj_key(self.base), TRIGGER_ON, text)
            self.filters(self.base, self.start.get("filters"), detail)
        self.walk({k: v for k, v in self.start.items() if k not in ("filters", "object")}, detail)
        self.formula(_s(self.start, "filterFormula"), detail)

    def do_formulas(self, e: dict, detail: str) -> None:
        self.formula(_s(e, "expression"), detail)

    def do_collectionProcessors(self, e: dict, detail: str) -> None:
        self.formula(_s(e, "formula") if isinstance(e.get("formula"), str) else None, detail)

    def do_variables(self, e: dict, detail: str) -> None:
        if (_s(e, "dataType") or "").lower() == "sobject" and _s(e, "objectType"):
            self.add(self.obj_key(_s(e, "objectType")), REFERENCES, detail, READ)  # type: ignore[arg-type]
        if _s(e, "apexClass"):
            self.add(self._class_key(_s(e, "apexClass")), REFERENCES, detail)  # type: ignore[arg-type]

    def do_assignments(self, e: dict, detail: str) -> None:
        for item in _as_list(e.get("assignmentItems")):
            target = _s(item, "assignToReference")
            if target and _strip_merge(target).lower().startswith(("$record.",)):
                self.path_refs(target, detail, WRITE)

    def do_recordLookups(self, e: dict, detail: str) -> None:
        obj = _s(e, "object")
        if not obj:
            return
        self.add(self.obj_key(obj), QUERIES, detail, READ)
        self.filters(obj, e.get("filters"), detail, QUERIES)
        for f in _as_list(e.get("queriedFields")):
            if isinstance(f, str):
                for key in self.field_key(obj, f.strip()):
                    self.add(key, QUERIES, detail, READ)
        for oa in _as_list(e.get("outputAssignments")):
            for key in self.field_key(obj, _s(oa, "field")):
                self.add(key, QUERIES, detail, READ)
        for key in self.field_key(obj, _s(e, "sortField")):
            self.add(key, QUERIES, detail, READ)

    def do_dynamicChoiceSets(self, e: dict, detail: str) -> None:
        obj = _s(e, "object")
        if obj:
            self.add(self.obj_key(obj), QUERIES, detail, READ)
            self.filters(obj, e.get("filters"), detail, QUERIES)
            for k in ("displayField", "valueField", "sortField"):
                for key in self.field_key(obj, _s(e, k)):
                    self.add(key, QUERIES, detail, READ)
            for oa in _as_list(e.get("outputAssignments")):
                for key in self.field_key(obj, _s(oa, "field")):
                    self.add(key, QUERIES, detail, READ)
        pobj, pfield = _s(e, "picklistObject"), _s(e, "picklistField")
        if pobj and pfield:
            self.add(self.schema.field_key(pobj, pfield), REFERENCES, detail, READ)

    def _dml(self, e: dict, detail: str, op: str) -> None:
        obj = _s(e, "object")
        ref = _s(e, "inputReference")
        if not obj and ref:
            obj = self.var_object(ref)
        if not obj:
            return
        d = f"{detail} ({op})"
        self.add(self.obj_key(obj), DML, d, WRITE)
        if op == "delete":
            self.filters(obj, e.get("filters"), detail)
            return
        self.filters(obj, e.get("filters"), detail)
        for ia in _as_list(e.get("inputAssignments")):
            for key in self.field_key(obj, _s(ia, "field"))[-1:]:
                self.add(key, DML, d, WRITE)
        if ref:
            var = _strip_merge(ref).lower()
            for fld in self.assigned.get(var, []):
                for key in self.field_key(obj, fld)[-1:]:
                    self.add(key, DML, d, WRITE)

    def do_recordCreates(self, e: dict, detail: str) -> None:
        self._dml(e, detail, "create")

    def do_recordUpdates(self, e: dict, detail: str) -> None:
        self._dml(e, detail, "update")

    def do_recordDeletes(self, e: dict, detail: str) -> None:
        self._dml(e, detail, "delete")

    def do_subflows(self, e: dict, detail: str) -> None:
        name = _s(e, "flowName")
        if name:
            self.add(component_key("Flow", self.schema.flow(name) or name), SUBFLOW, detail)

    def _class_key(self, name: str) -> str:
        if "." in name:  # ns.Class
            ns, _, cls = name.partition(".")
            name = f"{ns}__{cls}"
        return component_key("ApexClass", self.schema.apex_class(name) or name)

    def do_actionCalls(self, e: dict, detail: str) -> None:
        atype = (_s(e, "actionType") or "").lower()
        name = _s(e, "actionName")
        if not name:
            return
        if atype == "apex":
            self.add(self._class_key(name), APEX_ACTION, detail)
        elif atype == "flow":
            self.add(component_key("Flow", self.schema.flow(name) or name), SUBFLOW, detail)
        elif atype == "component":
            key = _bundle_key(name, self.schema)
            if key:
                self.add(key, REFERENCES, detail)

    def do_apexPluginCalls(self, e: dict, detail: str) -> None:
        name = _s(e, "apexClass")
        if name:
            self.add(self._class_key(name), APEX_ACTION, detail)

    def do_screens(self, e: dict, detail: str) -> None:
        for f in self._screen_fields(e):
            ext = _s(f, "extensionName")
            if ext:
                key = _bundle_key(ext, self.schema)
                if key:
                    self.add(key, REFERENCES, detail)
            ofr = _s(f, "objectFieldReference")
            if ofr:  # input of a record field on a screen: the user edits it
                self.path_refs(ofr, detail, WRITE)


def _bundle_key(name: str, schema: Schema) -> str | None:
    """``c:myCmp`` → the LWC (or Aura) bundle key; standard namespaces → None."""
    ns, sep, cmp = name.partition(":")
    if not sep or ns.lower() != "c" or not cmp:
        return None
    lwc = component_key("LightningComponentBundle", cmp)
    aura = component_key("AuraDefinitionBundle", cmp)
    if not schema.has_component(lwc) and schema.has_component(aura):
        return schema.canonical_key(aura)
    return schema.canonical_key(lwc)


def _dedupe(refs: list[Reference]) -> list[Reference]:
    seen: set[tuple] = set()
    out: list[Reference] = []
    for r in refs:
        k = (r.target, r.kind, r.access, r.detail)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def parse_flow(comp: Component, schema: Schema) -> list[Reference]:
    """References of one Flow component (its ``metadata`` dict); ``[]`` without metadata."""
    return _FlowParser(comp, schema).run()


__all__ = ["parse_flow"]
