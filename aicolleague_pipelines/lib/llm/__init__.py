"""LLM access: a careful Gemini client, grounded writers with an offline twin, a response cache.

- :mod:`.gemini` — :class:`GeminiClient` on ``google-genai`` (retries honouring Retry-After,
  timeout, token budget per run, key from an environment variable and never logged).
- :mod:`.writer` — ``Writer.write(task, facts, allowed_keys) -> Written``: :class:`OfflineWriter`
  (deterministic) and :class:`GeminiWriter` (grounded JSON answers, citations validated against
  the facts, offline fallback); :func:`make_writer` picks one from the environment.
- :mod:`.cache` — :class:`ResponseCache`, answers by prompt hash as JSON files.
"""

from aicolleague_pipelines.lib.llm.cache import ResponseCache, prompt_hash
from aicolleague_pipelines.lib.llm.gemini import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_MODEL,
    BudgetExhausted,
    GeminiClient,
    GeminiConfig,
    GeminiError,
    GeminiMalformedResponse,
    GeminiTimeout,
    GeminiUnavailable,
    Generation,
    resolve_api_key,
)
from aicolleague_pipelines.lib.llm.writer import (
    GeminiWriter,
    OfflineWriter,
    Writer,
    Written,
    build_prompt,
    make_writer,
    mentioned_keys,
    render_facts,
)

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_MODEL",
    "BudgetExhausted",
    "GeminiClient",
    "GeminiConfig",
    "GeminiError",
    "GeminiMalformedResponse",
    "GeminiTimeout",
    "GeminiUnavailable",
    "GeminiWriter",
    "Generation",
    "OfflineWriter",
    "ResponseCache",
    "Writer",
    "Written",
    "build_prompt",
    "make_writer",
    "mentioned_keys",
    "prompt_hash",
    "render_facts",
    "resolve_api_key",
]
