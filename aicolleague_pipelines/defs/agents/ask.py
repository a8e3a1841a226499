"""Questions answered over the graph, as an asset (the CLI's `aicolleague ask` in Dagster)."""

import dagster as dg

from aicolleague_pipelines.defs.graph.assets import org_graph
from aicolleague_pipelines.defs.salesforce.partitions import salesforce_orgs
from aicolleague_pipelines.lib.agents.ask import answer
from aicolleague_pipelines.resources import GeminiResource, GraphStoreResource

#: Asked when the run config names no question (they show what the graph can answer).
SAMPLE_QUESTIONS = [
    "which flows write Opportunity.Amount?",
    "where is Account.Industry used?",
    "what breaks if I delete Invoice__c.Amount__c?",
    "what does InvoiceService depend on?",
    "which classes write Account.Industry?",
    "which flows write Account.Industry?",
    "what reads Invoice__c.Amount__c?",
    "what writes Program__c.Status__c?",
    "what does the Case_Escalation flow depend on?",
    "what changed?",
]


class AskConfig(dg.Config):
    questions: list[str] = SAMPLE_QUESTIONS


@dg.asset(
    partitions_def=salesforce_orgs,
    group_name="agents",
    kinds={"python"},
    code_version="1",
    deps=[org_graph],
    description=(
        "Questions answered over the org's graph (who uses / what writes / what breaks if / "
        "what changed …) with cited component keys: Gemini when GEMINI_API_KEY is set, grounded "
        "in graph facts and refused if it cites a key not in them; the deterministic offline "
        "writer otherwise. Run config: questions."
    ),
)
def graph_answers(
    context: dg.AssetExecutionContext,
    config: AskConfig,
    graph_store: GraphStoreResource,
    llm: GeminiResource,
) -> dg.Output[list[dict]]:
    org = context.partition_key
    writer = llm.writer()
    answers = []
    with graph_store.open(read_only=True) as store:
        for q in config.questions:
            a = answer(store, org, q, writer)
            answers.append({"question": q, **a.to_dict()})
    md = []
    for a in answers:
        md += [f"**Q: {a['question']}** _(method {a['method']}, {a['source']})_", "", a["text"].strip(), ""]
    sources = sorted({a["source"] for a in answers})
    return dg.Output(answers, metadata={
        "questions": dg.MetadataValue.int(len(answers)),
        "writer": ", ".join(sources),
        "rejected_citations": dg.MetadataValue.int(sum(len(a.get("rejected_citations") or []) for a in answers)),
        "answers": dg.MetadataValue.md("\n".join(md)),
    })


ask_job = dg.define_asset_job(
    "ask_job",
    selection=dg.AssetSelection.assets("graph_answers"),
    description=(
        "Answer questions over one org's graph (run config: ops.graph_answers.config.questions); "
        "the Dagster twin of `aicolleague ask`."
    ),
)
