"""Monitor: robust anomaly detection on per-org metric time series.

A metric series is a list of ``(timestamp, value)`` (ISO timestamps, oldest first): component
counts per type, edges, API calls, failures, findings … :func:`detect` compares each point
with a rolling baseline of the ``window`` points before it:

- centre = median, scale = MAD (median absolute deviation); score = the modified z-score
  ``0.6745 * (x - median) / MAD`` (≈ how many standard deviations away). The MAD pools the
  baseline's deviations with the last ``scale_window`` residuals (point minus its baseline
  median): a 14-point MAD alone is too noisy (≈2% false alarms per point on Gaussian noise);
- MAD = 0 (a flat baseline — common for counts): the scale falls back to the mean absolute
  deviation (``x 1.2533`` → σ), and when that is 0 too, to a relative tolerance
  ``max(rel_tol * |median|, abs_tol)`` — so a flat 120 → 121 is not an alarm but 120 → 40 is;
- a point whose ``|score| >= threshold`` is anomalous; ``direction`` is ``spike`` (above) or
  ``drop`` (below); consecutive anomalous points in the same direction are one
  :class:`Anomaly` (its ``points``/``end`` say how long it lasted, the score is the peak); once
  a run is open it goes on while points stay beyond ``continue_ratio × threshold``
  (hysteresis);
- level shifts: after ``confirm`` consecutive anomalous points in one direction the first of
  them starts a new level: baseline points before it are moved by the difference of the
  medians (new level minus old), so the new level is normal at once instead of alarming for
  half a window, and the scale still comes from a full window. Such an anomaly has
  ``kind="level_shift"``, otherwise ``"outlier"``;
- no decision before ``min_points`` baseline points.

Severity by ``|score| / threshold``: < 1.5 low, < 2.5 medium, < 5 high, else critical.

:func:`metric_series_from_snapshots` builds the series of one org from its kept graph
snapshots (node/edge counts, counts per component type and per edge kind, and numeric values
of the snapshots' ``meta`` such as ``api_calls``/``failures``/``findings``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aicolleague_pipelines.lib.graph.store import GraphStore

MAD_TO_Z = 0.6745
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi/2): σ of a normal ≈ 1.2533 × mean absolute deviation


@dataclass
class Anomaly:
    timestamp: str  # first anomalous point
    value: float
    baseline: float  # the baseline median at the first point
    scale: float  # the σ-equivalent used
    score: float  # peak modified z-score (signed)
    direction: str  # "spike" | "drop"
    severity: str  # "low" | "medium" | "high" | "critical"
    index: int  # position of the first point in the series
    points: int = 1
    end: str | None = None  # last anomalous point of the run
    kind: str = "outlier"  # "outlier" | "level_shift"
    metric: str | None = None
    scale_method: str = "mad"  # "mad" | "mean_abs_dev" | "relative"

    @property
    def change(self) -> float:
        return self.value - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        what = self.metric or "metric"
        pct = f" ({self.change / self.baseline:+.0%})" if self.baseline else ""
        run = f" for {self.points} points" if self.points > 1 else ""
        return (
            f"{what}: {self.direction} to {self.value:g} vs baseline {self.baseline:g}{pct} "
            f"at {self.timestamp}{run} (score {self.score:+.1f}, {self.kind})"
        )


def severity_for(score: float, threshold: float) -> str:
    r = abs(score) / threshold if threshold > 0 else math.inf
    if r < 1.5:
        return "low"
    if r < 2.5:
        return "medium"
    if r < 5:
        return "high"
    return "critical"


def robust_score(
    x: float,
    baseline: Sequence[float] | np.ndarray,
    *,
    residuals: Sequence[float] | np.ndarray = (),
    rel_tol: float = 0.05,
    abs_tol: float = 1.0,
    min_scale: float = 0.0,
) -> tuple[float, float, float, str]:
    """``(score, median, σ-scale, method)`` of ``x`` against ``baseline``.

    ``residuals``: earlier points' deviations from their own baselines, pooled with the
    baseline's deviations to estimate the scale (a MAD of 14 points alone is so noisy that a
    Gaussian series would alarm on ~2% of its points at 3.5). The scale is then multiplied by
    a finite-sample correction ``1 + 10/n + 200/n³`` (n = pooled deviations; fitted by
    simulation on Gaussian noise: ≈0.1–0.5% false alarms per point from n=5 up) and kept at
    least ``min_scale`` (the series' resolution: 1 for counts).
    """
    b = np.asarray(baseline, dtype=float)
    med = float(np.median(b))
    dev = np.abs(np.concatenate([b - med, np.asarray(residuals, dtype=float)]))
    mad = float(np.median(dev))
    if mad > 0:
        scale, method = mad / MAD_TO_Z, "mad"
    else:
        # Flat baseline (typical of counts): the mean absolute deviation, but never below a
        # relative / absolute tolerance (a flat 120 that turns 121 is not news).
        mean_ad = float(dev.mean())
        floor = max(rel_tol * abs(med), abs_tol)
        if MEAN_AD_TO_SIGMA * mean_ad > floor:
            scale, method = MEAN_AD_TO_SIGMA * mean_ad, "mean_abs_dev"
        else:
            scale, method = floor, "relative"
    n = dev.size
    if method != "relative":
        scale *= 1.0 + 10.0 / n + 200.0 / n**3
    scale = max(scale, min_scale)
    return (x - med) / scale, med, scale, method


def detect(
    series: Sequence[tuple[str, float]],
    *,
    window: int = 14,
    threshold: float = 3.5,
    min_points: int = 5,
    confirm: int = 3,
    scale_window: int | None = None,
    rel_tol: float = 0.05,
    abs_tol: float = 1.0,
    min_scale: float | None = None,
    continue_ratio: float = 0.5,
    metric: str | None = None,
) -> list[Anomaly]:
    """Anomalies of one series (see the module docstring). ``None``/NaN values are skipped.

    ``scale_window`` (default ``4 * window``): how many earlier residuals (each point minus
    its baseline median) are pooled with the baseline to estimate the scale. ``min_scale``
    (default: 1 when every value is an integer — counts — else 0): the smallest σ used.
    """
    if window < 1 or min_points < 1:
        raise ValueError("window and min_points must be >= 1")
    scale_window = 4 * window if scale_window is None else max(0, int(scale_window))
    resid: list[float] = []
    pts = [(str(t), float(v)) for t, v in series if v is not None and not math.isnan(float(v))]
    values = [v for _, v in pts]
    if min_scale is None:
        min_scale = 1.0 if values and all(v.is_integer() for v in values) else 0.0
    out: list[Anomaly] = []
    start = 0  # first point at the current level (moves forward after a level shift)
    cur: Anomaly | None = None
    for i, (ts, x) in enumerate(pts):
        lo = max(0, i - window)
        base = values[lo:i]
        if start > lo:
            # The window straddles a level shift: move the points before it to the new level
            # (the noise scale rarely changes with the level, the centre does).
            pre = values[max(0, start - window) : start]
            post = values[start:i]
            shift = float(np.median(post)) - float(np.median(pre))
            base = [v + shift for v in values[lo:start]] + post
            # The new level is only known from len(post) points: widen the scale by the
            # uncertainty of their median (variance ≈ (π/2)·σ²/n).
            level_inflation = math.sqrt(1.0 + (math.pi / 2) / max(1, len(post)))
        else:
            level_inflation = 1.0
        if len(base) < min_points:
            cur = None
            continue
        score, med, scale, method = robust_score(
            x, base, residuals=resid[-scale_window:] if scale_window else (), rel_tol=rel_tol,
            abs_tol=abs_tol, min_scale=min_scale,
        )
        if level_inflation != 1.0:
            score /= level_inflation
            scale *= level_inflation
        resid.append(x - med)
        direction = "spike" if score > 0 else "drop"
        # Hysteresis: an open run goes on while points stay beyond ``continue_ratio × threshold``
        # in its direction (a moderate level shift wobbling around the threshold is one event).
        extends = (
            cur is not None
            and cur.direction == direction
            and cur.index + cur.points == i
            and abs(score) >= continue_ratio * threshold
        )
        if abs(score) < threshold and not extends:
            cur = None
            continue
        if extends:
            assert cur is not None
            cur.points += 1
            cur.end = ts
            if abs(score) > abs(cur.score):
                cur.score = score
                cur.severity = severity_for(score, threshold)
            if cur.points >= confirm and cur.kind != "level_shift":
                cur.kind = "level_shift"
                start = cur.index  # the new level is the baseline from now on
                cur = None  # a restarted baseline starts a new run
            continue
        cur = Anomaly(
            timestamp=ts,
            value=x,
            baseline=med,
            scale=scale,
            score=score,
            direction=direction,
            severity=severity_for(score, threshold),
            index=i,
            end=ts,
            metric=metric,
            scale_method=method,
        )
        out.append(cur)
    return out


def detect_all(
    series_by_metric: dict[str, Sequence[tuple[str, float]]], **kw: Any
) -> list[Anomaly]:
    """:func:`detect` on every metric; anomalies sorted by time, then by |score| descending."""
    out: list[Anomaly] = []
    for name, series in series_by_metric.items():
        out.extend(detect(series, metric=name, **kw))
    out.sort(key=lambda a: (a.timestamp, -abs(a.score), a.metric or ""))
    return out


def evaluate_detector(
    cases: Sequence[tuple[Sequence[tuple[str, float]], Sequence[int]]],
    detector: Any = None,
    *,
    tolerance: int = 1,
) -> dict[str, float]:
    """Precision and recall of ``detector`` (default :func:`detect`) on series with known
    anomalies: ``cases`` are ``(series, indexes of the injected anomalies)``; a detection within
    ``tolerance`` points of one is a true positive, an injected anomaly hit at least once is found."""
    run = detector or detect
    tp = fp = found = injected = 0
    for series, truth in cases:
        injected += len(truth)
        matched: set[int] = set()
        for a in run(series):
            hit = [t for t in truth if abs(a.index - t) <= tolerance]
            if hit:
                tp += 1
                matched.update(hit)
            else:
                fp += 1
        found += len(matched)
    return {"precision": round(tp / max(1, tp + fp), 3), "recall": round(found / max(1, injected), 3),
            "true_positives": tp, "false_positives": fp, "found": found, "injected": injected}


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def metric_series_from_snapshots(
    store: GraphStore, org: str, *, per_type: bool = True, per_kind: bool = True
) -> dict[str, list[tuple[str, float]]]:
    """Series of one org's kept snapshots (oldest first), keyed by metric name:

    ``nodes``, ``edges``, ``components`` (defined nodes), ``external_nodes``,
    ``type:<Type>`` (defined components per type), ``kind:<edge kind>``, and ``meta:<name>``
    for numeric values in the snapshot meta (top level and ``meta["stats"]``: api_calls,
    failures, findings …). A type absent from one snapshot counts 0 there; types and kinds at 0
    in every snapshot are left out.
    """
    snaps = store.snapshots(org)
    series: dict[str, list[tuple[str, float]]] = {}
    per_snap: list[tuple[str, dict[str, float]]] = []
    for s in snaps:
        row: dict[str, float] = {"nodes": float(s.node_count), "edges": float(s.edge_count)}
        if per_type or per_kind:
            idx = store.graph_index(org, s.version)
            ext = np.asarray(idx.external, dtype=bool)
            row["external_nodes"] = float(ext.sum())
            row["components"] = float((~ext).sum())
            if per_type and idx.n:
                counts = np.bincount(np.asarray(idx.type_codes)[~ext], minlength=len(idx.type_names))
                for name, c in zip(idx.type_names, counts.tolist()):
                    row[f"type:{name}"] = float(c)
            if per_kind and idx.e:
                counts = np.bincount(np.asarray(idx.kind_codes), minlength=len(idx.kind_names))
                for name, c in zip(idx.kind_names, counts.tolist()):
                    row[f"kind:{name}"] = float(c)
        meta = s.meta or {}
        for src in (meta, meta.get("stats") if isinstance(meta.get("stats"), dict) else {}):
            for k, v in src.items():
                if _numeric(v):
                    row[f"meta:{k}"] = float(v)
        per_snap.append((s.created_at, row))
    names = sorted({k for _, row in per_snap for k in row})
    for name in names:
        zero_fill = name.startswith(("type:", "kind:"))
        pts = [(ts, row.get(name, 0.0 if zero_fill else math.nan)) for ts, row in per_snap]
        kept = [(t, v) for t, v in pts if not math.isnan(v)]
        if zero_fill and not any(v for _, v in kept):
            continue  # an edge kind / type never seen in this org
        series[name] = kept
    return series
