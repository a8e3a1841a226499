"""Robust anomaly detection on metric series: unit cases and a seeded precision/recall batch."""

from __future__ import annotations

import numpy as np
import pytest

from aicolleague_pipelines.lib.agents.anomaly import (
    Anomaly,
    detect,
    detect_all,
    evaluate_detector,
    metric_series_from_snapshots,
    robust_score,
)
from aicolleague_pipelines.lib.graph.model import Edge, Node
from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore


def _ts(n: int) -> list[str]:
    return [f"2025-01-{1 + i // 24:02d}T{i % 24:02d}:00:00+00:00" for i in range(n)]


def _series(values) -> list[tuple[str, float]]:
    return list(zip(_ts(len(values)), [float(v) for v in values]))


# --- unit cases ---------------------------------------------------------------------------------


def test_spike_and_drop_direction_and_severity() -> None:
    rng = np.random.default_rng(0)
    x = 100 + rng.normal(0, 2, 40)
    x[25] += 60  # ~30 σ
    x[33] -= 12  # ~6 σ
    (a, b) = detect(_series(x), metric="api_calls")
    assert (a.index, a.direction, a.kind, a.points) == (25, "spike", "outlier", 1)
    assert a.severity == "critical" and a.metric == "api_calls" and a.baseline == pytest.approx(100, abs=2)
    assert (b.index, b.direction) == (33, "drop") and b.severity == "low"  # |score| ≈ 4.3
    assert "spike" in a.describe() and isinstance(a.to_dict()["score"], float)


def test_flat_series_mad_zero_fallback() -> None:
    flat = [120] * 20
    assert detect(_series(flat + [121, 120, 122])) == []  # small moves of a flat count: no news
    (a,) = detect(_series(flat + [40]))
    assert a.direction == "drop" and a.scale_method == "relative" and a.severity in ("high", "critical")
    # Zero baseline (failures count): 0 → 1 is not an alarm, 0 → 12 is.
    assert detect(_series([0] * 15 + [1])) == []
    assert [x.direction for x in detect(_series([0] * 15 + [12]))] == ["spike"]
    score, med, scale, method = robust_score(5.0, [1, 1, 1, 1, 3])
    assert method == "mean_abs_dev" or method == "relative"
    assert med == 1 and scale > 0


def test_level_shift_is_one_event_and_becomes_the_new_normal() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(500, 2, 30), rng.normal(470, 2, 30)]
    out = detect(_series(x))
    assert len(out) == 1
    (a,) = out
    assert (a.index, a.direction, a.kind) == (30, "drop", "level_shift") and a.points >= 3


def test_min_points_and_nan_handling() -> None:
    assert detect(_series([1, 1, 1, 50])) == []  # fewer than min_points before it
    vals = [10, 11, 10, float("nan"), 11, 10, 11, 10, 90]
    (a,) = detect(_series(vals))
    assert a.value == 90
    with pytest.raises(ValueError):
        detect(_series([1, 2]), window=0)


def test_detect_all_sorts_by_time() -> None:
    base = [10.0, 11, 10, 11, 10, 11, 10, 11]
    out = detect_all({"b": _series(base + [60, 10]), "a": _series(base + [10, 70])})
    assert [(x.metric, x.index) for x in out] == [("b", 8), ("a", 9)]
    assert all(isinstance(x, Anomaly) for x in out)


def test_metric_series_from_snapshots() -> None:
    store = DuckDBGraphStore(":memory:")
    try:
        def snap(n_fields: int, meta: dict) -> None:
            nodes = [Node("CustomObject:Account", "CustomObject", "Account")]
            nodes += [Node(f"CustomField:Account.F{i}__c", "CustomField", f"Account.F{i}__c") for i in range(n_fields)]
            nodes.append(Node("CustomField:Other.X", "CustomField", "Other.X", external=True))
            edges = [Edge(n.key, "CustomObject:Account", "child_of", "t") for n in nodes[1:-1]]
            store.load_snapshot("acme", nodes, edges, meta=meta)

        for i in range(8):
            snap(10 + (i % 2), {"api_calls": 100 + i, "stats": {"failures": 0}, "label": "x"})
        snap(3, {"api_calls": 104, "stats": {"failures": 7}})
        series = metric_series_from_snapshots(store, "acme")
        assert [v for _, v in series["type:CustomField"]] == [10, 11] * 4 + [3]
        assert [v for _, v in series["external_nodes"]] == [1] * 9
        assert series["meta:api_calls"][-1][1] == 104 and series["meta:failures"][-1][1] == 7
        assert "meta:label" not in series and "kind:calls" not in series
        assert series["kind:child_of"][0][1] == 10
        found = {a.metric: a for a in detect_all(series)}
        assert found["type:CustomField"].direction == "drop"
        assert found["meta:failures"].direction == "spike"
        assert "meta:api_calls" not in found
    finally:
        store.close()


# --- seeded batch: precision / recall ---------------------------------------------------------------


def make_batch(n: int = 200, seed: int = 7):
    """``n`` series (60–99 points) of four noise styles — Gaussian, Poisson counts, flat counts
    with rare ±1 steps, Student-t(8) — with 0–3 injected anomalies each (spikes or level shifts
    of 6–12 σ, ≥ 22 points apart; ~15% of series get none). Returns (series, truth, style)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(60, 100))
        level = float(rng.choice([rng.uniform(5, 50), rng.uniform(50, 5000)]))
        style = str(rng.choice(["gauss", "poisson", "flat", "heavy"]))
        if style == "gauss":
            sigma = level * rng.uniform(0.01, 0.1)
            noise = rng.normal(0, sigma, length)
        elif style == "heavy":
            sigma = level * rng.uniform(0.01, 0.05)
            noise = rng.standard_t(8, length) * sigma
        elif style == "poisson":
            sigma = float(np.sqrt(level))
            noise = rng.poisson(level, length) - level
        else:
            sigma = max(0.05 * level, 1.0)
            steps = rng.choice([-1, 0, 1], length, p=[0.05, 0.9, 0.05])
            noise = np.cumsum(steps).astype(float)
        x = level + noise
        truth: list[int] = []
        if rng.random() >= 0.15:
            t = int(rng.integers(20, 30))
            while t < length - 3 and len(truth) < 3:
                mag = rng.uniform(6, 12) * sigma * rng.choice([-1, 1])
                if rng.random() < 0.5:
                    x[t] += mag
                else:
                    x[t:] += mag
                truth.append(t)
                t += int(rng.integers(22, 35))
        if style in ("poisson", "flat"):
            x = np.round(x)
        out.append((_series(x), truth, style))
    return out


def evaluate(batch) -> dict:
    m = evaluate_detector([(series, truth) for series, truth, _style in batch])
    return {**m, "detections": m["true_positives"] + m["false_positives"]}


@pytest.mark.parametrize("seed", [7, 11])
def test_precision_recall_on_seeded_batch(seed: int) -> None:
    m = evaluate(make_batch(200, seed))
    print(
        f"\nanomaly batch seed={seed}: precision={m['precision']:.3f} recall={m['recall']:.3f} "
        f"(detections={m['detections']}, false positives={m['false_positives']}, "
        f"injected={m['injected']}, found={m['found']})"
    )
    assert m["precision"] >= 0.9
    assert m["recall"] >= 0.8
