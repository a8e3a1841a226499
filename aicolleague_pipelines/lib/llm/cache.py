"""A response cache for LLM answers: one JSON file per prompt hash.

The key is the sha256 of the canonical JSON of ``{model, prompt, config}`` (``config`` = what
changes an answer: temperature, max tokens, response schema …), so a rerun over unchanged facts
costs no request and no tokens, and any change to the facts, the model or the settings misses.
Files are written atomically (temporary file + ``os.replace``): concurrent runs never read a
half-written entry; an unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def prompt_hash(model: str, prompt: str, config: dict[str, Any] | None = None) -> str:
    canon = json.dumps({"model": model, "prompt": prompt, "config": config or {}}, sort_keys=True,
                       ensure_ascii=False, default=str)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@dataclass
class ResponseCache:
    directory: Path
    hits: int = 0
    misses: int = 0
    _mem: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    def key(self, model: str, prompt: str, config: dict[str, Any] | None = None) -> str:
        return prompt_hash(model, prompt, config)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        try:
            value = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        if not isinstance(value, dict):
            self.misses += 1
            return None
        self._mem[key] = value
        self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(value, fh, ensure_ascii=False, indent=1, sort_keys=True)
            os.replace(tmp, self.path(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._mem[key] = value

    def count(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json")) if self.directory.exists() else 0
