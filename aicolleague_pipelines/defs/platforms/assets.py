"""One asset (and asset group) per platform instance in platforms.yaml."""

import warnings
from collections import Counter

import dagster as dg

from aicolleague_pipelines.lib.platforms.config import (
    PlatformConfig,
    PlatformConfigError,
    load_platforms,
)
from aicolleague_pipelines.lib.platforms.extract import extract_platform, save_extract
from aicolleague_pipelines.lib.platforms.model import PlatformError, PlatformExtract
from aicolleague_pipelines.resources import DataHomeResource


def asset_name(cfg: PlatformConfig) -> str:
    return cfg.name.replace("-", "_")


def _summary(ex: PlatformExtract) -> str:
    types = Counter(n.type for n in ex.nodes)
    lines = [
        f"### {ex.platform} `{ex.instance}`",
        "",
        f"{len(ex.nodes)} components, {len(ex.edges)} internal dependencies, "
        f"{len(ex.links)} links to Salesforce.",
        "",
        "| component type | count |",
        "|---|---:|",
        *[f"| {t} | {n} |" for t, n in sorted(types.items())],
    ]
    if ex.links:
        lines += ["", "**Linked Salesforce fields:** "
                  + ", ".join(sorted({f"`{link.sf_field or link.sf_object}`" for link in ex.links}))]
    if ex.findings:
        lines += ["", "**Findings:**", "", *[f"- {f}" for f in ex.findings[:20]]]
    return "\n".join(lines)


def build_platform_asset(cfg: PlatformConfig) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_name(cfg),
        key_prefix=["platforms", cfg.kind],
        group_name=f"platform_{asset_name(cfg)}",
        kinds={cfg.kind, "python"},
        code_version="1",
        description=(
            f"{cfg.kind} instance `{cfg.name}`"
            + (f" (mirrors org {cfg.org})" if cfg.org else "")
            + ": components, internal lineage, links to Salesforce and aggregates — metadata "
            "only, never personal details."
        ),
    )
    def _platform(context: dg.AssetExecutionContext, data_home: DataHomeResource) -> dg.Output:
        try:
            extract = extract_platform(cfg)
        except (PlatformError, PlatformConfigError) as exc:
            raise dg.Failure(description=str(exc), metadata={"platform": cfg.name}) from None
        path = save_extract(data_home.root(), extract)
        for finding in extract.findings:
            context.log.warning(f"platform {cfg.name}: {finding}")
        meta = {
            "platform": cfg.kind,
            "instance": cfg.name,
            "org": cfg.org or "",
            "source": "export" if cfg.export else "live",
            "components": dg.MetadataValue.int(len(extract.nodes)),
            "links_to_salesforce": dg.MetadataValue.int(len(extract.links)),
            "aggregates": dg.MetadataValue.json(extract.aggregates),
            "summary": dg.MetadataValue.md(_summary(extract)),
            "stored_at": dg.MetadataValue.path(str(path)),
        }
        for key in ("calls", "pages", "retries", "rate_limited", "duration_s"):
            if key in extract.stats:
                meta[key] = extract.stats[key]
        return dg.Output(extract, metadata=meta)

    return _platform


def _load_assets() -> list[dg.AssetsDefinition]:
    try:
        return [build_platform_asset(cfg) for cfg in load_platforms()]
    except PlatformConfigError as exc:
        # A broken platforms file must not take the Salesforce pipelines down with it.
        warnings.warn(f"platform assets not loaded: {exc}", stacklevel=1)
        return []


platform_assets = _load_assets()

platforms_job = dg.define_asset_job(
    "platforms_job",
    selection=dg.AssetSelection.key_prefixes(["platforms"]),
    description="Extract every platform instance (Metabase, Chargebee, Intercom, custom REST).",
)
