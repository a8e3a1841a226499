"""Writers turn retrieved graph facts into prose: offline (deterministic) or Gemini (grounded).

``Writer.write(task, facts, allowed_keys) -> Written``. Both writers render the same shape:

1. a one-sentence direct answer (``facts["summary"]``),
2. one block per ``facts["sections"]`` entry: its title and count, then one bullet per item
   ``- `Type:Name` — detail [evidence]``,
3. ``facts["notes"]`` as a final "Notes" list.

Facts that don't follow that convention are rendered as ``key: value`` lines.

**Grounding rules of the Gemini path** (:class:`GeminiWriter`): the prompt holds the task, the
facts as JSON and the list of allowed keys; the model answers JSON ``{text, cited_keys}``
(``response_mime_type=application/json`` with a schema). Every component key the answer cites
*or* mentions in its text (```Type:Name``` in backticks, or a bare ``Type:Name`` of a known
component type) must be in ``allowed_keys``; otherwise the answer is rejected as a hallucinated
citation, the offline answer is used instead and the offending keys are kept in
``rejected_citations``. Malformed JSON gets one retry, then the offline answer. Any Gemini error
(timeout, budget spent, HTTP error) → the offline answer with a note. Accepted answers are cached
by prompt hash (:mod:`.cache`), so a rerun over the same facts sends no request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from aicolleague_pipelines.lib.llm.cache import ResponseCache
from aicolleague_pipelines.lib.llm.gemini import (
    GeminiClient,
    GeminiConfig,
    GeminiError,
    GeminiMalformedResponse,
    resolve_api_key,
)

log = logging.getLogger(__name__)

Source = Literal["gemini", "offline", "cache"]

#: Component types a bare ``Type:Name`` in prose is recognised as (plus the types of the allowed keys).
KNOWN_TYPES = frozenset({
    "ApexClass", "ApexTrigger", "ApexPage", "ApexComponent", "AuraDefinitionBundle", "CustomField",
    "CustomObject", "CustomMetadata", "CustomTab", "CustomLabel", "EmailTemplate", "FlexiPage", "Flow",
    "GlobalValueSet", "Layout", "LightningComponentBundle", "PermissionSet", "PermissionSetGroup",
    "Profile", "RecordType", "Report", "Dashboard", "ValidationRule", "WebLink", "WorkflowRule",
    "WorkflowFieldUpdate", "WorkflowAlert", "QuickAction", "StaticResource", "NamedCredential",
    "MetabaseCard", "MetabaseDashboard", "WarehouseColumn", "WarehouseTable", "ChargebeeField",
    "IntercomAttribute", "ApiEntity", "ApiField",
})

_BACKTICKED = re.compile(r"`([^`\n]+)`")
_KEY_SHAPE = re.compile(r"^[A-Z][A-Za-z0-9_]*:\S")
_BARE = re.compile(r"(?<![\w`:/.])([A-Z][A-Za-z0-9_]+):([A-Za-z0-9_][\w.\-/]*)")

SYSTEM_PROMPT = (
    "You explain a Salesforce org's dependency graph to an administrator. Answer ONLY from the FACTS "
    "given; never add components, numbers or behaviour that are not in them. Cite every component by "
    "its key in backticks, exactly as written, e.g. `CustomField:Account.Industry`; cite only keys from "
    "ALLOWED KEYS. Structure: first one sentence that answers the question; then, for each entry of "
    "FACTS.sections in order, its title with the item count and one bullet per item (key, then what "
    "the facts say about it); then FACTS.notes, if any, under 'Notes'. Plain Markdown, no "
    "introductions, no closing remarks. Reply with a JSON object {\"text\": <the answer>, "
    "\"cited_keys\": [<every key you cited>]}."
)

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "text": {"type": "STRING"},
        "cited_keys": {"type": "ARRAY", "items": {"type": "STRING"}},
    },
    "required": ["text", "cited_keys"],
}


@dataclass
class Written:
    text: str
    cited_keys: list[str]
    source: Source
    rejected_citations: list[str] = field(default_factory=list)
    #: What happened on the way (fallback reasons, retries); safe to show and log.
    notes: list[str] = field(default_factory=list)
    tokens: int = 0


class Writer(Protocol):
    def write(self, task: str, facts: dict[str, Any], allowed_keys: set[str]) -> Written: ...


# --- helpers ------------------------------------------------------------------------------
def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


def mentioned_keys(text: str, allowed_keys: set[str] = frozenset()) -> list[str]:
    """Component keys a text mentions, in order: every ```Type:Name``` in backticks, and bare
    ``Type:Name`` tokens of known types (a bare token that is the start of an allowed key with
    spaces in its name — ``Layout:Account-Account Layout`` — counts as that key)."""
    spans: list[tuple[int, str]] = []
    # An allowed key with a backtick in its name is found verbatim first (and blanked out), so
    # its own backticks cannot cut it short.
    for key in sorted((k for k in allowed_keys if "`" in k), key=len, reverse=True):
        quoted = f"`{key}`"
        at = text.find(quoted)
        while at >= 0:
            spans.append((at, key))
            text = text[:at] + " " * len(quoted) + text[at + len(quoted):]
            at = text.find(quoted, at + len(quoted))
    for m in _BACKTICKED.finditer(text):
        inner = m.group(1).strip()
        if _KEY_SHAPE.match(inner):
            spans.append((m.start(), inner))
    found = [k for _, k in sorted(spans, key=lambda s: s[0])]
    types = KNOWN_TYPES | {k.partition(":")[0] for k in allowed_keys}
    stripped = _BACKTICKED.sub(" ", text)
    for m in _BARE.finditer(stripped):
        if m.group(1) not in types:
            continue
        token = m.group(0).rstrip(".,;:)")
        if token in allowed_keys:
            found.append(token)
            continue
        longer = [k for k in allowed_keys if k.startswith(token) and stripped.find(k) >= 0]
        found.append(max(longer, key=len) if longer else token)
    return _dedupe(found)


def _render_value(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    return str(v)


def render_facts(facts: dict[str, Any]) -> str:
    """The deterministic prose of the module docstring."""
    out: list[str] = []
    summary = facts.get("summary")
    if summary:
        out.append(str(summary).strip())
    sections = facts.get("sections")
    if isinstance(sections, list):
        for sec in sections:
            items = sec.get("items") or []
            total = sec.get("total", len(items))
            out.append("")
            out.append(f"**{sec.get('title', 'Items')}** ({total})")
            for it in items:
                line = f"- `{it['key']}`" if it.get("key") else "-"
                if it.get("detail"):
                    line += f" — {it['detail']}" if it.get("key") else f" {it['detail']}"
                ev = it.get("evidence") or []
                if ev:
                    line += f" [{'; '.join(str(e) for e in ev)}]"
                out.append(line)
            if total > len(items):
                out.append(f"- … and {total - len(items)} more")
    else:
        skip = {"summary", "notes", "question", "sections"}
        rest = {k: v for k, v in facts.items() if k not in skip}
        if rest:
            out.append("")
            out += [f"- {k}: {_render_value(v)}" for k, v in rest.items()]
    notes = facts.get("notes") or []
    if notes:
        out.append("")
        out.append("Notes:")
        out += [f"- {n}" for n in notes]
    return "\n".join(out).strip() + "\n"


# --- offline ------------------------------------------------------------------------------
class OfflineWriter:
    """Deterministic prose from the facts (no network, no flourishes)."""

    source: Source = "offline"

    def write(self, task: str, facts: dict[str, Any], allowed_keys: set[str]) -> Written:
        text = render_facts(facts)
        cited = [k for k in mentioned_keys(text, allowed_keys) if k in allowed_keys]
        return Written(text=text, cited_keys=cited, source="offline")


# --- Gemini -------------------------------------------------------------------------------
def build_prompt(task: str, facts: dict[str, Any], allowed_keys: set[str], max_fact_chars: int = 60_000) -> str:
    facts_json = json.dumps(facts, ensure_ascii=False, indent=1, default=str)
    if len(facts_json) > max_fact_chars:
        facts_json = facts_json[:max_fact_chars] + "\n… (facts truncated)"
    keys = "\n".join(f"- {k}" for k in sorted(allowed_keys))
    return (
        f"TASK: {' '.join(task.split())}\n\n"
        f"FACTS (JSON):\n{facts_json}\n\n"
        "OUTPUT: a JSON object {\"text\": string, \"cited_keys\": [string]}. Cite components in backticks "
        "as `Type:Name`, only keys listed below.\n\n"
        f"ALLOWED KEYS (cite only these):\n{keys}\n"
    )


def _parse_answer(raw: str) -> dict[str, Any] | None:
    text = raw.strip()
    if text.startswith("```"):  # a fenced block despite the JSON mime type
        text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
        return None
    cited = obj.get("cited_keys", [])
    if not isinstance(cited, list) or not all(isinstance(c, str) for c in cited):
        return None
    return {"text": obj["text"], "cited_keys": [c.strip().strip("`") for c in cited]}


@dataclass
class GeminiWriter:
    client: GeminiClient
    cache: ResponseCache | None = None
    fallback: Writer = field(default_factory=OfflineWriter)
    #: Attempts when the model's JSON is malformed (1 retry).
    json_attempts: int = 2

    def _fallback(self, task: str, facts: dict[str, Any], allowed: set[str], note: str,
                  rejected: list[str] | None = None, tokens: int = 0) -> Written:
        log.info("GeminiWriter: offline answer used: %s", note)
        w = self.fallback.write(task, facts, allowed)
        return Written(w.text, w.cited_keys, w.source, list(rejected or []), [*w.notes, note], tokens)

    def validate(self, answer: dict[str, Any], allowed: set[str]) -> tuple[list[str], list[str]]:
        """(cited keys, rejected keys) of a parsed answer."""
        mentioned = mentioned_keys(answer["text"], allowed)
        all_keys = _dedupe([*answer["cited_keys"], *mentioned])
        rejected = [k for k in all_keys if k not in allowed]
        return all_keys, rejected

    def write(self, task: str, facts: dict[str, Any], allowed_keys: set[str]) -> Written:
        allowed = set(allowed_keys)
        prompt = build_prompt(task, facts, allowed)
        fingerprint = {**self.client.config.request_fingerprint(), "system": SYSTEM_PROMPT,
                       "response_schema": RESPONSE_SCHEMA}
        ckey = self.cache.key(self.client.config.model, prompt, fingerprint) if self.cache is not None else None
        if self.cache is not None and ckey is not None:
            hit = self.cache.get(ckey)
            parsed = _parse_answer(json.dumps(hit)) if hit else None
            if parsed is not None:
                cited, rejected = self.validate(parsed, allowed)
                if not rejected:
                    return Written(parsed["text"], cited, "cache")
        notes: list[str] = []
        tokens = 0
        parsed = None
        for attempt in range(1, self.json_attempts + 1):
            try:
                gen = self.client.generate(prompt, system=SYSTEM_PROMPT, response_mime_type="application/json",
                                           response_schema=RESPONSE_SCHEMA)
            except GeminiMalformedResponse as exc:
                notes.append(f"attempt {attempt}: {exc}")
                continue
            except GeminiError as exc:
                return self._fallback(task, facts, allowed, f"Gemini unavailable ({exc}); offline answer",
                                      tokens=tokens)
            tokens += gen.total_tokens
            parsed = _parse_answer(gen.text)
            if parsed is not None:
                break
            notes.append(f"attempt {attempt}: the model's reply was not the expected JSON")
        if parsed is None:
            return self._fallback(task, facts, allowed,
                                  f"Gemini sent malformed JSON {self.json_attempts} times; offline answer", tokens=tokens)
        cited, rejected = self.validate(parsed, allowed)
        if rejected:
            return self._fallback(
                task, facts, allowed,
                "Gemini answer rejected: it cited components not in the facts "
                f"({', '.join(rejected[:10])}); offline answer", rejected=rejected, tokens=tokens,
            )
        if self.cache is not None and ckey is not None:
            self.cache.put(ckey, {"text": parsed["text"], "cited_keys": cited})
        return Written(parsed["text"], cited, "gemini", [], notes, tokens)


def make_writer(
    api_key_env: str | None = None,
    cache_dir: Path | str | None = None,
    config: GeminiConfig | None = None,
) -> Writer:
    """A :class:`GeminiWriter` when the API key variable (``api_key_env``, else
    ``config.api_key_env``, default ``GEMINI_API_KEY`` with ``GOOGLE_API_KEY`` as fallback) holds a
    key, else the :class:`OfflineWriter`. ``cache_dir`` enables the response cache."""
    cfg = config or GeminiConfig()
    if api_key_env and api_key_env != cfg.api_key_env:
        cfg = replace(cfg, api_key_env=api_key_env)
    key = resolve_api_key(cfg.api_key_env)
    if not key:
        return OfflineWriter()
    cache = ResponseCache(Path(cache_dir)) if cache_dir is not None else None
    return GeminiWriter(GeminiClient(cfg, api_key=key), cache=cache)
