"""Salesforce formula references: formula fields, validation rules, default values, workflow
criteria, flow formulas and merge fields (``{!...}`` in flows, email templates, Visualforce).

A small tokenizer, not a regex over raw text: string literals (``"..."`` / ``'...'``) and
``/* */`` comments never yield references, identifiers followed by ``(`` are functions, and
``{!`` / ``}`` merge delimiters are unwrapped. Each remaining identifier is resolved:

- bare names and relationship paths (``Program__r.Account__r.Name``) on ``base_object``
  through :meth:`Schema.resolve_path` (every lookup along the way + the final field);
- ``$Record.X`` / ``$Record__Prior.X`` / ``$Source.X`` on ``base_object``;
- ``$User``, ``$Profile``, ``$UserRole``, ``$Organization``, ``$RecordType`` → fields of
  ``User`` / ``Profile`` / ``UserRole`` / ``Organization`` / ``RecordType``;
- ``$Setup.Setting__c.Field__c`` → the custom setting's field;
- ``$CustomMetadata.Type__mdt.Record.Field__c`` → the type's field and the record;
- ``$Label.X`` → ``CustomLabel:X``, ``$Permission.X`` → ``CustomPermission:X``,
  ``$ObjectType.Obj.Fields.F`` → field (``$ObjectType.Obj`` → object),
  ``$Page.P`` → ``ApexPage:P``, ``$Resource.R`` → ``StaticResource:R``;
- other globals (``$Api``, ``$System``, ``$Flow``, ``$GlobalConstant``, ``$Component`` …)
  are ignored.

With ``variables`` (flows, Visualforce, email templates, FlexiPages) bare names are *resources*
rather than fields: ``var.Field`` resolves on the variable's object type, names that are not
variables are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aicolleague_pipelines.lib.graph.model import READ, REFERENCES, Reference
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import component_key

#: Bare words that are literals/operators, never fields (when not followed by ``(``).
_KEYWORDS = frozenset({"true", "false", "null", "and", "or", "not"})

#: ``$Global`` → the object whose fields it exposes.
_GLOBAL_OBJECTS = {
    "$user": "User",
    "$profile": "Profile",
    "$userrole": "UserRole",
    "$organization": "Organization",
    "$recordtype": "RecordType",
}
#: Globals that reference the formula's own object (flows, lookup filters).
_SELF_GLOBALS = frozenset({"$record", "$record__prior", "$source"})


@dataclass(frozen=True)
class _Ident:
    text: str
    line: int
    is_function: bool


def tokenize_identifiers(text: str) -> list[_Ident]:
    """Identifiers of a formula (with 1-based line), skipping strings and comments.

    Merge delimiters ``{!`` and ``}`` are treated as punctuation, so ``{!$Record.Name}`` yields
    ``$Record.Name``. ``is_function`` is set when the next significant character is ``(``.
    """
    out: list[tuple[str, int, int]] = []  # (ident, line, end index)
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in "\"'":
            # string literal with backslash escapes; may span lines
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n":
                    line += 1
                j += 1
            i = j + 1
        elif ch == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
        elif ch.isalpha() or ch in "_$":
            j = i + 1
            while j < n and (
                text[j].isalnum()
                or text[j] in "_.$"
                # polymorphic relationship in flows: $Record.Owner:User.Email
                or (text[j] == ":" and j + 1 < n and text[j + 1].isalpha() and text[j - 1].isalnum())
            ):
                j += 1
            out.append((text[i:j].rstrip("."), line, j))
            i = j
        elif ch.isdigit():
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "._"):
                j += 1
            i = j
        else:
            i += 1
    idents: list[_Ident] = []
    for ident, ln, end in out:
        k = end
        while k < n:
            if text[k].isspace():
                k += 1
            elif text.startswith("/*", k):
                c = text.find("*/", k + 2)
                k = n if c < 0 else c + 2
            else:
                break
        idents.append(_Ident(ident, ln, k < n and text[k] == "("))
    return idents


def resolve_path(schema: Schema, obj: str, path: str) -> list[str]:
    """:meth:`Schema.resolve_path`, plus flow polymorphic hops ``Owner:User.Email``."""
    if ":" not in path:
        return schema.resolve_path(obj, path)
    parts = [p for p in path.split(".") if p]
    keys: list[str] = []
    current = obj
    for i, part in enumerate(parts):
        rel_name, _, type_ = part.partition(":")
        if i == len(parts) - 1:
            keys.append(schema.field_key(current, rel_name))
            break
        rel = schema.relationship(current, rel_name)
        if rel is None:
            keys.append(schema.field_key(current, rel_name))
            break
        keys.append(schema.field_key(current, rel[0]))
        current = schema.object_name(type_ or rel[1][0])
    return keys


def resolve_identifier(
    ident: str,
    base_object: str | None,
    schema: Schema,
    *,
    variables: Mapping[str, str | None] | None = None,
) -> list[str]:
    """Component keys one formula identifier (path) refers to; ``[]`` for none."""
    parts = [p for p in ident.split(".") if p]
    if not parts:
        return []
    head = parts[0].lower()
    rest = ".".join(parts[1:])
    if head.startswith("$"):
        return _resolve_global(head, parts, base_object, schema)
    if variables is not None:
        if head in variables or parts[0] in variables:
            # the name as written first (case-insensitive tables keep its casing), then lower
            obj = variables[parts[0]] if parts[0] in variables else variables[head]
            if obj and rest:
                return resolve_path(schema, obj, rest)
        return []
    if head in _KEYWORDS and len(parts) == 1:
        return []
    if not base_object:
        return []
    return resolve_path(schema, base_object, ident)


def _resolve_global(head: str, parts: list[str], base_object: str | None, schema: Schema) -> list[str]:
    rest = ".".join(parts[1:])
    if head in _SELF_GLOBALS:
        return resolve_path(schema, base_object, rest) if base_object and rest else []
    if head in _GLOBAL_OBJECTS:
        return resolve_path(schema, _GLOBAL_OBJECTS[head], rest) if rest else []
    if head == "$setup":
        if len(parts) >= 3:
            return schema.resolve_path(parts[1], ".".join(parts[2:]))
        return [schema.object_key(parts[1])] if len(parts) == 2 else []
    if head == "$label":
        if len(parts) == 2:
            return [schema.canonical_key(component_key("CustomLabel", parts[1]))]
        if len(parts) >= 3:  # Aura/LWC style $Label.c.X / $Label.ns.X
            name = parts[2] if parts[1].lower() == "c" else f"{parts[1]}__{parts[2]}"
            return [schema.canonical_key(component_key("CustomLabel", name))]
        return []
    if head == "$permission":
        return [schema.canonical_key(component_key("CustomPermission", parts[1]))] if len(parts) >= 2 else []
    if head == "$custommetadata":
        if len(parts) < 3:
            return [schema.object_key(parts[1])] if len(parts) == 2 else []
        mdt = schema.object_name(parts[1])
        type_name = mdt[:-5] if mdt.lower().endswith("__mdt") else mdt
        keys = [schema.canonical_key(component_key("CustomMetadata", f"{type_name}.{parts[2]}"))]
        if len(parts) >= 4:
            keys.append(schema.field_key(mdt, parts[3]))
        return keys
    if head == "$objecttype":
        if len(parts) < 2:
            return []
        if len(parts) >= 4 and parts[2].lower() == "fields":
            return [schema.field_key(parts[1], parts[3])]
        return [schema.object_key(parts[1])]
    if head == "$page":
        return [schema.canonical_key(component_key("ApexPage", parts[1]))] if len(parts) >= 2 else []
    if head == "$resource":
        return [schema.canonical_key(component_key("StaticResource", parts[1]))] if len(parts) >= 2 else []
    return []  # $Api, $System, $Flow, $GlobalConstant, $Component, $CurrentPage, $Site …


def _dedupe(refs: Iterable[Reference]) -> list[Reference]:
    seen: set[tuple] = set()
    out: list[Reference] = []
    for r in refs:
        k = (r.target, r.kind, r.access, r.detail)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def parse_formula(
    formula: str | None,
    base_object: str | None,
    schema: Schema,
    *,
    line: int | None = None,
    variables: Mapping[str, str | None] | None = None,
    detail: str | None = None,
    access: str | None = READ,
) -> list[Reference]:
    """References of one formula expression evaluated on ``base_object``.

    ``line``: the line of the formula's first line in its file (reference lines are offset
    from it); ``None`` → references carry no line. ``variables`` switches to resource mode
    (see the module doc). Every reference is ``REFERENCES`` with ``access`` (read).
    """
    if not formula:
        return []
    refs: list[Reference] = []
    for tok in tokenize_identifiers(formula):
        if tok.is_function:
            continue
        for key in resolve_identifier(tok.text, base_object, schema, variables=variables):
            ref_line = None if line is None else line + tok.line - 1
            refs.append(
                Reference(target=key, kind=REFERENCES, line=ref_line, access=_access_for(key, access), detail=detail)
            )
    return _dedupe(refs)


def _access_for(key: str, access: str | None) -> str | None:
    return access if key.startswith(("CustomField:", "CustomObject:")) else None


def merge_expressions(text: str) -> list[tuple[str, int]]:
    """``{!expr}`` occurrences in free text (templates, markup) with their 1-based line.

    Braces and quotes inside the expression are balanced, so ``{!IF(a, "}", b)}`` is one.
    """
    out: list[tuple[str, int]] = []
    i, n = 0, len(text)
    line, counted = 1, 0  # lines counted incrementally (big pages hold thousands of merges)
    while True:
        start = text.find("{!", i)
        if start < 0:
            break
        j, depth, quote = start + 2, 1, ""
        while j < n:
            c = text[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= n:  # unterminated: stop scanning
            break
        line += text.count("\n", counted, start)
        counted = start
        out.append((text[start + 2 : j], line))
        i = j + 1
    return out


def parse_merge_text(
    text: str | None,
    base_object: str | None,
    schema: Schema,
    *,
    variables: Mapping[str, str | None] | None = None,
    line: int | None = None,
    detail: str | None = None,
    access: str | None = READ,
) -> list[Reference]:
    """References in the ``{!...}`` merge fields of free text (text outside them is ignored).

    ``line`` is the line of the text's first line (``None`` → no lines).
    """
    if not text or "{!" not in text:
        return []
    refs: list[Reference] = []
    for expr, ln in merge_expressions(text):
        refs += parse_formula(
            expr,
            base_object,
            schema,
            line=None if line is None else line + ln - 1,
            variables=variables,
            detail=detail,
            access=access,
        )
    return _dedupe(refs)


__all__ = [
    "merge_expressions",
    "parse_formula",
    "parse_merge_text",
    "resolve_identifier",
    "resolve_path",
    "tokenize_identifiers",
]
