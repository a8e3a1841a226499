"""Pictures and Markdown summaries of a graph, for asset metadata and the docs."""

from __future__ import annotations

import base64
import io
import math
from collections import Counter

from aicolleague_pipelines.lib.graph.model import Edge, Node

#: One colour per component family (the same in every picture).
_COLOURS = {
    "CustomObject": "#1f77b4",
    "CustomField": "#aec7e8",
    "ApexClass": "#d62728",
    "ApexTrigger": "#ff9896",
    "Flow": "#2ca02c",
    "ValidationRule": "#98df8a",
    "Layout": "#9467bd",
    "FlexiPage": "#c5b0d5",
    "PermissionSet": "#8c564b",
    "Profile": "#c49c94",
    "Report": "#e377c2",
    "LightningComponentBundle": "#ff7f0e",
    "AuraDefinitionBundle": "#ffbb78",
}


#: Node types that come from platforms around the org (Metabase, Chargebee, Intercom, APIs).
_PLATFORM_TYPES = ("Metabase", "Warehouse", "Chargebee", "Intercom", "Api")


def most_connected(nodes: dict[str, Node], edges: list[Edge], limit: int = 30) -> list[str]:
    """Keys of the ``limit`` nodes with the highest degree (ties by key, deterministic)."""
    degree: Counter[str] = Counter()
    for e in edges:
        degree[e.source] += 1
        degree[e.target] += 1
    return [k for k, _ in sorted(degree.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def hub_picture_png(nodes: dict[str, Node], edges: list[Edge], limit: int = 30) -> bytes:
    """PNG of the subgraph induced by the most-connected nodes, on concentric rings by type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = most_connected(nodes, edges, limit)
    chosen = set(keys)
    sub = [e for e in edges if e.source in chosen and e.target in chosen]
    # Objects in the middle, fields around them, everything else outside.
    rings: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for k in keys:
        t = nodes[k].type if k in nodes else ""
        rings[0 if t == "CustomObject" else 1 if t == "CustomField" else 2].append(k)
    pos: dict[str, tuple[float, float]] = {}
    for ring, members in rings.items():
        radius = 0.35 + ring * 0.9 if len(members) > 1 else (0.0 if ring == 0 else ring * 0.9)
        for i, k in enumerate(sorted(members)):
            angle = 2 * math.pi * i / max(len(members), 1) + ring * 0.3
            pos[k] = (radius * math.cos(angle), radius * math.sin(angle))
    fig, ax = plt.subplots(figsize=(10, 10), dpi=80)
    for e in sub:
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            arrowprops={"arrowstyle": "->", "color": "#999999", "lw": 0.6, "alpha": 0.7},
        )
    for k, (x, y) in pos.items():
        node = nodes.get(k)
        t = node.type if node else ""
        ax.scatter([x], [y], s=220, color=_COLOURS.get(t, "#7f7f7f"), zorder=3,
                   edgecolors="black" if node and node.external else "none")
        label = node.name if node else k
        ax.text(x, y - 0.09, label if len(label) < 34 else label[:31] + "…",
                fontsize=7, ha="center", va="top", zorder=4)
    types_present = sorted({nodes[k].type for k in keys if k in nodes})
    for t in types_present:
        ax.scatter([], [], color=_COLOURS.get(t, "#7f7f7f"), label=t)
    if types_present:
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_axis_off()
    ax.set_title(f"The {len(keys)} most-connected components ({len(sub)} edges between them)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def graph_markdown(
    org: str, nodes: dict[str, Node], edges: list[Edge], top: int = 15
) -> str:
    """Counts per type and kind, and the most depended-on components."""
    types = Counter(n.type for n in nodes.values())
    external = sum(1 for n in nodes.values() if n.external)
    kinds = Counter(e.kind for e in edges)
    indeg: Counter[str] = Counter(e.target for e in edges if e.kind != "child_of")
    platform = Counter(
        n.type for n in nodes.values() if not n.external and n.type.startswith(_PLATFORM_TYPES)
    )
    synced = sum(1 for e in edges if e.kind == "synced_to")
    lines = [
        f"### Dependency graph of `{org}`",
        "",
        f"{len(nodes)} components ({external} external: referenced, not defined here), "
        f"{len(edges)} dependencies.",
        "",
        "**Cross-platform:** "
        + (
            ", ".join(f"{n} {t}" for t, n in sorted(platform.items()))
            + f"; {synced} links into Salesforce fields."
            if platform
            else "no platform mirrors this org."
        ),
        "",
        "| component type | count |",
        "|---|---:|",
        *[f"| {t} | {n} |" for t, n in sorted(types.items())],
        "",
        "| dependency kind | count |",
        "|---|---:|",
        *[f"| {k} | {n} |" for k, n in sorted(kinds.items())],
        "",
        f"**Most depended-on** (direct dependents, structural `child_of` excluded):",
        "",
        "| component | dependents |",
        "|---|---:|",
        *[f"| `{k}` | {n} |" for k, n in indeg.most_common(top)],
    ]
    return "\n".join(lines)
