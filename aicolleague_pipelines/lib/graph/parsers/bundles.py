"""References of UI code: Lightning Web Components, Aura bundles, Visualforce pages/components
(and Visualforce email templates).

- LWC JavaScript: ``@salesforce/apex/Class.method`` → ``CALLS`` the class;
  ``@salesforce/schema/Obj.Field`` → ``IMPORTS`` the field (relationship paths resolved),
  ``@salesforce/schema/Obj`` → the object; ``@salesforce/label/c.X`` → ``CustomLabel``;
  ``@salesforce/customPermission``, ``resourceUrl``, ``messageChannel``; ``c/other`` modules;
  ``fields: ['Account.Name']`` string lists in wire configs.
- LWC HTML: ``<c-child-comp>`` → ``LightningComponentBundle:childComp``; record forms with a
  literal ``object-api-name`` and their ``lightning-input-field`` (write) /
  ``lightning-output-field`` (read).
- Aura markup: ``controller="ns.Class"`` → ``CALLS``; ``extends`` / ``implements`` of ``c:``
  bundles; ``<c:other>``, ``aura:registerEvent`` / ``aura:handler`` event types; ``$Label``
  merge fields. ``c.method`` actions stay inside the bundle's own controller (no reference).
- Visualforce: ``controller`` / ``extensions`` → ``CALLS``; ``standardController`` → the
  object, and merge fields on it (``{!Account.Owner.Email}``, ``apex:inputField`` → write);
  ``apex:repeat`` / table ``var`` over the record set or a child relationship; ``$Label``,
  ``$Setup``, ``$ObjectType``, ``$Page``, ``$Resource`` globals; ``<apex:include>``, ``<c:x>``
  Visualforce components.

Lines are 1-based within the file named in ``detail`` (bundles hold several files).
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from aicolleague_pipelines.lib.graph.model import (
    CALLS,
    EXTENDS,
    IMPLEMENTS,
    IMPORTS,
    READ,
    REFERENCES,
    WRITE,
    Reference,
)
from aicolleague_pipelines.lib.graph.parsers.formula import parse_merge_text
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component, component_key

_JS_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_JS_STRING = re.compile(r"'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|`(?:\\.|[^`\\])*`", re.S)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MODULE = re.compile(r"""\b(?:from|import)\s*\(?\s*(['"])([^'"\n]+)\1""")
_WIRE_FIELDS = re.compile(r"\b(?:fields|optionalFields)\s*:\s*\[([^\]]*)\]")
_STRING_PATH = re.compile(r"""['"]([A-Za-z]\w*(?:\.\w+)+)['"]""")
_TAG = re.compile(r"<(/?)([A-Za-z][\w:.-]*)((?:\s+[^\s=>/]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*(/?)>", re.S)
_ATTR = re.compile(r"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_JS_LABEL = re.compile(r"\$Label\.(\w+)\.(\w+)")


def _blank(m: re.Match) -> str:
    """Replace a comment by blanks, keeping its newlines (so lines stay right)."""
    return re.sub(r"[^\n]", " ", m.group(0))


_NEWLINES: dict[int, tuple[str, list[int]]] = {}


def _line(text: str, pos: int) -> int:
    """1-based line of ``pos`` (newline offsets cached per text: pages hold many tags)."""
    cached = _NEWLINES.get(id(text))
    if cached is None or cached[0] is not text:
        cached = (text, [i for i, c in enumerate(text) if c == "\n"])
        _NEWLINES.clear()
        _NEWLINES[id(text)] = cached
    return bisect.bisect_left(cached[1], pos) + 1


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR.finditer(text)}


def _dedupe(refs: list[Reference]) -> list[Reference]:
    seen: set[tuple] = set()
    out: list[Reference] = []
    for r in refs:
        k = (r.target, r.kind, r.access, r.detail, r.line)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def kebab_to_camel(name: str) -> str:
    """``child-comp`` → ``childComp`` (LWC file/tag naming)."""
    head, *rest = name.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _ns_name(dotted: str) -> str:
    """``ns.Name`` → ``ns__Name``; ``c.Name`` / ``Name`` → ``Name``."""
    ns, sep, name = dotted.partition(".")
    if not sep:
        return dotted
    return name if ns == "c" else f"{ns}__{name}"


def _class_key(schema: Schema, name: str) -> str:
    name = _ns_name(name.strip())
    return component_key("ApexClass", schema.apex_class(name) or name)


def _key(schema: Schema, type_: str, name: str) -> str:
    return schema.canonical_key(component_key(type_, name))


def _ui_component_key(schema: Schema, name: str, prefer: str) -> str:
    """A ``c:`` name that may be an LWC or an Aura bundle: the one the org defines, else ``prefer``."""
    lwc, aura = component_key("LightningComponentBundle", name), component_key("AuraDefinitionBundle", name)
    if schema.has_component(lwc) and not schema.has_component(aura):
        return schema.canonical_key(lwc)
    if schema.has_component(aura) and not schema.has_component(lwc):
        return schema.canonical_key(aura)
    return schema.canonical_key(lwc if prefer == "LightningComponentBundle" else aura)


# --- LWC ----------------------------------------------------------------------------------
def _module_refs(module: str, schema: Schema, line: int, detail: str) -> list[Reference]:
    if module.startswith("c/"):
        return [Reference(_key(schema, "LightningComponentBundle", module[2:]), IMPORTS, line=line, detail=detail)]
    if not module.startswith("@salesforce/"):
        return []
    kind, _, rest = module[len("@salesforce/"):].partition("/")
    if not rest:
        return []
    if kind in ("apex", "apexContinuation"):
        parts = rest.split(".")
        if len(parts) >= 2:
            cls = ".".join(parts[:-1])
            return [Reference(_class_key(schema, cls), CALLS, line=line, detail=f"{detail} {parts[-1]}")]
        return []
    if kind == "schema":
        obj, _, path = rest.partition(".")
        if not path:
            return [Reference(schema.object_key(obj), IMPORTS, line=line, access=READ, detail=detail)]
        return [Reference(k, IMPORTS, line=line, access=READ, detail=detail) for k in schema.resolve_path(obj, path)]
    if kind == "label":
        return [Reference(_key(schema, "CustomLabel", _ns_name(rest)), IMPORTS, line=line, detail=detail)]
    if kind == "customPermission":
        return [Reference(_key(schema, "CustomPermission", _ns_name(rest)), IMPORTS, line=line, detail=detail)]
    if kind == "resourceUrl":
        return [Reference(_key(schema, "StaticResource", _ns_name(rest)), IMPORTS, line=line, detail=detail)]
    if kind == "messageChannel":
        name = rest[:-3] if rest.endswith("__c") else rest
        return [Reference(_key(schema, "LightningMessageChannel", name), IMPORTS, line=line, detail=detail)]
    return []


def parse_lwc_js(text: str, schema: Schema, *, detail: str = "js") -> list[Reference]:
    code = _JS_COMMENT.sub(_blank, text)
    refs: list[Reference] = []
    for m in _MODULE.finditer(code):
        refs += _module_refs(m.group(2).strip(), schema, _line(code, m.start()), detail)
    for m in _WIRE_FIELDS.finditer(code):
        for s in _STRING_PATH.finditer(m.group(1)):
            obj, _, path = s.group(1).partition(".")
            for k in schema.resolve_path(obj, path):
                refs.append(Reference(k, REFERENCES, line=_line(code, m.start(1) + s.start()), access=READ, detail=f"{detail} wire fields"))
    for m in _JS_LABEL.finditer(code):
        name = m.group(2) if m.group(1) == "c" else f"{m.group(1)}__{m.group(2)}"
        refs.append(Reference(_key(schema, "CustomLabel", name), REFERENCES, line=_line(code, m.start()), detail=detail))
    return refs


#: Record-form tags (LWC kebab and Aura colon forms) → what their field tags do.
_FORMS = {
    "lightning-record-edit-form": WRITE,
    "lightning:recordeditform": WRITE,
    "lightning-record-view-form": READ,
    "lightning:recordviewform": READ,
    "lightning-record-form": WRITE,
    "lightning:recordform": WRITE,
}
_FIELD_TAGS = {
    "lightning-input-field": WRITE,
    "lightning:inputfield": WRITE,
    "lightning-output-field": READ,
    "lightning:outputfield": READ,
}


def _markup_tags(text: str) -> list[tuple[bool, str, dict[str, str], bool, int]]:
    """(closing, tag name as written, attributes (lower-case names), self-closing, line)."""
    clean = _HTML_COMMENT.sub(_blank, text)
    return [
        (m.group(1) == "/", m.group(2), _attrs(m.group(3) or ""), m.group(4) == "/", _line(clean, m.start()))
        for m in _TAG.finditer(clean)
    ]


def _form_refs(tags: list, schema: Schema, detail: str) -> list[Reference]:
    """Record forms with a literal object name, and the field tags inside them."""
    refs: list[Reference] = []
    stack: list[tuple[str, str | None, str]] = []  # (tag, object or None, form access)
    for closing, name, attrs, self_closing, line in tags:
        tag = name.lower()
        if tag in _FORMS:
            if closing:
                while stack:
                    if stack.pop()[0] == tag:
                        break
                continue
            obj = attrs.get("object-api-name") or attrs.get("objectapiname")
            if obj and ("{" in obj or not re.fullmatch(r"[A-Za-z]\w*", obj)):
                obj = None  # bound to a JS property: not knowable here
            if obj:
                refs.append(Reference(schema.object_key(obj), REFERENCES, line=line, access=READ, detail=detail))
                for f in re.split(r"[,\s]+", attrs.get("fields", "")) if "{" not in attrs.get("fields", "{") else []:
                    if f:
                        refs.append(Reference(schema.field_key(obj, f), REFERENCES, line=line, access=_FORMS[tag], detail=detail))
            if not self_closing:
                stack.append((tag, obj, _FORMS[tag]))
        elif tag in _FIELD_TAGS and not closing and stack and stack[-1][1]:
            fname = attrs.get("field-name") or attrs.get("fieldname")
            if fname and re.fullmatch(r"[A-Za-z]\w*", fname):
                obj, access = stack[-1][1], _FIELD_TAGS[tag]
                if stack[-1][2] == READ:
                    access = READ
                refs.append(Reference(schema.field_key(obj, fname), REFERENCES, line=line, access=access, detail=detail))  # type: ignore[arg-type]
    return refs


def parse_lwc_html(text: str, schema: Schema, *, detail: str = "html") -> list[Reference]:
    tags = _markup_tags(text)
    refs: list[Reference] = []
    for closing, name, _attrs_, _sc, line in tags:
        tag = name.lower()
        if not closing and tag.startswith("c-") and len(tag) > 2:
            refs.append(Reference(_key(schema, "LightningComponentBundle", kebab_to_camel(tag[2:])), REFERENCES, line=line, detail=f"{detail} child component"))
    refs += _form_refs(tags, schema, detail)
    return refs


# --- Aura ---------------------------------------------------------------------------------
_AURA_ROOTS = ("aura:component", "aura:application", "aura:event", "aura:interface")


def parse_aura_markup(text: str, schema: Schema, *, detail: str = "cmp") -> list[Reference]:
    tags = _markup_tags(text)
    refs: list[Reference] = []
    for closing, name, attrs, _sc, line in tags:
        tag = name.lower()
        if closing:
            continue
        if tag in _AURA_ROOTS:
            if attrs.get("controller"):
                refs.append(Reference(_class_key(schema, attrs["controller"]), CALLS, line=line, detail=f"{detail} controller"))
            for name in re.split(r"[,\s]+", attrs.get("extends", "")):
                if name.startswith("c:"):
                    refs.append(Reference(_key(schema, "AuraDefinitionBundle", name[2:]), EXTENDS, line=line, detail=detail))
            for name in re.split(r"[,\s]+", attrs.get("implements", "")):
                if name.startswith("c:"):
                    refs.append(Reference(_key(schema, "AuraDefinitionBundle", name[2:]), IMPLEMENTS, line=line, detail=detail))
        elif tag.startswith("c:") and len(tag) > 2:
            refs.append(Reference(_ui_component_key(schema, name[2:], "AuraDefinitionBundle"), REFERENCES, line=line, detail=f"{detail} child component"))
        elif tag in ("aura:registerevent", "aura:handler", "aura:dependency"):
            for attr in ("type", "event", "resource"):
                v = attrs.get(attr, "")
                if v.startswith(("c:", "markup://c:")):
                    name = v.rsplit(":", 1)[1]
                    refs.append(Reference(_key(schema, "AuraDefinitionBundle", name), REFERENCES, line=line, detail=f"{detail} {tag}"))
    refs += _form_refs(tags, schema, detail)
    refs += parse_merge_text(_HTML_COMMENT.sub(_blank, text), None, schema, variables={}, line=1, detail=detail)
    return refs


def parse_aura_js(text: str, schema: Schema, *, detail: str = "js") -> list[Reference]:
    code = _JS_COMMENT.sub(_blank, text)
    refs: list[Reference] = []
    for m in _JS_LABEL.finditer(code):
        name = m.group(2) if m.group(1) == "c" else f"{m.group(1)}__{m.group(2)}"
        refs.append(Reference(_key(schema, "CustomLabel", name), REFERENCES, line=_line(code, m.start()), detail=detail))
    for s in _JS_STRING.finditer(code):  # $A.createComponent("c:foo", …)
        lit = s.group(0)[1:-1]
        if re.fullmatch(r"c:\w+", lit):
            refs.append(Reference(_ui_component_key(schema, lit[2:], "AuraDefinitionBundle"), REFERENCES, line=_line(code, s.start()), dynamic=True, detail=f"{detail} createComponent"))
    return refs


# --- Visualforce --------------------------------------------------------------------------
_VF_ROOTS = ("apex:page", "apex:component", "messaging:emailtemplate")
_VF_ITERATORS = ("apex:repeat", "apex:datatable", "apex:pageblocktable", "apex:datalist")


def parse_visualforce(text: str, schema: Schema, *, detail: str | None = None) -> list[Reference]:
    """References of a Visualforce page / component / email template markup."""
    clean = _HTML_COMMENT.sub(_blank, text or "")
    tags = _markup_tags(clean)
    refs: list[Reference] = []
    variables: dict[str, str | None] = {}
    for closing, name, attrs, _sc, line in tags:
        tag = name.lower()
        if closing:
            continue
        if tag in _VF_ROOTS:
            std = attrs.get("standardcontroller")
            if std:
                obj = schema.object_name(std)
                variables[std.lower()] = obj
                refs.append(Reference(schema.object_key(obj), REFERENCES, line=line, access=READ, detail=detail or "standardController"))
                if attrs.get("recordsetvar"):
                    variables[attrs["recordsetvar"].lower()] = obj
            if attrs.get("controller"):
                refs.append(Reference(_class_key(schema, attrs["controller"]), CALLS, line=line, detail=detail or "controller"))
            for ext in attrs.get("extensions", "").split(","):
                if ext.strip():
                    refs.append(Reference(_class_key(schema, ext), CALLS, line=line, detail=detail or "extension"))
            for attr, var in (("relatedtotype", "relatedto"), ("recipienttype", "recipient")):
                if attrs.get(attr):
                    obj = schema.object_name(attrs[attr])
                    variables[var] = obj
                    refs.append(Reference(schema.object_key(obj), REFERENCES, line=line, access=READ, detail=detail or attr))
        elif tag == "apex:include" and attrs.get("pagename"):
            refs.append(Reference(_key(schema, "ApexPage", attrs["pagename"]), REFERENCES, line=line, detail=detail or "include"))
        elif tag.startswith("c:") and len(tag) > 2:
            refs.append(Reference(_key(schema, "ApexComponent", name[2:]), REFERENCES, line=line, detail=detail or "component"))
    # iteration variables: <apex:repeat value="{!Account.Contacts}" var="c">
    for closing, name, attrs, _sc, _line_ in tags:
        if closing or name.lower() not in _VF_ITERATORS or not attrs.get("var"):
            continue
        value = (attrs.get("value") or "").strip()
        if not (value.startswith("{!") and value.endswith("}")):
            continue
        path = value[2:-1].strip().split(".")
        obj = variables.get(path[0].lower()) if path else None
        for rel in path[1:]:
            child = schema.child_relationship(obj, rel) if obj else None
            obj = child[0] if child else None
        if obj:
            variables[attrs["var"].lower()] = obj
    # merge fields: apex:inputField values are written, everything else read
    write_spans: list[tuple[int, int]] = []
    for m in _TAG.finditer(clean):
        if m.group(2).lower() == "apex:inputfield" and m.group(1) != "/":
            write_spans.append((m.start(), m.end()))
    read_text = clean
    for start, end in write_spans:
        read_text = read_text[:start] + re.sub(r"[^\n]", " ", read_text[start:end]) + read_text[end:]
        refs += parse_merge_text(
            clean[start:end], None, schema, variables=variables, line=_line(clean, start), detail=detail, access=WRITE
        )
    refs += parse_merge_text(read_text, None, schema, variables=variables, line=1, detail=detail)
    return refs


# --- dispatcher ---------------------------------------------------------------------------
def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _files(comp: Component) -> dict[str, str]:
    files = comp.attributes.get("files")
    return {k: v for k, v in files.items() if isinstance(v, str)} if isinstance(files, dict) else {}


def parse_bundle(comp: Component, schema: Schema) -> list[Reference]:
    """References of an LWC / Aura bundle (its ``files``) or a Visualforce page / component
    (its ``body``, or ``files`` when the body is absent)."""
    refs: list[Reference] = []
    if comp.type == "LightningComponentBundle":
        md = comp.attributes.get("metadata")
        configs = (md.get("targetConfigs") or {}) if isinstance(md, dict) else {}
        for tc in _as_list(configs.get("targetConfig") if isinstance(configs, dict) else None):
            objects = tc.get("objects") if isinstance(tc, dict) else None
            for o in _as_list(objects.get("object") if isinstance(objects, dict) else None):
                if isinstance(o, str) and o.strip():
                    refs.append(Reference(schema.object_key(o.strip()), REFERENCES, access=READ, detail="target object"))
        for name, text in sorted(_files(comp).items()):
            if name.endswith((".js", ".ts")):
                refs += parse_lwc_js(text, schema, detail=name)
            elif name.endswith(".html"):
                refs += parse_lwc_html(text, schema, detail=name)
    elif comp.type == "AuraDefinitionBundle":
        for name, text in sorted(_files(comp).items()):
            if name.endswith((".cmp", ".app", ".evt", ".intf", ".design")):
                refs += parse_aura_markup(text, schema, detail=name)
            elif name.endswith(".js"):
                refs += parse_aura_js(text, schema, detail=name)
    elif comp.type in ("ApexPage", "ApexComponent"):
        body: Any = comp.attributes.get("body")
        if isinstance(body, str):
            refs += parse_visualforce(body, schema)
        else:
            for name, text in sorted(_files(comp).items()):
                refs += parse_visualforce(text, schema, detail=name)
    elif comp.type == "EmailTemplate":
        body = comp.attributes.get("body")
        if isinstance(body, str):
            refs += parse_visualforce(body, schema)
    self_key = comp.key
    return _dedupe([r for r in refs if r.target != self_key])


__all__ = [
    "kebab_to_camel",
    "parse_aura_js",
    "parse_aura_markup",
    "parse_bundle",
    "parse_lwc_html",
    "parse_lwc_js",
    "parse_visualforce",
]
