"""The HTTP layer every platform client shares: httpx, retries, rate limits, call counts.

- Retries with exponential backoff + jitter on 429 (honouring ``Retry-After`` and
  ``X-RateLimit-Reset``), 5xx, timeouts, connection errors and JSON pages cut short; a
  bounded number of attempts.
- Counts calls, retries and rate-limit waits in ``stats``.
- Errors become :class:`PlatformError` naming the instance, the call (method + path, never
  the query string's values or headers) and what to do. Secrets never appear.
- ``export`` mode: a platform configured with ``export: <folder>`` is served from recorded
  responses through ``httpx.MockTransport`` — the client code path is the same as live.
  The folder holds ``responses.json``: ``{"GET /api/card": <json body>, "GET
  /api/v2/customers?limit=100&offset=abc": {...}, ...}`` (query parameters sorted).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.model import PlatformError
from aicolleague_pipelines.lib.retry_after import retry_after_seconds

RECORDED_FILE = "responses.json"

# httpx logs every request URL at INFO; paging cursors and offsets can carry record ids (an
# email used as a customer id), so keep its request lines out of run logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
EXPORT_BASE_URL = "https://recorded.invalid"


def recorded_key(method: str, path: str, params: dict[str, Any] | None) -> str:
    """The key of a recorded response: method, path and sorted query parameters."""
    query = urlencode(sorted((k, str(v)) for k, v in (params or {}).items()))
    return f"{method.upper()} {path}" + (f"?{query}" if query else "")


def recorded_transport(folder: Path) -> httpx.MockTransport:
    """Serve ``folder/responses.json``; an unrecorded request is a 404 with a clear body."""
    responses: dict[str, Any] = json.loads((folder / RECORDED_FILE).read_text(encoding="utf-8"))

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params.multi_items())
        key = recorded_key(request.method, request.url.path, params)
        if key not in responses:
            return httpx.Response(404, json={"message": f"not recorded: {key}"})
        return httpx.Response(200, json=responses[key])

    return httpx.MockTransport(handler)


class PlatformHttp:
    """A small retrying JSON client over one platform instance."""

    def __init__(
        self,
        cfg: PlatformConfig,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self._sleep = sleep
        self._max_wait = max_wait
        self.stats: dict[str, Any] = {"calls": 0, "retries": 0, "rate_limited": 0}
        if cfg.export is not None:
            transport: httpx.BaseTransport | None = recorded_transport(cfg.export)
            base_url = EXPORT_BASE_URL
        else:
            transport = None
            base_url = cfg.base_url or ""
        verify: Any = cfg.ca_bundle or True
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers or {},
            auth=auth,
            timeout=timeout,
            transport=transport,
            verify=verify,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "PlatformHttp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_header(self, name: str, value: str) -> None:
        self._client.headers[name] = value

    def request_json(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None
    ) -> Any:
        """One call with retries; returns the decoded JSON body."""
        what = f"{method.upper()} {path}"
        attempts = max(1, self.cfg.retry_attempts)
        for attempt in range(1, attempts + 1):
            resp = self._send(method, path, params=params, json_body=json_body, what=what)
            try:
                return resp.json()
            except ValueError:
                # A page cut short by a proxy or a dropped connection: the calls we make are
                # reads, so asking again is safe (as the Salesforce client does).
                if attempt == attempts:
                    break
                self._backoff(attempt, None)
        return self._decode(resp, what)

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None
    ) -> httpx.Response:
        """One call with the same retries and errors; returns the raw (successful) response.

        For callers that need response headers (RFC 5988 ``Link`` paging). ``path`` may be an
        absolute URL (a next-page link); errors name its path only, never its query string.
        Decode the body with :meth:`decode_json` to get request_json's malformed-page error.
        """
        what = f"{method.upper()} {httpx.URL(path).path}"
        return self._send(method, path, params=params, json_body=json_body, what=what)

    def decode_json(self, resp: httpx.Response) -> Any:
        """``resp``'s JSON body, or the same PlatformError request_json raises when malformed."""
        return self._decode(resp, f"{resp.request.method} {resp.request.url.path}")

    def _decode(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise PlatformError(
                self.cfg.name, what, "response is not valid JSON (truncated or malformed page)",
                "retry; if it persists the platform or a proxy is mangling responses",
            ) from None

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None, json_body: Any, what: str
    ) -> httpx.Response:
        attempts = max(1, self.cfg.retry_attempts)
        for attempt in range(1, attempts + 1):
            self.stats["calls"] += 1
            try:
                resp = self._client.request(method, path, params=params, json=json_body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == attempts:
                    raise PlatformError(
                        self.cfg.name, what, f"{type(exc).__name__} after {attempts} attempts",
                        "check that the server is reachable (base_url, network, TLS)",
                    ) from None
                self._backoff(attempt, None)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if resp.status_code == 429:
                    self.stats["rate_limited"] += 1
                if attempt == attempts:
                    raise PlatformError(
                        self.cfg.name, what, f"HTTP {resp.status_code} after {attempts} attempts",
                        "rate limited: retry later or lower the request rate"
                        if resp.status_code == 429 else "the platform is failing; retry later",
                    )
                self._backoff(attempt, resp)
                continue
            if resp.status_code in (401, 403):
                raise PlatformError(
                    self.cfg.name, what, f"HTTP {resp.status_code}: authentication refused",
                    "check the credentials named in the platforms file's auth section",
                )
            if resp.status_code >= 400:
                raise PlatformError(
                    self.cfg.name, what, f"HTTP {resp.status_code}: {_error_text(resp)}",
                    "see the platform's API documentation for this error",
                )
            return resp
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request_json("GET", path, params=params)

    def _backoff(self, attempt: int, resp: httpx.Response | None) -> None:
        self.stats["retries"] += 1
        delay = self.cfg.retry_base_delay * (2 ** (attempt - 1)) * (1 + random.random() * 0.5)
        if resp is not None and resp.status_code == 429:
            # Rate-limit hints only mean something on a 429: Intercom sends X-RateLimit-Reset
            # on every response, and a 5xx should not wait for the rate window to reset.
            hinted = _retry_after(resp)
            if hinted is not None:
                delay = hinted
        self._sleep(min(max(delay, 0.0), self._max_wait))


def _retry_after(resp: httpx.Response) -> float | None:
    if resp.headers.get("Retry-After"):
        return retry_after_seconds(resp.headers)
    reset = resp.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def _error_text(resp: httpx.Response) -> str:
    """A short, secret-free description of an error body."""
    try:
        body = resp.json()
    except ValueError:
        return "non-JSON error body"
    if isinstance(body, dict):
        for key in ("message", "error", "api_error_code"):
            if isinstance(body.get(key), str):
                return body[key][:200]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("code"))[:200]
    return "error"
