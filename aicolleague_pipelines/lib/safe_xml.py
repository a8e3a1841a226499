"""Hardened XML parsing for metadata files we did not write (SFDX projects, retrieved zips).

:func:`parse_xml_bytes` / :func:`parse_xml_file` parse with ``defusedxml``: any DOCTYPE
(and so every entity declaration, internal or external) is refused before anything is
expanded, so a "billion laughs" bomb or an ``file:///etc/passwd`` external entity costs
nothing and leaks nothing. Input larger than a size limit is refused before parsing.
Errors are :class:`UnsafeXmlError` (refused on purpose) or :class:`MalformedXmlError`
(not well-formed, with line and column), both naming the file and the reason.

:func:`element_to_dict` turns a Salesforce metadata element into plain nested dicts/lists:
the ``http://soap.sforce.com/2006/04/metadata`` namespace (any namespace) is stripped,
repeated child elements become a list, text-only elements become a ``str``, an empty or
``xsi:nil`` element becomes ``None``, and elements that the Metadata API defines as lists
(:data:`ALWAYS_LIST`: ``fields``, ``validationRules``, ``fieldPermissions`` …) are a list
even when they occur once — so consumers never have to guess between ``dict`` and
``list[dict]``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as _defused_fromstring

METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_NIL = f"{{{XSI_NS}}}nil"

#: Default size limit for one XML document (bytes).
DEFAULT_MAX_XML_BYTES = 5 * 1024 * 1024
#: Deeper nesting than this is refused by :func:`element_to_dict` (metadata is ~15 deep).
MAX_DEPTH = 200

#: Elements the Metadata API defines as repeated (maxOccurs unbounded): always a list.
#: Names that are a list in one type and a scalar in another (``value``, ``object``) are
#: deliberately absent.
ALWAYS_LIST: frozenset[str] = frozenset(
    {
        # CustomObject (MDAPI .object files) and its parts
        "fields",
        "validationRules",
        "recordTypes",
        "listViews",
        "webLinks",
        "compactLayouts",
        "fieldSets",
        "businessProcesses",
        "sharingReasons",
        "sharingRecalculations",
        "indexes",
        "actionOverrides",
        "profileSearchLayouts",
        "searchResultsAdditionalFields",
        "lookupDialogsAdditionalFields",
        "lookupFilterFields",
        "lookupPhoneDialogsAdditionalFields",
        "excludedStandardButtons",
        "customTabListAdditionalFields",
        "displayedFields",
        "availableFields",
        "filterItems",
        "summaryFilterItems",
        "picklistValues",
        "valueSettings",
        "controllingFieldValue",
        "customValue",
        "columns",
        "sharedTo",
        # Profile / PermissionSet
        "fieldPermissions",
        "objectPermissions",
        "classAccesses",
        "pageAccesses",
        "tabSettings",
        "tabVisibilities",
        "recordTypeVisibilities",
        "layoutAssignments",
        "userPermissions",
        "applicationVisibilities",
        "customPermissions",
        "customMetadataTypeAccesses",
        "customSettingAccesses",
        "flowAccesses",
        "externalDataSourceAccesses",
        "externalCredentialPrincipalAccesses",
        "loginIpRanges",
        "categoryGroupVisibilities",
        "fieldLevelSecurities",
        # Layout / FlexiPage
        "layoutSections",
        "layoutColumns",
        "layoutItems",
        "relatedLists",
        "relatedContentItems",
        "quickActionListItems",
        "platformActionListItems",
        "excludeButtons",
        "customButtons",
        "multilineLayoutFields",
        "summaryLayoutItems",
        "flexiPageRegions",
        "itemInstances",
        "componentInstanceProperties",
        "fieldInstanceProperties",
        "criteria",
        # Flow
        "actionCalls",
        "apexPluginCalls",
        "assignments",
        "assignmentItems",
        "choices",
        "choiceReferences",
        "collectionProcessors",
        "constants",
        "customErrors",
        "decisions",
        "rules",
        "conditions",
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
        "inputAssignments",
        "outputAssignments",
        "inputParameters",
        "outputParameters",
        "filters",
        "processMetadataValues",
        "queriedFields",
        "scheduledPaths",
        "stages",
        "steps",
        "subflows",
        "textTemplates",
        "transforms",
        "variables",
        "waits",
        "waitEvents",
        "dataTypeMappings",
        # Workflow
        "fieldUpdates",
        "alerts",
        "outboundMessages",
        "tasks",
        "knowledgePublishes",
        "flowActions",
        "sends",
        "actions",
        "criteriaItems",
        "workflowTimeTriggers",
        "recipients",
        "ccEmails",
        # Report
        "groupingsDown",
        "groupingsAcross",
        "aggregates",
        "buckets",
        "sourceValues",
        "values",
        "crossFilters",
        "customDetailFormulas",
        "params",
        "chartSummaries",
        "colorRanges",
        # Meta files, package.xml, LWC js-meta.xml, EmailTemplate
        "packageVersions",
        "types",
        "members",
        "target",
        "targetConfig",
        "property",
        "supportedFormFactor",
        "attachedDocuments",
    }
)


class XmlError(ValueError):
    """An XML document could not be used; names the file and the reason."""

    kind = "unusable"

    def __init__(self, file: str, reason: str, line: int | None = None, column: int | None = None):
        self.file = file
        self.reason = reason
        self.line = line
        self.column = column
        where = file
        if line is not None:
            where += f" line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{where}: {reason}")


class UnsafeXmlError(XmlError):
    """Refused on purpose: DTD / entity declarations / external entities / oversized input."""

    kind = "unsafe"


class XmlTooLargeError(UnsafeXmlError):
    """The document exceeds the size limit; not parsed."""

    kind = "too large"


class MalformedXmlError(XmlError):
    """Not well-formed XML (or an encoding the parser cannot decode)."""

    kind = "malformed"


def local_name(tag: Any) -> str:
    """``{http://soap.sforce.com/2006/04/metadata}fields`` → ``fields``."""
    if not isinstance(tag, str):  # comments / processing instructions
        return ""
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def parse_xml_bytes(
    data: bytes | str,
    *,
    source: str = "<string>",
    max_bytes: int | None = DEFAULT_MAX_XML_BYTES,
) -> ET.Element:
    """Parse one XML document safely and return its root element.

    Raises :class:`XmlTooLargeError` when ``data`` exceeds ``max_bytes`` (``None``: no
    limit), :class:`UnsafeXmlError` for any DOCTYPE / entity / external reference (never
    expanded or fetched), :class:`MalformedXmlError` with line/column otherwise.
    """
    size = len(data)
    if max_bytes is not None and size > max_bytes:
        raise XmlTooLargeError(source, f"{size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    try:
        return _defused_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        raise UnsafeXmlError(source, f"unsafe XML refused: {_describe_dtd(data)}; nothing was expanded or fetched") from None
    except EntitiesForbidden as exc:
        raise UnsafeXmlError(
            source, f"unsafe XML refused: entity declaration {getattr(exc, 'name', '')!r} — nothing was expanded"
        ) from None
    except ExternalReferenceForbidden:
        raise UnsafeXmlError(
            source, "unsafe XML refused: external entity reference — nothing was fetched"
        ) from None
    except DefusedXmlException as exc:  # any other defusedxml refusal
        raise UnsafeXmlError(source, f"unsafe XML refused: {exc}") from None
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (None, None)) or (None, None)
        reason = str(exc)
        # ParseError text ends with ": line L, column C" — keep only the reason.
        if ": line " in reason:
            reason = reason.rsplit(": line ", 1)[0]
        raise MalformedXmlError(
            source,
            f"malformed XML: {reason}",
            line=line,
            column=(col + 1) if isinstance(col, int) else None,
        ) from None
    except (LookupError, UnicodeError) as exc:  # unknown encoding declared
        raise MalformedXmlError(source, f"malformed XML: cannot decode: {exc}") from None
    except RecursionError:
        raise UnsafeXmlError(source, "unsafe XML refused: nesting too deep") from None


_ENTITY_RE = re.compile(rb"<!ENTITY\s+(%\s+)?[^\s>]+\s+(SYSTEM|PUBLIC)?")


def _describe_dtd(data: bytes | str) -> str:
    """Say what a refused DOCTYPE holds (looks only at the raw text; nothing is parsed)."""
    head = data[:65536]
    if isinstance(head, str):
        head = head.encode("utf-8", "replace")
    kinds = set()
    for m in _ENTITY_RE.finditer(head):
        if m.group(2):
            kinds.add("external entity (SYSTEM/PUBLIC reference to a file or URL)")
        elif m.group(1):
            kinds.add("parameter entity")
        else:
            kinds.add("entity declarations (possible entity-expansion bomb)")
    if not kinds:
        return "it declares a DOCTYPE (metadata files never need one)"
    return "DOCTYPE with " + " and ".join(sorted(kinds))


def parse_xml_file(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_XML_BYTES,
) -> ET.Element:
    """Read and :func:`parse_xml_bytes` a file; the size is checked before reading."""
    p = Path(path)
    name = source or str(p)
    try:
        size = p.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise XmlTooLargeError(name, f"{size:,} bytes exceeds the limit of {max_bytes:,} bytes")
        data = p.read_bytes()
    except OSError as exc:
        raise XmlError(name, f"cannot read: {exc.strerror or exc}") from None
    return parse_xml_bytes(data, source=name, max_bytes=max_bytes)


def element_to_data(
    elem: ET.Element, *, always_list: frozenset[str] = ALWAYS_LIST, source: str = "<element>"
) -> Any:
    """Convert one element: children → dict, text-only → str, empty / xsi:nil → None.

    Raises :class:`UnsafeXmlError` (naming ``source``) past :data:`MAX_DEPTH` levels.
    """
    return _convert(elem, always_list, 0, source)


def element_to_dict(
    elem: ET.Element, *, always_list: frozenset[str] = ALWAYS_LIST, source: str = "<element>"
) -> dict[str, Any]:
    """Convert a (root) element's children to a dict (``{}`` when it has none)."""
    value = _convert(elem, always_list, 0, source)
    return value if isinstance(value, dict) else {}


def _convert(elem: ET.Element, always_list: frozenset[str], depth: int, source: str) -> Any:
    if depth > MAX_DEPTH:
        raise UnsafeXmlError(source, f"unsafe XML refused: nesting deeper than {MAX_DEPTH} levels")
    children = [c for c in elem if isinstance(c.tag, str)]
    if not children:
        if elem.get(_XSI_NIL) == "true":
            return None
        text = elem.text
        return text if text else None
    out: dict[str, Any] = {}
    for child in children:
        name = local_name(child.tag)
        value = _convert(child, always_list, depth + 1, source)
        if name in out:
            existing = out[name]
            # converted values are never lists, so a list here is one we built
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[name] = [existing, value]
        elif name in always_list:
            out[name] = [value]
        else:
            out[name] = value
    return out
