"""A loopback fake of the Gemini REST API (``generateContent``), speaking the real wire format.

``FakeGemini()`` starts a threaded ``http.server`` on a free 127.0.0.1 port; point the real
``google-genai`` client at it with ``types.HttpOptions(base_url=fake.base_url)``.

What it speaks:

- ``POST /v1beta/models/{model}:generateContent`` (and ``/v1/…``, google-genai 3.x's default) with the ``x-goog-api-key`` header (missing or
  different from ``fake.api_key`` → 400 ``INVALID_ARGUMENT`` "API key not valid", like Google);
  body ``{contents: [{role, parts: [{text}]}], generationConfig: {...}, systemInstruction?}``.
- 200 → ``{candidates: [{content: {parts: [{text}], role: "model"}, finishReason: "STOP",
  index: 0}], usageMetadata: {promptTokenCount, candidatesTokenCount, totalTokenCount},
  modelVersion, responseId}``.
- Errors as Google sends them: ``{error: {code, message, status}}``.

Knobs:

- ``fake.reply(text_or_callable, ...)``: scripted replies, used in order (the last one repeats).
  A callable gets the request's prompt text and returns the reply text. With nothing scripted,
  the fake *echoes*: it answers ``{"text": ..., "cited_keys": [...]}`` citing the allowed keys
  it finds in the prompt (see :func:`echo_reply`).
- ``fake.fail("429", times=1, retry_after=1)``: 429 ``RESOURCE_EXHAUSTED`` with ``Retry-After``.
- ``fake.fail("500", times=n)``: 500 ``INTERNAL``.
- ``fake.fail("malformed", times=n)``: a 200 whose body is JSON cut in half.
- ``fake.delay = seconds``: every response waits that long (timeouts).
- ``fake.usage_tokens``: the ``totalTokenCount`` reported per call.

Every request is recorded in ``fake.requests`` (path, headers, parsed body, time).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_GEMINI_KEY = "AIzaFAKE-gemini-key-7f3c9d1e5b"
_PATH = re.compile(r"^/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):generateContent$")
_KEY_IN_TICKS = re.compile(r"`([A-Za-z][A-Za-z0-9]*:[^`\n]+)`")

Reply = str | Callable[[str], str]


@dataclass
class Recorded:
    path: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float

    @property
    def prompt(self) -> str:
        return prompt_text(self.body)


@dataclass
class _Fault:
    kind: str
    times: int
    retry_after: float | None = None


def prompt_text(body: dict[str, Any]) -> str:
    """All text parts of a generateContent request body (system instruction first)."""
    parts: list[str] = []
    sys_ins = body.get("systemInstruction") or body.get("system_instruction")
    if sys_ins:
        parts += [p.get("text", "") for p in sys_ins.get("parts", [])]
    for content in body.get("contents", []):
        parts += [p.get("text", "") for p in content.get("parts", [])]
    return "\n".join(parts)


def allowed_keys_in_prompt(prompt: str) -> list[str]:
    """The ``ALLOWED KEYS`` block of a prompt built by ``GeminiWriter`` (one key a line)."""
    heads = list(re.finditer(r"^ALLOWED KEYS[^\n]*:[ \t]*\n", prompt, re.M))
    if not heads:
        return []
    m = re.compile(r"(?P<block>.*?)(?:\n\n|\Z)", re.S).match(prompt, heads[-1].end())
    if not m:
        return []
    return [line.strip()[2:].strip() if line.strip().startswith("- ") else line.strip()
            for line in m.group("block").splitlines() if line.strip()]


def echo_reply(prompt: str, max_keys: int | None = None) -> str:
    """A grounded answer: cites (up to ``max_keys`` of) the allowed keys found in the prompt."""
    keys = allowed_keys_in_prompt(prompt)[:max_keys]
    task = ""
    m = re.search(r"TASK:\s*(?P<t>[^\n]+)", prompt)
    if m:
        task = m.group("t").strip()
    text = f"Answer to: {task}\n" + "\n".join(f"- `{k}`" for k in keys)
    return json.dumps({"text": text, "cited_keys": keys})


@dataclass
class FakeGemini:
    api_key: str = FAKE_GEMINI_KEY
    delay: float = 0.0
    usage_tokens: int = 120
    requests: list[Recorded] = field(default_factory=list)
    _replies: list[Reply] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._send(self, 404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # --- control ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, *replies: Reply) -> "FakeGemini":
        with self._lock:
            self._replies.extend(replies)
        return self

    def fail(self, kind: str, times: int = 1, retry_after: float | None = None) -> "FakeGemini":
        if kind not in {"429", "500", "503", "malformed"}:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, times, retry_after))
        return self

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self._faults.clear()
            self.requests.clear()
        self.delay = 0.0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeGemini":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving ------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=UTF-8")
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
            pass

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            while self._faults and self._faults[0].times <= 0:
                self._faults.pop(0)
            if not self._faults:
                return None
            f = self._faults[0]
            f.times -= 1
            return f

    def _next_reply(self) -> Reply | None:
        with self._lock:
            if not self._replies:
                return None
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        m = _PATH.match(path)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        rec = Recorded(path, m.group("model") if m else "", {k.lower(): v for k, v in h.headers.items()}, body,
                       time.monotonic())
        with self._lock:
            self.requests.append(rec)
        if self.delay:
            time.sleep(self.delay)
        if not m:
            self._send(h, 404, {"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})
            return
        if h.headers.get("x-goog-api-key") != self.api_key:
            self._send(h, 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                          "message": "API key not valid. Please pass a valid API key."}})
            return
        fault = self._next_fault()
        if fault is not None:
            if fault.kind == "429":
                hdr = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                self._send(h, 429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                              "message": "Resource has been exhausted (e.g. check quota)."}}, hdr)
                return
            if fault.kind in {"500", "503"}:
                code = int(fault.kind)
                self._send(h, code, {"error": {"code": code, "message": "An internal error has occurred.",
                                               "status": "INTERNAL" if code == 500 else "UNAVAILABLE"}})
                return
            if fault.kind == "malformed":
                full = json.dumps(self._payload("{}", rec)).encode()
                self._send(h, 200, None, raw=full[: len(full) // 2])
                return
        reply = self._next_reply()
        prompt = rec.prompt
        if reply is None:
            text = echo_reply(prompt)
        elif callable(reply):
            text = reply(prompt)
        else:
            text = reply
        self._send(h, 200, self._payload(text, rec))

    def _payload(self, text: str, rec: Recorded) -> dict[str, Any]:
        total = self.usage_tokens
        prompt_tokens = min(max(1, len(rec.prompt) // 4), total)
        return {
            "candidates": [
                {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": total - prompt_tokens,
                "totalTokenCount": total,
            },
            "modelVersion": rec.model,
            "responseId": uuid.uuid4().hex[:22],
        }
