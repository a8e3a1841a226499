"""One entry point for every platform kind, and the JSON form extracts are kept in.

Extracts are kept under ``<data home>/platforms/<instance>.json`` so that each org's graph
build can join the platforms that mirror it without re-calling any platform API.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.model import PlatformExtract, SalesforceLink

PLATFORMS_DIR = "platforms"


def extract_platform(cfg: PlatformConfig) -> PlatformExtract:
    """Extract one platform instance (live or from its recorded export)."""
    started = time.perf_counter()
    if cfg.kind == "metabase":
        from aicolleague_pipelines.lib.platforms.metabase import extract_metabase as fn
    elif cfg.kind == "chargebee":
        from aicolleague_pipelines.lib.platforms.chargebee import extract_chargebee as fn
    elif cfg.kind == "intercom":
        from aicolleague_pipelines.lib.platforms.intercom import extract_intercom as fn
    elif cfg.kind == "custom":
        from aicolleague_pipelines.lib.platforms.custom_api import extract_custom_api as fn
    else:  # config validation refuses this already
        raise ValueError(f"unknown platform kind {cfg.kind!r}")
    extract = fn(cfg)
    extract.stats.setdefault("duration_s", round(time.perf_counter() - started, 3))
    return extract


def to_json(extract: PlatformExtract) -> dict[str, Any]:
    return dataclasses.asdict(extract)


def from_json(data: dict[str, Any]) -> PlatformExtract:
    return PlatformExtract(
        platform=data["platform"],
        instance=data["instance"],
        extracted_at=data["extracted_at"],
        nodes=[Node(**n) for n in data.get("nodes", [])],
        edges=[Edge(**e) for e in data.get("edges", [])],
        links=[SalesforceLink(**link) for link in data.get("links", [])],
        aggregates=data.get("aggregates", {}),
        stats=data.get("stats", {}),
        findings=list(data.get("findings", [])),
    )


def save_extract(data_home: Path, extract: PlatformExtract) -> Path:
    """Write atomically: a crash mid-write leaves the previous extract in place."""
    folder = data_home / PLATFORMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{extract.instance}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_json(extract), default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def load_extracts(data_home: Path, instances: list[str] | None = None) -> list[PlatformExtract]:
    """The latest saved extract of each instance (all, or those named)."""
    folder = data_home / PLATFORMS_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        if instances is not None and path.stem not in instances:
            continue
        out.append(from_json(json.loads(path.read_text(encoding="utf-8"))))
    return out
