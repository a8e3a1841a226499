"""Read a Salesforce project on disk (SFDX source format and/or Metadata API format).

:func:`read_sfdx_project` walks the project once and returns an :class:`OrgInventory`
whose components follow the conventions of :mod:`aicolleague_pipelines.lib.salesforce.model`.

What is read, and from where:

- ``sfdx-project.json`` → ``packageDirectories[].path`` (in the order listed: the first
  definition of a component wins), ``namespace``, ``sourceApiVersion``. Metadata may live
  anywhere below a package directory; files are recognised by suffix and parent folder.
- Metadata API format folders (any folder holding a ``package.xml``, e.g. ``src/``) outside
  the package directories are read too (after them). ``objects/*.object`` files are split
  into the object, its fields, record types and validation rules.
- A folder with neither ``sfdx-project.json`` nor any ``package.xml`` is scanned entirely.
- Hidden files and folders (``.git``, ``.sfdx``, ``.sf`` …) and ``node_modules`` are
  skipped, and so is whatever the project's ``.forceignore`` excludes (it is never deployed).

Names are the package's own, unprefixed: CumulusCI namespace tokens (``%%%NAMESPACE%%%``,
``%%%NAMESPACED_ORG%%%``, ``%%%NAMESPACE_DOT%%%`` → removed, ``%%%NAMESPACE_OR_C%%%`` → ``c``)
are stripped from XML and source text, ``___NAMESPACE___`` from file names. References to
other packages (``npe01__Foo__c`` in a formula) are kept as written.

Bad input never stops the read: every unusable file (malformed or unsafe XML, oversized,
binary, outside the project through a symlink, unreadable) becomes an
:class:`ExtractionFinding` and everything else is still read.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.safe_xml import (
    MalformedXmlError,
    UnsafeXmlError,
    XmlError,
    XmlTooLargeError,
    element_to_dict,
    parse_xml_bytes,
)
from aicolleague_pipelines.lib.salesforce.model import (
    COMPONENT_TYPES,
    Component,
    ExtractionError,
    ExtractionFinding,
    OrgInventory,
    component_key,
)

#: Files larger than this are skipped with a warning (override with ``max_file_bytes``).
DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024

_SKIP_DIRS = frozenset({"node_modules", "__pycache__"})
_BUNDLE_SKIP_DIRS = frozenset({"__tests__", "__mocks__", "__snapshots__"})

_HINT_FIX = "fix or remove the file; the rest of the project was read"
_HINT_UNSAFE = (
    "remove the DOCTYPE / entity declarations (Salesforce metadata never needs them); "
    "the rest of the project was read"
)

# --- CumulusCI namespace tokens --------------------------------------------------------
_TEXT_TOKEN_RE = re.compile(r"%%%(NAMESPACED_ORG_OR_C|NAMESPACE_OR_C|NAMESPACED_ORG|NAMESPACE_DOT|NAMESPACE)%%%")
_TEXT_TOKEN_RE_B = re.compile(_TEXT_TOKEN_RE.pattern.encode())
_NAME_TOKEN_RE = re.compile(r"___(NAMESPACED_ORG|NAMESPACE_DOT|NAMESPACE)___")


def _token_sub(m: re.Match) -> str:
    return "c" if m.group(1).endswith("_OR_C") else ""


def _token_sub_b(m: re.Match) -> bytes:
    return b"c" if m.group(1).endswith(b"_OR_C") else b""


def strip_cumulusci_tokens(text: str) -> str:
    """Remove CumulusCI namespace tokens from text (``%%%NAMESPACE_OR_C%%%`` → ``c``)."""
    return _TEXT_TOKEN_RE.sub(_token_sub, text)


def strip_name_tokens(name: str) -> str:
    """Remove CumulusCI file-name tokens (``___NAMESPACE___``)."""
    return _NAME_TOKEN_RE.sub("", name)


# --- Apex helpers ----------------------------------------------------------------------
_APEX_COMMENT_OR_STRING = re.compile(r"//[^\n]*|/\*.*?\*/|'(?:\\.|[^'\\\n])*'", re.S)
_IS_TEST_RE = re.compile(r"@\s*istest\b[^{;]*?\bclass\b", re.I)
_TRIGGER_RE = re.compile(r"\btrigger\s+(\w+)\s+on\s+(\w+)\s*\(([^)]*)\)", re.I)


def _apex_code_only(body: str) -> str:
    """Apex text with comments blanked and string literals emptied."""

    def repl(m: re.Match) -> str:
        return "''" if m.group(0).startswith("'") else " "

    return _APEX_COMMENT_OR_STRING.sub(repl, body)


def parse_trigger_header(body: str) -> tuple[str | None, str | None, list[str]]:
    """``trigger X on Obj (before insert, after update)`` → ``("X", "Obj", [events])``."""
    m = _TRIGGER_RE.search(_apex_code_only(body))
    if not m:
        return None, None, []
    events = [" ".join(e.lower().split()) for e in m.group(3).split(",") if e.strip()]
    return m.group(1), m.group(2), events


# --- small value helpers -------------------------------------------------------------
def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _s(d: Any, key: str) -> str | None:
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    return v if isinstance(v, str) else None


def _b(d: Any, key: str) -> bool | None:
    v = _s(d, key)
    return None if v is None else v.strip().lower() == "true"


def _int(d: Any, key: str) -> int | None:
    v = _s(d, key)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _label(d: dict) -> str | None:
    return _s(d, "label") or _s(d, "masterLabel")


def _namespace_of(name: str) -> str | None:
    """``npe01__Foo__c`` → ``npe01``; unprefixed names → None."""
    if name.count("__") >= 2:
        return name.split("__", 1)[0]
    return None


_OBJECT_SUFFIX_KIND = {
    "c": "custom",
    "mdt": "custom_metadata",
    "e": "platform_event",
    "x": "external",
    "b": "big_object",
    "kav": "custom",
}


def object_kind(name: str, custom_settings_type: str | None = None) -> str:
    """standard, custom, custom_metadata, platform_event, custom_setting, external, big_object."""
    if custom_settings_type:
        return "custom_setting"
    if "__" in name:
        return _OBJECT_SUFFIX_KIND.get(name.rsplit("__", 1)[1], "standard")
    return "standard"


# --- file classification ---------------------------------------------------------------
#: suffix (after stripping ``-meta.xml``) → handler name, for single-file components.
_SINGLE_FILE = {
    "flow": "flow",
    "flowDefinition": "flow_definition",
    "workflow": "workflow",
    "layout": "layout",
    "flexipage": "flexipage",
    "permissionset": "permissionset",
    "profile": "profile",
    "globalValueSet": "global_value_set",
    "tab": "tab",
}
#: Components whose source text sits next to a ``-meta.xml`` file.
_BODY_SUFFIX = {"cls": "ApexClass", "trigger": "ApexTrigger", "page": "ApexPage", "email": "EmailTemplate"}
_BODY_FOLDER = {"cls": "classes", "trigger": "triggers", "page": "pages"}
#: Object parts (source format, decomposed) that we model.
_OBJECT_PARTS = {"field": "CustomField", "recordType": "RecordType", "validationRule": "ValidationRule"}
#: Known Salesforce metadata suffixes not modelled here (ignored, counted in one info finding).
_NOT_MODELLED = frozenset(
    {
        "listView", "compactLayout", "webLink", "fieldSet", "businessProcess", "sharingReason",
        "index", "labels", "reportFolder", "emailFolder", "dashboardFolder", "documentFolder",
        "dashboard", "reportType", "resource", "app", "quickAction", "customPermission",
        "permissionsetgroup", "weblink", "component", "remoteSite", "namedCredential",
        "externalCredential", "assignmentRules", "autoResponseRules", "escalationRules",
        "sharingRules", "matchingRule", "duplicateRule", "standardValueSet", "translation",
        "objectTranslation", "customApplication", "applications", "settings", "queue", "group",
        "role", "site", "network", "document", "staticresource", "contentasset", "cachePartition",
        "platformEventChannel", "platformEventChannelMember", "messageChannel",
        "customNotificationType", "connectedApp", "installedPackage", "letterhead", "topicsForObjects",
        "pathAssistant", "notificationTypeConfig", "dataCategoryGroup", "cspTrustedSite",
        "flowtest", "testSuite", "post", "lightningExperienceTheme", "brandingSet",
        "appMenu", "homePageLayout", "homePageComponent", "customPageWebLink", "sharingSet",
        "externalDataSource", "certificate", "authprovider", "samlssoconfig", "corsWhitelistOrigin",
        "customSite", "approvalProcess", "globalValueSetTranslation", "standardValueSetTranslation",
        "wave", "recommendationStrategy", "bot", "botVersion", "layoutRule", "iframeWhiteListUrlSettings",
        "datacategorygroup", "customHelpMenuSection", "prompt", "cmpt", "delegateGroup",
        "territory", "territory2", "territory2Model", "territory2Type", "territory2Rule",
        "emailservices", "inboundNetworkConnection", "outboundNetworkConnection", "uiObjectRelationConfig",
    }
)


class ForceIgnore:
    """``.forceignore`` rules (gitignore syntax) of a project: files the CLI never deploys.

    Supported: ``#`` comments, ``!`` negation, ``*`` / ``?`` / ``[...]`` / ``**``, a leading
    or inner ``/`` anchoring to the project root, a trailing ``/`` for folders only. As in
    git, nothing below an ignored folder can be re-included.
    """

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[re.Pattern[str], bool, bool]] = []  # (regex, negated, dir_only)
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            if neg:
                line = line[1:]
            if line.startswith("\\"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            body = _glob_regex(line.lstrip("/"))
            regex = ("^" if anchored else "^(?:.*/)?") + body + "(?:$)"
            try:
                self.rules.append((re.compile(regex), neg, dir_only))
            except re.error:
                continue
        self._dirs: dict[str, bool] = {}

    def _match(self, path: str, is_dir: bool) -> bool | None:
        state = None
        for regex, neg, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.match(path):
                state = not neg
        return state

    def _dir_ignored(self, path: str) -> bool:
        if path in self._dirs:
            return self._dirs[path]
        parent, _, _ = path.rpartition("/")
        ignored = (bool(parent) and self._dir_ignored(parent)) or bool(self._match(path, True))
        self._dirs[path] = ignored
        return ignored

    def ignores(self, rel: str) -> bool:
        """Whether the file at project-relative posix path ``rel`` is ignored."""
        if not self.rules:
            return False
        parent, _, _ = rel.rpartition("/")
        if parent and self._dir_ignored(parent):
            return True
        return bool(self._match(rel, False))


def _glob_regex(pat: str) -> str:
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if pat.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if pat.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pat.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                cls = pat[i + 1:j]
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append("[" + cls.replace("\\", "\\\\") + "]")
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass
class _File:
    rel: str  # posix path relative to the project root
    abs: str
    area: int  # index of the scan area (package dir / MDAPI folder); lower = read first
    sub: tuple[str, ...]  # path parts relative to the area root


@dataclass
class _FlowVersion:
    name: str
    version: int | None
    source: str
    data: dict
    description: str | None


@dataclass
class _State:
    org: str
    root: Path
    max_bytes: int
    namespace: str | None
    findings: list[ExtractionFinding] = field(default_factory=list)
    components: dict[str, Component] = field(default_factory=dict)
    implicit: dict[str, Component] = field(default_factory=dict)
    files_read: int = 0
    files_skipped: int = 0
    tokens_stripped: int = 0
    files_forceignored: int = 0
    not_modelled: dict[str, int] = field(default_factory=dict)


def read_sfdx_project(
    root: Path | str,
    org: str,
    *,
    api_version: str | None = None,
    source_kind: str = "sfdx",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> OrgInventory:
    """Read the Salesforce project at ``root`` into an :class:`OrgInventory` for ``org``.

    ``api_version`` overrides ``sourceApiVersion`` from ``sfdx-project.json`` for the
    inventory; ``source_kind`` is recorded on it (``sfdx`` or ``demo``). Files larger than
    ``max_file_bytes`` are skipped with a warning. Raises :class:`ExtractionError` only when
    ``root`` is not a readable folder; every problem inside the project is a finding.
    """
    started = time.perf_counter()
    root_path = Path(root)
    try:
        real_root = root_path.resolve(strict=True)
    except (OSError, RuntimeError):
        real_root = None
    if real_root is None or not real_root.is_dir():
        raise ExtractionError(
            org,
            str(root_path),
            "SFDX project folder not found",
            "check the path of this org in the orgs file (relative paths are relative to that file)",
        )
    st = _State(org=org, root=real_root, max_bytes=max_file_bytes, namespace=None)

    project = _read_project_json(st)
    pkg_dirs = _package_dirs(st, project)
    st.namespace = (project or {}).get("namespace") or None
    if not isinstance(st.namespace, str):
        st.namespace = None

    files, mdapi_dirs, ignored_outside = _walk_and_assign(st, pkg_dirs)
    _read_files(st, files)

    if ignored_outside:
        st.findings.append(
            ExtractionFinding(
                org,
                ".",
                "info",
                f"{ignored_outside} metadata-looking file(s) outside the package directories "
                "and Metadata API folders were not read",
                "add their folder to packageDirectories in sfdx-project.json if they belong to the org",
            )
        )
    if st.not_modelled:
        summary = ", ".join(f"{k} ({v})" for k, v in sorted(st.not_modelled.items()))
        st.findings.append(
            ExtractionFinding(org, ".", "info", f"metadata types not modelled, ignored: {summary}")
        )

    # implicit parents (e.g. Account for a folder holding only custom fields)
    for key, comp in st.implicit.items():
        if key not in st.components:
            st.components[key] = comp

    order = {t: i for i, t in enumerate(COMPONENT_TYPES)}
    components = sorted(st.components.values(), key=lambda c: (order.get(c.type, 99), c.full_name))
    source_api = (project or {}).get("sourceApiVersion")
    inv = OrgInventory(
        org=org,
        source_kind=source_kind,
        api_version=api_version or (str(source_api) if source_api else None),
        extracted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        components=components,
        findings=st.findings,
    )
    inv.stats = {
        "files_read": st.files_read,
        "files_skipped": st.files_skipped,
        "files_forceignored": st.files_forceignored,
        "duration_s": round(time.perf_counter() - started, 4),
        "package_directories": list(pkg_dirs or []),
        "mdapi_folders": mdapi_dirs,
        "namespace": st.namespace,
        "cumulusci_tokens_stripped": st.tokens_stripped,
        "components": len(components),
        "findings": {
            sev: sum(1 for f in st.findings if f.severity == sev) for sev in ("error", "warning", "info")
        },
    }
    return inv


# --- project layout --------------------------------------------------------------------
def _read_project_json(st: _State) -> dict | None:
    p = st.root / "sfdx-project.json"
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeError, ValueError) as exc:
        st.findings.append(
            ExtractionFinding(
                st.org,
                "sfdx-project.json",
                "error",
                f"cannot read sfdx-project.json: {exc}",
                "fix the file; the whole folder was scanned instead",
            )
        )
        return None
    if not isinstance(data, dict):
        st.findings.append(
            ExtractionFinding(st.org, "sfdx-project.json", "error", "sfdx-project.json is not a JSON object",
                              "fix the file; the whole folder was scanned instead")
        )
        return None
    return data


def _package_dirs(st: _State, project: dict | None) -> list[str] | None:
    """Package directory prefixes (posix, relative; "" = root) or None when absent."""
    if project is None:
        return None
    raw = project.get("packageDirectories")
    if not isinstance(raw, list) or not raw:
        st.findings.append(
            ExtractionFinding(st.org, "sfdx-project.json", "warning", "no packageDirectories listed",
                              "list the package folders; the whole folder was scanned instead")
        )
        return None
    out: list[str] = []
    for entry in raw:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not path.strip():
            st.findings.append(
                ExtractionFinding(st.org, "sfdx-project.json", "warning",
                                  f"packageDirectories entry without a path: {entry!r}")
            )
            continue
        target = (st.root / path).resolve()
        if not _inside(str(target), str(st.root)):
            st.findings.append(
                ExtractionFinding(st.org, "sfdx-project.json", "warning",
                                  f"package directory {path!r} lies outside the project root; not read")
            )
            continue
        if not target.is_dir():
            st.findings.append(
                ExtractionFinding(st.org, "sfdx-project.json", "warning",
                                  f"package directory {path!r} does not exist")
            )
            continue
        rel = target.relative_to(st.root).as_posix()
        rel = "" if rel == "." else rel
        if rel not in out:
            out.append(rel)
    if not out:
        st.findings.append(
            ExtractionFinding(st.org, "sfdx-project.json", "warning", "no usable package directory",
                              "fix packageDirectories; the whole folder was scanned instead")
        )
        return None
    return out


def _read_forceignore(st: _State) -> ForceIgnore | None:
    p = st.root / ".forceignore"
    if not p.is_file():
        return None
    try:
        return ForceIgnore(p.read_text(encoding="utf-8-sig", errors="replace"))
    except OSError as exc:
        st.findings.append(ExtractionFinding(st.org, ".forceignore", "warning",
                                             f"cannot read .forceignore: {exc.strerror or exc}"))
        return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _under(rel: str, prefix: str) -> bool:
    return prefix == "" or rel == prefix or rel.startswith(prefix + "/")


def _walk_and_assign(st: _State, pkg_dirs: list[str] | None) -> tuple[list[_File], list[str], int]:
    """One walk of the project; returns files to read in priority order."""
    root = str(st.root)
    found: list[tuple[str, str]] = []
    mdapi: list[str] = []
    visited: set[str] = set()

    def visit(abs_dir: str, rel_dir: str) -> None:
        real = os.path.realpath(abs_dir)
        if real in visited:
            return
        visited.add(real)
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            st.findings.append(ExtractionFinding(st.org, rel_dir or ".", "warning",
                                                 f"cannot list folder: {exc.strerror or exc}"))
            return
        if any(e.name == "package.xml" for e in entries):
            mdapi.append(rel_dir)
        for e in entries:
            if e.name.startswith("."):  # .git, .sfdx, .forceignore, .eslintrc.json …
                continue
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                if e.is_symlink():
                    target = os.path.realpath(e.path)
                    if not _inside(target, root):
                        st.files_skipped += 1
                        st.findings.append(
                            ExtractionFinding(st.org, rel, "warning",
                                              "symbolic link points outside the project root; not followed",
                                              "replace the link with the file itself if it belongs to the project")
                        )
                        continue
                    if os.path.isdir(target):
                        if e.name not in _SKIP_DIRS:
                            visit(e.path, rel)
                    elif os.path.isfile(target):
                        found.append((rel, e.path))
                    else:
                        st.findings.append(ExtractionFinding(st.org, rel, "warning", "broken symbolic link; skipped"))
                    continue
                if e.is_dir(follow_symlinks=False):
                    if e.name in _SKIP_DIRS:
                        continue
                    visit(e.path, rel)
                elif e.is_file(follow_symlinks=False):
                    found.append((rel, e.path))
            except OSError as exc:
                st.findings.append(ExtractionFinding(st.org, rel, "warning", f"cannot inspect: {exc.strerror or exc}"))

    visit(root, "")

    # scan areas: package dirs first (listed order), then MDAPI folders outside them
    areas: list[str] = list(pkg_dirs or [])
    mdapi_roots = [d for d in mdapi if not any(_under(d, p) for p in areas)]
    scan_all = pkg_dirs is None and not mdapi_roots
    if scan_all:
        areas = [""]
    else:
        areas += mdapi_roots
    files: list[_File] = []
    ignored_outside = 0
    forceignore = _read_forceignore(st)
    for rel, abs_path in found:
        if forceignore is not None and forceignore.ignores(rel):
            st.files_forceignored += 1
            continue
        best = -1
        best_len = -1
        for i, prefix in enumerate(areas):
            if _under(rel, prefix) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
        if best < 0:
            if rel.endswith("-meta.xml") or rel.rsplit(".", 1)[-1] in ("cls", "trigger", "object"):
                ignored_outside += 1
            continue
        prefix = areas[best]
        sub = tuple((rel[len(prefix) + 1:] if prefix else rel).split("/"))
        files.append(_File(rel, abs_path, best, sub))
    files.sort(key=lambda f: f.area)  # stable: walk order within an area
    return files, mdapi_roots, ignored_outside


# --- reading ---------------------------------------------------------------------------
def _read_bytes(st: _State, f: _File) -> bytes | None:
    try:
        size = os.stat(f.abs).st_size
        if size > st.max_bytes:
            st.files_skipped += 1
            st.findings.append(
                ExtractionFinding(st.org, f.rel, "warning",
                                  f"file is {size:,} bytes, over the {st.max_bytes:,}-byte limit; skipped",
                                  "raise max_file_bytes for this project if the file is genuine")
            )
            return None
        with open(f.abs, "rb") as fh:
            data = fh.read(st.max_bytes + 1)
    except OSError as exc:
        st.files_skipped += 1
        st.findings.append(ExtractionFinding(st.org, f.rel, "error", f"cannot read: {exc.strerror or exc}",
                                             "check the file's permissions; the rest of the project was read"))
        return None
    if len(data) > st.max_bytes:  # grew while reading
        st.files_skipped += 1
        st.findings.append(ExtractionFinding(st.org, f.rel, "warning", "file over the size limit; skipped"))
        return None
    return data


def _is_binary(data: bytes) -> bool:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 text
        return False
    return b"\x00" in data


def _skip_binary(st: _State, f: _File) -> None:
    st.files_skipped += 1
    st.findings.append(
        ExtractionFinding(st.org, f.rel, "warning", "binary content (NUL bytes) where text was expected; skipped",
                          "remove the file or restore its text; the rest of the project was read")
    )


def _read_text(st: _State, f: _File) -> str | None:
    data = _read_bytes(st, f)
    if data is None:
        return None
    if _is_binary(data):
        _skip_binary(st, f)
        return None
    text = _decode(st, f, data)
    st.files_read += 1
    new, n = _TEXT_TOKEN_RE.subn(_token_sub, text)
    st.tokens_stripped += n
    return new


def _decode(st: _State, f: _File, data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        st.findings.append(
            ExtractionFinding(st.org, f.rel, "warning",
                              f"not valid UTF-8 (byte {exc.start}); read as Windows-1252",
                              "save the file as UTF-8")
        )
        return data.decode("cp1252", errors="replace")


_XML_DECL_ENC = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def _read_xml(st: _State, f: _File) -> dict | None:
    """Read, check and parse one XML file; return the root element as a dict, or None."""
    data = _read_bytes(st, f)
    if data is None:
        return None
    if _is_binary(data):
        _skip_binary(st, f)
        return None
    data, n = _TEXT_TOKEN_RE_B.subn(_token_sub_b, data)
    st.tokens_stripped += n
    if data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        m = _XML_DECL_ENC.match(data)
        declared = m.group(1).decode().lower() if m else "utf-8"
        if declared in ("utf-8", "utf8"):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                st.findings.append(
                    ExtractionFinding(st.org, f.rel, "warning",
                                      f"not valid UTF-8 (byte {exc.start}); read as Windows-1252",
                                      "save the file as UTF-8")
                )
                data = data.decode("cp1252", errors="replace").encode("utf-8")
    try:
        root = parse_xml_bytes(data, source=f.rel, max_bytes=st.max_bytes)
        result = element_to_dict(root, source=f.rel)
    except XmlTooLargeError as exc:
        st.files_skipped += 1
        st.findings.append(ExtractionFinding(st.org, f.rel, "warning", exc.reason, "raise max_file_bytes"))
        return None
    except UnsafeXmlError as exc:
        st.files_skipped += 1
        st.findings.append(ExtractionFinding(st.org, f.rel, "error", exc.reason, _HINT_UNSAFE))
        return None
    except MalformedXmlError as exc:
        st.files_skipped += 1
        where = f" at line {exc.line}, column {exc.column}" if exc.line is not None else ""
        st.findings.append(ExtractionFinding(st.org, f.rel, "error", f"{exc.reason}{where}", _HINT_FIX))
        return None
    except XmlError as exc:  # pragma: no cover - defensive
        st.files_skipped += 1
        st.findings.append(ExtractionFinding(st.org, f.rel, "error", exc.reason, _HINT_FIX))
        return None
    st.files_read += 1
    return result


def _add(st: _State, comp: Component) -> None:
    key = comp.key
    if key in st.components:
        first = st.components[key].source
        st.findings.append(
            ExtractionFinding(st.org, comp.source or key, "warning",
                              f"{key} is defined twice (first in {first}); kept the first",
                              "remove the duplicate definition")
        )
        return
    st.components[key] = comp


def _ensure_object(st: _State, obj: str, source: str) -> str:
    """Key of ``obj``'s CustomObject, registering an implicit node for it."""
    key = component_key("CustomObject", obj)
    if key not in st.implicit:
        kind = object_kind(obj)
        ns = _namespace_of(obj)
        st.implicit[key] = Component(
            type="CustomObject",
            full_name=obj,
            namespace=None if ns == st.namespace else ns,
            source=source,
            attributes={"custom": kind != "standard", "object_kind": kind, "implicit": True},
        )
    return key


def _name(part: str) -> str:
    return strip_name_tokens(part)


def _strip_suffix(fname: str) -> tuple[str, str, bool]:
    """``Foo.field-meta.xml`` → ("Foo", "field", True); ``Foo.cls`` → ("Foo", "cls", False)."""
    is_meta = fname.endswith("-meta.xml")
    base = fname[: -len("-meta.xml")] if is_meta else fname
    stem, dot, ext = base.rpartition(".")
    if not dot:
        return base, "", is_meta
    return stem, ext, is_meta


def _read_files(st: _State, files: list[_File]) -> None:
    rels = {f.rel for f in files}
    bundles: dict[tuple[int, str], list[_File]] = {}
    bundle_order: list[tuple[int, str]] = []
    flows: list[_FlowVersion] = []
    flow_defs: dict[str, int | None] = {}

    for f in files:
        sub = f.sub
        fname = sub[-1]
        # Lightning bundles: .../lwc/<bundle>/... and .../aura/<bundle>/...
        bundle_idx = next((i for i, p in enumerate(sub[:-2]) if p in ("lwc", "aura")), None)
        if bundle_idx is not None:
            if any(p in _BUNDLE_SKIP_DIRS or p.startswith(".") for p in sub[bundle_idx + 2:-1]):
                continue
            bkey = (f.area, "/".join(sub[: bundle_idx + 2]))
            if bkey not in bundles:
                bundles[bkey] = []
                bundle_order.append(bkey)
            bundles[bkey].append(f)
            continue
        if fname in ("package.xml", "destructiveChanges.xml", "destructiveChangesPre.xml",
                     "destructiveChangesPost.xml"):
            continue
        stem, ext, is_meta = _strip_suffix(fname)
        if not stem or fname.startswith("."):
            continue
        try:
            _dispatch(st, f, stem, ext, is_meta, rels, flows, flow_defs)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the read
            st.findings.append(
                ExtractionFinding(st.org, f.rel, "error", f"could not interpret the file: {type(exc).__name__}: {exc}",
                                  _HINT_FIX)
            )

    for bkey in bundle_order:
        try:
            _read_bundle(st, bkey[1], bundles[bkey])
        except Exception as exc:  # noqa: BLE001
            st.findings.append(
                ExtractionFinding(st.org, bundles[bkey][0].rel, "error",
                                  f"could not interpret the bundle: {type(exc).__name__}: {exc}", _HINT_FIX)
            )
    _finish_flows(st, flows, flow_defs)


def _dispatch(
    st: _State,
    f: _File,
    stem: str,
    ext: str,
    is_meta: bool,
    rels: set[str],
    flows: list[_FlowVersion],
    flow_defs: dict[str, int | None],
) -> None:
    sub = f.sub
    if ext in _BODY_SUFFIX:
        if is_meta:
            body_rel = f.rel[: -len("-meta.xml")]
            if body_rel not in rels:
                st.findings.append(
                    ExtractionFinding(st.org, f.rel, "warning",
                                      f"{_BODY_SUFFIX[ext]} meta file without its source file; skipped")
                )
            return
        if ext == "email":
            folder_idx = _index(sub, "email")
            if folder_idx is None:
                return _not_modelled(st, ext)
        folder = _BODY_FOLDER.get(ext)
        if folder and (len(sub) < 2 or sub[-2] != folder) and f.rel + "-meta.xml" not in rels:
            return  # e.g. a LaTeX .cls file: not in classes/ and no -meta.xml
        _read_body_component(st, f, stem, ext, rels)
        return
    if ext == "object":
        if is_meta:
            _read_source_object(st, f, _name(stem))
        else:
            _read_mdapi_object(st, f, _name(stem))
        return
    if ext in _OBJECT_PARTS and is_meta:
        if len(sub) < 3:
            return _not_modelled(st, ext)
        _read_object_part(st, f, _name(sub[-3]), _name(stem), _OBJECT_PARTS[ext])
        return
    if ext == "report":
        idx = _index(sub, "reports")
        if idx is None or len(sub) - idx < 3:
            return _not_modelled(st, ext)
        full = "/".join(_name(p) for p in sub[idx + 1:-1]) + "/" + _name(stem)
        _read_metadata_component(st, f, "Report", full)
        return
    if ext in ("rule", "workflowRule", "fieldUpdate", "workflowFieldUpdate") and is_meta:
        _read_workflow_part(st, f, stem, ext)
        return
    if ext == "md" and (is_meta or (len(sub) >= 2 and sub[-2] == "customMetadata")):
        _read_custom_metadata(st, f, _name(stem))
        return
    handler = _SINGLE_FILE.get(ext)
    if handler:
        name = _name(stem)
        if handler == "flow":
            data = _read_xml(st, f)
            if data is not None:
                m = re.match(r"^(.*)-(\d+)$", name)
                version = int(m.group(2)) if m else None
                flows.append(_FlowVersion(m.group(1) if m else name, version, f.rel, data, _s(data, "description")))
        elif handler == "flow_definition":
            data = _read_xml(st, f)
            if data is not None:
                flow_defs[name] = _int(data, "activeVersionNumber")
        elif handler == "workflow":
            _read_workflow(st, f, name)
        elif handler == "layout":
            _read_metadata_component(st, f, "Layout", name, obj=name.split("-", 1)[0] if "-" in name else None)
        elif handler == "flexipage":
            _read_metadata_component(st, f, "FlexiPage", name)
        elif handler == "permissionset":
            _read_metadata_component(st, f, "PermissionSet", name)
        elif handler == "profile":
            _read_metadata_component(st, f, "Profile", name)
        elif handler == "global_value_set":
            _read_metadata_component(st, f, "GlobalValueSet", name)
        elif handler == "tab":
            _read_metadata_component(st, f, "CustomTab", name)
        return
    if ext and (is_meta or ext in _NOT_MODELLED):
        _not_modelled(st, ext)


def _index(parts: tuple[str, ...], name: str) -> int | None:
    for i, p in enumerate(parts[:-1]):
        if p == name:
            return i
    return None


def _not_modelled(st: _State, ext: str) -> None:
    st.not_modelled[ext] = st.not_modelled.get(ext, 0) + 1


def _common(comp: Component, data: dict) -> Component:
    comp.description = _s(data, "description") or comp.description
    comp.api_version = _s(data, "apiVersion") or comp.api_version
    return comp


# --- component readers -----------------------------------------------------------------
def _read_body_component(st: _State, f: _File, stem: str, ext: str, rels: set[str]) -> None:
    type_ = _BODY_SUFFIX[ext]
    name = _name(stem)
    if type_ == "EmailTemplate":
        idx = _index(f.sub, "email")
        name = "/".join(_name(p) for p in f.sub[idx + 1:-1]) + "/" + name if idx is not None else name
    body = _read_text(st, f)
    if body is None:
        return
    meta: dict = {}
    meta_rel = f.rel + "-meta.xml"
    if meta_rel in rels:
        meta_file = _File(meta_rel, f.abs + "-meta.xml", f.area, f.sub[:-1] + (f.sub[-1] + "-meta.xml",))
        meta = _read_xml(st, meta_file) or {}
    else:
        st.findings.append(
            ExtractionFinding(st.org, f.rel, "info", f"{type_} without a -meta.xml file (no API version/status)")
        )
    status = _s(meta, "status")
    comp = Component(
        type=type_,
        full_name=name,
        source=f.rel,
        status=status,
        active=(status == "Active") if status else None,
        attributes={"body": body},
    )
    _common(comp, meta)
    if type_ == "ApexClass":
        comp.attributes["is_test"] = bool(_IS_TEST_RE.search(_apex_code_only(body)))
    elif type_ == "ApexTrigger":
        _, obj, events = parse_trigger_header(body)
        comp.attributes.update({"object": obj, "events": events, "is_test": False})
        if obj is None:
            st.findings.append(
                ExtractionFinding(st.org, f.rel, "warning", "no 'trigger X on Object (events)' header found")
            )
    else:
        comp.attributes["metadata"] = meta
        label = _label(meta) or (_s(meta, "name") if type_ == "EmailTemplate" else None)
        if label:
            comp.attributes["label"] = label
    _add(st, comp)


def _object_component(st: _State, name: str, data: dict, source: str) -> Component:
    cst = _s(data, "customSettingsType")
    kind = object_kind(name, cst)
    ns = _namespace_of(name)
    attrs: dict[str, Any] = {
        "label": _label(data),
        "plural_label": _s(data, "pluralLabel"),
        "custom": kind != "standard",
        "object_kind": kind,
        "sharing_model": _s(data, "sharingModel"),
        "external_sharing_model": _s(data, "externalSharingModel"),
        "deployment_status": _s(data, "deploymentStatus"),
        "visibility": _s(data, "visibility"),
        "custom_settings_type": cst,
    }
    comp = Component(
        type="CustomObject",
        full_name=name,
        namespace=None if ns == st.namespace else ns,
        source=source,
        attributes={k: v for k, v in attrs.items() if v is not None},
    )
    return _common(comp, data)


def _read_source_object(st: _State, f: _File, name: str) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    _add(st, _object_component(st, name, data, f.rel))


def _read_mdapi_object(st: _State, f: _File, name: str) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    _add(st, _object_component(st, name, data, f.rel))
    for part_tag, type_ in (("fields", "CustomField"), ("recordTypes", "RecordType"),
                            ("validationRules", "ValidationRule")):
        for item in _as_list(data.get(part_tag)):
            if not isinstance(item, dict) or not _s(item, "fullName"):
                st.findings.append(
                    ExtractionFinding(st.org, f.rel, "warning", f"<{part_tag}> entry without fullName; skipped")
                )
                continue
            _add(st, _object_part(st, type_, name, _name(_s(item, "fullName") or ""), item, f.rel))
    for part_tag in ("listViews", "webLinks", "compactLayouts", "fieldSets", "businessProcesses"):
        n = len(_as_list(data.get(part_tag)))
        if n:
            st.not_modelled[part_tag] = st.not_modelled.get(part_tag, 0) + n


def _read_object_part(st: _State, f: _File, obj: str, name: str, type_: str) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    _add(st, _object_part(st, type_, obj, name, data, f.rel))


def _object_part(st: _State, type_: str, obj: str, name: str, data: dict, source: str) -> Component:
    parent = _ensure_object(st, obj, _obj_folder(source))
    if type_ == "CustomField":
        return _field_component(st, obj, name, data, source, parent)
    if type_ == "ValidationRule":
        active = _b(data, "active")
        comp = Component(
            type="ValidationRule",
            full_name=f"{obj}.{name}",
            parent=parent,
            source=source,
            active=active,
            status=None if active is None else ("Active" if active else "Inactive"),
            attributes={
                "error_condition_formula": _s(data, "errorConditionFormula"),
                "error_message": _s(data, "errorMessage"),
                "error_display_field": _s(data, "errorDisplayField"),
            },
        )
        return _common(comp, data)
    # RecordType
    active = _b(data, "active")
    meta = dict(data)
    comp = Component(
        type="RecordType",
        full_name=f"{obj}.{name}",
        parent=parent,
        source=source,
        active=active,
        attributes={"label": _label(data), "business_process": _s(data, "businessProcess"), "metadata": meta},
    )
    return _common(comp, data)


def _obj_folder(source: str) -> str:
    parts = source.split("/")
    if len(parts) > 2 and parts[-2] in ("fields", "recordTypes", "validationRules"):
        return "/".join(parts[:-2])
    return source


def _field_component(st: _State, obj: str, name: str, data: dict, source: str, parent: str) -> Component:
    value_set = data.get("valueSet") if isinstance(data.get("valueSet"), dict) else {}
    picklist = data.get("picklist") if isinstance(data.get("picklist"), dict) else {}  # API < 38
    values: list[str] = []
    vsd = value_set.get("valueSetDefinition") if isinstance(value_set.get("valueSetDefinition"), dict) else {}
    for v in _as_list(vsd.get("value")):
        if isinstance(v, dict) and _s(v, "fullName"):
            values.append(_s(v, "fullName"))  # type: ignore[arg-type]
    for v in _as_list(picklist.get("picklistValues")):
        if isinstance(v, dict) and _s(v, "fullName"):
            values.append(_s(v, "fullName"))  # type: ignore[arg-type]
    scheme = _s(data, "encryptionScheme")
    data_type = _s(data, "type")
    ref = _s(data, "referenceTo")
    attrs: dict[str, Any] = {
        "data_type": data_type,
        "label": _label(data),
        "formula": _s(data, "formula"),
        "reference_to": [ref] if ref else [],
        "relationship_name": _s(data, "relationshipName"),
        "picklist_values": values,
        "controlling_field": _s(value_set, "controllingField") or _s(picklist, "controllingField"),
        "value_set": _s(value_set, "valueSetName"),
        "compliance_group": _s(data, "complianceGroup"),
        "security_classification": _s(data, "securityClassification"),
        "required": bool(_b(data, "required")),
        "unique": bool(_b(data, "unique")),
        "external_id": bool(_b(data, "externalId")),
        "encrypted": bool(scheme and scheme != "None") or data_type == "EncryptedText",
        "encryption_scheme": scheme,
        "default_value": _s(data, "defaultValue"),
        "length": _int(data, "length"),
        "precision": _int(data, "precision"),
        "scale": _int(data, "scale"),
        "custom": "__" in name,
        "inline_help_text": _s(data, "inlineHelpText"),
        "delete_constraint": _s(data, "deleteConstraint"),
        "summarized_field": _s(data, "summarizedField"),
        "summary_foreign_key": _s(data, "summaryForeignKey"),
        "summary_operation": _s(data, "summaryOperation"),
        "track_history": _b(data, "trackHistory"),
    }
    lookup_filter = data.get("lookupFilter")
    if isinstance(lookup_filter, dict):
        attrs["lookup_filter"] = lookup_filter
    if data.get("summaryFilterItems"):
        attrs["summary_filter_items"] = data.get("summaryFilterItems")
    ns = _namespace_of(name)
    comp = Component(
        type="CustomField",
        full_name=f"{obj}.{name}",
        namespace=None if ns == st.namespace else ns,
        parent=parent,
        source=source,
        attributes={k: v for k, v in attrs.items() if v is not None},
    )
    return _common(comp, data)


def _read_metadata_component(st: _State, f: _File, type_: str, name: str, obj: str | None = None) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    attrs: dict[str, Any] = {"metadata": data}
    label = _label(data)
    if label:
        attrs["label"] = label
    if obj:
        attrs["object"] = obj
    comp = Component(type=type_, full_name=name, source=f.rel, attributes=attrs)
    _add(st, _common(comp, data))


def _read_custom_metadata(st: _State, f: _File, name: str) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    type_name = name.split(".", 1)[0] if "." in name else name
    obj = f"{type_name}__mdt"
    values: dict[str, Any] = {}
    for v in _as_list(data.get("values")):
        if isinstance(v, dict) and _s(v, "field"):
            values[_s(v, "field")] = v.get("value")  # type: ignore[index]
    comp = Component(
        type="CustomMetadata",
        full_name=name,
        source=f.rel,
        parent=_ensure_object(st, obj, f.rel),
        attributes={"metadata": data, "label": _label(data), "object": obj, "values": values},
    )
    _add(st, _common(comp, data))


def _read_workflow(st: _State, f: _File, obj: str) -> None:
    data = _read_xml(st, f)
    if data is None:
        return
    for rule in _as_list(data.get("rules")):
        if isinstance(rule, dict) and _s(rule, "fullName"):
            _add(st, _workflow_rule(st, obj, _name(_s(rule, "fullName") or ""), rule, f.rel))
    for upd in _as_list(data.get("fieldUpdates")):
        if isinstance(upd, dict) and _s(upd, "fullName"):
            _add(st, _workflow_field_update(st, obj, _name(_s(upd, "fullName") or ""), upd, f.rel))
    for tag in ("alerts", "outboundMessages", "tasks", "knowledgePublishes", "flowActions", "sends"):
        n = len(_as_list(data.get(tag)))
        if n:
            st.not_modelled[f"workflow {tag}"] = st.not_modelled.get(f"workflow {tag}", 0) + n


def _read_workflow_part(st: _State, f: _File, stem: str, ext: str) -> None:
    """Decomposed workflows (``workflows/<Obj>/.../<Name>.workflowRule-meta.xml``)."""
    idx = _index(f.sub, "workflows")
    if idx is None or len(f.sub) - idx < 3:
        return _not_modelled(st, ext)
    obj = _name(f.sub[idx + 1])
    data = _read_xml(st, f)
    if data is None:
        return
    name = _name(stem)
    if ext in ("rule", "workflowRule"):
        _add(st, _workflow_rule(st, obj, name, data, f.rel))
    else:
        _add(st, _workflow_field_update(st, obj, name, data, f.rel))


def _workflow_rule(st: _State, obj: str, name: str, rule: dict, source: str) -> Component:
    actions = [
        {"name": _s(a, "name"), "type": _s(a, "type")} for a in _as_list(rule.get("actions")) if isinstance(a, dict)
    ]
    for trig in _as_list(rule.get("workflowTimeTriggers")):
        if isinstance(trig, dict):
            actions += [
                {"name": _s(a, "name"), "type": _s(a, "type"), "time_trigger": True}
                for a in _as_list(trig.get("actions"))
                if isinstance(a, dict)
            ]
    active = _b(rule, "active")
    comp = Component(
        type="WorkflowRule",
        full_name=f"{obj}.{name}",
        parent=_ensure_object(st, obj, source),
        source=source,
        active=active,
        status=None if active is None else ("Active" if active else "Inactive"),
        attributes={
            "formula": _s(rule, "formula"),
            "criteria": [c for c in _as_list(rule.get("criteriaItems")) if isinstance(c, dict)],
            "boolean_filter": _s(rule, "booleanFilter"),
            "actions": actions,
            "trigger_type": _s(rule, "triggerType"),
            "metadata": rule,
        },
    )
    return _common(comp, rule)


def _workflow_field_update(st: _State, obj: str, name: str, upd: dict, source: str) -> Component:
    comp = Component(
        type="WorkflowFieldUpdate",
        full_name=f"{obj}.{name}",
        parent=_ensure_object(st, obj, source),
        source=source,
        attributes={
            "field": _s(upd, "field"),
            "formula": _s(upd, "formula"),
            "label": _s(upd, "name"),
            "operation": _s(upd, "operation"),
            "literal_value": _s(upd, "literalValue"),
            "lookup_value": _s(upd, "lookupValue"),
            "target_object": _s(upd, "targetObject"),
            "metadata": upd,
        },
    )
    return _common(comp, upd)


def _finish_flows(st: _State, flows: list[_FlowVersion], flow_defs: dict[str, int | None]) -> None:
    groups: dict[str, list[_FlowVersion]] = {}
    for fv in flows:
        groups.setdefault(fv.name, []).append(fv)
    for name, versions in groups.items():
        defined_active = flow_defs.get(name)
        unversioned = [v for v in versions if v.version is None]
        versioned = sorted((v for v in versions if v.version is not None), key=lambda v: v.version or 0)
        for extra in unversioned[1:]:
            st.findings.append(
                ExtractionFinding(st.org, extra.source, "warning",
                                  f"Flow:{name} is defined twice (first in {unversioned[0].source}); kept the first",
                                  "remove the duplicate definition")
            )
        if unversioned:
            chosen = unversioned[0]
            status = _s(chosen.data, "status")
            if status is None and name in flow_defs:
                status = "Active" if defined_active else "Draft"
            version_list: list[dict] = []
            active_version = None
        else:
            statuses = {}
            for v in versioned:
                s = _s(v.data, "status")
                if s is None and defined_active is not None:
                    s = "Active" if v.version == defined_active else "Obsolete"
                statuses[v.version] = s
            active_versions = [v for v in versioned if statuses[v.version] == "Active"]
            chosen = active_versions[-1] if active_versions else versioned[-1]
            status = statuses[chosen.version]
            version_list = [{"version_number": v.version, "status": statuses[v.version], "id": None} for v in versioned]
            active_version = active_versions[-1].version if active_versions else None
        data = chosen.data
        start = data.get("start") if isinstance(data.get("start"), dict) else {}
        attrs: dict[str, Any] = {
            "label": _label(data),
            "process_type": _s(data, "processType"),
            "trigger_type": _s(start, "triggerType"),
            "record_trigger_type": _s(start, "recordTriggerType"),
            "trigger_object": _s(start, "object"),
            "metadata": data,
        }
        if version_list:
            attrs.update({"version_number": chosen.version, "active_version": active_version,
                          "versions": version_list})
        comp = Component(
            type="Flow",
            full_name=name,
            source=chosen.source,
            status=status,
            active=status == "Active",
            attributes={k: v for k, v in attrs.items() if v is not None},
        )
        _add(st, _common(comp, data))


def _bundle_rel(f: _File, bundle_path: str) -> str:
    """Project-relative path of the bundle folder (area prefix + bundle path)."""
    prefix = f.rel[: len(f.rel) - len("/".join(f.sub))]
    return prefix + bundle_path


_LWC_TEXT = (".js", ".html", ".css", ".svg", ".ts")
_AURA_TEXT = (".cmp", ".app", ".evt", ".intf", ".js", ".css", ".design", ".svg", ".auradoc", ".tokens")


def _read_bundle(st: _State, bundle_path: str, files: list[_File]) -> None:
    parts = bundle_path.split("/")
    kind, bundle = parts[-2], parts[-1]
    type_ = "LightningComponentBundle" if kind == "lwc" else "AuraDefinitionBundle"
    exts = _LWC_TEXT if kind == "lwc" else _AURA_TEXT
    name = _name(bundle)
    texts: dict[str, str] = {}
    meta: dict | None = None
    meta_source = None
    base = len(parts)
    for f in files:
        inner = "/".join(f.sub[base:])
        if inner.endswith("-meta.xml"):
            if meta is None and "/" not in inner:
                meta = _read_xml(st, f)
                meta_source = f.rel
            continue
        if inner.endswith(exts):
            text = _read_text(st, f)
            if text is not None:
                texts[inner] = text
    if meta is None:
        meta = {}
        if kind == "lwc" and meta_source is None:
            st.findings.append(
                ExtractionFinding(st.org, files[0].rel.rsplit("/", 1)[0], "warning",
                                  f"{type_} {name} has no readable -meta.xml file")
            )
    comp = Component(
        type=type_,
        full_name=name,
        source=_bundle_rel(files[0], bundle_path),
        attributes={"files": texts, "metadata": meta},
    )
    label = _label(meta)
    if label:
        comp.attributes["label"] = label
    _add(st, _common(comp, meta))


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "ForceIgnore",
    "object_kind",
    "parse_trigger_header",
    "read_sfdx_project",
    "strip_cumulusci_tokens",
    "strip_name_tokens",
]
