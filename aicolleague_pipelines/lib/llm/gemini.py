"""A small, careful client for Gemini on top of the maintained ``google-genai`` SDK.

What it adds to ``genai.Client``:

- **Config in one place** (:class:`GeminiConfig`): model (default ``gemini-2.5-flash``),
  temperature, max output tokens, per-request timeout, retries, a token budget per run,
  ``base_url`` (tests point it at a loopback fake).
- **Retries that honour ``Retry-After``.** ``google-genai``'s own ``HttpRetryOptions`` retries
  429/5xx with exponential jitter but ignores the server's ``Retry-After``; so the SDK's retries
  are switched off (``retry_options=None`` = one attempt) and :meth:`GeminiClient.generate`
  retries 408/429/5xx and transient connection errors itself, sleeping ``Retry-After`` when the
  server sends it (capped at ``max_backoff_s``), else ``backoff_s · 2^attempt``. Timeouts use the
  SDK's ``HttpOptions(timeout=ms)``, which does work (httpx read timeout) and are *not* retried:
  a slow model stays slow, the caller falls back instead.
- **A token budget per run**: the sum of ``usageMetadata.totalTokenCount`` of the calls made by
  this client; once spent (or when the estimated prompt alone would exceed what is left) calls
  raise :class:`BudgetExhausted` before any request is sent — writers fall back offline.
- **The API key is never logged or echoed**: it is read from an environment variable *name*
  (``GEMINI_API_KEY`` by default, ``GOOGLE_API_KEY`` as the fallback), kept out of ``repr`` and
  scrubbed from every error message this module raises.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aicolleague_pipelines.lib.retry_after import retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"
DEFAULT_API_KEY_ENV = "GEMINI_API_KEY"
FALLBACK_API_KEY_ENV = "GOOGLE_API_KEY"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class GeminiError(RuntimeError):
    """A Gemini call failed; the message is safe to log (no API key)."""


class GeminiUnavailable(GeminiError):
    """No API key configured."""


class BudgetExhausted(GeminiError):
    """The run's token budget is spent; no request was sent."""


class GeminiTimeout(GeminiError):
    pass


class GeminiMalformedResponse(GeminiError):
    """The HTTP body was not the expected JSON, or the candidate carried no text."""


@dataclass(frozen=True)
class GeminiConfig:
    model: str = DEFAULT_MODEL
    temperature: float = 0.2
    max_output_tokens: int = 2048
    #: Tokens (``totalTokenCount``) this client may spend in total; ``None`` = unlimited.
    token_budget: int | None = 200_000
    #: Per-request timeout in seconds (the SDK takes milliseconds).
    timeout_s: float = 60.0
    #: Extra attempts after the first on 408/429/5xx and connection errors.
    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    #: ``thinking_config.thinking_budget`` (0 switches thinking off on 2.5 Flash); None = model default.
    thinking_budget: int | None = None
    base_url: str | None = None
    #: REST API version (``v1`` / ``v1beta``); None = the SDK's default.
    api_version: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV

    def request_fingerprint(self) -> dict[str, Any]:
        """What changes an answer (for cache keys): not timeouts, retries or budgets."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
            "thinking_budget": self.thinking_budget,
        }


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    finish_reason: str | None = None
    attempts: int = 1


def resolve_api_key(api_key_env: str = DEFAULT_API_KEY_ENV) -> str | None:
    """The key from ``$api_key_env``; for the default name also ``$GOOGLE_API_KEY``."""
    key = os.environ.get(api_key_env, "").strip()
    if not key and api_key_env == DEFAULT_API_KEY_ENV:
        key = os.environ.get(FALLBACK_API_KEY_ENV, "").strip()
    return key or None


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout, transport) exception classes of httpx and httpx2 (google-genai uses either)."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        timeouts.append(mod.TimeoutException)
        transport.append(mod.TransportError)
    return tuple(timeouts), tuple(transport)


@dataclass
class GeminiClient:
    """``generate(prompt)`` with retries, timeout and a token budget (see the module docstring)."""

    config: GeminiConfig = field(default_factory=GeminiConfig)
    api_key: str | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    tokens_used: int = 0
    calls: int = 0

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = resolve_api_key(self.config.api_key_env)
        self._lock = threading.Lock()
        self._client: Any = None

    @classmethod
    def from_env(cls, config: GeminiConfig | None = None, **overrides: Any) -> "GeminiClient":
        cfg = config or GeminiConfig()
        if overrides:
            cfg = GeminiConfig(**{**asdict(cfg), **overrides})
        client = cls(cfg)
        if not client.api_key:
            raise GeminiUnavailable(f"no Gemini API key: set ${cfg.api_key_env}")
        return client

    # --- state ----------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return bool(self.api_key)

    @property
    def tokens_remaining(self) -> int | None:
        if self.config.token_budget is None:
            return None
        return max(0, self.config.token_budget - self.tokens_used)

    def _scrub(self, text: str) -> str:
        if self.api_key:
            text = text.replace(self.api_key, "***")
        return text

    def _sdk(self) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            if not self.api_key:
                raise GeminiUnavailable(f"no Gemini API key: set ${self.config.api_key_env}")
            opts: dict[str, Any] = {
                "timeout": max(1, int(self.config.timeout_s * 1000)),
                # One attempt: retries live in generate() so Retry-After is honoured.
                "retry_options": None,
            }
            if self.config.base_url:
                opts["base_url"] = self.config.base_url
            if self.config.api_version:
                opts["api_version"] = self.config.api_version
            self._client = genai.Client(api_key=self.api_key, vertexai=False, http_options=types.HttpOptions(**opts))
        return self._client

    def generation_config(
        self, *, system: str | None = None, response_mime_type: str | None = None,
        response_schema: dict[str, Any] | None = None,
    ) -> Any:
        from google.genai import types

        kw: dict[str, Any] = {
            "temperature": self.config.temperature,
            "max_output_tokens": self.config.max_output_tokens,
            # No tools are passed; keep the SDK from announcing automatic function calling.
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
        }
        if system:
            kw["system_instruction"] = system
        if response_mime_type:
            kw["response_mime_type"] = response_mime_type
        if response_schema:
            kw["response_schema"] = response_schema
        if self.config.thinking_budget is not None:
            kw["thinking_config"] = types.ThinkingConfig(thinking_budget=self.config.thinking_budget)
        return types.GenerateContentConfig(**kw)

    # --- calling ----------------------------------------------------------------------------
    def generate(
        self, prompt: str, *, system: str | None = None, response_mime_type: str | None = None,
        response_schema: dict[str, Any] | None = None,
    ) -> Generation:
        """One answer. Raises a :class:`GeminiError` subclass (message safe to log) on failure."""
        from google.genai import errors

        timeout_errors, transport_errors = _transport_errors()

        remaining = self.tokens_remaining
        estimate = (len(prompt) + len(system or "")) // 4
        if remaining is not None and (remaining <= 0 or estimate >= remaining):
            raise BudgetExhausted(
                f"Gemini token budget spent ({self.tokens_used} of {self.config.token_budget} tokens used)"
            )
        sdk = self._sdk()
        cfg = self.generation_config(system=system, response_mime_type=response_mime_type,
                                     response_schema=response_schema)
        attempt = 0
        while True:
            attempt += 1
            delay: float | None = None
            try:
                with self._lock:
                    self.calls += 1
                resp = sdk.models.generate_content(model=self.config.model, contents=prompt, config=cfg)
            except errors.APIError as exc:
                code = getattr(exc, "code", None)
                if code in RETRY_STATUS and attempt <= self.config.retries:
                    delay = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
                    reason = f"HTTP {code}"
                else:
                    raise GeminiError(
                        self._scrub(f"Gemini {self.config.model} failed: HTTP {code} {exc.status or ''} "
                                    f"{(exc.message or '')[:300]}".rstrip())
                    ) from None
            except timeout_errors:
                raise GeminiTimeout(
                    f"Gemini {self.config.model} did not answer within {self.config.timeout_s:g} s"
                ) from None
            except transport_errors as exc:
                if attempt <= self.config.retries:
                    reason = type(exc).__name__
                else:
                    raise GeminiError(self._scrub(f"Gemini unreachable: {type(exc).__name__}: {exc}")) from None
            except (errors.UnknownApiResponseError, ValueError) as exc:
                raise GeminiMalformedResponse(self._scrub(f"Gemini sent a malformed response: {str(exc)[:200]}")) from None
            else:
                return self._generation(resp, attempt)
            if delay is None:
                delay = self.config.backoff_s * (2 ** (attempt - 1))
            delay = min(delay, self.config.max_backoff_s)
            log.info("Gemini %s: %s, retry %d/%d in %.2f s", self.config.model, reason, attempt,
                     self.config.retries, delay)
            self.sleep(delay)

    def _generation(self, resp: Any, attempts: int) -> Generation:
        usage = getattr(resp, "usage_metadata", None)
        total = int(getattr(usage, "total_token_count", 0) or 0)
        with self._lock:
            self.tokens_used += total
        cands = getattr(resp, "candidates", None) or []
        finish = None
        if cands and getattr(cands[0], "finish_reason", None) is not None:
            fr = cands[0].finish_reason
            finish = getattr(fr, "value", None) or str(fr)
        try:
            text = resp.text
        except Exception:  # noqa: BLE001 - SDK raises on odd candidates
            text = None
        if not text:
            raise GeminiMalformedResponse(f"Gemini returned no text (finish reason {finish})")
        return Generation(
            text=text,
            model=self.config.model,
            prompt_tokens=int(getattr(usage, "prompt_token_count", 0) or 0),
            output_tokens=int(getattr(usage, "candidates_token_count", 0) or 0),
            total_tokens=total,
            finish_reason=finish,
            attempts=attempts,
        )
