"""Learn: a documentation site per org (MkDocs), a knowledge base, optional Confluence."""

import os

import dagster as dg

from aicolleague_pipelines.defs.governance import audit_for
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.confluence import ConfluenceConfig, ConfluenceError, publish
from aicolleague_pipelines.lib.agents.docs import build_docs_site
from aicolleague_pipelines.lib.agents.knowledge import build_knowledge_base
from aicolleague_pipelines.lib.agents.model import Finding
from aicolleague_pipelines.lib.agents.triage import all_rules
from aicolleague_pipelines.lib.graph.build import OrgGraph
from aicolleague_pipelines.lib.salesforce.model import OrgInventory
from aicolleague_pipelines.resources import GeminiResource, GraphStoreResource

CONFLUENCE_URL_ENV = "CONFLUENCE_BASE_URL"
CONFLUENCE_SPACE_ENV = "CONFLUENCE_SPACE"

@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    description=(
        "Learn agent: a MkDocs site per org — an index, a page per object (fields, formulas, "
        "picklists, who reads and writes each field, validation rules, triggers and flows, "
        "permission sets, platform assets downstream, a Mermaid diagram), per Apex class and "
        "flow, findings, and what changed since the last run. Build HTML with `make docs`. "
        f"Published to Confluence when ${CONFLUENCE_URL_ENV} and ${CONFLUENCE_SPACE_ENV} are set."
    ),
)
def documentation(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    llm: GeminiResource,
    sf_inventory: OrgInventory,
    org_graph: OrgGraph,
    triage_findings: list[Finding],
    monitor_changes: dict,
) -> dg.Output[dict]:

    org = context.partition_key
    out = graph_store.data_home.root() / "docs" / org
    changes_md = monitor_changes.get("changes_markdown")
    writer = llm.writer()
    site = build_docs_site(sf_inventory, org_graph, out, findings=triage_findings,
                           changes_md=changes_md, writer=writer)
    for note in site.notes:
        context.log.warning(f"docs {org}: {note}")
    meta = {
        "pages": dg.MetadataValue.int(len(site.pages)),
        "writer": type(writer).__name__,
        "site": dg.MetadataValue.path(str(site.root)),
        "build_html": f".venv/bin/mkdocs build -f {site.config}",
    }
    published = None
    base_url, space = os.environ.get(CONFLUENCE_URL_ENV), os.environ.get(CONFLUENCE_SPACE_ENV)
    if base_url and space:
        try:
            report = publish(site.markdown_pages(f"{org}: "), space, f"{org} documentation",
                             ConfluenceConfig(base_url=base_url),
                             audit=audit_for(context, graph_store.data_home.root()), org=org)
            published = report.to_dict()
            meta["confluence"] = dg.MetadataValue.json(
                {k: published[k] for k in ("created", "updated", "unchanged") if k in published})
        except ConfluenceError as exc:
            context.log.error(f"docs {org}: Confluence publishing failed: {exc}")
            meta["confluence_error"] = str(exc)
    return dg.Output({"root": str(site.root), "pages": [str(p) for p in site.pages],
                      "confluence": published}, metadata=meta)

@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    deps=[documentation],
    description=(
        "Knowledge base of one org: a summary per component with its dependents, best-practice "
        "notes from the triage rules that fired on it, and an FAQ of recurring findings; "
        "searchable (stored as JSON under the data home)."
    ),
)
def knowledge_base(
    context: dg.AssetExecutionContext,
    graph_store: GraphStoreResource,
    sf_inventory: OrgInventory,
    org_graph: OrgGraph,
    triage_findings: list[Finding],
) -> dg.Output[dict]:
    org = context.partition_key
    kb = build_knowledge_base(sf_inventory, org_graph, triage_findings, all_rules())
    folder = graph_store.data_home.root() / "knowledge"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{org}.json"
    path.write_text(kb.to_json(), encoding="utf-8")
    return dg.Output({"path": str(path), "entries": len(kb.entries), "faq": len(kb.faq)}, metadata={
        "entries": dg.MetadataValue.int(len(kb.entries)),
        "faq": dg.MetadataValue.int(len(kb.faq)),
        "stored_at": dg.MetadataValue.path(str(path)),
        "faq_markdown": dg.MetadataValue.md(kb.to_markdown()),
    })
